/* ms_err: formatted error messages carried back to the caller. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ms_err_set(ms_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int ms_err_prefix(ms_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    char head[MS_ERR_LEN], old[MS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
    return -1;
}

void ms_err_clear(ms_err *err)
{
    if (err) err->msg[0] = '\0';
}

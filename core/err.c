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
    char head[MS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    size_t hl = strlen(head), ol = strnlen(err->msg, sizeof err->msg - 1);
    if (hl + 2 >= sizeof err->msg) hl = sizeof err->msg - 3;
    if (hl + 2 + ol >= sizeof err->msg) ol = sizeof err->msg - 3 - hl;
    memmove(err->msg + hl + 2, err->msg, ol);
    memcpy(err->msg, head, hl);
    err->msg[hl] = ':';
    err->msg[hl + 1] = ' ';
    err->msg[hl + 2 + ol] = '\0';
    return -1;
}

void ms_err_clear(ms_err *err)
{
    if (err) err->msg[0] = '\0';
}

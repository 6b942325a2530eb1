/* Error reporting for library code: functions return an int status (0 = ok) or NULL,
 * and leave a human-readable message in a caller-owned ms_err. Library code never exits. */
#ifndef MS_ERR_H
#define MS_ERR_H

#include <stddef.h>

#define MS_ERR_LEN 1024

typedef struct ms_err {
    char msg[MS_ERR_LEN]; /* "" when no error was recorded */
} ms_err;

/* Formats a message into err (which may be NULL) and returns -1, so that
 * `return ms_err_set(err, "...")` reads naturally. */
int ms_err_set(ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message; returns -1. */
int ms_err_prefix(ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ms_err_clear(ms_err *err);

#endif

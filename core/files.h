/* Small-file helpers shared by the loaders (topologies, models, routing traces): reading
 * a whole file with a size cap, and listing the names available in a data folder. */
#ifndef MS_FILES_H
#define MS_FILES_H

#include <stddef.h>

#include "core/err.h"

/* Does s end with suffix? */
int ms_ends_with(const char *s, const char *suffix);

/* Reads the whole file at path (at most max_bytes) into a malloc'd NUL-terminated buffer
 * and sets *len. On failure returns NULL with err naming `what` and the path ("cannot
 * open model file 'x.json': No such file or directory"); *missing is set when the file
 * does not exist. */
char *ms_read_file(const char *path, const char *what, long max_bytes, size_t *len,
                   int *missing, ms_err *err);

/* Writes the sorted, comma-separated NAMEs of every NAME<ext> in dir into buf ("(none)"
 * if there are none, "..." at the end if it does not fit). */
void ms_list_names(const char *dir, const char *ext, char *buf, size_t len);

/* Copies n bytes of s into dst (dlen bytes) for a message: non-printable bytes become '?',
 * text that does not fit is cut and ends in "...". */
void ms_safe_text(char *dst, size_t dlen, const char *s, size_t n);

/* Scans a decimal number at s: [sign] digits [. digits] [e [sign] digits]. Returns the
 * first character after it and sets *digits to whether it had any mantissa digits (and a
 * complete exponent); the caller decides what trailing text means. */
const char *ms_scan_decimal(const char *s, int *digits);

#endif

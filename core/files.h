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

#endif

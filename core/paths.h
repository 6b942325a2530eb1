/* Where moesched finds its data (topologies/, models/, traces/) and its default cost DB.
 * Data root: $MOESCHED_DATA if set, else the directory above the running executable when
 * it holds topologies/ (the source tree, for build/moesched), else the compiled-in
 * MS_SOURCE_DIR. Default DB: $MOESCHED_DB if set, else cost.db beside the executable. */
#ifndef MS_PATHS_H
#define MS_PATHS_H

#include <stddef.h>

/* Returns the data root (static storage, no trailing slash). */
const char *ms_data_dir(void);

/* Writes "<data root>/<sub>/<name><ext>" into buf; returns 0, or -1 if it does not fit. */
int ms_data_path(char *buf, size_t len, const char *sub, const char *name, const char *ext);

/* Returns the default cost database path (static storage). */
const char *ms_default_db(void);

#endif

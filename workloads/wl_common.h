/* Helpers shared by the graph builders (workloads/dep_infer.c, workloads/moe_train.c),
 * internal to workloads/. */
#ifndef WL_COMMON_H
#define WL_COMMON_H

#include <stdint.h>

#include "core/err.h"
#include "ir/tg.h"

/* A builder's task sink: the graph being built, the next task id, and whether an error
 * (message in *err) has ended the build. */
typedef struct wl_tasks {
    tg_graph *g;
    ms_err *err;
    int64_t next_id;
    int failed;
} wl_tasks;

/* Adds task t to k->g with id k->next_id (t->id is overwritten) and advances next_id.
 * Returns the id, or -1 with k->failed set on error; once k->failed is set, adds nothing
 * and returns -1, so that a builder checks only at the end. */
int64_t wl_add_task(wl_tasks *k, tg_task_spec *t);

/* Writes the label "L<layer>.mb<mb>[.<kind>][.c<chunk>]" (kind NULL: none; chunk < 0:
 * none) into buf of at least WL_LABEL_LEN bytes and returns buf. Builders label millions
 * of tasks at scale; this is several times faster than snprintf. */
#define WL_LABEL_LEN 64
char *wl_label(char *buf, int layer, int mb, const char *kind, int chunk);

#endif

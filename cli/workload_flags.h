/* The workload flags shared by `moesched sim` and `moesched graph`: which builder, model,
 * schedule parameters and routing, and building the graph from them. */
#ifndef CLI_WORKLOAD_FLAGS_H
#define CLI_WORKLOAD_FLAGS_H

#include <stdint.h>
#include <stdio.h>

#include "core/model.h"
#include "core/routing.h"
#include "core/topo.h"
#include "ir/tg.h"
#include "workloads/dep_infer.h"

typedef struct wl_flags {
    const char *workload; /* "dep" or NULL (no workload flags given) */
    const char *sched, *model, *routing, *order, *phase;
    int layers;           /* -1 = all */
    uint64_t seed;
    int ag, eg, seq, r1, ma, r2;
    int any;              /* some workload flag was given */
    model_cfg m;          /* filled by wl_flags_build */
    wl_dep_params p;
} wl_flags;

/* getopt_long entries for the workload flags (codes 1000..1099). */
#define WL_FLAG_OPTIONS                                                                    \
    {"workload", required_argument, 0, 1000}, {"sched", required_argument, 0, 1001},       \
        {"model", required_argument, 0, 1002}, {"ag", required_argument, 0, 1003},         \
        {"eg", required_argument, 0, 1004}, {"seq", required_argument, 0, 1005},           \
        {"r1", required_argument, 0, 1006}, {"ma", required_argument, 0, 1007},            \
        {"r2", required_argument, 0, 1008}, {"order", required_argument, 0, 1009},         \
        {"routing", required_argument, 0, 1010}, {"phase", required_argument, 0, 1011},    \
        {"layers", required_argument, 0, 1012}, {"seed", required_argument, 0, 1013}

void wl_flags_init(wl_flags *f);

/* Applies option `code` with argument `arg`: 1 if it was a workload flag, 0 if not,
 * -1 (message printed, prefixed by cmd) for a bad value. */
int wl_flags_apply(wl_flags *f, const char *cmd, int code, const char *arg);

/* Loads the model and routing and builds the graph for topology t. Returns NULL with the
 * message printed. *tokens receives the tokens the graph processes (for throughput). */
tg_graph *wl_flags_build(wl_flags *f, const char *cmd, const topo *t, double *tokens);

/* The flags' help text. */
void wl_flags_usage(FILE *out);

#endif

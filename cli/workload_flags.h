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
#include "workloads/moe_train.h"

typedef struct wl_flags {
    const char *workload; /* "dep" or NULL (no workload flags given) */
    const char *sched, *model, *routing, *order, *phase, *exchange;
    int layers;           /* -1 = all */
    uint64_t seed;
    int ag, eg, seq, r1, ma, r2;
    int any;              /* some workload flag was given */
    model_cfg m;          /* filled by wl_flags_build */
    wl_dep_params p;
    /* --workload train (docs/TRAINING.md) */
    int ep, esp, dp, batch, r; /* 0 = default (ep, esp, dp); batch 1; r 1 */
    double capacity;           /* capacity factor, default 1 */
    const char *rf, *rb;       /* fsmoe per-layer degrees: N or N,N,... (one per layer) */
    const char *pieces;        /* fsmoe AllReduce partition: GAP:BYTES,...,tail:BYTES */
    int rfv[WL_TRAIN_MAX_LAYERS], rbv[WL_TRAIN_MAX_LAYERS];
    wl_train_piece pv[WL_TRAIN_MAX_PIECES];
    wl_train_params tp;        /* filled by wl_flags_build for --workload train */
} wl_flags;

/* getopt_long entries for the workload flags (codes 1000..1099). */
#define WL_FLAG_OPTIONS                                                                    \
    {"workload", required_argument, 0, 1000}, {"sched", required_argument, 0, 1001},       \
        {"model", required_argument, 0, 1002}, {"ag", required_argument, 0, 1003},         \
        {"eg", required_argument, 0, 1004}, {"seq", required_argument, 0, 1005},           \
        {"r1", required_argument, 0, 1006}, {"ma", required_argument, 0, 1007},            \
        {"r2", required_argument, 0, 1008}, {"order", required_argument, 0, 1009},         \
        {"routing", required_argument, 0, 1010}, {"phase", required_argument, 0, 1011},    \
        {"layers", required_argument, 0, 1012}, {"seed", required_argument, 0, 1013},      \
        {"ep", required_argument, 0, 1014}, {"esp", required_argument, 0, 1015},           \
        {"dp", required_argument, 0, 1016}, {"batch", required_argument, 0, 1017},         \
        {"r", required_argument, 0, 1018}, {"capacity", required_argument, 0, 1019},       \
        {"rf", required_argument, 0, 1020}, {"rb", required_argument, 0, 1021},            \
        {"pieces", required_argument, 0, 1022}, {"exchange", required_argument, 0, 1023}

void wl_flags_init(wl_flags *f);

/* Applies option `code` with argument `arg`: 1 if it was a workload flag, 0 if not,
 * -1 (message printed, prefixed by cmd) for a bad value. */
int wl_flags_apply(wl_flags *f, const char *cmd, int code, const char *arg);

/* Is this a training workload (--workload train)? */
int wl_flags_is_train(const wl_flags *f);

/* Parses --rf/--rb ("N" or one value per layer) into out[layers]; 0 or -1 (printed). */
int wl_flags_degrees(const char *cmd, const char *flag, const char *s, int layers, int *out);

/* Parses --pieces ("GAP:BYTES,...", GAP an integer or "tail") into out; returns the count
 * or -1 (printed). */
int wl_flags_pieces(const char *cmd, const char *s, wl_train_piece *out, int max);

/* Loads the model and routing and builds the graph for topology t. Returns NULL with the
 * message printed. *tokens receives the tokens the graph processes (for throughput). */
tg_graph *wl_flags_build(wl_flags *f, const char *cmd, const topo *t, double *tokens);

/* The flags' help text. */
void wl_flags_usage(FILE *out);

#endif

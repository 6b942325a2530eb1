/* MoE training workloads: one training step (forward + backward) of attention + MoE layers
 * under DP, EP and ESP, as FSMoE structures it, and its baselines (dsmoe, tutel, fsmoe).
 * Builders only build; they never run a graph. Graph, streams, labels: docs/TRAINING.md. */
#ifndef WL_MOE_TRAIN_H
#define WL_MOE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/model.h"
#include "core/topo.h"
#include "ir/tg.h"

typedef enum wl_train_sched {
    WL_TRAIN_DSMOE, /* DeepSpeed-MoE: no pipelining (r = 1), gradient AllReduce after backward */
    WL_TRAIN_TUTEL, /* Tutel: one degree r for both passes and every layer, AllReduce after
                       backward */
    WL_TRAIN_FSMOE, /* FSMoE: per-layer forward and backward degrees, dense-gradient
                       AllReduce partitioned into inter-node idle windows of backward */
} wl_train_sched;

#define WL_TRAIN_MAX_LAYERS 128
#define WL_TRAIN_MAX_R 64     /* largest pipelining degree the builder accepts */
#define WL_TRAIN_MAX_PIECES 1024
#define WL_TRAIN_GRAD_BYTES 4 /* dense gradients are reduced in fp32 */
#define WL_TRAIN_TAIL (-1)    /* wl_train_piece.gap: after the last backward all-to-all */

/* One piece of the dense-gradient AllReduce. Pieces cover the dense gradients in
 * production order (layer L-1 first; in a layer: gate, attention output projection, QKV
 * projection), consecutively, piece 0 first. A piece sits in a backward gap of the
 * inter stream: gap g = (layer l, position k) is the gap just before the k-th inter-node
 * all-to-all of layer l's backward (k < 2 r_bwd[l]); wl_train_gap numbers them. */
typedef struct wl_train_piece {
    int gap;       /* wl_train_gap(...) or WL_TRAIN_TAIL */
    int64_t bytes; /* > 0, a multiple of WL_TRAIN_GRAD_BYTES */
} wl_train_piece;

typedef struct wl_train_params {
    wl_train_sched sched;
    int ep, esp, dp;  /* 0 = default: esp = GPUs per node, ep = ranks / esp, dp = ranks */
    int batch;        /* samples per rank per step */
    int seq;          /* tokens per sample */
    double capacity;  /* capacity factor c: a rank routes ceil(c * top_k * tokens) slots */
    int r;            /* dsmoe (must be 1) and tutel: degree of every layer, both passes;
                         fsmoe: the degree of layers that r_fwd / r_bwd leave out */
    const int *r_fwd, *r_bwd; /* fsmoe: [layers] per-layer degrees, or NULL = r */
    const wl_train_piece *pieces; /* fsmoe: the AllReduce partition; NULL = one piece in
                                     the tail (as dsmoe and tutel) */
    int npieces;
} wl_train_params;

/* Fills p: fsmoe, default parallelism, batch 1, seq 1024, capacity 1.0, r = 1. */
void wl_train_defaults(wl_train_params *p);

/* Resolves the defaults of ep, esp and dp for t and checks the parallel layout: esp divides
 * the GPUs per node, ep * esp = ranks, experts divisible by ep, FFN hidden divisible by
 * esp, dp = ranks. Fills *ep, *esp, *dp. Errors name the flag. */
int wl_train_layout(const model_cfg *m, const topo *t, const wl_train_params *p, int *ep,
                    int *esp, int *dp, ms_err *err);

/* Builds and finalizes the step's graph. Errors (NULL with err set) name the flag, the
 * layer or the piece: zero sizes, a bad layout, unknown schedule, degrees out of range,
 * pieces that do not cover the gradients or reduce one before it is produced. */
tg_graph *wl_train_build(const model_cfg *m, const topo *t, const wl_train_params *p,
                         ms_err *err);

/* Number of the gap before the k-th backward all-to-all of layer l, for the backward
 * degrees rb[0..layers) (NULL = every layer r). Gaps are numbered in time order (layer
 * L-1 first). */
int wl_train_gap(int layers, const int *rb, int r, int l, int k);
/* The layer and position of gap g (inverse of wl_train_gap); -1 when out of range. */
int wl_train_gap_where(int layers, const int *rb, int r, int g, int *l, int *k);

/* Dense-gradient bytes of one layer (gate + attention projections, fp32) and of each of
 * its three parts in production order (gate, output projection, QKV projection). */
int64_t wl_train_layer_grad_bytes(const model_cfg *m);
void wl_train_layer_grad_parts(const model_cfg *m, int64_t part[3]);

/* Per-rank token slots one MoE layer routes: ceil(capacity * top_k * batch * seq). */
int64_t wl_train_slots(const model_cfg *m, const wl_train_params *p);

/* Tokens one step processes over all ranks (ranks * batch * seq). */
double wl_train_tokens(const wl_train_params *p, const topo *t);

const char *wl_train_sched_name(wl_train_sched s);
int wl_train_sched_find(const char *name); /* -1 if unknown */

#endif

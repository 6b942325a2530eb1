/* MoE inference workloads under disaggregated expert parallelism (DEP) and its baselines:
 * (model, topology, schedule parameters) -> task graph. Builders only build; they never
 * run a graph. Graph structure, dependencies and labels: docs/WORKLOADS.md. */
#ifndef WL_DEP_INFER_H
#define WL_DEP_INFER_H

#include "core/err.h"
#include "core/model.h"
#include "core/routing.h"
#include "core/topo.h"
#include "ir/tg.h"

typedef enum wl_dep_sched {
    WL_DEP_NAIVE,  /* one micro-batch, no chunking, nothing overlapped */
    WL_DEP_PPPIPE, /* MegaScale-Infer ping-pong: r1 micro-batches, shared expert inside
                      attention, no token chunking */
    WL_DEP_FINDEP, /* r1 micro-batches x r2 token chunks, shared expert overlapping the
                      expert path, AG order AASS or ASAS */
    WL_DEP_EP,     /* colocated expert parallelism: every rank runs attention and E/P
                      experts, all-to-all dispatch and combine */
} wl_dep_sched;

typedef enum wl_phase { WL_PREFILL, WL_DECODE } wl_phase;
typedef enum wl_order { WL_ORDER_ASAS, WL_ORDER_AASS } wl_order;

typedef struct wl_dep_params {
    wl_dep_sched sched;
    int ag, eg;      /* attention-group and expert-group ranks (ep: ag = all, eg = 0) */
    int seq;         /* S: tokens per sample (prefill) or KV-cache length (decode) */
    int r1;          /* micro-batches */
    int ma;          /* samples per micro-batch per attention rank */
    int r2;          /* token chunks per micro-batch (findep; 1 otherwise) */
    wl_order order;  /* findep's AG order of attention and shared segments */
    wl_phase phase;
    const routing *route; /* expert load; NULL = uniform */
} wl_dep_params;

/* Fills p with the defaults: r1 = ma = r2 = 1, ASAS, prefill, uniform routing. */
void wl_dep_defaults(wl_dep_params *p);

/* Builds and finalizes the graph. Errors (returned as NULL with err set) name the flag:
 * ag + eg not equal to the topology's ranks, sizes that are zero or negative, r2 that
 * does not divide the tokens of a micro-batch, and so on. */
tg_graph *wl_dep_build(const model_cfg *m, const topo *t, const wl_dep_params *p,
                       ms_err *err);

/* Tokens one graph processes: samples x S in prefill (as FinDEP counts), samples in
 * decode (one new token per sample). Throughput = this / makespan. */
double wl_dep_tokens(const wl_dep_params *p, const topo *t);

const char *wl_dep_sched_name(wl_dep_sched s);
int wl_dep_sched_find(const char *name); /* -1 if unknown */

#endif

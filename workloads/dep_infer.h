/* MoE inference workloads under disaggregated expert parallelism (DEP) and its baselines:
 * (model, topology, schedule parameters) -> task graph. Builders only build; they never
 * run a graph. Graph structure, dependencies and labels: docs/WORKLOADS.md. */
#ifndef WL_DEP_INFER_H
#define WL_DEP_INFER_H

#include <stddef.h>
#include <stdint.h>

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
/* findep's AG order of the r1 attention segments A0..A(r1-1) and shared segments
 * S0..S(r1-1) of a MoE layer: ASAS (A0 S0 A1 S1 ...), AASS (all A, then all S), or any
 * other valid interleaving (WL_ORDER_CUSTOM, given by wl_dep_params.order_mask). Valid:
 * the As in index order, the Ss in index order, and each Si after its Ai, i.e. every
 * prefix holds at least as many As as Ss. There are Catalan(r1) = C(2r1, r1)/(r1+1) of
 * them (wl_order_count). Dense layers always run A S A S. */
typedef enum wl_order { WL_ORDER_ASAS, WL_ORDER_AASS, WL_ORDER_CUSTOM } wl_order;

#define WL_ORDER_MAX_R1 32 /* custom orders: 2*r1 positions fit a uint64_t */

/* How DEP builders (naive, pppipe, findep) represent an A2E or E2A exchange: one xchg
 * task per rank listing a transfer per peer (pairwise: exact per-pair rendezvous, but
 * ag x eg transfers twice per chunk), or one m2n collective piece per rank sharing one
 * count vector (ir/tg.h): O(ag + eg) per chunk. auto: m2n above WL_M2N_AUTO_PAIRS pairs. */
typedef enum wl_exchange { WL_EXCHANGE_AUTO, WL_EXCHANGE_PAIRWISE, WL_EXCHANGE_M2N } wl_exchange;
#define WL_M2N_AUTO_PAIRS 16384 /* ag x eg; e.g. 128 x 128; pairwise above this takes GBs */

/* Parses --exchange: auto | pairwise | m2n. Errors name the flag. */
int wl_exchange_parse(const char *s, wl_exchange *x, ms_err *err);
const char *wl_exchange_name(wl_exchange x);
typedef struct wl_dep_params {
    wl_dep_sched sched;
    int ag, eg;      /* attention-group and expert-group ranks (ep: ag = all, eg = 0) */
    int seq;         /* S: tokens per sample (prefill) or KV-cache length (decode) */
    int r1;          /* micro-batches */
    int ma;          /* samples per micro-batch per attention rank */
    int r2;          /* token chunks per micro-batch (findep; 1 otherwise) */
    wl_order order;  /* findep's AG order of attention and shared segments */
    uint64_t order_mask; /* WL_ORDER_CUSTOM: bit k (k < 2*r1) set = the k-th AG segment of
                            a MoE layer is attention, clear = shared; ignored otherwise */
    wl_phase phase;
    const routing *route; /* expert load; NULL = uniform */
    wl_exchange exchange; /* A2E/E2A representation (DEP builders; ep is always pairwise) */
} wl_dep_params;

/* Whether params p build m2n exchanges (auto resolved; never for ep). */
int wl_dep_uses_m2n(const wl_dep_params *p);

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

/* ---- AG orders ---------------------------------------------------------------------- */

/* Is mask a valid order of 2*r1 segments (bits at and above 2*r1 clear, r1 As, every
 * prefix with at least as many As as Ss)? r1 must be 1..WL_ORDER_MAX_R1. */
int wl_order_valid(uint64_t mask, int r1);

/* The mask of order (a named one expanded for r1, or mask itself for WL_ORDER_CUSTOM);
 * 0 when r1 is outside 1..WL_ORDER_MAX_R1. */
uint64_t wl_order_mask(wl_order order, uint64_t mask, int r1);

/* Number of valid orders for r1 (Catalan(r1)); -1 above WL_ORDER_MAX_R1. */
long long wl_order_count(int r1);

/* Parses --order: "asas", "aass", or a string of 2*r1 letters A and S (e.g. "AASASS").
 * Fills *order and *mask (0 for the named ones). Errors name --order. */
int wl_order_parse(const char *s, int r1, wl_order *order, uint64_t *mask, ms_err *err);

/* Writes the order as --order takes it: "asas", "aass", or the A/S string. */
void wl_order_format(wl_order order, uint64_t mask, int r1, char *buf, size_t n);

/* Buffer size that holds any wl_order_format output. */
#define WL_ORDER_STRLEN (2 * WL_ORDER_MAX_R1 + 1)

const char *wl_dep_sched_name(wl_dep_sched s);
int wl_dep_sched_find(const char *name); /* -1 if unknown */

#endif

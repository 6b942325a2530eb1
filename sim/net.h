/* Network models behind one small table of function pointers. The engine asks a model
 * when a point-to-point transfer ends and how long a collective takes; a model may answer
 * a transfer's end at once (analytic) or later through next_time/advance (flow-level,
 * where ends move as flows come and go). Time is double seconds, as in sim.h. */
#ifndef NET_H
#define NET_H

#include <stdint.h>

#include "core/err.h"
#include "core/topo.h"
#include "ir/tg.h"

/* An m2n exchange (ir/tg.h) as the network models see it: senders src[0..nsrc), receivers
 * dst[0..ndst), both ascending and disjoint; counts per receiver (per = TG_M2N_PER_RECV)
 * or per sender (TG_M2N_PER_SEND), spread by tg_m2n_share; unit_bytes per count unit. */
typedef struct net_m2n {
    const int32_t *src, *dst;
    uint32_t nsrc, ndst;
    const int64_t *counts;
    int per;
    double unit_bytes;
} net_m2n;

typedef struct net_ops {
    const char *name;
    /* Creates the model's state for a topology; NULL with err set on failure. */
    void *(*create)(const topo *t, ms_err *err);
    void (*free)(void *self);
    /* Transfer `id` of `bytes` from src to dst begins at now_s. Returns its end time
     * (>= now_s) when known now, a negative number if advance() will report it, or NaN
     * when the model cannot take the transfer (out of memory): the run then fails. */
    double (*xfer_start)(void *self, double now_s, uint32_t id, int src, int dst,
                         double bytes);
    /* Duration in seconds of a collective of `op` (TG_OP_ALLREDUCE, ...) whose members
     * are ranks[0..n), with per-rank `bytes` as in docs/IR.md. */
    double (*coll_time)(void *self, tg_op op, const int32_t *ranks, int n, double bytes);
    /* An m2n exchange `id` (an id space disjoint from transfers': the engine's choice)
     * begins at now_s with every member present. Returns its end (>= now_s), a negative
     * number if advance() will report id, or NaN when the model cannot take it (out of
     * memory). */
    double (*m2n_start)(void *self, double now_s, uint32_t id, const net_m2n *x);
    /* Earliest pending transfer end the model owns, or INFINITY (NULL: never any). */
    double (*next_time)(void *self);
    /* Moves to now_s and writes up to max ids of transfers ending at now_s into done;
     * returns how many (NULL: never any). */
    int (*advance)(void *self, double now_s, uint32_t *done, int max);
} net_ops;

/* The analytic model: a transfer costs route latency + bytes / bottleneck bandwidth, with
 * no contention. Same node: the GPU links (2 * intra latency, intra bandwidth); across
 * nodes: GPU link, NIC, fabric, NIC, GPU link (latencies summed, bandwidth the smaller of
 * the intra link and the GPU's NIC share). src == dst costs nothing. Collectives follow
 * ring algorithms in nccl-tests' terms (docs/SIM.md). */
extern const net_ops net_analytic;

/* The flow-level model: transfers share links max-min fairly (docs/SIM.md). */
extern const net_ops net_flow;

/* Fills x with the exchange of which m2n task t of g is a piece; side holds
 * 2 * (g->nranks + 1) ranks (x's src and dst point into it). */
void net_m2n_of_task(const tg_graph *g, uint32_t t, int32_t *side, net_m2n *x);

/* The analytic model's time for the m2n exchange of which task `task` of g is a piece (the
 * slowest pair: latency + bytes / bandwidth, no contention), for bounds and solvers;
 * NaN when out of memory. */
double net_m2n_task_time(const topo *t, const tg_graph *g, uint32_t task);

/* Looks a model up by name ("analytic", "flow"); NULL if unknown. */
const net_ops *net_find(const char *name);

#endif

/* Pieces the network models share inside sim/ (not part of the public API): the analytic
 * collective formulas, which the flow model reuses because it does not model collectives
 * as flows. */
#ifndef NET_INTERNAL_H
#define NET_INTERNAL_H

#include <stdint.h>

#include "core/topo.h"
#include "ir/tg.h"
#include "sim/net.h"

/* Route latencies as the analytic model sums them (seconds): up to the node switch and
 * down inside a node (2 x intra); GPU link, NIC, NIC, GPU link across nodes
 * (2 x intra + 2 x NIC). */
static inline double net_local_latency_s(const topo *t) { return 2 * t->intra.latency_s; }
static inline double net_cross_latency_s(const topo *t)
{
    return 2 * t->intra.latency_s + 2 * t->nic.latency_s;
}

/* Bottleneck of a cross-node route, per direction: the intra link or the GPU's share of
 * its node's NICs. */
static inline double net_cross_bw(const topo *t)
{
    double nic = t->nodes > 1 ? topo_gpu_nic_bw(t) : t->intra.bw_bytes_per_s;
    return t->intra.bw_bytes_per_s < nic ? t->intra.bw_bytes_per_s : nic;
}

/* Duration in seconds of a ring collective under the analytic model (docs/SIM.md,
 * "analytic"): `op` over members ranks[0..n) with per-rank `bytes`. */
double net_analytic_coll_time(const topo *t, tg_op op, const int32_t *ranks, int n,
                              double bytes);

/* ---- m2n exchanges (sim/net_m2n.c) ----
 * What an m2n puts on the links, computed from its counts in O(members + same-node
 * pairs), never pair by pair. Link loads are bytes; a pair on one node uses the sender's
 * and receiver's GPU links only, a pair across nodes also both nodes' NICs. */
typedef struct net_m2n_load {
    double *src_total, *src_cross; /* [nsrc] bytes each sender sends (all / to other nodes) */
    double *dst_total, *dst_cross; /* [ndst] bytes each receiver receives */
    double total_bytes;            /* the whole exchange */
    double pairs;                  /* pairs that move at least one unit */
    int any_cross;                 /* some pair with units crosses nodes */
} net_m2n_load;

/* Fills ld (arrays allocated here, released by net_m2n_load_free). -1 when out of memory. */
int net_m2n_loads(const topo *t, const net_m2n *x, net_m2n_load *ld);
void net_m2n_load_free(net_m2n_load *ld);

/* The analytic model's m2n time: what its pairwise expansion costs there, i.e. the slowest
 * pair's route latency + bytes / bottleneck bandwidth (no contention), O(members x GPUs
 * per node). 0 when no pair moves anything. */
double net_m2n_analytic_time(const topo *t, const net_m2n *x);

#endif

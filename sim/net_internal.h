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

/* Duration in seconds of a ring collective under the analytic model (docs/SIM.md,
 * "analytic"): `op` over members ranks[0..n) with per-rank `bytes`. */
double net_analytic_coll_time(const topo *t, tg_op op, const int32_t *ranks, int n,
                              double bytes);

#endif

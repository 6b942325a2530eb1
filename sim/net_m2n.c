/* What an m2n exchange (ir/tg.h) puts on the network, from its counts alone: per-rank
 * totals, the part of them that crosses nodes, the slowest pair. Each count is spread over
 * the other side by tg_m2n_share, so the other side's totals come from a difference array
 * over cyclic intervals, and only pairs on one node (at most GPUs-per-node per rank) are
 * visited one by one: O(members x GPUs per node) per exchange, never O(senders x
 * receivers). Shared by the analytic and the flow models (net_internal.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/net_internal.h"

/* The exchange seen from its counting side C (the side whose ranks have counts) and the
 * other side O: units(o, c) = tg_m2n_share(counts[c], nO, o, c). */
typedef struct sides {
    const int32_t *c, *o;
    uint32_t nc, no;
    const int64_t *counts;
} sides;

static sides sides_of(const net_m2n *x)
{
    if (x->per == TG_M2N_PER_RECV)
        return (sides){.c = x->dst, .nc = x->ndst, .o = x->src, .no = x->nsrc, .counts = x->counts};
    return (sides){.c = x->src, .nc = x->nsrc, .o = x->dst, .no = x->ndst, .counts = x->counts};
}

/* First index k of o[0..n) with o[k] >= r (o ascending). */
static uint32_t lower_bound(const int32_t *o, uint32_t n, int32_t r)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (o[mid] < r) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* The other side's ranks on the node of rank r: indices [*lo, *hi). */
static void same_node(const topo *t, const sides *s, int32_t r, uint32_t *lo, uint32_t *hi)
{
    int32_t g = t->gpus_per_node, first = r / g * g;
    *lo = lower_bound(s->o, s->no, first);
    *hi = lower_bound(s->o, s->no, first + g);
}

void net_m2n_load_free(net_m2n_load *ld)
{
    free(ld->src_total);
    memset(ld, 0, sizeof *ld);
}

int net_m2n_loads(const topo *t, const net_m2n *x, net_m2n_load *ld)
{
    memset(ld, 0, sizeof *ld);
    sides s = sides_of(x);
    size_t n = (size_t)x->nsrc + x->ndst;
    double *buf = calloc(2 * n + s.no + 1, sizeof *buf);
    if (!buf) return -1;
    ld->src_total = buf;
    ld->src_cross = buf + x->nsrc;
    ld->dst_total = buf + 2 * (size_t)x->nsrc;
    ld->dst_cross = ld->dst_total + x->ndst;
    double *diff = buf + 2 * n; /* [no + 1] extras over cyclic intervals */
    double *c_total = x->per == TG_M2N_PER_RECV ? ld->dst_total : ld->src_total;
    double *c_cross = x->per == TG_M2N_PER_RECV ? ld->dst_cross : ld->src_cross;
    double *o_total = x->per == TG_M2N_PER_RECV ? ld->src_total : ld->dst_total;
    double *o_cross = x->per == TG_M2N_PER_RECV ? ld->src_cross : ld->dst_cross;
    double base = 0, units = 0, pairs = 0;
    for (uint32_t c = 0; c < s.nc; c++) {
        int64_t k = s.counts[c], q = k / s.no, rem = k % s.no;
        units += (double)k;
        pairs += (double)(k < (int64_t)s.no ? k : (int64_t)s.no);
        base += (double)q;
        c_total[c] = (double)k;
        if (rem == 0) continue;
        uint32_t start = c % s.no, stop = start + (uint32_t)rem;
        diff[start] += 1;
        if (stop <= s.no) {
            diff[stop] -= 1;
        } else { /* wraps: [start, no) and [0, stop - no) */
            diff[s.no] -= 1;
            diff[0] += 1;
            diff[stop - s.no] -= 1;
        }
    }
    double run = 0;
    for (uint32_t o = 0; o < s.no; o++) {
        run += diff[o];
        o_total[o] = base + run;
    }
    /* Pairs on one node: subtract them from the cross-node parts. */
    memcpy(c_cross, c_total, s.nc * sizeof *c_cross);
    memcpy(o_cross, o_total, s.no * sizeof *o_cross);
    for (uint32_t c = 0; c < s.nc; c++) {
        uint32_t lo, hi;
        same_node(t, &s, s.c[c], &lo, &hi);
        for (uint32_t o = lo; o < hi; o++) {
            double u = (double)tg_m2n_share(s.counts[c], s.no, o, c);
            c_cross[c] -= u;
            o_cross[o] -= u;
        }
    }
    double cross = 0;
    for (uint32_t c = 0; c < s.nc; c++) {
        cross += c_cross[c];
        c_total[c] *= x->unit_bytes;
        c_cross[c] *= x->unit_bytes;
    }
    for (uint32_t o = 0; o < s.no; o++) {
        o_total[o] *= x->unit_bytes;
        o_cross[o] *= x->unit_bytes;
    }
    ld->total_bytes = units * x->unit_bytes;
    ld->pairs = pairs;
    ld->any_cross = cross > 0;
    return 0;
}

double net_m2n_analytic_time(const topo *t, const net_m2n *x)
{
    sides s = sides_of(x);
    /* The largest units of a pair on one node and across nodes; -1: no such pair. */
    int64_t same_max = -1, cross_max = -1;
    for (uint32_t c = 0; c < s.nc; c++) {
        int64_t k = s.counts[c], q = k / s.no, rem = k % s.no;
        uint32_t lo, hi;
        same_node(t, &s, s.c[c], &lo, &hi);
        for (uint32_t o = lo; o < hi; o++) {
            int64_t u = tg_m2n_share(k, s.no, o, c);
            if (u > same_max) same_max = u;
        }
        uint32_t nsame = hi - lo;
        if (nsame == s.no) continue; /* no pair across nodes */
        int64_t u = q;
        if (rem > (int64_t)nsame) {
            u = q + 1; /* more extras than same-node ranks: one lands across nodes */
        } else {
            for (int64_t e = 0; e < rem; e++) {
                uint32_t o = (uint32_t)((c % s.no + (uint64_t)e) % s.no);
                if (o < lo || o >= hi) {
                    u = q + 1;
                    break;
                }
            }
        }
        if (u > cross_max) cross_max = u;
    }
    double tm = 0;
    if (same_max >= 0)
        tm = net_local_latency_s(t) + (double)same_max * x->unit_bytes / t->intra.bw_bytes_per_s;
    if (cross_max >= 0)
        tm = fmax(tm, net_cross_latency_s(t) + (double)cross_max * x->unit_bytes / net_cross_bw(t));
    return tm;
}

void net_m2n_of_task(const tg_graph *g, uint32_t t, int32_t *side, net_m2n *x)
{
    int32_t *dst = side + g->nranks + 1;
    *x = (net_m2n){.src = side, .dst = dst, .unit_bytes = (double)tg_task_args(g, t)[1]};
    tg_m2n_sides(g, t, side, &x->nsrc, dst, &x->ndst, &x->counts, &x->per);
}

double net_m2n_task_time(const topo *t, const tg_graph *g, uint32_t task)
{
    int32_t *side = malloc(2 * ((size_t)g->nranks + 1) * sizeof *side);
    if (!side) return NAN;
    net_m2n x;
    net_m2n_of_task(g, task, side, &x);
    double tm = net_m2n_analytic_time(t, &x);
    free(side);
    return tm;
}

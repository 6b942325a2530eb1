/* A lower bound on the makespan of any schedule of a task graph's tasks under the same
 * costs (docs/SOLVER.md, "Bound"): the busiest stream's total of contention-free task
 * durations, and the longest path through dependencies and rendezvous, whichever is
 * larger. Valid for the analytic and the flow network models alike. */
#include <math.h>
#include <stdlib.h>

#include "solver/solve.h"

/* The shortest time any network model here can give one transfer: route latency plus bytes
 * at the fastest single-flow rate of the route. Inside a node both models use the GPU link;
 * across nodes the analytic model uses the GPU's share of the node's NICs and the flow
 * model lets a lone flow take a whole NIC, so the faster of the two is used. */
static double xfer_lb_s(const topo *t, int src, int dst, double bytes)
{
    if (src == dst) return 0;
    if (topo_node_of(t, src) == topo_node_of(t, dst))
        return 2 * t->intra.latency_s + bytes / t->intra.bw_bytes_per_s;
    double nic = fmax(t->nic.bw_bytes_per_s, topo_gpu_nic_bw(t));
    double bw = fmin(t->intra.bw_bytes_per_s, nic);
    return 2 * t->intra.latency_s + 2 * t->nic.latency_s + bytes / bw;
}

/* Duration of every task without contention: compute from the cost DB, delays as given,
 * an xchg its longest transfer, a collective its analytic (ring) time, which both network
 * models use. xfer_s[x] gets each transfer's time. */
static int durations(const tg_graph *g, const topo *t, const cdb *db, double *dur, double *xfer_s,
                     ms_err *err)
{
    void *an = net_analytic.create(t, err);
    if (!an) return -1;
    double *m2n_s = malloc(((size_t)g->ncoll + 1) * sizeof *m2n_s);
    if (!m2n_s) {
        net_analytic.free(an);
        return ms_err_set(err, "out of memory");
    }
    for (uint32_t c = 0; c < g->ncoll; c++) m2n_s[c] = NAN;
    int rc = 0;
    for (uint32_t k = 0; k < g->ntasks && rc == 0; k++) {
        const tg_op_info *info = tg_op_get((tg_op)g->op[k]);
        dur[k] = 0;
        switch (info->kind) {
        case TG_KIND_DELAY:
            dur[k] = tg_task_delay_us(g, k) * 1e-6;
            break;
        case TG_KIND_COMPUTE: {
            if (!db) {
                rc = ms_err_set(err, "task %lld: op %s needs a cost database", (long long)g->id[k],
                                info->name);
                break;
            }
            int nargs = (int)(g->arg_off[k + 1] - g->arg_off[k]);
            ms_err e2 = {{0}};
            if (cdb_time(db, t->device, info->name, tg_task_args(g, k), nargs, &dur[k], &e2) != 0)
                rc = ms_err_set(err, "task %lld: %s", (long long)g->id[k], e2.msg);
            break;
        }
        case TG_KIND_XCHG:
            for (uint32_t x = g->xfer_off[k]; x < g->xfer_off[k + 1]; x++) {
                int src = g->xfer_send[x] ? g->rank[k] : g->xfer_peer[x];
                int dst = g->xfer_send[x] ? g->xfer_peer[x] : g->rank[k];
                xfer_s[x] = xfer_lb_s(t, src, dst, (double)g->xfer_bytes[x]);
                if (xfer_s[x] > dur[k]) dur[k] = xfer_s[x];
            }
            break;
        case TG_KIND_COLL: {
            const int64_t *a = tg_task_args(g, k);
            uint32_t grp = (uint32_t)a[0];
            const int32_t *ranks = g->group_ranks + g->group_off[grp];
            int n = (int)(g->group_off[grp + 1] - g->group_off[grp]);
            if (g->op[k] == TG_OP_M2N) { /* once per exchange, not per piece */
                double *c = &m2n_s[g->coll_of[k]];
                if (isnan(*c) && isnan(*c = net_m2n_task_time(t, g, k)))
                    rc = ms_err_set(err, "out of memory");
                dur[k] = *c;
                break;
            }
            dur[k] = net_analytic.coll_time(an, (tg_op)g->op[k], ranks, n, (double)a[1]);
            break;
        }
        }
    }
    net_analytic.free(an);
    free(m2n_s);
    return rc;
}

/* Longest path over nodes S(k) (start), E(k) (end) and C(c) (collective instance start):
 *   E(d) -> S(k), 0          for every dependency d of k (stream order is not used)
 *   S(k) -> E(k), dur[k]
 *   S(b) -> E(k), xfer_s[x]  for each transfer x of xchg k whose peer task is b
 *   S(k) -> C(c), 0 and C(c) -> E(k), dur[k] for each member k of collective c.
 * Kahn's algorithm; the validator guarantees no cycle in a finalized graph. */
static int critical_path(const tg_graph *g, const double *dur, const double *xfer_s, double *out_s,
                         ms_err *err)
{
    uint32_t n = g->ntasks, nc = g->ncoll;
    size_t nodes = 2 * (size_t)n + nc;
    size_t nedges = 0;
    for (uint32_t k = 0; k < n; k++) {
        nedges += g->dep_off[k + 1] - g->dep_off[k];
        nedges += 1 + (g->xfer_off[k + 1] - g->xfer_off[k]);
        if (g->coll_of && g->coll_of[k] != TG_NONE) nedges += 2;
    }
    uint32_t *off = calloc(nodes + 1, sizeof *off),
             *to = malloc((nedges ? nedges : 1) * sizeof *to);
    double *w = malloc((nedges ? nedges : 1) * sizeof *w);
    uint32_t *indeg = calloc(nodes ? nodes : 1, sizeof *indeg),
             *queue = malloc((nodes ? nodes : 1) * sizeof *queue);
    double *dist = calloc(nodes ? nodes : 1, sizeof *dist);
    int rc = 0;
    if (!off || !to || !w || !indeg || !queue || !dist) {
        rc = ms_err_set(err, "out of memory for the bound of %u tasks", n);
        goto done;
    }
#define S_(k) ((size_t)(k))
#define E_(k) ((size_t)n + (k))
#define C_(c) (2 * (size_t)n + (c))
    /* two passes: count out-degrees, then fill */
    for (int pass = 0; pass < 2; pass++) {
        size_t *fill = NULL;
        if (pass == 1) {
            for (size_t i = 0; i < nodes; i++) off[i + 1] += off[i];
            fill = malloc((nodes ? nodes : 1) * sizeof *fill);
            if (!fill) {
                rc = ms_err_set(err, "out of memory for the bound of %u tasks", n);
                goto done;
            }
            for (size_t i = 0; i < nodes; i++) fill[i] = off[i];
        }
#define EDGE(a, b, wt)                                                                             \
    do {                                                                                           \
        if (pass == 0) {                                                                           \
            off[(a) + 1]++;                                                                        \
        } else {                                                                                   \
            to[fill[a]] = (uint32_t)(b);                                                           \
            w[fill[a]++] = (wt);                                                                   \
            indeg[b]++;                                                                            \
        }                                                                                          \
    } while (0)
        for (uint32_t k = 0; k < n; k++) {
            for (uint32_t i = g->dep_off[k]; i < g->dep_off[k + 1]; i++)
                EDGE(E_(g->dep[i]), S_(k), 0.0);
            EDGE(S_(k), E_(k), dur[k]);
            for (uint32_t x = g->xfer_off[k]; x < g->xfer_off[k + 1]; x++) {
                uint32_t b = g->xfer_task[g->xfer_match[x]];
                if (b != k) EDGE(S_(b), E_(k), xfer_s[x]);
            }
            if (g->coll_of && g->coll_of[k] != TG_NONE) {
                EDGE(S_(k), C_(g->coll_of[k]), 0.0);
                EDGE(C_(g->coll_of[k]), E_(k), dur[k]);
            }
        }
#undef EDGE
        free(fill);
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < nodes; i++)
        if (indeg[i] == 0) queue[tail++] = (uint32_t)i;
    double best = 0;
    while (head < tail) {
        uint32_t u = queue[head++];
        if (dist[u] > best) best = dist[u];
        for (uint32_t e = off[u]; e < off[u + 1]; e++) {
            uint32_t v = to[e];
            if (dist[u] + w[e] > dist[v]) dist[v] = dist[u] + w[e];
            if (--indeg[v] == 0) queue[tail++] = v;
        }
    }
    if (tail != nodes) rc = ms_err_set(err, "the graph's dependencies and rendezvous form a cycle");
    *out_s = best;
#undef S_
#undef E_
#undef C_
done:
    free(off), free(to), free(w), free(indeg), free(queue), free(dist);
    return rc;
}

int solve_bound(const tg_graph *g, const topo *t, const cdb *db, double *bound_s, ms_err *err)
{
    if (!g || !t || !bound_s)
        return ms_err_set(err, "solve_bound: missing graph, topology or output");
    if (!g->finalized) return ms_err_set(err, "solve_bound: the graph is not finalized");
    *bound_s = 0;
    uint32_t n = g->ntasks;
    double *dur = calloc(n ? n : 1, sizeof *dur);
    double *xfer_s = calloc(g->nxfers ? g->nxfers : 1, sizeof *xfer_s);
    double *stream_s = calloc(g->nstreams ? g->nstreams : 1, sizeof *stream_s);
    int rc = 0;
    if (!dur || !xfer_s || !stream_s) {
        rc = ms_err_set(err, "out of memory for the bound of %u tasks", n);
        goto done;
    }
    if ((rc = durations(g, t, db, dur, xfer_s, err)) != 0) goto done;
    double busiest = 0, path = 0;
    for (uint32_t k = 0; k < n; k++) stream_s[g->stream[k]] += dur[k];
    for (uint32_t s = 0; s < g->nstreams; s++)
        if (stream_s[s] > busiest) busiest = stream_s[s];
    if ((rc = critical_path(g, dur, xfer_s, &path, err)) != 0) goto done;
    *bound_s = fmax(busiest, path);
done:
    free(dur), free(xfer_s), free(stream_s);
    return rc;
}

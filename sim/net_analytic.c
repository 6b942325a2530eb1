/* The analytic network model: latency + bytes / bottleneck bandwidth per transfer, ring
 * collectives in nccl-tests' algbw/busbw terms, no contention. See net.h, docs/SIM.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/net.h"
#include "sim/net_internal.h"

typedef struct analytic {
    topo t;
    double cross_bw_bytes_per_s; /* bottleneck of a cross-node route, per direction */
    double cross_latency_s;      /* GPU link + NIC + NIC + GPU link */
    double local_latency_s;      /* GPU link up + down inside a node */
} analytic;

static void *analytic_create(const topo *t, ms_err *err)
{
    if (topo_check(t, err) != 0) return NULL;
    analytic *a = calloc(1, sizeof *a);
    if (!a) {
        ms_err_set(err, "out of memory creating the analytic network model");
        return NULL;
    }
    a->t = *t;
    a->local_latency_s = net_local_latency_s(t);
    a->cross_latency_s = net_cross_latency_s(t);
    a->cross_bw_bytes_per_s = net_cross_bw(t);
    return a;
}

static void analytic_free(void *self) { free(self); }

static double analytic_xfer(void *self, double now_s, uint32_t id, int src, int dst,
                            double bytes)
{
    (void)id;
    const analytic *a = self;
    if (src == dst) return now_s;
    if (topo_node_of(&a->t, src) == topo_node_of(&a->t, dst))
        return now_s + a->local_latency_s + bytes / a->t.intra.bw_bytes_per_s;
    return now_s + a->cross_latency_s + bytes / a->cross_bw_bytes_per_s;
}

/* Ring collective: each of `steps` steps pays the slowest hop's latency; the data term is
 * what each rank must receive over the bottleneck link. */
double net_analytic_coll_time(const topo *t, tg_op op, const int32_t *ranks, int n,
                              double bytes)
{
    if (n <= 1) return 0;
    int one_node = 1;
    for (int i = 1; i < n; i++)
        if (topo_node_of(t, ranks[i]) != topo_node_of(t, ranks[0])) one_node = 0;
    double bw = one_node ? t->intra.bw_bytes_per_s : net_cross_bw(t);
    double lat = one_node ? net_local_latency_s(t) : net_cross_latency_s(t);
    switch (op) {
    case TG_OP_ALLREDUCE: /* busbw factor 2(n-1)/n on the buffer */
        return 2.0 * (n - 1) * lat + 2.0 * (n - 1) / n * bytes / bw;
    case TG_OP_ALLGATHER:     /* receive n-1 pieces of `bytes` */
    case TG_OP_REDUCESCATTER: /* send n-1 pieces of `bytes` */
        return (double)(n - 1) * lat + (double)(n - 1) * bytes / bw;
    default:
        return 0;
    }
}

static double analytic_coll(void *self, tg_op op, const int32_t *ranks, int n, double bytes)
{
    const analytic *a = self;
    return net_analytic_coll_time(&a->t, op, ranks, n, bytes);
}

static double analytic_m2n(void *self, double now_s, uint32_t id, const net_m2n *x)
{
    (void)id;
    const analytic *a = self;
    return now_s + net_m2n_analytic_time(&a->t, x);
}

const net_ops net_analytic = {
    .name = "analytic",
    .create = analytic_create,
    .free = analytic_free,
    .xfer_start = analytic_xfer,
    .coll_time = analytic_coll,
    .m2n_start = analytic_m2n,
    .next_time = NULL,
    .advance = NULL,
};

const net_ops *net_find(const char *name)
{
    static const net_ops *const models[] = {&net_analytic, &net_flow};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        if (!strcmp(models[i]->name, name)) return models[i];
    return NULL;
}

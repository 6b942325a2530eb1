/* Tests of m2n exchanges in the simulator (sim/net_m2n.c, the coflow in sim/net_flow.c,
 * the engine) and in the DEP builders' --exchange m2n: per-rank loads and the analytic
 * time against brute force over pairs, hand-computed coflow sharing, agreement with the
 * pairwise expansion (exact where the flows are balanced), byte conservation, and the
 * same FFN work either way. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "costdb/cdb.h"
#include "ir/tg.h"
#include "sim/net_internal.h"
#include "sim/sim.h"
#include "workloads/dep_infer.h"



static void near(double a, double b, double rel, int line)
{
    if (!(fabs(a - b) <= 1e-15 + rel * fabs(b)))
        fail_msg("line %d: got %.17g, want %.17g (rel %.3g)", line, a, b, rel);
}
#define assert_near(a, b) near((a), (b), 1e-12, __LINE__)
#define assert_within(a, b, rel) near((a), (b), (rel), __LINE__)

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Units from sender i to receiver j, straight from the definition. */
static int64_t units(const net_m2n *x, uint32_t i, uint32_t j)
{
    return x->per == TG_M2N_PER_RECV ? tg_m2n_share(x->counts[j], x->nsrc, i, j)
                                     : tg_m2n_share(x->counts[i], x->ndst, j, i);
}

/* A random exchange over ranks [0, n): a random split into senders and receivers (sort
 * both afterwards: a moved rank may break the order). */
static void random_m2n(int n, int32_t *src, int32_t *dst, int64_t *counts, net_m2n *x)
{
    x->nsrc = x->ndst = 0;
    for (int r = 0; r < n; r++) {
        if (rnd(2)) src[x->nsrc++] = r;
        else dst[x->ndst++] = r;
    }
    if (x->nsrc == 0) src[x->nsrc++] = dst[--x->ndst];
    if (x->ndst == 0) dst[x->ndst++] = src[--x->nsrc];
    x->src = src, x->dst = dst;
    x->per = (int)rnd(2);
    uint32_t nc = x->per == TG_M2N_PER_RECV ? x->ndst : x->nsrc;
    for (uint32_t c = 0; c < nc; c++) counts[c] = rnd(4) == 0 ? 0 : rnd(3 * (uint32_t)n);
    x->counts = counts;
    x->unit_bytes = 1 + rnd(1000);
}

static int asc(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void loads_match_brute_force(void **state)
{
    (void)state;
    for (int trial = 0; trial < 300; trial++) {
        int nodes = 1 + (int)rnd(4), gpus = 1 + (int)rnd(5), n = nodes * gpus;
        if (n < 2) continue;
        topo t = tu_round_topo(nodes, gpus, 1 + (int)rnd(2));
        int32_t src[32], dst[32];
        int64_t counts[32];
        net_m2n x;
        random_m2n(n, src, dst, counts, &x);
        qsort(src, x.nsrc, sizeof *src, asc);
        qsort(dst, x.ndst, sizeof *dst, asc);
        net_m2n_load ld;
        assert_int_equal(net_m2n_loads(&t, &x, &ld), 0);
        double total = 0, pairs = 0, slowest = -1;
        int any_cross = 0;
        for (uint32_t i = 0; i < x.nsrc; i++) {
            double st = 0, sc = 0;
            for (uint32_t j = 0; j < x.ndst; j++) {
                double b = (double)units(&x, i, j) * x.unit_bytes;
                int cross = topo_node_of(&t, src[i]) != topo_node_of(&t, dst[j]);
                st += b, sc += cross ? b : 0;
                total += b, pairs += b > 0;
                any_cross |= cross && b > 0;
                double tm = cross ? net_cross_latency_s(&t) + b / net_cross_bw(&t)
                                  : net_local_latency_s(&t) + b / t.intra.bw_bytes_per_s;
                if (tm > slowest) slowest = tm;
            }
            assert_near(ld.src_total[i], st);
            assert_near(ld.src_cross[i], sc);
        }
        for (uint32_t j = 0; j < x.ndst; j++) {
            double dt = 0, dc = 0;
            for (uint32_t i = 0; i < x.nsrc; i++) {
                double b = (double)units(&x, i, j) * x.unit_bytes;
                dt += b;
                dc += topo_node_of(&t, src[i]) != topo_node_of(&t, dst[j]) ? b : 0;
            }
            assert_near(ld.dst_total[j], dt);
            assert_near(ld.dst_cross[j], dc);
        }
        assert_near(ld.total_bytes, total);
        assert_near(ld.pairs, pairs);
        assert_int_equal(ld.any_cross, any_cross);
        assert_near(net_m2n_analytic_time(&t, &x), slowest);
        net_m2n_load_free(&ld);
    }
}

/* ---- the coflow in the flow model ---------------------------------------------------- */

typedef struct drv {
    void *st;
    double end[64];
} drv;

/* Processes the model's events before `before`, reporting ends like the engine. */
static void run_before(drv *d, double before)
{
    uint32_t buf[64];
    for (;;) {
        double t = net_flow.next_time(d->st);
        if (t == INFINITY || !(t < before)) return;
        int k;
        while ((k = net_flow.advance(d->st, t, buf, 64)) > 0)
            for (int i = 0; i < k; i++) {
                assert_true(buf[i] < 64);
                assert_true(d->end[buf[i]] < 0);
                d->end[buf[i]] = t;
            }
    }
}
#define run_all(d) run_before((d), INFINITY)

static drv *drv_new(const topo *t)
{
    drv *d = calloc(1, sizeof *d);
    ms_err err = {{0}};
    d->st = net_flow.create(t, &err);
    if (!d->st) fail_msg("create: %s", err.msg);
    for (int i = 0; i < 64; i++) d->end[i] = -1;
    return d;
}

static void drv_free(drv *d)
{
    net_flow.free(d->st);
    free(d);
}

/* One sender to two receivers, 1 MB each, alongside a plain flow from the same sender: the
 * sender's GPU link counts the coflow as two flows, so each of the three gets a third, as
 * per-flow max-min would give; when the plain flow (0.5 MB) ends, the coflow's flows get
 * half each. */
static void coflow_shares_like_its_flows(void **state)
{
    (void)state;
    topo t = tu_round_topo(1, 4, 0);
    double lat = net_local_latency_s(&t), C = 1e9, U = 1e6;
    int32_t src[] = {0}, dst[] = {1, 2};
    int64_t counts[] = {1000, 1000};
    net_m2n x = {.src = src, .dst = dst, .nsrc = 1, .ndst = 2, .counts = counts,
                 .per = TG_M2N_PER_RECV, .unit_bytes = 1000};
    /* alone: its busiest link (the sender's, 2 MB) at 1 GB/s */
    drv *d = drv_new(&t);
    assert_true(net_flow.m2n_start(d->st, 0, 7, &x) < 0);
    run_all(d);
    assert_near(d->end[7], lat + 2 * U / C);
    drv_free(d);
    /* with a plain flow of equal size: all three end together */
    d = drv_new(&t);
    assert_true(net_flow.m2n_start(d->st, 0, 7, &x) < 0);
    assert_true(net_flow.xfer_start(d->st, 0, 3, 0, 3, U) < 0);
    run_all(d);
    assert_near(d->end[7], lat + 3 * U / C);
    assert_near(d->end[3], lat + 3 * U / C);
    drv_free(d);
    /* with a plain flow of half the size: it ends at 1.5 U/C, then the coflow's flows
     * have half the link each for their remaining 0.5 U */
    d = drv_new(&t);
    assert_true(net_flow.m2n_start(d->st, 0, 7, &x) < 0);
    assert_true(net_flow.xfer_start(d->st, 0, 3, 0, 3, U / 2) < 0);
    run_all(d);
    assert_near(d->end[3], lat + 1.5 * U / C);
    assert_near(d->end[7], lat + 2.5 * U / C);
    drv_free(d);
    /* alone first (its rate set without a full recomputation), then a plain flow of
     * 0.5 MB joins 1 ms later: by then the coflow has done half (level C/2), and both
     * then go at C/3 and end together 1.5 ms later */
    d = drv_new(&t);
    assert_true(net_flow.m2n_start(d->st, 0, 7, &x) < 0);
    run_before(d, 1e-3);
    assert_true(net_flow.xfer_start(d->st, 1e-3, 3, 0, 3, U / 2) < 0);
    run_all(d);
    assert_near(d->end[3], lat + 2.5 * U / C);
    assert_near(d->end[7], lat + 2.5 * U / C);
    drv_free(d);
}

/* Across nodes the NICs are links too: two senders on node 0 to two receivers on node 1,
 * one NIC per node at 0.5 GB/s carries all 4 MB: 8 ms, not the GPU links' 2 ms. */
static void coflow_across_nodes_is_nic_bound(void **state)
{
    (void)state;
    topo t = tu_round_topo(2, 2, 1);
    int32_t src[] = {0, 1}, dst[] = {2, 3};
    int64_t counts[] = {2000, 2000};
    net_m2n x = {.src = src, .dst = dst, .nsrc = 2, .ndst = 2, .counts = counts,
                 .per = TG_M2N_PER_RECV, .unit_bytes = 1000};
    drv *d = drv_new(&t);
    assert_true(net_flow.m2n_start(d->st, 0, 1, &x) < 0);
    run_all(d);
    assert_near(d->end[1], net_cross_latency_s(&t) + 4e6 / 0.5e9);
    drv_free(d);
    /* an exchange that moves nothing ends after the latency */
    int64_t zero[] = {0, 0};
    x.counts = zero;
    d = drv_new(&t);
    double e = net_flow.m2n_start(d->st, 0, 1, &x);
    assert_near(e, net_cross_latency_s(&t));
    drv_free(d);
}

/* ---- through the engine: m2n vs its pairwise expansion ---------------------------------- */

static double makespan(const tg_graph *g, const topo *t, const net_ops *net)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, tu_db, net, &err);
    if (!s || sim_run(s, &err) != 0) fail_msg("simulation failed: %s", err.msg);
    double m = sim_get_summary(s)->makespan_s;
    sim_free(s);
    return m;
}

static tg_graph *build(const model_cfg *m, const topo *t, wl_dep_params *p, wl_exchange x)
{
    ms_err err = {{0}};
    p->exchange = x;
    tg_graph *g = wl_dep_build(m, t, p, &err);
    if (!g) fail_msg("wl_dep_build: %s", err.msg);
    return g;
}

/* FFN tasks are the same either way (tokens and experts per EG rank and chunk). */
static void same_compute(const tg_graph *a, const tg_graph *b)
{
    uint32_t ia = 0, ib = 0;
    for (;;) {
        while (ia < a->ntasks && tg_task_kind(a, ia) != TG_KIND_COMPUTE) ia++;
        while (ib < b->ntasks && tg_task_kind(b, ib) != TG_KIND_COMPUTE) ib++;
        if (ia == a->ntasks || ib == b->ntasks) break;
        assert_int_equal(a->op[ia], b->op[ib]);
        assert_int_equal(a->rank[ia], b->rank[ib]);
        assert_string_equal(tg_str(a, a->label[ia]), tg_str(b, b->label[ib]));
        uint32_t n = a->arg_off[ia + 1] - a->arg_off[ia];
        assert_memory_equal(tg_task_args(a, ia), tg_task_args(b, ib), n * sizeof(int64_t));
        ia++, ib++;
    }
    assert_int_equal(ia, a->ntasks);
    assert_int_equal(ib, b->ntasks);
}

/* A2E bytes per layer of an m2n graph: counts x unit over one piece per instance. */
static void m2n_a2e_bytes(const tg_graph *g, int layers, double *out)
{
    for (int l = 0; l < layers; l++) out[l] = 0;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->op[t] != TG_OP_M2N || strcmp(tg_str(g, g->stream_name[g->stream[t]]), "a2e") ||
            g->rank[t] != 0)
            continue;
        const int64_t *a = tg_task_args(g, t);
        int l = atoi(tg_str(g, g->label[t]) + 1);
        for (uint32_t k = g->vec_off[a[3]]; k < g->vec_off[a[3] + 1]; k++)
            out[l] += (double)g->vec_val[k] * (double)a[1];
    }
}

static void builders_agree_with_pairwise(void **state)
{
    (void)state;
    static const char *models[] = {"qwen3-30b-a3b", "deepseek-v2"};
    ms_err err = {{0}};
    double worst = 0;
    for (size_t mi = 0; mi < 2; mi++) {
        model_cfg m = tu_load_model(models[mi], 3);
        for (int sched = 0; sched < 3; sched++) {
            for (int skew = 0; skew < 2; skew++) {
                topo t = tu_load_topo("h100:nodes=2");
                wl_dep_params p;
                wl_dep_defaults(&p);
                p.sched = (wl_dep_sched)sched;
                p.ag = 4, p.eg = 12, p.seq = 512, p.ma = 2;
                if (sched != WL_DEP_NAIVE) p.r1 = 2;
                if (sched == WL_DEP_FINDEP) p.r2 = 4;
                routing *r = routing_create(skew ? "zipf:1.1" : "uniform", m.routed_experts,
                                            m.layers, 3, &err);
                assert_non_null(r);
                p.route = r;
                tg_graph *pw = build(&m, &t, &p, WL_EXCHANGE_PAIRWISE);
                tg_graph *mn = build(&m, &t, &p, WL_EXCHANGE_M2N);
                assert_true(tg_has_m2n(mn));
                assert_false(tg_has_m2n(pw));
                assert_int_equal(pw->ntasks, mn->ntasks);
                same_compute(pw, mn);
                double bytes[3];
                m2n_a2e_bytes(mn, 3, bytes);
                double tokens = (double)p.ag * p.r1 * p.ma * p.seq;
                for (int l = 0; l < 3; l++)
                    assert_near(bytes[l],
                                model_layer_is_moe(&m, l) ? tokens * m.top_k * m.hidden * 2 : 0);
                /* Exchanges differ in rounding (which source sends the odd token) and
                 * in that an m2n ends for all its members together, when the busiest
                 * rank's data is through, where a pairwise exchange lets each rank go
                 * on when its own transfers are done; the makespans agree closely. */
                for (int net = 0; net < 2; net++) {
                    const net_ops *n = net ? &net_flow : &net_analytic;
                    double a = makespan(pw, &t, n), b = makespan(mn, &t, n);
                    if (fabs(b / a - 1) > worst) worst = fabs(b / a - 1);
                    if (fabs(b / a - 1) > 0.10)
                        fail_msg("%s %s %s %s: pairwise %.9g s, m2n %.9g s", models[mi],
                                 wl_dep_sched_name(p.sched), skew ? "zipf" : "uniform",
                                 n->name, a, b);
                }
                /* its expansion is a valid pairwise graph of the same tasks */
                tg_graph *ex = tg_expand_m2n(mn, &err);
                if (!ex) fail_msg("expand: %s", err.msg);
                assert_int_equal(ex->ntasks, mn->ntasks);
                assert_false(tg_has_m2n(ex));
                tg_graph_free(ex);
                tg_graph_free(pw);
                tg_graph_free(mn);
                routing_free(r);
            }
        }
    }
    print_message("largest makespan difference, m2n vs pairwise: %.2f %%\n", 100 * worst);
}

/* With every pair moving the same bytes (8 x 8 ranks, 16 experts per expert rank, 64
 * assignments per expert and chunk) and every sender starting together, m2n and pairwise
 * are the same exchange: equal makespans under both network models. */
static void balanced_exchange_matches_exactly(void **state)
{
    (void)state;
    model_cfg m = tu_load_model("qwen3-30b-a3b", 2); /* 128 experts, top 8 */
    topo t = tu_load_topo("h100:nodes=2");
    wl_dep_params p;
    wl_dep_defaults(&p);
    p.sched = WL_DEP_FINDEP;
    p.ag = 8, p.eg = 8, p.seq = 256, p.ma = 1, p.r1 = 2, p.r2 = 2;
    tg_graph *pw = build(&m, &t, &p, WL_EXCHANGE_PAIRWISE);
    tg_graph *mn = build(&m, &t, &p, WL_EXCHANGE_M2N);
    for (uint32_t k = 0; k < mn->vec_off[mn->nvecs]; k++) assert_int_equal(mn->vec_val[k], 1024);
    for (uint32_t x = 0; x < pw->nxfers; x++) assert_int_equal(pw->xfer_bytes[x], 128 * 2048 * 2);
    assert_within(makespan(mn, &t, &net_analytic), makespan(pw, &t, &net_analytic), 1e-9);
    assert_within(makespan(mn, &t, &net_flow), makespan(pw, &t, &net_flow), 1e-9);
    tg_graph_free(pw);
    tg_graph_free(mn);
}

static void exchange_flag(void **state)
{
    (void)state;
    ms_err err = {{0}};
    wl_exchange x;
    assert_int_equal(wl_exchange_parse("m2n", &x, &err), 0);
    assert_int_equal(x, WL_EXCHANGE_M2N);
    assert_int_not_equal(wl_exchange_parse("pairs", &x, &err), 0);
    assert_non_null(strstr(err.msg, "--exchange"));
    wl_dep_params p;
    wl_dep_defaults(&p);
    p.ag = 128, p.eg = 128;
    assert_false(wl_dep_uses_m2n(&p)); /* 16384 pairs: auto stays pairwise */
    p.eg = 129;
    assert_true(wl_dep_uses_m2n(&p));
    p.exchange = WL_EXCHANGE_PAIRWISE;
    assert_false(wl_dep_uses_m2n(&p));
    /* ep's all-to-all is pairwise: asking for m2n is an error */
    model_cfg m = tu_load_model("qwen3-30b-a3b", 2);
    topo t = tu_load_topo("h100:nodes=1");
    wl_dep_defaults(&p);
    p.sched = WL_DEP_EP, p.seq = 64, p.exchange = WL_EXCHANGE_M2N;
    assert_null(wl_dep_build(&m, &t, &p, &err));
    assert_non_null(strstr(err.msg, "m2n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_match_brute_force),
        cmocka_unit_test(coflow_shares_like_its_flows),
        cmocka_unit_test(coflow_across_nodes_is_nic_bound),
        cmocka_unit_test(builders_agree_with_pairwise),
        cmocka_unit_test(balanced_exchange_matches_exactly),
        cmocka_unit_test(exchange_flag),
    };
    return cmocka_run_group_tests(tests, tu_db_setup, tu_db_teardown);
}

/* Tests of the DEP inference builders: the findep schedule against an independent
 * max-plus evaluation (every valid AG order for r1 <= 3) and FinDEP's closed form, the
 * A/S order strings, pppipe against MegaScale-Infer's total time, token/byte
 * conservation in every builder, skewed routing, decode shapes, and bad parameters. Costs: the `findep-paper` profile (FinDEP's published linear fits) on its
 * topology, analytic network. */
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "costdb/cdb.h"
#include "sim/sim.h"
#include "workloads/dep_infer.h"


static sim_engine *simulate(const tg_graph *g, const topo *t)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, tu_db, &net_analytic, &err);
    if (!s || sim_run(s, &err) != 0) fail_msg("simulation failed: %s", err.msg);
    return s;
}

static tg_graph *build(const model_cfg *m, const topo *t, const wl_dep_params *p)
{
    ms_err err = {{0}};
    tg_graph *g = wl_dep_build(m, t, p, &err);
    if (!g) fail_msg("wl_dep_build: %s", err.msg);
    return g;
}

/* First task (file order) on `rank` whose label is `label`. */
static uint32_t find_label(const tg_graph *g, int rank, const char *label, int last)
{
    uint32_t found = TG_NONE;
    for (uint32_t t = 0; t < g->ntasks; t++)
        if (g->rank[t] == rank && g->label[t] != TG_NONE && !strcmp(tg_str(g, g->label[t]), label)) {
            found = t;
            if (!last) break;
        }
    if (found == TG_NONE) fail_msg("no task labelled %s on rank %d", label, rank);
    return found;
}

static double dur(const sim_engine *s, uint32_t t) { return sim_task_end(s, t) - sim_task_start(s, t); }

/* Per-segment times of a findep/pppipe graph, read off the simulated layer 0, mb 0. */
typedef struct seg_times {
    double ta, ts, te, tc;
} seg_times;

static seg_times measure(const sim_engine *s, const tg_graph *g, int ag)
{
    seg_times x;
    uint32_t a0 = find_label(g, 0, "L0.mb0.attn", 0), a1 = find_label(g, 0, "L0.mb0.gate", 0);
    x.ta = sim_task_end(s, a1) - sim_task_start(s, a0);
    x.ts = dur(s, find_label(g, 0, "L0.mb0.shared", 0));
    x.te = dur(s, find_label(g, ag, "L0.mb0.expert.c0", 0));
    x.tc = dur(s, find_label(g, 0, "L0.mb0.a2e.c0", 0));
    double e2a = dur(s, find_label(g, ag, "L0.mb0.e2a.c0", 0));
    assert_true(fabs(e2a - x.tc) <= 1e-12 * x.tc); /* equal A2E and E2A, as FinDEP assumes */
    return x;
}

/* Independent evaluation of FinDEP's in-order schedule over four resources (AG compute,
 * A2E channel, EG compute, E2A channel): a max-plus recurrence written apart from the
 * engine. `order` is the AG order of every layer as 2*r1 letters A and S, the i-th A
 * being A_i and the i-th S being S_i. */
static double maxplus(const seg_times *x, int L, int r1, int r2, const char *order)
{
    double ag = 0, c1 = 0, eg = 0, c2 = 0;
    double *A = calloc((size_t)r1, sizeof *A), *S = calloc((size_t)r1, sizeof *S);
    double *back = calloc((size_t)r1, sizeof *back); /* last E2A end of (l-1, i) */
    double *sent = calloc((size_t)r1 * r2, sizeof *sent), *done = calloc((size_t)r1 * r2, sizeof *done);
    assert_int_equal(strlen(order), 2 * (size_t)r1);
    for (int l = 0; l < L; l++) {
        for (int k = 0, ia = 0, is = 0; k < 2 * r1; k++)
            if (order[k] == 'A') {
                int i = ia++;
                double ready = l > 0 ? fmax(back[i], S[i]) : 0;
                A[i] = fmax(ag, ready) + x->ta;
                ag = A[i];
            } else {
                int i = is++;
                assert_true(i < ia); /* S_i after A_i */
                S[i] = fmax(ag, A[i]) + x->ts;
                ag = S[i];
            }
        for (int i = 0; i < r1; i++)
            for (int j = 0; j < r2; j++) sent[i * r2 + j] = c1 = fmax(c1, A[i]) + x->tc;
        for (int k = 0; k < r1 * r2; k++) done[k] = eg = fmax(eg, sent[k]) + x->te;
        for (int i = 0; i < r1; i++) {
            back[i] = 0;
            for (int j = 0; j < r2; j++) back[i] = c2 = fmax(c2, done[i * r2 + j]) + x->tc;
        }
    }
    double end = fmax(ag, c2);
    free(A), free(S), free(back), free(sent), free(done);
    return end;
}

/* The A/S string of ASAS (alternating) or AASS (all A, then all S) for r1. */
static void named_order(int aass, int r1, char *buf)
{
    for (int k = 0; k < 2 * r1; k++) buf[k] = (aass ? k < r1 : k % 2 == 0) ? 'A' : 'S';
    buf[2 * r1] = 0;
}

/* FinDEP's printed closed form (PAPERS.md), ASAS. */
static double closed_form(const seg_times *x, int L, int r1, int r2)
{
    double X = x->ta + x->ts, Y = fmax(x->te, x->tc), F = fmax(X, r2 * Y);
    double G = x->ta + 2 * x->tc + x->te + (r2 - 1) * Y;
    return (L - 1) * fmax(G, r1 * F) + fmax(X, G) + (r2 - 1) * Y + (r1 - 1) * F;
}

static void findep_matches_maxplus_and_closed_form(void **state)
{
    (void)state;
    topo t = tu_load_topo("findep-paper-1x8");
    int checked_cf = 0, checked = 0;
    for (int L = 1; L <= 3; L++)
        for (int r1 = 1; r1 <= 3; r1++)
            for (int r2 = 1; r2 <= 4; r2 *= 2)
                for (int o = 0; o < 2; o++)
                    for (int ma = 1; ma <= 4; ma *= 4) {
                        model_cfg m = tu_load_model(MS_SOURCE_DIR "/tests/data/dep/tiny-mla.json", L);
                        wl_dep_params p;
                        wl_dep_defaults(&p);
                        p.sched = WL_DEP_FINDEP;
                        p.ag = 4, p.eg = 4, p.seq = 512, p.ma = ma, p.r1 = r1, p.r2 = r2;
                        p.order = o ? WL_ORDER_AASS : WL_ORDER_ASAS;
                        tg_graph *g = build(&m, &t, &p);
                        sim_engine *s = simulate(g, &t);
                        seg_times x = measure(s, g, p.ag);
                        double got = sim_get_summary(s)->makespan_s;
                        char ord[2 * 3 + 1];
                        named_order(o, r1, ord);
                        double want = maxplus(&x, L, r1, r2, ord);
                        if (fabs(got - want) > 1e-9 * want)
                            fail_msg("L=%d r1=%d r2=%d %s ma=%d: sim %.15g, max-plus %.15g", L, r1,
                                     r2, o ? "aass" : "asas", ma, got, want);
                        checked++;
                        if (!o) {
                            double cf = closed_form(&x, L, r1, r2);
                            if (r2 == 1 || L == 1) {
                                double exact = r2 == 1 ? cf
                                                       : fmax(x.ta + 2 * x.tc + x.te +
                                                                  (r2 - 1) * fmax(x.te, x.tc) +
                                                                  (r1 - 1) * fmax(x.ta + x.ts, r2 * fmax(x.te, x.tc)),
                                                              r1 * (x.ta + x.ts));
                                if (fabs(got - exact) > 1e-9 * exact)
                                    fail_msg("L=%d r1=%d r2=%d ma=%d: sim %.15g, closed form %.15g",
                                             L, r1, r2, ma, got, exact);
                                checked_cf++;
                            }
                            assert_true(got <= cf * (1 + 1e-12)); /* never above the bound */
                        }
                        sim_free(s);
                        tg_graph_free(g);
                    }
    assert_true(checked == 3 * 3 * 3 * 2 * 2);
    assert_true(checked_cf > 20);
}

/* Every valid AG order for r1 <= 3, found by brute force over all A/S strings (As in
 * index order, Ss in index order, each S_i after A_i: every prefix has at least as many
 * As as Ss): the builder accepts exactly those, their number is Catalan(r1) (not the
 * C(2r1-1, r1) of PAPERS.md, which also counts orders with some S_i before A_i), and the
 * simulated makespan equals the max-plus evaluation with that order. */
static void findep_every_order_matches_maxplus(void **state)
{
    (void)state;
    topo t = tu_load_topo("findep-paper-1x8");
    static const long long catalan[] = {1, 1, 2, 5, 14, 42, 132};
    static const long long paper[] = {1, 1, 3, 10, 35, 126, 462}; /* C(2r1-1, r1) */
    for (int r1 = 1; r1 <= 6; r1++) {
        long long valid = 0, first_a = 0;
        for (uint64_t mk = 0; mk < (UINT64_C(1) << (2 * r1)); mk++) {
            int as = 0, lead = 0, ok = 1;
            for (int k = 0; k < 2 * r1; k++) {
                as += (mk >> k) & 1;
                lead += (mk >> k) & 1 ? 1 : -1;
                ok &= lead >= 0;
            }
            if (as != r1) continue;
            first_a += mk & 1;
            valid += ok;
            assert_int_equal(wl_order_valid(mk, r1), ok && lead == 0);
        }
        assert_true(valid == catalan[r1]);
        assert_true(wl_order_count(r1) == catalan[r1]);
        assert_true(first_a == paper[r1]); /* the paper's count: strings starting with A */
    }
    int checked = 0, differ = 0;
    for (int r1 = 1; r1 <= 3; r1++)
        for (uint64_t mk = 0; mk < (UINT64_C(1) << (2 * r1)); mk++) {
            if (!wl_order_valid(mk, r1)) continue;
            char ord[2 * 3 + 1];
            for (int k = 0; k < 2 * r1; k++) ord[k] = (mk >> k) & 1 ? 'A' : 'S';
            ord[2 * r1] = 0;
            for (int L = 1; L <= 3; L++)
                for (int r2 = 1; r2 <= 4; r2 *= 4) {
                    model_cfg m = tu_load_model(MS_SOURCE_DIR "/tests/data/dep/tiny-mla.json", L);
                    wl_dep_params p;
                    wl_dep_defaults(&p);
                    p.sched = WL_DEP_FINDEP;
                    p.ag = 4, p.eg = 4, p.seq = 512, p.ma = 2, p.r1 = r1, p.r2 = r2;
                    ms_err err = {{0}};
                    assert_int_equal(wl_order_parse(ord, r1, &p.order, &p.order_mask, &err), 0);
                    assert_int_equal(p.order, WL_ORDER_CUSTOM);
                    assert_true(p.order_mask == mk);
                    char back[WL_ORDER_STRLEN];
                    wl_order_format(p.order, p.order_mask, r1, back, sizeof back);
                    assert_string_equal(back, ord);
                    tg_graph *g = build(&m, &t, &p);
                    sim_engine *s = simulate(g, &t);
                    seg_times x = measure(s, g, p.ag);
                    double got = sim_get_summary(s)->makespan_s;
                    double want = maxplus(&x, L, r1, r2, ord);
                    if (fabs(got - want) > 1e-9 * want)
                        fail_msg("L=%d r1=%d r2=%d %s: sim %.15g, max-plus %.15g", L, r1, r2,
                                 ord, got, want);
                    char a[2 * 3 + 1], b[2 * 3 + 1];
                    named_order(0, r1, a), named_order(1, r1, b);
                    differ += strcmp(ord, a) && strcmp(ord, b);
                    checked++;
                    sim_free(s);
                    tg_graph_free(g);
                }
        }
    assert_int_equal(checked, (1 + 2 + 5) * 3 * 2);
    assert_int_equal(differ, 3 * 3 * 2); /* r1 = 3: three orders beyond ASAS and AASS */
}

/* The text form of g. */
static char *graph_text(const tg_graph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ms_err err = {{0}};
    assert_non_null(f);
    assert_int_equal(tg_write(g, f, &err), 0);
    fclose(f);
    return buf;
}

/* A custom order spelling out ASAS or AASS builds the very graph of the named order, and
 * --order errors name the flag and the fault. */
static void custom_orders_equal_named_and_bad_ones_are_refused(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("deepseek-v2", 3); /* a dense first layer, then MoE */
    for (int aass = 0; aass < 2; aass++) {
        wl_dep_params p;
        wl_dep_defaults(&p);
        p.sched = WL_DEP_FINDEP, p.ag = 3, p.eg = 5, p.seq = 256, p.ma = 1, p.r1 = 3, p.r2 = 2;
        p.order = aass ? WL_ORDER_AASS : WL_ORDER_ASAS;
        tg_graph *g1 = build(&m, &t, &p);
        char ord[7];
        named_order(aass, 3, ord);
        ms_err err = {{0}};
        assert_int_equal(wl_order_parse(ord, 3, &p.order, &p.order_mask, &err), 0);
        assert_true(p.order_mask == wl_order_mask(aass ? WL_ORDER_AASS : WL_ORDER_ASAS, 0, 3));
        tg_graph *g2 = build(&m, &t, &p);
        char *x = graph_text(g1), *y = graph_text(g2);
        assert_string_equal(x, y);
        free(x), free(y);
        tg_graph_free(g1), tg_graph_free(g2);
    }
    struct {
        const char *order;
        int r1;
        const char *expect;
    } bad[] = {
        {"sasa", 2, "unknown --order 'sasa'"},
        {"ASAX", 2, "unknown --order"},
        {"", 1, "unknown --order"},
        {"ASAS", 3, "--r1 3 needs 6"},
        {"SAAS", 2, "S0 at position 1"},
        {"ASSA", 2, "S1 at position 3"},
        {"AAAS", 2, "3 As and 1 Ss"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wl_order o;
        uint64_t mk;
        ms_err err = {{0}};
        assert_int_equal(wl_order_parse(bad[i].order, bad[i].r1, &o, &mk, &err), -1);
        if (!strstr(err.msg, bad[i].expect))
            fail_msg("'%s': '%s' lacks '%s'", bad[i].order, err.msg, bad[i].expect);
    }
    /* the builder checks a mask set directly */
    wl_dep_params p;
    wl_dep_defaults(&p);
    p.sched = WL_DEP_FINDEP, p.ag = 3, p.eg = 5, p.seq = 256, p.r1 = 2;
    p.order = WL_ORDER_CUSTOM, p.order_mask = 0x9; /* A S S A */
    ms_err err = {{0}};
    assert_null(wl_dep_build(&m, &t, &p, &err));
    assert_non_null(strstr(err.msg, "--order"));
    p.r1 = WL_ORDER_MAX_R1 + 1;
    assert_null(wl_dep_build(&m, &t, &p, &err));
    assert_non_null(strstr(err.msg, "--r1"));
}

static void pppipe_matches_megascale_total_time(void **state)
{
    (void)state;
    /* NVLink-class links (datasheet H20), where communication is shorter than compute as
     * MegaScale-Infer's conditions require */
    topo t = tu_load_topo("h20-1x8");
    int checked = 0;
    for (int L = 1; L <= 3; L++)
        for (int mb = 3; mb <= 4; mb++) {
            model_cfg m = tu_load_model(MS_SOURCE_DIR "/tests/data/dep/tiny-mla.json", L);
            wl_dep_params p;
            wl_dep_defaults(&p);
            p.sched = WL_DEP_PPPIPE;
            p.ag = 4, p.eg = 4, p.seq = 1024, p.ma = 2, p.r1 = mb;
            tg_graph *g = build(&m, &t, &p);
            sim_engine *s = simulate(g, &t);
            seg_times x = measure(s, g, p.ag);
            double Ta = x.ta + x.ts, Te = x.te, Tc = x.tc, Tf = fmax(Ta, Te);
            /* MegaScale-Infer's conditions for a full pipeline */
            assert_true(Tc < Tf);
            assert_true(mb * Tf >= 2 * (Tf + Tc));
            double want = Ta + Te + 2 * Tc + Tf * (mb * L - 1);
            double got = sim_get_summary(s)->makespan_s;
            if (fabs(got - want) > 1e-9 * want)
                fail_msg("L=%d m=%d: sim %.15g, MegaScale-Infer %.15g", L, mb, got, want);
            checked++;
            sim_free(s);
            tg_graph_free(g);
        }
    assert_int_equal(checked, 6);
}

/* Sum of A2E bytes sent per layer (sends on streams named a2e). */
static void a2e_bytes_per_layer(const tg_graph *g, int layers, double *out)
{
    for (int l = 0; l < layers; l++) out[l] = 0;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->op[t] != TG_OP_XCHG || strcmp(tg_str(g, g->stream_name[g->stream[t]]), "a2e")) continue;
        int l = atoi(tg_str(g, g->label[t]) + 1);
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
            if (g->xfer_send[x]) out[l] += (double)g->xfer_bytes[x];
    }
}

static void conservation_in_every_builder(void **state)
{
    (void)state;
    static const char *models[] = {"deepseek-v2", "qwen3-30b-a3b", "mixtral-8x7b"};
    topo t = tu_load_topo("h20-1x8");
    ms_err err = {{0}};
    for (size_t mi = 0; mi < 3; mi++) {
        model_cfg m = tu_load_model(models[mi], 3);
        routing *r = routing_create("zipf:1.2", m.routed_experts, m.layers, 7, &err);
        assert_non_null(r);
        for (int sched = 0; sched < 4; sched++) {
            wl_dep_params p;
            wl_dep_defaults(&p);
            p.sched = (wl_dep_sched)sched;
            p.route = r;
            p.seq = 256, p.ma = 2;
            if (sched != WL_DEP_EP) p.ag = 3, p.eg = 5;
            if (sched == WL_DEP_PPPIPE || sched == WL_DEP_FINDEP) p.r1 = 2;
            if (sched == WL_DEP_FINDEP) p.r2 = 4;
            tg_graph *g = build(&m, &t, &p);
            double bytes[3];
            a2e_bytes_per_layer(g, 3, bytes);
            int ag = sched == WL_DEP_EP ? 8 : 3;
            double tokens = (double)ag * p.r1 * p.ma * p.seq;
            for (int l = 0; l < 3; l++) {
                double want = model_layer_is_moe(&m, l) ? tokens * m.top_k * m.hidden * 2 : 0;
                if (bytes[l] != want)
                    fail_msg("%s %s layer %d: A2E bytes %.0f, want %.0f", models[mi],
                             wl_dep_sched_name(p.sched), l, bytes[l], want);
            }
            /* and the simulator runs it */
            sim_engine *s = simulate(g, &t);
            assert_true(sim_get_summary(s)->makespan_s > 0);
            sim_free(s);
            tg_graph_free(g);
        }
        routing_free(r);
    }
}

static void skewed_routing_loads_expert_ranks_unequally(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("deepseek-v2", 2);
    ms_err err = {{0}};
    routing *r = routing_create("zipf:1.5", m.routed_experts, m.layers, 3, &err);
    assert_non_null(r);
    wl_dep_params p;
    wl_dep_defaults(&p);
    /* 2 x 640 tokens x top-6 x 4 ranks = 30720 assignments: 192 for each of 160 experts */
    p.sched = WL_DEP_FINDEP, p.ag = 4, p.eg = 4, p.seq = 640, p.ma = 2, p.route = r;
    tg_graph *g = build(&m, &t, &p);
    int64_t lo = INT64_MAX, hi = 0;
    for (int d = 0; d < 4; d++) {
        uint32_t x = find_label(g, 4 + d, "L1.mb0.expert.c0", 0);
        int64_t tokens = tg_task_args(g, x)[0];
        if (tokens < lo) lo = tokens;
        if (tokens > hi) hi = tokens;
    }
    assert_true(hi > lo * 1.2);
    tg_graph_free(g);
    /* uniform: all equal */
    p.route = NULL;
    g = build(&m, &t, &p);
    int64_t first = tg_task_args(g, find_label(g, 4, "L1.mb0.expert.c0", 0))[0];
    for (int d = 1; d < 4; d++)
        assert_int_equal(tg_task_args(g, find_label(g, 4 + d, "L1.mb0.expert.c0", 0))[0], first);
    tg_graph_free(g);
    routing_free(r);
}

static void more_expert_ranks_than_experts_replicates(void **state)
{
    (void)state;
    /* Mixtral's 8 experts over 12 expert ranks: each expert on 1 or 2 ranks, its tokens
     * split between them; every expert rank works and bytes are conserved. */
    topo t = tu_load_topo("h100:nodes=2");
    model_cfg m = tu_load_model("mixtral-8x7b", 1);
    wl_dep_params p;
    wl_dep_defaults(&p);
    p.sched = WL_DEP_FINDEP, p.ag = 4, p.eg = 12, p.seq = 512, p.ma = 1;
    tg_graph *g = build(&m, &t, &p);
    double bytes[1];
    a2e_bytes_per_layer(g, 1, bytes);
    assert_true(bytes[0] == 4.0 * 512 * m.top_k * m.hidden * 2);
    for (int d = 0; d < 12; d++)
        assert_true(tg_task_args(g, find_label(g, 4 + d, "L0.mb0.expert.c0", 0))[0] > 0);
    sim_engine *s = simulate(g, &t);
    sim_free(s);
    tg_graph_free(g);
}

static void decode_uses_kv_cache_shapes(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("qwen3-30b-a3b", 2);
    wl_dep_params p;
    wl_dep_defaults(&p);
    p.sched = WL_DEP_PPPIPE, p.ag = 4, p.eg = 4, p.seq = 4096, p.ma = 64, p.r1 = 2;
    p.phase = WL_DECODE;
    tg_graph *g = build(&m, &t, &p);
    int seen = 0;
    for (uint32_t x = 0; x < g->ntasks; x++)
        if (g->op[x] == TG_OP_ATTN) {
            const int64_t *a = tg_task_args(g, x);
            assert_int_equal(a[0], 64);   /* b */
            assert_int_equal(a[1], 1);    /* sq: one new token */
            assert_int_equal(a[2], 4096); /* skv: the cache */
            assert_int_equal(a[4], 4);    /* GQA kv heads */
            seen++;
        }
    assert_int_equal(seen, 2 * 2 * 4); /* layers x micro-batches x AG ranks */
    assert_true(wl_dep_tokens(&p, &t) == 4.0 * 2 * 64);
    tg_graph_free(g);
}

static void bad_parameters_are_clear_errors(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("deepseek-v2", 2);
    struct {
        wl_dep_sched sched;
        int ag, eg, seq, ma, r1, r2;
        const char *expect;
    } cases[] = {
        {WL_DEP_FINDEP, 3, 4, 512, 1, 1, 1, "has 8"},
        {WL_DEP_FINDEP, 0, 8, 512, 1, 1, 1, "--ag and --eg"},
        {WL_DEP_FINDEP, 4, 4, 0, 1, 1, 1, "--seq"},
        {WL_DEP_FINDEP, 4, 4, 512, 0, 1, 1, "--ma"},
        {WL_DEP_FINDEP, 4, 4, 512, 1, 0, 1, "--r1"},
        {WL_DEP_FINDEP, 4, 4, 512, 1, 1, 0, "--r2"},
        {WL_DEP_FINDEP, 4, 4, 500, 1, 1, 3, "does not divide"},
        {WL_DEP_PPPIPE, 4, 4, 512, 1, 2, 2, "findep only"},
        {WL_DEP_NAIVE, 4, 4, 512, 1, 2, 1, "one micro-batch"},
        {WL_DEP_EP, 4, 4, 512, 1, 1, 1, "do not apply to ep"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wl_dep_params p;
        wl_dep_defaults(&p);
        p.sched = cases[i].sched, p.ag = cases[i].ag, p.eg = cases[i].eg;
        p.seq = cases[i].seq, p.ma = cases[i].ma, p.r1 = cases[i].r1, p.r2 = cases[i].r2;
        ms_err err = {{0}};
        tg_graph *g = wl_dep_build(&m, &t, &p, &err);
        if (g) fail_msg("case %zu built a graph", i);
        if (!strstr(err.msg, cases[i].expect))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].expect);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(findep_matches_maxplus_and_closed_form),
        cmocka_unit_test(findep_every_order_matches_maxplus),
        cmocka_unit_test(custom_orders_equal_named_and_bad_ones_are_refused),
        cmocka_unit_test(pppipe_matches_megascale_total_time),
        cmocka_unit_test(conservation_in_every_builder),
        cmocka_unit_test(skewed_routing_loads_expert_ranks_unequally),
        cmocka_unit_test(more_expert_ranks_than_experts_replicates),
        cmocka_unit_test(decode_uses_kv_cache_shapes),
        cmocka_unit_test(bad_parameters_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, tu_db_setup, tu_db_teardown);
}

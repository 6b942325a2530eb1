/* Tests of the solver's lower bound (solver/bound.c) and FinDEP's Algorithm 1
 * (solver/alg1.c): the bound on hand graphs with known answers and below every simulated
 * DEP schedule (analytic and flow networks); Algorithm 1 against brute force over the same
 * space and objective, its AASS evaluation against a per-chunk max-plus, fixed flags,
 * simulated throughput never above the bound, and its run time. */
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

#include "costdb/cdb.h"
#include "sim/sim.h"
#include "solver/solver_internal.h"
#include "workloads/dep_infer.h"


static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double simulate(const tg_graph *g, const topo *t, const net_ops *net)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, tu_db, net, &err);
    if (!s || sim_run(s, &err) != 0) fail_msg("simulation failed: %s", err.msg);
    double mk = sim_get_summary(s)->makespan_s;
    sim_free(s);
    return mk;
}

static double bound_of(const tg_graph *g, const topo *t)
{
    ms_err err = {{0}};
    double b = -1;
    if (solve_bound(g, t, tu_db, &b, &err) != 0) fail_msg("solve_bound: %s", err.msg);
    return b;
}

static tg_graph *parse(const char *text)
{
    ms_err err = {{0}};
    tg_graph *g = tg_parse_buffer(text, strlen(text), "hand.tg", &err);
    if (!g) fail_msg("parse: %s", err.msg);
    return g;
}

/* ---- the bound ------------------------------------------------------------------------ */

static void bound_hand_graphs(void **state)
{
    (void)state;
    topo t = tu_load_topo("h100:nodes=2");
    double xfer_local = 2 * t.intra.latency_s + 1e6 / t.intra.bw_bytes_per_s;
    struct {
        const char *text;
        double want_s; /* the bound, which the makespan also equals here */
    } cases[] = {
        /* a chain across two streams: tight */
        {"tg 1\n"
         "task 0 rank=0 stream=c op=delay us=10\n"
         "task 1 rank=0 stream=d op=delay us=20 after=0\n"
         "task 2 rank=0 stream=c op=delay us=5 after=1\n",
         35e-6},
        /* independent tasks on one stream: the busiest stream binds */
        {"tg 1\n"
         "task 0 rank=0 stream=c op=delay us=10\n"
         "task 1 rank=0 stream=c op=delay us=20\n"
         "task 2 rank=0 stream=c op=delay us=30\n"
         "task 3 rank=1 stream=c op=delay us=40\n",
         60e-6},
        /* rendezvous: the receive cannot end before the send could start + the transfer */
        {"tg 1\n"
         "task 0 rank=0 stream=c op=delay us=100\n"
         "task 1 rank=0 stream=x op=xchg send=1:1000000 after=0\n"
         "task 2 rank=1 stream=x op=xchg recv=0:1000000\n"
         "task 3 rank=1 stream=c op=delay us=1 after=2\n",
         100e-6 + xfer_local + 1e-6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_graph *g = parse(cases[i].text);
        double b = bound_of(g, &t), mk = simulate(g, &t, &net_analytic);
        if (fabs(b - cases[i].want_s) > 1e-12 * cases[i].want_s + 1e-15)
            fail_msg("case %zu: bound %.15g, want %.15g", i, b, cases[i].want_s);
        if (fabs(mk - b) > 1e-12 * b) fail_msg("case %zu: makespan %.15g, bound %.15g", i, mk, b);
        tg_graph_free(g);
    }
}

/* A chain of compute tasks through dependencies (one per rank and layer, each waiting for
 * the one before): the bound is tight. */
static void bound_tight_on_dep_chain(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=compute op=gemm m=4096 n=1536 k=5120\n"
                        "task 1 rank=0 stream=compute op=attn b=2 sq=1024 skv=1024 h=16 hkv=16 "
                        "dk=128 dv=128 after=0\n"
                        "task 2 rank=0 stream=x op=xchg send=1:4000000 after=1\n"
                        "task 3 rank=1 stream=x op=xchg recv=0:4000000\n"
                        "task 4 rank=1 stream=compute op=gemm m=1024 n=1024 k=1024 after=3\n");
    double b = bound_of(g, &t);
    double mk = simulate(g, &t, &net_analytic), mkf = simulate(g, &t, &net_flow);
    assert_true(b > 0);
    if (fabs(mk - b) > 1e-12 * b) fail_msg("analytic makespan %.15g, bound %.15g", mk, b);
    if (fabs(mkf - b) > 1e-9 * b) fail_msg("flow makespan %.15g, bound %.15g", mkf, b);
    tg_graph_free(g);
}

/* DEP graphs of every scheduler: no simulated makespan (analytic or flow) is below the
 * bound, and the bound is not trivially small (at least a third of the makespan). */
static void bound_below_every_dep_schedule(void **state)
{
    (void)state;
    static const char *topos[] = {"h20-1x8", "h100:nodes=2", "findep-paper-1x8"};
    ms_err err = {{0}};
    int checked = 0;
    for (size_t ti = 0; ti < 3; ti++) {
        topo t = tu_load_topo(topos[ti]);
        int P = topo_ranks(&t);
        model_cfg m =
            tu_load_model(ti == 2 ? MS_SOURCE_DIR "/tests/data/dep/tiny-mla.json" : "deepseek-v2", 2);
        routing *r = routing_create("zipf:1.2", m.routed_experts, m.layers, 5, &err);
        assert_non_null(r);
        for (int sched = 0; sched < 4; sched++)
            for (int variant = 0; variant < 3; variant++) {
                wl_dep_params p;
                wl_dep_defaults(&p);
                p.sched = (wl_dep_sched)sched;
                p.seq = 256, p.ma = 2;
                if (sched != WL_DEP_EP) p.ag = P / 2 - 1, p.eg = P - p.ag;
                if (sched != WL_DEP_NAIVE) p.r1 = 1 + variant;
                if (sched == WL_DEP_FINDEP)
                    p.r2 = 1 << variant, p.order = variant & 1 ? WL_ORDER_AASS : WL_ORDER_ASAS;
                if (variant == 2) p.route = r;
                tg_graph *g = wl_dep_build(&m, &t, &p, &err);
                if (!g) fail_msg("build: %s", err.msg);
                double b = bound_of(g, &t);
                double mk = simulate(g, &t, &net_analytic), mkf = simulate(g, &t, &net_flow);
                if (mk < b * (1 - 1e-12) || mkf < b * (1 - 1e-12))
                    fail_msg("%s %s variant %d: bound %.15g above makespan %.15g (flow %.15g)",
                             topos[ti], wl_dep_sched_name(p.sched), variant, b, mk, mkf);
                assert_true(b > mk / 3);
                checked++;
                tg_graph_free(g);
            }
        routing_free(r);
    }
    assert_int_equal(checked, 3 * 4 * 3);
}

/* ---- Algorithm 1's objective ---------------------------------------------------------- */

/* Per-chunk max-plus of the in-order schedule, written apart from alg1.c (as in
 * tests/test_dep.c). */
static double maxplus_chunks(double ta, double ts, double te, double tc, int L, int r1, int r2,
                             wl_order order)
{
    double ag = 0, c1 = 0, eg = 0, c2 = 0;
    double *A = calloc((size_t)r1, sizeof *A), *S = calloc((size_t)r1, sizeof *S);
    double *back = calloc((size_t)r1, sizeof *back);
    double *sent = calloc((size_t)r1 * r2, sizeof *sent),
           *done = calloc((size_t)r1 * r2, sizeof *done);
    for (int l = 0; l < L; l++) {
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < r1; i++) {
                if (order == WL_ORDER_ASAS && pass == 1) continue;
                int do_a = order == WL_ORDER_AASS ? pass == 0 : 1;
                int do_s = order == WL_ORDER_AASS ? pass == 1 : 1;
                if (do_a) ag = A[i] = fmax(ag, l > 0 ? fmax(back[i], S[i]) : 0) + ta;
                if (do_s) ag = S[i] = fmax(ag, A[i]) + ts;
            }
        for (int i = 0; i < r1; i++)
            for (int j = 0; j < r2; j++) sent[i * r2 + j] = c1 = fmax(c1, A[i]) + tc;
        for (int k = 0; k < r1 * r2; k++) done[k] = eg = fmax(eg, sent[k]) + te;
        for (int i = 0; i < r1; i++)
            for (int j = 0; j < r2; j++) back[i] = c2 = fmax(c2, done[i * r2 + j]) + tc;
    }
    double end = fmax(ag, c2);
    free(A), free(S), free(back), free(sent), free(done);
    return end;
}

static double urand(unsigned *seed, double lo, double hi)
{
    return lo + (hi - lo) * (rand_r(seed) / (double)RAND_MAX);
}

static solve_alg1_model random_model(unsigned *seed)
{
    solve_alg1_model m;
    memset(&m, 0, sizeof m);
    m.attn = (solve_fit){urand(seed, 0, 2e-4), urand(seed, 1e-5, 1e-3)};
    m.shared = (solve_fit){urand(seed, 0, 2e-4), urand(seed, 0, 5e-4)};
    m.expert = (solve_fit){urand(seed, 0, 2e-4), urand(seed, 1e-8, 2e-6)};
    m.a2e = (solve_fit){urand(seed, 0, 4e-4), urand(seed, 1e-8, 3e-6)};
    m.layers = 1 + rand_r(seed) % 4;
    static const int tps[] = {1, 3, 12, 64, 96, 256};
    m.tokens_per_sample = tps[rand_r(seed) % 6];
    m.ma_max = 1 + rand_r(seed) % 40;
    return m;
}

static void aass_objective_is_exact_and_asas_conservative(void **state)
{
    (void)state;
    unsigned seed = 11;
    for (int n = 0; n < 2000; n++) {
        solve_alg1_model m = random_model(&seed);
        if (n % 2) m.layers = 1 + rand_r(&seed) % 40; /* long enough for the extrapolation */
        int ma = 1 + rand_r(&seed) % m.ma_max, r1 = 1 + rand_r(&seed) % 5,
            r2 = 1 + rand_r(&seed) % 7;
        double z = (double)ma * m.tokens_per_sample / r2;
        double ta = m.attn.alpha_s + m.attn.beta_s * ma,
               ts = m.shared.alpha_s + m.shared.beta_s * ma;
        double te = m.expert.alpha_s + m.expert.beta_s * z, tc = m.a2e.alpha_s + m.a2e.beta_s * z;
        double aass = solve_alg1_makespan(&m, ma, r1, r2, WL_ORDER_AASS);
        double ref = maxplus_chunks(ta, ts, te, tc, m.layers, r1, r2, WL_ORDER_AASS);
        if (fabs(aass - ref) > 1e-9 * ref)
            fail_msg("AASS %.15g, per-chunk max-plus %.15g", aass, ref);
        double asas = solve_alg1_makespan(&m, ma, r1, r2, WL_ORDER_ASAS);
        double ref_asas = maxplus_chunks(ta, ts, te, tc, m.layers, r1, r2, WL_ORDER_ASAS);
        assert_true(asas >= ref_asas * (1 - 1e-12));
        if (r2 == 1) assert_true(fabs(asas - ref_asas) <= 1e-9 * ref_asas);
    }
}

/* Brute force over every (m_a, r1, r2, order) under the same limits and fixed fields. */
static double brute_force(const solve_alg1_model *m, const solve_request *rq, wl_dep_params *best)
{
    double best_rate = 0;
    for (int ma = 1; ma <= m->ma_max; ma++)
        for (int r1 = 1; r1 <= SOLVE_ALG1_MAX_R1 || r1 == rq->fix_r1; r1++) {
            if ((long long)r1 * ma > m->ma_max) break;
            if (rq->fix_ma > 0 && ma != rq->fix_ma) continue;
            if (rq->fix_r1 > 0 && r1 != rq->fix_r1) continue;
            long long tokens = (long long)ma * m->tokens_per_sample;
            for (int r2 = 1; r2 <= SOLVE_ALG1_MAX_R2 || r2 == rq->fix_r2; r2++) {
                if (r2 > tokens) break;
                if (tokens % r2 || (rq->fix_r2 > 0 && r2 != rq->fix_r2)) continue;
                for (int o = 0; o < 2; o++) {
                    if (rq->fix_order > 0 && rq->fix_order != o + 1) continue;
                    wl_order order = o ? WL_ORDER_AASS : WL_ORDER_ASAS;
                    double rate = (double)r1 * ma / solve_alg1_makespan(m, ma, r1, r2, order);
                    if (rate > best_rate) {
                        best_rate = rate;
                        best->ma = ma, best->r1 = r1, best->r2 = r2, best->order = order;
                    }
                }
            }
        }
    return best_rate;
}

static void alg1_finds_the_brute_force_optimum(void **state)
{
    (void)state;
    unsigned seed = 5;
    int solved = 0, fixed = 0;
    for (int n = 0; n < 600; n++) {
        solve_alg1_model m = random_model(&seed);
        solve_request rq;
        memset(&rq, 0, sizeof rq);
        if (n % 3 == 1) { /* some fixed fields */
            int f = rand_r(&seed) % 4;
            if (f == 0) rq.fix_r1 = 1 + rand_r(&seed) % 3;
            if (f == 1) rq.fix_ma = 1 + rand_r(&seed) % m.ma_max;
            if (f == 2) rq.fix_r2 = 1 + rand_r(&seed) % 4;
            if (f == 3) rq.fix_order = 1 + rand_r(&seed) % 2;
            fixed++;
        }
        wl_dep_params got, want;
        wl_dep_defaults(&got), wl_dep_defaults(&want);
        double mk = 0;
        ms_err err = {{0}};
        double want_rate = brute_force(&m, &rq, &want);
        int rc = solve_alg1_search(&m, &rq, &got, &mk, &err);
        if (want_rate <= 0) {
            assert_int_equal(rc, -1);
            continue;
        }
        if (rc != 0) fail_msg("instance %d: %s", n, err.msg);
        double got_rate = (double)got.r1 * got.ma / mk;
        if (got_rate < want_rate * (1 - 1e-12))
            fail_msg("instance %d (tps %d, ma_max %d): alg1 ma=%d r1=%d r2=%d %d rate %.12g, brute "
                     "force ma=%d r1=%d r2=%d %d rate %.12g",
                     n, m.tokens_per_sample, m.ma_max, got.ma, got.r1, got.r2, got.order, got_rate,
                     want.ma, want.r1, want.r2, want.order, want_rate);
        assert_true((long long)got.r1 * got.ma <= m.ma_max);
        if (rq.fix_r1) assert_int_equal(got.r1, rq.fix_r1);
        if (rq.fix_ma) assert_int_equal(got.ma, rq.fix_ma);
        if (rq.fix_r2) assert_int_equal(got.r2, rq.fix_r2);
        if (rq.fix_order) assert_int_equal(got.order, rq.fix_order - 1);
        solved++;
    }
    assert_true(solved > 500);
    assert_true(fixed > 150);
}

/* ---- Algorithm 1 end to end ----------------------------------------------------------- */

static solve_request request(const model_cfg *m, const topo *t, int ag, int eg, int seq)
{
    solve_request rq;
    memset(&rq, 0, sizeof rq);
    rq.m = m, rq.t = t, rq.db = tu_db, rq.net = &net_analytic;
    rq.sched = WL_DEP_FINDEP, rq.method = SOLVE_ALG1, rq.phase = WL_PREFILL;
    rq.seq = seq, rq.ag = ag, rq.eg = eg;
    return rq;
}

static void alg1_end_to_end(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    static const char *models[] = {"deepseek-v2", "qwen3-235b-a22b"};
    static const int split[][2] = {{3, 5}, {4, 4}};
    for (int mi = 0; mi < 2; mi++)
        for (int seq = 1024; seq <= 4096; seq *= 4) {
            model_cfg m = tu_load_model(models[mi], mi ? 12 : 4);
            solve_request rq = request(&m, &t, split[mi][0], split[mi][1], seq);
            solve_result res;
            ms_err err = {{0}};
            if (solve_alg1(&rq, &res, &err) != 0) fail_msg("%s: %s", models[mi], err.msg);
            assert_int_equal(res.p.ag, split[mi][0]);
            assert_int_equal(res.p.eg, split[mi][1]);
            assert_int_equal(res.p.seq, seq);
            assert_int_equal(res.simulations, 1);
            assert_true(res.throughput_tokens_per_s > 0 && res.predicted_tokens_per_s > 0);
            if (res.throughput_tokens_per_s > res.bound_tokens_per_s * (1 + 1e-12))
                fail_msg("%s S=%d: simulated %.6g tokens/s above the bound %.6g", models[mi], seq,
                         res.throughput_tokens_per_s, res.bound_tokens_per_s);
            /* the same schedule simulated again gives the same throughput */
            double again = 0;
            assert_int_equal(solve_simulate(&rq, &res.p, &again, &err), 0);
            assert_true(again == res.throughput_tokens_per_s);
            /* fixed fields are held */
            rq.fix_r1 = 2, rq.fix_r2 = 4, rq.fix_order = 2;
            solve_result fx;
            if (solve_alg1(&rq, &fx, &err) != 0) fail_msg("fixed: %s", err.msg);
            assert_int_equal(fx.p.r1, 2);
            assert_int_equal(fx.p.r2, 4);
            assert_int_equal(fx.p.order, WL_ORDER_AASS);
            assert_true(fx.predicted_tokens_per_s <= res.predicted_tokens_per_s * (1 + 1e-12));
            assert_true(fx.throughput_tokens_per_s <= fx.bound_tokens_per_s * (1 + 1e-12));
        }
}

/* Fit + search (everything but the final simulation) stays well under 10 ms. */
static void alg1_is_fast(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("deepseek-v2", 8);
    solve_request rq = request(&m, &t, 3, 5, 4096);
    ms_err err = {{0}};
    int reps = 20;
    double t0 = wall_now();
    for (int i = 0; i < reps; i++) {
        solve_alg1_model mdl;
        wl_dep_params p;
        double mk;
        if (solve_alg1_fit(&rq, &mdl, &err) != 0 ||
            solve_alg1_search(&mdl, &rq, &p, &mk, &err) != 0)
            fail_msg("%s", err.msg);
    }
    double per = (wall_now() - t0) / reps;
    printf("alg1 fit + search: %.3f ms per instance (deepseek-v2, 8 layers, 3/5, S=4096)\n",
           per * 1e3);
    assert_true(per < 10e-3);
}

static void alg1_chooses_a_split(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("qwen3-235b-a22b", 4);
    solve_request rq = request(&m, &t, 0, 0, 2048);
    solve_result res;
    ms_err err = {{0}};
    if (solve_alg1(&rq, &res, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(res.p.ag + res.p.eg, 8);
    /* no fixed split does better by the same closed form */
    for (int ag = 1; ag < 8; ag++) {
        solve_request r = request(&m, &t, ag, 8 - ag, 2048);
        solve_result one;
        if (solve_alg1(&r, &one, &err) != 0) continue;
        assert_true(one.predicted_tokens_per_s <= res.predicted_tokens_per_s * (1 + 1e-12));
    }
}

static void alg1_memory_limit_and_errors(void **state)
{
    (void)state;
    topo t = tu_load_topo("h20-1x8");
    model_cfg m = tu_load_model("deepseek-v2", 4);
    solve_request rq = request(&m, &t, 3, 5, 4096);
    solve_alg1_model mdl;
    ms_err err = {{0}};
    assert_int_equal(solve_alg1_fit(&rq, &mdl, &err), 0);
    /* M_max: the KV cache of all samples fits beside the AG weights, one more does not */
    double mem = 0;
    assert_int_equal(cdb_device_memory(tu_db, "h20", &mem, &err), 0);
    assert_true(mem == 96e9);
    assert_int_equal(cdb_device_memory(tu_db, "findep-paper", &mem, &err), -1); /* no figure */
    assert_non_null(strstr(err.msg, "memory_bytes"));
    assert_int_equal(cdb_device_memory(tu_db, "no-such-gpu", &mem, &err), -1);
    assert_non_null(strstr(err.msg, "no-such-gpu"));
    assert_true(mdl.weight_bytes_ag + mdl.ma_max * mdl.kv_bytes_per_sample <= mem);
    assert_true(mdl.weight_bytes_ag + (mdl.ma_max + 1) * mdl.kv_bytes_per_sample > mem);
    /* MLA: (kv_lora_rank + rope) x 2 bytes per token and layer */
    assert_true(mdl.kv_bytes_per_sample == 4096.0 * 4 * (m.kv_lora_rank + m.qk_rope_head_dim) * 2);
    assert_true(mdl.attn.beta_s > 0 && mdl.expert.beta_s > 0 && mdl.a2e.beta_s > 0);
    /* --ma beyond memory */
    rq.fix_ma = mdl.ma_max + 1;
    solve_result res;
    assert_int_equal(solve_alg1(&rq, &res, &err), -1);
    assert_non_null(strstr(err.msg, "memory"));
    /* not a findep request */
    rq = request(&m, &t, 3, 5, 4096);
    rq.sched = WL_DEP_PPPIPE;
    assert_int_equal(solve_alg1(&rq, &res, &err), -1);
    assert_non_null(strstr(err.msg, "findep"));
    /* a device without a memory figure needs --ma and --r1 */
    topo tp = tu_load_topo("findep-paper-1x8");
    model_cfg tiny = tu_load_model(MS_SOURCE_DIR "/tests/data/dep/tiny-mla.json", 2);
    rq = request(&tiny, &tp, 4, 4, 512);
    assert_int_equal(solve_alg1(&rq, &res, &err), -1);
    assert_non_null(strstr(err.msg, "--ma and --r1"));
    rq.fix_ma = 2, rq.fix_r1 = 2;
    if (solve_alg1(&rq, &res, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(res.p.ma, 2);
    assert_int_equal(res.p.r1, 2);
    /* linear costs (FinDEP's fits): the fitted model reproduces the simulation where the
     * closed form is exact (r2 = 1, ASAS) */
    rq.fix_r2 = 1, rq.fix_order = 1;
    if (solve_alg1(&rq, &res, &err) != 0) fail_msg("%s", err.msg);
    if (fabs(res.predicted_tokens_per_s - res.throughput_tokens_per_s) >
        1e-6 * res.throughput_tokens_per_s)
        fail_msg("predicted %.12g, simulated %.12g", res.predicted_tokens_per_s,
                 res.throughput_tokens_per_s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bound_hand_graphs),
        cmocka_unit_test(bound_tight_on_dep_chain),
        cmocka_unit_test(bound_below_every_dep_schedule),
        cmocka_unit_test(aass_objective_is_exact_and_asas_conservative),
        cmocka_unit_test(alg1_finds_the_brute_force_optimum),
        cmocka_unit_test(alg1_end_to_end),
        cmocka_unit_test(alg1_is_fast),
        cmocka_unit_test(alg1_chooses_a_split),
        cmocka_unit_test(alg1_memory_limit_and_errors),
    };
    return cmocka_run_group_tests(tests, tu_db_setup, tu_db_teardown);
}

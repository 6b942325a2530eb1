/* Tests of the MoE training workload and its solvers: the pipelined MoE chain against its
 * closed form under linear costs (FinDEP's published gemm fit, analytic network), the
 * gradient partition against production order on simulated timelines, fsmoe <= tutel <=
 * dsmoe on grid points by the solver's own choices, bad configurations, the GPT-2 MoE
 * config, the grid file, and the CLI end to end. */
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

#include "sim/sim.h"
#include "solver/solve.h"
#include "workloads/moe_train.h"

static cdb *db;

static int setup(void **state)
{
    db = tu_db_open();
    if (!db) return -1;
    return tu_cli_setup(state);
}

static int teardown(void **state)
{
    tu_db_close(db);
    return tu_cli_teardown(state);
}

static sim_engine *simulate(const tg_graph *g, const topo *t)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, db, &net_analytic, &err);
    if (!s || sim_run(s, &err) != 0) fail_msg("simulation failed: %s", err.msg);
    return s;
}

static tg_graph *build(const model_cfg *m, const topo *t, const wl_train_params *p)
{
    ms_err err = {{0}};
    tg_graph *g = wl_train_build(m, t, p, &err);
    if (!g) fail_msg("wl_train_build: %s", err.msg);
    return g;
}

/* The k-th (0-based) task of `rank` labelled exactly `label`, or TG_NONE. */
static uint32_t find(const tg_graph *g, int rank, const char *label, int k)
{
    for (uint32_t t = 0; t < g->ntasks; t++) {
        const char *l = tg_str(g, g->label[t]);
        if (g->rank[t] == rank && l && !strcmp(l, label) && k-- == 0) return t;
    }
    return TG_NONE;
}

/* ---- the pipelined chain against its closed form -------------------------------------- */

/* A 4 x 8 cluster whose GPUs are FinDEP's fitted testbed (linear gemm costs). */
static topo linear_topo(double intra_GBps, double nic_GBps)
{
    char y[512];
    snprintf(y, sizeof y,
             "name: lin\ndevice: findep-paper\nnodes: 4\ngpus_per_node: 8\n"
             "intra_node:\n  bandwidth_GBps: %g\n  latency_us: 3\n"
             "inter_node:\n  nics_per_node: 8\n  bandwidth_GBps: %g\n  latency_us: 5\n",
             intra_GBps, nic_GBps);
    topo t;
    ms_err err = {{0}};
    if (topo_parse_buffer(y, strlen(y), "lin", &t, &err) != 0) fail_msg("%s", err.msg);
    return t;
}

/* End of the last combine minus end of Order for r equal chunks of dispatch d, AllGather
 * g, expert e, ReduceScatter s, combine c, in the builder's stream orders (inter: all
 * dispatches then all combines; intra: all AllGathers then all ReduceScatters):
 *   D_j = (j+1) d,  G_j = d + g + j max(d,g),  E_j = d + g + e + j max(d,g,e),
 *   S_j = max(d+g+e+s + j max(d,g,e,s), G_{r-1} + (j+1) s),
 *   C_{r-1} = max_i S_i + (r-i) c
 * (the combines' own bound r d + r c never binds: G_{r-1} + s + r c exceeds it). */
static double chain_closed(double d, double g, double e, double s, double c, int r)
{
    double mdg = fmax(d, g), all = fmax(fmax(d, g), fmax(e, s));
    double glast = d + g + (r - 1) * mdg, best = 0;
    for (int i = 0; i < r; i++) {
        double si = fmax(d + g + e + s + i * all, glast + (i + 1) * s);
        best = fmax(best, si + (r - i) * c);
    }
    return best;
}

static void chain_case(double intra_GBps, double nic_GBps, int r, int hidden, int gemms)
{
    topo t = linear_topo(intra_GBps, nic_GBps);
    model_cfg m = tu_load_model("mixtral-8x7b", 1);
    m.hidden = hidden, m.ffn_gemms = gemms;
    wl_train_params p;
    wl_train_defaults(&p);
    p.sched = WL_TRAIN_TUTEL, p.r = r, p.batch = 2, p.seq = 1024; /* 4096 slots */
    tg_graph *g = build(&m, &t, &p);
    sim_engine *s = simulate(g, &t);
    /* independent costs: analytic network formulas from the topology figures, the
     * expert from the linear fit */
    int64_t q = 4096 / (4 * r), bytes = q * hidden * 2, piece = q * 4 * hidden * 2;
    double cross_bw = fmin(intra_GBps, nic_GBps) * 1e9, cross_lat = 2 * 3e-6 + 2 * 5e-6;
    double d = cross_lat + bytes / cross_bw;
    double ag = 7 * 2 * 3e-6 + 7.0 * piece / (intra_GBps * 1e9);
    double e;
    const int64_t f[] = {q * 4 * 8, 2, hidden, m.expert_inter / 8, gemms};
    ms_err err = {{0}};
    assert_int_equal(cdb_time(db, "findep-paper", "ffn", f, 5, &e, &err), 0);
    /* the linear fit composed: gemms x experts GEMMs of (tokens/experts) x inter x hidden */
    double e_lin = gemms * 2 * (1.7e-4 + 4.295e-14 * 2.0 * (q * 4 * 8 / 2) * (m.expert_inter / 8) * hidden);
    assert_true(fabs(e - e_lin) <= 1e-9 * e_lin);
    double want = chain_closed(d, ag, e, ag, d, r);
    char lab[64];
    snprintf(lab, sizeof lab, "L0.fwd.mb%d.combine", r - 1);
    for (int rank = 0; rank < 32; rank += 9) {
        uint32_t ord = find(g, rank, "L0.fwd.order", 0), last = find(g, rank, lab, 0);
        assert_true(ord != TG_NONE && last != TG_NONE);
        double got = sim_task_end(s, last) - sim_task_end(s, ord);
        if (fabs(got - want) > 1e-9 * want)
            fail_msg("r=%d intra %g nic %g: simulated %.12g s, closed form %.12g s", r,
                     intra_GBps, nic_GBps, got, want);
    }
    sim_free(s);
    tg_graph_free(g);
}

static void chain_matches_closed_form(void **state)
{
    (void)state;
    static const int rs[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        /* FinDEP's fitted GEMMs are slow (0.17 ms each), so links are slowed to make
         * each resource the bottleneck in turn */
        chain_case(300, 25, rs[i], 4096, 3);   /* compute bound */
        chain_case(300, 0.05, rs[i], 4096, 3); /* inter-node bound: d > g, e */
        chain_case(0.1, 400, rs[i], 1024, 2);  /* intra-node bound: g > d, e */
        chain_case(1.5, 0.5, rs[i], 2048, 3);  /* mixed */
    }
}

/* ---- the gradient partition against production order ---------------------------------- */

/* Producer label of the part holding byte b, and which occurrence of it. */
static void producer_of(const model_cfg *m, int64_t b, char *label, size_t n, int *occ)
{
    int64_t part[3], lb = wl_train_layer_grad_bytes(m);
    wl_train_layer_grad_parts(m, part);
    int layer = m->layers - 1 - (int)(b / lb);
    int64_t in = b % lb;
    int j = in < part[0] ? 0 : in < part[0] + part[1] ? 1 : 2;
    snprintf(label, n, "L%d.bwd.%s", layer, j == 0 ? "gate_wgrad" : "attn_wgrad");
    *occ = j == 2;
}

static void partition_respects_production_order(void **state)
{
    (void)state;
    static const char *const topos[] = {"a100-4x8", "h100-4x8"};
    for (int ti = 0; ti < 2; ti++) {
        topo t = tu_load_topo(topos[ti]);
        model_cfg m = tu_load_model("mixtral-8x7b", 4);
        solve_train_request rq;
        memset(&rq, 0, sizeof rq);
        rq.m = &m, rq.t = &t, rq.db = db, rq.sched = WL_TRAIN_FSMOE;
        wl_train_defaults(&rq.base);
        rq.base.batch = 4, rq.base.seq = 1024, rq.base.capacity = 1.2;
        solve_train_result *r = malloc(sizeof *r);
        ms_err err = {{0}};
        assert_non_null(r);
        assert_int_equal(solve_train(&rq, r, &err), 0);
        int in_gaps = 0;
        for (int i = 0; i < r->npieces; i++) in_gaps += r->pieces[i].gap != WL_TRAIN_TAIL;
        assert_true(in_gaps > 0); /* the case must exercise gaps, not only the tail */
        wl_train_params p;
        solve_train_params(&rq, r, &p);
        tg_graph *g = build(&m, &t, &p);
        sim_engine *s = simulate(g, &t);
        assert_true(fabs(sim_get_summary(s)->makespan_s - r->step_s) <= 1e-12 * r->step_s);
        int checked = 0;
        for (uint32_t x = 0; x < g->ntasks; x++) {
            if (g->op[x] != TG_OP_ALLREDUCE) continue;
            const char *lab = tg_str(g, g->label[x]);
            int pi;
            const char *dot = strrchr(lab, 'p');
            assert_non_null(dot);
            pi = atoi(dot + 1);
            int64_t end = 0;
            for (int i = 0; i <= pi; i++) end += r->pieces[i].bytes;
            char plab[64];
            int occ;
            producer_of(&m, end - 1, plab, sizeof plab, &occ);
            uint32_t prod = find(g, g->rank[x], plab, occ);
            assert_true(prod != TG_NONE);
            if (sim_task_start(s, x) < sim_task_end(s, prod) - 1e-15)
                fail_msg("%s on rank %d starts at %.9g s, before %s ends at %.9g s", lab,
                         g->rank[x], sim_task_start(s, x), plab, sim_task_end(s, prod));
            checked++;
        }
        assert_int_equal(checked, r->npieces * 32);
        /* a piece moved before its gradient exists is refused */
        wl_train_piece bad[2] = {{0, 4096}, {WL_TRAIN_TAIL, 0}};
        bad[1].bytes = (int64_t)m.layers * wl_train_layer_grad_bytes(&m) - 4096;
        p.pieces = bad, p.npieces = 2;
        tg_graph *g2 = wl_train_build(&m, &t, &p, &err);
        assert_null(g2);
        assert_non_null(strstr(err.msg, "before they are produced"));
        sim_free(s);
        tg_graph_free(g);
        free(r);
    }
}

/* ---- fsmoe <= tutel <= dsmoe on grid points ------------------------------------------- */

static void schedules_ordered_on_grid(void **state)
{
    (void)state;
    solve_grid_point *pts;
    int n;
    ms_err err = {{0}};
    assert_int_equal(solve_grid_load("traces/fsmoe-grid.tsv", &pts, &n, &err), 0);
    static const char *const topos[] = {"a100-4x8", "h100-4x8"};
    solve_train_result *r = malloc(sizeof *r);
    assert_non_null(r);
    int strict = 0;
    for (int ti = 0; ti < 2; ti++) {
        topo t = tu_load_topo(topos[ti]);
        for (int i = 5; i < n; i += 181) {
            model_cfg m;
            assert_int_equal(solve_grid_model(&pts[i], &m, &err), 0);
            solve_train_request rq;
            memset(&rq, 0, sizeof rq);
            rq.m = &m, rq.t = &t, rq.db = db;
            wl_train_defaults(&rq.base);
            rq.base.batch = pts[i].batch, rq.base.seq = pts[i].seq;
            rq.base.capacity = pts[i].capacity;
            double step[3];
            for (int sc = 0; sc < 3; sc++) {
                rq.sched = (wl_train_sched)sc;
                assert_int_equal(solve_train(&rq, r, &err), 0);
                step[sc] = r->step_s;
                if (sc == WL_TRAIN_FSMOE) assert_true(r->step_s <= r->model_step_s);
                if (sc == WL_TRAIN_TUTEL) /* r = 1 of tutel's trial is dsmoe's graph */
                    assert_true(fabs(r->trial_s[0] - step[WL_TRAIN_DSMOE]) <= 1e-12 * step[0]);
            }
            if (!(step[WL_TRAIN_FSMOE] <= step[WL_TRAIN_TUTEL] &&
                  step[WL_TRAIN_TUTEL] <= step[WL_TRAIN_DSMOE]))
                fail_msg("grid point %d on %s: fsmoe %.6g, tutel %.6g, dsmoe %.6g s", pts[i].id,
                         topos[ti], step[2], step[1], step[0]);
            strict += step[WL_TRAIN_FSMOE] < step[WL_TRAIN_TUTEL];
        }
    }
    assert_true(strict > 0); /* fsmoe must win somewhere, not merely tie */
    free(r);
    free(pts);
}

/* ---- bad configurations ------------------------------------------------------------------ */

static void expect_error(const model_cfg *m, const topo *t, const wl_train_params *p,
                         const char *what)
{
    ms_err err = {{0}};
    tg_graph *g = wl_train_build(m, t, p, &err);
    if (g) fail_msg("expected an error containing '%s'", what);
    if (!strstr(err.msg, what)) fail_msg("expected '%s' in: %s", what, err.msg);
}

static void bad_configurations_are_errors(void **state)
{
    (void)state;
    topo t = tu_load_topo("a100-4x8");
    model_cfg m = tu_load_model("mixtral-8x7b", 2);
    wl_train_params p;
    wl_train_defaults(&p);
    p.esp = 3;
    expect_error(&m, &t, &p, "--esp 3 does not divide the 8 GPUs per node");
    wl_train_defaults(&p);
    topo t3 = tu_load_topo("a100:nodes=3");
    expect_error(&m, &t3, &p, "8 experts, not divisible by --ep 3");
    p.ep = 2;
    expect_error(&m, &t, &p, "--ep 2 x --esp 8 = 16");
    wl_train_defaults(&p);
    p.dp = 8;
    expect_error(&m, &t, &p, "--dp must be 32");
    wl_train_defaults(&p);
    p.batch = 0;
    expect_error(&m, &t, &p, "--batch must be at least 1");
    wl_train_defaults(&p);
    p.seq = 0;
    expect_error(&m, &t, &p, "--seq must be at least 1");
    wl_train_defaults(&p);
    p.capacity = 0;
    expect_error(&m, &t, &p, "--capacity must be in (0, 64]");
    wl_train_defaults(&p);
    p.sched = WL_TRAIN_DSMOE, p.r = 2;
    expect_error(&m, &t, &p, "dsmoe does not pipeline");
    wl_train_defaults(&p);
    p.r = 0;
    expect_error(&m, &t, &p, "--r must be in 1..");
    wl_train_defaults(&p);
    p.sched = (wl_train_sched)7;
    expect_error(&m, &t, &p, "unknown training schedule");
    assert_int_equal(wl_train_sched_find("megablocks"), -1);
    assert_int_equal(wl_train_sched_find("fsmoe"), WL_TRAIN_FSMOE);
    wl_train_defaults(&p);
    wl_train_piece pc[1] = {{WL_TRAIN_TAIL, 4096}};
    p.pieces = pc, p.npieces = 1;
    expect_error(&m, &t, &p, "gradient pieces cover 4096 of the");
    pc[0].bytes = 4098;
    expect_error(&m, &t, &p, "not a positive multiple of 4");
    pc[0].gap = 999, pc[0].bytes = 4096;
    expect_error(&m, &t, &p, "gap 999 out of range");
    model_cfg ds = tu_load_model("deepseek-v2-lite", 2);
    wl_train_defaults(&p);
    expect_error(&ds, &t, &p, "MLA attention");
    model_cfg odd = m;
    odd.expert_inter = 14337;
    expect_error(&odd, &t, &p, "not divisible by --esp 8");
}

/* ---- models and the grid ------------------------------------------------------------------ */

static void gpt2_moe_has_two_gemm_experts(void **state)
{
    (void)state;
    model_cfg m = tu_load_model("gpt2-medium-moe", 0);
    assert_int_equal(m.ffn_gemms, 2);
    assert_int_equal(m.layers, 24);
    assert_int_equal(m.routed_experts, 16);
    assert_int_equal(m.kv_heads, 16);
    assert_int_equal(m.head_dim, 64);
    model_cfg x = tu_load_model("mixtral-8x7b", 0);
    assert_int_equal(x.ffn_gemms, 3);
    static const char bad[] =
        "{\"model_type\": \"mixtral\", \"hidden_act\": \"tanh\", \"hidden_size\": 64,\n"
        "\"intermediate_size\": 128, \"num_attention_heads\": 4, \"num_key_value_heads\": 4,\n"
        "\"num_hidden_layers\": 2, \"num_local_experts\": 4, \"num_experts_per_tok\": 2}";
    ms_err err = {{0}};
    assert_int_equal(model_parse_buffer(bad, sizeof bad - 1, "bad.json", &m, &err), -1);
    assert_non_null(strstr(err.msg, "bad.json:1: field 'hidden_act': unknown activation 'tanh'"));
}

static void grid_has_1458_distinct_points(void **state)
{
    (void)state;
    solve_grid_point *pts;
    int n;
    ms_err err = {{0}};
    assert_int_equal(solve_grid_load("traces/fsmoe-grid.tsv", &pts, &n, &err), 0);
    assert_int_equal(n, 1458);
    for (int i = 0; i < n; i++) {
        assert_int_equal(pts[i].id, i);
        for (int j = 0; j < i; j += 97) /* a sample of pairs: no repeated configuration */
            assert_false(pts[i].batch == pts[j].batch && pts[i].seq == pts[j].seq &&
                         pts[i].hidden == pts[j].hidden && pts[i].ffn_hidden == pts[j].ffn_hidden &&
                         pts[i].heads == pts[j].heads && pts[i].capacity == pts[j].capacity &&
                         pts[i].ffn_gemms == pts[j].ffn_gemms);
    }
    free(pts);
    tu_write_file("/tmp/ms-train-badgrid.tsv",
                  "id\tbatch\tseq\thidden\tffn_hidden\theads\tcapacity\tffn_gemms\n"
                  "0\t2\t512\t1024\t2048\t8\t1.0\t2\n1\t2\t512\t1000\t2048\t3\t1.0\t2\n");
    assert_int_equal(solve_grid_load("/tmp/ms-train-badgrid.tsv", &pts, &n, &err), -1);
    assert_non_null(strstr(err.msg, "/tmp/ms-train-badgrid.tsv:3: point 1"));
    unlink("/tmp/ms-train-badgrid.tsv");
}

/* ---- the CLI end to end ------------------------------------------------------------------- */

static double json_num(const char *s, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(s, k);
    if (!p) fail_msg("no %s in %s", key, s);
    return strtod(p + strlen(k), NULL);
}

static void cli_end_to_end(void **state)
{
    (void)state;
    const char *w = "--workload train --model mixtral-8x7b --layers 2 --topo a100-4x8 "
                    "--batch 2 --seq 1024";
    tu_output o = tu_run("sim %s --sched fsmoe --rf 8 --rb 4,2 --json", w);
    assert_int_equal(o.status, 0);
    double step = json_num(o.out, "makespan_us");
    assert_true(step > 0);
    tu_release(&o);
    char path[4200];
    snprintf(path, sizeof path, "%s/t.tg", tu_tmpdir);
    o = tu_run("graph %s --sched fsmoe --rf 8 --rb 4,2 --out %s", w, path);
    assert_int_equal(o.status, 0);
    tu_release(&o);
    o = tu_run("sim --graph %s --topo a100-4x8 --json", path);
    assert_int_equal(o.status, 0);
    assert_true(fabs(json_num(o.out, "makespan_us") - step) <= 1e-9 * step);
    tu_release(&o);
    o = tu_run("solve %s --sched fsmoe --json", w);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "\"r_fwd\":["));
    assert_non_null(strstr(o.out, "\"pieces\":[{"));
    double fs = json_num(o.out, "step_ms");
    tu_release(&o);
    o = tu_run("solve %s --sched tutel --json", w);
    assert_int_equal(o.status, 0);
    assert_true(fs <= json_num(o.out, "step_ms"));
    tu_release(&o);
    o = tu_run("solve %s --sched fsmoe", w);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "degrees bwd"));
    tu_release(&o);
    /* errors: named, with the documented exit statuses */
    static const struct {
        const char *cmd, *flags;
        int status;
        const char *err; /* "": the status alone */
    } errors[] = {
        {"sim", "--sched gshard", 1, "unknown --sched 'gshard' for --workload train"},
        {"sim", "--sched fsmoe --esp 3", 1, "--esp 3 does not divide the 8 GPUs per node"},
        {"sim", "--sched fsmoe --rb 1,2,4", 1, "--rb gives more than the model's 2 layers"},
        {"sim", "--sched fsmoe --pieces 0:4096,tail:1", 1, "gradient piece"},
        {"sim", "--sched tutel --batch x", 2, ""},
        {"solve", "--sched fsmoe --r 2", 2, ""},
    };
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        o = tu_run("%s %s %s", errors[i].cmd, w, errors[i].flags);
        tu_expect_fail(&o, errors[i].status, errors[i].err);
        tu_release(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_matches_closed_form),
        cmocka_unit_test(partition_respects_production_order),
        cmocka_unit_test(schedules_ordered_on_grid),
        cmocka_unit_test(bad_configurations_are_errors),
        cmocka_unit_test(gpt2_moe_has_two_gemm_experts),
        cmocka_unit_test(grid_has_1458_distinct_points),
        cmocka_unit_test(cli_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Tests of `moesched validate` (cli/cmd_validate.c) under mpirun with 2 ranks on the host
 * backend: the JSON fields and their consistency, the per-task TSV, the side-by-side
 * Perfetto trace, --repeat (the median run is the one reported), agreement of the
 * prediction with `moesched sim`, workload flags, and refusals (rank-count mismatch, bad
 * flags). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "testutil.h"

static const char *db_path;

/* Two ranks, compute on both, one transfer each way, 7 tasks. */
static const char graph_text[] =
    "tg 1\n"
    "task 0 rank=0 stream=compute op=gemm m=64 n=256 k=256 label=a.gemm\n"
    "task 1 rank=0 stream=a2e op=xchg send=1:65536 after=0 label=a.send\n"
    "task 2 rank=1 stream=a2e op=xchg recv=0:65536 label=b.recv\n"
    "task 3 rank=1 stream=compute op=ffn tokens=64 experts=4 hidden=256 inter=128 after=2 "
    "label=b.ffn\n"
    "task 4 rank=1 stream=e2a op=xchg send=0:65536 after=3 label=b.send\n"
    "task 5 rank=0 stream=e2a op=xchg recv=1:65536 label=a.recv\n"
    "task 6 rank=0 stream=compute op=gemm m=64 n=256 k=256 after=5 label=a.gemm2\n";

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) fail_msg("JSON: no number '%s'", key);
    return v->valuedouble;
}

static void test_json_tsv_trace(void **state)
{
    (void)state;
    const char *g = tu_tmp_path("g.tg"), *tsv = tu_tmp_path("t.tsv");
    const char *trace = tu_tmp_path("t.json");
    tu_write_file(g, graph_text);
    tu_output r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --json --tasks %s "
                             "--trace %s",
                          db_path, g, tsv, trace);
    if (r.status != 0) fail_msg("validate failed (%d):\n%s\n%s", r.status, r.out, r.err);
    cJSON *j = cJSON_Parse(r.out);
    if (!j) fail_msg("not JSON:\n%s", r.out);
    double pred = num(j, "predicted_makespan_us"), meas = num(j, "measured_makespan_us");
    double e = num(j, "makespan_error");
    assert_true(pred > 0 && meas > 0);
    assert_true(fabs(e - (meas - pred) / meas) < 1e-9);
    assert_int_equal((int)num(j, "tasks"), 7);
    assert_int_equal((int)num(j, "repeat"), 3); /* the default */
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "measured_makespans_us");
    assert_int_equal(cJSON_GetArraySize(runs), 3);
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "per_task");
    assert_non_null(pt);
    assert_int_equal((int)num(pt, "tasks"), 7);
    assert_true(num(pt, "median_abs_error") <= num(pt, "p90_abs_error"));
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "compute_tasks");
    assert_int_equal((int)num(ct, "tasks"), 3);
    const cJSON *worst = cJSON_GetObjectItemCaseSensitive(j, "worst_tasks");
    assert_true(cJSON_IsArray(worst));
    assert_int_equal(cJSON_GetArraySize(worst), 5);
    /* sorted by |measured - predicted|, largest first; error = (measured - predicted) /
     * measured */
    double prev = INFINITY;
    for (int i = 0; i < 5; i++) {
        const cJSON *w = cJSON_GetArrayItem(worst, i);
        double mu = num(w, "measured_us"), pu = num(w, "predicted_us");
        assert_true(fabs(mu - pu) <= prev);
        assert_true(fabs(num(w, "error") - (mu - pu) / mu) < 1e-9);
        prev = fabs(mu - pu);
    }
    cJSON_Delete(j);
    tu_release(&r);

    /* TSV: exactly this header, one row per task, durations that sum sensibly */
    char *t = tu_slurp(tsv);
    const char *hdr = "task_id\trank\tstream\tlabel\tpredicted_us\tmeasured_us\n";
    assert_memory_equal(t, hdr, strlen(hdr));
    int lines = 0;
    for (char *p = t; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 8);
    tu_expect_contains(t, "\n3\t1\tcompute\tb.ffn\t");
    tu_expect_contains(t, "\n1\t0\ta2e\ta.send\t");
    /* every measured duration is positive */
    char *line = strchr(t, '\n') + 1;
    for (int i = 0; i < 7; i++) {
        char *last = line;
        for (int f = 0; f < 5; f++) last = strchr(last, '\t') + 1;
        assert_true(strtod(last, NULL) > 0);
        line = strchr(line, '\n') + 1;
    }
    free(t);

    /* trace: predicted (pid = rank) and measured (pid = ranks + rank), every task twice */
    char *tr = tu_slurp(trace);
    cJSON *tj = cJSON_Parse(tr);
    if (!tj) fail_msg("trace is not JSON");
    tu_expect_contains(tr, "\"name\":\"rank 0 predicted\"");
    tu_expect_contains(tr, "\"name\":\"rank 1 measured\"");
    int x = 0, pid_meas = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(tj, "traceEvents"))
    {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(ev, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X")) continue;
        x++;
        pid_meas += num(ev, "pid") >= 2;
    }
    assert_int_equal(x, 14);
    assert_int_equal(pid_meas, 7);
    cJSON_Delete(tj);
    free(tr);
}

/* --repeat N: N timed runs; the reported makespan, per-task durations and trace are those
 * of the run with the median makespan (the lower middle one for even N); min and max and
 * their errors come with it. */
static void test_repeat(void **state)
{
    (void)state;
    const char *g = tu_tmp_path("g4.tg"), *trace = tu_tmp_path("t4.json");
    tu_write_file(g, graph_text);
    tu_output r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --json --repeat 4 "
                                "--warmup 0 --trace %s",
                             db_path, g, trace);
    if (r.status != 0) fail_msg("validate failed (%d):\n%s\n%s", r.status, r.out, r.err);
    cJSON *j = cJSON_Parse(r.out);
    if (!j) fail_msg("not JSON:\n%s", r.out);
    assert_int_equal((int)num(j, "repeat"), 4);
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(j, "measured_makespans_us");
    assert_true(cJSON_IsArray(all));
    assert_int_equal(cJSON_GetArraySize(all), 4);
    double v[4], lo = INFINITY, hi = 0;
    for (int i = 0; i < 4; i++) {
        v[i] = cJSON_GetArrayItem(all, i)->valuedouble;
        assert_true(v[i] > 0);
        lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    }
    int med = (int)num(j, "median_run");
    assert_true(med >= 0 && med < 4);
    double meas = num(j, "measured_makespan_us"), pred = num(j, "predicted_makespan_us");
    assert_true(meas == v[med]);
    int below = 0, above = 0; /* the lower middle of 4: one run below it, two above */
    for (int i = 0; i < 4; i++) below += v[i] < meas, above += v[i] > meas;
    assert_true(below <= 1 && above <= 2);
    assert_true(num(j, "measured_makespan_min_us") == lo);
    assert_true(num(j, "measured_makespan_max_us") == hi);
    assert_true(fabs(num(j, "makespan_error") - (meas - pred) / meas) < 1e-9);
    assert_true(fabs(num(j, "makespan_error_min") - (lo - pred) / lo) < 1e-9);
    assert_true(fabs(num(j, "makespan_error_max") - (hi - pred) / hi) < 1e-9);
    cJSON_Delete(j);
    tu_release(&r);
    /* the trace's measured side is the median run: its span is the reported makespan */
    char *tr = tu_slurp(trace);
    cJSON *tj = cJSON_Parse(tr);
    if (!tj) fail_msg("trace is not JSON");
    double t0 = INFINITY, t1 = 0;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(tj, "traceEvents"))
    {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(ev, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") || num(ev, "pid") < 2) continue;
        t0 = fmin(t0, num(ev, "ts")), t1 = fmax(t1, num(ev, "ts") + num(ev, "dur"));
    }
    assert_true(fabs((t1 - t0) - meas) < 0.01);
    cJSON_Delete(tj);
    free(tr);

    /* the text form says how many runs and the spread; one run says nothing of it */
    r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --repeat 2 --warmup 0", db_path,
                   g);
    if (r.status != 0) fail_msg("validate failed (%d):\n%s\n%s", r.status, r.out, r.err);
    tu_expect_contains_all(r.out, "median of 2 runs (run ", ", min ", " over the runs", NULL);
    tu_release(&r);
    r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --repeat 1 --warmup 0 --json",
                   db_path, g);
    if (r.status != 0) fail_msg("validate failed (%d):\n%s\n%s", r.status, r.out, r.err);
    j = cJSON_Parse(r.out);
    assert_non_null(j);
    assert_int_equal((int)num(j, "repeat"), 1);
    assert_int_equal((int)num(j, "median_run"), 0);
    assert_true(num(j, "measured_makespan_min_us") == num(j, "measured_makespan_us"));
    cJSON_Delete(j);
    tu_release(&r);
}

/* The prediction is the simulator's: with the topology's own link figures it equals
 * `moesched sim`'s makespan on the same database. */
static void test_prediction_is_sim(void **state)
{
    (void)state;
    const char *g = tu_tmp_path("g2.tg");
    tu_write_file(g, graph_text);
    tu_output r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --json --no-link-fit",
                          db_path, g);
    if (r.status != 0) fail_msg("validate failed:\n%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    double pred = num(j, "predicted_makespan_us");
    const cJSON *link = cJSON_GetObjectItemCaseSensitive(j, "link");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(link, "from")->valuestring, "topology");
    cJSON_Delete(j);
    tu_release(&r);
    r = tu_run("sim --db %s --graph %s --topo host-cpu:nodes=1,gpus=2 --json", db_path, g);
    assert_int_equal(r.status, 0);
    double sim = strtod(strstr(r.out, "\"makespan_us\":") + 14, NULL);
    tu_release(&r);
    assert_true(fabs(pred - sim) < 1e-6 * sim + 1e-3);
}

/* Workload flags build the graph as sim does; the text report names the parts. */
static void test_workload_text(void **state)
{
    (void)state;
    tu_output r = tu_mpi_run(2, "validate --backend host --db %s --workload dep --sched findep "
                                "--model qwen3-30b-a3b --layers 1 --seq 4 --r1 2 --ma 1 --r2 2 "
                                "--topo host-cpu:nodes=1,gpus=2 --ag 1 --eg 1 --warmup 0",
                             db_path);
    if (r.status != 0) fail_msg("validate failed (%d):\n%s\n%s", r.status, r.out, r.err);
    tu_expect_contains_all(r.out, "predicted makespan", "measured makespan", "makespan error",
                           "worst tasks (by |measured - predicted|)",
                           "validate        workload: 28 tasks on 2 ranks, host backend",
                           "cost models     gemm:", NULL);
    tu_release(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    const char *g = tu_tmp_path("g3.tg");
    tu_write_file(g, graph_text);
    tu_output r = tu_mpi_run(1, "validate --backend host --db %s --graph %s", db_path, g);
    tu_expect_fail(&r, 1, "the graph has 2 ranks but 1 MPI processes were started");
    tu_release(&r);
    r = tu_run("validate --backend host --graph %s --workload dep", g);
    tu_expect_fail(&r, 2, "either --graph or workload flags, not both");
    tu_release(&r);
    r = tu_run("validate --graph %s", g);
    tu_expect_fail(&r, 2, "--backend and either --graph or workload flags are required");
    tu_release(&r);
    r = tu_run("validate --backend host --graph %s --net nope", g);
    tu_expect_fail(&r, 2, "unknown network model 'nope'");
    tu_release(&r);
    r = tu_run("validate --backend host --graph %s --repeat 0", g);
    tu_expect_fail(&r, 2, "--repeat expects a number of timed runs from 1 to 1000, got '0'");
    tu_release(&r);
    r = tu_run("validate --backend host --graph %s --repeat 1001", g);
    tu_expect_fail(&r, 2, "--repeat expects a number of timed runs from 1 to 1000, got '1001'");
    tu_release(&r);
    r = tu_run("validate --backend host --graph %s --repeat three", g);
    tu_expect_fail(&r, 2, "--repeat expects a number of timed runs from 1 to 1000, got 'three'");
    tu_release(&r);
    /* a graph whose costs the database cannot give fails before anything runs */
    const char *bad = tu_tmp_path("bad.tg");
    tu_write_file(bad, "tg 1\ntask 0 rank=0 stream=compute op=gemm m=8 n=8 k=8\n"
                       "task 1 rank=1 stream=compute op=gemm m=8 n=8 k=8\n");
    r = tu_mpi_run(2, "validate --backend host --db %s --graph %s --topo h999:nodes=1,gpus=2",
                   db_path, bad);
    tu_expect_fail(&r, 1, "h999");
    tu_release(&r);
}

static int setup(void **state)
{
    if (tu_mpi_setup(state)) return -1;
    static char p[4200];
    snprintf(p, sizeof p, "%s/cost.db", tu_tmpdir);
    ms_err err = {{0}};
    if (tu_db_build(p, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    db_path = p;
    return 0;
}

int main(void)
{
    tu_mpi_timeout_s = 300;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_tsv_trace),
        cmocka_unit_test(test_repeat),
        cmocka_unit_test(test_prediction_is_sim),
        cmocka_unit_test(test_workload_text),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, tu_cli_teardown);
}

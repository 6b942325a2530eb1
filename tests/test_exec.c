/* Tests of the executor (exec/) through the real binary under mpirun, host backend:
 * --check on naive, pppipe, findep and ep graphs (prefill and decode) with 2 and 4 ranks,
 * and a corrupted expert output that must fail it; the watchdog turning a stall into an
 * error naming the rank, stream and task; a failing task ending the whole job; rank-count
 * and backend errors; measured timelines that respect the graph's dependencies across
 * ranks; and the trace (valid JSON, every task once). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/testutil.h"

/* A small DeepSeek-V2-shaped model (MLA, one dense layer, shared expert, 8 routed experts
 * with top-2): its check runs take well under a second. */
static const char tiny_model[] =
    "{\"model_type\": \"deepseek_v2\", \"num_hidden_layers\": 3, \"hidden_size\": 64,\n"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"num_experts_per_tok\": 2,\n"
    " \"intermediate_size\": 96, \"kv_lora_rank\": 32, \"q_lora_rank\": null,\n"
    " \"qk_nope_head_dim\": 16, \"qk_rope_head_dim\": 8, \"v_head_dim\": 16,\n"
    " \"n_routed_experts\": 8, \"n_shared_experts\": 1, \"moe_intermediate_size\": 32,\n"
    " \"first_k_dense_replace\": 1}\n";

#define EXIT_USAGE_CODE 2 /* cli/cmd.h EXIT_USAGE */

static char model_path[4200];

static int setup(void **state)
{
    if (tu_mpi_setup(state) != 0) return -1;
    snprintf(model_path, sizeof model_path, "%s", tu_tmp_path("tiny.json"));
    tu_write_file(model_path, tiny_model);
    return 0;
}

static void expect_check_ok(int np, const char *flags)
{
    tu_output r = tu_mpi_run(np, "exec --backend host --workload dep --model %s --seq 8 "
                                    "--ma 2 --warmup 0 --check %s", model_path, flags);
    if (r.status != 0 || !strstr(r.out, ": ok"))
        fail_msg("np %d %s: status %d\nstdout:\n%s\nstderr:\n%s", np, flags, r.status, r.out,
                 r.err);
    double e = tu_check_error(r.out);
    assert_true(e >= 0 && e <= 1e-4);
    tu_release(&r);
}

static void check_two_ranks(void **state)
{
    (void)state;
    TU_NEED_MPI();
    expect_check_ok(2, "--sched naive --ag 1 --eg 1");
    expect_check_ok(2, "--sched pppipe --ag 1 --eg 1 --r1 2");
    expect_check_ok(2, "--sched findep --ag 1 --eg 1 --r1 2 --r2 4 --order aass");
    expect_check_ok(2, "--sched ep --r1 2");
}

static void check_four_ranks(void **state)
{
    (void)state;
    TU_NEED_MPI();
    expect_check_ok(4, "--sched naive --ag 2 --eg 2");
    expect_check_ok(4, "--sched pppipe --ag 3 --eg 1 --r1 2");
    expect_check_ok(4, "--sched findep --ag 1 --eg 3 --r1 2 --r2 4 --routing zipf:1.2");
    expect_check_ok(4, "--sched findep --ag 2 --eg 2 --r1 2 --r2 2 --phase decode --ma 4");
    expect_check_ok(4, "--sched ep --r1 2 --routing zipf:1.2");
    /* m2n exchanges run through their pairwise expansion */
    expect_check_ok(4, "--sched findep --ag 2 --eg 2 --r1 2 --r2 2 --exchange m2n");
    expect_check_ok(4, "--sched pppipe --ag 1 --eg 3 --r1 2 --routing zipf:1.2 --exchange m2n");
}

/* One expert output row scaled by 1.01 on the expert rank: the comparison must fail. */
static void check_detects_corruption(void **state)
{
    (void)state;
    TU_NEED_MPI();
    tu_output r = tu_mpi_run(2, "exec --backend host --workload dep --sched findep --model %s "
                                   "--seq 8 --ma 2 --ag 1 --eg 1 --r1 2 --r2 2 --warmup 0 --check",
                          model_path);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    setenv("MOESCHED_CHECK_CORRUPT", "1", 1);
    r = tu_mpi_run(2, "exec --backend host --workload dep --sched findep --model %s --seq 8 "
                         "--ma 2 --ag 1 --eg 1 --r1 2 --r2 2 --warmup 0 --check", model_path);
    unsetenv("MOESCHED_CHECK_CORRUPT");
    if (r.status == 0 || !strstr(r.err, "check failed") || !strstr(r.out, "FAILED"))
        fail_msg("corruption not detected: status %d\n%s\n%s", r.status, r.out, r.err);
    assert_true(tu_check_error(r.out) > 1e-4);
    tu_release(&r);
}

/* --check with --graph: the model must be named, and a graph without DEP labels refused. */
static void check_from_graph_file(void **state)
{
    (void)state;
    TU_NEED_MPI();
    tu_output r = tu_run("graph --workload dep --sched findep --model %s --topo "
                         "host-cpu:nodes=1,gpus=2 --ag 1 --eg 1 --seq 8 --ma 2 --r1 2 --r2 2 "
                         "--out %s/f.tg", model_path, tu_tmpdir);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    r = tu_mpi_run(2, "exec --backend host --graph %s/f.tg --model %s --warmup 0 --check",
                tu_tmpdir, model_path);
    if (r.status != 0 || tu_check_error(r.out) != 0.0)
        fail_msg("status %d\n%s\n%s", r.status, r.out, r.err);
    tu_release(&r);
    r = tu_mpi_run(2, "exec --backend host --graph %s/f.tg --check", tu_tmpdir);
    assert_int_equal(r.status, EXIT_USAGE_CODE);
    assert_non_null(strstr(r.err, "needs --model"));
    tu_release(&r);
    /* a model that does not match the graph */
    r = tu_mpi_run(2, "exec --backend host --graph %s/f.tg --model deepseek-v2-lite --layers 3 "
                         "--check", tu_tmpdir);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "give the model the graph was built for"));
    tu_release(&r);
    const char *path = tu_tmp_path("plain.tg");
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=gemm m=8 n=8 k=8 label=mm\n"
                        "task 1 rank=1 stream=compute op=gemm m=8 n=8 k=8 label=mm\n");
    r = tu_mpi_run(2, "exec --backend host --graph %s --model %s --check", path, model_path);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "label not of the DEP form"));
    tu_release(&r);
}

/* Runs the graph text (written to the temp file name) on 2 ranks with flags: the job must
 * fail within max_wall_s, saying each of the strings after max_wall_s (a NULL ends them)
 * on stderr. */
static void expect_job_fails(const char *name, const char *graph, const char *flags,
                             double max_wall_s, ...)
{
    const char *path = tu_tmp_path(name);
    tu_write_file(path, graph);
    tu_output r = tu_mpi_run(2, "exec --backend host --graph %s %s", path, flags);
    assert_int_not_equal(r.status, 0);
    va_list ap;
    va_start(ap, max_wall_s);
    tu_vexpect_contains_all(r.err, ap);
    va_end(ap);
    assert_true(r.wall_s < max_wall_s);
    tu_release(&r);
}

/* A graph that stalls (a 10 s delay that everything waits for) under --watchdog 0.5:
 * an error naming the rank, the stream and the task, well before the delay ends. */
static void watchdog_names_the_stuck_task(void **state)
{
    (void)state;
    TU_NEED_MPI();
    expect_job_fails("hang.tg",
                     "tg 1\n"
                     "task 0 rank=0 stream=compute op=delay us=10000000 label=slow\n"
                     "task 1 rank=0 stream=a2e op=xchg send=1:1024 after=0 label=send\n"
                     "task 2 rank=1 stream=a2e op=xchg recv=0:1024 label=recv\n"
                     "task 3 rank=1 stream=compute op=gemm m=64 n=64 k=64 after=2\n",
                     "--watchdog 0.5", 8.0, "watchdog: rank 0", "stream compute",
                     "task 0 (slow)", NULL);
}

/* A task that fails on rank 0 (attention with 3 heads over 2 KV heads) while rank 1
 * waits for its data: the job ends with rank 0's message, rank 1 does not hang. */
static void failing_task_ends_the_job(void **state)
{
    (void)state;
    TU_NEED_MPI();
    /* 30 s: well under the 60 s default watchdog */
    expect_job_fails("bad.tg",
                     "tg 1\n"
                     "task 0 rank=0 stream=compute op=attn b=1 sq=4 skv=4 h=3 hkv=2 dk=4 dv=4 "
                     "label=badattn\n"
                     "task 1 rank=0 stream=x op=xchg send=1:64 after=0\n"
                     "task 2 rank=1 stream=x op=xchg recv=0:64\n",
                     "", 30.0,
                     "rank 0: task 0 (badattn) on rank 0 stream compute: attention failed", NULL);
}

static void rank_count_and_backend_errors(void **state)
{
    (void)state;
    TU_NEED_MPI();
    tu_write_file(tu_tmp_path("two.tg"), "tg 1\n"
                        "task 0 rank=0 stream=compute op=delay us=10\n"
                        "task 1 rank=1 stream=compute op=delay us=10\n");
    static const struct {
        int np;
        const char *flags, *graph; /* graph: a file in the temp dir */
        int status;
        const char *err;
    } cases[] = {
        {3, "--backend host", "two.tg", 1,
         "the graph has 2 ranks but 3 MPI processes were started"},
        {2, "--backend tpu", "two.tg", EXIT_USAGE_CODE, "unknown backend 'tpu'"},
        {2, "", "two.tg", EXIT_USAGE_CODE, "--backend"},
        {2, "--backend host", "missing.tg", 1, "missing.tg"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_output r = tu_mpi_run(cases[i].np, "exec %s --graph %s", cases[i].flags,
                                 tu_tmp_path(cases[i].graph));
        assert_int_equal(r.status, cases[i].status);
        assert_non_null(strstr(r.err, cases[i].err));
        tu_release(&r);
    }
}

/* Measured times respect the graph: rank 1's compute waits for rank 0's 30 ms delay
 * through the exchange, a cross-stream dep on rank 0 orders its tail, and the trace
 * holds every task once with pid = rank. */
static void timeline_and_trace(void **state)
{
    (void)state;
    TU_NEED_MPI();
    const char *path = tu_tmp_path("chain.tg"), *trace = tu_tmp_path("trace.json");
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=delay us=30000 label=A\n"
                        "task 1 rank=0 stream=a2e op=xchg send=1:65536 after=0 label=X\n"
                        "task 2 rank=1 stream=a2e op=xchg recv=0:65536 label=X\n"
                        "task 3 rank=1 stream=compute op=delay us=10000 after=2 label=B\n"
                        "task 4 rank=1 stream=compute op=gemm m=32 n=32 k=32 label=G\n"
                        "task 5 rank=0 stream=coll op=delay us=5000 after=1 label=C\n");
    tu_output r = tu_mpi_run(2, "exec --backend host --graph %s --json --trace %s", path,
                          trace);
    if (r.status != 0) fail_msg("status %d\n%s\n%s", r.status, r.out, r.err);
    cJSON *j = cJSON_Parse(r.out);
    assert_non_null(j);
    double mk = cJSON_GetObjectItem(j, "measured_makespan_us")->valuedouble;
    assert_true(mk >= 40000 && mk < 1e6);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "per_rank")), 2);
    cJSON_Delete(j);
    tu_release(&r);

    char *txt = tu_slurp(trace);
    cJSON *t = cJSON_Parse(txt);
    free(txt);
    assert_non_null(t);
    cJSON *ev = cJSON_GetObjectItem(t, "traceEvents");
    assert_non_null(ev);
    double ts[6], dur[6];
    int seen[6] = {0}, pid[6];
    cJSON *e;
    cJSON_ArrayForEach(e, ev)
    {
        if (strcmp(cJSON_GetObjectItem(e, "ph")->valuestring, "X") != 0) continue;
        int id = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "args"), "id")->valueint;
        assert_true(id >= 0 && id < 6);
        seen[id]++;
        ts[id] = cJSON_GetObjectItem(e, "ts")->valuedouble;
        dur[id] = cJSON_GetObjectItem(e, "dur")->valuedouble;
        pid[id] = cJSON_GetObjectItem(e, "pid")->valueint;
    }
    cJSON_Delete(t);
    for (int i = 0; i < 6; i++) assert_int_equal(seen[i], 1);
    assert_int_equal(pid[0], 0);
    assert_int_equal(pid[3], 1);
    assert_true(dur[0] >= 30000 && dur[3] >= 10000);
    double slack = 50; /* us: clock alignment and thread wake-up */
    assert_true(ts[1] + slack >= ts[0] + dur[0]); /* the send waits for A (cross-stream) */
    assert_true(ts[3] + slack >= ts[2] + dur[2]); /* B waits for the receive */
    assert_true(ts[2] + dur[2] + slack >= ts[0] + dur[0]); /* the receive ends after A */
    assert_true(ts[4] + slack >= ts[3] + dur[3]); /* stream order */
    assert_true(ts[5] + slack >= ts[1] + dur[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_two_ranks),
        cmocka_unit_test(check_four_ranks),
        cmocka_unit_test(check_detects_corruption),
        cmocka_unit_test(check_from_graph_file),
        cmocka_unit_test(watchdog_names_the_stuck_task),
        cmocka_unit_test(failing_task_ends_the_job),
        cmocka_unit_test(rank_count_and_backend_errors),
        cmocka_unit_test(timeline_and_trace),
    };
    return cmocka_run_group_tests(tests, setup, tu_cli_teardown);
}

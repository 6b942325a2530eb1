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
static int have_mpirun;

static int setup(void **state)
{
    if (tu_cli_setup(state) != 0) return -1;
    snprintf(model_path, sizeof model_path, "%s/tiny.json", tu_tmpdir);
    FILE *f = fopen(model_path, "w");
    if (!f) return -1;
    fputs(tiny_model, f);
    fclose(f);
    /* what CI (root, 2 cores) needs; MPI's own allocations are not ours to leak-check */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    static char asan[1024];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", prev ? prev : "", prev && *prev ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    have_mpirun = system("command -v mpirun >/dev/null 2>&1") == 0;
    return 0;
}

/* Runs `mpirun -np N moesched ARGS` (under a 60 s timeout, so nothing can hang the
 * suite); also returns the wall time in seconds. */
static tu_output mpi_run(int np, double *wall_s, const char *fmt, ...)
{
    char args[8192], cmd[32768], o[4200], e[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/stdout", tu_tmpdir);
    snprintf(e, sizeof e, "%s/stderr", tu_tmpdir);
    snprintf(cmd, sizeof cmd, "timeout 60 mpirun --oversubscribe -np %d %s %s >%s 2>%s </dev/null",
             np, tu_bin, args, o, e);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (wall_s) *wall_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    tu_output r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128, tu_slurp(o), tu_slurp(e)};
    return r;
}

#define NEED_MPI()                                                   \
    do {                                                             \
        if (!have_mpirun) {                                          \
            fprintf(stderr, "mpirun not found: skipping\n");         \
            skip();                                                  \
        }                                                            \
    } while (0)

/* The reported check error, or -1 when the line is missing. */
static double check_err(const char *out)
{
    const char *p = strstr(out, "max relative error ");
    return p ? atof(p + strlen("max relative error ")) : -1;
}

static void expect_check_ok(int np, const char *flags)
{
    tu_output r = mpi_run(np, NULL, "exec --backend host --workload dep --model %s --seq 8 "
                                    "--ma 2 --warmup 0 --check %s", model_path, flags);
    if (r.status != 0 || !strstr(r.out, ": ok"))
        fail_msg("np %d %s: status %d\nstdout:\n%s\nstderr:\n%s", np, flags, r.status, r.out,
                 r.err);
    double e = check_err(r.out);
    assert_true(e >= 0 && e <= 1e-4);
    tu_release(&r);
}

static void check_two_ranks(void **state)
{
    (void)state;
    NEED_MPI();
    expect_check_ok(2, "--sched naive --ag 1 --eg 1");
    expect_check_ok(2, "--sched pppipe --ag 1 --eg 1 --r1 2");
    expect_check_ok(2, "--sched findep --ag 1 --eg 1 --r1 2 --r2 4 --order aass");
    expect_check_ok(2, "--sched ep --r1 2");
}

static void check_four_ranks(void **state)
{
    (void)state;
    NEED_MPI();
    expect_check_ok(4, "--sched naive --ag 2 --eg 2");
    expect_check_ok(4, "--sched pppipe --ag 3 --eg 1 --r1 2");
    expect_check_ok(4, "--sched findep --ag 1 --eg 3 --r1 2 --r2 4 --routing zipf:1.2");
    expect_check_ok(4, "--sched findep --ag 2 --eg 2 --r1 2 --r2 2 --phase decode --ma 4");
    expect_check_ok(4, "--sched ep --r1 2 --routing zipf:1.2");
}

/* One expert output row scaled by 1.01 on the expert rank: the comparison must fail. */
static void check_detects_corruption(void **state)
{
    (void)state;
    NEED_MPI();
    tu_output r = mpi_run(2, NULL, "exec --backend host --workload dep --sched findep --model %s "
                                   "--seq 8 --ma 2 --ag 1 --eg 1 --r1 2 --r2 2 --warmup 0 --check",
                          model_path);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    setenv("MOESCHED_CHECK_CORRUPT", "1", 1);
    r = mpi_run(2, NULL, "exec --backend host --workload dep --sched findep --model %s --seq 8 "
                         "--ma 2 --ag 1 --eg 1 --r1 2 --r2 2 --warmup 0 --check", model_path);
    unsetenv("MOESCHED_CHECK_CORRUPT");
    if (r.status == 0 || !strstr(r.err, "check failed") || !strstr(r.out, "FAILED"))
        fail_msg("corruption not detected: status %d\n%s\n%s", r.status, r.out, r.err);
    assert_true(check_err(r.out) > 1e-4);
    tu_release(&r);
}

/* --check with --graph: the model must be named, and a graph without DEP labels refused. */
static void check_from_graph_file(void **state)
{
    (void)state;
    NEED_MPI();
    tu_output r = tu_run("graph --workload dep --sched findep --model %s --topo "
                         "host-cpu:nodes=1,gpus=2 --ag 1 --eg 1 --seq 8 --ma 2 --r1 2 --r2 2 "
                         "--out %s/f.tg", model_path, tu_tmpdir);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    r = mpi_run(2, NULL, "exec --backend host --graph %s/f.tg --model %s --warmup 0 --check",
                tu_tmpdir, model_path);
    if (r.status != 0 || check_err(r.out) != 0.0)
        fail_msg("status %d\n%s\n%s", r.status, r.out, r.err);
    tu_release(&r);
    r = mpi_run(2, NULL, "exec --backend host --graph %s/f.tg --check", tu_tmpdir);
    assert_int_equal(r.status, EXIT_USAGE_CODE);
    assert_non_null(strstr(r.err, "needs --model"));
    tu_release(&r);
    /* a model that does not match the graph */
    r = mpi_run(2, NULL, "exec --backend host --graph %s/f.tg --model deepseek-v2-lite --layers 3 "
                         "--check", tu_tmpdir);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "give the model the graph was built for"));
    tu_release(&r);
    char path[4300];
    snprintf(path, sizeof path, "%s/plain.tg", tu_tmpdir);
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=gemm m=8 n=8 k=8 label=mm\n"
                        "task 1 rank=1 stream=compute op=gemm m=8 n=8 k=8 label=mm\n");
    r = mpi_run(2, NULL, "exec --backend host --graph %s --model %s --check", path, model_path);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "label not of the DEP form"));
    tu_release(&r);
}

/* A graph that stalls (a 10 s delay that everything waits for) under --watchdog 0.5:
 * an error naming the rank, the stream and the task, well before the delay ends. */
static void watchdog_names_the_stuck_task(void **state)
{
    (void)state;
    NEED_MPI();
    char path[4300];
    snprintf(path, sizeof path, "%s/hang.tg", tu_tmpdir);
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=delay us=10000000 label=slow\n"
                        "task 1 rank=0 stream=a2e op=xchg send=1:1024 after=0 label=send\n"
                        "task 2 rank=1 stream=a2e op=xchg recv=0:1024 label=recv\n"
                        "task 3 rank=1 stream=compute op=gemm m=64 n=64 k=64 after=2\n");
    double wall = 0;
    tu_output r = mpi_run(2, &wall, "exec --backend host --graph %s --watchdog 0.5", path);
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "watchdog: rank 0") || !strstr(r.err, "stream compute") ||
        !strstr(r.err, "task 0 (slow)"))
        fail_msg("unexpected message:\n%s", r.err);
    assert_true(wall < 8.0);
    tu_release(&r);
}

/* A task that fails on rank 0 (attention with 3 heads over 2 KV heads) while rank 1
 * waits for its data: the job ends with rank 0's message, rank 1 does not hang. */
static void failing_task_ends_the_job(void **state)
{
    (void)state;
    NEED_MPI();
    char path[4300];
    snprintf(path, sizeof path, "%s/bad.tg", tu_tmpdir);
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=attn b=1 sq=4 skv=4 h=3 hkv=2 dk=4 dv=4 "
                        "label=badattn\n"
                        "task 1 rank=0 stream=x op=xchg send=1:64 after=0\n"
                        "task 2 rank=1 stream=x op=xchg recv=0:64\n");
    double wall = 0;
    tu_output r = mpi_run(2, &wall, "exec --backend host --graph %s", path);
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "rank 0: task 0 (badattn) on rank 0 stream compute: attention failed"))
        fail_msg("unexpected message:\n%s", r.err);
    assert_true(wall < 30.0); /* well under the 60 s default watchdog */
    tu_release(&r);
}

static void rank_count_and_backend_errors(void **state)
{
    (void)state;
    NEED_MPI();
    char path[4300];
    snprintf(path, sizeof path, "%s/two.tg", tu_tmpdir);
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=delay us=10\n"
                        "task 1 rank=1 stream=compute op=delay us=10\n");
    tu_output r = mpi_run(3, NULL, "exec --backend host --graph %s", path);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "the graph has 2 ranks but 3 MPI processes were started"));
    tu_release(&r);
    r = mpi_run(2, NULL, "exec --backend tpu --graph %s", path);
    assert_int_equal(r.status, EXIT_USAGE_CODE);
    assert_non_null(strstr(r.err, "unknown backend 'tpu'"));
    tu_release(&r);
    r = mpi_run(2, NULL, "exec --graph %s", path);
    assert_int_equal(r.status, EXIT_USAGE_CODE);
    assert_non_null(strstr(r.err, "--backend"));
    tu_release(&r);
    r = mpi_run(2, NULL, "exec --backend host --graph %s/missing.tg", tu_tmpdir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "missing.tg"));
    tu_release(&r);
}

/* Measured times respect the graph: rank 1's compute waits for rank 0's 30 ms delay
 * through the exchange, a cross-stream dep on rank 0 orders its tail, and the trace
 * holds every task once with pid = rank. */
static void timeline_and_trace(void **state)
{
    (void)state;
    NEED_MPI();
    char path[4300], trace[4300];
    snprintf(path, sizeof path, "%s/chain.tg", tu_tmpdir);
    snprintf(trace, sizeof trace, "%s/trace.json", tu_tmpdir);
    tu_write_file(path, "tg 1\n"
                        "task 0 rank=0 stream=compute op=delay us=30000 label=A\n"
                        "task 1 rank=0 stream=a2e op=xchg send=1:65536 after=0 label=X\n"
                        "task 2 rank=1 stream=a2e op=xchg recv=0:65536 label=X\n"
                        "task 3 rank=1 stream=compute op=delay us=10000 after=2 label=B\n"
                        "task 4 rank=1 stream=compute op=gemm m=32 n=32 k=32 label=G\n"
                        "task 5 rank=0 stream=coll op=delay us=5000 after=1 label=C\n");
    tu_output r = mpi_run(2, NULL, "exec --backend host --graph %s --json --trace %s", path,
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

/* Tests of the simulator engine and the analytic network model: tiny graphs whose
 * makespan is known by hand, rendezvous, collectives, busy/exposed figures, determinism,
 * and the errors the engine itself raises. */
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
#include "ir/tg.h"
#include "sim/sim.h"

#define US 1e-6

/* Round numbers (tu_round_topo), one NIC per GPU. */
static topo test_topo(int nodes, int gpus) { return tu_round_topo(nodes, gpus, gpus); }

static tg_graph *parse(const char *text)
{
    ms_err err = {{0}};
    tg_graph *g = tg_parse_buffer(text, strlen(text), "test.tg", &err);
    if (!g) fail_msg("parse failed: %s", err.msg);
    return g;
}

/* Simulates text on topology t (no cost DB) and returns the engine (caller frees). */
static sim_engine *run(tg_graph *g, const topo *t)
{
    ms_err err = {{0}};
    sim_engine *s = sim_create(g, t, NULL, &net_analytic, &err);
    if (!s) fail_msg("sim_create failed: %s", err.msg);
    if (sim_run(s, &err) != 0) fail_msg("sim_run failed: %s", err.msg);
    return s;
}

static double task_end(const sim_engine *s, const tg_graph *g, int64_t id)
{
    return sim_task_end(s, tg_find_task(g, id));
}
static double task_start(const sim_engine *s, const tg_graph *g, int64_t id)
{
    return sim_task_start(s, tg_find_task(g, id));
}

static void near(double a, double b, int line)
{
    if (!(fabs(a - b) <= 1e-12 + 1e-9 * fabs(b)))
        fail_msg("line %d: got %.15g, want %.15g", line, a, b);
}
#define assert_near(a, b) near((a), (b), __LINE__)

static void chain_on_one_stream(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=s op=delay us=10\n"
                        "task 1 rank=0 stream=s op=delay us=20\n"
                        "task 2 rank=0 stream=s op=delay us=30\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    assert_near(sim_get_summary(s)->makespan_s, 60 * US);
    assert_near(task_start(s, g, 2), 30 * US);
    assert_int_equal(sim_get_summary(s)->tasks, 3);
    assert_int_equal(sim_get_summary(s)->events, 3);
    sim_free(s);
    tg_graph_free(g);
}

static void fork_join_across_streams(void **state)
{
    (void)state;
    /* A forks to B (other stream, 20 us) and C (same stream, 5 us); D joins both. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=s0 op=delay us=10 label=A\n"
                        "task 1 rank=0 stream=s1 op=delay us=20 after=0 label=B\n"
                        "task 2 rank=0 stream=s0 op=delay us=5 after=0 label=C\n"
                        "task 3 rank=0 stream=s0 op=delay us=1 after=1,2 label=D\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    assert_near(task_start(s, g, 1), 10 * US);
    assert_near(task_end(s, g, 2), 15 * US);
    assert_near(task_start(s, g, 3), 30 * US);
    assert_near(sim_get_summary(s)->makespan_s, 31 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void dependency_blocks_its_stream(void **state)
{
    (void)state;
    /* X waits for Y (50 us on another stream); Z, behind X on its stream, waits too
     * although it has no dependency of its own. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=b op=delay us=50 label=Y\n"
                        "task 1 rank=0 stream=a op=delay us=10 after=0 label=X\n"
                        "task 2 rank=0 stream=a op=delay us=1 label=Z\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    assert_near(task_start(s, g, 1), 50 * US);
    assert_near(task_start(s, g, 2), 60 * US);
    assert_near(sim_get_summary(s)->makespan_s, 61 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void xchg_waits_for_both_sides(void **state)
{
    (void)state;
    /* Rank 1 posts its receive at 0; rank 0 sends only after 10 us of compute. The
     * transfer then takes 2 * 1 us + 1e6 B / 1e9 B/s = 1002 us. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=c op=delay us=10\n"
                        "task 1 rank=0 stream=x op=xchg send=1:1000000 after=0\n"
                        "task 2 rank=1 stream=x op=xchg recv=0:1000000\n");
    topo t = test_topo(1, 2);
    sim_engine *s = run(g, &t);
    assert_near(task_start(s, g, 2), 0);
    assert_near(task_end(s, g, 1), 1012 * US);
    assert_near(task_end(s, g, 2), 1012 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void xchg_ends_with_its_last_transfer(void **state)
{
    (void)state;
    /* Rank 0 sends to 1 and 2 in one grouped exchange; rank 2 joins late, so rank 0's
     * task ends with the later transfer while rank 1's ends early. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=1:1000,2:2000\n"
                        "task 1 rank=1 stream=x op=xchg recv=0:1000\n"
                        "task 2 rank=2 stream=c op=delay us=100\n"
                        "task 3 rank=2 stream=x op=xchg recv=0:2000 after=2\n");
    topo t = test_topo(1, 4);
    sim_engine *s = run(g, &t);
    assert_near(task_end(s, g, 1), 3 * US);   /* 2 us + 1000 B / 1 GB/s */
    assert_near(task_end(s, g, 3), 104 * US); /* 100 + 2 + 2 */
    assert_near(task_end(s, g, 0), 104 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void cross_node_transfer_uses_nic(void **state)
{
    (void)state;
    /* Ranks 0 and 2 sit on different nodes (2 GPUs per node). Route latency is
     * 2 * 1 + 2 * 5 = 12 us; the bottleneck is the GPU's NIC share, 0.5 GB/s. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=2:500000\n"
                        "task 1 rank=2 stream=x op=xchg recv=0:500000\n");
    topo t = test_topo(2, 2);
    sim_engine *s = run(g, &t);
    assert_near(sim_get_summary(s)->makespan_s, 12 * US + 500000 / 0.5e9);
    sim_free(s);
    tg_graph_free(g);
}

static void self_transfer_is_free(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=x op=xchg send=0:4096 recv=0:4096\n"
                        "task 1 rank=0 stream=x op=delay us=3\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    assert_near(task_end(s, g, 0), 0);
    assert_near(sim_get_summary(s)->makespan_s, 3 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void collective_starts_with_last_member(void **state)
{
    (void)state;
    /* Rank r computes 10*r us first; the allreduce starts when rank 3 arrives at 30 us
     * and takes 2(n-1) * 2 us + 2(n-1)/n * 4e6 B / 1e9 B/s = 12 us + 6000 us. */
    tg_graph *g = parse("tg 1\n"
                        "group all ranks=0,1,2,3\n"
                        "task 0 rank=0 stream=coll op=allreduce group=all bytes=4000000\n"
                        "task 1 rank=1 stream=c op=delay us=10\n"
                        "task 2 rank=1 stream=coll op=allreduce group=all bytes=4000000 after=1\n"
                        "task 3 rank=2 stream=c op=delay us=20\n"
                        "task 4 rank=2 stream=coll op=allreduce group=all bytes=4000000 after=3\n"
                        "task 5 rank=3 stream=c op=delay us=30\n"
                        "task 6 rank=3 stream=coll op=allreduce group=all bytes=4000000 after=5\n");
    topo t = test_topo(1, 4);
    sim_engine *s = run(g, &t);
    double want = 30 * US + 12 * US + 1.5 * 4e6 / 1e9;
    for (int64_t id = 0; id <= 6; id += 2) assert_near(task_end(s, g, id), want);
    assert_near(task_start(s, g, 0), 0);
    sim_free(s);
    tg_graph_free(g);
}

static void allgather_and_reducescatter_times(void **state)
{
    (void)state;
    /* n = 2 on one node: 1 step of 2 us + 1 piece of 1e6 B at 1 GB/s each. */
    tg_graph *g = parse("tg 1\n"
                        "group p ranks=0,1\n"
                        "task 0 rank=0 stream=k op=allgather group=p bytes=1000000\n"
                        "task 1 rank=1 stream=k op=allgather group=p bytes=1000000\n"
                        "task 2 rank=0 stream=k op=reducescatter group=p bytes=1000000\n"
                        "task 3 rank=1 stream=k op=reducescatter group=p bytes=1000000\n");
    topo t = test_topo(1, 2);
    sim_engine *s = run(g, &t);
    assert_near(task_end(s, g, 0), 1002 * US);
    assert_near(task_end(s, g, 3), 2004 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void busy_and_exposed_comm(void **state)
{
    (void)state;
    /* Rank 0 computes for 100 us while its 50 us send runs: nothing exposed. Rank 1 only
     * receives: all 50 us exposed. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=c op=delay us=100\n"
                        "task 1 rank=0 stream=x op=xchg send=1:48000\n"
                        "task 2 rank=1 stream=x op=xchg recv=0:48000\n");
    topo t = test_topo(1, 2);
    sim_engine *s = run(g, &t);
    const sim_summary *sum = sim_get_summary(s);
    assert_int_equal(sum->nranks, 2);
    assert_near(sum->rank_compute_busy_s[0], 100 * US);
    assert_near(sum->rank_comm_busy_s[0], 50 * US);
    assert_near(sum->rank_exposed_comm_s[0], 0);
    assert_near(sum->rank_exposed_comm_s[1], 50 * US);
    assert_near(sum->exposed_comm_s, 50 * US);
    assert_near(sum->stream_busy_s[0], 100 * US);
    sim_free(s);
    tg_graph_free(g);
}

static void waiting_for_a_peer_is_not_comm(void **state)
{
    (void)state;
    /* Rank 1 posts its receive at 0 but rank 0 sends only after 100 us: rank 1's comm
     * busy time is the 50 us transfer, not the 150 us its stream is occupied. */
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=c op=delay us=100\n"
                        "task 1 rank=0 stream=x op=xchg send=1:48000 after=0\n"
                        "task 2 rank=1 stream=x op=xchg recv=0:48000\n");
    topo t = test_topo(1, 2);
    sim_engine *s = run(g, &t);
    const sim_summary *sum = sim_get_summary(s);
    assert_near(sum->stream_busy_s[2], 150 * US);
    assert_near(sum->rank_comm_busy_s[1], 50 * US);
    assert_near(sum->rank_exposed_comm_s[1], 50 * US);
    assert_near(sum->rank_exposed_comm_s[0], 50 * US);
    sim_free(s);
    tg_graph_free(g);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static const char *busy_graph = "tg 1\n"
                                "group all ranks=0,1,2\n"
                                "task 0 rank=0 stream=c op=delay us=7 label=\"a b\"\n"
                                "task 1 rank=0 stream=x op=xchg send=1:100,2:100 after=0\n"
                                "task 2 rank=1 stream=x op=xchg recv=0:100\n"
                                "task 3 rank=2 stream=x op=xchg recv=0:100\n"
                                "task 4 rank=0 stream=r op=allreduce group=all bytes=64 after=1\n"
                                "task 5 rank=1 stream=r op=allreduce group=all bytes=64 after=2\n"
                                "task 6 rank=2 stream=r op=allreduce group=all bytes=64 after=3\n"
                                "task 7 rank=1 stream=c op=delay us=7 after=5\n";

static void trace_is_deterministic(void **state)
{
    (void)state;
    char p1[] = "/tmp/ms-trace-XXXXXX", p2[] = "/tmp/ms-trace-XXXXXX";
    close(mkstemp(p1));
    close(mkstemp(p2));
    topo t = test_topo(1, 4);
    for (int i = 0; i < 2; i++) {
        tg_graph *g = parse(busy_graph);
        sim_engine *s = run(g, &t);
        ms_err err = {{0}};
        assert_int_equal(sim_write_trace(s, i ? p2 : p1, 0, INFINITY, &err), 0);
        sim_free(s);
        tg_graph_free(g);
    }
    size_t n1, n2;
    char *a = slurp(p1, &n1), *b = slurp(p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1);
    /* Names, ranks, streams and the escaped label are in it. */
    assert_non_null(strstr(a, "\"traceEvents\""));
    assert_non_null(strstr(a, "\"thread_name\""));
    assert_non_null(strstr(a, "\"name\":\"a b\""));
    assert_non_null(strstr(a, "\"ph\":\"X\""));
    free(a);
    free(b);
    unlink(p1);
    unlink(p2);
}

static void trace_window_filters_tasks(void **state)
{
    (void)state;
    char p[] = "/tmp/ms-trace-XXXXXX";
    close(mkstemp(p));
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=s op=delay us=10 label=first\n"
                        "task 1 rank=0 stream=s op=delay us=10 label=second\n"
                        "task 2 rank=0 stream=s op=delay us=10 label=third\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    ms_err err = {{0}};
    assert_int_equal(sim_write_trace(s, p, 12, 15, &err), 0);
    size_t n;
    char *a = slurp(p, &n);
    assert_null(strstr(a, "first"));
    assert_non_null(strstr(a, "second"));
    assert_null(strstr(a, "third"));
    free(a);
    unlink(p);
    sim_free(s);
    tg_graph_free(g);
}

static void json_summary_has_required_keys(void **state)
{
    (void)state;
    tg_graph *g = parse(busy_graph);
    topo t = test_topo(1, 4);
    sim_engine *s = run(g, &t);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sim_write_json(s, f, 0, 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"makespan_us\":"));
    assert_non_null(strstr(buf, "\"tasks\":8"));
    assert_non_null(strstr(buf, "\"events\":"));
    assert_non_null(strstr(buf, "\"sim_wall_s\":"));
    assert_non_null(strstr(buf, "\"per_stream\":["));
    assert_int_equal(strchr(buf, '\n') - buf, (ptrdiff_t)len - 1); /* one line */
    free(buf);
    sim_free(s);
    tg_graph_free(g);
}

static void too_many_ranks_for_topology(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\ntask 0 rank=5 stream=s op=delay us=1\n");
    topo t = test_topo(1, 4);
    ms_err err = {{0}};
    assert_null(sim_create(g, &t, NULL, &net_analytic, &err));
    assert_non_null(strstr(err.msg, "6 ranks"));
    assert_non_null(strstr(err.msg, "has 4"));
    tg_graph_free(g);
}

static void compute_without_db_names_the_task(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\ntask 42 rank=0 stream=s op=gemm m=8 n=8 k=8\n");
    topo t = test_topo(1, 1);
    ms_err err = {{0}};
    assert_null(sim_create(g, &t, NULL, &net_analytic, &err));
    assert_non_null(strstr(err.msg, "task 42"));
    assert_non_null(strstr(err.msg, "line 2"));
    tg_graph_free(g);
}

/* Builds a cost DB from the shipped profiles into a temp file. */
static cdb *shipped_db(char *path)
{
    static const char *files[] = {MS_SOURCE_DIR "/costdb/profiles/datasheet.sql"};
    ms_err err = {{0}};
    if (cdb_build(path, files, 1, &err) != 0) fail_msg("cdb_build: %s", err.msg);
    cdb *db = cdb_open(path, &err);
    if (!db) fail_msg("cdb_open: %s", err.msg);
    return db;
}

static void gemm_time_comes_from_cost_db(void **state)
{
    (void)state;
    char path[] = "/tmp/ms-simdb-XXXXXX";
    close(mkstemp(path));
    cdb *db = shipped_db(path);
    tg_graph *g = parse("tg 1\n"
                        "task 0 rank=0 stream=s op=gemm m=4096 n=1536 k=5120\n"
                        "task 1 rank=0 stream=s op=gemm m=4096 n=1536 k=5120 count=4\n");
    topo t = test_topo(1, 1);
    ms_err err = {{0}};
    double t1, t4;
    const int64_t a1[] = {4096, 1536, 5120, 1}, a4[] = {4096, 1536, 5120, 4};
    assert_int_equal(cdb_time(db, "h100", "gemm", a1, 4, &t1, &err), 0);
    assert_int_equal(cdb_time(db, "h100", "gemm", a4, 4, &t4, &err), 0);
    sim_engine *s = sim_create(g, &t, db, &net_analytic, &err);
    assert_non_null(s);
    assert_int_equal(sim_run(s, &err), 0);
    assert_near(task_end(s, g, 0), t1);
    assert_near(sim_get_summary(s)->makespan_s, t1 + t4);
    assert_true(t4 > 3 * t1);
    sim_free(s);
    tg_graph_free(g);
    /* An unknown device in the topology is an error naming the task and device. */
    snprintf(t.device, sizeof t.device, "no-such-gpu");
    g = parse("tg 1\ntask 7 rank=0 stream=s op=gemm m=1 n=1 k=1\n");
    assert_null(sim_create(g, &t, db, &net_analytic, &err));
    assert_non_null(strstr(err.msg, "task 7"));
    assert_non_null(strstr(err.msg, "no-such-gpu"));
    tg_graph_free(g);
    cdb_close(db);
    unlink(path);
}

static void run_twice_is_refused(void **state)
{
    (void)state;
    tg_graph *g = parse("tg 1\ntask 0 rank=0 stream=s op=delay us=1\n");
    topo t = test_topo(1, 1);
    sim_engine *s = run(g, &t);
    ms_err err = {{0}};
    assert_int_equal(sim_run(s, &err), -1);
    sim_free(s);
    sim_free(NULL);
    tg_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_on_one_stream),
        cmocka_unit_test(fork_join_across_streams),
        cmocka_unit_test(dependency_blocks_its_stream),
        cmocka_unit_test(xchg_waits_for_both_sides),
        cmocka_unit_test(xchg_ends_with_its_last_transfer),
        cmocka_unit_test(cross_node_transfer_uses_nic),
        cmocka_unit_test(self_transfer_is_free),
        cmocka_unit_test(collective_starts_with_last_member),
        cmocka_unit_test(allgather_and_reducescatter_times),
        cmocka_unit_test(busy_and_exposed_comm),
        cmocka_unit_test(waiting_for_a_peer_is_not_comm),
        cmocka_unit_test(trace_is_deterministic),
        cmocka_unit_test(trace_window_filters_tasks),
        cmocka_unit_test(json_summary_has_required_keys),
        cmocka_unit_test(too_many_ranks_for_topology),
        cmocka_unit_test(compute_without_db_names_the_task),
        cmocka_unit_test(gemm_time_comes_from_cost_db),
        cmocka_unit_test(run_twice_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

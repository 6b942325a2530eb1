/* End-to-end tests of the real `moesched` binary: help texts, a simulation in text and
 * JSON form, traces, canonical graphs, and bad input (clear message, non-zero exit,
 * nothing the user had is touched). The binary is $MOESCHED_BUILD/moesched (default
 * build/), run from the source tree. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"



static void help_for_every_command(void **state)
{
    (void)state;
    const char *cmds[] = {"sim", "graph", "topo", "db", "db build"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tu_output r = tu_run("%s --help", cmds[i]);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out, "usage: moesched"));
        tu_release(&r);
    }
    tu_output r = tu_run("--help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "sim"));
    tu_release(&r);
    r = tu_run("frobnicate");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "unknown command 'frobnicate'"));
    tu_release(&r);
}

static void sim_example_text_and_json(void **state)
{
    (void)state;
    tu_output r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "makespan"));
    assert_non_null(strstr(r.out, "exposed comm"));
    tu_release(&r);
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8 --json");
    assert_int_equal(r.status, 0);
    /* exactly one JSON object on one line */
    assert_int_equal(r.out[0], '{');
    char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    assert_int_equal(nl[-1], '}');
    assert_non_null(strstr(r.out, "\"makespan_us\":"));
    assert_non_null(strstr(r.out, "\"tasks\":56"));
    assert_non_null(strstr(r.out, "\"events\":"));
    assert_non_null(strstr(r.out, "\"sim_wall_s\":"));
    double makespan = atof(strstr(r.out, "\"makespan_us\":") + 14);
    assert_true(makespan > 0);
    /* the lower bound is reported and never above the simulated makespan */
    assert_non_null(strstr(r.out, "\"bound_makespan_us\":"));
    double bound = atof(strstr(r.out, "\"bound_makespan_us\":") + 20);
    assert_true(bound > 0 && bound <= makespan * (1 + 1e-12));
    tu_release(&r);
    /* A slower interconnect cannot make the same graph faster. */
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo h100:nodes=1,intra_GBps=25 --json");
    assert_int_equal(r.status, 0);
    assert_true(atof(strstr(r.out, "\"makespan_us\":") + 14) > makespan);
    tu_release(&r);
}

static void trace_is_byte_identical_across_runs(void **state)
{
    (void)state;
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/a.json", tu_tmpdir);
    snprintf(b, sizeof b, "%s/b.json", tu_tmpdir);
    const char *args = "sim --graph traces/examples/two-layer-dep.tg --topo h20-1x8 --trace";
    tu_output r = tu_run("%s %s", args, a);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    r = tu_run("%s %s", args, b);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    char *x = tu_slurp(a), *y = tu_slurp(b);
    assert_true(strlen(x) > 1000);
    assert_string_equal(x, y);
    assert_non_null(strstr(x, "\"L1.mb0.expert\""));
    free(x);
    free(y);
}

static void graph_canonical_round_trip(void **state)
{
    (void)state;
    char c1[4200], c2[4200];
    snprintf(c1, sizeof c1, "%s/c1.tg", tu_tmpdir);
    snprintf(c2, sizeof c2, "%s/c2.tg", tu_tmpdir);
    tu_output r = tu_run("graph --in traces/examples/two-layer-dep.tg --out %s", c1);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    r = tu_run("graph --in %s --out %s", c1, c2);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    char *x = tu_slurp(c1), *y = tu_slurp(c2);
    assert_string_equal(x, y);
    assert_true(strncmp(x, "tg 1\n", 5) == 0);
    free(x);
    free(y);
}

static void bad_graph_names_file_and_line(void **state)
{
    (void)state;
    char p[4200];
    snprintf(p, sizeof p, "%s/bad.tg", tu_tmpdir);
    tu_write_file(p, "tg 1\n"
                  "task 0 rank=0 stream=s op=delay us=1\n"
                  "task 1 rank=0 stream=s op=gemmm m=1 n=1 k=1\n");
    tu_output r = tu_run("sim --graph %s --topo dgx-h100-1x8", p);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "bad.tg:3"));
    assert_non_null(strstr(r.err, "gemmm"));
    assert_string_equal(r.out, "");
    tu_release(&r);
    /* a graph that would deadlock is refused, not simulated forever */
    tu_write_file(p, "tg 1\n"
                  "task 0 rank=0 stream=x op=xchg recv=1:8\n"
                  "task 1 rank=0 stream=x op=xchg send=1:8\n"
                  "task 2 rank=1 stream=x op=xchg recv=0:8\n"
                  "task 3 rank=1 stream=x op=xchg send=0:8\n");
    r = tu_run("sim --graph %s --topo dgx-h100-1x8", p);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "deadlock"));
    tu_release(&r);
    r = tu_run("sim --graph %s/missing.tg --topo dgx-h100-1x8", tu_tmpdir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "missing.tg"));
    tu_release(&r);
}

static void bad_topology_and_flags(void **state)
{
    (void)state;
    tu_output r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo no-such-cluster");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "no-such-cluster"));
    tu_release(&r);
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo h100:nodes=0");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "nodes"));
    tu_release(&r);
    /* more ranks in the graph than GPUs in the cluster */
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo h100:nodes=1,gpus=4");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "8 ranks"));
    tu_release(&r);
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--topo"));
    tu_release(&r);
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8 --bogus");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "--bogus"));
    tu_release(&r);
    r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8 --net magic");
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "magic"));
    tu_release(&r);
    r = tu_run("topo h100:nodes=128");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "1024"));
    tu_release(&r);
}

static void bad_database_is_refused_and_untouched(void **state)
{
    (void)state;
    char p[4200];
    snprintf(p, sizeof p, "%s/not-a-db.db", tu_tmpdir);
    tu_write_file(p, "this is not an sqlite database, and it must stay as it is\n");
    tu_output r = tu_run("sim --graph traces/examples/two-layer-dep.tg --topo dgx-h100-1x8 --db %s", p);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "not-a-db.db"));
    tu_release(&r);
    char *x = tu_slurp(p);
    assert_string_equal(x, "this is not an sqlite database, and it must stay as it is\n");
    free(x);
    r = tu_run("db --db %s/absent.db", tu_tmpdir);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "absent.db"));
    tu_release(&r);
    struct stat st;
    snprintf(p, sizeof p, "%s/absent.db", tu_tmpdir);
    assert_int_not_equal(stat(p, &st), 0); /* opening did not create it */
}

static void db_lists_sources(void **state)
{
    (void)state;
    tu_output r = tu_run("db");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "datasheet"));
    assert_non_null(strstr(r.out, "h100"));
    assert_non_null(strstr(r.out, "gemm"));
    tu_release(&r);
    r = tu_run("db --json");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out[0], '{');
    tu_release(&r);
}

#define DEP "--workload dep --model deepseek-v2 --layers 3 --topo h20-1x8 --ag 3 --eg 5 --seq 1024"

static double json_num(const char *json, const char *key)
{
    char k[128];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    if (!p) fail_msg("no %s in %s", key, json);
    return atof(p + strlen(k));
}

static void workload_graph_reproduces_in_sim(void **state)
{
    (void)state;
    const char *scheds[] = {"--sched naive", "--sched pppipe --r1 3 --ma 2",
                            "--sched findep --r1 2 --ma 2 --r2 4 --order aass",
                            "--sched findep --r1 2 --ma 1 --routing zipf:1.1 --seed 9",
                            "--sched ep --r1 2 --phase decode --ma 16"};
    for (size_t i = 0; i < sizeof scheds / sizeof scheds[0]; i++) {
        const char *flags = strstr(scheds[i], "--sched ep") ? "--workload dep --model deepseek-v2 "
                                                               "--layers 3 --topo h20-1x8 --seq 1024"
                                                             : DEP;
        tu_output a = tu_run("sim %s %s --json", flags, scheds[i]);
        if (a.status != 0) fail_msg("sim %s: %s", scheds[i], a.err);
        assert_true(json_num(a.out, "throughput_tokens_per_s") > 0);
        char g[4200];
        snprintf(g, sizeof g, "%s/w%zu.tg", tu_tmpdir, i);
        tu_output b = tu_run("graph %s %s --out %s", flags, scheds[i], g);
        assert_int_equal(b.status, 0);
        tu_output c = tu_run("sim --graph %s --topo h20-1x8 --json", g);
        assert_int_equal(c.status, 0);
        /* the same graph, so exactly the same makespan */
        assert_true(json_num(a.out, "makespan_us") == json_num(c.out, "makespan_us"));
        assert_true(json_num(a.out, "events") == json_num(c.out, "events"));
        tu_release(&a), tu_release(&b), tu_release(&c);
    }
}

static void workload_bad_input(void **state)
{
    (void)state;
    struct {
        const char *args;
        int status;
        const char *expect;
    } cases[] = {
        {"--workload dep --sched findep --model no-such-model --topo h20-1x8 --ag 4 --eg 4 --seq 64",
         1, "no-such-model"},
        {"--workload dep --sched findep --model deepseek-v2 --topo h20-1x8 --ag 3 --eg 4 --seq 64",
         1, "has 8"},
        {DEP " --sched findep --r2 3 --seq 1000", 1, "does not divide"},
        {DEP " --sched findep --ma 0", 1, "--ma"},
        {DEP " --sched findep --r1 -2", 2, "--r1"},
        {DEP " --sched findep --seq abc", 2, "--seq"},
        {DEP " --sched bogus", 1, "bogus"},
        {DEP " --sched findep --order sasa", 1, "sasa"},
        {DEP " --sched findep --routing zipf:-1", 1, "zipf"},
        {DEP " --sched findep --routing trace:/nonexistent.csv", 1, "nonexistent.csv"},
        {DEP " --sched findep --exchange nope", 1, "unknown --exchange 'nope'"},
        {"--workload dep --sched ep --model deepseek-v2 --topo h20-1x8 --seq 64 --exchange m2n", 1,
         "ep's all-to-all is always pairwise"},
        {"--workload dep --sched findep --model deepseek-v2 --layers 0 --topo h20-1x8 --ag 4 --eg 4 "
         "--seq 64", 1, "layers"},
        {"--workload train --sched findep --model deepseek-v2 --topo h20-1x8 --seq 64", 1, "train"},
        {"--graph traces/examples/two-layer-dep.tg " DEP " --sched naive", 2, "not both"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_output r = tu_run("sim %s", cases[i].args);
        if (r.status != cases[i].status || !strstr(r.err, cases[i].expect))
            fail_msg("case %zu: status %d, stderr '%s' (want %d, '%s')", i, r.status, r.err,
                     cases[i].status, cases[i].expect);
        tu_release(&r);
    }
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad-model.json", tu_tmpdir);
    tu_write_file(bad, "{\"model_type\": \"mixtral\", \"hidden_size\": 4096,\n  \"num_hidden_layers\": }\n");
    tu_output r = tu_run("sim --workload dep --sched naive --model %s --topo h20-1x8 --ag 4 --eg 4 "
                   "--seq 64", bad);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "bad-model.json"));
    tu_release(&r);
}

#define SOLVE "solve --workload dep --model deepseek-v2 --layers 2 --topo h20-1x8 --seq 1024"

/* `moesched solve`: JSON keys, the emitted graph simulates to the reported throughput,
 * fixed flags are held, and bad input is refused with a clear message. */
static void solve_json_emit_and_bad_input(void **state)
{
    (void)state;
    tu_output r = tu_run("solve --help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: moesched solve"));
    tu_release(&r);
    r = tu_run("--help");
    assert_non_null(strstr(r.out, "solve"));
    tu_release(&r);

    char g[4200];
    snprintf(g, sizeof g, "%s/solved.tg", tu_tmpdir);
    r = tu_run(SOLVE " --sched findep --ag 3 --eg 5 --json --emit %s", g);
    if (r.status != 0) fail_msg("solve: %s", r.err);
    assert_int_equal(r.out[0], '{');
    char *nl = strchr(r.out, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0');
    const char *keys[] = {"throughput_tokens_per_s", "bound_tokens_per_s", "solve_wall_s",
                          "simulations", "makespan_us", "r1", "ma", "r2", "me", "ag", "eg"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_true(json_num(r.out, keys[i]) > 0);
    assert_true(strstr(r.out, "\"order\":\"asas\"") || strstr(r.out, "\"order\":\"aass\""));
    assert_non_null(strstr(r.out, "\"method\":\"search\""));
    assert_true(json_num(r.out, "ag") == 3 && json_num(r.out, "eg") == 5);
    double tps = json_num(r.out, "throughput_tokens_per_s");
    assert_true(tps <= json_num(r.out, "bound_tokens_per_s") * (1 + 1e-9));
    /* the emitted graph is the chosen schedule: sim gives the same makespan */
    tu_output s = tu_run("sim --graph %s --topo h20-1x8 --json", g);
    if (s.status != 0) fail_msg("sim of the emitted graph: %s", s.err);
    double a = json_num(r.out, "makespan_us"), b = json_num(s.out, "makespan_us");
    if (fabs(a - b) > 1e-9 * b) fail_msg("solve makespan %.17g us, sim %.17g us", a, b);
    assert_true(fabs(json_num(r.out, "tokens") / (b * 1e-6) - tps) <= 1e-9 * tps);
    tu_release(&r), tu_release(&s);

    /* text form, alg1, held flags */
    r = tu_run(SOLVE " --sched findep --ag 3 --eg 5 --method alg1 --r1 3 --order aass");
    if (r.status != 0) fail_msg("solve alg1: %s", r.err);
    assert_non_null(strstr(r.out, "r1=3 "));
    assert_non_null(strstr(r.out, "order=aass"));
    assert_non_null(strstr(r.out, "bound"));
    assert_non_null(strstr(r.out, "gap"));
    assert_non_null(strstr(r.out, "alg1 estimate"));
    tu_release(&r);
    /* the PPPipe planner: m <= 4 micro-batches, no chunks; auto split */
    r = tu_run(SOLVE " --sched pppipe --split auto --json");
    if (r.status != 0) fail_msg("solve pppipe: %s", r.err);
    assert_true(json_num(r.out, "r1") <= 4);
    assert_true(json_num(r.out, "r2") == 1);
    assert_non_null(strstr(r.out, "\"sched\":\"pppipe\""));
    tu_release(&r);

    struct {
        const char *args;
        int status;
        const char *expect;
    } bad[] = {
        {SOLVE " --sched findep --method magic", 2, "unknown --method 'magic'"},
        {SOLVE " --sched findep --split auto --ag 3 --eg 5", 2, "not both"},
        {SOLVE " --sched findep --ag 3", 2, "--ag and --eg go together"},
        {SOLVE " --sched findep --split half", 2, "--split"},
        {SOLVE " --sched naive", 2, "cannot be solved"},
        {SOLVE " --sched findep --routing zipf:1.1", 2, "uniform"},
        {SOLVE " --sched pppipe --r2 2", 2, "--r2"},
        {SOLVE " --sched findep --order sasa", 2, "sasa"},
        {SOLVE " --sched findep --ag 3 --eg 4", 1, "8"},
        {SOLVE " --sched findep --ag 3 --eg 5 --ma 1 --r2 3", 1, "divide"},
        {"solve --workload dep --sched findep --model deepseek-v2 --layers 4 --topo h20-4x8 "
         "--seq 2048 --method exhaustive", 1, "more than 5000 simulations"},
        {"solve --workload dep --sched findep --model deepseek-v2 --topo h20-1x8", 2, "--seq"},
        {SOLVE " --sched findep --net magic", 2, "magic"},
        {"solve --workload dep --sched findep --model no-such-model --topo h20-1x8 --seq 64", 1,
         "no-such-model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = tu_run("%s", bad[i].args);
        if (r.status != bad[i].status || !strstr(r.err, bad[i].expect))
            fail_msg("solve case %zu: status %d, stderr '%s' (want %d, '%s')", i, r.status,
                     r.err, bad[i].status, bad[i].expect);
        assert_string_equal(r.out, "");
        tu_release(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_for_every_command),
        cmocka_unit_test(sim_example_text_and_json),
        cmocka_unit_test(trace_is_byte_identical_across_runs),
        cmocka_unit_test(graph_canonical_round_trip),
        cmocka_unit_test(bad_graph_names_file_and_line),
        cmocka_unit_test(bad_topology_and_flags),
        cmocka_unit_test(bad_database_is_refused_and_untouched),
        cmocka_unit_test(db_lists_sources),
        cmocka_unit_test(workload_graph_reproduces_in_sim),
        cmocka_unit_test(workload_bad_input),
        cmocka_unit_test(solve_json_emit_and_bad_input),
    };
    return cmocka_run_group_tests(tests, tu_cli_setup, tu_cli_teardown);
}

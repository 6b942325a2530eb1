/* Tests of check mode on training graphs (exec/train_check.c) through the real binary under
 * mpirun, host backend: dsmoe, tutel and fsmoe (per-layer degrees, partitioned AllReduce)
 * give the reference gradients with 2 and 4 ranks (all-to-all only, ESP only, both); a
 * corrupted expert-gradient row and a corrupted dense gradient must fail the check; a model
 * that does not match the graph is an error; the backward math itself matches finite
 * differences (ex_tcheck_gradcheck), and a wrong dgrad does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exec/train_check.h"
#include "tests/testutil.h"

/* GPT-2-MoE-shaped (MHA, 2-GEMM GELU experts, bf16 activations), tiny: 3 layers, hidden 32,
 * 8 experts, top-2. The SwiGLU variant has fp32 activations (4-byte wire format). */
static const char tiny_model[] =
    "{\"model_type\": \"mixtral\", \"hidden_act\": \"gelu_new\", \"hidden_size\": 32,\n"
    " \"intermediate_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 4,\n"
    " \"num_hidden_layers\": 3, \"num_local_experts\": 8, \"num_experts_per_tok\": 2,\n"
    " \"torch_dtype\": \"bfloat16\"}\n";
static const char swiglu_model[] =
    "{\"model_type\": \"mixtral\", \"hidden_act\": \"silu\", \"hidden_size\": 32,\n"
    " \"intermediate_size\": 64, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,\n"
    " \"num_hidden_layers\": 2, \"num_local_experts\": 8, \"num_experts_per_tok\": 2,\n"
    " \"torch_dtype\": \"float32\"}\n";

static char model_path[4200], swiglu_path[4200];

static int setup(void **state)
{
    if (tu_mpi_setup(state) != 0) return -1;
    snprintf(model_path, sizeof model_path, "%s", tu_tmp_path("tiny-train.json"));
    snprintf(swiglu_path, sizeof swiglu_path, "%s", tu_tmp_path("tiny-swiglu.json"));
    tu_write_file(model_path, tiny_model);
    tu_write_file(swiglu_path, swiglu_model);
    return 0;
}

/* Runs a training step with --check on topology topo and returns the reported error;
 * fails the test unless the check passed. */
static double expect_ok(int np, const char *model, const char *topo_spec, const char *flags)
{
    tu_output r = tu_mpi_run(np, "exec --backend host --workload train --model %s --topo %s "
                              "--batch 2 --seq 8 --warmup 0 --check %s", model, topo_spec, flags);
    if (r.status != 0 || !strstr(r.out, ": ok"))
        fail_msg("np %d %s %s: status %d\nstdout:\n%s\nstderr:\n%s", np, topo_spec, flags, r.status,
                 r.out, r.err);
    double e = tu_check_error(r.out);
    if (!(e >= 0 && e <= 1e-4)) fail_msg("np %d %s %s: error %g", np, topo_spec, flags, e);
    tu_release(&r);
    return e;
}

static void two_ranks(void **state)
{
    (void)state;
    TU_NEED_MPI();
    /* EP 2 (inter-node all-to-all, no ESP collectives) */
    expect_ok(2, model_path, "host-cpu:nodes=2,gpus=1", "--sched dsmoe");
    expect_ok(2, model_path, "host-cpu:nodes=2,gpus=1", "--sched tutel --r 2");
    expect_ok(2, model_path, "host-cpu:nodes=2,gpus=1",
              "--sched fsmoe --rf 2,1,4 --rb 1,4,2 --pieces 5:17408,tail:34816");
    /* ESP 2 (AllGather / ReduceScatter, no all-to-all) */
    expect_ok(2, model_path, "host-cpu:nodes=1,gpus=2", "--sched tutel --r 4");
    expect_ok(2, swiglu_path, "host-cpu:nodes=1,gpus=2", "--sched dsmoe");
}

static void four_ranks(void **state)
{
    (void)state;
    TU_NEED_MPI();
    const char *two_by_two = "host-cpu:nodes=2,gpus=2"; /* EP 2 x ESP 2 */
    expect_ok(4, model_path, two_by_two, "--sched dsmoe");
    expect_ok(4, model_path, two_by_two, "--sched tutel --r 2");
    /* per-layer degrees and the AllReduce in four pieces, three in backward gaps (per
     * layer 4352 floats = 17408 bytes; gaps 0-3 are layer 2's, 4-5 layer 1's, 6-13 layer 0's) */
    expect_ok(4, model_path, two_by_two,
              "--sched fsmoe --rf 1,2,4 --rb 4,1,2 --pieces 4:8704,5:8704,8:17408,tail:17408");
    expect_ok(4, swiglu_path, two_by_two, "--sched fsmoe --rf 2,1 --rb 1,2");
    expect_ok(4, model_path, "host-cpu:nodes=1,gpus=4", "--sched tutel --r 2"); /* ESP 4 */
}

static void expect_fail(int np, const char *corrupt, const char *flags)
{
    setenv("MOESCHED_CHECK_CORRUPT", corrupt, 1);
    tu_output r = tu_mpi_run(np, "exec --backend host --workload train --model %s --topo "
                              "host-cpu:nodes=2,gpus=%d --batch 2 --seq 8 --warmup 0 --check %s",
                          model_path, np / 2, flags);
    unsetenv("MOESCHED_CHECK_CORRUPT");
    if (r.status == 0 || !strstr(r.err, "check failed") || !strstr(r.out, "FAILED"))
        fail_msg("corruption %s not detected: status %d\n%s\n%s", corrupt, r.status, r.out, r.err);
    assert_true(tu_check_error(r.out) > 1e-3);
    tu_release(&r);
}

static void corruption_fails(void **state)
{
    (void)state;
    TU_NEED_MPI();
    expect_fail(4, "1", "--sched fsmoe --rf 1,2,4 --rb 4,1,2"); /* one expert dgrad row x 1.01 */
    expect_fail(2, "2", "--sched dsmoe");                        /* one dense gradient x 1.01 */
}

static void model_mismatch(void **state)
{
    (void)state;
    TU_NEED_MPI();
    const char *g = tu_tmp_path("train.tg");
    tu_output r = tu_run("graph --workload train --sched tutel --r 2 --model %s --topo "
                         "host-cpu:nodes=2,gpus=1 --batch 2 --seq 8 --out %s", model_path, g);
    assert_int_equal(r.status, 0);
    tu_release(&r);
    /* the graph file with its own model passes; another model is refused, naming it */
    const char *check = "exec --backend host --graph %s --model %s --warmup 0 --check";
    r = tu_mpi_run(2, check, g, model_path);
    if (r.status != 0 || !strstr(r.out, ": ok")) fail_msg("%s\n%s", r.out, r.err);
    tu_release(&r);
    r = tu_mpi_run(2, check, g, swiglu_path);
    if (r.status == 0 || !strstr(r.err, "tiny-swiglu")) fail_msg("%s\n%s", r.out, r.err);
    tu_release(&r);
}

/* The backward math itself against finite differences of the loss (no MPI): every dense
 * and expert tensor of every layer, both FFN kinds; a wrong dgrad in the reference (test
 * hook 3) must fail it. */
static void backward_matches_finite_differences(void **state)
{
    (void)state;
    const char *models[] = {model_path, swiglu_path};
    for (int q = 0; q < 2; q++) {
        double e = -1;
        int n = 0;
        ms_err err = {0};
        int rc = ex_tcheck_gradcheck(models[q], 0, 4, 2, 16, 7, &e, &n, &err);
        if (rc != 0) fail_msg("%s: %s", models[q], err.msg);
        fprintf(stderr, "gradcheck %s: %d entries, max error %.3g\n", models[q], n, e);
        assert_true(n >= 10);
        assert_true(e >= 0 && e < 2e-2);
    }
    setenv("MOESCHED_CHECK_CORRUPT", "3", 1);
    double e = -1;
    int n = 0;
    ms_err err = {0};
    int rc = ex_tcheck_gradcheck(model_path, 0, 4, 2, 16, 7, &e, &n, &err);
    unsetenv("MOESCHED_CHECK_CORRUPT");
    assert_int_equal(rc, 0);
    fprintf(stderr, "gradcheck with a wrong dgrad: max error %.3g\n", e);
    assert_true(e > 5e-2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backward_matches_finite_differences),
        cmocka_unit_test(two_ranks),
        cmocka_unit_test(four_ranks),
        cmocka_unit_test(corruption_fails),
        cmocka_unit_test(model_mismatch),
    };
    return cmocka_run_group_tests(tests, setup, tu_cli_teardown);
}

/* Tests for core/model: every shipped config with its expected figures, the published total
 * parameter counts, hand-computed parameter bytes, depth reduction, each bad input (file and
 * line or field in the message), name lookup, and buffers parsed directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"

#define SRC MS_SOURCE_DIR
#define BAD_DIR SRC "/tests/data/model/"

/* |a - b| <= eps, reported with both values (cmocka's float asserts are single precision). */
#define assert_double_equal(a, b, eps) check_double((a), (b), (eps), #a, __LINE__)
static void check_double(double a, double b, double eps, const char *what, int line)
{
    if (!(a - b <= eps && b - a <= eps))
        fail_msg("line %d: %s = %.17g, expected %.17g (+- %g)", line, what, a, b, eps);
}

/* Fails with the message when `hay` lacks `needle`. */
static void expect_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in message: %s", needle, hay);
}

/* ---- shipped models ---- */

typedef struct shipped {
    const char *name, *family;
    int layers, hidden;
    model_attn attn;
    int heads, kv_heads, head_dim, v_head_dim;
    int q_lora, kv_lora, nope, rope;
    int routed, shared, top_k, expert_inter, shared_inter, dense_inter, first_dense;
    int vocab;        /* not read by moesched: for the total-parameter check */
    double published; /* total parameters the model's authors state */
} shipped;

static const shipped shipped_models[] = {
    {"deepseek-v2", "deepseek_v2", 60, 5120, MODEL_ATTN_MLA, 128, 128, 192, 128, 1536, 512, 128,
     64, 160, 2, 6, 1536, 1536, 12288, 1, 102400, 236e9},
    {"deepseek-v2-lite", "deepseek_v2", 27, 2048, MODEL_ATTN_MLA, 16, 16, 192, 128, 0, 512, 128,
     64, 64, 2, 6, 1408, 1408, 10944, 1, 102400, 15.7e9},
    {"deepseek-v3", "deepseek_v3", 61, 7168, MODEL_ATTN_MLA, 128, 128, 192, 128, 1536, 512, 128,
     64, 256, 1, 8, 2048, 2048, 18432, 3, 129280, 671e9},
    {"qwen3-30b-a3b", "qwen3_moe", 48, 2048, MODEL_ATTN_GQA, 32, 4, 128, 128, 0, 0, 0, 0, 128, 0,
     8, 768, 0, 6144, 0, 151936, 30.5e9},
    {"qwen3-235b-a22b", "qwen3_moe", 94, 4096, MODEL_ATTN_GQA, 64, 4, 128, 128, 0, 0, 0, 0, 128,
     0, 8, 1536, 0, 12288, 0, 151936, 235e9},
    {"mixtral-8x7b", "mixtral", 32, 4096, MODEL_ATTN_GQA, 32, 8, 128, 128, 0, 0, 0, 0, 8, 0, 2,
     14336, 0, 14336, 0, 32000, 46.7e9},
    {"mixtral-8x22b", "mixtral", 56, 6144, MODEL_ATTN_GQA, 48, 8, 128, 128, 0, 0, 0, 0, 8, 0, 2,
     16384, 0, 16384, 0, 32768, 141e9},
};
#define N_SHIPPED (sizeof shipped_models / sizeof shipped_models[0])

static void expect_shipped(const model_cfg *m, const shipped *s)
{
    assert_string_equal(m->family, s->family);
    assert_int_equal(m->layers, s->layers);
    assert_int_equal(m->hidden, s->hidden);
    assert_int_equal(m->attn, s->attn);
    assert_int_equal(m->heads, s->heads);
    assert_int_equal(m->kv_heads, s->kv_heads);
    assert_int_equal(m->head_dim, s->head_dim);
    assert_int_equal(m->v_head_dim, s->v_head_dim);
    assert_int_equal(m->q_lora_rank, s->q_lora);
    assert_int_equal(m->kv_lora_rank, s->kv_lora);
    assert_int_equal(m->qk_nope_head_dim, s->nope);
    assert_int_equal(m->qk_rope_head_dim, s->rope);
    assert_int_equal(m->routed_experts, s->routed);
    assert_int_equal(m->shared_experts, s->shared);
    assert_int_equal(m->top_k, s->top_k);
    assert_int_equal(m->expert_inter, s->expert_inter);
    assert_int_equal(m->shared_inter, s->shared_inter);
    assert_int_equal(m->dense_inter, s->dense_inter);
    assert_int_equal(m->first_dense, s->first_dense);
    assert_int_equal(m->ffn_gemms, 3);
    assert_int_equal(m->dtype_bytes, 2);
}

static void test_shipped_models(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SHIPPED; i++) {
        const shipped *s = &shipped_models[i];
        model_cfg m;
        ms_err err = {""};
        if (model_load(s->name, &m, &err)) fail_msg("%s: %s", s->name, err.msg);
        assert_string_equal(m.name, s->name);
        expect_shipped(&m, s);

        /* the same file by path: same figures, name = file stem */
        char path[512];
        snprintf(path, sizeof path, "%s/models/%s.json", SRC, s->name);
        model_cfg byp;
        if (model_load(path, &byp, &err)) fail_msg("%s: %s", path, err.msg);
        assert_string_equal(byp.name, s->name);
        expect_shipped(&byp, s);
    }
}

/* Attention + dense FFN + experts + routers + embeddings and LM head (untied in all seven),
 * from the helpers and the figures, against the totals the model authors publish: a check on
 * the config values and the byte formulas together. Norms are left out (< 0.01%). */
static void test_published_totals(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SHIPPED; i++) {
        const shipped *s = &shipped_models[i];
        model_cfg m;
        ms_err err = {""};
        if (model_load(s->name, &m, &err)) fail_msg("%s: %s", s->name, err.msg);
        double per_param = m.dtype_bytes;
        int moe_layers = m.layers - m.first_dense;
        double total = m.layers * model_attn_param_bytes(&m) / per_param +
                       m.first_dense * 3.0 * m.hidden * m.dense_inter +
                       moe_layers * (m.routed_experts * model_expert_param_bytes(&m) / per_param +
                                     model_shared_param_bytes(&m) / per_param +
                                     (double)m.hidden * m.routed_experts) +
                       2.0 * s->vocab * m.hidden;
        double rel = (total - s->published) / s->published;
        if (rel > 0.01 || rel < -0.01)
            fail_msg("%s: %.4g parameters, published %.4g (%.2f%%)", s->name, total,
                     s->published, rel * 100);
    }
}

/* ---- parameter bytes, by hand ---- */

static void test_param_bytes(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};

    /* DeepSeek-V2, MLA with a query LoRA (bf16 = 2 bytes):
     * q_a 5120x1536 = 7864320; q_b 1536x(128x192) = 37748736; kv_a 5120x(512+64) = 2949120;
     * kv_b 512x(128x(128+128)) = 16777216; o (128x128)x5120 = 83886080; sum 149225472. */
    assert_int_equal(model_load("deepseek-v2", &m, &err), 0);
    assert_double_equal(model_attn_param_bytes(&m), 149225472.0 * 2, 0);
    assert_double_equal(model_expert_param_bytes(&m), 3.0 * 5120 * 1536 * 2, 0); /* 47185920 */
    assert_double_equal(model_shared_param_bytes(&m), 2 * 3.0 * 5120 * 1536 * 2, 0);

    /* DeepSeek-V2-Lite, no query LoRA: q 2048x(16x192) = 6291456; kv_a 2048x576 = 1179648;
     * kv_b 512x(16x256) = 2097152; o (16x128)x2048 = 4194304; sum 13762560. */
    assert_int_equal(model_load("deepseek-v2-lite", &m, &err), 0);
    assert_double_equal(model_attn_param_bytes(&m), 13762560.0 * 2, 0);

    /* Mixtral-8x7B, GQA: Q and O 4096x4096 = 16777216 each; K and V 4096x1024 = 4194304 each;
     * sum 41943040. One expert: 3 x 4096 x 14336 = 176160768. No shared expert. */
    assert_int_equal(model_load("mixtral-8x7b", &m, &err), 0);
    assert_double_equal(model_attn_param_bytes(&m), 41943040.0 * 2, 0);
    assert_double_equal(model_expert_param_bytes(&m), 176160768.0 * 2, 0);
    assert_double_equal(model_shared_param_bytes(&m), 0, 0);

    /* Qwen3-30B-A3B, GQA with head_dim 128 != 2048/32: Q and O 2048x4096 = 8388608 each;
     * K and V 2048x512 = 1048576 each; sum 18874368. */
    assert_int_equal(model_load("qwen3-30b-a3b", &m, &err), 0);
    assert_double_equal(model_attn_param_bytes(&m), 18874368.0 * 2, 0);
    assert_double_equal(model_expert_param_bytes(&m), 3.0 * 2048 * 768 * 2, 0);

    /* NULL-tolerant */
    assert_double_equal(model_attn_param_bytes(NULL), 0, 0);
    assert_double_equal(model_expert_param_bytes(NULL), 0, 0);
    assert_double_equal(model_shared_param_bytes(NULL), 0, 0);
}

/* ---- depth reduction ---- */

static void test_keep_layers(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};
    assert_int_equal(model_load("deepseek-v2", &m, &err), 0);
    assert_int_equal(model_keep_layers(&m, 8, &err), 0); /* FinDEP testbed A */
    assert_int_equal(m.layers, 8);
    assert_int_equal(m.first_dense, 1);
    assert_false(model_layer_is_moe(&m, 0));
    assert_true(model_layer_is_moe(&m, 1));
    assert_true(model_layer_is_moe(&m, 7));
    /* bounds are those of the reduced model now */
    assert_int_equal(model_keep_layers(&m, 9, &err), -1);
    expect_contains(err.msg, "deepseek-v2");
    expect_contains(err.msg, "cannot keep 9 layers: it has 8");
    assert_int_equal(m.layers, 8);
    assert_int_equal(model_keep_layers(&m, 0, &err), -1);
    expect_contains(err.msg, "keep 1 to 8");
    assert_int_equal(model_keep_layers(&m, -3, &err), -1);
    /* keeping only the leading dense layer would leave no MoE layer */
    assert_int_equal(model_keep_layers(&m, 1, &err), -1);
    expect_contains(err.msg, "leaves no MoE layer");
    assert_int_equal(m.layers, 8);
    assert_int_equal(model_keep_layers(&m, 2, &err), 0);
    assert_int_equal(m.layers, 2);

    assert_int_equal(model_load("deepseek-v3", &m, &err), 0);
    assert_int_equal(model_keep_layers(&m, 3, &err), -1); /* 3 dense layers */
    expect_contains(err.msg, "keep 4 to 61");
    assert_int_equal(model_keep_layers(&m, 61, &err), 0);

    assert_int_equal(model_load("qwen3-235b-a22b", &m, &err), 0);
    assert_int_equal(model_keep_layers(&m, 24, &err), 0); /* FinDEP testbed A */
    assert_int_equal(m.layers, 24);
    assert_true(model_layer_is_moe(&m, 0));
    assert_int_equal(model_keep_layers(&m, 1, &err), 0);
    assert_int_equal(m.layers, 1);

    assert_int_equal(model_keep_layers(NULL, 1, &err), -1);
}

/* ---- bad inputs ---- */

typedef struct bad_case {
    const char *file;
    const char *needles[3]; /* each must appear in the message (besides the file name) */
} bad_case;

static const bad_case bad_cases[] = {
    {"missing_hidden.json", {"missing_hidden.json: missing field 'hidden_size'", "deepseek_v2"}},
    {"missing_type.json", {"missing_type.json: missing field 'model_type'"}},
    {"missing_kv_heads.json", {": missing field 'num_key_value_heads'", "qwen3_moe"}},
    {"string_int.json",
     {"string_int.json:4:", "field 'hidden_size'", "expected an integer, got a string"}},
    {"negative.json", {"negative.json:5:", "field 'num_attention_heads'", "at least 1, got -32"}},
    {"zero.json", {"zero.json:12:", "field 'n_routed_experts'", "at least 1, got 0"}},
    {"fraction.json", {"fraction.json:7:", "field 'intermediate_size'", "got 14336.5"}},
    {"huge.json", {"huge.json:4:", "field 'hidden_size'", "at most 10000000, got 100000000"}},
    {"bool.json", {"bool.json:3:", "field 'num_hidden_layers'", "got true"}},
    {"null_required.json", {"null_required.json:12:", "field 'n_routed_experts'", "got null"}},
    {"type_not_string.json",
     {"type_not_string.json:2:", "field 'model_type'", "expected a string"}},
    {"unknown_type.json",
     {"unknown_type.json:2:", "unsupported model_type 'llama'",
      "supported: deepseek_v2, deepseek_v3, qwen2_moe, qwen3_moe, mixtral"}},
    {"bad_json.json", {"bad_json.json:7:3:", "malformed JSON", "intermediate_size"}},
    {"trailing_comma.json", {"trailing_comma.json:10:", "malformed JSON"}},
    {"truncated.json", {"truncated.json:6:", "unexpected end of input"}},
    {"trailing_garbage.json", {"trailing_garbage.json:11:1:", "malformed JSON near 'x'"}},
    {"not_object.json", {"not_object.json:", "expected a JSON object"}},
    {"empty.json", {"empty.json:", "empty file"}},
    {"nul_byte.json", {"nul_byte.json:4:10:", "NUL byte"}},
    {"duplicate.json", {"duplicate.json:9:", "duplicate field 'hidden_size'"}},
    {"topk_gt_experts.json",
     {"topk_gt_experts.json:9:", "field 'num_experts_per_tok'",
      "9 exceeds the number of routed experts (num_local_experts 8)"}},
    {"kv_not_divisor.json",
     {"kv_not_divisor.json:6:", "field 'num_key_value_heads'",
      "5 does not divide num_attention_heads 32"}},
    {"head_dim_indivisible.json",
     {"head_dim_indivisible.json:5:",
      "hidden_size 4100 is not a multiple of num_attention_heads 32", "head_dim"}},
    {"first_dense_all.json",
     {"first_dense_all.json:16:", "field 'first_k_dense_replace'", "leave no MoE layer"}},
    {"moe_layer_freq.json", {"moe_layer_freq.json:17:", "field 'moe_layer_freq'", "not supported"}},
    {"sparse_step.json", {"sparse_step.json:11:", "field 'decoder_sparse_step'", "not supported"}},
    {"mlp_only.json", {"mlp_only.json:12:", "field 'mlp_only_layers'", "not supported"}},
    {"mlp_only_type.json",
     {"mlp_only_type.json:12:", "field 'mlp_only_layers'", "expected an array"}},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char path[512];
        snprintf(path, sizeof path, "%s%s", BAD_DIR, c->file);
        model_cfg m;
        memset(&m, 0x5a, sizeof m); /* untouched on failure */
        model_cfg before = m;
        ms_err err = {""};
        if (model_load(path, &m, &err) == 0) fail_msg("%s: loaded, expected an error", c->file);
        if (!strstr(err.msg, path)) fail_msg("%s: message lacks the path: %s", c->file, err.msg);
        for (int k = 0; k < 3 && c->needles[k]; k++) expect_contains(err.msg, c->needles[k]);
        assert_memory_equal(&m, &before, sizeof m);
    }
}

/* The minimal templates the bad files are derived from load: each bad file fails for its
 * own defect only. */
static void test_templates_load(void **state)
{
    (void)state;
    static const char *const ok[] = {"ok_mixtral.json", "ok_deepseek.json", "ok_qwen3.json"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", BAD_DIR, ok[i]);
        model_cfg m;
        ms_err err = {""};
        if (model_load(path, &m, &err)) fail_msg("%s: %s", ok[i], err.msg);
    }
    model_cfg m;
    ms_err err = {""};
    assert_int_equal(model_load(BAD_DIR "ok_mixtral.json", &m, &err), 0);
    assert_string_equal(m.name, "ok_mixtral"); /* file stem */
    assert_int_equal(model_load(BAD_DIR "ok_qwen3.json", &m, &err), 0);
    assert_int_equal(m.dense_inter, 0); /* intermediate_size is optional for qwen */
}

static void test_unknown_name(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};
    assert_int_equal(model_load("deepseek-v4", &m, &err), -1);
    expect_contains(err.msg, "unknown model 'deepseek-v4'");
    expect_contains(err.msg, "models/deepseek-v4.json");
    expect_contains(err.msg, "available: deepseek-v2, deepseek-v2-lite, deepseek-v3, "
                             "gpt2-medium-moe, gpt2-xl-moe, mixtral-8x22b, mixtral-8x7b, "
                             "qwen3-235b-a22b, qwen3-30b-a3b");
}

static void test_missing_file(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};
    assert_int_equal(model_load(BAD_DIR "no-such-file.json", &m, &err), -1);
    expect_contains(err.msg, "cannot open model file");
    expect_contains(err.msg, "no-such-file.json");
    expect_contains(err.msg, "No such file");
    assert_int_equal(model_load("no-such-file.json", &m, &err), -1); /* .json: a path */
    expect_contains(err.msg, "cannot open model file 'no-such-file.json'");
    assert_int_equal(model_load(SRC "/tests/data/model", &m, &err), -1); /* a directory */
    expect_contains(err.msg, "cannot read model file");
    assert_int_equal(model_load(BAD_DIR, &m, &err), -1); /* ends in '/' */
    expect_contains(err.msg, "no file name");
    assert_int_equal(model_load("", &m, &err), -1);
    expect_contains(err.msg, "empty model spec");
    assert_int_equal(model_load(NULL, &m, &err), -1);
    assert_int_equal(model_load("deepseek-v2", NULL, &err), -1);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(model_load(longname, &m, &err), -1);
    expect_contains(err.msg, "too long");
}

/* ---- buffers ---- */

static int parse(const char *text, model_cfg *m, ms_err *err)
{
    return model_parse_buffer(text, strlen(text), "inline.json", m, err);
}

static void test_qwen2_moe(void **state)
{
    (void)state;
    /* Qwen1.5-MoE-A2.7B's figures: MHA (kv_heads = heads), one wide shared expert */
    const char *text = "{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 24,"
                       " \"hidden_size\": 2048, \"num_attention_heads\": 16,"
                       " \"num_key_value_heads\": 16, \"intermediate_size\": 5632,"
                       " \"moe_intermediate_size\": 1408,"
                       " \"shared_expert_intermediate_size\": 5632,"
                       " \"num_experts\": 60, \"num_experts_per_tok\": 4,"
                       " \"decoder_sparse_step\": 1, \"mlp_only_layers\": []}";
    model_cfg m;
    ms_err err = {""};
    if (parse(text, &m, &err)) fail_msg("%s", err.msg);
    assert_string_equal(m.name, "inline.json");
    assert_string_equal(m.family, "qwen2_moe");
    assert_int_equal(m.attn, MODEL_ATTN_MHA);
    assert_int_equal(m.head_dim, 128); /* hidden / heads */
    assert_int_equal(m.v_head_dim, 128);
    assert_int_equal(m.routed_experts, 60);
    assert_int_equal(m.shared_experts, 1);
    assert_int_equal(m.shared_inter, 5632);
    assert_int_equal(m.expert_inter, 1408);
    assert_double_equal(model_shared_param_bytes(&m), 3.0 * 2048 * 5632 * 2, 0);
    /* MHA: 4 x 2048 x 2048 */
    assert_double_equal(model_attn_param_bytes(&m), 4.0 * 2048 * 2048 * 2, 0);

    const char *no_shared = "{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 24,"
                            " \"hidden_size\": 2048, \"num_attention_heads\": 16,"
                            " \"num_key_value_heads\": 16, \"moe_intermediate_size\": 1408,"
                            " \"num_experts\": 60, \"num_experts_per_tok\": 4}";
    assert_int_equal(parse(no_shared, &m, &err), -1);
    expect_contains(err.msg, "inline.json: missing field 'shared_expert_intermediate_size'");
}

static void test_optional_fields(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};
    /* DeepSeek: q_lora_rank 0 (DeepSeek's own inference configs) = direct queries; no
     * n_shared_experts, first_k_dense_replace, moe_layer_freq: none, 0, 1. */
    const char *ds = "{\"model_type\": \"deepseek_v3\", \"num_hidden_layers\": 4,"
                     " \"hidden_size\": 1024, \"num_attention_heads\": 8,"
                     " \"intermediate_size\": 4096, \"q_lora_rank\": 0, \"kv_lora_rank\": 256,"
                     " \"qk_nope_head_dim\": 64, \"qk_rope_head_dim\": 32, \"v_head_dim\": 64,"
                     " \"n_routed_experts\": 16, \"num_experts_per_tok\": 2,"
                     " \"moe_intermediate_size\": 512, \"n_shared_experts\": null}";
    if (parse(ds, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m.attn, MODEL_ATTN_MLA);
    assert_int_equal(m.q_lora_rank, 0);
    assert_int_equal(m.shared_experts, 0);
    assert_int_equal(m.shared_inter, 0);
    assert_int_equal(m.first_dense, 0);
    assert_int_equal(m.kv_heads, 8);
    assert_int_equal(m.head_dim, 96);
    assert_double_equal(model_shared_param_bytes(&m), 0, 0);

    /* Mixtral with an explicit head_dim (newer transformers write it) */
    const char *mx = "{\"model_type\": \"mixtral\", \"num_hidden_layers\": 2,"
                     " \"hidden_size\": 1024, \"num_attention_heads\": 16, \"head_dim\": 128,"
                     " \"num_key_value_heads\": 16, \"intermediate_size\": 4096,"
                     " \"num_local_experts\": 4, \"num_experts_per_tok\": 4}";
    if (parse(mx, &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m.head_dim, 128);
    assert_int_equal(m.attn, MODEL_ATTN_MHA);
    assert_int_equal(m.top_k, 4); /* top_k == experts is allowed */
}

/* Field lines come from the top-level key, not from a nested object's key of the same name;
 * nested and unknown keys are ignored. */
static void test_nested_keys(void **state)
{
    (void)state;
    const char *text = "{\n"
                       "  \"text_config\": {\"hidden_size\": 1, \"model_type\": 5},\n"
                       "  \"model_type\": \"mixtral\",\n"
                       "  \"num_hidden_layers\": 2,\n"
                       "  \"hidden_size\": \"big\",\n"
                       "  \"num_attention_heads\": 8, \"num_key_value_heads\": 8,\n"
                       "  \"intermediate_size\": 64, \"num_local_experts\": 4,\n"
                       "  \"num_experts_per_tok\": 1\n"
                       "}\n";
    model_cfg m;
    ms_err err = {""};
    assert_int_equal(parse(text, &m, &err), -1);
    expect_contains(err.msg, "inline.json:5: field 'hidden_size'");
}

static void test_buffer_bounds(void **state)
{
    (void)state;
    model_cfg m;
    ms_err err = {""};
    /* only len bytes are read: what follows does not count */
    const char *ok = "{\"model_type\": \"mixtral\", \"num_hidden_layers\": 2,"
                     " \"hidden_size\": 64, \"num_attention_heads\": 8, \"num_key_value_heads\": 2,"
                     " \"intermediate_size\": 64, \"num_local_experts\": 4,"
                     " \"num_experts_per_tok\": 1}";
    char buf[512];
    snprintf(buf, sizeof buf, "%s GARBAGE", ok);
    if (model_parse_buffer(buf, strlen(ok), "b", &m, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m.kv_heads, 2);
    assert_int_equal(model_parse_buffer(buf, strlen(ok) + 3, "b", &m, &err), -1);
    expect_contains(err.msg, "b:1:");
    assert_int_equal(model_parse_buffer(buf, strlen(ok) - 1, "b", &m, &err), -1);
    expect_contains(err.msg, "unexpected end of input");

    /* size cap */
    size_t big = (4u << 20) + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    assert_int_equal(model_parse_buffer(huge, big, "huge", &m, &err), -1);
    expect_contains(err.msg, "larger than");
    free(huge);

    /* deep nesting is refused by cJSON, not a crash */
    char deep[4200];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4);
    n += 4;
    for (int i = 0; i < 2000; i++) deep[n++] = '[';
    deep[n] = '\0';
    assert_int_equal(model_parse_buffer(deep, n, "deep", &m, &err), -1);

    assert_int_equal(model_parse_buffer(NULL, 0, "x", &m, &err), -1);
    assert_int_equal(model_parse_buffer(ok, strlen(ok), NULL, &m, &err), 0);
    assert_string_equal(m.name, "<buffer>");
    assert_int_equal(model_parse_buffer(ok, strlen(ok), "x", NULL, &err), -1);
    /* a NULL err is allowed */
    assert_int_equal(model_parse_buffer("{", 1, "x", &m, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_models),  cmocka_unit_test(test_published_totals),
        cmocka_unit_test(test_param_bytes),     cmocka_unit_test(test_keep_layers),
        cmocka_unit_test(test_bad_inputs),      cmocka_unit_test(test_templates_load),
        cmocka_unit_test(test_unknown_name),    cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_qwen2_moe),       cmocka_unit_test(test_optional_fields),
        cmocka_unit_test(test_nested_keys),     cmocka_unit_test(test_buffer_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

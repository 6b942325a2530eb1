/* MoE model configurations: a strict reader of Hugging Face config.json files (cJSON) that
 * turns each supported family (deepseek_v2/v3, qwen2_moe/qwen3_moe, mixtral) into one
 * family-independent record, plus the parameter-byte helpers. Fields: docs/MODELS.md. */
#include "core/model.h"
#include "core/files.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/paths.h"

#define MAX_DIM 10000000L          /* any integer field, and heads x head_dim (10^7) */
#define MAX_FILE_BYTES (4L << 20)  /* config.json files are a few KiB */

enum { OPTIONAL = 0, REQUIRED = 1 };

typedef enum { FAM_DEEPSEEK, FAM_QWEN2, FAM_QWEN3, FAM_MIXTRAL } family_kind;

static const struct {
    const char *model_type;
    family_kind kind;
} families[] = {
    {"deepseek_v2", FAM_DEEPSEEK}, {"deepseek_v3", FAM_DEEPSEEK}, {"qwen2_moe", FAM_QWEN2},
    {"qwen3_moe", FAM_QWEN3},      {"mixtral", FAM_MIXTRAL},
};
#define SUPPORTED_TYPES "deepseek_v2, deepseek_v3, qwen2_moe, qwen3_moe, mixtral"

/* ---------------------------------------------------------------------------------- */
/* Field access on a parsed document, with messages naming the file, line and field. */

typedef struct reader {
    const char *file;   /* for messages */
    const char *buf;    /* the JSON text (valid: cJSON accepted it) */
    size_t len;
    const cJSON *root;  /* the top-level object */
    const char *family; /* model_type once known, for "required for" notes */
    ms_err *err;
} reader;

/* 1-based line of the nth (1-based) occurrence of key among the top-level object's keys,
 * or 0 when not found (a key written with escapes is not recognised). */
static int key_line(const reader *r, const char *key, int nth)
{
    size_t klen = strlen(key);
    int depth = 0, line = 1, seen = 0;
    const char *p = r->buf, *end = r->buf + r->len;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '\n')
            line++;
        else if (ch == '{' || ch == '[')
            depth++;
        else if (ch == '}' || ch == ']')
            depth--;
        else if (ch == '"') {
            const char *s = ++p;
            int at = line;
            for (; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end) p++;
                if (*p == '\n') line++;
            }
            if (depth != 1 || p >= end) continue;
            const char *q = p + 1;
            while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')) q++;
            if (q < end && *q == ':' && (size_t)(p - s) == klen && memcmp(s, key, klen) == 0 &&
                ++seen == nth)
                return at;
        }
    }
    return 0;
}

/* "file:line: message", the line being that of key (when given and found). Returns -1. */
static int fail(const reader *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(const reader *r, const char *key, const char *fmt, ...)
{
    char msg[MS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = key ? key_line(r, key, 1) : 0;
    if (line) return ms_err_set(r->err, "%s:%d: %s", r->file, line, msg);
    return ms_err_set(r->err, "%s: %s", r->file, msg);
}

/* Finds top-level key (case-sensitive, as Hugging Face reads it); *out = NULL if absent.
 * A key given twice is an error (JSON leaves its meaning open). */
static int lookup(const reader *r, const char *key, const cJSON **out)
{
    *out = NULL;
    for (const cJSON *c = r->root->child; c; c = c->next) {
        if (!c->string || strcmp(c->string, key) != 0) continue;
        if (*out) {
            int line = key_line(r, key, 2);
            if (line)
                return ms_err_set(r->err, "%s:%d: duplicate field '%s'", r->file, line, key);
            return ms_err_set(r->err, "%s: duplicate field '%s'", r->file, key);
        }
        *out = c;
    }
    return 0;
}

/* What a JSON value is, for "expected X, got Y". */
static void describe(const cJSON *v, char *buf, size_t n)
{
    if (cJSON_IsString(v)) {
        char s[48];
        ms_safe_text(s, sizeof s, v->valuestring, strlen(v->valuestring));
        snprintf(buf, n, "a string (\"%s\")", s);
    } else if (cJSON_IsBool(v))
        snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        snprintf(buf, n, "null");
    else if (cJSON_IsArray(v))
        snprintf(buf, n, "an array");
    else if (cJSON_IsObject(v))
        snprintf(buf, n, "an object");
    else if (cJSON_IsNumber(v))
        snprintf(buf, n, "%.15g", v->valuedouble);
    else
        snprintf(buf, n, "an unreadable value");
}

static int missing(const reader *r, const char *key)
{
    if (r->family)
        return fail(r, NULL, "missing field '%s' (required for model_type %s)", key, r->family);
    return fail(r, NULL, "missing field '%s'", key);
}

/* Reads integer field key, lo..hi, into *out. Absent (or null) optional fields take dflt. */
static int get_int(const reader *r, const char *key, int required, long lo, long hi, int dflt,
                   int *out)
{
    const cJSON *v;
    char what[96];
    if (lookup(r, key, &v)) return -1;
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required) return missing(r, key);
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) {
        describe(v, what, sizeof what);
        return fail(r, key, "field '%s': expected an integer, got %s", key, what);
    }
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d))
        return fail(r, key, "field '%s': expected an integer, got %.15g", key, d);
    if (d < (double)lo)
        return fail(r, key, "field '%s': must be at least %ld, got %.15g", key, lo, d);
    if (d > (double)hi)
        return fail(r, key, "field '%s': must be at most %ld, got %.15g", key, hi, d);
    *out = (int)d;
    return 0;
}

/* model_type: a string naming a supported family. */
static int get_family(reader *r, family_kind *kind)
{
    const cJSON *v;
    char what[96];
    if (lookup(r, "model_type", &v)) return -1;
    if (!v) return missing(r, "model_type");
    if (!cJSON_IsString(v)) {
        describe(v, what, sizeof what);
        return fail(r, "model_type", "field 'model_type': expected a string, got %s", what);
    }
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(v->valuestring, families[i].model_type) == 0) {
            r->family = families[i].model_type;
            *kind = families[i].kind;
            return 0;
        }
    ms_safe_text(what, 48, v->valuestring, strlen(v->valuestring));
    return fail(r, "model_type", "field 'model_type': unsupported model_type '%s'; supported: %s",
                what, SUPPORTED_TYPES);
}

/* hidden_act (optional): the expert FFN's form. Gated activations (silu, swish; the
 * SwiGLU of Mixtral, Qwen and DeepSeek) take 3 GEMMs; plain ones (gelu variants, relu; the
 * GPT-2 MLP) take 2. Absent: 3. */
static int get_act(const reader *r, int *gemms)
{
    static const char *const gated[] = {"silu", "swish", "swiglu"};
    static const char *const plain[] = {"gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh",
                                        "relu"};
    const cJSON *v;
    char what[96];
    *gemms = 3;
    if (lookup(r, "hidden_act", &v)) return -1;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) {
        describe(v, what, sizeof what);
        return fail(r, "hidden_act", "field 'hidden_act': expected a string, got %s", what);
    }
    for (size_t i = 0; i < sizeof gated / sizeof gated[0]; i++)
        if (!strcmp(v->valuestring, gated[i])) return 0;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!strcmp(v->valuestring, plain[i])) {
            *gemms = 2;
            return 0;
        }
    ms_safe_text(what, 48, v->valuestring, strlen(v->valuestring));
    return fail(r, "hidden_act", "field 'hidden_act': unknown activation '%s'; known: silu, "
                                 "swish, swiglu (3-GEMM experts), gelu, gelu_new, gelu_fast, "
                                 "gelu_pytorch_tanh, relu (2-GEMM experts)", what);
}

/* ---------------------------------------------------------------------------------- */
/* Families */

static int parse_deepseek(const reader *r, model_cfg *m)
{
    int freq;
    if (get_int(r, "q_lora_rank", OPTIONAL, 0, MAX_DIM, 0, &m->q_lora_rank) ||
        get_int(r, "kv_lora_rank", REQUIRED, 1, MAX_DIM, 0, &m->kv_lora_rank) ||
        get_int(r, "qk_nope_head_dim", REQUIRED, 0, MAX_DIM, 0, &m->qk_nope_head_dim) ||
        get_int(r, "qk_rope_head_dim", REQUIRED, 0, MAX_DIM, 0, &m->qk_rope_head_dim) ||
        get_int(r, "v_head_dim", REQUIRED, 1, MAX_DIM, 0, &m->v_head_dim) ||
        get_int(r, "n_routed_experts", REQUIRED, 1, MAX_DIM, 0, &m->routed_experts) ||
        get_int(r, "n_shared_experts", OPTIONAL, 0, MAX_DIM, 0, &m->shared_experts) ||
        get_int(r, "moe_intermediate_size", REQUIRED, 1, MAX_DIM, 0, &m->expert_inter) ||
        get_int(r, "first_k_dense_replace", OPTIONAL, 0, MAX_DIM, 0, &m->first_dense) ||
        get_int(r, "moe_layer_freq", OPTIONAL, 1, MAX_DIM, 1, &freq))
        return -1;
    if (freq != 1)
        return fail(r, "moe_layer_freq",
                    "field 'moe_layer_freq': %d is not supported: moesched needs every layer from "
                    "first_k_dense_replace on to be an MoE layer (moe_layer_freq 1)", freq);
    if (m->qk_nope_head_dim + m->qk_rope_head_dim < 1)
        return fail(r, "qk_nope_head_dim",
                    "qk_nope_head_dim + qk_rope_head_dim must be at least 1, got 0");
    /* MLA: every query head has its own key and value (decompressed from the latent). */
    m->attn = MODEL_ATTN_MLA;
    m->kv_heads = m->heads;
    m->head_dim = m->qk_nope_head_dim + m->qk_rope_head_dim;
    m->shared_inter = m->shared_experts > 0 ? m->expert_inter : 0;
    return 0;
}

/* mlp_only_layers: absent, null or [] (any listed layer would be dense). */
static int check_mlp_only(const reader *r)
{
    const cJSON *v;
    char what[96];
    if (lookup(r, "mlp_only_layers", &v)) return -1;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v)) {
        describe(v, what, sizeof what);
        return fail(r, "mlp_only_layers", "field 'mlp_only_layers': expected an array, got %s",
                    what);
    }
    if (cJSON_GetArraySize(v) != 0)
        return fail(r, "mlp_only_layers",
                    "field 'mlp_only_layers': dense layers inside a %s stack are not supported: "
                    "moesched needs every layer to be an MoE layer (mlp_only_layers [])",
                    r->family);
    return 0;
}

/* Attention kind and head dims of the GQA-style families (head_dim optional). */
static int gqa_dims(const reader *r, model_cfg *m)
{
    if (m->head_dim == 0) {
        if (m->hidden % m->heads)
            return fail(r, "num_attention_heads",
                        "hidden_size %d is not a multiple of num_attention_heads %d, and there "
                        "is no head_dim field", m->hidden, m->heads);
        m->head_dim = m->hidden / m->heads;
    }
    m->v_head_dim = m->head_dim;
    if (m->kv_heads > m->heads || m->heads % m->kv_heads)
        return fail(r, "num_key_value_heads",
                    "field 'num_key_value_heads': %d does not divide num_attention_heads %d",
                    m->kv_heads, m->heads);
    m->attn = m->kv_heads == m->heads ? MODEL_ATTN_MHA : MODEL_ATTN_GQA;
    return 0;
}

static int parse_qwen(const reader *r, model_cfg *m, int has_shared)
{
    int step;
    if (get_int(r, "num_key_value_heads", REQUIRED, 1, MAX_DIM, 0, &m->kv_heads) ||
        get_int(r, "head_dim", OPTIONAL, 1, MAX_DIM, 0, &m->head_dim) ||
        get_int(r, "num_experts", REQUIRED, 1, MAX_DIM, 0, &m->routed_experts) ||
        get_int(r, "moe_intermediate_size", REQUIRED, 1, MAX_DIM, 0, &m->expert_inter) ||
        get_int(r, "decoder_sparse_step", OPTIONAL, 1, MAX_DIM, 1, &step))
        return -1;
    if (step != 1)
        return fail(r, "decoder_sparse_step",
                    "field 'decoder_sparse_step': %d is not supported: moesched needs every layer "
                    "to be an MoE layer (decoder_sparse_step 1)", step);
    if (check_mlp_only(r)) return -1;
    if (has_shared) { /* qwen2_moe: one shared expert of its own width (0 = none) */
        if (get_int(r, "shared_expert_intermediate_size", REQUIRED, 0, MAX_DIM, 0,
                    &m->shared_inter))
            return -1;
        m->shared_experts = m->shared_inter > 0;
    }
    return gqa_dims(r, m);
}

static int parse_mixtral(const reader *r, model_cfg *m)
{
    if (get_int(r, "num_key_value_heads", REQUIRED, 1, MAX_DIM, 0, &m->kv_heads) ||
        get_int(r, "head_dim", OPTIONAL, 1, MAX_DIM, 0, &m->head_dim) ||
        get_int(r, "num_local_experts", REQUIRED, 1, MAX_DIM, 0, &m->routed_experts))
        return -1;
    m->expert_inter = m->dense_inter; /* each expert is a full-width SwiGLU FFN */
    return gqa_dims(r, m);
}

static const char *routed_key(family_kind k)
{
    switch (k) {
    case FAM_DEEPSEEK: return "n_routed_experts";
    case FAM_QWEN2:
    case FAM_QWEN3: return "num_experts";
    default: return "num_local_experts";
    }
}

/* Cross-field checks, after every field was read. */
static int check(const reader *r, family_kind k, const model_cfg *m)
{
    if (m->top_k > m->routed_experts)
        return fail(r, "num_experts_per_tok",
                    "field 'num_experts_per_tok': %d exceeds the number of routed experts "
                    "(%s %d)", m->top_k, routed_key(k), m->routed_experts);
    if (m->first_dense >= m->layers)
        return fail(r, "first_k_dense_replace",
                    "field 'first_k_dense_replace': %d leading dense layers leave no MoE layer "
                    "among num_hidden_layers %d", m->first_dense, m->layers);
    long long q_width = (long long)m->heads * m->head_dim;
    long long v_width = (long long)m->heads * m->v_head_dim;
    if (q_width > MAX_DIM || v_width > MAX_DIM)
        return fail(r, "num_attention_heads",
                    "num_attention_heads x head dim = %lld exceeds %ld",
                    q_width > v_width ? q_width : v_width, MAX_DIM);
    return 0;
}

static int parse_root(reader *r, model_cfg *m)
{
    family_kind kind = FAM_DEEPSEEK;
    if (get_family(r, &kind)) return -1;
    snprintf(m->family, sizeof m->family, "%s", r->family);
    /* intermediate_size is the dense FFN width: needed by DeepSeek's leading dense layers and
     * as Mixtral's expert width; Qwen MoE configs carry it but no layer uses it. */
    int inter_req = kind == FAM_DEEPSEEK || kind == FAM_MIXTRAL;
    if (get_int(r, "num_hidden_layers", REQUIRED, 1, MAX_DIM, 0, &m->layers) ||
        get_int(r, "hidden_size", REQUIRED, 1, MAX_DIM, 0, &m->hidden) ||
        get_int(r, "num_attention_heads", REQUIRED, 1, MAX_DIM, 0, &m->heads) ||
        get_int(r, "num_experts_per_tok", REQUIRED, 1, MAX_DIM, 0, &m->top_k) ||
        get_int(r, "intermediate_size", inter_req, 1, MAX_DIM, 0, &m->dense_inter))
        return -1;
    int rc = 0;
    switch (kind) {
    case FAM_DEEPSEEK: rc = parse_deepseek(r, m); break;
    case FAM_QWEN2: rc = parse_qwen(r, m, 1); break;
    case FAM_QWEN3: rc = parse_qwen(r, m, 0); break;
    case FAM_MIXTRAL: rc = parse_mixtral(r, m); break;
    }
    if (rc) return -1;
    if (get_act(r, &m->ffn_gemms)) return -1; /* 3: SwiGLU gate, up, down; 2: plain MLP */
    m->dtype_bytes = 2; /* bf16; torch_dtype is not read (docs/MODELS.md) */
    return check(r, kind, m);
}

/* ---------------------------------------------------------------------------------- */
/* Parsing text */

static void line_col(const char *buf, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            l++;
            c = 1;
        } else
            c++;
    }
    *line = l;
    *col = c;
}

static int set_name(model_cfg *m, const char *name, ms_err *err)
{
    size_t n = strlen(name);
    if (n == 0 || n >= sizeof m->name) {
        char s[64];
        ms_safe_text(s, sizeof s, name, n);
        return ms_err_set(err, "model name '%s' must be 1 to %zu characters", s,
                          sizeof m->name - 1);
    }
    memcpy(m->name, name, n + 1);
    return 0;
}

/* file: for messages; name: the model's name. */
static int parse_text(const char *buf, size_t len, const char *file, const char *name,
                      model_cfg *out, ms_err *err)
{
    if (len > (size_t)MAX_FILE_BYTES)
        return ms_err_set(err, "%s: larger than %ld bytes", file, MAX_FILE_BYTES);
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        int line, col;
        line_col(buf, (size_t)(nul - buf), &line, &col);
        return ms_err_set(err, "%s:%d:%d: NUL byte in JSON text", file, line, col);
    }
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n')) i++;
    if (i == len) return ms_err_set(err, "%s: empty file (expected a JSON object)", file);

    /* cJSON's "nothing after the value" check wants the terminating NUL inside the length. */
    char *text = malloc(len + 1);
    if (!text) return ms_err_set(err, "%s: out of memory", file);
    memcpy(text, buf, len);
    text[len] = '\0';
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &stop, 1);
    if (!root) {
        size_t off = stop && stop >= text ? (size_t)(stop - text) : 0;
        if (off > len) off = len;
        int line, col;
        line_col(text, off, &line, &col);
        /* the rest of the line from the error on; when that is blank (cJSON may point just
         * past the offending character), what precedes it on the line */
        char near[40];
        const char *nl = memchr(text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (text + off)) : len - off;
        while (n > 0 && (text[off + n - 1] == ' ' || text[off + n - 1] == '\t' ||
                         text[off + n - 1] == '\r'))
            n--;
        const char *where = n > 0 ? "near" : "after";
        if (n == 0) {
            size_t s = off;
            while (s > 0 && text[s - 1] != '\n' && off - s < 30) s--;
            while (s < off && (text[s] == ' ' || text[s] == '\t')) s++;
            ms_safe_text(near, sizeof near, text + s, off - s);
        } else
            ms_safe_text(near, sizeof near, text + off, n);
        int rc = off >= len ? ms_err_set(err, "%s:%d:%d: malformed JSON: unexpected end of input",
                                         file, line, col)
                            : ms_err_set(err, "%s:%d:%d: malformed JSON %s '%s'", file, line,
                                         col, where, near);
        free(text);
        return rc;
    }
    int rc;
    model_cfg m;
    memset(&m, 0, sizeof m);
    if (!cJSON_IsObject(root)) {
        rc = ms_err_set(err, "%s: expected a JSON object ({...}) at the top level", file);
    } else {
        reader r = {file, text, len, root, NULL, err};
        rc = set_name(&m, name, err);
        if (!rc) rc = parse_root(&r, &m);
    }
    cJSON_Delete(root);
    free(text);
    if (!rc) *out = m;
    return rc;
}

int model_parse_buffer(const char *buf, size_t len, const char *name, model_cfg *out,
                       ms_err *err)
{
    if (!name || !*name) name = "<buffer>";
    if (!buf) return ms_err_set(err, "%s: no text", name);
    if (!out) return ms_err_set(err, "%s: no output", name);
    return parse_text(buf, len, name, name, out, err);
}

/* ---------------------------------------------------------------------------------- */
/* Files and names */


static int load_file(const char *path, int by_name, const char *name, model_cfg *out,
                     ms_err *err)
{
    size_t len = 0;
    int missing = 0;
    char *buf = ms_read_file(path, "model file", MAX_FILE_BYTES, &len, &missing, err);
    if (!buf) {
        if (by_name && missing) {
            char dir[4096], names[700];
            snprintf(dir, sizeof dir, "%s/models", ms_data_dir());
            ms_list_names(dir, ".json", names, sizeof names);
            char s[128];
            ms_safe_text(s, sizeof s, name, strlen(name));
            return ms_err_set(err, "unknown model '%s' (no %s); available: %s", s, path, names);
        }
        return -1;
    }
    int rc = parse_text(buf, len, path, name, out, err);
    free(buf);
    return rc;
}

int model_load(const char *spec, model_cfg *out, ms_err *err)
{
    if (!spec || !*spec) return ms_err_set(err, "empty model spec");
    if (!out) return ms_err_set(err, "model '%s': no output", spec);
    if (strchr(spec, '/') || ms_ends_with(spec, ".json")) {
        /* the model's name is the file stem */
        const char *base = strrchr(spec, '/');
        base = base ? base + 1 : spec;
        char stem[sizeof out->name];
        size_t n = strlen(base);
        if (ms_ends_with(base, ".json")) n -= 5;
        if (n == 0) return ms_err_set(err, "model file '%s': no file name", spec);
        if (n >= sizeof stem)
            return ms_err_set(err, "model file '%s': name longer than %zu characters", spec,
                              sizeof stem - 1);
        memcpy(stem, base, n);
        stem[n] = '\0';
        return load_file(spec, 0, stem, out, err);
    }
    char path[4096];
    if (strlen(spec) >= sizeof out->name ||
        ms_data_path(path, sizeof path, "models", spec, ".json"))
        return ms_err_set(err, "model name '%.100s' is too long", spec);
    return load_file(path, 1, spec, out, err);
}

/* ---------------------------------------------------------------------------------- */
/* Depth reduction and sizes */

int model_keep_layers(model_cfg *m, int n, ms_err *err)
{
    if (!m) return ms_err_set(err, "model: NULL");
    if (n < 1 || n > m->layers)
        return ms_err_set(err, "model '%s': cannot keep %d layers: it has %d (keep 1 to %d)",
                          m->name, n, m->layers, m->layers);
    if (n <= m->first_dense)
        return ms_err_set(err, "model '%s': keeping %d layers leaves no MoE layer (its first %d "
                               "are dense); keep %d to %d", m->name, n, m->first_dense,
                          m->first_dense + 1, m->layers);
    m->layers = n;
    return 0;
}

double model_attn_param_bytes(const model_cfg *m)
{
    if (!m) return 0;
    double h = m->hidden, nh = m->heads, params;
    if (m->attn == MODEL_ATTN_MLA) {
        double qk = (double)m->qk_nope_head_dim + m->qk_rope_head_dim;
        double q = m->q_lora_rank > 0
                       ? h * m->q_lora_rank + (double)m->q_lora_rank * nh * qk /* q_a, q_b */
                       : h * nh * qk;                                          /* q_proj */
        double kv_a = h * ((double)m->kv_lora_rank + m->qk_rope_head_dim);
        double kv_b = (double)m->kv_lora_rank * nh * ((double)m->qk_nope_head_dim + m->v_head_dim);
        double o = nh * m->v_head_dim * h;
        params = q + kv_a + kv_b + o;
    } else {
        params = h * nh * m->head_dim             /* Q */
                 + h * m->kv_heads * m->head_dim  /* K */
                 + h * m->kv_heads * m->v_head_dim /* V */
                 + nh * m->v_head_dim * h;         /* O */
    }
    return params * m->dtype_bytes;
}

double model_expert_param_bytes(const model_cfg *m)
{
    if (!m) return 0;
    return (double)m->ffn_gemms * m->hidden * m->expert_inter * m->dtype_bytes;
}

double model_shared_param_bytes(const model_cfg *m)
{
    if (!m) return 0;
    return (double)m->shared_experts * m->ffn_gemms * m->hidden * m->shared_inter *
           m->dtype_bytes;
}

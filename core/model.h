/* MoE model configurations, read from Hugging Face `config.json` files (models/NAME.json
 * or a path). Only the fields the workload builders need are kept, in one record whose
 * meaning does not depend on the model family (docs/MODELS.md). */
#ifndef MODEL_H
#define MODEL_H

#include <stddef.h>

#include "core/err.h"

typedef enum model_attn {
    MODEL_ATTN_MHA, /* kv_heads == heads */
    MODEL_ATTN_GQA, /* 1 <= kv_heads < heads */
    MODEL_ATTN_MLA, /* DeepSeek multi-head latent attention (kv_lora_rank > 0) */
} model_attn;

typedef struct model_cfg {
    char name[128];    /* file stem or the name given */
    char family[32];   /* HF model_type: "deepseek_v2", "deepseek_v3", "qwen3_moe", "mixtral" */
    int layers;        /* decoder layers kept (num_hidden_layers, or --layers) */
    int hidden;        /* hidden_size, elements */
    model_attn attn;
    int heads;         /* num_attention_heads */
    int kv_heads;      /* num_key_value_heads (MLA: = heads) */
    int head_dim;      /* query/key head dim: head_dim or hidden/heads (MLA: nope + rope) */
    int v_head_dim;    /* value head dim (MHA/GQA: = head_dim) */
    /* MLA only (0 otherwise) */
    int q_lora_rank;      /* 0 = queries projected directly (DeepSeek-V2-Lite) */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
    /* MoE */
    int routed_experts;   /* n_routed_experts | num_experts | num_local_experts */
    int shared_experts;   /* n_shared_experts, 0 if none */
    int top_k;            /* num_experts_per_tok */
    int expert_inter;     /* one routed expert's intermediate size (moe_intermediate_size,
                             or intermediate_size for Mixtral) */
    int shared_inter;     /* one shared expert's intermediate size (0 if none) */
    int dense_inter;      /* intermediate_size of dense (non-MoE) layers */
    int first_dense;      /* leading dense layers (first_k_dense_replace), 0 if none */
    int ffn_gemms;        /* GEMMs per expert FFN: 3 (SwiGLU; hidden_act silu, the default)
                             or 2 (plain MLP; hidden_act gelu*, relu) */
    int dtype_bytes;      /* activation bytes per element: 2 (bf16) */
} model_cfg;

/* Resolves spec as a path (contains '/' or ends in .json) or as models/NAME.json under the
 * data directory, and parses it. Unknown names list the available ones; missing or
 * malformed fields are errors naming the file and the field. */
int model_load(const char *spec, model_cfg *out, ms_err *err);

/* Parses config.json text; name is used in messages and as the model's name. */
int model_parse_buffer(const char *buf, size_t len, const char *name, model_cfg *out,
                       ms_err *err);

/* Keeps the first n layers (FinDEP's depth-reduced models); 1 <= n <= layers. */
int model_keep_layers(model_cfg *m, int n, ms_err *err);

/* Is decoder layer l (0-based) an MoE layer (as opposed to a leading dense one)? */
static inline int model_layer_is_moe(const model_cfg *m, int l) { return l >= m->first_dense; }

/* Parameter bytes of one layer's attention, of one routed expert, of the shared experts;
 * used for memory limits (weights in dtype_bytes). */
double model_attn_param_bytes(const model_cfg *m);
double model_expert_param_bytes(const model_cfg *m);
double model_shared_param_bytes(const model_cfg *m);

#endif

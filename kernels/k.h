/* moesched compute kernels: the whole public API of kernels/. Each kernel has a plain C
 * fp32 reference here (`k_*_ref`, in kernels/NAME_ref.c), used by the tests and by the host
 * executor on real data; the CUDA versions (kernels/NAME.cu, bf16 storage, fp32 accumulation)
 * declare their own `k_*_cuda` entry points in kernels/k_cuda.h and are checked against
 * these references with k_check (llm.c style). No CUDA types appear in this header.
 *
 * Conventions for every function below:
 *  - all arrays are dense, row-major, fp32 unless stated; shapes are given outermost first,
 *    e.g. x[T][d] means element (t, i) is x[t*d + i];
 *  - index arrays are int32_t; dimensions are int and must be >= 1 unless stated;
 *  - outputs are overwritten (never accumulated into), and must not alias inputs unless
 *    stated; the caller owns every buffer, and nothing is kept after the call returns;
 *  - return K_OK (0), K_EINVAL on bad arguments (nothing written, or outputs unspecified
 *    where the fault is only found part-way: an out-of-range expert id), K_ENOMEM if a
 *    temporary allocation failed. The CUDA versions need not validate data values.
 * docs/KERNELS.md mirrors this header. */
#ifndef K_H
#define K_H

#include <stddef.h>
#include <stdint.h>

#define K_OK 0
#define K_EINVAL (-1)
#define K_ENOMEM (-2)

/* ---- GEMM ---------------------------------------------------------------------------- */

/* C[m][n] = A[m][k] · B[k][n] (+ C if accumulate != 0). Blocked plain C; the place where
 * cblas_sgemm goes once the build links OpenBLAS. m, n, k >= 0 (0 is a no-op, or zeroes C
 * when k == 0 and !accumulate). */
int k_gemm_ref(const float *a, const float *b, float *c, int m, int n, int k, int accumulate);

/* ---- gate: scores, (group-limited) top-k, routing weights ------------------------------ */

typedef enum k_gate_score {
    K_GATE_SOFTMAX = 0, /* score_e = softmax over all E logits (Mixtral, Qwen, DeepSeek-V2) */
    K_GATE_SIGMOID = 1  /* score_e = 1 / (1 + exp(-logit_e))           (DeepSeek-V3) */
} k_gate_score;

typedef enum k_group_score {
    K_GROUP_MAX = 0, /* group score = max selection key in the group (DeepSeek-V2) */
    K_GROUP_TOP2 = 1 /* group score = sum of the 2 largest keys in the group (V3); E/G >= 2 */
} k_group_score;

typedef struct k_gate_params {
    int n_experts;             /* E, routed experts */
    int topk;                  /* k, 1..E (and <= the experts in the kept groups) */
    k_gate_score score;        /* softmax or sigmoid */
    int renorm;                /* softmax only: divide the k weights by their sum
                                * (norm_topk_prob); sigmoid weights are always normalised */
    float scale;               /* multiplies the final weights (routed_scaling_factor); 1 */
    const float *bias;         /* [E] or NULL: added to scores for selection only (V3's
                                * e_score_correction_bias); never enters the weights */
    int n_groups;              /* G; 1 = no group limit. E % G == 0 */
    int topk_groups;           /* groups kept, 1..G (ignored when G == 1) */
    k_group_score group_score; /* how a group is scored (ignored when G == 1) */
} k_gate_params;

/* Routes n_tokens tokens from their router logits[T][E]:
 *  1. score_e = softmax or sigmoid of the logits (softmax: max-subtracted, over all E);
 *  2. selection key_e = score_e + bias_e (bias 0 when NULL);
 *  3. if G > 1: experts [g*E/G, (g+1)*E/G) form group g; each group is scored from its
 *     keys (max, or sum of the top 2); the topk_groups best groups are kept (ties: lower
 *     group index wins); experts outside them cannot be selected;
 *  4. the k eligible experts with the largest keys are selected; ties: lower expert index
 *     wins. Slots are written in selection order: descending key, equal keys by index;
 *  5. weight of a selected expert = its score (not key); softmax with renorm, and sigmoid
 *     always, divide by the sum of the k selected scores; then multiply by scale.
 * Outputs: topk_idx[T][k] expert ids in [0, E), topk_w[T][k] weights. */
int k_gate_ref(const float *logits, int n_tokens, const k_gate_params *p, int32_t *topk_idx,
               float *topk_w);

/* ---- permute / unpermute + combine ------------------------------------------------------ */

/* Groups the T·k (token, slot) assignments of topk_idx[T][k] by expert. A slot is the flat
 * index s = t*k + j. Permuted rows are ordered stably by (expert, token, slot): expert e's
 * rows are offsets[e] .. offsets[e+1]-1, in increasing s.
 * Outputs:
 *   counts[E]        rows per expert (0 allowed);
 *   offsets[E+1]     exclusive prefix sum of counts: offsets[0] = 0, offsets[E] = T*k;
 *   row_src[T*k]     for permuted row r, the token t (row of x) it was copied from;
 *   row_of_slot[T*k] inverse map: slot s = t*k + j lives in permuted row row_of_slot[s];
 *   xp[T*k][d]       xp[r] = x[row_src[r]] (the data movement), if x and xp are non-NULL.
 * x[T][d] and xp may both be NULL to compute only the indices (d is then ignored).
 * Every id must be in [0, E): the reference returns K_EINVAL otherwise. A token that
 * picks the same expert twice gets two rows. */
int k_permute_ref(const int32_t *topk_idx, int n_tokens, int topk, int n_experts,
                  const float *x, int d, int32_t *counts, int32_t *offsets, int32_t *row_src,
                  int32_t *row_of_slot, float *xp);

/* Unpermute + combine: out[t][:] = sum over j = 0..k-1 (in that order) of
 * w[t][j] · y[row_of_slot[t*k + j]][:], with y[T*k][d] the expert outputs in permuted
 * order, w[T][k] the gate weights, out[T][d]. */
int k_unpermute_ref(const float *y, const int32_t *row_of_slot, const float *w, int n_tokens,
                    int topk, int d, float *out);

/* ---- SwiGLU expert FFN over many experts ----------------------------------------------- */

/* For each expert e in 0..E-1, over the permuted rows r in [offsets[e], offsets[e+1]):
 *     h = silu(x[r] · W1[e]) ⊙ (x[r] · W3[e]),   y[r] = h · W2[e],   silu(z) = z/(1+e^-z)
 * Layouts: x[N][d] and y[N][d] (N >= offsets[E]), W1[E][d][f], W3[E][d][f], W2[E][f][d]
 * (each expert's matrix row-major, input dimension first, so x·W is a plain row-major
 * GEMM). Rows are indexed by the absolute values in offsets, so an expert-parallel rank
 * holding experts e0..e0+El-1 passes offsets + e0, El, and weight pointers at expert e0,
 * with x/y still the whole permuted buffer. Rows outside every expert's range are not
 * touched. offsets must be non-decreasing and >= 0. The CUDA version runs a grouped /
 * batched cuBLAS GEMM; the reference works in row tiles (allocates one tile of h). */
int k_ffn_swiglu_ref(const float *x, const int32_t *offsets, int n_experts, int d_model,
                     int d_ff, const float *w1, const float *w3, const float *w2, float *y);

/* ---- attention ---------------------------------------------------------------------------- */

/* Head geometry shared by prefill and decode. Query head i reads KV head i / (h / hkv)
 * (consecutive query heads share a KV head: HF's repeat_kv). MHA: hkv == h; GQA:
 * h % hkv == 0; MQA: hkv == 1. d_v may differ from d_qk, which with explicit scale covers
 * MLA's core attention: non-absorbed prefill is d_qk = nope+rope (e.g. 192), d_v = 128,
 * hkv = h; absorbed decode is hkv = 1, d_qk = kv_lora_rank + rope (576), d_v = kv_lora_rank
 * (512), with V the latent (a copy of the first d_v values of each K row). The MLA
 * projections themselves are GEMMs outside these kernels. */
typedef struct k_attn_shape {
    int n_heads;    /* h */
    int n_kv_heads; /* hkv, divides h */
    int d_qk;       /* head dim of q and k */
    int d_v;        /* head dim of v and of the output */
    float scale;    /* softmax scale; 0 means 1/sqrt(d_qk) */
} k_attn_shape;

/* Causal prefill over B packed sequences (varlen): sequence b owns token rows
 * [cu_seqlens[b], cu_seqlens[b+1]) (cu_seqlens[0] = 0, non-decreasing, empty allowed),
 * T = cu_seqlens[B]. q[T][h][d_qk], k[T][hkv][d_qk], v[T][hkv][d_v], out[T][h][d_v].
 * For query row t at position p within its sequence and head i (kv head g):
 *     s_u = scale · q[t][i]·k[u][g]  for the rows u at positions 0..p of the same sequence,
 *     out[t][i] = sum_u softmax(s)_u · v[u][g]   (fp32, max-subtracted softmax).
 * Causal: out at position p depends on nothing at positions > p. */
int k_attn_prefill_ref(const float *q, const float *k, const float *v, const int32_t *cu_seqlens,
                       int n_seqs, const k_attn_shape *s, float *out);

/* Decode: one query per sequence against its KV cache. q[B][h][d_qk], out[B][h][d_v];
 * k_cache[B][max_len][hkv][d_qk], v_cache[B][max_len][hkv][d_v]; sequence b attends to
 * cache positions 0..lens[b]-1 (0 <= lens[b] <= max_len; the current token's K/V must
 * already be in the cache, see k_kv_append_ref). lens[b] == 0 gives out[b] = 0. No causal
 * mask beyond the length. */
int k_attn_decode_ref(const float *q, const float *k_cache, const float *v_cache,
                      const int32_t *lens, int n_seqs, int max_len, const k_attn_shape *s,
                      float *out);

/* Writes the new token's k_new[B][hkv][d_qk] and v_new[B][hkv][d_v] into the caches (layout
 * as in k_attn_decode_ref) at position lens[b] for each sequence b, then lens[b] += 1.
 * K_EINVAL (nothing written) if any lens[b] >= max_len or < 0. */
int k_kv_append_ref(const float *k_new, const float *v_new, int32_t *lens, int n_seqs,
                    int max_len, const k_attn_shape *s, float *k_cache, float *v_cache);

/* ---- checking (llm.c style) --------------------------------------------------------------- */

#define K_CHECK_SHOW 5 /* mismatches listed in the message */

typedef struct k_check_result {
    size_t n;           /* elements compared */
    size_t n_bad;       /* elements with |got - ref| > atol + rtol·|ref|, or NaN/inf in
                         * either where they do not match exactly */
    double max_abs_err; /* max |got - ref| over finite pairs */
    size_t max_abs_at;  /* index of max_abs_err */
    double max_rel_err; /* max |got - ref| / |ref| over finite pairs with ref != 0 */
    size_t max_rel_at;  /* index of max_rel_err */
    size_t first_bad;   /* index of the first mismatch; n when none */
} k_check_result;

/* Compares got[n] against ref[n] element-wise with tolerance atol + rtol·|ref|. Fills res
 * (may be NULL) and writes a one-paragraph report into msg (msg_len bytes, may be NULL/0):
 *   "NAME: 2/1024 mismatches (atol 1e-05, rtol 0.0001); max abs err 0.5 at 7, max rel err
 *    0.25 at 7; first: [7] got 2.5 ref 2; [9] got nan ref 1"
 * (at most K_CHECK_SHOW listed). name may be NULL. Returns 0 when everything is within
 * tolerance, 1 when something is not, K_EINVAL on bad arguments (got/ref NULL with n > 0,
 * or negative tolerances). */
int k_check(const char *name, const float *got, const float *ref, size_t n, float atol,
            float rtol, k_check_result *res, char *msg, size_t msg_len);

/* ---- bf16 helpers and a deterministic filler (shared by CPU tests and GPU checks) ------- */

/* fp32 -> bf16 bits, round to nearest even (NaN stays NaN); and back (exact). */
uint16_t k_bf16_from_f32(float x);
float k_f32_from_bf16(uint16_t b);

/* Rounds each x[i] to the nearest bf16 value in place (what a bf16 store would keep), so
 * the fp32 reference can run on exactly the inputs a bf16 kernel sees. */
void k_round_bf16(float *x, size_t n);

/* Fills x[n] with uniform values in [lo, hi] from a splitmix64 stream seeded by seed:
 * the same seed gives the same values on every platform (CPU tests and gpu-check). */
void k_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

#endif

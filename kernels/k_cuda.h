/* moesched CUDA kernels: the CUDA-side API of kernels/ (kernels/k_*.cu). Each k_*_cuda
 * mirrors a k_*_ref of kernels/k.h, with the same shapes, layouts and selection/tie rules,
 * but takes DEVICE pointers, bf16 storage (k_bf16) with fp32 accumulation, and a stream.
 *
 * Conventions for every function below:
 *  - every pointer is device memory unless "host" is said; launches go on `stream` and
 *    nothing synchronises with the host unless stated;
 *  - return K_OK (0), K_EINVAL (bad shape or NULL pointer; nothing launched), K_ECUDA (a
 *    CUDA call or launch failed) or K_ECUBLAS; on failure err->msg (err may be NULL) says
 *    "file:line: call: library message". The executor prefixes its rank;
 *  - data values are not validated (k.h allows this): an out-of-range expert id or length
 *    is skipped rather than written out of bounds, and its outputs are then unspecified;
 *  - workspaces are caller-allocated (allocate at setup): size them with *_workspace().
 * Only this header has #ifdefs: it is usable from C (k_bf16 is then the 16-bit raw struct,
 * same size and layout) and from CUDA C++. */
#ifndef K_CUDA_H
#define K_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "kernels/k.h"
#ifdef __cplusplus
}
typedef __nv_bfloat16 k_bf16;
extern "C" {
#else
typedef __nv_bfloat16_raw k_bf16;
#endif

#define K_ECUDA (-3)
#define K_ECUBLAS (-4)

typedef struct k_cuda_err {
    char msg[512]; /* "" when no error was recorded */
} k_cuda_err;

/* Records "file:line: what: detail" into err (may be NULL); returns status. */
int k_cuda_fail(k_cuda_err *err, int status, const char *file, int line, const char *what,
                const char *detail);

/* The checking macros: every CUDA call and every launch (CK(err, cudaGetLastError()) right
 * after it) goes through CK; every cuBLAS call through CUBLAS_CK. They return from the
 * enclosing int function with K_ECUDA / K_ECUBLAS. */
#define CK(err, call)                                                                       \
    do {                                                                                    \
        cudaError_t ck_e_ = (call);                                                         \
        if (ck_e_ != cudaSuccess)                                                           \
            return k_cuda_fail((err), K_ECUDA, __FILE__, __LINE__, #call,                   \
                               cudaGetErrorString(ck_e_));                                  \
    } while (0)
#define CUBLAS_CK(err, call)                                                                \
    do {                                                                                    \
        cublasStatus_t cb_s_ = (call);                                                      \
        if (cb_s_ != CUBLAS_STATUS_SUCCESS)                                                 \
            return k_cuda_fail((err), K_ECUBLAS, __FILE__, __LINE__, #call,                 \
                               cublasGetStatusString(cb_s_));                               \
    } while (0)

/* ---- GEMM ----------------------------------------------------------------------------------- */

/* C[m][n] = A[m][k]·B[k][n] (+ C if accumulate), row-major bf16, fp32 compute (cuBLAS,
 * CUBLAS_COMPUTE_32F). Sets `stream` on the caller's handle. */
int k_gemm_cuda(cublasHandle_t blas, const k_bf16 *a, const k_bf16 *b, k_bf16 *c, int m, int n,
                int k, int accumulate, cudaStream_t stream, k_cuda_err *err);

/* ---- gate ----------------------------------------------------------------------------------- */

/* k_gate_ref on the GPU: logits[T][E] bf16; p is a host struct whose p->bias, if non-NULL,
 * is a DEVICE fp32 [E] array. Outputs topk_idx[T][k] int32 and topk_w[T][k] fp32 (routing
 * weights are kept in fp32: T·k values, and they scale every expert output). Scores, keys
 * and weights are computed in fp32; one warp per token. E <= K_GATE_CUDA_MAX_E. */
#define K_GATE_CUDA_MAX_E 4096
int k_gate_cuda(const k_bf16 *logits, int n_tokens, const k_gate_params *p, int32_t *topk_idx,
                float *topk_w, cudaStream_t stream, k_cuda_err *err);

/* ---- permute / unpermute + combine ---------------------------------------------------------- */

/* Bytes of device workspace k_permute_cuda needs for these sizes (>= 1). */
size_t k_permute_cuda_workspace(int n_tokens, int topk, int n_experts);

/* k_permute_ref on the GPU, same outputs and the same stable (expert, token, slot) order
 * (deterministic: no atomics decide an order). x[T][d] and xp[T*k][d] are bf16 and may both
 * be NULL. counts/offsets stay on the device; k_ffn_swiglu_cuda needs offsets on the host,
 * so copy them back (the one host sync of an MoE layer, as in every grouped-GEMM MoE). */
int k_permute_cuda(const int32_t *topk_idx, int n_tokens, int topk, int n_experts,
                   const k_bf16 *x, int d, int32_t *counts, int32_t *offsets, int32_t *row_src,
                   int32_t *row_of_slot, k_bf16 *xp, void *workspace, size_t workspace_bytes,
                   cudaStream_t stream, k_cuda_err *err);

/* k_unpermute_ref on the GPU: out[T][d] bf16 = sum_j (in order) w[t][j]·y[row_of_slot[t*k+j]]
 * with y[T*k][d] bf16, w[T][k] fp32 (k_gate_cuda's weights); fp32 accumulation. */
int k_unpermute_cuda(const k_bf16 *y, const int32_t *row_of_slot, const float *w, int n_tokens,
                     int topk, int d, k_bf16 *out, cudaStream_t stream, k_cuda_err *err);

/* ---- SwiGLU expert FFN over many experts ---------------------------------------------------- */

/* Bytes of device workspace k_ffn_swiglu_cuda needs: two bf16 [rows][d_ff] buffers, rows =
 * offsets[E] - offsets[0] (host offsets). */
size_t k_ffn_swiglu_cuda_workspace(const int32_t *offsets_host, int n_experts, int d_ff);

/* k_ffn_swiglu_ref on the GPU. offsets_host is a HOST array [E+1] (absolute rows, as in the
 * reference, so an expert-parallel rank passes offsets + e0); x, y, w1, w3, w2 are device
 * bf16 with the reference's layouts. Per expert with rows: two cublasGemmEx (x·W1, x·W3,
 * bf16 in/out, fp32 compute) into the workspace, one SwiGLU kernel over all rows (fp32 math,
 * h stored bf16), then one cublasGemmEx per expert for h·W2. Sets `stream` on `blas`. */
int k_ffn_swiglu_cuda(cublasHandle_t blas, const k_bf16 *x, const int32_t *offsets_host,
                      int n_experts, int d_model, int d_ff, const k_bf16 *w1, const k_bf16 *w3,
                      const k_bf16 *w2, k_bf16 *y, void *workspace, size_t workspace_bytes,
                      cudaStream_t stream, k_cuda_err *err);

/* ---- attention ------------------------------------------------------------------------------ */

/* k_attn_prefill_ref on the GPU: q, k, v, out bf16 in the reference's layouts; cu_seqlens
 * device int32 [B+1]; max_seqlen (host) >= every sequence's length (it sizes the grid).
 * One block per (query tile, head, sequence), one warp per query row, K/V tiles staged in
 * shared memory, fp32 online softmax (running max and sum); no global scratch. */
int k_attn_prefill_cuda(const k_bf16 *q, const k_bf16 *k, const k_bf16 *v,
                        const int32_t *cu_seqlens, int n_seqs, int max_seqlen,
                        const k_attn_shape *s, k_bf16 *out, cudaStream_t stream, k_cuda_err *err);

/* k_attn_decode_ref on the GPU: lens device int32 [B]. One block per (sequence, KV head,
 * tile of the query heads sharing it), so a KV tile is read once for those heads (MLA
 * absorbed decode: all h heads share the latent); O(1) scratch per block whatever the
 * length. lens[b] == 0 gives zeros. */
int k_attn_decode_cuda(const k_bf16 *q, const k_bf16 *k_cache, const k_bf16 *v_cache,
                       const int32_t *lens, int n_seqs, int max_len, const k_attn_shape *s,
                       k_bf16 *out, cudaStream_t stream, k_cuda_err *err);

/* k_kv_append_ref on the GPU (lens device int32, incremented in place). A sequence whose
 * lens[b] is out of [0, max_len) is left untouched (no error can be returned without a
 * sync; the reference reports K_EINVAL for it). */
int k_kv_append_cuda(const k_bf16 *k_new, const k_bf16 *v_new, int32_t *lens, int n_seqs,
                     int max_len, const k_attn_shape *s, k_bf16 *k_cache, k_bf16 *v_cache,
                     cudaStream_t stream, k_cuda_err *err);

#ifdef __cplusplus
}
#endif

#endif

/* CUDA permute and unpermute + combine (k_permute_ref / k_unpermute_ref of kernels/k.h).
 * Permute is deterministic and stable by (expert, token, slot): slots are cut into chunks;
 * a per-chunk expert histogram, a scan over chunks and experts, then one warp per chunk
 * walks its slots in order, ranking equal experts within each 32-slot step with
 * __match_any_sync. No atomics decide an order. */
#include "kernels/k_cuda.h"

namespace {

const int CHUNK = 4096; /* slots per chunk */

int n_chunks(size_t S) { return (int)((S + CHUNK - 1) / CHUNK); }

/* hist[c][E]: how many slots of chunk c pick each expert (ids out of range are skipped) */
__global__ void chunk_hist(const int32_t *idx, int S, int E, int32_t *hist)
{
    extern __shared__ int32_t h[];
    for (int e = threadIdx.x; e < E; e += blockDim.x) h[e] = 0;
    __syncthreads();
    int s0 = blockIdx.x * CHUNK, s1 = min(S, s0 + CHUNK);
    for (int s = s0 + threadIdx.x; s < s1; s += blockDim.x) {
        int e = idx[s];
        if (e >= 0 && e < E) atomicAdd(&h[e], 1);
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) hist[(size_t)blockIdx.x * E + e] = h[e];
}

/* hist[c][e] becomes the exclusive prefix over chunks (+ offsets[e]); counts, offsets out.
 * One block: threads over experts for the chunk scan, thread 0 for the expert scan. */
__global__ void scan(int32_t *hist, int nc, int E, int32_t *counts, int32_t *offsets)
{
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int32_t run = 0;
        for (int c = 0; c < nc; c++) {
            int32_t n = hist[(size_t)c * E + e];
            hist[(size_t)c * E + e] = run;
            run += n;
        }
        counts[e] = run;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int32_t run = 0;
        for (int e = 0; e < E; e++) {
            offsets[e] = run;
            run += counts[e];
        }
        offsets[E] = run;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x)
        for (int c = 0; c < nc; c++) hist[(size_t)c * E + e] += offsets[e];
}

/* one warp per chunk: rows in slot order */
__global__ void place(const int32_t *idx, int S, int topk, int E, const int32_t *base,
                      int32_t *row_src, int32_t *row_of_slot)
{
    extern __shared__ int32_t cur[];
    const int lane = threadIdx.x;
    for (int e = lane; e < E; e += 32) cur[e] = base[(size_t)blockIdx.x * E + e];
    __syncwarp();
    int s0 = blockIdx.x * CHUNK, s1 = min(S, s0 + CHUNK);
    for (int sb = s0; sb < s1; sb += 32) {
        int s = sb + lane;
        int e = s < s1 ? idx[s] : -1;
        if (e >= E) e = -1;
        unsigned same = __match_any_sync(0xffffffffu, e);
        int r = 0;
        if (e >= 0) r = cur[e] + __popc(same & ((1u << lane) - 1));
        __syncwarp();
        if (e >= 0 && lane == __ffs(same) - 1) cur[e] += __popc(same);
        __syncwarp();
        if (s < s1) {
            row_of_slot[s] = e >= 0 ? r : -1;
            if (e >= 0) row_src[r] = s / topk;
        }
    }
}

/* xp[r][:] = x[row_src[r]][:]; grid-stride over rows, threads over columns */
__global__ void gather_rows(const k_bf16 *x, const int32_t *row_src, int S, int d, k_bf16 *xp)
{
    for (int r = blockIdx.x; r < S; r += gridDim.x) {
        const k_bf16 *src = x + (size_t)row_src[r] * d;
        k_bf16 *dst = xp + (size_t)r * d;
        for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = src[i];
    }
}

/* out[t][:] = sum_j w[t][j] · y[row_of_slot[t*k+j]][:], fp32 in order j */
__global__ void combine(const k_bf16 *y, const int32_t *row_of_slot, const float *w, int T,
                        int k, int d, k_bf16 *out)
{
    for (int t = blockIdx.x; t < T; t += gridDim.x)
        for (int i = threadIdx.x; i < d; i += blockDim.x) {
            float acc = 0.0f;
            for (int j = 0; j < k; j++) {
                int32_t r = row_of_slot[(size_t)t * k + j];
                if (r < 0) continue;
                acc += w[(size_t)t * k + j] * __bfloat162float(y[(size_t)r * d + i]);
            }
            out[(size_t)t * d + i] = __float2bfloat16(acc);
        }
}

int grid_for(size_t n) { return (int)(n < 65535 ? (n > 0 ? n : 1) : 65535); }

} // namespace

size_t k_permute_cuda_workspace(int n_tokens, int topk, int n_experts)
{
    if (n_tokens < 0 || topk < 1 || n_experts < 1) return 1;
    size_t S = (size_t)n_tokens * (size_t)topk;
    size_t b = sizeof(int32_t) * (size_t)n_chunks(S) * (size_t)n_experts;
    return b > 0 ? b : 1;
}

int k_permute_cuda(const int32_t *topk_idx, int n_tokens, int topk, int n_experts,
                   const k_bf16 *x, int d, int32_t *counts, int32_t *offsets, int32_t *row_src,
                   int32_t *row_of_slot, k_bf16 *xp, void *workspace, size_t workspace_bytes,
                   cudaStream_t stream, k_cuda_err *err)
{
    const char *fn = "k_permute_cuda";
    if (n_tokens < 0 || topk < 1 || n_experts < 1 || !counts || !offsets)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn,
                           "bad sizes or NULL counts/offsets");
    if ((x == NULL) != (xp == NULL) || (x && d < 1))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn,
                           "x and xp: both or neither, d >= 1");
    size_t S = (size_t)n_tokens * (size_t)topk;
    if (S > INT32_MAX)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "more than 2^31 slots");
    if (S > 0 && (!topk_idx || !row_src || !row_of_slot))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "NULL index buffer");
    size_t need = k_permute_cuda_workspace(n_tokens, topk, n_experts);
    if (S > 0 && (!workspace || workspace_bytes < need))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn,
                           "workspace missing or smaller than k_permute_cuda_workspace()");
    size_t smem = sizeof(int32_t) * (size_t)n_experts;
    if (smem > 48 * 1024)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "more than 12288 experts");
    int nc = n_chunks(S), E = n_experts;
    int32_t *hist = (int32_t *)workspace;
    if (nc > 0) {
        chunk_hist<<<nc, 256, smem, stream>>>(topk_idx, (int)S, E, hist);
        CK(err, cudaGetLastError());
    }
    scan<<<1, 256, 0, stream>>>(hist, nc, E, counts, offsets);
    CK(err, cudaGetLastError());
    if (nc > 0) {
        place<<<nc, 32, smem, stream>>>(topk_idx, (int)S, topk, E, hist, row_src, row_of_slot);
        CK(err, cudaGetLastError());
    }
    if (x && S > 0) {
        gather_rows<<<grid_for(S), 128, 0, stream>>>(x, row_src, (int)S, d, xp);
        CK(err, cudaGetLastError());
    }
    return K_OK;
}

int k_unpermute_cuda(const k_bf16 *y, const int32_t *row_of_slot, const float *w, int n_tokens,
                     int topk, int d, k_bf16 *out, cudaStream_t stream, k_cuda_err *err)
{
    if (n_tokens < 0 || topk < 1 || d < 1)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_unpermute_cuda", "bad sizes");
    if (n_tokens == 0) return K_OK;
    if (!y || !row_of_slot || !w || !out)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_unpermute_cuda", "NULL buffer");
    combine<<<grid_for((size_t)n_tokens), 128, 0, stream>>>(y, row_of_slot, w, n_tokens, topk, d,
                                                             out);
    CK(err, cudaGetLastError());
    return K_OK;
}

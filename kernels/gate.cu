/* CUDA MoE gate (k_gate_ref of kernels/k.h on the GPU): softmax or sigmoid scores, optional
 * selection bias, optional group limit (max / top-2 sum), top-k with lower-index-wins ties
 * and routing weights. One warp per token; per-warp scratch (scores, keys, flags) in shared
 * memory; every argmax is a warp reduction on (key desc, index asc). */
#include <float.h>
#include <limits.h>

#include "kernels/k_cuda.h"

namespace {

const int WARPS = 4; /* tokens per block */
const int NONE = INT_MAX;

struct cand {
    float v;
    int i;
};

/* a beats b: a valid and (b invalid, larger key, or equal key and lower index) */
__device__ bool beats(cand a, cand b)
{
    return a.i != NONE && (b.i == NONE || a.v > b.v || (a.v == b.v && a.i < b.i));
}

/* Warp-wide argmax of val[0..n) over entries with !taken; lower index wins ties. Every lane
 * gets the winner's index (NONE if nothing is free). */
__device__ int warp_argmax(const float *val, const unsigned char *taken, int n, int lane)
{
    cand best = {0.0f, NONE};
    for (int i = lane; i < n; i += 32) {
        cand c = {val[i], i};
        if (!taken[i] && beats(c, best)) best = c;
    }
    for (int o = 16; o > 0; o >>= 1) {
        cand c = {__shfl_xor_sync(0xffffffffu, best.v, o), __shfl_xor_sync(0xffffffffu, best.i, o)};
        if (beats(c, best)) best = c;
    }
    return best.i;
}

__device__ float warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ double warp_sum(double x)
{
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* per-warp scratch: score[E], key[E], gscore[G] (fp32), then taken[E], gtaken[G] (bytes) */
size_t scratch_bytes(int E, int G)
{
    size_t b = sizeof(float) * (size_t)(2 * E + G) + (size_t)(E + G);
    return (b + 15) / 16 * 16;
}

__global__ void gate_kernel(const k_bf16 *logits, int T, k_gate_params p, size_t warp_bytes,
                            int32_t *topk_idx, float *topk_w)
{
    extern __shared__ unsigned char smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int t = blockIdx.x * WARPS + warp;
    if (t >= T) return; /* whole warp leaves together; no block-wide sync below */
    const int E = p.n_experts, k = p.topk, G = p.n_groups, per = E / G;
    float *score = (float *)(smem + warp * warp_bytes);
    float *key = score + E, *gscore = key + E;
    unsigned char *taken = (unsigned char *)(gscore + G), *gtaken = taken + E;
    const k_bf16 *l = logits + (size_t)t * E;

    if (p.score == K_GATE_SOFTMAX) {
        float mx = -INFINITY;
        for (int e = lane; e < E; e += 32) mx = fmaxf(mx, __bfloat162float(l[e]));
        mx = warp_max(mx);
        double sum = 0;
        for (int e = lane; e < E; e += 32) {
            float x = expf(__bfloat162float(l[e]) - mx);
            score[e] = x;
            sum += x;
        }
        float inv = (float)(1.0 / warp_sum(sum));
        for (int e = lane; e < E; e += 32) score[e] *= inv;
    } else {
        for (int e = lane; e < E; e += 32) score[e] = 1.0f / (1.0f + expf(-__bfloat162float(l[e])));
    }
    for (int e = lane; e < E; e += 32) {
        key[e] = score[e] + (p.bias ? p.bias[e] : 0.0f);
        taken[e] = 0;
    }
    __syncwarp();
    if (G > 1) {
        for (int g = lane; g < G; g += 32) {
            const float *kg = key + (size_t)g * per;
            float a = -INFINITY, b = -INFINITY; /* largest, second largest: as the reference */
            for (int i = 0; i < per; i++) {
                if (kg[i] > a) b = a, a = kg[i];
                else if (kg[i] > b) b = kg[i];
            }
            gscore[g] = p.group_score == K_GROUP_MAX ? a : a + b;
            gtaken[g] = 0;
        }
        __syncwarp();
        for (int n = 0; n < p.topk_groups; n++) {
            int g = warp_argmax(gscore, gtaken, G, lane);
            if (lane == 0 && g != NONE) gtaken[g] = 1;
            __syncwarp();
        }
        for (int e = lane; e < E; e += 32)
            if (!gtaken[e / per]) taken[e] = 1;
        __syncwarp();
    }
    int32_t *idx = topk_idx + (size_t)t * k;
    float *w = topk_w + (size_t)t * k;
    double sum = 0;
    for (int j = 0; j < k; j++) {
        int e = warp_argmax(key, taken, E, lane);
        if (e == NONE) e = 0; /* cannot happen with valid params (topk <= eligible experts) */
        if (lane == 0) {
            taken[e] = 1;
            idx[j] = e;
            w[j] = score[e];
        }
        sum += score[e];
        __syncwarp();
    }
    if (lane == 0) {
        int norm = p.score == K_GATE_SIGMOID || p.renorm;
        float f = norm && sum > 0 ? (float)(p.scale / sum) : p.scale;
        for (int j = 0; j < k; j++) w[j] *= f;
    }
}

int params_ok(const k_gate_params *p)
{
    if (!p || p->n_experts < 1 || p->topk < 1 || p->topk > p->n_experts) return 0;
    if (p->n_experts > K_GATE_CUDA_MAX_E) return 0;
    if (p->score != K_GATE_SOFTMAX && p->score != K_GATE_SIGMOID) return 0;
    if (p->n_groups < 1 || p->n_experts % p->n_groups != 0) return 0;
    if (p->n_groups > 1) {
        int per = p->n_experts / p->n_groups;
        if (p->topk_groups < 1 || p->topk_groups > p->n_groups) return 0;
        if (p->topk > p->topk_groups * per) return 0;
        if (p->group_score == K_GROUP_TOP2 ? per < 2 : p->group_score != K_GROUP_MAX) return 0;
    }
    return 1;
}

} // namespace

int k_gate_cuda(const k_bf16 *logits, int n_tokens, const k_gate_params *p, int32_t *topk_idx,
                float *topk_w, cudaStream_t stream, k_cuda_err *err)
{
    if (!params_ok(p) || n_tokens < 0)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_gate_cuda",
                           "bad gate parameters (see k.h; E <= K_GATE_CUDA_MAX_E)");
    if (n_tokens == 0) return K_OK;
    if (!logits || !topk_idx || !topk_w)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_gate_cuda", "NULL buffer");
    k_gate_params dp = *p;
    if (dp.n_groups == 1) dp.topk_groups = 1;
    size_t wb = scratch_bytes(dp.n_experts, dp.n_groups);
    size_t smem = wb * WARPS;
    if (smem > 48 * 1024)
        CK(err, cudaFuncSetAttribute(gate_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
    int blocks = (n_tokens + WARPS - 1) / WARPS;
    gate_kernel<<<blocks, WARPS * 32, smem, stream>>>(logits, n_tokens, dp, wb, topk_idx, topk_w);
    CK(err, cudaGetLastError());
    return K_OK;
}

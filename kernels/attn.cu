/* CUDA attention (k_attn_prefill_ref / k_attn_decode_ref / k_kv_append_ref of kernels/k.h):
 * causal varlen prefill and KV-cache decode, MHA/GQA/MQA and MLA's core attention
 * (d_v != d_qk). Straightforward, not flash: a block owns up to QT query rows that read the
 * same keys (prefill: QT consecutive positions of one head; decode: QT query heads sharing
 * one KV head), stages KT-key tiles of K and V in shared memory, and each warp keeps one
 * row's fp32 online softmax (running max m, running sum l) and output accumulator. */
#include "kernels/k_cuda.h"

namespace {

const int KT = 32; /* keys per tile: one per lane when scoring */

struct attn_args {
    const k_bf16 *q, *k, *v;
    k_bf16 *out;
    const int32_t *seq; /* prefill: cu_seqlens[B+1]; decode: lens[B] */
    int H, HK, DQ, DV, max_len, decode, qt;
    float scale;
};

__device__ float warp_max(float x)
{
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

__device__ float warp_sum(float x)
{
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* K tile row stride, odd so that lane-per-key reads spread over the banks */
__host__ __device__ int kstride(int dq) { return dq % 2 == 0 ? dq + 1 : dq; }

/* shared layout: qs[qt][DQ], acc[qt][DV], ps[qt][KT] (fp32), then ks[KT][kstride], vs[KT][DV]
 * (bf16) */
size_t smem_bytes(int qt, int dq, int dv)
{
    size_t f = sizeof(float) * ((size_t)qt * (size_t)(dq + dv + KT));
    size_t h = sizeof(k_bf16) * (size_t)KT * (size_t)(kstride(dq) + dv);
    return (f + 15) / 16 * 16 + h;
}

__global__ void attn_kernel(attn_args a)
{
    extern __shared__ float sm[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, QT = a.qt;
    const int DQ = a.DQ, DV = a.DV, KS = kstride(DQ), grp = a.H / a.HK;
    float *qs = sm, *acc = qs + (size_t)QT * DQ, *ps = acc + (size_t)QT * DV;
    size_t fbytes = sizeof(float) * ((size_t)QT * (size_t)(DQ + DV + KT));
    k_bf16 *ks = (k_bf16 *)((char *)sm + (fbytes + 15) / 16 * 16), *vs = ks + (size_t)KT * KS;

    /* this block's key rows (base, row stride) and each warp's query row and key count */
    const k_bf16 *kb, *vb;
    const k_bf16 *qrow = NULL;
    k_bf16 *orow = NULL;
    int n_block, n_mine, valid;
    const size_t krow = (size_t)a.HK * DQ, vrow = (size_t)a.HK * DV;
    if (!a.decode) {
        const int i = blockIdx.y, g = i / grp, b = blockIdx.z;
        const int t0 = a.seq[b], len = a.seq[b + 1] - t0, p0 = blockIdx.x * QT;
        if (p0 >= len) return; /* whole block */
        n_block = min(len, p0 + QT);
        const int p = p0 + w;
        valid = p < len;
        n_mine = p + 1;
        kb = a.k + ((size_t)t0 * a.HK + g) * DQ;
        vb = a.v + ((size_t)t0 * a.HK + g) * DV;
        if (valid) {
            qrow = a.q + ((size_t)(t0 + p) * a.H + i) * DQ;
            orow = a.out + ((size_t)(t0 + p) * a.H + i) * DV;
        }
    } else {
        const int g = blockIdx.y, b = blockIdx.z, j = blockIdx.x * QT + w;
        int len = a.seq[b];
        len = len < 0 ? 0 : (len > a.max_len ? a.max_len : len);
        n_block = n_mine = len;
        valid = j < grp;
        kb = a.k + ((size_t)b * a.max_len * a.HK + g) * DQ;
        vb = a.v + ((size_t)b * a.max_len * a.HK + g) * DV;
        if (valid) {
            const int i = g * grp + j;
            qrow = a.q + ((size_t)b * a.H + i) * DQ;
            orow = a.out + ((size_t)b * a.H + i) * DV;
        }
    }
    float *myq = qs + (size_t)w * DQ, *myacc = acc + (size_t)w * DV, *myp = ps + (size_t)w * KT;
    if (valid) {
        for (int c = lane; c < DQ; c += 32) myq[c] = __bfloat162float(qrow[c]);
        for (int c = lane; c < DV; c += 32) myacc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int nthr = blockDim.x;
    for (int u0 = 0; u0 < n_block; u0 += KT) {
        const int nk = min(KT, n_block - u0);
        __syncthreads(); /* the previous tile is consumed (and q is staged) */
        for (int x = threadIdx.x; x < nk * DQ; x += nthr) {
            int r = x / DQ, c = x - r * DQ;
            ks[r * KS + c] = kb[(size_t)(u0 + r) * krow + c];
        }
        for (int x = threadIdx.x; x < nk * DV; x += nthr) {
            int r = x / DV, c = x - r * DV;
            vs[r * DV + c] = vb[(size_t)(u0 + r) * vrow + c];
        }
        __syncthreads();
        if (!valid) continue; /* warp-uniform */
        float s = -INFINITY;
        if (lane < nk && u0 + lane < n_mine) {
            const k_bf16 *kr = ks + lane * KS;
            float dot = 0.0f;
            for (int c = 0; c < DQ; c++) dot += myq[c] * __bfloat162float(kr[c]);
            s = dot * a.scale;
        }
        const float tmax = warp_max(s);
        if (tmax == -INFINITY) continue; /* nothing visible in this tile (warp-uniform) */
        const float m_new = fmaxf(m, tmax), corr = expf(m - m_new);
        const float pj = s == -INFINITY ? 0.0f : expf(s - m_new);
        l = l * corr + warp_sum(pj);
        myp[lane] = pj;
        __syncwarp();
        for (int c = lane; c < DV; c += 32) {
            float o = myacc[c] * corr;
            for (int j = 0; j < nk; j++) o += myp[j] * __bfloat162float(vs[j * DV + c]);
            myacc[c] = o;
        }
        __syncwarp();
        m = m_new;
    }
    if (valid) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int c = lane; c < DV; c += 32) orow[c] = __float2bfloat16(myacc[c] * inv);
    }
}

__global__ void kv_append(const k_bf16 *k_new, const k_bf16 *v_new, int32_t *lens, int L, int HK,
                          int DQ, int DV, k_bf16 *k_cache, k_bf16 *v_cache)
{
    const int b = blockIdx.x;
    const int pos = lens[b];
    if (pos < 0 || pos >= L) return; /* whole block */
    const size_t nk = (size_t)HK * DQ, nv = (size_t)HK * DV;
    for (size_t x = threadIdx.x; x < nk; x += blockDim.x)
        k_cache[((size_t)b * L + pos) * nk + x] = k_new[(size_t)b * nk + x];
    for (size_t x = threadIdx.x; x < nv; x += blockDim.x)
        v_cache[((size_t)b * L + pos) * nv + x] = v_new[(size_t)b * nv + x];
    __syncthreads(); /* every thread has read lens[b] */
    if (threadIdx.x == 0) lens[b] = pos + 1;
}

int shape_ok(const k_attn_shape *s)
{
    return s && s->n_heads >= 1 && s->n_kv_heads >= 1 && s->n_heads % s->n_kv_heads == 0 &&
           s->d_qk >= 1 && s->d_v >= 1 && s->scale >= 0;
}

/* picks the query rows per block (8, else 4 when shared memory is tight) and launches */
int launch(attn_args a, int rows_per_kv, int grid_y, int grid_z, cudaStream_t stream,
           k_cuda_err *err)
{
    a.qt = 8;
    if (smem_bytes(a.qt, a.DQ, a.DV) > 48 * 1024) a.qt = 4;
    if (rows_per_kv < a.qt) a.qt = rows_per_kv < 1 ? 1 : rows_per_kv;
    size_t smem = smem_bytes(a.qt, a.DQ, a.DV);
    if (smem > 48 * 1024)
        CK(err, cudaFuncSetAttribute(attn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
    dim3 grid((unsigned)((rows_per_kv + a.qt - 1) / a.qt), (unsigned)grid_y, (unsigned)grid_z);
    attn_kernel<<<grid, a.qt * 32, smem, stream>>>(a);
    CK(err, cudaGetLastError());
    return K_OK;
}

} // namespace

int k_attn_prefill_cuda(const k_bf16 *q, const k_bf16 *k, const k_bf16 *v,
                        const int32_t *cu_seqlens, int n_seqs, int max_seqlen,
                        const k_attn_shape *s, k_bf16 *out, cudaStream_t stream, k_cuda_err *err)
{
    const char *fn = "k_attn_prefill_cuda";
    if (!shape_ok(s) || n_seqs < 0 || max_seqlen < 0)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "bad shape or sizes");
    if (n_seqs == 0 || max_seqlen == 0) return K_OK;
    if (n_seqs > 65535 || s->n_heads > 65535)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "over 65535 sequences or heads");
    if (!q || !k || !v || !cu_seqlens || !out)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "NULL buffer");
    attn_args a = {q, k, v, out, cu_seqlens, s->n_heads, s->n_kv_heads, s->d_qk, s->d_v, 0, 0, 0,
                   s->scale > 0 ? s->scale : 1.0f / sqrtf((float)s->d_qk)};
    return launch(a, max_seqlen, s->n_heads, n_seqs, stream, err);
}

int k_attn_decode_cuda(const k_bf16 *q, const k_bf16 *k_cache, const k_bf16 *v_cache,
                       const int32_t *lens, int n_seqs, int max_len, const k_attn_shape *s,
                       k_bf16 *out, cudaStream_t stream, k_cuda_err *err)
{
    const char *fn = "k_attn_decode_cuda";
    if (!shape_ok(s) || n_seqs < 0 || max_len < 0)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "bad shape or sizes");
    if (n_seqs == 0) return K_OK;
    if (n_seqs > 65535 || s->n_kv_heads > 65535)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "over 65535 sequences or heads");
    if (!q || !lens || !out || (max_len > 0 && (!k_cache || !v_cache)))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "NULL buffer");
    attn_args a = {q, k_cache, v_cache, out, lens, s->n_heads, s->n_kv_heads, s->d_qk, s->d_v,
                   max_len, 1, 0, s->scale > 0 ? s->scale : 1.0f / sqrtf((float)s->d_qk)};
    return launch(a, s->n_heads / s->n_kv_heads, s->n_kv_heads, n_seqs, stream, err);
}

int k_kv_append_cuda(const k_bf16 *k_new, const k_bf16 *v_new, int32_t *lens, int n_seqs,
                     int max_len, const k_attn_shape *s, k_bf16 *k_cache, k_bf16 *v_cache,
                     cudaStream_t stream, k_cuda_err *err)
{
    const char *fn = "k_kv_append_cuda";
    if (!shape_ok(s) || n_seqs < 0 || max_len < 0)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "bad shape or sizes");
    if (n_seqs == 0) return K_OK;
    if (!k_new || !v_new || !lens || !k_cache || !v_cache)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "NULL buffer");
    kv_append<<<n_seqs, 128, 0, stream>>>(k_new, v_new, lens, max_len, s->n_kv_heads, s->d_qk,
                                          s->d_v, k_cache, v_cache);
    CK(err, cudaGetLastError());
    return K_OK;
}

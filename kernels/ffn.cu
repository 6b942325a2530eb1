/* CUDA GEMM and SwiGLU expert FFN (k_gemm_ref / k_ffn_swiglu_ref of kernels/k.h) on cuBLAS:
 * bf16 storage, CUBLAS_COMPUTE_32F. Row-major C[m][n] = A[m][k]·B[k][n] is the column-major
 * product C^T = B^T·A^T, so every call passes (n, m, k) and B before A. */
#include "kernels/k_cuda.h"

namespace {

/* row-major c[m][n] = a[m][k] · b[k][n] (beta 0 or 1), lda/ldb/ldc = row strides */
cublasStatus_t gemm_rm(cublasHandle_t h, const k_bf16 *a, const k_bf16 *b, k_bf16 *c, int m,
                       int n, int k, float beta)
{
    const float alpha = 1.0f;
    return cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, CUDA_R_16BF, n, a,
                        CUDA_R_16BF, k, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

/* h1[i] = silu(h1[i]) · h3[i], fp32 math, in place */
__global__ void swiglu(k_bf16 *h1, const k_bf16 *h3, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = __bfloat162float(h1[i]);
        h1[i] = __float2bfloat16(g / (1.0f + expf(-g)) * __bfloat162float(h3[i]));
    }
}

__global__ void fill_zero(k_bf16 *c, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c[i] = __float2bfloat16(0.0f);
}

int blocks_for(size_t n, int threads)
{
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    return (int)(b < 4096 ? (b > 0 ? b : 1) : 4096);
}

int offsets_ok(const int32_t *off, int E)
{
    if (!off || E < 1 || off[0] < 0) return 0;
    for (int e = 0; e < E; e++)
        if (off[e + 1] < off[e]) return 0;
    return 1;
}

} // namespace

int k_gemm_cuda(cublasHandle_t blas, const k_bf16 *a, const k_bf16 *b, k_bf16 *c, int m, int n,
                int k, int accumulate, cudaStream_t stream, k_cuda_err *err)
{
    if (m < 0 || n < 0 || k < 0)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_gemm_cuda", "negative size");
    if (m == 0 || n == 0) return K_OK;
    if (!blas || !c || (k > 0 && (!a || !b)))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, "k_gemm_cuda",
                           "NULL handle or buffer");
    if (k == 0) {
        if (!accumulate) {
            size_t nn = (size_t)m * (size_t)n;
            fill_zero<<<blocks_for(nn, 256), 256, 0, stream>>>(c, nn);
            CK(err, cudaGetLastError());
        }
        return K_OK;
    }
    CUBLAS_CK(err, cublasSetStream(blas, stream));
    CUBLAS_CK(err, gemm_rm(blas, a, b, c, m, n, k, accumulate ? 1.0f : 0.0f));
    return K_OK;
}

size_t k_ffn_swiglu_cuda_workspace(const int32_t *offsets_host, int n_experts, int d_ff)
{
    if (!offsets_ok(offsets_host, n_experts) || d_ff < 1) return 1;
    size_t rows = (size_t)(offsets_host[n_experts] - offsets_host[0]);
    size_t b = 2 * rows * (size_t)d_ff * sizeof(k_bf16);
    return b > 0 ? b : 1;
}

int k_ffn_swiglu_cuda(cublasHandle_t blas, const k_bf16 *x, const int32_t *offsets_host,
                      int n_experts, int d_model, int d_ff, const k_bf16 *w1, const k_bf16 *w3,
                      const k_bf16 *w2, k_bf16 *y, void *workspace, size_t workspace_bytes,
                      cudaStream_t stream, k_cuda_err *err)
{
    const char *fn = "k_ffn_swiglu_cuda";
    if (!offsets_ok(offsets_host, n_experts) || d_model < 1 || d_ff < 1)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn,
                           "bad sizes or offsets (host, non-decreasing, >= 0)");
    const int32_t *off = offsets_host;
    const int32_t r0 = off[0];
    if (off[n_experts] == r0) return K_OK; /* no rows at all */
    if (!blas || !x || !w1 || !w3 || !w2 || !y)
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn, "NULL handle or buffer");
    if (!workspace || workspace_bytes < k_ffn_swiglu_cuda_workspace(off, n_experts, d_ff))
        return k_cuda_fail(err, K_EINVAL, __FILE__, __LINE__, fn,
                           "workspace missing or smaller than k_ffn_swiglu_cuda_workspace()");
    const size_t D = (size_t)d_model, F = (size_t)d_ff;
    const size_t rows = (size_t)(off[n_experts] - r0);
    k_bf16 *h1 = (k_bf16 *)workspace, *h3 = h1 + rows * F; /* row r lives at r - r0 */
    CUBLAS_CK(err, cublasSetStream(blas, stream));
    for (int e = 0; e < n_experts; e++) {
        int m = off[e + 1] - off[e];
        if (m == 0) continue;
        const k_bf16 *xe = x + (size_t)off[e] * D;
        size_t hr = (size_t)(off[e] - r0) * F;
        CUBLAS_CK(err, gemm_rm(blas, xe, w1 + (size_t)e * D * F, h1 + hr, m, d_ff, d_model, 0.0f));
        CUBLAS_CK(err, gemm_rm(blas, xe, w3 + (size_t)e * D * F, h3 + hr, m, d_ff, d_model, 0.0f));
    }
    swiglu<<<blocks_for(rows * F, 256), 256, 0, stream>>>(h1, h3, rows * F);
    CK(err, cudaGetLastError());
    for (int e = 0; e < n_experts; e++) {
        int m = off[e + 1] - off[e];
        if (m == 0) continue;
        size_t hr = (size_t)(off[e] - r0) * F;
        CUBLAS_CK(err, gemm_rm(blas, h1 + hr, w2 + (size_t)e * F * D, y + (size_t)off[e] * D, m,
                               d_model, d_ff, 0.0f));
    }
    return K_OK;
}

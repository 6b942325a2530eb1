/* CPU reference GEMM, C = A·B (row-major), blocked for cache reuse of B. The FFN and other
 * references build on it; it is where cblas_sgemm(CblasRowMajor, CblasNoTrans,
 * CblasNoTrans, ...) goes once the Makefile links OpenBLAS. */
#include <string.h>

#include "kernels/k.h"

enum { MB = 32, KB = 128, NB = 512 }; /* a KB x NB tile of B is 256 KiB */

/* c[0..n) += a · b[0..n). restrict parameters and a fixed-width body let gcc vectorise it
 * at -O2 without runtime alias checks. */
static void axpy(float *restrict c, const float *restrict b, float a, size_t n)
{
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (size_t l = 0; l < 8; l++) c[j + l] += a * b[j + l];
    for (; j < n; j++) c[j] += a * b[j];
}

int k_gemm_ref(const float *a, const float *b, float *c, int m, int n, int k, int accumulate)
{
    if (m < 0 || n < 0 || k < 0) return K_EINVAL;
    if (m == 0 || n == 0) return K_OK;
    if (!c || (k > 0 && (!a || !b))) return K_EINVAL;
    size_t N = (size_t)n, K = (size_t)k;
    if (!accumulate) memset(c, 0, (size_t)m * N * sizeof *c);
    for (size_t j0 = 0; j0 < N; j0 += NB) {
        size_t j1 = j0 + NB < N ? j0 + NB : N;
        for (size_t k0 = 0; k0 < K; k0 += KB) {
            size_t k1 = k0 + KB < K ? k0 + KB : K;
            for (size_t i0 = 0; i0 < (size_t)m; i0 += MB) {
                size_t i1 = i0 + MB < (size_t)m ? i0 + MB : (size_t)m;
                for (size_t i = i0; i < i1; i++) {
                    float *crow = c + i * N;
                    for (size_t kk = k0; kk < k1; kk++) {
                        float aik = a[i * K + kk];
                        const float *brow = b + kk * N;
                        axpy(crow + j0, brow + j0, aik, j1 - j0);
                    }
                }
            }
        }
    }
    return K_OK;
}

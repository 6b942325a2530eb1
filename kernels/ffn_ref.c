/* CPU reference of the SwiGLU expert FFN over many experts: for each expert, its
 * contiguous permuted rows go through y = (silu(x·W1) ⊙ (x·W3))·W2, a tile of rows at a
 * time (three k_gemm_ref calls per tile; cblas_sgemm once OpenBLAS is linked). */
#include <math.h>
#include <stdlib.h>

#include "kernels/k.h"

enum { TILE_ROWS = 64 };

int k_ffn_swiglu_ref(const float *x, const int32_t *offsets, int n_experts, int d_model,
                     int d_ff, const float *w1, const float *w3, const float *w2, float *y)
{
    if (!offsets || n_experts < 1 || d_model < 1 || d_ff < 1) return K_EINVAL;
    if (offsets[0] < 0) return K_EINVAL;
    for (int e = 0; e < n_experts; e++)
        if (offsets[e + 1] < offsets[e]) return K_EINVAL;
    if (offsets[n_experts] == offsets[0]) return K_OK; /* no rows at all */
    if (!x || !w1 || !w3 || !w2 || !y) return K_EINVAL;

    const size_t D = (size_t)d_model, F = (size_t)d_ff;
    float *h1 = malloc(sizeof(float) * 2 * TILE_ROWS * F);
    if (!h1) return K_ENOMEM;
    float *h3 = h1 + TILE_ROWS * F;
    for (int e = 0; e < n_experts; e++) {
        const float *W1 = w1 + (size_t)e * D * F, *W3 = w3 + (size_t)e * D * F;
        const float *W2 = w2 + (size_t)e * F * D;
        for (int32_t r0 = offsets[e]; r0 < offsets[e + 1]; r0 += TILE_ROWS) {
            int rows = offsets[e + 1] - r0 < TILE_ROWS ? offsets[e + 1] - r0 : TILE_ROWS;
            const float *xr = x + (size_t)r0 * D;
            k_gemm_ref(xr, W1, h1, rows, d_ff, d_model, 0);
            k_gemm_ref(xr, W3, h3, rows, d_ff, d_model, 0);
            for (size_t i = 0; i < (size_t)rows * F; i++) {
                float g = h1[i];
                h1[i] = g / (1.0f + expf(-g)) * h3[i];
            }
            k_gemm_ref(h1, W2, y + (size_t)r0 * D, rows, d_model, d_ff, 0);
        }
    }
    free(h1);
    return K_OK;
}

/* CPU references of the MoE data movement around the experts: permute (token slots to a
 * per-expert contiguous layout, stable by (expert, token, slot)) and unpermute + combine
 * (the weighted sum of each token's k expert outputs, back in token order). */
#include <string.h>

#include "kernels/k.h"

int k_permute_ref(const int32_t *topk_idx, int n_tokens, int topk, int n_experts,
                  const float *x, int d, int32_t *counts, int32_t *offsets, int32_t *row_src,
                  int32_t *row_of_slot, float *xp)
{
    if (n_tokens < 0 || topk < 1 || n_experts < 1 || !counts || !offsets) return K_EINVAL;
    if ((x == NULL) != (xp == NULL) || (x && d < 1)) return K_EINVAL;
    size_t S = (size_t)n_tokens * (size_t)topk;
    if (S > INT32_MAX) return K_EINVAL;
    if (S > 0 && (!topk_idx || !row_src || !row_of_slot)) return K_EINVAL;
    for (size_t s = 0; s < S; s++)
        if (topk_idx[s] < 0 || topk_idx[s] >= n_experts) return K_EINVAL;

    memset(counts, 0, sizeof *counts * (size_t)n_experts);
    for (size_t s = 0; s < S; s++) counts[topk_idx[s]]++;
    offsets[0] = 0;
    for (int e = 0; e < n_experts; e++) offsets[e + 1] = offsets[e] + counts[e];
    /* counts doubles as the fill cursor, then is restored */
    for (int e = 0; e < n_experts; e++) counts[e] = offsets[e];
    for (size_t s = 0; s < S; s++) {
        int32_t r = counts[topk_idx[s]]++;
        row_src[r] = (int32_t)(s / (size_t)topk);
        row_of_slot[s] = r;
    }
    for (int e = 0; e < n_experts; e++) counts[e] = offsets[e + 1] - offsets[e];

    if (x) {
        size_t D = (size_t)d;
        for (size_t r = 0; r < S; r++)
            memcpy(xp + r * D, x + (size_t)row_src[r] * D, D * sizeof *xp);
    }
    return K_OK;
}

int k_unpermute_ref(const float *y, const int32_t *row_of_slot, const float *w, int n_tokens,
                    int topk, int d, float *out)
{
    if (n_tokens < 0 || topk < 1 || d < 1) return K_EINVAL;
    if (n_tokens == 0) return K_OK;
    if (!y || !row_of_slot || !w || !out) return K_EINVAL;
    size_t S = (size_t)n_tokens * (size_t)topk, D = (size_t)d;
    for (size_t s = 0; s < S; s++)
        if (row_of_slot[s] < 0 || (size_t)row_of_slot[s] >= S) return K_EINVAL;
    for (size_t t = 0; t < (size_t)n_tokens; t++) {
        float *o = out + t * D;
        memset(o, 0, D * sizeof *o);
        for (size_t j = 0; j < (size_t)topk; j++) {
            float wj = w[t * (size_t)topk + j];
            const float *yr = y + (size_t)row_of_slot[t * (size_t)topk + j] * D;
            for (size_t i = 0; i < D; i++) o[i] += wj * yr[i];
        }
    }
    return K_OK;
}

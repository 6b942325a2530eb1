/* CPU references of attention: causal prefill over packed variable-length sequences and
 * single-token decode against a KV cache, MHA/GQA/MQA (and MLA's core attention via
 * d_qk != d_v), fp32 with a max-subtracted softmax; plus the KV-cache append. The score
 * and output loops are where batched cblas_sgemm calls would go once OpenBLAS is linked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/k.h"

static int shape_ok(const k_attn_shape *s)
{
    return s && s->n_heads >= 1 && s->n_kv_heads >= 1 && s->n_heads % s->n_kv_heads == 0 &&
           s->d_qk >= 1 && s->d_v >= 1 && s->scale >= 0;
}

static float scale_of(const k_attn_shape *s)
{
    return s->scale > 0 ? s->scale : 1.0f / sqrtf((float)s->d_qk);
}

/* q·k over n values with 8 independent partial sums, so the loop vectorises without
 * -ffast-math (the summation order is fixed, hence deterministic). */
static float dot(const float *restrict q, const float *restrict k, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t l = 0; l < 8; l++) acc[l] += q[i + l] * k[i + l];
    float s = 0;
    for (; i < n; i++) s += q[i] * k[i];
    return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* o[0..n) += a · v[0..n), vectorised like dot */
static void axpy(float *restrict o, const float *restrict v, float a, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (size_t l = 0; l < 8; l++) o[i + l] += a * v[i + l];
    for (; i < n; i++) o[i] += a * v[i];
}

/* One (query, head): softmax over n keys at k0 + u*kstride, weighted sum of values at
 * v0 + u*vstride, into o[d_v]. sc is scratch for n scores. */
static void attend(const float *q, const float *k0, size_t kstride, const float *v0,
                   size_t vstride, size_t n, size_t dqk, size_t dv, float scale, float *sc,
                   float *o)
{
    memset(o, 0, dv * sizeof *o);
    if (n == 0) return;
    float mx = -INFINITY;
    for (size_t u = 0; u < n; u++) {
        sc[u] = dot(q, k0 + u * kstride, dqk) * scale;
        mx = sc[u] > mx ? sc[u] : mx;
    }
    float sum = 0;
    for (size_t u = 0; u < n; u++) sum += sc[u] = expf(sc[u] - mx);
    for (size_t u = 0; u < n; u++) {
        axpy(o, v0 + u * vstride, sc[u], dv);
    }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < dv; i++) o[i] *= inv;
}

int k_attn_prefill_ref(const float *q, const float *k, const float *v, const int32_t *cu_seqlens,
                       int n_seqs, const k_attn_shape *s, float *out)
{
    if (!shape_ok(s) || n_seqs < 0 || !cu_seqlens || cu_seqlens[0] != 0) return K_EINVAL;
    int32_t max_len = 0;
    for (int b = 0; b < n_seqs; b++) {
        if (cu_seqlens[b + 1] < cu_seqlens[b]) return K_EINVAL;
        if (cu_seqlens[b + 1] - cu_seqlens[b] > max_len) max_len = cu_seqlens[b + 1] - cu_seqlens[b];
    }
    if (max_len == 0) return K_OK;
    if (!q || !k || !v || !out) return K_EINVAL;
    const size_t H = (size_t)s->n_heads, HK = (size_t)s->n_kv_heads, grp = H / HK;
    const size_t DQ = (size_t)s->d_qk, DV = (size_t)s->d_v;
    const float scale = scale_of(s);
    float *sc = malloc(sizeof(float) * (size_t)max_len);
    if (!sc) return K_ENOMEM;
    for (int b = 0; b < n_seqs; b++) {
        size_t t0 = (size_t)cu_seqlens[b], t1 = (size_t)cu_seqlens[b + 1];
        for (size_t t = t0; t < t1; t++)
            for (size_t h = 0; h < H; h++) {
                size_t g = h / grp;
                attend(q + (t * H + h) * DQ, k + (t0 * HK + g) * DQ, HK * DQ,
                       v + (t0 * HK + g) * DV, HK * DV, t - t0 + 1, DQ, DV, scale, sc,
                       out + (t * H + h) * DV);
            }
    }
    free(sc);
    return K_OK;
}

int k_attn_decode_ref(const float *q, const float *k_cache, const float *v_cache,
                      const int32_t *lens, int n_seqs, int max_len, const k_attn_shape *s,
                      float *out)
{
    if (!shape_ok(s) || n_seqs < 0 || max_len < 0) return K_EINVAL;
    if (n_seqs == 0) return K_OK;
    if (!q || !lens || !out || (max_len > 0 && (!k_cache || !v_cache))) return K_EINVAL;
    for (int b = 0; b < n_seqs; b++)
        if (lens[b] < 0 || lens[b] > max_len) return K_EINVAL;
    const size_t H = (size_t)s->n_heads, HK = (size_t)s->n_kv_heads, grp = H / HK;
    const size_t DQ = (size_t)s->d_qk, DV = (size_t)s->d_v, L = (size_t)max_len;
    const float scale = scale_of(s);
    float *sc = malloc(sizeof(float) * (L > 0 ? L : 1));
    if (!sc) return K_ENOMEM;
    for (size_t b = 0; b < (size_t)n_seqs; b++)
        for (size_t h = 0; h < H; h++) {
            size_t g = h / grp;
            attend(q + (b * H + h) * DQ, k_cache ? k_cache + (b * L * HK + g) * DQ : NULL,
                   HK * DQ, v_cache ? v_cache + (b * L * HK + g) * DV : NULL, HK * DV,
                   (size_t)lens[b], DQ, DV, scale, sc, out + (b * H + h) * DV);
        }
    free(sc);
    return K_OK;
}

int k_kv_append_ref(const float *k_new, const float *v_new, int32_t *lens, int n_seqs,
                    int max_len, const k_attn_shape *s, float *k_cache, float *v_cache)
{
    if (!shape_ok(s) || n_seqs < 0 || max_len < 0) return K_EINVAL;
    if (n_seqs == 0) return K_OK;
    if (!k_new || !v_new || !lens || !k_cache || !v_cache) return K_EINVAL;
    for (int b = 0; b < n_seqs; b++)
        if (lens[b] < 0 || lens[b] >= max_len) return K_EINVAL;
    const size_t HK = (size_t)s->n_kv_heads, DQ = (size_t)s->d_qk, DV = (size_t)s->d_v;
    const size_t L = (size_t)max_len;
    for (size_t b = 0; b < (size_t)n_seqs; b++) {
        size_t pos = (size_t)lens[b];
        memcpy(k_cache + (b * L + pos) * HK * DQ, k_new + b * HK * DQ, HK * DQ * sizeof(float));
        memcpy(v_cache + (b * L + pos) * HK * DV, v_new + b * HK * DV, HK * DV * sizeof(float));
        lens[b]++;
    }
    return K_OK;
}

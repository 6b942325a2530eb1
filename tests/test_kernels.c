/* Tests for kernels/: each CPU reference against a naive, obviously-correct loop version
 * written here (double accumulation, sorts instead of argmax passes, masks instead of
 * ranges) on small random shapes from fixed seeds, plus edge cases (k = 1, k = E, ties,
 * experts with no tokens, per-sequence cache lengths, GQA, causality) and k_check itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/k.h"

#define ATOL 1e-5f
#define RTOL 1e-4f

/* Fails with k_check's report when got and ref differ beyond the tolerance. */
#define expect_close(got, ref, n) expect_close_at((got), (ref), (n), #got, __LINE__)
static void expect_close_at(const float *got, const float *ref, size_t n, const char *what,
                            int line)
{
    char msg[512];
    if (k_check(what, got, ref, n, ATOL, RTOL, NULL, msg, sizeof msg) != 0)
        fail_msg("line %d: %s", line, msg);
}

static float *rnd(size_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(x);
    k_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static void *zalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

/* ---- GEMM ------------------------------------------------------------------------------ */

static void naive_gemm(const float *a, const float *b, float *c, int m, int n, int k)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int l = 0; l < k; l++) s += (double)a[i * k + l] * b[l * n + j];
            c[i * n + j] = (float)s;
        }
}

static void test_gemm(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {37, 600, 130}, {70, 9, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = rnd((size_t)m * k, 10 + s, -1, 1), *b = rnd((size_t)k * n, 20 + s, -1, 1);
        float *c = rnd((size_t)m * n, 30 + s, -1, 1), *r = zalloc(sizeof(float) * m * n);
        float *c0 = zalloc(sizeof(float) * m * n);
        memcpy(c0, c, sizeof(float) * m * n);
        naive_gemm(a, b, r, m, n, k);
        assert_int_equal(k_gemm_ref(a, b, c, m, n, k, 0), K_OK);
        expect_close(c, r, (size_t)m * n);
        /* accumulate: c0 + a·b */
        for (int i = 0; i < m * n; i++) r[i] += c0[i];
        assert_int_equal(k_gemm_ref(a, b, c0, m, n, k, 1), K_OK);
        expect_close(c0, r, (size_t)m * n);
        free(a), free(b), free(c), free(r), free(c0);
    }
    assert_int_equal(k_gemm_ref(NULL, NULL, NULL, 0, 4, 4, 0), K_OK);
    assert_int_equal(k_gemm_ref(NULL, NULL, NULL, -1, 4, 4, 0), K_EINVAL);
}

/* ---- gate ------------------------------------------------------------------------------ */

/* Sorts ids[n] by (value descending, id ascending): insertion sort. */
static void sort_desc(int *ids, int n, const double *val)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0; j--) {
            int a = ids[j - 1], b = ids[j];
            if (val[b] > val[a] || (val[b] == val[a] && b < a)) ids[j - 1] = b, ids[j] = a;
            else break;
        }
}

static void naive_gate(const float *logits, int T, const k_gate_params *p, int32_t *idx,
                       float *w)
{
    int E = p->n_experts, G = p->n_groups, per = E / G;
    double score[256], key[256], gs[64];
    int order[256], gorder[64], keep[256];
    for (int t = 0; t < T; t++) {
        const float *l = logits + t * E;
        double z = 0;
        for (int e = 0; e < E; e++) z += exp((double)l[e]);
        for (int e = 0; e < E; e++) {
            score[e] = p->score == K_GATE_SOFTMAX ? exp((double)l[e]) / z
                                                  : 1 / (1 + exp(-(double)l[e]));
            key[e] = score[e] + (p->bias ? p->bias[e] : 0);
            keep[e] = 1;
        }
        if (G > 1) {
            for (int g = 0; g < G; g++) {
                int in[256];
                for (int i = 0; i < per; i++) in[i] = g * per + i;
                sort_desc(in, per, key);
                gs[g] = key[in[0]] + (p->group_score == K_GROUP_TOP2 ? key[in[1]] : 0);
                gorder[g] = g;
            }
            sort_desc(gorder, G, gs);
            for (int e = 0; e < E; e++) keep[e] = 0;
            for (int n = 0; n < p->topk_groups; n++)
                for (int i = 0; i < per; i++) keep[gorder[n] * per + i] = 1;
        }
        for (int e = 0; e < E; e++) order[e] = e;
        sort_desc(order, E, key);
        int j = 0;
        double sum = 0;
        for (int n = 0; n < E && j < p->topk; n++)
            if (keep[order[n]]) {
                idx[t * p->topk + j] = order[n];
                sum += score[order[n]];
                j++;
            }
        int norm = p->score == K_GATE_SIGMOID || p->renorm;
        for (j = 0; j < p->topk; j++)
            w[t * p->topk + j] =
                (float)(score[idx[t * p->topk + j]] / (norm ? sum : 1) * p->scale);
    }
}

static void expect_gate(const float *logits, int T, const k_gate_params *p)
{
    size_t n = (size_t)T * p->topk;
    int32_t *idx = zalloc(n * 4), *idx0 = zalloc(n * 4);
    float *w = zalloc(n * 4), *w0 = zalloc(n * 4);
    assert_int_equal(k_gate_ref(logits, T, p, idx, w), K_OK);
    naive_gate(logits, T, p, idx0, w0);
    for (size_t i = 0; i < n; i++)
        if (idx[i] != idx0[i])
            fail_msg("E=%d k=%d G=%d: slot %zu picks %d, naive %d", p->n_experts, p->topk,
                     p->n_groups, i, idx[i], idx0[i]);
    expect_close(w, w0, n);
    free(idx), free(idx0), free(w), free(w0);
}

static void test_gate_random(void **state)
{
    (void)state;
    float bias[64];
    k_fill_uniform(bias, 64, 7, -0.2f, 0.2f);
    const k_gate_params ps[] = {
        {.n_experts = 8, .topk = 2, .score = K_GATE_SOFTMAX, .scale = 1, .n_groups = 1},
        {.n_experts = 8, .topk = 1, .score = K_GATE_SOFTMAX, .scale = 1, .n_groups = 1},
        {.n_experts = 8, .topk = 8, .score = K_GATE_SOFTMAX, .renorm = 1, .scale = 1,
         .n_groups = 1},
        {.n_experts = 16, .topk = 4, .score = K_GATE_SOFTMAX, .renorm = 1, .scale = 1,
         .n_groups = 1},
        {.n_experts = 16, .topk = 4, .score = K_GATE_SIGMOID, .scale = 2.5f, .bias = bias,
         .n_groups = 1},
        {.n_experts = 5, .topk = 5, .score = K_GATE_SIGMOID, .scale = 1, .n_groups = 1},
        {.n_experts = 16, .topk = 3, .score = K_GATE_SOFTMAX, .scale = 16, .n_groups = 4,
         .topk_groups = 2, .group_score = K_GROUP_MAX},
        {.n_experts = 32, .topk = 8, .score = K_GATE_SIGMOID, .scale = 2.5f, .bias = bias,
         .n_groups = 8, .topk_groups = 4, .group_score = K_GROUP_TOP2},
        {.n_experts = 32, .topk = 8, .score = K_GATE_SIGMOID, .scale = 1, .n_groups = 8,
         .topk_groups = 2, .group_score = K_GROUP_TOP2}, /* k = every eligible expert */
        {.n_experts = 64, .topk = 6, .score = K_GATE_SOFTMAX, .scale = 1, .n_groups = 8,
         .topk_groups = 3, .group_score = K_GROUP_MAX},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        int T = 17;
        float *l = rnd((size_t)T * ps[i].n_experts, 100 + i, -3, 3);
        expect_gate(l, T, &ps[i]);
        free(l);
    }
}

static void test_gate_ties_and_weights(void **state)
{
    (void)state;
    int32_t idx[8];
    float w[8];
    /* all equal: lowest indices win, in index order; softmax weights 1/E */
    float zero[8] = {0};
    k_gate_params p = {.n_experts = 8, .topk = 3, .score = K_GATE_SOFTMAX, .scale = 1,
                       .n_groups = 1};
    assert_int_equal(k_gate_ref(zero, 1, &p, idx, w), K_OK);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(idx[j], j);
        assert_true(fabsf(w[j] - 0.125f) < 1e-7f);
    }
    /* partial ties: keys 1,3,3,0,3 -> 1,2,4 */
    float l5[5] = {1, 3, 3, 0, 3};
    p.n_experts = 5;
    assert_int_equal(k_gate_ref(l5, 1, &p, idx, w), K_OK);
    assert_int_equal(idx[0], 1), assert_int_equal(idx[1], 2), assert_int_equal(idx[2], 4);
    expect_gate(l5, 1, &p);
    /* group ties: equal groups keep the lower group indices */
    k_gate_params g = {.n_experts = 8, .topk = 4, .score = K_GATE_SIGMOID, .scale = 1,
                       .n_groups = 4, .topk_groups = 2, .group_score = K_GROUP_TOP2};
    assert_int_equal(k_gate_ref(zero, 1, &g, idx, w), K_OK);
    for (int j = 0; j < 4; j++) {
        assert_int_equal(idx[j], j);
        assert_true(fabsf(w[j] - 0.25f) < 1e-7f); /* sigmoid always normalised */
    }
    /* group limit matters: the best single expert (7) is in a weak group under TOP2 */
    float lg[8] = {1, 1, 0, 0, -5, -5, -5, 4};
    g.topk = 2, g.topk_groups = 1;
    assert_int_equal(k_gate_ref(lg, 1, &g, idx, w), K_OK);
    assert_int_equal(idx[0], 0), assert_int_equal(idx[1], 1);
    g.group_score = K_GROUP_MAX; /* under max, group 3 wins */
    assert_int_equal(k_gate_ref(lg, 1, &g, idx, w), K_OK);
    assert_int_equal(idx[0], 7), assert_int_equal(idx[1], 6);
    /* bias selects but never weighs: expert 0 chosen by bias, weight from its score */
    float bias[4] = {10, 0, 0, 0}, l4[4] = {-1, 2, 1, 0};
    k_gate_params b = {.n_experts = 4, .topk = 2, .score = K_GATE_SIGMOID, .scale = 2,
                       .bias = bias, .n_groups = 1};
    assert_int_equal(k_gate_ref(l4, 1, &b, idx, w), K_OK);
    assert_int_equal(idx[0], 0), assert_int_equal(idx[1], 1);
    double s0 = 1 / (1 + exp(1.0)), s1 = 1 / (1 + exp(-2.0));
    assert_true(fabs(w[0] - 2 * s0 / (s0 + s1)) < 1e-6);
    assert_true(fabs(w[1] - 2 * s1 / (s0 + s1)) < 1e-6);
    /* softmax without renorm keeps the raw probabilities; with renorm they sum to 1 */
    float l3[3] = {0, 1, 2};
    k_gate_params s = {.n_experts = 3, .topk = 2, .score = K_GATE_SOFTMAX, .scale = 1,
                       .n_groups = 1};
    assert_int_equal(k_gate_ref(l3, 1, &s, idx, w), K_OK);
    double z = 1 + exp(1.0) + exp(2.0);
    assert_true(fabs(w[0] - exp(2.0) / z) < 1e-6 && fabs(w[1] - exp(1.0) / z) < 1e-6);
    s.renorm = 1;
    assert_int_equal(k_gate_ref(l3, 1, &s, idx, w), K_OK);
    assert_true(fabs(w[0] + w[1] - 1) < 1e-6);
}

static void test_gate_errors(void **state)
{
    (void)state;
    float l[8] = {0};
    int32_t idx[8];
    float w[8];
    k_gate_params ok = {.n_experts = 8, .topk = 2, .score = K_GATE_SOFTMAX, .scale = 1,
                        .n_groups = 1};
    k_gate_params p = ok;
    assert_int_equal(k_gate_ref(l, 1, NULL, idx, w), K_EINVAL);
    p.topk = 9;
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    p = ok, p.topk = 0;
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    p = ok, p.n_groups = 3; /* 8 % 3 */
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    p = ok, p.n_groups = 4, p.topk_groups = 1, p.topk = 3; /* only 2 eligible experts */
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    p = ok, p.n_groups = 8, p.topk_groups = 2, p.group_score = K_GROUP_TOP2; /* 1 per group */
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    p = ok, p.n_groups = 2, p.topk_groups = 3;
    assert_int_equal(k_gate_ref(l, 1, &p, idx, w), K_EINVAL);
    assert_int_equal(k_gate_ref(NULL, 1, &ok, idx, w), K_EINVAL);
    assert_int_equal(k_gate_ref(NULL, 0, &ok, NULL, NULL), K_OK);
}

/* ---- permute / unpermute ----------------------------------------------------------------- */

static void expect_permute(const int32_t *ids, int T, int k, int E, int d, uint64_t seed)
{
    size_t S = (size_t)T * k;
    float *x = rnd((size_t)T * d, seed, -1, 1), *xp = zalloc(S * d * 4);
    int32_t *counts = zalloc(E * 4), *offsets = zalloc((E + 1) * 4);
    int32_t *src = zalloc(S * 4), *ros = zalloc(S * 4);
    assert_int_equal(k_permute_ref(ids, T, k, E, x, d, counts, offsets, src, ros, xp), K_OK);
    /* naive: for each expert in turn, scan every (token, slot) in order */
    int32_t r = 0;
    for (int e = 0; e < E; e++) {
        assert_int_equal(offsets[e], r);
        int32_t c = 0;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (ids[t * k + j] == e) {
                    assert_int_equal(src[r], t);
                    assert_int_equal(ros[t * k + j], r);
                    for (int i = 0; i < d; i++) assert_true(xp[(size_t)r * d + i] == x[t * d + i]);
                    r++, c++;
                }
        assert_int_equal(counts[e], c);
    }
    assert_int_equal(offsets[E], (int32_t)S);
    assert_int_equal(r, (int32_t)S);

    /* index-only call gives the same indices */
    int32_t *src2 = zalloc(S * 4), *ros2 = zalloc(S * 4), *counts2 = zalloc(E * 4);
    int32_t *offsets2 = zalloc((E + 1) * 4);
    assert_int_equal(k_permute_ref(ids, T, k, E, NULL, 0, counts2, offsets2, src2, ros2, NULL),
                     K_OK);
    assert_memory_equal(src, src2, S * 4), assert_memory_equal(ros, ros2, S * 4);
    assert_memory_equal(counts, counts2, E * 4);
    assert_memory_equal(offsets, offsets2, (E + 1) * 4);

    /* unpermute + combine of y = 2·xp + row against a naive per-element sum */
    float *y = zalloc(S * d * 4), *w = rnd(S, seed + 1, 0, 1);
    float *out = zalloc((size_t)T * d * 4), *ref = zalloc((size_t)T * d * 4);
    for (size_t q = 0; q < S * d; q++) y[q] = 2 * xp[q] + (float)(q / d);
    assert_int_equal(k_unpermute_ref(y, ros, w, T, k, d, out), K_OK);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) {
            double s = 0;
            for (int j = 0; j < k; j++) {
                /* find the permuted row of (t, j) by search, not by row_of_slot */
                int row = -1;
                for (int e = 0, rr = 0; e < E && row < 0; e++)
                    for (int tt = 0; tt < T && row < 0; tt++)
                        for (int jj = 0; jj < k && row < 0; jj++)
                            if (ids[tt * k + jj] == e) {
                                if (tt == t && jj == j) row = rr;
                                rr++;
                            }
                s += (double)w[t * k + j] * (2 * x[t * d + i] + row);
            }
            ref[t * d + i] = (float)s;
        }
    expect_close(out, ref, (size_t)T * d);
    free(x), free(xp), free(counts), free(offsets), free(src), free(ros), free(src2);
    free(ros2), free(counts2), free(offsets2), free(y), free(w), free(out), free(ref);
}

static void test_permute(void **state)
{
    (void)state;
    int32_t ids[64 * 4];
    /* random ids, T=11 k=3 E=7 */
    float u[64 * 4];
    k_fill_uniform(u, 33, 42, 0, 7);
    for (int s = 0; s < 33; s++) ids[s] = (int32_t)u[s] % 7;
    expect_permute(ids, 11, 3, 7, 5, 1);
    /* k = 1 */
    expect_permute(ids, 33, 1, 7, 3, 2);
    /* experts with zero tokens: only 1 and 4 of 6 used; duplicate expert per token */
    for (int s = 0; s < 40; s++) ids[s] = (s % 3 == 0) ? 4 : 1;
    expect_permute(ids, 10, 4, 6, 2, 3);
    /* k = E: every token visits every expert */
    for (int t = 0; t < 9; t++)
        for (int j = 0; j < 4; j++) ids[t * 4 + j] = (t + j) % 4;
    expect_permute(ids, 9, 4, 4, 7, 4);
    /* one token */
    ids[0] = 2, ids[1] = 0;
    expect_permute(ids, 1, 2, 3, 1, 5);
}

static void test_permute_errors(void **state)
{
    (void)state;
    int32_t ids[4] = {0, 1, 5, 2}, c[4], o[5], src[4], ros[4];
    float x[8] = {0}, xp[8], w[4] = {0}, out[8];
    assert_int_equal(k_permute_ref(ids, 2, 2, 4, x, 2, c, o, src, ros, xp), K_EINVAL);
    ids[2] = -1;
    assert_int_equal(k_permute_ref(ids, 2, 2, 4, x, 2, c, o, src, ros, xp), K_EINVAL);
    ids[2] = 3;
    assert_int_equal(k_permute_ref(ids, 2, 2, 4, x, 2, c, o, src, ros, NULL), K_EINVAL);
    assert_int_equal(k_permute_ref(ids, 2, 2, 4, x, 2, c, o, src, ros, xp), K_OK);
    /* no tokens: all counts zero */
    assert_int_equal(k_permute_ref(NULL, 0, 2, 4, NULL, 0, c, o, NULL, NULL, NULL), K_OK);
    for (int e = 0; e < 4; e++) assert_int_equal(c[e], 0), assert_int_equal(o[e + 1], 0);
    ros[1] = 4; /* out of [0, T*k) */
    assert_int_equal(k_unpermute_ref(xp, ros, w, 2, 2, 2, out), K_EINVAL);
}

/* ---- SwiGLU FFN --------------------------------------------------------------------------- */

static void naive_ffn_row(const float *x, const float *W1, const float *W3, const float *W2,
                          int d, int f, float *y)
{
    double h[64];
    for (int c = 0; c < f; c++) {
        double a = 0, b = 0;
        for (int i = 0; i < d; i++) a += (double)x[i] * W1[i * f + c], b += (double)x[i] * W3[i * f + c];
        h[c] = a / (1 + exp(-a)) * b;
    }
    for (int o = 0; o < d; o++) {
        double s = 0;
        for (int c = 0; c < f; c++) s += h[c] * W2[c * d + o];
        y[o] = (float)s;
    }
}

static void test_ffn(void **state)
{
    (void)state;
    enum { E = 5, D = 8, F = 12 };
    const int32_t counts[E] = {3, 0, 70, 1, 0}; /* zero-token experts, one > a tile */
    int32_t off[E + 1] = {0};
    for (int e = 0; e < E; e++) off[e + 1] = off[e] + counts[e];
    int N = off[E];
    float *x = rnd((size_t)N * D, 1, -1, 1), *w1 = rnd(E * D * F, 2, -0.5f, 0.5f);
    float *w3 = rnd(E * D * F, 3, -0.5f, 0.5f), *w2 = rnd(E * F * D, 4, -0.5f, 0.5f);
    float *y = zalloc((size_t)N * D * 4), *ref = zalloc((size_t)N * D * 4);
    assert_int_equal(k_ffn_swiglu_ref(x, off, E, D, F, w1, w3, w2, y), K_OK);
    for (int e = 0; e < E; e++)
        for (int r = off[e]; r < off[e + 1]; r++)
            naive_ffn_row(x + r * D, w1 + e * D * F, w3 + e * D * F, w2 + e * F * D, D, F,
                          ref + r * D);
    expect_close(y, ref, (size_t)N * D);

    /* expert-parallel slice: experts 2..3 only; other rows untouched */
    for (int i = 0; i < N * D; i++) y[i] = 12345.0f;
    assert_int_equal(k_ffn_swiglu_ref(x, off + 2, 2, D, F, w1 + 2 * D * F, w3 + 2 * D * F,
                                      w2 + 2 * F * D, y),
                     K_OK);
    expect_close(y + off[2] * D, ref + off[2] * D, (size_t)(off[4] - off[2]) * D);
    for (int i = 0; i < off[2] * D; i++) assert_true(y[i] == 12345.0f);

    /* bad offsets */
    int32_t bad[3] = {0, 4, 2};
    assert_int_equal(k_ffn_swiglu_ref(x, bad, 2, D, F, w1, w3, w2, y), K_EINVAL);
    free(x), free(w1), free(w3), free(w2), free(y), free(ref);
}

/* ---- attention --------------------------------------------------------------------------- */

/* Naive attention for one query row against rows 0..n_all-1 of a sequence, masking rows
 * u > last (use last = n_all-1 for no mask); explicit strides in floats. */
static void naive_attend(const float *q, const float *k, size_t ks, const float *v, size_t vs,
                         int n_all, int last, const k_attn_shape *s, float *o)
{
    double sc[256], mx = -INFINITY, z = 0;
    double scale = s->scale > 0 ? s->scale : 1 / sqrt((double)s->d_qk);
    for (int u = 0; u < n_all; u++) {
        double dot = 0;
        for (int i = 0; i < s->d_qk; i++) dot += (double)q[i] * k[u * ks + i];
        sc[u] = u <= last ? dot * scale : -INFINITY;
        if (sc[u] > mx) mx = sc[u];
    }
    for (int u = 0; u < n_all; u++) z += sc[u] = u <= last ? exp(sc[u] - mx) : 0;
    for (int i = 0; i < s->d_v; i++) {
        double a = 0;
        for (int u = 0; u < n_all; u++) a += sc[u] * v[u * vs + i];
        o[i] = n_all > 0 && last >= 0 ? (float)(a / z) : 0;
    }
}

static void naive_prefill(const float *q, const float *k, const float *v, const int32_t *cu,
                          int B, const k_attn_shape *s, float *out)
{
    int H = s->n_heads, HK = s->n_kv_heads, DQ = s->d_qk, DV = s->d_v;
    for (int b = 0; b < B; b++)
        for (int t = cu[b]; t < cu[b + 1]; t++)
            for (int h = 0; h < H; h++) {
                int g = h * HK / H; /* = h / (H/HK) */
                naive_attend(q + ((size_t)t * H + h) * DQ, k + ((size_t)cu[b] * HK + g) * DQ,
                             (size_t)HK * DQ, v + ((size_t)cu[b] * HK + g) * DV,
                             (size_t)HK * DV, cu[b + 1] - cu[b], t - cu[b], s,
                             out + ((size_t)t * H + h) * DV);
            }
}

static const k_attn_shape shapes[] = {
    {.n_heads = 4, .n_kv_heads = 4, .d_qk = 16, .d_v = 16},            /* MHA */
    {.n_heads = 8, .n_kv_heads = 2, .d_qk = 16, .d_v = 16},            /* GQA 4 */
    {.n_heads = 4, .n_kv_heads = 1, .d_qk = 8, .d_v = 8},              /* MQA */
    {.n_heads = 2, .n_kv_heads = 2, .d_qk = 24, .d_v = 8, .scale = 0.1f}, /* MLA-like */
    {.n_heads = 6, .n_kv_heads = 3, .d_qk = 13, .d_v = 5},             /* odd widths */
};

static void test_attn_prefill(void **state)
{
    (void)state;
    const int32_t cu[4] = {0, 5, 5, 14}; /* lengths 5, 0, 9 */
    const int B = 3, T = 14;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const k_attn_shape *s = &shapes[si];
        size_t nq = (size_t)T * s->n_heads * s->d_qk, nk = (size_t)T * s->n_kv_heads * s->d_qk;
        size_t nv = (size_t)T * s->n_kv_heads * s->d_v, no = (size_t)T * s->n_heads * s->d_v;
        float *q = rnd(nq, 50 + si, -1, 1), *k = rnd(nk, 60 + si, -1, 1);
        float *v = rnd(nv, 70 + si, -1, 1), *out = zalloc(no * 4), *ref = zalloc(no * 4);
        assert_int_equal(k_attn_prefill_ref(q, k, v, cu, B, s, out), K_OK);
        naive_prefill(q, k, v, cu, B, s, ref);
        expect_close(out, ref, no);

        /* causality: change every input of sequence 2's position 6 (row 11) */
        float *out2 = zalloc(no * 4);
        size_t t = 11;
        for (int i = 0; i < s->n_heads * s->d_qk; i++) q[t * s->n_heads * s->d_qk + i] += 1;
        for (int i = 0; i < s->n_kv_heads * s->d_qk; i++) k[t * s->n_kv_heads * s->d_qk + i] -= 2;
        for (int i = 0; i < s->n_kv_heads * s->d_v; i++) v[t * s->n_kv_heads * s->d_v + i] += 3;
        assert_int_equal(k_attn_prefill_ref(q, k, v, cu, B, s, out2), K_OK);
        size_t row = (size_t)s->n_heads * s->d_v;
        assert_memory_equal(out, out2, t * row * 4);                /* earlier: identical */
        assert_memory_not_equal(out + t * row, out2 + t * row, row * 4); /* itself: changed */
        assert_memory_not_equal(out + (t + 1) * row, out2 + (t + 1) * row, row * 4);
        free(q), free(k), free(v), free(out), free(ref), free(out2);
    }
    k_attn_shape bad = {.n_heads = 6, .n_kv_heads = 4, .d_qk = 8, .d_v = 8};
    float z[1];
    assert_int_equal(k_attn_prefill_ref(z, z, z, cu, B, &bad, z), K_EINVAL);
    const int32_t badcu[3] = {0, 4, 3};
    assert_int_equal(k_attn_prefill_ref(z, z, z, badcu, 2, &shapes[0], z), K_EINVAL);
}

static void test_attn_decode(void **state)
{
    (void)state;
    enum { B = 4, L = 10 };
    const int32_t lens[B] = {1, 7, 10, 0};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const k_attn_shape *s = &shapes[si];
        int H = s->n_heads, HK = s->n_kv_heads, DQ = s->d_qk, DV = s->d_v;
        float *q = rnd((size_t)B * H * DQ, 80 + si, -1, 1);
        float *kc = rnd((size_t)B * L * HK * DQ, 90 + si, -1, 1);
        float *vc = rnd((size_t)B * L * HK * DV, 95 + si, -1, 1);
        float *out = zalloc((size_t)B * H * DV * 4), *ref = zalloc((size_t)B * H * DV * 4);
        assert_int_equal(k_attn_decode_ref(q, kc, vc, lens, B, L, s, out), K_OK);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                int g = h / (H / HK);
                /* all L rows, masked beyond the length */
                naive_attend(q + ((size_t)b * H + h) * DQ, kc + ((size_t)b * L * HK + g) * DQ,
                             (size_t)HK * DQ, vc + ((size_t)b * L * HK + g) * DV,
                             (size_t)HK * DV, L, lens[b] - 1, s, ref + ((size_t)b * H + h) * DV);
            }
        expect_close(out, ref, (size_t)B * H * DV);
        for (int i = 0; i < H * DV; i++) assert_true(out[3 * H * DV + i] == 0); /* len 0 */

        /* decode of a sequence's last token = prefill's last row on the same K/V */
        int n = lens[1];
        float *kp = zalloc((size_t)n * HK * DQ * 4), *vp = zalloc((size_t)n * HK * DV * 4);
        float *qp = rnd((size_t)n * H * DQ, 99, -1, 1), *op = zalloc((size_t)n * H * DV * 4);
        memcpy(kp, kc + (size_t)1 * L * HK * DQ, (size_t)n * HK * DQ * 4);
        memcpy(vp, vc + (size_t)1 * L * HK * DV, (size_t)n * HK * DV * 4);
        memcpy(qp + (size_t)(n - 1) * H * DQ, q + (size_t)1 * H * DQ, (size_t)H * DQ * 4);
        int32_t cu[2] = {0, n};
        assert_int_equal(k_attn_prefill_ref(qp, kp, vp, cu, 1, s, op), K_OK);
        expect_close(op + (size_t)(n - 1) * H * DV, out + (size_t)1 * H * DV, (size_t)H * DV);
        free(q), free(kc), free(vc), free(out), free(ref), free(kp), free(vp), free(qp), free(op);
    }
    int32_t toolong[1] = {L + 1};
    float z[1];
    assert_int_equal(k_attn_decode_ref(z, z, z, toolong, 1, L, &shapes[0], z), K_EINVAL);
}

static void test_kv_append(void **state)
{
    (void)state;
    const k_attn_shape *s = &shapes[1];
    enum { B = 3, L = 4 };
    int HK = s->n_kv_heads, DQ = s->d_qk, DV = s->d_v;
    size_t kn = (size_t)HK * DQ, vn = (size_t)HK * DV;
    float *kc = zalloc(B * L * kn * 4), *vc = zalloc(B * L * vn * 4);
    int32_t lens[B] = {0, 2, 3};
    float *kw = rnd(B * kn, 1, -1, 1), *vw = rnd(B * vn, 2, -1, 1);
    assert_int_equal(k_kv_append_ref(kw, vw, lens, B, L, s, kc, vc), K_OK);
    assert_int_equal(lens[0], 1), assert_int_equal(lens[1], 3), assert_int_equal(lens[2], 4);
    const int pos[B] = {0, 2, 3};
    for (int b = 0; b < B; b++) {
        assert_memory_equal(kc + ((size_t)b * L + pos[b]) * kn, kw + b * kn, kn * 4);
        assert_memory_equal(vc + ((size_t)b * L + pos[b]) * vn, vw + b * vn, vn * 4);
    }
    /* sequence 2 is full now: nothing is written, lens unchanged */
    float *kc2 = zalloc(B * L * kn * 4);
    memcpy(kc2, kc, B * L * kn * 4);
    assert_int_equal(k_kv_append_ref(kw, vw, lens, B, L, s, kc, vc), K_EINVAL);
    assert_int_equal(lens[0], 1), assert_int_equal(lens[2], 4);
    assert_memory_equal(kc, kc2, B * L * kn * 4);
    free(kc), free(vc), free(kw), free(vw), free(kc2);
}

/* ---- k_check, bf16, filler ---------------------------------------------------------------- */

static void test_check(void **state)
{
    (void)state;
    float ref[8] = {1, 2, 3, 4, -5, 0, 100, 7}, got[8];
    k_check_result r;
    char msg[512];
    memcpy(got, ref, sizeof got);
    assert_int_equal(k_check("same", got, ref, 8, 0, 0, &r, msg, sizeof msg), 0);
    assert_int_equal(r.n, 8), assert_int_equal(r.n_bad, 0), assert_int_equal(r.first_bad, 8);
    assert_non_null(strstr(msg, "same: 0/8 mismatches"));

    got[6] = 100.5f; /* rel 0.005: inside atol 0 + rtol 0.01, outside rtol 0.001 */
    assert_int_equal(k_check("x", got, ref, 8, 0, 0.01f, &r, NULL, 0), 0);
    assert_int_equal(k_check("x", got, ref, 8, 0, 0.001f, &r, msg, sizeof msg), 1);
    assert_int_equal(r.n_bad, 1), assert_int_equal(r.first_bad, 6);
    assert_true(fabs(r.max_abs_err - 0.5) < 1e-9), assert_int_equal(r.max_abs_at, 6);
    assert_true(fabs(r.max_rel_err - 0.005) < 1e-9);
    assert_non_null(strstr(msg, "x: 1/8 mismatches"));
    assert_non_null(strstr(msg, "[6] got 100.5 ref 100"));
    got[5] = 1e-6f; /* ref 0: only atol helps */
    assert_int_equal(k_check("x", got, ref, 8, 1e-5f, 0.01f, &r, NULL, 0), 0);
    assert_int_equal(k_check("x", got, ref, 8, 1e-7f, 0.01f, &r, NULL, 0), 1);
    assert_int_equal(r.first_bad, 5);

    /* NaN: matches only NaN; inf matches only the same inf */
    float a[3] = {NAN, INFINITY, 1}, b[3] = {NAN, INFINITY, NAN};
    assert_int_equal(k_check(NULL, a, b, 2, 0, 0, &r, NULL, 0), 0);
    assert_int_equal(k_check(NULL, a, b, 3, 1, 1, &r, msg, sizeof msg), 1);
    assert_int_equal(r.first_bad, 2);
    assert_non_null(strstr(msg, "got 1 ref nan"));
    b[1] = -INFINITY;
    assert_int_equal(k_check(NULL, a, b, 2, 1, 1, &r, NULL, 0), 1);

    /* at most K_CHECK_SHOW listed; small buffers are truncated but terminated */
    float z[20] = {0}, o[20];
    for (int i = 0; i < 20; i++) o[i] = 1;
    assert_int_equal(k_check("many", o, z, 20, 0, 0, &r, msg, sizeof msg), 1);
    assert_int_equal(r.n_bad, 20);
    int listed = 0;
    for (const char *p = msg; (p = strstr(p, " got ")); p++) listed++;
    assert_int_equal(listed, K_CHECK_SHOW);
    char small[16];
    memset(small, 'x', sizeof small);
    assert_int_equal(k_check("many", o, z, 20, 0, 0, NULL, small, sizeof small), 1);
    assert_int_equal(strlen(small), sizeof small - 1);

    assert_int_equal(k_check("bad", NULL, z, 3, 0, 0, NULL, NULL, 0), K_EINVAL);
    assert_int_equal(k_check("bad", o, z, 3, -1, 0, NULL, NULL, 0), K_EINVAL);
    assert_int_equal(k_check("empty", NULL, NULL, 0, 0, 0, &r, NULL, 0), 0);
}

static void test_bf16_and_fill(void **state)
{
    (void)state;
    assert_int_equal(k_bf16_from_f32(1.0f), 0x3f80);
    assert_true(k_f32_from_bf16(0x3f80) == 1.0f);
    assert_true(k_f32_from_bf16(k_bf16_from_f32(1.0f + 1.0f / 256)) == 1.0f); /* tie to even */
    assert_true(k_f32_from_bf16(k_bf16_from_f32(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
    assert_true(k_f32_from_bf16(k_bf16_from_f32(-2.0f)) == -2.0f);
    assert_true(isnan(k_f32_from_bf16(k_bf16_from_f32(NAN))));
    assert_true(isinf(k_f32_from_bf16(k_bf16_from_f32(INFINITY))));
    float x[4] = {1.0f + 1.0f / 1024, 3.14159f, -0.0f, 65504.0f};
    k_round_bf16(x, 4);
    assert_true(x[0] == 1.0f), assert_true(x[1] == 3.140625f), assert_true(x[3] == 65536.0f);
    for (int i = 0; i < 4; i++) assert_true(x[i] == k_f32_from_bf16(k_bf16_from_f32(x[i])));

    float a[1000], b[1000], c[1000];
    k_fill_uniform(a, 1000, 5, -2, 3);
    k_fill_uniform(b, 1000, 5, -2, 3);
    k_fill_uniform(c, 1000, 6, -2, 3);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    double mean = 0;
    for (int i = 0; i < 1000; i++) {
        assert_true(a[i] >= -2 && a[i] <= 3);
        mean += a[i] / 1000;
    }
    assert_true(fabs(mean - 0.5) < 0.2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),          cmocka_unit_test(test_gate_random),
        cmocka_unit_test(test_gate_ties_and_weights), cmocka_unit_test(test_gate_errors),
        cmocka_unit_test(test_permute),       cmocka_unit_test(test_permute_errors),
        cmocka_unit_test(test_ffn),           cmocka_unit_test(test_attn_prefill),
        cmocka_unit_test(test_attn_decode),   cmocka_unit_test(test_kv_append),
        cmocka_unit_test(test_check),         cmocka_unit_test(test_bf16_and_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

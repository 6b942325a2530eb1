/* GPU check of every CUDA kernel (kernels/k_cuda.h) against its CPU reference (kernels/k.h),
 * llm.c style: deterministic random inputs at several shapes, rounded to bf16 so both sides
 * see the same values, the reference in fp32, and k_check with atol + rtol·|ref|.
 * Tolerances: bf16 outputs atol 1e-2, rtol 2e-2 (one bf16 rounding is 2^-9 relative, the FFN
 * stores its hidden layer in bf16 too); fp32 gate weights atol 1e-5, rtol 1e-4; indices and
 * pure copies (permute, KV append) exact. Gate selections must match exactly, except that
 * on random (non-grid) inputs a slot may hold another expert whose selection key is within
 * 1e-5 of the reference's (a near-tie that GPU and libm exp round apart); grid-valued tie
 * cases must match exactly. Prints one table row per comparison, then a summary line.
 * Exit 0 all pass, 1 a mismatch, 2 a CUDA/cuBLAS error or bad setup (e.g. no GPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/k_cuda.h"

namespace {

const float BF_ATOL = 1e-2f, BF_RTOL = 2e-2f;  /* bf16 outputs */
const float F32_ATOL = 1e-5f, F32_RTOL = 1e-4f; /* fp32 gate weights */
const float TIE_EPS = 1e-5f;                    /* gate near-tie allowance (non-grid inputs) */

int n_fail = 0, n_rows = 0;
uint64_t seed_next = 1;

/* ---- host and device buffers ---------------------------------------------------------------- */

enum { MAX_DEV = 64 };
void *dev_ptrs[MAX_DEV];
int n_dev = 0;

int dalloc(void **p, size_t bytes, k_cuda_err *err)
{
    if (n_dev == MAX_DEV)
        return k_cuda_fail(err, K_ENOMEM, __FILE__, __LINE__, "dalloc", "raise MAX_DEV");
    CK(err, cudaMalloc(p, bytes > 0 ? bytes : 1));
    CK(err, cudaMemset(*p, 0, bytes > 0 ? bytes : 1));
    dev_ptrs[n_dev++] = *p;
    return K_OK;
}

void dfree_all(void)
{
    for (int i = 0; i < n_dev; i++) cudaFree(dev_ptrs[i]);
    n_dev = 0;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n > 0 ? n : 1, size);
    if (!p) {
        fprintf(stderr, "check_kernels: out of host memory\n");
        exit(2);
    }
    return p;
}

/* n values uniform in [lo, hi), rounded to bf16 (what the GPU will see) */
float *rnd(size_t n, float lo, float hi)
{
    float *x = (float *)xcalloc(n, sizeof(float));
    k_fill_uniform(x, n, seed_next++, lo, hi);
    k_round_bf16(x, n);
    return x;
}

int up_bf16(const float *h, size_t n, k_bf16 **d, k_cuda_err *err)
{
    uint16_t *b = (uint16_t *)xcalloc(n, sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) b[i] = k_bf16_from_f32(h[i]);
    int rc = dalloc((void **)d, n * sizeof(uint16_t), err);
    if (rc == K_OK && n > 0) {
        cudaError_t e = cudaMemcpy(*d, b, n * sizeof(uint16_t), cudaMemcpyHostToDevice);
        if (e != cudaSuccess)
            rc = k_cuda_fail(err, K_ECUDA, __FILE__, __LINE__, "cudaMemcpy", cudaGetErrorString(e));
    }
    free(b);
    return rc;
}

int down_bf16(const k_bf16 *d, size_t n, float *h, k_cuda_err *err)
{
    uint16_t *b = (uint16_t *)xcalloc(n, sizeof(uint16_t));
    cudaError_t e = cudaMemcpy(b, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++) h[i] = k_f32_from_bf16(b[i]);
    free(b);
    if (e != cudaSuccess)
        return k_cuda_fail(err, K_ECUDA, __FILE__, __LINE__, "cudaMemcpy", cudaGetErrorString(e));
    return K_OK;
}

int up(const void *h, size_t bytes, void **d, k_cuda_err *err)
{
    int rc = dalloc(d, bytes, err);
    if (rc) return rc;
    if (bytes > 0) CK(err, cudaMemcpy(*d, h, bytes, cudaMemcpyHostToDevice));
    return K_OK;
}

int down(const void *d, size_t bytes, void *h, k_cuda_err *err)
{
    if (bytes > 0) CK(err, cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost));
    return K_OK;
}

/* ---- comparison and the table --------------------------------------------------------------- */

void row(const char *kernel, const char *shape, const float *got, const float *ref, size_t n,
         float atol, float rtol, const char *note)
{
    k_check_result r;
    char msg[1024];
    int rc = k_check(kernel, got, ref, n, atol, rtol, &r, msg, sizeof msg);
    int ok = rc == 0;
    n_rows++;
    if (!ok) n_fail++;
    printf("%-14s %-40s %9zu %10.3g %10.3g %7zu  %s%s%s\n", kernel, shape, r.n, r.max_abs_err,
           r.max_rel_err, r.n_bad, ok ? "PASS" : "FAIL", note ? "  " : "", note ? note : "");
    if (!ok) printf("    %s\n", msg);
}

void row_i32(const char *kernel, const char *shape, const int32_t *got, const int32_t *ref,
             size_t n)
{
    float *g = (float *)xcalloc(n, sizeof(float)), *r = (float *)xcalloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++) g[i] = (float)got[i], r[i] = (float)ref[i];
    row(kernel, shape, g, r, n, 0.0f, 0.0f, NULL);
    free(g);
    free(r);
}

/* ---- GEMM ----------------------------------------------------------------------------------- */

int check_gemm(cublasHandle_t blas, int m, int n, int k, int accumulate, k_cuda_err *err)
{
    float s = sqrtf(3.0f / (float)k);
    float *a = rnd((size_t)m * k, -1, 1), *b = rnd((size_t)k * n, -s, s);
    float *c = rnd((size_t)m * n, -1, 1), *got = (float *)xcalloc((size_t)m * n, sizeof(float));
    k_bf16 *da, *db, *dc;
    int rc;
    if ((rc = up_bf16(a, (size_t)m * k, &da, err)) || (rc = up_bf16(b, (size_t)k * n, &db, err)) ||
        (rc = up_bf16(c, (size_t)m * n, &dc, err)))
        return rc;
    if ((rc = k_gemm_cuda(blas, da, db, dc, m, n, k, accumulate, 0, err))) return rc;
    if ((rc = down_bf16(dc, (size_t)m * n, got, err))) return rc;
    k_gemm_ref(a, b, c, m, n, k, accumulate);
    char shape[64];
    snprintf(shape, sizeof shape, "m=%d n=%d k=%d%s", m, n, k, accumulate ? " +C" : "");
    row("gemm", shape, got, c, (size_t)m * n, BF_ATOL, BF_RTOL, NULL);
    free(a), free(b), free(c), free(got);
    dfree_all();
    return K_OK;
}

/* ---- gate ----------------------------------------------------------------------------------- */

/* selection keys of one token as k.h defines them (score + bias), in double */
void keys_of(const float *l, const k_gate_params *p, const float *bias, double *key)
{
    int E = p->n_experts;
    if (p->score == K_GATE_SOFTMAX) {
        double mx = l[0], sum = 0;
        for (int e = 1; e < E; e++) mx = l[e] > mx ? l[e] : mx;
        for (int e = 0; e < E; e++) sum += key[e] = exp(l[e] - mx);
        for (int e = 0; e < E; e++) key[e] /= sum;
    } else {
        for (int e = 0; e < E; e++) key[e] = 1.0 / (1.0 + exp(-(double)l[e]));
    }
    if (bias)
        for (int e = 0; e < E; e++) key[e] += bias[e];
}

/* grid: logits on a 0.5 grid, bias from {0, 0.25}: keys tie exactly or differ by >= 0.005,
 * so selections must match exactly (use top-2 group scores only without bias: a + (b+0.25)
 * and (a+0.25) + b tie in exact arithmetic but may round apart) */
int check_gate(const char *label, int T, k_gate_params p, int with_bias, int grid, k_cuda_err *err)
{
    const int E = p.n_experts, k = p.topk;
    float *l = rnd((size_t)T * E, -4, 4), *bias = with_bias ? rnd((size_t)E, -0.25f, 0.25f) : NULL;
    if (grid) {
        /* level 0..4; softmax: -1..1; sigmoid: 0..2 (sigmoid(x) + sigmoid(-x) = 1 would make
         * top-2 group sums tie in exact arithmetic but not in rounding) */
        int off = p.score == K_GATE_SIGMOID ? 0 : 2;
        for (size_t i = 0; i < (size_t)T * E; i++)
            l[i] = 0.5f * (float)((int)floorf(l[i] * 0.625f + 2.5f) - off);
        if (bias)
            for (int e = 0; e < E; e++) bias[e] = bias[e] > 0 ? 0.25f : 0.0f;
    }
    int32_t *idx = (int32_t *)xcalloc((size_t)T * k, sizeof(int32_t));
    int32_t *ridx = (int32_t *)xcalloc((size_t)T * k, sizeof(int32_t));
    float *w = (float *)xcalloc((size_t)T * k, sizeof(float));
    float *rw = (float *)xcalloc((size_t)T * k, sizeof(float));
    k_bf16 *dl;
    void *dbias = NULL, *didx, *dw;
    int rc;
    if ((rc = up_bf16(l, (size_t)T * E, &dl, err))) return rc;
    if (bias && (rc = up(bias, sizeof(float) * E, &dbias, err))) return rc;
    if ((rc = dalloc(&didx, sizeof(int32_t) * T * k, err)) ||
        (rc = dalloc(&dw, sizeof(float) * T * k, err)))
        return rc;
    k_gate_params dp = p;
    dp.bias = (const float *)dbias;
    if ((rc = k_gate_cuda(dl, T, &dp, (int32_t *)didx, (float *)dw, 0, err))) return rc;
    if ((rc = down(didx, sizeof(int32_t) * T * k, idx, err)) ||
        (rc = down(dw, sizeof(float) * T * k, w, err)))
        return rc;
    p.bias = bias;
    if (k_gate_ref(l, T, &p, ridx, rw) != K_OK) {
        printf("gate %s: the reference rejected the parameters\n", label);
        n_fail++;
        return K_OK;
    }
    /* near-ties: a token whose selections differ is forgiven (non-grid only) when every
     * slot's key is within TIE_EPS of the reference's; its weights are then not compared */
    double *key = (double *)xcalloc((size_t)E, sizeof(double));
    size_t forgiven = 0;
    for (int t = 0; t < T; t++) {
        int32_t *gi = idx + (size_t)t * k, *ri = ridx + (size_t)t * k;
        if (!memcmp(gi, ri, sizeof(int32_t) * k)) continue;
        if (grid) continue;
        keys_of(l + (size_t)t * E, &p, bias, key);
        int ok = 1;
        for (int j = 0; j < k && ok; j++) {
            if (gi[j] < 0 || gi[j] >= E) ok = 0;
            else if (fabs(key[gi[j]] - key[ri[j]]) > TIE_EPS) ok = 0;
            for (int j2 = 0; j2 < j && ok; j2++)
                if (gi[j2] == gi[j]) ok = 0;
        }
        if (!ok) continue;
        forgiven++;
        memcpy(gi, ri, sizeof(int32_t) * k);
        memcpy(w + (size_t)t * k, rw + (size_t)t * k, sizeof(float) * k);
    }
    char shape[96], note[64];
    snprintf(shape, sizeof shape, "%s T=%d E=%d k=%d G=%d/%d", label, T, E, k, p.n_groups,
             p.n_groups > 1 ? p.topk_groups : 1);
    snprintf(note, sizeof note, "(%zu near-tie tokens)", forgiven);
    row_i32("gate.idx", shape, idx, ridx, (size_t)T * k);
    row("gate.w", shape, w, rw, (size_t)T * k, F32_ATOL, F32_RTOL, forgiven ? note : NULL);
    free(l), free(bias), free(idx), free(ridx), free(w), free(rw), free(key);
    dfree_all();
    return K_OK;
}

/* ---- permute / unpermute -------------------------------------------------------------------- */

/* expert ids in [0, E), skewed towards low ids (u^2), duplicates within a token allowed */
int32_t *rnd_ids(int T, int k, int E)
{
    size_t S = (size_t)T * k;
    float *u = (float *)xcalloc(S, sizeof(float));
    k_fill_uniform(u, S, seed_next++, 0, 1);
    int32_t *id = (int32_t *)xcalloc(S, sizeof(int32_t));
    for (size_t s = 0; s < S; s++) {
        int e = (int)(u[s] * u[s] * (float)E);
        id[s] = e < E ? e : E - 1;
    }
    free(u);
    return id;
}

int check_permute(int T, int k, int E, int d, k_cuda_err *err)
{
    size_t S = (size_t)T * k;
    int32_t *id = rnd_ids(T, k, E);
    float *x = rnd((size_t)T * d, -1, 1);
    int32_t *c = (int32_t *)xcalloc(E, 4), *o = (int32_t *)xcalloc(E + 1, 4);
    int32_t *rs = (int32_t *)xcalloc(S, 4), *ros = (int32_t *)xcalloc(S, 4);
    int32_t *gc = (int32_t *)xcalloc(E, 4), *go = (int32_t *)xcalloc(E + 1, 4);
    int32_t *grs = (int32_t *)xcalloc(S, 4), *gros = (int32_t *)xcalloc(S, 4);
    float *xp = (float *)xcalloc(S * d, 4), *gxp = (float *)xcalloc(S * d, 4);
    void *did, *dc, *dof, *drs, *dros, *ws;
    k_bf16 *dx, *dxp;
    size_t wsb = k_permute_cuda_workspace(T, k, E);
    int rc;
    if ((rc = up(id, S * 4, &did, err)) || (rc = up_bf16(x, (size_t)T * d, &dx, err)) ||
        (rc = dalloc(&dc, (size_t)E * 4, err)) || (rc = dalloc(&dof, (size_t)(E + 1) * 4, err)) ||
        (rc = dalloc(&drs, S * 4, err)) || (rc = dalloc(&dros, S * 4, err)) ||
        (rc = dalloc((void **)&dxp, S * d * 2, err)) || (rc = dalloc(&ws, wsb, err)))
        return rc;
    if ((rc = k_permute_cuda((int32_t *)did, T, k, E, dx, d, (int32_t *)dc, (int32_t *)dof,
                             (int32_t *)drs, (int32_t *)dros, dxp, ws, wsb, 0, err)))
        return rc;
    if ((rc = down(dc, (size_t)E * 4, gc, err)) || (rc = down(dof, (size_t)(E + 1) * 4, go, err)) ||
        (rc = down(drs, S * 4, grs, err)) || (rc = down(dros, S * 4, gros, err)) ||
        (rc = down_bf16(dxp, S * d, gxp, err)))
        return rc;
    k_permute_ref(id, T, k, E, x, d, c, o, rs, ros, xp);
    char shape[64];
    snprintf(shape, sizeof shape, "T=%d k=%d E=%d d=%d", T, k, E, d);
    row_i32("permute.count", shape, gc, c, (size_t)E);
    row_i32("permute.off", shape, go, o, (size_t)E + 1);
    row_i32("permute.src", shape, grs, rs, S);
    row_i32("permute.slot", shape, gros, ros, S);
    row("permute.xp", shape, gxp, xp, S * d, 0.0f, 0.0f, NULL);
    free(id), free(x), free(c), free(o), free(rs), free(ros), free(gc), free(go), free(grs);
    free(gros), free(xp), free(gxp);
    dfree_all();
    return K_OK;
}

int check_unpermute(int T, int k, int E, int d, k_cuda_err *err)
{
    size_t S = (size_t)T * k;
    int32_t *id = rnd_ids(T, k, E);
    int32_t *c = (int32_t *)xcalloc(E, 4), *o = (int32_t *)xcalloc(E + 1, 4);
    int32_t *rs = (int32_t *)xcalloc(S, 4), *ros = (int32_t *)xcalloc(S, 4);
    k_permute_ref(id, T, k, E, NULL, 0, c, o, rs, ros, NULL);
    float *y = rnd(S * d, -1, 1), *w = (float *)xcalloc(S, 4);
    k_fill_uniform(w, S, seed_next++, 0, 1); /* fp32 on both sides */
    float *out = (float *)xcalloc((size_t)T * d, 4), *got = (float *)xcalloc((size_t)T * d, 4);
    k_bf16 *dy, *dout;
    void *dros, *dw;
    int rc;
    if ((rc = up_bf16(y, S * d, &dy, err)) || (rc = up(ros, S * 4, &dros, err)) ||
        (rc = up(w, S * 4, &dw, err)) || (rc = dalloc((void **)&dout, (size_t)T * d * 2, err)))
        return rc;
    if ((rc = k_unpermute_cuda(dy, (int32_t *)dros, (float *)dw, T, k, d, dout, 0, err))) return rc;
    if ((rc = down_bf16(dout, (size_t)T * d, got, err))) return rc;
    k_unpermute_ref(y, ros, w, T, k, d, out);
    char shape[64];
    snprintf(shape, sizeof shape, "T=%d k=%d d=%d", T, k, d);
    row("unpermute", shape, got, out, (size_t)T * d, BF_ATOL, BF_RTOL, NULL);
    free(id), free(c), free(o), free(rs), free(ros), free(y), free(w), free(out), free(got);
    dfree_all();
    return K_OK;
}

/* ---- SwiGLU expert FFN ---------------------------------------------------------------------- */

/* rows routed to E experts by a skewed random permute; the experts [e0, e0+El) are run
 * (an expert-parallel rank's slice), over the whole permuted x/y buffers */
int check_ffn(cublasHandle_t blas, int T, int k, int E, int e0, int El, int d, int f,
              k_cuda_err *err)
{
    size_t S = (size_t)T * k;
    int32_t *id = rnd_ids(T, k, E);
    int32_t *c = (int32_t *)xcalloc(E, 4), *o = (int32_t *)xcalloc(E + 1, 4);
    int32_t *rs = (int32_t *)xcalloc(S, 4), *ros = (int32_t *)xcalloc(S, 4);
    k_permute_ref(id, T, k, E, NULL, 0, c, o, rs, ros, NULL);
    float s1 = sqrtf(3.0f / (float)d), s2 = sqrtf(3.0f / (float)f);
    size_t DF = (size_t)d * f;
    float *x = rnd(S * d, -1, 1), *w1 = rnd(El * DF, -s1, s1), *w3 = rnd(El * DF, -s1, s1);
    float *w2 = rnd(El * DF, -s2, s2);
    float *y = (float *)xcalloc(S * d, 4), *got = (float *)xcalloc(S * d, 4);
    k_bf16 *dx, *dw1, *dw3, *dw2, *dy;
    void *ws;
    size_t wsb = k_ffn_swiglu_cuda_workspace(o + e0, El, f);
    int rc;
    if ((rc = up_bf16(x, S * d, &dx, err)) || (rc = up_bf16(w1, El * DF, &dw1, err)) ||
        (rc = up_bf16(w3, El * DF, &dw3, err)) || (rc = up_bf16(w2, El * DF, &dw2, err)) ||
        (rc = dalloc((void **)&dy, S * d * 2, err)) || (rc = dalloc(&ws, wsb, err)))
        return rc;
    if ((rc = k_ffn_swiglu_cuda(blas, dx, o + e0, El, d, f, dw1, dw3, dw2, dy, ws, wsb, 0, err)))
        return rc;
    if ((rc = down_bf16(dy, S * d, got, err))) return rc;
    k_ffn_swiglu_ref(x, o + e0, El, d, f, w1, w3, w2, y);
    char shape[64];
    snprintf(shape, sizeof shape, "rows=%zu E=%d[%d..%d) d=%d f=%d", S, E, e0, e0 + El, d, f);
    row("ffn_swiglu", shape, got, y, S * d, BF_ATOL, BF_RTOL, NULL);
    free(id), free(c), free(o), free(rs), free(ros), free(x), free(w1), free(w3), free(w2);
    free(y), free(got);
    dfree_all();
    return K_OK;
}

/* ---- attention ------------------------------------------------------------------------------ */

int check_prefill(const char *label, int B, const int *lens, k_attn_shape s, k_cuda_err *err)
{
    int32_t *cu = (int32_t *)xcalloc(B + 1, 4);
    int maxl = 0;
    for (int b = 0; b < B; b++) {
        cu[b + 1] = cu[b] + lens[b];
        maxl = lens[b] > maxl ? lens[b] : maxl;
    }
    size_t T = (size_t)cu[B], H = s.n_heads, HK = s.n_kv_heads;
    size_t nq = T * H * s.d_qk, nk = T * HK * s.d_qk, nv = T * HK * s.d_v, no = T * H * s.d_v;
    float *q = rnd(nq, -1, 1), *k = rnd(nk, -1, 1), *v = rnd(nv, -1, 1);
    float *out = (float *)xcalloc(no, 4), *got = (float *)xcalloc(no, 4);
    k_bf16 *dq, *dk, *dv, *dout;
    void *dcu;
    int rc;
    if ((rc = up_bf16(q, nq, &dq, err)) || (rc = up_bf16(k, nk, &dk, err)) ||
        (rc = up_bf16(v, nv, &dv, err)) || (rc = up(cu, (size_t)(B + 1) * 4, &dcu, err)) ||
        (rc = dalloc((void **)&dout, no * 2, err)))
        return rc;
    if ((rc = k_attn_prefill_cuda(dq, dk, dv, (int32_t *)dcu, B, maxl, &s, dout, 0, err))) return rc;
    if ((rc = down_bf16(dout, no, got, err))) return rc;
    k_attn_prefill_ref(q, k, v, cu, B, &s, out);
    char shape[96];
    snprintf(shape, sizeof shape, "%s B=%d T=%zu h=%d/%d d=%d/%d", label, B, T, s.n_heads,
             s.n_kv_heads, s.d_qk, s.d_v);
    row("attn.prefill", shape, got, out, no, BF_ATOL, BF_RTOL, NULL);
    free(cu), free(q), free(k), free(v), free(out), free(got);
    dfree_all();
    return K_OK;
}

/* decode against a random cache; latent != 0: V is the first d_v values of each K row
 * (MLA absorbed). Then one KV append per sequence, compared exactly with the reference's. */
int check_decode(const char *label, int B, int L, const int32_t *lens, k_attn_shape s, int latent,
                 k_cuda_err *err)
{
    size_t H = s.n_heads, HK = s.n_kv_heads, DQ = s.d_qk, DV = s.d_v;
    size_t nq = B * H * DQ, nk = B * L * HK * DQ, nv = B * L * HK * DV, no = B * H * DV;
    float *q = rnd(nq, -1, 1), *k = rnd(nk, -1, 1), *v = rnd(nv, -1, 1);
    if (latent)
        for (size_t r = 0; r < (size_t)B * L * HK; r++) memcpy(v + r * DV, k + r * DQ, DV * 4);
    float *out = (float *)xcalloc(no, 4), *got = (float *)xcalloc(no, 4);
    k_bf16 *dq, *dk, *dv, *dout;
    void *dl;
    int rc;
    if ((rc = up_bf16(q, nq, &dq, err)) || (rc = up_bf16(k, nk, &dk, err)) ||
        (rc = up_bf16(v, nv, &dv, err)) || (rc = up(lens, (size_t)B * 4, &dl, err)) ||
        (rc = dalloc((void **)&dout, no * 2, err)))
        return rc;
    if ((rc = k_attn_decode_cuda(dq, dk, dv, (int32_t *)dl, B, L, &s, dout, 0, err))) return rc;
    if ((rc = down_bf16(dout, no, got, err))) return rc;
    k_attn_decode_ref(q, k, v, lens, B, L, &s, out);
    char shape[96];
    snprintf(shape, sizeof shape, "%s B=%d L=%d h=%d/%d d=%zu/%zu", label, B, L, s.n_heads,
             s.n_kv_heads, DQ, DV);
    row("attn.decode", shape, got, out, no, BF_ATOL, BF_RTOL, NULL);

    /* append one token to every sequence that has room */
    int32_t *l2 = (int32_t *)xcalloc(B, 4), *gl2 = (int32_t *)xcalloc(B, 4);
    int room = 1;
    for (int b = 0; b < B; b++) room &= lens[b] < L;
    if (room) {
        float *kn = rnd(B * HK * DQ, -1, 1), *vn = rnd(B * HK * DV, -1, 1);
        float *gk = (float *)xcalloc(nk, 4), *gv = (float *)xcalloc(nv, 4);
        k_bf16 *dkn, *dvn;
        memcpy(l2, lens, (size_t)B * 4);
        if ((rc = up_bf16(kn, B * HK * DQ, &dkn, err)) || (rc = up_bf16(vn, B * HK * DV, &dvn, err)))
            return rc;
        if ((rc = k_kv_append_cuda(dkn, dvn, (int32_t *)dl, B, L, &s, dk, dv, 0, err))) return rc;
        if ((rc = down_bf16(dk, nk, gk, err)) || (rc = down_bf16(dv, nv, gv, err)) ||
            (rc = down(dl, (size_t)B * 4, gl2, err)))
            return rc;
        k_kv_append_ref(kn, vn, l2, B, L, &s, k, v);
        row("kv_append.k", shape, gk, k, nk, 0.0f, 0.0f, NULL);
        row("kv_append.v", shape, gv, v, nv, 0.0f, 0.0f, NULL);
        row_i32("kv_append.len", shape, gl2, l2, (size_t)B);
        free(kn), free(vn), free(gk), free(gv);
    }
    free(q), free(k), free(v), free(out), free(got), free(l2), free(gl2);
    dfree_all();
    return K_OK;
}

k_gate_params gate(int E, int k, k_gate_score sc, int renorm, float scale, int G, int tg,
                   k_group_score gs)
{
    k_gate_params p;
    memset(&p, 0, sizeof p);
    p.n_experts = E, p.topk = k, p.score = sc, p.renorm = renorm, p.scale = scale;
    p.n_groups = G, p.topk_groups = tg, p.group_score = gs;
    return p;
}

int run_all(cublasHandle_t blas, k_cuda_err *err)
{
    int rc;
    /* GEMM */
    if ((rc = check_gemm(blas, 64, 64, 64, 0, err)) || (rc = check_gemm(blas, 129, 257, 95, 0, err)) ||
        (rc = check_gemm(blas, 1, 2048, 1024, 0, err)) || (rc = check_gemm(blas, 300, 200, 512, 1, err)))
        return rc;
    /* gate: Mixtral, DeepSeek-V2-Lite, DeepSeek-V2 (group max), DeepSeek-V3 (sigmoid, bias,
     * group top-2), then grid-valued exact-tie cases */
    if ((rc = check_gate("mixtral", 1000, gate(8, 2, K_GATE_SOFTMAX, 1, 1.0f, 1, 1, K_GROUP_MAX), 0, 0, err)) ||
        (rc = check_gate("v2-lite", 777, gate(64, 6, K_GATE_SOFTMAX, 0, 1.0f, 1, 1, K_GROUP_MAX), 0, 0, err)) ||
        (rc = check_gate("v2", 513, gate(160, 6, K_GATE_SOFTMAX, 0, 16.0f, 8, 3, K_GROUP_MAX), 0, 0, err)) ||
        (rc = check_gate("v3", 1024, gate(256, 8, K_GATE_SIGMOID, 0, 2.5f, 8, 4, K_GROUP_TOP2), 1, 0, err)) ||
        (rc = check_gate("tie-softmax", 999, gate(32, 4, K_GATE_SOFTMAX, 1, 1.0f, 4, 2, K_GROUP_MAX), 0, 1, err)) ||
        (rc = check_gate("tie-sigmoid", 999, gate(64, 8, K_GATE_SIGMOID, 0, 1.0f, 8, 4, K_GROUP_TOP2), 0, 1, err)) ||
        (rc = check_gate("tie-sig-bias", 999, gate(64, 8, K_GATE_SIGMOID, 0, 1.0f, 8, 4, K_GROUP_MAX), 1, 1, err)) ||
        (rc = check_gate("tie-nogroup", 500, gate(16, 16, K_GATE_SOFTMAX, 1, 1.0f, 1, 1, K_GROUP_MAX), 0, 1, err)))
        return rc;
    /* permute (several chunks, empty experts, odd d) and unpermute + combine */
    if ((rc = check_permute(1000, 2, 8, 256, err)) || (rc = check_permute(4096, 8, 256, 128, err)) ||
        (rc = check_permute(3, 6, 64, 7, err)) || (rc = check_permute(700, 4, 16, 33, err)))
        return rc;
    if ((rc = check_unpermute(1000, 2, 8, 256, err)) || (rc = check_unpermute(4096, 8, 256, 128, err)) ||
        (rc = check_unpermute(5, 6, 64, 7, err)))
        return rc;
    /* FFN: all experts, an expert-parallel slice, small odd sizes */
    if ((rc = check_ffn(blas, 256, 2, 8, 0, 8, 256, 512, err)) ||
        (rc = check_ffn(blas, 150, 2, 16, 4, 8, 128, 320, err)) ||
        (rc = check_ffn(blas, 16, 4, 4, 0, 4, 96, 200, err)))
        return rc;
    /* prefill: MHA, GQA with an empty sequence, MLA non-absorbed (192/128, explicit scale),
     * MQA with odd head dims */
    const int l1[] = {1, 37, 130}, l2[] = {200, 0, 65}, l3[] = {100}, l4[] = {45, 3};
    k_attn_shape mha = {4, 4, 64, 64, 0}, gqa = {8, 2, 128, 128, 0}, mla = {4, 4, 192, 128, 0.1f};
    k_attn_shape mqa = {2, 1, 33, 17, 0};
    if ((rc = check_prefill("mha", 3, l1, mha, err)) || (rc = check_prefill("gqa", 3, l2, gqa, err)) ||
        (rc = check_prefill("mla", 1, l3, mla, err)) || (rc = check_prefill("mqa", 2, l4, mqa, err)))
        return rc;
    /* decode: MHA (lens 0..max), GQA, MLA absorbed (576/512 latent, hkv = 1) */
    const int32_t d1[] = {0, 1, 150, 299}, d2[] = {512, 77, 256}, d3[] = {255, 100};
    k_attn_shape gqa2 = {32, 8, 128, 128, 0}, mla2 = {16, 1, 576, 512, 0.0721688f};
    if ((rc = check_decode("mha", 4, 300, d1, mha, 0, err)) ||
        (rc = check_decode("gqa", 3, 513, d2, gqa2, 0, err)) ||
        (rc = check_decode("mla-absorbed", 2, 256, d3, mla2, 1, err)))
        return rc;
    return K_OK;
}

int setup_and_run(k_cuda_err *err)
{
    int n = 0;
    CK(err, cudaGetDeviceCount(&n));
    CK(err, cudaSetDevice(0));
    cudaDeviceProp prop;
    CK(err, cudaGetDeviceProperties(&prop, 0));
    printf("device 0: %s (sm_%d%d), %d device(s)\n", prop.name, prop.major, prop.minor, n);
    printf("%-14s %-40s %9s %10s %10s %7s  %s\n", "kernel", "shape", "n", "max_abs", "max_rel",
           "bad", "result");
    cublasHandle_t blas;
    CUBLAS_CK(err, cublasCreate(&blas));
    int rc = run_all(blas, err);
    cublasDestroy(blas);
    if (rc == K_OK) CK(err, cudaDeviceSynchronize());
    return rc;
}

} // namespace

int main(void)
{
    k_cuda_err err = {""};
    int rc = setup_and_run(&err);
    dfree_all();
    if (rc != K_OK) {
        fprintf(stderr, "check_kernels: %s\n", err.msg);
        return 2;
    }
    printf("check_kernels: %d comparisons, %d failed: %s\n", n_rows, n_fail, n_fail ? "FAIL" : "PASS");
    return n_fail ? 1 : 0;
}

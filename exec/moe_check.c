/* Check mode: the real MoE forward of a DEP graph (workloads/dep_infer.c) on random fp32
 * weights and inputs, carried by the graph's own tasks, and a single-process reference on
 * rank 0. Every row is computed by the same row-independent CPU references (k_gemm_ref,
 * k_attn_prefill_ref, k_ffn_swiglu_ref) in both, so a correct run matches the reference
 * to the last bit; the tolerance only absorbs what a changed kernel might reorder. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "exec/check_common.h"
#include "exec/ex_mpi.h"
#include "exec/moe_check.h"
#include "exec/train_check.h"
#include "kernels/k.h"

#define CHECK_RTOL 1e-4     /* tolerance on the max relative error */
#define CHECK_FLOOR 1e-2    /* the error's absolute floor, as a fraction of the ref's RMS */
#define RMS_EPS 1e-6f
#define MEM_LIMIT_BYTES (8.0 * 1024 * 1024 * 1024)
#define TAG_X 7101
#define TAG_ASSIGN 7102
#define CORRUPT_ENV "MOESCHED_CHECK_CORRUPT"

enum { KD_NONE, KD_ATTN, KD_GATE, KD_SHARED, KD_DENSE, KD_A2E, KD_EXPERT, KD_E2A };
enum { RO_NONE, RO_FIRST, RO_CORE, RO_LAST };
enum { W_Q, W_K, W_V, W_O, W_G, W_SH1, W_SH3, W_SH2, W_DE1, W_DE3, W_DE2, W_E1, W_E3, W_E2 };

struct ex_check {
    const tg_graph *g;
    int rank;
    uint64_t seed;
    model_cfg m;
    int L, r1, r2, ag, eg;
    int *ag_rank, *eg_rank;     /* world ranks of the groups, ascending */
    int *ag_index, *eg_index;   /* [nranks]: index in the group, or -1 */
    int my_a, my_d;
    /* dimensions */
    int M, T, chunk, k, topk, E, B, b, sq, skv, h, hkv, dk, dv, fe, fs, nsh, fd;
    int *exp_rank;              /* [E]: expert -> EG index */
    int *e_first;               /* [eg + 1]: first expert of each EG index */
    /* per task */
    uint8_t *tkind, *trole;
    int32_t *tl, *ti, *tj;
    int64_t *pairs;             /* [L][r1][r2][ag][eg] rows dispatched */
    /* comm buffers of this rank, by transfer */
    unsigned char *block;
    void **xbuf, **xmeta;
    size_t *xmeta_n;
    /* the transfers' buffers by role: attention side [L][r1][r2][eg] (a2e send + its
     * routing, e2a receive), expert side [L][r1][r2][ag] (a2e receive + routing, e2a
     * send); an ep rank has both */
    void **ag_send, **ag_meta, **ag_recv, **eg_send, **eg_meta, **eg_recv;
    /* attention ranks: state per micro-batch */
    float *x0, *X, *Xn, *Q, *K, *V, *O, *Y, *Hm, *S; /* [r1][T][...] */
    float *logits, *tmp;                             /* one micro-batch at a time */
    int32_t *assign, *slot_d, *slot_row;             /* [L][r1][T][k] */
    float *wslot;                                    /* [L][r1][T][k] */
    int32_t *cu;                                     /* [b + 1] */
    float *kc, *vc;                                  /* decode: one micro-batch's KV cache */
    int32_t *lens;                                   /* [b] */
    float **w_attn;                                  /* [L][4]: q k v o */
    float **w_gate, **w_sh, **w_de;                  /* [L], [L][3] (x nsh), [L][3] */
    /* expert ranks */
    float **w_ex;        /* [L][3]: this rank's experts, [El][M][f] / [El][f][M] */
    int e0, El;
    float *xe, *xp, *yp; /* [rows][M] */
    int32_t *rexp, *cnt, *off, *pos;
    size_t max_rows;
    int corrupt;
    ex_payload payload;
    ex_tcheck *train; /* a training graph: everything is exec/train_check.c's */
};

/* ---- seeded weights and shared math --------------------------------------------------- */

static void rmsnorm(const float *x, float *y, int T, int M)
{
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * M;
        float *yr = y + (size_t)t * M;
        double ss = 0;
        for (int i = 0; i < M; i++) ss += (double)xr[i] * xr[i];
        float r = 1.0f / sqrtf((float)(ss / M) + RMS_EPS);
        for (int i = 0; i < M; i++) yr[i] = xr[i] * r;
    }
}

static void softmax_rows(float *x, int T, int E)
{
    for (int t = 0; t < T; t++) {
        float *r = x + (size_t)t * E, mx = r[0], s = 0;
        for (int e = 1; e < E; e++) mx = r[e] > mx ? r[e] : mx;
        for (int e = 0; e < E; e++) s += (r[e] = expf(r[e] - mx));
        for (int e = 0; e < E; e++) r[e] /= s;
    }
}

static int kcall(int krc, const char *what, ms_err *err)
{
    if (krc == K_OK) return 0;
    return ms_err_set(err, "check: %s failed (%s)", what,
                      krc == K_ENOMEM ? "out of memory" : "invalid arguments");
}

/* Scratch of the attention core: prefill's sequence offsets, decode's KV cache. */
typedef struct attn_ws {
    int32_t *cu, *lens;
    float *kc, *vc;
} attn_ws;

/* Attention of micro-batch i of attention rank a in layer l, in three steps as the
 * graph's attention tasks run it: 1: Xn = rmsnorm(X), Q K V = Xn W;  2: O = causal
 * attention (prefill), or decode against a KV cache of skv - 1 seeded random positions
 * plus this token's K V (k_kv_append_ref);  3: Y = X + O Wo, Hm = rmsnorm(Y). */
static int attn_step(const ex_check *c, int step, int l, int a, int i, const attn_ws *ws,
                     float *const *w, const float *X, float *Xn, float *Q, float *K, float *V,
                     float *O, float *Y, float *Hm, ms_err *err)
{
    int T = c->T, M = c->M;
    if (step == 1) {
        rmsnorm(X, Xn, T, M);
        if (kcall(k_gemm_ref(Xn, w[0], Q, T, c->h * c->dk, M, 0), "q projection", err) ||
            kcall(k_gemm_ref(Xn, w[1], K, T, c->hkv * c->dk, M, 0), "k projection", err) ||
            kcall(k_gemm_ref(Xn, w[2], V, T, c->hkv * c->dv, M, 0), "v projection", err))
            return -1;
        return 0;
    }
    if (step == 2) {
        k_attn_shape sh = {.n_heads = c->h, .n_kv_heads = c->hkv, .d_qk = c->dk, .d_v = c->dv};
        if (c->sq == c->skv)
            return kcall(k_attn_prefill_ref(Q, K, V, ws->cu, c->b, &sh, O), "attention", err);
        size_t kn = (size_t)c->b * c->skv * c->hkv * c->dk, vn = (size_t)c->b * c->skv * c->hkv * c->dv;
        k_fill_uniform(ws->kc, kn, ex_ck_mix(c->seed, l, 98, a * 4096 + i), -1.0f, 1.0f);
        k_fill_uniform(ws->vc, vn, ex_ck_mix(c->seed, l, 97, a * 4096 + i), -1.0f, 1.0f);
        for (int q = 0; q < c->b; q++) ws->lens[q] = c->skv - 1;
        if (kcall(k_kv_append_ref(K, V, ws->lens, c->b, c->skv, &sh, ws->kc, ws->vc),
                  "kv append", err))
            return -1;
        return kcall(k_attn_decode_ref(Q, ws->kc, ws->vc, ws->lens, c->b, c->skv, &sh, O),
                     "decode attention", err);
    }
    memcpy(Y, X, (size_t)T * M * sizeof *Y);
    if (kcall(k_gemm_ref(O, w[3], Y, T, M, c->h * c->dv, 1), "output projection", err)) return -1;
    rmsnorm(Y, Hm, T, M);
    return 0;
}

/* S = sum of the shared experts' (or the dense MLP's) SwiGLU on Hm; tmp is [T][M]. */
static int mlp_sum(const ex_check *c, float *const *w, int n, int f, const float *Hm, float *S,
                   float *tmp, ms_err *err)
{
    int32_t off[2] = {0, c->T};
    memset(S, 0, (size_t)c->T * c->M * sizeof *S);
    for (int s = 0; s < n; s++) {
        if (kcall(k_ffn_swiglu_ref(Hm, off, 1, c->M, f, w[3 * s], w[3 * s + 1], w[3 * s + 2], tmp),
                  "shared expert", err))
            return -1;
        for (size_t i = 0; i < (size_t)c->T * c->M; i++) S[i] += tmp[i];
    }
    return 0;
}

/* Capacity-constrained top-k of one chunk: candidates (token, expert) by descending
 * score (ties: token, then expert index), taken while the token has fewer than `limit`
 * experts, does not have this one yet, and the expert's rank still has capacity cap[d]
 * (the graph's row count). Rounds with limit = top_k, top_k + 1, ... c->k run until every
 * rank's capacity is used, as the graph spreads each expert's rows over the sources
 * unevenly: a token may end with fewer (dropped) or more experts than top_k. Fills
 * assign[t][0..k) for the chunk's tokens, slots in selection order, -1 when empty. */
typedef struct cand {
    float score;
    int32_t t, e;
} cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return (x->e > y->e) - (x->e < y->e);
}

static int route(const ex_check *c, const float *scores, int t0, int nt, int64_t *cap,
                 int32_t *assign, ms_err *err)
{
    int E = c->E, k = c->k;
    if (nt <= 0 || E <= 0) return 0;
    for (int t = 0; t < nt; t++)
        for (int s = 0; s < k; s++) assign[(size_t)(t0 + t) * k + s] = -1;
    cand *cd = malloc((size_t)nt * E * sizeof *cd);
    int *nslot = calloc((size_t)nt, sizeof *nslot);
    if (!cd || !nslot) {
        free(cd), free(nslot);
        return ms_err_set(err, "check: out of memory routing");
    }
    size_t n = 0;
    for (int t = 0; t < nt; t++)
        for (int e = 0; e < E; e++)
            cd[n++] = (cand){scores[(size_t)(t0 + t) * E + e], t, e};
    qsort(cd, n, sizeof *cd, cmp_cand);
    int64_t left = 0;
    for (int d = 0; d < c->eg; d++) left += cap[d];
    for (int limit = c->topk < k ? c->topk : k; limit <= k && left > 0; limit++)
        for (size_t q = 0; q < n && left > 0; q++) {
            int t = cd[q].t, e = cd[q].e, d = c->exp_rank[e];
            if (nslot[t] >= limit || cap[d] <= 0) continue;
            int32_t *a = assign + (size_t)(t0 + t) * k;
            int dup = 0;
            for (int s = 0; s < nslot[t]; s++) dup |= a[s] == e;
            if (dup) continue;
            a[nslot[t]++] = e;
            cap[d]--;
            left--;
        }
    int rc = 0;
    if (left > 0)
        rc = ms_err_set(err, "check: the graph's per-rank row counts for tokens %d..%d cannot "
                             "be met with distinct experts per token", t0, t0 + nt - 1);
    free(cd), free(nslot);
    return rc;
}

/* Gate weights of the k chosen experts: their softmax scores, renormalized. */
static void slot_weights(const ex_check *c, const float *scores, const int32_t *assign,
                         float *w)
{
    for (int t = 0; t < c->T; t++) {
        const float *sr = scores + (size_t)t * c->E;
        const int32_t *a = assign + (size_t)t * c->k;
        float sum = 0;
        for (int s = 0; s < c->k; s++) sum += a[s] >= 0 ? sr[a[s]] : 0.0f;
        for (int s = 0; s < c->k; s++) w[(size_t)t * c->k + s] = a[s] >= 0 ? sr[a[s]] / sum : 0.0f;
    }
}

/* ---- indexing ------------------------------------------------------------------------ */

static size_t pidx(const ex_check *c, int l, int i, int j, int a, int d)
{
    return ((((size_t)l * c->r1 + i) * c->r2 + j) * c->ag + a) * c->eg + d;
}

static size_t tidx(const ex_check *c, int l, int i, int j, int peer, int npeers)
{
    return (((size_t)l * c->r1 + i) * c->r2 + j) * npeers + peer;
}

static size_t sidx(const ex_check *c, int l, int i) /* [L][r1][T][k] rows */
{
    return ((size_t)l * c->r1 + i) * c->T * c->k;
}

static float *mb(const ex_check *c, float *base, int i, int width)
{
    return base + (size_t)i * c->T * width;
}

/* ---- the distributed forward (payload hooks) ------------------------------------------ */

static int combine(ex_check *c, int l, int i, float *out, ms_err *err);

static int ag_task(ex_check *c, uint32_t t, ms_err *err)
{
    int l = c->tl[t], i = c->ti[t], M = c->M, T = c->T;
    float *X = mb(c, c->X, i, M), *Xn = mb(c, c->Xn, i, M), *Y = mb(c, c->Y, i, M);
    float *Hm = mb(c, c->Hm, i, M), *S = mb(c, c->S, i, M);
    float *Q = mb(c, c->Q, i, c->h * c->dk), *K = mb(c, c->K, i, c->hkv * c->dk);
    float *V = mb(c, c->V, i, c->hkv * c->dv), *O = mb(c, c->O, i, c->h * c->dv);
    attn_ws ws = {.cu = c->cu, .lens = c->lens, .kc = c->kc, .vc = c->vc};
    switch (c->tkind[t]) {
    case KD_ATTN:
        if (c->trole[t] == RO_FIRST) {
            if (l == 0) memcpy(X, mb(c, c->x0, i, M), (size_t)T * M * sizeof *X);
            else if (combine(c, l - 1, i, X, err) != 0) return -1;
            return attn_step(c, 1, l, c->my_a, i, &ws, c->w_attn + 4 * l, X, Xn, Q, K, V, O, Y,
                             Hm, err);
        }
        if (c->trole[t] == RO_CORE)
            return attn_step(c, 2, l, c->my_a, i, &ws, c->w_attn + 4 * l, X, Xn, Q, K, V, O, Y,
                             Hm, err);
        if (c->trole[t] == RO_LAST) {
            memset(S, 0, (size_t)T * M * sizeof *S); /* no shared expert: S stays 0 */
            return attn_step(c, 3, l, c->my_a, i, &ws, c->w_attn + 4 * l, X, Xn, Q, K, V, O, Y,
                             Hm, err);
        }
        return 0; /* the attention's other projections: folded into the steps above */
    case KD_SHARED:
        return mlp_sum(c, c->w_sh + 3 * (size_t)c->nsh * l, c->nsh, c->fs, Hm, S, c->tmp, err);
    case KD_DENSE:
        return mlp_sum(c, c->w_de + 3 * l, 1, c->fd, Hm, S, c->tmp, err);
    case KD_GATE: {
        if (kcall(k_gemm_ref(Hm, c->w_gate[l], c->logits, T, c->E, M, 0), "gate", err)) return -1;
        softmax_rows(c->logits, T, c->E);
        int32_t *as = c->assign + sidx(c, l, i);
        for (int j = 0; j < c->r2; j++) {
            int64_t cap[256];
            for (int d = 0; d < c->eg; d++) cap[d] = c->pairs[pidx(c, l, i, j, c->my_a, d)];
            if (route(c, c->logits, j * c->chunk, c->chunk, cap, as, err) != 0)
                return ms_err_prefix(err, "layer %d micro-batch %d chunk %d", l, i, j);
        }
        slot_weights(c, c->logits, as, c->wslot + sidx(c, l, i));
        /* pack each chunk's rows per expert rank in (token, slot) order */
        for (int j = 0; j < c->r2; j++) {
            int32_t next[256] = {0};
            for (int tt = j * c->chunk; tt < (j + 1) * c->chunk; tt++)
                for (int s = 0; s < c->k; s++) {
                    size_t q = sidx(c, l, i) + (size_t)tt * c->k + s;
                    int e = as[(size_t)tt * c->k + s];
                    if (e < 0) continue;
                    int d = c->exp_rank[e];
                    size_t ti2 = tidx(c, l, i, j, d, c->eg);
                    int r = next[d]++;
                    ex_ck_row_pack(Hm + (size_t)tt * M, M, c->B,
                             (unsigned char *)c->ag_send[ti2] + (size_t)r * M * c->B);
                    ((int32_t *)c->ag_meta[ti2])[r] = e;
                    c->slot_d[q] = d;
                    c->slot_row[q] = r;
                }
        }
        return 0;
    }
    default:
        return 0;
    }
}

/* out = Y + S (+ sum over slots, in order, of w * returned row) for layer l, mb i. */
static int combine(ex_check *c, int l, int i, float *out, ms_err *err)
{
    (void)err;
    int M = c->M;
    const float *Y = mb(c, c->Y, i, M), *S = mb(c, c->S, i, M);
    for (size_t q = 0; q < (size_t)c->T * M; q++) out[q] = Y[q] + S[q];
    if (!model_layer_is_moe(&c->m, l)) return 0;
    float *row = c->tmp;
    for (int t = 0; t < c->T; t++)
        for (int s = 0; s < c->k; s++) {
            size_t q = sidx(c, l, i) + (size_t)t * c->k + s;
            if (c->assign[q] < 0) continue;
            int j = t / c->chunk, d = c->slot_d[q];
            const unsigned char *src = c->ag_recv[tidx(c, l, i, j, d, c->eg)];
            ex_ck_row_unpack(src + (size_t)c->slot_row[q] * M * c->B, M, c->B, row);
            float w = c->wslot[q];
            float *o = out + (size_t)t * M;
            for (int x = 0; x < M; x++) o[x] += w * row[x];
        }
    return 0;
}

static int eg_task(ex_check *c, uint32_t t, ms_err *err)
{
    if (c->tkind[t] != KD_EXPERT) return 0;
    int l = c->tl[t], i = c->ti[t], j = c->tj[t], M = c->M, El = c->El;
    size_t R = 0;
    for (int a = 0; a < c->ag; a++) {
        size_t n = (size_t)c->pairs[pidx(c, l, i, j, a, c->my_d)];
        const unsigned char *src = c->eg_recv[tidx(c, l, i, j, a, c->ag)];
        const int32_t *meta = c->eg_meta[tidx(c, l, i, j, a, c->ag)];
        for (size_t r = 0; r < n; r++, R++) {
            ex_ck_row_unpack(src + r * M * c->B, M, c->B, c->xe + R * M);
            int e = meta[r];
            if (e < c->e0 || e >= c->e0 + El) {
                char d[256];
                return ms_err_set(err, "check: %s: row %zu from rank %d is for expert %d, "
                                       "not one of this rank's (%d..%d)",
                                  ex_task_desc(c->g, t, d, sizeof d), r, c->ag_rank[a], e,
                                  c->e0, c->e0 + El - 1);
            }
            c->rexp[R] = e - c->e0;
        }
    }
    if (R == 0) return 0;
    /* group by local expert, stably, then one grouped FFN */
    memset(c->cnt, 0, (size_t)El * sizeof *c->cnt);
    for (size_t r = 0; r < R; r++) c->cnt[c->rexp[r]]++;
    c->off[0] = 0;
    for (int e = 0; e < El; e++) c->off[e + 1] = c->off[e] + c->cnt[e];
    memset(c->cnt, 0, (size_t)El * sizeof *c->cnt);
    for (size_t r = 0; r < R; r++) {
        int e = c->rexp[r];
        c->pos[r] = c->off[e] + c->cnt[e]++;
        memcpy(c->xp + (size_t)c->pos[r] * M, c->xe + r * M, (size_t)M * sizeof *c->xp);
    }
    if (kcall(k_ffn_swiglu_ref(c->xp, c->off, El, M, c->fe, c->w_ex[3 * l], c->w_ex[3 * l + 1],
                               c->w_ex[3 * l + 2], c->yp),
              "expert FFN", err))
        return -1;
    if (c->corrupt && l == c->m.first_dense && i == 0 && j == 0) /* test hook: one row */
        for (int x = 0; x < M; x++) c->yp[(size_t)c->pos[0] * M + x] *= 1.01f;
    R = 0;
    for (int a = 0; a < c->ag; a++) {
        size_t n = (size_t)c->pairs[pidx(c, l, i, j, a, c->my_d)];
        unsigned char *dst = c->eg_send[tidx(c, l, i, j, a, c->ag)];
        for (size_t r = 0; r < n; r++, R++)
            ex_ck_row_pack(c->yp + (size_t)c->pos[R] * M, M, c->B, dst + r * M * c->B);
    }
    return 0;
}

static int hook_compute(void *user, uint32_t t, ms_err *err)
{
    ex_check *c = user;
    int rc = c->tkind[t] == KD_EXPERT ? eg_task(c, t, err) : ag_task(c, t, err);
    if (rc != 0 && strncmp(err->msg, "check", 5) == 0) {
        char d[256];
        ms_err_prefix(err, "%s", ex_task_desc(c->g, t, d, sizeof d));
    }
    return rc;
}

static void *hook_xfer_buf(void *user, uint32_t x)
{
    ex_check *c = user;
    return c->xbuf[x];
}

static void hook_xfer_meta(void *user, uint32_t x, void **buf, size_t *bytes)
{
    ex_check *c = user;
    *buf = c->xmeta[x];
    *bytes = c->xmeta_n[x];
}

/* ---- setup --------------------------------------------------------------------------- */

static int parse_label(const char *s, int *l, int *i, int *j)
{
    static const char *const names[] = {"", "attn", "gate", "shared", "dense", "a2e", "expert", "e2a"};
    char kind[16];
    int n = 0;
    *j = 0;
    if (!s || sscanf(s, "L%d.mb%d.%15[a-z0-9]%n", l, i, kind, &n) != 3 || *l < 0 || *i < 0)
        return KD_NONE;
    if (s[n] == '.') {
        int m = 0;
        if (sscanf(s + n, ".c%d%n", j, &m) != 1 || s[n + m] != 0 || *j < 0) return KD_NONE;
    } else if (s[n] != 0) {
        return KD_NONE;
    }
    for (int k = 1; k < 8; k++)
        if (!strcmp(kind, names[k])) return k;
    return KD_NONE;
}

void ex_check_free(ex_check *c)
{
    if (!c) return;
    ex_tcheck_free(c->train);
    free(c->ag_rank), free(c->eg_rank), free(c->ag_index), free(c->eg_index);
    free(c->exp_rank), free(c->e_first);
    free(c->tkind), free(c->trole), free(c->tl), free(c->ti), free(c->tj), free(c->pairs);
    free(c->block), free(c->xbuf), free(c->xmeta), free(c->xmeta_n);
    free(c->ag_send), free(c->ag_meta), free(c->ag_recv);
    free(c->eg_send), free(c->eg_meta), free(c->eg_recv);
    free(c->x0), free(c->X), free(c->Xn), free(c->Q), free(c->K), free(c->V), free(c->O);
    free(c->Y), free(c->Hm), free(c->S), free(c->logits), free(c->tmp);
    free(c->assign), free(c->slot_d), free(c->slot_row), free(c->wslot), free(c->cu);
    free(c->lens), free(c->kc), free(c->vc);
    size_t nw = (size_t)c->L;
    if (c->w_attn)
        for (size_t q = 0; q < 4 * nw; q++) free(c->w_attn[q]);
    if (c->w_gate)
        for (size_t q = 0; q < nw; q++) free(c->w_gate[q]);
    if (c->w_sh)
        for (size_t q = 0; q < 3 * nw * (size_t)c->nsh; q++) free(c->w_sh[q]);
    if (c->w_de)
        for (size_t q = 0; q < 3 * nw; q++) free(c->w_de[q]);
    if (c->w_ex)
        for (size_t q = 0; q < 3 * nw; q++) free(c->w_ex[q]);
    free(c->w_attn), free(c->w_gate), free(c->w_sh), free(c->w_de), free(c->w_ex);
    free(c->xe), free(c->xp), free(c->yp), free(c->rexp), free(c->cnt), free(c->off), free(c->pos);
    free(c);
}

const ex_payload *ex_check_payload(ex_check *c)
{
    return c->train ? ex_tcheck_payload(c->train) : &c->payload;
}

static float *wnew(size_t n, uint64_t seed, int l, int kind, int idx, int fan_in, int *oom)
{
    float *w = malloc((n ? n : 1) * sizeof *w);
    if (!w) {
        *oom = 1;
        return NULL;
    }
    ex_ck_fill_w(w, n, seed, l, kind, idx, fan_in);
    return w;
}

/* Reads the graph's structure and dimensions (the same on every rank). */
static int read_structure(ex_check *c, ms_err *err)
{
    const tg_graph *g = c->g;
    int nr = g->nranks;
    c->tkind = calloc(g->ntasks + 1, 1);
    c->trole = calloc(g->ntasks + 1, 1);
    c->tl = calloc(g->ntasks + 1, sizeof *c->tl);
    c->ti = calloc(g->ntasks + 1, sizeof *c->ti);
    c->tj = calloc(g->ntasks + 1, sizeof *c->tj);
    c->ag_index = malloc((size_t)nr * sizeof *c->ag_index);
    c->eg_index = malloc((size_t)nr * sizeof *c->eg_index);
    c->ag_rank = malloc((size_t)nr * sizeof *c->ag_rank);
    c->eg_rank = malloc((size_t)nr * sizeof *c->eg_rank);
    if (!c->tkind || !c->trole || !c->tl || !c->ti || !c->tj || !c->ag_index || !c->eg_index ||
        !c->ag_rank || !c->eg_rank)
        return ms_err_set(err, "check: out of memory");
    int attn_core = -1;
    uint32_t gate_t = TG_NONE, exp_t = TG_NONE;
    for (int r = 0; r < nr; r++) c->ag_index[r] = c->eg_index[r] = -1;
    char d[256];
    for (uint32_t t = 0; t < g->ntasks; t++) {
        int l, i, j;
        int kd = parse_label(tg_str(g, g->label[t]), &l, &i, &j);
        tg_kind kind = tg_task_kind(g, t);
        if (kind == TG_KIND_COLL)
            return ms_err_set(err, "check: %s: collectives are not part of DEP inference graphs; "
                                   "--check runs naive, pppipe, findep and ep graphs",
                              ex_task_desc(g, t, d, sizeof d));
        if (kd == KD_NONE && kind != TG_KIND_DELAY)
            return ms_err_set(err, "check: %s: label not of the DEP form "
                                   "L<layer>.mb<i>.<attn|gate|shared|dense|a2e|expert|e2a>[.c<j>]"
                                   " (--check runs naive, pppipe, findep and ep graphs)",
                              ex_task_desc(g, t, d, sizeof d));
        if (kd == KD_NONE) continue;
        c->tkind[t] = (uint8_t)kd;
        c->tl[t] = l, c->ti[t] = i, c->tj[t] = j;
        if (l + 1 > c->L) c->L = l + 1;
        if (i + 1 > c->r1) c->r1 = i + 1;
        if (j + 1 > c->r2) c->r2 = j + 1;
        if (kd == KD_ATTN) c->ag_index[g->rank[t]] = 1;
        if (kd == KD_EXPERT) c->eg_index[g->rank[t]] = 1;
        if (kd == KD_ATTN && g->op[t] == TG_OP_ATTN && attn_core < 0) attn_core = (int)t;
        if (kd == KD_GATE && gate_t == TG_NONE) gate_t = t;
        if (kd == KD_EXPERT && exp_t == TG_NONE) exp_t = t;
        if ((kd == KD_A2E || kd == KD_E2A) != (kind == TG_KIND_XCHG))
            return ms_err_set(err, "check: %s: a %s task must %sbe an xchg",
                              ex_task_desc(g, t, d, sizeof d), kd == KD_A2E ? "a2e" : "compute",
                              kind == TG_KIND_XCHG ? "not " : "");
    }
    for (int r = 0; r < nr; r++) {
        if (c->ag_index[r] > 0) c->ag_rank[c->ag] = r, c->ag_index[r] = c->ag++;
        else c->ag_index[r] = -1;
        if (c->eg_index[r] > 0) c->eg_rank[c->eg] = r, c->eg_index[r] = c->eg++;
        else c->eg_index[r] = -1;
    }
    if (c->ag == 0 || attn_core < 0)
        return ms_err_set(err, "check: the graph has no attention tasks (L<l>.mb<i>.attn with an "
                               "attn op): not a DEP inference graph");
    if (c->eg == 0 || gate_t == TG_NONE || exp_t == TG_NONE)
        return ms_err_set(err, "check: the graph has no MoE layer (gate and expert tasks)");
    const int64_t *a = tg_task_args(g, (uint32_t)attn_core);
    c->b = (int)a[0], c->sq = (int)a[1], c->skv = (int)a[2], c->h = (int)a[3], c->hkv = (int)a[4];
    c->dk = (int)a[5], c->dv = (int)a[6];
    if (a[1] != a[2] && a[1] != 1)
        return ms_err_set(err, "check: %s has sq %lld query tokens against skv %lld: --check "
                               "runs prefill (sq = skv) and decode (sq = 1) graphs",
                          ex_task_desc(g, (uint32_t)attn_core, d, sizeof d), (long long)a[1],
                          (long long)a[2]);
    c->T = c->b * c->sq;
    const int64_t *ga = tg_task_args(g, gate_t);
    if (ga[0] != c->T)
        return ms_err_set(err, "check: %s scores %lld tokens, but the attention covers %d",
                          ex_task_desc(g, gate_t, d, sizeof d), (long long)ga[0], c->T);
    if (c->T % c->r2)
        return ms_err_set(err, "check: %d chunks do not divide %d tokens", c->r2, c->T);
    c->chunk = c->T / c->r2;
    if (ga[1] != c->m.hidden || ga[2] != c->m.routed_experts)
        return ms_err_set(err, "check: %s has hidden %lld and %lld experts, but model '%s' has "
                               "%d and %d: give the model the graph was built for (--model)",
                          ex_task_desc(g, gate_t, d, sizeof d), (long long)ga[1],
                          (long long)ga[2], c->m.name, c->m.hidden, c->m.routed_experts);
    if (tg_task_args(g, exp_t)[3] != c->m.expert_inter)
        return ms_err_set(err, "check: %s has inter %lld but model '%s' has %d",
                          ex_task_desc(g, exp_t, d, sizeof d),
                          (long long)tg_task_args(g, exp_t)[3], c->m.name, c->m.expert_inter);
    if (c->L != c->m.layers)
        return ms_err_set(err, "check: the graph has %d layers but model '%s' has %d (give "
                               "--layers %d)", c->L, c->m.name, c->m.layers, c->L);
    return 0;
}

ex_check *ex_check_create(const tg_graph *g, const ex_options *opt, int rank, ms_err *err)
{
    ex_check *c = calloc(1, sizeof *c);
    if (!c) {
        ms_err_set(err, "check: out of memory");
        return NULL;
    }
    c->g = g;
    c->rank = rank;
    c->seed = opt->seed;
    c->my_a = c->my_d = -1;
    if (ex_tcheck_is_train(g)) { /* training graphs (workloads/moe_train.c) */
        c->train = ex_tcheck_create(g, opt, rank, err);
        if (!c->train) {
            free(c);
            return NULL;
        }
        return c;
    }
    const char *cor = getenv(CORRUPT_ENV);
    c->corrupt = cor && *cor && strcmp(cor, "0") != 0;
    if (!opt->model) {
        ms_err_set(err, "check: the model the graph was built for is needed (--model)");
        goto fail;
    }
    if (model_load(opt->model, &c->m, err) != 0) goto fail;
    if (opt->model_layers > 0 && model_keep_layers(&c->m, opt->model_layers, err) != 0) goto fail;
    if (read_structure(c, err) != 0) goto fail;
    c->M = c->m.hidden, c->topk = c->k = c->m.top_k, c->E = c->m.routed_experts, c->B = c->m.dtype_bytes;
    c->fe = c->m.expert_inter, c->fs = c->m.shared_inter, c->nsh = c->m.shared_experts;
    c->fd = c->m.dense_inter;
    if (c->B != 2 && c->B != 4) {
        ms_err_set(err, "check: model '%s' moves %d-byte activations; check mode sends bf16 (2) "
                        "or fp32 (4)", c->m.name, c->B);
        goto fail;
    }
    if (c->eg > 256 || c->eg > c->E) {
        ms_err_set(err, "check: %d expert ranks for %d experts: check mode needs at most one "
                        "rank per expert (and at most 256 ranks)", c->eg, c->E);
        goto fail;
    }
    const tg_graph *gg = g;
    c->exp_rank = malloc((size_t)c->E * sizeof *c->exp_rank);
    c->e_first = malloc(((size_t)c->eg + 1) * sizeof *c->e_first);
    if (!c->exp_rank || !c->e_first) {
        ms_err_set(err, "check: out of memory");
        goto fail;
    }
    for (int d = 0; d <= c->eg; d++) c->e_first[d] = (int)((int64_t)d * c->E / c->eg);
    for (int d = 0; d < c->eg; d++) {
        for (int e = c->e_first[d]; e < c->e_first[d + 1]; e++) c->exp_rank[e] = d;
    }
    c->my_a = c->ag_index[rank];
    c->my_d = c->eg_index[rank];

    /* rows dispatched per (layer, mb, chunk, AG, EG), from the AG ranks' a2e sends */
    size_t np = (size_t)c->L * c->r1 * c->r2 * c->ag * c->eg;
    c->pairs = calloc(np + 1, sizeof *c->pairs);
    if (!c->pairs) {
        ms_err_set(err, "check: out of memory");
        goto fail;
    }
    size_t row_b = (size_t)c->M * c->B;
    char d[256];
    for (uint32_t t = 0; t < gg->ntasks; t++) {
        if (c->tkind[t] != KD_A2E || c->ag_index[gg->rank[t]] < 0) continue;
        for (uint32_t x = gg->xfer_off[t]; x < gg->xfer_off[t + 1]; x++) {
            int dd = c->eg_index[gg->xfer_peer[x]];
            if (!gg->xfer_send[x]) continue; /* ep: the same task also receives */
            if (dd < 0 || (size_t)gg->xfer_bytes[x] % row_b) {
                ms_err_set(err, "check: %s: transfer to rank %d of %lld bytes is not a dispatch of "
                                "whole %zu-byte rows to an expert rank",
                           ex_task_desc(gg, t, d, sizeof d), gg->xfer_peer[x],
                           (long long)gg->xfer_bytes[x], row_b);
                goto fail;
            }
            c->pairs[pidx(c, c->tl[t], c->ti[t], c->tj[t], c->ag_index[gg->rank[t]], dd)] +=
                gg->xfer_bytes[x] / (int64_t)row_b;
        }
    }
    /* slots per token: top_k, or more where a source dispatches more rows than
     * chunk x top_k (the graph spreads each expert's rows over the sources unevenly) */
    for (int l = 0; l < c->L; l++)
        for (int i = 0; i < c->r1 && model_layer_is_moe(&c->m, l); i++)
            for (int j = 0; j < c->r2; j++)
                for (int aa = 0; aa < c->ag; aa++) {
                    int64_t s = 0;
                    for (int dd = 0; dd < c->eg; dd++) s += c->pairs[pidx(c, l, i, j, aa, dd)];
                    int64_t need = (s + c->chunk - 1) / c->chunk;
                    if (need > c->E) {
                        ms_err_set(err, "check: layer %d mb %d chunk %d: rank %d dispatches %lld "
                                        "rows for %d tokens, more than one per expert",
                                   l, i, j, c->ag_rank[aa], (long long)s, c->chunk);
                        goto fail;
                    }
                    if (need > c->k) c->k = (int)need;
                }

    /* memory estimate before allocating weights */
    double wb = 0;
    size_t Mz = (size_t)c->M;
    if (c->my_d >= 0) {
        c->e0 = c->e_first[c->my_d];
        c->El = c->e_first[c->my_d + 1] - c->e0;
        wb = 4.0 * c->L * c->El * 3.0 * Mz * c->fe;
    }
    if (c->my_a >= 0) {
        wb += 4.0 * c->L * (Mz * (2.0 * c->h * c->dk / 2 + c->hkv * (c->dk + c->dv)) +
                           (double)c->h * c->dv * Mz + Mz * c->E +
                           3.0 * Mz * ((double)c->nsh * c->fs + c->fd));
    }
    if (wb > MEM_LIMIT_BYTES) {
        ms_err_set(err, "check: rank %d would need %.1f GiB of weights (limit %.0f GiB): use "
                        "fewer layers (--layers) or a smaller model",
                   rank, wb / (1 << 30), MEM_LIMIT_BYTES / (1 << 30));
        goto fail;
    }

    /* comm buffers of this rank: one region per transfer, nothing reused */
    c->xbuf = calloc(gg->nxfers + 1, sizeof *c->xbuf);
    c->xmeta = calloc(gg->nxfers + 1, sizeof *c->xmeta);
    c->xmeta_n = calloc(gg->nxfers + 1, sizeof *c->xmeta_n);
    size_t nab = (size_t)c->L * c->r1 * c->r2 * c->eg, neb = (size_t)c->L * c->r1 * c->r2 * c->ag;
    c->ag_send = calloc(nab, sizeof *c->ag_send);
    c->ag_meta = calloc(nab, sizeof *c->ag_meta);
    c->ag_recv = calloc(nab, sizeof *c->ag_recv);
    c->eg_send = calloc(neb, sizeof *c->eg_send);
    c->eg_meta = calloc(neb, sizeof *c->eg_meta);
    c->eg_recv = calloc(neb, sizeof *c->eg_recv);
    if (!c->xbuf || !c->xmeta || !c->xmeta_n || !c->ag_send || !c->ag_meta || !c->ag_recv ||
        !c->eg_send || !c->eg_meta || !c->eg_recv) {
        ms_err_set(err, "check: out of memory");
        goto fail;
    }
    size_t total = 0;
    for (uint32_t t = 0; t < gg->ntasks; t++) {
        if (gg->rank[t] != rank || tg_task_kind(gg, t) != TG_KIND_XCHG) continue;
        for (uint32_t x = gg->xfer_off[t]; x < gg->xfer_off[t + 1]; x++) {
            total += ((size_t)gg->xfer_bytes[x] + 15) / 16 * 16;
            if (c->tkind[t] == KD_A2E) total += ((size_t)gg->xfer_bytes[x] / row_b * 4 + 15) / 16 * 16;
        }
    }
    c->block = malloc(total + 16);
    if (!c->block) {
        ms_err_set(err, "check: out of memory for %zu bytes of exchange buffers", total);
        goto fail;
    }
    size_t at = 0;
    for (uint32_t t = 0; t < gg->ntasks; t++) {
        if (gg->rank[t] != rank || tg_task_kind(gg, t) != TG_KIND_XCHG) continue;
        for (uint32_t x = gg->xfer_off[t]; x < gg->xfer_off[t + 1]; x++) {
            int p = gg->xfer_peer[x], send = gg->xfer_send[x];
            int a2e = c->tkind[t] == KD_A2E;
            /* attention side: a2e sends, e2a receives; expert side: the other two */
            int ag_side = a2e == send;
            int pi = ag_side ? c->eg_index[p] : c->ag_index[p];
            if (pi < 0 || (ag_side ? c->my_a : c->my_d) < 0) {
                ms_err_set(err, "check: %s: a %s %s rank %d does not fit the DEP roles "
                                "(attention ranks send a2e and receive e2a, expert ranks the "
                                "reverse)", ex_task_desc(gg, t, d, sizeof d),
                           send ? "send to" : "receive from", a2e ? "a2e" : "e2a", p);
                goto fail;
            }
            size_t q = tidx(c, c->tl[t], c->ti[t], c->tj[t], pi, ag_side ? c->eg : c->ag);
            c->xbuf[x] = c->block + at;
            at += ((size_t)gg->xfer_bytes[x] + 15) / 16 * 16;
            if (a2e) {
                c->xmeta[x] = c->block + at;
                c->xmeta_n[x] = (size_t)gg->xfer_bytes[x] / row_b * 4;
                at += (c->xmeta_n[x] + 15) / 16 * 16;
                *(ag_side ? &c->ag_meta[q] : &c->eg_meta[q]) = c->xmeta[x];
            }
            if (ag_side) *(send ? &c->ag_send[q] : &c->ag_recv[q]) = c->xbuf[x];
            else *(send ? &c->eg_send[q] : &c->eg_recv[q]) = c->xbuf[x];
        }
    }

    int oom = 0;
    size_t T = (size_t)c->T;
    if (c->my_a >= 0) {
        size_t r1 = (size_t)c->r1;
        c->x0 = malloc(r1 * T * Mz * sizeof(float));
        c->X = malloc(r1 * T * Mz * sizeof(float));
        c->Xn = malloc(r1 * T * Mz * sizeof(float));
        c->Y = malloc(r1 * T * Mz * sizeof(float));
        c->Hm = malloc(r1 * T * Mz * sizeof(float));
        c->S = calloc(r1 * T * Mz, sizeof(float));
        c->Q = malloc(r1 * T * c->h * c->dk * sizeof(float));
        c->K = malloc(r1 * T * c->hkv * c->dk * sizeof(float));
        c->V = malloc(r1 * T * c->hkv * c->dv * sizeof(float));
        c->O = malloc(r1 * T * c->h * c->dv * sizeof(float));
        c->logits = malloc(T * c->E * sizeof(float));
        c->tmp = malloc(T * Mz * sizeof(float));
        size_t ns = (size_t)c->L * r1 * T * c->k;
        c->assign = calloc(ns, sizeof *c->assign);
        c->slot_d = calloc(ns, sizeof *c->slot_d);
        c->slot_row = calloc(ns, sizeof *c->slot_row);
        c->wslot = calloc(ns, sizeof *c->wslot);
        c->cu = malloc(((size_t)c->b + 1) * sizeof *c->cu);
        c->lens = malloc(((size_t)c->b + 1) * sizeof *c->lens);
        c->kc = malloc(((size_t)c->b * c->skv * c->hkv * c->dk + 1) * sizeof *c->kc);
        c->vc = malloc(((size_t)c->b * c->skv * c->hkv * c->dv + 1) * sizeof *c->vc);
        c->w_attn = calloc(4 * (size_t)c->L, sizeof *c->w_attn);
        c->w_gate = calloc((size_t)c->L, sizeof *c->w_gate);
        c->w_sh = calloc(3 * (size_t)c->L * (c->nsh ? c->nsh : 1), sizeof *c->w_sh);
        c->w_de = calloc(3 * (size_t)c->L, sizeof *c->w_de);
        oom = !c->x0 || !c->X || !c->Xn || !c->Y || !c->Hm || !c->S || !c->Q || !c->K ||
              !c->V || !c->O || !c->logits || !c->tmp || !c->assign || !c->slot_d ||
              !c->slot_row || !c->wslot || !c->cu || !c->lens || !c->kc || !c->vc || !c->w_attn || !c->w_gate || !c->w_sh ||
              !c->w_de;
        if (!oom) {
            for (int i = 0; i <= c->b; i++) c->cu[i] = i * c->sq;
            for (int i = 0; i < c->r1; i++) /* the inputs: per AG rank and micro-batch */
                k_fill_uniform(c->x0 + (size_t)i * T * Mz, T * Mz,
                               ex_ck_mix(c->seed, -1, 99, c->my_a * 4096 + i), -1.0f, 1.0f);
        }
        for (int l = 0; l < c->L && !oom; l++) {
            float **w = c->w_attn + 4 * l;
            w[0] = wnew(Mz * c->h * c->dk, c->seed, l, W_Q, 0, c->M, &oom);
            w[1] = wnew(Mz * c->hkv * c->dk, c->seed, l, W_K, 0, c->M, &oom);
            w[2] = wnew(Mz * c->hkv * c->dv, c->seed, l, W_V, 0, c->M, &oom);
            w[3] = wnew((size_t)c->h * c->dv * Mz, c->seed, l, W_O, 0, c->h * c->dv, &oom);
            if (model_layer_is_moe(&c->m, l)) {
                c->w_gate[l] = wnew(Mz * c->E, c->seed, l, W_G, 0, c->M, &oom);
                for (int s = 0; s < c->nsh; s++) {
                    float **ws = c->w_sh + 3 * ((size_t)c->nsh * l + s);
                    ws[0] = wnew(Mz * c->fs, c->seed, l, W_SH1, s, c->M, &oom);
                    ws[1] = wnew(Mz * c->fs, c->seed, l, W_SH3, s, c->M, &oom);
                    ws[2] = wnew((size_t)c->fs * Mz, c->seed, l, W_SH2, s, c->fs, &oom);
                }
            } else {
                float **wd = c->w_de + 3 * l;
                wd[0] = wnew(Mz * c->fd, c->seed, l, W_DE1, 0, c->M, &oom);
                wd[1] = wnew(Mz * c->fd, c->seed, l, W_DE3, 0, c->M, &oom);
                wd[2] = wnew((size_t)c->fd * Mz, c->seed, l, W_DE2, 0, c->fd, &oom);
            }
        }
    }
    if (c->my_d >= 0 && !oom) {
        c->w_ex = calloc(3 * (size_t)c->L, sizeof *c->w_ex);
        oom = !c->w_ex;
        size_t ef = Mz * c->fe;
        for (int l = 0; l < c->L && !oom; l++) {
            if (!model_layer_is_moe(&c->m, l)) continue;
            float **w = c->w_ex + 3 * l;
            for (int q = 0; q < 3 && !oom; q++) {
                w[q] = malloc((size_t)c->El * ef * sizeof(float));
                oom = !w[q];
            }
            for (int e = 0; e < c->El && !oom; e++) { /* the same values the reference draws */
                ex_ck_fill_w(w[0] + e * ef, ef, c->seed, l, W_E1, c->e0 + e, c->M);
                ex_ck_fill_w(w[1] + e * ef, ef, c->seed, l, W_E3, c->e0 + e, c->M);
                ex_ck_fill_w(w[2] + e * ef, ef, c->seed, l, W_E2, c->e0 + e, c->fe);
            }
        }
        for (size_t q = 0; q < np; q++) { /* the largest chunk this rank receives */
            size_t dd = q % c->eg, s = 0;
            if ((int)dd != c->my_d || q % ((size_t)c->ag * c->eg) >= (size_t)c->eg) continue;
            for (int aa = 0; aa < c->ag; aa++) s += (size_t)c->pairs[q + (size_t)aa * c->eg];
            if (s > c->max_rows) c->max_rows = s;
        }
        size_t R = c->max_rows ? c->max_rows : 1;
        c->xe = malloc(R * Mz * sizeof(float));
        c->xp = malloc(R * Mz * sizeof(float));
        c->yp = malloc(R * Mz * sizeof(float));
        c->rexp = malloc(R * sizeof *c->rexp);
        c->pos = malloc(R * sizeof *c->pos);
        c->cnt = malloc(((size_t)c->El + 1) * sizeof *c->cnt);
        c->off = malloc(((size_t)c->El + 1) * sizeof *c->off);
        oom |= !c->xe || !c->xp || !c->yp || !c->rexp || !c->pos || !c->cnt || !c->off;
    }
    if (oom) {
        ms_err_set(err, "check: rank %d: out of memory for weights and activations", rank);
        goto fail;
    }
    c->payload = (ex_payload){.user = c, .compute = hook_compute, .xfer_buf = hook_xfer_buf,
                              .xfer_meta = hook_xfer_meta};
    /* roles of the attention tasks: first, the core (op attn), last */
    {
        uint32_t *last = malloc(((size_t)c->L * c->r1 * c->ag + 1) * sizeof *last);
        if (!last) {
            ms_err_set(err, "check: out of memory");
            goto fail;
        }
        for (size_t q = 0; q < (size_t)c->L * c->r1 * c->ag; q++) last[q] = TG_NONE;
        for (uint32_t t = 0; t < gg->ntasks; t++) {
            if (c->tkind[t] != KD_ATTN) continue;
            size_t q = ((size_t)c->tl[t] * c->r1 + c->ti[t]) * c->ag + c->ag_index[gg->rank[t]];
            if (last[q] == TG_NONE) c->trole[t] = RO_FIRST;
            else if (gg->op[t] == TG_OP_ATTN) c->trole[t] = RO_CORE;
            last[q] = t;
        }
        int bad = -1;
        for (size_t q = 0; q < (size_t)c->L * c->r1 * c->ag && bad < 0; q++)
            if (last[q] == TG_NONE || c->trole[last[q]] != RO_NONE) bad = (int)q;
            else c->trole[last[q]] = RO_LAST;
        if (bad >= 0) {
            int aa = bad % c->ag, i = (bad / c->ag) % c->r1, l = bad / (c->ag * c->r1);
            ms_err_set(err, "check: the attention segment L%d.mb%d.attn of rank %d needs a first "
                            "projection, the attn op, then an output projection",
                       l, i, c->ag_rank[aa]);
            free(last);
            goto fail;
        }
        free(last);
    }
    /* compute tasks of a rank must share one stream: the hooks share scratch buffers */
    for (uint32_t t = 0, st = TG_NONE; t < gg->ntasks; t++) {
        if (gg->rank[t] != rank || tg_task_kind(gg, t) != TG_KIND_COMPUTE) continue;
        if (st == TG_NONE) st = gg->stream[t];
        if (gg->stream[t] != st) {
            ms_err_set(err, "check: %s: rank %d runs compute on two streams; check mode needs "
                            "one", ex_task_desc(gg, t, d, sizeof d), rank);
            goto fail;
        }
    }
    return c;
fail:
    ms_err_prefix(err, "rank %d", rank);
    ex_check_free(c);
    return NULL;
}

/* ---- the reference forward on rank 0 --------------------------------------------------- */

/* Runs every AG rank's micro-batches through every layer in one process, with the
 * routing the run chose (assign_all[a][L][r1][T][k], checked against the graph's counts
 * first), and returns the final hidden states in out[a][r1][T][M]. */
static int reference(ex_check *c, const int32_t *assign_all, float *out, ms_err *err)
{
    size_t T = (size_t)c->T, Mz = (size_t)c->M, n_mb = (size_t)c->ag * c->r1;
    size_t k = (size_t)c->k, ns = (size_t)c->L * c->r1 * T * k;
    float *X = malloc(n_mb * T * Mz * sizeof *X), *Y = malloc(n_mb * T * Mz * sizeof *Y);
    float *Hm = malloc(n_mb * T * Mz * sizeof *Hm), *S = malloc(n_mb * T * Mz * sizeof *S);
    float *Xn = malloc(T * Mz * sizeof *Xn), *tmp = malloc(T * Mz * sizeof *tmp);
    float *Q = malloc(T * c->h * c->dk * sizeof *Q), *K = malloc(T * c->hkv * c->dk * sizeof *K);
    float *V = malloc(T * c->hkv * c->dv * sizeof *V), *O = malloc(T * c->h * c->dv * sizeof *O);
    float *sc = malloc(T * c->E * sizeof *sc), *w = malloc(n_mb * T * k * sizeof *w);
    float *yslot = malloc(n_mb * T * k * Mz * sizeof *yslot);
    size_t ef = Mz * c->fe, maxf = (size_t)(c->fd > c->fs ? c->fd : c->fs);
    if (maxf < (size_t)c->fe) maxf = (size_t)c->fe;
    float *wa[4] = {0}, *wg = malloc(Mz * c->E * sizeof *wg);
    float *w1 = malloc(Mz * maxf * sizeof *w1), *w3 = malloc(Mz * maxf * sizeof *w3);
    float *w2 = malloc(Mz * maxf * sizeof *w2);
    float *xr = malloc(n_mb * T * k * Mz * sizeof *xr), *yr = malloc(n_mb * T * k * Mz * sizeof *yr);
    size_t *who = malloc(n_mb * T * k * sizeof *who);
    int32_t *cu = malloc(((size_t)c->b + 1) * sizeof *cu);
    attn_ws ws = {.cu = cu, .lens = malloc(((size_t)c->b + 1) * sizeof(int32_t)),
                  .kc = malloc(((size_t)c->b * c->skv * c->hkv * c->dk + 1) * sizeof(float)),
                  .vc = malloc(((size_t)c->b * c->skv * c->hkv * c->dv + 1) * sizeof(float))};
    wa[0] = malloc(Mz * c->h * c->dk * sizeof(float));
    wa[1] = malloc(Mz * c->hkv * c->dk * sizeof(float));
    wa[2] = malloc(Mz * c->hkv * c->dv * sizeof(float));
    wa[3] = malloc((size_t)c->h * c->dv * Mz * sizeof(float));
    int rc = -1;
    if (!X || !Y || !Hm || !S || !Xn || !tmp || !Q || !K || !V || !O || !sc || !w || !yslot ||
        !wg || !w1 || !w3 || !w2 || !xr || !yr || !who || !cu || !ws.lens || !ws.kc || !ws.vc || !wa[0] || !wa[1] || !wa[2] ||
        !wa[3]) {
        ms_err_set(err, "check: rank 0: out of memory for the reference forward");
        goto out;
    }
    for (int i = 0; i <= c->b; i++) cu[i] = i * c->sq;
    for (int a = 0; a < c->ag; a++)
        for (int i = 0; i < c->r1; i++)
            k_fill_uniform(X + ((size_t)a * c->r1 + i) * T * Mz, T * Mz,
                           ex_ck_mix(c->seed, -1, 99, a * 4096 + i), -1.0f, 1.0f);
    for (int l = 0; l < c->L && rc != -2; l++) {
        ex_ck_fill_w(wa[0], Mz * c->h * c->dk, c->seed, l, W_Q, 0, c->M);
        ex_ck_fill_w(wa[1], Mz * c->hkv * c->dk, c->seed, l, W_K, 0, c->M);
        ex_ck_fill_w(wa[2], Mz * c->hkv * c->dv, c->seed, l, W_V, 0, c->M);
        ex_ck_fill_w(wa[3], (size_t)c->h * c->dv * Mz, c->seed, l, W_O, 0, c->h * c->dv);
        int moe = model_layer_is_moe(&c->m, l);
        for (size_t q = 0; q < n_mb; q++) {
            float *Xq = X + q * T * Mz, *Yq = Y + q * T * Mz, *Hq = Hm + q * T * Mz;
            int a = (int)(q / c->r1), i = (int)(q % c->r1);
            for (int step = 1; step <= 3; step++)
                if (attn_step(c, step, l, a, i, &ws, wa, Xq, Xn, Q, K, V, O, Yq, Hq, err))
                    goto out;
        }
        /* shared experts (or the dense MLP), one expert's weights at a time */
        memset(S, 0, n_mb * T * Mz * sizeof *S);
        int nmlp = moe ? c->nsh : 1, f = moe ? c->fs : c->fd;
        int32_t offT[2] = {0, c->T};
        for (int s = 0; s < nmlp; s++) {
            ex_ck_fill_w(w1, Mz * f, c->seed, l, moe ? W_SH1 : W_DE1, s, c->M);
            ex_ck_fill_w(w3, Mz * f, c->seed, l, moe ? W_SH3 : W_DE3, s, c->M);
            ex_ck_fill_w(w2, (size_t)f * Mz, c->seed, l, moe ? W_SH2 : W_DE2, s, f);
            for (size_t q = 0; q < n_mb; q++) {
                if (kcall(k_ffn_swiglu_ref(Hm + q * T * Mz, offT, 1, c->M, f, w1, w3, w2, tmp),
                          "reference shared expert", err))
                    goto out;
                for (size_t x = 0; x < T * Mz; x++) S[q * T * Mz + x] += tmp[x];
            }
        }
        if (moe) {
            ex_ck_fill_w(wg, Mz * c->E, c->seed, l, W_G, 0, c->M);
            for (size_t q = 0; q < n_mb; q++) {
                int a = (int)(q / c->r1), i = (int)(q % c->r1);
                const int32_t *as = assign_all + (size_t)a * ns + sidx(c, l, i);
                /* the run's routing must respect the graph's counts and pick distinct experts */
                for (int j = 0; j < c->r2; j++) {
                    int64_t cnt[256] = {0};
                    for (size_t t = (size_t)j * c->chunk; t < (size_t)(j + 1) * c->chunk; t++)
                        for (size_t s = 0; s < k; s++) {
                            int e = as[t * k + s];
                            if (e == -1) continue; /* an empty slot */
                            int dup = 0;
                            for (size_t s2 = 0; s2 < s; s2++) dup |= as[t * k + s2] == e;
                            if (e < 0 || e >= c->E || dup) {
                                ms_err_set(err, "check: rank %d layer %d mb %d token %zu: "
                                                "expert %d in slot %zu is %s", c->ag_rank[a], l,
                                           i, t, e, s, dup ? "repeated" : "out of range");
                                goto out;
                            }
                            cnt[c->exp_rank[e]]++;
                        }
                    for (int d = 0; d < c->eg; d++)
                        if (cnt[d] != c->pairs[pidx(c, l, i, j, a, d)]) {
                            ms_err_set(err, "check: rank %d layer %d mb %d chunk %d sent %lld "
                                            "rows to rank %d, the graph says %lld",
                                       c->ag_rank[a], l, i, j, (long long)cnt[d],
                                       c->eg_rank[d], (long long)c->pairs[pidx(c, l, i, j, a, d)]);
                            goto out;
                        }
                }
                if (kcall(k_gemm_ref(Hm + q * T * Mz, wg, sc, c->T, c->E, c->M, 0),
                          "reference gate", err))
                    goto out;
                softmax_rows(sc, c->T, c->E);
                slot_weights(c, sc, as, w + q * T * k);
            }
            /* routed experts, one expert's weights at a time */
            for (int e = 0; e < c->E; e++) {
                size_t n = 0;
                for (size_t q = 0; q < n_mb; q++) {
                    int a = (int)(q / c->r1), i = (int)(q % c->r1);
                    const int32_t *as = assign_all + (size_t)a * ns + sidx(c, l, i);
                    for (size_t ts = 0; ts < T * k; ts++)
                        if (as[ts] == e) {
                            memcpy(xr + n * Mz, Hm + (q * T + ts / k) * Mz, Mz * sizeof *xr);
                            ex_ck_row_round(xr + n * Mz, c->M, c->B); /* the dispatch's wire format */
                            who[n++] = q * T * k + ts;
                        }
                }
                if (n == 0) continue;
                ex_ck_fill_w(w1, ef, c->seed, l, W_E1, e, c->M);
                ex_ck_fill_w(w3, ef, c->seed, l, W_E3, e, c->M);
                ex_ck_fill_w(w2, ef, c->seed, l, W_E2, e, c->fe);
                int32_t off[2] = {0, (int32_t)n};
                if (kcall(k_ffn_swiglu_ref(xr, off, 1, c->M, c->fe, w1, w3, w2, yr),
                          "reference expert", err))
                    goto out;
                for (size_t r = 0; r < n; r++) {
                    ex_ck_row_round(yr + r * Mz, c->M, c->B); /* the return's wire format */
                    memcpy(yslot + who[r] * Mz, yr + r * Mz, Mz * sizeof *yr);
                }
            }
        }
        for (size_t q = 0; q < n_mb; q++) /* combine: Y + S, then the slots in order */
            for (size_t t = 0; t < T; t++) {
                float *o = X + (q * T + t) * Mz;
                const float *yq = Y + (q * T + t) * Mz, *sq = S + (q * T + t) * Mz;
                for (size_t x = 0; x < Mz; x++) o[x] = yq[x] + sq[x];
                const int32_t *as = assign_all + (q / c->r1) * ns + sidx(c, l, (int)(q % c->r1));
                for (size_t s = 0; moe && s < k; s++) {
                    if (as[t * k + s] < 0) continue;
                    float wt = w[(q * T + t) * k + s];
                    const float *yy = yslot + ((q * T + t) * k + s) * Mz;
                    for (size_t x = 0; x < Mz; x++) o[x] += wt * yy[x];
                }
            }
    }
    memcpy(out, X, n_mb * T * Mz * sizeof *out);
    rc = 0;
out:
    free(X), free(Y), free(Hm), free(S), free(Xn), free(tmp), free(Q), free(K), free(V), free(O);
    free(sc), free(w), free(yslot), free(wg), free(w1), free(w3), free(w2), free(xr), free(yr);
    free(who), free(cu), free(ws.lens), free(ws.kc), free(ws.vc);
    for (int q = 0; q < 4; q++) free(wa[q]);
    return rc;
}

int ex_check_compare(ex_check *c, ex_result *res, ms_err *err)
{
    if (c->train) return ex_tcheck_compare(c->train, res, err);
    size_t T = (size_t)c->T, Mz = (size_t)c->M, r1 = (size_t)c->r1;
    size_t nx = r1 * T * Mz, ns = (size_t)c->L * r1 * T * c->k;
    int local = 0;
    /* the attention ranks finish the last layer's combine */
    if (c->my_a >= 0)
        for (int i = 0; i < c->r1 && !local; i++)
            if (combine(c, c->L - 1, i, mb(c, c->X, i, c->M), err) != 0) local = -1;
    float *got = NULL, *ref = NULL;
    int32_t *as = NULL;
    double stat[3] = {0, 0, 0}; /* max rel err, status (0 ok, 1 failed on rank 0), unused */
    if (c->rank == 0) {
        got = malloc((size_t)c->ag * nx * sizeof *got);
        ref = malloc((size_t)c->ag * nx * sizeof *ref);
        as = malloc((size_t)c->ag * ns * sizeof *as);
        if (!got || !ref || !as) {
            ms_err_set(err, "check: rank 0: out of memory for the comparison");
            local = -1;
        }
    }
    /* gather (every AG rank sends; rank 0 receives even after a local failure, so
     * nobody is left blocked) */
    for (int a = 0; a < c->ag; a++) {
        int p = c->ag_rank[a];
        if (p == 0 && c->rank == 0) {
            if (got) memcpy(got + (size_t)a * nx, c->X, nx * sizeof *got);
            if (as) memcpy(as + (size_t)a * ns, c->assign, ns * sizeof *as);
        } else if (c->rank == p) {
            ms_err e2;
            if (ex_send_bytes(c->X, nx * sizeof(float), 0, TAG_X, &e2) != 0 ||
                ex_send_bytes(c->assign, ns * sizeof(int32_t), 0, TAG_ASSIGN, &e2) != 0) {
                if (!local) *err = e2;
                local = -1;
            }
        } else if (c->rank == 0) {
            ms_err e2;
            float *gx = got ? got + (size_t)a * nx : NULL;
            int32_t *ga = as ? as + (size_t)a * ns : NULL;
            float *sink_f = NULL;
            int32_t *sink_i = NULL;
            if (!gx) gx = sink_f = malloc(nx * sizeof *gx);
            if (!ga) ga = sink_i = malloc(ns * sizeof *ga);
            if (!gx || !ga || ex_recv_bytes(gx, nx * sizeof(float), p, TAG_X, &e2) != 0 ||
                ex_recv_bytes(ga, ns * sizeof(int32_t), p, TAG_ASSIGN, &e2) != 0) {
                if (!local) *err = e2;
                local = -1;
            }
            free(sink_f), free(sink_i);
        }
    }
    if (c->rank == 0 && local == 0) {
        if (reference(c, as, ref, err) != 0) {
            local = -1;
        } else {
            double ss = 0;
            size_t n = (size_t)c->ag * nx;
            for (size_t q = 0; q < n; q++) ss += (double)ref[q] * ref[q];
            double floor = CHECK_FLOOR * sqrt(ss / (double)(n ? n : 1)), mx = 0;
            for (size_t q = 0; q < n; q++) {
                double e = fabs((double)got[q] - ref[q]) / (fabs((double)ref[q]) + floor);
                if (!(e <= mx)) mx = e; /* NaN propagates as the worst */
            }
            stat[0] = mx;
        }
    }
    stat[1] = c->rank == 0 && local != 0;
    free(got), free(ref), free(as);
    return ex_ck_finish(stat, (int)(sizeof stat / sizeof stat[0]), local, c->rank, CHECK_RTOL, res, err);
}

/* Check mode of training graphs (workloads/moe_train.c): the real fp32 forward and backward
 * of every MoE layer (attention as a dense projection, gate, capacity routing, dispatch,
 * ESP AllGather, sharded expert FFN, ESP ReduceScatter, combine; expert dgrad and wgrad,
 * the reverse exchanges) and the dense-gradient AllReduce, carried by the graph's own tasks
 * on random seeded data; rank 0 recomputes the whole step in one process and compares the
 * gradients. Row math is shared by the run and the reference (docs/EXEC.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "exec/check_common.h"
#include "exec/ex_mpi.h"
#include "exec/train_check.h"
#include "kernels/k.h"

#define TC_RTOL 1e-4  /* tolerance on the max relative error */
#define TC_FLOOR 1e-2 /* absolute floor of the error, as a fraction of the tensor's RMS */
#define TC_MAXR 64    /* largest pipelining degree (WL_TRAIN_MAX_R) */
#define TC_MAX_FLOATS (512.0 * 1024 * 1024) /* 2 GiB of fp32 state per rank */
#define TAG_DENSE 7201
#define TAG_EXPERT 7202
#define CORRUPT_ENV "MOESCHED_CHECK_CORRUPT"

enum { FWD, BWD };
enum {
    K_NONE, K_ATTN, K_GATE, K_ORDER, K_DISPATCH, K_ALLGATHER, K_EXPERT, K_RS, K_COMBINE,
    K_IORDER, K_DGRAD, K_WGRAD, K_GATE_DGRAD, K_GATE_WGRAD, K_ATTN_DGRAD, K_ATTN_WGRAD,
    K_ATTN_CORE, K_ALLREDUCE
};
static const char *const kind_name[] = {
    "", "attn", "gate", "order", "dispatch", "allgather", "expert", "reducescatter", "combine",
    "iorder", "expert_dgrad", "expert_wgrad", "gate_dgrad", "gate_wgrad", "attn_dgrad",
    "attn_wgrad", "attn_core", "allreduce"};
#define NKINDS 18

/* One rank's activations and gradients: the run holds its own, the reference one per rank.
 * Layouts: [T][M] row-major; routed rows per EP group [ep][C][M]. */
typedef struct rstate {
    float *xin;         /* [L+1][T][M] layer inputs (xin[L]: the step's output) */
    float *z, *o, *hh;  /* [L][T][Q], [L][T][A], [L][T][M]: QKV, attention out, H */
    float *p;           /* [L][T][E] gate probabilities */
    int32_t *se;        /* [L][T][k] chosen experts */
    int32_t *sg, *sc;   /* [L][T][k] EP group and capacity row of a slot, -1 dropped */
    int32_t *rows;      /* [L][ep][C] slot t*k+s of each capacity row, -1 padding */
    float *yb;          /* [L][ep][C][M] expert outputs as they come back */
    float *dx;          /* [L+1][T][M] gradients of xin (dx[L]: the seeded loss gradient) */
    float *dh, *dys, *dxb, *dw, *dlog, *dO, *dz; /* backward scratch of the current layer */
    float *gv;          /* [NG] this rank's dense gradients, production order */
} rstate;

struct ex_tcheck {
    const tg_graph *g;
    int rank;
    uint64_t seed;
    model_cfg m;
    int L, P, ep, esp, gx, px;
    int T, M, E, k, El, Q, A, f, fs, gemms, B, slots, C;
    int rdeg[2][TC_MAXR * 2 + 128], q[2][TC_MAXR * 2 + 128]; /* [pass][layer] */
    size_t NG, per_layer;
    float *wqkv, *wo, *wg;     /* [L][M][Q], [L][A][M], [L][M][E] */
    float **w1, **w3, **w2;    /* [L*E] full expert weights ([M][f], [M][f], [f][M]), NULL if not held */
    double **g1, **g3, **g2;   /* [L*E] their gradients, summed in double (only this rank's
                                  shard is written) */
    rstate rs;
    float *gs;                 /* [NG] dense gradients after the AllReduce */
    float *xs;                 /* [L][esp][ep][C][M] expert inputs saved by the forward */
    int32_t *xid;              /* [L][esp][ep][C] their experts, -1 padding */
    float **lb, **gb, **po, **ro; /* [2][L][TC_MAXR] per chunk: local block, gathered, partial, reduced */
    uint32_t *tx[2][2];        /* [pass][dispatch|combine] -> [L][TC_MAXR] task of this rank */
    uint8_t *tkind, *tpass, *tocc;
    int32_t *tl, *tj;
    int64_t *ar_off;           /* [ntasks] float offset of an AllReduce piece */
    void **xbuf;
    int32_t **xmeta;
    float *scr;                /* compute-stream scratch: 4 x f floats */
    int corrupt;
    ex_payload payload;
};

/* ---- small math ------------------------------------------------------------------------ */

/* Training draws take layer l + 1 of the check streams, apart from the inference check's. */
static uint64_t mix(uint64_t seed, int l, int kind, int idx)
{
    return ex_ck_mix(seed, l + 1, kind, idx);
}

/* C[m][n] (+)= op(A)[m][k] op(B)[k][n]; ta: A is stored [k][m]; tb: B is stored [n][k].
 * Plain loops in a fixed order, so the run and the reference agree bit for bit. */
static void mm(const float *A, const float *B, float *C, int m, int n, int k, int ta, int tb,
               int acc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = acc ? C[(size_t)i * n + j] : 0.0f;
            for (int p = 0; p < k; p++)
                s += (ta ? A[(size_t)p * m + i] : A[(size_t)i * k + p]) *
                     (tb ? B[(size_t)j * k + p] : B[(size_t)p * n + j]);
            C[(size_t)i * n + j] = s;
        }
}

static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Expert e's FFN on one row over hidden columns [f0, f1) (an ESP shard): y = act(x W1) W2,
 * act = silu, or SwiGLU silu(x W1) * (x W3) with 3 GEMMs. s: 2 (f1 - f0) floats. */
static void ffn_row_fwd(const ex_tcheck *c, int le, int f0, int f1, const float *x, float *y,
                        float *s)
{
    int M = c->M, f = c->f, n = f1 - f0;
    const float *w1 = c->w1[le], *w3 = c->w3[le], *w2 = c->w2[le];
    float *a = s;
    for (int j = 0; j < n; j++) {
        float h = 0, h3 = 0;
        for (int i = 0; i < M; i++) h += x[i] * w1[(size_t)i * f + f0 + j];
        if (c->gemms == 3)
            for (int i = 0; i < M; i++) h3 += x[i] * w3[(size_t)i * f + f0 + j];
        a[j] = h * sigm(h) * (c->gemms == 3 ? h3 : 1.0f);
    }
    for (int i = 0; i < M; i++) y[i] = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < M; i++) y[i] += a[j] * w2[(size_t)(f0 + j) * M + i];
}

/* Its backward for one row: dx (overwritten, may be NULL) and the weight gradients of the
 * shard (accumulated into g1 g3 g2 at le, may be NULL). s: 4 (f1 - f0) floats. */
static void ffn_row_bwd(const ex_tcheck *c, int le, int f0, int f1, const float *x,
                        const float *dy, float *dx, double *g1, double *g3, double *g2,
                        float *s)
{
    int M = c->M, f = c->f, n = f1 - f0;
    const float *w1 = c->w1[le], *w3 = c->w3[le], *w2 = c->w2[le];
    float *a = s, *dh = s + n, *dh3 = s + 2 * n;
    for (int j = 0; j < n; j++) {
        float h = 0, h3 = 1.0f, da = 0;
        for (int i = 0; i < M; i++) h += x[i] * w1[(size_t)i * f + f0 + j];
        if (c->gemms == 3) {
            h3 = 0;
            for (int i = 0; i < M; i++) h3 += x[i] * w3[(size_t)i * f + f0 + j];
        }
        for (int i = 0; i < M; i++) da += dy[i] * w2[(size_t)(f0 + j) * M + i];
        float sg = sigm(h), act = h * sg;
        a[j] = act * h3;
        dh[j] = da * h3 * (sg + h * sg * (1.0f - sg));
        dh3[j] = da * act;
    }
    if (dx) {
        for (int i = 0; i < M; i++) {
            float v = 0;
            for (int j = 0; j < n; j++) {
                v += dh[j] * w1[(size_t)i * f + f0 + j];
                if (c->gemms == 3) v += dh3[j] * w3[(size_t)i * f + f0 + j];
            }
            dx[i] = v;
        }
    }
    if (g1) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < n; j++) {
                g1[(size_t)i * f + f0 + j] += (double)x[i] * dh[j];
                if (c->gemms == 3) g3[(size_t)i * f + f0 + j] += (double)x[i] * dh3[j];
            }
        for (int j = 0; j < n; j++)
            for (int i = 0; i < M; i++) g2[(size_t)(f0 + j) * M + i] += (double)a[j] * dy[i];
    }
}

/* ---- the dense part of a layer, shared by the run and the reference -------------------- */

#define LTM(s, fld, l) ((s)->fld + (size_t)(l) * c->T * c->M)

static size_t goff(const ex_tcheck *c, int l, int part)
{
    size_t b = (size_t)(c->L - 1 - l) * c->per_layer;
    if (part >= 1) b += (size_t)c->M * c->E;
    if (part >= 2) b += (size_t)c->A * c->M;
    return b;
}

static void f_attn_in(const ex_tcheck *c, rstate *s, int l) /* Z = X Wqkv */
{
    mm(LTM(s, xin, l), c->wqkv + (size_t)l * c->M * c->Q, s->z + (size_t)l * c->T * c->Q, c->T,
       c->Q, c->M, 0, 0, 0);
}

static void f_attn_core(const ex_tcheck *c, rstate *s, int l) /* O = tanh(Z[:, j mod Q]) */
{
    const float *z = s->z + (size_t)l * c->T * c->Q;
    float *o = s->o + (size_t)l * c->T * c->A;
    for (int t = 0; t < c->T; t++)
        for (int j = 0; j < c->A; j++) o[(size_t)t * c->A + j] = tanhf(z[(size_t)t * c->Q + j % c->Q]);
}

static void f_attn_out(const ex_tcheck *c, rstate *s, int l) /* H = X + O Wo */
{
    float *h = LTM(s, hh, l);
    memcpy(h, LTM(s, xin, l), (size_t)c->T * c->M * sizeof *h);
    mm(s->o + (size_t)l * c->T * c->A, c->wo + (size_t)l * c->A * c->M, h, c->T, c->M, c->A, 0,
       0, 1);
}

static void f_gate(const ex_tcheck *c, rstate *s, int l) /* softmax(H Wg), top-k */
{
    int T = c->T, E = c->E, k = c->k;
    float *p = s->p + (size_t)l * T * E;
    mm(LTM(s, hh, l), c->wg + (size_t)l * c->M * E, p, T, E, c->M, 0, 0, 0);
    for (int t = 0; t < T; t++) {
        float *r = p + (size_t)t * E, mx = r[0], sum = 0;
        for (int e = 1; e < E; e++) mx = r[e] > mx ? r[e] : mx;
        for (int e = 0; e < E; e++) sum += (r[e] = expf(r[e] - mx));
        for (int e = 0; e < E; e++) r[e] /= sum;
        int32_t *se = s->se + ((size_t)l * T + t) * k;
        for (int q = 0; q < k; q++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                int used = 0;
                for (int q2 = 0; q2 < q; q2++) used |= se[q2] == e;
                if (!used && (best < 0 || r[e] > r[best])) best = e;
            }
            se[q] = best;
        }
    }
}

/* Capacity: each EP group takes at most C rows of this rank per layer, in (token, slot)
 * order; the rest are dropped. C = ceil(slots / ep) does not depend on the degree r, so
 * every schedule routes alike (the graph's chunks pad the buffers to q r >= C rows). */
static void f_order(const ex_tcheck *c, rstate *s, int l)
{
    int T = c->T, k = c->k, C = c->C, cnt[1024] = {0};
    int32_t *rows = s->rows + (size_t)l * c->ep * C;
    for (int q = 0; q < c->ep * C; q++) rows[q] = -1;
    for (int t = 0; t < T; t++)
        for (int q = 0; q < k; q++) {
            size_t i = ((size_t)l * T + t) * k + q;
            int g = s->se[i] / c->El;
            if (cnt[g] < C) {
                s->sg[i] = g, s->sc[i] = cnt[g];
                rows[(size_t)g * C + cnt[g]++] = t * k + q;
            } else {
                s->sg[i] = s->sc[i] = -1;
            }
        }
}

/* X' = H + sum over kept slots of p(expert) * y (the slots in order). */
static void f_combine(const ex_tcheck *c, rstate *s, int l)
{
    int T = c->T, M = c->M, k = c->k;
    float *out = LTM(s, xin, l + 1);
    const float *h = LTM(s, hh, l), *p = s->p + (size_t)l * T * c->E;
    const float *yb = s->yb + (size_t)l * c->ep * c->C * M;
    memcpy(out, h, (size_t)T * M * sizeof *out);
    for (int t = 0; t < T; t++)
        for (int q = 0; q < k; q++) {
            size_t i = ((size_t)l * T + t) * k + q;
            if (s->sg[i] < 0) continue;
            float w = p[(size_t)t * c->E + s->se[i]];
            const float *y = yb + ((size_t)s->sg[i] * c->C + s->sc[i]) * M;
            for (int x = 0; x < M; x++) out[(size_t)t * M + x] += w * y[x];
        }
}

/* Backward of the combine: dY rows = p dX', dp per slot = dX' . y; dH = dX' (residual). */
static void b_iorder(const ex_tcheck *c, rstate *s, int l)
{
    int T = c->T, M = c->M, k = c->k;
    const float *d = LTM(s, dx, l + 1), *p = s->p + (size_t)l * T * c->E;
    const float *yb = s->yb + (size_t)l * c->ep * c->C * M;
    memset(s->dys, 0, (size_t)c->ep * c->C * M * sizeof *s->dys);
    memcpy(s->dh, d, (size_t)T * M * sizeof *s->dh);
    for (int t = 0; t < T; t++)
        for (int q = 0; q < k; q++) {
            size_t i = ((size_t)l * T + t) * k + q;
            s->dw[(size_t)t * k + q] = 0;
            if (s->sg[i] < 0) continue;
            size_t r = (size_t)s->sg[i] * c->C + s->sc[i];
            float w = p[(size_t)t * c->E + s->se[i]], dot = 0;
            for (int x = 0; x < M; x++) {
                s->dys[r * M + x] = w * d[(size_t)t * M + x];
                dot += d[(size_t)t * M + x] * yb[r * M + x];
            }
            s->dw[(size_t)t * k + q] = dot;
        }
}

static void b_order(const ex_tcheck *c, rstate *s, int l) /* dH += the dispatched rows' dX */
{
    int T = c->T, M = c->M, k = c->k;
    for (int t = 0; t < T; t++)
        for (int q = 0; q < k; q++) {
            size_t i = ((size_t)l * T + t) * k + q;
            if (s->sg[i] < 0) continue;
            const float *d = s->dxb + ((size_t)s->sg[i] * c->C + s->sc[i]) * M;
            for (int x = 0; x < M; x++) s->dh[(size_t)t * M + x] += d[x];
        }
}

static void b_gate_dgrad(const ex_tcheck *c, rstate *s, int l)
{
    int T = c->T, E = c->E, k = c->k;
    const float *p = s->p + (size_t)l * T * E;
    for (int t = 0; t < T; t++) {
        float *dl = s->dlog + (size_t)t * E, sum = 0;
        for (int e = 0; e < E; e++) dl[e] = 0;
        for (int q = 0; q < k; q++) {
            size_t i = ((size_t)l * T + t) * k + q;
            if (s->sg[i] >= 0) dl[s->se[i]] += s->dw[(size_t)t * k + q];
        }
        for (int e = 0; e < E; e++) sum += p[(size_t)t * E + e] * dl[e];
        for (int e = 0; e < E; e++) dl[e] = p[(size_t)t * E + e] * (dl[e] - sum);
    }
    mm(s->dlog, c->wg + (size_t)l * c->M * E, s->dh, T, c->M, E, 0, 1, 1);
}

static void b_gate_wgrad(const ex_tcheck *c, rstate *s, int l)
{
    mm(LTM(s, hh, l), s->dlog, s->gv + goff(c, l, 0), c->M, c->E, c->T, 1, 0, 0);
}

static void b_attn_dgrad(const ex_tcheck *c, rstate *s, int l, int occ)
{
    if (occ == 0) { /* dO = dH Wo^T */
        mm(s->dh, c->wo + (size_t)l * c->A * c->M, s->dO, c->T, c->A, c->M, 0, 1, 0);
    } else { /* dX = dH + dZ Wqkv^T */
        float *d = LTM(s, dx, l);
        memcpy(d, s->dh, (size_t)c->T * c->M * sizeof *d);
        mm(s->dz, c->wqkv + (size_t)l * c->M * c->Q, d, c->T, c->M, c->Q, 0, 1, 1);
    }
}

static void b_attn_wgrad(const ex_tcheck *c, rstate *s, int l, int occ)
{
    if (occ == 0)
        mm(s->o + (size_t)l * c->T * c->A, s->dh, s->gv + goff(c, l, 1), c->A, c->M, c->T, 1, 0, 0);
    else
        mm(LTM(s, xin, l), s->dz, s->gv + goff(c, l, 2), c->M, c->Q, c->T, 1, 0, 0);
}

static void b_attn_core(const ex_tcheck *c, rstate *s, int l)
{
    const float *o = s->o + (size_t)l * c->T * c->A;
    memset(s->dz, 0, (size_t)c->T * c->Q * sizeof *s->dz);
    for (int t = 0; t < c->T; t++)
        for (int j = 0; j < c->A; j++) {
            float v = o[(size_t)t * c->A + j];
            s->dz[(size_t)t * c->Q + j % c->Q] += s->dO[(size_t)t * c->A + j] * (1.0f - v * v);
        }
}

static int rs_init(const ex_tcheck *c, rstate *s, int rank)
{
    size_t L = (size_t)c->L, T = (size_t)c->T, M = (size_t)c->M, k = (size_t)c->k;
    size_t R = (size_t)c->ep * c->C;
    memset(s, 0, sizeof *s);
    s->xin = calloc((L + 1) * T * M, sizeof(float));
    s->z = calloc(L * T * c->Q, sizeof(float));
    s->o = calloc(L * T * c->A, sizeof(float));
    s->hh = calloc(L * T * M, sizeof(float));
    s->p = calloc(L * T * c->E, sizeof(float));
    s->se = calloc(L * T * k, sizeof(int32_t));
    s->sg = calloc(L * T * k, sizeof(int32_t));
    s->sc = calloc(L * T * k, sizeof(int32_t));
    s->rows = calloc(L * R, sizeof(int32_t));
    s->yb = calloc(L * R * M, sizeof(float));
    s->dx = calloc((L + 1) * T * M, sizeof(float));
    s->dh = calloc(T * M, sizeof(float));
    s->dys = calloc(R * M, sizeof(float));
    s->dxb = calloc(R * M, sizeof(float));
    s->dw = calloc(T * k, sizeof(float));
    s->dlog = calloc(T * c->E, sizeof(float));
    s->dO = calloc(T * c->A, sizeof(float));
    s->dz = calloc(T * c->Q, sizeof(float));
    s->gv = calloc(c->NG, sizeof(float));
    if (!s->xin || !s->z || !s->o || !s->hh || !s->p || !s->se || !s->sg || !s->sc || !s->rows ||
        !s->yb || !s->dx || !s->dh || !s->dys || !s->dxb || !s->dw || !s->dlog || !s->dO ||
        !s->dz || !s->gv)
        return -1;
    /* the step's input and the loss gradient, per rank (a DP replica's own data) */
    k_fill_uniform(s->xin, T * M, mix(c->seed, -1, 99, rank), -1.0f, 1.0f);
    k_fill_uniform(s->dx + L * T * M, T * M, mix(c->seed, -1, 98, rank), -1.0f, 1.0f);
    return 0;
}

static void rs_release(rstate *s)
{
    free(s->xin), free(s->z), free(s->o), free(s->hh), free(s->p), free(s->se), free(s->sg);
    free(s->sc), free(s->rows), free(s->yb), free(s->dx), free(s->dh), free(s->dys);
    free(s->dxb), free(s->dw), free(s->dlog), free(s->dO), free(s->dz), free(s->gv);
}

enum { W_QKV = 1, W_O, W_G, W_E1, W_E3, W_E2 };

/* Draws the dense weights and the expert weights of experts [e0, e1) (all layers). */
static int draw_weights(ex_tcheck *c, int e0, int e1)
{
    size_t M = (size_t)c->M, L = (size_t)c->L, f = (size_t)c->f;
    c->wqkv = malloc(L * M * c->Q * sizeof(float));
    c->wo = malloc(L * c->A * M * sizeof(float));
    c->wg = malloc(L * M * c->E * sizeof(float));
    c->w1 = calloc(L * c->E, sizeof(float *));
    c->w3 = calloc(L * c->E, sizeof(float *));
    c->w2 = calloc(L * c->E, sizeof(float *));
    c->g1 = calloc(L * c->E, sizeof(double *));
    c->g3 = calloc(L * c->E, sizeof(double *));
    c->g2 = calloc(L * c->E, sizeof(double *));
    if (!c->wqkv || !c->wo || !c->wg || !c->w1 || !c->w3 || !c->w2 || !c->g1 || !c->g3 || !c->g2)
        return -1;
    for (int l = 0; l < c->L; l++) {
        ex_ck_fill_w(c->wqkv + l * M * c->Q, M * c->Q, c->seed, l + 1, W_QKV, 0, c->M);
        ex_ck_fill_w(c->wo + l * c->A * M, c->A * M, c->seed, l + 1, W_O, 0, c->A);
        ex_ck_fill_w(c->wg + l * M * c->E, M * c->E, c->seed, l + 1, W_G, 0, c->M);
        for (int e = e0; e < e1; e++) {
            size_t i = (size_t)l * c->E + e;
            int w3 = c->gemms == 3; /* a plain MLP has no W3 */
            c->w1[i] = malloc(M * f * sizeof(float));
            c->w3[i] = w3 ? malloc(M * f * sizeof(float)) : NULL;
            c->w2[i] = malloc(M * f * sizeof(float));
            c->g1[i] = calloc(M * f, sizeof(double));
            c->g3[i] = w3 ? calloc(M * f, sizeof(double)) : NULL;
            c->g2[i] = calloc(M * f, sizeof(double));
            if (!c->w1[i] || (w3 && (!c->w3[i] || !c->g3[i])) || !c->w2[i] || !c->g1[i] ||
                !c->g2[i])
                return -1;
            ex_ck_fill_w(c->w1[i], M * f, c->seed, l + 1, W_E1, e, c->M);
            if (w3) ex_ck_fill_w(c->w3[i], M * f, c->seed, l + 1, W_E3, e, c->M);
            ex_ck_fill_w(c->w2[i], M * f, c->seed, l + 1, W_E2, e, c->f);
        }
    }
    return 0;
}

static void free_weights(ex_tcheck *c)
{
    for (size_t i = 0; c->w1 && i < (size_t)c->L * c->E; i++) {
        free(c->w1[i]), free(c->w3[i]), free(c->w2[i]);
        free(c->g1[i]), free(c->g3[i]), free(c->g2[i]);
    }
    free(c->wqkv), free(c->wo), free(c->wg), free(c->w1), free(c->w3), free(c->w2);
    free(c->g1), free(c->g3), free(c->g2);
    c->w1 = NULL;
}

/* ---- labels ---------------------------------------------------------------------------- */

/* "L<l>.<fwd|bwd>[.mb<j>].<kind>", "L<l>.bwd.allreduce.p<i>", "tail.allreduce.p<i>". */
static int parse_label(const char *s, int *l, int *pass, int *j)
{
    *l = -1, *pass = BWD, *j = -1;
    if (!s) return K_NONE;
    if (!strncmp(s, "tail.allreduce.p", 16)) return K_ALLREDUCE;
    if (s[0] != 'L') return K_NONE;
    char *e;
    long v = strtol(s + 1, &e, 10);
    if (e == s + 1 || v < 0 || v > 100000) return K_NONE;
    *l = (int)v;
    if (!strncmp(e, ".fwd.", 5)) *pass = FWD;
    else if (strncmp(e, ".bwd.", 5)) return K_NONE;
    s = e + 5;
    if (!strncmp(s, "mb", 2)) {
        v = strtol(s + 2, &e, 10);
        if (e == s + 2 || *e != '.' || v < 0 || v >= TC_MAXR) return K_NONE;
        *j = (int)v, s = e + 1;
    }
    if (!strncmp(s, "allreduce.p", 11)) return K_ALLREDUCE;
    for (int k = 1; k < NKINDS; k++)
        if (!strcmp(s, kind_name[k])) return k;
    return K_NONE;
}

int ex_tcheck_is_train(const tg_graph *g)
{
    for (uint32_t t = 0; t < g->ntasks; t++) {
        int l, pass, j;
        if (parse_label(tg_str(g, g->label[t]), &l, &pass, &j) != K_NONE && l >= 0) return 1;
    }
    return 0;
}

/* ---- the run's hooks -------------------------------------------------------------------- */

static size_t ci(const ex_tcheck *c, int pass, int l, int j)
{
    return ((size_t)pass * c->L + l) * TC_MAXR + j;
}

/* The transfer of task t (this rank's) that receives from peer; NULL when none. */
static const void *recv_from(const ex_tcheck *c, uint32_t t, int peer)
{
    const tg_graph *g = c->g;
    if (t == TG_NONE) return NULL;
    for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
        if (!g->xfer_send[x] && g->xfer_peer[x] == peer) return c->xbuf[x];
    return NULL;
}

static const int32_t *meta_from(const ex_tcheck *c, uint32_t t, int peer)
{
    const tg_graph *g = c->g;
    for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
        if (!g->xfer_send[x] && g->xfer_peer[x] == peer) return c->xmeta[x];
    return NULL;
}

/* The local block of chunk j ([ep][q][M+1]: a row and its expert): what this rank got
 * from each EP peer, its own rows included (rounded as the wire would). */
static int stage_local(ex_tcheck *c, int pass, int l, int j, ms_err *err)
{
    int q = c->q[pass][l], M = c->M, C = c->C;
    float *lb = c->lb[ci(c, pass, l, j)];
    rstate *s = &c->rs;
    for (int g = 0; g < c->ep; g++)
        for (int i = 0; i < q; i++) {
            float *row = lb + ((size_t)g * q + i) * (M + 1);
            int cap = j * q + i;
            if (g == c->gx) {
                int32_t r = cap < C ? s->rows[((size_t)l * c->ep + g) * C + cap] : -1;
                memset(row, 0, (size_t)(M + 1) * sizeof *row);
                row[M] = -1;
                if (pass == FWD && r >= 0) {
                    memcpy(row, LTM(s, hh, l) + (size_t)(r / c->k) * M, (size_t)M * sizeof *row);
                    row[M] = (float)s->se[(size_t)l * c->T * c->k + r];
                } else if (pass == BWD && cap < C) {
                    memcpy(row, s->dys + ((size_t)g * C + cap) * M, (size_t)M * sizeof *row);
                }
                ex_ck_row_round(row, M, c->B);
                continue;
            }
            uint32_t t = c->tx[pass][pass == FWD ? 0 : 1][(size_t)l * TC_MAXR + j];
            int peer = g * c->esp + c->px;
            const unsigned char *in = recv_from(c, t, peer);
            if (!in)
                return ms_err_set(err, "check: rank %d: layer %d %s chunk %d: no transfer from "
                                       "rank %d", c->rank, l, pass == FWD ? "dispatch" : "combine",
                                  j, peer);
            ex_ck_row_unpack(in + (size_t)i * M * c->B, M, c->B, row);
            row[M] = pass == FWD ? (float)meta_from(c, t, peer)[i] : 0.0f;
        }
    return 0;
}

static void *hook_xfer_buf(void *user, uint32_t x)
{
    ex_tcheck *c = user;
    const tg_graph *g = c->g;
    uint32_t t = g->xfer_task[x];
    if (!g->xfer_send[x]) return c->xbuf[x];
    int pass = c->tpass[t], l = c->tl[t], j = c->tj[t], kd = c->tkind[t], M = c->M;
    int q = c->q[pass][l], gp = g->xfer_peer[x] / c->esp;
    unsigned char *out = c->xbuf[x];
    rstate *s = &c->rs;
    /* source side: dispatch (fwd) and combine (bwd) send routed rows; expert side:
     * combine (fwd) and dispatch (bwd) send the reduced block of the peer */
    int source = (pass == FWD) == (kd == K_DISPATCH);
    for (int i = 0; i < q; i++) {
        int cap = j * q + i;
        unsigned char *o = out + (size_t)i * M * c->B;
        if (source) {
            int32_t r = cap < c->C ? s->rows[((size_t)l * c->ep + gp) * c->C + cap] : -1;
            if (pass == FWD) {
                if (r >= 0) ex_ck_row_pack(LTM(s, hh, l) + (size_t)(r / c->k) * M, M, c->B, o);
                else memset(o, 0, (size_t)M * c->B);
                c->xmeta[x][i] = r >= 0 ? s->se[(size_t)l * c->T * c->k + r] : -1;
            } else {
                if (cap < c->C) ex_ck_row_pack(s->dys + ((size_t)gp * c->C + cap) * M, M, c->B, o);
                else memset(o, 0, (size_t)M * c->B);
            }
        } else {
            ex_ck_row_pack(c->ro[ci(c, pass, l, j)] + ((size_t)gp * q + i) * M, M, c->B, o);
        }
    }
    return out;
}

static void hook_xfer_meta(void *user, uint32_t x, void **buf, size_t *bytes)
{
    ex_tcheck *c = user;
    uint32_t t = c->g->xfer_task[x];
    *buf = NULL, *bytes = 0;
    if (c->tpass[t] == FWD && c->tkind[t] == K_DISPATCH) {
        *buf = c->xmeta[x];
        *bytes = (size_t)c->q[FWD][c->tl[t]] * sizeof(int32_t);
    }
}

static int hook_coll(void *user, uint32_t t, void **send, void **recv, size_t *count, ms_err *err)
{
    ex_tcheck *c = user;
    int pass = c->tpass[t], l = c->tl[t], j = c->tj[t], q = l >= 0 ? c->q[pass][l] : 0;
    switch (c->tkind[t]) {
    case K_ALLGATHER:
        if (stage_local(c, pass, l, j, err) != 0) return -1;
        *send = c->lb[ci(c, pass, l, j)], *recv = c->gb[ci(c, pass, l, j)];
        *count = (size_t)c->ep * q * (c->M + 1);
        return 0;
    case K_RS:
        *send = c->po[ci(c, pass, l, j)], *recv = c->ro[ci(c, pass, l, j)];
        *count = (size_t)c->ep * q * c->M;
        return 0;
    case K_ALLREDUCE: {
        int64_t by = tg_task_args(c->g, t)[1];
        *send = c->rs.gv + c->ar_off[t], *recv = c->gs + c->ar_off[t];
        *count = (size_t)by / 4;
        return 0;
    }
    default: {
        char d[256];
        return ms_err_set(err, "check: %s: not a collective of a training graph",
                          ex_task_desc(c->g, t, d, sizeof d));
    }
    }
}

/* The expert tasks of chunk j: forward (the partial output of this rank's shard), dgrad
 * (the partial input gradient) or wgrad (this shard's weight gradients). */
static int expert(ex_tcheck *c, int pass, int l, int j, int kd, ms_err *err)
{
    int q = c->q[pass][l], M = c->M, C = c->C, ep = c->ep, esp = c->esp;
    size_t b = ci(c, pass, l, j);
    if (esp == 1 && kd != K_WGRAD) {
        if (stage_local(c, pass, l, j, err) != 0) return -1;
        memcpy(c->gb[b], c->lb[b], (size_t)ep * q * (M + 1) * sizeof(float));
    }
    int f0 = c->px * c->fs, f1 = f0 + c->fs, corrupt = c->corrupt == 1 && pass == BWD &&
                                                         l == c->L - 1 && j == 0;
    for (int p = 0; p < esp; p++)
        for (int g = 0; g < ep; g++)
            for (int i = 0; i < q; i++) {
                size_t r = ((size_t)p * ep + g) * q + i;
                const float *in = c->gb[b] + r * (M + 1);
                float *out = c->po[b] + r * M;
                int cap = j * q + i;
                size_t sv = (((size_t)l * esp + p) * ep + g) * C + cap; /* saved row */
                if (pass == FWD) {
                    int e = (int)in[M];
                    if (cap < C) c->xid[sv] = e;
                    if (e < 0) {
                        memset(out, 0, (size_t)M * sizeof *out);
                        continue;
                    }
                    if (e / c->El != c->gx || cap >= C)
                        return ms_err_set(err, "check: rank %d layer %d chunk %d: row %zu is "
                                               "for expert %d, %s", c->rank, l, j, r, e,
                                          cap >= C ? "beyond the capacity" : "not held here");
                    memcpy(c->xs + sv * M, in, (size_t)M * sizeof(float));
                    ffn_row_fwd(c, l * c->E + e, f0, f1, in, out, c->scr);
                    continue;
                }
                int e = cap < C ? c->xid[sv] : -1;
                if (kd == K_DGRAD && e < 0) memset(out, 0, (size_t)M * sizeof *out);
                if (e < 0) continue;
                int le = l * c->E + e;
                if (kd == K_DGRAD) {
                    ffn_row_bwd(c, le, f0, f1, c->xs + sv * M, in, out, NULL, NULL, NULL, c->scr);
                    if (corrupt) { /* test hook: one gradient row off by 1% */
                        for (int x = 0; x < M; x++) out[x] *= 1.01f;
                        corrupt = 0;
                    }
                } else {
                    ffn_row_bwd(c, le, f0, f1, c->xs + sv * M, in, NULL, c->g1[le], c->g3[le],
                                c->g2[le], c->scr);
                }
            }
    if (esp == 1 && kd != K_WGRAD) memcpy(c->ro[b], c->po[b], (size_t)ep * q * M * sizeof(float));
    return 0;
}

/* Collects the rows that came back for this rank's slots (fwd: expert outputs into yb,
 * bwd: input gradients into dxb), from the exchange of each chunk or the own block. */
static int collect(ex_tcheck *c, int pass, int l, ms_err *err)
{
    int M = c->M, C = c->C, q = c->q[pass][l];
    rstate *s = &c->rs;
    float *dst = pass == FWD ? s->yb + (size_t)l * c->ep * C * M : s->dxb;
    for (int g = 0; g < c->ep; g++)
        for (int cap = 0; cap < C; cap++) {
            float *row = dst + ((size_t)g * C + cap) * M;
            int j = cap / q, i = cap % q;
            if (g == c->gx) {
                memcpy(row, c->ro[ci(c, pass, l, j)] + ((size_t)g * q + i) * M,
                       (size_t)M * sizeof *row);
                ex_ck_row_round(row, M, c->B);
                continue;
            }
            uint32_t t = c->tx[pass][pass == FWD ? 1 : 0][(size_t)l * TC_MAXR + j];
            const unsigned char *in = recv_from(c, t, g * c->esp + c->px);
            if (!in)
                return ms_err_set(err, "check: rank %d: layer %d chunk %d: nothing came back "
                                       "from rank %d", c->rank, l, j, g * c->esp + c->px);
            ex_ck_row_unpack(in + (size_t)i * M * c->B, M, c->B, row);
        }
    return 0;
}

/* An order task (order, iorder) on its own pass reorders this rank's rows (`local`); on
 * the other pass it first collects the rows that came back, then combines them (`after`). */
static int order_task(ex_tcheck *c, int pass, int l, int own_pass,
                      void (*local)(const ex_tcheck *, rstate *, int),
                      void (*after)(const ex_tcheck *, rstate *, int), ms_err *err)
{
    if (pass == own_pass) {
        local(c, &c->rs, l);
        return 0;
    }
    if (collect(c, pass, l, err) != 0) return -1;
    after(c, &c->rs, l);
    return 0;
}

static int hook_compute(void *user, uint32_t t, ms_err *err)
{
    ex_tcheck *c = user;
    rstate *s = &c->rs;
    int pass = c->tpass[t], l = c->tl[t], j = c->tj[t], occ = c->tocc[t];
    switch (c->tkind[t]) {
    case K_ATTN:
        if (occ == 0 && l == 0) /* a new pass: the expert gradients start from zero */
            for (size_t i = 0; i < (size_t)c->L * c->E; i++)
                if (c->g1[i]) {
                    size_t n = (size_t)c->M * c->f * sizeof(double);
                    memset(c->g1[i], 0, n), memset(c->g2[i], 0, n);
                    if (c->g3[i]) memset(c->g3[i], 0, n);
                }
        if (occ == 0) f_attn_in(c, s, l);
        else if (occ == 1) f_attn_core(c, s, l);
        else f_attn_out(c, s, l);
        return 0;
    case K_GATE: f_gate(c, s, l); return 0;
    case K_ORDER: return order_task(c, pass, l, FWD, f_order, b_order, err);
    case K_IORDER: return order_task(c, pass, l, BWD, b_iorder, f_combine, err);
    case K_EXPERT: case K_DGRAD: case K_WGRAD:
        return expert(c, pass, l, j, c->tkind[t], err);
    case K_GATE_DGRAD: b_gate_dgrad(c, s, l); return 0;
    case K_GATE_WGRAD:
        b_gate_wgrad(c, s, l);
        if (c->corrupt == 2 && l == 0 && c->rank == c->P - 1) /* test hook: before the AllReduce */
            s->gv[goff(c, 0, 0)] *= 1.01f;
        return 0;
    case K_ATTN_DGRAD: b_attn_dgrad(c, s, l, occ); return 0;
    case K_ATTN_WGRAD: b_attn_wgrad(c, s, l, occ); return 0;
    case K_ATTN_CORE:
        if (occ == 0) b_attn_core(c, s, l);
        return 0;
    default: {
        char d[256];
        return ms_err_set(err, "check: %s: not a compute task of a training graph",
                          ex_task_desc(c->g, t, d, sizeof d));
    }
    }
}

/* ---- setup ------------------------------------------------------------------------------ */

const ex_payload *ex_tcheck_payload(ex_tcheck *c) { return &c->payload; }

void ex_tcheck_free(ex_tcheck *c)
{
    if (!c) return;
    free_weights(c);
    rs_release(&c->rs);
    free(c->gs), free(c->xs), free(c->xid), free(c->scr);
    for (size_t i = 0; c->lb && i < 2 * (size_t)c->L * TC_MAXR; i++)
        free(c->lb[i]), free(c->gb[i]), free(c->po[i]), free(c->ro[i]);
    free(c->lb), free(c->gb), free(c->po), free(c->ro);
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) free(c->tx[a][b]);
    free(c->tkind), free(c->tpass), free(c->tocc), free(c->tl), free(c->tj), free(c->ar_off);
    for (uint32_t x = 0; c->xbuf && x < c->g->nxfers; x++) free(c->xbuf[x]), free(c->xmeta[x]);
    free(c->xbuf), free(c->xmeta);
    free(c);
}

#define BAD(...)                                                                           \
    do {                                                                                   \
        ms_err_set(err, __VA_ARGS__);                                                      \
        goto fail;                                                                         \
    } while (0)

ex_tcheck *ex_tcheck_create(const tg_graph *g, const ex_options *opt, int rank, ms_err *err)
{
    ex_tcheck *c = calloc(1, sizeof *c);
    char d[256];
    if (!c) {
        ms_err_set(err, "check: out of memory");
        return NULL;
    }
    c->g = g, c->rank = rank, c->seed = opt->seed, c->P = g->nranks;
    const char *cor = getenv(CORRUPT_ENV); /* test hook: 2 = a dense gradient, else a row */
    c->corrupt = cor && *cor && strcmp(cor, "0") != 0 ? (atoi(cor) == 2 || atoi(cor) == 3 ? atoi(cor) : 1) : 0;
    if (!opt->model) BAD("check: a training graph needs --model (and --layers)");
    if (model_load(opt->model, &c->m, err) != 0) goto fail;
    if (opt->model_layers > 0 && model_keep_layers(&c->m, opt->model_layers, err) != 0) goto fail;
    const model_cfg *m = &c->m;
    c->L = m->layers, c->M = m->hidden, c->E = m->routed_experts, c->k = m->top_k;
    c->A = m->heads * m->v_head_dim;
    c->Q = m->heads * m->head_dim + m->kv_heads * (m->head_dim + m->v_head_dim);
    c->f = m->expert_inter, c->gemms = m->ffn_gemms, c->B = m->dtype_bytes;
    if (c->L > TC_MAXR * 2 + 128) BAD("check: %d layers: at most %d", c->L, TC_MAXR * 2 + 128);
    if (c->B != 2 && c->B != 4) BAD("check: activations of %d bytes (2 or 4 supported)", c->B);
    int ge = tg_find_group(g, "esp0");
    c->esp = ge >= 0 ? (int)(g->group_off[ge + 1] - g->group_off[ge]) : 1;
    if (c->esp < 1 || c->P % c->esp) BAD("check: ESP group esp0 does not divide %d ranks", c->P);
    c->ep = c->P / c->esp, c->gx = rank / c->esp, c->px = rank % c->esp;
    if (c->E % c->ep || c->f % c->esp || c->ep > 1024)
        BAD("check: model '%s' (%d experts, FFN %d) does not fit EP %d x ESP %d", m->name, c->E,
            c->f, c->ep, c->esp);
    c->El = c->E / c->ep, c->fs = c->f / c->esp;
    c->per_layer = (size_t)c->M * c->E + (size_t)c->A * c->M + (size_t)c->M * c->Q;
    c->NG = c->per_layer * c->L;
    /* per task: kind, pass, layer, chunk, occurrence */
    uint32_t n = g->ntasks;
    c->tkind = calloc(n + 1, 1), c->tpass = calloc(n + 1, 1), c->tocc = calloc(n + 1, 1);
    c->tl = calloc(n + 1, sizeof(int32_t)), c->tj = calloc(n + 1, sizeof(int32_t));
    c->ar_off = calloc(n + 1, sizeof(int64_t));
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            c->tx[a][b] = malloc((size_t)c->L * TC_MAXR * sizeof(uint32_t));
            if (c->tx[a][b])
                for (size_t i = 0; i < (size_t)c->L * TC_MAXR; i++) c->tx[a][b][i] = TG_NONE;
        }
    uint8_t *cnt = calloc((size_t)c->L * 2 * NKINDS, 1);
    if (!c->tkind || !c->tpass || !c->tocc || !c->tl || !c->tj || !c->ar_off || !cnt ||
        !c->tx[0][0] || !c->tx[0][1] || !c->tx[1][0] || !c->tx[1][1]) {
        free(cnt);
        BAD("check: out of memory");
    }
    int64_t ar = 0;
    c->T = -1, c->slots = -1;
    for (uint32_t t = 0; t < n; t++) {
        if (g->rank[t] != 0 && g->rank[t] != rank) continue;
        int l, pass, j, kd = parse_label(tg_str(g, g->label[t]), &l, &pass, &j);
        const int64_t *a = tg_task_args(g, t);
        if (kd == K_NONE || l >= c->L || (kd != K_ALLREDUCE && l < 0)) {
            free(cnt);
            BAD("check: %s: not a task of a training graph of model '%s' with %d layers",
                ex_task_desc(g, t, d, sizeof d), m->name, c->L);
        }
        int mine = g->rank[t] == rank;
        if (mine) c->tkind[t] = (uint8_t)kd, c->tpass[t] = (uint8_t)pass, c->tl[t] = l, c->tj[t] = j;
        if (kd == K_ALLREDUCE) {
            if (mine) c->ar_off[t] = ar, ar += a[1] / 4;
            continue;
        }
        uint8_t *o = cnt + ((size_t)l * 2 + pass) * NKINDS + kd;
        if (mine) c->tocc[t] = *o, (*o)++;
        if (g->rank[t] != 0) continue; /* shapes from rank 0's tasks */
        if (pass == FWD && kd == K_ATTN && c->T < 0) c->T = (int)a[0];
        if (pass == FWD && kd == K_ORDER && c->slots < 0) c->slots = (int)a[0];
        if (kd == K_EXPERT || kd == K_DGRAD) {
            c->rdeg[pass][l]++;
            if (a[1] != c->El || a[2] != c->M || a[3] != c->fs || a[4] != c->gemms) {
                free(cnt);
                BAD("check: %s: FFN shape (%lld experts, hidden %lld, inter %lld, %lld GEMMs) "
                    "is not model '%s' under EP %d x ESP %d", ex_task_desc(g, t, d, sizeof d),
                    (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4],
                    m->name, c->ep, c->esp);
            }
        }
    }
    /* this rank's exchanges by (pass, layer, chunk) */
    for (uint32_t t = 0; t < n; t++)
        if (g->rank[t] == rank && (c->tkind[t] == K_DISPATCH || c->tkind[t] == K_COMBINE) &&
            c->tj[t] >= 0)
            c->tx[c->tpass[t]][c->tkind[t] == K_DISPATCH ? 0 : 1][(size_t)c->tl[t] * TC_MAXR +
                                                                   c->tj[t]] = t;
    free(cnt);
    if (c->T < 1 || c->slots < 1)
        BAD("check: the graph has no forward attention or order task on rank 0");
    if ((size_t)ar != c->NG)
        BAD("check: the AllReduce pieces of rank %d cover %lld floats; model '%s' has %zu dense "
            "gradient floats", rank, (long long)ar, m->name, c->NG);
    c->C = (c->slots + c->ep - 1) / c->ep;
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < c->L; l++) {
            int r = c->rdeg[pass][l];
            if (r < 1 || r > TC_MAXR) BAD("check: layer %d has %d expert chunks", l, r);
            c->q[pass][l] = (c->slots + c->ep * r - 1) / (c->ep * r);
        }
    /* the chunks' shapes and transfers against the model */
    for (uint32_t t = 0; t < n; t++) {
        if (g->rank[t] != rank) continue;
        int kd = c->tkind[t], l = c->tl[t], pass = c->tpass[t];
        int64_t q = l >= 0 ? c->q[pass][l] : 0;
        if ((kd == K_EXPERT || kd == K_DGRAD || kd == K_WGRAD) &&
            tg_task_args(g, t)[0] != q * c->ep * c->esp)
            BAD("check: %s: %lld tokens, expected %lld", ex_task_desc(g, t, d, sizeof d),
                (long long)tg_task_args(g, t)[0], (long long)(q * c->ep * c->esp));
        if (kd == K_DISPATCH || kd == K_COMBINE)
            for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
                if (g->xfer_bytes[x] != q * c->M * c->B || g->xfer_peer[x] % c->esp != c->px)
                    BAD("check: %s: transfer of %lld bytes with rank %d; expected %lld bytes "
                        "with an EP peer", ex_task_desc(g, t, d, sizeof d),
                        (long long)g->xfer_bytes[x], g->xfer_peer[x], (long long)(q * c->M * c->B));
        if ((kd == K_EXPERT || kd == K_DISPATCH || kd == K_COMBINE || kd == K_ALLGATHER ||
             kd == K_RS || kd == K_DGRAD || kd == K_WGRAD) && c->tj[t] < 0)
            BAD("check: %s: a chunked task without .mb<j>", ex_task_desc(g, t, d, sizeof d));
    }
    double floats = (double)c->L * c->El * 6 * c->M * c->f + 12.0 * c->L * c->T * c->M +
                    3.0 * c->NG + (double)c->L * c->P * c->C * c->M * 2;
    if (rank == 0) /* the reference: every expert's weights and gradients, every rank's state */
        floats += 12.0 * c->L * c->E * c->M * c->f + c->P * (12.0 * c->L * c->T * c->M + c->NG);
    if (floats > TC_MAX_FLOATS)
        BAD("check: %.1f GiB of fp32 state per rank; the limit is %.0f GiB (use a smaller "
            "model, --batch or --seq)", floats * 4 / (1 << 30), TC_MAX_FLOATS * 4 / (1 << 30));
    if (rs_init(c, &c->rs, rank) != 0 || draw_weights(c, c->gx * c->El, (c->gx + 1) * c->El))
        BAD("check: out of memory for weights and activations");
    size_t nb = 2 * (size_t)c->L * TC_MAXR;
    c->gs = calloc(c->NG, sizeof(float));
    c->xs = calloc((size_t)c->L * c->P * c->C * c->M, sizeof(float));
    c->xid = malloc((size_t)c->L * c->P * c->C * sizeof(int32_t));
    c->scr = malloc(4 * (size_t)c->fs * sizeof(float) + 16);
    c->lb = calloc(nb, sizeof(float *)), c->gb = calloc(nb, sizeof(float *));
    c->po = calloc(nb, sizeof(float *)), c->ro = calloc(nb, sizeof(float *));
    c->xbuf = calloc(g->nxfers + 1, sizeof(void *));
    c->xmeta = calloc(g->nxfers + 1, sizeof(int32_t *));
    if (!c->gs || !c->xs || !c->xid || !c->scr || !c->lb || !c->gb || !c->po || !c->ro ||
        !c->xbuf || !c->xmeta)
        BAD("check: out of memory");
    for (size_t i = 0; i < (size_t)c->L * c->P * c->C; i++) c->xid[i] = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int l = 0; l < c->L; l++)
            for (int j = 0; j < c->rdeg[pass][l]; j++) {
                size_t b = ci(c, pass, l, j), rows = (size_t)c->ep * c->q[pass][l];
                c->lb[b] = calloc(rows * (c->M + 1), sizeof(float));
                c->gb[b] = calloc(rows * c->esp * (c->M + 1), sizeof(float));
                c->po[b] = calloc(rows * c->esp * c->M, sizeof(float));
                c->ro[b] = calloc(rows * c->M, sizeof(float));
                if (!c->lb[b] || !c->gb[b] || !c->po[b] || !c->ro[b]) BAD("check: out of memory");
            }
    for (uint32_t x = 0; x < g->nxfers; x++) {
        if (g->rank[g->xfer_task[x]] != rank) continue;
        c->xbuf[x] = calloc((size_t)g->xfer_bytes[x] + 1, 1);
        c->xmeta[x] = calloc((size_t)(g->xfer_bytes[x] / (c->M * c->B)) + 1, sizeof(int32_t));
        if (!c->xbuf[x] || !c->xmeta[x]) BAD("check: out of memory");
    }
    /* compute tasks of a rank share one stream (one scratch) */
    for (uint32_t t = 0, st = TG_NONE; t < n; t++) {
        if (g->rank[t] != rank || tg_task_kind(g, t) != TG_KIND_COMPUTE) continue;
        if (st == TG_NONE) st = g->stream[t];
        if (g->stream[t] != st)
            BAD("check: %s: rank %d runs compute on two streams; check mode needs one",
                ex_task_desc(g, t, d, sizeof d), rank);
    }
    c->payload = (ex_payload){.user = c, .compute = hook_compute, .xfer_buf = hook_xfer_buf,
                              .xfer_meta = hook_xfer_meta, .coll_buf = hook_coll};
    return c;
fail:
    ms_err_prefix(err, "rank %d", rank);
    ex_tcheck_free(c);
    return NULL;
}

/* ---- the reference step on rank 0 ----------------------------------------------------- */

/* Every rank's forward and backward in one process, the experts unsharded per row but
 * summed shard by shard in ESP order (as the ReduceScatter adds them). Fills the reference
 * dense gradients (summed over the ranks) and expert gradients (all experts). */
static int reference(ex_tcheck *c, double *dense, double **r1, double **r3, double **r2,
                     double *loss, ms_err *err)
{
    int P = c->P, M = c->M, C = c->C, ep = c->ep;
    rstate *st = calloc((size_t)P, sizeof *st);
    float *y = malloc((size_t)M * sizeof *y), *part = malloc((size_t)M * sizeof *part);
    float *xr = malloc((size_t)M * sizeof *xr), *s = malloc(4 * (size_t)c->f * sizeof *s + 16);
    int rc = -1;
    if (!st || !y || !part || !xr || !s) goto oom;
    for (int x = 0; x < P; x++)
        if (rs_init(c, &st[x], x) != 0) goto oom;
    for (int l = 0; l < c->L; l++) {
        for (int x = 0; x < P; x++) {
            f_attn_in(c, &st[x], l), f_attn_core(c, &st[x], l), f_attn_out(c, &st[x], l);
            f_gate(c, &st[x], l), f_order(c, &st[x], l);
        }
        for (int x = 0; x < P; x++)
            for (int g = 0; g < ep; g++)
                for (int cap = 0; cap < C; cap++) {
                    rstate *sx = &st[x];
                    int32_t r = sx->rows[((size_t)l * ep + g) * C + cap];
                    if (r < 0) continue;
                    int e = sx->se[(size_t)l * c->T * c->k + r];
                    memcpy(xr, LTM(sx, hh, l) + (size_t)(r / c->k) * M, (size_t)M * sizeof *xr);
                    ex_ck_row_round(xr, M, c->B);
                    for (int p = 0; p < c->esp; p++) {
                        ffn_row_fwd(c, l * c->E + e, p * c->fs, (p + 1) * c->fs, xr, p ? part : y, s);
                        for (int i = 0; p && i < M; i++) y[i] += part[i];
                    }
                    ex_ck_row_round(y, M, c->B);
                    memcpy(sx->yb + (((size_t)l * ep + g) * C + cap) * M, y, (size_t)M * sizeof *y);
                }
        for (int x = 0; x < P; x++) f_combine(c, &st[x], l);
    }
    if (loss) { /* the loss whose gradient the backward computes: sum over ranks <dX_L, X_L> */
        double sum = 0;
        size_t n = (size_t)c->T * M;
        for (int x = 0; x < P; x++)
            for (size_t i = 0; i < n; i++)
                sum += (double)st[x].dx[(size_t)c->L * n + i] * st[x].xin[(size_t)c->L * n + i];
        *loss = sum;
    }
    for (int l = c->L - 1; l >= 0; l--) {
        for (int x = 0; x < P; x++) b_iorder(c, &st[x], l);
        for (int x = 0; x < P; x++)
            for (int g = 0; g < ep; g++)
                for (int cap = 0; cap < C; cap++) {
                    rstate *sx = &st[x];
                    int32_t r = sx->rows[((size_t)l * ep + g) * C + cap];
                    float *dxb = sx->dxb + ((size_t)g * C + cap) * M;
                    memset(dxb, 0, (size_t)M * sizeof *dxb);
                    if (r < 0) continue;
                    int e = sx->se[(size_t)l * c->T * c->k + r], le = l * c->E + e;
                    float *dy = sx->dys + ((size_t)g * C + cap) * M;
                    memcpy(xr, LTM(sx, hh, l) + (size_t)(r / c->k) * M, (size_t)M * sizeof *xr);
                    ex_ck_row_round(xr, M, c->B);
                    ex_ck_row_round(dy, M, c->B);
                    for (int p = 0; p < c->esp; p++) {
                        ffn_row_bwd(c, le, p * c->fs, (p + 1) * c->fs, xr, dy, p ? part : y, r1[le],
                                    r3[le], r2[le], s);
                        for (int i = 0; p && i < M; i++) y[i] += part[i];
                    }
                    memcpy(dxb, y, (size_t)M * sizeof *y);
                    if (c->corrupt == 3 && l == c->L - 1) /* test hook: a wrong dgrad */
                        for (int i = 0; i < M; i++) dxb[i] *= 1.1f;
                    ex_ck_row_round(dxb, M, c->B);
                }
        for (int x = 0; x < P; x++) {
            rstate *sx = &st[x];
            b_order(c, sx, l), b_gate_dgrad(c, sx, l), b_gate_wgrad(c, sx, l);
            b_attn_dgrad(c, sx, l, 0), b_attn_wgrad(c, sx, l, 0), b_attn_core(c, sx, l);
            b_attn_dgrad(c, sx, l, 1), b_attn_wgrad(c, sx, l, 1);
        }
    }
    for (size_t i = 0; i < c->NG; i++) {
        double sum = 0;
        for (int x = 0; x < P; x++) sum += st[x].gv[i];
        dense[i] = sum;
    }
    rc = 0;
    goto out;
oom:
    ms_err_set(err, "check: rank 0: out of memory for the reference step");
out:
    for (int x = 0; st && x < P; x++) rs_release(&st[x]);
    free(st), free(y), free(part), free(xr), free(s);
    return rc;
}

/* max |got - ref| / (|ref| + floor) over n values at stride-separated runs: rows of `len`
 * values starting at ref + off, every `stride` values, `nrows` of them; floor from the
 * whole tensor ref[0..ntot). */
static double cmp(const float *got, const double *ref, size_t ntot, size_t off, size_t len,
                  size_t stride, size_t nrows)
{
    double ss = 0, mx = 0;
    for (size_t i = 0; i < ntot; i++) ss += (double)ref[i] * ref[i];
    double floor = TC_FLOOR * sqrt(ss / (double)(ntot ? ntot : 1));
    if (floor == 0) floor = 1e-30;
    for (size_t r = 0; r < nrows; r++)
        for (size_t i = 0; i < len; i++) {
            size_t q = off + r * stride + i;
            double e = fabs((double)got[q] - ref[q]) / (fabs((double)ref[q]) + floor);
            if (!(e <= mx)) mx = e; /* NaN is the worst */
        }
    return mx;
}

int ex_tcheck_compare(ex_tcheck *c, ex_result *res, ms_err *err)
{
    size_t ef = (size_t)c->M * c->f, ne = (size_t)c->L * c->El * 3 * ef;
    float *mine = malloc(ne * sizeof *mine + 1);
    int local = 0;
    double stat[4] = {0, 0, 0, 0}; /* max err, failed on rank 0, dense err, expert err */
    if (!mine) local = ms_err_set(err, "check: rank %d: out of memory", c->rank);
    for (int l = 0; mine && l < c->L; l++)
        for (int e = 0; e < c->El; e++) {
            int le = l * c->E + c->gx * c->El + e;
            float *o = mine + ((size_t)l * c->El + e) * 3 * ef;
            for (size_t i = 0; i < ef; i++)
                o[i] = (float)c->g1[le][i], o[ef + i] = c->g3[le] ? (float)c->g3[le][i] : 0,
                o[2 * ef + i] = (float)c->g2[le][i];
        }
    float *gd = NULL, *ge = NULL;
    double *dense = NULL, **r1 = NULL, **r3 = NULL, **r2 = NULL;
    if (c->rank == 0) {
        dense = malloc(c->NG * sizeof *dense);
        gd = malloc(c->NG * sizeof *gd);
        ge = malloc(ne * sizeof *ge + 1);
        r1 = calloc((size_t)c->L * c->E, sizeof *r1);
        r3 = calloc((size_t)c->L * c->E, sizeof *r3);
        r2 = calloc((size_t)c->L * c->E, sizeof *r2);
        for (size_t i = 0; r1 && r2 && r3 && i < (size_t)c->L * c->E; i++) {
            r1[i] = calloc(ef, sizeof(double)), r3[i] = calloc(ef, sizeof(double));
            r2[i] = calloc(ef, sizeof(double));
            if (!r1[i] || !r3[i] || !r2[i]) local = -1;
        }
        if (!dense || !gd || !ge || !r1 || !r3 || !r2 || local)
            local = ms_err_set(err, "check: rank 0: out of memory for the comparison");
        /* the reference needs every expert's weights */
        if (!local) {
            free_weights(c);
            if (draw_weights(c, 0, c->E) != 0)
                local = ms_err_set(err, "check: rank 0: out of memory for the reference weights");
        }
        if (!local && reference(c, dense, r1, r3, r2, NULL, err) != 0) local = -1;
    }
    /* every rank sends its reduced dense gradients and its expert shards; rank 0 compares
     * them one rank at a time (and receives even after a failure, so nobody blocks) */
    double ed = 0, ee = 0;
    for (int y = 0; y < c->P; y++) {
        ms_err e2;
        if (c->rank == y && y != 0) {
            if (ex_send_bytes(c->gs, c->NG * sizeof(float), 0, TAG_DENSE, &e2) != 0 ||
                ex_send_bytes(mine ? mine : c->gs, mine ? ne * sizeof(float) : 0, 0, TAG_EXPERT,
                              &e2) != 0) {
                if (!local) *err = e2;
                local = -1;
            }
        }
        if (c->rank != 0) continue;
        if (y == 0) {
            if (gd) memcpy(gd, c->gs, c->NG * sizeof *gd);
            if (ge && mine) memcpy(ge, mine, ne * sizeof *ge);
        } else {
            float *sd = gd ? gd : malloc(c->NG * sizeof *sd), *sx = ge ? ge : malloc(ne * sizeof *sx + 1);
            if (!sd || !sx || ex_recv_bytes(sd, c->NG * sizeof(float), y, TAG_DENSE, &e2) != 0 ||
                ex_recv_bytes(sx, ne * sizeof(float), y, TAG_EXPERT, &e2) != 0) {
                if (!local) *err = e2;
                local = -1;
            }
            if (!gd) free(sd);
            if (!ge) free(sx);
        }
        if (local) continue;
        for (int l = 0; l < c->L; l++)
            for (int part = 0; part < 3; part++) {
                size_t o = goff(c, l, part), len = part == 0 ? (size_t)c->M * c->E
                                                   : part == 1 ? (size_t)c->A * c->M
                                                               : (size_t)c->M * c->Q;
                double v = cmp(gd + o, dense + o, len, 0, len, len, 1);
                if (!(v <= ed)) ed = v;
            }
        int gy = y / c->esp, py = y % c->esp;
        size_t f0 = (size_t)py * c->fs;
        for (int l = 0; l < c->L; l++)
            for (int e = 0; e < c->El; e++) {
                int le = l * c->E + gy * c->El + e;
                const float *o = ge + ((size_t)l * c->El + e) * 3 * ef;
                double v1 = cmp(o, r1[le], ef, f0, c->fs, c->f, c->M);        /* W1 columns */
                double v3 = c->gemms == 3 ? cmp(o + ef, r3[le], ef, f0, c->fs, c->f, c->M) : 0;
                double v2 = cmp(o + 2 * ef, r2[le], ef, f0 * c->M, (size_t)c->fs * c->M, 1, 1);
                if (!(v1 <= ee)) ee = v1;
                if (!(v3 <= ee)) ee = v3;
                if (!(v2 <= ee)) ee = v2;
            }
    }
    if (c->rank == 0) {
        stat[0] = ed > ee || ed != ed ? ed : ee, stat[2] = ed, stat[3] = ee;
        stat[1] = local != 0;
        for (size_t i = 0; r1 && i < (size_t)c->L * c->E; i++) free(r1[i]), free(r3[i]), free(r2[i]);
    }
    free(mine), free(dense), free(gd), free(ge), free(r1), free(r3), free(r2);
    return ex_ck_finish(stat, (int)(sizeof stat / sizeof stat[0]), local, c->rank, TC_RTOL, res, err);
}

/* ---- finite-difference check of the backward ------------------------------------------ */

/* Central difference of the loss for weight w[i], h relative to the weight's scale. */
static int fd_one(ex_tcheck *c, float *w, size_t i, double h, double **s1, double **s3,
                  double **s2, double *dense, double *out, ms_err *err)
{
    float w0 = w[i];
    double lp, lm;
    w[i] = (float)(w0 + h);
    double hp = (double)w[i] - w0;
    if (reference(c, dense, s1, s3, s2, &lp, err) != 0) return -1;
    w[i] = (float)(w0 - h);
    double hm = w0 - (double)w[i];
    if (reference(c, dense, s1, s3, s2, &lm, err) != 0) return -1;
    w[i] = w0;
    *out = (lp - lm) / (hp + hm);
    return 0;
}

int ex_tcheck_gradcheck(const char *model, int layers, int ranks, int esp, int tokens,
                        uint64_t seed, double *max_err, int *nchecked, ms_err *err)
{
    ex_tcheck *c = calloc(1, sizeof *c);
    if (!c) return ms_err_set(err, "gradcheck: out of memory");
    int rc = -1;
    size_t nle = 0, ef = 0;
    double *dense = NULL, *sd = NULL, **r[6] = {0};
    *max_err = 0, *nchecked = 0;
    const char *cor = getenv(CORRUPT_ENV);
    c->corrupt = cor && atoi(cor) == 3 ? 3 : 0;
    c->seed = seed, c->P = ranks, c->esp = esp, c->T = tokens;
    if (model_load(model, &c->m, err) != 0) goto out;
    if (layers > 0 && model_keep_layers(&c->m, layers, err) != 0) goto out;
    const model_cfg *m = &c->m;
    c->L = m->layers, c->M = m->hidden, c->E = m->routed_experts, c->k = m->top_k;
    c->A = m->heads * m->v_head_dim;
    c->Q = m->heads * m->head_dim + m->kv_heads * (m->head_dim + m->v_head_dim);
    c->f = m->expert_inter, c->gemms = m->ffn_gemms;
    c->B = 4; /* fp32 wire: bf16 rounding is piecewise constant, so not differentiable */
    if (esp < 1 || ranks % esp || c->E % (ranks / esp) || c->f % esp || tokens < 1) {
        ms_err_set(err, "gradcheck: %d ranks, ESP %d, %d tokens do not fit model '%s'", ranks,
                   esp, tokens, m->name);
        goto out;
    }
    c->ep = ranks / esp, c->El = c->E / c->ep, c->fs = c->f / esp;
    c->slots = c->k * tokens, c->C = (c->slots + c->ep - 1) / c->ep;
    c->per_layer = (size_t)c->M * c->E + (size_t)c->A * c->M + (size_t)c->M * c->Q;
    c->NG = c->per_layer * c->L;
    nle = (size_t)c->L * c->E, ef = (size_t)c->M * c->f;
    dense = malloc(c->NG * sizeof *dense), sd = malloc(c->NG * sizeof *sd);
    for (int q = 0; q < 6; q++) {
        r[q] = calloc(nle, sizeof *r[q]);
        for (size_t i = 0; r[q] && i < nle; i++)
            if (!(r[q][i] = calloc(ef, sizeof(double)))) goto oom;
        if (!r[q]) goto oom;
    }
    if (!dense || !sd || draw_weights(c, 0, c->E) != 0) goto oom;
    if (reference(c, dense, r[0], r[1], r[2], NULL, err) != 0) goto out;
    /* per layer and tensor: the entry of largest gradient and one fixed other entry */
    for (int l = 0; l < c->L; l++)
        for (int tsr = 0; tsr < 6; tsr++) {
            float *w;
            const double *g;
            size_t n;
            int e = (int)(mix(seed, l, 77, tsr) % (uint64_t)c->E);
            if (tsr < 3) {
                w = tsr == 0 ? c->wg + (size_t)l * c->M * c->E
                    : tsr == 1 ? c->wo + (size_t)l * c->A * c->M
                               : c->wqkv + (size_t)l * c->M * c->Q;
                g = dense + goff(c, l, tsr);
                n = tsr == 0 ? (size_t)c->M * c->E : tsr == 1 ? (size_t)c->A * c->M
                                                              : (size_t)c->M * c->Q;
            } else {
                if (tsr == 4 && c->gemms != 3) continue;
                size_t le = (size_t)l * c->E + e;
                w = tsr == 3 ? c->w1[le] : tsr == 4 ? c->w3[le] : c->w2[le];
                g = r[tsr - 3][le];
                n = ef;
            }
            size_t imax = 0;
            double gmax = 0;
            for (size_t i = 0; i < n; i++)
                if (fabs(g[i]) > gmax) gmax = fabs(g[i]), imax = i;
            if (gmax == 0) continue; /* an expert nobody routed to */
            size_t pick[2] = {imax, (size_t)(mix(seed, l, 78, tsr) % n)};
            for (int q = 0; q < 2; q++) {
                double fd;
                float scale = fabsf(w[pick[q]]) > 1e-2f ? fabsf(w[pick[q]]) : 1e-2f;
                if (fd_one(c, w, pick[q], 5e-2 * scale, r[3], r[4], r[5], sd, &fd, err) != 0)
                    goto out;
                double e2 = fabs(fd - g[pick[q]]) / (fabs(g[pick[q]]) + 0.05 * gmax);
                if (!(e2 <= *max_err)) *max_err = e2;
                ++*nchecked;
            }
        }
    rc = 0;
    goto out;
oom:
    ms_err_set(err, "gradcheck: out of memory");
out:
    for (int q = 0; q < 6; q++) {
        for (size_t i = 0; r[q] && i < nle; i++) free(r[q][i]);
        free(r[q]);
    }
    free(dense), free(sd);
    free_weights(c);
    free(c);
    return rc;
}

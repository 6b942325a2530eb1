/* DEP inference graph builders (naive, pppipe, findep) and the colocated EP baseline.
 * Each builder emits, per layer and micro-batch, the attention segment (projections,
 * attention core, gate), the shared expert, token exchanges carrying the routed tokens'
 * real byte counts, and the routed experts; dependencies and stream orders follow
 * PAPERS.md (FinDEP) and docs/WORKLOADS.md. */
#include "workloads/dep_infer.h"

#include <stdlib.h>
#include <string.h>

#include "workloads/wl_common.h"

#define MAX_TOKENS (INT64_C(1) << 40) /* guards products against overflow */

/* ---- emission helpers ---------------------------------------------------------------- */

typedef struct ctx {
    wl_tasks tk;
    const model_cfg *m;
    const wl_dep_params *p;
} ctx;

/* Adds one task; returns its id, or -1 (c->tk.failed set) on error. */
static int64_t emit(ctx *c, int rank, const char *stream, tg_op op, const int64_t *args,
                    const int64_t *after, int nafter, const char *label)
{
    tg_task_spec t = {.rank = rank, .stream = stream, .op = op, .args = args,
                      .after = after, .nafter = nafter, .label = label};
    return wl_add_task(&c->tk, &t);
}

static int64_t emit_xchg(ctx *c, int rank, const char *stream, const int32_t *peer,
                         const int64_t *bytes, const uint8_t *send, int n,
                         const int64_t *after, int nafter, const char *label)
{
    tg_task_spec t = {.rank = rank, .stream = stream, .op = TG_OP_XCHG,
                      .after = after, .nafter = nafter, .xfer_peer = peer,
                      .xfer_bytes = bytes, .xfer_send = send, .nxfer = n, .label = label};
    return wl_add_task(&c->tk, &t);
}

static int64_t gemm(ctx *c, int rank, int64_t m, int64_t n, int64_t k, int64_t count,
                    const int64_t *after, int nafter, const char *label)
{
    const int64_t a[] = {m, n, k, count};
    return emit(c, rank, "compute", TG_OP_GEMM, a, after, nafter, label);
}

static int64_t ffn(ctx *c, int rank, int64_t tokens, int64_t experts, int64_t inter,
                   const int64_t *after, int nafter, const char *label)
{
    const int64_t a[] = {tokens, experts, c->m->hidden, inter, c->m->ffn_gemms};
    return emit(c, rank, "compute", TG_OP_FFN, a, after, nafter, label);
}

/* Tokens one micro-batch carries per attention rank. */
static int64_t mb_tokens(const wl_dep_params *p)
{
    return p->phase == WL_PREFILL ? (int64_t)p->ma * p->seq : p->ma;
}

/* The attention segment of one micro-batch on one rank: projections, attention core and,
 * in MoE layers, the gate. `after` applies to its first task. Returns its last task. */
static int64_t attention(ctx *c, int rank, int layer, int mb, const int64_t *after,
                         int nafter)
{
    const model_cfg *m = c->m;
    const wl_dep_params *p = c->p;
    int64_t T = mb_tokens(p), M = m->hidden, h = m->heads;
    int64_t sq = p->phase == WL_PREFILL ? p->seq : 1, skv = p->seq;
    char label[64];
    wl_label(label, layer, mb, "attn", -1);
    int64_t last;
    if (m->attn == MODEL_ATTN_MLA) {
        int64_t nope = m->qk_nope_head_dim, rope = m->qk_rope_head_dim, v = m->v_head_dim;
        int64_t ql = m->q_lora_rank, kvl = m->kv_lora_rank;
        /* fused down-projections (queries' only with a q LoRA), then the up-projections */
        last = gemm(c, rank, T, ql + kvl + rope, M, 1, after, nafter, label);
        last = gemm(c, rank, T, h * (nope + rope), ql ? ql : M, 1, NULL, 0, label);
        if (p->phase == WL_PREFILL) {
            gemm(c, rank, T, h * (nope + v), kvl, 1, NULL, 0, label);
            const int64_t a[] = {p->ma, sq, skv, h, h, nope + rope, v};
            emit(c, rank, "compute", TG_OP_ATTN, a, NULL, 0, label);
        } else { /* decode: weight absorption, attention over the latent cache */
            gemm(c, rank, T, kvl, nope, h, NULL, 0, label);
            const int64_t a[] = {p->ma, sq, skv, h, 1, kvl + rope, kvl};
            emit(c, rank, "compute", TG_OP_ATTN, a, NULL, 0, label);
            gemm(c, rank, T, v, kvl, h, NULL, 0, label);
        }
        last = gemm(c, rank, T, M, h * v, 1, NULL, 0, label);
    } else {
        int64_t hkv = m->kv_heads, dk = m->head_dim, dv = m->v_head_dim;
        gemm(c, rank, T, h * dk + hkv * dk + hkv * dv, M, 1, after, nafter, label);
        const int64_t a[] = {p->ma, sq, skv, h, hkv, dk, dv};
        emit(c, rank, "compute", TG_OP_ATTN, a, NULL, 0, label);
        last = gemm(c, rank, T, M, h * dv, 1, NULL, 0, label);
    }
    if (model_layer_is_moe(m, layer)) {
        wl_label(label, layer, mb, "gate", -1);
        const int64_t a[] = {T, M, m->routed_experts};
        last = emit(c, rank, "compute", TG_OP_GATE, a, NULL, 0, label);
    }
    return last;
}

/* The shared experts (MoE layer) or the dense MLP (dense layer) of one micro-batch.
 * Returns its task, or -2 when the layer has neither. */
static int64_t shared(ctx *c, int rank, int layer, int mb, const int64_t *after, int nafter)
{
    const model_cfg *m = c->m;
    int64_t T = mb_tokens(c->p);
    char label[64];
    if (!model_layer_is_moe(m, layer)) {
        wl_label(label, layer, mb, "dense", -1);
        return ffn(c, rank, T, 1, m->dense_inter, after, nafter, label);
    }
    if (m->shared_experts == 0) return -2;
    wl_label(label, layer, mb, "shared", -1);
    /* N shared experts, each seeing every token: FinDEP's 3·N_shared·t_gm(T·M·H) */
    return ffn(c, rank, T * m->shared_experts, m->shared_experts, m->shared_inter, after,
               nafter, label);
}

/* ---- routed tokens ------------------------------------------------------------------- */

/* Spreads n items over k bins as evenly as possible, the remainder going to the bins
 * starting at `rot` (mod k), so repeated splits do not always favour bin 0. */
static inline int64_t share(int64_t n, int k, int bin, int rot)
{
    return n / k + ((((bin - rot) % k) + k) % k < n % k);
}

/* The expert ranks [*lo, *hi) holding expert e of E over ndst ranks: with at least as
 * many experts as ranks, contiguous blocks; with more ranks, replicas (see route_chunk). */
static void expert_ranks(int e, int E, int ndst, int *lo, int *hi)
{
    if (ndst <= E) {
        *lo = (int)((int64_t)e * ndst / E);
        while ((int64_t)(*lo + 1) * E / ndst <= e) (*lo)++;
        *hi = *lo + 1;
    } else {
        *lo = (int)((int64_t)e * ndst / E);
        *hi = (int)((int64_t)(e + 1) * ndst / E);
    }
}

/* Token-expert assignments from each source rank to each expert rank for one chunk:
 * pair[s * ndst + d] (when pair is not NULL) and their totals per expert rank col[d]
 * (when col is not NULL). With at least as many experts as ranks, experts are split into
 * contiguous blocks (rank d holds experts floor(d*E/ndst) .. floor((d+1)*E/ndst) - 1);
 * with more ranks than experts, expert e is replicated on ranks floor(e*ndst/E) ..
 * floor((e+1)*ndst/E) - 1 and its tokens split evenly among its replicas. Each count is
 * then spread over the sources as evenly as possible. Also counts, per destination, the
 * local experts (or replicas) that receive any token. */
static int route_chunk(ctx *c, const routing *r, int moe_layer, int nsrc, int ndst,
                       int64_t chunk_tokens, int64_t *counts, int64_t *pair, int64_t *col,
                       int64_t *busy_experts)
{
    int E = c->m->routed_experts;
    int64_t assignments = chunk_tokens * c->m->top_k * nsrc;
    if (routing_counts(r, moe_layer, assignments, counts, c->tk.err) != 0) return -1;
    if (pair) memset(pair, 0, sizeof *pair * (size_t)nsrc * ndst);
    if (col) memset(col, 0, sizeof *col * (size_t)ndst);
    memset(busy_experts, 0, sizeof *busy_experts * (size_t)ndst);
    for (int e = 0; e < E; e++) {
        int lo, hi; /* ranks holding expert e */
        expert_ranks(e, E, ndst, &lo, &hi);
        for (int d = lo; d < hi; d++) {
            int64_t here = share(counts[e], hi - lo, d - lo, e);
            for (int s = 0; pair && s < nsrc; s++)
                pair[(size_t)s * ndst + d] += share(here, nsrc, s, e + d);
            if (col) col[d] += here;
            if (here > 0) busy_experts[d]++;
        }
    }
    return 0;
}

/* ---- builders ------------------------------------------------------------------------ */

static int check(const model_cfg *m, const topo *t, const wl_dep_params *p, ms_err *err)
{
    if (p->seq < 1) return ms_err_set(err, "--seq must be at least 1 (got %d)", p->seq);
    if (p->r1 < 1) return ms_err_set(err, "--r1 must be at least 1 (got %d)", p->r1);
    if (p->ma < 1) return ms_err_set(err, "--ma must be at least 1 (got %d)", p->ma);
    if (p->r2 < 1) return ms_err_set(err, "--r2 must be at least 1 (got %d)", p->r2);
    int ranks = topo_ranks(t);
    if (p->sched == WL_DEP_EP && p->exchange == WL_EXCHANGE_M2N)
        return ms_err_set(err, "--exchange m2n applies to the DEP schedules (naive, pppipe, "
                               "findep); ep's all-to-all is always pairwise");
    if (p->sched == WL_DEP_EP) {
        if (p->eg != 0 || (p->ag != 0 && p->ag != ranks))
            return ms_err_set(err, "--ag/--eg do not apply to ep: every one of the %d ranks "
                                   "runs attention and experts", ranks);
    } else {
        if (p->ag < 1 || p->eg < 1)
            return ms_err_set(err, "--ag and --eg must both be at least 1 (got %d and %d)",
                              p->ag, p->eg);
        if (p->ag + p->eg != ranks)
            return ms_err_set(err, "--ag %d + --eg %d = %d ranks, but topology '%s' has %d",
                              p->ag, p->eg, p->ag + p->eg, t->name, ranks);
    }
    if (p->sched == WL_DEP_NAIVE && p->r1 != 1)
        return ms_err_set(err, "naive runs one micro-batch: --r1 must be 1 (got %d)", p->r1);
    if (p->sched != WL_DEP_FINDEP && p->r2 != 1)
        return ms_err_set(err, "--r2 (token chunks) applies to findep only (got %d)", p->r2);
    if (p->sched == WL_DEP_FINDEP) {
        if (p->order == WL_ORDER_CUSTOM) {
            if (p->r1 > WL_ORDER_MAX_R1)
                return ms_err_set(err, "--order: a custom order needs --r1 <= %d (got %d)",
                                  WL_ORDER_MAX_R1, p->r1);
            if (!wl_order_valid(p->order_mask, p->r1))
                return ms_err_set(err, "--order: mask 0x%llx is not a valid order of %d "
                                       "attention and %d shared segments",
                                  (unsigned long long)p->order_mask, p->r1, p->r1);
        } else if (p->order != WL_ORDER_ASAS && p->order != WL_ORDER_AASS) {
            return ms_err_set(err, "--order: unknown order %d", (int)p->order);
        }
    }
    int64_t T = mb_tokens(p);
    if ((int64_t)p->ma * p->seq > MAX_TOKENS / ((int64_t)m->top_k * ranks * p->r1))
        return ms_err_set(err, "--ma %d x --seq %d is too large", p->ma, p->seq);
    if (T % p->r2 != 0)
        return ms_err_set(err, "--r2 %d does not divide the %lld tokens of a micro-batch "
                               "(--ma %d%s)", p->r2, (long long)T, p->ma,
                          p->phase == WL_PREFILL ? " x --seq" : "");
    return 0;
}

/* The exchange tasks of build_dep: pairwise xchg lists, or m2n pieces (groups and one
 * count vector per chunk). */
typedef struct exch {
    int m2n;
    int g_all, g_ag, g_eg; /* m2n: groups of all DEP ranks, the AG and the EG */
    int ag, eg;
    int64_t unit;          /* bytes per token-expert assignment */
    int32_t *peer;
    int64_t *bytes;
    uint8_t *flag;
} exch;

static int exch_groups(ctx *c, exch *x)
{
    int32_t *r = malloc((size_t)(x->ag + x->eg) * sizeof *r);
    if (!r) return ms_err_set(c->tk.err, "out of memory building the graph");
    for (int i = 0; i < x->ag + x->eg; i++) r[i] = i;
    x->g_all = tg_add_group(c->tk.g, "dep", r, x->ag + x->eg, 0, c->tk.err);
    x->g_ag = tg_add_group(c->tk.g, "ag", r, x->ag, 0, c->tk.err);
    x->g_eg = tg_add_group(c->tk.g, "eg", r + x->ag, x->eg, 0, c->tk.err);
    free(r);
    return x->g_all < 0 || x->g_ag < 0 || x->g_eg < 0 ? -1 : 0;
}

/* One rank's piece of an A2E (a2e = 1) or E2A exchange of chunk vector `vec`. Pairwise:
 * `pair` is the chunk's [ag x eg] assignment matrix; a rank of the AG (is_ag) lists its
 * row, an EG rank (index d) its column; senders send. */
static int64_t exch_task(ctx *c, const exch *x, int rank, int a2e, int vec, const int64_t *pair,
                         const int64_t *after, int nafter, const char *label)
{
    const char *stream = a2e ? "a2e" : "e2a";
    int is_ag = rank < x->ag;
    if (x->m2n) {
        const int64_t args[] = {x->g_all, x->unit, a2e ? x->g_ag : x->g_eg, vec,
                                a2e ? TG_M2N_PER_RECV : TG_M2N_PER_SEND};
        return emit(c, rank, stream, TG_OP_M2N, args, after, nafter, label);
    }
    int send = a2e == is_ag, n = is_ag ? x->eg : x->ag;
    for (int k = 0; k < n; k++) {
        int a = is_ag ? rank : k, d = is_ag ? k : rank - x->ag;
        x->peer[k] = is_ag ? x->ag + k : k;
        x->bytes[k] = pair[(size_t)a * x->eg + d] * x->unit;
        x->flag[k] = (uint8_t)send;
    }
    return emit_xchg(c, rank, stream, x->peer, x->bytes, x->flag, n, after, nafter, label);
}

/* DEP (naive, pppipe, findep): AG = ranks 0..ag-1, EG = ranks ag..ag+eg-1. */
static int build_dep(ctx *c, const routing *r)
{
    const model_cfg *m = c->m;
    const wl_dep_params *p = c->p;
    int ag = p->ag, eg = p->eg, r1 = p->r1, r2 = p->r2, E = m->routed_experts;
    int64_t chunk = mb_tokens(p) / r2;
    int shared_in_attention = p->sched != WL_DEP_FINDEP;
    size_t n_seg = (size_t)ag * r1, n_chunk = (size_t)r1 * r2;
    exch x = {.m2n = wl_dep_uses_m2n(p), .ag = ag, .eg = eg, .unit = m->hidden * m->dtype_bytes};
    int64_t *seg_end = malloc(n_seg * sizeof *seg_end);      /* last task of A(l,i) */
    int64_t *sh_end = malloc(n_seg * sizeof *sh_end);        /* S(l,i), or -2 */
    int64_t *e2a_recv = malloc(n_seg * r2 * sizeof *e2a_recv); /* previous layer's */
    int64_t *counts = malloc((size_t)E * sizeof *counts);
    int64_t *pair = x.m2n ? NULL : malloc(n_chunk * ag * eg * sizeof *pair);
    int64_t *col = malloc(n_chunk * eg * sizeof *col);      /* tokens per EG rank */
    int64_t *busy = malloc(n_chunk * eg * sizeof *busy);
    int64_t *a2e_recv = malloc((size_t)eg * n_chunk * sizeof *a2e_recv);
    int *vec = malloc(n_chunk * sizeof *vec);
    x.peer = malloc((size_t)(ag > eg ? ag : eg) * sizeof *x.peer);
    x.bytes = malloc((size_t)(ag > eg ? ag : eg) * sizeof *x.bytes);
    x.flag = malloc((size_t)(ag > eg ? ag : eg));
    int64_t *after = malloc(((size_t)r2 + 2) * sizeof *after);
    int rc = -1;
    if (!seg_end || !sh_end || !e2a_recv || !counts || (!x.m2n && !pair) || !col || !busy ||
        !a2e_recv || !vec || !x.peer || !x.bytes || !x.flag || !after) {
        ms_err_set(c->tk.err, "out of memory building the graph");
        goto out;
    }
    if (x.m2n && exch_groups(c, &x) != 0) goto out;
    int have_e2a = 0; /* does the previous layer end with E2A? */
    char label[64];
    for (int l = 0; l < m->layers && !c->tk.failed; l++) {
        int moe = model_layer_is_moe(m, l);
        /* AG compute: attention and shared segments in the schedule's order (findep's
         * order in MoE layers; A S A S otherwise). Position k of 2*r1 is the next A or
         * the next S; as Si follows Ai, A(l,i) still sees layer l-1's S and E2A ends. */
        wl_order ord = p->sched == WL_DEP_FINDEP && moe ? p->order : WL_ORDER_ASAS;
        for (int a = 0; a < ag; a++) {
            int na_seg = 0, ns_seg = 0;
            for (int k = 0; k < 2 * r1; k++) {
                int is_a = ord == WL_ORDER_AASS   ? k < r1
                           : ord == WL_ORDER_ASAS ? k % 2 == 0
                                                  : (int)((p->order_mask >> k) & 1);
                if (is_a) {
                    size_t s = (size_t)a * r1 + na_seg;
                    int na = 0;
                    if (l > 0 && sh_end[s] >= 0) after[na++] = sh_end[s];
                    if (l > 0 && have_e2a)
                        for (int j = 0; j < r2; j++) after[na++] = e2a_recv[s * r2 + j];
                    if (l > 0 && na == 0) after[na++] = seg_end[s];
                    seg_end[s] = attention(c, a, l, na_seg, after, na);
                    na_seg++;
                } else {
                    size_t s = (size_t)a * r1 + ns_seg;
                    sh_end[s] = shared(c, a, l, ns_seg, &seg_end[s], 1);
                    ns_seg++;
                }
            }
        }
        have_e2a = moe;
        if (!moe) continue;
        int ml = l - m->first_dense;
        for (size_t k = 0; k < n_chunk; k++) {
            int64_t *ck = col + k * eg;
            if (route_chunk(c, r, ml, ag, eg, chunk, counts, pair ? pair + k * ag * eg : NULL, ck,
                            busy + k * eg) != 0) {
                c->tk.failed = 1;
                goto out;
            }
            if (x.m2n) {
                wl_label(label, l, (int)(k / r2), NULL, (int)(k % r2));
                if ((vec[k] = tg_add_vec(c->tk.g, label, ck, (uint32_t)eg, 0, c->tk.err)) < 0) {
                    c->tk.failed = 1;
                    goto out;
                }
            }
        }
        /* AG: A2E sends after the attention segment (and the shared expert in naive and
         * pppipe), then the E2A receives */
        for (int a = 0; a < ag; a++)
            for (size_t k = 0; k < n_chunk; k++) {
                size_t s = (size_t)a * r1 + k / r2;
                int64_t dep = shared_in_attention && sh_end[s] >= 0 ? sh_end[s] : seg_end[s];
                wl_label(label, l, (int)(k / r2), "a2e", (int)(k % r2));
                exch_task(c, &x, a, 1, x.m2n ? vec[k] : 0, pair ? pair + k * ag * eg : NULL, &dep,
                          1, label);
            }
        /* EG: receive, compute, send back */
        for (int d = 0; d < eg; d++) {
            for (size_t k = 0; k < n_chunk; k++) {
                wl_label(label, l, (int)(k / r2), "a2e", (int)(k % r2));
                a2e_recv[(size_t)d * n_chunk + k] =
                    exch_task(c, &x, ag + d, 1, x.m2n ? vec[k] : 0,
                              pair ? pair + k * ag * eg : NULL, NULL, 0, label);
            }
            for (size_t k = 0; k < n_chunk; k++) {
                int64_t experts = busy[k * eg + d] ? busy[k * eg + d] : 1;
                wl_label(label, l, (int)(k / r2), "expert", (int)(k % r2));
                int64_t ex = ffn(c, ag + d, col[k * eg + d], experts, m->expert_inter,
                                 &a2e_recv[(size_t)d * n_chunk + k], 1, label);
                wl_label(label, l, (int)(k / r2), "e2a", (int)(k % r2));
                exch_task(c, &x, ag + d, 0, x.m2n ? vec[k] : 0, pair ? pair + k * ag * eg : NULL,
                          &ex, 1, label);
            }
        }
        for (int a = 0; a < ag; a++)
            for (size_t k = 0; k < n_chunk; k++) {
                wl_label(label, l, (int)(k / r2), "e2a", (int)(k % r2));
                e2a_recv[((size_t)a * r1 + k / r2) * r2 + k % r2] =
                    exch_task(c, &x, a, 0, x.m2n ? vec[k] : 0, pair ? pair + k * ag * eg : NULL,
                              NULL, 0, label);
            }
    }
    rc = c->tk.failed ? -1 : 0;
out:
    free(seg_end), free(sh_end), free(e2a_recv), free(counts), free(pair), free(col);
    free(busy), free(a2e_recv), free(vec), free(x.peer), free(x.bytes), free(x.flag);
    free(after);
    return rc;
}

/* Colocated EP: every rank runs attention for its micro-batches and hosts E/P experts;
 * dispatch and combine are all-to-all exchanges (a rank's tokens for its own experts are
 * a transfer to itself, which costs nothing). */
static int build_ep(ctx *c, const routing *r)
{
    const model_cfg *m = c->m;
    const wl_dep_params *p = c->p;
    int P = p->ag, r1 = p->r1, E = m->routed_experts;
    int64_t T = mb_tokens(p), M = m->hidden, B = m->dtype_bytes;
    size_t n_seg = (size_t)P * r1;
    int64_t *seg_end = malloc(n_seg * sizeof *seg_end), *sh_end = malloc(n_seg * sizeof *sh_end);
    int64_t *comb = malloc(n_seg * sizeof *comb), *disp = malloc(n_seg * sizeof *disp);
    int64_t *counts = malloc((size_t)E * sizeof *counts);
    int64_t *pair = malloc((size_t)r1 * P * P * sizeof *pair);
    int64_t *busy = malloc((size_t)r1 * P * sizeof *busy);
    int32_t *peer = malloc(2 * (size_t)P * sizeof *peer);
    int64_t *bytes = malloc(2 * (size_t)P * sizeof *bytes);
    uint8_t *flag = malloc(2 * (size_t)P);
    int rc = -1;
    if (!seg_end || !sh_end || !comb || !disp || !counts || !pair || !busy || !peer || !bytes ||
        !flag) {
        ms_err_set(c->tk.err, "out of memory building the graph");
        goto out;
    }
    int have_comb = 0;
    char label[64];
    for (int l = 0; l < m->layers && !c->tk.failed; l++) {
        int moe = model_layer_is_moe(m, l);
        if (moe)
            for (int i = 0; i < r1; i++)
                if (route_chunk(c, r, l - m->first_dense, P, P, T, counts,
                                pair + (size_t)i * P * P, NULL, busy + (size_t)i * P) != 0) {
                    c->tk.failed = 1;
                    goto out;
                }
        for (int q = 0; q < P; q++) {
            for (int i = 0; i < r1; i++) {
                size_t s = (size_t)q * r1 + i;
                int64_t after[2];
                int na = 0;
                if (l > 0 && sh_end[s] >= 0) after[na++] = sh_end[s];
                if (l > 0 && have_comb) after[na++] = comb[s];
                if (l > 0 && na == 0) after[na++] = seg_end[s];
                seg_end[s] = attention(c, q, l, i, after, na);
                sh_end[s] = shared(c, q, l, i, &seg_end[s], 1);
            }
            if (!moe) continue;
            /* dispatch: send my tokens to every expert rank, receive everyone's for mine */
            for (int i = 0; i < r1; i++) {
                const int64_t *pr = pair + (size_t)i * P * P;
                for (int d = 0; d < P; d++) {
                    peer[d] = d, bytes[d] = pr[(size_t)q * P + d] * M * B, flag[d] = 1;
                    peer[P + d] = d, bytes[P + d] = pr[(size_t)d * P + q] * M * B, flag[P + d] = 0;
                }
                wl_label(label, l, i, "a2e", -1);
                disp[(size_t)q * r1 + i] = emit_xchg(c, q, "a2e", peer, bytes, flag, 2 * P,
                                                     &seg_end[(size_t)q * r1 + i], 1, label);
            }
            for (int i = 0; i < r1; i++) {
                const int64_t *pr = pair + (size_t)i * P * P;
                int64_t tokens = 0;
                for (int s2 = 0; s2 < P; s2++) tokens += pr[(size_t)s2 * P + q];
                int64_t experts = busy[(size_t)i * P + q] ? busy[(size_t)i * P + q] : 1;
                wl_label(label, l, i, "expert", -1);
                int64_t ex = ffn(c, q, tokens, experts, m->expert_inter,
                                 &disp[(size_t)q * r1 + i], 1, label);
                for (int d = 0; d < P; d++) {
                    peer[d] = d, bytes[d] = pr[(size_t)q * P + d] * M * B, flag[d] = 1;
                    peer[P + d] = d, bytes[P + d] = pr[(size_t)d * P + q] * M * B, flag[P + d] = 0;
                }
                /* combine returns each source's tokens: what q received from d goes back */
                for (int d = 0; d < P; d++) {
                    bytes[d] = pr[(size_t)d * P + q] * M * B;
                    bytes[P + d] = pr[(size_t)q * P + d] * M * B;
                }
                wl_label(label, l, i, "e2a", -1);
                comb[(size_t)q * r1 + i] =
                    emit_xchg(c, q, "e2a", peer, bytes, flag, 2 * P, &ex, 1, label);
            }
        }
        have_comb = moe;
    }
    rc = c->tk.failed ? -1 : 0;
out:
    free(seg_end), free(sh_end), free(comb), free(disp), free(counts), free(pair), free(busy);
    free(peer), free(bytes), free(flag);
    return rc;
}

tg_graph *wl_dep_build(const model_cfg *m, const topo *t, const wl_dep_params *p0,
                       ms_err *err)
{
    wl_dep_params p = *p0;
    if (p.sched == WL_DEP_EP && p.ag == 0) p.ag = topo_ranks(t);
    if (check(m, t, &p, err) != 0) return NULL;
    routing *own = NULL;
    const routing *r = p.route;
    if (!r) {
        own = routing_create("uniform", m->routed_experts, m->layers, 0, err);
        if (!own) return NULL;
        r = own;
    }
    tg_graph *g = tg_graph_create(NULL);
    if (!g) {
        ms_err_set(err, "out of memory");
        routing_free(own);
        return NULL;
    }
    ctx c = {.tk = {.g = g, .err = err}, .m = m, .p = &p};
    int rc = p.sched == WL_DEP_EP ? build_ep(&c, r) : build_dep(&c, r);
    routing_free(own);
    if (rc != 0 || tg_graph_finalize(g, err) != 0) {
        tg_graph_free(g);
        return NULL;
    }
    return g;
}

double wl_dep_tokens(const wl_dep_params *p, const topo *t)
{
    double ag = p->sched == WL_DEP_EP ? topo_ranks(t) : p->ag;
    double samples = ag * p->r1 * p->ma;
    return p->phase == WL_PREFILL ? samples * p->seq : samples;
}

void wl_dep_defaults(wl_dep_params *p)
{
    memset(p, 0, sizeof *p);
    p->sched = WL_DEP_FINDEP;
    p->r1 = p->ma = p->r2 = 1;
    p->order = WL_ORDER_ASAS;
    p->phase = WL_PREFILL;
}

/* ---- AG orders ----------------------------------------------------------------------- */

int wl_order_valid(uint64_t mask, int r1)
{
    if (r1 < 1 || r1 > WL_ORDER_MAX_R1) return 0;
    int n = 2 * r1;
    if (n < 64 && (mask >> n) != 0) return 0;
    int lead = 0; /* As minus Ss so far */
    for (int k = 0; k < n; k++) {
        lead += (mask >> k) & 1 ? 1 : -1;
        if (lead < 0) return 0;
    }
    return lead == 0;
}

uint64_t wl_order_mask(wl_order order, uint64_t mask, int r1)
{
    if (r1 < 1 || r1 > WL_ORDER_MAX_R1) return 0;
    if (order == WL_ORDER_CUSTOM) return mask;
    uint64_t m = 0;
    for (int k = 0; k < 2 * r1; k++)
        if (order == WL_ORDER_AASS ? k < r1 : k % 2 == 0) m |= UINT64_C(1) << k;
    return m;
}

long long wl_order_count(int r1)
{
    if (r1 < 0 || r1 > WL_ORDER_MAX_R1) return -1;
    /* Catalan(n+1) = Catalan(n) * 2(2n+1) / (n+2); exact in 64 bits up to n = 33 */
    unsigned long long c = 1;
    for (int n = 0; n < r1; n++) c = c * 2 * (2 * n + 1) / (n + 2);
    return (long long)c;
}

int wl_order_parse(const char *s, int r1, wl_order *order, uint64_t *mask, ms_err *err)
{
    if (!strcmp(s, "asas") || !strcmp(s, "aass")) {
        *order = s[1] == 's' ? WL_ORDER_ASAS : WL_ORDER_AASS;
        *mask = 0;
        return 0;
    }
    size_t n = strlen(s);
    if (n == 0 || strspn(s, "AS") != n)
        return ms_err_set(err, "unknown --order '%s' (known: asas, aass, or a string of "
                               "2 x --r1 letters A and S such as AASASS)", s);
    if (r1 < 1 || r1 > WL_ORDER_MAX_R1)
        return ms_err_set(err, "--order '%s': a custom order needs --r1 between 1 and %d "
                               "(got %d)", s, WL_ORDER_MAX_R1, r1);
    if (n != 2 * (size_t)r1)
        return ms_err_set(err, "--order '%s' has %zu segments; --r1 %d needs %d (%d A, %d S)",
                          s, n, r1, 2 * r1, r1, r1);
    uint64_t m = 0;
    int lead = 0, as = 0;
    for (size_t k = 0; k < n; k++) {
        if (s[k] == 'A') m |= UINT64_C(1) << k, as++, lead++;
        else if (--lead < 0)
            return ms_err_set(err, "--order '%s': shared segment S%d at position %zu comes "
                                   "before its attention segment A%d", s, (int)(k - as), k + 1,
                              (int)(k - as));
    }
    if (as != r1)
        return ms_err_set(err, "--order '%s' has %d As and %d Ss; it needs %d of each", s, as,
                          (int)n - as, r1);
    *order = WL_ORDER_CUSTOM;
    *mask = m;
    return 0;
}

void wl_order_format(wl_order order, uint64_t mask, int r1, char *buf, size_t n)
{
    if (n == 0) return;
    if (order != WL_ORDER_CUSTOM || r1 < 1 || r1 > WL_ORDER_MAX_R1) {
        snprintf(buf, n, "%s", order == WL_ORDER_AASS ? "aass" : "asas");
        return;
    }
    size_t k = 0;
    for (; k < 2 * (size_t)r1 && k + 1 < n; k++) buf[k] = (mask >> k) & 1 ? 'A' : 'S';
    buf[k] = 0;
}

/* ---- exchange representation ---------------------------------------------------------- */

static const char *const exchange_names[] = {"auto", "pairwise", "m2n"};

int wl_exchange_parse(const char *s, wl_exchange *x, ms_err *err)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, exchange_names[i])) {
            *x = (wl_exchange)i;
            return 0;
        }
    return ms_err_set(err, "unknown --exchange '%s' (known: auto, pairwise, m2n)", s);
}

const char *wl_exchange_name(wl_exchange x) { return exchange_names[x]; }

int wl_dep_uses_m2n(const wl_dep_params *p)
{
    if (p->sched == WL_DEP_EP || p->exchange == WL_EXCHANGE_PAIRWISE) return 0;
    return p->exchange == WL_EXCHANGE_M2N || (int64_t)p->ag * p->eg > WL_M2N_AUTO_PAIRS;
}

static const char *const sched_names[] = {"naive", "pppipe", "findep", "ep"};

const char *wl_dep_sched_name(wl_dep_sched s) { return sched_names[s]; }

int wl_dep_sched_find(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, sched_names[i])) return i;
    return -1;
}

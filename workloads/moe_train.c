/* MoE training-step builder (dsmoe, tutel, fsmoe): per layer, attention, Gate, Order, then
 * r chunks of Dispatch (inter-node all-to-all), ESP AllGather, Expert, ESP ReduceScatter
 * and Combine, then I-Order; backward runs the reverse chain with expert dgrad and wgrad;
 * the dense-gradient AllReduce is one tail piece or FSMoE's partition. docs/TRAINING.md. */
#include "workloads/moe_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workloads/wl_common.h"

#define MAX_TOKENS (INT64_C(1) << 36) /* per-rank tokens; guards products against overflow */

typedef struct ctx {
    wl_tasks tk;
    const model_cfg *m;
    const wl_train_params *p;
    int ep, esp, P;
    int grp_esp0; /* index of the first ESP group; rank x uses grp_esp0 + x / esp */
    int grp_dp;   /* the all-ranks group of the gradient AllReduce */
} ctx;

static int64_t emit(ctx *c, int rank, const char *stream, tg_op op, const int64_t *args,
                    const int64_t *after, int nafter, const char *label)
{
    if (c->tk.failed) return -1;
    int64_t dep[WL_TRAIN_MAX_R + 4];
    int nd = 0;
    for (int i = 0; i < nafter && nd < WL_TRAIN_MAX_R + 4; i++) /* -1 = "no such task" (e.g. no dispatch at ep 1) */
        if (after[i] >= 0) dep[nd++] = after[i];
    tg_task_spec t = {.rank = rank, .stream = stream, .op = op, .args = args,
                      .after = dep, .nafter = nd, .label = label};
    return wl_add_task(&c->tk, &t);
}

static int64_t gemm(ctx *c, int rank, int64_t m, int64_t n, int64_t k, int64_t count,
                    const char *label)
{
    const int64_t a[] = {m, n, k, count};
    return emit(c, rank, "compute", TG_OP_GEMM, a, NULL, 0, label);
}

/* Order / I-Order (and their backward): a layout copy of the slots x hidden tensor. The
 * IR has no permute op, so it is costed as a gemm of k = 1, count 2, whose roofline time
 * is set by the bytes it moves (one read and one write of the tensor). */
static int64_t permute(ctx *c, int rank, int64_t slots, const int64_t *after, int nafter,
                       const char *label)
{
    const int64_t a[] = {slots, c->m->hidden, 1, 2};
    return emit(c, rank, "compute", TG_OP_GEMM, a, after, nafter, label);
}

/* The all-to-all of one chunk among rank x's EP peers (the rank at x's position in every
 * ESP group): `bytes` to and from each other peer. -1 (no task) when ep = 1. */
static int64_t a2a(ctx *c, int x, int64_t bytes, const int64_t *after, int nafter,
                   const char *label)
{
    if (c->ep == 1 || c->tk.failed) return -1;
    int32_t peer[2048]; /* ep <= 1024 (check) */
    int64_t by[2048];
    uint8_t send[2048];
    int n = 0, pos = x % c->esp;
    for (int s = 1; s >= 0; s--) /* sends first, then receives */
        for (int g = 0; g < c->ep; g++) {
            int y = g * c->esp + pos;
            if (y == x) continue;
            peer[n] = y, by[n] = bytes, send[n] = (uint8_t)s, n++;
        }
    int64_t dep[8];
    int nd = 0;
    for (int i = 0; i < nafter; i++)
        if (after[i] >= 0) dep[nd++] = after[i];
    tg_task_spec t = {.rank = x, .stream = "inter", .op = TG_OP_XCHG, .after = dep,
                      .nafter = nd, .xfer_peer = peer, .xfer_bytes = by, .xfer_send = send,
                      .nxfer = n, .label = label};
    return wl_add_task(&c->tk, &t);
}

/* An ESP collective (AllGather or ReduceScatter) of `bytes` per rank; -1 when esp = 1. */
static int64_t esp_coll(ctx *c, int x, tg_op op, int64_t bytes, int64_t after,
                        const char *label)
{
    if (c->esp == 1) return -1;
    const int64_t a[] = {c->grp_esp0 + x / c->esp, bytes};
    return emit(c, x, "intra", op, a, &after, 1, label);
}

static int64_t ffn(ctx *c, int x, int64_t tokens, int64_t after, const char *label)
{
    const model_cfg *m = c->m;
    const int64_t a[] = {tokens, m->routed_experts / c->ep, m->hidden,
                         m->expert_inter / c->esp, m->ffn_gemms};
    return emit(c, x, "compute", TG_OP_FFN, a, &after, 1, label);
}

static int64_t qkv_width(const model_cfg *m)
{
    return (int64_t)m->heads * m->head_dim + (int64_t)m->kv_heads * (m->head_dim + m->v_head_dim);
}

void wl_train_layer_grad_parts(const model_cfg *m, int64_t part[3])
{
    int64_t M = m->hidden;
    part[0] = M * m->routed_experts * WL_TRAIN_GRAD_BYTES;                  /* gate */
    part[1] = (int64_t)m->heads * m->v_head_dim * M * WL_TRAIN_GRAD_BYTES; /* output proj */
    part[2] = M * qkv_width(m) * WL_TRAIN_GRAD_BYTES;                      /* QKV proj */
}

int64_t wl_train_layer_grad_bytes(const model_cfg *m)
{
    int64_t p[3];
    wl_train_layer_grad_parts(m, p);
    return p[0] + p[1] + p[2];
}

int64_t wl_train_slots(const model_cfg *m, const wl_train_params *p)
{
    double s = ceil(p->capacity * m->top_k * (double)p->batch * p->seq - 1e-9);
    return s < 1 ? 1 : (int64_t)s;
}

double wl_train_tokens(const wl_train_params *p, const topo *t)
{
    return (double)topo_ranks(t) * p->batch * p->seq;
}

static int rb_of(const int *rb, int r, int l) { return rb ? rb[l] : r; }

int wl_train_gap(int layers, const int *rb, int r, int l, int k)
{
    int g = 0;
    for (int i = layers - 1; i > l; i--) g += 2 * rb_of(rb, r, i);
    return g + k;
}

int wl_train_gap_where(int layers, const int *rb, int r, int g, int *l, int *k)
{
    if (g < 0) return -1;
    for (int i = layers - 1; i >= 0; i--) {
        int n = 2 * rb_of(rb, r, i);
        if (g < n) {
            *l = i, *k = g;
            return 0;
        }
        g -= n;
    }
    return -1;
}

int wl_train_layout(const model_cfg *m, const topo *t, const wl_train_params *p, int *ep,
                    int *esp, int *dp, ms_err *err)
{
    int P = topo_ranks(t), G = t->gpus_per_node;
    int s = p->esp ? p->esp : G;
    if (s < 1) return ms_err_set(err, "--esp must be at least 1 (got %d)", s);
    if (G % s != 0)
        return ms_err_set(err, "--esp %d does not divide the %d GPUs per node of '%s': expert "
                               "sharding groups stay inside a node", s, G, t->name);
    int e = p->ep ? p->ep : P / s;
    if (e < 1) return ms_err_set(err, "--ep must be at least 1 (got %d)", e);
    if ((int64_t)e * s != P)
        return ms_err_set(err, "--ep %d x --esp %d = %lld, but '%s' has %d ranks: every rank "
                               "holds one shard of its EP group's experts (no expert replicas)",
                          e, s, (long long)e * s, t->name, P);
    if (m->routed_experts % e != 0)
        return ms_err_set(err, "model '%s' has %d experts, not divisible by --ep %d", m->name,
                          m->routed_experts, e);
    if (m->expert_inter % s != 0)
        return ms_err_set(err, "model '%s': expert FFN hidden %d is not divisible by --esp %d "
                               "(ESP shards it)", m->name, m->expert_inter, s);
    int d = p->dp ? p->dp : P;
    if (d != P)
        return ms_err_set(err, "--dp %d: every one of the %d ranks holds a replica of the dense "
                               "weights (no tensor parallelism), so --dp must be %d", d, P, P);
    *ep = e, *esp = s, *dp = d;
    return 0;
}

/* Where each piece's last byte comes from: part index (layer L-1's gate = 0, in production
 * order). Checks coverage, gap order and production order. */
static int check_pieces(const model_cfg *m, const wl_train_params *p, int ep, int *last_part,
                        ms_err *err)
{
    int L = m->layers, ngaps = wl_train_gap(L, p->r_bwd, p->r, -1, 0);
    int64_t part[3], total = (int64_t)L * wl_train_layer_grad_bytes(m), off = 0;
    wl_train_layer_grad_parts(m, part);
    int prev_gap = -1;
    for (int i = 0; i < p->npieces; i++) {
        const wl_train_piece *q = &p->pieces[i];
        if (q->bytes <= 0 || q->bytes % WL_TRAIN_GRAD_BYTES != 0)
            return ms_err_set(err, "gradient piece %d: %lld bytes is not a positive multiple of "
                                   "%d (fp32)", i, (long long)q->bytes, WL_TRAIN_GRAD_BYTES);
        if (q->gap != WL_TRAIN_TAIL && (q->gap < 0 || q->gap >= ngaps))
            return ms_err_set(err, "gradient piece %d: gap %d out of range (0..%d, or the "
                                   "tail)", i, q->gap, ngaps - 1);
        if (q->gap != WL_TRAIN_TAIL && ep == 1)
            return ms_err_set(err, "gradient piece %d: --ep 1 has no inter-node all-to-all, "
                                   "so only the tail can hold AllReduce pieces", i);
        int g = q->gap == WL_TRAIN_TAIL ? ngaps : q->gap;
        if (g < prev_gap)
            return ms_err_set(err, "gradient piece %d: gap %d comes before piece %d's gap %d; "
                                   "pieces run in order on the allreduce stream", i, q->gap,
                              i - 1, prev_gap);
        prev_gap = g;
        if (q->bytes > total - off)
            return ms_err_set(err, "gradient pieces cover more than the %lld dense-gradient "
                                   "bytes (piece %d ends at byte %lld)", (long long)total, i,
                              (long long)(off + q->bytes));
        off += q->bytes;
        int64_t b = off - 1, lay = b / (total / L), in = b % (total / L);
        int j = in < part[0] ? 0 : in < part[0] + part[1] ? 1 : 2;
        last_part[i] = (int)(lay * 3 + j);
        int producer_layer = L - 1 - (int)lay, gl = 0, gk = 0;
        if (q->gap != WL_TRAIN_TAIL) {
            wl_train_gap_where(L, p->r_bwd, p->r, q->gap, &gl, &gk);
            if (producer_layer <= gl)
                return ms_err_set(err, "gradient piece %d (bytes up to %lld) reduces layer %d's "
                                       "gradients in gap %d of layer %d's backward, before "
                                       "they are produced", i, (long long)off, producer_layer,
                                  q->gap, gl);
        }
    }
    if (off != total)
        return ms_err_set(err, "gradient pieces cover %lld of the %lld dense-gradient bytes",
                          (long long)off, (long long)total);
    return 0;
}

static int check(const model_cfg *m, const topo *t, const wl_train_params *p, int *ep,
                 int *esp, ms_err *err)
{
    if ((unsigned)p->sched > WL_TRAIN_FSMOE)
        return ms_err_set(err, "unknown training schedule %d", (int)p->sched);
    if (p->batch < 1) return ms_err_set(err, "--batch must be at least 1 (got %d)", p->batch);
    if (p->seq < 1) return ms_err_set(err, "--seq must be at least 1 (got %d)", p->seq);
    if (!(p->capacity > 0) || p->capacity > 64)
        return ms_err_set(err, "--capacity must be in (0, 64] (got %g)", p->capacity);
    if (p->r < 1 || p->r > WL_TRAIN_MAX_R)
        return ms_err_set(err, "--r must be in 1..%d (got %d)", WL_TRAIN_MAX_R, p->r);
    if (m->attn == MODEL_ATTN_MLA)
        return ms_err_set(err, "model '%s' uses MLA attention; training graphs support MHA "
                               "and GQA models", m->name);
    if (m->shared_experts > 0 || m->first_dense > 0)
        return ms_err_set(err, "model '%s' has shared experts or dense layers; training graphs "
                               "model attention + routed-expert layers only", m->name);
    if (m->layers > WL_TRAIN_MAX_LAYERS)
        return ms_err_set(err, "model '%s' has %d layers; training graphs take at most %d "
                               "(use --layers)", m->name, m->layers, WL_TRAIN_MAX_LAYERS);
    if ((int64_t)p->batch * p->seq > MAX_TOKENS)
        return ms_err_set(err, "--batch %d x --seq %d is too large", p->batch, p->seq);
    int dp;
    if (wl_train_layout(m, t, p, ep, esp, &dp, err) != 0) return -1;
    if (*ep > 1024) return ms_err_set(err, "--ep %d: at most 1024 EP peers", *ep);
    if (p->sched == WL_TRAIN_DSMOE && p->r != 1)
        return ms_err_set(err, "dsmoe does not pipeline: --r must be 1 (got %d)", p->r);
    if (p->sched != WL_TRAIN_FSMOE && (p->r_fwd || p->r_bwd || p->pieces))
        return ms_err_set(err, "per-layer degrees and gradient pieces apply to fsmoe only");
    for (int l = 0; l < m->layers; l++) {
        int rf = p->r_fwd ? p->r_fwd[l] : p->r, rb = p->r_bwd ? p->r_bwd[l] : p->r;
        if (rf < 1 || rf > WL_TRAIN_MAX_R || rb < 1 || rb > WL_TRAIN_MAX_R)
            return ms_err_set(err, "layer %d: degrees forward %d, backward %d must be in 1..%d",
                              l, rf, rb, WL_TRAIN_MAX_R);
    }
    if (p->pieces && (p->npieces < 1 || p->npieces > WL_TRAIN_MAX_PIECES))
        return ms_err_set(err, "%d gradient pieces: give 1..%d", p->npieces,
                          WL_TRAIN_MAX_PIECES);
    return 0;
}

/* Writes "L<l>.<pass>.mb<j>.<kind>" (j >= 0) or "L<l>.<pass>.<kind>" into buf (96 bytes):
 * labels are written for every task, so without printf. */
static void lab(char *buf, int l, const char *pass, int j, const char *kind)
{
    char *o = buf, num[12];
    *o++ = 'L';
    for (int v = 0; v < 2; v++) {
        int x = v ? j : l, n = 0;
        if (v && x < 0) break;
        if (v) *o++ = 'm', *o++ = 'b';
        do num[n++] = (char)('0' + x % 10), x /= 10; while (x);
        while (n) *o++ = num[--n];
        *o++ = '.';
        if (!v) {
            size_t k = strlen(pass);
            memcpy(o, pass, k), o += k, *o++ = '.';
        }
    }
    size_t k = strlen(kind);
    if (k > 40) k = 40;
    memcpy(o, kind, k), o[k] = 0;
}

/* Emits every task of rank x. */
static void build_rank(ctx *c, int x, const int *last_part, const wl_train_piece *pieces,
                       int npieces, int64_t *producer)
{
    const model_cfg *m = c->m;
    const wl_train_params *p = c->p;
    int L = m->layers, E = m->routed_experts;
    int64_t T = (int64_t)p->batch * p->seq, M = m->hidden, B = m->dtype_bytes;
    int64_t slots = wl_train_slots(m, p), qkv = qkv_width(m);
    int64_t h = m->heads, hkv = m->kv_heads, dk = m->head_dim, dv = m->v_head_dim;
    int64_t first[WL_TRAIN_MAX_R], second[WL_TRAIN_MAX_R], g1[WL_TRAIN_MAX_R];
    int64_t ex[WL_TRAIN_MAX_R], g2[WL_TRAIN_MAX_R];
    char label[96];
    int64_t last_inter = -1;
    /* ---- forward ---- */
    for (int l = 0; l < L && !c->tk.failed; l++) {
        int r = p->r_fwd ? p->r_fwd[l] : p->r;
        int64_t q = (slots + (int64_t)c->ep * r - 1) / ((int64_t)c->ep * r); /* per peer */
        int64_t tok = q * c->ep * c->esp, piece = q * c->ep * M * B;
        lab(label, l, "fwd", -1, "attn");
        gemm(c, x, T, qkv, M, 1, label);
        const int64_t at[] = {p->batch, p->seq, p->seq, h, hkv, dk, dv};
        emit(c, x, "compute", TG_OP_ATTN, at, NULL, 0, label);
        gemm(c, x, T, M, h * dv, 1, label);
        lab(label, l, "fwd", -1, "gate");
        const int64_t ga[] = {T, M, E};
        emit(c, x, "compute", TG_OP_GATE, ga, NULL, 0, label);
        lab(label, l, "fwd", -1, "order");
        int64_t ord = permute(c, x, slots, NULL, 0, label);
        for (int j = 0; j < r; j++) {
            lab(label, l, "fwd", j, "dispatch");
            first[j] = a2a(c, x, q * M * B, &ord, 1, label);
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "fwd", j, "allgather");
            g1[j] = esp_coll(c, x, TG_OP_ALLGATHER, piece, first[j] >= 0 ? first[j] : ord, label);
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "fwd", j, "expert");
            int64_t in = g1[j] >= 0 ? g1[j] : first[j] >= 0 ? first[j] : ord;
            ex[j] = ffn(c, x, tok, in, label);
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "fwd", j, "reducescatter");
            g2[j] = esp_coll(c, x, TG_OP_REDUCESCATTER, piece, ex[j], label);
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "fwd", j, "combine");
            int64_t in = g2[j] >= 0 ? g2[j] : ex[j];
            second[j] = a2a(c, x, q * M * B, &in, 1, label);
            if (second[j] < 0) second[j] = in;
        }
        if (c->ep > 1) last_inter = second[r - 1];
        lab(label, l, "fwd", -1, "iorder");
        permute(c, x, slots, second, r, label);
    }
    /* ---- backward, layer L-1 first ---- */
    int pi = 0; /* next gradient piece */
    int gap = 0;
    for (int l = L - 1; l >= 0 && !c->tk.failed; l--) {
        int r = p->r_bwd ? p->r_bwd[l] : p->r;
        int64_t q = (slots + (int64_t)c->ep * r - 1) / ((int64_t)c->ep * r);
        int64_t tok = q * c->ep * c->esp, piece = q * c->ep * M * B;
        lab(label, l, "bwd", -1, "iorder");
        int64_t io = permute(c, x, slots, NULL, 0, label);
        /* AllReduce pieces of one gap: after their producer and the inter task before the
         * gap; returns the last one (the next inter task waits for it), or -1 */
        int64_t ar_last;
#define GAP_PIECES()                                                                        \
    do {                                                                                   \
        ar_last = -1;                                                                      \
        while (pi < npieces && pieces[pi].gap == gap) {                                    \
            snprintf(label, sizeof label, "L%d.bwd.allreduce.p%d", l, pi);                 \
            const int64_t ar[] = {c->grp_dp, pieces[pi].bytes};                            \
            const int64_t dep[] = {producer[last_part[pi]], last_inter};                   \
            ar_last = emit(c, x, "allreduce", TG_OP_ALLREDUCE, ar, dep, 2, label);        \
            pi++;                                                                          \
        }                                                                                  \
        gap++;                                                                             \
    } while (0)
        for (int j = 0; j < r; j++) {
            GAP_PIECES();
            lab(label, l, "bwd", j, "combine");
            const int64_t dep[] = {io, ar_last};
            first[j] = a2a(c, x, q * M * B, dep, 2, label);
            if (first[j] >= 0) last_inter = first[j];
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "bwd", j, "allgather");
            g1[j] = esp_coll(c, x, TG_OP_ALLGATHER, piece, first[j] >= 0 ? first[j] : io, label);
        }
        for (int j = 0; j < r; j++) {
            int64_t in = g1[j] >= 0 ? g1[j] : first[j] >= 0 ? first[j] : io;
            lab(label, l, "bwd", j, "expert_dgrad");
            ex[j] = ffn(c, x, tok, in, label);
            lab(label, l, "bwd", j, "expert_wgrad");
            ffn(c, x, tok, in, label);
        }
        for (int j = 0; j < r; j++) {
            lab(label, l, "bwd", j, "reducescatter");
            g2[j] = esp_coll(c, x, TG_OP_REDUCESCATTER, piece, ex[j], label);
        }
        for (int j = 0; j < r; j++) {
            GAP_PIECES();
            lab(label, l, "bwd", j, "dispatch");
            int64_t in = g2[j] >= 0 ? g2[j] : ex[j];
            const int64_t dep[] = {in, ar_last};
            second[j] = a2a(c, x, q * M * B, dep, 2, label);
            if (second[j] >= 0) last_inter = second[j];
            else second[j] = in;
        }
#undef GAP_PIECES
        lab(label, l, "bwd", -1, "order");
        permute(c, x, slots, second, r, label);
        size_t part = (size_t)(L - 1 - l) * 3;
        lab(label, l, "bwd", -1, "gate_dgrad");
        gemm(c, x, T, M, E, 1, label);
        lab(label, l, "bwd", -1, "gate_wgrad");
        producer[part] = gemm(c, x, M, E, T, 1, label);
        lab(label, l, "bwd", -1, "attn_dgrad");
        gemm(c, x, T, h * dv, M, 1, label);
        lab(label, l, "bwd", -1, "attn_wgrad");
        producer[part + 1] = gemm(c, x, h * dv, M, T, 1, label);
        lab(label, l, "bwd", -1, "attn_core");
        const int64_t at[] = {p->batch, p->seq, p->seq, h, hkv, dk, dv};
        emit(c, x, "compute", TG_OP_ATTN, at, NULL, 0, label); /* backward ~ 2 x forward */
        emit(c, x, "compute", TG_OP_ATTN, at, NULL, 0, label);
        lab(label, l, "bwd", -1, "attn_dgrad");
        gemm(c, x, T, M, qkv, 1, label);
        lab(label, l, "bwd", -1, "attn_wgrad");
        producer[part + 2] = gemm(c, x, M, qkv, T, 1, label);
    }
    /* ---- the tail: what no gap took ---- */
    for (; pi < npieces && !c->tk.failed; pi++) {
        snprintf(label, sizeof label, "tail.allreduce.p%d", pi);
        const int64_t ar[] = {c->grp_dp, pieces[pi].bytes};
        const int64_t dep[] = {producer[last_part[pi]], last_inter};
        emit(c, x, "allreduce", TG_OP_ALLREDUCE, ar, dep, 2, label);
    }
}

tg_graph *wl_train_build(const model_cfg *m, const topo *t, const wl_train_params *p,
                         ms_err *err)
{
    int ep = 0, esp = 0;
    if (check(m, t, p, &ep, &esp, err) != 0) return NULL;
    int P = topo_ranks(t), L = m->layers;
    wl_train_piece tail = {WL_TRAIN_TAIL, (int64_t)L * wl_train_layer_grad_bytes(m)};
    const wl_train_piece *pieces = p->pieces ? p->pieces : &tail;
    int npieces = p->pieces ? p->npieces : 1;
    wl_train_params pp = *p;
    pp.pieces = pieces, pp.npieces = npieces;
    int *last_part = malloc(sizeof *last_part * (size_t)npieces);
    int64_t *producer = malloc(sizeof *producer * (size_t)L * 3);
    tg_graph *g = tg_graph_create(NULL);
    if (!last_part || !producer || !g) {
        ms_err_set(err, "out of memory building the training graph");
        goto fail;
    }
    if (check_pieces(m, &pp, ep, last_part, err) != 0) goto fail;
    ctx c = {.tk = {.g = g, .err = err}, .m = m, .p = &pp, .ep = ep, .esp = esp, .P = P};
    char name[32];
    int32_t *ranks = malloc(sizeof *ranks * (size_t)P);
    if (!ranks) {
        ms_err_set(err, "out of memory building the training graph");
        goto fail;
    }
    c.grp_esp0 = 0;
    for (int gi = 0; gi < P / esp; gi++) {
        for (int i = 0; i < esp; i++) ranks[i] = gi * esp + i;
        snprintf(name, sizeof name, "esp%d", gi);
        if (tg_add_group(g, name, ranks, esp, 0, err) < 0) c.tk.failed = 1;
    }
    for (int i = 0; i < P; i++) ranks[i] = i;
    c.grp_dp = tg_add_group(g, "dp", ranks, P, 0, err);
    if (c.grp_dp < 0) c.tk.failed = 1;
    free(ranks);
    for (int x = 0; x < P && !c.tk.failed; x++) build_rank(&c, x, last_part, pieces, npieces, producer);
    if (c.tk.failed || tg_graph_finalize(g, err) != 0) goto fail;
    free(last_part), free(producer);
    return g;
fail:
    free(last_part), free(producer);
    tg_graph_free(g);
    return NULL;
}

void wl_train_defaults(wl_train_params *p)
{
    memset(p, 0, sizeof *p);
    p->sched = WL_TRAIN_FSMOE;
    p->batch = 1, p->seq = 1024, p->capacity = 1.0, p->r = 1;
}

static const char *const sched_names[] = {"dsmoe", "tutel", "fsmoe"};

const char *wl_train_sched_name(wl_train_sched s)
{
    return (unsigned)s <= WL_TRAIN_FSMOE ? sched_names[s] : "?";
}

int wl_train_sched_find(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, sched_names[i])) return i;
    return -1;
}

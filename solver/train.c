/* Training-step solvers: dsmoe (r = 1), tutel (one degree in {1,2,4,8} for both passes,
 * picked by trying each, as Tutel's run-time switch does) and fsmoe: FSMoE's piecewise
 * alpha-beta model for per-layer forward/backward degrees and its greedy dense-gradient
 * partition, refined by a simulator-verified search. docs/TRAINING.md, "Solver". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "sim/sim.h"
#include "solver/solve.h"

static const int degrees[] = {1, 2, 4, 8}; /* the degrees Tutel and FSMoE choose among */
#define NDEG 4
#define MIN_PIECE_BYTES (256 * 1024) /* smaller AllReduce pieces are not worth their alpha */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- building and simulating ----------------------------------------------------------- */

typedef struct run {
    tg_graph *g;
    sim_engine *s;
} run;

static void run_free(run *r)
{
    sim_free(r->s);
    tg_graph_free(r->g);
    r->s = NULL, r->g = NULL;
}

static int simulate(const solve_train_request *rq, const wl_train_params *p, double *step_s,
                    run *keep, ms_err *err)
{
    run r = {wl_train_build(rq->m, rq->t, p, err), NULL};
    if (!r.g) return -1;
    r.s = sim_create(r.g, rq->t, rq->db, rq->net ? rq->net : &net_analytic, err);
    if (!r.s || sim_run(r.s, err) != 0) {
        run_free(&r);
        return -1;
    }
    *step_s = sim_get_summary(r.s)->makespan_s;
    if (keep) *keep = r;
    else run_free(&r);
    return 0;
}

int solve_train_simulate(const solve_train_request *rq, const wl_train_params *p,
                         double *step_s, ms_err *err)
{
    return simulate(rq, p, step_s, NULL, err);
}

/* ---- candidates -------------------------------------------------------------------------- */

typedef struct cand {
    wl_train_sched sched;
    int r;
    int rf[WL_TRAIN_MAX_LAYERS], rb[WL_TRAIN_MAX_LAYERS];
    wl_train_piece pieces[WL_TRAIN_MAX_PIECES];
    int npieces; /* 0 = one tail piece */
    double step_s;
} cand;

static void cand_uniform(cand *c, wl_train_sched sched, int r, int layers)
{
    c->sched = sched, c->r = r, c->npieces = 0, c->step_s = INFINITY;
    for (int l = 0; l < layers; l++) c->rf[l] = c->rb[l] = r;
}

static void cand_params(const solve_train_request *rq, const cand *c, wl_train_params *p)
{
    *p = rq->base;
    p->sched = c->sched, p->r = c->r;
    p->r_fwd = p->r_bwd = NULL, p->pieces = NULL, p->npieces = 0;
    if (c->sched == WL_TRAIN_FSMOE) {
        p->r_fwd = c->rf, p->r_bwd = c->rb;
        if (c->npieces > 0) p->pieces = c->pieces, p->npieces = c->npieces;
    }
}

/* ---- FSMoE's performance model ----------------------------------------------------------- */

/* t(r) = a + b / r, fitted through r = 1 and r = 8 (FSMoE: alpha + (n / r) beta). */
typedef struct lin {
    double a, b;
} lin;

static double at(lin f, double r) { return f.a + f.b / r; }

typedef struct model {
    lin a2a, esp, ex;    /* per chunk: one all-to-all, one ESP collective, one expert pass */
    double fwd_fixed_s;  /* attention, gate, Order, I-Order forward */
    double bwd_pre_s;    /* I-Order backward (before the layer's first all-to-all) */
    double bwd_post_s;   /* Order, gate and attention backward (after the last one) */
    double ar_alpha_s, ar_beta_s; /* AllReduce: alpha + beta x bytes */
    int layers;
    int64_t part[3];     /* a layer's dense-gradient bytes in production order */
} model;

static int ctime_of(const solve_train_request *rq, const char *op, const int64_t *a, int n,
                    double *s, ms_err *err)
{
    return cdb_time(rq->db, rq->t->device, op, a, n, s, err);
}

/* Per-chunk task times at degree r, as the builder shapes them. */
static int chunk_times(const solve_train_request *rq, const wl_train_params *p, int ep, int esp,
                       void *net, int r, double *a2a, double *coll, double *ex, ms_err *err)
{
    const model_cfg *m = rq->m;
    int64_t slots = wl_train_slots(m, p), M = m->hidden, B = m->dtype_bytes;
    int64_t q = (slots + (int64_t)ep * r - 1) / ((int64_t)ep * r);
    *a2a = 0;
    for (int gi = 1; gi < ep; gi++) {
        double end = net_analytic.xfer_start(net, 0, 0, 0, gi * esp, (double)(q * M * B));
        if (end > *a2a) *a2a = end;
    }
    int32_t ranks[1024];
    for (int i = 0; i < esp && i < 1024; i++) ranks[i] = i;
    *coll = esp > 1 ? net_analytic.coll_time(net, TG_OP_ALLGATHER, ranks, esp,
                                             (double)(q * ep * M * B))
                    : 0;
    const int64_t f[] = {q * ep * esp, m->routed_experts / ep, M, m->expert_inter / esp,
                         m->ffn_gemms};
    return ctime_of(rq, "ffn", f, 5, ex, err);
}

static int build_model(const solve_train_request *rq, model *md, ms_err *err)
{
    const model_cfg *m = rq->m;
    const wl_train_params *p = &rq->base;
    const topo *t = rq->t;
    int ep, esp, dp;
    if (wl_train_layout(m, t, p, &ep, &esp, &dp, err) != 0) return -1;
    void *net = net_analytic.create(t, err);
    if (!net) return -1;
    double a1, c1, e1, a8, c8, e8;
    int rc = chunk_times(rq, p, ep, esp, net, 1, &a1, &c1, &e1, err);
    if (!rc) rc = chunk_times(rq, p, ep, esp, net, 8, &a8, &c8, &e8, err);
    int P = topo_ranks(t);
    int32_t *ranks = malloc(sizeof *ranks * (size_t)P);
    if (!rc && !ranks) rc = ms_err_set(err, "out of memory");
    if (!rc) {
        for (int i = 0; i < P; i++) ranks[i] = i;
        double z = net_analytic.coll_time(net, TG_OP_ALLREDUCE, ranks, P, 0);
        double one = net_analytic.coll_time(net, TG_OP_ALLREDUCE, ranks, P, 1e9);
        md->ar_alpha_s = z, md->ar_beta_s = (one - z) / 1e9;
    }
    free(ranks);
    net_analytic.free(net);
    if (rc) return -1;
    md->a2a.b = (a1 - a8) * 8 / 7, md->a2a.a = a1 - md->a2a.b;
    md->esp.b = (c1 - c8) * 8 / 7, md->esp.a = c1 - md->esp.b;
    md->ex.b = (e1 - e8) * 8 / 7, md->ex.a = e1 - md->ex.b;
    /* the fixed compute of a layer, with the builder's shapes */
    int64_t T = (int64_t)p->batch * p->seq, M = m->hidden, E = m->routed_experts;
    int64_t h = m->heads, hkv = m->kv_heads, dk = m->head_dim, dv = m->v_head_dim;
    int64_t qkv = h * dk + hkv * (dk + dv), slots = wl_train_slots(m, p);
    const int64_t g_qkv[] = {T, qkv, M, 1}, g_out[] = {T, M, h * dv, 1};
    const int64_t at_[] = {p->batch, p->seq, p->seq, h, hkv, dk, dv};
    const int64_t gate[] = {T, M, E}, perm[] = {slots, M, 1, 2};
    const int64_t gd[] = {T, M, E, 1}, gw[] = {M, E, T, 1};
    const int64_t od[] = {T, h * dv, M, 1}, ow[] = {h * dv, M, T, 1};
    const int64_t qd[] = {T, M, qkv, 1}, qw[] = {M, qkv, T, 1};
    double s[12];
    if (ctime_of(rq, "gemm", g_qkv, 4, &s[0], err) || ctime_of(rq, "attn", at_, 7, &s[1], err) ||
        ctime_of(rq, "gemm", g_out, 4, &s[2], err) || ctime_of(rq, "gate", gate, 3, &s[3], err) ||
        ctime_of(rq, "gemm", perm, 4, &s[4], err) || ctime_of(rq, "gemm", gd, 4, &s[5], err) ||
        ctime_of(rq, "gemm", gw, 4, &s[6], err) || ctime_of(rq, "gemm", od, 4, &s[7], err) ||
        ctime_of(rq, "gemm", ow, 4, &s[8], err) || ctime_of(rq, "gemm", qd, 4, &s[9], err) ||
        ctime_of(rq, "gemm", qw, 4, &s[10], err))
        return -1;
    md->fwd_fixed_s = s[0] + s[1] + s[2] + s[3] + 2 * s[4];
    md->bwd_pre_s = s[4];
    md->bwd_post_s = s[4] + s[5] + s[6] + s[7] + s[8] + 2 * s[1] + s[9] + s[10];
    md->layers = m->layers;
    wl_train_layer_grad_parts(m, md->part);
    return 0;
}

/* A chunked chain on three resources (inter: first + last all-to-all; intra: the two ESP
 * collectives; compute: the expert pass): one chunk's latency plus (r-1) times the
 * bottleneck. Backward doubles the expert's alpha and beta (dgrad + wgrad) and, in the
 * inter-bound case, adds the AllReduce time ar_s hidden in the layer's windows. */
static double layer_time(const model *md, double r, int bwd, double ar_s)
{
    double d = at(md->a2a, r), g = at(md->esp, r), e = (bwd ? 2 : 1) * at(md->ex, r);
    double chain = 2 * d + 2 * g + e;
    double pipe = chain + (r - 1) * fmax(2 * d, fmax(2 * g, e));
    if (bwd) pipe = fmax(pipe, r * 2 * d + ar_s + 2 * g + e);
    return pipe;
}

/* FSMoE's degree choice: the continuous optimum of the piecewise-convex model on [1, 8]
 * (golden section: the max of convex cases is convex), rounded to the neighbouring
 * powers of two and re-checked with the model. */
static int best_degree(const model *md, int bwd, double ar_s)
{
    double lo = 1, hi = 8, phi = (sqrt(5.0) - 1) / 2;
    for (int i = 0; i < 60; i++) {
        double x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo);
        if (layer_time(md, x1, bwd, ar_s) <= layer_time(md, x2, bwd, ar_s)) hi = x2;
        else lo = x1;
    }
    double rc = (lo + hi) / 2;
    int down = 1;
    while (down * 2 <= rc) down *= 2;
    int up = down < 8 ? down * 2 : 8;
    return layer_time(md, up, bwd, ar_s) < layer_time(md, down, bwd, ar_s) - 1e-15 ? up : down;
}

/* Gradient bookkeeping: bytes in production order, consumed from the front. */
typedef struct gradq {
    int64_t total, off; /* bytes; off = first unassigned byte */
    int64_t layer_bytes;
    int layers;
} gradq;

/* Bytes of layers >= lmin (produced first) still unassigned. */
static int64_t avail_from(const gradq *q, int lmin)
{
    int64_t end = (int64_t)(q->layers - lmin) * q->layer_bytes;
    return end > q->off ? end - q->off : 0;
}

static int add_piece(cand *c, int gap, int64_t bytes)
{
    bytes -= bytes % WL_TRAIN_GRAD_BYTES;
    if (bytes <= 0 || c->npieces >= WL_TRAIN_MAX_PIECES - 2) return 0;
    c->pieces[c->npieces].gap = gap, c->pieces[c->npieces].bytes = bytes;
    c->npieces++;
    return 1;
}

/* Fits a piece of at most `avail` bytes into a window of `cap_s` seconds (alpha first). */
static int64_t fit_bytes(const model *md, double cap_s, int64_t avail)
{
    if (cap_s <= 1.5 * md->ar_alpha_s || avail <= 0) return 0;
    double b = (cap_s - md->ar_alpha_s) / md->ar_beta_s;
    int64_t n = b >= (double)avail ? avail : (int64_t)b;
    n -= n % WL_TRAIN_GRAD_BYTES;
    return n >= MIN_PIECE_BYTES || n == avail ? n : 0;
}

/* The tail: what is left, as up to two pieces: gradients produced before layer 0's
 * Order/gate/attention backward (reducible during it), then layer 0's own. */
static void tail_pieces(const model *md, cand *c, gradq *q)
{
    int64_t early = avail_from(q, 1);
    if (early > 0 && q->layers > 1 && md->bwd_post_s > md->ar_alpha_s) {
        add_piece(c, WL_TRAIN_TAIL, early);
        q->off += early - early % WL_TRAIN_GRAD_BYTES;
    }
    if (q->total > q->off) add_piece(c, WL_TRAIN_TAIL, q->total - q->off);
    if (c->npieces > 0 && q->total > q->off) { /* rounding left a few bytes: extend */
        int64_t sum = 0;
        for (int i = 0; i < c->npieces; i++) sum += c->pieces[i].bytes;
        c->pieces[c->npieces - 1].bytes += q->total - sum;
    }
    q->off = q->total;
}

/* Idle time of the inter-node link in a layer's MoE backward at degree r: the chain's
 * length beyond what its all-to-alls and one chunk's intra and compute path need. An
 * AllReduce piece just before the first backward Dispatch can use all of it: it delays
 * the Dispatches, which only the layer's end waits for. */
static double bwd_idle(const model *md, int r)
{
    double d = at(md->a2a, r), g = at(md->esp, r), e = 2 * at(md->ex, r);
    return fmax(0, layer_time(md, r, 1, 0) - (r * 2 * d + 2 * g + e));
}

/* FSMoE's greedy partition under the model's windows for degrees c->rb: per layer, the
 * gap before its first backward all-to-all (the previous layer's Order, gate and
 * attention backward: gradients produced before it) and the gap before its first
 * backward Dispatch (the link's idle time in the layer's MoE backward). Returns the
 * AllReduce seconds hidden per layer in ar_s[]. */
static void model_partition(const model *md, cand *c, double *ar_s)
{
    int L = md->layers;
    gradq q = {(int64_t)L * (md->part[0] + md->part[1] + md->part[2]), 0,
               md->part[0] + md->part[1] + md->part[2], L};
    c->npieces = 0;
    for (int l = L - 1; l >= 0; l--) {
        int r = c->rb[l];
        ar_s[l] = 0;
        if (l < L - 1) {
            double cap = md->bwd_post_s + md->bwd_pre_s;
            int64_t b = fit_bytes(md, cap, avail_from(&q, l + 2));
            if (b > 0 && add_piece(c, wl_train_gap(L, c->rb, 0, l, 0), b)) q.off += b;
        }
        int64_t b = fit_bytes(md, bwd_idle(md, r), avail_from(&q, l + 1));
        if (b > 0 && add_piece(c, wl_train_gap(L, c->rb, 0, l, r), b)) {
            q.off += b;
            ar_s[l] += md->ar_alpha_s + md->ar_beta_s * (double)b;
        }
    }
    tail_pieces(md, c, &q);
}

/* The model's step time for candidate c (degrees and pieces as assigned). */
static double model_step(const model *md, const cand *c, const double *ar_s)
{
    double t = 0, tail = 0;
    for (int l = 0; l < md->layers; l++) {
        t += md->fwd_fixed_s + layer_time(md, c->rf[l], 0, 0);
        t += md->bwd_pre_s + md->bwd_post_s + layer_time(md, c->rb[l], 1, ar_s[l]);
    }
    for (int i = 0; i < c->npieces; i++)
        if (c->pieces[i].gap == WL_TRAIN_TAIL)
            tail += md->ar_alpha_s + md->ar_beta_s * (double)c->pieces[i].bytes;
    /* the first tail piece overlaps layer 0's Order/gate/attention backward */
    return t + fmax(0, tail - (c->npieces > 1 ? md->bwd_post_s : 0));
}

static void model_choice(const model *md, cand *c, double *predicted_s)
{
    int L = md->layers;
    double ar_s[WL_TRAIN_MAX_LAYERS] = {0};
    c->sched = WL_TRAIN_FSMOE, c->r = 1;
    for (int l = 0; l < L; l++) c->rf[l] = best_degree(md, 0, 0), c->rb[l] = best_degree(md, 1, 0);
    model_partition(md, c, ar_s);
    /* second pass: backward degrees with the AllReduce each layer now hides, then the
     * partition for those degrees */
    for (int l = 0; l < L; l++) c->rb[l] = best_degree(md, 1, ar_s[l]);
    model_partition(md, c, ar_s);
    *predicted_s = model_step(md, c, ar_s);
}

/* ---- reading a simulated timeline --------------------------------------------------------- */

/* Per-layer forward and backward durations (max over ranks of each phase's last end). */
static void layer_durations(const run *r, int L, double *fwd, double *bwd)
{
    double ef[WL_TRAIN_MAX_LAYERS], eb[WL_TRAIN_MAX_LAYERS];
    for (int l = 0; l < L; l++) ef[l] = eb[l] = 0;
    const tg_graph *g = r->g;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        const char *lab = tg_str(g, g->label[t]);
        int l;
        char pass[4];
        if (!lab || lab[0] != 'L' || strstr(lab, ".allreduce.") ||
            sscanf(lab, "L%d.%3[a-z]", &l, pass) != 2 || l < 0 || l >= L)
            continue;
        double e = sim_task_end(r->s, t);
        if (!strcmp(pass, "fwd")) ef[l] = fmax(ef[l], e);
        else if (!strcmp(pass, "bwd")) eb[l] = fmax(eb[l], e);
    }
    for (int l = 0; l < L; l++) {
        fwd[l] = ef[l] - (l ? ef[l - 1] : 0);
        bwd[l] = eb[l] - (l == L - 1 ? ef[L - 1] : eb[l + 1]);
    }
}

/* The greedy partition into a simulated timeline (rank 0, every piece in the tail):
 * per layer, the gap before its first backward all-to-all (its length) and the gap before
 * its first backward Dispatch (the inter link's slack from there to the layer's last
 * Dispatch), each filled to `fill` of its capacity with gradients produced by its start. */
static void sim_partition(const model *md, const run *r, cand *c, double fill)
{
    int L = md->layers;
    const tg_graph *g = r->g;
    int ngaps = wl_train_gap(L, c->rb, 0, -1, 0);
    double *gs = calloc((size_t)ngaps + 1, sizeof *gs), *st = calloc((size_t)ngaps + 1, sizeof *st);
    double *en = calloc((size_t)ngaps + 1, sizeof *en);
    double prod[3 * WL_TRAIN_MAX_LAYERS];
    for (int i = 0; i < 3 * L; i++) prod[i] = INFINITY;
    int seen[WL_TRAIN_MAX_LAYERS] = {0};
    gradq q = {(int64_t)L * (md->part[0] + md->part[1] + md->part[2]), 0,
               md->part[0] + md->part[1] + md->part[2], L};
    c->npieces = 0;
    if (!gs || !st || !en) goto tail;
    double last_end = 0;
    int k = 0;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->rank[t] != 0) continue;
        const char *lab = tg_str(g, g->label[t]);
        const char *sn = tg_str(g, g->stream_name[g->stream[t]]);
        if (!lab) continue;
        if (!strcmp(sn, "inter")) {
            if (strstr(lab, ".bwd.") && k < ngaps)
                gs[k] = last_end, st[k] = sim_task_start(r->s, t), en[k] = sim_task_end(r->s, t), k++;
            last_end = sim_task_end(r->s, t);
        }
        int l;
        if (sscanf(lab, "L%d.", &l) == 1 && l >= 0 && l < L) {
            size_t base = (size_t)(L - 1 - l) * 3;
            if (strstr(lab, ".bwd.gate_wgrad")) prod[base] = sim_task_end(r->s, t);
            else if (strstr(lab, ".bwd.attn_wgrad")) prod[base + 1 + (seen[l]++ > 0)] = sim_task_end(r->s, t);
        }
    }
    if (k != ngaps) goto tail; /* no inter-node all-to-all (ep 1): everything in the tail */
    for (int l = L - 1; l >= 0; l--) {
        int rb = c->rb[l];
        int g0 = wl_train_gap(L, c->rb, 0, l, 0), g1 = g0 + rb;
        double busy = 0;
        for (int i = g1; i < g1 + rb; i++) busy += en[i] - st[i];
        const int gap[2] = {g0, g1};
        const double cap[2] = {st[g0] - gs[g0], en[g1 + rb - 1] - gs[g1] - busy};
        for (int w = 0; w < 2; w++) {
            /* the unassigned bytes, in production order, of layers > l produced by the
             * window's start */
            int64_t lim = 0;
            for (int pi = 0; pi < 3 * L; pi++) {
                if (L - 1 - pi / 3 <= l || prod[pi] > gs[gap[w]] + 1e-12) break;
                lim += md->part[pi % 3];
            }
            int64_t avail = lim > q.off ? lim - q.off : 0;
            int64_t b = fit_bytes(md, fill * cap[w], avail);
            if (b > 0 && add_piece(c, gap[w], b)) q.off += b;
        }
    }
tail:
    free(gs), free(st), free(en);
    tail_pieces(md, c, &q);
}

/* ---- the solver ---------------------------------------------------------------------------- */

#define CACHE_MAX 16

typedef struct search {
    const solve_train_request *rq;
    cand best;
    int sims;
    uint64_t key[CACHE_MAX]; /* graphs simulated so far: their key and step time */
    double key_step[CACHE_MAX];
    int nkeys;
} search;

/* A key of the graph a candidate builds (degrees and pieces; dsmoe, tutel and fsmoe with
 * the same degrees and one tail piece build the same graph): FNV-1a. */
static uint64_t cand_key(const cand *c, int L)
{
    uint64_t h = MS_FNV64_OFFSET;
#define MIX(v) (h = ms_fnv1a64_word(h, (uint64_t)(v)))
    for (int l = 0; l < L; l++) MIX(c->rf[l]), MIX(c->rb[l]);
    MIX(c->npieces > 1 || (c->npieces == 1 && c->pieces[0].gap != WL_TRAIN_TAIL) ? c->npieces : 0);
    if (c->npieces > 1 || (c->npieces == 1 && c->pieces[0].gap != WL_TRAIN_TAIL))
        for (int i = 0; i < c->npieces; i++) MIX(c->pieces[i].gap), MIX(c->pieces[i].bytes);
#undef MIX
    return h;
}

/* Simulates c (or takes its step time from the cache when no timeline is wanted). */
static int try_cand(search *s, cand *c, run *keep, ms_err *err)
{
    uint64_t k = cand_key(c, s->rq->m->layers);
    int hit = -1;
    for (int i = 0; i < s->nkeys; i++)
        if (s->key[i] == k) hit = i;
    if (hit >= 0 && !keep) c->step_s = s->key_step[hit];
    else {
        wl_train_params p;
        cand_params(s->rq, c, &p);
        s->sims++;
        if (simulate(s->rq, &p, &c->step_s, keep, err) != 0) return -1;
        if (hit < 0 && s->nkeys < CACHE_MAX) s->key[s->nkeys] = k, s->key_step[s->nkeys++] = c->step_s;
    }
    if (c->step_s < s->best.step_s) s->best = *c;
    return 0;
}

void solve_train_params(const solve_train_request *rq, const solve_train_result *r,
                        wl_train_params *p)
{
    *p = rq->base;
    p->sched = r->sched, p->r = r->r;
    p->r_fwd = p->r_bwd = NULL, p->pieces = NULL, p->npieces = 0;
    if (r->sched == WL_TRAIN_FSMOE) {
        p->r_fwd = r->r_fwd, p->r_bwd = r->r_bwd;
        p->pieces = r->pieces, p->npieces = r->npieces;
    }
}

int solve_train(const solve_train_request *rq, solve_train_result *out, ms_err *err)
{
    double t0 = now_s();
    const model_cfg *m = rq->m;
    int L = m->layers;
    if (L > WL_TRAIN_MAX_LAYERS)
        return ms_err_set(err, "model '%s' has %d layers; at most %d", m->name, L,
                          WL_TRAIN_MAX_LAYERS);
    search *s = calloc(1, sizeof *s);
    cand *c = calloc(1, sizeof *c);
    cand *uni = calloc(NDEG, sizeof *uni);
    run keep = {NULL, NULL}, trial[NDEG];
    memset(trial, 0, sizeof trial);
    int rc = -1;
    if (!s || !c || !uni) {
        ms_err_set(err, "out of memory in the training solver");
        goto out;
    }
    s->rq = rq;
    s->best.step_s = INFINITY;
    for (int i = 0; i < NDEG; i++) out->trial_s[i] = NAN;
    double predicted = NAN, model_sim = NAN;
    if (rq->sched == WL_TRAIN_DSMOE) {
        cand_uniform(c, WL_TRAIN_DSMOE, 1, L);
        if (try_cand(s, c, NULL, err) != 0) goto out;
    } else {
        /* Tutel's trial of each degree (also the fsmoe search's starting points) */
        double fwd[NDEG][WL_TRAIN_MAX_LAYERS], bwd[NDEG][WL_TRAIN_MAX_LAYERS];
        int trials = rq->sched == WL_TRAIN_FSMOE && rq->method == SOLVE_TRAIN_MODEL ? 0 : NDEG;
        for (int i = 0; i < trials; i++) {
            cand_uniform(&uni[i], WL_TRAIN_TUTEL, degrees[i], L);
            if (try_cand(s, &uni[i], &trial[i], err) != 0) goto out;
            layer_durations(&trial[i], L, fwd[i], bwd[i]);
            out->trial_s[i] = uni[i].step_s;
        }
        if (rq->sched == WL_TRAIN_FSMOE) {
            model md;
            if (build_model(rq, &md, err) != 0) goto out;
            model_choice(&md, c, &predicted);
            s->best.step_s = INFINITY; /* fsmoe answers with fsmoe candidates */
            if (try_cand(s, c, NULL, err) != 0) goto out;
            model_sim = c->step_s;
            if (rq->method == SOLVE_TRAIN_SEARCH) {
                /* the uniform degrees as fsmoe candidates (tail AllReduce) */
                for (int i = 0; i < NDEG; i++) {
                    uni[i].sched = WL_TRAIN_FSMOE;
                    if (uni[i].step_s < s->best.step_s) s->best = uni[i];
                }
                /* per layer and pass, the degree whose simulated phase was shortest */
                cand_uniform(c, WL_TRAIN_FSMOE, 1, L);
                for (int l = 0; l < L; l++) {
                    int bf = 0, bb = 0;
                    for (int i = 1; i < NDEG; i++) {
                        if (fwd[i][l] < fwd[bf][l] - 1e-12) bf = i;
                        if (bwd[i][l] < bwd[bb][l] - 1e-12) bb = i;
                    }
                    c->rf[l] = degrees[bf], c->rb[l] = degrees[bb];
                }
                const run *tl = NULL; /* the composed candidate's timeline */
                for (int i = 0; i < NDEG && !tl; i++) {
                    int same = 1;
                    for (int l = 0; l < L; l++)
                        same &= c->rf[l] == degrees[i] && c->rb[l] == degrees[i];
                    if (same) tl = &trial[i];
                }
                if (!tl) {
                    if (try_cand(s, c, &keep, err) != 0) goto out;
                    tl = &keep;
                }
                /* the gradient partition into this timeline's windows, two fills */
                static const double fills[] = {1.0, 0.6};
                for (int f = 0; f < 2; f++) {
                    cand *x = &uni[0]; /* reuse as scratch */
                    memcpy(x->rf, c->rf, sizeof c->rf), memcpy(x->rb, c->rb, sizeof c->rb);
                    x->sched = WL_TRAIN_FSMOE, x->r = 1;
                    sim_partition(&md, tl, x, fills[f]);
                    if (try_cand(s, x, NULL, err) != 0) goto out;
                }
                run_free(&keep);
            }
        }
    }
    const cand *b = &s->best;
    double trials[NDEG];
    memcpy(trials, out->trial_s, sizeof trials);
    memset(out, 0, sizeof *out);
    memcpy(out->trial_s, trials, sizeof trials);
    out->sched = rq->sched;
    out->r = b->r;
    memcpy(out->r_fwd, b->rf, sizeof out->r_fwd);
    memcpy(out->r_bwd, b->rb, sizeof out->r_bwd);
    out->npieces = b->npieces;
    if (b->npieces == 0) {
        out->pieces[0].gap = WL_TRAIN_TAIL;
        out->pieces[0].bytes = (int64_t)L * wl_train_layer_grad_bytes(m);
        out->npieces = rq->sched == WL_TRAIN_FSMOE ? 1 : 0;
    } else
        memcpy(out->pieces, b->pieces, sizeof out->pieces[0] * (size_t)b->npieces);
    if (rq->sched != WL_TRAIN_FSMOE) out->npieces = 0;
    out->step_s = b->step_s;
    out->predicted_s = rq->sched == WL_TRAIN_FSMOE ? predicted : b->step_s;
    out->model_step_s = rq->sched == WL_TRAIN_FSMOE ? model_sim : b->step_s;
    for (int l = 0; l < L; l++) out->layers_differ += b->rf[l] != b->rb[l];
    out->simulations = s->sims;
    out->solve_wall_s = now_s() - t0;
    rc = 0;
out:
    run_free(&keep);
    for (int i = 0; i < NDEG; i++) run_free(&trial[i]);
    free(s), free(c), free(uni);
    return rc;
}

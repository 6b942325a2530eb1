/* FinDEP's Algorithm 1 (PAPERS.md): fit linear segment costs for the actual shapes, then
 * walk m_a downward taking the largest r1 that fits memory, try every r2 for each AG
 * order, and keep the best closed-form throughput. docs/SOLVER.md, "Algorithm 1". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "solver/solver_internal.h"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline double fit_at(solve_fit f, double x) { return f.alpha_s + f.beta_s * x; }

/* ---- segment times of one built layer ------------------------------------------------ */

typedef struct seg_sample {
    double ma, z;          /* samples per micro-batch; chunk tokens per AG rank */
    double ta, ts, te, tc; /* seconds */
} seg_sample;

static int label_is(const tg_graph *g, uint32_t k, const char *want)
{
    return g->label[k] != TG_NONE && !strcmp(tg_str(g, g->label[k]), want);
}

/* Costs of layer 0, micro-batch 0, chunk 0 of a one-layer graph, read from the cost DB
 * task by task (no simulation): attention = the .attn and .gate tasks of AG rank 0, shared
 * = its .shared tasks, expert = the busiest EG rank's .expert.c0, A2E = the longest
 * contention-free transfer of any .a2e.c0 exchange (analytic network). */
static int measure_layer(const solve_request *rq, const tg_graph *g, int ag, void *an,
                         seg_sample *x, ms_err *err)
{
    double *eg_s = calloc((size_t)g->nranks + 1, sizeof *eg_s);
    if (!eg_s) return ms_err_set(err, "out of memory");
    x->ta = x->ts = x->te = x->tc = 0;
    int rc = 0;
    for (uint32_t k = 0; k < g->ntasks && rc == 0; k++) {
        tg_kind kind = tg_task_kind(g, k);
        if (kind == TG_KIND_XCHG && label_is(g, k, "L0.mb0.a2e.c0")) {
            for (uint32_t t = g->xfer_off[k]; t < g->xfer_off[k + 1]; t++) {
                if (!g->xfer_send[t]) continue;
                double end = net_analytic.xfer_start(an, 0, t, g->rank[k], g->xfer_peer[t],
                                                     (double)g->xfer_bytes[t]);
                if (end > x->tc) x->tc = end;
            }
            continue;
        }
        if (g->op[k] == TG_OP_M2N && g->rank[k] == 0 && label_is(g, k, "L0.mb0.a2e.c0")) {
            double tm = net_m2n_task_time(rq->t, g, k);
            if (isnan(tm)) rc = ms_err_set(err, "out of memory");
            if (tm > x->tc) x->tc = tm;
            continue;
        }
        if (kind != TG_KIND_COMPUTE) continue;
        int r = g->rank[k];
        int is_attn = r == 0 && (label_is(g, k, "L0.mb0.attn") || label_is(g, k, "L0.mb0.gate"));
        int is_shared = r == 0 && label_is(g, k, "L0.mb0.shared");
        int is_expert = r >= ag && label_is(g, k, "L0.mb0.expert.c0");
        if (!is_attn && !is_shared && !is_expert) continue;
        const tg_op_info *info = tg_op_get((tg_op)g->op[k]);
        double s = 0;
        int nargs = (int)(g->arg_off[k + 1] - g->arg_off[k]);
        rc = cdb_time(rq->db, rq->t->device, info->name, tg_task_args(g, k), nargs, &s, err);
        if (is_attn) x->ta += s;
        if (is_shared) x->ts += s;
        if (is_expert) eg_s[r] += s;
    }
    for (int r = ag; r <= g->nranks; r++)
        if (eg_s[r] > x->te) x->te = eg_s[r];
    free(eg_s);
    return rc;
}

/* Weighted least squares of y = alpha + beta x with weights 1/y^2 (relative error), so
 * that small sizes are fitted as well as large ones. */
static solve_fit fit_linear(const double *xs, const double *ys, int n)
{
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        double w = ys[i] > 0 ? 1 / (ys[i] * ys[i]) : 1;
        sw += w, sx += w * xs[i], sy += w * ys[i];
        sxx += w * xs[i] * xs[i], sxy += w * xs[i] * ys[i];
    }
    solve_fit f = {0, 0};
    double det = sw * sxx - sx * sx;
    if (n == 0) return f;
    if (n == 1 || fabs(det) <= 1e-12 * sw * sxx) {
        f.alpha_s = sy / sw;
        return f;
    }
    f.beta_s = (sw * sxy - sx * sy) / det;
    f.alpha_s = (sy - f.beta_s * sx) / sw;
    if (f.alpha_s < 0) { /* keep alpha >= 0 (the search relies on it): fit through 0 */
        f.alpha_s = 0;
        f.beta_s = sxx > 0 ? sxy / sxx : 0;
    }
    if (f.beta_s < 0) { /* a cost that falls with size: take the weighted mean */
        f.beta_s = 0;
        f.alpha_s = sy / sw;
    }
    return f;
}

/* ---- memory --------------------------------------------------------------------------- */

static double kv_bytes_per_token_layer(const model_cfg *m)
{
    if (m->attn == MODEL_ATTN_MLA) /* the latent cache: kv_lora_rank + rope per token */
        return ((double)m->kv_lora_rank + m->qk_rope_head_dim) * m->dtype_bytes;
    return (double)m->kv_heads * ((double)m->head_dim + m->v_head_dim) * m->dtype_bytes;
}

static int memory_model(const solve_request *rq, int eg, solve_alg1_model *mdl, ms_err *err)
{
    const model_cfg *m = rq->m;
    double mem = 0;
    ms_err e2 = {{0}};
    int have_mem = cdb_device_memory(rq->db, rq->t->device, &mem, &e2) == 0;
    double dense = (double)m->ffn_gemms * m->hidden * m->dense_inter * m->dtype_bytes;
    double gate = (double)m->hidden * m->routed_experts * m->dtype_bytes;
    int moe_layers = m->layers > m->first_dense ? m->layers - m->first_dense : 0;
    int dense_layers = m->layers - moe_layers;
    mdl->weight_bytes_ag = m->layers * model_attn_param_bytes(m) + dense_layers * dense +
                           moe_layers * (model_shared_param_bytes(m) + gate);
    int per_rank = eg > 0 ? (m->routed_experts + eg - 1) / eg : 0;
    if (per_rank < 1) per_rank = 1;
    mdl->weight_bytes_eg = (double)moe_layers * per_rank * model_expert_param_bytes(m);
    mdl->kv_bytes_per_sample = (double)rq->seq * m->layers * kv_bytes_per_token_layer(m);
    mdl->mem_bytes = have_mem ? mem : NAN;
    if (!have_mem) {
        /* no memory figure: only a fully fixed (m_a, r1) can be solved */
        if (rq->fix_ma > 0 && rq->fix_r1 > 0) {
            mdl->ma_max = rq->fix_ma * rq->fix_r1;
            return 0;
        }
        return ms_err_set(err,
                          "alg1 needs the memory of device '%s' for its limit r1*m_a <= "
                          "M_max (%s); fix both --ma and --r1 instead",
                          rq->t->device, e2.msg);
    }
    if (mdl->weight_bytes_eg > mem)
        return ms_err_set(err,
                          "expert weights (%.3g GB per EG GPU at eg=%d) exceed the %.3g GB "
                          "of a %s",
                          mdl->weight_bytes_eg / 1e9, eg, mem / 1e9, rq->t->device);
    double free_b = mem - mdl->weight_bytes_ag;
    double mmax = mdl->kv_bytes_per_sample > 0 ? floor(free_b / mdl->kv_bytes_per_sample) : 1e9;
    if (mmax < 1)
        return ms_err_set(err,
                          "no sample fits an AG GPU: %.3g GB of %s memory, %.3g GB of "
                          "attention and shared weights, %.3g MB of KV cache per sample",
                          mem / 1e9, rq->t->device, mdl->weight_bytes_ag / 1e9,
                          mdl->kv_bytes_per_sample / 1e6);
    mdl->ma_max = mmax > 1e9 ? 1000000000 : (int)mmax;
    return 0;
}

/* ---- fitting -------------------------------------------------------------------------- */

int solve_alg1_fit(const solve_request *rq, solve_alg1_model *mdl, ms_err *err)
{
    memset(mdl, 0, sizeof *mdl);
    if (rq->ag < 1 || rq->eg < 1) return ms_err_set(err, "alg1: --ag and --eg must be positive");
    if (rq->seq < 1) return ms_err_set(err, "alg1: --seq must be positive");
    mdl->layers = rq->m->layers;
    mdl->tokens_per_sample = rq->phase == WL_PREFILL ? rq->seq : 1;
    if (memory_model(rq, rq->eg, mdl, err) != 0) return -1;
    int tps = mdl->tokens_per_sample;
    int cap = SOLVE_ALG1_MAX_MB_TOKENS / tps;
    if (cap < 1) cap = 1;
    int ma_hi = mdl->ma_max < cap ? mdl->ma_max : cap;
    if (rq->fix_ma > 0) ma_hi = rq->fix_ma;

    /* one MoE layer of the model: the shapes every layer of the schedule has */
    model_cfg one = *rq->m;
    one.layers = 1;
    one.first_dense = 0;
    /* samples: m_a on a geometric grid over [1, ma_hi] with r2 = 1, plus small chunks of
     * one sample (r2 = the largest power of two up to SOLVE_ALG1_MAX_R2 dividing S) */
    int mas[8], r2s[8], n = 0;
    for (int i = 0; i < 5; i++) {
        int v = (int)llround(pow((double)ma_hi, i / 4.0));
        if (v < 1) v = 1;
        if (n > 0 && v == mas[n - 1]) continue;
        mas[n] = v, r2s[n] = 1, n++;
    }
    int r2small = 1;
    while (r2small * 2 <= SOLVE_ALG1_MAX_R2 && tps % (r2small * 2) == 0) r2small *= 2;
    if (r2small > 1) mas[n] = 1, r2s[n] = r2small, n++;

    void *an = net_analytic.create(rq->t, err);
    if (!an) return -1;
    seg_sample smp[8];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        wl_dep_params p;
        wl_dep_defaults(&p);
        p.sched = WL_DEP_FINDEP, p.ag = rq->ag, p.eg = rq->eg, p.seq = rq->seq;
        p.phase = rq->phase, p.ma = mas[i], p.r2 = r2s[i];
        tg_graph *g = wl_dep_build(&one, rq->t, &p, err);
        if (!g) {
            rc = -1;
            break;
        }
        smp[i].ma = mas[i];
        smp[i].z = (double)mas[i] * tps / r2s[i];
        rc = measure_layer(rq, g, rq->ag, an, &smp[i], err);
        tg_graph_free(g);
    }
    net_analytic.free(an);
    if (rc != 0) return -1;
    double xa[8], ya[8], ys[8], xz[8], ye[8], yc[8];
    int na = 0;
    for (int i = 0; i < n; i++) {
        if (r2s[i] == 1) xa[na] = smp[i].ma, ya[na] = smp[i].ta, ys[na] = smp[i].ts, na++;
        xz[i] = smp[i].z, ye[i] = smp[i].te, yc[i] = smp[i].tc;
    }
    mdl->attn = fit_linear(xa, ya, na);
    mdl->shared = fit_linear(xa, ys, na);
    mdl->expert = fit_linear(xz, ye, n);
    mdl->a2e = fit_linear(xz, yc, n);
    return 0;
}

/* ---- the objective -------------------------------------------------------------------- */

/* Exact evaluation of the in-order schedule (AG compute, A2E channel, EG compute, E2A
 * channel; FinDEP's dependencies) with equal chunks, O(1) per micro-batch: within one
 * micro-batch the chunk recurrences are maxima of affine functions of the chunk index, so
 * only the first and last chunk matter. The layer map is max-plus linear (f(x + c) =
 * f(x) + c), so once one layer shifts the whole state by the same delta as the layer
 * before, every later layer does too, and the rest is extrapolated. */
static double maxplus_makespan(double ta, double ts, double te, double tc, int T, int r1, int r2,
                               wl_order order)
{
    enum { SMALL = 64 };
    double buf[5 * SMALL];
    double *A = buf;
    if (r1 > SMALL) {
        A = malloc(5 * (size_t)r1 * sizeof *A);
        if (!A) return INFINITY;
    }
    double *S = A + r1, *back = S + r1, *pS = back + r1, *pback = pS + r1;
    double ag = 0, c1 = 0, eg = 0, c2 = 0, pag = 0, pc1 = 0, peg = 0, pc2 = 0, pdelta = NAN;
    double extra = 0;
    for (int i = 0; i < r1; i++) back[i] = S[i] = 0;
    for (int l = 0; l < T; l++) {
        if (l > 0) { /* remember the state entering this layer */
            pag = ag, pc1 = c1, peg = eg, pc2 = c2;
            memcpy(pS, S, (size_t)r1 * sizeof *S);
            memcpy(pback, back, (size_t)r1 * sizeof *back);
        }
        if (order == WL_ORDER_ASAS) {
            for (int i = 0; i < r1; i++) {
                A[i] = fmax(ag, fmax(back[i], S[i])) + ta;
                S[i] = A[i] + ts;
                ag = S[i];
            }
        } else {
            for (int i = 0; i < r1; i++) ag = A[i] = fmax(ag, fmax(back[i], S[i])) + ta;
            for (int i = 0; i < r1; i++) ag = S[i] = fmax(ag, A[i]) + ts;
        }
        for (int i = 0; i < r1; i++) {
            double b = fmax(c1, A[i]);
            c1 = b + r2 * tc;
            double d0 = fmax(eg, b + tc);
            eg = fmax(d0 + r2 * te, b + r2 * tc + te);
            double last = fmax(c2 + r2 * tc, d0 + te + r2 * tc + fmax(0.0, (r2 - 1) * (te - tc)));
            last = fmax(last, b + te + (r2 + 1) * tc);
            back[i] = c2 = last;
        }
        if (l == 0) continue;
        double delta = ag - pag, tol = 1e-13 * fmax(ag, c2);
        int same = fabs(c1 - pc1 - delta) <= tol && fabs(eg - peg - delta) <= tol &&
                   fabs(c2 - pc2 - delta) <= tol;
        for (int i = 0; i < r1 && same; i++)
            same = fabs(S[i] - pS[i] - delta) <= tol && fabs(back[i] - pback[i] - delta) <= tol;
        if (same && fabs(delta - pdelta) <= tol) {
            extra = (T - 1 - l) * delta;
            break;
        }
        pdelta = same ? delta : NAN;
    }
    if (A != buf) free(A);
    return fmax(ag, c2) + extra;
}

double solve_alg1_makespan(const solve_alg1_model *mdl, int ma, int r1, int r2, wl_order order)
{
    double z = (double)ma * mdl->tokens_per_sample / r2;
    double ta = fit_at(mdl->attn, ma), ts = fit_at(mdl->shared, ma);
    double te = fit_at(mdl->expert, z), tc = fit_at(mdl->a2e, z);
    int T = mdl->layers;
    if (order == WL_ORDER_AASS) return maxplus_makespan(ta, ts, te, tc, T, r1, r2, order);
    double X = ta + ts, Y = fmax(te, tc), F = fmax(X, r2 * Y);
    double G = ta + 2 * tc + te + (r2 - 1) * Y;
    return (T - 1) * fmax(G, r1 * F) + fmax(X, G) + (r2 - 1) * Y + (r1 - 1) * F;
}

/* ---- the search ----------------------------------------------------------------------- */

static long long gcd_ll(long long a, long long b)
{
    while (b) {
        long long r = a % b;
        a = b, b = r;
    }
    return a;
}

/* A lower bound on any order's makespan: the busiest of the four in-order resources
 * (AG compute, A2E channel, EG compute, E2A channel) must do all its work. */
static double work_bound(const solve_alg1_model *mdl, long long ma, int r1, int r2)
{
    double z = (double)ma * mdl->tokens_per_sample / r2;
    double ag = fit_at(mdl->attn, (double)ma) + fit_at(mdl->shared, (double)ma);
    double eg = r2 * fit_at(mdl->expert, z), ch = r2 * fit_at(mdl->a2e, z);
    return (double)mdl->layers * r1 * fmax(ag, fmax(eg, ch));
}

/* The walk of Algorithm 1. For each r1 (the distinct r1 = floor(M_max / m_a) as m_a walks
 * down, at most SOLVE_ALG1_MAX_R1), each order and each r2, the best m_a is the largest
 * one that fits memory (r1 * m_a <= M_max) and that r2 divides (m_a * S tokens): with
 * every fitted alpha >= 0 the throughput r1 * m_a / makespan does not fall as m_a grows
 * at fixed (r1, r2, order) (docs/SOLVER.md). The paper walks m_a first and takes r2 among
 * the divisors of that m_a's tokens, which can miss a slightly smaller m_a that admits a
 * better r2; choosing m_a per r2 removes that gap at the same cost. */
int solve_alg1_search(const solve_alg1_model *mdl, const solve_request *rq, wl_dep_params *best,
                      double *makespan_s, ms_err *err)
{
    double best_rate = 0;
    int tps = mdl->tokens_per_sample;
    int cap = SOLVE_ALG1_MAX_MB_TOKENS / tps;
    if (cap < 1) cap = 1;
    if (rq->fix_ma > mdl->ma_max)
        return ms_err_set(err, "--ma %d exceeds the memory limit M_max = %d samples per AG GPU",
                          rq->fix_ma, mdl->ma_max);
    int r1_lo = rq->fix_r1 > 0 ? rq->fix_r1 : 1;
    int r1_hi = rq->fix_r1 > 0 ? rq->fix_r1 : SOLVE_ALG1_MAX_R1;
    int r2_lo = rq->fix_r2 > 0 ? rq->fix_r2 : 1;
    int r2_hi = rq->fix_r2 > 0 ? rq->fix_r2 : SOLVE_ALG1_MAX_R2;
    for (int r1 = r1_lo; r1 <= r1_hi; r1++) {
        long long ma_top = mdl->ma_max / r1; /* the largest m_a with this r1 */
        if (ma_top < 1) break;
        if (ma_top > cap) ma_top = cap;
        if (rq->fix_ma > 0) {
            if (rq->fix_ma > ma_top) break;
            ma_top = rq->fix_ma;
        }
        for (int r2 = r2_lo; r2 <= r2_hi; r2++) {
            long long q = r2 / gcd_ll(r2, tps); /* r2 | m_a * S  <=>  q | m_a */
            long long ma = ma_top / q * q;
            if (ma < 1 || (rq->fix_ma > 0 && ma != rq->fix_ma)) continue;
            for (int o = 0; o < 2; o++) {
                if (rq->fix_order > 0 && rq->fix_order != o + 1) continue;
                wl_order order = o ? WL_ORDER_AASS : WL_ORDER_ASAS;
                /* AASS costs O(T * r1): skip it when even the busiest resource's total
                 * work cannot beat the best so far */
                if (order == WL_ORDER_AASS &&
                    (double)r1 * ma / work_bound(mdl, ma, r1, r2) <= best_rate)
                    continue;
                double mk = solve_alg1_makespan(mdl, (int)ma, r1, r2, order);
                double rate = (double)r1 * ma / mk;
                if (rate > best_rate) {
                    best_rate = rate;
                    *makespan_s = mk;
                    best->ma = (int)ma, best->r1 = r1, best->r2 = r2, best->order = order;
                }
            }
        }
    }
    if (best_rate <= 0)
        return ms_err_set(err, "alg1: no feasible schedule (M_max = %d samples per AG GPU%s%s)",
                          mdl->ma_max,
                          rq->fix_r2 > 0 ? "; --r2 must divide a micro-batch's tokens" : "",
                          rq->fix_r1 > 0 ? "; r1 * m_a must fit memory" : "");
    return 0;
}

/* ---- the entry point ------------------------------------------------------------------ */

static int solve_split(const solve_request *rq, wl_dep_params *p, double *rate, ms_err *err)
{
    solve_alg1_model mdl;
    if (solve_alg1_fit(rq, &mdl, err) != 0) return -1;
    double mk = 0;
    if (solve_alg1_search(&mdl, rq, p, &mk, err) != 0) return -1;
    p->ag = rq->ag, p->eg = rq->eg;
    *rate = (double)p->r1 * p->ma * rq->ag * mdl.tokens_per_sample / mk;
    return 0;
}

int solve_alg1(const solve_request *rq, solve_result *out, ms_err *err)
{
    double t0 = wall_now();
    memset(out, 0, sizeof *out);
    if (!rq || !rq->m || !rq->t || !rq->db) return ms_err_set(err, "alg1: incomplete request");
    if (rq->sched != WL_DEP_FINDEP)
        return ms_err_set(err, "alg1 solves findep schedules only (got %s)",
                          wl_dep_sched_name(rq->sched));
    wl_dep_params best;
    wl_dep_defaults(&best);
    best.sched = WL_DEP_FINDEP, best.seq = rq->seq, best.phase = rq->phase;
    double best_rate = 0;
    if (rq->ag > 0 || rq->eg > 0) {
        if (solve_split(rq, &best, &best_rate, err) != 0) return -1;
    } else {
        /* --split auto: every (ag, eg), best closed-form throughput */
        int P = topo_ranks(rq->t);
        ms_err last = {{0}};
        for (int ag = 1; ag < P; ag++) {
            solve_request r = *rq;
            r.ag = ag, r.eg = P - ag;
            wl_dep_params p = best;
            double rate = 0;
            if (solve_split(&r, &p, &rate, &last) != 0) continue;
            if (rate > best_rate) best_rate = rate, best = p;
        }
        if (best_rate <= 0)
            return ms_err_set(err, "alg1: no split of %d GPUs is feasible: %s", P, last.msg);
    }
    best.sched = WL_DEP_FINDEP, best.seq = rq->seq, best.phase = rq->phase, best.route = NULL;
    out->p = best;
    out->predicted_tokens_per_s = best_rate;
    if (solve_simulate_bound(rq, &best, &out->throughput_tokens_per_s, &out->bound_tokens_per_s,
                             err) != 0)
        return ms_err_prefix(err, "alg1's schedule (ag=%d eg=%d ma=%d r1=%d r2=%d %s)", best.ag,
                             best.eg, best.ma, best.r1, best.r2,
                             best.order == WL_ORDER_AASS ? "aass" : "asas");
    out->simulations = 1;
    out->solve_wall_s = wall_now() - t0;
    return 0;
}

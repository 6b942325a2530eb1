/* solve_dep: dispatches a request to Algorithm 1 (alg1.c), the simulator-verified local
 * search, brute force, or MegaScale-Infer's PPPipe planner. Every schedule these choose
 * is judged by simulation (solve_simulate), never by a cost model alone.
 * docs/SOLVER.md, sections "Search" and "PPPipe planner". */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "solver/solver_internal.h"

#define R2_MAX SOLVE_ALG1_MAX_R2 /* largest token-chunk count tried (as alg1) */
#define SEARCH_MAX_R1 (2 * SOLVE_ALG1_MAX_R1) /* micro-batches: twice alg1's range */
#define SEARCH_SPLITS 3         /* splits whose alg1 answer the search refines (auto) */
#define SEARCH_MAX_SIMS 240     /* simulations of the local search, all splits together */
/* Work budget of the search and of the PPPipe planner, in simulated graph items (tasks +
 * transfers, summed over the simulations), not in seconds: the answer must not depend on
 * the machine or its load. 5e6 items take 1-2 s on this 2-core machine (docs/SOLVER.md). */
#define SEARCH_WORK_BUDGET 5e6
#define EXHAUSTIVE_MAX_SIMS 5000 /* exhaustive refuses larger spaces */
#define PPPIPE_MAX_R1 4         /* MegaScale-Infer's m <= 4 */
#define PPPIPE_SPLITS 3         /* splits the planner explores fully (auto) */
#define PPPIPE_MAX_SIMS 400
#define ORDER_ALL_R1 4          /* up to this r1 every valid AG order is tried (14 at 4) */
#define ORDER_MAX_SIMS 32       /* simulations of one AG-order hill climb (larger r1) */
#define ORDER_ROUNDS 3          /* climb / order-refinement rounds per split */

/* One evaluated schedule. tps < 0: infeasible (the builder or simulator refused it). */
typedef struct cand {
    int ag, ma, r1, r2;
    wl_order order;
    double tps;    /* simulated tokens/s */
    uint64_t mask; /* order == WL_ORDER_CUSTOM: the AG order (wl_dep_params.order_mask) */
} cand;

/* The space of one split: r1 * ma <= mem (Algorithm 1's M_max), ma <= ma_hi (tokens of a
 * micro-batch), r1 <= r1_hi. Fixed fields of the request override these. */
typedef struct limits {
    int mem, ma_hi, r1_hi;
} limits;

typedef struct ctx {
    const solve_request *rq;
    int sims, max_sims;
    double work, work_budget; /* items simulated so far; evaluations stop past the budget
                                 (0 = no budget) */
    cand *seen;      /* every schedule simulated so far (a small linear cache) */
    size_t n, cap;
    ms_err last;     /* the last refusal, reported when nothing is feasible */
} ctx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int same(const cand *a, const cand *b)
{
    return a->ag == b->ag && a->ma == b->ma && a->r1 == b->r1 && a->r2 == b->r2 &&
           a->order == b->order && (a->order != WL_ORDER_CUSTOM || a->mask == b->mask);
}

static const cand *cached(const ctx *c, const cand *x)
{
    for (size_t i = 0; i < c->n; i++)
        if (same(&c->seen[i], x)) return &c->seen[i];
    return NULL;
}

static int remember(ctx *c, const cand *x, ms_err *err)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        cand *s = realloc(c->seen, cap * sizeof *s);
        if (!s) return ms_err_set(err, "out of memory in the schedule search");
        c->seen = s, c->cap = cap;
    }
    c->seen[c->n++] = *x;
    return 0;
}

static void to_params(const ctx *c, const cand *x, wl_dep_params *p)
{
    wl_dep_defaults(p);
    p->sched = c->rq->sched;
    p->ag = x->ag, p->eg = topo_ranks(c->rq->t) - x->ag;
    p->seq = c->rq->seq, p->phase = c->rq->phase;
    p->r1 = x->r1, p->ma = x->ma, p->r2 = x->r2, p->order = x->order;
    p->order_mask = x->order == WL_ORDER_CUSTOM ? x->mask : 0;
    p->route = NULL;
}

static void from_params(const wl_dep_params *p, double tps, cand *x)
{
    x->ag = p->ag, x->ma = p->ma, x->r1 = p->r1, x->r2 = p->r2, x->order = p->order;
    x->mask = p->order == WL_ORDER_CUSTOM ? p->order_mask : 0;
    x->tps = tps;
}

/* Simulates x (once: results are cached). Returns its tokens/s, -1 if infeasible or the
 * budget (simulations or time) is spent (then *spent is set), or -2 on a hard error. */
static double eval(ctx *c, cand x, int *spent, ms_err *err)
{
    const cand *h = cached(c, &x);
    if (h) return h->tps;
    if (c->sims >= c->max_sims || (c->work_budget > 0 && c->work >= c->work_budget)) {
        if (spent) *spent = 1;
        return -1;
    }
    wl_dep_params p;
    to_params(c, &x, &p);
    ms_err e = {{0}};
    double tps = -1, work = 0;
    c->sims++;
    int rc = solve_simulate_work(c->rq, &p, &tps, &work, &e);
    c->work += work;
    if (rc != 0) {
        c->last = e;
        tps = -1;
    }
    x.tps = tps;
    if (remember(c, &x, err) != 0) return -2;
    return tps;
}

/* Tokens of one micro-batch on one attention rank: r2 must divide this. */
static long long mb_tokens(const solve_request *rq, int ma)
{
    return (long long)ma * (rq->phase == WL_DECODE ? 1 : rq->seq);
}

/* Divisors of n up to R2_MAX, ascending, into d[R2_MAX]; returns the count. */
static int divisors(long long n, int *d)
{
    int k = 0;
    for (int r = 1; r <= R2_MAX && r <= n; r++)
        if (n % r == 0) d[k++] = r;
    return k;
}

/* The divisor of ma's micro-batch closest (in ratio) to r2_want. */
static int nearest_r2(const solve_request *rq, int ma, double r2_want)
{
    int d[R2_MAX], k = divisors(mb_tokens(rq, ma), d), best = 1;
    double bd = INFINITY;
    for (int i = 0; i < k; i++) {
        double dist = fabs(log((double)d[i] / r2_want));
        if (dist < bd - 1e-12) bd = dist, best = d[i];
    }
    return best;
}

static int max1(int x) { return x > 1 ? x : 1; }

/* Largest free ma for r1, and largest free r1 for ma, within lim. */
static int ma_top(const limits *lim, int r1)
{
    int v = max1(lim->mem / r1);
    return v < lim->ma_hi ? v : lim->ma_hi;
}
static int r1_top(const limits *lim, int ma)
{
    int v = max1(lim->mem / ma);
    return v < lim->r1_hi ? v : lim->r1_hi;
}

/* Does x honour the request's fixed fields and the split's limits (free fields only)? */
static int allowed(const solve_request *rq, const cand *x, const limits *lim)
{
    if (x->ma < 1 || x->r1 < 1 || x->r2 < 1 || x->r2 > R2_MAX) return 0;
    if (rq->fix_ma && x->ma != rq->fix_ma) return 0;
    if (rq->fix_r1 && x->r1 != rq->fix_r1) return 0;
    if (rq->fix_r2 && x->r2 != rq->fix_r2) return 0;
    if (rq->fix_order && (int)x->order != rq->fix_order - 1) return 0;
    if (x->order == WL_ORDER_CUSTOM && !wl_order_valid(x->mask, x->r1)) return 0;
    if (!rq->fix_ma && x->ma > ma_top(lim, rq->fix_r1 ? x->r1 : 1)) return 0;
    if (!rq->fix_r1 && x->r1 > r1_top(lim, x->ma)) return 0;
    return mb_tokens(rq, x->ma) % x->r2 == 0;
}

/* The request with one split filled in. */
static solve_request with_split(const solve_request *rq, int ag)
{
    solve_request r = *rq;
    r.ag = ag, r.eg = topo_ranks(rq->t) - ag;
    return r;
}

/* Splits to consider: the request's, or every ag = 1..P-1 with eg <= E. Returns count. */
static int splits(const solve_request *rq, int *ag)
{
    if (rq->ag > 0) {
        ag[0] = rq->ag;
        return 1;
    }
    int P = topo_ranks(rq->t), k = 0;
    for (int a = 1; a < P; a++)
        if (P - a <= rq->m->routed_experts) ag[k++] = a;
    return k;
}

/* Algorithm 1's model of one split (for its memory limit M_max), and the limits. */
static int fit_split(const solve_request *rq, int ag, int r1_hi, solve_alg1_model *mdl,
                     limits *lim, ms_err *err)
{
    solve_request r = with_split(rq, ag);
    r.sched = WL_DEP_FINDEP;
    if (solve_alg1_fit(&r, mdl, err) != 0) return -1;
    lim->mem = max1(mdl->ma_max);
    lim->ma_hi = max1((int)(SOLVE_ALG1_MAX_MB_TOKENS / mb_tokens(rq, 1)));
    lim->r1_hi = r1_hi;
    return 0;
}

/* Fills out from the chosen candidate (simulated already): builds its graph once more
 * for the bound. */
static int finish(ctx *c, const cand *best, solve_result *out, ms_err *err)
{
    to_params(c, best, &out->p);
    tg_graph *g = wl_dep_build(c->rq->m, c->rq->t, &out->p, err);
    double bound_s = 0;
    int rc = g ? solve_bound(g, c->rq->t, c->rq->db, &bound_s, err) : -1;
    tg_graph_free(g);
    if (rc != 0) return -1;
    out->throughput_tokens_per_s = best->tps;
    out->bound_tokens_per_s = bound_s > 0 ? wl_dep_tokens(&out->p, c->rq->t) / bound_s : INFINITY;
    out->predicted_tokens_per_s = best->tps;
    out->simulations = c->sims;
    return 0;
}

/* ---- search -------------------------------------------------------------------- */

/* A custom AG order (a mask of 2*r1 segments) means nothing for another r1: a neighbour
 * of b whose r1 changed takes the named order (ASAS or AASS) that simulated faster at b's
 * point, ASAS when neither is known. */
static void refit_order(const ctx *c, const cand *b, cand *x)
{
    if (x->order != WL_ORDER_CUSTOM || x->r1 == b->r1) return;
    cand s = *b, a = *b;
    s.order = WL_ORDER_ASAS, a.order = WL_ORDER_AASS, s.mask = a.mask = 0;
    const cand *hs = cached(c, &s), *ha = cached(c, &a);
    x->order = ha && (!hs || ha->tps > hs->tps) ? WL_ORDER_AASS : WL_ORDER_ASAS;
    x->mask = 0;
}

/* First-improvement hill climbing from *best over (ma, r1, r2, order), split held;
 * *best is updated in place. Stops at a local optimum or when the budget is spent. */
static int climb(ctx *c, cand *best, const limits *lim, ms_err *err)
{
    const solve_request *rq = c->rq;
    for (;;) {
        cand nb[32];
        int n = 0;
        cand b = *best;
        /* r1: filling memory, one more or less */
        nb[n] = b, nb[n++].r1 = r1_top(lim, b.ma);
        nb[n] = b, nb[n++].r1 = b.r1 + 1;
        nb[n] = b, nb[n++].r1 = b.r1 - 1;
        /* r2: neighbouring divisors, and double / half */
        int d[R2_MAX], k = divisors(mb_tokens(rq, b.ma), d);
        for (int i = 0; i < k; i++)
            if (d[i] == b.r2) {
                if (i + 1 < k) nb[n] = b, nb[n++].r2 = d[i + 1];
                if (i > 0) nb[n] = b, nb[n++].r2 = d[i - 1];
            }
        nb[n] = b, nb[n++].r2 = b.r2 * 2;
        if (b.r2 % 2 == 0) nb[n] = b, nb[n++].r2 = b.r2 / 2;
        /* order */
        nb[n] = b, nb[n++].order = b.order == WL_ORDER_ASAS ? WL_ORDER_AASS : WL_ORDER_ASAS;
        /* ma: x2, /2, +-1; r1 refilled to memory or kept; r2 keeps the chunk size */
        int mas[4] = {b.ma * 2, b.ma / 2, b.ma + 1, b.ma - 1};
        for (int i = 0; i < 4; i++) {
            int ma = mas[i];
            if (ma < 1) continue;
            cand x = b;
            x.ma = ma;
            x.r2 = rq->fix_r2 ? rq->fix_r2 : nearest_r2(rq, ma, (double)b.r2 * ma / b.ma);
            if (!rq->fix_r1) x.r1 = r1_top(lim, ma);
            nb[n++] = x;
            if (!rq->fix_r1 && b.r1 < x.r1) x.r1 = b.r1, nb[n++] = x;
        }
        int moved = 0, spent = 0;
        for (int i = 0; i < n && !moved && !spent; i++) {
            refit_order(c, &b, &nb[i]);
            if (!allowed(rq, &nb[i], lim)) continue;
            double tps = eval(c, nb[i], &spent, err);
            if (tps == -2) return -1;
            if (tps > best->tps * (1 + 1e-9)) *best = nb[i], best->tps = tps, moved = 1;
        }
        if (!moved || spent) return 0;
    }
}

/* Named form of a custom order that spells out ASAS or AASS (so that the cache knows it). */
static void canonical(cand *x)
{
    if (x->order != WL_ORDER_CUSTOM) return;
    if (x->mask == wl_order_mask(WL_ORDER_ASAS, 0, x->r1)) x->order = WL_ORDER_ASAS, x->mask = 0;
    else if (x->mask == wl_order_mask(WL_ORDER_AASS, 0, x->r1))
        x->order = WL_ORDER_AASS, x->mask = 0;
}

/* Simulates x as a candidate for *best; 1 if it became the best, 0 if not, -1 on a hard
 * error. *spent is set when the budget ran out. */
static int try_order(ctx *c, cand x, cand *best, int *spent, ms_err *err)
{
    canonical(&x);
    if (x.order == WL_ORDER_CUSTOM && !wl_order_valid(x.mask, x.r1)) return 0;
    double tps = eval(c, x, spent, err);
    if (tps == -2) return -1;
    if (tps > best->tps * (1 + 1e-9)) {
        *best = x, best->tps = tps;
        return 1;
    }
    return 0;
}

/* The AG order at *best's (ma, r1, r2), the rest held: every valid order (Catalan(r1) of
 * them) when r1 <= ORDER_ALL_R1; above that, hill climbing from the better of ASAS and
 * AASS (and *best's own order) by moving one S segment one place earlier or later (a swap
 * of adjacent A and S that keeps the order valid), first improvement, at most
 * ORDER_MAX_SIMS simulations. Returns 1 if *best improved, 0 if not, -1 on a hard error. */
static int refine_order(ctx *c, cand *best, ms_err *err)
{
    int r1 = best->r1, spent = 0, rc;
    /* without shared experts a MoE layer has no S segments: every order is the same */
    if (c->rq->fix_order || c->rq->m->shared_experts == 0 || r1 < 2 || r1 > WL_ORDER_MAX_R1)
        return 0;
    double before = best->tps;
    if (r1 <= ORDER_ALL_R1) {
        for (uint64_t m = 0; m < (UINT64_C(1) << (2 * r1)) && !spent; m++) {
            if (!wl_order_valid(m, r1)) continue;
            cand x = *best;
            x.order = WL_ORDER_CUSTOM, x.mask = m;
            if (try_order(c, x, best, &spent, err) < 0) return -1;
        }
        return best->tps > before;
    }
    int cap = c->sims + ORDER_MAX_SIMS;
    int keep = c->max_sims;
    if (cap < c->max_sims) c->max_sims = cap;
    for (int o = 0; o < 2 && !spent; o++) {
        cand x = *best;
        x.order = (wl_order)o, x.mask = 0;
        if (try_order(c, x, best, &spent, err) < 0) return c->max_sims = keep, -1;
    }
    for (int moved = 1; moved && !spent;) {
        moved = 0;
        uint64_t m = wl_order_mask(best->order, best->mask, r1);
        for (int k = 0; k + 1 < 2 * r1 && !moved && !spent; k++) {
            if (((m >> k) & 1) == ((m >> (k + 1)) & 1)) continue;
            uint64_t y = m ^ (UINT64_C(3) << k); /* swap positions k and k+1 */
            if (!wl_order_valid(y, r1)) continue;
            cand x = *best;
            x.order = WL_ORDER_CUSTOM, x.mask = y;
            if ((rc = try_order(c, x, best, &spent, err)) < 0) return c->max_sims = keep, -1;
            moved = rc;
        }
    }
    c->max_sims = keep;
    return best->tps > before;
}

/* One split to refine: alg1's schedule on it (predicted rate) and the split's limits. */
typedef struct start {
    wl_dep_params p;
    double rate; /* alg1's closed-form tokens/s */
    limits lim;
} start;

static int by_rate_desc(const void *a, const void *b)
{
    const start *x = a, *y = b;
    if (x->rate != y->rate) return x->rate < y->rate ? 1 : -1;
    return x->p.ag - y->p.ag;
}

/* alg1's schedule on every split of rq (one, or all when auto), best predicted first.
 * Returns the count with *out allocated, or -1 with err when no split is feasible. */
static int alg1_starts(const solve_request *rq, start **out, ms_err *err)
{
    int P = topo_ranks(rq->t);
    int *ag = malloc((size_t)P * sizeof *ag);
    start *s = malloc((size_t)P * sizeof *s);
    if (!ag || !s) {
        free(ag), free(s);
        return ms_err_set(err, "out of memory in the schedule search");
    }
    int n = splits(rq, ag), k = 0;
    ms_err e = {{0}};
    for (int i = 0; i < n; i++) {
        solve_alg1_model mdl;
        double mk = 0;
        solve_request r = with_split(rq, ag[i]);
        wl_dep_defaults(&s[k].p);
        if (fit_split(rq, ag[i], SEARCH_MAX_R1, &mdl, &s[k].lim, &e) != 0 ||
            solve_alg1_search(&mdl, &r, &s[k].p, &mk, &e) != 0)
            continue;
        s[k].p.sched = WL_DEP_FINDEP, s[k].p.ag = r.ag, s[k].p.eg = r.eg;
        s[k].p.seq = rq->seq, s[k].p.phase = rq->phase, s[k].p.route = NULL;
        s[k].rate = (double)s[k].p.r1 * s[k].p.ma * r.ag * mdl.tokens_per_sample / mk;
        k++;
    }
    free(ag);
    if (k == 0) {
        free(s);
        *err = e;
        if (!err->msg[0]) ms_err_set(err, "no (ag, eg) split fits %d ranks", P);
        return -1;
    }
    qsort(s, (size_t)k, sizeof *s, by_rate_desc);
    *out = s;
    return k;
}

static int run_search(ctx *c, solve_result *out, ms_err *err)
{
    const solve_request *rq = c->rq;
    solve_result a; /* alg1's own answer: the search never returns anything worse */
    if (solve_alg1(rq, &a, err) != 0) return -1;
    start *s = NULL;
    int n = alg1_starts(rq, &s, err);
    if (n < 0) return -1;
    cand best;
    from_params(&a.p, a.throughput_tokens_per_s, &best);
    int rc = remember(c, &best, err);
    /* refine the best few splits by alg1's estimate, always including alg1's own */
    int k = n < SEARCH_SPLITS ? n : SEARCH_SPLITS, has = 0;
    for (int i = 0; i < k; i++) has |= s[i].p.ag == a.p.ag;
    for (int i = k; i < n && !has; i++)
        if (s[i].p.ag == a.p.ag) s[k - 1] = s[i], has = 1;
    c->work_budget = SEARCH_WORK_BUDGET;
    for (int i = 0; i < k && rc == 0; i++) {
        cand x;
        from_params(&s[i].p, 0, &x);
        /* an even share of the simulations left for each remaining split */
        c->max_sims = c->sims + (SEARCH_MAX_SIMS - c->sims) / (k - i);
        x.tps = eval(c, x, NULL, err);
        if (x.tps == -2) rc = -1;
        /* climb over (ma, r1, r2, ASAS/AASS), then the AG order at the point reached, and
         * again while the order moves it */
        for (int round = 0; round < ORDER_ROUNDS && rc == 0 && x.tps > 0; round++) {
            rc = climb(c, &x, &s[i].lim, err);
            int better = rc == 0 ? refine_order(c, &x, err) : 0;
            if (better < 0) rc = -1;
            if (better <= 0) break;
        }
        if (x.tps > best.tps) best = x;
    }
    free(s);
    if (rc != 0) return -1;
    cand alg1;
    from_params(&a.p, a.throughput_tokens_per_s, &alg1);
    if (same(&best, &alg1)) {
        /* nothing beat alg1: keep its answer as it is */
        *out = a;
        out->predicted_tokens_per_s = out->throughput_tokens_per_s;
        out->simulations = a.simulations + c->sims;
        return 0;
    }
    rc = finish(c, &best, out, err);
    out->simulations += a.simulations;
    return rc;
}

/* ---- exhaustive ---------------------------------------------------------------- */

/* AG orders of the exhaustive space for r1: ASAS and AASS (the held one only, when
 * fixed), and for r1 <= ORDER_ALL_R1 every other valid order too, as the search tries
 * (not for models without shared experts, where every order builds the same graph).
 * order_choice maps choice o < order_choices to x's order; 0 if o is not a distinct
 * valid order. */
static uint64_t order_choices(const solve_request *rq, int r1)
{
    if (rq->fix_order || r1 > ORDER_ALL_R1 || rq->m->shared_experts == 0) return 2;
    return 2 + (UINT64_C(1) << (2 * r1));
}

static int order_choice(const solve_request *rq, int r1, uint64_t o, cand *x)
{
    if (o < 2) {
        x->order = (wl_order)o, x->mask = 0;
        return !rq->fix_order || (int)o == rq->fix_order - 1;
    }
    uint64_t m = o - 2;
    if (!wl_order_valid(m, r1) || m == wl_order_mask(WL_ORDER_ASAS, 0, r1) ||
        m == wl_order_mask(WL_ORDER_AASS, 0, r1))
        return 0;
    x->order = WL_ORDER_CUSTOM, x->mask = m;
    return 1;
}

/* Visits every schedule of the space in a fixed order, or only counts them (best NULL).
 * Returns the count, or -1 on a hard error. */
static long long enumerate(ctx *c, const int *ag, const limits *lim, int nsplit, cand *best,
                           ms_err *err)
{
    const solve_request *rq = c->rq;
    long long count = 0;
    for (int s = 0; s < nsplit; s++) {
        int ma_lo = rq->fix_ma ? rq->fix_ma : 1;
        int ma_hi = rq->fix_ma ? rq->fix_ma : ma_top(&lim[s], rq->fix_r1 ? rq->fix_r1 : 1);
        for (int ma = ma_lo; ma <= ma_hi; ma++) {
            int r1_lo = rq->fix_r1 ? rq->fix_r1 : 1;
            int r1_hi = rq->fix_r1 ? rq->fix_r1 : r1_top(&lim[s], ma);
            int d[R2_MAX], nd = divisors(mb_tokens(rq, ma), d);
            if (rq->fix_r2) nd = 1, d[0] = rq->fix_r2;
            for (int r1 = r1_lo; r1 <= r1_hi; r1++)
                for (int i = 0; i < nd; i++)
                    for (uint64_t o = 0; o < order_choices(rq, r1); o++) {
                        cand x = {ag[s], ma, r1, d[i], WL_ORDER_ASAS, 0, 0};
                        if (!order_choice(rq, r1, o, &x)) continue;
                        count++;
                        if (!best) continue;
                        double tps = eval(c, x, NULL, err);
                        if (tps == -2) return -1;
                        if (tps > best->tps) *best = x, best->tps = tps;
                    }
            if (!best && count > EXHAUSTIVE_MAX_SIMS) return count; /* enough to refuse */
        }
    }
    return count;
}

/* The splits of rq that alg1 can model, with their limits. Returns the count (> 0), or -1
 * with err. *ag and *lim are allocated. */
static int fitted_splits(const solve_request *rq, int r1_hi, int **ag_out, limits **lim_out,
                         ms_err *err)
{
    int P = topo_ranks(rq->t);
    int *ag = malloc((size_t)P * sizeof *ag);
    limits *lim = malloc((size_t)P * sizeof *lim);
    if (!ag || !lim) {
        free(ag), free(lim);
        return ms_err_set(err, "out of memory in the schedule search");
    }
    int n = splits(rq, ag), k = 0;
    ms_err e = {{0}};
    for (int i = 0; i < n; i++) {
        solve_alg1_model mdl;
        if (fit_split(rq, ag[i], r1_hi, &mdl, &lim[k], &e) == 0) ag[k++] = ag[i];
    }
    if (k == 0) {
        free(ag), free(lim);
        *err = e;
        if (!err->msg[0]) ms_err_set(err, "no (ag, eg) split fits %d ranks", P);
        return -1;
    }
    *ag_out = ag, *lim_out = lim;
    return k;
}

static int run_exhaustive(ctx *c, solve_result *out, ms_err *err)
{
    int *ag;
    limits *lim;
    int k = fitted_splits(c->rq, SEARCH_MAX_R1, &ag, &lim, err), rc = -1;
    if (k < 0) return -1;
    long long space = enumerate(c, ag, lim, k, NULL, err);
    cand best = {0, 0, 0, 0, WL_ORDER_ASAS, -1};
    if (space > EXHAUSTIVE_MAX_SIMS) {
        ms_err_set(err, "exhaustive search would need more than %d simulations (its limit); "
                        "hold some of --ag/--eg, --r1, --ma, --r2, --order, or use --method "
                        "search",
                   EXHAUSTIVE_MAX_SIMS);
        goto out;
    }
    c->max_sims = EXHAUSTIVE_MAX_SIMS;
    if (enumerate(c, ag, lim, k, &best, err) < 0) goto out;
    if (best.tps <= 0) {
        *err = c->last;
        ms_err_prefix(err, "no schedule in the exhaustive space is feasible; the last one");
        goto out;
    }
    rc = finish(c, &best, out, err);
out:
    free(ag), free(lim);
    return rc;
}

/* ---- PPPipe planner ------------------------------------------------------------ */

/* Best (r1 <= 4, ma) on one split; *best updated when beaten. */
static int plan_split(ctx *c, int ag, const limits *lim, cand *best, ms_err *err)
{
    const solve_request *rq = c->rq;
    int r1_lo = rq->fix_r1 ? rq->fix_r1 : 1, r1_hi = rq->fix_r1 ? rq->fix_r1 : PPPIPE_MAX_R1;
    for (int r1 = r1_lo; r1 <= r1_hi; r1++) {
        int ma_hi = rq->fix_ma ? rq->fix_ma : ma_top(lim, r1);
        /* throughput rises with ma: try the largest that fits, a ladder below it (down to
         * an eighth), then refine around the best rung */
        cand top = {ag, ma_hi, r1, 1, WL_ORDER_ASAS, -1};
        for (int ma = ma_hi; ma >= 1; ma = ma * 3 / 4 < ma - 1 ? ma * 3 / 4 : ma - 1) {
            cand x = {ag, ma, r1, 1, WL_ORDER_ASAS, 0};
            double tps = eval(c, x, NULL, err);
            if (tps == -2) return -1;
            if (tps > top.tps) top = x, top.tps = tps;
            if (rq->fix_ma || ma <= ma_hi / 8) break;
        }
        for (int step = 1; !rq->fix_ma && step <= 2 && top.tps > 0; step++)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                cand x = top;
                x.ma = top.ma + sgn * step;
                if (x.ma < 1 || x.ma > ma_hi) continue;
                double tps = eval(c, x, NULL, err);
                if (tps == -2) return -1;
                if (tps > top.tps) top = x, top.tps = tps;
            }
        if (top.tps > best->tps) *best = top;
    }
    return 0;
}

static int run_pppipe(ctx *c, solve_result *out, ms_err *err)
{
    const solve_request *rq = c->rq;
    if (rq->fix_r2 > 1)
        return ms_err_set(err, "pppipe does not chunk tokens: r2 is 1 (got --r2 %d)",
                          rq->fix_r2);
    if (rq->fix_order)
        return ms_err_set(err, "the AG order (asas/aass) applies to findep only");
    int *ag;
    limits *lim;
    int k = fitted_splits(rq, PPPIPE_MAX_R1, &ag, &lim, err), rc = -1;
    if (k < 0) return -1;
    c->max_sims = PPPIPE_MAX_SIMS;
    c->work_budget = SEARCH_WORK_BUDGET;
    cand best = {0, 0, 0, 0, WL_ORDER_ASAS, -1};
    if (k > PPPIPE_SPLITS) {
        /* auto split: rank the splits by one schedule each (the deepest pipeline that
         * fits), then plan the best few fully */
        double *first = malloc((size_t)k * sizeof *first);
        if (!first) {
            ms_err_set(err, "out of memory in the PPPipe planner");
            goto out;
        }
        for (int i = 0; i < k; i++) {
            int r1 = rq->fix_r1 ? rq->fix_r1 : PPPIPE_MAX_R1;
            int ma = rq->fix_ma ? rq->fix_ma : ma_top(&lim[i], r1);
            first[i] = eval(c, (cand){ag[i], ma, r1, 1, WL_ORDER_ASAS, 0}, NULL, err);
            if (first[i] == -2) {
                free(first);
                goto out;
            }
        }
        for (int i = 0; i < PPPIPE_SPLITS; i++) { /* partial selection sort, best first */
            int b = i;
            for (int j = i + 1; j < k; j++)
                if (first[j] > first[b]) b = j;
            double tf = first[i];
            first[i] = first[b], first[b] = tf;
            int ta = ag[i];
            ag[i] = ag[b], ag[b] = ta;
            limits tl = lim[i];
            lim[i] = lim[b], lim[b] = tl;
        }
        free(first);
        k = PPPIPE_SPLITS;
    }
    for (int i = 0; i < k; i++)
        if (plan_split(c, ag[i], &lim[i], &best, err) != 0) goto out;
    if (best.tps <= 0) {
        if (c->last.msg[0]) {
            *err = c->last;
            ms_err_prefix(err, "no PPPipe schedule is feasible; the last one");
        } else {
            ms_err_set(err, "no feasible PPPipe schedule was found within the search budget "
                            "(%d simulations, %.3g simulated items)", c->sims, c->work);
        }
        goto out;
    }
    rc = finish(c, &best, out, err);
out:
    free(ag), free(lim);
    return rc;
}

/* ---- entry --------------------------------------------------------------------- */

static int check_request(const solve_request *rq, ms_err *err)
{
    if (!rq || !rq->m || !rq->t || !rq->db)
        return ms_err_set(err, "solve: the request needs a model, a topology and a cost DB");
    if (rq->sched != WL_DEP_FINDEP && rq->sched != WL_DEP_PPPIPE)
        return ms_err_set(err, "solve: schedule '%s' cannot be solved (known: findep, pppipe)",
                          wl_dep_sched_name(rq->sched));
    if (rq->method != SOLVE_ALG1 && rq->method != SOLVE_SEARCH &&
        rq->method != SOLVE_EXHAUSTIVE)
        return ms_err_set(err, "solve: unknown method %d", (int)rq->method);
    if (rq->seq < 1) return ms_err_set(err, "--seq must be at least 1 (got %d)", rq->seq);
    int P = topo_ranks(rq->t);
    if (P < 2) return ms_err_set(err, "DEP needs at least 2 ranks; %s has %d", rq->t->name, P);
    if ((rq->ag == 0) != (rq->eg == 0) || rq->ag < 0 || rq->eg < 0)
        return ms_err_set(err, "--ag and --eg are given together (or both 0 to choose the "
                               "split); got %d and %d", rq->ag, rq->eg);
    if (rq->ag > 0 && rq->ag + rq->eg != P)
        return ms_err_set(err, "--ag %d + --eg %d must equal the topology's ranks (%s has %d)",
                          rq->ag, rq->eg, rq->t->name, P);
    if (rq->fix_r1 < 0 || rq->fix_ma < 0 || rq->fix_r2 < 0 || rq->fix_order < 0 ||
        rq->fix_order > 2)
        return ms_err_set(err, "solve: fixed fields must be 0 (free) or positive (order 1 or 2)");
    if (rq->fix_r2 && rq->fix_ma && mb_tokens(rq, rq->fix_ma) % rq->fix_r2 != 0)
        return ms_err_set(err, "--r2 %d does not divide the %lld tokens of a micro-batch",
                          rq->fix_r2, mb_tokens(rq, rq->fix_ma));
    return 0;
}

int solve_dep(const solve_request *rq, solve_result *out, ms_err *err)
{
    if (check_request(rq, err) != 0) return -1;
    double t0 = now_s();
    ctx c;
    memset(&c, 0, sizeof c);
    c.rq = rq;
    c.max_sims = SEARCH_MAX_SIMS;
    solve_result r;
    memset(&r, 0, sizeof r);
    int rc;
    if (rq->sched == WL_DEP_PPPIPE) rc = run_pppipe(&c, &r, err);
    else if (rq->method == SOLVE_ALG1) rc = solve_alg1(rq, &r, err);
    else if (rq->method == SOLVE_EXHAUSTIVE) rc = run_exhaustive(&c, &r, err);
    else rc = run_search(&c, &r, err);
    free(c.seen);
    if (rc != 0) return -1;
    r.solve_wall_s = now_s() - t0;
    *out = r;
    return 0;
}

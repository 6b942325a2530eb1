/* Calibration microbenchmarks as small task graphs run by ex_run (the walker and the backend
 * table time them exactly as they time real graphs), their statistics, fits of the
 * simulator's model forms (linear, piecewise; ffn and gate possibly composed from gemm),
 * the nccl-tests style comm table, and one transactional write (cdb_writer). */
#include "exec/calibrate.h"

#include "exec/backend.h"
#include "exec/ex_mpi.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- the grid ------------------------------------------------------------------------ */

typedef struct job {
    const char *op;
    int64_t args[EX_CALIB_MAX_ARGS];
    int nargs;
    int nranks;   /* comm: group size */
    double bytes; /* comm: the IR's bytes */
    int from_graph;
} job;

typedef struct job_list {
    job *j;
    size_t n, cap;
} job_list;

static int add_job(job_list *L, const job *j)
{
    for (size_t i = 0; i < L->n; i++) /* one point per distinct shape */
        if (!strcmp(L->j[i].op, j->op) && L->j[i].nargs == j->nargs &&
            L->j[i].nranks == j->nranks && L->j[i].bytes == j->bytes &&
            !memcmp(L->j[i].args, j->args, sizeof j->args))
            return 0;
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 64;
        job *p = realloc(L->j, cap * sizeof *p);
        if (!p) return -1;
        L->j = p, L->cap = cap;
    }
    L->j[L->n++] = *j;
    return 0;
}

static int add_compute(job_list *L, const char *op, int nargs, ...)
{
    job j = {.op = op, .nargs = nargs};
    va_list ap;
    va_start(ap, nargs);
    for (int i = 0; i < nargs; i++) j.args[i] = va_arg(ap, int64_t);
    va_end(ap);
    return add_job(L, &j);
}

#define I64(x) ((int64_t)(x))

/* Compute grid. Full: about 30 s on a 2-core host with 2 ranks (each rank runs every point
 * at once, as ranks do in a real graph); quick: well under a second of compute. The shapes
 * and why: docs/CALIBRATION.md, "The grid". */
static int compute_grid(job_list *L, int quick)
{
    int rc = 0;
    if (quick) {
        static const int ms[] = {8, 64}, nk[][2] = {{256, 256}, {512, 512}};
        for (size_t a = 0; a < 2; a++)
            for (size_t b = 0; b < 2; b++)
                rc |= add_compute(L, "gemm", 3, I64(ms[a]), I64(nk[b][0]), I64(nk[b][1]));
        rc |= add_compute(L, "attn", 7, I64(1), I64(32), I64(32), I64(4), I64(4), I64(64), I64(64));
        rc |= add_compute(L, "attn", 7, I64(1), I64(64), I64(64), I64(4), I64(4), I64(64), I64(64));
        rc |= add_compute(L, "attn", 7, I64(4), I64(1), I64(128), I64(4), I64(4), I64(64), I64(64));
        rc |= add_compute(L, "ffn", 5, I64(16), I64(2), I64(256), I64(128), I64(3));
        rc |= add_compute(L, "ffn", 5, I64(64), I64(4), I64(256), I64(128), I64(3));
        rc |= add_compute(L, "gate", 3, I64(64), I64(256), I64(8));
        rc |= add_compute(L, "gate", 3, I64(256), I64(256), I64(16));
        return rc;
    }
    /* gemm: m from decode-like (memory-bound) to prefill-like, over typical (n, k) */
    static const int gm[] = {1, 8, 32, 128, 512};
    static const int gnk[][2] = {{256, 256}, {1024, 1024}, {1408, 2048}, {2048, 1408},
                                 {2048, 2048}};
    for (size_t a = 0; a < sizeof gm / sizeof gm[0]; a++)
        for (size_t b = 0; b < sizeof gnk / sizeof gnk[0]; b++)
            rc |= add_compute(L, "gemm", 3, I64(gm[a]), I64(gnk[b][0]), I64(gnk[b][1]));
    /* attention: causal prefill (MHA 128/128 and MLA-like 192/128), decode over a cache */
    static const int sq[] = {32, 64, 128, 256};
    for (size_t a = 0; a < sizeof sq / sizeof sq[0]; a++)
        rc |= add_compute(L, "attn", 7, I64(1), I64(sq[a]), I64(sq[a]), I64(16), I64(16),
                          I64(128), I64(128));
    rc |= add_compute(L, "attn", 7, I64(1), I64(128), I64(128), I64(16), I64(16), I64(192),
                      I64(128));
    static const int db[] = {1, 8}, dk[] = {256, 1024};
    for (size_t a = 0; a < 2; a++)
        for (size_t b = 0; b < 2; b++)
            rc |= add_compute(L, "attn", 7, I64(db[a]), I64(1), I64(dk[b]), I64(16), I64(16),
                              I64(128), I64(128));
    /* grouped expert FFN (SwiGLU, 3 GEMMs): a reduced width with many tokens per expert,
     * and a real MoE expert width (Qwen3's 2048 x 768) with 1 to 8 tokens per expert, the
     * weight-streaming regime of expert chunks; 32 experts (605 MB of weights) to anchor
     * that regime with more experts than the host backend's 256 MiB weight pool holds */
    static const int fe[][4] = {{1, 64, 1024, 512},  {4, 128, 1024, 512}, {16, 256, 1024, 512},
                                {8, 8, 2048, 768},   {8, 16, 2048, 768},  {8, 64, 2048, 768},
                                {32, 32, 2048, 768}};
    for (size_t a = 0; a < sizeof fe / sizeof fe[0]; a++)
        rc |= add_compute(L, "ffn", 5, I64(fe[a][1]), I64(fe[a][0]), I64(fe[a][2]),
                          I64(fe[a][3]), I64(3));
    /* gate: router scores and top-k */
    static const int gt[] = {64, 256, 1024}, ge[] = {8, 64};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++)
            rc |= add_compute(L, "gate", 3, I64(gt[a]), I64(2048), I64(ge[b]));
    return rc;
}

/* Comm grid: xchg between ranks 0 and 1; collectives over groups of 2, 4, ... and all
 * ranks; sizes 4 KiB to 16 MiB by 4x (quick: 4 KiB, 256 KiB, 1 MiB). */
static int comm_grid(job_list *L, int quick, int world)
{
    static const char *const ops[] = {"xchg", "allreduce", "allgather", "reducescatter"};
    int sizes[32], nsizes = 0, rc = 0;
    if (world < 2) return 0;
    for (int n = 2; n < world && nsizes < 31; n *= 2)
        if (!quick) sizes[nsizes++] = n;
    sizes[nsizes++] = world;
    for (size_t o = 0; o < 4; o++)
        for (int s = 0; s < nsizes; s++) {
            int n = o == 0 ? 2 : sizes[s]; /* xchg: one pair, ranks 0 and 1 */
            if (o == 0 && s > 0) break;
            for (double b = 4096; b <= (quick ? 1048576.0 : 16777216.0); b *= 4) {
                if (quick && b == 16384) continue;
                job j = {.op = ops[o], .nranks = n, .bytes = b};
                rc |= add_job(L, &j);
            }
        }
    return rc;
}

/* The distinct compute shapes of g. */
static int graph_shapes(job_list *L, const tg_graph *g)
{
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (tg_task_kind(g, t) != TG_KIND_COMPUTE) continue;
        const tg_op_info *oi = tg_op_get((tg_op)g->op[t]);
        job j = {.op = oi->name, .nargs = oi->nargs, .from_graph = 1};
        const int64_t *a = tg_task_args(g, t);
        int na = (int)(g->arg_off[t + 1] - g->arg_off[t]);
        for (int i = 0; i < na && i < EX_CALIB_MAX_ARGS; i++) j.args[i] = a[i];
        if (!strcmp(j.op, "ffn") && j.args[0] == 0) continue; /* no tokens: costs 0 */
        if (add_job(L, &j)) return -1;
    }
    return 0;
}

/* ---- one point: a graph of warmup + timed tasks --------------------------------------- */

typedef struct textbuf {
    char *s;
    size_t n, cap;
    int oom;
} textbuf;

static void tb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && (size_t)w < b->cap - b->n) {
            b->n += (size_t)w;
            return;
        }
        size_t cap = (b->cap + (size_t)w + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p, b->cap = cap;
    }
}

/* The shape of a compute job in IR text ("m=8 n=256 k=256"). */
static void shape_text(const job *j, char *buf, size_t len)
{
    const tg_op_info *oi = tg_op_get((tg_op)tg_op_find(j->op));
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < j->nargs && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s=%lld", i ? " " : "", oi->arg[i],
                              (long long)j->args[i]);
}

/* Ranks 0..members-1 run the job's trials: 1 for compute, the group for comm. */
static int job_members(const job *j) { return j->nranks ? j->nranks : 1; }

/* Builds the benchmark graph of one job: rank 0 runs `total` copies of a compute op on
 * stream "compute" (the other ranks idle); or the comm op runs `total` times on stream
 * "comm" in its group. */
static tg_graph *job_graph(const job *j, int world, int total, ms_err *err)
{
    textbuf b = {0};
    char shape[256];
    int64_t id = 0;
    tb_printf(&b, "tg 1\n");
    if ((j->nranks == 0 && world > 1) || (j->nranks && j->nranks < world)) {
        /* keeps the graph's rank count at the world size */
        tb_printf(&b, "group world ranks=0");
        for (int r = 1; r < world; r++) tb_printf(&b, ",%d", r);
        tb_printf(&b, "\n");
    }
    if (j->nranks == 0) { /* rank 0 alone: the uncontended cost of the op on one device */
        shape_text(j, shape, sizeof shape);
        for (int i = 0; i < total; i++)
            tb_printf(&b, "task %lld rank=0 stream=compute op=%s %s label=calib.%d\n",
                      (long long)id++, j->op, shape, i);
    } else {
        long long bytes = (long long)j->bytes;
        if (!strcmp(j->op, "xchg")) {
            for (int i = 0; i < total; i++)
                tb_printf(&b, "task %lld rank=0 stream=comm op=xchg send=1:%lld label=calib.%d\n",
                          (long long)id++, bytes, i);
            for (int i = 0; i < total; i++)
                tb_printf(&b, "task %lld rank=1 stream=comm op=xchg recv=0:%lld label=calib.%d\n",
                          (long long)id++, bytes, i);
        } else {
            tb_printf(&b, "group g ranks=0");
            for (int r = 1; r < j->nranks; r++) tb_printf(&b, ",%d", r);
            tb_printf(&b, "\n");
            for (int r = 0; r < j->nranks; r++)
                for (int i = 0; i < total; i++)
                    tb_printf(&b, "task %lld rank=%d stream=comm op=%s group=g bytes=%lld "
                                  "label=calib.%d\n",
                              (long long)id++, r, j->op, bytes, i);
        }
    }
    /* Ranks outside the job wait for a message rank 0 sends after its last trial: in the
     * backend's polling (which sleeps), not spinning in the barrier that ends the pass,
     * which on a machine with as many cores as ranks took a core from the op timed. */
    int members = job_members(j);
    if (members < world) {
        tb_printf(&b, "task %lld rank=0 stream=sync op=xchg send=", (long long)id++);
        for (int r = members; r < world; r++) tb_printf(&b, "%s%d:8", r > members ? "," : "", r);
        tb_printf(&b, " after=%d label=calib.sync\n", total - 1);
        for (int r = members; r < world; r++)
            tb_printf(&b, "task %lld rank=%d stream=sync op=xchg recv=0:8 label=calib.sync\n",
                      (long long)id++, r);
    }
    if (b.oom) {
        free(b.s);
        ms_err_set(err, "out of memory building a calibration graph");
        return NULL;
    }
    tg_graph *g = tg_parse_buffer(b.s, b.n, "calibration", err);
    free(b.s);
    return g;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Trial times from a measured timeline. Compute: the task's duration (rank 0's). Comm:
 * per trial, from the last member's start to the last member's end (the rendezvous: the
 * simulator's start and end of a transfer or collective). */
static void trial_times(const job *j, const tg_graph *g, const ex_result *r, int warmup,
                        int timed, double *out_s)
{
    for (int i = 0; i < timed; i++) out_s[i] = 0;
    double *start = calloc((size_t)timed, sizeof *start), *end = calloc((size_t)timed, sizeof *end);
    if (!start || !end) {
        free(start), free(end);
        for (int i = 0; i < timed; i++) out_s[i] = NAN;
        return;
    }
    uint32_t ntrial = (uint32_t)(job_members(j) * (warmup + timed)); /* then the sync tasks */
    for (uint32_t t = 0; t < ntrial && t < g->ntasks; t++) {
        int i = (int)(t % (uint32_t)(warmup + timed)) - warmup; /* tasks are rank-major */
        if (i < 0) continue;
        double s = r->start_us[t] * 1e-6, e = r->end_us[t] * 1e-6;
        if (j->nranks == 0) {
            out_s[i] += e - s;
        } else {
            if (s > start[i]) start[i] = s;
            if (e > end[i]) end[i] = e;
        }
    }
    if (j->nranks)
        for (int i = 0; i < timed; i++) out_s[i] = end[i] > start[i] ? end[i] - start[i] : 0;
    free(start);
    free(end);
}

/* One call of the job on every rank, under the default watchdog: its longest duration in
 * seconds, on every rank (it sizes the watchdog of the timed graph). */
static int probe_job(const ex_backend *b, const job *j, int world, double *longest_s,
                     ms_err *err)
{
    tg_graph *g = job_graph(j, world, 1, err);
    if (!g) return -1;
    ex_options opt;
    ex_options_defaults(&opt);
    opt.warmup = 0;
    ex_result r = {0};
    int rc = ex_run(g, b, &opt, &r, err);
    double d = 0;
    if (!rc && ex_world_rank() == 0)
        for (uint32_t t = 0; t < r.ntasks; t++)
            if (r.end_us[t] - r.start_us[t] > d) d = r.end_us[t] - r.start_us[t];
    d *= 1e-6;
    ex_result_release(&r);
    tg_graph_free(g);
    if (!rc) rc = ex_bcast(&d, sizeof d, 0, err);
    *longest_s = d;
    return rc;
}

static int measure_job(const ex_backend *b, const job *j, int warmup, int timed, int world,
                       ex_calib_point *p, ms_err *err)
{
    double once_s = 0;
    int rc = probe_job(b, j, world, &once_s, err);
    if (rc) return rc;
    tg_graph *g = job_graph(j, world, warmup + timed, err);
    if (!g) return -1;
    ex_options opt;
    ex_options_defaults(&opt);
    opt.warmup = 0; /* the graph holds its own warm-up trials */
    /* the watchdog covers the whole pass: the default plus 4x the calls' expected time */
    opt.watchdog_s += 4 * (warmup + timed) * once_s;
    ex_result r = {0};
    rc = ex_run(g, b, &opt, &r, err);
    if (!rc && ex_world_rank() == 0) {
        double *ts = malloc((size_t)timed * sizeof *ts);
        if (!ts) {
            rc = ms_err_set(err, "out of memory");
        } else {
            trial_times(j, g, &r, warmup, timed, ts);
            double sum = 0;
            for (int i = 0; i < timed; i++) sum += ts[i];
            qsort(ts, (size_t)timed, sizeof *ts, cmp_double);
            p->mean_s = sum / timed;
            p->median_s = timed % 2 ? ts[timed / 2] : (ts[timed / 2 - 1] + ts[timed / 2]) / 2;
            p->min_s = ts[0];
            p->max_s = ts[timed - 1];
            p->trials = timed;
            free(ts);
        }
    }
    ex_result_release(&r);
    tg_graph_free(g);
    return rc;
}

int ex_calib_measure(const ex_backend *b, const ex_calib_options *o, ex_calib_result *res,
                     ms_err *err)
{
    memset(res, 0, sizeof *res);
    int world = ex_world_size(), root = ex_world_rank() == 0;
    int warmup = o->warmup < 0 ? 0 : o->warmup ? o->warmup : 10;
    int timed = o->timed > 0 ? o->timed : 20;
    job_list L = {0};
    if (compute_grid(&L, o->quick) || (o->shapes && graph_shapes(&L, o->shapes)) ||
        comm_grid(&L, o->quick, world)) {
        free(L.j);
        return ms_err_set(err, "out of memory building the calibration grid");
    }
    ex_calib_point *pts = calloc(L.n ? L.n : 1, sizeof *pts);
    if (!pts) {
        free(L.j);
        return ms_err_set(err, "out of memory");
    }
    double t0 = ex_clock_s();
    int rc = 0;
    for (size_t i = 0; i < L.n && !rc; i++) {
        const job *j = &L.j[i];
        ex_calib_point *p = &pts[i];
        snprintf(p->op, sizeof p->op, "%s", j->op);
        p->nargs = j->nargs;
        memcpy(p->args, j->args, sizeof p->args);
        p->nranks = j->nranks;
        p->from_graph = j->from_graph;
        if (j->nranks == 0) {
            cdb_work w;
            if (cdb_work_of(j->op, j->args, j->nargs, &w, err)) {
                rc = -1;
                break;
            }
            p->x = w.flops, p->bytes = w.bytes;
        } else {
            p->x = p->bytes = j->bytes;
        }
        rc = measure_job(b, j, warmup, timed, world, p, err);
        if (rc) {
            char shape[256];
            if (j->nranks == 0) shape_text(j, shape, sizeof shape);
            else snprintf(shape, sizeof shape, "%d ranks, %.0f bytes", j->nranks, j->bytes);
            ms_err_prefix(err, "calibration point %zu (%s %s)", i + 1, j->op, shape);
        } else if (root && o->log) {
            char shape[256];
            if (j->nranks == 0) shape_text(j, shape, sizeof shape);
            else snprintf(shape, sizeof shape, "n=%d bytes=%.0f", j->nranks, j->bytes);
            fprintf(o->log, "[%3zu/%zu] %-13s %-44s %10.1f us (median; mean %.1f, %.1f-%.1f)\n",
                    i + 1, L.n, j->op, shape, p->median_s * 1e6, p->mean_s * 1e6,
                    p->min_s * 1e6, p->max_s * 1e6);
            fflush(o->log);
        }
    }
    free(L.j);
    if (rc || !root) {
        free(pts);
        return rc;
    }
    res->pt = pts;
    res->n = L.n;
    res->wall_s = ex_clock_s() - t0;
    return 0;
}

void ex_calib_result_release(ex_calib_result *res)
{
    if (!res) return;
    free(res->pt);
    memset(res, 0, sizeof *res);
}

/* ---- fitting -------------------------------------------------------------------------- */

typedef struct xy {
    double x, t;
} xy;

static int cmp_xy(const void *a, const void *b)
{
    const xy *p = a, *q = b;
    return p->x < q->x ? -1 : p->x > q->x;
}

/* R² of the line t = a + b x over the n points (at most 1; NaN when every t is equal). */
static double r2_linear(const xy *p, int n, double a, double b)
{
    double mean = 0, ss_tot = 0, ss_res = 0;
    for (int i = 0; i < n; i++) mean += p[i].t / n;
    for (int i = 0; i < n; i++) {
        double e = a + b * p[i].x - p[i].t;
        ss_res += e * e, ss_tot += (p[i].t - mean) * (p[i].t - mean);
    }
    return ss_tot > 0 ? fmin(1, 1 - ss_res / ss_tot) : NAN;
}

/* Linear t = a + b x minimising the squared relative error, b >= 0. skip: index left out
 * (LOO), or -1. */
static void fit_linear(const xy *p, int n, int skip, double *a, double *b)
{
    double sw = 0, swx = 0, swxx = 0, swt = 0, swxt = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        if (i == skip || !(p[i].t > 0)) continue;
        double w = 1 / (p[i].t * p[i].t);
        sw += w, swx += w * p[i].x, swxx += w * p[i].x * p[i].x;
        swt += w * p[i].t, swxt += w * p[i].x * p[i].t;
        used++;
    }
    double det = sw * swxx - swx * swx;
    if (used >= 2 && det > 1e-12 * sw * swxx) {
        *b = (sw * swxt - swx * swt) / det;
        *a = (swt - *b * swx) / sw;
    } else {
        *b = -1;
    }
    if (!(*b >= 0)) { /* one point, or a falling line: proportional / constant */
        *b = 0;
        *a = used ? swt / sw : 0;
        if (used == 1 && swx > 0) *a = 0, *b = swt / swx;
    }
}

/* Piecewise-linear through the mean time per distinct x (points sorted by x), extrapolated
 * along the end segments; one distinct x: proportional. The simulator's rule (cdb.c). */
static double eval_piecewise(const xy *p, int n, int skip, double x)
{
    double px[512], pt[512];
    int m = 0;
    for (int i = 0; i < n;) {
        int k = i;
        double sum = 0;
        int c = 0, skipped = 0;
        while (k < n && p[k].x == p[i].x) {
            if (k == skip) skipped = 1;
            else sum += p[k].t, c++;
            k++;
        }
        if (!skipped && c && m < 512) px[m] = p[i].x, pt[m] = sum / c, m++;
        i = k;
    }
    if (m == 0) return NAN;
    if (m == 1) return px[0] > 0 ? pt[0] * x / px[0] : pt[0];
    int lo = 0, hi = m - 1;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (px[mid] <= x) lo = mid;
        else hi = mid;
    }
    double t = pt[lo] + (pt[lo + 1] - pt[lo]) * (x - px[lo]) / (px[lo + 1] - px[lo]);
    return t > 0 ? t : 0;
}

/* Model-selection error of one prediction: |ln(predicted / measured)|, symmetric, so a
 * 10x under-estimate counts as much as a 10x over-estimate (a plain relative error
 * would rate the first as 0.9 and the second as 9). */
static double rel_err(double pred, double t)
{
    if (!(t > 0)) return 0;
    return fabs(log(fmax(pred, 1e-12) / t));
}

/* ---- roofline: t = alpha + max((F + f_half) / (peak eff_max), B / (bw bw_eff)) -------- */

typedef struct fbt {
    double f, b, t; /* FLOPs, bytes (cdb_work_of), measured seconds */
} fbt;

typedef struct roof {
    double alpha_s, eff_max, f_half, bw_eff;
} roof;

/* The cost DB's roofline (cdb.c model_time), clamped at 0. */
static double roof_eval(const roof *r, double peak, double bw, double f, double b)
{
    double comp = f > 0 ? (f + r->f_half) / (peak * r->eff_max) : 0;
    double mem = b / (bw * r->bw_eff);
    double t = r->alpha_s + (comp > mem ? comp : mem);
    return t > 0 ? t : 0;
}

/* Unconstrained parameters -> a valid curve: eff_max, bw_eff in (0, 1), f_half, alpha > 0.
 * The search may wander far; clamping keeps every parameter finite and positive (exp of a
 * large negative number is 0, which the database rightly refuses). */
static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static roof roof_of(const double *p)
{
    roof r = {exp(clampd(p[3], -60, 5)), 1 / (1 + exp(clampd(p[0], -30, 30))),
              exp(clampd(p[2], 0, 80)), 1 / (1 + exp(clampd(p[1], -30, 30)))};
    return r;
}

typedef struct roof_ctx {
    const fbt *pt;
    int n, skip;
    double peak, bw;
} roof_ctx;

static double roof_cost(const double *p, const roof_ctx *c)
{
    roof r = roof_of(p);
    double s = 0;
    for (int i = 0; i < c->n; i++) {
        if (i == c->skip) continue;
        double e = log(fmax(roof_eval(&r, c->peak, c->bw, c->pt[i].f, c->pt[i].b), 1e-12) /
                       c->pt[i].t);
        s += e * e;
    }
    return s;
}

/* Nelder-Mead over the 4 unconstrained parameters, from x (updated in place). */
static double nelder_mead(double *x, const roof_ctx *c)
{
    enum { D = 4 };
    double v[D + 1][D], fv[D + 1];
    for (int i = 0; i <= D; i++) {
        for (int k = 0; k < D; k++) v[i][k] = x[k] + (i == k + 1 ? 1.0 : 0.0);
        fv[i] = roof_cost(v[i], c);
    }
    for (int it = 0; it < 600; it++) {
        int lo = 0, hi = 0, nh = 0;
        for (int i = 1; i <= D; i++) {
            if (fv[i] < fv[lo]) lo = i;
            if (fv[i] > fv[hi]) hi = i;
        }
        nh = hi == 0 ? 1 : 0;
        for (int i = 0; i <= D; i++)
            if (i != hi && fv[i] > fv[nh]) nh = i;
        if (fv[hi] - fv[lo] < 1e-12 * (1 + fv[lo])) break;
        double cen[D] = {0}, xr[D], xe[D], xc[D];
        for (int i = 0; i <= D; i++)
            if (i != hi)
                for (int k = 0; k < D; k++) cen[k] += v[i][k] / D;
        for (int k = 0; k < D; k++) xr[k] = cen[k] + (cen[k] - v[hi][k]);
        double fr = roof_cost(xr, c);
        if (fr < fv[lo]) {
            for (int k = 0; k < D; k++) xe[k] = cen[k] + 2 * (cen[k] - v[hi][k]);
            double fe = roof_cost(xe, c);
            memcpy(v[hi], fe < fr ? xe : xr, sizeof xr);
            fv[hi] = fe < fr ? fe : fr;
        } else if (fr < fv[nh]) {
            memcpy(v[hi], xr, sizeof xr);
            fv[hi] = fr;
        } else {
            for (int k = 0; k < D; k++) xc[k] = cen[k] + 0.5 * (v[hi][k] - cen[k]);
            double fc = roof_cost(xc, c);
            if (fc < fv[hi]) {
                memcpy(v[hi], xc, sizeof xc);
                fv[hi] = fc;
            } else { /* shrink towards the best */
                for (int i = 0; i <= D; i++)
                    if (i != lo) {
                        for (int k = 0; k < D; k++) v[i][k] = v[lo][k] + 0.5 * (v[i][k] - v[lo][k]);
                        fv[i] = roof_cost(v[i], c);
                    }
            }
        }
    }
    int lo = 0;
    for (int i = 1; i <= D; i++)
        if (fv[i] < fv[lo]) lo = i;
    memcpy(x, v[lo], sizeof v[lo]);
    return fv[lo];
}

/* Fits the roofline to pt (minus skip), from a few starting curves; x0 (4 parameters, may
 * be NULL) is one more start. Returns the parameters in x. */
static void fit_roofline(const fbt *pt, int n, int skip, double peak, double bw, const double *x0,
                         double *x)
{
    roof_ctx c = {pt, n, skip, peak, bw};
    double best = INFINITY;
    static const double starts[][4] = {
        /* eff_max, bw_eff logits; ln f_half; ln alpha */
        {0, 0, 13.8, -11.5}, {2, 2, 18.4, -11.5}, {1, 3, 9.2, -9.2}, {3, 1, 20.7, -13.8}};
    for (int s = 0; s < 5; s++) {
        double y[4];
        if (s == 4) {
            if (!x0) break;
            memcpy(y, x0, sizeof y);
        } else {
            memcpy(y, starts[s], sizeof y);
        }
        double f = nelder_mead(y, &c);
        f = nelder_mead(y, &c); /* a restart escapes most early collapses */
        if (f < best) best = f, memcpy(x, y, sizeof y);
    }
}

/* The time of one GEMM (m, n, k) under a fitted gemm model. */
static double gemm_model(const ex_calib_fit *f, const xy *p, int n, double m, double nn,
                         double k)
{
    double x = 2 * m * nn * k;
    if (!strcmp(f->chosen, "piecewise")) return eval_piecewise(p, n, -1, x);
    if (!strcmp(f->chosen, "roofline")) {
        roof r = {f->roof_alpha_s, f->eff_max, f->f_half_flops, f->bw_eff};
        return roof_eval(&r, f->peak_flops, f->mem_bw_bytes_per_s, x,
                         2 * (m * k + k * nn + m * nn));
    }
    double t = f->alpha_s + f->beta_s * x;
    return t > 0 ? t : 0;
}

/* Collects the points of one compute op (mean times), sorted by x. */
static int op_points(const ex_calib_result *res, const char *op, xy **out)
{
    int n = 0;
    for (size_t i = 0; i < res->n; i++)
        if (!res->pt[i].nranks && !strcmp(res->pt[i].op, op)) n++;
    *out = NULL;
    if (!n) return 0;
    xy *p = malloc((size_t)n * sizeof *p);
    if (!p) return -1;
    int k = 0;
    for (size_t i = 0; i < res->n; i++)
        if (!res->pt[i].nranks && !strcmp(res->pt[i].op, op))
            p[k++] = (xy){res->pt[i].x, res->pt[i].median_s};
    qsort(p, (size_t)n, sizeof *p, cmp_xy);
    *out = p;
    return n;
}

int ex_calib_fit_all(const ex_calib_result *res, int force_piecewise, ex_calib_fit **fits,
                 size_t *nfits, ex_calib_comm_fit **cfits, size_t *ncfits, ms_err *err)
{
    static const char *const ops[] = {"gemm", "attn", "ffn", "gate"};
    *fits = NULL, *cfits = NULL, *nfits = *ncfits = 0;
    ex_calib_fit *F = calloc(4, sizeof *F);
    ex_calib_comm_fit *C = calloc(res->n ? res->n : 1, sizeof *C);
    xy *gp = NULL;
    int ngp = 0;
    if (!F || !C) goto oom;
    double peak = 0, bw = 0; /* the best rates of the run, for the roofline form */
    for (size_t i = 0; i < res->n; i++) {
        const ex_calib_point *q = &res->pt[i];
        if (q->nranks || !(q->median_s > 0)) continue;
        peak = fmax(peak, q->x / q->median_s);
        bw = fmax(bw, q->bytes / q->median_s);
    }
    for (size_t o = 0; o < 4; o++) {
        xy *p;
        int n = op_points(res, ops[o], &p);
        if (n < 0) goto oom;
        if (n == 0) continue;
        ex_calib_fit *f = &F[(*nfits)++];
        snprintf(f->op, sizeof f->op, "%s", ops[o]);
        f->npoints = n;
        f->x_min = p[0].x, f->x_max = p[n - 1].x;
        fit_linear(p, n, -1, &f->alpha_s, &f->beta_s);
        f->r2 = r2_linear(p, n, f->alpha_s, f->beta_s);
        double el = 0, ep = 0;
        for (int i = 0; i < n; i++) {
            double a, b;
            fit_linear(p, n, i, &a, &b);
            el += rel_err(fmax(a + b * p[i].x, 0), p[i].t) / n;
            double pp = eval_piecewise(p, n, i, p[i].x);
            ep += (isnan(pp) ? 1 : rel_err(pp, p[i].t)) / n;
        }
        f->loo_linear = n > 1 ? el : NAN;
        f->loo_piecewise = n > 1 ? ep : NAN;
        f->composed_err = NAN;
        f->peak_flops = peak, f->mem_bw_bytes_per_s = bw;
        f->roof_alpha_s = f->eff_max = f->f_half_flops = f->bw_eff = f->loo_roofline = NAN;
        if (n >= 4 && peak > 0 && bw > 0) {
            fbt *rp = malloc((size_t)n * sizeof *rp);
            if (!rp) {
                free(p);
                goto oom;
            }
            int k = 0;
            for (size_t i = 0; i < res->n; i++)
                if (!res->pt[i].nranks && !strcmp(res->pt[i].op, ops[o]))
                    rp[k++] = (fbt){res->pt[i].x, res->pt[i].bytes, res->pt[i].median_s};
            double prm[4], lp[4];
            fit_roofline(rp, n, -1, peak, bw, NULL, prm);
            roof r = roof_of(prm);
            f->roof_alpha_s = r.alpha_s, f->eff_max = r.eff_max, f->f_half_flops = r.f_half;
            f->bw_eff = r.bw_eff;
            double er = 0;
            for (int i = 0; i < n; i++) {
                fit_roofline(rp, n, i, peak, bw, prm, lp);
                roof ri = roof_of(lp);
                er += rel_err(roof_eval(&ri, peak, bw, rp[i].f, rp[i].b), rp[i].t) / n;
            }
            f->loo_roofline = er;
            free(rp);
        }
        /* the simplest form wins unless another beats it by half a point of error:
         * linear, then roofline, then piecewise */
        double best = n > 1 ? el : INFINITY;
        f->chosen = "linear";
        if (!isnan(f->loo_roofline) && f->loo_roofline < best - 0.005)
            f->chosen = "roofline", best = f->loo_roofline;
        if (n > 1 && ep < best - 0.005) f->chosen = "piecewise";
        if (force_piecewise) f->chosen = "piecewise";
        if (!strcmp(ops[o], "gemm")) {
            gp = p, ngp = n;
            continue;
        }
        if (ngp && (!strcmp(ops[o], "ffn") || !strcmp(ops[o], "gate"))) {
            const ex_calib_fit *g = &F[0];
            double ec = 0;
            int k = 0;
            for (size_t i = 0; i < res->n; i++) {
                const ex_calib_point *q = &res->pt[i];
                if (q->nranks || strcmp(q->op, ops[o])) continue;
                double t;
                if (!strcmp(ops[o], "ffn")) {
                    double tok = (double)q->args[0], e = (double)q->args[1];
                    double gemms = q->nargs > 4 ? (double)q->args[4] : 3;
                    t = gemms * e * gemm_model(g, gp, ngp, tok / e, (double)q->args[3],
                                               (double)q->args[2]);
                } else {
                    t = gemm_model(g, gp, ngp, (double)q->args[0], (double)q->args[2],
                                   (double)q->args[1]);
                }
                ec += rel_err(t, q->median_s), k++;
            }
            f->composed_err = k ? ec / k : NAN;
            double own = !strcmp(f->chosen, "piecewise") ? f->loo_piecewise
                         : !strcmp(f->chosen, "roofline")  ? f->loo_roofline
                                                           : f->loo_linear;
            if (!force_piecewise && f->composed_err < (isnan(own) ? INFINITY : own))
                f->chosen = "composed";
        }
        free(p);
    }
    free(gp);
    gp = NULL;

    /* comm: alpha-beta per (op, group size), least squares on relative error */
    for (size_t i = 0; i < res->n; i++) {
        const ex_calib_point *q = &res->pt[i];
        if (!q->nranks) continue;
        size_t k;
        for (k = 0; k < *ncfits; k++)
            if (!strcmp(C[k].op, q->op) && C[k].nranks == q->nranks) break;
        if (k < *ncfits) continue;
        ex_calib_comm_fit *c = &C[(*ncfits)++];
        snprintf(c->op, sizeof c->op, "%s", q->op);
        c->nranks = q->nranks;
        xy pts[64];
        int n = 0;
        for (size_t m = i; m < res->n && n < 64; m++)
            if (res->pt[m].nranks == q->nranks && !strcmp(res->pt[m].op, q->op))
                pts[n++] = (xy){res->pt[m].bytes, res->pt[m].median_s};
        fit_linear(pts, n, -1, &c->alpha_s, &c->beta_s_per_byte);
        c->r2 = r2_linear(pts, n, c->alpha_s, c->beta_s_per_byte);
    }
    *fits = F, *cfits = C;
    return 0;
oom:
    free(F), free(C), free(gp);
    *nfits = *ncfits = 0;
    return ms_err_set(err, "out of memory fitting the calibration");
}

/* ---- printing ------------------------------------------------------------------------- */

double ex_calib_busbw_factor(const char *op, int n)
{
    if (!strcmp(op, "allreduce")) return 2.0 * (n - 1) / n;
    if (!strcmp(op, "allgather") || !strcmp(op, "reducescatter")) return (double)(n - 1) / n;
    return 1;
}

double ex_calib_nccl_size(const char *op, int n, double bytes)
{
    if (!strcmp(op, "allgather") || !strcmp(op, "reducescatter")) return bytes * n;
    return bytes;
}

void ex_calib_print_comm(const ex_calib_result *res, FILE *f)
{
    const char *op = NULL;
    int n = 0;
    for (size_t i = 0; i < res->n; i++) {
        const ex_calib_point *q = &res->pt[i];
        if (!q->nranks) continue;
        if (!op || strcmp(op, q->op) || n != q->nranks) {
            op = q->op, n = q->nranks;
            const char *form = !strcmp(op, "allreduce") ? "2(n-1)/n"
                               : !strcmp(op, "allgather") || !strcmp(op, "reducescatter")
                                   ? "(n-1)/n"
                                   : "1";
            fprintf(f, "\n# %s, %d ranks (busbw = algbw x %s = %.4g)\n", op, n, form,
                    ex_calib_busbw_factor(op, n));
            fprintf(f, "# %12s %12s %6s %12s %12s %12s\n", "size(B)", "count", "type",
                    "time(us)", "algbw(GB/s)", "busbw(GB/s)");
        }
        double size = ex_calib_nccl_size(op, n, q->bytes), t = q->median_s;
        double algbw = t > 0 ? size / t / 1e9 : 0;
        fprintf(f, "  %12.0f %12.0f %6s %12.2f %12.3f %12.3f\n", size, size / 4, "float",
                t * 1e6, algbw, algbw * ex_calib_busbw_factor(op, n));
    }
}

static void print_shape(const ex_calib_point *q, char *buf, size_t len)
{
    job j = {.op = q->op, .nargs = q->nargs};
    memcpy(j.args, q->args, sizeof j.args);
    shape_text(&j, buf, len);
}

void ex_calib_print_compute(const ex_calib_result *res, const ex_calib_fit *fits,
                            size_t nfits, FILE *f)
{
    fprintf(f, "%-6s %-50s %12s %12s %10s\n", "op", "shape", "FLOP", "time(us)", "GFLOP/s");
    for (size_t i = 0; i < res->n; i++) {
        const ex_calib_point *q = &res->pt[i];
        if (q->nranks) continue;
        char shape[256];
        print_shape(q, shape, sizeof shape);
        fprintf(f, "%-6s %-50s %12.4g %12.1f %10.2f%s\n", q->op, shape, q->x, q->median_s * 1e6,
                q->median_s > 0 ? q->x / q->median_s / 1e9 : 0, q->from_graph ? "  (graph)" : "");
    }
    fprintf(f, "\nfits (errors: exp(mean |ln(predicted/measured)|) - 1, leave-one-out for the own "
               "forms; the chosen form is used)\n");
    for (size_t i = 0; i < nfits; i++) {
        const ex_calib_fit *q = &fits[i];
        fprintf(f, "  %-5s %2d pts  linear %.3g us + %.4g ns/kFLOP (R2 %.3f, LOO %.1f%%)  "
                   "piecewise LOO %.1f%%",
                q->op, q->npoints, q->alpha_s * 1e6, q->beta_s * 1e12, q->r2,
                expm1(q->loo_linear) * 100, expm1(q->loo_piecewise) * 100);
        if (!isnan(q->loo_roofline))
            fprintf(f, "  roofline LOO %.1f%% (eff %.3g, f_half %.3g FLOP, bw_eff %.3g)",
                    expm1(q->loo_roofline) * 100, q->eff_max, q->f_half_flops, q->bw_eff);
        if (!isnan(q->composed_err))
            fprintf(f, "  composed from gemm %.1f%%", expm1(q->composed_err) * 100);
        fprintf(f, "  -> %s\n", q->chosen);
    }
}

/* ---- writing -------------------------------------------------------------------------- */

static int write_model(cdb_writer *w, int64_t run_id, const char *device,
                       const ex_calib_fit *f, const char *form, const char *why, ms_err *err)
{
    char note[512];
    cdb_model_row m = {device, f->op, form, f->alpha_s, f->beta_s, f->x_min, f->x_max, NAN,
                       note, NAN, NAN, NAN};
    if (!strcmp(form, "linear")) {
        m.r2 = f->r2;
        snprintf(note, sizeof note,
                 "least squares on relative error over %d points; leave-one-out error "
                 "exp(mean |ln ratio|) - 1 = %.1f%%%s",
                 f->npoints, expm1(f->loo_linear) * 100, why);
    } else if (!strcmp(form, "roofline")) {
        m.alpha_s = f->roof_alpha_s, m.eff_max = f->eff_max;
        m.f_half_flops = f->f_half_flops, m.bw_eff = f->bw_eff;
        snprintf(note, sizeof note,
                 "fitted (Nelder-Mead on squared ln ratio) over %d points against the run's "
                 "best rates; leave-one-out error exp(mean |ln ratio|) - 1 = %.1f%%%s",
                 f->npoints, expm1(f->loo_roofline) * 100, why);
    } else {
        snprintf(note, sizeof note,
                 "through the run's mean time per distinct x (%d points); leave-one-out error "
                 "exp(mean |ln ratio|) - 1 = %.1f%%%s",
                 f->npoints, expm1(f->loo_piecewise) * 100, why);
    }
    return cdb_writer_model(w, run_id, &m, NULL, err);
}

int ex_calib_write(const char *db_path, const char *const *seed_files, int nseed,
                   const cdb_run_row *run, const char *device, const char *device_kind,
                   const ex_calib_result *res, const ex_calib_fit *fits, size_t nfits,
                   const ex_calib_comm_fit *cfits, size_t ncfits, int (*cancelled)(void),
                   int64_t *run_id, ms_err *err)
{
    cdb_writer *w = cdb_writer_begin(db_path, seed_files, nseed, err);
    if (!w) return -1;
    if (cdb_writer_device(w, device, device_kind, "added by moesched calibrate", err) ||
        cdb_writer_run(w, run, run_id, err))
        goto fail;
    for (size_t i = 0; i < res->n; i++) {
        const ex_calib_point *q = &res->pt[i];
        char shape[256];
        if (q->nranks) snprintf(shape, sizeof shape, "n=%d bytes=%.0f", q->nranks, q->bytes);
        else print_shape(q, shape, sizeof shape);
        cdb_measurement_row m = {device, q->op, shape, q->x, q->bytes, q->median_s, q->trials};
        if (cdb_writer_measurement(w, *run_id, &m, err)) goto fail;
    }
    for (size_t i = 0; i < nfits; i++) /* roofline rows divide by the device's figures */
        if (!isnan(fits[i].loo_roofline)) {
            char note[256];
            snprintf(note, sizeof note,
                     "peak_flops and mem_bw_bytes_per_s: the best FLOP and byte rates (bytes as "
                     "the cost DB counts them, 2 per element) over the compute points of "
                     "calibration run %lld",
                     (long long)*run_id);
            if (cdb_writer_device_figures(w, device, fits[i].peak_flops,
                                          fits[i].mem_bw_bytes_per_s, note, err))
                goto fail;
            break;
        }
    for (size_t i = 0; i < nfits; i++) {
        const ex_calib_fit *f = &fits[i];
        const char *chosen = f->chosen;
        char why[160] = "";
        if (!strcmp(chosen, "composed")) {
            /* composition from gemm is better; an own measured model from an earlier run
             * would still win over it, so then the better own form is written instead */
            int has = cdb_writer_has_model(w, device, f->op, "measured", err);
            if (has < 0) goto fail;
            if (!has) continue;
            chosen = f->loo_piecewise < f->loo_linear ? "piecewise" : "linear";
            if (!isnan(f->loo_roofline) &&
                f->loo_roofline < fmin(f->loo_piecewise, f->loo_linear))
                chosen = "roofline";
            snprintf(why, sizeof why,
                     "; composition from gemm fits better (%.1f%%) but an earlier measured "
                     "model exists",
                     expm1(f->composed_err) * 100);
        }
        char why2[192];
        snprintf(why2, sizeof why2, "; chosen%s", why);
        /* the other forms first: the chosen one, written last, is the newest and is used */
        static const char *const forms[] = {"linear", "piecewise", "roofline"};
        for (size_t k = 0; k < 3; k++) {
            if (!strcmp(forms[k], chosen) || (k < 2 && f->npoints < 2) ||
                (k == 2 && isnan(f->loo_roofline)))
                continue;
            if (write_model(w, *run_id, device, f, forms[k], "; not chosen", err)) goto fail;
        }
        if (write_model(w, *run_id, device, f, chosen, why2, err)) goto fail;
    }
    for (size_t i = 0; i < ncfits; i++) {
        const ex_calib_comm_fit *c = &cfits[i];
        char note[256];
        snprintf(note, sizeof note,
                 "group of %d ranks; bytes = the IR's per-rank bytes; least squares on "
                 "relative error",
                 c->nranks);
        cdb_comm_row row = {device, c->op, c->alpha_s, c->beta_s_per_byte, c->r2, note};
        if (cdb_writer_comm(w, *run_id, &row, err)) goto fail;
    }
    if (cancelled && cancelled()) {
        ms_err_set(err, "interrupted: %s left as it was", db_path);
        goto fail;
    }
    return cdb_writer_commit(w, err);
fail:
    cdb_writer_abort(w);
    return -1;
}

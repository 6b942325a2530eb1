/* The generic walker of the executors: every rank issues its own tasks, in the graph's
 * file order (one global order shared by all ranks), through a backend table; then it
 * synchronizes under a watchdog, aligns the ranks' clocks and gathers the measured
 * timeline on rank 0. Also the trace writer (the simulator's Perfetto format, through
 * ir/tg_trace.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/backend.h"
#include "exec/ex_mpi.h"
#include "exec/exec.h"
#include "exec/moe_check.h"
#include "ir/tg_trace.h"

#define DEFAULT_WATCHDOG_S 60.0
#define CLOCK_ROUNDS 8 /* ping-pongs per rank of the offset exchange */
#define TAG_CLOCK 7001

double ex_clock_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ex_options_defaults(ex_options *o)
{
    memset(o, 0, sizeof *o);
    o->watchdog_s = DEFAULT_WATCHDOG_S;
    o->warmup = 1;
    o->seed = 1;
}

const char *ex_task_desc(const tg_graph *g, uint32_t t, char *buf, size_t len)
{
    const char *label = tg_str(g, g->label[t]);
    const char *stream = tg_str(g, g->stream_name[g->stream[t]]);
    if (label)
        snprintf(buf, len, "task %lld (%s) on rank %d stream %s", (long long)g->id[t], label,
                 g->rank[t], stream);
    else
        snprintf(buf, len, "task %lld (%s) on rank %d stream %s", (long long)g->id[t],
                 tg_op_get((tg_op)g->op[t])->name, g->rank[t], stream);
    return buf;
}

const ex_backend *ex_backend_lookup(const char *name, const ex_backend *cuda, ms_err *err)
{
    if (name && !strcmp(name, "host")) return &ex_backend_host;
    if (name && !strcmp(name, "cuda")) {
        if (cuda) return cuda;
        ms_err_set(err, "backend 'cuda' is not built into this moesched (nvcc was not found "
                        "at build time, or the build used CUDA=0); known backends: host");
        return NULL;
    }
    ms_err_set(err, "unknown backend '%s' (known: host%s)", name ? name : "",
               cuda ? ", cuda" : "; cuda is not built in");
    return NULL;
}

void ex_result_release(ex_result *res)
{
    if (!res) return;
    free(res->start_us);
    free(res->end_us);
    memset(res, 0, sizeof *res);
}

/* ---- one pass ---------------------------------------------------------------------- */

/* Enqueues every task of `rank` in file order, then synchronizes. */
static int one_pass(const tg_graph *g, const ex_backend *b, void *ctx, int rank,
                    double watchdog_s, ms_err *err)
{
    if (b->begin(ctx, err) != 0) return -1;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->rank[t] != rank) continue;
        for (uint32_t k = g->dep_off[t]; k < g->dep_off[t + 1]; k++) {
            uint32_t d = g->dep[k];
            if (g->stream[d] != g->stream[t] && b->wait(ctx, g->stream[t], d, err) != 0)
                return -1;
        }
        tg_kind kind = tg_task_kind(g, t);
        int rc = kind == TG_KIND_XCHG || kind == TG_KIND_COLL ? b->enqueue_comm(ctx, t, err)
                                                              : b->enqueue_compute(ctx, t, err);
        if (rc != 0 || b->record(ctx, t, err) != 0) return -1;
    }
    return b->synchronize(ctx, watchdog_s, err);
}

/* Agrees on failure across ranks after a step every rank reaches. Returns 0 when every
 * rank succeeded; otherwise -1, with err kept on failing ranks and set to a pointer to
 * the first failing rank elsewhere. */
static int agree(int local_rc, const char *step, ms_err *err)
{
    int nranks = ex_world_size(), me = ex_world_rank();
    int64_t v[2] = {local_rc != 0, local_rc != 0 ? nranks - me : 0}, out[2];
    ms_err e2;
    if (ex_allreduce_max_i64(v, out, 2, &e2) != 0) {
        if (local_rc == 0) *err = e2;
        return -1;
    }
    if (!out[0]) return 0;
    if (local_rc == 0)
        ms_err_set(err, "rank %d: %s failed on rank %d (its message is above)", me, step,
                   (int)(nranks - out[1]));
    return -1;
}

/* Offset of this rank's ex_clock_s from rank 0's, by Cristian's method: the ping-pong
 * with the smallest round trip wins; the error is at most half that round trip. */
static int clock_offset(double *offset_s, double *err_s, ms_err *err)
{
    int me = ex_world_rank(), n = ex_world_size();
    *offset_s = 0;
    *err_s = 0;
    for (int r = 1; r < n; r++) {
        double best_rtt = INFINITY, best_off = 0;
        for (int k = 0; k < CLOCK_ROUNDS; k++) {
            if (me == 0) {
                double t0 = ex_clock_s(), tr;
                if (ex_send_f64(&t0, 1, r, TAG_CLOCK, err) != 0 ||
                    ex_recv_f64(&tr, 1, r, TAG_CLOCK, err) != 0)
                    return -1;
                double t1 = ex_clock_s();
                if (t1 - t0 < best_rtt) best_rtt = t1 - t0, best_off = tr - 0.5 * (t0 + t1);
            } else if (me == r) {
                double t0, tr;
                if (ex_recv_f64(&t0, 1, 0, TAG_CLOCK, err) != 0) return -1;
                tr = ex_clock_s();
                if (ex_send_f64(&tr, 1, 0, TAG_CLOCK, err) != 0) return -1;
            }
        }
        if (me == 0) {
            double msg[2] = {best_off, 0.5 * best_rtt};
            if (ex_send_f64(msg, 2, r, TAG_CLOCK, err) != 0) return -1;
            if (0.5 * best_rtt > *err_s) *err_s = 0.5 * best_rtt;
        } else if (me == r) {
            double msg[2];
            if (ex_recv_f64(msg, 2, 0, TAG_CLOCK, err) != 0) return -1;
            *offset_s = msg[0];
            *err_s = msg[1];
        }
    }
    double e = *err_s;
    return ex_allreduce_sum_f64(&e, &e, 1, err) == 0 ? 0 : -1; /* keeps ranks in step */
}

/* Gathers the timed pass on rank 0: times in us from the earliest start. */
static int gather_times(const tg_graph *g, const ex_backend *b, void *ctx, int rank,
                        double epoch_s, ex_result *res, ms_err *err)
{
    size_t n = g->ntasks;
    double *mine = calloc(2 * n + 1, sizeof *mine);
    double *all = NULL;
    int rc = -1;
    if (!mine) return ms_err_set(err, "rank %d: out of memory for the timeline", rank);
    double off_s, cerr_s;
    if (clock_offset(&off_s, &cerr_s, err) != 0) goto out;
    double base_us = (epoch_s - off_s) * 1e6; /* this rank's epoch on rank 0's clock */
    int local = 0;
    for (uint32_t t = 0; t < g->ntasks && !local; t++) {
        if (g->rank[t] != rank) continue;
        double s, e;
        if (b->times(ctx, t, &s, &e, err) != 0) local = -1;
        mine[2 * t] = base_us + s;
        mine[2 * t + 1] = base_us + e;
    }
    if (agree(local, "reading task times", err) != 0) goto out;
    int nranks = ex_world_size();
    if (rank == 0) {
        all = malloc((size_t)nranks * (2 * n + 1) * sizeof *all);
        if (!all) {
            ms_err_set(err, "rank 0: out of memory gathering %d timelines", nranks);
            /* the gather below still needs a buffer to keep ranks in step */
        }
    }
    double dummy = 0;
    if ((rank == 0 && !all) || ex_gather_f64(mine, (int)(2 * n + 1), all ? all : &dummy, err) != 0)
        goto out;
    if (rank == 0) {
        res->start_us = malloc((n ? n : 1) * sizeof *res->start_us);
        res->end_us = malloc((n ? n : 1) * sizeof *res->end_us);
        if (!res->start_us || !res->end_us) {
            ms_err_set(err, "rank 0: out of memory for the timeline");
            goto out;
        }
        double t0 = INFINITY, t1 = -INFINITY;
        for (uint32_t t = 0; t < g->ntasks; t++) {
            const double *row = all + (size_t)g->rank[t] * (2 * n + 1);
            res->start_us[t] = row[2 * t];
            res->end_us[t] = row[2 * t + 1];
            if (res->start_us[t] < t0) t0 = res->start_us[t];
        }
        if (n == 0) t0 = 0;
        for (uint32_t t = 0; t < g->ntasks; t++) {
            res->start_us[t] -= t0;
            res->end_us[t] -= t0;
            if (res->end_us[t] > t1) t1 = res->end_us[t];
        }
        res->ntasks = g->ntasks;
        res->makespan_us = n ? t1 : 0;
    }
    res->clock_err_us = cerr_s * 1e6;
    rc = 0;
out:
    free(mine);
    free(all);
    return rc;
}

/* ---- ex_run ------------------------------------------------------------------------ */

static int run_graph(const tg_graph *g, const ex_backend *b, const ex_options *opt0,
                     ex_result *res, ms_err *err)
{
    memset(res, 0, sizeof *res);
    ex_options opt;
    if (opt0) opt = *opt0;
    else ex_options_defaults(&opt);
    if (opt.watchdog_s <= 0) opt.watchdog_s = DEFAULT_WATCHDOG_S;
    if (opt.warmup < 0) opt.warmup = 0;
    int rank = ex_world_rank(), size = ex_world_size();
    if (!g || !g->finalized) return ms_err_set(err, "ex_run: the graph is not finalized");
    if (!b) return ms_err_set(err, "ex_run: no backend");
    /* every rank sees the same graph, so these checks agree without communication */
    if (g->nranks != size)
        return ms_err_set(err, "the graph has %d ranks but %d MPI processes were started: run "
                               "it with mpirun -np %d", g->nranks, size, g->nranks);
    if (opt.check && !b->supports_payload)
        return ms_err_set(err, "--check is not supported by the %s backend (check mode runs "
                               "on the host backend)", b->name);

    ex_check *chk = NULL;
    int local = 0;
    if (opt.check) {
        chk = ex_check_create(g, &opt, rank, err);
        if (!chk) local = -1;
    }
    if (agree(local, "check-mode setup", err) != 0) {
        ex_check_free(chk);
        return -1;
    }
    ex_setup s = {.g = g, .rank = rank, .payload = chk ? ex_check_payload(chk) : NULL,
                  .seed = opt.seed};
    void *ctx = NULL;
    local = b->setup(&s, &ctx, err);
    int rc = agree(local, "backend setup", err);
    double epoch_s = 0;
    for (int pass = 0; rc == 0 && pass <= opt.warmup; pass++) {
        ms_err e2;
        if (ex_barrier(&e2) != 0) {
            *err = e2;
            rc = -1;
            break;
        }
        epoch_s = ex_clock_s();
        if (one_pass(g, b, ctx, rank, opt.watchdog_s, err) != 0) {
            /* the other ranks may be blocked in communication with this one: no agreeing
             * step would return, so the caller aborts the job */
            if (b->teardown) b->teardown(ctx);
            /* chk is not freed: abandoned receives may still write into its buffers
             * until the job is aborted */
            return EX_STUCK;
        }
    }
    if (rc == 0) rc = gather_times(g, b, ctx, rank, epoch_s, res, err);
    if (rc == 0 && chk) rc = ex_check_compare(chk, res, err);
    int stuck = b->teardown ? b->teardown(ctx) : 0;
    ex_check_free(chk);
    if (rc != 0) {
        free(res->start_us);
        free(res->end_us);
        res->start_us = res->end_us = NULL;
        res->ntasks = 0;
    }
    if (stuck) return EX_STUCK;
    return rc;
}

/* m2n exchanges run as their pairwise expansion (ir/tg.h: the same tasks in the same
 * order, each piece an xchg), so results are indexed like g's tasks. */
int ex_run(const tg_graph *g, const ex_backend *b, const ex_options *opt, ex_result *res,
           ms_err *err)
{
    if (!g || !g->finalized || !tg_has_m2n(g)) return run_graph(g, b, opt, res, err);
    memset(res, 0, sizeof *res);
    tg_graph *x = tg_expand_m2n(g, err);
    if (!x) return -1;
    int rc = run_graph(x, b, opt, res, err);
    if (rc != EX_STUCK) tg_graph_free(x); /* stuck: threads may still read it until abort */
    return rc;
}

/* ---- trace ------------------------------------------------------------------------- */

int ex_write_trace(const tg_graph *g, const ex_result *res, const char *path, ms_err *err)
{
    if (!res || res->ntasks != g->ntasks || (g->ntasks && (!res->start_us || !res->end_us)))
        return ms_err_set(err, "no measured timeline to write (only rank 0 holds one)");
    tg_trace tr;
    if (tg_trace_open(&tr, path, err) != 0) return -1;
    tg_trace_names(&tr, g);
    for (uint32_t t = 0; t < g->ntasks; t++)
        tg_trace_task(&tr, g, t, g->rank[t], res->start_us[t], res->end_us[t], "measured");
    return tg_trace_close(&tr, err);
}

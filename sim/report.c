/* Simulator outputs: the summary (busy times, exposed communication), its text and JSON
 * forms, and the Chrome/Perfetto trace. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "ir/tg_trace.h"
#include "sim/sim_internal.h"

/* A busy interval [a, b) of a rank. */
typedef struct ivl {
    double a, b;
} ivl;

/* Merges the sorted, disjoint runs in[run[k] .. run[k+1]) (k < nrun) into their union, as
 * sorted disjoint intervals in out; returns how many. The intervals of one stream are
 * sorted and disjoint (its tasks run one after another), and a rank has a few streams,
 * so a k-way merge by a linear scan of the run heads beats sorting every edge. */
static size_t union_runs(const ivl *in, uint32_t *head, const uint32_t *run, int nrun, ivl *out)
{
    size_t n = 0;
    for (;;) {
        int best = -1;
        for (int k = 0; k < nrun; k++)
            if (head[k] < run[k + 1] && (best < 0 || in[head[k]].a < in[head[best]].a)) best = k;
        if (best < 0) return n;
        ivl v = in[head[best]++];
        if (n > 0 && v.a <= out[n - 1].b) {
            if (v.b > out[n - 1].b) out[n - 1].b = v.b;
        } else {
            out[n++] = v;
        }
    }
}

static double total_length(const ivl *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i].b - v[i].a;
    return s;
}

/* Length of the part of x (sorted, disjoint) that y (sorted, disjoint) does not cover. */
static double uncovered(const ivl *x, size_t nx, const ivl *y, size_t ny)
{
    double s = 0;
    size_t j = 0;
    for (size_t i = 0; i < nx; i++) {
        double a = x[i].a, covered = 0;
        while (j < ny && y[j].b <= a) j++;
        for (size_t k = j; k < ny && y[k].a < x[i].b; k++) {
            double lo = y[k].a > a ? y[k].a : a, hi = y[k].b < x[i].b ? y[k].b : x[i].b;
            if (hi > lo) covered += hi - lo;
        }
        s += x[i].b - a - covered;
    }
    return s;
}

static int is_comm(const tg_graph *g, uint32_t t)
{
    tg_kind k = tg_task_kind(g, t);
    return k == TG_KIND_XCHG || k == TG_KIND_COLL;
}

void sim_summary_release(sim_summary *sum)
{
    free(sum->rank_compute_busy_s);
    free(sum->rank_comm_busy_s);
    free(sum->rank_exposed_comm_s);
    free(sum->stream_busy_s);
    sum->rank_compute_busy_s = sum->rank_comm_busy_s = sum->rank_exposed_comm_s = NULL;
    sum->stream_busy_s = NULL;
}

/* Per rank: compute busy is the union of its compute (and delay) task intervals, comm
 * busy the union of its comm intervals (from the moment data moves), exposed comm the part
 * of the comm union no compute covers. Each union merges the rank's streams' runs. */
int sim_summarize(sim_engine *s, ms_err *err)
{
    const tg_graph *g = s->g;
    sim_summary *sum = &s->sum;
    int R = g->nranks;
    sum->nranks = R;
    sum->nstreams = g->nstreams;
    sum->rank_compute_busy_s = calloc(R ? R : 1, sizeof(double));
    sum->rank_comm_busy_s = calloc(R ? R : 1, sizeof(double));
    sum->rank_exposed_comm_s = calloc(R ? R : 1, sizeof(double));
    sum->stream_busy_s = calloc(g->nstreams ? g->nstreams : 1, sizeof(double));
    /* streams by rank (CSR), and the most tasks and streams any rank has */
    uint32_t *soff = calloc((size_t)R + 2, sizeof *soff);
    uint32_t *sids = malloc((g->nstreams ? g->nstreams : 1) * sizeof *sids);
    uint32_t *rtasks = calloc((size_t)R + 1, sizeof *rtasks);
    if (!sum->rank_compute_busy_s || !sum->rank_comm_busy_s || !sum->rank_exposed_comm_s ||
        !sum->stream_busy_s || !soff || !sids || !rtasks) {
        free(soff), free(sids), free(rtasks);
        return ms_err_set(err, "out of memory summarising the run");
    }
    for (uint32_t t = 0; t < g->ntasks; t++) {
        sum->stream_busy_s[g->stream[t]] += s->end[t] - s->start[t];
        rtasks[g->rank[t]]++;
    }
    for (uint32_t st = 0; st < g->nstreams; st++) soff[g->stream_rank[st] + 2]++;
    uint32_t most = 1, most_streams = 1;
    for (int r = 0; r < R; r++) {
        if (rtasks[r] > most) most = rtasks[r];
        if (soff[r + 2] > most_streams) most_streams = soff[r + 2];
        soff[r + 2] += soff[r + 1];
    }
    for (uint32_t st = 0; st < g->nstreams; st++) sids[soff[g->stream_rank[st] + 1]++] = st;
    /* per rank: compute and comm intervals, two run tables, the two unions */
    ivl *buf = malloc(4 * (size_t)most * sizeof *buf);
    uint32_t *run = malloc(4 * ((size_t)most_streams + 1) * sizeof *run);
    if (!buf || !run) {
        free(soff), free(sids), free(rtasks), free(buf), free(run);
        return ms_err_set(err, "out of memory summarising the run");
    }
    ivl *cin = buf, *min = buf + most, *cu = buf + 2 * (size_t)most, *mu = buf + 3 * (size_t)most;
    uint32_t *crun = run, *mrun = run + most_streams + 1;
    uint32_t *chead = run + 2 * ((size_t)most_streams + 1), *mhead = chead + most_streams + 1;
    sum->exposed_comm_s = 0;
    for (int r = 0; r < R; r++) {
        uint32_t nc = 0, nm = 0;
        int k = 0;
        for (uint32_t i = soff[r]; i < soff[r + 1]; i++, k++) {
            crun[k] = chead[k] = nc, mrun[k] = mhead[k] = nm;
            for (uint32_t t = g->stream_head[sids[i]]; t != TG_NONE; t = g->next_in_stream[t]) {
                int c = is_comm(g, t);
                double from = c ? s->active[t] : s->start[t];
                if (s->end[t] <= from) continue;
                if (c) min[nm++] = (ivl){from, s->end[t]};
                else cin[nc++] = (ivl){from, s->end[t]};
            }
        }
        crun[k] = nc, mrun[k] = nm;
        size_t ncu = union_runs(cin, chead, crun, k, cu);
        size_t nmu = union_runs(min, mhead, mrun, k, mu);
        sum->rank_compute_busy_s[r] = total_length(cu, ncu);
        sum->rank_comm_busy_s[r] = total_length(mu, nmu);
        sum->rank_exposed_comm_s[r] = uncovered(mu, nmu, cu, ncu);
        if (sum->rank_exposed_comm_s[r] > sum->exposed_comm_s)
            sum->exposed_comm_s = sum->rank_exposed_comm_s[r];
    }
    free(soff), free(sids), free(rtasks), free(buf), free(run);
    return 0;
}

#define TEXT_RANKS 16 /* ranks shown in the text summary; --json has all */

void sim_print_summary(const sim_engine *s, FILE *f, double tokens, double bound_s)
{
    const tg_graph *g = s->g;
    const sim_summary *sum = &s->sum;
    fprintf(f, "topology        %s (%d x %d %s), network %s\n", s->t->name, s->t->nodes,
            s->t->gpus_per_node, s->t->device, s->net->name);
    fprintf(f, "makespan        %.3f us\n", sum->makespan_s * 1e6);
    if (tokens > 0 && sum->makespan_s > 0)
        fprintf(f, "throughput      %.1f tokens/s (%.0f tokens)\n", tokens / sum->makespan_s,
                tokens);
    if (bound_s > 0)
        fprintf(f, "bound           %.3f us makespan at least (gap %.2f%%)\n", bound_s * 1e6,
                sum->makespan_s > 0 ? 100.0 * (1 - bound_s / sum->makespan_s) : 0.0);
    if (bound_s > 0 && tokens > 0)
        fprintf(f, "bound tput      %.1f tokens/s at most\n", tokens / bound_s);
    fprintf(f, "tasks           %u (%d ranks, %u streams)\n", sum->tasks, sum->nranks,
            sum->nstreams);
    fprintf(f, "events          %llu\n", (unsigned long long)sum->events);
    fprintf(f, "exposed comm    %.3f us (busiest rank)\n", sum->exposed_comm_s * 1e6);
    fprintf(f, "sim wall time   %.6f s (+ %.6f s cost lookups)\n", sum->wall_s,
            sum->setup_wall_s);
    fprintf(f, "\n%6s %16s %16s %16s\n", "rank", "compute_busy_us", "comm_busy_us",
            "exposed_comm_us");
    int shown = sum->nranks < TEXT_RANKS ? sum->nranks : TEXT_RANKS;
    for (int r = 0; r < shown; r++)
        fprintf(f, "%6d %16.3f %16.3f %16.3f\n", r, sum->rank_compute_busy_s[r] * 1e6,
                sum->rank_comm_busy_s[r] * 1e6, sum->rank_exposed_comm_s[r] * 1e6);
    if (shown < sum->nranks)
        fprintf(f, "   ... %d more ranks (--json lists all)\n", sum->nranks - shown);
    fprintf(f, "\n%6s %-16s %14s %7s\n", "rank", "stream", "busy_us", "busy%");
    for (uint32_t st = 0; st < g->nstreams; st++) {
        if (g->stream_rank[st] >= shown) continue;
        double b = sum->stream_busy_s[st];
        fprintf(f, "%6d %-16s %14.3f %6.1f%%\n", g->stream_rank[st],
                tg_str(g, g->stream_name[st]), b * 1e6,
                sum->makespan_s > 0 ? 100.0 * b / sum->makespan_s : 0.0);
    }
}

void sim_write_json(const sim_engine *s, FILE *f, double tokens, double bound_s)
{
    const tg_graph *g = s->g;
    const sim_summary *sum = &s->sum;
    ms_json j;
    ms_json_init(&j, f);
    ms_json_obj_begin(&j);
    ms_json_knum(&j, "makespan_us", sum->makespan_s * 1e6);
    if (tokens > 0) {
        ms_json_knum(&j, "tokens", tokens);
        ms_json_knum(&j, "throughput_tokens_per_s",
                     sum->makespan_s > 0 ? tokens / sum->makespan_s : 0);
    }
    if (bound_s > 0) {
        ms_json_knum(&j, "bound_makespan_us", bound_s * 1e6);
        if (tokens > 0) ms_json_knum(&j, "bound_tokens_per_s", tokens / bound_s);
        ms_json_knum(&j, "gap", sum->makespan_s > 0 ? 1 - bound_s / sum->makespan_s : 0);
    }
    ms_json_kint(&j, "tasks", sum->tasks);
    ms_json_kint(&j, "events", (int64_t)sum->events);
    ms_json_knum(&j, "sim_wall_s", sum->wall_s);
    ms_json_knum(&j, "setup_wall_s", sum->setup_wall_s);
    ms_json_knum(&j, "exposed_comm_us", sum->exposed_comm_s * 1e6);
    ms_json_kint(&j, "ranks", sum->nranks);
    ms_json_kint(&j, "streams", sum->nstreams);
    ms_json_kstr(&j, "topology", s->t->name);
    ms_json_kstr(&j, "device", s->t->device);
    ms_json_kstr(&j, "network", s->net->name);
    ms_json_key(&j, "per_rank");
    ms_json_arr_begin(&j);
    for (int r = 0; r < sum->nranks; r++) {
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "rank", r);
        ms_json_knum(&j, "compute_busy_us", sum->rank_compute_busy_s[r] * 1e6);
        ms_json_knum(&j, "comm_busy_us", sum->rank_comm_busy_s[r] * 1e6);
        ms_json_knum(&j, "exposed_comm_us", sum->rank_exposed_comm_s[r] * 1e6);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);
    ms_json_key(&j, "per_stream");
    ms_json_arr_begin(&j);
    for (uint32_t st = 0; st < g->nstreams; st++) {
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "rank", g->stream_rank[st]);
        ms_json_kstr(&j, "stream", tg_str(g, g->stream_name[st]));
        ms_json_knum(&j, "busy_us", sum->stream_busy_s[st] * 1e6);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);
    ms_json_obj_end(&j);
    fputc('\n', f);
}

int sim_write_trace(const sim_engine *s, const char *path, double from_us, double to_us,
                    ms_err *err)
{
    const tg_graph *g = s->g;
    tg_trace tr;
    if (tg_trace_open(&tr, path, err) != 0) return -1;
    tg_trace_names(&tr, g);
    for (uint32_t t = 0; t < g->ntasks; t++) {
        /* Rounded to ns first, so slices on one stream never overlap by rounding. */
        double ts = rint(s->start[t] * 1e9) / 1e3, te = rint(s->end[t] * 1e9) / 1e3;
        if (te < from_us || ts >= to_us || (te == ts && ts < from_us)) continue;
        tg_trace_task(&tr, g, t, g->rank[t], ts, te, NULL);
    }
    return tg_trace_close(&tr, err);
}

/* Simulator outputs: the summary (busy times, exposed communication), its text and JSON
 * forms, and the Chrome/Perfetto trace. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "ir/tg_trace.h"
#include "sim/sim_internal.h"

typedef struct edge {
    double time_s;
    int8_t compute; /* +1 / -1 / 0 */
    int8_t comm;
} edge;

static int cmp_edge(const void *a, const void *b)
{
    double x = ((const edge *)a)->time_s, y = ((const edge *)b)->time_s;
    return (x > y) - (x < y);
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

/* Per rank, sweeps the start/end edges of its tasks in time order: compute busy is the
 * union of compute intervals, comm busy the union of comm intervals, exposed comm the
 * part of the comm union where no compute runs. */
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
    uint32_t *off = calloc((size_t)R + 1, sizeof *off);
    uint32_t *order = malloc((g->ntasks ? g->ntasks : 1) * sizeof *order);
    if (!sum->rank_compute_busy_s || !sum->rank_comm_busy_s || !sum->rank_exposed_comm_s ||
        !sum->stream_busy_s || !off || !order) {
        free(off);
        free(order);
        return ms_err_set(err, "out of memory summarising the run");
    }
    for (uint32_t t = 0; t < g->ntasks; t++) {
        sum->stream_busy_s[g->stream[t]] += s->end[t] - s->start[t];
        off[g->rank[t] + 1]++;
    }
    uint32_t most = 0;
    for (int r = 0; r < R; r++) {
        if (off[r + 1] > most) most = off[r + 1];
        off[r + 1] += off[r];
    }
    uint32_t *fill = malloc(((size_t)R + 1) * sizeof *fill);
    edge *ev = malloc(2 * (size_t)(most ? most : 1) * sizeof *ev);
    if (!fill || !ev) {
        free(off), free(order), free(fill), free(ev);
        return ms_err_set(err, "out of memory summarising the run");
    }
    memcpy(fill, off, ((size_t)R + 1) * sizeof *fill);
    for (uint32_t t = 0; t < g->ntasks; t++) order[fill[g->rank[t]]++] = t;
    sum->exposed_comm_s = 0;
    for (int r = 0; r < R; r++) {
        size_t n = 0;
        for (uint32_t i = off[r]; i < off[r + 1]; i++) {
            uint32_t t = order[i];
            int c = is_comm(g, t);
            double from = c ? s->active[t] : s->start[t];
            if (s->end[t] <= from) continue;
            ev[n++] = (edge){from, (int8_t)!c, (int8_t)c};
            ev[n++] = (edge){s->end[t], (int8_t)-!c, (int8_t)-c};
        }
        qsort(ev, n, sizeof *ev, cmp_edge);
        int comp = 0, comm = 0;
        double prev = 0, busy_comp = 0, busy_comm = 0, exposed = 0;
        for (size_t i = 0; i < n; i++) {
            double dt = ev[i].time_s - prev;
            if (comp > 0) busy_comp += dt;
            if (comm > 0) busy_comm += dt;
            if (comm > 0 && comp == 0) exposed += dt;
            comp += ev[i].compute;
            comm += ev[i].comm;
            prev = ev[i].time_s;
        }
        sum->rank_compute_busy_s[r] = busy_comp;
        sum->rank_comm_busy_s[r] = busy_comm;
        sum->rank_exposed_comm_s[r] = exposed;
        if (exposed > sum->exposed_comm_s) sum->exposed_comm_s = exposed;
    }
    free(off);
    free(order);
    free(fill);
    free(ev);
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

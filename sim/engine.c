/* The discrete-event engine: walks a finalized task graph with CUDA stream semantics,
 * rendezvous for point-to-point transfers and collectives, compute times from the cost
 * DB (looked up once at creation) and a pluggable network model. Nothing is allocated
 * while events run. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/evq.h"
#include "sim/sim_internal.h"

enum { EV_TASK_END, EV_XFER_END, EV_COLL_END };

static double now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Describes task t for messages: "task ID (rank R, line L, label X)". */
void sim_describe_task(const tg_graph *g, uint32_t t, char *buf, size_t len)
{
    int n = snprintf(buf, len, "task %lld (rank %d", (long long)g->id[t], g->rank[t]);
    if (n < 0 || (size_t)n >= len) return;
    if (g->line[t]) n += snprintf(buf + n, len - n, ", line %u", g->line[t]);
    if ((size_t)n >= len) return;
    const char *label = tg_str(g, g->label[t]);
    if (label) n += snprintf(buf + n, len - n, ", %s", label);
    if ((size_t)n >= len) return;
    snprintf(buf + n, len - n, ")");
}

/* ---- cost lookup with memoisation by (op, args) --------------------------------------- */

typedef struct memo {
    uint32_t *slot; /* task index whose (op, args) the slot holds, or TG_NONE */
    size_t mask;
} memo;

static uint64_t hash_task(const tg_graph *g, uint32_t t)
{
    uint64_t h = 1469598103934665603ull ^ g->op[t];
    for (uint32_t i = g->arg_off[t]; i < g->arg_off[t + 1]; i++) {
        h ^= (uint64_t)g->arg[i];
        h *= 1099511628211ull;
        h ^= h >> 29;
    }
    return h;
}

static int same_shape(const tg_graph *g, uint32_t a, uint32_t b)
{
    uint32_t na = g->arg_off[a + 1] - g->arg_off[a];
    return g->op[a] == g->op[b] && na == g->arg_off[b + 1] - g->arg_off[b] &&
           !memcmp(tg_task_args(g, a), tg_task_args(g, b), na * sizeof(int64_t));
}

static int compute_durations(sim_engine *s, ms_err *err)
{
    const tg_graph *g = s->g;
    memo m = {0};
    size_t cap = 64;
    while (cap < 2 * (size_t)g->ntasks) cap <<= 1;
    if (cap > (1u << 20)) cap = 1u << 20; /* distinct shapes are few; bound the table */
    m.slot = malloc(cap * sizeof *m.slot);
    if (!m.slot) return ms_err_set(err, "out of memory for the cost memo");
    memset(m.slot, 0xff, cap * sizeof *m.slot);
    m.mask = cap - 1;
    size_t used = 0;
    int rc = 0;
    for (uint32_t t = 0; t < g->ntasks && rc == 0; t++) {
        tg_kind kind = tg_task_kind(g, t);
        if (kind == TG_KIND_DELAY) {
            s->dur[t] = tg_task_delay_us(g, t) * 1e-6;
            continue;
        }
        if (kind != TG_KIND_COMPUTE) continue;
        size_t i = hash_task(g, t) & m.mask;
        while (m.slot[i] != TG_NONE && !same_shape(g, m.slot[i], t)) i = (i + 1) & m.mask;
        if (m.slot[i] != TG_NONE) {
            s->dur[t] = s->dur[m.slot[i]];
            continue;
        }
        const tg_op_info *info = tg_op_get((tg_op)g->op[t]);
        char who[256];
        if (!s->db) {
            sim_describe_task(g, t, who, sizeof who);
            rc = ms_err_set(err, "%s: op %s needs a cost database and none was given", who,
                            info->name);
            break;
        }
        ms_err e2 = {{0}};
        int nargs = (int)(g->arg_off[t + 1] - g->arg_off[t]);
        if (cdb_time(s->db, s->t->device, info->name, tg_task_args(g, t), nargs, &s->dur[t],
                     &e2) != 0) {
            sim_describe_task(g, t, who, sizeof who);
            rc = ms_err_set(err, "%s: %s", who, e2.msg);
            break;
        }
        if (used < cap / 2) { /* keep the table at most half full */
            m.slot[i] = t;
            used++;
        }
    }
    free(m.slot);
    return rc;
}

/* ---- creation ------------------------------------------------------------------------ */

sim_engine *sim_create(const tg_graph *g, const topo *t, const cdb *db, const net_ops *net,
                       ms_err *err)
{
    double t0 = now_wall();
    if (!g->finalized) {
        ms_err_set(err, "graph is not finalized");
        return NULL;
    }
    if (g->nranks > topo_ranks(t)) {
        ms_err_set(err, "the graph uses %d ranks but topology '%s' has %d (%d nodes x %d GPUs)",
                   g->nranks, t->name, topo_ranks(t), t->nodes, t->gpus_per_node);
        return NULL;
    }
    if ((uint64_t)g->nxfers + g->ncoll >= UINT32_MAX) { /* one id space for network ends */
        ms_err_set(err, "the graph has too many transfers and collectives to simulate (%u + %u)",
                   g->nxfers, g->ncoll);
        return NULL;
    }
    sim_engine *s = calloc(1, sizeof *s);
    if (!s) {
        ms_err_set(err, "out of memory creating the simulator");
        return NULL;
    }
    s->g = g;
    s->t = t;
    s->db = db;
    s->net = net ? net : &net_analytic;
    uint32_t n = g->ntasks;
    s->dur = calloc(n ? n : 1, sizeof *s->dur);
    s->start = malloc((n ? n : 1) * sizeof *s->start);
    s->end = malloc((n ? n : 1) * sizeof *s->end);
    s->active = malloc((n ? n : 1) * sizeof *s->active);
    s->left = malloc((n ? n : 1) * sizeof *s->left);
    s->coll_started = calloc(g->ncoll ? g->ncoll : 1, sizeof *s->coll_started);
    s->done_buf = malloc(256 * sizeof *s->done_buf);
    s->m2n_side = malloc(2 * ((size_t)g->nranks + 1) * sizeof *s->m2n_side);
    if (!s->dur || !s->start || !s->end || !s->active || !s->left || !s->coll_started ||
        !s->done_buf || !s->m2n_side) {
        ms_err_set(err, "out of memory for the simulator's state of %u tasks", n);
        sim_free(s);
        return NULL;
    }
    if (compute_durations(s, err) != 0) {
        sim_free(s);
        return NULL;
    }
    /* Event bound: one running task per stream, plus the transfers of a running xchg,
     * plus one collective completion per stream. */
    size_t cap = 2 * (size_t)g->nstreams + 16;
    uint32_t *stream_max = calloc(g->nstreams ? g->nstreams : 1, sizeof *stream_max);
    if (!stream_max) {
        ms_err_set(err, "out of memory");
        sim_free(s);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t x = g->xfer_off[i + 1] - g->xfer_off[i];
        if (x > stream_max[g->stream[i]]) stream_max[g->stream[i]] = x;
    }
    for (uint32_t i = 0; i < g->nstreams; i++) cap += stream_max[i];
    free(stream_max);
    if (sim_evq_init(&s->q, cap) != 0) {
        ms_err_set(err, "out of memory for an event queue of %zu events", cap);
        sim_free(s);
        return NULL;
    }
    s->netstate = s->net->create(t, err);
    if (!s->netstate) {
        sim_free(s);
        return NULL;
    }
    s->sum.setup_wall_s = now_wall() - t0;
    return s;
}

void sim_free(sim_engine *s)
{
    if (!s) return;
    if (s->netstate) s->net->free(s->netstate);
    sim_evq_release(&s->q);
    free(s->dur);
    free(s->start);
    free(s->end);
    free(s->active);
    free(s->left);
    free(s->coll_started);
    free(s->done_buf);
    free(s->m2n_side);
    free(s->stream_cur);
    sim_summary_release(&s->sum);
    free(s);
}

/* ---- the event loop ------------------------------------------------------------------ */

static int push(sim_engine *s, double time_s, uint32_t type, uint32_t what, ms_err *err)
{
    if (sim_evq_push(&s->q, time_s, type, what) == 0) return 0;
    return ms_err_set(err, "event queue full (%zu events): the engine's event bound is wrong",
                      s->q.cap);
}

static int finish_task(sim_engine *s, uint32_t t, double now, ms_err *err);

/* Starts transfer x (an index on either side) now that both of its tasks have started. */
static int start_xfer(sim_engine *s, uint32_t x, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    uint32_t send = g->xfer_send[x] ? x : g->xfer_match[x];
    int src = g->rank[g->xfer_task[send]];
    int dst = g->xfer_peer[send];
    uint32_t a = g->xfer_task[send], b = g->xfer_task[g->xfer_match[send]];
    if (s->active[a] < 0) s->active[a] = now;
    if (s->active[b] < 0) s->active[b] = now;
    double end = s->net->xfer_start(s->netstate, now, send, src, dst,
                                    (double)g->xfer_bytes[send]);
    if (isnan(end))
        return ms_err_set(err, "network model '%s' could not start a transfer of %lld bytes "
                               "from rank %d to %d (out of memory)",
                          s->net->name, (long long)g->xfer_bytes[send], src, dst);
    if (end >= 0) return push(s, end, EV_XFER_END, send, err);
    return 0;
}

/* Starts m2n collective instance c (t one of its pieces) now that every member is there:
 * the network model answers its end now, or reports id nxfers + c from advance(). */
static int start_m2n(sim_engine *s, uint32_t t, uint32_t c, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    net_m2n x;
    net_m2n_of_task(g, t, s->m2n_side, &x);
    double end = s->net->m2n_start(s->netstate, now, g->nxfers + c, &x);
    if (isnan(end)) {
        char who[256];
        sim_describe_task(g, t, who, sizeof who);
        return ms_err_set(err, "network model '%s' could not start the m2n exchange of %s "
                               "(out of memory)", s->net->name, who);
    }
    if (end >= 0) return push(s, end, EV_COLL_END, c, err);
    return 0;
}

static int finish_coll(sim_engine *s, uint32_t c, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    int rc = 0;
    for (uint32_t i = g->coll_off[c]; i < g->coll_off[c + 1] && !rc; i++)
        rc = finish_task(s, g->coll_task[i], now, err);
    return rc;
}

static int start_task(sim_engine *s, uint32_t t, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    s->start[t] = now;
    switch (tg_task_kind(g, t)) {
    case TG_KIND_DELAY:
    case TG_KIND_COMPUTE:
        return push(s, now + s->dur[t], EV_TASK_END, t, err);
    case TG_KIND_XCHG:
        s->left[t] = g->xfer_off[t + 1] - g->xfer_off[t];
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
            uint32_t peer_task = g->xfer_task[g->xfer_match[x]];
            /* The second of the two tasks to start launches the transfer; a transfer
             * within one task launches once, from its send side. */
            if (s->start[peer_task] < 0 || (peer_task == t && !g->xfer_send[x])) continue;
            if (start_xfer(s, x, now, err) != 0) return -1;
        }
        if (s->left[t] == 0) {
            s->active[t] = now;
            return push(s, now, EV_TASK_END, t, err);
        }
        return 0;
    case TG_KIND_COLL: {
        uint32_t c = g->coll_of[t];
        uint32_t members = g->coll_off[c + 1] - g->coll_off[c];
        if (++s->coll_started[c] < members) return 0;
        const int64_t *a = tg_task_args(g, t);
        uint32_t grp = (uint32_t)a[0];
        const int32_t *ranks = g->group_ranks + g->group_off[grp];
        int nr = (int)(g->group_off[grp + 1] - g->group_off[grp]);
        for (uint32_t i = g->coll_off[c]; i < g->coll_off[c + 1]; i++)
            s->active[g->coll_task[i]] = now;
        if (g->op[t] == TG_OP_M2N) return start_m2n(s, t, c, now, err);
        double d = s->net->coll_time(s->netstate, (tg_op)g->op[t], ranks, nr, (double)a[1]);
        return push(s, now + d, EV_COLL_END, c, err);
    }
    }
    return 0;
}

static inline int try_start(sim_engine *s, uint32_t t, double now, ms_err *err)
{
    if (s->left[t] != 0 || s->start[t] >= 0) return 0;
    if (s->stream_cur[s->g->stream[t]] != t) return 0;
    return start_task(s, t, now, err);
}

static int finish_task(sim_engine *s, uint32_t t, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    s->end[t] = now;
    s->finished++;
    for (uint32_t i = g->succ_off[t]; i < g->succ_off[t + 1]; i++) {
        uint32_t u = g->succ[i];
        if (--s->left[u] == 0 && try_start(s, u, now, err) != 0) return -1;
    }
    uint32_t next = g->next_in_stream[t];
    s->stream_cur[g->stream[t]] = next;
    if (next != TG_NONE && try_start(s, next, now, err) != 0) return -1;
    return 0;
}

static int xfer_end(sim_engine *s, uint32_t send, double now, ms_err *err)
{
    const tg_graph *g = s->g;
    uint32_t recv = g->xfer_match[send];
    uint32_t a = g->xfer_task[send], b = g->xfer_task[recv];
    if (a == b) { /* a transfer within one task: both of its entries are done */
        s->left[a] -= 2;
        return s->left[a] == 0 ? finish_task(s, a, now, err) : 0;
    }
    if (--s->left[a] == 0 && finish_task(s, a, now, err) != 0) return -1;
    if (--s->left[b] == 0 && finish_task(s, b, now, err) != 0) return -1;
    return 0;
}

/* Names up to a few stuck tasks: the heads of streams that never finished. */
static int report_stuck(sim_engine *s, ms_err *err)
{
    const tg_graph *g = s->g;
    char msg[MS_ERR_LEN] = "", who[256];
    size_t len = 0;
    int shown = 0;
    for (uint32_t st = 0; st < g->nstreams && shown < 4; st++) {
        uint32_t t = s->stream_cur[st];
        if (t == TG_NONE) continue;
        sim_describe_task(g, t, who, sizeof who);
        const char *why = s->start[t] >= 0 ? "started, waiting for its peers"
                                           : "waiting for its dependencies";
        int k = snprintf(msg + len, sizeof msg - len, "%s%s on stream '%s': %s",
                         shown ? "; " : "", who, tg_str(g, g->stream_name[st]), why);
        if (k < 0 || (size_t)k >= sizeof msg - len) break;
        len += (size_t)k;
        shown++;
    }
    return ms_err_set(err, "simulation stopped with %u of %u tasks unfinished (deadlock): %s",
                      g->ntasks - s->finished, g->ntasks, msg);
}

int sim_run(sim_engine *s, ms_err *err)
{
    const tg_graph *g = s->g;
    if (s->ran) return ms_err_set(err, "sim_run called twice on one engine");
    s->ran = 1;
    double t0 = now_wall();
    s->stream_cur = malloc((g->nstreams ? g->nstreams : 1) * sizeof *s->stream_cur);
    if (!s->stream_cur) return ms_err_set(err, "out of memory");
    for (uint32_t t = 0; t < g->ntasks; t++) {
        s->start[t] = -1;
        s->end[t] = -1;
        s->active[t] = -1;
        s->left[t] = g->dep_off[t + 1] - g->dep_off[t];
    }
    memcpy(s->stream_cur, g->stream_head, g->nstreams * sizeof *s->stream_cur);
    for (uint32_t st = 0; st < g->nstreams; st++) {
        uint32_t t = g->stream_head[st];
        if (t != TG_NONE && try_start(s, t, 0.0, err) != 0) return -1;
    }
    uint64_t events = 0;
    double now = 0;
    for (;;) {
        double net_next = s->net->next_time ? s->net->next_time(s->netstate) : INFINITY;
        if (sim_evq_empty(&s->q) && net_next == INFINITY) break;
        if (!sim_evq_empty(&s->q) && sim_evq_top_time(&s->q) <= net_next) {
            sim_event ev;
            sim_evq_pop(&s->q, &ev);
            now = ev.time_s;
            events++;
            int rc = 0;
            switch (ev.type) {
            case EV_TASK_END:
                rc = finish_task(s, ev.what, now, err);
                break;
            case EV_XFER_END:
                rc = xfer_end(s, ev.what, now, err);
                break;
            case EV_COLL_END:
                rc = finish_coll(s, ev.what, now, err);
                break;
            }
            if (rc) return -1;
        } else {
            now = net_next;
            int k;
            while ((k = s->net->advance(s->netstate, now, s->done_buf, 256)) > 0) {
                events += (uint64_t)k;
                for (int i = 0; i < k; i++) {
                    uint32_t id = s->done_buf[i];
                    int rc = id < g->nxfers ? xfer_end(s, id, now, err)
                                            : finish_coll(s, id - g->nxfers, now, err);
                    if (rc != 0) return -1;
                }
            }
        }
    }
    s->sum.wall_s = now_wall() - t0;
    s->sum.events = events;
    s->sum.tasks = g->ntasks;
    if (s->finished != g->ntasks) return report_stuck(s, err);
    s->sum.makespan_s = 0;
    for (uint32_t t = 0; t < g->ntasks; t++)
        if (s->end[t] > s->sum.makespan_s) s->sum.makespan_s = s->end[t];
    return sim_summarize(s, err);
}

const sim_summary *sim_get_summary(const sim_engine *s) { return &s->sum; }
double sim_task_start(const sim_engine *s, uint32_t t) { return s->start[t]; }
double sim_task_end(const sim_engine *s, uint32_t t) { return s->end[t]; }

/* The host backend: one MPI process per rank, one thread per stream, tasks in stream
 * order, cross-stream dependencies as events (a done flag under one mutex + condvar),
 * compute on real fp32 data (cblas_sgemm and the kernels' CPU references), delay = sleep,
 * comm = MPI (Isend/Irecv or non-blocking collectives, polled) on one communicator per
 * comm stream name and per (stream name, group). */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/backend.h"
#include "exec/ex_mpi.h"
#include "kernels/k.h"

#define GATE_TOPK 8       /* synthetic gate: top-k of min(8, experts) */
#define TAG_DATA 0
#define TAG_META 1
#define SPIN_S 100e-6     /* comm polling: yield for this long, then sleep between tests */
#define POLL_SLEEP_NS 20000   /* first sleep between tests, doubled after each ... */
#define POLL_SLEEP_MAX_NS 500000 /* ... up to this: a transfer waiting on a long peer task
                                    then costs 2k wake-ups/s, not 50k, of the cores the
                                    compute threads need (and finishes <= 0.5 ms late) */
#define FFN_POOL_BYTES ((size_t)256 << 20) /* synthetic expert weights per stream: distinct
                                              sets up to this size (8x a 32 MiB LLC), so an
                                              expert's weights come from memory, as in a
                                              real MoE; beyond it the sets are reused */
#define FFN_TILE_ROWS 64  /* rows per GEMM tile of a synthetic expert FFN */

typedef enum item_kind { IT_TASK, IT_WAIT, IT_RECORD } item_kind;

typedef struct item {
    uint8_t kind;
    uint32_t task;
} item;

typedef enum st_state { ST_IDLE, ST_RUNNING, ST_WAITING } st_state;

struct host_ctx;

typedef struct hstream {
    struct host_ctx *c;
    uint32_t gstream;  /* global stream index */
    const char *name;
    pthread_t thread;
    int started;
    pthread_cond_t cv; /* work queued */
    item *q;
    uint32_t cap, head, tail; /* consumer / producer positions */
    st_state state;
    uint32_t state_task; /* the task running, or the dep waited for */
    double state_since_s;
    int failed;
    ms_err err;
    /* buffers */
    float *scratch;      /* synthetic compute */
    size_t scratch_n;    /* floats */
    float *wpool;        /* synthetic expert weights: wsets sets of wset_n floats */
    size_t wset_n;       /* floats per set: the largest 3 x hidden x inter of the stream */
    uint32_t wsets, wnext; /* sets, and the next one to use (cycles across tasks) */
    int32_t *iscratch;
    size_t iscratch_n;
    unsigned char *sendbuf, *recvbuf; /* synthetic comm */
    size_t send_bytes, recv_bytes;
    ex_reqs *reqs;
    ex_comm *xchg_comm; /* borrowed from host_ctx.comms */
} hstream;

typedef struct comm_entry {
    const char *stream_name;
    int group; /* -1: the stream's point-to-point communicator */
    ex_comm *comm;
} comm_entry;

typedef struct host_ctx {
    const tg_graph *g;
    int rank;
    const ex_payload *payload;
    pthread_mutex_t mu;
    pthread_cond_t ev_cv;   /* an event was recorded, or a stream went idle / failed */
    hstream *st;
    uint32_t nst;
    int32_t *local_of;      /* global stream -> index in st, or -1 */
    uint8_t *done;          /* [ntasks] completion events of this pass */
    double *start_s, *end_s; /* [ntasks] since epoch */
    double epoch_s;
    atomic_int cancel;      /* set on watchdog expiry or a failure: streams drain */
    int abandoned;          /* a comm was left in flight: teardown reports it */
    int first_failed;       /* the stream whose task failed first in this pass, or -1 */
    int shutdown;
    comm_entry *comms;
    int ncomms;
} host_ctx;

static double now_rel(const host_ctx *c) { return ex_clock_s() - c->epoch_s; }

/* ---- comm -------------------------------------------------------------------------- */

static ex_comm *find_comm(const host_ctx *c, const char *name, int group)
{
    for (int i = 0; i < c->ncomms; i++)
        if (c->comms[i].group == group && !strcmp(c->comms[i].stream_name, name))
            return c->comms[i].comm;
    return NULL;
}

/* Polls s->reqs to completion; on cancel abandons them (the process must then abort). */
static int wait_reqs(hstream *s, uint32_t t, ms_err *err)
{
    host_ctx *c = s->c;
    double t0 = ex_clock_s();
    long sleep_ns = POLL_SLEEP_NS;
    for (;;) {
        int done = 0;
        if (ex_reqs_test(s->reqs, &done, err) != 0) return -1;
        if (done) return 0;
        if (atomic_load(&c->cancel)) {
            ex_reqs_abandon(s->reqs);
            pthread_mutex_lock(&c->mu);
            c->abandoned = 1;
            pthread_mutex_unlock(&c->mu);
            char d[256];
            return ms_err_set(err, "%s: cancelled in flight", ex_task_desc(c->g, t, d, sizeof d));
        }
        if (ex_clock_s() - t0 < SPIN_S) {
            sched_yield();
        } else {
            struct timespec ts = {0, sleep_ns};
            nanosleep(&ts, NULL);
            sleep_ns = 2 * sleep_ns < POLL_SLEEP_MAX_NS ? 2 * sleep_ns : POLL_SLEEP_MAX_NS;
        }
    }
}

static int run_xchg(hstream *s, uint32_t t, ms_err *err)
{
    host_ctx *c = s->c;
    const tg_graph *g = c->g;
    const ex_payload *p = c->payload;
    size_t soff = 0, roff = 0;
    for (int pass = 0; pass < 2; pass++) /* receives first, then sends */
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
            int send = g->xfer_send[x];
            if (send != pass) continue;
            size_t bytes = (size_t)g->xfer_bytes[x];
            void *buf;
            if (p && p->xfer_buf) {
                buf = p->xfer_buf(p->user, x);
            } else if (send) {
                buf = s->sendbuf + soff;
                soff += bytes;
            } else {
                buf = s->recvbuf + roff;
                roff += bytes;
            }
            int rc = send ? ex_isend(s->xchg_comm, buf, bytes, g->xfer_peer[x], TAG_DATA,
                                     s->reqs, err)
                          : ex_irecv(s->xchg_comm, buf, bytes, g->xfer_peer[x], TAG_DATA,
                                     s->reqs, err);
            if (rc != 0) return -1;
            if (p && p->xfer_meta) {
                void *mb = NULL;
                size_t mbytes = 0;
                p->xfer_meta(p->user, x, &mb, &mbytes);
                if (mb) {
                    rc = send ? ex_isend(s->xchg_comm, mb, mbytes, g->xfer_peer[x], TAG_META,
                                         s->reqs, err)
                              : ex_irecv(s->xchg_comm, mb, mbytes, g->xfer_peer[x], TAG_META,
                                         s->reqs, err);
                    if (rc != 0) return -1;
                }
            }
        }
    return wait_reqs(s, t, err);
}

static int run_coll(hstream *s, uint32_t t, ms_err *err)
{
    host_ctx *c = s->c;
    const tg_graph *g = c->g;
    const int64_t *a = tg_task_args(g, t);
    int group = (int)a[0];
    size_t bytes = (size_t)a[1];
    ex_comm *comm = find_comm(c, s->name, group);
    if (!comm) {
        char d[256];
        return ms_err_set(err, "%s: no communicator for group %s", ex_task_desc(g, t, d, sizeof d),
                          tg_str(g, g->group_name[group]));
    }
    size_t nf = (bytes + 3) / 4; /* fp32 elements, rounded up */
    void *sb = s->sendbuf, *rb = s->recvbuf;
    const ex_payload *p = c->payload;
    if (p && p->coll_buf) { /* check mode: the payload's data and element count */
        if (p->coll_buf(p->user, t, &sb, &rb, &nf, err) != 0) return -1;
        bytes = nf * 4;
    }
    int rc;
    switch ((tg_op)g->op[t]) {
    case TG_OP_ALLREDUCE:
        rc = ex_iallreduce_f32(comm, (const float *)sb, (float *)rb, nf, s->reqs, err);
        break;
    case TG_OP_ALLGATHER:
        rc = ex_iallgather(comm, sb, bytes, rb, s->reqs, err);
        break;
    default: /* reducescatter */
        rc = ex_ireducescatter_f32(comm, (const float *)sb, (float *)rb, nf, s->reqs, err);
        break;
    }
    if (rc != 0) return -1;
    return wait_reqs(s, t, err);
}

/* ---- compute ----------------------------------------------------------------------- */

/* Floats and int32s of scratch a synthetic compute task needs. */
static void compute_need(const tg_graph *g, uint32_t t, size_t *nf, size_t *ni)
{
    const int64_t *a = tg_task_args(g, t);
    *nf = *ni = 0;
    switch ((tg_op)g->op[t]) {
    case TG_OP_GEMM: /* m n k count */
        *nf = (size_t)(a[0] * a[2] + a[2] * a[1] + a[0] * a[1]);
        break;
    case TG_OP_FFN: { /* tokens experts hidden inter gemms; weights: the stream's pool */
        size_t T = (size_t)a[0], H = (size_t)a[2], F = (size_t)a[3];
        *nf = 2 * T * H + 2 * (size_t)FFN_TILE_ROWS * F;
        break;
    }
    case TG_OP_ATTN: { /* b sq skv h hkv dk dv */
        size_t b = (size_t)a[0], sq = (size_t)a[1], skv = (size_t)a[2], h = (size_t)a[3],
               hkv = (size_t)a[4], dk = (size_t)a[5], dv = (size_t)a[6];
        if (sq == skv)
            *nf = b * sq * (h * dk + hkv * dk + hkv * dv + h * dv), *ni = b + 1;
        else
            *nf = b * (h * dk + h * dv) + b * skv * hkv * (dk + dv), *ni = b;
        break;
    }
    case TG_OP_GATE: { /* tokens hidden experts */
        size_t T = (size_t)a[0], H = (size_t)a[1], E = (size_t)a[2];
        size_t k = E < GATE_TOPK ? E : GATE_TOPK;
        *nf = T * H + H * E + T * E + T * k, *ni = T * k;
        break;
    }
    default:
        break;
    }
}

static int kfail(const tg_graph *g, uint32_t t, const char *what, int krc, ms_err *err)
{
    char d[256];
    return ms_err_set(err, "%s: %s failed (%s)", ex_task_desc(g, t, d, sizeof d), what,
                      krc == K_ENOMEM ? "out of memory" : "invalid arguments");
}

/* Synthetic expert FFN (timing runs): the tokens spread evenly over the experts, each
 * expert's rows through its own weights, the next set of the stream's pool (distinct sets
 * up to FFN_POOL_BYTES, so weights stream from memory as in a model whose experts do not
 * fit in cache), in tiles of FFN_TILE_ROWS rows: SwiGLU (gemms=3)
 * y = (silu(x W1) * (x W3)) W2, or silu(x W1) W2 (gemms=2). The GEMMs are cblas_sgemm,
 * as for gemm tasks; check mode runs k_ffn_swiglu_ref instead (exec/moe_check.c). */
static void ffn_synthetic(hstream *s, const int64_t *a)
{
    int T = (int)a[0], E = (int)a[1], H = (int)a[2], F = (int)a[3], swiglu = a[4] == 3;
    float *X = s->scratch, *Y = X + (size_t)T * H, *h1 = Y + (size_t)T * H;
    float *h3 = h1 + (size_t)FFN_TILE_ROWS * F;
    for (int e = 0; e < E; e++) {
        int r0 = (int)((int64_t)T * e / E), r1 = (int)((int64_t)T * (e + 1) / E);
        if (r1 == r0) continue;
        const float *W1 = s->wpool + (size_t)(s->wnext++ % s->wsets) * s->wset_n;
        const float *W3 = W1 + (size_t)H * F, *W2 = W3 + (size_t)H * F;
        for (int r = r0; r < r1; r += FFN_TILE_ROWS) {
            int rows = r1 - r < FFN_TILE_ROWS ? r1 - r : FFN_TILE_ROWS;
            const float *x = X + (size_t)r * H;
            size_t n = (size_t)rows * F;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, F, H, 1.0f, x, H, W1,
                        F, 0.0f, h1, F);
            if (swiglu) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, F, H, 1.0f, x, H,
                            W3, F, 0.0f, h3, F);
                for (size_t i = 0; i < n; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h3[i];
            } else {
                for (size_t i = 0; i < n; i++) h1[i] = h1[i] / (1.0f + expf(-h1[i]));
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, H, F, 1.0f, h1, F, W2,
                        H, 0.0f, Y + (size_t)r * H, H);
        }
    }
}

static int run_compute_synthetic(hstream *s, uint32_t t, ms_err *err)
{
    const tg_graph *g = s->c->g;
    const int64_t *a = tg_task_args(g, t);
    float *f = s->scratch;
    int32_t *iv = s->iscratch;
    int krc = K_OK;
    switch ((tg_op)g->op[t]) {
    case TG_OP_GEMM: {
        int m = (int)a[0], n = (int)a[1], k = (int)a[2];
        float *A = f, *B = A + (size_t)m * k, *C = B + (size_t)k * n;
        for (int64_t r = 0; r < a[3]; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n,
                        0.0f, C, n);
        return 0;
    }
    case TG_OP_FFN:
        ffn_synthetic(s, a);
        return 0;
    case TG_OP_ATTN: {
        int b = (int)a[0], sq = (int)a[1], skv = (int)a[2];
        k_attn_shape sh = {.n_heads = (int)a[3], .n_kv_heads = (int)a[4], .d_qk = (int)a[5],
                           .d_v = (int)a[6], .scale = 0};
        size_t h = (size_t)a[3], hkv = (size_t)a[4], dk = (size_t)a[5], dv = (size_t)a[6];
        if (sq == skv) {
            size_t T = (size_t)b * sq;
            float *q = f, *k = q + T * h * dk, *v = k + T * hkv * dk, *o = v + T * hkv * dv;
            for (int i = 0; i <= b; i++) iv[i] = i * sq;
            krc = k_attn_prefill_ref(q, k, v, iv, b, &sh, o);
        } else { /* decode-like: sq queries per sample against skv cached tokens */
            float *q = f, *o = q + (size_t)b * h * dk, *kc = o + (size_t)b * h * dv;
            float *vc = kc + (size_t)b * skv * hkv * dk;
            for (int i = 0; i < b; i++) iv[i] = skv;
            for (int r = 0; r < sq && krc == K_OK; r++)
                krc = k_attn_decode_ref(q, kc, vc, iv, b, skv, &sh, o);
        }
        return krc == K_OK ? 0 : kfail(g, t, "attention", krc, err);
    }
    case TG_OP_GATE: {
        int T = (int)a[0], H = (int)a[1], E = (int)a[2];
        int k = E < GATE_TOPK ? E : GATE_TOPK;
        float *X = f, *Wg = X + (size_t)T * H, *logits = Wg + (size_t)H * E;
        float *w = logits + (size_t)T * E;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, E, H, 1.0f, X, H, Wg, E, 0.0f,
                    logits, E);
        k_gate_params gp = {.n_experts = E, .topk = k, .score = K_GATE_SOFTMAX, .renorm = 1,
                            .scale = 1.0f, .n_groups = 1, .topk_groups = 1};
        krc = k_gate_ref(logits, T, &gp, iv, w);
        return krc == K_OK ? 0 : kfail(g, t, "gate", krc, err);
    }
    default: {
        char d[256];
        return ms_err_set(err, "%s: op %s is not a compute op", ex_task_desc(g, t, d, sizeof d),
                          tg_op_get((tg_op)g->op[t])->name);
    }
    }
}

/* Sleeps for us microseconds unless cancelled (then returns -1). Called with mu held. */
static int sleep_cancellable(host_ctx *c, double us)
{
    double until = ex_clock_s() + us * 1e-6;
    while (!atomic_load(&c->cancel)) {
        double left = until - ex_clock_s();
        if (left <= 0) return 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double sec = (double)ts.tv_sec + 1e-9 * ts.tv_nsec + (left < 0.05 ? left : 0.05);
        ts.tv_sec = (time_t)sec;
        ts.tv_nsec = (long)((sec - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&c->ev_cv, &c->mu, &ts);
    }
    return -1;
}

/* Runs task t on stream s. Called with mu held; releases it around the work. */
static int run_task(hstream *s, uint32_t t, ms_err *err)
{
    host_ctx *c = s->c;
    const tg_graph *g = c->g;
    tg_kind kind = tg_task_kind(g, t);
    int rc;
    c->start_s[t] = now_rel(c);
    if (kind == TG_KIND_DELAY) {
        rc = sleep_cancellable(c, tg_task_delay_us(g, t));
        if (rc != 0) {
            char d[256];
            ms_err_set(err, "%s: delay cancelled", ex_task_desc(g, t, d, sizeof d));
        }
        c->end_s[t] = now_rel(c);
        return rc;
    }
    pthread_mutex_unlock(&c->mu);
    if (kind == TG_KIND_XCHG) rc = run_xchg(s, t, err);
    else if (kind == TG_KIND_COLL) rc = run_coll(s, t, err);
    else if (c->payload && c->payload->compute) rc = c->payload->compute(c->payload->user, t, err);
    else rc = run_compute_synthetic(s, t, err);
    pthread_mutex_lock(&c->mu);
    c->end_s[t] = now_rel(c);
    return rc;
}

static void *stream_main(void *arg)
{
    hstream *s = arg;
    host_ctx *c = s->c;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->shutdown && s->head == s->tail) pthread_cond_wait(&s->cv, &c->mu);
        if (c->shutdown) break;
        item it = s->q[s->head];
        if (s->failed || atomic_load(&c->cancel)) { /* drain */
            s->head++;
            pthread_cond_broadcast(&c->ev_cv);
            continue;
        }
        s->state_task = it.task;
        s->state_since_s = ex_clock_s();
        if (it.kind == IT_WAIT) {
            s->state = ST_WAITING;
            while (!c->done[it.task] && !atomic_load(&c->cancel))
                pthread_cond_wait(&c->ev_cv, &c->mu);
        } else if (it.kind == IT_RECORD) {
            c->done[it.task] = 1;
        } else {
            s->state = ST_RUNNING;
            if (run_task(s, it.task, &s->err) != 0) {
                s->failed = 1;
                if (c->first_failed < 0) c->first_failed = (int)(s - c->st);
                atomic_store(&c->cancel, 1); /* the pass is lost: everyone drains */
            }
        }
        s->state = ST_IDLE;
        s->head++;
        pthread_cond_broadcast(&c->ev_cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- the table --------------------------------------------------------------------- */

static int host_device_name(char *buf, size_t len, ms_err *err)
{
    (void)err;
    if (len) snprintf(buf, len, "host-cpu");
    return 0;
}

/* Creates the communicators, the same sequence on every rank: one duplicate of the world
 * per stream name carrying xchg tasks, one split per (stream name, group) carrying
 * collectives, in order of first appearance in the graph. */
static int make_comms(host_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    c->comms = calloc((size_t)g->ntasks + 1, sizeof *c->comms);
    if (!c->comms) return ms_err_set(err, "rank %d: out of memory", c->rank);
    int rc = 0;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        const char *name;
        int group;
        if (!ex_task_comm(g, t, &name, &group)) continue;
        int seen = 0;
        for (int i = 0; i < c->ncomms && !seen; i++)
            seen = c->comms[i].group == group && !strcmp(c->comms[i].stream_name, name);
        if (seen) continue;
        comm_entry *e = &c->comms[c->ncomms++];
        e->stream_name = name;
        e->group = group;
        /* keep going after a failure: the other ranks are in the same collective calls */
        ms_err e2;
        int r;
        if (group < 0) {
            r = ex_comm_dup_world(&e->comm, &e2);
        } else {
            int member = 0;
            for (uint32_t k = g->group_off[group]; k < g->group_off[group + 1]; k++)
                member |= g->group_ranks[k] == c->rank;
            r = ex_comm_split_world(member ? 0 : -1, c->rank, &e->comm, &e2);
        }
        if (r != 0 && rc == 0) {
            *err = e2;
            rc = -1;
        }
    }
    return rc;
}

static int host_setup(const ex_setup *s, void **out, ms_err *err)
{
    const tg_graph *g = s->g;
    *out = NULL;
    host_ctx *c = calloc(1, sizeof *c);
    if (!c) return ms_err_set(err, "rank %d: out of memory", s->rank);
    c->g = g;
    c->rank = s->rank;
    c->payload = s->payload;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ev_cv, &ca);
    atomic_init(&c->cancel, 0);
    c->first_failed = -1;
    *out = c;
    int rc = 0;
    c->local_of = malloc((g->nstreams + 1) * sizeof *c->local_of);
    c->done = calloc(g->ntasks + 1, 1);
    c->start_s = calloc(g->ntasks + 1, sizeof *c->start_s);
    c->end_s = calloc(g->ntasks + 1, sizeof *c->end_s);
    if (!c->local_of || !c->done || !c->start_s || !c->end_s) {
        rc = ms_err_set(err, "rank %d: out of memory for %u tasks", s->rank, g->ntasks);
    } else {
        for (uint32_t st = 0; st < g->nstreams; st++)
            if (g->stream_rank[st] == s->rank) c->local_of[st] = (int32_t)c->nst++;
            else c->local_of[st] = -1;
        c->st = calloc(c->nst + 1, sizeof *c->st);
        if (!c->st) rc = ms_err_set(err, "rank %d: out of memory", s->rank);
    }
    /* size the queues and buffers by the largest task of each stream */
    for (uint32_t st = 0, i = 0; rc == 0 && st < g->nstreams; st++) {
        if (c->local_of[st] < 0) continue;
        hstream *h = &c->st[i++];
        h->c = c;
        h->gstream = st;
        h->name = tg_str(g, g->stream_name[st]);
        pthread_cond_init(&h->cv, NULL);
    }
    for (uint32_t t = 0; rc == 0 && t < g->ntasks; t++) {
        if (g->rank[t] != s->rank) continue;
        hstream *h = &c->st[c->local_of[g->stream[t]]];
        h->cap += 2 + (g->dep_off[t + 1] - g->dep_off[t]);
        tg_kind kind = tg_task_kind(g, t);
        if (kind == TG_KIND_COMPUTE && !(s->payload && s->payload->compute)) {
            size_t nf, ni;
            compute_need(g, t, &nf, &ni);
            if (nf > h->scratch_n) h->scratch_n = nf;
            if (ni > h->iscratch_n) h->iscratch_n = ni;
            if (g->op[t] == TG_OP_FFN) { /* wsets holds the most experts until sized below */
                const int64_t *a = tg_task_args(g, t);
                size_t set = 3 * (size_t)a[2] * (size_t)a[3];
                if (set > h->wset_n) h->wset_n = set;
                if ((uint32_t)a[1] > h->wsets) h->wsets = (uint32_t)a[1];
            }
        } else if (kind == TG_KIND_XCHG && !(s->payload && s->payload->xfer_buf)) {
            size_t sb = 0, rb = 0;
            for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
                *(g->xfer_send[x] ? &sb : &rb) += (size_t)g->xfer_bytes[x];
            if (sb > h->send_bytes) h->send_bytes = sb;
            if (rb > h->recv_bytes) h->recv_bytes = rb;
        } else if (kind == TG_KIND_COLL) {
            const int64_t *a = tg_task_args(g, t);
            size_t n = g->group_off[a[0] + 1] - g->group_off[a[0]];
            size_t b = ((size_t)a[1] + 3) / 4 * 4, in = b, outb = b;
            if (g->op[t] == TG_OP_ALLGATHER) outb = n * b;
            if (g->op[t] == TG_OP_REDUCESCATTER) in = n * b;
            if (in > h->send_bytes) h->send_bytes = in;
            if (outb > h->recv_bytes) h->recv_bytes = outb;
        }
    }
    for (uint32_t i = 0; rc == 0 && i < c->nst; i++) {
        hstream *h = &c->st[i];
        h->q = malloc((h->cap + 1) * sizeof *h->q);
        h->scratch = malloc((h->scratch_n + 1) * sizeof *h->scratch);
        h->iscratch = calloc(h->iscratch_n + 1, sizeof *h->iscratch);
        h->sendbuf = malloc(h->send_bytes + 1);
        h->recvbuf = malloc(h->recv_bytes + 1);
        h->reqs = ex_reqs_create(16);
        if (h->wset_n) { /* distinct expert weights, up to FFN_POOL_BYTES */
            size_t fit = FFN_POOL_BYTES / (h->wset_n * sizeof(float));
            if (h->wsets > fit) h->wsets = (uint32_t)fit;
            if (h->wsets < 1) h->wsets = 1;
            h->wpool = malloc(h->wsets * h->wset_n * sizeof *h->wpool);
        }
        if (!h->q || !h->scratch || !h->iscratch || !h->sendbuf || !h->recvbuf || !h->reqs ||
            (h->wset_n && !h->wpool)) {
            rc = ms_err_set(err, "rank %d: out of memory for the buffers of stream %s (%zu "
                                 "floats of scratch, %u x %zu floats of expert weights, "
                                 "%zu + %zu bytes of comm)",
                            s->rank, h->name, h->scratch_n, h->wsets, h->wset_n,
                            h->send_bytes, h->recv_bytes);
            break;
        }
        k_fill_uniform(h->scratch, h->scratch_n, s->seed + 17 * i + 1, -0.1f, 0.1f);
        if (h->wpool) { /* one random set, copied: the values do not matter, the addresses do */
            k_fill_uniform(h->wpool, h->wset_n, s->seed + 17 * i + 3, -0.05f, 0.05f);
            for (uint32_t w = 1; w < h->wsets; w++)
                memcpy(h->wpool + w * h->wset_n, h->wpool, h->wset_n * sizeof *h->wpool);
        }
        k_fill_uniform((float *)h->sendbuf, h->send_bytes / 4, s->seed + 17 * i + 2, -1.0f, 1.0f);
    }
    /* collective over the world: done even after a local failure */
    ms_err e2;
    if (make_comms(c, rc == 0 ? err : &e2) != 0) rc = -1;
    for (uint32_t i = 0; rc == 0 && i < c->nst; i++)
        c->st[i].xchg_comm = find_comm(c, c->st[i].name, -1);
    if (rc == 0) openblas_set_num_threads(1); /* one BLAS thread per stream thread */
    for (uint32_t i = 0; rc == 0 && i < c->nst; i++) {
        if (pthread_create(&c->st[i].thread, NULL, stream_main, &c->st[i]) != 0) {
            rc = ms_err_set(err, "rank %d: cannot start the thread of stream %s", s->rank,
                            c->st[i].name);
            break;
        }
        c->st[i].started = 1;
    }
    return rc;
}

static int host_begin(void *vctx, ms_err *err)
{
    host_ctx *c = vctx;
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < c->nst; i++) {
        if (c->st[i].head != c->st[i].tail) {
            pthread_mutex_unlock(&c->mu);
            return ms_err_set(err, "rank %d: begin while stream %s still has work", c->rank,
                              c->st[i].name);
        }
        c->st[i].head = c->st[i].tail = 0;
        c->st[i].failed = 0;
        c->st[i].err.msg[0] = 0;
    }
    memset(c->done, 0, c->g->ntasks);
    c->first_failed = -1;
    atomic_store(&c->cancel, 0);
    c->epoch_s = ex_clock_s();
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int push(host_ctx *c, uint32_t gstream, item it, ms_err *err)
{
    int32_t li = gstream < c->g->nstreams ? c->local_of[gstream] : -1;
    if (li < 0)
        return ms_err_set(err, "rank %d: stream %u is not one of this rank's", c->rank, gstream);
    hstream *s = &c->st[li];
    pthread_mutex_lock(&c->mu);
    if (s->tail >= s->cap) {
        pthread_mutex_unlock(&c->mu);
        return ms_err_set(err, "rank %d: queue of stream %s is full (%u items): a task was "
                               "enqueued twice in one pass", c->rank, s->name, s->cap);
    }
    s->q[s->tail++] = it;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int host_enqueue(void *vctx, uint32_t task, ms_err *err)
{
    host_ctx *c = vctx;
    if (task >= c->g->ntasks || c->g->rank[task] != c->rank)
        return ms_err_set(err, "rank %d: task index %u is not one of this rank's", c->rank, task);
    return push(c, c->g->stream[task], (item){IT_TASK, task}, err);
}

static int host_record(void *vctx, uint32_t task, ms_err *err)
{
    host_ctx *c = vctx;
    return push(c, c->g->stream[task], (item){IT_RECORD, task}, err);
}

static int host_wait(void *vctx, uint32_t stream, uint32_t dep_task, ms_err *err)
{
    host_ctx *c = vctx;
    return push(c, stream, (item){IT_WAIT, dep_task}, err);
}

/* "task ID (LABEL)", or "task ID (op)" without a label. */
static const char *task_short(const tg_graph *g, uint32_t t, char *buf, size_t len)
{
    const char *label = tg_str(g, g->label[t]);
    snprintf(buf, len, "task %lld (%s)", (long long)g->id[t],
             label ? label : tg_op_get((tg_op)g->op[t])->name);
    return buf;
}

/* Appends "stream NAME is stuck on ..." for every stream with work left. */
static void describe_stuck(host_ctx *c, char *buf, size_t len)
{
    const tg_graph *g = c->g;
    size_t n = 0;
    char d[256];
    double now = ex_clock_s();
    for (uint32_t i = 0; i < c->nst && n < len; i++) {
        hstream *s = &c->st[i];
        if (s->head == s->tail) continue;
        item it = s->q[s->head];
        const char *sep = n ? "; " : "";
        int w;
        if (s->state == ST_RUNNING)
            w = snprintf(buf + n, len - n, "%sstream %s is stuck on %s: running %s for %.3g s", sep,
                         s->name, task_short(g, it.task, d, sizeof d),
                         tg_op_get((tg_op)g->op[it.task])->name, now - s->state_since_s);
        else if (s->state == ST_WAITING)
            w = snprintf(buf + n, len - n, "%sstream %s is stuck before its next task: waiting "
                         "%.3g s for %s on stream %s", sep, s->name, now - s->state_since_s,
                         task_short(g, it.task, d, sizeof d),
                         tg_str(g, g->stream_name[g->stream[it.task]]));
        else
            w = snprintf(buf + n, len - n, "%sstream %s has %u queued items left", sep, s->name,
                         s->tail - s->head);
        if (w < 0) break;
        n += (size_t)w;
    }
}

static int host_synchronize(void *vctx, double timeout_s, ms_err *err)
{
    host_ctx *c = vctx;
    double deadline = ex_clock_s() + timeout_s;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int busy = 0, failed = c->first_failed; /* the root cause, not the cancelled */
        for (uint32_t i = 0; i < c->nst; i++)
            if (c->st[i].head != c->st[i].tail) busy = 1;
        if (failed >= 0 && !busy) {
            *err = c->st[failed].err;
            ms_err_prefix(err, "rank %d", c->rank);
            pthread_mutex_unlock(&c->mu);
            return -1;
        }
        if (!busy) break;
        double now = ex_clock_s();
        if (now >= deadline && failed < 0) {
            char msg[MS_ERR_LEN];
            describe_stuck(c, msg, sizeof msg);
            ms_err_set(err, "watchdog: rank %d: after %.3g s, %s", c->rank, timeout_s, msg);
            atomic_store(&c->cancel, 1);
            for (uint32_t i = 0; i < c->nst; i++) pthread_cond_signal(&c->st[i].cv);
            pthread_cond_broadcast(&c->ev_cv);
            /* give the streams a moment to drain (cancellable waits return at once) */
            double until = ex_clock_s() + 1.0;
            while (ex_clock_s() < until) {
                int left = 0;
                for (uint32_t i = 0; i < c->nst; i++) left |= c->st[i].head != c->st[i].tail;
                if (!left) break;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_nsec += 10000000;
                if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
                pthread_cond_timedwait(&c->ev_cv, &c->mu, &ts);
            }
            pthread_mutex_unlock(&c->mu);
            return -1;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double wake = (double)ts.tv_sec + 1e-9 * ts.tv_nsec + (deadline - now < 0.05 ? deadline - now : 0.05);
        if (failed >= 0) wake = (double)ts.tv_sec + 1e-9 * ts.tv_nsec + 0.01;
        ts.tv_sec = (time_t)wake;
        ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&c->ev_cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int host_times(void *vctx, uint32_t task, double *start_us, double *end_us, ms_err *err)
{
    host_ctx *c = vctx;
    if (task >= c->g->ntasks || c->g->rank[task] != c->rank)
        return ms_err_set(err, "rank %d: task index %u is not one of this rank's", c->rank, task);
    *start_us = c->start_s[task] * 1e6;
    *end_us = c->end_s[task] * 1e6;
    return 0;
}

static int host_teardown(void *vctx)
{
    host_ctx *c = vctx;
    if (!c) return 0;
    int stuck = 0;
    pthread_mutex_lock(&c->mu);
    c->shutdown = 1;
    atomic_store(&c->cancel, 1);
    for (uint32_t i = 0; i < c->nst; i++) pthread_cond_signal(&c->st[i].cv);
    pthread_cond_broadcast(&c->ev_cv);
    stuck = c->abandoned;
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; c->st && i < c->nst; i++)
        if (c->st[i].started) pthread_join(c->st[i].thread, NULL);
    stuck |= c->abandoned;
    for (uint32_t i = 0; c->st && i < c->nst; i++) {
        hstream *s = &c->st[i];
        pthread_cond_destroy(&s->cv);
        free(s->q), free(s->scratch), free(s->iscratch), free(s->wpool);
        if (stuck) continue; /* abandoned requests may still write into these */
        free(s->sendbuf), free(s->recvbuf);
        ex_reqs_free(s->reqs);
    }
    if (!stuck)
        for (int i = 0; i < c->ncomms; i++) ex_comm_free(c->comms[i].comm);
    free(c->comms);
    free(c->st), free(c->local_of), free(c->done), free(c->start_s), free(c->end_s);
    pthread_cond_destroy(&c->ev_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return stuck;
}

const ex_backend ex_backend_host = {
    .name = "host",
    .supports_payload = 1,
    .device_name = host_device_name,
    .setup = host_setup,
    .begin = host_begin,
    .enqueue_compute = host_enqueue,
    .enqueue_comm = host_enqueue,
    .record = host_record,
    .wait = host_wait,
    .synchronize = host_synchronize,
    .times = host_times,
    .teardown = host_teardown,
};

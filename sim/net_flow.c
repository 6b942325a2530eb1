/* The flow-level network model: each transfer is a flow over its route's links (GPU up and
 * down links to the node switch, NIC up and down links to the fabric). After its route's
 * latency a flow shares every link max-min fairly with the other active flows; rates are
 * recomputed lazily, once per instant at which flows join or end, and ends are exact
 * double-precision arithmetic (no time stepping). See net.h and docs/SIM.md ("flow"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/net.h"
#include "sim/net_internal.h"

/* Flows whose projected end lies within this relative distance of the current time end
 * together, in one advance(): it absorbs the rounding that gives symmetric flows ends a
 * few ulps apart. The error it admits (at most 1e-12 of the time) is far below anything
 * the model claims. */
#define END_REL_EPS 1e-12
#define FIRST_FLOWS 256u
#define NONE UINT32_MAX

typedef struct flow {
    double rem_bytes; /* bytes still to go at fn->clock_s (while sharing) */
    double rate;      /* bytes/s from the last fill; -1 while a fill has not reached it */
    double end_s;     /* clock_s + rem_bytes / rate: the end if nothing changes */
    uint64_t seq;     /* start order; simultaneous ends are reported in this order */
    uint32_t id;      /* the engine's transfer id */
    uint32_t nlink;   /* 2 (same node) or 4 (across nodes) */
    uint32_t link[4]; /* route, in order */
    uint32_t pos;     /* index in the sharing list; the next free slot while free */
} flow;

typedef struct join_ev { /* a flow in its latency phase, keyed by when it joins */
    double join_s;
    uint64_t seq;
    uint32_t slot;
} join_ev;

typedef struct link_key { /* a link in the filling heap, keyed by its fair share */
    double share;
    uint32_t a; /* index in the active-link list */
} link_key;

typedef struct done_ent {
    uint64_t seq;
    uint32_t id;
} done_ent;

typedef struct flownet {
    topo t;
    uint32_t ranks;
    uint32_t nics_used; /* NICs per node that carry traffic: min(nics, gpus), 0 on 1 node */
    uint32_t nlinks;
    double lat_local_s, lat_cross_s; /* route latencies, summed as the analytic model does */

    /* Per link (ids: see link_id_*), calloc'd so pages of idle links are never touched. */
    uint32_t *link_nflows; /* sharing flows through the link */
    uint32_t *link_apos;   /* 1 + index in act_link; 0 while the link is idle */

    /* Active links (at least one sharing flow) and per-active-link scratch for a fill. */
    uint32_t nact, act_cap_n; /* count, capacity */
    uint32_t *act_link;
    double *act_cap;   /* capacity not yet given to frozen flows, bytes/s */
    uint32_t *act_n;   /* flows not yet frozen */
    uint32_t *act_off; /* [act_cap_n + 1] CSR offsets of each link's flows in csr */
    uint32_t *act_cur;
    link_key *lheap;

    /* Flow slots, reused through a free list; arrays sized by fcap grow together. */
    flow *f;
    uint32_t fcap, fused, free_head;
    uint32_t *share; /* slots of the sharing flows */
    uint32_t nshare;
    uint32_t *csr;   /* [4 * fcap] flows of each active link during a fill */
    join_ev *jh;     /* min-heap of latency-phase flows by (join_s, seq) */
    uint32_t njh;
    done_ent *done;  /* ends at the current instant, reported by advance() */
    uint32_t ndone, done_next;

    double clock_s;    /* time at which rem_bytes are valid */
    double next_end_s; /* earliest end_s among sharing flows (valid when !dirty) */
    int dirty;         /* the sharing set changed at clock_s; rates are stale */
    uint64_t seq;
} flownet;

/* ---- links ---------------------------------------------------------------------------- */

/* Link ids: GPU r up = r, GPU r down = R + r; NIC k of node n up = 2R + n*K + k, down =
 * 2R + N*K + n*K + k, with K = nics_used. */
static inline double link_cap(const flownet *fn, uint32_t l)
{
    return l < 2 * fn->ranks ? fn->t.intra.bw_bytes_per_s : fn->t.nic.bw_bytes_per_s;
}

static void link_add(flownet *fn, uint32_t l)
{
    if (fn->link_nflows[l]++ == 0) {
        fn->act_link[fn->nact] = l;
        fn->link_apos[l] = ++fn->nact;
    }
}

static void link_remove(flownet *fn, uint32_t l)
{
    if (--fn->link_nflows[l] != 0) return;
    uint32_t a = fn->link_apos[l] - 1, last = fn->act_link[--fn->nact];
    fn->act_link[a] = last;
    fn->link_apos[last] = a + 1;
    fn->link_apos[l] = 0;
}

/* Fills fl's route from src to dst (different ranks). Rail-style NICs: GPU g of a node
 * uses its node's NIC g % nics_per_node, on both the sending and the receiving side. */
static void route(const flownet *fn, flow *fl, uint32_t src, uint32_t dst)
{
    uint32_t g = (uint32_t)fn->t.gpus_per_node, R = fn->ranks, K = fn->nics_used;
    uint32_t ns = src / g, nd = dst / g;
    if (ns == nd) {
        fl->nlink = 2;
        fl->link[0] = src;
        fl->link[1] = R + dst;
        return;
    }
    fl->nlink = 4;
    fl->link[0] = src;
    fl->link[1] = 2 * R + ns * K + (src % g) % K;
    fl->link[2] = 2 * R + (uint32_t)fn->t.nodes * K + nd * K + (dst % g) % K;
    fl->link[3] = R + dst;
}

/* ---- heaps ---------------------------------------------------------------------------- */

static inline int join_less(const join_ev *x, const join_ev *y)
{
    return x->join_s < y->join_s || (x->join_s == y->join_s && x->seq < y->seq);
}

static void join_push(flownet *fn, join_ev e)
{
    uint32_t i = fn->njh++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!join_less(&e, &fn->jh[p])) break;
        fn->jh[i] = fn->jh[p];
        i = p;
    }
    fn->jh[i] = e;
}

static join_ev join_pop(flownet *fn)
{
    join_ev top = fn->jh[0], e = fn->jh[--fn->njh];
    uint32_t i = 0, n = fn->njh;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && join_less(&fn->jh[c + 1], &fn->jh[c])) c++;
        if (!join_less(&fn->jh[c], &e)) break;
        fn->jh[i] = fn->jh[c];
        i = c;
    }
    if (n > 0) fn->jh[i] = e;
    return top;
}

static inline int key_less(const link_key *x, const link_key *y)
{
    return x->share < y->share || (x->share == y->share && x->a < y->a);
}

static void key_sift_down(link_key *h, uint32_t n, uint32_t i)
{
    link_key e = h[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && key_less(&h[c + 1], &h[c])) c++;
        if (!key_less(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

/* ---- max-min fair rates ---------------------------------------------------------------- */

/* Progressive filling over the active links: repeatedly take the link with the smallest
 * fair share (remaining capacity / unfrozen flows), freeze its unfrozen flows at that
 * share and take their rate off every link they cross. Shares only grow as flows freeze,
 * so a lazy heap works: a popped link whose share has grown goes back with the new key.
 * Cost O(flows + links log links) per fill, whatever the number of bottleneck levels. */
static void fill(flownet *fn)
{
    uint32_t na = fn->nact, off = 0;
    for (uint32_t a = 0; a < na; a++) {
        uint32_t l = fn->act_link[a], n = fn->link_nflows[l];
        fn->act_off[a] = fn->act_cur[a] = off;
        off += n;
        fn->act_n[a] = n;
        fn->act_cap[a] = link_cap(fn, l);
    }
    fn->act_off[na] = off;
    for (uint32_t i = 0; i < fn->nshare; i++) {
        uint32_t s = fn->share[i];
        flow *fl = &fn->f[s];
        fl->rate = -1;
        for (uint32_t k = 0; k < fl->nlink; k++)
            fn->csr[fn->act_cur[fn->link_apos[fl->link[k]] - 1]++] = s;
    }
    link_key *h = fn->lheap;
    for (uint32_t a = 0; a < na; a++) h[a] = (link_key){fn->act_cap[a] / fn->act_n[a], a};
    for (uint32_t i = na / 2; i-- > 0;) key_sift_down(h, na, i);
    uint32_t nh = na;
    while (nh > 0) {
        uint32_t a = h[0].a;
        if (fn->act_n[a] == 0) { /* every flow through it is frozen already */
            h[0] = h[--nh];
            key_sift_down(h, nh, 0);
            continue;
        }
        double cur = fn->act_cap[a] / fn->act_n[a];
        if (cur > h[0].share) { /* stale key: its share grew since it was pushed */
            h[0].share = cur;
            key_sift_down(h, nh, 0);
            continue;
        }
        h[0] = h[--nh];
        key_sift_down(h, nh, 0);
        for (uint32_t j = fn->act_off[a]; j < fn->act_off[a + 1]; j++) {
            flow *fl = &fn->f[fn->csr[j]];
            if (fl->rate >= 0) continue;
            fl->rate = cur;
            for (uint32_t k = 0; k < fl->nlink; k++) {
                uint32_t b = fn->link_apos[fl->link[k]] - 1;
                fn->act_cap[b] -= cur;
                fn->act_n[b]--;
            }
        }
    }
    double next = INFINITY;
    for (uint32_t i = 0; i < fn->nshare; i++) {
        flow *fl = &fn->f[fn->share[i]];
        fl->end_s = fn->clock_s + fl->rem_bytes / fl->rate;
        if (fl->end_s < next) next = fl->end_s;
    }
    fn->next_end_s = next;
    fn->dirty = 0;
}

/* ---- storage ---------------------------------------------------------------------------- */

#define GROW(p, n)                                                                         \
    do {                                                                                   \
        void *q_ = realloc((p), (size_t)(n) * sizeof *(p));                                \
        if (!q_) return -1;                                                                \
        (p) = q_;                                                                          \
    } while (0)

/* Doubles the flow capacity (and the per-active-link scratch with it). */
static int grow(flownet *fn)
{
    if (fn->fcap > UINT32_MAX / 8) return -1;
    uint32_t cap = fn->fcap ? 2 * fn->fcap : FIRST_FLOWS;
    GROW(fn->f, cap);
    GROW(fn->share, cap);
    GROW(fn->csr, 4 * (size_t)cap);
    GROW(fn->jh, cap);
    GROW(fn->done, cap);
    uint32_t acap = 4 * cap < fn->nlinks ? 4 * cap : fn->nlinks;
    GROW(fn->act_link, acap);
    GROW(fn->act_cap, acap);
    GROW(fn->act_n, acap);
    GROW(fn->act_off, acap + 1);
    GROW(fn->act_cur, acap);
    GROW(fn->lheap, acap);
    fn->fcap = cap;
    fn->act_cap_n = acap;
    return 0;
}

static uint32_t alloc_slot(flownet *fn)
{
    if (fn->free_head != NONE) {
        uint32_t s = fn->free_head;
        fn->free_head = fn->f[s].pos;
        return s;
    }
    if (fn->fused == fn->fcap && grow(fn) != 0) return NONE;
    return fn->fused++;
}

static void flow_free(void *self)
{
    flownet *fn = self;
    if (!fn) return;
    free(fn->link_nflows);
    free(fn->link_apos);
    free(fn->act_link);
    free(fn->act_cap);
    free(fn->act_n);
    free(fn->act_off);
    free(fn->act_cur);
    free(fn->lheap);
    free(fn->f);
    free(fn->share);
    free(fn->csr);
    free(fn->jh);
    free(fn->done);
    free(fn);
}

static void *flow_create(const topo *t, ms_err *err)
{
    if (topo_check(t, err) != 0) return NULL;
    flownet *fn = calloc(1, sizeof *fn);
    if (!fn) {
        ms_err_set(err, "out of memory creating the flow network model");
        return NULL;
    }
    fn->t = *t;
    fn->ranks = (uint32_t)topo_ranks(t);
    if (t->nodes > 1)
        fn->nics_used = (uint32_t)(t->nics_per_node < t->gpus_per_node ? t->nics_per_node
                                                                       : t->gpus_per_node);
    fn->nlinks = 2 * fn->ranks + 2 * (uint32_t)t->nodes * fn->nics_used;
    fn->lat_local_s = net_local_latency_s(t);
    fn->lat_cross_s = net_cross_latency_s(t);
    fn->free_head = NONE;
    fn->next_end_s = INFINITY;
    fn->link_nflows = calloc(fn->nlinks, sizeof *fn->link_nflows);
    fn->link_apos = calloc(fn->nlinks, sizeof *fn->link_apos);
    if (!fn->link_nflows || !fn->link_apos || grow(fn) != 0) {
        ms_err_set(err, "out of memory for the flow model's %u links", fn->nlinks);
        flow_free(fn);
        return NULL;
    }
    return fn;
}

/* ---- the net_ops interface ------------------------------------------------------------- */

static double flow_xfer(void *self, double now_s, uint32_t id, int src, int dst,
                        double bytes)
{
    flownet *fn = self;
    if (src == dst) return now_s;
    int same = topo_node_of(&fn->t, src) == topo_node_of(&fn->t, dst);
    double lat = same ? fn->lat_local_s : fn->lat_cross_s;
    if (!(bytes > 0)) return now_s + lat; /* nothing to share: ends as it would join */
    uint32_t s = alloc_slot(fn);
    if (s == NONE) {
        /* Out of memory and xfer_start cannot fail: degrade to a contention-free end
         * (the flow's bottleneck alone) rather than lose the transfer. */
        double bw = same ? fn->t.intra.bw_bytes_per_s
                         : fmin(fn->t.intra.bw_bytes_per_s, fn->t.nic.bw_bytes_per_s);
        return now_s + lat + bytes / bw;
    }
    flow *fl = &fn->f[s];
    fl->rem_bytes = bytes;
    fl->rate = 0;
    fl->end_s = INFINITY;
    fl->seq = fn->seq++;
    fl->id = id;
    route(fn, fl, (uint32_t)src, (uint32_t)dst);
    join_push(fn, (join_ev){now_s + lat, fl->seq, s});
    return -1;
}

static double flow_coll(void *self, tg_op op, const int32_t *ranks, int n, double bytes)
{
    const flownet *fn = self;
    return net_analytic_coll_time(&fn->t, op, ranks, n, bytes);
}

static double flow_next_time(void *self)
{
    flownet *fn = self;
    if (fn->done_next < fn->ndone) return fn->clock_s; /* a batch is being reported */
    double join = fn->njh ? fn->jh[0].join_s : INFINITY;
    if (join <= fn->clock_s) return join; /* joins now: refill after they are in */
    if (fn->dirty) fill(fn);
    return fmin(fn->next_end_s, join);
}

static int done_cmp(const void *x, const void *y)
{
    uint64_t a = ((const done_ent *)x)->seq, b = ((const done_ent *)y)->seq;
    return (a > b) - (a < b);
}

/* Moves the clock to now_s: drains every sharing flow at its rate and takes out those
 * ending by now_s (within END_REL_EPS), into fn->done in start order. */
static void collect_ends(flownet *fn, double now_s)
{
    if (fn->dirty) fill(fn);
    double dt = now_s - fn->clock_s;
    double thr = now_s + END_REL_EPS * fabs(now_s);
    uint32_t i = 0;
    while (i < fn->nshare) {
        uint32_t s = fn->share[i];
        flow *fl = &fn->f[s];
        if (fl->end_s <= thr) {
            for (uint32_t k = 0; k < fl->nlink; k++) link_remove(fn, fl->link[k]);
            fn->done[fn->ndone++] = (done_ent){fl->seq, fl->id};
            uint32_t last = fn->share[--fn->nshare];
            fn->share[i] = last;
            fn->f[last].pos = i;
            fl->pos = fn->free_head;
            fn->free_head = s;
            fn->dirty = 1;
            continue;
        }
        if (dt > 0) {
            fl->rem_bytes -= fl->rate * dt;
            if (fl->rem_bytes < 0) fl->rem_bytes = 0;
        }
        i++;
    }
    fn->clock_s = now_s;
    if (fn->ndone > 1) qsort(fn->done, fn->ndone, sizeof *fn->done, done_cmp);
}

static int flow_advance(void *self, double now_s, uint32_t *done, int max)
{
    flownet *fn = self;
    if (fn->done_next == fn->ndone) { /* take this instant's ends and joins */
        fn->ndone = fn->done_next = 0;
        if (now_s < fn->clock_s) now_s = fn->clock_s;
        /* Dirty at the same instant means the ends at now_s were taken already and no
         * fill has run since, so no new end can be due. */
        if (!(fn->dirty && now_s == fn->clock_s)) collect_ends(fn, now_s);
        while (fn->njh > 0 && fn->jh[0].join_s <= now_s) {
            uint32_t s = join_pop(fn).slot;
            flow *fl = &fn->f[s];
            fl->pos = fn->nshare;
            fn->share[fn->nshare++] = s;
            for (uint32_t k = 0; k < fl->nlink; k++) link_add(fn, fl->link[k]);
            fn->dirty = 1;
        }
    }
    uint32_t n = fn->ndone - fn->done_next;
    if (max < 0) max = 0;
    if (n > (uint32_t)max) n = (uint32_t)max;
    for (uint32_t i = 0; i < n; i++) done[i] = fn->done[fn->done_next + i].id;
    fn->done_next += n;
    return (int)n;
}

const net_ops net_flow = {
    .name = "flow",
    .create = flow_create,
    .free = flow_free,
    .xfer_start = flow_xfer,
    .coll_time = flow_coll,
    .next_time = flow_next_time,
    .advance = flow_advance,
};

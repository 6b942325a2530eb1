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

/* The freezing loop visits flows in link order, far apart in memory: fetching a few
 * entries ahead hides most of the misses (a hint only; nothing where unsupported). */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif
#define PREFETCH_AHEAD 16

/* A flow in its latency phase. Join times only grow within a route class (starts come in
 * time order and the class fixes the latency), so each class is a FIFO, not a heap. */
typedef struct waiting {
    double join_s;
    double bytes;
    uint64_t seq; /* start order; simultaneous ends are reported in it */
    uint32_t id;  /* the engine's transfer id */
    uint32_t nlink;
    uint32_t link[4];
} waiting;

typedef struct wqueue { /* ring buffer, cap a power of two */
    waiting *e;
    uint32_t cap, head, n;
} wqueue;

/* What a fill touches of a sharing flow, together in one place (it visits flows in link
 * order, i.e. at random). */
typedef struct fhot {
    double rate;      /* bytes/s from the last fill */
    uint32_t apos[4]; /* the route as indices into act_link */
    uint8_t nlink;    /* 2 (same node), 4 (across nodes), 0 (a hole: the flow ended) */
    uint8_t frozen;   /* fill scratch */
} fhot;

typedef struct done_ent {
    uint64_t seq;
    uint32_t id;
} done_ent;

/* An m2n exchange as one coflow: its flows progress together, at a level in bytes/s of
 * an average flow (total bytes / flows), and put weight w = (link bytes) / (average flow
 * bytes) on each link they cross, i.e. the link counts it as that many average flows.
 * Alone on the network it ends when its most loaded link has carried its load, which is
 * when max-min sharing of the same flows would end them all if they are balanced. */
typedef struct coflow {
    double join_s; /* end of the latency phase */
    double rem;    /* level units (bytes of an average flow) still to go */
    double rate;   /* level from the last fill */
    double end;
    uint64_t seq;
    uint32_t id;
    uint32_t nlink;
    uint32_t *link; /* link ids */
    double *w;      /* weight on each */
    uint32_t *apos; /* index in act_link, refreshed by each fill */
    uint8_t sharing, frozen;
} coflow;

typedef struct link_key { /* a link in the filling heap, keyed by its fair share */
    double share;
    uint32_t a; /* index in act_link */
} link_key;

typedef struct flownet {
    topo t;
    uint32_t ranks;
    uint32_t nics_used; /* NICs per node that carry traffic: min(nics, gpus), 0 on 1 node */
    uint32_t nlinks;
    double lat_s[2];    /* route latency: [0] same node, [1] across nodes (as analytic) */

    /* Per link (ids: see link_cap), calloc'd so pages of idle links are never touched. */
    uint32_t *link_nflows; /* sharing flows through the link */
    uint32_t *link_apos;   /* 1 + index in act_link; 0 when not in it */
    uint32_t *link_ncof;   /* sharing coflows through the link */

    /* The links of the current bucketing: those with sharing flows, plus those whose
     * flows all ended since (they drop out at the next rebuild); per-link fill scratch. */
    uint32_t nact, acap;
    uint32_t *act_link;
    double *act_cap;   /* capacity not yet given to frozen flows, bytes/s */
    uint32_t *act_n;   /* flows and coflows through it not yet frozen */
    double *act_w;     /* their weight: 1 per flow, a coflow's w */
    uint32_t *act_off; /* [acap + 1] where each link's flows start in csr */
    link_key *lheap;

    wqueue wait[2]; /* latency-phase flows: [0] same node, [1] across nodes */

    /* Sharing flows, index i < nslot, in arrays so that passes over them are sequential.
     * An ending flow leaves a hole and the bucketing by link (csr) stays valid; joins
     * append. A fill compacts and rebuckets after joins, or once holes outnumber flows. */
    uint32_t nslot, nlive, scap;
    fhot *hot;
    double *rem;    /* bytes still to go at clock_s */
    double *end;    /* clock_s + rem / rate: the end if nothing changes */
    uint64_t *seq;
    uint32_t *id;
    uint32_t *link; /* [4 * scap] route, as link ids */
    uint32_t *csr;  /* [4 * scap] the flows of each link of act_link, by act_off */
    int rebucket;   /* flows joined since the bucketing was built */
    done_ent *done; /* [scap] ends at the current instant, reported by advance() */
    uint32_t ndone, done_next;

    /* Coflows (m2n exchanges), waiting or sharing; few at a time, kept unordered. A fill
     * lists the sharing ones by link in cof_off/cof_idx ([acap + 1], [cof_links]). */
    coflow *cof;
    uint32_t ncof, cofcap;
    uint32_t *cof_off, *cof_idx;
    size_t cof_links, cof_idx_cap;

    double clock_s;    /* time at which rem is valid */
    double next_end_s; /* earliest end among sharing flows (valid when !dirty) */
    int dirty;         /* the sharing set changed at clock_s; rates are stale */
    int solo;          /* the last fill found no link shared, and since then only coflows
                          alone on their links came and went: rates are still max-min */
    uint64_t nseq;
} flownet;

/* ---- links and routes ----------------------------------------------------------------- */

/* Link ids: GPU r up = r, GPU r down = R + r; NIC k of node n up = 2R + n*K + k, down =
 * 2R + N*K + n*K + k, with K = nics_used. */
static inline double link_cap(const flownet *fn, uint32_t l)
{
    return l < 2 * fn->ranks ? fn->t.intra.bw_bytes_per_s : fn->t.nic.bw_bytes_per_s;
}

/* The link id of the NIC rank r uses, up (sending) or down (receiving); rails: GPU g of a
 * node uses its node's NIC g % K. */
static inline uint32_t nic_link(const flownet *fn, uint32_t r, int down)
{
    uint32_t g = (uint32_t)fn->t.gpus_per_node, K = fn->nics_used;
    return 2 * fn->ranks + (down ? (uint32_t)fn->t.nodes * K : 0) + r / g * K + r % g % K;
}

/* Fills w's route from src to dst (different ranks); returns its class (0: same node).
 * Rail-style NICs: GPU g of a node uses its node's NIC g % nics_per_node, on the sending
 * and on the receiving side. */
static int route(const flownet *fn, waiting *w, uint32_t src, uint32_t dst)
{
    uint32_t g = (uint32_t)fn->t.gpus_per_node, R = fn->ranks;
    uint32_t ns = src / g, nd = dst / g;
    if (ns == nd) {
        w->nlink = 2;
        w->link[0] = src;
        w->link[1] = R + dst;
        return 0;
    }
    w->nlink = 4;
    w->link[0] = src;
    w->link[1] = nic_link(fn, src, 0);
    w->link[2] = nic_link(fn, dst, 1);
    w->link[3] = R + dst;
    return 1;
}

/* ---- max-min fair rates ---------------------------------------------------------------- */

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

/* Drops the holes and the idle links and buckets the flows by link again: O(flows). */
static void rebucket(flownet *fn)
{
    uint32_t n = 0, na = 0, off = 0;
    for (uint32_t i = 0; i < fn->nslot; i++) {
        if (fn->hot[i].nlink == 0) continue;
        if (n != i) {
            fn->hot[n] = fn->hot[i];
            fn->rem[n] = fn->rem[i];
            fn->end[n] = fn->end[i];
            fn->seq[n] = fn->seq[i];
            fn->id[n] = fn->id[i];
            memcpy(&fn->link[4 * n], &fn->link[4 * i], 4 * sizeof *fn->link);
        }
        n++;
    }
    fn->nslot = fn->nlive = n;
    for (uint32_t a = 0; a < fn->nact; a++) {
        uint32_t l = fn->act_link[a];
        if (fn->link_nflows[l] == 0 && fn->link_ncof[l] == 0) {
            fn->link_apos[l] = 0;
            continue;
        }
        fn->act_link[na] = l;
        fn->link_apos[l] = na + 1;
        fn->act_off[na] = off;
        fn->act_n[na] = off; /* the bucket's cursor, below */
        off += fn->link_nflows[l];
        na++;
    }
    fn->nact = na;
    fn->act_off[na] = off;
    const uint32_t *link_apos = fn->link_apos, *link = fn->link;
    uint32_t *csr = fn->csr, *cur = fn->act_n;
    fhot *hot = fn->hot;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0, nl = hot[i].nlink; k < nl; k++) {
            uint32_t a = link_apos[link[4 * i + k]] - 1;
            hot[i].apos[k] = a;
            csr[cur[a]++] = i;
        }
    }
    fn->rebucket = 0;
}

/* Lists the sharing coflows by act_link position (cof_off/cof_idx), refreshing their
 * apos after a rebucket, and adds their weights to act_w. Room was made when each coflow
 * was created (reserve_coflow). */
static void bucket_coflows(flownet *fn)
{
    uint32_t na = fn->nact, *off = fn->cof_off;
    memset(off, 0, ((size_t)na + 1) * sizeof *off);
    for (uint32_t c = 0; c < fn->ncof; c++) {
        coflow *f = &fn->cof[c];
        if (!f->sharing) continue;
        f->frozen = 0;
        for (uint32_t k = 0; k < f->nlink; k++) {
            uint32_t a = fn->link_apos[f->link[k]] - 1;
            f->apos[k] = a;
            fn->act_w[a] += f->w[k];
            off[a + 1]++;
        }
    }
    for (uint32_t a = 0; a < na; a++) off[a + 1] += off[a];
    for (uint32_t c = 0; c < fn->ncof; c++) { /* off[a] advances as a cursor, then shifts */
        coflow *f = &fn->cof[c];
        if (!f->sharing) continue;
        for (uint32_t k = 0; k < f->nlink; k++) fn->cof_idx[off[f->apos[k]]++] = c;
    }
    for (uint32_t a = na; a > 0; a--) off[a] = off[a - 1];
    off[0] = 0;
}

/* Progressive filling: repeatedly take the link with the smallest fair share (remaining
 * capacity / weight of its unfrozen flows and coflows), freeze those at that share and
 * take their use off every link they cross. Shares only grow as flows freeze, so a lazy
 * heap works: a popped link whose share has grown goes back with the new key. Cost
 * O(flows + coflow links + share changes x log links), however many bottleneck levels
 * there are. Without coflows every weight is 1 and act_w counts flows exactly. */
static void fill(flownet *fn)
{
    if (fn->rebucket || fn->nslot - fn->nlive > fn->nlive) rebucket(fn);
    /* Locals, so that stores through byte fields don't force reloads of fn's fields. */
    const uint32_t na = fn->nact, ns = fn->nslot;
    const uint32_t *act_link = fn->act_link, *act_off = fn->act_off, *csr = fn->csr;
    uint32_t *act_n = fn->act_n;
    double *act_cap = fn->act_cap, *act_w = fn->act_w;
    fhot *hot = fn->hot;
    link_key *h = fn->lheap;
    uint32_t nh = 0;
    for (uint32_t a = 0; a < na; a++) {
        uint32_t l = act_link[a];
        act_n[a] = fn->link_nflows[l] + fn->link_ncof[l];
        act_w[a] = fn->link_nflows[l];
        act_cap[a] = link_cap(fn, l);
    }
    if (fn->ncof) bucket_coflows(fn);
    int shared = 0;
    for (uint32_t a = 0; a < na && !shared; a++) shared = act_n[a] > 1;
    if (!shared) { /* nobody shares a link: each goes at its slowest link's pace */
        for (uint32_t i = 0; i < ns; i++) {
            if (hot[i].nlink == 0) continue;
            double r = INFINITY;
            for (uint32_t k = 0; k < hot[i].nlink; k++)
                r = fmin(r, act_cap[hot[i].apos[k]] / act_w[hot[i].apos[k]]);
            hot[i].rate = r;
        }
        for (uint32_t c = 0; c < fn->ncof; c++) {
            coflow *f = &fn->cof[c];
            if (!f->sharing) continue;
            double r = INFINITY;
            for (uint32_t k = 0; k < f->nlink; k++) r = fmin(r, act_cap[f->apos[k]] / f->w[k]);
            f->rate = r;
        }
        fn->solo = 1;
        goto ends;
    }
    fn->solo = 0;
    for (uint32_t a = 0; a < na; a++)
        if (act_n[a]) h[nh++] = (link_key){act_cap[a] / act_w[a], a};
    for (uint32_t i = 0; i < ns; i++) hot[i].frozen = hot[i].nlink == 0; /* holes: done */
    for (uint32_t i = nh / 2; i-- > 0;) key_sift_down(h, nh, i);
    uint32_t unfrozen = fn->nlive; /* flows and coflows left; done when none */
    for (uint32_t c = 0; c < fn->ncof; c++) unfrozen += fn->cof[c].sharing;
    while (nh > 0 && unfrozen > 0) {
        uint32_t a = h[0].a;
        if (act_n[a] == 0) { /* every flow through it is frozen already */
            h[0] = h[--nh];
            key_sift_down(h, nh, 0);
            continue;
        }
        double cur = act_cap[a] / act_w[a];
        if (cur > h[0].share) { /* stale key: its share grew since it was pushed */
            h[0].share = cur;
            key_sift_down(h, nh, 0);
            continue;
        }
        h[0] = h[--nh];
        key_sift_down(h, nh, 0);
        for (uint32_t j = act_off[a], e = act_off[a + 1]; j < e; j++) {
            if (j + PREFETCH_AHEAD < e) PREFETCH(&hot[csr[j + PREFETCH_AHEAD]]);
            fhot *f = &hot[csr[j]];
            if (f->frozen) continue;
            f->frozen = 1;
            f->rate = cur;
            unfrozen--;
            for (uint32_t k = 0, nl = f->nlink; k < nl; k++) {
                act_cap[f->apos[k]] -= cur;
                act_w[f->apos[k]] -= 1;
                act_n[f->apos[k]]--;
            }
        }
        if (!fn->ncof) continue;
        for (uint32_t j = fn->cof_off[a], e = fn->cof_off[a + 1]; j < e; j++) {
            coflow *f = &fn->cof[fn->cof_idx[j]];
            if (f->frozen) continue;
            f->frozen = 1;
            f->rate = cur;
            unfrozen--;
            for (uint32_t k = 0; k < f->nlink; k++) {
                act_cap[f->apos[k]] -= cur * f->w[k];
                act_w[f->apos[k]] -= f->w[k];
                act_n[f->apos[k]]--;
            }
        }
    }
ends:;
    const double clock = fn->clock_s, *rem = fn->rem;
    double *end = fn->end, next = INFINITY;
    for (uint32_t i = 0; i < ns; i++) {
        if (hot[i].nlink == 0) continue;
        double e = clock + rem[i] / hot[i].rate;
        end[i] = e;
        if (e < next) next = e;
    }
    for (uint32_t c = 0; c < fn->ncof; c++) {
        coflow *f = &fn->cof[c];
        if (!f->sharing) continue;
        f->end = clock + f->rem / f->rate;
        if (f->end < next) next = f->end;
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

/* Makes room for `need` links in the current bucketing (never shrinks). */
static int reserve_act(flownet *fn, uint32_t need)
{
    if (need <= fn->acap) return 0;
    GROW(fn->act_link, need);
    GROW(fn->act_cap, need);
    GROW(fn->act_n, need);
    GROW(fn->act_w, need);
    GROW(fn->act_off, (size_t)need + 1);
    GROW(fn->cof_off, (size_t)need + 1);
    GROW(fn->lheap, need);
    fn->acap = need;
    return 0;
}

/* Makes room for `need` sharing flows (and the per-link scratch with them). */
static int reserve_sharing(flownet *fn, uint32_t need)
{
    if (need <= fn->scap) return 0;
    uint32_t cap = fn->scap ? fn->scap : FIRST_FLOWS;
    while (cap < need) {
        if (cap > UINT32_MAX / 16) return -1;
        cap *= 2;
    }
    GROW(fn->hot, cap);
    GROW(fn->rem, cap);
    GROW(fn->end, cap);
    GROW(fn->seq, cap);
    GROW(fn->id, cap);
    GROW(fn->link, 4 * (size_t)cap);
    GROW(fn->csr, 4 * (size_t)cap);
    GROW(fn->done, (size_t)cap + fn->cofcap);
    fn->scap = cap;
    /* Every link in act_link was brought there by a flow that still holds a slot (or by a
     * coflow, which made room for every link). */
    return reserve_act(fn, 4 * cap < fn->nlinks ? 4 * cap : fn->nlinks);
}

/* Makes room for one more coflow of nlink links (and the fill's lists of them). */
static int reserve_coflow(flownet *fn, uint32_t nlink)
{
    if (reserve_act(fn, fn->nlinks) != 0) return -1;
    if (fn->ncof == fn->cofcap) {
        uint32_t cap = fn->cofcap ? 2 * fn->cofcap : 8;
        GROW(fn->cof, cap);
        fn->cofcap = cap;
        GROW(fn->done, (size_t)fn->scap + cap);
    }
    if (fn->cof_links + nlink > fn->cof_idx_cap) {
        size_t cap = fn->cof_idx_cap ? fn->cof_idx_cap : 4096;
        while (cap < fn->cof_links + nlink) cap *= 2;
        GROW(fn->cof_idx, cap);
        fn->cof_idx_cap = cap;
    }
    return 0;
}

/* Doubles a waiting queue, unwrapping the ring. */
static int wq_grow(wqueue *q)
{
    if (q->cap > UINT32_MAX / 4) return -1;
    uint32_t cap = q->cap ? 2 * q->cap : FIRST_FLOWS;
    waiting *e = malloc((size_t)cap * sizeof *e);
    if (!e) return -1;
    for (uint32_t i = 0; i < q->n; i++) e[i] = q->e[(q->head + i) & (q->cap - 1)];
    free(q->e);
    q->e = e;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static inline waiting *wq_front(const wqueue *q) { return q->n ? &q->e[q->head] : NULL; }
static inline waiting *wq_back(const wqueue *q)
{
    return q->n ? &q->e[(q->head + q->n - 1) & (q->cap - 1)] : NULL;
}

/* The queue whose front joins first (ties: the earlier start), or NULL if both are empty. */
static wqueue *next_join(flownet *fn)
{
    waiting *a = wq_front(&fn->wait[0]), *b = wq_front(&fn->wait[1]);
    if (!a) return b ? &fn->wait[1] : NULL;
    if (!b) return &fn->wait[0];
    int first_a = a->join_s < b->join_s || (a->join_s == b->join_s && a->seq < b->seq);
    return first_a ? &fn->wait[0] : &fn->wait[1];
}

static void flow_free(void *self)
{
    flownet *fn = self;
    if (!fn) return;
    free(fn->link_nflows);
    free(fn->link_apos);
    free(fn->link_ncof);
    for (uint32_t c = 0; c < fn->ncof; c++) free(fn->cof[c].link);
    free(fn->cof);
    free(fn->cof_off);
    free(fn->cof_idx);
    free(fn->act_w);
    free(fn->act_link);
    free(fn->act_cap);
    free(fn->act_n);
    free(fn->act_off);
    free(fn->lheap);
    free(fn->wait[0].e);
    free(fn->wait[1].e);
    free(fn->hot);
    free(fn->rem);
    free(fn->end);
    free(fn->seq);
    free(fn->id);
    free(fn->link);
    free(fn->csr);
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
    fn->lat_s[0] = net_local_latency_s(t);
    fn->lat_s[1] = net_cross_latency_s(t);
    fn->next_end_s = INFINITY;
    fn->link_nflows = calloc(fn->nlinks, sizeof *fn->link_nflows);
    fn->link_apos = calloc(fn->nlinks, sizeof *fn->link_apos);
    fn->link_ncof = calloc(fn->nlinks, sizeof *fn->link_ncof);
    if (!fn->link_nflows || !fn->link_apos || !fn->link_ncof || reserve_sharing(fn, FIRST_FLOWS) != 0 ||
        wq_grow(&fn->wait[0]) != 0 || wq_grow(&fn->wait[1]) != 0) {
        ms_err_set(err, "out of memory for the flow model's %u links", fn->nlinks);
        flow_free(fn);
        return NULL;
    }
    return fn;
}

/* ---- moving time ------------------------------------------------------------------------ */

static int done_cmp(const void *x, const void *y)
{
    uint64_t a = ((const done_ent *)x)->seq, b = ((const done_ent *)y)->seq;
    return (a > b) - (a < b);
}

/* next_end_s from the current ends, rates unchanged. */
static void next_end(flownet *fn)
{
    double next = INFINITY;
    for (uint32_t i = 0; i < fn->nslot; i++)
        if (fn->hot[i].nlink != 0 && fn->end[i] < next) next = fn->end[i];
    for (uint32_t c = 0; c < fn->ncof; c++)
        if (fn->cof[c].sharing && fn->cof[c].end < next) next = fn->cof[c].end;
    fn->next_end_s = next;
}

/* Moves the clock to now_s: drains every sharing flow at its rate and takes out those
 * ending by now_s (within END_REL_EPS), into fn->done in start order. */
static void collect_ends(flownet *fn, double now_s)
{
    if (fn->dirty) fill(fn);
    const double dt = now_s - fn->clock_s;
    const double thr = now_s + END_REL_EPS * fabs(now_s);
    const uint32_t ns = fn->nslot;
    const double *end = fn->end;
    double *rem = fn->rem;
    fhot *hot = fn->hot;
    for (uint32_t i = 0; i < ns; i++) {
        if (hot[i].nlink == 0) continue;
        if (end[i] <= thr) {
            for (uint32_t k = 0; k < hot[i].nlink; k++) fn->link_nflows[fn->link[4 * i + k]]--;
            fn->done[fn->ndone++] = (done_ent){fn->seq[i], fn->id[i]};
            hot[i].nlink = 0;
            fn->nlive--;
            fn->dirty = 1;
        } else if (dt > 0) {
            rem[i] -= hot[i].rate * dt;
            if (rem[i] < 0) rem[i] = 0;
        }
    }
    int solo_end = 0;
    for (uint32_t c = fn->ncof; c-- > 0;) {
        coflow *f = &fn->cof[c];
        if (!f->sharing) continue;
        if (f->end <= thr) {
            for (uint32_t k = 0; k < f->nlink; k++) fn->link_ncof[f->link[k]]--;
            fn->done[fn->ndone++] = (done_ent){f->seq, f->id};
            fn->cof_links -= f->nlink;
            free(f->link);
            fn->cof[c] = fn->cof[--fn->ncof];
            if (!fn->solo) fn->dirty = 1; /* alone on its links, it slowed nobody */
            solo_end = fn->solo;
        } else if (dt > 0) {
            f->rem -= f->rate * dt;
            if (f->rem < 0) f->rem = 0;
        }
    }
    fn->clock_s = now_s;
    if (solo_end && !fn->dirty) next_end(fn);
    if (fn->ndone > 1) qsort(fn->done, fn->ndone, sizeof *fn->done, done_cmp);
}

/* Moves the waiting flows whose latency is paid by now_s into the sharing set. */
static void join_due(flownet *fn, double now_s)
{
    wqueue *q;
    while ((q = next_join(fn)) && wq_front(q)->join_s <= now_s) {
        const waiting *w = wq_front(q);
        uint32_t i = fn->nslot++;
        fn->nlive++;
        fn->hot[i].rate = 0;
        fn->hot[i].nlink = (uint8_t)w->nlink;
        fn->rem[i] = w->bytes;
        fn->end[i] = INFINITY;
        fn->seq[i] = w->seq;
        fn->id[i] = w->id;
        for (uint32_t k = 0; k < w->nlink; k++) {
            uint32_t l = w->link[k];
            fn->link[4 * i + k] = l;
            fn->link_nflows[l]++;
            if (fn->link_apos[l] == 0) {
                fn->act_link[fn->nact] = l;
                fn->link_apos[l] = ++fn->nact;
            }
        }
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
        fn->dirty = 1;
        fn->rebucket = 1;
    }
    for (uint32_t c = 0; c < fn->ncof; c++) {
        coflow *f = &fn->cof[c];
        if (f->sharing || f->join_s > now_s) continue;
        f->sharing = 1;
        int alone = fn->solo && !fn->dirty; /* and then on links nobody uses? */
        double rate = INFINITY;
        for (uint32_t k = 0; k < f->nlink; k++) {
            uint32_t l = f->link[k];
            alone &= fn->link_ncof[l] == 0 && fn->link_nflows[l] == 0;
            rate = fmin(rate, link_cap(fn, l) / f->w[k]);
            fn->link_ncof[l]++;
            if (fn->link_apos[l] == 0) {
                fn->act_link[fn->nact] = l;
                fn->link_apos[l] = ++fn->nact;
            }
        }
        fn->rebucket = 1; /* its links join the next fill's bucketing */
        if (alone) { /* its rate is its slowest link's; nobody else's changes */
            f->rate = rate;
            f->end = fn->clock_s + f->rem / rate;
            fn->next_end_s = fmin(fn->next_end_s, f->end);
        } else {
            fn->dirty = 1;
        }
    }
}

/* The earliest join of a waiting coflow, or INFINITY. */
static double coflow_next_join(const flownet *fn)
{
    double t = INFINITY;
    for (uint32_t c = 0; c < fn->ncof; c++)
        if (!fn->cof[c].sharing && fn->cof[c].join_s < t) t = fn->cof[c].join_s;
    return t;
}

/* ---- the net_ops interface ------------------------------------------------------------- */

static double flow_xfer(void *self, double now_s, uint32_t id, int src, int dst,
                        double bytes)
{
    flownet *fn = self;
    if (src == dst) return now_s;
    waiting w;
    int cls = route(fn, &w, (uint32_t)src, (uint32_t)dst);
    if (!(bytes > 0)) return now_s + fn->lat_s[cls]; /* nothing to share: ends on joining */
    wqueue *q = &fn->wait[cls];
    /* Room now for the flow to join later: advance() cannot fail. */
    uint32_t flows = fn->nslot + fn->wait[0].n + fn->wait[1].n + 1;
    if ((q->n == q->cap && wq_grow(q) != 0) || reserve_sharing(fn, flows) != 0) {
        return NAN; /* out of memory: the engine stops with an error */
    }
    w.join_s = now_s + fn->lat_s[cls];
    const waiting *back = wq_back(q);
    if (back && w.join_s < back->join_s) w.join_s = back->join_s; /* starts out of order */
    w.bytes = bytes;
    w.seq = fn->nseq++;
    w.id = id;
    q->e[(q->head + q->n++) & (q->cap - 1)] = w;
    return -1;
}

/* Adds link l with load `bytes` to the coflow being built (loads of zero are left out). */
static void cof_add(coflow *f, uint32_t l, double bytes, double avg)
{
    if (!(bytes > 0)) return;
    f->link[f->nlink] = l;
    f->w[f->nlink] = bytes / avg;
    f->nlink++;
}

static double flow_m2n(void *self, double now_s, uint32_t id, const net_m2n *x)
{
    flownet *fn = self;
    net_m2n_load ld;
    if (net_m2n_loads(&fn->t, x, &ld) != 0) return NAN;
    /* Latency: across nodes if any pair is (as its slowest pair would pay). */
    int one_node = 1;
    uint32_t g = (uint32_t)fn->t.gpus_per_node, node = (uint32_t)x->src[0] / g;
    for (uint32_t i = 0; i < x->nsrc && one_node; i++) one_node = (uint32_t)x->src[i] / g == node;
    for (uint32_t j = 0; j < x->ndst && one_node; j++) one_node = (uint32_t)x->dst[j] / g == node;
    double lat = fn->lat_s[!one_node];
    if (!(ld.total_bytes > 0)) {
        net_m2n_load_free(&ld);
        return now_s + lat;
    }
    /* Links: each member's GPU link, each NIC's share of the cross-node part. */
    uint32_t most = 2 * (x->nsrc + x->ndst);
    if (reserve_coflow(fn, most) != 0) {
        net_m2n_load_free(&ld);
        return NAN;
    }
    coflow f = {0};
    f.link = malloc((size_t)most * (2 * sizeof *f.link + sizeof *f.w));
    if (!f.link) {
        net_m2n_load_free(&ld);
        return NAN;
    }
    f.w = (double *)(f.link + most);
    f.apos = (uint32_t *)(f.w + most);
    double avg = ld.total_bytes / ld.pairs;
    uint32_t R = fn->ranks, K = fn->nics_used;
    uint32_t N = (uint32_t)fn->t.nodes;
    /* NIC loads accumulate over the members of a node: members are ascending, so the
     * members of one NIC of one node are not adjacent (rails); sum them in a scratch. */
    double *nic = K ? calloc(2 * (size_t)N * K, sizeof *nic) : NULL;
    if (K && !nic) {
        free(f.link);
        net_m2n_load_free(&ld);
        return NAN;
    }
    for (uint32_t i = 0; i < x->nsrc; i++) {
        uint32_t r = (uint32_t)x->src[i];
        cof_add(&f, r, ld.src_total[i], avg);
        if (K) nic[nic_link(fn, r, 0) - 2 * R] += ld.src_cross[i];
    }
    for (uint32_t j = 0; j < x->ndst; j++) {
        uint32_t r = (uint32_t)x->dst[j];
        cof_add(&f, R + r, ld.dst_total[j], avg);
        if (K) nic[nic_link(fn, r, 1) - 2 * R] += ld.dst_cross[j];
    }
    /* each NIC with load carries some member's traffic: at most `most` links in all */
    for (size_t k = 0; K && k < 2 * (size_t)N * K; k++) cof_add(&f, 2 * R + (uint32_t)k, nic[k], avg);
    free(nic);
    net_m2n_load_free(&ld);
    f.join_s = now_s + lat;
    f.rem = avg;
    f.seq = fn->nseq++;
    f.id = id;
    fn->cof[fn->ncof++] = f;
    fn->cof_links += f.nlink;
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
    wqueue *q = next_join(fn);
    double join = q ? wq_front(q)->join_s : INFINITY;
    if (fn->ncof) join = fmin(join, coflow_next_join(fn));
    if (join <= fn->clock_s) return join; /* joins now: fill once they are in */
    if (fn->dirty) fill(fn);
    return fmin(fn->next_end_s, join);
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
        join_due(fn, now_s);
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
    .m2n_start = flow_m2n,
    .next_time = flow_next_time,
    .advance = flow_advance,
};

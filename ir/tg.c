/* The task-graph builder and validator. tg_add_group/tg_add_vec/tg_add_task append into
 * geometrically grown struct-of-arrays (no per-task malloc); tg_graph_finalize resolves
 * forward dependencies, links streams, builds successor lists, pairs xchg transfers,
 * forms collective instances, and rejects cycles and cross-rank deadlocks. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "ir/tg.h"
#include "ir/tg_internal.h"

/* At most 2^30 - 1 tasks, so that the deadlock check's 2 * ntasks + ncoll nodes fit a
 * uint32 (a graph that size would take ~100 GiB anyway). */
#define MAX_TASKS 0x3fffffffu

typedef struct pend_dep {
    uint32_t slot; /* index into g->dep */
    uint32_t task; /* the task that named it */
    int64_t id;    /* the id to resolve */
} pend_dep;

typedef struct name_slot {
    uint32_t off;   /* string pool offset, TG_NONE = empty slot */
    uint32_t group; /* group with this name, or TG_NONE */
    uint32_t vec;   /* count vector with this name, or TG_NONE */
} name_slot;

struct tg_build {
    size_t cap_tasks, cap_args, cap_deps, cap_xfers, cap_streams, cap_groups, cap_granks;
    size_t cap_vecs, cap_vvals;
    /* task id lookup: while ids are strictly increasing (the usual case) they are found
     * directly (id == index) or by binary search; otherwise through id_hash, open
     * addressing on task indices (TG_NONE = empty), capacity a power of two. */
    uint32_t *id_hash;
    size_t id_hash_cap;
    /* interned names (streams, groups): open addressing, capacity a power of two */
    name_slot *names;
    size_t names_cap, names_len;
    /* stream per (rank, name): open addressing on stream indices */
    uint32_t *stream_hash;
    size_t stream_hash_cap;
    /* streams per rank, to number stream_local: open addressing on ranks (-1 = empty),
     * sized by the number of distinct ranks, not by the largest one */
    int32_t *rk_rank;
    uint32_t *rk_count;
    size_t rk_cap, rk_len;
    uint32_t last_stream; /* cache of the last stream looked up */
    /* (group, from) pairs of m2n tasks that passed the subset check, so that each pair is
     * walked once, not once per piece: keys (group << 32 | from) + 1, 0 = empty slot,
     * open addressing, capacity a power of two (a cache: when it cannot grow, it is not
     * used) */
    uint64_t *m2n_pairs;
    size_t m2n_pairs_cap, m2n_pairs_len;
    /* dependencies on ids not defined yet, resolved by finalize */
    pend_dep *pend;
    size_t npend, cap_pend;
    uint32_t source_off; /* source_name in str, or TG_NONE */
    int failed;          /* finalize failed: the graph can only be freed */
};

/* ---- messages ------------------------------------------------------------------------ */

int tg_gerr(ms_err *err, const tg_graph *g, uint32_t line, const char *fmt, ...)
{
    char msg[MS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = g ? g->source_name : NULL;
    if (name && line) return ms_err_set(err, "%s:%u: %s", name, (unsigned)line, msg);
    if (name) return ms_err_set(err, "%s: %s", name, msg);
    if (line) return ms_err_set(err, "line %u: %s", (unsigned)line, msg);
    return ms_err_set(err, "%s", msg);
}

static int oom(ms_err *err, const tg_graph *g)
{
    return tg_gerr(err, g, 0, "out of memory building the task graph");
}

/* "task 9 (rank 1, line 11)", leaving out what is not wanted or not known. */
static const char *tdesc(const tg_graph *g, uint32_t t, int with_rank, char *buf, size_t len)
{
    long long id = (long long)g->id[t];
    uint32_t line = g->line[t];
    if (with_rank && line)
        snprintf(buf, len, "task %lld (rank %d, line %u)", id, (int)g->rank[t], (unsigned)line);
    else if (with_rank)
        snprintf(buf, len, "task %lld (rank %d)", id, (int)g->rank[t]);
    else if (line)
        snprintf(buf, len, "task %lld (line %u)", id, (unsigned)line);
    else
        snprintf(buf, len, "task %lld", id);
    return buf;
}

/* ", line N" or "" */
static const char *at_line(uint32_t line, char *buf, size_t len)
{
    if (line) snprintf(buf, len, " at line %u", (unsigned)line);
    else buf[0] = '\0';
    return buf;
}

/* A bounded string builder for long messages (cycles). */
typedef struct sbuf {
    char s[MS_ERR_LEN - 64];
    size_t n;
    int full;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    if (b->full) return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k >= sizeof tmp) k = (int)sizeof tmp - 1;
    if (b->n + (size_t)k + 1 > sizeof b->s - 40) { /* keep room for the ellipsis */
        b->full = 1;
        return;
    }
    memcpy(b->s + b->n, tmp, (size_t)k + 1);
    b->n += (size_t)k;
}

/* ---- hashing, names ------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t str_hash(const char *s, size_t len)
{
    return mix64(ms_fnv1a64(s, len));
}

static int name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

static int valid_name(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!name_char((unsigned char)*s)) return 0;
    return 1;
}

/* Appends a string to the pool; returns its offset or TG_NONE when out of memory.
 * s may point into the pool itself (a label copied from another task). */
static uint32_t pool_add(tg_graph *g, const char *s, size_t len)
{
    if (g->str_len + len + 1 > g->str_cap) {
        uintptr_t p0 = (uintptr_t)g->str, ps = (uintptr_t)s;
        size_t inside = g->str && ps >= p0 && ps < p0 + g->str_len ? ps - p0 + 1 : 0;
        size_t cap = g->str_cap ? g->str_cap : 4096;
        while (g->str_len + len + 1 > cap) cap *= 2;
        if (cap > (size_t)TG_NONE) cap = TG_NONE;
        if (g->str_len + len + 1 > cap) return TG_NONE;
        char *p = realloc(g->str, cap);
        if (!p) return TG_NONE;
        g->str = p;
        g->str_cap = cap;
        if (g->build && g->build->source_off != TG_NONE)
            g->source_name = g->str + g->build->source_off;
        if (inside) s = g->str + (inside - 1);
    }
    uint32_t off = (uint32_t)g->str_len;
    memcpy(g->str + off, s, len);
    g->str[off + len] = '\0';
    g->str_len += len + 1;
    return off;
}

/* Slot of a name in the intern table, or of the empty slot where it would go. */
static size_t name_slot_of(const tg_graph *g, const char *s, size_t len)
{
    const struct tg_build *b = g->build;
    size_t mask = b->names_cap - 1, i = (size_t)str_hash(s, len) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t off = b->names[i].off;
        if (off == TG_NONE) return i;
        if (memcmp(g->str + off, s, len) == 0 && g->str[off + len] == '\0') return i;
    }
}

/* Interns a name; returns the intern slot, or SIZE_MAX when out of memory. */
static size_t name_intern(tg_graph *g, const char *s)
{
    struct tg_build *b = g->build;
    size_t len = strlen(s);
    if ((b->names_len + 1) * 2 > b->names_cap) {
        size_t cap = b->names_cap ? b->names_cap * 2 : 64;
        name_slot *old = b->names, *nw = malloc(cap * sizeof *nw);
        if (!nw) return SIZE_MAX;
        for (size_t i = 0; i < cap; i++) nw[i].off = nw[i].group = nw[i].vec = TG_NONE;
        size_t oldcap = b->names_cap;
        b->names = nw;
        b->names_cap = cap;
        for (size_t i = 0; i < oldcap; i++) {
            if (old[i].off == TG_NONE) continue;
            const char *o = g->str + old[i].off;
            b->names[name_slot_of(g, o, strlen(o))] = old[i];
        }
        free(old);
    }
    size_t i = name_slot_of(g, s, len);
    if (b->names[i].off == TG_NONE) {
        uint32_t off = pool_add(g, s, len);
        if (off == TG_NONE) return SIZE_MAX;
        b->names[i].off = off;
        b->names_len++;
    }
    return i;
}

/* ---- task id lookup ------------------------------------------------------------------ */

static uint32_t id_lookup(const tg_graph *g, int64_t id)
{
    const struct tg_build *b = g->build;
    uint32_t n = g->ntasks;
    if (n == 0 || id < 0) return TG_NONE;
    if (!b->id_hash) {
        if (g->id[n - 1] == (int64_t)n - 1) return id < (int64_t)n ? (uint32_t)id : TG_NONE;
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (g->id[mid] < id) lo = mid + 1;
            else hi = mid;
        }
        return lo < n && g->id[lo] == id ? lo : TG_NONE;
    }
    size_t mask = b->id_hash_cap - 1, i = (size_t)mix64((uint64_t)id) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t t = b->id_hash[i];
        if (t == TG_NONE || g->id[t] == id) return t;
    }
}

static void id_hash_put(tg_graph *g, uint32_t t)
{
    struct tg_build *b = g->build;
    size_t mask = b->id_hash_cap - 1, i = (size_t)mix64((uint64_t)g->id[t]) & mask;
    while (b->id_hash[i] != TG_NONE) i = (i + 1) & mask;
    b->id_hash[i] = t;
}

/* Makes room to register task index t (id already stored in g->id[t]). */
static int id_insert(tg_graph *g, uint32_t t)
{
    struct tg_build *b = g->build;
    if (!b->id_hash && (t == 0 || g->id[t] > g->id[t - 1])) return 0; /* still sorted */
    if (!b->id_hash || (size_t)(t + 1) * 10 > b->id_hash_cap * 7) {
        size_t cap = b->id_hash_cap ? b->id_hash_cap : 1024;
        while ((size_t)(t + 1) * 10 > cap * 7) cap *= 2;
        uint32_t *h = malloc(cap * sizeof *h);
        if (!h) return -1;
        memset(h, 0xff, cap * sizeof *h);
        free(b->id_hash);
        b->id_hash = h;
        b->id_hash_cap = cap;
        for (uint32_t u = 0; u < t; u++) id_hash_put(g, u);
    }
    id_hash_put(g, t);
    return 0;
}

uint32_t tg_find_task(const tg_graph *g, int64_t id)
{
    if (!g || !g->build) return TG_NONE;
    return id_lookup(g, id);
}

/* ---- growth -------------------------------------------------------------------------- */

#define RESIZE(p, n)                                                                     \
    do {                                                                                 \
        void *np_ = realloc((p), ((n) ? (size_t)(n) : 1) * sizeof *(p));                 \
        if (!np_) return -1;                                                             \
        (p) = np_;                                                                       \
    } while (0)

static size_t next_cap(size_t cap, size_t need, size_t first)
{
    if (!cap) cap = first;
    while (cap < need) cap *= 2;
    return cap;
}

static int grow_tasks(tg_graph *g, size_t need)
{
    struct tg_build *b = g->build;
    if (need <= b->cap_tasks) return 0;
    size_t cap = next_cap(b->cap_tasks, need, 256);
    if (cap > MAX_TASKS) cap = MAX_TASKS;
    if (cap < need) return -1;
    RESIZE(g->id, cap);
    RESIZE(g->rank, cap);
    RESIZE(g->stream, cap);
    RESIZE(g->op, cap);
    RESIZE(g->label, cap);
    RESIZE(g->line, cap);
    RESIZE(g->arg_off, cap + 1);
    RESIZE(g->dep_off, cap + 1);
    RESIZE(g->xfer_off, cap + 1);
    b->cap_tasks = cap;
    return 0;
}

static int grow_u32_space(size_t have, size_t add, size_t *cap, size_t first, size_t *newcap)
{
    if (have + add <= *cap) {
        *newcap = *cap;
        return 0;
    }
    if (have + add > TG_NONE - 1) return -1;
    *newcap = next_cap(*cap, have + add, first);
    if (*newcap > TG_NONE - 1) *newcap = TG_NONE - 1;
    return 0;
}

static int grow_args(tg_graph *g, size_t add)
{
    struct tg_build *b = g->build;
    size_t cap;
    if (grow_u32_space(g->arg_off[g->ntasks], add, &b->cap_args, 1024, &cap)) return -1;
    if (cap == b->cap_args) return 0;
    RESIZE(g->arg, cap);
    b->cap_args = cap;
    return 0;
}

static int grow_deps(tg_graph *g, size_t add)
{
    struct tg_build *b = g->build;
    size_t cap;
    if (grow_u32_space(g->dep_off[g->ntasks], add, &b->cap_deps, 1024, &cap)) return -1;
    if (cap == b->cap_deps) return 0;
    RESIZE(g->dep, cap);
    b->cap_deps = cap;
    return 0;
}

static int grow_xfers(tg_graph *g, size_t add)
{
    struct tg_build *b = g->build;
    size_t cap;
    if (grow_u32_space(g->nxfers, add, &b->cap_xfers, 256, &cap)) return -1;
    if (cap == b->cap_xfers) return 0;
    RESIZE(g->xfer_peer, cap);
    RESIZE(g->xfer_bytes, cap);
    RESIZE(g->xfer_send, cap);
    b->cap_xfers = cap;
    return 0;
}

static size_t rank_slot(const struct tg_build *b, int32_t rank)
{
    size_t mask = b->rk_cap - 1, i = (size_t)mix64((uint64_t)(uint32_t)rank) & mask;
    while (b->rk_rank[i] != -1 && b->rk_rank[i] != rank) i = (i + 1) & mask;
    return i;
}

/* Returns the number of streams rank already has and counts one more, or TG_NONE when
 * out of memory. */
static uint32_t rank_next_stream(tg_graph *g, int32_t rank)
{
    struct tg_build *b = g->build;
    if ((b->rk_len + 1) * 2 > b->rk_cap) {
        size_t cap = b->rk_cap ? b->rk_cap * 2 : 64;
        int32_t *r = malloc(cap * sizeof *r);
        uint32_t *c = malloc(cap * sizeof *c);
        if (!r || !c) {
            free(r), free(c);
            return TG_NONE;
        }
        memset(r, 0xff, cap * sizeof *r);
        int32_t *orank = b->rk_rank;
        uint32_t *ocount = b->rk_count;
        size_t ocap = b->rk_cap;
        b->rk_rank = r, b->rk_count = c, b->rk_cap = cap;
        for (size_t i = 0; i < ocap; i++) {
            if (orank[i] == -1) continue;
            size_t j = rank_slot(b, orank[i]);
            r[j] = orank[i], c[j] = ocount[i];
        }
        free(orank), free(ocount);
    }
    size_t i = rank_slot(b, rank);
    if (b->rk_rank[i] == -1) {
        b->rk_rank[i] = rank;
        b->rk_count[i] = 0;
        b->rk_len++;
    }
    return b->rk_count[i]++;
}

/* ---- streams ------------------------------------------------------------------------- */

static size_t stream_slot(const tg_graph *g, int32_t rank, uint32_t name)
{
    const struct tg_build *b = g->build;
    size_t mask = b->stream_hash_cap - 1;
    size_t i = (size_t)mix64(((uint64_t)(uint32_t)rank << 32) ^ name) & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t s = b->stream_hash[i];
        if (s == TG_NONE || (g->stream_rank[s] == rank && g->stream_name[s] == name)) return i;
    }
}

/* The stream (rank, name), created when new; TG_NONE when out of memory. */
static uint32_t stream_get(tg_graph *g, int32_t rank, const char *name)
{
    struct tg_build *b = g->build;
    uint32_t s = b->last_stream;
    if (s != TG_NONE && g->stream_rank[s] == rank && strcmp(g->str + g->stream_name[s], name) == 0)
        return s;
    size_t ni = name_intern(g, name);
    if (ni == SIZE_MAX) return TG_NONE;
    uint32_t noff = b->names[ni].off;
    if ((size_t)(g->nstreams + 1) * 2 > b->stream_hash_cap) {
        size_t cap = b->stream_hash_cap ? b->stream_hash_cap * 2 : 64;
        uint32_t *h = malloc(cap * sizeof *h);
        if (!h) return TG_NONE;
        memset(h, 0xff, cap * sizeof *h);
        free(b->stream_hash);
        b->stream_hash = h;
        b->stream_hash_cap = cap;
        for (uint32_t u = 0; u < g->nstreams; u++)
            h[stream_slot(g, g->stream_rank[u], g->stream_name[u])] = u;
    }
    size_t i = stream_slot(g, rank, noff);
    if (b->stream_hash[i] != TG_NONE) return b->last_stream = b->stream_hash[i];
    if (g->nstreams >= TG_NONE - 1) return TG_NONE;
    if (g->nstreams == b->cap_streams) {
        size_t cap = next_cap(b->cap_streams, (size_t)g->nstreams + 1, 16);
        uint32_t *p;
        int32_t *q;
        if (!(q = realloc(g->stream_rank, cap * sizeof *q))) return TG_NONE;
        g->stream_rank = q;
        if (!(p = realloc(g->stream_name, cap * sizeof *p))) return TG_NONE;
        g->stream_name = p;
        if (!(p = realloc(g->stream_local, cap * sizeof *p))) return TG_NONE;
        g->stream_local = p;
        b->cap_streams = cap;
    }
    uint32_t local = rank_next_stream(g, rank);
    if (local == TG_NONE) return TG_NONE;
    s = g->nstreams++;
    g->stream_rank[s] = rank;
    g->stream_name[s] = noff;
    g->stream_local[s] = local;
    b->stream_hash[i] = s;
    return b->last_stream = s;
}

/* ---- create / free ------------------------------------------------------------------- */

static void build_free(struct tg_build *b)
{
    if (!b) return;
    free(b->id_hash);
    free(b->names);
    free(b->stream_hash);
    free(b->rk_rank);
    free(b->rk_count);
    free(b->m2n_pairs);
    free(b->pend);
    free(b);
}

void tg_graph_free(tg_graph *g)
{
    if (!g) return;
    free(g->id);
    free(g->rank);
    free(g->stream);
    free(g->op);
    free(g->arg_off);
    free(g->arg);
    free(g->label);
    free(g->line);
    free(g->dep_off);
    free(g->dep);
    free(g->xfer_off);
    free(g->xfer_peer);
    free(g->xfer_bytes);
    free(g->xfer_send);
    free(g->stream_rank);
    free(g->stream_name);
    free(g->stream_local);
    free(g->group_name);
    free(g->group_off);
    free(g->group_ranks);
    free(g->group_line);
    free(g->vec_name);
    free(g->vec_off);
    free(g->vec_val);
    free(g->vec_line);
    free(g->succ_off);
    free(g->succ);
    free(g->next_in_stream);
    free(g->stream_head);
    free(g->xfer_match);
    free(g->xfer_task);
    free(g->coll_of);
    free(g->coll_off);
    free(g->coll_task);
    free(g->str);
    build_free(g->build);
    free(g);
}

tg_graph *tg_graph_create(const char *source_name)
{
    tg_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->build = calloc(1, sizeof *g->build);
    if (!g->build) goto fail;
    g->build->source_off = TG_NONE;
    g->build->last_stream = TG_NONE;
    if (grow_tasks(g, 1)) goto fail;
    g->arg_off[0] = g->dep_off[0] = g->xfer_off[0] = 0;
    g->group_off = malloc(sizeof *g->group_off);
    if (!g->group_off) goto fail;
    g->group_off[0] = 0;
    g->vec_off = malloc(sizeof *g->vec_off);
    if (!g->vec_off) goto fail;
    g->vec_off[0] = 0;
    if (source_name) {
        uint32_t off = pool_add(g, source_name, strlen(source_name));
        if (off == TG_NONE) goto fail;
        g->build->source_off = off;
        g->source_name = g->str + off;
    }
    return g;
fail:
    tg_graph_free(g);
    return NULL;
}

/* ---- groups -------------------------------------------------------------------------- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int tg_add_group(tg_graph *g, const char *name, const int32_t *ranks, int nranks,
                 uint32_t line, ms_err *err)
{
    if (!g) return ms_err_set(err, "tg_add_group: no graph");
    struct tg_build *b = g->build;
    if (g->finalized || b->failed)
        return tg_gerr(err, g, line, "cannot add group to a finalized graph");
    if (!valid_name(name))
        return tg_gerr(err, g, line, "bad group name '%s': use letters, digits, '_', '.', '-'",
                    name ? name : "(null)");
    if (nranks < 1 || !ranks) return tg_gerr(err, g, line, "group %s has no ranks", name);
    if (g->ngroups >= TG_NONE - 1) return tg_gerr(err, g, line, "too many groups");
    size_t ni = name_intern(g, name);
    if (ni == SIZE_MAX) return oom(err, g);
    if (b->names[ni].group != TG_NONE) {
        char lb[32];
        return tg_gerr(err, g, line, "duplicate group '%s' (first declared%s)", name,
                    at_line(g->group_line[b->names[ni].group], lb, sizeof lb));
    }
    size_t have = g->group_off[g->ngroups];
    if (have + (size_t)nranks > TG_NONE - 1) return tg_gerr(err, g, line, "too many group members");
    if (have + (size_t)nranks > b->cap_granks) {
        size_t cap = next_cap(b->cap_granks, have + (size_t)nranks, 64);
        int32_t *p = realloc(g->group_ranks, cap * sizeof *p);
        if (!p) return oom(err, g);
        g->group_ranks = p;
        b->cap_granks = cap;
    }
    int32_t *r = g->group_ranks + have;
    memcpy(r, ranks, (size_t)nranks * sizeof *r);
    qsort(r, (size_t)nranks, sizeof *r, cmp_i32);
    for (int i = 0; i < nranks; i++) {
        if (r[i] < 0 || r[i] >= TG_MAX_RANKS)
            return tg_gerr(err, g, line, "group %s: rank %d out of range [0, %d)", name, (int)r[i],
                        TG_MAX_RANKS);
        if (i && r[i] == r[i - 1])
            return tg_gerr(err, g, line, "group %s: rank %d listed twice", name, (int)r[i]);
    }
    if (g->ngroups + 1 > b->cap_groups) {
        size_t cap = next_cap(b->cap_groups, (size_t)g->ngroups + 1, 8);
        uint32_t *p;
        if (!(p = realloc(g->group_name, cap * sizeof *p))) return oom(err, g);
        g->group_name = p;
        if (!(p = realloc(g->group_line, cap * sizeof *p))) return oom(err, g);
        g->group_line = p;
        if (!(p = realloc(g->group_off, (cap + 1) * sizeof *p))) return oom(err, g);
        g->group_off = p;
        b->cap_groups = cap;
    }
    uint32_t gi = g->ngroups++;
    g->group_name[gi] = b->names[ni].off;
    g->group_line[gi] = line;
    g->group_off[gi + 1] = (uint32_t)(have + (size_t)nranks);
    b->names[ni].group = gi;
    if (r[nranks - 1] + 1 > g->nranks) g->nranks = r[nranks - 1] + 1;
    return (int)gi;
}

int tg_find_group(const tg_graph *g, const char *name)
{
    if (!g || !name) return -1;
    const struct tg_build *b = g->build;
    if (b && b->names) {
        size_t i = name_slot_of(g, name, strlen(name));
        return b->names[i].off == TG_NONE || b->names[i].group == TG_NONE
                   ? -1
                   : (int)b->names[i].group;
    }
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (strcmp(g->str + g->group_name[i], name) == 0) return (int)i;
    return -1;
}

/* ---- count vectors ------------------------------------------------------------------- */

int tg_add_vec(tg_graph *g, const char *name, const int64_t *vals, uint32_t n, uint32_t line,
               ms_err *err)
{
    if (!g) return ms_err_set(err, "tg_add_vec: no graph");
    struct tg_build *b = g->build;
    if (g->finalized || b->failed)
        return tg_gerr(err, g, line, "cannot add vec to a finalized graph");
    if (!valid_name(name))
        return tg_gerr(err, g, line, "bad vec name '%s': use letters, digits, '_', '.', '-'",
                    name ? name : "(null)");
    if (n < 1 || !vals) return tg_gerr(err, g, line, "vec %s has no counts", name);
    for (uint32_t i = 0; i < n; i++)
        if (vals[i] < 0)
            return tg_gerr(err, g, line, "vec %s: count #%u is %lld; counts must be >= 0", name,
                        (unsigned)i + 1, (long long)vals[i]);
    if (g->nvecs >= TG_NONE - 1) return tg_gerr(err, g, line, "too many vectors");
    size_t ni = name_intern(g, name);
    if (ni == SIZE_MAX) return oom(err, g);
    if (b->names[ni].vec != TG_NONE) {
        char lb[32];
        return tg_gerr(err, g, line, "duplicate vec '%s' (first declared%s)", name,
                    at_line(g->vec_line[b->names[ni].vec], lb, sizeof lb));
    }
    size_t have = g->vec_off[g->nvecs];
    if (have + n > TG_NONE - 1) return tg_gerr(err, g, line, "too many vector values");
    if (have + n > b->cap_vvals) {
        size_t cap = next_cap(b->cap_vvals, have + n, 64);
        int64_t *p = realloc(g->vec_val, cap * sizeof *p);
        if (!p) return oom(err, g);
        g->vec_val = p;
        b->cap_vvals = cap;
    }
    if (g->nvecs + 1 > b->cap_vecs) {
        size_t cap = next_cap(b->cap_vecs, (size_t)g->nvecs + 1, 8);
        uint32_t *p;
        if (!(p = realloc(g->vec_name, cap * sizeof *p))) return oom(err, g);
        g->vec_name = p;
        if (!(p = realloc(g->vec_line, cap * sizeof *p))) return oom(err, g);
        g->vec_line = p;
        if (!(p = realloc(g->vec_off, (cap + 1) * sizeof *p))) return oom(err, g);
        g->vec_off = p;
        b->cap_vecs = cap;
    }
    memcpy(g->vec_val + have, vals, (size_t)n * sizeof *vals);
    uint32_t vi = g->nvecs++;
    g->vec_name[vi] = b->names[ni].off;
    g->vec_line[vi] = line;
    g->vec_off[vi + 1] = (uint32_t)(have + n);
    b->names[ni].vec = vi;
    return (int)vi;
}

int tg_find_vec(const tg_graph *g, const char *name)
{
    if (!g || !name) return -1;
    const struct tg_build *b = g->build;
    if (b && b->names) {
        size_t i = name_slot_of(g, name, strlen(name));
        return b->names[i].off == TG_NONE || b->names[i].vec == TG_NONE ? -1
                                                                        : (int)b->names[i].vec;
    }
    for (uint32_t i = 0; i < g->nvecs; i++)
        if (strcmp(g->str + g->vec_name[i], name) == 0) return (int)i;
    return -1;
}

/* Position of rank r among the members of group gi, or -1. */
static int64_t member_pos(const tg_graph *g, uint32_t gi, int32_t r)
{
    uint32_t lo = g->group_off[gi], hi = g->group_off[gi + 1], base = lo;
    if (lo < hi && g->group_ranks[hi - 1] - g->group_ranks[lo] == (int32_t)(hi - lo - 1))
        /* consecutive ranks (the common case): no search */
        return r >= g->group_ranks[lo] && r <= g->group_ranks[hi - 1] ? r - g->group_ranks[lo] : -1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (g->group_ranks[mid] < r) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->group_off[gi + 1] && g->group_ranks[lo] == r ? (int64_t)(lo - base) : -1;
}

/* "0,1,2,3" (shortened when long) */
static const char *group_ranks_str(const tg_graph *g, uint32_t gi, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = g->group_off[gi]; i < g->group_off[gi + 1]; i++) {
        if (n + 16 > len) {
            snprintf(buf + n, len - n, "...");
            break;
        }
        n += (size_t)snprintf(buf + n, len - n, "%s%d", i == g->group_off[gi] ? "" : ",",
                              (int)g->group_ranks[i]);
    }
    return buf;
}

/* ---- tasks --------------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 1 when v[0..n) holds a value twice (it goes to *dup), 0 when not, -1 out of memory. */
static int find_repeat(const int64_t *v, int n, int64_t *dup)
{
    if (n <= 64) {
        for (int i = 1; i < n; i++)
            for (int j = 0; j < i; j++)
                if (v[i] == v[j]) return *dup = v[i], 1;
        return 0;
    }
    int64_t *c = malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_i64);
    int r = 0;
    for (int i = 1; i < n && !r; i++)
        if (c[i] == c[i - 1]) *dup = c[i], r = 1;
    free(c);
    return r;
}

static size_t pair_slot(const struct tg_build *b, uint64_t key)
{
    size_t mask = b->m2n_pairs_cap - 1, i = (size_t)mix64(key) & mask;
    while (b->m2n_pairs[i] != 0 && b->m2n_pairs[i] != key) i = (i + 1) & mask;
    return i;
}

static int pair_seen(const struct tg_build *b, uint64_t key)
{
    return b->m2n_pairs_cap && b->m2n_pairs[pair_slot(b, key)] == key;
}

/* Remembers a checked pair; out of memory only means it will be checked again. */
static void pair_remember(struct tg_build *b, uint64_t key)
{
    if ((b->m2n_pairs_len + 1) * 2 > b->m2n_pairs_cap) {
        size_t cap = b->m2n_pairs_cap ? b->m2n_pairs_cap * 2 : 16;
        uint64_t *old = b->m2n_pairs, *h = calloc(cap, sizeof *h);
        if (!h) return;
        size_t ocap = b->m2n_pairs_cap;
        b->m2n_pairs = h;
        b->m2n_pairs_cap = cap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i]) h[pair_slot(b, old[i])] = old[i];
        free(old);
    }
    size_t i = pair_slot(b, key);
    if (b->m2n_pairs[i] == 0) b->m2n_pairs[i] = key, b->m2n_pairs_len++;
}

/* The m2n args beyond {group, bytes} (already checked): from= a non-empty proper subset of
 * the group, counts= a vector with one count per receiver (per=recv) or sender (per=send). */
static int check_m2n(tg_graph *g, const tg_task_spec *t, ms_err *err)
{
    const int64_t *a = t->args;
    uint32_t line = t->line;
    long long id = (long long)t->id;
    char rb[256], fb[256];
    uint32_t gi = (uint32_t)a[0];
    const char *gname = g->str + g->group_name[gi];
    if (a[2] < 0 || a[2] >= (int64_t)g->ngroups)
        return tg_gerr(err, g, line, "task %lld: m2n from= group index %lld names no group", id,
                    (long long)a[2]);
    uint32_t fi = (uint32_t)a[2];
    const char *fname = g->str + g->group_name[fi];
    uint32_t gsize = g->group_off[gi + 1] - g->group_off[gi];
    uint32_t fsize = g->group_off[fi + 1] - g->group_off[fi];
    /* both ascending: one merge walk finds a from rank missing in the group */
    const int32_t *gr = g->group_ranks + g->group_off[gi], *fr = g->group_ranks + g->group_off[fi];
    uint64_t key = ((uint64_t)gi << 32 | fi) + 1;
    int seen = pair_seen(g->build, key);
    for (uint32_t i = 0, j = 0; j < fsize && !seen; j++) {
        while (i < gsize && gr[i] < fr[j]) i++;
        if (i == gsize || gr[i] != fr[j])
            return tg_gerr(err, g, line,
                        "task %lld: m2n from=%s (ranks %s) is not a subset of group %s (ranks "
                        "%s): rank %d is not a member",
                        id, fname, group_ranks_str(g, fi, fb, sizeof fb), gname,
                        group_ranks_str(g, gi, rb, sizeof rb), (int)fr[j]);
    }
    if (fsize == gsize)
        return tg_gerr(err, g, line,
                    "task %lld: m2n from=%s holds every rank of group %s (ranks %s); the senders "
                    "must be a proper subset, the other ranks receive",
                    id, fname, gname, group_ranks_str(g, gi, rb, sizeof rb));
    if (!seen) pair_remember(g->build, key);
    if (a[4] != TG_M2N_PER_RECV && a[4] != TG_M2N_PER_SEND)
        return tg_gerr(err, g, line, "task %lld: m2n per=%lld must be %d (recv) or %d (send)", id,
                    (long long)a[4], TG_M2N_PER_RECV, TG_M2N_PER_SEND);
    if (a[3] < 0 || a[3] >= (int64_t)g->nvecs)
        return tg_gerr(err, g, line, "task %lld: m2n counts= vector index %lld names no vector", id,
                    (long long)a[3]);
    uint32_t vi = (uint32_t)a[3], vlen = g->vec_off[vi + 1] - g->vec_off[vi];
    int per_send = a[4] == TG_M2N_PER_SEND;
    uint32_t want = per_send ? fsize : gsize - fsize;
    if (vlen != want)
        return tg_gerr(err, g, line,
                    "task %lld: m2n counts=%s has %u value%s, expected %u (per=%s: one per %s; "
                    "group %s has %u ranks, %u of them senders in from=%s)",
                    id, g->str + g->vec_name[vi], (unsigned)vlen, vlen == 1 ? "" : "s",
                    (unsigned)want, per_send ? "send" : "recv", per_send ? "sender" : "receiver",
                    gname, (unsigned)gsize, (unsigned)fsize, fname);
    return 0;
}

int64_t tg_add_task(tg_graph *g, const tg_task_spec *t, ms_err *err)
{
    if (!g || !t) return ms_err_set(err, "tg_add_task: no graph or task");
    struct tg_build *b = g->build;
    uint32_t line = t->line;
    long long id = (long long)t->id;
    char lb[32], rb[256];
    if (g->finalized || b->failed)
        return tg_gerr(err, g, line, "cannot add task to a finalized graph");
    if (t->id < 0) return tg_gerr(err, g, line, "bad task id %lld: ids must be >= 0", id);
    if (g->ntasks >= MAX_TASKS) return tg_gerr(err, g, line, "too many tasks (at most %u)", MAX_TASKS);
    uint32_t first = id_lookup(g, t->id);
    if (first != TG_NONE)
        return tg_gerr(err, g, line, "duplicate task id %lld (first defined%s)", id,
                    at_line(g->line[first], lb, sizeof lb));
    if (t->rank < 0 || t->rank >= TG_MAX_RANKS)
        return tg_gerr(err, g, line, "task %lld: rank %d out of range [0, %d)", id, (int)t->rank,
                    TG_MAX_RANKS);
    if ((unsigned)t->op >= TG_OP__COUNT)
        return tg_gerr(err, g, line, "task %lld: bad op %d", id, (int)t->op);
    if (!valid_name(t->stream))
        return tg_gerr(err, g, line,
                    "task %lld: bad stream name '%s': use letters, digits, '_', '.', '-'", id,
                    t->stream ? t->stream : "(null)");
    const tg_op_info *info = tg_op_get(t->op);
    if (info->nargs > 0 && !t->args) return tg_gerr(err, g, line, "task %lld: no args given", id);
    switch (info->kind) {
    case TG_KIND_DELAY: {
        double us;
        memcpy(&us, &t->args[0], sizeof us);
        if (!isfinite(us) || us < 0)
            return tg_gerr(err, g, line, "task %lld: %s=%g must be a finite number >= 0", id,
                        info->arg[0], us);
        break;
    }
    case TG_KIND_COMPUTE:
        for (int i = 0; i < info->nargs; i++) {
            if (t->args[i] == TG_ARG_REQUIRED)
                return tg_gerr(err, g, line, "task %lld: missing field '%s' for op %s", id,
                            info->arg[i], info->name);
            if (t->args[i] < info->min[i])
                return tg_gerr(err, g, line, "task %lld: %s=%lld must be >= %lld", id, info->arg[i],
                            (long long)t->args[i], (long long)info->min[i]);
        }
        break;
    case TG_KIND_COLL: {
        int64_t gi = t->args[0];
        if (gi < 0 || gi >= (int64_t)g->ngroups)
            return tg_gerr(err, g, line, "task %lld: group index %lld names no group", id,
                        (long long)gi);
        if (t->args[1] < info->min[1])
            return tg_gerr(err, g, line, "task %lld: %s=%lld must be >= %lld", id, info->arg[1],
                        (long long)t->args[1], (long long)info->min[1]);
        if (member_pos(g, (uint32_t)gi, t->rank) < 0)
            return tg_gerr(err, g, line,
                        "task %lld (rank %d): rank %d is not a member of group %s (ranks %s)", id,
                        (int)t->rank, (int)t->rank, g->str + g->group_name[gi],
                        group_ranks_str(g, (uint32_t)gi, rb, sizeof rb));
        if (t->op == TG_OP_M2N && check_m2n(g, t, err)) return -1;
        break;
    }
    case TG_KIND_XCHG:
        if (t->nxfer < 1)
            return tg_gerr(err, g, line, "task %lld: xchg needs at least one send= or recv= transfer",
                        id);
        if (!t->xfer_peer || !t->xfer_bytes || !t->xfer_send)
            return tg_gerr(err, g, line, "task %lld: no transfers given", id);
        for (int i = 0; i < t->nxfer; i++) {
            if (t->xfer_peer[i] < 0 || t->xfer_peer[i] >= TG_MAX_RANKS)
                return tg_gerr(err, g, line, "task %lld: peer rank %d out of range [0, %d)", id,
                            (int)t->xfer_peer[i], TG_MAX_RANKS);
            if (t->xfer_bytes[i] < 0)
                return tg_gerr(err, g, line, "task %lld: transfer of %lld bytes: bytes must be >= 0",
                            id, (long long)t->xfer_bytes[i]);
            if (t->xfer_send[i] > 1)
                return tg_gerr(err, g, line, "task %lld: xfer_send must be 0 or 1", id);
        }
        break;
    }
    if (info->kind != TG_KIND_XCHG && t->nxfer != 0)
        return tg_gerr(err, g, line, "task %lld: transfers given for op %s", id, info->name);
    if (t->nafter < 0 || (t->nafter > 0 && !t->after))
        return tg_gerr(err, g, line, "task %lld: bad dependency list", id);
    for (int i = 0; i < t->nafter; i++)
        if (t->after[i] < 0)
            return tg_gerr(err, g, line, "task %lld: after=%lld names no task", id,
                        (long long)t->after[i]);
    int64_t dup;
    int rep = find_repeat(t->after, t->nafter, &dup);
    if (rep < 0) return oom(err, g);
    if (rep)
        return tg_gerr(err, g, line, "task %lld: after= names task %lld twice", id, (long long)dup);
    /* Labels repeat across ranks (L3.mb1.a2e.c2 on every rank): they are interned, and a
     * label is checked once, when first seen. */
    uint32_t label = TG_NONE; /* the interned label's offset, when seen before */
    size_t label_len = t->label ? strlen(t->label) : 0;
    if (t->label && b->names_cap) label = b->names[name_slot_of(g, t->label, label_len)].off;
    if (t->label && label == TG_NONE)
        for (const unsigned char *p = (const unsigned char *)t->label; *p; p++)
            if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                return tg_gerr(err, g, line, "task %lld: label contains control character 0x%02x",
                            id, *p);

    /* Room first, so that nothing below fails half-way except out of memory. */
    int nargs = info->nargs;
    if (grow_tasks(g, (size_t)g->ntasks + 1) || grow_args(g, (size_t)nargs) ||
        grow_deps(g, (size_t)t->nafter) || grow_xfers(g, (size_t)t->nxfer))
        return oom(err, g);
    uint32_t n = g->ntasks, d0 = g->dep_off[n];
    for (int i = 0; i < t->nafter; i++) {
        uint32_t p = id_lookup(g, t->after[i]);
        if (p != TG_NONE && g->rank[p] != t->rank)
            return tg_gerr(err, g, line,
                        "task %lld (rank %d): after=%lld names task %lld of rank %d%s; "
                        "dependencies must stay on one rank",
                        id, (int)t->rank, (long long)t->after[i], (long long)g->id[p],
                        (int)g->rank[p], at_line(g->line[p], lb, sizeof lb));
        g->dep[d0 + i] = p;
    }
    uint32_t s = stream_get(g, t->rank, t->stream);
    if (s == TG_NONE) return oom(err, g);
    if (t->label && label == TG_NONE) {
        size_t slot = name_intern(g, t->label);
        if (slot == SIZE_MAX) return oom(err, g);
        label = b->names[slot].off;
    }
    size_t npend0 = b->npend;
    for (int i = 0; i < t->nafter; i++) {
        if (g->dep[d0 + i] != TG_NONE) continue;
        if (b->npend == b->cap_pend) {
            size_t cap = next_cap(b->cap_pend, b->npend + 1, 64);
            pend_dep *p = realloc(b->pend, cap * sizeof *p);
            if (!p) {
                b->npend = npend0;
                return oom(err, g);
            }
            b->pend = p;
            b->cap_pend = cap;
        }
        b->pend[b->npend++] = (pend_dep){d0 + (uint32_t)i, n, t->after[i]};
    }
    g->id[n] = t->id;
    if (id_insert(g, n)) {
        b->npend = npend0;
        return oom(err, g);
    }
    g->rank[n] = t->rank;
    g->stream[n] = s;
    g->op[n] = (uint8_t)t->op;
    g->label[n] = label;
    g->line[n] = line;
    uint32_t a0 = g->arg_off[n];
    for (int i = 0; i < nargs; i++) g->arg[a0 + i] = t->args[i];
    if (info->kind == TG_KIND_DELAY && tg_task_delay_us(g, n) == 0)
        g->arg[a0] = tg_delay_arg(0.0); /* -0 is stored as +0 */
    g->arg_off[n + 1] = a0 + (uint32_t)nargs;
    g->dep_off[n + 1] = d0 + (uint32_t)t->nafter;
    uint32_t x = g->nxfers;
    for (int pass = 1; pass >= 0; pass--) /* sends first, then receives, each in order */
        for (int i = 0; i < t->nxfer; i++) {
            if (t->xfer_send[i] != pass) continue;
            g->xfer_peer[x] = t->xfer_peer[i];
            g->xfer_bytes[x] = t->xfer_bytes[i];
            g->xfer_send[x] = (uint8_t)pass;
            x++;
        }
    g->nxfers = x;
    g->xfer_off[n + 1] = x;
    g->ntasks = n + 1;
    if (t->rank + 1 > g->nranks) g->nranks = t->rank + 1;
    return n;
}

/* ---- finalize: links and successor lists --------------------------------------------- */

static int resolve_pending(tg_graph *g, ms_err *err)
{
    struct tg_build *b = g->build;
    char lb[32];
    for (size_t i = 0; i < b->npend; i++) {
        const pend_dep *p = &b->pend[i];
        uint32_t d = id_lookup(g, p->id), t = p->task;
        if (d == TG_NONE)
            return tg_gerr(err, g, g->line[t], "task %lld: after=%lld names no task",
                        (long long)g->id[t], (long long)p->id);
        if (g->rank[d] != g->rank[t])
            return tg_gerr(err, g, g->line[t],
                        "task %lld (rank %d): after=%lld names task %lld of rank %d%s; "
                        "dependencies must stay on one rank",
                        (long long)g->id[t], (int)g->rank[t], (long long)p->id,
                        (long long)g->id[d], (int)g->rank[d], at_line(g->line[d], lb, sizeof lb));
        g->dep[p->slot] = d;
    }
    free(b->pend);
    b->pend = NULL;
    b->npend = b->cap_pend = 0;
    return 0;
}

/* Gives the builder's slack back and drops the tables only building needs. */
static int shrink(tg_graph *g)
{
    struct tg_build *b = g->build;
    uint32_t n = g->ntasks;
    RESIZE(g->id, n);
    RESIZE(g->rank, n);
    RESIZE(g->stream, n);
    RESIZE(g->op, n);
    RESIZE(g->label, n);
    RESIZE(g->line, n);
    RESIZE(g->arg_off, n + 1);
    RESIZE(g->dep_off, n + 1);
    RESIZE(g->xfer_off, n + 1);
    RESIZE(g->arg, g->arg_off[n]);
    RESIZE(g->dep, g->dep_off[n]);
    RESIZE(g->xfer_peer, g->nxfers);
    RESIZE(g->xfer_bytes, g->nxfers);
    RESIZE(g->xfer_send, g->nxfers);
    RESIZE(g->stream_rank, g->nstreams);
    RESIZE(g->stream_name, g->nstreams);
    RESIZE(g->stream_local, g->nstreams);
    RESIZE(g->str, g->str_len);
    g->str_cap = g->str_len ? g->str_len : 1;
    if (b->source_off != TG_NONE) g->source_name = g->str + b->source_off;
    b->cap_tasks = n;
    b->cap_args = g->arg_off[n];
    b->cap_deps = g->dep_off[n];
    b->cap_xfers = b->cap_streams = 0;
    free(b->names);
    b->names = NULL;
    b->names_cap = b->names_len = 0;
    free(b->stream_hash);
    b->stream_hash = NULL;
    b->stream_hash_cap = 0;
    free(b->rk_rank);
    free(b->rk_count);
    b->rk_rank = NULL;
    b->rk_count = NULL;
    b->rk_cap = b->rk_len = 0;
    free(b->m2n_pairs);
    b->m2n_pairs = NULL;
    b->m2n_pairs_cap = b->m2n_pairs_len = 0;
    return 0;
}

static int link_streams(tg_graph *g)
{
    uint32_t n = g->ntasks, ns = g->nstreams;
    RESIZE(g->next_in_stream, n);
    RESIZE(g->stream_head, ns);
    uint32_t *last = malloc((ns ? ns : 1) * sizeof *last);
    if (!last) return -1;
    for (uint32_t s = 0; s < ns; s++) g->stream_head[s] = last[s] = TG_NONE;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t s = g->stream[t];
        g->next_in_stream[t] = TG_NONE;
        if (last[s] == TG_NONE) g->stream_head[s] = t;
        else g->next_in_stream[last[s]] = t;
        last[s] = t;
    }
    free(last);
    return 0;
}

static int build_succ(tg_graph *g)
{
    uint32_t n = g->ntasks, nd = g->dep_off[n];
    RESIZE(g->succ_off, n + 1);
    RESIZE(g->succ, nd);
    uint32_t *off = g->succ_off;
    memset(off, 0, ((size_t)n + 1) * sizeof *off);
    for (uint32_t i = 0; i < nd; i++) off[g->dep[i]]++;
    uint32_t sum = 0;
    for (uint32_t t = 0; t < n; t++) sum = off[t] += sum; /* inclusive prefix: end of t */
    off[n] = sum;
    for (uint32_t t = n; t-- > 0;)
        for (uint32_t i = g->dep_off[t + 1]; i-- > g->dep_off[t];) g->succ[--off[g->dep[i]]] = t;
    return 0;
}

/* ---- finalize: plain cycles (deps + stream order) ------------------------------------ */

/* A LIFO of node indices for the topological sweeps; it starts small and grows, since in
 * practice few nodes are ready at once. */
typedef struct ustack {
    uint32_t *v;
    size_t n, cap;
} ustack;

static int us_push(ustack *s, uint32_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint32_t *p = realloc(s->v, cap * sizeof *p);
        if (!p) return -1;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* prev[t]: the task before t on its stream, or TG_NONE (error paths only). */
static uint32_t *stream_prev(const tg_graph *g)
{
    uint32_t *prev = malloc(((size_t)g->ntasks + 1) * sizeof *prev);
    if (!prev) return NULL;
    for (uint32_t t = 0; t < g->ntasks; t++) prev[t] = TG_NONE;
    for (uint32_t t = 0; t < g->ntasks; t++)
        if (g->next_in_stream[t] != TG_NONE) prev[g->next_in_stream[t]] = t;
    return prev;
}

static int report_cycle(tg_graph *g, const uint32_t *indeg, ms_err *err)
{
    uint32_t n = g->ntasks, *prev = stream_prev(g);
    uint32_t *pos = malloc((size_t)n * sizeof *pos), *path = malloc((size_t)n * sizeof *path);
    if (!prev || !pos || !path) {
        free(prev), free(pos), free(path);
        return oom(err, g);
    }
    for (uint32_t t = 0; t < n; t++) pos[t] = TG_NONE;
    uint32_t x = 0, len = 0;
    while (indeg[x] == 0) x++;
    while (pos[x] == TG_NONE) { /* walk "waits for" edges among the unfinished tasks */
        pos[x] = len;
        path[len++] = x;
        uint32_t y = TG_NONE;
        for (uint32_t i = g->dep_off[x]; i < g->dep_off[x + 1] && y == TG_NONE; i++)
            if (indeg[g->dep[i]] > 0) y = g->dep[i];
        if (y == TG_NONE) y = prev[x]; /* must be unfinished: x was never released */
        x = y;
    }
    uint32_t c0 = pos[x], clen = len - c0, best = 0;
    for (uint32_t i = 1; i < clen; i++)
        if (path[c0 + i] < path[c0 + best]) best = i;
    sbuf sb = {.n = 0};
    char tb[96];
    for (uint32_t i = 0; i <= clen; i++) {
        uint32_t t = path[c0 + (best + i) % clen];
        sb_add(&sb, "%s%s", i ? " -> " : "", tdesc(g, t, 0, tb, sizeof tb));
    }
    uint32_t t0 = path[c0 + best];
    if (sb.full) snprintf(sb.s + sb.n, sizeof sb.s - sb.n, " ...");
    tg_gerr(err, g, g->line[t0],
         "cycle: %s (%u tasks on rank %d; a -> b: a waits for b through after= or stream order)",
         sb.s, (unsigned)clen, (int)g->rank[t0]);
    free(prev), free(pos), free(path);
    return -1;
}

static int check_cycles(tg_graph *g, ms_err *err)
{
    uint32_t n = g->ntasks;
    uint32_t *indeg = malloc(((size_t)n + 1) * sizeof *indeg);
    ustack st = {0};
    if (!indeg) return oom(err, g);
    for (uint32_t t = 0; t < n; t++) indeg[t] = g->dep_off[t + 1] - g->dep_off[t];
    for (uint32_t t = 0; t < n; t++)
        if (g->next_in_stream[t] != TG_NONE) indeg[g->next_in_stream[t]]++;
    uint32_t done = 0;
    int bad = 0;
    for (uint32_t t = 0; t < n; t++)
        if (indeg[t] == 0) bad |= us_push(&st, t);
    while (st.n && !bad) {
        uint32_t t = st.v[--st.n];
        done++;
        for (uint32_t i = g->succ_off[t]; i < g->succ_off[t + 1]; i++)
            if (--indeg[g->succ[i]] == 0) bad |= us_push(&st, g->succ[i]);
        uint32_t nx = g->next_in_stream[t];
        if (nx != TG_NONE && --indeg[nx] == 0) bad |= us_push(&st, nx);
    }
    free(st.v);
    int rc = bad ? oom(err, g) : done == n ? 0 : report_cycle(g, indeg, err);
    free(indeg);
    return rc;
}

/* ---- finalize: xchg pairing ---------------------------------------------------------- */

/* A directed channel: transfers from src to dst on streams called name. */
typedef struct chan_tab {
    uint32_t n, cap, hcap;
    uint32_t *name;
    int32_t *src, *dst;
    uint32_t *ns, *nr; /* sends, receives */
    uint32_t *hash;
} chan_tab;

static void chan_free(chan_tab *c)
{
    free(c->name), free(c->src), free(c->dst), free(c->ns), free(c->nr), free(c->hash);
}

static size_t chan_slot(const chan_tab *c, uint32_t name, int32_t src, int32_t dst)
{
    size_t mask = c->hcap - 1;
    size_t i = (size_t)mix64(((uint64_t)name << 40) ^ ((uint64_t)(uint32_t)src << 20) ^
                             (uint64_t)(uint32_t)dst) &
               mask;
    for (;; i = (i + 1) & mask) {
        uint32_t k = c->hash[i];
        if (k == TG_NONE || (c->name[k] == name && c->src[k] == src && c->dst[k] == dst)) return i;
    }
}

/* Channel id, created when new; TG_NONE when out of memory. */
static uint32_t chan_get(chan_tab *c, uint32_t name, int32_t src, int32_t dst)
{
    if ((size_t)(c->n + 1) * 2 > c->hcap) {
        size_t cap = c->hcap ? (size_t)c->hcap * 2 : 64;
        uint32_t *h = malloc(cap * sizeof *h);
        if (!h) return TG_NONE;
        memset(h, 0xff, cap * sizeof *h);
        free(c->hash);
        c->hash = h;
        c->hcap = (uint32_t)cap;
        for (uint32_t k = 0; k < c->n; k++) h[chan_slot(c, c->name[k], c->src[k], c->dst[k])] = k;
    }
    size_t i = chan_slot(c, name, src, dst);
    if (c->hash[i] != TG_NONE) return c->hash[i];
    if (c->n == c->cap) {
        size_t cap = c->cap ? (size_t)c->cap * 2 : 64;
        void *p;
        if (!(p = realloc(c->name, cap * sizeof *c->name))) return TG_NONE;
        c->name = p;
        if (!(p = realloc(c->src, cap * sizeof *c->src))) return TG_NONE;
        c->src = p;
        if (!(p = realloc(c->dst, cap * sizeof *c->dst))) return TG_NONE;
        c->dst = p;
        if (!(p = realloc(c->ns, cap * sizeof *c->ns))) return TG_NONE;
        c->ns = p;
        if (!(p = realloc(c->nr, cap * sizeof *c->nr))) return TG_NONE;
        c->nr = p;
        c->cap = (uint32_t)cap;
    }
    uint32_t k = c->n++;
    c->name[k] = name, c->src[k] = src, c->dst[k] = dst, c->ns[k] = c->nr[k] = 0;
    c->hash[i] = k;
    return k;
}

static int pair_xfers(tg_graph *g, ms_err *err)
{
    uint32_t n = g->ntasks, nx = g->nxfers;
    if (!(g->xfer_match = malloc((nx ? nx : 1) * sizeof *g->xfer_match)) ||
        !(g->xfer_task = malloc((nx ? nx : 1) * sizeof *g->xfer_task)))
        return oom(err, g);
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) g->xfer_task[x] = t;
    if (nx == 0) return 0;

    chan_tab c = {0};
    uint32_t *chan = g->xfer_match; /* holds channel ids until pairing */
    uint32_t nsends = 0;
    for (uint32_t x = 0; x < nx; x++) {
        uint32_t t = g->xfer_task[x];
        int32_t me = g->rank[t], peer = g->xfer_peer[x];
        int snd = g->xfer_send[x];
        uint32_t k = chan_get(&c, g->stream_name[g->stream[t]], snd ? me : peer, snd ? peer : me);
        if (k == TG_NONE) {
            chan_free(&c);
            return oom(err, g);
        }
        chan[x] = k;
        if (snd) c.ns[k]++, nsends++;
        else c.nr[k]++;
    }
    /* Counting sort: per channel, its sends in order[soff[k]..], receives in order[roff[k]..]. */
    uint32_t *order = malloc((size_t)nx * sizeof *order);
    uint32_t *soff = malloc(((size_t)c.n + 1) * sizeof *soff);
    uint32_t *roff = malloc(((size_t)c.n + 1) * sizeof *roff);
    if (!order || !soff || !roff) {
        free(order), free(soff), free(roff), chan_free(&c);
        return oom(err, g);
    }
    soff[0] = 0, roff[0] = nsends;
    for (uint32_t k = 0; k < c.n; k++) {
        soff[k + 1] = soff[k] + c.ns[k];
        roff[k + 1] = roff[k] + c.nr[k];
    }
    for (uint32_t k = 0; k < c.n; k++) c.ns[k] = soff[k], c.nr[k] = roff[k]; /* cursors */
    for (uint32_t x = 0; x < nx; x++) {
        uint32_t k = chan[x];
        order[g->xfer_send[x] ? c.ns[k]++ : c.nr[k]++] = x;
    }
    /* Pair the i-th send with the i-th receive; remember the earliest problem. */
    uint32_t bad = TG_NONE, bad_k = 0, bad_i = 0, bad_other = TG_NONE;
    for (uint32_t k = 0; k < c.n; k++) {
        uint32_t ns = soff[k + 1] - soff[k], nr = roff[k + 1] - roff[k];
        uint32_t m = ns < nr ? ns : nr;
        for (uint32_t i = 0; i < m; i++) {
            uint32_t s = order[soff[k] + i], r = order[roff[k] + i];
            if (g->xfer_bytes[s] != g->xfer_bytes[r]) {
                uint32_t first = s < r ? s : r;
                if (first < bad) bad = first, bad_k = k, bad_i = i, bad_other = s < r ? r : s;
                break;
            }
            g->xfer_match[s] = r;
            g->xfer_match[r] = s;
        }
        if (ns != nr) {
            uint32_t x = ns > nr ? order[soff[k] + m] : order[roff[k] + m];
            if (x < bad) bad = x, bad_k = k, bad_i = m, bad_other = TG_NONE;
        }
    }
    int rc = 0;
    if (bad != TG_NONE) {
        char tb[96], tb2[96];
        const char *sname = g->str + c.name[bad_k];
        int32_t src = c.src[bad_k], dst = c.dst[bad_k];
        uint32_t ns = soff[bad_k + 1] - soff[bad_k], nr = roff[bad_k + 1] - roff[bad_k];
        uint32_t t = g->xfer_task[bad];
        if (bad_other != TG_NONE) {
            uint32_t s = g->xfer_send[bad] ? bad : bad_other, r = s == bad ? bad_other : bad;
            uint32_t ts = g->xfer_task[s], tr = g->xfer_task[r];
            rc = tg_gerr(err, g, g->line[t],
                      "task %lld: xchg byte counts differ: %s sends %lld bytes to rank %d "
                      "(send #%u from rank %d to rank %d on stream %s) but the matching "
                      "receive in %s expects %lld bytes",
                      (long long)g->id[t], tdesc(g, ts, 1, tb, sizeof tb),
                      (long long)g->xfer_bytes[s], (int)dst, (unsigned)bad_i + 1, (int)src,
                      (int)dst, sname, tdesc(g, tr, 1, tb2, sizeof tb2),
                      (long long)g->xfer_bytes[r]);
        } else {
            int snd = g->xfer_send[bad];
            uint32_t have = snd ? nr : ns;
            char last[160] = "";
            if (have) {
                uint32_t lx = order[(snd ? roff[bad_k] : soff[bad_k]) + have - 1];
                snprintf(last, sizeof last, "; the last one is in %s",
                         tdesc(g, g->xfer_task[lx], 0, tb2, sizeof tb2));
            }
            if (snd)
                rc = tg_gerr(err, g, g->line[t],
                          "task %lld (rank %d): unmatched send: send #%u of %lld bytes from rank "
                          "%d to rank %d on stream %s has no matching receive (rank %d posts %u "
                          "receive%s from rank %d on stream %s%s)",
                          (long long)g->id[t], (int)g->rank[t], (unsigned)bad_i + 1,
                          (long long)g->xfer_bytes[bad], (int)src, (int)dst, sname, (int)dst,
                          (unsigned)have, have == 1 ? "" : "s", (int)src, sname, last);
            else
                rc = tg_gerr(err, g, g->line[t],
                          "task %lld (rank %d): unmatched receive: receive #%u of %lld bytes on "
                          "rank %d from rank %d on stream %s has no matching send (rank %d posts "
                          "%u send%s to rank %d on stream %s%s)",
                          (long long)g->id[t], (int)g->rank[t], (unsigned)bad_i + 1,
                          (long long)g->xfer_bytes[bad], (int)dst, (int)src, sname, (int)src,
                          (unsigned)have, have == 1 ? "" : "s", (int)dst, sname, last);
        }
    }
    free(order), free(soff), free(roff), chan_free(&c);
    return rc;
}

/* ---- finalize: collective instances -------------------------------------------------- */

/* "bytes=8 from=src counts=c per=recv" of m2n task t */
static const char *m2n_desc(const tg_graph *g, uint32_t t, char *buf, size_t len)
{
    const int64_t *a = tg_task_args(g, t);
    snprintf(buf, len, "bytes=%lld from=%s counts=%s per=%s", (long long)a[1],
             g->str + g->group_name[a[2]], g->str + g->vec_name[a[3]],
             a[4] == TG_M2N_PER_SEND ? "send" : "recv");
    return buf;
}

static int form_colls(tg_graph *g, ms_err *err)
{
    uint32_t n = g->ntasks;
    int rc = -1;
    g->ncoll = 0;
    if (!(g->coll_of = malloc(((size_t)n + 1) * sizeof *g->coll_of)) ||
        !(g->coll_off = malloc(sizeof *g->coll_off)))
        return oom(err, g);
    g->coll_off[0] = 0;
    /* Channels (stream name, group): reuse chan_tab with src = group, dst = 0. ns = base
     * of the channel's per-member counters, nr = its instance base. */
    chan_tab c = {0};
    uint32_t *cnt = NULL, *map = NULL, *ref = NULL, *igroup = NULL;
    size_t ncnt = 0, cap_cnt = 0;
    for (uint32_t t = 0; t < n; t++) {
        g->coll_of[t] = TG_NONE;
        if (tg_task_kind(g, t) != TG_KIND_COLL) continue;
        uint32_t gi = (uint32_t)tg_task_args(g, t)[0];
        uint32_t k0 = c.n, k = chan_get(&c, g->stream_name[g->stream[t]], (int32_t)gi, 0);
        if (k == TG_NONE) goto oom;
        uint32_t gsize = g->group_off[gi + 1] - g->group_off[gi];
        if (k == k0) { /* new channel: its counters */
            if (ncnt + gsize > cap_cnt) {
                size_t cap = next_cap(cap_cnt, ncnt + gsize, 256);
                uint32_t *p = realloc(cnt, cap * sizeof *p);
                if (!p) goto oom;
                cnt = p, cap_cnt = cap;
            }
            memset(cnt + ncnt, 0, gsize * sizeof *cnt);
            c.ns[k] = (uint32_t)ncnt;
            ncnt += gsize;
        }
        int64_t pos = member_pos(g, gi, g->rank[t]);
        g->coll_of[t] = cnt[c.ns[k] + (uint32_t)pos]++; /* sequence number for now */
    }
    if (c.n == 0) {
        rc = 0;
        goto out;
    }
    /* Every member of a channel posts the same number of pieces. */
    uint64_t total = 0;
    for (uint32_t k = 0; k < c.n; k++) {
        uint32_t gi = (uint32_t)c.src[k], gsize = g->group_off[gi + 1] - g->group_off[gi];
        const uint32_t *kc = cnt + c.ns[k];
        uint32_t lo = 0, hi = 0;
        for (uint32_t i = 1; i < gsize; i++) {
            if (kc[i] < kc[lo]) lo = i;
            if (kc[i] > kc[hi]) hi = i;
        }
        if (kc[lo] != kc[hi]) {
            int32_t rhi = g->group_ranks[g->group_off[gi] + hi];
            int32_t rlo = g->group_ranks[g->group_off[gi] + lo];
            uint32_t t = 0;
            for (; t < n; t++) /* the piece of rank rhi that rank rlo lacks */
                if (g->coll_of[t] == kc[lo] && g->rank[t] == rhi &&
                    tg_task_kind(g, t) == TG_KIND_COLL &&
                    (uint32_t)tg_task_args(g, t)[0] == gi &&
                    g->stream_name[g->stream[t]] == c.name[k])
                    break;
            const char *sname = g->str + c.name[k], *gname = g->str + g->group_name[gi];
            tg_gerr(err, g, g->line[t],
                 "task %lld (rank %d): collective piece #%u on stream %s, group %s has no "
                 "counterpart on rank %d: rank %d posts %u collective%s on (stream %s, group %s), "
                 "rank %d posts %u; every member must post the same number",
                 (long long)g->id[t], (int)rhi, (unsigned)kc[lo] + 1, sname, gname, (int)rlo,
                 (int)rlo, (unsigned)kc[lo], kc[lo] == 1 ? "" : "s", sname, gname, (int)rhi,
                 (unsigned)kc[hi]);
            goto out;
        }
        c.nr[k] = (uint32_t)total;
        total += kc[0];
    }
    if (total >= TG_NONE) {
        tg_gerr(err, g, 0, "too many collective instances");
        goto out;
    }
    /* Instances numbered in order of first appearance; pieces must agree. */
    uint32_t ni = (uint32_t)total;
    map = malloc(((size_t)ni + 1) * sizeof *map);
    ref = malloc(((size_t)ni + 1) * sizeof *ref);
    igroup = malloc(((size_t)ni + 1) * sizeof *igroup);
    uint32_t *off = realloc(g->coll_off, ((size_t)ni + 1) * sizeof *off);
    if (!map || !ref || !igroup || !off) goto oom;
    g->coll_off = off;
    for (uint32_t i = 0; i < ni; i++) map[i] = TG_NONE;
    uint32_t next = 0;
    uint64_t members = 0;
    for (uint32_t t = 0; t < n; t++) {
        if (g->coll_of[t] == TG_NONE) continue;
        uint32_t gi = (uint32_t)tg_task_args(g, t)[0];
        uint32_t k = c.hash[chan_slot(&c, g->stream_name[g->stream[t]], (int32_t)gi, 0)];
        uint32_t key = c.nr[k] + g->coll_of[t];
        if (map[key] == TG_NONE) {
            map[key] = next;
            ref[next] = t;
            igroup[next] = gi;
            next++;
            members += g->group_off[gi + 1] - g->group_off[gi];
        } else {
            uint32_t r = ref[map[key]];
            if (g->op[r] != g->op[t] || tg_task_args(g, r)[1] != tg_task_args(g, t)[1]) {
                char tb[96];
                tg_gerr(err, g, g->line[t],
                     "task %lld (rank %d): %s of %lld bytes does not match %s: %s of %lld "
                     "bytes; the pieces of collective #%u on stream %s, group %s must agree on "
                     "op and bytes",
                     (long long)g->id[t], (int)g->rank[t], tg_op_get(g->op[t])->name,
                     (long long)tg_task_args(g, t)[1], tdesc(g, r, 1, tb, sizeof tb),
                     tg_op_get(g->op[r])->name, (long long)tg_task_args(g, r)[1],
                     (unsigned)g->coll_of[t] + 1, g->str + c.name[k], g->str + g->group_name[gi]);
                goto out;
            }
            if (g->op[t] == TG_OP_M2N &&
                memcmp(tg_task_args(g, r), tg_task_args(g, t),
                       (size_t)tg_op_get(TG_OP_M2N)->nargs * sizeof *g->arg) != 0) {
                char tb[96], ma[160], mb[160];
                tg_gerr(err, g, g->line[t],
                     "task %lld (rank %d): m2n %s does not match %s: m2n %s; the pieces of "
                     "collective #%u on stream %s, group %s must agree on bytes, from, counts "
                     "and per",
                     (long long)g->id[t], (int)g->rank[t], m2n_desc(g, t, ma, sizeof ma),
                     tdesc(g, r, 1, tb, sizeof tb), m2n_desc(g, r, mb, sizeof mb),
                     (unsigned)g->coll_of[t] + 1, g->str + c.name[k], g->str + g->group_name[gi]);
                goto out;
            }
        }
        g->coll_of[t] = map[key];
    }
    if (members >= TG_NONE) {
        tg_gerr(err, g, 0, "too many collective pieces");
        goto out;
    }
    g->ncoll = ni;
    g->coll_off[0] = 0;
    for (uint32_t i = 0; i < ni; i++)
        g->coll_off[i + 1] = g->coll_off[i] + g->group_off[igroup[i] + 1] - g->group_off[igroup[i]];
    if (!(g->coll_task = malloc(((size_t)members + 1) * sizeof *g->coll_task))) goto oom;
    for (uint32_t t = 0; t < n; t++) {
        uint32_t i = g->coll_of[t];
        if (i == TG_NONE) continue;
        g->coll_task[g->coll_off[i] + (uint32_t)member_pos(g, igroup[i], g->rank[t])] = t;
    }
    rc = 0;
    goto out;
oom:
    oom(err, g);
out:
    free(cnt), free(map), free(ref), free(igroup), chan_free(&c);
    return rc;
}

/* ---- finalize: cross-rank deadlocks -------------------------------------------------- */

/* Nodes 2t = start(t), 2t+1 = end(t), and 2n+i = "every piece of collective instance i
 * has started". "a waits for b" edges: start(t) waits for end(p) of each dep p and of its
 * stream predecessor; end(t) waits for start(t), for start of the peer task of each of its
 * transfers, and for its collective's node, which waits for start of every piece (one
 * node per instance keeps this linear in the group size). */

enum { W_DEP, W_STREAM, W_XCHG, W_COLL, W_SELF };

static int report_deadlock(tg_graph *g, const uint32_t *indeg, ms_err *err)
{
    uint32_t n = g->ntasks, nt = 2 * n, nn = nt + g->ncoll, *prev = stream_prev(g);
    uint32_t *pos = malloc((size_t)nn * sizeof *pos), *path = malloc((size_t)nn * sizeof *path);
    uint8_t *why = malloc((size_t)nn);
    if (!prev || !pos || !path || !why) {
        free(prev), free(pos), free(path), free(why);
        return oom(err, g);
    }
    for (uint32_t v = 0; v < nn; v++) pos[v] = TG_NONE;
    uint32_t v = 0, len = 0;
    while (indeg[v] == 0) v++;
    while (pos[v] == TG_NONE) { /* every unfinished node waits for an unfinished node */
        uint32_t t = v / 2, w = TG_NONE;
        uint8_t k = W_SELF;
        if (v >= nt) {
            uint32_t ci = v - nt;
            for (uint32_t i = g->coll_off[ci]; i < g->coll_off[ci + 1] && w == TG_NONE; i++)
                if (indeg[2 * g->coll_task[i]]) w = 2 * g->coll_task[i], k = W_COLL;
        } else if (v % 2 == 0) {
            for (uint32_t i = g->dep_off[t]; i < g->dep_off[t + 1] && w == TG_NONE; i++)
                if (indeg[2 * g->dep[i] + 1]) w = 2 * g->dep[i] + 1, k = W_DEP;
            if (w == TG_NONE) w = 2 * prev[t] + 1, k = W_STREAM;
        } else {
            if (indeg[2 * t]) w = 2 * t;
            for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1] && w == TG_NONE; x++) {
                uint32_t u = g->xfer_task[g->xfer_match[x]];
                if (indeg[2 * u]) w = 2 * u, k = W_XCHG;
            }
            if (w == TG_NONE) w = nt + g->coll_of[t], k = W_COLL;
        }
        pos[v] = len;
        why[len] = k;
        path[len++] = v;
        v = w;
    }
    /* The cycle, without the collective nodes (an edge through one is a W_COLL edge). */
    uint32_t c0 = pos[v], clen = 0;
    for (uint32_t i = c0; i < len; i++) {
        if (path[i] >= nt) {
            if (clen) why[c0 + clen - 1] = W_COLL;
            else why[len - 1] = W_COLL; /* the edge into it comes from the cycle's end */
            continue;
        }
        path[c0 + clen] = path[i];
        why[c0 + clen] = why[i];
        clen++;
    }
    uint32_t best = TG_NONE;
    for (uint32_t i = 0; i < clen; i++) /* start the story at the earliest task's end node */
        if (path[c0 + i] % 2 == 1 && (best == TG_NONE || path[c0 + i] < path[c0 + best])) best = i;
    sbuf sb = {.n = 0};
    char tb[96];
    uint32_t first = path[c0 + best] / 2, ntask = 0;
    sb_add(&sb, "%s", tdesc(g, first, 1, tb, sizeof tb));
    for (uint32_t i = 0; i < clen; i++) {
        uint32_t a = path[c0 + (best + i) % clen], b = path[c0 + (best + i + 1) % clen];
        uint8_t k = why[c0 + (best + i) % clen];
        if (a / 2 == b / 2) continue;
        ntask++;
        const char *how = k == W_DEP      ? "to finish (after=)"
                          : k == W_STREAM ? "to finish (earlier on its stream)"
                          : k == W_XCHG   ? "to start (xchg rendezvous)"
                                          : "to start (collective rendezvous)";
        sb_add(&sb, "%s waits for %s %s", ntask == 1 ? "" : ", which",
               tdesc(g, b / 2, 1, tb, sizeof tb), how);
    }
    if (sb.full) snprintf(sb.s + sb.n, sizeof sb.s - sb.n, " ...");
    tg_gerr(err, g, g->line[first], "deadlock: %s", sb.s);
    free(prev), free(pos), free(path), free(why);
    return -1;
}

static int check_deadlock(tg_graph *g, ms_err *err)
{
    uint32_t n = g->ntasks, nt = 2 * n, nn = nt + g->ncoll;
    uint32_t *indeg = malloc(((size_t)nn + 1) * sizeof *indeg);
    ustack st = {0};
    if (!indeg) return oom(err, g);
    for (uint32_t t = 0; t < n; t++) {
        indeg[2 * t] = g->dep_off[t + 1] - g->dep_off[t];
        indeg[2 * t + 1] = 1 + (g->xfer_off[t + 1] - g->xfer_off[t]) + (g->coll_of[t] != TG_NONE);
    }
    for (uint32_t i = 0; i < g->ncoll; i++) indeg[nt + i] = g->coll_off[i + 1] - g->coll_off[i];
    for (uint32_t t = 0; t < n; t++)
        if (g->next_in_stream[t] != TG_NONE) indeg[2 * g->next_in_stream[t]]++;
    uint32_t done = 0;
    int bad = 0;
    for (uint32_t t = 0; t < n; t++)
        if (indeg[2 * t] == 0) bad |= us_push(&st, 2 * t);
#define RELEASE(w)                                                                       \
    do {                                                                                 \
        uint32_t w_ = (w);                                                               \
        if (--indeg[w_] == 0) bad |= us_push(&st, w_);                                   \
    } while (0)
    while (st.n && !bad) {
        uint32_t v = st.v[--st.n], t = v / 2;
        done++;
        if (v >= nt) {
            uint32_t ci = v - nt;
            for (uint32_t i = g->coll_off[ci]; i < g->coll_off[ci + 1]; i++)
                RELEASE(2 * g->coll_task[i] + 1);
        } else if (v % 2 == 0) {
            RELEASE(v + 1);
            for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
                RELEASE(2 * g->xfer_task[g->xfer_match[x]] + 1);
            if (g->coll_of[t] != TG_NONE) RELEASE(nt + g->coll_of[t]);
        } else {
            for (uint32_t i = g->succ_off[t]; i < g->succ_off[t + 1]; i++) RELEASE(2 * g->succ[i]);
            if (g->next_in_stream[t] != TG_NONE) RELEASE(2 * g->next_in_stream[t]);
        }
    }
#undef RELEASE
    free(st.v);
    int rc = bad ? oom(err, g) : done == nn ? 0 : report_deadlock(g, indeg, err);
    free(indeg);
    return rc;
}

int tg_graph_finalize(tg_graph *g, ms_err *err)
{
    if (!g) return ms_err_set(err, "tg_graph_finalize: no graph");
    if (g->finalized) return 0;
    if (g->build->failed) return tg_gerr(err, g, 0, "the graph failed validation before");
    g->build->failed = 1; /* until the end */
    if (resolve_pending(g, err)) return -1;
    if (shrink(g) || link_streams(g) || build_succ(g)) return oom(err, g);
    /* The deadlock check's graph holds every dependency and stream edge, so when it passes
     * there is no cycle either; the cycle check (which names the cycle in those terms)
     * runs only when something failed, and its message comes first. */
    if (pair_xfers(g, err) || form_colls(g, err) || check_deadlock(g, err)) {
        ms_err cyc = {{0}};
        if (check_cycles(g, &cyc)) *err = cyc;
        return -1;
    }
    g->build->failed = 0;
    g->finalized = 1;
    return 0;
}

/* ---- comparison ---------------------------------------------------------------------- */

static int str_eq(const tg_graph *a, uint32_t oa, const tg_graph *b, uint32_t ob)
{
    if (oa == TG_NONE || ob == TG_NONE) return oa == ob;
    return strcmp(a->str + oa, b->str + ob) == 0;
}

int tg_graph_diff(const tg_graph *a, const tg_graph *b, ms_err *err)
{
    if (!a || !b) return ms_err_set(err, "no graph");
    if (a->ntasks != b->ntasks)
        return ms_err_set(err, "task count differs: %u vs %u", (unsigned)a->ntasks,
                          (unsigned)b->ntasks);
    if (a->nranks != b->nranks)
        return ms_err_set(err, "rank count differs: %d vs %d", (int)a->nranks, (int)b->nranks);
    if (a->nstreams != b->nstreams)
        return ms_err_set(err, "stream count differs: %u vs %u", (unsigned)a->nstreams,
                          (unsigned)b->nstreams);
    for (uint32_t s = 0; s < a->nstreams; s++)
        if (a->stream_rank[s] != b->stream_rank[s] || a->stream_local[s] != b->stream_local[s] ||
            !str_eq(a, a->stream_name[s], b, b->stream_name[s]))
            return ms_err_set(err, "stream %u differs", (unsigned)s);
    if (a->ngroups != b->ngroups)
        return ms_err_set(err, "group count differs: %u vs %u", (unsigned)a->ngroups,
                          (unsigned)b->ngroups);
    for (uint32_t i = 0; i < a->ngroups; i++) {
        if (!str_eq(a, a->group_name[i], b, b->group_name[i]) ||
            a->group_off[i + 1] != b->group_off[i + 1] ||
            memcmp(a->group_ranks + a->group_off[i], b->group_ranks + b->group_off[i],
                   (a->group_off[i + 1] - a->group_off[i]) * sizeof *a->group_ranks) != 0)
            return ms_err_set(err, "group %u differs", (unsigned)i);
    }
    if (a->nvecs != b->nvecs)
        return ms_err_set(err, "vector count differs: %u vs %u", (unsigned)a->nvecs,
                          (unsigned)b->nvecs);
    for (uint32_t i = 0; i < a->nvecs; i++) {
        if (!str_eq(a, a->vec_name[i], b, b->vec_name[i]) ||
            a->vec_off[i + 1] != b->vec_off[i + 1] ||
            memcmp(a->vec_val + a->vec_off[i], b->vec_val + b->vec_off[i],
                   (a->vec_off[i + 1] - a->vec_off[i]) * sizeof *a->vec_val) != 0)
            return ms_err_set(err, "vector %u (%s) differs", (unsigned)i,
                              a->str + a->vec_name[i]);
    }
    for (uint32_t t = 0; t < a->ntasks; t++) {
        const char *what = NULL;
        if (a->id[t] != b->id[t]) what = "id";
        else if (a->rank[t] != b->rank[t]) what = "rank";
        else if (a->stream[t] != b->stream[t]) what = "stream";
        else if (a->op[t] != b->op[t]) what = "op";
        else if (a->arg_off[t + 1] - a->arg_off[t] != b->arg_off[t + 1] - b->arg_off[t] ||
                 memcmp(tg_task_args(a, t), tg_task_args(b, t),
                        (a->arg_off[t + 1] - a->arg_off[t]) * sizeof *a->arg) != 0)
            what = "args";
        else if (a->dep_off[t + 1] - a->dep_off[t] != b->dep_off[t + 1] - b->dep_off[t] ||
                 memcmp(a->dep + a->dep_off[t], b->dep + b->dep_off[t],
                        (a->dep_off[t + 1] - a->dep_off[t]) * sizeof *a->dep) != 0)
            what = "deps";
        else if (!str_eq(a, a->label[t], b, b->label[t])) what = "label";
        else if (a->xfer_off[t + 1] - a->xfer_off[t] != b->xfer_off[t + 1] - b->xfer_off[t])
            what = "transfer count";
        else
            for (uint32_t i = 0; i < a->xfer_off[t + 1] - a->xfer_off[t] && !what; i++) {
                uint32_t x = a->xfer_off[t] + i, y = b->xfer_off[t] + i;
                if (a->xfer_peer[x] != b->xfer_peer[y] || a->xfer_bytes[x] != b->xfer_bytes[y] ||
                    a->xfer_send[x] != b->xfer_send[y])
                    what = "transfers";
            }
        if (what)
            return ms_err_set(err, "task index %u (id %lld): %s differ", (unsigned)t,
                              (long long)a->id[t], what);
    }
    return 0;
}

/* Opening a cost database: check that the file is ours and of our schema version, load
 * devices, links, runs and every model (with piecewise points) into memory, then answer
 * cost queries by binary search, without SQL. Listings for `moesched db` live here too.
 * Building is in cdb_build.c; schema and rules: docs/COSTDB.md. */
#include "costdb/cdb.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/json.h"

/* ---- features: one row per IR op (mirrors the op table of ir/tg_ops.c) -------------- */

#define ARG_REQUIRED INT64_MIN
#define MAX_ARGS 8

/* The work of each compute op from its args (as doubles, defaults filled in). FLOPs count
 * a multiply-add as 2; bytes are bf16 (2 bytes per element) reads and writes of device
 * memory, each operand once. Formulas and their reading: docs/COSTDB.md, "Features". */
typedef struct feature_op {
    const char *op;
    int nargs;
    const char *arg[MAX_ARGS];
    int64_t dflt[MAX_ARGS]; /* default when omitted, or ARG_REQUIRED */
    int64_t min[MAX_ARGS];  /* smallest allowed value (as in the IR's op table) */
    void (*work)(const double *a, cdb_work *w);
    const char *why_not; /* work == NULL: why the cost DB does not time this op */
} feature_op;

/* gemm m n k count: count products of (m x k)(k x n); A, B read, C written once each. */
static void work_gemm(const double *a, cdb_work *w)
{
    double m = a[0], n = a[1], k = a[2], count = a[3];
    w->flops = 2.0 * m * n * k * count;
    w->bytes = 2.0 * (m * k + k * n + m * n) * count;
}

/* attn b sq skv h hkv dk dv: S = Q K^T (2*sq*skv*dk per head), O = P V (2*sq*skv*dv);
 * fused (flash-style): Q, O of b*sq*h rows and K, V of b*skv*hkv rows move once. */
static void work_attn(const double *a, cdb_work *w)
{
    double b = a[0], sq = a[1], skv = a[2], h = a[3], hkv = a[4], dk = a[5], dv = a[6];
    w->flops = 2.0 * b * h * sq * skv * (dk + dv);
    w->bytes = 2.0 * b * (sq * h + skv * hkv) * (dk + dv);
}

/* ffn tokens experts hidden inter gemms: every token-assignment passes `gemms` GEMMs of
 * hidden x inter; each GEMM reads its weights once per expert and reads/writes the
 * activations (tokens x hidden in or out, tokens x inter out or in). */
static void work_ffn(const double *a, cdb_work *w)
{
    double t = a[0], e = a[1], hid = a[2], in = a[3], g = a[4];
    w->flops = 2.0 * t * hid * in * g;
    w->bytes = 2.0 * g * (e * hid * in + t * (hid + in));
}

/* gate tokens hidden experts: scores = X (tokens x hidden) . W (hidden x experts); the
 * top-k over the scores is not counted (it is O(tokens*experts) and memory-bound). */
static void work_gate(const double *a, cdb_work *w)
{
    double t = a[0], hid = a[1], e = a[2];
    w->flops = 2.0 * t * hid * e;
    w->bytes = 2.0 * (t * hid + hid * e + t * e);
}

#define R ARG_REQUIRED
#define NET "a communication op, timed by the network model"
static const feature_op features[] = {
    {"delay", 0, {0}, {0}, {0}, NULL, "a fixed duration given by the task"},
    {"gemm", 4, {"m", "n", "k", "count"}, {R, R, R, 1}, {1, 1, 1, 1}, work_gemm, NULL},
    {"xchg", 0, {0}, {0}, {0}, NULL, NET},
    {"allreduce", 0, {0}, {0}, {0}, NULL, NET},
    {"allgather", 0, {0}, {0}, {0}, NULL, NET},
    {"reducescatter", 0, {0}, {0}, {0}, NULL, NET},
    {"m2n", 0, {0}, {0}, {0}, NULL, NET},
    {"attn", 7, {"b", "sq", "skv", "h", "hkv", "dk", "dv"}, {R, R, R, R, R, R, R},
     {1, 1, 1, 1, 1, 1, 1}, work_attn, NULL},
    {"ffn", 5, {"tokens", "experts", "hidden", "inter", "gemms"}, {R, R, R, R, 3},
     {0, 1, 1, 1, 1}, work_ffn, NULL},
    {"gate", 3, {"tokens", "hidden", "experts"}, {R, R, R}, {1, 1, 1}, work_gate, NULL},
};
#undef R
#define NFEATURES (sizeof features / sizeof features[0])

static const feature_op *feature_find(const char *op)
{
    for (size_t i = 0; i < NFEATURES; i++)
        if (!strcmp(features[i].op, op)) return &features[i];
    return NULL;
}

/* Checks an op's args, fills in defaults and converts them to doubles in a[]. */
static const feature_op *parse_args(const char *op, const int64_t *args, int nargs, double *a,
                                    ms_err *err)
{
    const feature_op *f = feature_find(op);
    if (!f) {
        char list[256] = "";
        for (size_t i = 0, n = 0; i < NFEATURES; i++)
            if (features[i].work)
                n += snprintf(list + n, n < sizeof list ? sizeof list - n : 0, "%s%s",
                              n ? ", " : "", features[i].op);
        ms_err_set(err, "unknown op '%s' (ops with a cost model: %s)", op, list);
        return NULL;
    }
    if (!f->work) {
        ms_err_set(err, "op '%s' has no cost-DB feature: %s", op, f->why_not);
        return NULL;
    }
    if (nargs > f->nargs || nargs < 0) {
        ms_err_set(err, "op '%s' takes %d args, got %d", op, f->nargs, nargs);
        return NULL;
    }
    for (int i = 0; i < f->nargs; i++) {
        int64_t v;
        if (i < nargs) v = args[i];
        else if (f->dflt[i] != ARG_REQUIRED) v = f->dflt[i];
        else {
            ms_err_set(err, "op '%s': missing arg %s", op, f->arg[i]);
            return NULL;
        }
        if (v < 0) {
            ms_err_set(err, "op '%s': arg %s = %lld is negative", op, f->arg[i], (long long)v);
            return NULL;
        }
        if (v < f->min[i]) {
            ms_err_set(err, "op '%s': arg %s = %lld is below its minimum %lld", op, f->arg[i],
                       (long long)v, (long long)f->min[i]);
            return NULL;
        }
        a[i] = (double)v;
    }
    return f;
}

int cdb_work_of(const char *op, const int64_t *args, int nargs, cdb_work *w, ms_err *err)
{
    double a[MAX_ARGS];
    const feature_op *f = parse_args(op, args, nargs, a, err);
    if (!f) return -1;
    f->work(a, w);
    return 0;
}

int cdb_feature(const char *op, const int64_t *args, int nargs, double *x, ms_err *err)
{
    cdb_work w;
    if (cdb_work_of(op, args, nargs, &w, err)) return -1;
    *x = w.flops;
    return 0;
}

/* ---- the in-memory database -------------------------------------------------------- */

typedef struct dev_rec {
    const char *name, *kind, *source, *note;
    double memory_bytes, peak_flops, mem_bw_bytes_per_s; /* NAN when NULL */
} dev_rec;

typedef struct link_rec {
    const char *name, *source, *note;
    double bw_bytes_per_s, latency_s; /* NAN when NULL */
} link_rec;

typedef struct run_rec {
    int64_t id;
    const char *host, *date, *backend, *versions, *note;
} run_rec;

enum { FORM_LINEAR, FORM_PIECEWISE, FORM_ROOFLINE };

typedef struct model_rec {
    int64_t id, run_id;  /* run_id: -1 when NULL */
    int rank;            /* selection order: 0 measured, 1 paper, 2 datasheet */
    int form;            /* FORM_* */
    double alpha_s, beta_s, x_min, x_max, r2, efficiency; /* as stored, NAN when NULL */
    double eff_max, f_half, bw_eff;                       /* roofline, NAN when NULL */
    const char *note;
    size_t pt_off;       /* piecewise: first point in cdb.px/pt */
    cdb_model_info info; /* what cdb_model returns */
} model_rec;

typedef struct comm_rec {
    int64_t id;
    int rank;
    double r2; /* NAN when NULL */
    cdb_comm_info info;
} comm_rec;

/* Strings live in arena blocks that never move, freed together at close. */
typedef struct block {
    struct block *next;
    size_t used, cap;
    char data[];
} block;

struct cdb {
    char *path;
    block *arena;
    dev_rec *dev; /* sorted by name */
    size_t ndev;
    link_rec *link; /* sorted by name */
    size_t nlink;
    run_rec *run; /* sorted by id */
    size_t nrun;
    model_rec *model; /* sorted by (device, op, rank, id descending) */
    size_t nmodel;
    size_t *best; /* index of the chosen model of each (device, op), in model order */
    size_t nbest;
    double *px, *pt; /* piecewise points: x ascending per model, time_s */
    size_t npts;
    comm_rec *comm; /* sorted by (device, op, ag, eg, rank, id descending) */
    size_t ncomm;
};

static const char *arena_str(cdb *db, const char *s)
{
    if (!s) return NULL;
    size_t len = strlen(s) + 1;
    block *b = db->arena;
    if (!b || b->cap - b->used < len) {
        size_t cap = len > 8192 ? len : 8192;
        b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = db->arena, b->used = 0, b->cap = cap;
        db->arena = b;
    }
    char *p = b->data + b->used;
    memcpy(p, s, len);
    b->used += len;
    return p;
}

/* Makes room for one more element in a growing array. */
static int grow(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arr, ncap * size);
    if (!p) return -1;
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

static int source_rank(const char *s)
{
    return !strcmp(s, "measured") ? 0 : !strcmp(s, "paper") ? 1 : !strcmp(s, "datasheet") ? 2 : 3;
}

/* ---- loading ------------------------------------------------------------------------ */

typedef struct loader {
    cdb *db;
    sqlite3 *h;
    ms_err *err;
    int oom;
    size_t dev_cap, link_cap, run_cap, model_cap, pt_cap, comm_cap; /* capacities */
} loader;

static int sql_error(loader *L)
{
    int code = sqlite3_errcode(L->h) & 0xff;
    if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
        return ms_err_set(L->err, "%s: not a moesched cost database (%s)", L->db->path,
                          sqlite3_errmsg(L->h));
    return ms_err_set(L->err, "%s: %s", L->db->path, sqlite3_errmsg(L->h));
}

static const char *col_str(loader *L, sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    if (!s) return NULL;
    const char *p = arena_str(L->db, s);
    if (!p) L->oom = 1;
    return p;
}

static double col_num(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* Runs a query and hands each row to `row`; returns 0 or -1 with err set. */
static int each_row(loader *L, const char *sql, int (*row)(loader *, sqlite3_stmt *))
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->h, sql, -1, &st, NULL) != SQLITE_OK) return sql_error(L);
    int rc, status = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && !(status = row(L, st)) && !L->oom) {
    }
    if (L->oom) status = ms_err_set(L->err, "%s: out of memory", L->db->path);
    else if (!status && rc != SQLITE_DONE) status = sql_error(L);
    sqlite3_finalize(st);
    return status;
}

static int device_row(loader *L, sqlite3_stmt *st)
{
    cdb *db = L->db;
    if (grow(&db->dev, &L->dev_cap, db->ndev, sizeof *db->dev)) return L->oom = 1, -1;
    dev_rec *d = &db->dev[db->ndev++];
    d->name = col_str(L, st, 0);
    d->kind = col_str(L, st, 1);
    d->memory_bytes = col_num(st, 2);
    d->peak_flops = col_num(st, 3);
    d->mem_bw_bytes_per_s = col_num(st, 4);
    d->source = col_str(L, st, 5);
    d->note = col_str(L, st, 6);
    return 0;
}

static int link_row(loader *L, sqlite3_stmt *st)
{
    cdb *db = L->db;
    if (grow(&db->link, &L->link_cap, db->nlink, sizeof *db->link)) return L->oom = 1, -1;
    link_rec *k = &db->link[db->nlink++];
    k->name = col_str(L, st, 0);
    k->bw_bytes_per_s = col_num(st, 1);
    k->latency_s = col_num(st, 2);
    k->source = col_str(L, st, 3);
    k->note = col_str(L, st, 4);
    return 0;
}

static int run_row(loader *L, sqlite3_stmt *st)
{
    cdb *db = L->db;
    if (grow(&db->run, &L->run_cap, db->nrun, sizeof *db->run)) return L->oom = 1, -1;
    run_rec *r = &db->run[db->nrun++];
    r->id = sqlite3_column_int64(st, 0);
    r->host = col_str(L, st, 1);
    r->date = col_str(L, st, 2);
    r->backend = col_str(L, st, 3);
    r->versions = col_str(L, st, 4);
    r->note = col_str(L, st, 5);
    return 0;
}

static int model_row(loader *L, sqlite3_stmt *st)
{
    cdb *db = L->db;
    if (grow(&db->model, &L->model_cap, db->nmodel, sizeof *db->model)) return L->oom = 1, -1;
    model_rec *m = &db->model[db->nmodel++];
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    m->info.device = col_str(L, st, 1);
    m->info.op = col_str(L, st, 2);
    m->info.form = col_str(L, st, 3);
    m->alpha_s = col_num(st, 4);
    m->beta_s = col_num(st, 5);
    m->x_min = col_num(st, 6);
    m->x_max = col_num(st, 7);
    m->r2 = col_num(st, 8);
    m->run_id = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 9);
    m->info.source = col_str(L, st, 10);
    m->info.citation = col_str(L, st, 11);
    m->efficiency = col_num(st, 12);
    m->note = col_str(L, st, 13);
    m->eff_max = col_num(st, 14);
    m->f_half = col_num(st, 15);
    m->bw_eff = col_num(st, 16);
    if (L->oom) return -1;
    if (!m->info.device || !m->info.op || !m->info.form || !m->info.source)
        return ms_err_set(L->err, "%s: model %lld: device, op, form or source is NULL", db->path,
                          (long long)m->id);
    m->rank = source_rank(m->info.source);
    const char *form = m->info.form;
    if (!strcmp(form, "linear")) m->form = FORM_LINEAR;
    else if (!strcmp(form, "piecewise")) m->form = FORM_PIECEWISE;
    else if (!strcmp(form, "roofline")) m->form = FORM_ROOFLINE;
    else
        return ms_err_set(L->err, "%s: model %lld: unknown form '%s'", db->path,
                          (long long)m->id, form);
    if (m->form == FORM_LINEAR && (isnan(m->alpha_s) || isnan(m->beta_s)))
        return ms_err_set(L->err, "%s: linear model %lld has no alpha_s or beta_s", db->path,
                          (long long)m->id);
    if (m->form == FORM_ROOFLINE &&
        (isnan(m->alpha_s) || !(m->eff_max > 0) || !(m->f_half > 0) || !(m->bw_eff > 0)))
        return ms_err_set(L->err,
                          "%s: roofline model %lld lacks alpha_s, eff_max, f_half_flops or "
                          "bw_eff",
                          db->path, (long long)m->id);
    return 0;
}

static int comm_row(loader *L, sqlite3_stmt *st)
{
    cdb *db = L->db;
    if (grow(&db->comm, &L->comm_cap, db->ncomm, sizeof *db->comm)) return L->oom = 1, -1;
    comm_rec *c = &db->comm[db->ncomm++];
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->info.device = col_str(L, st, 1);
    c->info.op = col_str(L, st, 2);
    c->info.ag = sqlite3_column_int(st, 3);
    c->info.eg = sqlite3_column_int(st, 4);
    c->info.alpha_s = col_num(st, 5);
    c->info.beta_s_per_byte = col_num(st, 6);
    c->r2 = col_num(st, 7);
    c->info.source = col_str(L, st, 8);
    c->info.citation = col_str(L, st, 9);
    c->info.note = col_str(L, st, 10);
    if (L->oom) return -1;
    if (!c->info.device || !c->info.op || !c->info.source || isnan(c->info.alpha_s) ||
        isnan(c->info.beta_s_per_byte))
        return ms_err_set(L->err, "%s: comm_model %lld: a required column is NULL", db->path,
                          (long long)c->id);
    c->rank = source_rank(c->info.source);
    return 0;
}

static int cmp_comm(const void *pa, const void *pb)
{
    const comm_rec *a = pa, *b = pb;
    int c = strcmp(a->info.device, b->info.device);
    if (!c) c = strcmp(a->info.op, b->info.op);
    if (!c) c = a->info.ag - b->info.ag;
    if (!c) c = a->info.eg - b->info.eg;
    if (!c) c = a->rank - b->rank;
    if (!c) c = a->id < b->id ? 1 : a->id > b->id ? -1 : 0;
    return c;
}

/* Loads the points of a piecewise model: mean time per distinct x, x ascending. */
static int load_points(loader *L, sqlite3_stmt *st, model_rec *m)
{
    cdb *db = L->db;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, m->run_id);
    sqlite3_bind_text(st, 2, m->info.device, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->info.op, -1, SQLITE_STATIC);
    m->pt_off = db->npts;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (db->npts == L->pt_cap) {
            size_t cap = L->pt_cap ? 2 * L->pt_cap : 64;
            double *px = realloc(db->px, cap * sizeof *px);
            if (px) db->px = px;
            double *pt = px ? realloc(db->pt, cap * sizeof *pt) : NULL;
            if (!pt) return ms_err_set(L->err, "%s: out of memory", db->path);
            db->pt = pt;
            L->pt_cap = cap;
        }
        db->px[db->npts] = sqlite3_column_double(st, 0);
        db->pt[db->npts] = sqlite3_column_double(st, 1);
        db->npts++;
    }
    if (rc != SQLITE_DONE) return sql_error(L);
    m->info.npoints = (int)(db->npts - m->pt_off);
    if (m->info.npoints == 0)
        return ms_err_set(L->err,
                          "%s: piecewise model %lld ('%s' on '%s') has no measurements in "
                          "calibration run %lld",
                          db->path, (long long)m->id, m->info.op, m->info.device,
                          (long long)m->run_id);
    return 0;
}

static int cmp_model(const void *pa, const void *pb)
{
    const model_rec *a = pa, *b = pb;
    int c = strcmp(a->info.device, b->info.device);
    if (!c) c = strcmp(a->info.op, b->info.op);
    if (!c) c = a->rank - b->rank;
    if (!c) c = a->id < b->id ? 1 : a->id > b->id ? -1 : 0;
    return c;
}

static const dev_rec *find_device(const cdb *db, const char *name);

/* Fills the reported info (alpha/beta/range, roofline figures) once points are loaded and
 * sorted; a roofline model takes its peak and bandwidth from its device. */
static int finish_model(loader *L, model_rec *m)
{
    cdb *db = L->db;
    cdb_model_info *i = &m->info;
    i->alpha_s = isnan(m->alpha_s) ? 0 : m->alpha_s;
    i->beta_s_per_x = isnan(m->beta_s) ? 0 : m->beta_s;
    i->x_min = isnan(m->x_min) ? 0 : m->x_min;
    i->x_max = isnan(m->x_max) ? 0 : m->x_max;
    if (m->form == FORM_PIECEWISE && i->npoints > 0) {
        if (isnan(m->x_min)) i->x_min = db->px[m->pt_off];
        if (isnan(m->x_max)) i->x_max = db->px[m->pt_off + i->npoints - 1];
    }
    if (m->form == FORM_ROOFLINE) {
        const dev_rec *d = find_device(db, i->device);
        if (!d || !(d->peak_flops > 0) || !(d->mem_bw_bytes_per_s > 0))
            return ms_err_set(L->err,
                              "%s: roofline model %lld ('%s' on '%s') needs the device's "
                              "peak_flops and mem_bw_bytes_per_s",
                              db->path, (long long)m->id, i->op, i->device);
        i->eff_max = m->eff_max;
        i->f_half_flops = m->f_half;
        i->bw_eff = m->bw_eff;
        i->peak_flops = d->peak_flops;
        i->mem_bw_bytes_per_s = d->mem_bw_bytes_per_s;
    }
    return 0;
}

/* Checks the file is an SQLite database of our schema version. */
static int check_schema(loader *L)
{
    const char *path = L->db->path;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->h,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'meta'",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_error(L);
    int rc = sqlite3_step(st);
    int has_meta = rc == SQLITE_ROW && sqlite3_column_int(st, 0) > 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return sql_error(L);
    if (!has_meta)
        return ms_err_set(L->err,
                          "%s: not a moesched cost database (no meta table, so no schema "
                          "version; this moesched reads version %d)",
                          path, CDB_SCHEMA_VERSION);
    if (sqlite3_prepare_v2(L->h, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &st,
                           NULL) != SQLITE_OK)
        return sql_error(L);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return sql_error(L);
        return ms_err_set(L->err,
                          "%s: not a moesched cost database (no schema_version in its meta "
                          "table; this moesched reads version %d)",
                          path, CDB_SCHEMA_VERSION);
    }
    char version[64];
    const char *v = (const char *)sqlite3_column_text(st, 0);
    snprintf(version, sizeof version, "%s", v ? v : "NULL");
    sqlite3_finalize(st);
    char want[16];
    snprintf(want, sizeof want, "%d", CDB_SCHEMA_VERSION);
    if (strcmp(version, want))
        return ms_err_set(L->err, "%s: schema version %s, this moesched reads version %d", path,
                          version, CDB_SCHEMA_VERSION);
    return 0;
}

static int load(loader *L)
{
    cdb *db = L->db;
    if (check_schema(L) ||
        each_row(L,
                 "SELECT name, kind, memory_bytes, peak_flops, mem_bw_bytes_per_s, source, "
                 "note FROM device ORDER BY name",
                 device_row) ||
        each_row(L,
                 "SELECT name, bw_bytes_per_s, latency_s, source, note FROM link ORDER BY name",
                 link_row) ||
        each_row(L,
                 "SELECT id, host, date, backend, versions, note FROM calibration_run ORDER "
                 "BY id",
                 run_row) ||
        each_row(L,
                 "SELECT id, device, op, form, alpha_s, beta_s, x_min, x_max, r2, run_id, "
                 "source, citation, efficiency, note, eff_max, f_half_flops, bw_eff FROM model",
                 model_row) ||
        each_row(L,
                 "SELECT id, device, op, ag, eg, alpha_s, beta_s_per_byte, r2, source, "
                 "citation, note FROM comm_model",
                 comm_row))
        return -1;
    for (size_t i = 0; i < db->ndev; i++)
        if (!db->dev[i].name)
            return ms_err_set(L->err, "%s: a device has a NULL name", db->path);
    if (db->nmodel) qsort(db->model, db->nmodel, sizeof *db->model, cmp_model);
    if (db->ncomm) qsort(db->comm, db->ncomm, sizeof *db->comm, cmp_comm);

    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(L->h,
                           "SELECT x, avg(time_s) FROM measurement WHERE run_id = ?1 AND "
                           "device = ?2 AND op = ?3 GROUP BY x ORDER BY x",
                           -1, &st, NULL) != SQLITE_OK)
        return sql_error(L);
    int rc = 0;
    for (size_t i = 0; i < db->nmodel && !rc; i++)
        if (db->model[i].form == FORM_PIECEWISE) rc = load_points(L, st, &db->model[i]);
    sqlite3_finalize(st);
    if (rc) return -1;

    if (db->nmodel && !(db->best = malloc(db->nmodel * sizeof *db->best)))
        return ms_err_set(L->err, "%s: out of memory", db->path);
    for (size_t i = 0; i < db->nmodel; i++) {
        if (finish_model(L, &db->model[i])) return -1;
        const model_rec *m = &db->model[i], *prev = i ? &db->model[i - 1] : NULL;
        if (!prev || strcmp(prev->info.device, m->info.device) || strcmp(prev->info.op, m->info.op))
            db->best[db->nbest++] = i;
    }
    return 0;
}

cdb *cdb_open(const char *path, ms_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        ms_err_set(err, "%s: cannot open cost database: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(sb.st_mode)) {
        ms_err_set(err, "%s: not a moesched cost database (it is a directory)", path);
        return NULL;
    }
    if (sb.st_size == 0) { /* SQLite would take an empty file for an empty database */
        ms_err_set(err, "%s: not a moesched cost database (empty file)", path);
        return NULL;
    }
    cdb *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        ms_err_set(err, "%s: out of memory", path);
        return NULL;
    }
    loader L = {db, NULL, err, 0};
    int rc;
    if (sqlite3_open_v2(path, &L.h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = ms_err_set(err, "%s: cannot open cost database: %s", path,
                        L.h ? sqlite3_errmsg(L.h) : "out of memory");
    } else {
        sqlite3_busy_timeout(L.h, 5000);
        rc = load(&L);
    }
    sqlite3_close(L.h);
    if (rc) {
        cdb_close(db);
        return NULL;
    }
    return db;
}

void cdb_close(cdb *db)
{
    if (!db) return;
    while (db->arena) {
        block *next = db->arena->next;
        free(db->arena);
        db->arena = next;
    }
    free(db->path);
    free(db->dev);
    free(db->link);
    free(db->run);
    free(db->model);
    free(db->best);
    free(db->px);
    free(db->pt);
    free(db->comm);
    free(db);
}

const char *cdb_path(const cdb *db) { return db->path; }

/* ---- queries ------------------------------------------------------------------------ */

static const dev_rec *find_device(const cdb *db, const char *name)
{
    size_t lo = 0, hi = db->ndev;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(db->dev[mid].name, name);
        if (!c) return &db->dev[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int cdb_has_device(const cdb *db, const char *device)
{
    return find_device(db, device) != NULL;
}

int cdb_device_memory(const cdb *db, const char *device, double *bytes, ms_err *err)
{
    const dev_rec *d = find_device(db, device);
    if (!d) return ms_err_set(err, "device '%s' is not in the cost database %s", device, db->path);
    if (!(d->memory_bytes > 0))
        return ms_err_set(err, "device '%s' has no memory_bytes in the cost database %s", device,
                          db->path);
    *bytes = d->memory_bytes;
    return 0;
}

static const model_rec *find_best(const cdb *db, const char *device, const char *op)
{
    size_t lo = 0, hi = db->nbest;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const cdb_model_info *m = &db->model[db->best[mid]].info;
        int c = strcmp(m->device, device);
        if (!c) c = strcmp(m->op, op);
        if (!c) return &db->model[db->best[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const cdb_model_info *cdb_model(const cdb *db, const char *device, const char *op)
{
    const model_rec *m = find_best(db, device, op);
    return m ? &m->info : NULL;
}

/* Appends ", name" to a list in a bounded buffer, ending it with "..." when full. */
static void list_add(char *buf, size_t len, size_t *n, const char *name)
{
    if (*n >= len) return;
    int w = snprintf(buf + *n, len - *n, "%s%s", *n ? ", " : "", name);
    if (w < 0 || (size_t)w >= len - *n) {
        snprintf(buf + (len > 5 ? len - 5 : 0), len > 5 ? 5 : len, " ...");
        *n = len;
    } else {
        *n += (size_t)w;
    }
}

/* Ops that, lacking a model of their own, are costed as GEMMs with the gemm model. */
static int composes(const char *op) { return !strcmp(op, "ffn") || !strcmp(op, "gate"); }

/* The model cdb_time uses: the op's own best model, unless the op composes from gemm and
 * either has no model or only one of a worse source than the device's best gemm model
 * (measured over paper over datasheet across both routes; a tie goes to the op's own). */
static const model_rec *route(const cdb *db, const char *device, const char *op,
                              int *composed)
{
    const model_rec *own = find_best(db, device, op);
    *composed = 0;
    if (!composes(op)) return own;
    const model_rec *g = find_best(db, device, "gemm");
    if (g && (!own || g->rank < own->rank)) {
        *composed = 1;
        return g;
    }
    return own;
}

const cdb_model_info *cdb_model_used(const cdb *db, const char *device, const char *op,
                                     int *composed)
{
    int c;
    const model_rec *m = route(db, device, op, &c);
    if (composed) *composed = m ? c : 0;
    return m ? &m->info : NULL;
}

static int no_model(const cdb *db, const char *device, const char *op, ms_err *err)
{
    char list[600] = "";
    size_t n = 0;
    if (!find_device(db, device)) {
        for (size_t i = 0; i < db->ndev; i++) list_add(list, sizeof list, &n, db->dev[i].name);
        return ms_err_set(err, "unknown device '%s' in %s (known devices: %s)", device, db->path,
                          n ? list : "none");
    }
    for (size_t i = 0; i < db->ndev; i++) {
        int c;
        if (route(db, db->dev[i].name, op, &c)) list_add(list, sizeof list, &n, db->dev[i].name);
    }
    const char *how = composes(op) ? ", nor a 'gemm' model to compose it from" : "";
    if (!n)
        return ms_err_set(err,
                          "no cost model for op '%s' on device '%s' in %s%s (no device has a "
                          "'%s' model)",
                          op, device, db->path, how, op);
    return ms_err_set(err,
                      "no cost model for op '%s' on device '%s' in %s%s (devices with a '%s' "
                      "model%s: %s)",
                      op, device, db->path, how, op, composes(op) ? " or a 'gemm' model" : "",
                      list);
}

/* Piecewise-linear through (px, pt), extrapolated along the end segments; one point:
 * proportional to x (t0·x/x0), or constant when x0 = 0. */
static double piecewise(const double *px, const double *pt, int n, double x)
{
    if (n == 1) return px[0] > 0 ? pt[0] * x / px[0] : pt[0];
    int lo = 0, hi = n - 1; /* find the segment [lo, lo+1] holding x, clamped to the ends */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (px[mid] <= x) lo = mid;
        else hi = mid;
    }
    return pt[lo] + (pt[lo + 1] - pt[lo]) * (x - px[lo]) / (px[lo + 1] - px[lo]);
}

/* One model evaluated on some work, clamped at 0. Roofline: the compute time
 * F/(peak·eff(F)) with eff(F) = eff_max·F/(F + f_half) is written as the equal
 * (F + f_half)/(peak·eff_max), which is defined at F = 0 too (where it is 0: no work). */
static double model_time(const cdb *db, const model_rec *m, const cdb_work *w)
{
    double t;
    switch (m->form) {
    case FORM_PIECEWISE:
        t = piecewise(db->px + m->pt_off, db->pt + m->pt_off, m->info.npoints, w->flops);
        break;
    case FORM_ROOFLINE: {
        const cdb_model_info *i = &m->info;
        double compute = w->flops > 0 ? (w->flops + i->f_half_flops) / (i->peak_flops * i->eff_max)
                                      : 0;
        double memory = w->bytes / (i->mem_bw_bytes_per_s * i->bw_eff);
        t = m->alpha_s + (compute > memory ? compute : memory);
        break;
    }
    default: t = m->alpha_s + m->beta_s * w->flops; break;
    }
    return t > 0 ? t : 0;
}

int cdb_time(const cdb *db, const char *device, const char *op, const int64_t *args,
             int nargs, double *seconds, ms_err *err)
{
    double a[MAX_ARGS];
    const feature_op *f = parse_args(op, args, nargs, a, err);
    if (!f) return -1;
    int composed;
    const model_rec *m = route(db, device, op, &composed);
    if (!m) return no_model(db, device, op, err);
    cdb_work w;
    if (!strcmp(op, "ffn") && a[0] == 0) { /* no tokens: no work, no launches */
        *seconds = 0;
        return 0;
    }
    if (!composed) {
        f->work(a, &w);
        *seconds = model_time(db, m, &w);
    } else if (!strcmp(op, "ffn")) {
        /* gemms x experts GEMMs of the per-expert shape: m = tokens/experts (a mean, so
         * possibly fractional), n = inter, k = hidden */
        double g[4] = {a[0] / a[1], a[3], a[2], 1};
        work_gemm(g, &w);
        *seconds = a[4] * a[1] * model_time(db, m, &w);
    } else { /* gate: one GEMM m = tokens, n = experts, k = hidden */
        double g[4] = {a[0], a[2], a[1], 1};
        work_gemm(g, &w);
        *seconds = model_time(db, m, &w);
    }
    return 0;
}

/* ---- communication fits ------------------------------------------------------------- */

size_t cdb_comm_count(const cdb *db) { return db->ncomm; }

const cdb_comm_info *cdb_comm_get(const cdb *db, size_t i)
{
    return i < db->ncomm ? &db->comm[i].info : NULL;
}

const cdb_comm_info *cdb_comm_find(const cdb *db, const char *device, const char *op, int ag,
                                   int eg)
{
    /* sorted by (device, op, ag, eg, rank, id descending): the first match is the best */
    for (size_t i = 0; i < db->ncomm; i++) {
        const cdb_comm_info *c = &db->comm[i].info;
        if (!strcmp(c->device, device) && !strcmp(c->op, op) && c->ag == ag && c->eg == eg)
            return c;
    }
    return NULL;
}

/* ---- listings ----------------------------------------------------------------------- */

#define TBL_COLS 12

/* An aligned text table: cells are added row by row, widths computed when printed. */
typedef struct table {
    int ncols;
    size_t width[TBL_COLS];
    char **cell;
    size_t n, cap;
} table;

static void tbl_cell(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tbl_cell(table *t, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (grow(&t->cell, &t->cap, t->n, sizeof *t->cell)) return;
    char *s = strdup(buf);
    if (!s) return;
    size_t len = strlen(s), col = t->n % (size_t)t->ncols;
    if (len > t->width[col]) t->width[col] = len;
    t->cell[t->n++] = s;
}

static void tbl_print(table *t, FILE *f)
{
    for (size_t i = 0; i < t->n; i++) {
        size_t col = i % (size_t)t->ncols;
        int last = col == (size_t)t->ncols - 1 || i == t->n - 1;
        fprintf(f, "  %-*s%s", last ? 0 : (int)t->width[col], t->cell[i],
                last ? "\n" : "");
        free(t->cell[i]);
    }
    free(t->cell);
}

/* Number with an SI prefix ("989 TFLOP/s"), or "-" when unknown. */
static const char *si(char *buf, size_t len, double v, const char *unit)
{
    static const char *const prefix[] = {"", "k", "M", "G", "T", "P", "E"};
    if (isnan(v)) return "-";
    int p = 0;
    while (p < 6 && fabs(v) >= 1000) v /= 1000, p++;
    snprintf(buf, len, "%.4g %s%s", v, prefix[p], unit);
    return buf;
}

/* Seconds in a readable unit ("5 us"), or "-". */
static const char *secs(char *buf, size_t len, double v)
{
    if (isnan(v)) return "-";
    if (v != 0 && fabs(v) < 1e-3) snprintf(buf, len, "%.4g us", v * 1e6);
    else if (v != 0 && fabs(v) < 1) snprintf(buf, len, "%.4g ms", v * 1e3);
    else snprintf(buf, len, "%.4g s", v);
    return buf;
}

static const char *str_or(const char *s, const char *dflt) { return s && *s ? s : dflt; }

static int is_best(const cdb *db, size_t i)
{
    const model_rec *m = &db->model[i];
    return find_best(db, m->info.device, m->info.op) == m;
}

static const char *x_unit(const char *op)
{
    const feature_op *f = feature_find(op);
    return f && f->work ? "FLOP" : "x";
}

void cdb_print(const cdb *db, FILE *f)
{
    char a[64], b[64], c[64];
    fprintf(f, "cost database %s (schema version %d)\n\n", db->path, CDB_SCHEMA_VERSION);

    fprintf(f, "devices (%zu)\n", db->ndev);
    table t = {.ncols = 7};
    const char *dh[] = {"name", "kind", "memory", "peak", "mem bw", "source", "note"};
    for (int i = 0; i < 7; i++) tbl_cell(&t, "%s", dh[i]);
    for (size_t i = 0; i < db->ndev; i++) {
        const dev_rec *d = &db->dev[i];
        tbl_cell(&t, "%s", d->name);
        tbl_cell(&t, "%s", str_or(d->kind, "-"));
        tbl_cell(&t, "%s", si(a, sizeof a, d->memory_bytes, "B"));
        tbl_cell(&t, "%s", si(b, sizeof b, d->peak_flops, "FLOP/s"));
        tbl_cell(&t, "%s", si(c, sizeof c, d->mem_bw_bytes_per_s, "B/s"));
        tbl_cell(&t, "%s", str_or(d->source, "-"));
        tbl_cell(&t, "%s", str_or(d->note, ""));
    }
    tbl_print(&t, f);

    fprintf(f, "\nlinks (%zu)\n", db->nlink);
    t = (table){.ncols = 5};
    const char *lh[] = {"name", "bandwidth", "latency", "source", "note"};
    for (int i = 0; i < 5; i++) tbl_cell(&t, "%s", lh[i]);
    for (size_t i = 0; i < db->nlink; i++) {
        const link_rec *k = &db->link[i];
        tbl_cell(&t, "%s", k->name);
        tbl_cell(&t, "%s", si(a, sizeof a, k->bw_bytes_per_s, "B/s"));
        tbl_cell(&t, "%s", secs(b, sizeof b, k->latency_s));
        tbl_cell(&t, "%s", str_or(k->source, "-"));
        tbl_cell(&t, "%s", str_or(k->note, ""));
    }
    tbl_print(&t, f);

    if (db->nrun) {
        fprintf(f, "\ncalibration runs (%zu)\n", db->nrun);
        t = (table){.ncols = 6};
        const char *rh[] = {"id", "host", "date", "backend", "versions", "note"};
        for (int i = 0; i < 6; i++) tbl_cell(&t, "%s", rh[i]);
        for (size_t i = 0; i < db->nrun; i++) {
            const run_rec *r = &db->run[i];
            tbl_cell(&t, "%lld", (long long)r->id);
            tbl_cell(&t, "%s", str_or(r->host, "-"));
            tbl_cell(&t, "%s", str_or(r->date, "-"));
            tbl_cell(&t, "%s", str_or(r->backend, "-"));
            tbl_cell(&t, "%s", str_or(r->versions, "-"));
            tbl_cell(&t, "%s", str_or(r->note, ""));
        }
        tbl_print(&t, f);
    }

    fprintf(f, "\nmodels (%zu; * = the one used for its device and op)\n", db->nmodel);
    t = (table){.ncols = 10};
    const char *mh[] = {"", "id", "device", "op", "form", "alpha", "parameters",
                        "x range", "source", "provenance"};
    for (int i = 0; i < 10; i++) tbl_cell(&t, "%s", mh[i]);
    for (size_t i = 0; i < db->nmodel; i++) {
        const model_rec *m = &db->model[i];
        const cdb_model_info *info = &m->info;
        int pw = info->npoints > 0;
        tbl_cell(&t, "%s", is_best(db, i) ? "*" : "");
        tbl_cell(&t, "%lld", (long long)m->id);
        tbl_cell(&t, "%s", info->device);
        tbl_cell(&t, "%s", info->op);
        if (pw) tbl_cell(&t, "piecewise (%d pt%s)", info->npoints, info->npoints == 1 ? "" : "s");
        else tbl_cell(&t, "%s", info->form);
        tbl_cell(&t, "%s", pw ? "-" : secs(a, sizeof a, m->alpha_s));
        if (m->form == FORM_ROOFLINE)
            tbl_cell(&t, "eff %.3g x F/(F + %s) of %s; %.3g of %s", m->eff_max,
                     si(a, sizeof a, m->f_half, "FLOP"),
                     si(b, sizeof b, info->peak_flops, "FLOP/s"), m->bw_eff,
                     si(c, sizeof c, info->mem_bw_bytes_per_s, "B/s"));
        else if (pw || isnan(m->beta_s)) tbl_cell(&t, "-");
        else tbl_cell(&t, "beta %.4g s per %s", m->beta_s, x_unit(info->op));
        if (info->x_min == 0 && info->x_max == 0) tbl_cell(&t, "-");
        else tbl_cell(&t, "%.3g..%.3g %s", info->x_min, info->x_max, x_unit(info->op));
        tbl_cell(&t, "%s", info->source);
        char prov[512];
        size_t n = 0;
        prov[0] = '\0';
        if (info->citation) n += snprintf(prov + n, sizeof prov - n, "%s", info->citation);
        if (m->run_id >= 0 && n < sizeof prov)
            n += snprintf(prov + n, sizeof prov - n, "%srun %lld", n ? "; " : "",
                          (long long)m->run_id);
        if (!isnan(m->efficiency) && n < sizeof prov)
            n += snprintf(prov + n, sizeof prov - n, "%sefficiency %.3g", n ? "; " : "",
                          m->efficiency);
        if (!isnan(m->r2) && n < sizeof prov)
            n += snprintf(prov + n, sizeof prov - n, "%sR2 %.4g", n ? "; " : "", m->r2);
        if (m->note && n < sizeof prov)
            snprintf(prov + n, sizeof prov - n, "%s%s", n ? "; " : "", m->note);
        tbl_cell(&t, "%s", prov);
    }
    tbl_print(&t, f);

    /* ffn and gate costed from a gemm model, per device */
    t = (table){.ncols = 4};
    const char *ch[] = {"device", "ops", "from gemm model", "source"};
    for (int i = 0; i < 4; i++) tbl_cell(&t, "%s", ch[i]);
    size_t ncomposed = 0;
    for (size_t i = 0; i < db->ndev; i++) {
        static const char *const ops[] = {"ffn", "gate"};
        char list[32] = "";
        size_t n = 0;
        const model_rec *g = NULL;
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            int composed;
            const model_rec *m = route(db, db->dev[i].name, ops[k], &composed);
            if (m && composed) list_add(list, sizeof list, &n, ops[k]), g = m;
        }
        if (!g) continue;
        ncomposed++;
        tbl_cell(&t, "%s", db->dev[i].name);
        tbl_cell(&t, "%s", list);
        tbl_cell(&t, "%lld (%s)", (long long)g->id, g->info.form);
        tbl_cell(&t, "%s", g->info.source);
    }
    if (ncomposed) {
        fprintf(f, "\ncomposed costs (%zu devices; ffn = gemms x experts GEMMs of m = "
                   "tokens/experts, gate = one GEMM; docs/COSTDB.md)\n",
                ncomposed);
        tbl_print(&t, f);
    } else {
        for (size_t i = 0; i < t.n; i++) free(t.cell[i]);
        free(t.cell);
    }

    if (db->ncomm) {
        fprintf(f, "\ncommunication fits (%zu; t = alpha + beta x bytes)\n", db->ncomm);
        t = (table){.ncols = 8};
        const char *kh[] = {"id", "device", "op", "ag/eg", "alpha", "beta",
                            "source", "provenance"};
        for (int i = 0; i < 8; i++) tbl_cell(&t, "%s", kh[i]);
        for (size_t i = 0; i < db->ncomm; i++) {
            const comm_rec *r = &db->comm[i];
            const cdb_comm_info *k = &r->info;
            tbl_cell(&t, "%lld", (long long)r->id);
            tbl_cell(&t, "%s", k->device);
            tbl_cell(&t, "%s", k->op);
            if (k->ag || k->eg) tbl_cell(&t, "%d/%d", k->ag, k->eg);
            else tbl_cell(&t, "-");
            tbl_cell(&t, "%s", secs(a, sizeof a, k->alpha_s));
            if (k->beta_s_per_byte > 0)
                tbl_cell(&t, "%.4g s/B (%s)", k->beta_s_per_byte,
                         si(b, sizeof b, 1 / k->beta_s_per_byte, "B/s"));
            else tbl_cell(&t, "%.4g s/B", k->beta_s_per_byte);
            tbl_cell(&t, "%s", k->source);
            char prov[512];
            size_t n = 0;
            prov[0] = '\0';
            if (k->citation) n += snprintf(prov + n, sizeof prov - n, "%s", k->citation);
            if (!isnan(r->r2) && n < sizeof prov)
                n += snprintf(prov + n, sizeof prov - n, "%sR2 %.4g", n ? "; " : "", r->r2);
            if (k->note && n < sizeof prov)
                snprintf(prov + n, sizeof prov - n, "%s%s", n ? "; " : "", k->note);
            tbl_cell(&t, "%s", prov);
        }
        tbl_print(&t, f);
    }
}

void cdb_print_json(const cdb *db, FILE *f)
{
    ms_json j;
    ms_json_init(&j, f);
    ms_json_obj_begin(&j);
    ms_json_kstr(&j, "path", db->path);
    ms_json_kint(&j, "schema_version", CDB_SCHEMA_VERSION);

    ms_json_key(&j, "devices");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->ndev; i++) {
        const dev_rec *d = &db->dev[i];
        ms_json_obj_begin(&j);
        ms_json_kstr(&j, "name", d->name);
        ms_json_kstr(&j, "kind", d->kind);
        ms_json_knum(&j, "memory_bytes", d->memory_bytes);
        ms_json_knum(&j, "peak_flops", d->peak_flops);
        ms_json_knum(&j, "mem_bw_bytes_per_s", d->mem_bw_bytes_per_s);
        ms_json_kstr(&j, "source", d->source);
        ms_json_kstr(&j, "note", d->note);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);

    ms_json_key(&j, "links");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->nlink; i++) {
        const link_rec *k = &db->link[i];
        ms_json_obj_begin(&j);
        ms_json_kstr(&j, "name", k->name);
        ms_json_knum(&j, "bw_bytes_per_s", k->bw_bytes_per_s);
        ms_json_knum(&j, "latency_s", k->latency_s);
        ms_json_kstr(&j, "source", k->source);
        ms_json_kstr(&j, "note", k->note);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);

    ms_json_key(&j, "calibration_runs");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->nrun; i++) {
        const run_rec *r = &db->run[i];
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "id", r->id);
        ms_json_kstr(&j, "host", r->host);
        ms_json_kstr(&j, "date", r->date);
        ms_json_kstr(&j, "backend", r->backend);
        ms_json_kstr(&j, "versions", r->versions);
        ms_json_kstr(&j, "note", r->note);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);

    ms_json_key(&j, "models");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->nmodel; i++) {
        const model_rec *m = &db->model[i];
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "id", m->id);
        ms_json_kstr(&j, "device", m->info.device);
        ms_json_kstr(&j, "op", m->info.op);
        ms_json_kstr(&j, "form", m->info.form);
        ms_json_key(&j, "selected");
        ms_json_bool(&j, is_best(db, i));
        ms_json_kstr(&j, "x_unit", x_unit(m->info.op));
        ms_json_knum(&j, "alpha_s", m->alpha_s);
        ms_json_knum(&j, "beta_s", m->beta_s);
        ms_json_knum(&j, "x_min", m->x_min);
        ms_json_knum(&j, "x_max", m->x_max);
        ms_json_knum(&j, "r2", m->r2);
        ms_json_key(&j, "run_id");
        if (m->run_id >= 0) ms_json_int(&j, m->run_id);
        else ms_json_str(&j, NULL);
        ms_json_kstr(&j, "source", m->info.source);
        ms_json_kstr(&j, "citation", m->info.citation);
        ms_json_knum(&j, "efficiency", m->efficiency);
        ms_json_knum(&j, "eff_max", m->eff_max);
        ms_json_knum(&j, "f_half_flops", m->f_half);
        ms_json_knum(&j, "bw_eff", m->bw_eff);
        ms_json_kstr(&j, "note", m->note);
        if (m->info.npoints) {
            ms_json_key(&j, "points");
            ms_json_arr_begin(&j);
            for (int p = 0; p < m->info.npoints; p++) {
                ms_json_arr_begin(&j);
                ms_json_num(&j, db->px[m->pt_off + p]);
                ms_json_num(&j, db->pt[m->pt_off + p]);
                ms_json_arr_end(&j);
            }
            ms_json_arr_end(&j);
        }
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);

    /* ffn and gate without a model of their own: which gemm model costs them */
    ms_json_key(&j, "composed");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->ndev; i++) {
        static const char *const ops[] = {"ffn", "gate"};
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            int composed;
            const model_rec *m = route(db, db->dev[i].name, ops[k], &composed);
            if (!m || !composed) continue;
            ms_json_obj_begin(&j);
            ms_json_kstr(&j, "device", db->dev[i].name);
            ms_json_kstr(&j, "op", ops[k]);
            ms_json_kint(&j, "gemm_model_id", m->id);
            ms_json_obj_end(&j);
        }
    }
    ms_json_arr_end(&j);

    ms_json_key(&j, "comm_models");
    ms_json_arr_begin(&j);
    for (size_t i = 0; i < db->ncomm; i++) {
        const comm_rec *r = &db->comm[i];
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "id", r->id);
        ms_json_kstr(&j, "device", r->info.device);
        ms_json_kstr(&j, "op", r->info.op);
        ms_json_key(&j, "ag");
        if (r->info.ag) ms_json_int(&j, r->info.ag);
        else ms_json_str(&j, NULL);
        ms_json_key(&j, "eg");
        if (r->info.eg) ms_json_int(&j, r->info.eg);
        else ms_json_str(&j, NULL);
        ms_json_knum(&j, "alpha_s", r->info.alpha_s);
        ms_json_knum(&j, "beta_s_per_byte", r->info.beta_s_per_byte);
        ms_json_knum(&j, "r2", r->r2);
        ms_json_kstr(&j, "source", r->info.source);
        ms_json_kstr(&j, "citation", r->info.citation);
        ms_json_kstr(&j, "note", r->info.note);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);
    ms_json_obj_end(&j);
    fputc('\n', f);
}

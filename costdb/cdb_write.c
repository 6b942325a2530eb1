/* Writing calibration results into a cost database, all at once or not at all: the file is
 * copied (or, when missing, built from the schema and seed profiles) to "<path>.wtmp", the
 * rows go in there inside one transaction, and only a commit renames the copy over path.
 * Used by `moesched calibrate`; rules and schema: docs/COSTDB.md, docs/CALIBRATION.md. */
#include "costdb/cdb.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cdb_writer {
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    sqlite3 *h;
};

/* Copies src to dst (created or truncated) and flushes it to disk. */
static int copy_file(const char *src, const char *dst, ms_err *err)
{
    int in = open(src, O_RDONLY);
    if (in < 0) return ms_err_set(err, "%s: cannot read: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return ms_err_set(err, "%s: cannot create: %s", dst, strerror(e));
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = ms_err_set(err, "%s: read error: %s", src, strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                rc = ms_err_set(err, "%s: write error: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (rc) break;
    }
    if (!rc && fsync(out) != 0) rc = ms_err_set(err, "%s: fsync: %s", dst, strerror(errno));
    close(in);
    if (close(out) != 0 && !rc) rc = ms_err_set(err, "%s: close: %s", dst, strerror(errno));
    return rc;
}

static int exec_sql(cdb_writer *w, const char *sql, ms_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(w->h, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    ms_err_set(err, "%s: %s", w->path, msg ? msg : sqlite3_errmsg(w->h));
    sqlite3_free(msg);
    return -1;
}

cdb_writer *cdb_writer_begin(const char *path, const char *const *seed_files, int nseed,
                             ms_err *err)
{
    cdb_writer *w = calloc(1, sizeof *w);
    if (!w) {
        ms_err_set(err, "%s: out of memory", path);
        return NULL;
    }
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path ||
        snprintf(w->tmp, sizeof w->tmp, "%s.wtmp", path) >= (int)sizeof w->tmp) {
        ms_err_set(err, "%s: path too long", path);
        free(w);
        return NULL;
    }
    cdb_remove_tmp(w->tmp); /* left by a run killed while writing */
    struct stat sb;
    if (stat(path, &sb) == 0) {
        cdb *db = cdb_open(path, err); /* refuses anything that is not one of ours */
        if (!db) goto fail;
        cdb_close(db);
        if (copy_file(path, w->tmp, err)) goto fail;
    } else if (errno == ENOENT) {
        if (cdb_build(w->tmp, seed_files, nseed, err)) goto fail;
    } else {
        ms_err_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (sqlite3_open_v2(w->tmp, &w->h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        ms_err_set(err, "%s: cannot open: %s", w->tmp, w->h ? sqlite3_errmsg(w->h) : "no memory");
        goto fail;
    }
    if (exec_sql(w, "PRAGMA foreign_keys = ON; BEGIN IMMEDIATE;", err)) goto fail;
    return w;
fail:
    sqlite3_close(w->h);
    cdb_remove_tmp(w->tmp);
    free(w);
    return NULL;
}

const char *cdb_writer_tmp_path(const cdb_writer *w) { return w->tmp; }

/* One statement parameter; a NULL string or a NaN number binds SQL NULL. */
typedef struct sql_val {
    enum { V_STR, V_NUM, V_INT } kind;
    const char *s;
    double d;
    int64_t i;
} sql_val;
#define STR(x) {V_STR, .s = (x)}
#define NUM(x) {V_NUM, .d = (x)}
#define INT(x) {V_INT, .i = (x)}
#define NVALS(v) ((int)(sizeof(v) / sizeof(v)[0]))

/* Prepares sql and binds v[0..n) to ?1..?n. */
static int prepare(cdb_writer *w, const char *sql, const sql_val *v, int n, sqlite3_stmt **out,
                   ms_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(w->h, sql, -1, &st, NULL) != SQLITE_OK)
        return ms_err_set(err, "%s: %s", w->path, sqlite3_errmsg(w->h));
    for (int i = 0; i < n; i++) {
        if (v[i].kind == V_INT) sqlite3_bind_int64(st, i + 1, v[i].i);
        else if (v[i].kind == V_NUM && !isnan(v[i].d)) sqlite3_bind_double(st, i + 1, v[i].d);
        else if (v[i].kind == V_STR && v[i].s)
            sqlite3_bind_text(st, i + 1, v[i].s, -1, SQLITE_TRANSIENT);
        else sqlite3_bind_null(st, i + 1);
    }
    *out = st;
    return 0;
}

/* Runs one writing statement with parameters v; what names the row in the error. */
static int write_row(cdb_writer *w, const char *what, const char *sql, const sql_val *v, int n,
                     ms_err *err)
{
    sqlite3_stmt *st;
    if (prepare(w, sql, v, n, &st, err)) return -1;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ms_err_set(err, "%s: writing %s: %s", w->path, what, sqlite3_errmsg(w->h));
    return 0;
}

int cdb_writer_run(cdb_writer *w, const cdb_run_row *r, int64_t *run_id, ms_err *err)
{
    sql_val v[] = {STR(r->host), STR(r->date), STR(r->backend), STR(r->versions), STR(r->note)};
    if (write_row(w, "the calibration run",
                  "INSERT INTO calibration_run (host, date, backend, versions, note) VALUES "
                  "(?1, ?2, ?3, ?4, ?5)",
                  v, NVALS(v), err))
        return -1;
    *run_id = sqlite3_last_insert_rowid(w->h);
    return 0;
}

int cdb_writer_device(cdb_writer *w, const char *name, const char *kind, const char *note,
                      ms_err *err)
{
    sql_val v[] = {STR(name), STR(kind), STR(note)};
    return write_row(w, "the device",
                     "INSERT OR IGNORE INTO device (name, kind, source, note) VALUES "
                     "(?1, ?2, 'measured', ?3)",
                     v, NVALS(v), err);
}

int cdb_writer_measurement(cdb_writer *w, int64_t run_id, const cdb_measurement_row *m,
                           ms_err *err)
{
    sql_val v[] = {INT(run_id), STR(m->device), STR(m->op),     STR(m->shape),
                   NUM(m->x),   NUM(m->time_s), INT(m->trials), NUM(m->bytes)};
    return write_row(w, "a measurement",
                     "INSERT INTO measurement (run_id, device, op, shape, x, time_s, trials, "
                     "bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                     v, NVALS(v), err);
}

int cdb_writer_model(cdb_writer *w, int64_t run_id, const cdb_model_row *m, int64_t *id,
                     ms_err *err)
{
    /* each form fills its own columns; the others stay NULL */
    int linear = !strcmp(m->form, "linear"), roof = !strcmp(m->form, "roofline");
    sql_val v[] = {STR(m->device),
                   STR(m->op),
                   STR(m->form),
                   NUM(linear || roof ? m->alpha_s : NAN),
                   NUM(linear ? m->beta_s : NAN),
                   NUM(m->x_min),
                   NUM(m->x_max),
                   NUM(m->r2),
                   INT(run_id),
                   STR(m->note),
                   NUM(roof ? m->eff_max : NAN),
                   NUM(roof ? m->f_half_flops : NAN),
                   NUM(roof ? m->bw_eff : NAN)};
    if (write_row(w, "a model",
                  "INSERT INTO model (device, op, form, alpha_s, beta_s, x_min, x_max, r2, "
                  "run_id, source, note, eff_max, f_half_flops, bw_eff) VALUES (?1, ?2, ?3, "
                  "?4, ?5, ?6, ?7, ?8, ?9, 'measured', ?10, ?11, ?12, ?13)",
                  v, NVALS(v), err))
        return -1;
    if (id) *id = sqlite3_last_insert_rowid(w->h);
    return 0;
}

int cdb_writer_comm(cdb_writer *w, int64_t run_id, const cdb_comm_row *c, ms_err *err)
{
    sql_val v[] = {STR(c->device), STR(c->op),  NUM(c->alpha_s), NUM(c->beta_s_per_byte),
                   NUM(c->r2),     INT(run_id), STR(c->note)};
    return write_row(w, "a communication fit",
                     "INSERT INTO comm_model (device, op, alpha_s, beta_s_per_byte, r2, run_id, "
                     "source, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'measured', ?7)",
                     v, NVALS(v), err);
}

int cdb_writer_device_figures(cdb_writer *w, const char *name, double peak_flops,
                              double mem_bw_bytes_per_s, const char *note, ms_err *err)
{
    sql_val v[] = {NUM(peak_flops), NUM(mem_bw_bytes_per_s), STR(note), STR(name)};
    return write_row(w, "the device's figures",
                     "UPDATE device SET peak_flops = ?1, mem_bw_bytes_per_s = ?2, "
                     "source = 'measured', note = ?3 WHERE name = ?4",
                     v, NVALS(v), err);
}

int cdb_writer_has_model(cdb_writer *w, const char *device, const char *op, const char *source,
                         ms_err *err)
{
    sql_val v[] = {STR(device), STR(op), STR(source)};
    sqlite3_stmt *st;
    if (prepare(w, "SELECT count(*) FROM model WHERE device = ?1 AND op = ?2 AND source = ?3", v,
                NVALS(v), &st, err))
        return -1;
    int rc = sqlite3_step(st), n = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return ms_err_set(err, "%s: %s", w->path, sqlite3_errmsg(w->h));
    return n > 0;
}

int cdb_writer_commit(cdb_writer *w, ms_err *err)
{
    int rc = exec_sql(w, "COMMIT;", err);
    if (sqlite3_close(w->h) != SQLITE_OK && !rc)
        rc = ms_err_set(err, "%s: cannot close: %s", w->tmp, sqlite3_errmsg(w->h));
    w->h = NULL;
    if (!rc) { /* the copy must be on disk before it replaces the original */
        int fd = open(w->tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0)
            rc = ms_err_set(err, "%s: fsync: %s", w->tmp, strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (!rc) {
        /* cdb_open's checks on the result, before it replaces anything */
        cdb *db = cdb_open(w->tmp, err);
        if (!db) rc = -1;
        cdb_close(db);
    }
    if (!rc && rename(w->tmp, w->path) != 0)
        rc = ms_err_set(err, "cannot rename %s to %s: %s", w->tmp, w->path, strerror(errno));
    if (rc) cdb_remove_tmp(w->tmp);
    free(w);
    return rc;
}

void cdb_writer_abort(cdb_writer *w)
{
    if (!w) return;
    sqlite3_close(w->h); /* rolls the open transaction back */
    cdb_remove_tmp(w->tmp);
    free(w);
}

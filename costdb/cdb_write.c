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

static void remove_tmp(const char *tmp)
{
    static const char *const suffix[] = {"", "-journal", "-wal", "-shm"};
    char buf[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", tmp, suffix[i]);
        unlink(buf);
    }
}

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
    remove_tmp(w->tmp); /* left by a run killed while writing */
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
    remove_tmp(w->tmp);
    free(w);
    return NULL;
}

const char *cdb_writer_tmp_path(const cdb_writer *w) { return w->tmp; }

/* Prepares sql, lets bind() fill the parameters, steps once. */
static int step_once(cdb_writer *w, const char *sql, sqlite3_stmt **out, ms_err *err)
{
    if (sqlite3_prepare_v2(w->h, sql, -1, out, NULL) != SQLITE_OK)
        return ms_err_set(err, "%s: %s", w->path, sqlite3_errmsg(w->h));
    return 0;
}

static int finish(cdb_writer *w, sqlite3_stmt *st, const char *what, ms_err *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return ms_err_set(err, "%s: writing %s: %s", w->path, what, sqlite3_errmsg(w->h));
    return 0;
}

static void bind_num(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(st, i);
    else sqlite3_bind_double(st, i, v);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

int cdb_writer_run(cdb_writer *w, const cdb_run_row *r, int64_t *run_id, ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "INSERT INTO calibration_run (host, date, backend, versions, note) VALUES "
                  "(?1, ?2, ?3, ?4, ?5)",
                  &st, err))
        return -1;
    bind_str(st, 1, r->host);
    bind_str(st, 2, r->date);
    bind_str(st, 3, r->backend);
    bind_str(st, 4, r->versions);
    bind_str(st, 5, r->note);
    if (finish(w, st, "the calibration run", err)) return -1;
    *run_id = sqlite3_last_insert_rowid(w->h);
    return 0;
}

int cdb_writer_device(cdb_writer *w, const char *name, const char *kind, const char *note,
                      ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "INSERT OR IGNORE INTO device (name, kind, source, note) VALUES "
                  "(?1, ?2, 'measured', ?3)",
                  &st, err))
        return -1;
    bind_str(st, 1, name);
    bind_str(st, 2, kind);
    bind_str(st, 3, note);
    return finish(w, st, "the device", err);
}

int cdb_writer_measurement(cdb_writer *w, int64_t run_id, const cdb_measurement_row *m,
                           ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "INSERT INTO measurement (run_id, device, op, shape, x, time_s, trials, "
                  "bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                  &st, err))
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    bind_str(st, 2, m->device);
    bind_str(st, 3, m->op);
    bind_str(st, 4, m->shape);
    bind_num(st, 5, m->x);
    bind_num(st, 6, m->time_s);
    sqlite3_bind_int(st, 7, m->trials);
    bind_num(st, 8, m->bytes);
    return finish(w, st, "a measurement", err);
}

int cdb_writer_model(cdb_writer *w, int64_t run_id, const cdb_model_row *m, int64_t *id,
                     ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "INSERT INTO model (device, op, form, alpha_s, beta_s, x_min, x_max, r2, "
                  "run_id, source, note, eff_max, f_half_flops, bw_eff) VALUES (?1, ?2, ?3, "
                  "?4, ?5, ?6, ?7, ?8, ?9, 'measured', ?10, ?11, ?12, ?13)",
                  &st, err))
        return -1;
    int linear = !strcmp(m->form, "linear"), roof = !strcmp(m->form, "roofline");
    bind_str(st, 1, m->device);
    bind_str(st, 2, m->op);
    bind_str(st, 3, m->form);
    bind_num(st, 4, linear || roof ? m->alpha_s : NAN);
    bind_num(st, 5, linear ? m->beta_s : NAN);
    bind_num(st, 11, roof ? m->eff_max : NAN);
    bind_num(st, 12, roof ? m->f_half_flops : NAN);
    bind_num(st, 13, roof ? m->bw_eff : NAN);
    bind_num(st, 6, m->x_min);
    bind_num(st, 7, m->x_max);
    bind_num(st, 8, m->r2);
    sqlite3_bind_int64(st, 9, run_id);
    bind_str(st, 10, m->note);
    if (finish(w, st, "a model", err)) return -1;
    if (id) *id = sqlite3_last_insert_rowid(w->h);
    return 0;
}

int cdb_writer_comm(cdb_writer *w, int64_t run_id, const cdb_comm_row *c, ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "INSERT INTO comm_model (device, op, alpha_s, beta_s_per_byte, r2, run_id, "
                  "source, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'measured', ?7)",
                  &st, err))
        return -1;
    bind_str(st, 1, c->device);
    bind_str(st, 2, c->op);
    bind_num(st, 3, c->alpha_s);
    bind_num(st, 4, c->beta_s_per_byte);
    bind_num(st, 5, c->r2);
    sqlite3_bind_int64(st, 6, run_id);
    bind_str(st, 7, c->note);
    return finish(w, st, "a communication fit", err);
}

int cdb_writer_device_figures(cdb_writer *w, const char *name, double peak_flops,
                              double mem_bw_bytes_per_s, const char *note, ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w,
                  "UPDATE device SET peak_flops = ?1, mem_bw_bytes_per_s = ?2, "
                  "source = 'measured', note = ?3 WHERE name = ?4",
                  &st, err))
        return -1;
    bind_num(st, 1, peak_flops);
    bind_num(st, 2, mem_bw_bytes_per_s);
    bind_str(st, 3, note);
    bind_str(st, 4, name);
    return finish(w, st, "the device's figures", err);
}

int cdb_writer_has_model(cdb_writer *w, const char *device, const char *op, const char *source,
                         ms_err *err)
{
    sqlite3_stmt *st;
    if (step_once(w, "SELECT count(*) FROM model WHERE device = ?1 AND op = ?2 AND source = ?3",
                  &st, err))
        return -1;
    bind_str(st, 1, device);
    bind_str(st, 2, op);
    bind_str(st, 3, source);
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
    if (rc) remove_tmp(w->tmp);
    free(w);
    return rc;
}

void cdb_writer_abort(cdb_writer *w)
{
    if (!w) return;
    sqlite3_close(w->h); /* rolls the open transaction back */
    remove_tmp(w->tmp);
    free(w);
}

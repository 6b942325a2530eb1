/* Building a cost database: the schema, then the .sql seed profiles, in one transaction in
 * "<path>.tmp", renamed over path only when everything succeeded. Profiles may only INSERT
 * (an SQLite authorizer enforces it); constraint failures name the file and line.
 * Schema and rules: docs/COSTDB.md. */
#include "costdb/cdb.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A REAL column that must hold a number (not text) meeting `cond` when it is not NULL. */
#define NUM(col, cond)                                                                      \
    col " REAL CHECK (" col " IS NULL OR (typeof(" col ") = 'real' AND " col " " cond "))"
#define TYPED(col) col " REAL CHECK (" col " IS NULL OR typeof(" col ") = 'real')"
#define SOURCE " source TEXT NOT NULL CHECK (source IN ('measured', 'paper', 'datasheet'))"

/* The schema, version CDB_SCHEMA_VERSION. Units are in the column names; see COSTDB.md. */
static const char schema_sql[] =
    "CREATE TABLE meta (\n"
    "  key TEXT PRIMARY KEY NOT NULL,\n"
    "  value TEXT\n"
    ");\n"
    "CREATE TABLE device (\n"
    "  name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),\n"
    "  kind TEXT NOT NULL CHECK (kind IN ('gpu', 'cpu')),\n"
    "  " NUM("memory_bytes", "> 0") ",\n"
    "  " NUM("peak_flops", "> 0") ",  -- dense bf16 for GPUs, fp32 for CPUs\n"
    "  " NUM("mem_bw_bytes_per_s", "> 0") ",\n"
    " " SOURCE ",\n"
    "  note TEXT\n"
    ");\n"
    "CREATE TABLE link (\n"
    "  name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),\n"
    "  " NUM("bw_bytes_per_s", "> 0") ",  -- per direction\n"
    "  " NUM("latency_s", ">= 0") ",\n"
    " " SOURCE ",\n"
    "  note TEXT\n"
    ");\n"
    "CREATE TABLE calibration_run (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  host TEXT,\n"
    "  date TEXT,  -- ISO 8601\n"
    "  backend TEXT,\n"
    "  versions TEXT,\n"
    "  note TEXT\n"
    ");\n"
    "CREATE TABLE measurement (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  run_id INTEGER NOT NULL REFERENCES calibration_run(id),\n"
    "  device TEXT NOT NULL REFERENCES device(name),\n"
    "  op TEXT NOT NULL,\n"
    "  shape TEXT,  -- the op's args as written in the IR, e.g. 'm=4096 n=1536 k=5120'\n"
    "  " NUM("x", ">= 0") " NOT NULL,  -- the op's feature (cdb_feature)\n"
    "  " NUM("time_s", ">= 0") " NOT NULL,\n"
    "  trials INTEGER CHECK (trials IS NULL OR trials > 0),\n"
    "  " NUM("bytes", ">= 0") "  -- the op's bytes moved (cdb_work_of), optional\n"
    ");\n"
    "CREATE INDEX measurement_by_model ON measurement (run_id, device, op, x);\n"
    "CREATE TABLE model (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  device TEXT NOT NULL REFERENCES device(name),\n"
    "  op TEXT NOT NULL,\n"
    "  form TEXT NOT NULL CHECK (form IN ('linear', 'piecewise', 'roofline')),\n"
    "  " TYPED("alpha_s") ",\n"
    "  " NUM("beta_s", ">= 0") ",  -- seconds per unit of x (FLOP)\n"
    "  " NUM("x_min", ">= 0") ",\n"
    "  " NUM("x_max", ">= x_min") ",\n"
    "  " NUM("r2", "<= 1") ",\n"
    "  run_id INTEGER REFERENCES calibration_run(id),\n"
    " " SOURCE ",\n"
    "  citation TEXT,\n"
    "  " NUM("efficiency", "> 0 AND efficiency <= 1") ",  -- linear/piecewise datasheet\n"
    "  note TEXT,\n"
    "  " NUM("eff_max", "> 0 AND eff_max <= 1") ",  -- roofline: compute efficiency limit\n"
    "  " NUM("f_half_flops", "> 0") ",  -- roofline: FLOPs at which eff = eff_max/2\n"
    "  " NUM("bw_eff", "> 0 AND bw_eff <= 1") ",  -- roofline: fraction of mem bandwidth\n"
    "  CHECK (form <> 'linear' OR (alpha_s IS NOT NULL AND beta_s IS NOT NULL)),\n"
    "  CHECK (form <> 'piecewise' OR run_id IS NOT NULL),\n"
    "  CHECK (form <> 'roofline' OR (alpha_s IS NOT NULL AND beta_s IS NULL AND\n"
    "         efficiency IS NULL AND eff_max IS NOT NULL AND f_half_flops IS NOT NULL AND\n"
    "         bw_eff IS NOT NULL)),\n"
    "  CHECK (form = 'roofline' OR (eff_max IS NULL AND f_half_flops IS NULL AND\n"
    "         bw_eff IS NULL)),\n"
    "  CHECK (source <> 'measured' OR run_id IS NOT NULL),\n"
    "  CHECK (source <> 'paper' OR citation IS NOT NULL),\n"
    "  CHECK (source <> 'datasheet' OR efficiency IS NOT NULL OR form = 'roofline')\n"
    ");\n"
    "CREATE TABLE comm_model (\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  device TEXT NOT NULL REFERENCES device(name),\n"
    "  op TEXT NOT NULL CHECK (op <> ''),  -- e.g. 'a2e'\n"
    "  ag INTEGER CHECK (ag IS NULL OR ag > 0),\n"
    "  eg INTEGER CHECK (eg IS NULL OR eg > 0),\n"
    "  " TYPED("alpha_s") " NOT NULL,\n"
    "  " NUM("beta_s_per_byte", ">= 0") " NOT NULL,\n"
    "  " NUM("r2", "<= 1") ",\n"
    "  run_id INTEGER REFERENCES calibration_run(id),\n"
    " " SOURCE ",\n"
    "  citation TEXT,\n"
    "  note TEXT,\n"
    "  CHECK (source <> 'measured' OR run_id IS NOT NULL),\n"
    "  CHECK (source <> 'paper' OR citation IS NOT NULL),\n"
    "  CHECK (source <> 'datasheet' OR note IS NOT NULL)\n"
    ");\n";

/* A piecewise model whose run holds no points for its (device, op). */
static const char orphan_sql[] =
    "SELECT id, op, device, run_id FROM model AS m WHERE form = 'piecewise' AND NOT EXISTS "
    "(SELECT 1 FROM measurement AS p WHERE p.run_id = m.run_id AND p.device = m.device "
    "AND p.op = m.op) ORDER BY id LIMIT 1";

/* A roofline model whose device lacks the peak or the bandwidth the form divides by. */
static const char roofless_sql[] =
    "SELECT m.id, m.op, m.device FROM model AS m JOIN device AS d ON d.name = m.device "
    "WHERE m.form = 'roofline' AND (d.peak_flops IS NULL OR d.mem_bw_bytes_per_s IS NULL) "
    "ORDER BY m.id LIMIT 1";

/* Reads a whole text file into a NUL-terminated heap buffer. */
static char *read_text(const char *file, ms_err *err)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        ms_err_set(err, "%s: cannot read: %s", file, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (len < cap - 1) break;
        char *grown = realloc(buf, cap * 2);
        if (!grown) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    int failed = !buf || ferror(f);
    fclose(f);
    if (failed) {
        ms_err_set(err, "%s: cannot read: %s", file, buf ? "I/O error" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        ms_err_set(err, "%s: not a text file (contains a NUL byte)", file);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Skips white space and SQL comments. */
static const char *skip_blank(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f') p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            if (!end) return p; /* let SQLite report the unterminated comment */
            p = end + 2;
        } else {
            return p;
        }
    }
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at && *p; p++) line += *p == '\n';
    return line;
}

/* Profiles may only insert rows into the data tables (and read, to INSERT ... SELECT). */
static int authorize(void *denied, int action, const char *a1, const char *a2,
                     const char *dbname, const char *trigger)
{
    (void)a2, (void)dbname, (void)trigger;
    switch (action) {
    case SQLITE_INSERT:
        if (a1 && (!strcmp(a1, "meta") || !strncmp(a1, "sqlite_", 7))) break;
        return SQLITE_OK;
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE:
        return SQLITE_OK;
    default:
        break;
    }
    *(int *)denied = 1;
    return SQLITE_DENY;
}

/* Executes one profile statement by statement, so errors carry the line. */
static int run_profile(sqlite3 *h, const char *file, ms_err *err)
{
    char *text = read_text(file, err);
    if (!text) return -1;
    int denied = 0, rc = 0;
    sqlite3_set_authorizer(h, authorize, &denied);
    const char *p = skip_blank(text);
    while (*p) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        denied = 0;
        if (sqlite3_prepare_v2(h, p, -1, &st, &tail) != SQLITE_OK) {
            const char *at = p;
#if SQLITE_VERSION_NUMBER >= 3038000
            int off = sqlite3_error_offset(h);
            if (off >= 0) at = p + off;
#endif
            if (denied)
                rc = ms_err_set(err, "%s:%d: a profile may only INSERT rows (not '%.*s')", file,
                                line_of(text, p), (int)strcspn(p, "\n;"), p);
            else
                rc = ms_err_set(err, "%s:%d: %s", file, line_of(text, at), sqlite3_errmsg(h));
            break;
        }
        if (st) {
            int step;
            while ((step = sqlite3_step(st)) == SQLITE_ROW) {
            }
            if (step != SQLITE_DONE)
                rc = ms_err_set(err, "%s:%d: %s", file, line_of(text, p), sqlite3_errmsg(h));
            sqlite3_finalize(st);
            if (rc) break;
        }
        p = skip_blank(tail);
    }
    sqlite3_set_authorizer(h, NULL, NULL);
    free(text);
    if (rc) return rc;

    /* A piecewise model needs its points by the end of the file that defines it. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, orphan_sql, -1, &st, NULL) != SQLITE_OK)
        return ms_err_set(err, "%s: %s", file, sqlite3_errmsg(h));
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = ms_err_set(err,
                        "%s: piecewise model %lld ('%s' on '%s') has no measurements for its "
                        "device and op in calibration run %lld",
                        file, (long long)sqlite3_column_int64(st, 0),
                        (const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 2),
                        (long long)sqlite3_column_int64(st, 3));
    else if (step != SQLITE_DONE)
        rc = ms_err_set(err, "%s: %s", file, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    if (rc) return rc;

    /* A roofline model needs its device's peak_flops and mem_bw_bytes_per_s. */
    if (sqlite3_prepare_v2(h, roofless_sql, -1, &st, NULL) != SQLITE_OK)
        return ms_err_set(err, "%s: %s", file, sqlite3_errmsg(h));
    step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        rc = ms_err_set(err,
                        "%s: roofline model %lld ('%s' on '%s') needs the device's peak_flops "
                        "and mem_bw_bytes_per_s",
                        file, (long long)sqlite3_column_int64(st, 0),
                        (const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 2));
    else if (step != SQLITE_DONE)
        rc = ms_err_set(err, "%s: %s", file, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return rc;
}

static int exec(sqlite3 *h, const char *sql, const char *path, ms_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(h, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    ms_err_set(err, "%s: %s", path, msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    return -1;
}

void cdb_remove_tmp(const char *tmp)
{
    static const char *const suffix[] = {"", "-journal", "-wal", "-shm"};
    char buf[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", tmp, suffix[i]);
        unlink(buf);
    }
}

int cdb_build(const char *path, const char *const *sql_files, int nfiles, ms_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return ms_err_set(err, "%s: path too long", path);
    cdb_remove_tmp(tmp);

    sqlite3 *h = NULL;
    if (sqlite3_open_v2(tmp, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        ms_err_set(err, "%s: cannot create: %s", tmp,
                   h ? sqlite3_errmsg(h) : "out of memory");
        goto fail;
    }
    char meta[128];
    snprintf(meta, sizeof meta,
             "INSERT INTO meta (key, value) VALUES ('schema_version', '%d');",
             CDB_SCHEMA_VERSION);
    if (exec(h, "PRAGMA foreign_keys = ON; BEGIN;", tmp, err) ||
        exec(h, schema_sql, tmp, err) || exec(h, meta, tmp, err))
        goto fail;
    for (int i = 0; i < nfiles; i++)
        if (run_profile(h, sql_files[i], err)) goto fail;
    if (exec(h, "COMMIT;", tmp, err)) goto fail;
    if (sqlite3_close(h) != SQLITE_OK) {
        ms_err_set(err, "%s: cannot close: %s", tmp, sqlite3_errmsg(h));
        h = NULL; /* still open but busy: nothing more we can do than remove the file */
        goto fail;
    }
    h = NULL;
    if (rename(tmp, path) != 0) {
        ms_err_set(err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    return 0;

fail:
    sqlite3_close(h); /* rolls back the open transaction; NULL is harmless */
    cdb_remove_tmp(tmp);
    return -1;
}

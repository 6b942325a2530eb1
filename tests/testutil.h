/* Helpers shared by the test programs (each test is its own binary, so these are static):
 * a cost database built from the shipped profiles into a temp file, and a runner for the
 * real `moesched` binary ($MOESCHED_BUILD/moesched, default build/) that captures its exit
 * status, stdout and stderr. Include after <cmocka.h>. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/model.h"
#include "core/topo.h"
#include "costdb/cdb.h"

/* ---- the shipped cost database ------------------------------------------------------- */

static char __attribute__((unused)) tu_db_path[] = "/tmp/ms-test-db-XXXXXX";

/* Builds costdb/profiles/ *.sql into a temp file and opens it; NULL (message printed) on
 * failure. Pair with tu_db_close. */
static inline cdb *tu_db_open(void)
{
    glob_t gl;
    if (glob(MS_SOURCE_DIR "/costdb/profiles/*.sql", 0, NULL, &gl) != 0) return NULL;
    int fd = mkstemp(tu_db_path);
    if (fd < 0) {
        globfree(&gl);
        return NULL;
    }
    close(fd);
    ms_err err = {{0}};
    cdb *db = NULL;
    if (cdb_build(tu_db_path, (const char *const *)gl.gl_pathv, (int)gl.gl_pathc, &err) == 0)
        db = cdb_open(tu_db_path, &err);
    globfree(&gl);
    if (!db) fprintf(stderr, "shipped cost DB: %s\n", err.msg);
    return db;
}

static inline void tu_db_close(cdb *db)
{
    cdb_close(db);
    unlink(tu_db_path);
}

/* ---- running the binary -------------------------------------------------------------- */

static char __attribute__((unused)) tu_bin[4096];
static char __attribute__((unused)) tu_tmpdir[] = "/tmp/ms-cli-XXXXXX";

typedef struct tu_output {
    int status;
    char *out, *err;
} tu_output;

/* The whole file as a NUL-terminated string ("" if it cannot be read). */
static inline char *tu_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
}

static inline void tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs `moesched ARGS` (a shell fragment) from the source tree. */
static inline tu_output tu_run(const char *fmt, ...)
{
    char args[8192], cmd[32768], o[4200], e[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(o, sizeof o, "%s/stdout", tu_tmpdir);
    snprintf(e, sizeof e, "%s/stderr", tu_tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s </dev/null", tu_bin, args, o, e);
    int st = system(cmd);
    tu_output r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128, tu_slurp(o), tu_slurp(e)};
    return r;
}

static inline void tu_release(tu_output *r)
{
    free(r->out);
    free(r->err);
}

/* cmocka group setup/teardown: find the binary, make a temp dir, run from the source tree. */
static inline int tu_cli_setup(void **state)
{
    (void)state;
    const char *b = getenv("MOESCHED_BUILD");
    snprintf(tu_bin, sizeof tu_bin, "%s/%s/moesched", MS_SOURCE_DIR, b && *b ? b : "build");
    if (access(tu_bin, X_OK) != 0) {
        fprintf(stderr, "%s is missing; run make first\n", tu_bin);
        return -1;
    }
    if (!mkdtemp(tu_tmpdir)) return -1;
    return chdir(MS_SOURCE_DIR);
}

static inline int tu_cli_teardown(void **state)
{
    (void)state;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tu_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- models and topologies ------------------------------------------------------------ */

/* Loads a model (keeping its first `layers` layers when layers > 0) or fails the test. */
static inline model_cfg tu_load_model(const char *spec, int layers)
{
    model_cfg m;
    ms_err err = {{0}};
    if (model_load(spec, &m, &err) != 0) fail_msg("model_load %s: %s", spec, err.msg);
    if (layers && model_keep_layers(&m, layers, &err) != 0) fail_msg("%s", err.msg);
    return m;
}

/* Loads a topology or fails the test. */
static inline topo tu_load_topo(const char *spec)
{
    topo t;
    ms_err err = {{0}};
    if (topo_load(spec, &t, &err) != 0) fail_msg("topo_load %s: %s", spec, err.msg);
    return t;
}

#endif

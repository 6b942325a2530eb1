/* Helpers shared by the test programs (each test is its own binary, so these are static):
 * a cost database built from the shipped profiles, and runners for the real `moesched`
 * binary ($MOESCHED_BUILD/moesched, default build/), directly or under mpirun, that capture
 * its exit status, stdout, stderr and wall time. Include after <cmocka.h>. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/model.h"
#include "core/topo.h"
#include "costdb/cdb.h"

/* ---- the shipped cost database ------------------------------------------------------- */

static char __attribute__((unused)) tu_db_path[] = "/tmp/ms-test-db-XXXXXX";

/* Builds costdb/profiles/ *.sql into the database file path; 0, or -1 with err set. */
static inline int tu_db_build(const char *path, ms_err *err)
{
    glob_t gl;
    if (glob(MS_SOURCE_DIR "/costdb/profiles/*.sql", 0, NULL, &gl) != 0) {
        snprintf(err->msg, sizeof err->msg, "no profiles in %s/costdb/profiles", MS_SOURCE_DIR);
        return -1;
    }
    int rc = cdb_build(path, (const char *const *)gl.gl_pathv, (int)gl.gl_pathc, err);
    globfree(&gl);
    return rc;
}

/* Builds the shipped profiles into a temp file and opens it; NULL (message printed) on
 * failure. Pair with tu_db_close. */
static inline cdb *tu_db_open(void)
{
    int fd = mkstemp(tu_db_path);
    if (fd < 0) return NULL;
    close(fd);
    ms_err err = {{0}};
    cdb *db = NULL;
    if (tu_db_build(tu_db_path, &err) == 0) db = cdb_open(tu_db_path, &err);
    if (!db) fprintf(stderr, "shipped cost DB: %s\n", err.msg);
    return db;
}

static inline void tu_db_close(cdb *db)
{
    cdb_close(db);
    unlink(tu_db_path);
}

/* A group setup/teardown pair for tests that share one shipped cost DB, tu_db. */
static cdb __attribute__((unused)) *tu_db;
static inline int tu_db_setup(void **state)
{
    (void)state;
    tu_db = tu_db_open();
    return tu_db ? 0 : -1;
}
static inline int tu_db_teardown(void **state)
{
    (void)state;
    tu_db_close(tu_db);
    return 0;
}

/* A hand-computable topology: GPU links of 1 GB/s and 1 us, NICs of 0.5 GB/s and 5 us. */
static inline topo tu_round_topo(int nodes, int gpus, int nics)
{
    topo t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "test-%dx%d", nodes, gpus);
    snprintf(t.device, sizeof t.device, "h100");
    t.nodes = nodes;
    t.gpus_per_node = gpus;
    t.intra.bw_bytes_per_s = 1e9;
    t.intra.latency_s = 1e-6;
    t.nics_per_node = nics;
    t.nic.bw_bytes_per_s = 0.5e9;
    t.nic.latency_s = 5e-6;
    return t;
}

/* ---- running the binary -------------------------------------------------------------- */

static char __attribute__((unused)) tu_bin[4096];
static char __attribute__((unused)) tu_tmpdir[] = "/tmp/ms-cli-XXXXXX";

typedef struct tu_output {
    int status;
    char *out, *err;
    double wall_s; /* how long the command ran */
} tu_output;

/* tu_tmpdir/NAME in one of 64 rotating buffers (a few live at once). */
static inline const char *tu_tmp_path(const char *name)
{
    static char buf[64][4200];
    static int next;
    char *b = buf[next++ & 63];
    snprintf(b, sizeof buf[0], "%s/%s", tu_tmpdir, name);
    return b;
}

static inline void tu_expect_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected '%s' in:\n%s", needle, hay);
}

static inline void tu_vexpect_contains_all(const char *hay, va_list ap)
{
    for (const char *needle; (needle = va_arg(ap, const char *));) tu_expect_contains(hay, needle);
}

/* hay contains every one of the strings after it (a NULL ends them). */
static inline void tu_expect_contains_all(const char *hay, ...)
{
    va_list ap;
    va_start(ap, hay);
    tu_vexpect_contains_all(hay, ap);
    va_end(ap);
}

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

/* The file at path contains every one of the strings after it (a NULL ends them). */
static inline void tu_expect_file_contains(const char *path, ...)
{
    char *text = tu_slurp(path);
    va_list ap;
    va_start(ap, path);
    tu_vexpect_contains_all(text, ap);
    va_end(ap);
    free(text);
}

static inline void tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs `PREFIX moesched ARGS` (shell fragments) and captures its status, output and time. */
static inline tu_output tu_vrun(const char *prefix, const char *fmt, va_list ap)
{
    char args[8192], cmd[32768], o[4200], e[4200];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(o, sizeof o, "%s/stdout", tu_tmpdir);
    snprintf(e, sizeof e, "%s/stderr", tu_tmpdir);
    snprintf(cmd, sizeof cmd, "%s%s %s >%s 2>%s </dev/null", prefix, tu_bin, args, o, e);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    tu_output r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128, tu_slurp(o), tu_slurp(e),
                   (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec)};
    return r;
}

/* Runs `moesched ARGS` (a shell fragment) from the source tree. */
static inline tu_output tu_run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tu_output r = tu_vrun("", fmt, ap);
    va_end(ap);
    return r;
}

/* The run failed with this exit status and said needle on stderr. */
static inline void tu_expect_fail(const tu_output *r, int status, const char *needle)
{
    if (r->status != status || !strstr(r->err, needle))
        fail_msg("expected status %d and '%s' on stderr; got %d:\n%s%s", status, needle,
                 r->status, r->err, r->out);
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

/* ---- running under mpirun ------------------------------------------------------------ */

static int __attribute__((unused)) tu_have_mpirun;
static int __attribute__((unused)) tu_mpi_timeout_s = 60; /* per mpirun, so nothing hangs */

/* `timeout T mpirun --oversubscribe -np NP ` (with the trailing space) into buf. */
static inline const char *tu_mpirun_prefix(char *buf, size_t size, int np)
{
    snprintf(buf, size, "timeout %d mpirun --oversubscribe -np %d ", tu_mpi_timeout_s, np);
    return buf;
}

/* Runs `mpirun -np NP moesched ARGS` under a tu_mpi_timeout_s timeout. */
static inline tu_output tu_mpi_run(int np, const char *fmt, ...)
{
    char prefix[128];
    va_list ap;
    va_start(ap, fmt);
    tu_output r = tu_vrun(tu_mpirun_prefix(prefix, sizeof prefix, np), fmt, ap);
    va_end(ap);
    return r;
}

/* tu_cli_setup plus the environment mpirun needs in CI (root, 2 cores); MPI's own
 * allocations are not ours to leak-check. Notes in tu_have_mpirun whether mpirun exists. */
static inline int tu_mpi_setup(void **state)
{
    if (tu_cli_setup(state) != 0) return -1;
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
    static char asan[1024];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%sdetect_leaks=0", prev ? prev : "", prev && *prev ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    tu_have_mpirun = system("command -v mpirun >/dev/null 2>&1") == 0;
    return 0;
}

/* Skips the test when there is no mpirun. */
#define TU_NEED_MPI()                                                \
    do {                                                             \
        if (!tu_have_mpirun) {                                       \
            fprintf(stderr, "mpirun not found: skipping\n");         \
            skip();                                                  \
        }                                                            \
    } while (0)

/* The error an exec --check run reports, or -1 when the line is missing. */
static inline double tu_check_error(const char *out)
{
    const char *p = strstr(out, "max relative error ");
    return p ? atof(p + strlen("max relative error ")) : -1;
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

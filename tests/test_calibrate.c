/* Tests of `moesched calibrate` (exec/calibrate.c, costdb/cdb_write.c): the quick grid under
 * mpirun with 2 ranks into a new temporary database, whose measured models the simulator then
 * uses; extending an existing database; refusing a file that is not one; and an interrupted
 * run (a signal while measuring, or just before the commit) leaving the database
 * byte-identical. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testutil.h"

#include "exec/calibrate.h"

#define MPIRUN "timeout 300 mpirun --oversubscribe -np"

static char path_buf[8][4200];
static int path_next;

/* A path in the test's temp dir (a few live at once). */
static const char *tmp_path(const char *name)
{
    char *p = path_buf[path_next++ % 8];
    snprintf(p, sizeof path_buf[0], "%s/%s", tu_tmpdir, name);
    return p;
}

/* Runs `mpirun -np N moesched ARGS` (the binary of MOESCHED_BUILD). */
static tu_output mpi_run(int np, const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char cmd[32768], o[4200], e[4200];
    snprintf(o, sizeof o, "%s/stdout", tu_tmpdir);
    snprintf(e, sizeof e, "%s/stderr", tu_tmpdir);
    snprintf(cmd, sizeof cmd, "%s %d %s %s >%s 2>%s </dev/null", MPIRUN, np, tu_bin, args, o, e);
    int st = system(cmd);
    tu_output r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128, tu_slurp(o), tu_slurp(e)};
    return r;
}

static void expect_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected '%s' in:\n%s", needle, hay);
}

/* The default profiles built into path. */
static void build_default(const char *path)
{
    glob_t gl;
    assert_int_equal(glob(MS_SOURCE_DIR "/costdb/profiles/*.sql", 0, NULL, &gl), 0);
    ms_err err = {{0}};
    if (cdb_build(path, (const char *const *)gl.gl_pathv, (int)gl.gl_pathc, &err) != 0)
        fail_msg("%s", err.msg);
    globfree(&gl);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void no_leftovers(const char *db)
{
    char w[4300];
    snprintf(w, sizeof w, "%s.wtmp", db);
    if (file_exists(w)) fail_msg("%s was left behind", w);
}

/* A missing database is created from the default profiles; the run's models are measured
 * and selected, the run row carries host, date, backend and library versions, the comm
 * table has nccl-tests' columns, and the simulator then uses the measured models. */
static void test_quick_new_db(void **state)
{
    (void)state;
    const char *db = tmp_path("new.db");
    tu_output r = mpi_run(2, "calibrate --backend host --db %s --quick", db);
    if (r.status != 0) fail_msg("calibrate failed (%d): %s\n%.2000s", r.status, r.err, r.out);
    expect_contains(r.out, "size(B)");
    expect_contains(r.out, "algbw(GB/s)");
    expect_contains(r.out, "busbw(GB/s)");
    expect_contains(r.out, "# allreduce, 2 ranks (busbw = algbw x 2(n-1)/n = 1)");
    expect_contains(r.out, "# allgather, 2 ranks (busbw = algbw x (n-1)/n = 0.5)");
    expect_contains(r.out, "wrote calibration run 1 to");
    tu_release(&r);
    no_leftovers(db);

    ms_err err = {{0}};
    cdb *h = cdb_open(db, &err);
    if (!h) fail_msg("%s", err.msg);
    /* measured models are the ones used for host-cpu's compute ops */
    static const char *const ops[] = {"gemm", "attn", "ffn", "gate"};
    for (size_t i = 0; i < 4; i++) {
        int composed = 0;
        const cdb_model_info *m = cdb_model_used(h, "host-cpu", ops[i], &composed);
        assert_non_null(m);
        if (strcmp(m->source, "measured")) fail_msg("%s: source %s", ops[i], m->source);
    }
    /* the datasheet rows of the default profiles are still there, under the new ones */
    assert_true(cdb_has_device(h, "h100"));
    const cdb_comm_info *c = cdb_comm_find(h, "host-cpu", "xchg", 0, 0);
    assert_non_null(c);
    assert_string_equal(c->source, "measured");
    assert_true(c->beta_s_per_byte > 0);
    /* a measured gemm time is a real time: a 256x512x512 product well under a second */
    int64_t a[3] = {256, 512, 512};
    double s = 0;
    assert_int_equal(cdb_time(h, "host-cpu", "gemm", a, 3, &s, &err), 0);
    assert_true(s > 1e-6 && s < 1);
    cdb_close(h);

    r = tu_run("db --db %s --json", db);
    assert_int_equal(r.status, 0);
    expect_contains(r.out, "\"backend\":\"host\"");
    expect_contains(r.out, "\"versions\":\"MPI: ");
    expect_contains(r.out, "BLAS: OpenBLAS");
    expect_contains(r.out, "\"source\":\"measured\"");
    tu_release(&r);

    /* the simulator runs on it, and its answer differs from the datasheet guess */
    const char *g = tmp_path("g.tg");
    tu_write_file(g, "tg 1\n"
                     "task 0 rank=0 stream=compute op=gemm m=64 n=512 k=512\n"
                     "task 1 rank=0 stream=comm op=xchg send=1:65536 after=0\n"
                     "task 2 rank=1 stream=comm op=xchg recv=0:65536\n"
                     "task 3 rank=1 stream=compute op=gemm m=64 n=512 k=512 after=2\n");
    r = tu_run("sim --db %s --graph %s --topo host-cpu:nodes=1,gpus=2 --json", db, g);
    if (r.status != 0) fail_msg("sim: %s", r.err);
    double measured_ms = strtod(strstr(r.out, "\"makespan_us\":") + 14, NULL);
    tu_release(&r);
    r = tu_run("sim --graph %s --topo host-cpu:nodes=1,gpus=2 --json", g);
    assert_int_equal(r.status, 0);
    double sheet_ms = strtod(strstr(r.out, "\"makespan_us\":") + 14, NULL);
    tu_release(&r);
    assert_true(measured_ms > 0 && sheet_ms > 0);
    assert_true(fabs(measured_ms - sheet_ms) > 1e-3 * sheet_ms);
}

/* An existing database is extended: a second run adds run 2 and its models become the
 * selected ones; the first run's rows stay. */
static void test_extend_existing(void **state)
{
    (void)state;
    const char *db = tmp_path("ext.db");
    build_default(db);
    for (int run = 1; run <= 2; run++) {
        tu_output r = mpi_run(2, "calibrate --backend host --db %s --quick --device my-cpu", db);
        if (r.status != 0) fail_msg("run %d failed (%d): %s\n%.2000s", run, r.status, r.err, r.out);
        char want[64];
        snprintf(want, sizeof want, "wrote calibration run %d to", run);
        expect_contains(r.out, want);
        tu_release(&r);
    }
    tu_output r = tu_run("db --db %s --json", db);
    assert_int_equal(r.status, 0);
    /* a new device row, measured, for the name given */
    expect_contains(r.out, "{\"name\":\"my-cpu\",\"kind\":\"cpu\"");
    expect_contains(r.out, "\"calibration_runs\":[{\"id\":1,");
    expect_contains(r.out, "{\"id\":2,");
    tu_release(&r);
    ms_err err = {{0}};
    cdb *h = cdb_open(db, &err);
    assert_non_null(h);
    const cdb_model_info *m = cdb_model(h, "my-cpu", "gemm");
    assert_non_null(m);
    assert_string_equal(m->source, "measured");
    /* run 2's model is selected: its id is the newest of the device's gemm models */
    r = tu_run("db --db %s", db);
    expect_contains(r.out, "run 2");
    tu_release(&r);
    cdb_close(h);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void assert_same_bytes(const unsigned char *a, size_t na, const char *path)
{
    size_t nb;
    unsigned char *b = read_all(path, &nb);
    if (na != nb || memcmp(a, b, na)) fail_msg("%s changed (%zu -> %zu bytes)", path, na, nb);
    free(b);
}

/* A file that is not a cost database is refused and left untouched; so is a database of
 * another kind. */
static void test_refuse_non_db(void **state)
{
    (void)state;
    const char *txt = tmp_path("notes.db");
    tu_write_file(txt, "these are my notes, not a database\n");
    size_t n;
    unsigned char *before = read_all(txt, &n);
    tu_output r = mpi_run(2, "calibrate --backend host --db %s --quick", txt);
    assert_int_equal(r.status, 1);
    expect_contains(r.err, "not a moesched cost database");
    expect_contains(r.err, "left untouched");
    tu_release(&r);
    assert_same_bytes(before, n, txt);
    free(before);
    no_leftovers(txt);

    /* usage errors need no database */
    r = tu_run("calibrate --backend host --quick");
    assert_int_equal(r.status, 2);
    expect_contains(r.err, "--backend and --db are required");
    tu_release(&r);
    r = tu_run("calibrate --backend nope --db %s", tmp_path("x.db"));
    assert_int_equal(r.status, 2);
    expect_contains(r.err, "unknown backend 'nope'");
    tu_release(&r);
    assert_false(file_exists(tmp_path("x.db")));
}

/* Killed while measuring (SIGTERM or SIGINT to mpirun, which forwards it), a calibration
 * leaves an existing database byte-identical and no temporary copy behind. */
static void test_interrupt_while_measuring(void **state)
{
    (void)state;
    static const char *const sigs[] = {"TERM", "INT"};
    for (size_t k = 0; k < 2; k++) {
        const char *db = tmp_path("kill.db");
        build_default(db);
        size_t n;
        unsigned char *before = read_all(db, &n);
        /* the full grid takes about a minute: stop it 2 s in */
        char cmd[20000];
        snprintf(cmd, sizeof cmd,
                 "%s 2 %s calibrate --backend host --db %s >%s/kill.out 2>&1 </dev/null & "
                 "pid=$!; sleep 2; kill -%s $pid; wait $pid; echo $? >%s/kill.rc",
                 MPIRUN, tu_bin, db, tu_tmpdir, sigs[k], tu_tmpdir);
        assert_int_equal(system(cmd), 0);
        char rcpath[4300];
        snprintf(rcpath, sizeof rcpath, "%s/kill.rc", tu_tmpdir);
        char *rc = tu_slurp(rcpath);
        if (atoi(rc) == 0) fail_msg("calibration was not interrupted (rc %s)", rc);
        free(rc);
        assert_same_bytes(before, n, db);
        free(before);
        no_leftovers(db);
        unlink(db);
    }
}

/* A signal that arrives while the results are being written (here raised by a test hook
 * right before the commit) abandons the write: exit 130, database byte-identical. */
static void test_interrupt_before_commit(void **state)
{
    (void)state;
    const char *db = tmp_path("commit.db");
    build_default(db);
    size_t n;
    unsigned char *before = read_all(db, &n);
    /* mpirun -x passes the hook's variable to the ranks */
    char cmd[20000], out[4300];
    snprintf(out, sizeof out, "%s/commit.err", tu_tmpdir);
    snprintf(cmd, sizeof cmd,
             "MOESCHED_CALIBRATE_SIGNAL_BEFORE_COMMIT=1 %s 2 -x "
             "MOESCHED_CALIBRATE_SIGNAL_BEFORE_COMMIT %s calibrate --backend host --db %s "
             "--quick >/dev/null 2>%s </dev/null",
             MPIRUN, tu_bin, db, out);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    char *err = tu_slurp(out);
    expect_contains(err, "interrupted");
    free(err);
    assert_same_bytes(before, n, db);
    free(before);
    no_leftovers(db);
}

/* ---- library level: fits, factors and the writer (no MPI) ----------------------------- */

static ex_calib_point compute_point(const char *op, int nargs, const int64_t *args, double t)
{
    ex_calib_point p = {0};
    snprintf(p.op, sizeof p.op, "%s", op);
    p.nargs = nargs;
    memcpy(p.args, args, (size_t)nargs * sizeof *args);
    cdb_work w;
    ms_err err = {{0}};
    if (cdb_work_of(op, args, nargs, &w, &err)) fail_msg("%s", err.msg);
    p.x = w.flops, p.bytes = w.bytes;
    p.mean_s = p.median_s = p.min_s = p.max_s = t;
    p.trials = 20;
    return p;
}

/* Points on an exact line are fitted back exactly; an ffn made of such GEMMs is best
 * composed from the gemm fit; comm alpha-beta likewise. */
static void test_fits(void **state)
{
    (void)state;
    const double a = 5e-6, b = 1e-11;
    ex_calib_point pts[32];
    size_t n = 0;
    static const int ms[] = {1, 8, 64, 512};
    for (size_t i = 0; i < 4; i++) {
        int64_t g[3] = {ms[i], 1024, 2048};
        pts[n] = compute_point("gemm", 3, g, a + b * 2.0 * ms[i] * 1024 * 2048);
        n++;
    }
    /* ffn of 3 x experts GEMMs of m = tokens/experts, n = inter, k = hidden */
    static const int fe[][2] = {{1, 64}, {4, 64}, {16, 256}};
    for (size_t i = 0; i < 3; i++) {
        int64_t f[5] = {fe[i][1], fe[i][0], 2048, 1024, 3};
        double m = (double)fe[i][1] / fe[i][0];
        pts[n++] = compute_point("ffn", 5, f, 3.0 * fe[i][0] * (a + b * 2 * m * 1024 * 2048));
    }
    for (double bytes = 4096; bytes <= 1 << 22; bytes *= 4) {
        ex_calib_point c = {0};
        snprintf(c.op, sizeof c.op, "xchg");
        c.nranks = 2, c.bytes = c.x = bytes, c.mean_s = 2e-5 + 2.5e-10 * bytes, c.trials = 20;
        pts[n++] = c;
    }
    ex_calib_result res = {pts, n, 0};
    ex_calib_fit *fits;
    ex_calib_comm_fit *cf;
    size_t nf, nc;
    ms_err err = {{0}};
    assert_int_equal(ex_calib_fit_all(&res, 0, &fits, &nf, &cf, &nc, &err), 0);
    assert_int_equal(nf, 2);
    assert_string_equal(fits[0].op, "gemm");
    assert_true(fabs(fits[0].alpha_s - a) < 1e-9 * a + 1e-15);
    assert_true(fabs(fits[0].beta_s - b) < 1e-9 * b);
    assert_true(fits[0].r2 > 0.999999);
    assert_true(fits[0].loo_linear < 1e-6);
    assert_string_equal(fits[0].chosen, "linear");
    assert_string_equal(fits[1].op, "ffn");
    assert_true(fits[1].composed_err < 1e-9);
    assert_string_equal(fits[1].chosen, "composed");
    assert_int_equal(nc, 1);
    assert_string_equal(cf[0].op, "xchg");
    assert_true(fabs(cf[0].alpha_s - 2e-5) < 1e-12);
    assert_true(fabs(cf[0].beta_s_per_byte - 2.5e-10) < 1e-18);
    free(fits);
    free(cf);
    /* --shapes forces piecewise everywhere */
    assert_int_equal(ex_calib_fit_all(&res, 1, &fits, &nf, &cf, &nc, &err), 0);
    assert_string_equal(fits[0].chosen, "piecewise");
    assert_string_equal(fits[1].chosen, "piecewise");
    free(fits);
    free(cf);
}

/* Points from a roofline (some compute-bound, some bound by their bytes) are fitted best by
 * the roofline form, which predicts them closely; linear cannot (one function of FLOPs). */
static void test_fit_roofline(void **state)
{
    (void)state;
    const double peak = 50e9, bw = 10e9; /* the curve's reference figures */
    ex_calib_point pts[16];
    size_t n = 0;
    static const int shapes[][3] = {{1, 2048, 2048},  {2, 2048, 2048},  {4, 1024, 1024},
                                    {64, 1024, 1024}, {256, 1024, 1024}, {512, 512, 512},
                                    {1, 4096, 1024},  {128, 2048, 2048}};
    for (size_t i = 0; i < 8; i++) {
        int64_t g[3] = {shapes[i][0], shapes[i][1], shapes[i][2]};
        cdb_work w;
        ms_err err = {{0}};
        assert_int_equal(cdb_work_of("gemm", g, 3, &w, &err), 0);
        /* eff_max 0.5, f_half 1e7, bw_eff 0.8, alpha 5 us */
        double comp = (w.flops + 1e7) / (peak * 0.5), mem = w.bytes / (bw * 0.8);
        pts[n++] = compute_point("gemm", 3, g, 5e-6 + (comp > mem ? comp : mem));
    }
    /* the run's best rates stand for the device's peak and bandwidth */
    double best_f = 0, best_b = 0;
    for (size_t i = 0; i < n; i++) {
        best_f = fmax(best_f, pts[i].x / pts[i].mean_s);
        best_b = fmax(best_b, pts[i].bytes / pts[i].mean_s);
    }
    ex_calib_result res = {pts, n, 0};
    ex_calib_fit *fits;
    ex_calib_comm_fit *cf;
    size_t nf, nc;
    ms_err err = {{0}};
    assert_int_equal(ex_calib_fit_all(&res, 0, &fits, &nf, &cf, &nc, &err), 0);
    assert_string_equal(fits[0].op, "gemm");
    assert_true(fabs(fits[0].peak_flops - best_f) < 1e-9 * best_f);
    assert_true(fabs(fits[0].mem_bw_bytes_per_s - best_b) < 1e-9 * best_b);
    if (strcmp(fits[0].chosen, "roofline"))
        fail_msg("chosen %s (LOO linear %g, roofline %g)", fits[0].chosen, fits[0].loo_linear,
                 fits[0].loo_roofline);
    assert_true(fits[0].loo_roofline < 0.05);
    assert_true(fits[0].loo_linear > 4 * fits[0].loo_roofline);
    assert_true(fits[0].eff_max > 0 && fits[0].eff_max <= 1);
    assert_true(fits[0].bw_eff > 0 && fits[0].bw_eff <= 1);
    free(fits);
    free(cf);
}

static void test_nccl_factors(void **state)
{
    (void)state;
    assert_true(ex_calib_busbw_factor("allreduce", 2) == 1.0);
    assert_true(ex_calib_busbw_factor("allreduce", 4) == 1.5);
    assert_true(ex_calib_busbw_factor("allgather", 4) == 0.75);
    assert_true(ex_calib_busbw_factor("reducescatter", 8) == 0.875);
    assert_true(ex_calib_busbw_factor("xchg", 2) == 1.0);
    assert_true(ex_calib_nccl_size("allgather", 4, 1024) == 4096);
    assert_true(ex_calib_nccl_size("reducescatter", 2, 1024) == 2048);
    assert_true(ex_calib_nccl_size("allreduce", 4, 1024) == 1024);
}

static int never(void) { return 0; }
static int always(void) { return 1; }

/* The writer: a missing file is built from the seed profiles; an abandoned write (or a
 * cancelled one) leaves the file byte-identical; a committed one adds the rows. */
static void test_writer(void **state)
{
    (void)state;
    glob_t gl;
    assert_int_equal(glob(MS_SOURCE_DIR "/costdb/profiles/*.sql", 0, NULL, &gl), 0);
    const char *const *seed = (const char *const *)gl.gl_pathv;
    int nseed = (int)gl.gl_pathc;
    const char *db = tmp_path("w.db");
    unlink(db);
    int64_t g[3] = {64, 256, 256};
    ex_calib_point pts[2] = {compute_point("gemm", 3, g, 1e-4)};
    int64_t g2[3] = {128, 256, 256};
    pts[1] = compute_point("gemm", 3, g2, 2e-4);
    ex_calib_result res = {pts, 2, 0};
    ex_calib_fit *fits;
    ex_calib_comm_fit *cf;
    size_t nf, nc;
    ms_err err = {{0}};
    assert_int_equal(ex_calib_fit_all(&res, 0, &fits, &nf, &cf, &nc, &err), 0);
    cdb_run_row run = {"h", "2026-01-01", "host", "v", NULL};
    int64_t id = 0;
    /* cancelled before the commit: a missing file stays missing */
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, fits, nf,
                                    cf, nc, always, &id, &err),
                     -1);
    expect_contains(err.msg, "interrupted");
    assert_false(file_exists(db));
    no_leftovers(db);
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, fits, nf,
                                    cf, nc, never, &id, &err),
                     0);
    assert_int_equal(id, 1);
    size_t n0;
    unsigned char *before = read_all(db, &n0);
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, fits, nf,
                                    cf, nc, always, &id, &err),
                     -1);
    assert_same_bytes(before, n0, db);
    cdb_writer *w = cdb_writer_begin(db, seed, nseed, &err);
    assert_non_null(w);
    int64_t rid;
    assert_int_equal(cdb_writer_run(w, &run, &rid, &err), 0);
    cdb_writer_abort(w);
    assert_same_bytes(before, n0, db);
    no_leftovers(db);
    free(before);
    cdb *h = cdb_open(db, &err);
    assert_non_null(h);
    const cdb_model_info *m = cdb_model(h, "host-cpu", "gemm");
    assert_string_equal(m->source, "measured");
    double s;
    assert_int_equal(cdb_time(h, "host-cpu", "gemm", g2, 3, &s, &err), 0);
    assert_true(fabs(s - 2e-4) < 1e-9);
    cdb_close(h);
    /* a text file is refused, untouched */
    const char *txt = tmp_path("w.txt");
    tu_write_file(txt, "not sqlite\n");
    assert_null(cdb_writer_begin(txt, seed, nseed, &err));
    expect_contains(err.msg, "not a moesched cost database");
    char *t = tu_slurp(txt);
    assert_string_equal(t, "not sqlite\n");
    free(t);
    free(fits);
    free(cf);
    globfree(&gl);
}

int main(void)
{
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
    setenv("ASAN_OPTIONS", "detect_leaks=0", 0); /* MPI's own allocations under SAN=1 */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits),
        cmocka_unit_test(test_fit_roofline),
        cmocka_unit_test(test_nccl_factors),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_quick_new_db),
        cmocka_unit_test(test_extend_existing),
        cmocka_unit_test(test_refuse_non_db),
        cmocka_unit_test(test_interrupt_while_measuring),
        cmocka_unit_test(test_interrupt_before_commit),
    };
    return cmocka_run_group_tests(tests, tu_cli_setup, tu_cli_teardown);
}

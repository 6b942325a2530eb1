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

/* The default profiles built into path. */
static void build_default(const char *path)
{
    ms_err err = {{0}};
    if (tu_db_build(path, &err) != 0) fail_msg("%s", err.msg);
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
    const char *db = tu_tmp_path("new.db");
    tu_output r = tu_mpi_run(2, "calibrate --backend host --db %s --quick", db);
    if (r.status != 0) fail_msg("calibrate failed (%d): %s\n%.2000s", r.status, r.err, r.out);
    tu_expect_contains_all(r.out, "size(B)", "algbw(GB/s)", "busbw(GB/s)",
                           "# allreduce, 2 ranks (busbw = algbw x 2(n-1)/n = 1)",
                           "# allgather, 2 ranks (busbw = algbw x (n-1)/n = 0.5)",
                           "wrote calibration run 1 to", NULL);
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
    tu_expect_contains_all(r.out, "\"backend\":\"host\"", "\"versions\":\"MPI: ",
                           "BLAS: OpenBLAS", "\"source\":\"measured\"", NULL);
    tu_release(&r);

    /* the simulator runs on it, and its answer differs from the datasheet guess */
    const char *g = tu_tmp_path("g.tg");
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
    const char *db = tu_tmp_path("ext.db");
    build_default(db);
    for (int run = 1; run <= 2; run++) {
        tu_output r = tu_mpi_run(2, "calibrate --backend host --db %s --quick --device my-cpu", db);
        if (r.status != 0) fail_msg("run %d failed (%d): %s\n%.2000s", run, r.status, r.err, r.out);
        char want[64];
        snprintf(want, sizeof want, "wrote calibration run %d to", run);
        tu_expect_contains(r.out, want);
        tu_release(&r);
    }
    tu_output r = tu_run("db --db %s --json", db);
    assert_int_equal(r.status, 0);
    /* a new device row, measured, for the name given */
    tu_expect_contains(r.out, "{\"name\":\"my-cpu\",\"kind\":\"cpu\"");
    tu_expect_contains(r.out, "\"calibration_runs\":[{\"id\":1,");
    tu_expect_contains(r.out, "{\"id\":2,");
    tu_release(&r);
    ms_err err = {{0}};
    cdb *h = cdb_open(db, &err);
    assert_non_null(h);
    const cdb_model_info *m = cdb_model(h, "my-cpu", "gemm");
    assert_non_null(m);
    assert_string_equal(m->source, "measured");
    /* run 2's model is selected: its id is the newest of the device's gemm models */
    r = tu_run("db --db %s", db);
    tu_expect_contains(r.out, "run 2");
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
    const char *txt = tu_tmp_path("notes.db");
    tu_write_file(txt, "these are my notes, not a database\n");
    size_t n;
    unsigned char *before = read_all(txt, &n);
    tu_output r = tu_mpi_run(2, "calibrate --backend host --db %s --quick", txt);
    assert_int_equal(r.status, 1);
    tu_expect_contains(r.err, "not a moesched cost database");
    tu_expect_contains(r.err, "left untouched");
    tu_release(&r);
    assert_same_bytes(before, n, txt);
    free(before);
    no_leftovers(txt);

    /* usage errors need no database */
    r = tu_run("calibrate --backend host --quick");
    assert_int_equal(r.status, 2);
    tu_expect_contains(r.err, "--backend and --db are required");
    tu_release(&r);
    r = tu_run("calibrate --backend nope --db %s", tu_tmp_path("x.db"));
    assert_int_equal(r.status, 2);
    tu_expect_contains(r.err, "unknown backend 'nope'");
    tu_release(&r);
    assert_false(file_exists(tu_tmp_path("x.db")));
}

/* Killed while measuring (SIGTERM or SIGINT to mpirun, which forwards it), a calibration
 * leaves an existing database byte-identical and no temporary copy behind. */
static void test_interrupt_while_measuring(void **state)
{
    (void)state;
    static const char *const sigs[] = {"TERM", "INT"};
    for (size_t k = 0; k < 2; k++) {
        const char *db = tu_tmp_path("kill.db");
        build_default(db);
        size_t n;
        unsigned char *before = read_all(db, &n);
        /* the full grid takes about a minute: stop it 2 s in */
        char cmd[20000], mpirun[128];
        snprintf(cmd, sizeof cmd,
                 "%s%s calibrate --backend host --db %s >%s/kill.out 2>&1 </dev/null & "
                 "pid=$!; sleep 2; kill -%s $pid; wait $pid; echo $? >%s/kill.rc",
                 tu_mpirun_prefix(mpirun, sizeof mpirun, 2), tu_bin, db, tu_tmpdir, sigs[k],
                 tu_tmpdir);
        assert_int_equal(system(cmd), 0);
        char *rc = tu_slurp(tu_tmp_path("kill.rc"));
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
    const char *db = tu_tmp_path("commit.db");
    build_default(db);
    size_t n;
    unsigned char *before = read_all(db, &n);
    /* mpirun -x passes the hook's variable to the ranks */
    char cmd[20000], mpirun[128];
    const char *out = tu_tmp_path("commit.err");
    snprintf(cmd, sizeof cmd,
             "MOESCHED_CALIBRATE_SIGNAL_BEFORE_COMMIT=1 %s-x "
             "MOESCHED_CALIBRATE_SIGNAL_BEFORE_COMMIT %s calibrate --backend host --db %s "
             "--quick >/dev/null 2>%s </dev/null",
             tu_mpirun_prefix(mpirun, sizeof mpirun, 2), tu_bin, db, out);
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    char *err = tu_slurp(out);
    tu_expect_contains(err, "interrupted");
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

/* The fits of n points (ex_calib_fit_all, which must succeed); release with fits_free. */
typedef struct fitted {
    ex_calib_fit *fits;
    ex_calib_comm_fit *cf;
    size_t nf, nc;
} fitted;

static fitted fit_points(ex_calib_point *pts, size_t n, int force_piecewise)
{
    ex_calib_result res = {pts, n, 0};
    fitted f;
    ms_err err = {{0}};
    if (ex_calib_fit_all(&res, force_piecewise, &f.fits, &f.nf, &f.cf, &f.nc, &err) != 0)
        fail_msg("ex_calib_fit_all: %s", err.msg);
    return f;
}

static void fits_free(fitted *f)
{
    free(f->fits);
    free(f->cf);
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
        c.nranks = 2, c.bytes = c.x = bytes, c.trials = 20;
        c.mean_s = c.median_s = 2e-5 + 2.5e-10 * bytes;
        pts[n++] = c;
    }
    fitted f = fit_points(pts, n, 0);
    assert_int_equal(f.nf, 2);
    assert_string_equal(f.fits[0].op, "gemm");
    assert_true(fabs(f.fits[0].alpha_s - a) < 1e-9 * a + 1e-15);
    assert_true(fabs(f.fits[0].beta_s - b) < 1e-9 * b);
    assert_true(f.fits[0].r2 > 0.999999);
    assert_true(f.fits[0].loo_linear < 1e-6);
    assert_string_equal(f.fits[0].chosen, "linear");
    assert_string_equal(f.fits[1].op, "ffn");
    assert_true(f.fits[1].composed_err < 1e-9);
    assert_string_equal(f.fits[1].chosen, "composed");
    assert_int_equal(f.nc, 1);
    assert_string_equal(f.cf[0].op, "xchg");
    assert_true(fabs(f.cf[0].alpha_s - 2e-5) < 1e-12);
    assert_true(fabs(f.cf[0].beta_s_per_byte - 2.5e-10) < 1e-18);
    fits_free(&f);
    /* --shapes forces piecewise everywhere */
    f = fit_points(pts, n, 1);
    assert_string_equal(f.fits[0].chosen, "piecewise");
    assert_string_equal(f.fits[1].chosen, "piecewise");
    fits_free(&f);
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
        best_f = fmax(best_f, pts[i].x / pts[i].median_s);
        best_b = fmax(best_b, pts[i].bytes / pts[i].median_s);
    }
    fitted f = fit_points(pts, n, 0);
    assert_string_equal(f.fits[0].op, "gemm");
    assert_true(fabs(f.fits[0].peak_flops - best_f) < 1e-9 * best_f);
    assert_true(fabs(f.fits[0].mem_bw_bytes_per_s - best_b) < 1e-9 * best_b);
    if (strcmp(f.fits[0].chosen, "roofline"))
        fail_msg("chosen %s (LOO linear %g, roofline %g)", f.fits[0].chosen, f.fits[0].loo_linear,
                 f.fits[0].loo_roofline);
    assert_true(f.fits[0].loo_roofline < 0.05);
    assert_true(f.fits[0].loo_linear > 4 * f.fits[0].loo_roofline);
    assert_true(f.fits[0].eff_max > 0 && f.fits[0].eff_max <= 1);
    assert_true(f.fits[0].bw_eff > 0 && f.fits[0].bw_eff <= 1);
    fits_free(&f);
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
    const char *db = tu_tmp_path("w.db");
    unlink(db);
    int64_t g[3] = {64, 256, 256};
    ex_calib_point pts[2] = {compute_point("gemm", 3, g, 1e-4)};
    int64_t g2[3] = {128, 256, 256};
    pts[1] = compute_point("gemm", 3, g2, 2e-4);
    ex_calib_result res = {pts, 2, 0};
    fitted f = fit_points(pts, 2, 0);
    ms_err err = {{0}};
    cdb_run_row run = {"h", "2026-01-01", "host", "v", NULL};
    int64_t id = 0;
    /* cancelled before the commit: a missing file stays missing */
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, f.fits,
                                    f.nf, f.cf, f.nc, always, &id, &err),
                     -1);
    tu_expect_contains(err.msg, "interrupted");
    assert_false(file_exists(db));
    no_leftovers(db);
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, f.fits,
                                    f.nf, f.cf, f.nc, never, &id, &err),
                     0);
    assert_int_equal(id, 1);
    size_t n0;
    unsigned char *before = read_all(db, &n0);
    assert_int_equal(ex_calib_write(db, seed, nseed, &run, "host-cpu", "cpu", &res, f.fits,
                                    f.nf, f.cf, f.nc, always, &id, &err),
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
    const char *txt = tu_tmp_path("w.txt");
    tu_write_file(txt, "not sqlite\n");
    assert_null(cdb_writer_begin(txt, seed, nseed, &err));
    tu_expect_contains(err.msg, "not a moesched cost database");
    char *t = tu_slurp(txt);
    assert_string_equal(t, "not sqlite\n");
    free(t);
    fits_free(&f);
    globfree(&gl);
}

int main(void)
{
    tu_mpi_timeout_s = 300;
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
    return cmocka_run_group_tests(tests, tu_mpi_setup, tu_cli_teardown);
}

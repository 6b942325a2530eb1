/* Tests of the cost database: building from the real profiles and from test profiles,
 * model selection, piecewise interpolation, the roofline form, ffn and gate composed from
 * gemm, the FinDEP paper profile, error messages, refusal of files that are not ours,
 * and atomic builds (a failed build leaves the old file byte-identical). */
#include <dirent.h>
#include <glob.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"

#define PROFILES MS_SOURCE_DIR "/costdb/profiles"
#define DATASHEET PROFILES "/datasheet.sql"
#define PAPER PROFILES "/findep-paper.sql"
#define CITATION "FinDEP, arXiv 2512.21487, Sec. cost models"
#define DATA MS_SOURCE_DIR "/tests/data/costdb"

static char dir[64]; /* temporary directory of this run */

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_costdb.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    closedir(d);
    return rmdir(dir);
}

/* Reads a whole file; *len gets its size. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Builds path from the given files; fails the test on error. */
static void build_ok(const char *path, const char *const *files, int n)
{
    ms_err err = {""};
    int rc = cdb_build(path, files, n, &err);
    if (rc) fprintf(stderr, "cdb_build: %s\n", err.msg);
    assert_int_equal(rc, 0);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(exists(tmp));
}

static cdb *open_ok(const char *path)
{
    ms_err err = {""};
    cdb *db = cdb_open(path, &err);
    if (!db) fprintf(stderr, "cdb_open: %s\n", err.msg);
    assert_non_null(db);
    return db;
}

/* Asserts that opening path fails with a message containing each of the given strings. */
static void open_fails(const char *path, const char *want1, const char *want2)
{
    ms_err err = {""};
    cdb *db = cdb_open(path, &err);
    assert_null(db);
    if (!strstr(err.msg, want1) || (want2 && !strstr(err.msg, want2)))
        fprintf(stderr, "unexpected message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, want1));
    if (want2) assert_non_null(strstr(err.msg, want2));
}

static void assert_close(double got, double want)
{
    if (fabs(got - want) > 1e-12 + 1e-9 * fabs(want))
        fprintf(stderr, "got %.17g, want %.17g\n", got, want);
    assert_true(fabs(got - want) <= 1e-12 + 1e-9 * fabs(want));
}

/* Relative closeness, for results that must agree to rounding. */
static void assert_rel(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want)))
        fprintf(stderr, "got %.17g, want %.17g (relative %.3g)\n", got, want,
                want ? fabs(got - want) / fabs(want) : got);
    assert_true(fabs(got - want) <= rel * fabs(want));
}

/* The time of op on device; fails the test on error. */
static double op_time(const cdb *db, const char *device, const char *op, const int64_t *args,
                      int nargs)
{
    double t = -1;
    ms_err err = {""};
    int rc = cdb_time(db, device, op, args, nargs, &t, &err);
    if (rc) fprintf(stderr, "cdb_time(%s, %s): %s\n", device, op, err.msg);
    assert_int_equal(rc, 0);
    return t;
}

static double gemm_time(const cdb *db, const char *device, int64_t m, int64_t n, int64_t k)
{
    int64_t args[4] = {m, n, k, 1};
    return op_time(db, device, "gemm", args, 4);
}

static double attn_time(const cdb *db, const char *device, int64_t b, int64_t sq, int64_t skv,
                        int64_t h, int64_t hkv, int64_t dk, int64_t dv)
{
    int64_t args[7] = {b, sq, skv, h, hkv, dk, dv};
    return op_time(db, device, "attn", args, 7);
}

static double ffn_time(const cdb *db, const char *device, int64_t tokens, int64_t experts,
                       int64_t hidden, int64_t inter, int64_t gemms)
{
    int64_t args[5] = {tokens, experts, hidden, inter, gemms};
    return op_time(db, device, "ffn", args, 5);
}

static double gate_time(const cdb *db, const char *device, int64_t tokens, int64_t hidden,
                        int64_t experts)
{
    int64_t args[3] = {tokens, hidden, experts};
    return op_time(db, device, "gate", args, 3);
}

/* Builds all shipped profiles (sorted, as the Makefile does) into path. */
static void build_shipped(const char *path)
{
    glob_t g;
    assert_int_equal(glob(PROFILES "/*.sql", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 2);
    build_ok(path, (const char *const *)g.gl_pathv, (int)g.gl_pathc);
    globfree(&g);
}

/* The datasheet GPUs, which all have roofline gemm and attn models. */
static const char *const datasheet_gpus[] = {"a6000", "a10", "a100", "h20",
                                             "h100",  "h200", "l40s"};
#define NGPUS (sizeof datasheet_gpus / sizeof datasheet_gpus[0])

/* ---- the real profiles ------------------------------------------------------------- */

static void test_real_profiles_gemm_h100(void **state)
{
    (void)state;
    const char *path = tmp_path("real.db");
    build_shipped(path);

    /* the row values, read with plain SQL */
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT m.form, m.alpha_s, m.beta_s, m.efficiency, "
                                        "m.eff_max, m.f_half_flops, m.bw_eff, d.peak_flops, "
                                        "d.mem_bw_bytes_per_s FROM model m JOIN device d ON "
                                        "d.name = m.device WHERE m.device = 'h100' AND m.op = "
                                        "'gemm'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "roofline");
    double alpha = sqlite3_column_double(st, 1);
    assert_int_equal(sqlite3_column_type(st, 2), SQLITE_NULL); /* no beta */
    assert_int_equal(sqlite3_column_type(st, 3), SQLITE_NULL); /* the curve says it */
    double eff_max = sqlite3_column_double(st, 4), f_half = sqlite3_column_double(st, 5);
    double bw_eff = sqlite3_column_double(st, 6), peak = sqlite3_column_double(st, 7);
    double bw = sqlite3_column_double(st, 8);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT value FROM meta WHERE key = 'schema_version'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), CDB_SCHEMA_VERSION);
    assert_int_equal(CDB_SCHEMA_VERSION, 2);
    sqlite3_finalize(st);
    sqlite3_close(h);

    assert_close(peak, 989e12);
    assert_close(bw, 3350e9);
    assert_close(alpha, 5e-6);
    assert_close(eff_max, 0.75);
    assert_true(f_half == 2e9); /* exactly: 2e9 x (peak / 989e12) with peak = 989e12 */
    assert_close(bw_eff, 0.8);

    cdb *db = open_ok(path);
    assert_string_equal(cdb_path(db), path);
    /* compute-bound: t = alpha + F / (peak * eff(F)), eff(F) = eff_max F / (F + f_half) */
    double F = 2.0 * 4096 * 1536 * 5120;
    double eff = eff_max * F / (F + f_half);
    double t = gemm_time(db, "h100", 4096, 1536, 5120);
    assert_rel(t, alpha + F / (peak * eff), 1e-12);
    /* count multiplies the work (one launch, as before) */
    int64_t args[4] = {4096, 1536, 5120, 3};
    eff = eff_max * 3 * F / (3 * F + f_half);
    assert_rel(op_time(db, "h100", "gemm", args, 4), alpha + 3 * F / (peak * eff), 1e-12);
    /* memory-bound (decode, m = 1): t = alpha + bytes / (bw * bw_eff) */
    double B = 2.0 * (1 * 5120 + 5120 * 1536 + 1 * 1536);
    assert_rel(gemm_time(db, "h100", 1, 1536, 5120), alpha + B / (bw * bw_eff), 1e-12);

    const cdb_model_info *m = cdb_model(db, "h100", "gemm");
    assert_non_null(m);
    assert_string_equal(m->source, "datasheet");
    assert_string_equal(m->form, "roofline");
    assert_close(m->alpha_s, alpha);
    assert_close(m->beta_s_per_x, 0);
    assert_close(m->eff_max, 0.75);
    assert_close(m->f_half_flops, 2e9);
    assert_close(m->bw_eff, 0.8);
    assert_close(m->peak_flops, 989e12);
    assert_close(m->mem_bw_bytes_per_s, 3350e9);

    /* every device the brief names is there, with gemm and attn models */
    const char *devices[] = {"h100", "h200",  "h20",      "a100",        "a6000",
                             "a10",  "l40s", "host-cpu", "findep-paper"};
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        assert_true(cdb_has_device(db, devices[i]));
        assert_non_null(cdb_model(db, devices[i], "gemm"));
        assert_non_null(cdb_model(db, devices[i], "attn"));
    }
    for (size_t i = 0; i < NGPUS; i++) {
        assert_string_equal(cdb_model(db, datasheet_gpus[i], "gemm")->form, "roofline");
        assert_string_equal(cdb_model(db, datasheet_gpus[i], "attn")->form, "roofline");
        assert_close(cdb_model(db, datasheet_gpus[i], "attn")->eff_max, 0.5);
        /* f_half scales with peak: the fill time f_half / (peak eff_max) is the same */
        const cdb_model_info *g = cdb_model(db, datasheet_gpus[i], "gemm");
        assert_rel(g->f_half_flops / g->peak_flops, 2e9 / 989e12, 1e-12);
    }
    assert_string_equal(cdb_model(db, "host-cpu", "gemm")->form, "linear");
    assert_false(cdb_has_device(db, "h999"));
    cdb_close(db);
}

/* Time per FLOP strictly falls as shapes grow, for gemm and attn on every datasheet GPU;
 * a large H100 GEMM comes close to eff_max x peak. */
static void test_roofline_per_flop_decreasing(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET};
    const char *path = tmp_path("roof.db");
    build_ok(path, files, 1);
    cdb *db = open_ok(path);
    for (size_t d = 0; d < NGPUS; d++) {
        const char *dev = datasheet_gpus[d];
        double prev_cube = INFINITY, prev_skinny = INFINITY, prev_pre = INFINITY,
               prev_dec = INFINITY, prev_curve = INFINITY;
        const double alpha = cdb_model(db, dev, "gemm")->alpha_s;
        for (int64_t s = 16; s <= 32768; s *= 2) {
            /* square GEMMs */
            double t = gemm_time(db, dev, s, s, s), F = 2.0 * s * s * s;
            double per = t / F;
            assert_true(per < prev_cube);
            prev_cube = per;
            /* not only the launch overhead: the efficiency curve itself */
            assert_true((t - alpha) / F < prev_curve);
            prev_curve = (t - alpha) / F;
            /* m tokens through a 4096 x 4096 weight (decode up to prefill) */
            per = gemm_time(db, dev, s, 4096, 4096) / (2.0 * s * 4096 * 4096);
            assert_true(per < prev_skinny);
            prev_skinny = per;
            /* prefill attention, S = s: 32 heads, 8 kv heads, head dim 128 */
            per = attn_time(db, dev, 1, s, s, 32, 8, 128, 128) / (2.0 * 32 * s * s * 256);
            assert_true(per < prev_pre);
            prev_pre = per;
            /* decode attention over a KV cache of s tokens, batch 8 */
            per = attn_time(db, dev, 8, 1, s, 32, 8, 128, 128) / (2.0 * 8 * 32 * s * 256);
            assert_true(per < prev_dec);
            prev_dec = per;
        }
        /* and never faster than eff_max x peak */
        const cdb_model_info *g = cdb_model(db, dev, "gemm");
        assert_true(1 / prev_cube < g->eff_max * g->peak_flops);
        const cdb_model_info *a = cdb_model(db, dev, "attn");
        assert_true(1 / prev_pre < a->eff_max * a->peak_flops);
    }
    /* an 8192^3 GEMM on H100: within 1% of 0.75 x 989 TFLOP/s, a 256^3 one far below */
    double F = 2.0 * 8192 * 8192 * 8192;
    double rate = F / gemm_time(db, "h100", 8192, 8192, 8192);
    assert_true(rate > 0.99 * 0.75 * 989e12 && rate < 0.75 * 989e12);
    F = 2.0 * 256 * 256 * 256;
    rate = F / gemm_time(db, "h100", 256, 256, 256);
    assert_true(rate < 0.05 * 989e12);
    cdb_close(db);
}

/* Every compute op of the IR costs on every device the shipped profiles declare. */
static void test_every_op_every_device(void **state)
{
    (void)state;
    const char *path = tmp_path("all.db");
    build_shipped(path);
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT name FROM device ORDER BY name", -1, &st,
                                        NULL),
                     SQLITE_OK);
    char devices[32][64];
    int ndev = 0;
    while (sqlite3_step(st) == SQLITE_ROW && ndev < 32)
        snprintf(devices[ndev++], sizeof devices[0], "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    assert_true(ndev >= 9);
    cdb *db = open_ok(path);

    /* model-like shapes per op, and for any op the same value in every arg */
    static const struct {
        const char *op;
        int64_t a[7];
    } shapes[] = {
        {"gemm", {4096, 1536, 5120, 1}},       {"gemm", {1, 7168, 2048, 4}},
        {"attn", {4, 4096, 4096, 64, 4, 128, 128}}, {"attn", {64, 1, 8192, 128, 128, 192, 128}},
        {"ffn", {8192, 16, 4096, 1536, 3}},    {"ffn", {5, 32, 7168, 2048, 2}},
        {"gate", {16384, 5120, 160}},          {"gate", {1, 4096, 128}},
    };
    static const int64_t same[] = {1, 3, 128, 4096};
    ms_err err = {""};
    for (int d = 0; d < ndev; d++) {
        int ncompute = 0;
        for (int op = 0; op < TG_OP__COUNT; op++) {
            const tg_op_info *info = tg_op_get((tg_op)op);
            if (info->kind != TG_KIND_COMPUTE) continue;
            ncompute++;
            int nshapes = 0;
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
                if (strcmp(shapes[i].op, info->name)) continue;
                nshapes++;
                double t = op_time(db, devices[d], info->name, shapes[i].a, info->nargs);
                assert_true(isfinite(t) && t > 0);
            }
            assert_true(nshapes >= 2); /* a new compute op needs shapes here */
            for (size_t v = 0; v < sizeof same / sizeof same[0]; v++) {
                int64_t a[TG_MAX_ARGS];
                for (int i = 0; i < TG_MAX_ARGS; i++) a[i] = same[v];
                double t = op_time(db, devices[d], info->name, a, info->nargs);
                assert_true(isfinite(t) && t > 0);
            }
        }
        assert_true(ncompute >= 4);
        /* an ffn with no tokens costs nothing */
        int64_t none[5] = {0, 16, 4096, 1536, 3};
        double t = -1;
        assert_int_equal(cdb_time(db, devices[d], "ffn", none, 5, &t, &err), 0);
        assert_true(t == 0);
    }
    cdb_close(db);
}

/* ---- selection order --------------------------------------------------------------- */

static void test_selection_measured_wins(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, DATA "/selection.sql"};
    const char *path = tmp_path("sel.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);
    const cdb_model_info *m = cdb_model(db, "h100", "gemm");
    assert_non_null(m);
    assert_string_equal(m->source, "measured");
    assert_close(m->alpha_s, 3e-5); /* id 102, not 99 */
    assert_close(gemm_time(db, "h100", 1000, 1000, 1000), 3e-5 + 1.6e-15 * 2e9);
    /* other devices keep their datasheet model */
    assert_string_equal(cdb_model(db, "h200", "gemm")->source, "datasheet");
    cdb_close(db);
}

static void test_selection_newest_within_source(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, DATA "/selection_paper.sql"};
    const char *path = tmp_path("paper.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);
    const cdb_model_info *m = cdb_model(db, "h100", "gemm");
    assert_non_null(m);
    assert_string_equal(m->source, "paper");
    assert_string_equal(m->citation, "newer paper");
    assert_close(gemm_time(db, "h100", 1000, 1000, 1000), 2e-4 + 3e-15 * 2e9);
    cdb_close(db);
}

/* ---- piecewise --------------------------------------------------------------------- */

static void test_piecewise(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, DATA "/piecewise.sql"};
    const char *path = tmp_path("pw.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);

    const cdb_model_info *m = cdb_model(db, "toy", "gemm");
    assert_non_null(m);
    assert_string_equal(m->form, "piecewise");
    assert_string_equal(m->source, "measured");
    assert_int_equal(m->npoints, 3);
    assert_close(m->x_min, 1e9);
    assert_close(m->x_max, 4e9);

    /* x = 2*m*n*k with m = n = 1000: x = 2e6 * k */
    assert_close(gemm_time(db, "toy", 1000, 1000, 500), 1e-3);   /* on a point */
    assert_close(gemm_time(db, "toy", 1000, 1000, 1000), 3e-3);  /* the mean of two rows */
    assert_close(gemm_time(db, "toy", 1000, 1000, 2000), 5e-3);  /* the last point */
    assert_close(gemm_time(db, "toy", 1000, 1000, 750), 2e-3);   /* interpolated */
    assert_close(gemm_time(db, "toy", 1000, 1000, 1500), 4e-3);  /* second segment */
    assert_close(gemm_time(db, "toy", 1000, 1000, 400), 0.6e-3); /* below: first segment */
    assert_close(gemm_time(db, "toy", 1000, 1000, 100), 0);      /* ... never below 0 */
    assert_close(gemm_time(db, "toy", 1000, 1000, 3000), 7e-3);  /* above: last segment */

    /* a single point scales with x */
    assert_int_equal(cdb_model(db, "toy1", "gemm")->npoints, 1);
    assert_close(gemm_time(db, "toy1", 1000, 1000, 1500), 6e-3);
    assert_close(gemm_time(db, "toy1", 1000, 1000, 250), 1e-3);
    cdb_close(db);
}

/* ---- query errors ------------------------------------------------------------------ */

static void test_missing_model(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, DATA "/piecewise.sql"};
    const char *path = tmp_path("miss.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);
    assert_true(cdb_has_device(db, "nomodel"));
    assert_null(cdb_model(db, "nomodel", "gemm"));
    int64_t args[4] = {10, 10, 10, 1};
    double t = 42;
    ms_err err = {""};
    assert_int_equal(cdb_time(db, "nomodel", "gemm", args, 4, &t, &err), -1);
    assert_true(t == 42);
    assert_non_null(strstr(err.msg, "no cost model for op 'gemm' on device 'nomodel'"));
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "devices with a 'gemm' model: a10, a100, "));
    assert_non_null(strstr(err.msg, "h100"));
    assert_null(strstr(err.msg, "nomodel, ")); /* not listed among those with a model */
    cdb_close(db);
}

static void test_unknown_device(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET};
    const char *path = tmp_path("unk.db");
    build_ok(path, files, 1);
    cdb *db = open_ok(path);
    int64_t args[4] = {10, 10, 10, 1};
    double t;
    ms_err err = {""};
    assert_int_equal(cdb_time(db, "h999", "gemm", args, 4, &t, &err), -1);
    assert_non_null(strstr(err.msg, "unknown device 'h999'"));
    assert_non_null(strstr(err.msg, "known devices: a10, a100, a6000, h100"));
    assert_null(cdb_model(db, "h999", "gemm"));
    cdb_close(db);
}

static void test_feature(void **state)
{
    (void)state;
    ms_err err = {""};
    double x = 0;
    int64_t a[4] = {4096, 1536, 5120, 2};
    assert_int_equal(cdb_feature("gemm", a, 4, &x, &err), 0);
    assert_close(x, 2.0 * 4096 * 1536 * 5120 * 2);
    assert_int_equal(cdb_feature("gemm", a, 3, &x, &err), 0); /* count defaults to 1 */
    assert_close(x, 2.0 * 4096 * 1536 * 5120);
    assert_int_equal(cdb_feature("gemm", a, 2, &x, &err), -1);
    assert_non_null(strstr(err.msg, "missing arg k"));
    int64_t neg[4] = {4, -1, 4, 1};
    assert_int_equal(cdb_feature("gemm", neg, 4, &x, &err), -1);
    assert_non_null(strstr(err.msg, "negative"));
    int64_t zero[4] = {4, 0, 4, 1}; /* the IR's minimum is 1 */
    assert_int_equal(cdb_feature("gemm", zero, 4, &x, &err), -1);
    assert_non_null(strstr(err.msg, "arg n = 0 is below its minimum 1"));
    int64_t five[5] = {1, 2, 3, 4, 5};
    assert_int_equal(cdb_feature("gemm", five, 5, &x, &err), -1);
    assert_non_null(strstr(err.msg, "takes 4 args, got 5"));

    const char *comm[] = {"delay", "xchg", "allreduce", "allgather", "reducescatter"};
    for (size_t i = 0; i < sizeof comm / sizeof comm[0]; i++) {
        ms_err_clear(&err);
        assert_int_equal(cdb_feature(comm[i], a, 2, &x, &err), -1);
        char want[64];
        snprintf(want, sizeof want, "op '%s' has no cost-DB feature", comm[i]);
        assert_non_null(strstr(err.msg, want));
    }
    assert_int_equal(cdb_feature("frobnicate", a, 4, &x, &err), -1);
    assert_non_null(strstr(err.msg, "unknown op 'frobnicate'"));
}

/* FLOPs and bytes of each compute op against hand computation (bf16: 2 bytes). */
static void test_work_of_ops(void **state)
{
    (void)state;
    ms_err err = {""};
    cdb_work w;
    double x;

    /* gemm: (4096 x 5120)(5120 x 1536), twice */
    int64_t g[4] = {4096, 1536, 5120, 2};
    assert_int_equal(cdb_work_of("gemm", g, 4, &w, &err), 0);
    assert_true(w.flops == 2.0 * 4096 * 1536 * 5120 * 2);
    assert_true(w.bytes == 2.0 * (4096.0 * 5120 + 5120.0 * 1536 + 4096.0 * 1536) * 2);

    /* attn: b=2, sq=512, skv=1024, h=32, hkv=8, dk=192, dv=128 */
    int64_t a[7] = {2, 512, 1024, 32, 8, 192, 128};
    assert_int_equal(cdb_work_of("attn", a, 7, &w, &err), 0);
    /* Q K^T: 2*512*1024*192 per head, P V: 2*512*1024*128 per head */
    double flops = 2 * 32 * (2.0 * 512 * 1024 * 192 + 2.0 * 512 * 1024 * 128);
    assert_true(w.flops == flops);
    assert_int_equal(cdb_feature("attn", a, 7, &x, &err), 0);
    assert_true(x == flops);
    double q = 2 * 512 * 32 * 192.0, k = 2 * 1024 * 8 * 192.0, v = 2 * 1024 * 8 * 128.0,
           o = 2 * 512 * 32 * 128.0; /* elements */
    assert_true(w.bytes == 2 * (q + k + v + o));
    /* FinDEP's y = heads B S^2 (dk + dv) is half our x when sq = skv = S */
    int64_t pre[7] = {3, 1000, 1000, 16, 16, 128, 128};
    assert_int_equal(cdb_feature("attn", pre, 7, &x, &err), 0);
    assert_true(x == 2 * (16.0 * 3 * 1000 * 1000 * 256));
    int64_t six[6] = {2, 512, 1024, 32, 8, 192};
    assert_int_equal(cdb_work_of("attn", six, 6, &w, &err), -1);
    assert_non_null(strstr(err.msg, "missing arg dv"));

    /* ffn: 4096 token-assignments over 16 experts, hidden 7168, inter 2048, SwiGLU */
    int64_t f[5] = {4096, 16, 7168, 2048, 3};
    assert_int_equal(cdb_work_of("ffn", f, 5, &w, &err), 0);
    assert_true(w.flops == 2.0 * 4096 * 7168 * 2048 * 3);
    double weights = 16.0 * 3 * 7168 * 2048 * 2;            /* bytes */
    double acts = 3 * (4096.0 * 7168 + 4096.0 * 2048) * 2;  /* in and out of each GEMM */
    assert_true(w.bytes == weights + acts);
    cdb_work w4;
    assert_int_equal(cdb_work_of("ffn", f, 4, &w4, &err), 0); /* gemms defaults to 3 */
    assert_true(w4.flops == w.flops && w4.bytes == w.bytes);
    /* the same as gemms x experts GEMMs of the per-expert shape m = tokens / experts */
    int64_t pe[4] = {4096 / 16, 2048, 7168, 1};
    cdb_work we;
    assert_int_equal(cdb_work_of("gemm", pe, 4, &we, &err), 0);
    assert_true(3 * 16 * we.flops == w.flops);
    assert_true(3 * 16 * we.bytes == w.bytes);
    int64_t f0[5] = {0, 16, 7168, 2048, 3}; /* no tokens: no FLOPs, the weights' bytes */
    assert_int_equal(cdb_work_of("ffn", f0, 5, &w, &err), 0);
    assert_true(w.flops == 0 && w.bytes == weights);
    int64_t fe0[5] = {10, 0, 7168, 2048, 3};
    assert_int_equal(cdb_work_of("ffn", fe0, 5, &w, &err), -1);
    assert_non_null(strstr(err.msg, "arg experts = 0 is below its minimum 1"));

    /* gate: 8192 tokens x hidden 5120 x 160 experts */
    int64_t r[3] = {8192, 5120, 160};
    assert_int_equal(cdb_work_of("gate", r, 3, &w, &err), 0);
    assert_true(w.flops == 2.0 * 8192 * 5120 * 160);
    assert_true(w.bytes == 2.0 * (8192.0 * 5120 + 5120.0 * 160 + 8192.0 * 160));
    assert_int_equal(cdb_feature("gate", r, 3, &x, &err), 0);
    assert_true(x == w.flops);
}

/* The feature table mirrors the IR's op table: every compute op has a feature taking the
 * IR's args, every other op is known and refused. */
static void test_feature_mirrors_ir(void **state)
{
    (void)state;
    for (int op = 0; op < TG_OP__COUNT; op++) {
        const tg_op_info *info = tg_op_get((tg_op)op);
        int64_t args[TG_MAX_ARGS];
        for (int i = 0; i < TG_MAX_ARGS; i++) args[i] = 3;
        double x = -1;
        ms_err err = {""};
        int rc = cdb_feature(info->name, args, info->nargs, &x, &err);
        if (info->kind == TG_KIND_COMPUTE) {
            if (rc) fprintf(stderr, "%s: %s\n", info->name, err.msg);
            assert_int_equal(rc, 0);
            assert_true(x > 0);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err.msg, "has no cost-DB feature"));
        }
    }
}

/* ---- composite costs and the paper profile ----------------------------------------- */

/* Under the paper's linear gemm fit, ffn is exactly gemms x experts GEMMs of the
 * per-expert shape, i.e. FinDEP's t_e = 3 (E/eg) t_gm(m_e M H); gate is one GEMM. */
static void test_composite_ffn_paper(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, PAPER};
    const char *path = tmp_path("comp.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);
    const char *dev = "findep-paper";
    assert_null(cdb_model(db, dev, "ffn"));
    int composed = 0;
    const cdb_model_info *used = cdb_model_used(db, dev, "ffn", &composed);
    assert_non_null(used);
    assert_int_equal(composed, 1);
    assert_string_equal(used->op, "gemm");
    assert_string_equal(used->source, "paper");

    static const int64_t shapes[][5] = {
        {1024, 8, 4096, 1536, 3},   /* 128 tokens per expert */
        {65536, 32, 7168, 2048, 3}, /* 2048 per expert */
        {48, 48, 5120, 1536, 2},    /* one token per expert, plain MLP */
        {7, 1, 64, 64, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t *a = shapes[i];
        int64_t m_e = a[0] / a[1];
        assert_true(m_e * a[1] == a[0]);
        double want = (double)a[4] * (double)a[1] * gemm_time(db, dev, m_e, a[3], a[2]);
        assert_rel(ffn_time(db, dev, a[0], a[1], a[2], a[3], a[4]), want, 1e-12);
    }
    /* FinDEP's own formula, ms reading: E = 128 experts on eg = 4 GPUs (32 local),
     * m_e = 96 tokens per expert, M = 4096, H = 1536 */
    double t_gm = 0.17 + 8.59e-11 * (96.0 * 4096 * 1536); /* ms, x = m*k*n */
    assert_rel(ffn_time(db, dev, 96 * 32, 32, 4096, 1536, 3), 3 * 32 * t_gm * 1e-3, 1e-12);
    /* tokens that do not divide evenly: the mean m = tokens / experts, still linear */
    assert_rel(ffn_time(db, dev, 1000, 3, 4096, 1536, 3),
               3 * (3 * 1.7e-4 + 4.295e-14 * 2.0 * 1000 * 4096 * 1536), 1e-12);
    /* no tokens: nothing to do, no launches */
    assert_true(ffn_time(db, dev, 0, 32, 4096, 1536, 3) == 0);
    /* gate: one GEMM tokens x hidden x experts */
    assert_rel(gate_time(db, dev, 8192, 4096, 128), gemm_time(db, dev, 8192, 128, 4096),
               1e-12);
    assert_rel(gate_time(db, dev, 8192, 4096, 128),
               (0.17 + 8.59e-11 * (8192.0 * 4096 * 128)) * 1e-3, 1e-12);

    /* the same composition holds under a roofline gemm model */
    assert_int_equal(cdb_model_used(db, "h100", "ffn", &composed) == cdb_model(db, "h100", "gemm"),
                     1);
    assert_rel(ffn_time(db, "h100", 8192, 16, 7168, 2048, 3),
               3.0 * 16 * gemm_time(db, "h100", 512, 2048, 7168), 1e-12);
    assert_rel(gate_time(db, "h100", 8192, 7168, 256), gemm_time(db, "h100", 8192, 256, 7168),
               1e-12);
    assert_true(ffn_time(db, "h100", 0, 16, 7168, 2048, 3) == 0);
    /* attn has its own model, never a composition */
    assert_int_equal(cdb_model_used(db, "h100", "attn", &composed) == cdb_model(db, "h100", "attn"),
                     1);
    assert_int_equal(composed, 0);
    cdb_close(db);
}

/* FinDEP's published fits under the ms reading, its A2E fits, and the topology derived
 * from the 4/4 fit. */
static void test_paper_profile(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, PAPER};
    const char *path = tmp_path("findep.db");
    build_ok(path, files, 2);
    cdb *db = open_ok(path);
    const char *dev = "findep-paper";
    assert_true(cdb_has_device(db, dev));

    const cdb_model_info *g = cdb_model(db, dev, "gemm");
    assert_non_null(g);
    assert_string_equal(g->form, "linear");
    assert_string_equal(g->source, "paper");
    assert_string_equal(g->citation, CITATION);
    assert_rel(g->alpha_s, 0.17e-3, 1e-15);
    assert_rel(g->beta_s_per_x, 8.59e-11 * 1e-3 / 2, 1e-15);
    /* m k n = 1e9 multiply-adds */
    assert_rel(gemm_time(db, dev, 1000, 1000, 1000), 0.17e-3 + 8.59e-11 * 1e9 * 1e-3, 1e-12);
    assert_rel(gemm_time(db, dev, 4096, 1536, 5120),
               (0.17 + 8.59e-11 * (4096.0 * 1536 * 5120)) * 1e-3, 1e-12);

    const cdb_model_info *a = cdb_model(db, dev, "attn");
    assert_non_null(a);
    assert_string_equal(a->citation, CITATION);
    /* y = heads B S^2 (dk + dv): 16 heads, B = 2, S = 1024, dk = 192, dv = 128 */
    double y = 16.0 * 2 * 1024 * 1024 * (192 + 128);
    assert_rel(attn_time(db, dev, 2, 1024, 1024, 16, 16, 192, 128),
               (0.15 + 1.54e-11 * y) * 1e-3, 1e-12);

    /* A2E fits: bytes = 2 z (z = m_e E M / eg bf16 elements), beta per byte = beta/2 */
    assert_int_equal(cdb_comm_count(db), 3);
    assert_null(cdb_comm_get(db, 3));
    static const struct {
        int ag, eg;
        double alpha, beta; /* as published: ms, ms per element */
    } fits[] = {{1, 7, 0.10, 9.61e-7}, {2, 6, 0.01, 1.28e-6}, {4, 4, 0.37, 2.55e-6}};
    double z = 96.0 * 128 * 4096 / 4;
    for (size_t i = 0; i < 3; i++) {
        const cdb_comm_info *c = cdb_comm_find(db, dev, "a2e", fits[i].ag, fits[i].eg);
        assert_non_null(c);
        assert_string_equal(c->source, "paper");
        assert_string_equal(c->citation, CITATION);
        assert_rel(c->alpha_s, fits[i].alpha * 1e-3, 1e-15);
        assert_rel(c->alpha_s + c->beta_s_per_byte * 2 * z,
                   (fits[i].alpha + fits[i].beta * z) * 1e-3, 1e-12);
    }
    assert_null(cdb_comm_find(db, dev, "a2e", 3, 5));
    assert_null(cdb_comm_find(db, "h100", "a2e", 4, 4));

    /* the topology: 2 x latency + bytes / bandwidth reproduces the 4/4 fit */
    topo t;
    ms_err err = {""};
    int rc = topo_load(MS_SOURCE_DIR "/topologies/findep-paper-1x8.yaml", &t, &err);
    if (rc) fprintf(stderr, "topo_load: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(t.device, dev);
    assert_true(cdb_has_device(db, t.device));
    assert_int_equal(t.nodes, 1);
    assert_int_equal(t.gpus_per_node, 8);
    assert_int_equal(t.nics_per_node, 0);
    assert_rel(t.intra.latency_s, 0.37e-3 / 2, 1e-12);
    assert_rel(t.intra.bw_bytes_per_s, 2 / (2.55e-6 * 1e-3), 1e-12);
    const cdb_comm_info *c44 = cdb_comm_find(db, dev, "a2e", 4, 4);
    for (double zz = 1e3; zz <= 1e9; zz *= 10)
        assert_rel(2 * t.intra.latency_s + 2 * zz / t.intra.bw_bytes_per_s,
                   c44->alpha_s + c44->beta_s_per_byte * 2 * zz, 1e-12);
    cdb_close(db);
}

/* ffn's own model against composition from gemm: the better source wins, a tie goes to
 * the op's own model; attn never composes; errors say what is missing. */
static void test_composite_selection(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, DATA "/piecewise.sql", DATA "/composite.sql"};
    const char *path = tmp_path("compsel.db");
    build_ok(path, files, 3);
    cdb *db = open_ok(path);
    int composed = -1;

    /* cmp: its own datasheet ffn model (302) beats composing from a datasheet gemm */
    const cdb_model_info *m = cdb_model_used(db, "cmp", "ffn", &composed);
    assert_int_equal(composed, 0);
    assert_string_equal(m->op, "ffn");
    double x = 2.0 * 1000 * 64 * 32 * 3; /* tokens hidden inter gemms */
    assert_rel(ffn_time(db, "cmp", 1000, 4, 64, 32, 3), 2e-5 + 3e-12 * x, 1e-12);
    assert_true(ffn_time(db, "cmp", 0, 4, 64, 32, 3) == 0); /* no tokens: 0 with any model */
    m = cdb_model_used(db, "cmp", "gate", &composed);
    assert_int_equal(composed, 1);
    assert_rel(gate_time(db, "cmp", 100, 64, 8), 1e-5 + 1e-12 * 2.0 * 100 * 64 * 8, 1e-12);

    /* cmp2: a measured gemm beats its own datasheet ffn */
    m = cdb_model_used(db, "cmp2", "ffn", &composed);
    assert_int_equal(composed, 1);
    assert_string_equal(m->source, "measured");
    assert_rel(ffn_time(db, "cmp2", 1000, 4, 64, 32, 3),
               3 * 4 * (1e-5 + 2e-12 * 2.0 * 250 * 64 * 32), 1e-12);

    /* toy: ffn composes from a piecewise gemm model (x = 2*250*2000*1000 = 1e9 FLOP
     * per expert GEMM: on the first point, 1 ms) */
    assert_rel(ffn_time(db, "toy", 1000, 4, 1000, 2000, 2), 2 * 4 * 1e-3, 1e-12);

    ms_err err = {""};
    double t = 42;
    int64_t f[5] = {10, 2, 64, 32, 3};
    assert_int_equal(cdb_time(db, "gemmless", "ffn", f, 5, &t, &err), -1);
    assert_true(t == 42);
    assert_non_null(strstr(err.msg, "no cost model for op 'ffn' on device 'gemmless'"));
    assert_non_null(strstr(err.msg, "nor a 'gemm' model to compose it from"));
    assert_non_null(strstr(err.msg, "devices with a 'ffn' model or a 'gemm' model: a10, "));
    assert_null(cdb_model_used(db, "gemmless", "ffn", &composed));
    assert_int_equal(composed, 0);
    int64_t at[7] = {1, 16, 16, 2, 2, 8, 8};
    assert_rel(op_time(db, "gemmless", "attn", at, 7), 1e-5 + 1e-12 * 2.0 * 2 * 16 * 16 * 16,
               1e-12);
    assert_int_equal(cdb_time(db, "toy", "attn", at, 7, &t, &err), -1);
    assert_non_null(strstr(err.msg, "no cost model for op 'attn' on device 'toy'"));
    assert_non_null(strstr(err.msg, "devices with a 'attn' model: a10, a100, "));
    assert_non_null(strstr(err.msg, "gemmless"));
    cdb_close(db);
}

/* ---- bad seed files: the build fails naming the file, the old database survives ------ */

static void check_bad_build(const char *bad, const char *want)
{
    const char *path = tmp_path("keep.db");
    const char *good[] = {DATASHEET};
    build_ok(path, good, 1);
    size_t len0, len1;
    char *before = slurp(path, &len0);
    assert_non_null(before);

    const char *files[] = {DATASHEET, bad};
    ms_err err = {""};
    assert_int_equal(cdb_build(path, files, 2, &err), -1);
    const char *base = strrchr(bad, '/') + 1;
    if (!strstr(err.msg, base) || !strstr(err.msg, want))
        fprintf(stderr, "unexpected message: %s\n", err.msg);
    assert_non_null(strstr(err.msg, base));
    assert_non_null(strstr(err.msg, want));

    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(exists(tmp));
    char *after = slurp(path, &len1);
    assert_non_null(after);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    cdb *db = open_ok(path); /* still a good database */
    assert_non_null(cdb_model(db, "h100", "gemm"));
    cdb_close(db);
}

static void test_bad_syntax(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_syntax.sql", "bad_syntax.sql:5: near \"'h100'\": syntax error");
}

static void test_bad_source(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_source.sql", "CHECK constraint failed: source IN");
}

static void test_bad_foreign_key(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_fk.sql", "FOREIGN KEY constraint failed");
}

static void test_bad_type(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_type.sql", "CHECK constraint failed: memory_bytes");
}

static void test_bad_statement(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_statement.sql", "bad_statement.sql:3: a profile may only INSERT");
}

static void test_bad_meta(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_meta.sql", "bad_meta.sql:2: a profile may only INSERT");
}

static void test_bad_commit(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_commit.sql", "bad_commit.sql:3: a profile may only INSERT");
}

static void test_bad_piecewise(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_piecewise.sql", "has no measurements");
}

static void test_bad_provenance(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_provenance.sql", "citation IS NOT NULL");
}

static void test_bad_roofline(void **state)
{
    (void)state;
    check_bad_build(DATA "/bad_roofline.sql",
                    "roofline model 17 ('gemm' on 'host-cpu') needs the device's peak_flops "
                    "and mem_bw_bytes_per_s");
    check_bad_build(DATA "/bad_roofline_curve.sql", "CHECK constraint failed");
}

static void test_missing_sql_file(void **state)
{
    (void)state;
    check_bad_build(DATA "/no_such_file.sql", "cannot read");
}

static void test_stale_tmp_replaced(void **state)
{
    (void)state;
    const char *path = tmp_path("stale.db");
    write_file(tmp_path("stale.db.tmp"), "junk", 4);
    const char *files[] = {DATASHEET};
    ms_err err = {""};
    assert_int_equal(cdb_build(path, files, 1, &err), 0);
    assert_false(exists(tmp_path("stale.db.tmp")));
    cdb_close(open_ok(path));
}

/* ---- files that are not ours ------------------------------------------------------- */

static void test_not_a_database(void **state)
{
    (void)state;
    open_fails(DATA "/not_a_db.txt", "not a moesched cost database", "file is not a database");

    const char *empty = tmp_path("empty.db");
    write_file(empty, "", 0);
    open_fails(empty, "not a moesched cost database", "empty");

    const char *rnd = tmp_path("random.db");
    unsigned char bytes[8192];
    srand(12345);
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)rand();
    write_file(rnd, bytes, sizeof bytes);
    open_fails(rnd, "not a moesched cost database", NULL);

    const char *good = tmp_path("full.db"), *cut = tmp_path("truncated.db");
    const char *files[] = {DATASHEET};
    build_ok(good, files, 1);
    size_t len;
    char *data = slurp(good, &len);
    write_file(cut, data, len / 3);
    free(data);
    open_fails(cut, "not a moesched cost database", NULL);

    open_fails(tmp_path("missing.db"), "No such file", NULL);
    open_fails(dir, "directory", NULL);
}

/* Builds a good database at path, then runs `sql` on it read-write. */
static void tamper(const char *path, const char *sql)
{
    const char *files[] = {DATASHEET};
    build_ok(path, files, 1);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static void test_schema_version(void **state)
{
    (void)state;
    const char *v3 = tmp_path("v3.db");
    tamper(v3, "UPDATE meta SET value = '3' WHERE key = 'schema_version'");
    open_fails(v3, "schema version 3, this moesched reads version 2", NULL);
    /* a version-1 database (before roofline models) is refused, not misread: rebuild */
    const char *v1 = tmp_path("v1.db");
    tamper(v1, "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    open_fails(v1, "schema version 1, this moesched reads version 2", NULL);

    /* a roofline model whose device lost its bandwidth (only by editing the file) */
    const char *nobw = tmp_path("nobw.db");
    tamper(nobw, "UPDATE device SET mem_bw_bytes_per_s = NULL WHERE name = 'h100'");
    open_fails(nobw, "roofline model 11 ('attn' on 'h100') needs the device's peak_flops",
               NULL);

    const char *nokey = tmp_path("nokey.db");
    tamper(nokey, "DELETE FROM meta");
    open_fails(nokey, "not a moesched cost database", "no schema_version");

    const char *other = tmp_path("other.db");
    sqlite3 *h;
    assert_int_equal(sqlite3_open(other, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE foo (x); INSERT INTO foo VALUES (1)", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    open_fails(other, "not a moesched cost database", "no meta table");
}

/* ---- listings and odds and ends ---------------------------------------------------- */

static void test_print(void **state)
{
    (void)state;
    const char *files[] = {DATASHEET, PAPER, DATA "/selection.sql", DATA "/piecewise.sql"};
    const char *path = tmp_path("print.db");
    build_ok(path, files, 4);
    cdb *db = open_ok(path);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cdb_print(db, f);
    fclose(f);
    assert_non_null(strstr(buf, "989 TFLOP/s"));
    assert_non_null(strstr(buf, "nvlink4"));
    assert_non_null(strstr(buf, "testhost"));
    assert_non_null(strstr(buf, "piecewise (3 pts)"));
    assert_non_null(strstr(buf, "*  102  h100"));    /* the chosen model is marked */
    assert_non_null(strstr(buf, "\n     4    h100")); /* the datasheet one is not */
    /* roofline rows show their efficiency curve, paper rows their citation */
    assert_non_null(strstr(buf, "     4    h100          gemm  roofline  "));
    assert_non_null(strstr(buf, "eff 0.75 x F/(F + 2 GFLOP) of 989 TFLOP/s; 0.8 of 3.35 TB/s"));
    assert_non_null(strstr(buf, "eff 0.5 x F/(F + 2 GFLOP) of 989 TFLOP/s; 0.8 of 4.8 TB/s"));
    assert_non_null(strstr(buf, "beta 4.295e-14 s per FLOP"));
    assert_non_null(strstr(buf, "paper      " CITATION "; R2 0.997"));
    assert_non_null(strstr(buf, "efficiency 0.7")); /* host-cpu's linear model */
    /* which devices compose ffn and gate, and from which gemm model */
    assert_non_null(strstr(buf, "composed costs ("));
    assert_non_null(strstr(buf, "findep-paper  ffn, gate  17 (linear)"));
    assert_non_null(strstr(buf, "h100          ffn, gate  102 (linear)     measured"));
    assert_non_null(strstr(buf, "toy           ffn, gate  "));
    assert_null(strstr(buf, "nomodel       ffn"));
    /* communication fits */
    assert_non_null(strstr(buf, "communication fits (3;"));
    assert_non_null(strstr(buf, "findep-paper  a2e  4/4    370 us  1.275e-09 s/B (784.3 MB/s)"));
    free(buf);

    f = open_memstream(&buf, &len);
    cdb_print_json(db, f);
    fclose(f);
    assert_true(len > 2 && buf[0] == '{' && buf[len - 2] == '}' && buf[len - 1] == '\n');
    assert_non_null(strstr(buf, "\"id\":102,\"device\":\"h100\",\"op\":\"gemm\",\"form\":"
                                "\"linear\",\"selected\":true"));
    assert_non_null(strstr(buf, "\"points\":[[1000000000,0.001],[2000000000,0.003]"));
    assert_non_null(strstr(buf, "\"memory_bytes\":null")); /* host-cpu */
    assert_non_null(strstr(buf, "\"id\":4,\"device\":\"h100\",\"op\":\"gemm\",\"form\":"
                                "\"roofline\",\"selected\":false"));
    assert_non_null(strstr(buf, "\"eff_max\":0.75,\"f_half_flops\":2000000000,\"bw_eff\":0.8"));
    assert_non_null(strstr(buf, "\"composed\":[{\"device\":\"a10\",\"op\":\"ffn\","
                                "\"gemm_model_id\":1}"));
    assert_non_null(strstr(buf, "\"comm_models\":[{\"id\":1,\"device\":\"findep-paper\","
                                "\"op\":\"a2e\",\"ag\":1,\"eg\":7,\"alpha_s\":0.0001"));
    free(buf);
    cdb_close(db);
}

static void test_close_null(void **state)
{
    (void)state;
    cdb_close(NULL); /* crashes, failing the test, unless NULL is handled */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_profiles_gemm_h100),
        cmocka_unit_test(test_roofline_per_flop_decreasing),
        cmocka_unit_test(test_every_op_every_device),
        cmocka_unit_test(test_selection_measured_wins),
        cmocka_unit_test(test_selection_newest_within_source),
        cmocka_unit_test(test_piecewise),
        cmocka_unit_test(test_missing_model),
        cmocka_unit_test(test_unknown_device),
        cmocka_unit_test(test_feature),
        cmocka_unit_test(test_feature_mirrors_ir),
        cmocka_unit_test(test_work_of_ops),
        cmocka_unit_test(test_composite_ffn_paper),
        cmocka_unit_test(test_paper_profile),
        cmocka_unit_test(test_composite_selection),
        cmocka_unit_test(test_bad_syntax),
        cmocka_unit_test(test_bad_source),
        cmocka_unit_test(test_bad_foreign_key),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_bad_statement),
        cmocka_unit_test(test_bad_meta),
        cmocka_unit_test(test_bad_commit),
        cmocka_unit_test(test_bad_piecewise),
        cmocka_unit_test(test_bad_provenance),
        cmocka_unit_test(test_bad_roofline),
        cmocka_unit_test(test_missing_sql_file),
        cmocka_unit_test(test_stale_tmp_replaced),
        cmocka_unit_test(test_not_a_database),
        cmocka_unit_test(test_schema_version),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_close_null),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}

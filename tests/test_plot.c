/* End-to-end tests of `moesched plot` (cli/cmd_plot.c, plots/KIND.gp, docs/PLOTS.md): each
 * kind writes a non-empty figure of the format asked for (PNG magic bytes, SVG header,
 * PDF header) and its data file, and missing or bad input, a missing gnuplot and bad
 * flags fail with a clear message. The inputs are a tiny sweep, a small simulated trace
 * and tests/data/plot/validate-tasks.tsv. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

static char db_path[4200], trace_path[4200];

/* Group setup: the binary, a tiny results database (1 model x 2 sizes x 4 schedulers)
 * and a trace of one simulated schedule. */
static int setup(void **state)
{
    if (tu_cli_setup(state) != 0) return -1;
    snprintf(db_path, sizeof db_path, "%s/r.db", tu_tmpdir);
    snprintf(trace_path, sizeof trace_path, "%s/trace.json", tu_tmpdir);
    char spec[4200];
    snprintf(spec, sizeof spec, "%s/s.yaml", tu_tmpdir);
    FILE *f = fopen(spec, "w");
    if (!f) return -1;
    fputs("name: plot-test\n"
          "flags: {layers: 2, ma: 1, seq: 512, model: qwen3-30b-a3b}\n"
          "axes:\n"
          "  cluster:\n"
          "    - {topo: \"h100:nodes=1\", ag: 4, eg: 4}\n"
          "    - {topo: \"h100:nodes=2\", ag: 8, eg: 8}\n"
          "  sched: [naive, pppipe, findep, search]\n",
          f);
    fclose(f);
    tu_output r = tu_run("sweep %s --db %s --jobs 2", spec, db_path);
    int ok = r.status == 0;
    if (!ok) fprintf(stderr, "setup sweep failed:\n%s%s", r.out, r.err);
    tu_release(&r);
    if (!ok) return -1;
    r = tu_run("sim --workload dep --sched findep --model qwen3-30b-a3b --layers 2 "
               "--topo h100:nodes=1 --ag 4 --eg 4 --seq 512 --r1 2 --ma 1 --r2 2 --trace %s",
               trace_path);
    ok = r.status == 0;
    if (!ok) fprintf(stderr, "setup sim failed:\n%s%s", r.out, r.err);
    tu_release(&r);
    return ok ? 0 : -1;
}

/* The file starts with the given bytes and is larger than min_bytes. */
static void expect_file(const char *path, const char *magic, size_t magic_len, long min_bytes)
{
    struct stat sb;
    if (stat(path, &sb) != 0) fail_msg("%s was not written", path);
    if (sb.st_size < min_bytes) fail_msg("%s has %ld bytes", path, (long)sb.st_size);
    char *text = tu_slurp(path);
    if (memcmp(text, magic, magic_len) != 0) fail_msg("%s does not start as expected", path);
    free(text);
}

static const char PNG[] = "\x89PNG\r\n\x1a\n";

static int have_terminal(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "gnuplot -e 'print GPVAL_TERMINALS' 2>&1 | grep -qw %s", name);
    return system(cmd) == 0;
}

/* Runs `moesched ARGS`, which must succeed and, when want is not NULL, say it on stdout. */
static void expect_ok(const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tu_output r = tu_vrun("", fmt, ap);
    va_end(ap);
    if (r.status != 0) fail_msg("plot failed:\n%s%s", r.out, r.err);
    if (want) tu_expect_contains(r.out, want);
    tu_release(&r);
}

static void throughput_png_and_data(void **state)
{
    (void)state;
    const char *out = tu_tmp_path("figs/tp.png");
    expect_ok("1 models, 4 schedulers, 2 cluster sizes", "plot throughput --db %s --out %s",
              db_path, out);
    expect_file(out, PNG, 8, 2000);
    /* the data beside it: one block, rows 8 and 16 GPUs, a column per scheduler */
    tu_expect_file_contains(tu_tmp_path("figs/tp.tsv"),
                            "# gpus\tnaive\tpppipe\tfindep\tsearch\n8\t", "\n16\t", NULL);
    /* --where narrows, and a bad one is a usage error */
    expect_ok("1 cluster sizes", "plot throughput --db %s --where 'gpus = 8' --out %s", db_path,
              out);
    tu_output r =
        tu_run("plot throughput --db %s --where 'no_such_column = 1' --out %s", db_path, out);
    tu_expect_fail(&r, 2, "no such column");
    tu_release(&r);
    r = tu_run("plot throughput --db %s --where 'gpus = 3' --out %s", db_path, out);
    tu_expect_fail(&r, 1, "no finished points");
    tu_release(&r);
}

static void speedup_svg(void **state)
{
    (void)state;
    const char *out = tu_tmp_path("sp.svg");
    expect_ok(NULL, "plot speedup --db %s --base naive --out %s", db_path, out);
    char *svg = tu_slurp(out);
    assert_true(strlen(svg) > 2000);
    free(svg);
    tu_expect_file_contains(out, "<svg", "speedup over naive", NULL);
    /* every ratio over naive is a positive number */
    const char *tsv = tu_tmp_path("sp.tsv");
    tu_expect_file_contains(tsv, "# group\tpppipe\tfindep\tsearch\n", "qwen3-30b-a3b 8 GPUs\t",
                            NULL);
    char *data = tu_slurp(tsv);
    assert_null(strstr(data, "NA"));
    free(data);
    tu_output r = tu_run("plot speedup --db %s --base warp --out %s", db_path, out);
    tu_expect_fail(&r, 1, "no points of baseline scheduler 'warp'");
    tu_release(&r);
}

static void gantt_png_and_pdf(void **state)
{
    (void)state;
    const char *out = tu_tmp_path("g.png");
    /* 4 AG ranks x (compute, a2e, e2a) + 4 EG ranks x (compute, a2e, e2a) */
    expect_ok("24 rows", "plot gantt --trace %s --out %s", trace_path, out);
    expect_file(out, PNG, 8, 2000);
    tu_expect_file_contains(tu_tmp_path("g.tsv"), "\tattn\n", "\texpert\n", "\ta2e\n", NULL);
    expect_ok("6 rows", "plot gantt --trace %s --ranks 4-5 --out %s", trace_path, out);
    const char *pdf = tu_tmp_path("g.pdf");
    tu_output r = tu_run("plot gantt --trace %s --out %s", trace_path, pdf);
    if (have_terminal("pdfcairo")) {
        assert_int_equal(r.status, 0);
        expect_file(pdf, "%PDF", 4, 1000);
    } else {
        tu_expect_fail(&r, 1, "PDF needs gnuplot's cairo terminal");
    }
    tu_release(&r);
}

static void validate_png(void **state)
{
    (void)state;
    const char *out = tu_tmp_path("v.png");
    /* 12 tasks; the median relative error of the sample is 8.0% */
    expect_ok("12 tasks; median |measured/predicted - 1| 8.0%",
              "plot validate --tasks tests/data/plot/validate-tasks.tsv --out %s", out);
    expect_file(out, PNG, 8, 2000);
    char *data = tu_slurp(tu_tmp_path("v.tsv"));
    int lines = 0;
    for (char *p = data; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 13);
    free(data);
}

static void bad_input_fails_clearly(void **state)
{
    (void)state;
    const char *out = tu_tmp_path("bad.png");
    tu_output r = tu_run("plot throughput --db %s --out %s", tu_tmp_path("absent.db"), out);
    tu_expect_fail(&r, 1, "cannot read results database");
    tu_release(&r);
    r = tu_run("plot throughput --db tests/data/plot/validate-tasks.tsv --out %s", out);
    tu_expect_fail(&r, 1, "not a sweep results database");
    tu_release(&r);
    r = tu_run("plot gantt --trace %s --out %s", tu_tmp_path("absent.json"), out);
    tu_expect_fail(&r, 1, "cannot read trace");
    tu_release(&r);
    const char *notjson = tu_tmp_path("notrace.json");
    tu_write_file(notjson, "{\"hello\": 1}\n");
    r = tu_run("plot gantt --trace %s --out %s", notjson, out);
    tu_expect_fail(&r, 1, "not a Chrome/Perfetto trace");
    tu_release(&r);
    const char *tsv = tu_tmp_path("bad-header.tsv");
    tu_write_file(tsv, "id\tpredicted\n1\t2\n");
    r = tu_run("plot validate --tasks %s --out %s", tsv, out);
    tu_expect_fail(&r, 1, "bad-header.tsv:1: expected the header");
    tu_release(&r);
    tsv = tu_tmp_path("bad-row.tsv");
    tu_write_file(tsv, "task_id\trank\tstream\tlabel\tpredicted_us\tmeasured_us\n"
                       "0\t0\tcompute\tL0.attn\t10\t11\n"
                       "1\t0\tcompute\tL0.attn\tten\t11\n");
    r = tu_run("plot validate --tasks %s --out %s", tsv, out);
    tu_expect_fail(&r, 1, "bad-row.tsv:3: predicted_us and measured_us");
    tu_release(&r);
    r = tu_run("plot validate --tasks %s --out %s", tu_tmp_path("absent.tsv"), out);
    tu_expect_fail(&r, 1, "cannot read");
    tu_release(&r);
    /* no stale figure was left by the failures */
    assert_int_not_equal(access(out, F_OK), 0);
    /* unwritable output: its folder's parent is a file */
    const char *file = tu_tmp_path("plainfile");
    tu_write_file(file, "x");
    r = tu_run("plot throughput --db %s --out %s/x.png", db_path, file);
    tu_expect_fail(&r, 1, "cannot create the folder");
    tu_release(&r);
    /* flags */
    r = tu_run("plot throughput --db %s --out %s", db_path, tu_tmp_path("x.jpg"));
    tu_expect_fail(&r, 2, "must end in .png, .svg or .pdf");
    tu_release(&r);
    r = tu_run("plot throughput");
    tu_expect_fail(&r, 2, "plot throughput needs --db");
    tu_release(&r);
    r = tu_run("plot pie --db %s", db_path);
    tu_expect_fail(&r, 2, "unknown plot 'pie'");
    tu_release(&r);
    r = tu_run("plot");
    tu_expect_fail(&r, 2, "a plot kind is required");
    tu_release(&r);
}

static void missing_gnuplot_is_clear(void **state)
{
    (void)state;
    /* tu_run prefixes the binary; an environment assignment goes before it */
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "PATH=/nonexistent %s plot throughput --db %s --out %s >%s 2>&1",
             tu_bin, db_path, tu_tmp_path("nognuplot.png"), tu_tmp_path("nognuplot.log"));
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    char *log = tu_slurp(tu_tmp_path("nognuplot.log"));
    assert_non_null(strstr(log, "gnuplot is not installed"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(throughput_png_and_data), cmocka_unit_test(speedup_svg),
        cmocka_unit_test(gantt_png_and_pdf),       cmocka_unit_test(validate_png),
        cmocka_unit_test(bad_input_fails_clearly), cmocka_unit_test(missing_gnuplot_is_clear),
    };
    return cmocka_run_group_tests(tests, setup, tu_cli_teardown);
}

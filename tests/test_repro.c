/* End-to-end test of `moesched repro findep --quick`: exit status, the two TSV files with
 * their columns and row counts, speedups consistent with the throughputs (search never
 * below alg1), the summary and provenance lines, and clear failures for an unwritable
 * --out folder and bad flags. The binary is $MOESCHED_BUILD/moesched (default build/). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"



/* A TSV table: header names and rows of fields, all pointing into one buffer. */
#define MAXCOL 64
#define MAXROW 64
typedef struct table {
    char *buf;
    int ncol, nrow;
    char *head[MAXCOL];
    char *cell[MAXROW][MAXCOL];
} table;

static int split_line(char *line, char **fields)
{
    int n = 0;
    for (char *p = line;;) {
        assert_true(n < MAXCOL);
        fields[n++] = p;
        char *tab = strchr(p, '\t');
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

static void load_table(const char *path, table *t)
{
    memset(t, 0, sizeof *t);
    t->buf = tu_slurp(path);
    if (!t->buf) fail_msg("%s was not written", path);
    char *save = NULL;
    char *line = strtok_r(t->buf, "\n", &save);
    assert_non_null(line);
    t->ncol = split_line(line, t->head);
    while ((line = strtok_r(NULL, "\n", &save))) {
        assert_true(t->nrow < MAXROW);
        int n = split_line(line, t->cell[t->nrow]);
        if (n != t->ncol) fail_msg("%s row %d: %d fields, header has %d", path, t->nrow + 1, n,
                                   t->ncol);
        t->nrow++;
    }
}

static int col(const table *t, const char *name)
{
    for (int i = 0; i < t->ncol; i++)
        if (!strcmp(t->head[i], name)) return i;
    fail_msg("column '%s' missing", name);
    return -1;
}

static double num(const table *t, int row, const char *name)
{
    const char *s = t->cell[row][col(t, name)];
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) fail_msg("column %s row %d: '%s' is not a number", name, row + 1, s);
    return v;
}

static void close_to(double got, double want, const char *what, int row)
{
    if (fabs(got - want) > 1e-3 * fabs(want) + 1e-4)
        fail_msg("row %d: %s = %.6g, throughputs give %.6g", row + 1, what, got, want);
}

static void quick_run_writes_consistent_tables(void **state)
{
    (void)state;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/a/b", tu_tmpdir); /* nested: created as needed */
    tu_output r = tu_run("repro findep --quick --out %s", dir);
    if (r.status != 0) fail_msg("repro findep --quick: status %d, stderr '%s'", r.status, r.err);
    assert_non_null(strstr(r.out, "best speedup over pppipe"));
    assert_non_null(strstr(r.out, "monotonicity"));
    assert_non_null(strstr(r.out, "datasheet-derived"));
    assert_non_null(strstr(r.out, "h20"));
    assert_non_null(strstr(r.out, "findep_speedup"));
    tu_release(&r);

    char path[4300];
    table t;
    snprintf(path, sizeof path, "%s/findep.tsv", dir);
    load_table(path, &t);
    /* quick: 4 testbeds x 2 models x one S */
    assert_int_equal(t.nrow, 8);
    const char *cols[] = {"testbed", "topology", "device", "model", "layers", "seq", "ag", "eg",
                          "pppipe_ag", "pppipe_eg", "pppipe_tps", "alg1_r2", "alg1_tps",
                          "search_tps", "speedup_alg1_pppipe", "speedup_search_pppipe",
                          "speedup_search_alg1", "pppipe_split_tps",
                          "speedup_search_pppipe_split", "auto_search_tps", "gemm_source",
                          "attn_source"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) (void)col(&t, cols[i]);
    int layers_want[8] = {8, 24, 4, 12, 16, 48, 16, 48};
    for (int i = 0; i < t.nrow; i++) {
        double pp = num(&t, i, "pppipe_tps"), a1 = num(&t, i, "alg1_tps");
        double se = num(&t, i, "search_tps"), ps = num(&t, i, "pppipe_split_tps");
        assert_true(pp > 0 && a1 > 0 && se > 0 && ps > 0);
        if (se < a1 * (1 - 1e-5)) fail_msg("row %d: search %.6g below alg1 %.6g", i + 1, se, a1);
        close_to(num(&t, i, "speedup_alg1_pppipe"), a1 / pp, "speedup_alg1_pppipe", i);
        close_to(num(&t, i, "speedup_search_pppipe"), se / pp, "speedup_search_pppipe", i);
        close_to(num(&t, i, "speedup_search_alg1"), se / a1, "speedup_search_alg1", i);
        close_to(num(&t, i, "speedup_search_pppipe_split"), se / ps, "speedup_search_pppipe_split",
                 i);
        assert_true(num(&t, i, "speedup_search_alg1") >= 1 - 1e-4);
        assert_int_equal((int)num(&t, i, "layers"), layers_want[i]);
        assert_int_equal((int)num(&t, i, "seq"), 1024);
        int p = (int)(num(&t, i, "ag") + num(&t, i, "eg"));
        assert_int_equal(p, i < 6 ? 8 : 32);
        assert_int_equal((int)(num(&t, i, "pppipe_ag") + num(&t, i, "pppipe_eg")), p);
        assert_string_equal(t.cell[i][col(&t, "auto_search_tps")], "NA");
        assert_string_equal(t.cell[i][col(&t, "gemm_source")], "datasheet");
    }
    assert_string_equal(t.cell[0][col(&t, "model")], "deepseek-v2");
    assert_true(num(&t, 0, "ag") == 3 && num(&t, 0, "eg") == 5);
    assert_true(num(&t, 1, "ag") == 4 && num(&t, 1, "eg") == 4);
    assert_string_equal(t.cell[6][col(&t, "topology")], "h20-4x8");
    free(t.buf);

    snprintf(path, sizeof path, "%s/findep_monotonic.tsv", dir);
    load_table(path, &t);
    /* quick: testbed C, S = 2048, three m_a points and three r1 points */
    assert_int_equal(t.nrow, 6);
    int nma = 0, nr1 = 0;
    for (int i = 0; i < t.nrow; i++) {
        const char *study = t.cell[i][col(&t, "study")];
        assert_true(!strcmp(study, "ma") || !strcmp(study, "r1"));
        if (!strcmp(study, "ma")) nma++, assert_true(num(&t, i, "r1") == 1);
        else nr1++, assert_true(num(&t, i, "ma") == 1);
        assert_true(num(&t, i, "tps") > 0);
        assert_true(num(&t, i, "r2") >= 1);
        assert_int_equal((int)num(&t, i, "layers"), 2);
        assert_string_equal(t.cell[i][col(&t, "testbed")], "C");
        if (i == 0 || i == 3) close_to(num(&t, i, "rel"), 1.0, "rel", i);
    }
    assert_int_equal(nma, 3);
    assert_int_equal(nr1, 3);
    free(t.buf);
}

static void bad_out_and_flags_fail_clearly(void **state)
{
    (void)state;
    char file[4200];
    snprintf(file, sizeof file, "%s/plain-file", tu_tmpdir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a folder\n", f);
    fclose(f);
    struct {
        const char *args;
        int status;
        const char *expect;
    } bad[] = {
        {"repro findep --quick --out %s/sub", 1, "cannot create output folder"},
        {"repro findep --quick --out %s", 1, "cannot create output folder"},
        {"repro nosuch", 2, "unknown study 'nosuch'"},
        {"repro", 2, "findep"},
        {"repro findep --net magic", 2, "magic"},
        {"repro findep --frobnicate", 2, "--frobnicate"},
        {"repro findep --quick --out %s.d --db %s", 1, "plain-file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_output r = tu_run(bad[i].args, file, file);
        if (r.status != bad[i].status || !strstr(r.err, bad[i].expect))
            fail_msg("case %zu: status %d, stderr '%s' (want %d, '%s')", i, r.status, r.err,
                     bad[i].status, bad[i].expect);
        tu_release(&r);
    }
    /* the file that was in the way is untouched */
    char *text = tu_slurp(file);
    assert_string_equal(text, "not a folder\n");
    free(text);
    tu_output r = tu_run("repro findep --help");
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "usage: moesched repro findep"));
    tu_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quick_run_writes_consistent_tables),
        cmocka_unit_test(bad_out_and_flags_fail_clearly),
    };
    return cmocka_run_group_tests(tests, tu_cli_setup, tu_cli_teardown);
}

/* End-to-end tests of `moesched sweep` (cli/sweep.c, docs/SWEEP.md) with the real binary:
 * bad specs named by file and line, unwritable and foreign result databases left
 * untouched, resume after kill -9 with nothing lost or duplicated, two sweeps writing one
 * database at once, --shard and --merge, and per-point failures and timeouts as rows.
 * Points are tiny (2 layers, 8-16 GPUs): the file runs about 150 moesched processes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/testutil.h"

/* 2 clusters x 4 schedulers = 8 points, each well under a second. */
static const char SPEC_SMALL[] =
    "# a tiny study\n"
    "name: tiny\n"
    "flags:\n"
    "  layers: 2\n"
    "  ma: 1\n"
    "  model: qwen3-30b-a3b\n"
    "axes:\n"
    "  cluster:\n"
    "    - {topo: \"h100:nodes=1\", ag: 4, eg: 4}\n"
    "    - {topo: \"h100:nodes=2\", ag: 8, eg: 8}\n"
    "  sched: [naive, pppipe, findep, search]\n"
    "  seq: [512]\n";

/* The same with another sequence length: disjoint points. */
static const char SPEC_OTHER[] =
    "name: other\n"
    "flags: {layers: 2, ma: 1, model: qwen3-30b-a3b}\n"
    "axes:\n"
    "  cluster:\n"
    "    - {topo: \"h100:nodes=1\", ag: 4, eg: 4}\n"
    "    - {topo: \"h100:nodes=2\", ag: 8, eg: 8}\n"
    "  sched: [naive, pppipe, findep, search]\n"
    "  seq: [256]\n";

/* For the kill test: 2 clusters x 2 schedulers x 6 seqs = 24 points. Only schedulers
 * whose answer does not depend on machine load: the search and the PPPipe planner stop
 * at a wall-clock budget (solver/search.c), so on a loaded machine they may differ. */
static const char SPEC_LONG[] =
    "name: long\n"
    "flags: {layers: 2, ma: 1, model: qwen3-30b-a3b}\n"
    "axes:\n"
    "  cluster:\n"
    "    - {topo: \"h100:nodes=1\", ag: 4, eg: 4}\n"
    "    - {topo: \"h100:nodes=2\", ag: 8, eg: 8}\n"
    "  sched: [naive, findep]\n"
    "  seq: [256, 384, 512, 768, 1024, 2048]\n";

static const char *write_spec(const char *name, const char *text)
{
    const char *p = tu_tmp_path(name);
    tu_write_file(p, text);
    return p;
}

/* A query returning one integer. */
static long long db_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("cannot open %s", db);
    sqlite3_busy_timeout(h, 10000);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(h));
    if (sqlite3_step(st) != SQLITE_ROW) fail_msg("%s: no row", sql);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* "key status throughput choice" lines of every point, sorted by key, as one string
 * (caller frees). Points of load-dependent schedulers (search, pppipe: the solvers stop
 * at a wall-clock budget) show their key and status only. */
static char *db_results(const char *db)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "SELECT key, status, CASE WHEN sched IN ('naive', "
                                        "'findep') THEN throughput_tokens_per_s END, CASE WHEN "
                                        "sched IN ('naive', 'findep') THEN choice END "
                                        "FROM point ORDER BY key",
                                        -1, &st, NULL),
                     SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        char line[512];
        int k = snprintf(line, sizeof line, "%s %s %.17g %s\n", sqlite3_column_text(st, 0),
                         sqlite3_column_text(st, 1), sqlite3_column_double(st, 2),
                         sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3)
                                                    : "-");
        if (n + (size_t)k + 1 > cap) out = realloc(out, cap *= 2);
        memcpy(out + n, line, (size_t)k + 1);
        n += (size_t)k;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* ---- bad specs -------------------------------------------------------------------------- */

static void bad_specs_name_file_and_line(void **state)
{
    (void)state;
    const char *db = tu_tmp_path("bad.db");
    struct {
        const char *text, *needle;
    } cases[] = {
        {"name: x\nbogus: 1\naxes:\n  sched: [naive]\n", "bad.yaml:2: unknown key 'bogus'"},
        {"flags: {layers: 2, seq: 512, ag: 4, eg: 4, topo: h100-4x8}\naxes:\n"
         "  model: [deepseek-v2-lite,\n          no-such-model]\n  sched: [naive]\n",
         "bad.yaml:4: unknown model 'no-such-model'"},
        {"flags: {layers: 2, model: deepseek-v2-lite, topo: \"h100:nodes=1\"}\naxes:\n"
         "  sched: [naive]\n  seq: []\n",
         "bad.yaml:4: axis 'seq' is empty"},
        {"flags: {layers: 2, model: deepseek-v2-lite, topo: \"h100:nodes=1\", ag: 4, eg: 4,\n"
         "        seq: 512, frobnicate: 3}\naxes:\n  sched: [naive]\n",
         "bad.yaml:2: flag 'frobnicate' is not taken by moesched sim"},
        {"flags: {layers: 2, model: deepseek-v2-lite, topo: \"h100:nodes=1\"}\naxes:\n"
         "  sched: [naive, warp-drive]\n",
         "bad.yaml:3: unknown scheduler 'warp-drive'"},
        {"flags: {layers: 2, model: deepseek-v2-lite, topo: \"h100:nodes=1\"}\n"
         "axes:\n  sched: [naive]\nschedulers:\n  x: {command: exec}\n",
         "bad.yaml:5: scheduler 'x': command must be sim or solve"},
        {"flags: {layers: 2, model: deepseek-v2-lite, topo: \"gpu:nodes=x\"}\n"
         "axes:\n  sched: [naive]\n",
         "bad.yaml:1: topology 'gpu:nodes=x'"},
        {"axes: [1, 2\n", "bad.yaml:2: YAML"},
        {"axes:\n  sched: [naive]\naxes:\n  seq: [1]\n", "bad.yaml:3: key 'axes' given twice"},
        {"name: no-axes\n", "no axes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *spec = write_spec("bad.yaml", cases[i].text);
        unlink(db);
        tu_output r = tu_run("sweep %s --db %s", spec, db);
        tu_expect_fail(&r, 1, cases[i].needle);
        /* nothing was created */
        assert_int_not_equal(access(db, F_OK), 0);
        tu_release(&r);
    }
    tu_output r = tu_run("sweep %s --db %s", tu_tmp_path("absent.yaml"), db);
    tu_expect_fail(&r, 1, "cannot read spec");
    tu_release(&r);
    r = tu_run("sweep %s --shard 2/2", write_spec("ok.yaml", SPEC_SMALL));
    tu_expect_fail(&r, 2, "--shard expects I/N");
    tu_release(&r);
    r = tu_run("sweep %s --jobs 0", write_spec("ok.yaml", SPEC_SMALL));
    tu_expect_fail(&r, 2, "--jobs must be");
    tu_release(&r);
}

/* ---- databases that must not be touched --------------------------------------------------- */

/* A new SQLite database at path holding what sql makes. */
static void make_sqlite(const char *path, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* `sweep SPEC --db DB` fails with status 1 saying needle (and also, when not NULL) on
 * stderr, and leaves DB byte-identical. */
static void expect_refused_untouched(const char *spec, const char *db, const char *needle,
                                     const char *also)
{
    struct stat sb;
    assert_int_equal(stat(db, &sb), 0);
    size_t size = (size_t)sb.st_size;
    char *before = tu_slurp(db);
    tu_output r = tu_run("sweep %s --db %s", spec, db);
    tu_expect_fail(&r, 1, needle);
    if (also) assert_non_null(strstr(r.err, also));
    tu_release(&r);
    char *after = tu_slurp(db);
    assert_int_equal(stat(db, &sb), 0);
    assert_int_equal((size_t)sb.st_size, size);
    assert_memory_equal(before, after, size);
    free(before), free(after);
}

static void unwritable_and_foreign_databases_untouched(void **state)
{
    (void)state;
    const char *spec = write_spec("small.yaml", SPEC_SMALL);
    /* a folder that cannot exist: its parent is a file */
    const char *file = tu_tmp_path("plainfile");
    tu_write_file(file, "x");
    tu_output r = tu_run("sweep %s --db %s/r.db", spec, file);
    tu_expect_fail(&r, 1, "cannot open results database");
    tu_release(&r);

    /* a results database of another schema version */
    const char *old = tu_tmp_path("v7.db");
    make_sqlite(old, "CREATE TABLE point (key TEXT PRIMARY KEY, x REAL);"
                     "INSERT INTO point VALUES ('a', 1.5);"
                     "PRAGMA application_id = 1836274519; PRAGMA user_version = 7;");
    expect_refused_untouched(spec, old, "results schema version 7", "untouched");
    char side[4300];
    snprintf(side, sizeof side, "%s-wal", old);
    assert_int_not_equal(access(side, F_OK), 0);

    /* another application's SQLite database, and a text file */
    const char *other = tu_tmp_path("other.db");
    make_sqlite(other, "CREATE TABLE t (a);");
    expect_refused_untouched(spec, other, "not a sweep results database", NULL);
    const char *text = tu_tmp_path("notes.txt");
    tu_write_file(text, "these are my notes, not a database; they must survive.\n"
                        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    expect_refused_untouched(spec, text, "not an SQLite database", NULL);
    /* merge refuses them too, and leaves OUT as it was */
    r = tu_run("sweep --merge %s %s", tu_tmp_path("merged-bad.db"), old);
    tu_expect_fail(&r, 1, "results schema version 7");
    tu_release(&r);
}

/* ---- a sweep, re-run, and results --------------------------------------------------------- */

static void sweep_records_and_resumes(void **state)
{
    (void)state;
    const char *spec = write_spec("small.yaml", SPEC_SMALL);
    const char *db = tu_tmp_path("small.db");
    tu_output r = tu_run("sweep %s --db %s --jobs 2", spec, db);
    if (r.status != 0) fail_msg("sweep failed:\n%s%s", r.out, r.err);
    assert_non_null(strstr(r.out, "8 points"));
    /* not a terminal: one line per point */
    assert_int_equal(count_lines(r.out), 8 + 2);
    tu_release(&r);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point"), 8);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'ok' AND "
                                "throughput_tokens_per_s > 0 AND makespan_us > 0"),
                     8);
    assert_int_equal(db_int(db, "PRAGMA user_version"), 1);
    /* the solver's choice and the exact argv are stored */
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE sched = 'search' AND "
                                "choice LIKE 'ag=% r1=% order=%'"),
                     2);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE sched = 'findep' AND "
                                "argv LIKE '%\"solve\",%\"--method\",\"alg1\",%\"--json\"]'"),
                     2);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE sched = 'naive' AND "
                                "command = 'sim' AND gpus IN (8, 16)"),
                     2);
    /* search never does worse than alg1 on the same point */
    assert_int_equal(db_int(db, "SELECT count(*) FROM point s JOIN point a ON s.model = a.model "
                                "AND s.gpus = a.gpus AND s.seq = a.seq WHERE s.sched = 'search' "
                                "AND a.sched = 'findep' AND s.throughput_tokens_per_s < "
                                "a.throughput_tokens_per_s * (1 - 1e-9)"),
                     0);
    /* again: everything is skipped, nothing changes */
    char *first = db_results(db);
    r = tu_run("sweep %s --db %s", spec, db);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "8 already recorded, 0 to run"));
    tu_release(&r);
    char *second = db_results(db);
    assert_string_equal(first, second);
    free(first), free(second);
    /* --list prints each point's key and canonical command */
    r = tu_run("sweep %s --list", spec);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 8);
    assert_non_null(strstr(r.out, "solve --ag 4 --eg 4 --layers 2 --ma 1 --method search "
                                  "--model qwen3-30b-a3b --sched findep --seq 512 "
                                  "--topo h100:nodes=1 --workload dep"));
    tu_release(&r);
}

/* ---- kill -9 and resume -------------------------------------------------------------------- */

/* Starts `moesched sweep SPEC --db DB --jobs JOBS` in the background, its output into
 * LOG (see expect_exit). */
static pid_t spawn_sweep(const char *spec, const char *db, const char *jobs, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(dn, 0), dup2(lf, 1), dup2(lf, 2);
        execl(tu_bin, tu_bin, "sweep", spec, "--db", db, "--jobs", jobs, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for a background sweep and checks it exited 0, printing its log otherwise. */
static void expect_exit_ok(pid_t pid, const char *log)
{
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *text = tu_slurp(log);
        fail_msg("background sweep (status %d) failed:\n%s", st, text);
    }
}

static long long rows_now(const char *db)
{
    if (access(db, F_OK) != 0) return 0;
    sqlite3 *h = NULL;
    long long v = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, "SELECT count(*) FROM point", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static void killed_sweep_resumes_without_loss_or_duplicates(void **state)
{
    (void)state;
    const char *spec = write_spec("long.yaml", SPEC_LONG);
    const char *ref = tu_tmp_path("long-ref.db"), *db = tu_tmp_path("long-killed.db");
    tu_output r = tu_run("sweep %s --db %s --jobs 2", spec, ref);
    if (r.status != 0) fail_msg("reference sweep failed:\n%s%s", r.out, r.err);
    tu_release(&r);
    assert_int_equal(db_int(ref, "SELECT count(*) FROM point WHERE status = 'ok'"), 24);

    pid_t pid = spawn_sweep(spec, db, "1", tu_tmp_path("killed.log"));
    /* wait until a few points are in, then kill -9 */
    long long n = 0;
    for (int i = 0; i < 3000 && n < 5; i++) {
        usleep(2000);
        n = rows_now(db);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    long long at_kill = rows_now(db);
    assert_true(at_kill >= 5);
    assert_true(at_kill < 24); /* killed mid-way, or the test proves nothing */
    usleep(300000);
    /* the point in flight died with the sweep: nobody writes any more */
    assert_int_equal(rows_now(db), at_kill);

    r = tu_run("sweep %s --db %s --jobs 2", spec, db);
    if (r.status != 0) fail_msg("resumed sweep failed:\n%s%s", r.out, r.err);
    char expect[64];
    snprintf(expect, sizeof expect, "%lld already recorded, %lld to run", at_kill, 24 - at_kill);
    if (!strstr(r.out, expect)) fail_msg("expected '%s' in:\n%s", expect, r.out);
    tu_release(&r);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point"), 24);
    assert_int_equal(db_int(db, "SELECT count(DISTINCT canonical) FROM point"), 24);
    /* the same results as the uninterrupted run, point by point */
    char *a = db_results(ref), *b = db_results(db);
    assert_string_equal(a, b);
    free(a), free(b);
}

/* ---- two sweeps on one database ------------------------------------------------------------ */

static void concurrent_sweeps_lose_nothing(void **state)
{
    (void)state;
    const char *s1 = write_spec("small.yaml", SPEC_SMALL);
    const char *s2 = write_spec("other.yaml", SPEC_OTHER);
    const char *db = tu_tmp_path("shared.db");
    /* different points at once, into a database that does not exist yet */
    const char *la = tu_tmp_path("a.log"), *lb = tu_tmp_path("b.log");
    pid_t a = spawn_sweep(s1, db, "2", la), b = spawn_sweep(s2, db, "2", lb);
    expect_exit_ok(a, la);
    expect_exit_ok(b, lb);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'ok'"), 16);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE spec = 'tiny'"), 8);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE spec = 'other'"), 8);
    /* the same points four times at once, into a new database (all four race to create
     * the table): each point recorded once, all four succeed */
    const char *db2 = tu_tmp_path("same.db");
    const char *logs[4] = {la, lb, tu_tmp_path("c.log"), tu_tmp_path("d.log")};
    pid_t p[4];
    for (int i = 0; i < 4; i++) p[i] = spawn_sweep(s1, db2, "1", logs[i]);
    for (int i = 0; i < 4; i++) expect_exit_ok(p[i], logs[i]);
    assert_int_equal(db_int(db2, "SELECT count(*) FROM point"), 8);
    assert_int_equal(db_int(db2, "SELECT count(DISTINCT key) FROM point WHERE status = 'ok'"), 8);
}

/* ---- shards and merge ---------------------------------------------------------------------- */

static void shards_are_disjoint_and_merge_unions(void **state)
{
    (void)state;
    const char *spec = write_spec("small.yaml", SPEC_SMALL);
    const char *d0 = tu_tmp_path("shard0.db"), *d1 = tu_tmp_path("shard1.db");
    const char *d2 = tu_tmp_path("shard2.db");
    const char *dbs[3] = {d0, d1, d2};
    for (int i = 0; i < 3; i++) {
        tu_output r = tu_run("sweep %s --db %s --shard %d/3", spec, dbs[i], i);
        if (r.status != 0) fail_msg("shard %d failed:\n%s%s", i, r.out, r.err);
        tu_release(&r);
    }
    long long n0 = db_int(d0, "SELECT count(*) FROM point");
    long long n1 = db_int(d1, "SELECT count(*) FROM point");
    long long n2 = db_int(d2, "SELECT count(*) FROM point");
    assert_int_equal(n0 + n1 + n2, 8);
    assert_true(n0 >= 2 && n1 >= 2 && n2 >= 2);
    const char *m = tu_tmp_path("merged.db");
    tu_output r = tu_run("sweep --merge %s %s %s %s", m, d0, d1, d2);
    if (r.status != 0) fail_msg("merge failed:\n%s%s", r.out, r.err);
    tu_release(&r);
    /* disjoint: the union has every point once */
    assert_int_equal(db_int(m, "SELECT count(*) FROM point"), 8);
    assert_int_equal(db_int(m, "SELECT count(DISTINCT key) FROM point"), 8);
    /* the same as one unsharded run */
    const char *whole = tu_tmp_path("small.db");
    if (access(whole, F_OK) != 0) {
        r = tu_run("sweep %s --db %s --jobs 2", spec, whole);
        assert_int_equal(r.status, 0);
        tu_release(&r);
    }
    char *a = db_results(whole), *b = db_results(m);
    assert_string_equal(a, b);
    free(a), free(b);
    /* merging again adds nothing; a merged database resumes as complete */
    r = tu_run("sweep --merge %s %s", m, d1);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "0 rows added"));
    tu_release(&r);
    r = tu_run("sweep %s --db %s", spec, m);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.out, "0 to run"));
    tu_release(&r);
    r = tu_run("sweep --merge %s %s", m, tu_tmp_path("absent.db"));
    tu_expect_fail(&r, 1, "cannot read results database");
    tu_release(&r);
}

/* ---- a terminal gets a progress bar --------------------------------------------------------- */

static void progress_bar_on_a_terminal(void **state)
{
    (void)state;
    if (system("command -v script >/dev/null 2>&1") != 0) skip(); /* util-linux */
    const char *spec = write_spec("other.yaml", SPEC_OTHER);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "script -qec '%s sweep %s --db %s' /dev/null >%s 2>&1 </dev/null",
             tu_bin, spec, tu_tmp_path("tty.db"), tu_tmp_path("tty.log"));
    int st = system(cmd);
    char *log = tu_slurp(tu_tmp_path("tty.log"));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("sweep on a pty failed:\n%s", log);
    /* one redrawn line with a bar, the count and an ETA; no per-point lines */
    assert_non_null(strstr(log, "\r["));
    assert_non_null(strstr(log, "8/8"));
    assert_non_null(strstr(log, "ETA"));
    assert_null(strstr(log, "[1/8] ok"));
    free(log);
}

/* ---- failures are rows --------------------------------------------------------------------- */

static void failed_and_timed_out_points_are_rows(void **state)
{
    (void)state;
    /* one point with a bad split (3 + 4 != 8 ranks), one far over the time limit (the
     * split search at 256 GPUs takes tens of seconds), two fine */
    const char *spec = write_spec("fail.yaml",
                                  "name: failing\n"
                                  "flags: {layers: 2, ma: 1, seq: 512, model: qwen3-30b-a3b}\n"
                                  "axes:\n"
                                  "  cluster:\n"
                                  "    - {topo: \"h100:nodes=1\", ag: 4, eg: 4}\n"
                                  "    - {topo: \"h100:nodes=1\", ag: 3, eg: 4}\n"
                                  "    - {topo: \"h100:nodes=32\", ag: 128, eg: 128}\n"
                                  "  sched: [naive, slow]\n"
                                  "schedulers:\n"
                                  "  slow:\n"
                                  "    command: solve\n"
                                  "    flags: {workload: dep, sched: findep, method: search,\n"
                                  "            ag: ~, eg: ~, split: auto,\n"
                                  "            topo: \"h100:nodes=32\"}\n");
    const char *db = tu_tmp_path("fail.db");
    time_t t0 = time(NULL);
    tu_output r = tu_run("sweep %s --db %s --jobs 2 --point-timeout 4", spec, db);
    assert_true(time(NULL) - t0 < 30);
    assert_int_equal(r.status, 1); /* some points failed */
    assert_non_null(strstr(r.out, "failed"));
    tu_release(&r);
    /* 3 clusters x 2 schedulers, but `slow` sets its own topology and drops ag/eg, so its
     * three points are one command: 4 distinct points */
    assert_int_equal(db_int(db, "SELECT count(*) FROM point"), 4);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'failed' AND "
                                "error LIKE '%ag%' AND exit_code = 1"),
                     1);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'timeout' AND "
                                "gpus = 256 AND sched = 'slow'"),
                     1);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'ok'"), 2);
    /* re-running skips them; --retry-failed runs them again */
    r = tu_run("sweep %s --db %s --point-timeout 1", spec, db);
    assert_non_null(strstr(r.out, "4 already recorded, 0 to run"));
    assert_int_equal(r.status, 0);
    tu_release(&r);
    r = tu_run("sweep %s --db %s --jobs 2 --point-timeout 4 --retry-failed", spec, db);
    assert_non_null(strstr(r.out, "2 already recorded, 2 to run"));
    assert_int_equal(r.status, 1);
    tu_release(&r);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point"), 4);
    assert_int_equal(db_int(db, "SELECT count(*) FROM point WHERE status = 'timeout'"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_specs_name_file_and_line),
        cmocka_unit_test(unwritable_and_foreign_databases_untouched),
        cmocka_unit_test(sweep_records_and_resumes),
        cmocka_unit_test(killed_sweep_resumes_without_loss_or_duplicates),
        cmocka_unit_test(concurrent_sweeps_lose_nothing),
        cmocka_unit_test(shards_are_disjoint_and_merge_unions),
        cmocka_unit_test(progress_bar_on_a_terminal),
        cmocka_unit_test(failed_and_timed_out_points_are_rows),
    };
    return cmocka_run_group_tests(tests, tu_cli_setup, tu_cli_teardown);
}

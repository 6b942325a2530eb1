/* `moesched plot KIND`: figures from a sweep's results database (throughput vs cluster
 * size, speedup bars), a simulator/executor trace (Gantt chart) or validate's per-task
 * table (predicted vs measured). Each writes a TSV data file beside the figure and runs
 * gnuplot on plots/KIND.gp with it (docs/PLOTS.md). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/sweep.h"
#include "core/paths.h"

#define MAX_NAMES 64
#define MAX_ROWS 96 /* Gantt rows (rank, stream) drawn at most; --ranks selects others */

/* ---- small helpers -------------------------------------------------------------------- */

/* A list of distinct names, in insertion order. */
typedef struct names {
    char *v[MAX_NAMES];
    int n;
} names;

static int names_find(const names *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->v[i], s)) return i;
    return -1;
}

/* Index of s, added if new; -1 when the list is full. */
static int names_add(names *l, const char *s)
{
    int i = names_find(l, s);
    if (i >= 0) return i;
    if (l->n == MAX_NAMES) return -1;
    l->v[l->n] = strdup(s);
    return l->v[l->n] ? l->n++ : -1;
}

static void names_free(names *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    l->n = 0;
}

/* Names go into gnuplot strings: no quotes, backslashes or control characters. */
static int safe_name(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\'' || *s == '\\' || (unsigned char)*s < 32) return 0;
    return 1;
}

/* "a b c" for gnuplot's word(); names may not hold spaces (checked by the caller). */
static void join_words(const names *l, char *out, size_t len)
{
    out[0] = 0;
    size_t n = 0;
    for (int i = 0; i < l->n && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s%s", i ? " " : "", l->v[i]);
}

static int has_space(const names *l)
{
    for (int i = 0; i < l->n; i++)
        if (strchr(l->v[i], ' ') || !safe_name(l->v[i])) return 1;
    return 0;
}

/* The task kind from a label such as L3.mb1.a2e.c0: its last part that is not a counter
 * (letters then digits: L3, mb1, c0); else the fallback (the op). */
static void task_kind(const char *label, const char *fallback, char *out, size_t len)
{
    out[0] = 0;
    const char *p = label ? label : "";
    while (*p) {
        const char *e = strchr(p, '.');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        size_t k = 0;
        while (k < n && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z'))) k++;
        int counter = k < n && k <= 2;
        for (size_t q = k; q < n && counter; q++) counter = p[q] >= '0' && p[q] <= '9';
        if (!counter && n > 0) snprintf(out, len, "%.*s", (int)n, p);
        p += n + (e ? 1 : 0);
        if (!e) break;
    }
    if (!out[0]) snprintf(out, len, "%s", fallback && *fallback ? fallback : "task");
    for (char *c = out; *c; c++)
        if (*c == ' ' || *c == '"' || *c == '\'' || *c == '\\') *c = '_';
}

/* mkdir -p of the folder holding path. */
static int make_parent(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
    struct stat sb;
    if (stat(buf, &sb) != 0) return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Is `prog` an executable on PATH? */
static int on_path(const char *prog)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    for (const char *p = path;;) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n < 4000) {
            char full[4200];
            snprintf(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", prog);
            if (access(full, X_OK) == 0) return 1;
        }
        if (!e) return 0;
        p = e + 1;
    }
}

/* Runs gnuplot with args; its stderr goes into errbuf. Returns the exit status (127 when
 * it could not be run). */
static int run_gnuplot(char *const *args, char *errbuf, size_t len)
{
    int fd[2];
    errbuf[0] = 0;
    if (pipe(fd) != 0) return 127;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return 127;
    }
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]), close(fd[1]);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) dup2(dn, 0), dup2(dn, 1);
        execvp("gnuplot", args);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    char tmp[4096];
    while ((got = read(fd[0], tmp, sizeof tmp)) > 0 || (got < 0 && errno == EINTR)) {
        if (got <= 0) continue;
        size_t take = (size_t)got < len - 1 - n ? (size_t)got : len - 1 - n;
        memcpy(errbuf + n, tmp, take);
        n += take;
    }
    errbuf[n] = 0;
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Chooses the terminal for `out` (by extension) among those this gnuplot has. */
static int pick_terminal(const char *out, char *term, size_t len, int w_px, int h_px)
{
    const char *dot = strrchr(out, '.');
    const char *ext = dot ? dot + 1 : "";
    if (strcmp(ext, "png") && strcmp(ext, "svg") && strcmp(ext, "pdf")) {
        cli_error("plot", "--out %s: the name must end in .png, .svg or .pdf", out);
        return EXIT_USAGE;
    }
    if (!on_path("gnuplot")) {
        cli_error("plot", "gnuplot is not installed (not found on PATH): install gnuplot-nox "
                          "(scripts/install-deps.sh) and run again");
        return EXIT_INPUT;
    }
    char terms[8192];
    char *args[] = {"gnuplot", "-e", "print GPVAL_TERMINALS", NULL};
    if (run_gnuplot(args, terms, sizeof terms) != 0) {
        cli_error("plot", "gnuplot does not run: %s", terms);
        return EXIT_INPUT;
    }
    char padded[8300];
    snprintf(padded, sizeof padded, " %s ", terms);
    for (char *c = padded; *c; c++)
        if (*c == '\n') *c = ' ';
    int cairo_png = strstr(padded, " pngcairo ") != NULL, gd_png = strstr(padded, " png ") != NULL;
    if (!strcmp(ext, "png")) {
        if (!cairo_png && !gd_png) {
            cli_error("plot", "this gnuplot has no PNG terminal (pngcairo or png); use .svg");
            return EXIT_INPUT;
        }
        snprintf(term, len, "%s size %d,%d noenhanced%s", cairo_png ? "pngcairo" : "png", w_px,
                 h_px, cairo_png ? " font \",10\"" : "");
    } else if (!strcmp(ext, "svg")) {
        if (!strstr(padded, " svg ")) {
            cli_error("plot", "this gnuplot has no svg terminal; use .png");
            return EXIT_INPUT;
        }
        snprintf(term, len, "svg size %d,%d noenhanced font \"sans,10\" background \"white\"", w_px,
                 h_px);
    } else {
        if (!strstr(padded, " pdfcairo ")) {
            cli_error("plot", "PDF needs gnuplot's cairo terminal (pdfcairo), which this "
                              "gnuplot lacks: install gnuplot-qt or gnuplot-x11, or use .png "
                              "or .svg");
            return EXIT_INPUT;
        }
        snprintf(term, len, "pdfcairo size %.2fin,%.2fin noenhanced font \",7\"", w_px / 100.0,
                 h_px / 100.0);
    }
    return 0;
}

/* data: the TSV beside the figure (out with .tsv for its extension). */
static void data_path(const char *out, char *buf, size_t len)
{
    const char *dot = strrchr(out, '.');
    int n = dot ? (int)(dot - out) : (int)strlen(out);
    snprintf(buf, len, "%.*s.tsv", n, out);
}

/* A formatted string in a new allocation (caller frees); NULL when out of memory. */
static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Runs plots/SCRIPT.gp with `vars` (gnuplot statements) and checks the figure. */
static int render(const char *script, const char *vars, const char *out)
{
    char gp[4200];
    if (!vars) {
        cli_error("plot", "out of memory");
        return EXIT_INPUT;
    }
    if (ms_data_path(gp, sizeof gp, "plots", script, ".gp") != 0 || access(gp, R_OK) != 0) {
        cli_error("plot", "gnuplot script %s is missing", gp);
        return EXIT_INPUT;
    }
    unlink(out); /* so that a failed run leaves no stale figure */
    char errs[8192];
    char *args[] = {"gnuplot", "-e", (char *)vars, gp, NULL};
    int st = run_gnuplot(args, errs, sizeof errs);
    struct stat sb;
    if (st != 0 || stat(out, &sb) != 0 || sb.st_size == 0) {
        cli_error("plot", "gnuplot failed on %s (status %d)%s%s", gp, st, *errs ? ":\n" : "",
                  errs);
        return EXIT_INPUT;
    }
    return 0;
}

static FILE *open_data(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) cli_error("plot", "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int close_data(FILE *f, const char *path)
{
    if (ferror(f) | (fclose(f) != 0)) {
        cli_error("plot", "error writing %s", path);
        return -1;
    }
    return 0;
}

/* ---- results database plots ------------------------------------------------------------ */

/* Opens a sweep results database read-only and checks it is one. */
static sqlite3 *open_results(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        cli_error("plot", "cannot read results database %s: %s", path, strerror(errno));
        return NULL;
    }
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        cli_error("plot", "cannot open %s: %s", path, h ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close(h);
        return NULL;
    }
    sqlite3_busy_timeout(h, 30000);
    sqlite3_stmt *st = NULL;
    int app = -1, ver = -1;
    if (sqlite3_prepare_v2(h, "PRAGMA application_id", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        app = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        ver = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (app != SW_APPLICATION_ID || ver != SW_SCHEMA_VERSION) {
        cli_error("plot", "%s is not a sweep results database of schema version %d%s", path,
                  SW_SCHEMA_VERSION, app < 0 ? " (not an SQLite database)" : "");
        sqlite3_close(h);
        return NULL;
    }
    return h;
}

/* Scheduler order: the built-ins first as the paper orders them, then the rest by name. */
static int sched_rank(const char *s)
{
    static const char *const order[] = {"naive", "ep", "pppipe", "findep", "search", "exhaustive"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, order[i])) return i;
    return 6;
}

static int cmp_sched(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    int d = sched_rank(x) - sched_rank(y);
    return d ? d : strcmp(x, y);
}

/* One ok point: (model, sched, gpus) -> throughput. */
typedef struct rec {
    int model, sched, gpus;
    double tps;
} rec;

typedef struct results {
    names models, scheds;
    int gpus[256];
    int ngpus;
    rec *r;
    int n;
} results;

static void results_free(results *R)
{
    names_free(&R->models);
    names_free(&R->scheds);
    free(R->r);
}

/* Loads the ok points (filtered by `where`, an SQL expression over the point table). */
static int load_results(const char *db_path, const char *where, results *R)
{
    memset(R, 0, sizeof *R);
    sqlite3 *h = open_results(db_path);
    if (!h) return EXIT_INPUT;
    char sql[8192];
    snprintf(sql, sizeof sql,
             "SELECT model, sched, gpus, throughput_tokens_per_s FROM point WHERE status = 'ok' "
             "AND throughput_tokens_per_s IS NOT NULL AND (%s) ORDER BY model, gpus",
             where ? where : "1");
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
        cli_error("plot", "%s: %s%s", db_path, sqlite3_errmsg(h),
                  where ? " (check --where)" : "");
        sqlite3_close(h);
        return where ? EXIT_USAGE : EXIT_INPUT;
    }
    int rc = 0, step;
    /* first pass: the schedulers, sorted, so that indices are stable */
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        const char *s = (const char *)sqlite3_column_text(st, 1);
        if (names_add(&R->models, m) < 0 || names_add(&R->scheds, s) < 0) {
            cli_error("plot", "%s: more than %d models or schedulers; narrow with --where",
                      db_path, MAX_NAMES);
            rc = EXIT_INPUT;
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW) {
        cli_error("plot", "%s: %s", db_path, sqlite3_errmsg(h));
        rc = EXIT_INPUT;
    }
    qsort(R->scheds.v, (size_t)R->scheds.n, sizeof R->scheds.v[0], cmp_sched);
    sqlite3_reset(st);
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rec x = {names_find(&R->models, (const char *)sqlite3_column_text(st, 0)),
                 names_find(&R->scheds, (const char *)sqlite3_column_text(st, 1)),
                 sqlite3_column_int(st, 2), sqlite3_column_double(st, 3)};
        for (int i = 0; i < R->n; i++)
            if (R->r[i].model == x.model && R->r[i].sched == x.sched && R->r[i].gpus == x.gpus) {
                cli_error("plot", "%s: several ok points for %s, %s on %d GPUs (they differ in "
                                  "another axis, e.g. seq); choose one with --where, e.g. "
                                  "--where 'seq = 4096'",
                          db_path, R->models.v[x.model], R->scheds.v[x.sched], x.gpus);
                rc = EXIT_INPUT;
                break;
            }
        if (rc) break;
        rec *nr = realloc(R->r, sizeof *nr * (size_t)(R->n + 1));
        if (!nr) {
            rc = EXIT_INPUT;
            break;
        }
        R->r = nr;
        R->r[R->n++] = x;
        int g = 0;
        while (g < R->ngpus && R->gpus[g] != x.gpus) g++;
        if (g == R->ngpus && R->ngpus < 256) R->gpus[R->ngpus++] = x.gpus;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    if (rc == 0 && R->n == 0) {
        cli_error("plot", "%s: no finished points with a throughput%s", db_path,
                  where ? " match --where" : "");
        rc = EXIT_INPUT;
    }
    if (rc == 0 && (has_space(&R->models) || has_space(&R->scheds))) {
        cli_error("plot", "%s: model or scheduler names with spaces or quotes cannot be "
                          "plotted", db_path);
        rc = EXIT_INPUT;
    }
    for (int i = 1; i < R->ngpus; i++) /* insertion sort: few sizes */
        for (int k = i; k > 0 && R->gpus[k - 1] > R->gpus[k]; k--) {
            int t = R->gpus[k];
            R->gpus[k] = R->gpus[k - 1], R->gpus[k - 1] = t;
        }
    if (rc) results_free(R);
    return rc;
}

static double lookup(const results *R, int m, int s, int g)
{
    for (int i = 0; i < R->n; i++)
        if (R->r[i].model == m && R->r[i].sched == s && R->r[i].gpus == g) return R->r[i].tps;
    return NAN;
}

static void put_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "\t%.9g", v);
    else fputs("\tNA", f);
}

static int plot_throughput(const char *db_path, const char *where, const char *out)
{
    results R;
    int rc = load_results(db_path, where, &R);
    if (rc) return rc;
    char term[256], data[4200];
    int w = 520 * R.models.n + 80;
    if ((rc = pick_terminal(out, term, sizeof term, w, 480)) != 0) goto done;
    data_path(out, data, sizeof data);
    FILE *f = open_data(data);
    if (!f) {
        rc = EXIT_INPUT;
        goto done;
    }
    /* one block per model (gnuplot index), rows = cluster sizes, columns = schedulers */
    for (int m = 0; m < R.models.n; m++) {
        fprintf(f, "%s# model %s: throughput in tokens/s\n# gpus", m ? "\n\n" : "",
                R.models.v[m]);
        for (int s = 0; s < R.scheds.n; s++) fprintf(f, "\t%s", R.scheds.v[s]);
        fputc('\n', f);
        for (int g = 0; g < R.ngpus; g++) {
            int any = 0;
            for (int s = 0; s < R.scheds.n; s++) any |= isfinite(lookup(&R, m, s, R.gpus[g]));
            if (!any) continue;
            fprintf(f, "%d", R.gpus[g]);
            for (int s = 0; s < R.scheds.n; s++) put_num(f, lookup(&R, m, s, R.gpus[g]));
            fputc('\n', f);
        }
    }
    if (close_data(f, data) != 0) {
        rc = EXIT_INPUT;
        goto done;
    }
    char mw[4096], sw[4096];
    join_words(&R.models, mw, sizeof mw);
    join_words(&R.scheds, sw, sizeof sw);
    char gw[2048];
    size_t gn = 0;
    for (int g = 0; g < R.ngpus && gn < sizeof gw; g++)
        gn += (size_t)snprintf(gw + gn, sizeof gw - gn, "%s%d", g ? " " : "", R.gpus[g]);
    char *vars = strf("term='%s'; out='%s'; data='%s'; models='%s'; scheds='%s'; gpus='%s'",
                      term, out, data, mw, sw, gw);
    rc = render("throughput", vars, out);
    free(vars);
    if (!rc) printf("wrote %s (data %s): %d models, %d schedulers, %d cluster sizes\n", out,
                    data, R.models.n, R.scheds.n, R.ngpus);
done:
    results_free(&R);
    return rc;
}

static int plot_speedup(const char *db_path, const char *where, const char *base,
                        const char *out)
{
    results R;
    int rc = load_results(db_path, where, &R);
    if (rc) return rc;
    int b = names_find(&R.scheds, base);
    char term[256], data[4200];
    names over = {{0}};
    if (b < 0) {
        char sw[4096];
        join_words(&R.scheds, sw, sizeof sw);
        cli_error("plot", "%s: no points of baseline scheduler '%s' (schedulers: %s); choose "
                          "one with --base", db_path, base, sw);
        rc = EXIT_INPUT;
        goto done;
    }
    for (int s = 0; s < R.scheds.n; s++)
        if (s != b) names_add(&over, R.scheds.v[s]);
    if (over.n == 0) {
        cli_error("plot", "%s: only the baseline '%s' has points", db_path, base);
        rc = EXIT_INPUT;
        goto done;
    }
    int ngroups = 0;
    for (int m = 0; m < R.models.n; m++)
        for (int g = 0; g < R.ngpus; g++) ngroups += isfinite(lookup(&R, m, b, R.gpus[g]));
    if (ngroups == 0) {
        cli_error("plot", "%s: no baseline throughputs", db_path);
        rc = EXIT_INPUT;
        goto done;
    }
    int w = 60 * ngroups * (over.n + 1) / 2 + 200;
    if ((rc = pick_terminal(out, term, sizeof term, w < 700 ? 700 : w, 480)) != 0) goto done;
    data_path(out, data, sizeof data);
    FILE *f = open_data(data);
    if (!f) {
        rc = EXIT_INPUT;
        goto done;
    }
    fprintf(f, "# throughput / throughput of %s\n# group", base);
    for (int s = 0; s < over.n; s++) fprintf(f, "\t%s", over.v[s]);
    fputc('\n', f);
    for (int m = 0; m < R.models.n; m++)
        for (int g = 0; g < R.ngpus; g++) {
            double bt = lookup(&R, m, b, R.gpus[g]);
            if (!isfinite(bt) || bt <= 0) continue;
            fprintf(f, "%s %d GPUs", R.models.v[m], R.gpus[g]);
            for (int s = 0; s < over.n; s++)
                put_num(f, lookup(&R, m, names_find(&R.scheds, over.v[s]), R.gpus[g]) / bt);
            fputc('\n', f);
        }
    if (close_data(f, data) != 0) {
        rc = EXIT_INPUT;
        goto done;
    }
    char sw[4096];
    join_words(&over, sw, sizeof sw);
    char *vars = strf("term='%s'; out='%s'; data='%s'; scheds='%s'; base='%s'", term, out, data,
                      sw, base);
    rc = render("speedup", vars, out);
    free(vars);
    if (!rc) printf("wrote %s (data %s): %d schedulers over %s, %d groups\n", out, data, over.n,
                    base, ngroups);
done:
    names_free(&over);
    results_free(&R);
    return rc;
}

/* ---- Gantt chart of a trace ------------------------------------------------------------ */

typedef struct row {
    int pid, tid;
} row;

static int cmp_row(const void *a, const void *b)
{
    const row *x = a, *y = b;
    return x->pid != y->pid ? (x->pid < y->pid ? -1 : 1) : (x->tid > y->tid) - (x->tid < y->tid);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        errno = bad ? EIO : ENOMEM;
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static int parse_ranks(const char *s, int *lo, int *hi)
{
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s || a < 0) return -1;
    if (*end == '-') {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t) return -1;
    }
    if (*end || b < a || b > 1 << 30) return -1;
    *lo = (int)a, *hi = (int)b;
    return 0;
}

static int plot_gantt(const char *trace, const char *ranks, const char *out)
{
    int lo = 0, hi = 1 << 30;
    if (ranks && parse_ranks(ranks, &lo, &hi) != 0) {
        cli_error("plot", "--ranks expects N or A-B (e.g. 0-7), got '%s'", ranks);
        return EXIT_USAGE;
    }
    size_t len = 0;
    char *text = read_all(trace, &len);
    if (!text) {
        cli_error("plot", "cannot read trace %s: %s", trace, strerror(errno));
        return EXIT_INPUT;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *ev = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "traceEvents")
                                           : root;
    if (!cJSON_IsArray(ev)) {
        cli_error("plot", "%s: not a Chrome/Perfetto trace (a JSON object with traceEvents, "
                          "as moesched sim --trace writes)", trace);
        cJSON_Delete(root);
        return EXIT_INPUT;
    }
    int rc = 0, nrows = 0, nx = 0;
    row rows[MAX_ROWS];
    names kinds = {{0}};
    char term[256], data[4200];
    double tmax_us = 0;
    const cJSON *e;
    /* rows and kinds */
    cJSON_ArrayForEach(e, ev)
    {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") != 0) continue;
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid"),
                    *tid = cJSON_GetObjectItemCaseSensitive(e, "tid"),
                    *ts = cJSON_GetObjectItemCaseSensitive(e, "ts"),
                    *dur = cJSON_GetObjectItemCaseSensitive(e, "dur");
        if (!cJSON_IsNumber(pid) || !cJSON_IsNumber(tid) || !cJSON_IsNumber(ts) ||
            !cJSON_IsNumber(dur)) {
            cli_error("plot", "%s: event %d lacks a numeric pid, tid, ts or dur", trace, nx + 1);
            rc = EXIT_INPUT;
            goto done;
        }
        nx++;
        if (pid->valueint < lo || pid->valueint > hi) continue;
        row r = {pid->valueint, tid->valueint};
        int found = 0;
        for (int i = 0; i < nrows && !found; i++)
            found = rows[i].pid == r.pid && rows[i].tid == r.tid;
        if (!found) {
            if (nrows == MAX_ROWS) {
                cli_error("plot", "%s: more than %d rank/stream rows; choose ranks with --ranks "
                                  "A-B", trace, MAX_ROWS);
                rc = EXIT_INPUT;
                goto done;
            }
            rows[nrows++] = r;
        }
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *cat = cJSON_GetObjectItemCaseSensitive(e, "cat");
        char kind[64];
        task_kind(cJSON_IsString(nm) ? nm->valuestring : NULL,
                  cJSON_IsString(cat) ? cat->valuestring : NULL, kind, sizeof kind);
        if (names_add(&kinds, kind) < 0) {
            cli_error("plot", "%s: more than %d task kinds", trace, MAX_NAMES);
            rc = EXIT_INPUT;
            goto done;
        }
        if (ts->valuedouble + dur->valuedouble > tmax_us)
            tmax_us = ts->valuedouble + dur->valuedouble;
    }
    if (nrows == 0) {
        cli_error("plot", "%s: no complete (\"ph\":\"X\") events%s", trace,
                  ranks ? " on the ranks chosen" : "");
        rc = EXIT_INPUT;
        goto done;
    }
    qsort(rows, (size_t)nrows, sizeof *rows, cmp_row);
    qsort(kinds.v, (size_t)kinds.n, sizeof kinds.v[0], cmp_sched); /* by name */
    if ((rc = pick_terminal(out, term, sizeof term, 1400, 120 + 16 * nrows + 40)) != 0) goto done;
    data_path(out, data, sizeof data);
    FILE *f = open_data(data);
    if (!f) {
        rc = EXIT_INPUT;
        goto done;
    }
    double scale = tmax_us > 1e4 ? 1e-3 : 1; /* ms for long traces */
    fprintf(f, "# start_%s\tend_%s\trow\tkind_index\tlabel\n", scale < 1 ? "ms" : "us",
            scale < 1 ? "ms" : "us");
    cJSON_ArrayForEach(e, ev)
    {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") != 0) continue;
        int pid = cJSON_GetObjectItemCaseSensitive(e, "pid")->valueint;
        int tid = cJSON_GetObjectItemCaseSensitive(e, "tid")->valueint;
        if (pid < lo || pid > hi) continue;
        double ts = cJSON_GetObjectItemCaseSensitive(e, "ts")->valuedouble;
        double dur = cJSON_GetObjectItemCaseSensitive(e, "dur")->valuedouble;
        row key = {pid, tid};
        row *r = bsearch(&key, rows, (size_t)nrows, sizeof *rows, cmp_row);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name"),
                    *cat = cJSON_GetObjectItemCaseSensitive(e, "cat");
        char kind[64];
        task_kind(cJSON_IsString(nm) ? nm->valuestring : NULL,
                  cJSON_IsString(cat) ? cat->valuestring : NULL, kind, sizeof kind);
        fprintf(f, "%.6f\t%.6f\t%d\t%d\t%s\n", ts * scale, (ts + dur) * scale,
                (int)(r - rows), names_find(&kinds, kind) + 1, kind);
    }
    if (close_data(f, data) != 0) {
        rc = EXIT_INPUT;
        goto done;
    }
    /* y tic labels: "rank R stream-name" from the trace's thread_name metadata */
    char ytics[16384];
    size_t yn = 0;
    ytics[0] = 0;
    for (int i = 0; i < nrows; i++) {
        const char *sname = NULL;
        cJSON_ArrayForEach(e, ev)
        {
            const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph"),
                        *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "M") || !cJSON_IsString(nm) ||
                strcmp(nm->valuestring, "thread_name"))
                continue;
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(e, "pid"),
                        *tid = cJSON_GetObjectItemCaseSensitive(e, "tid"),
                        *args = cJSON_GetObjectItemCaseSensitive(e, "args");
            const cJSON *an = args ? cJSON_GetObjectItemCaseSensitive(args, "name") : NULL;
            if (cJSON_IsNumber(pid) && cJSON_IsNumber(tid) && pid->valueint == rows[i].pid &&
                tid->valueint == rows[i].tid && cJSON_IsString(an) && safe_name(an->valuestring))
                sname = an->valuestring;
        }
        char lab[128];
        if (sname) snprintf(lab, sizeof lab, "rank %d %s", rows[i].pid, sname);
        else snprintf(lab, sizeof lab, "rank %d stream %d", rows[i].pid, rows[i].tid);
        if (yn < sizeof ytics)
            yn += (size_t)snprintf(ytics + yn, sizeof ytics - yn, "%s\"%s\" %d", i ? ", " : "",
                                   lab, i);
    }
    if (yn >= sizeof ytics) {
        cli_error("plot", "%s: too many rows to label; choose ranks with --ranks", trace);
        rc = EXIT_INPUT;
        goto done;
    }
    char kw[4096];
    join_words(&kinds, kw, sizeof kw);
    char *vars = strf("term='%s'; out='%s'; data='%s'; kinds='%s'; nrows=%d; ylabels='%s'; "
                      "xunit='%s'; title='%s'",
                      term, out, data, kw, nrows, ytics, scale < 1 ? "ms" : "us", trace);
    rc = render("gantt", vars, out);
    free(vars);
    if (!rc) printf("wrote %s (data %s): %d rows, %d task kinds\n", out, data, nrows, kinds.n);
done:
    names_free(&kinds);
    cJSON_Delete(root);
    return rc;
}

/* ---- predicted vs measured (validate --tasks) ------------------------------------------ */

#define VALIDATE_HEADER "task_id\trank\tstream\tlabel\tpredicted_us\tmeasured_us"

static int parse_pos(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*v) && *v >= 0 ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int plot_validate(const char *tasks, const char *out)
{
    FILE *in = fopen(tasks, "r");
    if (!in) {
        cli_error("plot", "cannot read %s: %s", tasks, strerror(errno));
        return EXIT_INPUT;
    }
    char line[8192], term[256], data[4200];
    names kinds = {{0}};
    int rc = 0, lineno = 0, n = 0, allpos = 1;
    double *relerr = NULL, sum_p = 0, sum_m = 0;
    FILE *f = NULL;
    int header_ok = fgets(line, sizeof line, in) != NULL;
    lineno = 1;
    if (header_ok) line[strcspn(line, "\r\n")] = 0;
    if (!header_ok || strcmp(line, VALIDATE_HEADER) != 0) {
        cli_error("plot", "%s:1: expected the header of moesched validate --tasks: %s", tasks,
                  "task_id, rank, stream, label, predicted_us, measured_us (tab-separated)");
        fclose(in);
        return EXIT_INPUT;
    }
    if ((rc = pick_terminal(out, term, sizeof term, 760, 700)) != 0) goto done;
    data_path(out, data, sizeof data);
    if (!strcmp(data, tasks)) {
        cli_error("plot", "--out %s would overwrite its input %s", out, tasks);
        rc = EXIT_USAGE;
        goto done;
    }
    if (!(f = open_data(data))) {
        rc = EXIT_INPUT;
        goto done;
    }
    fprintf(f, "# predicted_us\tmeasured_us\tkind_index\tkind\n");
    while (fgets(line, sizeof line, in)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        char *fld[7];
        int nf = 0;
        for (char *p = line; nf < 7;) {
            fld[nf++] = p;
            char *t = strchr(p, '\t');
            if (!t) break;
            *t = 0;
            p = t + 1;
        }
        double pu, mu;
        if (nf != 6) {
            cli_error("plot", "%s:%d: expected 6 tab-separated fields, got %d", tasks, lineno, nf);
            rc = EXIT_INPUT;
            goto done;
        }
        if (parse_pos(fld[4], &pu) != 0 || parse_pos(fld[5], &mu) != 0) {
            cli_error("plot", "%s:%d: predicted_us and measured_us must be non-negative "
                              "numbers, got '%s' and '%s'", tasks, lineno, fld[4], fld[5]);
            rc = EXIT_INPUT;
            goto done;
        }
        char kind[64];
        task_kind(fld[3], fld[2], kind, sizeof kind);
        int k = names_add(&kinds, kind);
        if (k < 0) {
            cli_error("plot", "%s:%d: more than %d task kinds", tasks, lineno, MAX_NAMES);
            rc = EXIT_INPUT;
            goto done;
        }
        double *nr = realloc(relerr, sizeof *nr * (size_t)(n + 1));
        if (!nr) {
            rc = EXIT_INPUT;
            goto done;
        }
        relerr = nr;
        relerr[n++] = pu > 0 ? fabs(mu / pu - 1) : (mu > 0 ? INFINITY : 0);
        allpos &= pu > 0 && mu > 0;
        sum_p += pu, sum_m += mu;
        fprintf(f, "%.6g\t%.6g\t%d\t%s\n", pu, mu, k + 1, kind);
    }
    if (n == 0) {
        cli_error("plot", "%s: no tasks after the header", tasks);
        rc = EXIT_INPUT;
        goto done;
    }
    int cerr = close_data(f, data);
    f = NULL;
    if (cerr) {
        rc = EXIT_INPUT;
        goto done;
    }
    qsort(relerr, (size_t)n, sizeof *relerr, cmp_double);
    char kw[4096];
    join_words(&kinds, kw, sizeof kw);
    char *vars = strf("term='%s'; out='%s'; data='%s'; kinds='%s'; logscale=%d; "
                      "title='%s: %d tasks, median |measured/predicted - 1| = %.1f%%'",
                      term, out, data, kw, allpos, tasks, n, 100 * relerr[n / 2]);
    rc = render("validate", vars, out);
    free(vars);
    if (!rc)
        printf("wrote %s (data %s): %d tasks; median |measured/predicted - 1| %.1f%%, "
               "sum measured / sum predicted %.3f\n", out, data, n, 100 * relerr[n / 2],
               sum_p > 0 ? sum_m / sum_p : NAN);
done:
    if (f) fclose(f);
    fclose(in);
    free(relerr);
    names_free(&kinds);
    return rc;
}

/* ---- command --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched plot throughput --db R.db [--where SQL] [--out F]\n"
            "       moesched plot speedup --db R.db [--base S] [--where SQL] [--out F]\n"
            "       moesched plot gantt --trace T.json [--ranks A-B] [--out F]\n"
            "       moesched plot validate --tasks T.tsv [--out F]\n"
            "\n"
            "Draws a figure with gnuplot (plots/KIND.gp) and writes its data as a TSV file\n"
            "beside it (F with .tsv; docs/PLOTS.md):\n"
            "  throughput  tokens/s vs cluster size (GPUs), one line per scheduler, one\n"
            "              panel per model, from a sweep's results database\n"
            "  speedup     bars of each scheduler's throughput over the baseline's, per\n"
            "              model and cluster size\n"
            "  gantt       a trace (moesched sim --trace, or exec): rows = rank/stream,\n"
            "              colour = task kind (from the task label)\n"
            "  validate    predicted vs measured time per task with the y = x line, from\n"
            "              moesched validate --tasks\n"
            "\n"
            "  --out F       figure: .png (default out/KIND.png), .svg, or .pdf (needs\n"
            "                gnuplot's cairo terminal)\n"
            "  --db PATH     results database of moesched sweep\n"
            "  --where SQL   keep the points matching an SQL expression over the results\n"
            "                table (docs/SWEEP.md), e.g. \"seq = 4096 AND model = 'deepseek-v2'\"\n"
            "  --base S      speedup baseline scheduler (default pppipe)\n"
            "  --trace PATH  Chrome/Perfetto trace JSON\n"
            "  --ranks A-B   Gantt rows of these ranks only (at most %d rows are drawn)\n"
            "  --tasks PATH  per-task TSV: " VALIDATE_HEADER "\n"
            "  -h, --help    this text\n",
            MAX_ROWS);
}

int cmd_plot(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},    {"out", required_argument, 0, 'o'},
        {"where", required_argument, 0, 'w'}, {"base", required_argument, 0, 'b'},
        {"trace", required_argument, 0, 't'}, {"ranks", required_argument, 0, 'r'},
        {"tasks", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        cli_error("plot", "a plot kind is required: throughput, speedup, gantt or validate "
                          "(moesched plot --help)");
        return EXIT_USAGE;
    }
    const char *kind = argv[1];
    const char *db = NULL, *out = NULL, *where = NULL, *base = "pppipe", *trace = NULL,
               *ranks = NULL, *tasks = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db = optarg; break;
        case 'o': out = optarg; break;
        case 'w': where = optarg; break;
        case 'b': base = optarg; break;
        case 't': trace = optarg; break;
        case 'r': ranks = optarg; break;
        case 'k': tasks = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            /* getopt ran on argv + 1: the option is (argv + 1)[optind - 1] */
            cli_error("plot", "unknown or incomplete option '%s'", argv[optind]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc - 1) {
        cli_error("plot", "unexpected argument '%s'", argv[optind + 1]); /* (argv + 1)[optind] */
        return EXIT_USAGE;
    }
    int k = !strcmp(kind, "throughput") ? 0 : !strcmp(kind, "speedup") ? 1
          : !strcmp(kind, "gantt")      ? 2 : !strcmp(kind, "validate") ? 3 : -1;
    if (k < 0) {
        cli_error("plot", "unknown plot '%s' (known: throughput, speedup, gantt, validate)", kind);
        return EXIT_USAGE;
    }
    static const char *const need[] = {"--db", "--db", "--trace", "--tasks"};
    const char *given[] = {db, db, trace, tasks};
    if (!given[k]) {
        cli_error("plot", "plot %s needs %s", kind, need[k]);
        return EXIT_USAGE;
    }
    char def[256];
    if (!out) {
        snprintf(def, sizeof def, "out/%s.png", kind);
        out = def;
    }
    if (!safe_name(out) || !safe_name(given[k])) {
        cli_error("plot", "file names with quotes or backslashes cannot be passed to gnuplot");
        return EXIT_USAGE;
    }
    if (make_parent(out) != 0) {
        cli_error("plot", "cannot create the folder of %s: %s", out, strerror(errno));
        return EXIT_INPUT;
    }
    switch (k) {
    case 0: return plot_throughput(db, where, out);
    case 1: return plot_speedup(db, where, base, out);
    case 2: return plot_gantt(trace, ranks, out);
    default: return plot_validate(tasks, out);
    }
}

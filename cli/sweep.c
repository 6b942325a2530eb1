/* The sweep engine (see sweep.h and docs/SWEEP.md): spec reading and crossing, the results
 * database (SQLite, WAL, one transaction per point) and the subprocess runner with
 * --jobs, --shard, --point-timeout and progress output. */
#include "cli/sweep.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "cli/cmd.h"
#include "core/hash.h"
#include "core/model.h"
#include "core/topo.h"

#define MAX_POINTS 1000000
#define MAX_OUTPUT_BYTES (16u << 20) /* per stream of one point; more is cut */

/* ---- small helpers -------------------------------------------------------------------- */

static char *dupstr(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* A growable byte buffer, always NUL-terminated. */
typedef struct buf {
    char *p;
    size_t n, cap;
    int cut; /* bytes beyond MAX_OUTPUT_BYTES were dropped */
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (b->n + n > MAX_OUTPUT_BYTES) {
        b->cut = 1;
        n = MAX_OUTPUT_BYTES > b->n ? MAX_OUTPUT_BYTES - b->n : 0;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static void buf_addf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(buf *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

/* The last non-empty line of text, trimmed, into out. */
static void last_line(const char *text, char *out, size_t len)
{
    out[0] = 0;
    if (!text) return;
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    size_t n = (size_t)(end - start);
    if (n >= len) n = len - 1;
    memcpy(out, start, n);
    out[n] = 0;
}

const char *sw_status_name(sw_status s)
{
    return s == SW_OK ? "ok" : s == SW_TIMEOUT ? "timeout" : "failed";
}

/* ---- the flags each subcommand takes (from `moesched CMD --help`) --------------------- */

typedef struct cmd_help {
    char name[16];
    char *text; /* the --help output */
} cmd_help;

/* Runs `moesched CMD --help` and keeps its stdout. It is this binary's own subcommand,
 * run in a forked child (no exec, no second start-up), so the flags checked are those of
 * the binary that runs the points. 0, or -1 with err. */
static int load_help(const char *bin, const char *cmd, cmd_help *h, ms_err *err)
{
    int fd[2];
    if (pipe(fd) != 0) return ms_err_set(err, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return ms_err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]), close(fd[1]);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) dup2(dn, 0), dup2(dn, 2);
        char a0[16], a1[] = "--help";
        snprintf(a0, sizeof a0, "%s", cmd);
        char *args[] = {a0, a1, NULL};
        int rc = !strcmp(cmd, "sim") ? cmd_sim(2, args) : cmd_solve(2, args);
        fflush(stdout);
        _exit(rc);
    }
    close(fd[1]);
    buf b = {0};
    char tmp[4096];
    ssize_t n;
    while ((n = read(fd[0], tmp, sizeof tmp)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0) buf_add(&b, tmp, (size_t)n);
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !b.p) {
        free(b.p);
        return ms_err_set(err, "'%s %s --help' failed (status %d): cannot check the spec's "
                               "flags", bin, cmd, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    snprintf(h->name, sizeof h->name, "%s", cmd);
    h->text = b.p;
    return 0;
}

/* Does the help text list `--flag` (followed by a space, comma, newline or ']')? */
static int help_has(const cmd_help *h, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = h->text; (p = strstr(p, "--")); p += 2) {
        if (strncmp(p + 2, flag, n) != 0) continue;
        char c = p[2 + n];
        if (c == ' ' || c == ',' || c == '\n' || c == ']' || c == '|' || c == '=' || c == 0)
            return 1;
    }
    return 0;
}

/* ---- spec reading --------------------------------------------------------------------- */

/* A flag as assembled for a point, with the spec line that set it. */
typedef struct aflag {
    const char *name, *value; /* value NULL: the flag alone (YAML true) */
    int line;
} aflag;

/* A set of flag assignments from the spec; value REMOVE deletes the flag. */
static const char REMOVE[] = "\x01remove";
#define MAX_SET 64
typedef struct flagset {
    aflag f[MAX_SET];
    int n;
} flagset;

typedef struct scheduler {
    const char *name, *command;
    flagset set;
    int line;
} scheduler;

typedef struct axis {
    const char *name;
    int line;
    flagset *values; /* each value: a set of flag assignments */
    int n;
} axis;

#define MAX_AXES 16
#define MAX_SCHED 64
typedef struct reader {
    const char *path;
    yaml_document_t doc;
    ms_err *err;
    const char *name;
    flagset global;
    axis axes[MAX_AXES];
    int naxes;
    scheduler sched[MAX_SCHED];
    int nsched;
} reader;

static int rerr(reader *r, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rerr(reader *r, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) return ms_err_set(r->err, "%s:%d: %s", r->path, (int)n->start_mark.line + 1, msg);
    return ms_err_set(r->err, "%s: %s", r->path, msg);
}

static yaml_node_t *node(reader *r, int i) { return yaml_document_get_node(&r->doc, i); }
static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }
static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static int is_plain(const yaml_node_t *n, const char *word)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           !strcmp(sval(n), word);
}

static int valid_flag_name(const char *s)
{
    if (!*s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9'))) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
            return 0;
    return 1;
}

/* Adds `name: value` to set (replacing an earlier assignment of the same name). */
static int set_put(reader *r, flagset *s, const yaml_node_t *kn, const yaml_node_t *vn)
{
    if (kn->type != YAML_SCALAR_NODE) return rerr(r, kn, "a flag name must be a plain name");
    const char *name = sval(kn);
    if (!valid_flag_name(name))
        return rerr(r, kn, "'%s' is not a flag name (lower-case letters, digits and '-', "
                           "as in --name)", name);
    if (!strcmp(name, "json") || !strcmp(name, "help"))
        return rerr(r, kn, "flag '%s' cannot be set: the sweep adds --json itself", name);
    const char *value;
    if (vn->type != YAML_SCALAR_NODE)
        return rerr(r, vn, "flag '%s': expected a single value (a number or a string)", name);
    if (is_plain(vn, "~") || is_plain(vn, "null") || is_plain(vn, "false") ||
        (vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !*sval(vn)))
        value = REMOVE;
    else if (is_plain(vn, "true")) value = NULL;
    else value = sval(vn);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->f[i].name, name)) {
            s->f[i].value = value, s->f[i].line = line_of(kn);
            return 0;
        }
    if (s->n == MAX_SET) return rerr(r, kn, "more than %d flags in one mapping", MAX_SET);
    s->f[s->n++] = (aflag){name, value, line_of(kn)};
    return 0;
}

static int read_flag_map(reader *r, const yaml_node_t *m, flagset *s, const char *what)
{
    if (m->type != YAML_MAPPING_NODE)
        return rerr(r, m, "%s: expected a mapping of flag: value", what);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
        if (set_put(r, s, node(r, p->key), node(r, p->value)) != 0) return -1;
    return 0;
}

/* The built-in schedulers (docs/SWEEP.md): sim for the fixed schedules, solve for the
 * solver-backed ones. */
static void add_builtins(reader *r)
{
    static const struct {
        const char *name, *command, *sched, *method;
    } b[] = {{"naive", "sim", "naive", NULL},      {"ep", "sim", "ep", NULL},
             {"pppipe", "solve", "pppipe", NULL},  {"findep", "solve", "findep", "alg1"},
             {"search", "solve", "findep", "search"},
             {"exhaustive", "solve", "findep", "exhaustive"}};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        scheduler *s = &r->sched[r->nsched++];
        memset(s, 0, sizeof *s);
        s->name = b[i].name, s->command = b[i].command;
        s->set.f[s->set.n++] = (aflag){"workload", "dep", 0};
        s->set.f[s->set.n++] = (aflag){"sched", b[i].sched, 0};
        if (b[i].method) s->set.f[s->set.n++] = (aflag){"method", b[i].method, 0};
        if (!strcmp(b[i].name, "ep")) {
            s->set.f[s->set.n++] = (aflag){"ag", REMOVE, 0};
            s->set.f[s->set.n++] = (aflag){"eg", REMOVE, 0};
        }
    }
}

static scheduler *find_sched(reader *r, const char *name)
{
    for (int i = r->nsched - 1; i >= 0; i--) /* the spec's own definitions win */
        if (!strcmp(r->sched[i].name, name)) return &r->sched[i];
    return NULL;
}

static int read_schedulers(reader *r, const yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return rerr(r, m, "schedulers: expected a mapping of NAME: {command, flags}");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(r, p->key), *vn = node(r, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return rerr(r, kn, "a scheduler name must be a plain name");
        if (r->nsched == MAX_SCHED) return rerr(r, kn, "more than %d schedulers", MAX_SCHED);
        if (vn->type != YAML_MAPPING_NODE)
            return rerr(r, vn, "scheduler '%s': expected a mapping with command and flags",
                        sval(kn));
        scheduler *s = &r->sched[r->nsched++];
        memset(s, 0, sizeof *s);
        s->name = sval(kn), s->line = line_of(kn);
        for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top;
             q++) {
            yaml_node_t *k2 = node(r, q->key), *v2 = node(r, q->value);
            if (k2->type != YAML_SCALAR_NODE)
                return rerr(r, k2, "scheduler '%s': keys are command and flags", s->name);
            if (!strcmp(sval(k2), "command")) {
                if (v2->type != YAML_SCALAR_NODE ||
                    (strcmp(sval(v2), "sim") != 0 && strcmp(sval(v2), "solve") != 0))
                    return rerr(r, v2, "scheduler '%s': command must be sim or solve", s->name);
                s->command = sval(v2);
            } else if (!strcmp(sval(k2), "flags")) {
                if (read_flag_map(r, v2, &s->set, "scheduler flags") != 0) return -1;
            } else
                return rerr(r, k2, "scheduler '%s': unknown key '%s' (known: command, flags)",
                            s->name, sval(k2));
        }
        if (!s->command)
            return rerr(r, kn, "scheduler '%s' needs a command (sim or solve)", s->name);
    }
    return 0;
}

static int read_axes(reader *r, const yaml_node_t *m)
{
    if (m->type != YAML_MAPPING_NODE)
        return rerr(r, m, "axes: expected a mapping of NAME: [values]");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(r, p->key), *vn = node(r, p->value);
        if (kn->type != YAML_SCALAR_NODE) return rerr(r, kn, "an axis name must be a plain name");
        if (r->naxes == MAX_AXES) return rerr(r, kn, "more than %d axes", MAX_AXES);
        const char *name = sval(kn);
        for (int i = 0; i < r->naxes; i++)
            if (!strcmp(r->axes[i].name, name)) return rerr(r, kn, "axis '%s' given twice", name);
        if (vn->type != YAML_SEQUENCE_NODE)
            return rerr(r, vn, "axis '%s': expected a list of values", name);
        int n = (int)(vn->data.sequence.items.top - vn->data.sequence.items.start);
        if (n == 0) return rerr(r, vn, "axis '%s' is empty: give at least one value", name);
        axis *a = &r->axes[r->naxes++];
        a->name = name, a->line = line_of(kn), a->n = n;
        a->values = calloc((size_t)n, sizeof *a->values);
        if (!a->values) return rerr(r, kn, "out of memory");
        for (int i = 0; i < n; i++) {
            yaml_node_t *item = node(r, vn->data.sequence.items.start[i]);
            if (item->type == YAML_MAPPING_NODE) {
                if (item->data.mapping.pairs.top == item->data.mapping.pairs.start)
                    return rerr(r, item, "axis '%s': an empty mapping sets nothing", name);
                if (read_flag_map(r, item, &a->values[i], "axis value") != 0) return -1;
            } else if (item->type == YAML_SCALAR_NODE) {
                if (set_put(r, &a->values[i], kn, item) != 0) return -1;
                a->values[i].f[0].line = line_of(item);
            } else
                return rerr(r, item, "axis '%s': a value is a scalar or a mapping of flags",
                            name);
        }
    }
    return 0;
}

static int read_top(reader *r)
{
    yaml_node_t *root = yaml_document_get_root_node(&r->doc);
    if (!root) return rerr(r, NULL, "the spec is empty");
    if (root->type != YAML_MAPPING_NODE)
        return rerr(r, root, "expected a mapping with name, flags, axes, schedulers");
    int have_axes = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = node(r, p->key), *vn = node(r, p->value);
        if (kn->type != YAML_SCALAR_NODE) return rerr(r, kn, "keys must be plain names");
        const char *k = sval(kn);
        for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(sval(node(r, q->key)), k)) return rerr(r, kn, "key '%s' given twice", k);
        if (!strcmp(k, "name")) {
            if (vn->type != YAML_SCALAR_NODE || !*sval(vn))
                return rerr(r, vn, "name: expected a string");
            r->name = sval(vn);
        } else if (!strcmp(k, "flags")) {
            if (read_flag_map(r, vn, &r->global, "flags") != 0) return -1;
        } else if (!strcmp(k, "axes")) {
            if (read_axes(r, vn) != 0) return -1;
            have_axes = 1;
        } else if (!strcmp(k, "schedulers")) {
            if (read_schedulers(r, vn) != 0) return -1;
        } else
            return rerr(r, kn, "unknown key '%s' (known: name, flags, axes, schedulers)", k);
    }
    if (!have_axes) return rerr(r, root, "no axes: give at least one axis to sweep");
    return 0;
}

/* ---- crossing ------------------------------------------------------------------------- */

static int cmp_flag(const void *a, const void *b)
{
    return strcmp(((const sw_flag *)a)->name, ((const sw_flag *)b)->name);
}

static void apply_set(flagset *dst, const flagset *src)
{
    for (int i = 0; i < src->n; i++) {
        int j = 0;
        while (j < dst->n && strcmp(dst->f[j].name, src->f[i].name) != 0) j++;
        if (j == dst->n) {
            if (dst->n == MAX_SET) continue; /* checked by the caller's bound */
            dst->n++;
        }
        dst->f[j] = src->f[i];
    }
}

static const aflag *get_flag(const flagset *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->f[i].name, name) && s->f[i].value != REMOVE) return &s->f[i];
    return NULL;
}

typedef struct cache_entry {
    const char *spec;
    int value; /* gpus for topologies; 0 for models */
} cache_entry;

typedef struct checker {
    reader *r;
    const char *bin;
    cmd_help help[2];
    int nhelp;
    cache_entry *models, *topos;
    int nmodels, ntopos;
} checker;

static const cmd_help *help_for(checker *c, const char *cmd)
{
    for (int i = 0; i < c->nhelp; i++)
        if (!strcmp(c->help[i].name, cmd)) return &c->help[i];
    if (c->nhelp == 2) return NULL;
    if (load_help(c->bin, cmd, &c->help[c->nhelp], c->r->err) != 0) return NULL;
    return &c->help[c->nhelp++];
}

static int check_model(checker *c, const aflag *f)
{
    for (int i = 0; i < c->nmodels; i++)
        if (!strcmp(c->models[i].spec, f->value)) return 0;
    model_cfg m;
    ms_err e = {{0}};
    if (model_load(f->value, &m, &e) != 0)
        return ms_err_set(c->r->err, "%s:%d: unknown model '%s': %s", c->r->path, f->line,
                          f->value, e.msg);
    cache_entry *n = realloc(c->models, sizeof *n * (size_t)(c->nmodels + 1));
    if (!n) return ms_err_set(c->r->err, "out of memory");
    c->models = n;
    c->models[c->nmodels++] = (cache_entry){f->value, 0};
    return 0;
}

static int check_topo(checker *c, const aflag *f, int *gpus)
{
    for (int i = 0; i < c->ntopos; i++)
        if (!strcmp(c->topos[i].spec, f->value)) {
            *gpus = c->topos[i].value;
            return 0;
        }
    topo t;
    ms_err e = {{0}};
    if (topo_load(f->value, &t, &e) != 0)
        return ms_err_set(c->r->err, "%s:%d: topology '%s': %s", c->r->path, f->line, f->value,
                          e.msg);
    cache_entry *n = realloc(c->topos, sizeof *n * (size_t)(c->ntopos + 1));
    if (!n) return ms_err_set(c->r->err, "out of memory");
    c->topos = n;
    *gpus = t.nodes * t.gpus_per_node;
    c->topos[c->ntopos++] = (cache_entry){f->value, *gpus};
    return 0;
}

static void point_release(sw_point *p)
{
    for (int i = 0; i < p->nflags; i++) free(p->flags[i].name), free(p->flags[i].value);
    free(p->flags);
    free(p->sched);
    free(p->command);
    free(p->canonical);
}

/* Builds point number idx (mixed radix over the axes, the first axis slowest). */
static int make_point(checker *c, long idx, sw_point *p)
{
    reader *r = c->r;
    flagset fs = r->global;
    long rest = idx;
    int pick[MAX_AXES];
    for (int a = r->naxes - 1; a >= 0; a--) {
        pick[a] = (int)(rest % r->axes[a].n);
        rest /= r->axes[a].n;
    }
    for (int a = 0; a < r->naxes; a++) apply_set(&fs, &r->axes[a].values[pick[a]]);
    const aflag *sf = get_flag(&fs, "sched");
    if (!sf || !sf->value)
        return ms_err_set(r->err, "%s: no scheduler: give flags: {sched: NAME} or an axis "
                                  "sched: [NAMES] (built in: naive, ep, pppipe, findep, "
                                  "search, exhaustive)", r->path);
    const char *sname = sf->value;
    int sline = sf->line;
    scheduler *s = find_sched(r, sname);
    if (!s)
        return ms_err_set(r->err, "%s:%d: unknown scheduler '%s' (built in: naive, ep, "
                                  "pppipe, findep, search, exhaustive; or define it under "
                                  "schedulers:)", r->path, sline, sname);
    apply_set(&fs, &s->set);
    if (fs.n >= MAX_SET) return ms_err_set(r->err, "%s: too many flags in a point", r->path);
    const cmd_help *h = help_for(c, s->command);
    if (!h) return -1;
    const aflag *mf = get_flag(&fs, "model"), *tf = get_flag(&fs, "topo");
    if (!mf || !mf->value || !tf || !tf->value)
        return ms_err_set(r->err, "%s: every point needs a model and a topo (scheduler "
                                  "'%s' point has %s)", r->path, sname,
                          !mf ? "no model" : "no topo");
    memset(p, 0, sizeof *p);
    p->index = (int)idx;
    p->seq = -1;
    if (check_model(c, mf) != 0 || check_topo(c, tf, &p->gpus) != 0) return -1;
    p->flags = calloc((size_t)fs.n, sizeof *p->flags);
    p->sched = dupstr(sname);
    p->command = dupstr(s->command);
    if (!p->flags || !p->sched || !p->command) return ms_err_set(r->err, "out of memory");
    for (int i = 0; i < fs.n; i++) {
        const aflag *f = &fs.f[i];
        if (f->value == REMOVE) continue;
        if (!help_has(h, f->name)) {
            if (f->line)
                return ms_err_set(r->err, "%s:%d: flag '%s' is not taken by moesched %s "
                                          "(scheduler '%s'; see moesched %s --help)",
                                  r->path, f->line, f->name, s->command, sname, s->command);
            return ms_err_set(r->err, "%s: scheduler '%s' sets flag '%s', which moesched %s "
                                      "does not take", r->path, sname, f->name, s->command);
        }
        sw_flag *o = &p->flags[p->nflags++];
        o->name = dupstr(f->name);
        o->value = f->value ? dupstr(f->value) : NULL;
        if (!o->name || (f->value && !o->value)) return ms_err_set(r->err, "out of memory");
    }
    qsort(p->flags, (size_t)p->nflags, sizeof *p->flags, cmp_flag);
    buf b = {0};
    buf_addf(&b, "%s", p->command);
    for (int i = 0; i < p->nflags; i++) {
        buf_addf(&b, " --%s", p->flags[i].name);
        if (p->flags[i].value) buf_addf(&b, " %s", p->flags[i].value);
        if (!strcmp(p->flags[i].name, "model")) p->model = p->flags[i].value;
        if (!strcmp(p->flags[i].name, "topo")) p->topo = p->flags[i].value;
        if (!strcmp(p->flags[i].name, "seq") && p->flags[i].value)
            p->seq = atoi(p->flags[i].value);
    }
    if (!b.p) return ms_err_set(r->err, "out of memory");
    p->canonical = b.p;
    snprintf(p->key, sizeof p->key, "%016llx", (unsigned long long)ms_fnv1a64(b.p, strlen(b.p)));
    return 0;
}

void sw_spec_release(sw_spec *s)
{
    if (!s) return;
    for (int i = 0; i < s->npoints; i++) point_release(&s->points[i]);
    free(s->points);
    free(s->path);
    free(s->name);
    memset(s, 0, sizeof *s);
}

int sw_spec_load(const char *path, const char *bin, sw_spec *out, ms_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return ms_err_set(err, "cannot read spec %s: %s", path, strerror(errno));
    reader r;
    memset(&r, 0, sizeof r);
    r.path = path, r.err = err;
    yaml_parser_t yp;
    yaml_parser_initialize(&yp);
    yaml_parser_set_input_file(&yp, f);
    if (!yaml_parser_load(&yp, &r.doc)) {
        ms_err_set(err, "%s:%d: YAML: %s%s%s", path, (int)yp.problem_mark.line + 1,
                   yp.problem ? yp.problem : "syntax error", yp.context ? " " : "",
                   yp.context ? yp.context : "");
        yaml_parser_delete(&yp);
        fclose(f);
        return -1;
    }
    yaml_parser_delete(&yp);
    fclose(f);
    add_builtins(&r);
    checker c;
    memset(&c, 0, sizeof c);
    c.r = &r, c.bin = bin;
    int rc = read_top(&r);
    long total = 1;
    for (int a = 0; rc == 0 && a < r.naxes; a++) {
        total *= r.axes[a].n;
        if (total > MAX_POINTS)
            rc = ms_err_set(err, "%s: more than %d points", path, MAX_POINTS);
    }
    if (rc == 0) {
        out->points = calloc((size_t)total, sizeof *out->points);
        if (!out->points) rc = ms_err_set(err, "out of memory");
    }
    for (long i = 0; rc == 0 && i < total; i++) {
        sw_point *p = &out->points[out->npoints];
        if (make_point(&c, i, p) != 0) {
            point_release(p);
            rc = -1;
            break;
        }
        int dup = 0; /* two axis values that give one command: keep the first */
        for (int j = 0; j < out->npoints && !dup; j++)
            dup = !strcmp(out->points[j].key, p->key);
        if (dup) point_release(p);
        else out->npoints++;
    }
    if (rc == 0) {
        out->path = dupstr(path);
        if (r.name) out->name = dupstr(r.name);
        else {
            const char *base = strrchr(path, '/');
            base = base ? base + 1 : path;
            out->name = dupstr(base);
            char *dot = out->name ? strrchr(out->name, '.') : NULL;
            if (dot && dot != out->name) *dot = 0;
        }
        if (!out->path || !out->name) rc = ms_err_set(err, "out of memory");
    }
    for (int i = 0; i < c.nhelp; i++) free(c.help[i].text);
    free(c.models);
    free(c.topos);
    for (int a = 0; a < r.naxes; a++) free(r.axes[a].values);
    yaml_document_delete(&r.doc);
    if (rc != 0) sw_spec_release(out);
    return rc;
}

/* ---- results database ----------------------------------------------------------------- */

struct sw_db {
    sqlite3 *h;
    char path[4096];
};

#define COLUMNS                                                                            \
    "key, canonical, spec, sched, command, model, topo, gpus, seq, flags, argv, status, "  \
    "exit_code, error, makespan_us, throughput_tokens_per_s, bound_tokens_per_s, choice, " \
    "ag, eg, r1, ma, r2, sched_order, output, wall_s, host, finished_at"

static const char SCHEMA[] =
    "CREATE TABLE point (\n"
    "  key TEXT PRIMARY KEY,          -- FNV-1a 64 of canonical, 16 hex digits\n"
    "  canonical TEXT NOT NULL UNIQUE, -- the command and its flags, sorted\n"
    "  spec TEXT NOT NULL,            -- the spec's name\n"
    "  sched TEXT NOT NULL,           -- the scheduler's name in the spec\n"
    "  command TEXT NOT NULL,         -- sim | solve\n"
    "  model TEXT NOT NULL, topo TEXT NOT NULL, gpus INTEGER NOT NULL,\n"
    "  seq INTEGER,                   -- NULL when the point has no --seq\n"
    "  flags TEXT NOT NULL,           -- JSON object: every flag of the point\n"
    "  argv TEXT NOT NULL,            -- JSON array: the exact argv run\n"
    "  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'timeout')),\n"
    "  exit_code INTEGER,             -- exit status, or -SIGNAL\n"
    "  error TEXT,                    -- last line of stderr when not ok\n"
    "  makespan_us REAL, throughput_tokens_per_s REAL, bound_tokens_per_s REAL,\n"
    "  choice TEXT,                   -- the schedule run: ag= eg= r1= ma= r2= order=\n"
    "  ag INTEGER, eg INTEGER, r1 INTEGER, ma INTEGER, r2 INTEGER, sched_order TEXT,\n"
    "  output TEXT,                   -- the JSON the command printed\n"
    "  wall_s REAL NOT NULL,          -- wall time of the point's process, s\n"
    "  host TEXT, finished_at TEXT    -- where, and when (UTC, ISO 8601)\n"
    ");\n"
    "CREATE INDEX point_by_model ON point (model, sched, gpus);\n";

static int db_fail(sw_db *db, ms_err *err, const char *what)
{
    return ms_err_set(err, "results database %s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

/* Reads application_id, user_version and the number of schema objects of an open
 * handle, in one statement so that the three come from one snapshot (another sweep may be
 * creating the table right now). 0, or -1 (err names the file: not a database, or
 * unreadable). */
static int read_identity(sqlite3 *h, const char *path, int *app, int *ver, int *objects,
                         ms_err *err)
{
    static const char q[] = "SELECT (SELECT application_id FROM pragma_application_id()), "
                            "(SELECT user_version FROM pragma_user_version()), "
                            "(SELECT count(*) FROM sqlite_master)";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, q, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int code = sqlite3_errcode(h);
        ms_err_set(err, "%s: %s", path,
                   code == SQLITE_NOTADB ? "not an SQLite database (left untouched)"
                                         : sqlite3_errmsg(h));
        sqlite3_finalize(st);
        return -1;
    }
    *app = sqlite3_column_int(st, 0);
    *ver = sqlite3_column_int(st, 1);
    *objects = sqlite3_column_int(st, 2);
    sqlite3_finalize(st);
    return 0;
}

static int identity_ok(const char *path, int app, int ver, int objects, int allow_empty,
                       ms_err *err)
{
    if (app == SW_APPLICATION_ID && ver == SW_SCHEMA_VERSION) return 0;
    if (allow_empty && app == 0 && ver == 0 && objects == 0) return 0;
    if (app == SW_APPLICATION_ID)
        return ms_err_set(err, "%s: results schema version %d, but this moesched reads and "
                               "writes version %d; use another --db (the file is left "
                               "untouched)", path, ver, SW_SCHEMA_VERSION);
    return ms_err_set(err, "%s: an SQLite database that is not a sweep results database "
                           "(application_id %d, user_version %d); use another --db (the "
                           "file is left untouched)", path, app, ver);
}

static int exec_sql(sw_db *db, const char *sql, ms_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ms_err_set(err, "results database %s: %s", db->path, msg ? msg : "error");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

sw_db *sw_db_open(const char *path, ms_err *err)
{
    sw_db *db = calloc(1, sizeof *db);
    if (!db) {
        ms_err_set(err, "out of memory");
        return NULL;
    }
    snprintf(db->path, sizeof db->path, "%s", path);
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
        ms_err_set(err, "%s: not a regular file", path);
        free(db);
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
        ms_err_set(err, "cannot open results database %s: %s", path,
                   db->h ? sqlite3_errmsg(db->h) : "out of memory");
        sw_db_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db->h, 30000);
    int app = 0, ver = 0, objects = 0;
    if (read_identity(db->h, path, &app, &ver, &objects, err) != 0 ||
        identity_ok(path, app, ver, objects, 1, err) != 0) {
        sw_db_close(db);
        return NULL;
    }
    if (sqlite3_db_readonly(db->h, "main") == 1) {
        ms_err_set(err, "results database %s is read-only", path);
        sw_db_close(db);
        return NULL;
    }
    /* WAL only once the file is known to be ours (switching rewrites the header). */
    char *msg = NULL;
    int rc;
    for (int tries = 0; (rc = sqlite3_exec(db->h, "PRAGMA journal_mode=WAL", NULL, NULL, &msg)) ==
                            SQLITE_BUSY && tries < 300; tries++) {
        sqlite3_free(msg);
        msg = NULL;
        usleep(100000);
    }
    if (rc != SQLITE_OK) {
        ms_err_set(err, "cannot write results database %s: %s", path, msg ? msg : "error");
        sqlite3_free(msg);
        sw_db_close(db);
        return NULL;
    }
    sqlite3_free(msg);
    if (exec_sql(db, "BEGIN IMMEDIATE", err) != 0) goto fail;
    /* another sweep may have created the table meanwhile */
    if (read_identity(db->h, path, &app, &ver, &objects, err) != 0 ||
        identity_ok(path, app, ver, objects, 1, err) != 0) {
        exec_sql(db, "ROLLBACK", NULL);
        goto fail;
    }
    if (ver == 0) {
        char sql[4096];
        snprintf(sql, sizeof sql, "%sPRAGMA application_id=%d; PRAGMA user_version=%d;", SCHEMA,
                 SW_APPLICATION_ID, SW_SCHEMA_VERSION);
        if (exec_sql(db, sql, err) != 0) {
            exec_sql(db, "ROLLBACK", NULL);
            goto fail;
        }
    }
    if (exec_sql(db, "COMMIT", err) != 0) goto fail;
    return db;
fail:
    sw_db_close(db);
    return NULL;
}

void sw_db_close(sw_db *db)
{
    if (!db) return;
    sqlite3_close(db->h);
    free(db);
}

int sw_db_lookup(sw_db *db, const sw_point *p, ms_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "SELECT status, canonical FROM point WHERE key = ?1", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(db, err, "lookup");
    sqlite3_bind_text(st, 1, p->key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st), out = 0;
    if (rc == SQLITE_ROW) {
        const char *canon = (const char *)sqlite3_column_text(st, 1);
        if (!canon || strcmp(canon, p->canonical) != 0) {
            ms_err_set(err, "results database %s: key %s is held by another point (%s); "
                            "a hash collision: use another --db", db->path, p->key,
                       canon ? canon : "?");
            out = -1;
        } else
            out = !strcmp((const char *)sqlite3_column_text(st, 0), "ok") ? 1 : 2;
    } else if (rc != SQLITE_DONE) {
        out = db_fail(db, err, "lookup");
    }
    sqlite3_finalize(st);
    return out;
}

static char *json_flags(const sw_point *p)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < p->nflags; i++) {
        if (p->flags[i].value) cJSON_AddStringToObject(o, p->flags[i].name, p->flags[i].value);
        else cJSON_AddTrueToObject(o, p->flags[i].name);
    }
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

static char *json_argv(char *const *argv)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && argv[i]; i++) cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
    char *s = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return s;
}

static void bind_num(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v)) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i);
}

static void bind_int(sqlite3_stmt *st, int i, int v)
{
    if (v >= 0) sqlite3_bind_int(st, i, v);
    else sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

/* Upsert: a row already ok wins; a failed row is replaced. */
#define UPSERT_TAIL                                                                       \
    " ON CONFLICT(key) DO UPDATE SET status = excluded.status, exit_code = excluded.exit_code," \
    " error = excluded.error, makespan_us = excluded.makespan_us,"                         \
    " throughput_tokens_per_s = excluded.throughput_tokens_per_s,"                         \
    " bound_tokens_per_s = excluded.bound_tokens_per_s, choice = excluded.choice,"         \
    " ag = excluded.ag, eg = excluded.eg, r1 = excluded.r1, ma = excluded.ma,"             \
    " r2 = excluded.r2, sched_order = excluded.sched_order, output = excluded.output,"     \
    " wall_s = excluded.wall_s, host = excluded.host, finished_at = excluded.finished_at," \
    " argv = excluded.argv, spec = excluded.spec"                                          \
    " WHERE point.status <> 'ok'"

int sw_db_record(sw_db *db, const sw_spec *s, const sw_point *p, char *const *argv,
                 const sw_result *r, ms_err *err)
{
    char *flags = json_flags(p), *av = json_argv(argv);
    char host[256] = "", when[64] = "";
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (!flags || !av) {
        ms_err_set(err, "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(db->h,
                           "INSERT INTO point (" COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                           "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, "
                           "?22, ?23, ?24, ?25, ?26, ?27, ?28)" UPSERT_TAIL,
                           -1, &st, NULL) != SQLITE_OK) {
        db_fail(db, err, "prepare insert");
        goto out;
    }
    sqlite3_bind_text(st, 1, p->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->canonical, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, p->sched, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, p->command, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, p->model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, p->topo, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, p->gpus);
    bind_int(st, 9, p->seq);
    sqlite3_bind_text(st, 10, flags, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 11, av, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 12, sw_status_name(r->status), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 13, r->exit_code);
    bind_str(st, 14, r->error);
    bind_num(st, 15, r->makespan_us);
    bind_num(st, 16, r->throughput_tokens_per_s);
    bind_num(st, 17, r->bound_tokens_per_s);
    bind_str(st, 18, r->choice);
    bind_int(st, 19, r->ag);
    bind_int(st, 20, r->eg);
    bind_int(st, 21, r->r1);
    bind_int(st, 22, r->ma);
    bind_int(st, 23, r->r2);
    bind_str(st, 24, r->order);
    bind_str(st, 25, r->output);
    sqlite3_bind_double(st, 26, r->wall_s);
    bind_str(st, 27, host);
    sqlite3_bind_text(st, 28, when, -1, SQLITE_STATIC);
    /* a single statement is one transaction; the busy timeout waits out other writers */
    if (sqlite3_step(st) != SQLITE_DONE) {
        db_fail(db, err, "insert");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    cJSON_free(flags);
    cJSON_free(av);
    return rc;
}

int sw_db_merge(sw_db *db, const char *in, int *added, ms_err *err)
{
    *added = 0;
    struct stat stt;
    if (stat(in, &stt) != 0 || !S_ISREG(stt.st_mode))
        return ms_err_set(err, "cannot read results database %s: %s", in,
                          errno ? strerror(errno) : "not a regular file");
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(in, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ms_err_set(err, "cannot open results database %s: %s", in,
                   h ? sqlite3_errmsg(h) : "out of memory");
        sqlite3_close(h);
        return -1;
    }
    sqlite3_busy_timeout(h, 30000);
    int app = 0, ver = 0, objects = 0;
    int rc = read_identity(h, in, &app, &ver, &objects, err);
    if (rc == 0) rc = identity_ok(in, app, ver, objects, 0, err);
    sqlite3_close(h);
    if (rc != 0) return -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->h, "ATTACH DATABASE ?1 AS src", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "attach");
    sqlite3_bind_text(st, 1, in, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_fail(db, err, "attach");
    rc = exec_sql(db, "BEGIN IMMEDIATE", err);
    if (rc == 0) {
        int before = sqlite3_total_changes(db->h);
        rc = exec_sql(db, "INSERT INTO main.point (" COLUMNS ") SELECT " COLUMNS
                          " FROM src.point WHERE true" UPSERT_TAIL,
                      err);
        *added = sqlite3_total_changes(db->h) - before;
        if (rc == 0) rc = exec_sql(db, "COMMIT", err);
        else exec_sql(db, "ROLLBACK", NULL);
    }
    exec_sql(db, "DETACH DATABASE src", NULL);
    return rc;
}

/* ---- running points ------------------------------------------------------------------- */

typedef struct job {
    pid_t pid;
    int fd[2]; /* stdout, stderr; -1 once at EOF */
    buf out, err;
    double t0;
    int timed_out;
    const sw_point *p;
    char **argv;
} job;

static char **point_argv(const char *bin, const sw_point *p)
{
    int n = 0;
    char **av = calloc((size_t)(2 * p->nflags + 4), sizeof *av);
    if (!av) return NULL;
    av[n++] = (char *)bin;
    av[n++] = p->command;
    for (int i = 0; i < p->nflags; i++) {
        char *f = malloc(strlen(p->flags[i].name) + 3);
        if (!f) {
            for (int k = 2; k < n; k++)
                if (av[k][0] == '-' && av[k][1] == '-') free(av[k]);
            free(av);
            return NULL;
        }
        sprintf(f, "--%s", p->flags[i].name);
        av[n++] = f;
        if (p->flags[i].value) av[n++] = p->flags[i].value;
    }
    av[n++] = "--json";
    av[n] = NULL;
    return av;
}

static void argv_free(char **av, const sw_point *p)
{
    if (!av) return;
    /* the "--name" strings are ours; values and the rest point into p */
    for (int i = 2; av[i]; i++) {
        int ours = 0;
        for (int k = 0; k < p->nflags && !ours; k++) ours = av[i] == p->flags[k].value;
        if (!ours && strcmp(av[i], "--json") != 0) free(av[i]);
    }
    free(av);
}

static int spawn(job *j, const char *bin, ms_err *err)
{
    int po[2], pe[2];
    if (pipe(po) != 0) return ms_err_set(err, "pipe: %s", strerror(errno));
    if (pipe(pe) != 0) {
        close(po[0]), close(po[1]);
        return ms_err_set(err, "pipe: %s", strerror(errno));
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return ms_err_set(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* the point dies with the sweep (kill -9 included): no orphans keep running */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        int dn = open("/dev/null", O_RDONLY);
        if (dn >= 0) dup2(dn, 0), close(dn);
        execv(bin, j->argv);
        dprintf(2, "cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    fcntl(po[0], F_SETFD, FD_CLOEXEC);
    fcntl(pe[0], F_SETFD, FD_CLOEXEC);
    j->pid = pid, j->fd[0] = po[0], j->fd[1] = pe[0];
    j->t0 = now_s();
    return 0;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static int jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : -1;
}

static const char *flag_value(const sw_point *p, const char *name)
{
    for (int i = 0; i < p->nflags; i++)
        if (!strcmp(p->flags[i].name, name)) return p->flags[i].value;
    return NULL;
}

static int flag_int(const sw_point *p, const char *name)
{
    const char *v = flag_value(p, name);
    char *end;
    long x = v ? strtol(v, &end, 10) : -1;
    return v && end != v && !*end && x >= 0 && x < 1000000000 ? (int)x : -1;
}

/* Fills r from the finished job (status st from waitpid). */
static void collect(job *j, int st, sw_result *r)
{
    memset(r, 0, sizeof *r);
    r->wall_s = now_s() - j->t0;
    r->makespan_us = r->throughput_tokens_per_s = r->bound_tokens_per_s = NAN;
    r->ag = r->eg = r->r1 = r->ma = r->r2 = -1;
    r->output = j->out.p, j->out.p = NULL;
    r->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1;
    if (j->timed_out) {
        r->status = SW_TIMEOUT;
        snprintf(r->error, sizeof r->error, "killed after %.1f s (--point-timeout)", r->wall_s);
        return;
    }
    r->status = SW_FAILED;
    if (WIFSIGNALED(st)) {
        char line[900];
        last_line(j->err.p, line, sizeof line);
        snprintf(r->error, sizeof r->error, "killed by signal %d (%s)%s%s", WTERMSIG(st),
                 strsignal(WTERMSIG(st)), *line ? ": " : "", line);
        return;
    }
    if (r->exit_code != 0) {
        last_line(j->err.p, r->error, sizeof r->error);
        if (!r->error[0]) snprintf(r->error, sizeof r->error, "exit status %d", r->exit_code);
        return;
    }
    cJSON *o = r->output ? cJSON_Parse(r->output) : NULL;
    if (!cJSON_IsObject(o)) {
        snprintf(r->error, sizeof r->error, "the command printed no JSON object%s",
                 j->out.cut ? " (output over 16 MiB was cut)" : "");
        cJSON_Delete(o);
        return;
    }
    r->status = SW_OK;
    r->makespan_us = jnum(o, "makespan_us");
    r->throughput_tokens_per_s = jnum(o, "throughput_tokens_per_s");
    r->bound_tokens_per_s = jnum(o, "bound_tokens_per_s");
    r->ag = jint(o, "ag"), r->eg = jint(o, "eg"), r->r1 = jint(o, "r1");
    r->ma = jint(o, "ma"), r->r2 = jint(o, "r2");
    const cJSON *ord = cJSON_GetObjectItemCaseSensitive(o, "order");
    if (cJSON_IsString(ord)) snprintf(r->order, sizeof r->order, "%s", ord->valuestring);
    /* sim does not echo the schedule: it is the point's own flags */
    int *fill[] = {&r->ag, &r->eg, &r->r1, &r->ma, &r->r2};
    static const char *const names[] = {"ag", "eg", "r1", "ma", "r2"};
    for (int i = 0; i < 5; i++)
        if (*fill[i] < 0) *fill[i] = flag_int(j->p, names[i]);
    if (!r->order[0]) {
        const char *v = flag_value(j->p, "order");
        if (v) snprintf(r->order, sizeof r->order, "%s", v);
    }
    buf c = {0};
    for (int i = 0; i < 5; i++)
        if (*fill[i] >= 0) buf_addf(&c, "%s%s=%d", c.n ? " " : "", names[i], *fill[i]);
    if (r->order[0]) buf_addf(&c, "%sorder=%s", c.n ? " " : "", r->order);
    if (c.p) snprintf(r->choice, sizeof r->choice, "%s", c.p);
    free(c.p);
    cJSON_Delete(o);
}

/* Flags of a point that are not axes shown elsewhere, for the progress line. */
static void point_label(const sw_point *p, char *out, size_t len)
{
    int n = snprintf(out, len, "%s %s (%d GPUs) %s", p->model ? p->model : "-",
                     p->topo ? p->topo : "-", p->gpus, p->sched);
    if (p->seq >= 0 && n >= 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, " seq=%d", p->seq);
}

static void fmt_hms(double s, char *out, size_t len)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, len, "%ld:%02ld", t / 60, t % 60);
}

typedef struct progress {
    int bar, total, done, ok, failed, shown;
    double t0, last_draw;
} progress;

static void draw_bar(progress *pg, int running)
{
    double el = now_s() - pg->t0;
    char e[32], eta[32] = "?";
    fmt_hms(el, e, sizeof e);
    if (pg->done > 0) fmt_hms(el / pg->done * (pg->total - pg->done), eta, sizeof eta);
    int w = 30, fill = pg->total ? pg->done * w / pg->total : w;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    printf("\r[%s] %d/%d  ok %d  failed %d  running %d  elapsed %s  ETA %s \033[K", bar,
           pg->done, pg->total, pg->ok, pg->failed, running, e, eta);
    fflush(stdout);
    pg->shown = 1;
    pg->last_draw = now_s();
}

static void report_point(progress *pg, const sw_point *p, const sw_result *r)
{
    char label[512];
    point_label(p, label, sizeof label);
    if (pg->bar) {
        if (r->status == SW_OK) return;
        printf("\r\033[K"); /* failures stay visible above the bar */
    }
    int wd = snprintf(NULL, 0, "%d", pg->total);
    printf("[%*d/%d] %-7s %7.2f s  %s", wd, pg->done, pg->total, sw_status_name(r->status),
           r->wall_s, label);
    if (r->status == SW_OK) {
        if (isfinite(r->throughput_tokens_per_s))
            printf("  %.4g tokens/s", r->throughput_tokens_per_s);
        if (r->choice[0]) printf("  %s", r->choice);
    } else
        printf("  %s", r->error);
    printf("\n");
    fflush(stdout);
}

int sw_run(const sw_spec *s, sw_db *db, const sw_options *o, sw_summary *sum, ms_err *err)
{
    memset(sum, 0, sizeof *sum);
    double t0 = now_s();
    int *todo = malloc(sizeof *todo * (size_t)(s->npoints ? s->npoints : 1));
    job *jobs = calloc((size_t)o->jobs, sizeof *jobs);
    struct pollfd *pfd = calloc((size_t)(2 * o->jobs), sizeof *pfd);
    int *pj = calloc((size_t)(2 * o->jobs), sizeof *pj);
    int ntodo = 0, rc = 0;
    if (!todo || !jobs || !pfd || !pj) {
        rc = ms_err_set(err, "out of memory");
        goto out;
    }
    for (int i = 0; i < s->npoints; i++) {
        const sw_point *p = &s->points[i];
        if (p->index % o->nshards != o->shard) continue;
        sum->in_shard++;
        int have = sw_db_lookup(db, p, err);
        if (have < 0) {
            rc = -1;
            goto out;
        }
        if (have == 1 || (have == 2 && !o->retry_failed)) sum->skipped++;
        else todo[ntodo++] = i;
    }
    progress pg = {o->progress_bar, ntodo, 0, 0, 0, 0, now_s(), 0};
    printf("sweep %s: %d points, %d in shard %d/%d, %d already recorded, %d to run with %d "
           "job%s\n", s->name, s->npoints, sum->in_shard, o->shard, o->nshards, sum->skipped,
           ntodo, o->jobs, o->jobs == 1 ? "" : "s");
    fflush(stdout);
    int next = 0, active = 0;
    for (int k = 0; k < o->jobs; k++) jobs[k].pid = 0;
    while (rc == 0 && (next < ntodo || active > 0)) {
        for (int k = 0; k < o->jobs && next < ntodo; k++) {
            if (jobs[k].pid) continue;
            const sw_point *p = &s->points[todo[next++]];
            /* another sweep on the same database may have finished it meanwhile */
            int have = sw_db_lookup(db, p, err);
            if (have < 0) {
                rc = -1;
                break;
            }
            if (have == 1 || (have == 2 && !o->retry_failed)) {
                sum->skipped++;
                pg.total--;
                continue;
            }
            job *j = &jobs[k];
            memset(j, 0, sizeof *j);
            j->p = p;
            j->argv = point_argv(o->bin, p);
            if (!j->argv) {
                rc = ms_err_set(err, "out of memory");
                break;
            }
            if (spawn(j, o->bin, err) != 0) {
                argv_free(j->argv, p);
                j->argv = NULL;
                rc = -1;
                break;
            }
            active++;
        }
        if (rc != 0 || active == 0) continue;
        int n = 0;
        for (int k = 0; k < o->jobs; k++)
            for (int f = 0; f < 2; f++)
                if (jobs[k].pid && jobs[k].fd[f] >= 0) {
                    pfd[n] = (struct pollfd){jobs[k].fd[f], POLLIN, 0};
                    pj[n++] = k * 2 + f;
                }
        if (n > 0 && poll(pfd, (nfds_t)n, 200) < 0 && errno != EINTR) {
            rc = ms_err_set(err, "poll: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            job *j = &jobs[pj[i] / 2];
            int f = pj[i] % 2;
            char tmp[65536];
            ssize_t got = read(j->fd[f], tmp, sizeof tmp);
            if (got > 0) buf_add(f == 0 ? &j->out : &j->err, tmp, (size_t)got);
            else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(j->fd[f]);
                j->fd[f] = -1;
            }
        }
        double t = now_s();
        for (int k = 0; k < o->jobs; k++) {
            job *j = &jobs[k];
            if (!j->pid) continue;
            if (j->fd[0] >= 0 || j->fd[1] >= 0) {
                if (o->point_timeout_s > 0 && !j->timed_out && t - j->t0 > o->point_timeout_s) {
                    kill(j->pid, SIGKILL);
                    j->timed_out = 1;
                }
                continue;
            }
            int st = 0;
            while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR) {}
            sw_result r;
            collect(j, st, &r);
            pg.done++;
            if (r.status == SW_OK) pg.ok++, sum->ok++;
            else pg.failed++, sum->failed++;
            if (sw_db_record(db, s, j->p, j->argv, &r, err) != 0) rc = -1;
            else report_point(&pg, j->p, &r);
            free(r.output);
            free(j->out.p);
            free(j->err.p);
            argv_free(j->argv, j->p);
            memset(j, 0, sizeof *j);
            active--;
            if (pg.bar) draw_bar(&pg, active);
        }
        if (pg.bar && now_s() - pg.last_draw > 0.5) draw_bar(&pg, active);
    }
    if (pg.shown) printf("\n");
out:
    /* on a database error, stop the points still running */
    for (int k = 0; jobs && k < o->jobs; k++) {
        job *j = &jobs[k];
        if (!j->pid) continue;
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR) {}
        for (int f = 0; f < 2; f++)
            if (j->fd[f] >= 0) close(j->fd[f]);
        free(j->out.p);
        free(j->err.p);
        argv_free(j->argv, j->p);
    }
    sum->wall_s = now_s() - t0;
    free(todo);
    free(jobs);
    free(pfd);
    free(pj);
    return rc;
}

/* Expert routing distributions (uniform, zipf:S, trace:FILE) and their exact integer
 * split of a layer's token-expert assignments by the largest-remainder method. Formats,
 * tie rules and the permutation generator are specified in docs/ROUTING.md. */
#include "core/routing.h"
#include "core/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/paths.h"

/* A*w with A, w < 2^63 needs 126 bits; gcc and clang provide them on 64-bit targets. */
#ifndef __SIZEOF_INT128__
#error "core/routing.c needs unsigned __int128 (gcc or clang on a 64-bit target)"
#endif
__extension__ typedef unsigned __int128 u128;

#define ACCEPTED                                                                           \
    "accepted forms: uniform | zipf:S (skew S >= 0, e.g. zipf:1.2) | trace:FILE (CSV path, " \
    "or a name under traces/routing/)"
#define MAX_SKEW 1000.0
#define WEIGHT_BITS 52               /* zipf weights as integers: rank 0 gets 2^52 */
#define MAX_TRACE_BYTES (64L << 20)  /* traces are small; this bounds memory on bad input */
#define TRACE_DIR "traces/routing"

typedef enum { R_UNIFORM, R_ZIPF, R_TRACE } rkind;

struct routing {
    rkind kind;
    int experts;
    int layers;
    uint64_t seed;  /* zipf: permutation seed */
    uint64_t *w;    /* zipf: weight by rank [experts]; trace: counts [layers][experts] */
    u128 *total;    /* zipf: [1], the sum of w; trace: [layers], each row's sum (> 0) */
    char *spec;     /* as given */
};

/* ---------------------------------------------------------------------------------- */
/* Helpers */

/* splitmix64 (Steele, Lea, Flood 2014): the finalizer and the generator step. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ULL;
    return mix64(*state);
}

/* perm[rank] = expert holding that rank in `layer`: Fisher-Yates over the identity, drawing
 * j in [0, i] as the high 64 bits of x * (i + 1). */
static void layer_perm(uint64_t seed, int layer, int n, int *perm)
{
    uint64_t st = seed ^ mix64((uint64_t)layer + 0x9E3779B97F4A7C15ULL);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(((u128)splitmix64(&st) * (uint64_t)(i + 1)) >> 64);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

typedef struct share {
    u128 rem; /* (A * w) mod total */
    int idx;
} share;

/* Larger remainder first, then lower index. */
static int cmp_share(const void *a, const void *b)
{
    const share *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Largest remainder: entry i gets floor(A * w[i] / total); the A - sum(floors) (< n)
 * assignments left go one each to the entries with the largest remainders, ties to the
 * lower i. Entry i's count lands in out[map ? map[i] : i]. Needs total = sum(w) > 0 and
 * A >= 0; tmp holds n entries. */
static void apportion(const uint64_t *w, int n, u128 total, int64_t A, const int *map,
                      int64_t *out, share *tmp)
{
    int64_t given = 0;
    for (int i = 0; i < n; i++) {
        u128 p = (u128)(uint64_t)A * w[i];
        int64_t q = (int64_t)(p / total); /* <= A since w[i] <= total */
        tmp[i].rem = p % total;
        tmp[i].idx = i;
        out[map ? map[i] : i] = q;
        given += q; /* sum of floors <= A: no overflow */
    }
    int64_t left = A - given;
    if (left <= 0) return;
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_share);
    for (int64_t k = 0; k < left; k++) {
        int i = tmp[k].idx;
        out[map ? map[i] : i] += 1;
    }
}

/* ---------------------------------------------------------------------------------- */
/* zipf:S */

/* S: [+]digits[.digits][e[sign]digits] or .digits..., finite, 0..MAX_SKEW. */
static int parse_skew(const char *s, double *out, char *why, size_t wlen)
{
    int digits;
    const char *p = ms_scan_decimal(s, &digits);
    char safe[64];
    ms_safe_text(safe, sizeof safe, s, strlen(s));
    if (!digits || *p) {
        snprintf(why, wlen, "skew S: expected a number, got '%s'", safe);
        return -1;
    }
    double v = strtod(s, NULL);
    if (!(v >= 0)) {
        snprintf(why, wlen, "skew S must be >= 0, got %s", safe);
        return -1;
    }
    if (!(v <= MAX_SKEW)) {
        snprintf(why, wlen, "skew S must be at most %g, got %s", MAX_SKEW, safe);
        return -1;
    }
    *out = v + 0.0; /* -0 becomes +0 */
    return 0;
}

/* Integer weights by rank: round(2^52 / (rank+1)^S), forced non-increasing. */
static int zipf_init(routing *r, double skew, ms_err *err)
{
    int n = r->experts;
    r->w = malloc((size_t)n * sizeof *r->w);
    r->total = malloc(sizeof *r->total);
    if (!r->w || !r->total) return ms_err_set(err, "routing spec '%s': out of memory", r->spec);
    u128 total = 0;
    for (int i = 0; i < n; i++) {
        double x = ldexp(pow((double)i + 1, -skew), WEIGHT_BITS);
        uint64_t q = (uint64_t)llround(x);
        if (i > 0 && q > r->w[i - 1]) q = r->w[i - 1];
        r->w[i] = q;
        total += q;
    }
    r->total[0] = total; /* >= 2^52: rank 0 always weighs 2^52 */
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* trace:FILE */


/* Parsing state: the file name and current line for messages. */
typedef struct csv {
    const char *file;
    int line;
    ms_err *err;
} csv;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* [s, e) is a decimal real without sign: digits[.digits] or .digits, optional exponent. */
static int is_real(const char *s, const char *e)
{
    int digits = 0;
    while (s < e && isdigit((unsigned char)*s)) s++, digits++;
    if (s < e && *s == '.') {
        s++;
        while (s < e && isdigit((unsigned char)*s)) s++, digits++;
    }
    if (digits && s < e && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < e && (*s == '+' || *s == '-')) s++;
        if (s == e || !isdigit((unsigned char)*s)) return 0;
        while (s < e && isdigit((unsigned char)*s)) s++;
    }
    return digits && s == e;
}

/* Cell [s, e) with blanks trimmed; fills *v with a count in 0..INT64_MAX. `what` names the
 * column in messages ("column 3 (expert 1)"). */
static int parse_count(const csv *c, const char *s, const char *e, const char *what,
                       int64_t *v)
{
    while (s < e && is_blank(*s)) s++;
    while (e > s && is_blank(e[-1])) e--;
    char cell[48];
    ms_safe_text(cell, sizeof cell, s, (size_t)(e - s));
    if (s == e)
        return ms_err_set(c->err, "%s:%d: %s is empty (expected a non-negative integer count)",
                          c->file, c->line, what);
    if (*s == '-' && is_real(s + 1, e))
        return ms_err_set(c->err, "%s:%d: %s: negative count %s (counts are >= 0)", c->file,
                          c->line, what, cell);
    const char *p = s;
    while (p < e && isdigit((unsigned char)*p)) p++;
    if (p < e) {
        if (is_real(s, e))
            return ms_err_set(c->err, "%s:%d: %s: '%s' is not an integer (counts are whole "
                                      "token-expert assignments)",
                              c->file, c->line, what, cell);
        return ms_err_set(c->err, "%s:%d: %s: expected a non-negative integer count (digits "
                                  "only), got '%s'",
                          c->file, c->line, what, cell);
    }
    uint64_t x = 0;
    for (p = s; p < e; p++) {
        unsigned dgt = (unsigned)(*p - '0');
        if (x > ((uint64_t)INT64_MAX - dgt) / 10)
            return ms_err_set(c->err, "%s:%d: %s: %s is too large (at most %lld)", c->file,
                              c->line, what, cell, (long long)INT64_MAX);
        x = x * 10 + dgt;
    }
    *v = (int64_t)x;
    return 0;
}

static void column_name(char *buf, size_t len, int col, int layer_col)
{
    if (layer_col && col == 0)
        snprintf(buf, len, "column 1 (layer)");
    else
        snprintf(buf, len, "column %d (expert %d)", col + 1, col - layer_col);
}

static int count_columns(const char *s, const char *e)
{
    int n = 1;
    for (; s < e; s++) n += *s == ',';
    return n;
}

static int columns_error(const csv *c, const char *what, int got, int experts, int layer_col)
{
    if (layer_col)
        return ms_err_set(c->err, "%s:%d: %s has %d columns, expected %d (layer + %d experts)",
                          c->file, c->line, what, got, experts + 1, experts);
    return ms_err_set(c->err, "%s:%d: %s has %d columns, expected %d (one per expert)",
                      c->file, c->line, what, got, experts);
}

/* Parses the CSV text (NUL-terminated at buf[len]) into r->w / r->total. */
static int parse_trace(routing *r, const char *buf, size_t len, const char *file, ms_err *err)
{
    csv c = {file, 0, err};
    const int n = r->experts;
    if (len == 0)
        return ms_err_set(err, "%s: empty file (expected a row of %d expert counts for each of "
                               "%d MoE layers)", file, n, r->layers);
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        c.line = 1;
        for (const char *q = buf; q < nul; q++) c.line += *q == '\n';
        return ms_err_set(err, "%s:%d: NUL byte (not a text file)", file, c.line);
    }

    int rows = 0, cap = 0, layer_col = 0, seen_content = 0;
    int64_t prev_label = -1;
    int64_t *row = malloc((size_t)n * sizeof *row);
    if (!row) return ms_err_set(err, "%s: out of memory", file);
    const char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) p += 3; /* UTF-8 byte order mark */
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *ls = p;
        p = eol ? eol + 1 : end;
        c.line++;
        if (le > ls && le[-1] == '\r') le--;
        const char *t = ls;
        while (t < le && is_blank(*t)) t++;
        if (t == le || *t == '#') continue; /* blank line or comment */

        int cols = count_columns(ls, le);
        if (!seen_content++ && isalpha((unsigned char)*t)) {
            /* header: optional first column "layer", then one name per expert */
            const char *c0 = t, *c0e = memchr(t, ',', (size_t)(le - t));
            if (!c0e) c0e = le;
            while (c0e > c0 && is_blank(c0e[-1])) c0e--;
            layer_col = c0e - c0 == 5 && memcmp(c0, "layer", 5) == 0;
            if (cols != n + layer_col) {
                free(row);
                return columns_error(&c, "header", cols, n, layer_col);
            }
            continue;
        }
        if (cols != n + layer_col) {
            free(row);
            return columns_error(&c, "row", cols, n, layer_col);
        }
        u128 sum = 0;
        const char *cs = ls;
        for (int col = 0; col < cols; col++) {
            const char *ce = memchr(cs, ',', (size_t)(le - cs));
            if (!ce) ce = le;
            char what[48];
            column_name(what, sizeof what, col, layer_col);
            int64_t v = 0;
            if (parse_count(&c, cs, ce, what, &v)) {
                free(row);
                return -1;
            }
            if (layer_col && col == 0) {
                if (v <= prev_label) {
                    free(row);
                    return ms_err_set(err, "%s:%d: layer %lld does not follow layer %lld (rows "
                                           "must be in increasing layer order)",
                                      file, c.line, (long long)v, (long long)prev_label);
                }
                prev_label = v;
            } else {
                row[col - layer_col] = v;
                sum += (uint64_t)v;
            }
            cs = ce + 1;
        }
        if (sum == 0) {
            free(row);
            return ms_err_set(err, "%s:%d: all %d counts are zero (layer %d needs at least one "
                                   "assignment to scale from)", file, c.line, n, rows);
        }
        if (rows < r->layers) {
            if (rows == cap) { /* grow by doubling, never past `layers` rows */
                int ncap = cap ? cap * 2 : 8;
                if (ncap > r->layers) ncap = r->layers;
                uint64_t *w = realloc(r->w, (size_t)ncap * (size_t)n * sizeof *w);
                u128 *tot = realloc(r->total, (size_t)ncap * sizeof *tot);
                if (w) r->w = w;
                if (tot) r->total = tot;
                if (!w || !tot) {
                    free(row);
                    return ms_err_set(err, "%s: out of memory", file);
                }
                cap = ncap;
            }
            uint64_t *dst = r->w + (size_t)rows * (size_t)n;
            for (int e = 0; e < n; e++) dst[e] = (uint64_t)row[e];
            r->total[rows] = sum;
        }
        rows++;
    }
    free(row);
    if (rows < r->layers)
        return ms_err_set(err, "%s:%d: the trace ends after %d layer row%s; %d needed (one per "
                               "MoE layer)", file, c.line, rows, rows == 1 ? "" : "s",
                          r->layers);
    return 0;
}

static int trace_init(routing *r, const char *name, ms_err *err)
{
    char path[4096];
    int by_name = strchr(name, '/') == NULL;
    if (!by_name) {
        if (strlen(name) >= sizeof path)
            return ms_err_set(err, "routing trace path is too long (%zu bytes)", strlen(name));
        snprintf(path, sizeof path, "%s", name);
    } else if (ms_data_path(path, sizeof path, TRACE_DIR, name,
                            ms_ends_with(name, ".csv") ? "" : ".csv")) {
        return ms_err_set(err, "routing trace name '%.100s' is too long", name);
    }
    size_t len = 0;
    int missing = 0;
    char *buf = ms_read_file(path, "routing trace", MAX_TRACE_BYTES, &len, &missing, err);
    if (!buf) {
        if (by_name && missing) {
            char dir[4096], names[700], safe[128];
            snprintf(dir, sizeof dir, "%s/%s", ms_data_dir(), TRACE_DIR);
            ms_list_names(dir, ".csv", names, sizeof names);
            ms_safe_text(safe, sizeof safe, name, strlen(name));
            return ms_err_set(err, "unknown routing trace '%s' (no %s); available: %s", safe,
                              path, names);
        }
        return -1;
    }
    int rc = parse_trace(r, buf, len, path, err);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Public API */

routing *routing_create(const char *spec, int experts, int layers, uint64_t seed, ms_err *err)
{
    if (!spec || !*spec) {
        ms_err_set(err, "empty routing spec; " ACCEPTED);
        return NULL;
    }
    char safe[160], why[256];
    ms_safe_text(safe, sizeof safe, spec, strlen(spec));
    if (experts < 1 || experts > ROUTING_MAX_EXPERTS) {
        ms_err_set(err, "routing spec '%s': experts must be 1 to %d, got %d", safe,
                   ROUTING_MAX_EXPERTS, experts);
        return NULL;
    }
    if (layers < 1 || layers > ROUTING_MAX_LAYERS) {
        ms_err_set(err, "routing spec '%s': layers must be 1 to %d, got %d", safe,
                   ROUTING_MAX_LAYERS, layers);
        return NULL;
    }

    routing *r = calloc(1, sizeof *r);
    if (r) r->spec = strdup(spec);
    if (!r || !r->spec) {
        free(r);
        ms_err_set(err, "routing spec '%s': out of memory", safe);
        return NULL;
    }
    r->experts = experts;
    r->layers = layers;
    r->seed = seed;

    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
    int rc = 0;
    if (klen == 7 && memcmp(spec, "uniform", 7) == 0) {
        r->kind = R_UNIFORM;
        if (arg) rc = ms_err_set(err, "routing spec '%s': uniform takes no parameter; " ACCEPTED,
                                 safe);
    } else if (klen == 4 && memcmp(spec, "zipf", 4) == 0) {
        double skew = 0;
        if (!arg || !*arg)
            rc = ms_err_set(err, "routing spec '%s': missing skew S after 'zipf:'; " ACCEPTED,
                            safe);
        else if (parse_skew(arg, &skew, why, sizeof why))
            rc = ms_err_set(err, "routing spec '%s': %s; " ACCEPTED, safe, why);
        else if (skew == 0)
            r->kind = R_UNIFORM; /* every weight equal: exactly uniform, no permutation */
        else {
            r->kind = R_ZIPF;
            rc = zipf_init(r, skew, err);
        }
    } else if (klen == 5 && memcmp(spec, "trace", 5) == 0) {
        r->kind = R_TRACE;
        if (!arg || !*arg)
            rc = ms_err_set(err, "routing spec '%s': missing FILE after 'trace:'; " ACCEPTED,
                            safe);
        else
            rc = trace_init(r, arg, err);
    } else {
        rc = ms_err_set(err, "routing spec '%s': unknown distribution '%.*s'; " ACCEPTED, safe,
                        (int)(klen > 40 ? 40 : klen), safe);
    }
    if (rc) {
        routing_free(r);
        return NULL;
    }
    return r;
}

void routing_free(routing *r)
{
    if (!r) return;
    free(r->w);
    free(r->total);
    free(r->spec);
    free(r);
}

const char *routing_spec(const routing *r) { return r ? r->spec : NULL; }

int routing_counts(const routing *r, int layer, int64_t assignments, int64_t *counts,
                   ms_err *err)
{
    if (!r) return ms_err_set(err, "routing: NULL");
    if (!counts) return ms_err_set(err, "routing '%.200s': no counts array", r->spec);
    if (layer < 0 || layer >= r->layers)
        return ms_err_set(err, "routing '%.200s': layer %d is out of range (0 to %d)", r->spec,
                          layer, r->layers - 1);
    if (assignments < 0)
        return ms_err_set(err, "routing '%.200s': assignments must be >= 0, got %lld", r->spec,
                          (long long)assignments);
    const int n = r->experts;
    if (r->kind == R_UNIFORM) {
        int64_t base = assignments / n, extra = assignments % n;
        for (int e = 0; e < n; e++) counts[e] = base + (e < extra);
        return 0;
    }
    int zipf = r->kind == R_ZIPF;
    share *tmp = malloc((size_t)n * (sizeof *tmp + (zipf ? sizeof(int) : 0)));
    if (!tmp) return ms_err_set(err, "routing '%.200s': out of memory", r->spec);
    if (zipf) {
        int *perm = (int *)(tmp + n);
        layer_perm(r->seed, layer, n, perm);
        apportion(r->w, n, r->total[0], assignments, perm, counts, tmp);
    } else {
        apportion(r->w + (size_t)layer * (size_t)n, n, r->total[layer], assignments, NULL,
                  counts, tmp);
    }
    free(tmp);
    return 0;
}

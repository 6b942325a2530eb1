/* Cluster topologies: strict YAML loader (libyaml event API), generated specs with
 * per-device presets, range checks and a YAML-compatible printer. Units inside the
 * struct are bytes/s and seconds; files and specs use GB/s (1e9 bytes) and µs. */
#include "core/topo.h"
#include "core/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/paths.h"

/* Limits (docs/TOPOLOGY.md). */
#define MAX_RANKS (1L << 20)     /* nodes * gpus_per_node */
#define MAX_NICS 1024L           /* NICs per node */
#define MAX_BW_GBPS 1e9          /* per direction, GB/s (1e18 bytes/s) */
#define MAX_LAT_US 1e7           /* 10 s */
#define MAX_FILE_BYTES (1L << 20) /* topology files are small */

/* Unit conversions, used the same way by the parser and the printer so that printing a
 * topology and parsing the output reproduces the same doubles. */
static double gbps_to_bps(double gbps) { return gbps * 1e9; }
static double us_to_s(double us) { return us / 1e6; }

/* ---------------------------------------------------------------------------------- */
/* Scalar value checks shared by the YAML parser and the generated-spec parser. Each
 * returns 0, or -1 with a reason (no location; the caller adds it) in why. */

/* Decimal integer: optional sign, digits, no leading zeros (octal ambiguity in YAML). */
static int parse_int(const char *s, long lo, long hi, long *out, char *why, size_t wlen)
{
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) {
        snprintf(why, wlen, "expected an integer, got '%.40s'", s);
        return -1;
    }
    const char *d = p;
    while (isdigit((unsigned char)*p)) p++;
    if (*p == '.' || *p == 'e' || *p == 'E') {
        snprintf(why, wlen, "expected an integer, got '%.40s'", s);
        return -1;
    }
    if (*p) {
        snprintf(why, wlen, "'%.40s' is not a number (trailing characters)", s);
        return -1;
    }
    if (*d == '0' && p - d > 1) {
        snprintf(why, wlen, "'%.40s': leading zeros are not allowed", s);
        return -1;
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < lo || v > hi) {
        snprintf(why, wlen, "%.40s is out of range (%ld to %ld)", s, lo, hi);
        return -1;
    }
    *out = (long)v;
    return 0;
}

/* Decimal real: [sign] digits [. digits] [e [sign] digits], finite, lo..hi (lo excluded
 * when lo_open). Hex floats, inf and nan are rejected. */
static int parse_real(const char *s, double lo, int lo_open, double hi, double *out, char *why,
                      size_t wlen)
{
    int digits;
    const char *p = ms_scan_decimal(s, &digits);
    if (!digits) {
        snprintf(why, wlen, "expected a number, got '%.40s'", s);
        return -1;
    }
    if (*p) {
        snprintf(why, wlen, "'%.40s' is not a number (trailing characters)", s);
        return -1;
    }
    double v = strtod(s, NULL);
    if (!isfinite(v)) {
        snprintf(why, wlen, "%.40s is not a finite number", s);
        return -1;
    }
    if (lo_open ? !(v > lo) : !(v >= lo)) {
        snprintf(why, wlen, "must be %s %g, got %.40s", lo_open ? ">" : ">=", lo, s);
        return -1;
    }
    if (!(v <= hi)) {
        snprintf(why, wlen, "%.40s is out of range (at most %g)", s, hi);
        return -1;
    }
    *out = v + 0.0; /* -0 becomes +0 */
    return 0;
}

static int parse_bw(const char *s, double *out, char *why, size_t wlen)
{
    return parse_real(s, 0, 1, MAX_BW_GBPS, out, why, wlen);
}

static int parse_lat(const char *s, double *out, char *why, size_t wlen)
{
    return parse_real(s, 0, 0, MAX_LAT_US, out, why, wlen);
}

/* Topology names: 1..127 printable ASCII characters. */
static int check_name(const char *s, size_t n, char *why, size_t wlen)
{
    if (n == 0 || n >= sizeof(((topo *)0)->name)) {
        snprintf(why, wlen, "must be 1 to %zu characters",
                 sizeof(((topo *)0)->name) - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e) {
            snprintf(why, wlen, "may only hold printable ASCII characters");
            return -1;
        }
    return 0;
}

/* Device names: 1..63 of [a-z0-9_.-] (cost-DB keys). */
static int check_device(const char *s, size_t n, char *why, size_t wlen)
{
    if (n == 0 || n >= sizeof(((topo *)0)->device)) {
        snprintf(why, wlen, "must be 1 to %zu characters",
                 sizeof(((topo *)0)->device) - 1);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-')) {
            snprintf(why, wlen, "'%.*s' may only hold [a-z0-9_.-] (cost-DB device names)",
                     (int)(n > 63 ? 63 : n), s);
            return -1;
        }
    }
    return 0;
}

/* Edit distance between a (length n) and b, capped at 3 (enough for "did you mean"). */
static int edit_distance(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    if (n > 64 || m > 64) return 3;
    int row[65];
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m] < 3 ? row[m] : 3;
}

/* ---------------------------------------------------------------------------------- */
/* topo_check */

static int link_ok(const topo_link *l)
{
    return l->bw_bytes_per_s > 0 && l->bw_bytes_per_s <= gbps_to_bps(MAX_BW_GBPS) &&
           l->latency_s >= 0 && l->latency_s <= us_to_s(MAX_LAT_US);
}

int topo_check(const topo *t, ms_err *err)
{
    char why[256];
    if (!t) return ms_err_set(err, "topology: NULL");
    const char *nm = memchr(t->name, '\0', sizeof t->name) ? t->name : "?";
    size_t nlen = strnlen(t->name, sizeof t->name);
    if (nlen == sizeof t->name || check_name(t->name, nlen, why, sizeof why))
        return ms_err_set(err, "topology: bad name: name must be 1 to %zu printable ASCII "
                               "characters", sizeof t->name - 1);
    size_t dlen = strnlen(t->device, sizeof t->device);
    if (dlen == sizeof t->device || check_device(t->device, dlen, why, sizeof why))
        return ms_err_set(err, "topology '%s': bad device: device must be 1 to %zu of "
                               "[a-z0-9_.-]", nm, sizeof t->device - 1);
    if (t->nodes < 1 || t->nodes > MAX_RANKS)
        return ms_err_set(err, "topology '%s': nodes must be 1 to %ld, got %d", nm, MAX_RANKS,
                          t->nodes);
    if (t->gpus_per_node < 1 || t->gpus_per_node > MAX_RANKS)
        return ms_err_set(err, "topology '%s': gpus_per_node must be 1 to %ld, got %d", nm,
                          MAX_RANKS, t->gpus_per_node);
    long long ranks = (long long)t->nodes * t->gpus_per_node;
    if (ranks > MAX_RANKS)
        return ms_err_set(err, "topology '%s': nodes x gpus_per_node = %lld ranks exceeds the "
                               "limit of %ld", nm, ranks, MAX_RANKS);
    if (!link_ok(&t->intra))
        return ms_err_set(err, "topology '%s': intra_node link needs bandwidth in (0, %g] GB/s "
                               "and latency in [0, %g] us, got %g GB/s, %g us", nm, MAX_BW_GBPS,
                          MAX_LAT_US, t->intra.bw_bytes_per_s / 1e9, t->intra.latency_s * 1e6);
    if (t->nics_per_node < 0 || t->nics_per_node > MAX_NICS)
        return ms_err_set(err, "topology '%s': nics_per_node must be 0 to %ld, got %d", nm,
                          MAX_NICS, t->nics_per_node);
    if (t->nics_per_node == 0) {
        /* Only a single node may do without NICs (it never talks across nodes). */
        if (t->nodes > 1)
            return ms_err_set(err, "topology '%s': %d nodes need inter-node NICs "
                                   "(nics_per_node >= 1)", nm, t->nodes);
        return 0;
    }
    if (!link_ok(&t->nic))
        return ms_err_set(err, "topology '%s': inter_node link needs bandwidth in (0, %g] GB/s "
                               "and latency in [0, %g] us, got %g GB/s, %g us", nm, MAX_BW_GBPS,
                          MAX_LAT_US, t->nic.bw_bytes_per_s / 1e9, t->nic.latency_s * 1e6);
    return 0;
}

double topo_gpu_nic_bw(const topo *t)
{
    if (!t || t->gpus_per_node <= 0 || t->nics_per_node <= 0) return 0;
    return t->nic.bw_bytes_per_s * t->nics_per_node / t->gpus_per_node;
}

/* ---------------------------------------------------------------------------------- */
/* YAML parsing */

typedef enum { V_NAME, V_DEVICE, V_COUNT, V_BW, V_LAT, V_MAP } vkind;

typedef struct keydef {
    const char *key;
    vkind kind;
    int required; /* always required (inter_node's conditional need is checked later) */
    long max;     /* V_COUNT upper bound */
    int child;    /* V_MAP: section index */
} keydef;

typedef struct slot {
    int line; /* 1-based line of the key; 0 = absent */
    long i;
    double r;
    char s[128];
} slot;

enum { SEC_TOP, SEC_INTRA, SEC_INTER, NSEC };
enum { T_NAME, T_DEVICE, T_NODES, T_GPUS, T_RANKS, T_INTRA, T_INTER, NT };
enum { I_BW, I_LAT, NI };
enum { N_NICS, N_BW, N_LAT, N_SHARE, NN };

static const keydef top_keys[NT] = {
    [T_NAME] = {"name", V_NAME, 0, 0, 0},
    [T_DEVICE] = {"device", V_DEVICE, 1, 0, 0},
    [T_NODES] = {"nodes", V_COUNT, 1, MAX_RANKS, 0},
    [T_GPUS] = {"gpus_per_node", V_COUNT, 1, MAX_RANKS, 0},
    [T_RANKS] = {"ranks", V_COUNT, 0, MAX_RANKS, 0},
    [T_INTRA] = {"intra_node", V_MAP, 1, 0, SEC_INTRA},
    [T_INTER] = {"inter_node", V_MAP, 0, 0, SEC_INTER},
};
static const keydef intra_keys[NI] = {
    [I_BW] = {"bandwidth_GBps", V_BW, 1, 0, 0},
    [I_LAT] = {"latency_us", V_LAT, 1, 0, 0},
};
static const keydef inter_keys[NN] = {
    [N_NICS] = {"nics_per_node", V_COUNT, 1, MAX_NICS, 0},
    [N_BW] = {"bandwidth_GBps", V_BW, 1, 0, 0},
    [N_LAT] = {"latency_us", V_LAT, 1, 0, 0},
    [N_SHARE] = {"gpu_share_GBps", V_BW, 0, 0, 0},
};

typedef struct section {
    const char *name; /* for messages: "top level", "intra_node", ... */
    const keydef *defs;
    int n;
    slot *slots;
    int line; /* line where the mapping starts; 0 = absent */
} section;

typedef struct yreader {
    yaml_parser_t parser;
    yaml_event_t ev;
    int have_ev;
    const char *file;
    ms_err *err;
    section sec[NSEC];
    slot top[NT], intra[NI], inter[NN];
} yreader;

static int ev_line(const yreader *y) { return (int)y->ev.start_mark.line + 1; }

/* Pulls the next event, releasing the previous one. */
static int next_event(yreader *y)
{
    if (y->have_ev) {
        yaml_event_delete(&y->ev);
        y->have_ev = 0;
    }
    if (!yaml_parser_parse(&y->parser, &y->ev)) {
        const yaml_parser_t *p = &y->parser;
        int line = (int)p->problem_mark.line + 1;
        if (p->context)
            return ms_err_set(y->err, "%s:%d: YAML error: %s %s", y->file, line,
                              p->problem ? p->problem : "?", p->context);
        return ms_err_set(y->err, "%s:%d: YAML error: %s", y->file, line,
                          p->problem ? p->problem : "malformed input");
    }
    y->have_ev = 1;
    if (y->ev.type == YAML_ALIAS_EVENT)
        return ms_err_set(y->err, "%s:%d: aliases (*name) are not supported in topology files",
                          y->file, ev_line(y));
    return 0;
}

static const char *shape_of(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SCALAR_EVENT: return "a scalar";
    default: return "something else";
    }
}

/* Scalar text of the current event; NUL-terminated by libyaml, length in *n. */
static const char *scalar(const yreader *y, size_t *n)
{
    *n = y->ev.data.scalar.length;
    return (const char *)y->ev.data.scalar.value;
}

static int parse_section(yreader *y, int si);

/* The current event is the value for key d of section si. */
static int parse_value(yreader *y, int si, const keydef *d, slot *sl)
{
    const section *s = &y->sec[si];
    char key[96], why[256];
    if (si == SEC_TOP)
        snprintf(key, sizeof key, "%s", d->key);
    else
        snprintf(key, sizeof key, "%s.%s", s->name, d->key);
    int line = ev_line(y);

    if (d->kind == V_MAP) {
        if (y->ev.type != YAML_MAPPING_START_EVENT)
            return ms_err_set(y->err, "%s:%d: %s must be a mapping of keys, got %s", y->file,
                              line, key, shape_of(&y->ev));
        y->sec[d->child].line = sl->line; /* the key's line, for "missing key" messages */
        return parse_section(y, d->child);
    }
    if (y->ev.type != YAML_SCALAR_EVENT)
        return ms_err_set(y->err, "%s:%d: %s: expected %s, got %s", y->file, line, key,
                          (d->kind == V_NAME || d->kind == V_DEVICE) ? "a string" : "a number",
                          shape_of(&y->ev));
    if (y->ev.data.scalar.tag)
        return ms_err_set(y->err, "%s:%d: %s: explicit tags are not supported", y->file, line,
                          key);
    size_t n;
    const char *v = scalar(y, &n);
    int plain = y->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (plain && n == 0)
        return ms_err_set(y->err, "%s:%d: %s: missing value", y->file, line, key);

    int rc = 0;
    switch (d->kind) {
    case V_NAME:
        rc = check_name(v, n, why, sizeof why);
        if (!rc) memcpy(sl->s, v, n + 1);
        break;
    case V_DEVICE:
        rc = check_device(v, n, why, sizeof why);
        if (!rc) memcpy(sl->s, v, n + 1);
        break;
    default:
        if (!plain)
            return ms_err_set(y->err, "%s:%d: %s: expected a number, got a quoted string",
                              y->file, line, key);
        if (d->kind == V_COUNT)
            rc = parse_int(v, 1, d->max, &sl->i, why, sizeof why);
        else if (d->kind == V_BW)
            rc = parse_bw(v, &sl->r, why, sizeof why);
        else
            rc = parse_lat(v, &sl->r, why, sizeof why);
        break;
    }
    if (rc) return ms_err_set(y->err, "%s:%d: %s: %s", y->file, line, key, why);
    return 0;
}

/* Current event: MAPPING_START of section si. Consumes through its MAPPING_END. */
static int parse_section(yreader *y, int si)
{
    section *s = &y->sec[si];
    for (;;) {
        if (next_event(y)) return -1;
        if (y->ev.type == YAML_MAPPING_END_EVENT) break;
        int line = ev_line(y);
        if (y->ev.type != YAML_SCALAR_EVENT)
            return ms_err_set(y->err, "%s:%d: keys must be plain strings, got %s%s%s", y->file,
                              line, shape_of(&y->ev), si == SEC_TOP ? "" : " in ",
                              si == SEC_TOP ? "" : s->name);
        size_t n;
        const char *k = scalar(y, &n);
        int found = -1;
        for (int i = 0; i < s->n; i++)
            if (strlen(s->defs[i].key) == n && memcmp(s->defs[i].key, k, n) == 0) found = i;
        if (found < 0) {
            char safe[80], hint[96] = "";
            ms_safe_text(safe, sizeof safe, k, n);
            int best = 3;
            for (int i = 0; i < s->n; i++) {
                int dist = edit_distance(k, n, s->defs[i].key);
                if (dist < best) {
                    best = dist;
                    snprintf(hint, sizeof hint, " (did you mean '%s'?)", s->defs[i].key);
                }
            }
            return ms_err_set(y->err, "%s:%d: unknown key '%s'%s%s%s", y->file, line, safe,
                              si == SEC_TOP ? "" : " in ", si == SEC_TOP ? "" : s->name, hint);
        }
        slot *sl = &s->slots[found];
        if (sl->line)
            return ms_err_set(y->err, "%s:%d: duplicate key '%s'%s%s (first at line %d)",
                              y->file, line, s->defs[found].key, si == SEC_TOP ? "" : " in ",
                              si == SEC_TOP ? "" : s->name, sl->line);
        sl->line = line;
        if (next_event(y)) return -1;
        if (parse_value(y, si, &s->defs[found], sl)) return -1;
    }
    for (int i = 0; i < s->n; i++)
        if (s->defs[i].required && !s->slots[i].line)
            return ms_err_set(y->err, "%s:%d: missing required key '%s'%s%s", y->file, s->line,
                              s->defs[i].key, si == SEC_TOP ? "" : " in ",
                              si == SEC_TOP ? "" : s->name);
    return 0;
}

/* Default name: the file stem of `file` (directories and .yaml/.yml removed). */
static void file_stem(const char *file, char *buf, size_t len)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    size_t n = strlen(b);
    if (n >= 5 && strcmp(b + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n >= 4 && strcmp(b + n - 4, ".yml") == 0)
        n -= 4;
    if (n >= len) n = len - 1; /* still too long for a name: check_name says so */
    memcpy(buf, b, n);
    buf[n] = '\0';
}

/* Builds *out from the filled slots, with cross-key checks. */
static int assemble(yreader *y, topo *out)
{
    const char *f = y->file;
    topo t;
    memset(&t, 0, sizeof t);
    char why[256];
    if (y->top[T_NAME].line) {
        memcpy(t.name, y->top[T_NAME].s, sizeof t.name);
    } else {
        char stem[256];
        file_stem(f, stem, sizeof stem);
        if (check_name(stem, strlen(stem), why, sizeof why))
            return ms_err_set(y->err, "%s:1: no 'name' key, and the file name is not usable as "
                                      "a name (%s); add a name: key", f, why);
        memcpy(t.name, stem, strlen(stem) + 1);
    }
    memcpy(t.device, y->top[T_DEVICE].s, sizeof t.device);
    t.nodes = (int)y->top[T_NODES].i;
    t.gpus_per_node = (int)y->top[T_GPUS].i;
    long long ranks = (long long)t.nodes * t.gpus_per_node;
    if (ranks > MAX_RANKS)
        return ms_err_set(y->err, "%s:%d: nodes x gpus_per_node = %d x %d = %lld ranks exceeds "
                                  "the limit of %ld", f, y->top[T_NODES].line, t.nodes,
                          t.gpus_per_node, ranks, MAX_RANKS);
    if (y->top[T_RANKS].line && y->top[T_RANKS].i != ranks)
        return ms_err_set(y->err, "%s:%d: ranks: %ld does not match nodes x gpus_per_node = "
                                  "%lld", f, y->top[T_RANKS].line, y->top[T_RANKS].i, ranks);
    t.intra.bw_bytes_per_s = gbps_to_bps(y->intra[I_BW].r);
    t.intra.latency_s = us_to_s(y->intra[I_LAT].r);
    if (y->top[T_INTER].line) {
        t.nics_per_node = (int)y->inter[N_NICS].i;
        t.nic.bw_bytes_per_s = gbps_to_bps(y->inter[N_BW].r);
        t.nic.latency_s = us_to_s(y->inter[N_LAT].r);
        if (y->inter[N_SHARE].line) {
            double want = topo_gpu_nic_bw(&t) / 1e9, got = y->inter[N_SHARE].r;
            if (fabs(got - want) > 1e-9 * want)
                return ms_err_set(y->err, "%s:%d: inter_node.gpu_share_GBps: %.17g does not "
                                          "match nics_per_node x bandwidth_GBps / gpus_per_node "
                                          "= %.17g", f, y->inter[N_SHARE].line, got, want);
        }
    } else if (t.nodes > 1) {
        return ms_err_set(y->err, "%s:%d: missing required key 'inter_node' (needed when "
                                  "nodes > 1)", f, y->top[T_NODES].line);
    }
    if (topo_check(&t, y->err)) return ms_err_prefix(y->err, "%s", f);
    *out = t;
    return 0;
}

int topo_parse_buffer(const char *buf, size_t len, const char *name, topo *out, ms_err *err)
{
    const char *f = name ? name : "<buffer>";
    if (!buf || !out) return ms_err_set(err, "%s: no input", f);
    if (len > (size_t)MAX_FILE_BYTES)
        return ms_err_set(err, "%s: topology text is larger than %ld bytes", f, MAX_FILE_BYTES);

    yreader *y = calloc(1, sizeof *y);
    if (!y) return ms_err_set(err, "%s: out of memory", f);
    if (!yaml_parser_initialize(&y->parser)) {
        free(y);
        return ms_err_set(err, "%s: cannot initialise the YAML parser", f);
    }
    yaml_parser_set_input_string(&y->parser, (const unsigned char *)buf, len);
    y->file = f;
    y->err = err;
    y->sec[SEC_TOP] = (section){"top level", top_keys, NT, y->top, 0};
    y->sec[SEC_INTRA] = (section){"intra_node", intra_keys, NI, y->intra, 0};
    y->sec[SEC_INTER] = (section){"inter_node", inter_keys, NN, y->inter, 0};

    int rc = -1;
    if (next_event(y)) goto done; /* STREAM_START */
    if (next_event(y)) goto done;
    if (y->ev.type == YAML_STREAM_END_EVENT) {
        ms_err_set(err, "%s:%d: empty topology (no YAML document)", f, ev_line(y));
        goto done;
    }
    if (next_event(y)) goto done; /* DOCUMENT_START consumed; now the root node */
    if (y->ev.type != YAML_MAPPING_START_EVENT) {
        size_t n = 0;
        if (y->ev.type == YAML_SCALAR_EVENT && (scalar(y, &n), n == 0) &&
            y->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            ms_err_set(err, "%s:%d: empty topology document", f, ev_line(y));
        else
            ms_err_set(err, "%s:%d: a topology must be a mapping of keys, got %s", f,
                       ev_line(y), shape_of(&y->ev));
        goto done;
    }
    y->sec[SEC_TOP].line = ev_line(y);
    if (parse_section(y, SEC_TOP)) goto done;
    if (next_event(y)) goto done; /* DOCUMENT_END */
    if (next_event(y)) goto done;
    if (y->ev.type != YAML_STREAM_END_EVENT) {
        ms_err_set(err, "%s:%d: more than one YAML document; a topology file holds one", f,
                   ev_line(y));
        goto done;
    }
    rc = assemble(y, out);
done:
    if (y->have_ev) yaml_event_delete(&y->ev);
    yaml_parser_delete(&y->parser);
    free(y);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Generated topologies: presets per device (sources in docs/TOPOLOGY.md). */

typedef struct preset {
    const char *device;
    int gpus;
    double intra_GBps, intra_us;
    int nics;
    double nic_GBps, nic_us;
} preset;

static const preset presets[] = {
    /* NVSwitch NVLink4 450 GB/s; 8 x 400 Gb/s NDR */
    {"h100", 8, 450, 3, 8, 50, 5},
    {"h200", 8, 450, 3, 8, 50, 5},
    /* NVLink 450 GB/s; NICs assumed as on HGX H100 (FinDEP testbed D does not say) */
    {"h20", 8, 450, 3, 8, 50, 5},
    /* NVLink3 300 GB/s; 8 x 200 Gb/s HDR */
    {"a100", 8, 300, 3, 8, 25, 5},
    /* PCIe 4.0 x16 ~25 GB/s any-to-any; 1 x 200 Gb/s HDR per node (assumption) */
    {"a6000", 8, 25, 5, 1, 25, 10},
    {"a10", 8, 25, 5, 1, 25, 10},
    {"l40s", 8, 25, 5, 1, 25, 10},
    /* host executor: 1 rank per "node" process; shared memory and TCP (rough guesses) */
    {"host-cpu", 1, 10, 1, 1, 10, 20},
};
#define NPRESETS (sizeof presets / sizeof presets[0])

static void known_devices(char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < NPRESETS; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", presets[i].device);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
    }
}

int topo_generate(const char *spec, topo *out, ms_err *err)
{
    if (!spec || !out) return ms_err_set(err, "topology spec: none given");
    char safe[160];
    size_t slen = strlen(spec);
    ms_safe_text(safe, sizeof safe, spec, slen);
    const char *colon = strchr(spec, ':');
    if (!colon)
        return ms_err_set(err, "topology spec '%s': expected DEVICE:nodes=N[,key=value...]",
                          safe);
    char why[256];
    if (check_name(spec, slen, why, sizeof why))
        return ms_err_set(err, "topology spec '%s': a spec is also the topology's name: %s",
                          safe, why);

    size_t dlen = (size_t)(colon - spec);
    const preset *p = NULL;
    for (size_t i = 0; i < NPRESETS; i++)
        if (strlen(presets[i].device) == dlen && memcmp(presets[i].device, spec, dlen) == 0)
            p = &presets[i];
    if (!p) {
        char known[256];
        known_devices(known, sizeof known);
        return ms_err_set(err, "topology spec '%s': unknown device '%.*s'; known devices: %s",
                          safe, (int)dlen, spec, known);
    }

    long nodes = 0, gpus = p->gpus, nics = p->nics;
    double intra_GBps = p->intra_GBps, intra_us = p->intra_us;
    double nic_GBps = p->nic_GBps, nic_us = p->nic_us;
    static const char *const keys[] = {"nodes",    "gpus", "intra_GBps", "intra_us",
                                       "nics",     "nic_GBps", "nic_us"};
    int seen[7] = {0};

    const char *q = colon + 1;
    for (;;) {
        const char *end = strchr(q, ',');
        size_t flen = end ? (size_t)(end - q) : strlen(q);
        if (flen == 0)
            return ms_err_set(err, "topology spec '%s': empty field (expected key=value)", safe);
        const char *eq = memchr(q, '=', flen);
        if (!eq)
            return ms_err_set(err, "topology spec '%s': field '%.*s' is not key=value", safe,
                              (int)flen, q);
        size_t klen = (size_t)(eq - q);
        int k = -1;
        for (int i = 0; i < 7; i++)
            if (strlen(keys[i]) == klen && memcmp(keys[i], q, klen) == 0) k = i;
        if (k < 0)
            return ms_err_set(err, "topology spec '%s': unknown key '%.*s' (known: nodes, gpus, "
                                   "intra_GBps, intra_us, nics, nic_GBps, nic_us)",
                              safe, (int)klen, q);
        if (seen[k])
            return ms_err_set(err, "topology spec '%s': key '%s' given twice", safe, keys[k]);
        seen[k] = 1;
        char val[64];
        size_t vlen = flen - klen - 1;
        if (vlen >= sizeof val)
            return ms_err_set(err, "topology spec '%s': %s: value too long", safe, keys[k]);
        memcpy(val, eq + 1, vlen);
        val[vlen] = '\0';
        int rc;
        switch (k) {
        case 0: rc = parse_int(val, 1, MAX_RANKS, &nodes, why, sizeof why); break;
        case 1: rc = parse_int(val, 1, MAX_RANKS, &gpus, why, sizeof why); break;
        case 2: rc = parse_bw(val, &intra_GBps, why, sizeof why); break;
        case 3: rc = parse_lat(val, &intra_us, why, sizeof why); break;
        case 4: rc = parse_int(val, 1, MAX_NICS, &nics, why, sizeof why); break;
        case 5: rc = parse_bw(val, &nic_GBps, why, sizeof why); break;
        default: rc = parse_lat(val, &nic_us, why, sizeof why); break;
        }
        if (rc) return ms_err_set(err, "topology spec '%s': %s: %s", safe, keys[k], why);
        if (!end) break;
        q = end + 1;
    }
    if (!seen[0])
        return ms_err_set(err, "topology spec '%s': missing required key 'nodes'", safe);
    if ((long long)nodes * gpus > MAX_RANKS)
        return ms_err_set(err, "topology spec '%s': nodes x gpus = %ld x %ld = %lld ranks "
                               "exceeds the limit of %ld", safe, nodes, gpus,
                          (long long)nodes * gpus, MAX_RANKS);

    topo t;
    memset(&t, 0, sizeof t);
    memcpy(t.name, spec, slen + 1);
    snprintf(t.device, sizeof t.device, "%s", p->device);
    t.nodes = (int)nodes;
    t.gpus_per_node = (int)gpus;
    t.intra.bw_bytes_per_s = gbps_to_bps(intra_GBps);
    t.intra.latency_s = us_to_s(intra_us);
    t.nics_per_node = (int)nics;
    t.nic.bw_bytes_per_s = gbps_to_bps(nic_GBps);
    t.nic.latency_s = us_to_s(nic_us);
    if (topo_check(&t, err)) return ms_err_prefix(err, "topology spec '%s'", safe);
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Files and names */


static int load_file(const char *path, int by_name, const char *spec, topo *out, ms_err *err)
{
    size_t len = 0;
    int missing = 0;
    char *buf = ms_read_file(path, "topology file", MAX_FILE_BYTES, &len, &missing, err);
    if (!buf) {
        if (by_name && missing) {
            char dir[4096], names[700];
            snprintf(dir, sizeof dir, "%s/topologies", ms_data_dir());
            ms_list_names(dir, ".yaml", names, sizeof names);
            return ms_err_set(err, "unknown topology '%s' (no %s); available: %s", spec, path,
                              names);
        }
        return -1;
    }
    int rc = topo_parse_buffer(buf, len, path, out, err);
    free(buf);
    return rc;
}

int topo_load(const char *spec, topo *out, ms_err *err)
{
    if (!spec || !*spec) return ms_err_set(err, "empty topology spec");
    if (!out) return ms_err_set(err, "topology '%s': no output", spec);
    if (strchr(spec, ':')) return topo_generate(spec, out, err);
    if (strchr(spec, '/') || ms_ends_with(spec, ".yaml") || ms_ends_with(spec, ".yml"))
        return load_file(spec, 0, spec, out, err);
    char path[4096];
    if (ms_data_path(path, sizeof path, "topologies", spec, ".yaml"))
        return ms_err_set(err, "topology name '%.100s' is too long", spec);
    return load_file(path, 1, spec, out, err);
}

/* ---------------------------------------------------------------------------------- */
/* Printing */

/* Shortest decimal x such that conv(x) == v, i.e. parsing the printed text reproduces v
 * exactly; falls back to 17 digits. */
static void fmt_unit(char *buf, size_t len, double v, double (*conv)(double), double approx)
{
    /* plain decimals for everyday magnitudes ("450", "0.3"), else the shortest %g */
    if (fabs(approx) >= 1e-6 && fabs(approx) < 1e16)
        for (int dec = 0; dec <= 24; dec++) {
            snprintf(buf, len, "%.*f", dec, approx);
            if (conv(strtod(buf, NULL)) == v) return;
        }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, approx);
        if (conv(strtod(buf, NULL)) == v) return;
    }
    snprintf(buf, len, "%.17g", approx);
}

static void print_bw(FILE *f, const char *key, double bps, const char *comment)
{
    char b[48];
    fmt_unit(b, sizeof b, bps, gbps_to_bps, bps / 1e9);
    fprintf(f, "%s%s  # %s\n", key, b, comment);
}

static void print_lat(FILE *f, const char *key, double s)
{
    char b[48];
    fmt_unit(b, sizeof b, s, us_to_s, s * 1e6);
    fprintf(f, "%s%s\n", key, b);
}

/* Plain scalar when it cannot be misread, else double-quoted with escapes. */
static void print_str(FILE *f, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    int plain = n > 0 && (isalnum((unsigned char)s[0]) || s[0] == '_');
    for (size_t i = 0; i < n && plain; i++)
        plain = isalnum((unsigned char)s[i]) || strchr("_.-", s[i]);
    if (plain) {
        fprintf(f, "%.*s", (int)n, s);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void topo_print(const topo *t, FILE *f)
{
    if (!t || !f) return;
    fputs("name: ", f);
    print_str(f, t->name, sizeof t->name);
    fputs("\ndevice: ", f);
    print_str(f, t->device, sizeof t->device);
    fprintf(f, "\nnodes: %d\n", t->nodes);
    fprintf(f, "gpus_per_node: %d\n", t->gpus_per_node);
    fprintf(f, "ranks: %lld\n", (long long)t->nodes * t->gpus_per_node);
    fputs("intra_node:\n", f);
    print_bw(f, "  bandwidth_GBps: ", t->intra.bw_bytes_per_s, "per GPU, per direction");
    print_lat(f, "  latency_us: ", t->intra.latency_s);
    if (t->nics_per_node == 0 && t->nodes <= 1) {
        fputs("# inter_node: none (single node without NICs)\n", f);
        return;
    }
    fputs("inter_node:\n", f);
    fprintf(f, "  nics_per_node: %d\n", t->nics_per_node);
    print_bw(f, "  bandwidth_GBps: ", t->nic.bw_bytes_per_s, "per NIC, per direction");
    print_lat(f, "  latency_us: ", t->nic.latency_s);
    print_bw(f, "  gpu_share_GBps: ", topo_gpu_nic_bw(t),
             "per GPU: nics_per_node x bandwidth_GBps / gpus_per_node");
}

/* Reader of the .tg text format (grammar in docs/IR.md). Input is read one line at a time
 * (never the whole file), split into key=value fields in place, checked, and appended
 * with tg_add_group/tg_add_vec/tg_add_task; the graph is finalized at the end. Op fields
 * are looked up in the op table, so new compute ops need no change here. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/tg.h"

typedef struct field {
    char *key, *val; /* NUL-terminated in place; val NULL for a bare token */
    size_t klen, vlen;
    int quoted;
} field;

typedef struct parser {
    tg_graph *g;
    const char *name;
    ms_err *err;
    uint32_t line;
    uint32_t header_line; /* 0 until `tg 1` was read */
    field *f;
    size_t nf, cap_f;
    int64_t *after;
    size_t cap_after;
    int32_t *peer;
    int64_t *bytes;
    uint8_t *send;
    size_t nx, cap_peer, cap_bytes, cap_send;
    int32_t *ranks;
    size_t cap_ranks;
    int64_t *vals; /* counts of a vec record */
    size_t cap_vals;
    char *buf; /* line copy for tg_parse_buffer */
    size_t cap_buf;
} parser;

/* "name:line: msg" */
static int perr(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(parser *p, const char *fmt, ...)
{
    char msg[MS_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_err_set(p->err, "%s:%u: %s", p->name, (unsigned)p->line, msg);
}

static size_t new_cap(size_t cap, size_t need)
{
    size_t c = cap ? cap : 16;
    while (c < need) c *= 2;
    return c;
}

/* Makes room for `need` elements in array p of capacity cap, or runs `fail`. */
#define GROW(p, cap, need, fail)                                                         \
    do {                                                                                 \
        if ((need) > (cap)) {                                                            \
            size_t c_ = new_cap((cap), (need));                                          \
            void *n_ = realloc((p), c_ * sizeof *(p));                                   \
            if (!n_) fail;                                                               \
            (p) = n_;                                                                    \
            (cap) = c_;                                                                  \
        }                                                                                \
    } while (0)

/* Strict decimal int64 of s[0..len): 0, -1 not a number, -2 out of range. */
static int parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && s[i] == '-') neg = 1, i++;
    if (i == len) return -1;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    int range = 0;
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9) return -1;
        if (v > (lim - d) / 10) range = 1;
        else v = v * 10 + d;
    }
    if (range) return -2;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 0;
}

/* ---- tokenizing ---------------------------------------------------------------------- */

static int is_ws(char c) { return c == ' ' || c == '\t'; }

/* Splits s[0..len) (s[len] writable) into fields, NUL-terminating keys and values in place
 * and unescaping quoted values. Stops at a '#' that starts a token. */
static int tokenize(parser *p, char *s, size_t len)
{
    char *c = s, *end = s + len;
    p->nf = 0;
    for (;;) {
        while (c < end && is_ws(*c)) c++;
        if (c == end || *c == '#') break;
        GROW(p->f, p->cap_f, p->nf + 1, return perr(p, "out of memory"));
        field *F = &p->f[p->nf++];
        F->key = c;
        F->val = NULL;
        F->quoted = 0;
        while (c < end && *c != '=' && !is_ws(*c)) c++;
        F->klen = (size_t)(c - F->key);
        F->vlen = 0;
        if (c == end || *c != '=') continue;
        F->val = ++c;
        if (c < end && *c == '"') {
            char *w = c++;
            F->quoted = 1;
            for (;;) {
                if (c == end)
                    return perr(p, "unterminated quoted value for field '%.*s'", (int)F->klen,
                                F->key);
                if (*c == '"') {
                    c++;
                    break;
                }
                if (*c == '\\') {
                    if (c + 1 < end && (c[1] == '"' || c[1] == '\\')) {
                        *w++ = c[1];
                        c += 2;
                        continue;
                    }
                    return perr(p, "bad escape in quoted value for field '%.*s' (only \\\" and "
                                   "\\\\ are allowed)",
                                (int)F->klen, F->key);
                }
                *w++ = *c++;
            }
            F->vlen = (size_t)(w - F->val);
            if (c < end && !is_ws(*c))
                return perr(p, "unexpected text after the closing quote of field '%.*s'",
                            (int)F->klen, F->key);
        } else {
            while (c < end && !is_ws(*c)) c++;
            F->vlen = (size_t)(c - F->val);
        }
    }
    for (size_t i = 0; i < p->nf; i++) {
        field *F = &p->f[i];
        F->key[F->klen] = '\0';
        if (F->val) F->val[F->vlen] = '\0';
    }
    return 0;
}

/* ---- records ------------------------------------------------------------------------- */

static int parse_header(parser *p)
{
    if (p->header_line)
        return perr(p, "duplicate 'tg' header (the first is at line %u)", (unsigned)p->header_line);
    if (p->nf < 2 || p->f[1].val) return perr(p, "bad header: expected 'tg %d'", TG_VERSION);
    int64_t v;
    if (parse_i64(p->f[1].key, p->f[1].klen, &v))
        return perr(p, "bad tg version '%s': expected 'tg %d'", p->f[1].key, TG_VERSION);
    if (v != TG_VERSION)
        return perr(p, "unsupported tg version %lld, this moesched reads %d", (long long)v,
                    TG_VERSION);
    if (p->nf > 2) return perr(p, "unexpected '%s' after 'tg %d'", p->f[2].key, TG_VERSION);
    p->header_line = p->line;
    return 0;
}

/* The records that are a name and one list of integers: `group NAME ranks=R,...` and
 * `vec NAME counts=C,...`. Parses the list into p->vals (*n of them); values must be >= 0,
 * and below max when max > 0 (messages then say "out of range [0, max)"). */
static int parse_list_record(parser *p, const char *rec, const char *key, const char *item,
                             int64_t max, size_t *n_out)
{
    if (p->nf < 2 || p->f[1].val)
        return perr(p, "%s: expected '%s NAME %s=%c,%c,...'", rec, rec, key,
                    max ? 'R' : 'C', max ? 'R' : 'C');
    const char *name = p->f[1].key;
    int have = 0;
    size_t n = 0;
    for (size_t i = 2; i < p->nf; i++) {
        field *F = &p->f[i];
        if (!F->val) return perr(p, "%s %s: expected key=value, got '%s'", rec, name, F->key);
        if (strcmp(F->key, key) != 0)
            return perr(p, "%s %s: unknown field '%s' (a %s has only %s=)", rec, name, F->key,
                        rec, key);
        if (have) return perr(p, "%s %s: duplicate field '%s'", rec, name, key);
        if (F->quoted) return perr(p, "%s %s: %s= must not be quoted", rec, name, key);
        have = 1;
        const char *s = F->val, *end = F->val + F->vlen;
        for (;;) {
            const char *e = memchr(s, ',', (size_t)(end - s));
            if (!e) e = end;
            int64_t v;
            int rc = parse_i64(s, (size_t)(e - s), &v);
            if (rc == -1)
                return perr(p, "%s %s: bad %s '%.*s' in %s=: expected an integer", rec, name,
                            item, (int)(e - s), s, key);
            if (max && (rc == -2 || v < 0 || v >= max))
                return perr(p, "%s %s: %s %.*s out of range [0, %lld)", rec, name, item,
                            (int)(e - s), s, (long long)max);
            if (rc == -2)
                return perr(p, "%s %s: %s %.*s in %s= is out of range", rec, name, item,
                            (int)(e - s), s, key);
            if (v < 0)
                return perr(p, "%s %s: %s %lld in %s= must be >= 0", rec, name, item,
                            (long long)v, key);
            if (n >= INT32_MAX / 2) return perr(p, "%s %s: too many %ss", rec, name, item);
            GROW(p->vals, p->cap_vals, n + 1, return perr(p, "out of memory"));
            p->vals[n++] = v;
            if (e == end) break;
            s = e + 1;
        }
    }
    if (!have) return perr(p, "%s %s: missing field '%s'", rec, name, key);
    *n_out = n;
    return 0;
}

static int parse_group(parser *p)
{
    size_t n;
    if (parse_list_record(p, "group", "ranks", "rank", TG_MAX_RANKS, &n) != 0) return -1;
    GROW(p->ranks, p->cap_ranks, n, return perr(p, "out of memory"));
    for (size_t i = 0; i < n; i++) p->ranks[i] = (int32_t)p->vals[i];
    return tg_add_group(p->g, p->f[1].key, p->ranks, (int)n, p->line, p->err) < 0 ? -1 : 0;
}

static int parse_vec(parser *p)
{
    size_t n;
    if (parse_list_record(p, "vec", "counts", "count", 0, &n) != 0) return -1;
    return tg_add_vec(p->g, p->f[1].key, p->vals, (uint32_t)n, p->line, p->err) < 0 ? -1 : 0;
}

/* Parses "ID,ID,..." into p->after. */
static int parse_after(parser *p, long long id, const field *F, int *n)
{
    const char *s = F->val, *end = F->val + F->vlen;
    size_t k = 0;
    for (;;) {
        const char *e = memchr(s, ',', (size_t)(end - s));
        if (!e) e = end;
        int64_t v;
        int rc = parse_i64(s, (size_t)(e - s), &v);
        if (rc == -1)
            return perr(p, "task %lld: bad task id '%.*s' in after=: expected an integer", id,
                        (int)(e - s), s);
        if (rc == -2)
            return perr(p, "task %lld: task id '%.*s' in after= is out of range", id, (int)(e - s),
                        s);
        if (k >= INT32_MAX / 2) return perr(p, "task %lld: too many ids in after=", id);
        GROW(p->after, p->cap_after, k + 1, return perr(p, "out of memory"));
        p->after[k++] = v;
        if (e == end) break;
        s = e + 1;
    }
    *n = (int)k;
    return 0;
}

/* Parses "PEER:BYTES,..." of send= or recv= into the transfer arrays. */
static int parse_xfers(parser *p, long long id, const field *F, uint8_t send)
{
    const char *s = F->val, *end = F->val + F->vlen;
    for (;;) {
        const char *e = memchr(s, ',', (size_t)(end - s));
        if (!e) e = end;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        int64_t peer, bytes;
        int rc1 = colon ? parse_i64(s, (size_t)(colon - s), &peer) : -1;
        int rc2 = colon ? parse_i64(colon + 1, (size_t)(e - colon - 1), &bytes) : -1;
        if (rc1 == -1 || rc2 == -1)
            return perr(p, "task %lld: bad transfer '%.*s' in %s=: expected PEER:BYTES", id,
                        (int)(e - s), s, F->key);
        if (rc1 == -2 || peer < 0 || peer >= TG_MAX_RANKS)
            return perr(p, "task %lld: peer rank '%.*s' in %s= out of range [0, %d)", id,
                        (int)(colon - s), s, F->key, TG_MAX_RANKS);
        if (rc2 == -2)
            return perr(p, "task %lld: byte count '%.*s' in %s= is out of range", id,
                        (int)(e - colon - 1), colon + 1, F->key);
        if (bytes < 0)
            return perr(p, "task %lld: byte count %lld in %s= must be >= 0", id, (long long)bytes,
                        F->key);
        size_t need = p->nx + 1;
        if (need >= INT32_MAX / 2) return perr(p, "task %lld: too many transfers", id);
        GROW(p->peer, p->cap_peer, need, return perr(p, "out of memory"));
        GROW(p->bytes, p->cap_bytes, need, return perr(p, "out of memory"));
        GROW(p->send, p->cap_send, need, return perr(p, "out of memory"));
        p->peer[p->nx] = (int32_t)peer;
        p->bytes[p->nx] = bytes;
        p->send[p->nx] = send;
        p->nx++;
        if (e == end) break;
        s = e + 1;
    }
    return 0;
}

enum { F_RANK = 1, F_STREAM = 2, F_OP = 4, F_AFTER = 8, F_LABEL = 16, F_SEND = 32, F_RECV = 64 };

/* The key of F is the literal lit (length first: this runs for every field). */
#define KEY_IS(F, lit) ((F)->klen == sizeof lit - 1 && memcmp((F)->key, lit, sizeof lit - 1) == 0)

static int parse_task(parser *p)
{
    if (p->nf < 2 || p->f[1].val)
        return perr(p, "task: expected 'task ID rank=R stream=NAME op=OP ...'");
    int64_t id64;
    int rc = parse_i64(p->f[1].key, p->f[1].klen, &id64);
    if (rc == -1) return perr(p, "bad task id '%s': expected an integer", p->f[1].key);
    if (rc == -2) return perr(p, "task id '%s' is out of range", p->f[1].key);
    if (id64 < 0) return perr(p, "bad task id %lld: ids must be >= 0", (long long)id64);
    long long id = (long long)id64;

    /* The op first: it says which fields exist. */
    const field *opf = NULL;
    for (size_t i = 2; i < p->nf; i++) {
        const field *F = &p->f[i];
        if (!F->val) return perr(p, "task %lld: expected key=value, got '%s'", id, F->key);
        if (!KEY_IS(F, "op")) continue;
        if (opf) return perr(p, "task %lld: duplicate field 'op'", id);
        opf = F;
    }
    if (!opf) return perr(p, "task %lld: missing field 'op'", id);
    int op = tg_op_find(opf->val);
    if (op < 0 || opf->quoted) return perr(p, "task %lld: unknown op '%s'", id, opf->val);
    const tg_op_info *info = tg_op_get((tg_op)op);

    tg_task_spec t = {.id = id64, .op = (tg_op)op, .line = p->line};
    int64_t args[TG_MAX_ARGS];
    for (int j = 0; j < info->nargs; j++) args[j] = info->dflt[j];
    unsigned seen = 0, seen_arg = 0;
    p->nx = 0;
    for (size_t i = 2; i < p->nf; i++) {
        const field *F = &p->f[i];
        const char *k = F->key;
        unsigned bit = 0;
        int arg = -1;
        if (KEY_IS(F, "rank")) bit = F_RANK;
        else if (KEY_IS(F, "stream")) bit = F_STREAM;
        else if (KEY_IS(F, "op")) bit = F_OP;
        else if (KEY_IS(F, "after")) bit = F_AFTER;
        else if (KEY_IS(F, "label")) bit = F_LABEL;
        else if (info->kind == TG_KIND_XCHG && KEY_IS(F, "send")) bit = F_SEND;
        else if (info->kind == TG_KIND_XCHG && KEY_IS(F, "recv")) bit = F_RECV;
        else
            for (int j = 0; j < info->nargs && arg < 0; j++)
                if (strcmp(k, info->arg[j]) == 0) arg = j;
        if (!bit && arg < 0)
            return perr(p, "task %lld: unknown field '%s' for op %s", id, k, info->name);
        if ((bit && (seen & bit)) || (arg >= 0 && (seen_arg & (1u << arg))))
            return perr(p, "task %lld: duplicate field '%s'", id, k);
        seen |= bit;
        if (arg >= 0) seen_arg |= 1u << arg;
        if (F->quoted && bit != F_LABEL)
            return perr(p, "task %lld: field '%s' must not be quoted (only label= may be)", id, k);
        if (F->vlen == 0 && bit != F_LABEL)
            return perr(p, "task %lld: empty value for field '%s'", id, k);
        int64_t v;
        switch (bit) {
        case F_RANK:
            rc = parse_i64(F->val, F->vlen, &v);
            if (rc == -1)
                return perr(p, "task %lld: bad value '%s' for field 'rank': expected an integer",
                            id, F->val);
            if (rc == -2 || v < 0 || v >= TG_MAX_RANKS)
                return perr(p, "task %lld: rank %s out of range [0, %d)", id, F->val,
                            TG_MAX_RANKS);
            t.rank = (int32_t)v;
            break;
        case F_STREAM: t.stream = F->val; break;
        case F_OP: break;
        case F_AFTER:
            if (parse_after(p, id, F, &t.nafter)) return -1;
            t.after = p->after;
            break;
        case F_LABEL:
            if (!F->quoted) {
                if (F->vlen == 0)
                    return perr(p, "task %lld: empty label (write label=\"\" for an empty one)",
                                id);
                if (strchr(F->val, '"') || strchr(F->val, '#'))
                    return perr(p, "task %lld: label '%s' holds '\"' or '#': quote it", id,
                                F->val);
            }
            t.label = F->val;
            break;
        case F_SEND:
        case F_RECV:
            if (parse_xfers(p, id, F, bit == F_SEND)) return -1;
            break;
        default: /* an op field */
            if (info->kind == TG_KIND_DELAY) {
                char *e;
                errno = 0;
                double us = strtod(F->val, &e);
                if (e != F->val + F->vlen || isnan(us))
                    return perr(p, "task %lld: bad value '%s' for field '%s': expected a number",
                                id, F->val, k);
                if (!isfinite(us) || us < 0)
                    return perr(p, "task %lld: %s=%s must be a finite number >= 0", id, k,
                                F->val);
                args[arg] = tg_delay_arg(us);
            } else if (info->kind == TG_KIND_COLL && arg == 0) {
                int gi = tg_find_group(p->g, F->val);
                if (gi < 0)
                    return perr(p, "task %lld: unknown group '%s' (declare it with a group line "
                                   "before its first use)",
                                id, F->val);
                args[arg] = gi;
            } else if (op == TG_OP_M2N && arg >= 2) { /* from=GROUP counts=VEC per=WORD */
                int x = -1;
                if (arg == 2 && (x = tg_find_group(p->g, F->val)) < 0)
                    return perr(p, "task %lld: unknown group '%s' in from= (declare it with a "
                                   "group line before its first use)",
                                id, F->val);
                if (arg == 3 && (x = tg_find_vec(p->g, F->val)) < 0)
                    return perr(p, "task %lld: unknown vector '%s' in counts= (declare it with "
                                   "a vec line before its first use)",
                                id, F->val);
                if (arg == 4) {
                    if (strcmp(F->val, "recv") == 0) x = TG_M2N_PER_RECV;
                    else if (strcmp(F->val, "send") == 0) x = TG_M2N_PER_SEND;
                    else
                        return perr(p, "task %lld: bad value '%s' for field 'per': expected "
                                       "recv or send",
                                    id, F->val);
                }
                args[arg] = x;
            } else {
                rc = parse_i64(F->val, F->vlen, &v);
                if (rc == -1)
                    return perr(p,
                                "task %lld: bad value '%s' for field '%s': expected an integer",
                                id, F->val, k);
                if (rc == -2)
                    return perr(p, "task %lld: value '%s' for field '%s' is out of range", id,
                                F->val, k);
                if (v < info->min[arg])
                    return perr(p, "task %lld: %s=%s must be >= %lld", id, k, F->val,
                                (long long)info->min[arg]);
                args[arg] = v;
            }
            break;
        }
    }
    if (!(seen & F_RANK)) return perr(p, "task %lld: missing field 'rank'", id);
    if (!(seen & F_STREAM)) return perr(p, "task %lld: missing field 'stream'", id);
    for (int j = 0; j < info->nargs; j++)
        if (!(seen_arg & (1u << j)) && info->dflt[j] == TG_ARG_REQUIRED)
            return perr(p, "task %lld: missing field '%s' for op %s", id, info->arg[j],
                        info->name);
    t.args = args;
    t.xfer_peer = p->peer;
    t.xfer_bytes = p->bytes;
    t.xfer_send = p->send;
    t.nxfer = (int)p->nx;
    return tg_add_task(p->g, &t, p->err) < 0 ? -1 : 0;
}

/* One line, without its newline; s[len] must be writable. */
static int parse_line(parser *p, char *s, size_t len)
{
    if (p->line == UINT32_MAX) return perr(p, "too many lines");
    p->line++;
    if (len && s[len - 1] == '\r') len--; /* CRLF input */
    if (memchr(s, '\0', len)) return perr(p, "NUL byte in the input");
    if (tokenize(p, s, len)) return -1;
    if (p->nf == 0) return 0;
    const field *F = &p->f[0];
    if (F->val) return perr(p, "expected a record (tg, group, vec or task), got '%s='", F->key);
    if (strcmp(F->key, "tg") == 0) return parse_header(p);
    if (!p->header_line)
        return perr(p, "expected 'tg %d' as the first line, got '%s'", TG_VERSION, F->key);
    if (strcmp(F->key, "task") == 0) return parse_task(p);
    if (strcmp(F->key, "group") == 0) return parse_group(p);
    if (strcmp(F->key, "vec") == 0) return parse_vec(p);
    return perr(p, "unknown record '%s' (expected 'task', 'group' or 'vec')", F->key);
}

static void parser_release(parser *p)
{
    free(p->f);
    free(p->after);
    free(p->peer);
    free(p->bytes);
    free(p->send);
    free(p->ranks);
    free(p->vals);
    free(p->buf);
}

static int parser_init(parser *p, const char *name, ms_err *err)
{
    memset(p, 0, sizeof *p);
    p->name = name ? name : "<input>";
    p->err = err;
    p->g = tg_graph_create(p->name);
    if (!p->g) return ms_err_set(err, "%s: out of memory", p->name);
    return 0;
}

/* Finishes a parse: header check, finalize; returns the graph or NULL. */
static tg_graph *parser_finish(parser *p, int rc)
{
    if (rc == 0 && !p->header_line) {
        p->line = 1;
        rc = perr(p, "missing 'tg %d' header (no records in the input)", TG_VERSION);
    }
    if (rc == 0) rc = tg_graph_finalize(p->g, p->err);
    tg_graph *g = p->g;
    parser_release(p);
    if (rc) {
        tg_graph_free(g);
        return NULL;
    }
    return g;
}

tg_graph *tg_parse_stream(FILE *f, const char *name, ms_err *err)
{
    parser p;
    if (parser_init(&p, name, err)) return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    errno = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        rc = parse_line(&p, line, len);
    }
    if (rc == 0 && ferror(f))
        rc = ms_err_set(err, "%s: read error: %s", p.name, strerror(errno ? errno : EIO));
    free(line);
    return parser_finish(&p, rc);
}

tg_graph *tg_parse_buffer(const char *buf, size_t len, const char *name, ms_err *err)
{
    parser p;
    if (parser_init(&p, name, err)) return NULL;
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < len) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;
        GROW(p.buf, p.cap_buf, n + 1, goto oom);
        memcpy(p.buf, buf + i, n);
        p.buf[n] = '\0';
        rc = parse_line(&p, p.buf, n);
        i += n + 1;
    }
    return parser_finish(&p, rc);
oom:
    return parser_finish(&p, ms_err_set(err, "%s: out of memory", p.name));
}

tg_graph *tg_parse_file(const char *path, ms_err *err)
{
    if (!path) {
        ms_err_set(err, "tg_parse_file: no path");
        return NULL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        ms_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    tg_graph *g = tg_parse_stream(f, path, err);
    fclose(f);
    return g;
}

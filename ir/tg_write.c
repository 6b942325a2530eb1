/* Writer of the canonical .tg text form: `tg 1`, the groups, the count vectors, then one
 * line per task in index order with fields in canonical order and defaults omitted. Output
 * goes through a private buffer with a hand-written integer formatter (a million-task
 * graph is ~100 MB). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "ir/tg.h"

typedef struct wbuf {
    FILE *f;
    size_t n;
    int bad; /* an fwrite failed */
    char b[1 << 16];
} wbuf;

static void w_flush(wbuf *w)
{
    if (w->n && fwrite(w->b, 1, w->n, w->f) != w->n) w->bad = 1;
    w->n = 0;
}

/* Room for `len` more bytes (len <= sizeof w->b). */
static inline char *w_room(wbuf *w, size_t len)
{
    if (w->n + len > sizeof w->b) w_flush(w);
    return w->b + w->n;
}

static void w_mem(wbuf *w, const char *s, size_t len)
{
    if (len > sizeof w->b / 2) {
        w_flush(w);
        if (fwrite(s, 1, len, w->f) != len) w->bad = 1;
        return;
    }
    memcpy(w_room(w, len), s, len);
    w->n += len;
}

static inline void w_str(wbuf *w, const char *s) { w_mem(w, s, strlen(s)); }

static inline void w_chr(wbuf *w, char c)
{
    *w_room(w, 1) = c;
    w->n++;
}

static void w_i64(wbuf *w, int64_t v)
{
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    size_t len = (size_t)(e - p);
    memcpy(w_room(w, len), p, len);
    w->n += len;
}

/* " key=" */
static void w_key(wbuf *w, const char *key)
{
    w_chr(w, ' ');
    w_str(w, key);
    w_chr(w, '=');
}

static int label_needs_quotes(const char *s)
{
    if (!*s) return 1;
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '"' || *s == '#') return 1;
    return 0;
}

static void w_label(wbuf *w, const char *s)
{
    if (!label_needs_quotes(s)) {
        w_str(w, s);
        return;
    }
    w_chr(w, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') w_chr(w, '\\');
        w_chr(w, *s);
    }
    w_chr(w, '"');
}

static void w_xfers(wbuf *w, const tg_graph *g, uint32_t t, int send)
{
    int any = 0;
    for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
        if (g->xfer_send[x] != send) continue;
        if (!any) w_key(w, send ? "send" : "recv");
        else w_chr(w, ',');
        any = 1;
        w_i64(w, g->xfer_peer[x]);
        w_chr(w, ':');
        w_i64(w, g->xfer_bytes[x]);
    }
}

static void w_task(wbuf *w, const tg_graph *g, uint32_t t)
{
    const tg_op_info *info = tg_op_get((tg_op)g->op[t]);
    const int64_t *a = tg_task_args(g, t);
    w_str(w, "task ");
    w_i64(w, g->id[t]);
    w_key(w, "rank");
    w_i64(w, g->rank[t]);
    w_key(w, "stream");
    w_str(w, g->str + g->stream_name[g->stream[t]]);
    w_key(w, "op");
    w_str(w, info->name);
    switch (info->kind) {
    case TG_KIND_DELAY: {
        char num[40];
        ms_fmt_double(num, sizeof num, tg_task_delay_us(g, t));
        w_key(w, info->arg[0]);
        w_str(w, num);
        break;
    }
    case TG_KIND_COMPUTE:
        for (int i = 0; i < info->nargs; i++) {
            if (info->dflt[i] != TG_ARG_REQUIRED && a[i] == info->dflt[i]) continue;
            w_key(w, info->arg[i]);
            w_i64(w, a[i]);
        }
        break;
    case TG_KIND_XCHG:
        w_xfers(w, g, t, 1);
        w_xfers(w, g, t, 0);
        break;
    case TG_KIND_COLL:
        w_key(w, info->arg[0]);
        w_str(w, g->str + g->group_name[a[0]]);
        w_key(w, info->arg[1]);
        w_i64(w, a[1]);
        if (g->op[t] == TG_OP_M2N) { /* from= a group, counts= a vector, per= a word */
            w_key(w, info->arg[2]);
            w_str(w, g->str + g->group_name[a[2]]);
            w_key(w, info->arg[3]);
            w_str(w, g->str + g->vec_name[a[3]]);
            w_key(w, info->arg[4]);
            w_str(w, a[4] == TG_M2N_PER_SEND ? "send" : "recv");
        }
        break;
    }
    if (g->dep_off[t + 1] > g->dep_off[t]) {
        w_key(w, "after");
        for (uint32_t i = g->dep_off[t]; i < g->dep_off[t + 1]; i++) {
            if (i > g->dep_off[t]) w_chr(w, ',');
            w_i64(w, g->id[g->dep[i]]);
        }
    }
    if (g->label[t] != TG_NONE) {
        w_key(w, "label");
        w_label(w, g->str + g->label[t]);
    }
    w_chr(w, '\n');
}

int tg_write(const tg_graph *g, FILE *f, ms_err *err)
{
    if (!g || !f) return ms_err_set(err, "tg_write: no graph or file");
    if (!g->finalized) return ms_err_set(err, "tg_write: the graph is not finalized");
    static const wbuf zero;
    wbuf *w = malloc(sizeof *w);
    if (!w) return ms_err_set(err, "tg_write: out of memory");
    *w = zero;
    w->f = f;
    w_str(w, "tg ");
    w_i64(w, TG_VERSION);
    w_chr(w, '\n');
    for (uint32_t i = 0; i < g->ngroups; i++) {
        w_str(w, "group ");
        w_str(w, g->str + g->group_name[i]);
        w_str(w, " ranks=");
        for (uint32_t j = g->group_off[i]; j < g->group_off[i + 1]; j++) {
            if (j > g->group_off[i]) w_chr(w, ',');
            w_i64(w, g->group_ranks[j]);
        }
        w_chr(w, '\n');
    }
    for (uint32_t i = 0; i < g->nvecs; i++) {
        w_str(w, "vec ");
        w_str(w, g->str + g->vec_name[i]);
        w_str(w, " counts=");
        for (uint32_t j = g->vec_off[i]; j < g->vec_off[i + 1]; j++) {
            if (j > g->vec_off[i]) w_chr(w, ',');
            w_i64(w, g->vec_val[j]);
        }
        w_chr(w, '\n');
    }
    for (uint32_t t = 0; t < g->ntasks; t++) w_task(w, g, t);
    w_flush(w);
    int bad = w->bad || ferror(f);
    free(w);
    if (bad) return ms_err_set(err, "write error: %s", strerror(errno ? errno : EIO));
    return 0;
}

int tg_write_file(const tg_graph *g, const char *path, ms_err *err)
{
    if (!path) return ms_err_set(err, "tg_write_file: no path");
    FILE *f = fopen(path, "w");
    if (!f) return ms_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    int rc = tg_write(g, f, err);
    if (rc) ms_err_prefix(err, "%s", path);
    if (fclose(f) != 0 && rc == 0)
        rc = ms_err_set(err, "%s: write error: %s", path, strerror(errno));
    return rc;
}

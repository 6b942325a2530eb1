/* Helpers shared by the graph builders; see workloads/wl_common.h. */
#include "workloads/wl_common.h"

#include <string.h>

int64_t wl_add_task(wl_tasks *k, tg_task_spec *t)
{
    if (k->failed) return -1;
    t->id = k->next_id;
    if (tg_add_task(k->g, t, k->err) < 0) {
        k->failed = 1;
        return -1;
    }
    return k->next_id++;
}

/* Appends the decimal digits of v >= 0 at p; returns the end. */
static char *put_uint(char *p, unsigned v)
{
    char tmp[12];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n) *p++ = tmp[--n];
    return p;
}

char *wl_label(char *buf, int layer, int mb, const char *kind, int chunk)
{
    char *p = buf;
    *p++ = 'L';
    p = put_uint(p, (unsigned)layer);
    *p++ = '.', *p++ = 'm', *p++ = 'b';
    p = put_uint(p, (unsigned)mb);
    if (kind) {
        size_t n = strlen(kind);
        if (n > WL_LABEL_LEN - 40) n = WL_LABEL_LEN - 40; /* room for the numbers */
        *p++ = '.';
        memcpy(p, kind, n);
        p += n;
    }
    if (chunk >= 0) {
        *p++ = '.', *p++ = 'c';
        p = put_uint(p, (unsigned)chunk);
    }
    *p = 0;
    return buf;
}

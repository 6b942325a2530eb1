/* Perfetto trace writer shared by sim/, exec/ and cli/; see tg_trace.h. */
#include "ir/tg_trace.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int tg_trace_open(tg_trace *tr, const char *path, ms_err *err)
{
    memset(tr, 0, sizeof *tr);
    tr->path = path;
    tr->f = fopen(path, "w");
    if (!tr->f) return ms_err_set(err, "cannot write trace '%s': %s", path, strerror(errno));
    ms_json_init(&tr->j, tr->f);
    ms_json_obj_begin(&tr->j);
    ms_json_key(&tr->j, "traceEvents");
    ms_json_arr_begin(&tr->j);
    return 0;
}

/* One metadata event; tid < 0: none; the argument is sval when not NULL, else ival. */
static void meta(tg_trace *tr, const char *what, int pid, int tid, const char *key,
                 const char *sval, int ival)
{
    ms_json *j = &tr->j;
    fputc('\n', tr->f);
    ms_json_obj_begin(j);
    ms_json_kstr(j, "ph", "M");
    ms_json_kstr(j, "name", what);
    ms_json_kint(j, "pid", pid);
    if (tid >= 0) ms_json_kint(j, "tid", tid);
    ms_json_key(j, "args");
    ms_json_obj_begin(j);
    if (sval) ms_json_kstr(j, key, sval);
    else ms_json_kint(j, key, ival);
    ms_json_obj_end(j);
    ms_json_obj_end(j);
}

void tg_trace_process(tg_trace *tr, int pid, const char *name, int sort_index)
{
    meta(tr, "process_name", pid, -1, "name", name, 0);
    if (sort_index >= 0) meta(tr, "process_sort_index", pid, -1, "sort_index", NULL, sort_index);
}

void tg_trace_thread(tg_trace *tr, const tg_graph *g, uint32_t st, int pid)
{
    meta(tr, "thread_name", pid, (int)g->stream_local[st], "name",
         tg_str(g, g->stream_name[st]), 0);
}

void tg_trace_names(tg_trace *tr, const tg_graph *g)
{
    char name[64];
    for (int r = 0; r < g->nranks; r++) {
        snprintf(name, sizeof name, "rank %d", r);
        tg_trace_process(tr, r, name, -1);
    }
    for (uint32_t st = 0; st < g->nstreams; st++) tg_trace_thread(tr, g, st, g->stream_rank[st]);
}

void tg_trace_task(tg_trace *tr, const tg_graph *g, uint32_t t, int pid, double start_us,
                   double end_us, const char *source)
{
    ms_json *j = &tr->j;
    double ts = rint(start_us * 1e3) / 1e3, te = rint(end_us * 1e3) / 1e3;
    const char *op = tg_op_get((tg_op)g->op[t])->name;
    const char *label = tg_str(g, g->label[t]);
    fputc('\n', tr->f);
    ms_json_obj_begin(j);
    ms_json_kstr(j, "ph", "X");
    ms_json_kstr(j, "name", label ? label : op);
    ms_json_kstr(j, "cat", op);
    ms_json_kint(j, "pid", pid);
    ms_json_kint(j, "tid", g->stream_local[g->stream[t]]);
    ms_json_key(j, "ts");
    ms_json_fixed(j, ts, 3);
    ms_json_key(j, "dur");
    ms_json_fixed(j, te > ts ? te - ts : 0, 3);
    ms_json_key(j, "args");
    ms_json_obj_begin(j);
    ms_json_kint(j, "id", g->id[t]);
    if (source) ms_json_kstr(j, "source", source);
    ms_json_obj_end(j);
    ms_json_obj_end(j);
}

int tg_trace_close(tg_trace *tr, ms_err *err)
{
    if (!tr->f) return 0;
    fputs("\n", tr->f);
    ms_json_arr_end(&tr->j);
    ms_json_kstr(&tr->j, "displayTimeUnit", "ns");
    ms_json_obj_end(&tr->j);
    fputc('\n', tr->f);
    int bad = ferror(tr->f);
    bad |= fclose(tr->f) != 0;
    tr->f = NULL;
    if (bad) return ms_err_set(err, "error writing trace '%s': %s", tr->path, strerror(errno));
    return 0;
}

/* Perfetto (Chrome JSON) traces of a task graph's timeline: the one format written by the
 * simulator, the executors and `moesched validate` (docs/SIM.md). pid = rank (plus an
 * offset where one trace holds several timelines), tid = the stream's index on its rank,
 * one complete event per task; ts/dur in us with three decimals, rounded to ns. */
#ifndef TG_TRACE_H
#define TG_TRACE_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/json.h"
#include "ir/tg.h"

/* A trace being written; caller-owned, between tg_trace_open and tg_trace_close. */
typedef struct tg_trace {
    FILE *f;
    ms_json j;
    const char *path; /* borrowed from tg_trace_open's caller; must outlive the trace */
} tg_trace;

/* Creates (or truncates) path and starts the event list. 0, or -1 with err set. */
int tg_trace_open(tg_trace *tr, const char *path, ms_err *err);

/* Metadata: a process's name, and its sort index (sort_index < 0: none). */
void tg_trace_process(tg_trace *tr, int pid, const char *name, int sort_index);

/* Metadata: stream st of g as a thread of process pid, named after the stream. */
void tg_trace_thread(tg_trace *tr, const tg_graph *g, uint32_t st, int pid);

/* The metadata of a trace with one timeline: process r = "rank r", then every stream. */
void tg_trace_names(tg_trace *tr, const tg_graph *g);

/* Task t of g as a complete event of process pid, from start_us to end_us (both rounded
 * to ns; a negative duration is written as 0): name = label (or op), cat = op, args.id =
 * the task id, and args.source when source is not NULL. */
void tg_trace_task(tg_trace *tr, const tg_graph *g, uint32_t t, int pid, double start_us,
                   double end_us, const char *source);

/* Ends the trace and closes the file. 0, or -1 with err set (a write error). */
int tg_trace_close(tg_trace *tr, ms_err *err);

#endif

/* The discrete-event simulator. Time is double-precision seconds from the start of the
 * run, everywhere in sim/ (traces convert to microseconds). Events are ordered by time,
 * then by a sequence number, so runs are deterministic. Semantics: ir/tg.h, docs/SIM.md. */
#ifndef SIM_H
#define SIM_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"
#include "sim/net.h"

typedef struct sim_engine sim_engine; /* opaque */

/* Creates an engine for a finalized graph on a topology. Compute durations are looked up
 * in db for the topology's device once, here (DELAY tasks need no db; db may be NULL for
 * graphs without compute ops). Fails with err naming the task when a cost is missing or
 * when the graph has more ranks than the topology. g, t and db must outlive the engine. */
sim_engine *sim_create(const tg_graph *g, const topo *t, const cdb *db, const net_ops *net,
                       ms_err *err);
void sim_free(sim_engine *s);

/* Runs to completion. Returns 0, or -1 with err naming stuck tasks if the graph cannot
 * finish (a deadlock the validator could not see). May be called once. */
int sim_run(sim_engine *s, ms_err *err);

/* Results after sim_run. */
typedef struct sim_summary {
    double makespan_s;
    uint32_t tasks;
    uint64_t events;
    double wall_s;        /* simulator wall time of sim_run (engine only) */
    double setup_wall_s;  /* wall time of sim_create (cost lookups) */
    int nranks;
    double *rank_compute_busy_s; /* [nranks] union of compute (and delay) task time */
    double *rank_comm_busy_s;    /* [nranks] union of comm task time while data moves (from
                                    a task's first transfer, or its collective's start, to
                                    its end; time spent waiting for peers is excluded) */
    double *rank_exposed_comm_s; /* [nranks] comm time with no compute running */
    double exposed_comm_s;       /* max over ranks of rank_exposed_comm_s */
    uint32_t nstreams;
    double *stream_busy_s;       /* [nstreams] sum of task durations on each stream */
} sim_summary;
const sim_summary *sim_get_summary(const sim_engine *s);

/* Start and end time of task t (valid after sim_run). */
double sim_task_start(const sim_engine *s, uint32_t t);
double sim_task_end(const sim_engine *s, uint32_t t);

/* Writes the summary as text (a table) or as one JSON object. When tokens > 0 (the
 * tokens the graph processes), throughput_tokens_per_s = tokens / makespan is added;
 * when bound_s > 0 (a lower bound on the makespan, e.g. solver/solve_bound), the bound,
 * the throughput it caps and the gap to it are added. */
void sim_print_summary(const sim_engine *s, FILE *f, double tokens, double bound_s);
void sim_write_json(const sim_engine *s, FILE *f, double tokens, double bound_s);

/* Writes a Chrome/Perfetto trace: pid = rank, tid = stream, ts/dur in us, metadata names.
 * Only tasks overlapping [from_us, to_us) are written (pass 0, INFINITY for all).
 * Byte-identical for identical inputs. */
int sim_write_trace(const sim_engine *s, const char *path, double from_us, double to_us,
                    ms_err *err);

#endif

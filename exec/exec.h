/* exec: runs an IR graph for real, one MPI rank per graph rank. A generic walker issues
 * each rank's tasks in one global order shared by all ranks, through a backend table
 * (host: threads + MPI + OpenBLAS; cuda: streams/events + cuBLAS + NCCL), and gathers a
 * measured timeline on rank 0 in the simulator's units (microseconds from a common start).
 * Public API shared by cli/cmd_exec.c, cli/cmd_validate.c and cli/cmd_calibrate.c. */
#ifndef EX_EXEC_H
#define EX_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "ir/tg.h"

/* ---- MPI session ---------------------------------------------------------------------
 * ex_init calls MPI_Init_thread (MPI_THREAD_MULTIPLE) once per process; the CLI calls it
 * at the start of exec/calibrate/validate and ex_finalize before exiting. Without MPI in
 * the build, ex_init fails with a message saying so. */
int ex_init(int *argc, char ***argv, ms_err *err);
void ex_finalize(void);
int ex_world_rank(void);
int ex_world_size(void);
/* Aborts every rank (MPI_Abort) with the given exit status, after printing msg on
 * stderr prefixed by the rank. Used by the CLI when one rank fails and the others may be
 * blocked in communication. */
void ex_abort(int status, const char *msg);

/* ---- backends ------------------------------------------------------------------------ */

typedef struct ex_backend ex_backend; /* defined in exec/backend.h */

/* The backend named "host" or "cuda", or NULL (with a message listing the known ones and
 * saying when cuda was not built in). Defined in cli/cmd_exec.c, the code compiled with
 * HAVE_CUDA where the cuda backend is linked in (libmoesched.a never references it; the
 * library's own lookup is ex_backend_lookup in exec/backend.h). */
const ex_backend *ex_backend_find(const char *name, ms_err *err);

/* ---- running a graph ----------------------------------------------------------------- */

typedef struct ex_options {
    int check;          /* 1: real MoE forward math on random data, compared with a
                           single-process reference (ex_result.check_*) */
    uint64_t seed;      /* random weights/inputs when check is set */
    double watchdog_s;  /* a task not finished after this long is an error naming the
                           rank, stream and task (0 = default, 60 s) */
    int warmup;         /* untimed runs of the whole graph before the timed one (default 1) */
    const char *model;  /* model name/path the graph was built for (check mode), or NULL */
    int model_layers;   /* check mode: --layers the graph was built with (0 = the model's) */
} ex_options;

/* watchdog 60 s, one warm-up pass, seed 1, no check. Fields are then taken literally
 * (warmup = 0: no warm-up pass). */
void ex_options_defaults(ex_options *o);

/* Measured timeline, gathered on rank 0 (other ranks get ntasks = 0). Times are in
 * microseconds from the earliest task start over all ranks (clocks aligned by an MPI
 * barrier + offset exchange). start_us[t]/end_us[t] are indexed by graph task index. */
typedef struct ex_result {
    uint32_t ntasks;
    double *start_us;
    double *end_us;
    double makespan_us;
    int check_done;          /* check mode ran and compared outputs */
    double check_max_rel_err;/* max |got-ref| / (atol + |ref|) style error, see docs/EXEC.md */
    double check_tolerance;  /* the stated tolerance it was compared against */
    int check_ok;            /* check_max_rel_err <= check_tolerance */
    double clock_err_us;     /* bound on the rank clocks' misalignment (half the worst
                                round trip of the offset exchange), docs/EXEC.md */
} ex_result;

/* Runs graph g (identical on every rank) with backend b. Collective over all ranks: every
 * rank must call it with the same graph. Returns 0 on success; on failure a message naming
 * the rank, and the stream and task where relevant. g->nranks must equal ex_world_size(). */
int ex_run(const tg_graph *g, const ex_backend *b, const ex_options *opt, ex_result *res,
           ms_err *err);
/* ex_run's status when a pass failed on this rank (a task's error, or the watchdog):
 * other ranks may be blocked communicating with it, and threads or requests may be left
 * in flight, so the caller prints the message and calls ex_abort. */
#define EX_STUCK (-2)
void ex_result_release(ex_result *res); /* harmless on a zeroed struct */

/* Writes res as a Chrome/Perfetto trace in the simulator's format (pid = rank, tid =
 * stream, ts/dur in us). */
int ex_write_trace(const tg_graph *g, const ex_result *res, const char *path, ms_err *err);

#endif

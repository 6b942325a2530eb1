/* The backend table of the executors: what the generic walker (exec/walker.c) needs from
 * a machine to run one rank's tasks. CUDA-shaped (streams, events, per-task timestamps),
 * so that the host backend (exec/backend_host.c: threads + MPI + OpenBLAS) and the cuda
 * backend (exec/backend_cuda.cu: streams + events + cuBLAS + NCCL) both fit. C and C++. */
#ifndef EX_BACKEND_H
#define EX_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/exec.h"
#include "ir/tg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Check mode: real data supplied by exec/moe_check.c, in host memory. A backend that
 * does not honour it sets supports_payload = 0 and the walker refuses --check with it.
 * Every hook may be called from any of the backend's stream threads at once, but only
 * for tasks of that thread's stream; the graph's dependencies order the data. */
typedef struct ex_payload {
    void *user;
    /* Runs the real math of a COMPUTE task (in place of the synthetic op). Called on the
     * task's stream when the task runs. NULL: synthetic compute. */
    int (*compute)(void *user, uint32_t task, ms_err *err);
    /* Host memory of transfer x (an index into g->xfer_*) of an XCHG task: the
     * g->xfer_bytes[x] bytes to send, or where to receive them. Called when the task runs
     * (after its deps), so the buffer may be filled by an earlier task. */
    void *(*xfer_buf)(void *user, uint32_t xfer);
    /* Optional side message of transfer x (routing metadata: which expert each row is
     * for), sent and received alongside the transfer's data in the same exchange, on the
     * same communicator under another tag. Sets *buf and *bytes (both sides agree on the
     * size); *buf = NULL: none. NULL hook: never. Not counted in the graph's bytes. */
    void (*xfer_meta)(void *user, uint32_t xfer, void **buf, size_t *bytes);
    /* Host memory of a COLLECTIVE task (allreduce, allgather, reducescatter), called when
     * the task runs: *send and *recv (distinct, never aliased) and *count, the fp32
     * elements of one member's block (allreduce: of the whole vector; allgather: each
     * member's contribution, recv holds count x members; reducescatter: each member's
     * result, send holds count x members). The payload decides the count, so check mode
     * may move more or fewer bytes than the graph's (docs/EXEC.md). Returns 0, or -1 with
     * err set. NULL hook: the backend's synthetic buffers and the graph's bytes. */
    int (*coll_buf)(void *user, uint32_t task, void **send, void **recv, size_t *count,
                    ms_err *err);
} ex_payload;

/* What setup receives. Everything is borrowed and outlives the context. */
typedef struct ex_setup {
    const tg_graph *g;         /* finalized, identical on every rank */
    int rank;                  /* this process's graph rank (= its world rank) */
    const ex_payload *payload; /* NULL: synthetic data (timing runs) */
    uint64_t seed;             /* fill of the synthetic buffers */
} ex_setup;

/* A backend. Per-run state lives in an opaque context made by setup. Unless stated, the
 * functions return 0, or -1 with err set naming the rank, the stream and the task (with
 * its label when it has one). The walker calls them from one thread, in this order:
 *   setup, then per pass (warm-up passes and the timed one):
 *     begin, then for each of this rank's tasks in graph (file) order:
 *       wait (for each dep on another stream), enqueue_compute or enqueue_comm, record;
 *     synchronize, times (for each task);
 *   teardown (always, also after a failure). */
struct ex_backend {
    const char *name;     /* "host", "cuda" */
    int supports_payload; /* 1: honours ex_setup.payload (check mode) */

    /* Name of this machine's device for calibration's default (`host-cpu`, or the GPU's
     * model, e.g. "NVIDIA H100 80GB HBM3"). Needs no setup. Writes a NUL-terminated
     * string of at most len bytes. */
    int (*device_name)(char *buf, size_t len, ms_err *err);

    /* Creates the context for s->g on rank s->rank: one queue (host thread / CUDA stream)
     * per stream of this rank; one communicator per comm stream name (xchg) and per
     * (stream name, group) with collectives on it; one completion event per task; the
     * buffers, sized by the largest task of each stream (nothing allocated per task
     * later). Collective over the world: every rank calls it with the same graph, and
     * communicators are created in the same order everywhere. */
    int (*setup)(const ex_setup *s, void **ctx, ms_err *err);

    /* Starts a pass over the graph: resets the task events and marks the pass's epoch,
     * the zero of times(). The walker calls it right after a world barrier and reads its
     * own clock (ex_clock_s) just before. cuda: device synchronize, then an epoch event. */
    int (*begin)(void *ctx, ms_err *err);

    /* Appends a DELAY or COMPUTE task (a task index of this rank) to its stream's queue.
     * Asynchronous: returns once queued. The task is bracketed by timestamps. */
    int (*enqueue_compute)(void *ctx, uint32_t task, ms_err *err);
    /* Appends an XCHG (all its sends and receives as one group, ncclGroupStart/End or
     * Isend/Irecv + wait) or a collective (allreduce/allgather/reducescatter on the
     * communicator of (stream name, group)) to its stream. Asynchronous. */
    int (*enqueue_comm)(void *ctx, uint32_t task, ms_err *err);

    /* Records task's completion event on its stream, after the task (cudaEventRecord). */
    int (*record)(void *ctx, uint32_t task, ms_err *err);
    /* Makes `stream` (a global stream index of this rank) wait, before its next enqueued
     * task, for the completion event of dep_task (a task of this rank on another stream,
     * already recorded in this pass): cudaStreamWaitEvent. */
    int (*wait)(void *ctx, uint32_t stream, uint32_t dep_task, ms_err *err);

    /* Waits until every queued task of the pass has finished, for at most timeout_s
     * seconds of wall time. On expiry returns -1 with a message "watchdog: rank R: after
     * S s, stream NAME is stuck on task ID (LABEL): <running|waiting for task ID on
     * stream NAME|...>" for each unfinished stream. A failed task's own error is returned
     * the same way. */
    int (*synchronize)(void *ctx, double timeout_s, ms_err *err);

    /* Start and end of a finished task of the last pass, in microseconds since that
     * pass's begin (the backend's clock; the walker aligns ranks). */
    int (*times)(void *ctx, uint32_t task, double *start_us, double *end_us, ms_err *err);

    /* Frees the context (NULL harmless). Returns 0 when everything was released, 1 when
     * something had to be abandoned (a thread or request stuck after a watchdog expiry):
     * the process must then be aborted (ex_abort) rather than finalized. */
    int (*teardown)(void *ctx);
};

/* The walker's clock: CLOCK_MONOTONIC in seconds (shared by the processes of one host). */
double ex_clock_s(void);

/* Finds "host" or cuda (passed by the caller, NULL when not built in: libmoesched.a
 * never references the cuda backend, see exec/backend_cuda.h) by name. */
const ex_backend *ex_backend_lookup(const char *name, const ex_backend *cuda, ms_err *err);

extern const ex_backend ex_backend_host;

/* A one-line description of task t for messages: "task ID (LABEL) on rank R stream NAME",
 * into buf (len bytes); returns buf. */
const char *ex_task_desc(const tg_graph *g, uint32_t t, char *buf, size_t len);

/* The communicator task t runs on, named the same on every rank: its stream's name and,
 * for a collective, its group (-1 for an xchg: the name's world). Returns 0 when t is not
 * a comm task (name and group untouched), 1 otherwise. (exec/backend_common.c) */
int ex_task_comm(const tg_graph *g, uint32_t t, const char **name, int *group);

#ifdef __cplusplus
}
#endif

#endif

/* exec's only window on MPI. Every MPI call of the executors goes through the small
 * wrappers below (implemented in exec/ex_mpi.c, the one .c file that includes <mpi.h>),
 * so that a build without MPI still compiles: ex_init then fails saying so. Each wrapper
 * returns 0 or -1 with a message giving file:line, the world rank and MPI's own text. */
#ifndef EX_MPI_H
#define EX_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#ifdef HAVE_MPI
#define EX_HAVE_MPI 1
#else
#define EX_HAVE_MPI 0
#endif

/* ---- communicators -------------------------------------------------------------------- */

typedef struct ex_comm ex_comm; /* one MPI communicator (opaque) */

/* A duplicate of MPI_COMM_WORLD (collective over the world). */
int ex_comm_dup_world(ex_comm **out, ms_err *err);
/* MPI_Comm_split of the world (collective over the world): ranks passing the same
 * color >= 0 get one communicator, ordered by key; color < 0 gets *out = NULL. */
int ex_comm_split_world(int color, int key, ex_comm **out, ms_err *err);
void ex_comm_free(ex_comm *c); /* NULL is harmless */
int ex_comm_rank(const ex_comm *c);
int ex_comm_size(const ex_comm *c);

/* ---- non-blocking operations, completed by polling ------------------------------------ */

typedef struct ex_reqs ex_reqs; /* a set of outstanding requests (opaque) */

ex_reqs *ex_reqs_create(int cap); /* NULL when out of memory */
void ex_reqs_free(ex_reqs *r);    /* NULL is harmless; the set must be empty */
/* bytes must fit an int (the wrappers say so otherwise); tags >= 0. */
int ex_isend(ex_comm *c, const void *buf, size_t bytes, int peer, int tag, ex_reqs *r,
             ms_err *err);
int ex_irecv(ex_comm *c, void *buf, size_t bytes, int peer, int tag, ex_reqs *r, ms_err *err);
/* Collectives on c. in may equal out only where MPI_IN_PLACE would be needed: not here;
 * pass distinct buffers. Counts are fp32 elements (allreduce/reducescatter: sum) or bytes
 * (allgather: each rank's piece; out holds size x bytes). */
int ex_iallreduce_f32(ex_comm *c, const float *in, float *out, size_t n, ex_reqs *r,
                      ms_err *err);
int ex_iallgather(ex_comm *c, const void *in, size_t bytes, void *out, ex_reqs *r,
                  ms_err *err);
int ex_ireducescatter_f32(ex_comm *c, const float *in, float *out, size_t n_per_rank,
                          ex_reqs *r, ms_err *err);
/* Tests every outstanding request: *done = 1 (and the set emptied) when all completed. */
int ex_reqs_test(ex_reqs *r, int *done, ms_err *err);
/* Abandons outstanding requests (after a watchdog expiry): frees the handles where MPI
 * allows. The process should then be aborted rather than finalized. */
void ex_reqs_abandon(ex_reqs *r);

/* ---- world-wide helpers (blocking) ---------------------------------------------------- */

int ex_barrier(ms_err *err);
int ex_bcast(void *buf, size_t bytes, int root, ms_err *err);
/* out[0..n) = elementwise max (or min, or sum) over the world of in[0..n); in may equal out. */
int ex_allreduce_max_i64(const int64_t *in, int64_t *out, int n, ms_err *err);
int ex_allreduce_min_i64(const int64_t *in, int64_t *out, int n, ms_err *err);
int ex_allreduce_sum_f64(const double *in, double *out, int n, ms_err *err);
/* Rank 0 receives every rank's n doubles into out[rank*n ...] (out only read on rank 0). */
int ex_gather_f64(const double *in, int n, double *out, ms_err *err);
/* Blocking point-to-point on the world (small messages: clock exchange, test harness). */
int ex_send_f64(const double *buf, int n, int peer, int tag, ms_err *err);
int ex_recv_f64(double *buf, int n, int peer, int tag, ms_err *err);

/* Blocking bytes on the world (gathering check-mode results on rank 0). */
int ex_send_bytes(const void *buf, size_t bytes, int peer, int tag, ms_err *err);
int ex_recv_bytes(void *buf, size_t bytes, int peer, int tag, ms_err *err);

/* MPI_Wtime in seconds, or 0 without MPI. */
double ex_mpi_wtime(void);

#endif

/* The MPI session of the executors and the wrappers of exec/ex_mpi.h: the only file that
 * includes <mpi.h>. Without MPI in the build, ex_init fails with a message saying so and
 * every wrapper fails the same way (they are never reached past a failed ex_init). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "exec/ex_mpi.h"
#include "exec/exec.h"

#define NO_MPI_MSG                                                                      \
    "moesched was built without MPI: install Open MPI (libopenmpi-dev) and rebuild to " \
    "use exec, calibrate and validate"

#if EX_HAVE_MPI
#include <mpi.h>

/* One checking macro for MPI calls: file:line, rank, MPI_Error_string. */
#define MPI_CHECK(err, call)                                                             \
    do {                                                                                 \
        int mpi_rc_ = (call);                                                            \
        if (mpi_rc_ != MPI_SUCCESS) return mpi_fail((err), mpi_rc_, #call, __FILE__, __LINE__); \
    } while (0)

static int we_initialized;

static int mpi_fail(ms_err *err, int rc, const char *what, const char *file, int line)
{
    char buf[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) snprintf(buf, sizeof buf, "code %d", rc);
    return ms_err_set(err, "%s:%d: rank %d: %s failed: %s", file, line, ex_world_rank(), what,
                      buf);
}

static int mpi_live(void)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    return inited && !finalized;
}

int ex_init(int *argc, char ***argv, ms_err *err)
{
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        MPI_CHECK(err, MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
        we_initialized = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    /* errors come back as codes so that MPI_CHECK can name them */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (provided < MPI_THREAD_MULTIPLE)
        return ms_err_set(err, "MPI provides thread level %d, exec needs MPI_THREAD_MULTIPLE "
                               "(%d): use an MPI built with thread support",
                          provided, MPI_THREAD_MULTIPLE);
    return 0;
}

void ex_finalize(void)
{
    if (we_initialized && mpi_live()) MPI_Finalize();
}

int ex_world_rank(void)
{
    int r = 0;
    if (mpi_live()) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int ex_world_size(void)
{
    int n = 1;
    if (mpi_live()) MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

void ex_abort(int status, const char *msg)
{
    if (msg && *msg) fprintf(stderr, "moesched: rank %d: %s\n", ex_world_rank(), msg);
    fflush(stdout);
    fflush(stderr);
    if (mpi_live()) MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

double ex_mpi_wtime(void) { return MPI_Wtime(); }

/* ---- communicators ---- */

struct ex_comm {
    MPI_Comm comm;
};

static int comm_wrap(MPI_Comm c, ex_comm **out, ms_err *err)
{
    ex_comm *e = malloc(sizeof *e);
    if (!e) {
        MPI_Comm_free(&c);
        return ms_err_set(err, "out of memory for a communicator");
    }
    MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN);
    e->comm = c;
    *out = e;
    return 0;
}

int ex_comm_dup_world(ex_comm **out, ms_err *err)
{
    MPI_Comm c;
    *out = NULL;
    MPI_CHECK(err, MPI_Comm_dup(MPI_COMM_WORLD, &c));
    return comm_wrap(c, out, err);
}

int ex_comm_split_world(int color, int key, ex_comm **out, ms_err *err)
{
    MPI_Comm c;
    *out = NULL;
    MPI_CHECK(err, MPI_Comm_split(MPI_COMM_WORLD, color < 0 ? MPI_UNDEFINED : color, key, &c));
    if (c == MPI_COMM_NULL) return 0;
    return comm_wrap(c, out, err);
}

void ex_comm_free(ex_comm *c)
{
    if (!c) return;
    if (mpi_live()) MPI_Comm_free(&c->comm);
    free(c);
}

int ex_comm_rank(const ex_comm *c)
{
    int r = -1;
    MPI_Comm_rank(c->comm, &r);
    return r;
}

int ex_comm_size(const ex_comm *c)
{
    int n = 0;
    MPI_Comm_size(c->comm, &n);
    return n;
}

/* ---- requests ---- */

struct ex_reqs {
    int n, cap;
    MPI_Request *req;
};

ex_reqs *ex_reqs_create(int cap)
{
    if (cap < 1) cap = 1;
    ex_reqs *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->req = malloc((size_t)cap * sizeof *r->req);
    if (!r->req) {
        free(r);
        return NULL;
    }
    r->cap = cap;
    return r;
}

void ex_reqs_free(ex_reqs *r)
{
    if (!r) return;
    free(r->req);
    free(r);
}

static MPI_Request *reqs_slot(ex_reqs *r, ms_err *err)
{
    if (r->n == r->cap) {
        int cap = 2 * r->cap;
        MPI_Request *q = realloc(r->req, (size_t)cap * sizeof *q);
        if (!q) {
            ms_err_set(err, "out of memory for %d MPI requests", cap);
            return NULL;
        }
        r->req = q;
        r->cap = cap;
    }
    return &r->req[r->n++];
}

static int count_of(size_t n, const char *what, ms_err *err)
{
    if (n > (size_t)INT_MAX)
        return ms_err_set(err, "%s of %zu elements exceeds MPI's int count (%d)", what, n,
                          INT_MAX);
    return 0;
}

int ex_isend(ex_comm *c, const void *buf, size_t bytes, int peer, int tag, ex_reqs *r,
             ms_err *err)
{
    if (count_of(bytes, "send", err)) return -1;
    MPI_Request *q = reqs_slot(r, err);
    if (!q) return -1;
    MPI_CHECK(err, MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, q));
    return 0;
}

int ex_irecv(ex_comm *c, void *buf, size_t bytes, int peer, int tag, ex_reqs *r, ms_err *err)
{
    if (count_of(bytes, "receive", err)) return -1;
    MPI_Request *q = reqs_slot(r, err);
    if (!q) return -1;
    MPI_CHECK(err, MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, tag, c->comm, q));
    return 0;
}

int ex_iallreduce_f32(ex_comm *c, const float *in, float *out, size_t n, ex_reqs *r,
                      ms_err *err)
{
    if (count_of(n, "allreduce", err)) return -1;
    MPI_Request *q = reqs_slot(r, err);
    if (!q) return -1;
    MPI_CHECK(err, MPI_Iallreduce(in, out, (int)n, MPI_FLOAT, MPI_SUM, c->comm, q));
    return 0;
}

int ex_iallgather(ex_comm *c, const void *in, size_t bytes, void *out, ex_reqs *r, ms_err *err)
{
    if (count_of(bytes, "allgather", err)) return -1;
    MPI_Request *q = reqs_slot(r, err);
    if (!q) return -1;
    MPI_CHECK(err, MPI_Iallgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, c->comm, q));
    return 0;
}

int ex_ireducescatter_f32(ex_comm *c, const float *in, float *out, size_t n_per_rank,
                          ex_reqs *r, ms_err *err)
{
    if (count_of(n_per_rank, "reducescatter", err)) return -1;
    MPI_Request *q = reqs_slot(r, err);
    if (!q) return -1;
    MPI_CHECK(err, MPI_Ireduce_scatter_block(in, out, (int)n_per_rank, MPI_FLOAT, MPI_SUM,
                                             c->comm, q));
    return 0;
}

int ex_reqs_test(ex_reqs *r, int *done, ms_err *err)
{
    int flag = 0;
    *done = 0;
    if (r->n == 0) {
        *done = 1;
        return 0;
    }
    MPI_CHECK(err, MPI_Testall(r->n, r->req, &flag, MPI_STATUSES_IGNORE));
    if (flag) {
        r->n = 0;
        *done = 1;
    }
    return 0;
}

void ex_reqs_abandon(ex_reqs *r)
{
    if (!r) return;
    /* Receives can be cancelled; sends and collectives cannot be reliably: the caller
     * aborts the job afterwards, so the handles are simply dropped. */
    r->n = 0;
}

/* ---- world helpers ---- */

int ex_barrier(ms_err *err)
{
    MPI_CHECK(err, MPI_Barrier(MPI_COMM_WORLD));
    return 0;
}

int ex_bcast(void *buf, size_t bytes, int root, ms_err *err)
{
    if (count_of(bytes, "broadcast", err)) return -1;
    MPI_CHECK(err, MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD));
    return 0;
}

int ex_allreduce_max_i64(const int64_t *in, int64_t *out, int n, ms_err *err)
{
    MPI_CHECK(err, MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, n, MPI_INT64_T, MPI_MAX,
                                 MPI_COMM_WORLD));
    return 0;
}

int ex_allreduce_min_i64(const int64_t *in, int64_t *out, int n, ms_err *err)
{
    MPI_CHECK(err, MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, n, MPI_INT64_T, MPI_MIN,
                                 MPI_COMM_WORLD));
    return 0;
}

int ex_allreduce_sum_f64(const double *in, double *out, int n, ms_err *err)
{
    MPI_CHECK(err, MPI_Allreduce(in == out ? MPI_IN_PLACE : in, out, n, MPI_DOUBLE, MPI_SUM,
                                 MPI_COMM_WORLD));
    return 0;
}

int ex_gather_f64(const double *in, int n, double *out, ms_err *err)
{
    MPI_CHECK(err, MPI_Gather(in, n, MPI_DOUBLE, out, n, MPI_DOUBLE, 0, MPI_COMM_WORLD));
    return 0;
}

int ex_send_bytes(const void *buf, size_t bytes, int peer, int tag, ms_err *err)
{
    if (count_of(bytes, "send", err)) return -1;
    MPI_CHECK(err, MPI_Send(buf, (int)bytes, MPI_BYTE, peer, tag, MPI_COMM_WORLD));
    return 0;
}

int ex_recv_bytes(void *buf, size_t bytes, int peer, int tag, ms_err *err)
{
    if (count_of(bytes, "receive", err)) return -1;
    MPI_CHECK(err, MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, tag, MPI_COMM_WORLD,
                            MPI_STATUS_IGNORE));
    return 0;
}

#else /* no MPI: every entry point fails or is harmless */

int ex_init(int *argc, char ***argv, ms_err *err)
{
    (void)argc;
    (void)argv;
    return ms_err_set(err, NO_MPI_MSG);
}

void ex_finalize(void) {}
int ex_world_rank(void) { return 0; }
int ex_world_size(void) { return 1; }
double ex_mpi_wtime(void) { return 0; }

void ex_abort(int status, const char *msg)
{
    if (msg && *msg) fprintf(stderr, "moesched: %s\n", msg);
    fflush(stdout);
    fflush(stderr);
    exit(status);
}

struct ex_comm {
    int unused;
};
struct ex_reqs {
    int unused;
};

int ex_comm_dup_world(ex_comm **out, ms_err *err)
{
    *out = NULL;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_comm_split_world(int color, int key, ex_comm **out, ms_err *err)
{
    (void)color;
    (void)key;
    *out = NULL;
    return ms_err_set(err, NO_MPI_MSG);
}
void ex_comm_free(ex_comm *c) { free(c); }
int ex_comm_rank(const ex_comm *c) { (void)c; return 0; }
int ex_comm_size(const ex_comm *c) { (void)c; return 1; }
ex_reqs *ex_reqs_create(int cap) { (void)cap; return calloc(1, sizeof(ex_reqs)); }
void ex_reqs_free(ex_reqs *r) { free(r); }
void ex_reqs_abandon(ex_reqs *r) { (void)r; }
int ex_isend(ex_comm *c, const void *buf, size_t bytes, int peer, int tag, ex_reqs *r,
             ms_err *err)
{
    (void)c, (void)buf, (void)bytes, (void)peer, (void)tag, (void)r;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_irecv(ex_comm *c, void *buf, size_t bytes, int peer, int tag, ex_reqs *r, ms_err *err)
{
    (void)c, (void)buf, (void)bytes, (void)peer, (void)tag, (void)r;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_iallreduce_f32(ex_comm *c, const float *in, float *out, size_t n, ex_reqs *r,
                      ms_err *err)
{
    (void)c, (void)in, (void)out, (void)n, (void)r;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_iallgather(ex_comm *c, const void *in, size_t bytes, void *out, ex_reqs *r, ms_err *err)
{
    (void)c, (void)in, (void)bytes, (void)out, (void)r;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_ireducescatter_f32(ex_comm *c, const float *in, float *out, size_t n_per_rank,
                          ex_reqs *r, ms_err *err)
{
    (void)c, (void)in, (void)out, (void)n_per_rank, (void)r;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_reqs_test(ex_reqs *r, int *done, ms_err *err)
{
    (void)r;
    *done = 0;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_barrier(ms_err *err) { return ms_err_set(err, NO_MPI_MSG); }
int ex_bcast(void *buf, size_t bytes, int root, ms_err *err)
{
    (void)buf, (void)bytes, (void)root;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_allreduce_max_i64(const int64_t *in, int64_t *out, int n, ms_err *err)
{
    (void)in, (void)out, (void)n;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_allreduce_min_i64(const int64_t *in, int64_t *out, int n, ms_err *err)
{
    (void)in, (void)out, (void)n;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_allreduce_sum_f64(const double *in, double *out, int n, ms_err *err)
{
    (void)in, (void)out, (void)n;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_gather_f64(const double *in, int n, double *out, ms_err *err)
{
    (void)in, (void)n, (void)out;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_send_bytes(const void *buf, size_t bytes, int peer, int tag, ms_err *err)
{
    (void)buf, (void)bytes, (void)peer, (void)tag;
    return ms_err_set(err, NO_MPI_MSG);
}
int ex_recv_bytes(void *buf, size_t bytes, int peer, int tag, ms_err *err)
{
    (void)buf, (void)bytes, (void)peer, (void)tag;
    return ms_err_set(err, NO_MPI_MSG);
}

#endif

/* With MPI or without: doubles travel as their bytes (the ranks share one architecture). */
int ex_send_f64(const double *buf, int n, int peer, int tag, ms_err *err)
{
    return ex_send_bytes(buf, (size_t)n * sizeof *buf, peer, tag, err);
}

int ex_recv_f64(double *buf, int n, int peer, int tag, ms_err *err)
{
    return ex_recv_bytes(buf, (size_t)n * sizeof *buf, peer, tag, err);
}

/* Calibration: microbenchmarks run as small task graphs through ex_run (so the host and cuda
 * backends are timed exactly as they execute real graphs), fits of the simulator's model
 * forms, and one transactional write of measurements and models into a cost database.
 * Used by `moesched calibrate`; grid, forms and outputs: docs/CALIBRATION.md. */
#ifndef EX_CALIBRATE_H
#define EX_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "costdb/cdb.h"
#include "exec/exec.h"
#include "ir/tg.h"

#ifdef HAVE_MPI
#include <mpi.h>
/* The MPI library's version line (MPI_Get_library_version), for calibration_run.versions. */
static inline void ex_calib_mpi_version(char *buf, size_t len)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    if (MPI_Get_library_version(v, &n) != MPI_SUCCESS) n = 0;
    v[n < MPI_MAX_LIBRARY_VERSION_STRING ? n : MPI_MAX_LIBRARY_VERSION_STRING - 1] = '\0';
    snprintf(buf, len, "%.*s", (int)strcspn(v, "\n,"), v);
}
#else
static inline void ex_calib_mpi_version(char *buf, size_t len) { snprintf(buf, len, "no MPI"); }
#endif

#define EX_CALIB_MAX_ARGS 8

/* One measured point: a compute op at one shape, or a comm op at one size and group. */
typedef struct ex_calib_point {
    char op[16];                       /* IR op name: gemm attn ffn gate xchg allreduce ... */
    int64_t args[EX_CALIB_MAX_ARGS];   /* compute: the op's shape args (IR order) */
    int nargs;
    int nranks;                        /* comm: ranks in the group (xchg: 2) */
    double bytes;                      /* comm: the IR's bytes (per rank); compute: cdb_work_of */
    double x;                          /* compute: FLOPs (cdb_feature); comm: bytes */
    double mean_s, median_s, min_s, max_s; /* over the timed trials; the median is the
                                              point's time (fits, the database's time_s) */
    int trials;
    int from_graph;                    /* a shape taken from --graph (not the grid) */
} ex_calib_point;

typedef struct ex_calib_options {
    int quick;          /* the small grid for tests (a few seconds) */
    int warmup, timed;  /* trials per point (0: defaults 10 and 20; warmup < 0: none) */
    /* Optional graph whose distinct compute shapes are measured too (per-shape points;
     * the models are then piecewise through them). May be NULL. */
    const tg_graph *shapes;
    FILE *log; /* progress lines on rank 0, or NULL */
} ex_calib_options;

typedef struct ex_calib_result {
    ex_calib_point *pt; /* rank 0: every point, in measurement order; others: none */
    size_t n;
    double wall_s;      /* time spent measuring */
} ex_calib_result;

/* Runs every microbenchmark with backend b. Collective over all ranks (each builds the
 * same graphs); needs at least 2 ranks for the comm benchmarks (with 1, comm is skipped).
 * On rank 0 fills res. Returns 0, or -1 with err naming the point that failed, or EX_STUCK
 * (ex_run's) when the process must be aborted rather than finalized. */
int ex_calib_measure(const ex_backend *b, const ex_calib_options *o, ex_calib_result *res,
                     ms_err *err);
void ex_calib_result_release(ex_calib_result *res); /* harmless on a zeroed struct */

/* A fit of one compute op: the chosen form and the rows to write. */
typedef struct ex_calib_fit {
    char op[16];
    int npoints;
    double alpha_s, beta_s, r2;     /* linear fit (relative least squares, beta >= 0) */
    /* errors are means of |ln(predicted / measured)| (symmetric in over/under-estimates) */
    double loo_linear, loo_piecewise; /* leave-one-out, of each own form */
    double composed_err;            /* ffn, gate: composed from the gemm fit (or NAN) */
    /* roofline (4 or more points): t = alpha + max((F + f_half)/(peak eff_max),
     * B/(bw bw_eff)) against the run's peak_flops and mem_bw below */
    double roof_alpha_s, eff_max, f_half_flops, bw_eff, loo_roofline; /* NAN when not fitted */
    double peak_flops, mem_bw_bytes_per_s; /* the best FLOP and byte rates (bytes as
                                              cdb_work_of counts them) over all compute
                                              points of the run */
    const char *chosen;             /* "linear", "piecewise", "roofline" or "composed" */
    double x_min, x_max;
} ex_calib_fit;

/* Comm alpha-beta fit of one op at one group size: t = alpha + beta x bytes. */
typedef struct ex_calib_comm_fit {
    char op[16];
    int nranks;
    double alpha_s, beta_s_per_byte, r2;
} ex_calib_comm_fit;

/* Fits every compute op and comm op found in res (rank 0). fits/cfits are heap arrays the
 * caller frees. */
int ex_calib_fit_all(const ex_calib_result *res, int force_piecewise, ex_calib_fit **fits,
                 size_t *nfits, ex_calib_comm_fit **cfits, size_t *ncfits, ms_err *err);

/* Prints the comm points in nccl-tests' columns (size, count, type, time, algbw, busbw)
 * per op and group size, and the fits. */
void ex_calib_print_comm(const ex_calib_result *res, FILE *f);
/* Prints the compute points and fits. */
void ex_calib_print_compute(const ex_calib_result *res, const ex_calib_fit *fits,
                            size_t nfits, FILE *f);

/* nccl-tests' bus-bandwidth factor of op over n ranks: allreduce 2(n-1)/n, allgather and
 * reducescatter (n-1)/n, xchg 1. And the "size" column: the IR's per-rank bytes times n
 * for allgather/reducescatter (the whole buffer), as is for the others. */
double ex_calib_busbw_factor(const char *op, int n);
double ex_calib_nccl_size(const char *op, int n, double bytes);

/* Writes res and its fits into the database at db_path in one transaction (cdb_writer:
 * created from seed_files when missing, refused untouched when not a cost database):
 * a calibration_run row, the device (if new), every measurement, the compute models
 * (source measured; see ex_calib_fit) and the comm fits. cancelled (may be NULL) is
 * asked just before the commit: when it returns non-zero nothing is written and the
 * call fails with "interrupted". *run_id receives the new run's id. */
int ex_calib_write(const char *db_path, const char *const *seed_files, int nseed,
                   const cdb_run_row *run, const char *device, const char *device_kind,
                   const ex_calib_result *res, const ex_calib_fit *fits, size_t nfits,
                   const ex_calib_comm_fit *cfits, size_t ncfits, int (*cancelled)(void),
                   int64_t *run_id, ms_err *err);

#endif

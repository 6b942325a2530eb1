/* The cost database: an SQLite file of devices, links, calibration runs, measurements and
 * fitted cost models, each model tagged with its source (measured | paper | datasheet).
 * Opening loads every model into memory, so cost queries never touch SQL.
 * Schema and model forms: docs/COSTDB.md. */
#ifndef CDB_H
#define CDB_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define CDB_SCHEMA_VERSION 2

typedef struct cdb cdb; /* opaque handle */

/* Opens an existing database read-only and loads its models. Fails, with a message
 * naming the file, if it is missing, not an SQLite database, corrupt, or of another
 * schema version. */
cdb *cdb_open(const char *path, ms_err *err);
void cdb_close(cdb *db); /* NULL is harmless */

/* Creates a new database at path from the schema plus the given .sql seed files (executed
 * in order, in one transaction). It is built in "<path>.tmp" and renamed over path only on
 * success, so a failure leaves any existing file untouched. Errors name the .sql file. */
int cdb_build(const char *path, const char *const *sql_files, int nfiles, ms_err *err);
/* Removes a temporary database and whatever journal SQLite may have left beside it
 * (tmp-journal, -wal, -shm): the scratch copies of cdb_build and the writer below. */
void cdb_remove_tmp(const char *tmp);

/* The feature x a model is a function of, computed from an op's shape args (in the order
 * of the IR op table): the op's FLOPs (gemm: x = 2*m*n*k*count; attn, ffn, gate: see
 * docs/COSTDB.md). Returns 0, or -1 for an op that has no cost feature (with err naming
 * the op). */
int cdb_feature(const char *op, const int64_t *args, int nargs, double *x, ms_err *err);

/* The work of one op: FLOPs (the feature x above) and bytes moved to or from device
 * memory (bf16, 2 bytes per element), as the roofline form needs both. */
typedef struct cdb_work {
    double flops, bytes;
} cdb_work;
int cdb_work_of(const char *op, const int64_t *args, int nargs, cdb_work *w, ms_err *err);

/* Time in seconds of `op` with shape args on `device`. Uses the best model for
 * (device, op): measured over paper over datasheet, newest first within a source.
 * Linear: alpha + beta*x. Piecewise: linear interpolation over the measured points,
 * extrapolated along the end segments. Roofline: alpha + max(FLOPs/(peak*eff(FLOPs)),
 * bytes/(mem_bw*bw_eff)) with eff(F) = eff_max*F/(F + f_half). ffn and gate without a
 * model of their own (or with one of a worse source than the device's gemm model) are
 * composed from the gemm model: ffn = gemms*experts GEMMs of m = tokens/experts, n =
 * inter, k = hidden (0 when tokens = 0); gate = one GEMM m = tokens, n = experts, k =
 * hidden. Returns 0, or -1 with err naming the device and op (and which devices do have
 * a model for the op) when nothing covers the request. */
int cdb_time(const cdb *db, const char *device, const char *op, const int64_t *args,
             int nargs, double *seconds, ms_err *err);

/* Does the database know this device at all? */
int cdb_has_device(const cdb *db, const char *device);

/* Memory of one device in bytes (column memory_bytes). Returns 0, or -1 with err when the
 * device is unknown or its memory is not recorded. */
int cdb_device_memory(const cdb *db, const char *device, double *bytes, ms_err *err);

/* The model chosen for (device, op), for reports. Returns NULL if none. The record and its
 * strings belong to db and live until cdb_close. For a piecewise model alpha_s and
 * beta_s_per_x are the row's values (0 when NULL; they are not used to compute times) and
 * x_min/x_max default to the first and last point. */
typedef struct cdb_model_info {
    const char *device, *op;
    const char *form;   /* "linear" | "piecewise" | "roofline" */
    const char *source; /* "measured" | "paper" | "datasheet" */
    double alpha_s, beta_s_per_x;
    double x_min, x_max; /* range the model was fitted on (0,0 if unknown) */
    int npoints;         /* piecewise: number of points */
    const char *citation;
    /* roofline only (0 otherwise): the curve and the device figures it uses */
    double eff_max, f_half_flops, bw_eff;
    double peak_flops, mem_bw_bytes_per_s;
} cdb_model_info;
const cdb_model_info *cdb_model(const cdb *db, const char *device, const char *op);

/* The model cdb_time uses for (device, op): the op's own model, or, for an op costed by
 * composition (ffn, gate), the device's gemm model, with *composed set to 1. NULL when
 * cdb_time would fail. composed may be NULL. */
const cdb_model_info *cdb_model_used(const cdb *db, const char *device, const char *op,
                                     int *composed);

/* Published or measured communication fits t = alpha_s + beta_s_per_byte * bytes (table
 * comm_model), e.g. FinDEP's A2E fits per (ag, eg) split; ag/eg are 0 when not given. */
typedef struct cdb_comm_info {
    const char *device, *op; /* op: e.g. "a2e" */
    int ag, eg;
    double alpha_s, beta_s_per_byte;
    const char *source, *citation, *note;
} cdb_comm_info;
size_t cdb_comm_count(const cdb *db);
const cdb_comm_info *cdb_comm_get(const cdb *db, size_t i); /* NULL past the end */
/* The fit for (device, op, ag, eg), best source first, newest within a source; NULL if
 * none. */
const cdb_comm_info *cdb_comm_find(const cdb *db, const char *device, const char *op, int ag,
                                   int eg);

/* Lists devices, links and models with their sources, for `moesched db`. */
void cdb_print(const cdb *db, FILE *f);
/* The same as one JSON object (NULL columns as null), for `moesched db --json`. */
void cdb_print_json(const cdb *db, FILE *f);

const char *cdb_path(const cdb *db);

/* ---- writing (costdb/cdb_write.c) ----------------------------------------------------
 * Calibration results go into a database all at once or not at all. cdb_writer_begin
 * checks that an existing path is a moesched cost database of this schema (anything else
 * is refused and left untouched) and copies it to "<path>.wtmp"; a missing path is built
 * there from the schema plus seed_files (e.g. the default profiles). Every row then goes
 * into that copy inside one transaction; cdb_writer_commit commits, checks the copy opens
 * (cdb_open), and renames it over path; cdb_writer_abort (or a crash) leaves path as it
 * was (a stale .wtmp is removed by the next begin). Both free the writer. Rows written
 * here have source 'measured' and refer to the run. */
typedef struct cdb_writer cdb_writer;

typedef struct cdb_run_row {
    const char *host, *date, *backend, *versions, *note; /* any may be NULL */
} cdb_run_row;

typedef struct cdb_measurement_row {
    const char *device, *op, *shape; /* shape: the op's args as in the IR, e.g. "m=8 n=8" */
    double x;                        /* the op's feature (cdb_feature), or bytes for comm */
    double bytes;                    /* bytes moved, NAN when not recorded */
    double time_s;                   /* time per call: the median of the timed trials */
    int trials;
} cdb_measurement_row;

typedef struct cdb_model_row {
    const char *device, *op;
    const char *form;       /* "linear" (alpha_s, beta_s), "piecewise" (the run's points) or
                               "roofline" (alpha_s and the curve below, against the device
                               row's peak_flops and mem_bw_bytes_per_s) */
    double alpha_s, beta_s; /* alpha: linear and roofline; beta: linear only */
    double x_min, x_max;    /* fitted range of x */
    double r2;              /* fit quality (<= 1), NAN when unknown */
    const char *note;
    double eff_max, f_half_flops, bw_eff; /* roofline only */
} cdb_model_row;

typedef struct cdb_comm_row {
    const char *device, *op; /* op: "xchg", "allreduce", ... */
    double alpha_s, beta_s_per_byte, r2;
    const char *note;
} cdb_comm_row;

cdb_writer *cdb_writer_begin(const char *path, const char *const *seed_files, int nseed,
                             ms_err *err);
/* The copy being written ("<path>.wtmp"). */
const char *cdb_writer_tmp_path(const cdb_writer *w);
int cdb_writer_run(cdb_writer *w, const cdb_run_row *r, int64_t *run_id, ms_err *err);
/* Adds device `name` (kind "cpu" or "gpu", source measured) unless it is already there. */
int cdb_writer_device(cdb_writer *w, const char *name, const char *kind, const char *note,
                      ms_err *err);
int cdb_writer_measurement(cdb_writer *w, int64_t run_id, const cdb_measurement_row *m,
                           ms_err *err);
int cdb_writer_model(cdb_writer *w, int64_t run_id, const cdb_model_row *m, int64_t *id,
                     ms_err *err);
int cdb_writer_comm(cdb_writer *w, int64_t run_id, const cdb_comm_row *c, ms_err *err);
/* Records measured peak figures in device `name`'s row (source becomes measured, note
 * replaced): what roofline models of the device divide by. */
int cdb_writer_device_figures(cdb_writer *w, const char *name, double peak_flops,
                              double mem_bw_bytes_per_s, const char *note, ms_err *err);
/* Does the database being written hold a model of (device, op) with this source? 1 yes,
 * 0 no, -1 on error. */
int cdb_writer_has_model(cdb_writer *w, const char *device, const char *op, const char *source,
                         ms_err *err);
int cdb_writer_commit(cdb_writer *w, ms_err *err);
void cdb_writer_abort(cdb_writer *w); /* NULL is harmless */

#endif

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

#endif

/* The cost database: an SQLite file of devices, links, calibration runs, measurements and
 * fitted cost models, each model tagged with its source (measured | paper | datasheet).
 * Opening loads every model into memory, so cost queries never touch SQL.
 * Schema and model forms: docs/COSTDB.md. */
#ifndef CDB_H
#define CDB_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define CDB_SCHEMA_VERSION 1

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
 * of the IR op table). gemm: x = 2*m*n*k*count FLOPs. Returns 0, or -1 for an op that
 * has no cost feature (with err naming the op). */
int cdb_feature(const char *op, const int64_t *args, int nargs, double *x, ms_err *err);

/* Time in seconds of `op` with shape args on `device`. Uses the best model for
 * (device, op): measured over paper over datasheet, newest first within a source.
 * Linear: alpha + beta*x. Piecewise: linear interpolation over the measured points,
 * extrapolated along the end segments. Returns 0, or -1 with err naming the device and
 * op (and which devices do have a model for the op) when nothing covers the request. */
int cdb_time(const cdb *db, const char *device, const char *op, const int64_t *args,
             int nargs, double *seconds, ms_err *err);

/* Does the database know this device at all? */
int cdb_has_device(const cdb *db, const char *device);

/* The model chosen for (device, op), for reports. Returns NULL if none. The record and its
 * strings belong to db and live until cdb_close. For a piecewise model alpha_s and
 * beta_s_per_x are the row's values (0 when NULL; they are not used to compute times) and
 * x_min/x_max default to the first and last point. */
typedef struct cdb_model_info {
    const char *device, *op;
    const char *form;   /* "linear" | "piecewise" */
    const char *source; /* "measured" | "paper" | "datasheet" */
    double alpha_s, beta_s_per_x;
    double x_min, x_max; /* range the model was fitted on (0,0 if unknown) */
    int npoints;         /* piecewise: number of points */
    const char *citation;
} cdb_model_info;
const cdb_model_info *cdb_model(const cdb *db, const char *device, const char *op);

/* Lists devices, links and models with their sources, for `moesched db`. */
void cdb_print(const cdb *db, FILE *f);
/* The same as one JSON object (NULL columns as null), for `moesched db --json`. */
void cdb_print_json(const cdb *db, FILE *f);

const char *cdb_path(const cdb *db);

#endif

/* The sweep engine behind `moesched sweep`: a YAML spec crossed into points (one moesched
 * sim/solve command each), a results database in SQLite keyed by a canonical hash of each
 * point, and a runner that executes points as parallel subprocesses (docs/SWEEP.md). */
#ifndef CLI_SWEEP_H
#define CLI_SWEEP_H

#include <stdint.h>

#include "core/err.h"

#define SW_SCHEMA_VERSION 1         /* PRAGMA user_version of a results database */
#define SW_APPLICATION_ID 0x6d735357 /* PRAGMA application_id: "msSW" */

/* One flag of a point: `--name value`, or `--name` alone when value is NULL. */
typedef struct sw_flag {
    char *name;
    char *value;
} sw_flag;

/* One point: the moesched subcommand and its flags (sorted by name, without --json). */
typedef struct sw_point {
    int index;        /* position in the spec's crossing order, 0-based */
    char *sched;      /* the scheduler's name in the spec */
    char *command;    /* "sim" or "solve" */
    sw_flag *flags;
    int nflags;
    char *canonical;  /* "COMMAND --a x --b y ...", flags sorted: what the key hashes */
    char key[17];     /* FNV-1a 64 of canonical, 16 hex digits */
    const char *model, *topo; /* values of --model and --topo (point into flags) */
    int gpus;         /* ranks of the topology */
    int seq;          /* --seq, or -1 when absent */
} sw_point;

typedef struct sw_spec {
    char *path;
    char *name;       /* the spec's `name`, or its file stem */
    sw_point *points;
    int npoints;
} sw_spec;

/* Reads and checks a spec: unknown keys, unknown models, topologies that do not resolve,
 * empty axes and flags the point's command does not take are errors naming the file and
 * line. `bin` is the moesched binary (its --help lists the flags each command takes).
 * Returns 0, or -1 with err set; pair with sw_spec_release. */
int sw_spec_load(const char *path, const char *bin, sw_spec *out, ms_err *err);
void sw_spec_release(sw_spec *s);

/* The outcome of one point. */
typedef enum sw_status { SW_OK, SW_FAILED, SW_TIMEOUT } sw_status;
const char *sw_status_name(sw_status s);

typedef struct sw_result {
    sw_status status;
    int exit_code;        /* the process's exit status, or -SIGNAL when killed */
    char error[1024];     /* the last line of stderr (or why it failed), "" when ok */
    char *output;         /* what the command printed on stdout (owned) */
    double wall_s;        /* wall time of the process */
    double makespan_us, throughput_tokens_per_s, bound_tokens_per_s; /* NaN when absent */
    int ag, eg, r1, ma, r2; /* the schedule run (the solver's choice); -1 when absent */
    char order[128];
    char choice[256];     /* "ag=.. eg=.. r1=.. ma=.. r2=.. order=..", "" when absent */
} sw_result;

/* ---- results database ---------------------------------------------------------------- */

typedef struct sw_db sw_db;

/* Opens (creating when absent) a results database in WAL mode with a busy timeout. A
 * file that is not an SQLite database, or one from another schema version or
 * application, is an error that leaves the file untouched. NULL with err on failure. */
sw_db *sw_db_open(const char *path, ms_err *err);
void sw_db_close(sw_db *db);

/* Looks a point up: 0 (absent), 1 (finished ok), 2 (recorded as failed or timed out);
 * -1 with err on a database error or a hash collision. */
int sw_db_lookup(sw_db *db, const sw_point *p, ms_err *err);

/* Records a point's result and argv in one transaction. A row already finished ok is
 * kept; a failed one is replaced. */
int sw_db_record(sw_db *db, const sw_spec *s, const sw_point *p, char *const *argv,
                 const sw_result *r, ms_err *err);

/* Copies every row of the results database `in` into db (rows already there win unless
 * they failed and the incoming one is ok). *added receives the rows inserted or replaced. */
int sw_db_merge(sw_db *db, const char *in, int *added, ms_err *err);

/* ---- running -------------------------------------------------------------------------- */

typedef struct sw_options {
    const char *bin;       /* the moesched binary to run */
    int jobs;              /* parallel processes, >= 1 */
    int shard, nshards;    /* run points with index % nshards == shard */
    double point_timeout_s; /* 0 = none */
    int retry_failed;      /* re-run points recorded as failed */
    int progress_bar;      /* 1: one redrawn line with ETA; 0: one line per point */
} sw_options;

typedef struct sw_summary {
    int in_shard, skipped, ok, failed;
    double wall_s;
} sw_summary;

/* Runs the spec's points that are in the shard and not yet recorded, recording each as
 * it finishes. Per-point failures are rows, not errors: -1 only for database errors. */
int sw_run(const sw_spec *s, sw_db *db, const sw_options *o, sw_summary *sum, ms_err *err);

#endif

/* The task graph (IR): tasks on ranks and streams, dependencies, communication groups.
 * In memory it is struct-of-arrays with CSR lists (no per-task malloc); on disk it is the
 * line-oriented `.tg` text format whose grammar is in docs/IR.md.
 * Semantics (CUDA's): tasks on one stream run in file order; a task starts when it heads
 * its stream and all its deps have finished; comm tasks rendezvous across ranks. */
#ifndef TG_H
#define TG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define TG_VERSION 1
#define TG_NONE UINT32_MAX /* "no index" for uint32_t index fields */
#define TG_MAX_RANKS (1 << 20) /* ranks (and xchg peers) must be in [0, TG_MAX_RANKS) */

/* ---- operations --------------------------------------------------------------------- */

typedef enum tg_kind {
    TG_KIND_DELAY,   /* fixed duration, arg 0 holds the duration (see tg_task_delay_us) */
    TG_KIND_COMPUTE, /* shape args only; time comes from the cost DB */
    TG_KIND_XCHG,    /* grouped point-to-point sends and receives */
    TG_KIND_COLL,    /* collective over a declared group: args are (group, bytes, ...) */
} tg_kind;

typedef enum tg_op {
    TG_OP_DELAY,
    TG_OP_GEMM,
    TG_OP_XCHG,
    TG_OP_ALLREDUCE,
    TG_OP_ALLGATHER,
    TG_OP_REDUCESCATTER,
    TG_OP_ATTN, /* attention core: softmax(Q K^T) V, projections are separate gemms */
    TG_OP_FFN,  /* grouped expert FFN over several local experts */
    TG_OP_GATE, /* router: token x expert scores and top-k */
    TG_OP_M2N,  /* many-to-many exchange between two sides of a group (see tg_m2n_*) */
    TG_OP__COUNT
} tg_op;

#define TG_MAX_ARGS 8
#define TG_ARG_REQUIRED INT64_MIN /* in tg_op_info.dflt: the field must be given */

/* One row per op. Adding a compute op = adding an enum value and a row in tg_ops.c. */
typedef struct tg_op_info {
    const char *name; /* as written after op= */
    tg_kind kind;
    int nargs;                       /* number of shape args (compute/delay/coll) */
    const char *arg[TG_MAX_ARGS];    /* field names, in canonical (written) order */
    int64_t dflt[TG_MAX_ARGS];       /* default when omitted, or TG_ARG_REQUIRED */
    int64_t min[TG_MAX_ARGS];        /* smallest accepted value (integer args only) */
} tg_op_info;

const tg_op_info *tg_op_get(tg_op op);
/* Returns the op for a name, or -1 when unknown. */
int tg_op_find(const char *name);

/* ---- the graph ---------------------------------------------------------------------- */

/* All arrays are owned by the graph and valid until tg_graph_free. Task indices are
 * 0..ntasks-1 in file (insertion) order; stream order is that order restricted to a
 * stream. Consumers read these fields directly; only the tg_ functions write them. */
typedef struct tg_graph {
    /* tasks */
    uint32_t ntasks;
    int64_t *id;        /* user-visible task id (unique, >= 0) */
    int32_t *rank;      /* owning rank */
    uint32_t *stream;   /* global stream index, see stream_* below */
    uint8_t *op;        /* tg_op */
    uint32_t *arg_off;  /* [ntasks+1]: args of task t are arg[arg_off[t] .. arg_off[t+1]) */
    int64_t *arg;       /* shape args in tg_op_info.arg order; COLL: {group index, bytes} */
    uint32_t *label;    /* offset into str, or TG_NONE */
    uint32_t *line;     /* 1-based source line, 0 when built in memory */

    /* dependencies (after=), CSR over tasks, values are task indices */
    uint32_t *dep_off; /* [ntasks+1] */
    uint32_t *dep;

    /* point-to-point transfers of XCHG tasks, CSR over tasks (empty for other ops) */
    uint32_t *xfer_off;   /* [ntasks+1] */
    int32_t *xfer_peer;   /* the other rank */
    int64_t *xfer_bytes;  /* bytes moved */
    uint8_t *xfer_send;   /* 1 = send to peer, 0 = receive from peer */
    uint32_t nxfers;

    /* streams: one per (rank, name) pair, numbered in order of first appearance */
    uint32_t nstreams;
    int32_t *stream_rank;   /* rank of each stream */
    uint32_t *stream_name;  /* offset into str */
    uint32_t *stream_local; /* index of the stream among its rank's streams (0, 1, ...) */

    /* groups, in declaration order */
    uint32_t ngroups;
    uint32_t *group_name;    /* offset into str */
    uint32_t *group_off;     /* [ngroups+1] */
    int32_t *group_ranks;    /* member ranks, ascending */
    uint32_t *group_line;    /* source line of the declaration, 0 if built in memory */

    /* count vectors (`vec` records), in declaration order; m2n tasks name one */
    uint32_t nvecs;
    uint32_t *vec_name; /* offset into str */
    uint32_t *vec_off;  /* [nvecs+1]: values of vector v are vec_val[vec_off[v] .. vec_off[v+1]) */
    int64_t *vec_val;   /* each >= 0 */
    uint32_t *vec_line; /* source line of the declaration, 0 if built in memory */

    int32_t nranks; /* 1 + the largest rank named by any task or group (0 if none) */

    /* ---- filled by tg_graph_finalize ---- */
    int finalized;
    uint32_t *succ_off; /* [ntasks+1]: successors by dependency (the reverse of dep) */
    uint32_t *succ;
    uint32_t *next_in_stream; /* next task on the same stream, or TG_NONE */
    uint32_t *stream_head;    /* [nstreams] first task of each stream, or TG_NONE */
    uint32_t *xfer_match;     /* [nxfers] the matching transfer index on the peer's task */
    uint32_t *xfer_task;      /* [nxfers] the task owning each transfer */
    uint32_t ncoll;           /* collective instances (one per matched set of pieces) */
    uint32_t *coll_of;        /* [ntasks] instance of a COLL task, else TG_NONE */
    uint32_t *coll_off;       /* [ncoll+1] CSR of member tasks per instance */
    uint32_t *coll_task;

    /* string pool: NUL-terminated strings addressed by offset */
    char *str;
    size_t str_len, str_cap;

    /* builder-private state (capacities, hash tables); opaque to consumers */
    struct tg_build *build;

    const char *source_name; /* file name used in messages (copied into str), or NULL */
} tg_graph;

/* ---- m2n: an aggregate many-to-many exchange ------------------------------------------
 * An m2n task is one rank's piece of a collective (kind TG_KIND_COLL) over `group`:
 * args {group, bytes, from, counts, per}. The senders are the ranks of group `from` (a
 * non-empty proper subset of `group`), the receivers the other ranks of `group`; both
 * sides are taken in ascending rank order (sender index i, receiver index j). `counts`
 * names a vector of count units: per = TG_M2N_PER_RECV gives one count per receiver (the
 * units it receives in total), TG_M2N_PER_SEND one per sender (the units it sends). Each
 * count is spread over the other side as evenly as possible (tg_m2n_units); a pair moves
 * units * `bytes` bytes. So the whole exchange matrix is described by one vector shared
 * by every piece, instead of one transfer per pair on each side (which is what xchg
 * tasks would need: |senders| x |receivers| entries, twice). Like every collective, the
 * exchange begins once every member has started its piece. */
enum { TG_M2N_PER_RECV = 0, TG_M2N_PER_SEND = 1 };

/* Units moved from sender i to receiver j: `count` (the counting side's entry for its
 * rank at index `rot`) spread over `n` ranks of the other side, the one at index `bin`
 * getting count/n, plus one if (bin - rot) mod n < count mod n. For per = RECV:
 * tg_m2n_share(c[j], nsend, i, j); for per = SEND: tg_m2n_share(c[i], nrecv, j, i). */
static inline int64_t tg_m2n_share(int64_t count, uint32_t n, uint32_t bin, uint32_t rot)
{
    uint64_t d = ((uint64_t)bin % n + n - (uint64_t)rot % n) % n;
    return count / (int64_t)n + ((int64_t)d < count % (int64_t)n);
}

/* The two sides of m2n task t (any piece of the instance): senders into src (ascending,
 * *nsrc of them) and receivers into dst (*ndst). Each array must hold the group's size.
 * Also returns the counts vector (length *ndst or *nsrc by per) in *counts and per in
 * *per (either may be NULL when not wanted). O(group size); t must be an m2n task of a
 * graph whose tg_add_task accepted it. */
void tg_m2n_sides(const tg_graph *g, uint32_t t, int32_t *src, uint32_t *nsrc, int32_t *dst,
                  uint32_t *ndst, const int64_t **counts, int *per);

/* Does the graph hold any m2n task? */
int tg_has_m2n(const tg_graph *g);

/* The same graph with every m2n piece replaced by the equivalent xchg task (same id, rank,
 * stream, deps, label): a sender's piece sends to every receiver, a receiver's piece
 * receives from every sender, pairs of zero units included (0-byte transfers), so both
 * sides list the same pairs. Groups and vectors are kept. g must be finalized (its
 * collective instances give each exchange's sides once); the cost is linear in g plus the
 * transfers made. The result is finalized; NULL with err set on failure (g not finalized,
 * out of memory, more transfers than the IR can hold, or units x bytes beyond int64).
 * Executors run this form; it costs |senders| x |receivers| x 2 transfer entries per
 * exchange, so it is meant for graphs small enough to run. */
tg_graph *tg_expand_m2n(const tg_graph *g, ms_err *err);

/* ---- building ----------------------------------------------------------------------- */

/* Creates an empty graph; source_name (may be NULL) names the input in messages. */
tg_graph *tg_graph_create(const char *source_name);
void tg_graph_free(tg_graph *g); /* NULL is harmless */

/* Declares group `name` with the given ranks (any order; stored ascending).
 * Returns the group index, or -1 with err set (duplicate name, bad or repeated rank). */
int tg_add_group(tg_graph *g, const char *name, const int32_t *ranks, int nranks,
                 uint32_t line, ms_err *err);
/* Index of the group called `name`, or -1 when there is none. */
int tg_find_group(const tg_graph *g, const char *name);

/* Declares count vector `name` with n >= 1 values, each >= 0. Returns its index, or -1
 * with err set (duplicate name, bad name, empty, negative value). */
int tg_add_vec(tg_graph *g, const char *name, const int64_t *vals, uint32_t n, uint32_t line,
               ms_err *err);
/* Index of the vector called `name`, or -1 when there is none. */
int tg_find_vec(const tg_graph *g, const char *name);

/* A pending task: fill it, then tg_add_task copies it into the graph. */
typedef struct tg_task_spec {
    int64_t id;
    int32_t rank;
    const char *stream; /* stream name, interned per rank */
    tg_op op;
    const int64_t *args;  /* tg_op_get(op)->nargs values; COLL: {group index, bytes} */
    const int64_t *after; /* dependency task ids (resolved at finalize; may point forward) */
    int nafter;
    const int32_t *xfer_peer; /* XCHG only */
    const int64_t *xfer_bytes;
    const uint8_t *xfer_send;
    int nxfer;
    const char *label; /* may be NULL */
    uint32_t line;     /* 0 when not from a file */
} tg_task_spec;

/* Appends a task. Returns its index, or -1 with err set (duplicate id, negative rank,
 * bad args). Messages name source_name, the line and the task id. */
int64_t tg_add_task(tg_graph *g, const tg_task_spec *t, ms_err *err);

/* Resolves dependency ids, builds successor lists and stream links, then validates:
 * deps on unknown tasks or on another rank's task, cycles through deps and stream order
 * together, xchg sends and receives that do not pair up with equal byte counts,
 * collectives whose group members lack a piece (or disagree on op or bytes; m2n pieces
 * on every arg), and cross-rank deadlocks created by rendezvous. Returns 0, or -1 with
 * err naming the file, line and task. A graph must be finalized before it is simulated
 * or written. */
int tg_graph_finalize(tg_graph *g, ms_err *err);

/* ---- text format -------------------------------------------------------------------- */

/* Parses .tg text. name is used in messages ("name:line: ..."). The result is finalized.
 * Returns NULL with err set on any syntax or validation error. */
tg_graph *tg_parse_file(const char *path, ms_err *err);
tg_graph *tg_parse_stream(FILE *f, const char *name, ms_err *err);
tg_graph *tg_parse_buffer(const char *buf, size_t len, const char *name, ms_err *err);

/* Writes the canonical text form: `tg 1`, groups, vectors, then tasks in index order,
 * fields in canonical order, defaults omitted. parse(write(g)) reproduces g exactly and
 * write(parse(write(g))) is byte-identical. Returns 0 or -1 (I/O error). */
int tg_write(const tg_graph *g, FILE *f, ms_err *err);
int tg_write_file(const tg_graph *g, const char *path, ms_err *err);

/* ---- accessors ---------------------------------------------------------------------- */

static inline const char *tg_str(const tg_graph *g, uint32_t off)
{
    return off == TG_NONE ? NULL : g->str + off;
}
static inline const int64_t *tg_task_args(const tg_graph *g, uint32_t t)
{
    return g->arg + g->arg_off[t];
}
static inline tg_kind tg_task_kind(const tg_graph *g, uint32_t t)
{
    return tg_op_get((tg_op)g->op[t])->kind;
}
/* Duration of a DELAY task in microseconds (stored exactly as parsed). */
double tg_task_delay_us(const tg_graph *g, uint32_t t);
/* Packs a delay in microseconds into the int64 arg slot (bit copy of the double). */
int64_t tg_delay_arg(double us);

/* Index of the task with user id `id`, or TG_NONE. */
uint32_t tg_find_task(const tg_graph *g, int64_t id);

/* Compares two graphs field by field: tasks (id, rank, stream, op, args, deps, transfers,
 * labels), streams, groups and vectors; not source lines nor source_name, so a graph and
 * the parse of its written text compare equal. Returns 0 when they are the same, or -1 with
 * err describing the first difference. For tests and round-trip checks. */
int tg_graph_diff(const tg_graph *a, const tg_graph *b, ms_err *err);

#endif

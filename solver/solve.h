/* Schedule solvers for DEP inference: FinDEP's Algorithm 1 (alg1) on linear cost fits,
 * a simulator-verified search over a larger space (search), brute force (exhaustive),
 * MegaScale-Infer's PPPipe planner, and a lower bound on any graph's makespan.
 * The solver answers: for this model, cluster and sequence length, what schedule should
 * run, and how close to the best possible is it? */
#ifndef SOLVE_H
#define SOLVE_H

#include "core/err.h"
#include "core/model.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"
#include "sim/net.h"
#include "workloads/dep_infer.h"

typedef enum solve_method { SOLVE_ALG1, SOLVE_SEARCH, SOLVE_EXHAUSTIVE } solve_method;

typedef struct solve_request {
    const model_cfg *m;
    const topo *t;
    const cdb *db;
    const net_ops *net;  /* for simulations; NULL = analytic */
    wl_dep_sched sched;  /* WL_DEP_FINDEP or WL_DEP_PPPIPE */
    solve_method method;
    wl_phase phase;
    int seq;             /* S */
    int ag, eg;          /* both 0 = choose the split (--split auto) */
    /* held fixed when > 0 (order: 1 = asas, 2 = aass); 0 = free */
    int fix_r1, fix_ma, fix_r2, fix_order;
} solve_request;

typedef struct solve_result {
    wl_dep_params p;              /* the chosen schedule (route NULL = uniform) */
    double throughput_tokens_per_s; /* simulated, for p */
    double bound_tokens_per_s;    /* no schedule of this workload can beat this */
    double predicted_tokens_per_s; /* alg1: its closed-form estimate; else = simulated */
    double solve_wall_s;
    int simulations;              /* simulator runs spent */
} solve_result;

/* Solves rq; fills *out, or returns -1 with err (no feasible schedule, bad request). */
int solve_dep(const solve_request *rq, solve_result *out, ms_err *err);

/* A lower bound on the makespan of g under the same costs: the larger of the busiest
 * rank's compute work and the critical path through dependencies (with each task at its
 * contention-free duration). */
int solve_bound(const tg_graph *g, const topo *t, const cdb *db, double *bound_s, ms_err *err);

/* ---- MoE training (FSMoE and its baselines; solver/train.c, docs/TRAINING.md) ------- */

#include "workloads/moe_train.h"

typedef enum solve_train_method {
    SOLVE_TRAIN_SEARCH, /* the model's choice refined by simulation; never worse than it */
    SOLVE_TRAIN_MODEL,  /* FSMoE's piecewise alpha-beta model alone (simulated once) */
} solve_train_method;

typedef struct solve_train_request {
    const model_cfg *m;
    const topo *t;
    const cdb *db;
    const net_ops *net;       /* for simulations; NULL = analytic */
    wl_train_sched sched;     /* dsmoe: r = 1; tutel: r tried as Tutel does; fsmoe: solved */
    solve_train_method method;
    wl_train_params base;     /* batch, seq, capacity, ep, esp, dp; the rest is ignored */
} solve_train_request;

typedef struct solve_train_result {
    wl_train_sched sched;
    int r;                            /* dsmoe, tutel: the degree of every layer */
    int r_fwd[WL_TRAIN_MAX_LAYERS];   /* per-layer degrees (all r for dsmoe and tutel) */
    int r_bwd[WL_TRAIN_MAX_LAYERS];
    wl_train_piece pieces[WL_TRAIN_MAX_PIECES]; /* the AllReduce partition */
    int npieces;
    double step_s;         /* simulated step time of the choice */
    double predicted_s;    /* fsmoe: the model's estimate of its own choice; else step_s */
    double model_step_s;   /* fsmoe: simulated step time of the model's choice */
    int layers_differ;     /* layers whose forward and backward degrees differ */
    double trial_s[4];     /* tutel and fsmoe (search): simulated step time of every layer
                              at r = 1, 2, 4, 8 in both passes, AllReduce after backward
                              (r = 1 is dsmoe's graph); NaN when not simulated */
    int simulations;
    double solve_wall_s;
} solve_train_result;

/* Chooses the schedule of rq; fills *out, or returns -1 with err (bad layout, ...). */
int solve_train(const solve_train_request *rq, solve_train_result *out, ms_err *err);

/* The parameters of a result (sched, degrees, pieces pointing into r) on rq's base. */
void solve_train_params(const solve_train_request *rq, const solve_train_result *r,
                        wl_train_params *p);

/* Builds and simulates one training step; *step_s = its makespan. */
int solve_train_simulate(const solve_train_request *rq, const wl_train_params *p,
                         double *step_s, ms_err *err);

/* ---- FSMoE's layer grid (solver/train_grid.c; traces/fsmoe-grid.tsv) ---------------- */

#define SOLVE_GRID_EXPERTS 16 /* every grid layer: 16 experts, top-2, 2 identical layers */
#define SOLVE_GRID_TOP_K 2
#define SOLVE_GRID_LAYERS 2

typedef struct solve_grid_point {
    int id, batch, seq, hidden, ffn_hidden, heads, ffn_gemms;
    double capacity;
} solve_grid_point;

/* Reads a grid TSV (header line, '#' comments). *pts is malloc'd (free it). Errors name
 * the file and line. */
int solve_grid_load(const char *path, solve_grid_point **pts, int *n, ms_err *err);

/* The model of one grid point: SOLVE_GRID_LAYERS MHA layers (head dim hidden/heads),
 * SOLVE_GRID_EXPERTS experts of ffn_hidden, top SOLVE_GRID_TOP_K. */
int solve_grid_model(const solve_grid_point *pt, model_cfg *m, ms_err *err);

/* dsmoe, tutel and fsmoe (search) for one workload (rq->base, rq->m; sched and method
 * ignored). */
typedef struct solve_train_compare {
    double dsmoe_s, tutel_s, fsmoe_s; /* simulated step times */
    double fsmoe_model_s;             /* the fsmoe model's choice, simulated */
    int tutel_r;
    int rf0, rb0;                     /* fsmoe's degrees of layer 0 */
    int layers_differ;                /* fsmoe layers whose two degrees differ */
    int npieces;                      /* fsmoe AllReduce pieces */
    int simulations;
} solve_train_compare;
int solve_train_compare_all(const solve_train_request *rq, solve_train_compare *out,
                            ms_err *err);

#endif

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

#endif

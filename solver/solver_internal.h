/* Pieces the solvers share inside solver/ (not part of the public API): building and
 * simulating one schedule, and Algorithm 1 (alg1.c), which solve_dep calls for
 * SOLVE_ALG1. */
#ifndef SOLVER_INTERNAL_H
#define SOLVER_INTERNAL_H

#include "solver/solve.h"

/* Builds the DEP graph of rq->m on rq->t with p, simulates it with rq->net (analytic when
 * NULL) and rq->db, and returns tokens/s = wl_dep_tokens(p) / makespan in *tokens_per_s.
 * Frees everything it made. Returns 0, or -1 with err (build or simulation failure). */
int solve_simulate(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                   ms_err *err);

/* The same, also returning the work of the simulation: tasks + transfers of the graph it
 * built (0 when the build failed). The search budgets itself in this unit, not in
 * seconds, so that its answer does not depend on the machine or its load. */
int solve_simulate_work(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                        double *work, ms_err *err);

/* The same, also returning the lower bound of the built graph as tokens/s (tokens / the
 * solve_bound makespan), so that a caller does not build the graph twice. */
int solve_simulate_bound(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                         double *bound_tokens_per_s, ms_err *err);

/* FinDEP's Algorithm 1 on linear cost fits (alg1.c, docs/SOLVER.md "Algorithm 1"). Fills
 * *out (p, predicted, simulated and bound throughput, wall time, simulations = 1), or
 * returns -1 with err (no feasible schedule, bad request). */
int solve_alg1(const solve_request *rq, solve_result *out, ms_err *err);

/* ---- Algorithm 1's model, exposed for tests --------------------------------------- */

/* Practical limits of Algorithm 1's space (docs/SOLVER.md): micro-batches, token chunks,
 * and tokens of one micro-batch on one AG rank (m_a * S in prefill, m_a in decode). */
#define SOLVE_ALG1_MAX_R1 16
#define SOLVE_ALG1_MAX_R2 64
#define SOLVE_ALG1_MAX_MB_TOKENS (1 << 20)

/* Linear fit t = alpha_s + beta_s * x. */
typedef struct solve_fit {
    double alpha_s, beta_s;
} solve_fit;

/* Per-segment linear fits for one (model, topology, S, ag, eg, phase): attention and
 * shared expert as functions of m_a (samples per micro-batch per AG rank), expert and A2E
 * (= E2A) per chunk as functions of the chunk's tokens per AG rank (m_a * S / r2 in
 * prefill, m_a / r2 in decode), plus the memory limit. */
typedef struct solve_alg1_model {
    solve_fit attn, shared, expert, a2e;
    int layers;            /* T */
    int tokens_per_sample; /* S in prefill, 1 in decode */
    int ma_max;            /* M_max: samples per AG rank that fit memory (r1 * m_a <= ma_max) */
    double mem_bytes, weight_bytes_ag, weight_bytes_eg, kv_bytes_per_sample;
} solve_alg1_model;

/* Fits the model for rq (rq->ag, rq->eg must be set). Returns 0 or -1 with err. */
int solve_alg1_fit(const solve_request *rq, solve_alg1_model *mdl, ms_err *err);

/* Predicted makespan in seconds of (m_a, r1, r2, order) under mdl: FinDEP's printed
 * closed form for ASAS; for AASS, for which the paper prints none, an exact max-plus
 * evaluation of the in-order schedule under the same linear costs. */
double solve_alg1_makespan(const solve_alg1_model *mdl, int ma, int r1, int r2, wl_order order);

/* Algorithm 1's search over (m_a, r1, r2, order) for a fitted model, honouring rq's fix_*
 * fields. Fills *best (ma, r1, r2, order only) and *makespan_s; -1 with err when nothing
 * is feasible. */
int solve_alg1_search(const solve_alg1_model *mdl, const solve_request *rq, wl_dep_params *best,
                      double *makespan_s, ms_err *err);

#endif

/* Helpers every solver uses: build one DEP schedule's graph, simulate it, and turn the
 * makespan (and the graph's lower bound) into tokens/s. */
#include <math.h>

#include "sim/sim.h"
#include "solver/solver_internal.h"

static int run_one(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                   double *bound_tokens_per_s, double *work, ms_err *err)
{
    tg_graph *g = wl_dep_build(rq->m, rq->t, p, err);
    if (!g) return -1;
    if (work) *work = (double)g->ntasks + (double)g->nxfers;
    int rc = -1;
    sim_engine *s = sim_create(g, rq->t, rq->db, rq->net ? rq->net : &net_analytic, err);
    if (s && sim_run(s, err) == 0) {
        double makespan = sim_get_summary(s)->makespan_s;
        double tokens = wl_dep_tokens(p, rq->t);
        if (makespan > 0) {
            *tokens_per_s = tokens / makespan;
            rc = 0;
        } else {
            rc = ms_err_set(err, "the schedule's simulated makespan is %g s", makespan);
        }
        if (rc == 0 && bound_tokens_per_s) {
            double b = 0;
            rc = solve_bound(g, rq->t, rq->db, &b, err);
            if (rc == 0) *bound_tokens_per_s = b > 0 ? tokens / b : INFINITY;
        }
    }
    sim_free(s);
    tg_graph_free(g);
    return rc;
}

int solve_simulate(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                   ms_err *err)
{
    return run_one(rq, p, tokens_per_s, NULL, NULL, err);
}

int solve_simulate_work(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                        double *work, ms_err *err)
{
    *work = 0;
    return run_one(rq, p, tokens_per_s, NULL, work, err);
}

int solve_simulate_bound(const solve_request *rq, const wl_dep_params *p, double *tokens_per_s,
                         double *bound_tokens_per_s, ms_err *err)
{
    return run_one(rq, p, tokens_per_s, bound_tokens_per_s, NULL, err);
}

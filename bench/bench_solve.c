/* Solver benchmark: FinDEP's Algorithm 1 (fit + search, without the final simulation)
 * per instance, and the simulator-in-the-loop search on 32 GPUs, against the solver
 * issue's targets (alg1 under 10 ms, search on 32 GPUs under 2 s on this machine).
 * Usage: bench_solve [DB]   (default build/cost.db) */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "solver/solve.h"
#include "solver/solver_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct instance {
    const char *model, *topo;
    int layers, ag, eg, seq;
} instance;

static int request(const instance *in, const cdb *db, model_cfg *m, topo *t, solve_request *rq,
                   ms_err *err)
{
    if (model_load(in->model, m, err) || model_keep_layers(m, in->layers, err) ||
        topo_load(in->topo, t, err))
        return -1;
    memset(rq, 0, sizeof *rq);
    rq->m = m, rq->t = t, rq->db = db, rq->sched = WL_DEP_FINDEP, rq->phase = WL_PREFILL;
    rq->seq = in->seq, rq->ag = in->ag, rq->eg = in->eg;
    return 0;
}

int main(int argc, char **argv)
{
    ms_err err = {{0}};
    cdb *db = cdb_open(argc > 1 ? argv[1] : "build/cost.db", &err);
    if (!db) return fprintf(stderr, "%s\n", err.msg), 1;
    static const instance alg1[] = {
        {"deepseek-v2", "h20-1x8", 8, 3, 5, 4096},   {"deepseek-v2", "a6000-1x8", 8, 3, 5, 2048},
        {"qwen3-235b-a22b", "h20-1x8", 24, 4, 4, 4096}, {"deepseek-v2", "h20-4x8", 16, 8, 24, 8192},
        {"qwen3-235b-a22b", "h20-4x8", 48, 8, 24, 1024},
    };
    printf("alg1 (fit + search, no simulation), mean of 20 runs; target < 10 ms\n");
    printf("%-18s %-10s %6s %7s %6s %10s\n", "model", "topology", "layers", "ag/eg", "S", "ms");
    for (size_t i = 0; i < sizeof alg1 / sizeof alg1[0]; i++) {
        model_cfg m;
        topo t;
        solve_request rq;
        if (request(&alg1[i], db, &m, &t, &rq, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        double t0 = now();
        for (int k = 0; k < 20; k++) {
            solve_alg1_model mdl;
            wl_dep_params best;
            double mk;
            if (solve_alg1_fit(&rq, &mdl, &err) || solve_alg1_search(&mdl, &rq, &best, &mk, &err))
                return fprintf(stderr, "%s\n", err.msg), 1;
        }
        printf("%-18s %-10s %6d %3d/%-3d %6d %10.2f\n", alg1[i].model, alg1[i].topo,
               alg1[i].layers, alg1[i].ag, alg1[i].eg, alg1[i].seq, (now() - t0) / 20 * 1e3);
    }
    static const instance big[] = {
        {"deepseek-v2", "h20-4x8", 4, 8, 24, 2048},
        {"deepseek-v2", "h20-4x8", 16, 8, 24, 4096},
        {"qwen3-235b-a22b", "h20-4x8", 4, 8, 24, 2048},
        {"deepseek-v2", "h20-4x8", 4, 0, 0, 2048}, /* split auto */
    };
    printf("\nsearch on 32 GPUs (simulator in the loop, incl. alg1); target < 2 s\n");
    printf("%-18s %6s %7s %6s %8s %6s %14s %14s %7s\n", "model", "layers", "ag/eg", "S", "wall_s",
           "sims", "alg1_tok_s", "search_tok_s", "gap");
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        model_cfg m;
        topo t;
        solve_request rq;
        if (request(&big[i], db, &m, &t, &rq, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        solve_result a, s;
        rq.method = SOLVE_ALG1;
        if (solve_dep(&rq, &a, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        rq.method = SOLVE_SEARCH;
        if (solve_dep(&rq, &s, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
        char split[16];
        snprintf(split, sizeof split, big[i].ag ? "%d/%d" : "auto", big[i].ag, big[i].eg);
        printf("%-18s %6d %7s %6d %8.2f %6d %14.0f %14.0f %6.2f%%\n", big[i].model, big[i].layers,
               split, big[i].seq, s.solve_wall_s, s.simulations, a.throughput_tokens_per_s,
               s.throughput_tokens_per_s,
               100 * (1 - s.throughput_tokens_per_s / s.bound_tokens_per_s));
    }
    cdb_close(db);
    return 0;
}

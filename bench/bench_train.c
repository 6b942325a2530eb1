/* Training-solver benchmark: FSMoE's whole layer grid (traces/fsmoe-grid.tsv, 1458 points)
 * solved and simulated under dsmoe, tutel and fsmoe (search) on both cluster profiles of
 * `moesched repro fsmoe`, with the wall time against the target (under 60 s).
 * Usage: bench_train [DB [GRID [EVERY [THREADS]]]]  (defaults build/cost.db,
 * traces/fsmoe-grid.tsv, 1 = every point, 2 threads; EVERY = k takes every k-th point).
 * Points are independent solves, spread over the threads; prints wall and CPU time (on a
 * shared machine the CPU time is the figure to compare). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "solver/solve.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *const clusters[] = {"a100-4x8", "h100-4x8"};

typedef struct work {
    cdb *db;
    topo t[2];
    const solve_grid_point *pts;
    int nsel, every;          /* points taken per cluster, stride */
    pthread_mutex_t mu;
    int next, failed;         /* next item (cluster-major), any failure */
    char msg[MS_ERR_LEN + 128];
    solve_train_compare *res; /* [2 * nsel] */
} work;

static void *worker(void *arg)
{
    work *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int k = w->failed ? 2 * w->nsel : w->next++;
        pthread_mutex_unlock(&w->mu);
        if (k >= 2 * w->nsel) return NULL;
        int ci = k / w->nsel;
        const solve_grid_point *pt = &w->pts[(size_t)(k % w->nsel) * w->every];
        ms_err err = {{0}};
        model_cfg m;
        solve_train_request rq;
        memset(&rq, 0, sizeof rq);
        int rc = solve_grid_model(pt, &m, &err);
        if (!rc) {
            rq.m = &m, rq.t = &w->t[ci], rq.db = w->db;
            wl_train_defaults(&rq.base);
            rq.base.batch = pt->batch, rq.base.seq = pt->seq, rq.base.capacity = pt->capacity;
            rc = solve_train_compare_all(&rq, &w->res[k], &err);
        }
        if (rc) {
            pthread_mutex_lock(&w->mu);
            if (!w->failed)
                snprintf(w->msg, sizeof w->msg, "grid point %d on %s: %s", pt->id, clusters[ci],
                         err.msg);
            w->failed = 1;
            pthread_mutex_unlock(&w->mu);
        }
    }
}

int main(int argc, char **argv)
{
    ms_err err = {{0}};
    work w;
    memset(&w, 0, sizeof w);
    w.db = cdb_open(argc > 1 ? argv[1] : "build/cost.db", &err);
    if (!w.db) return fprintf(stderr, "%s\n", err.msg), 1;
    solve_grid_point *pts;
    int n, every = argc > 3 ? atoi(argv[3]) : 1, nthreads = argc > 4 ? atoi(argv[4]) : 2;
    if (every < 1) every = 1;
    if (nthreads < 1 || nthreads > 64) nthreads = 2;
    if (solve_grid_load(argc > 2 ? argv[2] : "traces/fsmoe-grid.tsv", &pts, &n, &err) != 0)
        return fprintf(stderr, "%s\n", err.msg), cdb_close(w.db), 1;
    for (int ci = 0; ci < 2; ci++) /* before the threads: topo_load resolves the data dir */
        if (topo_load(clusters[ci], &w.t[ci], &err) != 0)
            return fprintf(stderr, "%s\n", err.msg), 1;
    w.pts = pts, w.every = every, w.nsel = (n + every - 1) / every;
    w.res = calloc(2 * (size_t)w.nsel, sizeof *w.res);
    pthread_t th[64];
    pthread_mutex_init(&w.mu, NULL);
    if (!w.res) return fprintf(stderr, "out of memory\n"), 1;
    printf("FSMoE layer grid: %d points (every %d) x 2 clusters, dsmoe + tutel + fsmoe search "
           "each, 2 layers per point, analytic network, %d thread%s; target: the whole grid "
           "under 60 s\n", w.nsel, every, nthreads, nthreads == 1 ? "" : "s");
    double t0 = now(), c0 = (double)clock() / CLOCKS_PER_SEC;
    int started = 0;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, worker, &w) == 0) started++;
    if (started == 0) worker(&w);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double wall = now() - t0, cpu = (double)clock() / CLOCKS_PER_SEC - c0;
    int rc = 0;
    if (w.failed) {
        fprintf(stderr, "%s\n", w.msg);
        rc = 1;
    } else {
        printf("%-10s %7s %8s %10s %12s %12s\n", "cluster", "points", "sims", "differ",
               "gm_fs/tutel", "gm_fs/dsmoe");
        for (int ci = 0; ci < 2; ci++) {
            long sims = 0;
            int differ = 0;
            double lt = 0, ld = 0;
            for (int k = ci * w.nsel; k < (ci + 1) * w.nsel; k++) {
                const solve_train_compare *r = &w.res[k];
                sims += r->simulations, differ += r->layers_differ > 0;
                lt += log(r->tutel_s / r->fsmoe_s), ld += log(r->dsmoe_s / r->fsmoe_s);
            }
            printf("%-10s %7d %8ld %10d %12.4f %12.4f\n", clusters[ci], w.nsel, sims, differ,
                   exp(lt / w.nsel), exp(ld / w.nsel));
        }
        printf("wall %.2f s, cpu %.2f s for both clusters (%.2f ms cpu per point and cluster); "
               "one grid: %.2f s wall\n", wall, cpu, 1e3 * cpu / (2.0 * w.nsel), wall / 2);
    }
    pthread_mutex_destroy(&w.mu);
    free(w.res);
    free(pts);
    cdb_close(w.db);
    return rc;
}

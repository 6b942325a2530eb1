/* Simulator benchmark: generates a 1,000,000-task graph (64 ranks, 4 streams each,
 * layered dependencies, a quarter of the tasks xchg), writes it as .tg, then in a fresh
 * process parses, costs and simulates it. Reports simulated tasks per second for the
 * engine alone and end to end, and peak memory (max RSS of that process) per task.
 * Usage: bench_sim [TASKS] [DB]   (defaults: 1000000, build/cost.db) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"
#include "sim/sim.h"

#define RANKS 64
#define STREAMS 4
#define ENGINE_TARGET_TASKS_PER_S 2e6
#define MEMORY_TARGET_BYTES_PER_TASK 300

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Writes the layered graph straight to text: per layer and rank a gemm on `compute`
 * (after the previous layer's last task), a delay on `shared` and an xchg on `comm`
 * (both after the gemm; every rank sends to r+s and receives from r-s, s varying by
 * layer), and a delay on `aux` after both. */
static int generate(const char *path, long layers)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    static const int shapes[4][3] = {{4096, 1536, 5120}, {2048, 5120, 1536},
                                     {1024, 2048, 2048}, {512, 7168, 2048}};
    fputs("tg 1\n", f);
    long id = 0;
    for (long l = 0; l < layers; l++) {
        int shift = 1 + (int)(l % (RANKS - 1));
        for (int r = 0; r < RANKS; r++) {
            long base = id, prev_last = id - 4 * RANKS + 3;
            const int *sh = shapes[(l + r) % 4];
            fprintf(f, "task %ld rank=%d stream=compute op=gemm m=%d n=%d k=%d", id++, r,
                    sh[0], sh[1], sh[2]);
            if (l > 0) fprintf(f, " after=%ld", prev_last);
            fprintf(f, " label=L%ld.gemm\n", l);
            fprintf(f, "task %ld rank=%d stream=shared op=delay us=%d after=%ld label=L%ld.sh\n",
                    id++, r, 20 + (int)((l * 7 + r) % 13), base, l);
            fprintf(f,
                    "task %ld rank=%d stream=comm op=xchg send=%d:%d recv=%d:%d after=%ld "
                    "label=L%ld.x\n",
                    id++, r, (r + shift) % RANKS, 1 << 20, (r - shift + RANKS) % RANKS, 1 << 20,
                    base, l);
            fprintf(f, "task %ld rank=%d stream=aux op=delay us=5 after=%ld,%ld label=L%ld.aux\n",
                    id++, r, base + 1, base + 2, l);
        }
    }
    return fclose(f);
}

typedef struct result {
    double parse_s, setup_s, engine_s, total_s, makespan_s;
    long maxrss_kb, ntasks;
    unsigned long long events;
    char err[MS_ERR_LEN];
} result;

static void run_child(const char *path, const char *db_path, result *res)
{
    ms_err err = {{0}};
    double t0 = now();
    tg_graph *g = tg_parse_file(path, &err);
    if (!g) {
        snprintf(res->err, sizeof res->err, "%s", err.msg);
        return;
    }
    res->parse_s = now() - t0;
    topo t;
    cdb *db = cdb_open(db_path, &err);
    if (!db || topo_load("h100:nodes=8", &t, &err) != 0) {
        snprintf(res->err, sizeof res->err, "%s", err.msg);
        return;
    }
    sim_engine *s = sim_create(g, &t, db, &net_analytic, &err);
    if (!s || sim_run(s, &err) != 0) {
        snprintf(res->err, sizeof res->err, "%s", err.msg);
        return;
    }
    res->total_s = now() - t0;
    const sim_summary *sum = sim_get_summary(s);
    res->setup_s = sum->setup_wall_s;
    res->engine_s = sum->wall_s;
    res->makespan_s = sum->makespan_s;
    res->events = sum->events;
    res->ntasks = g->ntasks;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->maxrss_kb = ru.ru_maxrss;
    sim_free(s);
    cdb_close(db);
    tg_graph_free(g);
}

int main(int argc, char **argv)
{
    long want = argc > 1 ? atol(argv[1]) : 1000000;
    const char *db_path = argc > 2 ? argv[2] : "build/cost.db";
    long layers = (want + RANKS * STREAMS - 1) / (RANKS * STREAMS);
    char path[] = "/tmp/ms-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return perror("mkstemp"), 1;
    close(fd);
    double t0 = now();
    if (generate(path, layers) != 0) return perror("generate"), 1;
    double gen_s = now() - t0;

    /* Parse and simulate in a fresh process so its max RSS is this work's alone (the
     * parent never holds the graph). The result comes back through a pipe. */
    int pfd[2];
    if (pipe(pfd) != 0) return perror("pipe"), 1;
    pid_t pid = fork();
    if (pid < 0) return perror("fork"), 1;
    if (pid == 0) {
        close(pfd[0]);
        result r;
        memset(&r, 0, sizeof r);
        run_child(path, db_path, &r);
        ssize_t w = write(pfd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(pfd[1]);
    result r;
    memset(&r, 0, sizeof r);
    ssize_t got = read(pfd[0], &r, sizeof r);
    int status = 0;
    waitpid(pid, &status, 0);
    unlink(path);
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_sim: the simulation process failed\n");
        return 1;
    }
    if (r.err[0]) {
        fprintf(stderr, "bench_sim: %s\n", r.err);
        return 1;
    }
    double engine_rate = r.ntasks / r.engine_s, e2e_rate = r.ntasks / r.total_s;
    double bytes_per_task = r.maxrss_kb * 1024.0 / r.ntasks;
    printf("graph: %ld tasks (%d ranks x %d streams, %ld layers, 1/4 xchg), generated in %.2f s\n",
           r.ntasks, RANKS, STREAMS, layers, gen_s);
    printf("simulated makespan %.3f ms, %llu events\n", r.makespan_s * 1e3, r.events);
    printf("%-34s %10s %14s\n", "phase", "wall_s", "tasks_per_s");
    printf("%-34s %10.3f %14.0f\n", "parse + validate (.tg text)", r.parse_s,
           r.ntasks / r.parse_s);
    printf("%-34s %10.3f %14.0f\n", "cost lookups (sim_create)", r.setup_s,
           r.ntasks / r.setup_s);
    printf("%-34s %10.3f %14.0f   target >= %.0f: %s\n", "engine (sim_run)", r.engine_s,
           engine_rate, ENGINE_TARGET_TASKS_PER_S,
           engine_rate >= ENGINE_TARGET_TASKS_PER_S ? "met" : "MISSED");
    printf("%-34s %10.3f %14.0f\n", "end to end (parse..summary)", r.total_s, e2e_rate);
    printf("peak memory: %.1f MiB max RSS = %.0f bytes/task   target <= %d: %s\n",
           r.maxrss_kb / 1024.0, bytes_per_task, MEMORY_TARGET_BYTES_PER_TASK,
           bytes_per_task <= MEMORY_TARGET_BYTES_PER_TASK ? "met" : "MISSED");
    return 0;
}

/* `moesched validate`: where simulation and execution meet. Rank 0 simulates the graph with
 * the cost database's profile for the topology's device; then every rank executes it
 * (ex_run); rank 0 compares makespans and per-task durations, and writes one Perfetto trace
 * with predicted and measured side by side and a per-task TSV. docs/CALIBRATION.md. */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/workload_flags.h"
#include "core/json.h"
#include "core/paths.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "exec/backend.h"
#include "exec/ex_mpi.h"
#include "exec/exec.h"
#include "ir/tg.h"
#include "ir/tg_trace.h"
#include "sim/sim.h"

#define WORST 5
#define REPEAT_DEFAULT 3
#define REPEAT_MAX 1000

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N moesched validate --backend host|cuda [--db D]\n"
            "                  (--graph G.tg | <workload flags>) [--topo T] [options]\n"
            "\n"
            "Simulates the graph with the cost database's models for the topology's device,\n"
            "executes it for real (one MPI rank per graph rank), and compares: makespan\n"
            "predicted vs measured, the per-task error distribution and the worst tasks.\n"
            "\n"
            "  --backend NAME      host or cuda\n"
            "  --db PATH           cost database (default: %s)\n"
            "  --graph PATH        task graph in .tg text form\n"
            "  --topo SPEC         topology (default for --graph with the host backend:\n"
            "                      host-cpu:nodes=1,gpus=N)\n"
            "  --net MODEL         analytic (default) or flow\n"
            "  --no-link-fit       keep the topology's link figures (by default the intra-node\n"
            "                      link comes from the database's measured xchg fit for the\n"
            "                      device, when it has one)\n"
            "  --warmup N          untimed executions before the first timed one (default 1)\n"
            "  --repeat N          timed executions (default 3): the run with the median\n"
            "                      makespan is compared; min and max are reported\n"
            "  --trace PATH        one Perfetto trace, predicted and measured side by side\n"
            "  --tasks PATH        TSV: task_id rank stream label predicted_us measured_us\n"
            "                      (durations)\n"
            "  --json              print one JSON object\n"
            "  -h, --help          this text\n\n",
            ms_default_db());
    wl_flags_usage(f);
}

typedef struct task_err {
    uint32_t t;
    double pred_us, meas_us, rel; /* rel = (measured - predicted) / measured */
} task_err;

typedef struct err_stats {
    uint32_t n;
    double median, p90, mean, weighted; /* of |rel|; weighted = sum|diff| / sum measured */
} err_stats;

/* (measured - predicted) / measured, 0 when nothing was measured. */
static double makespan_err(double meas_us, double pred_us)
{
    return meas_us > 0 ? (meas_us - pred_us) / meas_us : 0;
}

/* Worst first: by |measured - predicted| in us, the tasks that move the makespan (a
 * relative error ranks tiny comm tasks first). */
static int cmp_abs_diff(const void *a, const void *b)
{
    const task_err *p = a, *q = b;
    double x = fabs(p->meas_us - p->pred_us), y = fabs(q->meas_us - q->pred_us);
    return x < y ? 1 : x > y ? -1 : 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Statistics of |rel| over tasks of one kind (kind < 0: all; 0 compute/delay; 1 comm). */
static err_stats stats_of(const tg_graph *g, const task_err *e, uint32_t n, int kind)
{
    err_stats s = {0};
    double *v = malloc((n ? n : 1) * sizeof *v), sd = 0, sm = 0;
    if (!v) return s;
    for (uint32_t i = 0; i < n; i++) {
        tg_kind k = tg_task_kind(g, e[i].t);
        int comm = k == TG_KIND_XCHG || k == TG_KIND_COLL;
        if (kind >= 0 && comm != kind) continue;
        v[s.n++] = fabs(e[i].rel);
        s.mean += fabs(e[i].rel);
        sd += fabs(e[i].meas_us - e[i].pred_us), sm += e[i].meas_us;
    }
    if (s.n) {
        qsort(v, s.n, sizeof *v, cmp_dbl);
        s.median = s.n % 2 ? v[s.n / 2] : (v[s.n / 2 - 1] + v[s.n / 2]) / 2;
        s.p90 = v[(uint32_t)ceil(0.9 * s.n) - 1];
        s.mean /= s.n;
        s.weighted = sm > 0 ? sd / sm : 0;
    }
    free(v);
    return s;
}

static void json_stats(ms_json *j, const char *key, const err_stats *s)
{
    ms_json_key(j, key);
    ms_json_obj_begin(j);
    ms_json_kint(j, "tasks", s->n);
    ms_json_knum(j, "median_abs_error", s->median);
    ms_json_knum(j, "p90_abs_error", s->p90);
    ms_json_knum(j, "mean_abs_error", s->mean);
    ms_json_knum(j, "time_weighted_error", s->weighted);
    ms_json_obj_end(j);
}

/* One trace: pid r = rank r as predicted, pid R + r = rank r as measured; sort indices put
 * each rank's two processes next to each other. ts/dur in us, as the simulator's traces. */
static int write_trace(const tg_graph *g, const sim_engine *s, const ex_result *r,
                       const char *path, ms_err *err)
{
    tg_trace tr;
    if (tg_trace_open(&tr, path, err) != 0) return -1;
    int R = g->nranks;
    char name[64];
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < R; k++) {
            int pid = side * R + k;
            snprintf(name, sizeof name, "rank %d %s", k, side ? "measured" : "predicted");
            tg_trace_process(&tr, pid, name, 2 * k + side);
            for (uint32_t st = 0; st < g->nstreams; st++)
                if (g->stream_rank[st] == k) tg_trace_thread(&tr, g, st, pid);
        }
    for (int side = 0; side < 2; side++)
        for (uint32_t t = 0; t < g->ntasks; t++) {
            double ts = side ? r->start_us[t] : sim_task_start(s, t) * 1e6;
            double te = side ? r->end_us[t] : sim_task_end(s, t) * 1e6;
            tg_trace_task(&tr, g, t, side * R + g->rank[t], ts, te, NULL);
        }
    return tg_trace_close(&tr, err);
}

static int write_tasks(const tg_graph *g, const task_err *e, const char *path, ms_err *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return ms_err_set(err, "cannot write '%s'", path);
    fprintf(f, "task_id\trank\tstream\tlabel\tpredicted_us\tmeasured_us\n");
    for (uint32_t i = 0; i < g->ntasks; i++) {
        uint32_t t = e[i].t;
        const char *label = tg_str(g, g->label[t]);
        fprintf(f, "%lld\t%d\t%s\t%s\t%.3f\t%.3f\n", (long long)g->id[t], g->rank[t],
                tg_str(g, g->stream_name[g->stream[t]]),
                label ? label : tg_op_get((tg_op)g->op[t])->name, e[i].pred_us, e[i].meas_us);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return ms_err_set(err, "cannot write '%s'", path);
    return 0;
}

/* Uses the database's newest measured xchg fit for the device as the intra-node link:
 * the analytic model charges a same-node transfer 2 x latency + bytes / bandwidth, so
 * latency = alpha / 2 and bandwidth = 1 / beta. Returns the fit used, or NULL. */
static const cdb_comm_info *apply_link_fit(const cdb *db, topo *t)
{
    const cdb_comm_info *c = cdb_comm_find(db, t->device, "xchg", 0, 0);
    if (!c || strcmp(c->source, "measured") || !(c->beta_s_per_byte > 0)) return NULL;
    t->intra.bw_bytes_per_s = 1 / c->beta_s_per_byte;
    t->intra.latency_s = c->alpha_s > 0 ? c->alpha_s / 2 : 0;
    return c;
}

int cmd_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"backend", required_argument, 0, 'b'}, {"db", required_argument, 0, 'd'},
        {"graph", required_argument, 0, 'g'},   {"topo", required_argument, 0, 't'},
        {"net", required_argument, 0, 'n'},     {"no-link-fit", no_argument, 0, 'L'},
        {"warmup", required_argument, 0, 'w'},  {"repeat", required_argument, 0, 'r'},
        {"trace", required_argument, 0, 'T'},
        {"tasks", required_argument, 0, 'K'},   {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          WL_FLAG_OPTIONS, {0, 0, 0, 0}};
    wl_flags wf;
    wl_flags_init(&wf);
    const char *backend = NULL, *db_path = NULL, *graph_path = NULL, *topo_spec = NULL;
    const char *net_name = "analytic", *trace = NULL, *tasks_path = NULL;
    int json = 0, link_fit = 1, warmup = 1, repeat = REPEAT_DEFAULT, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backend = optarg; break;
        case 'd': db_path = optarg; break;
        case 'g': graph_path = optarg; break;
        case 't': topo_spec = optarg; break;
        case 'n': net_name = optarg; break;
        case 'L': link_fit = 0; break;
        case 'w':
            if (cli_parse_int("validate", "--warmup", optarg, &warmup)) return EXIT_USAGE;
            break;
        case 'r': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 1 || v > REPEAT_MAX) {
                cli_error("validate", "--repeat expects a number of timed runs from 1 to %d, "
                                      "got '%s'",
                          REPEAT_MAX, optarg);
                return EXIT_USAGE;
            }
            repeat = (int)v;
            break;
        }
        case 'T': trace = optarg; break;
        case 'K': tasks_path = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: {
            int w = wl_flags_apply(&wf, "validate", c, optarg);
            if (w < 0) return EXIT_USAGE;
            if (w > 0) break;
            cli_error("validate", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
        }
    }
    if (optind < argc) {
        cli_error("validate", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (!backend || (!graph_path && !wf.any)) {
        cli_error("validate", "--backend and either --graph or workload flags are required "
                              "(moesched validate --help)");
        return EXIT_USAGE;
    }
    if (graph_path && wf.any) {
        cli_error("validate", "give either --graph or workload flags, not both");
        return EXIT_USAGE;
    }
    if (!topo_spec && (wf.any || strcmp(backend, "host"))) {
        cli_error("validate", "--topo is required with workload flags or a backend other than "
                              "host");
        return EXIT_USAGE;
    }
    const net_ops *net = net_find(net_name);
    if (!net) {
        cli_error("validate", "unknown network model '%s' (known: analytic, flow)", net_name);
        return EXIT_USAGE;
    }

    const ex_backend *b;
    int st = cli_mpi_begin("validate", &argc, &argv, backend, &b);
    if (st) return st;
    ms_err err = {{0}};
    int rank = ex_world_rank(), world = ex_world_size();
    char spec[128];
    if (!topo_spec) {
        snprintf(spec, sizeof spec, "host-cpu:nodes=1,gpus=%d", world);
        topo_spec = spec;
    }
    topo t;
    tg_graph *g = NULL;
    cdb *db = NULL;
    sim_engine *s = NULL;
    const cdb_comm_info *link = NULL;
    ex_result *runs = NULL; /* [repeat]: the timed runs (rank 0 holds their timelines) */
    double tokens = 0;
    /* every rank builds the same graph; rank 0 reports problems */
    if (topo_load(topo_spec, &t, &err) != 0) {
        if (rank == 0) cli_error("validate", "%s", err.msg);
        st = EXIT_INPUT;
    } else if (graph_path) {
        if (!(g = tg_parse_file(graph_path, &err))) {
            if (rank == 0) cli_error("validate", "%s", err.msg);
            st = EXIT_INPUT;
        }
    } else {
        /* the builder prints its own errors: only rank 0's reach the terminal */
        int saved = -1;
        if (rank != 0) {
            fflush(stderr);
            saved = dup(2);
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) dup2(null, 2), close(null);
        }
        g = wl_flags_build(&wf, "validate", &t, &tokens);
        if (saved >= 0) {
            fflush(stderr);
            dup2(saved, 2);
            close(saved);
        }
        if (!g) st = EXIT_INPUT;
    }
    if (!st && g->nranks != world) {
        if (rank == 0)
            cli_error("validate", "the graph has %d ranks but %d MPI processes were started: run "
                                  "it with mpirun -np %d",
                      g->nranks, world, g->nranks);
        st = EXIT_INPUT;
    }
    const char *what = graph_path ? graph_path : "workload";
    if (!st && rank == 0) { /* the prediction, before anything runs */
        db = cdb_open(db_path ? db_path : ms_default_db(), &err);
        if (!db) {
            cli_error("validate", "%s", err.msg);
            st = EXIT_INPUT;
        } else {
            if (link_fit) link = apply_link_fit(db, &t);
            s = sim_create(g, &t, db, net, &err);
            if (!s || sim_run(s, &err) != 0) {
                cli_error("validate", "%s: simulation: %s", what, err.msg);
                st = EXIT_INPUT;
            }
        }
    }
    if ((st = cli_share_status(st)) != 0) goto out;

    /* --repeat timed runs; the warm-up passes only before the first (the later runs find
     * the process warm). The run with the median makespan is the one compared. */
    runs = calloc((size_t)repeat, sizeof *runs);
    if (!runs) {
        cli_error("validate", "rank %d: out of memory", rank);
        ex_abort(EXIT_INPUT, "out of memory");
    }
    for (int i = 0; i < repeat; i++) {
        ex_options opt;
        ex_options_defaults(&opt);
        opt.warmup = i == 0 ? warmup : 0;
        int rc = ex_run(g, b, &opt, &runs[i], &err);
        if (rc == EX_STUCK) ex_abort(EXIT_INPUT, err.msg);
        if (rc != 0) {
            if (rank == 0) cli_error("validate", "%s: execution: %s", what, err.msg);
            st = EXIT_INPUT;
            goto out;
        }
    }
    if (rank != 0) goto out;

    /* the median run (for an even count the lower middle one), min and max */
    int *order = malloc((size_t)repeat * sizeof *order);
    if (!order) {
        cli_error("validate", "out of memory");
        st = EXIT_INPUT;
        goto out;
    }
    for (int i = 0; i < repeat; i++) order[i] = i;
    for (int i = 1; i < repeat; i++) /* insertion sort by makespan, stable */
        for (int k = i; k > 0; k--) {
            if (!(runs[order[k]].makespan_us < runs[order[k - 1]].makespan_us)) break;
            int x = order[k];
            order[k] = order[k - 1], order[k - 1] = x;
        }
    int median_run = order[(repeat - 1) / 2];
    double meas_min_us = runs[order[0]].makespan_us;
    double meas_max_us = runs[order[repeat - 1]].makespan_us;
    free(order);
    const ex_result *rr = &runs[median_run];

    /* compare, task by task */
    const sim_summary *sum = sim_get_summary(s);
    double pred_ms_us = sum->makespan_s * 1e6, meas_ms_us = rr->makespan_us;
    double ms_err_rel = makespan_err(meas_ms_us, pred_ms_us);
    task_err *e = malloc((g->ntasks ? g->ntasks : 1) * sizeof *e);
    if (!e) {
        cli_error("validate", "out of memory");
        st = EXIT_INPUT;
        goto out;
    }
    for (uint32_t i = 0; i < g->ntasks; i++) {
        e[i].t = i;
        e[i].pred_us = (sim_task_end(s, i) - sim_task_start(s, i)) * 1e6;
        e[i].meas_us = rr->end_us[i] - rr->start_us[i];
        e[i].rel = e[i].meas_us > 0 ? (e[i].meas_us - e[i].pred_us) / e[i].meas_us
                   : e[i].pred_us > 0 ? -1
                                      : 0;
    }
    err_stats all = stats_of(g, e, g->ntasks, -1), comp = stats_of(g, e, g->ntasks, 0),
              comm = stats_of(g, e, g->ntasks, 1);
    if (tasks_path && write_tasks(g, e, tasks_path, &err)) {
        cli_error("validate", "%s", err.msg);
        st = EXIT_INPUT;
    }
    if (!st && trace && write_trace(g, s, rr, trace, &err)) {
        cli_error("validate", "%s", err.msg);
        st = EXIT_INPUT;
    }
    task_err *worst = malloc((g->ntasks ? g->ntasks : 1) * sizeof *worst);
    uint32_t nworst = 0;
    if (worst) {
        memcpy(worst, e, g->ntasks * sizeof *e);
        qsort(worst, g->ntasks, sizeof *worst, cmp_abs_diff);
        nworst = g->ntasks < WORST ? g->ntasks : WORST;
    }
    if (json) {
        ms_json j;
        ms_json_init(&j, stdout);
        ms_json_obj_begin(&j);
        ms_json_kstr(&j, "graph", what);
        ms_json_kstr(&j, "backend", b->name);
        ms_json_kstr(&j, "topology", t.name);
        ms_json_kstr(&j, "device", t.device);
        ms_json_kstr(&j, "db", cdb_path(db));
        ms_json_kint(&j, "ranks", g->nranks);
        ms_json_kint(&j, "tasks", g->ntasks);
        ms_json_knum(&j, "predicted_makespan_us", pred_ms_us);
        ms_json_knum(&j, "measured_makespan_us", meas_ms_us);
        ms_json_knum(&j, "makespan_error", ms_err_rel);
        ms_json_kint(&j, "repeat", repeat);
        ms_json_kint(&j, "median_run", median_run);
        ms_json_key(&j, "measured_makespans_us");
        ms_json_arr_begin(&j);
        for (int i = 0; i < repeat; i++) ms_json_num(&j, runs[i].makespan_us);
        ms_json_arr_end(&j);
        ms_json_knum(&j, "measured_makespan_min_us", meas_min_us);
        ms_json_knum(&j, "measured_makespan_max_us", meas_max_us);
        ms_json_knum(&j, "makespan_error_min", makespan_err(meas_min_us, pred_ms_us));
        ms_json_knum(&j, "makespan_error_max", makespan_err(meas_max_us, pred_ms_us));
        ms_json_knum(&j, "clock_err_us", rr->clock_err_us);
        ms_json_key(&j, "link");
        ms_json_obj_begin(&j);
        ms_json_knum(&j, "intra_bw_bytes_per_s", t.intra.bw_bytes_per_s);
        ms_json_knum(&j, "intra_latency_s", t.intra.latency_s);
        ms_json_kstr(&j, "from", link ? "measured xchg fit" : "topology");
        ms_json_obj_end(&j);
        json_stats(&j, "per_task", &all);
        json_stats(&j, "compute_tasks", &comp);
        json_stats(&j, "comm_tasks", &comm);
        ms_json_key(&j, "worst_tasks");
        ms_json_arr_begin(&j);
        for (uint32_t i = 0; i < nworst; i++) {
            uint32_t tt = worst[i].t;
            ms_json_obj_begin(&j);
            ms_json_kint(&j, "task_id", g->id[tt]);
            ms_json_kint(&j, "rank", g->rank[tt]);
            ms_json_kstr(&j, "stream", tg_str(g, g->stream_name[g->stream[tt]]));
            ms_json_kstr(&j, "label", tg_str(g, g->label[tt]));
            ms_json_kstr(&j, "op", tg_op_get((tg_op)g->op[tt])->name);
            ms_json_knum(&j, "predicted_us", worst[i].pred_us);
            ms_json_knum(&j, "measured_us", worst[i].meas_us);
            ms_json_knum(&j, "error", worst[i].rel);
            ms_json_obj_end(&j);
        }
        ms_json_arr_end(&j);
        ms_json_obj_end(&j);
        fputc('\n', stdout);
    } else {
        printf("validate        %s: %u tasks on %d ranks, %s backend\n", what, g->ntasks,
               g->nranks, b->name);
        printf("prediction      %s (device %s), %s network, db %s\n", t.name, t.device,
               net->name, cdb_path(db));
        printf("intra link      %.4g GB/s, %.3g us latency (%s)\n",
               t.intra.bw_bytes_per_s / 1e9, t.intra.latency_s * 1e6,
               link ? "the database's measured xchg fit" : "the topology's figures");
        static const char *const ops[] = {"gemm", "attn", "ffn", "gate"};
        for (size_t k = 0; k < 4; k++) {
            int composed = 0;
            const cdb_model_info *m = cdb_model_used(db, t.device, ops[k], &composed);
            if (m)
                printf("%-15s %s%s %s (%s)\n", k ? "" : "cost models", ops[k],
                       composed ? " composed from gemm:" : ":", m->form, m->source);
        }
        printf("\npredicted makespan  %12.1f us\n", pred_ms_us);
        printf("measured makespan   %12.1f us   (clocks aligned within %.1f us)\n", meas_ms_us,
               rr->clock_err_us);
        if (repeat > 1)
            printf("                                  median of %d runs (run %d), min %.1f us, "
                   "max %.1f us\n",
                   repeat, median_run + 1, meas_min_us, meas_max_us);
        printf("makespan error      %+11.1f %%   ((measured - predicted) / measured)\n",
               ms_err_rel * 100);
        if (repeat > 1)
            printf("                                  %+.1f %% to %+.1f %% over the runs\n",
                   makespan_err(meas_min_us, pred_ms_us) * 100,
                   makespan_err(meas_max_us, pred_ms_us) * 100);
        printf("\nper-task duration |error|   median     p90    mean  time-weighted\n");
        const err_stats *ss[] = {&all, &comp, &comm};
        const char *sn[] = {"all", "compute", "comm"};
        for (int k = 0; k < 3; k++)
            if (ss[k]->n)
                printf("  %-8s %5u tasks      %6.1f%% %6.1f%% %6.1f%%  %6.1f%%\n", sn[k],
                       ss[k]->n, ss[k]->median * 100, ss[k]->p90 * 100, ss[k]->mean * 100,
                       ss[k]->weighted * 100);
        printf("\nworst tasks (by |measured - predicted|)\n");
        for (uint32_t i = 0; i < nworst; i++) {
            uint32_t tt = worst[i].t;
            const char *label = tg_str(g, g->label[tt]);
            printf("  task %-6lld rank %-3d %-10s %-24s predicted %10.1f us  measured %10.1f us "
                   " %+7.1f%%\n",
                   (long long)g->id[tt], g->rank[tt], tg_str(g, g->stream_name[g->stream[tt]]),
                   label ? label : tg_op_get((tg_op)g->op[tt])->name, worst[i].pred_us,
                   worst[i].meas_us, worst[i].rel * 100);
        }
        if (trace) printf("\ntrace written to %s (open in https://ui.perfetto.dev)\n", trace);
        if (tasks_path) printf("per-task durations written to %s\n", tasks_path);
    }
    if (fflush(stdout) != 0) st = EXIT_INPUT;
    free(worst);
    free(e);
out:
    for (int i = 0; runs && i < repeat; i++) ex_result_release(&runs[i]);
    free(runs);
    st = cli_share_status(st);
    sim_free(s);
    cdb_close(db);
    tg_graph_free(g);
    ex_finalize();
    return st;
}

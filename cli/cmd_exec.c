/* `moesched exec`: runs a task graph for real, one MPI process per graph rank, with the
 * host or cuda backend; rank 0 prints the measured makespan and per-rank busy time (text
 * or JSON) and writes the measured trace. Also ex_backend_find, which may see cuda. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/workload_flags.h"
#include "core/json.h"
#include "core/topo.h"
#include "exec/backend.h"
#include "exec/backend_cuda.h"
#include "exec/exec.h"
#include "ir/tg.h"

const ex_backend *ex_backend_find(const char *name, ms_err *err)
{
    return ex_backend_lookup(name, EX_BACKEND_CUDA, err);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N moesched exec --backend host|cuda (--graph G.tg | --workload\n"
            "       dep ...) [options]\n"
            "\n"
            "Runs the task graph for real, one MPI process per graph rank (N must equal the\n"
            "graph's ranks). Rank 0 prints the measured makespan and per-rank busy time.\n"
            "\n"
            "  --backend NAME      host (threads + MPI + OpenBLAS) or cuda (streams + NCCL)\n"
            "  --graph PATH        task graph in .tg text form (docs/IR.md)\n"
            "  --topo SPEC         topology for workload flags (default host-cpu:nodes=1,\n"
            "                      gpus=N with N the number of MPI processes)\n"
            "  --trace PATH        write the measured timeline as a Perfetto trace (us)\n"
            "  --check             real MoE math on random weights and inputs, compared with a\n"
            "                      single-process reference (host backend): DEP graphs run the\n"
            "                      forward; training graphs forward + backward, and compare\n"
            "                      the gradients (with --graph also give --model and --layers)\n"
            "  --watchdog S        a pass not finished after S seconds is an error naming the\n"
            "                      rank, stream and task (default 60)\n"
            "  --warmup N          untimed passes before the timed one (default 1)\n"
            "  --seed N            random weights and inputs of --check (and zipf routing)\n"
            "  --json              print one JSON object\n"
            "  -h, --help          this text\n\n");
    wl_flags_usage(f);
}

/* Per-rank figures from the gathered timeline: busy = union of the rank's task
 * intervals; compute = sum of compute/delay task durations; comm = sum of comm ones. */
typedef struct rank_fig {
    double busy_us, compute_us, comm_us;
} rank_fig;

static int cmp_d2(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static int rank_figures(const tg_graph *g, const ex_result *res, rank_fig *fig)
{
    double *iv = malloc(2 * ((size_t)g->ntasks + 1) * sizeof *iv);
    if (!iv) return -1;
    for (int r = 0; r < g->nranks; r++) {
        size_t n = 0;
        rank_fig f = {0, 0, 0};
        for (uint32_t t = 0; t < g->ntasks; t++) {
            if (g->rank[t] != r) continue;
            double d = res->end_us[t] - res->start_us[t];
            tg_kind k = tg_task_kind(g, t);
            if (k == TG_KIND_XCHG || k == TG_KIND_COLL) f.comm_us += d;
            else f.compute_us += d;
            iv[2 * n] = res->start_us[t];
            iv[2 * n + 1] = res->end_us[t];
            n++;
        }
        qsort(iv, n, 2 * sizeof *iv, cmp_d2);
        double cur_s = -INFINITY, cur_e = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (iv[2 * i] > cur_e) {
                if (cur_e > cur_s) f.busy_us += cur_e - cur_s;
                cur_s = iv[2 * i];
                cur_e = iv[2 * i + 1];
            } else if (iv[2 * i + 1] > cur_e) {
                cur_e = iv[2 * i + 1];
            }
        }
        if (cur_e > cur_s) f.busy_us += cur_e - cur_s;
        fig[r] = f;
    }
    free(iv);
    return 0;
}

static void print_json(const tg_graph *g, const ex_backend *b, const ex_result *res,
                       const rank_fig *fig, int check)
{
    ms_json j;
    ms_json_init(&j, stdout);
    ms_json_obj_begin(&j);
    ms_json_kstr(&j, "backend", b->name);
    ms_json_kint(&j, "ranks", g->nranks);
    ms_json_kint(&j, "tasks", g->ntasks);
    ms_json_knum(&j, "measured_makespan_us", res->makespan_us);
    ms_json_knum(&j, "clock_err_us", res->clock_err_us);
    ms_json_key(&j, "per_rank");
    ms_json_arr_begin(&j);
    for (int r = 0; r < g->nranks; r++) {
        ms_json_obj_begin(&j);
        ms_json_kint(&j, "rank", r);
        ms_json_knum(&j, "busy_us", fig[r].busy_us);
        ms_json_knum(&j, "compute_us", fig[r].compute_us);
        ms_json_knum(&j, "comm_us", fig[r].comm_us);
        ms_json_obj_end(&j);
    }
    ms_json_arr_end(&j);
    if (check) {
        ms_json_key(&j, "check");
        ms_json_obj_begin(&j);
        ms_json_knum(&j, "max_rel_err", res->check_max_rel_err);
        ms_json_knum(&j, "tolerance", res->check_tolerance);
        ms_json_key(&j, "ok");
        ms_json_bool(&j, res->check_ok);
        ms_json_obj_end(&j);
    }
    ms_json_obj_end(&j);
    fputc('\n', stdout);
}

static void restore_stderr(int *saved_fd)
{
    if (*saved_fd < 0) return;
    fflush(stderr);
    dup2(*saved_fd, 2);
    close(*saved_fd);
    *saved_fd = -1;
}

int cmd_exec(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    ms_err err = {{0}};
    if (ex_init(&argc, &argv, &err) != 0) {
        cli_error("exec", "%s", err.msg);
        return EXIT_INPUT;
    }
    int me = ex_world_rank(), nproc = ex_world_size();
    int quiet = me != 0; /* the same usage errors arise on every rank: rank 0 reports */
    static const struct option opts[] = {
        {"backend", required_argument, 0, 'b'}, {"graph", required_argument, 0, 'g'},
        {"topo", required_argument, 0, 't'},    {"trace", required_argument, 0, 'T'},
        {"check", no_argument, 0, 'c'},         {"watchdog", required_argument, 0, 'w'},
        {"warmup", required_argument, 0, 'W'},  {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},          WL_FLAG_OPTIONS, {0, 0, 0, 0}};
    wl_flags wf;
    wl_flags_init(&wf);
    const char *backend = NULL, *graph_path = NULL, *topo_spec = NULL, *trace = NULL;
    ex_options opt;
    ex_options_defaults(&opt);
    int json = 0, c, rc = EXIT_USAGE;
    int build_flags = 0, check_flags = 0; /* workload flags that build a graph / name its model */
    ex_result res = {0};
    tg_graph *g = NULL;
    int saved_fd = -1;
    if (quiet) { /* rank > 0's copies of the flag and graph messages go to /dev/null */
        int devnull = open("/dev/null", O_WRONLY);
        fflush(stderr);
        if (devnull >= 0) {
            saved_fd = dup(2);
            dup2(devnull, 2);
            close(devnull);
        }
    }
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backend = optarg; break;
        case 'g': graph_path = optarg; break;
        case 't': topo_spec = optarg; break;
        case 'T': trace = optarg; break;
        case 'c': opt.check = 1; break;
        case 'w':
            if (cli_parse_double("exec", "--watchdog", optarg, &opt.watchdog_s)) goto usage_out;
            if (opt.watchdog_s <= 0) {
                cli_error("exec", "--watchdog must be positive (got %s)", optarg);
                goto usage_out;
            }
            break;
        case 'W':
            if (cli_parse_int("exec", "--warmup", optarg, &opt.warmup)) goto usage_out;
            break;
        case 'j': json = 1; break;
        default: {
            int w = wl_flags_apply(&wf, "exec", c, optarg);
            if (w < 0) goto usage_out;
            if (w > 0) {
                if (c == 1002 || c == 1012) check_flags = 1; /* --model, --layers */
                else if (c != 1013) build_flags = 1;         /* all but --seed */
                break;
            }
            cli_error("exec", "unknown or incomplete option '%s'", argv[optind - 1]);
            goto usage_out;
        }
        }
    }
    if (optind < argc) {
        cli_error("exec", "unexpected argument '%s'", argv[optind]);
        goto usage_out;
    }
    if (!backend) {
        cli_error("exec", "--backend host|cuda is required (moesched exec --help)");
        goto usage_out;
    }
    if (!graph_path && !wf.any) {
        cli_error("exec", "either --graph or --workload is required (moesched exec --help)");
        goto usage_out;
    }
    if (graph_path && build_flags) {
        cli_error("exec", "give either --graph or workload flags, not both (with --graph, "
                          "--check takes --model and --layers)");
        goto usage_out;
    }
    if (graph_path && check_flags && !opt.check) {
        cli_error("exec", "--model and --layers with --graph are for --check (the model the "
                          "graph was built for)");
        goto usage_out;
    }
    const ex_backend *b = ex_backend_find(backend, &err);
    if (!b) {
        cli_error("exec", "%s", err.msg);
        goto usage_out;
    }

    /* every rank builds (or reads) the same graph: both are deterministic */
    rc = EXIT_INPUT;
    if (graph_path) {
        g = tg_parse_file(graph_path, &err);
        if (!g) cli_error("exec", "%s", err.msg);
        opt.model = wf.model;
        opt.model_layers = wf.layers > 0 ? wf.layers : 0;
    } else {
        char spec[64];
        if (!topo_spec) {
            snprintf(spec, sizeof spec, "host-cpu:nodes=1,gpus=%d", nproc);
            topo_spec = spec;
        }
        topo t;
        if (topo_load(topo_spec, &t, &err) != 0) {
            cli_error("exec", "%s", err.msg);
        } else {
            double tokens = 0;
            g = wl_flags_build(&wf, "exec", &t, &tokens);
        }
        opt.model = wf.model ? wf.model : NULL;
        opt.model_layers = wf.layers > 0 ? wf.layers : 0;
    }
    restore_stderr(&saved_fd);
    if (!g) {
        ex_finalize();
        return EXIT_INPUT;
    }
    opt.seed = wf.seed;
    if (opt.check && !opt.model) {
        if (!quiet)
            cli_error("exec", "--check with --graph needs --model (and --layers when the graph "
                              "was built with it): the model the graph was built for");
        tg_graph_free(g);
        ex_finalize();
        return EXIT_USAGE;
    }
    if (g->nranks != nproc) {
        if (!quiet)
            cli_error("exec", "the graph has %d ranks but %d MPI processes were started: run "
                              "mpirun -np %d moesched exec ...", g->nranks, nproc, g->nranks);
        tg_graph_free(g);
        ex_finalize();
        return EXIT_INPUT;
    }

    int r = ex_run(g, b, &opt, &res, &err);
    if (r != 0) {
        cli_error("exec", "%s", err.msg);
        if (r == EX_STUCK) {
            tg_graph_free(g);
            ex_abort(EXIT_INPUT, NULL);
        }
        goto out;
    }
    rc = 0;
    if (me == 0) {
        rank_fig *fig = calloc((size_t)g->nranks + 1, sizeof *fig);
        if (!fig || rank_figures(g, &res, fig) != 0) {
            cli_error("exec", "out of memory");
            free(fig);
            rc = EXIT_INPUT;
            goto out;
        }
        if (json) {
            print_json(g, b, &res, fig, opt.check);
        } else {
            printf("backend         %s, %d ranks, %u tasks\n", b->name, g->nranks, g->ntasks);
            printf("makespan        %.3f ms measured (clock alignment within %.1f us)\n",
                   res.makespan_us * 1e-3, res.clock_err_us);
            for (int k = 0; k < g->nranks; k++)
                printf("rank %-3d        busy %.3f ms (%.1f%%), compute %.3f ms, comm %.3f ms\n",
                       k, fig[k].busy_us * 1e-3,
                       res.makespan_us > 0 ? 100 * fig[k].busy_us / res.makespan_us : 0,
                       fig[k].compute_us * 1e-3, fig[k].comm_us * 1e-3);
            if (opt.check)
                printf("check           max relative error %.3g (tolerance %.3g): %s\n",
                       res.check_max_rel_err, res.check_tolerance,
                       res.check_ok ? "ok" : "FAILED");
        }
        free(fig);
        if (trace && ex_write_trace(g, &res, trace, &err) != 0) {
            cli_error("exec", "%s", err.msg);
            rc = EXIT_INPUT;
        }
    }
    if (opt.check && !res.check_ok) {
        if (me == 0)
            cli_error("exec", "check failed: max relative error %.3g exceeds the tolerance %.3g",
                      res.check_max_rel_err, res.check_tolerance);
        rc = EXIT_INPUT;
    }
out:
    ex_result_release(&res);
    tg_graph_free(g);
    ex_finalize();
    return rc;
usage_out:
    restore_stderr(&saved_fd);
    ex_finalize();
    return rc;
}

/* `moesched sim`: simulate a task graph on a topology, print the summary (text or JSON)
 * and optionally write a Perfetto trace. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/workload_flags.h"
#include "core/paths.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"
#include "sim/sim.h"
#include "solver/solve.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched sim (--graph G.tg | --workload dep|train ...) --topo T [options]\n"
            "\n"
            "Simulates the task graph G, or one built from workload flags, on topology T (a\n"
            "name in topologies/, a YAML path, or a generated spec such as h100:nodes=4) with\n"
            "compute costs from the cost DB.\n"
            "\n"
            "  --graph PATH        task graph in .tg text form (docs/IR.md)\n"
            "  --topo SPEC         topology: NAME | PATH | DEVICE:nodes=N[,gpus=G,...]\n"
            "  --db PATH           cost database (default: %s)\n"
            "  --net MODEL         network model: analytic (default) or flow (docs/SIM.md)\n"
            "  --trace PATH        write a Chrome/Perfetto trace (JSON, times in us)\n"
            "  --trace-from-us T   only tasks ending at or after T us go into the trace\n"
            "  --trace-to-us T     only tasks starting before T us go into the trace\n"
            "  --json              print one JSON object (makespan_us, tasks, events,\n"
            "                      sim_wall_s, bound_makespan_us, per-rank and per-stream\n"
            "                      figures; throughput_tokens_per_s and bound_tokens_per_s\n"
            "                      with workload flags)\n"
            "  -h, --help          this text\n\n",
            ms_default_db());
    wl_flags_usage(f);
}

int cmd_sim(int argc, char **argv)
{
    static const struct option opts[] = {
        {"graph", required_argument, 0, 'g'},  {"topo", required_argument, 0, 't'},
        {"db", required_argument, 0, 'd'},     {"net", required_argument, 0, 'n'},
        {"trace", required_argument, 0, 'T'},  {"trace-from-us", required_argument, 0, 'F'},
        {"trace-to-us", required_argument, 0, 'U'}, {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},         WL_FLAG_OPTIONS, {0, 0, 0, 0}};
    wl_flags wf;
    wl_flags_init(&wf);
    const char *graph_path = NULL, *topo_spec = NULL, *db_path = NULL, *trace = NULL;
    const char *net_name = "analytic";
    double from_us = 0, to_us = INFINITY;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'g': graph_path = optarg; break;
        case 't': topo_spec = optarg; break;
        case 'd': db_path = optarg; break;
        case 'n': net_name = optarg; break;
        case 'T': trace = optarg; break;
        case 'F':
            if (cli_parse_double("sim", "--trace-from-us", optarg, &from_us)) return EXIT_USAGE;
            break;
        case 'U':
            if (cli_parse_double("sim", "--trace-to-us", optarg, &to_us)) return EXIT_USAGE;
            break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: {
            int w = wl_flags_apply(&wf, "sim", c, optarg);
            if (w < 0) return EXIT_USAGE;
            if (w > 0) break;
            cli_error("sim", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
        }
    }
    if (optind < argc) {
        cli_error("sim", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if ((!graph_path && !wf.any) || !topo_spec) {
        cli_error("sim", "--topo and either --graph or --workload are required "
                         "(moesched sim --help)");
        return EXIT_USAGE;
    }
    if (graph_path && wf.any) {
        cli_error("sim", "give either --graph or workload flags, not both");
        return EXIT_USAGE;
    }
    const net_ops *net = net_find(net_name);
    if (!net) {
        cli_error("sim", "unknown network model '%s' (known: analytic, flow)", net_name);
        return EXIT_USAGE;
    }
    ms_err err = {{0}};
    topo t;
    if (topo_load(topo_spec, &t, &err) != 0) {
        cli_error("sim", "%s", err.msg);
        return EXIT_INPUT;
    }
    double tokens = 0;
    tg_graph *g = graph_path ? tg_parse_file(graph_path, &err) : wl_flags_build(&wf, "sim", &t, &tokens);
    if (!g) {
        if (graph_path) cli_error("sim", "%s", err.msg);
        return EXIT_INPUT;
    }
    const char *what = graph_path ? graph_path : "workload";
    cdb *db = cdb_open(db_path ? db_path : ms_default_db(), &err);
    if (!db) {
        cli_error("sim", "%s", err.msg);
        tg_graph_free(g);
        return EXIT_INPUT;
    }
    int rc = EXIT_INPUT;
    sim_engine *s = sim_create(g, &t, db, net, &err);
    if (!s || sim_run(s, &err) != 0) {
        cli_error("sim", "%s: %s", what, err.msg);
        goto out;
    }
    if (trace && sim_write_trace(s, trace, from_us, to_us, &err) != 0) {
        cli_error("sim", "%s", err.msg);
        goto out;
    }
    double bound = 0;
    if (solve_bound(g, &t, db, &bound, &err) != 0) {
        cli_error("sim", "%s: bound: %s", what, err.msg);
        goto out;
    }
    if (json) sim_write_json(s, stdout, tokens, bound);
    else {
        if (graph_path) printf("graph           %s\n", graph_path);
        else if (wl_flags_is_train(&wf)) {
            const wl_train_params *tp = &wf.tp;
            int ep = 0, esp = 0, dp = 0;
            ms_err e2 = {{0}};
            wl_train_layout(&wf.m, &t, tp, &ep, &esp, &dp, &e2);
            printf("workload        train %s, %s (%d layers), batch=%d seq=%d capacity=%g "
                   "ep=%d esp=%d dp=%d r=%d%s%s\n",
                   wl_train_sched_name(tp->sched), wf.m.name, wf.m.layers, tp->batch, tp->seq,
                   tp->capacity, ep, esp, dp, tp->r, wf.rf ? " rf=" : "", wf.rf ? wf.rf : "");
            if (wf.rb) printf("                rb=%s\n", wf.rb);
            if (wf.pieces) printf("                pieces=%s\n", wf.pieces);
            printf("step time       %.3f ms\n", sim_get_summary(s)->makespan_s * 1e3);
        } else {
            char order[WL_ORDER_STRLEN];
            wl_order_format(wf.p.order, wf.p.order_mask, wf.p.r1, order, sizeof order);
            printf("workload        dep %s, %s, ag=%d eg=%d seq=%d r1=%d ma=%d r2=%d %s %s, "
                   "%s exchanges\n",
                   wl_dep_sched_name(wf.p.sched), wf.m.name, wf.p.ag, wf.p.eg, wf.p.seq,
                   wf.p.r1, wf.p.ma, wf.p.r2, order,
                   wf.p.phase == WL_DECODE ? "decode" : "prefill",
                   wl_dep_uses_m2n(&wf.p) ? "m2n" : "pairwise");
        }
        sim_print_summary(s, stdout, tokens, bound);
        if (trace) printf("\ntrace written to %s (open in https://ui.perfetto.dev)\n", trace);
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_INPUT;
out:
    sim_free(s);
    cdb_close(db);
    tg_graph_free(g);
    return rc;
}

/* `moesched graph`: read a task graph, validate it, and write its canonical form. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/workload_flags.h"
#include "core/topo.h"
#include "ir/tg.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: moesched graph (--in G.tg | --workload dep|train ... --topo T) [--out H.tg]\n\n"
               "Parses and validates G (docs/IR.md lists every check), or builds the graph the\n"
               "workload flags describe, prints a one-line summary, and with --out writes the\n"
               "canonical text form (- for stdout). `moesched sim --graph H.tg` then\n"
               "reproduces the simulation of the same flags exactly.\n\n"
               "  --topo SPEC         topology the workload is built for (with workload flags)\n\n");
    wl_flags_usage(f);
}

int cmd_graph(int argc, char **argv)
{
    static const struct option opts[] = {{"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"topo", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         WL_FLAG_OPTIONS,
                                         {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL, *topo_spec = NULL;
    wl_flags wf;
    wl_flags_init(&wf);
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 't': topo_spec = optarg; break;
        case 'h': usage(stdout); return 0;
        default: {
            int w = wl_flags_apply(&wf, "graph", c, optarg);
            if (w < 0) return EXIT_USAGE;
            if (w > 0) break;
            cli_error("graph", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
        }
    }
    if ((!in && !wf.any) || (in && wf.any) || optind < argc) {
        cli_error("graph", "give either --in G.tg or workload flags (moesched graph --help)");
        return EXIT_USAGE;
    }
    if (wf.any && !topo_spec) {
        cli_error("graph", "workload flags need --topo");
        return EXIT_USAGE;
    }
    ms_err err = {{0}};
    tg_graph *g;
    if (in) {
        g = tg_parse_file(in, &err);
        if (!g) {
            cli_error("graph", "%s", err.msg);
            return EXIT_INPUT;
        }
    } else {
        topo t;
        if (topo_load(topo_spec, &t, &err) != 0) {
            cli_error("graph", "%s", err.msg);
            return EXIT_INPUT;
        }
        double tokens;
        g = wl_flags_build(&wf, "graph", &t, &tokens);
        if (!g) return EXIT_INPUT;
        in = "workload";
    }
    int rc = 0;
    if (out) {
        int wrc = out[0] == '-' && !out[1] ? tg_write(g, stdout, &err)
                                            : tg_write_file(g, out, &err);
        if (wrc != 0) {
            cli_error("graph", "%s", err.msg);
            rc = EXIT_INPUT;
        }
    }
    if (!out || (out[0] != '-' || out[1]))
        fprintf(out ? stderr : stdout, "%s: ok: %u tasks, %d ranks, %u streams, %u groups\n",
                in, g->ntasks, g->nranks, g->nstreams, g->ngroups);
    tg_graph_free(g);
    return rc;
}

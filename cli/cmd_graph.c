/* `moesched graph`: read a task graph, validate it, and write its canonical form. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "ir/tg.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: moesched graph --in G.tg [--out H.tg]\n\n"
               "Parses and validates G (docs/IR.md lists every check), prints a one-line\n"
               "summary, and with --out writes the canonical text form (- for stdout).\n");
}

int cmd_graph(int argc, char **argv)
{
    static const struct option opts[] = {{"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *in = NULL, *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            cli_error("graph", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!in || optind < argc) {
        cli_error("graph", "--in is required and takes one file (moesched graph --help)");
        return EXIT_USAGE;
    }
    ms_err err = {{0}};
    tg_graph *g = tg_parse_file(in, &err);
    if (!g) {
        cli_error("graph", "%s", err.msg);
        return EXIT_INPUT;
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

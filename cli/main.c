/* moesched: the command-line entry point. Dispatches to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"sim", cmd_sim, "simulate a task graph on a topology with a cost database"},
    {"graph", cmd_graph, "check a task graph and write it in canonical form"},
    {"topo", cmd_topo, "resolve and print a topology (name, file or generated spec)"},
    {"db", cmd_db, "list or build a cost database"},
    {"solve", cmd_solve, "choose a schedule (DEP inference or MoE training)"},
    {"repro", cmd_repro, "reproduce a paper's evaluation in simulation (findep, fsmoe)"},
    {"exec", cmd_exec, "run a task graph for real (under mpirun): host or cuda backend"},
    {"calibrate", cmd_calibrate, "time this machine (under mpirun) into a measured cost profile"},
    {"validate", cmd_validate, "simulate and execute one graph (under mpirun), compare them"},
    {"sweep", cmd_sweep, "run a what-if study (YAML spec) into a resumable results database"},
    {"plot", cmd_plot, "draw figures with gnuplot: throughput, speedup, gantt, validate"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: moesched <command> [options]   (moesched <command> --help)\n\n"
               "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moesched: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

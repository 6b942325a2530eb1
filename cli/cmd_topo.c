/* `moesched topo`: resolve a topology spec and print it (YAML-compatible). */
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "core/topo.h"

int cmd_topo(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: moesched topo SPEC\n\n"
               "Prints the topology SPEC resolves to: a name in topologies/, a YAML path, or a\n"
               "generated spec DEVICE:nodes=N[,gpus=G][,intra_GBps=..,intra_us=..,nics=..,\n"
               "nic_GBps=..,nic_us=..] (docs/TOPOLOGY.md).\n");
        return 0;
    }
    if (argc != 2) {
        cli_error("topo", "expects exactly one topology spec (moesched topo --help)");
        return EXIT_USAGE;
    }
    topo t;
    ms_err err = {{0}};
    if (topo_load(argv[1], &t, &err) != 0) {
        cli_error("topo", "%s", err.msg);
        return EXIT_INPUT;
    }
    topo_print(&t, stdout);
    return 0;
}

/* `moesched db`: list what a cost database holds (devices, links, models, composed ops,
 * communication fits and where each number came from), as text tables or JSON;
 * `moesched db build` makes one from .sql seed profiles (the Makefile builds build/cost.db
 * this way). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "core/paths.h"
#include "costdb/cdb.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched db [--db PATH] [--json]\n"
            "       moesched db build --out PATH FILE.sql...\n"
            "\n"
            "Lists the devices, links and cost models of a cost database, with the source\n"
            "of every figure (measured, paper or datasheet); '*' marks the model used for\n"
            "each device and op. Roofline models show their efficiency curve, paper models\n"
            "their citation; ffn and gate without a model of their own are listed as\n"
            "composed from the device's gemm model; communication fits (e.g. FinDEP's A2E)\n"
            "come last. `db build` creates a database from seed profiles.\n"
            "\n"
            "options:\n"
            "  --db PATH   the database (default: %s)\n"
            "  --json      print one JSON object instead of tables\n"
            "  -h, --help  this text\n",
            ms_default_db());
}

static void build_usage(FILE *f)
{
    fprintf(f, "usage: moesched db build --out PATH FILE.sql...\n"
               "\n"
               "Creates the schema, runs the .sql profiles in the order given inside one\n"
               "transaction and replaces PATH only if all of them succeed.\n"
               "\n"
               "options:\n"
               "  -o, --out PATH  the database to write (required)\n"
               "  -h, --help      this text\n");
}

static int bad_option(char **argv, void (*use)(FILE *))
{
    cli_error("db", "unknown option or missing value in '%s'", argv[optind - 1]);
    use(stderr);
    return EXIT_USAGE;
}

static int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': build_usage(stdout); return 0;
        default: return bad_option(argv, build_usage);
        }
    }
    if (!out) {
        cli_error("db", "build: --out PATH is required");
        build_usage(stderr);
        return EXIT_USAGE;
    }
    ms_err err = {""};
    if (cdb_build(out, (const char *const *)argv + optind, argc - optind, &err)) {
        cli_error("db", "%s", err.msg);
        return EXIT_INPUT;
    }
    return 0;
}

int cmd_db(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "build")) return cmd_build(argc - 1, argv + 1);
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': path = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return bad_option(argv, usage);
        }
    }
    if (optind < argc) {
        cli_error("db", "unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    ms_err err = {""};
    cdb *db = cdb_open(path ? path : ms_default_db(), &err);
    if (!db) {
        cli_error("db", "%s", err.msg);
        return EXIT_INPUT;
    }
    if (json) cdb_print_json(db, stdout);
    else cdb_print(db, stdout);
    cdb_close(db);
    if (fflush(stdout) != 0) {
        cli_error("db", "cannot write the listing");
        return EXIT_INPUT;
    }
    return 0;
}

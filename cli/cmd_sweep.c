/* `moesched sweep`: run a what-if study from a YAML spec into a results database, resuming
 * where it stopped, in parallel processes and shards; `sweep --merge` unions shard
 * databases. The engine is cli/sweep.c; the format is docs/SWEEP.md. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/sweep.h"

#define DEFAULT_RESULTS "sweep.db"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched sweep SPEC.yaml [--db RESULTS.db] [--jobs N] [--shard I/N]\n"
            "                      [--point-timeout S] [--retry-failed]\n"
            "       moesched sweep --merge OUT.db IN.db...\n"
            "\n"
            "Crosses the spec's axes (models x topologies x schedulers x any flag) into\n"
            "points, runs each as `moesched sim|solve ... --json` in its own process and\n"
            "records its result and exact argv in RESULTS.db, one transaction per point.\n"
            "Points already recorded are skipped, so an interrupted sweep resumes where it\n"
            "stopped (docs/SWEEP.md).\n"
            "\n"
            "  --db PATH           results database (default %s); created when absent\n"
            "  --jobs N            points run in parallel (default 1)\n"
            "  --shard I/N         run only points with index %% N == I (0 <= I < N), for\n"
            "                      splitting a sweep across machines; merge with --merge\n"
            "  --point-timeout S   kill a point after S seconds and record it as timeout\n"
            "  --retry-failed      run again the points recorded as failed or timeout\n"
            "  --list              print the points (canonical command and key), run nothing\n"
            "  --merge OUT IN...   copy the rows of the IN results databases into OUT\n"
            "  -h, --help          this text\n"
            "\n"
            "Exit status: 0 when every point of the shard is recorded ok, 1 when some\n"
            "failed (they are rows with status failed/timeout) or on bad input, 2 on bad\n"
            "flags.\n",
            DEFAULT_RESULTS);
}

/* The running binary, so that points run the same moesched. */
static int self_path(char *buf, size_t len, const char *argv0)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n > 0) {
        buf[n] = 0;
        return 0;
    }
    if (!realpath(argv0, buf)) return -1;
    return 0;
}

static int parse_shard(const char *s, int *i, int *n)
{
    char *end;
    long a = strtol(s, &end, 10);
    if (end == s || *end != '/') return -1;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end || b < 1 || b > INT_MAX || a < 0 || a >= b) return -1;
    *i = (int)a, *n = (int)b;
    return 0;
}

static int merge(int argc, char **argv, const char *out)
{
    if (argc < 1) {
        cli_error("sweep", "--merge needs OUT.db and at least one IN.db");
        return EXIT_USAGE;
    }
    ms_err err = {{0}};
    sw_db *db = sw_db_open(out, &err);
    if (!db) {
        cli_error("sweep", "%s", err.msg);
        return EXIT_INPUT;
    }
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        int added = 0;
        if (sw_db_merge(db, argv[i], &added, &err) != 0) {
            cli_error("sweep", "%s", err.msg);
            rc = EXIT_INPUT;
            break;
        }
        printf("merged %s: %d row%s added or replaced\n", argv[i], added, added == 1 ? "" : "s");
    }
    sw_db_close(db);
    return rc;
}

int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, 0, 'd'},        {"jobs", required_argument, 0, 'j'},
        {"shard", required_argument, 0, 's'},     {"point-timeout", required_argument, 0, 'T'},
        {"retry-failed", no_argument, 0, 'R'},    {"merge", required_argument, 0, 'm'},
        {"list", no_argument, 0, 'l'},            {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    sw_options o = {0};
    o.jobs = 1, o.nshards = 1;
    const char *db_path = DEFAULT_RESULTS, *merge_out = NULL;
    int list = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'j':
            if (cli_parse_int("sweep", "--jobs", optarg, &o.jobs)) return EXIT_USAGE;
            if (o.jobs < 1 || o.jobs > 1024) {
                cli_error("sweep", "--jobs must be 1 to 1024 (got %d)", o.jobs);
                return EXIT_USAGE;
            }
            break;
        case 's':
            if (parse_shard(optarg, &o.shard, &o.nshards) != 0) {
                cli_error("sweep", "--shard expects I/N with 0 <= I < N (e.g. 0/4), got '%s'",
                          optarg);
                return EXIT_USAGE;
            }
            break;
        case 'T':
            if (cli_parse_double("sweep", "--point-timeout", optarg, &o.point_timeout_s))
                return EXIT_USAGE;
            if (o.point_timeout_s <= 0) {
                cli_error("sweep", "--point-timeout must be positive (seconds)");
                return EXIT_USAGE;
            }
            break;
        case 'R': o.retry_failed = 1; break;
        case 'm': merge_out = optarg; break;
        case 'l': list = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            cli_error("sweep", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (merge_out) return merge(argc - optind, argv + optind, merge_out);
    if (optind != argc - 1) {
        cli_error("sweep", optind == argc ? "a spec file is required (moesched sweep --help)"
                                          : "one spec file, got more: '%s'",
                  argv[optind + 1 < argc ? optind + 1 : optind]);
        return EXIT_USAGE;
    }
    char bin[PATH_MAX];
    if (self_path(bin, sizeof bin, argv[0]) != 0) {
        cli_error("sweep", "cannot find the moesched binary to run points with");
        return EXIT_INPUT;
    }
    o.bin = bin;
    ms_err err = {{0}};
    sw_spec spec;
    if (sw_spec_load(argv[optind], bin, &spec, &err) != 0) {
        cli_error("sweep", "%s", err.msg);
        return EXIT_INPUT;
    }
    if (list) {
        for (int i = 0; i < spec.npoints; i++)
            if (spec.points[i].index % o.nshards == o.shard)
                printf("%s  %d  %s\n", spec.points[i].key, spec.points[i].index,
                       spec.points[i].canonical);
        sw_spec_release(&spec);
        return 0;
    }
    sw_db *db = sw_db_open(db_path, &err);
    if (!db) {
        cli_error("sweep", "%s", err.msg);
        sw_spec_release(&spec);
        return EXIT_INPUT;
    }
    o.progress_bar = isatty(STDOUT_FILENO);
    sw_summary sum;
    int rc = sw_run(&spec, db, &o, &sum, &err);
    if (rc != 0) cli_error("sweep", "%s", err.msg);
    else
        printf("sweep %s: %d ok, %d failed this run, %d skipped (already recorded); %.1f s; "
               "results in %s\n", spec.name, sum.ok, sum.failed, sum.skipped, sum.wall_s,
               db_path);
    sw_db_close(db);
    sw_spec_release(&spec);
    if (rc != 0) return EXIT_INPUT;
    return sum.failed ? EXIT_INPUT : 0;
}

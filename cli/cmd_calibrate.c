/* `moesched calibrate`: run the calibration microbenchmarks on every rank (under mpirun),
 * fit the simulator's model forms, print them (comm in nccl-tests' columns) and write
 * measurements + models into a cost database in one transaction. docs/CALIBRATION.md. */
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "core/paths.h"
#include "costdb/cdb.h"
#include "exec/backend.h"
#include "exec/calibrate.h"
#include "exec/ex_mpi.h"
#include "exec/exec.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N moesched calibrate --backend host|cuda --db D [options]\n"
            "\n"
            "Times a GEMM grid, grouped expert FFNs, attention (prefill and decode), the gate,\n"
            "and xchg/allreduce/allgather/reducescatter over sizes and group sizes (10 warm-up\n"
            "+ 20 timed trials per point), each as a small task graph run by the executor;\n"
            "fits the simulator's model forms and writes measurements and models (source\n"
            "measured) with a calibration_run row into D, in one transaction. A missing D is\n"
            "created from the default profiles; a file that is not a cost database is refused\n"
            "and left untouched; an interrupted run leaves D as it was.\n"
            "\n"
            "  --backend NAME      host (threads + MPI + OpenBLAS) or cuda\n"
            "  --db PATH           cost database to extend or create (required)\n"
            "  --device NAME       device name to record (default: host-cpu for host, the\n"
            "                      GPU's model name for cuda)\n"
            "  --quick             a small grid for tests (a few seconds)\n"
            "  --shapes G.tg       also time every distinct compute shape of graph G; the\n"
            "                      models are then piecewise through all points\n"
            "  --warmup N          warm-up trials per point (default 10)\n"
            "  --trials N          timed trials per point (default 20)\n"
            "  -h, --help          this text\n");
}

/* Set by SIGINT/SIGTERM/SIGHUP while the results are being written: the write is then
 * abandoned before its commit (measuring is simply killed: nothing is written yet). */
static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}
static int was_interrupted(void)
{
    /* test hook: a signal delivered right before the commit (tests/test_calibrate.c) */
    const char *h = getenv("MOESCHED_CALIBRATE_SIGNAL_BEFORE_COMMIT");
    if (h && *h == '1') raise(SIGTERM);
    return interrupted;
}

static void catch_signals(int on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? on_signal : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int cmd_calibrate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"backend", required_argument, 0, 'b'}, {"db", required_argument, 0, 'd'},
        {"device", required_argument, 0, 'D'},  {"quick", no_argument, 0, 'q'},
        {"shapes", required_argument, 0, 's'},  {"warmup", required_argument, 0, 'w'},
        {"trials", required_argument, 0, 't'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *backend = NULL, *db_path = NULL, *device = NULL, *shapes_path = NULL;
    int quick = 0, warmup = 10, trials = 20, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': backend = optarg; break;
        case 'd': db_path = optarg; break;
        case 'D': device = optarg; break;
        case 'q': quick = 1; break;
        case 's': shapes_path = optarg; break;
        case 'w':
            if (cli_parse_int("calibrate", "--warmup", optarg, &warmup)) return EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_int("calibrate", "--trials", optarg, &trials)) return EXIT_USAGE;
            if (trials < 1) {
                cli_error("calibrate", "--trials must be at least 1");
                return EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return 0;
        default:
            cli_error("calibrate", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("calibrate", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (!backend || !db_path) {
        cli_error("calibrate", "--backend and --db are required (moesched calibrate --help)");
        return EXIT_USAGE;
    }
    if (device && (!*device || strlen(device) > 63)) {
        cli_error("calibrate", "--device must be 1 to 63 characters");
        return EXIT_USAGE;
    }

    const ex_backend *b;
    int st = cli_mpi_begin("calibrate", &argc, &argv, backend, &b);
    if (st) return st;
    ms_err err = {{0}};
    int rank = ex_world_rank(), world = ex_world_size();
    char devbuf[256];
    if (!device) {
        if (b->device_name(devbuf, sizeof devbuf, &err) != 0) {
            if (rank == 0) cli_error("calibrate", "device name: %s", err.msg);
            ex_finalize();
            return EXIT_INPUT;
        }
        device = devbuf;
    }

    /* Refuse a bad database before spending minutes measuring (checked again when
     * writing). Only rank 0 touches the file. */
    struct stat sb;
    if (rank == 0 && stat(db_path, &sb) == 0) {
        cdb *db = cdb_open(db_path, &err);
        if (!db) {
            cli_error("calibrate", "%s (refused; the file is left untouched)", err.msg);
            st = EXIT_INPUT;
        }
        cdb_close(db);
    }
    tg_graph *shapes = NULL;
    if (!st && shapes_path && !(shapes = tg_parse_file(shapes_path, &err))) {
        if (rank == 0) cli_error("calibrate", "%s", err.msg);
        st = EXIT_INPUT;
    }
    if ((st = cli_share_status(st)) != 0) {
        tg_graph_free(shapes);
        ex_finalize();
        return st;
    }

    if (rank == 0)
        printf("calibrating device '%s' with the %s backend on %d rank%s (%s grid, %d warm-up "
               "+ %d timed trials per point)\n",
               device, b->name, world, world == 1 ? "" : "s", quick ? "quick" : "full", warmup,
               trials);
    ex_calib_options o = {.quick = quick, .warmup = warmup ? warmup : -1,
                          .timed = trials, .shapes = shapes, .log = rank == 0 ? stdout : NULL};
    ex_calib_result res;
    int rc = ex_calib_measure(b, &o, &res, &err);
    tg_graph_free(shapes);
    if (rc == EX_STUCK) ex_abort(EXIT_INPUT, err.msg);
    if (rc != 0) {
        if (rank == 0) cli_error("calibrate", "%s", err.msg);
        ex_finalize();
        return EXIT_INPUT;
    }
    if (rank != 0) {
        st = cli_share_status(0);
        ex_finalize();
        return st;
    }

    ex_calib_fit *fits = NULL;
    ex_calib_comm_fit *cfits = NULL;
    size_t nfits = 0, ncfits = 0;
    if (ex_calib_fit_all(&res, shapes_path != NULL, &fits, &nfits, &cfits, &ncfits, &err)) {
        cli_error("calibrate", "%s", err.msg);
        st = EXIT_INPUT;
        goto done;
    }
    printf("\ncompute (rank 0 alone, mean of the timed trials; all points measured in %.1f s)\n",
           res.wall_s);
    ex_calib_print_compute(&res, fits, nfits, stdout);
    if (ncfits) {
        printf("\ncommunication (nccl-tests columns: size = bytes per rank, x n for allgather "
               "and reducescatter; algbw = size / time; docs/CALIBRATION.md)");
        ex_calib_print_comm(&res, stdout);
        printf("\ncomm fits t = alpha + beta x bytes\n");
        for (size_t i = 0; i < ncfits; i++)
            printf("  %-13s n=%-3d alpha %8.2f us  beta %.4g s/B (%.3f GB/s)  R2 %.4f\n",
                   cfits[i].op, cfits[i].nranks, cfits[i].alpha_s * 1e6,
                   cfits[i].beta_s_per_byte,
                   cfits[i].beta_s_per_byte > 0 ? 1e-9 / cfits[i].beta_s_per_byte : 0,
                   cfits[i].r2);
    }
    fflush(stdout);

    /* the run's provenance */
    char host[256] = "unknown", date[64], mpi[256], versions[1024];
    gethostname(host, sizeof host - 1);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    ex_calib_mpi_version(mpi, sizeof mpi);
    if (!strcmp(b->name, "host"))
        snprintf(versions, sizeof versions, "MPI: %s; BLAS: %s, %d thread(s)", mpi,
                 openblas_get_config(), openblas_get_num_threads());
    else
        snprintf(versions, sizeof versions,
                 "MPI: %s; %s backend (driver, CUDA, cuBLAS and NCCL versions are not exposed "
                 "by the backend table)",
                 mpi, b->name);
    char note[256];
    snprintf(note, sizeof note, "moesched calibrate, %d ranks, %s grid, %d+%d trials per point%s",
             world, quick ? "quick" : "full", warmup, trials,
             shapes_path ? ", plus the shapes of a graph" : "");
    cdb_run_row run = {host, date, b->name, versions, note};

    glob_t gl;
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s/costdb/profiles/*.sql", ms_data_dir());
    int have_glob = glob(pattern, 0, NULL, &gl) == 0;
    int64_t run_id = 0;
    catch_signals(1);
    rc = ex_calib_write(db_path, have_glob ? (const char *const *)gl.gl_pathv : NULL,
                        have_glob ? (int)gl.gl_pathc : 0, &run, device,
                        !strcmp(b->name, "host") ? "cpu" : "gpu", &res, fits, nfits, cfits,
                        ncfits, was_interrupted, &run_id, &err);
    catch_signals(0);
    if (have_glob) globfree(&gl);
    if (rc) {
        cli_error("calibrate", "%s", err.msg);
        st = interrupted ? 130 : EXIT_INPUT;
        goto done;
    }
    size_t nmeas = res.n;
    printf("\nwrote calibration run %lld to %s: %zu measurements, %zu compute fits, %zu comm "
           "fits (source measured)\n",
           (long long)run_id, db_path, nmeas, nfits, ncfits);
    for (size_t i = 0; i < ncfits; i++)
        if (!strcmp(cfits[i].op, "xchg") && cfits[i].beta_s_per_byte > 0)
            printf("this machine's link for the simulator (moesched validate applies it): "
                   "--topo %s:nodes=1,gpus=%d,intra_GBps=%.4g,intra_us=%.4g\n",
                   device, world, 1e-9 / cfits[i].beta_s_per_byte,
                   fmax(cfits[i].alpha_s, 0) / 2 * 1e6);
    if (interrupted) printf("(a signal arrived after the commit: the run is complete)\n");
done:
    fflush(stdout);
    free(fits);
    free(cfits);
    ex_calib_result_release(&res);
    st = cli_share_status(st);
    ex_finalize();
    return st;
}

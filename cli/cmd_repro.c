/* `moesched repro findep|fsmoe`. fsmoe: FSMoE's layer grid and real models under dsmoe,
 * tutel and fsmoe on two clusters (docs/TRAINING.md). findep: FinDEP's evaluation (arXiv
 * 2512.21487; shared/reference/PAPERS.md) in simulation. For DeepSeek-V2 and Qwen3-235B-A22B, depth-reduced per testbed, on the
 * four testbeds A-D and S in {1024, 2048, 4096, 8192}: PPPipe (its planner, best split)
 * against FinDEP (alg1 and search at the paper's split; with --split auto as extra
 * columns), written as TSV with a gnuplot bar chart; plus the two monotonicity studies
 * (throughput vs m_a at r1 = 1 and vs r1 at m_a = 1). docs/RESULTS.md shows a full run. */
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "core/model.h"
#include "core/paths.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "solver/solve.h"

#define DEFAULT_OUT "out/repro-findep"
#define DEFAULT_OUT_FSMOE "out/repro-fsmoe"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched repro findep|fsmoe [--out DIR] [--quick] [--db D]\n"
            "                      [--net analytic|flow]\n"
            "\n"
            "Reproduces FinDEP's evaluation in simulation (docs/RESULTS.md): DeepSeek-V2 and\n"
            "Qwen3-235B-A22B, depth-reduced per testbed, on testbeds A-D (a6000-1x8, a10-1x8,\n"
            "h20-1x8, h20-4x8) at S = 1024..8192. PPPipe (its planner, best split) against\n"
            "FinDEP's Algorithm 1 and the simulator-verified search at the paper's (ag, eg),\n"
            "and the search under --split auto; plus throughput vs m_a (r1 = 1) and vs r1\n"
            "(m_a = 1) for DeepSeek-V2 with 2 layers on testbeds C and D.\n"
            "\n"
            "  --out DIR     output folder (default %s): findep.tsv, findep_monotonic.tsv\n"
            "                and, when gnuplot is installed, findep_speedup.png and\n"
            "                findep_monotonic.png\n"
            "  --quick       a reduced set (S = 1024 only, no auto-split columns, testbed C\n"
            "                and S = 2048 only for the monotonicity studies, fewer points)\n"
            "  --db PATH     cost database (default: %s)\n"
            "  --net MODEL   network model for simulations: analytic (default) | flow\n"
            "  -h, --help    this text\n"
            "\n"
            "fsmoe: FSMoE's evaluation in simulation (docs/TRAINING.md, docs/RESULTS.md): the\n"
            "1458-point layer grid (traces/fsmoe-grid.tsv) and gpt2-medium-moe, gpt2-xl-moe,\n"
            "mixtral-8x7b, on a100-4x8 (200 Gb/s) and h100-4x8 (400 Gb/s): fsmoe against\n"
            "tutel and dsmoe. Writes fsmoe_grid.tsv, fsmoe_models.tsv, fsmoe_summary.tsv,\n"
            "fsmoe_grid_sorted.tsv and (with gnuplot) fsmoe_grid.png, fsmoe_models.png into\n"
            "--out (default %s); --quick: every 27th grid point, models cut to 4 layers.\n",
            DEFAULT_OUT, ms_default_db(), DEFAULT_OUT_FSMOE);
}

typedef struct testbed {
    const char *label, *topo;
    int ds_layers, qw_layers;
    int ds_ag, ds_eg, qw_ag, qw_eg;
} testbed;

static const testbed testbeds[] = {
    {"A", "a6000-1x8", 8, 24, 3, 5, 4, 4},
    {"B", "a10-1x8", 4, 12, 3, 5, 4, 4},
    {"C", "h20-1x8", 16, 48, 3, 5, 4, 4},
    {"D", "h20-4x8", 16, 48, 8, 24, 8, 24},
};
#define NTESTBEDS (int)(sizeof testbeds / sizeof testbeds[0])

static const char *const model_names[] = {"deepseek-v2", "qwen3-235b-a22b"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mkdir -p; 0 or -1 with errno. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        struct stat st;
        if (stat(buf, &st) != 0) return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        buf[i] = c;
    }
    return 0;
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) cli_error("repro", "cannot write %s: %s", path, strerror(errno));
    return f;
}

/* The AG order as --order spells it: asas, aass, or an A/S string such as AASASS. The
 * buffer is static: one call per printf argument list. */
static const char *order_name(const wl_dep_params *p)
{
    static char buf[2][WL_ORDER_STRLEN];
    static int next;
    char *b = buf[next++ & 1];
    wl_order_format(p->order, p->order_mask, p->r1, b, WL_ORDER_STRLEN);
    return b;
}

/* One solve; 0, or -1 with the error printed (naming what was solved). */
static int run_solve(solve_request *rq, solve_result *res, const char *what)
{
    ms_err err = {{0}};
    if (solve_dep(rq, res, &err) != 0) {
        cli_error("repro", "%s: %s", what, err.msg);
        return -1;
    }
    return 0;
}

/* The source of the model cdb_time uses for (device, op), or "none". */
static const char *model_source(const cdb *db, const char *device, const char *op)
{
    const cdb_model_info *mi = cdb_model_used(db, device, op, NULL);
    return mi ? mi->source : "none";
}

static int gnuplot_available(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Renders plots/NAME.gp with dir set to DIR, or prints the command. 0, or -1 when gnuplot
 * ran and failed. quick: the auto-split columns are NA, so the bar chart leaves them out. */
static int render(const char *name, const char *dir, int quick, int have_gnuplot)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "gnuplot -e \"dir='%s'%s\" '%s/plots/%s.gp'", dir,
             quick ? "; auto=0" : "", ms_data_dir(), name);
    if (!have_gnuplot) {
        printf("plot            gnuplot not found; render later with: %s\n", cmd);
        return 0;
    }
    fflush(stdout);
    if (system(cmd) != 0) {
        cli_error("repro", "gnuplot failed: %s", cmd);
        return -1;
    }
    printf("plot            %s/%s.png\n", dir, name);
    return 0;
}

static int repro_findep(const char *out_dir, int quick, const char *db_path,
                        const net_ops *net)
{
    double t0 = now_s();
    if (strchr(out_dir, '\'') || strchr(out_dir, '"')) {
        cli_error("repro", "--out '%s': quotes are not allowed in the folder name", out_dir);
        return EXIT_USAGE;
    }
    if (make_dirs(out_dir) != 0) {
        cli_error("repro", "cannot create output folder %s: %s", out_dir, strerror(errno));
        return EXIT_INPUT;
    }
    ms_err err = {{0}};
    model_cfg base[2];
    for (int k = 0; k < 2; k++)
        if (model_load(model_names[k], &base[k], &err) != 0) {
            cli_error("repro", "%s", err.msg);
            return EXIT_INPUT;
        }
    topo topos[NTESTBEDS];
    for (int b = 0; b < NTESTBEDS; b++)
        if (topo_load(testbeds[b].topo, &topos[b], &err) != 0) {
            cli_error("repro", "%s", err.msg);
            return EXIT_INPUT;
        }
    cdb *db = cdb_open(db_path ? db_path : ms_default_db(), &err);
    if (!db) {
        cli_error("repro", "%s", err.msg);
        return EXIT_INPUT;
    }
    char path_main[4200], path_mono[4200];
    FILE *fm = open_out(out_dir, "findep.tsv", path_main, sizeof path_main);
    FILE *fo = fm ? open_out(out_dir, "findep_monotonic.tsv", path_mono, sizeof path_mono) : NULL;
    int rc = EXIT_INPUT;
    if (!fm || !fo) goto out;

    printf("FinDEP evaluation in simulation (%s network, %s)\n", net ? net->name : "analytic",
           quick ? "quick set" : "full set");
    fprintf(fm, "testbed\ttopology\tdevice\tmodel\tlayers\tseq\tag\teg"
                "\tpppipe_ag\tpppipe_eg\tpppipe_r1\tpppipe_ma\tpppipe_tps"
                "\talg1_r1\talg1_ma\talg1_r2\talg1_order\talg1_tps"
                "\tsearch_r1\tsearch_ma\tsearch_r2\tsearch_order\tsearch_tps"
                "\tspeedup_alg1_pppipe\tspeedup_search_pppipe\tspeedup_search_alg1"
                "\tpppipe_split_r1\tpppipe_split_ma\tpppipe_split_tps\tspeedup_search_pppipe_split"
                "\tauto_alg1_ag\tauto_alg1_eg\tauto_alg1_tps"
                "\tauto_search_ag\tauto_search_eg\tauto_search_tps\tspeedup_auto_search_pppipe"
                "\tgemm_source\tattn_source\n");
    printf("\ntokens/s; pppipe = its planner's best split (pp-split) and at the paper's split "
           "(pp@split); alg1, search at the paper's split; auto = search with --split auto\n");
    printf("%-2s %-15s %3s %5s | %-8s %8s %8s | %8s %8s | %6s %6s %6s %7s | %-5s %8s %7s\n",
           "tb", "model", "L", "S", "pp-split", "pppipe", "pp@split", "alg1", "search",
           "a1/pp", "se/pp", "se/a1", "se/pp@s", "auto", "auto-tps", "auto/pp");
    static const int seqs_full[] = {1024, 2048, 4096, 8192};
    static const int seqs_quick[] = {1024};
    const int *seqs = quick ? seqs_quick : seqs_full;
    int nseq = quick ? 1 : 4;
    /* best speedups on 8 GPUs, on 32 GPUs: search/pppipe (best split), search/pppipe at
     * the paper's split, auto-split search/pppipe */
    double best_sp[2] = {0, 0}, best_ps[2] = {0, 0}, best_au[2] = {0, 0};
    for (int b = 0; b < NTESTBEDS; b++) {
        const testbed *tb = &testbeds[b];
        const topo *t = &topos[b];
        const char *gsrc = model_source(db, t->device, "gemm");
        const char *asrc = model_source(db, t->device, "attn");
        for (int k = 0; k < 2; k++) {
            model_cfg m = base[k];
            int layers = k == 0 ? tb->ds_layers : tb->qw_layers;
            if (model_keep_layers(&m, layers, &err) != 0) {
                cli_error("repro", "%s", err.msg);
                goto out;
            }
            int ag = k == 0 ? tb->ds_ag : tb->qw_ag, eg = k == 0 ? tb->ds_eg : tb->qw_eg;
            for (int si = 0; si < nseq; si++) {
                int S = seqs[si];
                char what[256];
                snprintf(what, sizeof what, "testbed %s (%s), %s, %d layers, S = %d",
                         tb->label, tb->topo, model_names[k], layers, S);
                solve_request rq;
                memset(&rq, 0, sizeof rq);
                rq.m = &m, rq.t = t, rq.db = db, rq.net = net, rq.phase = WL_PREFILL;
                rq.seq = S;
                solve_result pp, ps, a1, se, aa, as;
                rq.sched = WL_DEP_PPPIPE, rq.method = SOLVE_ALG1, rq.ag = rq.eg = 0;
                if (run_solve(&rq, &pp, what) != 0) goto out;
                rq.ag = ag, rq.eg = eg;
                if (run_solve(&rq, &ps, what) != 0) goto out;
                rq.sched = WL_DEP_FINDEP;
                if (run_solve(&rq, &a1, what) != 0) goto out;
                rq.method = SOLVE_SEARCH;
                if (run_solve(&rq, &se, what) != 0) goto out;
                if (!quick) {
                    rq.ag = rq.eg = 0, rq.method = SOLVE_ALG1;
                    if (run_solve(&rq, &aa, what) != 0) goto out;
                    rq.method = SOLVE_SEARCH;
                    if (run_solve(&rq, &as, what) != 0) goto out;
                }
                double ppt = pp.throughput_tokens_per_s, a1t = a1.throughput_tokens_per_s;
                double set = se.throughput_tokens_per_s;
                fprintf(fm, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d", tb->label, tb->topo, t->device,
                        model_names[k], layers, S, ag, eg);
                fprintf(fm, "\t%d\t%d\t%d\t%d\t%.6g", pp.p.ag, pp.p.eg, pp.p.r1, pp.p.ma, ppt);
                fprintf(fm, "\t%d\t%d\t%d\t%s\t%.6g", a1.p.r1, a1.p.ma, a1.p.r2,
                        order_name(&a1.p), a1t);
                fprintf(fm, "\t%d\t%d\t%d\t%s\t%.6g", se.p.r1, se.p.ma, se.p.r2,
                        order_name(&se.p), set);
                fprintf(fm, "\t%.4f\t%.4f\t%.4f", a1t / ppt, set / ppt, set / a1t);
                double pst = ps.throughput_tokens_per_s;
                fprintf(fm, "\t%d\t%d\t%.6g\t%.4f", ps.p.r1, ps.p.ma, pst, set / pst);
                if (quick)
                    fprintf(fm, "\tNA\tNA\tNA\tNA\tNA\tNA\tNA");
                else
                    fprintf(fm, "\t%d\t%d\t%.6g\t%d\t%d\t%.6g\t%.4f", aa.p.ag, aa.p.eg,
                            aa.throughput_tokens_per_s, as.p.ag, as.p.eg,
                            as.throughput_tokens_per_s, as.throughput_tokens_per_s / ppt);
                fprintf(fm, "\t%s\t%s\n", gsrc, asrc);
                fflush(fm);
                char pps[32], aus[32] = "-", aut[32] = "-", aup[32] = "-";
                snprintf(pps, sizeof pps, "%d/%d", pp.p.ag, pp.p.eg);
                if (!quick) {
                    snprintf(aus, sizeof aus, "%d/%d", as.p.ag, as.p.eg);
                    snprintf(aut, sizeof aut, "%.0f", as.throughput_tokens_per_s);
                    snprintf(aup, sizeof aup, "%.3f", as.throughput_tokens_per_s / ppt);
                }
                printf("%-2s %-15s %3d %5d | %-8s %8.0f %8.0f | %8.0f %8.0f | %6.3f %6.3f %6.3f "
                       "%7.3f | %-5s %8s %7s\n",
                       tb->label, model_names[k], layers, S, pps, ppt, pst, a1t, set, a1t / ppt,
                       set / ppt, set / a1t, set / pst, aus, aut, aup);
                fflush(stdout);
                int g = t->nodes > 1;
                if (set / ppt > best_sp[g]) best_sp[g] = set / ppt;
                if (set / pst > best_ps[g]) best_ps[g] = set / pst;
                if (!quick && as.throughput_tokens_per_s / ppt > best_au[g])
                    best_au[g] = as.throughput_tokens_per_s / ppt;
            }
        }
    }
    printf("best speedup over pppipe (8 GPUs / 32 GPUs; paper: up to 1.61x / 1.24x):\n"
           "  search at the paper's split vs pppipe's best split   %.3fx / %.3fx\n"
           "  search vs pppipe, both at the paper's split           %.3fx / %.3fx\n",
           best_sp[0], best_sp[1], best_ps[0], best_ps[1]);
    if (!quick)
        printf("  search with auto split vs pppipe's best split       %.3fx / %.3fx\n",
               best_au[0], best_au[1]);

    /* Monotonicity: DeepSeek-V2, 2 layers, findep at the paper's split, best r2 (and order)
     * for each (m_a, r1) by the search with m_a and r1 held. */
    fprintf(fo, "study\ttestbed\ttopology\tmodel\tlayers\tseq\tag\teg\tr1\tma\tr2\torder"
                "\ttps\trel\n");
    printf("\nmonotonicity (deepseek-v2, 2 layers, findep search with m_a and r1 held, best "
           "r2/order)\n");
    static const int ma_full[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    static const int ma_quick[] = {1, 4, 16};
    static const int r1_full[] = {1, 2, 3, 4, 6, 8, 12, 16};
    static const int r1_quick[] = {1, 2, 4};
    static const int mono_seqs[] = {2048, 4096};
    static const int mono_tbs[] = {2, 3};
    for (int bi = 0; bi < (quick ? 1 : 2); bi++) {
        const testbed *tb = &testbeds[mono_tbs[bi]];
        const topo *t = &topos[mono_tbs[bi]];
        model_cfg m = base[0];
        if (model_keep_layers(&m, 2, &err) != 0) {
            cli_error("repro", "%s", err.msg);
            goto out;
        }
        for (int si = 0; si < (quick ? 1 : 2); si++) {
            int S = mono_seqs[si];
            for (int study = 0; study < 2; study++) {
                const int *vals = study == 0 ? (quick ? ma_quick : ma_full)
                                             : (quick ? r1_quick : r1_full);
                int nv = study == 0 ? (quick ? 3 : 9) : (quick ? 3 : 8);
                double first = 0, prev = 0;
                int monotone = 1;
                printf("  %s %-8s S=%d vs %-3s:", tb->label, tb->topo, S,
                       study == 0 ? "m_a" : "r1");
                for (int v = 0; v < nv; v++) {
                    int ma = study == 0 ? vals[v] : 1, r1 = study == 0 ? 1 : vals[v];
                    if ((long)ma * S > (1L << 20)) continue;
                    solve_request rq;
                    memset(&rq, 0, sizeof rq);
                    rq.m = &m, rq.t = t, rq.db = db, rq.net = net, rq.phase = WL_PREFILL;
                    rq.seq = S, rq.sched = WL_DEP_FINDEP, rq.method = SOLVE_SEARCH;
                    rq.ag = tb->ds_ag, rq.eg = tb->ds_eg, rq.fix_ma = ma, rq.fix_r1 = r1;
                    char what[256];
                    snprintf(what, sizeof what, "monotonicity, testbed %s, S = %d, m_a = %d, "
                             "r1 = %d", tb->label, S, ma, r1);
                    solve_result r;
                    if (run_solve(&rq, &r, what) != 0) goto out;
                    double tps = r.throughput_tokens_per_s;
                    if (v == 0) first = tps;
                    else if (tps < prev * (1 - 1e-9)) monotone = 0;
                    prev = tps;
                    fprintf(fo, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.6g\t%.4f\n",
                            study == 0 ? "ma" : "r1", tb->label, tb->topo, model_names[0], 2, S,
                            tb->ds_ag, tb->ds_eg, r1, ma, r.p.r2, order_name(&r.p), tps,
                            tps / first);
                    printf(" %d:%.3f", vals[v], tps / first);
                    fflush(stdout);
                }
                fflush(fo);
                printf("  (x%.0f tok/s at the first point; %s)\n", first,
                       monotone ? "non-decreasing" : "NOT monotone");
            }
        }
    }

    /* Provenance of the compute profiles. */
    printf("\nprofiles       ");
    char seen[NTESTBEDS][64];
    int nseen = 0, ndatasheet = 0;
    char ds_list[512] = "";
    for (int b = 0; b < NTESTBEDS; b++) {
        int dup = 0;
        for (int i = 0; i < nseen; i++) dup |= !strcmp(seen[i], topos[b].device);
        if (dup) continue;
        snprintf(seen[nseen++], sizeof seen[0], "%s", topos[b].device);
        const char *g = model_source(db, topos[b].device, "gemm");
        const char *a = model_source(db, topos[b].device, "attn");
        printf(" %s: gemm %s, attn %s;", topos[b].device, g, a);
        if (!strcmp(g, "datasheet") || !strcmp(a, "datasheet")) {
            size_t l = strlen(ds_list);
            snprintf(ds_list + l, sizeof ds_list - l, "%s%s", ndatasheet ? ", " : "",
                     topos[b].device);
            ndatasheet++;
        }
    }
    printf("\n");
    if (ndatasheet)
        printf("datasheet       profiles of %s are datasheet-derived (roofline from vendor "
               "figures), not measured: these are simulated throughputs, not measurements\n",
               ds_list);
    else
        printf("datasheet       no datasheet-derived profiles among the testbeds' devices\n");

    if (fclose(fm) != 0 || fclose(fo) != 0) {
        fm = fo = NULL;
        cli_error("repro", "cannot finish writing %s: %s", out_dir, strerror(errno));
        goto out;
    }
    fm = fo = NULL;
    printf("written         %s, %s\n", path_main, path_mono);
    int have = gnuplot_available();
    if (render("findep_speedup", out_dir, quick, have) != 0 ||
        render("findep_monotonic", out_dir, quick, have) != 0)
        goto out;
    printf("wall            %.1f s\n", now_s() - t0);
    rc = fflush(stdout) == 0 ? 0 : EXIT_INPUT;
out:
    if (fm) fclose(fm);
    if (fo) fclose(fo);
    cdb_close(db);
    return rc;
}

/* ---- repro fsmoe ----------------------------------------------------------------------- */

typedef struct cluster {
    const char *label, *topo;
} cluster;

static const cluster clusters[] = {
    {"A100-200G", "a100-4x8"}, /* 4 x 8 A100, 200 Gb/s HDR per GPU */
    {"H100-400G", "h100-4x8"}, /* 4 x 8 H100, 400 Gb/s NDR per GPU */
};

typedef struct real_model {
    const char *name;
    int batch, seq;
} real_model;

static const real_model real_models[] = {
    {"gpt2-medium-moe", 8, 1024},
    {"gpt2-xl-moe", 4, 1024},
    {"mixtral-8x7b", 2, 2048},
};
#define REAL_CAPACITY 1.2

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int repro_fsmoe(const char *out_dir, int quick, const char *db_path, const net_ops *net)
{
    if (strchr(out_dir, '\'') || strchr(out_dir, '"')) {
        cli_error("repro", "--out '%s': quotes are not allowed in the folder name", out_dir);
        return EXIT_USAGE;
    }
    if (make_dirs(out_dir) != 0) {
        cli_error("repro", "cannot create %s: %s", out_dir, strerror(errno));
        return EXIT_INPUT;
    }
    double t0 = now_s();
    ms_err err = {{0}};
    char grid_path[4200];
    snprintf(grid_path, sizeof grid_path, "%s/traces/fsmoe-grid.tsv", ms_data_dir());
    solve_grid_point *pts = NULL;
    int npts = 0;
    if (solve_grid_load(grid_path, &pts, &npts, &err) != 0) {
        cli_error("repro", "%s", err.msg);
        return EXIT_INPUT;
    }
    cdb *db = cdb_open(db_path ? db_path : ms_default_db(), &err);
    if (!db) {
        cli_error("repro", "%s", err.msg);
        free(pts);
        return EXIT_INPUT;
    }
    int rc = EXIT_INPUT, every = quick ? 27 : 1;
    char pg[4300], pm[4300], ps[4300], pc[4300];
    FILE *fg = open_out(out_dir, "fsmoe_grid.tsv", pg, sizeof pg);
    FILE *fm = fg ? open_out(out_dir, "fsmoe_models.tsv", pm, sizeof pm) : NULL;
    FILE *fsum = fm ? open_out(out_dir, "fsmoe_summary.tsv", ps, sizeof ps) : NULL;
    FILE *fcdf = fsum ? open_out(out_dir, "fsmoe_grid_sorted.tsv", pc, sizeof pc) : NULL;
    double *sp[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [cluster][vs tutel, vs dsmoe] */
    if (!fcdf) goto out;
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++)
            if (!(sp[c][k] = malloc(sizeof(double) * (size_t)npts))) {
                cli_error("repro", "out of memory");
                goto out;
            }
    printf("study           FSMoE layer grid (%d points%s) and real models, 2 clusters, "
           "network %s\n", (npts + every - 1) / every, quick ? ", --quick: every 27th" : "",
           net->name);
    fprintf(fg, "cluster\tid\tbatch\tseq\thidden\tffn_hidden\theads\tcapacity\tffn_gemms\t"
                "dsmoe_ms\ttutel_ms\ttutel_r\tfsmoe_ms\tfsmoe_model_ms\trf\trb\tlayers_differ\t"
                "pieces\tspeedup_tutel\tspeedup_dsmoe\n");
    fprintf(fm, "cluster\tmodel\tlayers\tbatch\tseq\tcapacity\tdsmoe_ms\ttutel_ms\ttutel_r\t"
                "fsmoe_ms\tfsmoe_model_ms\trf0\trb0\tlayers_differ\tpieces\tspeedup_tutel\t"
                "speedup_dsmoe\n");
    fprintf(fsum, "cluster\tpoints\tgeomean_vs_tutel\tmin_vs_tutel\tmax_vs_tutel\t"
                  "geomean_vs_dsmoe\tmin_vs_dsmoe\tmax_vs_dsmoe\tgeomean_model_vs_tutel\t"
                  "points_fwd_bwd_differ\tsimulations\twall_s\n");
    int nd = 0;
    for (int c = 0; c < 2; c++) {
        topo t;
        if (topo_load(clusters[c].topo, &t, &err) != 0) {
            cli_error("repro", "%s", err.msg);
            goto out;
        }
        double tc = now_s(), lt = 0, ld = 0, lm = 0;
        long sims = 0;
        int differ = 0;
        nd = 0;
        for (int i = 0; i < npts; i += every) {
            model_cfg m;
            solve_train_request rq;
            memset(&rq, 0, sizeof rq);
            if (solve_grid_model(&pts[i], &m, &err) != 0) {
                cli_error("repro", "%s", err.msg);
                goto out;
            }
            rq.m = &m, rq.t = &t, rq.db = db, rq.net = net;
            wl_train_defaults(&rq.base);
            rq.base.batch = pts[i].batch, rq.base.seq = pts[i].seq;
            rq.base.capacity = pts[i].capacity;
            solve_train_compare r;
            if (solve_train_compare_all(&rq, &r, &err) != 0) {
                cli_error("repro", "grid point %d on %s: %s", pts[i].id, t.name, err.msg);
                goto out;
            }
            double st = r.tutel_s / r.fsmoe_s, sd = r.dsmoe_s / r.fsmoe_s;
            sp[c][0][nd] = st, sp[c][1][nd] = sd, nd++;
            lt += log(st), ld += log(sd), lm += log(r.tutel_s / r.fsmoe_model_s);
            differ += r.layers_differ > 0, sims += r.simulations;
            fprintf(fg, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%g\t%d\t%.6f\t%.6f\t%d\t%.6f\t%.6f\t%d\t%d\t"
                        "%d\t%d\t%.5f\t%.5f\n",
                    clusters[c].label, pts[i].id, pts[i].batch, pts[i].seq, pts[i].hidden,
                    pts[i].ffn_hidden, pts[i].heads, pts[i].capacity, pts[i].ffn_gemms,
                    r.dsmoe_s * 1e3, r.tutel_s * 1e3, r.tutel_r, r.fsmoe_s * 1e3,
                    r.fsmoe_model_s * 1e3, r.rf0, r.rb0, r.layers_differ, r.npieces, st, sd);
        }
        qsort(sp[c][0], (size_t)nd, sizeof(double), cmp_double);
        qsort(sp[c][1], (size_t)nd, sizeof(double), cmp_double);
        double wall = now_s() - tc;
        fprintf(fsum, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t%ld\t%.1f\n",
                clusters[c].label, nd, exp(lt / nd), sp[c][0][0], sp[c][0][nd - 1],
                exp(ld / nd), sp[c][1][0], sp[c][1][nd - 1], exp(lm / nd), differ, sims, wall);
        printf("grid %-10s  %d points: fsmoe/tutel geomean %.3fx (%.3f..%.3f), fsmoe/dsmoe "
               "%.3fx (%.3f..%.3f); best fwd/bwd degrees differ on %d; %.1f s\n",
               clusters[c].label, nd, exp(lt / nd), sp[c][0][0], sp[c][0][nd - 1], exp(ld / nd),
               sp[c][1][0], sp[c][1][nd - 1], differ, wall);
        for (size_t k = 0; k < sizeof real_models / sizeof real_models[0]; k++) {
            const real_model *rm = &real_models[k];
            model_cfg m;
            if (model_load(rm->name, &m, &err) != 0 ||
                (quick && model_keep_layers(&m, 4, &err) != 0)) {
                cli_error("repro", "%s", err.msg);
                goto out;
            }
            solve_train_request rq;
            memset(&rq, 0, sizeof rq);
            rq.m = &m, rq.t = &t, rq.db = db, rq.net = net;
            wl_train_defaults(&rq.base);
            rq.base.batch = rm->batch, rq.base.seq = rm->seq, rq.base.capacity = REAL_CAPACITY;
            solve_train_compare r;
            if (solve_train_compare_all(&rq, &r, &err) != 0) {
                cli_error("repro", "%s on %s: %s", rm->name, t.name, err.msg);
                goto out;
            }
            fprintf(fm, "%s\t%s\t%d\t%d\t%d\t%g\t%.6f\t%.6f\t%d\t%.6f\t%.6f\t%d\t%d\t%d\t%d\t"
                        "%.5f\t%.5f\n",
                    clusters[c].label, rm->name, m.layers, rm->batch, rm->seq, REAL_CAPACITY,
                    r.dsmoe_s * 1e3, r.tutel_s * 1e3, r.tutel_r, r.fsmoe_s * 1e3,
                    r.fsmoe_model_s * 1e3, r.rf0, r.rb0, r.layers_differ, r.npieces,
                    r.tutel_s / r.fsmoe_s, r.dsmoe_s / r.fsmoe_s);
            printf("model %-10s %-16s %2d layers: step dsmoe %.2f ms, tutel %.2f ms (r=%d), "
                   "fsmoe %.2f ms: %.3fx over tutel, %.3fx over dsmoe\n",
                   clusters[c].label, rm->name, m.layers, r.dsmoe_s * 1e3, r.tutel_s * 1e3,
                   r.tutel_r, r.fsmoe_s * 1e3, r.tutel_s / r.fsmoe_s, r.dsmoe_s / r.fsmoe_s);
        }
    }
    fprintf(fcdf, "fraction\tA100_vs_tutel\tA100_vs_dsmoe\tH100_vs_tutel\tH100_vs_dsmoe\n");
    for (int i = 0; i < nd; i++)
        fprintf(fcdf, "%.5f\t%.5f\t%.5f\t%.5f\t%.5f\n", (i + 1.0) / nd, sp[0][0][i], sp[0][1][i],
                sp[1][0][i], sp[1][1][i]);
    FILE *files[] = {fg, fm, fsum, fcdf};
    int bad = 0;
    for (int i = 0; i < 4; i++) bad |= fclose(files[i]) != 0;
    fg = fm = fsum = fcdf = NULL;
    if (bad) {
        cli_error("repro", "cannot finish writing %s: %s", out_dir, strerror(errno));
        goto out;
    }
    printf("written         %s, %s, %s, %s\n", pg, pm, ps, pc);
    int have = gnuplot_available();
    if (render("fsmoe_grid", out_dir, 0, have) != 0 || render("fsmoe_models", out_dir, 0, have) != 0)
        goto out;
    printf("wall            %.1f s\n", now_s() - t0);
    rc = fflush(stdout) == 0 ? 0 : EXIT_INPUT;
out:
    if (fg) fclose(fg);
    if (fm) fclose(fm);
    if (fsum) fclose(fsum);
    if (fcdf) fclose(fcdf);
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 2; k++) free(sp[c][k]);
    free(pts);
    cdb_close(db);
    return rc;
}

int cmd_repro(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'}, {"quick", no_argument, 0, 'q'},
        {"db", required_argument, 0, 'd'},  {"net", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    if (argc < 2) {
        cli_error("repro", "which study? (known: findep, fsmoe)");
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    int fsmoe = !strcmp(argv[1], "fsmoe");
    if (strcmp(argv[1], "findep") != 0 && !fsmoe) {
        cli_error("repro", "unknown study '%s' (known: findep, fsmoe)", argv[1]);
        return EXIT_USAGE;
    }
    const char *out_dir = fsmoe ? DEFAULT_OUT_FSMOE : DEFAULT_OUT, *db_path = NULL;
    const char *net_name = "analytic";
    int quick = 0, c, ac = argc - 1;
    char **av = argv + 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(ac, av, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out_dir = optarg; break;
        case 'q': quick = 1; break;
        case 'd': db_path = optarg; break;
        case 'n': net_name = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            cli_error("repro", "unknown or incomplete option '%s'", av[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < ac) {
        cli_error("repro", "unexpected argument '%s'", av[optind]);
        return EXIT_USAGE;
    }
    if (!*out_dir) {
        cli_error("repro", "--out: empty folder name");
        return EXIT_USAGE;
    }
    const net_ops *net = net_find(net_name);
    if (!net) {
        cli_error("repro", "unknown network model '%s' (known: analytic, flow)", net_name);
        return EXIT_USAGE;
    }
    return fsmoe ? repro_fsmoe(out_dir, quick, db_path, net)
                 : repro_findep(out_dir, quick, db_path, net);
}

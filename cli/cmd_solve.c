/* `moesched solve`: choose a DEP schedule (split, micro-batches, chunks, order) for a model,
 * topology and sequence length with the solvers of solver/solve.h; print it with its
 * simulated throughput, the bound and the gap, and optionally write the chosen graph. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common.h"
#include "cli/workload_flags.h"
#include "core/json.h"
#include "core/paths.h"
#include "core/topo.h"
#include "costdb/cdb.h"
#include "ir/tg.h"
#include "solver/solve.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: moesched solve --workload dep --sched findep|pppipe --model M --topo T\n"
            "                      --seq S [options]\n"
            "       moesched solve --workload train --sched fsmoe|tutel|dsmoe --model M --topo T\n"
            "                      [--batch B --seq S --capacity C --ep N --esp N --layers N]\n"
            "                      [--method search|model] [--json] [--emit G.tg]\n"
            "                      (training: docs/TRAINING.md)\n"
            "\n"
            "Chooses the schedule of a DEP inference workload: the attention/expert split\n"
            "(ag, eg), micro-batches r1 of ma samples, token chunks r2 and the AG order, and\n"
            "reports its simulated throughput against a bound (docs/SOLVER.md). Schedule\n"
            "flags that are given are held fixed; the others are chosen.\n"
            "\n"
            "  --workload W        dep (DEP inference, below) | train (MoE training)\n"
            "  --sched S           findep (FinDEP schedules) | pppipe (MegaScale-Infer ping-pong)\n"
            "  --model M           models/M.json or a config.json path (docs/MODELS.md)\n"
            "  --layers N          keep the first N layers (depth-reduced models)\n"
            "  --topo SPEC         topology: NAME | PATH | DEVICE:nodes=N[,gpus=G,...]\n"
            "  --seq S             tokens per sample (prefill) or KV length (decode)\n"
            "  --ag A --eg E       hold the split: attention ranks 0..A-1, expert ranks after\n"
            "  --split auto        choose the split (the default when --ag/--eg are absent)\n"
            "  --method M          search (default: simulator-verified local search from\n"
            "                      alg1's answer) | alg1 (FinDEP's Algorithm 1) | exhaustive\n"
            "                      (brute force, small instances only); findep only: pppipe\n"
            "                      always uses its planner (r1 <= 4, r2 = 1)\n"
            "  --r1 N --ma N       hold the micro-batches / samples per micro-batch per AG rank\n"
            "  --r2 N              hold the token chunks per micro-batch (findep)\n"
            "  --order O           hold the AG order: asas | aass (findep); otherwise the\n"
            "                      search also tries other A/S orders (docs/SOLVER.md)\n"
            "  --phase P           prefill (default) | decode\n"
            "  --net MODEL         network model for simulations: analytic (default) | flow\n"
            "  --db PATH           cost database (default: %s)\n"
            "  --emit PATH         write the chosen schedule's task graph (.tg, docs/IR.md)\n"
            "  --json              print one JSON object\n"
            "  -h, --help          this text\n",
            ms_default_db());
}

/* pppipe requests always go to the PPPipe planner, whatever the method. */
static const char *method_name(const solve_request *rq)
{
    if (rq->sched == WL_DEP_PPPIPE) return "pppipe-planner";
    return rq->method == SOLVE_ALG1 ? "alg1" : rq->method == SOLVE_EXHAUSTIVE ? "exhaustive"
                                                                             : "search";
}

/* Tokens per expert per chunk: m_e of FinDEP's conservation ma*ag*top_k*S = m_e*r2*E. */
static double tokens_per_expert_chunk(const wl_dep_params *p, const model_cfg *m)
{
    double per_sample = p->phase == WL_DECODE ? 1.0 : (double)p->seq;
    return (double)p->ma * per_sample * p->ag * m->top_k / ((double)p->r2 * m->routed_experts);
}

static void print_json(const solve_request *rq, const solve_result *r, const model_cfg *m,
                       const char *emit)
{
    const wl_dep_params *p = &r->p;
    double tokens = wl_dep_tokens(p, rq->t);
    ms_json j;
    ms_json_init(&j, stdout);
    ms_json_obj_begin(&j);
    ms_json_kstr(&j, "workload", "dep");
    ms_json_kstr(&j, "sched", wl_dep_sched_name(p->sched));
    ms_json_kstr(&j, "model", m->name);
    ms_json_kint(&j, "layers", m->layers);
    ms_json_kstr(&j, "topology", rq->t->name);
    ms_json_kint(&j, "seq", p->seq);
    ms_json_kstr(&j, "phase", p->phase == WL_DECODE ? "decode" : "prefill");
    ms_json_kstr(&j, "method", method_name(rq));
    ms_json_kstr(&j, "network", rq->net ? rq->net->name : "analytic");
    ms_json_kint(&j, "ag", p->ag);
    ms_json_kint(&j, "eg", p->eg);
    ms_json_kint(&j, "r1", p->r1);
    ms_json_kint(&j, "ma", p->ma);
    ms_json_kint(&j, "r2", p->r2);
    ms_json_knum(&j, "me", tokens_per_expert_chunk(p, m));
    char order[WL_ORDER_STRLEN];
    wl_order_format(p->order, p->order_mask, p->r1, order, sizeof order);
    ms_json_kstr(&j, "order", order);
    ms_json_knum(&j, "tokens", tokens);
    ms_json_knum(&j, "makespan_us", tokens / r->throughput_tokens_per_s * 1e6);
    ms_json_knum(&j, "throughput_tokens_per_s", r->throughput_tokens_per_s);
    ms_json_knum(&j, "bound_tokens_per_s", r->bound_tokens_per_s);
    ms_json_knum(&j, "gap", 1.0 - r->throughput_tokens_per_s / r->bound_tokens_per_s);
    ms_json_knum(&j, "predicted_tokens_per_s", r->predicted_tokens_per_s);
    ms_json_knum(&j, "solve_wall_s", r->solve_wall_s);
    ms_json_kint(&j, "simulations", r->simulations);
    if (emit) ms_json_kstr(&j, "graph", emit);
    ms_json_obj_end(&j);
    fputc('\n', stdout);
}

static void print_text(const solve_request *rq, const solve_result *r, const model_cfg *m,
                       const char *emit)
{
    const wl_dep_params *p = &r->p;
    double tokens = wl_dep_tokens(p, rq->t);
    printf("workload        dep %s, %s (%d layers), %s, seq=%d %s\n",
           wl_dep_sched_name(p->sched), m->name, m->layers, rq->t->name, p->seq,
           p->phase == WL_DECODE ? "decode" : "prefill");
    printf("method          %s: %d simulation%s in %.3f s\n", method_name(rq),
           r->simulations, r->simulations == 1 ? "" : "s", r->solve_wall_s);
    printf("schedule        ag=%d eg=%d r1=%d ma=%d r2=%d m_e=%.6g", p->ag, p->eg, p->r1, p->ma,
           p->r2, tokens_per_expert_chunk(p, m));
    if (p->sched == WL_DEP_FINDEP) {
        char order[WL_ORDER_STRLEN];
        wl_order_format(p->order, p->order_mask, p->r1, order, sizeof order);
        printf(" order=%s", order);
    }
    printf("\n");
    printf("makespan        %.3f us for %.0f tokens\n", tokens / r->throughput_tokens_per_s * 1e6,
           tokens);
    printf("throughput      %.6g tokens/s (simulated)\n", r->throughput_tokens_per_s);
    if (rq->method == SOLVE_ALG1 && rq->sched == WL_DEP_FINDEP)
        printf("alg1 estimate   %.6g tokens/s (closed form)\n", r->predicted_tokens_per_s);
    printf("bound           %.6g tokens/s (gap %.2f%%)\n", r->bound_tokens_per_s,
           100.0 * (1.0 - r->throughput_tokens_per_s / r->bound_tokens_per_s));
    if (emit) printf("graph written   %s\n", emit);
}

/* ---- --workload train ---------------------------------------------------------------- */

static void print_degrees(FILE *f, const int *r, int n)
{
    for (int l = 0; l < n; l++) fprintf(f, "%s%d", l ? "," : "", r[l]);
}

static void print_train(const solve_train_request *rq, const solve_train_result *r,
                        const char *method, int json, const char *emit)
{
    const model_cfg *m = rq->m;
    const wl_train_params *b = &rq->base;
    int ep = 0, esp = 0, dp = 0;
    ms_err e = {{0}};
    wl_train_layout(m, rq->t, b, &ep, &esp, &dp, &e);
    double tokens = wl_train_tokens(b, rq->t);
    if (json) {
        ms_json j;
        ms_json_init(&j, stdout);
        ms_json_obj_begin(&j);
        ms_json_kstr(&j, "workload", "train");
        ms_json_kstr(&j, "sched", wl_train_sched_name(r->sched));
        ms_json_kstr(&j, "model", m->name);
        ms_json_kint(&j, "layers", m->layers);
        ms_json_kstr(&j, "topology", rq->t->name);
        ms_json_kint(&j, "batch", b->batch);
        ms_json_kint(&j, "seq", b->seq);
        ms_json_knum(&j, "capacity", b->capacity);
        ms_json_kint(&j, "ep", ep);
        ms_json_kint(&j, "esp", esp);
        ms_json_kint(&j, "dp", dp);
        ms_json_kstr(&j, "method", method);
        ms_json_kstr(&j, "network", rq->net ? rq->net->name : "analytic");
        ms_json_kint(&j, "r", r->r);
        ms_json_key(&j, "r_fwd");
        ms_json_arr_begin(&j);
        for (int l = 0; l < m->layers; l++) ms_json_int(&j, r->r_fwd[l]);
        ms_json_arr_end(&j);
        ms_json_key(&j, "r_bwd");
        ms_json_arr_begin(&j);
        for (int l = 0; l < m->layers; l++) ms_json_int(&j, r->r_bwd[l]);
        ms_json_arr_end(&j);
        ms_json_key(&j, "pieces");
        ms_json_arr_begin(&j);
        for (int i = 0; i < r->npieces; i++) {
            ms_json_obj_begin(&j);
            if (r->pieces[i].gap == WL_TRAIN_TAIL) ms_json_kstr(&j, "gap", "tail");
            else ms_json_kint(&j, "gap", r->pieces[i].gap);
            ms_json_kint(&j, "bytes", r->pieces[i].bytes);
            ms_json_obj_end(&j);
        }
        ms_json_arr_end(&j);
        ms_json_kint(&j, "layers_differ", r->layers_differ);
        ms_json_knum(&j, "step_ms", r->step_s * 1e3);
        ms_json_knum(&j, "throughput_tokens_per_s", tokens / r->step_s);
        ms_json_knum(&j, "predicted_step_ms", r->predicted_s * 1e3);
        ms_json_knum(&j, "model_choice_step_ms", r->model_step_s * 1e3);
        ms_json_kint(&j, "simulations", r->simulations);
        ms_json_knum(&j, "solve_wall_s", r->solve_wall_s);
        if (emit) ms_json_kstr(&j, "graph", emit);
        ms_json_obj_end(&j);
        fputc('\n', stdout);
        return;
    }
    printf("workload        train %s, %s (%d layers), %s, batch=%d seq=%d capacity=%g "
           "ep=%d esp=%d dp=%d\n", wl_train_sched_name(r->sched), m->name, m->layers,
           rq->t->name, b->batch, b->seq, b->capacity, ep, esp, dp);
    printf("method          %s: %d simulation%s in %.3f s\n", method, r->simulations,
           r->simulations == 1 ? "" : "s", r->solve_wall_s);
    printf("degrees fwd     ");
    print_degrees(stdout, r->r_fwd, m->layers);
    printf("\ndegrees bwd     ");
    print_degrees(stdout, r->r_bwd, m->layers);
    printf("   (%d layer%s differ)\n", r->layers_differ, r->layers_differ == 1 ? "" : "s");
    if (r->sched == WL_TRAIN_FSMOE) {
        printf("allreduce       %d piece%s:", r->npieces, r->npieces == 1 ? "" : "s");
        for (int i = 0; i < r->npieces; i++) {
            if (r->pieces[i].gap == WL_TRAIN_TAIL) printf(" tail:%lld", (long long)r->pieces[i].bytes);
            else printf(" %d:%lld", r->pieces[i].gap, (long long)r->pieces[i].bytes);
        }
        printf("\n");
        printf("model estimate  %.3f ms (its choice simulates to %.3f ms)\n",
               r->predicted_s * 1e3, r->model_step_s * 1e3);
    }
    printf("step time       %.3f ms (simulated), %.6g tokens/s\n", r->step_s * 1e3,
           tokens / r->step_s);
    if (emit) printf("graph written   %s\n", emit);
}

/* Loads the topology, the model (cut to --layers) and the cost database; NULL after
 * printing the error. */
static cdb *load_inputs(const wl_flags *wf, const char *topo_spec, const char *db_path, topo *t,
                        model_cfg *m)
{
    ms_err err = {{0}};
    if (topo_load(topo_spec, t, &err) != 0 || model_load(wf->model, m, &err) != 0 ||
        (wf->layers >= 0 && model_keep_layers(m, wf->layers, &err) != 0)) {
        cli_error("solve", "%s", err.msg);
        return NULL;
    }
    cdb *db = cdb_open(db_path ? db_path : ms_default_db(), &err);
    if (!db) cli_error("solve", "%s", err.msg);
    return db;
}

static int solve_train_cmd(wl_flags *wf, const char *topo_spec, const char *db_path,
                           const char *net_name, const char *method, int json,
                           const char *emit)
{
    if (!topo_spec || !wf->sched || !wf->model) {
        cli_error("solve", "--workload train needs --sched, --model and --topo");
        return EXIT_USAGE;
    }
    int s = wl_train_sched_find(wf->sched);
    if (s < 0) {
        cli_error("solve", "unknown --sched '%s' for --workload train (known: dsmoe, tutel, "
                           "fsmoe)", wf->sched);
        return EXIT_USAGE;
    }
    if (wf->rf || wf->rb || wf->pieces || wf->r != 1) {
        cli_error("solve", "--r, --rf, --rb and --pieces are what solve chooses; simulate given "
                           "ones with moesched sim");
        return EXIT_USAGE;
    }
    if (wf->ag || wf->eg || wf->r1 != 1 || wf->ma != 1 || wf->r2 != 1 || wf->order || wf->phase) {
        cli_error("solve", "--ag, --eg, --r1, --ma, --r2, --order and --phase apply to "
                           "--workload dep");
        return EXIT_USAGE;
    }
    solve_train_request rq;
    memset(&rq, 0, sizeof rq);
    if (!strcmp(method, "search")) rq.method = SOLVE_TRAIN_SEARCH;
    else if (!strcmp(method, "model")) rq.method = SOLVE_TRAIN_MODEL;
    else {
        cli_error("solve", "unknown --method '%s' for --workload train (known: search, model)",
                  method);
        return EXIT_USAGE;
    }
    rq.sched = (wl_train_sched)s;
    rq.net = net_find(net_name);
    if (!rq.net) {
        cli_error("solve", "unknown network model '%s' (known: analytic, flow)", net_name);
        return EXIT_USAGE;
    }
    wl_train_defaults(&rq.base);
    rq.base.sched = rq.sched;
    rq.base.ep = wf->ep, rq.base.esp = wf->esp, rq.base.dp = wf->dp;
    rq.base.batch = wf->batch, rq.base.capacity = wf->capacity;
    if (wf->seq) rq.base.seq = wf->seq;
    ms_err err = {{0}};
    topo t;
    model_cfg m;
    cdb *db = load_inputs(wf, topo_spec, db_path, &t, &m);
    if (!db) return EXIT_INPUT;
    rq.m = &m, rq.t = &t, rq.db = db;
    int rc = EXIT_INPUT;
    solve_train_result *res = malloc(sizeof *res);
    tg_graph *g = NULL;
    if (!res) {
        cli_error("solve", "out of memory");
        goto out;
    }
    if (solve_train(&rq, res, &err) != 0) {
        cli_error("solve", "%s", err.msg);
        goto out;
    }
    if (emit) {
        wl_train_params p;
        solve_train_params(&rq, res, &p);
        g = wl_train_build(&m, &t, &p, &err);
        if (!g || tg_write_file(g, emit, &err) != 0) {
            cli_error("solve", "%s", err.msg);
            goto out;
        }
    }
    const char *mname = rq.sched == WL_TRAIN_DSMOE   ? "fixed (r = 1)"
                        : rq.sched == WL_TRAIN_TUTEL ? "tutel-trial (r in 1,2,4,8)"
                        : rq.method == SOLVE_TRAIN_MODEL ? "model" : "search";
    print_train(&rq, res, mname, json, emit);
    rc = fflush(stdout) == 0 ? 0 : EXIT_INPUT;
out:
    tg_graph_free(g);
    free(res);
    cdb_close(db);
    return rc;
}

int cmd_solve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"topo", required_argument, 0, 't'},   {"db", required_argument, 0, 'd'},
        {"net", required_argument, 0, 'n'},    {"method", required_argument, 0, 'M'},
        {"split", required_argument, 0, 'S'},  {"emit", required_argument, 0, 'e'},
        {"json", no_argument, 0, 'j'},         {"help", no_argument, 0, 'h'},
        WL_FLAG_OPTIONS,                       {0, 0, 0, 0}};
    wl_flags wf;
    wl_flags_init(&wf);
    const char *topo_spec = NULL, *db_path = NULL, *emit = NULL, *split = NULL;
    const char *net_name = "analytic", *method = "search";
    int json = 0, c, given_r1 = 0, given_ma = 0, given_r2 = 0, given_ag = 0, given_eg = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': topo_spec = optarg; break;
        case 'd': db_path = optarg; break;
        case 'n': net_name = optarg; break;
        case 'M': method = optarg; break;
        case 'S': split = optarg; break;
        case 'e': emit = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        case 1010: /* --routing */
        case 1013: /* --seed */
            cli_error("solve", "%s: the solver assumes uniform routing; simulate skewed "
                               "routing with moesched sim", argv[optind - 1]);
            return EXIT_USAGE;
        default: {
            int w = wl_flags_apply(&wf, "solve", c, optarg);
            if (w < 0) return EXIT_USAGE;
            if (w > 0) {
                given_ag |= c == 1003, given_eg |= c == 1004;
                given_r1 |= c == 1006, given_ma |= c == 1007, given_r2 |= c == 1008;
                break;
            }
            cli_error("solve", "unknown or incomplete option '%s'", argv[optind - 1]);
            usage(stderr);
            return EXIT_USAGE;
        }
        }
    }
    if (optind < argc) {
        cli_error("solve", "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    if (wl_flags_is_train(&wf))
        return solve_train_cmd(&wf, topo_spec, db_path, net_name, method, json, emit);
    if (wf.ep || wf.esp || wf.dp || wf.batch != 1 || wf.r != 1 || wf.capacity != 1.0 || wf.rf ||
        wf.rb || wf.pieces) {
        cli_error("solve", "--ep, --esp, --dp, --batch, --r, --capacity, --rf, --rb and --pieces "
                           "apply to --workload train");
        return EXIT_USAGE;
    }
    if (!topo_spec || !wf.workload || !wf.sched || !wf.model || !wf.seq) {
        cli_error("solve", "--workload dep, --sched, --model, --topo and --seq are required "
                           "(moesched solve --help)");
        return EXIT_USAGE;
    }
    if (strcmp(wf.workload, "dep") != 0) {
        cli_error("solve", "unknown workload '%s' (known: dep, train)", wf.workload);
        return EXIT_USAGE;
    }
    solve_request rq;
    memset(&rq, 0, sizeof rq);
    if (!strcmp(method, "search")) rq.method = SOLVE_SEARCH;
    else if (!strcmp(method, "alg1")) rq.method = SOLVE_ALG1;
    else if (!strcmp(method, "exhaustive")) rq.method = SOLVE_EXHAUSTIVE;
    else {
        cli_error("solve", "unknown --method '%s' (known: search, alg1, exhaustive)", method);
        return EXIT_USAGE;
    }
    int s = wl_dep_sched_find(wf.sched);
    if (s != WL_DEP_FINDEP && s != WL_DEP_PPPIPE) {
        cli_error("solve", "--sched '%s' cannot be solved (known: findep, pppipe)", wf.sched);
        return EXIT_USAGE;
    }
    rq.sched = (wl_dep_sched)s;
    if (split && strcmp(split, "auto") != 0) {
        cli_error("solve", "unknown --split '%s' (known: auto; or give --ag and --eg)", split);
        return EXIT_USAGE;
    }
    if (split && (given_ag || given_eg)) {
        cli_error("solve", "give either --split auto or --ag/--eg, not both");
        return EXIT_USAGE;
    }
    if (given_ag != given_eg) {
        cli_error("solve", "--ag and --eg go together (or --split auto)");
        return EXIT_USAGE;
    }
    if (given_ag && (wf.ag < 1 || wf.eg < 1)) {
        cli_error("solve", "--ag and --eg must be at least 1 (got %d and %d)", wf.ag, wf.eg);
        return EXIT_USAGE;
    }
    if ((given_r1 && wf.r1 < 1) || (given_ma && wf.ma < 1) || (given_r2 && wf.r2 < 1)) {
        cli_error("solve", "--r1, --ma and --r2 must be at least 1");
        return EXIT_USAGE;
    }
    rq.ag = wf.ag, rq.eg = wf.eg, rq.seq = wf.seq;
    rq.fix_r1 = given_r1 ? wf.r1 : 0;
    rq.fix_ma = given_ma ? wf.ma : 0;
    rq.fix_r2 = given_r2 ? wf.r2 : 0;
    if (wf.order) {
        if (!strcmp(wf.order, "asas")) rq.fix_order = 1;
        else if (!strcmp(wf.order, "aass")) rq.fix_order = 2;
        else if (strspn(wf.order, "AS") == strlen(wf.order) && wf.order[0]) {
            /* an explicit A/S order can be simulated but not held by the solver */
            cli_error("solve", "--order '%s': solve holds only asas or aass; it explores "
                               "the other orders itself (simulate a given order with "
                               "moesched sim --order %s)", wf.order, wf.order);
            return EXIT_USAGE;
        } else {
            cli_error("solve", "unknown --order '%s' (known: asas, aass)", wf.order);
            return EXIT_USAGE;
        }
    }
    rq.phase = WL_PREFILL;
    if (wf.phase && !strcmp(wf.phase, "decode")) rq.phase = WL_DECODE;
    else if (wf.phase && strcmp(wf.phase, "prefill")) {
        cli_error("solve", "unknown --phase '%s' (known: prefill, decode)", wf.phase);
        return EXIT_USAGE;
    }
    if (rq.sched == WL_DEP_PPPIPE && (given_r2 && wf.r2 != 1)) {
        cli_error("solve", "--r2 (token chunks) applies to findep only (got %d)", wf.r2);
        return EXIT_USAGE;
    }
    if (rq.sched == WL_DEP_PPPIPE && wf.order) {
        cli_error("solve", "--order applies to findep only");
        return EXIT_USAGE;
    }
    rq.net = net_find(net_name);
    if (!rq.net) {
        cli_error("solve", "unknown network model '%s' (known: analytic, flow)", net_name);
        return EXIT_USAGE;
    }

    ms_err err = {{0}};
    topo t;
    model_cfg m;
    cdb *db = load_inputs(&wf, topo_spec, db_path, &t, &m);
    if (!db) return EXIT_INPUT;
    rq.m = &m, rq.t = &t, rq.db = db;
    int rc = EXIT_INPUT;
    solve_result res;
    tg_graph *g = NULL;
    if (solve_dep(&rq, &res, &err) != 0) {
        cli_error("solve", "%s", err.msg);
        goto out;
    }
    if (emit) {
        g = wl_dep_build(&m, &t, &res.p, &err);
        if (!g || tg_write_file(g, emit, &err) != 0) {
            cli_error("solve", "%s", err.msg);
            goto out;
        }
    }
    if (json) print_json(&rq, &res, &m, emit);
    else print_text(&rq, &res, &m, emit);
    rc = fflush(stdout) == 0 ? 0 : EXIT_INPUT;
out:
    tg_graph_free(g);
    cdb_close(db);
    return rc;
}

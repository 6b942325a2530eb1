/* Workload flags shared by sim and graph; see workload_flags.h. */
#include "cli/workload_flags.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/common.h"

void wl_flags_init(wl_flags *f)
{
    memset(f, 0, sizeof *f);
    f->seed = 1;
    f->layers = -1;
    f->r1 = f->ma = f->r2 = 1;
}

int wl_flags_apply(wl_flags *f, const char *cmd, int code, const char *arg)
{
    int *ints[] = {[1003 - 1003] = &f->ag, &f->eg, &f->seq, &f->r1, &f->ma, &f->r2};
    static const char *names[] = {"--ag", "--eg", "--seq", "--r1", "--ma", "--r2"};
    if (code < 1000 || code > 1013) return 0;
    f->any = 1;
    switch (code) {
    case 1000: f->workload = arg; return 1;
    case 1001: f->sched = arg; return 1;
    case 1002: f->model = arg; return 1;
    case 1009: f->order = arg; return 1;
    case 1010: f->routing = arg; return 1;
    case 1011: f->phase = arg; return 1;
    case 1012: return cli_parse_int(cmd, "--layers", arg, &f->layers) ? -1 : 1;
    case 1013: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(arg, &end, 10);
        if (end == arg || *end || errno || arg[0] == '-') {
            cli_error(cmd, "--seed expects a non-negative integer, got '%s'", arg);
            return -1;
        }
        f->seed = v;
        return 1;
    }
    default:
        return cli_parse_int(cmd, names[code - 1003], arg, ints[code - 1003]) ? -1 : 1;
    }
}

tg_graph *wl_flags_build(wl_flags *f, const char *cmd, const topo *t, double *tokens)
{
    ms_err err = {{0}};
    if (!f->workload || strcmp(f->workload, "dep") != 0) {
        cli_error(cmd, "unknown workload '%s' (known: dep)", f->workload ? f->workload : "");
        return NULL;
    }
    if (!f->sched || !f->model || !f->seq) {
        cli_error(cmd, "--workload dep needs --sched, --model and --seq");
        return NULL;
    }
    wl_dep_params *p = &f->p;
    wl_dep_defaults(p);
    int s = wl_dep_sched_find(f->sched);
    if (s < 0) {
        cli_error(cmd, "unknown --sched '%s' (known: naive, pppipe, findep, ep)", f->sched);
        return NULL;
    }
    p->sched = (wl_dep_sched)s;
    p->ag = f->ag, p->eg = f->eg, p->seq = f->seq, p->r1 = f->r1, p->ma = f->ma, p->r2 = f->r2;
    if (f->order && wl_order_parse(f->order, p->r1, &p->order, &p->order_mask, &err) != 0) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    if (f->phase && !strcmp(f->phase, "decode")) p->phase = WL_DECODE;
    else if (f->phase && strcmp(f->phase, "prefill")) {
        cli_error(cmd, "unknown --phase '%s' (known: prefill, decode)", f->phase);
        return NULL;
    }
    if (model_load(f->model, &f->m, &err) != 0 ||
        (f->layers >= 0 && model_keep_layers(&f->m, f->layers, &err) != 0)) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    routing *r = NULL;
    int moe_layers = f->m.layers - f->m.first_dense;
    if (moe_layers > 0) {
        r = routing_create(f->routing ? f->routing : "uniform", f->m.routed_experts,
                           moe_layers, f->seed, &err);
        if (!r) {
            cli_error(cmd, "--routing: %s", err.msg);
            return NULL;
        }
    }
    p->route = r;
    tg_graph *g = wl_dep_build(&f->m, t, p, &err);
    routing_free(r);
    p->route = NULL;
    if (!g) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    *tokens = wl_dep_tokens(p, t);
    return g;
}

void wl_flags_usage(FILE *out)
{
    fprintf(out,
            "workload flags (instead of --graph):\n"
            "  --workload dep      MoE inference under disaggregated expert parallelism\n"
            "  --sched S           naive | pppipe | findep | ep (colocated baseline)\n"
            "  --model M           models/M.json or a config.json path (docs/MODELS.md)\n"
            "  --layers N          keep the first N layers (depth-reduced models)\n"
            "  --ag A --eg E       attention ranks 0..A-1, expert ranks A..A+E-1\n"
            "  --seq S             tokens per sample (prefill) or KV length (decode)\n"
            "  --r1 N --ma N       micro-batches, samples per micro-batch per AG rank\n"
            "  --r2 N              token chunks per micro-batch (findep)\n"
            "  --order O           asas (default) | aass | an A/S string of 2 x r1 letters\n"
            "                      (e.g. AASASS; each Si after Ai): findep's AG order\n"
            "  --phase P           prefill (default) | decode\n"
            "  --routing R         uniform (default) | zipf:S | trace:FILE (docs/ROUTING.md)\n"
            "  --seed N            seed for zipf's per-layer hot experts (default 1)\n");
}

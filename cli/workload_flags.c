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
    f->batch = 1, f->r = 1, f->capacity = 1.0;
}

int wl_flags_is_train(const wl_flags *f) { return f->workload && !strcmp(f->workload, "train"); }

int wl_flags_degrees(const char *cmd, const char *flag, const char *s, int layers, int *out)
{
    int n = 0;
    const char *q = s;
    while (1) {
        char *end;
        errno = 0;
        long v = strtol(q, &end, 10);
        if (end == q || errno || v < 1 || v > WL_TRAIN_MAX_R || (*end && *end != ',')) {
            cli_error(cmd, "%s expects degrees in 1..%d, one or one per layer, separated by "
                           "commas (got '%s')", flag, WL_TRAIN_MAX_R, s);
            return -1;
        }
        if (n == layers) {
            cli_error(cmd, "%s gives more than the model's %d layers", flag, layers);
            return -1;
        }
        out[n++] = (int)v;
        if (!*end) break;
        q = end + 1;
    }
    if (n == 1)
        for (int l = 1; l < layers; l++) out[l] = out[0];
    else if (n != layers) {
        cli_error(cmd, "%s gives %d degrees; the model has %d layers (give 1 or %d)", flag, n,
                  layers, layers);
        return -1;
    }
    return 0;
}

int wl_flags_pieces(const char *cmd, const char *s, wl_train_piece *out, int max)
{
    int n = 0;
    const char *q = s;
    while (*q) {
        if (n == max) {
            cli_error(cmd, "--pieces: more than %d pieces", max);
            return -1;
        }
        char *end;
        long gap;
        if (!strncmp(q, "tail:", 5)) gap = WL_TRAIN_TAIL, end = (char *)q + 4;
        else {
            errno = 0;
            gap = strtol(q, &end, 10);
            if (end == q || errno || gap < 0 || gap > 1000000 || *end != ':') goto bad;
        }
        q = end + 1;
        errno = 0;
        long long b = strtoll(q, &end, 10);
        if (end == q || errno || b < 1 || (*end && *end != ',')) goto bad;
        out[n].gap = (int)gap, out[n].bytes = b, n++;
        q = *end ? end + 1 : end;
    }
    if (n == 0) goto bad;
    return n;
bad:
    cli_error(cmd, "--pieces expects GAP:BYTES,... (GAP a backward gap number or 'tail', "
                   "BYTES > 0), got '%s'", s);
    return -1;
}

int wl_flags_apply(wl_flags *f, const char *cmd, int code, const char *arg)
{
    int *ints[] = {[1003 - 1003] = &f->ag, &f->eg, &f->seq, &f->r1, &f->ma, &f->r2};
    static const char *names[] = {"--ag", "--eg", "--seq", "--r1", "--ma", "--r2"};
    if (code < 1000 || code > 1023) return 0;
    f->any = 1;
    switch (code) {
    case 1000: f->workload = arg; return 1;
    case 1001: f->sched = arg; return 1;
    case 1002: f->model = arg; return 1;
    case 1009: f->order = arg; return 1;
    case 1010: f->routing = arg; return 1;
    case 1011: f->phase = arg; return 1;
    case 1012: return cli_parse_int(cmd, "--layers", arg, &f->layers) ? -1 : 1;
    case 1014: return cli_parse_int(cmd, "--ep", arg, &f->ep) ? -1 : 1;
    case 1015: return cli_parse_int(cmd, "--esp", arg, &f->esp) ? -1 : 1;
    case 1016: return cli_parse_int(cmd, "--dp", arg, &f->dp) ? -1 : 1;
    case 1017: return cli_parse_int(cmd, "--batch", arg, &f->batch) ? -1 : 1;
    case 1018: return cli_parse_int(cmd, "--r", arg, &f->r) ? -1 : 1;
    case 1019: return cli_parse_double(cmd, "--capacity", arg, &f->capacity) ? -1 : 1;
    case 1020: f->rf = arg; return 1;
    case 1021: f->rb = arg; return 1;
    case 1022: f->pieces = arg; return 1;
    case 1023: f->exchange = arg; return 1;
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

/* --workload train: the training step of docs/TRAINING.md. */
static tg_graph *build_train(wl_flags *f, const char *cmd, const topo *t, double *tokens)
{
    ms_err err = {{0}};
    if (!f->sched || !f->model) {
        cli_error(cmd, "--workload train needs --sched and --model");
        return NULL;
    }
    wl_train_params *p = &f->tp;
    wl_train_defaults(p);
    int s = wl_train_sched_find(f->sched);
    if (s < 0) {
        cli_error(cmd, "unknown --sched '%s' for --workload train (known: dsmoe, tutel, fsmoe)",
                  f->sched);
        return NULL;
    }
    if (f->ag || f->eg || f->r1 != 1 || f->ma != 1 || f->r2 != 1 || f->order || f->phase ||
        f->routing || f->exchange) {
        cli_error(cmd, "--ag, --eg, --r1, --ma, --r2, --order, --phase, --routing and --exchange "
                       "apply to --workload dep, not train");
        return NULL;
    }
    p->sched = (wl_train_sched)s;
    p->ep = f->ep, p->esp = f->esp, p->dp = f->dp, p->batch = f->batch, p->r = f->r;
    p->capacity = f->capacity;
    if (f->seq) p->seq = f->seq;
    if (model_load(f->model, &f->m, &err) != 0 ||
        (f->layers >= 0 && model_keep_layers(&f->m, f->layers, &err) != 0)) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    if ((f->rf || f->rb || f->pieces) && p->sched != WL_TRAIN_FSMOE) {
        cli_error(cmd, "--rf, --rb and --pieces apply to --sched fsmoe");
        return NULL;
    }
    int L = f->m.layers > WL_TRAIN_MAX_LAYERS ? WL_TRAIN_MAX_LAYERS : f->m.layers;
    if (f->rf) {
        if (wl_flags_degrees(cmd, "--rf", f->rf, L, f->rfv) != 0) return NULL;
        p->r_fwd = f->rfv;
    }
    if (f->rb) {
        if (wl_flags_degrees(cmd, "--rb", f->rb, L, f->rbv) != 0) return NULL;
        p->r_bwd = f->rbv;
    }
    if (f->pieces) {
        int n = wl_flags_pieces(cmd, f->pieces, f->pv, WL_TRAIN_MAX_PIECES);
        if (n < 0) return NULL;
        p->pieces = f->pv, p->npieces = n;
    }
    tg_graph *g = wl_train_build(&f->m, t, p, &err);
    if (!g) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    *tokens = wl_train_tokens(p, t);
    return g;
}

tg_graph *wl_flags_build(wl_flags *f, const char *cmd, const topo *t, double *tokens)
{
    ms_err err = {{0}};
    if (wl_flags_is_train(f)) return build_train(f, cmd, t, tokens);
    if (f->ep || f->esp || f->dp || f->batch != 1 || f->r != 1 || f->capacity != 1.0 || f->rf ||
        f->rb || f->pieces) {
        cli_error(cmd, "--ep, --esp, --dp, --batch, --r, --capacity, --rf, --rb and --pieces "
                       "apply to --workload train");
        return NULL;
    }
    if (!f->workload || strcmp(f->workload, "dep") != 0) {
        cli_error(cmd, "unknown workload '%s' (known: dep, train)", f->workload ? f->workload : "");
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
    if (f->exchange && wl_exchange_parse(f->exchange, &p->exchange, &err) != 0) {
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
            "  --seed N            seed for zipf's per-layer hot experts (default 1)\n"
            "  --exchange X        auto (default) | pairwise | m2n: A2E/E2A as one transfer\n"
            "                      per (AG, EG) pair, or as m2n collectives (docs/IR.md);\n"
            "                      auto picks m2n above 16384 pairs\n"
            "\n"
            "  --workload train    one MoE training step, forward + backward (docs/TRAINING.md)\n"
            "  --sched S           dsmoe | tutel | fsmoe\n"
            "  --model M --layers N --seq S   as above (seq default 1024)\n"
            "  --batch B           samples per rank (default 1)\n"
            "  --ep N --esp N --dp N  expert-parallel groups, expert shards per node group\n"
            "                      (default: esp = GPUs per node, ep = ranks/esp, dp = ranks)\n"
            "  --capacity C        capacity factor (default 1)\n"
            "  --r N               pipelining degree (tutel; fsmoe layers without --rf/--rb)\n"
            "  --rf L --rb L       fsmoe per-layer forward/backward degrees: N or N,N,...\n"
            "  --pieces P          fsmoe dense-gradient AllReduce partition: GAP:BYTES,...\n"
            "                      (GAP a backward gap number or 'tail'; default all in tail)\n");
}

/* The op table of the IR: one row per tg_op giving its text name, kind and shape fields.
 * The parser and the writer are driven by this table, so adding a compute op means adding
 * an enum value in tg.h and a row here. Also the bit-exact packing of delay durations. */
#include <string.h>

#include "ir/tg.h"

#define REQ TG_ARG_REQUIRED

static const tg_op_info op_table[TG_OP__COUNT] = {
    [TG_OP_DELAY] = {.name = "delay", .kind = TG_KIND_DELAY, .nargs = 1, .arg = {"us"},
                     .dflt = {REQ}, .min = {0}},
    [TG_OP_GEMM] = {.name = "gemm", .kind = TG_KIND_COMPUTE, .nargs = 4,
                    .arg = {"m", "n", "k", "count"}, .dflt = {REQ, REQ, REQ, 1},
                    .min = {1, 1, 1, 1}},
    [TG_OP_XCHG] = {.name = "xchg", .kind = TG_KIND_XCHG, .nargs = 0},
    [TG_OP_ALLREDUCE] = {.name = "allreduce", .kind = TG_KIND_COLL, .nargs = 2,
                         .arg = {"group", "bytes"}, .dflt = {REQ, REQ}, .min = {0, 1}},
    [TG_OP_ALLGATHER] = {.name = "allgather", .kind = TG_KIND_COLL, .nargs = 2,
                         .arg = {"group", "bytes"}, .dflt = {REQ, REQ}, .min = {0, 1}},
    [TG_OP_REDUCESCATTER] = {.name = "reducescatter", .kind = TG_KIND_COLL, .nargs = 2,
                             .arg = {"group", "bytes"}, .dflt = {REQ, REQ}, .min = {0, 1}},
    /* b samples, sq query tokens and skv key/value tokens per sample, h query heads,
     * hkv key/value heads, dk query/key head dim, dv value head dim. Prefill: sq = skv
     * = S; decode: sq = 1, skv = the KV-cache length. */
    [TG_OP_ATTN] = {.name = "attn", .kind = TG_KIND_COMPUTE, .nargs = 7,
                    .arg = {"b", "sq", "skv", "h", "hkv", "dk", "dv"},
                    .dflt = {REQ, REQ, REQ, REQ, REQ, REQ, REQ},
                    .min = {1, 1, 1, 1, 1, 1, 1}},
    /* tokens: token-expert assignments routed to this rank's experts in total (0 allowed:
     * an expert rank may receive nothing), experts: local experts, hidden and inter: the
     * FFN's model and intermediate sizes, gemms: 3 for SwiGLU, 2 for a plain MLP. */
    [TG_OP_FFN] = {.name = "ffn", .kind = TG_KIND_COMPUTE, .nargs = 5,
                   .arg = {"tokens", "experts", "hidden", "inter", "gemms"},
                   .dflt = {REQ, REQ, REQ, REQ, 3}, .min = {0, 1, 1, 1, 1}},
    /* tokens scored against `experts` routed experts over the hidden size, then top-k. */
    [TG_OP_GATE] = {.name = "gate", .kind = TG_KIND_COMPUTE, .nargs = 3,
                    .arg = {"tokens", "hidden", "experts"}, .dflt = {REQ, REQ, REQ},
                    .min = {1, 1, 1}},
    /* an aggregate many-to-many exchange (tg.h, docs/IR.md): bytes per count unit, the
     * sender group, the counts vector, per = 0 (recv) or 1 (send) */
    [TG_OP_M2N] = {.name = "m2n", .kind = TG_KIND_COLL, .nargs = 5,
                   .arg = {"group", "bytes", "from", "counts", "per"},
                   .dflt = {REQ, REQ, REQ, REQ, REQ}, .min = {0, 1, 0, 0, 0}},
};

const tg_op_info *tg_op_get(tg_op op)
{
    if ((unsigned)op >= TG_OP__COUNT) return NULL;
    return &op_table[op];
}

int tg_op_find(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < TG_OP__COUNT; i++)
        if (strcmp(op_table[i].name, name) == 0) return i;
    return -1;
}

int64_t tg_delay_arg(double us)
{
    int64_t a;
    memcpy(&a, &us, sizeof a);
    return a;
}

double tg_task_delay_us(const tg_graph *g, uint32_t t)
{
    double us;
    int64_t a = tg_task_args(g, t)[0];
    memcpy(&us, &a, sizeof us);
    return us;
}

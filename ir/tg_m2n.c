/* The m2n op's helpers: the two sides of an exchange, and its expansion into the equivalent
 * xchg tasks (one send per receiver on each sender, one receive per sender on each
 * receiver), which is the form the executors run. Semantics in tg.h and docs/IR.md. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ir/tg.h"
#include "ir/tg_internal.h"


void tg_m2n_sides(const tg_graph *g, uint32_t t, int32_t *src, uint32_t *nsrc, int32_t *dst,
                  uint32_t *ndst, const int64_t **counts, int *per)
{
    const int64_t *a = tg_task_args(g, t);
    uint32_t gi = (uint32_t)a[0], fi = (uint32_t)a[2];
    const int32_t *gr = g->group_ranks + g->group_off[gi];
    const int32_t *fr = g->group_ranks + g->group_off[fi];
    uint32_t gn = g->group_off[gi + 1] - g->group_off[gi];
    uint32_t fn = g->group_off[fi + 1] - g->group_off[fi];
    uint32_t ns = 0, nd = 0;
    for (uint32_t i = 0, j = 0; i < gn; i++) { /* both ascending: one merge walk */
        while (j < fn && fr[j] < gr[i]) j++;
        if (j < fn && fr[j] == gr[i]) src[ns++] = gr[i];
        else dst[nd++] = gr[i];
    }
    *nsrc = ns;
    *ndst = nd;
    if (counts) *counts = g->vec_val + g->vec_off[a[3]];
    if (per) *per = (int)a[4];
}

int tg_has_m2n(const tg_graph *g)
{
    if (!g) return 0;
    for (uint32_t t = 0; t < g->ntasks; t++)
        if (g->op[t] == TG_OP_M2N) return 1;
    return 0;
}

tg_graph *tg_expand_m2n(const tg_graph *g, ms_err *err)
{
    if (!g) {
        ms_err_set(err, "tg_expand_m2n: no graph");
        return NULL;
    }
    if (!g->finalized) {
        ms_err_set(err, "tg_expand_m2n: the graph is not finalized");
        return NULL;
    }
    uint32_t n = g->ntasks, npieces = g->coll_off[g->ncoll];
    tg_graph *ng = NULL;
    /* Per m2n instance ci, side[coll_off[ci] ..] holds its senders then its receivers (each
     * ascending); pos[t] is the place of piece t in that order. Computed once per instance,
     * so the work is linear in the pieces plus the transfers made. */
    int32_t *side = malloc(((size_t)npieces + 1) * sizeof *side);
    uint32_t *pos = malloc(((size_t)n + 1) * sizeof *pos);
    int32_t *peer = NULL;
    int64_t *bytes = NULL, *after = NULL;
    uint8_t *send = NULL;
    if (!side || !pos) goto oom;
    uint64_t total = g->nxfers;
    uint32_t maxside = 1, maxdeps = 1;
    for (uint32_t ci = 0; ci < g->ncoll; ci++) {
        uint32_t base = g->coll_off[ci], t0 = g->coll_task[base];
        if (g->op[t0] != TG_OP_M2N) continue;
        const int64_t *a = tg_task_args(g, t0);
        uint32_t gi = (uint32_t)a[0], fi = (uint32_t)a[2];
        const int32_t *gr = g->group_ranks + g->group_off[gi];
        const int32_t *fr = g->group_ranks + g->group_off[fi];
        uint32_t gn = g->group_off[gi + 1] - g->group_off[gi];
        uint32_t fn = g->group_off[fi + 1] - g->group_off[fi], ns = 0, nd = 0;
        for (uint32_t p = 0, j = 0; p < gn; p++) { /* coll_task is in group (rank) order */
            while (j < fn && fr[j] < gr[p]) j++;
            uint32_t at = j < fn && fr[j] == gr[p] ? ns++ : fn + nd++;
            side[base + at] = gr[p];
            pos[g->coll_task[base + p]] = at;
        }
        total += 2 * (uint64_t)ns * nd;
        if (gn > maxside) maxside = gn;
    }
    if (total > TG_NONE - 1) {
        tg_gerr(err, g, 0,
             "expanding m2n tasks needs %llu transfers, more than the IR holds (%u)",
             (unsigned long long)total, (unsigned)(TG_NONE - 1));
        goto fail;
    }
    for (uint32_t t = 0; t < n; t++) {
        uint32_t nd = g->dep_off[t + 1] - g->dep_off[t];
        if (nd > maxdeps) maxdeps = nd;
    }
    peer = malloc((size_t)maxside * sizeof *peer);
    bytes = malloc((size_t)maxside * sizeof *bytes);
    send = malloc((size_t)maxside);
    after = malloc((size_t)maxdeps * sizeof *after);
    if (!peer || !bytes || !send || !after) goto oom;

    if (!(ng = tg_graph_create(g->source_name))) goto oom;
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (tg_add_group(ng, g->str + g->group_name[i], g->group_ranks + g->group_off[i],
                         (int)(g->group_off[i + 1] - g->group_off[i]), g->group_line[i], err) < 0)
            goto fail;
    for (uint32_t i = 0; i < g->nvecs; i++)
        if (tg_add_vec(ng, g->str + g->vec_name[i], g->vec_val + g->vec_off[i],
                       g->vec_off[i + 1] - g->vec_off[i], g->vec_line[i], err) < 0)
            goto fail;
    for (uint32_t t = 0; t < n; t++) {
        tg_task_spec s = {.id = g->id[t], .rank = g->rank[t],
                          .stream = g->str + g->stream_name[g->stream[t]],
                          .op = (tg_op)g->op[t], .args = tg_task_args(g, t), .after = after,
                          .label = tg_str(g, g->label[t]), .line = g->line[t]};
        for (uint32_t i = g->dep_off[t]; i < g->dep_off[t + 1]; i++)
            after[s.nafter++] = g->id[g->dep[i]];
        if (g->op[t] == TG_OP_XCHG) {
            uint32_t x0 = g->xfer_off[t];
            s.xfer_peer = g->xfer_peer + x0;
            s.xfer_bytes = g->xfer_bytes + x0;
            s.xfer_send = g->xfer_send + x0;
            s.nxfer = (int)(g->xfer_off[t + 1] - x0);
        } else if (g->op[t] == TG_OP_M2N) {
            const int64_t *a = tg_task_args(g, t);
            uint32_t gi = (uint32_t)a[0], fi = (uint32_t)a[2], base = g->coll_off[g->coll_of[t]];
            uint32_t ns = g->group_off[fi + 1] - g->group_off[fi];
            uint32_t nr = g->group_off[gi + 1] - g->group_off[gi] - ns, p = pos[t];
            const int64_t *c = g->vec_val + g->vec_off[a[3]];
            int per_send = a[4] == TG_M2N_PER_SEND, sender = p < ns;
            uint32_t nother = sender ? nr : ns;
            for (uint32_t k = 0; k < nother; k++) {
                uint32_t i = sender ? p : k, j = sender ? k : p - ns; /* sender i, receiver j */
                int64_t units =
                    per_send ? tg_m2n_share(c[i], nr, j, i) : tg_m2n_share(c[j], ns, i, j);
                if (units > 0 && a[1] > INT64_MAX / units) {
                    tg_gerr(err, g, g->line[t],
                         "task %lld: m2n transfer of %lld units x %lld bytes overflows int64",
                         (long long)g->id[t], (long long)units, (long long)a[1]);
                    goto fail;
                }
                peer[k] = side[base + (sender ? ns + j : i)];
                bytes[k] = units * a[1];
                send[k] = (uint8_t)sender;
            }
            s.op = TG_OP_XCHG;
            s.args = NULL;
            s.xfer_peer = peer;
            s.xfer_bytes = bytes;
            s.xfer_send = send;
            s.nxfer = (int)nother;
        }
        if (tg_add_task(ng, &s, err) < 0) goto fail;
    }
    if (tg_graph_finalize(ng, err)) goto fail;
    free(side), free(pos), free(peer), free(bytes), free(send), free(after);
    return ng;
oom:
    tg_gerr(err, g, 0, "out of memory expanding m2n tasks");
fail:
    free(side), free(pos), free(peer), free(bytes), free(send), free(after);
    tg_graph_free(ng);
    return NULL;
}

/* FSMoE's layer grid: reading traces/fsmoe-grid.tsv, turning a point into a model, and
 * solving one workload under dsmoe, tutel and fsmoe for comparison (used by
 * `moesched repro fsmoe` and bench/bench_train.c). docs/TRAINING.md, "Grid". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "solver/solve.h"

int solve_grid_load(const char *path, solve_grid_point **pts, int *n, ms_err *err)
{
    *pts = NULL, *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return ms_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    char line[512];
    int lineno = 0, header = 0, cap = 0, rc = 0;
    solve_grid_point *v = NULL;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (!header) {
            if (strncmp(line, "id\tbatch\tseq\thidden\tffn_hidden\theads\tcapacity\tffn_gemms", 54)) {
                rc = ms_err_set(err, "%s:%d: expected the header 'id batch seq hidden ffn_hidden "
                                     "heads capacity ffn_gemms' (tab-separated)", path, lineno);
                break;
            }
            header = 1;
            continue;
        }
        solve_grid_point p;
        char extra;
        if (sscanf(line, "%d\t%d\t%d\t%d\t%d\t%d\t%lf\t%d %c", &p.id, &p.batch, &p.seq, &p.hidden,
                   &p.ffn_hidden, &p.heads, &p.capacity, &p.ffn_gemms, &extra) != 8) {
            rc = ms_err_set(err, "%s:%d: expected 8 tab-separated numbers", path, lineno);
            break;
        }
        if (p.batch < 1 || p.seq < 1 || p.hidden < 1 || p.ffn_hidden < 1 || p.heads < 1 ||
            !(p.capacity > 0) || (p.ffn_gemms != 2 && p.ffn_gemms != 3) ||
            p.hidden % p.heads != 0) {
            rc = ms_err_set(err, "%s:%d: point %d: sizes must be positive, heads must divide "
                                 "hidden and ffn_gemms be 2 or 3", path, lineno, p.id);
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            solve_grid_point *w = realloc(v, sizeof *w * (size_t)cap);
            if (!w) {
                rc = ms_err_set(err, "%s: out of memory", path);
                break;
            }
            v = w;
        }
        v[(*n)++] = p;
    }
    if (!rc && ferror(f)) rc = ms_err_set(err, "%s: read error", path);
    if (!rc && !header) rc = ms_err_set(err, "%s: no header line", path);
    fclose(f);
    if (rc) {
        free(v);
        *n = 0;
        return -1;
    }
    *pts = v;
    return 0;
}

int solve_grid_model(const solve_grid_point *pt, model_cfg *m, ms_err *err)
{
    if (pt->hidden % pt->heads != 0)
        return ms_err_set(err, "grid point %d: heads %d do not divide hidden %d", pt->id,
                          pt->heads, pt->hidden);
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "grid-%d", pt->id);
    snprintf(m->family, sizeof m->family, "grid");
    m->layers = SOLVE_GRID_LAYERS;
    m->hidden = pt->hidden;
    m->attn = MODEL_ATTN_MHA;
    m->heads = m->kv_heads = pt->heads;
    m->head_dim = m->v_head_dim = pt->hidden / pt->heads;
    m->routed_experts = SOLVE_GRID_EXPERTS;
    m->top_k = SOLVE_GRID_TOP_K;
    m->expert_inter = m->dense_inter = pt->ffn_hidden;
    m->ffn_gemms = pt->ffn_gemms;
    m->dtype_bytes = 2;
    return 0;
}

int solve_train_compare_all(const solve_train_request *rq0, solve_train_compare *out,
                            ms_err *err)
{
    solve_train_request rq = *rq0;
    solve_train_result *r = malloc(sizeof *r);
    if (!r) return ms_err_set(err, "out of memory");
    memset(out, 0, sizeof *out);
    int rc = -1;
    rq.method = SOLVE_TRAIN_SEARCH;
    rq.sched = WL_TRAIN_FSMOE;
    /* fsmoe's search simulates every uniform degree with the AllReduce after backward:
     * those are tutel's trials, and r = 1 is dsmoe's graph */
    if (solve_train(&rq, r, err) != 0) goto done;
    out->dsmoe_s = r->trial_s[0];
    out->tutel_s = r->trial_s[0], out->tutel_r = 1;
    static const int deg[] = {1, 2, 4, 8};
    for (int i = 1; i < 4; i++)
        if (r->trial_s[i] < out->tutel_s) out->tutel_s = r->trial_s[i], out->tutel_r = deg[i];
    out->fsmoe_s = r->step_s, out->fsmoe_model_s = r->model_step_s;
    out->rf0 = r->r_fwd[0], out->rb0 = r->r_bwd[0];
    out->layers_differ = r->layers_differ, out->npieces = r->npieces;
    out->simulations = r->simulations;
    rc = 0;
done:
    free(r);
    return rc;
}

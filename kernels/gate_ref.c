/* CPU reference of the MoE gate: softmax or sigmoid scores, optional selection bias,
 * optional group limit (DeepSeek-V2 max / V3 top-2 sum), top-k with lower-index-wins ties,
 * and routing weights (k.h gives the exact rules). O(T·k·E): k argmax passes per token. */
#include <math.h>
#include <stdlib.h>

#include "kernels/k.h"

static int params_ok(const k_gate_params *p)
{
    if (!p || p->n_experts < 1 || p->topk < 1 || p->topk > p->n_experts) return 0;
    if (p->score != K_GATE_SOFTMAX && p->score != K_GATE_SIGMOID) return 0;
    if (p->n_groups < 1 || p->n_experts % p->n_groups != 0) return 0;
    if (p->n_groups > 1) {
        int per = p->n_experts / p->n_groups;
        if (p->topk_groups < 1 || p->topk_groups > p->n_groups) return 0;
        if (p->topk > p->topk_groups * per) return 0;
        if (p->group_score == K_GROUP_TOP2) {
            if (per < 2) return 0;
        } else if (p->group_score != K_GROUP_MAX) {
            return 0;
        }
    }
    return 1;
}

/* Index of the largest key among i in [0, n) with !taken[i]; the lowest such index wins
 * ties (strict >). -1 if none is left. NaN keys lose to everything. */
static int argmax_free(const float *key, const unsigned char *taken, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (taken[i] || isnan(key[i])) continue;
        if (best < 0 || key[i] > key[best]) best = i;
    }
    if (best < 0)
        for (int i = 0; i < n; i++)
            if (!taken[i]) return i;
    return best;
}

int k_gate_ref(const float *logits, int n_tokens, const k_gate_params *p, int32_t *topk_idx,
               float *topk_w)
{
    if (!params_ok(p) || n_tokens < 0) return K_EINVAL;
    if (n_tokens == 0) return K_OK;
    if (!logits || !topk_idx || !topk_w) return K_EINVAL;
    const int E = p->n_experts, k = p->topk, G = p->n_groups, per = E / G;
    /* one block: score[E], key[E], gscore[G]; taken[E], gtaken[G] */
    float *score = malloc(sizeof(float) * (size_t)(2 * E + G));
    unsigned char *taken = malloc((size_t)(E + G));
    if (!score || !taken) {
        free(score);
        free(taken);
        return K_ENOMEM;
    }
    float *key = score + E, *gscore = key + E;
    unsigned char *gtaken = taken + E;

    for (int t = 0; t < n_tokens; t++) {
        const float *l = logits + (size_t)t * E;
        if (p->score == K_GATE_SOFTMAX) {
            float mx = l[0];
            for (int e = 1; e < E; e++) mx = l[e] > mx ? l[e] : mx;
            double sum = 0;
            for (int e = 0; e < E; e++) sum += score[e] = expf(l[e] - mx);
            float inv = (float)(1.0 / sum);
            for (int e = 0; e < E; e++) score[e] *= inv;
        } else {
            for (int e = 0; e < E; e++) score[e] = 1.0f / (1.0f + expf(-l[e]));
        }
        for (int e = 0; e < E; e++) {
            key[e] = score[e] + (p->bias ? p->bias[e] : 0.0f);
            taken[e] = 0;
        }
        if (G > 1) {
            for (int g = 0; g < G; g++) {
                const float *kg = key + (size_t)g * per;
                float a = -INFINITY, b = -INFINITY; /* largest, second largest */
                for (int i = 0; i < per; i++) {
                    if (kg[i] > a) b = a, a = kg[i];
                    else if (kg[i] > b) b = kg[i];
                }
                gscore[g] = p->group_score == K_GROUP_MAX ? a : a + b;
                gtaken[g] = 0;
            }
            for (int n = 0; n < p->topk_groups; n++) gtaken[argmax_free(gscore, gtaken, G)] = 1;
            /* experts of groups not kept are unavailable */
            for (int g = 0; g < G; g++)
                if (!gtaken[g])
                    for (int i = 0; i < per; i++) taken[g * per + i] = 1;
        }
        int32_t *idx = topk_idx + (size_t)t * k;
        float *w = topk_w + (size_t)t * k;
        double sum = 0;
        for (int j = 0; j < k; j++) {
            int e = argmax_free(key, taken, E);
            taken[e] = 1;
            idx[j] = e;
            w[j] = score[e];
            sum += score[e];
        }
        int norm = p->score == K_GATE_SIGMOID || p->renorm;
        float f = norm && sum > 0 ? (float)(p->scale / sum) : p->scale;
        for (int j = 0; j < k; j++) w[j] *= f;
    }
    free(score);
    free(taken);
    return K_OK;
}

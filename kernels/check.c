/* Helpers shared by the kernels' CPU references and their checks: k_check (compare with
 * tolerance atol + rtol·|ref|, llm.c style), bf16 conversion, and a deterministic filler. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernels/k.h"

/* Appends printf-style text to msg at *pos, never overrunning msg_len. */
static void append(char *msg, size_t msg_len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *msg, size_t msg_len, size_t *pos, const char *fmt, ...)
{
    if (!msg || *pos + 1 >= msg_len) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(msg + *pos, msg_len - *pos, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    *pos += (size_t)w;
    if (*pos >= msg_len) *pos = msg_len - 1;
}

static int pair_ok(float g, float r, float atol, float rtol)
{
    if (isnan(g) || isnan(r)) return isnan(g) && isnan(r);
    if (isinf(g) || isinf(r)) return g == r;
    return fabs((double)g - (double)r) <= (double)atol + (double)rtol * fabs((double)r);
}

int k_check(const char *name, const float *got, const float *ref, size_t n, float atol,
            float rtol, k_check_result *res, char *msg, size_t msg_len)
{
    if ((n > 0 && (!got || !ref)) || !(atol >= 0) || !(rtol >= 0)) return K_EINVAL;
    k_check_result r = {0};
    r.n = n;
    r.first_bad = n;
    size_t shown[K_CHECK_SHOW];
    int n_shown = 0;
    for (size_t i = 0; i < n; i++) {
        float g = got[i], f = ref[i];
        if (isfinite(g) && isfinite(f)) {
            double e = fabs((double)g - (double)f);
            if (e > r.max_abs_err) r.max_abs_err = e, r.max_abs_at = i;
            if (f != 0 && e / fabs((double)f) > r.max_rel_err)
                r.max_rel_err = e / fabs((double)f), r.max_rel_at = i;
        }
        if (!pair_ok(g, f, atol, rtol)) {
            if (r.n_bad == 0) r.first_bad = i;
            if (n_shown < K_CHECK_SHOW) shown[n_shown++] = i;
            r.n_bad++;
        }
    }
    if (res) *res = r;
    if (msg && msg_len > 0) {
        size_t pos = 0;
        msg[0] = '\0';
        append(msg, msg_len, &pos, "%s: %zu/%zu mismatches (atol %g, rtol %g)",
               name ? name : "check", r.n_bad, n, (double)atol, (double)rtol);
        append(msg, msg_len, &pos, "; max abs err %g at %zu, max rel err %g at %zu",
               r.max_abs_err, r.max_abs_at, r.max_rel_err, r.max_rel_at);
        for (int j = 0; j < n_shown; j++)
            append(msg, msg_len, &pos, "%s[%zu] got %g ref %g", j == 0 ? "; first: " : "; ",
                   shown[j], (double)got[shown[j]], (double)ref[shown[j]]);
    }
    return r.n_bad ? 1 : 0;
}

uint16_t k_bf16_from_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float k_f32_from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void k_round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = k_f32_from_bf16(k_bf16_from_f32(x[i]));
}

void k_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s += 0x9e3779b97f4a7c15ull; /* splitmix64 */
        uint64_t z = s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        float u = (float)(z >> 40) * (1.0f / 16777216.0f); /* [0, 1), 24 bits */
        x[i] = lo + (hi - lo) * u;
    }
}

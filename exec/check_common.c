/* Helpers shared by the check modes (exec/moe_check.c, exec/train_check.c): seeded draws
 * and the wire format of a row. See exec/check_common.h. */
#include "exec/check_common.h"

#include <math.h>
#include <string.h>

#include "exec/ex_mpi.h"
#include "kernels/k.h"

uint64_t ex_ck_mix(uint64_t seed, int l, int kind, int idx)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + ((uint64_t)(l + 1) << 40) +
                 ((uint64_t)kind << 32) + (uint64_t)(idx + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ex_ck_fill_w(float *w, size_t n, uint64_t seed, int l, int kind, int idx, int fan_in)
{
    float a = sqrtf(3.0f / (float)fan_in);
    k_fill_uniform(w, n, ex_ck_mix(seed, l, kind, idx), -a, a);
}

void ex_ck_row_pack(const float *x, int M, int B, void *out)
{
    if (B == 4) {
        memcpy(out, x, (size_t)M * 4);
        return;
    }
    uint16_t *o = out;
    for (int i = 0; i < M; i++) o[i] = k_bf16_from_f32(x[i]);
}

void ex_ck_row_unpack(const void *in, int M, int B, float *x)
{
    if (B == 4) {
        memcpy(x, in, (size_t)M * 4);
        return;
    }
    const uint16_t *p = in;
    for (int i = 0; i < M; i++) x[i] = k_f32_from_bf16(p[i]);
}

void ex_ck_row_round(float *x, int M, int B)
{
    if (B == 2) k_round_bf16(x, (size_t)M);
}

int ex_ck_finish(double *stat, int n, int local, int rank, double rtol, ex_result *res,
                 ms_err *err)
{
    ms_err e2;
    if (ex_bcast(stat, (size_t)n * sizeof *stat, 0, &e2) != 0) {
        if (!local) *err = e2;
        return -1;
    }
    if (local) return -1;
    if (stat[1]) return ms_err_set(err, "rank %d: the check failed on rank 0", rank);
    res->check_done = 1;
    res->check_max_rel_err = stat[0];
    res->check_tolerance = rtol;
    res->check_ok = stat[0] <= rtol;
    return 0;
}

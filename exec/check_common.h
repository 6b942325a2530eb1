/* Helpers shared by the two check modes (internal to exec/): exec/moe_check.c (inference
 * forward) and exec/train_check.c (training step). Seeded draws and the wire format of a
 * dispatched row, so that a run and its reference agree bit for bit. */
#ifndef EX_CHECK_COMMON_H
#define EX_CHECK_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "exec/exec.h"

/* A 64-bit seed for stream (l, kind, idx) of a check (splitmix64 of the mixed inputs). */
uint64_t ex_ck_mix(uint64_t seed, int l, int kind, int idx);

/* w[0..n) uniform with variance 1/fan_in, drawn from ex_ck_mix(seed, l, kind, idx). */
void ex_ck_fill_w(float *w, size_t n, uint64_t seed, int l, int kind, int idx, int fan_in);

/* The wire format of a dispatched row of M floats: bf16 (B = 2) or fp32 (B = 4). */
void ex_ck_row_pack(const float *x, int M, int B, void *out);
void ex_ck_row_unpack(const void *in, int M, int B, float *x);

/* What the wire does to a row that does not travel (the reference's model of it). */
void ex_ck_row_round(float *x, int M, int B);

/* The end of a comparison, on every rank: rank 0's stat (n doubles: stat[0] the max
 * relative error, stat[1] nonzero when rank 0 failed) is broadcast, and res->check_* is
 * filled against tolerance rtol. local: this rank's status so far (its err already set
 * when nonzero). Collective. */
int ex_ck_finish(double *stat, int n, int local, int rank, double rtol, ex_result *res,
                 ms_err *err);

#endif

/* Tests for core/routing: exact sums for every distribution, uniform's closed form, zipf's
 * skew, determinism and per-layer permutation (checked against the generator documented in
 * docs/ROUTING.md), trace scaling, and every bad spec and bad trace with file and line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/routing.h"

#define SRC MS_SOURCE_DIR
#define DATA SRC "/tests/data/routing/"
#define SHIPPED "deepseek-v2-skewed"
#define SHIPPED_EXPERTS 160
#define SHIPPED_LAYERS 8

/* Fails with the message when `hay` lacks `needle`. */
static void expect_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in message: %s", needle, hay);
}

static routing *create_ok(const char *spec, int experts, int layers, uint64_t seed)
{
    ms_err err = {""};
    routing *r = routing_create(spec, experts, layers, seed, &err);
    if (!r)
        fail_msg("routing_create(\"%s\", %d, %d) failed: %s", spec, experts, layers, err.msg);
    return r;
}

/* Counts for one call; fails the test on error. Caller frees. */
static int64_t *counts_ok(const routing *r, int experts, int layer, int64_t a)
{
    int64_t *c = malloc((size_t)experts * sizeof *c);
    assert_non_null(c);
    ms_err err = {""};
    if (routing_counts(r, layer, a, c, &err))
        fail_msg("routing_counts(%s, layer %d, %lld) failed: %s", routing_spec(r), layer,
                 (long long)a, err.msg);
    return c;
}

/* Every count >= 0 and the sum is exactly a. */
static void expect_exact(const routing *r, const int64_t *c, int experts, int64_t a)
{
    int64_t sum = 0;
    for (int e = 0; e < experts; e++) {
        if (c[e] < 0 || c[e] > a)
            fail_msg("%s: experts %d, assignments %lld: counts[%d] = %lld", routing_spec(r),
                     experts, (long long)a, e, (long long)c[e]);
        sum += c[e];
    }
    if (sum != a)
        fail_msg("%s: experts %d: counts sum to %lld, expected %lld", routing_spec(r), experts,
                 (long long)sum, (long long)a);
}

static int64_t max_count(const int64_t *c, int n)
{
    int64_t m = c[0];
    for (int i = 1; i < n; i++)
        if (c[i] > m) m = c[i];
    return m;
}

/* Reference for the documented permutation (docs/ROUTING.md): perm[rank] = expert. */
static uint64_t ref_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void ref_perm(uint64_t seed, int layer, int n, int *perm)
{
    uint64_t st = seed ^ ref_mix64((uint64_t)layer + 0x9E3779B97F4A7C15ULL);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        st += 0x9E3779B97F4A7C15ULL;
        uint64_t x = ref_mix64(st);
        /* high 64 bits of x * (i + 1), by 32-bit halves */
        uint64_t m = (uint64_t)(i + 1), lo = (x & 0xffffffffu) * m, hi = (x >> 32) * m;
        int j = (int)((hi + (lo >> 32)) >> 32);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- exact sums ---- */

static void test_sums_exact(void **state)
{
    (void)state;
    static const char *const specs[] = {"uniform", "zipf:0", "zipf:0.5", "zipf:1.2", "zipf:3",
                                        "zipf:40"};
    static const int experts[] = {1, 2, 3, 7, 8, 64, 160, 257};
    const int64_t big[] = {1000003, 123456789012LL, (int64_t)1 << 62, INT64_MAX};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++)
        for (size_t k = 0; k < sizeof experts / sizeof experts[0]; k++) {
            int n = experts[k];
            routing *r = create_ok(specs[s], n, 3, 42);
            int64_t as[12] = {0, 1, 2, n - 1, n, n + 1, 2 * n + 3, 6 * 4096};
            int na = 8;
            for (size_t b = 0; b < sizeof big / sizeof big[0]; b++) as[na++] = big[b];
            for (int i = 0; i < na; i++)
                for (int layer = 0; layer < 3; layer++) {
                    int64_t *c = counts_ok(r, n, layer, as[i]);
                    expect_exact(r, c, n, as[i]);
                    free(c);
                }
            routing_free(r);
        }

    /* the shipped trace (its expert count is fixed) */
    routing *r = create_ok("trace:" SHIPPED, SHIPPED_EXPERTS, SHIPPED_LAYERS, 0);
    const int64_t as[] = {0, 1, 5, 159, 160, 161, 24576, 1000003, (int64_t)1 << 62, INT64_MAX};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++)
        for (int layer = 0; layer < SHIPPED_LAYERS; layer++) {
            int64_t *c = counts_ok(r, SHIPPED_EXPERTS, layer, as[i]);
            expect_exact(r, c, SHIPPED_EXPERTS, as[i]);
            free(c);
        }
    routing_free(r);
}

/* ---- uniform ---- */

static void test_uniform(void **state)
{
    (void)state;
    static const int experts[] = {1, 3, 8, 160};
    for (size_t k = 0; k < sizeof experts / sizeof experts[0]; k++) {
        int n = experts[k];
        routing *r = create_ok("uniform", n, 2, 7);
        for (int64_t a = 0; a < 3 * n + 2; a++) {
            int64_t *c = counts_ok(r, n, 1, a);
            for (int e = 0; e < n; e++)
                if (c[e] != a / n + (e < a % n))
                    fail_msg("uniform, %d experts, %lld assignments: counts[%d] = %lld", n,
                             (long long)a, e, (long long)c[e]);
            free(c);
        }
        routing_free(r);
    }
    /* 10 over 4: the remainder 2 goes to experts 0 and 1 */
    routing *r = create_ok("uniform", 4, 1, 0);
    int64_t *c = counts_ok(r, 4, 0, 10);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 3);
    assert_int_equal(c[2], 2);
    assert_int_equal(c[3], 2);
    free(c);
    assert_string_equal(routing_spec(r), "uniform");
    routing_free(r);
}

/* ---- zipf ---- */

static void test_zipf_zero_is_uniform(void **state)
{
    (void)state;
    static const int experts[] = {1, 5, 64, 160};
    for (size_t k = 0; k < sizeof experts / sizeof experts[0]; k++) {
        int n = experts[k];
        routing *u = create_ok("uniform", n, 4, 1);
        routing *z = create_ok("zipf:0", n, 4, 99);
        routing *z2 = create_ok("zipf:0.0e5", n, 4, 5);
        const int64_t as[] = {0, 3, (int64_t)n + 2, 24576, 1000003};
        for (size_t i = 0; i < sizeof as / sizeof as[0]; i++)
            for (int layer = 0; layer < 4; layer++) {
                int64_t *cu = counts_ok(u, n, layer, as[i]);
                int64_t *cz = counts_ok(z, n, layer, as[i]);
                int64_t *cz2 = counts_ok(z2, n, layer, as[i]);
                assert_memory_equal(cu, cz, (size_t)n * sizeof *cu);
                assert_memory_equal(cu, cz2, (size_t)n * sizeof *cu);
                free(cu);
                free(cz);
                free(cz2);
            }
        assert_string_equal(routing_spec(z), "zipf:0");
        routing_free(u);
        routing_free(z);
        routing_free(z2);
    }
}

static void test_zipf_skew_raises_max(void **state)
{
    (void)state;
    static const char *const specs[] = {"zipf:0", "zipf:0.3", "zipf:0.8", "zipf:1.2", "zipf:2",
                                        "zipf:4"};
    const int n = 160;
    const int64_t a = 4096 * 6;
    int64_t prev = -1;
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        routing *r = create_ok(specs[s], n, 1, 3);
        int64_t *c = counts_ok(r, n, 0, a);
        int64_t m = max_count(c, n);
        if (m <= prev)
            fail_msg("%s: max count %lld is not larger than %lld for the previous skew",
                     specs[s], (long long)m, (long long)prev);
        prev = m;
        free(c);
        routing_free(r);
    }
    /* S = 4: the top expert takes 1/zeta(4) ~ 92.4% of the assignments */
    assert_true(prev > a * 90 / 100 && prev < a * 94 / 100);
}

static void test_zipf_deterministic(void **state)
{
    (void)state;
    const int n = 160, layers = 6;
    routing *a = create_ok("zipf:1.2", n, layers, 12345);
    routing *b = create_ok("zipf:1.2", n, layers, 12345);
    routing *other = create_ok("zipf:1.2", n, layers, 54321);
    int64_t *first[6];
    int differing_layers = 0, differing_seed = 0, hot_differs = 0;
    for (int layer = 0; layer < layers; layer++) {
        int64_t *ca = counts_ok(a, n, layer, 1000003);
        int64_t *ca2 = counts_ok(a, n, layer, 1000003);
        int64_t *cb = counts_ok(b, n, layer, 1000003);
        int64_t *co = counts_ok(other, n, layer, 1000003);
        assert_memory_equal(ca, ca2, (size_t)n * sizeof *ca);
        assert_memory_equal(ca, cb, (size_t)n * sizeof *ca);
        differing_seed += memcmp(ca, co, (size_t)n * sizeof *ca) != 0;
        first[layer] = ca;
        free(ca2);
        free(cb);
        free(co);
    }
    /* every pair of layers has a different hot set */
    int hot0 = 0;
    for (int e = 1; e < n; e++)
        if (first[0][e] > first[0][hot0]) hot0 = e;
    for (int i = 0; i < layers; i++) {
        int hot = 0;
        for (int e = 1; e < n; e++)
            if (first[i][e] > first[i][hot]) hot = e;
        hot_differs += hot != hot0;
        for (int j = i + 1; j < layers; j++)
            differing_layers += memcmp(first[i], first[j], (size_t)n * sizeof *first[i]) != 0;
    }
    assert_int_equal(differing_layers, layers * (layers - 1) / 2);
    assert_int_equal(differing_seed, layers);
    assert_true(hot_differs >= layers - 2); /* a repeat hot expert has chance ~1/160 */
    for (int i = 0; i < layers; i++) free(first[i]);
    routing_free(a);
    routing_free(b);
    routing_free(other);
}

/* Counts follow the documented permutation: non-increasing along the rank order, and each
 * within one of its exact share a * w_rank / sum(w). */
static void test_zipf_rank_order(void **state)
{
    (void)state;
    static const double skews[] = {0.4, 1.0, 1.2, 2.5};
    static const int experts[] = {2, 8, 64, 160};
    const int64_t as[] = {1, 7, 100, 24576, 999983};
    for (size_t s = 0; s < sizeof skews / sizeof skews[0]; s++)
        for (size_t k = 0; k < sizeof experts / sizeof experts[0]; k++) {
            int n = experts[k];
            char spec[32];
            snprintf(spec, sizeof spec, "zipf:%g", skews[s]);
            routing *r = create_ok(spec, n, 3, 777);
            int *perm = malloc((size_t)n * sizeof *perm);
            assert_non_null(perm);
            double wsum = 0;
            for (int i = 0; i < n; i++) wsum += pow(i + 1, -skews[s]);
            for (int layer = 0; layer < 3; layer++) {
                ref_perm(777, layer, n, perm);
                for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
                    int64_t *c = counts_ok(r, n, layer, as[i]);
                    for (int rank = 0; rank < n; rank++) {
                        int64_t got = c[perm[rank]];
                        if (rank > 0 && got > c[perm[rank - 1]])
                            fail_msg("%s, %d experts, layer %d, %lld: rank %d has %lld > rank "
                                     "%d's %lld", spec, n, layer, (long long)as[i], rank,
                                     (long long)got, rank - 1, (long long)c[perm[rank - 1]]);
                        double share = (double)as[i] * pow(rank + 1, -skews[s]) / wsum;
                        if (fabs((double)got - share) >= 1.0 + 1e-9 * share)
                            fail_msg("%s, %d experts, layer %d, %lld: rank %d (expert %d) got "
                                     "%lld, exact share %.3f", spec, n, layer,
                                     (long long)as[i], rank, perm[rank], (long long)got, share);
                    }
                    free(c);
                }
            }
            free(perm);
            routing_free(r);
        }
}

/* A few hand-checked values: 10 assignments, 3 experts, S = 1: shares 10/(1+1/2+1/3) =
 * 5.4545, 2.7273, 1.8182 -> floors 5, 2, 1, remainders .45, .73, .82 -> ranks 2 and 1 get
 * the two left: 5, 3, 2. */
static void test_zipf_known_values(void **state)
{
    (void)state;
    routing *r = create_ok("zipf:1", 3, 2, 9);
    int perm[3];
    for (int layer = 0; layer < 2; layer++) {
        ref_perm(9, layer, 3, perm);
        int64_t *c = counts_ok(r, 3, layer, 10);
        assert_int_equal(c[perm[0]], 5);
        assert_int_equal(c[perm[1]], 3);
        assert_int_equal(c[perm[2]], 2);
        free(c);
        /* fewer assignments than experts: 2 -> shares 1.09, .55, .36 -> 1, 1, 0 */
        c = counts_ok(r, 3, layer, 2);
        assert_int_equal(c[perm[0]], 1);
        assert_int_equal(c[perm[1]], 1);
        assert_int_equal(c[perm[2]], 0);
        free(c);
    }
    routing_free(r);
}

/* ---- traces ---- */

static void expect_counts(const routing *r, int layer, int64_t a, const int64_t *want)
{
    int64_t *c = counts_ok(r, 4, layer, a);
    for (int e = 0; e < 4; e++)
        if (c[e] != want[e])
            fail_msg("%s layer %d, %lld assignments: got %lld %lld %lld %lld, expected %lld "
                     "%lld %lld %lld", routing_spec(r), layer, (long long)a, (long long)c[0],
                     (long long)c[1], (long long)c[2], (long long)c[3], (long long)want[0],
                     (long long)want[1], (long long)want[2], (long long)want[3]);
    free(c);
}

static void test_trace_scaling(void **state)
{
    (void)state;
    /* good.csv: layer column; rows 1 2 3 4 / 1 1 1 1 / 0 5 0 5 */
    static const char *const files[] = {"trace:" DATA "good.csv", "trace:" DATA "good-crlf.csv"};
    for (size_t f = 0; f < 2; f++) {
        routing *r = create_ok(files[f], 4, 3, 0);
        expect_counts(r, 0, 10, (const int64_t[]){1, 2, 3, 4});
        expect_counts(r, 0, 100, (const int64_t[]){10, 20, 30, 40});
        /* 3: shares .3 .6 .9 1.2 -> floors 0 0 0 1, the 2 left to remainders .9 and .6 */
        expect_counts(r, 0, 3, (const int64_t[]){0, 1, 1, 1});
        expect_counts(r, 0, 0, (const int64_t[]){0, 0, 0, 0});
        /* equal counts: ties go to the lower expert index */
        expect_counts(r, 1, 2, (const int64_t[]){1, 1, 0, 0});
        expect_counts(r, 1, 7, (const int64_t[]){2, 2, 2, 1});
        /* zero-count experts get nothing; .5 ties to the lower index */
        expect_counts(r, 2, 3, (const int64_t[]){0, 2, 0, 1});
        expect_counts(r, 2, 1000001, (const int64_t[]){0, 500001, 0, 500000});
        routing_free(r);
    }
    /* header without a layer column, blanks around cells, comments; an extra row is fine */
    routing *r = create_ok("trace:" DATA "good-header.csv", 4, 2, 0);
    expect_counts(r, 0, 16, (const int64_t[]){14, 0, 0, 2});
    expect_counts(r, 1, 14, (const int64_t[]){2, 3, 4, 5});
    expect_counts(r, 1, 7, (const int64_t[]){1, 2, 2, 2}); /* 1, 1.5, 2, 2.5 */
    routing_free(r);
    /* a UTF-8 byte order mark before the header is skipped */
    r = create_ok("trace:" DATA "good-bom.csv", 4, 1, 0);
    expect_counts(r, 0, 9, (const int64_t[]){0, 3, 3, 3});
    routing_free(r);
}

static void test_trace_shipped(void **state)
{
    (void)state;
    /* by name, by name with .csv, and by path give the same counts */
    routing *a = create_ok("trace:" SHIPPED, SHIPPED_EXPERTS, SHIPPED_LAYERS, 0);
    routing *b = create_ok("trace:" SHIPPED ".csv", SHIPPED_EXPERTS, 2, 5);
    routing *c =
        create_ok("trace:" SRC "/traces/routing/" SHIPPED ".csv", SHIPPED_EXPERTS, 1, 0);
    int64_t *ca = counts_ok(a, SHIPPED_EXPERTS, 0, 24576);
    int64_t *cb = counts_ok(b, SHIPPED_EXPERTS, 0, 24576);
    int64_t *cc = counts_ok(c, SHIPPED_EXPERTS, 0, 24576);
    assert_memory_equal(ca, cb, SHIPPED_EXPERTS * sizeof *ca);
    assert_memory_equal(ca, cc, SHIPPED_EXPERTS * sizeof *ca);
    /* the file holds 24576 assignments per layer: scaling to 24576 reproduces it, and
     * scaling to twice that doubles it */
    int64_t *c2 = counts_ok(a, SHIPPED_EXPERTS, 0, 2 * 24576);
    for (int e = 0; e < SHIPPED_EXPERTS; e++) assert_int_equal(c2[e], 2 * ca[e]);
    /* the trace is skewed: the hottest expert far above the mean of 153.6 */
    assert_true(max_count(ca, SHIPPED_EXPERTS) > 400);
    /* layers differ */
    int64_t *l5 = counts_ok(a, SHIPPED_EXPERTS, 5, 24576);
    assert_true(memcmp(ca, l5, SHIPPED_EXPERTS * sizeof *ca) != 0);
    /* an odd total stays within one of each exact share */
    int64_t *odd = counts_ok(a, SHIPPED_EXPERTS, 0, 1001);
    expect_exact(a, odd, SHIPPED_EXPERTS, 1001);
    for (int e = 0; e < SHIPPED_EXPERTS; e++)
        assert_true(fabs((double)odd[e] - 1001.0 * (double)ca[e] / 24576.0) < 1.0);
    free(ca);
    free(cb);
    free(cc);
    free(c2);
    free(l5);
    free(odd);
    routing_free(a);
    routing_free(b);
    routing_free(c);
}

typedef struct bad_trace {
    const char *file;
    int experts, layers;
    const char *where;   /* "file.csv:LINE:" */
    const char *message; /* part of the reason */
} bad_trace;

static const bad_trace bad_traces[] = {
    {"columns.csv", 4, 3, "columns.csv:3:",
     "row has 4 columns, expected 5 (layer + 4 experts)"},
    {"header-columns.csv", 4, 1, "header-columns.csv:1:", "header has 4 columns, expected 5"},
    {"negative.csv", 4, 2, "negative.csv:2:", "column 2 (expert 1): negative count -1"},
    {"fraction.csv", 4, 1, "fraction.csv:1:", "'2.5' is not an integer"},
    {"exponent.csv", 4, 2, "exponent.csv:2:", "'1e3' is not an integer"},
    {"word.csv", 4, 3, "word.csv:3:", "column 3 (expert 2): expected a non-negative integer"},
    {"plus.csv", 4, 2, "plus.csv:2:", "got '+2'"},
    {"empty-cell.csv", 4, 2, "empty-cell.csv:2:", "column 2 (expert 1) is empty"},
    {"trailing-comma.csv", 4, 1, "trailing-comma.csv:1:", "row has 5 columns, expected 4"},
    {"zero-row.csv", 4, 2, "zero-row.csv:2:", "all 4 counts are zero"},
    {"short.csv", 4, 3, "short.csv:3:", "ends after 2 layer rows; 3 needed"},
    {"header-only.csv", 4, 1, "header-only.csv:1:", "ends after 0 layer rows; 1 needed"},
    {"comments-only.csv", 4, 2, "comments-only.csv:3:", "ends after 0 layer rows; 2 needed"},
    {"empty.csv", 4, 1, "empty.csv: empty file",
     "expected a row of 4 expert counts for each of 1 MoE layers"},
    {"overflow.csv", 4, 2, "overflow.csv:2:", "99999999999999999999 is too large"},
    {"layer-order.csv", 4, 3, "layer-order.csv:4:", "layer 1 does not follow layer 2"},
    {"layer-negative.csv", 4, 2, "layer-negative.csv:3:", "column 1 (layer): negative count"},
    {"nul.csv", 4, 2, "nul.csv:2:", "NUL byte"},
    {"control.csv", 4, 1, "control.csv:1:", "column 3 (expert 2): expected a non-negative "
                                            "integer count (digits only), got '?'"},
    /* a good file asked for more layers or another expert count */
    {"good.csv", 4, 4, "good.csv:6:", "ends after 3 layer rows; 4 needed"},
    {"good.csv", 5, 1, "good.csv:2:", "header has 5 columns, expected 6 (layer + 5 experts)"},
    {"good-crlf.csv", 3, 1, "good-crlf.csv:1:",
     "row has 4 columns, expected 3 (one per expert)"},
};

static void test_trace_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_traces / sizeof bad_traces[0]; i++) {
        const bad_trace *b = &bad_traces[i];
        char spec[512];
        snprintf(spec, sizeof spec, "trace:%s%s", DATA, b->file);
        ms_err err = {""};
        routing *r = routing_create(spec, b->experts, b->layers, 0, &err);
        if (r)
            fail_msg("%s (%d experts, %d layers) was accepted", b->file, b->experts, b->layers);
        expect_contains(err.msg, b->where);
        expect_contains(err.msg, b->message);
    }

    /* shipped trace with the wrong expert count or too many layers */
    ms_err err = {""};
    assert_null(routing_create("trace:" SHIPPED, 64, 1, 0, &err));
    expect_contains(err.msg, SHIPPED ".csv:4: header has 161 columns, expected 65");
    assert_null(routing_create("trace:" SHIPPED, SHIPPED_EXPERTS, 59, 0, &err));
    expect_contains(err.msg, "ends after 8 layer rows; 59 needed");

    /* missing files: a path, and a name (which lists what there is) */
    assert_null(routing_create("trace:" DATA "no-such.csv", 4, 1, 0, &err));
    expect_contains(err.msg, "cannot open routing trace");
    expect_contains(err.msg, "no-such.csv");
    expect_contains(err.msg, "No such file");
    assert_null(routing_create("trace:no-such-trace", 4, 1, 0, &err));
    expect_contains(err.msg, "unknown routing trace 'no-such-trace'");
    expect_contains(err.msg, "traces/routing/no-such-trace.csv");
    expect_contains(err.msg, "available: ");
    expect_contains(err.msg, SHIPPED);
    /* a directory is not a trace */
    assert_null(routing_create("trace:" DATA, 4, 1, 0, &err));
    expect_contains(err.msg, "routing trace");
}

/* ---- bad specs and arguments ---- */

static void test_bad_specs(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *message;
    } bad[] = {
        {"zipf:", "missing skew S after 'zipf:'"},
        {"zipf", "missing skew S after 'zipf:'"},
        {"zipf:-1", "skew S must be >= 0, got -1"},
        {"zipf:abc", "skew S: expected a number, got 'abc'"},
        {"zipf:1.5x", "expected a number, got '1.5x'"},
        {"zipf:nan", "expected a number"},
        {"zipf:inf", "expected a number"},
        {"zipf:1e999", "at most 1000"},
        {"zipf:1001", "at most 1000"},
        {"zipf: 1", "expected a number"},
        {"foo", "unknown distribution 'foo'"},
        {"Uniform", "unknown distribution 'Uniform'"},
        {"uniform:2", "uniform takes no parameter"},
        {"trace:", "missing FILE after 'trace:'"},
        {"trace", "missing FILE after 'trace:'"},
        {"", "empty routing spec"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms_err err = {""};
        routing *r = routing_create(bad[i].spec, 8, 2, 0, &err);
        if (r) fail_msg("spec '%s' was accepted", bad[i].spec);
        expect_contains(err.msg, bad[i].message);
        expect_contains(err.msg, "accepted forms: uniform | zipf:S");
        expect_contains(err.msg, "trace:FILE");
        if (bad[i].spec[0]) {
            char quoted[64];
            snprintf(quoted, sizeof quoted, "'%s'", bad[i].spec);
            expect_contains(err.msg, quoted);
        }
    }
    ms_err err = {""};
    assert_null(routing_create(NULL, 8, 2, 0, &err));
    expect_contains(err.msg, "empty routing spec");
    assert_null(routing_create("uniform", 0, 2, 0, &err));
    expect_contains(err.msg, "experts must be 1 to 65536, got 0");
    assert_null(routing_create("zipf:1", ROUTING_MAX_EXPERTS + 1, 2, 0, &err));
    expect_contains(err.msg, "experts must be 1 to 65536");
    assert_null(routing_create("uniform", 8, 0, 0, &err));
    expect_contains(err.msg, "layers must be 1 to 65536, got 0");
    /* NULL err is allowed */
    assert_null(routing_create("foo", 8, 2, 0, NULL));
    /* accepted variants */
    static const char *const good[] = {"zipf:1", "zipf:.5", "zipf:1.", "zipf:+2", "zipf:1e-3",
                                       "zipf:1000", "zipf:-0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        routing_free(create_ok(good[i], 8, 2, 0));
}

static void test_counts_errors(void **state)
{
    (void)state;
    static const char *const specs[] = {"uniform", "zipf:1.1", "trace:" DATA "good.csv"};
    for (size_t s = 0; s < 3; s++) {
        routing *r = create_ok(specs[s], 4, 3, 0);
        int64_t c[4];
        ms_err err = {""};
        assert_int_equal(routing_counts(r, 3, 10, c, &err), -1);
        expect_contains(err.msg, "layer 3 is out of range (0 to 2)");
        expect_contains(err.msg, specs[s]);
        assert_int_equal(routing_counts(r, -1, 10, c, &err), -1);
        expect_contains(err.msg, "layer -1 is out of range");
        assert_int_equal(routing_counts(r, 0, -5, c, &err), -1);
        expect_contains(err.msg, "assignments must be >= 0, got -5");
        assert_int_equal(routing_counts(r, 0, 10, NULL, &err), -1);
        expect_contains(err.msg, "no counts array");
        assert_int_equal(routing_counts(r, 2, 10, c, NULL), 0);
        routing_free(r);
    }
    ms_err err = {""};
    int64_t c[1];
    assert_int_equal(routing_counts(NULL, 0, 1, c, &err), -1);
    assert_null(routing_spec(NULL));
    routing_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums_exact),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_zipf_zero_is_uniform),
        cmocka_unit_test(test_zipf_skew_raises_max),
        cmocka_unit_test(test_zipf_deterministic),
        cmocka_unit_test(test_zipf_rank_order),
        cmocka_unit_test(test_zipf_known_values),
        cmocka_unit_test(test_trace_scaling),
        cmocka_unit_test(test_trace_shipped),
        cmocka_unit_test(test_trace_errors),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_counts_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

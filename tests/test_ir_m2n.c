/* Tests for the IR's m2n op and count vectors (ir/tg.c, ir/tg_parse.c, ir/tg_write.c,
 * ir/tg_m2n.c): `vec` records and m2n fields through parse/write round trips, every bad
 * input (each message naming file and line), tg_graph_diff on vectors, the share rule
 * (tg_m2n_share), the sides, and the expansion into xchg tasks (tg_expand_m2n). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/tg.h"

/* ---- helpers ------------------------------------------------------------------------- */

#include "tests/tg_helpers.h"

/* Five ranks: senders 0,1 (group s), receivers 2,3,4. Instance 1 counts per receiver
 * (vec cr), instance 2 per sender (vec cs). Canonical text. */
#define HDR                                                                              \
    "tg 1\n"                                                                             \
    "group g ranks=0,1,2,3,4\n"                                                          \
    "group s ranks=0,1\n"                                                                \
    "vec cr counts=7,0,5\n"                                                              \
    "vec cs counts=4,9\n"
#define PIECE(id, r, cnt, per, extra)                                                    \
    "task " #id " rank=" #r " stream=a2e op=m2n group=g bytes=16 from=s counts=" cnt     \
    " per=" per extra "\n"

static const char *canon = HDR "task 100 rank=0 stream=compute op=gemm m=8 n=8 k=8\n"
    PIECE(0, 0, "cr", "recv", " after=100 label=disp") PIECE(1, 1, "cr", "recv", "")
    PIECE(2, 2, "cr", "recv", "") PIECE(3, 3, "cr", "recv", "")
    PIECE(4, 4, "cr", "recv", " label=\"d 4\"") PIECE(5, 0, "cs", "send", "")
    PIECE(6, 1, "cs", "send", "") PIECE(7, 2, "cs", "send", "") PIECE(8, 3, "cs", "send", "")
    PIECE(9, 4, "cs", "send", "")
    "task 10 rank=2 stream=x op=xchg send=3:5\n"
    "task 11 rank=3 stream=x op=xchg recv=2:5\n"
    "task 12 rank=0 stream=c op=allreduce group=s bytes=64\n"
    "task 13 rank=1 stream=c op=allreduce group=s bytes=64\n";

/* ---- text form ----------------------------------------------------------------------- */

static void test_roundtrip_canonical(void **state)
{
    (void)state;
    tg_graph *g = parse_ok(canon);
    assert_int_equal(g->nvecs, 2);
    assert_int_equal(tg_find_vec(g, "cs"), 1);
    assert_int_equal(tg_find_vec(g, "nope"), -1);
    assert_int_equal(g->vec_off[2] - g->vec_off[1], 2);
    assert_int_equal(g->vec_val[g->vec_off[1] + 1], 9);
    assert_int_equal(g->vec_line[0], 4);
    const int64_t *a = tg_task_args(g, 1); /* task 0 */
    assert_int_equal(g->op[1], TG_OP_M2N);
    assert_int_equal(a[0], 0);
    assert_int_equal(a[1], 16);
    assert_int_equal(a[2], 1);
    assert_int_equal(a[3], 0);
    assert_int_equal(a[4], TG_M2N_PER_RECV);
    assert_int_equal(tg_task_args(g, 6)[4], TG_M2N_PER_SEND);
    assert_int_equal(g->ncoll, 3);
    char *out = write_str(g);
    assert_string_equal(out, canon);
    tg_graph *g2 = parse_ok(out);
    char *out2 = write_str(g2);
    assert_string_equal(out2, out);
    ms_err e = {{0}};
    if (tg_graph_diff(g, g2, &e)) fail_msg("graphs differ after round trip: %s", e.msg);
    free(out), free(out2);
    tg_graph_free(g), tg_graph_free(g2);
}

/* Field order, vec position among tasks and comments are normalized. */
static void test_roundtrip_normalizes(void **state)
{
    (void)state;
    const char *in = "tg 1\n"
                     "group g ranks=2,0,1\n"
                     "group s ranks=1\n"
                     "task 0 rank=0 stream=t op=delay us=1\n"
                     "vec v counts=003,1  # a comment\n"
                     "task 1 rank=1 stream=m op=m2n per=send counts=v from=s bytes=2 group=g\n"
                     "task 2 rank=0 stream=m op=m2n from=s group=g bytes=2 per=send counts=v\n"
                     "task 3 rank=2 stream=m op=m2n group=g counts=v per=send from=s bytes=2\n";
    const char *want = "tg 1\n"
                       "group g ranks=0,1,2\n"
                       "group s ranks=1\n"
                       "vec v counts=3\n"
                       "task 0 rank=0 stream=t op=delay us=1\n"
                       "task 1 rank=1 stream=m op=m2n group=g bytes=2 from=s counts=v per=send\n"
                       "task 2 rank=0 stream=m op=m2n group=g bytes=2 from=s counts=v per=send\n"
                       "task 3 rank=2 stream=m op=m2n group=g bytes=2 from=s counts=v per=send\n";
    /* per=send over one sender: v needs one value; the input above has two */
    expect_error(in, "g.tg:6:", "task 1", "counts=v has 2 values, expected 1", NULL);
    char fixed[2048];
    snprintf(fixed, sizeof fixed, "%s", in);
    char *p = strstr(fixed, "003,1");
    memcpy(p, "003  ", 5);
    tg_graph *g = parse_ok(fixed);
    char *out = write_str(g);
    assert_string_equal(out, want);
    tg_graph *g2 = parse_ok(out);
    char *out2 = write_str(g2);
    assert_string_equal(out2, out);
    ms_err e = {{0}};
    if (tg_graph_diff(g, g2, &e)) fail_msg("%s", e.msg);
    free(out), free(out2);
    tg_graph_free(g), tg_graph_free(g2);
}

static void test_diff_vectors(void **state)
{
    (void)state;
    tg_graph *a = parse_ok("tg 1\nvec v counts=1,2\ntask 0 rank=0 stream=s op=delay us=1\n");
    tg_graph *b = parse_ok("tg 1\nvec v counts=1,3\ntask 0 rank=0 stream=s op=delay us=1\n");
    tg_graph *c = parse_ok("tg 1\nvec v counts=1,2,0\ntask 0 rank=0 stream=s op=delay us=1\n");
    tg_graph *d = parse_ok("tg 1\nvec w counts=1,2\ntask 0 rank=0 stream=s op=delay us=1\n");
    tg_graph *n = parse_ok("tg 1\ntask 0 rank=0 stream=s op=delay us=1\n");
    ms_err e = {{0}};
    assert_int_equal(tg_graph_diff(a, a, &e), 0);
    assert_int_equal(tg_graph_diff(a, b, &e), -1);
    assert_non_null(strstr(e.msg, "vector 0 (v) differs"));
    assert_int_equal(tg_graph_diff(a, c, &e), -1);
    assert_non_null(strstr(e.msg, "vector 0 (v) differs"));
    assert_int_equal(tg_graph_diff(a, d, &e), -1);
    assert_non_null(strstr(e.msg, "vector 0"));
    assert_int_equal(tg_graph_diff(a, n, &e), -1);
    assert_non_null(strstr(e.msg, "vector count differs: 1 vs 0"));
    tg_graph_free(a), tg_graph_free(b), tg_graph_free(c), tg_graph_free(d), tg_graph_free(n);
}

/* ---- bad input ----------------------------------------------------------------------- */

#define G3 "tg 1\ngroup g ranks=0,1,2\ngroup s ranks=0\nvec v counts=3,4\n"
#define M2N_R1 "task 1 rank=1 stream=m op=m2n group=g bytes=8 from=s counts=v per=recv\n"
#define M2N_R2 "task 2 rank=2 stream=m op=m2n group=g bytes=8 from=s counts=v per=recv\n"

static void test_err_inputs(void **state)
{
    (void)state;
    /* the base is fine */
    tg_graph *g = parse_ok(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v "
                              "per=recv\n" M2N_R1 M2N_R2);
    tg_graph_free(g);
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=w per=recv\n",
                 "g.tg:5:", "task 0", "unknown vector 'w' in counts=", NULL);
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=q counts=v per=recv\n",
                 "g.tg:5:", "task 0", "unknown group 'q' in from=", NULL);
    /* from not a subset */
    expect_error(G3 "group t ranks=0,7\n"
                    "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=t counts=v per=recv\n",
                 "g.tg:6:", "task 0", "from=t (ranks 0,7) is not a subset of group g",
                 "rank 7 is not a member", NULL);
    /* from equal to group, by itself or by another group with the same ranks */
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=g counts=v per=recv\n",
                 "g.tg:5:", "task 0", "from=g holds every rank of group g", NULL);
    expect_error(G3 "group h ranks=2,1,0\n"
                    "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=h counts=v per=recv\n",
                 "g.tg:6:", "task 0", "from=h holds every rank of group g", NULL);
    /* wrong vector length: per=send needs one count per sender (1 here) */
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v per=send\n",
                 "g.tg:5:", "task 0", "counts=v has 2 values, expected 1 (per=send: one per sender",
                 NULL);
    expect_error(G3 "vec u counts=1,2,3\n"
                    "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=u per=recv\n",
                 "g.tg:6:", "task 0", "counts=u has 3 values, expected 2 (per=recv: one per "
                                      "receiver",
                 NULL);
    /* negative count, bad counts */
    expect_error("tg 1\nvec v counts=1,-2\n", "g.tg:2:", "vec v: count -2 in counts= must be >= 0",
                 NULL);
    expect_error("tg 1\nvec v counts=1,x\n", "g.tg:2:", "vec v: bad count 'x'", NULL);
    expect_error("tg 1\nvec v counts=1,99999999999999999999\n", "g.tg:2:", "out of range", NULL);
    expect_error("tg 1\nvec v counts=\n", "g.tg:2:", "vec v: bad count ''", NULL);
    expect_error("tg 1\nvec v\n", "g.tg:2:", "vec v: missing field 'counts'", NULL);
    expect_error("tg 1\nvec v ranks=1\n", "g.tg:2:", "vec v: unknown field 'ranks'", NULL);
    expect_error("tg 1\nvec v counts=1 counts=2\n", "g.tg:2:", "duplicate field 'counts'", NULL);
    expect_error("tg 1\nvec v counts=\"1\"\n", "g.tg:2:", "must not be quoted", NULL);
    expect_error("tg 1\nvec\n", "g.tg:2:", "expected 'vec NAME counts=", NULL);
    expect_error("tg 1\nvec a/b counts=1\n", "g.tg:2:", "bad vec name 'a/b'", NULL);
    /* bad per word */
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v per=both\n",
                 "g.tg:5:", "task 0", "bad value 'both' for field 'per': expected recv or send",
                 NULL);
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v per=0\n",
                 "g.tg:5:", "bad value '0' for field 'per'", NULL);
    /* duplicate vec name (a group of the same name is fine) */
    expect_error(G3 "\nvec v counts=1\n", "g.tg:6:", "duplicate vec 'v' (first declared at line 4)",
                 NULL);
    tg_graph *same = parse_ok("tg 1\ngroup v ranks=0\nvec v counts=1\n");
    assert_int_equal(tg_find_group(same, "v"), 0);
    assert_int_equal(tg_find_vec(same, "v"), 0);
    tg_graph_free(same);
    /* a vector must be declared before its first use */
    expect_error("tg 1\ngroup g ranks=0,1\ngroup s ranks=0\n"
                 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v per=recv\n"
                 "vec v counts=1\n",
                 "g.tg:4:", "unknown vector 'v'", NULL);
    /* missing and bad fields */
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v\n", "g.tg:5:",
                 "task 0", "missing field 'per' for op m2n", NULL);
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=0 from=s counts=v per=recv\n",
                 "g.tg:5:", "bytes=0 must be >= 1", NULL);
    expect_error(G3 "task 0 rank=5 stream=m op=m2n group=g bytes=8 from=s counts=v per=recv\n",
                 "g.tg:5:", "rank 5 is not a member of group g", NULL);
    /* pieces disagreeing on counts (same length), on per, on from */
#define T0(x) "task 0 rank=0 stream=m op=m2n group=g " x "\n" M2N_R1 M2N_R2
    expect_error(G3 "vec w counts=3,5\n" T0("bytes=8 from=s counts=w per=recv"), "g.tg:7:",
                 "task 1 (rank 1)", "counts=v", "counts=w",
                 "must agree on bytes, from, counts and per", NULL);
    expect_error(G3 "vec w counts=3\n" T0("bytes=8 from=s counts=w per=send"), "g.tg:7:",
                 "task 1 (rank 1)", "per=recv", "per=send", "must agree", NULL);
    expect_error(G3 "group t ranks=2\n" T0("bytes=8 from=t counts=v per=recv"), "g.tg:7:",
                 "task 1 (rank 1)", "from=s", "from=t", "must agree", NULL);
    expect_error(G3 T0("bytes=9 from=s counts=v per=recv"), "g.tg:6:", "task 1 (rank 1)",
                 "m2n of 8 bytes does not match", NULL);
#undef T0
    /* a missing piece is reported like for any collective */
    expect_error(G3 "task 0 rank=0 stream=m op=m2n group=g bytes=8 from=s counts=v per=recv\n"
                    M2N_R1,
                 "g.tg:", "has no counterpart on rank 2", NULL);
}

/* The builder checks the same things for graphs made in memory. */
static void test_build_errors(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_graph_create("mem");
    int64_t vals[] = {1, -2, 3};
    assert_int_equal(tg_add_vec(g, "v", vals, 3, 7, &e), -1);
    assert_non_null(strstr(e.msg, "mem:7: vec v: count #2 is -2; counts must be >= 0"));
    assert_int_equal(tg_add_vec(g, "v", vals, 0, 7, &e), -1);
    assert_non_null(strstr(e.msg, "mem:7: vec v has no counts"));
    assert_int_equal(tg_add_vec(g, "", vals, 1, 0, &e), -1);
    assert_non_null(strstr(e.msg, "bad vec name ''"));
    assert_int_equal(tg_add_vec(g, "v", vals, 1, 2, &e), 0);
    assert_int_equal(tg_add_vec(g, "v", vals, 1, 3, &e), -1);
    assert_non_null(strstr(e.msg, "mem:3: duplicate vec 'v' (first declared at line 2)"));
    assert_int_equal(g->nvecs, 1);
    int64_t two[] = {5, 6};
    assert_int_equal(tg_add_vec(g, "w", two, 2, 0, &e), 1);
    int32_t all[] = {0, 1, 2}, one[] = {2};
    assert_int_equal(tg_add_group(g, "g", all, 3, 0, &e), 0);
    assert_int_equal(tg_add_group(g, "s", one, 1, 0, &e), 1);
    int64_t args[] = {0, 4, 1, 1, TG_M2N_PER_RECV};
    tg_task_spec t = {.id = 1, .rank = 0, .stream = "m", .op = TG_OP_M2N, .args = args,
                      .line = 9};
    args[4] = 2;
    assert_int_equal(tg_add_task(g, &t, &e), -1);
    assert_non_null(strstr(e.msg, "mem:9: task 1: m2n per=2 must be 0 (recv) or 1 (send)"));
    args[4] = TG_M2N_PER_RECV, args[3] = 5;
    assert_int_equal(tg_add_task(g, &t, &e), -1);
    assert_non_null(strstr(e.msg, "mem:9: task 1: m2n counts= vector index 5 names no vector"));
    args[3] = 1, args[2] = 9;
    assert_int_equal(tg_add_task(g, &t, &e), -1);
    assert_non_null(strstr(e.msg, "mem:9: task 1: m2n from= group index 9 names no group"));
    args[2] = TG_ARG_REQUIRED;
    assert_int_equal(tg_add_task(g, &t, &e), -1);
    assert_non_null(strstr(e.msg, "names no group"));
    args[2] = 1, args[3] = 0; /* v has 1 value, 2 receivers */
    assert_int_equal(tg_add_task(g, &t, &e), -1);
    assert_non_null(strstr(e.msg, "counts=v has 1 value, expected 2"));
    args[3] = 1;
    assert_int_equal(tg_add_task(g, &t, &e), 0);
    assert_int_equal(g->ntasks, 1);
    /* a graph without the other pieces fails finalize; the vector lookup still works */
    assert_int_equal(tg_find_vec(g, "w"), 1);
    tg_graph_free(g);
}

/* ---- the share rule ------------------------------------------------------------------ */

static void test_share(void **state)
{
    (void)state;
    /* 7 units over 3 bins, rotation 1: 2 each, the 1 left over goes to bin (1 + 0) % 3 */
    assert_int_equal(tg_m2n_share(7, 3, 0, 1), 2);
    assert_int_equal(tg_m2n_share(7, 3, 1, 1), 3);
    assert_int_equal(tg_m2n_share(7, 3, 2, 1), 2);
    /* 8 over 3, rotation 2: the 2 left over go to bins 2 and 0 */
    assert_int_equal(tg_m2n_share(8, 3, 0, 2), 3);
    assert_int_equal(tg_m2n_share(8, 3, 1, 2), 2);
    assert_int_equal(tg_m2n_share(8, 3, 2, 2), 3);
    /* a rotation beyond n wraps */
    assert_int_equal(tg_m2n_share(7, 3, 1, 4), 3);
    assert_int_equal(tg_m2n_share(0, 5, 3, 2), 0);
    assert_int_equal(tg_m2n_share(5, 1, 0, 9), 5);
    /* the units of each count sum to the count, and differ by at most one */
    for (int64_t count = 0; count < 40; count++)
        for (uint32_t n = 1; n <= 9; n++)
            for (uint32_t rot = 0; rot < 2 * n; rot++) {
                int64_t sum = 0, lo = INT64_MAX, hi = 0;
                for (uint32_t bin = 0; bin < n; bin++) {
                    int64_t u = tg_m2n_share(count, n, bin, rot);
                    sum += u;
                    if (u < lo) lo = u;
                    if (u > hi) hi = u;
                }
                if (sum != count || hi - lo > 1)
                    fail_msg("count %lld over %u rot %u: sum %lld, spread %lld", (long long)count,
                             (unsigned)n, (unsigned)rot, (long long)sum, (long long)(hi - lo));
            }
    /* no overflow at the top of the range */
    assert_int_equal(tg_m2n_share(INT64_MAX, 2, 0, 0), INT64_MAX / 2 + 1);
    assert_int_equal(tg_m2n_share(INT64_MAX, 2, 1, 0), INT64_MAX / 2);
}

/* ---- sides and expansion ------------------------------------------------------------- */

static void test_sides(void **state)
{
    (void)state;
    tg_graph *g = parse_ok("tg 1\ngroup g ranks=0,2,3,5,8\ngroup f ranks=3,8\nvec v counts=1,2,3\n"
                           "task 0 rank=2 stream=m op=m2n group=g bytes=1 from=f counts=v "
                           "per=recv\n"
                           "task 1 rank=0 stream=m op=m2n group=g bytes=1 from=f counts=v "
                           "per=recv\n"
                           "task 2 rank=3 stream=m op=m2n group=g bytes=1 from=f counts=v "
                           "per=recv\n"
                           "task 3 rank=5 stream=m op=m2n group=g bytes=1 from=f counts=v "
                           "per=recv\n"
                           "task 4 rank=8 stream=m op=m2n group=g bytes=1 from=f counts=v "
                           "per=recv\n");
    int32_t src[5], dst[5];
    uint32_t ns = 0, nd = 0;
    const int64_t *c = NULL;
    int per = -1;
    tg_m2n_sides(g, 3, src, &ns, dst, &nd, &c, &per);
    assert_int_equal(ns, 2);
    assert_int_equal(nd, 3);
    assert_int_equal(src[0], 3);
    assert_int_equal(src[1], 8);
    assert_int_equal(dst[0], 0);
    assert_int_equal(dst[1], 2);
    assert_int_equal(dst[2], 5);
    assert_int_equal(c[2], 3);
    assert_int_equal(per, TG_M2N_PER_RECV);
    assert_true(tg_has_m2n(g));
    ms_err e = {{0}};
    tg_graph *x = tg_expand_m2n(g, &e);
    if (!x) fail_msg("%s", e.msg);
    /* rank 8 is sender 1: to receiver j it sends share(c[j], 2, 1, j) units */
    uint32_t t = tg_find_task(x, 4);
    assert_int_equal(x->xfer_off[t + 1] - x->xfer_off[t], 3);
    int64_t want[] = {0, 1, 1}; /* c = 1,2,3: 1 -> bin 0; 2 -> 1 each; 3 rot 2 -> 2,1 */
    for (uint32_t k = 0; k < 3; k++) {
        uint32_t xi = x->xfer_off[t] + k;
        assert_int_equal(x->xfer_peer[xi], dst[k]);
        assert_int_equal(x->xfer_send[xi], 1);
        assert_int_equal(x->xfer_bytes[xi], want[k]);
    }
    tg_graph_free(x);
    tg_graph_free(g);
}

/* Every transfer of every expanded piece against tg_m2n_share and the sides of the
 * original piece; everything else copied. */
static void check_expansion(const tg_graph *g, const tg_graph *x)
{
    assert_true(x->finalized);
    assert_false(tg_has_m2n(x));
    assert_int_equal(x->ntasks, g->ntasks);
    assert_int_equal(x->ngroups, g->ngroups);
    assert_int_equal(x->nvecs, g->nvecs);
    assert_int_equal(x->nranks, g->nranks);
    uint32_t nm2n = 0;
    for (uint32_t ci = 0; ci < g->ncoll; ci++)
        nm2n += g->op[g->coll_task[g->coll_off[ci]]] == TG_OP_M2N;
    assert_int_equal(x->ncoll, g->ncoll - nm2n);
    int32_t *src = malloc((size_t)g->nranks * sizeof *src);
    int32_t *dst = malloc((size_t)g->nranks * sizeof *dst);
    for (uint32_t t = 0; t < g->ntasks; t++) {
        assert_int_equal(x->id[t], g->id[t]);
        assert_int_equal(x->rank[t], g->rank[t]);
        assert_string_equal(x->str + x->stream_name[x->stream[t]],
                            g->str + g->stream_name[g->stream[t]]);
        assert_int_equal(x->line[t], g->line[t]);
        assert_int_equal(x->dep_off[t + 1] - x->dep_off[t], g->dep_off[t + 1] - g->dep_off[t]);
        for (uint32_t i = 0; i < g->dep_off[t + 1] - g->dep_off[t]; i++)
            assert_int_equal(x->id[x->dep[x->dep_off[t] + i]], g->id[g->dep[g->dep_off[t] + i]]);
        if (g->label[t] == TG_NONE) assert_int_equal(x->label[t], TG_NONE);
        else assert_string_equal(x->str + x->label[t], g->str + g->label[t]);
        if (g->op[t] != TG_OP_M2N) {
            assert_int_equal(x->op[t], g->op[t]);
            assert_int_equal(x->arg_off[t + 1] - x->arg_off[t], g->arg_off[t + 1] - g->arg_off[t]);
            assert_memory_equal(tg_task_args(x, t), tg_task_args(g, t),
                                (g->arg_off[t + 1] - g->arg_off[t]) * sizeof *g->arg);
            assert_int_equal(x->xfer_off[t + 1] - x->xfer_off[t],
                             g->xfer_off[t + 1] - g->xfer_off[t]);
            continue;
        }
        assert_int_equal(x->op[t], TG_OP_XCHG);
        uint32_t ns, nd;
        const int64_t *c;
        int per;
        tg_m2n_sides(g, t, src, &ns, dst, &nd, &c, &per);
        int64_t unit = tg_task_args(g, t)[1];
        uint32_t me = UINT32_MAX;
        int sender = 0;
        for (uint32_t i = 0; i < ns; i++)
            if (src[i] == g->rank[t]) me = i, sender = 1;
        for (uint32_t j = 0; j < nd; j++)
            if (dst[j] == g->rank[t]) me = j;
        assert_true(me != UINT32_MAX);
        uint32_t nx = x->xfer_off[t + 1] - x->xfer_off[t];
        assert_int_equal(nx, sender ? nd : ns);
        for (uint32_t k = 0; k < nx; k++) {
            uint32_t xi = x->xfer_off[t] + k, i = sender ? me : k, j = sender ? k : me;
            int64_t units = per == TG_M2N_PER_RECV ? tg_m2n_share(c[j], ns, i, j)
                                                   : tg_m2n_share(c[i], nd, j, i);
            assert_int_equal(x->xfer_send[xi], sender);
            assert_int_equal(x->xfer_peer[xi], sender ? dst[j] : src[i]);
            assert_int_equal(x->xfer_bytes[xi], units * unit);
            /* the matching transfer moves the same bytes between the same pair */
            uint32_t m = x->xfer_match[xi], tm = x->xfer_task[m];
            assert_int_equal(x->rank[tm], x->xfer_peer[xi]);
            assert_int_equal(x->xfer_peer[m], x->rank[t]);
            assert_int_equal(x->xfer_bytes[m], x->xfer_bytes[xi]);
        }
    }
    free(src), free(dst);
}

static void test_expand(void **state)
{
    (void)state;
    tg_graph *g = parse_ok(canon);
    assert_true(tg_has_m2n(g));
    ms_err e = {{0}};
    tg_graph *x = tg_expand_m2n(g, &e);
    if (!x) fail_msg("tg_expand_m2n: %s", e.msg);
    check_expansion(g, x);
    /* by hand. per=recv, cr = 7,0,5 over senders 0,1: receiver 2 gets 4 from rank 0 and 3
     * from rank 1 (rotation 0), receiver 3 nothing, receiver 4 (rotation 2 % 2 = 0) 3 and 2.
     * per=send, cs = 4,9 over receivers 2,3,4: rank 0 sends 2,1,1, rank 1 sends 3,3,3. */
    char *out = write_str(x);
    const char *want =
        HDR "task 100 rank=0 stream=compute op=gemm m=8 n=8 k=8\n"
            "task 0 rank=0 stream=a2e op=xchg send=2:64,3:0,4:48 after=100 label=disp\n"
            "task 1 rank=1 stream=a2e op=xchg send=2:48,3:0,4:32\n"
            "task 2 rank=2 stream=a2e op=xchg recv=0:64,1:48\n"
            "task 3 rank=3 stream=a2e op=xchg recv=0:0,1:0\n"
            "task 4 rank=4 stream=a2e op=xchg recv=0:48,1:32 label=\"d 4\"\n"
            "task 5 rank=0 stream=a2e op=xchg send=2:32,3:16,4:16\n"
            "task 6 rank=1 stream=a2e op=xchg send=2:48,3:48,4:48\n"
            "task 7 rank=2 stream=a2e op=xchg recv=0:32,1:48\n"
            "task 8 rank=3 stream=a2e op=xchg recv=0:16,1:48\n"
            "task 9 rank=4 stream=a2e op=xchg recv=0:16,1:48\n"
            "task 10 rank=2 stream=x op=xchg send=3:5\n"
            "task 11 rank=3 stream=x op=xchg recv=2:5\n"
            "task 12 rank=0 stream=c op=allreduce group=s bytes=64\n"
            "task 13 rank=1 stream=c op=allreduce group=s bytes=64\n";
    assert_string_equal(out, want);
    /* the expanded graph round-trips too */
    tg_graph *x2 = parse_ok(out);
    if (tg_graph_diff(x, x2, &e)) fail_msg("%s", e.msg);
    assert_string_equal(x->source_name, "g.tg");
    free(out);
    tg_graph_free(x2);
    tg_graph_free(x);
    tg_graph_free(g);
}

/* A bigger mix: two groups with interleaved instances on shared ranks, uneven counts,
 * unsorted ids, pieces posted out of rank order. */
static void test_expand_larger(void **state)
{
    (void)state;
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    n += (size_t)snprintf(text + n, cap - n, "tg 1\ngroup all ranks=");
    for (int r = 0; r < 12; r++) n += (size_t)snprintf(text + n, cap - n, "%s%d", r ? "," : "", r);
    n += (size_t)snprintf(text + n, cap - n,
                          "\ngroup att ranks=0,3,6,9\ngroup odd ranks=1,3,5,7\n"
                          "group sub ranks=1,2,3,4,5,6,7\n"
                          "vec recv8 counts=13,0,1,29,4,17,5,8\n"
                          "vec send4 counts=100,3,0,77\n"
                          "vec sub3 counts=10,11,12\n");
    int64_t id = 1000;
    for (int round = 0; round < 3; round++)
        for (int r = 11; r >= 0; r--) {
            /* instance on `all`, alternating per, then one on `sub` for its members */
            const char *per = round % 2 ? "send" : "recv", *cnt = round % 2 ? "send4" : "recv8";
            n += (size_t)snprintf(text + n, cap - n,
                                  "task %lld rank=%d stream=ep op=m2n group=all bytes=%d "
                                  "from=att counts=%s per=%s\n",
                                  (long long)id--, r, 3 + round, cnt, per);
            if (r >= 1 && r <= 7)
                n += (size_t)snprintf(text + n, cap - n,
                                      "task %lld rank=%d stream=ep op=m2n group=sub bytes=5 "
                                      "from=odd counts=sub3 per=recv\n",
                                      (long long)id--, r);
        }
    tg_graph *g = parse_ok(text);
    ms_err e = {{0}};
    tg_graph *x = tg_expand_m2n(g, &e);
    if (!x) fail_msg("tg_expand_m2n: %s", e.msg);
    check_expansion(g, x);
    /* total bytes of each instance = sum(counts) * bytes */
    int64_t sent = 0;
    for (uint32_t i = 0; i < x->nxfers; i++)
        if (x->xfer_send[i]) sent += x->xfer_bytes[i];
    int64_t all_recv = 13 + 0 + 1 + 29 + 4 + 17 + 5 + 8, all_send = 100 + 3 + 0 + 77;
    assert_int_equal(sent, all_recv * 3 + all_send * 4 + all_recv * 5 + 3 * (10 + 11 + 12) * 5);
    assert_int_equal(x->nxfers, 3 * (2 * 4 * 8 + 2 * 4 * 3));
    free(text);
    tg_graph_free(x);
    tg_graph_free(g);
}

static void test_expand_edges(void **state)
{
    (void)state;
    ms_err e = {{0}};
    assert_null(tg_expand_m2n(NULL, &e));
    assert_non_null(strstr(e.msg, "no graph"));
    assert_false(tg_has_m2n(NULL));
    /* not finalized */
    tg_graph *g = tg_graph_create("mem");
    assert_null(tg_expand_m2n(g, &e));
    assert_non_null(strstr(e.msg, "not finalized"));
    tg_graph_free(g);
    /* no m2n: the same graph back */
    g = parse_ok("tg 1\ngroup p ranks=0,1\n"
                 "task 0 rank=0 stream=c op=allgather group=p bytes=4\n"
                 "task 1 rank=1 stream=c op=allgather group=p bytes=4\n");
    assert_false(tg_has_m2n(g));
    tg_graph *x = tg_expand_m2n(g, &e);
    if (!x) fail_msg("%s", e.msg);
    if (tg_graph_diff(g, x, &e)) fail_msg("%s", e.msg);
    tg_graph_free(x), tg_graph_free(g);
    /* empty graph */
    g = parse_ok("tg 1\n");
    x = tg_expand_m2n(g, &e);
    assert_non_null(x);
    assert_int_equal(x->ntasks, 0);
    tg_graph_free(x), tg_graph_free(g);
    /* units x bytes overflowing int64 */
    g = parse_ok("tg 1\ngroup g ranks=0,1\ngroup s ranks=0\nvec v counts=4\n"
                 "task 0 rank=0 stream=m op=m2n group=g bytes=4611686018427387904 from=s counts=v "
                 "per=recv\n"
                 "task 1 rank=1 stream=m op=m2n group=g bytes=4611686018427387904 from=s counts=v "
                 "per=recv\n");
    assert_null(tg_expand_m2n(g, &e));
    assert_non_null(strstr(e.msg, "g.tg:5: task 0: m2n transfer of 4 units x"));
    assert_non_null(strstr(e.msg, "overflows int64"));
    tg_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_canonical),
        cmocka_unit_test(test_roundtrip_normalizes),
        cmocka_unit_test(test_diff_vectors),
        cmocka_unit_test(test_err_inputs),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_sides),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_larger),
        cmocka_unit_test(test_expand_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

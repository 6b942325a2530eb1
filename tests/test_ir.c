/* Tests for ir/: the .tg reader and writer (round trips, canonical form, exact delays,
 * quoted labels), every syntax and validation error (each naming file, line and task),
 * the finalized accessors (successors, streams, transfer pairs, collective instances),
 * building graphs in memory, and replay of fuzzer-found inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/tg.h"

#define SRC MS_SOURCE_DIR
#define DATA_DIR SRC "/tests/data/ir/"
#define FUZZ_DIR SRC "/tests/data/fuzz/tg/"

/* ---- helpers ------------------------------------------------------------------------- */

#include "tests/tg_helpers.h"

/* write(parse(text)) == expect, and writing the reparse gives the same bytes and graph. */
static void expect_canonical(const char *text, const char *expect)
{
    tg_graph *g = parse_ok(text);
    char *out = write_str(g);
    assert_string_equal(out, expect);
    tg_graph *g2 = parse_ok(out);
    char *out2 = write_str(g2);
    assert_string_equal(out2, out);
    ms_err e = {{0}};
    if (tg_graph_diff(g, g2, &e)) fail_msg("graphs differ after round trip: %s", e.msg);
    free(out), free(out2);
    tg_graph_free(g), tg_graph_free(g2);
}

/* Index of task `id`, failing when absent. */
static uint32_t T(const tg_graph *g, int64_t id)
{
    uint32_t t = tg_find_task(g, id);
    if (t == TG_NONE) fail_msg("task %lld not found", (long long)id);
    return t;
}

static const char *EXAMPLE = "tg 1\n"
                             "group g0 ranks=0,1,2,3\n"
                             "task 0 rank=0 stream=compute op=gemm m=4096 n=1536 k=5120 "
                             "label=L0.mb0.shared\n"
                             "task 1 rank=0 stream=a2e op=xchg send=4:1048576,5:1048576 after=0 "
                             "label=L0.mb0.a2e.c0\n"
                             "task 2 rank=4 stream=a2e op=xchg recv=0:1048576 label=L0.mb0.a2e.c0\n"
                             "task 3 rank=5 stream=a2e op=xchg recv=0:1048576\n"
                             "task 4 rank=0 stream=coll op=allreduce group=g0 bytes=67108864\n"
                             "task 5 rank=1 stream=coll op=allreduce group=g0 bytes=67108864\n"
                             "task 6 rank=2 stream=coll op=allreduce group=g0 bytes=67108864\n"
                             "task 7 rank=3 stream=coll op=allreduce group=g0 bytes=67108864\n"
                             "task 8 rank=0 stream=compute op=delay us=12.5 after=1,4\n";

/* ---- round trips --------------------------------------------------------------------- */

static void test_roundtrip_canonical(void **state)
{
    (void)state;
    expect_canonical(EXAMPLE, EXAMPLE);
}

static void test_roundtrip_file(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_parse_file(DATA_DIR "example.tg", &e);
    if (!g) fail_msg("%s", e.msg);
    char *out = write_str(g);
    FILE *f = fopen(DATA_DIR "example.tg", "r");
    assert_non_null(f);
    char buf[1 << 14];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_string_equal(out, buf); /* the data file is canonical: byte for byte */
    free(out);
    tg_graph_free(g);
    assert_null(tg_parse_file(DATA_DIR "no-such-file.tg", &e));
    assert_non_null(strstr(e.msg, "no-such-file.tg"));
}

static void test_roundtrip_normalizes(void **state)
{
    (void)state;
    /* any field order, extra blanks, tabs, comments, CRLF, explicit defaults, recv before
     * send, forward dependencies */
    const char *in = "# a comment before the header\n"
                     "\n"
                     "   tg 1   # trailing comment\r\n"
                     "group\tg0   ranks=3,1,0,2\n"
                     "task 10 op=gemm k=3 m=1 n=2 count=1 stream=s rank=0 label=x after=11\n"
                     "task 11\trank=0 stream=t op=gemm m=1 n=1 k=1 count=4\n"
                     "task 12 rank=0 stream=x op=xchg recv=1:5,0:0 send=1:7,0:0 label=\"y\"\n"
                     "task 13 rank=1 stream=x op=xchg recv=0:7 send=0:5\n"
                     "task 15 rank=0 stream=s op=delay us=0012.50\n";
    const char *out = "tg 1\n"
                      "group g0 ranks=0,1,2,3\n"
                      "task 10 rank=0 stream=s op=gemm m=1 n=2 k=3 after=11 label=x\n"
                      "task 11 rank=0 stream=t op=gemm m=1 n=1 k=1 count=4\n"
                      "task 12 rank=0 stream=x op=xchg send=1:7,0:0 recv=1:5,0:0 label=y\n"
                      "task 13 rank=1 stream=x op=xchg send=0:5 recv=0:7\n"
                      "task 15 rank=0 stream=s op=delay us=12.5\n";
    expect_canonical(in, out);
}

static void test_roundtrip_labels(void **state)
{
    (void)state;
    const char *in = "tg 1\n"
                     "task 0 rank=0 stream=s op=delay us=1 label=\"two words\"\n"
                     "task 1 rank=0 stream=s op=delay us=1 label=\"say \\\"hi\\\"\"\n"
                     "task 2 rank=0 stream=s op=delay us=1 "
                     "label=\"back\\\\slash # not a comment\"\n"
                     "task 3 rank=0 stream=s op=delay us=1 label=\"\"\n"
                     "task 4 rank=0 stream=s op=delay us=1 label=\"tab\there\" # comment\n"
                     "task 5 rank=0 stream=s op=delay us=1 label=\"plain\"\n"
                     "task 6 rank=0 stream=s op=delay us=1 label=a\\b=c,d:e\n";
    tg_graph *g = parse_ok(in);
    assert_string_equal(tg_str(g, g->label[0]), "two words");
    assert_string_equal(tg_str(g, g->label[1]), "say \"hi\"");
    assert_string_equal(tg_str(g, g->label[2]), "back\\slash # not a comment");
    assert_string_equal(tg_str(g, g->label[3]), "");
    assert_string_equal(tg_str(g, g->label[4]), "tab\there");
    assert_string_equal(tg_str(g, g->label[5]), "plain");
    assert_string_equal(tg_str(g, g->label[6]), "a\\b=c,d:e");
    tg_graph_free(g);
    const char *out = "tg 1\n"
                      "task 0 rank=0 stream=s op=delay us=1 label=\"two words\"\n"
                      "task 1 rank=0 stream=s op=delay us=1 label=\"say \\\"hi\\\"\"\n"
                      "task 2 rank=0 stream=s op=delay us=1 "
                     "label=\"back\\\\slash # not a comment\"\n"
                      "task 3 rank=0 stream=s op=delay us=1 label=\"\"\n"
                      "task 4 rank=0 stream=s op=delay us=1 label=\"tab\there\"\n"
                      "task 5 rank=0 stream=s op=delay us=1 label=plain\n"
                      "task 6 rank=0 stream=s op=delay us=1 label=a\\b=c,d:e\n";
    expect_canonical(in, out);
    /* no label at all is not the same as an empty one */
    g = parse_ok("tg 1\ntask 0 rank=0 stream=s op=delay us=1\n");
    assert_int_equal(g->label[0], TG_NONE);
    assert_null(tg_str(g, g->label[0]));
    tg_graph_free(g);
}

static void test_delay_exact(void **state)
{
    (void)state;
    const char *vals[] = {"0.1", "12.5", "1e-3", "0", "0.30000000000000004", "1e300",
                          "5e-324", "123456789.123456789", "2.5e-7", "-0"};
    const char *canon[] = {"0.1", "12.5", "0.001", "0", "0.30000000000000004", "1e+300",
                           "4.94065645841247e-324", "123456789.12345679", "2.5e-07", "0"};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        char in[256], out[256];
        snprintf(in, sizeof in, "tg 1\ntask 0 rank=0 stream=s op=delay us=%s\n", vals[i]);
        snprintf(out, sizeof out, "tg 1\ntask 0 rank=0 stream=s op=delay us=%s\n", canon[i]);
        tg_graph *g = parse_ok(in);
        double want = strtod(vals[i], NULL) + 0.0; /* -0 is stored as +0 */
        double got = tg_task_delay_us(g, 0);
        if (memcmp(&got, &want, sizeof got) != 0)
            fail_msg("us=%s: got %.17g, want %.17g (bits differ)", vals[i], got, want);
        assert_true(tg_task_args(g, 0)[0] == tg_delay_arg(want));
        tg_graph_free(g);
        expect_canonical(in, out);
    }
}

static void test_empty_graph(void **state)
{
    (void)state;
    expect_canonical("tg 1\n", "tg 1\n");
    expect_canonical("# only a header\ntg 1 # v1\n\n", "tg 1\n");
    tg_graph *g = parse_ok("tg 1\n");
    assert_int_equal(g->ntasks, 0);
    assert_int_equal(g->nranks, 0);
    assert_int_equal(g->nstreams, 0);
    assert_int_equal(g->ncoll, 0);
    assert_int_equal(tg_find_task(g, 0), TG_NONE);
    tg_graph_free(g);
}

static void test_defaults_omitted(void **state)
{
    (void)state;
    tg_graph *g = parse_ok("tg 1\ntask 0 rank=0 stream=s op=gemm m=1 n=2 k=3\n");
    const int64_t *a = tg_task_args(g, 0);
    assert_int_equal(g->arg_off[1] - g->arg_off[0], tg_op_get(TG_OP_GEMM)->nargs);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], 2);
    assert_int_equal(a[2], 3);
    assert_int_equal(a[3], 1); /* count defaults to 1 */
    tg_graph_free(g);
}

static void test_op_table(void **state)
{
    (void)state;
    for (int op = 0; op < TG_OP__COUNT; op++) {
        const tg_op_info *info = tg_op_get((tg_op)op);
        assert_non_null(info);
        assert_int_equal(tg_op_find(info->name), op);
        assert_true(info->nargs <= TG_MAX_ARGS);
    }
    assert_int_equal(tg_op_find("gemmm"), -1);
    assert_null(tg_op_get(TG_OP__COUNT));
    assert_string_equal(tg_op_get(TG_OP_GEMM)->arg[3], "count");
    assert_int_equal(tg_op_get(TG_OP_GEMM)->dflt[0], TG_ARG_REQUIRED);
}

/* ---- syntax errors ------------------------------------------------------------------- */

static void test_err_version(void **state)
{
    (void)state;
    expect_error("tg 2\n", "g.tg:1:", "unsupported tg version 2, this moesched reads 1", NULL);
    expect_error("# c\n\ntg 99\n", "g.tg:3:", "unsupported tg version 99", NULL);
    expect_error("tg x\n", "g.tg:1:", "bad tg version 'x'", NULL);
    expect_error("tg 1\ntg 1\n", "g.tg:2:", "duplicate 'tg' header (the first is at line 1)",
                 NULL);
    expect_error("task 0 rank=0 stream=s op=delay us=1\n", "g.tg:1:", "expected 'tg 1'", NULL);
    expect_error("", "g.tg", "missing 'tg 1' header", NULL);
    expect_error("tg 1 extra\n", "g.tg:1:", "unexpected 'extra'", NULL);
}

static void test_err_unknown_record(void **state)
{
    (void)state;
    expect_error("tg 1\nnode 0\n", "g.tg:2:", "unknown record 'node'", NULL);
    expect_error("tg 1\nrank=1\n", "g.tg:2:", "expected a record", NULL);
}

static void test_err_unknown_op(void **state)
{
    (void)state;
    expect_error("tg 1\n\ntask 3 rank=0 stream=s op=gemmm m=1 n=1 k=1\n", "g.tg:3:", "task 3",
                 "unknown op 'gemmm'", NULL);
    expect_error("tg 1\ntask 3 rank=0 stream=s\n", "g.tg:2:", "task 3", "missing field 'op'",
                 NULL);
}

static void test_err_unknown_field(void **state)
{
    (void)state;
    expect_error("tg 1\n#\n#\n#\n#\n#\ntask 12 rank=0 stream=s op=gemm m=1 n=1 k=1 foo=3\n",
                 "g.tg:7: task 12: unknown field 'foo' for op gemm", NULL);
    /* a field of another op is unknown too */
    expect_error("tg 1\ntask 4 rank=0 stream=s op=delay us=1 m=3\n", "g.tg:2:", "task 4",
                 "unknown field 'm' for op delay", NULL);
    expect_error("tg 1\ntask 4 rank=0 stream=s op=gemm m=1 n=1 k=1 send=1:1\n", "g.tg:2:",
                 "task 4", "unknown field 'send' for op gemm", NULL);
    expect_error("tg 1\ntask 4 rank=0 stream=s op=gemm m=1 n=1 k=1 bare\n", "g.tg:2:", "task 4",
                 "expected key=value, got 'bare'", NULL);
    expect_error("tg 1\ngroup g ranks=0 size=1\n", "g.tg:2:", "unknown field 'size'", NULL);
}

static void test_err_duplicate_field(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 5 rank=0 stream=s op=gemm m=1 n=1 k=1 m=2\n", "g.tg:2:", "task 5",
                 "duplicate field 'm'", NULL);
    expect_error("tg 1\ntask 5 rank=0 rank=0 stream=s op=delay us=1\n", "g.tg:2:", "task 5",
                 "duplicate field 'rank'", NULL);
    expect_error("tg 1\ntask 5 rank=0 stream=s op=delay op=delay us=1\n", "task 5",
                 "duplicate field 'op'", NULL);
    expect_error("tg 1\ntask 5 rank=0 stream=s op=xchg send=1:1 send=2:2\n", "g.tg:2:", "task 5",
                 "duplicate field 'send'", NULL);
    expect_error("tg 1\ntask 5 rank=0 stream=s op=delay us=1 label=a label=b\n", "task 5",
                 "duplicate field 'label'", NULL);
    expect_error("tg 1\ntask 5 rank=0 stream=s op=delay us=1 after=1 after=2\n", "task 5",
                 "duplicate field 'after'", NULL);
    expect_error("tg 1\ngroup g ranks=0 ranks=1\n", "g.tg:2:", "duplicate field 'ranks'", NULL);
}

static void test_err_missing_field(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 6 rank=0 stream=s op=gemm m=1 n=1\n", "g.tg:2:", "task 6",
                 "missing field 'k' for op gemm", NULL);
    expect_error("tg 1\ntask 6 rank=0 stream=s op=delay\n", "g.tg:2:", "task 6",
                 "missing field 'us' for op delay", NULL);
    expect_error("tg 1\ngroup g ranks=0\ntask 6 rank=0 stream=s op=allreduce group=g\n",
                 "g.tg:3:", "task 6", "missing field 'bytes' for op allreduce", NULL);
    expect_error("tg 1\ngroup g ranks=0\ntask 6 rank=0 stream=s op=allgather bytes=4\n",
                 "g.tg:3:", "task 6", "missing field 'group' for op allgather", NULL);
    expect_error("tg 1\ntask 6 stream=s op=delay us=1\n", "g.tg:2:", "task 6",
                 "missing field 'rank'", NULL);
    expect_error("tg 1\ntask 6 rank=0 op=delay us=1\n", "g.tg:2:", "task 6",
                 "missing field 'stream'", NULL);
    expect_error("tg 1\ntask 6 rank=0 stream=s op=xchg\n", "g.tg:2:", "task 6",
                 "at least one send= or recv=", NULL);
    expect_error("tg 1\ngroup g\n", "g.tg:2:", "missing field 'ranks'", NULL);
    expect_error("tg 1\ntask\n", "g.tg:2:", "expected 'task ID", NULL);
}

static void test_err_bad_number(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m=12x n=1 k=1\n", "g.tg:2:", "task 7",
                 "bad value '12x' for field 'm'", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m=99999999999999999999 n=1 k=1\n",
                 "g.tg:2:", "task 7", "out of range", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m=9223372036854775807 n=1 k=1 "
                 "count=9223372036854775808\n",
                 "g.tg:2:", "task 7", "'9223372036854775808' for field 'count' is out of range",
                 NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m=0 n=1 k=1\n", "g.tg:2:", "task 7",
                 "m=0 must be >= 1", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m= n=1 k=1\n", "task 7",
                 "empty value for field 'm'", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=gemm m=+1 n=1 k=1\n", "task 7",
                 "bad value '+1'", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=1.5ms\n", "g.tg:2:", "task 7",
                 "bad value '1.5ms' for field 'us'", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=-1\n", "task 7", "must be a finite",
                 NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=nan\n", "task 7", "bad value 'nan'",
                 NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=inf\n", "task 7", "must be a finite",
                 NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=1e999\n", "task 7", "must be a finite",
                 NULL);
    expect_error("tg 1\ntask 12x rank=0 stream=s op=delay us=1\n", "g.tg:2:",
                 "bad task id '12x'", NULL);
    expect_error("tg 1\ntask 99999999999999999999 rank=0 stream=s op=delay us=1\n", "g.tg:2:",
                 "task id '99999999999999999999' is out of range", NULL);
    expect_error("tg 1\ntask -1 rank=0 stream=s op=delay us=1\n", "g.tg:2:", "bad task id -1",
                 NULL);
    expect_error("tg 1\ntask 7 rank=x stream=s op=delay us=1\n", "task 7",
                 "bad value 'x' for field 'rank'", NULL);
    expect_error("tg 1\ntask 7 rank=-1 stream=s op=delay us=1\n", "task 7", "rank -1 out of range",
                 NULL);
    expect_error("tg 1\ntask 7 rank=1048576 stream=s op=delay us=1\n", "task 7",
                 "rank 1048576 out of range", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=delay us=1 after=1,,2\n", "task 7",
                 "bad task id '' in after=", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=xchg send=1\n", "task 7",
                 "bad transfer '1' in send=", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=xchg send=1:2:3\n", "task 7",
                 "bad transfer '1:2:3'", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=xchg recv=1:-2\n", "task 7",
                 "byte count -2 in recv= must be >= 0", NULL);
    expect_error("tg 1\ntask 7 rank=0 stream=s op=xchg recv=-1:2\n", "task 7",
                 "peer rank '-1' in recv= out of range", NULL);
    expect_error("tg 1\ngroup g ranks=0,x\n", "g.tg:2:", "bad rank 'x'", NULL);
    expect_error("tg 1\ngroup g ranks=0,2000000\n", "g.tg:2:", "rank 2000000 out of range", NULL);
    expect_error("tg 1\ngroup g ranks=0\ntask 7 rank=0 stream=s op=allreduce group=g bytes=0\n",
                 "g.tg:3:", "task 7", "bytes=0 must be >= 1", NULL);
}

static void test_err_names_and_quotes(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 8 rank=0 stream=a/b op=delay us=1\n", "g.tg:2:", "task 8",
                 "bad stream name 'a/b'", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=\"s\" op=delay us=1\n", "task 8",
                 "field 'stream' must not be quoted", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=a#b\n", "g.tg:2:", "task 8",
                 "quote it", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=a\"b\n", "task 8", "quote it",
                 NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=\"abc\n", "g.tg:2:",
                 "unterminated quoted value", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=\"a\\nb\"\n", "g.tg:2:",
                 "bad escape", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=\"a\"b\n", "g.tg:2:",
                 "after the closing quote", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=\n", "task 8", "empty label",
                 NULL);
    expect_error("tg 1\ngroup a/b ranks=0\n", "g.tg:2:", "bad group name 'a/b'", NULL);
    expect_error("tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=\"a\x01\"\n", "g.tg:2:",
                 "task 8", "control character", NULL);
    static const char nul[] = "tg 1\ntask 8 rank=0 stream=s op=delay us=1 label=a\0b\n";
    ms_err e = {{0}};
    assert_null(tg_parse_buffer(nul, sizeof nul - 1, "g.tg", &e));
    assert_non_null(strstr(e.msg, "g.tg:2: NUL byte"));
}

/* ---- validation errors --------------------------------------------------------------- */

static void test_err_duplicate_id(void **state)
{
    (void)state;
    expect_error("tg 1\n#\n#\ntask 3 rank=0 stream=s op=delay us=1\n#\n#\n#\n#\n"
                 "task 3 rank=1 stream=s op=delay us=1\n",
                 "g.tg:9: duplicate task id 3 (first defined at line 4)", NULL);
    /* also when ids are not increasing (hashed lookup) */
    expect_error("tg 1\ntask 9 rank=0 stream=s op=delay us=1\ntask 2 rank=0 stream=s op=delay "
                 "us=1\ntask 9 rank=0 stream=s op=delay us=1\n",
                 "g.tg:4: duplicate task id 9 (first defined at line 2)", NULL);
}

static void test_err_dep_unknown(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 1 rank=1 stream=s op=delay us=1\n#\n#\n#\n#\n#\n#\n#\n#\n"
                 "task 8 rank=1 stream=s op=delay us=1 after=1,99\n",
                 "g.tg:11: task 8: after=99 names no task", NULL);
    expect_error("tg 1\ntask 8 rank=1 stream=s op=delay us=1 after=-4\n", "g.tg:2:", "task 8",
                 "after=-4 names no task", NULL);
    expect_error("tg 1\ntask 1 rank=0 stream=s op=delay us=1\ntask 8 rank=0 stream=s op=delay "
                 "us=1 after=1,1\n",
                 "g.tg:3:", "task 8", "after= names task 1 twice", NULL);
}

static void test_err_dep_other_rank(void **state)
{
    (void)state;
    /* backward (found while reading) */
    expect_error("tg 1\n#\ntask 2 rank=0 stream=s op=delay us=1\n#\n#\n#\n#\n#\n#\n#\n"
                 "task 8 rank=1 stream=s op=delay us=1 after=2\n",
                 "g.tg:11: task 8 (rank 1): after=2 names task 2 of rank 0",
                 "dependencies must stay on one rank", NULL);
    /* forward (found by finalize) */
    expect_error("tg 1\ntask 8 rank=1 stream=s op=delay us=1 after=2\n"
                 "task 2 rank=0 stream=s op=delay us=1\n",
                 "g.tg:2: task 8 (rank 1): after=2 names task 2 of rank 0 at line 3",
                 "dependencies must stay on one rank", NULL);
}

static void test_forward_deps_ok(void **state)
{
    (void)state;
    tg_graph *g = parse_ok("tg 1\n"
                           "task 1 rank=0 stream=a op=delay us=1 after=3\n"
                           "task 2 rank=0 stream=b op=delay us=1\n"
                           "task 3 rank=0 stream=b op=delay us=1 after=2\n");
    assert_int_equal(g->dep_off[1] - g->dep_off[0], 1);
    assert_int_equal(g->dep[g->dep_off[0]], T(g, 3));
    tg_graph_free(g);
}

static void test_err_cycle_plain(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "task 1 rank=2 stream=a op=delay us=1 after=3\n"
                 "task 2 rank=2 stream=b op=delay us=1 after=1\n"
                 "task 3 rank=2 stream=c op=delay us=1 after=2\n",
                 "g.tg:2: cycle: task 1 (line 2) -> task 3 (line 4) -> task 2 (line 3) -> task 1 "
                 "(line 2)",
                 "rank 2", NULL);
    expect_error("tg 1\n#\ntask 5 rank=0 stream=a op=delay us=1 after=5\n",
                 "g.tg:3: cycle: task 5 (line 3) -> task 5 (line 3)", NULL);
}

static void test_err_cycle_stream(void **state)
{
    (void)state;
    /* task 1 waits for 3 (dep), 3 for 2 (dep), 2 for 1 (stream order on s1) */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=s1 op=delay us=1 after=3\n"
                 "task 2 rank=0 stream=s1 op=delay us=1\n"
                 "task 3 rank=0 stream=s2 op=delay us=1 after=2\n",
                 "g.tg:2: cycle: task 1 (line 2) -> task 3 (line 4) -> task 2 (line 3) -> task 1 "
                 "(line 2)",
                 NULL);
    /* the same tasks on one stream each are fine */
    tg_graph *g = parse_ok("tg 1\n"
                           "task 1 rank=0 stream=s1 op=delay us=1 after=3\n"
                           "task 2 rank=0 stream=s3 op=delay us=1\n"
                           "task 3 rank=0 stream=s2 op=delay us=1 after=2\n");
    tg_graph_free(g);
}

static void test_err_xchg_unmatched_send(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=a2e op=xchg send=1:100,2:100\n"
                 "task 2 rank=1 stream=a2e op=xchg recv=0:100\n",
                 "g.tg:2: task 1 (rank 0): unmatched send", "to rank 2 on stream a2e",
                 "rank 2 posts 0 receives", NULL);
    /* a receive on another stream name does not match */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=a2e op=xchg send=1:100\n"
                 "task 2 rank=1 stream=e2a op=xchg recv=0:100\n",
                 "g.tg:2: task 1 (rank 0): unmatched send", NULL);
    /* the second send finds no second receive; the last receive is named */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=x op=xchg send=1:100\n"
                 "task 2 rank=0 stream=x op=xchg send=1:100\n"
                 "task 3 rank=1 stream=x op=xchg recv=0:100\n",
                 "g.tg:3: task 2 (rank 0): unmatched send: send #2", "posts 1 receive ",
                 "task 3 (line 4)", NULL);
}

static void test_err_xchg_unmatched_recv(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=x op=delay us=1\n"
                 "task 7 rank=3 stream=x op=xchg recv=0:64\n",
                 "g.tg:3: task 7 (rank 3): unmatched receive", "from rank 0 on stream x",
                 "rank 0 posts 0 sends", NULL);
}

static void test_err_xchg_bytes(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=x op=xchg send=1:100\n"
                 "task 2 rank=1 stream=x op=xchg recv=0:64\n",
                 "g.tg:2: task 1: xchg byte counts differ", "task 1 (rank 0, line 2) sends 100",
                 "task 2 (rank 1, line 3) expects 64 bytes", NULL);
}

static void test_err_coll_missing_piece(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "group g ranks=0,1,2\n"
                 "task 1 rank=0 stream=c op=allreduce group=g bytes=8\n"
                 "task 2 rank=1 stream=c op=allreduce group=g bytes=8\n"
                 "task 3 rank=2 stream=c op=allreduce group=g bytes=8\n"
                 "task 4 rank=0 stream=c op=allreduce group=g bytes=8\n"
                 "task 5 rank=2 stream=c op=allreduce group=g bytes=8\n",
                 "g.tg:6: task 4 (rank 0): collective piece #2 on stream c, group g",
                 "no counterpart on rank 1", NULL);
    /* a member with no piece at all */
    expect_error("tg 1\n"
                 "group g ranks=0,1\n"
                 "task 1 rank=0 stream=c op=allgather group=g bytes=8\n",
                 "g.tg:3: task 1 (rank 0)", "no counterpart on rank 1", NULL);
}

static void test_err_coll_mismatch(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "group g ranks=0,1\n"
                 "task 1 rank=0 stream=c op=allreduce group=g bytes=8\n"
                 "task 2 rank=1 stream=c op=allgather group=g bytes=8\n",
                 "g.tg:4: task 2 (rank 1): allgather of 8 bytes does not match task 1 (rank 0, "
                 "line 3): allreduce of 8 bytes",
                 NULL);
    expect_error("tg 1\n"
                 "group g ranks=0,1\n"
                 "task 1 rank=0 stream=c op=reducescatter group=g bytes=8\n"
                 "task 2 rank=1 stream=c op=reducescatter group=g bytes=16\n",
                 "g.tg:4: task 2 (rank 1): reducescatter of 16 bytes does not match task 1",
                 NULL);
}

static void test_err_coll_not_member(void **state)
{
    (void)state;
    expect_error("tg 1\n"
                 "group g0 ranks=0,1,2,3\n"
                 "task 9 rank=5 stream=c op=allreduce group=g0 bytes=8\n",
                 "g.tg:3: task 9 (rank 5): rank 5 is not a member of group g0 (ranks 0,1,2,3)",
                 NULL);
}

static void test_err_unknown_group(void **state)
{
    (void)state;
    expect_error("tg 1\ntask 9 rank=0 stream=c op=allreduce group=g7 bytes=8\n", "g.tg:2:",
                 "task 9", "unknown group 'g7'", NULL);
    /* groups must be declared before their first use */
    expect_error("tg 1\ntask 9 rank=0 stream=c op=allreduce group=g bytes=8\ngroup g ranks=0\n",
                 "g.tg:2:", "task 9", "unknown group 'g'", NULL);
}

static void test_err_duplicate_group(void **state)
{
    (void)state;
    expect_error("tg 1\ngroup g0 ranks=0,1\n#\ngroup g0 ranks=2\n",
                 "g.tg:4: duplicate group 'g0' (first declared at line 2)", NULL);
    expect_error("tg 1\ngroup g0 ranks=0,1,0\n", "g.tg:2: group g0: rank 0 listed twice", NULL);
}

static void test_err_deadlock_xchg(void **state)
{
    (void)state;
    /* each rank receives before it sends */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=s op=xchg recv=1:8\n"
                 "task 2 rank=0 stream=s op=xchg send=1:8\n"
                 "task 3 rank=1 stream=s op=xchg recv=0:8\n"
                 "task 4 rank=1 stream=s op=xchg send=0:8\n",
                 "g.tg:2: deadlock: task 1 (rank 0, line 2) waits for task 4 (rank 1, line 5) to "
                 "start (xchg rendezvous), which waits for task 3 (rank 1, line 4) to finish "
                 "(earlier on its stream), which waits for task 2 (rank 0, line 3) to start (xchg "
                 "rendezvous), which waits for task 1 (rank 0, line 2) to finish",
                 NULL);
    /* the same through after= on different streams */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=a op=xchg recv=1:8\n"
                 "task 2 rank=0 stream=b op=xchg send=1:8 after=1\n"
                 "task 3 rank=1 stream=b op=xchg recv=0:8\n"
                 "task 4 rank=1 stream=a op=xchg send=0:8 after=3\n",
                 "g.tg:2: deadlock: task 1 (rank 0, line 2)", "task 4 (rank 1, line 5)",
                 "to finish (after=)", NULL);
}

static void test_err_deadlock_coll(void **state)
{
    (void)state;
    /* rank 0 and rank 1 enter the collectives of streams c1 and c2 in opposite orders */
    expect_error("tg 1\n"
                 "group g ranks=0,1\n"
                 "task 1 rank=0 stream=c1 op=allreduce group=g bytes=8\n"
                 "task 2 rank=0 stream=c2 op=allreduce group=g bytes=8 after=1\n"
                 "task 3 rank=1 stream=c2 op=allreduce group=g bytes=8\n"
                 "task 4 rank=1 stream=c1 op=allreduce group=g bytes=8 after=3\n",
                 "g.tg:3: deadlock: task 1 (rank 0, line 3)", "collective rendezvous",
                 "task 3 (rank 1, line 5)", NULL);
    /* sending to oneself is fine within one task, but a later task on the same stream
     * cannot receive it: the send's task waits for it to start */
    tg_graph *g = parse_ok("tg 1\n"
                           "task 1 rank=0 stream=s op=xchg send=0:8 recv=0:8\n");
    tg_graph_free(g);
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=s op=xchg send=0:8\n"
                 "task 2 rank=0 stream=s op=xchg recv=0:8\n",
                 "g.tg:2: deadlock: task 1 (rank 0, line 2) waits for task 2 (rank 0, line 3)",
                 NULL);
}

static void test_plain_cycle_reported_before_deadlock(void **state)
{
    (void)state;
    /* a single-rank cycle among comm tasks is reported as a cycle */
    expect_error("tg 1\n"
                 "task 1 rank=0 stream=s op=xchg send=1:8 after=2\n"
                 "task 2 rank=0 stream=t op=xchg recv=1:8 after=1\n"
                 "task 3 rank=1 stream=s op=xchg recv=0:8\n"
                 "task 4 rank=1 stream=t op=xchg send=0:8\n",
                 "g.tg:2: cycle: task 1 (line 2) -> task 2 (line 3) -> task 1", NULL);
}

/* ---- accessors ----------------------------------------------------------------------- */

static void test_accessors_streams_and_succ(void **state)
{
    (void)state;
    tg_graph *g = parse_ok(EXAMPLE);
    assert_int_equal(g->ntasks, 9);
    assert_int_equal(g->nranks, 6);
    assert_true(g->finalized);
    /* streams in order of first appearance, numbered per rank */
    assert_int_equal(g->nstreams, 8);
    uint32_t s0 = g->stream[T(g, 0)], s1 = g->stream[T(g, 1)], s4 = g->stream[T(g, 4)];
    assert_string_equal(tg_str(g, g->stream_name[s0]), "compute");
    assert_int_equal(g->stream_rank[s0], 0);
    assert_int_equal(g->stream_local[s0], 0);
    assert_int_equal(g->stream_local[s1], 1);
    assert_int_equal(g->stream_local[s4], 2);
    assert_int_equal(g->stream_local[g->stream[T(g, 2)]], 0); /* first stream of rank 4 */
    assert_int_equal(g->stream[T(g, 8)], s0);
    assert_int_equal(g->stream_head[s0], T(g, 0));
    assert_int_equal(g->next_in_stream[T(g, 0)], T(g, 8));
    assert_int_equal(g->next_in_stream[T(g, 8)], TG_NONE);
    /* successors: the reverse of deps, in increasing task index */
    uint32_t t0 = T(g, 0), t1 = T(g, 1), t4 = T(g, 4), t8 = T(g, 8);
    assert_int_equal(g->succ_off[t0 + 1] - g->succ_off[t0], 1);
    assert_int_equal(g->succ[g->succ_off[t0]], t1);
    assert_int_equal(g->succ[g->succ_off[t1]], t8);
    assert_int_equal(g->succ[g->succ_off[t4]], t8);
    assert_int_equal(g->succ_off[t8 + 1] - g->succ_off[t8], 0);
    assert_int_equal(g->dep_off[t8 + 1] - g->dep_off[t8], 2);
    assert_int_equal(g->succ_off[g->ntasks], g->dep_off[g->ntasks]);
    /* kinds, args, labels, lines */
    assert_int_equal(tg_task_kind(g, t0), TG_KIND_COMPUTE);
    assert_int_equal(tg_task_kind(g, t1), TG_KIND_XCHG);
    assert_int_equal(tg_task_kind(g, t4), TG_KIND_COLL);
    assert_true(tg_task_delay_us(g, t8) == 12.5);
    assert_int_equal(tg_task_args(g, t4)[0], tg_find_group(g, "g0"));
    assert_int_equal(tg_task_args(g, t4)[1], 67108864);
    assert_string_equal(tg_str(g, g->label[t1]), "L0.mb0.a2e.c0");
    assert_int_equal(g->line[t0], 3);
    assert_int_equal(g->group_line[0], 2);
    assert_int_equal(tg_find_group(g, "nope"), -1);
    assert_string_equal(g->source_name, "g.tg");
    tg_graph_free(g);
}

static void test_accessors_xfer_match(void **state)
{
    (void)state;
    /* rank 0 sends twice to rank 1 on stream x: the k-th send meets the k-th receive, even
     * when rank 1 writes its receives in tasks on other ranks' lines; a self transfer too */
    tg_graph *g = parse_ok("tg 1\n"
                           "task 10 rank=0 stream=x op=xchg send=1:100,1:200 recv=1:300\n"
                           "task 11 rank=1 stream=x op=xchg recv=0:100 send=0:300\n"
                           "task 12 rank=1 stream=x op=xchg recv=0:200\n"
                           "task 13 rank=2 stream=x op=xchg send=2:5 recv=2:5\n");
    assert_int_equal(g->nxfers, 8);
    uint32_t a = g->xfer_off[T(g, 10)], b = g->xfer_off[T(g, 11)], c = g->xfer_off[T(g, 12)];
    uint32_t d = g->xfer_off[T(g, 13)];
    /* canonical order: sends first */
    assert_int_equal(g->xfer_send[b], 1);
    assert_int_equal(g->xfer_bytes[b], 300);
    assert_int_equal(g->xfer_match[a], b + 1);     /* send 100 -> recv 100 */
    assert_int_equal(g->xfer_match[a + 1], c);     /* send 200 -> recv 200 */
    assert_int_equal(g->xfer_match[a + 2], b);     /* recv 300 <- send 300 */
    assert_int_equal(g->xfer_match[b], a + 2);
    assert_int_equal(g->xfer_match[c], a + 1);
    assert_int_equal(g->xfer_match[d], d + 1);
    assert_int_equal(g->xfer_match[d + 1], d);
    for (uint32_t x = 0; x < g->nxfers; x++) {
        assert_int_equal(g->xfer_match[g->xfer_match[x]], x);
        assert_int_equal(g->xfer_task[x] == T(g, 10) || g->xfer_task[x] == T(g, 11) ||
                             g->xfer_task[x] == T(g, 12) || g->xfer_task[x] == T(g, 13),
                         1);
    }
    assert_int_equal(g->xfer_task[c], T(g, 12));
    assert_int_equal(g->xfer_peer[c], 0);
    tg_graph_free(g);
}

static void test_accessors_coll(void **state)
{
    (void)state;
    tg_graph *g = parse_ok("tg 1\n"
                           "group g ranks=2,0\n"
                           "group h ranks=0\n"
                           "task 1 rank=2 stream=c op=allreduce group=g bytes=8\n"
                           "task 2 rank=0 stream=c op=allreduce group=g bytes=8\n"
                           "task 3 rank=0 stream=c op=allgather group=g bytes=4\n"
                           "task 4 rank=2 stream=c op=allgather group=g bytes=4\n"
                           "task 5 rank=0 stream=d op=allreduce group=g bytes=16\n"
                           "task 6 rank=0 stream=c op=reducescatter group=h bytes=2\n"
                           "task 7 rank=2 stream=d op=allreduce group=g bytes=16\n");
    assert_int_equal(g->ngroups, 2);
    assert_int_equal(g->group_ranks[0], 0); /* stored ascending */
    assert_int_equal(g->group_ranks[1], 2);
    /* instances in order of first appearance: (c,g)#1 = {2,1}, (c,g)#2 = {3,4}, (d,g)#1, (c,h)#1 */
    assert_int_equal(g->ncoll, 4);
    assert_int_equal(g->coll_of[T(g, 1)], 0);
    assert_int_equal(g->coll_of[T(g, 2)], 0);
    assert_int_equal(g->coll_of[T(g, 3)], 1);
    assert_int_equal(g->coll_of[T(g, 4)], 1);
    assert_int_equal(g->coll_of[T(g, 5)], 2);
    assert_int_equal(g->coll_of[T(g, 7)], 2);
    assert_int_equal(g->coll_of[T(g, 6)], 3);
    assert_int_equal(g->coll_off[4], 7);
    /* members in rank order */
    assert_int_equal(g->coll_task[g->coll_off[0]], T(g, 2));
    assert_int_equal(g->coll_task[g->coll_off[0] + 1], T(g, 1));
    assert_int_equal(g->coll_task[g->coll_off[1]], T(g, 3));
    assert_int_equal(g->coll_task[g->coll_off[1] + 1], T(g, 4));
    assert_int_equal(g->coll_off[3] - g->coll_off[2], 2);
    assert_int_equal(g->coll_off[4] - g->coll_off[3], 1);
    assert_int_equal(g->coll_task[g->coll_off[3]], T(g, 6));
    tg_graph_free(g);
    g = parse_ok("tg 1\ntask 0 rank=0 stream=s op=delay us=1\n");
    assert_int_equal(g->coll_of[0], TG_NONE);
    tg_graph_free(g);
}

static void test_find_task_unordered_ids(void **state)
{
    (void)state;
    /* ids in any order: lookups go through the hash table */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fprintf(f, "tg 1\n");
    int64_t ids[2000];
    for (int i = 0; i < 2000; i++) {
        ids[i] = (int64_t)((i * 7919LL) % 2003) * 1000003LL + (i == 5 ? INT64_C(1) << 40 : 0);
        fprintf(f, "task %lld rank=%d stream=s op=delay us=1", (long long)ids[i], i % 3);
        if (i >= 3) fprintf(f, " after=%lld", (long long)ids[i - 3]);
        fprintf(f, "\n");
    }
    fclose(f);
    tg_graph *g = parse_ok(buf);
    for (int i = 0; i < 2000; i++) assert_int_equal(tg_find_task(g, ids[i]), i);
    assert_int_equal(tg_find_task(g, 1), TG_NONE);
    assert_int_equal(tg_find_task(g, -1), TG_NONE);
    char *out = write_str(g);
    assert_string_equal(out, buf);
    free(out), free(buf);
    tg_graph_free(g);
    /* increasing but sparse ids: binary search */
    g = parse_ok("tg 1\ntask 3 rank=0 stream=s op=delay us=1\ntask 10 rank=0 stream=s op=delay "
                 "us=1\ntask 11 rank=0 stream=s op=delay us=1 after=3\n");
    assert_int_equal(tg_find_task(g, 3), 0);
    assert_int_equal(tg_find_task(g, 10), 1);
    assert_int_equal(tg_find_task(g, 11), 2);
    assert_int_equal(tg_find_task(g, 4), TG_NONE);
    assert_int_equal(tg_find_task(g, 12), TG_NONE);
    tg_graph_free(g);
}

/* ---- building in memory -------------------------------------------------------------- */

static void test_build_in_memory(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_graph_create(NULL);
    assert_non_null(g);
    int32_t members[] = {1, 0};
    int gi = tg_add_group(g, "pair", members, 2, 0, &e);
    assert_int_equal(gi, 0);
    int64_t gemm[] = {64, 32, 16, 1}, delay[] = {tg_delay_arg(0.25)}, coll[] = {gi, 1024};
    int64_t after0[] = {1}; /* forward */
    tg_task_spec t0 = {.id = 0, .rank = 0, .stream = "compute", .op = TG_OP_GEMM, .args = gemm,
                       .after = after0, .nafter = 1, .label = "a \"quoted\" label"};
    assert_int_equal(tg_add_task(g, &t0, &e), 0);
    tg_task_spec t1 = {.id = 1, .rank = 0, .stream = "compute2", .op = TG_OP_DELAY,
                       .args = delay};
    assert_int_equal(tg_add_task(g, &t1, &e), 1);
    /* receives and sends interleaved: stored sends first */
    int32_t peer[] = {1, 1, 0, 0};
    int64_t bytes[] = {10, 20, 0, 0};
    uint8_t send[] = {0, 1, 1, 0};
    int32_t peer0[] = {0, 0};
    int64_t bytes0[] = {3, 3};
    uint8_t recv0[] = {0, 1};
    tg_task_spec t2 = {.id = 2, .rank = 0, .stream = "x", .op = TG_OP_XCHG, .xfer_peer = peer,
                       .xfer_bytes = bytes, .xfer_send = send, .nxfer = 4};
    assert_int_equal(tg_add_task(g, &t2, &e), 2);
    tg_task_spec t2b = {.id = 5, .rank = 0, .stream = "y", .op = TG_OP_XCHG, .xfer_peer = peer0,
                        .xfer_bytes = bytes0, .xfer_send = recv0, .nxfer = 2};
    assert_int_equal(tg_add_task(g, &t2b, &e), 3);
    int32_t peer1[] = {0, 0};
    int64_t bytes1[] = {20, 10};
    uint8_t send1[] = {0, 1};
    tg_task_spec t3 = {.id = 3, .rank = 1, .stream = "x", .op = TG_OP_XCHG, .xfer_peer = peer1,
                       .xfer_bytes = bytes1, .xfer_send = send1, .nxfer = 2};
    assert_int_equal(tg_add_task(g, &t3, &e), 4);
    tg_task_spec c0 = {.id = 6, .rank = 0, .stream = "coll", .op = TG_OP_ALLREDUCE, .args = coll};
    tg_task_spec c1 = {.id = 7, .rank = 1, .stream = "coll", .op = TG_OP_ALLREDUCE, .args = coll};
    assert_int_equal(tg_add_task(g, &c0, &e), 5);
    assert_int_equal(tg_add_task(g, &c1, &e), 6);
    /* writing needs a finalized graph */
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(tg_write(g, devnull, &e), -1);
    fclose(devnull);
    if (tg_graph_finalize(g, &e)) fail_msg("finalize: %s", e.msg);
    assert_int_equal(tg_graph_finalize(g, &e), 0); /* idempotent */
    char *out = write_str(g);
    assert_string_equal(out, "tg 1\n"
                             "group pair ranks=0,1\n"
                             "task 0 rank=0 stream=compute op=gemm m=64 n=32 k=16 after=1 "
                             "label=\"a \\\"quoted\\\" label\"\n"
                             "task 1 rank=0 stream=compute2 op=delay us=0.25\n"
                             "task 2 rank=0 stream=x op=xchg send=1:20,0:0 recv=1:10,0:0\n"
                             "task 5 rank=0 stream=y op=xchg send=0:3 recv=0:3\n"
                             "task 3 rank=1 stream=x op=xchg send=0:10 recv=0:20\n"
                             "task 6 rank=0 stream=coll op=allreduce group=pair bytes=1024\n"
                             "task 7 rank=1 stream=coll op=allreduce group=pair bytes=1024\n");
    tg_graph *g2 = parse_ok(out);
    if (tg_graph_diff(g, g2, &e)) fail_msg("differ: %s", e.msg);
    assert_int_equal(g->line[0], 0);
    /* no more tasks after finalize */
    tg_task_spec t9 = {.id = 9, .rank = 0, .stream = "x", .op = TG_OP_DELAY, .args = delay};
    assert_int_equal(tg_add_task(g, &t9, &e), -1);
    assert_non_null(strstr(e.msg, "finalized"));
    free(out);
    tg_graph_free(g);
    tg_graph_free(g2);
    tg_graph_free(NULL);
}

static void test_build_errors(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_graph_create("mem");
    int64_t delay[] = {tg_delay_arg(1)}, bad_delay[] = {tg_delay_arg(-2)};
    int64_t gemm_missing[] = {1, 1, TG_ARG_REQUIRED, 1};
    tg_task_spec t = {.id = 4, .rank = 0, .stream = "s", .op = TG_OP_DELAY, .args = delay};
    assert_int_equal(tg_add_task(g, &t, &e), 0);
    tg_task_spec d = t;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_string_equal(e.msg, "mem: duplicate task id 4 (first defined)");
    d.id = 5, d.rank = -3;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "mem: task 5: rank -3 out of range"));
    d.rank = 0, d.stream = "has space";
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "task 5: bad stream name 'has space'"));
    d.stream = "s", d.label = "two\nlines", d.line = 12;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "mem:12: task 5: label contains control character 0x0a"));
    d.label = NULL, d.args = bad_delay;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "task 5: us=-2 must be a finite number >= 0"));
    d.op = TG_OP_GEMM, d.args = gemm_missing;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "task 5: missing field 'k' for op gemm"));
    int64_t coll[] = {3, 8};
    d.op = TG_OP_ALLREDUCE, d.args = coll;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "task 5: group index 3 names no group"));
    d.op = TG_OP_XCHG, d.args = NULL, d.nxfer = 0;
    assert_int_equal(tg_add_task(g, &d, &e), -1);
    assert_non_null(strstr(e.msg, "xchg needs at least one"));
    int32_t members[] = {0, 5000000};
    assert_int_equal(tg_add_group(g, "g", members, 2, 3, &e), -1);
    assert_non_null(strstr(e.msg, "mem:3: group g: rank 5000000 out of range"));
    assert_int_equal(tg_add_group(g, "g", members, 0, 3, &e), -1);
    assert_non_null(strstr(e.msg, "group g has no ranks"));
    /* failed adds leave the graph as it was */
    assert_int_equal(g->ntasks, 1);
    assert_int_equal(g->ngroups, 0);
    if (tg_graph_finalize(g, &e)) fail_msg("%s", e.msg);
    assert_int_equal(g->nstreams, 1);
    tg_graph_free(g);
}

/* Strings passed to tg_add_task may point into the graph's own pool, which grows. */
static void test_build_label_from_pool(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_graph_create(NULL);
    int64_t delay[] = {tg_delay_arg(1)};
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tg_task_spec t = {.id = 0, .rank = 0, .stream = "s", .op = TG_OP_DELAY, .args = delay,
                      .label = big};
    assert_int_equal(tg_add_task(g, &t, &e), 0);
    for (int i = 1; i < 40; i++) { /* each copy of the previous label grows the pool */
        t.id = i;
        t.label = tg_str(g, g->label[i - 1]);
        t.stream = tg_str(g, g->stream_name[g->stream[i - 1]]);
        assert_int_equal(tg_add_task(g, &t, &e), i);
    }
    if (tg_graph_finalize(g, &e)) fail_msg("%s", e.msg);
    for (uint32_t i = 0; i < g->ntasks; i++) assert_string_equal(tg_str(g, g->label[i]), big);
    assert_int_equal(g->nstreams, 1);
    tg_graph_free(g);
}

/* A larger random graph built in memory survives write/parse/write unchanged. */
static void test_build_random_roundtrip(void **state)
{
    (void)state;
    ms_err e = {{0}};
    tg_graph *g = tg_graph_create("rand");
    srand(12345);
    const int R = 6, steps = 300;
    static const char *streams[] = {"c0", "c1", "net"};
    int64_t id = 0;
    int64_t last[6] = {-1, -1, -1, -1, -1, -1};
    int32_t all[] = {0, 1, 2, 3, 4, 5};
    assert_int_equal(tg_add_group(g, "all", all, R, 0, &e), 0);
    for (int s = 0; s < steps; s++) {
        for (int r = 0; r < R; r++) {
            int64_t args[4] = {1 + rand() % 100, 1 + rand() % 100, 1 + rand() % 100,
                               rand() % 2 ? 1 : 2};
            int64_t after[1] = {last[r]};
            char label[32];
            snprintf(label, sizeof label, "s%d r%d", s, r);
            tg_task_spec t = {.id = id, .rank = r, .stream = streams[rand() % 2], .op = TG_OP_GEMM,
                              .args = args, .after = after, .nafter = last[r] >= 0,
                              .label = rand() % 3 ? label : NULL};
            if (rand() % 4 == 0) {
                int64_t d[] = {tg_delay_arg((double)rand() / 7.0)};
                t.op = TG_OP_DELAY;
                t.args = d;
                assert_int_equal(tg_add_task(g, &t, &e), id);
            } else {
                assert_int_equal(tg_add_task(g, &t, &e), id);
            }
            last[r] = id++;
        }
        /* a ring exchange, then sometimes an allreduce */
        for (int r = 0; r < R; r++) {
            int32_t peers[] = {(r + 1) % R, (r + R - 1) % R};
            int64_t bytes[] = {s * 10 + r, s * 10 + (r + R - 1) % R};
            uint8_t send[] = {1, 0};
            tg_task_spec t = {.id = id, .rank = r, .stream = "net", .op = TG_OP_XCHG,
                              .xfer_peer = peers, .xfer_bytes = bytes, .xfer_send = send,
                              .nxfer = 2};
            assert_int_equal(tg_add_task(g, &t, &e), id);
            id++;
        }
        if (s % 10 == 0)
            for (int r = 0; r < R; r++) {
                int64_t args[] = {0, 4096};
                tg_task_spec t = {.id = id, .rank = r, .stream = "net", .op = TG_OP_ALLREDUCE,
                                  .args = args};
                assert_int_equal(tg_add_task(g, &t, &e), id);
                id++;
            }
    }
    if (tg_graph_finalize(g, &e)) fail_msg("finalize: %s", e.msg);
    char *out = write_str(g);
    tg_graph *g2 = parse_ok(out);
    if (tg_graph_diff(g, g2, &e)) fail_msg("differ: %s", e.msg);
    char *out2 = write_str(g2);
    assert_string_equal(out, out2);
    assert_int_equal(g2->ncoll, 30);
    free(out), free(out2);
    tg_graph_free(g), tg_graph_free(g2);
}

static void test_graph_diff_detects(void **state)
{
    (void)state;
    tg_graph *a = parse_ok("tg 1\ntask 0 rank=0 stream=s op=gemm m=1 n=2 k=3\n");
    tg_graph *b = parse_ok("tg 1\ntask 0 rank=0 stream=s op=gemm m=1 n=2 k=4\n");
    tg_graph *c = parse_ok("tg 1\ntask 0 rank=0 stream=s op=gemm m=1 n=2 k=3 label=x\n");
    ms_err e = {{0}};
    assert_int_equal(tg_graph_diff(a, a, &e), 0);
    assert_int_equal(tg_graph_diff(a, b, &e), -1);
    assert_non_null(strstr(e.msg, "args"));
    assert_int_equal(tg_graph_diff(a, c, &e), -1);
    assert_non_null(strstr(e.msg, "label"));
    tg_graph_free(a), tg_graph_free(b), tg_graph_free(c);
}

/* ---- fuzz regressions ---------------------------------------------------------------- */

/* Every input found by the fuzzer (tests/data/fuzz/tg/) must parse or fail with a message,
 * and when it parses, round-trip exactly. */
static void test_fuzz_regressions(void **state)
{
    (void)state;
    DIR *d = opendir(FUZZ_DIR);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s%s", FUZZ_DIR, de->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char *buf = malloc(1 << 20);
        size_t len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        ms_err e = {{0}};
        tg_graph *g = tg_parse_buffer(buf, len, de->d_name, &e);
        if (!g) {
            if (!e.msg[0]) fail_msg("%s: failed without a message", de->d_name);
        } else {
            char *out = write_str(g);
            tg_graph *g2 = tg_parse_buffer(out, strlen(out), "rewritten", &e);
            if (!g2) fail_msg("%s: rewritten text does not parse: %s\n%s", de->d_name, e.msg, out);
            if (tg_graph_diff(g, g2, &e)) fail_msg("%s: graphs differ: %s", de->d_name, e.msg);
            char *out2 = write_str(g2);
            assert_string_equal(out, out2);
            free(out), free(out2);
            tg_graph_free(g2);
            tg_graph_free(g);
        }
        free(buf);
        n++;
    }
    closedir(d);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_canonical),
        cmocka_unit_test(test_roundtrip_file),
        cmocka_unit_test(test_roundtrip_normalizes),
        cmocka_unit_test(test_roundtrip_labels),
        cmocka_unit_test(test_delay_exact),
        cmocka_unit_test(test_empty_graph),
        cmocka_unit_test(test_defaults_omitted),
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_err_version),
        cmocka_unit_test(test_err_unknown_record),
        cmocka_unit_test(test_err_unknown_op),
        cmocka_unit_test(test_err_unknown_field),
        cmocka_unit_test(test_err_duplicate_field),
        cmocka_unit_test(test_err_missing_field),
        cmocka_unit_test(test_err_bad_number),
        cmocka_unit_test(test_err_names_and_quotes),
        cmocka_unit_test(test_err_duplicate_id),
        cmocka_unit_test(test_err_dep_unknown),
        cmocka_unit_test(test_err_dep_other_rank),
        cmocka_unit_test(test_forward_deps_ok),
        cmocka_unit_test(test_err_cycle_plain),
        cmocka_unit_test(test_err_cycle_stream),
        cmocka_unit_test(test_err_xchg_unmatched_send),
        cmocka_unit_test(test_err_xchg_unmatched_recv),
        cmocka_unit_test(test_err_xchg_bytes),
        cmocka_unit_test(test_err_coll_missing_piece),
        cmocka_unit_test(test_err_coll_mismatch),
        cmocka_unit_test(test_err_coll_not_member),
        cmocka_unit_test(test_err_unknown_group),
        cmocka_unit_test(test_err_duplicate_group),
        cmocka_unit_test(test_err_deadlock_xchg),
        cmocka_unit_test(test_err_deadlock_coll),
        cmocka_unit_test(test_plain_cycle_reported_before_deadlock),
        cmocka_unit_test(test_accessors_streams_and_succ),
        cmocka_unit_test(test_accessors_xfer_match),
        cmocka_unit_test(test_accessors_coll),
        cmocka_unit_test(test_find_task_unordered_ids),
        cmocka_unit_test(test_build_in_memory),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_build_label_from_pool),
        cmocka_unit_test(test_build_random_roundtrip),
        cmocka_unit_test(test_graph_diff_detects),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Tests for core/topo: shipped files, generated specs, every bad-input case (with file and
 * line, or the key), print/parse round trips, name lookup, and fuzz regression inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/topo.h"

#define SRC MS_SOURCE_DIR
#define BAD_DIR SRC "/tests/data/topo/"
#define FUZZ_DIR SRC "/tests/data/fuzz/topo/"

/* |a - b| <= eps, reported with both values (cmocka's float asserts are single precision). */
#define assert_double_equal(a, b, eps) check_double((a), (b), (eps), #a, __LINE__)
static void check_double(double a, double b, double eps, const char *what, int line)
{
    if (!(a - b <= eps && b - a <= eps))
        fail_msg("line %d: %s = %.17g, expected %.17g (+- %g)", line, what, a, b, eps);
}

/* Fails with the message when `hay` lacks `needle`. */
static void expect_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in message: %s", needle, hay);
}

static void expect_same(const topo *a, const topo *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->device, b->device);
    assert_int_equal(a->nodes, b->nodes);
    assert_int_equal(a->gpus_per_node, b->gpus_per_node);
    assert_int_equal(a->nics_per_node, b->nics_per_node);
    /* exact equality: the printer picks digits that parse back to the same double */
    assert_true(a->intra.bw_bytes_per_s == b->intra.bw_bytes_per_s);
    assert_true(a->intra.latency_s == b->intra.latency_s);
    assert_true(a->nic.bw_bytes_per_s == b->nic.bw_bytes_per_s);
    assert_true(a->nic.latency_s == b->nic.latency_s);
}

/* Prints t into a buffer (caller frees). */
static char *print_to_string(const topo *t, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    topo_print(t, f);
    fclose(f);
    return buf;
}

static void expect_round_trip(const topo *t)
{
    size_t len;
    char *txt = print_to_string(t, &len);
    topo back;
    ms_err err = {""};
    if (topo_parse_buffer(txt, len, "printed.yaml", &back, &err))
        fail_msg("printed topology does not parse: %s\n%s", err.msg, txt);
    expect_same(t, &back);
    free(txt);
}

/* ---- shipped files ---- */

typedef struct shipped {
    const char *name, *device;
    int nodes, gpus, nics;
    double intra_bps, intra_s, nic_bps, nic_s;
} shipped;

static const shipped shipped_files[] = {
    {"dgx-h100-1x8", "h100", 1, 8, 8, 450e9, 3e-6, 50e9, 5e-6},
    {"h100-4x8", "h100", 4, 8, 8, 450e9, 3e-6, 50e9, 5e-6},
    {"h200-1x8", "h200", 1, 8, 8, 450e9, 3e-6, 50e9, 5e-6},
    {"a100-4x8", "a100", 4, 8, 8, 300e9, 3e-6, 25e9, 5e-6},
    {"h20-1x8", "h20", 1, 8, 0, 450e9, 3e-6, 0, 0},
    {"h20-4x8", "h20", 4, 8, 8, 450e9, 3e-6, 50e9, 5e-6},
    {"a6000-1x8", "a6000", 1, 8, 0, 25e9, 5e-6, 0, 0},
    {"a10-1x8", "a10", 1, 8, 0, 25e9, 5e-6, 0, 0},
};

static void test_shipped_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof shipped_files / sizeof shipped_files[0]; i++) {
        const shipped *s = &shipped_files[i];
        topo t;
        ms_err err = {""};
        if (topo_load(s->name, &t, &err)) fail_msg("%s: %s", s->name, err.msg);
        assert_string_equal(t.name, s->name);
        assert_string_equal(t.device, s->device);
        assert_int_equal(t.nodes, s->nodes);
        assert_int_equal(t.gpus_per_node, s->gpus);
        assert_int_equal(topo_ranks(&t), s->nodes * s->gpus);
        assert_int_equal(t.nics_per_node, s->nics);
        assert_double_equal(t.intra.bw_bytes_per_s, s->intra_bps, 1e-3);
        assert_true(t.intra.latency_s == s->intra_s); /* exact: see test_generated */
        assert_double_equal(t.nic.bw_bytes_per_s, s->nic_bps, 1e-3);
        assert_true(t.nic.latency_s == s->nic_s);
        assert_int_equal(topo_check(&t, &err), 0);
        expect_round_trip(&t);

        /* the same file by path */
        char path[512];
        snprintf(path, sizeof path, "%s/topologies/%s.yaml", SRC, s->name);
        topo byp;
        if (topo_load(path, &byp, &err)) fail_msg("%s: %s", path, err.msg);
        expect_same(&t, &byp);
    }
}

static void test_nic_share(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    assert_int_equal(topo_load("h100-4x8", &t, &err), 0);
    assert_double_equal(topo_gpu_nic_bw(&t), 50e9, 1e-3);
    assert_int_equal(topo_node_of(&t, 7), 0);
    assert_int_equal(topo_node_of(&t, 8), 1);
    assert_int_equal(topo_node_of(&t, 31), 3);
    assert_int_equal(topo_load("a6000:nodes=2", &t, &err), 0);
    assert_double_equal(topo_gpu_nic_bw(&t), 25e9 / 8, 1e-3);
    assert_int_equal(topo_load("a10-1x8", &t, &err), 0);
    assert_double_equal(topo_gpu_nic_bw(&t), 0, 0);
}

/* ---- generated ---- */

static void test_generated(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    if (topo_load("h100:nodes=128", &t, &err)) fail_msg("%s", err.msg);
    assert_string_equal(t.name, "h100:nodes=128");
    assert_string_equal(t.device, "h100");
    assert_int_equal(t.nodes, 128);
    assert_int_equal(t.gpus_per_node, 8);
    assert_int_equal(topo_ranks(&t), 1024);
    assert_int_equal(t.nics_per_node, 8);
    assert_double_equal(t.intra.bw_bytes_per_s, 450e9, 1e-3);
    assert_double_equal(t.nic.bw_bytes_per_s, 50e9, 1e-3);
    expect_round_trip(&t);

    assert_int_equal(topo_generate("a100:nodes=4,gpus=4", &t, &err), 0);
    assert_int_equal(topo_ranks(&t), 16);
    assert_double_equal(t.intra.bw_bytes_per_s, 300e9, 1e-3);
    assert_double_equal(t.nic.bw_bytes_per_s, 25e9, 1e-3);
    assert_double_equal(topo_gpu_nic_bw(&t), 50e9, 1e-3); /* 8 NICs shared by 4 GPUs */

    const char *spec = "h20:nodes=3,gpus=2,intra_GBps=0.1,intra_us=0.3,nics=2,nic_GBps=12.345,"
                       "nic_us=7.77";
    if (topo_generate(spec, &t, &err)) fail_msg("%s", err.msg);
    assert_string_equal(t.name, spec);
    assert_int_equal(t.nodes, 3);
    assert_int_equal(t.gpus_per_node, 2);
    assert_int_equal(t.nics_per_node, 2);
    assert_double_equal(t.intra.bw_bytes_per_s, 0.1e9, 1e-3);
    assert_double_equal(t.intra.latency_s, 0.3e-6, 1e-18);
    assert_double_equal(t.nic.bw_bytes_per_s, 12.345e9, 1e-3);
    assert_double_equal(t.nic.latency_s, 7.77e-6, 1e-18);
    expect_round_trip(&t);

    /* every preset */
    const char *devs[] = {"h100", "h200", "h20", "a100", "a6000", "a10", "l40s", "host-cpu"};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
        char s[64];
        snprintf(s, sizeof s, "%s:nodes=2", devs[i]);
        if (topo_generate(s, &t, &err)) fail_msg("%s: %s", s, err.msg);
        assert_string_equal(t.device, devs[i]);
        assert_true(t.nics_per_node >= 1);
        expect_round_trip(&t);
    }
    assert_int_equal(topo_generate("host-cpu:nodes=4", &t, &err), 0);
    assert_int_equal(t.gpus_per_node, 1);
    assert_double_equal(t.intra.bw_bytes_per_s, 10e9, 1e-3);
    assert_double_equal(t.nic.latency_s, 20e-6, 1e-18);

    /* unit conversion is exact for whole GB/s and µs: N us is the double nearest N e-6 */
    for (int n = 1; n < 200; n++) {
        char s[96], want[32];
        snprintf(s, sizeof s, "h100:nodes=2,intra_us=%d,nic_GBps=%d", n, n);
        assert_int_equal(topo_generate(s, &t, &err), 0);
        snprintf(want, sizeof want, "%de-6", n);
        if (t.intra.latency_s != strtod(want, NULL))
            fail_msg("%d us became %.17g s, not %s", n, t.intra.latency_s, want);
        assert_true(t.nic.bw_bytes_per_s == n * 1e9);
    }

    /* the largest allowed */
    assert_int_equal(topo_generate("h100:nodes=131072", &t, &err), 0);
    assert_int_equal(topo_ranks(&t), 1048576);
}

typedef struct bad_spec {
    const char *spec, *needle;
} bad_spec;

static const bad_spec bad_specs[] = {
    {"h999:nodes=1", "unknown device 'h999'"},
    {"H100:nodes=1", "unknown device 'H100'"},
    {":nodes=1", "unknown device ''"},
    {"h100:", "empty field"},
    {"h100:gpus=8", "missing required key 'nodes'"},
    {"h100:nodes=0", "nodes:"},
    {"h100:nodes=-3", "nodes:"},
    {"h100:nodes=4,gpus=0", "gpus:"},
    {"h100:nodes=4,gpux=2", "unknown key 'gpux'"},
    {"h100:nodes=4,nodes=5", "'nodes' given twice"},
    {"h100:nodes=4,intra_GBps=-1", "intra_GBps:"},
    {"h100:nodes=4,intra_GBps=0", "intra_GBps:"},
    {"h100:nodes=4,intra_us=abc", "intra_us:"},
    {"h100:nodes=4,intra_us=-1", "intra_us:"},
    {"h100:nodes=4,nics=0", "nics:"},
    {"h100:nodes=4,nic_GBps=nan", "nic_GBps:"},
    {"h100:nodes=4,nic_GBps=inf", "nic_GBps:"},
    {"h100:nodes=4,nic_us=1e999", "nic_us:"},
    {"h100:nodes=4,nics", "not key=value"},
    {"h100:nodes=4,", "empty field"},
    {"h100:nodes=4,,gpus=2", "empty field"},
    {"h100:nodes=1048577", "nodes:"},
    {"h100:nodes=1048576,gpus=2", "exceeds the limit"},
    {"h100:nodes=8x", "nodes:"},
    {"h100:nodes= 8", "nodes:"},
    {"h100:nodes=4,gpus=8.0", "gpus:"},
    {"h100:nodes=99999999999999999999999", "nodes:"},
    {"h100:nodes=4:gpus=2", "nodes:"},
    {"h100:nodes=4,nic_us=1,nic_us=2", "'nic_us' given twice"},
};

static void test_generated_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        topo t;
        ms_err err = {""};
        if (topo_load(bad_specs[i].spec, &t, &err) == 0)
            fail_msg("spec '%s' was accepted", bad_specs[i].spec);
        expect_contains(err.msg, bad_specs[i].needle);
        expect_contains(err.msg, "topology spec");
    }
    /* the unknown-device message lists the known ones */
    topo t;
    ms_err err = {""};
    assert_int_equal(topo_generate("tpu:nodes=1", &t, &err), -1);
    expect_contains(err.msg, "h100, h200, h20, a100, a6000, a10, l40s, host-cpu");
    /* a spec too long to be a name */
    char longspec[300];
    snprintf(longspec, sizeof longspec, "h100:nodes=1,intra_GBps=1.%0200d", 0);
    assert_int_equal(topo_generate(longspec, &t, &err), -1);
    expect_contains(err.msg, "name");
}

/* ---- bad files ---- */

typedef struct bad_file {
    const char *file;
    int line;
    const char *needle;
} bad_file;

static const bad_file bad_files[] = {
    {"unknown-key.yaml", 7,
     "unknown key 'bandwith_GBps' in intra_node (did you mean 'bandwidth_GBps'?)"},
    {"unknown-top-key.yaml", 3, "unknown key 'node' (did you mean 'nodes'?)"},
    {"unknown-inter-key.yaml", 11, "unknown key 'latncy_us' in inter_node"},
    {"missing-device.yaml", 1, "missing required key 'device'"},
    {"missing-nodes.yaml", 1, "missing required key 'nodes'"},
    {"missing-gpus.yaml", 1, "missing required key 'gpus_per_node'"},
    {"missing-intra.yaml", 1, "missing required key 'intra_node'"},
    {"missing-intra-bw.yaml", 5, "missing required key 'bandwidth_GBps' in intra_node"},
    {"missing-intra-latency.yaml", 5, "missing required key 'latency_us' in intra_node"},
    {"missing-inter-multinode.yaml", 3, "missing required key 'inter_node'"},
    {"missing-inter-nics.yaml", 8, "missing required key 'nics_per_node' in inter_node"},
    {"quoted-number.yaml", 3, "nodes: expected a number, got a quoted string"},
    {"word-number.yaml", 3, "nodes: expected an integer, got 'one'"},
    {"sequence-number.yaml", 4, "gpus_per_node: expected a number, got a sequence"},
    {"mapping-number.yaml", 7, "intra_node.bandwidth_GBps: expected a number, got a mapping"},
    {"negative-bw.yaml", 6, "intra_node.bandwidth_GBps: must be > 0"},
    {"zero-bw.yaml", 6, "intra_node.bandwidth_GBps: must be > 0"},
    {"zero-nodes.yaml", 3, "nodes: 0 is out of range"},
    {"negative-gpus.yaml", 4, "gpus_per_node: -8 is out of range"},
    {"zero-nics.yaml", 9, "inter_node.nics_per_node: 0 is out of range"},
    {"negative-latency.yaml", 11, "inter_node.latency_us: must be >= 0"},
    {"nan.yaml", 6, "expected a number, got '.nan'"},
    {"inf.yaml", 6, "expected a number, got '.inf'"},
    {"overflow-real.yaml", 7, "latency_us: 1e999 is not a finite number"},
    {"trailing-garbage.yaml", 6, "'450GB' is not a number (trailing characters)"},
    {"trailing-garbage-int.yaml", 4, "'8x' is not a number (trailing characters)"},
    {"fractional-count.yaml", 4, "gpus_per_node: expected an integer, got '8.5'"},
    {"hex-float.yaml", 6, "'0x1p8' is not a number"},
    {"leading-zero.yaml", 3, "leading zeros"},
    {"duplicate-key.yaml", 4, "duplicate key 'nodes' (first at line 3)"},
    {"duplicate-nested-key.yaml", 8, "duplicate key 'latency_us' in intra_node (first at line 7)"},
    {"scalar-document.yaml", 2, "must be a mapping of keys, got a scalar"},
    {"sequence-document.yaml", 2, "must be a mapping of keys, got a sequence"},
    {"multiple-documents.yaml", 8, "more than one YAML document"},
    {"empty.yaml", 1, "empty topology"},
    {"comments-only.yaml", 3, "empty topology"},
    {"empty-document.yaml", 2, "empty topology"},
    {"bad-device.yaml", 2, "device: 'H100' may only hold [a-z0-9_.-]"},
    {"too-many-ranks.yaml", 3, "exceeds the limit of 1048576"},
    {"overflow-int.yaml", 3, "nodes: 99999999999999999999999 is out of range"},
    {"ranks-mismatch.yaml", 5, "ranks: 16 does not match nodes x gpus_per_node = 8"},
    {"intra-not-mapping.yaml", 5, "intra_node must be a mapping of keys, got a scalar"},
    {"alias.yaml", 4, "aliases"},
    {"bad-indentation.yaml", 7, "YAML error: found a tab character"},
    {"unclosed-flow.yaml", 6, "YAML error: did not find expected ',' or '}'"},
    {"empty-value.yaml", 3, "nodes: missing value"},
    {"tagged-value.yaml", 3, "explicit tags are not supported"},
    {"sequence-name.yaml", 1, "name: expected a string, got a sequence"},
    {"share-mismatch.yaml", 12, "inter_node.gpu_share_GBps"},
    {"complex-key.yaml", 5, "keys must be plain strings"},
    {"control-char-name.yaml", 1, "printable ASCII"},
};

static void test_bad_files(void **state)
{
    (void)state;
    size_t n = sizeof bad_files / sizeof bad_files[0];
    for (size_t i = 0; i < n; i++) {
        char path[512], want[600];
        snprintf(path, sizeof path, "%s%s", BAD_DIR, bad_files[i].file);
        topo t;
        ms_err err = {""};
        if (topo_load(path, &t, &err) == 0) fail_msg("%s was accepted", path);
        snprintf(want, sizeof want, "%s:%d: ", path, bad_files[i].line);
        expect_contains(err.msg, want);
        expect_contains(err.msg, bad_files[i].needle);
    }
    /* every file in the directory is covered by the table (a new bad file needs a case) */
    DIR *d = opendir(BAD_DIR);
    assert_non_null(d);
    size_t files = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') files++;
    closedir(d);
    assert_int_equal(files, n);
}

static void test_parse_buffer_errors(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    /* the name given is the one in messages */
    const char *txt = "device: h100\nnodes: 1\ngpus_per_node: 8\nintra_node:\n"
                      "  bandwidth_GBps: 450\n  latency_us: 3\n  bogus: 1\n";
    assert_int_equal(topo_parse_buffer(txt, strlen(txt), "topologies/x.yaml", &t, &err), -1);
    assert_string_equal(err.msg, "topologies/x.yaml:7: unknown key 'bogus' in intra_node");
    /* embedded NUL byte */
    const char nul[] = "device: h100\nnodes: 1\0\n";
    assert_int_equal(topo_parse_buffer(nul, sizeof nul - 1, "nul.yaml", &t, &err), -1);
    expect_contains(err.msg, "nul.yaml:");
    /* oversized text */
    size_t big = (1u << 20) + 1;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, '#', big);
    assert_int_equal(topo_parse_buffer(buf, big, "big.yaml", &t, &err), -1);
    expect_contains(err.msg, "big.yaml");
    free(buf);
    /* a NUL inside a quoted name */
    const char qn[] = "name: \"a\\0b\"\ndevice: h100\nnodes: 1\ngpus_per_node: 8\nintra_node:\n"
                      "  bandwidth_GBps: 450\n  latency_us: 3\n";
    assert_int_equal(topo_parse_buffer(qn, sizeof qn - 1, "qn.yaml", &t, &err), -1);
    expect_contains(err.msg, "qn.yaml:1: name:");
    /* a name that is too long */
    char ln[400];
    snprintf(ln, sizeof ln, "name: %0200d\ndevice: h100\nnodes: 1\ngpus_per_node: 8\n"
             "intra_node:\n  bandwidth_GBps: 450\n  latency_us: 3\n", 0);
    assert_int_equal(topo_parse_buffer(ln, strlen(ln), "ln.yaml", &t, &err), -1);
    expect_contains(err.msg, "ln.yaml:1: name: must be 1 to 127 characters");
}

static void test_valid_variants(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    /* no name: the file stem; single node without inter_node; quoted device; flow style */
    const char *a = "device: \"l40s\"\nnodes: 1\ngpus_per_node: 4\n"
                    "intra_node: {bandwidth_GBps: 25.5, latency_us: 0}\n";
    if (topo_parse_buffer(a, strlen(a), "some/dir/my-box.yml", &t, &err)) fail_msg("%s", err.msg);
    assert_string_equal(t.name, "my-box");
    assert_string_equal(t.device, "l40s");
    assert_int_equal(t.nics_per_node, 0);
    assert_double_equal(t.intra.bw_bytes_per_s, 25.5e9, 1e-3);
    assert_true(t.intra.latency_s == 0);
    expect_round_trip(&t);

    /* derived keys that agree are accepted; explicit document markers; exponents */
    const char *b = "---\nname: \"odd: name, with \\\"quotes\\\"\"\ndevice: h100\nnodes: 2\n"
                    "gpus_per_node: 8\nranks: 16\nintra_node:\n  bandwidth_GBps: 4.5e2\n"
                    "  latency_us: 3\ninter_node:\n  nics_per_node: 4\n  bandwidth_GBps: 50\n"
                    "  latency_us: 5.5\n  gpu_share_GBps: 25\n...\n";
    if (topo_parse_buffer(b, strlen(b), "b.yaml", &t, &err)) fail_msg("%s", err.msg);
    assert_string_equal(t.name, "odd: name, with \"quotes\"");
    assert_int_equal(t.nodes, 2);
    assert_double_equal(t.intra.bw_bytes_per_s, 450e9, 1e-3);
    assert_double_equal(topo_gpu_nic_bw(&t), 25e9, 1e-3);
    expect_round_trip(&t);

    /* a file stem that cannot be a name needs a name: key */
    const char *c = "device: h100\nnodes: 1\ngpus_per_node: 8\nintra_node:\n"
                    "  bandwidth_GBps: 450\n  latency_us: 3\n";
    assert_int_equal(topo_parse_buffer(c, strlen(c), "dir/.yaml", &t, &err), -1);
    expect_contains(err.msg, "dir/.yaml:1: no 'name' key");
}

static void test_print(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    assert_int_equal(topo_load("h100:nodes=128", &t, &err), 0);
    size_t len;
    char *txt = print_to_string(&t, &len);
    expect_contains(txt, "name: \"h100:nodes=128\"\n");
    expect_contains(txt, "device: h100\n");
    expect_contains(txt, "nodes: 128\n");
    expect_contains(txt, "gpus_per_node: 8\n");
    expect_contains(txt, "ranks: 1024\n");
    expect_contains(txt, "intra_node:\n  bandwidth_GBps: 450");
    expect_contains(txt, "  latency_us: 3\n");
    expect_contains(txt, "inter_node:\n  nics_per_node: 8\n  bandwidth_GBps: 50");
    expect_contains(txt, "  latency_us: 5\n");
    expect_contains(txt, "  gpu_share_GBps: 50");
    free(txt);

    assert_int_equal(topo_load("a10-1x8", &t, &err), 0);
    txt = print_to_string(&t, &len);
    assert_null(strstr(txt, "\ninter_node:"));
    free(txt);

    /* awkward doubles still round-trip exactly */
    topo u = t;
    u.intra.bw_bytes_per_s = 123456789.123456789;
    u.intra.latency_s = 1.0 / 3.0 * 1e-6;
    expect_round_trip(&u);
    u.intra.bw_bytes_per_s = 0.1e9 + 0.2e9;
    u.intra.latency_s = 0.1e-6 + 0.2e-6;
    expect_round_trip(&u);
}

static void test_check(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    assert_int_equal(topo_load("a6000-1x8", &t, &err), 0);
    assert_int_equal(topo_check(&t, &err), 0); /* single node, no NIC */
    topo u = t;
    u.nodes = 2;
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "nics_per_node");
    u = t;
    u.intra.bw_bytes_per_s = 0.0 / 0.0;
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "intra_node");
    u = t;
    u.intra.latency_s = -1e-6;
    assert_int_equal(topo_check(&u, &err), -1);
    u = t;
    u.gpus_per_node = 0;
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "gpus_per_node");
    u = t;
    u.nodes = 1 << 20;
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "exceeds");
    u = t;
    strcpy(u.device, "H100");
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "device");
    u = t;
    u.nics_per_node = 1;
    u.nic.bw_bytes_per_s = -5;
    assert_int_equal(topo_check(&u, &err), -1);
    expect_contains(err.msg, "inter_node");
    assert_int_equal(topo_check(NULL, &err), -1);
}

static void test_load_errors(void **state)
{
    (void)state;
    topo t;
    ms_err err = {""};
    assert_int_equal(topo_load("no-such-topology", &t, &err), -1);
    expect_contains(err.msg, "unknown topology 'no-such-topology'");
    expect_contains(err.msg, "available: a10-1x8, a100-4x8, a6000-1x8, dgx-h100-1x8, "
                             "findep-paper-1x8, h100-4x8, h20-1x8, h20-4x8, h200-1x8");

    assert_int_equal(topo_load("missing.yaml", &t, &err), -1);
    expect_contains(err.msg, "cannot open topology file 'missing.yaml': No such file");
    assert_int_equal(topo_load("some/dir/missing", &t, &err), -1);
    expect_contains(err.msg, "cannot open topology file 'some/dir/missing'");
    assert_int_equal(topo_load(SRC "/topologies", &t, &err), -1);
    expect_contains(err.msg, "topologies");
    assert_int_equal(topo_load("", &t, &err), -1);
    expect_contains(err.msg, "empty topology spec");
    assert_int_equal(topo_load(NULL, &t, &err), -1);
    assert_int_equal(topo_load("h100:nodes=1", &t, NULL), 0); /* err may be NULL */
    assert_int_equal(topo_load("nope", &t, NULL), -1);
}

/* Replays fuzzer findings and seeds through both entry points (crashes show under SAN=1). */
static void replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char *buf = malloc(1 << 16);
        assert_non_null(buf);
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        fclose(f);
        buf[n] = '\0';
        topo t;
        ms_err err = {""};
        if (topo_parse_buffer(buf, n, path, &t, &err) == 0) {
            assert_int_equal(topo_check(&t, &err), 0);
            expect_round_trip(&t);
        }
        if (topo_generate(buf, &t, &err) == 0) {
            assert_int_equal(topo_check(&t, &err), 0);
            expect_round_trip(&t);
        }
        free(buf);
    }
    closedir(d);
}

static void test_fuzz_regressions(void **state)
{
    (void)state;
    replay_dir(FUZZ_DIR);
    replay_dir(SRC "/fuzz/seeds/fuzz_topo/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_files),     cmocka_unit_test(test_nic_share),
        cmocka_unit_test(test_generated),         cmocka_unit_test(test_generated_errors),
        cmocka_unit_test(test_bad_files),         cmocka_unit_test(test_parse_buffer_errors),
        cmocka_unit_test(test_valid_variants),    cmocka_unit_test(test_print),
        cmocka_unit_test(test_check),             cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_fuzz_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

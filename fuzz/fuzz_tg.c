/* libFuzzer target for the .tg reader and writer: any input must either fail with a
 * message or parse into a graph whose canonical text parses back to the same graph and
 * writes back byte for byte (and whose m2n tasks expand into a valid graph). Build and run: make build-fuzz/fuzz_tg && build-fuzz/fuzz_tg
 * fuzz/seeds/fuzz_tg; crash inputs go to tests/data/fuzz/tg/ (replayed by test_ir). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/tg.h"

static char *write_mem(const tg_graph *g, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) abort();
    ms_err e = {{0}};
    if (tg_write(g, f, &e)) {
        fprintf(stderr, "tg_write failed: %s\n", e.msg);
        abort();
    }
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ms_err e = {{0}};
    tg_graph *g = tg_parse_buffer((const char *)data, size, "fuzz.tg", &e);
    if (!g) {
        if (!e.msg[0]) {
            fprintf(stderr, "parse failed without a message\n");
            abort();
        }
        return 0;
    }
    size_t len1, len2;
    char *text1 = write_mem(g, &len1);
    tg_graph *g2 = tg_parse_buffer(text1, len1, "rewritten.tg", &e);
    if (!g2) {
        fprintf(stderr, "canonical text does not parse: %s\n%s", e.msg, text1);
        abort();
    }
    if (tg_graph_diff(g, g2, &e)) {
        fprintf(stderr, "graph changed in the round trip: %s\n%s", e.msg, text1);
        abort();
    }
    char *text2 = write_mem(g2, &len2);
    if (len1 != len2 || memcmp(text1, text2, len1) != 0) {
        fprintf(stderr, "second write differs:\n%s---\n%s", text1, text2);
        abort();
    }
    /* m2n pieces expand into xchg tasks that pair up (or fail with a message) */
    if (tg_has_m2n(g)) {
        tg_graph *x = tg_expand_m2n(g, &e);
        if (!x && !e.msg[0]) {
            fprintf(stderr, "tg_expand_m2n failed without a message\n%s", text1);
            abort();
        }
        if (x && (tg_has_m2n(x) || x->ntasks != g->ntasks)) {
            fprintf(stderr, "tg_expand_m2n left m2n tasks or lost tasks\n%s", text1);
            abort();
        }
        tg_graph_free(x);
    }
    free(text1);
    free(text2);
    tg_graph_free(g);
    tg_graph_free(g2);
    return 0;
}

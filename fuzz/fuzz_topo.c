/* libFuzzer target for core/topo: feeds the input to the YAML parser and, as a
 * NUL-terminated string, to the generated-spec parser. Whatever either accepts must pass
 * topo_check and survive a print/parse round trip unchanged (aborts otherwise). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/topo.h"

static int same(const topo *a, const topo *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->device, b->device) == 0 &&
           a->nodes == b->nodes && a->gpus_per_node == b->gpus_per_node &&
           a->nics_per_node == b->nics_per_node &&
           a->intra.bw_bytes_per_s == b->intra.bw_bytes_per_s &&
           a->intra.latency_s == b->intra.latency_s &&
           a->nic.bw_bytes_per_s == b->nic.bw_bytes_per_s && a->nic.latency_s == b->nic.latency_s;
}

static void check_accepted(const topo *t)
{
    ms_err err = {""};
    if (topo_check(t, &err)) {
        fprintf(stderr, "accepted topology fails topo_check: %s\n", err.msg);
        abort();
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return;
    topo_print(t, f);
    fclose(f);
    topo back;
    if (topo_parse_buffer(buf, len, "printed", &back, &err) || !same(t, &back)) {
        fprintf(stderr, "print/parse round trip failed: %s\n%s", err.msg, buf);
        abort();
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    topo t;
    ms_err err = {""};
    if (topo_parse_buffer((const char *)data, size, "fuzz.yaml", &t, &err) == 0)
        check_accepted(&t);

    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (topo_generate(s, &t, &err) == 0) check_accepted(&t);
    free(s);
    return 0;
}

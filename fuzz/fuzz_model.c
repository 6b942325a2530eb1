/* libFuzzer target for core/model: feeds the input to the config.json parser. Whatever it
 * accepts must be self-consistent (positive sizes, top_k within the experts, kv heads
 * dividing heads, leading dense layers fewer than the layers); aborts otherwise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    model_cfg m;
    ms_err err = {""};
    if (model_parse_buffer((const char *)data, size, "fuzz.json", &m, &err) != 0) return 0;
    if (m.layers < 1 || m.hidden < 1 || m.heads < 1 || m.kv_heads < 1 ||
        m.heads % m.kv_heads != 0 || m.routed_experts < 1 || m.top_k < 1 ||
        m.top_k > m.routed_experts || m.first_dense < 0 || m.first_dense >= m.layers ||
        m.expert_inter < 1 || m.head_dim < 1 || m.v_head_dim < 1) {
        fprintf(stderr, "accepted an inconsistent model: layers %d hidden %d heads %d/%d "
                        "experts %d top_k %d first_dense %d\n",
                m.layers, m.hidden, m.heads, m.kv_heads, m.routed_experts, m.top_k,
                m.first_dense);
        abort();
    }
    return 0;
}

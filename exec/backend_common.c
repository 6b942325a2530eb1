/* Helpers shared by the backends (exec/backend_host.c and exec/backend_cuda.cu, which
 * calls them through exec/backend.h's extern "C" declarations). */
#include "exec/backend.h"

int ex_task_comm(const tg_graph *g, uint32_t t, const char **name, int *group)
{
    tg_kind kind = tg_task_kind(g, t);
    if (kind != TG_KIND_XCHG && kind != TG_KIND_COLL) return 0;
    *name = tg_str(g, g->stream_name[g->stream[t]]);
    *group = kind == TG_KIND_COLL ? (int)tg_task_args(g, t)[0] : -1;
    return 1;
}

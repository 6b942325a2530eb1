/* Helpers shared by the graph builders; see workloads/wl_common.h. */
#include "workloads/wl_common.h"

int64_t wl_add_task(wl_tasks *k, tg_task_spec *t)
{
    if (k->failed) return -1;
    t->id = k->next_id;
    if (tg_add_task(k->g, t, k->err) < 0) {
        k->failed = 1;
        return -1;
    }
    return k->next_id++;
}

/* Binary min-heap of events; see evq.h. */
#include "sim/evq.h"

#include <stdlib.h>

int sim_evq_init(sim_evq *q, size_t capacity)
{
    q->n = 0;
    q->next_seq = 0;
    q->cap = capacity ? capacity : 1;
    q->heap = malloc(q->cap * sizeof *q->heap);
    return q->heap ? 0 : -1;
}

void sim_evq_release(sim_evq *q)
{
    if (!q) return;
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
}

static inline int before(const sim_event *a, const sim_event *b)
{
    return a->time_s < b->time_s || (a->time_s == b->time_s && a->seq < b->seq);
}

int sim_evq_push(sim_evq *q, double time_s, uint32_t type, uint32_t what)
{
    if (q->n == q->cap) return -1;
    sim_event ev = {time_s, q->next_seq++, what, type};
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&ev, &q->heap[parent])) break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = ev;
    return 0;
}

void sim_evq_pop(sim_evq *q, sim_event *ev)
{
    *ev = q->heap[0];
    sim_event last = q->heap[--q->n];
    size_t i = 0, n = q->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && before(&q->heap[c + 1], &q->heap[c])) c++;
        if (!before(&q->heap[c], &last)) break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (n > 0) q->heap[i] = last;
}

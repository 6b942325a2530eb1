/* The simulator's event queue: a binary min-heap ordered by (time, sequence number), so
 * simultaneous events pop in the order they were pushed and runs are deterministic.
 * Capacity is fixed at creation (the engine computes a bound); pushing past it fails
 * with a message naming the knob instead of allocating in the hot loop. */
#ifndef SIM_EVQ_H
#define SIM_EVQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct sim_event {
    double time_s;
    uint64_t seq;
    uint32_t what;  /* task, transfer or collective-instance index */
    uint32_t type;  /* engine-defined event type */
} sim_event;

typedef struct sim_evq {
    sim_event *heap;
    size_t n, cap;
    uint64_t next_seq;
} sim_evq;

/* Returns 0, or -1 if the allocation failed. */
int sim_evq_init(sim_evq *q, size_t capacity);
void sim_evq_release(sim_evq *q);

/* Returns 0, or -1 when the queue is full (capacity exhausted). */
int sim_evq_push(sim_evq *q, double time_s, uint32_t type, uint32_t what);

static inline int sim_evq_empty(const sim_evq *q) { return q->n == 0; }
static inline double sim_evq_top_time(const sim_evq *q) { return q->heap[0].time_s; }

/* Removes the earliest event into *ev; the queue must not be empty. */
void sim_evq_pop(sim_evq *q, sim_event *ev);

#endif

/* The engine's state, shared by engine.c and report.c only. */
#ifndef SIM_INTERNAL_H
#define SIM_INTERNAL_H

#include "sim/evq.h"
#include "sim/sim.h"

struct sim_engine {
    const tg_graph *g;
    const topo *t;
    const cdb *db;
    const net_ops *net;
    void *netstate;
    sim_evq q;
    double *dur;     /* [ntasks] seconds, compute and delay tasks */
    double *start;   /* [ntasks] seconds, -1 before the task starts */
    double *end;     /* [ntasks] seconds, -1 before the task ends */
    double *active;  /* [ntasks] comm tasks: when data first moved (a transfer launched or
                        the collective began), -1 before; waiting for peers is not comm */
    uint32_t *left;  /* [ntasks] deps left before start; transfers left once an xchg runs */
    uint32_t *coll_started; /* [ncoll] members started */
    uint32_t *stream_cur;   /* [nstreams] task at the head of each stream, or TG_NONE */
    uint32_t *done_buf;     /* transfers reported by a network model's advance() */
    int32_t *m2n_side;      /* [2 * nranks] scratch: an m2n's senders and receivers */
    uint32_t finished;
    int ran;
    sim_summary sum;
};

/* Fills the per-rank and per-stream figures of s->sum after a complete run. */
int sim_summarize(sim_engine *s, ms_err *err);
void sim_summary_release(sim_summary *sum);
void sim_describe_task(const tg_graph *g, uint32_t t, char *buf, size_t len);

#endif

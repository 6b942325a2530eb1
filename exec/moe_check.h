/* Check mode of the executors (internal to exec/): real MoE forward math on random fp32
 * weights and inputs, carried by the graph's own tasks (attention, gate, dispatch,
 * experts, combine), and a single-process reference forward on rank 0 to compare with.
 * Works on DEP graphs with labels L<l>.mb<i>.<kind>[.c<j>] (workloads/dep_infer.c). */
#ifndef EX_MOE_CHECK_H
#define EX_MOE_CHECK_H

#include <stdint.h>

#include "core/err.h"
#include "exec/backend.h"
#include "exec/exec.h"
#include "ir/tg.h"

typedef struct ex_check ex_check;

/* Reads the graph's structure from its labels, loads opt->model, draws this rank's
 * weights and inputs from opt->seed. Local (no communication). NULL with err set when the
 * graph is not a DEP graph check mode understands, or the model does not match it. */
ex_check *ex_check_create(const tg_graph *g, const ex_options *opt, int rank, ms_err *err);
void ex_check_free(ex_check *c); /* NULL is harmless */

/* The data hooks the backend calls while the graph runs. Valid until ex_check_free. */
const ex_payload *ex_check_payload(ex_check *c);

/* After a pass: the attention ranks send their final hidden states and the routing they
 * chose to rank 0, which runs the reference forward and compares. Collective. Fills
 * res->check_* on every rank. */
int ex_check_compare(ex_check *c, ex_result *res, ms_err *err);

#endif

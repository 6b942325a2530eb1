/* Check mode for training graphs (internal to exec/): the real forward and backward of a
 * training step built by workloads/moe_train.c (labels L<l>.<fwd|bwd>[.mb<j>].<kind>),
 * carried by the graph's own tasks, and single-process reference gradients on rank 0.
 * Reached through exec/moe_check.c, which dispatches on the graph's labels. */
#ifndef EX_TRAIN_CHECK_H
#define EX_TRAIN_CHECK_H

#include <stdint.h>

#include "core/err.h"
#include "exec/backend.h"
#include "exec/exec.h"
#include "ir/tg.h"

typedef struct ex_tcheck ex_tcheck;

/* 1 when g looks like a training graph (a task labelled L<l>.fwd.* or L<l>.bwd.*). */
int ex_tcheck_is_train(const tg_graph *g);

/* Reads the step's structure from the labels, loads opt->model, checks it against the
 * graph's shapes, draws this rank's weights and inputs from opt->seed. Local. NULL with
 * err set when the graph or the model does not fit. */
ex_tcheck *ex_tcheck_create(const tg_graph *g, const ex_options *opt, int rank, ms_err *err);
void ex_tcheck_free(ex_tcheck *c); /* NULL is harmless */

const ex_payload *ex_tcheck_payload(ex_tcheck *c);

/* After a pass: every rank sends its gradients (dense ones after the AllReduce, its
 * expert shards) to rank 0, which computes the reference step and compares. Collective.
 * Fills res->check_* on every rank. */
int ex_tcheck_compare(ex_tcheck *c, ex_result *res, ms_err *err);

/* Checks the backward math itself, in one process without MPI: the reference step of
 * `ranks` ranks (ESP esp, `tokens` tokens each, capacity 1, fp32 wire) for model (its first
 * `layers` layers, 0 = all), against central finite differences of the step's loss
 * sum <dX_L, X_L> for two entries of every dense and expert weight tensor per layer (the
 * largest gradient and a seeded one). *max_err = max |fd - g| / (|g| + 0.05 max|g|) over
 * the *nchecked entries. For tests (tests/test_exec_train.c). */
int ex_tcheck_gradcheck(const char *model, int layers, int ranks, int esp, int tokens,
                        uint64_t seed, double *max_err, int *nchecked, ms_err *err);

#endif

/* Expert routing: how a MoE layer's token-expert assignments (tokens × top_k) split among
 * its routed experts. Three distributions: uniform, Zipf with a per-layer hot set, and
 * measured per-layer counts from a CSV trace (docs/ROUTING.md). */
#ifndef ROUTING_H
#define ROUTING_H

#include <stdint.h>

#include "core/err.h"

#define ROUTING_MAX_EXPERTS 65536 /* routed experts per layer */
#define ROUTING_MAX_LAYERS 65536  /* MoE layers */

typedef struct routing routing; /* opaque; immutable after routing_create */

/* Builds a routing distribution from `spec` (copied; the caller keeps ownership):
 *   "uniform"     every expert gets the same share;
 *   "zipf:S"      the expert ranked i (0-based) gets weight 1/(i+1)^S, S >= 0 a decimal
 *                 number (0 = uniform); the ranking is a permutation drawn per layer from
 *                 `seed` and the layer index, so each layer has its own hot experts;
 *   "trace:FILE"  per-layer counts from a CSV file: a path when FILE contains '/', else a
 *                 name under traces/routing/ in the data directory (".csv" optional).
 * experts: routed experts per layer (1..ROUTING_MAX_EXPERTS); layers: the MoE layers that
 * will be asked for (1..ROUTING_MAX_LAYERS; a trace needs at least this many rows).
 * Returns a new object to free with routing_free, or NULL with err naming the spec, or
 * for traces the file and line. */
routing *routing_create(const char *spec, int experts, int layers, uint64_t seed, ms_err *err);

/* Frees r; NULL is harmless. */
void routing_free(routing *r);

/* Splits `assignments` (>= 0) token-expert assignments of MoE layer `layer` (0-based,
 * < layers) among the experts: writes counts[0..experts), which sum exactly to
 * assignments. Integer shares use the largest-remainder method (docs/ROUTING.md gives the
 * tie rules). Deterministic: the same spec, seed, layer and assignments give the same
 * counts. Does not modify r, so concurrent calls on one r are safe; zipf and trace
 * allocate a temporary array of `experts` entries. Returns 0, or -1 with err. */
int routing_counts(const routing *r, int layer, int64_t assignments, int64_t *counts,
                   ms_err *err);

/* The spec r was created from (owned by r, valid until routing_free). */
const char *routing_spec(const routing *r);

#endif

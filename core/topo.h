/* Cluster topologies: nodes of GPUs of one device model, an intra-node link per GPU (to
 * the node's switch) and inter-node NICs. Loaded from YAML files in topologies/ or
 * generated from a compact spec for what-if studies (docs/TOPOLOGY.md). */
#ifndef TOPO_H
#define TOPO_H

#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

typedef struct topo_link {
    double bw_bytes_per_s; /* per direction (links are full duplex) */
    double latency_s;      /* one-way latency of the link */
} topo_link;

typedef struct topo {
    char name[128];  /* file stem, or the generated spec as given */
    char device[64]; /* device model name: the key into the cost DB (e.g. "h100") */
    int nodes;
    int gpus_per_node;
    topo_link intra; /* each GPU's link to its node switch (NVLink/NVSwitch or PCIe) */
    int nics_per_node;
    topo_link nic;   /* each NIC's link to the fabric */
} topo;

/* Resolves `spec`, in this order:
 *   - a generated form `DEVICE:nodes=N[,gpus=G][,key=value...]` (contains ':'), keys:
 *     nodes, gpus, intra_GBps, intra_us, nics, nic_GBps, nic_us;
 *   - a path to a YAML file (contains '/' or ends in .yaml/.yml);
 *   - a name, looked up as topologies/NAME.yaml under the data directory (core/paths.h).
 * Fills *out and returns 0, or returns -1 with err naming the file and line or the key. */
int topo_load(const char *spec, topo *out, ms_err *err);

/* Parses YAML text; name is used in messages. */
int topo_parse_buffer(const char *buf, size_t len, const char *name, topo *out, ms_err *err);

/* Builds a generated topology from "DEVICE:key=value,...". */
int topo_generate(const char *spec, topo *out, ms_err *err);

/* Checks ranges (positive counts and bandwidths, non-negative latencies). */
int topo_check(const topo *t, ms_err *err);

static inline int topo_ranks(const topo *t) { return t->nodes * t->gpus_per_node; }
static inline int topo_node_of(const topo *t, int rank) { return rank / t->gpus_per_node; }

/* Per-GPU share of inter-node bandwidth: nic bw * nics_per_node / gpus_per_node,
 * bytes/s per direction. */
double topo_gpu_nic_bw(const topo *t);

/* Writes a human-readable description (one "key: value" per line, YAML-compatible). */
void topo_print(const topo *t, FILE *f);

#endif

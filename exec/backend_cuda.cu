/* The cuda backend of the executors (exec/backend.h): a CUDA stream per graph stream, every
 * task between two CUDA events, compute on kernels/ (cuBLAS, FFN, attention, gate), comm on
 * NCCL, or on an MPI proxy thread when ranks share a GPU. Design and status: docs/CUDA.md. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "kernels/k_cuda.h"

extern "C" {
#include "exec/backend.h"
#include "exec/backend_cuda.h"
#include "exec/ex_mpi.h"
}

namespace {

/* ---- process-wide state: device, NCCL world, communicator and cuBLAS caches ------------ */

const int TAG_HOST = 7301;       /* hostname gather (world, blocking, setup only) */
const int TAG_DATA = 0;          /* proxy xchg data */
const size_t ALIGN = 256;        /* sub-buffer alignment in the arenas */
const double MAX_BUF = 1e14;     /* bytes: refuse absurd shapes before size_t overflows */
const int GATE_TOPK = 8;         /* the IR's gate op has no k: DeepSeek-V3/Qwen's 8 */

struct comm_entry {
    char *key;          /* "stream-name\x1fgroup-hash" (see comm_key) */
    ncclComm_t nccl;    /* NCCL mode; NULL where this rank is not a member */
    ex_comm *mpi;       /* proxy mode; NULL where this rank is not a member */
    int nranks;         /* members */
    int dead;           /* aborted after a watchdog expiry: never handed out again */
};

struct proc_state {
    int done;           /* init ran (successfully or not) */
    int ok;
    char fail[MS_ERR_LEN];
    int rank, size, local_rank, local_size, ndev, dev;
    int proxy;          /* 1: comm through the MPI proxy (ranks share a GPU, or forced) */
    char dev_name[256]; /* cudaDeviceProp.name */
    ncclComm_t world;   /* NCCL mode: the parent of every split */
    comm_entry **comms; /* heap entries: pointers stay valid as the cache grows */
    int ncomms, cap_comms;
    cublasHandle_t *blas; /* one handle per compute stream index, reused across runs */
    int nblas;
};

proc_state P;

/* ---- checking macros: file:line, the rank and the library's own message ---------------- */

int fail_at(ms_err *err, const char *file, int line, const char *call, const char *lib,
            const char *msg)
{
    return ms_err_set(err, "%s:%d: rank %d: %s: %s: %s", file, line, P.rank, call, lib, msg);
}

#define CUDA_CK(err, call)                                                                   \
    do {                                                                                     \
        cudaError_t cu_e_ = (call);                                                          \
        if (cu_e_ != cudaSuccess)                                                            \
            return fail_at((err), __FILE__, __LINE__, #call, "CUDA", cudaGetErrorString(cu_e_)); \
    } while (0)
#define NCCL_CK(err, call)                                                                   \
    do {                                                                                     \
        ncclResult_t nc_r_ = (call);                                                         \
        if (nc_r_ != ncclSuccess) return nccl_fail((err), __FILE__, __LINE__, #call, nc_r_); \
    } while (0)
#define CUBLAS_CALL_CK(err, call)                                                            \
    do {                                                                                     \
        cublasStatus_t cb_s_ = (call);                                                       \
        if (cb_s_ != CUBLAS_STATUS_SUCCESS)                                                  \
            return fail_at((err), __FILE__, __LINE__, #call, "cuBLAS",                       \
                           cublasGetStatusString(cb_s_));                                    \
    } while (0)
/* kernels/ calls: they return K_* with "file:line: call: message" in a k_cuda_err */
#define KERN_CK(err, call)                                                                   \
    do {                                                                                     \
        k_cuda_err k_e_ = {{0}};                                                             \
        int k_rc_ = (call);                                                                  \
        if (k_rc_ != K_OK)                                                                   \
            return ms_err_set((err), "rank %d: %s", P.rank,                                  \
                              k_e_.msg[0] ? k_e_.msg : "kernel call failed");                \
    } while (0)
#define KERR (&k_e_)

int nccl_fail(ms_err *err, const char *file, int line, const char *call, ncclResult_t r)
{
    const char *last = ncclGetLastError(NULL);
    char msg[600];
    snprintf(msg, sizeof msg, "%s%s%s", ncclGetErrorString(r), last && *last ? ": " : "",
             last ? last : "");
    return fail_at(err, file, line, call, "NCCL", msg);
}

/* ---- small helpers ----------------------------------------------------------------- */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* A bump layout over one device block; with base == NULL it only measures. */
struct lay {
    char *base;
    size_t used;
};

void *take(lay *L, double bytes)
{
    size_t o = align_up(L->used);
    L->used = o + (size_t)(bytes > 0 ? bytes : 0);
    return L->base ? (void *)(L->base + o) : NULL;
}

/* Maps cudaDeviceProp.name to the cost DB's device key (costdb/profiles/datasheet.sql,
 * docs/TOPOLOGY.md): a word of the name that is a known model ("NVIDIA H100 80GB HBM3" ->
 * h100, "NVIDIA A100-SXM4-80GB" -> a100), else the lowercased name without "NVIDIA" with
 * runs of other characters as '-' ("NVIDIA GH200 480GB" -> gh200-480gb). */
void device_key(const char *name, char *out, size_t len)
{
    static const char *const known[][2] = {{"H200", "h200"}, {"H100", "h100"}, {"H20", "h20"},
                                           {"A100", "a100"}, {"A6000", "a6000"},
                                           {"A10", "a10"},   {"L40S", "l40s"}};
    char word[64];
    for (const char *p = name; *p;) {
        size_t n = 0;
        while (*p && (*p == ' ' || *p == '-' || *p == '_')) p++;
        while (*p && *p != ' ' && *p != '-' && *p != '_') {
            if (n + 1 < sizeof word) word[n++] = *p;
            p++;
        }
        word[n] = '\0';
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (n && !strcmp(word, known[i][0])) {
                snprintf(out, len, "%s", known[i][1]);
                return;
            }
    }
    const char *p = name;
    if (!strncmp(p, "NVIDIA ", 7)) p += 7;
    size_t n = 0;
    int dash = 0;
    for (; *p && n + 1 < len && n < 63; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch) || ch == '.' || ch == '_') {
            if (dash && n) out[n++] = '-';
            dash = 0;
            if (n + 1 < len) out[n++] = (char)tolower(ch);
        } else {
            dash = 1;
        }
    }
    if (len) out[n < len ? n : len - 1] = '\0';
    if (n == 0) snprintf(out, len, "gpu");
}

/* ---- kernels of the backend itself --------------------------------------------------- */

__device__ uint64_t globaltimer_ns(void)
{
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* delay: one thread spinning on the global timer (ns) for the task's duration */
__global__ void spin_ns(uint64_t ns)
{
    uint64_t t0 = globaltimer_ns();
    while (globaltimer_ns() - t0 < ns) {
    }
}

/* proxy comm: the stream waits until the host proxy has finished this task (flag reaches
 * ticket) or the run is aborted; the flag lives in mapped pinned host memory */
__global__ void wait_flag(const volatile unsigned long long *flag, unsigned long long ticket,
                          const volatile unsigned int *abort_flag)
{
    while (*flag < ticket && *abort_flag == 0) __nanosleep(500);
}

/* deterministic bf16 fill in [-0.5, 0.5): splitmix64 of (seed, index) */
__global__ void fill_bf16(k_bf16 *x, size_t n, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        x[i] = __float2bfloat16((float)(z >> 40) * (1.0f / 16777216.0f) - 0.5f);
    }
}

/* attention index arrays: prefix (p[i] = i*step, i <= n) or constant (p[i] = step, i < n) */
__global__ void fill_seq(int32_t *p, int n, int step, int prefix)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i <= n; i += gridDim.x * blockDim.x) {
        if (prefix) p[i] = i * step;
        else if (i < n) p[i] = step;
    }
}

int grid_for(size_t n)
{
    size_t b = (n + 255) / 256;
    return (int)(b < 8192 ? (b > 0 ? b : 1) : 8192);
}

/* ---- process init ------------------------------------------------------------------- */

/* For a string id of this rank (its host, or host and GPU): the number of lower ranks with
 * the same id and the number of ranks with it. Ids gathered on rank 0 (blocking world
 * messages), answers broadcast. Collective over the world. */
enum { ID_LEN = 128 };
int same_as(const char *id_in, int *idx, int *cnt, ms_err *err)
{
    char id[ID_LEN] = {0};
    snprintf(id, sizeof id, "%s", id_in);
    int n = P.size, rc = 0;
    int64_t *ans = (int64_t *)calloc((size_t)2 * n, sizeof *ans);
    char *all = P.rank == 0 ? (char *)calloc((size_t)n, ID_LEN) : NULL;
    if (!ans || (P.rank == 0 && !all)) {
        free(ans);
        free(all);
        return ms_err_set(err, "rank %d: out of memory (rank list)", P.rank);
    }
    if (P.rank == 0) {
        memcpy(all, id, ID_LEN);
        for (int r = 1; r < n && rc == 0; r++)
            rc = ex_recv_bytes(all + (size_t)r * ID_LEN, ID_LEN, r, TAG_HOST, err);
        for (int r = 0; r < n && rc == 0; r++)
            for (int q = 0; q < n; q++)
                if (!memcmp(all + (size_t)q * ID_LEN, all + (size_t)r * ID_LEN, ID_LEN)) {
                    if (q < r) ans[2 * r]++;
                    ans[2 * r + 1]++;
                }
    } else {
        rc = ex_send_bytes(id, ID_LEN, 0, TAG_HOST, err);
    }
    if (ex_bcast(ans, (size_t)2 * n * sizeof *ans, 0, err) != 0) rc = -1;
    if (rc == 0) {
        *idx = (int)ans[2 * P.rank];
        *cnt = (int)ans[2 * P.rank + 1];
    }
    free(ans);
    free(all);
    return rc;
}

/* More hardware work queues than CUDA's default 8 (before the context exists; a user's
 * setting wins): streams beyond the queues share one, and a comm kernel waiting for a
 * peer would then also hold back the unrelated work queued behind it on another stream. */
void more_connections(void) { setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0); }

/* This machine: the kernel's boot id (shared by the containers of one node, distinct
 * across nodes even where containers all call themselves "localhost") and the host name. */
void host_id(char *buf, size_t len)
{
    char boot[40] = "", name[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    if (gethostname(name, sizeof name - 1) != 0) snprintf(name, sizeof name, "unknown");
    snprintf(buf, len, "%.36s@%.56s", boot, name);
}

/* One-time process init, collective over the world: device choice (local rank mod device
 * count), the comm mode, and in NCCL mode the world communicator (unique id from rank 0,
 * broadcast over MPI). Every rank reaches the same agreement points, so a rank without a
 * device fails together with the others instead of leaving them blocked. */
int proc_init(ms_err *err)
{
    if (P.done) {
        if (!P.ok) ms_err_set(err, "%s", P.fail);
        return P.ok ? 0 : -1;
    }
    P.done = 1;
    P.rank = ex_world_rank();
    P.size = ex_world_size();
    more_connections();
    ms_err e1 = {{0}};
    int local = 0;
    cudaError_t ce = cudaGetDeviceCount(&P.ndev);
    if (ce != cudaSuccess || P.ndev < 1) {
        ms_err_set(&e1, "rank %d: no CUDA device (cudaGetDeviceCount: %s)", P.rank,
                   ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
        local = -1;
        P.ndev = 0;
    }
    /* device = local rank (among the ranks on this host) mod the visible devices */
    char host[ID_LEN - 32] = {0}, id[ID_LEN], bus[24] = "none";
    host_id(host, sizeof host);
    ms_err e2 = {{0}};
    int mpi_rc = same_as(host, &P.local_rank, &P.local_size, &e2);
    if (mpi_rc != 0) {
        if (!local) e1 = e2;
        local = -1;
    }
    if (!local) {
        P.dev = P.local_rank % P.ndev;
        cudaDeviceProp prop;
        if ((ce = cudaSetDevice(P.dev)) != cudaSuccess ||
            (ce = cudaGetDeviceProperties(&prop, P.dev)) != cudaSuccess ||
            (ce = cudaDeviceGetPCIBusId(bus, (int)sizeof bus, P.dev)) != cudaSuccess) {
            ms_err_set(&e1, "rank %d: device %d: %s", P.rank, P.dev, cudaGetErrorString(ce));
            local = -1;
        } else {
            snprintf(P.dev_name, sizeof P.dev_name, "%s", prop.name);
        }
    }
    /* ranks sharing a GPU (same host and PCI bus id; CUDA_VISIBLE_DEVICES-proof) cannot be
     * in one NCCL communicator: then every comm goes through the MPI proxy */
    int dup_idx = 0, dup_cnt = 1;
    snprintf(id, sizeof id, "%s/%s", host, local ? "none" : bus);
    if (mpi_rc == 0 && (mpi_rc = same_as(id, &dup_idx, &dup_cnt, &e2)) != 0) {
        if (!local) e1 = e2;
        local = -1;
    }
    const char *force = getenv("MOESCHED_CUDA_COMM");
    int want_proxy = dup_cnt > 1 || (force && !strcmp(force, "mpi"));
    /* agreement: [0] someone failed, [1] proxy wanted somewhere */
    int64_t v[2] = {local != 0, want_proxy}, out[2] = {1, 0};
    if (mpi_rc == 0 && ex_allreduce_max_i64(v, out, 2, &e2) != 0) {
        if (!local) e1 = e2;
        local = -1;
        out[0] = 1;
    }
    if (local == 0 && out[0]) {
        ms_err_set(&e1, "rank %d: cuda backend setup failed on another rank (its message is "
                        "above)", P.rank);
        local = -1;
    }
    P.proxy = (int)out[1];
    if (!local && !P.proxy) {
        ncclUniqueId uid;
        memset(&uid, 0, sizeof uid);
        ncclResult_t nr = ncclSuccess;
        if (P.rank == 0) nr = ncclGetUniqueId(&uid);
        /* the broadcast happens whatever rank 0's result, so nobody is left waiting */
        int64_t bad = nr != ncclSuccess, anybad = 0;
        if (ex_bcast(&uid, sizeof uid, 0, &e2) != 0 ||
            ex_allreduce_max_i64(&bad, &anybad, 1, &e2) != 0) {
            e1 = e2;
            local = -1;
        } else if (anybad) {
            if (P.rank == 0) nccl_fail(&e1, __FILE__, __LINE__, "ncclGetUniqueId", nr);
            else ms_err_set(&e1, "rank %d: ncclGetUniqueId failed on rank 0", P.rank);
            local = -1;
        } else if ((nr = ncclCommInitRank(&P.world, P.size, uid, P.rank)) != ncclSuccess) {
            nccl_fail(&e1, __FILE__, __LINE__, "ncclCommInitRank", nr);
            local = -1;
        }
    }
    P.ok = local == 0;
    if (!P.ok) {
        snprintf(P.fail, sizeof P.fail, "%s", e1.msg);
        ms_err_set(err, "%s", P.fail);
    }
    return P.ok ? 0 : -1;
}

/* cuBLAS handle for a stream's index i among this context's streams (one per stream: a
 * handle's workspace must not be shared by kernels running concurrently on two streams) */
int blas_for(int i, cublasHandle_t *out, ms_err *err)
{
    if (i >= P.nblas) {
        cublasHandle_t *nb = (cublasHandle_t *)realloc(P.blas, (size_t)(i + 1) * sizeof *nb);
        if (!nb) return ms_err_set(err, "rank %d: out of memory", P.rank);
        P.blas = nb;
        for (int k = P.nblas; k <= i; k++) P.blas[k] = NULL;
        P.nblas = i + 1;
    }
    if (!P.blas[i]) CUBLAS_CALL_CK(err, cublasCreate(&P.blas[i]));
    *out = P.blas[i];
    return 0;
}

/* ---- communicators: one per comm stream name, one per (stream name, group) ------------ */

uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The cache key: stream name and the member list (group < 0: the whole world). */
char *comm_key(const tg_graph *g, const char *name, int group)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int n = P.size;
    if (group >= 0) {
        n = (int)(g->group_off[group + 1] - g->group_off[group]);
        h = fnv1a(h, g->group_ranks + g->group_off[group], (size_t)n * sizeof(int32_t));
    }
    size_t len = strlen(name) + 64;
    char *k = (char *)malloc(len);
    if (k) snprintf(k, len, "%s\x1f%s%d:%016llx", name, group < 0 ? "world" : "g", n,
                    (unsigned long long)h);
    return k;
}

comm_entry *comm_find(const char *key)
{
    for (int i = 0; i < P.ncomms; i++)
        if (!P.comms[i]->dead && !strcmp(P.comms[i]->key, key)) return P.comms[i];
    return NULL;
}

/* Finds or creates (collectively: every rank calls this with the same arguments in the same
 * order) the communicator of (name, group). In NCCL mode the world of a name is a split of
 * the NCCL world with every rank (so ranks keep their world numbers) and a group one is a
 * split of that with color 0 for members and NCCL_SPLIT_NOCOLOR otherwise; in proxy mode
 * MPI duplicates and splits of the world. Cached for the process: calibration runs many
 * small graphs on the same names and groups. */
int comm_get(const tg_graph *g, const char *name, int group, comm_entry **out, ms_err *err)
{
    char *key = comm_key(g, name, group);
    if (!key) return ms_err_set(err, "rank %d: out of memory", P.rank);
    comm_entry *e = comm_find(key);
    if (e) {
        free(key);
        *out = e;
        return 0;
    }
    int member = 1, nmem = P.size;
    if (group >= 0) {
        member = 0;
        nmem = (int)(g->group_off[group + 1] - g->group_off[group]);
        for (uint32_t k = g->group_off[group]; k < g->group_off[group + 1]; k++)
            member |= g->group_ranks[k] == P.rank;
    }
    comm_entry *parent = NULL;
    if (group >= 0 && nmem < P.size) {
        /* the name's world communicator first (the parent of the split) */
        if (comm_get(g, name, -1, &parent, err) != 0) {
            free(key);
            return -1;
        }
    }
    if (P.ncomms == P.cap_comms) {
        int cap = P.cap_comms ? 2 * P.cap_comms : 16;
        comm_entry **nc = (comm_entry **)realloc(P.comms, (size_t)cap * sizeof *nc);
        if (!nc) {
            free(key);
            return ms_err_set(err, "rank %d: out of memory", P.rank);
        }
        P.comms = nc;
        P.cap_comms = cap;
    }
    comm_entry *c = (comm_entry *)calloc(1, sizeof *c);
    if (!c) {
        free(key);
        return ms_err_set(err, "rank %d: out of memory", P.rank);
    }
    c->key = key;
    c->nranks = nmem;
    int rc = 0;
    if (!P.proxy) {
        ncclResult_t r;
        if (!parent)
            r = ncclCommSplit(P.world, 0, P.rank, &c->nccl, NULL);
        else if (!parent->nccl) /* cannot happen unless the parent's split failed here */
            r = ncclInvalidUsage;
        else
            r = ncclCommSplit(parent->nccl, member ? 0 : NCCL_SPLIT_NOCOLOR, P.rank, &c->nccl,
                              NULL);
        if (r != ncclSuccess) rc = nccl_fail(err, __FILE__, __LINE__, "ncclCommSplit", r);
    } else {
        rc = parent || group >= 0 ? ex_comm_split_world(member ? 0 : -1, P.rank, &c->mpi, err)
                                  : ex_comm_dup_world(&c->mpi, err);
    }
    if (rc != 0) {
        free(key);
        free(c);
        return rc;
    }
    P.comms[P.ncomms++] = c;
    *out = c;
    return 0;
}

/* ---- the per-run context ------------------------------------------------------------- */

struct cuda_ctx;

/* comm through the MPI proxy: one host thread per comm stream (shared-GPU mode) */
struct proxy {
    cuda_ctx *c;
    int s;                     /* local stream index */
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t *jobs;            /* ring of task indices, in stream order */
    unsigned long long *tickets; /* the flag value that releases each job's stream */
    uint64_t njobs, next;      /* jobs posted and jobs finished, ever (ring: % cap) */
    int cap;                   /* ring size: the stream's comm tasks in one pass */
    int quit;
    volatile int exited;       /* the thread has left its loop */
    volatile int failed;       /* set once, with err */
    ms_err err;
    volatile unsigned long long *flag; /* mapped pinned: tickets done */
    unsigned long long ticket;         /* last ticket handed out (main thread) */
    cudaStream_t copy;         /* D2H/H2D staging copies */
    char *hsend, *hrecv;       /* pinned staging */
    ex_reqs *reqs;
};

struct cstream {
    uint32_t gs;               /* global stream index */
    const char *name;
    cudaStream_t st;
    int has_comm, has_compute;
    char *arena;               /* compute buffers, sized by the largest task */
    size_t arena_bytes;
    int32_t *offsets_host;     /* FFN per-expert row offsets (host) */
    size_t offsets_cap;
    char *dsend, *drecv;       /* comm buffers */
    size_t send_bytes, recv_bytes;
    int max_xfers;
    cublasHandle_t blas;
    uint32_t last;             /* last task queued this pass, TG_NONE if none */
    proxy *px;
};

struct cuda_ctx {
    const tg_graph *g;
    int rank;
    uint64_t seed;
    int nst;
    cstream *st;               /* indexed by stream_local */
    cudaEvent_t *ev_start, *ev_end; /* by graph task index; NULL for other ranks' tasks */
    unsigned char *queued;     /* by task: enqueued in this pass */
    comm_entry **comm_of;      /* by task: its communicator (comm tasks) */
    comm_entry **used;         /* the distinct communicators this rank uses */
    int nused;
    cudaEvent_t epoch;
    int stuck;                 /* watchdog fired or a proxy failed: abandon at teardown */
    int in_pass;               /* begun and not synchronized: comm may wait on peers */
    unsigned int *abort_flag;  /* mapped pinned, read by wait_flag */
    unsigned long long *flags; /* mapped pinned, one per stream */
};

int task_fail(cuda_ctx *c, uint32_t t, ms_err *err)
{
    char d[256];
    return ms_err_prefix(err, "%s", ex_task_desc(c->g, t, d, sizeof d));
}

cstream *stream_of(cuda_ctx *c, uint32_t t) { return &c->st[c->g->stream_local[c->g->stream[t]]]; }

/* ---- compute ops: shapes, buffers (dry = size only) and launches ---------------------- */

int int_arg(int64_t v, const char *what, int *out, ms_err *err)
{
    if (v < 0 || v > INT32_MAX)
        return ms_err_set(err, "rank %d: %s = %lld is out of the kernels' int range", P.rank,
                          what, (long long)v);
    *out = (int)v;
    return 0;
}

int too_big(double bytes, ms_err *err)
{
    return bytes > MAX_BUF
               ? ms_err_set(err, "rank %d: a buffer of %.3g bytes is beyond any GPU", P.rank,
                            bytes)
               : 0;
}

int op_gemm(cuda_ctx *c, cstream *s, const int64_t *a, lay *L, int dry, ms_err *err)
{
    int m = 0, n = 0, k = 0, count = 0;
    if (int_arg(a[0], "m", &m, err) || int_arg(a[1], "n", &n, err) ||
        int_arg(a[2], "k", &k, err) || int_arg(a[3], "count", &count, err))
        return -1;
    double bm = 2.0 * m * k, bb = 2.0 * k * n, bc = 2.0 * m * n;
    if (too_big(bm + bb + bc, err)) return -1;
    k_bf16 *A = (k_bf16 *)take(L, bm), *B = (k_bf16 *)take(L, bb), *C = (k_bf16 *)take(L, bc);
    if (dry) return 0;
    cudaStream_t st = s->st;
    (void)c;
    for (int i = 0; i < count; i++)
        KERN_CK(err, k_gemm_cuda(s->blas, A, B, C, m, n, k, 0, st, KERR));
    return 0;
}

/* ffn: tokens split evenly over the local experts; gemms == 3 is SwiGLU (the FFN kernel),
 * otherwise `gemms` GEMMs per expert alternating [rows x hidden]·[hidden x inter] and
 * [rows x inter]·[inter x hidden] (the same FLOPs as the simulator counts) */
int op_ffn(cuda_ctx *c, cstream *s, const int64_t *a, lay *L, int dry, ms_err *err)
{
    int T = 0, E = 0, d = 0, f = 0, gm = 0;
    if (int_arg(a[0], "tokens", &T, err) || int_arg(a[1], "experts", &E, err) ||
        int_arg(a[2], "hidden", &d, err) || int_arg(a[3], "inter", &f, err) ||
        int_arg(a[4], "gemms", &gm, err))
        return -1;
    double bx = 2.0 * T * d, bw = 2.0 * E * (double)d * f, bh = 2.0 * 2.0 * T * f;
    if (too_big(2 * bx + 3 * bw + bh, err)) return -1;
    k_bf16 *x = (k_bf16 *)take(L, bx), *y = (k_bf16 *)take(L, bx);
    k_bf16 *w1 = (k_bf16 *)take(L, bw), *w3 = (k_bf16 *)take(L, bw), *w2 = (k_bf16 *)take(L, bw);
    void *ws = take(L, bh);
    if (dry) {
        if ((size_t)E + 1 > s->offsets_cap) s->offsets_cap = (size_t)E + 1;
        return 0;
    }
    (void)c;
    int32_t *off = s->offsets_host;
    for (int e = 0; e <= E; e++) off[e] = (int32_t)((int64_t)T * e / E);
    if (T == 0) return 0;
    cudaStream_t st = s->st;
    if (gm == 3) {
        KERN_CK(err, k_ffn_swiglu_cuda(s->blas, x, off, E, d, f, w1, w3, w2, y, ws,
                                       (size_t)bh, st, KERR));
        return 0;
    }
    k_bf16 *h = (k_bf16 *)ws;
    for (int e = 0; e < E; e++) {
        int rows = off[e + 1] - off[e];
        if (rows == 0) continue;
        const k_bf16 *xe = x + (size_t)off[e] * d;
        k_bf16 *ye = y + (size_t)off[e] * d, *he = h + (size_t)off[e] * f;
        const k_bf16 *wi = w1 + (size_t)e * d * f, *wo = w2 + (size_t)e * f * d;
        for (int i = 0; i < gm; i++) {
            if (i % 2 == 0)
                KERN_CK(err,
                        k_gemm_cuda(s->blas, i == 0 ? xe : ye, wi, he, rows, f, d, 0, st, KERR));
            else
                KERN_CK(err, k_gemm_cuda(s->blas, he, wo, ye, rows, d, f, 0, st, KERR));
        }
    }
    return 0;
}

/* attn: prefill when sq == skv (causal, b packed sequences), decode when sq == 1 (b queries
 * against a KV cache of skv tokens); chunked prefill (1 < sq < skv) is refused */
int op_attn(cuda_ctx *c, cstream *s, const int64_t *a, lay *L, int dry, ms_err *err)
{
    int b = 0, sq = 0, skv = 0, h = 0, hkv = 0, dk = 0, dv = 0;
    if (int_arg(a[0], "b", &b, err) || int_arg(a[1], "sq", &sq, err) ||
        int_arg(a[2], "skv", &skv, err) || int_arg(a[3], "h", &h, err) ||
        int_arg(a[4], "hkv", &hkv, err) || int_arg(a[5], "dk", &dk, err) ||
        int_arg(a[6], "dv", &dv, err))
        return -1;
    (void)c;
    if (h % hkv != 0)
        return ms_err_set(err, "rank %d: attn h = %d is not a multiple of hkv = %d", P.rank, h,
                          hkv);
    k_attn_shape shape = {h, hkv, dk, dv, 0.0f};
    int prefill = sq == skv;
    if (!prefill && sq != 1)
        return ms_err_set(err, "rank %d: attn with 1 < sq (%d) < skv (%d) (chunked prefill) "
                               "has no kernel in the cuda backend", P.rank, sq, skv);
    if (prefill && (double)b * sq > INT32_MAX)
        return ms_err_set(err, "rank %d: attn b*sq over the int range", P.rank);
    double T = prefill ? (double)b * sq : (double)b; /* query rows */
    double Tk = prefill ? (double)b * sq : (double)b * skv; /* key rows */
    double bq = 2.0 * T * h * dk, bo = 2.0 * T * h * dv;
    double bk = 2.0 * Tk * hkv * dk, bv = 2.0 * Tk * hkv * dv;
    if (too_big(bq + bo + bk + bv, err)) return -1;
    k_bf16 *q = (k_bf16 *)take(L, bq), *k = (k_bf16 *)take(L, bk), *v = (k_bf16 *)take(L, bv);
    k_bf16 *o = (k_bf16 *)take(L, bo);
    int32_t *seq = (int32_t *)take(L, 4.0 * (b + 1));
    if (dry) return 0;
    cudaStream_t st = s->st;
    /* the index array is written before the start event, outside the timed bracket:
     * enqueue_compute launches attn_prepare first */
    if (prefill) KERN_CK(err, k_attn_prefill_cuda(q, k, v, seq, b, sq, &shape, o, st, KERR));
    else KERN_CK(err, k_attn_decode_cuda(q, k, v, seq, b, skv, &shape, o, st, KERR));
    return 0;
}

/* The attn task's index array (cu_seqlens or lens), enqueued before its start event. */
int attn_prepare(cstream *s, const int64_t *a, ms_err *err)
{
    lay L = {s->arena, 0};
    int b = (int)a[0], sq = (int)a[1], skv = (int)a[2], h = (int)a[3], hkv = (int)a[4],
        dk = (int)a[5], dv = (int)a[6];
    int prefill = sq == skv;
    double T = prefill ? (double)b * sq : (double)b;
    double Tk = prefill ? (double)b * sq : (double)b * skv;
    take(&L, 2.0 * T * h * dk);
    take(&L, 2.0 * Tk * hkv * dk);
    take(&L, 2.0 * Tk * hkv * dv);
    take(&L, 2.0 * T * h * dv);
    int32_t *seq = (int32_t *)take(&L, 4.0 * (b + 1));
    fill_seq<<<grid_for((size_t)b + 1), 256, 0, s->st>>>(seq, b, prefill ? sq : skv, prefill);
    CUDA_CK(err, cudaGetLastError());
    return 0;
}

/* gate: x[T][hidden]·Wg[hidden][E] -> logits (cuBLAS), then softmax top-k (kernels/gate.cu)
 * with k = min(8, E) */
int op_gate(cuda_ctx *c, cstream *s, const int64_t *a, lay *L, int dry, ms_err *err)
{
    int T = 0, d = 0, E = 0;
    if (int_arg(a[0], "tokens", &T, err) || int_arg(a[1], "hidden", &d, err) ||
        int_arg(a[2], "experts", &E, err))
        return -1;
    (void)c;
    if (E > K_GATE_CUDA_MAX_E)
        return ms_err_set(err, "rank %d: gate over %d experts: the kernel takes at most %d",
                          P.rank, E, K_GATE_CUDA_MAX_E);
    int k = E < GATE_TOPK ? E : GATE_TOPK;
    double bx = 2.0 * T * d, bw = 2.0 * (double)d * E, bl = 2.0 * T * E;
    if (too_big(bx + bw + bl + 8.0 * T * k, err)) return -1;
    k_bf16 *x = (k_bf16 *)take(L, bx), *w = (k_bf16 *)take(L, bw), *lg = (k_bf16 *)take(L, bl);
    int32_t *idx = (int32_t *)take(L, 4.0 * T * k);
    float *wt = (float *)take(L, 4.0 * T * k);
    if (dry) return 0;
    k_gate_params p;
    memset(&p, 0, sizeof p);
    p.n_experts = E;
    p.topk = k;
    p.score = K_GATE_SOFTMAX;
    p.renorm = 1;
    p.scale = 1.0f;
    p.bias = NULL;
    p.n_groups = 1;
    p.topk_groups = 1;
    p.group_score = K_GROUP_MAX;
    KERN_CK(err, k_gemm_cuda(s->blas, x, w, lg, T, E, d, 0, s->st, KERR));
    KERN_CK(err, k_gate_cuda(lg, T, &p, idx, wt, s->st, KERR));
    return 0;
}

int op_delay(cstream *s, double us, ms_err *err)
{
    if (!(us > 0)) return 0;
    spin_ns<<<1, 1, 0, s->st>>>((uint64_t)(us * 1e3 + 0.5));
    CUDA_CK(err, cudaGetLastError());
    return 0;
}

/* Runs (or, dry, sizes) compute task t on its stream's arena. */
int compute_task(cuda_ctx *c, uint32_t t, int dry, size_t *need, ms_err *err)
{
    const tg_graph *g = c->g;
    cstream *s = stream_of(c, t);
    const int64_t *a = tg_task_args(g, t);
    lay L = {dry ? NULL : s->arena, 0};
    int rc;
    switch ((tg_op)g->op[t]) {
    case TG_OP_DELAY: rc = dry ? 0 : op_delay(s, tg_task_delay_us(g, t), err); break;
    case TG_OP_GEMM: rc = op_gemm(c, s, a, &L, dry, err); break;
    case TG_OP_FFN: rc = op_ffn(c, s, a, &L, dry, err); break;
    case TG_OP_ATTN: rc = op_attn(c, s, a, &L, dry, err); break;
    case TG_OP_GATE: rc = op_gate(c, s, a, &L, dry, err); break;
    default:
        rc = ms_err_set(err, "rank %d: op %s is not a compute op", P.rank,
                        tg_op_get((tg_op)g->op[t])->name);
    }
    if (need) *need = L.used;
    return rc;
}

/* ---- comm ops ----------------------------------------------------------------------- */

/* bytes of the send and receive sides of comm task t (per rank) */
void comm_sizes(const tg_graph *g, uint32_t t, size_t *send, size_t *recv, int *nx)
{
    *send = *recv = 0;
    *nx = 0;
    if (g->op[t] == TG_OP_XCHG) {
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
            size_t b = align_up((size_t)g->xfer_bytes[x]);
            if (g->xfer_send[x]) *send += b;
            else *recv += b;
            (*nx)++;
        }
        return;
    }
    const int64_t *a = tg_task_args(g, t);
    int grp = (int)a[0];
    size_t n = g->group_off[grp + 1] - g->group_off[grp];
    size_t piece = align_up((size_t)a[1]); /* multiple of 4: bf16 and fp32 counts fit */
    switch ((tg_op)g->op[t]) {
    case TG_OP_ALLREDUCE: *send = *recv = piece; break;
    case TG_OP_ALLGATHER: *send = piece, *recv = n * piece; break;
    default: *send = n * piece, *recv = piece; break; /* reducescatter */
    }
    *nx = 2;
}

int nccl_comm(cuda_ctx *c, uint32_t t, ms_err *err)
{
    const tg_graph *g = c->g;
    cstream *s = stream_of(c, t);
    ncclComm_t comm = c->comm_of[t]->nccl;
    if (!comm) return ms_err_set(err, "rank %d: no NCCL communicator for this task", P.rank);
    if (g->op[t] == TG_OP_XCHG) {
        size_t so = 0, ro = 0;
        ncclResult_t first = ncclSuccess;
        const char *what = "ncclGroupStart";
        NCCL_CK(err, ncclGroupStart());
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1] && first == ncclSuccess; x++) {
            size_t b = (size_t)g->xfer_bytes[x];
            if (b == 0) continue;
            if (g->xfer_send[x]) {
                first = ncclSend(s->dsend + so, b, ncclInt8, g->xfer_peer[x], comm, s->st);
                what = "ncclSend";
                so += align_up(b);
            } else {
                first = ncclRecv(s->drecv + ro, b, ncclInt8, g->xfer_peer[x], comm, s->st);
                what = "ncclRecv";
                ro += align_up(b);
            }
        }
        ncclResult_t end = ncclGroupEnd(); /* always closes the group */
        if (first != ncclSuccess) return nccl_fail(err, __FILE__, __LINE__, what, first);
        if (end != ncclSuccess) return nccl_fail(err, __FILE__, __LINE__, "ncclGroupEnd", end);
        return 0;
    }
    size_t bytes = (size_t)tg_task_args(g, t)[1];
    size_t cnt = (bytes + 1) / 2; /* bf16 elements */
    switch ((tg_op)g->op[t]) {
    case TG_OP_ALLREDUCE:
        NCCL_CK(err, ncclAllReduce(s->dsend, s->drecv, cnt, ncclBfloat16, ncclSum, comm, s->st));
        break;
    case TG_OP_ALLGATHER:
        NCCL_CK(err, ncclAllGather(s->dsend, s->drecv, bytes, ncclInt8, comm, s->st));
        break;
    case TG_OP_REDUCESCATTER:
        NCCL_CK(err, ncclReduceScatter(s->dsend, s->drecv, cnt, ncclBfloat16, ncclSum, comm,
                                       s->st));
        break;
    default: return ms_err_set(err, "rank %d: not a comm op", P.rank);
    }
    return 0;
}

/* ---- the MPI proxy (ranks sharing a GPU) ---------------------------------------------- */

int proxy_fail(proxy *p, uint32_t t, const ms_err *e)
{
    char d[256];
    ms_err_set(&p->err, "%s: %s", ex_task_desc(p->c->g, t, d, sizeof d), e->msg);
    __atomic_store_n(&p->failed, 1, __ATOMIC_RELEASE);
    __atomic_store_n(p->c->abort_flag, 1u, __ATOMIC_RELEASE); /* releases every wait_flag */
    return -1;
}

int aborted(cuda_ctx *c) { return __atomic_load_n(c->abort_flag, __ATOMIC_ACQUIRE) != 0; }

/* One comm task on the host: once its start event has completed (the stream reached it),
 * stage the device send buffer to the host, run the MPI exchange or collective, stage the
 * result back, then release the GPU stream by bumping the flag. */
int proxy_job(proxy *p, uint32_t t, unsigned long long ticket, ms_err *e)
{
    cuda_ctx *c = p->c;
    const tg_graph *g = c->g;
    cstream *s = &c->st[p->s];
    for (;;) {
        cudaError_t q = cudaEventQuery(c->ev_start[t]);
        if (q == cudaSuccess) break;
        if (q != cudaErrorNotReady)
            return fail_at(e, __FILE__, __LINE__, "cudaEventQuery", "CUDA", cudaGetErrorString(q));
        if (aborted(c)) return ms_err_set(e, "rank %d: aborted", P.rank);
        nap_us(20);
    }
    size_t sb, rb;
    int nx;
    comm_sizes(g, t, &sb, &rb, &nx);
    if (sb) {
        CUDA_CK(e, cudaMemcpyAsync(p->hsend, s->dsend, sb, cudaMemcpyDeviceToHost, p->copy));
        CUDA_CK(e, cudaStreamSynchronize(p->copy));
    }
    ex_comm *comm = c->comm_of[t]->mpi;
    if (!comm) return ms_err_set(e, "rank %d: no MPI communicator for this task", P.rank);
    if (g->op[t] == TG_OP_XCHG) {
        size_t so = 0, ro = 0;
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
            size_t b = (size_t)g->xfer_bytes[x];
            if (b == 0) continue;
            int rc = g->xfer_send[x]
                         ? ex_isend(comm, p->hsend + so, b, g->xfer_peer[x], TAG_DATA, p->reqs, e)
                         : ex_irecv(comm, p->hrecv + ro, b, g->xfer_peer[x], TAG_DATA, p->reqs, e);
            if (rc != 0) {
                ex_reqs_abandon(p->reqs);
                return -1;
            }
            if (g->xfer_send[x]) so += align_up(b);
            else ro += align_up(b);
        }
    } else {
        size_t bytes = (size_t)tg_task_args(g, t)[1];
        size_t n4 = (bytes + 3) / 4; /* MPI has no bf16: fp32 sums over the same bytes */
        int rc;
        switch ((tg_op)g->op[t]) {
        case TG_OP_ALLREDUCE:
            rc = ex_iallreduce_f32(comm, (float *)p->hsend, (float *)p->hrecv, n4, p->reqs, e);
            break;
        case TG_OP_ALLGATHER:
            rc = ex_iallgather(comm, p->hsend, bytes, p->hrecv, p->reqs, e);
            break;
        default:
            rc = ex_ireducescatter_f32(comm, (float *)p->hsend, (float *)p->hrecv, n4, p->reqs, e);
        }
        if (rc != 0) {
            ex_reqs_abandon(p->reqs);
            return -1;
        }
    }
    for (;;) {
        int done = 0;
        if (ex_reqs_test(p->reqs, &done, e) != 0) return -1;
        if (done) break;
        if (aborted(c)) {
            ex_reqs_abandon(p->reqs);
            return ms_err_set(e, "rank %d: aborted while waiting for MPI", P.rank);
        }
        nap_us(5);
    }
    if (rb) {
        CUDA_CK(e, cudaMemcpyAsync(s->drecv, p->hrecv, rb, cudaMemcpyHostToDevice, p->copy));
        CUDA_CK(e, cudaStreamSynchronize(p->copy));
    }
    __atomic_store_n(p->flag, ticket, __ATOMIC_RELEASE);
    return 0;
}

void *proxy_main(void *arg)
{
    proxy *p = (proxy *)arg;
    ms_err e = {{0}};
    cudaError_t ce = cudaSetDevice(P.dev); /* the device is per host thread */
    if (ce != cudaSuccess) {
        fail_at(&e, __FILE__, __LINE__, "cudaSetDevice", "CUDA", cudaGetErrorString(ce));
        pthread_mutex_lock(&p->mu);
        snprintf(p->err.msg, sizeof p->err.msg, "%s", e.msg);
        __atomic_store_n(&p->failed, 1, __ATOMIC_RELEASE);
        __atomic_store_n(p->c->abort_flag, 1u, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&p->mu);
    }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->next >= p->njobs) pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit && p->next >= p->njobs) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        uint32_t t = p->jobs[p->next % (uint64_t)p->cap];
        unsigned long long ticket = p->tickets[p->next % (uint64_t)p->cap];
        pthread_mutex_unlock(&p->mu);
        /* after an abort the graph may be gone: the job is dropped untouched */
        if (!p->failed && !aborted(p->c) && proxy_job(p, t, ticket, &e) != 0 && !p->failed &&
            !aborted(p->c))
            proxy_fail(p, t, &e);
        pthread_mutex_lock(&p->mu);
        p->next++;
        pthread_mutex_unlock(&p->mu);
    }
    __atomic_store_n(&p->exited, 1, __ATOMIC_RELEASE);
    return NULL;
}

int proxy_enqueue(cuda_ctx *c, uint32_t t, ms_err *err)
{
    cstream *s = stream_of(c, t);
    proxy *p = s->px;
    if (p->failed) return ms_err_set(err, "%s", p->err.msg);
    pthread_mutex_lock(&p->mu);
    /* room in the ring: after a pass the proxy may still be finishing its last job's
     * bookkeeping (its stream was already released) */
    while (p->njobs - p->next >= (uint64_t)p->cap && !p->failed && !aborted(c)) {
        pthread_mutex_unlock(&p->mu);
        nap_us(10);
        pthread_mutex_lock(&p->mu);
    }
    if (p->failed || aborted(c)) {
        pthread_mutex_unlock(&p->mu);
        return ms_err_set(err, "rank %d: the comm proxy of stream %s failed: %s", P.rank,
                          s->name, p->err.msg);
    }
    unsigned long long ticket = ++p->ticket;
    p->jobs[p->njobs % (uint64_t)p->cap] = t;
    p->tickets[p->njobs % (uint64_t)p->cap] = ticket;
    p->njobs++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    wait_flag<<<1, 1, 0, s->st>>>(p->flag, ticket, c->abort_flag);
    CUDA_CK(err, cudaGetLastError());
    return 0;
}

/* ---- the backend table ----------------------------------------------------------------- */

int cu_device_name(char *buf, size_t len, ms_err *err)
{
    int n = 0, dev = 0;
    more_connections();
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess || n < 1)
        return ms_err_set(err, "no CUDA device (cudaGetDeviceCount: %s)",
                          ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
    cudaDeviceProp prop;
    if ((ce = cudaGetDevice(&dev)) != cudaSuccess ||
        (ce = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess)
        return ms_err_set(err, "cudaGetDeviceProperties: %s", cudaGetErrorString(ce));
    device_key(prop.name, buf, len);
    return 0;
}

int cu_teardown_impl(cuda_ctx *c);

int setup_streams(cuda_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    for (uint32_t gs = 0; gs < g->nstreams; gs++) {
        if (g->stream_rank[gs] != c->rank) continue;
        cstream *s = &c->st[g->stream_local[gs]];
        s->gs = gs;
        s->name = tg_str(g, g->stream_name[gs]);
        s->last = TG_NONE;
        CUDA_CK(err, cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking));
    }
    /* sizes: the largest task of each stream */
    size_t *need = (size_t *)calloc((size_t)c->nst + 1, sizeof *need);
    if (!need) return ms_err_set(err, "rank %d: out of memory", c->rank);
    int rc = 0;
    for (uint32_t t = 0; t < g->ntasks && rc == 0; t++) {
        if (g->rank[t] != c->rank) continue;
        cstream *s = stream_of(c, t);
        int li = g->stream_local[g->stream[t]];
        tg_kind kind = tg_task_kind(g, t);
        if (kind == TG_KIND_XCHG || kind == TG_KIND_COLL) {
            size_t sb, rb;
            int nx;
            comm_sizes(g, t, &sb, &rb, &nx);
            if (sb > s->send_bytes) s->send_bytes = sb;
            if (rb > s->recv_bytes) s->recv_bytes = rb;
            if (nx > s->max_xfers) s->max_xfers = nx;
            s->has_comm++;
        } else {
            size_t n = 0;
            s->has_compute = 1;
            if (compute_task(c, t, 1, &n, err) != 0) rc = task_fail(c, t, err);
            if (n > need[li]) need[li] = n;
        }
    }
    for (int i = 0; i < c->nst && rc == 0; i++) {
        cstream *s = &c->st[i];
        if (!s->st) continue;
        char what[160];
        if (need[i]) {
            cudaError_t ce = cudaMalloc((void **)&s->arena, need[i]);
            if (ce != cudaSuccess) {
                snprintf(what, sizeof what, "cudaMalloc(%zu bytes: stream %s's largest task)",
                         need[i], s->name);
                rc = fail_at(err, __FILE__, __LINE__, what, "CUDA", cudaGetErrorString(ce));
                break;
            }
            s->arena_bytes = need[i];
            size_t nel = need[i] / 2;
            fill_bf16<<<grid_for(nel), 256, 0, s->st>>>((k_bf16 *)s->arena, nel,
                                                         c->seed + 0x1000u * (uint64_t)i);
            cudaError_t le = cudaGetLastError();
            if (le != cudaSuccess) {
                rc = fail_at(err, __FILE__, __LINE__, "fill_bf16<<<>>>", "CUDA",
                             cudaGetErrorString(le));
                break;
            }
        }
        if (s->offsets_cap) {
            s->offsets_host = (int32_t *)calloc(s->offsets_cap, sizeof(int32_t));
            if (!s->offsets_host) rc = ms_err_set(err, "rank %d: out of memory", c->rank);
        }
        if (rc == 0 && s->has_compute && blas_for(i, &s->blas, err) != 0) rc = -1;
        /* one small GEMM per handle now, so that cuBLAS sets up its workspace on this
         * stream before any NCCL kernel is in flight (an allocation may synchronize) */
        if (rc == 0 && s->blas && s->arena_bytes >= 3 * 64 * 64 * 2) {
            k_cuda_err ke = {{0}};
            k_bf16 *a0 = (k_bf16 *)s->arena;
            if (k_gemm_cuda(s->blas, a0, a0 + 64 * 64, a0 + 2 * 64 * 64, 64, 64, 64, 0, s->st,
                            &ke) != K_OK)
                rc = ms_err_set(err, "rank %d: %s", c->rank, ke.msg);
        }
        if (rc == 0 && s->has_comm) {
            size_t sb = s->send_bytes ? s->send_bytes : ALIGN;
            size_t rb = s->recv_bytes ? s->recv_bytes : ALIGN;
            cudaError_t ce = cudaMalloc((void **)&s->dsend, sb);
            if (ce == cudaSuccess) ce = cudaMalloc((void **)&s->drecv, rb);
            if (ce == cudaSuccess) ce = cudaMemsetAsync(s->dsend, 0, sb, s->st);
            if (ce != cudaSuccess) {
                snprintf(what, sizeof what,
                         "cudaMalloc(comm buffers of stream %s: %zu + %zu bytes)",
                         s->name, sb, rb);
                rc = fail_at(err, __FILE__, __LINE__, what, "CUDA", cudaGetErrorString(ce));
            }
        }
    }
    free(need);
    if (rc != 0) return rc;
    for (int i = 0; i < c->nst; i++)
        if (c->st[i].st) CUDA_CK(err, cudaStreamSynchronize(c->st[i].st));
    return 0;
}

int setup_events(cuda_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    size_t n = (size_t)g->ntasks + 1;
    c->ev_start = (cudaEvent_t *)calloc(n, sizeof(cudaEvent_t));
    c->ev_end = (cudaEvent_t *)calloc(n, sizeof(cudaEvent_t));
    c->queued = (unsigned char *)calloc(n, 1);
    c->comm_of = (comm_entry **)calloc(n, sizeof(comm_entry *));
    c->used = (comm_entry **)calloc(n, sizeof(comm_entry *));
    if (!c->ev_start || !c->ev_end || !c->queued || !c->comm_of || !c->used)
        return ms_err_set(err, "rank %d: out of memory for %u tasks", c->rank, g->ntasks);
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->rank[t] != c->rank) continue;
        CUDA_CK(err, cudaEventCreate(&c->ev_start[t]));
        CUDA_CK(err, cudaEventCreate(&c->ev_end[t]));
    }
    CUDA_CK(err, cudaEventCreate(&c->epoch));
    return 0;
}

/* Communicators in the same order on every rank: the world of each comm stream name, then
 * each (stream name, group) with collectives, in order of first appearance in the graph.
 * Keeps calling after a local failure, so that the other ranks are not left waiting. */
int setup_comms(cuda_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    int rc = 0;
    for (uint32_t t = 0; t < g->ntasks; t++) {
        const char *name;
        int group;
        if (!ex_task_comm(g, t, &name, &group)) continue;
        if (group >= 0 && (int)(g->group_off[group + 1] - g->group_off[group]) == P.size)
            group = -1; /* a group of everyone is the name's world */
        comm_entry *e = NULL;
        ms_err e2 = {{0}};
        if (comm_get(g, name, group, &e, &e2) != 0) {
            if (rc == 0) *err = e2;
            rc = -1;
            continue;
        }
        if (g->rank[t] != c->rank) continue;
        c->comm_of[t] = e;
        int seen = 0;
        for (int i = 0; i < c->nused && !seen; i++) seen = c->used[i] == e;
        if (!seen) c->used[c->nused++] = e;
    }
    return rc;
}

/* Graph properties the backend relies on: dependencies earlier in the file than their
 * dependents, and both ends of every transfer on streams of the same name (one
 * communicator per stream name; the builders' a2e/e2a streams are). */
int check_pairs(cuda_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    /* cudaStreamWaitEvent waits for an event's last record: a dependency must be issued
     * before its dependent, and the walker issues in file order */
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->rank[t] != c->rank) continue;
        for (uint32_t k = g->dep_off[t]; k < g->dep_off[t + 1]; k++) {
            if (g->dep[k] < t) continue;
            char d1[256], d2[256];
            return ms_err_set(err, "rank %d: %s depends on %s, later in the file: the cuda "
                                   "backend needs every dependency earlier in the file than "
                                   "its dependent (CUDA events are waited for as last "
                                   "recorded)", c->rank, ex_task_desc(g, t, d1, sizeof d1),
                              ex_task_desc(g, g->dep[k], d2, sizeof d2));
        }
    }
    for (uint32_t t = 0; t < g->ntasks; t++) {
        if (g->rank[t] != c->rank || g->op[t] != TG_OP_XCHG) continue;
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++) {
            uint32_t u = g->xfer_task[g->xfer_match[x]];
            if (g->stream_name[g->stream[u]] == g->stream_name[g->stream[t]] ||
                !strcmp(tg_str(g, g->stream_name[g->stream[u]]),
                        tg_str(g, g->stream_name[g->stream[t]])))
                continue;
            char d1[256], d2[256];
            return ms_err_set(err, "rank %d: %s exchanges with %s: the cuda backend needs both "
                                   "ends of a transfer on streams of the same name (one NCCL "
                                   "communicator per stream name)", c->rank,
                              ex_task_desc(g, t, d1, sizeof d1), ex_task_desc(g, u, d2, sizeof d2));
        }
    }
    return 0;
}

/* Connects every communicator of the run before the first pass. NCCL connects peers
 * lazily inside ncclGroupEnd / the first collective, blocking the host until the peers get
 * there too, and a pass issues one stream's comm while another stream's peers may still be
 * connecting. Here, in one order shared by every rank (comm stream names by first
 * appearance in the graph, then collective instances by number), each name's communicator
 * exchanges one byte with every peer this rank talks to on it (one group, symmetric), and
 * each (communicator, collective op) runs once on 64 bf16 elements. */
int warm_p2p(cuda_ctx *c, cstream *s, int *peer, ms_err *err)
{
    const tg_graph *g = c->g;
    memset(peer, 0, (size_t)P.size * sizeof(int));
    comm_entry *world = NULL;
    for (uint32_t t = g->stream_head[s->gs]; t != TG_NONE; t = g->next_in_stream[t]) {
        if (g->op[t] != TG_OP_XCHG) continue;
        world = c->comm_of[t];
        for (uint32_t x = g->xfer_off[t]; x < g->xfer_off[t + 1]; x++)
            if (g->xfer_peer[x] != c->rank) peer[g->xfer_peer[x]] = 1;
    }
    if (!world || !world->nccl) return 0;
    ncclResult_t first = ncclSuccess;
    NCCL_CK(err, ncclGroupStart());
    for (int r = 0; r < P.size && first == ncclSuccess; r++) {
        if (!peer[r]) continue;
        first = ncclSend(s->dsend, 1, ncclInt8, r, world->nccl, s->st);
        if (first == ncclSuccess) first = ncclRecv(s->drecv, 1, ncclInt8, r, world->nccl, s->st);
    }
    ncclResult_t end = ncclGroupEnd();
    if (first != ncclSuccess) return nccl_fail(err, __FILE__, __LINE__, "ncclSend/ncclRecv", first);
    if (end != ncclSuccess) return nccl_fail(err, __FILE__, __LINE__, "ncclGroupEnd", end);
    CUDA_CK(err, cudaStreamSynchronize(s->st));
    return 0;
}

int warm_coll(cuda_ctx *c, uint32_t t, comm_entry *e, ms_err *err);

int warm_comms(cuda_ctx *c, ms_err *err)
{
    const tg_graph *g = c->g;
    int *peer = (int *)calloc((size_t)P.size + 1, sizeof(int));
    uint32_t *names = (uint32_t *)calloc((size_t)g->nstreams + 1, sizeof(uint32_t));
    if (!peer || !names) {
        free(peer);
        free(names);
        return ms_err_set(err, "rank %d: out of memory", c->rank);
    }
    int rc = 0, nn = 0;
    for (uint32_t t = 0; t < g->ntasks && rc == 0; t++) {
        if (g->op[t] != TG_OP_XCHG) continue;
        const char *name = tg_str(g, g->stream_name[g->stream[t]]);
        int seen = 0;
        for (int i = 0; i < nn && !seen; i++) seen = !strcmp(tg_str(g, names[i]), name);
        if (seen) continue;
        names[nn++] = g->stream_name[g->stream[t]];
        for (int i = 0; i < c->nst && rc == 0; i++)
            if (c->st[i].st && c->st[i].has_comm && !strcmp(c->st[i].name, name))
                rc = warm_p2p(c, &c->st[i], peer, err);
    }
    free(peer);
    free(names);
    if (rc != 0) return rc;
    uint32_t *done = (uint32_t *)calloc((size_t)g->ncoll + 1, sizeof(uint32_t));
    if (!done) return ms_err_set(err, "rank %d: out of memory", c->rank);
    uint32_t ndone = 0; /* tasks whose (communicator, op) was warmed */
    for (uint32_t i = 0; i < g->ncoll && rc == 0; i++) {
        uint32_t t = TG_NONE;
        for (uint32_t k = g->coll_off[i]; k < g->coll_off[i + 1]; k++)
            if (g->rank[g->coll_task[k]] == c->rank) t = g->coll_task[k];
        if (t == TG_NONE) continue;
        comm_entry *e = c->comm_of[t];
        if (!e || !e->nccl) continue;
        int seen = 0;
        for (uint32_t j = 0; j < ndone && !seen; j++)
            seen = c->comm_of[done[j]] == e && g->op[done[j]] == g->op[t];
        if (seen) continue;
        done[ndone++] = t;
        rc = warm_coll(c, t, e, err);
    }
    free(done);
    return rc;
}

int warm_coll(cuda_ctx *c, uint32_t t, comm_entry *e, ms_err *err)
{
    const tg_graph *g = c->g;
    {
        cstream *s = stream_of(c, t);
        switch ((tg_op)g->op[t]) {
        case TG_OP_ALLREDUCE:
            NCCL_CK(err, ncclAllReduce(s->dsend, s->drecv, 64, ncclBfloat16, ncclSum, e->nccl,
                                       s->st));
            break;
        case TG_OP_ALLGATHER:
            NCCL_CK(err, ncclAllGather(s->dsend, s->drecv, 128, ncclInt8, e->nccl, s->st));
            break;
        default:
            NCCL_CK(err, ncclReduceScatter(s->dsend, s->drecv, 64, ncclBfloat16, ncclSum, e->nccl,
                                           s->st));
        }
        CUDA_CK(err, cudaStreamSynchronize(s->st));
    }
    return 0;
}

int setup_proxies(cuda_ctx *c, ms_err *err)
{
    CUDA_CK(err, cudaHostAlloc((void **)&c->abort_flag, sizeof(unsigned int), cudaHostAllocMapped));
    *c->abort_flag = 0;
    CUDA_CK(err, cudaHostAlloc((void **)&c->flags, (size_t)c->nst * sizeof(unsigned long long) + 8,
                               cudaHostAllocMapped));
    memset(c->flags, 0, (size_t)c->nst * sizeof(unsigned long long) + 8);
    if (!P.proxy) return 0;
    for (int i = 0; i < c->nst; i++) {
        cstream *s = &c->st[i];
        if (!s->st || !s->has_comm) continue;
        proxy *p = (proxy *)calloc(1, sizeof *p);
        if (!p) return ms_err_set(err, "rank %d: out of memory", c->rank);
        pthread_mutex_init(&p->mu, NULL);
        pthread_cond_init(&p->cv, NULL);
        s->px = p;
        p->c = c;
        p->s = i;
        p->flag = &c->flags[i];
        p->cap = s->has_comm;
        p->jobs = (uint32_t *)calloc((size_t)p->cap, sizeof(uint32_t));
        p->tickets = (unsigned long long *)calloc((size_t)p->cap, sizeof(unsigned long long));
        p->reqs = ex_reqs_create(s->max_xfers + 2);
        if (!p->jobs || !p->tickets || !p->reqs)
            return ms_err_set(err, "rank %d: out of memory", c->rank);
        CUDA_CK(err, cudaStreamCreateWithFlags(&p->copy, cudaStreamNonBlocking));
        CUDA_CK(err, cudaHostAlloc((void **)&p->hsend, s->send_bytes ? s->send_bytes : ALIGN, 0));
        CUDA_CK(err, cudaHostAlloc((void **)&p->hrecv, s->recv_bytes ? s->recv_bytes : ALIGN, 0));
        int e = pthread_create(&p->th, NULL, proxy_main, p);
        if (e != 0)
            return ms_err_set(err, "rank %d: pthread_create (proxy of stream %s): %s", c->rank,
                              s->name, strerror(e));
        p->started = 1;
    }
    return 0;
}

/* Every rank learns whether a setup step (`what`) failed anywhere: -1 with err set (this
 * rank's own message, or which step failed elsewhere) unless it succeeded on all. rc: this
 * rank's result, its err already set when nonzero. Collective. */
int agree(int rc, int rank, const char *what, ms_err *err)
{
    ms_err e2 = {{0}};
    int64_t bad = rc != 0, anybad = 1;
    if (ex_allreduce_max_i64(&bad, &anybad, 1, &e2) != 0) {
        if (rc == 0) *err = e2;
        return -1;
    }
    if (rc != 0) return -1;
    if (anybad) return ms_err_set(err, "rank %d: %s failed on another rank", rank, what);
    return 0;
}

int cu_setup(const ex_setup *su, void **out, ms_err *err)
{
    *out = NULL;
    if (su->payload)
        return ms_err_set(err, "rank %d: the cuda backend runs synthetic data only (check "
                               "mode runs on the host backend)", su->rank);
    if (proc_init(err) != 0) return -1; /* agreed: every rank fails here together */
    const tg_graph *g = su->g;
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    int rc = 0;
    if (c) {
        c->g = g;
        c->rank = su->rank;
        c->seed = su->seed;
        for (uint32_t gs = 0; gs < g->nstreams; gs++)
            if (g->stream_rank[gs] == c->rank && (int)g->stream_local[gs] + 1 > c->nst)
                c->nst = (int)g->stream_local[gs] + 1;
        c->st = (cstream *)calloc((size_t)c->nst + 1, sizeof(cstream));
    }
    if (!c || !c->st) {
        free(c);
        c = NULL;
        rc = ms_err_set(err, "rank %d: out of memory", su->rank);
    }
    *out = c;
    /* local resources first; then every rank agrees before the collective comm setup */
    cudaError_t ce = cudaSetDevice(P.dev);
    if (rc == 0 && ce != cudaSuccess)
        rc = fail_at(err, __FILE__, __LINE__, "cudaSetDevice", "CUDA", cudaGetErrorString(ce));
    if (rc == 0) rc = check_pairs(c, err);
    if (rc == 0) rc = setup_events(c, err);
    if (rc == 0) rc = setup_streams(c, err);
    if (rc == 0) rc = setup_proxies(c, err);
    if (agree(rc, c->rank, "cuda backend setup", err) != 0) return -1;
    /* the communicators are made collectively; agree again before using them */
    if (agree(setup_comms(c, err), c->rank, "communicator setup", err) != 0) return -1;
    return P.proxy ? 0 : warm_comms(c, err);
}

int cu_begin(void *ctx, ms_err *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (c->stuck) return ms_err_set(err, "rank %d: the previous pass was abandoned", c->rank);
    CUDA_CK(err, cudaSetDevice(P.dev));
    for (int i = 0; i < c->nst; i++) {
        cstream *s = &c->st[i];
        if (!s->st) continue;
        CUDA_CK(err, cudaStreamSynchronize(s->st));
        s->last = TG_NONE;
    }
    memset(c->queued, 0, (size_t)c->g->ntasks + 1);
    /* the epoch: recorded on an idle device, so it completes now (the walker read its
     * clock just before) */
    cudaStream_t st0 = 0; /* the legacy stream only on a rank without streams */
    for (int i = 0; i < c->nst && !st0; i++) st0 = c->st[i].st;
    CUDA_CK(err, cudaEventRecord(c->epoch, st0));
    CUDA_CK(err, cudaEventSynchronize(c->epoch));
    c->in_pass = 1;
    return 0;
}

int enqueue_common(cuda_ctx *c, uint32_t t, int comm, ms_err *err)
{
    const tg_graph *g = c->g;
    if (g->rank[t] != c->rank)
        return ms_err_set(err, "rank %d: task index %u belongs to rank %d", c->rank, t, g->rank[t]);
    cstream *s = stream_of(c, t);
    if (!comm && g->op[t] == TG_OP_ATTN && attn_prepare(s, tg_task_args(g, t), err) != 0)
        return task_fail(c, t, err);
    CUDA_CK(err, cudaEventRecord(c->ev_start[t], s->st));
    int rc;
    if (!comm) rc = compute_task(c, t, 0, NULL, err);
    else if (s->px) rc = proxy_enqueue(c, t, err);
    else rc = nccl_comm(c, t, err);
    if (rc != 0) return task_fail(c, t, err);
    CUDA_CK(err, cudaEventRecord(c->ev_end[t], s->st));
    c->queued[t] = 1;
    s->last = t;
    return 0;
}

int cu_enqueue_compute(void *ctx, uint32_t t, ms_err *err)
{
    return enqueue_common((cuda_ctx *)ctx, t, 0, err);
}

int cu_enqueue_comm(void *ctx, uint32_t t, ms_err *err)
{
    return enqueue_common((cuda_ctx *)ctx, t, 1, err);
}

/* The completion event is recorded by enqueue itself (right after the task's work on its
 * stream); record only checks that the task was queued in this pass. */
int cu_record(void *ctx, uint32_t t, ms_err *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (t >= c->g->ntasks || !c->queued[t])
        return ms_err_set(err, "rank %d: record of task index %u, not queued in this pass",
                          c->rank, t);
    return 0;
}

int cu_wait(void *ctx, uint32_t stream, uint32_t dep, ms_err *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    const tg_graph *g = c->g;
    if (stream >= g->nstreams || g->stream_rank[stream] != c->rank || dep >= g->ntasks ||
        !c->queued[dep])
        return ms_err_set(err, "rank %d: wait on task index %u, not queued in this pass",
                          c->rank, dep);
    CUDA_CK(err, cudaStreamWaitEvent(c->st[g->stream_local[stream]].st, c->ev_end[dep], 0));
    return 0;
}

/* 1 done, 0 not yet, -1 error (err set) */
int event_done(cudaEvent_t e, ms_err *err)
{
    cudaError_t q = cudaEventQuery(e);
    if (q == cudaSuccess) return 1;
    if (q == cudaErrorNotReady) return 0;
    return fail_at(err, __FILE__, __LINE__, "cudaEventQuery", "CUDA", cudaGetErrorString(q));
}

/* Why stream s has not finished: the first unfinished task, and what it waits for. */
void describe_stuck(cuda_ctx *c, cstream *s, char *buf, size_t len)
{
    const tg_graph *g = c->g;
    ms_err e;
    uint32_t t = g->stream_head[s->gs];
    while (t != TG_NONE && event_done(c->ev_end[t], &e) == 1) t = g->next_in_stream[t];
    if (t == TG_NONE) {
        snprintf(buf, len, "stream %s: no task left (device busy)", s->name);
        return;
    }
    const char *label = tg_str(g, g->label[t]);
    int n = snprintf(buf, len, "stream %s is stuck on task %lld (%s): ", s->name,
                     (long long)g->id[t], label ? label : tg_op_get((tg_op)g->op[t])->name);
    if (n < 0 || (size_t)n >= len) return;
    buf += n, len -= (size_t)n;
    if (event_done(c->ev_start[t], &e) == 1) {
        tg_kind k = tg_task_kind(g, t);
        if (k == TG_KIND_XCHG) {
            int m = snprintf(buf, len, "running (waiting for its peers: ranks");
            for (uint32_t x = g->xfer_off[t];
                 x < g->xfer_off[t + 1] && m > 0 && (size_t)m < len; x++)
                m += snprintf(buf + m, len - (size_t)m, " %d", g->xfer_peer[x]);
            if (m > 0 && (size_t)m < len) snprintf(buf + m, len - (size_t)m, ")");
        } else if (k == TG_KIND_COLL) {
            snprintf(buf, len, "running (a collective waiting for its group %s)",
                     tg_str(g, g->group_name[tg_task_args(g, t)[0]]));
        } else {
            snprintf(buf, len, "running");
        }
        return;
    }
    for (uint32_t k = g->dep_off[t]; k < g->dep_off[t + 1]; k++) {
        uint32_t d = g->dep[k];
        if (g->stream[d] != g->stream[t] && event_done(c->ev_end[d], &e) != 1) {
            snprintf(buf, len, "waiting for task %lld on stream %s", (long long)g->id[d],
                     tg_str(g, g->stream_name[g->stream[d]]));
            return;
        }
    }
    snprintf(buf, len, "waiting to start (the device is busy with other work)");
}

void abort_comms(cuda_ctx *c)
{
    __atomic_store_n(c->abort_flag, 1u, __ATOMIC_RELEASE);
    /* NCCL: abort every communicator this run used (they leave the cache) */
    for (int i = 0; i < c->nused; i++) {
        comm_entry *e = c->used[i];
        if (e->dead) continue;
        e->dead = 1;
        if (e->nccl) ncclCommAbort(e->nccl);
        e->nccl = NULL;
    }
}

int cu_synchronize(void *ctx, double timeout_s, ms_err *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    double t0 = now_s(), deadline = t0 + timeout_s, next_async = t0 + 0.1;
    long nap = 1;
    for (;;) {
        int all = 1;
        for (int i = 0; i < c->nst; i++) {
            cstream *s = &c->st[i];
            if (s->px && __atomic_load_n(&s->px->failed, __ATOMIC_ACQUIRE)) {
                c->stuck = 1;
                abort_comms(c);
                return ms_err_set(err, "rank %d: stream %s: %s", c->rank, s->name,
                                  s->px->err.msg);
            }
            if (s->last == TG_NONE) continue;
            int d = event_done(c->ev_end[s->last], err);
            if (d < 0) {
                /* a sticky device error (illegal address, launch failure...) */
                char why[512];
                describe_stuck(c, s, why, sizeof why);
                c->stuck = 1;
                abort_comms(c);
                return ms_err_prefix(err, "rank %d: %s", c->rank, why);
            }
            if (!d) all = 0;
        }
        if (!P.proxy && (all || now_s() > next_async)) {
            /* asynchronous NCCL errors (a peer died, a network failure): every 0.1 s */
            next_async = now_s() + 0.1;
            for (int i = 0; i < c->nused; i++) {
                comm_entry *e = c->used[i];
                ncclResult_t ae = ncclSuccess;
                if (!e->nccl || ncclCommGetAsyncError(e->nccl, &ae) != ncclSuccess ||
                    ae == ncclSuccess || ae == ncclInProgress)
                    continue;
                nccl_fail(err, __FILE__, __LINE__, "ncclCommGetAsyncError", ae);
                c->stuck = 1;
                abort_comms(c);
                return -1;
            }
        }
        if (all) break;
        if (now_s() > deadline) {
            char msg[MS_ERR_LEN];
            int n = snprintf(msg, sizeof msg, "watchdog: rank %d: after %.3g s", c->rank,
                             now_s() - t0);
            int first = 1;
            for (int i = 0; i < c->nst && n > 0 && (size_t)n < sizeof msg; i++) {
                cstream *s = &c->st[i];
                if (s->last == TG_NONE || event_done(c->ev_end[s->last], err) == 1) continue;
                char why[400];
                describe_stuck(c, s, why, sizeof why);
                n += snprintf(msg + n, sizeof msg - (size_t)n, "%s %s", first ? "," : ";", why);
                first = 0;
            }
            c->stuck = 1;
            abort_comms(c);
            return ms_err_set(err, "%s", msg);
        }
        nap_us(nap);
        if (nap < 200) nap *= 2;
    }
    c->in_pass = 0;
    return 0;
}

int cu_times(void *ctx, uint32_t t, double *start_us, double *end_us, ms_err *err)
{
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (t >= c->g->ntasks || !c->queued[t])
        return ms_err_set(err, "rank %d: times of task index %u, not run in the last pass",
                          c->rank, t);
    float ms0 = 0, ms1 = 0;
    CUDA_CK(err, cudaEventElapsedTime(&ms0, c->epoch, c->ev_start[t]));
    CUDA_CK(err, cudaEventElapsedTime(&ms1, c->epoch, c->ev_end[t]));
    *start_us = 1e3 * (double)ms0;
    *end_us = 1e3 * (double)ms1;
    return 0;
}

/* Frees everything; after a watchdog expiry or a proxy failure, frees what is safe and
 * returns 1 (threads or requests may still be stuck: the caller aborts the process). */
int cu_teardown_impl(cuda_ctx *c)
{
    int stuck = c->stuck;
    cudaSetDevice(P.dev);
    if (c->in_pass && !stuck) {
        /* a pass that failed part-way: queued comm may wait forever for peers that gave up,
         * so nothing is waited for; the communicators are aborted */
        abort_comms(c);
        stuck = 1;
    }
    if (!stuck)
        for (int i = 0; i < c->nst; i++)
            if (c->st[i].st && cudaStreamSynchronize(c->st[i].st) != cudaSuccess) stuck = 1;
    for (int i = 0; i < c->nst; i++) {
        proxy *p = c->st[i].px;
        if (!p) continue;
        if (p->started) {
            pthread_mutex_lock(&p->mu);
            p->quit = 1;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            if (stuck) {
                /* the abort flag makes the proxy drop its jobs and leave MPI waits; one
                 * stuck inside a blocking call is abandoned with the process */
                if (c->abort_flag) __atomic_store_n(c->abort_flag, 1u, __ATOMIC_RELEASE);
                double until = now_s() + 2.0;
                while (!__atomic_load_n(&p->exited, __ATOMIC_ACQUIRE) && now_s() < until)
                    nap_us(1000);
                if (!__atomic_load_n(&p->exited, __ATOMIC_ACQUIRE)) {
                    pthread_detach(p->th);
                    continue; /* its memory stays: the thread may still use it */
                }
            }
            pthread_join(p->th, NULL);
        }
        if (stuck) continue; /* abandoned MPI requests may still write the staging buffers */
        ex_reqs_free(p->reqs);
        if (p->copy) cudaStreamDestroy(p->copy);
        cudaFreeHost(p->hsend);
        cudaFreeHost(p->hrecv);
        free(p->jobs);
        free(p->tickets);
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
    }
    if (stuck) return 1; /* device memory and events go with the process */
    for (int i = 0; i < c->nst; i++) {
        cstream *s = &c->st[i];
        cudaFree(s->arena);
        cudaFree(s->dsend);
        cudaFree(s->drecv);
        free(s->offsets_host);
        if (s->st) cudaStreamDestroy(s->st);
    }
    if (c->ev_start)
        for (uint32_t t = 0; t < c->g->ntasks; t++) {
            if (c->ev_start[t]) cudaEventDestroy(c->ev_start[t]);
            if (c->ev_end[t]) cudaEventDestroy(c->ev_end[t]);
        }
    if (c->epoch) cudaEventDestroy(c->epoch);
    cudaFreeHost(c->abort_flag);
    cudaFreeHost(c->flags);
    free(c->ev_start);
    free(c->ev_end);
    free(c->queued);
    free(c->comm_of);
    free(c->used);
    free(c->st);
    free(c);
    return 0;
}

int cu_teardown(void *ctx) { return ctx ? cu_teardown_impl((cuda_ctx *)ctx) : 0; }

} // namespace

extern "C" const ex_backend ex_backend_cuda = {
    "cuda",
    0, /* supports_payload: check mode runs on the host backend */
    cu_device_name,
    cu_setup,
    cu_begin,
    cu_enqueue_compute,
    cu_enqueue_comm,
    cu_record,
    cu_wait,
    cu_synchronize,
    cu_times,
    cu_teardown,
};

/* Lazy cuBLAS for build/moesched: the four cuBLAS entry points the kernels use, forwarding to
 * libcublas loaded with dlopen on first use. Linking libcublas (through cublasLt) costs every
 * moesched process ~0.3 s and ~200 MB at start, though only --backend cuda needs it. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include <cublas_v2.h>

namespace {

#define BLAS_STR2(x) #x
#define BLAS_STR(x) BLAS_STR2(x)

typedef cublasStatus_t (*create_fn)(cublasHandle_t *);
typedef cublasStatus_t (*set_stream_fn)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*gemm_ex_fn)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                     int, int, const void *, const void *, cudaDataType, int,
                                     const void *, cudaDataType, int, const void *, void *,
                                     cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
typedef const char *(*status_string_fn)(cublasStatus_t);

pthread_once_t once = PTHREAD_ONCE_INIT;
create_fn p_create;
set_stream_fn p_set_stream;
gemm_ex_fn p_gemm_ex;
status_string_fn p_status_string;
char load_error[512] = "";

void load(void)
{
    static const char *const names[] = {
        "libcublas.so." BLAS_STR(CUBLAS_VER_MAJOR), "libcublas.so",
        "/usr/local/cuda/lib64/libcublas.so." BLAS_STR(CUBLAS_VER_MAJOR)};
    void *h = NULL;
    const char *why = "not found";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h && i == 0) why = dlerror();
    }
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load libcublas.so.%d: %s",
                 CUBLAS_VER_MAJOR, why ? why : "unknown error");
        return;
    }
    p_create = (create_fn)dlsym(h, "cublasCreate_v2");
    p_set_stream = (set_stream_fn)dlsym(h, "cublasSetStream_v2");
    p_gemm_ex = (gemm_ex_fn)dlsym(h, "cublasGemmEx");
    p_status_string = (status_string_fn)dlsym(h, "cublasGetStatusString");
    if (!p_create || !p_set_stream || !p_gemm_ex || !p_status_string) {
        snprintf(load_error, sizeof load_error, "libcublas lacks an entry point: %s",
                 dlerror());
        p_create = NULL; /* every call then fails with load_error */
    }
}

bool ready(void)
{
    pthread_once(&once, load);
    return p_create != NULL;
}

} // namespace

/* Failure to load is CUBLAS_STATUS_NOT_INITIALIZED, whose string is the loader's message. */
extern "C" cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    return ready() ? p_create(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

extern "C" cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    return ready() ? p_set_stream(handle, stream) : CUBLAS_STATUS_NOT_INITIALIZED;
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                       cublasOperation_t transb, int m, int n, int k,
                                       const void *alpha, const void *A, cudaDataType Atype,
                                       int lda, const void *B, cudaDataType Btype, int ldb,
                                       const void *beta, void *C, cudaDataType Ctype, int ldc,
                                       cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    if (!ready()) return CUBLAS_STATUS_NOT_INITIALIZED;
    return p_gemm_ex(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
                     C, Ctype, ldc, computeType, algo);
}

extern "C" const char *cublasGetStatusString(cublasStatus_t status)
{
    if (!ready()) return load_error;
    return p_status_string(status);
}

/* Shared pieces of the CUDA kernels: the error recorder behind CK / CUBLAS_CK (k_cuda.h). */
#include <stdio.h>

#include "kernels/k_cuda.h"

int k_cuda_fail(k_cuda_err *err, int status, const char *file, int line, const char *what,
                const char *detail)
{
    if (err) snprintf(err->msg, sizeof err->msg, "%s:%d: %s: %s", file, line, what, detail);
    return status;
}

/* The cuda backend's handle for the code that may see it: only cli/ is compiled with
 * HAVE_CUDA (in builds linking exec/backend_cuda.cu into build/moesched); libmoesched.a
 * and the tests never reference ex_backend_cuda. EX_BACKEND_CUDA is NULL elsewhere. */
#ifndef EX_BACKEND_CUDA_H
#define EX_BACKEND_CUDA_H

#include "exec/backend.h"

#ifdef HAVE_CUDA
#ifdef __cplusplus
extern "C" {
#endif
extern const ex_backend ex_backend_cuda;
#ifdef __cplusplus
}
#endif
#define EX_BACKEND_CUDA (&ex_backend_cuda)
#else
#define EX_BACKEND_CUDA ((const ex_backend *)0)
#endif

#endif

/* Shared CLI helpers; see common.h. */
#include "cli/common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cmd.h"
#include "exec/backend.h"
#include "exec/backend_cuda.h"
#include "exec/ex_mpi.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moesched %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_parse_double(const char *cmd, const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) {
        cli_error(cmd, "%s expects a number, got '%s'", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_int(const char *cmd, const char *flag, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 0 || v > INT_MAX) {
        cli_error(cmd, "%s expects a non-negative integer, got '%s'", flag, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_share_status(int st)
{
    ms_err e;
    int v = st;
    if (ex_bcast(&v, sizeof v, 0, &e) != 0) return EXIT_INPUT;
    return v;
}

int cli_mpi_begin(const char *cmd, int *argc, char ***argv, const char *backend,
                  const ex_backend **b)
{
    ms_err err = {{0}};
    if (ex_init(argc, argv, &err) != 0) {
        cli_error(cmd, "%s", err.msg);
        return EXIT_INPUT;
    }
    *b = ex_backend_lookup(backend, EX_BACKEND_CUDA, &err);
    if (!*b) {
        if (ex_world_rank() == 0) cli_error(cmd, "%s", err.msg);
        ex_finalize();
        return EXIT_USAGE;
    }
    return 0;
}

/* Helpers shared by the subcommands: strict number parsing, uniform error output, and the
 * status the MPI subcommands (calibrate, validate) agree on. */
#ifndef CLI_COMMON_H
#define CLI_COMMON_H

#include "exec/exec.h"

/* Prints "moesched CMD: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a finite double / a non-negative int; 0 on success, -1 (with a message naming
 * the flag) otherwise. */
int cli_parse_double(const char *cmd, const char *flag, const char *s, double *out);
int cli_parse_int(const char *cmd, const char *flag, const char *s, int *out);

/* For the MPI subcommands: starts MPI (ex_init) and looks up the backend named backend
 * (the cuda one where the build has it) into *b. 0, or the exit status to return, after a
 * message (from rank 0 once MPI runs) and ex_finalize where MPI had started. */
int cli_mpi_begin(const char *cmd, int *argc, char ***argv, const char *backend,
                  const ex_backend **b);

/* For the MPI subcommands: rank 0's exit status st, broadcast to every rank (each passes
 * its own st; only rank 0's counts). EXIT_INPUT when the broadcast fails. */
int cli_share_status(int st);

#endif

/* Helpers shared by the subcommands: strict number parsing and uniform error output. */
#ifndef CLI_COMMON_H
#define CLI_COMMON_H

/* Prints "moesched CMD: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses a finite double / a non-negative int; 0 on success, -1 (with a message naming
 * the flag) otherwise. */
int cli_parse_double(const char *cmd, const char *flag, const char *s, double *out);
int cli_parse_int(const char *cmd, const char *flag, const char *s, int *out);

#endif

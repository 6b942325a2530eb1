/* Subcommands of the moesched CLI: each takes the arguments after its name (argv[0] is
 * the subcommand name), prints errors on stderr, and returns the process exit status. */
#ifndef CLI_CMD_H
#define CLI_CMD_H

int cmd_sim(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_topo(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_solve(int argc, char **argv);
int cmd_repro(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* Exit statuses shared by all subcommands. */
#define EXIT_USAGE 2 /* bad flags or arguments */
#define EXIT_INPUT 1 /* bad input file or failed run */

#endif

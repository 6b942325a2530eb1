/* Pieces shared inside ir/ (not part of the public API in ir/tg.h). */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include <stdint.h>

#include "core/err.h"
#include "ir/tg.h"

/* Sets err to "name:line: msg" (the graph's source name and the line, each dropped when
 * unknown) and returns -1. */
int tg_gerr(ms_err *err, const tg_graph *g, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

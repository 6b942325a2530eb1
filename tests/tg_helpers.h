/* Helpers shared by the IR tests (tests/test_ir.c, tests/test_ir_m2n.c): parse text,
 * write a graph to a string, expect a parse error holding given fragments. Include after
 * cmocka.h and ir/tg.h. */
#ifndef TESTS_TG_HELPERS_H
#define TESTS_TG_HELPERS_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>


static inline tg_graph *parse(const char *text, ms_err *e)
{
    ms_err_clear(e);
    return tg_parse_buffer(text, strlen(text), "g.tg", e);
}

static inline tg_graph *parse_ok(const char *text)
{
    ms_err e = {{0}};
    tg_graph *g = parse(text, &e);
    if (!g) fail_msg("parse failed: %s\ninput:\n%s", e.msg, text);
    return g;
}

static inline char *write_str(const tg_graph *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ms_err e = {{0}};
    if (tg_write(g, f, &e)) fail_msg("tg_write: %s", e.msg);
    fclose(f);
    return buf;
}

/* The parse of `text` fails with a message holding every fragment (NULL-terminated). */
static inline void expect_error(const char *text, ...)
{
    ms_err e = {{0}};
    tg_graph *g = parse(text, &e);
    if (g) {
        tg_graph_free(g);
        fail_msg("parse succeeded, expected an error; input:\n%s", text);
    }
    va_list ap;
    va_start(ap, text);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(e.msg, frag)) fail_msg("expected \"%s\" in message: %s", frag, e.msg);
    va_end(ap);
}

#endif

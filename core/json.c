/* Streaming JSON writer; see json.h. */
#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ms_json_init(ms_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
}

/* Writes the separator a new value needs at the current level. */
static void value_prefix(ms_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->count[j->depth]++ > 0) fputc(',', j->f);
}

static void open(ms_json *j, int c)
{
    value_prefix(j);
    fputc(c, j->f);
    if (j->depth < MS_JSON_DEPTH - 1) j->depth++;
    j->count[j->depth] = 0;
}

static void close_(ms_json *j, int c)
{
    fputc(c, j->f);
    if (j->depth > 0) j->depth--;
}

void ms_json_obj_begin(ms_json *j) { open(j, '{'); }
void ms_json_obj_end(ms_json *j) { close_(j, '}'); }
void ms_json_arr_begin(ms_json *j) { open(j, '['); }
void ms_json_arr_end(ms_json *j) { close_(j, ']'); }

static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

void ms_json_key(ms_json *j, const char *key)
{
    value_prefix(j);
    write_string(j->f, key);
    fputc(':', j->f);
    j->after_key = 1;
}

void ms_json_str(ms_json *j, const char *s)
{
    value_prefix(j);
    if (s) write_string(j->f, s);
    else fputs("null", j->f);
}

void ms_json_int(ms_json *j, int64_t v)
{
    value_prefix(j);
    fprintf(j->f, "%lld", (long long)v);
}

void ms_fmt_double(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, len, "%.17g", v);
}

void ms_json_num(ms_json *j, double v)
{
    value_prefix(j);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    char buf[40];
    ms_fmt_double(buf, sizeof buf, v);
    fputs(buf, j->f);
}

void ms_json_fixed(ms_json *j, double v, int decimals)
{
    value_prefix(j);
    if (!isfinite(v)) fputs("null", j->f);
    else fprintf(j->f, "%.*f", decimals, v);
}

void ms_json_bool(ms_json *j, int v)
{
    value_prefix(j);
    fputs(v ? "true" : "false", j->f);
}

void ms_json_kstr(ms_json *j, const char *key, const char *s)
{
    ms_json_key(j, key);
    ms_json_str(j, s);
}

void ms_json_kint(ms_json *j, const char *key, int64_t v)
{
    ms_json_key(j, key);
    ms_json_int(j, v);
}

void ms_json_knum(ms_json *j, const char *key, double v)
{
    ms_json_key(j, key);
    ms_json_num(j, v);
}

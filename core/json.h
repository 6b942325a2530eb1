/* A small streaming JSON writer: objects and arrays are opened and closed in order, commas
 * and string escapes are handled here, numbers are printed deterministically.
 * For large outputs (traces) nothing is buffered beyond stdio. */
#ifndef MS_JSON_H
#define MS_JSON_H

#include <stdint.h>
#include <stdio.h>

#define MS_JSON_DEPTH 32

typedef struct ms_json {
    FILE *f;
    int depth;
    int count[MS_JSON_DEPTH]; /* items written at each level, for commas */
    int after_key;            /* a key was written, the value comes next */
} ms_json;

void ms_json_init(ms_json *j, FILE *f);
void ms_json_obj_begin(ms_json *j);
void ms_json_obj_end(ms_json *j);
void ms_json_arr_begin(ms_json *j);
void ms_json_arr_end(ms_json *j);
void ms_json_key(ms_json *j, const char *key);
void ms_json_str(ms_json *j, const char *s); /* NULL writes null */
void ms_json_int(ms_json *j, int64_t v);
/* Shortest form that reads back to the same double ("%.15g", else "%.17g");
 * non-finite values are written as null. */
void ms_json_num(ms_json *j, double v);
/* Fixed decimals (e.g. trace microseconds with 3 decimals). */
void ms_json_fixed(ms_json *j, double v, int decimals);
void ms_json_bool(ms_json *j, int v);

/* key + value shorthands */
void ms_json_kstr(ms_json *j, const char *key, const char *s);
void ms_json_kint(ms_json *j, const char *key, int64_t v);
void ms_json_knum(ms_json *j, const char *key, double v);

/* Writes a double in the shortest round-tripping form into buf (>= 32 bytes). */
void ms_fmt_double(char *buf, size_t len, double v);

#endif

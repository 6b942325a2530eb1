/* Small-file helpers; see files.h. */
#include "core/files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ms_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *ms_read_file(const char *path, const char *what, long max_bytes, size_t *len,
                   int *missing, ms_err *err)
{
    *missing = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        *missing = errno == ENOENT;
        ms_err_set(err, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc((size_t)max_bytes + 1);
    if (!buf) {
        fclose(fp);
        ms_err_set(err, "%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, (size_t)max_bytes + 1, fp);
    int bad = ferror(fp), e = errno;
    fclose(fp);
    if (bad) {
        free(buf);
        ms_err_set(err, "cannot read %s '%s': %s", what, path, strerror(e));
        return NULL;
    }
    if (n > (size_t)max_bytes) {
        free(buf);
        ms_err_set(err, "%s '%s' is larger than %ld bytes", what, path, max_bytes);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ms_list_names(const char *dir, const char *ext, char *buf, size_t len)
{
    char *names[256];
    int n = 0;
    size_t el = strlen(ext);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) && n < 256) {
            if (e->d_name[0] == '.' || !ms_ends_with(e->d_name, ext)) continue;
            size_t l = strlen(e->d_name) - el;
            char *s = malloc(l + 1);
            if (!s) break;
            memcpy(s, e->d_name, l);
            s[l] = '\0';
            names[n++] = s;
        }
        closedir(d);
    }
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (used < len) {
            int w = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
            if (w > 0) used += (size_t)w;
        }
        free(names[i]);
    }
    if (used >= len && len > 4) memcpy(buf + len - 4, "...", 4);
    if (n == 0) snprintf(buf, len, "(none)");
}

void ms_safe_text(char *dst, size_t dlen, const char *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 4 < dlen; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] <= 0x7e) ? s[i] : '?';
    if (j < n && j + 4 >= dlen) {
        memcpy(dst + j, "...", 3);
        j += 3;
    }
    dst[j] = '\0';
}

const char *ms_scan_decimal(const char *s, int *digits)
{
    const char *p = s;
    int d = 0;
    if (*p == '+' || *p == '-') p++;
    while (isdigit((unsigned char)*p)) p++, d++;
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) p++, d++;
    }
    if (d && (*p == 'e' || *p == 'E')) {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) d = 0;
        while (isdigit((unsigned char)*p)) p++;
    }
    *digits = d;
    return p;
}

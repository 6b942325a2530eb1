/* Resolution of the data root and default database; see paths.h. */
#define _GNU_SOURCE
#include "core/paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MS_SOURCE_DIR
#define MS_SOURCE_DIR "."
#endif

static char data_dir[PATH_MAX];
static char db_path[PATH_MAX];

/* Directory of the running executable, or "" when unknown. */
static void exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *ms_data_dir(void)
{
    if (data_dir[0]) return data_dir;
    const char *env = getenv("MOESCHED_DATA");
    if (env && *env) {
        snprintf(data_dir, sizeof data_dir, "%s", env);
        return data_dir;
    }
    char dir[PATH_MAX], probe[PATH_MAX + 32];
    exe_dir(dir, sizeof dir);
    if (dir[0]) {
        snprintf(probe, sizeof probe, "%s/../topologies", dir);
        if (is_dir(probe)) {
            snprintf(data_dir, sizeof data_dir, "%.*s/..", PATH_MAX - 8, dir);
            return data_dir;
        }
    }
    snprintf(data_dir, sizeof data_dir, "%s", MS_SOURCE_DIR);
    return data_dir;
}

int ms_data_path(char *buf, size_t len, const char *sub, const char *name, const char *ext)
{
    int n = snprintf(buf, len, "%s/%s/%s%s", ms_data_dir(), sub, name, ext ? ext : "");
    return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

const char *ms_default_db(void)
{
    if (db_path[0]) return db_path;
    const char *env = getenv("MOESCHED_DB");
    if (env && *env) {
        snprintf(db_path, sizeof db_path, "%s", env);
        return db_path;
    }
    char dir[PATH_MAX];
    exe_dir(dir, sizeof dir);
    snprintf(db_path, sizeof db_path, "%.*s/cost.db", PATH_MAX - 16, dir[0] ? dir : ".");
    return db_path;
}

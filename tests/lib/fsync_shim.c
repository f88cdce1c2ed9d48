/*
 * fsync_shim.c — an LD_PRELOAD library for tests that need a slow or failing disk under the
 * spend journal (tests/integration/journal.test.mjs builds it with cc). It acts only on files
 * whose name ends in ".journal", so the database and everything else run normally:
 *   TG_SHIM_FSYNC_MS=<ms>         fdatasync/fsync of a journal sleep that long first
 *   TG_SHIM_FSYNC_FAIL=1          … and then fail with EIO
 *   TG_SHIM_WRITE_FAIL=1          write(2) to a journal fails with ENOSPC
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int is_journal(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n <= 8)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 8, ".journal") == 0;
}

static long env_num(const char *name)
{
    const char *v = getenv(name);
    return v != NULL ? strtol(v, NULL, 10) : 0;
}

static int slow_sync(int fd, const char *name)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    if (is_journal(fd)) {
        long ms = env_num("TG_SHIM_FSYNC_MS");
        if (ms > 0) {
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        if (env_num("TG_SHIM_FSYNC_FAIL") == 1) {
            errno = EIO;
            return -1;
        }
    }
    return real(fd);
}

int fdatasync(int fd)
{
    return slow_sync(fd, "fdatasync");
}

int fsync(int fd)
{
    return slow_sync(fd, "fsync");
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    static int fail = -1;
    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (fail < 0)
        fail = env_num("TG_SHIM_WRITE_FAIL") == 1;
    if (fail && fd > 2 && is_journal(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n);
}

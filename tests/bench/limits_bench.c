/*
 * limits_bench.c — nanoseconds per admit + settle on the limiter's local backend, with the four
 * scopes a typical team key has (key, user, team, global), each with rpm, tpm, max_parallel and
 * a budget, from 1 and from 2 threads (contention on the one mutex). Not run by ctest (timed
 * numbers do not belong in unit tests): build the `limits_bench` target and run it.
 *
 *     limits_bench [iterations per thread, default 1000000]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gateway/limits.h"

typedef struct arg {
    gw_limits_t *lim;
    int tid;
    long iters;
} arg_t;

static void *run(void *p)
{
    arg_t *a = p;
    char key[32];
    snprintf(key, sizeof(key), "key-%d", a->tid);
    gw_limits_scope_t sc[4] = {
        {GW_SCOPE_KEY, key, INT64_MAX / 4, INT64_MAX / 4, 64, INT64_MAX / 4, 0, 0, 0},
        {GW_SCOPE_USER, "user", INT64_MAX / 4, INT64_MAX / 4, 64, INT64_MAX / 4, 0, 86400000, 0},
        {GW_SCOPE_TEAM, "team", INT64_MAX / 4, INT64_MAX / 4, 64, INT64_MAX / 4, 0, 0, 0},
        {GW_SCOPE_GLOBAL, "", GW_LIMITS_NONE, GW_LIMITS_NONE, GW_LIMITS_NONE, GW_LIMITS_NONE, 0, 0, 0},
    };
    char rid[32];
    gw_limits_req_t req = {
        .request_id = rid, .scopes = sc, .n_scopes = 4, .est_tokens = 500, .est_micros = 1000};
    gw_limits_result_t res;
    for (long i = 0; i < a->iters; i++) {
        snprintf(rid, sizeof(rid), "%d-%ld", a->tid, i);
        gw_limits_local_admit(a->lim, &req, &res);
        if (res.verdict != GW_LIMITS_ADMITTED) {
            fprintf(stderr, "refused at %ld: %d\n", i, (int)res.which);
            exit(1);
        }
        gw_limits_local_settle(a->lim, rid, 400, 800);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    for (int threads = 1; threads <= 2; threads++) {
        gw_limits_config_t cfg = {.backend = GW_LIMITS_LOCAL};
        char err[128];
        gw_limits_t *lim = gw_limits_create(&cfg, err, sizeof(err));
        pthread_t th[2];
        arg_t a[2];
        double t0 = now_s();
        for (int i = 0; i < threads; i++) {
            a[i] = (arg_t){lim, i, iters};
            pthread_create(&th[i], NULL, run, &a[i]);
        }
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        double dt = now_s() - t0;
        printf("%d thread(s): %.0f ns per admit+settle (wall, %ld per thread), %.2f M/s total\n", threads,
               dt * 1e9 / (double)iters, iters, (double)threads * (double)iters / dt / 1e6);
        gw_limits_destroy(lim);
    }
    return 0;
}

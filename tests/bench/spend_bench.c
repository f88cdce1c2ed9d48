/*
 * spend_bench.c — CPU per spend record, split by thread: the caller of gw_spend_record (a worker
 * loop in the gateway) and the writer + store threads that move journal records into the
 * database. Not run by ctest (timed numbers do not belong in unit tests): build the `spend_bench`
 * target (a build with TOLLGATE_TESTS=ON; use an -O2 one) and run it.
 *
 *     spend_bench [records per run, default 20000] [rounds, default 3]
 *
 * Each round opens a fresh database (SQLite in a temporary directory; with DATABASE_URL set, a
 * new PostgreSQL database on that server, dropped afterwards), migrates it, seeds a key with a
 * user, a team, a membership and an organization, then runs two workloads:
 *
 *   master  records without an owner (the master key: what the priced gateway bench sends)
 *   key     records of the seeded key, with end users drawn from 50 (every hierarchy UPDATE runs)
 *
 * A workload writes all its records first while the writer sleeps (writer_ms is a minute), timing
 * the calling thread, then wakes the writer and waits until everything is in the store, timing
 * every thread of the process by its CPU clock. Request ids are random UUIDv4 like the gateway's
 * (SPEND_BENCH_IDS=ordered: time-ordered ones instead). It prints one line per workload and round and a
 * JSON summary with the medians:
 *   record_us    CPU µs per gw_spend_record on the calling thread (format + write(2));
 *   writer_us    CPU µs per record on the writer thread (reading and decoding the journal);
 *   store_us     CPU µs per record on the store thread (SQL: tg-store);
 *   apply_us     writer_us + store_us: the background cost of one record;
 *   records/s    records stored per second of wall time while draining;
 *   server_us    PostgreSQL only, when the server runs on this machine: CPU µs per record of the
 *                store's server process (from /proc, 10 ms ticks), -1 when it cannot be read.
 * The sync thread is off (sync_mode none): fdatasync is disk time, not the code's CPU.
 */
#include <dirent.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "gateway/spend.h"
#include "gateway/store.h"

#define MAX_THREADS 64

typedef struct thread_cpu {
    pid_t tid;
    char name[32];
    double s;
} thread_cpu_t;

/* Every thread of this process with its name and CPU seconds (per-thread CPU clocks, ns). */
static size_t threads_now(thread_cpu_t *out)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_THREADS) {
        if (e->d_name[0] == '.')
            continue;
        pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
        char path[96];
        snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char name[32] = "";
        if (fgets(name, sizeof(name), f) != NULL)
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        /* the kernel's per-thread CPU clock id of any thread of this process */
        clockid_t cid = (clockid_t)((~(unsigned)tid << 3) | 6u);
        struct timespec ts;
        if (clock_gettime(cid, &ts) != 0)
            continue;
        out[n].tid = tid;
        snprintf(out[n].name, sizeof(out[n].name), "%s", name);
        out[n].s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
        n++;
    }
    closedir(d);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void admin_sql(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "spend_bench: %s: %s\n", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

typedef struct sql_job {
    const char *sql;
} sql_job_t;

static int run_sql(gw_store_conn_t *c, void *ud)
{
    return gw_store_exec(c, ((sql_job_t *)ud)->sql, NULL, 0, NULL);
}

static void exec_sql(gw_store_t *s, const char *sql)
{
    sql_job_t j = {sql};
    char err[512];
    if (gw_store_run(s, run_sql, &j, err, sizeof(err)) != GW_STORE_OK) {
        fprintf(stderr, "spend_bench: %s: %s\n", sql, err);
        exit(1);
    }
}

#define TOKEN "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/*
 * Request ids like the gateway's: random UUIDv4 (the default: spend_logs' primary key then gets
 * inserts all over its index, as in production), or with SPEND_BENCH_IDS=ordered time-ordered
 * ones (UUIDv7's layout: the millisecond first), to see what the key's order costs.
 */
static void request_id(char *out, size_t cap, int round, int keyed, long i, int64_t ms)
{
    static int ordered = -1;
    if (ordered < 0) {
        const char *e = getenv("SPEND_BENCH_IDS");
        ordered = e != NULL && strcmp(e, "ordered") == 0;
    }
    /* splitmix64 of (round, keyed, i): distinct and well spread */
    uint64_t z = ((uint64_t)round << 40) ^ ((uint64_t)keyed << 36) ^ (uint64_t)i;
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    uint64_t hi = ordered ? ((uint64_t)ms << 16) | ((uint64_t)i & 0xFFFF) : z;
    snprintf(out, cap, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xFFFF,
             (unsigned)hi & 0xFFF, (unsigned)(0x8000 | (z >> 48 & 0x3FFF)),
             (unsigned long long)(z ^ (uint64_t)i) & 0xFFFFFFFFFFFFull);
}

typedef struct result {
    double record_us, writer_us, store_us, rps, server_us;
} result_t;

typedef struct pid_job {
    json_t *rows;
} pid_job_t;

static int backend_pid_job(gw_store_conn_t *c, void *ud)
{
    return gw_store_query(c, "SELECT pg_backend_pid() AS pid", NULL, 0, &((pid_job_t *)ud)->rows);
}

/* The PostgreSQL server process serving the store's connection; 0 when not PostgreSQL. */
static long backend_pid(gw_store_t *store)
{
    if (gw_store_kind(store) != GW_STORE_POSTGRES)
        return 0;
    pid_job_t j = {0};
    char err[256];
    long pid = 0;
    if (gw_store_run(store, backend_pid_job, &j, err, sizeof(err)) == GW_STORE_OK)
        pid = (long)json_integer_value(json_object_get(json_array_get(j.rows, 0), "pid"));
    json_decref(j.rows);
    return pid;
}

/* utime + stime of a process in seconds, -1 when unreadable (another machine, permissions). */
static double proc_cpu_s(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    if (f == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    char *p = strrchr(line, ')');
    unsigned long ut, st;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int run_workload(const char *dir, gw_store_t *store, int keyed, long n, int round, result_t *res)
{
    gw_spend_settings_t set = {.instance_id = keyed ? "bench-key" : "bench-master",
                               .sync_mode = GW_SPEND_SYNC_NONE,
                               .writer_ms = 60000,
                               .retry_min_ms = 10,
                               .retry_max_ms = 100,
                               .rotate_bytes = 1ull << 30,
                               .close_drain_ms = 60000};
    char err[512] = "";
    gw_spend_t *sp = gw_spend_open(dir, store, &set, err, sizeof(err));
    if (sp == NULL) {
        fprintf(stderr, "spend_bench: %s\n", err);
        return -1;
    }
    if (gw_spend_wait_drained(sp, 10000) != 0) /* the writer's first (empty) step */
        return -1;
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    double t0 = self_cpu_s();
    for (long i = 0; i < n; i++) {
        char id[64], eu[32];
        request_id(id, sizeof(id), round, keyed, i, now_ms + i);
        snprintf(eu, sizeof(eu), "customer-%ld", i % 50);
        gw_spend_rec_t r = {.request_id = id,
                            .call_type = "acompletion",
                            .key_hash = keyed ? TOKEN : NULL,
                            .key_alias = keyed ? "bench-key" : NULL,
                            .user_id = keyed ? "bench-user" : NULL,
                            .team_id = keyed ? "bench-team" : NULL,
                            .org_id = keyed ? "bench-org" : NULL,
                            .end_user = keyed ? eu : NULL,
                            .model_group = "bench-priced",
                            .model = "bench-model",
                            .provider = "openai",
                            .prompt_tokens = 212,
                            .completion_tokens = 96,
                            .spend_micros = 1490,
                            .start_ms = now_ms + i,
                            .end_ms = now_ms + i + 3,
                            .stream = 0};
        if (gw_spend_record(sp, &r) != GW_SPEND_OK) {
            fprintf(stderr, "spend_bench: record %ld failed\n", i);
            return -1;
        }
    }
    res->record_us = (self_cpu_s() - t0) * 1e6 / (double)n;

    thread_cpu_t before[MAX_THREADS], after[MAX_THREADS];
    long server = backend_pid(store);
    double srv0 = proc_cpu_s(server);
    size_t nb = threads_now(before);
    double w0 = now_s();
    if (gw_spend_wait_drained(sp, 600000) != 0) {
        fprintf(stderr, "spend_bench: the writer did not drain\n");
        return -1;
    }
    double wall = now_s() - w0;
    size_t na = threads_now(after);
    double srv1 = proc_cpu_s(server);
    res->server_us = srv0 >= 0 && srv1 >= 0 ? (srv1 - srv0) * 1e6 / (double)n : -1;
    pid_t self = (pid_t)syscall(SYS_gettid);
    double store_s = 0, writer_s = 0;
    for (size_t i = 0; i < na; i++) {
        double was = 0;
        for (size_t k = 0; k < nb; k++)
            if (before[k].tid == after[i].tid)
                was = before[k].s;
        double d = after[i].s - was;
        if (after[i].tid == self)
            continue;
        if (strcmp(after[i].name, "tg-store") == 0)
            store_s += d;
        else
            writer_s += d; /* the writer is the only other busy thread (no sync thread) */
    }
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    gw_spend_close(sp);
    if (st.records_inserted != (uint64_t)n) {
        fprintf(stderr, "spend_bench: %llu of %ld records inserted\n",
                (unsigned long long)st.records_inserted, n);
        return -1;
    }
    res->writer_us = writer_s * 1e6 / (double)n;
    res->store_us = store_s * 1e6 / (double)n;
    res->rps = (double)n / wall;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 3;
    if (n <= 0 || rounds <= 0 || rounds > 100) {
        fprintf(stderr, "usage: spend_bench [records > 0] [rounds 1-100]\n");
        return 2;
    }
    const char *base = getenv("DATABASE_URL");
    int pg = base != NULL && *base != '\0';
    result_t r[2][100];
    for (int round = 0; round < rounds; round++) {
        char dir[256], url[1024] = "", dbname[64] = "";
        snprintf(dir, sizeof(dir), "%s/tg-spend-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        if (pg) {
            snprintf(dbname, sizeof(dbname), "tg_spend_bench_%d_%d", (int)getpid(), round);
            const char *slash = strrchr(base, '/'), *query = slash ? strchr(slash, '?') : NULL;
            if (slash == NULL) {
                fprintf(stderr, "spend_bench: DATABASE_URL needs a /database\n");
                return 1;
            }
            snprintf(url, sizeof(url), "%.*s/%s%s", (int)(slash - base), base, dbname, query ? query : "");
            char sql[128];
            snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", dbname);
            admin_sql(base, sql);
        }
        char err[512] = "";
        gw_store_t *store = gw_store_open_url(pg ? url : NULL, dir, err, sizeof(err));
        if (store == NULL || gw_store_migrate(store, NULL, err, sizeof(err)) != GW_STORE_OK) {
            fprintf(stderr, "spend_bench: %s\n", err);
            return 1;
        }
        exec_sql(
            store,
            "INSERT INTO organizations (organization_id, organization_alias) VALUES ('bench-org', 'Bench')");
        exec_sql(store, "INSERT INTO teams (team_id, organization_id) VALUES ('bench-team', 'bench-org')");
        exec_sql(store, "INSERT INTO users (user_id) VALUES ('bench-user')");
        exec_sql(store, "INSERT INTO team_membership (user_id, team_id) VALUES ('bench-user', 'bench-team')");
        exec_sql(store, "INSERT INTO keys (token, key_alias, user_id, team_id) VALUES ('" TOKEN
                        "', 'bench-key', 'bench-user', 'bench-team')");
        for (int keyed = 0; keyed < 2; keyed++) {
            if (run_workload(dir, store, keyed, n, round, &r[keyed][round]) != 0)
                return 1;
            result_t *x = &r[keyed][round];
            printf("round %d %-6s record %6.2f us  writer %6.2f us  store %6.2f us  apply %6.2f us  %8.0f "
                   "records/s  server %6.2f us\n",
                   round + 1, keyed ? "key" : "master", x->record_us, x->writer_us, x->store_us,
                   x->writer_us + x->store_us, x->rps, x->server_us);
            fflush(stdout);
        }
        gw_store_close(store);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (pg) {
            char sql[128];
            snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
            admin_sql(base, sql);
        }
    }
    printf("{\"backend\":\"%s\",\"records\":%ld,\"rounds\":%d", pg ? "postgres" : "sqlite", n, rounds);
    for (int keyed = 0; keyed < 2; keyed++) {
        double rec[100], wr[100], stv[100], ap[100], rps[100], srv[100];
        for (int i = 0; i < rounds; i++) {
            rec[i] = r[keyed][i].record_us;
            wr[i] = r[keyed][i].writer_us;
            stv[i] = r[keyed][i].store_us;
            ap[i] = r[keyed][i].writer_us + r[keyed][i].store_us;
            rps[i] = r[keyed][i].rps;
            srv[i] = r[keyed][i].server_us;
        }
        printf(",\"%s\":{\"record_us\":%.2f,\"writer_us\":%.2f,\"store_us\":%.2f,\"apply_us\":%.2f,"
               "\"records_per_s\":%.0f,\"server_us\":%.2f}",
               keyed ? "key" : "master", median(rec, rounds), median(wr, rounds), median(stv, rounds),
               median(ap, rounds), median(rps, rounds), median(srv, rounds));
    }
    printf("}\n");
    return 0;
}

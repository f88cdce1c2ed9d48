/*
 * store.c — the store thread, its job queue, completions posted back to worker loops, the SQL
 * calls jobs make, migrations, and time helpers. The backends are store_sqlite.c and store_pg.c.
 *
 * The queue is a mutex-protected FIFO with a condition variable; the store thread pops one job,
 * makes the backend ready (PostgreSQL may reconnect here), runs the job, rolls back a
 * transaction the job left open, and sends the finished job as an h2o_multithread message to
 * the submitter's receiver. The receiver's callback, on the worker's loop, calls done and frees
 * the job. Nothing here ever blocks a loop: gw_store_submit takes the mutex only to link a node.
 */
#include "gateway/store_int.h"

#include <errno.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct job {
    h2o_multithread_message_t super; /* first: the completion travels as this message */
    struct job *next;
    gw_store_job_fn fn;
    gw_store_done_fn done;
    void *ud;
    h2o_multithread_receiver_t *rx;
    int status;
    char err[GW_STORE_ERR_MAX];
} job_t;

struct gw_store_conn {
    const gw_store_backend_t *be;
    void *h;
    char err[GW_STORE_ERR_MAX];
};

struct gw_store {
    gw_store_conn_t conn;
    char desc[256];
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *head, *tail;
    size_t queued;
    int closing;
};

/* ---- small shared helpers -------------------------------------------------------------------- */

int gw_store_errf(char *err, size_t errlen, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return status;
}

uint64_t gw_store_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *gw_store_status_name(int status)
{
    switch (status) {
    case GW_STORE_OK:
        return "ok";
    case GW_STORE_CONSTRAINT:
        return "constraint";
    case GW_STORE_UNAVAILABLE:
        return "unavailable";
    case GW_STORE_BUSY:
        return "busy";
    case GW_STORE_CLOSED:
        return "closed";
    default:
        return "error";
    }
}

/* ---- the store thread ------------------------------------------------------------------------ */

static void finish(job_t *j)
{
    if (j->done != NULL)
        j->done(j->ud, j->status, j->err);
    free(j);
}

static void on_completions(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        job_t *j = H2O_STRUCT_FROM_MEMBER(job_t, super.link, messages->next);
        h2o_linklist_unlink(&j->super.link);
        finish(j);
    }
}

void gw_store_register_receiver(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *r)
{
    h2o_multithread_register_receiver(queue, r, on_completions);
}

void gw_store_unregister_receiver(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *r)
{
    h2o_multithread_unregister_receiver(queue, r);
}

static void run_job(gw_store_t *s, job_t *j)
{
    gw_store_conn_t *c = &s->conn;
    c->err[0] = '\0';
    int st = c->be->ready(c->h, c->err, sizeof(c->err));
    if (st == GW_STORE_OK) {
        st = j->fn(c, j->ud);
        if (c->be->in_tx(c->h)) { /* a job may not leave a transaction behind */
            if (st == GW_STORE_OK)
                gw_store_fail(c, GW_STORE_ERROR, "job returned with a transaction open (rolled back)");
            gw_store_rollback(c);
            if (st == GW_STORE_OK)
                st = GW_STORE_ERROR;
        }
    }
    j->status = st;
    if (st != GW_STORE_OK)
        snprintf(j->err, sizeof(j->err), "%s", c->err[0] ? c->err : gw_store_status_name(st));
}

static void *store_main(void *arg)
{
    gw_store_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->head == NULL && !s->closing)
            pthread_cond_wait(&s->cv, &s->mu);
        job_t *j = s->head;
        if (j != NULL) {
            s->head = j->next;
            if (s->head == NULL)
                s->tail = NULL;
            s->queued--;
        }
        pthread_mutex_unlock(&s->mu);
        if (j == NULL)
            break; /* closing and drained */
        run_job(s, j);
        if (j->rx != NULL)
            h2o_multithread_send_message(j->rx, &j->super);
        else
            finish(j);
    }
    return NULL;
}

/* ---- opening and closing --------------------------------------------------------------------- */

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(path))
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "data directory path too long");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return gw_store_errf(err, errlen, GW_STORE_ERROR, "cannot create %s: %s", path, strerror(errno));
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "%s is not a directory", dir);
    return GW_STORE_OK;
}

static int start_thread(gw_store_t *s, char *err, size_t errlen)
{
    /* The store thread takes no signals: the main thread waits for them with sigwait. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->tid, NULL, store_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "cannot start the store thread: %s", strerror(rc));
    pthread_setname_np(s->tid, "tg-store");
    return GW_STORE_OK;
}

gw_store_t *gw_store_open_url(const char *database_url, const char *data_dir, char *err, size_t errlen)
{
    const gw_store_backend_t *be;
    char target[4096];
    if (database_url != NULL && database_url[0] != '\0') {
        if (strncmp(database_url, "postgresql://", 13) != 0 &&
            strncmp(database_url, "postgres://", 11) != 0) {
            gw_store_errf(err, errlen, GW_STORE_ERROR,
                          "database_url must start with postgresql:// or postgres://");
            return NULL;
        }
        be = &gw_store_pg_backend;
        if (snprintf(target, sizeof(target), "%s", database_url) >= (int)sizeof(target)) {
            gw_store_errf(err, errlen, GW_STORE_ERROR, "database_url too long");
            return NULL;
        }
    } else {
        be = &gw_store_sqlite_backend;
        if (data_dir == NULL || data_dir[0] == '\0')
            data_dir = getenv("TOLLGATE_DATA_DIR");
        if (data_dir == NULL || data_dir[0] == '\0')
            data_dir = "./data";
        if (make_dirs(data_dir, err, errlen) != GW_STORE_OK)
            return NULL;
        if (snprintf(target, sizeof(target), "%s/tollgate.db", data_dir) >= (int)sizeof(target)) {
            gw_store_errf(err, errlen, GW_STORE_ERROR, "data directory path too long");
            return NULL;
        }
    }
    gw_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        gw_store_errf(err, errlen, GW_STORE_ERROR, "out of memory");
        return NULL;
    }
    s->conn.be = be;
    if (be->open(target, &s->conn.h, s->desc, sizeof(s->desc), err, errlen) != GW_STORE_OK) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (start_thread(s, err, errlen) != GW_STORE_OK) {
        be->close(s->conn.h);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return NULL;
    }
    return s;
}

gw_store_t *gw_store_open(const gw_config_t *cfg, const char *data_dir, char *err, size_t errlen)
{
    const char *url = cfg != NULL ? cfg->database_url : getenv("DATABASE_URL");
    return gw_store_open_url(url, data_dir, err, errlen);
}

void gw_store_close(gw_store_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->tid, NULL);
    s->conn.be->close(s->conn.h);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

gw_store_kind_t gw_store_kind(const gw_store_t *s)
{
    return s->conn.be->kind;
}

const char *gw_store_describe(const gw_store_t *s)
{
    return s->desc;
}

/* ---- submitting ------------------------------------------------------------------------------ */

int gw_store_submit(gw_store_t *s, h2o_multithread_receiver_t *rx, gw_store_job_fn fn, gw_store_done_fn done,
                    void *ud)
{
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return GW_STORE_BUSY;
    j->fn = fn;
    j->done = done;
    j->ud = ud;
    j->rx = rx;
    int st = GW_STORE_OK;
    pthread_mutex_lock(&s->mu);
    if (s->closing)
        st = GW_STORE_CLOSED;
    else if (s->queued >= GW_STORE_MAX_QUEUE)
        st = GW_STORE_BUSY;
    if (st == GW_STORE_OK) {
        if (s->tail != NULL)
            s->tail->next = j;
        else
            s->head = j;
        s->tail = j;
        s->queued++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (st != GW_STORE_OK)
        free(j);
    return st;
}

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int finished;
    int status;
    char *err;
    size_t errlen;
} sync_wait_t;

static void on_sync_done(void *ud, int status, const char *err)
{
    sync_wait_t *w = ud;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    if (w->err != NULL && w->errlen > 0)
        snprintf(w->err, w->errlen, "%s", err);
    w->finished = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

typedef struct sync_job {
    gw_store_job_fn fn;
    void *ud;
    sync_wait_t wait;
} sync_job_t;

static int run_sync(gw_store_conn_t *c, void *ud)
{
    sync_job_t *sj = H2O_STRUCT_FROM_MEMBER(sync_job_t, wait, ud);
    return sj->fn(c, sj->ud);
}

int gw_store_run(gw_store_t *s, gw_store_job_fn fn, void *ud, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (pthread_equal(pthread_self(), s->tid)) /* a job waiting for a job would wait forever */
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "gw_store_run called from the store thread");
    sync_job_t sj = {.fn = fn, .ud = ud, .wait = {.err = err, .errlen = errlen}};
    pthread_mutex_init(&sj.wait.mu, NULL);
    pthread_cond_init(&sj.wait.cv, NULL);
    int st = gw_store_submit(s, NULL, run_sync, on_sync_done, &sj.wait);
    if (st == GW_STORE_OK) {
        pthread_mutex_lock(&sj.wait.mu);
        while (!sj.wait.finished)
            pthread_cond_wait(&sj.wait.cv, &sj.wait.mu);
        pthread_mutex_unlock(&sj.wait.mu);
        st = sj.wait.status;
    } else {
        gw_store_errf(err, errlen, st, "store %s", gw_store_status_name(st));
    }
    pthread_mutex_destroy(&sj.wait.mu);
    pthread_cond_destroy(&sj.wait.cv);
    return st;
}

/* ---- SQL inside a job ------------------------------------------------------------------------ */

int gw_store_exec(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                  int64_t *changes)
{
    int64_t ch = 0;
    int st = c->be->exec(c->h, sql, params, n, &ch, c->err, sizeof(c->err));
    if (changes != NULL)
        *changes = st == GW_STORE_OK ? ch : 0;
    return st;
}

int gw_store_query(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                   json_t **rows)
{
    *rows = NULL;
    return c->be->query(c->h, sql, params, n, rows, c->err, sizeof(c->err));
}

int gw_store_exec_cached(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                         int64_t *changes)
{
    int64_t ch = 0;
    int st = c->be->exec_cached != NULL
                 ? c->be->exec_cached(c->h, sql, params, n, &ch, c->err, sizeof(c->err))
                 : c->be->exec(c->h, sql, params, n, &ch, c->err, sizeof(c->err));
    if (changes != NULL)
        *changes = st == GW_STORE_OK ? ch : 0;
    return st;
}

int gw_store_query_cached(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                          json_t **rows)
{
    *rows = NULL;
    return c->be->query_cached != NULL
               ? c->be->query_cached(c->h, sql, params, n, rows, c->err, sizeof(c->err))
               : c->be->query(c->h, sql, params, n, rows, c->err, sizeof(c->err));
}

void gw_store_stmt_stats(const gw_store_conn_t *c, size_t *cached, uint64_t *prepares)
{
    *cached = 0;
    *prepares = 0;
    if (c->be->stmt_stats != NULL)
        c->be->stmt_stats(c->h, cached, prepares);
}

uint64_t gw_store_stmt_hash(const char *sql, const void *tag, size_t taglen)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)sql; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    for (size_t i = 0; i < taglen; i++)
        h = (h ^ ((const unsigned char *)tag)[i]) * 1099511628211ull;
    return h;
}

int gw_store_begin(gw_store_conn_t *c)
{
    return c->be->exec(c->h, c->be->begin_sql, NULL, 0, NULL, c->err, sizeof(c->err));
}

int gw_store_commit(gw_store_conn_t *c)
{
    int st = c->be->exec(c->h, "COMMIT", NULL, 0, NULL, c->err, sizeof(c->err));
    if (st != GW_STORE_OK && c->be->in_tx(c->h))
        gw_store_rollback(c); /* a failed COMMIT may leave the transaction open (SQLite BUSY) */
    return st;
}

int gw_store_rollback(gw_store_conn_t *c)
{
    if (!c->be->in_tx(c->h))
        return GW_STORE_OK;
    char scratch[GW_STORE_ERR_MAX];
    return c->be->exec(c->h, "ROLLBACK", NULL, 0, NULL, scratch, sizeof(scratch)); /* keeps c->err */
}

int gw_store_tx(gw_store_conn_t *c, gw_store_job_fn fn, void *ud)
{
    int st = gw_store_begin(c);
    if (st != GW_STORE_OK)
        return st;
    st = fn(c, ud);
    if (st != GW_STORE_OK) {
        gw_store_rollback(c);
        return st;
    }
    return gw_store_commit(c);
}

int gw_store_fail(gw_store_conn_t *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    return status;
}

const char *gw_store_errmsg(const gw_store_conn_t *c)
{
    return c->err;
}

gw_store_kind_t gw_store_conn_kind(const gw_store_conn_t *c)
{
    return c->be->kind;
}

int gw_store_note_change(gw_store_conn_t *c, const char *kind, const char *id)
{
    char now[GW_STORE_TIME_LEN];
    gw_store_now_iso(now);
    gw_store_param_t p[] = {GW_P_TEXT(kind), GW_P_TEXT(id), GW_P_TEXT(now)};
    return gw_store_exec(c, "INSERT INTO changes (kind, id, at) VALUES ($1, $2, $3)", p, 3, NULL);
}

/* ---- migrations ------------------------------------------------------------------------------ */

typedef struct migrate_job {
    const gw_store_migration_t *list;
    size_t n;
    json_t *applied;
} migrate_job_t;

/* The leading number of a migration name ("0007_x" → 7); -1 when it has none. */
static int64_t migration_version(const char *name)
{
    int64_t v = 0;
    const char *p = name;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (*p - '0');
        if (v > 1000000000)
            return -1;
    }
    return p == name || *p != '_' ? -1 : v;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Applies m unless schema_migrations lists it; checks it in the same transaction. */
static int apply_one(gw_store_conn_t *c, const gw_store_migration_t *m, int64_t version, json_t *applied)
{
    char sum[65], now[GW_STORE_TIME_LEN];
    sha256_hex(m->sql, m->len, sum);
    int st = gw_store_begin(c);
    if (st != GW_STORE_OK)
        return st;
    json_t *rows = NULL;
    gw_store_param_t pv[] = {GW_P_INT(version)};
    st = gw_store_query(c, "SELECT name, checksum FROM schema_migrations WHERE version = $1", pv, 1, &rows);
    if (st != GW_STORE_OK)
        goto out;
    if (json_array_size(rows) > 0) {
        const char *had = json_string_value(json_object_get(json_array_get(rows, 0), "checksum"));
        if (had != NULL && strcmp(had, sum) != 0)
            st = gw_store_fail(c, GW_STORE_ERROR,
                               "migration %s was changed after it was applied (migrations are forward-only: "
                               "add a new file instead)",
                               m->name);
        goto out;
    }
    char *sql = strndup(m->sql, m->len);
    if (sql == NULL) {
        st = gw_store_fail(c, GW_STORE_ERROR, "out of memory");
        goto out;
    }
    st = c->be->script(c->h, sql, c->err, sizeof(c->err));
    free(sql);
    if (st != GW_STORE_OK) {
        char why[GW_STORE_ERR_MAX];
        snprintf(why, sizeof(why), "%s", c->err);
        gw_store_fail(c, st, "migration %s: %s", m->name, why);
        goto out;
    }
    gw_store_now_iso(now);
    gw_store_param_t pr[] = {GW_P_INT(version), GW_P_TEXT(m->name), GW_P_TEXT(sum), GW_P_TEXT(now)};
    st = gw_store_exec(
        c, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)", pr,
        4, NULL);
    if (st == GW_STORE_OK)
        json_array_append_new(applied, json_string(m->name));
out:
    json_decref(rows);
    if (st == GW_STORE_OK)
        return gw_store_commit(c);
    gw_store_rollback(c);
    return st;
}

static int cmp_migration(const void *a, const void *b)
{
    const gw_store_migration_t *const *x = a, *const *y = b;
    int64_t vx = migration_version((*x)->name), vy = migration_version((*y)->name);
    return vx < vy ? -1 : vx > vy;
}

static int migrate_locked(gw_store_conn_t *c, migrate_job_t *mj)
{
    int st = c->be->script(c->h, c->be->migrations_table_sql, c->err, sizeof(c->err));
    if (st != GW_STORE_OK)
        return st;
    const gw_store_migration_t **mine = calloc(mj->n + 1, sizeof(*mine));
    if (mine == NULL)
        return gw_store_fail(c, GW_STORE_ERROR, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < mj->n; i++) {
        if (strcmp(mj->list[i].backend, c->be->name) != 0)
            continue;
        if (migration_version(mj->list[i].name) < 0) {
            st =
                gw_store_fail(c, GW_STORE_ERROR, "migration %s/%s: the name must start with a number and '_'",
                              mj->list[i].backend, mj->list[i].name);
            goto out;
        }
        mine[k++] = &mj->list[i];
    }
    qsort(mine, k, sizeof(*mine), cmp_migration);
    for (size_t i = 0; i + 1 < k; i++) {
        if (migration_version(mine[i]->name) == migration_version(mine[i + 1]->name)) {
            st = gw_store_fail(c, GW_STORE_ERROR, "migrations %s and %s have the same number", mine[i]->name,
                               mine[i + 1]->name);
            goto out;
        }
    }
    for (size_t i = 0; i < k && st == GW_STORE_OK; i++)
        st = apply_one(c, mine[i], migration_version(mine[i]->name), mj->applied);
out:
    free(mine);
    return st;
}

static int migrate_job(gw_store_conn_t *c, void *ud)
{
    int st = c->be->migrate_lock(c->h, 1, c->err, sizeof(c->err));
    if (st != GW_STORE_OK)
        return st;
    st = migrate_locked(c, ud);
    char scratch[GW_STORE_ERR_MAX];
    c->be->migrate_lock(c->h, 0, scratch, sizeof(scratch));
    return st;
}

int gw_store_migrate_list(gw_store_t *s, const gw_store_migration_t *list, size_t n, json_t **applied,
                          char *err, size_t errlen)
{
    migrate_job_t mj = {.list = list, .n = n, .applied = json_array()};
    int st = gw_store_run(s, migrate_job, &mj, err, errlen);
    if (applied != NULL && st == GW_STORE_OK)
        *applied = mj.applied;
    else
        json_decref(mj.applied);
    if (applied != NULL && st != GW_STORE_OK)
        *applied = NULL;
    return st;
}

int gw_store_migrate(gw_store_t *s, json_t **applied, char *err, size_t errlen)
{
    return gw_store_migrate_list(s, gw_store_builtin_migrations, gw_store_builtin_migrations_count, applied,
                                 err, errlen);
}

/* ---- time ------------------------------------------------------------------------------------ */

#define MIN_MS (-62135596800000LL) /* 0001-01-01T00:00:00.000Z */
#define MAX_MS 253402300799999LL   /* 9999-12-31T23:59:59.999Z */

/* Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic of civil calendars). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned mp = m > 2 ? m - 3 : m + 9; /* months since March */
    unsigned doy = (153 * mp + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void gw_store_time_iso(int64_t unix_ms, char out[GW_STORE_TIME_LEN])
{
    if (unix_ms < MIN_MS)
        unix_ms = MIN_MS;
    if (unix_ms > MAX_MS)
        unix_ms = MAX_MS;
    int64_t secs = unix_ms / 1000, ms = unix_ms % 1000;
    if (ms < 0)
        ms += 1000, secs--;
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* "YYYY-MM-DDTHH:MM:SS.sssZ": every field is in range after the clamp above */
    static const char shape[] = "0000-00-00T00:00:00.000Z";
    _Static_assert(sizeof(shape) == GW_STORE_TIME_LEN, "timestamp shape");
    const int fields[][3] = {{0, 4, tm.tm_year + 1900}, {5, 2, tm.tm_mon + 1}, {8, 2, tm.tm_mday},
                             {11, 2, tm.tm_hour},       {14, 2, tm.tm_min},    {17, 2, tm.tm_sec},
                             {20, 3, (int)ms}};
    memcpy(out, shape, sizeof(shape));
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        int v = fields[f][2];
        for (int k = fields[f][0] + fields[f][1] - 1; k >= fields[f][0]; k--, v /= 10)
            out[k] = (char)('0' + v % 10);
    }
}

void gw_store_now_iso(char out[GW_STORE_TIME_LEN])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    gw_store_time_iso((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

static int parse_offset(const char *p, int *off_min)
{
    if (*p == '\0' || ((*p == 'Z' || *p == 'z') && p[1] == '\0')) {
        *off_min = 0;
        return 0;
    }
    int sign = *p == '+' ? 1 : *p == '-' ? -1 : 0, hh, mm = 0;
    if (sign == 0)
        return -1;
    p++;
    if (digits(&p, 2, &hh) != 0 || hh > 23)
        return -1;
    if (*p == ':')
        p++;
    if (*p != '\0' && (digits(&p, 2, &mm) != 0 || mm > 59))
        return -1;
    if (*p != '\0')
        return -1;
    *off_min = sign * (hh * 60 + mm);
    return 0;
}

int gw_store_time_parse(const char *s, int64_t *unix_ms)
{
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (s == NULL || digits(&p, 4, &y) != 0 || *p++ != '-' || digits(&p, 2, &mo) != 0 || *p++ != '-' ||
        digits(&p, 2, &d) != 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || y < 1)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (digits(&p, 2, &h) != 0 || *p++ != ':' || digits(&p, 2, &mi) != 0)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) != 0)
                return -1;
            if (*p == '.') {
                p++;
                int nd = 0;
                for (; *p >= '0' && *p <= '9'; p++, nd++) {
                    if (nd < 3)
                        ms = ms * 10 + (*p - '0');
                }
                if (nd == 0)
                    return -1;
                for (; nd < 3; nd++)
                    ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 60)
            return -1;
        if (parse_offset(p, &off) != 0)
            return -1;
    } else if (*p != '\0') {
        return -1;
    }
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off * 60;
    *unix_ms = secs * 1000 + ms;
    return 0;
}

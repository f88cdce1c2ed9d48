/*
 * store_pg.c — the PostgreSQL backend: one libpq connection, used only by the store thread,
 * with blocking calls (they block the store thread, never a loop).
 *
 * Connection loss is a normal path. Before each job the backend checks the connection: a
 * server that went away (restart, failover, idle kill) has usually sent a FATAL message and
 * closed the socket, which shows as a readable socket while we are idle; we notice it there and
 * reconnect before the job runs, so the job does not fail on a stale connection. When the
 * server cannot be reached the job fails at once with GW_STORE_UNAVAILABLE and the next attempt
 * waits 50 ms, doubling to 5 s while failures continue; a connection that worked is retried at
 * once after it breaks. TCP keepalives and a TCP user timeout bound how long a dead peer can
 * hold a query.
 *
 * Sessions run in UTC with ISO dates. Parameters go as text; integers, reals and booleans are
 * typed (int8, float8, bool, so `$1 + $2` works as in SQLite), text and JSON are left for
 * PostgreSQL to infer from the statement (a text parameter fills a timestamptz or jsonb column). Results are
 * read as text and converted by column type: integers, booleans, jsonb/json parsed, timestamps rewritten as
 * "YYYY-MM-DDTHH:MM:SS.sssZ" to match SQLite.
 *
 * Statement cache. The _cached calls keep up to GW_STORE_STMT_CACHE named prepared statements
 * ("tg_s<N>") per connection, keyed by SQL text and parameter types (the types are fixed when a
 * statement is prepared, so the same text sent once with a NULL and once with an integer in one
 * place is two statements), least recently used evicted with DEALLOCATE. A new connection starts
 * with an empty cache (the server forgot them all). PostgreSQL replans a prepared statement after
 * DDL by itself, except when the result's row type changed (0A000 "cached plan must not change
 * result type") or the statement is gone (26000, e.g. after DISCARD ALL): then the entry is marked
 * stale and prepared again at its next use — at once, with one retry, when no transaction is
 * open; inside one the transaction is already aborted, so the call fails with GW_STORE_BUSY.
 */
#include "gateway/store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 50u
#define BACKOFF_MAX_MS 5000u
#define MAX_PARAMS 65535
#define MIGRATE_LOCK_KEY "8388068141855844" /* pg_advisory_lock key shared by every instance */

/* Type OIDs of the built-in types we convert (pg_type.h; stable across server versions). */
enum {
    OID_BOOL = 16,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_JSON = 114,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_TIMESTAMP = 1114,
    OID_TIMESTAMPTZ = 1184,
    OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

typedef struct pcached {
    uint64_t hash;
    char *sql;
    Oid *types;
    size_t n;
    uint64_t used; /* LRU tick */
    int stale;     /* prepare again (under a new name) before the next use */
    int on_server; /* the server holds .name (DEALLOCATE it when dropping the entry) */
    char name[32];
} pcached_t;

typedef struct pg {
    char *url;
    PGconn *conn;
    pcached_t cache[GW_STORE_STMT_CACHE];
    size_t ncache;
    uint64_t tick, prepares, names;
    uint64_t next_try_ms; /* no connection attempt before this (monotonic ms) */
    unsigned backoff_ms;  /* 0 after a success */
    char last_err[256];
} pg_t;

/* Copies libpq's message as one line: its line breaks and tabs become single spaces. */
static void copy_msg(char *dst, size_t len, const char *msg)
{
    size_t n = 0;
    for (const char *p = msg != NULL && *msg ? msg : "unknown error"; *p && n + 1 < len; p++) {
        char ch = *p == '\n' || *p == '\t' || *p == '\r' ? ' ' : *p;
        if (ch != ' ' || (n > 0 && dst[n - 1] != ' '))
            dst[n++] = ch;
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

/* Replaces every copy of the URL's password in msg (libpq quotes the URL in some messages). */
static void redact(char *msg, const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return;
    p += 3;
    const char *at = strchr(p, '@'), *slash = strchr(p, '/');
    if (at == NULL || (slash != NULL && slash < at))
        return;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL || at - colon - 1 <= 0)
        return;
    char pw[256];
    snprintf(pw, sizeof(pw), "%.*s", (int)(at - colon - 1), colon + 1);
    size_t pl = strlen(pw), ml = pl < 3 ? pl : 3;
    for (char *hit = msg; (hit = strstr(hit, pw)) != NULL; hit += ml) {
        memset(hit, '*', ml);
        memmove(hit + ml, hit + pl, strlen(hit + pl) + 1);
    }
}

static void on_notice(void *arg, const char *message)
{
    /* NOTICEs ("relation already exists, skipping") are not errors: nothing to report */
}

static int pg_open(const char *url, void **h, char *desc, size_t desclen, char *err, size_t errlen)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (opts == NULL) {
        char why[256];
        copy_msg(why, sizeof(why), msg);
        PQfreemem(msg);
        redact(why, url);
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "database_url: %s", why);
    }
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char **slot = strcmp(o->keyword, "host") == 0     ? &host
                            : strcmp(o->keyword, "port") == 0   ? &port
                            : strcmp(o->keyword, "dbname") == 0 ? &db
                            : strcmp(o->keyword, "user") == 0   ? &user
                                                                : NULL;
        if (slot != NULL && o->val != NULL && *o->val)
            *slot = o->val;
    }
    snprintf(desc, desclen, "postgres %s%s%s:%s/%s", user ? user : "", user ? "@" : "",
             host ? host : "localhost", port ? port : "5432", db ? db : (user ? user : ""));
    PQconninfoFree(opts);
    pg_t *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->url = strdup(url)) == NULL) {
        free(p);
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "out of memory");
    }
    *h = p; /* connects on the store thread, before the first job */
    return GW_STORE_OK;
}

/* Forgets every cached statement (the connection that knew them is gone or going). */
static void cache_clear(pg_t *p)
{
    for (size_t i = 0; i < p->ncache; i++) {
        free(p->cache[i].sql);
        free(p->cache[i].types);
    }
    p->ncache = 0;
}

static void pg_close(void *h)
{
    pg_t *p = h;
    cache_clear(p);
    if (p->conn != NULL)
        PQfinish(p->conn);
    free(p->url);
    free(p);
}

/*
 * 1 when an idle connection has input waiting. We never LISTEN and read every result to the end,
 * so input while idle means the server is going away (it sends FATAL, then closes: pg_ctl stop,
 * restart, failover, pg_terminate_backend). libpq would only notice at the next query, which
 * would then fail; we reconnect instead.
 */
static int peer_gone(PGconn *conn)
{
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    return pfd.fd < 0 || poll(&pfd, 1, 0) != 0;
}

static int connect_now(pg_t *p)
{
    static const char *const keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                                       "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                       "application_name",    "dbname",           NULL};
    /* the URL comes last: what it says wins over these defaults */
    const char *vals[] = {"10", "1", "30", "10", "3", "30000", "tollgate", p->url, NULL};
    p->conn = PQconnectdbParams(keys, vals, 1);
    if (p->conn == NULL) {
        snprintf(p->last_err, sizeof(p->last_err), "out of memory");
        return -1;
    }
    if (PQstatus(p->conn) != CONNECTION_OK) {
        copy_msg(p->last_err, sizeof(p->last_err), PQerrorMessage(p->conn));
        redact(p->last_err, p->url);
        goto fail;
    }
    PQsetNoticeProcessor(p->conn, on_notice, NULL);
    PGresult *r = PQexec(p->conn, "SET TIME ZONE 'UTC'; SET DateStyle TO 'ISO, YMD'; "
                                  "SET client_min_messages TO warning");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        copy_msg(p->last_err, sizeof(p->last_err), PQresultErrorMessage(r));
    PQclear(r);
    if (ok)
        return 0;
fail:
    PQfinish(p->conn);
    p->conn = NULL;
    return -1;
}

static int pg_ready(void *h, char *err, size_t errlen)
{
    pg_t *p = h;
    if (p->conn != NULL) {
        if (PQstatus(p->conn) == CONNECTION_OK && !peer_gone(p->conn))
            return GW_STORE_OK;
        PQfinish(p->conn); /* lost: reconnect now, no backoff for the first attempt */
        p->conn = NULL;
        cache_clear(p);
    }
    uint64_t now = gw_store_mono_ms();
    if (now < p->next_try_ms)
        return gw_store_errf(err, errlen, GW_STORE_UNAVAILABLE,
                             "postgres unavailable (retry in %" PRIu64 " ms): %s", p->next_try_ms - now,
                             p->last_err);
    if (connect_now(p) == 0) {
        p->backoff_ms = 0;
        return GW_STORE_OK;
    }
    p->backoff_ms = p->backoff_ms == 0                    ? BACKOFF_MIN_MS
                    : p->backoff_ms >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS
                                                          : p->backoff_ms * 2;
    p->next_try_ms = gw_store_mono_ms() + p->backoff_ms;
    return gw_store_errf(err, errlen, GW_STORE_UNAVAILABLE, "postgres unavailable: %s", p->last_err);
}

static int classify(const char *sqlstate)
{
    if (sqlstate == NULL || strlen(sqlstate) != 5)
        return GW_STORE_ERROR;
    if (strncmp(sqlstate, "23", 2) == 0)
        return GW_STORE_CONSTRAINT;
    if (strcmp(sqlstate, "08P01") == 0)
        return GW_STORE_ERROR; /* protocol violation: the statement and its parameters disagree */
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0 ||
        strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 || strcmp(sqlstate, "57P03") == 0)
        return GW_STORE_UNAVAILABLE;
    if (strcmp(sqlstate, "40001") == 0 || strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "55P03") == 0 ||
        strcmp(sqlstate, "57014") == 0)
        return GW_STORE_BUSY;
    return GW_STORE_ERROR;
}

/* GW_STORE_OK when r holds a successful result; otherwise the status and message. */
static int result_status(pg_t *p, PGresult *r, char *err, size_t errlen)
{
    ExecStatusType es = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK)
        return GW_STORE_OK;
    char msg[GW_STORE_ERR_MAX];
    copy_msg(msg, sizeof(msg), r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(p->conn));
    int st = r != NULL ? classify(PQresultErrorField(r, PG_DIAG_SQLSTATE)) : GW_STORE_UNAVAILABLE;
    if (PQstatus(p->conn) != CONNECTION_OK)
        st = GW_STORE_UNAVAILABLE; /* pg_ready reconnects before the next job */
    if (es == PGRES_EMPTY_QUERY)
        snprintf(msg, sizeof(msg), "empty statement");
    else if (es != PGRES_FATAL_ERROR && es != PGRES_NONFATAL_ERROR)
        snprintf(msg, sizeof(msg), "unexpected result %s", PQresStatus(es));
    return gw_store_errf(err, errlen, st, "postgres: %s", msg);
}

typedef struct params {
    const char **values;
    Oid *types;   /* int8, float8, bool for numbers; 0 (inferred) for text and JSON */
    char *nums;   /* 32 bytes per parameter for numbers */
    char **owned; /* serialized JSON */
    size_t n;
} params_t;

static void params_free(params_t *pp)
{
    for (size_t i = 0; pp->owned != NULL && i < pp->n; i++)
        free(pp->owned[i]);
    free(pp->owned);
    free(pp->nums);
    free(pp->values);
    free(pp->types);
}

static int params_build(params_t *pp, const gw_store_param_t *p, size_t n, char *err, size_t errlen)
{
    memset(pp, 0, sizeof(*pp));
    if (n == 0)
        return GW_STORE_OK;
    if (n > MAX_PARAMS)
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "too many parameters (%zu)", n);
    pp->n = n;
    pp->values = calloc(n, sizeof(*pp->values));
    pp->types = calloc(n, sizeof(*pp->types));
    pp->nums = calloc(n, 32);
    pp->owned = calloc(n, sizeof(*pp->owned));
    if (pp->values == NULL || pp->types == NULL || pp->nums == NULL || pp->owned == NULL)
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char *num = pp->nums + 32 * i;
        switch (p[i].type) {
        case GW_SP_NULL:
            break;
        case GW_SP_INT:
            snprintf(num, 32, "%" PRId64, p[i].i);
            pp->values[i] = num;
            pp->types[i] = OID_INT8;
            break;
        case GW_SP_REAL:
            if (!isfinite(p[i].d))
                return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%zu: not a finite number",
                                     i + 1);
            snprintf(num, 32, "%.17g", p[i].d);
            pp->values[i] = num;
            pp->types[i] = OID_FLOAT8;
            break;
        case GW_SP_BOOL:
            pp->values[i] = p[i].i ? "true" : "false";
            pp->types[i] = OID_BOOL;
            break;
        case GW_SP_TEXT:
            pp->values[i] = p[i].s;
            break;
        case GW_SP_JSON:
            if (p[i].j != NULL) {
                pp->owned[i] = json_dumps(p[i].j, JSON_COMPACT | JSON_ENCODE_ANY);
                if (pp->owned[i] == NULL)
                    return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%zu: cannot serialize JSON",
                                         i + 1);
                pp->values[i] = pp->owned[i];
            }
            break;
        default:
            return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%zu: unknown type", i + 1);
        }
    }
    return GW_STORE_OK;
}

static PGresult *run(pg_t *p, const char *sql, const gw_store_param_t *prm, size_t n, int *st, char *err,
                     size_t errlen)
{
    params_t pp;
    *st = params_build(&pp, prm, n, err, errlen);
    if (*st != GW_STORE_OK) {
        params_free(&pp);
        return NULL;
    }
    PGresult *r = PQexecParams(p->conn, sql, (int)n, pp.types, pp.values, NULL, NULL, 0);
    params_free(&pp);
    *st = result_status(p, r, err, errlen);
    if (*st != GW_STORE_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

/* ---- the statement cache ---- */

/*
 * Drops e's statement on the server, when it holds it and the connection can take a command:
 * DEALLOCATE is not transactional and succeeds inside a transaction, but in an aborted one it
 * fails (and a failing command would abort a healthy one), so there the name is left behind —
 * names are never reused and the server forgets them with the connection.
 */
static void deallocate(pg_t *p, pcached_t *e)
{
    if (e->on_server && PQtransactionStatus(p->conn) != PQTRANS_INERROR) {
        char sql[64];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", e->name);
        PQclear(PQexec(p->conn, sql));
    }
    e->on_server = 0;
}

/* Prepares e's statement on the server under a fresh name. */
static int cache_prepare(pg_t *p, pcached_t *e, char *err, size_t errlen)
{
    snprintf(e->name, sizeof(e->name), "tg_s%" PRIu64, ++p->names);
    PGresult *r = PQprepare(p->conn, e->name, e->sql, (int)e->n, e->types);
    int st = result_status(p, r, err, errlen);
    PQclear(r);
    if (st == GW_STORE_OK) {
        e->stale = 0;
        e->on_server = 1;
        p->prepares++;
    }
    return st;
}

/* The cache entry for (sql, types), prepared; NULL with the status when it cannot be had. */
static pcached_t *cache_get(pg_t *p, const char *sql, const Oid *types, size_t n, int *st, char *err,
                            size_t errlen)
{
    uint64_t hash = gw_store_stmt_hash(sql, types, n * sizeof(*types));
    pcached_t *e = NULL;
    p->tick++;
    for (size_t i = 0; i < p->ncache && e == NULL; i++) {
        pcached_t *c = &p->cache[i];
        if (c->hash == hash && c->n == n && strcmp(c->sql, sql) == 0 &&
            (n == 0 || memcmp(c->types, types, n * sizeof(*types)) == 0))
            e = c;
    }
    if (e != NULL && e->stale) {
        deallocate(p, e);
    } else if (e == NULL) {
        char *copy = strdup(sql);
        Oid *tcopy = malloc((n ? n : 1) * sizeof(*tcopy));
        if (copy == NULL || tcopy == NULL) {
            free(copy);
            free(tcopy);
            *st = gw_store_errf(err, errlen, GW_STORE_ERROR, "out of memory");
            return NULL;
        }
        if (n > 0)
            memcpy(tcopy, types, n * sizeof(*types));
        if (p->ncache == GW_STORE_STMT_CACHE) {
            e = &p->cache[0];
            for (size_t i = 1; i < p->ncache; i++)
                if (p->cache[i].used < e->used)
                    e = &p->cache[i];
            deallocate(p, e);
            free(e->sql);
            free(e->types);
        } else {
            e = &p->cache[p->ncache++];
        }
        *e = (pcached_t){.hash = hash, .sql = copy, .types = tcopy, .n = n, .stale = 1};
    }
    e->used = p->tick;
    if (e->stale && (*st = cache_prepare(p, e, err, errlen)) != GW_STORE_OK)
        return NULL; /* stays stale: the next call prepares it again */
    *st = GW_STORE_OK;
    return e;
}

/* 1 when r failed because the prepared statement itself is out of date or gone. */
static int stale_statement(const PGresult *r)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL && (strcmp(state, "0A000") == 0 || strcmp(state, "26000") == 0);
}

static PGresult *run_cached(pg_t *p, const char *sql, const gw_store_param_t *prm, size_t n, int *st,
                            char *err, size_t errlen)
{
    params_t pp;
    *st = params_build(&pp, prm, n, err, errlen);
    PGresult *r = NULL;
    for (int attempt = 0; *st == GW_STORE_OK && attempt < 2; attempt++) {
        if (attempt > 0) /* the second attempt prepares the statement afresh */
            snprintf(err, errlen, "%s", "");
        pcached_t *e = cache_get(p, sql, pp.types, n, st, err, errlen);
        if (e == NULL)
            break;
        r = PQexecPrepared(p->conn, e->name, (int)n, pp.values, NULL, NULL, 0);
        *st = result_status(p, r, err, errlen);
        if (*st == GW_STORE_OK || !stale_statement(r))
            break;
        e->stale = 1;
        if (strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000") == 0)
            e->on_server = 0; /* gone already (DISCARD ALL, DEALLOCATE ALL) */
        PQclear(r);
        r = NULL;
        if (PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
            /* the transaction is aborted: the caller rolls back and runs it again */
            *st = gw_store_errf(err, errlen, GW_STORE_BUSY,
                                "postgres: a cached statement went out of date (schema change); retry");
            break;
        }
        if (attempt == 0)
            *st = GW_STORE_OK; /* retry once, outside a transaction */
    }
    params_free(&pp);
    if (*st != GW_STORE_OK) {
        PQclear(r);
        return NULL;
    }
    return r;
}

static int not_connected(char *err, size_t errlen)
{
    return gw_store_errf(err, errlen, GW_STORE_UNAVAILABLE, "postgres: not connected");
}

static int exec_with(pg_t *p, PGresult *r, int st, int64_t *changes)
{
    if (r == NULL)
        return st;
    if (changes != NULL) {
        const char *t = PQcmdTuples(r);
        *changes = t != NULL && *t ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(r);
    return GW_STORE_OK;
}

static int pg_exec(void *h, const char *sql, const gw_store_param_t *prm, size_t n, int64_t *changes,
                   char *err, size_t errlen)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return not_connected(err, errlen);
    int st;
    PGresult *r = run(p, sql, prm, n, &st, err, errlen);
    return exec_with(p, r, st, changes);
}

static int pg_exec_cached(void *h, const char *sql, const gw_store_param_t *prm, size_t n, int64_t *changes,
                          char *err, size_t errlen)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return not_connected(err, errlen);
    int st;
    PGresult *r = run_cached(p, sql, prm, n, &st, err, errlen);
    return exec_with(p, r, st, changes);
}

static json_t *number_value(const char *v, int integral)
{
    char *end;
    if (integral) {
        errno = 0;
        long long i = strtoll(v, &end, 10);
        if (errno == 0 && end != v && *end == '\0')
            return json_integer(i);
    }
    double d = strtod(v, &end);
    if (end != v && *end == '\0' && isfinite(d))
        return json_real(d);
    return json_string(v); /* NaN, Infinity, or past int64 and double */
}

static json_t *timestamp_value(const char *v)
{
    int64_t ms;
    char iso[GW_STORE_TIME_LEN];
    if (gw_store_time_parse(v, &ms) != 0)
        return json_string(v); /* infinity, BC dates: as PostgreSQL wrote them */
    gw_store_time_iso(ms, iso);
    return json_string(iso);
}

static json_t *field_value(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    const char *v = PQgetvalue(r, row, col);
    switch (PQftype(r, col)) {
    case OID_BOOL:
        return json_boolean(v[0] == 't');
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return number_value(v, 1);
    case OID_NUMERIC:
        return number_value(v, strchr(v, '.') == NULL);
    case OID_FLOAT4:
    case OID_FLOAT8:
        return number_value(v, 0);
    case OID_JSON:
    case OID_JSONB: {
        json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
        return j != NULL ? j : json_string(v);
    }
    case OID_TIMESTAMP:
    case OID_TIMESTAMPTZ:
        return timestamp_value(v);
    default: {
        json_t *s = json_string(v);
        return s != NULL ? s : json_null();
    }
    }
}

static int rows_of(PGresult *r, int st, json_t **rows)
{
    if (r == NULL)
        return st;
    json_t *out = json_array();
    int nrows = PQntuples(r), ncols = PQnfields(r);
    for (int i = 0; i < nrows; i++) {
        json_t *row = json_object();
        for (int c = 0; c < ncols; c++)
            json_object_set_new(row, PQfname(r, c), field_value(r, i, c));
        json_array_append_new(out, row);
    }
    PQclear(r);
    *rows = out;
    return GW_STORE_OK;
}

static int pg_query(void *h, const char *sql, const gw_store_param_t *prm, size_t n, json_t **rows, char *err,
                    size_t errlen)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return not_connected(err, errlen);
    int st;
    PGresult *r = run(p, sql, prm, n, &st, err, errlen);
    return rows_of(r, st, rows);
}

static int pg_query_cached(void *h, const char *sql, const gw_store_param_t *prm, size_t n, json_t **rows,
                           char *err, size_t errlen)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return not_connected(err, errlen);
    int st;
    PGresult *r = run_cached(p, sql, prm, n, &st, err, errlen);
    return rows_of(r, st, rows);
}

static void pg_stmt_stats(void *h, size_t *cached, uint64_t *prepares)
{
    const pg_t *p = h;
    *cached = p->ncache;
    *prepares = p->prepares;
}

static int pg_script(void *h, const char *sql, char *err, size_t errlen)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return not_connected(err, errlen);
    PGresult *r = PQexec(p->conn, sql);
    int st = result_status(p, r, err, errlen);
    PQclear(r);
    return st;
}

static int pg_in_tx(void *h)
{
    pg_t *p = h;
    if (p->conn == NULL)
        return 0;
    PGTransactionStatusType t = PQtransactionStatus(p->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int pg_migrate_lock(void *h, int on, char *err, size_t errlen)
{
    return pg_script(h,
                     on ? "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")"
                        : "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")",
                     err, errlen);
}

const gw_store_backend_t gw_store_pg_backend = {
    .name = "postgres",
    .abi = GW_STORE_BACKEND_ABI,
    .kind = GW_STORE_POSTGRES,
    .begin_sql = "BEGIN",
    .migrations_table_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                            "version BIGINT NOT NULL PRIMARY KEY, name TEXT NOT NULL, "
                            "checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    .open = pg_open,
    .close = pg_close,
    .ready = pg_ready,
    .exec = pg_exec,
    .query = pg_query,
    .script = pg_script,
    .in_tx = pg_in_tx,
    .migrate_lock = pg_migrate_lock,
    .exec_cached = pg_exec_cached,
    .query_cached = pg_query_cached,
    .stmt_stats = pg_stmt_stats,
};

/*
 * store_sqlite.c — the SQLite backend: one connection to a WAL-mode file, used only by the
 * store thread.
 *
 * WAL lets readers in other processes (sqlite3 CLI, backups) run beside the writer; the busy
 * timeout makes a second Tollgate process on the same file wait for the write lock instead of
 * failing at once; synchronous=FULL makes a committed admin write survive a power cut (spend has
 * its own journal, and the store thread is the only one that waits for the fsync).
 *
 * Parameters are written $1, $2, … as in PostgreSQL; SQLite sees them as named parameters and
 * we bind each by the number in its name. Results are typed by the column's declared type:
 * BOOLEAN columns come back as true/false and JSON columns as parsed JSON values.
 *
 * Statement cache. The _cached calls keep up to GW_STORE_STMT_CACHE compiled statements, keyed by
 * their SQL text (hash, then strcmp), evicting the least recently used. A cached statement is
 * reset and its bindings cleared right after each use, so it holds no read transaction and no
 * pointer to the caller's parameters between calls. SQLite recompiles a statement whose schema
 * changed by itself (sqlite3_prepare_v2), so DDL needs nothing from us.
 */
#include "gateway/store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BUSY_TIMEOUT_MS 5000

typedef struct cached {
    uint64_t hash;
    const char *src; /* the caller's pointer it was last found by: tried first, then compared */
    char *sql;
    sqlite3_stmt *st;
    uint64_t used; /* tick of the last use: LRU */
} cached_t;

typedef struct lite {
    sqlite3 *db;
    cached_t cache[GW_STORE_STMT_CACHE];
    size_t ncache;
    uint64_t tick, prepares;
} lite_t;

static int status_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return GW_STORE_OK;
    case SQLITE_CONSTRAINT:
        return GW_STORE_CONSTRAINT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return GW_STORE_BUSY;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_NOMEM:
        return GW_STORE_UNAVAILABLE;
    default:
        return GW_STORE_ERROR;
    }
}

static int fail(sqlite3 *db, int rc, char *err, size_t errlen)
{
    return gw_store_errf(err, errlen, status_of(rc), "sqlite: %s",
                         db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

static int lite_open(const char *path, void **h, char *desc, size_t desclen, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc =
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        gw_store_errf(err, errlen, GW_STORE_ERROR, "cannot open %s: %s", path,
                      db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return GW_STORE_ERROR;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* journal_mode answers with the mode in force: anything but "wal" means WAL is unavailable */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int wal = mode != NULL && strcasecmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal ||
        sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL, NULL) != SQLITE_OK) {
        gw_store_errf(err, errlen, GW_STORE_ERROR, "cannot use %s: %s", path,
                      !wal && rc == SQLITE_ROW ? "WAL journal mode unavailable" : sqlite3_errmsg(db));
        sqlite3_close(db);
        return GW_STORE_ERROR;
    }
    lite_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        sqlite3_close(db);
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "out of memory");
    }
    l->db = db;
    snprintf(desc, desclen, "sqlite %s", path);
    *h = l;
    return GW_STORE_OK;
}

static void lite_close(void *h)
{
    lite_t *l = h;
    for (size_t i = 0; i < l->ncache; i++) {
        sqlite3_finalize(l->cache[i].st);
        free(l->cache[i].sql);
    }
    sqlite3_close(l->db);
    free(l);
}

static int lite_ready(void *h, char *err, size_t errlen)
{
    return GW_STORE_OK;
}

static int bind_one(sqlite3_stmt *st, int idx, const gw_store_param_t *p, char *err, size_t errlen)
{
    int rc;
    switch (p->type) {
    case GW_SP_NULL:
        rc = sqlite3_bind_null(st, idx);
        break;
    case GW_SP_INT:
    case GW_SP_BOOL:
        rc = sqlite3_bind_int64(st, idx, p->type == GW_SP_BOOL ? p->i != 0 : p->i);
        break;
    case GW_SP_REAL:
        rc = sqlite3_bind_double(st, idx, p->d);
        break;
    case GW_SP_TEXT:
        rc = p->s != NULL ? sqlite3_bind_text(st, idx, p->s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
        break;
    case GW_SP_JSON: {
        if (p->j == NULL) {
            rc = sqlite3_bind_null(st, idx);
            break;
        }
        char *text = json_dumps(p->j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%d: cannot serialize JSON", idx);
        rc = sqlite3_bind_text(st, idx, text, -1, free);
        break;
    }
    default:
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%d: unknown type", idx);
    }
    return rc == SQLITE_OK ? GW_STORE_OK : fail(sqlite3_db_handle(st), rc, err, errlen);
}

/*
 * Binds ?N to params[N-1]. The SQL reaches SQLite with $N rewritten to ?N (see numbered_sql):
 * SQLite keeps named parameters ($N) in a list it searches linearly, so binding a statement with
 * hundreds of them by name costs quadratic time (it dominated the spend writer's profile), while
 * ?N is parameter number N directly.
 */
static int bind_all(sqlite3_stmt *st, const gw_store_param_t *params, size_t n, char *err, size_t errlen)
{
    int count = sqlite3_bind_parameter_count(st);
    if ((size_t)count > n)
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "parameter $%d has no value (%zu given)", count, n);
    for (int i = 1; i <= count; i++) {
        int stt = bind_one(st, i, &params[i - 1], err, errlen);
        if (stt != GW_STORE_OK)
            return stt;
    }
    return GW_STORE_OK;
}

/*
 * 1 when sql's parameters ($N outside quoted literals and identifiers) are exactly $1, $2, $3, …
 * in order, each once.
 */
static int params_in_order(const char *sql)
{
    char quote = 0;
    long want = 1;
    for (const char *p = sql; *p != '\0'; p++) {
        if (quote != 0) {
            if (*p == quote)
                quote = 0;
        } else if (*p == '\'' || *p == '"') {
            quote = *p;
        } else if (*p == '$' && p[1] >= '1' && p[1] <= '9') {
            char *end;
            if (strtol(p + 1, &end, 10) != want++)
                return 0;
            p = end - 1;
        }
    }
    return 1;
}

/*
 * The SQL as SQLite gets it. When the parameters are $1, $2, … in order (the common case, and
 * the bulk inserts), they become anonymous ?: SQLite looks up every named or numbered parameter
 * in a list linearly while compiling, which made a statement with hundreds of them cost
 * quadratic time. Otherwise $N becomes ?N (parameter number N). NULL when out of memory.
 */
static char *numbered_sql(const char *sql)
{
    size_t len = strlen(sql);
    char *out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    int anonymous = params_in_order(sql);
    char quote = 0;
    size_t o = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = sql[i];
        if (quote != 0) {
            if (ch == quote)
                quote = 0;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '$' && sql[i + 1] >= '1' && sql[i + 1] <= '9') {
            out[o++] = '?';
            if (anonymous)
                while (sql[i + 1] >= '0' && sql[i + 1] <= '9')
                    i++;
            continue;
        }
        out[o++] = ch;
    }
    return out;
}

/* Compiles exactly one statement of sql (with $N rewritten, see numbered_sql). */
static int compile(sqlite3 *db, const char *sql, sqlite3_stmt **out, char *err, size_t errlen)
{
    const char *tail = NULL;
    sqlite3_stmt *st = NULL;
    *out = NULL;
    char *text = numbered_sql(sql);
    if (text == NULL)
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "sqlite: out of memory");
    int rc = sqlite3_prepare_v2(db, text, -1, &st, &tail);
    if (rc != SQLITE_OK) {
        free(text);
        return fail(db, rc, err, errlen);
    }
    if (st == NULL) {
        free(text);
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "sqlite: empty statement");
    }
    for (; tail != NULL && *tail != '\0'; tail++) {
        if (*tail != ' ' && *tail != '\n' && *tail != '\t' && *tail != '\r' && *tail != ';') {
            sqlite3_finalize(st);
            free(text);
            return gw_store_errf(err, errlen, GW_STORE_ERROR, "sqlite: one statement per call");
        }
    }
    free(text);
    *out = st;
    return GW_STORE_OK;
}

static int prepare(sqlite3 *db, const char *sql, const gw_store_param_t *params, size_t n, sqlite3_stmt **out,
                   char *err, size_t errlen)
{
    sqlite3_stmt *st;
    int stt = compile(db, sql, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    stt = bind_all(st, params, n, err, errlen);
    if (stt != GW_STORE_OK) {
        sqlite3_finalize(st);
        return stt;
    }
    *out = st;
    return GW_STORE_OK;
}

/* Runs a bound statement to its end; rows ignored. */
static int step_exec(sqlite3 *db, sqlite3_stmt *st, int64_t *changes, char *err, size_t errlen)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    if (rc == SQLITE_DONE && changes != NULL)
        *changes = sqlite3_changes64(db);
    return rc == SQLITE_DONE ? GW_STORE_OK : fail(db, rc, err, errlen);
}

static int lite_exec(void *h, const char *sql, const gw_store_param_t *p, size_t n, int64_t *changes,
                     char *err, size_t errlen)
{
    sqlite3 *db = ((lite_t *)h)->db;
    sqlite3_stmt *st;
    int stt = prepare(db, sql, p, n, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    stt = step_exec(db, st, changes, err, errlen);
    sqlite3_finalize(st);
    return stt;
}

static int decl_is(const char *decl, const char *type)
{
    return decl != NULL && strcasecmp(decl, type) == 0;
}

static json_t *text_value(const char *text, int len, const char *decl)
{
    if (decl_is(decl, "JSON")) {
        json_t *v = json_loadb(text, (size_t)len, JSON_DECODE_ANY, NULL);
        if (v != NULL)
            return v;
    }
    json_t *s = json_stringn(text, (size_t)len);
    return s != NULL ? s : json_null(); /* not UTF-8: there is no JSON string for it */
}

static json_t *column_value(sqlite3_stmt *st, int i)
{
    const char *decl = sqlite3_column_decltype(st, i);
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: {
        sqlite3_int64 v = sqlite3_column_int64(st, i);
        return decl_is(decl, "BOOLEAN") ? json_boolean(v != 0) : json_integer(v);
    }
    case SQLITE_FLOAT:
        return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        const char *text = (const char *)sqlite3_column_text(st, i);
        return text_value(text != NULL ? text : "", sqlite3_column_bytes(st, i), decl);
    }
    default:
        return json_null();
    }
}

/* Runs a bound statement and collects its rows. */
static int step_query(sqlite3 *db, sqlite3_stmt *st, json_t **rows, char *err, size_t errlen)
{
    json_t *out = json_array();
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int ncol = sqlite3_column_count(st); /* after the step: it may have recompiled (schema change) */
        json_t *row = json_object();
        for (int i = 0; i < ncol; i++)
            json_object_set_new(row, sqlite3_column_name(st, i), column_value(st, i));
        json_array_append_new(out, row);
    }
    if (rc == SQLITE_DONE) {
        *rows = out;
        return GW_STORE_OK;
    }
    json_decref(out);
    return fail(db, rc, err, errlen);
}

static int lite_query(void *h, const char *sql, const gw_store_param_t *p, size_t n, json_t **rows, char *err,
                      size_t errlen)
{
    sqlite3 *db = ((lite_t *)h)->db;
    sqlite3_stmt *st;
    int stt = prepare(db, sql, p, n, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    stt = step_query(db, st, rows, err, errlen);
    sqlite3_finalize(st);
    return stt;
}

/* The cached statement for sql, compiled (and an older one evicted) when it is not there. */
static int lookup(lite_t *l, const char *sql, sqlite3_stmt **out, char *err, size_t errlen)
{
    l->tick++;
    /* callers pass the same constant text every time: a pointer match confirmed by strcmp
     * (vectorised) is cheaper than hashing a long INSERT byte by byte for every row */
    for (size_t i = 0; i < l->ncache; i++) {
        if (l->cache[i].src == sql && strcmp(l->cache[i].sql, sql) == 0) {
            l->cache[i].used = l->tick;
            *out = l->cache[i].st;
            return GW_STORE_OK;
        }
    }
    uint64_t hash = gw_store_stmt_hash(sql, NULL, 0);
    for (size_t i = 0; i < l->ncache; i++) {
        if (l->cache[i].hash == hash && strcmp(l->cache[i].sql, sql) == 0) {
            l->cache[i].used = l->tick;
            l->cache[i].src = sql;
            *out = l->cache[i].st;
            return GW_STORE_OK;
        }
    }
    sqlite3_stmt *st;
    int stt = compile(l->db, sql, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    char *copy = strdup(sql);
    if (copy == NULL) {
        sqlite3_finalize(st);
        return gw_store_errf(err, errlen, GW_STORE_ERROR, "sqlite: out of memory");
    }
    size_t slot = l->ncache;
    if (slot == GW_STORE_STMT_CACHE) {
        slot = 0;
        for (size_t i = 1; i < l->ncache; i++)
            if (l->cache[i].used < l->cache[slot].used)
                slot = i;
        sqlite3_finalize(l->cache[slot].st);
        free(l->cache[slot].sql);
    } else {
        l->ncache++;
    }
    l->cache[slot] = (cached_t){.hash = hash, .src = sql, .sql = copy, .st = st, .used = l->tick};
    l->prepares++;
    *out = st;
    return GW_STORE_OK;
}

/* After each use: no open read, no pointers to the caller's parameters. */
static void release(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int lite_exec_cached(void *h, const char *sql, const gw_store_param_t *p, size_t n, int64_t *changes,
                            char *err, size_t errlen)
{
    lite_t *l = h;
    sqlite3_stmt *st = NULL;
    int stt = lookup(l, sql, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    if ((stt = bind_all(st, p, n, err, errlen)) == GW_STORE_OK)
        stt = step_exec(l->db, st, changes, err, errlen);
    release(st);
    return stt;
}

static int lite_query_cached(void *h, const char *sql, const gw_store_param_t *p, size_t n, json_t **rows,
                             char *err, size_t errlen)
{
    lite_t *l = h;
    sqlite3_stmt *st = NULL;
    int stt = lookup(l, sql, &st, err, errlen);
    if (stt != GW_STORE_OK)
        return stt;
    if ((stt = bind_all(st, p, n, err, errlen)) == GW_STORE_OK)
        stt = step_query(l->db, st, rows, err, errlen);
    release(st);
    return stt;
}

static void lite_stmt_stats(void *h, size_t *cached, uint64_t *prepares)
{
    const lite_t *l = h;
    *cached = l->ncache;
    *prepares = l->prepares;
}

static int lite_script(void *h, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = sqlite3_exec(((lite_t *)h)->db, sql, NULL, NULL, &msg);
    int stt = rc == SQLITE_OK
                  ? GW_STORE_OK
                  : gw_store_errf(err, errlen, status_of(rc), "sqlite: %s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return stt;
}

static int lite_in_tx(void *h)
{
    return !sqlite3_get_autocommit(((lite_t *)h)->db);
}

static int lite_migrate_lock(void *h, int on, char *err, size_t errlen)
{
    return GW_STORE_OK; /* each migration's BEGIN IMMEDIATE already excludes other writers */
}

const gw_store_backend_t gw_store_sqlite_backend = {
    .name = "sqlite",
    .abi = GW_STORE_BACKEND_ABI,
    .kind = GW_STORE_SQLITE,
    .begin_sql = "BEGIN IMMEDIATE",
    .migrations_table_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                            "version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, "
                            "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
    .open = lite_open,
    .close = lite_close,
    .ready = lite_ready,
    .exec = lite_exec,
    .query = lite_query,
    .script = lite_script,
    .in_tx = lite_in_tx,
    .migrate_lock = lite_migrate_lock,
    .exec_cached = lite_exec_cached,
    .query_cached = lite_query_cached,
    .stmt_stats = lite_stmt_stats,
};

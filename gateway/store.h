/*
 * store.h — Tollgate's database: virtual keys, users, teams, budgets, spend.
 *
 * Two backends behind one interface: SQLite (the embedded default, a WAL-mode file
 * TOLLGATE_DATA_DIR/tollgate.db, default ./data) and PostgreSQL (DATABASE_URL or
 * general_settings.database_url, through libpq). schema/<backend>/NNNN_name.sql holds numbered,
 * forward-only migrations; the build embeds them in the binary and gw_store_migrate applies the
 * ones a database has not seen, recording each in schema_migrations.
 *
 * Threading. Every database call of the process runs on ONE store thread that gw_store_open
 * starts. Blocking is fine there and nowhere else: an event loop never calls the database. A
 * worker hands the store a job — a function that runs on the store thread with the connection —
 * and a completion that runs back on the worker's own loop:
 *
 *     worker loop                         store thread
 *     gw_store_submit(job, done, ud) ──▶  queue (bounded, FIFO) ──▶ job(conn, ud)  [blocking SQL]
 *     done(ud, status, err)  ◀── h2o_multithread_send_message(worker's receiver) ◀──┘
 *
 * The worker registers one receiver on its loop's h2o_multithread queue with
 * gw_store_register_receiver and passes it to every gw_store_submit; each completion is
 * delivered by that loop, in submission order. The job writes its results into ud; the message
 * hop orders those writes before done reads them, so ud needs no lock. Jobs run one at a time
 * in submission order (across all workers), so a job may assume no other job interleaves.
 *
 * Failure. Every job gets a completion, exactly once, with a status: GW_STORE_OK or an error.
 * PostgreSQL down means GW_STORE_UNAVAILABLE at once, never a hang: the store reconnects with
 * backoff (50 ms doubling to 5 s) before the next job that comes after the backoff; jobs in
 * between fail fast. A job that returns with a transaction still open is rolled back.
 *
 * SQL. One dialect for both backends where possible:
 *   - placeholders $1, $2, … (SQLite reads them as named parameters; the store binds by number);
 *   - CAST(x AS type), never x::type; TRUE/FALSE for booleans. PostgreSQL types a text or NULL
 *     parameter from where it is first used, so one that is first used without context needs a
 *     cast: (CAST($2 AS TEXT) IS NULL OR team_id = $2). Integer, real and boolean parameters
 *     are sent typed (int8, float8, bool): `$1 + $2` works;
 *   - upserts with INSERT … ON CONFLICT (cols) DO UPDATE SET c = t.c + excluded.c / DO NOTHING,
 *     RETURNING (both backends support them);
 *   - timestamps are passed in as parameters formatted by gw_store_time_iso (SQLite compares
 *     them as text, so the one format matters), not computed with now() or strftime, and come
 *     back from both backends as that same 'YYYY-MM-DDTHH:MM:SS.sssZ' text;
 *   - LiteLLM's camelCase columns ("startTime", "endTime", "completionStartTime") and "user" are
 *     always double-quoted;
 *   - where the dialects must differ (JSON operators, date arithmetic), branch on
 *     gw_store_conn_kind.
 * Rows come back as jansson objects keyed by column name: integers as integers, BOOLEAN
 * columns as true/false, JSON/JSONB columns parsed into JSON values, timestamps as the text
 * above, NULL as null. Money is always integer micro-dollars (see schema/).
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <h2o/multithread.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

typedef struct gw_store gw_store_t;
/** The store thread's connection; only ever seen inside a job. */
typedef struct gw_store_conn gw_store_conn_t;

typedef enum gw_store_kind {
    GW_STORE_SQLITE = 1,
    GW_STORE_POSTGRES = 2,
} gw_store_kind_t;

/** Status of a store call or job. 0 is success; every error is negative. */
typedef enum gw_store_status {
    GW_STORE_OK = 0,
    GW_STORE_ERROR = -1,       /* the SQL failed (syntax, type, a migration out of order, …) */
    GW_STORE_CONSTRAINT = -2,  /* unique / not-null / check violation: the caller's data */
    GW_STORE_UNAVAILABLE = -3, /* database unreachable or connection lost: retry later */
    GW_STORE_BUSY = -4,        /* lock timeout, serialization failure, queue full: retry */
    GW_STORE_CLOSED = -5,      /* the store is closing; the job did not run */
} gw_store_status_t;

/** Jobs waiting at most; gw_store_submit refuses more with GW_STORE_BUSY. */
#define GW_STORE_MAX_QUEUE 65536
/** Bytes of an error message kept (longer ones are cut). */
#define GW_STORE_ERR_MAX 512
/** Bytes of a timestamp text, NUL included: "2024-01-31T23:59:59.123Z". */
#define GW_STORE_TIME_LEN 25

/* ---- opening -------------------------------------------------------------------------------- */

/**
 * Opens the store the configuration names and starts its thread: PostgreSQL when
 * cfg->database_url is set (cfg may be NULL: then the DATABASE_URL environment variable), else
 * SQLite at data_dir/tollgate.db (data_dir NULL: TOLLGATE_DATA_DIR, else "./data"; the directory
 * is created when missing). SQLite runs in WAL mode with a busy timeout. A PostgreSQL server that
 * is down does not fail the open: jobs then complete with GW_STORE_UNAVAILABLE until it is back.
 * Returns NULL with a message in err when the URL is malformed or the SQLite file cannot be
 * opened. Call from a thread that is not an event loop (start-up, `tollgate migrate`, tests).
 */
gw_store_t *gw_store_open(const gw_config_t *cfg, const char *data_dir, char *err, size_t errlen);

/** Same with the URL given: "postgresql://…" / "postgres://…", or NULL / "" for SQLite. */
gw_store_t *gw_store_open_url(const char *database_url, const char *data_dir, char *err, size_t errlen);

/**
 * Stops the store: refuses new jobs, runs every job already queued (their completions are
 * delivered as usual, so their receivers must still be registered and their loops must run
 * once more to deliver them), joins the thread and closes the connection. NULL is a no-op.
 */
void gw_store_close(gw_store_t *s);

gw_store_kind_t gw_store_kind(const gw_store_t *s);

/**
 * Where the store points, for logs: "sqlite ./data/tollgate.db" or
 * "postgres tollgate@db.example:5432/tollgate" (never a password).
 */
const char *gw_store_describe(const gw_store_t *s);

/* ---- jobs ----------------------------------------------------------------------------------- */

/**
 * Runs on the store thread. Uses c with the calls below, writes its results into ud, and
 * returns GW_STORE_OK or the status of the call that failed (gw_store_fail sets a message of
 * its own). Must not touch any event loop or h2o object.
 */
typedef int (*gw_store_job_fn)(gw_store_conn_t *c, void *ud);

/**
 * Runs on the submitting loop (or on the store thread when submitted without a receiver).
 * status is what the job returned, GW_STORE_UNAVAILABLE when there was no connection to run it
 * on, or GW_STORE_CLOSED; err is a message ("" on success), valid only during the call.
 */
typedef void (*gw_store_done_fn)(void *ud, int status, const char *err);

/**
 * Registers r on queue (a worker's h2o_multithread queue, on the worker's thread) as the
 * receiver of store completions. r must stay registered, and its loop running, until every job
 * submitted with it has completed.
 */
void gw_store_register_receiver(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *r);
void gw_store_unregister_receiver(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *r);

/**
 * Queues job to run on the store thread; done runs afterwards through receiver rx (registered
 * with gw_store_register_receiver), or on the store thread itself when rx is NULL. ud must stay
 * valid until done has run; to abandon a job (the client left), mark ud and let done free it.
 * Returns 0, or GW_STORE_BUSY (queue full) / GW_STORE_CLOSED without queueing anything: then
 * neither job nor done will run. Thread-safe; never blocks on the database.
 */
int gw_store_submit(gw_store_t *s, h2o_multithread_receiver_t *rx, gw_store_job_fn job, gw_store_done_fn done,
                    void *ud);

/**
 * Runs job on the store thread and waits for it: returns its status, with the message in err.
 * Blocks the caller: start-up, the migrate command and tests only, never an event loop.
 */
int gw_store_run(gw_store_t *s, gw_store_job_fn job, void *ud, char *err, size_t errlen);

/* ---- inside a job: SQL ------------------------------------------------------------------------ */

typedef enum gw_store_ptype {
    GW_SP_NULL = 0,
    GW_SP_INT,  /* i */
    GW_SP_REAL, /* d */
    GW_SP_TEXT, /* s, NUL-terminated UTF-8; NULL s binds SQL NULL */
    GW_SP_BOOL, /* i != 0 */
    GW_SP_JSON, /* j serialized compactly; NULL j binds SQL NULL; the reference stays the caller's */
} gw_store_ptype_t;

/** One bound parameter ($1 is params[0]). Build them with the macros below. */
typedef struct gw_store_param {
    gw_store_ptype_t type;
    int64_t i;
    double d;
    const char *s;
    const json_t *j;
} gw_store_param_t;

#define GW_P_NULL() ((gw_store_param_t){.type = GW_SP_NULL})
#define GW_P_INT(v) ((gw_store_param_t){.type = GW_SP_INT, .i = (int64_t)(v)})
#define GW_P_REAL(v) ((gw_store_param_t){.type = GW_SP_REAL, .d = (double)(v)})
#define GW_P_TEXT(v) ((gw_store_param_t){.type = GW_SP_TEXT, .s = (v)})
#define GW_P_BOOL(v) ((gw_store_param_t){.type = GW_SP_BOOL, .i = (v) ? 1 : 0})
#define GW_P_JSON(v) ((gw_store_param_t){.type = GW_SP_JSON, .j = (v)})

/**
 * Runs one statement that returns no rows (or whose rows are ignored). *changes (may be NULL)
 * receives the number of rows inserted, updated or deleted. Returns a gw_store_status_t; on
 * error the message is in gw_store_errmsg(c).
 */
int gw_store_exec(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                  int64_t *changes);

/**
 * Runs one statement and returns its rows in *rows: a new JSON array (caller decrefs) of objects
 * keyed by column name, typed as described at the top of this file. *rows is NULL on error.
 */
int gw_store_query(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                   json_t **rows);

/** Statements kept prepared per connection by the _cached calls (least recently used evicted). */
#define GW_STORE_STMT_CACHE 64

/**
 * gw_store_exec / gw_store_query for a statement that runs again and again (the spend writer's
 * inserts and updates): it is prepared once per connection and afterwards only bound and run —
 * SQLite keeps the sqlite3_stmt, PostgreSQL a named prepared statement (PQprepare once, then
 * PQexecPrepared). The SQL text is the cache key, compared by content (on PostgreSQL together
 * with the parameters' types), so pass constant texts or a few shapes of them; at most
 * GW_STORE_STMT_CACHE statements are kept. Results, statuses and messages are those of the
 * uncached calls. A reconnect (PostgreSQL) empties the cache. A schema change is followed: SQLite
 * recompiles a cached statement by itself; PostgreSQL replans it, and when it refuses ("cached
 * plan must not change result type", or the statement vanished after DISCARD ALL) the entry is
 * dropped and the call is retried once when no transaction is open; inside a transaction the call
 * fails with GW_STORE_BUSY (the transaction is aborted; run it again and the statement is
 * prepared afresh).
 */
int gw_store_exec_cached(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                         int64_t *changes);
int gw_store_query_cached(gw_store_conn_t *c, const char *sql, const gw_store_param_t *params, size_t n,
                          json_t **rows);

/** Statements in c's cache now, and how many times the cache had to prepare one (tests, stats). */
void gw_store_stmt_stats(const gw_store_conn_t *c, size_t *cached, uint64_t *prepares);

/** Opens a transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of deadlocking). */
int gw_store_begin(gw_store_conn_t *c);
int gw_store_commit(gw_store_conn_t *c);
/** Rolls back the open transaction, keeping the message of the error that caused it. */
int gw_store_rollback(gw_store_conn_t *c);

/**
 * Runs fn(c, ud) in a transaction: commits when it returns GW_STORE_OK, rolls back otherwise.
 * Returns fn's status, or the commit's when the commit failed.
 */
int gw_store_tx(gw_store_conn_t *c, gw_store_job_fn fn, void *ud);

/** Records a failure of the job's own (e.g. a row that should exist did not); returns status. */
int gw_store_fail(gw_store_conn_t *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Appends (kind, id) to the changes table, stamped now: every admin write calls this in the
 * transaction of its write, so other instances polling changes drop their cached copy. kind is
 * "key" (id = token hash), "user", "team", "team_membership" (id = "user_id/team_id"),
 * "end_user", "budget" or "organization".
 */
int gw_store_note_change(gw_store_conn_t *c, const char *kind, const char *id);

/** The message of the last failed call on c ("" if none). */
const char *gw_store_errmsg(const gw_store_conn_t *c);

gw_store_kind_t gw_store_conn_kind(const gw_store_conn_t *c);

/* ---- migrations ------------------------------------------------------------------------------ */

/** One schema/<backend>/<name>.sql file, embedded at build time. */
typedef struct gw_store_migration {
    const char *backend; /* "sqlite" | "postgres" (the directory) */
    const char *name;    /* file name without ".sql", e.g. "0001_init"; version = leading number */
    const char *sql;
    size_t len;
} gw_store_migration_t;

/** The migrations compiled into this binary (all backends, sorted by backend then name). */
extern const gw_store_migration_t gw_store_builtin_migrations[];
extern const size_t gw_store_builtin_migrations_count;

/**
 * Applies, in version order, every built-in migration of this store's backend that
 * schema_migrations does not list: each in its own transaction together with its row in
 * schema_migrations (version, name, SHA-256 of the file, time), so a failed migration leaves
 * nothing behind. On PostgreSQL an advisory lock makes concurrent starts apply each file once.
 * A migration that was applied with different contents is an error (migrations are
 * forward-only: never edit a released file). Since the runner wraps each file in a transaction,
 * a file must not contain BEGIN/COMMIT, nor statements that refuse to run in one (PostgreSQL's
 * CREATE INDEX CONCURRENTLY, VACUUM). *applied (may be NULL) receives a new JSON array of
 * the names applied now (empty when the schema was up to date). Blocks: call at start-up or from
 * `tollgate migrate`, never on an event loop. Returns a gw_store_status_t, message in err.
 */
int gw_store_migrate(gw_store_t *s, json_t **applied, char *err, size_t errlen);

/** Same with an explicit list (tests); entries of other backends are skipped. */
int gw_store_migrate_list(gw_store_t *s, const gw_store_migration_t *list, size_t n, json_t **applied,
                          char *err, size_t errlen);

/* ---- helpers --------------------------------------------------------------------------------- */

/** Formats unix time in milliseconds as "YYYY-MM-DDTHH:MM:SS.sssZ" (UTC) into out. */
void gw_store_time_iso(int64_t unix_ms, char out[GW_STORE_TIME_LEN]);
/** The current time, formatted as gw_store_time_iso does. */
void gw_store_now_iso(char out[GW_STORE_TIME_LEN]);
/**
 * Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM]" (a space may replace the T) into
 * unix milliseconds. Returns 0, or -1 when s is not such a time.
 */
int gw_store_time_parse(const char *s, int64_t *unix_ms);

/** A short name for a status: "ok", "error", "constraint", "unavailable", "busy", "closed". */
const char *gw_store_status_name(int status);

#endif

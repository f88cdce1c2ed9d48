/*
 * store_int.h — what the store's backends (store_sqlite.c, store_pg.c) implement and share.
 *
 * A backend is a const vtable in the manner of curl's vtls: identity, an ABI number, then the
 * operations. Every operation runs on the store thread only, so a backend holds no locks. New
 * slots are appended; a backend that predates a slot leaves it NULL.
 */
#ifndef GW_STORE_INT_H
#define GW_STORE_INT_H

#include "gateway/store.h"

#define GW_STORE_BACKEND_ABI 2

typedef struct gw_store_backend {
    const char *name; /* "sqlite" | "postgres": also the schema/ directory of its migrations */
    unsigned abi;     /* GW_STORE_BACKEND_ABI */
    gw_store_kind_t kind;
    const char *begin_sql;            /* opens a write transaction */
    const char *migrations_table_sql; /* CREATE TABLE IF NOT EXISTS schema_migrations … */

    /**
     * Prepares a handle for target (SQLite: the file path; PostgreSQL: the URL). Writes a
     * printable description without secrets into desc. Returns a status; *h only on GW_STORE_OK.
     * Runs on the thread that calls gw_store_open, before the store thread exists.
     */
    int (*open)(const char *target, void **h, char *desc, size_t desclen, char *err, size_t errlen);
    void (*close)(void *h);
    /** Makes the connection usable before a job (PostgreSQL: reconnects, with backoff). */
    int (*ready)(void *h, char *err, size_t errlen);
    /** One statement; rows ignored. */
    int (*exec)(void *h, const char *sql, const gw_store_param_t *p, size_t n, int64_t *changes, char *err,
                size_t errlen);
    /** One statement; rows as a JSON array of objects. */
    int (*query)(void *h, const char *sql, const gw_store_param_t *p, size_t n, json_t **rows, char *err,
                 size_t errlen);
    /** Several statements, no parameters (migrations). */
    int (*script)(void *h, const char *sql, char *err, size_t errlen);
    /** 1 when a transaction is open. */
    int (*in_tx)(void *h);
    /** Takes (on = 1) or releases (on = 0) the cross-process migration lock; may be a no-op. */
    int (*migrate_lock)(void *h, int on, char *err, size_t errlen);
    /* ---- ABI 2: the prepared-statement cache (gw_store_exec_cached / gw_store_query_cached) --- */
    /** exec and query with sql prepared once per connection and kept (see store.h). */
    int (*exec_cached)(void *h, const char *sql, const gw_store_param_t *p, size_t n, int64_t *changes,
                       char *err, size_t errlen);
    int (*query_cached)(void *h, const char *sql, const gw_store_param_t *p, size_t n, json_t **rows,
                        char *err, size_t errlen);
    /** Entries in the cache now and statements prepared into it so far. */
    void (*stmt_stats)(void *h, size_t *cached, uint64_t *prepares);
} gw_store_backend_t;

extern const gw_store_backend_t gw_store_sqlite_backend;
extern const gw_store_backend_t gw_store_pg_backend;

/** snprintf into err (never NULL), returning status: the backends' one-line error exit. */
int gw_store_errf(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * The statement cache's key hash: FNV-1a of sql, then of the tag bytes (PostgreSQL: the
 * parameters' type OIDs; NULL/0 for none).
 */
uint64_t gw_store_stmt_hash(const char *sql, const void *tag, size_t taglen);

/** Monotonic milliseconds. */
uint64_t gw_store_mono_ms(void);

#endif

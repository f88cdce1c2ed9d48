/*
 * db_env.h — a database of its own for each test of the store-backed unit tests (test_store.c,
 * test_spend.c): a temporary data directory and, for PostgreSQL, a fresh database created from
 * TEST_DATABASE_URL (the test is skipped when that is not set; make test sets it) and dropped
 * with everything in it afterwards; plus a store job that runs one SQL statement.
 *
 * Header-only (static functions) because CMake builds each test file on its own.
 */
#ifndef TG_TEST_DB_ENV_H
#define TG_TEST_DB_ENV_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/store.h"

typedef struct db_env {
    gw_store_kind_t kind;
    char dir[256];    /* the data dir (SQLite file, journals); "" when none was made */
    char url[1024];   /* PostgreSQL: URL of the test's own database */
    char dbname[64];  /* PostgreSQL: its name */
    char admin[1024]; /* PostgreSQL: TEST_DATABASE_URL, for CREATE/DROP DATABASE */
} db_env_t;

static inline int db_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a directory and everything below it. */
static inline void db_rm_tree(const char *dir)
{
    nftw(dir, db_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs one statement that returns no rows on a separate connection to url; asserts success. */
static inline void db_admin_sql(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/*
 * Prepares a fresh database of the given kind, named after `name` (tg-<name>.XXXXXX for the
 * directory, tg_<name>_<pid>_<n> for the PostgreSQL database). SQLite always gets a directory;
 * PostgreSQL gets one too when `want_dir`. Skips the test when PostgreSQL is asked for and
 * TEST_DATABASE_URL is not set.
 */
static inline void db_env_setup(db_env_t *e, gw_store_kind_t kind, const char *name, int want_dir)
{
    static unsigned counter;
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    if (kind == GW_STORE_SQLITE || want_dir) {
        snprintf(e->dir, sizeof(e->dir), "%s/tg-%s.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                 name);
        cr_assert_not_null(mkdtemp(e->dir));
    }
    if (kind != GW_STORE_POSTGRES)
        return;
    const char *base = getenv("TEST_DATABASE_URL");
    if (base == NULL || *base == '\0') {
        if (e->dir[0])
            db_rm_tree(e->dir);
        cr_skip_test("TEST_DATABASE_URL is not set (make test sets it)");
    }
    snprintf(e->admin, sizeof(e->admin), "%s", base);
    snprintf(e->dbname, sizeof(e->dbname), "tg_%s_%d_%u", name, (int)getpid(), counter++);
    const char *slash = strrchr(base, '/'), *query = strchr(slash, '?');
    snprintf(e->url, sizeof(e->url), "%.*s/%s%s", (int)(slash - base), base, e->dbname, query ? query : "");
    char sql[256];
    snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", e->dbname);
    db_admin_sql(e->admin, sql);
}

/* Removes the directory and drops the PostgreSQL database (connections to it are ended). */
static inline void db_env_teardown(db_env_t *e)
{
    if (e->dir[0])
        db_rm_tree(e->dir);
    if (e->kind == GW_STORE_POSTGRES && e->dbname[0]) {
        char sql[256];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", e->dbname);
        db_admin_sql(e->admin, sql);
    }
}

/* A store job (gw_store_run) that runs one statement: a query collects rows, else changes. */
typedef struct db_sql {
    const char *sql;
    const gw_store_param_t *p;
    size_t n;
    int query;
    json_t *rows;
    int64_t changes;
} db_sql_t;

static inline int db_run_sql(gw_store_conn_t *c, void *ud)
{
    db_sql_t *j = ud;
    return j->query ? gw_store_query(c, j->sql, j->p, j->n, &j->rows)
                    : gw_store_exec(c, j->sql, j->p, j->n, &j->changes);
}

#endif

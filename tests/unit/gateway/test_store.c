/*
 * test_store.c — the store (gateway/store*.c) against real databases: SQLite in a temp dir and,
 * when TEST_DATABASE_URL is set (make test starts a throwaway server and sets it), PostgreSQL in
 * a fresh database per test. Every case in the table below runs on both backends.
 *
 * Covered: migrations apply once, are recorded, and a re-run (also after reopening) is a no-op;
 * a failed migration leaves nothing behind and an edited one is refused; a key row round-trips
 * with its types (integers, booleans, JSON, NULL, timestamps normalised to one format);
 * $N parameters bind by number; spend is idempotent by request_id (the spend-writer pattern:
 * log insert, key spend and daily rollup in one transaction); transactions roll back on error
 * and a job that leaves one open is rolled back; error statuses (constraint, SQL error, missing
 * parameter); the change feed; completions posted back to an h2o loop on the submitting thread;
 * two threads submitting at once; close runs queued jobs. PostgreSQL only: a server that is down
 * gives GW_STORE_UNAVAILABLE at once (no hang), and the store reconnects when a server it was
 * using comes back (a second throwaway server started with scripts/pgtmp.sh). The prepared-
 * statement cache: reuse, errors, schema changes (in and out of transactions), eviction, and on
 * PostgreSQL a terminated connection and DEALLOCATE ALL under it. Time helpers.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db_env.h"
#include "gateway/store.h"

/* ---- environments: one database per test (db_env.h) ---------------------------------------- */

static gw_store_t *env_open(db_env_t *e)
{
    char err[512] = "";
    gw_store_t *s = gw_store_open_url(e->kind == GW_STORE_POSTGRES ? e->url : NULL, e->dir, err, sizeof(err));
    cr_assert_not_null(s, "open: %s", err);
    cr_assert_eq(gw_store_kind(s), e->kind);
    return s;
}

static gw_store_t *env_open_migrated(db_env_t *e)
{
    gw_store_t *s = env_open(e);
    char err[512] = "";
    int st = gw_store_migrate(s, NULL, err, sizeof(err));
    cr_assert_eq(st, GW_STORE_OK, "migrate: %s", err);
    return s;
}

/* One SQL statement as a store job (db_sql_t, db_run_sql); asserts success. */
static json_t *query(gw_store_t *s, const char *sql, const gw_store_param_t *p, size_t n)
{
    db_sql_t j = {.sql = sql, .p = p, .n = n, .query = 1};
    char err[512] = "";
    int st = gw_store_run(s, db_run_sql, &j, err, sizeof(err));
    cr_assert_eq(st, GW_STORE_OK, "%s: %s", sql, err);
    return j.rows;
}

static int exec_status(gw_store_t *s, const char *sql, const gw_store_param_t *p, size_t n, char *err,
                       size_t errlen)
{
    db_sql_t j = {.sql = sql, .p = p, .n = n};
    return gw_store_run(s, db_run_sql, &j, err, errlen);
}

static int64_t query_int(gw_store_t *s, const char *sql, const gw_store_param_t *p, size_t n)
{
    json_t *rows = query(s, sql, p, n);
    cr_assert_eq(json_array_size(rows), 1);
    json_t *v = json_object_iter_value(json_object_iter(json_array_get(rows, 0)));
    cr_assert(json_is_integer(v), "%s: not an integer", sql);
    int64_t out = json_integer_value(v);
    json_decref(rows);
    return out;
}

#define TOKEN_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKEN_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

typedef struct key_row {
    const char *token, *alias;
    int64_t spend;
} key_row_t;

static int insert_key(gw_store_conn_t *c, void *ud)
{
    key_row_t *k = ud;
    char now[GW_STORE_TIME_LEN];
    gw_store_now_iso(now);
    gw_store_param_t p[] = {GW_P_TEXT(k->token), GW_P_TEXT(k->alias), GW_P_INT(k->spend), GW_P_TEXT(now)};
    return gw_store_exec(c,
                         "INSERT INTO keys (token, key_alias, spend, created_at, updated_at) "
                         "VALUES ($1, $2, $3, $4, $4)",
                         p, 4, NULL);
}

/* ---- the cases (each runs on both backends) ------------------------------------------------- */

static void case_migrate_once(db_env_t *e)
{
    gw_store_t *s = env_open(e);
    char err[512] = "";
    json_t *applied = NULL;
    cr_assert_eq(gw_store_migrate(s, &applied, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_geq(json_array_size(applied), 1);
    cr_assert_str_eq(json_string_value(json_array_get(applied, 0)), "0001_init");
    size_t first = json_array_size(applied);
    json_decref(applied);

    cr_assert_eq(gw_store_migrate(s, &applied, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(json_array_size(applied), 0, "second run applied something");
    json_decref(applied);

    json_t *rows = query(
        s, "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version", NULL, 0);
    cr_assert_eq(json_array_size(rows), first);
    json_t *r0 = json_array_get(rows, 0);
    cr_assert_eq(json_integer_value(json_object_get(r0, "version")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(r0, "name")), "0001_init");
    cr_assert_eq(strlen(json_string_value(json_object_get(r0, "checksum"))), 64);
    cr_assert_eq(strlen(json_string_value(json_object_get(r0, "applied_at"))), GW_STORE_TIME_LEN - 1);
    json_decref(rows);
    gw_store_close(s);

    s = env_open(e); /* a restart finds nothing to do */
    cr_assert_eq(gw_store_migrate(s, &applied, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(json_array_size(applied), 0);
    json_decref(applied);
    gw_store_close(s);
}

#define MIGRATION(backend, name, sql)                                                                        \
    {                                                                                                        \
        backend, name, sql, sizeof(sql) - 1                                                                  \
    }

static void case_migration_failures(db_env_t *e)
{
    const char *be = e->kind == GW_STORE_SQLITE ? "sqlite" : "postgres";
    gw_store_migration_t list[] = {
        MIGRATION(be, "0001_a", "CREATE TABLE t_a (x INTEGER);"),
        MIGRATION(be, "0002_b", "CREATE TABLE t_b (x INTEGER); SELECT nope FROM nowhere;"),
    };
    gw_store_t *s = env_open(e);
    char err[512] = "";
    json_t *applied = NULL;
    int st = gw_store_migrate_list(s, list, 2, &applied, err, sizeof(err));
    cr_assert_eq(st, GW_STORE_ERROR, "status %d: %s", st, err);
    cr_assert_null(applied);
    cr_assert(strstr(err, "0002_b") != NULL, "%s", err);
    /* 0001 stays applied; 0002 left neither its table nor its record */
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM schema_migrations", NULL, 0), 1);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM t_a", NULL, 0), 0);
    cr_assert_neq(exec_status(s, "SELECT * FROM t_b", NULL, 0, err, sizeof(err)), GW_STORE_OK);

    /* an applied migration whose text changed is refused */
    gw_store_migration_t edited[] = {MIGRATION(be, "0001_a", "CREATE TABLE t_a (x INTEGER, y INTEGER);")};
    st = gw_store_migrate_list(s, edited, 1, NULL, err, sizeof(err));
    cr_assert_eq(st, GW_STORE_ERROR);
    cr_assert(strstr(err, "changed after it was applied") != NULL, "%s", err);

    /* two files with one number, and a name without a number */
    gw_store_migration_t dup[] = {MIGRATION(be, "0003_x", "SELECT 1;"), MIGRATION(be, "0003_y", "SELECT 1;")};
    cr_assert_eq(gw_store_migrate_list(s, dup, 2, NULL, err, sizeof(err)), GW_STORE_ERROR);
    cr_assert(strstr(err, "same number") != NULL, "%s", err);
    gw_store_migration_t bad[] = {MIGRATION(be, "init", "SELECT 1;")};
    cr_assert_eq(gw_store_migrate_list(s, bad, 1, NULL, err, sizeof(err)), GW_STORE_ERROR);

    /* other backends' files are ignored */
    gw_store_migration_t other[] = {
        MIGRATION(e->kind == GW_STORE_SQLITE ? "postgres" : "sqlite", "0009_z", "garbage")};
    cr_assert_eq(gw_store_migrate_list(s, other, 1, &applied, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(json_array_size(applied), 0);
    json_decref(applied);
    gw_store_close(s);
}

static void case_key_roundtrip(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    json_t *models = json_pack("[ss]", "gpt-4o", "claude-3");
    json_t *meta = json_pack("{s:s,s:i}", "team", "research", "n", 3);
    gw_store_param_t p[] = {
        GW_P_TEXT(TOKEN_A),  GW_P_TEXT("sk-...abcd"),
        GW_P_TEXT("ci-key"), GW_P_TEXT("user-1"),
        GW_P_JSON(models),   GW_P_JSON(meta),
        GW_P_INT(1250000),   GW_P_NULL(),
        GW_P_BOOL(1),        GW_P_TEXT("2030-01-02T03:04:05.678Z"),
        GW_P_INT(60),        GW_P_TEXT("2024-05-01T00:00:00Z"),
    };
    char err[512] = "";
    int st = exec_status(s,
                         "INSERT INTO keys (token, key_name, key_alias, user_id, models, metadata, spend, "
                         "max_budget, blocked, expires, rpm_limit, created_at, updated_at) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
                         p, 12, err, sizeof(err));
    cr_assert_eq(st, GW_STORE_OK, "%s", err);
    json_decref(models);
    json_decref(meta);

    gw_store_param_t q[] = {GW_P_TEXT(TOKEN_A)};
    json_t *rows =
        query(s,
              "SELECT token, key_alias, user_id, team_id, models, metadata, aliases, spend, max_budget, "
              "blocked, soft_budget_cooldown, expires, rpm_limit, created_at, updated_at "
              "FROM keys WHERE token = $1",
              q, 1);
    cr_assert_eq(json_array_size(rows), 1);
    json_t *r = json_array_get(rows, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r, "token")), TOKEN_A);
    cr_assert_str_eq(json_string_value(json_object_get(r, "key_alias")), "ci-key");
    cr_assert(json_is_null(json_object_get(r, "team_id")));
    json_t *m = json_object_get(r, "models");
    cr_assert(json_is_array(m) && json_array_size(m) == 2);
    cr_assert_str_eq(json_string_value(json_array_get(m, 1)), "claude-3");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "metadata"), "team")), "research");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "metadata"), "n")), 3);
    cr_assert(json_is_object(json_object_get(r, "aliases")) &&
              json_object_size(json_object_get(r, "aliases")) == 0);
    cr_assert(json_is_integer(json_object_get(r, "spend")));
    cr_assert_eq(json_integer_value(json_object_get(r, "spend")), 1250000);
    cr_assert(json_is_null(json_object_get(r, "max_budget")));
    cr_assert(json_is_true(json_object_get(r, "blocked")));
    cr_assert(json_is_false(json_object_get(r, "soft_budget_cooldown")));
    cr_assert_str_eq(json_string_value(json_object_get(r, "expires")), "2030-01-02T03:04:05.678Z");
    cr_assert_eq(json_integer_value(json_object_get(r, "rpm_limit")), 60);
    const char *created = json_string_value(json_object_get(r, "created_at"));
    cr_assert_not_null(created);
    if (e->kind == GW_STORE_POSTGRES) /* timestamptz comes back in the one format */
        cr_assert_str_eq(created, "2024-05-01T00:00:00.000Z");
    json_decref(rows);

    /* a default timestamp has the same shape on both backends */
    key_row_t k = {TOKEN_B, NULL, 0};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);
    rows = query(s, "SELECT last_active, created_at FROM keys WHERE token = '" TOKEN_B "'", NULL, 0);
    created = json_string_value(json_object_get(json_array_get(rows, 0), "created_at"));
    int64_t ms;
    cr_assert_eq(strlen(created), GW_STORE_TIME_LEN - 1, "%s", created);
    cr_assert_eq(gw_store_time_parse(created, &ms), 0);
    json_decref(rows);

    /* key_alias is unique: a second key with the same alias is a constraint error */
    key_row_t dup = {"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "ci-key", 0};
    cr_assert_eq(gw_store_run(s, insert_key, &dup, err, sizeof(err)), GW_STORE_CONSTRAINT, "%s", err);
    /* and the token must be 64 characters */
    key_row_t shortk = {"abc", NULL, 0};
    cr_assert_eq(gw_store_run(s, insert_key, &shortk, err, sizeof(err)), GW_STORE_CONSTRAINT, "%s", err);
    gw_store_close(s);
}

static void case_params(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    gw_store_param_t p[] = {GW_P_TEXT("one"), GW_P_TEXT("two")};
    json_t *rows = query(s, "SELECT $2 AS b, $1 AS a, $2 AS b2", p, 2);
    json_t *r = json_array_get(rows, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r, "a")), "one");
    cr_assert_str_eq(json_string_value(json_object_get(r, "b")), "two");
    cr_assert_str_eq(json_string_value(json_object_get(r, "b2")), "two");
    json_decref(rows);

    /* a parameter with no value, a syntax error */
    char err[512] = "";
    cr_assert_eq(exec_status(s, "SELECT $1 AS a, $2 AS b", p, 1, err, sizeof(err)), GW_STORE_ERROR);
    cr_assert_eq(exec_status(s, "SELEC 1", NULL, 0, err, sizeof(err)), GW_STORE_ERROR);
    cr_assert_neq(err[0], '\0');

    /* integers compare with BIGINT columns; NULL binds; CAST works on both */
    key_row_t k = {TOKEN_A, "x", 42};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);
    gw_store_param_t q[] = {GW_P_INT(40), GW_P_NULL()};
    cr_assert_eq(query_int(s,
                           "SELECT count(*) AS n FROM keys WHERE spend > $1 AND "
                           "(CAST($2 AS TEXT) IS NULL OR team_id = $2)",
                           q, 2),
                 1);
    gw_store_param_t sum[] = {GW_P_INT(2), GW_P_INT(3)}; /* typed integers add on both backends */
    cr_assert_eq(query_int(s, "SELECT $1 + $2 AS n", sum, 2), 5);
    cr_assert_eq(query_int(s, "SELECT CAST(spend AS BIGINT) + 1 AS n FROM keys", NULL, 0), 43);
    gw_store_close(s);
}

/* The spend writer's pattern: the log row decides whether the counters move. */
typedef struct spend_rec {
    const char *request_id;
    int64_t cost;
    int inserted;
} spend_rec_t;

static int record_spend(gw_store_conn_t *c, void *ud)
{
    spend_rec_t *r = ud;
    char now[GW_STORE_TIME_LEN];
    gw_store_time_iso(1717200000000LL, now); /* 2024-06-01 */
    int64_t ch = 0;
    gw_store_param_t log[] = {
        GW_P_TEXT(r->request_id), GW_P_TEXT(TOKEN_A), GW_P_INT(r->cost), GW_P_INT(10), GW_P_INT(5),
        GW_P_TEXT(now),           GW_P_TEXT("gpt-4o")};
    int st = gw_store_exec(c,
                           "INSERT INTO spend_logs (request_id, call_type, api_key, spend, prompt_tokens, "
                           "completion_tokens, total_tokens, \"startTime\", \"endTime\", model, status) "
                           "VALUES ($1, 'acompletion', $2, $3, $4, $5, $4 + $5, $6, $6, $7, 'success') "
                           "ON CONFLICT (request_id) DO NOTHING",
                           log, 7, &ch);
    if (st != GW_STORE_OK || ch == 0)
        return st; /* already recorded: nothing else moves */
    r->inserted = 1;
    gw_store_param_t key[] = {GW_P_INT(r->cost), GW_P_TEXT(now), GW_P_TEXT(TOKEN_A)};
    st =
        gw_store_exec(c, "UPDATE keys SET spend = spend + $1, updated_at = $2 WHERE token = $3", key, 3, &ch);
    if (st != GW_STORE_OK)
        return st;
    if (ch != 1)
        return gw_store_fail(c, GW_STORE_ERROR, "key row missing");
    gw_store_param_t day[] = {GW_P_TEXT("2024-06-01"), GW_P_TEXT(TOKEN_A), GW_P_TEXT("gpt-4o"),
                              GW_P_TEXT("openai"),     GW_P_INT(10),       GW_P_INT(5),
                              GW_P_INT(r->cost),       GW_P_TEXT(now)};
    return gw_store_exec(
        c,
        "INSERT INTO daily_spend (date, api_key, model, custom_llm_provider, prompt_tokens, "
        "completion_tokens, spend, api_requests, successful_requests, created_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8, $8) "
        "ON CONFLICT (date, api_key, model, custom_llm_provider) DO UPDATE SET "
        "prompt_tokens = daily_spend.prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = daily_spend.completion_tokens + excluded.completion_tokens, "
        "spend = daily_spend.spend + excluded.spend, "
        "api_requests = daily_spend.api_requests + 1, "
        "successful_requests = daily_spend.successful_requests + 1, "
        "updated_at = excluded.updated_at",
        day, 8, NULL);
}

static int record_spend_tx(gw_store_conn_t *c, void *ud)
{
    return gw_store_tx(c, record_spend, ud);
}

static void case_spend_idempotent(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    char err[512] = "";
    key_row_t k = {TOKEN_A, NULL, 0};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);
    spend_rec_t r1 = {"req-1", 1500, 0}, again = {"req-1", 1500, 0}, r2 = {"req-2", 700, 0};
    cr_assert_eq(gw_store_run(s, record_spend_tx, &r1, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(gw_store_run(s, record_spend_tx, &again, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert(r1.inserted && !again.inserted);
    cr_assert_eq(query_int(s, "SELECT spend FROM keys", NULL, 0), 1500);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM spend_logs", NULL, 0), 1);
    cr_assert_eq(query_int(s, "SELECT spend FROM daily_spend", NULL, 0), 1500);
    cr_assert_eq(query_int(s, "SELECT api_requests FROM daily_spend", NULL, 0), 1);

    cr_assert_eq(gw_store_run(s, record_spend_tx, &r2, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(query_int(s, "SELECT spend FROM keys", NULL, 0), 2200);
    cr_assert_eq(query_int(s, "SELECT api_requests FROM daily_spend", NULL, 0), 2);
    cr_assert_eq(query_int(s, "SELECT prompt_tokens FROM daily_spend", NULL, 0), 20);
    /* sum() of a BIGINT is NUMERIC on PostgreSQL: it still comes back as an integer */
    cr_assert_eq(query_int(s, "SELECT sum(spend) AS total FROM spend_logs", NULL, 0), 2200);
    json_t *rows =
        query(s, "SELECT \"startTime\", total_tokens, \"user\" FROM spend_logs WHERE request_id = 'req-1'",
              NULL, 0);
    json_t *row = json_array_get(rows, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "startTime")), "2024-06-01T00:00:00.000Z");
    cr_assert_eq(json_integer_value(json_object_get(row, "total_tokens")), 15);
    json_decref(rows);
    gw_store_close(s);
}

static int tx_insert_then_fail(gw_store_conn_t *c, void *ud)
{
    key_row_t a = {TOKEN_A, "first", 1}, dup = {TOKEN_A, "second", 2};
    int st = insert_key(c, &a);
    if (st != GW_STORE_OK)
        return st;
    return insert_key(c, &dup); /* primary key violation */
}

static int tx_job(gw_store_conn_t *c, void *ud)
{
    return gw_store_tx(c, tx_insert_then_fail, ud);
}

static int manual_tx_job(gw_store_conn_t *c, void *ud)
{
    int st = gw_store_begin(c);
    if (st == GW_STORE_OK)
        st = tx_insert_then_fail(c, ud);
    int *seen = ud;
    *seen = st;
    if (st != GW_STORE_OK)
        gw_store_rollback(c);
    return st;
}

static int leave_tx_open(gw_store_conn_t *c, void *ud)
{
    key_row_t a = {TOKEN_B, NULL, 5};
    int st = gw_store_begin(c);
    return st != GW_STORE_OK ? st : insert_key(c, &a); /* returns OK with the transaction open */
}

static void case_tx_rollback(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, tx_job, NULL, err, sizeof(err)), GW_STORE_CONSTRAINT, "%s", err);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM keys", NULL, 0), 0);

    int seen = 0;
    cr_assert_eq(gw_store_run(s, manual_tx_job, &seen, err, sizeof(err)), GW_STORE_CONSTRAINT);
    cr_assert_eq(seen, GW_STORE_CONSTRAINT);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM keys", NULL, 0), 0);

    cr_assert_eq(gw_store_run(s, leave_tx_open, NULL, err, sizeof(err)), GW_STORE_ERROR);
    cr_assert(strstr(err, "transaction open") != NULL, "%s", err);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM keys", NULL, 0), 0);

    /* the connection is still good after all that */
    key_row_t k = {TOKEN_A, NULL, 3};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(query_int(s, "SELECT spend FROM keys", NULL, 0), 3);
    gw_store_close(s);
}

static int note_two(gw_store_conn_t *c, void *ud)
{
    int st = gw_store_note_change(c, "key", TOKEN_A);
    return st != GW_STORE_OK ? st : gw_store_note_change(c, "team", "team-1");
}

static void case_changes(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, note_two, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(gw_store_run(s, note_two, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(query_int(s, "SELECT max(seq) AS m FROM changes", NULL, 0), 4);
    gw_store_param_t p[] = {GW_P_INT(2)};
    json_t *rows = query(s, "SELECT seq, kind, id, at FROM changes WHERE seq > $1 ORDER BY seq", p, 1);
    cr_assert_eq(json_array_size(rows), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 0), "kind")), "key");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 1), "id")), "team-1");
    json_decref(rows);
    gw_store_close(s);
}

/* ---- completions on an h2o loop ----------------------------------------------------------- */

typedef struct loop {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t rx;
} loop_t;

static void loop_init(loop_t *l)
{
    l->loop = h2o_evloop_create();
    l->queue = h2o_multithread_create_queue(l->loop);
    gw_store_register_receiver(l->queue, &l->rx);
}

static void loop_fini(loop_t *l)
{
    gw_store_unregister_receiver(l->queue, &l->rx);
    h2o_multithread_destroy_queue(l->queue);
    h2o_evloop_run(l->loop, 0); /* lets the queue's socket be released */
    h2o_evloop_destroy(l->loop);
}

/* Runs the loop until *done reaches want or 10 s pass. */
static void loop_until(loop_t *l, const int *done, int want)
{
    time_t end = time(NULL) + 10;
    while (__atomic_load_n(done, __ATOMIC_ACQUIRE) < want && time(NULL) < end)
        h2o_evloop_run(l->loop, 100);
}

typedef struct counted {
    pthread_t owner;  /* the thread whose loop must run done */
    int done;         /* completions seen */
    int wrong_thread; /* completions that ran elsewhere */
    int failures;     /* completions with an error */
    int out_of_order; /* completions that came before an earlier submission's */
    int last_seq;
    char err[256];
} counted_t;

typedef struct bump {
    counted_t *c;
    int seq;
    int64_t value; /* filled by the job */
} bump_t;

static int bump_job(gw_store_conn_t *c, void *ud)
{
    bump_t *b = ud;
    json_t *rows = NULL;
    int st = gw_store_exec(c, "UPDATE keys SET spend = spend + 1 WHERE token = '" TOKEN_A "'", NULL, 0, NULL);
    if (st == GW_STORE_OK)
        st = gw_store_query(c, "SELECT spend FROM keys WHERE token = '" TOKEN_A "'", NULL, 0, &rows);
    if (st == GW_STORE_OK)
        b->value = json_integer_value(json_object_get(json_array_get(rows, 0), "spend"));
    json_decref(rows);
    return st;
}

static void on_bump_done(void *ud, int status, const char *err)
{
    bump_t *b = ud;
    counted_t *c = b->c;
    if (!pthread_equal(pthread_self(), c->owner))
        c->wrong_thread++;
    if (status != GW_STORE_OK) {
        c->failures++;
        snprintf(c->err, sizeof(c->err), "%s", err);
    }
    if (b->seq < c->last_seq)
        c->out_of_order++;
    c->last_seq = b->seq;
    __atomic_add_fetch(&c->done, 1, __ATOMIC_RELEASE);
}

static void case_loop_completion(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    char err[512] = "";
    key_row_t k = {TOKEN_A, NULL, 0};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);

    loop_t l;
    loop_init(&l);
    counted_t c = {.owner = pthread_self()};
    bump_t b = {.c = &c, .seq = 1};
    cr_assert_eq(gw_store_submit(s, &l.rx, bump_job, on_bump_done, &b), GW_STORE_OK);
    loop_until(&l, &c.done, 1);
    cr_assert_eq(c.done, 1, "no completion on the loop");
    cr_assert_eq(c.wrong_thread, 0);
    cr_assert_eq(c.failures, 0, "%s", c.err);
    cr_assert_eq(b.value, 1);
    loop_fini(&l);
    gw_store_close(s);
}

#define PER_THREAD 100

typedef struct submitter {
    gw_store_t *s;
    counted_t c;
    bump_t jobs[PER_THREAD];
    int refused;
} submitter_t;

static void *submit_many(void *arg)
{
    submitter_t *t = arg;
    loop_t l;
    loop_init(&l);
    t->c.owner = pthread_self();
    for (int i = 0; i < PER_THREAD; i++) {
        t->jobs[i] = (bump_t){.c = &t->c, .seq = i + 1};
        if (gw_store_submit(t->s, &l.rx, bump_job, on_bump_done, &t->jobs[i]) != GW_STORE_OK)
            t->refused++;
    }
    loop_until(&l, &t->c.done, PER_THREAD - t->refused);
    loop_fini(&l);
    return NULL;
}

static void case_two_threads(db_env_t *e)
{
    gw_store_t *s = env_open_migrated(e);
    char err[512] = "";
    key_row_t k = {TOKEN_A, NULL, 0};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);
    static submitter_t t[2];
    memset(t, 0, sizeof(t));
    pthread_t tid[2];
    for (int i = 0; i < 2; i++) {
        t[i].s = s;
        pthread_create(&tid[i], NULL, submit_many, &t[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t[i].refused, 0);
        cr_assert_eq(t[i].c.done, PER_THREAD, "thread %d: %d completions", i, t[i].c.done);
        cr_assert_eq(t[i].c.wrong_thread, 0);
        cr_assert_eq(t[i].c.failures, 0, "%s", t[i].c.err);
        cr_assert_eq(t[i].c.out_of_order, 0);
    }
    cr_assert_eq(query_int(s, "SELECT spend FROM keys", NULL, 0), 2 * PER_THREAD);
    gw_store_close(s);
}

static int close_count;

static int noop_job(gw_store_conn_t *c, void *ud)
{
    return gw_store_exec(c, "SELECT 1", NULL, 0, NULL);
}

static void on_counted(void *ud, int status, const char *err)
{
    if (status == GW_STORE_OK)
        __atomic_add_fetch(&close_count, 1, __ATOMIC_RELAXED);
}

static void case_close_drains(db_env_t *e)
{
    gw_store_t *s = env_open(e);
    close_count = 0;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(gw_store_submit(s, NULL, noop_job, on_counted, NULL), GW_STORE_OK);
    gw_store_close(s);
    cr_assert_eq(close_count, 50);
}

/* ---- the prepared-statement cache ------------------------------------------------------------ */

typedef struct cached_job {
    const char *sql;
    const gw_store_param_t *p;
    size_t n;
    int query, in_tx;
    json_t *rows;
    int64_t changes;
    size_t cached;
    uint64_t prepares;
} cached_job_t;

static int run_cached_body(gw_store_conn_t *c, void *ud)
{
    cached_job_t *j = ud;
    return j->query ? gw_store_query_cached(c, j->sql, j->p, j->n, &j->rows)
                    : gw_store_exec_cached(c, j->sql, j->p, j->n, &j->changes);
}

static int run_cached(gw_store_conn_t *c, void *ud)
{
    cached_job_t *j = ud;
    int st = j->in_tx ? gw_store_tx(c, run_cached_body, ud) : run_cached_body(c, ud);
    gw_store_stmt_stats(c, &j->cached, &j->prepares);
    return st;
}

/* Runs sql through the cache (in a transaction when in_tx); returns the status, *j filled. */
static int cached(gw_store_t *s, cached_job_t *j, const char *sql, const gw_store_param_t *p, size_t n,
                  int query, int in_tx)
{
    json_decref(j->rows);
    *j = (cached_job_t){.sql = sql, .p = p, .n = n, .query = query, .in_tx = in_tx};
    char err[512] = "";
    int st = gw_store_run(s, run_cached, j, err, sizeof(err));
    if (st != GW_STORE_OK)
        cr_log_info("%s: %s", sql, err);
    return st;
}

static size_t columns(const json_t *rows)
{
    return json_object_size(json_array_get(rows, 0));
}

/*
 * A statement run through the cache is prepared once and then reused; errors leave it usable;
 * a schema change under a cached statement (a new column for SELECT *) is followed, outside and
 * inside a transaction (PostgreSQL refuses the stale plan there once with GW_STORE_BUSY: the
 * transaction is aborted, and the retry prepares it afresh); the cache stays bounded.
 */
static void case_stmt_cache(db_env_t *e)
{
    gw_store_t *s = env_open(e);
    char err[512] = "";
    cr_assert_eq(
        exec_status(s, "CREATE TABLE cache_t (a BIGINT PRIMARY KEY, b TEXT)", NULL, 0, err, sizeof(err)),
        GW_STORE_OK, "%s", err);
    cached_job_t j = {0};
    const char *ins = "INSERT INTO cache_t (a, b) VALUES ($1, $2)";
    uint64_t base = 0;
    for (int i = 0; i < 5; i++) {
        char b[16]; /* a stack buffer: bindings must not outlive the call */
        snprintf(b, sizeof(b), "row%d", i);
        gw_store_param_t p[] = {GW_P_INT(i), GW_P_TEXT(b)};
        cr_assert_eq(cached(s, &j, ins, p, 2, 0, 0), GW_STORE_OK);
        cr_assert_eq(j.changes, 1);
        if (i == 0)
            base = j.prepares;
        cr_assert_eq(j.prepares, base, "prepared again at %d", i);
    }
    /* a constraint error, then the same statement works */
    gw_store_param_t dup[] = {GW_P_INT(3), GW_P_TEXT("dup")};
    cr_assert_eq(cached(s, &j, ins, dup, 2, 0, 0), GW_STORE_CONSTRAINT);
    gw_store_param_t ok[] = {GW_P_INT(5), GW_P_NULL()};
    cr_assert_eq(cached(s, &j, ins, ok, 2, 0, 0), GW_STORE_OK, "after an error");
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM cache_t", NULL, 0), 6);

    const char *sel = "SELECT * FROM cache_t WHERE a >= $1 ORDER BY a";
    gw_store_param_t from[] = {GW_P_INT(0)};
    cr_assert_eq(cached(s, &j, sel, from, 1, 1, 0), GW_STORE_OK);
    cr_assert_eq(json_array_size(j.rows), 6);
    cr_assert_eq(columns(j.rows), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j.rows, 1), "b")), "row1");

    /* schema change, outside a transaction: followed at once */
    cr_assert_eq(
        exec_status(s, "ALTER TABLE cache_t ADD COLUMN c BIGINT DEFAULT 7", NULL, 0, err, sizeof(err)),
        GW_STORE_OK, "%s", err);
    cr_assert_eq(cached(s, &j, sel, from, 1, 1, 0), GW_STORE_OK);
    cr_assert_eq(columns(j.rows), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(j.rows, 0), "c")), 7);

    /* inside a transaction */
    cr_assert_eq(
        exec_status(s, "ALTER TABLE cache_t ADD COLUMN d TEXT DEFAULT 'x'", NULL, 0, err, sizeof(err)),
        GW_STORE_OK, "%s", err);
    int st = cached(s, &j, sel, from, 1, 1, 1);
    if (e->kind == GW_STORE_POSTGRES) {
        cr_assert_eq(st, GW_STORE_BUSY, "the stale plan in a transaction: %d", st);
        st = cached(s, &j, sel, from, 1, 1, 1);
    }
    cr_assert_eq(st, GW_STORE_OK);
    cr_assert_eq(columns(j.rows), 4);

    /* a table that went away makes the cached statement fail, and work again when it is back */
    cr_assert_eq(exec_status(s, "ALTER TABLE cache_t RENAME TO cache_away", NULL, 0, err, sizeof(err)),
                 GW_STORE_OK, "%s", err);
    gw_store_param_t p6[] = {GW_P_INT(6), GW_P_TEXT("six")};
    cr_assert_neq(cached(s, &j, ins, p6, 2, 0, 1), GW_STORE_OK);
    cr_assert_eq(exec_status(s, "ALTER TABLE cache_away RENAME TO cache_t", NULL, 0, err, sizeof(err)),
                 GW_STORE_OK, "%s", err);
    cr_assert_eq(cached(s, &j, ins, p6, 2, 0, 1), GW_STORE_OK);
    cr_assert_eq(query_int(s, "SELECT count(*) AS n FROM cache_t", NULL, 0), 7);

    /* the same text with a NULL where an integer was: both run */
    const char *sum = "SELECT COALESCE($1, 0) + 1 AS v";
    gw_store_param_t pi[] = {GW_P_INT(41)}, pn[] = {GW_P_NULL()};
    cr_assert_eq(cached(s, &j, sum, pi, 1, 1, 0), GW_STORE_OK);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(j.rows, 0), "v")), 42);
    cr_assert_eq(cached(s, &j, sum, pn, 1, 1, 0), GW_STORE_OK);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(j.rows, 0), "v")), 1);

    /* bounded: more distinct statements than the cache holds, the oldest still runs */
    char texts[GW_STORE_STMT_CACHE + 8][64];
    for (int i = 0; i < GW_STORE_STMT_CACHE + 8; i++) {
        snprintf(texts[i], sizeof(texts[i]), "SELECT %d AS v", i);
        cr_assert_eq(cached(s, &j, texts[i], NULL, 0, 1, 0), GW_STORE_OK);
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(j.rows, 0), "v")), i);
        cr_assert_leq(j.cached, GW_STORE_STMT_CACHE);
    }
    cr_assert_eq(j.cached, GW_STORE_STMT_CACHE);
    uint64_t before = j.prepares;
    cr_assert_eq(cached(s, &j, texts[0], NULL, 0, 1, 0), GW_STORE_OK);
    cr_assert_eq(j.prepares, before + 1, "evicted, prepared again");
    cr_assert_eq(cached(s, &j, texts[0], NULL, 0, 1, 0), GW_STORE_OK);
    cr_assert_eq(j.prepares, before + 1, "and cached again");
    json_decref(j.rows);
    gw_store_close(s);
}

/* ---- the table ----------------------------------------------------------------------------- */

#define ON_BOTH(name)                                                                                        \
    Test(store_sqlite, name)                                                                                 \
    {                                                                                                        \
        db_env_t e;                                                                                          \
        db_env_setup(&e, GW_STORE_SQLITE, "store", 0);                                                       \
        case_##name(&e);                                                                                     \
        db_env_teardown(&e);                                                                                 \
    }                                                                                                        \
    Test(store_postgres, name)                                                                               \
    {                                                                                                        \
        db_env_t e;                                                                                          \
        db_env_setup(&e, GW_STORE_POSTGRES, "store", 0);                                                     \
        case_##name(&e);                                                                                     \
        db_env_teardown(&e);                                                                                 \
    }

ON_BOTH(migrate_once)
ON_BOTH(migration_failures)
ON_BOTH(key_roundtrip)
ON_BOTH(params)
ON_BOTH(spend_idempotent)
ON_BOTH(tx_rollback)
ON_BOTH(changes)
ON_BOTH(loop_completion)
ON_BOTH(two_threads)
ON_BOTH(close_drains)
ON_BOTH(stmt_cache)

/* ---- PostgreSQL down and back -------------------------------------------------------------- */

static int ping_job(gw_store_conn_t *c, void *ud)
{
    return gw_store_exec(c, "SELECT 1", NULL, 0, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A loopback port nothing listens on: bind one, note it, close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_down_done(void *ud, int status, const char *err)
{
    counted_t *c = ud;
    if (status != GW_STORE_UNAVAILABLE)
        c->failures++;
    snprintf(c->err, sizeof(c->err), "%s", err);
    __atomic_add_fetch(&c->done, 1, __ATOMIC_RELEASE);
}

/*
 * PostgreSQL: the server forgets prepared statements with the connection (the store's backend
 * is terminated: the store reconnects and prepares again) and on DEALLOCATE ALL / DISCARD ALL
 * (the statement is gone under the cache: prepared again and retried once).
 */
Test(store_postgres, stmt_cache_reconnect_and_discard, .timeout = 60)
{
    db_env_t e;
    db_env_setup(&e, GW_STORE_POSTGRES, "store", 0);
    gw_store_t *s = env_open(&e);
    cached_job_t j = {0};
    const char *sql = "SELECT $1 + 1 AS v";
    gw_store_param_t p[] = {GW_P_INT(1)};
    cr_assert_eq(cached(s, &j, sql, p, 1, 1, 0), GW_STORE_OK);
    uint64_t first = j.prepares;
    cr_assert_eq(cached(s, &j, sql, p, 1, 1, 0), GW_STORE_OK);
    cr_assert_eq(j.prepares, first);

    char kill[512];
    snprintf(kill, sizeof(kill),
             "DO $$ BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND "
             "application_name = 'tollgate'; END $$",
             e.dbname);
    db_admin_sql(e.admin, kill);
    int st = GW_STORE_UNAVAILABLE;
    for (int i = 0; i < 100 && st != GW_STORE_OK; i++) { /* the store notices and reconnects */
        st = cached(s, &j, sql, p, 1, 1, 0);
        if (st != GW_STORE_OK)
            usleep(20000);
    }
    cr_assert_eq(st, GW_STORE_OK);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(j.rows, 0), "v")), 2);
    cr_assert_eq(j.cached, 1, "the cache started over on the new connection");
    cr_assert_gt(j.prepares, first);

    char err[512] = "";
    cr_assert_eq(exec_status(s, "DEALLOCATE ALL", NULL, 0, err, sizeof(err)), GW_STORE_OK, "%s", err);
    uint64_t before = j.prepares;
    cr_assert_eq(cached(s, &j, sql, p, 1, 1, 0), GW_STORE_OK, "after DEALLOCATE ALL");
    cr_assert_eq(j.prepares, before + 1);
    json_decref(j.rows);
    gw_store_close(s);
    db_env_teardown(&e);
}

Test(store_postgres, server_down_fails_fast)
{
    char url[128], err[512] = "";
    snprintf(url, sizeof(url), "postgresql://tollgate@127.0.0.1:%d/none", closed_port());
    gw_store_t *s = gw_store_open_url(url, NULL, err, sizeof(err));
    cr_assert_not_null(s, "a server that is down must not fail the open: %s", err);
    uint64_t t0 = now_ms();
    cr_assert_eq(gw_store_run(s, ping_job, NULL, err, sizeof(err)), GW_STORE_UNAVAILABLE);
    cr_assert(strstr(err, "postgres unavailable") != NULL, "%s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_UNAVAILABLE, "%s", err);

    /* the same through a loop: the completion arrives with the error */
    loop_t l;
    loop_init(&l);
    counted_t c = {.owner = pthread_self()};
    cr_assert_eq(gw_store_submit(s, &l.rx, ping_job, on_down_done, &c), GW_STORE_OK);
    loop_until(&l, &c.done, 1);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.failures, 0, "%s", c.err);
    loop_fini(&l);
    cr_assert_lt(now_ms() - t0, 3000, "failing took %llu ms", (unsigned long long)(now_ms() - t0));
    gw_store_close(s);
}

Test(store_postgres, bad_url)
{
    char err[512] = "";
    cr_assert_null(gw_store_open_url("mysql://x", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "postgresql://") != NULL, "%s", err);
    cr_assert_null(gw_store_open_url("postgresql://u:secret@[::1/db", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "secret") == NULL, "the password leaked into: %s", err);
    gw_store_t *s = gw_store_open_url("postgresql://u:secret@db.example:6543/app", NULL, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_str_eq(gw_store_describe(s), "postgres u@db.example:6543/app");
    gw_store_close(s);
}

/* scripts/pgtmp.sh DIR …: our own server, which this test may stop and start. */
static int pgtmp(const char *cmd, const char *dir, char *out, size_t outlen)
{
    char line[1024];
    snprintf(line, sizeof(line), "bash '%s/scripts/pgtmp.sh' %s '%s'", TG_SOURCE_DIR, cmd, dir);
    FILE *f = popen(line, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return pclose(f) == 0 ? 0 : -1;
}

static char restart_dir[256]; /* the server reconnects_after_restart started, for its fini */

static void stop_restart_server(void)
{
    char out[1024];
    if (restart_dir[0] == '\0')
        return;
    pgtmp("stop", restart_dir, out, sizeof(out));
    db_rm_tree(restart_dir);
    restart_dir[0] = '\0';
}

/* Runs even when an assertion failed, so a failing run leaves no server behind. */
Test(store_postgres, reconnects_after_restart, .timeout = 120, .fini = stop_restart_server)
{
    if (getenv("TEST_DATABASE_URL") == NULL)
        cr_skip_test("TEST_DATABASE_URL is not set: no PostgreSQL to start (make test sets it)");
    char url[1024], out[1024], err[512] = "";
    snprintf(restart_dir, sizeof(restart_dir), "%s/tg-pgre.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(restart_dir));
    const char *dir = restart_dir;
    cr_assert_eq(pgtmp("up", dir, url, sizeof(url)), 0, "pgtmp up failed: %s", url);

    gw_store_t *s = gw_store_open_url(url, NULL, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    key_row_t k = {TOKEN_A, NULL, 9};
    cr_assert_eq(gw_store_run(s, insert_key, &k, err, sizeof(err)), GW_STORE_OK, "%s", err);

    cr_assert_eq(pgtmp("stop", dir, out, sizeof(out)), 0, "%s", out);
    uint64_t t0 = now_ms();
    cr_assert_eq(gw_store_run(s, ping_job, NULL, err, sizeof(err)), GW_STORE_UNAVAILABLE, "%s", err);
    cr_assert_lt(now_ms() - t0, 3000);

    cr_assert_eq(pgtmp("start", dir, out, sizeof(out)), 0, "%s", out);
    int st = GW_STORE_UNAVAILABLE;
    for (uint64_t end = now_ms() + 20000; now_ms() < end; usleep(100 * 1000)) {
        if ((st = gw_store_run(s, ping_job, NULL, err, sizeof(err))) == GW_STORE_OK)
            break;
    }
    cr_assert_eq(st, GW_STORE_OK, "no reconnect: %s", err);
    cr_assert_eq(query_int(s, "SELECT spend FROM keys", NULL, 0), 9); /* same data, new connection */

    /* a restart while connected and idle: the next job runs on a fresh connection, no error */
    cr_assert_eq(pgtmp("stop", dir, out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(pgtmp("start", dir, out, sizeof(out)), 0, "%s", out);
    cr_assert_eq(gw_store_run(s, ping_job, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    gw_store_close(s);
}

/* ---- time helpers -------------------------------------------------------------------------- */

Test(store_time, format_and_parse)
{
    static const struct {
        const char *in;
        const char *iso; /* NULL: must be rejected */
    } cases[] = {
        {"2024-02-29T12:34:56.789Z", "2024-02-29T12:34:56.789Z"},
        {"2024-01-31 23:59:59.123456+00", "2024-01-31T23:59:59.123Z"},
        {"2024-01-01T05:00:00+05:00", "2024-01-01T00:00:00.000Z"},
        {"2023-12-31T22:30:00-01:30", "2024-01-01T00:00:00.000Z"},
        {"2024-06-01", "2024-06-01T00:00:00.000Z"},
        {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"},
        {"1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500Z"},
        {"2024-05-01 10:00", "2024-05-01T10:00:00.000Z"},
        {"2023-02-29T00:00:00Z", NULL},
        {"2024-13-01", NULL},
        {"2024-01-01T25:00:00Z", NULL},
        {"2024-01-01T00:00:00.Z", NULL},
        {"2024-01-01Tjunk", NULL},
        {"infinity", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = 0;
        int rc = gw_store_time_parse(cases[i].in, &ms);
        if (cases[i].iso == NULL) {
            cr_assert_eq(rc, -1, "accepted %s", cases[i].in);
            continue;
        }
        cr_assert_eq(rc, 0, "rejected %s", cases[i].in);
        char out[GW_STORE_TIME_LEN];
        gw_store_time_iso(ms, out);
        cr_assert_str_eq(out, cases[i].iso, "%s", cases[i].in);
    }
    int64_t ms;
    cr_assert_eq(gw_store_time_parse("2024-06-01T00:00:00Z", &ms), 0);
    cr_assert_eq(ms, 1717200000000LL);
    char now[GW_STORE_TIME_LEN];
    gw_store_now_iso(now);
    cr_assert_eq(strlen(now), GW_STORE_TIME_LEN - 1);
    cr_assert_eq(gw_store_time_parse(now, &ms), 0);
    cr_assert_gt(ms, 1717200000000LL);
}

Test(store_time, status_names)
{
    cr_assert_str_eq(gw_store_status_name(GW_STORE_OK), "ok");
    cr_assert_str_eq(gw_store_status_name(GW_STORE_UNAVAILABLE), "unavailable");
    cr_assert_str_eq(gw_store_status_name(GW_STORE_CONSTRAINT), "constraint");
    cr_assert_str_eq(gw_store_status_name(12345), "error");
}

Test(store_sqlite, builtin_migrations_embedded)
{
    int sqlite = 0, pg = 0;
    for (size_t i = 0; i < gw_store_builtin_migrations_count; i++) {
        const gw_store_migration_t *m = &gw_store_builtin_migrations[i];
        cr_assert_eq(strlen(m->sql), m->len, "%s/%s", m->backend, m->name);
        sqlite += strcmp(m->backend, "sqlite") == 0;
        pg += strcmp(m->backend, "postgres") == 0;
    }
    cr_assert_geq(sqlite, 1);
    cr_assert_eq(sqlite, pg, "schema/sqlite and schema/postgres must have the same migrations");
}

/*
 * test_budgets.c — the budget reset job's SQL (gateway/budgets.c) on a real SQLite database and,
 * when TEST_DATABASE_URL is set, on PostgreSQL in a fresh database: rows whose period ended get
 * spend 0 and the next period end (the limiter's rule, gw_limits_period_next), rows in their
 * period, expired keys and rows without a duration are left alone; a budget's reset zeroes the
 * end users, team memberships and organizations that reference it (not keys); every reset notes
 * one change; a second run resets nothing (compare-and-set), also when the stored reset time has
 * finer digits than milliseconds; an unreadable duration clears the reset time. PostgreSQL: two
 * stores (two instances) that both read a row as due before either writes it reset it once.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/budgets.h"
#include "gateway/limits.h"
#include "gateway/store.h"

/* a token as stored: 64 copies of one hex digit */
#define TOK(c)                                                                                               \
    c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
        c c c c c c c c c c c c

/* ---- a fresh database ------------------------------------------------------------------------- */

typedef struct env {
    gw_store_kind_t kind;
    char dir[256], url[1024], dbname[64], admin[1024];
} env_t;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void admin_sql(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

static gw_store_t *env_open(env_t *e, gw_store_kind_t kind)
{
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    if (kind == GW_STORE_SQLITE) {
        snprintf(e->dir, sizeof(e->dir), "%s/tg-budgets.XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        cr_assert_not_null(mkdtemp(e->dir));
    } else {
        const char *base = getenv("TEST_DATABASE_URL");
        if (base == NULL || *base == '\0')
            cr_skip_test("TEST_DATABASE_URL is not set (make test sets it)");
        snprintf(e->admin, sizeof(e->admin), "%s", base);
        snprintf(e->dbname, sizeof(e->dbname), "tg_budgets_%d", (int)getpid());
        const char *slash = strrchr(base, '/'), *query = strchr(slash, '?');
        snprintf(e->url, sizeof(e->url), "%.*s/%s%s", (int)(slash - base), base, e->dbname,
                 query ? query : "");
        char sql[256];
        snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", e->dbname);
        admin_sql(e->admin, sql);
    }
    char err[512] = "";
    gw_store_t *s = gw_store_open_url(kind == GW_STORE_POSTGRES ? e->url : NULL, e->dir, err, sizeof(err));
    cr_assert_not_null(s, "open: %s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_OK, "migrate: %s", err);
    return s;
}

static void env_close(env_t *e, gw_store_t *s)
{
    gw_store_close(s);
    if (e->kind == GW_STORE_SQLITE) {
        nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        char sql[256];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", e->dbname);
        admin_sql(e->admin, sql);
    }
}

/* ---- jobs --------------------------------------------------------------------------------------- */

typedef struct sql_job {
    const char *sql;
    const gw_store_param_t *p;
    size_t n;
    json_t *rows;
} sql_job_t;

static int run_exec(gw_store_conn_t *c, void *ud)
{
    sql_job_t *j = ud;
    return gw_store_exec(c, j->sql, j->p, j->n, NULL);
}

static int run_query(gw_store_conn_t *c, void *ud)
{
    sql_job_t *j = ud;
    return gw_store_query(c, j->sql, j->p, j->n, &j->rows);
}

static void exec_sql(gw_store_t *s, const char *sql, const gw_store_param_t *p, size_t n)
{
    sql_job_t j = {sql, p, n, NULL};
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, run_exec, &j, err, sizeof(err)), GW_STORE_OK, "%s: %s", sql, err);
}

static json_t *query1(gw_store_t *s, const char *sql, const char *id)
{
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    sql_job_t j = {sql, p, 1, NULL};
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, run_query, &j, err, sizeof(err)), GW_STORE_OK, "%s: %s", sql, err);
    cr_assert_eq(json_array_size(j.rows), 1, "%s (%s): %zu rows", sql, id, json_array_size(j.rows));
    json_t *r = json_incref(json_array_get(j.rows, 0));
    json_decref(j.rows);
    return r;
}

typedef struct reset_job {
    int64_t now;
    gw_budgets_reset_stats_t st;
} reset_job_t;

static int run_reset(gw_store_conn_t *c, void *ud)
{
    reset_job_t *j = ud;
    return gw_budgets_reset_due(c, j->now, &j->st);
}

static gw_budgets_reset_stats_t reset_at(gw_store_t *s, int64_t now)
{
    reset_job_t j = {.now = now};
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, run_reset, &j, err, sizeof(err)), GW_STORE_OK, "reset: %s", err);
    return j.st;
}

static int64_t ms_of(const json_t *row, const char *col)
{
    int64_t ms = 0;
    const char *t = json_string_value(json_object_get(row, col));
    cr_assert_not_null(t, "%s is null", col);
    cr_assert_eq(gw_store_time_parse(t, &ms), 0, "%s", t);
    return ms;
}

static int64_t int_of(const json_t *row, const char *col)
{
    return json_integer_value(json_object_get(row, col));
}

static int64_t changes_of(gw_store_t *s, const char *kind, const char *id)
{
    gw_store_param_t p[] = {GW_P_TEXT(kind), GW_P_TEXT(id)};
    sql_job_t j = {"SELECT COUNT(*) AS n FROM changes WHERE kind = $1 AND id = $2", p, 2, NULL};
    char err[512] = "";
    cr_assert_eq(gw_store_run(s, run_query, &j, err, sizeof(err)), GW_STORE_OK, "%s", err);
    int64_t n = int_of(json_array_get(j.rows, 0), "n");
    json_decref(j.rows);
    return n;
}

/* ---- the case (both backends) -------------------------------------------------------------------- */

#define T0 1800000000000LL /* 2027-01-15T08:00:00Z */
#define SEC 1000LL
#define DAY (86400 * SEC)

static void iso(int64_t ms, char out[GW_STORE_TIME_LEN])
{
    gw_store_time_iso(ms, out);
}

static void case_reset(gw_store_kind_t kind)
{
    env_t e;
    gw_store_t *s = env_open(&e, kind);
    char due[GW_STORE_TIME_LEN], later[GW_STORE_TIME_LEN], past[GW_STORE_TIME_LEN], ts[GW_STORE_TIME_LEN];
    iso(T0 - 5 * SEC, due);    /* ended 5 s before now */
    iso(T0 + 60 * SEC, later); /* ends in a minute */
    iso(T0 - DAY, past);
    iso(T0 - DAY, ts);
    const int64_t now = T0;

    /* keys: due (2s period), in period, expired and due, due without a duration, due 30-day "1mo" */
    gw_store_param_t k[] = {GW_P_TEXT(TOK("a")), GW_P_TEXT(due),      GW_P_TEXT(later),
                            GW_P_TEXT(TOK("b")), GW_P_TEXT(TOK("c")), GW_P_TEXT(past),
                            GW_P_TEXT(TOK("d")), GW_P_TEXT(TOK("e")), GW_P_TEXT(ts)};
    exec_sql(
        s,
        "INSERT INTO keys (token, spend, budget_duration, budget_reset_at, expires, created_at, updated_at) "
        "VALUES ($1, 700, '2s', $2, NULL, $9, $9), ($4, 700, '2s', $3, NULL, $9, $9), "
        "($5, 700, '2s', $2, $6, $9, $9), ($7, 700, NULL, $2, NULL, $9, $9), "
        "($8, 700, '1mo', $6, NULL, $9, $9)",
        k, 9);
    gw_store_param_t u[] = {GW_P_TEXT(due), GW_P_TEXT(later), GW_P_TEXT(ts)};
    exec_sql(
        s,
        "INSERT INTO users (user_id, spend, budget_duration, budget_reset_at, created_at, updated_at) VALUES "
        "('u-due', 50, '1h', $1, $3, $3), ('u-later', 50, '1h', $2, $3, $3)",
        u, 3);
    exec_sql(
        s,
        "INSERT INTO teams (team_id, spend, budget_duration, budget_reset_at, created_at, updated_at) VALUES "
        "('t-due', 60, '10m', $1, $3, $3), ('t-later', 60, '10m', $2, $3, $3)",
        u, 3);
    exec_sql(s,
             "INSERT INTO budgets (budget_id, max_budget, budget_duration, budget_reset_at, created_at, "
             "updated_at) "
             "VALUES ('b-due', 100, '1d', $1, $3, $3), ('b-later', 100, '1d', $2, $3, $3)",
             u, 3);
    exec_sql(s,
             "INSERT INTO end_users (user_id, spend, budget_id, created_at, updated_at) VALUES "
             "('eu-1', 80, 'b-due', $1, $1), ('eu-2', 80, 'b-later', $1, $1)",
             &u[2], 1);
    exec_sql(s,
             "INSERT INTO team_membership (user_id, team_id, spend, budget_id) VALUES ('u-due', 't-due', 30, "
             "'b-due')",
             NULL, 0);
    exec_sql(s,
             "INSERT INTO organizations (organization_id, organization_alias, budget_id, spend, created_at, "
             "updated_at) VALUES ('o-1', 'org', 'b-due', 90, $1, $1)",
             &u[2], 1);
    gw_store_param_t kb[] = {GW_P_TEXT(TOK("f")), GW_P_TEXT(ts)};
    exec_sql(
        s,
        "INSERT INTO keys (token, spend, budget_id, created_at, updated_at) VALUES ($1, 10, 'b-due', $2, $2)",
        kb, 2);

    gw_budgets_reset_stats_t st = reset_at(s, now);
    cr_expect_eq(st.keys, 2, "keys reset: %lld", (long long)st.keys);
    cr_expect_eq(st.users, 1);
    cr_expect_eq(st.teams, 1);
    cr_expect_eq(st.budgets, 1);
    cr_expect_eq(st.linked, 3, "end user, team membership, organization: %lld", (long long)st.linked);
    cr_expect_eq(st.cleared, 0);
    cr_expect_eq(st.more, 0);

    const char *ksql = "SELECT spend, budget_reset_at FROM keys WHERE token = $1";
    json_t *r = query1(s, ksql, TOK("a"));
    cr_expect_eq(int_of(r, "spend"), 0);
    /* ended at T0-5s, 2 s periods: the period that contains T0 ends at T0+1s */
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 + SEC);
    cr_expect_eq(ms_of(r, "budget_reset_at"), gw_limits_period_next(T0 - 5 * SEC, now, 2 * SEC));
    json_decref(r);
    r = query1(s, ksql, TOK("b"));
    cr_expect_eq(int_of(r, "spend"), 700, "still in its period");
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 + 60 * SEC);
    json_decref(r);
    r = query1(s, ksql, TOK("c"));
    cr_expect_eq(int_of(r, "spend"), 700, "expired keys are not reset");
    json_decref(r);
    r = query1(s, ksql, TOK("d"));
    cr_expect_eq(int_of(r, "spend"), 700, "no duration, no reset");
    json_decref(r);
    r = query1(s, ksql, TOK("e"));
    cr_expect_eq(int_of(r, "spend"), 0);
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 + 29 * DAY, "1mo periods are 30 days");
    json_decref(r);
    r = query1(s, ksql, TOK("f"));
    cr_expect_eq(int_of(r, "spend"), 10, "a key's budget_id does not reset its spend");
    json_decref(r);

    r = query1(s, "SELECT spend, budget_reset_at FROM users WHERE user_id = $1", "u-due");
    cr_expect_eq(int_of(r, "spend"), 0);
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 - 5 * SEC + 3600 * SEC);
    json_decref(r);
    r = query1(s, "SELECT spend FROM users WHERE user_id = $1", "u-later");
    cr_expect_eq(int_of(r, "spend"), 50);
    json_decref(r);
    r = query1(s, "SELECT spend, budget_reset_at FROM teams WHERE team_id = $1", "t-due");
    cr_expect_eq(int_of(r, "spend"), 0);
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 - 5 * SEC + 600 * SEC);
    json_decref(r);
    r = query1(s, "SELECT budget_reset_at FROM budgets WHERE budget_id = $1", "b-due");
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 - 5 * SEC + DAY);
    json_decref(r);
    r = query1(s, "SELECT budget_reset_at FROM budgets WHERE budget_id = $1", "b-later");
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 + 60 * SEC);
    json_decref(r);
    r = query1(s, "SELECT spend FROM end_users WHERE user_id = $1", "eu-1");
    cr_expect_eq(int_of(r, "spend"), 0);
    json_decref(r);
    r = query1(s, "SELECT spend FROM end_users WHERE user_id = $1", "eu-2");
    cr_expect_eq(int_of(r, "spend"), 80, "another budget's end user");
    json_decref(r);
    r = query1(s, "SELECT spend FROM team_membership WHERE user_id = $1", "u-due");
    cr_expect_eq(int_of(r, "spend"), 0);
    json_decref(r);
    r = query1(s, "SELECT spend FROM organizations WHERE organization_id = $1", "o-1");
    cr_expect_eq(int_of(r, "spend"), 0);
    json_decref(r);

    /* one change per reset, so every instance's caches reload */
    cr_expect_eq(changes_of(s, "key", TOK("a")), 1);
    cr_expect_eq(changes_of(s, "key", TOK("b")), 0);
    cr_expect_eq(changes_of(s, "key", TOK("c")), 0);
    cr_expect_eq(changes_of(s, "user", "u-due"), 1);
    cr_expect_eq(changes_of(s, "team", "t-due"), 1);
    cr_expect_eq(changes_of(s, "budget", "b-due"), 1);

    /* the same instant again: nothing is due any more */
    st = reset_at(s, now);
    cr_expect_eq(st.keys + st.users + st.teams + st.budgets + st.linked, 0, "a second run reset again");
    cr_expect_eq(changes_of(s, "key", TOK("a")), 1);

    /* the next period of key a ends at T0+1s: spend in it, then a run after it ends */
    exec_sql(s, "UPDATE keys SET spend = 5 WHERE token = $1", (gw_store_param_t[]){GW_P_TEXT(TOK("a"))}, 1);
    st = reset_at(s, T0 + SEC);
    cr_expect_eq(st.keys, 1);
    r = query1(s, ksql, TOK("a"));
    cr_expect_eq(int_of(r, "spend"), 0);
    cr_expect_eq(ms_of(r, "budget_reset_at"), T0 + 3 * SEC);
    json_decref(r);
    cr_expect_eq(changes_of(s, "key", TOK("a")), 2);

    if (kind == GW_STORE_POSTGRES) {
        /* a reset time with microseconds (written by another tool) still matches the CAS */
        exec_sql(s,
                 "UPDATE users SET spend = 9, budget_reset_at = CAST('2027-01-15T07:59:58.123456Z' AS "
                 "TIMESTAMPTZ) "
                 "WHERE user_id = 'u-later'",
                 NULL, 0);
        st = reset_at(s, now);
        cr_expect_eq(st.users, 1, "microsecond reset time: %lld users reset", (long long)st.users);
        r = query1(s, "SELECT spend FROM users WHERE user_id = $1", "u-later");
        cr_expect_eq(int_of(r, "spend"), 0);
        json_decref(r);
    }

    /* a duration this build cannot read: the reset time is cleared, the spend kept */
    exec_sql(s, "UPDATE teams SET budget_duration = 'weekly', budget_reset_at = $1 WHERE team_id = 't-later'",
             (gw_store_param_t[]){GW_P_TEXT(due)}, 1);
    st = reset_at(s, now);
    cr_expect_eq(st.cleared, 1);
    cr_expect_eq(st.teams, 0);
    r = query1(s, "SELECT spend, budget_reset_at FROM teams WHERE team_id = $1", "t-later");
    cr_expect_eq(int_of(r, "spend"), 60);
    cr_expect(json_is_null(json_object_get(r, "budget_reset_at")));
    json_decref(r);
    st = reset_at(s, now);
    cr_expect_eq(st.cleared, 0, "cleared once");

    env_close(&e, s);
}

Test(budgets_reset, sqlite)
{
    case_reset(GW_STORE_SQLITE);
}

Test(budgets_reset, postgres)
{
    case_reset(GW_STORE_POSTGRES);
}

Test(budgets_reset, batch_reports_more)
{
    env_t e;
    gw_store_t *s = env_open(&e, GW_STORE_SQLITE);
    char due[GW_STORE_TIME_LEN];
    iso(T0 - SEC, due);
    gw_store_param_t p[] = {GW_P_TEXT(due), GW_P_INT(GW_BUDGETS_RESET_BATCH + 7)};
    exec_sql(s,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) "
             "INSERT INTO users (user_id, spend, budget_duration, budget_reset_at) "
             "SELECT 'u' || i, 1, '1h', $1 FROM n",
             p, 2);
    gw_budgets_reset_stats_t st = reset_at(s, T0);
    cr_expect_eq(st.users, GW_BUDGETS_RESET_BATCH);
    cr_expect(st.more);
    st = reset_at(s, T0);
    cr_expect_eq(st.users, 7);
    cr_expect_not(st.more);
    env_close(&e, s);
}

/* Two instances run the job at the same moment: both read the key as due (a third connection
 * holds the row's lock until both are waiting on it), then both try to reset it. The
 * compare-and-set lets exactly one through. */
typedef struct racer {
    gw_store_t *s;
    gw_budgets_reset_stats_t st;
    int status;
} racer_t;

static void *race_thread(void *p)
{
    racer_t *r = p;
    reset_job_t j = {.now = T0};
    char err[512] = "";
    r->status = gw_store_run(r->s, run_reset, &j, err, sizeof(err));
    r->st = j.st;
    return NULL;
}

Test(budgets_reset, postgres_two_instances_reset_once)
{
    env_t e;
    gw_store_t *s1 = env_open(&e, GW_STORE_POSTGRES);
    char err[512] = "";
    gw_store_t *s2 = gw_store_open_url(e.url, NULL, err, sizeof(err));
    cr_assert_not_null(s2, "%s", err);
    char due[GW_STORE_TIME_LEN];
    iso(T0 - SEC, due);
    gw_store_param_t k[] = {GW_P_TEXT(TOK("a")), GW_P_TEXT(due)};
    exec_sql(s1,
             "INSERT INTO keys (token, spend, budget_duration, budget_reset_at) VALUES ($1, 700, '2s', $2)",
             k, 2);

    PGconn *lock = PQconnectdb(e.url);
    cr_assert_eq(PQstatus(lock), CONNECTION_OK, "%s", PQerrorMessage(lock));
    PQclear(PQexec(lock, "BEGIN"));
    PGresult *lr = PQexec(lock, "UPDATE keys SET spend = spend WHERE token = '" TOK("a") "'");
    cr_assert_eq(PQresultStatus(lr), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(lr));
    PQclear(lr);

    racer_t r[2] = {{.s = s1}, {.s = s2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, race_thread, &r[i]);
    usleep(500 * 1000); /* both have read the row as due and wait for its lock */
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(r[0].status, GW_STORE_OK);
    cr_assert_eq(r[1].status, GW_STORE_OK);
    cr_expect_eq(r[0].st.keys + r[1].st.keys, 1, "resets: %lld + %lld", (long long)r[0].st.keys,
                 (long long)r[1].st.keys);
    cr_expect_eq(changes_of(s1, "key", TOK("a")), 1);
    json_t *row = query1(s1, "SELECT spend, budget_reset_at FROM keys WHERE token = $1", TOK("a"));
    cr_expect_eq(int_of(row, "spend"), 0);
    cr_expect_eq(ms_of(row, "budget_reset_at"), T0 + SEC);
    json_decref(row);
    gw_store_close(s2);
    env_close(&e, s1);
}

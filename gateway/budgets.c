/*
 * budgets.c — the budget reset job (see budgets.h): a store job that worker 0 submits every
 * GW_BUDGETS_RESET_MS, and the SQL it runs on the store thread.
 */
#include "gateway/budgets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/keys.h"
#include "gateway/limits.h"
#include "gateway/server.h"

/* One table with budget periods. The SQL below is built from these constant names only. */
typedef struct table_spec {
    const char *table, *idcol, *kind; /* kind: the changes feed's name for a row of it */
    int has_spend;                    /* budgets has none: its spend lives in the rows linked to it */
    int skip_expired;                 /* keys: an expired key is not reset (LiteLLM) */
} table_spec_t;

static const table_spec_t tables[] = {
    {"keys", "token", "key", 1, 1},
    {"users", "user_id", "user", 1, 0},
    {"teams", "team_id", "team", 1, 0},
    {"budgets", "budget_id", "budget", 0, 0},
};

/* Rows that reference a budget and carry the spend of its period. */
static const char *const linked_sql[] = {
    "UPDATE end_users SET spend = 0 WHERE budget_id = $1 AND spend <> 0",
    "UPDATE team_membership SET spend = 0 WHERE budget_id = $1 AND spend <> 0",
    "UPDATE organizations SET spend = 0 WHERE budget_id = $1 AND spend <> 0",
};

typedef struct table_run {
    const table_spec_t *t;
    json_t *rows;
    int64_t now_ms;
    char now[GW_STORE_TIME_LEN];
    int64_t reset, linked, cleared;
} table_run_t;

static int64_t *counter_of(gw_budgets_reset_stats_t *s, const table_spec_t *t)
{
    return t == &tables[0]   ? &s->keys
           : t == &tables[1] ? &s->users
           : t == &tables[2] ? &s->teams
                             : &s->budgets;
}

/* The rows of t whose period ended, oldest first (a stable order, so that two instances updating
 * the same rows lock them in the same order). */
static int select_due(gw_store_conn_t *c, table_run_t *r)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT %s AS id, budget_duration, budget_reset_at FROM %s WHERE budget_reset_at <= $1 "
             "AND budget_duration IS NOT NULL%s ORDER BY budget_reset_at, %s LIMIT $2",
             r->t->idcol, r->t->table, r->t->skip_expired ? " AND (expires IS NULL OR expires > $1)" : "",
             r->t->idcol);
    gw_store_param_t p[] = {GW_P_TEXT(r->now), GW_P_INT(GW_BUDGETS_RESET_BATCH)};
    return gw_store_query(c, sql, p, 2, &r->rows);
}

/* One row: compare-and-set on the reset time it was read with, at the millisecond (a timestamp
 * with finer digits, e.g. imported from LiteLLM, still matches). */
static int reset_row(gw_store_conn_t *c, table_run_t *r, const char *id, int64_t old_ms, int64_t dur_ms)
{
    char old[GW_STORE_TIME_LEN], old_end[GW_STORE_TIME_LEN], next[GW_STORE_TIME_LEN], sql[384];
    gw_store_time_iso(old_ms, old);
    gw_store_time_iso(old_ms + 1, old_end);
    int64_t changed = 0;
    int st;
    if (dur_ms <= 0) { /* not a duration this build reads: stop matching it every run */
        snprintf(
            sql, sizeof(sql),
            "UPDATE %s SET budget_reset_at = NULL, updated_at = $2 WHERE %s = $1 AND budget_reset_at >= $3 "
            "AND budget_reset_at < $4",
            r->t->table, r->t->idcol);
        gw_store_param_t p[] = {GW_P_TEXT(id), GW_P_TEXT(r->now), GW_P_TEXT(old), GW_P_TEXT(old_end)};
        st = gw_store_exec(c, sql, p, 4, &changed);
        if (st == GW_STORE_OK && changed > 0) {
            r->cleared++;
            st = gw_store_note_change(c, r->t->kind, id);
        }
        return st;
    }
    gw_store_time_iso(gw_limits_period_next(old_ms, r->now_ms, dur_ms), next);
    snprintf(sql, sizeof(sql),
             "UPDATE %s SET %sbudget_reset_at = $2, updated_at = $3 WHERE %s = $1 AND budget_reset_at >= $4 "
             "AND budget_reset_at < $5",
             r->t->table, r->t->has_spend ? "spend = 0, " : "", r->t->idcol);
    gw_store_param_t p[] = {GW_P_TEXT(id), GW_P_TEXT(next), GW_P_TEXT(r->now), GW_P_TEXT(old),
                            GW_P_TEXT(old_end)};
    st = gw_store_exec(c, sql, p, 5, &changed);
    if (st != GW_STORE_OK || changed == 0) /* 0: another instance reset it first */
        return st;
    r->reset++;
    if (!r->t->has_spend) {
        gw_store_param_t b[] = {GW_P_TEXT(id)};
        for (size_t i = 0; i < sizeof(linked_sql) / sizeof(linked_sql[0]) && st == GW_STORE_OK; i++) {
            int64_t n = 0;
            st = gw_store_exec(c, linked_sql[i], b, 1, &n);
            r->linked += n;
        }
    }
    /* every instance's caches hear of it (keys.c apply_change: a key, user or team row drops the
     * principals naming it; a budget row the end users naming it, and marks principals stale) */
    return st == GW_STORE_OK ? gw_store_note_change(c, r->t->kind, id) : st;
}

static int reset_rows_tx(gw_store_conn_t *c, void *ud)
{
    table_run_t *r = ud;
    size_t i;
    json_t *row;
    r->reset = r->linked = r->cleared = 0; /* a retried transaction counts from scratch */
    json_array_foreach(r->rows, i, row)
    {
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *at = json_string_value(json_object_get(row, "budget_reset_at"));
        int64_t old_ms;
        if (id == NULL || at == NULL || gw_store_time_parse(at, &old_ms) != 0)
            continue;
        int64_t dur_ms = gw_duration_budget_ms(json_string_value(json_object_get(row, "budget_duration")));
        int st = reset_row(c, r, id, old_ms, dur_ms);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

int gw_budgets_reset_due(gw_store_conn_t *c, int64_t now_ms, gw_budgets_reset_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        table_run_t r = {.t = &tables[i], .now_ms = now_ms};
        gw_store_time_iso(now_ms, r.now);
        int st = select_due(c, &r);
        if (st == GW_STORE_OK && json_array_size(r.rows) > 0)
            st = gw_store_tx(c, reset_rows_tx, &r);
        if (st == GW_STORE_OK) {
            *counter_of(out, r.t) += r.reset;
            out->linked += r.linked;
            out->cleared += r.cleared;
            if (json_array_size(r.rows) >= GW_BUDGETS_RESET_BATCH)
                out->more = 1;
        }
        json_decref(r.rows);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

/* ---- the periodic job (worker 0) -------------------------------------------------------------- */

typedef struct reset_job {
    gw_worker_t *w;
    gw_budgets_reset_stats_t stats;
} reset_job_t;

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int job_reset(gw_store_conn_t *c, void *ud)
{
    reset_job_t *j = ud;
    return gw_budgets_reset_due(c, unix_ms(), &j->stats); /* the store thread's clock, at run time */
}

static void schedule(gw_worker_t *w, uint64_t ms);

static void on_reset_done(void *ud, int status, const char *err)
{
    reset_job_t *j = ud;
    gw_worker_t *w = j->w;
    const gw_budgets_reset_stats_t *s = &j->stats;
    gw_keys_job_done(w);
    w->reset_inflight = 0;
    if (status != GW_STORE_OK && status != GW_STORE_UNAVAILABLE && status != GW_STORE_CLOSED)
        fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"budget reset failed\",\"status\":\"%s\"}\n",
                gw_store_status_name(status));
    else if (s->keys + s->users + s->teams + s->budgets + s->cleared > 0)
        fprintf(stderr,
                "{\"level\":\"info\",\"msg\":\"budgets reset\",\"keys\":%lld,\"users\":%lld,\"teams\":%lld,"
                "\"budgets\":%lld,\"linked\":%lld,\"cleared\":%lld}\n",
                (long long)s->keys, (long long)s->users, (long long)s->teams, (long long)s->budgets,
                (long long)s->linked, (long long)s->cleared);
    (void)err; /* the status says enough; the message may quote SQL */
    int more = status == GW_STORE_OK && s->more;
    free(j);
    if (!w->draining)
        schedule(w, more ? 1 : GW_BUDGETS_RESET_MS);
}

static void on_reset_timer(h2o_timeout_entry_t *entry)
{
    gw_worker_t *w = H2O_STRUCT_FROM_MEMBER(gw_worker_t, reset_timer, entry);
    if (w->draining || w->reset_inflight)
        return;
    reset_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return schedule(w, GW_BUDGETS_RESET_MS);
    j->w = w;
    if (gw_keys_submit(w, job_reset, on_reset_done, j) != 0) {
        free(j);
        return schedule(w, GW_BUDGETS_RESET_MS);
    }
    w->reset_inflight = 1;
}

static void schedule(gw_worker_t *w, uint64_t ms)
{
    w->reset_timer.cb = on_reset_timer;
    if (!h2o_timeout_is_linked(&w->reset_timer))
        h2o_timeout_link(w->loop, gw_worker_timeout(w, ms), &w->reset_timer);
}

void gw_budgets_start_reset(gw_worker_t *w)
{
    if (w->server->store != NULL)
        schedule(w, GW_BUDGETS_RESET_MS);
}

void gw_budgets_stop_reset(gw_worker_t *w)
{
    if (h2o_timeout_is_linked(&w->reset_timer))
        h2o_timeout_unlink(&w->reset_timer);
}

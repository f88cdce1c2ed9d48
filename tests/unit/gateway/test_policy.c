/*
 * test_policy.c — gateway/policy.c's global budget without a server: clock-aligned periods (a
 * table of durations and instants, calendar months, invalid durations), and the start-up seed
 * from a real SQLite store: only spend_logs rows of the current period count, no budget
 * configured means nothing is created, malformed settings are errors.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/policy.h"
#include "gateway/store.h"

static int64_t iso(const char *s)
{
    int64_t ms = 0;
    cr_assert_eq(gw_store_time_parse(s, &ms), 0, "%s", s);
    return ms;
}

Test(policy, period_table)
{
    static const struct {
        const char *dur, *now, *start, *end;
    } cases[] = {
        {"1d", "2026-12-01T13:45:10.123Z", "2026-12-01T00:00:00.000Z", "2026-12-02T00:00:00.000Z"},
        {"1h", "2026-12-01T13:45:10.123Z", "2026-12-01T13:00:00.000Z", "2026-12-01T14:00:00.000Z"},
        {"30s", "2026-12-01T13:45:10.123Z", "2026-12-01T13:45:00.000Z", "2026-12-01T13:45:30.000Z"},
        {"30s", "2026-12-01T13:45:30.000Z", "2026-12-01T13:45:30.000Z", "2026-12-01T13:46:00.000Z"},
        {"1mo", "2026-02-28T23:59:59.999Z", "2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"},
        {"1mo", "2026-12-31T10:00:00.000Z", "2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"},
        {"3mo", "2026-05-15T00:00:00.000Z", "2026-04-01T00:00:00.000Z", "2026-07-01T00:00:00.000Z"},
        {"7d", "1970-01-08T00:00:00.000Z", "1970-01-08T00:00:00.000Z", "1970-01-15T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t s = 0, e = 0;
        cr_assert_eq(gw_policy_period(cases[i].dur, iso(cases[i].now), &s, &e), 0, "case %zu", i);
        cr_assert_eq(s, iso(cases[i].start), "case %zu: start", i);
        cr_assert_eq(e, iso(cases[i].end), "case %zu: end", i);
    }
    int64_t s, e;
    cr_assert_eq(gw_policy_period("1 day", 0, &s, &e), -1);
    cr_assert_eq(gw_policy_period("", 0, &s, &e), -1);
    cr_assert_eq(gw_policy_period(NULL, 0, &s, &e), -1);
}

static gw_config_t *config(const char *litellm_settings)
{
    char yaml[512], err[512];
    snprintf(yaml, sizeof(yaml),
             "model_list:\n  - model_name: m\n    litellm_params: {model: mock/m}\nlitellm_settings:\n%s\n",
             litellm_settings);
    gw_config_t *c = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    return c;
}

static int job_rows(gw_store_conn_t *c, void *ud)
{
    (void)ud;
    static const struct {
        const char *id, *start;
        int64_t spend;
    } rows[] = {
        {"r1", "2026-11-30T23:59:59.999Z", 1000000}, /* yesterday: not in a 1d period */
        {"r2", "2026-12-01T00:00:00.000Z", 250},
        {"r3", "2026-12-01T12:00:00.000Z", 750},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gw_store_param_t p[] = {GW_P_TEXT(rows[i].id), GW_P_INT(rows[i].spend), GW_P_TEXT(rows[i].start)};
        int st = gw_store_exec(c,
                               "INSERT INTO spend_logs (request_id, spend, \"startTime\", \"endTime\") "
                               "VALUES ($1, $2, $3, $3)",
                               p, 3, NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

Test(policy, global_seed_sqlite)
{
    char dir[] = "/tmp/tg-policy-XXXXXX", err[512];
    cr_assert_not_null(mkdtemp(dir));
    gw_store_t *s = gw_store_open_url(NULL, dir, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(gw_store_run(s, job_rows, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    int64_t now = iso("2026-12-01T13:00:00.000Z");

    gw_config_t *c = config("  max_budget: 2.5\n  budget_duration: 1d");
    gw_policy_global_t *g = NULL;
    cr_assert_eq(gw_policy_global_init(c, s, now, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_not_null(g);
    cr_assert_eq(g->max_budget, 2500000);
    cr_assert_eq(g->seed_spend, 1000, "only this period's rows: %lld", (long long)g->seed_spend);
    cr_assert_eq(g->seed_end_ms, iso("2026-12-02T00:00:00.000Z"));
    cr_assert_str_eq(g->duration, "1d");
    free(g);
    gw_config_free(c);

    c = config("  max_budget: 0"); /* no duration: all the spend ever */
    cr_assert_eq(gw_policy_global_init(c, s, now, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g->max_budget, 0);
    cr_assert_eq(g->seed_spend, 1001000);
    cr_assert_eq(g->seed_end_ms, 0);
    free(g);
    gw_config_free(c);

    c = config("  drop_params: true");
    g = (gw_policy_global_t *)1;
    cr_assert_eq(gw_policy_global_init(c, s, now, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_null(g, "no max_budget: no global scope");
    gw_config_free(c);

    static const char *bad[] = {"  max_budget: -1", "  max_budget: lots",
                                "  max_budget: 1\n  budget_duration: 1 day"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        c = config(bad[i]);
        err[0] = '\0';
        cr_assert_eq(gw_policy_global_init(c, s, now, &g, err, sizeof(err)), -1, "bad %zu", i);
        cr_assert_null(g);
        cr_assert(strstr(err, "litellm_settings.") != NULL, "%s", err);
        gw_config_free(c);
    }
    gw_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

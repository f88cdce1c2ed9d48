/*
 * test_keys.c — gateway/keys.c without a server: key format and entropy, hashing (SHA-256 hex,
 * known vectors), token_of, durations (a table of valid and invalid strings, calendar months),
 * and principals built from a load-query row: limits, allow-lists (empty, exact, wildcard,
 * all-proxy-models, all-team-models with the team's list), admin role, expiry parsing. The load
 * query itself runs against a real SQLite store (schema migrated) for an existing and an unknown
 * token.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/keys.h"
#include "gateway/store.h"

Test(keys, generate_format_and_uniqueness)
{
    char seen[64][GW_KEY_LEN + 1];
    for (int i = 0; i < 64; i++) {
        char *k = seen[i];
        cr_assert_eq(gw_key_generate(k), 0);
        cr_assert_eq(strlen(k), 25);
        cr_assert(strncmp(k, "sk-", 3) == 0);
        for (int j = 3; j < 25; j++)
            cr_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", k[j]) !=
                          NULL,
                      "char %c", k[j]);
        /* 128 bits in 22 chars: the last char carries 2 bits, so it is one of A, Q, g, w */
        cr_assert(strchr("AQgw", k[24]) != NULL, "last char %c", k[24]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(seen[j], k);
    }
}

Test(keys, hash_vectors)
{
    char h[GW_KEY_HASH_LEN + 1];
    gw_key_hash_hex("", 0, h);
    cr_assert_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    gw_key_hash_hex("abc", 3, h);
    cr_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cr_assert(gw_key_is_hash(h));
    cr_assert(!gw_key_is_hash("sk-abc"));
    cr_assert(!gw_key_is_hash("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    char t[GW_KEY_HASH_LEN + 1];
    cr_assert_eq(gw_key_token_of(h, t), 0);
    cr_assert_str_eq(t, h, "a hash names itself");
    cr_assert_eq(gw_key_token_of("abc", t), 0);
    cr_assert_str_eq(t, h, "a key is hashed");
    cr_assert_eq(gw_key_token_of("", t), -1);
    cr_assert_eq(gw_key_token_of(NULL, t), -1);
    char name[32];
    gw_key_display_name("sk-Fok8OawD4SxiZgdLkVQbcw", name, sizeof(name));
    cr_assert_str_eq(name, "sk-...Qbcw");
}

Test(keys, duration_table)
{
    static const struct {
        const char *s;
        int ok;
        int64_t seconds;
        int months;
    } cases[] = {
        {"30s", 1, 30, 0},
        {"10m", 1, 600, 0},
        {"1h", 1, 3600, 0},
        {"7d", 1, 7 * 86400, 0},
        {"2w", 1, 14 * 86400, 0},
        {"1mo", 1, 0, 1},
        {"12mo", 1, 0, 12},
        {"86400s", 1, 86400, 0},
        {"", 0, 0, 0},
        {"s", 0, 0, 0},
        {"0s", 0, 0, 0},
        {"-1d", 0, 0, 0},
        {"1", 0, 0, 0},
        {"1x", 0, 0, 0},
        {"1 d", 0, 0, 0},
        {" 1d", 0, 0, 0},
        {"1dd", 0, 0, 0},
        {"1.5h", 0, 0, 0},
        {"99999999999999999999d", 0, 0, 0},
        {"1m0", 0, 0, 0},
        {"1M", 0, 0, 0},
        {"36600d", 1, 36600LL * 86400, 0},
        {"40000d", 0, 0, 0},
        {"1201mo", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_duration_t d = {-1, -1};
        int rc = gw_duration_parse(cases[i].s, &d);
        cr_assert_eq(rc == 0, cases[i].ok, "%s: rc %d", cases[i].s, rc);
        if (cases[i].ok) {
            cr_assert_eq(d.seconds, cases[i].seconds, "%s", cases[i].s);
            cr_assert_eq(d.months, cases[i].months, "%s", cases[i].s);
        }
    }
    cr_assert_eq(gw_duration_parse(NULL, &(gw_duration_t){0, 0}), -1);
}

static int64_t iso(const char *s)
{
    int64_t ms;
    cr_assert_eq(gw_store_time_parse(s, &ms), 0, "%s", s);
    return ms;
}

Test(keys, duration_add_calendar)
{
    gw_duration_t mo = {0, 1}, d30 = {30, 0}, y = {0, 12};
    int64_t out;
    cr_assert_eq(gw_duration_add(iso("2024-01-31T10:00:00.250Z"), &mo, &out), 0);
    cr_assert_eq(out, iso("2024-02-29T10:00:00.250Z"), "clamped to the leap day");
    cr_assert_eq(gw_duration_add(iso("2023-01-31T00:00:00Z"), &mo, &out), 0);
    cr_assert_eq(out, iso("2023-02-28T00:00:00Z"));
    cr_assert_eq(gw_duration_add(iso("2024-12-15T00:00:00Z"), &mo, &out), 0);
    cr_assert_eq(out, iso("2025-01-15T00:00:00Z"), "year rolls over");
    cr_assert_eq(gw_duration_add(iso("2024-02-29T00:00:00Z"), &y, &out), 0);
    cr_assert_eq(out, iso("2025-02-28T00:00:00Z"));
    cr_assert_eq(gw_duration_add(1000, &d30, &out), 0);
    cr_assert_eq(out, 31000);
    gw_duration_t huge = {INT64_MAX / 1000 + 1, 0};
    cr_assert_eq(gw_duration_add(0, &huge, &out), -1, "overflow is refused");
}

Test(keys, duration_budget_ms)
{
    /* a budget period's length: fixed milliseconds, months counted as 30 days (keys.h) */
    static const struct {
        const char *s;
        int64_t ms;
    } cases[] = {
        {"2s", 2000},
        {"10m", 600000},
        {"1h", 3600000},
        {"1d", 86400000},
        {"1w", 7 * 86400000LL},
        {"1mo", 30 * 86400000LL},
        {"3mo", 90 * 86400000LL},
        {"1200mo", 36000LL * 86400000},
        {"36600d", 36600LL * 86400000},
        {"", 0},
        {"0s", 0},
        {"1x", 0},
        {"1201mo", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(gw_duration_budget_ms(cases[i].s), cases[i].ms, "%s", cases[i].s);
    cr_assert_eq(gw_duration_budget_ms(NULL), 0);
}

static json_t *row(const char *models, const char *team_models)
{
    json_t *r =
        json_pack("{s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:s, s:I, s:I, s:I}", "token",
                  "7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c", "key_alias", "a1",
                  "user_id", "u1", "blocked", 0, "expires", "2030-01-01T00:00:00.000Z", "k_max_budget",
                  (json_int_t)1250000, "k_spend", (json_int_t)5, "k_budget_duration", "1d", "k_rpm_limit",
                  (json_int_t)7, "t_tpm_limit", (json_int_t)1000, "o_max_budget", (json_int_t)9);
    json_object_set_new(r, "models", json_loads(models, 0, NULL));
    if (team_models != NULL)
        json_object_set_new(r, "team_models", json_loads(team_models, 0, NULL));
    return r;
}

Test(keys, principal_from_row)
{
    json_t *r = row("[]", NULL);
    json_object_set_new(r, "user_role", json_string("proxy_admin"));
    gw_principal_t *p = gw_principal_from_row(r);
    cr_assert_str_eq(p->key_alias, "a1");
    cr_assert_str_eq(p->user_id, "u1");
    cr_assert_null(p->team_id);
    cr_assert_eq(p->key.max_budget, 1250000);
    cr_assert_eq(p->key.spend, 5);
    cr_assert_eq(p->key.rpm, 7);
    cr_assert_eq(p->key.tpm, -1);
    cr_assert_str_eq(p->key.budget_duration, "1d");
    cr_assert_eq(p->team.tpm, 1000);
    cr_assert_eq(p->org.max_budget, 9);
    cr_assert_eq(p->user.max_budget, -1);
    cr_assert_eq(p->expires_ms, iso("2030-01-01T00:00:00Z"));
    cr_assert(gw_principal_is_admin(p));
    cr_assert(!gw_principal_restricted(p));
    cr_assert(gw_principal_model_allowed(p, "anything"));
    gw_principal_ref(p);
    gw_principal_release(p);
    gw_principal_release(p);
    json_decref(r);
}

Test(keys, allow_lists)
{
    static const struct {
        const char *models, *team, *model;
        int allowed;
    } cases[] = {
        {"[\"a\"]", NULL, "a", 1},
        {"[\"a\"]", NULL, "b", 0},
        {"[\"openai/*\"]", NULL, "openai/gpt-4o", 1},
        {"[\"openai/*\"]", NULL, "anthropic/x", 0},
        {"[\"all-proxy-models\"]", NULL, "z", 1},
        {"[]", "[\"t\"]", "t", 1},
        {"[]", "[\"t\"]", "a", 0},
        {"[\"a\"]", "[\"t\"]", "a", 0},
        {"[\"all-team-models\"]", "[\"t\"]", "t", 1},
        {"[\"all-team-models\"]", "[\"t\"]", "u", 0},
        {"[]", "[]", "x", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *r = row(cases[i].models, cases[i].team);
        gw_principal_t *p = gw_principal_from_row(r);
        cr_assert_eq(gw_principal_model_allowed(p, cases[i].model), cases[i].allowed, "case %zu", i);
        cr_assert(!gw_principal_is_admin(p));
        gw_principal_release(p);
        json_decref(r);
    }
}

typedef struct load {
    const char *token;
    json_t *rows;
} load_t;

static int job_insert(gw_store_conn_t *c, void *ud)
{
    gw_store_param_t p[] = {GW_P_TEXT("7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c")};
    int st =
        gw_store_exec(c,
                      "INSERT INTO keys (token, key_alias, user_id, team_id, models, max_budget, rpm_limit, "
                      "model_max_budget, metadata) VALUES ($1, 'al', 'u1', 't1', '[\"m\"]', 2000000, 3, "
                      "'{\"m\": {\"budget_limit\": 0.25, \"time_period\": \"1h\"}}', "
                      "'{\"model_rpm_limit\": {\"m\": 4}}')",
                      p, 1, NULL);
    if (st == GW_STORE_OK)
        st = gw_store_exec(
            c,
            "INSERT INTO teams (team_id, models, blocked, max_budget) VALUES ('t1', '[\"m\", \"n\"]', "
            "TRUE, 5)",
            NULL, 0, NULL);
    if (st == GW_STORE_OK)
        st = gw_store_exec(c, "INSERT INTO users (user_id, user_role) VALUES ('u1', 'internal_user')", NULL,
                           0, NULL);
    if (st == GW_STORE_OK)
        st = gw_store_exec(
            c,
            "INSERT INTO team_membership (user_id, team_id, spend, budget_id) VALUES ('u1', 't1', 7, 'b1')",
            NULL, 0, NULL);
    if (st == GW_STORE_OK)
        st = gw_store_exec(c, "INSERT INTO budgets (budget_id, max_budget, tpm_limit) VALUES ('b1', 900, 50)",
                           NULL, 0, NULL);
    return st;
}

static int job_load(gw_store_conn_t *c, void *ud)
{
    load_t *l = ud;
    gw_store_param_t p[] = {GW_P_TEXT(l->token)};
    return gw_store_query(c, gw_principal_load_sql, p, 1, &l->rows);
}

Test(keys, load_query_sqlite)
{
    char dir[] = "/tmp/tg-keys-XXXXXX", err[512];
    cr_assert_not_null(mkdtemp(dir));
    gw_store_t *s = gw_store_open_url(NULL, dir, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(gw_store_run(s, job_insert, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    load_t l = {"7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c", NULL};
    cr_assert_eq(gw_store_run(s, job_load, &l, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(json_array_size(l.rows), 1);
    gw_principal_t *p = gw_principal_from_row(json_array_get(l.rows, 0));
    cr_assert_str_eq(p->team_id, "t1");
    cr_assert(p->team_blocked);
    cr_assert(!p->blocked);
    cr_assert_eq(p->key.max_budget, 2000000);
    cr_assert_eq(p->key.rpm, 3);
    cr_assert_eq(p->team.max_budget, 5);
    cr_assert_str_eq(p->user_role, "internal_user");
    cr_assert(gw_principal_model_allowed(p, "m"));
    cr_assert(!gw_principal_model_allowed(p, "n"), "the key's own list is narrower than the team's");
    cr_assert(p->has_member);
    cr_assert_str_eq(p->member_id, "u1/t1");
    cr_assert_eq(p->member.max_budget, 900);
    cr_assert_eq(p->member.tpm, 50);
    cr_assert_eq(p->member.rpm, -1);
    cr_assert_eq(p->member.spend, 7);
    const gw_model_limit_t *ml = gw_principal_model_limit(p, "m");
    cr_assert_not_null(ml);
    cr_assert_eq(ml->max_budget, 250000);
    cr_assert_eq(ml->budget_duration_ms, 3600000);
    cr_assert_eq(ml->rpm, 4);
    cr_assert_null(gw_principal_model_limit(p, "n"));
    gw_principal_release(p);
    json_decref(l.rows);
    l = (load_t){"0000000000000000000000000000000000000000000000000000000000000000", NULL};
    cr_assert_eq(gw_store_run(s, job_load, &l, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(json_array_size(l.rows), 0, "unknown token: no row");
    json_decref(l.rows);
    gw_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---- changes pruning ---------------------------------------------------------------------- */

typedef struct prune_case {
    int64_t now_ms;
    int64_t deleted;
    json_t *left;
} prune_case_t;

static int job_prune_setup(gw_store_conn_t *c, void *ud)
{
    prune_case_t *pc = ud;
    static const int64_t ages_ms[] = {2 * 3600 * 1000, GW_KEYS_CHANGES_KEEP_MS + 1000, 60 * 1000, 0};
    static const char *const ids[] = {"prune-old-1", "prune-old-2", "prune-new-1", "prune-new-2"};
    for (size_t i = 0; i < 4; i++) {
        char at[GW_STORE_TIME_LEN];
        gw_store_time_iso(pc->now_ms - ages_ms[i], at);
        gw_store_param_t p[] = {GW_P_TEXT(ids[i]), GW_P_TEXT(at)};
        int st = gw_store_exec(c, "INSERT INTO changes (kind, id, at) VALUES ('key', $1, $2)", p, 2, NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

static int job_prune(gw_store_conn_t *c, void *ud)
{
    prune_case_t *pc = ud;
    int st = gw_keys_prune_changes(c, pc->now_ms, &pc->deleted);
    if (st != GW_STORE_OK)
        return st;
    return gw_store_query(c, "SELECT id FROM changes WHERE id LIKE 'prune-%' ORDER BY seq", NULL, 0,
                          &pc->left);
}

static void prune_on(const char *url)
{
    char dir[] = "/tmp/tg-prune-XXXXXX", err[512];
    cr_assert_not_null(mkdtemp(dir));
    gw_store_t *s = gw_store_open_url(url, dir, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(gw_store_migrate(s, NULL, err, sizeof(err)), GW_STORE_OK, "%s", err);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    prune_case_t pc = {.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
    cr_assert_eq(gw_store_run(s, job_prune_setup, &pc, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_assert_eq(gw_store_run(s, job_prune, &pc, err, sizeof(err)), GW_STORE_OK, "%s", err);
    cr_expect_geq(pc.deleted, 2, "the two rows older than the keep window");
    cr_assert_eq(json_array_size(pc.left), 2, "rows within the window stay");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(pc.left, 0), "id")), "prune-new-1");
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(pc.left, 1), "id")), "prune-new-2");
    json_decref(pc.left);
    if (url != NULL) { /* a shared database: leave no rows behind */
        pc.now_ms += 10LL * GW_KEYS_CHANGES_KEEP_MS;
        pc.left = NULL;
        cr_assert_eq(gw_store_run(s, job_prune, &pc, err, sizeof(err)), GW_STORE_OK, "%s", err);
        json_decref(pc.left);
    }
    gw_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(keys, prune_changes_sqlite)
{
    prune_on(NULL);
}

Test(keys, prune_changes_postgres)
{
    const char *url = getenv("TEST_DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        cr_skip_test("TEST_DATABASE_URL is not set");
    prune_on(url);
}

/* Per-model limits: LiteLLM's two model_max_budget forms, metadata's maps, bad entries skipped. */
Test(keys, model_limits_parse)
{
    static const char token[] = "7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c";
    static const struct {
        const char *mmb, *metadata, *model;
        int64_t budget, rpm, tpm, dur_ms;
        int found;
    } cases[] = {
        {"{\"gpt-4o\": {\"budget_limit\": 0.0001, \"time_period\": \"1d\"}}", "{}", "gpt-4o", 100, -1, -1,
         86400000, 1},
        {"{\"gpt-4o\": 0.5}", "{}", "gpt-4o", 500000, -1, -1, 0, 1},
        {"{\"gpt-4o\": \"0.5\"}", "{}", "gpt-4o", 500000, -1, -1, 0, 1},
        {"{\"gpt-4o\": {\"budget_limit\": 1, \"time_period\": \"1mo\", \"rpm_limit\": 3, \"tpm_limit\": 9}}",
         "{}", "gpt-4o", 1000000, 3, 9, 30LL * 86400000, 1},
        {"{}", "{\"model_rpm_limit\": {\"a\": 2}, \"model_tpm_limit\": {\"a\": 100, \"b\": 5}}", "a", -1, 2,
         100, 0, 1},
        {"{}", "{\"model_rpm_limit\": {\"a\": 2}, \"model_tpm_limit\": {\"a\": 100, \"b\": 5}}", "b", -1, -1,
         5, 0, 1},
        /* metadata wins over model_max_budget's rpm_limit */
        {"{\"a\": {\"budget_limit\": 1, \"rpm_limit\": 3}}", "{\"model_rpm_limit\": {\"a\": 7}}", "a",
         1000000, 7, -1, 0, 1},
        {"{\"a\": {\"budget_limit\": 1, \"time_period\": \"1 day\"}}", "{}", "a", 0, 0, 0, 0, 0},
        {"{\"a\": -1}", "{}", "a", 0, 0, 0, 0, 0},
        {"{\"a\": {}}", "{}", "a", 0, 0, 0, 0, 0},
        {"{}", "{\"model_rpm_limit\": {\"a\": -3}}", "a", 0, 0, 0, 0, 0},
        {"{}", "{\"model_rpm_limit\": [1]}", "a", 0, 0, 0, 0, 0},
        {"{\"a\": 1}", "{}", "other", 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *mmb = json_loads(cases[i].mmb, 0, NULL), *md = json_loads(cases[i].metadata, 0, NULL);
        cr_assert_not_null(mmb, "case %zu", i);
        cr_assert_not_null(md, "case %zu", i);
        gw_model_limit_t *l = NULL;
        size_t n = 0;
        cr_assert_eq(gw_model_limits_parse(mmb, md, token, &l, &n), 0, "case %zu", i);
        const gw_model_limit_t *e = NULL;
        for (size_t k = 0; k < n; k++)
            if (strcmp(l[k].model, cases[i].model) == 0)
                e = &l[k];
        cr_assert_eq(e != NULL, cases[i].found, "case %zu", i);
        if (e != NULL) {
            cr_assert_eq(e->max_budget, cases[i].budget, "case %zu: budget %lld", i,
                         (long long)e->max_budget);
            cr_assert_eq(e->rpm, cases[i].rpm, "case %zu", i);
            cr_assert_eq(e->tpm, cases[i].tpm, "case %zu", i);
            cr_assert_eq(e->budget_duration_ms, cases[i].dur_ms, "case %zu", i);
            char want[GW_SCOPE_ID_MAX];
            snprintf(want, sizeof(want), "%s/%s", token, cases[i].model);
            cr_assert_str_eq(e->scope_id, want, "case %zu", i);
        }
        gw_model_limits_free(l, n);
        json_decref(mmb);
        json_decref(md);
    }
    gw_model_limit_t *l = (gw_model_limit_t *)1;
    size_t n = 1;
    cr_assert_eq(gw_model_limits_parse(NULL, NULL, token, &l, &n), 0);
    cr_assert_null(l, "nothing per model: nothing allocated");
    cr_assert_eq(n, 0);
}

/* Scope ids stay under the limiter's ceiling and stay distinct when they have to be shortened. */
Test(keys, scope_id_join)
{
    char a[GW_SCOPE_ID_MAX], b[GW_SCOPE_ID_MAX], longm[200], longm2[200];
    gw_scope_id_join("u1", "t1", a);
    cr_assert_str_eq(a, "u1/t1");
    memset(longm, 'x', sizeof(longm) - 1);
    longm[sizeof(longm) - 1] = '\0';
    memcpy(longm2, longm, sizeof(longm));
    longm2[150] = 'y';
    gw_scope_id_join("7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c", longm, a);
    gw_scope_id_join("7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c", longm2, b);
    cr_assert_lt(strlen(a), GW_SCOPE_ID_MAX);
    cr_assert(strncmp(a, "7517f1185369c69f459bdfe9b6d4ff6a53fdc28d6574ecead42fb9c36958362c/#", 66) == 0, "%s",
              a);
    cr_assert_str_neq(a, b);
    gw_scope_id_join(longm, "t", a);
    gw_scope_id_join(longm2, "t", b);
    cr_assert_eq(a[0], '#');
    cr_assert_eq(strlen(a), 33);
    cr_assert_str_neq(a, b);
}

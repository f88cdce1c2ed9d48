/*
 * keys.c — key format and hashing, durations, principals, and the per-worker key cache with its
 * asynchronous loads, invalidation broadcasts and the changes poll (see keys.h for the design).
 *
 * Everything below "cache" runs on one worker's loop, except gw_keys_broadcast (any thread) and
 * the job functions (the store thread), which touch only their own job record.
 */
#include "gateway/keys.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gateway/endusers.h"
#include "gateway/errors.h"
#include "gateway/loadcache.h"
#include "gateway/pricing.h"
#include "gateway/request.h"
#include "gateway/server.h"

/* ---- keys and hashes ------------------------------------------------------------------------ */

int gw_key_generate(char out[GW_KEY_LEN + 1])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    /* 16 bytes = 128 bits: 21 full 6-bit groups and 2 bits, as base64 without padding */
    memcpy(out, "sk-", 3);
    size_t o = 3;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof(r); i++) {
        acc = (acc << 8) | r[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64url[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o == GW_KEY_LEN ? 0 : -1;
}

void gw_key_digest_hex(const unsigned char digest[32], char out[GW_KEY_HASH_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[GW_KEY_HASH_LEN] = '\0';
}

void gw_key_hash_hex(const char *key, size_t len, char out[GW_KEY_HASH_LEN + 1])
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, len, d);
    gw_key_digest_hex(d, out);
}

int gw_key_is_hash(const char *s)
{
    if (s == NULL)
        return 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')) || i >= GW_KEY_HASH_LEN)
            return 0;
    return i == GW_KEY_HASH_LEN;
}

int gw_key_token_of(const char *key, char out[GW_KEY_HASH_LEN + 1])
{
    if (key == NULL || key[0] == '\0')
        return -1;
    if (gw_key_is_hash(key)) {
        memcpy(out, key, GW_KEY_HASH_LEN + 1);
        return 0;
    }
    gw_key_hash_hex(key, strlen(key), out);
    return 0;
}

void gw_key_display_name(const char *key, char *out, size_t n)
{
    size_t len = strlen(key);
    snprintf(out, n, "sk-...%s", len >= 4 ? key + len - 4 : key);
}

/* ---- durations ---------------------------------------------------------------------------- */

int gw_duration_parse(const char *s, gw_duration_t *d)
{
    if (s == NULL || s[0] < '1' || s[0] > '9')
        return -1;
    int64_t n = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        n = n * 10 + (*p - '0');
        if (n > 100LL * 366 * 86400)
            return -1;
    }
    static const struct {
        const char *unit;
        int64_t seconds;
        int months;
    } units[] = {{"s", 1, 0},     {"m", 60, 0},        {"h", 3600, 0},
                 {"d", 86400, 0}, {"w", 7 * 86400, 0}, {"mo", 0, 1}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        int64_t secs;
        if (units[i].months) {
            if (n > 1200)
                return -1;
            *d = (gw_duration_t){0, (int32_t)n};
            return 0;
        }
        if (__builtin_mul_overflow(n, units[i].seconds, &secs) || secs > 100LL * 366 * 86400)
            return -1;
        *d = (gw_duration_t){secs, 0};
        return 0;
    }
    return -1;
}

static int days_in_month(int year, int mon /* 0..11 */)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return dm[mon] + (mon == 1 && leap);
}

int gw_duration_add(int64_t unix_ms, const gw_duration_t *d, int64_t *out)
{
    int64_t ms = unix_ms;
    if (d->months > 0) {
        time_t t = (time_t)(ms / 1000);
        int64_t frac = ms % 1000;
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL)
            return -1;
        int64_t m = (int64_t)tm.tm_mon + d->months;
        tm.tm_year += (int)(m / 12);
        tm.tm_mon = (int)(m % 12);
        int dim = days_in_month(tm.tm_year + 1900, tm.tm_mon);
        if (tm.tm_mday > dim)
            tm.tm_mday = dim;
        time_t t2 = timegm(&tm);
        if (t2 == (time_t)-1)
            return -1;
        ms = (int64_t)t2 * 1000 + frac;
    }
    int64_t add;
    if (__builtin_mul_overflow(d->seconds, (int64_t)1000, &add) || __builtin_add_overflow(ms, add, &ms))
        return -1;
    *out = ms;
    return 0;
}

int64_t gw_duration_budget_ms(const char *text)
{
    gw_duration_t d;
    if (text == NULL || text[0] == '\0' || gw_duration_parse(text, &d) != 0)
        return 0;
    /* parse bounds both parts (100 years, 1200 months): no overflow here */
    return (d.seconds + (int64_t)d.months * 30 * 86400) * 1000;
}

/* ---- principals --------------------------------------------------------------------------- */

#define LIMIT_COLS(p, src)                                                                                   \
    src ".spend AS " p "spend, " src ".max_budget AS " p "max_budget, " src ".soft_budget AS " p             \
        "soft_budget, " src ".budget_duration AS " p "budget_duration, " src ".budget_reset_at AS " p        \
        "budget_reset_at, " src ".rpm_limit AS " p "rpm_limit, " src ".tpm_limit AS " p "tpm_limit, " src    \
        ".max_parallel_requests AS " p "max_parallel_requests"

const char gw_principal_load_sql[] =
    "SELECT k.token, k.key_alias, k.user_id, k.team_id, COALESCE(k.organization_id, t.organization_id) AS "
    "org_id, "
    "k.models, k.blocked, k.expires, u.user_role, t.models AS team_models, t.blocked AS team_blocked, "
    "t.team_id AS team_found, " LIMIT_COLS("k_", "k") ", " LIMIT_COLS("u_", "u") ", " LIMIT_COLS(
        "t_", "t") ", o.spend AS o_spend, ob.max_budget AS o_max_budget, ob.soft_budget AS o_soft_budget, "
                   "ob.budget_duration AS o_budget_duration, ob.budget_reset_at AS o_budget_reset_at, "
                   "ob.rpm_limit AS o_rpm_limit, "
                   "ob.tpm_limit AS o_tpm_limit, ob.max_parallel_requests AS o_max_parallel_requests, "
                   "k.model_max_budget AS k_model_max_budget, k.metadata AS k_metadata, "
                   "k.aliases AS k_aliases, t.model_aliases AS t_model_aliases, "
                   "tm.budget_id AS m_budget_id, tm.spend AS m_spend, mb.max_budget AS m_max_budget, "
                   "mb.soft_budget AS m_soft_budget, mb.budget_duration AS m_budget_duration, "
                   "mb.budget_reset_at AS m_budget_reset_at, mb.rpm_limit AS m_rpm_limit, "
                   "mb.tpm_limit AS m_tpm_limit, mb.max_parallel_requests AS m_max_parallel_requests "
                   "FROM keys k LEFT JOIN users u ON u.user_id = k.user_id LEFT JOIN teams t ON t.team_id = "
                   "k.team_id "
                   "LEFT JOIN organizations o ON o.organization_id = COALESCE(k.organization_id, "
                   "t.organization_id) "
                   "LEFT JOIN budgets ob ON ob.budget_id = o.budget_id "
                   "LEFT JOIN team_membership tm ON tm.user_id = k.user_id AND tm.team_id = k.team_id "
                   "LEFT JOIN budgets mb ON mb.budget_id = tm.budget_id WHERE k.token = $1";

static char *dup_str(const json_t *row, const char *col)
{
    const char *v = json_string_value(json_object_get(row, col));
    return v != NULL && v[0] != '\0' ? strdup(v) : NULL;
}

static int dup_str_present(const json_t *row, const char *col)
{
    const char *v = json_string_value(json_object_get(row, col));
    return v != NULL && v[0] != '\0';
}

static int64_t int_or(const json_t *row, const char *col, int64_t dflt)
{
    json_t *v = json_object_get(row, col);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

static int64_t time_or_zero(const json_t *row, const char *col)
{
    int64_t ms;
    const char *v = json_string_value(json_object_get(row, col));
    return v != NULL && gw_store_time_parse(v, &ms) == 0 ? ms : 0;
}

static void read_limits(const json_t *row, const char *prefix, gw_level_limits_t *l)
{
    char col[64];
#define COL(name) (snprintf(col, sizeof(col), "%s%s", prefix, name), col)
    l->spend = int_or(row, COL("spend"), 0);
    l->max_budget = int_or(row, COL("max_budget"), -1);
    l->soft_budget = int_or(row, COL("soft_budget"), -1);
    l->rpm = int_or(row, COL("rpm_limit"), -1);
    l->tpm = int_or(row, COL("tpm_limit"), -1);
    l->max_parallel = int_or(row, COL("max_parallel_requests"), -1);
    l->budget_reset_at_ms = time_or_zero(row, COL("budget_reset_at"));
    const char *dur = json_string_value(json_object_get(row, COL("budget_duration")));
    snprintf(l->budget_duration, sizeof(l->budget_duration), "%s", dur != NULL ? dur : "");
#undef COL
}

gw_principal_t *gw_principal_from_row(const json_t *row)
{
    gw_principal_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->refs = 1;
    snprintf(p->token, sizeof(p->token), "%s", json_string_value(json_object_get(row, "token")) ?: "");
    p->key_alias = dup_str(row, "key_alias");
    p->user_id = dup_str(row, "user_id");
    p->team_id = dup_str(row, "team_id");
    p->org_id = dup_str(row, "org_id");
    p->user_role = dup_str(row, "user_role");
    json_t *m = json_object_get(row, "models");
    p->models = json_is_array(m) ? json_deep_copy(m) : json_array();
    json_t *tm = json_object_get(row, "team_models");
    p->team_models = json_is_array(tm) ? json_deep_copy(tm) : NULL;
    json_t *ka = json_object_get(row, "k_aliases"), *ta = json_object_get(row, "t_model_aliases");
    p->aliases = json_is_object(ka) && json_object_size(ka) > 0 ? json_deep_copy(ka) : NULL;
    p->team_aliases = json_is_object(ta) && json_object_size(ta) > 0 ? json_deep_copy(ta) : NULL;
    p->blocked = json_is_true(json_object_get(row, "blocked"));
    p->team_blocked = json_is_true(json_object_get(row, "team_blocked"));
    p->expires_ms = time_or_zero(row, "expires");
    read_limits(row, "k_", &p->key);
    read_limits(row, "u_", &p->user);
    read_limits(row, "t_", &p->team);
    read_limits(row, "o_", &p->org);
    if (p->user_id != NULL && p->team_id != NULL && dup_str_present(row, "m_budget_id")) {
        read_limits(row, "m_", &p->member);
        const gw_level_limits_t *ml = &p->member;
        p->has_member = ml->max_budget >= 0 || ml->rpm >= 0 || ml->tpm >= 0 || ml->max_parallel >= 0;
        gw_scope_id_join(p->user_id, p->team_id, p->member_id);
    }
    if (gw_model_limits_parse(json_object_get(row, "k_model_max_budget"), json_object_get(row, "k_metadata"),
                              p->token, &p->model_limits, &p->n_model_limits) != 0) {
        gw_principal_release(p);
        return NULL;
    }
    return p;
}

void gw_principal_ref(gw_principal_t *p)
{
    p->refs++;
}

void gw_principal_release(gw_principal_t *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    free(p->key_alias);
    free(p->user_id);
    free(p->team_id);
    free(p->org_id);
    free(p->user_role);
    json_decref(p->models);
    json_decref(p->team_models);
    json_decref(p->aliases);
    json_decref(p->team_aliases);
    gw_model_limits_free(p->model_limits, p->n_model_limits);
    free(p);
}

/* An allow-list: empty or holding "all-proxy-models" allows all; "prefix*" matches a prefix. */
static int list_allows(const json_t *list, const char *model)
{
    if (list == NULL || json_array_size(list) == 0)
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL)
            continue;
        size_t n = strlen(s);
        if (strcmp(s, model) == 0 || strcmp(s, "all-proxy-models") == 0 ||
            (n > 0 && s[n - 1] == '*' && strncmp(s, model, n - 1) == 0))
            return 1;
    }
    return 0;
}

static int list_restricts(const json_t *list)
{
    return !list_allows(list, "\x01 no model has this name");
}

int gw_principal_model_allowed(const gw_principal_t *p, const char *model)
{
    /* "all-team-models" defers to the team's list */
    if (!list_allows(p->models, model)) {
        json_t *all_team = json_string("all-team-models");
        int defer = 0;
        size_t i;
        json_t *v;
        json_array_foreach(p->models, i, v) defer |= json_equal(v, all_team);
        json_decref(all_team);
        if (!defer)
            return 0;
    }
    return list_allows(p->team_models, model);
}

int gw_principal_restricted(const gw_principal_t *p)
{
    return list_restricts(p->models) || list_restricts(p->team_models);
}

int gw_principal_is_admin(const gw_principal_t *p)
{
    return p->user_role != NULL && strcmp(p->user_role, "proxy_admin") == 0;
}

const gw_model_limit_t *gw_principal_model_limit(const gw_principal_t *p, const char *model)
{
    for (size_t i = 0; i < p->n_model_limits; i++)
        if (strcmp(p->model_limits[i].model, model) == 0)
            return &p->model_limits[i];
    return NULL;
}

/* ---- per-model limits ----------------------------------------------------------------------- */

void gw_scope_id_join(const char *a, const char *b, char out[GW_SCOPE_ID_MAX])
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb < GW_SCOPE_ID_MAX) {
        memcpy(out, a, la);
        out[la] = '/';
        memcpy(out + la + 1, b, lb + 1);
        return;
    }
    char hex[GW_KEY_HASH_LEN + 1];
    if (la + 2 + 32 < GW_SCOPE_ID_MAX) {
        gw_key_hash_hex(b, lb, hex);
        snprintf(out, GW_SCOPE_ID_MAX, "%s/#%.32s", a, hex);
        return;
    }
    char *joined = malloc(la + lb + 2);
    if (joined != NULL) {
        memcpy(joined, a, la);
        joined[la] = '/';
        memcpy(joined + la + 1, b, lb + 1);
        gw_key_hash_hex(joined, la + 1 + lb, hex);
        free(joined);
    } else {
        gw_key_hash_hex(a, la, hex); /* out of memory: coarser, never unlimited */
    }
    snprintf(out, GW_SCOPE_ID_MAX, "#%.32s", hex);
}

/* A non-negative whole number (integers, or reals with no fraction as JSON writers produce). */
static int64_t count_of(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e18)
        return (int64_t)json_real_value(v);
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        return end != json_string_value(v) && *end == '\0' && x >= 0 ? x : -1;
    }
    return -1;
}

/* Dollars (a number, or a numeric string) → micro-dollars; -1 when not an amount. */
static int64_t dollars_of(const json_t *v)
{
    uint64_t micros;
    double d;
    if (json_is_number(v))
        d = json_number_value(v);
    else if (json_is_string(v)) {
        char *end;
        d = strtod(json_string_value(v), &end);
        if (end == json_string_value(v) || *end != '\0')
            return -1;
    } else
        return -1;
    if (gw_pricing_double_usd(d, 6, &micros) != GW_PRICING_OK || micros > (uint64_t)INT64_MAX)
        return -1;
    return (int64_t)micros;
}

static gw_model_limit_t *entry_for(gw_model_limit_t *l, size_t *n, const char *model, const char *token)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(l[i].model, model) == 0)
            return &l[i];
    if (*n >= GW_MODEL_LIMITS_MAX)
        return NULL;
    gw_model_limit_t *e = &l[*n];
    if ((e->model = strdup(model)) == NULL)
        return NULL;
    (*n)++;
    e->max_budget = e->rpm = e->tpm = -1;
    e->budget_duration_ms = 0;
    gw_scope_id_join(token, model, e->scope_id);
    return e;
}

static void take_counts(gw_model_limit_t *l, size_t *n, const json_t *map, const char *token, int tpm)
{
    const char *model;
    json_t *v;
    if (!json_is_object(map))
        return;
    json_object_foreach((json_t *)map, model, v)
    {
        int64_t c = count_of(v);
        gw_model_limit_t *e = c >= 0 ? entry_for(l, n, model, token) : NULL;
        if (e != NULL)
            *(tpm ? &e->tpm : &e->rpm) = c;
    }
}

int gw_model_limits_parse(const json_t *model_max_budget, const json_t *metadata, const char *token,
                          gw_model_limit_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const json_t *mrpm = json_object_get(metadata, "model_rpm_limit");
    const json_t *mtpm = json_object_get(metadata, "model_tpm_limit");
    if (json_object_size(model_max_budget) == 0 && json_object_size(mrpm) == 0 && json_object_size(mtpm) == 0)
        return 0; /* the common case: nothing per model, nothing allocated */
    gw_model_limit_t *l = calloc(GW_MODEL_LIMITS_MAX, sizeof(*l));
    if (l == NULL)
        return -1;
    size_t k = 0;
    const char *model;
    json_t *v;
    if (json_is_object(model_max_budget)) {
        json_object_foreach((json_t *)model_max_budget, model, v)
        {
            /* {"budget_limit": 0.5, "time_period": "1d", "rpm_limit", "tpm_limit"}, or a bare amount */
            int64_t budget =
                json_is_object(v) ? dollars_of(json_object_get(v, "budget_limit")) : dollars_of(v);
            int64_t rpm = json_is_object(v) ? count_of(json_object_get(v, "rpm_limit")) : -1;
            int64_t tpm = json_is_object(v) ? count_of(json_object_get(v, "tpm_limit")) : -1;
            const char *period =
                json_is_object(v) ? json_string_value(json_object_get(v, "time_period")) : NULL;
            gw_duration_t d = {0, 0};
            if (period != NULL && gw_duration_parse(period, &d) != 0)
                continue; /* a period we cannot honour: better no entry than a budget that never resets */
            if (budget < 0 && rpm < 0 && tpm < 0)
                continue;
            gw_model_limit_t *e = entry_for(l, &k, model, token);
            if (e == NULL)
                continue;
            e->max_budget = budget;
            e->rpm = rpm;
            e->tpm = tpm;
            e->budget_duration_ms = (d.seconds + (int64_t)d.months * 30 * 86400) * 1000;
        }
    }
    /* metadata's maps win over model_max_budget's rpm/tpm (LiteLLM looks there first) */
    take_counts(l, &k, mrpm, token, 0);
    take_counts(l, &k, mtpm, token, 1);
    if (k == 0) {
        free(l);
        return 0;
    }
    gw_model_limit_t *fit = realloc(l, k * sizeof(*l)); /* cached per worker: keep only what is used */
    *out = fit != NULL ? fit : l;
    *n = k;
    return 0;
}

void gw_model_limits_free(gw_model_limit_t *l, size_t n)
{
    for (size_t i = 0; l != NULL && i < n; i++)
        free(l[i].model);
    free(l);
}

/* ---- the per-worker cache ------------------------------------------------------------------- */

struct gw_keycache {
    gw_worker_t *w;
    gw_loadcache_t *lc; /* token → principal (NULL: unknown key) */
};

void gw_model_limit_period(const gw_model_limit_t *ml, int64_t now_ms, int64_t *start, int64_t *end)
{
    if (ml->budget_duration_ms <= 0) {
        *start = *end = 0;
        return;
    }
    *start = now_ms - now_ms % ml->budget_duration_ms;
    *end = *start + ml->budget_duration_ms;
}

/* Store thread: the key's spend on each budgeted model in its current period (spend_logs). */
static int seed_model_budgets(gw_store_conn_t *c, gw_principal_t *p)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < p->n_model_limits; i++) {
        gw_model_limit_t *ml = &p->model_limits[i];
        if (ml->max_budget < 0)
            continue;
        int64_t start, end;
        gw_model_limit_period(ml, now, &start, &end);
        char since[GW_STORE_TIME_LEN];
        gw_store_time_iso(start, since);
        json_t *rows = NULL;
        gw_store_param_t q[] = {GW_P_TEXT(p->token), GW_P_TEXT(ml->model), GW_P_TEXT(since)};
        int st = gw_store_query(c,
                                "SELECT COALESCE(SUM(spend), 0) AS s FROM spend_logs WHERE api_key = $1 AND "
                                "model_group = $2 AND \"startTime\" >= $3",
                                q, 3, &rows);
        if (st != GW_STORE_OK)
            return st;
        json_t *v = json_object_get(json_array_get(rows, 0), "s");
        ml->seed_spend = json_is_integer(v) ? json_integer_value(v)
                         : json_is_real(v)  ? (int64_t)json_real_value(v)
                                            : 0;
        ml->seed_end_ms = end;
        json_decref(rows);
    }
    return GW_STORE_OK;
}

/* Store thread: the principal of a token (NULL when no key has it). */
static int load_principal(gw_store_conn_t *c, const char *token, void **out)
{
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(token)};
    int st = gw_store_query(c, gw_principal_load_sql, p, 1, &rows);
    gw_principal_t *pr = NULL;
    if (st == GW_STORE_OK && json_array_size(rows) > 0)
        pr = gw_principal_from_row(json_array_get(rows, 0));
    json_decref(rows);
    if (st == GW_STORE_OK && pr != NULL && pr->n_model_limits > 0 &&
        (st = seed_model_budgets(c, pr)) != GW_STORE_OK) {
        gw_principal_release(pr);
        pr = NULL;
    }
    *out = pr;
    return st;
}

static void release_principal(void *v)
{
    gw_principal_release(v);
}

/* Runs the checks that need no model: unknown, blocked, expired. 0 ok, else replied. */
static int check_principal(gw_reqctx_t *rc, void *value)
{
    gw_principal_t *p = value;
    if (p == NULL) {
        rc->error = "invalid_api_key";
        return gw_request_error(
            rc, GW_ERR_BAD_KEY,
            "Authentication Error, Invalid proxy server token passed. Unable to find token in "
            "cache or the database.",
            NULL);
    }
    if (p->blocked) {
        rc->error = "key_blocked";
        return gw_request_error(
            rc, GW_ERR_BAD_KEY,
            "Authentication Error, Key is blocked. Update via `/key/unblock` if you're an admin.", NULL);
    }
    if (p->team_blocked) {
        char msg[300];
        snprintf(
            msg, sizeof(msg),
            "Authentication Error, Team=%.100s is blocked. Update via `/team/unblock` if you're an admin.",
            p->team_id ? p->team_id : "");
        rc->error = "team_blocked";
        return gw_request_error(rc, GW_ERR_BAD_KEY, msg, NULL);
    }
    if (p->expires_ms != 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        if (now_ms >= p->expires_ms) {
            char a[GW_STORE_TIME_LEN], b[GW_STORE_TIME_LEN], msg[200];
            gw_store_time_iso(p->expires_ms, a);
            gw_store_time_iso(now_ms, b);
            snprintf(msg, sizeof(msg),
                     "Authentication Error - Expired Key. Key Expiry time %s and current time %s", a, b);
            rc->error = "key_expired";
            return gw_request_error(rc, GW_ERR_BAD_KEY, msg, NULL);
        }
    }
    gw_principal_ref(p);
    rc->principal = p;
    rc->is_admin = gw_principal_is_admin(p);
    return 0;
}

static const gw_loadcache_type_t principal_cache = {
    .key_max = GW_KEY_HASH_LEN + 1,
    .ttl_ms = GW_KEYCACHE_TTL_MS,
    .neg_ttl_ms = GW_KEYCACHE_NEG_TTL_MS,
    .stale_retry_ms = GW_KEYCACHE_STALE_RETRY_MS,
    .max_entries = GW_KEYCACHE_MAX,
    .load = load_principal,
    .release = release_principal,
    .accept = check_principal,
    .unavailable_msg = "Authentication Error: the key store is unavailable; retry later.",
};

int gw_keys_authenticate(gw_reqctx_t *rc, const char token[GW_KEY_HASH_LEN + 1], gw_auth_cont_fn cont)
{
    void *p;
    int r = gw_loadcache_get(rc->w->keys->lc, rc, token, &p, cont);
    return r != 0 ? r : check_principal(rc, p);
}

void gw_keys_request_dispose(gw_reqctx_t *rc)
{
    if (h2o_linklist_is_linked(&rc->auth_link))
        h2o_linklist_unlink(&rc->auth_link);
    rc->auth_cont = NULL;
    gw_principal_release(rc->principal);
    rc->principal = NULL;
}

/* ---- store jobs of a worker ------------------------------------------------------------------ */

int gw_keys_submit(gw_worker_t *w, gw_store_job_fn job, gw_store_done_fn done, void *ud)
{
    if (w->server->store == NULL)
        return GW_STORE_CLOSED;
    int st = gw_store_submit(w->server->store, &w->store_rx, job, done, ud);
    if (st == 0)
        w->store_jobs++;
    return st;
}

void gw_keys_job_done(gw_worker_t *w)
{
    if (w->store_jobs > 0)
        w->store_jobs--;
}

/* ---- invalidation ------------------------------------------------------------------------- */

typedef struct inval_msg {
    h2o_multithread_message_t super;
    char kind[24];
    char id[320]; /* ids are bounded by the admin API (< 128 bytes; a membership is two of them) */
} inval_msg_t;

void gw_keys_broadcast(gw_server_t *s, const char *kind, const char *id)
{
    for (unsigned i = 0; i < s->n_workers; i++) {
        inval_msg_t *m = calloc(1, sizeof(*m));
        if (m == NULL)
            continue;
        if (id == NULL)
            id = "";
        if (strlen(kind) >= sizeof(m->kind) || strlen(id) >= sizeof(m->id))
            kind = "all", id = ""; /* cannot be named exactly: drop everything */
        snprintf(m->kind, sizeof(m->kind), "%s", kind);
        snprintf(m->id, sizeof(m->id), "%s", id);
        h2o_multithread_send_message(&s->workers[i].keys_rx, &m->super);
    }
}

/* Which principals a change touches: those naming the changed user, team, membership or org. */
typedef struct touch {
    const char *kind, *id;
} touch_t;

static int same_str(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int principal_touched(const void *value, void *ud)
{
    const gw_principal_t *p = value;
    const touch_t *t = ud;
    if (strcmp(t->kind, "user") == 0)
        return same_str(p->user_id, t->id);
    if (strcmp(t->kind, "team") == 0)
        return same_str(p->team_id, t->id);
    if (strcmp(t->kind, "organization") == 0)
        return same_str(p->org_id, t->id);
    if (strcmp(t->kind, "team_membership") == 0)
        return p->has_member && same_str(p->member_id, t->id);
    return 1;
}

/*
 * One change, on this worker's caches. key: that token's principal is dropped. user, team,
 * organization, team_membership: the principals naming it are dropped. end_user: that end user
 * is dropped. budget: a budget row may be shared by many end users, members and organizations:
 * end users naming it are dropped, every principal is marked stale (served while it reloads).
 * Anything else (or "all"): everything is dropped.
 */
static void apply_change(gw_worker_t *w, const char *kind, const char *id)
{
    if (strcmp(kind, "key") == 0) {
        gw_loadcache_drop(w->keys->lc, id);
    } else if (strcmp(kind, "user") == 0 || strcmp(kind, "team") == 0 || strcmp(kind, "organization") == 0 ||
               strcmp(kind, "team_membership") == 0) {
        touch_t t = {kind, id};
        gw_loadcache_drop_if(w->keys->lc, principal_touched, &t);
    } else if (strcmp(kind, "end_user") == 0) {
        gw_endusers_invalidate(w->endusers, kind, id);
    } else if (strcmp(kind, "budget") == 0) {
        gw_endusers_invalidate(w->endusers, kind, id);
        gw_loadcache_stale_all(w->keys->lc);
    } else {
        gw_loadcache_drop_all(w->keys->lc);
        gw_endusers_invalidate(w->endusers, "all", "");
    }
}

static void on_inval(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    gw_worker_t *w = H2O_STRUCT_FROM_MEMBER(gw_worker_t, keys_rx, r);
    while (!h2o_linklist_is_empty(messages)) {
        inval_msg_t *m = H2O_STRUCT_FROM_MEMBER(inval_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        if (w->keys != NULL)
            apply_change(w, m->kind, m->id);
        free(m);
    }
}

/* ---- the changes poll (worker 0) --------------------------------------------------------------- */

#define POLL_BATCH 1000

int gw_keys_prune_changes(gw_store_conn_t *c, int64_t now_ms, int64_t *deleted)
{
    char cutoff[GW_STORE_TIME_LEN];
    gw_store_time_iso(now_ms - GW_KEYS_CHANGES_KEEP_MS, cutoff);
    gw_store_param_t q[] = {GW_P_TEXT(cutoff)};
    return gw_store_exec(c, "DELETE FROM changes WHERE at < $1", q, 1, deleted);
}

typedef struct poll_job {
    gw_worker_t *w;
    int64_t since;
    int prune;
    json_t *rows;
} poll_job_t;

static int job_poll(gw_store_conn_t *c, void *ud)
{
    poll_job_t *pj = ud;
    if (pj->prune) { /* a failure here only delays the prune: the poll goes on */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        (void)gw_keys_prune_changes(c, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, NULL);
    }
    gw_store_param_t p[] = {GW_P_INT(pj->since), GW_P_INT(POLL_BATCH)};
    return gw_store_query(c, "SELECT seq, kind, id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2", p, 2,
                          &pj->rows);
}

static void poll_schedule(gw_worker_t *w);

static void on_poll_done(void *ud, int status, const char *err)
{
    poll_job_t *pj = ud;
    gw_worker_t *w = pj->w;
    gw_server_t *s = w->server;
    gw_keys_job_done(w);
    w->poll_inflight = 0;
    __atomic_store_n(&s->db_status, status, __ATOMIC_RELAXED);
    size_t n = json_array_size(pj->rows);
    if (status == GW_STORE_OK && n > 0) {
        if (n >= POLL_BATCH) {
            gw_keys_broadcast(s, "all", "");
        } else {
            size_t i;
            json_t *row;
            json_array_foreach(pj->rows, i, row)
            {
                const char *kind = json_string_value(json_object_get(row, "kind"));
                gw_keys_broadcast(s, kind ? kind : "all", json_string_value(json_object_get(row, "id")));
            }
        }
        int64_t last = json_integer_value(json_object_get(json_array_get(pj->rows, n - 1), "seq"));
        if (last > s->changes_seq)
            s->changes_seq = last;
    }
    json_decref(pj->rows);
    free(pj);
    if (!w->draining)
        poll_schedule(w);
}

static void on_poll_timer(h2o_timeout_entry_t *entry)
{
    gw_worker_t *w = H2O_STRUCT_FROM_MEMBER(gw_worker_t, poll_timer, entry);
    if (w->draining || w->poll_inflight)
        return;
    poll_job_t *pj = calloc(1, sizeof(*pj));
    if (pj == NULL)
        return poll_schedule(w);
    pj->w = w;
    pj->since = w->server->changes_seq;
    pj->prune = ++w->poll_count % GW_KEYS_PRUNE_EVERY == 0;
    if (gw_keys_submit(w, job_poll, on_poll_done, pj) != 0) {
        free(pj);
        return poll_schedule(w);
    }
    w->poll_inflight = 1;
}

static void poll_schedule(gw_worker_t *w)
{
    w->poll_timer.cb = on_poll_timer;
    if (!h2o_timeout_is_linked(&w->poll_timer))
        h2o_timeout_link(w->loop, gw_worker_timeout(w, GW_KEYS_POLL_MS), &w->poll_timer);
}

void gw_keys_start_poll(gw_worker_t *w)
{
    if (w->server->store != NULL)
        poll_schedule(w);
}

void gw_keys_stop_poll(gw_worker_t *w)
{
    if (h2o_timeout_is_linked(&w->poll_timer))
        h2o_timeout_unlink(&w->poll_timer);
}

typedef struct seq_job {
    int64_t seq;
} seq_job_t;

static int job_max_seq(gw_store_conn_t *c, void *ud)
{
    seq_job_t *sj = ud;
    json_t *rows = NULL;
    int st = gw_store_query(c, "SELECT COALESCE(MAX(seq), 0) AS seq FROM changes", NULL, 0, &rows);
    if (st == GW_STORE_OK)
        sj->seq = json_integer_value(json_object_get(json_array_get(rows, 0), "seq"));
    json_decref(rows);
    return st;
}

int gw_keys_init_seq(gw_store_t *st, int64_t *seq, char *err, size_t errlen)
{
    seq_job_t sj = {0};
    int rc = gw_store_run(st, job_max_seq, &sj, err, errlen);
    *seq = sj.seq;
    return rc;
}

/* ---- lifetime ------------------------------------------------------------------------------- */

gw_keycache_t *gw_keycache_create(gw_worker_t *w)
{
    gw_keycache_t *kc = calloc(1, sizeof(*kc));
    if (kc == NULL || (kc->lc = gw_loadcache_create(w, &principal_cache)) == NULL) {
        free(kc);
        return NULL;
    }
    kc->w = w;
    gw_store_register_receiver(w->queue, &w->store_rx);
    h2o_multithread_register_receiver(w->queue, &w->keys_rx, on_inval);
    return kc;
}

void gw_keys_drop_messages(gw_worker_t *w)
{
    h2o_linklist_t *list = &w->keys_rx._messages;
    if (w->keys_rx.queue == NULL)
        return;
    while (!h2o_linklist_is_empty(list)) {
        inval_msg_t *m = H2O_STRUCT_FROM_MEMBER(inval_msg_t, super.link, list->next);
        h2o_linklist_unlink(&m->super.link);
        free(m);
    }
}

void gw_keycache_destroy(gw_keycache_t *kc)
{
    if (kc == NULL)
        return;
    gw_worker_t *w = kc->w;
    gw_keys_stop_poll(w);
    /* keys_rx stays registered: another worker may still broadcast until every worker has
     * stopped; gw_keys_drop_messages frees what arrived late, after all threads are joined */
    if (w->store_jobs == 0)
        gw_store_unregister_receiver(w->queue, &w->store_rx);
    gw_loadcache_destroy(kc->lc);
    free(kc);
}

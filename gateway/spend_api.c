/*
 * spend_api.c — the spend read endpoints (see spend_api.h). Each request is parsed on its loop
 * into a fixed-size gw_spend_query_t, answered by a store job that builds LiteLLM's response
 * JSON, and sent back on the loop. A client that leaves before the job ends is detected with a
 * pool-owned back-pointer, so the completion never touches a freed request.
 */
#include "gateway/spend_api.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/errors.h"

#define MAX_BODY (32u << 20) /* bytes of a response body */
#define DAY_MS 86400000LL

/* ---- query parsing -------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out (cap bytes, NUL-terminated). -1 when too long or malformed. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    if (*s == '\0')
        return -1;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* "YYYY-MM-DD" or a full timestamp; is_end makes a bare date inclusive (its whole day). */
static int parse_when(const char *s, int is_end, int64_t *ms, char day[11])
{
    if (gw_store_time_parse(s, ms) != 0)
        return -1;
    char iso[GW_STORE_TIME_LEN];
    gw_store_time_iso(*ms, iso);
    memcpy(day, iso, 10);
    day[10] = '\0';
    if (is_end && strlen(s) == 10)
        *ms += DAY_MS;
    return 0;
}

static void hash_key(const char *key, char out[72])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int gw_spend_api_parse(gw_spend_api_kind_t kind, const char *query, size_t len, gw_spend_query_t *q,
                       char *err, size_t errlen)
{
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    q->summarize = 1;
    q->page = 1;
    q->page_size = 50;
    q->limit = 100;
    snprintf(q->group_by, sizeof(q->group_by), "team");
    if (len > GW_SPEND_API_MAX_QUERY) {
        snprintf(err, errlen, "query string too long");
        return -1;
    }
    char start[64] = "", end[64] = "", val[300];
    const char *p = query, *qe = query + len;
    while (p < qe) {
        const char *amp = memchr(p, '&', (size_t)(qe - p));
        const char *pe = amp ? amp : qe, *eq = memchr(p, '=', (size_t)(pe - p));
        const char *name = p;
        size_t nlen = (size_t)((eq ? eq : pe) - p);
        p = amp ? amp + 1 : qe;
        if (eq == NULL || nlen == 0)
            continue;
        if (decode(eq + 1, (size_t)(pe - eq - 1), val, sizeof(val)) != 0) {
            snprintf(err, errlen, "query parameter %.*s: malformed or longer than 256 bytes", (int)nlen,
                     name);
            return -1;
        }
#define IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
        char *dst = NULL;
        size_t cap = 0;
        if (IS("api_key")) {
            if (strncmp(val, "sk-", 3) == 0)
                hash_key(val, q->api_key);
            else
                dst = q->api_key, cap = sizeof(q->api_key);
        } else if (IS("user_id") || IS("internal_user_id")) {
            dst = q->user_id, cap = sizeof(q->user_id);
        } else if (IS("request_id")) {
            dst = q->request_id, cap = sizeof(q->request_id);
        } else if (IS("team_id")) {
            dst = q->team_id, cap = sizeof(q->team_id);
        } else if (IS("customer_id")) {
            dst = q->customer_id, cap = sizeof(q->customer_id);
        } else if (IS("model")) {
            dst = q->model, cap = sizeof(q->model);
        } else if (IS("group_by")) {
            dst = q->group_by, cap = sizeof(q->group_by);
        } else if (IS("start_date")) {
            dst = start, cap = sizeof(start);
        } else if (IS("end_date")) {
            dst = end, cap = sizeof(end);
        } else if (IS("summarize")) {
            q->summarize = strcmp(val, "false") != 0 && strcmp(val, "False") != 0 && strcmp(val, "0") != 0;
        } else if (IS("page")) {
            if (parse_int(val, 1, 1000000, &q->page) != 0) {
                snprintf(err, errlen, "page must be a positive integer");
                return -1;
            }
        } else if (IS("limit")) {
            if (parse_int(val, 1, 1000, &q->limit) != 0) {
                snprintf(err, errlen, "limit must be between 1 and 1000");
                return -1;
            }
        } else if (IS("page_size")) {
            if (parse_int(val, 1, 1000, &q->page_size) != 0) {
                snprintf(err, errlen, "page_size must be between 1 and 1000");
                return -1;
            }
        }
#undef IS
        if (dst != NULL) {
            if (strlen(val) >= cap) {
                snprintf(err, errlen, "query parameter %.*s is too long", (int)nlen, name);
                return -1;
            }
            memcpy(dst, val, strlen(val) + 1);
        }
    }
    q->start_ms = 0;
    q->end_ms = 253402300799999LL; /* 9999-12-31 */
    if (*start && parse_when(start, 0, &q->start_ms, q->start_day) != 0) {
        snprintf(err, errlen, "start_date must be YYYY-MM-DD or an ISO-8601 time");
        return -1;
    }
    if (*end && parse_when(end, 1, &q->end_ms, q->end_day) != 0) {
        snprintf(err, errlen, "end_date must be YYYY-MM-DD or an ISO-8601 time");
        return -1;
    }
    q->has_range = *start && *end;
    if ((kind == GW_SPEND_API_REPORT || kind == GW_SPEND_API_DAILY) && !q->has_range) {
        snprintf(err, errlen, "Please provide start_date and end_date");
        return -1;
    }
    if (kind == GW_SPEND_API_REPORT && strcmp(q->group_by, "team") != 0 &&
        strcmp(q->group_by, "customer") != 0 && strcmp(q->group_by, "api_key") != 0) {
        snprintf(err, errlen, "group_by must be team, customer or api_key");
        return -1;
    }
    return 0;
}

/* ---- queries (store thread) ----------------------------------------------------------------- */

static json_t *dollars(int64_t micros)
{
    return json_real((double)micros / 1e6);
}

static const char *nz(const char *s)
{
    return s != NULL && *s ? s : NULL;
}

static const char *day_expr(gw_store_conn_t *c, const char *col)
{
    (void)col;
    return gw_store_conn_kind(c) == GW_STORE_POSTGRES
               ? "to_char(\"startTime\" AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
               : "substr(\"startTime\", 1, 10)";
}

static const char *rstr(const json_t *row, const char *k)
{
    const char *s = json_string_value(json_object_get(row, k));
    return s != NULL ? s : "";
}

static int64_t row_int(const json_t *row, const char *k)
{
    return json_integer_value(json_object_get(row, k));
}

/* Replaces the integer micro-dollar field k of obj by dollars. */
static void to_dollars(json_t *obj, const char *k)
{
    json_object_set_new(obj, k, dollars(row_int(obj, k)));
}

static void add_dollars(json_t *obj, const char *k, int64_t micros)
{
    json_t *v = json_object_get(obj, k);
    double cur = json_is_real(v) ? json_real_value(v) : 0.0;
    json_object_set_new(obj, k, json_real(cur + (double)micros / 1e6));
}

#define WHERE_RANGE "\"startTime\" >= $1 AND \"startTime\" < $2"
#define WHERE_FILTERS                                                                                        \
    " AND (CAST($3 AS TEXT) IS NULL OR api_key = $3) AND (CAST($4 AS TEXT) IS NULL OR \"user\" = $4)"        \
    " AND (CAST($5 AS TEXT) IS NULL OR request_id = $5) AND (CAST($6 AS TEXT) IS NULL OR team_id = $6)"      \
    " AND (CAST($7 AS TEXT) IS NULL OR end_user = $7)"

static int logs_job(gw_store_conn_t *c, gw_spend_query_t *q)
{
    char t0[GW_STORE_TIME_LEN], t1[GW_STORE_TIME_LEN], sql[2048];
    gw_store_time_iso(q->start_ms, t0);
    gw_store_time_iso(q->end_ms, t1);
    gw_store_param_t p[] = {GW_P_TEXT(t0),
                            GW_P_TEXT(t1),
                            GW_P_TEXT(nz(q->api_key)),
                            GW_P_TEXT(nz(q->user_id)),
                            GW_P_TEXT(nz(q->request_id)),
                            GW_P_TEXT(nz(q->team_id)),
                            GW_P_TEXT(nz(q->customer_id))};
    json_t *rows = NULL;
    int st;
    if (q->has_range && q->summarize) {
        snprintf(sql, sizeof(sql),
                 "SELECT %s AS day, api_key, \"user\" AS u, model, SUM(spend) AS spend FROM spend_logs "
                 "WHERE " WHERE_RANGE WHERE_FILTERS
                 " GROUP BY 1, api_key, \"user\", model ORDER BY 1 LIMIT 100000",
                 day_expr(c, NULL));
        if ((st = gw_store_query(c, sql, p, 7, &rows)) != GW_STORE_OK)
            return st;
        json_t *out = json_array(), *cur = NULL;
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r)
        {
            if (cur == NULL || strcmp(rstr(cur, "startTime"), rstr(r, "day")) != 0) {
                cur =
                    json_pack("{ss s{} s{} s{}}", "startTime", rstr(r, "day"), "api_key", "users", "models");
                json_object_set_new(cur, "spend", json_real(0));
                json_array_append_new(out, cur);
            }
            int64_t s = row_int(r, "spend");
            add_dollars(cur, "spend", s);
            add_dollars(json_object_get(cur, "api_key"), rstr(r, "api_key"), s);
            add_dollars(json_object_get(cur, "users"), rstr(r, "u"), s);
            add_dollars(json_object_get(cur, "models"), rstr(r, "model"), s);
        }
        json_decref(rows);
        q->result = out;
        return GW_STORE_OK;
    }
    snprintf(
        sql, sizeof(sql),
        "SELECT request_id, call_type, api_key, spend, total_tokens, prompt_tokens, completion_tokens, "
        "cache_read_input_tokens, cache_creation_input_tokens, \"startTime\", \"endTime\", "
        "\"completionStartTime\", request_duration_ms, model, model_id, model_group, custom_llm_provider, "
        "api_base, \"user\", team_id, organization_id, end_user, requester_ip_address, session_id, status, "
        "cache_hit, cache_key, metadata, request_tags FROM spend_logs WHERE " WHERE_RANGE WHERE_FILTERS
        " ORDER BY \"startTime\" DESC LIMIT %d",
        GW_SPEND_API_MAX_ROWS);
    if ((st = gw_store_query(c, sql, p, 7, &rows)) != GW_STORE_OK)
        return st;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) to_dollars(r, "spend");
    q->result = rows;
    return GW_STORE_OK;
}

static int report_job(gw_store_conn_t *c, gw_spend_query_t *q)
{
    char t0[GW_STORE_TIME_LEN], t1[GW_STORE_TIME_LEN], sql[2048];
    gw_store_time_iso(q->start_ms, t0);
    gw_store_time_iso(q->end_ms, t1);
    gw_store_param_t p[] = {GW_P_TEXT(t0),
                            GW_P_TEXT(t1),
                            GW_P_TEXT(nz(q->api_key)),
                            GW_P_TEXT(nz(q->user_id)),
                            GW_P_TEXT(NULL),
                            GW_P_TEXT(nz(q->team_id)),
                            GW_P_TEXT(nz(q->customer_id))};
    json_t *rows = NULL;
    int st;
    size_t i;
    json_t *r;
    if (strcmp(q->group_by, "api_key") == 0) {
        snprintf(sql, sizeof(sql),
                 "SELECT api_key, model, SUM(spend) AS cost, SUM(prompt_tokens) AS pin, "
                 "SUM(completion_tokens) AS pout FROM spend_logs WHERE " WHERE_RANGE WHERE_FILTERS
                 " GROUP BY api_key, model ORDER BY api_key, cost DESC LIMIT 100000");
        if ((st = gw_store_query(c, sql, p, 7, &rows)) != GW_STORE_OK)
            return st;
        json_t *by = json_object(), *order = json_array();
        json_array_foreach(rows, i, r)
        {
            json_t *k = json_object_get(by, rstr(r, "api_key"));
            if (k == NULL) {
                k = json_pack("{ss sf sI sI s[]}", "api_key", rstr(r, "api_key"), "total_cost", 0.0,
                              "total_input_tokens", (json_int_t)0, "total_output_tokens", (json_int_t)0,
                              "model_details");
                json_object_set_new(by, rstr(r, "api_key"), k);
                json_array_append(order, k);
            }
            add_dollars(k, "total_cost", row_int(r, "cost"));
            json_object_set_new(k, "total_input_tokens",
                                json_integer(row_int(k, "total_input_tokens") + row_int(r, "pin")));
            json_object_set_new(k, "total_output_tokens",
                                json_integer(row_int(k, "total_output_tokens") + row_int(r, "pout")));
            json_array_append_new(json_object_get(k, "model_details"),
                                  json_pack("{ss so sI sI}", "model", rstr(r, "model"), "total_cost",
                                            dollars(row_int(r, "cost")), "total_input_tokens",
                                            (json_int_t)row_int(r, "pin"), "total_output_tokens",
                                            (json_int_t)row_int(r, "pout")));
        }
        json_decref(by);
        json_decref(rows);
        q->result = order;
        return GW_STORE_OK;
    }
    int team = strcmp(q->group_by, "team") == 0;
    snprintf(sql, sizeof(sql),
             "SELECT %s AS day, %s AS grp, %s AS name, s.model AS model, SUM(s.spend) AS spend, "
             "SUM(s.total_tokens) AS tokens FROM (SELECT * FROM spend_logs WHERE " WHERE_RANGE WHERE_FILTERS
             ") s %s GROUP BY 1, 2, 3, s.model ORDER BY 1, 2, spend DESC LIMIT 100000",
             day_expr(c, NULL), team ? "s.team_id" : "s.end_user", team ? "t.team_alias" : "s.end_user",
             team ? "LEFT JOIN teams t ON t.team_id = s.team_id" : "");
    if ((st = gw_store_query(c, sql, p, 7, &rows)) != GW_STORE_OK)
        return st;
    json_t *out = json_array(), *day = NULL, *grp = NULL;
    const char *list = team ? "teams" : "customers";
    json_array_foreach(rows, i, r)
    {
        if (day == NULL || strcmp(rstr(day, "group_by_day"), rstr(r, "day")) != 0) {
            day = json_pack("{ss s[]}", "group_by_day", rstr(r, "day"), list);
            json_array_append_new(out, day);
            grp = NULL;
        }
        const char *gid = rstr(r, "grp");
        if (grp == NULL || strcmp(rstr(grp, "_id"), gid) != 0) {
            const char *name = *rstr(r, "name") ? rstr(r, "name") : (*gid ? gid : NULL);
            grp = json_pack("{ss so sf s[]}", "_id", gid, team ? "team_name" : "customer",
                            name ? json_string(name) : json_null(), "total_spend", 0.0, "metadata");
            json_array_append_new(json_object_get(day, list), grp);
        }
        add_dollars(grp, "total_spend", row_int(r, "spend"));
        json_array_append_new(json_object_get(grp, "metadata"),
                              json_pack("{ss so sI}", "model", rstr(r, "model"), "spend",
                                        dollars(row_int(r, "spend")), "total_tokens",
                                        (json_int_t)row_int(r, "tokens")));
    }
    /* drop the grouping helper */
    json_array_foreach(out, i, day)
    {
        size_t j;
        json_t *g;
        json_array_foreach(json_object_get(day, list), j, g) json_object_del(g, "_id");
    }
    json_decref(rows);
    q->result = out;
    return GW_STORE_OK;
}

static json_t *metrics_of(const json_t *r)
{
    int64_t pt = row_int(r, "prompt_tokens"), ct = row_int(r, "completion_tokens");
    return json_pack(
        "{so sI sI sI sI sI sI sI sI}", "spend", dollars(row_int(r, "spend")), "prompt_tokens",
        (json_int_t)pt, "completion_tokens", (json_int_t)ct, "cache_read_input_tokens",
        (json_int_t)row_int(r, "cache_read_input_tokens"), "cache_creation_input_tokens",
        (json_int_t)row_int(r, "cache_creation_input_tokens"), "total_tokens", (json_int_t)(pt + ct),
        "successful_requests", (json_int_t)row_int(r, "successful_requests"), "failed_requests",
        (json_int_t)row_int(r, "failed_requests"), "api_requests", (json_int_t)row_int(r, "api_requests"));
}

/* Adds the metrics of row r into m (built by metrics_of). */
static void metrics_add(json_t *m, const json_t *r)
{
    static const char *ints[] = {"prompt_tokens",
                                 "completion_tokens",
                                 "cache_read_input_tokens",
                                 "cache_creation_input_tokens",
                                 "successful_requests",
                                 "failed_requests",
                                 "api_requests"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        json_object_set_new(m, ints[i], json_integer(row_int(m, ints[i]) + row_int(r, ints[i])));
    json_object_set_new(m, "total_tokens",
                        json_integer(row_int(m, "prompt_tokens") + row_int(m, "completion_tokens")));
    add_dollars(m, "spend", row_int(r, "spend"));
}

static void breakdown_add(json_t *bd, const char *kind, const char *name, const json_t *r, json_t *meta)
{
    json_t *map = json_object_get(bd, kind), *e = json_object_get(map, name);
    if (e == NULL) {
        json_object_set_new(map, name, json_pack("{so so}", "metrics", metrics_of(r), "metadata", meta));
        return;
    }
    json_decref(meta);
    metrics_add(json_object_get(e, "metrics"), r);
}

#define DAILY_FILTERS                                                                                        \
    " WHERE d.date >= $1 AND d.date <= $2 AND (CAST($3 AS TEXT) IS NULL OR d.model = $3)"                    \
    " AND (CAST($4 AS TEXT) IS NULL OR d.api_key = $4) AND (CAST($5 AS TEXT) IS NULL OR d.user_id = $5)"
#define DAILY_SUMS                                                                                           \
    "SUM(d.spend) AS spend, SUM(d.prompt_tokens) AS prompt_tokens, SUM(d.completion_tokens) AS "             \
    "completion_tokens, SUM(d.cache_read_input_tokens) AS cache_read_input_tokens, "                         \
    "SUM(d.cache_creation_input_tokens) AS cache_creation_input_tokens, SUM(d.api_requests) AS "             \
    "api_requests, SUM(d.successful_requests) AS successful_requests, SUM(d.failed_requests) AS "            \
    "failed_requests"

static int daily_job(gw_store_conn_t *c, gw_spend_query_t *q)
{
    gw_store_param_t p[] = {GW_P_TEXT(q->start_day),
                            GW_P_TEXT(q->end_day),
                            GW_P_TEXT(nz(q->model)),
                            GW_P_TEXT(nz(q->api_key)),
                            GW_P_TEXT(nz(q->user_id)),
                            GW_P_INT(q->page_size),
                            GW_P_INT((q->page - 1) * q->page_size)};
    /* the end day is inclusive: parse_when pushed end_ms a day on for a bare date */
    char endday[GW_STORE_TIME_LEN];
    gw_store_time_iso(q->end_ms - 1, endday);
    endday[10] = '\0';
    p[1] = GW_P_TEXT(endday);
    json_t *tot = NULL, *rows = NULL;
    int st = gw_store_query(c, "SELECT count(*) AS n, " DAILY_SUMS " FROM daily_spend d" DAILY_FILTERS, p, 5,
                            &tot);
    if (st != GW_STORE_OK)
        return st;
    st = gw_store_query(
        c,
        "SELECT d.date, d.api_key, d.model, d.model_group, d.custom_llm_provider, d.team_id, "
        "k.key_alias, d.spend, d.prompt_tokens, d.completion_tokens, d.cache_read_input_tokens, "
        "d.cache_creation_input_tokens, d.api_requests, d.successful_requests, d.failed_requests "
        "FROM daily_spend d LEFT JOIN keys k ON k.token = d.api_key" DAILY_FILTERS
        " ORDER BY d.date, d.api_key, d.model, d.custom_llm_provider LIMIT $6 OFFSET $7",
        p, 7, &rows);
    if (st != GW_STORE_OK) {
        json_decref(tot);
        return st;
    }
    json_t *results = json_array(), *day = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (day == NULL || strcmp(rstr(day, "date"), rstr(r, "date")) != 0) {
            day = json_pack("{ss so s{s{} s{} s{} s{}}}", "date", rstr(r, "date"), "metrics", metrics_of(r),
                            "breakdown", "models", "model_groups", "providers", "api_keys");
            json_array_append_new(results, day);
        } else {
            metrics_add(json_object_get(day, "metrics"), r);
        }
        json_t *bd = json_object_get(day, "breakdown");
        breakdown_add(bd, "models", rstr(r, "model"), r, json_object());
        if (*rstr(r, "model_group"))
            breakdown_add(bd, "model_groups", rstr(r, "model_group"), r, json_object());
        breakdown_add(bd, "providers", rstr(r, "custom_llm_provider"), r, json_object());
        breakdown_add(bd, "api_keys", rstr(r, "api_key"), r,
                      json_pack("{so so}", "key_alias",
                                *rstr(r, "key_alias") ? json_string(rstr(r, "key_alias")) : json_null(),
                                "team_id",
                                *rstr(r, "team_id") ? json_string(rstr(r, "team_id")) : json_null()));
    }
    json_t *t = json_array_get(tot, 0);
    int64_t n = row_int(t, "n"), pages = (n + q->page_size - 1) / q->page_size;
    json_t *meta =
        json_pack("{so sI sI sI sI sI sI sI sI sI sI sb}", "total_spend", dollars(row_int(t, "spend")),
                  "total_prompt_tokens", (json_int_t)row_int(t, "prompt_tokens"), "total_completion_tokens",
                  (json_int_t)row_int(t, "completion_tokens"), "total_tokens",
                  (json_int_t)(row_int(t, "prompt_tokens") + row_int(t, "completion_tokens")),
                  "total_api_requests", (json_int_t)row_int(t, "api_requests"), "total_successful_requests",
                  (json_int_t)row_int(t, "successful_requests"), "total_failed_requests",
                  (json_int_t)row_int(t, "failed_requests"), "total_cache_read_input_tokens",
                  (json_int_t)row_int(t, "cache_read_input_tokens"), "total_cache_creation_input_tokens",
                  (json_int_t)row_int(t, "cache_creation_input_tokens"), "page", (json_int_t)q->page,
                  "total_pages", (json_int_t)pages, "has_more", q->page < pages);
    json_decref(tot);
    json_decref(rows);
    q->result = json_pack("{so so}", "results", results, "metadata", meta);
    return GW_STORE_OK;
}

/* The first day of LiteLLM's "last 30 days" views (CURRENT_DATE - 30 days), as YYYY-MM-DD. */
static void since_30d(const gw_spend_query_t *q, char day[11])
{
    char iso[GW_STORE_TIME_LEN];
    gw_store_time_iso(q->now_ms - q->now_ms % DAY_MS - 30 * DAY_MS, iso);
    memcpy(day, iso, 10);
    day[10] = '\0';
}

/* A "by spend, last 30 days" list ($1 = first day, $2 = limit): its rows, total_spend in dollars. */
static int top_job(gw_store_conn_t *c, gw_spend_query_t *q, const char *sql)
{
    char since[11];
    since_30d(q, since);
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(since), GW_P_INT(q->limit)};
    int st = gw_store_query(c, sql, p, 2, &rows);
    if (st != GW_STORE_OK)
        return st;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) to_dollars(r, "total_spend");
    q->result = rows;
    return GW_STORE_OK;
}

/* /global/spend/keys: [{api_key, key_alias, key_name, total_spend}] by spend, descending. */
static const char top_keys_sql[] =
    "SELECT d.api_key AS api_key, k.key_alias AS key_alias, k.key_name AS key_name, SUM(d.spend) AS "
    "total_spend "
    "FROM daily_spend d LEFT JOIN keys k ON k.token = d.api_key WHERE d.date >= $1 GROUP BY d.api_key, "
    "k.key_alias, k.key_name ORDER BY total_spend DESC, d.api_key LIMIT $2";

/* /global/spend/models: [{model, total_spend}] by spend, descending. */
static const char top_models_sql[] =
    "SELECT model, SUM(spend) AS total_spend FROM daily_spend WHERE date >= $1 AND "
    "model <> '' GROUP BY model ORDER BY total_spend DESC, model LIMIT $2";

/* /global/spend: {"spend": dollars of the last 30 days, "max_budget": the proxy's budget}. */
static int global_job(gw_store_conn_t *c, gw_spend_query_t *q)
{
    char since[11];
    since_30d(q, since);
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(since)};
    int st = gw_store_query(c, "SELECT COALESCE(SUM(spend), 0) AS spend FROM daily_spend WHERE date >= $1", p,
                            1, &rows);
    if (st != GW_STORE_OK)
        return st;
    q->result = json_pack("{s:o, s:f}", "spend", dollars(row_int(json_array_get(rows, 0), "spend")),
                          "max_budget", q->global_max_budget);
    json_decref(rows);
    return q->result != NULL ? GW_STORE_OK : gw_store_fail(c, GW_STORE_ERROR, "out of memory");
}

int gw_spend_api_job(gw_store_conn_t *c, void *ud)
{
    gw_spend_query_t *q = ud;
    switch (q->kind) {
    case GW_SPEND_API_KEYS:
        return top_job(c, q, top_keys_sql);
    case GW_SPEND_API_MODELS:
        return top_job(c, q, top_models_sql);
    case GW_SPEND_API_GLOBAL:
        return global_job(c, q);
    case GW_SPEND_API_LOGS:
        return logs_job(c, q);
    case GW_SPEND_API_REPORT:
        return report_job(c, q);
    case GW_SPEND_API_DAILY:
        return daily_job(c, q);
    }
    return gw_store_fail(c, GW_STORE_ERROR, "unknown spend query");
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

typedef struct api_handler {
    h2o_handler_t super;
    gw_spend_api_kind_t kind;
    const char *path; /* the exact path it answers (h2o matched a prefix) */
    gw_spend_api_conf_t conf;
} api_handler_t;

typedef struct task task_t;
typedef struct task_link {
    task_t *task; /* NULL once the task finished or detached */
} task_link_t;

struct task {
    gw_spend_query_t q;
    h2o_req_t *req;    /* NULL when the client left */
    task_link_t *link; /* in the request's pool */
};

static void on_req_dispose(void *p)
{
    task_link_t *l = p;
    if (l->task != NULL)
        l->task->req = NULL;
}

static void on_done(void *ud, int status, const char *err)
{
    task_t *t = ud;
    h2o_req_t *req = t->req;
    if (req != NULL) {
        t->link->task = NULL;
        char *body = NULL;
        if (status == GW_STORE_OK && t->q.result != NULL)
            body = json_dumps(t->q.result, JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
        if (body != NULL && strlen(body) <= MAX_BODY) {
            gw_reply_json(req, 200, "OK", body, strlen(body));
        } else if (status == GW_STORE_UNAVAILABLE || status == GW_STORE_BUSY) {
            gw_reply_error(req, GW_ERR_UNAVAILABLE,
                           "the database is unavailable; spend is kept in the journal", NULL);
        } else {
            gw_reply_error(req, GW_ERR_INTERNAL, body ? "response too large; narrow the date range" : err,
                           NULL);
        }
        free(body);
    }
    json_decref(t->q.result);
    free(t);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    api_handler_t *h = (api_handler_t *)self;
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, h->path, strlen(h->path)))
        return gw_reply_error(req, GW_ERR_NOT_FOUND, "Not found", NULL), 0; /* a longer path: not a route */
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return gw_reply_error(req, GW_ERR_METHOD, "use GET", NULL), 0;
    if (h->conf.authorize != NULL && h->conf.authorize(req, h->conf.ctx) != 0)
        return 0;
    task_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return gw_reply_error(req, GW_ERR_INTERNAL, "out of memory", NULL), 0;
    const char *qs = "";
    size_t qlen = 0;
    if (req->query_at != SIZE_MAX) {
        qs = req->path.base + req->query_at + 1;
        qlen = req->path.len - req->query_at - 1;
    }
    char err[256];
    if (gw_spend_api_parse(h->kind, qs, qlen, &t->q, err, sizeof(err)) != 0) {
        free(t);
        return gw_reply_error(req, GW_ERR_BAD_REQUEST, err, NULL), 0;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    t->q.now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    t->q.global_max_budget = h->conf.global_max_budget;
    t->req = req;
    t->link = h2o_mem_alloc_shared(&req->pool, sizeof(*t->link), on_req_dispose);
    t->link->task = t;
    h2o_multithread_receiver_t *rx = h->conf.receiver(req, h->conf.ctx);
    if (gw_store_submit(h->conf.store, rx, gw_spend_api_job, on_done, t) != 0) {
        t->link->task = NULL;
        free(t);
        return gw_reply_error(req, GW_ERR_UNAVAILABLE, "the store is busy", NULL), 0;
    }
    return 0;
}

void gw_spend_api_register(h2o_hostconf_t *hostconf, const gw_spend_api_conf_t *conf)
{
    static const struct {
        const char *path;
        gw_spend_api_kind_t kind;
    } routes[] = {/* longer paths first: h2o takes the first registered prefix that matches */
                  {"/spend/logs", GW_SPEND_API_LOGS},        {"/global/spend/report", GW_SPEND_API_REPORT},
                  {"/global/spend/keys", GW_SPEND_API_KEYS}, {"/global/spend/models", GW_SPEND_API_MODELS},
                  {"/global/spend", GW_SPEND_API_GLOBAL},    {"/user/daily/activity", GW_SPEND_API_DAILY}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        h2o_pathconf_t *pc = h2o_config_register_path(hostconf, routes[i].path, 0);
        api_handler_t *h = (api_handler_t *)h2o_create_handler(pc, sizeof(*h));
        h->super.on_req = on_req;
        h->kind = routes[i].kind;
        h->path = routes[i].path;
        h->conf = *conf;
    }
}

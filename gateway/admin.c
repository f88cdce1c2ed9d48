/*
 * admin.c — the management API (see admin.h).
 *
 * Shape of every call: the handler authenticates (master key, or a proxy_admin user's key),
 * reads the JSON body (bounded) and the query string into one object `in`, and submits a store
 * job. The job runs the operation in one transaction on the store thread and leaves the
 * response in `out` (or an HTTP status and message for the client's mistakes, which roll the
 * transaction back). Its completion, on the worker's loop, broadcasts the cache invalidations the
 * operation recorded and replies — unless the client has left, which the request pool's dispose
 * hook records by clearing the record's back-pointer.
 *
 * Operations are described by field tables (name, type), so that request fields map onto
 * columns the same way for every entity: money fields (dollars) become integer micro-dollars,
 * duration fields are validated and set their reset time, JSON fields must be arrays/objects.
 */
#include "gateway/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "gateway/errors.h"
#include "gateway/keys.h"
#include "gateway/pricing.h"
#include "gateway/server.h"
#include "gateway/store.h"

#define MAX_ADMIN_BODY (1u << 20)
#define MAX_COLS 40
#define CLIENT_ERROR 1 /* an operation's status for "the client's mistake": roll back, reply a->status */

typedef struct admin_req admin_req_t;
typedef int (*admin_fn)(gw_store_conn_t *c, admin_req_t *a);

typedef struct admin_op {
    const char *path;
    admin_fn fn;
} admin_op_t;

struct admin_req {
    gw_worker_t *w;
    gw_reqctx_t *rc;    /* NULL once the client has left */
    admin_req_t **slot; /* in the request pool: points back here until the reply */
    const admin_op_t *op;
    json_t *in;      /* body and query parameters */
    json_t *out;     /* response body */
    json_t *changes; /* [[kind, id], …] to broadcast after the commit */
    int status;      /* HTTP status for CLIENT_ERROR */
    char msg[300];
    int64_t now_ms;
    char now[GW_STORE_TIME_LEN];
};

/* ---- small helpers ------------------------------------------------------------------------- */

static int client_error(admin_req_t *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int client_error(admin_req_t *a, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->msg, sizeof(a->msg), fmt, ap);
    va_end(ap);
    a->status = status;
    return CLIENT_ERROR;
}

static const char *in_str(const admin_req_t *a, const char *name)
{
    return json_string_value(json_object_get(a->in, name));
}

/* An integer from the body (number) or the query string (text); dflt when absent or invalid. */
static int64_t in_int(const admin_req_t *a, const char *name, int64_t dflt, int64_t lo, int64_t hi)
{
    json_t *v = json_object_get(a->in, name);
    int64_t n = dflt;
    if (json_is_integer(v))
        n = json_integer_value(v);
    else if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (end != json_string_value(v) && *end == '\0')
            n = x;
    }
    return n < lo ? lo : n > hi ? hi : n;
}

static int in_bool(const admin_req_t *a, const char *name, int dflt)
{
    json_t *v = json_object_get(a->in, name);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_string(v))
        return strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "True") == 0;
    return dflt;
}

static void random_id(char out[37])
{
    unsigned char r[16] = {0};
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(r, &ts, sizeof(ts) < sizeof(r) ? sizeof(ts) : sizeof(r));
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 15];
    }
    out[o] = '\0';
}

static int note(gw_store_conn_t *c, admin_req_t *a, const char *kind, const char *id)
{
    json_array_append_new(a->changes, json_pack("[ss]", kind, id));
    return gw_store_note_change(c, kind, id);
}

/* ---- fields -------------------------------------------------------------------------------- */

typedef enum ftype { F_TEXT, F_MONEY, F_INT, F_BOOL, F_ARR, F_OBJ, F_DURATION } ftype_t;

typedef struct field {
    const char *name;
    ftype_t t;
} field_t;

#define LIMIT_FIELDS                                                                                         \
    {"max_budget", F_MONEY}, {"soft_budget", F_MONEY}, {"budget_duration", F_DURATION},                      \
        {"rpm_limit", F_INT}, {"tpm_limit", F_INT}, {"max_parallel_requests", F_INT},                        \
    {                                                                                                        \
        "model_max_budget", F_OBJ                                                                            \
    }

static const field_t key_fields[] = {
    {"key_alias", F_TEXT},     {"user_id", F_TEXT}, {"team_id", F_TEXT}, {"organization_id", F_TEXT},
    {"budget_id", F_TEXT},     {"models", F_ARR},   {"aliases", F_OBJ},  {"config", F_OBJ},
    {"permissions", F_OBJ},    {"metadata", F_OBJ}, {"spend", F_MONEY},  {"allowed_cache_controls", F_ARR},
    {"allowed_routes", F_ARR}, {"blocked", F_BOOL}, LIMIT_FIELDS,
};
static const field_t user_fields[] = {
    {"user_alias", F_TEXT},      {"user_email", F_TEXT}, {"user_role", F_TEXT}, {"team_id", F_TEXT},
    {"organization_id", F_TEXT}, {"teams", F_ARR},       {"models", F_ARR},     {"metadata", F_OBJ},
    {"spend", F_MONEY},          {"blocked", F_BOOL},    LIMIT_FIELDS,
};
static const field_t team_fields[] = {
    {"team_alias", F_TEXT},
    {"organization_id", F_TEXT},
    {"admins", F_ARR},
    {"members", F_ARR},
    {"members_with_roles", F_ARR},
    {"metadata", F_OBJ},
    {"models", F_ARR},
    {"model_aliases", F_OBJ},
    {"spend", F_MONEY},
    {"blocked", F_BOOL},
    LIMIT_FIELDS,
};
static const field_t customer_fields[] = {
    {"alias", F_TEXT},         {"allowed_model_region", F_TEXT},
    {"default_model", F_TEXT}, {"budget_id", F_TEXT},
    {"blocked", F_BOOL},       {"spend", F_MONEY},
};
static const field_t budget_fields[] = {
    {"max_budget", F_MONEY},     {"soft_budget", F_MONEY}, {"budget_duration", F_DURATION},
    {"rpm_limit", F_INT},        {"tpm_limit", F_INT},     {"max_parallel_requests", F_INT},
    {"model_max_budget", F_OBJ},
};
static const field_t org_fields[] = {
    {"organization_alias", F_TEXT},
    {"budget_id", F_TEXT},
    {"metadata", F_OBJ},
    {"models", F_ARR},
    {"spend", F_MONEY},
};

#define NF(t) (sizeof(t) / sizeof(t[0]))

/* Columns and parameters of one INSERT or UPDATE; strings it formats live in `hold`. */
typedef struct colset {
    const char *col[MAX_COLS];
    gw_store_param_t p[MAX_COLS];
    size_t n;
    json_t *hold;
} colset_t;

static void cs_init(colset_t *cs)
{
    cs->n = 0;
    cs->hold = json_array();
}

static void cs_free(colset_t *cs)
{
    json_decref(cs->hold);
}

static const char *cs_keep(colset_t *cs, const char *s)
{
    json_t *v = json_string(s);
    json_array_append_new(cs->hold, v);
    return json_string_value(v);
}

static void cs_add(colset_t *cs, const char *col, gw_store_param_t p)
{
    if (cs->n < MAX_COLS) {
        cs->col[cs->n] = col;
        cs->p[cs->n++] = p;
    }
}

/* a time n ms after now, formatted (NULL on overflow) */
static const char *time_after(admin_req_t *a, colset_t *cs, const gw_duration_t *d)
{
    int64_t t;
    char buf[GW_STORE_TIME_LEN];
    if (gw_duration_add(a->now_ms, d, &t) != 0)
        return NULL;
    gw_store_time_iso(t, buf);
    return cs_keep(cs, buf);
}

/* Maps the request's fields of table f onto cs. CLIENT_ERROR on a bad value. */
static int take_fields(admin_req_t *a, const field_t *f, size_t nf, colset_t *cs)
{
    for (size_t i = 0; i < nf; i++) {
        json_t *v = json_object_get(a->in, f[i].name);
        if (v == NULL)
            continue;
        if (json_is_null(v)) {
            cs_add(cs, f[i].name, GW_P_NULL());
            if (f[i].t == F_DURATION)
                cs_add(cs, "budget_reset_at", GW_P_NULL());
            continue;
        }
        switch (f[i].t) {
        case F_TEXT:
            if (!json_is_string(v))
                return client_error(a, 400, "%s must be a string", f[i].name);
            cs_add(cs, f[i].name, GW_P_TEXT(json_string_value(v)));
            break;
        case F_MONEY: {
            uint64_t micros;
            if (!json_is_number(v) ||
                gw_pricing_double_usd(json_number_value(v), 6, &micros) != GW_PRICING_OK ||
                micros > (uint64_t)INT64_MAX)
                return client_error(a, 400, "%s must be a non-negative amount in dollars", f[i].name);
            cs_add(cs, f[i].name, GW_P_INT((int64_t)micros));
            break;
        }
        case F_INT:
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return client_error(a, 400, "%s must be a non-negative integer", f[i].name);
            cs_add(cs, f[i].name, GW_P_INT(json_integer_value(v)));
            break;
        case F_BOOL:
            if (!json_is_boolean(v))
                return client_error(a, 400, "%s must be true or false", f[i].name);
            cs_add(cs, f[i].name, GW_P_BOOL(json_is_true(v)));
            break;
        case F_ARR:
        case F_OBJ:
            if (f[i].t == F_ARR ? !json_is_array(v) : !json_is_object(v))
                return client_error(a, 400, "%s must be a JSON %s", f[i].name,
                                    f[i].t == F_ARR ? "array" : "object");
            cs_add(cs, f[i].name, GW_P_JSON(v));
            break;
        case F_DURATION: {
            gw_duration_t d;
            const char *at;
            if (!json_is_string(v) || gw_duration_parse(json_string_value(v), &d) != 0 ||
                (at = time_after(a, cs, &d)) == NULL)
                return client_error(a, 400,
                                    "%s must be a duration like \"30s\", \"10m\", \"1h\", \"7d\" or \"1mo\"",
                                    f[i].name);
            cs_add(cs, f[i].name, GW_P_TEXT(json_string_value(v)));
            cs_add(cs, "budget_reset_at", GW_P_TEXT(at));
            break;
        }
        }
    }
    return GW_STORE_OK;
}

/* LiteLLM's `duration` of a key: its expiry time (null: never). */
static int take_expiry(admin_req_t *a, colset_t *cs)
{
    json_t *v = json_object_get(a->in, "duration");
    if (v == NULL)
        return GW_STORE_OK;
    if (json_is_null(v)) {
        cs_add(cs, "expires", GW_P_NULL());
        return GW_STORE_OK;
    }
    gw_duration_t d;
    const char *at;
    if (!json_is_string(v) || gw_duration_parse(json_string_value(v), &d) != 0 ||
        (at = time_after(a, cs, &d)) == NULL)
        return client_error(a, 400,
                            "duration must be a duration like \"30s\", \"10m\", \"1h\", \"7d\" or \"1mo\"");
    cs_add(cs, "expires", GW_P_TEXT(at));
    return GW_STORE_OK;
}

/* ---- SQL helpers --------------------------------------------------------------------------- */

static int insert_row(gw_store_conn_t *c, const char *table, colset_t *cs)
{
    char sql[4096];
    size_t o = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO %s (", table);
    for (size_t i = 0; i < cs->n && o < sizeof(sql); i++)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s%s", i ? ", " : "", cs->col[i]);
    if (o < sizeof(sql))
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, ") VALUES (");
    for (size_t i = 0; i < cs->n && o < sizeof(sql); i++)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s$%zu", i ? ", " : "", i + 1);
    if (o < sizeof(sql))
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, ")");
    if (o >= sizeof(sql))
        return gw_store_fail(c, GW_STORE_ERROR, "statement too long");
    return gw_store_exec(c, sql, cs->p, cs->n, NULL);
}

/* UPDATE table SET cols WHERE idcol = id; *changed receives the number of rows. */
static int update_row(gw_store_conn_t *c, const char *table, const char *idcol, const char *id, colset_t *cs,
                      int64_t *changed)
{
    char sql[4096];
    *changed = 0;
    if (cs->n == 0) { /* nothing to set: report whether the row exists */
        cs_add(cs, idcol, GW_P_TEXT(id));
    }
    size_t o = (size_t)snprintf(sql, sizeof(sql), "UPDATE %s SET ", table);
    for (size_t i = 0; i < cs->n && o < sizeof(sql); i++)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s%s = $%zu", i ? ", " : "", cs->col[i], i + 1);
    if (o < sizeof(sql))
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, " WHERE %s = $%zu", idcol, cs->n + 1);
    if (o >= sizeof(sql) || cs->n >= MAX_COLS)
        return gw_store_fail(c, GW_STORE_ERROR, "statement too long");
    cs->p[cs->n] = GW_P_TEXT(id);
    return gw_store_exec(c, sql, cs->p, cs->n + 1, changed);
}

static int select_rows(gw_store_conn_t *c, const char *table, const char *idcol, const char *id,
                       json_t **rows)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE %s = $1", table, idcol);
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    return gw_store_query(c, sql, p, 1, rows);
}

/* The row's money columns as dollars (LiteLLM's floats). */
static json_t *api_row(json_t *row)
{
    static const char *money[] = {"spend", "max_budget", "soft_budget"};
    for (size_t i = 0; i < sizeof(money) / sizeof(money[0]); i++) {
        json_t *v = json_object_get(row, money[i]);
        if (json_is_integer(v))
            json_object_set_new(row, money[i], json_real((double)json_integer_value(v) / 1e6));
    }
    return row;
}

/* One row by id, converted, as a new reference; NULL when there is none (st set on error). */
static json_t *fetch_one(gw_store_conn_t *c, const char *table, const char *idcol, const char *id, int *st)
{
    json_t *rows = NULL;
    *st = select_rows(c, table, idcol, id, &rows);
    json_t *row = json_array_get(rows, 0);
    if (row != NULL)
        json_incref(row);
    json_decref(rows);
    return row != NULL ? api_row(row) : NULL;
}

static json_t *fetch_all(gw_store_conn_t *c, const char *table, const char *idcol, const char *id, int *st)
{
    json_t *rows = NULL;
    *st = select_rows(c, table, idcol, id, &rows);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) api_row(r);
    return rows != NULL ? rows : json_array();
}

/* ---- keys ---------------------------------------------------------------------------------- */

/* LiteLLM's key responses carry the request's model_rpm_limit / model_tpm_limit (the stored
 * copies are in metadata). */
static void echo_model_limits(const admin_req_t *a, json_t *row)
{
    static const char *names[] = {"model_rpm_limit", "model_tpm_limit"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(a->in, names[i]);
        if (v != NULL)
            json_object_set(row, names[i], v);
    }
}

static int create_key(gw_store_conn_t *c, admin_req_t *a, const char *user_id, json_t **out)
{
    char key[GW_KEY_LEN + 1], token[GW_KEY_HASH_LEN + 1], name[32];
    if (gw_key_generate(key) != 0)
        return gw_store_fail(c, GW_STORE_ERROR, "no entropy for a new key");
    gw_key_hash_hex(key, strlen(key), token);
    gw_key_display_name(key, name, sizeof(name));
    colset_t cs;
    cs_init(&cs);
    int st = user_id != NULL ? GW_STORE_OK : take_fields(a, key_fields, NF(key_fields), &cs);
    if (st == GW_STORE_OK && user_id == NULL)
        st = take_expiry(a, &cs);
    if (st == GW_STORE_OK) {
        if (user_id != NULL) {
            cs_add(&cs, "user_id", GW_P_TEXT(user_id));
            json_t *m = json_object_get(a->in, "models");
            if (json_is_array(m))
                cs_add(&cs, "models", GW_P_JSON(m));
        }
        cs_add(&cs, "token", GW_P_TEXT(token));
        cs_add(&cs, "key_name", GW_P_TEXT(name));
        cs_add(&cs, "created_at", GW_P_TEXT(a->now));
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = insert_row(c, "keys", &cs);
    }
    cs_free(&cs);
    if (st == GW_STORE_CONSTRAINT)
        return client_error(a, 400, "a key with this key_alias already exists");
    if (st != GW_STORE_OK || (st = note(c, a, "key", token)) != GW_STORE_OK)
        return st;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : gw_store_fail(c, GW_STORE_ERROR, "the new key vanished");
    json_object_set_new(row, "key", json_string(key));
    json_object_set_new(row, "token_id", json_string(token));
    json_t *dur = json_object_get(a->in, "duration");
    json_object_set(row, "duration", dur != NULL ? dur : json_null());
    echo_model_limits(a, row);
    *out = row;
    return GW_STORE_OK;
}

/*
 * Per-model limits of a key. LiteLLM accepts `model_rpm_limit` / `model_tpm_limit`
 * ({"model": n}) as /key/generate and /key/update fields and keeps them in the key's metadata
 * (where /key/info shows them); they are folded into `metadata` here the same way (on update,
 * into the stored metadata when the request brings none). `model_max_budget` is checked:
 * {"model": {"budget_limit": dollars, "time_period": "1d", "rpm_limit": n, "tpm_limit": n}} or
 * the older {"model": dollars}; it is stored as LiteLLM writes it (dollars).
 */
static int check_count_map(admin_req_t *a, const char *name, json_t *v)
{
    const char *model;
    json_t *n;
    if (!json_is_object(v))
        return client_error(a, 400, "%s must be an object of model name to a whole number", name);
    json_object_foreach(v, model, n)
    {
        if (!json_is_integer(n) || json_integer_value(n) < 0)
            return client_error(a, 400, "%s must be an object of model name to a whole number", name);
    }
    return GW_STORE_OK;
}

static int check_model_max_budget(admin_req_t *a)
{
    json_t *mmb = json_object_get(a->in, "model_max_budget");
    const char *model;
    json_t *v;
    if (!json_is_object(mmb))
        return GW_STORE_OK; /* absent or null; a non-object is take_fields' error */
    json_object_foreach(mmb, model, v)
    {
        json_t *b = json_is_object(v) ? json_object_get(v, "budget_limit") : v;
        json_t *tp = json_is_object(v) ? json_object_get(v, "time_period") : NULL;
        gw_duration_t d;
        if ((b != NULL && !json_is_null(b) && (!json_is_number(b) || json_number_value(b) < 0)) ||
            (tp != NULL && !json_is_null(tp) &&
             (!json_is_string(tp) || gw_duration_parse(json_string_value(tp), &d) != 0)))
            return client_error(
                a, 400,
                "model_max_budget['%.80s'] must be {\"budget_limit\": dollars, \"time_period\": "
                "\"1d\"} or an amount in dollars",
                model);
        if (json_is_object(v)) {
            json_t *r = json_object_get(v, "rpm_limit"), *t = json_object_get(v, "tpm_limit");
            if ((r != NULL && !json_is_null(r) && (!json_is_integer(r) || json_integer_value(r) < 0)) ||
                (t != NULL && !json_is_null(t) && (!json_is_integer(t) || json_integer_value(t) < 0)))
                return client_error(
                    a, 400, "model_max_budget['%.80s']: rpm_limit and tpm_limit must be whole numbers",
                    model);
        }
    }
    return GW_STORE_OK;
}

static int fold_model_limits(gw_store_conn_t *c, admin_req_t *a, const char *token)
{
    static const char *names[] = {"model_rpm_limit", "model_tpm_limit"};
    int st = check_model_max_budget(a);
    json_t *given[2] = {NULL, NULL};
    for (size_t i = 0; i < 2 && st == GW_STORE_OK; i++) {
        json_t *v = json_object_get(a->in, names[i]);
        if (v != NULL && !json_is_null(v) && (st = check_count_map(a, names[i], v)) == GW_STORE_OK)
            given[i] = v;
    }
    if (st != GW_STORE_OK || (given[0] == NULL && given[1] == NULL))
        return st;
    json_t *md = json_object_get(a->in, "metadata");
    if (md != NULL && !json_is_object(md) && !json_is_null(md))
        return client_error(a, 400, "metadata must be a JSON object");
    json_t *merged = json_is_object(md) ? json_deep_copy(md) : NULL;
    if (merged == NULL && token != NULL) { /* update without metadata: the stored one */
        json_t *rows = NULL;
        gw_store_param_t p[] = {GW_P_TEXT(token)};
        if ((st = gw_store_query(c, "SELECT metadata FROM keys WHERE token = $1", p, 1, &rows)) !=
            GW_STORE_OK)
            return st;
        json_t *old = json_object_get(json_array_get(rows, 0), "metadata");
        merged = json_is_object(old) ? json_deep_copy(old) : NULL;
        json_decref(rows);
    }
    if (merged == NULL)
        merged = json_object();
    for (size_t i = 0; i < 2; i++)
        if (given[i] != NULL)
            json_object_set(merged, names[i], given[i]);
    json_object_set_new(a->in, "metadata", merged);
    return GW_STORE_OK;
}

static int op_key_generate(gw_store_conn_t *c, admin_req_t *a)
{
    int st = fold_model_limits(c, a, NULL);
    return st != GW_STORE_OK ? st : create_key(c, a, NULL, &a->out);
}

/* The token the request names in `key` (a key or its hash). */
static int named_token(admin_req_t *a, char token[GW_KEY_HASH_LEN + 1])
{
    if (gw_key_token_of(in_str(a, "key"), token) != 0)
        return client_error(a, 400, "key is required");
    return GW_STORE_OK;
}

static int op_key_info(gw_store_conn_t *c, admin_req_t *a)
{
    char token[GW_KEY_HASH_LEN + 1];
    int st = named_token(a, token);
    if (st != GW_STORE_OK)
        return st;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Key not found in database");
    a->out = json_pack("{s:s, s:o}", "key", in_str(a, "key"), "info", row);
    return GW_STORE_OK;
}

static int finish_key_write(gw_store_conn_t *c, admin_req_t *a, const char *token, int64_t changed)
{
    int st;
    if (changed == 0)
        return client_error(a, 404, "Key not found in database");
    if ((st = note(c, a, "key", token)) != GW_STORE_OK)
        return st;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Key not found in database");
    json_object_set_new(row, "key", json_string(in_str(a, "key")));
    echo_model_limits(a, row);
    a->out = row;
    return GW_STORE_OK;
}

static int op_key_update(gw_store_conn_t *c, admin_req_t *a)
{
    char token[GW_KEY_HASH_LEN + 1];
    int st = named_token(a, token);
    colset_t cs;
    cs_init(&cs);
    int64_t changed = 0;
    if (st == GW_STORE_OK)
        st = fold_model_limits(c, a, token);
    if (st == GW_STORE_OK)
        st = take_fields(a, key_fields, NF(key_fields), &cs);
    if (st == GW_STORE_OK)
        st = take_expiry(a, &cs);
    if (st == GW_STORE_OK) {
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = update_row(c, "keys", "token", token, &cs, &changed);
    }
    cs_free(&cs);
    if (st == GW_STORE_CONSTRAINT)
        return client_error(a, 400, "a key with this key_alias already exists");
    return st != GW_STORE_OK ? st : finish_key_write(c, a, token, changed);
}

static int set_blocked(gw_store_conn_t *c, admin_req_t *a, int blocked)
{
    char token[GW_KEY_HASH_LEN + 1];
    int st = named_token(a, token);
    if (st != GW_STORE_OK)
        return st;
    int64_t changed = 0;
    gw_store_param_t p[] = {GW_P_BOOL(blocked), GW_P_TEXT(a->now), GW_P_TEXT(token)};
    st = gw_store_exec(c, "UPDATE keys SET blocked = $1, updated_at = $2 WHERE token = $3", p, 3, &changed);
    return st != GW_STORE_OK ? st : finish_key_write(c, a, token, changed);
}

static int op_key_block(gw_store_conn_t *c, admin_req_t *a)
{
    return set_blocked(c, a, 1);
}

static int op_key_unblock(gw_store_conn_t *c, admin_req_t *a)
{
    return set_blocked(c, a, 0);
}

static int op_key_delete(gw_store_conn_t *c, admin_req_t *a)
{
    json_t *keys = json_object_get(a->in, "keys"), *aliases = json_object_get(a->in, "key_aliases");
    if (!json_is_array(keys) && !json_is_array(aliases))
        return client_error(a, 400, "keys (a list of keys) or key_aliases is required");
    json_t *deleted = json_array();
    a->out = json_pack("{s:o}", "deleted_keys", deleted);
    size_t i;
    json_t *v;
    int st = GW_STORE_OK;
    json_array_foreach(keys, i, v)
    {
        char token[GW_KEY_HASH_LEN + 1];
        if (gw_key_token_of(json_string_value(v), token) != 0)
            return client_error(a, 400, "keys must be a list of strings");
        int64_t n = 0;
        gw_store_param_t p[] = {GW_P_TEXT(token)};
        if ((st = gw_store_exec(c, "DELETE FROM keys WHERE token = $1", p, 1, &n)) != GW_STORE_OK)
            return st;
        if (n == 0)
            return client_error(a, 404, "Key not found in database: %.80s", json_string_value(v));
        if ((st = note(c, a, "key", token)) != GW_STORE_OK)
            return st;
        json_array_append(deleted, v);
    }
    json_array_foreach(aliases, i, v)
    {
        json_t *rows = NULL;
        gw_store_param_t p[] = {GW_P_TEXT(json_string_value(v))};
        if (!json_is_string(v))
            return client_error(a, 400, "key_aliases must be a list of strings");
        if ((st = gw_store_query(c, "SELECT token FROM keys WHERE key_alias = $1", p, 1, &rows)) !=
            GW_STORE_OK)
            return st;
        const char *token = json_string_value(json_object_get(json_array_get(rows, 0), "token"));
        if (token == NULL) {
            json_decref(rows);
            return client_error(a, 404, "Key not found in database: alias %.80s", json_string_value(v));
        }
        gw_store_param_t q[] = {GW_P_TEXT(token)};
        st = gw_store_exec(c, "DELETE FROM keys WHERE token = $1", q, 1, NULL);
        if (st == GW_STORE_OK)
            st = note(c, a, "key", token);
        json_decref(rows);
        if (st != GW_STORE_OK)
            return st;
        json_array_append(deleted, v);
    }
    return GW_STORE_OK;
}

static int op_key_regenerate(gw_store_conn_t *c, admin_req_t *a)
{
    char old[GW_KEY_HASH_LEN + 1], key[GW_KEY_LEN + 1], token[GW_KEY_HASH_LEN + 1], name[32];
    int st = named_token(a, old);
    if (st != GW_STORE_OK)
        return st;
    if (gw_key_generate(key) != 0)
        return gw_store_fail(c, GW_STORE_ERROR, "no entropy for a new key");
    gw_key_hash_hex(key, strlen(key), token);
    gw_key_display_name(key, name, sizeof(name));
    colset_t cs;
    cs_init(&cs);
    int64_t changed = 0;
    st = take_fields(a, key_fields, NF(key_fields), &cs);
    if (st == GW_STORE_OK)
        st = take_expiry(a, &cs);
    if (st == GW_STORE_OK) {
        cs_add(&cs, "token", GW_P_TEXT(token));
        cs_add(&cs, "key_name", GW_P_TEXT(name));
        cs_add(&cs, "last_rotation_at", GW_P_TEXT(a->now));
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = update_row(c, "keys", "token", old, &cs, &changed);
    }
    cs_free(&cs);
    if (st != GW_STORE_OK)
        return st;
    if (changed == 0)
        return client_error(a, 404, "Key not found in database");
    gw_store_param_t p[] = {GW_P_TEXT(token)};
    if ((st = gw_store_exec(c, "UPDATE keys SET rotation_count = rotation_count + 1 WHERE token = $1", p, 1,
                            NULL)) != GW_STORE_OK ||
        (st = note(c, a, "key", old)) != GW_STORE_OK || (st = note(c, a, "key", token)) != GW_STORE_OK)
        return st;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : gw_store_fail(c, GW_STORE_ERROR, "the regenerated key vanished");
    json_object_set_new(row, "key", json_string(key));
    json_object_set_new(row, "token_id", json_string(token));
    a->out = row;
    return GW_STORE_OK;
}

static int op_key_list(gw_store_conn_t *c, admin_req_t *a)
{
    int64_t page = in_int(a, "page", 1, 1, 1000000), size = in_int(a, "size", 10, 1, 100);
    int full = in_bool(a, "return_full_object", 0);
    const char *where = "WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND (CAST($2 AS TEXT) IS NULL OR "
                        "team_id = $2) AND (CAST($3 AS TEXT) IS NULL OR key_alias = $3)";
    gw_store_param_t p[] = {GW_P_TEXT(in_str(a, "user_id")), GW_P_TEXT(in_str(a, "team_id")),
                            GW_P_TEXT(in_str(a, "key_alias")), GW_P_INT(size), GW_P_INT((page - 1) * size)};
    char sql[512];
    json_t *rows = NULL, *count = NULL;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM keys %s", where);
    int st = gw_store_query(c, sql, p, 3, &count);
    if (st != GW_STORE_OK)
        return st;
    int64_t total = json_integer_value(json_object_get(json_array_get(count, 0), "n"));
    json_decref(count);
    snprintf(sql, sizeof(sql), "SELECT * FROM keys %s ORDER BY created_at, token LIMIT $4 OFFSET $5", where);
    if ((st = gw_store_query(c, sql, p, 5, &rows)) != GW_STORE_OK)
        return st;
    json_t *keys = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (full)
            json_array_append(keys, api_row(r));
        else
            json_array_append(keys, json_object_get(r, "token"));
    }
    json_decref(rows);
    a->out = json_pack("{s:o, s:I, s:I, s:I}", "keys", keys, "total_count", (json_int_t)total, "current_page",
                       (json_int_t)page, "total_pages", (json_int_t)((total + size - 1) / size));
    return GW_STORE_OK;
}

/* ---- users, teams, customers, budgets, organizations ----------------------------------------- */

typedef struct entity {
    const char *table, *idcol, *kind, *param; /* param: the id's name in requests */
    const field_t *fields;
    size_t nf;
} entity_t;

static const entity_t E_USER = {"users", "user_id", "user", "user_id", user_fields, NF(user_fields)};
static const entity_t E_TEAM = {"teams", "team_id", "team", "team_id", team_fields, NF(team_fields)};
static const entity_t E_CUSTOMER = {"end_users", "user_id",       "end_user",
                                    "user_id",   customer_fields, NF(customer_fields)};
static const entity_t E_BUDGET = {"budgets",   "budget_id",   "budget",
                                  "budget_id", budget_fields, NF(budget_fields)};
static const entity_t E_ORG = {"organizations",   "organization_id", "organization",
                               "organization_id", org_fields,        NF(org_fields)};

/* INSERT of an entity from the request; the id is the request's or a new UUID. */
static int create_entity(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, char id[128], json_t **row)
{
    const char *given = in_str(a, e->param);
    char gen[37];
    if (given == NULL)
        random_id(gen);
    snprintf(id, 128, "%s", given != NULL ? given : gen);
    colset_t cs;
    cs_init(&cs);
    int st = take_fields(a, e->fields, e->nf, &cs);
    if (st == GW_STORE_OK) {
        cs_add(&cs, e->idcol, GW_P_TEXT(id));
        cs_add(&cs, "created_at", GW_P_TEXT(a->now));
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = insert_row(c, e->table, &cs);
    }
    cs_free(&cs);
    if (st == GW_STORE_CONSTRAINT)
        return client_error(a, 400, "%s %.100s already exists", e->param, id);
    if (st != GW_STORE_OK || (st = note(c, a, e->kind, id)) != GW_STORE_OK)
        return st;
    *row = fetch_one(c, e->table, e->idcol, id, &st);
    return *row != NULL        ? GW_STORE_OK
           : st != GW_STORE_OK ? st
                               : gw_store_fail(c, GW_STORE_ERROR, "row vanished");
}

static int update_entity(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, json_t **row)
{
    const char *id = in_str(a, e->param);
    if (id == NULL)
        return client_error(a, 400, "%s is required", e->param);
    colset_t cs;
    cs_init(&cs);
    int64_t changed = 0;
    int st = take_fields(a, e->fields, e->nf, &cs);
    if (st == GW_STORE_OK) {
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = update_row(c, e->table, e->idcol, id, &cs, &changed);
    }
    cs_free(&cs);
    if (st != GW_STORE_OK)
        return st;
    if (changed == 0)
        return client_error(a, 404, "%s %.100s not found", e->param, id);
    if ((st = note(c, a, e->kind, id)) != GW_STORE_OK)
        return st;
    *row = fetch_one(c, e->table, e->idcol, id, &st);
    return *row != NULL        ? GW_STORE_OK
           : st != GW_STORE_OK ? st
                               : gw_store_fail(c, GW_STORE_ERROR, "row vanished");
}

/* DELETE of the ids listed in `list_param`; answers {out_name: [ids]}. */
static int delete_entities(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, const char *list_param,
                           const char *out_name)
{
    json_t *ids = json_object_get(a->in, list_param);
    if (!json_is_array(ids) || json_array_size(ids) == 0)
        return client_error(a, 400, "%s (a list of ids) is required", list_param);
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = $1", e->table, e->idcol);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        int64_t n = 0;
        if (!json_is_string(v))
            return client_error(a, 400, "%s must be a list of strings", list_param);
        gw_store_param_t p[] = {GW_P_TEXT(json_string_value(v))};
        int st = gw_store_exec(c, sql, p, 1, &n);
        if (st != GW_STORE_OK)
            return st;
        if (n == 0)
            return client_error(a, 404, "%s %.100s not found", e->param, json_string_value(v));
        if ((st = note(c, a, e->kind, json_string_value(v))) != GW_STORE_OK)
            return st;
    }
    a->out = json_pack("{s:O}", out_name, ids);
    return GW_STORE_OK;
}

static int op_user_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    json_t *row = NULL, *key = NULL;
    int st = create_entity(c, a, &E_USER, id, &row);
    if (st != GW_STORE_OK)
        return st;
    a->out = row;
    if (in_bool(a, "auto_create_key", 1)) { /* LiteLLM's default: the new user gets a key */
        if ((st = create_key(c, a, id, &key)) != GW_STORE_OK)
            return st;
        json_object_set(row, "key", json_object_get(key, "key"));
        json_object_set(row, "token", json_object_get(key, "token"));
        json_object_set(row, "expires", json_object_get(key, "expires"));
        json_decref(key);
    }
    return GW_STORE_OK;
}

static int op_user_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "user_id");
    if (id == NULL)
        return client_error(a, 400, "user_id is required");
    int st;
    json_t *row = fetch_one(c, "users", "user_id", id, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "User %.100s not found", id);
    json_t *keys = fetch_all(c, "keys", "user_id", id, &st);
    json_t *teams = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(row, "teams"), i, t)
    {
        int st2;
        json_t *tr = json_is_string(t) ? fetch_one(c, "teams", "team_id", json_string_value(t), &st2) : NULL;
        if (tr != NULL)
            json_array_append_new(teams, tr);
    }
    a->out = json_pack("{s:s, s:o, s:o, s:o}", "user_id", id, "user_info", row, "keys", keys, "teams", teams);
    return st;
}

static int op_user_update(gw_store_conn_t *c, admin_req_t *a)
{
    return update_entity(c, a, &E_USER, &a->out);
}

static int op_user_delete(gw_store_conn_t *c, admin_req_t *a)
{
    return delete_entities(c, a, &E_USER, "user_ids", "deleted_users");
}

static int op_team_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    return create_entity(c, a, &E_TEAM, id, &a->out);
}

static int op_team_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "team_id");
    if (id == NULL)
        return client_error(a, 400, "team_id is required");
    int st;
    json_t *row = fetch_one(c, "teams", "team_id", id, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Team %.100s not found", id);
    json_t *keys = fetch_all(c, "keys", "team_id", id, &st);
    json_t *mem = fetch_all(c, "team_membership", "team_id", id, &st);
    a->out = json_pack("{s:s, s:o, s:o, s:o}", "team_id", id, "team_info", row, "keys", keys,
                       "team_memberships", mem);
    return st;
}

static int op_team_update(gw_store_conn_t *c, admin_req_t *a)
{
    return update_entity(c, a, &E_TEAM, &a->out);
}

static int op_team_delete(gw_store_conn_t *c, admin_req_t *a)
{
    return delete_entities(c, a, &E_TEAM, "team_ids", "deleted_teams");
}

/*
 * A team member's limits (LiteLLM: `max_budget_in_team`, and on /team/member_update also
 * `rpm_limit` / `tpm_limit`) live in a budgets row that team_membership.budget_id points to:
 * created and linked on first use, updated afterwards. Nothing happens when the request sets none
 * of them. A null clears that limit.
 */
static const field_t member_budget_fields[] = {
    {"max_budget_in_team", F_MONEY},
    {"rpm_limit", F_INT},
    {"tpm_limit", F_INT},
};

static int member_budget(gw_store_conn_t *c, admin_req_t *a, const char *uid, const char *team_id)
{
    colset_t cs;
    cs_init(&cs);
    int st = take_fields(a, member_budget_fields, NF(member_budget_fields), &cs);
    if (st != GW_STORE_OK || cs.n == 0) {
        cs_free(&cs);
        return st;
    }
    for (size_t i = 0; i < cs.n; i++)
        if (strcmp(cs.col[i], "max_budget_in_team") == 0)
            cs.col[i] = "max_budget";
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(uid), GW_P_TEXT(team_id)};
    st = gw_store_query(c, "SELECT budget_id FROM team_membership WHERE user_id = $1 AND team_id = $2", p, 2,
                        &rows);
    const char *have = json_string_value(json_object_get(json_array_get(rows, 0), "budget_id"));
    char bid[37];
    snprintf(bid, sizeof(bid), "%s", have != NULL ? have : "");
    json_decref(rows);
    if (st == GW_STORE_OK && bid[0] != '\0') {
        int64_t changed = 0;
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = update_row(c, "budgets", "budget_id", bid, &cs, &changed);
    } else if (st == GW_STORE_OK) {
        random_id(bid);
        cs_add(&cs, "budget_id", GW_P_TEXT(bid));
        cs_add(&cs, "created_at", GW_P_TEXT(a->now));
        cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
        st = insert_row(c, "budgets", &cs);
        gw_store_param_t q[] = {GW_P_TEXT(bid), GW_P_TEXT(uid), GW_P_TEXT(team_id)};
        if (st == GW_STORE_OK)
            st = gw_store_exec(
                c, "UPDATE team_membership SET budget_id = $1 WHERE user_id = $2 AND team_id = $3", q, 3,
                NULL);
    }
    cs_free(&cs);
    return st == GW_STORE_OK ? note(c, a, "budget", bid) : st;
}

/* Adds one member {role, user_id} to the team row's members_with_roles and the membership table. */
static int add_member(gw_store_conn_t *c, admin_req_t *a, const char *team_id, json_t *members, json_t *m,
                      json_t *updated)
{
    const char *uid = json_string_value(json_object_get(m, "user_id"));
    const char *role = json_string_value(json_object_get(m, "role"));
    if (uid == NULL)
        return client_error(a, 400, "member.user_id is required");
    size_t i;
    json_t *v;
    json_array_foreach(
        members, i,
        v) if (json_equal(json_object_get(v, "user_id"),
                          json_object_get(m, "user_id"))) return client_error(a, 400,
                                                                              "user %.100s is already a "
                                                                              "member of team %.100s",
                                                                              uid, team_id);
    json_array_append_new(members, json_pack("{s:s, s:s}", "role", role ? role : "user", "user_id", uid));
    char mid[300];
    snprintf(mid, sizeof(mid), "%s/%s", uid, team_id);
    gw_store_param_t p[] = {GW_P_TEXT(uid), GW_P_TEXT(team_id)}, pu[] = {GW_P_TEXT(uid), GW_P_TEXT(a->now)};
    int st = gw_store_exec(
        c, "INSERT INTO team_membership (user_id, team_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", p, 2,
        NULL);
    if (st == GW_STORE_OK) /* the user row, created when missing (LiteLLM does the same) */
        st = gw_store_exec(c,
                           "INSERT INTO users (user_id, created_at, updated_at) VALUES ($1, $2, $2) "
                           "ON CONFLICT (user_id) DO NOTHING",
                           pu, 2, NULL);
    json_t *user = st == GW_STORE_OK ? fetch_one(c, "users", "user_id", uid, &st) : NULL;
    if (user != NULL) {
        json_t *teams = json_object_get(user, "teams");
        if (!json_is_array(teams))
            json_object_set_new(user, "teams", teams = json_array());
        json_array_append_new(teams, json_string(team_id));
        gw_store_param_t q[] = {GW_P_JSON(teams), GW_P_TEXT(uid)};
        st = gw_store_exec(c, "UPDATE users SET teams = $1 WHERE user_id = $2", q, 2, NULL);
        json_array_append_new(updated, user);
    }
    if (st == GW_STORE_OK)
        st = member_budget(c, a, uid, team_id);
    if (st == GW_STORE_OK)
        st = note(c, a, "team_membership", mid);
    if (st == GW_STORE_OK)
        st = note(c, a, "user", uid);
    return st;
}

static int op_team_member_add(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "team_id");
    json_t *member = json_object_get(a->in, "member");
    if (id == NULL || member == NULL)
        return client_error(a, 400, "team_id and member are required");
    int st;
    json_t *team = fetch_one(c, "teams", "team_id", id, &st);
    if (team == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Team %.100s not found", id);
    a->out = team;
    json_t *members = json_object_get(team, "members_with_roles");
    if (!json_is_array(members))
        json_object_set_new(team, "members_with_roles", members = json_array());
    json_t *updated = json_array();
    json_object_set_new(team, "updated_users", updated);
    if (json_is_array(member)) {
        size_t i;
        json_t *m;
        json_array_foreach(member, i,
                           m) if ((st = add_member(c, a, id, members, m, updated)) != GW_STORE_OK) return st;
    } else if ((st = add_member(c, a, id, members, member, updated)) != GW_STORE_OK) {
        return st;
    }
    gw_store_param_t p[] = {GW_P_JSON(members), GW_P_TEXT(a->now), GW_P_TEXT(id)};
    if ((st = gw_store_exec(c, "UPDATE teams SET members_with_roles = $1, updated_at = $2 WHERE team_id = $3",
                            p, 3, NULL)) != GW_STORE_OK)
        return st;
    return note(c, a, "team", id);
}

/* POST {team_id, user_id, max_budget_in_team?, rpm_limit?, tpm_limit?, role?}: LiteLLM's
 * TeamMemberUpdateResponse {team_id, user_id, user_email, max_budget_in_team}. */
static int op_team_member_update(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "team_id"), *uid = in_str(a, "user_id");
    if (id == NULL || uid == NULL)
        return client_error(a, 400, "team_id and user_id are required");
    int st;
    json_t *team = fetch_one(c, "teams", "team_id", id, &st);
    if (team == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Team %.100s not found", id);
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(uid), GW_P_TEXT(id)};
    st = gw_store_query(c, "SELECT user_id FROM team_membership WHERE user_id = $1 AND team_id = $2", p, 2,
                        &rows);
    size_t found = json_array_size(rows);
    json_decref(rows);
    if (st == GW_STORE_OK && found == 0)
        st = client_error(a, 400, "User %.100s is not a member of team %.100s", uid, id);
    const char *role = in_str(a, "role");
    json_t *members = json_object_get(team, "members_with_roles");
    if (st == GW_STORE_OK && role != NULL && json_is_array(members)) {
        size_t i;
        json_t *m;
        json_array_foreach(
            members, i, m) if (json_equal(json_object_get(m, "user_id"), json_object_get(a->in, "user_id")))
            json_object_set_new(m, "role", json_string(role));
        gw_store_param_t q[] = {GW_P_JSON(members), GW_P_TEXT(a->now), GW_P_TEXT(id)};
        st = gw_store_exec(c, "UPDATE teams SET members_with_roles = $1, updated_at = $2 WHERE team_id = $3",
                           q, 3, NULL);
    }
    json_decref(team);
    if (st == GW_STORE_OK)
        st = member_budget(c, a, uid, id);
    char mid[300];
    snprintf(mid, sizeof(mid), "%s/%s", uid, id);
    if (st == GW_STORE_OK)
        st = note(c, a, "team_membership", mid);
    if (st == GW_STORE_OK)
        st = note(c, a, "team", id);
    if (st != GW_STORE_OK)
        return st;
    json_t *mb = json_object_get(a->in, "max_budget_in_team");
    a->out = json_pack("{s:s, s:s, s:O, s:O}", "team_id", id, "user_id", uid, "user_email",
                       json_object_get(a->in, "user_email") ?: json_null(), "max_budget_in_team",
                       mb != NULL ? mb : json_null());
    return GW_STORE_OK;
}

/* Customers and organizations keep their limits in a budgets row (LiteLLM's litellm_budget_table). */
static int has_budget_fields(const admin_req_t *a)
{
    for (size_t i = 0; i < NF(budget_fields); i++)
        if (json_object_get(a->in, budget_fields[i].name) != NULL)
            return 1;
    return 0;
}

/* Creates or updates the budget row that row (a customer or organization) points at. */
static int attach_budget(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, const char *id, json_t *row)
{
    int st = GW_STORE_OK;
    const char *bid = json_string_value(json_object_get(row, "budget_id"));
    char gen[37];
    if (has_budget_fields(a)) {
        colset_t cs;
        cs_init(&cs);
        int64_t changed = 0;
        st = take_fields(a, budget_fields, NF(budget_fields), &cs);
        if (st == GW_STORE_OK && bid != NULL) {
            cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
            st = update_row(c, "budgets", "budget_id", bid, &cs, &changed);
        } else if (st == GW_STORE_OK) {
            random_id(gen);
            bid = gen;
            cs_add(&cs, "budget_id", GW_P_TEXT(bid));
            cs_add(&cs, "created_at", GW_P_TEXT(a->now));
            cs_add(&cs, "updated_at", GW_P_TEXT(a->now));
            st = insert_row(c, "budgets", &cs);
            char sql[256];
            snprintf(sql, sizeof(sql), "UPDATE %s SET budget_id = $1 WHERE %s = $2", e->table, e->idcol);
            gw_store_param_t p[] = {GW_P_TEXT(bid), GW_P_TEXT(id)};
            if (st == GW_STORE_OK)
                st = gw_store_exec(c, sql, p, 2, NULL);
            json_object_set_new(row, "budget_id", json_string(bid));
        }
        cs_free(&cs);
        if (st == GW_STORE_OK)
            st = note(c, a, "budget", bid);
    }
    json_t *budget = bid != NULL && st == GW_STORE_OK ? fetch_one(c, "budgets", "budget_id", bid, &st) : NULL;
    json_object_set_new(row, "litellm_budget_table", budget != NULL ? budget : json_null());
    return st;
}

static int op_customer_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    if (in_str(a, "user_id") == NULL)
        return client_error(a, 400, "user_id is required");
    int st = create_entity(c, a, &E_CUSTOMER, id, &a->out);
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_CUSTOMER, id, a->out);
}

static int op_customer_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "end_user_id");
    if (id == NULL)
        id = in_str(a, "user_id");
    if (id == NULL)
        return client_error(a, 400, "end_user_id is required");
    int st;
    json_t *row = fetch_one(c, "end_users", "user_id", id, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "End User Id=%.100s does not exist in db", id);
    a->out = row;
    return attach_budget(c, a, &E_CUSTOMER, id, row);
}

static int op_customer_update(gw_store_conn_t *c, admin_req_t *a)
{
    int st = update_entity(c, a, &E_CUSTOMER, &a->out);
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_CUSTOMER, in_str(a, "user_id"), a->out);
}

static int op_customer_delete(gw_store_conn_t *c, admin_req_t *a)
{
    return delete_entities(c, a, &E_CUSTOMER, "user_ids", "deleted_customers");
}

static int op_budget_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    return create_entity(c, a, &E_BUDGET, id, &a->out);
}

/* POST {"budgets": [ids]} (LiteLLM) or GET ?budget_id=… */
static int op_budget_info(gw_store_conn_t *c, admin_req_t *a)
{
    json_t *ids = json_object_get(a->in, "budgets");
    const char *one = in_str(a, "budget_id");
    if (!json_is_array(ids) && one == NULL)
        return client_error(a, 400, "budgets (a list of budget ids) is required");
    json_t *out = json_array();
    a->out = out;
    size_t i;
    json_t *v;
    int st = GW_STORE_OK;
    json_array_foreach(ids, i, v)
    {
        json_t *r =
            json_is_string(v) ? fetch_one(c, "budgets", "budget_id", json_string_value(v), &st) : NULL;
        if (r != NULL)
            json_array_append_new(out, r);
    }
    if (one != NULL) {
        json_t *r = fetch_one(c, "budgets", "budget_id", one, &st);
        if (r != NULL)
            json_array_append_new(out, r);
    }
    if (st == GW_STORE_OK && json_array_size(out) == 0)
        return client_error(a, 404, "budget not found");
    return st;
}

static int op_org_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    if (in_str(a, "organization_alias") == NULL)
        return client_error(a, 400, "organization_alias is required");
    int st = create_entity(c, a, &E_ORG, id, &a->out);
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_ORG, id, a->out);
}

static int op_org_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "organization_id");
    if (id == NULL)
        return client_error(a, 400, "organization_id is required");
    int st;
    json_t *row = fetch_one(c, "organizations", "organization_id", id, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Organization %.100s not found", id);
    a->out = row;
    json_object_set_new(row, "teams", fetch_all(c, "teams", "organization_id", id, &st));
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_ORG, id, row);
}

static const admin_op_t ops[] = {
    {"/key/generate", op_key_generate},
    {"/key/info", op_key_info},
    {"/key/update", op_key_update},
    {"/key/delete", op_key_delete},
    {"/key/regenerate", op_key_regenerate},
    {"/key/list", op_key_list},
    {"/key/block", op_key_block},
    {"/key/unblock", op_key_unblock},
    {"/user/new", op_user_new},
    {"/user/info", op_user_info},
    {"/user/update", op_user_update},
    {"/user/delete", op_user_delete},
    {"/team/new", op_team_new},
    {"/team/info", op_team_info},
    {"/team/update", op_team_update},
    {"/team/delete", op_team_delete},
    {"/team/member_add", op_team_member_add},
    {"/team/member_update", op_team_member_update},
    {"/customer/new", op_customer_new},
    {"/customer/info", op_customer_info},
    {"/customer/update", op_customer_update},
    {"/customer/delete", op_customer_delete},
    {"/end_user/new", op_customer_new},
    {"/end_user/info", op_customer_info},
    {"/budget/new", op_budget_new},
    {"/budget/info", op_budget_info},
    {"/organization/new", op_org_new},
    {"/organization/info", op_org_info},
};

size_t gw_admin_n_routes(void)
{
    return sizeof(ops) / sizeof(ops[0]);
}

const char *gw_admin_route_path(size_t i)
{
    return i < gw_admin_n_routes() ? ops[i].path : NULL;
}

/* ---- the request side ---------------------------------------------------------------------- */

static void reply_admin_error(gw_reqctx_t *rc, int status, const char *message)
{
    const char *type = status == 401   ? "auth_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "api_error"
                                       : "bad_request_error";
    char code[16]; /* an int always fits */
    snprintf(code, sizeof(code), "%d", status);
    json_t *body = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", message, "type", type, "param",
                             "code", code);
    char *text = json_dumps(body, JSON_COMPACT);
    const char *reason = status == 400   ? "Bad Request"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                         : status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
    if (rc->error == NULL)
        rc->error = "admin_error";
    gw_reply_json(rc->req, status, reason, text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    json_decref(body);
}

static int job_admin_tx(gw_store_conn_t *c, void *ud)
{
    admin_req_t *a = ud;
    return a->op->fn(c, a);
}

static int job_admin(gw_store_conn_t *c, void *ud)
{
    return gw_store_tx(c, job_admin_tx, ud);
}

static void admin_free(admin_req_t *a)
{
    json_decref(a->in);
    json_decref(a->out);
    json_decref(a->changes);
    free(a);
}

static void on_admin_done(void *ud, int status, const char *err)
{
    admin_req_t *a = ud;
    gw_keys_job_done(a->w);
    if (status == GW_STORE_OK) { /* committed: every worker of this instance forgets at once */
        size_t i;
        json_t *ch;
        json_array_foreach(a->changes, i, ch) gw_keys_broadcast(
            a->w->server, json_string_value(json_array_get(ch, 0)), json_string_value(json_array_get(ch, 1)));
    }
    gw_reqctx_t *rc = a->rc;
    if (rc != NULL) {
        *a->slot = NULL;
        if (status == GW_STORE_OK) {
            char *text = json_dumps(a->out != NULL ? a->out : json_null(),
                                    JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
            gw_reply_json(rc->req, 200, "OK", text ? text : "{}", text ? strlen(text) : 2);
            free(text);
        } else if (status == CLIENT_ERROR) {
            reply_admin_error(rc, a->status, a->msg);
        } else if (status == GW_STORE_UNAVAILABLE || status == GW_STORE_BUSY || status == GW_STORE_CLOSED) {
            reply_admin_error(rc, 503, "the database is unavailable; retry later");
        } else if (status == GW_STORE_CONSTRAINT) {
            reply_admin_error(rc, 400, "the request conflicts with existing data (a unique field is taken)");
        } else {
            fprintf(stderr, "{\"level\":\"error\",\"msg\":\"admin\",\"path\":\"%s\",\"status\":\"%s\"}\n",
                    a->op->path, gw_store_status_name(status));
            reply_admin_error(rc, 500, "internal error in the database");
        }
    }
    admin_free(a);
}

static void on_slot_dispose(void *p)
{
    admin_req_t **slot = p;
    if (*slot != NULL)
        (*slot)->rc = NULL; /* the client left: the completion must not reply */
}

/* Query string "a=b&c=d" into obj (percent-decoded), without overwriting body fields. */
static void add_query(json_t *obj, h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        if (amp == NULL)
            amp = end;
        const char *eq = memchr(q, '=', (size_t)(amp - q));
        if (eq != NULL && eq > q && amp - eq <= 1024 && eq - q < 64) {
            char name[64], val[1025];
            snprintf(name, sizeof(name), "%.*s", (int)(eq - q), q);
            size_t o = 0;
            for (const char *s = eq + 1; s < amp; s++) {
                if (*s == '%' && amp - s >= 3) {
                    char hx[3] = {s[1], s[2], 0};
                    val[o++] = (char)strtol(hx, NULL, 16);
                    s += 2;
                } else {
                    val[o++] = *s == '+' ? ' ' : *s;
                }
            }
            val[o] = '\0';
            if (json_object_get(obj, name) == NULL && strlen(val) == o)
                json_object_set_new(obj, name, json_string(val));
        }
        q = amp + 1;
    }
}

static void admin_continue(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    if (!rc->is_admin) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "Only proxy admin can be used to generate, delete, update info for new keys/users/teams. "
                 "Route=%s",
                 ops[rc->auth_arg].path);
        rc->error = "not_admin";
        return reply_admin_error(rc, 401, msg);
    }
    if (rc->w->server->store == NULL)
        return reply_admin_error(rc, 503, "no database configured");
    json_t *in = NULL;
    if (req->entity.base != NULL && req->entity.len > 0) {
        json_error_t je;
        if (req->entity.len > MAX_ADMIN_BODY)
            return reply_admin_error(rc, 400, "request body too large");
        in = json_loadb(req->entity.base, req->entity.len, 0, &je);
        if (!json_is_object(in)) {
            json_decref(in);
            return reply_admin_error(rc, 400, "request body must be a JSON object");
        }
    } else {
        in = json_object();
    }
    add_query(in, req);
    admin_req_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        json_decref(in);
        return reply_admin_error(rc, 500, "out of memory");
    }
    a->w = rc->w;
    a->rc = rc;
    a->op = &ops[rc->auth_arg];
    a->in = in;
    a->changes = json_array();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a->now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    gw_store_time_iso(a->now_ms, a->now);
    a->slot = h2o_mem_alloc_shared(&req->pool, sizeof(*a->slot), on_slot_dispose);
    *a->slot = a;
    if (gw_keys_submit(rc->w, job_admin, on_admin_done, a) != 0) {
        *a->slot = NULL;
        admin_free(a);
        return reply_admin_error(rc, 503, "the database queue is full; retry later");
    }
}

int gw_admin_handle(gw_reqctx_t *rc, size_t route)
{
    rc->auth_arg = (int)route;
    if (gw_request_authenticate(rc, admin_continue) == 0)
        admin_continue(rc);
    return 0;
}

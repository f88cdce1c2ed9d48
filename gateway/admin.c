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

#include "gateway/endusers.h"
#include "gateway/errors.h"
#include "gateway/keys.h"
#include "gateway/models.h"
#include "gateway/pricing.h"
#include "gateway/server.h"
#include "gateway/store.h"

#define MAX_ADMIN_BODY (1u << 20)
#define MAX_COLS 40
#define CLIENT_ERROR 1 /* an operation's status for "the client's mistake": roll back, reply a->status */

typedef struct admin_req admin_req_t;
typedef int (*admin_fn)(gw_store_conn_t *c, admin_req_t *a);

/* Who may call an operation besides the master key and proxy_admin users (LiteLLM's rules). */
enum {
    OP_READ = 1,    /* a proxy_admin_viewer user's key too (read-only operations) */
    OP_SELF = 2,    /* any virtual key: the operation answers only about the caller's own key/user/team */
    OP_SUBPATH = 4, /* the path goes on: /key/<key>/regenerate */
    OP_OWN = 8,     /* an internal_user's key too, on its own user's keys (a team's keys only as that
                     * team's admin): LiteLLM's self-serve keys */
};

typedef struct admin_op {
    const char *path;
    admin_fn fn;
    unsigned flags;
} admin_op_t;

struct admin_req {
    gw_worker_t *w;
    gw_reqctx_t *rc;    /* NULL once the client has left */
    admin_req_t **slot; /* in the request pool: points back here until the reply */
    const admin_op_t *op;
    json_t *in;      /* body and query parameters */
    json_t *out;     /* response body */
    json_t *changes; /* [[kind, id], …] to broadcast after the commit */
    int admin_view;  /* master key, proxy_admin, or (OP_READ) proxy_admin_viewer: sees everything */
    json_t *caller;  /* the calling virtual key {token, user_id, team_id, user_role}; NULL: master key */
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

/* A field of the calling key (non-admin callers of OP_SELF operations); NULL when absent. */
static const char *caller_str(const admin_req_t *a, const char *name)
{
    return json_string_value(json_object_get(a->caller, name));
}

/* The caller's role as LiteLLM prints it in refusals ("None" for a key without a user). */
static const char *caller_role(const admin_req_t *a)
{
    const char *r = caller_str(a, "user_role");
    return r != NULL ? r : "None";
}

static int same(const char *x, const char *y)
{
    return x != NULL && y != NULL && strcmp(x, y) == 0;
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
            /* the first period ends one budget period from now, with the length the limiter and
             * the reset job use (months = 30 days: keys.h gw_duration_budget_ms) */
            gw_duration_t d = {gw_duration_budget_ms(json_string_value(v)) / 1000, 0};
            const char *at;
            if (!json_is_string(v) || d.seconds <= 0 || (at = time_after(a, cs, &d)) == NULL)
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

/* The row's money columns (and model_spend's amounts) as dollars (LiteLLM's floats). */
static json_t *api_row(json_t *row)
{
    static const char *money[] = {"spend", "max_budget", "soft_budget"};
    for (size_t i = 0; i < sizeof(money) / sizeof(money[0]); i++) {
        json_t *v = json_object_get(row, money[i]);
        if (json_is_integer(v))
            json_object_set_new(row, money[i], json_real((double)json_integer_value(v) / 1e6));
    }
    /* model_spend holds micro-dollars per model (schema/), written by import-litellm */
    const char *model;
    json_t *v;
    json_object_foreach(json_object_get(row, "model_spend"), model, v)
    {
        if (json_is_integer(v))
            json_object_set_new(json_object_get(row, "model_spend"), model,
                                json_real((double)json_integer_value(v) / 1e6));
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

#define MAX_CUSTOM_KEY 256

/*
 * The key to store: the one the request names (LiteLLM lets /key/generate set `key` and
 * /key/regenerate `new_key` themselves) or a new random one written to gen. CLIENT_ERROR for a
 * key LiteLLM would refuse (not "sk-…"), or one that is the master key.
 */
static int pick_key(gw_store_conn_t *c, admin_req_t *a, const char *given, char gen[GW_KEY_LEN + 1],
                    const char **key)
{
    if (given == NULL) {
        if (gw_key_generate(gen) != 0)
            return gw_store_fail(c, GW_STORE_ERROR, "no entropy for a new key");
        *key = gen;
        return GW_STORE_OK;
    }
    size_t n = strlen(given);
    if (n < 8 || n > MAX_CUSTOM_KEY || strncmp(given, "sk-", 3) != 0)
        return client_error(
            a, 400, "Invalid key format. LiteLLM Virtual Key must start with 'sk-' (8 to %d characters).",
            MAX_CUSTOM_KEY);
    const char *master = a->w->server->cfg->master_key;
    if (master != NULL && strcmp(master, given) == 0)
        return client_error(a, 400, "Invalid key format. A virtual key cannot be the master key.");
    *key = given;
    return GW_STORE_OK;
}

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
    char gen[GW_KEY_LEN + 1], token[GW_KEY_HASH_LEN + 1], name[32];
    const char *key;
    int picked = pick_key(c, a, user_id == NULL ? in_str(a, "key") : NULL, gen, &key);
    if (picked != GW_STORE_OK)
        return picked;
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
        return client_error(a, 400, "a key with this key_alias (or this key) already exists");
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

/* ---- self-serve keys (OP_OWN): what an internal_user's key may do ---------------------------- */

/* 1 when the (non-admin) caller's user is an admin of team id (its members_with_roles). */
static int caller_team_admin(gw_store_conn_t *c, admin_req_t *a, const char *id, int *st)
{
    const char *me = caller_str(a, "user_id");
    json_t *team = me != NULL ? fetch_one(c, "teams", "team_id", id, st) : NULL;
    int is = 0;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(team, "members_with_roles"), i, m)
    {
        is |= same(json_string_value(json_object_get(m, "user_id")), me) &&
              same(json_string_value(json_object_get(m, "role")), "admin");
    }
    json_decref(team);
    return is;
}

/* A non-admin may name itself as the owner, and a team only as its admin. */
static int own_fields(gw_store_conn_t *c, admin_req_t *a)
{
    if (a->admin_view)
        return GW_STORE_OK;
    const char *me = caller_str(a, "user_id"), *uid = in_str(a, "user_id"), *tid = in_str(a, "team_id");
    int st = GW_STORE_OK;
    static const char *const admin_only[] = {"blocked", "spend", "budget_id", "organization_id"};
    for (size_t i = 0; i < sizeof(admin_only) / sizeof(admin_only[0]); i++)
        if (json_object_get(a->in, admin_only[i]) != NULL)
            return client_error(a, 403, "Only proxy admins can set %s on a key. Your role=%.40s",
                                admin_only[i], caller_role(a));
    if (json_object_get(a->in, "user_id") != NULL && !same(uid, me))
        return client_error(a, 403,
                            "User can only create keys for themselves. Got user_id=%.100s, Your ID=%.100s",
                            uid != NULL ? uid : "None", me);
    if (tid != NULL && !caller_team_admin(c, a, tid, &st))
        return st != GW_STORE_OK
                   ? st
                   : client_error(a, 403,
                                  "Only team admins can manage the keys of team %.100s. Your role=%.40s", tid,
                                  caller_role(a));
    return GW_STORE_OK;
}

/* A non-admin's right to the key whose token is given: its own user's key, or a team key of a
 * team it admins. A key that does not exist passes (the operation answers 404). */
static int own_key(gw_store_conn_t *c, admin_req_t *a, const char *token)
{
    if (a->admin_view)
        return GW_STORE_OK;
    int st = GW_STORE_OK;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st;
    const char *tid = json_string_value(json_object_get(row, "team_id"));
    int ok = tid != NULL ? caller_team_admin(c, a, tid, &st)
                         : same(json_string_value(json_object_get(row, "user_id")), caller_str(a, "user_id"));
    json_decref(row);
    if (st != GW_STORE_OK)
        return st;
    return ok ? GW_STORE_OK
              : client_error(
                    a, 403, "You can only manage your own keys (a team's keys as its admin). Your role=%.40s",
                    caller_role(a));
}

static int op_key_generate(gw_store_conn_t *c, admin_req_t *a)
{
    int st = own_fields(c, a);
    if (st == GW_STORE_OK && !a->admin_view && json_object_get(a->in, "user_id") == NULL)
        json_object_set_new(a->in, "user_id", json_string(caller_str(a, "user_id"))); /* their own */
    if (st == GW_STORE_OK)
        st = fold_model_limits(c, a, NULL);
    return st != GW_STORE_OK ? st : create_key(c, a, NULL, &a->out);
}

/* The token the request names in `key` (a key or its hash). */
static int named_token(admin_req_t *a, char token[GW_KEY_HASH_LEN + 1])
{
    if (gw_key_token_of(in_str(a, "key"), token) != 0)
        return client_error(a, 400, "key is required");
    return GW_STORE_OK;
}

/*
 * GET /key/info?key=… — LiteLLM's rules: an admin sees any key; any other key sees itself (no
 * `key`: the calling key) and the keys of its own user; anything else is 403.
 */
static int op_key_info(gw_store_conn_t *c, admin_req_t *a)
{
    char token[GW_KEY_HASH_LEN + 1];
    const char *named = in_str(a, "key");
    int st = GW_STORE_OK;
    if (named == NULL && caller_str(a, "token") != NULL)
        snprintf(token, sizeof(token), "%s", caller_str(a, "token"));
    else if ((st = named_token(a, token)) != GW_STORE_OK)
        return st;
    json_t *row = fetch_one(c, "keys", "token", token, &st);
    if (row == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Key not found in database");
    if (!a->admin_view && !same(token, caller_str(a, "token")) &&
        !same(json_string_value(json_object_get(row, "user_id")), caller_str(a, "user_id"))) {
        json_decref(row);
        return client_error(a, 403, "You are not allowed to access this key's info. Your role=%.40s",
                            caller_role(a));
    }
    a->out = json_pack("{s:s, s:o}", "key", named != NULL ? named : token, "info", row);
    return GW_STORE_OK;
}

/* POST /key/health: LiteLLM checks the key's logging callbacks; a Tollgate key has none of its own. */
static int op_key_health(gw_store_conn_t *c, admin_req_t *a)
{
    (void)c;
    a->out = json_pack("{s:s, s:n}", "key", "healthy", "logging_callbacks");
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
    if (st == GW_STORE_OK)
        st = own_key(c, a, token);
    if (st == GW_STORE_OK)
        st = own_fields(c, a);
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
        if ((st = own_key(c, a, token)) != GW_STORE_OK)
            return st;
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
        st = own_key(c, a, token);
        if (st == GW_STORE_OK)
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
    char old[GW_KEY_HASH_LEN + 1], gen[GW_KEY_LEN + 1], token[GW_KEY_HASH_LEN + 1], name[32];
    const char *key;
    int st = named_token(a, old);
    if (st == GW_STORE_OK)
        st = own_key(c, a, old);
    if (st == GW_STORE_OK)
        st = own_fields(c, a);
    if (st == GW_STORE_OK)
        st = pick_key(c, a, in_str(a, "new_key"), gen, &key);
    if (st != GW_STORE_OK)
        return st;
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

/*
 * A non-admin caller of /key/list sees its own user's keys only (LiteLLM's validate_key_list_check):
 * the key must belong to an existing user, and filters naming another user, a team the user is
 * not in, or another organization are 403. On success *user_id is the caller's user.
 */
static int key_list_scope(gw_store_conn_t *c, admin_req_t *a, const char **user_id)
{
    const char *me = caller_str(a, "user_id"), *team = in_str(a, "team_id"),
               *org = in_str(a, "organization_id");
    json_t *rows = NULL;
    int st = GW_STORE_OK;
    if (me != NULL) {
        gw_store_param_t p[] = {GW_P_TEXT(me)};
        st = gw_store_query(c, "SELECT teams, organization_id FROM users WHERE user_id = $1", p, 1, &rows);
    }
    json_t *user = json_array_get(rows, 0);
    if (st == GW_STORE_OK && user == NULL)
        st = client_error(
            a, 403,
            "You are not authorized to access this endpoint. No 'user_id' is associated with your "
            "API key.");
    else if (st == GW_STORE_OK && *user_id != NULL && strcmp(*user_id, me) != 0)
        st = client_error(a, 403, "You are not authorized to check another user's keys");
    if (st == GW_STORE_OK && team != NULL) {
        int member = 0;
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(user, "teams"), i, t) member |= same(json_string_value(t), team);
        if (!member)
            st = client_error(a, 403, "You are not authorized to check this team's keys");
    }
    if (st == GW_STORE_OK && org != NULL &&
        !same(org, json_string_value(json_object_get(user, "organization_id"))))
        st = client_error(a, 403, "You are not authorized to check this organization's keys");
    json_decref(rows);
    *user_id = me;
    return st;
}

static int op_key_list(gw_store_conn_t *c, admin_req_t *a)
{
    int64_t page = in_int(a, "page", 1, 1, 1000000), size = in_int(a, "size", 10, 1, 100);
    int full = in_bool(a, "return_full_object", 0);
    const char *user_id = in_str(a, "user_id");
    int st = a->admin_view ? GW_STORE_OK : key_list_scope(c, a, &user_id);
    if (st != GW_STORE_OK)
        return st;
    const char *where =
        "WHERE (CAST($1 AS TEXT) IS NULL OR user_id = $1) AND (CAST($2 AS TEXT) IS NULL OR "
        "team_id = $2) AND (CAST($3 AS TEXT) IS NULL OR key_alias = $3) AND (CAST($4 AS TEXT) "
        "IS NULL OR organization_id = $4)";
    gw_store_param_t p[] = {GW_P_TEXT(user_id),
                            GW_P_TEXT(in_str(a, "team_id")),
                            GW_P_TEXT(in_str(a, "key_alias")),
                            GW_P_TEXT(in_str(a, "organization_id")),
                            GW_P_INT(size),
                            GW_P_INT((page - 1) * size)};
    char sql[512];
    json_t *rows = NULL, *count = NULL;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM keys %s", where);
    st = gw_store_query(c, sql, p, 4, &count);
    if (st != GW_STORE_OK)
        return st;
    int64_t total = json_integer_value(json_object_get(json_array_get(count, 0), "n"));
    json_decref(count);
    /* newest first, as LiteLLM lists them */
    snprintf(sql, sizeof(sql),
             "SELECT * FROM keys %s ORDER BY created_at DESC, token DESC LIMIT $5 OFFSET $6", where);
    if ((st = gw_store_query(c, sql, p, 6, &rows)) != GW_STORE_OK)
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

_Static_assert(GW_EUCACHE_ID_MAX >= 128,
               "every customer id create_entity accepts must fit the end-user cache");

/* INSERT of an entity from the request; the id is the request's or a new UUID. */
static int create_entity(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, char id[128], json_t **row)
{
    const char *given = in_str(a, e->param);
    char gen[37];
    if (given != NULL && (given[0] == '\0' || strlen(given) >= 128)) /* never stored truncated */
        return client_error(a, 400, "%s must be 1 to 127 bytes long", e->param);
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
    if (st == GW_STORE_CONSTRAINT && e == &E_CUSTOMER)
        return client_error(a, 400,
                            "Customer already exists, passed user_id=%.100s. Please pass a new user_id.", id);
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
    if (changed == 0 && e == &E_CUSTOMER)
        return client_error(a, 404, "End User Id=%.100s does not exist in db", id);
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

static int team_add(gw_store_conn_t *c, admin_req_t *a, const char *id, json_t *member, json_t **out,
                    int member_limits);

static int op_user_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    json_t *row = NULL, *key = NULL;
    int st = create_entity(c, a, &E_USER, id, &row);
    if (st != GW_STORE_OK)
        return st;
    a->out = row;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(a->in, "teams"), i, t)
    { /* LiteLLM adds the new user to each team that exists, as a member with role "user" */
        json_t *team = NULL, *m = json_pack("{s:s, s:s}", "user_id", id, "role", "user");
        json_t *exists =
            json_is_string(t) ? fetch_one(c, "teams", "team_id", json_string_value(t), &st) : NULL;
        if (exists != NULL)
            st = team_add(c, a, json_string_value(t), m, &team, 0);
        json_decref(exists);
        json_decref(team);
        json_decref(m);
        if (st != GW_STORE_OK)
            return st;
    }
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

#define MAX_ADMIN_VIEW_ROWS 10000

static int user_info_all(gw_store_conn_t *c, admin_req_t *a)
{
    json_t *keys = NULL, *teams = NULL;
    gw_store_param_t p[] = {GW_P_INT(MAX_ADMIN_VIEW_ROWS)};
    int st =
        gw_store_query(c, "SELECT * FROM keys ORDER BY created_at DESC, token DESC LIMIT $1", p, 1, &keys);
    if (st == GW_STORE_OK)
        st = gw_store_query(c, "SELECT * FROM teams ORDER BY created_at, team_id LIMIT $1", p, 1, &teams);
    size_t i;
    json_t *r;
    json_array_foreach(keys, i, r) api_row(r);
    json_array_foreach(teams, i, r) api_row(r);
    a->out = json_pack("{s:n, s:n, s:o, s:o}", "user_id", "user_info", "keys", keys ? keys : json_array(),
                       "teams", teams ? teams : json_array());
    return st;
}

/* GET /user/info?user_id=… — a non-admin key sees its own user (the default without user_id). */
static int op_user_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "user_id"), *me = caller_str(a, "user_id");
    if (!a->admin_view && id != NULL && !same(id, me))
        return client_error(
            a, 403, "key not allowed to access this user's info. user_id=%.100s, key's user_id=%.100s", id,
            me != NULL ? me : "None");
    if (!a->admin_view && id == NULL && (id = me) == NULL)
        return client_error(
            a, 403,
            "You are not authorized to access this endpoint. No 'user_id' is associated with your "
            "API key.");
    if (id == NULL) /* an admin without user_id: every key and team (LiteLLM's admin view) */
        return user_info_all(c, a);
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

/* LiteLLM answers updates as {"<id name>": id, "data": row}; the row's fields stay at the top
 * level too, for clients that read them there. */
static int answer_update(admin_req_t *a, int st)
{
    if (st == GW_STORE_OK)
        json_object_set_new(a->out, "data", json_deep_copy(a->out));
    return st;
}

/* POST /user/update: the user named by user_id, or (LiteLLM) by user_email when no user_id is given. */
static int op_user_update(gw_store_conn_t *c, admin_req_t *a)
{
    const char *email = in_str(a, "user_email");
    if (in_str(a, "user_id") == NULL && email != NULL) {
        json_t *rows = NULL;
        gw_store_param_t p[] = {GW_P_TEXT(email)};
        int st = gw_store_query(c, "SELECT user_id FROM users WHERE user_email = $1", p, 1, &rows);
        json_t *uid = json_object_get(json_array_get(rows, 0), "user_id");
        if (st == GW_STORE_OK && !json_is_string(uid))
            st = client_error(a, 404, "User with user_email %.100s not found", email);
        if (st == GW_STORE_OK)
            json_object_set(a->in, "user_id", uid);
        json_decref(rows);
        if (st != GW_STORE_OK)
            return st;
    }
    return answer_update(a, update_entity(c, a, &E_USER, &a->out));
}

/* Deletes the keys whose column col ("user_id", "team_id") is id, noting each token. */
static int delete_keys_of(gw_store_conn_t *c, admin_req_t *a, const char *col, const char *id)
{
    char sql[128];
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    snprintf(sql, sizeof(sql), "SELECT token FROM keys WHERE %s = $1", col);
    int st = gw_store_query(c, sql, p, 1, &rows);
    snprintf(sql, sizeof(sql), "DELETE FROM keys WHERE %s = $1", col);
    if (st == GW_STORE_OK)
        st = gw_store_exec(c, sql, p, 1, NULL);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (st == GW_STORE_OK)
            st = note(c, a, "key", json_string_value(json_object_get(r, "token")));
    }
    json_decref(rows);
    return st;
}

/*
 * Ends every membership of user uid in team tid: the membership row, the user's `teams` entry
 * and the team's members_with_roles entry (whichever exist).
 */
static int end_membership(gw_store_conn_t *c, admin_req_t *a, const char *uid, const char *tid)
{
    int st;
    size_t i;
    json_t *v, *kept = json_array();
    json_t *user = fetch_one(c, "users", "user_id", uid, &st);
    json_array_foreach(json_object_get(user, "teams"), i, v) if (!same(json_string_value(v), tid))
        json_array_append(kept, v);
    gw_store_param_t pu[] = {GW_P_JSON(kept), GW_P_TEXT(uid)};
    if (user != NULL && st == GW_STORE_OK)
        st = gw_store_exec(c, "UPDATE users SET teams = $1 WHERE user_id = $2", pu, 2, NULL);
    json_decref(user);
    json_array_clear(kept);
    json_t *team = st == GW_STORE_OK ? fetch_one(c, "teams", "team_id", tid, &st) : NULL;
    json_array_foreach(json_object_get(team, "members_with_roles"), i,
                       v) if (!same(json_string_value(json_object_get(v, "user_id")), uid))
        json_array_append(kept, v);
    gw_store_param_t pt[] = {GW_P_JSON(kept), GW_P_TEXT(tid)};
    if (team != NULL && st == GW_STORE_OK)
        st = gw_store_exec(c, "UPDATE teams SET members_with_roles = $1 WHERE team_id = $2", pt, 2, NULL);
    json_decref(team);
    json_decref(kept);
    char mid[300];
    snprintf(mid, sizeof(mid), "%s/%s", uid, tid);
    gw_store_param_t pm[] = {GW_P_TEXT(uid), GW_P_TEXT(tid)};
    if (st == GW_STORE_OK)
        st = gw_store_exec(c, "DELETE FROM team_membership WHERE user_id = $1 AND team_id = $2", pm, 2, NULL);
    if (st == GW_STORE_OK)
        st = note(c, a, "team_membership", mid);
    if (st == GW_STORE_OK)
        st = note(c, a, "team", tid);
    return st;
}

/* Ends every membership where column col ("user_id" or "team_id") of team_membership is id. */
static int end_memberships_of(gw_store_conn_t *c, admin_req_t *a, const char *col, const char *id)
{
    char sql[128];
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    snprintf(sql, sizeof(sql), "SELECT user_id, team_id FROM team_membership WHERE %s = $1", col);
    int st = gw_store_query(c, sql, p, 1, &rows);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        if (st == GW_STORE_OK)
            st = end_membership(c, a, json_string_value(json_object_get(r, "user_id")),
                                json_string_value(json_object_get(r, "team_id")));
    }
    json_decref(rows);
    return st;
}

/* POST /user/delete: as LiteLLM, the users' keys and team memberships go with them. */
/*
 * GET /user/list?page=&page_size=&role=&user_ids=a,b&user_email=&team= — LiteLLM's answer:
 * {"users": [rows with key_count], "total", "page", "page_size", "total_pages"}; user_email
 * matches a part, case-insensitively.
 */
static int op_user_list(gw_store_conn_t *c, admin_req_t *a)
{
    int64_t page = in_int(a, "page", 1, 1, 1000000), size = in_int(a, "page_size", 25, 1, 100);
    const char *where = "WHERE (CAST($1 AS TEXT) IS NULL OR user_role = $1) AND (CAST($2 AS TEXT) IS NULL OR "
                        "user_id IN (SELECT "
                        "user_id FROM team_membership WHERE team_id = $2)) AND (CAST($3 AS TEXT) IS NULL OR "
                        "LOWER(user_email) "
                        "LIKE '%' || LOWER($3) || '%') AND (CAST($4 AS TEXT) IS NULL OR (',' || $4 || ',') "
                        "LIKE ('%,' || user_id "
                        "|| ',%'))";
    gw_store_param_t p[] = {GW_P_TEXT(in_str(a, "role")),
                            GW_P_TEXT(in_str(a, "team")),
                            GW_P_TEXT(in_str(a, "user_email")),
                            GW_P_TEXT(in_str(a, "user_ids")),
                            GW_P_INT(size),
                            GW_P_INT((page - 1) * size)};
    char sql[1024];
    json_t *rows = NULL, *count = NULL;
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) AS n FROM users %s", where);
    int st = gw_store_query(c, sql, p, 4, &count);
    int64_t total = json_integer_value(json_object_get(json_array_get(count, 0), "n"));
    json_decref(count);
    snprintf(
        sql, sizeof(sql),
        "SELECT users.*, (SELECT COUNT(*) FROM keys k WHERE k.user_id = users.user_id) AS key_count FROM "
        "users %s ORDER BY created_at, user_id LIMIT $5 OFFSET $6",
        where);
    if (st == GW_STORE_OK)
        st = gw_store_query(c, sql, p, 6, &rows);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) api_row(r);
    a->out = json_pack("{s:o, s:I, s:I, s:I, s:I}", "users", rows != NULL ? rows : json_array(), "total",
                       (json_int_t)total, "page", (json_int_t)page, "page_size", (json_int_t)size,
                       "total_pages", (json_int_t)((total + size - 1) / size));
    return st;
}

static int op_user_delete(gw_store_conn_t *c, admin_req_t *a)
{
    size_t i;
    json_t *v;
    int st = GW_STORE_OK;
    json_array_foreach(json_object_get(a->in, "user_ids"), i, v)
    {
        if (json_is_string(v) && st == GW_STORE_OK)
            st = delete_keys_of(c, a, "user_id", json_string_value(v));
        if (json_is_string(v) && st == GW_STORE_OK)
            st = end_memberships_of(c, a, "user_id", json_string_value(v));
    }
    return st != GW_STORE_OK ? st : delete_entities(c, a, &E_USER, "user_ids", "deleted_users");
}

/* POST /team/new: members_with_roles become memberships (team_membership rows, users' teams). */
static int op_team_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    json_t *members = json_object_get(a->in, "members_with_roles");
    if (json_is_array(members) && json_array_size(members) > 0) {
        json_incref(members); /* added below, member by member */
        json_object_del(a->in, "members_with_roles");
    } else {
        members = NULL;
    }
    int st = create_entity(c, a, &E_TEAM, id, &a->out);
    json_t *team = NULL;
    if (st == GW_STORE_OK && members != NULL && (st = team_add(c, a, id, members, &team, 0)) == GW_STORE_OK) {
        json_object_del(team, "updated_users");
        json_decref(a->out);
        a->out = team;
    } else {
        json_decref(team);
    }
    json_decref(members);
    return st;
}

/* 1 when the (non-admin) caller's key belongs to team id or its user is a member of it. */
static int caller_in_team(gw_store_conn_t *c, admin_req_t *a, const char *id, int *st)
{
    if (same(id, caller_str(a, "team_id")))
        return 1;
    const char *me = caller_str(a, "user_id");
    if (me == NULL)
        return 0;
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(me), GW_P_TEXT(id)};
    *st = gw_store_query(c, "SELECT team_id FROM team_membership WHERE user_id = $1 AND team_id = $2", p, 2,
                         &rows);
    int in = json_array_size(rows) > 0;
    json_decref(rows);
    return in;
}

/* GET /team/info?team_id=… — a non-admin key sees its own team (the default) or one its user is in. */
static int op_team_info(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "team_id");
    int st = GW_STORE_OK;
    if (id == NULL && !a->admin_view)
        id = caller_str(a, "team_id");
    if (id == NULL)
        return client_error(a, 400, "team_id is required");
    if (!a->admin_view && !caller_in_team(c, a, id, &st))
        return st != GW_STORE_OK
                   ? st
                   : client_error(a, 403,
                                  "key not allowed to access this team's info. Key team_id=%.100s, "
                                  "Requested team_id=%.100s",
                                  caller_str(a, "team_id") ? caller_str(a, "team_id") : "None", id);
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
    return answer_update(a, update_entity(c, a, &E_TEAM, &a->out));
}

/*
 * GET /team/list?user_id=&organization_id= — every team (at most MAX_ADMIN_VIEW_ROWS), with its
 * keys; user_id keeps the teams that user is a member of. A non-admin key lists its own user's
 * teams only (LiteLLM).
 */
static int op_team_list(gw_store_conn_t *c, admin_req_t *a)
{
    const char *user_id = in_str(a, "user_id"), *me = caller_str(a, "user_id");
    if (!a->admin_view && ((user_id != NULL && !same(user_id, me)) || (user_id = me) == NULL))
        return client_error(a, 403, "Only admin users can query all teams/other teams. Your user role=%.40s",
                            caller_role(a));
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(user_id), GW_P_TEXT(in_str(a, "organization_id")),
                            GW_P_INT(MAX_ADMIN_VIEW_ROWS)};
    int st = gw_store_query(
        c,
        "SELECT * FROM teams WHERE (CAST($1 AS TEXT) IS NULL OR team_id IN (SELECT team_id FROM "
        "team_membership WHERE user_id = $1)) AND (CAST($2 AS TEXT) IS NULL OR organization_id "
        "= $2) ORDER BY created_at, team_id LIMIT $3",
        p, 3, &rows);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        const char *tid = json_string_value(json_object_get(api_row(r), "team_id"));
        if (st == GW_STORE_OK && tid != NULL)
            json_object_set_new(r, "keys", fetch_all(c, "keys", "team_id", tid, &st));
    }
    a->out = rows != NULL ? rows : json_array();
    return st;
}

/* POST /team/delete: as LiteLLM, the teams' keys and memberships go with them. */
static int op_team_delete(gw_store_conn_t *c, admin_req_t *a)
{
    size_t i;
    json_t *v;
    int st = GW_STORE_OK;
    json_array_foreach(json_object_get(a->in, "team_ids"), i, v)
    {
        if (json_is_string(v) && st == GW_STORE_OK)
            st = delete_keys_of(c, a, "team_id", json_string_value(v));
        if (json_is_string(v) && st == GW_STORE_OK)
            st = end_memberships_of(c, a, "team_id", json_string_value(v));
    }
    return st != GW_STORE_OK ? st : delete_entities(c, a, &E_TEAM, "team_ids", "deleted_teams");
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
/* A member named only by user_email (LiteLLM allows it): that user, created when missing. */
static int member_by_email(gw_store_conn_t *c, admin_req_t *a, const char *email, char uid[128])
{
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(email)};
    int st =
        gw_store_query(c, "SELECT user_id FROM users WHERE user_email = $1 ORDER BY created_at", p, 1, &rows);
    const char *found = json_string_value(json_object_get(json_array_get(rows, 0), "user_id"));
    if (st == GW_STORE_OK && found != NULL) {
        snprintf(uid, 128, "%s", found);
    } else if (st == GW_STORE_OK) {
        random_id(uid);
        gw_store_param_t q[] = {GW_P_TEXT(uid), GW_P_TEXT(email), GW_P_TEXT(a->now)};
        st = gw_store_exec(
            c, "INSERT INTO users (user_id, user_email, created_at, updated_at) VALUES ($1, $2, $3, $3)", q,
            3, NULL);
        if (st == GW_STORE_OK)
            st = note(c, a, "user", uid);
    }
    json_decref(rows);
    return st;
}

static int add_member(gw_store_conn_t *c, admin_req_t *a, const char *team_id, json_t *members, json_t *m,
                      json_t *updated, int member_limits)
{
    const char *uid = json_string_value(json_object_get(m, "user_id"));
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *email = json_string_value(json_object_get(m, "user_email"));
    char found[128];
    if (uid == NULL && email == NULL)
        return client_error(a, 400, "member.user_id or member.user_email is required");
    if (uid == NULL) {
        int est = member_by_email(c, a, email, found);
        if (est != GW_STORE_OK)
            return est;
        uid = found;
    }
    size_t i;
    json_t *v;
    json_array_foreach(members, i, v)
    {
        if (same(json_string_value(json_object_get(v, "user_id")), uid))
            return client_error(a, 400, "user %.100s is already a member of team %.100s", uid, team_id);
    }
    json_t *entry = json_pack("{s:s, s:s}", "role", role ? role : "user", "user_id", uid);
    if (email != NULL)
        json_object_set_new(entry, "user_email", json_string(email));
    json_array_append_new(members, entry);
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
        int listed = 0;
        json_array_foreach(teams, i, v) listed |= same(json_string_value(v), team_id);
        if (!listed)
            json_array_append_new(teams, json_string(team_id));
        gw_store_param_t q[] = {GW_P_JSON(teams), GW_P_TEXT(uid)};
        st = gw_store_exec(c, "UPDATE users SET teams = $1 WHERE user_id = $2", q, 2, NULL);
        json_array_append_new(updated, user);
    }
    if (st == GW_STORE_OK && member_limits)
        st = member_budget(c, a, uid, team_id);
    if (st == GW_STORE_OK)
        st = note(c, a, "team_membership", mid);
    if (st == GW_STORE_OK)
        st = note(c, a, "user", uid);
    return st;
}

/*
 * Adds member (one {user_id, role} or a list of them) to team id; *out: the team row after it.
 * member_limits: the request's max_budget_in_team (/team/member_add) applies to each member; other
 * callers (/user/new, /team/new) carry the user's or team's own limits in the same fields.
 */
static int team_add(gw_store_conn_t *c, admin_req_t *a, const char *id, json_t *member, json_t **out,
                    int member_limits)
{
    int st;
    json_t *team = fetch_one(c, "teams", "team_id", id, &st);
    if (team == NULL)
        return st != GW_STORE_OK ? st : client_error(a, 404, "Team %.100s not found", id);
    *out = team;
    json_t *members = json_object_get(team, "members_with_roles");
    if (!json_is_array(members))
        json_object_set_new(team, "members_with_roles", members = json_array());
    json_t *updated = json_array();
    json_object_set_new(team, "updated_users", updated);
    if (json_is_array(member)) {
        size_t i;
        json_t *m;
        json_array_foreach(member, i, m) if ((st = add_member(c, a, id, members, m, updated,
                                                              member_limits)) != GW_STORE_OK) return st;
    } else if ((st = add_member(c, a, id, members, member, updated, member_limits)) != GW_STORE_OK) {
        return st;
    }
    gw_store_param_t p[] = {GW_P_JSON(members), GW_P_TEXT(a->now), GW_P_TEXT(id)};
    if ((st = gw_store_exec(c, "UPDATE teams SET members_with_roles = $1, updated_at = $2 WHERE team_id = $3",
                            p, 3, NULL)) != GW_STORE_OK)
        return st;
    return note(c, a, "team", id);
}

static int op_team_member_add(gw_store_conn_t *c, admin_req_t *a)
{
    const char *id = in_str(a, "team_id");
    json_t *member = json_object_get(a->in, "member");
    if (id == NULL || member == NULL)
        return client_error(a, 400, "team_id and member are required");
    return team_add(c, a, id, member, &a->out, 1);
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

/*
 * Creates or updates the budget row that row (a customer or organization) points at. fresh: the
 * row is new, so budget fields in the request make a budget of its own even when it also names a
 * budget_id (LiteLLM's /customer/new: a named budget is often a shared tier, never edited here).
 */
static int attach_budget(gw_store_conn_t *c, admin_req_t *a, const entity_t *e, const char *id, json_t *row,
                         int fresh)
{
    int st = GW_STORE_OK;
    const char *bid = fresh ? NULL : json_string_value(json_object_get(row, "budget_id"));
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
    if (bid == NULL)
        bid = json_string_value(json_object_get(row, "budget_id"));
    json_t *budget = bid != NULL && st == GW_STORE_OK ? fetch_one(c, "budgets", "budget_id", bid, &st) : NULL;
    json_object_set_new(row, "litellm_budget_table", budget != NULL ? budget : json_null());
    return st;
}

static int op_customer_new(gw_store_conn_t *c, admin_req_t *a)
{
    char id[128];
    if (in_str(a, "user_id") == NULL)
        return client_error(a, 400, "user_id is required");
    const char *dm = in_str(a, "default_model"), *star;
    size_t star_len;
    if (dm != NULL && gw_models_lookup(a->w->server->models, dm, strlen(dm), &star, &star_len) == NULL)
        return client_error(a, 422,
                            "Default Model not on proxy. Configure via `/model/new` or config.yaml. "
                            "Default_model=%.100s",
                            dm);
    int st = create_entity(c, a, &E_CUSTOMER, id, &a->out);
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_CUSTOMER, id, a->out, 1);
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
    return attach_budget(c, a, &E_CUSTOMER, id, row, 0);
}

static int op_customer_update(gw_store_conn_t *c, admin_req_t *a)
{
    int st = update_entity(c, a, &E_CUSTOMER, &a->out);
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_CUSTOMER, in_str(a, "user_id"), a->out, 0);
}

#define MAX_IDS_PER_CALL 1000

/* The request's user_ids: a non-empty list of strings of at most max_len bytes, or CLIENT_ERROR. */
static int take_user_ids(admin_req_t *a, size_t max_len, json_t **ids)
{
    *ids = json_object_get(a->in, "user_ids");
    if (!json_is_array(*ids) || json_array_size(*ids) == 0 || json_array_size(*ids) > MAX_IDS_PER_CALL)
        return client_error(a, 400, "user_ids (a list of 1 to %d end user ids) is required",
                            MAX_IDS_PER_CALL);
    size_t i;
    json_t *v;
    json_array_foreach(*ids, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max_len)
            return client_error(a, 400, "user_ids must be a list of end user ids of 1 to %zu bytes", max_len);
    }
    return GW_STORE_OK;
}

/* Python's repr of a list of strings, as LiteLLM's messages print it: ['a', 'b'] (bounded). */
static void py_list(json_t *ids, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "[");
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (o < n)
            o += (size_t)snprintf(out + o, n - o, "%s'%s'", i ? ", " : "", json_string_value(v));
    }
    if (o < n)
        o += (size_t)snprintf(out + o, n - o, "]");
    if (o >= n && n > 5)
        memcpy(out + n - 5, "...]", 5);
}

/* POST /customer/delete {"user_ids": […]}: all or nothing; 404 naming the ids that do not exist. */
static int op_customer_delete(gw_store_conn_t *c, admin_req_t *a)
{
    json_t *ids;
    int st = take_user_ids(a, 1024, &ids);
    if (st != GW_STORE_OK)
        return st;
    json_t *missing = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        int64_t n = 0;
        gw_store_param_t p[] = {GW_P_TEXT(json_string_value(v))};
        if ((st = gw_store_exec(c, "DELETE FROM end_users WHERE user_id = $1", p, 1, &n)) != GW_STORE_OK)
            break;
        if (n == 0)
            json_array_append(missing, v);
        else if ((st = note(c, a, "end_user", json_string_value(v))) != GW_STORE_OK)
            break;
    }
    if (st == GW_STORE_OK && json_array_size(missing) > 0) { /* the transaction rolls the deletes back */
        char list[512] = "";
        size_t o = 0;
        json_array_foreach(missing, i, v)
        {
            if (o < sizeof(list))
                o +=
                    (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", json_string_value(v));
        }
        st = client_error(a, 404, "End User Id(s)=%s do not exist in db", list);
    }
    json_decref(missing);
    if (st != GW_STORE_OK)
        return st;
    char list[1024], msg[1100];
    py_list(ids, list, sizeof(list));
    snprintf(msg, sizeof(msg), "Successfully deleted customers with ids: %s", list);
    a->out = json_pack("{s:I, s:s}", "deleted_customers", (json_int_t)json_array_size(ids), "message", msg);
    return GW_STORE_OK;
}

/*
 * POST /customer/block|unblock {"user_ids": […]}. Block creates the customer when it does not
 * exist yet (LiteLLM's upsert), so that a user can be refused before its first request; the
 * change reaches every worker at once and other instances through the changes poll, and the
 * end-user cache then refuses its requests (endusers.h). Ids the cache cannot hold are refused
 * here, since they could not be enforced. Unblock clears the flag of the customers that exist.
 * Answers {"blocked_users": [rows]} or {"unblocked_users": [rows]}.
 */
static int set_customers_blocked(gw_store_conn_t *c, admin_req_t *a, int blocked)
{
    json_t *ids;
    int st = take_user_ids(a, GW_EUCACHE_ID_MAX - 1, &ids);
    if (st != GW_STORE_OK)
        return st;
    json_t *rows = json_array();
    a->out = json_pack("{s:o}", blocked ? "blocked_users" : "unblocked_users", rows);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        int64_t n = 0;
        gw_store_param_t p[] = {GW_P_TEXT(id), GW_P_BOOL(blocked), GW_P_TEXT(a->now)};
        st = blocked
                 ? gw_store_exec(
                       c,
                       "INSERT INTO end_users (user_id, blocked, created_at, updated_at) VALUES ($1, "
                       "$2, $3, $3) ON CONFLICT (user_id) DO UPDATE SET blocked = $2, updated_at = $3",
                       p, 3, &n)
                 : gw_store_exec(c, "UPDATE end_users SET blocked = $2, updated_at = $3 WHERE user_id = $1",
                                 p, 3, &n);
        if (st == GW_STORE_OK && n > 0)
            st = note(c, a, "end_user", id);
        json_t *row = st == GW_STORE_OK && n > 0 ? fetch_one(c, "end_users", "user_id", id, &st) : NULL;
        if (row != NULL)
            json_array_append_new(rows, row);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

static int op_customer_block(gw_store_conn_t *c, admin_req_t *a)
{
    return set_customers_blocked(c, a, 1);
}

static int op_customer_unblock(gw_store_conn_t *c, admin_req_t *a)
{
    return set_customers_blocked(c, a, 0);
}

#define MAX_CUSTOMER_LIST 10000

/* GET /customer/list: every customer with its litellm_budget_table (at most MAX_CUSTOMER_LIST). */
static int op_customer_list(gw_store_conn_t *c, admin_req_t *a)
{
    json_t *rows = NULL, *budgets = NULL;
    gw_store_param_t p[] = {GW_P_INT(MAX_CUSTOMER_LIST)};
    int st = gw_store_query(c, "SELECT * FROM end_users ORDER BY created_at, user_id LIMIT $1", p, 1, &rows);
    if (st == GW_STORE_OK)
        st = gw_store_query(c,
                            "SELECT * FROM budgets WHERE budget_id IN (SELECT budget_id FROM end_users WHERE "
                            "budget_id IS NOT NULL)",
                            NULL, 0, &budgets);
    json_t *by_id = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(budgets, i, r)
    {
        const char *bid = json_string_value(json_object_get(r, "budget_id"));
        if (bid != NULL)
            json_object_set(by_id, bid, api_row(r));
    }
    json_array_foreach(rows, i, r)
    {
        const char *bid = json_string_value(json_object_get(api_row(r), "budget_id"));
        json_t *b = bid != NULL ? json_object_get(by_id, bid) : NULL;
        json_object_set_new(r, "litellm_budget_table", b != NULL ? json_deep_copy(b) : json_null());
    }
    json_decref(by_id);
    json_decref(budgets);
    a->out = rows != NULL ? rows : json_array();
    return st;
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
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_ORG, id, a->out, 1);
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
    json_t *members = NULL; /* LiteLLM's organization members: here the users whose organization it is */
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    if (st == GW_STORE_OK)
        st = gw_store_query(c,
                            "SELECT user_id, organization_id, user_role, spend, created_at, updated_at "
                            "FROM users WHERE organization_id = $1 ORDER BY created_at, user_id",
                            p, 1, &members);
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) api_row(m);
    json_object_set_new(row, "members", members != NULL ? members : json_array());
    return st != GW_STORE_OK ? st : attach_budget(c, a, &E_ORG, id, row, 0);
}

/* Registration order matters: h2o takes the first prefix match, so "/key" (the path form of
 * regenerate) comes after every other /key/… route. */
static const admin_op_t ops[] = {
    {"/key/generate", op_key_generate, OP_OWN},
    {"/key/info", op_key_info, OP_READ | OP_SELF},
    {"/key/update", op_key_update, OP_OWN},
    {"/key/delete", op_key_delete, OP_OWN},
    {"/key/regenerate", op_key_regenerate, OP_OWN},
    {"/key/list", op_key_list, OP_READ | OP_SELF},
    {"/key/block", op_key_block, 0},
    {"/key/unblock", op_key_unblock, 0},
    {"/key/health", op_key_health, OP_READ | OP_SELF},
    {"/key", op_key_regenerate, OP_SUBPATH | OP_OWN}, /* /key/<key>/regenerate */
    {"/user/new", op_user_new, 0},
    {"/user/info", op_user_info, OP_READ | OP_SELF},
    {"/user/update", op_user_update, 0},
    {"/user/list", op_user_list, OP_READ},
    {"/user/delete", op_user_delete, 0},
    {"/team/new", op_team_new, 0},
    {"/team/info", op_team_info, OP_READ | OP_SELF},
    {"/team/update", op_team_update, 0},
    {"/team/list", op_team_list, OP_READ | OP_SELF},
    {"/team/delete", op_team_delete, 0},
    {"/team/member_add", op_team_member_add, 0},
    {"/team/member_update", op_team_member_update, 0},
    {"/customer/new", op_customer_new, 0},
    {"/customer/info", op_customer_info, OP_READ},
    {"/customer/update", op_customer_update, 0},
    {"/customer/delete", op_customer_delete, 0},
    {"/customer/list", op_customer_list, OP_READ},
    {"/customer/block", op_customer_block, 0},
    {"/customer/unblock", op_customer_unblock, 0},
    {"/end_user/new", op_customer_new, 0}, /* LiteLLM's older names, still served */
    {"/end_user/info", op_customer_info, OP_READ},
    {"/end_user/update", op_customer_update, 0},
    {"/end_user/delete", op_customer_delete, 0},
    {"/end_user/list", op_customer_list, OP_READ},
    {"/end_user/block", op_customer_block, 0},
    {"/end_user/unblock", op_customer_unblock, 0},
    {"/budget/new", op_budget_new, 0},
    {"/budget/info", op_budget_info, OP_READ},
    {"/organization/new", op_org_new, 0},
    {"/organization/info", op_org_info, OP_READ},
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
                         : status == 403 ? "Forbidden"
                         : status == 404 ? "Not Found"
                         : status == 422 ? "Unprocessable Entity"
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
    json_decref(a->caller);
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

/*
 * The key of the path form /key/<key>/regenerate: what follows op's path in req must be "/",
 * a key or token (no '/'), then "/regenerate". 0 with *key set, else -1.
 */
static int subpath_key(h2o_req_t *req, const admin_op_t *op, h2o_iovec_t *key)
{
    static const char tail[] = "/regenerate";
    size_t plen = strlen(op->path), n = req->path_normalized.len;
    const char *p = req->path_normalized.base;
    if (n <= plen + 1 + sizeof(tail) - 1 || p[plen] != '/' ||
        memcmp(p + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1) != 0)
        return -1;
    key->base = (char *)p + plen + 1;
    key->len = n - plen - 1 - (sizeof(tail) - 1);
    return key->len <= 256 && memchr(key->base, '/', key->len) == NULL ? 0 : -1;
}

/* The calling key for OP_SELF operations: {token, user_id, team_id, user_role}. */
static json_t *caller_of(const gw_principal_t *p)
{
    json_t *o = json_pack("{s:s}", "token", p->token);
    if (p->user_id != NULL)
        json_object_set_new(o, "user_id", json_string(p->user_id));
    if (p->team_id != NULL)
        json_object_set_new(o, "team_id", json_string(p->team_id));
    if (p->user_role != NULL)
        json_object_set_new(o, "user_role", json_string(p->user_role));
    return o;
}

static void admin_continue(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    const admin_op_t *op = &ops[rc->auth_arg];
    int viewer = rc->principal != NULL && rc->principal->user_role != NULL &&
                 strcmp(rc->principal->user_role, "proxy_admin_viewer") == 0;
    int admin_view = rc->is_admin || (viewer && (op->flags & OP_READ));
    int own = rc->principal != NULL && (op->flags & OP_OWN) && rc->principal->user_id != NULL &&
              rc->principal->user_role != NULL && strcmp(rc->principal->user_role, "internal_user") == 0;
    if (!admin_view && !own && !(rc->principal != NULL && (op->flags & OP_SELF))) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "Only proxy admin can be used to generate, delete, update info for new keys/users/teams. "
                 "Route=%s",
                 op->path);
        rc->error = "not_admin";
        return reply_admin_error(rc, 401, msg);
    }
    if (rc->w->server->store == NULL && op->fn != op_key_health)
        return reply_admin_error(rc, 503, "no database configured");
    if (op->fn == op_key_health) { /* nothing to read */
        static const char healthy[] = "{\"key\":\"healthy\",\"logging_callbacks\":null}";
        gw_reply_json(req, 200, "OK", healthy, sizeof(healthy) - 1);
        return;
    }
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
    h2o_iovec_t pkey;
    if ((op->flags & OP_SUBPATH) && subpath_key(req, op, &pkey) == 0) /* the path's key wins (LiteLLM) */
        json_object_set_new(in, "key", json_stringn(pkey.base, pkey.len));
    admin_req_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        json_decref(in);
        return reply_admin_error(rc, 500, "out of memory");
    }
    a->w = rc->w;
    a->rc = rc;
    a->op = op;
    a->in = in;
    a->admin_view = admin_view;
    if (rc->principal != NULL)
        a->caller = caller_of(rc->principal);
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
    h2o_req_t *req = rc->req;
    h2o_iovec_t key;
    const admin_op_t *op = &ops[route];
    /* h2o matched a path prefix: only the route's exact path (or its path form) is ours */
    if ((op->flags & OP_SUBPATH) ? subpath_key(req, op, &key) != 0
                                 : req->path_normalized.len != strlen(op->path)) {
        rc->error = "not_found";
        return gw_reply_error(req, GW_ERR_NOT_FOUND, "Not found", NULL), 0;
    }
    rc->auth_arg = (int)route;
    if (gw_request_authenticate(rc, admin_continue) == 0)
        admin_continue(rc);
    return 0;
}

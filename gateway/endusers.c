/*
 * endusers.c — end users' limits, loaded through a per-worker loadcache (see endusers.h).
 *
 * Everything runs on one worker's loop, except load_enduser (the store thread), which touches
 * only the value it makes.
 */
#include "gateway/endusers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/loadcache.h"
#include "gateway/request.h"
#include "gateway/server.h"

const char gw_enduser_load_sql[] =
    "SELECT e.user_id, e.blocked, e.budget_id, e.spend AS spend, b.max_budget, b.soft_budget, "
    "b.budget_duration, b.budget_reset_at, b.rpm_limit, b.tpm_limit, b.max_parallel_requests FROM end_users "
    "e "
    "LEFT JOIN budgets b ON b.budget_id = e.budget_id WHERE e.user_id = $1";

static int64_t int_or(const json_t *row, const char *col, int64_t dflt)
{
    json_t *v = json_object_get(row, col);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

static void read_row(const json_t *row, gw_enduser_t *v)
{
    gw_level_limits_t *l = &v->lim;
    l->spend = int_or(row, "spend", 0);
    l->max_budget = int_or(row, "max_budget", -1);
    l->soft_budget = int_or(row, "soft_budget", -1);
    l->rpm = int_or(row, "rpm_limit", -1);
    l->tpm = int_or(row, "tpm_limit", -1);
    l->max_parallel = int_or(row, "max_parallel_requests", -1);
    int64_t ms;
    const char *t = json_string_value(json_object_get(row, "budget_reset_at"));
    l->budget_reset_at_ms = t != NULL && gw_store_time_parse(t, &ms) == 0 ? ms : 0;
    const char *dur = json_string_value(json_object_get(row, "budget_duration"));
    snprintf(l->budget_duration, sizeof(l->budget_duration), "%s", dur != NULL ? dur : "");
    v->has_limits = l->max_budget >= 0 || l->rpm >= 0 || l->tpm >= 0 || l->max_parallel >= 0;
    json_t *b = json_object_get(row, "blocked"); /* SQLite answers 0/1, PostgreSQL true/false */
    v->blocked = json_is_true(b) || (json_is_integer(b) && json_integer_value(b) != 0);
    const char *bid = json_string_value(json_object_get(row, "budget_id"));
    snprintf(v->budget_id, sizeof(v->budget_id), "%s", bid != NULL ? bid : "");
}

/* Store thread: the end user's row with its budget (NULL: no row, so no limits). */
static int load_enduser(gw_store_conn_t *c, const char *id, void **out)
{
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(id)};
    int st = gw_store_query(c, gw_enduser_load_sql, p, 1, &rows);
    gw_enduser_t *v = NULL;
    if (st == GW_STORE_OK && json_array_size(rows) > 0) {
        if ((v = calloc(1, sizeof(*v))) == NULL)
            st = GW_STORE_ERROR;
        else
            read_row(json_array_get(rows, 0), v);
    }
    json_decref(rows);
    *out = v;
    return st;
}

static const gw_loadcache_type_t enduser_cache = {
    .key_max = GW_EUCACHE_ID_MAX,
    .ttl_ms = GW_EUCACHE_TTL_MS,
    .neg_ttl_ms = GW_EUCACHE_TTL_MS, /* no row = no limits: a /customer/new invalidates it */
    .stale_retry_ms = GW_EUCACHE_STALE_RETRY_MS,
    .max_entries = GW_EUCACHE_MAX,
    .load = load_enduser,
    .release = free,
    .accept = NULL, /* the continuation looks the end user up again (a hit then) */
    .unavailable_msg = "End user limits cannot be loaded right now; retry later.",
};

static int names_budget(const void *value, void *ud)
{
    const gw_enduser_t *v = value;
    return strcmp(v->budget_id, (const char *)ud) == 0;
}

void gw_endusers_invalidate(gw_eucache_t *ec, const char *kind, const char *id)
{
    if (ec == NULL)
        return;
    if (strcmp(kind, "end_user") == 0)
        gw_loadcache_drop(ec, id);
    else if (strcmp(kind, "budget") == 0)
        gw_loadcache_drop_if(ec, names_budget, (void *)id);
    else
        gw_loadcache_drop_all(ec);
}

int gw_endusers_lookup(gw_reqctx_t *rc, const char *id, gw_enduser_t *out, void (*cont)(gw_reqctx_t *rc))
{
    memset(out, 0, sizeof(*out));
    gw_eucache_t *ec = rc->w->endusers;
    if (ec == NULL || rc->w->server->store == NULL || strlen(id) >= GW_EUCACHE_ID_MAX)
        return 0; /* no store: no customers, so no limits */
    void *v;
    int r = gw_loadcache_get(ec, rc, id, &v, cont);
    if (r == 0 && v != NULL)
        *out = *(const gw_enduser_t *)v;
    return r;
}

gw_eucache_t *gw_eucache_create(gw_worker_t *w)
{
    return gw_loadcache_create(w, &enduser_cache);
}

void gw_eucache_destroy(gw_eucache_t *ec)
{
    gw_loadcache_destroy(ec);
}

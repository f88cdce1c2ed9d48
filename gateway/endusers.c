/*
 * endusers.c — the per-worker end-user cache and its asynchronous loads (see endusers.h).
 *
 * Everything runs on one worker's loop, except job_load (the store thread), which touches only
 * its own job record.
 */
#include "gateway/endusers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/errors.h"
#include "gateway/request.h"
#include "gateway/server.h"

const char gw_enduser_load_sql[] =
    "SELECT e.user_id, e.blocked, e.spend AS spend, b.max_budget, b.soft_budget, b.budget_duration, "
    "b.budget_reset_at, "
    "b.rpm_limit, b.tpm_limit, b.max_parallel_requests FROM end_users e LEFT JOIN budgets b ON b.budget_id = "
    "e.budget_id WHERE e.user_id = $1";

#define N_BUCKETS 1024

typedef struct eu_entry {
    struct eu_entry *next;
    int has_value, loading, reload;
    gw_enduser_t v;
    uint64_t fresh_until;   /* h2o_now() milliseconds */
    h2o_linklist_t waiters; /* gw_reqctx_t.auth_link, parked until has_value */
    char id[GW_EUCACHE_ID_MAX];
} eu_entry_t;

struct gw_eucache {
    gw_worker_t *w;
    eu_entry_t *buckets[N_BUCKETS];
    size_t n;
};

typedef struct eu_load {
    gw_worker_t *w;
    eu_entry_t *e;
    char id[GW_EUCACHE_ID_MAX];
    gw_enduser_t v;
} eu_load_t;

static size_t bucket_of(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % N_BUCKETS;
}

static eu_entry_t *find(gw_eucache_t *ec, const char *id)
{
    for (eu_entry_t *e = ec->buckets[bucket_of(id)]; e != NULL; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static void unlink_entry(gw_eucache_t *ec, eu_entry_t *e)
{
    eu_entry_t **pp = &ec->buckets[bucket_of(e->id)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    ec->n--;
    free(e);
}

void gw_eucache_invalidate_all(gw_eucache_t *ec)
{
    if (ec == NULL)
        return;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        eu_entry_t *e = ec->buckets[b];
        while (e != NULL) {
            eu_entry_t *next = e->next;
            if (e->loading) { /* its job and waiters point at it: reload when the job returns */
                e->reload = 1;
                e->has_value = 0;
            } else {
                unlink_entry(ec, e);
            }
            e = next;
        }
    }
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
}

static int job_load(gw_store_conn_t *c, void *ud)
{
    eu_load_t *l = ud;
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(l->id)};
    int st = gw_store_query(c, gw_enduser_load_sql, p, 1, &rows);
    memset(&l->v, 0, sizeof(l->v));
    if (st == GW_STORE_OK && json_array_size(rows) > 0)
        read_row(json_array_get(rows, 0), &l->v);
    json_decref(rows);
    return st;
}

static void on_load_done(void *ud, int status, const char *err);

static int submit_load(gw_eucache_t *ec, eu_entry_t *e)
{
    eu_load_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -1;
    l->w = ec->w;
    l->e = e;
    memcpy(l->id, e->id, sizeof(l->id));
    if (gw_keys_submit(ec->w, job_load, on_load_done, l) != 0) {
        free(l);
        return -1;
    }
    e->loading = 1;
    return 0;
}

/* Wakes every parked request of e, one at a time (a continuation may park again or reply). */
static void wake(eu_entry_t *e, int status)
{
    h2o_linklist_t list;
    h2o_linklist_init_anchor(&list);
    h2o_linklist_insert_list(&list, &e->waiters);
    while (!h2o_linklist_is_empty(&list)) {
        gw_reqctx_t *rc = H2O_STRUCT_FROM_MEMBER(gw_reqctx_t, auth_link, list.next);
        h2o_linklist_unlink(&rc->auth_link);
        void (*cont)(gw_reqctx_t *) = rc->auth_cont;
        rc->auth_cont = NULL;
        if (status != GW_STORE_OK) {
            rc->error = "store_unavailable";
            gw_request_error(rc, GW_ERR_UNAVAILABLE,
                             "End user limits cannot be loaded right now; retry later.", NULL);
            continue;
        }
        cont(rc);
    }
}

static void on_load_done(void *ud, int status, const char *err)
{
    (void)err;
    eu_load_t *l = ud;
    gw_worker_t *w = l->w;
    gw_eucache_t *ec = w->endusers;
    eu_entry_t *e = l->e;
    gw_keys_job_done(w);
    e->loading = 0;
    uint64_t now = h2o_now(w->loop);
    if (status == GW_STORE_OK && e->reload) { /* invalidated meanwhile: this row may be stale */
        e->reload = 0;
        free(l);
        if (submit_load(ec, e) == 0)
            return;
        status = GW_STORE_BUSY;
    }
    if (status != GW_STORE_OK) {
        free(l);
        if (e->has_value) { /* keep serving what we had; try again later */
            e->fresh_until = now + GW_EUCACHE_STALE_RETRY_MS;
            return;
        }
        wake(e, status);
        if (!e->loading && !e->has_value && h2o_linklist_is_empty(&e->waiters))
            unlink_entry(ec, e);
        return;
    }
    e->v = l->v;
    e->has_value = 1;
    e->fresh_until = now + GW_EUCACHE_TTL_MS;
    free(l);
    wake(e, GW_STORE_OK);
}

static void sweep(gw_eucache_t *ec)
{
    for (size_t b = 0; b < N_BUCKETS; b++) {
        eu_entry_t *e = ec->buckets[b];
        while (e != NULL) {
            eu_entry_t *next = e->next;
            if (!e->loading)
                unlink_entry(ec, e);
            e = next;
        }
    }
}

int gw_endusers_lookup(gw_reqctx_t *rc, const char *id, gw_enduser_t *out, void (*cont)(gw_reqctx_t *rc))
{
    memset(out, 0, sizeof(*out));
    gw_eucache_t *ec = rc->w->endusers;
    if (ec == NULL || rc->w->server->store == NULL || strlen(id) >= GW_EUCACHE_ID_MAX)
        return 0; /* no store: no customers, so no limits */
    uint64_t now = h2o_now(rc->w->loop);
    eu_entry_t *e = find(ec, id);
    if (e != NULL && e->has_value) {
        if (now >= e->fresh_until && !e->loading)
            submit_load(ec, e); /* stale: serve it, refresh in the background */
        *out = e->v;
        return 0;
    }
    if (e == NULL) {
        if (ec->n >= GW_EUCACHE_MAX)
            sweep(ec);
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return gw_request_error(rc, GW_ERR_INTERNAL, "out of memory", NULL);
        snprintf(e->id, sizeof(e->id), "%s", id);
        h2o_linklist_init_anchor(&e->waiters);
        size_t b = bucket_of(e->id);
        e->next = ec->buckets[b];
        ec->buckets[b] = e;
        ec->n++;
    }
    if (!e->loading && submit_load(ec, e) != 0) {
        if (h2o_linklist_is_empty(&e->waiters))
            unlink_entry(ec, e);
        rc->error = "store_unavailable";
        return gw_request_error(rc, GW_ERR_UNAVAILABLE,
                                "End user limits cannot be loaded right now; retry later.", NULL);
    }
    rc->auth_cont = cont;
    h2o_linklist_insert(&e->waiters, &rc->auth_link);
    return 1;
}

gw_eucache_t *gw_eucache_create(gw_worker_t *w)
{
    gw_eucache_t *ec = calloc(1, sizeof(*ec));
    if (ec != NULL)
        ec->w = w;
    return ec;
}

void gw_eucache_destroy(gw_eucache_t *ec)
{
    if (ec == NULL)
        return;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        eu_entry_t *e = ec->buckets[b];
        while (e != NULL) {
            eu_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(ec);
}

/*
 * loadcache.c — per-worker cache of asynchronously loaded values (see loadcache.h).
 */
#include "gateway/loadcache.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/errors.h"
#include "gateway/keys.h"
#include "gateway/request.h"
#include "gateway/server.h"

#define N_BUCKETS 4096

typedef struct box {
    int refs;
    void *v;
} box_t;

typedef struct lc_entry {
    struct lc_entry *next;
    int has_value;          /* box (or "none" when box is NULL) is usable */
    int loading;            /* a load job is in flight */
    int reload;             /* invalidated while loading: load again when it returns */
    box_t *box;             /* NULL with has_value: no row */
    uint64_t fresh_until;   /* h2o_now() milliseconds */
    h2o_linklist_t waiters; /* gw_reqctx_t.auth_link, parked until has_value */
    char key[];
} lc_entry_t;

struct gw_loadcache {
    gw_worker_t *w;
    const gw_loadcache_type_t *t;
    size_t n;
    lc_entry_t *buckets[N_BUCKETS];
};

typedef struct lc_load {
    gw_loadcache_t *lc;
    lc_entry_t *e;
    void *out;
    char key[];
} lc_load_t;

static void box_unref(const gw_loadcache_type_t *t, box_t *b)
{
    if (b != NULL && --b->refs == 0) {
        t->release(b->v);
        free(b);
    }
}

static size_t bucket_of(const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % N_BUCKETS;
}

static lc_entry_t *find(gw_loadcache_t *lc, const char *key)
{
    for (lc_entry_t *e = lc->buckets[bucket_of(key)]; e != NULL; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void unlink_entry(gw_loadcache_t *lc, lc_entry_t *e)
{
    lc_entry_t **pp = &lc->buckets[bucket_of(e->key)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    lc->n--;
    box_unref(lc->t, e->box);
    free(e);
}

/* Drops an entry's value; an entry with a load in flight stays (its waiters and job point at it)
 * and loads again when the job returns. */
static void drop(gw_loadcache_t *lc, lc_entry_t *e)
{
    if (!e->loading) {
        unlink_entry(lc, e);
        return;
    }
    e->reload = 1;
    box_unref(lc->t, e->box);
    e->box = NULL;
    e->has_value = 0;
}

static void on_load_done(void *ud, int status, const char *err);

static int job_load(gw_store_conn_t *c, void *ud)
{
    lc_load_t *l = ud;
    return l->lc->t->load(c, l->key, &l->out);
}

static int submit_load(gw_loadcache_t *lc, lc_entry_t *e)
{
    size_t klen = strlen(e->key);
    lc_load_t *l = calloc(1, sizeof(*l) + klen + 1);
    if (l == NULL)
        return -1;
    l->lc = lc;
    l->e = e;
    memcpy(l->key, e->key, klen + 1);
    if (gw_keys_submit(lc->w, job_load, on_load_done, l) != 0) {
        free(l);
        return -1;
    }
    e->loading = 1;
    return 0;
}

static int unavailable(gw_loadcache_t *lc, gw_reqctx_t *rc)
{
    rc->error = "store_unavailable";
    return gw_request_error(rc, GW_ERR_UNAVAILABLE, lc->t->unavailable_msg, NULL);
}

/* Wakes every parked request of e, one at a time (a continuation may park again or reply). */
static void wake(gw_loadcache_t *lc, lc_entry_t *e, int status)
{
    h2o_linklist_t list;
    h2o_linklist_init_anchor(&list);
    h2o_linklist_insert_list(&list, &e->waiters);
    box_t *b = e->box;
    if (b != NULL)
        b->refs++; /* the entry may go away while continuations run */
    while (!h2o_linklist_is_empty(&list)) {
        gw_reqctx_t *rc = H2O_STRUCT_FROM_MEMBER(gw_reqctx_t, auth_link, list.next);
        h2o_linklist_unlink(&rc->auth_link);
        void (*cont)(gw_reqctx_t *) = rc->auth_cont;
        rc->auth_cont = NULL;
        if (status != GW_STORE_OK) {
            unavailable(lc, rc);
            continue;
        }
        if (lc->t->accept != NULL && lc->t->accept(rc, b != NULL ? b->v : NULL) != 0)
            continue;
        cont(rc);
    }
    box_unref(lc->t, b);
}

static void on_load_done(void *ud, int status, const char *err)
{
    (void)err;
    lc_load_t *l = ud;
    gw_loadcache_t *lc = l->lc;
    const gw_loadcache_type_t *t = lc->t;
    lc_entry_t *e = l->e;
    void *out = l->out;
    free(l);
    gw_keys_job_done(lc->w);
    e->loading = 0;
    uint64_t now = h2o_now(lc->w->loop);
    if (status == GW_STORE_OK && e->reload) { /* invalidated meanwhile: this row may be stale */
        if (out != NULL)
            t->release(out);
        out = NULL;
        e->reload = 0;
        if (submit_load(lc, e) == 0)
            return;
        status = GW_STORE_BUSY;
    }
    if (status != GW_STORE_OK) {
        if (out != NULL)
            t->release(out);
        if (e->has_value) { /* keep serving what we had; try again later */
            e->fresh_until = now + t->stale_retry_ms;
            return;
        }
        wake(lc, e, status);
        if (!e->loading && !e->has_value && h2o_linklist_is_empty(&e->waiters))
            unlink_entry(lc, e);
        return;
    }
    box_t *b = NULL;
    if (out != NULL) {
        if ((b = malloc(sizeof(*b))) == NULL) { /* no memory: as if the load had failed */
            t->release(out);
            if (!e->has_value) {
                wake(lc, e, GW_STORE_ERROR);
                if (!e->loading && h2o_linklist_is_empty(&e->waiters))
                    unlink_entry(lc, e);
            }
            return;
        }
        *b = (box_t){1, out};
    }
    box_unref(t, e->box);
    e->box = b;
    e->has_value = 1;
    e->fresh_until = now + (b != NULL ? t->ttl_ms : t->neg_ttl_ms);
    wake(lc, e, GW_STORE_OK);
}

static void sweep(gw_loadcache_t *lc)
{
    for (size_t i = 0; i < N_BUCKETS; i++) {
        lc_entry_t *e = lc->buckets[i];
        while (e != NULL) {
            lc_entry_t *next = e->next;
            if (!e->loading)
                unlink_entry(lc, e);
            e = next;
        }
    }
}

int gw_loadcache_get(gw_loadcache_t *lc, gw_reqctx_t *rc, const char *key, void **value,
                     void (*cont)(gw_reqctx_t *rc))
{
    *value = NULL;
    uint64_t now = h2o_now(lc->w->loop);
    lc_entry_t *e = find(lc, key);
    if (e != NULL && e->has_value) {
        if (now >= e->fresh_until && !e->loading)
            submit_load(lc, e); /* stale: serve it, refresh in the background */
        *value = e->box != NULL ? e->box->v : NULL;
        return 0;
    }
    if (e == NULL) {
        if (lc->n >= lc->t->max_entries)
            sweep(lc);
        size_t klen = strlen(key);
        if ((e = calloc(1, sizeof(*e) + klen + 1)) == NULL)
            return gw_request_error(rc, GW_ERR_INTERNAL, "out of memory", NULL);
        memcpy(e->key, key, klen + 1);
        h2o_linklist_init_anchor(&e->waiters);
        size_t b = bucket_of(e->key);
        e->next = lc->buckets[b];
        lc->buckets[b] = e;
        lc->n++;
    }
    if (!e->loading && submit_load(lc, e) != 0) {
        if (h2o_linklist_is_empty(&e->waiters))
            unlink_entry(lc, e);
        return unavailable(lc, rc);
    }
    rc->auth_cont = cont;
    h2o_linklist_insert(&e->waiters, &rc->auth_link);
    return 1;
}

void gw_loadcache_drop(gw_loadcache_t *lc, const char *key)
{
    lc_entry_t *e = lc != NULL ? find(lc, key) : NULL;
    if (e != NULL)
        drop(lc, e);
}

void gw_loadcache_drop_if(gw_loadcache_t *lc, int (*pred)(const void *value, void *ud), void *ud)
{
    for (size_t i = 0; lc != NULL && i < N_BUCKETS; i++) {
        lc_entry_t *e = lc->buckets[i];
        while (e != NULL) {
            lc_entry_t *next = e->next;
            if (e->box != NULL && pred(e->box->v, ud))
                drop(lc, e);
            e = next;
        }
    }
}

void gw_loadcache_drop_all(gw_loadcache_t *lc)
{
    for (size_t i = 0; lc != NULL && i < N_BUCKETS; i++) {
        lc_entry_t *e = lc->buckets[i];
        while (e != NULL) {
            lc_entry_t *next = e->next;
            drop(lc, e);
            e = next;
        }
    }
}

void gw_loadcache_stale_all(gw_loadcache_t *lc)
{
    for (size_t i = 0; lc != NULL && i < N_BUCKETS; i++)
        for (lc_entry_t *e = lc->buckets[i]; e != NULL; e = e->next)
            e->fresh_until = 0;
}

size_t gw_loadcache_size(const gw_loadcache_t *lc)
{
    return lc != NULL ? lc->n : 0;
}

gw_loadcache_t *gw_loadcache_create(gw_worker_t *w, const gw_loadcache_type_t *t)
{
    gw_loadcache_t *lc = calloc(1, sizeof(*lc));
    if (lc != NULL) {
        lc->w = w;
        lc->t = t;
    }
    return lc;
}

void gw_loadcache_destroy(gw_loadcache_t *lc)
{
    if (lc == NULL)
        return;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        lc_entry_t *e = lc->buckets[i];
        while (e != NULL) {
            lc_entry_t *next = e->next;
            box_unref(lc->t, e->box);
            free(e);
            e = next;
        }
    }
    free(lc);
}

/*
 * limits.c — the limiter's local backend (exact in-process counters shared by all worker
 * threads), its configuration, and the result building both backends share.
 *
 * The local backend is two chained hash tables behind one mutex: scopes (kind + id → window
 * counters, live reservations, budget period) and reservations (request id → the scopes it
 * holds and the amounts it reserved). One lock makes an admission across many scopes trivially
 * all-or-nothing: it computes every scope's view first, checks every limit, and writes only when
 * all pass. The critical section is a few hash lookups and integer compares — no allocation on
 * the common path except the reservation itself — so a lock held for well under a microsecond
 * is cheaper than per-thread shards that would have to be summed (and would not be exact).
 * tests/bench/limits_bench.c measures it.
 *
 * Reservations live in a FIFO ordered by expiry (one TTL for all, and the clock only moves
 * forward, so admission order is expiry order); each admission first releases the expired ones
 * at the head. A scope entry is referenced by every live reservation (its `par` count), so it is
 * only evicted — past the table's ceiling, and only when idle for an hour — when none holds it.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gateway/limits_int.h"

#define IDLE_EVICT_MS (60LL * 60 * 1000)

struct scope_ent {
    scope_ent_t *next;
    uint64_t hash;
    int64_t win, rq, tk; /* fixed window (unix ms / 60000) and its requests / tokens */
    int64_t par;         /* live reservations */
    int64_t pend, sp;    /* budget period end (0: none) and settled spend in it */
    int64_t rs;          /* reserved micro-dollars */
    int64_t dur;         /* budget duration last seen (for settlement's roll-over) */
    int64_t touched;
    gw_limits_kind_t kind;
    char id[];
};

struct resv {
    resv_t *next;          /* hash chain */
    resv_t *older, *newer; /* expiry FIFO */
    uint64_t hash;
    int64_t expires, win, tokens, micros;
    size_t n;
    scope_ent_t *scopes[GW_LIMITS_MAX_SCOPES];
    char id[GW_LIMITS_ID_MAX];
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static const char *const kind_names[GW_SCOPE_KIND_COUNT] = {
    "key", "user", "team", "team_member", "end_user", "org", "model", "key_model", "global",
};

const char *gw_limits_kind_name(gw_limits_kind_t k)
{
    return (unsigned)k < GW_SCOPE_KIND_COUNT ? kind_names[k] : "?";
}

const char *gw_limits_which_name(gw_limits_which_t w)
{
    switch (w) {
    case GW_LIMIT_PARALLEL:
        return "max_parallel_requests";
    case GW_LIMIT_RPM:
        return "rpm_limit";
    case GW_LIMIT_TPM:
        return "tpm_limit";
    case GW_LIMIT_BUDGET:
        return "max_budget";
    default:
        return "";
    }
}

/* a + b, saturating at INT64_MAX (counters and money never wrap; a saturated sum exceeds any limit) */
static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t sub_floor0(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r) || r < 0)
        return 0;
    return r;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t scope_hash(gw_limits_kind_t kind, const char *id)
{
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)kind;
    h *= 1099511628211ULL;
    return hash_str(h, id);
}

int64_t gw_limits_now(const gw_limits_t *lim)
{
    if (lim->cfg.clock != NULL)
        return lim->cfg.clock(lim->cfg.clock_ud);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

/* ---- validation and results (shared with limits_redis.c) ------------------------------------- */

int gw_limits_req_valid(const gw_limits_req_t *req)
{
    if (req == NULL || req->request_id == NULL || req->request_id[0] == '\0' ||
        strlen(req->request_id) >= GW_LIMITS_ID_MAX || req->n_scopes > GW_LIMITS_MAX_SCOPES ||
        (req->n_scopes > 0 && req->scopes == NULL) || req->est_tokens < 0 || req->est_micros < 0)
        return 0;
    for (size_t i = 0; i < req->n_scopes; i++) {
        const gw_limits_scope_t *s = &req->scopes[i];
        const char *id = s->id ? s->id : "";
        if ((unsigned)s->kind >= GW_SCOPE_KIND_COUNT || strlen(id) >= GW_LIMITS_ID_MAX ||
            s->rpm_limit < GW_LIMITS_NONE || s->tpm_limit < GW_LIMITS_NONE ||
            s->max_parallel < GW_LIMITS_NONE || s->max_budget_micros < GW_LIMITS_NONE ||
            s->spend_micros < 0 || s->budget_duration_ms < 0 || s->budget_reset_at_ms < 0)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (req->scopes[j].kind == s->kind && strcmp(req->scopes[j].id ? req->scopes[j].id : "", id) == 0)
                return 0;
    }
    return 1;
}

void gw_limits_result_plain(gw_limits_result_t *res, gw_limits_verdict_t v)
{
    memset(res, 0, sizeof(*res));
    res->verdict = v;
    res->limit_requests = res->limit_tokens = -1;
}

void gw_limits_fill_result(const gw_limits_req_t *req, const gw_limits_seen_t *seen, int64_t now,
                           int refused_idx, gw_limits_which_t which, int64_t limit, int64_t remaining,
                           int64_t reset_at, gw_limits_result_t *res)
{
    gw_limits_result_plain(res, refused_idx < 0 ? GW_LIMITS_ADMITTED : GW_LIMITS_REFUSED);
    int64_t win_end = (now / GW_LIMITS_WINDOW_MS + 1) * GW_LIMITS_WINDOW_MS;
    for (size_t i = 0; i < req->n_scopes; i++) {
        const gw_limits_scope_t *s = &req->scopes[i];
        if (s->rpm_limit >= 0) {
            int64_t left = sub_floor0(s->rpm_limit, seen[i].rq);
            if (res->limit_requests < 0 || left < res->remaining_requests) {
                res->limit_requests = s->rpm_limit;
                res->remaining_requests = left;
                res->reset_requests_ms = win_end;
            }
        }
        if (s->tpm_limit >= 0) {
            int64_t left = sub_floor0(s->tpm_limit, seen[i].tk);
            if (res->limit_tokens < 0 || left < res->remaining_tokens) {
                res->limit_tokens = s->tpm_limit;
                res->remaining_tokens = left;
                res->reset_tokens_ms = win_end;
            }
        }
        res->periods[i].reset_at_ms = seen[i].pend;
        res->periods[i].spend_micros = seen[i].sp;
        res->periods[i].rolled = seen[i].rolled;
    }
    res->n_periods = req->n_scopes;
    if (refused_idx < 0)
        return;
    const gw_limits_scope_t *s = &req->scopes[refused_idx];
    res->kind = s->kind;
    snprintf(res->id, sizeof(res->id), "%s", s->id ? s->id : "");
    res->which = which;
    res->limit = limit;
    res->remaining = remaining < 0 ? 0 : remaining;
    res->reset_at_ms = reset_at;
    if (which == GW_LIMIT_PARALLEL)
        res->retry_after_s = 1;
    else if (reset_at > 0)
        res->retry_after_s = ceil_div(reset_at - now, 1000) < 1 ? 1 : ceil_div(reset_at - now, 1000);
    else
        res->retry_after_s = 0;
}

/* ---- local tables ------------------------------------------------------------------------------ */

static int grow_scopes(gw_limits_t *lim)
{
    size_t n = lim->nsbuckets ? lim->nsbuckets * 2 : 1024;
    scope_ent_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < lim->nsbuckets; i++) {
        scope_ent_t *e = lim->sbuckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(lim->sbuckets);
    lim->sbuckets = b;
    lim->nsbuckets = n;
    return 0;
}

static int grow_resv(gw_limits_t *lim)
{
    size_t n = lim->nrbuckets ? lim->nrbuckets * 2 : 1024;
    resv_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < lim->nrbuckets; i++) {
        resv_t *r = lim->rbuckets[i], *next;
        for (; r != NULL; r = next) {
            next = r->next;
            r->next = b[r->hash & (n - 1)];
            b[r->hash & (n - 1)] = r;
        }
    }
    free(lim->rbuckets);
    lim->rbuckets = b;
    lim->nrbuckets = n;
    return 0;
}

/* Drops idle scope entries (no reservation, untouched for an hour). Returns how many. */
static size_t evict_idle(gw_limits_t *lim, int64_t now)
{
    size_t dropped = 0;
    for (size_t i = 0; i < lim->nsbuckets; i++) {
        scope_ent_t **pp = &lim->sbuckets[i];
        while (*pp != NULL) {
            scope_ent_t *e = *pp;
            if (e->par == 0 && e->rs == 0 && now - e->touched >= IDLE_EVICT_MS) {
                *pp = e->next;
                free(e);
                lim->nscopes--;
                dropped++;
            } else {
                pp = &e->next;
            }
        }
    }
    return dropped;
}

static scope_ent_t *scope_get(gw_limits_t *lim, gw_limits_kind_t kind, const char *id, int64_t now)
{
    uint64_t h = scope_hash(kind, id);
    if (lim->nsbuckets > 0)
        for (scope_ent_t *e = lim->sbuckets[h & (lim->nsbuckets - 1)]; e != NULL; e = e->next)
            if (e->hash == h && e->kind == kind && strcmp(e->id, id) == 0)
                return e;
    if (lim->nscopes >= lim->cfg.max_scopes && evict_idle(lim, now) == 0)
        return NULL;
    if (lim->nscopes >= lim->nsbuckets && grow_scopes(lim) != 0)
        return NULL;
    size_t len = strlen(id);
    scope_ent_t *e = calloc(1, sizeof(*e) + len + 1);
    if (e == NULL)
        return NULL;
    e->hash = h;
    e->kind = kind;
    e->win = -1;
    memcpy(e->id, id, len + 1);
    e->next = lim->sbuckets[h & (lim->nsbuckets - 1)];
    lim->sbuckets[h & (lim->nsbuckets - 1)] = e;
    lim->nscopes++;
    return e;
}

static resv_t **resv_slot(gw_limits_t *lim, const char *id, uint64_t h)
{
    if (lim->nrbuckets == 0)
        return NULL;
    resv_t **pp = &lim->rbuckets[h & (lim->nrbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->hash == h && strcmp((*pp)->id, id) == 0)
            return pp;
    return NULL;
}

/* Ends reservation r (already unlinked from its hash chain): gives back what it holds and books
 * actual spend when settling. */
static void resv_finish(gw_limits_t *lim, resv_t *r, int settle, int64_t tokens, int64_t micros, int64_t now)
{
    if (r->older)
        r->older->newer = r->newer;
    else
        lim->oldest = r->newer;
    if (r->newer)
        r->newer->older = r->older;
    else
        lim->newest = r->older;
    lim->nresv--;
    for (size_t i = 0; i < r->n; i++) {
        scope_ent_t *e = r->scopes[i];
        e->par = e->par > 0 ? e->par - 1 : 0;
        e->rs = sub_floor0(e->rs, r->micros);
        if (e->win == r->win) {
            e->tk = sub_floor0(e->tk, r->tokens);
            if (settle)
                e->tk = add_sat(e->tk, tokens);
        }
        if (settle) {
            if (e->dur > 0 && e->pend > 0 && now >= e->pend) {
                int64_t k = (now - e->pend) / e->dur + 1, step;
                if (__builtin_mul_overflow(k, e->dur, &step))
                    step = INT64_MAX;
                e->pend = add_sat(e->pend, step);
                e->sp = 0;
            }
            e->sp = add_sat(e->sp, micros);
        }
        e->touched = now;
    }
    free(r);
}

static size_t expire_locked(gw_limits_t *lim, int64_t now)
{
    size_t n = 0;
    while (lim->oldest != NULL && lim->oldest->expires <= now) {
        resv_t *r = lim->oldest;
        resv_t **pp = resv_slot(lim, r->id, r->hash);
        if (pp != NULL)
            *pp = r->next;
        resv_finish(lim, r, 0, 0, 0, now);
        n++;
    }
    return n;
}

int64_t gw_limits_period_next(int64_t end_ms, int64_t now_ms, int64_t dur_ms)
{
    if (dur_ms <= 0 || now_ms < end_ms)
        return end_ms;
    int64_t k = (now_ms - end_ms) / dur_ms + 1, step;
    if (__builtin_mul_overflow(k, dur_ms, &step))
        step = INT64_MAX;
    return add_sat(end_ms, step);
}

/* The period a scope is in now, from the engine's entry and the caller's knowledge. */
static void period_view(int64_t now, const gw_limits_scope_t *s, const scope_ent_t *e, gw_limits_seen_t *v)
{
    int64_t pend = e->pend, sp = e->sp, dur = s->budget_duration_ms;
    v->rolled = 0;
    if (dur > 0) {
        if (s->budget_reset_at_ms > pend) {
            pend = s->budget_reset_at_ms;
            sp = s->spend_micros;
        } else if (s->budget_reset_at_ms == pend && s->spend_micros > sp) {
            sp = s->spend_micros;
        }
        if (pend == 0)
            pend = add_sat(now, dur);
        if (now >= pend) {
            pend = gw_limits_period_next(pend, now, dur);
            sp = 0;
        }
        v->rolled = pend != s->budget_reset_at_ms;
    } else {
        pend = 0;
        if (s->spend_micros > sp)
            sp = s->spend_micros;
    }
    v->pend = pend;
    v->sp = sp;
}

/* The first limit of s that the request would break, or GW_LIMIT_NONE. */
static gw_limits_which_t check_scope(const gw_limits_scope_t *s, const scope_ent_t *e,
                                     const gw_limits_seen_t *v, const gw_limits_req_t *req, int64_t *limit,
                                     int64_t *remaining)
{
    if (s->max_parallel >= 0 && add_sat(e->par, 1) > s->max_parallel) {
        *limit = s->max_parallel;
        *remaining = sub_floor0(s->max_parallel, e->par);
        return GW_LIMIT_PARALLEL;
    }
    if (s->rpm_limit >= 0 && add_sat(v->rq, 1) > s->rpm_limit) {
        *limit = s->rpm_limit;
        *remaining = sub_floor0(s->rpm_limit, v->rq);
        return GW_LIMIT_RPM;
    }
    if (s->tpm_limit >= 0 && add_sat(v->tk, req->est_tokens) > s->tpm_limit) {
        *limit = s->tpm_limit;
        *remaining = sub_floor0(s->tpm_limit, v->tk);
        return GW_LIMIT_TPM;
    }
    if (s->max_budget_micros >= 0 && add_sat(add_sat(v->sp, e->rs), req->est_micros) > s->max_budget_micros) {
        *limit = s->max_budget_micros;
        *remaining = sub_floor0(sub_floor0(s->max_budget_micros, v->sp), e->rs);
        return GW_LIMIT_BUDGET;
    }
    return GW_LIMIT_NONE;
}

static void admit_locked(gw_limits_t *lim, const gw_limits_req_t *req, gw_limits_result_t *res)
{
    int64_t now = gw_limits_now(lim);
    int64_t win = now / GW_LIMITS_WINDOW_MS;
    uint64_t rh = hash_str(14695981039346656037ULL, req->request_id);
    scope_ent_t *ents[GW_LIMITS_MAX_SCOPES];
    gw_limits_seen_t seen[GW_LIMITS_MAX_SCOPES];

    expire_locked(lim, now);
    if (resv_slot(lim, req->request_id, rh) != NULL) {
        gw_limits_result_plain(res, GW_LIMITS_INVALID);
        return;
    }
    int refused = -1;
    gw_limits_which_t which = GW_LIMIT_NONE;
    int64_t limit = 0, remaining = 0, reset = 0;
    for (size_t i = 0; i < req->n_scopes; i++) {
        const gw_limits_scope_t *s = &req->scopes[i];
        if ((ents[i] = scope_get(lim, s->kind, s->id ? s->id : "", now)) == NULL) {
            gw_limits_result_plain(res, GW_LIMITS_UNAVAILABLE);
            return;
        }
        seen[i].rq = ents[i]->win == win ? ents[i]->rq : 0;
        seen[i].tk = ents[i]->win == win ? ents[i]->tk : 0;
        period_view(now, s, ents[i], &seen[i]);
        if (refused < 0 &&
            (which = check_scope(s, ents[i], &seen[i], req, &limit, &remaining)) != GW_LIMIT_NONE) {
            refused = (int)i;
            reset = which == GW_LIMIT_RPM || which == GW_LIMIT_TPM ? (win + 1) * GW_LIMITS_WINDOW_MS
                    : which == GW_LIMIT_BUDGET ? (s->budget_duration_ms > 0 ? seen[i].pend : 0)
                                               : 0;
        }
    }
    resv_t *r = NULL;
    if (refused < 0) {
        if ((lim->nresv >= lim->nrbuckets && grow_resv(lim) != 0) || (r = calloc(1, sizeof(*r))) == NULL) {
            gw_limits_result_plain(res, GW_LIMITS_UNAVAILABLE);
            return;
        }
    }
    if (refused >= 0) {
        gw_limits_fill_result(req, seen, now, refused, which, limit, remaining, reset, res);
        return;
    }
    for (size_t i = 0; i < req->n_scopes; i++) {
        const gw_limits_scope_t *s = &req->scopes[i];
        scope_ent_t *e = ents[i];
        e->win = win;
        e->rq = seen[i].rq = add_sat(seen[i].rq, 1);
        e->tk = seen[i].tk = add_sat(seen[i].tk, req->est_tokens);
        e->par = add_sat(e->par, 1);
        e->pend = seen[i].pend;
        e->sp = seen[i].sp;
        e->rs = add_sat(e->rs, req->est_micros);
        e->dur = s->budget_duration_ms;
        e->touched = now;
        r->scopes[i] = e;
    }
    r->n = req->n_scopes;
    r->hash = rh;
    r->win = win;
    r->tokens = req->est_tokens;
    r->micros = req->est_micros;
    r->expires = add_sat(now, lim->cfg.reservation_ttl_ms);
    snprintf(r->id, sizeof(r->id), "%s", req->request_id);
    r->next = lim->rbuckets[rh & (lim->nrbuckets - 1)];
    lim->rbuckets[rh & (lim->nrbuckets - 1)] = r;
    r->older = lim->newest;
    if (lim->newest)
        lim->newest->newer = r;
    else
        lim->oldest = r;
    lim->newest = r;
    lim->nresv++;
    gw_limits_fill_result(req, seen, now, -1, GW_LIMIT_NONE, 0, 0, 0, res);
}

void gw_limits_local_admit(gw_limits_t *lim, const gw_limits_req_t *req, gw_limits_result_t *res)
{
    if (!gw_limits_req_valid(req)) {
        gw_limits_result_plain(res, GW_LIMITS_INVALID);
        return;
    }
    pthread_mutex_lock(&lim->mu);
    admit_locked(lim, req, res);
    pthread_mutex_unlock(&lim->mu);
}

static int local_finish(gw_limits_t *lim, const char *request_id, int settle, int64_t tokens, int64_t micros)
{
    if (request_id == NULL)
        return 0;
    if (tokens < 0)
        tokens = 0;
    if (micros < 0)
        micros = 0;
    uint64_t h = hash_str(14695981039346656037ULL, request_id);
    pthread_mutex_lock(&lim->mu);
    int64_t now = gw_limits_now(lim);
    expire_locked(lim, now);
    resv_t **pp = resv_slot(lim, request_id, h);
    int found = pp != NULL;
    if (found) {
        resv_t *r = *pp;
        *pp = r->next;
        resv_finish(lim, r, settle, tokens, micros, now);
    }
    pthread_mutex_unlock(&lim->mu);
    return found;
}

int gw_limits_local_settle(gw_limits_t *lim, const char *request_id, int64_t actual_tokens,
                           int64_t actual_micros)
{
    return local_finish(lim, request_id, 1, actual_tokens, actual_micros);
}

int gw_limits_local_release(gw_limits_t *lim, const char *request_id)
{
    return local_finish(lim, request_id, 0, 0, 0);
}

size_t gw_limits_local_expire(gw_limits_t *lim)
{
    pthread_mutex_lock(&lim->mu);
    size_t n = expire_locked(lim, gw_limits_now(lim));
    pthread_mutex_unlock(&lim->mu);
    return n;
}

void gw_limits_local_stats(gw_limits_t *lim, gw_limits_stats_t *out)
{
    pthread_mutex_lock(&lim->mu);
    out->scopes = lim->nscopes;
    out->reservations = lim->nresv;
    pthread_mutex_unlock(&lim->mu);
}

/* ---- configuration ------------------------------------------------------------------------------ */

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

static int parse_port(const char *s, size_t len, int *port)
{
    if (len == 0 || len > 5)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

int gw_limits_parse_redis_url(const char *url, gw_limits_config_t *cfg, char *buf, size_t buflen, char *err,
                              size_t errlen)
{
    const char *p;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else {
        snprintf(err, errlen, "redis url: only redis:// is supported (rediss:// TLS is not)");
        return -1;
    }
    size_t used = 0;
    cfg->redis_password = NULL;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    const char *hostend = slash ? slash : p + strlen(p);
    if (at != NULL && at < hostend) {
        const char *colon = memchr(p, ':', (size_t)(at - p)); /* user:password or :password */
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n > 0) {
            if (n + 1 > buflen - used)
                goto toolong;
            memcpy(buf + used, pw, n);
            buf[used + n] = '\0';
            cfg->redis_password = buf + used;
            used += n + 1;
        }
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(hostend - p));
    const char *hend = colon ? colon : hostend;
    if (hend == p) {
        snprintf(err, errlen, "redis url: no host");
        return -1;
    }
    size_t hn = (size_t)(hend - p);
    if (hn + 1 > buflen - used)
        goto toolong;
    memcpy(buf + used, p, hn);
    buf[used + hn] = '\0';
    cfg->redis_host = buf + used;
    cfg->redis_port = 6379;
    if (colon && parse_port(colon + 1, (size_t)(hostend - colon - 1), &cfg->redis_port) != 0) {
        snprintf(err, errlen, "redis url: bad port");
        return -1;
    }
    cfg->redis_db = 0;
    if (slash && slash[1] != '\0') {
        char *end;
        errno = 0;
        long db = strtol(slash + 1, &end, 10);
        if (errno || *end != '\0' || db < 0 || db > 1000000) {
            snprintf(err, errlen, "redis url: bad db number");
            return -1;
        }
        cfg->redis_db = (int)db;
    }
    cfg->backend = GW_LIMITS_REDIS;
    return 0;
toolong:
    snprintf(err, errlen, "redis url: too long");
    return -1;
}

static const char *json_str_or_num(json_t *obj, const char *key, char *tmp, size_t tmplen)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(tmp, tmplen, "%lld", (long long)json_integer_value(v));
        return tmp;
    }
    return NULL;
}

int gw_limits_config_from(const gw_config_t *c, gw_limits_config_t *cfg, char *buf, size_t buflen, char *err,
                          size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = GW_LIMITS_LOCAL;
    json_t *gs = c ? c->general_settings : NULL, *rs = c ? c->router_settings : NULL;
    json_t *ts = c && c->root ? json_object_get(c->root, "tollgate_settings") : NULL;
    json_t *cp = c && c->litellm_settings ? json_object_get(c->litellm_settings, "cache_params") : NULL;
    char porttmp[32], hosttmp[32], pwtmp[32];
    const char *url = getenv("REDIS_URL");
    if (url != NULL && *url != '\0') {
        if (gw_limits_parse_redis_url(url, cfg, buf, buflen, err, errlen) != 0)
            return -1;
    } else {
        const char *host = json_str_or_num(rs, "redis_host", hosttmp, sizeof(hosttmp));
        const char *port = json_str_or_num(rs, "redis_port", porttmp, sizeof(porttmp));
        const char *pw = json_str_or_num(rs, "redis_password", pwtmp, sizeof(pwtmp));
        if (host == NULL) {
            host = json_str_or_num(cp, "host", hosttmp, sizeof(hosttmp));
            port = json_str_or_num(cp, "port", porttmp, sizeof(porttmp));
            pw = json_str_or_num(cp, "password", pwtmp, sizeof(pwtmp));
        }
        if (host == NULL) {
            host = getenv("REDIS_HOST");
            port = getenv("REDIS_PORT");
            pw = getenv("REDIS_PASSWORD");
        }
        if (host != NULL && *host != '\0') {
            cfg->backend = GW_LIMITS_REDIS;
            cfg->redis_host = host;
            cfg->redis_port = 6379;
            if (port != NULL && parse_port(port, strlen(port), &cfg->redis_port) != 0) {
                snprintf(err, errlen, "redis_port: not a port number");
                return -1;
            }
            /* the temporaries die with this call: host and password are copied into buf */
            size_t hl = strlen(host) + 1, pl = pw ? strlen(pw) + 1 : 0;
            if (hl + pl > buflen) {
                snprintf(err, errlen, "redis_host / redis_password: too long");
                return -1;
            }
            memcpy(buf, host, hl);
            cfg->redis_host = buf;
            if (pw != NULL && *pw != '\0') {
                memcpy(buf + hl, pw, pl);
                cfg->redis_password = buf + hl;
            }
        }
    }
    for (int i = 0; i < 2; i++) {
        json_t *sec = i == 0 ? gs : ts;
        json_t *mode = sec ? json_object_get(sec, "limits_failure_mode") : NULL;
        if (json_is_string(mode)) {
            if (strcmp(json_string_value(mode), "fail_closed") == 0)
                cfg->fail_closed = 1;
            else if (strcmp(json_string_value(mode), "fail_open") == 0)
                cfg->fail_closed = 0;
            else {
                snprintf(err, errlen, "limits_failure_mode: expected fail_open or fail_closed");
                return -1;
            }
        }
        json_t *ttl = sec ? json_object_get(sec, "limits_reservation_ttl_ms") : NULL;
        if (json_is_integer(ttl)) {
            if (json_integer_value(ttl) < 1000 || json_integer_value(ttl) > 24LL * 3600 * 1000) {
                snprintf(err, errlen, "limits_reservation_ttl_ms: between 1000 and 86400000");
                return -1;
            }
            cfg->reservation_ttl_ms = json_integer_value(ttl);
        }
    }
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

gw_limits_t *gw_limits_create(const gw_limits_config_t *cfg, char *err, size_t errlen)
{
    gw_limits_t *lim = calloc(1, sizeof(*lim));
    if (lim == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    lim->cfg = *cfg;
    if (lim->cfg.reservation_ttl_ms <= 0)
        lim->cfg.reservation_ttl_ms = GW_LIMITS_DEFAULT_TTL_MS;
    if (lim->cfg.redis_timeout_ms <= 0)
        lim->cfg.redis_timeout_ms = 1000;
    if (lim->cfg.max_scopes == 0)
        lim->cfg.max_scopes = GW_LIMITS_DEFAULT_MAX_SCOPES;
    const char *pre = cfg->redis_prefix ? cfg->redis_prefix : "";
    if (strchr(pre, '{') != NULL || strchr(pre, '}') != NULL ||
        (size_t)snprintf(lim->prefix, sizeof(lim->prefix), "%s{tollgate}:", pre) >= sizeof(lim->prefix)) {
        snprintf(err, errlen, "redis prefix: too long or contains a brace");
        free(lim);
        return NULL;
    }
    lim->cfg.redis_prefix = lim->prefix;
    pthread_mutex_init(&lim->mu, NULL);
    if (grow_scopes(lim) != 0 || grow_resv(lim) != 0) {
        snprintf(err, errlen, "out of memory");
        gw_limits_destroy(lim);
        return NULL;
    }
    if (lim->cfg.backend == GW_LIMITS_REDIS) {
        const char *host = cfg->redis_host ? cfg->redis_host : "127.0.0.1";
        if (copy_str(lim->host, sizeof(lim->host), host) != 0 ||
            copy_str(lim->password, sizeof(lim->password), cfg->redis_password ? cfg->redis_password : "") !=
                0) {
            snprintf(err, errlen, "redis host or password too long");
            gw_limits_destroy(lim);
            return NULL;
        }
        lim->cfg.redis_host = lim->host;
        lim->cfg.redis_password = lim->password;
        if (lim->cfg.redis_port <= 0)
            lim->cfg.redis_port = 6379;
        /* hiredis resolves names with a blocking getaddrinfo at every (re)connect: resolve once
         * here, at start-up, and give it the numeric address. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        int rc = getaddrinfo(lim->host, NULL, &hints, &ai);
        if (rc != 0 || ai == NULL ||
            getnameinfo(ai->ai_addr, ai->ai_addrlen, lim->addr, sizeof(lim->addr), NULL, 0, NI_NUMERICHOST) !=
                0) {
            snprintf(err, errlen, "redis host %s: %s", lim->host, rc ? gai_strerror(rc) : "no address");
            if (ai)
                freeaddrinfo(ai);
            gw_limits_destroy(lim);
            return NULL;
        }
        freeaddrinfo(ai);
        gw_limits_redis_init(lim);
    }
    return lim;
}

void gw_limits_destroy(gw_limits_t *lim)
{
    if (lim == NULL)
        return;
    for (size_t i = 0; i < lim->nrbuckets; i++)
        for (resv_t *r = lim->rbuckets[i], *next; r != NULL; r = next) {
            next = r->next;
            free(r);
        }
    for (size_t i = 0; i < lim->nsbuckets; i++)
        for (scope_ent_t *e = lim->sbuckets[i], *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    free(lim->rbuckets);
    free(lim->sbuckets);
    pthread_mutex_destroy(&lim->mu);
    free(lim);
}

/*
 * policy.c — admission, settlement and spend records for virtual keys (see policy.h).
 */
#include "gateway/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/keys.h"
#include "gateway/models.h"
#include "gateway/pricing.h"
#include "gateway/server.h"
#include "gateway/spend_batch.h"

struct gw_policy_ticket {
    gw_policy_cont_fn cont;
    void *ud;
    int cancelled;
    gw_limits_loop_t *lp;
    char rid[GW_LIMITS_ID_MAX];
};

static int64_t limit_or_none(int64_t v)
{
    return v < 0 ? GW_LIMITS_NONE : v;
}

static void add_scope(gw_limits_scope_t *s, size_t *n, gw_limits_kind_t kind, const char *id,
                      const gw_level_limits_t *l)
{
    gw_limits_scope_t *x = &s[(*n)++];
    x->kind = kind;
    x->id = id;
    x->rpm_limit = limit_or_none(l->rpm);
    x->tpm_limit = limit_or_none(l->tpm);
    x->max_parallel = limit_or_none(l->max_parallel);
    x->max_budget_micros = limit_or_none(l->max_budget);
    x->spend_micros = l->spend > 0 ? l->spend : 0;
    x->budget_duration_ms = gw_duration_budget_ms(l->budget_duration);
    x->budget_reset_at_ms = l->budget_reset_at_ms > 0 ? l->budget_reset_at_ms : 0;
}

static void on_admit(void *ud, const gw_limits_result_t *res)
{
    gw_policy_ticket_t *t = ud;
    if (t->cancelled) {
        if (res->verdict == GW_LIMITS_ADMITTED)
            gw_limits_release(t->lp, t->rid, NULL, NULL);
    } else {
        t->cont(t->ud, res);
    }
    free(t);
}

static int64_t now_unix_ms(void);

static void add_model_scope(gw_limits_scope_t *s, size_t *n, const gw_model_limit_t *ml)
{
    gw_limits_scope_t *x = &s[(*n)++];
    *x = (gw_limits_scope_t){.kind = GW_SCOPE_KEY_MODEL,
                             .id = ml->scope_id,
                             .rpm_limit = limit_or_none(ml->rpm),
                             .tpm_limit = limit_or_none(ml->tpm),
                             .max_parallel = GW_LIMITS_NONE,
                             .max_budget_micros = limit_or_none(ml->max_budget),
                             .budget_duration_ms = ml->budget_duration_ms,
                             .spend_micros = ml->seed_end_ms == 0 ? ml->seed_spend : 0};
    if (ml->max_budget >= 0 && ml->budget_duration_ms > 0) { /* clock-aligned periods (keys.h) */
        int64_t start, end;
        gw_model_limit_period(ml, now_unix_ms(), &start, &end);
        x->budget_reset_at_ms = end;
        x->spend_micros = end == ml->seed_end_ms ? ml->seed_spend : 0;
    }
}

static void add_group_scope(gw_limits_scope_t *s, size_t *n, const gw_model_group_t *g)
{
    gw_limits_scope_t *x = &s[(*n)++];
    *x = (gw_limits_scope_t){.kind = GW_SCOPE_MODEL,
                             .id = g->name,
                             .rpm_limit = limit_or_none(g->rpm),
                             .tpm_limit = limit_or_none(g->tpm),
                             .max_parallel = limit_or_none(g->max_parallel),
                             .max_budget_micros = GW_LIMITS_NONE};
}

static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void add_global_scope(gw_limits_scope_t *s, size_t *n, const gw_policy_global_t *g)
{
    gw_limits_scope_t *x = &s[(*n)++];
    *x = (gw_limits_scope_t){.kind = GW_SCOPE_GLOBAL,
                             .id = "",
                             .rpm_limit = GW_LIMITS_NONE,
                             .tpm_limit = GW_LIMITS_NONE,
                             .max_parallel = GW_LIMITS_NONE,
                             .max_budget_micros = g->max_budget};
    int64_t start, end;
    if (g->duration[0] != '\0' && gw_policy_period(g->duration, now_unix_ms(), &start, &end) == 0) {
        x->budget_duration_ms = end - start;
        x->budget_reset_at_ms = end; /* the clock-aligned period; the seed belongs to one of them */
        x->spend_micros = end == g->seed_end_ms ? g->seed_spend : 0;
    } else {
        x->spend_micros = g->seed_spend;
    }
}

int gw_policy_needs_admission(const gw_reqctx_t *rc, const gw_route_t *route)
{
    return (route != NULL && route->group != NULL && route->group->limited) ||
           rc->w->server->global_budget != NULL;
}

gw_policy_ticket_t *gw_policy_admit(gw_reqctx_t *rc, const gw_route_t *route,
                                    const gw_level_limits_t *end_user, const gw_price_t *price,
                                    size_t est_prompt_bytes, int64_t max_tokens, gw_policy_cont_fn cont,
                                    void *ud)
{
    const gw_principal_t *p = rc->principal;
    const gw_policy_global_t *global = rc->w->server->global_budget;
    gw_limits_scope_t scopes[GW_LIMITS_MAX_SCOPES];
    size_t n = 0;
    /* DESIGN §7: key (with its per-model limits and the model's) → team → team member → user →
     * end user → org → global. At most 9 scopes, under GW_LIMITS_MAX_SCOPES. */
    if (p != NULL) {
        add_scope(scopes, &n, GW_SCOPE_KEY, p->token, &p->key);
        const gw_model_limit_t *ml = p->n_model_limits > 0 ? gw_principal_model_limit(p, rc->model) : NULL;
        if (ml != NULL)
            add_model_scope(scopes, &n, ml);
    }
    if (route != NULL && route->group != NULL && route->group->limited)
        add_group_scope(scopes, &n, route->group);
    if (p != NULL) {
        if (p->team_id != NULL) /* a team key's budget is the team's (LiteLLM), its member's within */
            add_scope(scopes, &n, GW_SCOPE_TEAM, p->team_id, &p->team);
        if (p->has_member)
            add_scope(scopes, &n, GW_SCOPE_TEAM_MEMBER, p->member_id, &p->member);
        if (p->user_id != NULL && p->team_id == NULL) {
            add_scope(scopes, &n, GW_SCOPE_USER, p->user_id, &p->user);
        } else if (p->user_id != NULL) {
            /* LiteLLM checks a user's personal budget on personal keys only: a team key spends the
             * team's budget; the user's rate limits still hold */
            gw_level_limits_t rate_only = p->user;
            rate_only.max_budget = -1;
            add_scope(scopes, &n, GW_SCOPE_USER, p->user_id, &rate_only);
        }
    }
    if (end_user != NULL && rc->end_user != NULL)
        add_scope(scopes, &n, GW_SCOPE_END_USER, rc->end_user, end_user);
    if (p != NULL && p->org_id != NULL)
        add_scope(scopes, &n, GW_SCOPE_ORG, p->org_id, &p->org);
    if (global != NULL)
        add_global_scope(scopes, &n, global);
    uint64_t est = 0;
    if (price != NULL &&
        gw_pricing_estimate_micros(price, est_prompt_bytes, max_tokens, 1024, &est) != GW_PRICING_OK)
        est = UINT64_MAX / 4; /* an estimate that overflows is refused by any budget */
    gw_limits_req_t req = {.request_id = rc->uid,
                           .scopes = scopes,
                           .n_scopes = n,
                           /* tpm reserves the prompt and the asked-for completion; without
                            * max_tokens only the prompt (settled with the real count after) */
                           .est_tokens =
                               (int64_t)((est_prompt_bytes + 3) / 4) + (max_tokens > 0 ? max_tokens : 0),
                           .est_micros = (int64_t)(est > INT64_MAX ? INT64_MAX : est)};
    gw_policy_ticket_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        gw_limits_result_t r = {.verdict = GW_LIMITS_UNAVAILABLE};
        cont(ud, &r);
        return NULL;
    }
    t->cont = cont;
    t->ud = ud;
    t->lp = rc->w->lim;
    snprintf(t->rid, sizeof(t->rid), "%s", rc->uid);
    rc->admission = t;
    gw_limits_admit(rc->w->lim, &req, on_admit, t); /* may answer at once: t is freed then */
    return rc->admission;
}

void gw_policy_cancel(gw_policy_ticket_t *t)
{
    if (t != NULL)
        t->cancelled = 1;
}

static void add_num_header(gw_reqctx_t *rc, const char *name, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
    h2o_add_header_by_str(&rc->req->pool, &rc->req->res.headers, name, strlen(name), 0, NULL,
                          h2o_strdup(&rc->req->pool, buf, (size_t)n).base, (size_t)n);
}

static int64_t seconds_until(int64_t at_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return at_ms > now ? (at_ms - now + 999) / 1000 : 0;
}

void gw_policy_headers(gw_reqctx_t *rc, const gw_limits_result_t *res)
{
    if (res->limit_requests >= 0) {
        add_num_header(rc, "x-ratelimit-limit-requests", res->limit_requests);
        add_num_header(rc, "x-ratelimit-remaining-requests",
                       res->remaining_requests > 0 ? res->remaining_requests : 0);
        add_num_header(rc, "x-ratelimit-reset-requests", seconds_until(res->reset_requests_ms));
    }
    if (res->limit_tokens >= 0) {
        add_num_header(rc, "x-ratelimit-limit-tokens", res->limit_tokens);
        add_num_header(rc, "x-ratelimit-remaining-tokens",
                       res->remaining_tokens > 0 ? res->remaining_tokens : 0);
        add_num_header(rc, "x-ratelimit-reset-tokens", seconds_until(res->reset_tokens_ms));
    }
    if (res->verdict == GW_LIMITS_REFUSED && res->retry_after_s > 0)
        add_num_header(rc, "retry-after", res->retry_after_s);
}

void gw_policy_refuse(gw_reqctx_t *rc, const gw_limits_result_t *res)
{
    if (res->verdict == GW_LIMITS_UNAVAILABLE) {
        gw_request_error(rc, GW_ERR_UNAVAILABLE,
                         "rate limits cannot be checked right now (limiter unavailable)", NULL);
        return;
    }
    if (res->verdict != GW_LIMITS_REFUSED) {
        gw_request_error(rc, GW_ERR_INTERNAL, "rate limit check failed", NULL);
        return;
    }
    gw_policy_headers(rc, res);
    char msg[400], who[GW_LIMITS_ID_MAX + 48];
    int budget = res->which == GW_LIMIT_BUDGET;
    const char *id = res->id, *slash;
    /* a key × model scope is named by its model (the key's hash is no news to its caller) */
    if (res->kind == GW_SCOPE_KEY_MODEL && (slash = strchr(id, '/')) != NULL)
        id = slash + 1;
    if (id[0] == '\0') /* the global budget */
        snprintf(who, sizeof(who), "%s (the proxy's budget)", gw_limits_kind_name(res->kind));
    else
        snprintf(who, sizeof(who), "%s '%s'", gw_limits_kind_name(res->kind), id);
    if (budget)
        snprintf(msg, sizeof(msg), "Budget has been exceeded for %s: max_budget %lld.%06lld USD", who,
                 (long long)(res->limit / 1000000), (long long)(res->limit % 1000000));
    else
        snprintf(msg, sizeof(msg), "Rate limit exceeded for %s: %s %lld, remaining %lld", who,
                 gw_limits_which_name(res->which), (long long)res->limit,
                 (long long)(res->remaining > 0 ? res->remaining : 0));
    rc->error = budget ? "budget_exceeded" : "rate_limit_exceeded";
    gw_request_error(rc, budget ? GW_ERR_BUDGET : GW_ERR_RATE_LIMIT, msg, NULL);
}

void gw_policy_settle(gw_reqctx_t *rc)
{
    if (!rc->admitted || rc->settled)
        return;
    rc->settled = 1;
    if (rc->has_cost) {
        int64_t tokens = (rc->usage.prompt_tokens > 0 ? rc->usage.prompt_tokens : 0) +
                         (rc->usage.completion_tokens > 0 ? rc->usage.completion_tokens : 0);
        gw_limits_settle(rc->w->lim, rc->uid, tokens, (int64_t)rc->cost_micros, NULL, NULL);
    } else {
        gw_limits_release(rc->w->lim, rc->uid, NULL, NULL);
    }
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw_policy_record_spend(gw_reqctx_t *rc, const char *upstream_model, const char *call_type,
                           gw_spend_hold_t *hold, gw_spend_hold_cb cb)
{
    gw_spend_t *sp = rc->w->server->spend;
    if (sp == NULL || rc->spend_recorded || !rc->has_cost)
        return 0;
    rc->spend_recorded = 1;
    const gw_principal_t *p = rc->principal;
    int64_t end = unix_ms();
    int64_t elapsed = (int64_t)((gw_now_ns() - rc->start_ns) / 1000000);
    gw_spend_rec_t rec = {
        .request_id = rc->uid,
        .call_type = call_type,
        .key_hash = p != NULL ? p->token : NULL,
        .key_alias = p != NULL ? p->key_alias : NULL,
        .user_id = p != NULL ? p->user_id : NULL,
        .team_id = p != NULL ? p->team_id : NULL,
        .org_id = p != NULL ? p->org_id : NULL,
        .end_user = rc->end_user,
        .model_group = rc->model,
        .model = upstream_model,
        .provider = rc->provider,
        .prompt_tokens = rc->usage.prompt_tokens > 0 ? rc->usage.prompt_tokens : 0,
        .completion_tokens = rc->usage.completion_tokens > 0 ? rc->usage.completion_tokens : 0,
        .cache_read_tokens = rc->usage.cached_tokens > 0 ? rc->usage.cached_tokens : 0,
        .spend_micros = (int64_t)rc->cost_micros,
        .start_ms = end - elapsed,
        .end_ms = end,
        .stream = rc->stream,
    };
    gw_spend_batch_t *b = rc->w->spendq;
    int r = b != NULL ? gw_spend_batch_add(b, &rec) : gw_spend_record(sp, &rec);
    if (r != GW_SPEND_OK)
        fprintf(
            stderr,
            "{\"level\":\"error\",\"msg\":\"spend journal write failed\",\"request_id\":\"%s\",\"rc\":%d}\n",
            rc->rid, r);
    if (b == NULL || hold == NULL || r == GW_SPEND_EINVAL)
        return 0; /* written already (or never will be: a record that cannot be formatted) */
    gw_spend_batch_hold(b, hold, cb);
    return 1;
}

/* ---- the global budget ------------------------------------------------------------------- */

int gw_policy_period(const char *duration, int64_t now_ms, int64_t *start, int64_t *end)
{
    gw_duration_t d;
    if (duration == NULL || gw_duration_parse(duration, &d) != 0)
        return -1;
    if (d.months > 0) { /* calendar months counted from January 1970 */
        time_t t = (time_t)(now_ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL)
            return -1;
        int64_t m = ((int64_t)tm.tm_year - 70) * 12 + tm.tm_mon, first = m - m % d.months;
        struct tm a = {.tm_year = (int)(first / 12) + 70, .tm_mon = (int)(first % 12), .tm_mday = 1};
        time_t ta = timegm(&a);
        gw_duration_t step = {0, d.months};
        if (ta == (time_t)-1 || gw_duration_add((int64_t)ta * 1000, &step, end) != 0)
            return -1;
        *start = (int64_t)ta * 1000;
        return 0;
    }
    int64_t len = d.seconds * 1000;
    *start = now_ms - now_ms % len;
    *end = *start + len;
    return 0;
}

typedef struct seed_job {
    const char *since; /* ISO time, or NULL for all time */
    int64_t spend;
} seed_job_t;

static int job_seed(gw_store_conn_t *c, void *ud)
{
    seed_job_t *sj = ud;
    json_t *rows = NULL;
    gw_store_param_t p[] = {GW_P_TEXT(sj->since)};
    int st = sj->since != NULL
                 ? gw_store_query(c,
                                  "SELECT COALESCE(SUM(spend), 0) AS s FROM spend_logs "
                                  "WHERE \"startTime\" >= $1",
                                  p, 1, &rows)
                 : gw_store_query(c, "SELECT COALESCE(SUM(spend), 0) AS s FROM spend_logs", NULL, 0, &rows);
    if (st == GW_STORE_OK) {
        json_t *v = json_object_get(json_array_get(rows, 0), "s");
        sj->spend = json_is_integer(v) ? json_integer_value(v)
                    : json_is_real(v)  ? (int64_t)json_real_value(v)
                                       : 0;
    }
    json_decref(rows);
    return st;
}

int gw_policy_global_init(const gw_config_t *cfg, gw_store_t *st, int64_t now_ms, gw_policy_global_t **out,
                          char *err, size_t errlen)
{
    *out = NULL;
    json_t *mb = json_object_get(cfg->litellm_settings, "max_budget");
    if (mb == NULL || json_is_null(mb))
        return 0;
    uint64_t micros;
    double usd = json_is_number(mb) ? json_number_value(mb) : -1;
    if (json_is_string(mb)) {
        char *e;
        usd = strtod(json_string_value(mb), &e);
        if (e == json_string_value(mb) || *e != '\0')
            usd = -1;
    }
    if (gw_pricing_double_usd(usd, 6, &micros) != GW_PRICING_OK || micros > (uint64_t)INT64_MAX) {
        snprintf(err, errlen, "litellm_settings.max_budget must be an amount in dollars >= 0");
        return -1;
    }
    gw_policy_global_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->max_budget = (int64_t)micros;
    const char *dur = json_string_value(json_object_get(cfg->litellm_settings, "budget_duration"));
    int64_t start = 0, end = 0;
    if (dur != NULL && dur[0] != '\0') {
        if (strlen(dur) >= sizeof(g->duration) || gw_policy_period(dur, now_ms, &start, &end) != 0) {
            snprintf(err, errlen,
                     "litellm_settings.budget_duration must be a duration like \"30s\", \"1d\" or \"1mo\"");
            free(g);
            return -1;
        }
        snprintf(g->duration, sizeof(g->duration), "%s", dur);
    }
    char since[GW_STORE_TIME_LEN];
    seed_job_t sj = {.since = NULL};
    if (end > 0) {
        gw_store_time_iso(start, since);
        sj.since = since;
    }
    if (st != NULL && gw_store_run(st, job_seed, &sj, err, errlen) != GW_STORE_OK) {
        free(g);
        return -1;
    }
    g->seed_spend = sj.spend > 0 ? sj.spend : 0;
    g->seed_end_ms = end;
    *out = g;
    return 0;
}

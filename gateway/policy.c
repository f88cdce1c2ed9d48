/*
 * policy.c — admission, settlement and spend records for virtual keys (see policy.h).
 */
#include "gateway/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/keys.h"
#include "gateway/pricing.h"
#include "gateway/server.h"

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

gw_policy_ticket_t *gw_policy_admit(gw_reqctx_t *rc, const gw_level_limits_t *end_user,
                                    const gw_price_t *price, size_t est_prompt_bytes, int64_t max_tokens,
                                    gw_policy_cont_fn cont, void *ud)
{
    const gw_principal_t *p = rc->principal;
    gw_limits_scope_t scopes[5];
    size_t n = 0;
    if (p != NULL) {
        add_scope(scopes, &n, GW_SCOPE_KEY, p->token, &p->key);
        if (p->user_id != NULL)
            add_scope(scopes, &n, GW_SCOPE_USER, p->user_id, &p->user);
        if (p->team_id != NULL) /* DESIGN §7: a team key's budget is the team's, not the user's */
            add_scope(scopes, &n, GW_SCOPE_TEAM, p->team_id, &p->team);
    }
    if (end_user != NULL && rc->end_user != NULL) /* DESIGN §7: after the user, before the org */
        add_scope(scopes, &n, GW_SCOPE_END_USER, rc->end_user, end_user);
    if (p != NULL && p->org_id != NULL)
        add_scope(scopes, &n, GW_SCOPE_ORG, p->org_id, &p->org);
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
    char msg[400];
    int budget = res->which == GW_LIMIT_BUDGET;
    if (budget)
        snprintf(msg, sizeof(msg), "Budget has been exceeded for %s '%s': max_budget %lld.%06lld USD",
                 gw_limits_kind_name(res->kind), res->id, (long long)(res->limit / 1000000),
                 (long long)(res->limit % 1000000));
    else
        snprintf(msg, sizeof(msg), "Rate limit exceeded for %s '%s': %s %lld, remaining %lld",
                 gw_limits_kind_name(res->kind), res->id, gw_limits_which_name(res->which),
                 (long long)res->limit, (long long)(res->remaining > 0 ? res->remaining : 0));
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

void gw_policy_record_spend(gw_reqctx_t *rc, const char *upstream_model, const char *call_type)
{
    gw_spend_t *sp = rc->w->server->spend;
    if (sp == NULL || rc->spend_recorded || !rc->has_cost)
        return;
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
    int r = gw_spend_record(sp, &rec);
    if (r != GW_SPEND_OK)
        fprintf(
            stderr,
            "{\"level\":\"error\",\"msg\":\"spend journal write failed\",\"request_id\":\"%s\",\"rc\":%d}\n",
            rc->rid, r);
}

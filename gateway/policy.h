/*
 * policy.h — what a virtual key's call must pass before it reaches a provider, and what it leaves
 * behind: admission against the limits and budgets of every level of the hierarchy (key, key ×
 * model, model group, team, team member, user, end user, organization, global; gateway/limits.h:
 * rpm, tpm, max_parallel, budgets with periods) with a reservation of the call's estimated cost,
 * settlement of the real cost when the call ends, and the spend record written to the journal
 * (gateway/spend.h, batched per loop iteration by gateway/spend_batch.h) before the response's
 * last byte.
 *
 * The master key is not limited by key, user, team or organization (it is the operator's); an end
 * user with limits (endusers.h: the request's `user`), a model group's deployment limits and the
 * global budget are enforced for every caller, the master key included, as LiteLLM does. Calls
 * run on the worker's loop; the admission answer may come later (Redis), so the caller gets a
 * ticket it cancels if the client leaves first — a late answer then releases its own reservation.
 *
 * Budget periods. When an admission reports a period as rolled (gw_limits_period_t.rolled),
 * policy does nothing with it: the limiter already counts the new period from 0, and the store's
 * reset job (budgets.h) writes spend 0 and the same next budget_reset_at within about a second,
 * then notes a change so every cache reloads. Doing it from the request path too would add a
 * store write per rolled scope and per worker (each holds its own stale copy until the reload)
 * for no gain in what is admitted. (The global budget's periods are clock-aligned and stored
 * nowhere; key × model budgets live in the limiter only.)
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdint.h>

#include "gateway/limits.h"
#include "gateway/request.h"
#include "gateway/spend.h"
#include "gateway/spend_batch.h"
#include "gateway/store.h"

struct gw_route;
struct gw_price;
struct gw_level_limits;
struct gw_server;

typedef struct gw_policy_ticket gw_policy_ticket_t;

/** Runs once on the loop with the verdict (res valid during the call only). */
typedef void (*gw_policy_cont_fn)(void *ud, const gw_limits_result_t *res);

/**
 * The proxy-wide budget, LiteLLM's `litellm_settings.max_budget` (dollars) with
 * `budget_duration`: one GW_SCOPE_GLOBAL scope (id "") in every admission, the master key's
 * included (LiteLLM: "every API call counts toward this global budget"). Periods are aligned to
 * the clock (a "1d" budget resets at 00:00 UTC, "1mo" on the first of the month, "30s" on
 * multiples of 30 s since the epoch), so every instance and every restart agrees on them without
 * storing a reset time. Start-up seeds the current period's spend from the store (spend_logs
 * since the period began), so a restart does not forget it.
 */
typedef struct gw_policy_global {
    int64_t max_budget;  /* micro-dollars */
    char duration[16];   /* "" = never resets */
    int64_t seed_spend;  /* micro-dollars spent in the seeded period, as the store knew at start */
    int64_t seed_end_ms; /* end of the seeded period (0: no duration) */
} gw_policy_global_t;

/**
 * Start-up, blocking (store query): reads the global budget from the config and seeds it.
 * *out = NULL when none is configured (then nothing is added to any admission). Returns 0, or -1
 * with err set (a malformed max_budget or budget_duration, or the store failed).
 */
int gw_policy_global_init(const gw_config_t *cfg, struct gw_store *st, int64_t now_ms,
                          gw_policy_global_t **out, char *err, size_t errlen);

/**
 * The period of a clock-aligned budget containing now_ms: [*start, *end). Durations as
 * gw_duration_parse reads them. Returns 0, or -1 for an invalid duration.
 */
int gw_policy_period(const char *duration, int64_t now_ms, int64_t *start, int64_t *end);

/** 1 when a call on route needs an admission even from the master key without end-user limits
 *  (the model group has limits, or the global budget is on). */
int gw_policy_needs_admission(const gw_reqctx_t *rc, const struct gw_route *route);

/**
 * Asks the limiter to admit rc's call, scopes in DESIGN §7's order: the key, the key × model
 * (model_max_budget / model_rpm_limit / model_tpm_limit for rc->model), the model group's
 * deployment limits (route's group), the team, the team member, the user, the end user (when
 * end_user is not NULL, with those limits), the organization, the global budget. The master key
 * has no key, team or user scopes. est_prompt_bytes is the OpenAI body size, max_tokens the
 * request's (-1 absent), price may be NULL (unpriced: budgets see 0). Returns a ticket, or NULL
 * when cont already ran (the local backend answers at once) — in both cases cont runs exactly
 * once unless the ticket is cancelled first.
 */
gw_policy_ticket_t *gw_policy_admit(gw_reqctx_t *rc, const struct gw_route *route,
                                    const struct gw_level_limits *end_user, const struct gw_price *price,
                                    size_t est_prompt_bytes, int64_t max_tokens, gw_policy_cont_fn cont,
                                    void *ud);

/** The client left: cont will not run; an admission that still arrives is released. */
void gw_policy_cancel(gw_policy_ticket_t *t);

/** Adds x-ratelimit-* (and on refusals retry-after) headers for res to rc's response. */
void gw_policy_headers(gw_reqctx_t *rc, const gw_limits_result_t *res);

/** Replies 429/503 for a refused or unavailable admission, in the client's surface shape. */
void gw_policy_refuse(gw_reqctx_t *rc, const gw_limits_result_t *res);

/** The call ended: settles the reservation with the real cost (rc->has_cost), or releases it. */
void gw_policy_settle(gw_reqctx_t *rc);

/**
 * Adds rc's spend record (once per request; nothing without a cost) to this worker's journal
 * batch (spend_batch.h), which writes it at the end of the loop iteration. Call it when the cost
 * is known and BEFORE handing the response's final byte to h2o. With hold not NULL, when a
 * record was added now: hold is held and 1 is returned — the caller must not send its final
 * byte until cb(hold) runs on this loop (hold->ok 1: written, and fdatasynced with journal_sync
 * always; 0: it could not be, and the response must not complete normally), and must
 * gw_spend_hold_cancel(hold) if it goes away first. Returns 0 when there is nothing to wait for
 * (no record added, no journal, or no batch on this worker: then the record was written
 * synchronously): send at once. With hold NULL (a client that left) the record is only added.
 */
int gw_policy_record_spend(gw_reqctx_t *rc, const char *upstream_model, const char *call_type,
                           gw_spend_hold_t *hold, gw_spend_hold_cb cb);

#endif

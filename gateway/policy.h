/*
 * policy.h — what a virtual key's call must pass before it reaches a provider, and what it leaves
 * behind: admission against the key's, user's, team's and organization's limits and budgets
 * (gateway/limits.h: rpm, tpm, max_parallel, budgets with periods) with a reservation of the
 * call's estimated cost, settlement of the real cost when the call ends, and the spend record
 * written to the journal (gateway/spend.h) before the response's last byte.
 *
 * The master key is not limited by key, user, team or organization (it is the operator's); an end
 * user with limits (endusers.h: the request's `user`) is enforced for every caller, the master
 * key included, as LiteLLM does. Calls run on the worker's loop; the admission answer may come
 * later (Redis), so the caller gets a ticket it cancels if the client leaves first — a late
 * answer then releases its own reservation.
 *
 * Budget periods. When an admission reports a period as rolled (gw_limits_period_t.rolled),
 * policy does nothing with it: the limiter already counts the new period from 0, and the store's
 * reset job (budgets.h) writes spend 0 and the same next budget_reset_at within about a second,
 * then notes a change so every cache reloads. Doing it from the request path too would add a
 * store write per rolled scope and per worker (each holds its own stale copy until the reload)
 * for no gain in what is admitted.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdint.h>

#include "gateway/limits.h"
#include "gateway/request.h"
#include "gateway/spend.h"

struct gw_route;
struct gw_price;
struct gw_level_limits;

typedef struct gw_policy_ticket gw_policy_ticket_t;

/** Runs once on the loop with the verdict (res valid during the call only). */
typedef void (*gw_policy_cont_fn)(void *ud, const gw_limits_result_t *res);

/**
 * Asks the limiter to admit rc's call: the scopes of rc->principal (none for the master key) and,
 * when end_user is not NULL, rc->end_user's scope with those limits. est_prompt_bytes is the
 * OpenAI body size, max_tokens the request's (-1 absent), price may be NULL (unpriced: budgets
 * see 0). Returns a ticket, or NULL when cont already ran (the local backend answers at once) — in
 * both cases cont runs exactly once unless the ticket is cancelled first.
 */
gw_policy_ticket_t *gw_policy_admit(gw_reqctx_t *rc, const struct gw_level_limits *end_user,
                                    const struct gw_price *price, size_t est_prompt_bytes, int64_t max_tokens,
                                    gw_policy_cont_fn cont, void *ud);

/** The client left: cont will not run; an admission that still arrives is released. */
void gw_policy_cancel(gw_policy_ticket_t *t);

/** Adds x-ratelimit-* (and on refusals retry-after) headers for res to rc's response. */
void gw_policy_headers(gw_reqctx_t *rc, const gw_limits_result_t *res);

/** Replies 429/503 for a refused or unavailable admission, in the client's surface shape. */
void gw_policy_refuse(gw_reqctx_t *rc, const gw_limits_result_t *res);

/** The call ended: settles the reservation with the real cost (rc->has_cost), or releases it. */
void gw_policy_settle(gw_reqctx_t *rc);

/** Appends rc's spend record to the journal (once); call before the response's final byte. */
void gw_policy_record_spend(gw_reqctx_t *rc, const char *upstream_model, const char *call_type);

#endif

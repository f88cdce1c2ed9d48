/*
 * budgets.h — budget periods that reset in the store: the job that, once a period has ended,
 * sets spend back to 0 and moves budget_reset_at to the next period end, for keys, users, teams
 * and the budgets table (whose periods cover end users, team members and organizations).
 *
 * Why a job. The limiter (limits.h) rolls a scope's period by itself the moment its end passes,
 * so admission never waits for this job; but the store's spend would otherwise keep growing
 * across periods and budget_reset_at would stay in the past: /key/info, /user/info, /team/info,
 * /customer/info would show the wrong spend and reset time, and a restart or a cache reload
 * would read stale rows. LiteLLM runs the same kind of job (ResetBudgetJob).
 *
 * The rule (the same instant everywhere). A period that ended at E with length D (budget_duration
 * as gw_duration_budget_ms: months are 30 days) is followed by the one that ends at
 * gw_limits_period_next(E, now, D) = E + k × D, k = whole durations since E + 1 — what the engine
 * and the Redis script compute, and what /key/generate starts from (now + D). So periods stay
 * anchored to the time the budget was set, and engine and store agree on every boundary.
 * (LiteLLM's newer releases align resets to calendar boundaries such as midnight or the 1st of a
 * month instead; Tollgate keeps periods anchored, as LiteLLM's original job did.)
 *
 * What is reset (LiteLLM's rules):
 *   keys    — spend = 0 where budget_reset_at <= now and the key has not expired;
 *   users, teams — spend = 0 where budget_reset_at <= now;
 *   budgets — budget_reset_at moves; then spend = 0 for the end users, team memberships and
 *             organizations that reference the budget (budget_id). Keys that reference a budget
 *             are not reset through it: a key's budget is its own columns here (its budget_id is
 *             not enforced), so zeroing its spend would only make /key/info disagree with the
 *             limiter.
 * Each row is updated with a compare-and-set on the budget_reset_at it was read with (at the
 * millisecond), so instances that run the job at the same moment reset a period once; each reset
 * notes a change (store.h gw_store_note_change) so every instance's caches reload the row.
 *
 * Races, and their bound. Spend is added to the store by the spend writer (spend.h), which does
 * not know about periods: a record of a call admitted in the old period that reaches the store
 * after the reset counts in the new period (as the engine also books a settlement in the scope's
 * current period), and a record of the new period written between the period's end and the
 * job's run (at most about GW_BUDGETS_RESET_MS plus the writer's lag) is zeroed with the old
 * period. Either way the store's period spend is off by at most the spend recorded in that
 * window; the engine's own counters on a running instance are exact across the boundary (it keeps
 * the larger of its count and the store's for the same period).
 *
 * Locks. On one instance the job and the spend writer never overlap (one store thread runs one
 * job at a time). Across instances on PostgreSQL they may lock the same rows in different orders;
 * the server then aborts one transaction as a deadlock (GW_STORE_BUSY): the spend writer retries
 * its batch with backoff, and the job runs again a second later.
 *
 * Threads. gw_budgets_reset_due runs on the store thread (inside a job); start/stop run on the
 * worker's loop. One worker per instance (worker 0, beside the changes poll) runs the job.
 */
#ifndef GW_BUDGETS_H
#define GW_BUDGETS_H

#include <stdint.h>

#include "gateway/store.h"

struct gw_worker;

/** How often worker 0 looks for periods that ended. */
#define GW_BUDGETS_RESET_MS 1000
/** Rows of one table reset per run at most; the rest follow at once in the next run. */
#define GW_BUDGETS_RESET_BATCH 500

/** What one run reset. */
typedef struct gw_budgets_reset_stats {
    int64_t keys, users, teams, budgets; /* rows whose period was reset by this run */
    int64_t linked;                      /* end users, team memberships, organizations zeroed */
    int64_t cleared;                     /* rows with an unreadable budget_duration: reset time cleared */
    int more;                            /* a table had more due rows than one batch */
} gw_budgets_reset_stats_t;

/**
 * Store thread, inside a job: resets every period that ended at or before now_ms (see above).
 * Each table's batch is one transaction, entered only when the table has due rows (an idle run is
 * a few indexed SELECTs). Returns GW_STORE_OK or the first failing status; *out (zeroed first)
 * counts what was reset.
 */
int gw_budgets_reset_due(gw_store_conn_t *c, int64_t now_ms, gw_budgets_reset_stats_t *out);

/** Worker's loop: starts the periodic reset job (worker 0 only; no-op without a store). */
void gw_budgets_start_reset(struct gw_worker *w);
/** Worker's loop: stops scheduling it (drain); a run in flight completes as a store job. */
void gw_budgets_stop_reset(struct gw_worker *w);

#endif

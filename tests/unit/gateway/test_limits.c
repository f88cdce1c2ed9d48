/*
 * test_limits.c — the limits and budget engine (gateway/limits*.c).
 *
 * Local backend, with an injected clock: rpm exact under a burst from several threads; tpm with
 * reservation, settlement and release; max_parallel with release; budgets with reservations and
 * settlement (spend never passes max_budget by more than the estimate error, also from several
 * threads); budget periods that roll over with the clock and report the new reset time; the
 * store's spend seeding the counter (and a stale period's spend ignored); all-or-nothing across
 * scopes; the refusal report and the x-ratelimit values; TTL expiry of leaked reservations;
 * fixed windows rolling at the minute; invalid requests; configuration parsing.
 *
 * Redis backend, against a real server when TEST_REDIS_URL is set (make test sets it; skipped
 * otherwise), each test under its own key prefix: the same tables through the async API on h2o
 * loops; three limiter instances on three threads sharing one Redis admit exactly 5 of 20 against
 * rpm 5, and exactly the budget's worth of 200 requests; a leaked reservation expires by TTL; a
 * budget period rolls over on Redis's clock; and, with a throwaway redis-server of the test's own
 * on a free loopback port that the test kills and restarts: fail_open falls back to local limits,
 * fail_closed answers UNAVAILABLE, readiness reports it, and the connection comes back.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/limits.h"

#define NONE GW_LIMITS_NONE
#define T0 (1700000040000LL + 5000) /* 5 s into a minute */

/* ---- helpers ----------------------------------------------------------------------------------- */

static int64_t fake_now;
static int64_t fake_clock(void *ud)
{
    return __atomic_load_n(&fake_now, __ATOMIC_ACQUIRE);
}
static void set_now(int64_t t)
{
    __atomic_store_n(&fake_now, t, __ATOMIC_RELEASE);
}

static gw_limits_t *local_new(int64_t ttl_ms)
{
    gw_limits_config_t cfg = {.backend = GW_LIMITS_LOCAL, .clock = fake_clock, .reservation_ttl_ms = ttl_ms};
    char err[256];
    set_now(T0);
    gw_limits_t *lim = gw_limits_create(&cfg, err, sizeof(err));
    cr_assert_not_null(lim, "%s", err);
    return lim;
}

static gw_limits_scope_t scope(gw_limits_kind_t kind, const char *id)
{
    return (gw_limits_scope_t){.kind = kind,
                               .id = id,
                               .rpm_limit = NONE,
                               .tpm_limit = NONE,
                               .max_parallel = NONE,
                               .max_budget_micros = NONE};
}

static gw_limits_verdict_t admit1(gw_limits_t *lim, const char *rid, const gw_limits_scope_t *sc, size_t n,
                                  int64_t tokens, int64_t micros, gw_limits_result_t *out)
{
    gw_limits_req_t req = {
        .request_id = rid, .scopes = sc, .n_scopes = n, .est_tokens = tokens, .est_micros = micros};
    gw_limits_result_t tmp;
    gw_limits_local_admit(lim, &req, out ? out : &tmp);
    return (out ? out : &tmp)->verdict;
}

/* ---- local: rpm -------------------------------------------------------------------------------- */

typedef struct burst {
    gw_limits_t *lim;
    const gw_limits_scope_t *sc;
    size_t n;
    int tid, tries;
    int64_t est_tokens, est_micros, actual_micros;
    int settle; /* settle each admitted request at once with actual_micros */
    int admitted;
} burst_t;

static void *burst_thread(void *p)
{
    burst_t *b = p;
    for (int i = 0; i < b->tries; i++) {
        char rid[64];
        snprintf(rid, sizeof(rid), "t%d-%d", b->tid, i);
        if (admit1(b->lim, rid, b->sc, b->n, b->est_tokens, b->est_micros, NULL) == GW_LIMITS_ADMITTED) {
            b->admitted++;
            if (b->settle)
                cr_assert(gw_limits_local_settle(b->lim, rid, b->est_tokens, b->actual_micros));
        }
    }
    return NULL;
}

static int run_burst(burst_t *proto, int threads, int tries)
{
    pthread_t th[16];
    burst_t b[16];
    int total = 0;
    for (int i = 0; i < threads; i++) {
        b[i] = *proto;
        b[i].tid = i;
        b[i].tries = tries;
        pthread_create(&th[i], NULL, burst_thread, &b[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += b[i].admitted;
    }
    return total;
}

Test(limits_local, rpm_exact_under_threaded_burst)
{
    struct {
        int64_t rpm;
        int threads, tries, want;
    } rows[] = {{5, 4, 5, 5}, {1, 8, 10, 1}, {0, 2, 3, 0}, {100, 8, 25, 100}, {NONE, 4, 10, 40}};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        gw_limits_t *lim = local_new(0);
        gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k1");
        sc.rpm_limit = rows[r].rpm;
        burst_t proto = {.lim = lim, .sc = &sc, .n = 1, .settle = 1};
        cr_expect_eq(run_burst(&proto, rows[r].threads, rows[r].tries), rows[r].want, "row %zu", r);
        gw_limits_destroy(lim);
    }
}

Test(limits_local, rpm_fixed_window_rolls_at_the_minute)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc = scope(GW_SCOPE_USER, "u1");
    sc.rpm_limit = 2;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.limit_requests, 2);
    cr_expect_eq(res.remaining_requests, 1);
    cr_expect_eq(res.reset_requests_ms, (T0 / 60000 + 1) * 60000);
    cr_assert_eq(admit1(lim, "b", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "c", &sc, 1, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_RPM);
    cr_expect_eq(res.retry_after_s, 55); /* T0 is 5 s into its minute */
    /* releasing does not refund a request */
    cr_assert(gw_limits_local_release(lim, "a"));
    cr_expect_eq(admit1(lim, "d", &sc, 1, 0, 0, NULL), GW_LIMITS_REFUSED);
    set_now((T0 / 60000 + 1) * 60000); /* next window */
    cr_expect_eq(admit1(lim, "e", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_expect_eq(admit1(lim, "f", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_expect_eq(admit1(lim, "g", &sc, 1, 0, 0, NULL), GW_LIMITS_REFUSED);
    gw_limits_destroy(lim);
}

/* ---- local: tpm, parallel ------------------------------------------------------------------------ */

Test(limits_local, tpm_reserves_settles_and_releases)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.tpm_limit = 1000;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 300, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_tokens, 700);
    cr_assert_eq(admit1(lim, "b", &sc, 1, 300, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "c", &sc, 1, 300, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "d", &sc, 1, 300, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_TPM);
    cr_expect_eq(res.limit, 1000);
    cr_expect_eq(res.remaining, 100);
    /* settle a with 50 actual tokens: 250 come back */
    cr_assert(gw_limits_local_settle(lim, "a", 50, 0));
    cr_assert_eq(admit1(lim, "e", &sc, 1, 300, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_tokens, 50); /* 50 + 300 + 300 + 300 */
    /* release b: its 300 come back entirely */
    cr_assert(gw_limits_local_release(lim, "b"));
    cr_assert_eq(admit1(lim, "f", &sc, 1, 300, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_tokens, 50);
    /* a settlement above the estimate is booked in full */
    cr_assert(gw_limits_local_settle(lim, "c", 900, 0));
    cr_expect_eq(admit1(lim, "g", &sc, 1, 1, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.remaining, 0);
    gw_limits_destroy(lim);
}

Test(limits_local, max_parallel_with_release_and_settle)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc = scope(GW_SCOPE_TEAM, "t");
    sc.max_parallel = 2;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "b", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "c", &sc, 1, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_PARALLEL);
    cr_expect_eq(res.kind, GW_SCOPE_TEAM);
    cr_expect_str_eq(res.id, "t");
    cr_expect_eq(res.retry_after_s, 1);
    cr_expect_str_eq(gw_limits_which_name(res.which), "max_parallel_requests");
    cr_assert(gw_limits_local_release(lim, "a"));
    cr_expect_not(gw_limits_local_release(lim, "a"), "a second release finds nothing");
    cr_assert_eq(admit1(lim, "c", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert(gw_limits_local_settle(lim, "b", 0, 0));
    cr_assert_eq(admit1(lim, "d", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "e", &sc, 1, 0, 0, NULL), GW_LIMITS_REFUSED);
    gw_limits_destroy(lim);
}

/* ---- local: budgets ------------------------------------------------------------------------------ */

Test(limits_local, budget_reservations_and_settlement)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.max_budget_micros = 1000;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 0, 300, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "b", &sc, 1, 0, 300, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "c", &sc, 1, 0, 300, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "d", &sc, 1, 0, 300, &res), GW_LIMITS_REFUSED, "900 reserved + 300 > 1000");
    cr_expect_eq(res.which, GW_LIMIT_BUDGET);
    cr_expect_eq(res.remaining, 100);
    cr_expect_eq(res.retry_after_s, 0, "a budget without a period never resets");
    cr_expect_str_eq(gw_limits_which_name(res.which), "max_budget");
    cr_assert(gw_limits_local_settle(lim, "a", 10, 250)); /* spend 250, reserved 600 */
    cr_assert_eq(admit1(lim, "d", &sc, 1, 0, 300, NULL), GW_LIMITS_REFUSED, "850 + 300 > 1000");
    cr_assert(gw_limits_local_settle(lim, "b", 10, 250)); /* spend 500, reserved 300 */
    cr_assert_eq(admit1(lim, "d", &sc, 1, 0, 200, &res), GW_LIMITS_ADMITTED, "500 + 300 + 200 = 1000");
    cr_expect_eq(res.periods[0].spend_micros, 500);
    cr_assert(gw_limits_local_release(lim, "c"));
    cr_assert(gw_limits_local_settle(lim, "d", 10, 200)); /* spend 700 */
    cr_assert_eq(admit1(lim, "e", &sc, 1, 0, 301, NULL), GW_LIMITS_REFUSED);
    cr_assert_eq(admit1(lim, "e", &sc, 1, 0, 300, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].spend_micros, 700);
    gw_limits_destroy(lim);
}

Test(limits_local, budget_overspend_bounded_by_estimate_error_under_threads)
{
    /* every request is estimated at 1000 and costs 1100: the engine may overshoot by at most
     * the error of the requests in flight at the last admission (8 threads: 8 × 100) */
    struct {
        int64_t actual;
        int threads;
    } rows[] = {{1000, 8}, {1100, 8}, {700, 4}, {1000, 1}};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        gw_limits_t *lim = local_new(0);
        gw_limits_scope_t sc[2] = {scope(GW_SCOPE_KEY, "k"), scope(GW_SCOPE_GLOBAL, "")};
        sc[0].max_budget_micros = 50 * 1000;
        burst_t proto = {
            .lim = lim, .sc = sc, .n = 2, .est_micros = 1000, .actual_micros = rows[r].actual, .settle = 1};
        int admitted = run_burst(&proto, rows[r].threads, 100);
        int64_t spend = (int64_t)admitted * rows[r].actual;
        int64_t err = rows[r].actual > 1000 ? rows[r].actual - 1000 : 0;
        cr_expect_leq(spend, 50 * 1000 + rows[r].threads * err, "row %zu: spend %lld", r, (long long)spend);
        cr_expect_geq(spend, 50 * 1000 - 1000 - rows[r].threads * 0, "row %zu: budget left unused", r);
        if (rows[r].actual == 1000)
            cr_expect_eq(admitted, 50, "row %zu", r);
        /* the engine's own count agrees */
        gw_limits_result_t res;
        sc[0].max_budget_micros = NONE;
        cr_assert_eq(admit1(lim, "probe", sc, 2, 0, 0, &res), GW_LIMITS_ADMITTED);
        cr_expect_eq(res.periods[0].spend_micros, spend, "row %zu", r);
        gw_limits_destroy(lim);
    }
}

Test(limits_local, budget_period_rolls_over_with_the_clock)
{
    gw_limits_t *lim = local_new(0);
    const int64_t hour = 3600 * 1000;
    gw_limits_scope_t sc = scope(GW_SCOPE_USER, "u");
    sc.max_budget_micros = 1000;
    sc.budget_duration_ms = hour;
    sc.budget_reset_at_ms = T0 + hour / 2; /* the store's period ends in 30 minutes */
    sc.spend_micros = 400;                 /* and has 400 spent */
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 0, 600, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].reset_at_ms, T0 + hour / 2);
    cr_expect_eq(res.periods[0].spend_micros, 400);
    cr_expect_not(res.periods[0].rolled);
    cr_assert(gw_limits_local_settle(lim, "a", 0, 600));
    cr_assert_eq(admit1(lim, "b", &sc, 1, 0, 1, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.reset_at_ms, T0 + hour / 2);
    cr_expect_eq(res.retry_after_s, 1800);
    /* 2.5 periods later: the period that contains now, spend back to 0, reported as rolled */
    set_now(T0 + hour / 2 + 2 * hour + 1);
    cr_assert_eq(admit1(lim, "c", &sc, 1, 0, 1000, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].reset_at_ms, T0 + hour / 2 + 3 * hour);
    cr_expect_eq(res.periods[0].spend_micros, 0);
    cr_expect(res.periods[0].rolled);
    /* the caller's stale period (and its spend) is ignored */
    sc.spend_micros = 999;
    cr_assert(gw_limits_local_settle(lim, "c", 0, 100));
    cr_assert_eq(admit1(lim, "d", &sc, 1, 0, 900, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].spend_micros, 100);
    cr_assert(gw_limits_local_release(lim, "d"));
    /* once the store caught up with the new period, its (larger) spend wins */
    sc.budget_reset_at_ms = T0 + hour / 2 + 3 * hour;
    sc.spend_micros = 950;
    cr_assert_eq(admit1(lim, "e", &sc, 1, 0, 100, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.remaining, 50);
    cr_expect_not(res.periods[0].rolled);
    /* a period with no known end starts at first sight */
    gw_limits_scope_t fresh = scope(GW_SCOPE_TEAM, "new");
    fresh.budget_duration_ms = hour;
    fresh.max_budget_micros = 10;
    cr_assert_eq(admit1(lim, "f", &fresh, 1, 0, 1, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].reset_at_ms, fake_now + hour);
    cr_expect(res.periods[0].rolled, "the store has no reset time yet: persist it");
    gw_limits_destroy(lim);
}

Test(limits_local, period_next_table)
{
    /* the one rule for a period's next end (limits.h), shared with the store's reset job */
    static const struct {
        int64_t end, now, dur, want;
    } cases[] = {
        {10000, 9999, 2000, 10000},  /* not over yet: the same end */
        {10000, 10000, 2000, 12000}, /* over at its end instant: one period on */
        {10000, 11999, 2000, 12000}, /* k = 1 */
        {10000, 12000, 2000, 14000}, /* k = 2: the end of the period that contains now */
        {10000, 10000 + 7 * 2000 + 1, 2000, 10000 + 8 * 2000},
        {0, 5, 1, 6},                                    /* tiny period */
        {10000, 20000, 0, 10000},                        /* no duration: unchanged */
        {10000, 20000, -5, 10000},                       /* nonsense duration: unchanged */
        {INT64_MAX - 10, INT64_MAX - 1, 100, INT64_MAX}, /* saturates */
        {0, INT64_MAX - 1, 3, INT64_MAX},                /* k × dur past INT64_MAX: saturates */
        /* a 30-day period (what "1mo" is for budgets) from a real instant */
        {1700000000000LL, 1700000000000LL + 45LL * 86400000, 30LL * 86400000,
         1700000000000LL + 60LL * 86400000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(gw_limits_period_next(cases[i].end, cases[i].now, cases[i].dur), cases[i].want,
                     "row %zu: got %lld", i,
                     (long long)gw_limits_period_next(cases[i].end, cases[i].now, cases[i].dur));
}

Test(limits_local, engine_rolls_to_the_period_next_instant)
{
    /* whatever the engine reports as the new period end is what the reset job writes */
    static const int64_t durs[] = {1000, 2000, 60000, 3600000, 30LL * 86400000};
    static const int64_t lags[] = {0, 1, 999, 1000, 1999, 2001, 7 * 3600000 + 5};
    gw_limits_t *lim = local_new(0);
    int n = 0;
    for (size_t d = 0; d < sizeof(durs) / sizeof(durs[0]); d++) {
        for (size_t l = 0; l < sizeof(lags) / sizeof(lags[0]); l++) {
            char id[32], rid[32];
            snprintf(id, sizeof(id), "k%zu-%zu", d, l);
            snprintf(rid, sizeof(rid), "r%d", n++);
            gw_limits_scope_t sc = scope(GW_SCOPE_KEY, id);
            sc.max_budget_micros = 1000;
            sc.budget_duration_ms = durs[d];
            sc.budget_reset_at_ms = T0;
            sc.spend_micros = 900;
            set_now(T0 + lags[l]);
            gw_limits_result_t res;
            cr_assert_eq(admit1(lim, rid, &sc, 1, 0, 100, &res), GW_LIMITS_ADMITTED);
            cr_expect_eq(res.periods[0].reset_at_ms, gw_limits_period_next(T0, T0 + lags[l], durs[d]),
                         "dur %lld lag %lld", (long long)durs[d], (long long)lags[l]);
            cr_expect_eq(res.periods[0].spend_micros, 0);
            cr_expect(res.periods[0].rolled);
            cr_assert(gw_limits_local_release(lim, rid));
        }
    }
    gw_limits_destroy(lim);
}

Test(limits_local, settlement_after_period_end_books_in_the_new_period)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.max_budget_micros = 1000;
    sc.budget_duration_ms = 60000;
    sc.budget_reset_at_ms = T0 + 1000;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "a", &sc, 1, 0, 500, NULL), GW_LIMITS_ADMITTED);
    set_now(T0 + 2000);
    cr_assert(gw_limits_local_settle(lim, "a", 0, 700));
    cr_assert_eq(admit1(lim, "b", &sc, 1, 0, 300, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].spend_micros, 700);
    cr_expect_eq(res.periods[0].reset_at_ms, T0 + 61000);
    gw_limits_destroy(lim);
}

/* ---- local: atomicity, report, TTL, validation ---------------------------------------------------- */

Test(limits_local, all_or_nothing_across_scopes)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc[3] = {scope(GW_SCOPE_KEY, "k"), scope(GW_SCOPE_USER, "u"),
                               scope(GW_SCOPE_MODEL, "m")};
    sc[0].rpm_limit = 2;
    sc[0].max_budget_micros = 1000;
    sc[1].rpm_limit = 1;
    sc[2].max_parallel = 10;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "1", sc, 3, 5, 100, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "2", sc, 3, 5, 100, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_USER);
    cr_expect_str_eq(res.id, "u");
    /* the refused request left nothing behind: key rpm still has 1 left, budget 900 */
    sc[1].rpm_limit = 100;
    cr_assert_eq(admit1(lim, "3", sc, 3, 5, 900, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_requests, 0);
    cr_assert_eq(admit1(lim, "4", sc, 3, 5, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_KEY);
    cr_expect_eq(res.which, GW_LIMIT_RPM);
    /* parallel on the model counts only the 2 admitted */
    sc[0].rpm_limit = NONE;
    sc[2].max_parallel = 3;
    cr_assert_eq(admit1(lim, "5", sc, 3, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "6", sc, 3, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_MODEL);
    gw_limits_stats_t st;
    gw_limits_local_stats(lim, &st);
    cr_expect_eq(st.reservations, 3);
    cr_expect_eq(st.scopes, 3);
    gw_limits_destroy(lim);
}

Test(limits_local, refusal_report_and_header_values)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc[2] = {scope(GW_SCOPE_KEY, "hash1"), scope(GW_SCOPE_END_USER, "alice")};
    sc[0].rpm_limit = 10;
    sc[0].tpm_limit = 100;
    sc[1].rpm_limit = 3;
    sc[1].tpm_limit = 1000;
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "1", sc, 2, 40, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.limit_requests, 3, "the tightest rpm: the end user's");
    cr_expect_eq(res.remaining_requests, 2);
    cr_expect_eq(res.limit_tokens, 100, "the tightest tpm: the key's");
    cr_expect_eq(res.remaining_tokens, 60);
    cr_expect_eq(res.via_redis, 0);
    cr_assert_eq(admit1(lim, "2", sc, 2, 40, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(admit1(lim, "3", sc, 2, 40, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_KEY);
    cr_expect_str_eq(res.id, "hash1");
    cr_expect_eq(res.which, GW_LIMIT_TPM);
    cr_expect_eq(res.limit, 100);
    cr_expect_eq(res.remaining, 20);
    cr_expect_eq(res.reset_at_ms, (T0 / 60000 + 1) * 60000);
    cr_expect_eq(res.retry_after_s, 55);
    cr_expect_eq(res.remaining_tokens, 20);
    cr_expect_str_eq(gw_limits_kind_name(res.kind), "key");
    cr_expect_str_eq(gw_limits_kind_name(GW_SCOPE_END_USER), "end_user");
    gw_limits_destroy(lim);
}

Test(limits_local, leaked_reservations_expire_after_ttl)
{
    gw_limits_t *lim = local_new(5000);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.max_parallel = 1;
    sc.max_budget_micros = 100;
    sc.tpm_limit = 10;
    cr_assert_eq(admit1(lim, "leak", &sc, 1, 10, 100, NULL), GW_LIMITS_ADMITTED);
    set_now(T0 + 4999);
    cr_assert_eq(admit1(lim, "x", &sc, 1, 0, 0, NULL), GW_LIMITS_REFUSED);
    set_now(T0 + 5000);
    gw_limits_result_t res;
    cr_assert_eq(admit1(lim, "y", &sc, 1, 10, 100, &res), GW_LIMITS_ADMITTED,
                 "parallel, tokens, budget back");
    cr_expect_eq(res.periods[0].spend_micros, 0);
    cr_expect_not(gw_limits_local_settle(lim, "leak", 10, 100), "an expired reservation books nothing");
    set_now(T0 + 20000);
    cr_expect_eq(gw_limits_local_expire(lim), 1);
    gw_limits_stats_t st;
    gw_limits_local_stats(lim, &st);
    cr_expect_eq(st.reservations, 0);
    gw_limits_destroy(lim);
}

Test(limits_local, invalid_requests)
{
    gw_limits_t *lim = local_new(0);
    gw_limits_scope_t sc[GW_LIMITS_MAX_SCOPES + 1];
    char ids[GW_LIMITS_MAX_SCOPES + 1][8];
    for (int i = 0; i <= GW_LIMITS_MAX_SCOPES; i++) {
        snprintf(ids[i], sizeof(ids[i]), "s%d", i);
        sc[i] = scope(GW_SCOPE_KEY, ids[i]);
    }
    cr_expect_eq(admit1(lim, "a", sc, GW_LIMITS_MAX_SCOPES + 1, 0, 0, NULL), GW_LIMITS_INVALID);
    cr_expect_eq(admit1(lim, "a", sc, GW_LIMITS_MAX_SCOPES, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_expect_eq(admit1(lim, "a", sc, 1, 0, 0, NULL), GW_LIMITS_INVALID, "request id still reserved");
    cr_expect_eq(admit1(lim, "b", sc, 1, -1, 0, NULL), GW_LIMITS_INVALID);
    cr_expect_eq(admit1(lim, "", sc, 1, 0, 0, NULL), GW_LIMITS_INVALID);
    gw_limits_scope_t dup[2] = {scope(GW_SCOPE_USER, "u"), scope(GW_SCOPE_USER, "u")};
    cr_expect_eq(admit1(lim, "c", dup, 2, 0, 0, NULL), GW_LIMITS_INVALID);
    char longid[GW_LIMITS_ID_MAX + 1];
    memset(longid, 'x', GW_LIMITS_ID_MAX);
    longid[GW_LIMITS_ID_MAX] = '\0';
    gw_limits_scope_t lng = scope(GW_SCOPE_USER, longid);
    cr_expect_eq(admit1(lim, "d", &lng, 1, 0, 0, NULL), GW_LIMITS_INVALID);
    /* overflow saturates and refuses instead of wrapping */
    gw_limits_scope_t big = scope(GW_SCOPE_KEY, "big");
    big.max_budget_micros = INT64_MAX - 1;
    big.spend_micros = INT64_MAX - 5;
    cr_expect_eq(admit1(lim, "e", &big, 1, 0, 10, NULL), GW_LIMITS_REFUSED);
    gw_limits_destroy(lim);
}

static void on_admit(void *ud, const gw_limits_result_t *res)
{
    *(int *)ud = (int)res->verdict;
}

Test(limits_local, async_api_runs_callback_inline)
{
    gw_limits_t *lim = local_new(0);
    h2o_evloop_t *loop = h2o_evloop_create();
    gw_limits_loop_t *lp = gw_limits_loop_attach(lim, loop);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.max_parallel = 1;
    gw_limits_req_t req = {.request_id = "r1", .scopes = &sc, .n_scopes = 1};
    int verdict = -1;
    gw_limits_admit(lp, &req, on_admit, &verdict);
    cr_expect_eq(verdict, GW_LIMITS_ADMITTED);
    gw_limits_settle(lp, "r1", 1, 1, NULL, NULL);
    req.request_id = "r2";
    gw_limits_admit(lp, &req, on_admit, &verdict);
    cr_expect_eq(verdict, GW_LIMITS_ADMITTED, "settled through the loop handle");
    cr_expect(gw_limits_redis_ok(lim), "local backend is always ready");
    gw_limits_loop_detach(lp);
    h2o_evloop_destroy(loop);
    gw_limits_destroy(lim);
}

/* ---- configuration -------------------------------------------------------------------------------- */

Test(limits_config, redis_urls)
{
    struct {
        const char *url;
        int ok;
        const char *host, *pw;
        int port, db;
    } rows[] = {
        {"redis://localhost", 1, "localhost", NULL, 6379, 0},
        {"redis://10.0.0.5:6380/2", 1, "10.0.0.5", NULL, 6380, 2},
        {"redis://:s3cret@cache:7000", 1, "cache", "s3cret", 7000, 0},
        {"redis://default:p@ss@cache:7000/1", 1, "cache", "p@ss", 7000, 1},
        {"rediss://cache:6379", 0, NULL, NULL, 0, 0},
        {"redis://:6379", 0, NULL, NULL, 0, 0},
        {"redis://h:99999", 0, NULL, NULL, 0, 0},
        {"redis://h:1/x", 0, NULL, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gw_limits_config_t cfg = {0};
        char buf[256], err[128];
        int rc = gw_limits_parse_redis_url(rows[i].url, &cfg, buf, sizeof(buf), err, sizeof(err));
        cr_expect_eq(rc == 0, rows[i].ok, "%s: %s", rows[i].url, rc ? err : "");
        if (rc != 0 || !rows[i].ok)
            continue;
        cr_expect_str_eq(cfg.redis_host, rows[i].host, "%s", rows[i].url);
        if (rows[i].pw)
            cr_expect_str_eq(cfg.redis_password, rows[i].pw, "%s", rows[i].url);
        else
            cr_expect_null(cfg.redis_password, "%s", rows[i].url);
        cr_expect_eq(cfg.redis_port, rows[i].port, "%s", rows[i].url);
        cr_expect_eq(cfg.redis_db, rows[i].db, "%s", rows[i].url);
        cr_expect_eq(cfg.backend, GW_LIMITS_REDIS);
    }
}

Test(limits_config, from_litellm_config)
{
    const char *yaml = "model_list: []\n"
                       "router_settings:\n  redis_host: cache.internal\n  redis_port: 6390\n"
                       "  redis_password: pw\n"
                       "general_settings:\n  limits_failure_mode: fail_closed\n"
                       "  limits_reservation_ttl_ms: 60000\n";
    char err[256], buf[256];
    unsetenv("REDIS_URL");
    gw_config_t *c = gw_config_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    cr_assert_not_null(c, "%s", err);
    gw_limits_config_t cfg;
    cr_assert_eq(gw_limits_config_from(c, &cfg, buf, sizeof(buf), err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.backend, GW_LIMITS_REDIS);
    cr_expect_str_eq(cfg.redis_host, "cache.internal");
    cr_expect_eq(cfg.redis_port, 6390);
    cr_expect_str_eq(cfg.redis_password, "pw");
    cr_expect_eq(cfg.fail_closed, 1);
    cr_expect_eq(cfg.reservation_ttl_ms, 60000);
    setenv("REDIS_URL", "redis://other:1234", 1);
    cr_assert_eq(gw_limits_config_from(c, &cfg, buf, sizeof(buf), err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(cfg.redis_host, "other");
    cr_expect_eq(cfg.redis_port, 1234);
    unsetenv("REDIS_URL");
    gw_config_free(c);
    const char *none = "model_list: []\n";
    c = gw_config_load_string(none, strlen(none), "n.yaml", err, sizeof(err));
    unsetenv("REDIS_HOST");
    cr_assert_eq(gw_limits_config_from(c, &cfg, buf, sizeof(buf), err, sizeof(err)), 0, "%s", err);
    cr_expect_eq(cfg.backend, GW_LIMITS_LOCAL);
    gw_config_free(c);
}

/* ---- Redis ---------------------------------------------------------------------------------------- */

typedef struct rig {
    h2o_evloop_t *loop;
    gw_limits_t *lim;
    gw_limits_loop_t *lp;
} rig_t;

static char prefix[64];

static void new_prefix(void)
{
    static unsigned n;
    snprintf(prefix, sizeof(prefix), "t%d_%u_%ld:", (int)getpid(), n++, (long)time(NULL));
}

static const char *redis_url_or_skip(void)
{
    const char *u = getenv("TEST_REDIS_URL");
    if (u == NULL || *u == '\0')
        cr_skip_test("TEST_REDIS_URL is not set (make test sets it)");
    return u;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rig_open(rig_t *r, const char *url, int fail_closed, int64_t ttl_ms, int wait_up)
{
    gw_limits_config_t cfg = {0};
    char buf[256], err[256];
    cr_assert_eq(gw_limits_parse_redis_url(url, &cfg, buf, sizeof(buf), err, sizeof(err)), 0, "%s", err);
    cfg.fail_closed = fail_closed;
    cfg.reservation_ttl_ms = ttl_ms;
    cfg.redis_prefix = prefix;
    cfg.redis_timeout_ms = 500;
    r->lim = gw_limits_create(&cfg, err, sizeof(err));
    cr_assert_not_null(r->lim, "%s", err);
    r->loop = h2o_evloop_create();
    r->lp = gw_limits_loop_attach(r->lim, r->loop);
    int64_t end = mono_ms() + 5000;
    while (wait_up && !gw_limits_redis_ok(r->lim) && mono_ms() < end)
        h2o_evloop_run(r->loop, 10);
    if (wait_up)
        cr_assert(gw_limits_redis_ok(r->lim), "connected to %s", url);
}

static void rig_close(rig_t *r)
{
    gw_limits_loop_detach(r->lp);
    h2o_evloop_run(r->loop, 0);
    h2o_evloop_destroy(r->loop);
    gw_limits_destroy(r->lim);
}

typedef struct call {
    int done;
    gw_limits_result_t res;
    int found;
} call_t;

static void on_call_admit(void *ud, const gw_limits_result_t *res)
{
    call_t *c = ud;
    c->res = *res;
    c->done = 1;
}

static void on_call_done(void *ud, int found)
{
    call_t *c = ud;
    c->found = found;
    c->done = 1;
}

static void wait_done(rig_t *r, call_t *c)
{
    int64_t end = mono_ms() + 5000;
    while (!c->done && mono_ms() < end)
        h2o_evloop_run(r->loop, 10);
    cr_assert(c->done, "no answer within 5 s");
}

static gw_limits_verdict_t r_admit(rig_t *r, const char *rid, const gw_limits_scope_t *sc, size_t n,
                                   int64_t tokens, int64_t micros, gw_limits_result_t *out)
{
    gw_limits_req_t req = {
        .request_id = rid, .scopes = sc, .n_scopes = n, .est_tokens = tokens, .est_micros = micros};
    call_t c = {0};
    gw_limits_admit(r->lp, &req, on_call_admit, &c);
    wait_done(r, &c);
    if (out)
        *out = c.res;
    return c.res.verdict;
}

static int r_settle(rig_t *r, const char *rid, int64_t tokens, int64_t micros)
{
    call_t c = {0};
    gw_limits_settle(r->lp, rid, tokens, micros, on_call_done, &c);
    wait_done(r, &c);
    return c.found;
}

static int r_release(rig_t *r, const char *rid)
{
    call_t c = {0};
    gw_limits_release(r->lp, rid, on_call_done, &c);
    wait_done(r, &c);
    return c.found;
}

Test(limits_redis, tables_tpm_parallel_budget_atomicity)
{
    const char *url = redis_url_or_skip();
    new_prefix();
    rig_t r;
    rig_open(&r, url, 1, 0, 1);
    gw_limits_result_t res;
    /* tpm */
    gw_limits_scope_t t = scope(GW_SCOPE_KEY, "k");
    t.tpm_limit = 1000;
    cr_assert_eq(r_admit(&r, "a", &t, 1, 300, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.via_redis, 1);
    cr_expect_eq(res.remaining_tokens, 700);
    cr_assert_eq(r_admit(&r, "b", &t, 1, 300, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "c", &t, 1, 300, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "d", &t, 1, 300, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_TPM);
    cr_expect_eq(res.remaining, 100);
    cr_expect_eq(res.kind, GW_SCOPE_KEY);
    cr_expect_str_eq(res.id, "k");
    cr_expect_geq(res.retry_after_s, 1);
    cr_expect_leq(res.retry_after_s, 60);
    cr_assert(r_settle(&r, "a", 50, 0));
    cr_expect_not(r_settle(&r, "a", 50, 0), "settled once only");
    cr_assert(r_release(&r, "b"));
    cr_assert_eq(r_admit(&r, "e", &t, 1, 300, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_tokens, 350); /* 50 + 300 + 300 */
    cr_expect_eq(r_admit(&r, "e", &t, 1, 0, 0, NULL), GW_LIMITS_INVALID, "request id still reserved");
    /* parallel */
    gw_limits_scope_t p = scope(GW_SCOPE_TEAM, "t");
    p.max_parallel = 1;
    cr_assert_eq(r_admit(&r, "p1", &p, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "p2", &p, 1, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_PARALLEL);
    cr_assert(r_release(&r, "p1"));
    cr_assert_eq(r_admit(&r, "p2", &p, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    /* budget with reservations and settlement, seeded by the store's spend */
    gw_limits_scope_t b = scope(GW_SCOPE_USER, "u");
    b.max_budget_micros = 1000;
    b.spend_micros = 100;
    cr_assert_eq(r_admit(&r, "b1", &b, 1, 0, 400, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "b2", &b, 1, 0, 400, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "b3", &b, 1, 0, 200, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.which, GW_LIMIT_BUDGET);
    cr_expect_eq(res.remaining, 100);
    cr_expect_eq(res.retry_after_s, 0);
    cr_assert(r_settle(&r, "b1", 0, 250));
    cr_assert_eq(r_admit(&r, "b3", &b, 1, 0, 250, &res), GW_LIMITS_ADMITTED); /* 350 + 400 + 250 */
    cr_expect_eq(res.periods[0].spend_micros, 350);
    /* all-or-nothing: user refuses, the key's rpm is untouched */
    gw_limits_scope_t two[2] = {scope(GW_SCOPE_KEY, "k2"), scope(GW_SCOPE_USER, "u2")};
    two[0].rpm_limit = 2;
    two[1].rpm_limit = 1;
    cr_assert_eq(r_admit(&r, "x1", two, 2, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "x2", two, 2, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_USER);
    cr_expect_eq(res.which, GW_LIMIT_RPM);
    two[1].rpm_limit = 100;
    cr_assert_eq(r_admit(&r, "x3", two, 2, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.remaining_requests, 0);
    cr_assert_eq(r_admit(&r, "x4", two, 2, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.kind, GW_SCOPE_KEY);
    rig_close(&r);
}

Test(limits_redis, leaked_reservation_expires_and_period_rolls_on_redis_time)
{
    const char *url = redis_url_or_skip();
    new_prefix();
    rig_t r;
    rig_open(&r, url, 1, 300, 1);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.max_parallel = 1;
    cr_assert_eq(r_admit(&r, "leak", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&r, "x", &sc, 1, 0, 0, NULL), GW_LIMITS_REFUSED);
    usleep(400 * 1000);
    cr_assert_eq(r_admit(&r, "y", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED,
                 "the expired reservation was swept");
    cr_expect_not(r_settle(&r, "leak", 0, 0));
    cr_assert(r_release(&r, "y"));
    /* a 1-second budget period */
    gw_limits_scope_t b = scope(GW_SCOPE_END_USER, "e");
    b.max_budget_micros = 100;
    b.budget_duration_ms = 1000;
    gw_limits_result_t res;
    cr_assert_eq(r_admit(&r, "b1", &b, 1, 0, 100, &res), GW_LIMITS_ADMITTED);
    int64_t first_end = res.periods[0].reset_at_ms;
    cr_expect(res.periods[0].rolled);
    cr_assert(r_settle(&r, "b1", 0, 100));
    cr_assert_eq(r_admit(&r, "b2", &b, 1, 0, 1, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.reset_at_ms, first_end);
    b.budget_reset_at_ms = first_end; /* the store persisted it */
    usleep(1100 * 1000);
    r_admit(&r, "b3", &b, 1, 0, 100, &res);
    cr_assert_eq(res.verdict, GW_LIMITS_ADMITTED,
                 "the period rolled over: which %d limit %lld remaining %lld reset %lld first_end %lld",
                 res.which, (long long)res.limit, (long long)res.remaining, (long long)res.reset_at_ms,
                 (long long)first_end);
    cr_expect_geq(res.periods[0].reset_at_ms, first_end + 1000);
    cr_expect_eq(res.periods[0].spend_micros, 0);
    cr_expect(res.periods[0].rolled);
    rig_close(&r);
}

/* Three limiter instances, each on its own thread and loop, sharing one Redis. */
typedef struct inst {
    const char *url;
    const gw_limits_scope_t *sc;
    size_t n;
    int id, count;
    int64_t est_micros;
    int settle;
    int admitted, answered;
    pthread_barrier_t *go;
    rig_t r;
} inst_t;

typedef struct pending {
    inst_t *in;
    char rid[32];
} pending_t;

static void on_settled(void *ud, int found)
{
    pending_t *p = ud;
    p->in->answered++;
    free(p);
}

static void on_inst_admit(void *ud, const gw_limits_result_t *res)
{
    pending_t *p = ud;
    if (res->verdict == GW_LIMITS_ADMITTED) {
        p->in->admitted++;
        if (p->in->settle) {
            gw_limits_settle(p->in->r.lp, p->rid, 10, p->in->est_micros, on_settled, p);
            return;
        }
    }
    p->in->answered++;
    free(p);
}

static void *inst_thread(void *arg)
{
    inst_t *in = arg;
    pthread_barrier_wait(in->go);
    for (int i = 0; i < in->count; i++) {
        pending_t *p = calloc(1, sizeof(*p));
        p->in = in;
        snprintf(p->rid, sizeof(p->rid), "i%d-%d", in->id, i);
        gw_limits_req_t req = {.request_id = p->rid,
                               .scopes = in->sc,
                               .n_scopes = in->n,
                               .est_tokens = 10,
                               .est_micros = in->est_micros};
        gw_limits_admit(in->r.lp, &req, on_inst_admit, p);
    }
    int64_t end = mono_ms() + 10000;
    while (in->answered < in->count && mono_ms() < end)
        h2o_evloop_run(in->r.loop, 10);
    return NULL;
}

static int three_instances(const char *url, const gw_limits_scope_t *sc, size_t n, int per, int64_t est,
                           int settle)
{
    inst_t in[3];
    pthread_t th[3];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 3);
    int total = 0;
    for (int i = 0; i < 3; i++) {
        in[i] = (inst_t){.url = url,
                         .sc = sc,
                         .n = n,
                         .id = i,
                         .count = per,
                         .est_micros = est,
                         .settle = settle,
                         .go = &go};
        rig_open(&in[i].r, url, 1, 0, 1);
    }
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, inst_thread, &in[i]);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(in[i].answered, per, "instance %d answered everything", i);
        total += in[i].admitted;
    }
    for (int i = 0; i < 3; i++)
        rig_close(&in[i].r);
    pthread_barrier_destroy(&go);
    return total;
}

Test(limits_redis, three_instances_admit_exactly_rpm)
{
    const char *url = redis_url_or_skip();
    new_prefix();
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "burst");
    sc.rpm_limit = 5;
    /* 21 requests (7 per instance) at once; all in one window unless the minute turns mid-test */
    time_t now = time(NULL);
    if (now % 60 > 55)
        sleep((unsigned)(61 - now % 60));
    cr_expect_eq(three_instances(url, &sc, 1, 7, 0, 0), 5);
}

Test(limits_redis, three_instances_hold_a_budget_exactly)
{
    const char *url = redis_url_or_skip();
    new_prefix();
    gw_limits_scope_t sc[2] = {scope(GW_SCOPE_KEY, "budget"), scope(GW_SCOPE_GLOBAL, "")};
    sc[0].max_budget_micros = 50 * 1200;
    /* 201 requests estimated and costing 1200 each: exactly 50 admitted, all billed */
    int admitted = three_instances(url, sc, 2, 67, 1200, 1);
    cr_expect_eq(admitted, 50);
    rig_t r;
    rig_open(&r, url, 1, 0, 1);
    gw_limits_result_t res;
    sc[0].max_budget_micros = NONE;
    cr_assert_eq(r_admit(&r, "probe", sc, 2, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.periods[0].spend_micros, 50 * 1200, "every admitted request was billed once");
    rig_close(&r);
}

/* ---- Redis down: a throwaway server of our own ---------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t redis_start(int port)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    /* until it accepts connections */
    for (int i = 0; i < 100; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        close(fd);
        if (ok)
            return pid;
        usleep(50 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void redis_stop(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void wait_state(rig_t *r, int up)
{
    int64_t end = mono_ms() + 6000;
    while (gw_limits_redis_ok(r->lim) != up && mono_ms() < end)
        h2o_evloop_run(r->loop, 10);
    cr_assert_eq(gw_limits_redis_ok(r->lim), up, "readiness %s", up ? "up" : "down");
}

Test(limits_redis, redis_down_fail_open_and_fail_closed)
{
    if (getenv("TEST_REDIS_URL") == NULL && system("command -v redis-server >/dev/null 2>&1") != 0)
        cr_skip_test("redis-server is not installed");
    new_prefix();
    int port = free_port();
    pid_t pid = redis_start(port);
    cr_assert_gt(pid, 0, "redis-server on port %d", port);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    rig_t open_r, closed_r;
    rig_open(&open_r, url, 0, 0, 1);
    rig_open(&closed_r, url, 1, 0, 1);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    sc.rpm_limit = 3;
    gw_limits_result_t res;
    cr_assert_eq(r_admit(&open_r, "a", &sc, 1, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.via_redis, 1);
    cr_assert_eq(r_admit(&closed_r, "b", &sc, 1, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.via_redis, 1);
    /* an admission in flight when the server dies completes too (as unavailable) */
    redis_stop(pid);
    wait_state(&open_r, 0);
    wait_state(&closed_r, 0);
    cr_assert_eq(r_admit(&closed_r, "c", &sc, 1, 0, 0, &res), GW_LIMITS_UNAVAILABLE);
    /* fail_open: local limits, exact per instance */
    cr_assert_eq(r_admit(&open_r, "d1", &sc, 1, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.via_redis, 0);
    cr_assert_eq(r_admit(&open_r, "d2", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&open_r, "d3", &sc, 1, 0, 0, NULL), GW_LIMITS_ADMITTED);
    cr_assert_eq(r_admit(&open_r, "d4", &sc, 1, 0, 0, &res), GW_LIMITS_REFUSED);
    cr_expect_eq(res.via_redis, 0);
    /* a local reservation settles locally */
    cr_expect(r_settle(&open_r, "d1", 1, 1));
    cr_expect_not(r_settle(&open_r, "a", 1, 1), "its Redis reservation is out of reach (TTL returns it)");
    /* the server comes back on the same port: both reconnect */
    pid = redis_start(port);
    cr_assert_gt(pid, 0);
    wait_state(&open_r, 1);
    wait_state(&closed_r, 1);
    cr_assert_eq(r_admit(&closed_r, "e", &sc, 1, 0, 0, &res), GW_LIMITS_ADMITTED);
    cr_expect_eq(res.via_redis, 1);
    rig_close(&open_r);
    rig_close(&closed_r);
    redis_stop(pid);
}

Test(limits_redis, no_reply_within_timeout_counts_as_down)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0)
        cr_skip_test("redis-server is not installed");
    new_prefix();
    int port = free_port();
    pid_t pid = redis_start(port);
    cr_assert_gt(pid, 0);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    rig_t r;
    rig_open(&r, url, 1, 0, 1);
    gw_limits_scope_t sc = scope(GW_SCOPE_KEY, "k");
    kill(pid, SIGSTOP); /* alive but silent */
    int64_t t0 = mono_ms();
    cr_assert_eq(r_admit(&r, "a", &sc, 1, 0, 0, NULL), GW_LIMITS_UNAVAILABLE);
    int64_t took = mono_ms() - t0;
    cr_expect_geq(took, 400);
    cr_expect_leq(took, 2000, "answered after the 500 ms timeout, took %lld ms", (long long)took);
    cr_expect_not(gw_limits_redis_ok(r.lim));
    kill(pid, SIGCONT);
    wait_state(&r, 1);
    rig_close(&r);
    redis_stop(pid);
}

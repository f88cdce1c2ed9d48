/*
 * test_spend_batch.c — a worker's spend batch (gateway/spend_batch.h) on a real h2o loop and a
 * real journal (SQLite store in a temporary data dir): records are not written one by one but
 * once per loop iteration; holds are released only after that write (and, with journal_sync
 * always, after the sync thread's answer); a cancelled hold never runs; a full buffer writes
 * early without releasing anything; destroy writes what is left.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "db_env.h"
#include "gateway/spend.h"
#include "gateway/spend_batch.h"
#include "gateway/store.h"

typedef struct env {
    db_env_t db;
    gw_store_t *store;
    gw_spend_t *sp;
    h2o_evloop_t *loop;
    h2o_timeout_t zero;
    h2o_multithread_queue_t *queue;
    gw_spend_batch_t *b;
} env_t;

static void env_setup(env_t *e, gw_spend_sync_mode_t mode)
{
    memset(e, 0, sizeof(*e));
    db_env_setup(&e->db, GW_STORE_SQLITE, "spendq", 1);
    char err[512] = "";
    e->store = gw_store_open_url(NULL, e->db.dir, err, sizeof(err));
    cr_assert_not_null(e->store, "open: %s", err);
    cr_assert_eq(gw_store_migrate(e->store, NULL, err, sizeof(err)), GW_STORE_OK, "migrate: %s", err);
    gw_spend_settings_t set = {.instance_id = "t", .sync_mode = mode, .sync_ms = 20, .writer_ms = 20};
    e->sp = gw_spend_open(e->db.dir, e->store, &set, err, sizeof(err));
    cr_assert_not_null(e->sp, "%s", err);
    e->loop = h2o_evloop_create();
    h2o_timeout_init(e->loop, &e->zero, 0);
    e->queue = h2o_multithread_create_queue(e->loop);
    e->b = gw_spend_batch_create(e->sp, e->loop, &e->zero, e->queue);
    cr_assert_not_null(e->b);
}

static void env_teardown(env_t *e)
{
    gw_spend_batch_destroy(e->b);
    h2o_timeout_dispose(e->loop, &e->zero);
    h2o_multithread_destroy_queue(e->queue);
    gw_spend_close(e->sp);
    gw_store_close(e->store);
    db_env_teardown(&e->db);
}

/* Bytes in the instance's journal files. */
static uint64_t journal_bytes(env_t *e)
{
    uint64_t n = 0;
    DIR *d = opendir(e->db.dir);
    struct dirent *x;
    while ((x = readdir(d)) != NULL) {
        size_t l = strlen(x->d_name);
        if (strncmp(x->d_name, "spend-t.", 8) != 0 || l < 8 || strcmp(x->d_name + l - 8, ".journal") != 0)
            continue;
        char p[600];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", e->db.dir, x->d_name);
        if (stat(p, &st) == 0)
            n += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

static void add(env_t *e, int i)
{
    char id[32];
    snprintf(id, sizeof(id), "req-%05d", i);
    gw_spend_rec_t r = {.request_id = id,
                        .call_type = "acompletion",
                        .model_group = "m",
                        .spend_micros = 10,
                        .start_ms = 1717200000000LL,
                        .end_ms = 1717200000100LL};
    cr_assert_eq(gw_spend_batch_add(e->b, &r), GW_SPEND_OK);
}

typedef struct held {
    gw_spend_hold_t h;
    int runs, ok;
    uint64_t bytes_then; /* journal bytes when cb ran */
    env_t *e;
} held_t;

static void on_release(gw_spend_hold_t *h)
{
    held_t *x = H2O_STRUCT_FROM_MEMBER(held_t, h, h);
    x->runs++;
    x->ok = h->ok;
    x->bytes_then = journal_bytes(x->e);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void run_until(env_t *e, const int *flag, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (!*flag && now_ms() < end)
        h2o_evloop_run(e->loop, 10);
}

Test(spend_batch, one_write_per_iteration_then_release)
{
    env_t e;
    env_setup(&e, GW_SPEND_SYNC_INTERVAL);
    held_t a = {.e = &e}, b = {.e = &e};
    for (int i = 0; i < 50; i++)
        add(&e, i);
    gw_spend_batch_hold(e.b, &a.h, on_release);
    add(&e, 50);
    gw_spend_batch_hold(e.b, &b.h, on_release);
    cr_assert_eq(journal_bytes(&e), 0, "nothing is written record by record");
    cr_assert_eq(a.runs + b.runs, 0, "holds never run from add/hold");
    cr_assert_eq(gw_spend_batch_held(e.b), 2);
    h2o_evloop_run(e.loop, 0); /* one iteration: the zero-delay flush */
    cr_assert_eq(a.runs, 1);
    cr_assert_eq(b.runs, 1);
    cr_assert(a.ok && b.ok);
    gw_spend_stats_t st;
    gw_spend_stats(e.sp, &st);
    cr_assert_eq(st.records_written, 51);
    cr_assert(a.bytes_then > 0 && a.bytes_then == journal_bytes(&e),
              "all 51 lines were in the file before cb");
    cr_assert_eq(gw_spend_batch_held(e.b), 0);
    env_teardown(&e);
}

Test(spend_batch, cancelled_hold_never_runs_but_its_record_is_written)
{
    env_t e;
    env_setup(&e, GW_SPEND_SYNC_INTERVAL);
    held_t a = {.e = &e};
    add(&e, 1);
    gw_spend_batch_hold(e.b, &a.h, on_release);
    gw_spend_hold_cancel(&a.h);
    gw_spend_hold_cancel(&a.h); /* twice is harmless */
    h2o_evloop_run(e.loop, 0);
    cr_assert_eq(a.runs, 0);
    cr_assert(journal_bytes(&e) > 0);
    env_teardown(&e);
}

Test(spend_batch, full_buffer_writes_early_and_releases_later)
{
    env_t e;
    env_setup(&e, GW_SPEND_SYNC_INTERVAL);
    held_t a = {.e = &e};
    add(&e, 0);
    gw_spend_batch_hold(e.b, &a.h, on_release);
    int i = 1;
    while (journal_bytes(&e) == 0 && i < 100000)
        add(&e, i++);
    cr_assert(journal_bytes(&e) > 0 && journal_bytes(&e) <= GW_SPEND_BATCH_MAX,
              "an early write, within the ceiling");
    cr_assert_eq(a.runs, 0, "released only at the end of the iteration");
    h2o_evloop_run(e.loop, 0);
    cr_assert_eq(a.runs, 1);
    cr_assert(a.ok);
    gw_spend_stats_t st;
    gw_spend_stats(e.sp, &st);
    cr_assert_eq(st.records_written, (uint64_t)i);
    env_teardown(&e);
}

Test(spend_batch, always_waits_for_the_sync_thread)
{
    env_t e;
    env_setup(&e, GW_SPEND_SYNC_ALWAYS);
    held_t a = {.e = &e};
    add(&e, 1);
    gw_spend_batch_hold(e.b, &a.h, on_release);
    h2o_evloop_run(e.loop, 0); /* the write; the sync is asked for, its answer comes as a message */
    run_until(&e, &a.runs, 5000);
    cr_assert_eq(a.runs, 1);
    cr_assert(a.ok);
    uint64_t synced, failed;
    gw_spend_sync_state(e.sp, &synced, &failed);
    cr_assert(synced >= a.h.upto && a.h.upto > 0 && failed == 0);
    /* a second round on the same batch */
    held_t b = {.e = &e};
    add(&e, 2);
    gw_spend_batch_hold(e.b, &b.h, on_release);
    run_until(&e, &b.runs, 5000);
    cr_assert(b.runs == 1 && b.ok && b.h.upto > a.h.upto);
    env_teardown(&e);
}

Test(spend_batch, destroy_writes_what_is_left)
{
    env_t e;
    env_setup(&e, GW_SPEND_SYNC_NONE);
    add(&e, 1);
    add(&e, 2);
    cr_assert_eq(journal_bytes(&e), 0);
    gw_spend_batch_destroy(e.b);
    e.b = NULL;
    gw_spend_stats_t st;
    gw_spend_stats(e.sp, &st);
    cr_assert_eq(st.records_written, 2);
    cr_assert(journal_bytes(&e) > 0);
    env_teardown(&e);
}

/*
 * spend_batch.c — a worker's spend records, written once per loop iteration (spend_batch.h).
 *
 * Holds live on three lists: `wait_write` (their records are in the buffer), `wait_sync`
 * (always: written, waiting for the sync thread to cover h->upto) and `ready` (their cb runs at
 * the next release point). Callbacks run only from release(), which pops one hold at a time, so
 * a callback that cancels another hold (or adds and holds anew) never invalidates an iteration.
 *
 * The sync thread's answer is one preallocated message per batch with a busy flag: the thread
 * posts it only when it is not already queued, and the loop clears the flag BEFORE it reads the
 * sync state, so an answer that found the flag set is still seen (both sides use sequentially
 * consistent atomics: synced_total is stored before the flag is tested).
 */
#include "gateway/spend_batch.h"

#include <stdlib.h>
#include <string.h>

struct gw_spend_batch {
    gw_spend_t *sp;
    h2o_loop_t *loop;
    h2o_timeout_t *zero;
    h2o_timeout_entry_t tick; /* the end-of-iteration flush */
    h2o_multithread_receiver_t rx;
    h2o_multithread_message_t msg; /* the sync thread's answer */
    int msg_busy;                  /* atomic: msg is queued */
    int slot;                      /* sync subscriber slot */
    int always;
    char *buf;
    size_t len, nrec;
    int write_failed; /* an early write for room failed: wait_write holds get ok = 0 */
    uint64_t last_end;
    h2o_linklist_t wait_write, wait_sync, ready;
};

static void on_tick(h2o_timeout_entry_t *e);

/* Moves every hold of `from` to ready with ok. */
static void move_all(h2o_linklist_t *from, h2o_linklist_t *ready, int ok)
{
    while (!h2o_linklist_is_empty(from)) {
        gw_spend_hold_t *h = H2O_STRUCT_FROM_MEMBER(gw_spend_hold_t, link, from->next);
        h2o_linklist_unlink(&h->link);
        h->ok = ok;
        h2o_linklist_insert(ready, &h->link);
    }
}

static void release(gw_spend_batch_t *b)
{
    while (!h2o_linklist_is_empty(&b->ready)) {
        gw_spend_hold_t *h = H2O_STRUCT_FROM_MEMBER(gw_spend_hold_t, link, b->ready.next);
        h2o_linklist_unlink(&h->link);
        h->cb(h);
    }
}

/* always: holds whose bytes the sync thread has answered for go to ready. */
static void collect_synced(gw_spend_batch_t *b)
{
    uint64_t synced, failed;
    gw_spend_sync_state(b->sp, &synced, &failed);
    h2o_linklist_t *n = b->wait_sync.next;
    while (n != &b->wait_sync) {
        gw_spend_hold_t *h = H2O_STRUCT_FROM_MEMBER(gw_spend_hold_t, link, n);
        n = n->next;
        if (h->upto <= failed || h->upto <= synced) {
            h2o_linklist_unlink(&h->link);
            h->ok = h->upto > failed;
            h2o_linklist_insert(&b->ready, &h->link);
        }
    }
}

/*
 * Writes the buffer (one write(2)); wait_write holds move on. Never runs a callback. Returns
 * the append's result (GW_SPEND_OK when there was nothing to write). A failure sticks to the
 * holds waiting now: the records they wait for may be the ones lost.
 */
static int write_buffer(gw_spend_batch_t *b)
{
    int r = GW_SPEND_OK;
    if (b->len > 0) {
        uint64_t end = 0;
        r = gw_spend_append(b->sp, b->buf, b->len, b->nrec, &end);
        b->len = b->nrec = 0;
        if (r != GW_SPEND_OK)
            b->write_failed = 1;
        else
            b->last_end = end;
    }
    if (h2o_linklist_is_empty(&b->wait_write)) {
        if (b->always && r == GW_SPEND_OK && b->last_end > 0)
            gw_spend_request_sync(b->sp, b->slot, b->last_end); /* records nobody waits for: durable too */
        goto out;
    }
    if (b->write_failed || !b->always || b->last_end == 0) {
        move_all(&b->wait_write, &b->ready, !b->write_failed);
        goto out;
    }
    while (!h2o_linklist_is_empty(&b->wait_write)) {
        gw_spend_hold_t *h = H2O_STRUCT_FROM_MEMBER(gw_spend_hold_t, link, b->wait_write.next);
        h2o_linklist_unlink(&h->link);
        h->upto = b->last_end;
        h2o_linklist_insert(&b->wait_sync, &h->link);
    }
    collect_synced(b); /* already covered by an earlier sync: nothing to ask */
    if (!h2o_linklist_is_empty(&b->wait_sync))
        gw_spend_request_sync(b->sp, b->slot, b->last_end);
out:
    b->write_failed = 0;
    return r;
}

static void on_tick(h2o_timeout_entry_t *e)
{
    gw_spend_batch_t *b = H2O_STRUCT_FROM_MEMBER(gw_spend_batch_t, tick, e);
    write_buffer(b);
    release(b);
}

static void schedule(gw_spend_batch_t *b)
{
    if (!h2o_timeout_is_linked(&b->tick))
        h2o_timeout_link(b->loop, b->zero, &b->tick);
}

/* Sync thread: post the answer unless one is queued already. */
static void on_synced_notify(void *ud)
{
    gw_spend_batch_t *b = ud;
    if (__atomic_exchange_n(&b->msg_busy, 1, __ATOMIC_SEQ_CST) == 0)
        h2o_multithread_send_message(&b->rx, &b->msg);
}

/* Loop: the sync thread answered. */
static void on_synced(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
    gw_spend_batch_t *b = H2O_STRUCT_FROM_MEMBER(gw_spend_batch_t, rx, rx);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next); /* only ever b->msg */
    __atomic_store_n(&b->msg_busy, 0, __ATOMIC_SEQ_CST);
    collect_synced(b);
    release(b);
}

gw_spend_batch_t *gw_spend_batch_create(gw_spend_t *sp, h2o_loop_t *loop, h2o_timeout_t *zero,
                                        h2o_multithread_queue_t *queue)
{
    gw_spend_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->buf = malloc(GW_SPEND_BATCH_MAX);
    if (b->buf == NULL) {
        free(b);
        return NULL;
    }
    b->sp = sp;
    b->loop = loop;
    b->zero = zero;
    b->tick.cb = on_tick;
    h2o_linklist_init_anchor(&b->wait_write);
    h2o_linklist_init_anchor(&b->wait_sync);
    h2o_linklist_init_anchor(&b->ready);
    b->slot = -1;
    b->always = gw_spend_sync_mode(sp) == GW_SPEND_SYNC_ALWAYS;
    if (b->always) {
        h2o_multithread_register_receiver(queue, &b->rx, on_synced);
        b->slot = gw_spend_subscribe(sp, on_synced_notify, b);
        if (b->slot < 0) {
            h2o_multithread_unregister_receiver(queue, &b->rx);
            free(b->buf);
            free(b);
            return NULL;
        }
    }
    return b;
}

void gw_spend_batch_destroy(gw_spend_batch_t *b)
{
    if (b == NULL)
        return;
    write_buffer(b);
    if (h2o_timeout_is_linked(&b->tick))
        h2o_timeout_unlink(&b->tick);
    if (b->always) {
        gw_spend_unsubscribe(b->sp, b->slot); /* no notification runs after this */
        while (!h2o_linklist_is_empty(&b->rx._messages))
            h2o_linklist_unlink(b->rx._messages.next);
        h2o_multithread_unregister_receiver(b->rx.queue, &b->rx);
    }
    h2o_linklist_t *lists[] = {&b->wait_write, &b->wait_sync, &b->ready};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        while (!h2o_linklist_is_empty(lists[i]))
            h2o_linklist_unlink(lists[i]->next);
    free(b->buf);
    free(b);
}

int gw_spend_batch_add(gw_spend_batch_t *b, const gw_spend_rec_t *rec)
{
    int r = GW_SPEND_OK;
    if (GW_SPEND_BATCH_MAX - b->len < GW_SPEND_MAX_LINE) {
        r = write_buffer(b); /* early: room for one more line of the largest size */
    }
    int n = gw_spend_format(rec, b->buf + b->len, GW_SPEND_BATCH_MAX - b->len);
    if (n < 0)
        return GW_SPEND_EINVAL;
    b->len += (size_t)n;
    b->nrec++;
    schedule(b);
    return r;
}

void gw_spend_batch_hold(gw_spend_batch_t *b, gw_spend_hold_t *h, gw_spend_hold_cb cb)
{
    h->cb = cb;
    h->ok = 0;
    h->upto = 0;
    h2o_linklist_insert(&b->wait_write, &h->link);
    schedule(b);
}

void gw_spend_hold_cancel(gw_spend_hold_t *h)
{
    if (h2o_linklist_is_linked(&h->link))
        h2o_linklist_unlink(&h->link);
}

void gw_spend_batch_flush(gw_spend_batch_t *b)
{
    write_buffer(b);
    if (!h2o_linklist_is_empty(&b->ready))
        schedule(b); /* their callbacks run at the end of the iteration */
}

size_t gw_spend_batch_held(const gw_spend_batch_t *b)
{
    size_t n = 0;
    const h2o_linklist_t *lists[] = {&b->wait_write, &b->wait_sync, &b->ready};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        for (const h2o_linklist_t *x = lists[i]->next; x != lists[i]; x = x->next)
            n++;
    return n;
}

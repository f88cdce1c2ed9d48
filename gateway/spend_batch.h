/*
 * spend_batch.h — the request path's side of the spend journal (spend.h): one batch per worker
 * loop, so that recording a request's spend costs a memcpy, and the journal sees one write(2)
 * (one lock) per loop iteration instead of one per request (DESIGN §7: "write(2), batched per
 * loop iteration, before the final byte goes to the client").
 *
 *   request ends ── gw_spend_batch_add (format into the worker's buffer)
 *                └─ gw_spend_batch_hold (the final send waits; the hold is embedded in the call)
 *   end of the loop iteration (a zero-delay timeout):
 *     gw_spend_append(whole buffer) ── interval / none: every hold's cb runs (ok = 1)
 *                                   └─ always: gw_spend_request_sync → sync thread fdatasyncs →
 *                                      h2o_multithread message → holds covered by it run
 *
 * Contract. A hold's cb runs exactly once, on the loop, from a timeout or a message callback —
 * never from inside gw_spend_batch_add/hold, so the caller may hold and return — unless
 * gw_spend_hold_cancel ran first. When cb runs with ok = 1, every record added before the hold
 * is in the journal file (and, with journal_sync always, fdatasynced): the caller may send its
 * final byte. ok = 0: the write(2) failed (the records are NOT in the journal; spend.h) or, with
 * always, the fdatasync failed: the caller must not complete the response normally. A caller
 * whose client left cancels its hold (teardown); the records it added stay in the batch and
 * are written all the same.
 *
 * Ceiling. The buffer holds GW_SPEND_BATCH_MAX bytes; a record that does not fit makes the
 * batch write what it has at once (still one write(2), still before any held send goes), so the
 * buffer never grows. Threads: everything on the owning loop, except the sync thread's
 * notification, which only posts a message.
 */
#ifndef GW_SPEND_BATCH_H
#define GW_SPEND_BATCH_H

#include <h2o.h>
#include <stdint.h>

#include "gateway/spend.h"

/** Bytes a worker's batch buffers at most before it writes early. */
#define GW_SPEND_BATCH_MAX (256u * 1024)

typedef struct gw_spend_batch gw_spend_batch_t;

typedef struct gw_spend_hold gw_spend_hold_t;
/** Runs once on the loop when the hold is released; h->ok says whether the records made it. */
typedef void (*gw_spend_hold_cb)(gw_spend_hold_t *h);

/** Embed in the object whose final send waits; zero it before the first use. */
struct gw_spend_hold {
    h2o_linklist_t link; /* on one of the batch's lists while held */
    gw_spend_hold_cb cb;
    uint64_t upto; /* always: the journal position that must be durable */
    int ok;
};

/**
 * A batch for one loop. zero is a zero-duration timeout list of that loop (the flush runs at
 * the end of the iteration that added records); queue is the loop's multithread queue (the sync
 * thread's answers arrive there). sp is borrowed and must outlive the batch. Returns NULL when
 * out of memory or out of sync subscriber slots.
 */
gw_spend_batch_t *gw_spend_batch_create(gw_spend_t *sp, h2o_loop_t *loop, h2o_timeout_t *zero,
                                        h2o_multithread_queue_t *queue);

/**
 * Writes what is still buffered (one write(2), on the calling thread), stops listening to the
 * sync thread and frees the batch. Holds still linked are dropped without their cb (a forced
 * exit leaves their requests behind). Call on the loop's thread when it stops. NULL is a no-op.
 */
void gw_spend_batch_destroy(gw_spend_batch_t *b);

/**
 * Formats rec (strings copied) into the buffer and schedules the flush. Returns GW_SPEND_OK,
 * GW_SPEND_EINVAL (the record cannot be formatted: nothing added), or GW_SPEND_EIO when an early
 * write for room failed (the records before this one are lost and their holds will get ok = 0;
 * this one is added).
 */
int gw_spend_batch_add(gw_spend_batch_t *b, const gw_spend_rec_t *rec);

/**
 * Holds h until every record added so far is written (and synced, with journal_sync always);
 * then cb runs (see the contract). h must not be held already.
 */
void gw_spend_batch_hold(gw_spend_batch_t *b, gw_spend_hold_t *h, gw_spend_hold_cb cb);

/** Drops h if it is still held: cb will not run. Safe on a hold that was never held. */
void gw_spend_hold_cancel(gw_spend_hold_t *h);

/** Writes the buffer now; releases nothing (holds go at the end of the iteration). */
void gw_spend_batch_flush(gw_spend_batch_t *b);

/** Holds waiting (for tests and metrics). */
size_t gw_spend_batch_held(const gw_spend_batch_t *b);

#endif

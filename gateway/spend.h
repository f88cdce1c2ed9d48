/*
 * spend.h — spend that is never lost: a per-instance journal of finished requests, fsynced off
 * the loop, and one writer per instance that moves journal records into the store.
 *
 *   worker loop (spend_batch.h)       sync thread               writer thread      store thread
 *   records → the worker's buffer
 *   once per loop iteration:
 *     gw_spend_append: ONE write(2) ──▶ journal file ──▶ fdatasync every journal_sync_ms,
 *     then the held final sends go       (or at once when a worker asks: journal_sync always,
 *     (always: when the sync thread        answered through gw_spend_notify_fn)
 *      says the bytes are durable)
 *                                     journal ──▶ read complete lines ──▶ gw_store_run(batch tx)
 *                                                 checkpoint (rename) ◀── committed
 *
 * Ordering contract. A record's line is in the journal file (the kernel's page cache: a kill -9
 * of the process after that loses nothing) BEFORE the response's final byte is handed to h2o.
 * On the request path that is spend_batch.h's job: a worker formats its requests' records into
 * its own buffer, writes the whole buffer with one gw_spend_append per loop iteration, and only
 * then releases the final sends it held. A client that sees the end of a response can therefore
 * rely on its spend being recorded. A machine crash loses at most the last journal_sync_ms of
 * records; with journal_sync "always" the held sends also wait for an fdatasync covering their
 * bytes, which the sync thread runs (group commit: one sync covers every record written before
 * it) — the loop never waits for a disk flush. gw_spend_record is the synchronous form of the
 * same thing for tests and tools: one record, one write(2), and in "always" mode an fdatasync on
 * the calling thread.
 *
 * Journal format. Files TOLLGATE_DATA_DIR/spend-<instance>.<seq>.journal; a new one (seq+1)
 * at every start and whenever the current one passes rotate_bytes. One record per line:
 *     S2 <payload length, decimal> <CRC-32C of payload, 8 hex> <payload>\n
 * where the payload is the record's fields separated by tabs in a fixed order (strings, which
 * can hold no tab or newline, then decimal numbers; spend.c lists them). The leading "S<n>" is
 * the format version: lines of format 1 (a JSON payload, written by earlier versions) are still
 * read, so a journal left by an older version is replayed after an upgrade; fields are only ever
 * appended to format 2 and a reader ignores fields it does not know. The other way does not
 * work: a version from before format 2 skips format 2 lines as corrupt, so before going back to
 * one, stop this version cleanly and let its journal drain into the store (gw_spend_close waits
 * up to close_drain_ms and logs when records remain) — a backlog left behind would not be
 * billed. A format 2 line whose text is not what the writer writes (valid UTF-8 without
 * control characters) is skipped as corrupt, so that it cannot fail every retry of its batch.
 * A line that is incomplete (no newline: torn by kill -9) or whose length or checksum does not
 * match is skipped and counted, never parsed. Earlier files are never appended to again, so a
 * torn tail cannot swallow later records. spend-<instance>.checkpoint holds "<seq> <offset>"
 * with a checksum, replaced atomically (write, fsync, rename): everything before it is in the
 * store. spend-<instance>.lock (flock) keeps two processes off one instance id.
 *
 * Writer. One thread per instance: reads up to batch_max complete records after the
 * checkpoint (decoded in place, no allocation per record), and in ONE transaction inserts them
 * into spend_logs with ON CONFLICT (request_id) DO NOTHING; only for rows actually inserted it
 * adds the spend to keys, users, teams, team_membership, end_users (created when missing, like
 * LiteLLM's customers) and organizations — one UPDATE per distinct row per batch — and upserts
 * the daily_spend rollup. Every statement is a cached prepared statement
 * (gw_store_exec_cached). Then it moves the checkpoint. Replaying a
 * batch (crash after commit, before the checkpoint) therefore changes nothing. When the store
 * fails (PostgreSQL down: GW_STORE_UNAVAILABLE) the writer retries the same batch with backoff
 * (retry_min_ms doubling to retry_max_ms) and the journal keeps growing. Fully checkpointed
 * files are deleted.
 *
 * Ceiling. When the journal files together exceed max_bytes (the store has been down for a
 * long time), records are STILL accepted — refusing would lose spend or stop the service for a
 * bookkeeping backlog — but the module logs loudly (at most every 10 s) and gw_spend_stats
 * reports over_ceiling, which readiness and metrics should surface. Only a failed write(2)
 * (disk full) makes an append fail: the whole append is cut back off the file (never half a
 * line), its records are counted in stats.write_errors, and the request path does not complete
 * those responses (spend_batch.h). A failed fdatasync is counted in stats.sync_errors; the
 * bytes it covered are reported failed by gw_spend_sync_state for good (after a failed
 * fdatasync the kernel may have dropped them from the cache, so a later success proves nothing).
 *
 * Threads. gw_spend_record, gw_spend_append, the sync requests, gw_spend_stats and
 * gw_spend_flush are thread-safe and called from any worker; gw_spend_open and gw_spend_close
 * from the main thread only.
 */
#ifndef GW_SPEND_H
#define GW_SPEND_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/store.h"

typedef struct gw_spend gw_spend_t;

/** Bytes of one journal line at most (longer strings in a record are cut to their field cap). */
#define GW_SPEND_MAX_LINE 8192
/** Bytes kept of each string field of a record (request ids longer than this are refused). */
#define GW_SPEND_MAX_FIELD 256
/** Records per store transaction at most (batch_max is capped to it). */
#define GW_SPEND_MAX_BATCH 100000
/** Bytes of an instance id (letters, digits, '-', '_', '.'). */
#define GW_SPEND_MAX_INSTANCE 64
/** Sync subscribers (one per worker loop) at most. */
#define GW_SPEND_MAX_SUBSCRIBERS 1024

typedef enum gw_spend_sync_mode {
    GW_SPEND_SYNC_INTERVAL = 0, /* fdatasync every sync_ms on the sync thread (default) */
    GW_SPEND_SYNC_ALWAYS = 1,   /* responses wait for fdatasync on the sync thread (spend_batch.h) */
    GW_SPEND_SYNC_NONE = 2,     /* never fdatasync (tests, tmpfs) */
} gw_spend_sync_mode_t;

/** Settings; zero fields take the defaults in brackets. */
typedef struct gw_spend_settings {
    const char *instance_id; /* [TOLLGATE_INSTANCE_ID, else the host name]; stable across restarts */
    gw_spend_sync_mode_t sync_mode;
    uint32_t sync_ms;        /* [100] journal_sync_ms */
    uint32_t writer_ms;      /* [100] how often the writer looks for new records */
    uint32_t batch_max;      /* [500] records per store transaction (at most GW_SPEND_MAX_BATCH) */
    uint32_t retry_min_ms;   /* [100] first backoff after a failed batch */
    uint32_t retry_max_ms;   /* [5000] backoff ceiling */
    uint64_t rotate_bytes;   /* [64 MiB] start a new journal file past this size */
    uint64_t max_bytes;      /* [1 GiB] journal backlog that raises over_ceiling (see above) */
    uint32_t close_drain_ms; /* [5000] how long gw_spend_close keeps trying to drain */
} gw_spend_settings_t;

/**
 * One finished request. Strings are borrowed for the call only; NULL or "" means unknown. The
 * request id is the idempotency key: the same id recorded twice is stored (and billed) once.
 */
typedef struct gw_spend_rec {
    const char *request_id; /* required, at most GW_SPEND_MAX_FIELD bytes */
    const char *call_type;  /* "acompletion", "aembedding", "anthropic_messages", … */
    const char *key_hash;   /* keys.token (64 hex); NULL/"" = master key */
    const char *key_alias;
    const char *user_id;
    const char *team_id;
    const char *org_id;
    const char *end_user;    /* the request's `user` field */
    const char *model_group; /* the public model_name the client asked for */
    const char *model;       /* the upstream model */
    const char *provider;    /* custom_llm_provider */
    const char *model_id;    /* the deployment's id */
    const char *api_base;
    const char *status; /* "success" | "failure" (NULL: success) */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    int64_t cache_read_tokens;
    int64_t cache_creation_tokens;
    int64_t spend_micros;   /* the cost, integer micro-dollars, >= 0 */
    int64_t start_ms;       /* unix ms */
    int64_t end_ms;         /* unix ms */
    int64_t first_token_ms; /* unix ms of the first streamed token; 0 = none */
    int stream;
} gw_spend_rec_t;

/** Results of gw_spend_open / gw_spend_record. */
enum {
    GW_SPEND_OK = 0,
    GW_SPEND_EINVAL = -1, /* a record without request id, negative numbers, … */
    GW_SPEND_EIO = -2,    /* write(2) failed: the record is NOT in the journal */
    GW_SPEND_CLOSED = -3, /* after gw_spend_close began */
};

typedef struct gw_spend_stats {
    uint64_t records_written;  /* lines appended by this process */
    uint64_t write_errors;     /* records whose append returned GW_SPEND_EIO */
    uint64_t sync_errors;      /* fdatasync calls that failed */
    uint64_t records_applied;  /* journal records committed to the store (inserted or duplicate) */
    uint64_t records_inserted; /* of those, new spend_logs rows */
    uint64_t corrupt_skipped;  /* torn or corrupt lines skipped */
    uint64_t batches_failed;   /* store transactions that failed and were retried */
    uint64_t backlog_bytes;    /* journal bytes not yet in the store */
    int over_ceiling;          /* backlog_bytes > max_bytes */
    int store_ok;              /* the last batch committed (1 before any batch) */
} gw_spend_stats_t;

/**
 * Opens the journal of this instance in data_dir (NULL: TOLLGATE_DATA_DIR, else "./data";
 * created when missing), takes its lock, starts a new journal file, and starts the sync and
 * writer threads; the writer first replays whatever an earlier run left after its checkpoint.
 * store is borrowed (close the spend module first). settings may be NULL. Returns NULL with a
 * message in err when the directory or lock cannot be had. Main thread, before workers start.
 */
gw_spend_t *gw_spend_open(const char *data_dir, gw_store_t *store, const gw_spend_settings_t *settings,
                          char *err, size_t errlen);

/**
 * Appends rec to the journal: one write(2) of one line, and with journal_sync "always" an
 * fdatasync on the calling thread before it returns — the synchronous form for tests and tools;
 * the request path uses spend_batch.h instead, which never blocks its loop. Returns
 * GW_SPEND_OK, GW_SPEND_EINVAL, GW_SPEND_EIO or GW_SPEND_CLOSED. Thread-safe; holds a mutex only
 * around the write. Never touches the database.
 */
int gw_spend_record(gw_spend_t *sp, const gw_spend_rec_t *rec);

/**
 * Appends len bytes of whole journal lines (gw_spend_format's, nrec of them; the last byte must
 * be a newline) with ONE write(2) under the journal's mutex: all of them are in the file when it
 * returns GW_SPEND_OK, none of them when it returns GW_SPEND_EIO (cut back, logged, counted in
 * write_errors). *end (may be NULL) receives the journal position just past them, in bytes
 * appended by this process over all files — the unit of gw_spend_request_sync and
 * gw_spend_sync_state. No fdatasync here, whatever the mode. Thread-safe.
 */
int gw_spend_append(gw_spend_t *sp, const char *lines, size_t len, size_t nrec, uint64_t *end);

/**
 * Called on the sync thread after an fdatasync answered a subscriber's request (it succeeded or
 * failed: read gw_spend_sync_state). It runs under the module's request lock, so it must be
 * short and must not call back into the module: post a message to a loop (h2o_multithread).
 */
typedef void (*gw_spend_notify_fn)(void *ud);

/** Registers a subscriber; returns its slot, or -1 when GW_SPEND_MAX_SUBSCRIBERS are taken. */
int gw_spend_subscribe(gw_spend_t *sp, gw_spend_notify_fn fn, void *ud);

/** Removes a subscriber; fn is not running and will not run after it returns. */
void gw_spend_unsubscribe(gw_spend_t *sp, int slot);

/**
 * Asks the sync thread (journal_sync interval or always; never with none, which has no sync
 * thread) for an fdatasync covering the journal up to upto (a position from gw_spend_append).
 * Never blocks on the disk: the slot's fn runs once the sync is done or failed. Requests of one
 * slot coalesce (the largest position wins). Thread-safe.
 */
void gw_spend_request_sync(gw_spend_t *sp, int slot, uint64_t upto);

/** The sync mode the journal was opened with. */
gw_spend_sync_mode_t gw_spend_sync_mode(const gw_spend_t *sp);

/**
 * The journal positions known durable (*synced: every byte before it is fdatasynced) and failed
 * (*failed_through: a failed fdatasync covered every byte before it; 0 = none). A position p is
 * failed when p <= *failed_through (checked first), else durable when p <= *synced. Thread-safe.
 */
void gw_spend_sync_state(gw_spend_t *sp, uint64_t *synced, uint64_t *failed_through);

/** Wakes the writer now (e.g. a test, or SIGTERM handling). Thread-safe, cheap. */
void gw_spend_flush(gw_spend_t *sp);

/**
 * Blocks until every record written so far is in the store or timeout_ms passes; returns 0
 * when drained. Tests and shutdown only, never on a loop.
 */
int gw_spend_wait_drained(gw_spend_t *sp, uint32_t timeout_ms);

/** Counters for readiness and metrics. Thread-safe. */
void gw_spend_stats(gw_spend_t *sp, gw_spend_stats_t *out);

/**
 * Stops accepting records, syncs the journal, lets the writer drain for up to close_drain_ms
 * (what remains is replayed at the next start), joins the threads and frees sp. Call after
 * the workers stopped and before gw_store_close. NULL is a no-op.
 */
void gw_spend_close(gw_spend_t *sp);

/* ---- exposed for tests and tools ------------------------------------------------------------ */

/** CRC-32C (Castagnoli) of buf. */
uint32_t gw_spend_crc32c(const void *buf, size_t len);

/**
 * Formats rec as one journal line (format 2, newline included) into out. Returns the length, or
 * GW_SPEND_EINVAL (no request id, a negative or absurd number, or outlen too small).
 */
int gw_spend_format(const gw_spend_rec_t *rec, char *out, size_t outlen);

/**
 * Checks one journal line (without its newline; format 1 or 2) and decodes it into *out: 0, or
 * -1 when the line is torn or corrupt (then *out is zeroed). Decodes IN PLACE: line is modified
 * and out's strings point into it, so they live as long as line's bytes. Absent strings decode
 * as "" (never NULL), absent numbers as 0.
 */
int gw_spend_decode(char *line, size_t len, gw_spend_rec_t *out);

#endif

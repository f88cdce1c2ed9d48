/*
 * sse.h — a Server-Sent Events framer (WHATWG HTML §9.2) that keeps each event's raw bytes.
 *
 * Bytes arrive in arbitrary pieces; the framer buffers only the current, unfinished block and
 * reports every complete block (the lines up to and including the blank line that ends it) with
 * both its raw bytes — so a passthrough can relay the upstream's bytes exactly — and its parsed
 * fields. Lines end at CRLF, LF or CR in any mix, also when a CR ends one piece and its LF starts
 * the next; a leading UTF-8 BOM is dropped; `:` comment lines are skipped in the parse but kept
 * in the raw bytes. A block that holds only comments is reported too (has_data = 0), so keep-alive
 * comments can be relayed. The buffer has a ceiling: a block larger than it is an error.
 */
#ifndef AD_SSE_H
#define AD_SSE_H

#include <stddef.h>
#include "adapters/buf.h"

typedef struct ad_sse_event {
    const char *raw; /* exact bytes of the block including the terminating blank line */
    size_t raw_len;
    const char *event; /* value of the last `event:` field, "" if none (NUL-terminated) */
    size_t event_len;
    const char *data; /* `data:` values joined by '\n', without the final '\n' (NUL-terminated) */
    size_t data_len;
    int has_data;   /* 0 for a block without any data field (comment-only or event-only) */
    const char *id; /* last `id:` value in the block or NULL */
    size_t id_len;
} ad_sse_event_t;

/** Return 0 to go on; non-zero stops ad_sse_feed, which then returns that value. */
typedef int (*ad_sse_cb)(void *ud, const ad_sse_event_t *ev);

typedef struct ad_sse {
    ad_buf_t pending; /* bytes of the unfinished block */
    ad_buf_t data;    /* scratch for the joined data field */
    ad_buf_t event;   /* scratch for the event field */
    size_t scan_off;  /* how far pending has been searched for a block end */
    int bom_checked;
    int last_was_cr; /* the previous piece ended in CR: a leading LF belongs to it */
} ad_sse_t;

/** max_event: ceiling on one block's raw size. */
void ad_sse_init(ad_sse_t *s, size_t max_event);
void ad_sse_free(ad_sse_t *s);
/**
 * Feeds n bytes. Calls cb for every block completed by them, in order. Returns 0, the callback's
 * non-zero value, or -1 when a block exceeds the ceiling (the framer is then unusable).
 * Pointers in the event are valid only during the callback.
 */
int ad_sse_feed(ad_sse_t *s, const char *p, size_t n, ad_sse_cb cb, void *ud);
/**
 * End of input. Returns 1 when an unfinished block (with any non-whitespace bytes) was pending —
 * the stream was truncated — and 0 otherwise. Per the spec the partial block is not dispatched.
 */
int ad_sse_finish(ad_sse_t *s);

#endif

/*
 * sse.c — Server-Sent Events framing (WHATWG HTML §9.2.6) that keeps every block's raw bytes.
 *
 * Where a block ends. A block is everything from the end of the previous block up to and
 * including the first byte of the line end of the empty line that closes it. When that line end
 * is CR LF, the block stops at the CR and the LF becomes the first byte of the next block's raw.
 * This looks odd but is the only rule that gives the same blocks however the input is split: a
 * piece that ends in CR must dispatch at once (a CR-only stream would otherwise hold every event
 * back until the next one arrives), so the unsplit input has to cut at the CR as well. The
 * concatenated raws therefore reproduce the input byte for byte (minus a leading BOM), which is
 * what a passthrough relay wants. The framer carries one bit across blocks, last_was_cr, so an
 * LF that follows such a CR is recognised as its partner, never as an empty line.
 *
 * An empty line with nothing before it in its block (say, a second blank line) is a block of its
 * own: it is reported with has_data = 0, again so that no byte is lost in a relay.
 *
 * How blocks are found. pending holds the unfinished block and scan_off says how far it has been
 * searched, so each byte is searched once however small the pieces are. When pending is empty the
 * caller's piece is scanned in place and only its unfinished tail is copied. Line ends are found
 * with memchr: the next CR is remembered and LF is only looked for before it, so LF-only and
 * CRLF streams both stay linear.
 *
 * Fields are parsed only when a block is complete, from its raw bytes. Bytes are not UTF-8
 * decoded (no U+FFFD substitution): values are passed through as received.
 */
#include "adapters/sse.h"

#include <stdint.h>
#include <string.h>

/* scan_off after a fatal error: every later feed fails until ad_sse_finish. */
#define SSE_DEAD SIZE_MAX

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

typedef struct fields {
    const char *event; /* last event: value, in raw */
    size_t event_len;
    const char *id; /* last acceptable id: value, in raw */
    size_t id_len;
    int has_data;
} fields_t;

void ad_sse_init(ad_sse_t *s, size_t max_event)
{
    /* data and event are built from one block's raw bytes, so they can never outgrow it. */
    ad_buf_init(&s->pending, max_event);
    ad_buf_init(&s->data, max_event);
    ad_buf_init(&s->event, max_event);
    s->scan_off = 0;
    s->bom_checked = 0;
    s->last_was_cr = 0;
}

void ad_sse_free(ad_sse_t *s)
{
    ad_buf_free(&s->pending);
    ad_buf_free(&s->data);
    ad_buf_free(&s->event);
}

/* Index of the next CR or LF at or after i, or len. *cr caches the next CR (SIZE_MAX: unknown)
 * so that LF is only searched for up to it and no byte is searched for CR twice. */
static size_t next_eol(const char *p, size_t i, size_t len, size_t *cr)
{
    if (*cr == SIZE_MAX || *cr < i) {
        const char *c = memchr(p + i, '\r', len - i);
        *cr = c != NULL ? (size_t)(c - p) : len;
    }
    const char *lf = memchr(p + i, '\n', *cr - i);
    return lf != NULL ? (size_t)(lf - p) : *cr;
}

static int name_is(const char *name, size_t n, const char *want, size_t wn)
{
    return n == wn && memcmp(name, want, n) == 0;
}

/* One line of a block that is neither empty nor a comment. */
static int parse_field(ad_sse_t *s, fields_t *f, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    size_t name_len = colon != NULL ? (size_t)(colon - line) : n;
    const char *val = line + name_len + (colon != NULL);
    size_t vlen = n - name_len - (colon != NULL);
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    if (name_is(line, name_len, "data", 4)) {
        f->has_data = 1;
        if (ad_buf_append(&s->data, val, vlen) != 0 || ad_buf_append(&s->data, "\n", 1) != 0)
            return -1;
    } else if (name_is(line, name_len, "event", 5)) {
        f->event = val;
        f->event_len = vlen;
    } else if (name_is(line, name_len, "id", 2) && memchr(val, '\0', vlen) == NULL) {
        f->id = val;
        f->id_len = vlen;
    }
    /* retry and unknown fields are ignored: reconnection is the gateway's decision. */
    return 0;
}

/* Parses the lines of one complete block (raw ends with the first byte of its empty line). */
static int parse_block(ad_sse_t *s, const char *raw, size_t len, fields_t *f)
{
    size_t i = 0, cr = SIZE_MAX;
    /* A leading LF in a longer block is the partner of the CR that ended the previous block;
     * were it an empty line, it would have been a block of its own. */
    if (len > 1 && raw[0] == '\n')
        i = 1;
    while (i < len) {
        size_t e = next_eol(raw, i, len, &cr);
        if (e == i || e == len)
            break; /* the empty line that ends the block */
        if (raw[i] != ':' && parse_field(s, f, raw + i, e - i) != 0)
            return -1;
        i = e + 1;
        if (raw[e] == '\r' && i < len && raw[i] == '\n')
            i++;
    }
    return 0;
}

/* Parses and reports one block. Returns the callback's value, or -1 with *fatal set when the
 * block is over the ceiling or memory ran out. */
static int dispatch(ad_sse_t *s, const char *raw, size_t len, ad_sse_cb cb, void *ud, int *fatal)
{
    fields_t f = {NULL, 0, NULL, 0, 0};
    ad_buf_reset(&s->data);
    ad_buf_reset(&s->event);
    if (len > s->pending.max || parse_block(s, raw, len, &f) != 0 ||
        ad_buf_append(&s->event, f.event, f.event_len) != 0) {
        *fatal = 1;
        return -1;
    }
    if (f.has_data) { /* every data line appended an LF; the last one is not part of the data */
        s->data.len--;
        s->data.data[s->data.len] = '\0';
    }
    ad_sse_event_t ev = {
        .raw = raw,
        .raw_len = len,
        .event = s->event.data != NULL ? s->event.data : "",
        .event_len = s->event.len,
        .data = s->data.data != NULL ? s->data.data : "",
        .data_len = s->data.len,
        .has_data = f.has_data,
        .id = f.id,
        .id_len = f.id_len,
    };
    return cb != NULL ? cb(ud, &ev) : 0;
}

/* Is the line end at e the end of an empty line? start is where the current block begins. */
static int empty_line_at(const char *base, size_t start, size_t e)
{
    return e == start || base[e - 1] == '\n' || base[e - 1] == '\r';
}

/*
 * Scans base[0..len), whose first byte starts the unfinished block, from s->scan_off on and
 * reports every block that completes. *done receives how many leading bytes were reported (the
 * unfinished block now starts there); scan_off and last_was_cr are updated to match. Returns 0,
 * the callback's non-zero value (scanning stops after that block), or -1 with *fatal set.
 */
static int scan_window(ad_sse_t *s, const char *base, size_t len, size_t *done, ad_sse_cb cb, void *ud,
                       int *fatal)
{
    size_t start = 0, i = s->scan_off, cr = SIZE_MAX;
    int rc = 0;
    while (i < len) {
        size_t e = next_eol(base, i, len, &cr);
        if (e == len)
            break;
        int prev_cr = e > 0 ? base[e - 1] == '\r' : s->last_was_cr;
        i = e + 1;
        if (base[e] == '\n' && prev_cr)
            continue; /* second half of a CR LF */
        if (!empty_line_at(base, start, e))
            continue;
        rc = dispatch(s, base + start, i - start, cb, ud, fatal);
        start = i;
        if (rc != 0)
            break;
    }
    if (start > 0)
        s->last_was_cr = base[start - 1] == '\r';
    *done = start;
    s->scan_off = (rc == 0 ? len : i) - start;
    return rc;
}

static int die(ad_sse_t *s)
{
    ad_buf_reset(&s->pending);
    s->scan_off = SSE_DEAD;
    return -1;
}

/* After a stop by the callback: the rest of the piece is dropped and the next byte fed starts a
 * new block (a CR LF split by the stop is still paired through last_was_cr). */
static int stopped(ad_sse_t *s, int rc, int fatal)
{
    if (fatal)
        return die(s);
    ad_buf_reset(&s->pending);
    s->scan_off = 0;
    return rc;
}

/* While the stream start is undecided, holds back bytes that could still be a BOM. Returns -1
 * only when even those few bytes do not fit the ceiling. */
static int strip_bom(ad_sse_t *s, const char **p, size_t *n)
{
    while (!s->bom_checked && *n > 0) {
        if ((unsigned char)**p != utf8_bom[s->pending.len]) {
            s->bom_checked = 1; /* held bytes, if any, are ordinary data */
            break;
        }
        if (ad_buf_append(&s->pending, *p, 1) != 0)
            return -1;
        (*p)++;
        (*n)--;
        if (s->pending.len == sizeof utf8_bom) {
            ad_buf_reset(&s->pending);
            s->bom_checked = 1;
        }
    }
    return 0;
}

/* Nothing is buffered: scan the caller's bytes in place and keep only the unfinished tail. */
static int feed_direct(ad_sse_t *s, const char *p, size_t n, ad_sse_cb cb, void *ud)
{
    size_t done;
    int fatal = 0;
    int rc = scan_window(s, p, n, &done, cb, ud, &fatal);
    if (rc != 0)
        return stopped(s, rc, fatal);
    /* An unfinished block as long as the ceiling can only complete above it. */
    if (n - done >= s->pending.max || ad_buf_append(&s->pending, p + done, n - done) != 0)
        return die(s);
    return 0;
}

int ad_sse_feed(ad_sse_t *s, const char *p, size_t n, ad_sse_cb cb, void *ud)
{
    if (s->scan_off == SSE_DEAD)
        return -1;
    if (!s->bom_checked && strip_bom(s, &p, &n) != 0)
        return die(s);
    while (n > 0) {
        if (s->pending.len == 0)
            return feed_direct(s, p, n, cb, ud);
        if (s->pending.len >= s->pending.max)
            return die(s);
        size_t room = s->pending.max - s->pending.len;
        size_t take = n < room ? n : room;
        if (ad_buf_append(&s->pending, p, take) != 0)
            return die(s);
        p += take;
        n -= take;
        size_t done;
        int fatal = 0;
        int rc = scan_window(s, s->pending.data, s->pending.len, &done, cb, ud, &fatal);
        if (rc != 0)
            return stopped(s, rc, fatal);
        ad_buf_consume(&s->pending, done);
        if (s->pending.len >= s->pending.max)
            return die(s);
    }
    return 0;
}

int ad_sse_finish(ad_sse_t *s)
{
    int truncated = s->scan_off == SSE_DEAD;
    for (size_t i = 0; i < s->pending.len && !truncated; i++) {
        char c = s->pending.data[i];
        truncated = c != ' ' && c != '\t' && c != '\r' && c != '\n';
    }
    /* The framer is ready for a new stream (allocations are kept). */
    ad_buf_reset(&s->pending);
    s->scan_off = 0;
    s->bom_checked = 0;
    s->last_was_cr = 0;
    return truncated;
}

/*
 * eventstream.c — AWS event-stream framing: CRC32, one-frame decoding, the incremental decoder
 * and the encoder (see eventstream.h).
 *
 * Trust order. Nothing in a prelude is believed before its CRC matches: a corrupted length could
 * otherwise make us wait for (or buffer) gigabytes that never come. After the prelude CRC come the
 * length bounds (16 <= total <= ceiling, headers inside the frame), then the message CRC over the
 * whole frame, then the header block is walked once to prove every header is well formed, so
 * callers can iterate headers later without re-checking.
 *
 * Buffering. When the decoder holds no partial frame, complete frames are decoded straight from
 * the caller's piece; only an unfinished tail is copied. A partial frame is completed by copying
 * exactly the bytes it still lacks (first up to the 12-byte prelude, then up to total_length), so
 * each input byte is copied at most once and the buffer never holds more than one frame.
 *
 * CRC32 is computed with a 16-entry table, two lookups per byte: small enough to be an obviously
 * correct constant, fast enough for frames of a few hundred bytes.
 */
#include "adapters/eventstream.h"

#include <string.h>

/* CRC-32 (reflected polynomial 0xEDB88320) of each 4-bit value. */
static const uint32_t crc_nibble[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t ad_es_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= b[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
    }
    return ~crc;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static uint64_t be_n(const unsigned char *b, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | b[i];
    return v;
}

/* Two's complement of an n-byte big-endian value, without implementation-defined casts. */
static int64_t signed_n(uint64_t v, size_t n)
{
    if (n < 8) {
        uint64_t sign = (uint64_t)1 << (8 * n - 1);
        return (int64_t)(v ^ sign) - (int64_t)sign;
    }
    return v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

/* Fixed value sizes by type; -1 for the length-prefixed ones, -2 for unknown types. */
static int fixed_size(unsigned t)
{
    static const signed char sizes[] = {0, 0, 1, 2, 4, 8, -1, -1, 8, 16};
    return t < sizeof(sizes) ? sizes[t] : -2;
}

/* Reads the value of a header of type t at b[*i..len) into h. 0, or -1 when it does not fit. */
static int read_value(const unsigned char *b, size_t len, size_t *i, unsigned t, ad_es_header_t *h)
{
    int size = fixed_size(t);
    size_t at = *i, vl;
    if (size == -2)
        return -1;
    if (size == -1) { /* u16 length, then the bytes */
        if (len - at < 2 || (vl = (size_t)be_n(b + at, 2)) > AD_ES_MAX_HEADER_VALUE || vl > len - at - 2)
            return -1;
        h->bytes = b + at + 2;
        h->bytes_len = vl;
        *i = at + 2 + vl;
        return 0;
    }
    if (len - at < (size_t)size)
        return -1;
    if (t == AD_ES_UUID) {
        h->bytes = b + at;
        h->bytes_len = 16;
    } else if (size > 0) {
        h->num = signed_n(be_n(b + at, (size_t)size), (size_t)size);
    }
    *i = at + (size_t)size;
    return 0;
}

int ad_es_header_next(const ad_es_message_t *m, size_t *off, ad_es_header_t *h)
{
    const unsigned char *b = m->headers;
    size_t len = m->headers_len, i = *off;
    if (i >= len)
        return 0;
    size_t name_len = b[i++];
    if (name_len == 0 || name_len >= len - i) /* the name and at least the type byte */
        return -1;
    h->name = (const char *)b + i;
    h->name_len = name_len;
    i += name_len;
    unsigned t = b[i++];
    h->type = (ad_es_htype_t)t;
    h->num = t == AD_ES_TRUE;
    h->bytes = NULL;
    h->bytes_len = 0;
    if (read_value(b, len, &i, t, h) != 0)
        return -1;
    *off = i;
    return 1;
}

static int headers_valid(const ad_es_message_t *m)
{
    size_t off = 0;
    ad_es_header_t h;
    int rc;
    while ((rc = ad_es_header_next(m, &off, &h)) == 1)
        ;
    return rc == 0;
}

/* Checks the prelude of p[0..12): 0 with *total set, -1 when it cannot start a valid frame. */
static int check_prelude(const unsigned char *p, size_t max, uint32_t *total)
{
    uint32_t t = be32(p), hlen = be32(p + 4);
    if (ad_es_crc32(0, p, 8) != be32(p + 8))
        return -1;
    if (t < AD_ES_MIN_MESSAGE || t > max || hlen > t - AD_ES_MIN_MESSAGE)
        return -1;
    *total = t;
    return 0;
}

static size_t clamp_max(size_t max)
{
    return max < AD_ES_MAX_MESSAGE ? max : AD_ES_MAX_MESSAGE;
}

int ad_es_decode(const void *p, size_t n, size_t max, ad_es_message_t *m, size_t *used)
{
    const unsigned char *b = p;
    uint32_t total;
    if (n < AD_ES_PRELUDE_LEN)
        return 0;
    if (check_prelude(b, clamp_max(max), &total) != 0)
        return -1;
    if (n < total)
        return 0;
    if (ad_es_crc32(0, b, total - 4) != be32(b + total - 4))
        return -1;
    uint32_t hlen = be32(b + 4);
    m->headers = b + AD_ES_PRELUDE_LEN;
    m->headers_len = hlen;
    m->payload = b + AD_ES_PRELUDE_LEN + hlen;
    m->payload_len = total - AD_ES_MIN_MESSAGE - hlen;
    m->total_len = total;
    if (!headers_valid(m))
        return -1;
    *used = total;
    return 1;
}

int ad_es_header_find(const ad_es_message_t *m, const char *name, ad_es_header_t *h)
{
    size_t off = 0, nl = strlen(name);
    while (ad_es_header_next(m, &off, h) == 1)
        if (h->name_len == nl && memcmp(h->name, name, nl) == 0)
            return 1;
    return 0;
}

int ad_es_header_is(const ad_es_message_t *m, const char *name, const char *want)
{
    ad_es_header_t h;
    size_t wl = strlen(want);
    return ad_es_header_find(m, name, &h) && h.type == AD_ES_STRING && h.bytes_len == wl &&
           memcmp(h.bytes, want, wl) == 0;
}

/* ---- incremental decoder ------------------------------------------------------------------ */

void ad_es_decoder_init(ad_es_decoder_t *d, size_t max)
{
    d->max = clamp_max(max);
    d->failed = 0;
    ad_buf_init(&d->pending, d->max);
}

void ad_es_decoder_free(ad_es_decoder_t *d)
{
    ad_buf_free(&d->pending);
}

int ad_es_pending(const ad_es_decoder_t *d)
{
    return d->pending.len > 0;
}

static int fail(ad_es_decoder_t *d)
{
    d->failed = 1;
    ad_buf_reset(&d->pending);
    return -1;
}

/* Bytes the pending partial frame still lacks before it can be looked at again. */
static size_t still_needed(const ad_es_decoder_t *d)
{
    const unsigned char *b = (const unsigned char *)d->pending.data;
    if (d->pending.len < AD_ES_PRELUDE_LEN)
        return AD_ES_PRELUDE_LEN - d->pending.len;
    return be32(b) - d->pending.len; /* the prelude was checked: total > len */
}

/* Adds bytes to the pending frame and delivers it once complete. *used: bytes taken from p. */
static int feed_pending(ad_es_decoder_t *d, const unsigned char *p, size_t n, size_t *used, ad_es_cb cb,
                        void *ud)
{
    size_t take = still_needed(d);
    if (take > n)
        take = n;
    *used = take;
    if (ad_buf_append(&d->pending, p, take) != 0)
        return fail(d);
    ad_es_message_t m;
    size_t frame;
    int r = ad_es_decode(d->pending.data, d->pending.len, d->max, &m, &frame);
    if (r < 0)
        return fail(d);
    if (r == 0)
        return 0;
    int rc = cb(ud, &m);
    ad_buf_reset(&d->pending); /* m pointed into it until now */
    return rc;
}

int ad_es_feed(ad_es_decoder_t *d, const void *p, size_t n, ad_es_cb cb, void *ud)
{
    const unsigned char *in = p;
    if (d->failed)
        return -1;
    while (n > 0) {
        size_t used;
        int rc;
        if (d->pending.len > 0) {
            rc = feed_pending(d, in, n, &used, cb, ud);
        } else {
            ad_es_message_t m;
            int r = ad_es_decode(in, n, d->max, &m, &used);
            if (r < 0)
                return fail(d);
            if (r == 0) /* a valid beginning: keep it (it is shorter than its frame <= max) */
                return ad_buf_append(&d->pending, in, n) == 0 ? 0 : fail(d);
            rc = cb(ud, &m);
        }
        if (rc != 0)
            return rc;
        in += used;
        n -= used;
    }
    return 0;
}

/* ---- encoder ------------------------------------------------------------------------------- */

static size_t header_size(const ad_es_header_t *h)
{
    int size = fixed_size((unsigned)h->type);
    if (h->name_len == 0 || h->name_len > 255 || size == -2)
        return 0;
    if (size == -1)
        return h->bytes_len > AD_ES_MAX_HEADER_VALUE ? 0 : 2 + h->name_len + 2 + h->bytes_len;
    if (h->type == AD_ES_UUID && (h->bytes == NULL || h->bytes_len != 16))
        return 0;
    return 2 + h->name_len + (size_t)size;
}

static void put_be(unsigned char *b, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static unsigned char *write_header(unsigned char *w, const ad_es_header_t *h)
{
    int size = fixed_size((unsigned)h->type);
    *w++ = (unsigned char)h->name_len;
    memcpy(w, h->name, h->name_len);
    w += h->name_len;
    *w++ = (unsigned char)h->type;
    if (size == -1) {
        put_be(w, h->bytes_len, 2);
        if (h->bytes_len > 0)
            memcpy(w + 2, h->bytes, h->bytes_len);
        return w + 2 + h->bytes_len;
    }
    if (h->type == AD_ES_UUID)
        memcpy(w, h->bytes, 16);
    else
        put_be(w, (uint64_t)h->num, (size_t)size);
    return w + size;
}

int ad_es_encode(const ad_es_header_t *h, size_t nh, const void *payload, size_t len, ad_buf_t *out)
{
    size_t hlen = 0, total;
    for (size_t i = 0; i < nh; i++) {
        size_t s = header_size(&h[i]);
        if (s == 0 || __builtin_add_overflow(hlen, s, &hlen))
            return -1;
    }
    if (__builtin_add_overflow(hlen, len, &total) ||
        __builtin_add_overflow(total, AD_ES_MIN_MESSAGE, &total) || total > AD_ES_MAX_MESSAGE ||
        ad_buf_reserve(out, total) != 0)
        return -1;
    unsigned char *start = (unsigned char *)out->data + out->len, *w = start + AD_ES_PRELUDE_LEN;
    put_be(start, total, 4);
    put_be(start + 4, hlen, 4);
    put_be(start + 8, ad_es_crc32(0, start, 8), 4);
    for (size_t i = 0; i < nh; i++)
        w = write_header(w, &h[i]);
    if (len > 0)
        memcpy(w, payload, len);
    w += len;
    put_be(w, ad_es_crc32(0, start, total - 4), 4);
    out->len += total;
    out->data[out->len] = '\0';
    return 0;
}

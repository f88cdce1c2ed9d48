/*
 * The AWS event-stream framing: the four aws-c-event-stream vectors of shared/providers.md §5.5
 * decoded field by field and re-encoded to the same bytes, every single-bit corruption rejected,
 * a stream of all of them split at every offset and fed byte by byte, every header type, and the
 * limits (lengths, ceiling, header sizes, unknown types) on both the decoder and the encoder.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/eventstream.h"

static size_t unhex(const char *hex, unsigned char *out)
{
    size_t n = 0;
    for (const char *p = hex; p[0] != '\0';) {
        if (p[0] == ' ' || p[0] == '|') {
            p++;
            continue;
        }
        unsigned v;
        cr_assert_eq(sscanf(p, "%2x", &v), 1);
        out[n++] = (unsigned char)v;
        p += 2;
    }
    return n;
}

typedef struct vector {
    const char *hex;
    const char *payload;
    const char *hname; /* NULL: no header */
    ad_es_htype_t htype;
    const char *hstr;
    int64_t hnum;
} vector_t;

static const vector_t vectors[] = {
    {"00000010 00000000 05c248eb 7d98c8ff", "", NULL, 0, NULL, 0},
    {"0000001d 00000000 fd528c5a 7b27666f6f273a27626172277d c3653936", "{'foo':'bar'}", NULL, 0, NULL, 0},
    {"0000003d 00000020 07fd8396 | 0c 636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e | "
     "7b27666f6f273a27626172277d | 8d9c08b1",
     "{'foo':'bar'}", "content-type", AD_ES_STRING, "application/json", 0},
    {"0000002b 0000000e 348bec7b | 08 6576656e742d6964 04 0000a00c | 7b27666f6f273a27626172277d | d3890285",
     "{'foo':'bar'}", "event-id", AD_ES_INT32, NULL, 0xA00C},
};

Test(eventstream, crc32_is_zlibs)
{
    cr_assert_eq(ad_es_crc32(0, "123456789", 9), 0xCBF43926u);
    cr_assert_eq(ad_es_crc32(0, "", 0), 0u);
    cr_assert_eq(ad_es_crc32(ad_es_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u, "pieces chain");
}

Test(eventstream, vectors_decode_and_reencode)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        unsigned char b[256];
        size_t n = unhex(vectors[i].hex, b), used = 0;
        ad_es_message_t m;
        cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), 1, "vector %zu", i);
        cr_assert_eq(used, n);
        cr_assert_eq(m.total_len, n);
        cr_assert_eq(m.payload_len, strlen(vectors[i].payload));
        cr_assert_eq(memcmp(m.payload, vectors[i].payload, m.payload_len), 0);
        ad_es_header_t h;
        size_t off = 0, nh = 0;
        ad_es_header_t hs[4];
        while (ad_es_header_next(&m, &off, &h) == 1)
            hs[nh++] = h;
        cr_assert_eq(nh, vectors[i].hname != NULL ? 1u : 0u, "vector %zu headers", i);
        if (nh == 1) {
            cr_assert_eq(hs[0].name_len, strlen(vectors[i].hname));
            cr_assert_eq(memcmp(hs[0].name, vectors[i].hname, hs[0].name_len), 0);
            cr_assert_eq(hs[0].type, vectors[i].htype);
            if (vectors[i].hstr != NULL)
                cr_assert(hs[0].bytes_len == strlen(vectors[i].hstr) &&
                          memcmp(hs[0].bytes, vectors[i].hstr, hs[0].bytes_len) == 0);
            else
                cr_assert_eq(hs[0].num, vectors[i].hnum);
            cr_assert(ad_es_header_find(&m, vectors[i].hname, &h));
        }
        ad_buf_t again;
        ad_buf_init(&again, 1024);
        cr_assert_eq(ad_es_encode(hs, nh, m.payload, m.payload_len, &again), 0);
        cr_assert_eq(again.len, n, "vector %zu re-encoded", i);
        cr_assert_eq(memcmp(again.data, b, n), 0, "vector %zu re-encoded", i);
        ad_buf_free(&again);
        for (size_t k = 1; k < n; k++) /* every proper prefix asks for more */
            cr_assert_eq(ad_es_decode(b, k, AD_ES_MAX_MESSAGE, &m, &used), 0, "vector %zu prefix %zu", i, k);
    }
    cr_assert(ad_es_header_is(&(ad_es_message_t){0}, "x", "y") == 0);
}

Test(eventstream, every_bit_flip_is_rejected)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        unsigned char b[256];
        size_t n = unhex(vectors[i].hex, b), used;
        for (size_t k = 0; k < n; k++)
            for (int bit = 0; bit < 8; bit++) {
                ad_es_message_t m;
                b[k] ^= (unsigned char)(1u << bit);
                cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), -1,
                             "vector %zu byte %zu bit %d", i, k, bit);
                b[k] ^= (unsigned char)(1u << bit);
            }
    }
}

/* ---- streaming -------------------------------------------------------------------------------- */

typedef struct rec {
    ad_buf_t log; /* "payload|name:type;…\n" per message */
    int stop_at, seen;
} rec_t;

static int on_msg(void *ud, const ad_es_message_t *m)
{
    rec_t *r = ud;
    ad_es_header_t h;
    size_t off = 0;
    ad_buf_append(&r->log, m->payload, m->payload_len);
    ad_buf_puts(&r->log, "|");
    while (ad_es_header_next(m, &off, &h) == 1)
        ad_buf_appendf(&r->log, "%.*s:%d:%lld:%zu;", (int)h.name_len, h.name, (int)h.type, (long long)h.num,
                       h.bytes_len);
    ad_buf_puts(&r->log, "\n");
    return ++r->seen == r->stop_at ? 5 : 0;
}

static void all_types(ad_buf_t *out)
{
    static const unsigned char uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ad_es_header_t h[] = {
        {.name = "t", .name_len = 1, .type = AD_ES_TRUE},
        {.name = "f", .name_len = 1, .type = AD_ES_FALSE},
        {.name = "b", .name_len = 1, .type = AD_ES_BYTE, .num = -1},
        {.name = "s", .name_len = 1, .type = AD_ES_INT16, .num = -2},
        {.name = "i", .name_len = 1, .type = AD_ES_INT32, .num = -70000},
        {.name = "l", .name_len = 1, .type = AD_ES_INT64, .num = INT64_MIN},
        {.name = "y",
         .name_len = 1,
         .type = AD_ES_BYTES,
         .bytes = (const unsigned char *)"\0\1",
         .bytes_len = 2},
        {.name = "str",
         .name_len = 3,
         .type = AD_ES_STRING,
         .bytes = (const unsigned char *)"",
         .bytes_len = 0},
        {.name = "ts", .name_len = 2, .type = AD_ES_TIMESTAMP, .num = 1704067200123},
        {.name = "u", .name_len = 1, .type = AD_ES_UUID, .bytes = uuid, .bytes_len = 16},
    };
    cr_assert_eq(ad_es_encode(h, sizeof(h) / sizeof(h[0]), "{}", 2, out), 0);
}

Test(eventstream, all_header_types_round_trip)
{
    ad_buf_t b;
    ad_buf_init(&b, 4096);
    all_types(&b);
    ad_es_message_t m;
    size_t used;
    cr_assert_eq(ad_es_decode(b.data, b.len, AD_ES_MAX_MESSAGE, &m, &used), 1);
    const char *names[] = {"t", "f", "b", "s", "i", "l", "y", "str", "ts", "u"};
    const int64_t nums[] = {1, 0, -1, -2, -70000, INT64_MIN, 0, 0, 1704067200123, 0};
    ad_es_header_t h;
    for (size_t i = 0; i < 10; i++) {
        cr_assert(ad_es_header_find(&m, names[i], &h), "%s", names[i]);
        cr_assert_eq(h.type, (ad_es_htype_t)i, "%s", names[i]);
        cr_assert_eq(h.num, nums[i], "%s", names[i]);
    }
    cr_assert(ad_es_header_find(&m, "u", &h) && h.bytes_len == 16 && h.bytes[15] == 16);
    cr_assert(ad_es_header_find(&m, "y", &h) && h.bytes_len == 2 && h.bytes[1] == 1);
    cr_assert(ad_es_header_is(&m, "str", ""));
    cr_assert(!ad_es_header_is(&m, "i", ""), "type must be STRING");
    cr_assert(!ad_es_header_find(&m, "nope", &h));
    ad_buf_free(&b);
}

Test(eventstream, stream_split_at_every_offset)
{
    ad_buf_t in;
    ad_buf_init(&in, 1 << 16);
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        unsigned char b[256];
        size_t n = unhex(vectors[i].hex, b);
        ad_buf_append(&in, b, n);
    }
    all_types(&in);
    rec_t whole = {.stop_at = 0};
    ad_buf_init(&whole.log, 1 << 16);
    ad_es_decoder_t d;
    ad_es_decoder_init(&d, 1024);
    cr_assert_eq(ad_es_feed(&d, in.data, in.len, on_msg, &whole), 0);
    cr_assert_eq(ad_es_pending(&d), 0);
    cr_assert_eq(whole.seen, 5);
    ad_es_decoder_free(&d);
    for (size_t split = 0; split <= in.len + 1; split++) {
        rec_t r = {.stop_at = 0};
        ad_buf_init(&r.log, 1 << 16);
        ad_es_decoder_init(&d, 1024);
        if (split == in.len + 1) {
            for (size_t k = 0; k < in.len; k++)
                cr_assert_eq(ad_es_feed(&d, in.data + k, 1, on_msg, &r), 0);
        } else {
            cr_assert_eq(ad_es_feed(&d, in.data, split, on_msg, &r), 0);
            cr_assert_eq(ad_es_feed(&d, in.data + split, in.len - split, on_msg, &r), 0);
        }
        cr_assert_eq(ad_es_pending(&d), 0, "split %zu", split);
        cr_assert_eq(r.log.len, whole.log.len, "split %zu", split);
        cr_assert_eq(memcmp(r.log.data, whole.log.data, whole.log.len), 0, "split %zu", split);
        ad_buf_free(&r.log);
        ad_es_decoder_free(&d);
    }
    /* a cut stream leaves a pending frame */
    ad_es_decoder_init(&d, 1024);
    rec_t r = {.stop_at = 0};
    ad_buf_init(&r.log, 1 << 16);
    cr_assert_eq(ad_es_feed(&d, in.data, in.len - 1, on_msg, &r), 0);
    cr_assert_eq(ad_es_pending(&d), 1);
    cr_assert_eq(r.seen, 4);
    ad_es_decoder_free(&d);
    ad_buf_free(&r.log);
    /* the callback's value stops the feed */
    ad_es_decoder_init(&d, 1024);
    rec_t s = {.stop_at = 2};
    ad_buf_init(&s.log, 1 << 16);
    cr_assert_eq(ad_es_feed(&d, in.data, in.len, on_msg, &s), 5);
    cr_assert_eq(s.seen, 2);
    ad_es_decoder_free(&d);
    ad_buf_free(&s.log);
    ad_buf_free(&whole.log);
    ad_buf_free(&in);
}

/* ---- limits --------------------------------------------------------------------------------- */

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* A frame with the given raw header block and payload, CRCs right (lengths as given). */
static size_t raw_frame(unsigned char *b, uint32_t total, uint32_t hlen, const void *hdrs, size_t hn,
                        const char *payload)
{
    put32(b, total);
    put32(b + 4, hlen);
    put32(b + 8, ad_es_crc32(0, b, 8));
    memcpy(b + 12, hdrs, hn);
    size_t pl = strlen(payload);
    memcpy(b + 12 + hn, payload, pl);
    size_t n = 12 + hn + pl;
    put32(b + n, ad_es_crc32(0, b, n));
    return n + 4;
}

Test(eventstream, decoder_limits)
{
    unsigned char b[70000];
    ad_es_message_t m;
    size_t used, n;
    /* lengths: below 16, headers past the frame, above the ceiling (rejected from the prelude) */
    n = raw_frame(b, 15, 0, "", 0, "");
    cr_assert_eq(ad_es_decode(b, 12, AD_ES_MAX_MESSAGE, &m, &used), -1);
    n = raw_frame(b, 16, 1, "", 0, "");
    cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), -1);
    n = raw_frame(b, 17, 0, "", 0, "x");
    cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), 1);
    cr_assert_eq(ad_es_decode(b, 12, 16, &m, &used), -1, "ceiling checked from the prelude alone");
    put32(b, AD_ES_MAX_MESSAGE + 1);
    put32(b + 8, ad_es_crc32(0, b, 8));
    cr_assert_eq(ad_es_decode(b, 12, SIZE_MAX, &m, &used), -1, "ceilings are clamped to 24 MiB");

    /* malformed header blocks (CRCs right) */
    static const struct {
        const char *hdr;
        size_t len;
    } bad[] = {
        {"\x00\x07\x00\x00", 4}, /* empty name */
        {"\x01"
         "a"
         "\x0a",
         3}, /* unknown type 10 */
        {"\x01"
         "a"
         "\x04\x00\x00",
         5}, /* int32 cut short */
        {"\x01"
         "a"
         "\x07\x00\x05"
         "abc",
         7}, /* string longer than the block */
        {"\x05"
         "ab",
         3}, /* name longer than the block */
        {"\x01"
         "a",
         2}, /* no type byte */
        {"\x01"
         "a"
         "\x09"
         "0123456789",
         13}, /* uuid cut short */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = raw_frame(b, (uint32_t)(16 + bad[i].len), (uint32_t)bad[i].len, bad[i].hdr, bad[i].len, "");
        cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), -1, "bad header %zu", i);
    }
    /* a string value of 32768 bytes is over the limit, 32767 is fine */
    unsigned char hdr[3 + 3 + 32768] = {1, 'a', 7, 0x80, 0x00};
    memset(hdr + 5, 'v', 32768);
    n = raw_frame(b, 16 + 5 + 32768, 5 + 32768, hdr, 5 + 32768, "");
    cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), -1);
    hdr[3] = 0x7f;
    hdr[4] = 0xff;
    n = raw_frame(b, 16 + 5 + 32767, 5 + 32767, hdr, 5 + 32767, "");
    cr_assert_eq(ad_es_decode(b, n, AD_ES_MAX_MESSAGE, &m, &used), 1);

    /* the incremental decoder: a bad prelude fails as soon as it is complete, and stays failed */
    ad_es_decoder_t d;
    rec_t r = {.stop_at = 0};
    ad_buf_init(&r.log, 4096);
    ad_es_decoder_init(&d, 1 << 20);
    n = raw_frame(b, 17, 0, "", 0, "x");
    b[9] ^= 1;
    cr_assert_eq(ad_es_feed(&d, b, 11, on_msg, &r), 0, "11 bytes: the prelude is not complete yet");
    cr_assert_eq(ad_es_feed(&d, b + 11, 1, on_msg, &r), -1);
    b[9] ^= 1;
    cr_assert_eq(ad_es_feed(&d, b, n, on_msg, &r), -1, "sticky");
    ad_es_decoder_free(&d);
    ad_es_decoder_init(&d, 16);
    cr_assert_eq(ad_es_feed(&d, b, n, on_msg, &r), -1, "a 17-byte frame is over a 16-byte ceiling");
    ad_es_decoder_free(&d);
    cr_assert_eq(r.seen, 0);
    ad_buf_free(&r.log);
}

Test(eventstream, encoder_limits)
{
    char name[256];
    memset(name, 'n', sizeof(name));
    static unsigned char big[32768];
    ad_es_header_t bad[] = {
        {.name = "", .name_len = 0, .type = AD_ES_TRUE},
        {.name = name, .name_len = 256, .type = AD_ES_TRUE},
        {.name = "s", .name_len = 1, .type = AD_ES_STRING, .bytes = big, .bytes_len = 32768},
        {.name = "u", .name_len = 1, .type = AD_ES_UUID, .bytes = big, .bytes_len = 15},
        {.name = "x", .name_len = 1, .type = (ad_es_htype_t)10},
    };
    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ad_es_encode(&bad[i], 1, "", 0, &out), -1, "header %zu", i);
    cr_assert_eq(out.len, 0);
    ad_es_header_t ok = {
        .name = name, .name_len = 255, .type = AD_ES_STRING, .bytes = big, .bytes_len = 32767};
    cr_assert_eq(ad_es_encode(&ok, 1, "", 0, &out), 0);
    ad_buf_t tiny;
    ad_buf_init(&tiny, 15);
    cr_assert_eq(ad_es_encode(NULL, 0, "", 0, &tiny), -1, "out's ceiling");
    ad_buf_free(&tiny);
    ad_buf_free(&out);
}

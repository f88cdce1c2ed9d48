/*
 * eventstream.h — the AWS event-stream binary framing (application/vnd.amazon.eventstream), the
 * wire format of Bedrock's ConverseStream and of every other AWS streaming response.
 *
 * A stream is back-to-back messages:
 *
 *   total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32
 *
 * all big-endian; prelude_crc is CRC32 of the first 8 bytes, message_crc CRC32 of everything
 * before it (prelude and prelude_crc included). Headers are typed name/value pairs (name_len u8,
 * name, type u8, value). Both CRCs are checked before anything in a message is trusted, and a
 * message larger than the decoder's ceiling is an error, never an allocation.
 *
 * The decoder is incremental: bytes arrive in any pieces, complete messages are handed to a
 * callback with pointers into either the caller's piece or the decoder's own buffer (valid only
 * during the callback). It buffers at most one unfinished message. An encoder is included for
 * tests, fuzzers and fakes that need valid frames.
 */
#ifndef AD_EVENTSTREAM_H
#define AD_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/buf.h"

#define AD_ES_PRELUDE_LEN 12          /* total_length, headers_length, prelude_crc */
#define AD_ES_MIN_MESSAGE 16          /* prelude + message_crc, no headers, no payload */
#define AD_ES_MAX_MESSAGE (24u << 20) /* aws-c-event-stream's limit; ceilings above it are clamped */
#define AD_ES_MAX_HEADER_VALUE 32767u /* bytes and string values */

/** Header value types, numbered as on the wire. */
typedef enum ad_es_htype {
    AD_ES_TRUE = 0,
    AD_ES_FALSE = 1,
    AD_ES_BYTE = 2,
    AD_ES_INT16 = 3,
    AD_ES_INT32 = 4,
    AD_ES_INT64 = 5,
    AD_ES_BYTES = 6,
    AD_ES_STRING = 7,
    AD_ES_TIMESTAMP = 8, /* int64 milliseconds since the epoch */
    AD_ES_UUID = 9,      /* 16 bytes */
} ad_es_htype_t;

/** One header. Pointers point into the message. */
typedef struct ad_es_header {
    const char *name;
    size_t name_len;
    ad_es_htype_t type;
    int64_t num;                /* TRUE/FALSE (1/0), BYTE, INT16, INT32, INT64, TIMESTAMP */
    const unsigned char *bytes; /* BYTES, STRING (not NUL-terminated), UUID */
    size_t bytes_len;
} ad_es_header_t;

/** A decoded message whose CRCs and header block have been validated. */
typedef struct ad_es_message {
    const unsigned char *headers; /* the raw header block */
    size_t headers_len;
    const unsigned char *payload;
    size_t payload_len;
    size_t total_len; /* bytes of the whole frame */
} ad_es_message_t;

/** CRC-32 (IEEE, zlib's crc32): start with crc = 0, feed pieces, the result is final. */
uint32_t ad_es_crc32(uint32_t crc, const void *p, size_t n);

/**
 * Decodes one message from the start of p[0..n). Returns 1 with *m and *used (the frame's size)
 * filled, 0 when p holds only a valid beginning (more bytes are needed; a prelude present is
 * already checked), or -1 when the bytes are not a valid frame: prelude CRC mismatch, length
 * below 16 or above max, headers longer than the frame, message CRC mismatch, malformed header.
 */
int ad_es_decode(const void *p, size_t n, size_t max, ad_es_message_t *m, size_t *used);

/**
 * Iterates a validated message's headers: start with *off = 0; returns 1 with *h filled and *off
 * advanced, 0 after the last header (or -1 on a malformed block, impossible after ad_es_decode).
 */
int ad_es_header_next(const ad_es_message_t *m, size_t *off, ad_es_header_t *h);

/** The first header called name: 1 and *h filled, or 0 when absent. */
int ad_es_header_find(const ad_es_message_t *m, const char *name, ad_es_header_t *h);

/** 1 when header name exists, is a STRING and equals want exactly, else 0. */
int ad_es_header_is(const ad_es_message_t *m, const char *name, const char *want);

/** Return 0 to go on; non-zero stops ad_es_feed, which then returns that value. */
typedef int (*ad_es_cb)(void *ud, const ad_es_message_t *m);

typedef struct ad_es_decoder {
    ad_buf_t pending; /* bytes of the unfinished message */
    size_t max;       /* ceiling on one message */
    int failed;       /* a framing error was seen: every later feed fails */
} ad_es_decoder_t;

/** max: ceiling on one message's total length (clamped to AD_ES_MAX_MESSAGE). Allocates nothing. */
void ad_es_decoder_init(ad_es_decoder_t *d, size_t max);
void ad_es_decoder_free(ad_es_decoder_t *d);
/**
 * Feeds n bytes and calls cb for every message they complete, in order. Returns 0, cb's non-zero
 * value (the message it saw counts as consumed), or -1 on a framing error (sticky).
 */
int ad_es_feed(ad_es_decoder_t *d, const void *p, size_t n, ad_es_cb cb, void *ud);
/** 1 when an unfinished message is pending (the stream was cut), else 0. */
int ad_es_pending(const ad_es_decoder_t *d);

/**
 * Appends one complete frame with the given headers and payload to out. For each header, num
 * holds the numeric value and bytes/bytes_len the BYTES/STRING/UUID value (UUID: 16 bytes).
 * Returns 0, or -1 when a header is invalid (empty or >255-byte name, value over 32767 bytes,
 * UUID not 16 bytes), the frame would exceed AD_ES_MAX_MESSAGE, or out's ceiling is hit.
 */
int ad_es_encode(const ad_es_header_t *h, size_t nh, const void *payload, size_t len, ad_buf_t *out);

#endif

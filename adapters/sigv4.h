/*
 * sigv4.h — AWS Signature Version 4 for request headers (the `Authorization: AWS4-HMAC-SHA256 …`
 * form), with OpenSSL's SHA-256 and HMAC.
 *
 * The signer is pure: the caller supplies every header it wants signed (including host and
 * x-amz-date), the payload and the timestamp; nothing is read from the environment or a clock.
 * Each step is exposed so tests can compare it with AWS's published test suite: canonical
 * request, string to sign, signing key, signature.
 *
 * Scope: header signing for non-S3 services. The path is taken as it goes on the wire and each
 * segment is URI-encoded once more (AWS's "double encoding" for everything but S3); it is not
 * normalised (no dot-segment removal), which is fine for paths the adapters build. The query is
 * given unencoded ("k=v&k2=v2"); keys and values are encoded and sorted. Header values are
 * trimmed and their inner runs of spaces collapsed; repeated names are joined with ','.
 */
#ifndef AD_SIGV4_H
#define AD_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/buf.h"

#define AD_SIGV4_MAX_HEADERS 32
#define AD_SIGV4_MAX_SECRET 256

typedef struct ad_sigv4_header {
    const char *name; /* any case; lower-cased when signed */
    const char *value;
} ad_sigv4_header_t;

typedef struct ad_sigv4_request {
    const char *method;
    const char *path;                 /* as sent, e.g. "/model/x%3A0/converse"; "" or NULL is "/" */
    const char *query;                /* unencoded "k=v&k2=v2", or NULL / "" for none */
    const ad_sigv4_header_t *headers; /* every header to sign, host and x-amz-date included */
    size_t n_headers;                 /* <= AD_SIGV4_MAX_HEADERS */
    const void *payload;
    size_t payload_len;
} ad_sigv4_request_t;

typedef struct ad_sigv4_creds {
    const char *access_key;
    const char *secret_key; /* <= AD_SIGV4_MAX_SECRET bytes */
    const char *region;
    const char *service; /* signing name: "bedrock" for bedrock-runtime */
} ad_sigv4_creds_t;

/** Formats unix time t as "YYYYMMDDTHHMMSSZ" (UTC). 0, or -1 when t is out of range. */
int ad_sigv4_amz_date(int64_t t, char out[17]);

/** Lower-case hex SHA-256 of p[0..n), NUL-terminated. */
void ad_sigv4_sha256_hex(const void *p, size_t n, char out[65]);

/**
 * Appends s[0..n) URI-encoded the AWS way: A-Z a-z 0-9 - _ . ~ kept, every other byte as %XX
 * (upper-case hex); '/' kept when keep_slash. 0, or -1 at out's ceiling.
 */
int ad_sigv4_uri_encode(const char *s, size_t n, int keep_slash, ad_buf_t *out);

/** Appends the canonical request. 0, or -1 (too many headers, ceiling). */
int ad_sigv4_canonical_request(const ad_sigv4_request_t *r, ad_buf_t *out);

/** Appends the string to sign for canonical request creq at amz_date ("YYYYMMDDTHHMMSSZ"). */
int ad_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                            size_t creq_len, ad_buf_t *out);

/** Derives the signing key for date8 ("YYYYMMDD"). 0, or -1 when the secret is too long. */
int ad_sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                         unsigned char key[32]);

/**
 * Appends the Authorization header value ("AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
 * Signature=…") for r signed with c at amz_date. If sig_hex is non-NULL it receives the bare
 * signature. 0, or -1 on bad input (too many headers, long secret) or at out's ceiling.
 */
int ad_sigv4_authorization(const ad_sigv4_request_t *r, const ad_sigv4_creds_t *c, const char *amz_date,
                           ad_buf_t *out, char sig_hex[65]);

#endif

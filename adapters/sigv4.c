/*
 * sigv4.c — AWS Signature Version 4 header signing (see sigv4.h).
 *
 *   canonical request = METHOD \n URI \n QUERY \n HEADERS \n SIGNED \n hex(SHA256(payload))
 *   string to sign    = AWS4-HMAC-SHA256 \n DATE \n SCOPE \n hex(SHA256(canonical request))
 *   signing key       = HMAC chain "AWS4"+secret → date → region → service → "aws4_request"
 *   signature         = hex(HMAC(signing key, string to sign))
 *
 * Everything is built in bounded buffers; header names and query pairs are sorted with a small
 * insertion sort (at most AD_SIGV4_MAX_HEADERS / MAX_QUERY items, and stable, so repeated header
 * names keep their order when their values are joined). Key material is wiped after use.
 */
#include "adapters/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <time.h>

#define MAX_QUERY 64
#define MAX_CANONICAL (256u * 1024)
#define SCOPE_TERM "aws4_request"
#define ALGORITHM "AWS4-HMAC-SHA256"

static const char hexdig[] = "0123456789abcdef";

int ad_sigv4_amz_date(int64_t t, char out[17])
{
    struct tm tm;
    if (t < 0 || t > 253402300799) /* 9999-12-31T23:59:59Z: four-digit years only */
        return -1;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -1;
    return 0;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[b[i] >> 4];
        out[2 * i + 1] = hexdig[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void ad_sigv4_sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    to_hex(md, 32, out);
}

static void hmac256(const void *key, size_t klen, const void *data, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len);
}

int ad_sigv4_uri_encode(const char *s, size_t n, int keep_slash, ad_buf_t *out)
{
    static const char HEX[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~' || (keep_slash && c == '/');
        char esc[3] = {'%', HEX[c >> 4], HEX[c & 15]};
        if (plain ? ad_buf_append(out, s + i, 1) : ad_buf_append(out, esc, 3))
            return -1;
    }
    return 0;
}

/* ---- canonical request -------------------------------------------------------------------- */

/* Sorts idx[0..n) by the NUL-terminated strings at base + idx[i]; stable. */
static void sort_offsets(size_t *idx, size_t n, const char *base)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(base + idx[j], base + idx[j - 1]) < 0; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

/* Appends v trimmed, with inner runs of spaces and tabs collapsed to one space. */
static int append_trimmed(ad_buf_t *out, const char *v)
{
    int rc = 0, gap = 0, started = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            gap = started;
            continue;
        }
        if (gap)
            rc |= ad_buf_append(out, " ", 1);
        rc |= ad_buf_append(out, v, 1);
        gap = 0;
        started = 1;
    }
    return rc;
}

/* Appends name lower-cased and NUL-terminated to names; returns its offset via *off. */
static int add_lower(ad_buf_t *names, const char *name, size_t *off)
{
    int rc = 0;
    *off = names->len;
    for (const char *c = name; *c && rc == 0; c++) {
        char lc = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
        rc = ad_buf_append(names, &lc, 1);
    }
    return rc | ad_buf_append(names, "", 1);
}

/* Sorts header numbers order[0..n) by their lower-cased names (names + idx[i]); stable. */
static void sort_headers(size_t *order, size_t n, const size_t *idx, const char *names)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names + idx[order[j]], names + idx[order[j - 1]]) < 0; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

/* Appends the canonical headers block to creq and the signed-headers list to names_out. */
static int canonical_headers(const ad_sigv4_request_t *r, ad_buf_t *creq, ad_buf_t *names_out)
{
    size_t idx[AD_SIGV4_MAX_HEADERS], order[AD_SIGV4_MAX_HEADERS];
    ad_buf_t names; /* each lower-cased name, NUL-terminated */
    int rc = 0;
    if (r->n_headers > AD_SIGV4_MAX_HEADERS)
        return -1;
    ad_buf_init(&names, 64 * 1024);
    for (size_t i = 0; i < r->n_headers && rc == 0; i++) {
        order[i] = i;
        rc = add_lower(&names, r->headers[i].name, &idx[i]);
    }
    if (rc == 0)
        sort_headers(order, r->n_headers, idx, names.data);
    for (size_t k = 0; k < r->n_headers && rc == 0; k++) {
        const char *name = names.data + idx[order[k]];
        if (k > 0 && strcmp(name, names.data + idx[order[k - 1]]) == 0) { /* repeated: values joined */
            rc |= ad_buf_append(creq, ",", 1);
        } else {
            rc |= (k > 0 ? ad_buf_append(creq, "\n", 1) : 0) | ad_buf_puts(creq, name) |
                  ad_buf_append(creq, ":", 1);
            rc |= (names_out->len ? ad_buf_append(names_out, ";", 1) : 0) | ad_buf_puts(names_out, name);
        }
        rc |= append_trimmed(creq, r->headers[order[k]].value);
    }
    rc |= ad_buf_puts(creq, "\n");
    ad_buf_free(&names);
    return rc ? -1 : 0;
}

/* Appends the canonical query: pairs encoded, sorted by key then value, joined by '&'. */
static int canonical_query(const char *q, ad_buf_t *out)
{
    size_t idx[MAX_QUERY], n = 0;
    ad_buf_t pairs; /* "key\x01value" per pair, NUL-separated: \x01 sorts below every encoded byte */
    int rc = 0;
    if (q == NULL || *q == '\0')
        return 0;
    ad_buf_init(&pairs, MAX_CANONICAL);
    while (rc == 0) {
        size_t len = strcspn(q, "&"), klen = strcspn(q, "=");
        if (klen > len)
            klen = len;
        if (len > 0) {
            if (n == MAX_QUERY) {
                rc = -1;
                break;
            }
            idx[n++] = pairs.len;
            rc |= ad_sigv4_uri_encode(q, klen, 0, &pairs) | ad_buf_append(&pairs, "\x01", 1);
            if (klen < len)
                rc |= ad_sigv4_uri_encode(q + klen + 1, len - klen - 1, 0, &pairs);
            rc |= ad_buf_append(&pairs, "", 1);
        }
        if (q[len] == '\0')
            break;
        q += len + 1;
    }
    if (rc == 0)
        sort_offsets(idx, n, pairs.data);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *p = pairs.data + idx[i];
        size_t kl = strcspn(p, "\x01");
        rc |= (i ? ad_buf_append(out, "&", 1) : 0) | ad_buf_append(out, p, kl) | ad_buf_append(out, "=", 1);
        rc |= ad_buf_puts(out, p + kl + 1);
    }
    ad_buf_free(&pairs);
    return rc ? -1 : 0;
}

/* The canonical request into creq and the signed-headers list into names. */
static int build_canonical(const ad_sigv4_request_t *r, ad_buf_t *creq, ad_buf_t *names)
{
    char payload_hash[65];
    const char *path = r->path != NULL && r->path[0] != '\0' ? r->path : "/";
    int rc = ad_buf_puts(creq, r->method) | ad_buf_append(creq, "\n", 1);
    rc |= ad_sigv4_uri_encode(path, strlen(path), 1, creq) | ad_buf_append(creq, "\n", 1);
    rc |= canonical_query(r->query, creq) | ad_buf_append(creq, "\n", 1);
    rc |= canonical_headers(r, creq, names);
    rc |= ad_buf_append(creq, "\n", 1) | ad_buf_append(creq, names->data ? names->data : "", names->len);
    ad_sigv4_sha256_hex(r->payload != NULL ? r->payload : "", r->payload_len, payload_hash);
    rc |= ad_buf_append(creq, "\n", 1) | ad_buf_puts(creq, payload_hash);
    return rc ? -1 : 0;
}

int ad_sigv4_canonical_request(const ad_sigv4_request_t *r, ad_buf_t *out)
{
    ad_buf_t names;
    ad_buf_init(&names, 64 * 1024);
    int rc = build_canonical(r, out, &names);
    ad_buf_free(&names);
    return rc;
}

/* ---- signing -------------------------------------------------------------------------------- */

int ad_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service, const char *creq,
                            size_t creq_len, ad_buf_t *out)
{
    char hash[65];
    ad_sigv4_sha256_hex(creq, creq_len, hash);
    return ad_buf_appendf(out, ALGORITHM "\n%s\n%.8s/%s/%s/" SCOPE_TERM "\n%s", amz_date, amz_date, region,
                          service, hash);
}

int ad_sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                         unsigned char key[32])
{
    unsigned char k[4 + AD_SIGV4_MAX_SECRET];
    size_t sl = strlen(secret);
    if (sl > AD_SIGV4_MAX_SECRET)
        return -1;
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret, sl);
    unsigned char a[32], b[32]; /* HMAC's key and output never alias */
    hmac256(k, 4 + sl, date8, strnlen(date8, 8), a);
    hmac256(a, 32, region, strlen(region), b);
    hmac256(b, 32, service, strlen(service), a);
    hmac256(a, 32, SCOPE_TERM, sizeof(SCOPE_TERM) - 1, key);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

int ad_sigv4_authorization(const ad_sigv4_request_t *r, const ad_sigv4_creds_t *c, const char *amz_date,
                           ad_buf_t *out, char sig_hex[65])
{
    ad_buf_t creq, names, sts;
    unsigned char key[32], sig[32];
    char hex[65];
    ad_buf_init(&creq, MAX_CANONICAL);
    ad_buf_init(&names, 64 * 1024);
    ad_buf_init(&sts, 4096);
    int rc = build_canonical(r, &creq, &names);
    rc |= ad_sigv4_string_to_sign(amz_date, c->region, c->service, creq.data, creq.len, &sts);
    rc |= ad_sigv4_signing_key(c->secret_key, amz_date, c->region, c->service, key);
    if (rc == 0) {
        hmac256(key, sizeof(key), sts.data, sts.len, sig);
        to_hex(sig, sizeof(sig), hex);
        rc = ad_buf_appendf(
            out, ALGORITHM " Credential=%s/%.8s/%s/%s/" SCOPE_TERM ", SignedHeaders=%s, Signature=%s",
            c->access_key, amz_date, c->region, c->service, names.data ? names.data : "", hex);
        if (sig_hex != NULL)
            memcpy(sig_hex, hex, sizeof(hex));
    }
    OPENSSL_cleanse(key, sizeof(key));
    ad_buf_free(&creq);
    ad_buf_free(&names);
    ad_buf_free(&sts);
    return rc ? -1 : 0;
}

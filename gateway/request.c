/*
 * request.c — request context, request ids, master-key auth and the per-request log line.
 */
#include "gateway/request.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <strings.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapters/surface.h"
#include "gateway/errors.h"
#include "gateway/keys.h"
#include "gateway/pricing.h"

uint64_t gw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int id_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '_' || ch == '.' || ch == ':';
}

static char *put_hex(char *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--)
        p[i] = hex[(v >> (4 * (digits - 1 - i))) & 0xf];
    return p + digits;
}

static void make_uuid(gw_reqctx_t *rc);

/* A client's x-request-id is echoed, but never used as a key: two requests sending the same one
 * must not share a reservation or a spend record. */
static void assign_id(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    make_uuid(rc);
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        size_t ok = v.len > 0 && v.len < sizeof(rc->rid);
        for (size_t k = 0; ok && k < v.len; k++)
            ok = id_char_ok(v.base[k]);
        if (ok) {
            memcpy(rc->rid, v.base, v.len);
            rc->rid[v.len] = '\0';
            return;
        }
    }
    memcpy(rc->rid, rc->uid, sizeof(rc->uid));
}

/*
 * Tollgate's own request id: a UUIDv7 (RFC 9562) — 48 bits of unix milliseconds, then 74 random
 * bits. Time-ordered ids land at the end of the spend tables' primary-key indexes instead of at
 * random pages, which makes the store's inserts cheaper (measured with tests/bench/spend_bench,
 * SPEND_BENCH_IDS=ordered) and keeps ids of one period together.
 */
static void make_uuid(gw_reqctx_t *rc)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t a = gw_worker_rand(rc->w), b = gw_worker_rand(rc->w);
    char *p = rc->uid; /* formatted by hand: this runs on every request */
    p = put_hex(p, ms >> 16, 8);
    *p++ = '-';
    p = put_hex(p, ms, 4);
    *p++ = '-';
    *p++ = '7';
    p = put_hex(p, a, 3);
    *p++ = '-';
    p = put_hex(p, ((b >> 48) & 0x3fff) | 0x8000, 4);
    *p++ = '-';
    p = put_hex(p, b, 12);
    *p = '\0';
}

static void put_u64(ad_buf_t *b, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    ad_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* milliseconds with microsecond precision, from nanoseconds, without floating point printf */
static void put_ms(ad_buf_t *b, uint64_t ns)
{
    uint64_t us = ns / 1000;
    char frac[4] = {(char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10), (char)('0' + us % 10), '\0'};
    put_u64(b, us / 1000);
    ad_buf_append(b, ".", 1);
    ad_buf_append(b, frac, 3);
}

static void put_key(ad_buf_t *b, const char *key)
{
    ad_buf_puts(b, key); /* keys are literals like ",\"status\":" */
}

static void log_json_str(ad_buf_t *b, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return;
    put_key(b, key);
    ad_buf_append_json_str(b, v, strlen(v));
}

/* "2026-11-30T21:49:55.819Z": the seconds part is formatted once per second per worker. */
static void put_timestamp(gw_worker_t *w, ad_buf_t *b)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != w->log_sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        strftime(w->log_sec_text, sizeof(w->log_sec_text), "%Y-%m-%dT%H:%M:%S", &tm);
        w->log_sec = now.tv_sec;
    }
    long ms = now.tv_nsec / 1000000;
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z',
                    '\0'};
    ad_buf_puts(b, w->log_sec_text);
    ad_buf_append(b, frac, 5);
}

static void write_log(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    ad_buf_t *b = &rc->w->logbuf;
    size_t mark = b->len;
    uint64_t end = gw_now_ns();
    ad_buf_puts(b, "{\"ts\":\"");
    put_timestamp(rc->w, b);
    ad_buf_puts(b, "\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"");
    ad_buf_puts(b, rc->rid);
    ad_buf_puts(b, "\",\"method\":");
    ad_buf_append_json_str(b, req->method.base, req->method.len);
    ad_buf_puts(b, ",\"path\":");
    ad_buf_append_json_str(b, req->path_normalized.base,
                           req->path_normalized.len < 256 ? req->path_normalized.len : 256);
    log_json_str(b, ",\"model\":", rc->model);
    log_json_str(b, ",\"provider\":", rc->provider);
    log_json_str(b, ",\"deployment\":", rc->deployment);
    put_key(b, ",\"status\":");
    put_u64(b, (uint64_t)req->res.status);
    put_key(b, rc->stream ? ",\"stream\":true,\"duration_ms\":" : ",\"stream\":false,\"duration_ms\":");
    put_ms(b, end - rc->start_ns);
    if (rc->upstream_start_ns) {
        put_key(b, ",\"upstream_status\":");
        put_u64(b, (uint64_t)rc->upstream_status);
        if (rc->first_byte_ns) {
            put_key(b, ",\"ttfb_ms\":");
            put_ms(b, rc->first_byte_ns - rc->upstream_start_ns);
        }
    }
    if (rc->usage.prompt_tokens >= 0) {
        put_key(b, ",\"prompt_tokens\":");
        put_u64(b, (uint64_t)rc->usage.prompt_tokens);
        put_key(b, ",\"completion_tokens\":");
        put_u64(b, (uint64_t)(rc->usage.completion_tokens > 0 ? rc->usage.completion_tokens : 0));
    }
    if (rc->has_cost) {
        char usd[GW_PRICING_USD_MAX];
        gw_pricing_format_usd(rc->cost_micros, usd, sizeof(usd));
        put_key(b, ",\"cost_usd\":");
        ad_buf_puts(b, usd);
    }
    put_key(b, ",\"bytes_in\":");
    put_u64(b, req->entity.len);
    put_key(b, ",\"bytes_out\":");
    put_u64(b, req->bytes_sent);
    log_json_str(b, ",\"error\":", rc->error);
    if (ad_buf_puts(b, "}\n") != 0) {
        b->len = mark; /* the buffer is full: write what it holds, then this line again */
        gw_worker_flush_log(rc->w);
        if (mark != 0)
            write_log(rc);
        return;
    }
    if (b->len >= GW_LOG_FLUSH_AT)
        gw_worker_flush_log(rc->w);
}

static void on_request_dispose(void *p)
{
    gw_reqctx_t *rc = p;
    if (rc->teardown != NULL)
        rc->teardown(rc->teardown_obj);
    gw_keys_request_dispose(rc);
    write_log(rc);
    gw_worker_request_done(rc->w);
}

gw_reqctx_t *gw_request_begin(h2o_req_t *req)
{
    gw_reqctx_t *rc = h2o_mem_alloc_shared(&req->pool, sizeof(*rc), on_request_dispose);
    memset(rc, 0, sizeof(*rc));
    rc->req = req;
    rc->w = gw_worker_of(req);
    rc->start_ns = gw_now_ns();
    rc->usage = (ad_usage_t){-1, -1, -1, -1};
    rc->w->active++;
    assign_id(rc);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, rc->rid,
                          strlen(rc->rid));
    /* LiteLLM's name for the id its spend logs carry: Tollgate's own id (the client's x-request-id
     * is echoed above but never bills), so /spend/logs?request_id=<it> finds the request */
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-litellm-call-id"), 0, NULL, rc->uid,
                          strlen(rc->uid));
    if (rc->w->draining)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONNECTION, NULL, H2O_STRLIT("close"));
    return rc;
}

/*
 * SHA-256 of a presented key. SHA256() (EVP_Q_digest in OpenSSL 3) fetches the algorithm from the
 * provider tables and allocates a context on every call, most of its cost for a short key; the
 * low-level functions hash on the stack. They are deprecated in OpenSSL 3, not removed.
 */
static void key_sha256(h2o_iovec_t key, unsigned char out[SHA256_DIGEST_LENGTH])
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, key.base, key.len) != 1 || SHA256_Final(out, &ctx) != 1)
        SHA256((const unsigned char *)key.base, key.len, out);
    OPENSSL_cleanse(&ctx, sizeof(ctx)); /* it held the key's last block */
#pragma GCC diagnostic pop
}

/* The presented key, from Authorization: Bearer, x-api-key or api-key (Azure clients). */
static h2o_iovec_t presented_key(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            v.base += 7;
            v.len -= 7;
            while (v.len > 0 && v.base[0] == ' ') {
                v.base++;
                v.len--;
            }
            return v;
        }
        return h2o_iovec_init(NULL, 0);
    }
    if ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-api-key"), -1)) >= 0 ||
        (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("api-key"), -1)) >= 0)
        return req->headers.entries[i].value;
    return h2o_iovec_init(NULL, 0);
}

int gw_request_authenticate(gw_reqctx_t *rc, void (*cont)(gw_reqctx_t *rc))
{
    const gw_server_t *s = rc->w->server;
    if (s->cfg->master_key == NULL) {
        rc->is_admin = 1;
        return 0;
    }
    h2o_iovec_t key = presented_key(rc->req);
    if (key.base == NULL || key.len == 0) {
        rc->error = "missing_api_key";
        return gw_request_error(
            rc, GW_ERR_NO_KEY,
            "Authentication error: no API key provided. Pass it as 'Authorization: Bearer "
            "<key>'.",
            NULL);
    }
    unsigned char h[SHA256_DIGEST_LENGTH];
    key_sha256(key, h); /* equal-length digests: no length leak */
    if (CRYPTO_memcmp(h, s->master_key_hash, sizeof(h)) == 0) {
        rc->is_admin = 1;
        return 0;
    }
    if (s->store == NULL) {
        rc->error = "invalid_api_key";
        return gw_request_error(rc, GW_ERR_BAD_KEY, "Authentication error: invalid API key.", NULL);
    }
    char token[GW_KEY_HASH_LEN + 1];
    gw_key_digest_hex(h, token); /* the stored form of a virtual key is exactly this hash */
    return gw_keys_authenticate(rc, token, cont);
}

int gw_request_check_model(gw_reqctx_t *rc)
{
    if (rc->principal == NULL || gw_principal_model_allowed(rc->principal, rc->model))
        return 0;
    char msg[400];
    snprintf(msg, sizeof(msg),
             "key not allowed to access model. This key can only access the models it lists. Tried to access "
             "%.200s",
             rc->model);
    rc->error = "model_not_allowed";
    return gw_request_error(rc, GW_ERR_FORBIDDEN, msg, "model");
}

void gw_surface_error_body(const gw_reqctx_t *rc, int status, const char *openai_json, size_t len,
                           ad_buf_t *out)
{
    switch (rc->surface) {
    case GW_SURFACE_ANTHROPIC:
        ad_anthropic_error_body(status, openai_json, len, out);
        break;
    case GW_SURFACE_SIMPLE:
        ad_simple_error_body(openai_json, len, rc->provider != NULL ? rc->provider : "", out);
        break;
    case GW_SURFACE_OPENAI:
        break;
    }
}

int gw_request_error(gw_reqctx_t *rc, gw_err_t e, const char *message, const char *param)
{
    if (rc->error == NULL)
        rc->error = gw_err_info(e)->code;
    if (rc->surface == GW_SURFACE_OPENAI)
        return gw_reply_error(rc->req, e, message, param);
    ad_buf_t oai, out;
    ad_buf_init(&oai, 64 * 1024);
    ad_buf_init(&out, 64 * 1024);
    gw_err_json(&oai, e, message, param);
    gw_surface_error_body(rc, gw_err_info(e)->status, oai.data, oai.len, &out);
    const gw_err_info_t *info = gw_err_info(e);
    if (out.len > 0)
        gw_reply_json(rc->req, info->status, info->reason, out.data, out.len);
    else
        gw_reply_json(rc->req, info->status, info->reason, oai.data, oai.len);
    ad_buf_free(&oai);
    ad_buf_free(&out);
    return -1;
}

int gw_request_is_master(h2o_req_t *req, const gw_server_t *s)
{
    if (s->cfg->master_key == NULL)
        return 1;
    h2o_iovec_t key = presented_key(req);
    if (key.base == NULL || key.len == 0)
        return 0;
    unsigned char h[SHA256_DIGEST_LENGTH];
    key_sha256(key, h);
    return CRYPTO_memcmp(h, s->master_key_hash, sizeof(h)) == 0;
}

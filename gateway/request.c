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

/* A client's x-request-id is echoed when it is short and plain; otherwise we make one. */
static void assign_id(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
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
    uint64_t a = gw_worker_rand(rc->w), b = gw_worker_rand(rc->w);
    snprintf(rc->rid, sizeof(rc->rid), "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff, (unsigned)((b >> 48) & 0x3fff) | 0x8000,
             (unsigned long long)(b & 0xffffffffffffull));
}

static void log_json_str(ad_buf_t *b, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return;
    ad_buf_appendf(b, ",\"%s\":", key);
    ad_buf_append_json_str(b, v, strlen(v));
}

static void write_log(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
    uint64_t end = gw_now_ns();
    ad_buf_t b;
    ad_buf_init(&b, 8192);
    ad_buf_appendf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"%s\"", ts,
                   rc->rid);
    ad_buf_puts(&b, ",\"method\":");
    ad_buf_append_json_str(&b, req->method.base, req->method.len);
    ad_buf_puts(&b, ",\"path\":");
    ad_buf_append_json_str(&b, req->path_normalized.base, req->path_normalized.len < 256 ? req->path_normalized.len : 256);
    log_json_str(&b, "model", rc->model);
    log_json_str(&b, "provider", rc->provider);
    log_json_str(&b, "deployment", rc->deployment);
    ad_buf_appendf(&b, ",\"status\":%d,\"stream\":%s,\"duration_ms\":%.3f", req->res.status,
                   rc->stream ? "true" : "false", (double)(end - rc->start_ns) / 1e6);
    if (rc->upstream_start_ns) {
        ad_buf_appendf(&b, ",\"upstream_status\":%d", rc->upstream_status);
        if (rc->first_byte_ns)
            ad_buf_appendf(&b, ",\"ttfb_ms\":%.3f", (double)(rc->first_byte_ns - rc->upstream_start_ns) / 1e6);
    }
    if (rc->usage.prompt_tokens >= 0)
        ad_buf_appendf(&b, ",\"prompt_tokens\":%lld,\"completion_tokens\":%lld",
                       (long long)rc->usage.prompt_tokens, (long long)rc->usage.completion_tokens);
    ad_buf_appendf(&b, ",\"bytes_in\":%zu,\"bytes_out\":%llu", req->entity.len,
                   (unsigned long long)req->bytes_sent);
    log_json_str(&b, "error", rc->error);
    if (ad_buf_puts(&b, "}\n") == 0) {
        ssize_t w = write(STDOUT_FILENO, b.data, b.len); /* one write: lines never interleave */
        (void)w;
    }
    ad_buf_free(&b);
}

static void on_request_dispose(void *p)
{
    gw_reqctx_t *rc = p;
    if (rc->teardown != NULL)
        rc->teardown(rc->teardown_obj);
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
    if (rc->w->draining)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONNECTION, NULL, H2O_STRLIT("close"));
    return rc;
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

int gw_request_authorize(gw_reqctx_t *rc)
{
    const gw_server_t *s = rc->w->server;
    if (s->cfg->master_key == NULL)
        return 0;
    h2o_iovec_t key = presented_key(rc->req);
    if (key.base == NULL || key.len == 0) {
        rc->error = "missing_api_key";
        return gw_request_error(rc, GW_ERR_NO_KEY,
                              "Authentication error: no API key provided. Pass it as 'Authorization: Bearer "
                              "<key>'.",
                              NULL);
    }
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key.base, key.len, h); /* equal-length digests: no length leak */
    if (CRYPTO_memcmp(h, s->master_key_hash, sizeof(h)) != 0) {
        rc->error = "invalid_api_key";
        return gw_request_error(rc, GW_ERR_BAD_KEY, "Authentication error: invalid API key.", NULL);
    }
    return 0;
}

void gw_surface_error_body(const gw_reqctx_t *rc, int status, const char *openai_json, size_t len, ad_buf_t *out)
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

/*
 * call.c — the request lifecycle of a model call.
 *
 *   scan body (no DOM) → find model group → pick deployment → build upstream request (splice for
 *   OpenAI-compatible upstreams) → libcurl transfer on this loop, or the in-process mock →
 *   non-stream: buffer (bounded), learn usage, reply; stream: frame SSE, relay each event's bytes
 *   as it completes, hide the usage chunk the client did not ask for, end with an error event if
 *   the upstream breaks.
 *
 * Threading and re-entrancy: everything runs on the worker's loop. Upstream bytes arrive inside
 * curl's write callback, where we only touch buffers; sending to the client happens in flush(),
 * which runs at a safe point (deferred until curl has returned) or from h2o's proceed callback.
 * At most one h2o_send is in flight; while it is, output accumulates in `out`, and past
 * HIGH_WATER the upstream is paused (CURL_WRITEFUNC_PAUSE: curl hands the same bytes back later)
 * until the client has drained below LOW_WATER. The call lives in the request's pool; when h2o
 * releases the request (done, or client gone) the teardown cancels whatever is still running.
 */
#include "gateway/call.h"

#include <stdio.h>
#include <string.h>

#include "adapters/mock.h"
#include "adapters/openai.h"
#include "adapters/surface.h"
#include "gateway/endusers.h"
#include "gateway/errors.h"
#include "gateway/models.h"
#include "gateway/pricing.h"
#include "gateway/policy.h"
#include "gateway/upstream.h"

#define HIGH_WATER (256u * 1024)
#define LOW_WATER (64u * 1024)
#define MAX_ERROR_BODY (1u << 20)

typedef struct gw_call {
    gw_reqctx_t *rc;
    h2o_req_t *req;
    gw_worker_t *w;
    h2o_generator_t gen;
    gw_deferred_t flush_d;
    const gw_route_t *route;
    const ad_adapter_t *stream_ad;
    ad_deployment_t dep;
    ad_request_t areq;
    ad_buf_t upbody;        /* passthrough: the client's body with the splices */
    ad_http_request_t hreq; /* translating adapters: the request they built */
    struct curl_slist *hreq_headers;
    int has_hreq;
    gw_xfer_t *xfer;
    ad_stream_t st;
    ad_buf_t resp;    /* buffered non-stream body, or an error body */
    ad_buf_t out;     /* stream bytes not yet handed to h2o */
    ad_buf_t sending; /* stream bytes h2o is sending */
    ad_buf_t inbody;  /* non-OpenAI surfaces: the client's request translated to OpenAI's */
    ad_buf_t conv;    /* non-OpenAI surfaces: the response translated back */
    ad_anthropic_enc_t enc;
    int has_enc;
    int conv_status; /* non-zero when translating the response failed and changed the status */
    int up_status;
    char retry_after[64];
    char errmsg[256];
    unsigned streaming : 1; /* client asked stream and upstream said 2xx */
    unsigned started : 1;   /* response headers handed to h2o */
    unsigned in_send : 1;   /* an h2o_send is in flight */
    unsigned up_done : 1;   /* upstream finished (ok or not) */
    unsigned finished : 1;  /* final h2o_send issued */
    unsigned paused : 1;    /* upstream paused for backpressure */
    unsigned gone : 1;      /* request released by h2o */
    unsigned too_large : 1;
    unsigned framing_error : 1;
    unsigned held : 1;         /* the final send waits for the spend journal (hold) */
    unsigned spend_failed : 1; /* the spend record could not be written: do not complete */
    gw_spend_hold_t hold;
    int reply_status; /* non-stream: the reply waiting for the hold */
    const char *reply_data;
    size_t reply_len;
    /* mock pacing */
    ad_mock_plan_t plan;
    int has_plan;
    size_t mock_next;
    h2o_timeout_entry_t mock_timer;
} gw_call_t;

static void flush(gw_call_t *c);
static void account(gw_call_t *c);
static int on_event(void *ud, const ad_event_t *ev);

/* ---- teardown ---------------------------------------------------------------------------- */

static const char *call_type(const gw_call_t *c)
{
    if (c->rc->surface == GW_SURFACE_ANTHROPIC)
        return "anthropic_messages";
    return c->areq.op == AD_OP_EMBEDDINGS ? "aembedding" : "acompletion";
}

static void call_teardown(void *obj)
{
    gw_call_t *c = obj;
    c->gone = 1;
    if (c->rc->admission != NULL) { /* the limiter has not answered yet */
        gw_policy_cancel(c->rc->admission);
        c->rc->admission = NULL;
    }
    if (c->xfer != NULL) {
        gw_upstream_cancel(c->xfer);
        c->xfer = NULL;
    }
    gw_upstream_undefer(&c->flush_d);
    gw_spend_hold_cancel(&c->hold); /* the record stays in the batch; nothing will be sent */
    c->held = 0;
    if (h2o_timeout_is_linked(&c->mock_timer))
        h2o_timeout_unlink(&c->mock_timer);
    if (c->st.emit != NULL) {
        if (c->st.usage.prompt_tokens >= 0)
            c->rc->usage = c->st.usage;
        account(c); /* a client that left mid-stream is billed for what was generated */
        gw_policy_record_spend(c->rc, c->dep.upstream_model, call_type(c), NULL, NULL);
        if (c->stream_ad->stream_free != NULL)
            c->stream_ad->stream_free(&c->st);
        ad_stream_free(&c->st);
        c->st.emit = NULL;
    }
    if (c->has_hreq) {
        ad_http_request_free(&c->hreq);
        curl_slist_free_all(c->hreq_headers);
        c->has_hreq = 0;
    }
    if (c->has_plan)
        ad_mock_plan_free(&c->plan);
    if (c->has_enc) {
        ad_anthropic_enc_free(&c->enc);
        c->has_enc = 0;
    }
    gw_policy_settle(c->rc);
    ad_buf_free(&c->inbody);
    ad_buf_free(&c->conv);
    ad_buf_free(&c->upbody);
    ad_buf_free(&c->resp);
    ad_buf_free(&c->out);
    ad_buf_free(&c->sending);
}

/* ---- cost ----------------------------------------------------------------------------------- */

/* What the call cost, from the usage learned and the route's price (DESIGN §7: micro-dollars). */
static void account(gw_call_t *c)
{
    gw_reqctx_t *rc = c->rc;
    if (rc->has_cost || rc->usage.prompt_tokens < 0 || c->route == NULL)
        return;
    gw_price_t wild;
    const gw_price_t *p = &c->route->price;
    if (c->route->wildcard) {
        char e[128];
        if (gw_pricing_resolve(c->w->server->pricing, c->route->dep, c->dep.upstream_model, &wild, e,
                               sizeof(e)) != GW_PRICING_OK)
            return;
        p = &wild;
    } else if (!c->route->priced) {
        return;
    }
    uint64_t micros = 0;
    int r = gw_pricing_cost_micros(p, &rc->usage, &micros);
    if (r == GW_PRICING_OK || r == GW_PRICING_UNKNOWN) { /* unknown parts: the known part, a lower bound */
        rc->cost_micros = micros;
        rc->has_cost = 1;
    }
}

/* ---- replies ----------------------------------------------------------------------------- */

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

/* Translates an OpenAI response or error body into the client's surface; NULL when nothing to do. */
static const ad_buf_t *convert_body(gw_call_t *c, int status, const char *body, size_t len)
{
    gw_reqctx_t *rc = c->rc;
    if (rc->surface == GW_SURFACE_OPENAI)
        return NULL;
    ad_buf_reset(&c->conv);
    if (status >= 400) {
        gw_surface_error_body(rc, status, body, len, &c->conv);
    } else if (rc->surface == GW_SURFACE_ANTHROPIC) {
        if (ad_anthropic_in_response(body, len, rc->model, &c->conv) != 0) {
            /* never hand an Anthropic client an OpenAI body: say the upstream answer was unusable */
            static const char e[] =
                "{\"error\":{\"message\":\"the upstream response could not be translated\","
                "\"type\":\"api_error\",\"param\":null,\"code\":\"upstream_error\"}}";
            ad_buf_reset(&c->conv);
            ad_anthropic_error_body(502, e, sizeof(e) - 1, &c->conv);
            c->conv_status = 502;
        }
    } else {
        int64_t ms = (int64_t)((gw_now_ns() - rc->start_ns) / 1000000);
        if (ad_simple_out_response(body, len, rc->provider, rc->model, ms, &c->conv) != 0)
            ad_buf_reset(&c->conv);
    }
    return c->conv.len > 0 ? &c->conv : NULL;
}

static void send_reply(gw_call_t *c);

/* The spend record is in the journal (or could not be written): the held reply may go. */
static void on_reply_released(gw_spend_hold_t *h)
{
    gw_call_t *c = H2O_STRUCT_FROM_MEMBER(gw_call_t, hold, h);
    c->held = 0;
    c->spend_failed = !h->ok;
    send_reply(c);
}

static void reply_body(gw_call_t *c, int status, const char *body, size_t len)
{
    const ad_buf_t *conv = convert_body(c, status, body, len);
    if (conv != NULL) {
        body = conv->data;
        len = conv->len;
        if (c->conv_status != 0)
            status = c->conv_status;
    }
    c->reply_status = status;
    c->reply_data = body;
    c->reply_len = len;
    c->finished = 1; /* nothing else may reply */
    if (c->rc->has_cost && status < 400 &&
        gw_policy_record_spend(c->rc, c->dep.upstream_model, call_type(c), &c->hold, on_reply_released)) {
        c->held = 1; /* the final byte waits for the journal (spend_batch.h) */
        return;
    }
    send_reply(c);
}

static void send_reply(gw_call_t *c)
{
    h2o_req_t *req = c->req;
    int status = c->reply_status;
    const char *body = c->reply_data;
    size_t len = c->reply_len;
    if (c->spend_failed) { /* never complete a response whose spend is not in the journal */
        c->rc->error = "spend_journal_error";
        c->started = 1;
        gw_request_error(c->rc, GW_ERR_INTERNAL,
                         "the response could not be completed: its spend record could not be written", NULL);
        return;
    }
    req->res.status = status;
    req->res.reason = status < 400 ? "OK" : "Error";
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    if (c->retry_after[0])
        add_header(req, "retry-after", c->retry_after);
    if (c->rc->has_cost && status < 400) { /* its record was written before we got here */
        char usd[GW_PRICING_USD_MAX];
        gw_pricing_format_usd(c->rc->cost_micros, usd, sizeof(usd));
        add_header(req, "x-litellm-response-cost", usd);
    }
    c->started = 1;
    h2o_start_response(req, &c->gen);
    h2o_iovec_t v = h2o_iovec_init(body, len);
    h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
}

static void reply_err(gw_call_t *c, gw_err_t e, const char *msg)
{
    c->rc->error = gw_err_info(e)->code;
    ad_buf_reset(&c->resp);
    gw_err_json(&c->resp, e, msg, NULL);
    reply_body(c, gw_err_info(e)->status, c->resp.data, c->resp.len);
}

/** An error inside a stream that has started: one OpenAI error event, then the end. */
static void append_error_event(gw_call_t *c, gw_err_t e, const char *msg)
{
    ad_buf_t j;
    ad_buf_init(&j, 64 * 1024);
    gw_err_json(&j, e, msg, NULL);
    c->out.max += 2 * j.len + 256; /* the closing event always fits, whatever the ceiling */
    ad_event_t ev = {.type = AD_EV_ERROR, .data = j.data, .len = j.len};
    on_event(c, &ev);
    ad_buf_free(&j);
    c->rc->error = gw_err_info(e)->code;
}

static gw_err_t err_for_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return GW_ERR_TIMEOUT;
    default:
        return GW_ERR_UPSTREAM;
    }
}

/* ---- upstream callbacks ------------------------------------------------------------------ */

/* Anthropic clients get Anthropic's event sequence, encoded from every chunk (usage included). */
static int on_event_anthropic(gw_call_t *c, const ad_event_t *ev)
{
    switch (ev->type) {
    case AD_EV_CHUNK: /* 1 = the stream already ended with an error: later chunks are dropped */
        return ad_anthropic_enc_chunk(&c->enc, ev->data, ev->len, &c->out) < 0 ? -1 : 0;
    case AD_EV_DONE:
        return ad_anthropic_enc_finish(&c->enc, &c->out);
    case AD_EV_ERROR:
        return ad_anthropic_enc_abort(&c->enc, ev->data, ev->len, &c->out);
    case AD_EV_COMMENT: /* upstream keep-alive: idle-timeout clients (Claude Code) see traffic */
        return ad_anthropic_enc_ping(&c->enc, &c->out);
    default:
        return 0;
    }
}

static int on_event(void *ud, const ad_event_t *ev)
{
    gw_call_t *c = ud;
    if (c->has_enc)
        return on_event_anthropic(c, ev);
    if (ev->hidden)
        return 0;
    if (ev->raw != NULL)
        return ad_buf_append(&c->out, ev->raw, ev->raw_len);
    if (ev->type == AD_EV_DONE)
        return ad_buf_puts(&c->out, "data: [DONE]\n\n");
    if (ev->type == AD_EV_COMMENT)
        return 0;
    if (ad_buf_puts(&c->out, "data: ") != 0 || ad_buf_append(&c->out, ev->data, ev->len) != 0)
        return -1;
    return ad_buf_puts(&c->out, "\n\n");
}

static void on_up_headers(void *ud, int status, const char *ctype, const char *retry_after)
{
    gw_call_t *c = ud;
    c->up_status = status;
    c->rc->upstream_status = status;
    if (retry_after != NULL)
        snprintf(c->retry_after, sizeof(c->retry_after), "%s", retry_after);
    if (c->areq.stream && status >= 200 && status < 300) {
        c->streaming = 1;
        c->st.req = &c->areq;
        if (c->stream_ad->state_size > 0) {
            c->st.priv = h2o_mem_alloc_pool(&c->req->pool, c->stream_ad->state_size);
            memset(c->st.priv, 0, c->stream_ad->state_size);
        }
        c->stream_ad->stream_init(&c->st, &c->areq);
        if (c->rc->surface == GW_SURFACE_ANTHROPIC) {
            ad_anthropic_enc_init(&c->enc, c->rc->model, c->rc->rid);
            c->has_enc = 1;
        }
        c->st.emit = on_event;
        c->st.emit_ud = c;
    }
}

static size_t on_up_data(void *ud, const char *p, size_t n)
{
    gw_call_t *c = ud;
    if (c->rc->first_byte_ns == 0)
        c->rc->first_byte_ns = gw_now_ns();
    if (!c->streaming) {
        if (c->resp.data == NULL)
            ad_buf_reserve(&c->resp, n > 16384 ? n : 16384);
        if (ad_buf_append(&c->resp, p, n) != 0) {
            c->too_large = 1;
            return 0; /* aborts the transfer */
        }
        return n;
    }
    if (c->out.len >= HIGH_WATER) {
        c->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    int rc = c->stream_ad->stream_feed(&c->st, p, n);
    if (rc != 0) {
        c->framing_error = 1;
        return 0;
    }
    if (c->out.len > 0)
        gw_upstream_defer(c->w->up, &c->flush_d);
    return n;
}

/* The stream's spend record is in the journal (or could not be written): its end may go. */
static void on_stream_released(gw_spend_hold_t *h)
{
    gw_call_t *c = H2O_STRUCT_FROM_MEMBER(gw_call_t, hold, h);
    c->held = 0;
    c->spend_failed = !h->ok;
    if (c->spend_failed)
        c->rc->error = "spend_journal_error";
    flush(c);
}

static void finish_stream(gw_call_t *c, CURLcode rc, const char *errmsg)
{
    if (c->framing_error)
        append_error_event(c, GW_ERR_UPSTREAM, "upstream stream could not be parsed");
    else if (rc != CURLE_OK && !c->st.saw_error) {
        char msg[400];
        snprintf(msg, sizeof(msg), "upstream stream broke: %s", errmsg);
        append_error_event(c, err_for_curl(rc), msg);
    } else if (c->stream_ad->stream_finish(&c->st) && !c->st.saw_error)
        append_error_event(c, GW_ERR_UPSTREAM, "upstream stream ended before it was complete");
    if (c->st.usage.prompt_tokens >= 0)
        c->rc->usage = c->st.usage;
    account(c);
    /* before the last byte: flush() holds it until the batch has written the record */
    if (gw_policy_record_spend(c->rc, c->dep.upstream_model, call_type(c), &c->hold, on_stream_released))
        c->held = 1;
    if (c->has_enc) /* idempotent: closes the Anthropic sequence if nothing else did */
        ad_anthropic_enc_finish(&c->enc, &c->out);
    c->up_done = 1;
    flush(c);
}

static void finish_buffered(gw_call_t *c, CURLcode rc, const char *errmsg)
{
    char msg[400];
    if (c->too_large)
        return reply_err(c, GW_ERR_UPSTREAM, "upstream response exceeds max_response_body");
    if (rc != CURLE_OK) {
        snprintf(msg, sizeof(msg), "upstream request failed: %s", errmsg);
        return reply_err(c, err_for_curl(rc), msg);
    }
    if (c->up_status >= 200 && c->up_status < 300) {
        ad_buf_t translated;
        ad_buf_init(&translated, c->resp.max);
        if (c->route->ad->parse_response(&c->areq, c->resp.data ? c->resp.data : "", c->resp.len, &translated,
                                         &c->rc->usage) != 0) {
            ad_buf_free(&translated);
            return reply_err(c, GW_ERR_UPSTREAM, "upstream sent a response that is not valid JSON");
        }
        if (translated.len > 0) {
            ad_buf_free(&c->resp);
            c->resp = translated;
        } else {
            ad_buf_free(&translated);
        }
        account(c);
        return reply_body(c, c->up_status, c->resp.data ? c->resp.data : "", c->resp.len);
    }
    ad_buf_t mapped;
    ad_error_t err;
    ad_buf_init(&mapped, 64 * 1024);
    c->route->ad->map_error(c->up_status, c->resp.data ? c->resp.data : "", c->resp.len,
                            c->retry_after[0] ? c->retry_after : NULL, &mapped, &err);
    c->rc->error = "upstream_error";
    if (mapped.len > 0) {
        ad_buf_free(&c->resp);
        c->resp = mapped;
    } else {
        ad_buf_free(&mapped);
    }
    int status = err.status >= 400 && err.status <= 599 ? err.status : 502;
    reply_body(c, status, c->resp.data ? c->resp.data : "", c->resp.len);
}

static void on_up_done(void *ud, CURLcode rc, const char *errmsg)
{
    gw_call_t *c = ud;
    c->xfer = NULL;
    if (c->streaming)
        finish_stream(c, rc, errmsg);
    else
        finish_buffered(c, rc, errmsg);
}

static const gw_xfer_cbs_t xfer_cbs = {on_up_headers, on_up_data, on_up_done};

/* ---- client side ------------------------------------------------------------------------- */

static void start_stream_response(gw_call_t *c)
{
    h2o_req_t *req = c->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-accel-buffering"), 0, NULL,
                          H2O_STRLIT("no"));
    c->started = 1;
    h2o_start_response(req, &c->gen);
}

/*
 * Hands buffered stream bytes to h2o, one send in flight. While the spend record is held
 * (c->held) nothing goes: the last events are the final byte's company. A record that could not
 * be written ends the stream with an error (no terminating chunk, RST_STREAM on h2): the client
 * sees it broken, never complete.
 */
static void flush(gw_call_t *c)
{
    if (c->gone || c->in_send || c->finished || !c->streaming || c->held)
        return;
    if (c->out.len == 0 && !c->up_done)
        return;
    if (!c->started)
        start_stream_response(c);
    if (c->up_done && c->spend_failed)
        ad_buf_reset(&c->out);
    ad_buf_t t = c->sending;
    c->sending = c->out;
    c->out = t;
    ad_buf_reset(&c->out);
    c->in_send = 1;
    c->finished = c->up_done;
    h2o_iovec_t v = h2o_iovec_init(c->sending.data, c->sending.len);
    h2o_send_state_t state = !c->finished      ? H2O_SEND_STATE_IN_PROGRESS
                             : c->spend_failed ? H2O_SEND_STATE_ERROR
                                               : H2O_SEND_STATE_FINAL;
    h2o_send(c->req, &v, v.len ? 1 : 0, state);
}

static void on_flush_deferred(gw_deferred_t *d)
{
    flush(H2O_STRUCT_FROM_MEMBER(gw_call_t, flush_d, d));
}

static void mock_resume(gw_call_t *c);

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    gw_call_t *c = H2O_STRUCT_FROM_MEMBER(gw_call_t, gen, gen);
    c->in_send = 0;
    ad_buf_reset(&c->sending);
    if (c->paused && c->out.len < LOW_WATER) {
        c->paused = 0;
        if (c->xfer != NULL)
            gw_upstream_resume(c->xfer); /* may deliver bytes and flush */
        else if (c->has_plan)
            mock_resume(c);
    }
    flush(c);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    gw_call_t *c = H2O_STRUCT_FROM_MEMBER(gw_call_t, gen, gen);
    call_teardown(c); /* client gone: cancel the upstream now, not at pool release */
    c->rc->teardown = NULL;
    if (c->rc->error == NULL)
        c->rc->error = "client_disconnected";
}

/* ---- the in-process mock ----------------------------------------------------------------- */

static void mock_tick(h2o_timeout_entry_t *entry);

static void mock_schedule(gw_call_t *c, uint64_t ms)
{
    c->mock_timer.cb = mock_tick;
    h2o_timeout_link(c->w->loop, gw_worker_timeout(c->w, ms), &c->mock_timer);
}

static void mock_tick(h2o_timeout_entry_t *entry)
{
    gw_call_t *c = H2O_STRUCT_FROM_MEMBER(gw_call_t, mock_timer, entry);
    ad_buf_t bytes;
    ad_buf_init(&bytes, 16u << 20);
    if (c->mock_next == 0)
        on_up_headers(c, 200, c->areq.stream ? "text/event-stream" : "application/json", NULL);
    if (!c->areq.stream) {
        ad_mock_render_body(&c->plan, &bytes);
        on_up_data(c, bytes.data, bytes.len);
        ad_buf_free(&bytes);
        c->has_plan = 1;
        return on_up_done(c, CURLE_OK, "");
    }
    size_t n = ad_mock_n_events(&c->plan);
    /* with no pacing every event goes at once; otherwise one per tick */
    do {
        ad_buf_reset(&bytes);
        ad_mock_render_event(&c->plan, c->mock_next, &bytes);
        if (on_up_data(c, bytes.data, bytes.len) == CURL_WRITEFUNC_PAUSE)
            break; /* resumed from on_proceed */
        c->mock_next++;
    } while (c->mock_next < n && c->plan.token_ms <= 0);
    ad_buf_free(&bytes);
    if (c->paused)
        return flush(c);
    if (c->mock_next >= n)
        return on_up_done(c, CURLE_OK, "");
    flush(c);
    mock_schedule(c, (uint64_t)c->plan.token_ms);
}

static void mock_resume(gw_call_t *c)
{
    if (!h2o_timeout_is_linked(&c->mock_timer))
        mock_schedule(c, 0);
}

static int start_mock(gw_call_t *c)
{
    char err[256];
    if (ad_mock_plan(&c->areq, &c->dep, c->rc->rid, (long long)time(NULL), &c->plan, err, sizeof(err)) != 0) {
        ad_mock_plan_free(&c->plan);
        return gw_request_error(c->rc, GW_ERR_BAD_REQUEST, err, NULL);
    }
    c->has_plan = 1;
    mock_schedule(c, c->plan.ttft_ms > 0 ? (uint64_t)c->plan.ttft_ms : 0);
    return 0;
}

/* ---- entry ------------------------------------------------------------------------------- */

static int check_size(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    size_t max = rc->w->server->cfg->server.max_request_body;
    if (req->entity.base == NULL || req->entity.len == 0)
        return gw_request_error(rc, GW_ERR_BAD_REQUEST, "request body is empty; expected a JSON object",
                                NULL);
    if (req->entity.len > max) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body of %zu bytes exceeds the limit of %zu bytes",
                 req->entity.len, max);
        return gw_request_error(rc, GW_ERR_TOO_LARGE, msg, NULL);
    }
    return 0;
}

static int check_body(gw_reqctx_t *rc, ad_op_t op, const char *body, size_t len, ad_request_t *areq)
{
    size_t off = 0;
    if (ad_request_scan(op, body, len, areq, &off) != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request body is not a valid JSON object (error at byte %zu)", off);
        return gw_request_error(rc, GW_ERR_BAD_JSON, msg, NULL);
    }
    if (areq->model.type != AD_J_STRING)
        return gw_request_error(rc, GW_ERR_BAD_REQUEST, "you must provide a model parameter", "model");
    if (op == AD_OP_CHAT && areq->messages.type != AD_J_ARRAY)
        return gw_request_error(rc, GW_ERR_BAD_REQUEST,
                                "'messages' is a required property and must be an array", "messages");
    if (op == AD_OP_EMBEDDINGS && areq->messages.type != AD_J_STRING && areq->messages.type != AD_J_ARRAY)
        return gw_request_error(rc, GW_ERR_BAD_REQUEST, "'input' is a required property", "input");
    if (ad_json_span_string(areq->model, rc->model, sizeof(rc->model)) < 0)
        return gw_request_error(rc, GW_ERR_BAD_REQUEST, "model name is too long", "model");
    return 0;
}

/* Anthropic and simple-contract clients: their request becomes an OpenAI chat body in c->inbody. */
static int translate_inbound(gw_call_t *c, char *provider, size_t provider_cap)
{
    h2o_req_t *req = c->req;
    char err[300] = "";
    int rc = c->rc->surface == GW_SURFACE_ANTHROPIC
                 ? ad_anthropic_in_request(req->entity.base, req->entity.len, &c->inbody, err, sizeof(err))
                 : ad_simple_in_request(req->entity.base, req->entity.len, &c->inbody, provider, provider_cap,
                                        err, sizeof(err));
    if (rc != 0)
        return gw_request_error(c->rc, err[0] ? GW_ERR_BAD_REQUEST : GW_ERR_BAD_JSON,
                                err[0] ? err : "request body is not valid JSON", NULL);
    return 0;
}

/* One alias map {"asked": "routed"} (LiteLLM's router also takes {"asked": {"model": "routed"}}). */
static void alias_step(gw_reqctx_t *rc, const json_t *map)
{
    if (map == NULL || !json_is_object(map))
        return;
    const json_t *v = json_object_get(map, rc->model);
    const char *to =
        json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "model"));
    if (to != NULL && to[0] != '\0' && strlen(to) < sizeof(rc->model))
        memcpy(rc->model, to, strlen(to) + 1);
}

/*
 * LiteLLM's model aliases, in its order: the config's (litellm_settings.model_alias_map, then
 * router_settings.model_group_alias), the key's team's model_aliases, the key's aliases. The
 * allow-lists were checked on the name the client asked for; routing, limits and spend use the
 * name it maps to.
 */
static void apply_aliases(gw_reqctx_t *rc)
{
    const gw_server_t *s = rc->w->server;
    alias_step(rc, s->alias_maps[0]); /* looked up once at start */
    alias_step(rc, s->alias_maps[1]);
    if (rc->principal != NULL) {
        alias_step(rc, rc->principal->team_aliases);
        alias_step(rc, rc->principal->aliases);
    }
}

static const gw_route_t *route_for(gw_reqctx_t *rc, const char *provider, ad_deployment_t *dep)
{
    const char *star = NULL;
    size_t star_len = 0;
    const gw_models_t *models = rc->w->server->models;
    const gw_model_group_t *g = gw_models_lookup(models, rc->model, strlen(rc->model), &star, &star_len);
    if (g == NULL && provider != NULL && provider[0] != '\0') { /* /v1/chat: {provider, model} */
        char full[300];
        int n = snprintf(full, sizeof(full), "%s/%s", provider, rc->model);
        if (n > 0 && (size_t)n < sizeof(full))
            g = gw_models_lookup(models, full, (size_t)n, &star, &star_len);
    }
    if (g == NULL)
        return NULL;
    const gw_route_t *r = gw_models_pick(g, gw_worker_rand(rc->w));
    *dep = r->addep;
    if (r->wildcard) { /* a pattern deployment: its star takes the text the model name matched */
        const char *um = r->addep.upstream_model, *s = strchr(um, '*');
        size_t n = strlen(um) - 1 + star_len + 1;
        char *name = h2o_mem_alloc_pool(&rc->req->pool, n);
        snprintf(name, n, "%.*s%.*s%s", (int)(s - um), um, (int)star_len, star ? star : "", s + 1);
        dep->upstream_model = name;
    }
    return r;
}

/* OpenAI-compatible upstreams: prebuilt URL and headers, the client's bytes with two splices */
static int prepare_passthrough(gw_call_t *c, gw_xfer_opts_t *o)
{
    o->url = c->areq.op == AD_OP_EMBEDDINGS ? c->route->url_embeddings : c->route->url_chat;
    o->headers = c->route->headers;
    o->h1_headers = &c->route->h1_headers; /* converted once per route */
    ad_buf_reserve(&c->upbody, c->areq.body_len + strlen(c->dep.upstream_model) + 64); /* one allocation */
    if (ad_openai_splice_body(&c->areq, c->dep.upstream_model, &c->upbody) != 0)
        return gw_request_error(c->rc, GW_ERR_TOO_LARGE, "request too large to forward", NULL);
    o->body = c->upbody.data;
    o->body_len = c->upbody.len;
    return 0;
}

/* Every other provider: the adapter builds method, URL, headers and body */
static int prepare_translated(gw_call_t *c, gw_xfer_opts_t *o)
{
    char err[256];
    ad_http_request_init(&c->hreq, c->w->server->cfg->server.max_request_body * 2 + 65536);
    c->has_hreq = 1;
    if (c->route->ad->build_request(&c->areq, &c->dep, &c->hreq, err, sizeof(err)) != 0)
        return gw_request_error(c->rc, GW_ERR_BAD_REQUEST, err, NULL);
    c->hreq_headers = curl_slist_append(NULL, "Expect:");
    c->hreq_headers = curl_slist_append(c->hreq_headers, "Accept:");
    for (size_t i = 0; i < c->hreq.n_headers; i++)
        c->hreq_headers = curl_slist_append(c->hreq_headers, c->hreq.headers[i].data);
    o->method = c->hreq.method != NULL ? c->hreq.method : "POST";
    o->url = c->hreq.url.data;
    o->headers = c->hreq_headers;
    o->body = c->hreq.body.data != NULL ? c->hreq.body.data : "";
    o->body_len = c->hreq.body.len;
    return 0;
}

static int start_upstream(gw_call_t *c)
{
    const gw_server_settings_t *ss = &c->w->server->cfg->server;
    const gw_deployment_t *d = c->route->dep;
    gw_xfer_opts_t o = {.method = "POST", .connect_timeout_ms = (long)ss->connect_timeout_ms};
    double t = c->areq.stream && d->stream_timeout_s > 0 ? d->stream_timeout_s : d->timeout_s;
    o.timeout_ms = t > 0 ? (long)(t * 1000) : (long)ss->upstream_timeout_ms;
    int rc = c->route->ad->caps & AD_CAP_PASSTHROUGH ? prepare_passthrough(c, &o) : prepare_translated(c, &o);
    if (rc != 0)
        return rc;
    c->rc->upstream_start_ns = gw_now_ns();
    c->xfer = gw_upstream_start(c->w->up, &o, &xfer_cbs, c);
    if (c->xfer == NULL)
        return gw_request_error(c->rc, GW_ERR_INTERNAL, "could not start the upstream request", NULL);
    return 0;
}

static gw_call_t *call_new(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    gw_call_t *c = h2o_mem_alloc_pool(&req->pool, sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->rc = rc;
    c->req = req;
    c->w = rc->w;
    c->gen.proceed = on_proceed;
    c->gen.stop = on_stop;
    c->flush_d.cb = on_flush_deferred;
    const gw_server_settings_t *ss = &c->w->server->cfg->server;
    ad_buf_init(&c->inbody, ss->max_request_body * 2 + 65536);
    ad_buf_init(&c->conv, ss->max_response_body);
    ad_buf_init(&c->upbody, ss->max_request_body * 2 + 65536);
    ad_buf_init(&c->resp, ss->max_response_body);
    ad_buf_init(&c->out, HIGH_WATER + (16u << 20)); /* one upstream read past the mark, bounded */
    ad_buf_init(&c->sending, HIGH_WATER + (16u << 20));
    rc->teardown = call_teardown;
    rc->teardown_obj = c;
    return c;
}

static int bind_route(gw_call_t *c, const char *provider)
{
    gw_reqctx_t *rc = c->rc;
    ad_deployment_t dep;
    const gw_route_t *route = route_for(rc, provider, &dep);
    if (route == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "The model `%s` does not exist or is not configured on this gateway",
                 rc->model);
        return gw_request_error(rc, GW_ERR_MODEL_NOT_FOUND, msg, "model");
    }
    rc->provider = route->dep->provider;
    rc->deployment = dep.upstream_model;
    if (route->ad == NULL) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "The model `%s` uses provider '%s', which this gateway does not support yet", rc->model,
                 route->dep->provider);
        rc->error = "unsupported_provider";
        return gw_request_error(rc, GW_ERR_BAD_REQUEST, msg, "model");
    }
    c->route = route;
    c->stream_ad = route->is_mock ? &ad_openai : route->ad;
    c->dep = dep;
    return 0;
}

static void call_continue(gw_reqctx_t *rc);
static void call_admit(gw_reqctx_t *rc);

static void start_call(gw_call_t *c)
{
    if (c->route->is_mock)
        start_mock(c);
    else
        start_upstream(c);
}

/* The limiter's answer (at once for in-process limits, later through Redis). */
static void on_admitted(void *ud, const gw_limits_result_t *res)
{
    gw_call_t *c = ud;
    c->rc->admission = NULL;
    if (res->verdict != GW_LIMITS_ADMITTED)
        return gw_policy_refuse(c->rc, res);
    c->rc->admitted = 1;
    gw_policy_headers(c->rc, res);
    start_call(c);
}

int gw_call_handle(gw_reqctx_t *rc, ad_op_t op)
{
    h2o_req_t *req = rc->req;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return gw_request_error(rc, GW_ERR_METHOD, "use POST for this endpoint", NULL), 0;
    rc->auth_arg = (int)op;
    /* the master key (and a cached virtual key) is checked synchronously; a key that must be
     * loaded parks the request and call_continue runs from the store's completion */
    if (gw_request_authenticate(rc, call_continue) == 0)
        call_continue(rc);
    return 0;
}

/* Everything after authentication; on the worker's loop, directly or as the auth continuation. */
static void call_continue(gw_reqctx_t *rc)
{
    h2o_req_t *req = rc->req;
    ad_op_t op = (ad_op_t)rc->auth_arg;
    if (check_size(rc) != 0)
        return;
    gw_call_t *c = call_new(rc);
    const char *body = req->entity.base;
    size_t len = req->entity.len;
    char provider[64] = "";
    if (rc->surface != GW_SURFACE_OPENAI) {
        if (translate_inbound(c, provider, sizeof(provider)) != 0)
            return;
        body = c->inbody.data;
        len = c->inbody.len;
    }
    if (check_body(rc, op, body, len, &c->areq) != 0 || gw_request_check_model(rc) != 0)
        return;
    apply_aliases(rc);
    if (bind_route(c, provider) != 0)
        return;
    rc->stream = c->areq.stream;
    c->areq.now = (int64_t)time(NULL);
    c->areq.request_id = rc->rid;
    if (c->areq.user.type == AD_J_STRING) { /* the end user (endusers.h); nothing to do without one */
        char u[GW_EUCACHE_ID_MAX * 6];      /* room for an id too long to look up: still billed */
        if (ad_json_span_string(c->areq.user, u, sizeof(u)) > 0)
            rc->end_user = h2o_strdup(&req->pool, u, SIZE_MAX).base;
    }
    call_admit(rc);
}

/* Admission: the principal's scopes and the end user's; the end user may need a load first, then
 * this runs again as the continuation (the lookup answers from the cache the second time). */
static void call_admit(gw_reqctx_t *rc)
{
    gw_call_t *c = rc->teardown_obj;
    gw_enduser_t eu = {0};
    if (rc->end_user != NULL && gw_endusers_lookup(rc, rc->end_user, &eu, call_admit) != 0)
        return; /* parked, or replied */
    /* LiteLLM's refusal of a blocked customer: 400, whoever the caller is */
    if (eu.blocked) {
        char msg[GW_EUCACHE_ID_MAX + 64];
        snprintf(msg, sizeof(msg), "User blocked from making LLM API Calls. User=%s", rc->end_user);
        rc->error = "end_user_blocked";
        gw_request_error(rc, GW_ERR_BAD_REQUEST, msg, NULL);
        return;
    }
    /* the master key, no end-user limits, no model or global limits: nothing to admit */
    if (rc->principal == NULL && !eu.has_limits && !gw_policy_needs_admission(rc, c->route))
        return start_call(c);
    const gw_price_t *price = c->route->priced ? &c->route->price : NULL;
    int64_t max_tokens = c->areq.max_tokens, scaled; /* n choices: n times the completion */
    if (max_tokens > 0 && c->areq.n > 1)
        max_tokens = __builtin_mul_overflow(max_tokens, c->areq.n, &scaled) ? INT64_MAX / 2 : scaled;
    gw_policy_admit(rc, c->route, eu.has_limits ? &eu.lim : NULL, price, c->areq.body_len, max_tokens,
                    on_admitted, c);
}

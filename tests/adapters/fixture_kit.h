/*
 * fixture_kit.h — helpers shared by the adapter fixture tests (tests/adapters/test_*.c): reading
 * fixture files, comparing JSON (exactly, or with numbers by value), scanning a client request
 * with a fixed clock and request id, checking a built upstream request against a recorded one,
 * and running a stream through an adapter for every split of its bytes.
 *
 * Header-only (static functions) because CMake builds each tests/adapters/test_*.c on its own.
 */
#ifndef TG_FIXTURE_KIT_H
#define TG_FIXTURE_KIT_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#define FX_NOW 1700000000
#define FX_RID "req-1"

static inline char *fx_slurp(const char *dir, const char *name, size_t *len)
{
    const char *root = getenv("TG_SOURCE_DIR") ? getenv("TG_SOURCE_DIR") : TG_SOURCE_DIR;
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/adapters/fixtures/%s/%s", root, dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "missing fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Reads fixture <name><suffix> from dir (e.g. "stream-text", ".events"). */
static inline char *fx_slurp_as(const char *dir, const char *name, const char *suffix, size_t *len)
{
    char fn[256];
    snprintf(fn, sizeof(fn), "%s%s", name, suffix);
    return fx_slurp(dir, fn, len);
}

static inline json_t *fx_load_json(const char *dir, const char *name)
{
    size_t len;
    char *text = fx_slurp(dir, name, &len);
    json_error_t e;
    json_t *j = json_loadb(text, len, 0, &e);
    cr_assert_not_null(j, "%s/%s: %s (line %d)", dir, name, e.text, e.line);
    free(text);
    return j;
}

static inline json_t *fx_load_json_as(const char *dir, const char *name, const char *suffix)
{
    char fn[256];
    snprintf(fn, sizeof(fn), "%s%s", name, suffix);
    return fx_load_json(dir, fn);
}

/* Parses text as JSON; a text that is not JSON fails the test, naming `what`. */
static inline json_t *fx_parse(const char *what, const char *text, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(text, len, 0, &e);
    cr_assert_not_null(j, "%s is not JSON (%s): %.*s", what, e.text, (int)len, text);
    return j;
}

/* JSON equality where numbers compare by value (the writers print 1.0 as 1). */
static inline int fx_json_same(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) if (!fx_json_same(v, json_object_get(b, k))) return 0;
        return 1;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!fx_json_same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    return json_equal(a, b);
}

/* got equals want: exactly (json_equal: 1 and 1.0 differ) or, when !exact, by fx_json_same. */
static inline void fx_assert_json(const char *what, json_t *got, json_t *want, int exact)
{
    if (exact ? json_equal(got, want) : fx_json_same(got, want))
        return;
    char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    cr_assert_fail("%s:\n got  %s\n want %s", what, g, w);
}

/* The JSON text an adapter wrote equals want (numbers by value). */
static inline void fx_assert_json_text(const char *what, const char *text, size_t len, json_t *want)
{
    json_t *got = fx_parse(what, text, len);
    fx_assert_json(what, got, want, 0);
    json_decref(got);
}

/* The same, with json_equal's exact comparison. */
static inline void fx_assert_json_text_exact(const char *what, const char *text, size_t len, json_t *want)
{
    json_t *got = fx_parse(what, text, len);
    fx_assert_json(what, got, want, 1);
    json_decref(got);
}

/** A request as the core scans it, with the given clock and request id. */
static inline ad_request_t fx_request_at(ad_op_t op, const char *body, size_t len, int64_t now,
                                         const char *rid)
{
    ad_request_t r;
    size_t off = 0;
    cr_assert_eq(ad_request_scan(op, body, len, &r, &off), 0, "request does not scan (byte %zu): %.*s", off,
                 (int)len, body);
    r.now = now;
    r.request_id = rid;
    return r;
}

/** A request as the core scans it, with the test clock and request id. */
static inline ad_request_t fx_request(ad_op_t op, const char *body, size_t len)
{
    return fx_request_at(op, body, len, FX_NOW, FX_RID);
}

/* Builds the upstream request for <name>.request.json and compares it with <name>.upstream.json:
 * {"method","url","headers":[…],"body":{…}} (body compared as parsed JSON). */
static inline void fx_check_build(const ad_adapter_t *ad, const char *dir, const char *name, ad_op_t op,
                                  const ad_deployment_t *dep)
{
    size_t len;
    char *body = fx_slurp_as(dir, name, ".request.json", &len);
    json_t *want = fx_load_json_as(dir, name, ".upstream.json");
    ad_request_t r = fx_request(op, body, len);
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad->build_request(&r, dep, &h, err, sizeof(err)), 0, "%s: build_request: %s", name, err);
    cr_assert_str_eq(h.method, json_string_value(json_object_get(want, "method")), "%s: method", name);
    cr_assert_str_eq(h.url.data, json_string_value(json_object_get(want, "url")), "%s: url", name);
    json_t *hdrs = json_object_get(want, "headers");
    cr_assert_eq(h.n_headers, json_array_size(hdrs), "%s: header count", name);
    for (size_t i = 0; i < h.n_headers; i++)
        cr_assert_str_eq(h.headers[i].data, json_string_value(json_array_get(hdrs, i)), "%s: header %zu",
                         name, i);
    char what[300];
    snprintf(what, sizeof(what), "%s: body", name);
    cr_assert_not(h.body_is_original, "%s: translating adapters build the body", name);
    fx_assert_json_text(what, h.body.data, h.body.len, json_object_get(want, "body"));
    ad_http_request_free(&h);
    json_decref(want);
    free(body);
}

/* build_request must refuse body with a message containing want_msg. */
static inline void fx_check_build_fails(const ad_adapter_t *ad, ad_op_t op, const char *body,
                                        const ad_deployment_t *dep, const char *want_msg)
{
    ad_request_t r = fx_request(op, body, strlen(body));
    ad_http_request_t h;
    ad_http_request_init(&h, 1 << 20);
    char err[256] = "";
    cr_assert_eq(ad->build_request(&r, dep, &h, err, sizeof(err)), -1, "accepted: %s", body);
    cr_assert_not_null(strstr(err, want_msg), "message '%s' lacks '%s'", err, want_msg);
    ad_http_request_free(&h);
}

/* ---- streams ------------------------------------------------------------------------------- */

typedef struct fx_sink {
    ad_buf_t events; /* "TYPE data\n" lines; HIDDEN for hidden chunks */
    ad_buf_t relay;  /* the bytes the core would send the client */
} fx_sink_t;

/* Appends an event's fixture line: "TYPE <data>" for CHUNK and ERROR, "TYPE" for COMMENT and
 * DONE; TYPE is HIDDEN for an event the client does not get. */
static inline int fx_event_line(ad_buf_t *b, const ad_event_t *ev)
{
    static const char *names[] = {"", "CHUNK", "COMMENT", "DONE", "ERROR"};
    const char *name = ev->hidden ? "HIDDEN" : names[ev->type];
    if (ev->type == AD_EV_CHUNK || ev->type == AD_EV_ERROR)
        return ad_buf_appendf(b, "%s %.*s\n", name, (int)ev->len, ev->data);
    return ad_buf_appendf(b, "%s\n", name);
}

static inline int fx_on_event(void *ud, const ad_event_t *ev)
{
    fx_sink_t *s = ud;
    fx_event_line(&s->events, ev);
    if (ev->hidden)
        return 0;
    if (ev->raw != NULL) /* what gateway/call.c on_event writes */
        return ad_buf_append(&s->relay, ev->raw, ev->raw_len);
    if (ev->type == AD_EV_DONE)
        return ad_buf_puts(&s->relay, "data: [DONE]\n\n");
    if (ev->type == AD_EV_COMMENT)
        return 0;
    return ad_buf_appendf(&s->relay, "data: %.*s\n\n", (int)ev->len, ev->data);
}

/* What feeding a stream gave. */
typedef struct fx_fed {
    int feed_rc;   /* the first non-zero feed status, or 0 */
    int truncated; /* stream_finish's verdict; -1 when it was not called */
    int saw_error;
    ad_usage_t usage;
} fx_fed_t;

enum { FX_FINISH_AFTER_ERROR = 1 }; /* call stream_finish even after a feed failed */

/* Runs ad's stream (state allocated and freed as the core does) over in[0..len): two pieces cut
 * at `split`, or pieces of `step` bytes when step > 0; feeding stops at the first non-zero
 * status. The stream is finished when every feed succeeded, or always with
 * FX_FINISH_AFTER_ERROR. Events go to emit(ud, …). */
static inline fx_fed_t fx_feed(const ad_adapter_t *ad, const ad_request_t *r, const char *in, size_t len,
                               size_t split, size_t step, unsigned how,
                               int (*emit)(void *, const ad_event_t *), void *ud)
{
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    fx_fed_t out = {.feed_rc = 0, .truncated = -1};
    st.req = r;
    st.priv = ad->state_size ? calloc(1, ad->state_size) : NULL;
    ad->stream_init(&st, r);
    st.emit = emit;
    st.emit_ud = ud;
    if (step > 0) {
        for (size_t at = 0; at < len && out.feed_rc == 0; at += step)
            out.feed_rc = ad->stream_feed(&st, in + at, len - at < step ? len - at : step);
    } else {
        out.feed_rc = ad->stream_feed(&st, in, split);
        if (out.feed_rc == 0)
            out.feed_rc = ad->stream_feed(&st, in + split, len - split);
    }
    if (out.feed_rc == 0 || (how & FX_FINISH_AFTER_ERROR))
        out.truncated = ad->stream_finish(&st);
    out.usage = st.usage;
    out.saw_error = st.saw_error;
    if (ad->stream_free != NULL)
        ad->stream_free(&st);
    ad_stream_free(&st);
    free(st.priv);
    return out;
}

typedef struct fx_run {
    fx_sink_t sink;
    ad_usage_t usage;
    int truncated;
    int feed_rc;
} fx_run_t;

/* fx_feed into an fx_sink_t (the stream is always finished). */
static inline void fx_run_stream(const ad_adapter_t *ad, const ad_request_t *r, const char *in, size_t len,
                                 size_t split, size_t step, fx_run_t *out)
{
    memset(out, 0, sizeof(*out));
    ad_buf_init(&out->sink.events, 1 << 22);
    ad_buf_init(&out->sink.relay, 1 << 22);
    fx_fed_t f = fx_feed(ad, r, in, len, split, step, FX_FINISH_AFTER_ERROR, fx_on_event, &out->sink);
    out->feed_rc = f.feed_rc;
    out->truncated = f.truncated;
    out->usage = f.usage;
}

/* Event lines compared one by one: the same TYPE, and payloads equal as parsed JSON (exactly,
 * or numbers by value when !exact). */
static inline void fx_compare_events(const char *name, const char *got, const char *want, int exact)
{
    const char *g = got, *w = want;
    for (int line = 1; *g != '\0' || *w != '\0'; line++) {
        const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
        cr_assert(ge != NULL && we != NULL,
                  "%s: event count differs at event %d\n--- got ---\n%s\n--- want ---\n%s", name, line, got,
                  want);
        size_t gk = strcspn(g, " \n"), wk = strcspn(w, " \n");
        cr_assert(gk == wk && memcmp(g, w, gk) == 0, "%s event %d: got %.*s, want %.*s", name, line,
                  (int)(ge - g), g, (int)(we - w), w);
        cr_assert_eq(g[gk] == ' ', w[wk] == ' ', "%s event %d: payload", name, line);
        if (g[gk] == ' ') {
            char what[128];
            snprintf(what, sizeof(what), "%.100s event %d", name, line);
            json_t *a = fx_parse(what, g + gk + 1, (size_t)(ge - g) - gk - 1);
            json_t *b = fx_parse(what, w + wk + 1, (size_t)(we - w) - wk - 1);
            fx_assert_json(what, a, b, exact);
            json_decref(a);
            json_decref(b);
        }
        g = ge + 1;
        w = we + 1;
    }
}

static inline void fx_run_free(fx_run_t *r)
{
    ad_buf_free(&r->sink.events);
    ad_buf_free(&r->sink.relay);
}

typedef struct fx_stream_case {
    const char *input;  /* file with the upstream bytes */
    const char *events; /* expected events file */
    const char *relay;  /* expected client bytes file, or NULL to skip */
    int wants_usage;
    int64_t prompt, completion; /* expected st->usage */
    int truncated;
} fx_stream_case_t;

/* Every split of the input into two pieces, then byte by byte: identical events every time. */
static inline void fx_check_stream(const ad_adapter_t *ad, const char *dir, const fx_stream_case_t *c)
{
    size_t il, el, rl = 0;
    char *in = fx_slurp(dir, c->input, &il);
    char *events = fx_slurp(dir, c->events, &el);
    char *relay = c->relay != NULL ? fx_slurp(dir, c->relay, &rl) : NULL;
    ad_request_t r;
    memset(&r, 0, sizeof(r));
    r.op = AD_OP_CHAT;
    r.stream = 1;
    r.include_usage = c->wants_usage;
    r.now = FX_NOW;
    r.request_id = FX_RID;
    for (size_t split = 0; split <= il + 1; split++) {
        fx_run_t run;
        fx_run_stream(ad, &r, in, il, split == il + 1 ? 0 : split, split == il + 1 ? 1 : 0, &run);
        const char *how = split == il + 1 ? "byte by byte" : "split";
        cr_assert_eq(run.feed_rc, 0, "%s %s %zu: feed failed", c->input, how, split);
        cr_assert(run.sink.events.len == el && memcmp(run.sink.events.data, events, el) == 0,
                  "%s %s %zu: events\n%s\nwant\n%s", c->input, how, split, run.sink.events.data, events);
        if (relay != NULL)
            cr_assert(run.sink.relay.len == rl && memcmp(run.sink.relay.data, relay, rl) == 0,
                      "%s %s %zu: relay\n%s", c->input, how, split, run.sink.relay.data);
        cr_assert_eq(run.usage.prompt_tokens, c->prompt, "%s: prompt tokens", c->input);
        cr_assert_eq(run.usage.completion_tokens, c->completion, "%s: completion tokens", c->input);
        cr_assert_eq(run.truncated, c->truncated, "%s %s %zu: truncation", c->input, how, split);
        fx_run_free(&run);
    }
    free(in);
    free(events);
    free(relay);
}

/* ---- responses ----------------------------------------------------------------------------- */

/* parse_response must accept body (what names it); returns the output parsed (the caller
 * decrefs it). *u is passed as the caller set it and holds the usage read. */
static inline json_t *fx_parse_ok(const ad_adapter_t *ad, const ad_request_t *r, const char *body, size_t len,
                                  const char *what, ad_usage_t *u)
{
    ad_buf_t out;
    ad_buf_init(&out, 1 << 20);
    cr_assert_eq(ad->parse_response(r, body, len, &out, u), 0, "%s: parse_response", what);
    json_t *j = fx_parse(what, out.data != NULL ? out.data : "", out.len);
    ad_buf_free(&out);
    return j;
}

/* parse_response must refuse each of the n bodies (status -1). */
static inline void fx_check_refused(const ad_adapter_t *ad, const ad_request_t *r, const char *const *bodies,
                                    size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ad_buf_t out;
        ad_buf_init(&out, 1 << 20);
        ad_usage_t u = {-1, -1, -1, -1};
        cr_assert_eq(ad->parse_response(r, bodies[i], strlen(bodies[i]), &out, &u), -1, "case %zu: %s", i,
                     bodies[i]);
        ad_buf_free(&out);
    }
}

/* ---- errors -------------------------------------------------------------------------------- */

typedef struct fx_error_case {
    int status;
    const char *body;
    const char *retry_after;
    int want_status, retryable;
    int64_t retry_ms;
    const char *want; /* the exact OpenAI error JSON (compared parsed) */
} fx_error_case_t;

static inline void fx_check_errors(const ad_adapter_t *ad, const fx_error_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const fx_error_case_t *c = &cases[i];
        ad_buf_t out;
        ad_buf_init(&out, 64 * 1024);
        ad_error_t e;
        memset(&e, 0, sizeof(e));
        ad->map_error(c->status, c->body, strlen(c->body), c->retry_after, &out, &e);
        cr_assert_eq(e.status, c->want_status, "case %zu: status", i);
        cr_assert_eq(e.retryable, c->retryable, "case %zu: retryable", i);
        cr_assert_eq(e.retry_ms, c->retry_ms, "case %zu: retry_ms", i);
        json_t *want = json_loads(c->want, 0, NULL);
        cr_assert_not_null(want, "case %zu: bad expectation", i);
        char what[64];
        snprintf(what, sizeof(what), "error case %zu", i);
        fx_assert_json_text(what, out.data != NULL ? out.data : "", out.len, want);
        json_decref(want);
        ad_buf_free(&out);
    }
}

#endif

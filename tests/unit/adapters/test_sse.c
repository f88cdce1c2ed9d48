/*
 * test_sse.c — the SSE framer against providers.md §8's checklist, and above all the property a
 * streaming relay depends on: however the upstream's bytes are cut into pieces, the same blocks
 * come out, with the same parsed fields and the same raw bytes.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/json_scan.h"
#include "adapters/sse.h"

#define S(lit)                                                                                               \
    {                                                                                                        \
        lit, sizeof(lit) - 1                                                                                 \
    }
#define BIG (1u << 20)

typedef struct bytes {
    const char *p;
    size_t n;
} bytes_t;

typedef struct rec_event {
    char *raw, *event, *data, *id;
    size_t raw_len, event_len, data_len, id_len;
    int has_data;
} rec_event_t;

typedef struct rec {
    rec_event_t *ev;
    size_t n, cap;
    size_t stop_at; /* 1-based event whose callback returns stop_rc; 0: never */
    int stop_rc;
} rec_t;

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    cr_assert_not_null(d);
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int on_event(void *ud, const ad_sse_event_t *ev)
{
    rec_t *r = ud;
    /* Contract checks that hold for every event. */
    cr_assert_eq(ev->event[ev->event_len], '\0', "event not NUL-terminated");
    cr_assert_eq(ev->data[ev->data_len], '\0', "data not NUL-terminated");
    cr_assert(ev->has_data || ev->data_len == 0, "data without has_data");
    cr_assert_gt(ev->raw_len, 0);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
        cr_assert_not_null(r->ev);
    }
    rec_event_t *e = &r->ev[r->n++];
    e->raw = dup_bytes(ev->raw, ev->raw_len);
    e->raw_len = ev->raw_len;
    e->event = dup_bytes(ev->event, ev->event_len);
    e->event_len = ev->event_len;
    e->data = dup_bytes(ev->data, ev->data_len);
    e->data_len = ev->data_len;
    e->has_data = ev->has_data;
    e->id = ev->id != NULL ? dup_bytes(ev->id, ev->id_len) : NULL;
    e->id_len = ev->id_len;
    return r->n == r->stop_at ? r->stop_rc : 0;
}

static void rec_free(rec_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].raw);
        free(r->ev[i].event);
        free(r->ev[i].data);
        free(r->ev[i].id);
    }
    free(r->ev);
    memset(r, 0, sizeof *r);
}

typedef struct run {
    rec_t rec;
    int rc;     /* first non-zero feed result, or 0 */
    int finish; /* ad_sse_finish */
} run_t;

/* Feeds in[0..n) cut at the ascending offsets cuts[0..ncuts). */
static void run_cuts(const char *in, size_t n, const size_t *cuts, size_t ncuts, size_t max, run_t *out)
{
    ad_sse_t s;
    ad_sse_init(&s, max);
    memset(out, 0, sizeof *out);
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        int rc = ad_sse_feed(&s, in + from, to - from, on_event, &out->rec);
        if (out->rc == 0)
            out->rc = rc;
        else if (out->rc == -1)
            cr_assert_eq(rc, -1, "a dead framer came back to life");
        from = to;
    }
    out->finish = ad_sse_finish(&s);
    ad_sse_free(&s);
}

static void run_whole(const char *in, size_t n, size_t max, run_t *out)
{
    run_cuts(in, n, NULL, 0, max, out);
}

static void assert_same_events(const rec_t *a, const rec_t *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu events vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const rec_event_t *x = &a->ev[i], *y = &b->ev[i];
        cr_assert(x->raw_len == y->raw_len && memcmp(x->raw, y->raw, x->raw_len) == 0, "%s: event %zu raw",
                  what, i);
        cr_assert(x->event_len == y->event_len && memcmp(x->event, y->event, x->event_len) == 0,
                  "%s: event %zu type", what, i);
        cr_assert(x->data_len == y->data_len && memcmp(x->data, y->data, x->data_len) == 0,
                  "%s: event %zu data", what, i);
        cr_assert_eq(x->has_data, y->has_data, "%s: event %zu has_data", what, i);
        cr_assert_eq(x->id == NULL, y->id == NULL, "%s: event %zu id presence", what, i);
        if (x->id != NULL)
            cr_assert(x->id_len == y->id_len && memcmp(x->id, y->id, x->id_len) == 0, "%s: event %zu id",
                      what, i);
    }
}

/* Parsed fields only (raw bytes differ between line-end styles). */
static void assert_same_fields(const rec_t *a, const rec_t *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu events vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_assert_str_eq(a->ev[i].event, b->ev[i].event, "%s: event %zu", what, i);
        cr_assert_eq(a->ev[i].data_len, b->ev[i].data_len, "%s: event %zu", what, i);
        cr_assert_eq(memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].data_len), 0, "%s: event %zu", what, i);
        cr_assert_eq(a->ev[i].has_data, b->ev[i].has_data, "%s: event %zu", what, i);
    }
}

/* ---- recorded-looking streams ---------------------------------------------------------------- */

static const char openai_stream[] =
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":"
    "\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":"
    "\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Caf\xc3\xa9 \xe2\x98\x83 "
    "\xf0\x9f\x98\x80\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"chatcmpl-9x\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":"
    "\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n"
    "data: [DONE]\n\n";

static const char anthropic_stream[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":"
    "\"assistant\",\"content\":[],\"model\":\"claude-3-5-sonnet-20241022\",\"stop_reason\":null,"
    "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: "
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello "
    "\xe4\xb8\x96\xe7\x95\x8c\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},"
    "\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

/* Everything odd at once: BOM, comments, CR/LF/CRLF mixed, id, retry, unknown fields, multi-line
 * data, a spare blank line, an error event, no space after colons. */
static const char mixed_stream[] = "\xef\xbb\xbf: hello\r\n\r\n"
                                   "id: 7\nevent: error\r\ndata: {\"error\":{\"message\":\"over\",\r"
                                   "data: \"type\":\"overloaded_error\"}}\r\r"
                                   "retry: soon\nfoo:bar\ndata:no-space\n\n\n"
                                   "data:  two spaces\r\nid\r\n: inside\r\n\r\n"
                                   "event:done\ndata\n\n";

static const char spec_example[] = "data\n\ndata\ndata\n\ndata:";

/* Rewrites every "\n" of an LF stream as "\r\n" or "\r". */
static char *relined(const char *in, size_t n, const char *eol, size_t *out_n)
{
    size_t el = strlen(eol);
    char *out = malloc(n * el + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '\n') {
            memcpy(out + o, eol, el);
            o += el;
        } else {
            out[o++] = in[i];
        }
    }
    *out_n = o;
    return out;
}

typedef struct stream {
    const char *name;
    char *p;
    size_t n;
} stream_t;

static size_t make_streams(stream_t *st)
{
    size_t k = 0;
    const bytes_t lf[] = {S(openai_stream), S(anthropic_stream)};
    for (size_t i = 0; i < 2; i++) {
        static const char *names[2][3] = {{"openai-lf", "openai-crlf", "openai-cr"},
                                          {"anthropic-lf", "anthropic-crlf", "anthropic-cr"}};
        st[k] = (stream_t){names[i][0], dup_bytes(lf[i].p, lf[i].n), lf[i].n};
        k++;
        st[k].name = names[i][1];
        st[k].p = relined(lf[i].p, lf[i].n, "\r\n", &st[k].n);
        k++;
        st[k].name = names[i][2];
        st[k].p = relined(lf[i].p, lf[i].n, "\r", &st[k].n);
        k++;
    }
    st[k++] = (stream_t){"mixed", dup_bytes(mixed_stream, sizeof mixed_stream - 1), sizeof mixed_stream - 1};
    st[k++] = (stream_t){"spec", dup_bytes(spec_example, sizeof spec_example - 1), sizeof spec_example - 1};
    return k;
}

static void free_streams(stream_t *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(st[i].p);
}

/* ---- the split property ---------------------------------------------------------------------- */

Test(sse, every_split_offset_gives_identical_events)
{
    stream_t st[8];
    size_t ns = make_streams(st);
    for (size_t s = 0; s < ns; s++) {
        run_t whole;
        run_whole(st[s].p, st[s].n, BIG, &whole);
        cr_assert_eq(whole.rc, 0, "%s", st[s].name);
        cr_assert_gt(whole.rec.n, 0, "%s", st[s].name);
        for (size_t k = 0; k <= st[s].n; k++) {
            run_t split;
            run_cuts(st[s].p, st[s].n, &k, 1, BIG, &split);
            cr_assert_eq(split.rc, 0);
            cr_assert_eq(split.finish, whole.finish, "%s split at %zu: finish", st[s].name, k);
            assert_same_events(&whole.rec, &split.rec, st[s].name);
            rec_free(&split.rec);
        }
        rec_free(&whole.rec);
    }
    free_streams(st, ns);
}

Test(sse, byte_by_byte_gives_identical_events)
{
    stream_t st[8];
    size_t ns = make_streams(st);
    for (size_t s = 0; s < ns; s++) {
        size_t *cuts = malloc(st[s].n * sizeof *cuts);
        for (size_t k = 0; k < st[s].n; k++)
            cuts[k] = k;
        run_t whole, bytes;
        run_whole(st[s].p, st[s].n, BIG, &whole);
        run_cuts(st[s].p, st[s].n, cuts, st[s].n, BIG, &bytes);
        cr_assert_eq(bytes.finish, whole.finish, "%s", st[s].name);
        assert_same_events(&whole.rec, &bytes.rec, st[s].name);
        rec_free(&whole.rec);
        rec_free(&bytes.rec);
        free(cuts);
    }
    free_streams(st, ns);
}

Test(sse, every_pair_of_split_offsets_on_the_mixed_stream)
{
    const char *in = mixed_stream;
    size_t n = sizeof mixed_stream - 1;
    run_t whole;
    run_whole(in, n, BIG, &whole);
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            size_t cuts[2] = {a, b};
            run_t split;
            run_cuts(in, n, cuts, 2, BIG, &split);
            assert_same_events(&whole.rec, &split.rec, "mixed pair");
            cr_assert_eq(split.finish, whole.finish);
            rec_free(&split.rec);
        }
    }
    rec_free(&whole.rec);
}

Test(sse, random_chunkings_give_identical_events)
{
    stream_t st[8];
    size_t ns = make_streams(st);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t s = 0; s < ns; s++) {
        run_t whole;
        run_whole(st[s].p, st[s].n, BIG, &whole);
        size_t *cuts = malloc((st[s].n + 1) * sizeof *cuts);
        for (int iter = 0; iter < 200; iter++) {
            size_t nc = 0, at = 0;
            for (;;) {
                seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
                at += 1 + (size_t)(seed >> 33) % 40;
                if (at >= st[s].n)
                    break;
                cuts[nc++] = at;
            }
            run_t split;
            run_cuts(st[s].p, st[s].n, cuts, nc, BIG, &split);
            assert_same_events(&whole.rec, &split.rec, st[s].name);
            rec_free(&split.rec);
        }
        free(cuts);
        rec_free(&whole.rec);
    }
    free_streams(st, ns);
}

Test(sse, raws_concatenate_to_the_input)
{
    stream_t st[8];
    size_t ns = make_streams(st);
    for (size_t s = 0; s < ns; s++) {
        run_t whole;
        run_whole(st[s].p, st[s].n, BIG, &whole);
        size_t skip = st[s].n >= 3 && memcmp(st[s].p, "\xef\xbb\xbf", 3) == 0 ? 3 : 0, off = skip;
        for (size_t i = 0; i < whole.rec.n; i++) {
            cr_assert_leq(off + whole.rec.ev[i].raw_len, st[s].n, "%s", st[s].name);
            cr_assert_eq(memcmp(st[s].p + off, whole.rec.ev[i].raw, whole.rec.ev[i].raw_len), 0,
                         "%s event %zu", st[s].name, i);
            off += whole.rec.ev[i].raw_len;
        }
        /* What is left is a partial block: nothing but the LF of a final CR LF, or (spec) "data:". */
        size_t rest = st[s].n - off;
        cr_assert(rest == 0 || (rest == 1 && st[s].p[off] == '\n') || whole.finish == 1, "%s: %zu bytes left",
                  st[s].name, rest);
        rec_free(&whole.rec);
    }
    free_streams(st, ns);
}

/* ---- what the streams mean ------------------------------------------------------------------- */

Test(sse, openai_stream_parses_and_ends_with_done)
{
    run_t r;
    run_whole(openai_stream, sizeof openai_stream - 1, BIG, &r);
    cr_assert_eq(r.rec.n, 5);
    cr_assert_eq(r.finish, 0);
    cr_assert_eq(r.rec.ev[2].has_data, 0, "keep-alive comment block");
    cr_assert_str_eq(r.rec.ev[2].raw, ": keep-alive\n\n");
    for (size_t i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        cr_assert_eq(r.rec.ev[i].has_data, 1);
        cr_assert_str_eq(r.rec.ev[i].event, "");
        cr_assert_eq(ad_json_validate(r.rec.ev[i].data, r.rec.ev[i].data_len, NULL), 0, "event %zu JSON", i);
    }
    cr_assert_str_eq(r.rec.ev[4].data, "[DONE]");
    cr_assert_str_eq(r.rec.ev[4].raw, "data: [DONE]\n\n");
    cr_assert_not_null(strstr(r.rec.ev[1].data, "Caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80"), "UTF-8 kept");
    rec_free(&r.rec);
}

Test(sse, anthropic_stream_parses_with_event_types)
{
    static const char *types[] = {"message_start",       "content_block_start", "ping",
                                  "content_block_delta", "content_block_stop",  "message_delta",
                                  "message_stop"};
    run_t r;
    run_whole(anthropic_stream, sizeof anthropic_stream - 1, BIG, &r);
    cr_assert_eq(r.rec.n, 7);
    for (size_t i = 0; i < 7; i++) {
        cr_assert_str_eq(r.rec.ev[i].event, types[i]);
        cr_assert_eq(r.rec.ev[i].has_data, 1);
        ad_jspan_t t;
        cr_assert_eq(ad_json_find(r.rec.ev[i].data, r.rec.ev[i].data_len, "type", &t), 1, "event %zu", i);
    }
    rec_free(&r.rec);
}

Test(sse, crlf_and_cr_streams_mean_the_same_as_lf)
{
    const bytes_t lf[] = {S(openai_stream), S(anthropic_stream)};
    for (size_t i = 0; i < 2; i++) {
        run_t base;
        run_whole(lf[i].p, lf[i].n, BIG, &base);
        static const char *eols[] = {"\r\n", "\r"};
        for (size_t e = 0; e < 2; e++) {
            size_t n;
            char *p = relined(lf[i].p, lf[i].n, eols[e], &n);
            run_t other;
            run_whole(p, n, BIG, &other);
            assert_same_fields(&base.rec, &other.rec, eols[e]);
            cr_assert_eq(other.finish, 0);
            rec_free(&other.rec);
            free(p);
        }
        rec_free(&base.rec);
    }
}

Test(sse, crlf_block_raw_ends_at_the_cr_and_the_lf_leads_the_next)
{
    static const char in[] = "data: a\r\n\r\ndata: b\r\n\r\n";
    run_t r;
    run_whole(in, sizeof in - 1, BIG, &r);
    cr_assert_eq(r.rec.n, 2);
    cr_assert_str_eq(r.rec.ev[0].raw, "data: a\r\n\r");
    cr_assert_str_eq(r.rec.ev[1].raw, "\ndata: b\r\n\r");
    cr_assert_str_eq(r.rec.ev[1].data, "b");
    cr_assert_eq(r.finish, 0, "a lone pending LF is not a truncated event");
    rec_free(&r.rec);
}

Test(sse, cr_lf_split_across_reads)
{
    static const struct {
        bytes_t a, b;
        size_t n;
        const char *data[3];
    } cases[] = {
        /* CR inside a block, its LF in the next piece: one line end, not an empty line. */
        {S("data: a\r"), S("\ndata: b\r\n\r\n"), 1, {"a\nb"}},
        /* CR that ends a block: dispatched at once; the LF must not make an extra block. */
        {S("data: a\r\n\r"), S("\ndata: b\r\n\r\n"), 2, {"a", "b"}},
        {S("data: a\r\n\r"), S("\n"), 1, {"a"}},
        /* CR LF LF: the second LF is a real empty line, a block of its own. */
        {S("data: a\r\n\r"), S("\n\n"), 2, {"a", ""}},
        {S("data: a\r"), S("\r"), 1, {"a"}},
        {S("data: a\n"), S("\r\n"), 1, {"a"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char in[64];
        memcpy(in, cases[i].a.p, cases[i].a.n);
        memcpy(in + cases[i].a.n, cases[i].b.p, cases[i].b.n);
        run_t r, whole;
        run_cuts(in, cases[i].a.n + cases[i].b.n, &cases[i].a.n, 1, BIG, &r);
        run_whole(in, cases[i].a.n + cases[i].b.n, BIG, &whole);
        cr_assert_eq(r.rec.n, cases[i].n, "case %zu: %zu events", i, r.rec.n);
        for (size_t k = 0; k < cases[i].n; k++)
            cr_assert_str_eq(r.rec.ev[k].data, cases[i].data[k], "case %zu event %zu", i, k);
        assert_same_events(&whole.rec, &r.rec, "cr/lf");
        cr_assert_eq(r.finish, 0);
        rec_free(&r.rec);
        rec_free(&whole.rec);
    }
}

/* ---- field rules ----------------------------------------------------------------------------- */

Test(sse, field_parsing_table)
{
    static const struct {
        bytes_t in;
        const char *event;
        bytes_t data;
        int has_data;
    } cases[] = {
        {S("data:x\n\n"), "", S("x"), 1},
        {S("data: x\n\n"), "", S("x"), 1},
        {S("data:  x\n\n"), "", S(" x"), 1},
        {S("data: a:b: c\n\n"), "", S("a:b: c"), 1},
        {S("data\n\n"), "", S(""), 1},
        {S("data:\n\n"), "", S(""), 1},
        {S("data: \n\n"), "", S(""), 1},
        {S("event: \ndata: x\n\n"), "", S("x"), 1},
        {S("data\ndata\n\n"), "", S("\n"), 1},
        {S("data: a\ndata: b\n\n"), "", S("a\nb"), 1},
        {S("data: {\"a\":\ndata: 1}\n\n"), "", S("{\"a\":\n1}"), 1},
        {S("event: x\ndata: y\n\n"), "x", S("y"), 1},
        {S("data: y\nevent: x\n\n"), "x", S("y"), 1},
        {S("event: a\nevent: b\ndata: y\n\n"), "b", S("y"), 1},
        {S("event:x\ndata:y\n\n"), "x", S("y"), 1},
        {S("event\ndata: y\n\n"), "", S("y"), 1},
        {S("event: ping\n\n"), "ping", S(""), 0},
        {S(": comment\n\n"), "", S(""), 0},
        {S(":\n\n"), "", S(""), 0},
        {S("data: a\n: c\ndata: b\n\n"), "", S("a\nb"), 1},
        {S("foo: bar\ndata: x\n\n"), "", S("x"), 1},
        {S("Data: x\n\n"), "", S(""), 0},
        {S("data : x\n\n"), "", S(""), 0},
        {S(" data: x\n\n"), "", S(""), 0},
        {S("retry: abc\ndata: x\n\n"), "", S("x"), 1},
        {S("retry: 1000\ndata: x\n\n"), "", S("x"), 1},
        {S("data: \xc3\xa9\xe2\x98\x83\n\n"), "", S("\xc3\xa9\xe2\x98\x83"), 1},
        {S("data: a\0b\n\n"), "", S("a\0b"), 1},
        {S("data: x\r\n\r"), "", S("x"), 1}, /* the final LF would belong to the next block */
        {S("data: x\r\r"), "", S("x"), 1},
        {S("data: a\rdata: b\ndata: c\r\n\n"), "", S("a\nb\nc"), 1},
        {S("event: error\ndata: {\"error\":{}}\n\n"), "error", S("{\"error\":{}}"), 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r;
        run_whole(cases[i].in.p, cases[i].in.n, BIG, &r);
        cr_assert_eq(r.rec.n, 1, "case %zu: %zu events", i, r.rec.n);
        rec_event_t *e = &r.rec.ev[0];
        cr_assert_str_eq(e->event, cases[i].event, "case %zu", i);
        cr_assert_eq(e->data_len, cases[i].data.n, "case %zu data_len %zu", i, e->data_len);
        cr_assert_eq(memcmp(e->data, cases[i].data.p, e->data_len), 0, "case %zu", i);
        cr_assert_eq(e->has_data, cases[i].has_data, "case %zu", i);
        cr_assert_eq(e->raw_len, cases[i].in.n, "case %zu raw", i);
        cr_assert_eq(memcmp(e->raw, cases[i].in.p, e->raw_len), 0, "case %zu raw", i);
        rec_free(&r.rec);
    }
}

Test(sse, id_field)
{
    static const struct {
        bytes_t in;
        const char *id; /* NULL: no id */
    } cases[] = {
        {S("data: x\n\n"), NULL},
        {S("id: 1\ndata: x\n\n"), "1"},
        {S("id: 1\nid: 2\ndata: x\n\n"), "2"},
        {S("id: 1\nid: a\0b\ndata: x\n\n"), "1"},
        {S("id: a\0b\ndata: x\n\n"), NULL},
        {S("id\ndata: x\n\n"), ""},
        {S("id:\n\n"), ""},
        {S("id:  5\n\n"), " 5"},
        {S("Id: 5\n\n"), NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r;
        run_whole(cases[i].in.p, cases[i].in.n, BIG, &r);
        cr_assert_eq(r.rec.n, 1, "case %zu", i);
        if (cases[i].id == NULL) {
            cr_assert_null(r.rec.ev[0].id, "case %zu", i);
        } else {
            cr_assert_not_null(r.rec.ev[0].id, "case %zu", i);
            cr_assert_eq(r.rec.ev[0].id_len, strlen(cases[i].id), "case %zu", i);
            cr_assert_str_eq(r.rec.ev[0].id, cases[i].id, "case %zu", i);
        }
        rec_free(&r.rec);
    }
}

Test(sse, spec_example)
{
    run_t r;
    run_whole(spec_example, sizeof spec_example - 1, BIG, &r);
    cr_assert_eq(r.rec.n, 2);
    cr_assert_str_eq(r.rec.ev[0].data, "");
    cr_assert_eq(r.rec.ev[0].has_data, 1);
    cr_assert_str_eq(r.rec.ev[1].data, "\n");
    cr_assert_eq(r.finish, 1, "the trailing data: never got its blank line");
    rec_free(&r.rec);
}

Test(sse, bom_is_dropped_once_and_only_at_the_start)
{
    static const struct {
        bytes_t in;
        int has_data;
        bytes_t raw;
    } cases[] = {
        {S("\xef\xbb\xbf"
           "data: x\n\n"),
         1, S("data: x\n\n")},
        {S("\xef\xbb\xbf\xef\xbb\xbf"
           "data: x\n\n"),
         0,
         S("\xef\xbb\xbf"
           "data: x\n\n")},
        {S("\xef\xbb"
           "data: x\n\n"),
         0,
         S("\xef\xbb"
           "data: x\n\n")},
        {S("\xef"
           "data: x\n\n"),
         0,
         S("\xef"
           "data: x\n\n")},
        {S("\xef\xbb\xbf\n"), 0, S("\n")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t k = 0; k <= cases[i].in.n; k++) {
            run_t r;
            run_cuts(cases[i].in.p, cases[i].in.n, &k, 1, BIG, &r);
            cr_assert_eq(r.rec.n, 1, "case %zu split %zu", i, k);
            cr_assert_eq(r.rec.ev[0].has_data, cases[i].has_data, "case %zu split %zu", i, k);
            cr_assert_eq(r.rec.ev[0].raw_len, cases[i].raw.n, "case %zu split %zu", i, k);
            cr_assert_eq(memcmp(r.rec.ev[0].raw, cases[i].raw.p, cases[i].raw.n), 0, "case %zu", i);
            rec_free(&r.rec);
        }
    }
}

Test(sse, spare_blank_lines_are_empty_blocks)
{
    static const char in[] = "\ndata: x\n\n\n\r\n";
    run_t r;
    run_whole(in, sizeof in - 1, BIG, &r);
    cr_assert_eq(r.rec.n, 4);
    cr_assert_str_eq(r.rec.ev[0].raw, "\n");
    cr_assert_str_eq(r.rec.ev[1].raw, "data: x\n\n");
    cr_assert_str_eq(r.rec.ev[2].raw, "\n");
    cr_assert_str_eq(r.rec.ev[3].raw, "\r");
    cr_assert_eq(r.rec.ev[0].has_data + r.rec.ev[2].has_data + r.rec.ev[3].has_data, 0);
    cr_assert_eq(r.finish, 0);
    rec_free(&r.rec);
}

Test(sse, errors_in_stream_are_visible_after_parsing)
{
    static const bytes_t cases[] = {
        S("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
          "\"Overloaded\"}}\n\n"),
        S("data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"code\":null}}\n\n"),
    };
    for (size_t i = 0; i < 2; i++) {
        run_t r;
        run_whole(cases[i].p, cases[i].n, BIG, &r);
        cr_assert_eq(r.rec.n, 1);
        ad_jspan_t err;
        cr_assert_eq(ad_json_find(r.rec.ev[0].data, r.rec.ev[0].data_len, "error", &err), 1, "case %zu", i);
        cr_assert_eq(err.type, AD_J_OBJECT);
        cr_assert_str_eq(r.rec.ev[0].event, i == 0 ? "error" : "");
        rec_free(&r.rec);
    }
}

/* ---- limits, end of stream, early stop ------------------------------------------------------- */

Test(sse, very_long_lines)
{
    size_t line = 1u << 20;
    size_t n = line + 8;
    char *in = malloc(n);
    memcpy(in, "data: ", 6);
    memset(in + 6, 'x', line);
    memcpy(in + 6 + line, "\n\n", 2);
    size_t chunks[] = {1, 1000, 65536};
    for (size_t c = 0; c < 3; c++) {
        size_t ncuts = (n - 1) / chunks[c];
        if (ncuts > 300000)
            ncuts = 300000; /* byte-by-byte over the first 300k bytes, then one piece */
        size_t *cuts = malloc(ncuts * sizeof *cuts);
        for (size_t k = 0; k < ncuts; k++)
            cuts[k] = (k + 1) * chunks[c];
        run_t r;
        run_cuts(in, n, cuts, ncuts, 2 * line, &r);
        cr_assert_eq(r.rc, 0);
        cr_assert_eq(r.rec.n, 1);
        cr_assert_eq(r.rec.ev[0].data_len, line);
        cr_assert_eq(r.rec.ev[0].raw_len, n);
        rec_free(&r.rec);
        free(cuts);
    }
    free(in);
}

Test(sse, ceiling_error_at_every_split)
{
    /* Blocks: 9 bytes, 108 bytes, 9 bytes. With max 64 the second is too large. */
    char in[160];
    size_t n = 0;
    memcpy(in + n, "data: a\n\n", 9);
    n += 9;
    memcpy(in + n, "data: ", 6);
    n += 6;
    memset(in + n, 'x', 100);
    n += 100;
    memcpy(in + n, "\n\n", 2);
    n += 2;
    memcpy(in + n, "data: b\n\n", 9);
    n += 9;
    for (size_t k = 0; k <= n; k++) {
        run_t r;
        run_cuts(in, n, &k, 1, 64, &r);
        cr_assert_eq(r.rc, -1, "split %zu", k);
        cr_assert_eq(r.rec.n, 1, "split %zu: events before the big block are delivered", k);
        cr_assert_str_eq(r.rec.ev[0].data, "a");
        cr_assert_eq(r.finish, 1, "a dead framer reports truncation");
        rec_free(&r.rec);
    }
}

Test(sse, ceiling_is_exact)
{
    static const char in[] = "data: 0123456789\n\ndata: z\n\n"; /* blocks of 18 and 9 bytes */
    size_t n = sizeof in - 1;
    static const struct {
        size_t max;
        int rc;
        size_t events;
    } cases[] = {{18, 0, 2}, {17, -1, 0}, {100, 0, 2}, {9, -1, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t k = 0; k <= n; k++) {
            run_t r;
            run_cuts(in, n, &k, 1, cases[i].max, &r);
            cr_assert_eq(r.rc, cases[i].rc, "max %zu split %zu", cases[i].max, k);
            cr_assert_eq(r.rec.n, cases[i].events, "max %zu split %zu", cases[i].max, k);
            rec_free(&r.rec);
        }
    }
}

Test(sse, dead_framer_stays_dead_until_finish)
{
    ad_sse_t s;
    rec_t r = {0};
    ad_sse_init(&s, 16);
    cr_assert_eq(ad_sse_feed(&s, "data: 0123456789abcdef", 22, on_event, &r), -1);
    cr_assert_eq(ad_sse_feed(&s, "\n\ndata: x\n\n", 11, on_event, &r), -1);
    cr_assert_eq(r.n, 0);
    cr_assert_eq(ad_sse_finish(&s), 1);
    /* finish readies the framer for a new stream */
    cr_assert_eq(ad_sse_feed(&s, "data: x\n\n", 9, on_event, &r), 0);
    cr_assert_eq(r.n, 1);
    ad_sse_free(&s);
    rec_free(&r);
}

Test(sse, finish_detects_truncation)
{
    static const struct {
        bytes_t in;
        int truncated;
    } cases[] = {
        {S(""), 0},
        {S("data: x\n\n"), 0},
        {S("data: x\n"), 1},
        {S("data: x"), 1},
        {S("data: x\r"), 1},
        {S("data: x\r\n\r"), 0},
        {S("data: x\r\n\r\n"), 0},
        {S(": only a comment"), 1},
        {S("event: x\n"), 1},
        {S("  "), 0},
        {S("\n"), 0},
        {S("\xef\xbb"), 1},
        {S("\xef\xbb\xbf"), 0},
        {S("data: x\n\ndata: y"), 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t k = 0; k <= cases[i].in.n; k++) {
            run_t r;
            run_cuts(cases[i].in.p, cases[i].in.n, &k, 1, BIG, &r);
            cr_assert_eq(r.finish, cases[i].truncated, "case %zu split %zu", i, k);
            rec_free(&r.rec);
        }
    }
}

Test(sse, finish_resets_for_a_new_stream)
{
    ad_sse_t s;
    rec_t r = {0};
    ad_sse_init(&s, 1024);
    cr_assert_eq(ad_sse_feed(&s,
                             "\xef\xbb\xbf"
                             "data: a\n\ndata: partial",
                             25, on_event, &r),
                 0);
    cr_assert_eq(ad_sse_finish(&s), 1);
    cr_assert_eq(ad_sse_feed(&s,
                             "\xef\xbb\xbf"
                             "data: b\n\n",
                             12, on_event, &r),
                 0);
    cr_assert_eq(ad_sse_finish(&s), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.ev[0].data, "a");
    cr_assert_str_eq(r.ev[1].data, "b");
    cr_assert_str_eq(r.ev[1].raw, "data: b\n\n");
    ad_sse_free(&s);
    rec_free(&r);
}

Test(sse, callback_stop)
{
    static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    ad_sse_t s;
    rec_t r = {.stop_at = 1, .stop_rc = 7};
    ad_sse_init(&s, 1024);
    cr_assert_eq(ad_sse_feed(&s, in, sizeof in - 1, on_event, &r), 7);
    cr_assert_eq(r.n, 1, "nothing after the stopping event");
    /* The rest of that piece is dropped; the next piece starts a new block. */
    cr_assert_eq(ad_sse_feed(&s, "data: 4\n\n", 9, on_event, &r), 0);
    cr_assert_eq(r.n, 2);
    cr_assert_str_eq(r.ev[1].data, "4");
    ad_sse_free(&s);
    rec_free(&r);

    /* Same through the buffered path (the block straddles two pieces). */
    rec_t r2 = {.stop_at = 1, .stop_rc = 3};
    ad_sse_init(&s, 1024);
    cr_assert_eq(ad_sse_feed(&s, "data: 1\n", 8, on_event, &r2), 0);
    cr_assert_eq(ad_sse_feed(&s, "\ndata: 2\n\n", 10, on_event, &r2), 3);
    cr_assert_eq(r2.n, 1);
    cr_assert_eq(ad_sse_finish(&s), 0);
    ad_sse_free(&s);
    rec_free(&r2);
}

Test(sse, null_callback_and_empty_feeds)
{
    ad_sse_t s;
    ad_sse_init(&s, 64);
    cr_assert_eq(ad_sse_feed(&s, NULL, 0, NULL, NULL), 0);
    cr_assert_eq(ad_sse_feed(&s, "data: x\n\n", 9, NULL, NULL), 0);
    cr_assert_eq(ad_sse_feed(&s, "data: y\n", 8, NULL, NULL), 0);
    cr_assert_eq(ad_sse_feed(&s, "", 0, NULL, NULL), 0);
    cr_assert_eq(ad_sse_finish(&s), 1);
    ad_sse_free(&s);
    ad_sse_free(&s);
}

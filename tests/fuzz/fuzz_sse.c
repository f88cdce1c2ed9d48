/*
 * fuzz_sse.c — libFuzzer target for the SSE framer.
 *
 * Input layout: byte 0 picks the block ceiling, bytes 1-4 two cut offsets, the rest is the stream.
 * Three properties are checked and any violation aborts:
 *   1. feeding the stream whole and cut at the two offsets yields identical results (events with
 *      their raw bytes and fields, feed status, truncation flag);
 *   2. the whole-feed result equals a deliberately naive byte-at-a-time model of WHATWG framing
 *      with the same block boundaries (so raws tile the input exactly);
 *   3. pointers handed to the callback stay inside their NUL-terminated contracts (ASan checks the
 *      bytes, the recorder reads each one).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/buf.h"
#include "adapters/sse.h"

typedef struct item {
    size_t raw, raw_len, event, event_len, data, data_len, id, id_len;
    int has_data, has_id;
} item_t;

typedef struct rec {
    ad_buf_t arena; /* all recorded bytes, items point in by offset */
    item_t *items;
    size_t n, cap;
} rec_t;

typedef struct result {
    rec_t rec;
    int rc;
    int finish;
} result_t;

static void check(int ok)
{
    if (!ok)
        abort();
}

static size_t keep(rec_t *r, const char *p, size_t n)
{
    size_t off = r->arena.len;
    check(ad_buf_append(&r->arena, p, n) == 0);
    return off;
}

static void record(rec_t *r, const char *raw, size_t raw_len, const char *ev, size_t ev_len, const char *data,
                   size_t data_len, int has_data, const char *id, size_t id_len)
{
    check(r->n < r->cap);
    item_t *it = &r->items[r->n++];
    it->raw = keep(r, raw, raw_len);
    it->raw_len = raw_len;
    it->event = keep(r, ev, ev_len);
    it->event_len = ev_len;
    it->data = keep(r, data, data_len);
    it->data_len = data_len;
    it->has_data = has_data;
    it->has_id = id != NULL;
    it->id = id != NULL ? keep(r, id, id_len) : 0;
    it->id_len = id != NULL ? id_len : 0;
}

static int on_event(void *ud, const ad_sse_event_t *ev)
{
    check(ev->event[ev->event_len] == '\0' && ev->data[ev->data_len] == '\0');
    check(ev->raw_len > 0 && (ev->has_data || ev->data_len == 0));
    record(ud, ev->raw, ev->raw_len, ev->event, ev->event_len, ev->data, ev->data_len, ev->has_data, ev->id,
           ev->id_len);
    return 0;
}

static void rec_init(rec_t *r, size_t cap)
{
    ad_buf_init(&r->arena, (size_t)1 << 30);
    r->items = calloc(cap, sizeof *r->items);
    check(r->items != NULL);
    r->n = 0;
    r->cap = cap;
}

static void rec_free(rec_t *r)
{
    ad_buf_free(&r->arena);
    free(r->items);
}

static void run(const char *p, size_t n, const size_t *cuts, size_t ncuts, size_t max, result_t *out)
{
    ad_sse_t s;
    ad_sse_init(&s, max);
    rec_init(&out->rec, n + 1);
    out->rc = 0;
    size_t from = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        int rc = ad_sse_feed(&s, p + from, to - from, on_event, &out->rec);
        if (out->rc == 0)
            out->rc = rc;
        check(out->rc == 0 || rc == -1); /* once dead, always dead */
        from = to;
    }
    out->finish = ad_sse_finish(&s);
    ad_sse_free(&s);
}

/* ---- the naive model ---- */

typedef struct model {
    ad_buf_t data;
    const char *event, *id;
    size_t event_len, id_len;
    int has_data;
} model_t;

static void model_field(model_t *m, const char *line, size_t n)
{
    if (n == 0 || line[0] == ':')
        return;
    size_t name = 0;
    while (name < n && line[name] != ':')
        name++;
    const char *v = line + name + (name < n);
    size_t vl = n - name - (name < n);
    if (vl > 0 && v[0] == ' ') {
        v++;
        vl--;
    }
    if (name == 4 && memcmp(line, "data", 4) == 0) {
        check(ad_buf_append(&m->data, v, vl) == 0 && ad_buf_append(&m->data, "\n", 1) == 0);
        m->has_data = 1;
    } else if (name == 5 && memcmp(line, "event", 5) == 0) {
        m->event = v;
        m->event_len = vl;
    } else if (name == 2 && memcmp(line, "id", 2) == 0 && memchr(v, '\0', vl) == NULL) {
        m->id = v;
        m->id_len = vl;
    }
}

static void model_dispatch(model_t *m, rec_t *r, const char *raw, size_t raw_len)
{
    size_t dl = m->has_data ? m->data.len - 1 : 0;
    record(r, raw, raw_len, m->event != NULL ? m->event : "", m->event_len, m->data.data ? m->data.data : "",
           dl, m->has_data, m->id, m->id_len);
    ad_buf_reset(&m->data);
    m->event = m->id = NULL;
    m->event_len = m->id_len = 0;
    m->has_data = 0;
}

static void model_run(const char *p, size_t n, size_t max, result_t *out)
{
    model_t m = {.event = NULL};
    ad_buf_init(&m.data, (size_t)1 << 30);
    rec_init(&out->rec, n + 1);
    out->rc = 0;
    size_t i = n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    size_t block = i, line = i;
    int prev_cr = 0;
    for (; i < n && out->rc == 0; i++) {
        char c = p[i];
        if (c == '\n' && prev_cr) {
            prev_cr = 0;
            line = i + 1;
            continue;
        }
        prev_cr = c == '\r';
        if (c != '\r' && c != '\n')
            continue;
        if (i == line) {
            if (i + 1 - block > max) {
                out->rc = -1;
                break;
            }
            model_dispatch(&m, &out->rec, p + block, i + 1 - block);
            block = i + 1;
        } else {
            model_field(&m, p + line, i - line);
        }
        line = i + 1;
    }
    if (out->rc == 0 && n - block >= max)
        out->rc = -1;
    out->finish = out->rc != 0;
    for (size_t k = block; k < n && !out->finish; k++)
        out->finish = !(p[k] == ' ' || p[k] == '\t' || p[k] == '\r' || p[k] == '\n');
    ad_buf_free(&m.data);
}

static int same_bytes(const rec_t *a, size_t ao, const rec_t *b, size_t bo, size_t n)
{
    return n == 0 || memcmp(a->arena.data + ao, b->arena.data + bo, n) == 0;
}

static void check_same(const result_t *a, const result_t *b)
{
    check(a->rc == b->rc && a->finish == b->finish && a->rec.n == b->rec.n);
    for (size_t i = 0; i < a->rec.n; i++) {
        const item_t *x = &a->rec.items[i], *y = &b->rec.items[i];
        check(x->raw_len == y->raw_len && same_bytes(&a->rec, x->raw, &b->rec, y->raw, x->raw_len));
        check(x->event_len == y->event_len && same_bytes(&a->rec, x->event, &b->rec, y->event, x->event_len));
        check(x->data_len == y->data_len && same_bytes(&a->rec, x->data, &b->rec, y->data, x->data_len));
        check(x->has_data == y->has_data && x->has_id == y->has_id);
        check(x->id_len == y->id_len && same_bytes(&a->rec, x->id, &b->rec, y->id, x->id_len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t ceilings[] = {16, 64, 256, 1 << 16};
    if (size < 5)
        return 0;
    size_t max = ceilings[data[0] & 3];
    const char *p = (const char *)data + 5;
    size_t n = size - 5;
    size_t c1 = ((size_t)data[1] | (size_t)data[2] << 8) % (n + 1);
    size_t c2 = ((size_t)data[3] | (size_t)data[4] << 8) % (n + 1);
    size_t cuts[2] = {c1 < c2 ? c1 : c2, c1 < c2 ? c2 : c1};

    result_t whole, split, model;
    run(p, n, NULL, 0, max, &whole);
    run(p, n, cuts, 2, max, &split);
    model_run(p, n, max, &model);
    check_same(&whole, &split);
    check_same(&whole, &model);
    rec_free(&whole.rec);
    rec_free(&split.rec);
    rec_free(&model.rec);
    return 0;
}

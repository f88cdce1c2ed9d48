/*
 * anthropic_sse_check.h — checks that bytes are an Anthropic Messages event stream obeying
 * providers.md §3.4, for the surface tests and the fuzz target (header-only, test code).
 *
 * Format: every event is exactly "event: <name>\ndata: <one-line JSON object>\n\n" with
 * data.type == name. Order: message_start once and first (or an error first); content blocks
 * with consecutive indexes from 0, each content_block_start → deltas of the block's own kind
 * (text_delta/text, input_json_delta/tool_use, thinking_delta/thinking) → content_block_stop,
 * one block open at a time; message_delta once with all blocks stopped; message_stop last; ping
 * anywhere after message_start. An error event ends the stream wherever it comes. In strict mode deltas must
 * go to the open block and every tool_use block's partial_json must join into a JSON object; the lenient mode
 * (fuzzing arbitrary providers) allows the documented late fragment to an already stopped tool_use block.
 */
#ifndef TG_ANTHROPIC_SSE_CHECK_H
#define TG_ANTHROPIC_SSE_CHECK_H

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/buf.h"

#define ASC_MAX_BLOCKS (1 << 16)

typedef struct asc_state {
    int started, delta_seen, stopped, errored;
    int n_blocks, open;        /* open = index of the open block or -1 */
    char kind[ASC_MAX_BLOCKS]; /* 't' text, 'u' tool_use, 'k' thinking */
    ad_buf_t json[64];         /* partial_json of the first 64 blocks */
    int strict;
    char why[256];
} asc_state_t;

__attribute__((format(printf, 2, 3))) static int asc_fail(asc_state_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    return -1;
}

static int asc_index(const json_t *ev)
{
    const json_t *i = json_object_get(ev, "index");
    return json_is_integer(i) && json_integer_value(i) >= 0 && json_integer_value(i) < ASC_MAX_BLOCKS
               ? (int)json_integer_value(i)
               : -1;
}

static int asc_block_start(asc_state_t *s, const json_t *ev)
{
    const json_t *cb = json_object_get(ev, "content_block");
    const char *t = json_string_value(json_object_get(cb, "type"));
    if (asc_index(ev) != s->n_blocks || s->open >= 0)
        return asc_fail(s, "%s: block index not consecutive or a block still open", "content_block_start");
    if (t == NULL)
        return asc_fail(s, "%s: no content_block.type", "content_block_start");
    if (strcmp(t, "text") == 0 && json_is_string(json_object_get(cb, "text")))
        s->kind[s->n_blocks] = 't';
    else if (strcmp(t, "thinking") == 0 && json_is_string(json_object_get(cb, "thinking")))
        s->kind[s->n_blocks] = 'k';
    else if (strcmp(t, "tool_use") == 0 && json_is_string(json_object_get(cb, "id")) &&
             json_is_string(json_object_get(cb, "name")) && json_is_object(json_object_get(cb, "input")) &&
             json_object_size(json_object_get(cb, "input")) == 0)
        s->kind[s->n_blocks] = 'u';
    else
        return asc_fail(s, "content_block_start: bad content_block %s", t);
    s->open = s->n_blocks++;
    return 0;
}

static int asc_block_delta(asc_state_t *s, const json_t *ev)
{
    int i = asc_index(ev);
    const json_t *d = json_object_get(ev, "delta");
    const char *t = json_string_value(json_object_get(d, "type"));
    if (i < 0 || i >= s->n_blocks || (s->strict && i != s->open))
        return asc_fail(s, "%s: delta for a block that is not open", "content_block_delta");
    if (t == NULL)
        return asc_fail(s, "%s: no delta.type", "content_block_delta");
    char k = s->kind[i];
    const char *key = k == 't' ? "text" : k == 'k' ? "thinking" : "partial_json";
    const char *want = k == 't' ? "text_delta" : k == 'k' ? "thinking_delta" : "input_json_delta";
    if (strcmp(t, want) != 0 || !json_is_string(json_object_get(d, key)))
        return asc_fail(s, "content_block_delta: %s does not fit its block", t);
    if (i != s->open && k != 'u')
        return asc_fail(s, "%s: late delta to a stopped non-tool block", "content_block_delta");
    if (k == 'u' && i < 64)
        ad_buf_puts(&s->json[i], json_string_value(json_object_get(d, key)));
    return 0;
}

static int asc_block_stop(asc_state_t *s, const json_t *ev)
{
    int i = asc_index(ev);
    if (i < 0 || i != s->open)
        return asc_fail(s, "%s: stop for a block that is not open", "content_block_stop");
    s->open = -1;
    if (s->strict && s->kind[i] == 'u' && i < 64) {
        json_t *in = json_loadb(s->json[i].data ? s->json[i].data : "{}", s->json[i].len ? s->json[i].len : 2,
                                0, NULL);
        int ok = json_is_object(in);
        json_decref(in);
        if (!ok)
            return asc_fail(s, "%s: tool input is not a JSON object", "content_block_stop");
    }
    return 0;
}

static int asc_message_delta(asc_state_t *s, const json_t *ev)
{
    const json_t *d = json_object_get(ev, "delta"), *u = json_object_get(ev, "usage");
    if (s->open >= 0 || s->delta_seen)
        return asc_fail(s, "%s: block still open or second message_delta", "message_delta");
    if (!json_is_string(json_object_get(d, "stop_reason")) ||
        !json_is_null(json_object_get(d, "stop_sequence")))
        return asc_fail(s, "%s: bad delta", "message_delta");
    if (!json_is_integer(json_object_get(u, "output_tokens")))
        return asc_fail(s, "%s: usage.output_tokens missing", "message_delta");
    s->delta_seen = 1;
    return 0;
}

static int asc_message_start(asc_state_t *s, const json_t *ev)
{
    const json_t *m = json_object_get(ev, "message");
    if (s->started)
        return asc_fail(s, "%s: twice", "message_start");
    if (!json_is_string(json_object_get(m, "id")) || !json_is_string(json_object_get(m, "model")) ||
        json_array_size(json_object_get(m, "content")) != 0 || !json_is_object(json_object_get(m, "usage")))
        return asc_fail(s, "%s: bad message", "message_start");
    s->started = 1;
    return 0;
}

static int asc_error(asc_state_t *s, const json_t *ev)
{
    const json_t *e = json_object_get(ev, "error");
    if (!json_is_string(json_object_get(e, "type")) || !json_is_string(json_object_get(e, "message")))
        return asc_fail(s, "%s: bad error object", "error");
    s->errored = 1;
    return 0;
}

static int asc_event(asc_state_t *s, const char *name, const json_t *ev)
{
    if (s->stopped || s->errored)
        return asc_fail(s, "%s after the end of the stream", name);
    if (strcmp(name, "error") == 0)
        return asc_error(s, ev);
    if (strcmp(name, "message_start") == 0)
        return asc_message_start(s, ev);
    if (!s->started)
        return asc_fail(s, "%s before message_start", name);
    if (strcmp(name, "ping") == 0)
        return 0;
    if (strcmp(name, "content_block_start") == 0)
        return s->delta_seen ? asc_fail(s, "%s after message_delta", name) : asc_block_start(s, ev);
    if (strcmp(name, "content_block_delta") == 0)
        return s->delta_seen ? asc_fail(s, "%s after message_delta", name) : asc_block_delta(s, ev);
    if (strcmp(name, "content_block_stop") == 0)
        return asc_block_stop(s, ev);
    if (strcmp(name, "message_delta") == 0)
        return asc_message_delta(s, ev);
    if (strcmp(name, "message_stop") == 0) {
        if (!s->delta_seen)
            return asc_fail(s, "%s before message_delta", name);
        s->stopped = 1;
        return 0;
    }
    return asc_fail(s, "unknown event %s", name);
}

/* One "event: X\ndata: J\n\n" block at p[*off..len). */
static int asc_block(asc_state_t *s, const char *p, size_t len, size_t *off)
{
    const char *b = p + *off, *end = p + len;
    if ((size_t)(end - b) < 7 || memcmp(b, "event: ", 7) != 0)
        return asc_fail(s, "%s", "expected \"event: \"");
    const char *nl = memchr(b, '\n', (size_t)(end - b));
    if (nl == NULL || (size_t)(end - nl) < 7 || memcmp(nl + 1, "data: ", 6) != 0)
        return asc_fail(s, "%s", "expected \"data: \" on the second line");
    char name[64];
    size_t nlen = (size_t)(nl - b - 7);
    if (nlen == 0 || nlen >= sizeof(name))
        return asc_fail(s, "%s", "bad event name");
    memcpy(name, b + 7, nlen);
    name[nlen] = '\0';
    const char *d = nl + 7, *dn = memchr(d, '\n', (size_t)(end - d));
    if (dn == NULL || dn + 1 >= end || dn[1] != '\n')
        return asc_fail(s, "%s: data line not followed by a blank line", name);
    json_t *ev = json_loadb(d, (size_t)(dn - d), JSON_ALLOW_NUL, NULL);
    int rc = !json_is_object(ev) ? asc_fail(s, "%s: data is not a JSON object", name)
             : !json_is_string(json_object_get(ev, "type")) ||
                     strcmp(json_string_value(json_object_get(ev, "type")), name) != 0
                 ? asc_fail(s, "%s: data.type differs from the event name", name)
                 : asc_event(s, name, ev);
    json_decref(ev);
    *off = (size_t)(dn + 2 - p);
    return rc;
}

/**
 * Checks p[0..len). complete: the stream must also be finished (message_stop or error last).
 * Returns 0, or -1 with the reason in why (cap bytes).
 */
static int asc_check(const char *p, size_t len, int strict, int complete, char *why, size_t cap)
{
    asc_state_t *s = calloc(1, sizeof(*s));
    s->open = -1;
    s->strict = strict;
    for (int i = 0; i < 64; i++)
        ad_buf_init(&s->json[i], 1 << 24);
    size_t off = 0;
    int rc = 0;
    while (off < len && rc == 0)
        rc = asc_block(s, p, len, &off);
    if (rc == 0 && complete && !s->stopped && !s->errored)
        rc = asc_fail(s, "%s", "stream does not end with message_stop or error");
    snprintf(why, cap, "%s", s->why);
    for (int i = 0; i < 64; i++)
        ad_buf_free(&s->json[i]);
    free(s);
    return rc;
}

#endif

/*
 * surface_anthropic.c — Tollgate as an Anthropic Messages API server (see surface.h).
 *
 * Anthropic SDK clients and Claude-Code-style tools send /v1/messages requests; we translate them
 * to OpenAI chat requests so any backend can answer, and translate the OpenAI answer back:
 * a chat.completion body into a message body, a chunk stream into Anthropic's event stream
 * (message_start, content blocks, message_delta, message_stop), OpenAI errors into Anthropic's
 * error shape. providers.md §3 is the reference for everything Anthropic-shaped here.
 *
 * Whole bodies are parsed with jansson: this is a translating path, and request bodies are
 * restructured too deeply (blocks split into several messages) for byte splicing. The stream
 * encoder parses one chunk at a time and writes its events by hand, so their bytes and key order
 * are fixed (tests compare them exactly).
 */
#include "adapters/surface.h"
#include "adapters/surface_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOOL_CALLS 1024   /* per streamed message; a stream with more is refused */
#define MAX_BLOCKS (1 << 20)  /* content blocks per streamed message */
#define MAX_TEXT (256u << 20) /* ceiling for joined text while translating */

/* ==== request: Anthropic → OpenAI ============================================================ */

typedef struct req {
    char *err;
    size_t errlen;
    json_t *msgs; /* the OpenAI messages being built */
} req_t;

/* Adds key → value (a new reference, may be NULL after an allocation failure) to obj. */
static int put(json_t *obj, const char *key, json_t *value)
{
    return value != NULL && json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

static int push(json_t *arr, json_t *value)
{
    return value != NULL && json_array_append_new(arr, value) == 0 ? 0 : -1;
}

static json_t *buf_string(const ad_buf_t *b)
{
    return json_stringn(b->len ? b->data : "", b->len);
}

/* json_pack's "o" steals its reference even when packing fails, so none of these leak. */
static json_t *message(const char *role, json_t *content)
{
    return json_pack("{s:s,s:o}", "role", role, "content", content);
}

/* "system": a string or text blocks (joined with a blank line) → one system message. */
static int take_system(req_t *r, const json_t *sys)
{
    if (sys == NULL || json_is_null(sys))
        return 0;
    if (!json_is_string(sys) && !json_is_array(sys))
        return ad_surf_fail(r->err, r->errlen,
                            "system: Input should be a valid string or a list of text blocks");
    ad_buf_t text;
    ad_buf_init(&text, MAX_TEXT);
    int rc = 0;
    for (size_t i = 0; json_is_array(sys) && i < json_array_size(sys) && rc == 0; i++) {
        const json_t *b = json_array_get(sys, i), *t = json_object_get(b, "text");
        if (!json_is_string(t))
            rc = ad_surf_fail(r->err, r->errlen, "system.%zu.text: Field required", i);
        else if ((i > 0 && ad_buf_puts(&text, "\n\n") != 0) || ad_surf_append_str(&text, t) != 0)
            rc = ad_surf_fail(r->err, r->errlen, "system: too large");
    }
    if (rc == 0 && json_is_string(sys) && ad_surf_append_str(&text, sys) != 0)
        rc = ad_surf_fail(r->err, r->errlen, "system: too large");
    if (rc == 0 && text.len > 0 && push(r->msgs, message("system", buf_string(&text))) != 0)
        rc = ad_surf_fail(r->err, r->errlen, "out of memory");
    ad_buf_free(&text);
    return rc;
}

static const char *block_type(const json_t *b)
{
    return json_string_value(json_object_get(b, "type"));
}

static json_t *image_url_part(const char *url, size_t len)
{
    return json_pack("{s:s,s:{s:s%}}", "type", "image_url", "image_url", "url", url, len);
}

/* "data:<media_type>;base64,<data>" from a base64 source (image or document). */
static int data_url(const json_t *src, const char *dflt_type, ad_buf_t *url)
{
    const json_t *mt = json_object_get(src, "media_type"), *data = json_object_get(src, "data");
    if (!json_is_string(data))
        return -1;
    int rc = ad_buf_puts(url, "data:");
    rc |= json_is_string(mt) ? ad_surf_append_str(url, mt) : ad_buf_puts(url, dflt_type);
    rc |= ad_buf_puts(url, ";base64,");
    return rc | ad_surf_append_str(url, data);
}

/* image block: base64 source → data: URL, url source → that URL. */
static json_t *image_part(req_t *r, const json_t *b, const char *path)
{
    const json_t *src = json_object_get(b, "source");
    const char *st = json_string_value(json_object_get(src, "type"));
    const json_t *url = json_object_get(src, "url");
    if (st != NULL && strcmp(st, "url") == 0 && json_is_string(url))
        return image_url_part(json_string_value(url), json_string_length(url));
    if (st == NULL || strcmp(st, "base64") != 0) {
        ad_surf_fail(r->err, r->errlen, "%s.source: an image source must be of type base64 or url", path);
        return NULL;
    }
    ad_buf_t u;
    ad_buf_init(&u, MAX_TEXT);
    json_t *p = NULL;
    if (data_url(src, "image/png", &u) != 0)
        ad_surf_fail(r->err, r->errlen, "%s.source.data: Field required", path);
    else if ((p = image_url_part(u.data, u.len)) == NULL)
        ad_surf_fail(r->err, r->errlen, "out of memory");
    ad_buf_free(&u);
    return p;
}

static json_t *text_part(const json_t *text)
{
    return json_pack("{s:s,s:O}", "type", "text", "text", text);
}

/* document block: plain-text source → text part; base64 (PDF) → OpenAI file part. */
static json_t *document_part(req_t *r, const json_t *b, const char *path)
{
    const json_t *src = json_object_get(b, "source"), *title = json_object_get(b, "title");
    const char *st = json_string_value(json_object_get(src, "type"));
    if (st != NULL && strcmp(st, "text") == 0 && json_is_string(json_object_get(src, "data")))
        return text_part(json_object_get(src, "data"));
    ad_buf_t u;
    ad_buf_init(&u, MAX_TEXT);
    json_t *p = NULL;
    if (st == NULL || strcmp(st, "base64") != 0 || data_url(src, "application/pdf", &u) != 0)
        ad_surf_fail(r->err, r->errlen, "%s.source: only text and base64 document sources are supported",
                     path);
    else if ((p = json_pack("{s:s,s:{s:s,s:s%}}", "type", "file", "file", "filename",
                            json_is_string(title) ? json_string_value(title) : "document.pdf", "file_data",
                            u.data, u.len)) == NULL)
        ad_surf_fail(r->err, r->errlen, "out of memory");
    ad_buf_free(&u);
    return p;
}

/* tool_result block → {"role":"tool","tool_call_id","content"}; is_error → "Error: " prefix.
 * OpenAI tool messages hold text only, so images in a result (screenshots) go into parts, the
 * user message that follows the tool messages of this turn. */
static int take_tool_result(req_t *r, const json_t *b, const char *path, json_t *parts)
{
    const json_t *id = json_object_get(b, "tool_use_id"), *content = json_object_get(b, "content");
    if (!json_is_string(id))
        return ad_surf_fail(r->err, r->errlen, "%s.tool_use_id: Field required", path);
    ad_buf_t text;
    ad_buf_init(&text, MAX_TEXT);
    int rc = json_is_true(json_object_get(b, "is_error")) ? ad_buf_puts(&text, "Error: ") : 0;
    rc |= ad_surf_content_text(content, "\n", &text);
    json_t *m =
        rc == 0 ? json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id, "content", buf_string(&text))
                : NULL;
    ad_buf_free(&text);
    if (push(r->msgs, m) != 0)
        return ad_surf_fail(r->err, r->errlen, "%s: could not translate the tool result", path);
    for (size_t k = 0; k < json_array_size(content); k++) {
        const json_t *blk = json_array_get(content, k);
        const char *type = block_type(blk);
        char sub[96];
        snprintf(sub, sizeof(sub), "%s.content.%zu", path, k);
        if (type != NULL && strcmp(type, "image") == 0 && push(parts, image_part(r, blk, sub)) != 0)
            return r->errlen > 0 && r->err[0] ? -1 : ad_surf_fail(r->err, r->errlen, "out of memory");
    }
    return 0;
}

/* One user-turn block that becomes a content part (or nothing). -1 with err on a bad block. */
static int user_part(req_t *r, const json_t *b, const char *type, const char *path, json_t *parts)
{
    json_t *p = NULL;
    if (strcmp(type, "text") == 0) {
        if (!json_is_string(json_object_get(b, "text")))
            return ad_surf_fail(r->err, r->errlen, "%s.text: Field required", path);
        p = text_part(json_object_get(b, "text"));
    } else if (strcmp(type, "image") == 0) {
        if ((p = image_part(r, b, path)) == NULL)
            return -1;
    } else if (strcmp(type, "document") == 0) {
        if ((p = document_part(r, b, path)) == NULL)
            return -1;
    } else if (strcmp(type, "tool_use") == 0) {
        return ad_surf_fail(r->err, r->errlen, "%s: tool_use blocks are only allowed in assistant turns",
                            path);
    } else {
        return 0; /* thinking, redacted_thinking, server-tool results, unknown: dropped */
    }
    return push(parts, p) == 0 ? 0 : ad_surf_fail(r->err, r->errlen, "out of memory");
}

/* A user turn: its tool_result blocks first, as tool messages, then the rest as one message
 * (a lone text block as a plain string, the form every OpenAI-compatible server accepts). */
static int user_turn(req_t *r, const json_t *content, size_t mi)
{
    json_t *parts = json_array();
    char path[64];
    int rc = parts == NULL ? ad_surf_fail(r->err, r->errlen, "out of memory") : 0;
    for (size_t j = 0; j < json_array_size(content) && rc == 0; j++) {
        const json_t *b = json_array_get(content, j);
        const char *type = block_type(b);
        snprintf(path, sizeof(path), "messages.%zu.content.%zu", mi, j);
        if (type == NULL)
            rc = ad_surf_fail(r->err, r->errlen, "%s.type: Field required", path);
        else if (strcmp(type, "tool_result") == 0)
            rc = take_tool_result(r, b, path, parts);
        else
            rc = user_part(r, b, type, path, parts);
    }
    if (rc == 0 && json_array_size(parts) > 0) {
        const json_t *only = json_array_size(parts) == 1 ? json_array_get(parts, 0) : NULL;
        json_t *c = only != NULL && strcmp(block_type(only), "text") == 0
                        ? json_copy(json_object_get(only, "text"))
                        : json_incref(parts);
        if (push(r->msgs, message("user", c)) != 0)
            rc = ad_surf_fail(r->err, r->errlen, "out of memory");
    }
    json_decref(parts);
    return rc;
}

/* tool_use block → {"id","type":"function","function":{"name","arguments": input as JSON text}} */
static int take_tool_use(req_t *r, const json_t *b, const char *path, json_t *calls)
{
    const json_t *id = json_object_get(b, "id"), *name = json_object_get(b, "name"),
                 *input = json_object_get(b, "input");
    if (!json_is_string(id) || !json_is_string(name))
        return ad_surf_fail(r->err, r->errlen, "%s: a tool_use block needs a string id and name", path);
    ad_buf_t args;
    ad_buf_init(&args, MAX_TEXT);
    int rc = input != NULL ? ad_surf_write_json(input, &args) : ad_buf_puts(&args, "{}");
    json_t *call = rc == 0 ? json_pack("{s:O,s:s,s:{s:O,s:s%}}", "id", id, "type", "function", "function",
                                       "name", name, "arguments", args.data, args.len)
                           : NULL;
    ad_buf_free(&args);
    return push(calls, call) == 0
               ? 0
               : ad_surf_fail(r->err, r->errlen, "%s: could not translate the tool call", path);
}

/* One assistant-turn block: text is appended to text, tool_use to calls; the rest is dropped. */
static int assistant_block(req_t *r, const json_t *b, const char *path, ad_buf_t *text, int *n_text,
                           json_t *calls)
{
    const char *type = block_type(b);
    if (type == NULL)
        return ad_surf_fail(r->err, r->errlen, "%s.type: Field required", path);
    if (strcmp(type, "text") == 0) {
        const json_t *t = json_object_get(b, "text");
        if (!json_is_string(t))
            return ad_surf_fail(r->err, r->errlen, "%s.text: Field required", path);
        if ((*n_text > 0 && ad_buf_puts(text, "\n\n") != 0) || ad_surf_append_str(text, t) != 0)
            return ad_surf_fail(r->err, r->errlen, "%s: too large", path);
        (*n_text)++;
        return 0;
    }
    if (strcmp(type, "tool_use") == 0)
        return take_tool_use(r, b, path, calls);
    if (strcmp(type, "tool_result") == 0)
        return ad_surf_fail(r->err, r->errlen, "%s: tool_result blocks are only allowed in user turns", path);
    return 0;
}

/* An assistant turn: text blocks joined into content, tool_use blocks into tool_calls. */
static int assistant_turn(req_t *r, const json_t *content, size_t mi)
{
    ad_buf_t text;
    ad_buf_init(&text, MAX_TEXT);
    json_t *calls = json_array();
    int n_text = 0, rc = calls == NULL ? ad_surf_fail(r->err, r->errlen, "out of memory") : 0;
    char path[64];
    for (size_t j = 0; j < json_array_size(content) && rc == 0; j++) {
        snprintf(path, sizeof(path), "messages.%zu.content.%zu", mi, j);
        rc = assistant_block(r, json_array_get(content, j), path, &text, &n_text, calls);
    }
    if (rc == 0) {
        size_t nc = json_array_size(calls);
        /* OpenAI wants content unless there are tool_calls: "" keeps a thinking-only turn valid */
        json_t *c = n_text > 0 ? buf_string(&text) : nc > 0 ? json_null() : json_string("");
        if (push(r->msgs, json_pack("{s:s,s:o,s:O*}", "role", "assistant", "content", c, "tool_calls",
                                    nc > 0 ? calls : NULL)) != 0)
            rc = ad_surf_fail(r->err, r->errlen, "out of memory");
    }
    json_decref(calls);
    ad_buf_free(&text);
    return rc;
}

static int take_message(req_t *r, const json_t *m, size_t mi)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    if (!json_is_object(m))
        return ad_surf_fail(r->err, r->errlen, "messages.%zu: Input should be a valid object", mi);
    if (role == NULL || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0))
        return ad_surf_fail(r->err, r->errlen, "messages.%zu.role: Input should be 'user' or 'assistant'",
                            mi);
    if (json_is_string(content))
        return push(r->msgs, message(role, json_copy((json_t *)content))) == 0
                   ? 0
                   : ad_surf_fail(r->err, r->errlen, "out of memory");
    if (!json_is_array(content))
        return ad_surf_fail(r->err, r->errlen, "messages.%zu.content: Input should be a valid string or list",
                            mi);
    return role[0] == 'u' ? user_turn(r, content, mi) : assistant_turn(r, content, mi);
}

static int take_messages(req_t *r, const json_t *msgs)
{
    if (msgs == NULL)
        return ad_surf_fail(r->err, r->errlen, "messages: Field required");
    if (!json_is_array(msgs))
        return ad_surf_fail(r->err, r->errlen, "messages: Input should be a valid list");
    if (json_array_size(msgs) == 0)
        return ad_surf_fail(r->err, r->errlen, "messages: at least one message is required");
    for (size_t i = 0; i < json_array_size(msgs); i++)
        if (take_message(r, json_array_get(msgs, i), i) != 0)
            return -1;
    return 0;
}

/* {name, description, input_schema} → {"type":"function","function":{name, description,
 * parameters}}. Anthropic server tools (a type other than custom, no input_schema) cannot run on
 * another backend and are left out. */
static int take_tool(req_t *r, const json_t *t, size_t i, json_t *tools)
{
    const json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
    const char *type = json_string_value(json_object_get(t, "type"));
    if (!json_is_object(t))
        return ad_surf_fail(r->err, r->errlen, "tools.%zu: Input should be a valid object", i);
    if (schema == NULL && type != NULL && strcmp(type, "custom") != 0)
        return 0;
    if (!json_is_string(name))
        return ad_surf_fail(r->err, r->errlen, "tools.%zu.name: Field required", i);
    if (!json_is_object(schema))
        return ad_surf_fail(r->err, r->errlen, "tools.%zu.input_schema: Field required", i);
    const json_t *desc = json_object_get(t, "description");
    json_t *tool = json_pack("{s:s,s:{s:O,s:O*,s:O}}", "type", "function", "function", "name", name,
                             "description", json_is_string(desc) ? desc : NULL, "parameters", schema);
    return push(tools, tool) == 0 ? 0 : ad_surf_fail(r->err, r->errlen, "out of memory");
}

/* OpenAI's tool_choice for Anthropic's; NULL with err set when invalid. */
static json_t *tool_choice(req_t *r, const json_t *tc)
{
    const char *type = json_string_value(json_object_get(tc, "type"));
    const json_t *name = json_object_get(tc, "name");
    if (type == NULL) {
        ad_surf_fail(r->err, r->errlen, "tool_choice.type: Field required");
        return NULL;
    }
    if (strcmp(type, "auto") == 0 || strcmp(type, "none") == 0)
        return json_string(type);
    if (strcmp(type, "any") == 0)
        return json_string("required");
    if (strcmp(type, "tool") != 0) {
        ad_surf_fail(r->err, r->errlen, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'");
        return NULL;
    }
    if (!json_is_string(name)) {
        ad_surf_fail(r->err, r->errlen, "tool_choice.name: Field required");
        return NULL;
    }
    return json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name);
}

/* tools, tool_choice, disable_parallel_tool_use. tool_choice and parallel_tool_calls are only
 * sent with a non-empty tools list: OpenAI rejects them otherwise. */
static int take_tools(req_t *r, const json_t *in, json_t *out)
{
    const json_t *tools = json_object_get(in, "tools"), *tc = json_object_get(in, "tool_choice");
    if (tools != NULL && !json_is_null(tools) && !json_is_array(tools))
        return ad_surf_fail(r->err, r->errlen, "tools: Input should be a valid list");
    if (tc != NULL && !json_is_null(tc) && !json_is_object(tc))
        return ad_surf_fail(r->err, r->errlen, "tool_choice: Input should be a valid object");
    json_t *list = json_array();
    for (size_t i = 0; i < json_array_size(tools); i++)
        if (take_tool(r, json_array_get(tools, i), i, list) != 0) {
            json_decref(list);
            return -1;
        }
    json_t *choice = json_is_object(tc) ? tool_choice(r, tc) : NULL;
    if (json_is_object(tc) && choice == NULL) {
        json_decref(list);
        return -1;
    }
    int rc = 0;
    if (json_array_size(list) > 0) {
        rc |= put(out, "tools", json_incref(list));
        if (choice != NULL)
            rc |= put(out, "tool_choice", json_incref(choice));
        if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
            rc |= put(out, "parallel_tool_calls", json_false());
    }
    json_decref(list);
    json_decref(choice);
    return rc == 0 ? 0 : ad_surf_fail(r->err, r->errlen, "out of memory");
}

static int take_number(req_t *r, const json_t *in, const char *key, json_t *out)
{
    const json_t *v = json_object_get(in, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return ad_surf_fail(r->err, r->errlen, "%s: Input should be a valid number", key);
    return put(out, key, json_copy((json_t *)v));
}

/* max_tokens (required), temperature, top_p, stop_sequences → stop, metadata.user_id → user. */
static int take_sampling(req_t *r, const json_t *in, json_t *out)
{
    const json_t *mt = json_object_get(in, "max_tokens"), *stop = json_object_get(in, "stop_sequences");
    const json_t *meta = json_object_get(in, "metadata");
    if (mt == NULL)
        return ad_surf_fail(r->err, r->errlen, "max_tokens: Field required");
    if (!json_is_integer(mt) || json_integer_value(mt) < 1)
        return ad_surf_fail(r->err, r->errlen,
                            "max_tokens: Input should be an integer greater than or equal to 1");
    if (put(out, "max_tokens", json_copy((json_t *)mt)) != 0 || take_number(r, in, "temperature", out) != 0 ||
        take_number(r, in, "top_p", out) != 0)
        return -1;
    if (stop != NULL && !json_is_null(stop)) {
        if (!json_is_array(stop))
            return ad_surf_fail(r->err, r->errlen, "stop_sequences: Input should be a valid list");
        for (size_t i = 0; i < json_array_size(stop); i++)
            if (!json_is_string(json_array_get(stop, i)))
                return ad_surf_fail(r->err, r->errlen, "stop_sequences.%zu: Input should be a valid string",
                                    i);
        if (json_array_size(stop) > 0 && put(out, "stop", json_copy((json_t *)stop)) != 0)
            return -1;
    }
    if (json_is_string(json_object_get(meta, "user_id")))
        return put(out, "user", json_copy(json_object_get(meta, "user_id")));
    return 0;
}

static int take_stream(req_t *r, const json_t *in, json_t *out)
{
    const json_t *s = json_object_get(in, "stream");
    if (s == NULL || json_is_null(s) || json_is_false(s))
        return 0;
    if (!json_is_true(s))
        return ad_surf_fail(r->err, r->errlen, "stream: Input should be a valid boolean");
    /* usage arrives only with include_usage, and the message_delta event needs it */
    return put(out, "stream", json_true()) |
           put(out, "stream_options", json_pack("{s:b}", "include_usage", 1));
}

static int translate_request(req_t *r, const json_t *in, json_t *out)
{
    const json_t *model = json_object_get(in, "model");
    if (!json_is_string(model) || json_string_length(model) == 0)
        return ad_surf_fail(r->err, r->errlen, "model: Field required");
    if (put(out, "model", json_copy((json_t *)model)) != 0 || put(out, "messages", json_incref(r->msgs)) != 0)
        return ad_surf_fail(r->err, r->errlen, "out of memory");
    if (take_system(r, json_object_get(in, "system")) != 0 ||
        take_messages(r, json_object_get(in, "messages")) != 0)
        return -1;
    if (take_sampling(r, in, out) != 0 || take_tools(r, in, out) != 0 || take_stream(r, in, out) != 0) {
        if (r->errlen > 0 && r->err[0] == '\0')
            ad_surf_fail(r->err, r->errlen, "out of memory");
        return -1;
    }
    return 0;
}

int ad_anthropic_in_request(const char *body, size_t len, ad_buf_t *openai_body, char *err, size_t errlen)
{
    json_error_t je;
    if (errlen > 0)
        err[0] = '\0';
    json_t *in = ad_surf_parse(body, len, &je);
    if (!json_is_object(in)) {
        json_decref(in);
        return ad_surf_fail(err, errlen, "request body is not a valid JSON object");
    }
    req_t r = {err, errlen, json_array()};
    json_t *out = json_object();
    int rc = r.msgs != NULL && out != NULL ? translate_request(&r, in, out)
                                           : ad_surf_fail(err, errlen, "out of memory");
    int wrc = rc == 0 ? ad_surf_write_json(out, openai_body) : 0;
    if (wrc == -2)
        rc = ad_surf_fail(err, errlen, "request nests JSON deeper than %d levels", AD_JSON_MAX_DEPTH);
    else if (wrc != 0)
        rc = ad_surf_fail(err, errlen, "request too large to translate");
    json_decref(r.msgs);
    json_decref(out);
    json_decref(in);
    return rc;
}

/* ==== shared mappings ======================================================================== */

const char *ad_anthropic_stop_reason(const char *finish_reason, int has_tool_calls)
{
    static const struct {
        const char *oai, *ant;
    } map[] = {
        {"stop", "end_turn"},          {"length", "max_tokens"},      {"tool_calls", "tool_use"},
        {"function_call", "tool_use"}, {"content_filter", "refusal"},
    };
    const char *ant = "end_turn";
    for (size_t i = 0; finish_reason != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].oai, finish_reason) == 0)
            ant = map[i].ant;
    if (has_tool_calls && strcmp(ant, "end_turn") == 0)
        ant = "tool_use";
    return ant;
}

const char *ad_anthropic_error_type(int status)
{
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 402:
        return "billing_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 503:
    case 529:
        return "overloaded_error";
    default:
        return status >= 400 && status < 500 ? "invalid_request_error" : "api_error";
    }
}

static const char *const anthropic_types[] = {
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large",     "rate_limit_error",     "api_error",     "timeout_error",    "overloaded_error",
};

/* Substrings of OpenAI (and gateway) error types and codes, in priority order. */
static const struct {
    const char *needle, *type;
} error_words[] = {
    {"rate_limit", "rate_limit_error"},
    {"quota", "rate_limit_error"},
    {"authentication", "authentication_error"},
    {"api_key", "authentication_error"},
    {"permission", "permission_error"},
    {"forbidden", "permission_error"},
    {"not_found", "not_found_error"},
    {"overloaded", "overloaded_error"},
    {"unavailable", "overloaded_error"},
    {"too_large", "request_too_large"},
    {"context_length", "invalid_request_error"},
    {"invalid_request", "invalid_request_error"},
    {"invalid_json", "invalid_request_error"},
};

static const char *match_words(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(error_words) / sizeof(error_words[0]); i++)
        if (strstr(s, error_words[i].needle) != NULL)
            return error_words[i].type;
    return NULL;
}

const char *ad_anthropic_error_type_for(const char *oai_type, const char *oai_code)
{
    const char *t = match_words(oai_code);
    if (t != NULL)
        return t;
    for (size_t i = 0; oai_type != NULL && i < sizeof(anthropic_types) / sizeof(anthropic_types[0]); i++)
        if (strcmp(oai_type, anthropic_types[i]) == 0)
            return anthropic_types[i];
    t = match_words(oai_type);
    return t != NULL ? t : "api_error";
}

/* "msg_" + the OpenAI id without "chatcmpl-" ("msg_…" ids are kept). */
static void make_msg_id(char *dst, size_t cap, const char *oai_id)
{
    if (oai_id == NULL || oai_id[0] == '\0')
        oai_id = "tollgate";
    if (strncmp(oai_id, "msg_", 4) == 0) {
        snprintf(dst, cap, "%s", oai_id);
        return;
    }
    if (strncmp(oai_id, "chatcmpl-", 9) == 0 && oai_id[9] != '\0')
        oai_id += 9;
    snprintf(dst, cap, "msg_%s", oai_id);
}

/* ==== errors ================================================================================= */

/* {"type":"error","error":{"type":T,"message":M}} */
static int error_json(ad_buf_t *out, const char *type, const char *message)
{
    int rc = ad_buf_puts(out, "{\"type\":\"error\",\"error\":{\"type\":");
    rc |= ad_surf_json_str(out, type, strlen(type));
    rc |= ad_buf_puts(out, ",\"message\":");
    rc |= ad_surf_json_str(out, message, strlen(message));
    return rc | ad_buf_puts(out, "}}");
}

int ad_anthropic_error_body(int status, const char *openai_error_json, size_t len, ad_buf_t *out)
{
    json_t *root = ad_surf_parse(openai_error_json, len, NULL);
    const char *msg, *type, *code;
    char fallback[48];
    ad_surf_error_fields(root, &msg, &type, &code);
    if (msg == NULL) {
        snprintf(fallback, sizeof(fallback), "HTTP %d", status);
        msg = fallback;
    }
    size_t mark = out->len;
    int rc = error_json(out, ad_anthropic_error_type(status), msg);
    json_decref(root);
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc ? -1 : 0;
}

int ad_anthropic_enc_error(const char *openai_error_json, size_t len, ad_buf_t *out)
{
    json_t *root = ad_surf_parse(openai_error_json, len, NULL);
    const char *msg, *type, *code;
    ad_surf_error_fields(root, &msg, &type, &code);
    size_t mark = out->len;
    int rc = ad_buf_puts(out, "event: error\ndata: ");
    rc |= error_json(out, ad_anthropic_error_type_for(type, code), msg != NULL ? msg : "upstream error");
    rc |= ad_buf_puts(out, "\n\n");
    json_decref(root);
    if (rc != 0)
        ad_surf_truncate(out, mark);
    return rc ? -1 : 0;
}

/* ==== non-stream response: OpenAI → Anthropic ================================================ */

/* tool call → {"type":"tool_use","id","name","input"}; arguments that are not a JSON object
 * become {} (the model's output may be invalid; Anthropic's input is always an object). */
static json_t *tool_use_block(const json_t *call, size_t i)
{
    const json_t *fn = json_object_get(call, "function");
    const json_t *id = json_object_get(call, "id"), *name = json_object_get(fn, "name");
    const json_t *args = json_object_get(fn, "arguments");
    json_t *input =
        json_is_string(args) ? ad_surf_parse(json_string_value(args), json_string_length(args), NULL) : NULL;
    if (!json_is_object(input)) {
        json_decref(input);
        input = json_object();
    }
    char gen[32];
    snprintf(gen, sizeof(gen), "toolu_%zu", i);
    return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id",
                     json_is_string(id) ? json_string_value(id) : gen, "name",
                     json_is_string(name) ? json_string_value(name) : "", "input", input);
}

static int text_block(json_t *content, const char *type, const char *key, const ad_buf_t *text)
{
    if (text->len == 0)
        return 0;
    json_t *b = json_pack("{s:s,s:o}", "type", type, key, buf_string(text));
    if (b != NULL && strcmp(type, "thinking") == 0 && put(b, "signature", json_string("")) != 0) {
        json_decref(b);
        return -1;
    }
    return push(content, b);
}

/* content: [thinking][text][tool_use…]; *n_calls = tool calls seen */
static json_t *response_content(const json_t *msg, size_t *n_calls)
{
    json_t *content = json_array();
    ad_buf_t think, text;
    ad_buf_init(&think, MAX_TEXT);
    ad_buf_init(&text, MAX_TEXT);
    const json_t *r = json_object_get(msg, "reasoning_content");
    int rc = ad_surf_append_str(&think, json_is_string(r) ? r : json_object_get(msg, "reasoning"));
    rc |= ad_surf_content_text(json_object_get(msg, "content"), "", &text);
    if (text.len == 0) /* a refusal is what the model said instead of content */
        rc |= ad_surf_append_str(&text, json_object_get(msg, "refusal"));
    rc |= text_block(content, "thinking", "thinking", &think);
    rc |= text_block(content, "text", "text", &text);
    const json_t *calls = json_object_get(msg, "tool_calls");
    for (size_t i = 0; i < json_array_size(calls) && rc == 0; i++)
        rc |= push(content, tool_use_block(json_array_get(calls, i), i));
    *n_calls = json_array_size(calls);
    ad_buf_free(&think);
    ad_buf_free(&text);
    if (rc != 0 || content == NULL) {
        json_decref(content);
        return NULL;
    }
    return content;
}

/* OpenAI usage → Anthropic's, whose input_tokens exclude cache reads. */
static json_t *anthropic_usage(const json_t *u)
{
    int64_t prompt = ad_surf_int(u, "prompt_tokens", 0), out = ad_surf_int(u, "completion_tokens", 0);
    int64_t cached = ad_surf_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens", 0);
    cached = cached < 0 ? 0 : cached > prompt ? (prompt > 0 ? prompt : 0) : cached;
    int64_t input = prompt - cached > 0 ? prompt - cached : 0;
    return json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", (json_int_t)input, "output_tokens",
                     (json_int_t)(out > 0 ? out : 0), "cache_creation_input_tokens", (json_int_t)0,
                     "cache_read_input_tokens", (json_int_t)cached);
}

static json_t *translate_response(const json_t *root, const char *model)
{
    const json_t *choice = json_array_get(json_object_get(root, "choices"), 0);
    const json_t *msg = json_object_get(choice, "message");
    if (!json_is_object(msg))
        return NULL;
    char id[160];
    make_msg_id(id, sizeof(id), json_string_value(json_object_get(root, "id")));
    if (model == NULL || model[0] == '\0')
        model = json_is_string(json_object_get(root, "model"))
                    ? json_string_value(json_object_get(root, "model"))
                    : "";
    size_t n_calls = 0;
    json_t *content = response_content(msg, &n_calls);
    const char *stop =
        ad_anthropic_stop_reason(json_string_value(json_object_get(choice, "finish_reason")), n_calls > 0);
    if (content == NULL)
        return NULL;
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:n,s:o}", "id", id, "type", "message", "role", "assistant",
                     "model", model, "content", content, "stop_reason", stop, "stop_sequence", "usage",
                     anthropic_usage(json_object_get(root, "usage")));
}

int ad_anthropic_in_response(const char *openai_body, size_t len, const char *model, ad_buf_t *out)
{
    json_t *root = ad_surf_parse(openai_body, len, NULL);
    json_t *msg = json_is_object(root) ? translate_response(root, model) : NULL;
    int rc = msg != NULL ? ad_surf_write_json(msg, out) : -1;
    json_decref(msg);
    json_decref(root);
    return rc;
}

/* ==== stream encoder: OpenAI chunks → Anthropic SSE ========================================== */

enum { K_NONE, K_TEXT, K_THINKING, K_TOOL };

void ad_anthropic_enc_init(ad_anthropic_enc_t *e, const char *model, const char *msg_id)
{
    memset(e, 0, sizeof(*e));
    e->open_block = -1;
    e->usage = (ad_usage_t){-1, -1, -1, -1};
    snprintf(e->model, sizeof(e->model), "%s", model != NULL ? model : "");
    if (msg_id != NULL && msg_id[0] != '\0')
        make_msg_id(e->msg_id, sizeof(e->msg_id), msg_id);
}

void ad_anthropic_enc_free(ad_anthropic_enc_t *e)
{
    free(e->tools);
    e->tools = NULL;
    e->n_tools = e->cap_tools = 0;
}

/* "event: <type>\ndata: {"type":"<type>"" — the caller adds the rest and ev_end. */
static int ev_begin(ad_buf_t *out, const char *type)
{
    return ad_buf_appendf(out, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static int ev_end(ad_buf_t *out)
{
    return ad_buf_puts(out, "}\n\n");
}

static int ensure_started(ad_anthropic_enc_t *e, ad_buf_t *out)
{
    if (e->started)
        return 0;
    if (e->msg_id[0] == '\0')
        make_msg_id(e->msg_id, sizeof(e->msg_id), NULL);
    e->started = 1;
    int rc = ev_begin(out, "message_start");
    rc |= ad_buf_puts(out, ",\"message\":{\"id\":");
    rc |= ad_surf_json_str(out, e->msg_id, strlen(e->msg_id));
    rc |= ad_buf_puts(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    rc |= ad_surf_json_str(out, e->model, strlen(e->model));
    rc |= ad_buf_puts(
        out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
             "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}");
    return rc | ev_end(out);
}

static int close_block(ad_anthropic_enc_t *e, ad_buf_t *out)
{
    if (e->open_block < 0)
        return 0;
    int rc = ev_begin(out, "content_block_stop");
    rc |= ad_buf_appendf(out, ",\"index\":%d", e->open_block);
    e->open_block = -1;
    e->open_kind = K_NONE;
    return rc | ev_end(out);
}

/* Stops the open block and starts a new one; block_json is the content_block object. */
static int open_block(ad_anthropic_enc_t *e, ad_buf_t *out, int kind, const char *block_json)
{
    if (e->n_blocks >= MAX_BLOCKS)
        return -1;
    int rc = ensure_started(e, out) | close_block(e, out);
    e->open_block = e->n_blocks++;
    e->open_kind = kind;
    rc |= ev_begin(out, "content_block_start");
    rc |= ad_buf_appendf(out, ",\"index\":%d,\"content_block\":", e->open_block);
    rc |= ad_buf_puts(out, block_json);
    return rc | ev_end(out);
}

/* content_block_delta {"type":delta_type, key: s} for block index */
static int block_delta(ad_buf_t *out, int index, const char *delta_type, const char *key, const char *s,
                       size_t n)
{
    int rc = ev_begin(out, "content_block_delta");
    rc |= ad_buf_appendf(out, ",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":", index, delta_type, key);
    rc |= ad_surf_json_str(out, s, n);
    return rc | ad_buf_puts(out, "}") | ev_end(out);
}

/* A text or reasoning piece: continues the open block of that kind or opens one. */
static int text_piece(ad_anthropic_enc_t *e, ad_buf_t *out, int kind, const json_t *s)
{
    if (!json_is_string(s) || json_string_length(s) == 0)
        return 0;
    if (e->open_kind != kind) {
        const char *block = kind == K_TEXT ? "{\"type\":\"text\",\"text\":\"\"}"
                                           : "{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}";
        if (open_block(e, out, kind, block) != 0)
            return -1;
    }
    return block_delta(out, e->open_block, kind == K_TEXT ? "text_delta" : "thinking_delta",
                       kind == K_TEXT ? "text" : "thinking", json_string_value(s), json_string_length(s));
}

static ad_anthropic_tool_t *find_tool(ad_anthropic_enc_t *e, int64_t oai_index)
{
    for (size_t i = 0; i < e->n_tools; i++)
        if (e->tools[i].oai_index == oai_index)
            return &e->tools[i];
    return NULL;
}

static ad_anthropic_tool_t *add_tool(ad_anthropic_enc_t *e, int64_t oai_index)
{
    if (e->n_tools == e->cap_tools) {
        size_t ncap = e->cap_tools ? e->cap_tools * 2 : 4;
        if (ncap > MAX_TOOL_CALLS)
            return NULL;
        ad_anthropic_tool_t *t = realloc(e->tools, ncap * sizeof(*t));
        if (t == NULL)
            return NULL;
        e->tools = t;
        e->cap_tools = ncap;
    }
    ad_anthropic_tool_t *t = &e->tools[e->n_tools++];
    t->oai_index = oai_index;
    t->block = e->n_blocks; /* open_block gives it this index next */
    return t;
}

/* The OpenAI index of a tool_calls entry. Servers that omit it send each call whole, with an id:
 * an entry with an id is then a new call, one without continues the latest. */
static int64_t tool_index(const ad_anthropic_enc_t *e, const json_t *tc)
{
    const json_t *idx = json_object_get(tc, "index");
    if (json_is_integer(idx))
        return (int64_t)json_integer_value(idx);
    int64_t max = -1;
    for (size_t i = 0; i < e->n_tools; i++)
        max = e->tools[i].oai_index > max ? e->tools[i].oai_index : max;
    if (json_is_string(json_object_get(tc, "id")) && max < INT64_MAX)
        return max + 1;
    return max < 0 ? 0 : max;
}

/* content_block_start for a new tool_use block {id, name, input {}}. */
static int start_tool(ad_anthropic_enc_t *e, ad_buf_t *out, const json_t *tc, int64_t index)
{
    const json_t *id = json_object_get(tc, "id");
    const json_t *name = json_object_get(json_object_get(tc, "function"), "name");
    char gen[200];
    snprintf(gen, sizeof(gen), "toolu_%s_%lld", e->msg_id + (strncmp(e->msg_id, "msg_", 4) == 0 ? 4 : 0),
             (long long)index);
    ad_buf_t b;
    ad_buf_init(&b, 64 * 1024);
    int rc = ad_buf_puts(&b, "{\"type\":\"tool_use\",\"id\":");
    rc |= json_string_length(id) > 0 ? ad_surf_json_str(&b, json_string_value(id), json_string_length(id))
                                     : ad_surf_json_str(&b, gen, strlen(gen));
    rc |= ad_buf_puts(&b, ",\"name\":");
    rc |= json_is_string(name) ? ad_surf_json_str(&b, json_string_value(name), json_string_length(name))
                               : ad_buf_puts(&b, "\"\"");
    rc |= ad_buf_puts(&b, ",\"input\":{}}");
    if (rc == 0)
        rc = open_block(e, out, K_TOOL, b.data);
    ad_buf_free(&b);
    return rc;
}

static int tool_piece(ad_anthropic_enc_t *e, ad_buf_t *out, const json_t *tc)
{
    if (!json_is_object(tc))
        return 0;
    int64_t index = tool_index(e, tc);
    ad_anthropic_tool_t *t = find_tool(e, index);
    if (t == NULL) { /* started first: a generated tool id is derived from the message id */
        if (ensure_started(e, out) != 0 || (t = add_tool(e, index)) == NULL ||
            start_tool(e, out, tc, index) != 0)
            return -1;
    }
    const json_t *args = json_object_get(json_object_get(tc, "function"), "arguments");
    if (!json_is_string(args) || json_string_length(args) == 0)
        return 0;
    return block_delta(out, t->block, "input_json_delta", "partial_json", json_string_value(args),
                       json_string_length(args));
}

static void take_usage(ad_anthropic_enc_t *e, const json_t *u)
{
    if (!json_is_object(u))
        return;
    e->usage.prompt_tokens = ad_surf_int(u, "prompt_tokens", e->usage.prompt_tokens);
    e->usage.completion_tokens = ad_surf_int(u, "completion_tokens", e->usage.completion_tokens);
    e->usage.cached_tokens =
        ad_surf_int(json_object_get(u, "prompt_tokens_details"), "cached_tokens", e->usage.cached_tokens);
    e->usage.reasoning_tokens = ad_surf_int(json_object_get(u, "completion_tokens_details"),
                                            "reasoning_tokens", e->usage.reasoning_tokens);
}

/* delta: reasoning first, then text (refusal text too), then tool call fragments. */
static int take_delta(ad_anthropic_enc_t *e, ad_buf_t *out, const json_t *delta)
{
    const json_t *r = json_object_get(delta, "reasoning_content");
    int rc = text_piece(e, out, K_THINKING, json_is_string(r) ? r : json_object_get(delta, "reasoning"));
    rc |= rc ? 0 : text_piece(e, out, K_TEXT, json_object_get(delta, "content"));
    rc |= rc ? 0 : text_piece(e, out, K_TEXT, json_object_get(delta, "refusal"));
    const json_t *calls = json_object_get(delta, "tool_calls");
    for (size_t i = 0; i < json_array_size(calls) && rc == 0; i++)
        rc = tool_piece(e, out, json_array_get(calls, i));
    return rc;
}

static int take_choices(ad_anthropic_enc_t *e, ad_buf_t *out, const json_t *choices)
{
    for (size_t i = 0; i < json_array_size(choices); i++) {
        const json_t *c = json_array_get(choices, i), *idx = json_object_get(c, "index");
        if (json_is_integer(idx) && json_integer_value(idx) != 0)
            continue; /* Anthropic has no n: only the first choice is translated */
        if (take_delta(e, out, json_object_get(c, "delta")) != 0)
            return -1;
        const char *fr = json_string_value(json_object_get(c, "finish_reason"));
        if (fr != NULL)
            snprintf(e->stop_reason, sizeof(e->stop_reason), "%s",
                     ad_anthropic_stop_reason(fr, e->n_tools > 0));
    }
    return 0;
}

static int take_chunk(ad_anthropic_enc_t *e, const json_t *c, ad_buf_t *out)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *model = json_string_value(json_object_get(c, "model"));
    if (e->model[0] == '\0' && model != NULL)
        snprintf(e->model, sizeof(e->model), "%s", model);
    if (e->msg_id[0] == '\0' && id != NULL && id[0] != '\0')
        make_msg_id(e->msg_id, sizeof(e->msg_id), id);
    /* Azure's prompt-filter preamble has neither id nor model: wait for a real chunk */
    if (e->msg_id[0] != '\0' && ensure_started(e, out) != 0)
        return -1;
    take_usage(e, json_object_get(c, "usage"));
    return take_choices(e, out, json_object_get(c, "choices"));
}

/* A failed call leaves both the output and the encoder as they were. The tool table may have
 * moved (realloc), so it is kept; entries past the restored n_tools are simply unused. */
static void restore(ad_anthropic_enc_t *e, const ad_anthropic_enc_t *saved, ad_buf_t *out, size_t mark)
{
    ad_anthropic_tool_t *tools = e->tools;
    size_t cap = e->cap_tools;
    *e = *saved;
    e->tools = tools;
    e->cap_tools = cap;
    ad_surf_truncate(out, mark);
}

static int abort_with(ad_anthropic_enc_t *e, const char *json, size_t len, ad_buf_t *out)
{
    if (ad_anthropic_enc_error(json, len, out) != 0)
        return -1;
    e->done = e->errored = 1;
    return 1;
}

int ad_anthropic_enc_chunk(ad_anthropic_enc_t *e, const char *chunk_json, size_t len, ad_buf_t *out)
{
    if (e->done)
        return e->errored ? 1 : 0;
    json_t *c = ad_surf_parse(chunk_json, len, NULL);
    if (!json_is_object(c)) {
        json_decref(c);
        return -1;
    }
    size_t mark = out->len;
    ad_anthropic_enc_t saved = *e;
    const json_t *error = json_object_get(c, "error");
    int rc =
        error != NULL && !json_is_null(error) ? abort_with(e, chunk_json, len, out) : take_chunk(e, c, out);
    json_decref(c);
    if (rc < 0)
        restore(e, &saved, out, mark);
    return rc;
}

int ad_anthropic_enc_ping(ad_anthropic_enc_t *e, ad_buf_t *out)
{
    if (e->done)
        return 0;
    size_t mark = out->len;
    ad_anthropic_enc_t saved = *e;
    if ((ensure_started(e, out) | ev_begin(out, "ping") | ev_end(out)) != 0) {
        restore(e, &saved, out, mark);
        return -1;
    }
    return 0;
}

int ad_anthropic_enc_abort(ad_anthropic_enc_t *e, const char *openai_error_json, size_t len, ad_buf_t *out)
{
    if (e->done)
        return 0;
    return abort_with(e, openai_error_json, len, out) < 0 ? -1 : 0;
}

/* message_delta's usage: output_tokens always; input and cache counts once they are known. */
static int delta_usage(const ad_anthropic_enc_t *e, ad_buf_t *out)
{
    const ad_usage_t *u = &e->usage;
    int rc = ad_buf_appendf(out, ",\"usage\":{\"output_tokens\":%lld",
                            (long long)(u->completion_tokens > 0 ? u->completion_tokens : 0));
    if (u->prompt_tokens >= 0) {
        int64_t cached = u->cached_tokens > 0 ? u->cached_tokens : 0;
        cached = cached > u->prompt_tokens ? u->prompt_tokens : cached;
        rc |= ad_buf_appendf(out,
                             ",\"input_tokens\":%lld,\"cache_creation_input_tokens\":0,"
                             "\"cache_read_input_tokens\":%lld",
                             (long long)(u->prompt_tokens - cached), (long long)cached);
    }
    return rc | ad_buf_puts(out, "}");
}

int ad_anthropic_enc_finish(ad_anthropic_enc_t *e, ad_buf_t *out)
{
    if (e->done)
        return 0;
    size_t mark = out->len;
    ad_anthropic_enc_t saved = *e;
    const char *stop = e->stop_reason[0] ? e->stop_reason : ad_anthropic_stop_reason(NULL, e->n_tools > 0);
    int rc = ensure_started(e, out) | close_block(e, out);
    rc |= ev_begin(out, "message_delta");
    rc |= ad_buf_puts(out, ",\"delta\":{\"stop_reason\":");
    rc |= ad_surf_json_str(out, stop, strlen(stop));
    rc |= ad_buf_puts(out, ",\"stop_sequence\":null}");
    rc |= delta_usage(e, out) | ev_end(out);
    rc |= ev_begin(out, "message_stop") | ev_end(out);
    if (rc != 0) {
        restore(e, &saved, out, mark);
        return -1;
    }
    e->done = 1;
    return 0;
}

/*
 * anthropic_request.c — an OpenAI chat request as an Anthropic Messages request (providers.md §3.2).
 *
 * The client's body is parsed into a jansson DOM and a new body is built. System and developer
 * messages go to the top-level `system` blocks (Anthropic has no system role). Every other turn
 * becomes content blocks, and consecutive turns of one role are merged, because Anthropic wants
 * user and assistant to alternate. OpenAI's tool messages become tool_result blocks in a user
 * turn, always ahead of that turn's other blocks (Anthropic's rule); assistant tool_calls become
 * tool_use blocks whose input is the parsed arguments object. The client's values are moved by
 * reference, never re-typed, so strings with any bytes (even NUL) pass unchanged.
 *
 * Parameters Anthropic has no equivalent for (seed, penalties, logprobs, response_format) are
 * dropped as LiteLLM drops them; n > 1 is refused because Anthropic returns one choice.
 * Anthropic requires max_tokens: the client's max_tokens / max_completion_tokens, else the
 * deployment's litellm_params.max_tokens, else AD_ANTHROPIC_DEFAULT_MAX_TOKENS.
 */
#include "adapters/anthropic_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_BETA 4096 /* the joined anthropic-beta header value */

typedef struct xlate {
    json_t *system; /* text blocks from system/developer messages */
    json_t *turns;  /* Anthropic messages */
    char *err;
    size_t errlen;
} xlate_t;

static int fail(xlate_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(xlate_t *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err, x->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* A JSON string equal to s, compared with its full length (a string with a NUL is not "auto"). */
static int is_str(const json_t *v, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(v) && json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* For error messages: the string's text, or a placeholder for any other value. */
static const char *shown(const json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : "(not a string)";
}

static int starts_with(const char *s, size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    return n >= p && strncasecmp(s, prefix, p) == 0;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Appends a new block to blocks, copying the part's cache_control (Anthropic prompt caching). */
static int append_block(xlate_t *x, json_t *blocks, json_t *block, const json_t *part)
{
    json_t *cc = part != NULL ? json_object_get(part, "cache_control") : NULL;
    if (block == NULL)
        return fail(x, "out of memory");
    if (json_is_object(cc))
        json_object_set(block, "cache_control", cc);
    return json_array_append_new(blocks, block) == 0 ? 0 : fail(x, "out of memory");
}

/* ---- content parts ---------------------------------------------------------------------- */

/* "data:<media type>[;params];base64,<data>" → a base64 image source. */
static json_t *data_url_source(xlate_t *x, const char *u, size_t n)
{
    const char *comma = memchr(u, ',', n);
    if (comma == NULL) {
        fail(x, "image data URL without a comma");
        return NULL;
    }
    size_t head = (size_t)(comma - u);
    if (!ends_with(u, head, ";base64")) {
        fail(x, "image data URLs must be base64-encoded");
        return NULL;
    }
    const char *media = u + 5; /* after "data:" */
    const char *semi = memchr(media, ';', head - 5);
    size_t media_len = (size_t)(semi - media); /* semi exists: the header ends with ";base64" */
    if (media_len == 0) {
        fail(x, "image data URL without a media type");
        return NULL;
    }
    json_t *src = json_pack("{s:s,s:s%,s:s%}", "type", "base64", "media_type", media, media_len, "data",
                            comma + 1, n - head - 1);
    if (src == NULL)
        fail(x, "out of memory");
    return src;
}

static int image_block(xlate_t *x, json_t *part, json_t *blocks)
{
    json_t *iu = json_object_get(part, "image_url");
    json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu; /* some clients send a bare string */
    if (!json_is_string(url))
        return fail(x, "image_url part without a url");
    const char *u = json_string_value(url);
    size_t n = json_string_length(url);
    json_t *src;
    if (starts_with(u, n, "data:"))
        src = data_url_source(x, u, n);
    else if (starts_with(u, n, "https://") || starts_with(u, n, "http://"))
        src = json_pack("{s:s,s:O}", "type", "url", "url", url);
    else
        return fail(x, "image_url must be a data: URL or an http(s) URL");
    if (src == NULL)
        return -1;
    return append_block(x, blocks, json_pack("{s:s,s:o}", "type", "image", "source", src), part);
}

static int part_block(xlate_t *x, json_t *part, json_t *blocks)
{
    json_t *type = json_object_get(part, "type");
    if (is_str(type, "text")) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            return fail(x, "text part without a text string");
        if (json_string_length(t) == 0)
            return 0; /* Anthropic rejects empty text blocks */
        return append_block(x, blocks, json_pack("{s:s,s:O}", "type", "text", "text", t), part);
    }
    if (is_str(type, "image_url"))
        return image_block(x, part, blocks);
    return fail(x, "content part type %.64s is not supported by anthropic", shown(type));
}

/* A message's content (string, parts array or null) appended to blocks. */
static int content_blocks(xlate_t *x, json_t *content, json_t *blocks)
{
    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content) == 0)
            return 0;
        return append_block(x, blocks, json_pack("{s:s,s:O}", "type", "text", "text", content), NULL);
    }
    if (!json_is_array(content))
        return fail(x, "content must be a string, an array of parts or null");
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        if (!json_is_object(part))
            return fail(x, "content parts must be objects");
        if (part_block(x, part, blocks) != 0)
            return -1;
    }
    return 0;
}

/* ---- messages ---------------------------------------------------------------------------- */

static int add_system(xlate_t *x, json_t *msg)
{
    json_t *blocks = json_array();
    if (blocks == NULL)
        return fail(x, "out of memory");
    int rc = content_blocks(x, json_object_get(msg, "content"), blocks);
    size_t i;
    json_t *b;
    json_array_foreach(blocks, i, b)
    {
        if (rc == 0 && !is_str(json_object_get(b, "type"), "text"))
            rc = fail(x, "system and developer messages may hold text only");
    }
    if (rc == 0 && json_array_extend(x->system, blocks) != 0)
        rc = fail(x, "out of memory");
    json_decref(blocks);
    return rc;
}

/* OpenAI's arguments JSON text → Anthropic's input object; anything but an object becomes {}. */
static json_t *parse_args(json_t *args)
{
    json_t *o = NULL;
    if (json_is_string(args))
        o = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY | JSON_ALLOW_NUL,
                       NULL);
    else if (json_is_object(args))
        o = json_incref(args); /* tolerated: some clients send the object itself */
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    return o;
}

static int tool_use_blocks(xlate_t *x, json_t *calls, json_t *blocks)
{
    if (calls == NULL || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return fail(x, "tool_calls must be an array");
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call)
    {
        json_t *fn = json_object_get(call, "function");
        json_t *id = json_object_get(call, "id"), *name = json_object_get(fn, "name");
        if (!json_is_string(id) || !json_is_string(name))
            return fail(x, "tool_calls[%zu] needs an id and a function name", i);
        json_t *input = parse_args(json_object_get(fn, "arguments"));
        json_t *b =
            json_pack("{s:s,s:O,s:O,s:o}", "type", "tool_use", "id", id, "name", name, "input", input);
        if (append_block(x, blocks, b, NULL) != 0)
            return -1;
    }
    return 0;
}

/* thinking blocks LiteLLM returned earlier go back first and unchanged (tool loops with thinking). */
static int thinking_blocks(xlate_t *x, json_t *list, json_t *blocks)
{
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        if (json_is_object(b) && json_array_append(blocks, b) != 0)
            return fail(x, "out of memory");
    }
    return 0;
}

static int assistant_blocks(xlate_t *x, json_t *msg, json_t *blocks)
{
    if (thinking_blocks(x, json_object_get(msg, "thinking_blocks"), blocks) != 0 ||
        content_blocks(x, json_object_get(msg, "content"), blocks) != 0)
        return -1;
    return tool_use_blocks(x, json_object_get(msg, "tool_calls"), blocks);
}

/* content of a tool_result: the string, the converted parts, or NULL when there is none */
static int tool_result_content(xlate_t *x, json_t *c, json_t **out)
{
    *out = NULL;
    if (json_is_string(c) && json_string_length(c) > 0) {
        *out = json_incref(c);
    } else if (json_is_array(c)) {
        json_t *parts = json_array();
        if (parts == NULL || content_blocks(x, c, parts) != 0) {
            json_decref(parts);
            return parts == NULL ? fail(x, "out of memory") : -1;
        }
        if (json_array_size(parts) > 0)
            *out = parts;
        else
            json_decref(parts);
    } else if (c != NULL && !json_is_null(c) && !json_is_string(c)) {
        return fail(x, "tool message content must be a string or an array of parts");
    }
    return 0;
}

static int tool_result_block(xlate_t *x, json_t *msg, json_t *blocks)
{
    json_t *id = json_object_get(msg, "tool_call_id"), *content;
    if (!json_is_string(id))
        return fail(x, "tool messages need a tool_call_id");
    if (tool_result_content(x, json_object_get(msg, "content"), &content) != 0)
        return -1;
    json_t *b = json_pack("{s:s,s:O}", "type", "tool_result", "tool_use_id", id);
    if (b != NULL && content != NULL) /* an empty result is sent without content */
        json_object_set(b, "content", content);
    json_decref(content);
    return append_block(x, blocks, b, NULL);
}

static int is_tool_result(const json_t *block)
{
    return is_str(json_object_get(block, "type"), "tool_result");
}

/*
 * Adds blocks (a reference this function takes) as a turn of role, merged into the previous turn
 * when that has the same role. In a merged user turn tool_result blocks go ahead of the others.
 */
static int push_turn(xlate_t *x, const char *role, json_t *blocks)
{
    size_t n = json_array_size(x->turns);
    json_t *last = n > 0 ? json_array_get(x->turns, n - 1) : NULL;
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
        return 0; /* nothing to say (e.g. assistant content null without calls) */
    }
    if (last == NULL || !is_str(json_object_get(last, "role"), role)) {
        json_t *t = json_pack("{s:s,s:o}", "role", role, "content", blocks);
        return t != NULL && json_array_append_new(x->turns, t) == 0 ? 0 : fail(x, "out of memory");
    }
    json_t *content = json_object_get(last, "content");
    size_t i, lead = 0;
    json_t *b;
    int rc = 0;
    while (lead < json_array_size(content) && is_tool_result(json_array_get(content, lead)))
        lead++;
    json_array_foreach(blocks, i, b)
    {
        if (is_tool_result(b))
            rc |= json_array_insert(content, lead++, b);
        else
            rc |= json_array_append(content, b);
    }
    json_decref(blocks);
    return rc ? fail(x, "out of memory") : 0;
}

static int message_blocks(xlate_t *x, json_t *m, const char **role)
{
    json_t *r = json_object_get(m, "role");
    json_t *blocks = json_array();
    int rc;
    if (blocks == NULL)
        return fail(x, "out of memory");
    *role = "user";
    if (is_str(r, "user")) {
        rc = content_blocks(x, json_object_get(m, "content"), blocks);
    } else if (is_str(r, "assistant")) {
        *role = "assistant";
        rc = assistant_blocks(x, m, blocks);
    } else if (is_str(r, "tool")) {
        rc = tool_result_block(x, m, blocks);
    } else {
        rc = fail(x, "role %.32s is not supported by anthropic", shown(r));
    }
    if (rc != 0) {
        json_decref(blocks);
        return -1;
    }
    return push_turn(x, *role, blocks);
}

static int convert_messages(xlate_t *x, json_t *msgs)
{
    if (!json_is_array(msgs))
        return fail(x, "messages must be an array");
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *r = json_object_get(m, "role");
        const char *role;
        int rc;
        if (!json_is_object(m))
            rc = fail(x, "not an object");
        else if (is_str(r, "system") || is_str(r, "developer"))
            rc = add_system(x, m);
        else
            rc = message_blocks(x, m, &role);
        if (rc != 0) {
            char inner[256];
            snprintf(inner, sizeof(inner), "%s", x->err);
            snprintf(x->err, x->errlen, "messages[%zu]: %s", i, inner);
            return -1;
        }
    }
    return 0;
}

/* ---- tools ------------------------------------------------------------------------------- */

static int tool_def(xlate_t *x, json_t *tool, size_t i, json_t *list)
{
    json_t *type = json_object_get(tool, "type"), *fn = json_object_get(tool, "function");
    json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description");
    json_t *params = json_object_get(fn, "parameters");
    if (type != NULL && !is_str(type, "function"))
        return fail(x, "tools[%zu]: only function tools are supported by anthropic", i);
    if (!json_is_string(name))
        return fail(x, "tools[%zu]: function.name is missing", i);
    json_t *schema = json_is_object(params) ? json_incref(params)
                                            : json_pack("{s:s,s:{}}", "type", "object", "properties");
    json_t *t = json_pack("{s:O,s:o}", "name", name, "input_schema", schema);
    if (t != NULL && json_is_string(desc))
        json_object_set(t, "description", desc);
    return append_block(x, list, t, tool);
}

static int tool_choice(xlate_t *x, json_t *body, json_t *out)
{
    json_t *tc = json_object_get(body, "tool_choice"), *choice = NULL;
    if (is_str(tc, "auto"))
        choice = json_pack("{s:s}", "type", "auto");
    else if (is_str(tc, "none"))
        choice = json_pack("{s:s}", "type", "none");
    else if (is_str(tc, "required"))
        choice = json_pack("{s:s}", "type", "any");
    else if (json_is_object(tc)) {
        json_t *fn = json_object_get(tc, "function");
        json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : json_object_get(tc, "name");
        if (!json_is_string(name))
            return fail(x, "tool_choice names no function");
        choice = json_pack("{s:s,s:O}", "type", "tool", "name", name);
    } else if (tc != NULL && !json_is_null(tc))
        return fail(x, "tool_choice must be \"auto\", \"none\", \"required\" or a function");
    if (json_is_false(json_object_get(body, "parallel_tool_calls"))) {
        if (choice == NULL)
            choice = json_pack("{s:s}", "type", "auto");
        if (choice != NULL && !is_str(json_object_get(choice, "type"), "none"))
            json_object_set_new(choice, "disable_parallel_tool_use", json_true());
    }
    if (choice != NULL && json_object_set_new(out, "tool_choice", choice) != 0)
        return fail(x, "out of memory");
    return 0;
}

/* tools and tool_choice; without tools tool_choice is dropped (Anthropic rejects it alone). */
static int convert_tools(xlate_t *x, json_t *body, json_t *out)
{
    json_t *tools = json_object_get(body, "tools");
    if (tools == NULL || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return fail(x, "tools must be an array");
    if (json_array_size(tools) == 0)
        return 0;
    json_t *list = json_array();
    size_t i;
    json_t *t;
    if (list == NULL || json_object_set_new(out, "tools", list) != 0)
        return fail(x, "out of memory");
    json_array_foreach(tools, i, t)
    {
        if (tool_def(x, t, i, list) != 0)
            return -1;
    }
    return tool_choice(x, body, out);
}

/* ---- sampling parameters ----------------------------------------------------------------- */

static int stop_sequences(xlate_t *x, json_t *stop, json_t *out)
{
    json_t *seq;
    if (stop == NULL || json_is_null(stop))
        return 0;
    if (json_is_string(stop)) {
        seq = json_pack("[O]", stop);
    } else if (json_is_array(stop)) {
        size_t i;
        json_t *s;
        json_array_foreach(stop, i, s)
        {
            if (!json_is_string(s))
                return fail(x, "stop must be a string or an array of strings");
        }
        seq = json_incref(stop);
    } else {
        return fail(x, "stop must be a string or an array of strings");
    }
    return json_object_set_new(out, "stop_sequences", seq) == 0 ? 0 : fail(x, "out of memory");
}

static json_int_t max_tokens(const ad_request_t *req, const ad_deployment_t *dep)
{
    const json_t *v = dep->params != NULL ? json_object_get(dep->params, "max_tokens") : NULL;
    if (req->max_tokens >= 0)
        return (json_int_t)req->max_tokens;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return json_integer_value(v);
    return AD_ANTHROPIC_DEFAULT_MAX_TOKENS;
}

static int convert_params(xlate_t *x, const ad_request_t *req, const ad_deployment_t *dep, json_t *body,
                          json_t *out)
{
    static const char *const numbers[] = {"temperature", "top_p", "top_k"};
    json_t *user = json_object_get(body, "user"), *thinking = json_object_get(body, "thinking");
    int rc = json_object_set_new(out, "max_tokens", json_integer(max_tokens(req, dep)));
    if (req->n > 1)
        return fail(x, "anthropic returns a single choice: n must be 1");
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        json_t *v = json_object_get(body, numbers[i]);
        if (json_is_number(v))
            rc |= json_object_set(out, numbers[i], v);
    }
    if (json_is_string(user) && json_string_length(user) > 0)
        rc |= json_object_set_new(out, "metadata", json_pack("{s:O}", "user_id", user));
    if (json_is_object(thinking)) /* Anthropic's own parameter, passed through as LiteLLM does */
        rc |= json_object_set(out, "thinking", thinking);
    if (req->stream)
        rc |= json_object_set_new(out, "stream", json_true());
    if (rc != 0)
        return fail(x, "out of memory");
    return stop_sequences(x, json_object_get(body, "stop"), out);
}

/* ---- the HTTP request -------------------------------------------------------------------- */

/* api_base may be given bare, with /v1 or with the whole /v1/messages path. */
static int build_url(const ad_deployment_t *dep, ad_buf_t *url)
{
    const char *base = dep->api_base != NULL && dep->api_base[0] ? dep->api_base : AD_ANTHROPIC_DEFAULT_BASE;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    const char *suffix = ends_with(base, n, "/v1/messages") ? ""
                         : ends_with(base, n, "/v1")        ? "/messages"
                                                            : "/v1/messages";
    return ad_buf_append(url, base, n) != 0 || ad_buf_puts(url, suffix) != 0 ? -1 : 0;
}

static int append_beta(ad_buf_t *b, const json_t *v)
{
    int rc = 0;
    if (json_is_string(v) && json_string_length(v) > 0) {
        rc |= b->len > 0 ? ad_buf_puts(b, ",") : 0;
        rc |= ad_buf_append(b, json_string_value(v), json_string_length(v));
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *s;
        json_array_foreach(v, i, s) rc |= append_beta(b, s);
    }
    return rc;
}

/* anthropic-beta from litellm_params.anthropic_beta (string or list) and/or
 * litellm_params.extra_headers["anthropic-beta"]; empty when neither is set. */
static int beta_value(const json_t *params, ad_buf_t *b)
{
    const json_t *extra = params != NULL ? json_object_get(params, "extra_headers") : NULL;
    const char *k;
    const json_t *v;
    int rc = params != NULL ? append_beta(b, json_object_get(params, "anthropic_beta")) : 0;
    if (json_is_object(extra)) {
        json_object_foreach((json_t *)extra, k, v)
        {
            if (strcasecmp(k, "anthropic-beta") == 0)
                rc |= append_beta(b, v);
        }
    }
    return rc;
}

static int has_line_break(const char *s, size_t n)
{
    return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL || memchr(s, '\0', n) != NULL;
}

static int add_headers(xlate_t *x, const ad_deployment_t *dep, ad_http_request_t *out)
{
    const char *key = dep->api_key;
    int has_key = key != NULL && key[0] != '\0';
    ad_buf_t beta;
    ad_buf_init(&beta, MAX_BETA);
    int rc = beta_value(dep->params, &beta);
    if (rc != 0 || (beta.len > 0 && has_line_break(beta.data, beta.len))) {
        ad_buf_free(&beta);
        return fail(x, "anthropic_beta is too long or contains a line break");
    }
    if (has_key && has_line_break(key, strlen(key))) {
        ad_buf_free(&beta);
        return fail(x, "the deployment's api_key contains a line break");
    }
    rc |= ad_http_request_add_header(out, "content-type: application/json");
    if (has_key)
        rc |= ad_http_request_add_header(out, "x-api-key: %s", key);
    rc |= ad_http_request_add_header(out, "anthropic-version: %s", AD_ANTHROPIC_VERSION);
    if (beta.len > 0)
        rc |= ad_http_request_add_header(out, "anthropic-beta: %s", beta.data);
    ad_buf_free(&beta);
    return rc != 0 ? fail(x, "upstream request headers too large") : 0;
}

static int dump_to_buf(const char *p, size_t n, void *ud)
{
    return ad_buf_append(ud, p, n);
}

static int translate(xlate_t *x, const ad_request_t *req, const ad_deployment_t *dep, json_t *body,
                     json_t *out)
{
    const char *model = dep->upstream_model;
    int rc = model != NULL ? json_object_set_new(out, "model", json_string(model))
                           : json_object_set(out, "model", json_object_get(body, "model"));
    if (rc != 0)
        return fail(x, "no upstream model name to send");
    if (convert_params(x, req, dep, body, out) != 0 ||
        convert_messages(x, json_object_get(body, "messages")) != 0)
        return -1;
    if (json_array_size(x->system) > 0 && json_object_set(out, "system", x->system) != 0)
        return fail(x, "out of memory");
    if (json_object_set(out, "messages", x->turns) != 0)
        return fail(x, "out of memory");
    return convert_tools(x, body, out);
}

int ad_anthropic_build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                               char *errbuf, size_t errlen)
{
    xlate_t x = {.err = errbuf, .errlen = errlen};
    json_error_t je;
    if (errlen > 0)
        errbuf[0] = '\0';
    if (req->op != AD_OP_CHAT)
        return fail(&x, "%s",
                    req->op == AD_OP_EMBEDDINGS
                        ? "anthropic has no embeddings endpoint (Anthropic suggests Voyage AI)"
                        : "anthropic supports chat completions only");
    json_t *body = json_loadb(req->body, req->body_len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        return fail(&x, "request body is not a JSON object: %s", je.text);
    }
    json_t *msg = json_object();
    x.system = json_array();
    x.turns = json_array();
    int rc = msg != NULL && x.system != NULL && x.turns != NULL ? translate(&x, req, dep, body, msg)
                                                                : fail(&x, "out of memory");
    if (rc == 0)
        rc = add_headers(&x, dep, out);
    if (rc == 0 && build_url(dep, &out->url) != 0)
        rc = fail(&x, "api_base is too long");
    if (rc == 0 && json_dump_callback(msg, dump_to_buf, &out->body, JSON_COMPACT) != 0)
        rc = fail(&x, "request too large to forward");
    out->method = "POST";
    json_decref(body);
    json_decref(msg);
    json_decref(x.system);
    json_decref(x.turns);
    return rc;
}

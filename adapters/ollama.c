/*
 * ollama.c — Ollama's native API (providers.md §6.1), for the `ollama` and `ollama_chat`
 * providers.
 *
 * Requests: the client's OpenAI chat body becomes POST {api_base}/api/chat — message contents
 * flattened to text (parts concatenated, as LiteLLM does), data: URL images moved to the message's
 * base64 `images`, assistant tool calls with their arguments parsed into objects (Ollama wants
 * objects, OpenAI sends JSON strings), tool results as role tool with the function's name looked
 * up from the call they answer, sampling settings moved into `options`, response_format into
 * `format`. `stream` is always sent: Ollama streams unless told otherwise. Embeddings go to
 * /api/embed.
 *
 * Responses: a stream is NDJSON, one object per line, with no sentinel; the done:true line carries
 * the finish reason and the only usage. Lines are reassembled from any split of the bytes, parsed
 * with jansson and re-emitted through oai_write as OpenAI chunks. Ollama delivers each tool call
 * whole, so one becomes a tool start plus one arguments fragment; calls get stable indices in the
 * order they arrive and "call_<index>" ids when Ollama gives none. An {"error":…} line is the
 * stream's error; a stream that stops before done:true is truncated.
 */
#include "adapters/adapter.h"
#include "adapters/errmap.h"
#include "adapters/oai_write.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BASE "http://localhost:11434"
#define MAX_LINE (8u << 20)                /* one NDJSON object: a whole tool call must fit */
#define MAX_SCRATCH (6u * MAX_LINE + 4096) /* one chunk: JSON escapes grow text up to six-fold */

typedef struct ollama_state {
    ad_oai_stream_t o;
    ad_buf_t line; /* bytes of the unfinished NDJSON line */
    int begun;     /* o has its id and model */
    int n_tools;   /* tool calls started: the next call's index */
    int over;      /* done:true or an error line was handled: the rest is ignored */
    int dead;      /* a framing error was reported: every later feed fails */
} ollama_state_t;

/* ---- request ------------------------------------------------------------------------------- */

typedef struct errctx {
    char *buf;
    size_t len;
} errctx_t;

static int fail(errctx_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(errctx_t *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
    return -1;
}

/* The base64 payload of a data: URL ("data:image/png;base64,AAAA" → "AAAA"), or NULL. */
static const char *data_url_payload(const char *url)
{
    if (strncmp(url, "data:", 5) != 0)
        return NULL;
    const char *comma = strchr(url, ',');
    if (comma == NULL || comma - url < 12 || memcmp(comma - 7, ";base64", 7) != 0)
        return NULL;
    return comma + 1;
}

static int add_image(json_t *part, size_t mi, json_t *images, errctx_t *e)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url =
        json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    const char *b64 = url != NULL ? data_url_payload(url) : NULL;
    if (b64 == NULL)
        return fail(e, "messages[%zu]: Ollama takes images only inline, as data:<type>;base64,… URLs", mi);
    return json_array_append_new(images, json_string(b64));
}

/* A message's content (string, parts or null) → its text appended to text, its images to images. */
static int split_content(json_t *content, size_t mi, ad_buf_t *text, json_t *images, errctx_t *e)
{
    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content))
        return ad_buf_append(text, json_string_value(content), json_string_length(content)) == 0
                   ? 0
                   : fail(e, "request too large");
    if (!json_is_array(content))
        return fail(e, "messages[%zu].content must be a string or an array of content parts", mi);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *t = json_object_get(part, "text");
        if (type != NULL && strcmp(type, "text") == 0 && json_is_string(t)) {
            if (ad_buf_append(text, json_string_value(t), json_string_length(t)) != 0)
                return fail(e, "request too large");
        } else if (type != NULL && strcmp(type, "image_url") == 0) {
            if (add_image(part, mi, images, e) != 0)
                return -1;
        } else {
            return fail(e, "messages[%zu].content[%zu]: content part type '%s' is not supported by Ollama",
                        mi, i, type != NULL ? type : "(none)");
        }
    }
    return 0;
}

/* OpenAI's arguments JSON string → the object Ollama wants (new reference), or NULL. */
static json_t *args_object(json_t *args)
{
    if (args == NULL || json_is_null(args))
        return json_object();
    if (json_is_object(args))
        return json_deep_copy(args);
    if (!json_is_string(args))
        return NULL;
    const char *s = json_string_value(args);
    size_t n = json_string_length(args), i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    if (i == n)
        return json_object();
    json_t *o = json_loadb(s, n, 0, NULL);
    if (json_is_object(o))
        return o;
    json_decref(o);
    return NULL;
}

static json_t *assistant_tool_calls(json_t *calls, size_t mi, errctx_t *e)
{
    json_t *out = json_array();
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        json_t *fn = json_object_get(tc, "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *args = name != NULL ? args_object(json_object_get(fn, "arguments")) : NULL;
        if (args == NULL) {
            json_decref(out);
            fail(e, "messages[%zu].tool_calls[%zu]: needs function.name and arguments that are a JSON object",
                 mi, i);
            return NULL;
        }
        json_array_append_new(out, json_pack("{s:{s:s,s:o}}", "function", "name", name, "arguments", args));
    }
    return out;
}

/* The function name of the call tool_call_id answers: the nearest earlier assistant call with it. */
static const char *tool_name_for(json_t *msgs, size_t upto, const char *id)
{
    for (size_t j = upto; id != NULL && j-- > 0;) {
        json_t *calls = json_object_get(json_array_get(msgs, j), "tool_calls");
        size_t k;
        json_t *tc;
        json_array_foreach(calls, k, tc)
        {
            const char *tid = json_string_value(json_object_get(tc, "id"));
            if (tid != NULL && strcmp(tid, id) == 0)
                return json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
        }
    }
    return NULL;
}

static const char *ollama_role(const char *role)
{
    static const char *const map[][2] = {
        {"system", "system"},       {"developer", "system"}, {"user", "user"},
        {"assistant", "assistant"}, {"tool", "tool"},        {"function", "tool"},
    };
    for (size_t i = 0; role != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(role, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

/* Role-specific members: assistant tool calls, the tool name of a tool result. */
static int message_extras(json_t *msgs, size_t mi, json_t *m, json_t *om, errctx_t *e)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *name = json_string_value(json_object_get(m, "name"));
    json_t *calls = json_object_get(m, "tool_calls");
    if (strcmp(role, "assistant") == 0 && json_array_size(calls) > 0) {
        json_t *oc = assistant_tool_calls(calls, mi, e);
        if (oc == NULL)
            return -1;
        json_object_set_new(om, "tool_calls", oc);
    } else if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
        const char *id = json_string_value(json_object_get(m, "tool_call_id"));
        const char *found = strcmp(role, "tool") == 0 ? tool_name_for(msgs, mi, id) : NULL;
        if (found != NULL || name != NULL)
            json_object_set_new(om, "tool_name", json_string(found != NULL ? found : name));
    }
    return 0;
}

static json_t *convert_message(json_t *msgs, size_t mi, size_t max_text, errctx_t *e)
{
    json_t *m = json_array_get(msgs, mi);
    const char *role = ollama_role(json_string_value(json_object_get(m, "role")));
    if (role == NULL) {
        fail(e, "messages[%zu]: role must be system, developer, user, assistant or tool", mi);
        return NULL;
    }
    ad_buf_t text;
    ad_buf_init(&text, max_text);
    json_t *images = json_array(), *om = NULL;
    if (split_content(json_object_get(m, "content"), mi, &text, images, e) == 0) {
        om = json_object();
        json_object_set_new(om, "role", json_string(role));
        json_object_set_new(om, "content", json_stringn(text.data != NULL ? text.data : "", text.len));
        if (json_array_size(images) > 0)
            json_object_set(om, "images", images);
        if (message_extras(msgs, mi, m, om, e) != 0) {
            json_decref(om);
            om = NULL;
        }
    }
    json_decref(images);
    ad_buf_free(&text);
    return om;
}

static json_t *convert_messages(json_t *msgs, size_t max_text, errctx_t *e)
{
    if (!json_is_array(msgs)) {
        fail(e, "'messages' must be an array");
        return NULL;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *om = convert_message(msgs, i, max_text, e);
        if (om == NULL) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, om);
    }
    return out;
}

/* temperature, top_p, … keep their names in options; max_tokens becomes num_predict. */
static void add_options(json_t *in, const ad_request_t *req, json_t *up)
{
    static const char *const same[] = {"temperature",      "top_p", "top_k", "seed", "presence_penalty",
                                       "frequency_penalty"};
    json_t *opts = json_object();
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        json_t *v = json_object_get(in, same[i]);
        if (json_is_number(v))
            json_object_set(opts, same[i], v);
    }
    if (req->max_tokens >= 0)
        json_object_set_new(opts, "num_predict", json_integer(req->max_tokens));
    json_t *stop = json_object_get(in, "stop");
    if (json_is_string(stop))
        json_object_set_new(opts, "stop", json_pack("[O]", stop));
    else if (json_is_array(stop) && json_array_size(stop) > 0)
        json_object_set(opts, "stop", stop);
    if (json_object_size(opts) > 0)
        json_object_set(up, "options", opts);
    json_decref(opts);
}

/* response_format json_object → "json"; json_schema → the schema itself. */
static int add_format(json_t *in, json_t *up, errctx_t *e)
{
    json_t *rf = json_object_get(in, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (type == NULL)
        return 0;
    if (strcmp(type, "json_object") == 0)
        return json_object_set_new(up, "format", json_string("json"));
    if (strcmp(type, "json_schema") != 0)
        return 0;
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    if (!json_is_object(schema))
        return fail(e, "response_format.json_schema.schema must be an object");
    return json_object_set(up, "format", schema);
}

/* OpenAI's function tools are Ollama's shape already; tool_choice "none" means send none. */
static void add_tools(json_t *in, json_t *up)
{
    json_t *tools = json_object_get(in, "tools");
    const char *choice = json_string_value(json_object_get(in, "tool_choice"));
    if (json_array_size(tools) > 0 && (choice == NULL || strcmp(choice, "none") != 0))
        json_object_set(up, "tools", tools);
}

static json_t *chat_body(json_t *in, const ad_request_t *req, const ad_deployment_t *dep, errctx_t *e)
{
    json_t *msgs = convert_messages(json_object_get(in, "messages"), req->body_len + 1, e);
    if (msgs == NULL)
        return NULL;
    json_t *up = json_object();
    json_object_set_new(up, "model", json_string(dep->upstream_model != NULL ? dep->upstream_model : ""));
    json_object_set_new(up, "messages", msgs);
    json_object_set_new(up, "stream", json_boolean(req->stream));
    add_tools(in, up);
    add_options(in, req, up);
    if (add_format(in, up, e) != 0) {
        json_decref(up);
        return NULL;
    }
    return up;
}

static int all_strings(json_t *a)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (!json_is_string(v)) return 0;
    return 1;
}

static json_t *embed_body(json_t *in, const ad_deployment_t *dep, errctx_t *e)
{
    json_t *input = json_object_get(in, "input");
    if (!json_is_string(input) && !(json_is_array(input) && all_strings(input))) {
        fail(e, "Ollama embeds text only: 'input' must be a string or an array of strings");
        return NULL;
    }
    json_t *up = json_object();
    json_object_set_new(up, "model", json_string(dep->upstream_model != NULL ? dep->upstream_model : ""));
    json_object_set(up, "input", input);
    json_t *dims = json_object_get(in, "dimensions");
    if (json_is_integer(dims))
        json_object_set(up, "dimensions", dims);
    return up;
}

static int dump_into(json_t *j, ad_buf_t *out)
{
    char *s = json_dumps(j, JSON_COMPACT);
    int rc = s != NULL ? ad_buf_puts(out, s) : -1;
    free(s);
    return rc;
}

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    errctx_t e = {errbuf, errlen};
    if (req->op != AD_OP_CHAT && req->op != AD_OP_EMBEDDINGS)
        return fail(&e, "Ollama's native API serves chat completions and embeddings only");
    json_t *in = json_loadb(req->body, req->body_len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return fail(&e, "request body is not a JSON object");
    }
    json_t *up = req->op == AD_OP_EMBEDDINGS ? embed_body(in, dep, &e) : chat_body(in, req, dep, &e);
    json_decref(in);
    if (up == NULL)
        return -1;
    const char *base = dep->api_base != NULL ? dep->api_base : DEFAULT_BASE;
    out->method = "POST";
    int rc =
        ad_buf_appendf(&out->url, "%s%s", base, req->op == AD_OP_EMBEDDINGS ? "/api/embed" : "/api/chat");
    rc |= ad_http_request_add_header(out, "Content-Type: application/json");
    if (dep->api_key != NULL && dep->api_key[0] != '\0') /* Ollama's cloud and keyed proxies */
        rc |= ad_http_request_add_header(out, "Authorization: Bearer %s", dep->api_key);
    rc |= dump_into(up, &out->body);
    json_decref(up);
    return rc != 0 ? fail(&e, "request too large to forward") : 0;
}

/* ---- responses: pieces shared by the stream and the whole body ----------------------------- */

static int64_t count_of(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : 0;
}

static void usage_of(json_t *root, ad_usage_t *u)
{
    u->prompt_tokens = count_of(root, "prompt_eval_count");
    u->completion_tokens = count_of(root, "eval_count");
    u->cached_tokens = -1;
    u->reasoning_tokens = -1;
}

static const char *finish_for(int n_tools, json_t *root)
{
    const char *reason = json_string_value(json_object_get(root, "done_reason"));
    if (n_tools > 0)
        return "tool_calls";
    return reason != NULL && strcmp(reason, "length") == 0 ? "length" : "stop";
}

/* One Ollama tool call: its name, its arguments as JSON text (malloc'd) and its id. */
typedef struct tool_view {
    const char *name;
    const char *id; /* Ollama's (borrowed from the JSON) or synth below */
    char *args;
    char synth[32];
} tool_view_t;

static int tool_view(json_t *tc, int index, tool_view_t *v)
{
    json_t *fn = json_object_get(tc, "function");
    json_t *args = json_object_get(fn, "arguments");
    const char *id = json_string_value(json_object_get(tc, "id"));
    v->name = json_string_value(json_object_get(fn, "name"));
    if (v->name == NULL)
        return -1;
    snprintf(v->synth, sizeof(v->synth), "call_%d", index);
    v->id = id != NULL && id[0] != '\0' ? id : v->synth;
    if (json_is_string(args)) /* tolerated: some builds and proxies send OpenAI's string form */
        v->args = strdup(json_string_value(args));
    else
        v->args = args != NULL && !json_is_null(args) ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY)
                                                      : strdup("{}");
    return v->args != NULL ? 0 : -1;
}

/* The error text of {"error":"…"} or {"error":{"message":"…"}}; NULL when there is no error. */
static const char *error_text(json_t *root)
{
    json_t *err = json_object_get(root, "error");
    if (err == NULL || json_is_null(err))
        return NULL;
    if (json_is_string(err))
        return json_string_value(err);
    const char *msg = json_string_value(json_object_get(err, "message"));
    return msg != NULL ? msg : "Ollama reported an error";
}

/* ---- non-stream ---------------------------------------------------------------------------- */

static int write_chat(const ad_request_t *req, json_t *root, json_t *msg, ad_oai_tool_call_t *calls, size_t n,
                      ad_buf_t *out, ad_usage_t *usage)
{
    json_t *content = json_object_get(msg, "content");
    const char *thinking = json_string_value(json_object_get(msg, "thinking"));
    ad_oai_message_t m = {
        .id = req != NULL ? req->request_id : NULL,
        .model = json_string_value(json_object_get(root, "model")),
        .created = req != NULL ? req->now : 0,
        .content = json_is_string(content) ? json_string_value(content) : "",
        .content_len = json_is_string(content) ? json_string_length(content) : 0,
        .reasoning = thinking != NULL && thinking[0] != '\0' ? thinking : NULL,
        .tool_calls = calls,
        .n_tool_calls = n,
        .finish_reason = finish_for((int)n, root),
    };
    if (n > 0 && m.content_len == 0)
        m.content = NULL; /* OpenAI: content null beside tool calls */
    usage_of(root, usage);
    m.usage = *usage;
    return ad_oai_write_completion(&m, out);
}

static int parse_chat(const ad_request_t *req, json_t *root, ad_buf_t *out, ad_usage_t *usage)
{
    json_t *msg = json_object_get(root, "message");
    if (!json_is_object(msg))
        return -1;
    json_t *calls = json_object_get(msg, "tool_calls");
    size_t n = json_array_size(calls), k = 0;
    tool_view_t *views = calloc(n ? n : 1, sizeof(*views));
    ad_oai_tool_call_t *tc = calloc(n ? n : 1, sizeof(*tc));
    int rc = views != NULL && tc != NULL ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (tool_view(json_array_get(calls, i), (int)k, &views[k]) != 0)
            continue; /* not a function call we can express */
        tc[k] = (ad_oai_tool_call_t){views[k].id, views[k].name, views[k].args};
        k++;
    }
    if (rc == 0)
        rc = write_chat(req, root, msg, tc, k, out, usage);
    for (size_t i = 0; views != NULL && i < n; i++)
        free(views[i].args);
    free(views);
    free(tc);
    return rc;
}

/* embeddings[i] must all be arrays of numbers of one length. */
static int embed_dims(json_t *embs, size_t *dims)
{
    *dims = json_array_size(json_array_get(embs, 0));
    size_t i, j;
    json_t *v, *x;
    json_array_foreach(embs, i, v)
    {
        if (!json_is_array(v) || json_array_size(v) != *dims)
            return -1;
        json_array_foreach(v, j, x) if (!json_is_number(x)) return -1;
    }
    return 0;
}

static int parse_embed(const ad_request_t *req, json_t *root, ad_buf_t *out, ad_usage_t *usage)
{
    json_t *embs = json_object_get(root, "embeddings");
    size_t dims, n = json_array_size(embs), cells;
    if (!json_is_array(embs) || embed_dims(embs, &dims) != 0 || __builtin_mul_overflow(n, dims, &cells))
        return -1;
    float *flat = malloc((cells ? cells : 1) * sizeof(float));
    const float **vecs = malloc((n ? n : 1) * sizeof(*vecs));
    int rc = flat != NULL && vecs != NULL ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        vecs[i] = flat + i * dims;
        for (size_t j = 0; j < dims; j++)
            flat[i * dims + j] = (float)json_number_value(json_array_get(json_array_get(embs, i), j));
    }
    *usage = (ad_usage_t){count_of(root, "prompt_eval_count"), 0, -1, -1};
    if (rc == 0)
        rc = ad_oai_write_embeddings(vecs, n, dims, req != NULL && ad_oai_wants_base64(req),
                                     json_string_value(json_object_get(root, "model")), usage->prompt_tokens,
                                     out);
    free(flat);
    free(vecs);
    return rc;
}

static int parse_response(const ad_request_t *req, const char *body, size_t len, ad_buf_t *out,
                          ad_usage_t *usage)
{
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    int rc = -1;
    if (json_is_object(root) && error_text(root) == NULL)
        rc = req != NULL && req->op == AD_OP_EMBEDDINGS ? parse_embed(req, root, out, usage)
                                                        : parse_chat(req, root, out, usage);
    json_decref(root);
    return rc;
}

/* ---- stream -------------------------------------------------------------------------------- */

static void stream_init(ad_stream_t *st, const ad_request_t *req)
{
    ollama_state_t *s = st->priv;
    ad_buf_init(&s->line, MAX_LINE);
    ad_buf_init(&st->scratch, MAX_SCRATCH);
    st->client_wants_usage = req->include_usage;
    st->usage = (ad_usage_t){-1, -1, -1, -1};
}

static int emit_tool_calls(ollama_state_t *s, ad_stream_t *st, json_t *calls)
{
    size_t i;
    json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        tool_view_t v;
        if (tool_view(tc, s->n_tools, &v) != 0)
            continue;
        int index = s->n_tools++;
        int rc = ad_oai_emit_tool_start(&s->o, st, index, v.id, v.name);
        if (rc == 0)
            rc = ad_oai_emit_tool_args(&s->o, st, index, v.args, strlen(v.args));
        free(v.args);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int emit_message(ollama_state_t *s, ad_stream_t *st, json_t *msg)
{
    json_t *thinking = json_object_get(msg, "thinking"), *content = json_object_get(msg, "content");
    int rc = 0;
    if (json_is_string(thinking) && json_string_length(thinking) > 0)
        rc = ad_oai_emit_reasoning(&s->o, st, json_string_value(thinking), json_string_length(thinking));
    if (rc == 0 && json_is_string(content) && json_string_length(content) > 0)
        rc = ad_oai_emit_text(&s->o, st, json_string_value(content), json_string_length(content));
    if (rc == 0)
        rc = emit_tool_calls(s, st, json_object_get(msg, "tool_calls"));
    return rc;
}

/* done:true — finish chunk, usage chunk (hidden unless asked), [DONE]. */
static int emit_end(ollama_state_t *s, ad_stream_t *st, json_t *root)
{
    s->over = 1;
    usage_of(root, &st->usage);
    int rc = ad_oai_emit_finish(&s->o, st, finish_for(s->n_tools, root));
    if (rc == 0)
        rc = ad_oai_emit_usage(&s->o, st);
    if (rc == 0)
        rc = ad_oai_emit_done(&s->o, st);
    return rc;
}

static int handle_object(ollama_state_t *s, ad_stream_t *st, json_t *root)
{
    const char *err = error_text(root);
    if (err != NULL) {
        s->over = 1;
        return ad_oai_emit_error(st, err, "api_error", "upstream_error");
    }
    if (!s->begun) {
        ad_oai_stream_begin(&s->o, st, NULL, json_string_value(json_object_get(root, "model")));
        s->begun = 1;
    }
    int rc = emit_message(s, st, json_object_get(root, "message"));
    if (rc == 0 && json_is_true(json_object_get(root, "done")))
        rc = emit_end(s, st, root);
    return rc;
}

static int is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

/* One complete line (without its '\n'). Blank lines are keep-alives of proxies: skipped. */
static int handle_line(ollama_state_t *s, ad_stream_t *st, const char *p, size_t n)
{
    if (s->over || is_blank(p, n))
        return 0;
    json_t *root = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
    int rc = json_is_object(root) ? handle_object(s, st, root) : -1;
    json_decref(root);
    return rc;
}

static int stream_feed(ad_stream_t *st, const char *p, size_t n)
{
    ollama_state_t *s = st->priv;
    while (n > 0 && !s->dead) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - p) : n;
        if (s->line.len + take > MAX_LINE || (nl == NULL && ad_buf_append(&s->line, p, n) != 0)) {
            s->dead = 1;
            break;
        }
        if (nl == NULL)
            return 0;
        int rc;
        if (s->line.len == 0) { /* the whole line is in this piece: no copy */
            rc = handle_line(s, st, p, take);
        } else {
            rc = ad_buf_append(&s->line, p, take) != 0 ? -1 : handle_line(s, st, s->line.data, s->line.len);
            ad_buf_reset(&s->line);
        }
        if (rc == -1)
            s->dead = 1;
        if (rc != 0)
            return rc;
        p += take + 1;
        n -= take + 1;
    }
    return s->dead ? -1 : 0;
}

/* The last line may lack its '\n': take it when it is a whole object, else the stream was cut. */
static int stream_finish(ad_stream_t *st)
{
    ollama_state_t *s = st->priv;
    if (!s->dead && s->line.len > 0) {
        if (handle_line(s, st, s->line.data, s->line.len) != 0)
            s->dead = 1;
        ad_buf_reset(&s->line);
    }
    return s->dead || (!st->saw_done && !st->saw_error);
}

static void stream_free(ad_stream_t *st)
{
    ollama_state_t *s = st->priv;
    if (s != NULL)
        ad_buf_free(&s->line);
}

/* ---- errors -------------------------------------------------------------------------------- */

static const char *code_for(int status)
{
    switch (status) {
    case 404:
        return "model_not_found";
    case 429:
        return "rate_limit_exceeded";
    default:
        return NULL;
    }
}

static void map_error(int status, const char *body, size_t len, const char *retry_after, ad_buf_t *out,
                      ad_error_t *err)
{
    err->status = status;
    err->retryable = ad_errmap_retryable(status);
    err->retry_ms = ad_errmap_retry_ms(retry_after);
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    const char *text = json_is_object(root) ? error_text(root) : NULL;
    char snippet[512];
    if (text == NULL)
        ad_errmap_snippet(status, body, len, snippet, sizeof(snippet));
    ad_errmap_json(out, text != NULL ? text : snippet, ad_errmap_type(status), NULL, code_for(status));
    json_decref(root);
}

const ad_adapter_t ad_ollama = {
    .name = "ollama",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS | AD_CAP_JSON_MODE,
    .build_request = build_request,
    .parse_response = parse_response,
    .stream_init = stream_init,
    .stream_feed = stream_feed,
    .stream_finish = stream_finish,
    .map_error = map_error,
    .state_size = sizeof(ollama_state_t),
    .stream_free = stream_free,
};

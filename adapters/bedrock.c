/*
 * bedrock.c — AWS Bedrock Runtime through the Converse API (providers.md §5): the request side.
 *
 * The client's OpenAI chat body becomes a Converse body (jansson DOM both ways; this is a
 * translating adapter, not the hot passthrough):
 *   system/developer messages     → system[] text blocks (wherever they stand)
 *   user / assistant content      → text and image (base64 data URLs only: no I/O here) blocks
 *   assistant tool_calls          → toolUse blocks (arguments parsed into JSON input)
 *   tool messages                 → toolResult blocks in a user turn
 *   consecutive same-role turns   → merged (Converse requires alternation; tool results + the
 *                                   next user text share one user turn); empty turns vanish
 *   max_tokens/temperature/top_p/stop → inferenceConfig; tools/tool_choice → toolConfig
 *   cache_control on a part/message → a cachePoint block after it
 *   top_k, thinking, reasoning_effort → additionalModelRequestFields (Anthropic models)
 * Embeddings go to /invoke with the model's native body: Titan (one input per call) or Cohere.
 *
 * The request is signed with SigV4 (signing name "bedrock") at req->now over exactly the bytes
 * sent: content-type, host and x-amz-date (+ x-amz-security-token) are signed, and the canonical
 * URI is the wire path encoded once more (the model id's ':' is %3A on the wire, %253A signed).
 * Credentials come from litellm_params (aws_access_key_id, aws_secret_access_key,
 * aws_session_token, aws_region_name); the core fills them from AWS_* variables when absent.
 * A deployment api_key is sent as a Bedrock API key (Authorization: Bearer), as LiteLLM does.
 */
#include "adapters/bedrock_int.h"
#include "adapters/sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_REGION "us-east-1"
#define SIGNING_NAME "bedrock"
#define MAX_URL_PART 4096

typedef struct build {
    const ad_request_t *req;
    const ad_deployment_t *dep;
    json_t *in; /* the client's body */
    char *err;
    size_t errlen;
} build_t;

typedef struct creds {
    const char *akid, *secret, *token, *region, *bearer;
} creds_t;

/* Where the request goes: origin "https://host[:port]", host for signing, and the path. */
typedef struct target {
    ad_buf_t origin, host, path;
} target_t;

__attribute__((format(printf, 2, 3))) static int fail(build_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, b->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *param_str(const ad_deployment_t *dep, const char *key)
{
    json_t *v = dep->params != NULL ? json_object_get(dep->params, key) : NULL;
    return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* No control bytes: the value goes into an HTTP header line. */
static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int region_valid(const char *r)
{
    size_t n = strlen(r);
    return n > 0 && n <= 32 && strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* ---- credentials, endpoint, signature ------------------------------------------------------ */

static int read_creds(build_t *b, creds_t *c)
{
    const ad_deployment_t *dep = b->dep;
    c->region = param_str(dep, "aws_region_name");
    if (c->region == NULL)
        c->region = DEFAULT_REGION;
    if (!region_valid(c->region))
        return fail(b, "bedrock: aws_region_name '%.64s' is not a region name", c->region);
    c->bearer = dep->api_key != NULL && dep->api_key[0] != '\0' ? dep->api_key : NULL;
    c->akid = param_str(dep, "aws_access_key_id");
    c->secret = param_str(dep, "aws_secret_access_key");
    c->token = param_str(dep, "aws_session_token");
    if (c->bearer != NULL)
        return header_safe(c->bearer) ? 0 : fail(b, "bedrock: api_key contains control characters");
    if ((c->akid == NULL || c->secret == NULL) &&
        (param_str(dep, "aws_role_name") != NULL || param_str(dep, "aws_profile_name") != NULL ||
         param_str(dep, "aws_web_identity_token") != NULL))
        return fail(b, "bedrock: aws_role_name, aws_profile_name and web identity need STS or profile files, "
                       "which Tollgate does not use; give aws_access_key_id and aws_secret_access_key");
    if (c->akid == NULL || c->secret == NULL)
        return fail(b, "bedrock: set aws_access_key_id and aws_secret_access_key (or api_key, a Bedrock API "
                       "key) in litellm_params");
    if (!header_safe(c->akid) || (c->token != NULL && !header_safe(c->token)) ||
        strlen(c->secret) > AD_SIGV4_MAX_SECRET)
        return fail(b, "bedrock: AWS credentials contain control characters or are too long");
    return 0;
}

/* Splits api_base into origin, host and path prefix (trailing slashes dropped). */
static int split_base(build_t *b, const char *base, target_t *t)
{
    const char *sep = strstr(base, "://");
    if (sep == NULL || sep == base || !header_safe(base) || strchr(base, ' ') != NULL)
        return fail(b, "bedrock: api_base must be an absolute http(s) URL");
    const char *host = sep + 3;
    size_t hlen = strcspn(host, "/?#");
    const char *rest = host + hlen;
    if (hlen == 0 || memchr(host, '@', hlen) != NULL || strpbrk(rest, "?#") != NULL)
        return fail(b, "bedrock: api_base must be scheme://host[:port][/path] without credentials or query");
    size_t plen = strlen(rest);
    while (plen > 0 && rest[plen - 1] == '/')
        plen--;
    int rc = ad_buf_append(&t->origin, base, (size_t)(rest - base));
    rc |= ad_buf_append(&t->host, host, hlen) | ad_buf_append(&t->path, rest, plen);
    return rc ? fail(b, "bedrock: api_base is too long") : 0;
}

/* The model id for the URL: litellm_params.model_id, else the upstream model minus LiteLLM's
 * route prefix ("converse/", or "invoke/": chat is always served through Converse here). */
static const char *model_id(const ad_deployment_t *dep)
{
    const char *id = param_str(dep, "model_id");
    if (id != NULL)
        return id;
    id = dep->upstream_model != NULL ? dep->upstream_model : "";
    if (strncmp(id, "converse/", 9) == 0)
        return id + 9;
    return strncmp(id, "invoke/", 7) == 0 ? id + 7 : id;
}

static int resolve_target(build_t *b, const creds_t *c, const char *model, const char *action, target_t *t)
{
    const char *base =
        b->dep->api_base != NULL ? b->dep->api_base : param_str(b->dep, "aws_bedrock_runtime_endpoint");
    if (base != NULL) {
        if (split_base(b, base, t) != 0)
            return -1;
    } else if (ad_buf_appendf(&t->origin, "https://bedrock-runtime.%s.amazonaws.com", c->region) != 0 ||
               ad_buf_appendf(&t->host, "bedrock-runtime.%s.amazonaws.com", c->region) != 0) {
        return fail(b, "bedrock: endpoint too long");
    }
    /* the id is one path segment: ':' and '/' (ARNs, inference profiles) are percent-encoded */
    int rc = ad_buf_puts(&t->path, "/model/") | ad_sigv4_uri_encode(model, strlen(model), 0, &t->path);
    rc |= ad_buf_appendf(&t->path, "/%s", action);
    return rc ? fail(b, "bedrock: model id too long") : 0;
}

static int add_auth_headers(build_t *b, const creds_t *c, const target_t *t, ad_http_request_t *out)
{
    int rc = ad_http_request_add_header(out, "Content-Type: application/json");
    if (c->bearer != NULL)
        return rc | ad_http_request_add_header(out, "Authorization: Bearer %s", c->bearer);
    char date[17];
    if (ad_sigv4_amz_date(b->req->now, date) != 0)
        return fail(b, "bedrock: the request time cannot be signed");
    ad_sigv4_header_t h[4] = {{"content-type", "application/json"},
                              {"host", t->host.data},
                              {"x-amz-date", date},
                              {"x-amz-security-token", c->token}};
    ad_sigv4_request_t sr = {.method = "POST",
                             .path = t->path.data,
                             .headers = h,
                             .n_headers = c->token != NULL ? 4 : 3,
                             .payload = out->body.data,
                             .payload_len = out->body.len};
    ad_sigv4_creds_t sc = {c->akid, c->secret, c->region, SIGNING_NAME};
    ad_buf_t auth;
    ad_buf_init(&auth, 4096);
    rc |= ad_sigv4_authorization(&sr, &sc, date, &auth, NULL);
    rc |= ad_http_request_add_header(out, "Host: %s", t->host.data);
    rc |= ad_http_request_add_header(out, "X-Amz-Date: %s", date);
    if (c->token != NULL)
        rc |= ad_http_request_add_header(out, "X-Amz-Security-Token: %s", c->token);
    if (rc == 0)
        rc = ad_http_request_add_header(out, "Authorization: %s", auth.data);
    ad_buf_free(&auth);
    return rc ? fail(b, "bedrock: could not sign the request") : 0;
}

/* ---- content blocks --------------------------------------------------------------------------- */

static json_t *text_block(json_t *s)
{
    return json_pack("{s:s%}", "text", json_string_value(s), json_string_length(s));
}

static json_t *cache_point(void)
{
    return json_pack("{s:{s:s}}", "cachePoint", "type", "default");
}

static const char *image_format(const char *mime, size_t n)
{
    static const struct {
        const char *mime, *format;
    } formats[] = {
        {"image/png", "png"}, {"image/jpeg", "jpeg"}, {"image/jpg", "jpeg"},
        {"image/gif", "gif"}, {"image/webp", "webp"},
    };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strlen(formats[i].mime) == n && strncasecmp(formats[i].mime, mime, n) == 0)
            return formats[i].format;
    return NULL;
}

/* {"image":{"format":…,"source":{"bytes":<base64>}}} from an image_url part with a data URL. */
static json_t *image_block(build_t *b, json_t *part, size_t mi, size_t k)
{
    json_t *iu = json_object_get(part, "image_url");
    const char *url =
        json_is_string(iu) ? json_string_value(iu) : json_string_value(json_object_get(iu, "url"));
    if (url == NULL) {
        fail(b, "messages[%zu].content[%zu].image_url.url is missing", mi, k);
        return NULL;
    }
    if (strncmp(url, "data:", 5) != 0) {
        fail(b,
             "messages[%zu].content[%zu]: Bedrock takes images inline only (base64 data: URLs); remote image "
             "URLs are not fetched",
             mi, k);
        return NULL;
    }
    const char *mime = url + 5, *data = strstr(mime, ";base64,");
    const char *format = image_format(mime, strcspn(mime, ";,"));
    if (data == NULL || format == NULL) {
        fail(b, "messages[%zu].content[%zu]: the image must be a base64 data URL of a png, jpeg, gif or webp",
             mi, k);
        return NULL;
    }
    return json_pack("{s:{s:s,s:{s:s}}}", "image", "format", format, "source", "bytes", data + 8);
}

static int part_block(build_t *b, json_t *part, int images, size_t mi, size_t k, json_t *blocks)
{
    const char *type = json_string_value(json_object_get(part, "type"));
    if (type != NULL && strcmp(type, "text") == 0) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))
            return fail(b, "messages[%zu].content[%zu].text must be a string", mi, k);
        if (json_string_length(t) > 0)
            json_array_append_new(blocks, text_block(t));
    } else if (type != NULL && strcmp(type, "image_url") == 0 && images) {
        json_t *img = image_block(b, part, mi, k);
        if (img == NULL)
            return -1;
        json_array_append_new(blocks, img);
    } else {
        return fail(b,
                    "messages[%zu].content[%zu]: content part type '%.32s' is not supported for Bedrock here",
                    mi, k, type != NULL ? type : "(none)");
    }
    if (json_is_object(json_object_get(part, "cache_control")))
        json_array_append_new(blocks, cache_point());
    return 0;
}

/* Blocks of an OpenAI content value: a string, an array of parts, or null. Empty text is dropped. */
static int content_blocks(build_t *b, json_t *content, int images, size_t mi, json_t *blocks)
{
    if (content == NULL || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        if (json_string_length(content) > 0)
            json_array_append_new(blocks, text_block(content));
        return 0;
    }
    if (!json_is_array(content))
        return fail(b, "messages[%zu].content must be a string or an array of parts", mi);
    size_t k;
    json_t *part;
    json_array_foreach(content, k, part)
    {
        if (part_block(b, part, images, mi, k, blocks) != 0)
            return -1;
    }
    return 0;
}

/* Tool-call arguments (JSON text) as the toolUse input document; "" means {}. */
static json_t *tool_input(json_t *args)
{
    if (args == NULL || json_is_null(args))
        return json_object();
    if (!json_is_string(args))
        return json_deep_copy(args);
    const char *s = json_string_value(args);
    if (s[strspn(s, " \t\r\n")] == '\0')
        return json_object();
    return json_loadb(s, json_string_length(args), JSON_DECODE_ANY, NULL);
}

static int tool_use_blocks(build_t *b, json_t *calls, size_t mi, json_t *blocks)
{
    if (calls == NULL || json_is_null(calls))
        return 0;
    if (!json_is_array(calls))
        return fail(b, "messages[%zu].tool_calls must be an array", mi);
    size_t k;
    json_t *call;
    json_array_foreach(calls, k, call)
    {
        json_t *fn = json_object_get(call, "function");
        const char *id = json_string_value(json_object_get(call, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (id == NULL || name == NULL)
            return fail(b, "messages[%zu].tool_calls[%zu] needs an id and a function.name", mi, k);
        json_t *input = tool_input(json_object_get(fn, "arguments"));
        if (input == NULL)
            return fail(b, "messages[%zu].tool_calls[%zu].function.arguments is not valid JSON", mi, k);
        json_array_append_new(
            blocks, json_pack("{s:{s:s,s:s,s:o}}", "toolUse", "toolUseId", id, "name", name, "input", input));
    }
    return 0;
}

/* A tool message as {"toolResult":{toolUseId, content:[{text}]}}; text parts are concatenated. */
static int tool_result_block(build_t *b, json_t *m, size_t mi, json_t *blocks)
{
    const char *id = json_string_value(json_object_get(m, "tool_call_id"));
    json_t *content = json_object_get(m, "content");
    if (id == NULL)
        return fail(b, "messages[%zu]: a tool message needs a tool_call_id", mi);
    ad_buf_t text;
    ad_buf_init(&text, b->req->body_len + 1);
    int rc = 0;
    if (json_is_string(content)) {
        rc = ad_buf_append(&text, json_string_value(content), json_string_length(content));
    } else if (json_is_array(content)) {
        size_t k;
        json_t *part;
        json_array_foreach(content, k, part)
        {
            json_t *t = json_object_get(part, "text");
            if (!json_is_string(t)) {
                rc = fail(b, "messages[%zu].content[%zu]: tool results take text parts only", mi, k);
                break;
            }
            rc |= ad_buf_append(&text, json_string_value(t), json_string_length(t));
        }
    } else if (content != NULL && !json_is_null(content)) {
        rc = fail(b, "messages[%zu].content must be a string or an array of text parts", mi);
    }
    if (rc == 0)
        json_array_append_new(blocks,
                              json_pack("{s:{s:s,s:[{s:s%}]}}", "toolResult", "toolUseId", id, "content",
                                        "text", text.data != NULL ? text.data : "", text.len));
    ad_buf_free(&text);
    return rc ? -1 : 0;
}

/* ---- messages ------------------------------------------------------------------------------- */

/* Appends blocks as a turn of role, merged into the previous turn when it has the same role. */
static void add_turn(json_t *msgs, const char *role, json_t *blocks)
{
    size_t n = json_array_size(msgs);
    json_t *last = n > 0 ? json_array_get(msgs, n - 1) : NULL;
    const char *last_role = json_string_value(json_object_get(last, "role"));
    if (json_array_size(blocks) == 0) {
        json_decref(blocks);
    } else if (last_role != NULL && strcmp(last_role, role) == 0) {
        json_array_extend(json_object_get(last, "content"), blocks);
        json_decref(blocks);
    } else {
        json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", role, "content", blocks));
    }
}

static int one_message(build_t *b, json_t *m, size_t mi, json_t *msgs, json_t *system)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    json_t *content = json_object_get(m, "content"), *blocks = json_array();
    const char *turn = "user";
    int rc;
    if (role == NULL)
        rc = fail(b, "messages[%zu].role is missing", mi);
    else if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
        rc = content_blocks(b, content, 0, mi, blocks);
    else if (strcmp(role, "user") == 0)
        rc = content_blocks(b, content, 1, mi, blocks);
    else if (strcmp(role, "assistant") == 0) {
        turn = "assistant";
        rc = content_blocks(b, content, 0, mi, blocks);
        rc = rc ? rc : tool_use_blocks(b, json_object_get(m, "tool_calls"), mi, blocks);
    } else if (strcmp(role, "tool") == 0)
        rc = tool_result_block(b, m, mi, blocks);
    else
        rc = fail(b, "messages[%zu]: role '%.32s' is not supported for Bedrock", mi, role);
    if (rc != 0) {
        json_decref(blocks);
        return -1;
    }
    if (json_array_size(blocks) > 0 && json_is_object(json_object_get(m, "cache_control")))
        json_array_append_new(blocks, cache_point());
    if (json_array_size(blocks) > 0 && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)) {
        json_array_extend(system, blocks);
        json_decref(blocks);
        return 0;
    }
    add_turn(msgs, turn, blocks);
    return 0;
}

static int translate_messages(build_t *b, json_t *msgs, json_t *system)
{
    json_t *in = json_object_get(b->in, "messages"), *m;
    size_t i;
    if (!json_is_array(in))
        return fail(b, "'messages' must be an array");
    json_array_foreach(in, i, m)
    {
        if (!json_is_object(m))
            return fail(b, "messages[%zu] must be an object", i);
        if (one_message(b, m, i, msgs, system) != 0)
            return -1;
    }
    if (json_array_size(msgs) == 0)
        return fail(b, "messages must hold at least one user or assistant message with content");
    return 0;
}

/* ---- parameters ------------------------------------------------------------------------------ */

/* Copies number param `key` into obj as `as`; absent/null is fine, anything else an error. */
static int number_param(build_t *b, json_t *obj, const char *key, const char *as)
{
    json_t *v = json_object_get(b->in, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return fail(b, "%s must be a number", key);
    return json_object_set(obj, as, v);
}

static int stop_sequences(build_t *b, json_t *ic)
{
    json_t *v = json_object_get(b->in, "stop"), *s;
    size_t i;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) /* Converse rejects an empty stop sequence: "" means none */
        return json_string_length(v) == 0 ? 0 : json_object_set_new(ic, "stopSequences", json_pack("[O]", v));
    if (!json_is_array(v))
        return fail(b, "stop must be a string or an array of strings");
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s))
            return fail(b, "stop[%zu] must be a string", i);
    }
    return json_array_size(v) > 0 ? json_object_set(ic, "stopSequences", v) : 0;
}

static int inference_config(build_t *b, json_t *out)
{
    json_t *ic = json_object(), *mt = json_object_get(b->in, "max_completion_tokens");
    int rc = 0;
    if (mt == NULL || json_is_null(mt))
        mt = json_object_get(b->in, "max_tokens");
    if (json_is_integer(mt))
        json_object_set(ic, "maxTokens", mt);
    else if (mt != NULL && !json_is_null(mt))
        rc = fail(b, "max_tokens must be an integer");
    rc = rc ? rc : number_param(b, ic, "temperature", "temperature");
    rc = rc ? rc : number_param(b, ic, "top_p", "topP");
    rc = rc ? rc : stop_sequences(b, ic);
    if (rc == 0 && json_object_size(ic) > 0)
        return json_object_set_new(out, "inferenceConfig", ic);
    json_decref(ic);
    return rc;
}

static json_t *tool_spec(build_t *b, json_t *t, size_t k)
{
    const char *type = json_string_value(json_object_get(t, "type"));
    json_t *fn = json_object_get(t, "function"), *desc = json_object_get(fn, "description");
    json_t *params = json_object_get(fn, "parameters");
    const char *name = json_string_value(json_object_get(fn, "name"));
    if ((type != NULL && strcmp(type, "function") != 0) || name == NULL) {
        fail(b, "tools[%zu]: only function tools with a function.name are supported for Bedrock", k);
        return NULL;
    }
    json_t *spec = json_pack("{s:s}", "name", name);
    if (json_is_string(desc) && json_string_length(desc) > 0)
        json_object_set(spec, "description", desc);
    json_t *schema = json_is_object(params) ? json_incref(params)
                                            : json_pack("{s:s,s:{}}", "type", "object", "properties");
    json_object_set_new(spec, "inputSchema", json_pack("{s:o}", "json", schema));
    return json_pack("{s:o}", "toolSpec", spec);
}

/* toolChoice for tool_choice: auto → auto, required → any, {function:{name}} → tool, none → omitted
 * (Converse has no "none"; the tools must stay because the history may hold tool blocks). */
static int tool_choice(build_t *b, json_t **choice)
{
    json_t *v = json_object_get(b->in, "tool_choice");
    const char *s = json_string_value(v);
    const char *name = json_string_value(json_object_get(json_object_get(v, "function"), "name"));
    *choice = NULL;
    if (v == NULL || json_is_null(v) || (s != NULL && strcmp(s, "none") == 0))
        return 0;
    if (s != NULL && strcmp(s, "auto") == 0)
        *choice = json_pack("{s:{}}", "auto");
    else if (s != NULL && strcmp(s, "required") == 0)
        *choice = json_pack("{s:{}}", "any");
    else if (json_is_object(v) && name != NULL)
        *choice = json_pack("{s:{s:s}}", "tool", "name", name);
    else
        return fail(b, "tool_choice must be \"auto\", \"required\", \"none\" or "
                       "{\"type\":\"function\",\"function\":{\"name\":…}}");
    return 0;
}

static int tool_config(build_t *b, json_t *out)
{
    json_t *tools = json_object_get(b->in, "tools"), *t, *choice;
    size_t k;
    if (tools == NULL || json_is_null(tools))
        return 0;
    if (!json_is_array(tools))
        return fail(b, "tools must be an array");
    if (json_array_size(tools) == 0)
        return 0;
    json_t *specs = json_array();
    json_array_foreach(tools, k, t)
    {
        json_t *spec = tool_spec(b, t, k);
        if (spec == NULL) {
            json_decref(specs);
            return -1;
        }
        json_array_append_new(specs, spec);
    }
    json_t *tc = json_pack("{s:o}", "tools", specs);
    if (tool_choice(b, &choice) != 0) {
        json_decref(tc);
        return -1;
    }
    if (choice != NULL)
        json_object_set_new(tc, "toolChoice", choice);
    return json_object_set_new(out, "toolConfig", tc);
}

/* Thinking budget for reasoning_effort, as LiteLLM maps it for Anthropic; 0 = no thinking. */
static int thinking_budget(build_t *b, const char *effort, int64_t *budget)
{
    static const struct {
        const char *effort;
        int64_t budget;
    } budgets[] = {{"none", 0}, {"minimal", 0}, {"low", 1024}, {"medium", 2048}, {"high", 4096}};
    for (size_t i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++)
        if (strcmp(budgets[i].effort, effort) == 0) {
            *budget = budgets[i].budget;
            return 0;
        }
    return fail(b, "reasoning_effort must be one of none, minimal, low, medium, high");
}

/* Model-specific fields Converse passes through: top_k and thinking for Anthropic, topK for Nova. */
static int additional_fields(build_t *b, const char *model, json_t *out)
{
    json_t *add = json_object(), *top_k = json_object_get(b->in, "top_k");
    json_t *thinking = json_object_get(b->in, "thinking");
    const char *effort = json_string_value(json_object_get(b->in, "reasoning_effort"));
    int anthropic = strstr(model, "anthropic.") != NULL, rc = 0;
    int64_t budget = 0;
    if (json_is_integer(top_k) && anthropic)
        json_object_set(add, "top_k", top_k);
    else if (json_is_integer(top_k) && strstr(model, "amazon.nova") != NULL)
        json_object_set_new(add, "inferenceConfig", json_pack("{s:O}", "topK", top_k));
    if (anthropic && json_is_object(thinking))
        json_object_set(add, "thinking", thinking);
    else if (anthropic && effort != NULL && (rc = thinking_budget(b, effort, &budget)) == 0 && budget > 0)
        json_object_set_new(add, "thinking",
                            json_pack("{s:s,s:I}", "type", "enabled", "budget_tokens", (json_int_t)budget));
    if (rc == 0 && json_object_size(add) > 0)
        return json_object_set_new(out, "additionalModelRequestFields", add);
    json_decref(add);
    return rc;
}

static int chat_body(build_t *b, const char *model, json_t *out)
{
    json_t *msgs = json_array(), *system = json_array();
    json_t *rf = json_object_get(json_object_get(b->in, "response_format"), "type");
    int rc = 0;
    if (b->req->n > 1)
        rc = fail(b, "n > 1 is not supported by Bedrock");
    else if (json_is_string(rf) && strcmp(json_string_value(rf), "text") != 0)
        rc = fail(b, "response_format '%.32s' is not supported for Bedrock", json_string_value(rf));
    rc = rc ? rc : translate_messages(b, msgs, system);
    if (rc == 0) {
        json_object_set(out, "messages", msgs);
        if (json_array_size(system) > 0)
            json_object_set(out, "system", system);
        rc = inference_config(b, out);
        rc = rc ? rc : tool_config(b, out);
        rc = rc ? rc : additional_fields(b, model, out);
    }
    json_decref(msgs);
    json_decref(system);
    return rc ? -1 : 0;
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static int titan_body(build_t *b, json_t *input, json_t *out)
{
    json_t *dims = json_object_get(b->in, "dimensions");
    if (json_is_array(input) && json_array_size(input) > 1)
        return fail(b, "Bedrock Titan embeds one input per request; send one input (got %zu)",
                    json_array_size(input));
    if (json_is_array(input))
        input = json_array_get(input, 0);
    if (!json_is_string(input))
        return fail(b, "input must be a string (Titan embeds one text per request)");
    json_object_set(out, "inputText", input);
    if (json_is_integer(dims))
        json_object_set(out, "dimensions", dims);
    return 0;
}

static int cohere_body(build_t *b, json_t *input, json_t *out)
{
    json_t *it = json_object_get(b->in, "input_type"), *s;
    size_t i;
    if (json_is_array(input)) {
        if (json_array_size(input) == 0)
            return fail(b, "input must not be empty");
        json_array_foreach(input, i, s)
        {
            if (!json_is_string(s))
                return fail(b, "input[%zu] must be a string", i);
        }
        json_object_set(out, "texts", input);
    } else if (json_is_string(input)) {
        json_object_set_new(out, "texts", json_pack("[O]", input));
    } else {
        return fail(b, "input must be a string or an array of strings");
    }
    json_object_set_new(out, "input_type",
                        json_is_string(it) ? json_incref(it) : json_string("search_document"));
    return 0;
}

static int embeddings_body(build_t *b, const char *model, json_t *out)
{
    json_t *input = json_object_get(b->in, "input");
    if (strstr(model, "cohere.embed") != NULL)
        return cohere_body(b, input, out);
    if (strstr(model, "titan-embed") != NULL)
        return titan_body(b, input, out);
    return fail(b, "bedrock embeddings support amazon.titan-embed-* and cohere.embed-* models, not '%.128s'",
                model);
}

/* ---- entry ----------------------------------------------------------------------------------- */

static int dump_cb(const char *buf, size_t size, void *data)
{
    return ad_buf_append(data, buf, size) == 0 ? 0 : -1;
}

static int build_body(build_t *b, const char *model, ad_buf_t *out)
{
    json_t *body = json_object();
    int rc = b->req->op == AD_OP_EMBEDDINGS ? embeddings_body(b, model, body) : chat_body(b, model, body);
    if (rc == 0 && json_dump_callback(body, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
        rc = fail(b, "bedrock: request too large to forward");
    json_decref(body);
    return rc;
}

static int build_request(const ad_request_t *req, const ad_deployment_t *dep, ad_http_request_t *out,
                         char *errbuf, size_t errlen)
{
    build_t b = {req, dep, NULL, errbuf, errlen};
    creds_t c = {0};
    target_t t;
    json_error_t jerr;
    int rc = -1;
    ad_buf_init(&t.origin, MAX_URL_PART);
    ad_buf_init(&t.host, MAX_URL_PART);
    ad_buf_init(&t.path, MAX_URL_PART);
    const char *model = model_id(dep);
    const char *action = req->op == AD_OP_EMBEDDINGS ? "invoke"
                         : req->stream               ? "converse-stream"
                                                     : "converse";
    if (req->op != AD_OP_CHAT && req->op != AD_OP_EMBEDDINGS)
        fail(&b, "bedrock supports chat completions and embeddings only");
    else if (model[0] == '\0')
        fail(&b, "bedrock: the deployment has no model id");
    else if ((b.in = json_loadb(req->body, req->body_len, 0, &jerr)) == NULL || !json_is_object(b.in))
        fail(&b, "request body is not a JSON object: %s", b.in == NULL ? jerr.text : "wrong type");
    else if (read_creds(&b, &c) == 0 && resolve_target(&b, &c, model, action, &t) == 0 &&
             build_body(&b, model, &out->body) == 0) {
        out->method = "POST";
        if (ad_buf_append(&out->url, t.origin.data, t.origin.len) != 0 ||
            ad_buf_append(&out->url, t.path.data, t.path.len) != 0)
            fail(&b, "bedrock: URL too long");
        else
            rc = add_auth_headers(&b, &c, &t, out);
    }
    json_decref(b.in);
    ad_buf_free(&t.origin);
    ad_buf_free(&t.host);
    ad_buf_free(&t.path);
    return rc;
}

const ad_adapter_t ad_bedrock = {
    .name = "bedrock",
    .abi_version = AD_ABI_VERSION,
    .caps = AD_CAP_STREAM | AD_CAP_TOOLS | AD_CAP_VISION | AD_CAP_EMBEDDINGS,
    .build_request = build_request,
    .parse_response = ad_bedrock_parse_response,
    .stream_init = ad_bedrock_stream_init,
    .stream_feed = ad_bedrock_stream_feed,
    .stream_finish = ad_bedrock_stream_finish,
    .map_error = ad_bedrock_map_error,
    .state_size = sizeof(ad_bedrock_stream_t),
    .stream_free = ad_bedrock_stream_free,
};

/*
 * gemini_request.c — an OpenAI chat request → a Gemini generateContent body (providers.md §4.2).
 *
 * Messages become `contents` with roles user/model; system and developer messages are joined
 * into `systemInstruction` (Gemini has one; a request with nothing but system text sends it as
 * the user turn, since contents may not be empty). Consecutive turns of one role are merged, so
 * the results of parallel tool calls land in one user turn as Gemini requires.
 *
 * Tool calls: an assistant's tool_calls become functionCall parts (arguments parsed: Gemini wants
 * an object; a thoughtSignature carried in the id goes back on the part, see gemini_int.h); a
 * tool message becomes a functionResponse part whose name is looked up from the call with the
 * same id (Gemini matches results by name) and whose response is the content when that is a
 * JSON object, else {"content": <text>}. Ids are not sent back: the ones we made up mean nothing
 * to Gemini, which pairs results with calls by name and order when calls carry no id.
 *
 * Content parts: text; image_url with a data: URL → inlineData, with any other URL → fileData
 * (mimeType guessed from the extension; adapters do no I/O, so nothing is downloaded);
 * input_audio → inlineData; file with file_data (data: URL) → inlineData, with file_id → fileData.
 * Empty text parts are left out (Gemini rejects them), and a turn without parts is dropped.
 *
 * Unknown request fields are ignored; values of the wrong type for a mapped field are ignored
 * too, except where dropping them would change the conversation (messages, tool calls), which
 * is a 400 with a message naming the field.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters/gemini_int.h"

typedef struct ctx {
    const json_t *messages;
    json_t *contents;
    json_t *system; /* parts of systemInstruction */
    char *err;
    size_t errlen;
} ctx_t;

__attribute__((format(printf, 2, 3))) static int fail(ctx_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int str_eq(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static void add_text(json_t *parts, const json_t *text)
{
    if (json_is_string(text) && json_string_length(text) > 0)
        json_array_append_new(parts, json_pack("{sO}", "text", text));
}

/* Appends parts as a turn of role, merged into the previous turn when it has the same role. */
static void add_turn(ctx_t *c, const char *role, json_t *parts)
{
    size_t n = json_array_size(c->contents);
    json_t *last = n > 0 ? json_array_get(c->contents, n - 1) : NULL;
    if (json_array_size(parts) == 0) {
        json_decref(parts);
    } else if (last != NULL && str_eq(json_object_get(last, "role"), role)) {
        json_array_extend(json_object_get(last, "parts"), parts);
        json_decref(parts);
    } else {
        json_array_append_new(c->contents, json_pack("{sssO}", "role", role, "parts", parts));
        json_decref(parts);
    }
}

/* ---- content parts ------------------------------------------------------------------------ */

static const struct {
    const char *ext, *mime;
} mime_by_ext[] = {
    {".png", "image/png"},   {".jpg", "image/jpeg"},      {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},   {".webp", "image/webp"},     {".heic", "image/heic"},
    {".heif", "image/heif"}, {".pdf", "application/pdf"}, {".wav", "audio/wav"},
    {".mp3", "audio/mp3"},   {".ogg", "audio/ogg"},       {".flac", "audio/flac"},
    {".mp4", "video/mp4"},   {".mov", "video/quicktime"}, {".webm", "video/webm"},
    {".txt", "text/plain"},
};

/* The MIME type of a URL by its path's extension (query and fragment ignored), or NULL. */
static const char *guess_mime(const char *url)
{
    size_t end = strcspn(url, "?#");
    for (size_t i = 0; i < sizeof(mime_by_ext) / sizeof(mime_by_ext[0]); i++) {
        size_t n = strlen(mime_by_ext[i].ext);
        if (end >= n && strncasecmp(url + end - n, mime_by_ext[i].ext, n) == 0)
            return mime_by_ext[i].mime;
    }
    return NULL;
}

/* "data:<mime>[;params];base64,<data>" → inlineData; other URLs → fileData. */
static json_t *url_part(ctx_t *c, const char *url, const char *what)
{
    if (strncmp(url, "data:", 5) != 0) {
        const char *mime = guess_mime(url);
        json_t *fd = json_pack("{ss}", "fileUri", url);
        if (mime != NULL)
            json_object_set_new(fd, "mimeType", json_string(mime));
        return json_pack("{so}", "fileData", fd);
    }
    const char *b64 = strstr(url, ";base64,");
    size_t mime_len = strcspn(url + 5, ";,");
    if (b64 == NULL || mime_len == 0) {
        fail(c, "%s: only base64 data: URLs with a MIME type are supported", what);
        return NULL;
    }
    return json_pack("{s{ss%ss}}", "inlineData", "mimeType", url + 5, mime_len, "data", b64 + 8);
}

static json_t *image_part(ctx_t *c, const json_t *p, const char *what)
{
    const json_t *iu = json_object_get(p, "image_url");
    const json_t *url = json_is_object(iu) ? json_object_get(iu, "url") : iu;
    if (!json_is_string(url)) {
        fail(c, "%s.image_url.url must be a string", what);
        return NULL;
    }
    return url_part(c, json_string_value(url), what);
}

static json_t *audio_part(ctx_t *c, const json_t *p, const char *what)
{
    const json_t *a = json_object_get(p, "input_audio");
    const json_t *data = json_object_get(a, "data"), *fmt = json_object_get(a, "format");
    const char *f = json_string_value(fmt);
    if (!json_is_string(data) || f == NULL || f[0] == '\0' || strlen(f) > 16 ||
        f[strspn(f, "abcdefghijklmnopqrstuvwxyz0123456789")] != '\0') {
        fail(c, "%s.input_audio needs data and a format such as wav or mp3", what);
        return NULL;
    }
    char mime[64];
    snprintf(mime, sizeof(mime), "audio/%s", json_string_value(fmt));
    return json_pack("{s{sssO}}", "inlineData", "mimeType", mime, "data", data);
}

static json_t *file_part(ctx_t *c, const json_t *p, const char *what)
{
    const json_t *f = json_object_get(p, "file");
    const json_t *data = json_object_get(f, "file_data"), *id = json_object_get(f, "file_id");
    if (json_is_string(data))
        return url_part(c, json_string_value(data), what);
    if (json_is_string(id))
        return url_part(c, json_string_value(id), what);
    fail(c, "%s.file needs file_data or file_id", what);
    return NULL;
}

/* One part of a user message; NULL with c->err set when it cannot be sent. */
static json_t *user_part(ctx_t *c, const json_t *p, const char *what)
{
    const json_t *type = json_object_get(p, "type");
    if (str_eq(type, "text")) {
        const json_t *t = json_object_get(p, "text");
        if (!json_is_string(t)) {
            fail(c, "%s.text must be a string", what);
            return NULL;
        }
        return json_pack("{sO}", "text", t);
    }
    if (str_eq(type, "image_url"))
        return image_part(c, p, what);
    if (str_eq(type, "input_audio"))
        return audio_part(c, p, what);
    if (str_eq(type, "file"))
        return file_part(c, p, what);
    fail(c, "%s: content part type %s is not supported by gemini", what,
         json_is_string(type) ? json_string_value(type) : "(missing)");
    return NULL;
}

static int user_parts(ctx_t *c, const json_t *content, size_t mi, json_t *parts)
{
    if (json_is_string(content) || json_is_null(content) || content == NULL) {
        add_text(parts, content);
        return 0;
    }
    if (!json_is_array(content))
        return fail(c, "messages[%zu].content must be a string or an array of parts", mi);
    size_t i;
    const json_t *p;
    json_array_foreach(content, i, p)
    {
        char what[64];
        snprintf(what, sizeof(what), "messages[%zu].content[%zu]", mi, i);
        json_t *part = user_part(c, p, what);
        if (part == NULL)
            return -1;
        const json_t *t = json_object_get(part, "text");
        if (t != NULL && json_string_length(t) == 0)
            json_decref(part);
        else
            json_array_append_new(parts, part);
    }
    return 0;
}

/* Text of a string-or-parts content (non-text parts ignored), appended to parts. */
static void text_parts(const json_t *content, json_t *parts)
{
    if (!json_is_array(content)) {
        add_text(parts, content);
        return;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(content, i, p) if (str_eq(json_object_get(p, "type"), "text"))
        add_text(parts, json_object_get(p, "text"));
}

/* ---- tool calls and results --------------------------------------------------------------- */

/* OpenAI arguments (a JSON string, "" meaning none) → the args object Gemini wants. */
static json_t *call_args(ctx_t *c, const json_t *args, size_t mi)
{
    if (json_is_object(args))
        return json_deep_copy(args);
    if (args == NULL || json_is_null(args) || (json_is_string(args) && json_string_length(args) == 0))
        return json_object();
    json_t *o = json_is_string(args) ? json_loadb(json_string_value(args), json_string_length(args),
                                                  AD_GEMINI_LOAD_FLAGS, NULL)
                                     : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        fail(c, "messages[%zu]: tool call arguments must be a JSON object", mi);
        return NULL;
    }
    return o;
}

static int add_call(ctx_t *c, const json_t *fn, const json_t *id, size_t mi, json_t *parts)
{
    const json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name))
        return fail(c, "messages[%zu]: a tool call has no function name", mi);
    json_t *args = call_args(c, json_object_get(fn, "arguments"), mi);
    if (args == NULL)
        return -1;
    json_t *part = json_pack("{s{sOso}}", "functionCall", "name", name, "args", args);
    const char *sig = json_is_string(id) ? strstr(json_string_value(id), AD_GEMINI_SIG_SEP) : NULL;
    if (sig != NULL && sig[strlen(AD_GEMINI_SIG_SEP)] != '\0')
        json_object_set_new(part, "thoughtSignature", json_string(sig + strlen(AD_GEMINI_SIG_SEP)));
    json_array_append_new(parts, part);
    return 0;
}

static int assistant_turn(ctx_t *c, const json_t *m, size_t mi)
{
    json_t *parts = json_array();
    text_parts(json_object_get(m, "content"), parts);
    const json_t *calls = json_object_get(m, "tool_calls"), *fc = json_object_get(m, "function_call");
    size_t i;
    const json_t *tc;
    json_array_foreach(calls, i, tc)
    {
        if (add_call(c, json_object_get(tc, "function"), json_object_get(tc, "id"), mi, parts) != 0)
            goto fail;
    }
    if (json_is_object(fc) && add_call(c, fc, NULL, mi, parts) != 0)
        goto fail;
    add_turn(c, "model", parts);
    return 0;
fail:
    json_decref(parts);
    return -1;
}

/* The function name of the latest tool call with this id before message mi, or NULL. */
static const char *call_name(const ctx_t *c, const char *id, size_t mi)
{
    for (size_t k = mi; k-- > 0;) {
        const json_t *calls = json_object_get(json_array_get(c->messages, k), "tool_calls");
        size_t i;
        const json_t *tc;
        json_array_foreach(calls, i, tc)
        {
            if (str_eq(json_object_get(tc, "id"), id)) {
                const json_t *name = json_object_get(json_object_get(tc, "function"), "name");
                return json_is_string(name) ? json_string_value(name) : NULL;
            }
        }
    }
    return NULL;
}

/* The tool's output as the object Gemini wants: a JSON object as is, anything else wrapped. */
static json_t *tool_response(const json_t *content)
{
    json_t *text = json_array();
    text_parts(content, text);
    size_t total = 0, i;
    json_t *p;
    json_array_foreach(text, i, p)
    {
        if (__builtin_add_overflow(total, json_string_length(json_object_get(p, "text")), &total))
            total = SIZE_MAX;
    }
    char *joined = total < SIZE_MAX ? malloc(total + 1) : NULL;
    if (joined == NULL) {
        json_decref(text);
        return NULL;
    }
    size_t at = 0;
    json_array_foreach(text, i, p)
    {
        const json_t *t = json_object_get(p, "text");
        memcpy(joined + at, json_string_value(t), json_string_length(t));
        at += json_string_length(t);
    }
    json_decref(text);
    json_t *obj = json_loadb(joined, total, AD_GEMINI_LOAD_FLAGS, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_pack("{ss%}", "content", joined, total);
    }
    free(joined);
    return obj;
}

static int tool_turn(ctx_t *c, const json_t *m, size_t mi)
{
    const json_t *id = json_object_get(m, "tool_call_id"), *own = json_object_get(m, "name");
    const char *name = json_is_string(id) ? call_name(c, json_string_value(id), mi) : NULL;
    if (name == NULL && json_is_string(own))
        name = json_string_value(own); /* legacy function messages, or a name the client gave */
    if (name == NULL)
        return fail(c, "messages[%zu]: no earlier assistant tool call has id %s", mi,
                    json_is_string(id) ? json_string_value(id) : "(missing)");
    json_t *resp = tool_response(json_object_get(m, "content"));
    if (resp == NULL)
        return fail(c, "messages[%zu]: tool result is too large", mi);
    add_turn(c, "user", json_pack("[{s{ssso}}]", "functionResponse", "name", name, "response", resp));
    return 0;
}

/* ---- messages ----------------------------------------------------------------------------- */

static int one_message(ctx_t *c, const json_t *m, size_t mi)
{
    const json_t *role = json_object_get(m, "role");
    if (str_eq(role, "system") || str_eq(role, "developer")) {
        text_parts(json_object_get(m, "content"), c->system);
        return 0;
    }
    if (str_eq(role, "user")) {
        json_t *parts = json_array();
        if (user_parts(c, json_object_get(m, "content"), mi, parts) != 0) {
            json_decref(parts);
            return -1;
        }
        add_turn(c, "user", parts);
        return 0;
    }
    if (str_eq(role, "assistant"))
        return assistant_turn(c, m, mi);
    if (str_eq(role, "tool") || str_eq(role, "function"))
        return tool_turn(c, m, mi);
    return fail(c, "messages[%zu].role must be system, developer, user, assistant or tool", mi);
}

static int put_contents(ctx_t *c, json_t *out)
{
    size_t i;
    const json_t *m;
    json_array_foreach(c->messages, i, m)
    {
        if (!json_is_object(m))
            return fail(c, "messages[%zu] must be an object", i);
        if (one_message(c, m, i) != 0)
            return -1;
    }
    if (json_array_size(c->contents) == 0 && json_array_size(c->system) > 0) {
        add_turn(c, "user", json_incref(c->system)); /* contents may not be empty */
    } else if (json_array_size(c->system) > 0) {
        json_object_set_new(out, "systemInstruction", json_pack("{sO}", "parts", c->system));
    }
    json_object_set(out, "contents", c->contents);
    return 0;
}

/* ---- generation config, tools --------------------------------------------------------------- */

static void copy_number(json_t *gc, const char *to, const json_t *v)
{
    if (json_is_number(v))
        json_object_set(gc, to, (json_t *)v);
}

static void put_stop(json_t *gc, const json_t *stop)
{
    if (json_is_string(stop)) {
        json_object_set_new(gc, "stopSequences", json_pack("[O]", stop));
    } else if (json_is_array(stop) && json_array_size(stop) > 0) {
        json_t *seqs = json_array();
        size_t i;
        const json_t *s;
        json_array_foreach(stop, i, s) if (json_is_string(s)) json_array_append(seqs, (json_t *)s);
        json_object_set_new(gc, "stopSequences", seqs);
    }
}

static void put_response_format(json_t *gc, const json_t *rf)
{
    const json_t *type = json_object_get(rf, "type");
    if (str_eq(type, "json_object")) {
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
    } else if (str_eq(type, "json_schema")) {
        json_object_set_new(gc, "responseMimeType", json_string("application/json"));
        json_t *schema = ad_gemini_schema(json_object_get(json_object_get(rf, "json_schema"), "schema"));
        ad_gemini_schema_order(schema);
        if (schema != NULL)
            json_object_set_new(gc, "responseSchema", schema);
    }
}

static void put_generation_config(const json_t *req, json_t *out)
{
    json_t *gc = json_object();
    copy_number(gc, "temperature", json_object_get(req, "temperature"));
    copy_number(gc, "topP", json_object_get(req, "top_p"));
    copy_number(gc, "topK", json_object_get(req, "top_k"));
    const json_t *max = json_object_get(req, "max_completion_tokens");
    if (!json_is_integer(max))
        max = json_object_get(req, "max_tokens");
    if (json_is_integer(max))
        json_object_set(gc, "maxOutputTokens", (json_t *)max);
    const json_t *n = json_object_get(req, "n");
    if (json_is_integer(n))
        json_object_set(gc, "candidateCount", (json_t *)n);
    put_stop(gc, json_object_get(req, "stop"));
    if (json_is_integer(json_object_get(req, "seed")))
        json_object_set(gc, "seed", json_object_get(req, "seed"));
    copy_number(gc, "presencePenalty", json_object_get(req, "presence_penalty"));
    copy_number(gc, "frequencyPenalty", json_object_get(req, "frequency_penalty"));
    put_response_format(gc, json_object_get(req, "response_format"));
    if (json_object_size(gc) > 0)
        json_object_set(out, "generationConfig", gc);
    json_decref(gc);
}

/* {"name","description","parameters"} of an OpenAI function, parameters made Gemini-safe. A
 * parameters object without properties is left out (Gemini rejects an empty OBJECT). */
static json_t *declaration(const json_t *fn)
{
    const json_t *name = json_object_get(fn, "name"), *desc = json_object_get(fn, "description");
    if (!json_is_string(name))
        return NULL;
    json_t *d = json_pack("{sO}", "name", name);
    if (json_is_string(desc))
        json_object_set(d, "description", (json_t *)desc);
    json_t *params = ad_gemini_schema(json_object_get(fn, "parameters"));
    if (params != NULL && json_object_size(json_object_get(params, "properties")) > 0)
        json_object_set(d, "parameters", params);
    json_decref(params);
    return d;
}

static void put_tools(const json_t *req, json_t *out)
{
    json_t *decls = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(req, "tools"), i, t)
    {
        json_t *d = str_eq(json_object_get(t, "type"), "function")
                        ? declaration(json_object_get(t, "function"))
                        : NULL;
        if (d != NULL)
            json_array_append_new(decls, d);
    }
    json_array_foreach(json_object_get(req, "functions"), i, t)
    {
        json_t *d = declaration(t);
        if (d != NULL)
            json_array_append_new(decls, d);
    }
    if (json_array_size(decls) > 0)
        json_object_set_new(out, "tools", json_pack("[{sO}]", "functionDeclarations", decls));
    json_decref(decls);
}

/* tool_choice (or legacy function_call): none/auto/required, or one named function. Only sent
 * with declarations: there is nothing to configure without them. */
static void put_tool_config(const json_t *req, json_t *out)
{
    const json_t *tc = json_object_get(req, "tool_choice");
    const json_t *name = NULL;
    if (json_object_get(out, "tools") == NULL)
        return;
    if (tc == NULL)
        tc = json_object_get(req, "function_call");
    const char *mode = NULL;
    if (str_eq(tc, "none"))
        mode = "NONE";
    else if (str_eq(tc, "auto"))
        mode = "AUTO";
    else if (str_eq(tc, "required") || str_eq(tc, "any"))
        mode = "ANY";
    else if (json_is_object(tc)) {
        const json_t *fn = json_object_get(tc, "function");
        name = json_object_get(json_is_object(fn) ? fn : tc, "name");
        mode = json_is_string(name) ? "ANY" : NULL;
    }
    if (mode == NULL)
        return;
    json_t *fcc = json_pack("{ss}", "mode", mode);
    if (name != NULL)
        json_object_set_new(fcc, "allowedFunctionNames", json_pack("[O]", name));
    json_object_set_new(out, "toolConfig", json_pack("{so}", "functionCallingConfig", fcc));
}

json_t *ad_gemini_chat_body(const json_t *req, const json_t *params, char *err, size_t errlen)
{
    ctx_t c = {.messages = json_object_get(req, "messages"), .err = err, .errlen = errlen};
    if (!json_is_array(c.messages)) {
        snprintf(err, errlen, "'messages' must be an array");
        return NULL;
    }
    c.contents = json_array();
    c.system = json_array();
    json_t *out = json_object();
    int rc = put_contents(&c, out);
    json_decref(c.contents);
    json_decref(c.system);
    if (rc != 0) {
        json_decref(out);
        return NULL;
    }
    put_generation_config(req, out);
    put_tools(req, out);
    put_tool_config(req, out);
    const json_t *safety = json_object_get(req, "safety_settings");
    if (!json_is_array(safety))
        safety = json_object_get(params, "safety_settings");
    if (json_is_array(safety))
        json_object_set(out, "safetySettings", (json_t *)safety);
    return out;
}

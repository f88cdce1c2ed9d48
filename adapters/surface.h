/*
 * surface.h — translators for the inbound surfaces that are not OpenAI's own.
 *
 * Inside Tollgate every model call is an OpenAI chat call. A client that speaks another API is
 * served by translating at the edge: its request body becomes an OpenAI chat request body (which
 * then goes through any backend exactly like a request to /v1/chat/completions), and the OpenAI
 * response — a chat.completion body, a chunk stream or an OpenAI error — is translated back.
 *
 *   POST /v1/messages  Anthropic Messages API (providers.md §3; here Tollgate is the Anthropic
 *                      server, so Anthropic SDKs and Claude-Code-style tools can use any model)
 *   POST /v1/chat      the simple contract {provider?, model, messages, …} → {text, …}
 *
 * Like every adapter these are pure functions: no I/O, no globals, no clock. Outputs go to
 * caller-owned ad_buf_t buffers whose ceilings bound everything; a function that fails leaves the
 * output buffer as it found it (same length). Error strings are written with snprintf into the
 * caller's err buffer (always NUL-terminated when errlen > 0).
 */
#ifndef AD_SURFACE_H
#define AD_SURFACE_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "adapters/buf.h"

/* ---- Anthropic Messages API ----------------------------------------------------------------- */

/**
 * Translates an Anthropic Messages request body into an OpenAI chat request body appended to
 * openai_body. model is kept as is; system → first message; user/assistant blocks → OpenAI
 * messages (tool_result blocks become role "tool" messages placed before the rest of their turn,
 * whose user message also receives the images of those results, as tool messages are text only;
 * tool_use blocks become assistant tool_calls, images become image_url parts, documents text or
 * file parts, thinking blocks are dropped); max_tokens, temperature, top_p, stop_sequences → stop,
 * metadata.user_id → user, tools, tool_choice, disable_parallel_tool_use → parallel_tool_calls false
 * (tool_choice and parallel_tool_calls only when tools remain, since OpenAI rejects them otherwise); stream
 * true → stream true + stream_options.include_usage. top_k, thinking, service_tier and unknown fields are
 * dropped. Returns 0, or -1 with an Anthropic-style message ("messages.0.role: …") in err for a request the
 * core must answer with 400 (see ad_anthropic_error_body), or when openai_body's ceiling is too small.
 */
int ad_anthropic_in_request(const char *body, size_t len, ad_buf_t *openai_body, char *err, size_t errlen);

/**
 * Translates an OpenAI chat.completion body into an Anthropic message body appended to out:
 * id "msg_" + the OpenAI id without its "chatcmpl-" prefix; model = model (the OpenAI body's
 * model when NULL or ""); content = [thinking block if reasoning_content, text block if any text,
 * tool_use blocks with input parsed from arguments ({} when not a JSON object)]; stop_reason per
 * ad_anthropic_stop_reason; usage {input_tokens = prompt - cached, output_tokens,
 * cache_creation_input_tokens 0, cache_read_input_tokens = cached}.
 * Returns 0, or -1 when the body is not an OpenAI completion (no choices[0]) or out is full.
 */
int ad_anthropic_in_response(const char *openai_body, size_t len, const char *model, ad_buf_t *out);

/** One OpenAI tool call of a stream and the Anthropic content block it became. */
typedef struct ad_anthropic_tool {
    int64_t oai_index; /* tool_calls[].index */
    int block;         /* Anthropic content block index */
} ad_anthropic_tool_t;

/**
 * Streaming encoder: OpenAI chat.completion.chunk objects in → Anthropic SSE bytes out.
 *
 * Event sequence (providers.md §3.4): message_start once, first (its usage is a placeholder:
 * input_tokens 0, output_tokens 0, because OpenAI reports usage only at the end of a stream; the
 * real counts go in message_delta, whose usage the Anthropic SDKs copy over the placeholder);
 * then content blocks with consecutive indexes, one open at a time: a thinking block for
 * reasoning_content deltas, a text block for content deltas, one tool_use block per OpenAI tool
 * call index (id, name, input {}; argument fragments → input_json_delta); a block of another kind
 * or another tool call stops the open one. enc_finish stops the open block and writes
 * message_delta {stop_reason, stop_sequence null; usage output_tokens and, when known,
 * input_tokens, cache_read_input_tokens, cache_creation_input_tokens 0} and message_stop.
 *
 * Each event is written as "event: <type>\ndata: <json>\n\n". Only choice 0 is translated
 * (Anthropic has no n). A provider that interleaves the argument fragments of parallel tool calls
 * gets the late fragments written to the tool call's own (already stopped) block index: nothing
 * is lost and the SDK accumulators index by block, but it breaks the one-open-block rule; OpenAI
 * and the compatible servers we know stream calls one after another.
 *
 * The struct is public so callers can embed it; treat the fields as private.
 */
typedef struct ad_anthropic_enc {
    char model[256];
    char msg_id[160];
    int started;                /* message_start written */
    int done;                   /* message_stop or an error written: nothing more will be */
    int errored;                /* the stream ended with an error event */
    int open_block;             /* index of the open content block, -1 when none */
    int open_kind;              /* kind of the open block (private enum) */
    int n_blocks;               /* blocks started so far (= next index) */
    ad_anthropic_tool_t *tools; /* malloc'd, n_tools used of cap_tools */
    size_t n_tools, cap_tools;
    char stop_reason[32]; /* Anthropic value, "" until a finish_reason arrived */
    ad_usage_t usage;     /* from the usage chunk (or any chunk's usage); -1 unknown */
} ad_anthropic_enc_t;

/**
 * Prepares e. model: reported in message_start (when NULL or "", the first chunk's model).
 * msg_id: the message id ("msg_" is prepended when missing; when NULL or "", derived from the
 * first chunk's id like ad_anthropic_in_response does, and message_start waits for a chunk that
 * has one or for the first event to write).
 */
void ad_anthropic_enc_init(ad_anthropic_enc_t *e, const char *model, const char *msg_id);

/**
 * Consumes one OpenAI chunk JSON object (every chunk of the stream, in order, including the
 * usage chunk with choices []) and appends the Anthropic SSE bytes it yields (maybe none).
 * A chunk with a top-level "error" becomes an error event (see ad_anthropic_enc_error) and ends
 * the stream. Returns 0; 1 when the stream has ended with an error (this chunk or before; nothing
 * is written); -1 when chunk_json is not a JSON object or out's ceiling was reached (out and e
 * unchanged: the call can be repeated with more room). Chunks after enc_finish are ignored (0).
 */
int ad_anthropic_enc_chunk(ad_anthropic_enc_t *e, const char *chunk_json, size_t len, ad_buf_t *out);

/**
 * End of the OpenAI stream ([DONE], or the upstream ended): stops the open block, writes
 * message_delta and message_stop (and message_start first if nothing was written yet). Writes
 * nothing after an error or a previous finish. Returns 0, -1 when out is full (out and e
 * unchanged).
 */
int ad_anthropic_enc_finish(ad_anthropic_enc_t *e, ad_buf_t *out);

/**
 * A keep-alive (the upstream sent an SSE comment, or the core's own timer): appends
 * "event: ping\ndata: {"type":"ping"}\n\n", after message_start (written first if needed), so
 * Anthropic clients with idle timeouts see traffic while a model thinks. Nothing once e is done.
 * Returns 0, -1 when out is full (out and e unchanged).
 */
int ad_anthropic_enc_ping(ad_anthropic_enc_t *e, ad_buf_t *out);

/**
 * The stream failed (an AD_EV_ERROR event, or the core's own error such as a truncated
 * upstream): writes the error event like ad_anthropic_enc_error and marks e done, so a later
 * enc_finish writes nothing. Writes nothing if e is already done. Returns 0 or -1 (out full).
 */
int ad_anthropic_enc_abort(ad_anthropic_enc_t *e, const char *openai_error_json, size_t len, ad_buf_t *out);

/** Releases what the encoder allocated; e can be initialised again afterwards. */
void ad_anthropic_enc_free(ad_anthropic_enc_t *e);

/**
 * Stateless: appends "event: error\ndata: {"type":"error","error":{"type":…,"message":…}}\n\n"
 * for an OpenAI error JSON ({"error":{…}}; also tolerates a bare error object or a string error).
 * The type comes from the OpenAI type/code (see ad_anthropic_error_type_for); text that is not
 * JSON gives api_error with a generic message. Returns 0, -1 when out is full (out unchanged).
 */
int ad_anthropic_enc_error(const char *openai_error_json, size_t len, ad_buf_t *out);

/**
 * A non-stream error reply: appends {"type":"error","error":{"type":…,"message":…}} with the
 * type chosen by status (ad_anthropic_error_type) and the message from the OpenAI error (or
 * "HTTP <status>" when there is none). Returns 0, -1 when out is full (out unchanged).
 */
int ad_anthropic_error_body(int status, const char *openai_error_json, size_t len, ad_buf_t *out);

/**
 * Anthropic error.type for an HTTP status: 400 invalid_request_error, 401 authentication_error,
 * 402 billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
 * rate_limit_error, 503/529 overloaded_error, other 4xx invalid_request_error, other statuses
 * api_error. Static strings.
 */
const char *ad_anthropic_error_type(int status);

/**
 * Anthropic error.type for an OpenAI error's type and code (either may be NULL): Anthropic's own
 * type names are kept; otherwise rate limit / quota → rate_limit_error, authentication / invalid
 * key → authentication_error, permission → permission_error, not found → not_found_error,
 * overloaded / unavailable → overloaded_error, too large → request_too_large, invalid request →
 * invalid_request_error, anything else api_error.
 */
const char *ad_anthropic_error_type_for(const char *oai_type, const char *oai_code);

/**
 * Anthropic stop_reason for an OpenAI finish_reason: stop → end_turn, length → max_tokens,
 * tool_calls / function_call → tool_use, content_filter → refusal, anything else end_turn; "stop"
 * becomes tool_use when the message holds tool calls (some servers say stop after calling tools).
 */
const char *ad_anthropic_stop_reason(const char *finish_reason, int has_tool_calls);

/* ---- The simple contract: POST /v1/chat ----------------------------------------------------- */

/**
 * {provider?, model, messages, temperature?, top_p?, max_tokens?} → an OpenAI chat request body
 * (stream false; messages forwarded as given, they are OpenAI-shaped; other fields dropped).
 * provider is copied out ("" when absent). Returns 0, or -1 with a message in err for a request
 * to answer with 400 (or when openai_body is full).
 */
int ad_simple_in_request(const char *body, size_t len, ad_buf_t *openai_body, char *provider,
                         size_t provider_cap, char *err, size_t errlen);

/**
 * OpenAI chat.completion → {text, provider, model, tokens_in, tokens_out, latency_ms}: text is
 * choices[0].message.content ("" when null; text parts joined when an array), tokens from usage
 * (0 when absent); model = model (the body's model when NULL or ""). Returns 0, or -1 when the
 * body is not an OpenAI completion or out is full.
 */
int ad_simple_out_response(const char *openai_body, size_t len, const char *provider, const char *model,
                           int64_t latency_ms, ad_buf_t *out);

/**
 * OpenAI error → {"error":{"code","message","provider"}}: code = the OpenAI error's code when it
 * is a string, else its type, else "api_error"; message from the error ("upstream error" when
 * none). Returns 0, -1 when out is full (out unchanged).
 */
int ad_simple_error_body(const char *openai_error_json, size_t len, const char *provider, ad_buf_t *out);

#endif

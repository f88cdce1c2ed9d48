/*
 * oai_write.h — writes OpenAI's chat formats for translating adapters, so every provider's
 * output has exactly one shape: chat.completion bodies, chat.completion.chunk stream events
 * (role chunk, text and tool-call deltas, finish chunk, usage chunk, [DONE]), embeddings lists
 * (float or base64) and error objects.
 *
 * Stream side: an adapter calls ad_oai_stream_begin once it knows the response id and model, then
 * the ad_oai_emit_* functions; each writes one chunk JSON into st->scratch and emits it through
 * st->emit. The role chunk is sent automatically before the first delta. The usage chunk is
 * marked hidden unless the client asked for it (st->client_wants_usage), and st->usage is kept.
 */
#ifndef AD_OAI_WRITE_H
#define AD_OAI_WRITE_H

#include "adapters/adapter.h"

/** Identity of the chunks of one stream. Keep it in the adapter's state. */
typedef struct ad_oai_stream {
    char id[128];
    char model[256];
    int64_t created;
    int role_sent;
    int finish_sent;
    int done_sent;
    int choice; /* choices[].index of the deltas: 0, or one ad_oai_stream_t per choice when n > 1 */
} ad_oai_stream_t;

/** Sets id ("chatcmpl-" + id_hint when it has no prefix), model and created (req->now). */
void ad_oai_stream_begin(ad_oai_stream_t *o, const ad_stream_t *st, const char *id_hint, const char *model);

/** The role chunk now (delta role assistant, content ""), unless it was already sent. */
int ad_oai_emit_role(ad_oai_stream_t *o, ad_stream_t *st);
int ad_oai_emit_text(ad_oai_stream_t *o, ad_stream_t *st, const char *text, size_t len);
/** Reasoning text as DeepSeek-style delta.reasoning_content. */
int ad_oai_emit_reasoning(ad_oai_stream_t *o, ad_stream_t *st, const char *text, size_t len);
/** First fragment of tool call `index`: id, type function, name, arguments "". */
int ad_oai_emit_tool_start(ad_oai_stream_t *o, ad_stream_t *st, int index, const char *id, const char *name);
/** A piece of tool call `index`'s arguments (JSON text fragment). */
int ad_oai_emit_tool_args(ad_oai_stream_t *o, ad_stream_t *st, int index, const char *frag, size_t len);
/** The finish chunk: delta {} with finish_reason (stop, length, tool_calls, content_filter). */
int ad_oai_emit_finish(ad_oai_stream_t *o, ad_stream_t *st, const char *finish_reason);
/** The usage chunk from st->usage (choices: []), hidden unless the client asked for usage. */
int ad_oai_emit_usage(ad_oai_stream_t *o, ad_stream_t *st);
/** [DONE]. Sets st->saw_done. */
int ad_oai_emit_done(ad_oai_stream_t *o, ad_stream_t *st);
/** An error event {"error":{message,type,param:null,code}} (st->saw_error = 1). */
int ad_oai_emit_error(ad_stream_t *st, const char *message, const char *type, const char *code);

/** One assistant message for a non-stream body. */
typedef struct ad_oai_tool_call {
    const char *id;
    const char *name;
    const char *arguments; /* JSON text */
} ad_oai_tool_call_t;

typedef struct ad_oai_message {
    const char *id; /* response id ("chatcmpl-…" added when it has no prefix) */
    const char *model;
    int64_t created;
    const char *content; /* NULL → JSON null */
    size_t content_len;
    const char *reasoning; /* NULL → omitted */
    const ad_oai_tool_call_t *tool_calls;
    size_t n_tool_calls;
    const char *finish_reason;
    ad_usage_t usage; /* cached/reasoning -1 → details omitted */
} ad_oai_message_t;

/** Writes a complete chat.completion body. */
int ad_oai_write_completion(const ad_oai_message_t *m, ad_buf_t *out);
/**
 * The same with n choices (n > 1 requests): choice i is m[i]'s message and finish_reason; id,
 * model, created and usage come from m[0].
 */
int ad_oai_write_completion_n(const ad_oai_message_t *m, size_t n, ad_buf_t *out);

/** Writes the usage object ({"prompt_tokens",…,"total_tokens"[,details]}). */
int ad_oai_write_usage(const ad_usage_t *u, ad_buf_t *out);

/**
 * Embeddings list: vectors[i] has dims floats. base64 → each embedding is base64 of float32 LE.
 */
int ad_oai_write_embeddings(const float *const *vectors, size_t n, size_t dims, int base64, const char *model,
                            int64_t prompt_tokens, ad_buf_t *out);

/** 1 when the request's encoding_format is "base64". */
int ad_oai_wants_base64(const ad_request_t *req);

#endif

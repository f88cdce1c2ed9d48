/*
 * errmap.h — building blocks for the map_error slot of adapters whose providers do not answer
 * with OpenAI's error object (Ollama's {"error":"text"}, Azure's envelope with null type and
 * codes like "DeploymentNotFound", Open WebUI's {"detail":…}).
 *
 * Every client of Tollgate gets OpenAI's four-key shape {"error":{message,type,param,code}} with
 * the type the official SDKs expect for the status, so each adapter only has to find the
 * provider's message and code and hand them here.
 */
#ifndef AD_ERRMAP_H
#define AD_ERRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/buf.h"

/** OpenAI's error type for an HTTP status (invalid_request_error, authentication_error, …). */
const char *ad_errmap_type(int status);

/** 1 for statuses worth another try or another deployment: 408, 409, 429 and 5xx. */
int ad_errmap_retryable(int status);

/**
 * Retry-After as milliseconds: delta-seconds (fractions allowed) below one day, else -1. HTTP-date
 * values give -1 too: adapters read no clock.
 */
int64_t ad_errmap_retry_ms(const char *retry_after);

/**
 * Appends {"error":{"message","type","param","code"}}; param and code may be NULL (JSON null). A
 * message longer than 8 KiB is cut at a UTF-8 boundary. On -1 (out's ceiling) out is unchanged.
 */
int ad_errmap_json(ad_buf_t *out, const char *message, const char *type, const char *param, const char *code);

/**
 * The message for an error body that carries none we can read: "upstream returned HTTP <status>"
 * plus up to 200 bytes of the body with anything but printable ASCII blanked (bodies can be HTML
 * or binary). Always NUL-terminates msg.
 */
void ad_errmap_snippet(int status, const char *body, size_t len, char *msg, size_t cap);

#endif

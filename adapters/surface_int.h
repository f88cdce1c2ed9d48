/*
 * surface_int.h — helpers shared by the inbound-surface translators (surface_anthropic.c,
 * surface_simple.c). Private to adapters/: not part of the surface API.
 *
 * The surfaces translate whole documents, so they parse with jansson (DESIGN §4 allows a DOM on
 * translating paths) and write with ad_surf_write_json, which bounds output by the buffer's
 * ceiling and prints reals in their shortest round-trip form (jansson's own dumper writes 0.7 as
 * 0.69999999999999996, which upstreams accept but people reading logs do not).
 */
#ifndef AD_SURFACE_INT_H
#define AD_SURFACE_INT_H

#include <jansson.h>
#include <stddef.h>

#include "adapters/buf.h"

/** Parses p[0..len) (strings may hold \u0000). Returns a new reference or NULL. */
json_t *ad_surf_parse(const char *p, size_t len, json_error_t *je);

/**
 * Appends v as compact JSON (object keys in insertion order). 0; -1 when out is full; -2 when v
 * nests deeper than AD_JSON_MAX_DEPTH containers (the core's scanner would refuse it). On
 * failure out is unchanged.
 */
int ad_surf_write_json(const json_t *v, ad_buf_t *out);

/**
 * Appends s[0..n) as a quoted JSON string, with the short escapes (\n, \t, …) Anthropic and
 * OpenAI use; 0, or -1 with out unchanged.
 */
int ad_surf_json_str(ad_buf_t *out, const char *s, size_t n);

/** Appends a JSON string value's bytes (not quoted). */
int ad_surf_append_str(ad_buf_t *out, const json_t *s);

/**
 * Appends the text of an OpenAI message content: a string as is, an array's text parts
 * ({"type":"text","text"} or any part with a string "text") joined with sep; else nothing.
 */
int ad_surf_content_text(const json_t *content, const char *sep, ad_buf_t *out);

/**
 * Finds the parts of an OpenAI-style error document: root {"error":{message,type,code}},
 * {"error":"text"}, or a bare {message,type,code}. Each out pointer is set to a string borrowed
 * from root, or NULL when that part is absent or not a string.
 */
void ad_surf_error_fields(const json_t *root, const char **message, const char **type, const char **code);

/** int64 member value when it is a JSON integer, else dflt. */
int64_t ad_surf_int(const json_t *obj, const char *key, int64_t dflt);

/** snprintf into err (when errlen > 0) and return -1, so callers can `return fail(…)`. */
int ad_surf_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Truncates b back to len (a failed multi-part append leaves no partial output). */
void ad_surf_truncate(ad_buf_t *b, size_t len);

#endif

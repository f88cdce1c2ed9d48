/*
 * buf.h — a growable byte buffer that states its ceiling when it is created.
 *
 * Every dynamic buffer in Tollgate is an ad_buf_t: appends past `max` fail with -1 instead of
 * growing, so a hostile peer can never make us allocate without bound. Memory comes from malloc
 * and is released by ad_buf_free; the buffer is not thread-safe (one owner).
 */
#ifndef AD_BUF_H
#define AD_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct ad_buf {
    char *data; /* NUL-terminated when non-NULL (a NUL is kept after len, not counted) */
    size_t len;
    size_t cap;
    size_t max; /* ceiling for len; appends that would exceed it fail */
} ad_buf_t;

/** Initialises an empty buffer that will never hold more than max bytes. Allocates nothing. */
void ad_buf_init(ad_buf_t *b, size_t max);
/** Ensures room for extra more bytes. 0 on success, -1 past the ceiling or out of memory. */
int ad_buf_reserve(ad_buf_t *b, size_t extra);
/** Appends n bytes. 0 on success, -1 (buffer unchanged) past the ceiling or out of memory. */
int ad_buf_append(ad_buf_t *b, const void *p, size_t n);
/** Appends a NUL-terminated string. */
int ad_buf_puts(ad_buf_t *b, const char *s);
/** printf-style append; -1 (buffer unchanged) past the ceiling. */
int ad_buf_appendf(ad_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ad_buf_vappendf(ad_buf_t *b, const char *fmt, va_list ap);
/** Appends s[0..n) as a quoted JSON string with escapes (control chars as \u00XX). */
int ad_buf_append_json_str(ad_buf_t *b, const char *s, size_t n);
/** Drops the first n bytes (n <= len), moving the rest to the front. */
void ad_buf_consume(ad_buf_t *b, size_t n);
/** len = 0, keeps the allocation. */
void ad_buf_reset(ad_buf_t *b);
/** Frees the allocation; the buffer is empty and reusable afterwards (same max). */
void ad_buf_free(ad_buf_t *b);

#endif

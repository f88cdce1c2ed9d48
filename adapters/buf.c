/*
 * buf.c — the bounded byte buffer behind every dynamic allocation in the adapters.
 *
 * Invariants: when data is non-NULL, cap is the allocation size and cap >= len + 1 so a NUL can
 * always sit at data[len]; len never exceeds max. Every append either succeeds completely or
 * leaves len and the bytes before it untouched, so a caller that sees -1 can still use (or
 * report) what it had. Growth doubles to amortise appends but never allocates past max + 1.
 */
#include "adapters/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 64

void ad_buf_init(ad_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Next allocation size for a buffer that must hold want bytes (NUL included): doubling, at
 * least BUF_MIN_ALLOC, never past limit (max + 1, or SIZE_MAX when that overflows). */
static size_t grow_size(size_t cap, size_t want, size_t limit)
{
    size_t n = cap > 0 ? cap : BUF_MIN_ALLOC;
    while (n < want) {
        if (__builtin_mul_overflow(n, 2, &n)) {
            n = limit;
            break;
        }
    }
    return n < limit ? n : limit;
}

int ad_buf_reserve(ad_buf_t *b, size_t extra)
{
    size_t need, want, limit;
    if (__builtin_add_overflow(b->len, extra, &need) || need > b->max)
        return -1;
    if (__builtin_add_overflow(need, 1, &want))
        return -1; /* max == SIZE_MAX and the request would leave no room for the NUL */
    if (b->data != NULL && want <= b->cap)
        return 0;
    if (__builtin_add_overflow(b->max, 1, &limit))
        limit = SIZE_MAX;
    size_t ncap = grow_size(b->cap, want, limit);
    char *nd = realloc(b->data, ncap);
    if (nd == NULL)
        return -1;
    if (b->data == NULL)
        nd[0] = '\0';
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int ad_buf_append(ad_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    /* Appending a slice of the buffer itself must survive the realloc below. */
    const char *src = p;
    int inside = b->data != NULL && src >= b->data && src < b->data + b->cap;
    size_t off = inside ? (size_t)(src - b->data) : 0;
    if (ad_buf_reserve(b, n) != 0)
        return -1;
    if (inside)
        src = b->data + off;
    memmove(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ad_buf_puts(ad_buf_t *b, const char *s)
{
    return ad_buf_append(b, s, strlen(s));
}

int ad_buf_appendf(ad_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ad_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 2, 0))) int ad_buf_vappendf(ad_buf_t *b, const char *fmt, va_list ap)
{
    /* First try to format straight into the spare room; only a too-small buffer pays for a
     * second formatting pass after growing. */
    size_t room = b->data != NULL ? b->cap - b->len : 0;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        goto fail;
    if ((size_t)n < room) {
        /* cap <= max + 1 implies this, unless the owner lowered max after growing. */
        if (b->len > b->max || (size_t)n > b->max - b->len)
            goto fail;
        b->len += (size_t)n;
        return 0;
    }
    if (ad_buf_reserve(b, (size_t)n) != 0)
        goto fail;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
fail:
    if (b->data != NULL)
        b->data[b->len] = '\0'; /* a partial first pass may have overwritten the NUL */
    return -1;
}

/* Bytes that can be copied into a JSON string literal without an escape. */
static int json_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

/* Appends the escape sequence for one byte that json_plain rejected. */
static int append_escape(ad_buf_t *b, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '"')
        return ad_buf_append(b, "\\\"", 2);
    if (c == '\\')
        return ad_buf_append(b, "\\\\", 2);
    char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0x0f]};
    return ad_buf_append(b, u, sizeof u);
}

int ad_buf_append_json_str(ad_buf_t *b, const char *s, size_t n)
{
    size_t old = b->len;
    const unsigned char *u = (const unsigned char *)s;
    if (ad_buf_append(b, "\"", 1) != 0)
        return -1;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && json_plain(u[run]))
            run++;
        if (ad_buf_append(b, s + i, run - i) != 0)
            goto fail;
        if (run < n && append_escape(b, u[run]) != 0)
            goto fail;
        i = run + 1;
    }
    if (ad_buf_append(b, "\"", 1) != 0)
        goto fail;
    return 0;
fail:
    b->len = old;
    b->data[old] = '\0';
    return -1;
}

void ad_buf_consume(ad_buf_t *b, size_t n)
{
    if (n >= b->len) {
        ad_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

void ad_buf_reset(ad_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void ad_buf_free(ad_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

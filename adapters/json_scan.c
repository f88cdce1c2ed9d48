/*
 * json_scan.c — validating, allocation-free scan of a JSON text (RFC 8259).
 *
 * This runs on every request body before anything else looks at it, so it is written for speed:
 * one forward pass, no allocation, no recursion. Nesting is tracked in a bit stack (one bit per
 * open container, 1 = object) bounded by AD_JSON_MAX_DEPTH, so hostile depth costs 32 bytes of
 * stack, not a stack overflow. Strings are skipped eight bytes at a time: a word is only looked at
 * byte by byte when it holds a quote, a backslash or a control character. Bytes >= 0x80 inside
 * strings are accepted as they are (UTF-8 is the caller's business); outside strings they are an
 * error like any other unexpected byte.
 *
 * Decoding helpers (key comparison, string and number accessors) work on spans the scanner
 * produced but re-check what they rely on, so a hand-built span cannot make them overrun.
 */
#include "adapters/json_scan.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Longest number text ad_json_span_double converts (it needs a NUL-terminated copy). */
#define NUM_TEXT_MAX 1024

typedef struct scan {
    const unsigned char *p;
    size_t len;
    size_t pos;
    size_t err; /* offset of the first error, meaningful after a -1 */
    int stop;   /* non-zero value a member callback returned */
} scan_t;

/* Containers open while scanning one value; bit d of kinds is the container at depth d. */
typedef struct nest {
    uint64_t kinds[AD_JSON_MAX_DEPTH / 64];
    unsigned depth; /* open containers, counting those around the value */
    unsigned base;  /* depth at which the value started: closing below it is the caller's job */
} nest_t;

static int fail(scan_t *sc, size_t at)
{
    sc->err = at;
    return -1;
}

static inline int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline void skip_ws(scan_t *sc)
{
    while (sc->pos < sc->len && is_ws(sc->p[sc->pos]))
        sc->pos++;
}

static inline int at(const scan_t *sc, unsigned char c)
{
    return sc->pos < sc->len && sc->p[sc->pos] == c;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Non-zero when some byte of w is '"', '\\' or below 0x20: the bytes a string scan must stop at.
 * Classic zero-byte / less-than tricks; they are exact about "some byte matches", which is all we
 * ask (the position is found byte by byte afterwards). Bytes >= 0x80 never match. */
static inline uint64_t word_special(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    uint64_t ctl = (w - ONES * 0x20) & ~w;
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ctl) & HIGHS;
}

static inline int byte_special(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* First index >= i of a byte that ends a run of plain string bytes, or len. */
static inline size_t skip_plain(const unsigned char *p, size_t i, size_t len)
{
    while (len - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (word_special(w))
            break;
        i += 8;
    }
    while (i < len && !byte_special(p[i]))
        i++;
    return i;
}

static inline int hexval(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Value of four hex digits at s, or -1. */
static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s[k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the well-formed escape starting at p[i] == '\\', or 0 when it is malformed. */
static size_t escape_len(const unsigned char *p, size_t i, size_t len)
{
    if (len - i < 2)
        return 0;
    switch (p[i + 1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u':
        return len - i >= 6 && hex4(p + i + 2) >= 0 ? 6 : 0;
    default:
        return 0;
    }
}

/* pos is at an opening quote; moves past the closing one. Errors point at the offending byte
 * (the backslash of a bad escape), or at len for an unterminated string. */
static int scan_string(scan_t *sc)
{
    size_t i = sc->pos + 1;
    for (;;) {
        i = skip_plain(sc->p, i, sc->len);
        if (i >= sc->len)
            return fail(sc, sc->len);
        unsigned char c = sc->p[i];
        if (c == '"') {
            sc->pos = i + 1;
            return 0;
        }
        if (c != '\\')
            return fail(sc, i); /* raw control character */
        size_t n = escape_len(sc->p, i, sc->len);
        if (n == 0)
            return fail(sc, i);
        i += n;
    }
}

/* Index past a non-empty run of digits starting at i, or 0 (never a valid end) when none. */
static inline size_t digits(const unsigned char *p, size_t i, size_t len)
{
    if (i >= len || !is_digit(p[i]))
        return 0;
    while (i < len && is_digit(p[i]))
        i++;
    return i;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? — a leading zero ends the integer part,
 * so "01" fails when the caller finds the stray '1' where a delimiter must be. */
static int scan_number(scan_t *sc)
{
    const unsigned char *p = sc->p;
    size_t len = sc->len, i = sc->pos;
    if (p[i] == '-')
        i++;
    if (i < len && p[i] == '0')
        i++;
    else if ((i = digits(p, i, len)) == 0)
        return fail(sc, sc->pos);
    if (i < len && p[i] == '.' && (i = digits(p, i + 1, len)) == 0)
        return fail(sc, sc->pos);
    if (i < len && (p[i] | 0x20) == 'e') {
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            i++;
        if ((i = digits(p, i, len)) == 0)
            return fail(sc, sc->pos);
    }
    sc->pos = i;
    return 0;
}

static int scan_literal(scan_t *sc, const char *word, size_t n)
{
    if (sc->len - sc->pos < n || memcmp(sc->p + sc->pos, word, n) != 0)
        return fail(sc, sc->pos);
    sc->pos += n;
    return 0;
}

static ad_jtype_t type_of(unsigned char c)
{
    switch (c) {
    case '{':
        return AD_J_OBJECT;
    case '[':
        return AD_J_ARRAY;
    case '"':
        return AD_J_STRING;
    case 't':
        return AD_J_TRUE;
    case 'f':
        return AD_J_FALSE;
    case 'n':
        return AD_J_NULL;
    default:
        return c == '-' || is_digit(c) ? AD_J_NUMBER : AD_J_NONE;
    }
}

/* Any value that is not a container; pos is at its first byte. */
static int scan_scalar(scan_t *sc)
{
    switch (type_of(sc->p[sc->pos])) {
    case AD_J_STRING:
        return scan_string(sc);
    case AD_J_NUMBER:
        return scan_number(sc);
    case AD_J_TRUE:
        return scan_literal(sc, "true", 4);
    case AD_J_FALSE:
        return scan_literal(sc, "false", 5);
    case AD_J_NULL:
        return scan_literal(sc, "null", 4);
    default:
        return fail(sc, sc->pos);
    }
}

/* A member's `"key" :` plus the whitespace after it; *key_end is just past the closing quote. */
static int scan_key_colon(scan_t *sc, size_t *key_end)
{
    if (!at(sc, '"'))
        return fail(sc, sc->pos);
    if (scan_string(sc) != 0)
        return -1;
    *key_end = sc->pos;
    skip_ws(sc);
    if (!at(sc, ':'))
        return fail(sc, sc->pos);
    sc->pos++;
    skip_ws(sc);
    return 0;
}

static int push(scan_t *sc, nest_t *st, int is_obj)
{
    if (st->depth >= AD_JSON_MAX_DEPTH)
        return fail(sc, sc->pos);
    uint64_t bit = 1ULL << (st->depth % 64);
    if (is_obj)
        st->kinds[st->depth / 64] |= bit;
    else
        st->kinds[st->depth / 64] &= ~bit;
    st->depth++;
    return 0;
}

static int top_is_obj(const nest_t *st)
{
    unsigned d = st->depth - 1;
    return (int)((st->kinds[d / 64] >> (d % 64)) & 1);
}

/* Enters the container at pos. 1: a first value follows (pos at it); 0: the container was empty
 * and is closed again; -1: error. */
static int open_container(scan_t *sc, nest_t *st)
{
    size_t key_end;
    int is_obj = sc->p[sc->pos] == '{';
    if (push(sc, st, is_obj) != 0)
        return -1;
    sc->pos++;
    skip_ws(sc);
    if (at(sc, is_obj ? '}' : ']')) {
        sc->pos++;
        st->depth--;
        return 0;
    }
    if (is_obj && scan_key_colon(sc, &key_end) != 0)
        return -1;
    return 1;
}

/* Called after each complete value: closes every container that ends here. 1: another value
 * follows (pos at it); 0: the value that scan_value started is complete; -1: error. */
static int after_value(scan_t *sc, nest_t *st)
{
    size_t key_end;
    while (st->depth > st->base) {
        skip_ws(sc);
        if (sc->pos >= sc->len)
            return fail(sc, sc->len);
        int is_obj = top_is_obj(st);
        unsigned char c = sc->p[sc->pos];
        if (c == ',') {
            sc->pos++;
            skip_ws(sc);
            if (is_obj && scan_key_colon(sc, &key_end) != 0)
                return -1;
            return 1;
        }
        if (c != (is_obj ? '}' : ']'))
            return fail(sc, sc->pos);
        sc->pos++;
        st->depth--;
    }
    return 0;
}

/* One complete value of any type at pos (no leading whitespace), inside depth containers. */
static int scan_value(scan_t *sc, unsigned depth)
{
    nest_t st;
    memset(st.kinds, 0, sizeof st.kinds);
    st.depth = st.base = depth;
    for (;;) {
        if (sc->pos >= sc->len)
            return fail(sc, sc->len);
        unsigned char c = sc->p[sc->pos];
        if (c == '{' || c == '[') {
            int r = open_container(sc, &st);
            if (r < 0)
                return -1;
            if (r > 0)
                continue;
        } else if (scan_scalar(sc) != 0) {
            return -1;
        }
        int r = after_value(sc, &st);
        if (r <= 0)
            return r;
    }
}

/* The members of the top-level object; pos is past its '{' and any whitespace. */
static int scan_members(scan_t *sc, ad_json_member_cb cb, void *ud)
{
    if (at(sc, '}')) {
        sc->pos++;
        return 0;
    }
    for (;;) {
        size_t key_off = sc->pos, key_end;
        if (scan_key_colon(sc, &key_end) != 0)
            return -1;
        size_t vstart = sc->pos;
        if (scan_value(sc, 1) != 0)
            return -1;
        if (cb != NULL) {
            ad_jspan_t v = {(const char *)sc->p + vstart, sc->pos - vstart, type_of(sc->p[vstart])};
            sc->stop = cb(ud, (const char *)sc->p + key_off + 1, key_end - key_off - 2, key_off, v);
            if (sc->stop != 0)
                return 0;
        }
        skip_ws(sc);
        if (at(sc, '}')) {
            sc->pos++;
            return 0;
        }
        if (!at(sc, ','))
            return fail(sc, sc->pos);
        sc->pos++;
        skip_ws(sc);
    }
}

/* Nothing but whitespace may follow the value. */
static int scan_tail(scan_t *sc)
{
    skip_ws(sc);
    return sc->pos == sc->len ? 0 : fail(sc, sc->pos);
}

int ad_json_scan_object(const char *p, size_t len, ad_json_member_cb cb, void *ud, size_t *err_off)
{
    scan_t sc = {(const unsigned char *)p, len, 0, 0, 0};
    skip_ws(&sc);
    if (!at(&sc, '{')) {
        fail(&sc, sc.pos);
        goto bad;
    }
    sc.pos++;
    skip_ws(&sc);
    if (scan_members(&sc, cb, ud) != 0)
        goto bad;
    if (sc.stop != 0)
        return sc.stop;
    if (scan_tail(&sc) != 0)
        goto bad;
    return 0;
bad:
    if (err_off != NULL)
        *err_off = sc.err;
    return -1;
}

int ad_json_validate(const char *p, size_t len, size_t *err_off)
{
    scan_t sc = {(const unsigned char *)p, len, 0, 0, 0};
    skip_ws(&sc);
    if (scan_value(&sc, 0) != 0 || scan_tail(&sc) != 0) {
        if (err_off != NULL)
            *err_off = sc.err;
        return -1;
    }
    return 0;
}

typedef struct find_ctx {
    const char *key;
    ad_jspan_t *out;
    int found;
} find_ctx_t;

static int on_find_member(void *ud, const char *key, size_t keylen, size_t key_off, ad_jspan_t value)
{
    find_ctx_t *f = ud;
    if (!f->found && ad_json_key_eq(key, keylen, f->key)) {
        *f->out = value;
        f->found = 1;
    }
    return 0;
}

int ad_json_find(const char *obj, size_t len, const char *key, ad_jspan_t *out)
{
    /* Keeps scanning after a hit: the contract promises -1 for any invalid text. */
    find_ctx_t f = {key, out, 0};
    if (ad_json_scan_object(obj, len, on_find_member, &f, NULL) != 0)
        return -1;
    return f.found;
}

static size_t utf8_put(unsigned char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The byte a one-letter escape stands for, or 0 when the letter is not one. */
static unsigned char simple_escape(unsigned char c)
{
    switch (c) {
    case '"':
    case '\\':
    case '/':
        return c;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/* A \uXXXX escape (or a surrogate pair of them) at s to a code point; *used gets its length. An
 * unpaired surrogate becomes U+FFFD: the grammar allows it, but it has no UTF-8 form. */
static long decode_u(const unsigned char *s, size_t n, size_t *used)
{
    long cp = n >= 6 ? hex4(s + 2) : -1;
    *used = 6;
    if (cp < 0xD800 || cp > 0xDFFF)
        return cp;
    long lo = -1;
    if (cp <= 0xDBFF && n >= 12 && s[6] == '\\' && s[7] == 'u')
        lo = hex4(s + 8);
    if (lo < 0xDC00 || lo > 0xDFFF)
        return 0xFFFD;
    *used = 12;
    return 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
}

/* Decodes the escape at s[0] == '\\' (n bytes available) into out (4 bytes of room). Returns its
 * length in the source and sets *olen, or returns 0 when it is malformed. */
static size_t decode_escape(const unsigned char *s, size_t n, unsigned char out[4], size_t *olen)
{
    if (n < 2)
        return 0;
    unsigned char c = simple_escape(s[1]);
    if (c != 0) {
        out[0] = c;
        *olen = 1;
        return 2;
    }
    if (s[1] != 'u')
        return 0;
    size_t used;
    long cp = decode_u(s, n, &used);
    if (cp < 0)
        return 0;
    *olen = utf8_put(out, (unsigned long)cp);
    return used;
}

int ad_json_key_eq_n(const char *raw, size_t rawlen, const char *want, size_t wl)
{
    const unsigned char *s = (const unsigned char *)raw;
    size_t i = 0, j = 0;
    /* An escape is longer than what it decodes to, so a raw key shorter than want never equals
     * it, and one of the same length does only when it has no escape: then bytes decide. */
    if (rawlen <= wl)
        return rawlen == wl && memcmp(raw, want, wl) == 0 && memchr(raw, '\\', rawlen) == NULL;
    if (memchr(raw, '\\', rawlen) == NULL)
        return 0;
    while (i < rawlen) {
        const unsigned char *bs = memchr(s + i, '\\', rawlen - i);
        size_t run = bs != NULL ? (size_t)(bs - (s + i)) : rawlen - i;
        if (run > wl - j || memcmp(s + i, want + j, run) != 0)
            return 0;
        i += run;
        j += run;
        if (i == rawlen)
            break;
        unsigned char u[4];
        size_t ul = 0, used = decode_escape(s + i, rawlen - i, u, &ul);
        if (used == 0 || ul > wl - j || memcmp(u, want + j, ul) != 0)
            return 0;
        i += used;
        j += ul;
    }
    return j == wl;
}

long ad_json_span_string(ad_jspan_t v, char *out, size_t cap)
{
    if (v.type != AD_J_STRING || v.p == NULL || v.len < 2 || v.p[0] != '"' || v.p[v.len - 1] != '"' ||
        cap == 0 || cap - 1 > LONG_MAX)
        return -1;
    const unsigned char *s = (const unsigned char *)v.p + 1;
    size_t n = v.len - 2, o = 0;
    while (n > 0) {
        const unsigned char *bs = memchr(s, '\\', n);
        size_t run = bs != NULL ? (size_t)(bs - s) : n;
        if (run >= cap - o) /* the NUL needs a byte too */
            return -1;
        memcpy(out + o, s, run);
        o += run;
        s += run;
        n -= run;
        if (n == 0)
            break;
        unsigned char u[4];
        size_t ul = 0, used = decode_escape(s, n, u, &ul);
        if (used == 0 || ul >= cap - o)
            return -1;
        memcpy(out + o, u, ul);
        o += ul;
        s += used;
        n -= used;
    }
    out[o] = '\0';
    return (long)o;
}

int ad_json_span_bool(ad_jspan_t v, int *out)
{
    if (v.type != AD_J_TRUE && v.type != AD_J_FALSE)
        return -1;
    *out = v.type == AD_J_TRUE;
    return 0;
}

/* The span is exactly one JSON number; accessors check before trusting strtod or digit loops. */
static int span_is_number(ad_jspan_t v)
{
    scan_t sc = {(const unsigned char *)v.p, v.len, 0, 0, 0};
    return v.type == AD_J_NUMBER && v.p != NULL && v.len > 0 && scan_number(&sc) == 0 && sc.pos == v.len;
}

int ad_json_span_int64(ad_jspan_t v, int64_t *out)
{
    if (!span_is_number(v))
        return -1;
    int neg = v.p[0] == '-';
    int64_t acc = 0; /* accumulated negatively so INT64_MIN fits */
    for (size_t i = (size_t)neg; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (!is_digit(c))
            return -1; /* fraction or exponent */
        if (__builtin_mul_overflow(acc, 10, &acc) || __builtin_sub_overflow(acc, c - '0', &acc))
            return -1;
    }
    if (!neg && __builtin_sub_overflow((int64_t)0, acc, &acc))
        return -1;
    *out = acc;
    return 0;
}

int ad_json_span_double(ad_jspan_t v, double *out)
{
    /* strtod wants a NUL-terminated copy. It also honours LC_NUMERIC: Tollgate never calls
     * setlocale, so the decimal point stays '.'. Underflow to zero or a subnormal is accepted as
     * the nearest double; overflow to infinity is an error. */
    char buf[NUM_TEXT_MAX + 1];
    if (!span_is_number(v) || v.len > NUM_TEXT_MAX)
        return -1;
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    char *end = NULL;
    double d = strtod(buf, &end);
    if (end != buf + v.len || isinf(d))
        return -1;
    *out = d;
    return 0;
}

/*
 * test_buf.c — the bounded buffer: ceilings hold, failed appends leave the content alone, sizes
 * never wrap, JSON string escaping is exact.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "adapters/buf.h"

static void assert_content(const ad_buf_t *b, const char *want, size_t n)
{
    cr_assert_eq(b->len, n, "len %zu, want %zu", b->len, n);
    if (n == 0 && b->data == NULL)
        return;
    cr_assert_not_null(b->data);
    cr_assert_eq(memcmp(b->data, want, n), 0, "content differs");
    cr_assert_eq(b->data[n], '\0', "not NUL-terminated");
}

Test(buf, init_allocates_nothing)
{
    ad_buf_t b;
    ad_buf_init(&b, 100);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
    cr_assert_eq(b.max, 100);
    cr_assert_eq(ad_buf_append(&b, NULL, 0), 0);
    ad_buf_free(&b);
}

Test(buf, append_and_puts)
{
    ad_buf_t b;
    ad_buf_init(&b, 1 << 20);
    cr_assert_eq(ad_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(ad_buf_puts(&b, "def"), 0);
    cr_assert_eq(ad_buf_append(&b, "g\0h", 3), 0);
    assert_content(&b, "abcdefg\0h", 9);
    cr_assert_geq(b.cap, b.len + 1);
    ad_buf_free(&b);
}

Test(buf, ceiling_enforced_and_content_unchanged)
{
    static const struct {
        size_t max;
        size_t first, second;
        int second_ok;
    } cases[] = {
        {8, 5, 3, 1}, /* exactly at the ceiling */
        {8, 5, 4, 0}, /* one past */
        {8, 8, 1, 0}, /* full */
        {0, 0, 1, 0}, /* zero ceiling */
        {1, 1, 0, 1}, /* empty append on a full buffer */
        {64, 10, 100, 0},
    };
    char src[128];
    memset(src, 'x', sizeof src);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_buf_t b;
        ad_buf_init(&b, cases[i].max);
        cr_assert_eq(ad_buf_append(&b, src, cases[i].first), 0, "case %zu first", i);
        int rc = ad_buf_append(&b,
                               "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
                               "yyyyyyyyyyyyyyyyyyyyyyy",
                               cases[i].second);
        cr_assert_eq(rc, cases[i].second_ok ? 0 : -1, "case %zu", i);
        size_t want = cases[i].first + (cases[i].second_ok ? cases[i].second : 0);
        cr_assert_eq(b.len, want, "case %zu len", i);
        cr_assert_leq(b.len, b.max);
        if (b.data != NULL) {
            cr_assert_eq(memcmp(b.data, src, cases[i].first), 0, "case %zu content", i);
            cr_assert_eq(b.data[b.len], '\0');
        }
        ad_buf_free(&b);
    }
}

Test(buf, growth_never_allocates_past_ceiling)
{
    ad_buf_t b;
    ad_buf_init(&b, 100);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(ad_buf_append(&b, "z", 1), 0);
    cr_assert_eq(b.len, 100);
    cr_assert_leq(b.cap, 101, "cap %zu beyond max + 1", b.cap);
    cr_assert_eq(ad_buf_append(&b, "z", 1), -1);
    ad_buf_free(&b);
}

Test(buf, overflow_safe_sizes)
{
    ad_buf_t b;
    ad_buf_init(&b, SIZE_MAX);
    /* need + 1 for the NUL would wrap: refused before any allocation. */
    cr_assert_eq(ad_buf_reserve(&b, SIZE_MAX), -1);
    cr_assert_eq(ad_buf_append(&b, "abc", 3), 0);
    /* len + extra wraps. */
    cr_assert_eq(ad_buf_reserve(&b, SIZE_MAX - 1), -1);
    cr_assert_eq(ad_buf_reserve(&b, SIZE_MAX), -1);
    assert_content(&b, "abc", 3);
    ad_buf_free(&b);

    ad_buf_init(&b, 16);
    cr_assert_eq(ad_buf_reserve(&b, 17), -1);
    cr_assert_eq(ad_buf_reserve(&b, 16), 0);
    cr_assert_geq(b.cap, 17);
    cr_assert_eq(ad_buf_reserve(&b, SIZE_MAX / 2 + 1), -1);
    ad_buf_free(&b);
}

Test(buf, appendf_formats_and_grows)
{
    static const struct {
        size_t max;
        const char *pre;
        int num;
        const char *str;
        const char *want; /* NULL: must fail and leave pre */
    } cases[] = {
        {100, "", 42, "x", "42-x"},   {100, "head:", -7, "", "head:-7-"}, {7, "ab", 123, "", "ab123-"},
        {6, "ab", 123, "", "ab123-"}, {5, "ab", 123, "", NULL},           {3, "abc", 1, "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_buf_t b;
        ad_buf_init(&b, cases[i].max);
        cr_assert_eq(ad_buf_puts(&b, cases[i].pre), 0);
        int rc = ad_buf_appendf(&b, "%d-%s", cases[i].num, cases[i].str);
        if (cases[i].want != NULL) {
            cr_assert_eq(rc, 0, "case %zu", i);
            assert_content(&b, cases[i].want, strlen(cases[i].want));
        } else {
            cr_assert_eq(rc, -1, "case %zu", i);
            assert_content(&b, cases[i].pre, strlen(cases[i].pre));
        }
        ad_buf_free(&b);
    }
}

Test(buf, appendf_long_output_and_spare_room_failure)
{
    ad_buf_t b;
    char big[3000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ad_buf_init(&b, 10000);
    cr_assert_eq(ad_buf_appendf(&b, "[%s]", big), 0);
    cr_assert_eq(b.len, 3001);
    cr_assert_eq(b.data[0], '[');
    cr_assert_eq(b.data[3000], ']');
    cr_assert_eq(b.data[3001], '\0');
    ad_buf_free(&b);

    /* The first formatting pass writes into the spare room; when the output turns out not to fit
     * the ceiling, the NUL it overwrote at data[len] must be restored. */
    ad_buf_init(&b, 40);
    cr_assert_eq(ad_buf_puts(&b, "0123456789"), 0);
    cr_assert_eq(ad_buf_appendf(&b, "%s", big), -1);
    assert_content(&b, "0123456789", 10);
    ad_buf_free(&b);
}

static int call_vappendf(ad_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int call_vappendf(ad_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ad_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

Test(buf, vappendf)
{
    ad_buf_t b;
    ad_buf_init(&b, 64);
    cr_assert_eq(call_vappendf(&b, "%s=%zu", "n", (size_t)12345), 0);
    cr_assert_eq(call_vappendf(&b, "%c", '!'), 0);
    assert_content(&b, "n=12345!", 8);
    ad_buf_free(&b);
}

Test(buf, json_string_escaping)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"", 0, "\"\""},
        {"plain", 5, "\"plain\""},
        {"a\"b", 3, "\"a\\\"b\""},
        {"back\\slash", 10, "\"back\\\\slash\""},
        {"/", 1, "\"/\""},
        {"\n\r\t", 3, "\"\\u000a\\u000d\\u0009\""},
        {"\b\f", 2, "\"\\u0008\\u000c\""},
        {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
        {"nul\0x", 5, "\"nul\\u0000x\""},
        {"\x7f", 1, "\"\x7f\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        {"\xff\xfe", 2, "\"\xff\xfe\""}, /* invalid UTF-8 passes through untouched */
        {"\"\"", 2, "\"\\\"\\\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_buf_t b;
        ad_buf_init(&b, 1024);
        cr_assert_eq(ad_buf_puts(&b, "x"), 0);
        cr_assert_eq(ad_buf_append_json_str(&b, cases[i].in, cases[i].n), 0, "case %zu", i);
        cr_assert_eq(b.len, 1 + strlen(cases[i].want), "case %zu len %zu", i, b.len);
        cr_assert_str_eq(b.data + 1, cases[i].want, "case %zu", i);
        ad_buf_free(&b);
    }
}

Test(buf, json_string_ceiling_is_all_or_nothing)
{
    /* "ab" + "\"a\\u0001\"" needs 2 + 9 bytes: every ceiling below that fails cleanly. */
    for (size_t max = 2; max <= 12; max++) {
        ad_buf_t b;
        ad_buf_init(&b, max);
        cr_assert_eq(ad_buf_puts(&b, "ab"), 0);
        int rc = ad_buf_append_json_str(&b, "a\x01", 2);
        if (max < 11) {
            cr_assert_eq(rc, -1, "max %zu", max);
            assert_content(&b, "ab", 2);
        } else {
            cr_assert_eq(rc, 0);
            assert_content(&b, "ab\"a\\u0001\"", 11);
        }
        ad_buf_free(&b);
    }
}

Test(buf, consume)
{
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"hello world", 6, "world"},
        {"hello", 0, "hello"},
        {"hello", 5, ""},
        {"hello", 99, ""}, /* more than len is clamped */
        {"ab", 1, "b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ad_buf_t b;
        ad_buf_init(&b, 64);
        cr_assert_eq(ad_buf_puts(&b, cases[i].in), 0);
        ad_buf_consume(&b, cases[i].n);
        assert_content(&b, cases[i].want, strlen(cases[i].want));
        cr_assert_eq(ad_buf_puts(&b, "!"), 0);
        cr_assert_eq(b.data[b.len - 1], '!');
        ad_buf_free(&b);
    }
}

Test(buf, reset_keeps_allocation_free_allows_reuse)
{
    ad_buf_t b;
    ad_buf_init(&b, 32);
    cr_assert_eq(ad_buf_puts(&b, "some text"), 0);
    char *before = b.data;
    size_t cap = b.cap;
    ad_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.data, before);
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.data[0], '\0');
    ad_buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.max, 32);
    cr_assert_eq(ad_buf_puts(&b, "again"), 0);
    assert_content(&b, "again", 5);
    ad_buf_reset(&b);
    ad_buf_free(&b);
    ad_buf_free(&b); /* double free of an emptied buffer is harmless */
    ad_buf_reset(&b);
    cr_assert_null(b.data);
}

Test(buf, append_from_itself_survives_growth)
{
    ad_buf_t b;
    ad_buf_init(&b, 1 << 16);
    cr_assert_eq(ad_buf_puts(&b, "0123456789"), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(ad_buf_append(&b, b.data, b.len), 0);
    cr_assert_eq(b.len, 10u << 8);
    for (size_t i = 0; i < b.len; i++)
        cr_assert_eq(b.data[i], (char)('0' + i % 10));
    ad_buf_free(&b);
}

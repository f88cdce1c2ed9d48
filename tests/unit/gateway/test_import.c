/*
 * import-litellm's conversions: LiteLLM's float dollars (as PostgreSQL prints them) to integer
 * micro-dollars rounded half up without a binary float in between, String[]/Json lists to JSON
 * arrays, PostgreSQL timestamp text to Tollgate's ISO text. The database side is tested end to
 * end by tests/integration/import.test.mjs.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "gateway/import.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(import, money_exact_decimal_to_micro_dollars)
{
    static const struct {
        const char *in;
        int64_t micro;
    } ok[] = {
        {"0", 0},
        {"12", 12000000},
        {"100", 100000000},
        {"1.25", 1250000},
        {"0.1", 100000}, /* no 99999 from 0.1's binary value */
        {"0.0123", 12300},
        {"2.675", 2675000}, /* 2.67499999… as a double */
        {"0.0000005", 1},   /* half rounds up */
        {"0.00000049", 0},
        {"0.00000050000", 1},
        {"0.0000015", 2},
        {"0.1234565", 123457},
        {"0.12345649999", 123456},
        {"-0.0000005", -1}, /* half away from zero below zero */
        {"-1.5", -1500000},
        {"+3", 3000000},
        {"1e-07", 0},
        {"5e-07", 1},
        {"1.5E+3", 1500000000},
        {"1e3", 1000000000},
        {"4.5e-6", 5},
        {"123456789.123456", 123456789123456},
        {"9223372036854.775807", INT64_MAX},
        {"1e-400", 0},
        {"0e+999", 0},
        {".5", 500000},
        {"7.", 7000000},
    };
    for (size_t i = 0; i < N(ok); i++) {
        int64_t m = -42;
        cr_assert_eq(gw_import_money_micro(ok[i].in, &m), 0, "%s", ok[i].in);
        cr_expect_eq(m, ok[i].micro, "%s: %lld, want %lld", ok[i].in, (long long)m, (long long)ok[i].micro);
    }
    static const char *bad[] = {"",      "-",       ".",        "e5",        "1e",
                                "1.2.3", "NaN",     "Infinity", "-Infinity", "1,5",
                                " 1",    "1 ",      "0x10",     "abc",       "9223372036854.7758075",
                                "1e20",  "1e100000"};
    for (size_t i = 0; i < N(bad); i++) {
        int64_t m = -42;
        cr_expect_eq(gw_import_money_micro(bad[i], &m), -1, "%s", bad[i]);
        cr_expect_eq(m, -42, "%s leaves the output alone", bad[i]);
    }
    cr_expect_eq(gw_import_money_micro(NULL, &(int64_t){0}), -1);
    char longer[GW_IMPORT_MONEY_MAX + 2];
    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    cr_expect_eq(gw_import_money_micro(longer, &(int64_t){0}), -1, "past the ceiling");
}

Test(import, timestamps_to_iso_text)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"2024-01-02 03:04:05.678", "2024-01-02T03:04:05.678Z"},
        {"2024-01-02 03:04:05", "2024-01-02T03:04:05.000Z"},
        {"2024-01-02 03:04:05.6", "2024-01-02T03:04:05.600Z"},
        {"2024-01-02 03:04:05.678901", "2024-01-02T03:04:05.678Z"}, /* microseconds truncated */
        {"2024-02-29 23:59:59.999", "2024-02-29T23:59:59.999Z"},
        {"2024-01-02 03:04:05+00", "2024-01-02T03:04:05.000Z"},
        {"2024-01-02 03:04:05.5+02", "2024-01-02T01:04:05.500Z"},
        {"2024-01-02 03:04:05-05:30", "2024-01-02T08:34:05.000Z"},
        {"2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678Z"},
        {"2099-01-01 00:00:00", "2099-01-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < N(ok); i++) {
        char out[GW_STORE_TIME_LEN] = "";
        cr_assert_eq(gw_import_time_text(ok[i].in, out), 0, "%s", ok[i].in);
        cr_expect_str_eq(out, ok[i].out, "%s", ok[i].in);
    }
    char out[GW_STORE_TIME_LEN];
    cr_expect_eq(gw_import_time_text("infinity", out), 1, "no time: stored as NULL");
    cr_expect_eq(gw_import_time_text("-infinity", out), 1);
    static const char *bad[] = {"",
                                "yesterday",
                                "2023-02-29 00:00:00",
                                "2024-13-01 00:00:00",
                                "2024-01-02 25:00:00",
                                "0001-01-01 00:00:00 BC"};
    for (size_t i = 0; i < N(bad); i++)
        cr_expect_eq(gw_import_time_text(bad[i], out), -1, "%s", bad[i]);
    cr_expect_eq(gw_import_time_text(NULL, out), -1);
}

static void expect_array(json_t *in, const char *want)
{
    json_t *a = gw_import_json_array(in);
    cr_assert_not_null(a);
    char *got = json_dumps(a, JSON_COMPACT);
    cr_expect_str_eq(got, want);
    free(got);
    json_decref(a);
    json_decref(in);
}

Test(import, lists_to_json_arrays)
{
    expect_array(json_pack("[ss]", "gpt-4o", "claude-*"), "[\"gpt-4o\",\"claude-*\"]");
    expect_array(json_array(), "[]");
    expect_array(json_null(), "[]");
    expect_array(NULL, "[]");
    expect_array(json_object(), "[]"); /* LiteLLM's members_with_roles default, "{}" */
    expect_array(json_loads("[{\"role\":\"admin\",\"user_id\":\"u\"}]", 0, NULL),
                 "[{\"role\":\"admin\",\"user_id\":\"u\"}]");
    expect_array(json_string("[\"a\",\"b\"]"), "[\"a\",\"b\"]"); /* a list kept as JSON text */
    expect_array(json_pack("[sn]", "a"), "[\"a\",null]");

    json_t *bad[] = {json_string("a,b"), json_integer(1), json_pack("{s:s}", "a", "b"), json_true()};
    for (size_t i = 0; i < N(bad); i++) {
        cr_expect_null(gw_import_json_array(bad[i]));
        json_decref(bad[i]);
    }
}

/*
 * fuzz_import_money.c — libFuzzer target for `import-litellm`'s money and time conversions
 * (gateway/import.c), which read text from another system's database.
 *
 * The input is one text (cut at GW_IMPORT_MONEY_MAX + 8 bytes, NUL-terminated). Properties (any
 * violation aborts):
 *   1. nothing is read outside the text (an exact-size heap copy: ASan);
 *   2. an accepted amount agrees with strtod's reading of the same text to within one
 *      micro-dollar while it is small enough for a double to carry every micro-dollar
 *      (|x| < 2^53 micro-dollars), and a text strtod rejects or reads as NaN/Inf is refused;
 *   3. the canonical form of an accepted amount ("-123.000456") converts back to the same value;
 *   4. an accepted timestamp comes out as "YYYY-MM-DDTHH:MM:SS.sssZ" and converts again to itself.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/import.h"

static void money(const char *s)
{
    int64_t v;
    if (gw_import_money_micro(s, &v) != 0)
        return;
    char *end;
    double d = strtod(s, &end);
    if (end == s || isnan(d) || isinf(d))
        abort(); /* accepted what is not a number */
    double want = d * 1e6;
    if (fabs(want) < 9007199254740992.0 && fabs(want - (double)v) > 1.0 + fabs(want) * 1e-15)
        abort();
    char canon[64];
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    snprintf(canon, sizeof(canon), "%s%llu.%06llu", v < 0 ? "-" : "", (unsigned long long)(mag / 1000000),
             (unsigned long long)(mag % 1000000));
    int64_t again;
    if (gw_import_money_micro(canon, &again) != 0 || again != v)
        abort();
}

static void when(const char *s)
{
    char out[GW_STORE_TIME_LEN], again[GW_STORE_TIME_LEN];
    if (gw_import_time_text(s, out) != 0)
        return;
    if (strlen(out) != 24 || out[4] != '-' || out[10] != 'T' || out[19] != '.' || out[23] != 'Z')
        abort();
    if (gw_import_time_text(out, again) != 0 || strcmp(out, again) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > GW_IMPORT_MONEY_MAX + 8)
        size = GW_IMPORT_MONEY_MAX + 8;
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    money(s);
    when(s);
    free(s);
    return 0;
}

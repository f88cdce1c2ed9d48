/*
 * SigV4 against AWS's published "Signature Version 4 test suite" (credentials AKIDEXAMPLE /
 * wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, us-east-1, service "service", 20150830T123600Z) and the
 * Bedrock example of shared/providers.md §5.6 (cross-checked there with botocore): every step of
 * get-vanilla, the Authorization header of ten suite cases, the Bedrock signature with its
 * payload and canonical-request hashes, the double-encoded canonical URI, and the input limits.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "adapters/sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"
#define STS_TOKEN                                                                                            \
    "AQoDYXdzEPT//////////"                                                                                  \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/"   \
    "qkPpKPi/"                                                                                               \
    "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6" \
    "d+"                                                                                                     \
    "xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/"       \
    "oLxBA=="

static const ad_sigv4_creds_t suite_creds = {AKID, SECRET, "us-east-1", "service"};

Test(sigv4, get_vanilla_every_step)
{
    ad_sigv4_header_t h[] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", DATE}};
    ad_sigv4_request_t r = {.method = "GET", .path = "/", .headers = h, .n_headers = 2};
    ad_buf_t creq, sts, auth;
    ad_buf_init(&creq, 1 << 16);
    ad_buf_init(&sts, 1 << 16);
    ad_buf_init(&auth, 1 << 16);
    cr_assert_eq(ad_sigv4_canonical_request(&r, &creq), 0);
    cr_assert_str_eq(creq.data,
                     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char hash[65];
    ad_sigv4_sha256_hex(creq.data, creq.len, hash);
    cr_assert_str_eq(hash, "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    cr_assert_eq(ad_sigv4_string_to_sign(DATE, "us-east-1", "service", creq.data, creq.len, &sts), 0);
    cr_assert_str_eq(sts.data, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    unsigned char key[32];
    char key_hex[65];
    cr_assert_eq(ad_sigv4_signing_key(SECRET, "20150830", "us-east-1", "service", key), 0);
    for (int i = 0; i < 32; i++)
        snprintf(key_hex + 2 * i, 3, "%02x", key[i]);
    cr_assert_str_eq(key_hex, "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
    char sig[65];
    cr_assert_eq(ad_sigv4_authorization(&r, &suite_creds, DATE, &auth, sig), 0);
    cr_assert_str_eq(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    cr_assert_str_eq(auth.data,
                     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                     "SignedHeaders=host;x-amz-date, "
                     "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    ad_buf_free(&creq);
    ad_buf_free(&sts);
    ad_buf_free(&auth);
}

Test(sigv4, aws_test_suite)
{
    static const struct {
        const char *name, *method, *path, *query;
        ad_sigv4_header_t extra[3]; /* besides host and x-amz-date */
        size_t n_extra;
        const char *signed_headers, *signature;
    } cases[] = {
        {"get-vanilla",
         "GET",
         "/",
         NULL,
         {{0}},
         0,
         "host;x-amz-date",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        {"post-vanilla",
         "POST",
         "/",
         NULL,
         {{0}},
         0,
         "host;x-amz-date",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
        {"get-header-value-trim",
         "GET",
         "/",
         NULL,
         {{"My-Header1", " value1 "}, {"My-Header2", "  \"a   b   c\"\t"}},
         2,
         "host;my-header1;my-header2;x-amz-date",
         "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
        {"get-header-key-duplicate",
         "GET",
         "/",
         NULL,
         {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
         3,
         "host;my-header1;x-amz-date",
         "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
        {"post-header-key-sort",
         "POST",
         "/",
         NULL,
         {{"My-Header1", "value1"}},
         1,
         "host;my-header1;x-amz-date",
         "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
        {"post-sts-header-before",
         "POST",
         "/",
         NULL,
         {{"X-Amz-Security-Token", STS_TOKEN}},
         1,
         "host;x-amz-date;x-amz-security-token",
         "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
        {"get-vanilla-query-order-key-case",
         "GET",
         "/",
         "Param2=value2&Param1=value1",
         {{0}},
         0,
         "host;x-amz-date",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
        {"get-vanilla-query-unreserved",
         "GET",
         "/",
         "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
         "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
         {{0}},
         0,
         "host;x-amz-date",
         "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
        {"get-vanilla-utf8-query",
         "GET",
         "/",
         "\xe1\x88\xb4=bar",
         {{0}},
         0,
         "host;x-amz-date",
         "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
        {"get-unreserved",
         "GET",
         "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
         NULL,
         {{0}},
         0,
         "host;x-amz-date",
         "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
        {"get-utf8",
         "GET",
         "/\xe1\x88\xb4",
         NULL,
         {{0}},
         0,
         "host;x-amz-date",
         "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ad_sigv4_header_t h[5] = {{"Host", "example.amazonaws.com"}};
        size_t n = 1;
        for (size_t k = 0; k < cases[i].n_extra; k++)
            h[n++] = cases[i].extra[k];
        h[n++] = (ad_sigv4_header_t){"X-Amz-Date", DATE};
        ad_sigv4_request_t r = {.method = cases[i].method,
                                .path = cases[i].path,
                                .query = cases[i].query,
                                .headers = h,
                                .n_headers = n};
        ad_buf_t auth;
        char sig[65], want[512];
        ad_buf_init(&auth, 1 << 16);
        cr_assert_eq(ad_sigv4_authorization(&r, &suite_creds, DATE, &auth, sig), 0, "%s", cases[i].name);
        cr_assert_str_eq(sig, cases[i].signature, "%s", cases[i].name);
        snprintf(want, sizeof(want),
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=%s, Signature=%s",
                 cases[i].signed_headers, cases[i].signature);
        cr_assert_str_eq(auth.data, want, "%s", cases[i].name);
        ad_buf_free(&auth);
    }
}

Test(sigv4, bedrock_example_from_providers_md)
{
    const char *body =
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Hi\"}]}],\"inferenceConfig\":{"
        "\"maxTokens\":64}}";
    ad_sigv4_header_t h[] = {{"Content-Type", "application/json"},
                             {"Host", "bedrock-runtime.us-east-1.amazonaws.com"},
                             {"X-Amz-Date", "20240101T000000Z"}};
    ad_sigv4_request_t r = {.method = "POST",
                            .path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
                            .headers = h,
                            .n_headers = 3,
                            .payload = body,
                            .payload_len = strlen(body)};
    ad_sigv4_creds_t c = {AKID, SECRET, "us-east-1", "bedrock"};
    char hash[65], sig[65];
    ad_sigv4_sha256_hex(body, strlen(body), hash);
    cr_assert_str_eq(hash, "9fe85f2d1d832f88fa910da82e4380943a72b2d8f884106428ba8c4588a20b85");
    ad_buf_t creq, auth;
    ad_buf_init(&creq, 1 << 16);
    ad_buf_init(&auth, 1 << 16);
    cr_assert_eq(ad_sigv4_canonical_request(&r, &creq), 0);
    cr_assert(strstr(creq.data, "\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n") != NULL,
              "the wire path is encoded once more: %s", creq.data);
    ad_sigv4_sha256_hex(creq.data, creq.len, hash);
    cr_assert_str_eq(hash, "081906d8fb339969faf4fb147f0d85b0ab2989e7ca06a5c789881f70242f185f");
    cr_assert_eq(ad_sigv4_authorization(&r, &c, "20240101T000000Z", &auth, sig), 0);
    cr_assert_str_eq(sig, "74247746791f7fb944955fc5fc6ee3df144abd75d09f008625f9c64daf9fc76f");
    cr_assert(strstr(auth.data, "SignedHeaders=content-type;host;x-amz-date,") != NULL);
    ad_buf_free(&creq);
    ad_buf_free(&auth);
}

Test(sigv4, helpers_and_limits)
{
    struct {
        int64_t t;
        int rc;
        const char *want;
    } dates[] = {
        {1440938160, 0, "20150830T123600Z"},
        {0, 0, "19700101T000000Z"},
        {1704067200, 0, "20240101T000000Z"},
        {253402300799, 0, "99991231T235959Z"},
        {253402300800, -1, NULL},
        {-1, -1, NULL},
    };
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        char d[17];
        cr_assert_eq(ad_sigv4_amz_date(dates[i].t, d), dates[i].rc, "case %zu", i);
        if (dates[i].want != NULL)
            cr_assert_str_eq(d, dates[i].want);
    }
    ad_buf_t b;
    ad_buf_init(&b, 64);
    cr_assert_eq(ad_sigv4_uri_encode("a b/c%3A~", 9, 1, &b), 0);
    cr_assert_str_eq(b.data, "a%20b/c%253A~");
    ad_buf_reset(&b);
    cr_assert_eq(ad_sigv4_uri_encode("a b/c\xff", 6, 0, &b), 0);
    cr_assert_str_eq(b.data, "a%20b%2Fc%FF");
    ad_buf_reset(&b);
    cr_assert_eq(
        ad_sigv4_uri_encode("////////////////////////////////////////////////////////////////", 64, 0, &b),
        -1, "the ceiling holds");
    ad_buf_free(&b);

    char secret[AD_SIGV4_MAX_SECRET + 2];
    memset(secret, 'k', sizeof(secret) - 1);
    secret[sizeof(secret) - 1] = '\0';
    unsigned char key[32];
    cr_assert_eq(ad_sigv4_signing_key(secret, "20150830", "us-east-1", "s", key), -1);
    secret[AD_SIGV4_MAX_SECRET] = '\0';
    cr_assert_eq(ad_sigv4_signing_key(secret, "20150830", "us-east-1", "s", key), 0);

    ad_sigv4_header_t many[AD_SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i <= AD_SIGV4_MAX_HEADERS; i++)
        many[i] = (ad_sigv4_header_t){"x-h", "v"};
    ad_sigv4_request_t r = {
        .method = "GET", .path = "/", .headers = many, .n_headers = AD_SIGV4_MAX_HEADERS + 1};
    ad_buf_t auth;
    ad_buf_init(&auth, 1 << 16);
    cr_assert_eq(ad_sigv4_authorization(&r, &suite_creds, DATE, &auth, NULL), -1);
    r.n_headers = AD_SIGV4_MAX_HEADERS;
    cr_assert_eq(ad_sigv4_authorization(&r, &suite_creds, DATE, &auth, NULL), 0);
    ad_buf_free(&auth);
}

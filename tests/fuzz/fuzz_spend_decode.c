/*
 * fuzz_spend_decode.c — libFuzzer target for the spend journal's line decoder (gateway/spend.c).
 *
 * Input layout: byte 0 picks the mode, the rest is the line or the payload:
 *   mode % 3 == 0  the rest is a whole line ("S2 <len> <crc> …" or anything), decoded as is;
 *   mode % 3 == 1  the rest is a format 2 payload, framed with its correct length and checksum;
 *   mode % 3 == 2  the rest is a format 1 (JSON) payload, framed likewise.
 * The checksum only guards against torn and rotted lines, so modes 1 and 2 reach the field
 * parsers with anything. Properties (any violation aborts):
 *   1. the decoder reads nothing outside the line (it gets an exact-size heap copy: ASan);
 *   2. an accepted record has a non-empty id, every string at most GW_SPEND_MAX_FIELD bytes, no
 *      negative number, stream 0 or 1; a format 2 record's strings hold no control character;
 *   3. a format 2 record formatted again (gw_spend_format) decodes to the same record.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/spend.h"

static const char *const *strs(const gw_spend_rec_t *r, const char *out[14])
{
    const char *v[14] = {r->request_id, r->call_type, r->key_hash, r->key_alias,   r->user_id,
                         r->team_id,    r->org_id,    r->end_user, r->model_group, r->model,
                         r->provider,   r->model_id,  r->api_base, r->status};
    memcpy(out, v, sizeof(v));
    return out;
}

static void check(const gw_spend_rec_t *r, int v2)
{
    const char *s[14];
    strs(r, s);
    if (s[0] == NULL || s[0][0] == '\0')
        abort();
    for (int i = 0; i < 14; i++) {
        if (s[i] == NULL || strlen(s[i]) > GW_SPEND_MAX_FIELD)
            abort();
        for (const unsigned char *u = (const unsigned char *)s[i]; v2 && *u; u++)
            if (*u < 0x20 || *u == 0x7F)
                abort();
    }
    if (r->prompt_tokens < 0 || r->completion_tokens < 0 || r->cache_read_tokens < 0 ||
        r->cache_creation_tokens < 0 || r->spend_micros < 0 || r->start_ms < 0 || r->end_ms < 0 ||
        r->first_token_ms < 0 || (r->stream != 0 && r->stream != 1))
        abort();
}

static void round_trip(const gw_spend_rec_t *r)
{
    char line[GW_SPEND_MAX_LINE];
    int n = gw_spend_format(r, line, sizeof(line));
    if (n <= 0) /* numbers the decoder allows may exceed what the writer writes: then refused */
        return;
    char *copy = malloc((size_t)n);
    memcpy(copy, line, (size_t)n);
    gw_spend_rec_t d;
    if (gw_spend_decode(copy, (size_t)n - 1, &d) != 0)
        abort();
    const char *a[14], *b[14];
    strs(r, a);
    strs(&d, b);
    for (int i = 0; i < 13; i++) /* status: "" is written as "success" */
        if (strcmp(a[i], b[i]) != 0)
            abort();
    if ((a[13][0] ? strcmp(a[13], b[13]) : strcmp(b[13], "success")) != 0)
        abort();
    if (d.prompt_tokens != r->prompt_tokens || d.completion_tokens != r->completion_tokens ||
        d.cache_read_tokens != r->cache_read_tokens || d.cache_creation_tokens != r->cache_creation_tokens ||
        d.spend_micros != r->spend_micros || d.start_ms != r->start_ms || d.end_ms != r->end_ms ||
        d.first_token_ms != r->first_token_ms || d.stream != r->stream)
        abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > GW_SPEND_MAX_LINE)
        return 0;
    int mode = data[0] % 3;
    const char *body = (const char *)data + 1;
    size_t blen = size - 1, len = blen;
    char *line;
    if (mode == 0) {
        line = malloc(blen ? blen : 1);
        memcpy(line, body, blen);
    } else {
        char hdr[32];
        int h = snprintf(hdr, sizeof(hdr), "S%c %zu %08x ", mode == 1 ? '2' : '1', blen,
                         (unsigned)gw_spend_crc32c(body, blen));
        len = (size_t)h + blen;
        line = malloc(len);
        memcpy(line, hdr, (size_t)h);
        memcpy(line + h, body, blen);
    }
    int v2 = len >= 2 && line[1] == '2';
    gw_spend_rec_t r;
    if (gw_spend_decode(line, len, &r) == 0) {
        check(&r, v2);
        if (v2)
            round_trip(&r);
    }
    free(line);
    return 0;
}

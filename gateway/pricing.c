/*
 * pricing.c — the price table and cost arithmetic (see pricing.h).
 *
 * The table is an array of gw_price_t plus an open-addressing index over the names (FNV-1a,
 * linear probing, at most half full). It is built in one pass over the JSON document and never
 * changes afterwards, which is what lets every worker read it without a lock.
 *
 * Money never passes through floating point after parsing: a price is read from its decimal
 * text (a double is first written back as the 15-digit decimal it came from) into pico-dollars,
 * and totals are sums of products of integers with overflow checks.
 */
#include "gateway/pricing.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gw_pricing {
    gw_price_t *entries; /* name and provider strings owned here */
    size_t n;
    size_t *slots; /* index + 1; 0 = empty */
    size_t cap;    /* power of two */
};

#define PICO_DIGITS 12
#define MAX_SIG_DIGITS 19 /* 10^19 - 1 < UINT64_MAX */

/* ---------------------------------------------------------------- decimal conversion */

/* 10^0 … 10^19: every power of ten a uint64_t holds. */
static const uint64_t POW10[MAX_SIG_DIGITS + 1] = {1ull,
                                                   10ull,
                                                   100ull,
                                                   1000ull,
                                                   10000ull,
                                                   100000ull,
                                                   1000000ull,
                                                   10000000ull,
                                                   100000000ull,
                                                   1000000000ull,
                                                   10000000000ull,
                                                   100000000000ull,
                                                   1000000000000ull,
                                                   10000000000000ull,
                                                   100000000000000ull,
                                                   1000000000000000ull,
                                                   10000000000000000ull,
                                                   100000000000000000ull,
                                                   1000000000000000000ull,
                                                   10000000000000000000ull};

/* The exponent part after 'e'; clamped far beyond any meaningful value so it cannot overflow. */
static const char *parse_exponent(const char *p, long *exp10)
{
    int neg = 0;
    long e = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return NULL;
    for (; *p >= '0' && *p <= '9'; p++)
        if (e < 100000)
            e = e * 10 + (*p - '0');
    *exp10 += neg ? -e : e;
    return p;
}

/* Scales m × 10^k (k may be negative) to an integer, rounding up. */
static int scale_up(uint64_t m, long k, uint64_t *out)
{
    if (m == 0) {
        *out = 0;
        return GW_PRICING_OK;
    }
    if (k >= 0) {
        if (k > MAX_SIG_DIGITS || __builtin_mul_overflow(m, POW10[k], out))
            return GW_PRICING_EOVERFLOW;
        return GW_PRICING_OK;
    }
    if (-k > MAX_SIG_DIGITS) { /* m < 10^19 <= 10^-k: a positive fraction below one unit */
        *out = 1;
        return GW_PRICING_OK;
    }
    *out = m / POW10[-k] + (m % POW10[-k] != 0);
    return GW_PRICING_OK;
}

int gw_pricing_parse_usd(const char *s, unsigned digits, uint64_t *out)
{
    uint64_t m = 0;
    long exp10 = 0; /* value = m × 10^exp10 */
    int sig = 0, any = 0, point = 0;
    const char *p = s;
    if (s == NULL || out == NULL || digits > 18)
        return GW_PRICING_EINVAL;
    for (;; p++) {
        if (*p == '.' && !point) {
            point = 1;
            continue;
        }
        if (*p < '0' || *p > '9')
            break;
        any = 1;
        int d = *p - '0';
        if (m == 0 && d == 0) { /* leading zero: only its position matters */
            exp10 -= point;
            continue;
        }
        if (sig < MAX_SIG_DIGITS) {
            m = m * 10 + (uint64_t)d;
            sig++;
            exp10 -= point;
        } else if (!point) {
            if (d != 0)
                return GW_PRICING_EINVAL; /* more precision than we keep */
            exp10++;
        } else if (d != 0) {
            return GW_PRICING_EINVAL;
        }
    }
    if (!any)
        return GW_PRICING_EINVAL;
    if (*p == 'e' || *p == 'E')
        p = parse_exponent(p + 1, &exp10);
    if (p == NULL || *p != '\0')
        return GW_PRICING_EINVAL;
    return scale_up(m, exp10 + (long)digits, out);
}

int gw_pricing_double_usd(double usd, unsigned digits, uint64_t *out)
{
    char buf[40];
    if (out == NULL || !isfinite(usd) || usd < 0 || digits > 18)
        return GW_PRICING_EINVAL;
    if (usd == 0) {
        *out = 0;
        return GW_PRICING_OK;
    }
    snprintf(buf, sizeof buf, "%.15g", usd);
    return gw_pricing_parse_usd(buf, digits, out);
}

size_t gw_pricing_format_usd(uint64_t micros, char *buf, size_t n)
{
    char tmp[GW_PRICING_USD_MAX];
    char rev[24];
    size_t len = 0, r = 0;
    uint64_t whole = micros / GW_PRICING_PICO_PER_MICRO, frac = micros % GW_PRICING_PICO_PER_MICRO;
    do {
        rev[r++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole != 0);
    while (r > 0)
        tmp[len++] = rev[--r];
    tmp[len++] = '.';
    for (uint64_t div = 100000; div != 0; div /= 10) {
        tmp[len++] = (char)('0' + frac / div);
        frac %= div;
    }
    while (tmp[len - 1] == '0' && tmp[len - 2] != '.')
        len--;
    if (buf == NULL || n < len + 1)
        return 0;
    memcpy(buf, tmp, len);
    buf[len] = '\0';
    return len;
}

/* ---------------------------------------------------------------- entry fields */

static const struct {
    const char *key;
    unsigned bit;
    size_t off;
} COST_FIELDS[] = {
    {"input_cost_per_token", GW_PRICE_HAS_INPUT, offsetof(gw_price_t, input)},
    {"output_cost_per_token", GW_PRICE_HAS_OUTPUT, offsetof(gw_price_t, output)},
    {"cache_read_input_token_cost", GW_PRICE_HAS_CACHE_READ, offsetof(gw_price_t, cache_read)},
    {"cache_creation_input_token_cost", GW_PRICE_HAS_CACHE_WRITE, offsetof(gw_price_t, cache_write)},
    {"output_cost_per_reasoning_token", GW_PRICE_HAS_REASONING, offsetof(gw_price_t, reasoning)},
};

/* A price value: JSON integer, real or numeric string, >= 0. */
static int json_pico(const json_t *v, uint64_t *pico)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return GW_PRICING_EINVAL;
        return __builtin_mul_overflow((uint64_t)i, POW10[PICO_DIGITS], pico) ? GW_PRICING_EOVERFLOW
                                                                             : GW_PRICING_OK;
    }
    if (json_is_real(v))
        return gw_pricing_double_usd(json_real_value(v), PICO_DIGITS, pico);
    if (json_is_string(v))
        return gw_pricing_parse_usd(json_string_value(v), PICO_DIGITS, pico);
    return GW_PRICING_EINVAL;
}

/* A token limit; anything but a whole number >= 0 is ignored (LiteLLM's file has prose there). */
static void json_limit(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        *out = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9e18 &&
             json_real_value(v) == floor(json_real_value(v)))
        *out = (int64_t)json_real_value(v);
}

static gw_price_mode_t mode_of(const char *s)
{
    if (strcmp(s, "chat") == 0)
        return GW_PRICE_MODE_CHAT;
    if (strcmp(s, "completion") == 0)
        return GW_PRICE_MODE_COMPLETION;
    if (strcmp(s, "embedding") == 0)
        return GW_PRICE_MODE_EMBEDDING;
    return GW_PRICE_MODE_OTHER;
}

/*
 * Copies the cost fields present in OBJ into p (bits into *set) and, with info, mode and token
 * limits. Returns 0, or -1 with *bad naming the offending field.
 */
static int apply_fields(gw_price_t *p, const json_t *obj, int info, unsigned *set, const char **bad)
{
    if (!json_is_object(obj))
        return 0;
    for (size_t i = 0; i < sizeof COST_FIELDS / sizeof COST_FIELDS[0]; i++) {
        const json_t *v = json_object_get(obj, COST_FIELDS[i].key);
        uint64_t pico;
        if (v == NULL || json_is_null(v))
            continue;
        if (json_pico(v, &pico) != GW_PRICING_OK) {
            *bad = COST_FIELDS[i].key;
            return -1;
        }
        memcpy((char *)p + COST_FIELDS[i].off, &pico, sizeof pico);
        p->has |= COST_FIELDS[i].bit;
        *set |= COST_FIELDS[i].bit;
    }
    if (!info)
        return 0;
    const json_t *mode = json_object_get(obj, "mode");
    if (json_is_string(mode))
        p->mode = mode_of(json_string_value(mode));
    json_limit(obj, "max_input_tokens", &p->max_input_tokens);
    json_limit(obj, "max_output_tokens", &p->max_output_tokens);
    return 0;
}

/* ---------------------------------------------------------------- the table */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static size_t *find_slot(const gw_pricing_t *t, const char *name)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)hash_name(name) & mask;; i = (i + 1) & mask)
        if (t->slots[i] == 0 || strcmp(t->entries[t->slots[i] - 1].name, name) == 0)
            return &t->slots[i];
}

const gw_price_t *gw_pricing_get(const gw_pricing_t *t, const char *name)
{
    if (t == NULL || name == NULL || t->cap == 0)
        return NULL;
    size_t *s = find_slot(t, name);
    return *s ? &t->entries[*s - 1] : NULL;
}

size_t gw_pricing_count(const gw_pricing_t *t)
{
    return t != NULL ? t->n : 0;
}

void gw_pricing_destroy(gw_pricing_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        free((char *)t->entries[i].name);
        free((char *)t->entries[i].provider);
    }
    free(t->entries);
    free(t->slots);
    free(t);
}

typedef struct skipped {
    size_t count;
    char first[160];
} skipped_t;

static void skip(skipped_t *sk, const char *name, const char *why)
{
    if (sk->count++ == 0)
        snprintf(sk->first, sizeof sk->first, "'%.60s': %s", name, why);
}

/* Adds one entry; returns -1 only on allocation failure. */
static int add_entry(gw_pricing_t *t, const char *name, const json_t *obj, skipped_t *sk)
{
    gw_price_t p = {0};
    const char *bad = NULL;
    unsigned set = 0;
    if (name[0] == '\0' || strlen(name) > GW_PRICING_MAX_NAME) {
        skip(sk, name, "name empty or too long");
        return 0;
    }
    if (!json_is_object(obj)) {
        skip(sk, name, "not an object");
        return 0;
    }
    if (t->n >= GW_PRICING_MAX_ENTRIES) {
        skip(sk, name, "too many entries");
        return 0;
    }
    if (apply_fields(&p, obj, 1, &set, &bad) != 0) {
        skip(sk, name, bad);
        return 0;
    }
    const json_t *prov = json_object_get(obj, "litellm_provider");
    p.name = strdup(name);
    p.provider = json_is_string(prov) ? strdup(json_string_value(prov)) : NULL;
    if (p.name == NULL || (json_is_string(prov) && p.provider == NULL)) {
        free((char *)p.name);
        free((char *)p.provider);
        return -1;
    }
    t->entries[t->n++] = p;
    *find_slot(t, name) = t->n;
    return 0;
}

static gw_pricing_t *build(const json_t *root, const char *name, char *msg, size_t msglen)
{
    gw_pricing_t *t = calloc(1, sizeof *t);
    size_t want = json_object_size(root), cap = 16;
    skipped_t sk = {0};
    const char *key;
    const json_t *v;
    if (want > GW_PRICING_MAX_ENTRIES)
        want = GW_PRICING_MAX_ENTRIES;
    while (cap < 2 * want)
        cap *= 2;
    if (t == NULL || (t->entries = calloc(want ? want : 1, sizeof *t->entries)) == NULL ||
        (t->slots = calloc(cap, sizeof *t->slots)) == NULL)
        goto fail;
    t->cap = cap;
    json_object_foreach((json_t *)root, key, v)
    {
        if (add_entry(t, key, v, &sk) != 0)
            goto fail;
    }
    if (sk.count)
        snprintf(msg, msglen, "%s: %zu entries skipped (first %s)", name, sk.count, sk.first);
    return t;
fail:
    gw_pricing_destroy(t);
    snprintf(msg, msglen, "%s: out of memory", name);
    return NULL;
}

gw_pricing_t *gw_pricing_load_string(const char *json, size_t len, const char *name, char *msg, size_t msglen)
{
    json_error_t jerr;
    gw_pricing_t *t = NULL;
    msg[0] = '\0';
    if (len > GW_PRICING_MAX_FILE) {
        snprintf(msg, msglen, "%s: larger than %u bytes", name, GW_PRICING_MAX_FILE);
        return NULL;
    }
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL)
        snprintf(msg, msglen, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
    else if (!json_is_object(root))
        snprintf(msg, msglen, "%s: must be a JSON object keyed by model name", name);
    else
        t = build(root, name, msg, msglen);
    json_decref(root);
    return t;
}

gw_pricing_t *gw_pricing_load(const char *path, char *msg, size_t msglen)
{
    gw_pricing_t *t = NULL;
    char *buf = NULL;
    struct stat st;
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    msg[0] = '\0';
    if (f == NULL && errno == ENOENT) {
        if ((t = gw_pricing_load_string("{}", 2, path, msg, msglen)) == NULL)
            return NULL;
        snprintf(msg, msglen,
                 "%s: not found; no model has a price except deployments that set "
                 "input_cost_per_token/output_cost_per_token",
                 path);
        return t;
    }
    if (f == NULL || fstat(fileno(f), &st) != 0) {
        snprintf(msg, msglen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)GW_PRICING_MAX_FILE) {
        snprintf(msg, msglen, "%s: not a regular file of at most %u bytes", path, GW_PRICING_MAX_FILE);
        goto out;
    }
    /* One byte more than the size: a file that grew meanwhile is caught below. */
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(msg, msglen, "%s: out of memory", path);
        goto out;
    }
    got = fread(buf, 1, (size_t)st.st_size + 1, f);
    if (ferror(f) || got > (size_t)st.st_size) {
        snprintf(msg, msglen, "%s: read failed or the file changed while being read", path);
        goto out;
    }
    t = gw_pricing_load_string(buf, got, path, msg, msglen);
out:
    if (f != NULL)
        fclose(f);
    free(buf);
    return t;
}

const char *gw_pricing_path(const char *config_path, char *buf, size_t n)
{
    const char *env = getenv("TOLLGATE_PRICES");
    const char *slash = config_path != NULL ? strrchr(config_path, '/') : NULL;
    int len;
    if (env != NULL && *env != '\0')
        len = snprintf(buf, n, "%s", env);
    else if (slash != NULL)
        len = snprintf(buf, n, "%.*s/model_prices.json", (int)(slash - config_path), config_path);
    else
        len = snprintf(buf, n, "model_prices.json");
    return len >= 0 && (size_t)len < n ? buf : NULL;
}

/* ---------------------------------------------------------------- resolution */

static const char *const REGION_PREFIXES[] = {"us.",     "us-gov.", "eu.", "apac.",
                                              "global.", "jp.",     "au.", "ca."};

static const gw_price_t *find_in_table(const gw_pricing_t *t, const gw_deployment_t *d, const char *model)
{
    char key[GW_PRICING_MAX_NAME + 1];
    const gw_price_t *p = NULL;
    const json_t *base = json_object_get(d->model_info, "base_model");
    if (json_is_string(base) && (p = gw_pricing_get(t, json_string_value(base))) != NULL)
        return p;
    if (model == NULL)
        return d->model_name != NULL ? gw_pricing_get(t, d->model_name) : NULL;
    int len = d->provider != NULL ? snprintf(key, sizeof key, "%s/%s", d->provider, model) : -1;
    if (len > 0 && (size_t)len < sizeof key && (p = gw_pricing_get(t, key)) != NULL)
        return p;
    if ((p = gw_pricing_get(t, model)) != NULL)
        return p;
    const char *last = strrchr(model, '/');
    last = last != NULL ? last + 1 : model;
    if (last != model && (p = gw_pricing_get(t, last)) != NULL)
        return p;
    for (size_t i = 0; i < sizeof REGION_PREFIXES / sizeof REGION_PREFIXES[0]; i++) {
        size_t pl = strlen(REGION_PREFIXES[i]);
        if (strncmp(last, REGION_PREFIXES[i], pl) == 0 && (p = gw_pricing_get(t, last + pl)) != NULL)
            return p;
    }
    return d->model_name != NULL ? gw_pricing_get(t, d->model_name) : NULL;
}

/* An input/output override the config reader saw but that is not in the JSON (built by hand). */
static int apply_double(gw_price_t *p, double usd, unsigned bit, uint64_t *field, unsigned *set)
{
    if (usd <= 0 || (*set & bit))
        return 0;
    if (gw_pricing_double_usd(usd, PICO_DIGITS, field) != GW_PRICING_OK)
        return -1;
    p->has |= bit;
    *set |= bit;
    return 0;
}

int gw_pricing_resolve(const gw_pricing_t *t, const gw_deployment_t *d, const char *model, gw_price_t *out,
                       char *err, size_t errlen)
{
    const gw_price_t *found;
    const char *bad = NULL;
    unsigned set = 0, set_info = 0;
    memset(out, 0, sizeof *out);
    if (d == NULL)
        return GW_PRICING_EINVAL;
    found = t != NULL ? find_in_table(t, d, model != NULL ? model : d->upstream_model) : NULL;
    if (found != NULL)
        *out = *found;
    /* model_info first, litellm_params over it: litellm_params wins, as in LiteLLM. */
    if (apply_fields(out, d->model_info, 1, &set_info, &bad) != 0 ||
        apply_fields(out, d->litellm_params, 0, &set, &bad) != 0) {
        snprintf(err, errlen, "model_list[%zu] (%s): %s must be a number >= 0", d->index,
                 d->model_name != NULL ? d->model_name : "?", bad);
        memset(out, 0, sizeof *out);
        return GW_PRICING_EINVAL;
    }
    set |= set_info;
    if (apply_double(out, d->input_cost_per_token, GW_PRICE_HAS_INPUT, &out->input, &set) != 0 ||
        apply_double(out, d->output_cost_per_token, GW_PRICE_HAS_OUTPUT, &out->output, &set) != 0) {
        snprintf(err, errlen, "model_list[%zu]: cost per token out of range", d->index);
        memset(out, 0, sizeof *out);
        return GW_PRICING_EINVAL;
    }
    if (found == NULL && set == 0) {
        memset(out, 0, sizeof *out);
        return GW_PRICING_NOT_FOUND;
    }
    return GW_PRICING_OK;
}

/* ---------------------------------------------------------------- arithmetic */

static uint64_t price_or(const gw_price_t *p, unsigned bit, uint64_t v, uint64_t fallback)
{
    return (p->has & bit) ? v : fallback;
}

/* *acc += count × price, checked. count <= 0 adds nothing. */
static int mul_add(uint64_t *acc, int64_t count, uint64_t price)
{
    uint64_t prod;
    if (count <= 0 || price == 0)
        return 0;
    if (__builtin_mul_overflow((uint64_t)count, price, &prod) || __builtin_add_overflow(*acc, prod, acc))
        return -1;
    return 0;
}

static uint64_t pico_to_micros_up(uint64_t pico)
{
    return pico / GW_PRICING_PICO_PER_MICRO + (pico % GW_PRICING_PICO_PER_MICRO != 0);
}

int gw_pricing_cost_micros(const gw_price_t *p, const ad_usage_t *u, uint64_t *micros)
{
    uint64_t in = price_or(p, GW_PRICE_HAS_INPUT, p->input, 0);
    uint64_t out = price_or(p, GW_PRICE_HAS_OUTPUT, p->output, 0);
    uint64_t cread = price_or(p, GW_PRICE_HAS_CACHE_READ, p->cache_read, in);
    uint64_t reas = price_or(p, GW_PRICE_HAS_REASONING, p->reasoning, out);
    int64_t prompt = u->prompt_tokens, cached = u->cached_tokens;
    int64_t completion = u->completion_tokens, reasoning = u->reasoning_tokens;
    uint64_t pico = 0;
    int rc = GW_PRICING_OK;

    if (prompt < 0) { /* unknown: what is known (cached tokens) is a lower bound */
        prompt = cached > 0 ? cached : 0;
        if (in != 0)
            rc = GW_PRICING_UNKNOWN;
    }
    if (completion < 0) {
        completion = reasoning > 0 ? reasoning : 0;
        if (out != 0 || reas != 0)
            rc = GW_PRICING_UNKNOWN;
    }
    if (cached < 0 || cached > prompt)
        cached = 0;
    if (reasoning < 0 || reasoning > completion)
        reasoning = 0;
    if (mul_add(&pico, prompt - cached, in) || mul_add(&pico, cached, cread) ||
        mul_add(&pico, completion - reasoning, out) || mul_add(&pico, reasoning, reas)) {
        *micros = UINT64_MAX;
        return GW_PRICING_EOVERFLOW;
    }
    *micros = pico_to_micros_up(pico);
    return rc;
}

int gw_pricing_estimate_micros(const gw_price_t *p, size_t prompt_bytes, int64_t max_tokens,
                               int64_t default_max_tokens, uint64_t *micros)
{
    uint64_t in = price_or(p, GW_PRICE_HAS_INPUT, p->input, 0);
    uint64_t out = price_or(p, GW_PRICE_HAS_OUTPUT, p->output, 0);
    uint64_t reas = price_or(p, GW_PRICE_HAS_REASONING, p->reasoning, out);
    uint64_t prompt = (uint64_t)(prompt_bytes / 4 + (prompt_bytes % 4 != 0)), pico = 0;
    int64_t completion = max_tokens >= 0 ? max_tokens : default_max_tokens;
    if (completion < 0)
        completion = p->max_output_tokens > 0 ? p->max_output_tokens : 0;
    if (__builtin_mul_overflow(prompt, in, &pico) || mul_add(&pico, completion, out > reas ? out : reas)) {
        *micros = UINT64_MAX;
        return GW_PRICING_EOVERFLOW;
    }
    *micros = pico_to_micros_up(pico);
    return GW_PRICING_OK;
}

/*
 * pricing.h — what a call costs: the price table (config/model_prices.json), per-deployment
 * overrides, and cost arithmetic in integer micro-dollars.
 *
 * The table uses LiteLLM's model_prices_and_context_window.json layout (an object keyed by model
 * name; entries carry input_cost_per_token, output_cost_per_token, cache_read_input_token_cost,
 * cache_creation_input_token_cost, output_cost_per_reasoning_token, litellm_provider, mode,
 * max_input_tokens, max_output_tokens; other fields are ignored), so LiteLLM's own file can be
 * pointed at with TOLLGATE_PRICES. It is loaded once at start and immutable afterwards: every
 * worker thread reads it without locks.
 *
 * Units. Prices are held as integer pico-dollars (1e-12 USD) per token. List prices are quoted per
 * million tokens with up to a few decimals ($0.075/1M, $0.01875/1M); per token that is a fraction
 * of a micro-dollar (gpt-4o-mini input is 0.15 µ$), so micro-dollars per token cannot hold them,
 * and doubles would make every sum inexact. In pico-dollars any price written with up to six
 * decimals per million tokens is an exact integer (0.15 µ$ = 150000 p$), uint64 holds up to
 * $18 million, and a request's total is exact until it is rounded once, up, to micro-dollars.
 * Decimal prices convert exactly; digits past the pico-dollar round up.
 *
 * Billing never rounds in the caller's favour: a total that is not a whole micro-dollar rounds
 * up, a sub-count that contradicts its parent (cached > prompt, reasoning > completion) is
 * ignored so the parent is billed at its full price, and arithmetic that would overflow is an
 * error rather than a wrong number.
 */
#ifndef GW_PRICING_H
#define GW_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/config.h"

/** Results of the functions below. Negative values are errors. */
enum {
    GW_PRICING_OK = 0,
    GW_PRICING_NOT_FOUND = 1, /* gw_pricing_resolve: no table entry and no override; price is zero */
    GW_PRICING_UNKNOWN = 2,   /* gw_pricing_cost_micros: a count with a nonzero price is unknown */
    GW_PRICING_EOVERFLOW = -1,
    GW_PRICING_EINVAL = -2,
};

/** Ceilings. */
#define GW_PRICING_MAX_FILE (16u << 20)    /* bytes of model_prices.json */
#define GW_PRICING_MAX_ENTRIES 100000      /* entries kept from it */
#define GW_PRICING_MAX_NAME 512            /* bytes of a model name (longer ones are skipped) */
#define GW_PRICING_USD_MAX 28              /* buffer for gw_pricing_format_usd: 20+1+6 digits+NUL */
#define GW_PRICING_PICO_PER_MICRO 1000000u /* pico-dollars in a micro-dollar */

typedef enum gw_price_mode {
    GW_PRICE_MODE_UNKNOWN = 0, /* "mode" absent */
    GW_PRICE_MODE_CHAT,
    GW_PRICE_MODE_COMPLETION,
    GW_PRICE_MODE_EMBEDDING,
    GW_PRICE_MODE_OTHER, /* image_generation, rerank, … */
} gw_price_mode_t;

/** Bits of gw_price_t.has: which prices were given (the rest fall back, see gw_price_t). */
enum {
    GW_PRICE_HAS_INPUT = 1u << 0,
    GW_PRICE_HAS_OUTPUT = 1u << 1,
    GW_PRICE_HAS_CACHE_READ = 1u << 2,
    GW_PRICE_HAS_CACHE_WRITE = 1u << 3,
    GW_PRICE_HAS_REASONING = 1u << 4,
};

/**
 * The prices of one model, pico-dollars per token. A price whose bit is missing from `has` is
 * not used as is: cache_read and cache_write fall back to input, reasoning to output; input and
 * output are zero when missing. Plain values: copy freely. name and provider point into the table
 * (valid while it lives) and are NULL when the price came from overrides only.
 */
typedef struct gw_price {
    uint64_t input;       /* input_cost_per_token: per prompt token (embeddings: per input token) */
    uint64_t output;      /* output_cost_per_token: per completion token */
    uint64_t cache_read;  /* cache_read_input_token_cost: per cached prompt token */
    uint64_t cache_write; /* cache_creation_input_token_cost (ad_usage_t has no such count yet) */
    uint64_t reasoning;   /* output_cost_per_reasoning_token: per reasoning token */
    unsigned has;         /* GW_PRICE_HAS_* */
    gw_price_mode_t mode;
    int64_t max_input_tokens, max_output_tokens; /* 0 = unknown */
    const char *name;                            /* table key the price came from */
    const char *provider;                        /* its litellm_provider */
} gw_price_t;

/** The immutable table, opaque. */
typedef struct gw_pricing gw_pricing_t;

/**
 * Where the table lives: $TOLLGATE_PRICES when set and non-empty, else "model_prices.json" in
 * the directory of config_path (NULL or a bare file name: the current directory). Writes into
 * buf and returns it, or NULL when it does not fit.
 */
const char *gw_pricing_path(const char *config_path, char *buf, size_t n);

/**
 * Loads the table from PATH (at most GW_PRICING_MAX_FILE bytes). Returns NULL with a one-line
 * message in msg when the file exists but cannot be used (unreadable, too large, not a JSON
 * object). Otherwise returns a table and msg holds "" or a warning to log: the file does not
 * exist (the table is empty: only deployments with their own prices cost anything), or some
 * entries were skipped (not an object, a cost that is not a number >= 0, a name too long).
 * Call once at start; the table may then be read from any thread.
 */
gw_pricing_t *gw_pricing_load(const char *path, char *msg, size_t msglen);

/** Same from JSON text in memory (tests); name is used in messages. */
gw_pricing_t *gw_pricing_load_string(const char *json, size_t len, const char *name, char *msg,
                                     size_t msglen);

void gw_pricing_destroy(gw_pricing_t *t);

/** Number of entries in the table. */
size_t gw_pricing_count(const gw_pricing_t *t);

/** The entry named exactly NAME, or NULL. The pointer lives as long as the table. */
const gw_price_t *gw_pricing_get(const gw_pricing_t *t, const char *name);

/**
 * The price of deployment D, for upstream model MODEL (NULL = d->upstream_model; wildcard routes
 * pass the model the request resolved to). The table is searched, first match wins, for:
 * model_info.base_model (LiteLLM's field for Azure deployments); "<provider>/<model>"; "<model>";
 * the part of <model> after its last '/' ("converse/anthropic.claude…"); that part without a
 * Bedrock cross-region prefix ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.");
 * d->model_name. Then the deployment's own prices win field by field: litellm_params first, then
 * model_info (LiteLLM's order), for input_cost_per_token, output_cost_per_token,
 * cache_read_input_token_cost, cache_creation_input_token_cost, output_cost_per_reasoning_token
 * (numbers or numeric strings, >= 0; an explicit 0 makes that part free); model_info may also set
 * mode, max_input_tokens and max_output_tokens. t may be NULL (overrides only).
 *
 * Returns GW_PRICING_OK, GW_PRICING_NOT_FOUND (no entry, no override: *out is all zero, so every
 * call is free: warn once at start), or GW_PRICING_EINVAL with a message in err (an override that
 * is not a number >= 0). Cheap but not free: resolve once per deployment at start, per request
 * only for wildcard routes. Thread-safe.
 */
int gw_pricing_resolve(const gw_pricing_t *t, const gw_deployment_t *d, const char *model, gw_price_t *out,
                       char *err, size_t errlen);

/**
 * The cost of a finished call in micro-dollars, rounded up:
 *   (prompt − cached) × input + cached × cache_read + (completion − reasoning) × output
 *   + reasoning × reasoning
 * Counts are ad_usage_t's (negative = unknown). Unknown cached or reasoning counts bill as 0 (the
 * parent count then pays full input/output price); a sub-count larger than its parent is ignored.
 * Returns GW_PRICING_OK; GW_PRICING_UNKNOWN when prompt or completion is unknown and its price is
 * nonzero (an embedding's missing completion count costs nothing and is fine): *micros then holds
 * the cost of what is known, a lower bound, and the caller should settle at the reservation's
 * estimate instead; GW_PRICING_EOVERFLOW when the total exceeds UINT64_MAX pico-dollars
 * (*micros = UINT64_MAX). Pure, thread-safe.
 */
int gw_pricing_cost_micros(const gw_price_t *p, const ad_usage_t *u, uint64_t *micros);

/**
 * An upper-side estimate for a budget reservation, micro-dollars, rounded up: prompt tokens are
 * ceil(prompt_bytes / 4) at the full input price (no cache discount); completion tokens are
 * max_tokens, or default_max_tokens when max_tokens < 0, or p->max_output_tokens when that is
 * < 0 too (0 when unknown), at the larger of the output and reasoning prices. For n > 1 choices
 * the caller passes max_tokens × n. Returns GW_PRICING_OK or GW_PRICING_EOVERFLOW
 * (*micros = UINT64_MAX: refuse the request rather than reserve a wrong amount).
 */
int gw_pricing_estimate_micros(const gw_price_t *p, size_t prompt_bytes, int64_t max_tokens,
                               int64_t default_max_tokens, uint64_t *micros);

/**
 * Writes micro-dollars as dollars for the x-litellm-response-cost header: integer part, '.', up
 * to six decimals without trailing zeros, at least one ("0.0", "0.000123", "1.5", "12.000001").
 * LiteLLM sends Python's str(float), which agrees from 0.0001 up; below it Python switches to
 * exponent notation ("1.5e-05") where we write "0.000015": both parse as the same float.
 * Integers only. Returns the length, or 0 when buf (n bytes) is too small; GW_PRICING_USD_MAX
 * always suffices.
 */
size_t gw_pricing_format_usd(uint64_t micros, char *buf, size_t n);

/**
 * Converts a decimal USD amount ("0.0000025", "2.5e-6", "3") exactly to an integer number of
 * 10^-digits dollars (digits 12 = pico-dollars, 6 = micro-dollars; at most 18), rounding any
 * further digits up. The whole string must be the number: no sign, no spaces. Returns
 * GW_PRICING_OK, GW_PRICING_EINVAL (not a number, negative, digits > 18) or GW_PRICING_EOVERFLOW.
 */
int gw_pricing_parse_usd(const char *s, unsigned digits, uint64_t *out);

/**
 * Same for a double as jansson and the config reader produce: the double is written with 15
 * significant digits (which gives back any decimal of up to 15 digits it was read from) and that
 * decimal is converted exactly. Negative, NaN and infinite values are GW_PRICING_EINVAL.
 */
int gw_pricing_double_usd(double usd, unsigned digits, uint64_t *out);

#endif

/*
 * config_yaml.c — YAML text to a jansson tree, typed the way LiteLLM sees it.
 *
 * LiteLLM reads its config with PyYAML's safe_load, which follows YAML 1.1: `80_000` and `0x1F`
 * are ints, `yes`/`On`/`True` are booleans, `~` and an empty value are null. Users rely on
 * that, so plain (unquoted) scalars are resolved with PyYAML's rules; quoted and block scalars
 * stay strings. Two deliberate widenings: `1e-6` and `1.5e6` (PyYAML: strings, because its
 * float rule wants a dot and a signed exponent) are floats, as LiteLLM converts such costs and
 * timeouts with float() anyway; and `0o17` is octal as in YAML 1.2. Base-60 numbers (`1:30`)
 * stay strings.
 *
 * We walk libyaml's event stream with an explicit stack. Anchors are recorded when their node
 * is complete and aliases are deep copies, so the result is a tree (jansson has no cycles) that
 * later passes may edit in place; a node budget and a depth bound that counts expanded aliases
 * stop "billion laughs" documents. Merge keys (`<<`) are applied when their mapping closes, with
 * PyYAML's precedence. Duplicate keys keep the last value, with a warning, as PyYAML does.
 *
 * jansson keeps no source positions, so every container, mapping key and sequence item gets a
 * row in doc->locs; config.c looks rows up to put line numbers in warnings and errors.
 */
#include "gateway/config_int.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---------------------------------------------------------------- warnings */

/* Appends a copy of line; out of memory drops it (a warning is never worth failing a load). */
static void push_warning(gw_warnings_t *w, const char *line)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        char **v = realloc(w->v, cap * sizeof *v);
        if (!v)
            return;
        w->v = v;
        w->cap = cap;
    }
    char *s = strdup(line);
    if (!s)
        return;
    for (char *p = s; *p; p++) /* names from the file must not forge log lines */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    w->v[w->n++] = s;
}

void gw_warn(gw_warnings_t *w, const char *fmt, ...)
{
    if (w->n >= GW_CONFIG_MAX_WARNINGS) {
        w->dropped++;
        return;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    push_warning(w, line);
}

void gw_warnings_finish(gw_warnings_t *w)
{
    char line[64];
    if (w->dropped == 0)
        return;
    snprintf(line, sizeof line, "... and %zu more warnings", w->dropped);
    push_warning(w, line);
    w->dropped = 0;
}

void gw_warnings_free(gw_warnings_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- scalar rules */

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return 99;
}

/* Reads the digits of an int in base (underscores skipped). 0 when a character does not belong
 * or there is no digit at all (PyYAML's regex accepts "0b_" and then fails in int(); we call it a
 * string). */
static int int_digits(const char *s, size_t n, unsigned base, uint64_t *acc, double *dacc, int *ovf)
{
    size_t ndig = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_')
            continue;
        int d = digit_value(s[i]);
        if (d >= (int)base)
            return 0;
        ndig++;
        *dacc = *dacc * base + d;
        if (__builtin_mul_overflow(*acc, (uint64_t)base, acc) ||
            __builtin_add_overflow(*acc, (uint64_t)d, acc))
            *ovf = 1;
    }
    return ndig > 0;
}

int gw_yaml_parse_int(const char *s, size_t n, int64_t *out, double *dbl, int *big)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= n)
        return 0;
    unsigned base = 10;
    if (s[i] == '0' && i + 1 < n) {
        char c = s[i + 1];
        if (c == 'b' || c == 'x' || c == 'o') {
            base = c == 'b' ? 2 : c == 'x' ? 16 : 8;
            i += 2;
        } else {
            base = 8; /* YAML 1.1: a leading zero means octal; the zero is a digit */
        }
    } else if (s[i] < '0' || s[i] > '9') {
        return 0;
    }
    uint64_t acc = 0;
    double dacc = 0;
    int ovf = 0;
    if (!int_digits(s + i, n - i, base, &acc, &dacc, &ovf))
        return 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    *big = ovf || acc > limit;
    *dbl = neg ? -dacc : dacc;
    if (!*big)
        *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 1;
}

/* [0-9][0-9_]* starting at s[*i]; returns the number of characters taken (0: none). */
static size_t span_digits(const char *s, size_t n, size_t i, int underscores)
{
    size_t j = i;
    if (j >= n || s[j] < '0' || s[j] > '9')
        return 0;
    while (j < n && ((s[j] >= '0' && s[j] <= '9') || (underscores && s[j] == '_')))
        j++;
    return j - i;
}

static int is_special_float(const char *s, size_t n, double *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF"};
    static const char *const nan[] = {".nan", ".NaN", ".NAN"};
    size_t i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    for (size_t k = 0; k < 3; k++) {
        if (n - i == 4 && memcmp(s + i, inf[k], 4) == 0) {
            *out = s[0] == '-' ? -INFINITY : INFINITY;
            return 1;
        }
        if (i == 0 && n == 4 && memcmp(s, nan[k], 4) == 0) {
            *out = NAN;
            return 1;
        }
    }
    return 0;
}

/* Shape check: [-+]? (D '.' [0-9_]* | '.' D | D) ([eE] [-+]? [0-9]+)? where D = [0-9][0-9_]*,
 * and the bare-D form needs the exponent (else it is an int or a string). */
static int float_shape(const char *s, size_t n)
{
    size_t i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    size_t whole = span_digits(s, n, i, 1);
    i += whole;
    int dot = i < n && s[i] == '.';
    if (dot) {
        i++;
        size_t frac = span_digits(s, n, i, 1);
        if (!whole && !frac)
            return 0;
        i += frac;
    } else if (!whole) {
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t exp = span_digits(s, n, i, 0);
        if (!exp)
            return 0;
        i += exp;
    } else if (!dot) {
        return 0;
    }
    return i == n;
}

int gw_yaml_parse_float(const char *s, size_t n, double *out)
{
    if (is_special_float(s, n, out))
        return 1;
    if (!float_shape(s, n))
        return 0;
    char *copy = malloc(n + 1);
    if (!copy)
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_')
            copy[k++] = s[i];
    copy[k] = '\0';
    char *end = NULL;
    *out = strtod(copy, &end);
    int ok = end == copy + k;
    free(copy);
    return ok;
}

static int text_in(const char *s, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(s, *list, n) == 0)
            return 1;
    return 0;
}

static const char *const NULLS[] = {"~", "null", "Null", "NULL", "", NULL};
static const char *const TRUES[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const FALSES[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};

/* ---------------------------------------------------------------- builder state */

typedef struct frame {
    json_t *node;        /* object or array being filled */
    char *anchor;        /* registered when the node closes */
    size_t nodes_before; /* budget counter at open, to size the anchor */
    int height;          /* tallest child so far (0 = only scalars) */
    int have_key;        /* mapping: a key waits for its value */
    int key_is_merge;
    char *key;
    yaml_mark_t key_mark;
    json_t *merges; /* sources of `<<`, lowest precedence first (PyYAML's order) */
    yaml_mark_t start;
} frame_t;

typedef struct anchor {
    char *name;
    json_t *node;
    size_t size;
    int height;
} anchor_t;

typedef struct builder {
    const char *name;
    gw_yaml_doc_t *doc;
    gw_warnings_t *warn;
    frame_t stack[GW_YAML_MAX_DEPTH];
    size_t depth;
    anchor_t *anchors;
    size_t n_anchors, cap_anchors;
    size_t nodes;
    int documents;
    char *err;
    size_t errlen;
} builder_t;

static int fail_at(builder_t *b, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail_at(builder_t *b, yaml_mark_t m, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(b->err, b->errlen, "%s:%zu:%zu: %s", b->name, m.line + 1, m.column + 1, what);
    return -1;
}

static int loc_add(builder_t *b, const json_t *node, const char *key, size_t index, yaml_mark_t m)
{
    gw_yaml_doc_t *d = b->doc;
    if (d->n_locs == d->cap_locs) {
        size_t cap = d->cap_locs ? d->cap_locs * 2 : 256;
        gw_yaml_loc_t *v = realloc(d->locs, cap * sizeof *v);
        if (!v)
            return fail_at(b, m, "out of memory");
        d->locs = v;
        d->cap_locs = cap;
    }
    char *k = NULL;
    if (key && !(k = strdup(key)))
        return fail_at(b, m, "out of memory");
    /* A container's own row holds a reference: a container dropped during parsing (a duplicate
     * key's old value, an inline merge source) must not free its address for a new node, which
     * would then inherit its rows. */
    if (!key && index == SIZE_MAX)
        json_incref((json_t *)node);
    d->locs[d->n_locs++] = (gw_yaml_loc_t){node, k, index, (int)m.line + 1, (int)m.column + 1};
    return 0;
}

static int count_node(builder_t *b, size_t n, yaml_mark_t m)
{
    if (n > GW_YAML_MAX_NODES - b->nodes)
        return fail_at(b, m, "document too large (more than %d values, aliases expanded)", GW_YAML_MAX_NODES);
    b->nodes += n;
    return 0;
}

static int anchor_add(builder_t *b, const char *name, json_t *node, size_t size, int height, yaml_mark_t m)
{
    if (b->n_anchors == b->cap_anchors) {
        size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 16;
        anchor_t *v = realloc(b->anchors, cap * sizeof *v);
        if (!v)
            return fail_at(b, m, "out of memory");
        b->anchors = v;
        b->cap_anchors = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return fail_at(b, m, "out of memory");
    b->anchors[b->n_anchors++] = (anchor_t){copy, json_incref(node), size, height};
    return 0;
}

/* The latest definition wins: YAML lets a document redefine an anchor name. */
static const anchor_t *anchor_find(const builder_t *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return &b->anchors[i];
    return NULL;
}

/* ---------------------------------------------------------------- attaching values */

/* Collects a `<<` value. A list of mappings is reversed so that, applied in order with later
 * sources overwriting earlier ones, the first mapping of the list wins, as in PyYAML. */
static int add_merge(builder_t *b, frame_t *f, json_t *v, yaml_mark_t m)
{
    if (!f->merges && !(f->merges = json_array()))
        return fail_at(b, m, "out of memory");
    if (json_is_object(v))
        return json_array_append(f->merges, v) ? fail_at(b, m, "out of memory") : 0;
    if (!json_is_array(v))
        return fail_at(b, m, "a merge key (<<) needs a mapping or a list of mappings");
    for (size_t i = json_array_size(v); i-- > 0;) {
        json_t *src = json_array_get(v, i);
        if (!json_is_object(src))
            return fail_at(b, m, "a merge key (<<) list may hold only mappings");
        if (json_array_append(f->merges, src))
            return fail_at(b, m, "out of memory");
    }
    return 0;
}

static int set_key(builder_t *b, frame_t *f, json_t *v)
{
    /* A duplicate gets a second row; lookups answer with the later one, like the value. */
    if (json_object_get(f->node, f->key))
        gw_warn(b->warn, "line %zu: duplicate key '%.64s': the last value wins", f->key_mark.line + 1,
                f->key);
    if (loc_add(b, f->node, f->key, SIZE_MAX, f->key_mark))
        return -1;
    if (json_object_set(f->node, f->key, v))
        return fail_at(b, f->key_mark, "out of memory");
    return 0;
}

/* Puts a finished value (reference borrowed) into the open container, or makes it the root.
 * height is the value's own nesting depth (0 for a scalar). */
static int attach(builder_t *b, json_t *v, int height, yaml_mark_t m)
{
    if ((int)b->depth + height > GW_YAML_MAX_DEPTH)
        return fail_at(b, m, "nested deeper than %d levels", GW_YAML_MAX_DEPTH);
    if (b->depth == 0) {
        b->doc->root = json_incref(v);
        return 0;
    }
    frame_t *f = &b->stack[b->depth - 1];
    if (f->height < height + 1)
        f->height = height + 1;
    if (json_is_array(f->node)) {
        if (loc_add(b, f->node, NULL, json_array_size(f->node), m))
            return -1;
        return json_array_append(f->node, v) ? fail_at(b, m, "out of memory") : 0;
    }
    if (!f->have_key)
        return fail_at(b, m, "only text can be a mapping key");
    int rc = f->key_is_merge ? add_merge(b, f, v, m) : set_key(b, f, v);
    free(f->key);
    f->key = NULL;
    f->have_key = f->key_is_merge = 0;
    return rc;
}

/* A scalar or alias in key position of the open mapping. Returns 1 when it was taken as a key. */
static int take_key(builder_t *b, const char *text, size_t len, int is_merge, yaml_mark_t m, int *rc)
{
    if (b->depth == 0)
        return 0;
    frame_t *f = &b->stack[b->depth - 1];
    if (!json_is_object(f->node) || f->have_key)
        return 0;
    *rc = 0;
    if (memchr(text, '\0', len))
        *rc = fail_at(b, m, "a key contains a NUL character");
    else if (!(f->key = strndup(text, len)))
        *rc = fail_at(b, m, "out of memory");
    f->have_key = *rc == 0;
    f->key_is_merge = is_merge;
    f->key_mark = m;
    return 1;
}

/* ---------------------------------------------------------------- scalars */

static json_t *plain_value(builder_t *b, const char *s, size_t n, yaml_mark_t m)
{
    if (text_in(s, n, NULLS))
        return json_null();
    if (text_in(s, n, TRUES))
        return json_true();
    if (text_in(s, n, FALSES))
        return json_false();
    int64_t iv;
    double dv;
    int big = 0;
    if (gw_yaml_parse_int(s, n, &iv, &dv, &big))
        return big ? json_real(dv) : json_integer(iv);
    if (!gw_yaml_parse_float(s, n, &dv))
        return json_stringn(s, n);
    if (isnan(dv)) {
        /* JSON has no NaN; null is the closest "no number" we can hand to readers. */
        gw_warn(b->warn, "line %zu: .nan has no JSON form; read as null", m.line + 1);
        return json_null();
    }
    if (isinf(dv)) /* likewise for infinities: the largest double is "unlimited" to any reader */
        dv = dv > 0 ? DBL_MAX : -DBL_MAX;
    return json_real(dv);
}

/* An explicitly tagged scalar (!!int "42"). NULL with *bad set when the text does not fit. */
static json_t *tagged_value(builder_t *b, const char *tag, const char *s, size_t n, yaml_mark_t m, int *bad)
{
    const char *t = tag + strlen(TAG_PREFIX);
    json_t *v = NULL;
    if (strcmp(t, "str") == 0)
        return json_stringn(s, n);
    if (strcmp(t, "null") == 0)
        v = text_in(s, n, NULLS) ? json_null() : NULL;
    else if (strcmp(t, "bool") == 0)
        v = text_in(s, n, TRUES) ? json_true() : text_in(s, n, FALSES) ? json_false() : NULL;
    else if (strcmp(t, "int") == 0 || strcmp(t, "float") == 0) {
        v = plain_value(b, s, n, m);
        if (v && (!json_is_number(v) || (t[0] == 'i' && !json_is_integer(v)))) {
            json_decref(v);
            v = NULL;
        } else if (v && t[0] == 'f' && json_is_integer(v)) {
            json_t *r = json_real((double)json_integer_value(v));
            json_decref(v);
            v = r;
        }
    } else {
        return json_stringn(s, n); /* binary, timestamp, ...: kept as text */
    }
    *bad = v == NULL;
    return v;
}

static json_t *scalar_value(builder_t *b, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    yaml_mark_t m = ev->start_mark;
    int bad = 0;
    json_t *v;
    if (tag && strcmp(tag, "!") == 0 && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        tag = NULL; /* PyYAML resolves a plain `! 42` as if untagged */
    if (tag && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0)
        v = tagged_value(b, tag, s, n, m, &bad);
    else if (tag && strcmp(tag, "!") != 0) {
        gw_warn(b->warn, "line %zu: unknown tag '%.64s' ignored", m.line + 1, tag);
        v = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_value(b, s, n, m) : json_stringn(s, n);
    } else if (!tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        v = plain_value(b, s, n, m);
    else
        v = json_stringn(s, n);
    if (!v && bad)
        fail_at(b, m, "value does not match its tag %.64s", tag);
    else if (!v)
        fail_at(b, m, "out of memory");
    return v;
}

static int on_scalar(builder_t *b, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    yaml_mark_t m = ev->start_mark;
    int is_merge = !ev->data.scalar.tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n == 2 &&
                   memcmp(s, "<<", 2) == 0;
    int rc;
    if (count_node(b, 1, m))
        return -1;
    if (take_key(b, s, n, is_merge, m, &rc)) {
        /* Keys stay text (PyYAML would make `1:` an int key; JSON keys are strings anyway). */
        if (rc == 0 && ev->data.scalar.anchor) {
            json_t *k = json_stringn(s, n);
            rc = k ? anchor_add(b, (const char *)ev->data.scalar.anchor, k, 1, 0, m) : -1;
            json_decref(k);
        }
        return rc;
    }
    json_t *v = scalar_value(b, ev);
    if (!v)
        return -1;
    rc = 0;
    if (ev->data.scalar.anchor)
        rc = anchor_add(b, (const char *)ev->data.scalar.anchor, v, 1, 0, m);
    if (rc == 0)
        rc = attach(b, v, 0, m);
    json_decref(v);
    return rc;
}

static int on_alias(builder_t *b, const yaml_event_t *ev)
{
    yaml_mark_t m = ev->start_mark;
    const anchor_t *a = anchor_find(b, (const char *)ev->data.alias.anchor);
    if (!a)
        return fail_at(b, m, "found undefined alias '%.64s'", (const char *)ev->data.alias.anchor);
    if (count_node(b, a->size, m))
        return -1;
    int rc;
    if (json_is_string(a->node) &&
        take_key(b, json_string_value(a->node), json_string_length(a->node), 0, m, &rc))
        return rc;
    json_t *copy = json_deep_copy(a->node);
    if (!copy)
        return fail_at(b, m, "out of memory");
    rc = attach(b, copy, a->height, m);
    json_decref(copy);
    return rc;
}

/* ---------------------------------------------------------------- containers */

static int on_start(builder_t *b, const yaml_event_t *ev, int is_map)
{
    yaml_mark_t m = ev->start_mark;
    const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
    if (tag && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0 && strcmp(tag, "!") != 0)
        gw_warn(b->warn, "line %zu: unknown tag '%.64s' ignored", m.line + 1, tag);
    if (b->depth >= GW_YAML_MAX_DEPTH)
        return fail_at(b, m, "nested deeper than %d levels", GW_YAML_MAX_DEPTH);
    if (b->depth > 0) {
        frame_t *p = &b->stack[b->depth - 1];
        if (json_is_object(p->node) && !p->have_key)
            return fail_at(b, m, "mappings and lists cannot be used as keys");
    }
    if (count_node(b, 1, m))
        return -1;
    frame_t *f = &b->stack[b->depth];
    memset(f, 0, sizeof *f);
    f->node = is_map ? json_object() : json_array();
    f->nodes_before = b->nodes - 1;
    f->start = m;
    if (!f->node || (anchor && !(f->anchor = strdup((const char *)anchor)))) {
        json_decref(f->node);
        free(f->anchor);
        return fail_at(b, m, "out of memory");
    }
    b->depth++;
    return loc_add(b, f->node, NULL, SIZE_MAX, m);
}

/* Applies the collected `<<` sources: later sources overwrite earlier ones, and keys written in
 * the mapping itself beat them all. */
static int apply_merges(builder_t *b, frame_t *f, yaml_mark_t m)
{
    json_t *merged = json_object();
    if (!merged)
        return fail_at(b, m, "out of memory");
    size_t i;
    json_t *src;
    int rc = 0;
    json_array_foreach(f->merges, i, src) rc |= json_object_update(merged, src);
    rc |= json_object_update_missing(f->node, merged);
    json_decref(merged);
    return rc ? fail_at(b, m, "out of memory") : 0;
}

static void frame_release(frame_t *f)
{
    json_decref(f->node);
    json_decref(f->merges);
    free(f->anchor);
    free(f->key);
    memset(f, 0, sizeof *f);
}

static int on_end(builder_t *b, const yaml_event_t *ev)
{
    yaml_mark_t m = ev->start_mark;
    frame_t f = b->stack[--b->depth];
    int rc = 0;
    if (f.merges)
        rc = apply_merges(b, &f, m);
    if (rc == 0 && f.anchor)
        rc = anchor_add(b, f.anchor, f.node, b->nodes - f.nodes_before, f.height, m);
    if (rc == 0)
        rc = attach(b, f.node, f.height, f.start); /* a container sits where it starts */
    frame_release(&f);
    return rc;
}

/* ---------------------------------------------------------------- driver */

static int on_event(builder_t *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
            return fail_at(b, ev->start_mark, "expected a single document in the stream");
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, 0);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, 1);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_end(b, ev);
    default:
        return 0;
    }
}

/* libyaml's reader reports a byte offset (bad UTF-8, control characters); turn it into the same
 * line:col form as every other error. */
static void offset_to_mark(const char *buf, size_t len, size_t off, yaml_mark_t *m)
{
    m->line = 0;
    m->column = 0;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            m->line++;
            m->column = 0;
        } else {
            m->column++;
        }
    }
}

static void parser_error(builder_t *b, const yaml_parser_t *p, const char *buf, size_t len)
{
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(b->err, b->errlen, "%s: out of memory", b->name);
        return;
    }
    if (p->error == YAML_READER_ERROR)
        offset_to_mark(buf, len, p->problem_offset, &m);
    if (p->context)
        fail_at(b, m, "%s (%s at line %zu, column %zu)", problem, p->context, p->context_mark.line + 1,
                p->context_mark.column + 1);
    else
        fail_at(b, m, "%s", problem);
}

static void builder_release(builder_t *b)
{
    while (b->depth > 0)
        frame_release(&b->stack[--b->depth]);
    for (size_t i = 0; i < b->n_anchors; i++) {
        free(b->anchors[i].name);
        json_decref(b->anchors[i].node);
    }
    free(b->anchors);
}

/* Orders rows by what they describe: node, then key (container and item rows first), then item
 * index. */
static int loc_identity_cmp(const gw_yaml_loc_t *l, const json_t *node, const char *key, size_t index)
{
    if ((uintptr_t)l->node != (uintptr_t)node)
        return (uintptr_t)l->node < (uintptr_t)node ? -1 : 1;
    if (!l->key != !key)
        return !l->key ? -1 : 1;
    if (l->key)
        return strcmp(l->key, key);
    return l->index < index ? -1 : l->index > index;
}

/* Identity, then position, so that of two rows for one duplicated key the later sorts last. */
static int loc_cmp(const void *pa, const void *pb)
{
    const gw_yaml_loc_t *a = pa, *b = pb;
    int c = loc_identity_cmp(a, b->node, b->key, b->index);
    if (c == 0)
        c = a->line != b->line ? (a->line < b->line ? -1 : 1) : (a->col > b->col) - (a->col < b->col);
    return c;
}

int gw_yaml_load(const char *buf, size_t len, const char *name, gw_yaml_doc_t *doc, gw_warnings_t *w,
                 char *err, size_t errlen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    builder_t *b = calloc(1, sizeof *b);
    if (!b) {
        yaml_parser_delete(&p);
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    *b = (builder_t){.name = name, .doc = doc, .warn = w, .err = err, .errlen = errlen};
    int rc = 0, done = 0;
    while (rc == 0 && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            parser_error(b, &p, buf, len);
            rc = -1;
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    builder_release(b);
    free(b);
    yaml_parser_delete(&p);
    if (rc != 0) {
        gw_yaml_doc_free(doc);
        return -1;
    }
    if (doc->n_locs > 0)
        qsort(doc->locs, doc->n_locs, sizeof *doc->locs, loc_cmp);
    return 0;
}

void gw_yaml_doc_free(gw_yaml_doc_t *doc)
{
    for (size_t i = 0; i < doc->n_locs; i++) {
        if (!doc->locs[i].key && doc->locs[i].index == SIZE_MAX)
            json_decref((json_t *)doc->locs[i].node);
        free(doc->locs[i].key);
    }
    free(doc->locs);
    json_decref(doc->root);
    memset(doc, 0, sizeof *doc);
}

int gw_yaml_where(const gw_yaml_doc_t *doc, const json_t *node, const char *key, size_t index, int *line,
                  int *col)
{
    size_t lo = 0, hi = doc->n_locs;
    while (lo < hi) { /* first row past the ones for (node, key, index) */
        size_t mid = lo + (hi - lo) / 2;
        if (loc_identity_cmp(&doc->locs[mid], node, key, index) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || loc_identity_cmp(&doc->locs[lo - 1], node, key, index) != 0)
        return 0;
    *line = doc->locs[lo - 1].line;
    *col = doc->locs[lo - 1].col;
    return 1;
}

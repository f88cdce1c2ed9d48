/*
 * config_int.h — private to the configuration loader (config.c, config_yaml.c, config_dump.c).
 *
 * config_yaml.c turns YAML text into a jansson tree with PyYAML's scalar rules and remembers
 * where each node and each mapping key sat in the file, because jansson keeps no positions and
 * every warning and semantic error must name a line. config.c interprets the tree.
 */
#ifndef GW_CONFIG_INT_H
#define GW_CONFIG_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Ceilings: a config is a few hundred lines; these only stop hostile or broken input. */
#define GW_CONFIG_MAX_BYTES (16u * 1024u * 1024u) /* file size */
#define GW_YAML_MAX_DEPTH 64                      /* nesting, including alias expansion */
#define GW_YAML_MAX_NODES 200000                  /* values, including alias copies */
#define GW_CONFIG_MAX_WARNINGS 500                /* past it, one "... more" line */

/** Warnings collected while loading, in order. Owns its strings. */
typedef struct gw_warnings {
    char **v;
    size_t n, cap;
    size_t dropped; /* past GW_CONFIG_MAX_WARNINGS */
} gw_warnings_t;

/** Appends one formatted warning (truncated to 512 bytes). Out of memory drops it silently. */
void gw_warn(gw_warnings_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Adds the "... and N more warnings" line when some were dropped. */
void gw_warnings_finish(gw_warnings_t *w);
void gw_warnings_free(gw_warnings_t *w);

/**
 * Where something came from. A row describes either a container itself (key NULL, index
 * SIZE_MAX), one key of a mapping (key set) or one item of a sequence (key NULL, index set).
 * Positions are 1-based. Nodes copied from an alias or a merge key have no rows. A container's
 * own row holds a reference to it until gw_yaml_doc_free, so no address is ever reused while
 * rows may point at it.
 */
typedef struct gw_yaml_loc {
    const json_t *node;
    char *key;
    size_t index;
    int line, col;
} gw_yaml_loc_t;

typedef struct gw_yaml_doc {
    json_t *root; /* owned; NULL until loaded */
    gw_yaml_loc_t *locs;
    size_t n_locs, cap_locs;
} gw_yaml_doc_t;

/**
 * Parses one YAML document from buf[0..len) into doc (which must be zeroed). name is used in
 * messages. Returns 0, or -1 with "NAME:LINE:COL: problem" in err; doc is then empty. Warnings
 * (duplicate keys, unknown tags, NaN) go to w.
 */
int gw_yaml_load(const char *buf, size_t len, const char *name, gw_yaml_doc_t *doc, gw_warnings_t *w,
                 char *err, size_t errlen);

void gw_yaml_doc_free(gw_yaml_doc_t *doc);

/**
 * Position of a container (key NULL, index SIZE_MAX), of a mapping key, or of a sequence item.
 * Returns 1 and fills line/col when known, else 0.
 */
int gw_yaml_where(const gw_yaml_doc_t *doc, const json_t *node, const char *key, size_t index, int *line,
                  int *col);

/**
 * PyYAML's int rule (plus YAML 1.2's 0o prefix): [-+]? 0b… | 0x… | 0o… | 0[0-7_]+ | 0 | [1-9][0-9_]*.
 * Returns 1 when s[0..n) is an int: *out holds it, or, when it does not fit in int64, *big is
 * set to 1 and *dbl holds its approximate value. Returns 0 when s is not an int.
 */
int gw_yaml_parse_int(const char *s, size_t n, int64_t *out, double *dbl, int *big);

/** Float rule (PyYAML's plus YAML 1.2's exponent forms such as 1e-6). 1 and *out when s is a float. */
int gw_yaml_parse_float(const char *s, size_t n, double *out);

/** Top-level keys LiteLLM (or Tollgate) knows; NULL-terminated. Others draw a warning. */
extern const char *const gw_config_top_keys[];

/** 1 when s equals one of the strings of the NULL-terminated list. */
int gw_config_in_list(const char *s, const char *const *list);

/** Formats d as an integer when it is one, else with the fewest digits that read back exactly
 * (Python's str(float) style), so "60" and "1e-06" print as users wrote them. */
void gw_config_fmt_double(char *buf, size_t n, double d);

#endif

/*
 * import.c — `tollgate import-litellm` (the contract is in import.h).
 *
 * The tables are data: each LiteLLM table is a list of (LiteLLM column, Tollgate column, kind)
 * that says how a value is read (the SQL expression on the source) and converted (in C). The
 * source is read with one query per table, each row as row_to_json of those expressions, so
 * arrays and JSON arrive as JSON; money arrives as text (float8 prints the shortest exact
 * decimal, jsonb numbers their exact decimal), so dollars become micro-dollars by decimal
 * arithmetic, never through a binary float. The target side is one store job: per row it reads
 * Tollgate's row, builds the new one (defaults for NULLs, spend = the larger), and writes only
 * when they differ, counting inserted / updated / unchanged.
 */
#include "gateway/import.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapters/buf.h"

/* ---- conversions ------------------------------------------------------------------------------ */

int gw_import_money_micro(const char *text, int64_t *micro)
{
    if (text == NULL || strlen(text) > GW_IMPORT_MONEY_MAX)
        return -1;
    const char *p = text;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    char dig[GW_IMPORT_MONEY_MAX + 1];
    size_t nd = 0, nfrac = 0, seen = 0;
    for (; *p >= '0' && *p <= '9'; p++, seen++)
        if (nd > 0 || *p != '0')
            dig[nd++] = *p;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, seen++, nfrac++)
            if (nd > 0 || *p != '0')
                dig[nd++] = *p;
        /* leading zeros of the fraction still count as fraction digits (nfrac) */
    }
    if (seen == 0)
        return -1;
    long exp = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0;
        if (*p == '-' || *p == '+')
            eneg = *p++ == '-';
        if (!(*p >= '0' && *p <= '9'))
            return -1;
        for (; *p >= '0' && *p <= '9'; p++)
            if (exp < 100000)
                exp = exp * 10 + (*p - '0');
        if (eneg)
            exp = -exp;
    }
    if (*p != '\0')
        return -1;
    /* value = 0.dig… scaled: micro = D × 10^k with D the significant digits as an integer */
    long k = exp - (long)nfrac + 6;
    long keep = (long)nd + (k < 0 ? k : 0); /* digits of D kept before rounding */
    uint64_t v = 0;
    for (long i = 0; i < keep; i++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(dig[i] - '0'), &v))
            return -1;
    }
    if (k > 0 && nd > 0) {
        for (long i = 0; i < k; i++)
            if (__builtin_mul_overflow(v, 10, &v))
                return -1;
    }
    if (k < 0 && keep >= 0 && keep < (long)nd && dig[keep] >= '5')
        v++; /* half up: the first dropped digit decides */
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *micro = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

int gw_import_time_text(const char *text, char out[GW_STORE_TIME_LEN])
{
    if (text == NULL)
        return -1;
    if (strcmp(text, "infinity") == 0 || strcmp(text, "-infinity") == 0)
        return 1;
    /* PostgreSQL prints a whole-hour offset as "+00"; gw_store_time_parse wants ±HH:MM */
    char buf[64];
    size_t n = strlen(text);
    if (n + 4 >= sizeof(buf))
        return -1;
    memcpy(buf, text, n + 1);
    if (n > 19 && (buf[n - 3] == '+' || buf[n - 3] == '-') && isdigit((unsigned char)buf[n - 4]) &&
        isdigit((unsigned char)buf[n - 2]) && isdigit((unsigned char)buf[n - 1]))
        memcpy(buf + n, ":00", 4);
    int64_t ms;
    if (gw_store_time_parse(buf, &ms) != 0)
        return -1;
    gw_store_time_iso(ms, out);
    return 0;
}

json_t *gw_import_json_array(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return json_array();
    if (json_is_array(v))
        return json_deep_copy(v);
    if (json_is_object(v) && json_object_size(v) == 0)
        return json_array();
    if (json_is_string(v)) {
        json_t *j = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
        if (json_is_array(j))
            return j;
        json_decref(j);
    }
    return NULL;
}

/* ---- the tables ------------------------------------------------------------------------------- */

typedef enum col_kind {
    K_TEXT,         /* text */
    K_INT,          /* Int / BigInt */
    K_BOOL,         /* Boolean; NULL → false */
    K_MONEY,        /* Float dollars → micro-dollars; NULL stays NULL */
    K_SPEND,        /* Float dollars → micro-dollars; NULL → 0; the larger of LiteLLM's and Tollgate's */
    K_ARRAY,        /* String[] or a Json list → JSON array; NULL → [] */
    K_JSON,         /* Json → JSON; NULL → {} */
    K_MONEY_MAP,    /* Json {"model": dollars} → {"model": micro-dollars}; NULL → {} */
    K_TIME,         /* DateTime → ISO text; NULL stays NULL */
    K_TIME_NN,      /* DateTime, NOT NULL in Tollgate: NULL → Tollgate's value, else now */
    K_INT0,         /* Int; NULL → 0 */
    K_TEAM_ALIASES, /* LiteLLM_TeamTable.model_id → LiteLLM_ModelTable.aliases (JSON; NULL → {}) */
} col_kind_t;

typedef struct col {
    const char *src; /* LiteLLM's column */
    const char *dst; /* Tollgate's column */
    col_kind_t kind;
} col_t;

#define MAX_COLS 48

typedef struct table {
    const char *src;      /* LiteLLM's table */
    const char *dst;      /* Tollgate's table */
    const char *pk[2];    /* Tollgate's primary key (LiteLLM's is the same columns) */
    col_t cols[MAX_COLS]; /* ends with a zero entry */
} table_t;

/* Order: the referenced rows first (budgets, organizations), keys last. */
static const table_t TABLES[] = {
    {"LiteLLM_BudgetTable",
     "budgets",
     {"budget_id", NULL},
     {{"budget_id", "budget_id", K_TEXT},
      {"max_budget", "max_budget", K_MONEY},
      {"soft_budget", "soft_budget", K_MONEY},
      {"max_parallel_requests", "max_parallel_requests", K_INT},
      {"tpm_limit", "tpm_limit", K_INT},
      {"rpm_limit", "rpm_limit", K_INT},
      {"model_max_budget", "model_max_budget", K_JSON},
      {"budget_duration", "budget_duration", K_TEXT},
      {"budget_reset_at", "budget_reset_at", K_TIME},
      {"created_at", "created_at", K_TIME_NN},
      {"created_by", "created_by", K_TEXT},
      {"updated_at", "updated_at", K_TIME_NN},
      {"updated_by", "updated_by", K_TEXT},
      {0}}},
    {"LiteLLM_OrganizationTable",
     "organizations",
     {"organization_id", NULL},
     {{"organization_id", "organization_id", K_TEXT},
      {"organization_alias", "organization_alias", K_TEXT},
      {"budget_id", "budget_id", K_TEXT},
      {"metadata", "metadata", K_JSON},
      {"models", "models", K_ARRAY},
      {"spend", "spend", K_SPEND},
      {"model_spend", "model_spend", K_MONEY_MAP},
      {"created_at", "created_at", K_TIME_NN},
      {"created_by", "created_by", K_TEXT},
      {"updated_at", "updated_at", K_TIME_NN},
      {"updated_by", "updated_by", K_TEXT},
      {0}}},
    {"LiteLLM_UserTable",
     "users",
     {"user_id", NULL},
     {{"user_id", "user_id", K_TEXT},
      {"user_alias", "user_alias", K_TEXT},
      {"user_email", "user_email", K_TEXT},
      {"user_role", "user_role", K_TEXT},
      {"sso_user_id", "sso_user_id", K_TEXT},
      {"team_id", "team_id", K_TEXT},
      {"organization_id", "organization_id", K_TEXT},
      {"teams", "teams", K_ARRAY},
      {"models", "models", K_ARRAY},
      {"metadata", "metadata", K_JSON},
      {"spend", "spend", K_SPEND},
      {"max_budget", "max_budget", K_MONEY},
      {"budget_duration", "budget_duration", K_TEXT},
      {"budget_reset_at", "budget_reset_at", K_TIME},
      {"model_max_budget", "model_max_budget", K_JSON},
      {"model_spend", "model_spend", K_MONEY_MAP},
      {"rpm_limit", "rpm_limit", K_INT},
      {"tpm_limit", "tpm_limit", K_INT},
      {"max_parallel_requests", "max_parallel_requests", K_INT},
      {"allowed_cache_controls", "allowed_cache_controls", K_ARRAY},
      {"created_at", "created_at", K_TIME_NN},
      {"updated_at", "updated_at", K_TIME_NN},
      {0}}},
    {"LiteLLM_TeamTable",
     "teams",
     {"team_id", NULL},
     {{"team_id", "team_id", K_TEXT},
      {"team_alias", "team_alias", K_TEXT},
      {"organization_id", "organization_id", K_TEXT},
      {"admins", "admins", K_ARRAY},
      {"members", "members", K_ARRAY},
      {"members_with_roles", "members_with_roles", K_ARRAY},
      {"metadata", "metadata", K_JSON},
      {"models", "models", K_ARRAY},
      {"spend", "spend", K_SPEND},
      {"max_budget", "max_budget", K_MONEY},
      {"soft_budget", "soft_budget", K_MONEY},
      {"budget_duration", "budget_duration", K_TEXT},
      {"budget_reset_at", "budget_reset_at", K_TIME},
      {"model_max_budget", "model_max_budget", K_JSON},
      {"model_spend", "model_spend", K_MONEY_MAP},
      {"model_id", "model_aliases", K_TEAM_ALIASES},
      {"rpm_limit", "rpm_limit", K_INT},
      {"tpm_limit", "tpm_limit", K_INT},
      {"max_parallel_requests", "max_parallel_requests", K_INT},
      {"blocked", "blocked", K_BOOL},
      {"created_at", "created_at", K_TIME_NN},
      {"updated_at", "updated_at", K_TIME_NN},
      {0}}},
    {"LiteLLM_TeamMembership",
     "team_membership",
     {"user_id", "team_id"},
     {{"user_id", "user_id", K_TEXT},
      {"team_id", "team_id", K_TEXT},
      {"spend", "spend", K_SPEND},
      {"budget_id", "budget_id", K_TEXT},
      {0}}},
    {"LiteLLM_EndUserTable",
     "end_users",
     {"user_id", NULL},
     {{"user_id", "user_id", K_TEXT},
      {"alias", "alias", K_TEXT},
      {"spend", "spend", K_SPEND},
      {"allowed_model_region", "allowed_model_region", K_TEXT},
      {"default_model", "default_model", K_TEXT},
      {"budget_id", "budget_id", K_TEXT},
      {"blocked", "blocked", K_BOOL},
      {0}}},
    {"LiteLLM_VerificationToken",
     "keys",
     {"token", NULL},
     {{"token", "token", K_TEXT},
      {"key_name", "key_name", K_TEXT},
      {"key_alias", "key_alias", K_TEXT},
      {"user_id", "user_id", K_TEXT},
      {"team_id", "team_id", K_TEXT},
      {"organization_id", "organization_id", K_TEXT},
      {"budget_id", "budget_id", K_TEXT},
      {"models", "models", K_ARRAY},
      {"aliases", "aliases", K_JSON},
      {"config", "config", K_JSON},
      {"permissions", "permissions", K_JSON},
      {"metadata", "metadata", K_JSON},
      {"spend", "spend", K_SPEND},
      {"max_budget", "max_budget", K_MONEY},
      {"soft_budget_cooldown", "soft_budget_cooldown", K_BOOL},
      {"budget_duration", "budget_duration", K_TEXT},
      {"budget_reset_at", "budget_reset_at", K_TIME},
      {"model_max_budget", "model_max_budget", K_JSON},
      {"model_spend", "model_spend", K_MONEY_MAP},
      {"rpm_limit", "rpm_limit", K_INT},
      {"tpm_limit", "tpm_limit", K_INT},
      {"max_parallel_requests", "max_parallel_requests", K_INT},
      {"allowed_cache_controls", "allowed_cache_controls", K_ARRAY},
      {"allowed_routes", "allowed_routes", K_ARRAY},
      {"expires", "expires", K_TIME},
      {"blocked", "blocked", K_BOOL},
      {"last_active", "last_active", K_TIME},
      {"rotation_count", "rotation_count", K_INT0},
      {"last_rotation_at", "last_rotation_at", K_TIME},
      {"created_at", "created_at", K_TIME_NN},
      {"created_by", "created_by", K_TEXT},
      {"updated_at", "updated_at", K_TIME_NN},
      {"updated_by", "updated_by", K_TEXT},
      {0}}},
};
#define N_TABLES (sizeof(TABLES) / sizeof(TABLES[0]))

/* What one table gave: the converted rows and the counts. */
typedef struct table_run {
    const table_t *t;
    int present;     /* the source has the table */
    json_t *rows;    /* converted rows (objects keyed by Tollgate's columns) */
    json_t *dropped; /* LiteLLM columns Tollgate has no place for (array of names) */
    size_t inserted, updated, unchanged;
} table_run_t;

typedef struct run {
    table_run_t tables[N_TABLES];
    int dry_run;
    int target_empty; /* dry run on a store without Tollgate's schema: every row would be new */
    char now[GW_STORE_TIME_LEN];
} run_t;

static int errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the source: libpq ------------------------------------------------------------------------ */

/* Replaces every occurrence of secret in s (in place) with "***" — libpq's messages should never
 * contain the password, but a message is printed, so make sure. */
static void scrub(char *s, const char *secret)
{
    size_t n = secret != NULL ? strlen(secret) : 0;
    if (n == 0)
        return;
    char *p;
    while ((p = strstr(s, secret)) != NULL) {
        size_t rest = strlen(p + n);
        if (n >= 3) {
            memcpy(p, "***", 3);
            memmove(p + 3, p + n, rest + 1);
        } else {
            memset(p, '*', n);
        }
    }
}

/* The password as written in a URL's user-info ("scheme://user:PASSWORD@host…"), "" when none. */
static void url_password(const char *url, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *p = strstr(url, "://");
    if (p == NULL)
        return;
    p += 3;
    size_t auth = strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < p + auth; q++)
        if (*q == '@')
            at = q;
    const char *colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
    if (colon == NULL || (size_t)(at - colon - 1) >= outlen)
        return;
    memcpy(out, colon + 1, (size_t)(at - colon - 1));
    out[at - colon - 1] = '\0';
}

/* Prisma's URL parameters that libpq does not know (it refuses unknown ones): dropped; `schema`
 * becomes the search_path. */
static const char *const PRISMA_PARAMS[] = {
    "schema",         "connection_limit",     "pool_timeout", "pgbouncer",
    "socket_timeout", "statement_cache_size", "sslaccept",    NULL};

/* Splits Prisma's parameters off url into conn (libpq's URL) and schema ("" when none). */
static int split_url(const char *url, char *conn, size_t connlen, char *schema, size_t schemalen)
{
    schema[0] = '\0';
    const char *q = strchr(url, '?');
    if (strncmp(url, "postgres", 8) != 0 || q == NULL) {
        if (strlen(url) >= connlen)
            return -1;
        memcpy(conn, url, strlen(url) + 1);
        return 0;
    }
    size_t base = (size_t)(q - url);
    if (base >= connlen)
        return -1;
    memcpy(conn, url, base);
    size_t o = base;
    char sep = '?';
    const char *p = q + 1;
    while (*p != '\0') {
        const char *e = strchr(p, '&');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq != NULL ? (size_t)(eq - p) : len;
        int prisma = 0;
        for (size_t i = 0; PRISMA_PARAMS[i] != NULL; i++)
            if (strlen(PRISMA_PARAMS[i]) == nlen && strncmp(p, PRISMA_PARAMS[i], nlen) == 0)
                prisma = 1;
        if (prisma && nlen == 6 && strncmp(p, "schema", 6) == 0 && eq != NULL) {
            size_t vlen = len - nlen - 1;
            if (vlen >= schemalen)
                return -1;
            memcpy(schema, eq + 1, vlen);
            schema[vlen] = '\0';
        } else if (!prisma && len > 0) {
            if (o + len + 2 >= connlen)
                return -1;
            conn[o++] = sep;
            memcpy(conn + o, p, len);
            o += len;
            sep = '&';
        }
        p += len;
        if (*p == '&')
            p++;
    }
    conn[o] = '\0';
    return 0;
}

/* Runs sql (no parameters, no rows wanted); returns 0 or -1 with the message in err. */
static int src_exec(PGconn *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        errf(err, errlen, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

/* The source's columns of table: {name: data_type}, empty when the table does not exist. */
static int src_columns(PGconn *pg, const char *table, json_t **cols, char *err, size_t errlen)
{
    const char *params[1] = {table};
    PGresult *r = PQexecParams(pg,
                               "SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema = current_schema() AND table_name = $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        errf(err, errlen, "reading the columns of %s: %s", table, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    *cols = json_object();
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(*cols, PQgetvalue(r, i, 0), json_string(PQgetvalue(r, i, 1)));
    PQclear(r);
    return 0;
}

/* Appends the quoted identifier s ("…" with " doubled). */
static int put_ident(ad_buf_t *b, const char *s)
{
    int rc = ad_buf_puts(b, "\"");
    for (; *s != '\0' && rc == 0; s++)
        rc = *s == '"' ? ad_buf_puts(b, "\"\"") : ad_buf_append(b, s, 1);
    return rc != 0 ? rc : ad_buf_puts(b, "\"");
}

/* The SELECT expression that reads column c of table t (whose columns are cols) for conversion. */
static int put_expr(ad_buf_t *b, const col_t *c, const json_t *cols, int have_model_table)
{
    const char *type = json_string_value(json_object_get(cols, c->src));
    if (type == NULL)
        return ad_buf_puts(b, "NULL");
    int rc = 0;
    switch (c->kind) {
    case K_TEXT:
    case K_MONEY:
    case K_SPEND:
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, "::text");
        break;
    case K_TIME:
    case K_TIME_NN:
        rc |= ad_buf_puts(b, "(");
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, strcmp(type, "timestamp with time zone") == 0 ? " AT TIME ZONE 'UTC')::text"
                                                                           : ")::text");
        break;
    case K_ARRAY:
        rc |= ad_buf_puts(b, "to_jsonb(");
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, ")");
        break;
    case K_MONEY_MAP:
        /* each amount as the exact decimal text of the jsonb number */
        rc |= ad_buf_puts(b, "(SELECT jsonb_object_agg(e.key, e.value #>> '{}') FROM jsonb_each(CASE WHEN "
                             "jsonb_typeof(to_jsonb(");
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, ")) = 'object' THEN to_jsonb(");
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, ") ELSE '{}'::jsonb END) e WHERE jsonb_typeof(e.value) = 'number')");
        break;
    case K_TEAM_ALIASES:
        if (!have_model_table)
            return ad_buf_puts(b, "NULL");
        rc |= ad_buf_puts(
            b, "(SELECT to_jsonb(m.\"aliases\") FROM \"LiteLLM_ModelTable\" m WHERE m.\"id\" = s.");
        rc |= put_ident(b, c->src);
        rc |= ad_buf_puts(b, ")");
        break;
    default:
        rc |= put_ident(b, c->src);
        break;
    }
    return rc;
}

static int col_used(const table_t *t, const char *name)
{
    for (const col_t *c = t->cols; c->src != NULL; c++)
        if (strcmp(c->src, name) == 0)
            return 1;
    return 0;
}

/* Converts one value of kind k read from the source into Tollgate's (new reference, or NULL with
 * err set). NOT NULL defaults that depend on Tollgate's row are applied later (merge_row). */
static json_t *convert(const col_t *c, json_t *v, char *err, size_t errlen)
{
    int isnull = v == NULL || json_is_null(v);
    switch (c->kind) {
    case K_TEXT:
        return isnull ? json_null() : json_is_string(v) ? json_incref(v) : NULL;
    case K_INT:
    case K_INT0:
        if (isnull)
            return c->kind == K_INT0 ? json_integer(0) : json_null();
        if (json_is_integer(v))
            return json_incref(v);
        errf(err, errlen, "%s: not an integer", c->src);
        return NULL;
    case K_BOOL:
        return isnull ? json_false() : json_is_boolean(v) ? json_incref(v) : NULL;
    case K_MONEY:
    case K_SPEND: {
        if (isnull)
            return c->kind == K_SPEND ? json_integer(0) : json_null();
        int64_t m;
        if (!json_is_string(v) || gw_import_money_micro(json_string_value(v), &m) != 0) {
            errf(err, errlen, "%s: not an amount of dollars", c->src);
            return NULL;
        }
        return json_integer(m);
    }
    case K_ARRAY: {
        json_t *a = gw_import_json_array(v);
        if (a == NULL)
            errf(err, errlen, "%s: not a list", c->src);
        return a;
    }
    case K_JSON:
    case K_TEAM_ALIASES:
        if (isnull)
            return json_object();
        if (json_is_string(v)) { /* a JSON document stored as text (or double-encoded) */
            json_t *j = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
            if (json_is_object(j) || json_is_array(j))
                return j;
            json_decref(j);
        }
        return json_incref(v);
    case K_MONEY_MAP: {
        json_t *out = json_object();
        const char *k;
        json_t *amt;
        json_object_foreach(json_is_object(v) ? v : NULL, k, amt)
        {
            int64_t m;
            if (json_is_string(amt) && gw_import_money_micro(json_string_value(amt), &m) == 0)
                json_object_set_new(out, k, json_integer(m));
        }
        return out;
    }
    case K_TIME:
    case K_TIME_NN: {
        if (isnull)
            return json_null();
        char iso[GW_STORE_TIME_LEN];
        int r = json_is_string(v) ? gw_import_time_text(json_string_value(v), iso) : -1;
        if (r < 0) {
            errf(err, errlen, "%s: not a timestamp", c->src);
            return NULL;
        }
        return r == 1 ? json_null() : json_string(iso);
    }
    }
    return NULL;
}

static int read_table(PGconn *pg, table_run_t *tr, int have_model_table, char *err, size_t errlen)
{
    const table_t *t = tr->t;
    json_t *cols = NULL;
    if (src_columns(pg, t->src, &cols, err, errlen) != 0)
        return -1;
    tr->dropped = json_array();
    tr->rows = json_array();
    if (json_object_size(cols) == 0) {
        json_decref(cols);
        return 0;
    }
    tr->present = 1;
    const char *name;
    json_t *type;
    json_object_foreach(cols, name, type)
    {
        if (!col_used(t, name))
            json_array_append_new(tr->dropped, json_string(name));
    }
    for (size_t i = 0; i < 2 && t->pk[i] != NULL; i++) {
        if (json_object_get(cols, t->pk[i]) == NULL) {
            json_decref(cols);
            return errf(err, errlen, "%s has no column %s", t->src, t->pk[i]);
        }
    }
    ad_buf_t q;
    ad_buf_init(&q, 64 * 1024);
    int rc = ad_buf_puts(&q, "SELECT row_to_json(r)::text FROM (SELECT ");
    for (const col_t *c = t->cols; c->src != NULL; c++) {
        if (c != t->cols)
            rc |= ad_buf_puts(&q, ", ");
        rc |= put_expr(&q, c, cols, have_model_table);
        rc |= ad_buf_puts(&q, " AS ");
        rc |= put_ident(&q, c->dst);
    }
    rc |= ad_buf_puts(&q, " FROM ");
    rc |= put_ident(&q, t->src);
    rc |= ad_buf_puts(&q, " s ORDER BY ");
    for (size_t i = 0; i < 2 && t->pk[i] != NULL; i++) {
        if (i > 0)
            rc |= ad_buf_puts(&q, ", ");
        rc |= put_ident(&q, t->pk[i]);
    }
    rc |= ad_buf_puts(&q, ") r");
    json_decref(cols);
    if (rc != 0) {
        ad_buf_free(&q);
        return errf(err, errlen, "%s: query too long", t->src);
    }
    PGresult *r = PQexec(pg, q.data);
    ad_buf_free(&q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        errf(err, errlen, "reading %s: %s", t->src, PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    if (PQntuples(r) > GW_IMPORT_MAX_ROWS) {
        PQclear(r);
        return errf(err, errlen, "%s: more than %d rows", t->src, GW_IMPORT_MAX_ROWS);
    }
    for (int i = 0; i < PQntuples(r); i++) {
        json_error_t je;
        json_t *src = json_loads(PQgetvalue(r, i, 0), 0, &je);
        json_t *row = json_object();
        if (src == NULL) {
            PQclear(r);
            json_decref(row);
            return errf(err, errlen, "%s row %d: %s", t->src, i + 1, je.text);
        }
        for (const col_t *c = t->cols; c->src != NULL; c++) {
            char cerr[256] = "";
            json_t *v = convert(c, json_object_get(src, c->dst), cerr, sizeof(cerr));
            if (v == NULL) {
                const char *id = json_string_value(json_object_get(src, t->pk[0]));
                errf(err, errlen, "%s row %d (%s %s): %s", t->src, i + 1, t->pk[0],
                     strcmp(t->pk[0], "token") == 0 ? "(hash)"
                     : id != NULL                   ? id
                                                    : "?",
                     cerr[0] ? cerr : "unexpected value");
                json_decref(src);
                json_decref(row);
                PQclear(r);
                return -1;
            }
            json_object_set_new(row, c->dst, v);
        }
        json_decref(src);
        json_array_append_new(tr->rows, row);
    }
    PQclear(r);
    return 0;
}

/* Connects to the LiteLLM database and reads every table in one read-only snapshot. */
static int read_source(const char *from, run_t *run, char *err, size_t errlen)
{
    char conn[4096], schema[256];
    if (from == NULL || from[0] == '\0')
        return errf(err, errlen, "--from needs the LiteLLM database URL (postgresql://…)");
    if (split_url(from, conn, sizeof(conn), schema, sizeof(schema)) != 0)
        return errf(err, errlen, "--from: URL too long");
    char raw_password[512], password[512] = "";
    url_password(conn, raw_password, sizeof(raw_password));
    if (strncmp(conn, "postgresql://", 13) != 0 && strncmp(conn, "postgres://", 11) != 0 &&
        strchr(conn, '=') == NULL)
        return errf(err, errlen,
                    "--from must be a PostgreSQL URL (postgresql://user:password@host:port/database)");
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conn, &perr);
    if (opts == NULL) {
        errf(err, errlen, "--from is not a valid PostgreSQL URL: %s",
             perr != NULL ? perr : "cannot parse it");
        PQfreemem(perr);
        scrub(err, raw_password);
        explicit_bzero(conn, sizeof(conn));
        return -1;
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
            snprintf(password, sizeof(password), "%s", o->val);
    PQconninfoFree(opts);

    int rc = -1;
    PGconn *pg = PQconnectdb(conn);
    if (PQstatus(pg) != CONNECTION_OK) {
        errf(err, errlen, "cannot connect to the LiteLLM database (--from): %s", PQerrorMessage(pg));
        goto out;
    }
    if (src_exec(pg, "SET TimeZone = 'UTC'", err, errlen) != 0 ||
        src_exec(pg, "SET extra_float_digits = 3", err, errlen) != 0)
        goto out;
    if (schema[0] != '\0') {
        char *id = PQescapeIdentifier(pg, schema, strlen(schema));
        char sql[600];
        snprintf(sql, sizeof(sql), "SET search_path TO %s", id != NULL ? id : "\"\"");
        PQfreemem(id);
        if (src_exec(pg, sql, err, errlen) != 0)
            goto out;
    }
    if (src_exec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) != 0)
        goto out;
    json_t *mcols = NULL;
    if (src_columns(pg, "LiteLLM_ModelTable", &mcols, err, errlen) != 0)
        goto out;
    int have_model_table = json_object_get(mcols, "aliases") != NULL && json_object_get(mcols, "id") != NULL;
    json_decref(mcols);
    size_t present = 0;
    for (size_t i = 0; i < N_TABLES; i++) {
        if (read_table(pg, &run->tables[i], have_model_table, err, errlen) != 0)
            goto out;
        present += (size_t)run->tables[i].present;
    }
    if (present == 0) { /* the wrong database or schema: say so rather than import nothing */
        errf(err, errlen,
             "the --from database has none of LiteLLM's tables (LiteLLM_VerificationToken, …) in "
             "schema %s",
             schema[0] != '\0' ? schema : "public (or its search_path)");
        goto out;
    }
    src_exec(pg, "COMMIT", err, errlen);
    err[0] = '\0';
    rc = 0;
out:
    if (rc != 0) {
        scrub(err, password);
        scrub(err, raw_password);
    }
    PQfinish(pg);
    explicit_bzero(password, sizeof(password));
    explicit_bzero(raw_password, sizeof(raw_password));
    explicit_bzero(conn, sizeof(conn));
    return rc;
}

/* ---- the target: one store job ---------------------------------------------------------------- */

static gw_store_param_t param_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return GW_P_TEXT(json_string_value(v));
    case JSON_INTEGER:
        return GW_P_INT(json_integer_value(v));
    case JSON_TRUE:
        return GW_P_BOOL(1);
    case JSON_FALSE:
        return GW_P_BOOL(0);
    case JSON_OBJECT:
    case JSON_ARRAY:
        return GW_P_JSON(v);
    default:
        return GW_P_NULL();
    }
}

/* Fills row's NOT NULL columns that depend on Tollgate's existing row (old; NULL when none). */
static void merge_row(const table_t *t, json_t *row, const json_t *old, const char *now)
{
    for (const col_t *c = t->cols; c->src != NULL; c++) {
        json_t *v = json_object_get(row, c->dst);
        json_t *was = old != NULL ? json_object_get(old, c->dst) : NULL;
        if (c->kind == K_TIME_NN && json_is_null(v))
            json_object_set_new(row, c->dst, json_is_string(was) ? json_incref(was) : json_string(now));
        else if (c->kind == K_SPEND && json_is_integer(was) &&
                 json_integer_value(was) > json_integer_value(v))
            json_object_set(row, c->dst, was);
    }
}

static int import_table(gw_store_conn_t *c, run_t *run, table_run_t *tr)
{
    const table_t *t = tr->t;
    size_t ncols = 0, npk = t->pk[1] != NULL ? 2 : 1;
    for (const col_t *col = t->cols; col->src != NULL; col++)
        ncols++;
    ad_buf_t sel, up;
    ad_buf_init(&sel, 16 * 1024);
    ad_buf_init(&up, 16 * 1024);
    int rc = ad_buf_puts(&sel, "SELECT ");
    for (size_t i = 0; i < ncols; i++)
        rc |= ad_buf_appendf(&sel, "%s%s", i ? ", " : "", t->cols[i].dst);
    rc |= ad_buf_appendf(&sel, " FROM %s WHERE %s = $1", t->dst, t->pk[0]);
    if (npk == 2)
        rc |= ad_buf_appendf(&sel, " AND %s = $2", t->pk[1]);
    rc |= ad_buf_appendf(&up, "INSERT INTO %s (", t->dst);
    for (size_t i = 0; i < ncols; i++)
        rc |= ad_buf_appendf(&up, "%s%s", i ? ", " : "", t->cols[i].dst);
    rc |= ad_buf_puts(&up, ") VALUES (");
    for (size_t i = 0; i < ncols; i++)
        rc |= ad_buf_appendf(&up, "%s$%zu", i ? ", " : "", i + 1);
    rc |= ad_buf_appendf(&up, ") ON CONFLICT (%s%s%s) DO UPDATE SET ", t->pk[0], npk == 2 ? ", " : "",
                         npk == 2 ? t->pk[1] : "");
    int first = 1;
    for (size_t i = 0; i < ncols; i++) {
        const char *d = t->cols[i].dst;
        if (strcmp(d, t->pk[0]) == 0 || (npk == 2 && strcmp(d, t->pk[1]) == 0))
            continue;
        rc |= ad_buf_appendf(&up, "%s%s = excluded.%s", first ? "" : ", ", d, d);
        first = 0;
    }
    if (rc != 0) {
        ad_buf_free(&sel);
        ad_buf_free(&up);
        return gw_store_fail(c, GW_STORE_ERROR, "%s: statement too long", t->dst);
    }
    int st = GW_STORE_OK;
    size_t i;
    json_t *row;
    json_array_foreach(tr->rows, i, row)
    {
        json_t *old = NULL;
        if (!run->target_empty) {
            gw_store_param_t k[2] = {param_of(json_object_get(row, t->pk[0])),
                                     npk == 2 ? param_of(json_object_get(row, t->pk[1])) : GW_P_NULL()};
            json_t *rows = NULL;
            if ((st = gw_store_query_cached(c, sel.data, k, npk, &rows)) != GW_STORE_OK)
                break;
            old = json_incref(json_array_get(rows, 0));
            json_decref(rows);
        }
        merge_row(t, row, old, run->now);
        if (old != NULL && json_equal(old, row)) {
            tr->unchanged++;
        } else {
            old != NULL ? tr->updated++ : tr->inserted++;
            if (!run->dry_run) {
                gw_store_param_t p[MAX_COLS];
                for (size_t j = 0; j < ncols; j++)
                    p[j] = param_of(json_object_get(row, t->cols[j].dst));
                st = gw_store_exec_cached(c, up.data, p, ncols, NULL);
            }
        }
        json_decref(old);
        if (st != GW_STORE_OK)
            break;
    }
    ad_buf_free(&sel);
    ad_buf_free(&up);
    return st;
}

static int import_job(gw_store_conn_t *c, void *ud)
{
    run_t *run = ud;
    size_t written = 0;
    for (size_t i = 0; i < N_TABLES; i++) {
        int st = import_table(c, run, &run->tables[i]);
        if (st != GW_STORE_OK)
            return st;
        written += run->tables[i].inserted + run->tables[i].updated;
    }
    if (!run->dry_run && written > 0)
        return gw_store_note_change(c, "all", "");
    return GW_STORE_OK;
}

static int tx_job(gw_store_conn_t *c, void *ud)
{
    return gw_store_tx(c, import_job, ud);
}

static int probe_job(gw_store_conn_t *c, void *ud)
{
    json_t *rows = NULL;
    int st = gw_store_query(c, "SELECT COUNT(*) AS n FROM schema_migrations", NULL, 0, &rows);
    json_decref(rows);
    *(int *)ud = st == GW_STORE_OK;
    return GW_STORE_OK;
}

/* ---- the command ------------------------------------------------------------------------------ */

static void print_summary(FILE *out, const run_t *run)
{
    for (size_t i = 0; i < N_TABLES; i++) {
        const table_run_t *tr = &run->tables[i];
        if (!tr->present) {
            fprintf(out, "%s: not in the LiteLLM database (older LiteLLM version?), skipped\n", tr->t->src);
            continue;
        }
        fprintf(out, "%s -> %s: read %zu, %s %zu, %s %zu, unchanged %zu\n", tr->t->src, tr->t->dst,
                json_array_size(tr->rows), run->dry_run ? "would insert" : "inserted", tr->inserted,
                run->dry_run ? "would update" : "updated", tr->updated, tr->unchanged);
        if (json_array_size(tr->dropped) > 0) {
            fprintf(out, "  columns Tollgate does not keep:");
            size_t j;
            json_t *n;
            json_array_foreach(tr->dropped, j, n) fprintf(out, "%s %s", j ? "," : "", json_string_value(n));
            fprintf(out, "\n");
        }
    }
    if (run->dry_run)
        fprintf(out, "dry run: nothing was written\n");
}

/* SQLite target of a dry run: is there a database file yet? (Opening would create it.) */
static int sqlite_file_exists(const char *data_dir)
{
    if (data_dir == NULL || data_dir[0] == '\0')
        data_dir = getenv("TOLLGATE_DATA_DIR");
    if (data_dir == NULL || data_dir[0] == '\0')
        data_dir = "./data";
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/tollgate.db", data_dir) >= sizeof(path))
        return 1;
    struct stat sb;
    return stat(path, &sb) == 0;
}

int gw_import_litellm(const gw_import_opts_t *o, char *err, size_t errlen)
{
    run_t run;
    memset(&run, 0, sizeof(run));
    run.dry_run = o->dry_run;
    gw_store_now_iso(run.now);
    for (size_t i = 0; i < N_TABLES; i++)
        run.tables[i].t = &TABLES[i];
    FILE *out = o->out != NULL ? o->out : stdout;
    gw_store_t *s = NULL;
    int rc = -1;

    if (read_source(o->from_url, &run, err, errlen) != 0)
        goto out;

    const char *url = o->cfg != NULL ? o->cfg->database_url : NULL;
    if (url == NULL || url[0] == '\0')
        url = getenv("DATABASE_URL");
    int pg = url != NULL && url[0] != '\0';
    if (o->dry_run && !pg && !sqlite_file_exists(o->data_dir)) {
        run.target_empty = 1;
        fprintf(out, "store: none yet (SQLite)\n");
    } else {
        if ((s = gw_store_open(o->cfg, o->data_dir, err, errlen)) == NULL)
            goto out;
        fprintf(out, "store: %s\n", gw_store_describe(s));
        if (o->dry_run) {
            int migrated = 0;
            if (gw_store_run(s, probe_job, &migrated, err, errlen) != GW_STORE_OK)
                goto out;
            run.target_empty = !migrated;
        } else {
            json_t *applied = NULL;
            if (gw_store_migrate(s, &applied, err, errlen) != GW_STORE_OK) {
                json_decref(applied);
                goto out;
            }
            for (size_t i = 0; i < json_array_size(applied); i++)
                fprintf(out, "applied migration %s\n", json_string_value(json_array_get(applied, i)));
            json_decref(applied);
        }
    }
    if (s != NULL && !run.target_empty) {
        if (gw_store_run(s, o->dry_run ? import_job : tx_job, &run, err, errlen) != GW_STORE_OK)
            goto out;
    } else {
        import_job(NULL, &run); /* every row new; nothing is touched */
    }
    print_summary(out, &run);
    rc = 0;
out:
    gw_store_close(s);
    for (size_t i = 0; i < N_TABLES; i++) {
        json_decref(run.tables[i].rows);
        json_decref(run.tables[i].dropped);
    }
    return rc;
}

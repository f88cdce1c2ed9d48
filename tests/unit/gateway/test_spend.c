/*
 * test_spend.c — the spend journal and writer (gateway/spend.c) and the spend read endpoints'
 * queries (gateway/spend_api.c) against real databases: SQLite in a temp dir, and PostgreSQL in
 * a fresh database per test when TEST_DATABASE_URL is set (make test sets it).
 *
 * Covered: line format round trip; a flipped byte, a wrong length and a torn line are refused;
 * records written through gw_spend_record reach spend_logs, keys, users, teams, end_users,
 * organizations and daily_spend once; a torn last line and a corrupt middle line left by a
 * crash are skipped while every other record is applied; replay after losing the checkpoint
 * (200 records applied twice) stores 200 rows and counts the spend once; the store failing
 * (spend_logs renamed away) makes the writer retry until it is back, losing and doubling
 * nothing; the daily rollup sums by day, key, model and provider with failed requests counted;
 * rotation deletes applied files; a second process cannot open the same instance; the three
 * endpoint queries answer in LiteLLM's shapes.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db_env.h"
#include "gateway/spend.h"
#include "gateway/spend_api.h"
#include "gateway/store.h"

#define TOKEN_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKEN_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DAY1 1717200000000LL /* 2024-06-01T00:00:00Z */
#define DAY2 (DAY1 + 86400000LL)

/* ---- environment ---------------------------------------------------------------------------- */

/* A fresh database and data dir (db_env.h), opened and migrated. */
typedef struct env {
    db_env_t db;
    gw_store_t *store;
} env_t;

static void env_setup(env_t *e, gw_store_kind_t kind)
{
    e->store = NULL;
    db_env_setup(&e->db, kind, "spend", 1);
    char err[512] = "";
    e->store = gw_store_open_url(kind == GW_STORE_POSTGRES ? e->db.url : NULL, e->db.dir, err, sizeof(err));
    cr_assert_not_null(e->store, "open: %s", err);
    cr_assert_eq(gw_store_migrate(e->store, NULL, err, sizeof(err)), GW_STORE_OK, "migrate: %s", err);
}

static void env_teardown(env_t *e)
{
    gw_store_close(e->store);
    db_env_teardown(&e->db);
}

static void exec_sql(env_t *e, const char *sql)
{
    db_sql_t j = {.sql = sql};
    char err[512] = "";
    cr_assert_eq(gw_store_run(e->store, db_run_sql, &j, err, sizeof(err)), GW_STORE_OK, "%s: %s", sql, err);
}

static json_t *query(env_t *e, const char *sql)
{
    db_sql_t j = {.sql = sql, .query = 1};
    char err[512] = "";
    cr_assert_eq(gw_store_run(e->store, db_run_sql, &j, err, sizeof(err)), GW_STORE_OK, "%s: %s", sql, err);
    return j.rows;
}

static int64_t query_int(env_t *e, const char *sql)
{
    json_t *rows = query(e, sql);
    cr_assert_eq(json_array_size(rows), 1, "%s", sql);
    json_t *v = json_object_iter_value(json_object_iter(json_array_get(rows, 0)));
    int64_t out = json_is_integer(v) ? json_integer_value(v) : 0;
    cr_assert(json_is_integer(v) || json_is_null(v), "%s: not an integer", sql);
    json_decref(rows);
    return out;
}

static void seed_owners(env_t *e)
{
    exec_sql(e, "INSERT INTO keys (token, key_alias, user_id, team_id) VALUES ('" TOKEN_A
                "', 'alpha', 'u1', 't1')");
    exec_sql(e, "INSERT INTO keys (token, key_alias, user_id) VALUES ('" TOKEN_B "', 'beta', 'u2')");
    exec_sql(e, "INSERT INTO users (user_id) VALUES ('u1')");
    exec_sql(e, "INSERT INTO users (user_id) VALUES ('u2')");
    exec_sql(e, "INSERT INTO teams (team_id, team_alias) VALUES ('t1', 'Team One')");
    exec_sql(e, "INSERT INTO team_membership (user_id, team_id) VALUES ('u1', 't1')");
    exec_sql(e, "INSERT INTO organizations (organization_id, organization_alias) VALUES ('o1', 'Org')");
}

static gw_spend_t *spend_open(env_t *e)
{
    gw_spend_settings_t set = {.instance_id = "test",
                               .sync_mode = GW_SPEND_SYNC_INTERVAL,
                               .sync_ms = 20,
                               .writer_ms = 20,
                               .batch_max = 64,
                               .retry_min_ms = 20,
                               .retry_max_ms = 100};
    char err[512] = "";
    gw_spend_t *sp = gw_spend_open(e->db.dir, e->store, &set, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    return sp;
}

/* Request i: key A (user u1, team t1, org o1, end user c1) or key B (u2), 1000 + i micro-dollars. */
static gw_spend_rec_t rec_n(int i, char *id, size_t idlen)
{
    snprintf(id, idlen, "req-%04d", i);
    int a = i % 2 == 0;
    gw_spend_rec_t r = {.request_id = id,
                        .call_type = "acompletion",
                        .key_hash = a ? TOKEN_A : TOKEN_B,
                        .key_alias = a ? "alpha" : "beta",
                        .user_id = a ? "u1" : "u2",
                        .team_id = a ? "t1" : NULL,
                        .org_id = a ? "o1" : NULL,
                        .end_user = a ? "c1" : NULL,
                        .model_group = "gpt-4o",
                        .model = "gpt-4o-2024-08-06",
                        .provider = "openai",
                        .prompt_tokens = 10,
                        .completion_tokens = 5,
                        .spend_micros = 1000 + i,
                        .start_ms = DAY1 + i * 1000,
                        .end_ms = DAY1 + i * 1000 + 250,
                        .stream = i % 3 == 0};
    return r;
}

static void record_range(gw_spend_t *sp, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        gw_spend_rec_t r = rec_n(i, id, sizeof(id));
        cr_assert_eq(gw_spend_record(sp, &r), GW_SPEND_OK, "record %d", i);
    }
}

/* Expected totals of requests [0, n). */
static void expect_totals(env_t *e, int n)
{
    int64_t a = 0, b = 0;
    for (int i = 0; i < n; i++)
        (i % 2 == 0 ? &a : &b)[0] += 1000 + i;
    cr_assert_eq(query_int(e, "SELECT count(*) AS n FROM spend_logs"), n);
    cr_assert_eq(query_int(e, "SELECT spend FROM keys WHERE token = '" TOKEN_A "'"), a);
    cr_assert_eq(query_int(e, "SELECT spend FROM keys WHERE token = '" TOKEN_B "'"), b);
    cr_assert_eq(query_int(e, "SELECT spend FROM users WHERE user_id = 'u1'"), a);
    cr_assert_eq(query_int(e, "SELECT spend FROM users WHERE user_id = 'u2'"), b);
    cr_assert_eq(query_int(e, "SELECT spend FROM teams WHERE team_id = 't1'"), a);
    cr_assert_eq(query_int(e, "SELECT spend FROM team_membership WHERE user_id = 'u1'"), a);
    cr_assert_eq(query_int(e, "SELECT spend FROM organizations WHERE organization_id = 'o1'"), a);
    cr_assert_eq(query_int(e, "SELECT spend FROM end_users WHERE user_id = 'c1'"), a);
    cr_assert_eq(query_int(e, "SELECT sum(spend) AS s FROM daily_spend"), a + b);
    cr_assert_eq(query_int(e, "SELECT sum(api_requests) AS s FROM daily_spend"), n);
}

/* ---- format (no database) ------------------------------------------------------------------- */

/* "S<v> <len> <crc> <payload>" for a payload written by hand (format 1 lines, crafted format 2). */
static int frame(char v, const char *payload, char *line, size_t cap)
{
    size_t n = strlen(payload);
    return snprintf(line, cap, "S%c %zu %08x %s", v, n, gw_spend_crc32c(payload, n), payload);
}

static int decode_str(const char *text, gw_spend_rec_t *out, char *scratch, size_t cap)
{
    size_t n = strlen(text);
    cr_assert_lt(n, cap);
    memcpy(scratch, text, n + 1);
    return gw_spend_decode(scratch, n, out);
}

Test(spend_format, round_trip_and_corruption)
{
    char id[32], line[GW_SPEND_MAX_LINE], work[GW_SPEND_MAX_LINE];
    gw_spend_rec_t r = rec_n(7, id, sizeof(id)), d;
    r.key_alias = "quote\" back\\slash\nnewline\ttab \xff bad utf8 \xc3\xa9";
    r.api_base = "http://x/v1";
    r.cache_read_tokens = 3;
    r.cache_creation_tokens = 4;
    r.first_token_ms = DAY1 + 7100;
    int n = gw_spend_format(&r, line, sizeof(line));
    cr_assert_gt(n, 0);
    cr_assert_eq(line[n - 1], '\n');
    cr_assert_null(memchr(line, '\n', (size_t)n - 1), "one line per record");
    cr_assert_eq(strncmp(line, "S2 ", 3), 0, "written in format 2");
    memcpy(work, line, (size_t)n);
    cr_assert_eq(gw_spend_decode(work, (size_t)n - 1, &d), 0, "%.*s", n, line);
    cr_assert_str_eq(d.request_id, "req-0007");
    cr_assert_str_eq(d.key_alias, "quote\" back\\slash newline tab ? bad utf8 \xc3\xa9");
    cr_assert_str_eq(d.key_hash, TOKEN_B);
    cr_assert_str_eq(d.user_id, "u2");
    cr_assert_str_eq(d.team_id, "", "absent strings decode as \"\"");
    cr_assert_str_eq(d.api_base, "http://x/v1");
    cr_assert_str_eq(d.status, "success", "NULL status is written as success");
    cr_assert_eq(d.spend_micros, 1007);
    cr_assert_eq(d.prompt_tokens, 10);
    cr_assert_eq(d.completion_tokens, 5);
    cr_assert_eq(d.cache_read_tokens, 3);
    cr_assert_eq(d.cache_creation_tokens, 4);
    cr_assert_eq(d.start_ms, DAY1 + 7000);
    cr_assert_eq(d.end_ms, DAY1 + 7250);
    cr_assert_eq(d.first_token_ms, DAY1 + 7100);
    cr_assert_eq(d.stream, 0);

    /* every single-byte flip of the payload or header is refused */
    for (int i = 0; i < n - 1; i++) {
        memcpy(work, line, (size_t)n);
        work[i] ^= 0x01;
        cr_assert_neq(gw_spend_decode(work, (size_t)n - 1, &d), 0, "flip at %d accepted", i);
    }
    /* torn: every prefix is refused */
    for (int k = 0; k < n - 1; k++) {
        memcpy(work, line, (size_t)n);
        cr_assert_neq(gw_spend_decode(work, (size_t)k, &d), 0, "prefix %d accepted", k);
    }
    cr_assert_neq(decode_str("S2 2 00000000 {}", &d, work, sizeof(work)), 0);
    cr_assert_neq(decode_str("S3 0 00000000 ", &d, work, sizeof(work)), 0, "unknown version");

    /* a field cut at GW_SPEND_MAX_FIELD bytes; a request id longer than that is refused */
    char longs[GW_SPEND_MAX_FIELD + 50];
    memset(longs, 'm', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    gw_spend_rec_t big = r;
    big.model = longs;
    n = gw_spend_format(&big, line, sizeof(line));
    cr_assert_gt(n, 0);
    cr_assert_eq(gw_spend_decode(line, (size_t)n - 1, &d), 0);
    cr_assert_eq(strlen(d.model), GW_SPEND_MAX_FIELD);
    big.request_id = longs;
    cr_assert_eq(gw_spend_format(&big, line, sizeof(line)), GW_SPEND_EINVAL);

    gw_spend_rec_t bad = r;
    bad.request_id = "";
    cr_assert_eq(gw_spend_format(&bad, line, sizeof(line)), GW_SPEND_EINVAL);
    bad = r;
    bad.spend_micros = -1;
    cr_assert_eq(gw_spend_format(&bad, line, sizeof(line)), GW_SPEND_EINVAL);
    cr_assert_eq(gw_spend_format(&r, line, 40), GW_SPEND_EINVAL, "output too small");
    /* CRC-32C check value */
    cr_assert_eq(gw_spend_crc32c("123456789", 9), 0xE3069283u);
}

/* Crafted format 2 payloads with valid checksums: the decoder checks the structure itself. */
Test(spend_format, v2_structure)
{
    char line[GW_SPEND_MAX_LINE], work[GW_SPEND_MAX_LINE];
    gw_spend_rec_t d;
#define STRS "id-1\tacompletion\t\t\t\t\t\t\tg\tm\topenai\t\t\tsuccess"
    struct {
        const char *payload;
        int ok;
    } cases[] = {
        {STRS "\t1\t2\t3\t4\t5\t6\t7\t0\t1", 1},
        {STRS "\t1\t2\t3\t4\t5\t6\t7\t0\t1\tfuture\t42", 1},        /* appended fields are ignored */
        {STRS "\t1\t2\t3\t4\t5\t6\t7\t0", 0},                       /* a field short */
        {STRS "\t1\t2\t3\t4\t5\t6\t7\t0\t2", 0},                    /* stream is 0 or 1 */
        {STRS "\t1\t2\t3\t4\t-5\t6\t7\t0\t1", 0},                   /* negative */
        {STRS "\t1\t2\t3\t4\t5x\t6\t7\t0\t1", 0},                   /* not a number */
        {STRS "\t1\t2\t3\t4\t\t6\t7\t0\t1", 0},                     /* empty number */
        {STRS "\t1\t2\t3\t4\t99999999999999999999\t6\t7\t0\t1", 0}, /* past the bound */
        {"\tacompletion\t\t\t\t\t\t\tg\tm\topenai\t\t\tsuccess\t1\t2\t3\t4\t5\t6\t7\t0\t1", 0}, /* no id */
        {"", 0},
        {"id-1\tacomp\x01letion\t\t\t\t\t\t\tg\tm\topenai\t\t\tsuccess\t1\t2\t3\t4\t5\t6\t7\t0\t1", 0},
        {"id-1\tacompletion\t\t\t\t\t\t\tg\tm\xff\topenai\t\t\tsuccess\t1\t2\t3\t4\t5\t6\t7\t0\t1", 0},
        {"id-1\tacompletion\t\t\t\t\t\t\tg\tm\topenai\t\t\tsuccess\t1\t2\t3\t4\t5\t6\t7\t0\t1\n",
         0}, /* a newline */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        frame('2', cases[i].payload, line, sizeof(line));
        int rc = decode_str(line, &d, work, sizeof(work));
        cr_assert_eq(rc == 0, cases[i].ok, "case %zu: %s", i, cases[i].payload);
        if (rc == 0) {
            cr_assert_str_eq(d.request_id, "id-1");
            cr_assert_str_eq(d.model, "m");
            cr_assert_eq(d.spend_micros, 5);
            cr_assert_eq(d.end_ms, 7);
            cr_assert_eq(d.stream, 1);
        } else {
            cr_assert_null(d.request_id, "case %zu: *out zeroed on failure", i);
        }
    }
    /* a string field longer than GW_SPEND_MAX_FIELD is refused */
    char payload[GW_SPEND_MAX_LINE];
    char longs[GW_SPEND_MAX_FIELD + 2];
    memset(longs, 'x', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    snprintf(payload, sizeof(payload),
             "id-1\t%s\t\t\t\t\t\t\tg\tm\topenai\t\t\tsuccess\t1\t2\t3\t4\t5\t6\t7\t0\t1", longs);
    frame('2', payload, line, sizeof(line));
    cr_assert_neq(decode_str(line, &d, work, sizeof(work)), 0);
#undef STRS
}

/*
 * Random payloads with valid checksums (the checksum guards against torn and rotted lines, not
 * against a decoder bug): fields of random bytes — tabs, NULs, high bytes —, random counts, and
 * random cuts of a valid line. The decoder must never read out of bounds (ASan) and whatever it
 * accepts must be within its stated bounds.
 */
Test(spend_format, random_payloads)
{
    static const char alphabet[] = "\t\t\t\t0123456789-x\x01\x80\xff{}\":, ";
    char payload[1024], line[GW_SPEND_MAX_LINE], good[GW_SPEND_MAX_LINE], id[32];
    unsigned seed = 12345;
    gw_spend_rec_t r = rec_n(1, id, sizeof(id)), d;
    int gl = gw_spend_format(&r, good, sizeof(good));
    const char *gp = strchr(strchr(good + 3, ' ') + 1, ' ') + 1; /* the good payload */
    size_t gplen = (size_t)(good + gl - 1 - gp);
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n;
        if (it % 2 == 0) { /* random bytes */
            n = (size_t)(rand_r(&seed) % 200);
            for (size_t i = 0; i < n; i++)
                payload[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        } else { /* a valid payload, cut and with one byte replaced */
            n = (size_t)(rand_r(&seed) % (gplen + 1));
            memcpy(payload, gp, n);
            if (n > 0)
                payload[rand_r(&seed) % n] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        }
        char v = it % 7 == 0 ? '1' : '2';
        int h = snprintf(line, sizeof(line), "S%c %zu %08x ", v, n, gw_spend_crc32c(payload, n));
        memcpy(line + h, payload, n);
        size_t len = (size_t)h + n;
        /* exact-size heap copy: ASan sees any read past the line */
        char *heap = malloc(len ? len : 1);
        memcpy(heap, line, len);
        if (gw_spend_decode(heap, len, &d) == 0) {
            accepted++;
            const char *strs[] = {d.request_id, d.call_type, d.key_hash, d.key_alias,   d.user_id,
                                  d.team_id,    d.org_id,    d.end_user, d.model_group, d.model,
                                  d.provider,   d.model_id,  d.api_base, d.status};
            for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]); k++) {
                cr_assert_not_null(strs[k]);
                cr_assert_leq(strlen(strs[k]), GW_SPEND_MAX_FIELD);
                for (const unsigned char *u = (const unsigned char *)strs[k]; v == '2' && *u; u++)
                    cr_assert(*u >= 0x20 && *u != 0x7F && *u != 0x80 && *u != 0xFF, "byte %02x accepted", *u);
            }
            cr_assert_gt(strlen(d.request_id), 0);
            cr_assert(d.spend_micros >= 0 && d.start_ms >= 0 && d.end_ms >= 0 && d.prompt_tokens >= 0);
            cr_assert(d.stream == 0 || d.stream == 1);
        }
        free(heap);
    }
    cr_assert_gt(accepted, 0, "some valid lines survive a replaced byte (e.g. a digit for a digit)");
}

/* Lines written by the previous version (format 1, JSON) still decode. */
Test(spend_format, v1_lines_still_read)
{
    char line[GW_SPEND_MAX_LINE], work[GW_SPEND_MAX_LINE];
    gw_spend_rec_t d;
    frame('1',
          "{\"v\":1,\"id\":\"old-1\",\"call_type\":\"acompletion\",\"api_key\":\"" TOKEN_A
          "\",\"key_alias\":\"q\\\"uote \\u00e9\",\"user_id\":\"u1\",\"team_id\":\"t1\",\"org_id\":\"o1\","
          "\"end_user\":\"c1\",\"model_group\":\"gpt-4o\",\"model\":\"gpt-4o-2024-08-06\",\"provider\":"
          "\"openai\","
          "\"status\":\"failure\",\"pt\":10,\"ct\":5,\"crt\":1,\"cct\":2,\"spend\":1234,\"start\":"
          "1717200000000,"
          "\"end\":1717200000250,\"first\":1717200000100,\"stream\":1}",
          line, sizeof(line));
    cr_assert_eq(decode_str(line, &d, work, sizeof(work)), 0, "%s", line);
    cr_assert_str_eq(d.request_id, "old-1");
    cr_assert_str_eq(d.key_hash, TOKEN_A);
    cr_assert_str_eq(d.key_alias, "q\"uote \xc3\xa9");
    cr_assert_str_eq(d.team_id, "t1");
    cr_assert_str_eq(d.end_user, "c1");
    cr_assert_str_eq(d.model_id, "", "absent in format 1");
    cr_assert_str_eq(d.status, "failure");
    cr_assert_eq(d.spend_micros, 1234);
    cr_assert_eq(d.cache_creation_tokens, 2);
    cr_assert_eq(d.first_token_ms, 1717200000100LL);
    cr_assert_eq(d.stream, 1);
    /* format 1 without the optional fields, and refusals */
    frame(
        '1',
        "{\"v\":1,\"id\":\"old-2\",\"pt\":1,\"ct\":1,\"crt\":0,\"cct\":0,\"spend\":3,\"start\":5,\"end\":6}",
        line, sizeof(line));
    cr_assert_eq(decode_str(line, &d, work, sizeof(work)), 0);
    cr_assert_str_eq(d.request_id, "old-2");
    cr_assert_eq(d.stream, 0);
    const char *bad[] = {
        "{\"v\":1,\"id\":\"x\",\"pt\":1,\"ct\":1,\"crt\":0,\"cct\":0,\"spend\":-3,\"start\":5,\"end\":6}",
        "{\"v\":1,\"id\":\"x\",\"pt\":1,\"ct\":1,\"crt\":0,\"cct\":0,\"start\":5,\"end\":6}",
        "{\"v\":1,\"id\":7,\"pt\":1,\"ct\":1,\"crt\":0,\"cct\":0,\"spend\":3,\"start\":5,\"end\":6}",
        "{\"v\":1,\"id\":\"x\",\"id\":\"y\",\"pt\":1,\"ct\":1,\"crt\":0,\"cct\":0,\"spend\":3,\"start\":5,"
        "\"end\":6}",
        "[1,2,3]",
        "{\"v\":1,\"id\":\"x\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        frame('1', bad[i], line, sizeof(line));
        cr_assert_neq(decode_str(line, &d, work, sizeof(work)), 0, "accepted: %s", bad[i]);
    }
}

/* ---- cases on both backends ----------------------------------------------------------------- */

static void case_round_trip(env_t *e)
{
    seed_owners(e);
    gw_spend_t *sp = spend_open(e);
    record_range(sp, 0, 150);
    char id[32];
    gw_spend_rec_t again = rec_n(3, id, sizeof(id)); /* the same request recorded twice */
    cr_assert_eq(gw_spend_record(sp, &again), GW_SPEND_OK);
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0, "writer did not drain");
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.records_written, 151);
    cr_assert_eq(st.records_inserted, 150);
    cr_assert_eq(st.corrupt_skipped, 0);
    gw_spend_close(sp);
    expect_totals(e, 150);
    json_t *rows =
        query(e, "SELECT request_id, \"startTime\", \"endTime\", total_tokens, \"user\", team_id, end_user, "
                 "model_group, status, metadata, request_duration_ms FROM spend_logs WHERE request_id = "
                 "'req-0002'");
    json_t *r = json_array_get(rows, 0);
    cr_assert_str_eq(json_string_value(json_object_get(r, "startTime")), "2024-06-01T00:00:02.000Z");
    cr_assert_str_eq(json_string_value(json_object_get(r, "endTime")), "2024-06-01T00:00:02.250Z");
    cr_assert_eq(json_integer_value(json_object_get(r, "total_tokens")), 15);
    cr_assert_eq(json_integer_value(json_object_get(r, "request_duration_ms")), 250);
    cr_assert_str_eq(json_string_value(json_object_get(r, "user")), "u1");
    cr_assert_str_eq(json_string_value(json_object_get(r, "end_user")), "c1");
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "success");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "metadata"), "user_api_key_alias")),
                     "alpha");
    json_decref(rows);

    /* after a clean close the next start has nothing to replay */
    sp = spend_open(e);
    cr_assert_eq(gw_spend_wait_drained(sp, 5000), 0);
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.records_applied, 0);
    gw_spend_close(sp);
    expect_totals(e, 150);
}

static void write_file(const char *path, const char *data, size_t len, int append)
{
    int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* A journal left by a killed process: good lines, a corrupt one in the middle, a torn tail. */
static void case_torn_and_corrupt(env_t *e)
{
    seed_owners(e);
    char path[512], line[GW_SPEND_MAX_LINE], id[32];
    snprintf(path, sizeof(path), "%s/spend-test.3.journal", e->db.dir);
    write_file(path, "", 0, 0);
    for (int i = 0; i < 10; i++) {
        gw_spend_rec_t r = rec_n(i, id, sizeof(id));
        int n = gw_spend_format(&r, line, sizeof(line));
        if (i == 4)
            line[n / 2] ^= 0x20; /* bit rot in the middle of the file */
        write_file(path, line, (size_t)n, 1);
    }
    gw_spend_rec_t torn = rec_n(10, id, sizeof(id));
    int n = gw_spend_format(&torn, line, sizeof(line));
    write_file(path, line, (size_t)n / 2, 1); /* kill -9 in the middle of a write */

    gw_spend_t *sp = spend_open(e);
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.corrupt_skipped, 2, "corrupt %llu", (unsigned long long)st.corrupt_skipped);
    cr_assert_eq(st.records_inserted, 9);
    /* new records after the restart go to a new file and are not glued to the torn tail */
    record_range(sp, 11, 20);
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    gw_spend_close(sp);
    cr_assert_eq(query_int(e, "SELECT count(*) AS n FROM spend_logs"), 18);
    cr_assert_eq(
        query_int(e, "SELECT count(*) AS n FROM spend_logs WHERE request_id IN ('req-0004', 'req-0010')"), 0);
    cr_assert_neq(access(path, F_OK), 0, "the applied file was not deleted");
}

/* rec as the previous version wrote it: a format 1 (JSON) journal line, newline included. */
static int v1_line(const gw_spend_rec_t *r, char *line, size_t cap)
{
    char payload[2048];
    size_t n = (size_t)snprintf(payload, sizeof(payload), "{\"v\":1,\"id\":\"%s\"", r->request_id);
    const char *names[] = {"call_type", "api_key",  "key_alias",   "user_id", "team_id",
                           "org_id",    "end_user", "model_group", "model",   "provider"};
    const char *vals[] = {r->call_type, r->key_hash, r->key_alias,   r->user_id, r->team_id,
                          r->org_id,    r->end_user, r->model_group, r->model,   r->provider};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if (vals[i] != NULL && *vals[i])
            n += (size_t)snprintf(payload + n, sizeof(payload) - n, ",\"%s\":\"%s\"", names[i], vals[i]);
    n += (size_t)snprintf(
        payload + n, sizeof(payload) - n,
        ",\"status\":\"success\",\"pt\":%lld,\"ct\":%lld,\"crt\":0,\"cct\":0,\"spend\":%lld,"
        "\"start\":%lld,\"end\":%lld,\"stream\":%d}",
        (long long)r->prompt_tokens, (long long)r->completion_tokens, (long long)r->spend_micros,
        (long long)r->start_ms, (long long)r->end_ms, r->stream ? 1 : 0);
    int k = frame('1', payload, line, cap - 1);
    line[k] = '\n';
    return k + 1;
}

/* An upgrade: a journal left by the previous version (format 1 lines) is replayed, then new lines. */
static void case_v1_journal_replayed(env_t *e)
{
    seed_owners(e);
    char path[512], line[GW_SPEND_MAX_LINE], id[32];
    snprintf(path, sizeof(path), "%s/spend-test.1.journal", e->db.dir);
    write_file(path, "", 0, 0);
    for (int i = 0; i < 30; i++) {
        gw_spend_rec_t r = rec_n(i, id, sizeof(id));
        int n = v1_line(&r, line, sizeof(line));
        write_file(path, line, (size_t)n, 1);
    }
    gw_spend_t *sp = spend_open(e);
    record_range(sp, 20, 60); /* 20..29 again (already journaled by the old version): stored once */
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.corrupt_skipped, 0);
    cr_assert_eq(st.records_inserted, 60);
    gw_spend_close(sp);
    expect_totals(e, 60);
    cr_assert_eq(
        query_int(e, "SELECT count(*) AS n FROM spend_logs WHERE team_id = 't1' AND end_user = 'c1'"), 30);
}

static void case_replay_idempotent(env_t *e)
{
    seed_owners(e);
    gw_spend_t *sp = spend_open(e);
    record_range(sp, 0, 200);
    cr_assert_eq(gw_spend_wait_drained(sp, 30000), 0);
    gw_spend_close(sp);
    expect_totals(e, 200);

    /* a crash after the commit, before the checkpoint: the checkpoint is lost */
    char ck[512];
    snprintf(ck, sizeof(ck), "%s/spend-test.checkpoint", e->db.dir);
    cr_assert_eq(unlink(ck), 0);
    sp = spend_open(e);
    cr_assert_eq(gw_spend_wait_drained(sp, 30000), 0);
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.records_applied, 200, "applied %llu", (unsigned long long)st.records_applied);
    cr_assert_eq(st.records_inserted, 0);
    gw_spend_close(sp);
    expect_totals(e, 200);
}

/* The store fails (the table is gone) while records arrive; when it is back, all of them land once. */
static void case_store_down_then_up(env_t *e)
{
    seed_owners(e);
    gw_spend_t *sp = spend_open(e);
    record_range(sp, 0, 20);
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    exec_sql(e, "ALTER TABLE spend_logs RENAME TO spend_logs_away");
    record_range(sp, 20, 120);
    cr_assert_neq(gw_spend_wait_drained(sp, 600), 0, "drained while the table was away");
    gw_spend_stats_t st;
    gw_spend_stats(sp, &st);
    cr_assert_gt(st.batches_failed, 0);
    cr_assert_eq(st.store_ok, 0);
    cr_assert_gt(st.backlog_bytes, 0);
    exec_sql(e, "ALTER TABLE spend_logs_away RENAME TO spend_logs");
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0, "did not recover");
    gw_spend_stats(sp, &st);
    cr_assert_eq(st.store_ok, 1);
    cr_assert_eq(st.records_inserted, 120);
    gw_spend_close(sp);
    expect_totals(e, 120);
}

/* Records left in the journal by a close that could not drain are stored by the next start. */
static void case_close_undrained_then_restart(env_t *e)
{
    seed_owners(e);
    gw_spend_settings_t set = {.instance_id = "test",
                               .sync_mode = GW_SPEND_SYNC_ALWAYS,
                               .writer_ms = 20,
                               .retry_min_ms = 20,
                               .retry_max_ms = 50,
                               .close_drain_ms = 200};
    char err[512] = "";
    exec_sql(e, "ALTER TABLE spend_logs RENAME TO spend_logs_away");
    gw_spend_t *sp = gw_spend_open(e->db.dir, e->store, &set, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    record_range(sp, 0, 30);
    gw_spend_close(sp); /* gives up after 200 ms */
    exec_sql(e, "ALTER TABLE spend_logs_away RENAME TO spend_logs");
    cr_assert_eq(query_int(e, "SELECT count(*) AS n FROM spend_logs"), 0);
    sp = spend_open(e);
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    gw_spend_close(sp);
    expect_totals(e, 30);
}

static void case_rollup(env_t *e)
{
    seed_owners(e);
    gw_spend_t *sp = spend_open(e);
    struct {
        const char *id, *key, *model, *status;
        int64_t start, pt, ct, spend;
    } rs[] = {
        {"d1", TOKEN_A, "m1", "success", DAY1 + 10, 10, 1, 100},
        {"d2", TOKEN_A, "m1", "success", DAY1 + 20, 20, 2, 200},
        {"d3", TOKEN_A, "m2", "failure", DAY1 + 30, 5, 0, 0},
        {"d4", TOKEN_A, "m1", "success", DAY2 + 10, 1, 1, 7},
        {"d5", TOKEN_B, "m1", "success", DAY1 + 40, 3, 3, 30},
    };
    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        gw_spend_rec_t r = {.request_id = rs[i].id,
                            .key_hash = rs[i].key,
                            .model = rs[i].model,
                            .provider = "openai",
                            .status = rs[i].status,
                            .prompt_tokens = rs[i].pt,
                            .completion_tokens = rs[i].ct,
                            .spend_micros = rs[i].spend,
                            .start_ms = rs[i].start,
                            .end_ms = rs[i].start + 5,
                            .user_id = "u1",
                            .model_group = "grp"};
        cr_assert_eq(gw_spend_record(sp, &r), GW_SPEND_OK);
    }
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    gw_spend_close(sp);
    cr_assert_eq(query_int(e, "SELECT count(*) AS n FROM daily_spend"), 4);
    json_t *rows =
        query(e, "SELECT date, spend, prompt_tokens, completion_tokens, api_requests, successful_requests, "
                 "failed_requests, model_group, user_id FROM daily_spend WHERE api_key = '" TOKEN_A
                 "' AND model = 'm1' ORDER BY date");
    cr_assert_eq(json_array_size(rows), 2);
    json_t *d1 = json_array_get(rows, 0), *d2 = json_array_get(rows, 1);
    cr_assert_str_eq(json_string_value(json_object_get(d1, "date")), "2024-06-01");
    cr_assert_eq(json_integer_value(json_object_get(d1, "spend")), 300);
    cr_assert_eq(json_integer_value(json_object_get(d1, "prompt_tokens")), 30);
    cr_assert_eq(json_integer_value(json_object_get(d1, "completion_tokens")), 3);
    cr_assert_eq(json_integer_value(json_object_get(d1, "api_requests")), 2);
    cr_assert_eq(json_integer_value(json_object_get(d1, "successful_requests")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(d1, "model_group")), "grp");
    cr_assert_str_eq(json_string_value(json_object_get(d2, "date")), "2024-06-02");
    cr_assert_eq(json_integer_value(json_object_get(d2, "spend")), 7);
    json_decref(rows);
    cr_assert_eq(query_int(e, "SELECT failed_requests FROM daily_spend WHERE model = 'm2'"), 1);
    cr_assert_eq(query_int(e, "SELECT successful_requests FROM daily_spend WHERE model = 'm2'"), 0);

    /* the endpoints over the same data */
    gw_spend_query_t q;
    char err[256] = "", serr[512] = "";
    const char *qs = "start_date=2024-06-01&end_date=2024-06-02";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_DAILY, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    json_t *res = json_object_get(q.result, "results"), *meta = json_object_get(q.result, "metadata");
    cr_assert_eq(json_array_size(res), 2);
    json_t *day1 = json_array_get(res, 0);
    cr_assert_str_eq(json_string_value(json_object_get(day1, "date")), "2024-06-01");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(day1, "metrics"), "api_requests")), 4);
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(day1, "metrics"), "spend")), 330e-6,
                       1e-12);
    json_t *ak = json_object_get(json_object_get(json_object_get(day1, "breakdown"), "api_keys"), TOKEN_A);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ak, "metadata"), "key_alias")),
                     "alpha");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ak, "metrics"), "failed_requests")), 1);
    cr_assert_not_null(json_object_get(json_object_get(json_object_get(day1, "breakdown"), "models"), "m2"));
    cr_assert_float_eq(json_real_value(json_object_get(meta, "total_spend")), 337e-6, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(meta, "total_api_requests")), 5);
    cr_assert_eq(json_integer_value(json_object_get(meta, "total_pages")), 1);
    cr_assert(json_is_false(json_object_get(meta, "has_more")));
    json_decref(q.result);

    qs = "request_id=d2";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_LOGS, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 1);
    json_t *row = json_array_get(q.result, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "request_id")), "d2");
    cr_assert_str_eq(json_string_value(json_object_get(row, "api_key")), TOKEN_A);
    cr_assert_float_eq(json_real_value(json_object_get(row, "spend")), 200e-6, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(row, "total_tokens")), 22);
    cr_assert_not_null(json_object_get(row, "startTime"));
    json_decref(q.result);

    qs = "start_date=2024-06-01&end_date=2024-06-01";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_LOGS, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 1, "one day");
    row = json_array_get(q.result, 0);
    cr_assert_str_eq(json_string_value(json_object_get(row, "startTime")), "2024-06-01");
    cr_assert_float_eq(json_real_value(json_object_get(row, "spend")), 330e-6, 1e-12);
    cr_assert_float_eq(json_real_value(json_object_get(json_object_get(row, "models"), "m1")), 330e-6, 1e-12);
    json_decref(q.result);

    qs = "start_date=2024-06-01&end_date=2024-06-02&group_by=team";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_REPORT, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(q.result, 0), "group_by_day")),
                     "2024-06-01");
    cr_assert(json_is_array(json_object_get(json_array_get(q.result, 0), "teams")));
    json_decref(q.result);

    qs = "start_date=2024-06-01&end_date=2024-06-02&group_by=api_key";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_REPORT, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 2);
    json_t *k0 = json_array_get(q.result, 0);
    cr_assert_str_eq(json_string_value(json_object_get(k0, "api_key")), TOKEN_A);
    cr_assert_float_eq(json_real_value(json_object_get(k0, "total_cost")), 307e-6, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(k0, "total_input_tokens")), 36);
    cr_assert_eq(json_array_size(json_object_get(k0, "model_details")), 2);
    json_decref(q.result);

    /* the UI's last-30-days views, from the rollups: seen from 2024-06-20, then from September */
    int64_t june20 = 0, sept = 0;
    cr_assert_eq(gw_store_time_parse("2024-06-20T12:00:00.000Z", &june20), 0);
    cr_assert_eq(gw_store_time_parse("2024-09-01T00:00:00.000Z", &sept), 0);
    qs = "limit=1";
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_KEYS, qs, strlen(qs), &q, err, sizeof(err)), 0, "%s", err);
    q.now_ms = june20;
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 1, "limit=1");
    k0 = json_array_get(q.result, 0);
    cr_assert_str_eq(json_string_value(json_object_get(k0, "api_key")), TOKEN_A);
    cr_assert_str_eq(json_string_value(json_object_get(k0, "key_alias")), "alpha");
    cr_assert_float_eq(json_real_value(json_object_get(k0, "total_spend")), 307e-6, 1e-12);
    json_decref(q.result);
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_MODELS, "", 0, &q, err, sizeof(err)), 0, "%s", err);
    q.now_ms = june20;
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_eq(json_array_size(q.result), 2, "m1 and m2");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(q.result, 0), "model")), "m1");
    double models_total = 0;
    size_t mi;
    json_t *mrow;
    json_array_foreach(q.result, mi, mrow) models_total +=
        json_real_value(json_object_get(mrow, "total_spend"));
    cr_assert_float_eq(models_total, 337e-6, 1e-12);
    json_decref(q.result);
    cr_assert_eq(gw_spend_api_parse(GW_SPEND_API_GLOBAL, "", 0, &q, err, sizeof(err)), 0, "%s", err);
    q.now_ms = june20;
    q.global_max_budget = 12.5;
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_float_eq(json_real_value(json_object_get(q.result, "spend")), 337e-6, 1e-12);
    cr_assert_float_eq(json_real_value(json_object_get(q.result, "max_budget")), 12.5, 1e-12);
    json_decref(q.result);
    q.now_ms = sept; /* June is more than 30 days back */
    q.result = NULL;
    cr_assert_eq(gw_store_run(e->store, gw_spend_api_job, &q, serr, sizeof(serr)), GW_STORE_OK, "%s", serr);
    cr_assert_float_eq(json_real_value(json_object_get(q.result, "spend")), 0, 1e-12);
    json_decref(q.result);
    qs = "limit=0";
    cr_assert_neq(gw_spend_api_parse(GW_SPEND_API_KEYS, qs, strlen(qs), &q, err, sizeof(err)), 0);

    qs = "group_by=team";
    cr_assert_neq(gw_spend_api_parse(GW_SPEND_API_REPORT, qs, strlen(qs), &q, err, sizeof(err)), 0);
    qs = "start_date=2024-13-45&end_date=2024-06-02";
    cr_assert_neq(gw_spend_api_parse(GW_SPEND_API_DAILY, qs, strlen(qs), &q, err, sizeof(err)), 0);
}

static void case_rotation_and_lock(env_t *e)
{
    seed_owners(e);
    gw_spend_settings_t set = {.instance_id = "test",
                               .sync_mode = GW_SPEND_SYNC_NONE,
                               .writer_ms = 10,
                               .rotate_bytes = 2000,
                               .batch_max = 7};
    char err[512] = "";
    gw_spend_t *sp = gw_spend_open(e->db.dir, e->store, &set, err, sizeof(err));
    cr_assert_not_null(sp, "%s", err);
    cr_assert_null(gw_spend_open(e->db.dir, e->store, &set, err, sizeof(err)), "a second opener got in");
    cr_assert(strstr(err, "in use") != NULL, "%s", err);
    for (int round = 0; round < 10; round++) {
        record_range(sp, round * 10, round * 10 + 10);
        usleep(15000);
    }
    cr_assert_eq(gw_spend_wait_drained(sp, 20000), 0);
    /* rotation happened and applied files are gone: at most the current and one older remain */
    int files = 0;
    char path[512];
    for (int s = 0; s < 200; s++) {
        snprintf(path, sizeof(path), "%s/spend-test.%d.journal", e->db.dir, s);
        files += access(path, F_OK) == 0;
    }
    cr_assert_leq(files, 2, "%d journal files left", files);
    gw_spend_close(sp);
    expect_totals(e, 100);
}

#define ON_BOTH(name)                                                                                        \
    Test(spend_sqlite, name, .timeout = 120)                                                                 \
    {                                                                                                        \
        env_t e;                                                                                             \
        env_setup(&e, GW_STORE_SQLITE);                                                                      \
        case_##name(&e);                                                                                     \
        env_teardown(&e);                                                                                    \
    }                                                                                                        \
    Test(spend_postgres, name, .timeout = 120)                                                               \
    {                                                                                                        \
        env_t e;                                                                                             \
        env_setup(&e, GW_STORE_POSTGRES);                                                                    \
        case_##name(&e);                                                                                     \
        env_teardown(&e);                                                                                    \
    }

ON_BOTH(round_trip)
ON_BOTH(torn_and_corrupt)
ON_BOTH(replay_idempotent)
ON_BOTH(store_down_then_up)
ON_BOTH(close_undrained_then_restart)
ON_BOTH(rollup)
ON_BOTH(rotation_and_lock)
ON_BOTH(v1_journal_replayed)

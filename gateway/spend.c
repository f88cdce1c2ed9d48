/*
 * spend.c — the spend journal (append, checksum, rotation, checkpoint), its sync thread, and the
 * writer thread that applies journal records to the store idempotently. The contracts are in
 * spend.h; this file explains the why of the details.
 *
 * Locks. `mu` guards the current journal file (fd, seq, size): gw_spend_record holds it around
 * one write(2), so concurrent workers never interleave lines and cur_size is always at a line
 * boundary — the writer reads the live file only up to cur_size, hence never sees half a line.
 * `sync_mu` serialises fdatasync with rotation, so a record that was written to the previous
 * file is synced before anyone believes it synced. `req_mu` guards the sync requests of the
 * workers' batches (spend_batch.c) and the sync thread's answers to them. `prog_mu` guards the checkpoint
 * position the writer publishes (for gw_spend_wait_drained) and the writer's wake-up flag.
 *
 * Idempotency lives in the database: spend_logs.request_id is the primary key; the counters
 * move only for rows the INSERT … ON CONFLICT DO NOTHING reported as new (SQLite: the row's
 * change count; PostgreSQL: RETURNING), in the same transaction. The checkpoint is only an
 * optimisation of where to resume; replaying from any earlier point is harmless.
 *
 * Cost. The writer's path is built to be cheap per record: a journal line is decoded in place
 * (format 2, below: split on tabs, no JSON, no allocation), a batch's request ids are
 * deduplicated in an open-addressing set, its sums live in one hash table, and every statement
 * is a prepared statement kept by the store (gw_store_exec_cached). tests/bench/spend_bench.c
 * measures it; the README has the figures.
 */
#include "gateway/spend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF (1u << 20)    /* bytes the writer reads per step: the ceiling of one batch */
#define LOUD_EVERY_MS 10000    /* loud logs repeat at most this often */
#define MAX_TOKENS (1LL << 40) /* sanity bounds of a parsed record */
#define MAX_MICROS (1LL << 50)
#define PG_SHAPES_MAX 7 /* see PG_SHAPES */
#define PG_CHUNK_MAX 64 /* see PG_CHUNK */

struct gw_spend {
    gw_store_t *store;
    gw_spend_settings_t set;
    char dir[512];
    char inst[GW_SPEND_MAX_INSTANCE + 1];
    int lock_fd;

    pthread_mutex_t mu; /* the current file */
    int fd;
    uint64_t cur_seq;
    uint64_t cur_size;
    uint64_t appended_total; /* bytes appended by this process over all files */
    int closed;

    pthread_mutex_t sync_mu;
    uint64_t synced_total;    /* bytes of appended_total known durable (atomic reads) */
    uint64_t sync_failed_thr; /* largest target of a failed fdatasync (atomic reads) */

    /* sync requests (journal_sync always): workers ask, the sync thread answers through fn */
    pthread_mutex_t req_mu;
    pthread_cond_t req_cond;
    int req_pending;
    int req_stop;
    struct sync_sub {
        gw_spend_notify_fn fn; /* NULL: free slot */
        void *ud;
        uint64_t want; /* 0: nothing asked */
    } subs[GW_SPEND_MAX_SUBSCRIBERS];

    pthread_mutex_t prog_mu;
    pthread_cond_t prog_cond; /* writer progress, for wait_drained */
    pthread_cond_t wake_cond; /* wakes the writer */
    int wake;
    int stop;                /* threads exit (writer: after the drain deadline) */
    uint64_t stop_deadline;  /* monotonic ms */
    uint64_t ck_seq, ck_off; /* the checkpoint */

    pthread_t writer, syncer;
    int writer_started, syncer_started;

    /* writer-only (the store thread uses them while the writer waits in gw_store_run) */
    int rd_fd;
    uint64_t rd_seq;
    char *buf;            /* READ_BUF bytes of journal; decoded records point into it */
    gw_spend_rec_t *recs; /* batch_max decoded records */
    unsigned char *fresh; /* batch_max flags: inserted by this batch */
    uint32_t *ids;        /* open-addressing set of the batch's request ids (index + 1) */
    size_t id_mask;
    char *ins_sql[PG_SHAPES_MAX]; /* spend_logs INSERT texts by shape (store thread) */
    char *meta;                   /* metadata JSON buffers, PG_CHUNK_MAX rows (store thread) */
    uint64_t last_loud_ms;

    /* stats (atomics) */
    uint64_t st_written, st_write_errors, st_sync_errors, st_applied, st_inserted, st_corrupt, st_failed,
        st_backlog;
    int st_over, st_store_ok;
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void loud(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void loud(const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "tollgate: spend: %s\n", msg);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Absolute CLOCK_MONOTONIC deadline ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000u);
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t gw_spend_crc32c(const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = buf;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ---- record format -------------------------------------------------------------------------- */

/*
 * Line format 2 (written since this version):
 *     S2 <payload length, decimal> <CRC-32C of payload, 8 hex> <payload>\n
 * The payload is GW_SPEND_FIELDS fields separated by tabs, in the order of field_order below:
 * the strings first (cut to GW_SPEND_MAX_FIELD bytes, control characters as spaces, invalid UTF-8
 * as '?', so no field can hold a tab or a newline and nothing needs escaping), then the numbers
 * in decimal. Fields are only ever appended: a reader takes the ones it knows and ignores any
 * after them. Reading one is a split on tabs and a few bounded number parses, no allocation —
 * the JSON of format 1 made the writer spend more time in jansson and malloc than in SQLite.
 *
 * Line format 1 (older versions) is still read: "S1 <len> <crc> <JSON object>\n", decoded with
 * jansson. A journal written by an older version is therefore replayed by this one unchanged.
 */
enum {
    F_ID,
    F_CALL_TYPE,
    F_KEY,
    F_KEY_ALIAS,
    F_USER,
    F_TEAM,
    F_ORG,
    F_END_USER,
    F_MODEL_GROUP,
    F_MODEL,
    F_PROVIDER,
    F_MODEL_ID,
    F_API_BASE,
    F_STATUS,
    N_STRS, /* the strings end here; the numbers follow */
    F_PT = N_STRS,
    F_CT,
    F_CRT,
    F_CCT,
    F_SPEND,
    F_START,
    F_END,
    F_FIRST,
    F_STREAM,
    N_FIELDS,
};

/* The string fields of a record, by F_ index. */
static const char **str_slot(gw_spend_rec_t *r, int f)
{
    switch (f) {
    case F_ID:
        return &r->request_id;
    case F_CALL_TYPE:
        return &r->call_type;
    case F_KEY:
        return &r->key_hash;
    case F_KEY_ALIAS:
        return &r->key_alias;
    case F_USER:
        return &r->user_id;
    case F_TEAM:
        return &r->team_id;
    case F_ORG:
        return &r->org_id;
    case F_END_USER:
        return &r->end_user;
    case F_MODEL_GROUP:
        return &r->model_group;
    case F_MODEL:
        return &r->model;
    case F_PROVIDER:
        return &r->provider;
    case F_MODEL_ID:
        return &r->model_id;
    case F_API_BASE:
        return &r->api_base;
    default:
        return &r->status;
    }
}

/* The numeric fields, by F_ index (F_STREAM is handled apart: it is an int). */
static int64_t *num_slot(gw_spend_rec_t *r, int f)
{
    switch (f) {
    case F_PT:
        return &r->prompt_tokens;
    case F_CT:
        return &r->completion_tokens;
    case F_CRT:
        return &r->cache_read_tokens;
    case F_CCT:
        return &r->cache_creation_tokens;
    case F_SPEND:
        return &r->spend_micros;
    case F_START:
        return &r->start_ms;
    case F_END:
        return &r->end_ms;
    default:
        return &r->first_token_ms;
    }
}

typedef struct out {
    char *p;
    size_t len, cap;
    int overflow;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Length of the valid UTF-8 sequence at s (max n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4, cp = c & 0x07;
    else
        return 0;
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/*
 * s cut to GW_SPEND_MAX_FIELD bytes, control characters (tab and newline among them) as spaces
 * and invalid UTF-8 as '?': the result holds no separator and is valid UTF-8 for the database.
 */
static void put_field(out_t *o, const char *s)
{
    if (s == NULL)
        return;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strnlen(s, GW_SPEND_MAX_FIELD);
    for (size_t i = 0; i < n;) {
        size_t run = i; /* copy plain printable ASCII in one go */
        while (run < n && u[run] >= 0x20 && u[run] < 0x7F)
            run++;
        if (run > i) {
            put(o, s + i, run - i);
            i = run;
            continue;
        }
        unsigned c = u[i];
        if (c < 0x20 || c == 0x7F) {
            put(o, " ", 1);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            put(o, k == 0 ? "?" : s + i, k == 0 ? 1 : k);
            i += k == 0 ? 1 : k;
        }
    }
}

/* Decimal of v (>= 0) after a tab. */
static void put_num(out_t *o, int64_t v)
{
    char num[24];
    size_t k = sizeof(num);
    uint64_t u = (uint64_t)v;
    do {
        num[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    num[--k] = '\t';
    put(o, num + k, sizeof(num) - k);
}

static void put_hex32(char *out, uint32_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 7; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 0xF];
}

int gw_spend_format(const gw_spend_rec_t *r, char *line, size_t linelen)
{
    if (r == NULL || r->request_id == NULL || *r->request_id == '\0' ||
        strlen(r->request_id) > GW_SPEND_MAX_FIELD || r->prompt_tokens < 0 || r->completion_tokens < 0 ||
        r->cache_read_tokens < 0 || r->cache_creation_tokens < 0 || r->spend_micros < 0 ||
        r->prompt_tokens > MAX_TOKENS || r->completion_tokens > MAX_TOKENS ||
        r->cache_read_tokens > MAX_TOKENS || r->cache_creation_tokens > MAX_TOKENS ||
        r->spend_micros > MAX_MICROS || r->start_ms < 0 || r->end_ms < 0 || r->first_token_ms < 0 ||
        r->start_ms > MAX_MICROS || r->end_ms > MAX_MICROS || r->first_token_ms > MAX_MICROS || linelen < 32)
        return GW_SPEND_EINVAL;
    /* the header ("S2 " + length + " " + crc + " ") is at most 3 + 4 + 1 + 8 + 1 bytes: leave 24 */
    enum { HDR = 24 };
    size_t cap = linelen < GW_SPEND_MAX_LINE ? linelen : GW_SPEND_MAX_LINE;
    out_t o = {line + HDR, 0, cap - HDR - 1, 0}; /* room for the newline */
    gw_spend_rec_t tmp = *r;
    if (tmp.status == NULL || *tmp.status == '\0')
        tmp.status = "success";
    for (int f = 0; f < N_STRS; f++) {
        if (f > 0)
            put(&o, "\t", 1);
        put_field(&o, *str_slot(&tmp, f));
    }
    for (int f = N_STRS; f < F_STREAM; f++)
        put_num(&o, *num_slot(&tmp, f));
    put_num(&o, r->stream ? 1 : 0);
    if (o.overflow)
        return GW_SPEND_EINVAL;
    char hdr[HDR];
    int h = snprintf(hdr, sizeof(hdr), "S2 %zu ", o.len);
    if (h < 0 || (size_t)h + 9 > HDR)
        return GW_SPEND_EINVAL;
    put_hex32(hdr + h, gw_spend_crc32c(o.p, o.len));
    hdr[h + 8] = ' ';
    size_t hl = (size_t)h + 9;
    memmove(line + hl, o.p, o.len);
    memcpy(line, hdr, hl);
    line[hl + o.len] = '\n';
    return (int)(hl + o.len + 1);
}

/* Parses a bounded decimal or hex number of exactly the bytes [s, e). */
static int parse_num(const char *s, const char *e, int base, uint64_t max, uint64_t *out)
{
    if (s == e || e - s > 20)
        return -1;
    uint64_t v = 0;
    for (const char *p = s; p < e; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else
            return -1;
        if ((uint64_t)d > max || v > (max - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

/*
 * 1 when [p, e) is what put_field writes: valid UTF-8 without control characters. A line that
 * passes its checksum but not this was not written by us (or by a buggy writer); refusing it
 * keeps text the database would reject (PostgreSQL refuses invalid UTF-8) out of a batch, where
 * it would fail the batch again at every retry.
 */
static int clean_text(const char *p, const char *e)
{
    const unsigned char *u = (const unsigned char *)p, *end = (const unsigned char *)e;
    while (u < end) {
        if (*u >= 0x20 && *u < 0x7F) {
            u++;
            continue;
        }
        size_t k = *u < 0x80 ? 0 : utf8_len(u, (size_t)(end - u));
        if (k == 0)
            return 0;
        u += k;
    }
    return 1;
}

/* Format 2: splits the payload [p, end) on tabs in place. */
static int decode_v2(char *p, char *end, gw_spend_rec_t *out)
{
    for (int f = 0; f < N_FIELDS; f++) {
        char *tab = memchr(p, '\t', (size_t)(end - p));
        char *e = tab != NULL ? tab : end;
        if (tab == NULL && f < N_FIELDS - 1)
            return -1; /* too few fields */
        if (f < N_STRS) {
            if (e - p > GW_SPEND_MAX_FIELD || !clean_text(p, e))
                return -1;
            *e = '\0';
            *str_slot(out, f) = p;
        } else {
            uint64_t v;
            if (parse_num(p, e, 10, f == F_STREAM ? 1 : (uint64_t)MAX_MICROS, &v) != 0)
                return -1;
            if (f == F_STREAM)
                out->stream = (int)v;
            else
                *num_slot(out, f) = (int64_t)v;
        }
        p = e + 1;
    }
    return 0; /* fields appended by a later version, if any, are ignored */
}

/*
 * Format 1: the JSON object, parsed with jansson; its strings are copied back into the payload
 * bytes (each is at least two bytes shorter there than its JSON form, quotes included, so they
 * fit) so that out points into the line as it does for format 2.
 */
static int decode_v1(char *p, size_t plen, gw_spend_rec_t *out)
{
    static const char *const names[N_FIELDS] = {[F_ID] = "id",
                                                [F_CALL_TYPE] = "call_type",
                                                [F_KEY] = "api_key",
                                                [F_KEY_ALIAS] = "key_alias",
                                                [F_USER] = "user_id",
                                                [F_TEAM] = "team_id",
                                                [F_ORG] = "org_id",
                                                [F_END_USER] = "end_user",
                                                [F_MODEL_GROUP] = "model_group",
                                                [F_MODEL] = "model",
                                                [F_PROVIDER] = "provider",
                                                [F_MODEL_ID] = "model_id",
                                                [F_API_BASE] = "api_base",
                                                [F_STATUS] = "status",
                                                [F_PT] = "pt",
                                                [F_CT] = "ct",
                                                [F_CRT] = "crt",
                                                [F_CCT] = "cct",
                                                [F_SPEND] = "spend",
                                                [F_START] = "start",
                                                [F_END] = "end",
                                                [F_FIRST] = "first",
                                                [F_STREAM] = "stream"};
    json_t *j = json_loadb(p, plen, JSON_REJECT_DUPLICATES, NULL);
    int rc = -1;
    if (j == NULL || !json_is_object(j) || !json_is_string(json_object_get(j, "id")))
        goto out;
    for (int f = N_STRS; f < N_FIELDS; f++) {
        json_t *v = json_object_get(j, names[f]);
        if (v == NULL && (f == F_FIRST || f == F_STREAM))
            continue; /* optional in format 1 */
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_MICROS)
            goto out;
        if (f == F_STREAM)
            out->stream = json_integer_value(v) != 0;
        else
            *num_slot(out, f) = json_integer_value(v);
    }
    size_t w = 0;
    for (int f = 0; f < N_STRS; f++) {
        json_t *v = json_object_get(j, names[f]);
        const char *s = json_string_value(v);
        size_t n = s != NULL ? json_string_length(v) : 0;
        if (n > GW_SPEND_MAX_FIELD || (s != NULL && memchr(s, '\0', n) != NULL) || w + n + 1 > plen)
            goto out;
        if (n > 0)
            memcpy(p + w, s, n);
        p[w + n] = '\0';
        *str_slot(out, f) = p + w;
        w += n + 1;
    }
    rc = *out->request_id != '\0' ? 0 : -1;
out:
    json_decref(j);
    return rc;
}

int gw_spend_decode(char *line, size_t len, gw_spend_rec_t *out)
{
    char *end = line + len;
    memset(out, 0, sizeof(*out));
    if (len < 6 || line[0] != 'S' || (line[1] != '1' && line[1] != '2') || line[2] != ' ')
        return -1;
    char *p = line + 3, *sp = memchr(p, ' ', (size_t)(end - p));
    uint64_t plen, crc;
    if (sp == NULL || parse_num(p, sp, 10, GW_SPEND_MAX_LINE, &plen) != 0)
        return -1;
    p = sp + 1;
    if (end - p < 9 || p[8] != ' ' || parse_num(p, p + 8, 16, UINT32_MAX, &crc) != 0)
        return -1;
    p += 9;
    if ((uint64_t)(end - p) != plen || gw_spend_crc32c(p, plen) != (uint32_t)crc)
        return -1;
    int rc = line[1] == '2' ? decode_v2(p, end, out) : decode_v1(p, plen, out);
    if (rc == 0 && *out->request_id == '\0')
        rc = -1;
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- files ---------------------------------------------------------------------------------- */

static int journal_path(const gw_spend_t *sp, uint64_t seq, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/spend-%s.%" PRIu64 ".journal", sp->dir, sp->inst, seq);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int side_path(const gw_spend_t *sp, const char *suffix, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s/spend-%s.%s", sp->dir, sp->inst, suffix);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* fsyncs the directory so a rename or a new file survives a machine crash. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "TGCK1 <seq> <off> <crc>\n", written to a temp file, fsynced, renamed over the old one. */
static int checkpoint_write(gw_spend_t *sp, uint64_t seq, uint64_t off)
{
    char path[600], tmp[640], body[64], line[96];
    if (side_path(sp, "checkpoint", path, sizeof(path)) != 0)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int bn = snprintf(body, sizeof(body), "%" PRIu64 " %" PRIu64, seq, off);
    int n = snprintf(line, sizeof(line), "TGCK1 %s %08" PRIx32 "\n", body, gw_spend_crc32c(body, (size_t)bn));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, line, (size_t)n);
    if (rc == 0 && sp->set.sync_mode != GW_SPEND_SYNC_NONE)
        rc = fdatasync(fd);
    close(fd);
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0 && sp->set.sync_mode != GW_SPEND_SYNC_NONE)
        sync_dir(sp->dir);
    return rc;
}

/* Returns 1 with the checkpoint, 0 when there is none, -1 when it is unreadable or corrupt. */
static int checkpoint_read(gw_spend_t *sp, uint64_t *seq, uint64_t *off)
{
    char path[600], line[128];
    if (side_path(sp, "checkpoint", path, sizeof(path)) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    line[n] = '\0';
    char *nl = strchr(line, '\n');
    if (nl == NULL || strncmp(line, "TGCK1 ", 6) != 0)
        return -1;
    *nl = '\0';
    char *body = line + 6, *crc = strrchr(body, ' ');
    if (crc == NULL)
        return -1;
    *crc++ = '\0';
    uint64_t want;
    if (parse_num(crc, crc + strlen(crc), 16, UINT32_MAX, &want) != 0 ||
        gw_spend_crc32c(body, strlen(body)) != (uint32_t)want)
        return -1;
    char *sp2 = strchr(body, ' ');
    if (sp2 == NULL || parse_num(body, sp2, 10, UINT64_MAX, seq) != 0 ||
        parse_num(sp2 + 1, sp2 + 1 + strlen(sp2 + 1), 10, UINT64_MAX, off) != 0)
        return -1;
    return 1;
}

/* The lowest and highest seq of this instance's journal files; 0 when there are none. */
static int scan_journals(gw_spend_t *sp, uint64_t *lo, uint64_t *hi)
{
    char prefix[GW_SPEND_MAX_INSTANCE + 16];
    snprintf(prefix, sizeof(prefix), "spend-%s.", sp->inst);
    size_t pl = strlen(prefix);
    DIR *d = opendir(sp->dir);
    if (d == NULL)
        return -1;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        const char *suf = ".journal";
        if (n <= pl + 8 || strncmp(e->d_name, prefix, pl) != 0 || strcmp(e->d_name + n - 8, suf) != 0)
            continue;
        uint64_t seq;
        if (parse_num(e->d_name + pl, e->d_name + n - 8, 10, UINT64_MAX / 2, &seq) != 0)
            continue;
        if (!found || seq < *lo)
            *lo = seq;
        if (!found || seq > *hi)
            *hi = seq;
        found = 1;
    }
    closedir(d);
    return found;
}

static int file_size(const char *path, uint64_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Opens journal seq as the current file (mu held or not yet shared). */
static int open_current(gw_spend_t *sp, uint64_t seq, int *fd_out)
{
    char path[600];
    if (journal_path(sp, seq, path, sizeof(path)) != 0)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (sp->set.sync_mode != GW_SPEND_SYNC_NONE)
        sync_dir(sp->dir);
    *fd_out = fd;
    return 0;
}

/*
 * Starts journal seq+1: the swap happens under mu (microseconds); the old file is synced under
 * sync_mu so that a thread in "always" mode that wrote to it finds it synced.
 */
static int rotate(gw_spend_t *sp)
{
    int nfd;
    pthread_mutex_lock(&sp->mu);
    uint64_t next = sp->cur_seq + 1;
    pthread_mutex_unlock(&sp->mu);
    if (open_current(sp, next, &nfd) != 0) {
        loud("cannot start journal file %" PRIu64 ": %s", next, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&sp->sync_mu);
    pthread_mutex_lock(&sp->mu);
    int old = sp->fd;
    sp->fd = nfd;
    sp->cur_seq = next;
    sp->cur_size = 0;
    uint64_t total = sp->appended_total;
    pthread_mutex_unlock(&sp->mu);
    if (sp->set.sync_mode != GW_SPEND_SYNC_NONE)
        (void)fdatasync(old);
    close(old);
    if (__atomic_load_n(&sp->synced_total, __ATOMIC_SEQ_CST) < total)
        __atomic_store_n(&sp->synced_total, total, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&sp->sync_mu);
    return 0;
}

/* ---- append --------------------------------------------------------------------------------- */

/* fdatasyncs the current file when fewer than want bytes are known synced; 0 ok, -1 failed. */
static int sync_upto(gw_spend_t *sp, uint64_t want)
{
    int rc = 0;
    pthread_mutex_lock(&sp->sync_mu);
    if (__atomic_load_n(&sp->synced_total, __ATOMIC_SEQ_CST) < want) {
        pthread_mutex_lock(&sp->mu);
        int fd = sp->fd;
        uint64_t target = sp->appended_total;
        pthread_mutex_unlock(&sp->mu);
        if (fd >= 0 && fdatasync(fd) == 0) {
            __atomic_store_n(&sp->synced_total, target, __ATOMIC_SEQ_CST);
        } else {
            /* after a failed fdatasync the kernel may have dropped the dirty pages: a later
             * success proves nothing about these bytes, so they stay failed */
            int e = errno;
            if (__atomic_load_n(&sp->sync_failed_thr, __ATOMIC_SEQ_CST) < target)
                __atomic_store_n(&sp->sync_failed_thr, target, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&sp->st_sync_errors, 1, __ATOMIC_RELAXED);
            loud("journal fdatasync failed: %s", strerror(e));
            rc = -1;
        }
    }
    pthread_mutex_unlock(&sp->sync_mu);
    return rc;
}

/* One write(2) of whole lines under mu; the caller formatted them. */
static int append_locked(gw_spend_t *sp, const char *lines, size_t len, size_t nrec, uint64_t *end)
{
    pthread_mutex_lock(&sp->mu);
    if (sp->closed) {
        pthread_mutex_unlock(&sp->mu);
        return GW_SPEND_CLOSED;
    }
    if (write_all(sp->fd, lines, len) != 0) {
        int e = errno;
        /* never leave half a line: the next record would be glued to it */
        if (ftruncate(sp->fd, (off_t)sp->cur_size) != 0)
            loud("journal write failed (%s) and the partial line could not be cut: %s", strerror(e),
                 strerror(errno));
        pthread_mutex_unlock(&sp->mu);
        __atomic_add_fetch(&sp->st_write_errors, nrec, __ATOMIC_RELAXED);
        errno = e;
        return GW_SPEND_EIO;
    }
    sp->cur_size += (uint64_t)len;
    sp->appended_total += (uint64_t)len;
    if (end != NULL)
        *end = sp->appended_total;
    pthread_mutex_unlock(&sp->mu);
    __atomic_add_fetch(&sp->st_written, nrec, __ATOMIC_RELAXED);
    return GW_SPEND_OK;
}

int gw_spend_record(gw_spend_t *sp, const gw_spend_rec_t *rec)
{
    char line[GW_SPEND_MAX_LINE];
    int n = gw_spend_format(rec, line, sizeof(line));
    if (n < 0)
        return GW_SPEND_EINVAL;
    uint64_t mine = 0;
    int r = append_locked(sp, line, (size_t)n, 1, &mine);
    if (r == GW_SPEND_EIO)
        loud("journal write failed, spend of request %s is not recorded: %s", rec->request_id,
             strerror(errno));
    if (r == GW_SPEND_OK && sp->set.sync_mode == GW_SPEND_SYNC_ALWAYS)
        sync_upto(sp, mine);
    return r;
}

int gw_spend_append(gw_spend_t *sp, const char *lines, size_t len, size_t nrec, uint64_t *end)
{
    if (len == 0 || lines[len - 1] != '\n')
        return GW_SPEND_EINVAL;
    int r = append_locked(sp, lines, len, nrec, end);
    if (r == GW_SPEND_EIO)
        loud("journal write failed, spend of %zu request(s) is not recorded: %s", nrec, strerror(errno));
    return r;
}

int gw_spend_subscribe(gw_spend_t *sp, gw_spend_notify_fn fn, void *ud)
{
    int slot = -1;
    pthread_mutex_lock(&sp->req_mu);
    for (int i = 0; i < GW_SPEND_MAX_SUBSCRIBERS && slot < 0; i++) {
        if (sp->subs[i].fn == NULL) {
            sp->subs[i] = (struct sync_sub){.fn = fn, .ud = ud, .want = 0};
            slot = i;
        }
    }
    pthread_mutex_unlock(&sp->req_mu);
    return slot;
}

void gw_spend_unsubscribe(gw_spend_t *sp, int slot)
{
    if (slot < 0 || slot >= GW_SPEND_MAX_SUBSCRIBERS)
        return;
    pthread_mutex_lock(&sp->req_mu); /* the sync thread calls fn under req_mu: none is running after */
    sp->subs[slot] = (struct sync_sub){0};
    pthread_mutex_unlock(&sp->req_mu);
}

void gw_spend_request_sync(gw_spend_t *sp, int slot, uint64_t upto)
{
    if (slot < 0 || slot >= GW_SPEND_MAX_SUBSCRIBERS || upto == 0)
        return;
    pthread_mutex_lock(&sp->req_mu);
    if (sp->subs[slot].want < upto)
        sp->subs[slot].want = upto;
    sp->req_pending = 1;
    pthread_cond_signal(&sp->req_cond);
    pthread_mutex_unlock(&sp->req_mu);
}

gw_spend_sync_mode_t gw_spend_sync_mode(const gw_spend_t *sp)
{
    return sp->set.sync_mode;
}

void gw_spend_sync_state(gw_spend_t *sp, uint64_t *synced, uint64_t *failed_through)
{
    *failed_through = __atomic_load_n(&sp->sync_failed_thr, __ATOMIC_SEQ_CST);
    *synced = __atomic_load_n(&sp->synced_total, __ATOMIC_SEQ_CST);
}

/* ---- sync thread ---------------------------------------------------------------------------- */

/* Tells every subscriber whose request the last sync answered (durable, or failed). */
static void notify_subscribers(gw_spend_t *sp)
{
    uint64_t synced, failed;
    gw_spend_sync_state(sp, &synced, &failed);
    for (int i = 0; i < GW_SPEND_MAX_SUBSCRIBERS; i++) {
        struct sync_sub *s = &sp->subs[i];
        if (s->fn != NULL && s->want != 0 && (s->want <= synced || s->want <= failed)) {
            s->want = 0;
            s->fn(s->ud);
        }
    }
}

/*
 * Interval mode: fdatasync every sync_ms. Always mode: fdatasync as soon as a worker asks (group
 * commit: one sync covers every byte written before it, whoever asked), then answer the askers.
 * Both modes answer requests, so gw_spend_request_sync works in either.
 */
static void *sync_main(void *arg)
{
    gw_spend_t *sp = arg;
    int always = sp->set.sync_mode == GW_SPEND_SYNC_ALWAYS;
    pthread_mutex_lock(&sp->req_mu);
    for (;;) {
        if (!sp->req_pending && !sp->req_stop) {
            struct timespec ts = deadline_in(always ? 1000 : sp->set.sync_ms);
            pthread_cond_timedwait(&sp->req_cond, &sp->req_mu, &ts);
        }
        int stopping = sp->req_stop;
        sp->req_pending = 0;
        pthread_mutex_unlock(&sp->req_mu);
        pthread_mutex_lock(&sp->mu);
        uint64_t total = sp->appended_total;
        pthread_mutex_unlock(&sp->mu);
        (void)sync_upto(sp, total);
        pthread_mutex_lock(&sp->req_mu);
        notify_subscribers(sp);
        if (stopping)
            break;
    }
    pthread_mutex_unlock(&sp->req_mu);
    return NULL;
}

/* ---- applying a batch (runs on the store thread) ------------------------------------------- */

/*
 * The batch is an array of decoded records (strings pointing into the writer's read buffer, ids
 * unique). Per batch: the spend_logs rows are inserted (SQLite: one cached single-row INSERT per
 * record, ON CONFLICT DO NOTHING, "new" read from the change count; PostgreSQL: cached multi-row
 * INSERTs of 64, 32, …, 1 rows with RETURNING request_id, one round trip per chunk); the new
 * records' spend is summed per key, user, team, organization, membership, end user and day in
 * one hash table; then ONE cached UPDATE or upsert runs per distinct target, in a fixed order
 * (kind, then id) so that two instances updating the same rows take their locks in the same
 * order. Nothing here goes through jansson except the rows PostgreSQL returns.
 */

#define LOG_COLS 24
#define PG_CHUNK 64    /* spend_logs rows per INSERT on PostgreSQL (a power of two) */
#define PG_SHAPES 7    /* chunk sizes 1, 2, 4, …, 64 */
#define META_MAX 10240 /* one row's metadata JSON: 6 strings of 256 bytes, escaped */
_Static_assert(PG_SHAPES == PG_SHAPES_MAX && PG_CHUNK == PG_CHUNK_MAX && PG_CHUNK == 1 << (PG_SHAPES - 1),
               "spend_logs insert shapes");

enum { K_KEY, K_USER, K_TEAM, K_ORG, K_MEMBER, K_END_USER, K_DAY, N_KINDS };

/* One sum: a key, user, … (k[0], plus k[1] = team for a membership) or a day rollup. */
typedef struct agg {
    int kind;
    const char *k[4];            /* K_DAY: date (points at .date), api_key, model, provider */
    char date[11];               /* "YYYY-MM-DD" */
    const gw_spend_rec_t *first; /* K_DAY: the first record (model_group, user, team, org) */
    int64_t v[8];                /* K_DAY: pt, ct, crt, cct, spend, requests, ok, failed; else v[0] */
    uint64_t hash;
} agg_t;

typedef struct batch {
    gw_spend_t *sp;
    gw_spend_rec_t *recs; /* unique request ids */
    size_t n;
    unsigned char *fresh; /* out, per record: inserted now */
    size_t inserted;      /* out */
    int64_t clamped;      /* out: sums that would have overflowed (clamped, logged) */
} batch_t;

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (h ^ 0xFFu) * 1099511628211ull; /* a separator, so ("ab","c") != ("a","bc") */
}

static const char *or_null(const char *s)
{
    return s != NULL && *s ? s : NULL;
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* *dst += v, checked: a sum that would overflow is clamped (and counted). */
static void add_to(int64_t *dst, int64_t v, batch_t *b)
{
    if (__builtin_add_overflow(*dst, v, dst)) {
        *dst = INT64_MAX;
        b->clamped++;
    }
}

/* ---- the spend_logs rows ---- */

/* s as a JSON string (s is at most GW_SPEND_MAX_FIELD bytes of UTF-8), or null. */
static void json_str(out_t *o, const char *s)
{
    if (s == NULL) {
        put(o, "null", 4);
        return;
    }
    put(o, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(o, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(o, esc, 6);
        } else {
            put(o, p, 1);
        }
    }
    put(o, "\"", 1);
}

/* LiteLLM's metadata of a spend log (the fields Tollgate knows), as JSON text into buf. */
static const char *metadata(const gw_spend_rec_t *r, char *buf)
{
    out_t o = {buf, 0, META_MAX - 1, 0};
    static const char *const names[] = {
        "{\"user_api_key_alias\":", ",\"user_api_key_user_id\":", ",\"user_api_key_team_id\":",
        ",\"user_api_key_org_id\":", ",\"user_api_key_end_user_id\":"};
    const char *vals[] = {r->key_alias, r->user_id, r->team_id, r->org_id, r->end_user};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        put(&o, names[i], strlen(names[i]));
        json_str(&o, or_null(vals[i]));
    }
    put(&o, ",\"user_api_key\":", 16);
    json_str(&o, or_empty(r->key_hash));
    put(&o, r->stream ? ",\"stream\":true}" : ",\"stream\":false}", r->stream ? 15 : 16);
    if (o.overflow)
        return "{}"; /* cannot happen with fields capped at GW_SPEND_MAX_FIELD */
    buf[o.len] = '\0';
    return buf;
}

/* The 24 parameters of r's spend_logs row; times and meta are r's buffers. */
static void log_params(const gw_spend_rec_t *r, gw_store_param_t *q, char (*times)[GW_STORE_TIME_LEN],
                       char *meta)
{
    int64_t dur = r->end_ms >= r->start_ms ? r->end_ms - r->start_ms : 0;
    gw_store_time_iso(r->start_ms, times[0]);
    gw_store_time_iso(r->end_ms, times[1]);
    gw_store_time_iso(r->first_token_ms, times[2]);
    q[0] = GW_P_TEXT(r->request_id);
    q[1] = GW_P_TEXT(or_empty(r->call_type));
    q[2] = GW_P_TEXT(or_empty(r->key_hash));
    q[3] = GW_P_INT(r->spend_micros);
    q[4] = GW_P_INT(r->prompt_tokens + r->completion_tokens);
    q[5] = GW_P_INT(r->prompt_tokens);
    q[6] = GW_P_INT(r->completion_tokens);
    q[7] = GW_P_INT(r->cache_read_tokens);
    q[8] = GW_P_INT(r->cache_creation_tokens);
    q[9] = GW_P_TEXT(times[0]);
    q[10] = GW_P_TEXT(times[1]);
    q[11] = r->first_token_ms > 0 ? GW_P_TEXT(times[2]) : GW_P_NULL();
    q[12] = GW_P_INT(dur > INT32_MAX ? INT32_MAX : dur);
    q[13] = GW_P_TEXT(or_empty(r->model));
    q[14] = GW_P_TEXT(or_empty(r->model_id));
    q[15] = GW_P_TEXT(or_empty(r->model_group));
    q[16] = GW_P_TEXT(or_empty(r->provider));
    q[17] = GW_P_TEXT(or_empty(r->api_base));
    q[18] = GW_P_TEXT(or_empty(r->user_id));
    q[19] = GW_P_TEXT(or_null(r->team_id));
    q[20] = GW_P_TEXT(or_null(r->org_id));
    q[21] = GW_P_TEXT(or_null(r->end_user));
    q[22] = GW_P_TEXT(or_empty(r->status));
    q[23] = GW_P_TEXT(metadata(r, meta));
}

/* INSERT of `rows` spend_logs rows; RETURNING request_id when returning. NULL when out of memory. */
static char *insert_sql(gw_store_kind_t kind, size_t rows, int returning)
{
    static const char head[] =
        "INSERT INTO spend_logs (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, "
        "completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, \"startTime\", "
        "\"endTime\", "
        "\"completionStartTime\", request_duration_ms, model, model_id, model_group, custom_llm_provider, "
        "api_base, \"user\", team_id, organization_id, end_user, status, metadata) VALUES ";
    /* per row: 20 "$NNNN," (6) + 4 "CAST($NNNN AS TIMESTAMPTZ)," (28) + "(),": < LOG_COLS * 12 */
    size_t cap = sizeof(head) + 100 + rows * (LOG_COLS * 12 + 16), len = sizeof(head) - 1;
    char *sql = malloc(cap);
    if (sql == NULL)
        return NULL;
    memcpy(sql, head, len);
    for (size_t i = 0; i < rows; i++) {
        len += (size_t)snprintf(sql + len, cap - len, "%s(", i ? "," : "");
        for (size_t k = 0; k < LOG_COLS; k++) {
            size_t idx = i * LOG_COLS + k + 1;
            if (k == 11 || k == 19 || k == 20 || k == 21)
                len += (size_t)snprintf(sql + len, cap - len, "%sCAST($%zu AS %s)", k ? "," : "", idx,
                                        k == 11 && kind == GW_STORE_POSTGRES ? "TIMESTAMPTZ" : "TEXT");
            else
                len += (size_t)snprintf(sql + len, cap - len, "%s$%zu", k ? "," : "", idx);
        }
        len += (size_t)snprintf(sql + len, cap - len, ")");
    }
    snprintf(sql + len, cap - len, " ON CONFLICT (request_id) DO NOTHING%s",
             returning ? " RETURNING request_id" : "");
    return sql;
}

/* SQLite: one cached single-row INSERT per record; the change count says whether it was new. */
static int insert_logs_each(gw_store_conn_t *c, batch_t *b)
{
    gw_spend_t *sp = b->sp;
    if (sp->ins_sql[0] == NULL && (sp->ins_sql[0] = insert_sql(GW_STORE_SQLITE, 1, 0)) == NULL)
        return gw_store_fail(c, GW_STORE_ERROR, "out of memory");
    gw_store_param_t q[LOG_COLS];
    char times[3][GW_STORE_TIME_LEN];
    for (size_t i = 0; i < b->n; i++) {
        int64_t changes = 0;
        log_params(&b->recs[i], q, times, sp->meta);
        int st = gw_store_exec_cached(c, sp->ins_sql[0], q, LOG_COLS, &changes);
        if (st != GW_STORE_OK)
            return st;
        b->fresh[i] = changes > 0;
    }
    return GW_STORE_OK;
}

/* PostgreSQL: cached multi-row INSERTs … RETURNING request_id, 64 rows and then powers of two. */
static int insert_logs_chunked(gw_store_conn_t *c, batch_t *b)
{
    gw_spend_t *sp = b->sp;
    gw_store_param_t *q = malloc(PG_CHUNK * LOG_COLS * sizeof(*q));
    char(*times)[3][GW_STORE_TIME_LEN] = malloc(PG_CHUNK * sizeof(*times));
    int st = GW_STORE_OK;
    if (q == NULL || times == NULL) {
        st = gw_store_fail(c, GW_STORE_ERROR, "out of memory");
        goto out;
    }
    for (size_t from = 0; from < b->n && st == GW_STORE_OK;) {
        size_t left = b->n - from, rows = PG_CHUNK;
        int shape = PG_SHAPES - 1;
        while (rows > left)
            rows >>= 1, shape--;
        if (sp->ins_sql[shape] == NULL &&
            (sp->ins_sql[shape] = insert_sql(GW_STORE_POSTGRES, rows, 1)) == NULL) {
            st = gw_store_fail(c, GW_STORE_ERROR, "out of memory");
            break;
        }
        for (size_t i = 0; i < rows; i++)
            log_params(&b->recs[from + i], q + i * LOG_COLS, times[i], sp->meta + i * META_MAX);
        json_t *ret = NULL;
        st = gw_store_query_cached(c, sp->ins_sql[shape], q, rows * LOG_COLS, &ret);
        size_t k;
        json_t *row;
        json_array_foreach(ret, k, row)
        {
            const char *id = json_string_value(json_object_get(row, "request_id"));
            for (size_t i = 0; id != NULL && i < rows; i++) /* rows <= 64: a scan is fine */
                if (strcmp(b->recs[from + i].request_id, id) == 0)
                    b->fresh[from + i] = 1;
        }
        json_decref(ret);
        from += rows;
    }
out:
    free(q);
    free(times);
    return st;
}

/* ---- the sums ---- */

typedef struct aggtab {
    agg_t *e;
    size_t n, max;
    uint32_t *slot; /* index + 1 into e; 0 = empty */
    size_t mask;
} aggtab_t;

/* The entry of (kind, k0..k3), added (zeroed) when missing. The table never fills: see sizes. */
static agg_t *agg_get(aggtab_t *t, int kind, const char *k0, const char *k1, const char *k2, const char *k3)
{
    const char *k[4] = {k0, k1, k2, k3};
    uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
    for (int i = 0; i < 4 && k[i] != NULL; i++)
        h = hash_str(h, k[i]);
    for (size_t s = (size_t)h & t->mask;; s = (s + 1) & t->mask) {
        if (t->slot[s] == 0) {
            agg_t *e = &t->e[t->n++];
            memset(e, 0, sizeof(*e));
            e->kind = kind;
            e->hash = h;
            for (int i = 0; i < 4; i++)
                e->k[i] = k[i];
            if (kind == K_DAY) {
                snprintf(e->date, sizeof(e->date), "%s", k0);
                e->k[0] = e->date;
            }
            t->slot[s] = (uint32_t)t->n;
            return e;
        }
        agg_t *e = &t->e[t->slot[s] - 1];
        if (e->hash != h || e->kind != kind)
            continue;
        int same = 1;
        for (int i = 0; i < 4 && same; i++)
            same = (e->k[i] == NULL) == (k[i] == NULL) && (k[i] == NULL || strcmp(e->k[i], k[i]) == 0);
        if (same)
            return e;
    }
}

/* Sums the new records per key, user, team, organization, membership, end user and day. */
static void aggregate(batch_t *b, aggtab_t *t)
{
    for (size_t i = 0; i < b->n; i++) {
        if (!b->fresh[i])
            continue;
        const gw_spend_rec_t *r = &b->recs[i];
        b->inserted++;
        int64_t spend = r->spend_micros;
        const char *key = or_empty(r->key_hash), *user = or_empty(r->user_id), *team = or_empty(r->team_id);
        if (*key)
            add_to(&agg_get(t, K_KEY, key, NULL, NULL, NULL)->v[0], spend, b);
        if (*user)
            add_to(&agg_get(t, K_USER, user, NULL, NULL, NULL)->v[0], spend, b);
        if (*team)
            add_to(&agg_get(t, K_TEAM, team, NULL, NULL, NULL)->v[0], spend, b);
        if (or_null(r->org_id))
            add_to(&agg_get(t, K_ORG, r->org_id, NULL, NULL, NULL)->v[0], spend, b);
        if (*user && *team)
            add_to(&agg_get(t, K_MEMBER, user, team, NULL, NULL)->v[0], spend, b);
        if (or_null(r->end_user))
            add_to(&agg_get(t, K_END_USER, r->end_user, NULL, NULL, NULL)->v[0], spend, b);
        char iso[GW_STORE_TIME_LEN];
        gw_store_time_iso(r->start_ms, iso);
        iso[10] = '\0';
        agg_t *d = agg_get(t, K_DAY, iso, key, or_empty(r->model), or_empty(r->provider));
        if (d->first == NULL)
            d->first = r;
        int ok = strcmp(or_empty(r->status), "failure") != 0;
        int64_t add[8] = {r->prompt_tokens,
                          r->completion_tokens,
                          r->cache_read_tokens,
                          r->cache_creation_tokens,
                          spend,
                          1,
                          ok,
                          !ok};
        for (int k = 0; k < 8; k++)
            add_to(&d->v[k], add[k], b);
    }
}

static int cmp_agg(const void *x, const void *y)
{
    const agg_t *a = *(const agg_t *const *)x, *b = *(const agg_t *const *)y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    for (int i = 0; i < 4; i++) {
        if (a->k[i] == NULL || b->k[i] == NULL)
            return (a->k[i] != NULL) - (b->k[i] != NULL);
        int c = strcmp(a->k[i], b->k[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static const char *const update_sql[N_KINDS] = {
    [K_KEY] = "UPDATE keys SET spend = spend + $1 WHERE token = $2",
    [K_USER] = "UPDATE users SET spend = spend + $1 WHERE user_id = $2",
    [K_TEAM] = "UPDATE teams SET spend = spend + $1 WHERE team_id = $2",
    [K_ORG] = "UPDATE organizations SET spend = spend + $1 WHERE organization_id = $2",
    [K_MEMBER] = "UPDATE team_membership SET spend = spend + $1 WHERE user_id = $2 AND team_id = $3",
    [K_END_USER] = "INSERT INTO end_users (user_id, spend, created_at, updated_at) "
                   "VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO UPDATE SET "
                   "spend = end_users.spend + excluded.spend",
    [K_DAY] = "INSERT INTO daily_spend (date, api_key, model, custom_llm_provider, model_group, user_id, "
              "team_id, organization_id, prompt_tokens, completion_tokens, cache_read_input_tokens, "
              "cache_creation_input_tokens, spend, api_requests, successful_requests, failed_requests, "
              "created_at, updated_at) VALUES ($1, $2, $3, $4, CAST($5 AS TEXT), CAST($6 AS TEXT), "
              "CAST($7 AS TEXT), CAST($8 AS TEXT), $9, $10, $11, $12, $13, $14, $15, $16, $17, $17) "
              "ON CONFLICT (date, api_key, model, custom_llm_provider) DO UPDATE SET "
              "model_group = COALESCE(daily_spend.model_group, excluded.model_group), "
              "user_id = COALESCE(daily_spend.user_id, excluded.user_id), "
              "team_id = COALESCE(daily_spend.team_id, excluded.team_id), "
              "organization_id = COALESCE(daily_spend.organization_id, excluded.organization_id), "
              "prompt_tokens = daily_spend.prompt_tokens + excluded.prompt_tokens, "
              "completion_tokens = daily_spend.completion_tokens + excluded.completion_tokens, "
              "cache_read_input_tokens = daily_spend.cache_read_input_tokens + "
              "excluded.cache_read_input_tokens, "
              "cache_creation_input_tokens = daily_spend.cache_creation_input_tokens + "
              "excluded.cache_creation_input_tokens, "
              "spend = daily_spend.spend + excluded.spend, "
              "api_requests = daily_spend.api_requests + excluded.api_requests, "
              "successful_requests = daily_spend.successful_requests + excluded.successful_requests, "
              "failed_requests = daily_spend.failed_requests + excluded.failed_requests, "
              "updated_at = excluded.updated_at",
};

/* The one statement for sum e. */
static int apply_sum(gw_store_conn_t *c, const agg_t *e, const char *now)
{
    switch (e->kind) {
    case K_MEMBER: {
        gw_store_param_t p[] = {GW_P_INT(e->v[0]), GW_P_TEXT(e->k[0]), GW_P_TEXT(e->k[1])};
        return gw_store_exec_cached(c, update_sql[K_MEMBER], p, 3, NULL);
    }
    case K_END_USER: {
        gw_store_param_t p[] = {GW_P_TEXT(e->k[0]), GW_P_INT(e->v[0]), GW_P_TEXT(now)};
        return gw_store_exec_cached(c, update_sql[K_END_USER], p, 3, NULL);
    }
    case K_DAY: {
        const gw_spend_rec_t *r = e->first;
        gw_store_param_t p[] = {GW_P_TEXT(e->k[0]),
                                GW_P_TEXT(e->k[1]),
                                GW_P_TEXT(e->k[2]),
                                GW_P_TEXT(e->k[3]),
                                GW_P_TEXT(or_null(r->model_group)),
                                GW_P_TEXT(or_null(r->user_id)),
                                GW_P_TEXT(or_null(r->team_id)),
                                GW_P_TEXT(or_null(r->org_id)),
                                GW_P_INT(e->v[0]),
                                GW_P_INT(e->v[1]),
                                GW_P_INT(e->v[2]),
                                GW_P_INT(e->v[3]),
                                GW_P_INT(e->v[4]),
                                GW_P_INT(e->v[5]),
                                GW_P_INT(e->v[6]),
                                GW_P_INT(e->v[7]),
                                GW_P_TEXT(now)};
        return gw_store_exec_cached(c, update_sql[K_DAY], p, 17, NULL);
    }
    default: {
        gw_store_param_t p[] = {GW_P_INT(e->v[0]), GW_P_TEXT(e->k[0])};
        return gw_store_exec_cached(c, update_sql[e->kind], p, 2, NULL);
    }
    }
}

static int apply_batch_tx(gw_store_conn_t *c, void *ud)
{
    batch_t *b = ud;
    b->inserted = 0;
    b->clamped = 0;
    memset(b->fresh, 0, b->n);
    int st = gw_store_conn_kind(c) == GW_STORE_POSTGRES ? insert_logs_chunked(c, b) : insert_logs_each(c, b);
    if (st != GW_STORE_OK)
        return st;
    /* at most N_KINDS sums per record; the hash table at most half full */
    size_t max = b->n * N_KINDS, cap = 16;
    while (cap < 2 * max)
        cap <<= 1;
    aggtab_t t = {
        .e = malloc(max * sizeof(agg_t)), .max = max, .slot = calloc(cap, sizeof(uint32_t)), .mask = cap - 1};
    agg_t **order = malloc(max * sizeof(*order));
    if (t.e == NULL || t.slot == NULL || order == NULL) {
        st = gw_store_fail(c, GW_STORE_ERROR, "out of memory");
        goto out;
    }
    aggregate(b, &t);
    for (size_t i = 0; i < t.n; i++)
        order[i] = &t.e[i];
    qsort(order, t.n, sizeof(*order), cmp_agg);
    char now[GW_STORE_TIME_LEN];
    gw_store_now_iso(now);
    for (size_t i = 0; i < t.n && st == GW_STORE_OK; i++)
        st = apply_sum(c, order[i], now);
out:
    free(t.e);
    free(t.slot);
    free(order);
    return st;
}

static int apply_batch(gw_store_conn_t *c, void *ud)
{
    return gw_store_tx(c, apply_batch_tx, ud);
}

/* ---- the writer thread ---------------------------------------------------------------------- */

/* The read fd of journal seq (cached), or -1 when the file does not exist. */
static int reader_for(gw_spend_t *sp, uint64_t seq)
{
    if (sp->rd_fd >= 0 && sp->rd_seq == seq)
        return sp->rd_fd;
    if (sp->rd_fd >= 0)
        close(sp->rd_fd);
    sp->rd_fd = -1;
    char path[600];
    if (journal_path(sp, seq, path, sizeof(path)) != 0)
        return -1;
    sp->rd_fd = open(path, O_RDONLY | O_CLOEXEC);
    sp->rd_seq = seq;
    return sp->rd_fd;
}

static void publish_checkpoint(gw_spend_t *sp, uint64_t seq, uint64_t off)
{
    if (checkpoint_write(sp, seq, off) != 0)
        loud("cannot write the checkpoint (replay after a restart will redo work, harmlessly): %s",
             strerror(errno));
    pthread_mutex_lock(&sp->prog_mu);
    sp->ck_seq = seq;
    sp->ck_off = off;
    pthread_cond_broadcast(&sp->prog_cond);
    pthread_mutex_unlock(&sp->prog_mu);
}

/* Bytes of journal not yet in the store; logs loudly past max_bytes. */
static void update_backlog(gw_spend_t *sp, uint64_t cur_seq, uint64_t cur_size)
{
    uint64_t total = 0, size;
    char path[600];
    for (uint64_t s = sp->ck_seq; s < cur_seq; s++)
        if (journal_path(sp, s, path, sizeof(path)) == 0 && file_size(path, &size) == 0)
            total += size;
    total += cur_size;
    total = total > sp->ck_off ? total - sp->ck_off : 0;
    __atomic_store_n(&sp->st_backlog, total, __ATOMIC_RELAXED);
    int over = total > sp->set.max_bytes;
    __atomic_store_n(&sp->st_over, over, __ATOMIC_RELAXED);
    uint64_t now = mono_ms();
    if (over && now - sp->last_loud_ms >= LOUD_EVERY_MS) {
        sp->last_loud_ms = now;
        loud("journal backlog %" PRIu64 " bytes exceeds max_bytes %" PRIu64
             ": the store is not keeping up or is down; records are still accepted",
             total, sp->set.max_bytes);
    }
}

typedef struct chunk {
    uint64_t next_off; /* offset after the lines consumed */
    size_t corrupt;
    size_t n; /* records decoded into sp->recs */
} chunk_t;

/* 1 when request id of sp->recs[i] is already among the batch's ids; otherwise adds it. */
static int seen_before(gw_spend_t *sp, size_t i)
{
    const char *id = sp->recs[i].request_id;
    for (size_t s = (size_t)hash_str(1469598103934665603ull, id) & sp->id_mask;; s = (s + 1) & sp->id_mask) {
        if (sp->ids[s] == 0) {
            sp->ids[s] = (uint32_t)i + 1;
            return 0;
        }
        if (strcmp(sp->recs[sp->ids[s] - 1].request_id, id) == 0)
            return 1;
    }
}

/*
 * Reads complete lines of journal seq from sp->ck_off up to limit and decodes up to batch_max
 * records into sp->recs (in place in sp->buf; deduplicated by id). sealed: the file will not
 * grow, so an incomplete last line is a torn record, skipped.
 */
static int read_chunk(gw_spend_t *sp, int fd, uint64_t limit, int sealed, chunk_t *ch)
{
    ch->next_off = sp->ck_off;
    ch->corrupt = 0;
    ch->n = 0;
    if (limit <= sp->ck_off)
        return 0;
    uint64_t want = limit - sp->ck_off;
    size_t n = want < READ_BUF ? (size_t)want : READ_BUF;
    ssize_t got = pread(fd, sp->buf, n, (off_t)sp->ck_off);
    if (got < 0)
        return -1;
    memset(sp->ids, 0, (sp->id_mask + 1) * sizeof(*sp->ids));
    size_t pos = 0;
    while (pos < (size_t)got && ch->n < sp->set.batch_max) {
        char *nl = memchr(sp->buf + pos, '\n', (size_t)got - pos);
        if (nl == NULL) {
            int at_end = sp->ck_off + (uint64_t)got >= limit;
            if ((at_end && sealed) || (!at_end && pos == 0)) {
                /* a torn tail, or garbage longer than READ_BUF without a newline: skip it */
                ch->corrupt++;
                pos = (size_t)got;
            }
            break;
        }
        size_t len = (size_t)(nl - (sp->buf + pos));
        if (gw_spend_decode(sp->buf + pos, len, &sp->recs[ch->n]) != 0)
            ch->corrupt++;
        else if (!seen_before(sp, ch->n)) /* the same request twice: the first line wins */
            ch->n++;
        pos += len + 1;
    }
    ch->next_off = sp->ck_off + pos;
    return 0;
}

/* One step: >0 progress made, 0 nothing to do, <0 the store failed (back off). */
static int writer_step(gw_spend_t *sp)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t cur_seq = sp->cur_seq, cur_size = sp->cur_size;
    pthread_mutex_unlock(&sp->mu);
    if (cur_size >= sp->set.rotate_bytes && !sp->stop && rotate(sp) == 0) {
        pthread_mutex_lock(&sp->mu);
        cur_seq = sp->cur_seq;
        cur_size = sp->cur_size;
        pthread_mutex_unlock(&sp->mu);
    }
    update_backlog(sp, cur_seq, cur_size);
    if (sp->ck_seq > cur_seq)
        return 0; /* cannot happen: open starts past the checkpoint */
    int sealed = sp->ck_seq < cur_seq;
    int fd = reader_for(sp, sp->ck_seq);
    uint64_t limit = cur_size;
    if (fd < 0) {
        if (!sealed)
            return 0;
        publish_checkpoint(sp, sp->ck_seq + 1, 0); /* a file that is gone: nothing to replay */
        return 1;
    }
    if (sealed) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            return -1;
        limit = (uint64_t)st.st_size;
    }
    chunk_t ch;
    if (read_chunk(sp, fd, limit, sealed, &ch) != 0) {
        loud("cannot read journal %" PRIu64 ": %s", sp->ck_seq, strerror(errno));
        return -1;
    }
    if (ch.corrupt) {
        __atomic_add_fetch(&sp->st_corrupt, ch.corrupt, __ATOMIC_RELAXED);
        loud("skipped %zu torn or corrupt journal line(s) in file %" PRIu64 " before offset %" PRIu64,
             ch.corrupt, sp->ck_seq, ch.next_off);
    }
    size_t n = ch.n;
    if (n > 0) {
        batch_t b = {.sp = sp, .recs = sp->recs, .n = n, .fresh = sp->fresh};
        char err[GW_STORE_ERR_MAX] = "";
        int st = gw_store_run(sp->store, apply_batch, &b, err, sizeof(err));
        if (st != GW_STORE_OK) {
            __atomic_add_fetch(&sp->st_failed, 1, __ATOMIC_RELAXED);
            uint64_t now = mono_ms();
            int first = __atomic_exchange_n(&sp->st_store_ok, 0, __ATOMIC_RELAXED) == 1;
            if (first || now - sp->last_loud_ms >= LOUD_EVERY_MS) {
                sp->last_loud_ms = now;
                loud("batch of %zu record(s) not stored (%s: %s); retrying with backoff", n,
                     gw_store_status_name(st), err);
            }
            return -1;
        }
        if (b.clamped)
            loud("%" PRId64 " spend sum(s) overflowed and were clamped", b.clamped);
        __atomic_store_n(&sp->st_store_ok, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sp->st_applied, n, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sp->st_inserted, b.inserted, __ATOMIC_RELAXED);
    }
    if (ch.next_off != sp->ck_off) {
        publish_checkpoint(sp, sp->ck_seq, ch.next_off);
        return 1;
    }
    if (sealed && ch.next_off >= limit) {
        /* fully applied and never written again: move on and delete it */
        char path[600];
        uint64_t done = sp->ck_seq;
        publish_checkpoint(sp, done + 1, 0);
        close(sp->rd_fd);
        sp->rd_fd = -1;
        if (journal_path(sp, done, path, sizeof(path)) == 0)
            unlink(path);
        return 1;
    }
    return 0;
}

static int drained(gw_spend_t *sp)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t seq = sp->cur_seq, size = sp->cur_size;
    pthread_mutex_unlock(&sp->mu);
    pthread_mutex_lock(&sp->prog_mu);
    int d = sp->ck_seq == seq && sp->ck_off >= size;
    pthread_mutex_unlock(&sp->prog_mu);
    return d;
}

static void *writer_main(void *arg)
{
    gw_spend_t *sp = arg;
    uint64_t backoff = sp->set.retry_min_ms;
    for (;;) {
        int r = writer_step(sp);
        pthread_mutex_lock(&sp->prog_mu);
        int stopping = sp->stop;
        uint64_t deadline = sp->stop_deadline;
        pthread_mutex_unlock(&sp->prog_mu);
        if (stopping && (drained(sp) || mono_ms() >= deadline))
            break;
        if (r > 0) {
            backoff = sp->set.retry_min_ms;
            continue;
        }
        uint64_t wait = r < 0 ? backoff : sp->set.writer_ms;
        if (r < 0)
            backoff = backoff * 2 > sp->set.retry_max_ms ? sp->set.retry_max_ms : backoff * 2;
        if (stopping) {
            uint64_t now = mono_ms();
            wait = deadline > now && deadline - now < wait ? deadline - now : wait;
        }
        struct timespec ts = deadline_in(wait);
        pthread_mutex_lock(&sp->prog_mu);
        while (!sp->wake && pthread_cond_timedwait(&sp->wake_cond, &sp->prog_mu, &ts) == 0) {
        }
        sp->wake = 0;
        pthread_mutex_unlock(&sp->prog_mu);
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void defaults(gw_spend_settings_t *s)
{
    if (s->sync_ms == 0)
        s->sync_ms = 100;
    if (s->writer_ms == 0)
        s->writer_ms = 100;
    if (s->batch_max == 0)
        s->batch_max = 500;
    if (s->batch_max > GW_SPEND_MAX_BATCH)
        s->batch_max = GW_SPEND_MAX_BATCH;
    if (s->retry_min_ms == 0)
        s->retry_min_ms = 100;
    if (s->retry_max_ms == 0)
        s->retry_max_ms = 5000;
    if (s->retry_max_ms < s->retry_min_ms)
        s->retry_max_ms = s->retry_min_ms;
    if (s->rotate_bytes == 0)
        s->rotate_bytes = 64u << 20;
    if (s->max_bytes == 0)
        s->max_bytes = 1ull << 30;
    if (s->close_drain_ms == 0)
        s->close_drain_ms = 5000;
}

static int valid_instance(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > GW_SPEND_MAX_INSTANCE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || (c == '.' && i > 0)))
            return 0;
    }
    return 1;
}

/* Finds where to resume: the checkpoint, checked against the files that exist. */
static void resume_point(gw_spend_t *sp, uint64_t *next_seq)
{
    uint64_t lo = 0, hi = 0, seq = 0, off = 0;
    int have_files = scan_journals(sp, &lo, &hi) > 0;
    int ck = checkpoint_read(sp, &seq, &off);
    if (ck < 0)
        loud("the checkpoint is unreadable; replaying every journal file (idempotent)");
    if (ck <= 0) {
        seq = have_files ? lo : 0;
        off = 0;
    }
    char path[600];
    uint64_t size;
    if (have_files) {
        for (uint64_t s = lo; s < seq; s++) /* fully applied files left by a crash */
            if (journal_path(sp, s, path, sizeof(path)) == 0)
                unlink(path);
        if (seq < lo) {
            seq = lo;
            off = 0;
        }
        if (journal_path(sp, seq, path, sizeof(path)) == 0 && file_size(path, &size) == 0 && off > size) {
            loud("checkpoint offset %" PRIu64 " is past the end of journal %" PRIu64 "; replaying it", off,
                 seq);
            off = 0;
        }
    }
    sp->ck_seq = seq;
    sp->ck_off = off;
    uint64_t top = have_files && hi > seq ? hi : seq;
    *next_seq = top + 1;
}

gw_spend_t *gw_spend_open(const char *data_dir, gw_store_t *store, const gw_spend_settings_t *settings,
                          char *err, size_t errlen)
{
    gw_spend_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    sp->store = store;
    sp->lock_fd = sp->fd = sp->rd_fd = -1;
    sp->st_store_ok = 1;
    if (settings != NULL)
        sp->set = *settings;
    defaults(&sp->set);
    pthread_mutex_init(&sp->mu, NULL);
    pthread_mutex_init(&sp->sync_mu, NULL);
    pthread_mutex_init(&sp->prog_mu, NULL);
    pthread_mutex_init(&sp->req_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->prog_cond, &ca);
    pthread_cond_init(&sp->wake_cond, &ca);
    pthread_cond_init(&sp->req_cond, &ca);
    pthread_condattr_destroy(&ca);

    if (data_dir == NULL || *data_dir == '\0')
        data_dir = getenv("TOLLGATE_DATA_DIR");
    if (data_dir == NULL || *data_dir == '\0')
        data_dir = "./data";
    const char *inst = sp->set.instance_id;
    char host[256] = "";
    if (inst == NULL || *inst == '\0')
        inst = getenv("TOLLGATE_INSTANCE_ID");
    if (inst == NULL || *inst == '\0') {
        if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof(host), "default");
        inst = host;
    }
    if (!valid_instance(inst)) {
        set_err(err, errlen, "spend: instance id must be 1-%d of [A-Za-z0-9_.-]", GW_SPEND_MAX_INSTANCE);
        goto fail;
    }
    snprintf(sp->inst, sizeof(sp->inst), "%.*s", GW_SPEND_MAX_INSTANCE, inst);
    if (strlen(data_dir) >= sizeof(sp->dir) - 1) {
        set_err(err, errlen, "spend: data dir path too long");
        goto fail;
    }
    snprintf(sp->dir, sizeof(sp->dir), "%s", data_dir);
    if (mkdir(sp->dir, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "spend: cannot create %s: %s", sp->dir, strerror(errno));
        goto fail;
    }
    char lock[600];
    side_path(sp, "lock", lock, sizeof(lock));
    sp->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lock_fd < 0 || flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        set_err(err, errlen, "spend: journal of instance %s in %s is in use by another process (%s)",
                sp->inst, sp->dir, strerror(errno));
        goto fail;
    }
    size_t idcap = 16;
    while (idcap < 2 * (size_t)sp->set.batch_max)
        idcap <<= 1;
    sp->id_mask = idcap - 1;
    sp->buf = malloc(READ_BUF);
    sp->recs = calloc(sp->set.batch_max, sizeof(*sp->recs));
    sp->fresh = calloc(sp->set.batch_max, 1);
    sp->ids = calloc(idcap, sizeof(*sp->ids));
    sp->meta = malloc((size_t)PG_CHUNK_MAX * META_MAX);
    if (sp->buf == NULL || sp->recs == NULL || sp->fresh == NULL || sp->ids == NULL || sp->meta == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    uint64_t next;
    resume_point(sp, &next);
    if (open_current(sp, next, &sp->fd) != 0) {
        set_err(err, errlen, "spend: cannot create journal file in %s: %s", sp->dir, strerror(errno));
        goto fail;
    }
    sp->cur_seq = next;
    if (pthread_create(&sp->writer, NULL, writer_main, sp) != 0) {
        set_err(err, errlen, "spend: cannot start the writer thread");
        goto fail;
    }
    sp->writer_started = 1;
    if (sp->set.sync_mode != GW_SPEND_SYNC_NONE) {
        if (pthread_create(&sp->syncer, NULL, sync_main, sp) != 0) {
            set_err(err, errlen, "spend: cannot start the sync thread");
            goto fail;
        }
        sp->syncer_started = 1;
    }
    return sp;
fail:
    gw_spend_close(sp);
    return NULL;
}

void gw_spend_flush(gw_spend_t *sp)
{
    pthread_mutex_lock(&sp->prog_mu);
    sp->wake = 1;
    pthread_cond_broadcast(&sp->wake_cond);
    pthread_mutex_unlock(&sp->prog_mu);
}

int gw_spend_wait_drained(gw_spend_t *sp, uint32_t timeout_ms)
{
    uint64_t end = mono_ms() + timeout_ms;
    gw_spend_flush(sp);
    while (!drained(sp)) {
        uint64_t now = mono_ms();
        if (now >= end)
            return -1;
        struct timespec ts = deadline_in(end - now < 50 ? end - now : 50);
        pthread_mutex_lock(&sp->prog_mu);
        pthread_cond_timedwait(&sp->prog_cond, &sp->prog_mu, &ts);
        pthread_mutex_unlock(&sp->prog_mu);
    }
    return 0;
}

void gw_spend_stats(gw_spend_t *sp, gw_spend_stats_t *o)
{
    memset(o, 0, sizeof(*o));
    o->records_written = __atomic_load_n(&sp->st_written, __ATOMIC_RELAXED);
    o->write_errors = __atomic_load_n(&sp->st_write_errors, __ATOMIC_RELAXED);
    o->sync_errors = __atomic_load_n(&sp->st_sync_errors, __ATOMIC_RELAXED);
    o->records_applied = __atomic_load_n(&sp->st_applied, __ATOMIC_RELAXED);
    o->records_inserted = __atomic_load_n(&sp->st_inserted, __ATOMIC_RELAXED);
    o->corrupt_skipped = __atomic_load_n(&sp->st_corrupt, __ATOMIC_RELAXED);
    o->batches_failed = __atomic_load_n(&sp->st_failed, __ATOMIC_RELAXED);
    o->backlog_bytes = __atomic_load_n(&sp->st_backlog, __ATOMIC_RELAXED);
    o->over_ceiling = __atomic_load_n(&sp->st_over, __ATOMIC_RELAXED);
    o->store_ok = __atomic_load_n(&sp->st_store_ok, __ATOMIC_RELAXED);
}

void gw_spend_close(gw_spend_t *sp)
{
    if (sp == NULL)
        return;
    pthread_mutex_lock(&sp->mu);
    sp->closed = 1;
    pthread_mutex_unlock(&sp->mu);
    if (sp->fd >= 0 && sp->set.sync_mode != GW_SPEND_SYNC_NONE)
        (void)fdatasync(sp->fd);
    pthread_mutex_lock(&sp->prog_mu);
    sp->stop = 1;
    sp->stop_deadline = mono_ms() + sp->set.close_drain_ms;
    sp->wake = 1;
    pthread_cond_broadcast(&sp->wake_cond);
    pthread_mutex_unlock(&sp->prog_mu);
    pthread_mutex_lock(&sp->req_mu);
    sp->req_stop = 1;
    pthread_cond_signal(&sp->req_cond);
    pthread_mutex_unlock(&sp->req_mu);
    if (sp->writer_started)
        pthread_join(sp->writer, NULL);
    if (sp->syncer_started)
        pthread_join(sp->syncer, NULL);
    if (sp->writer_started && !drained(sp))
        loud("closing with journal records not yet in the store; they are replayed at the next start");
    if (sp->fd >= 0)
        close(sp->fd);
    if (sp->rd_fd >= 0)
        close(sp->rd_fd);
    if (sp->lock_fd >= 0)
        close(sp->lock_fd); /* releases the flock */
    free(sp->buf);
    free(sp->recs);
    free(sp->fresh);
    free(sp->ids);
    free(sp->meta);
    for (size_t i = 0; i < PG_SHAPES_MAX; i++)
        free(sp->ins_sql[i]);
    pthread_mutex_destroy(&sp->mu);
    pthread_mutex_destroy(&sp->sync_mu);
    pthread_mutex_destroy(&sp->prog_mu);
    pthread_mutex_destroy(&sp->req_mu);
    pthread_cond_destroy(&sp->req_cond);
    pthread_cond_destroy(&sp->prog_cond);
    pthread_cond_destroy(&sp->wake_cond);
    free(sp);
}

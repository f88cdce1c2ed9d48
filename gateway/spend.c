/*
 * spend.c — the spend journal (append, checksum, rotation, checkpoint), its sync thread, and the
 * writer thread that applies journal records to the store idempotently. The contracts are in
 * spend.h; this file explains the why of the details.
 *
 * Locks. `mu` guards the current journal file (fd, seq, size): gw_spend_record holds it around
 * one write(2), so concurrent workers never interleave lines and cur_size is always at a line
 * boundary — the writer reads the live file only up to cur_size, hence never sees half a line.
 * `sync_mu` serialises fdatasync with rotation, so a record that was written to the previous
 * file is synced before anyone believes it synced. `prog_mu` guards the checkpoint position the
 * writer publishes (for gw_spend_wait_drained) and the writer's wake-up flag.
 *
 * Idempotency lives in the database: spend_logs.request_id is the primary key; the counters
 * move only for rows the INSERT … ON CONFLICT DO NOTHING RETURNING reported as new, in the same
 * transaction. The checkpoint is only an optimisation of where to resume; replaying from any
 * earlier point is harmless.
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
#define INSERT_CHUNK 40        /* spend_logs rows per INSERT statement */
#define LOUD_EVERY_MS 10000    /* loud logs repeat at most this often */
#define MAX_TOKENS (1LL << 40) /* sanity bounds of a parsed record */
#define MAX_MICROS (1LL << 50)

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
    uint64_t synced_total;

    pthread_mutex_t prog_mu;
    pthread_cond_t prog_cond; /* writer progress, for wait_drained */
    pthread_cond_t wake_cond; /* wakes the writer and the sync thread */
    int wake;
    int stop;                /* threads exit (writer: after the drain deadline) */
    uint64_t stop_deadline;  /* monotonic ms */
    uint64_t ck_seq, ck_off; /* the checkpoint */

    pthread_t writer, syncer;
    int writer_started, syncer_started;

    /* writer-only */
    int rd_fd;
    uint64_t rd_seq;
    char *buf;
    uint64_t last_loud_ms;

    /* stats (atomics) */
    uint64_t st_written, st_write_errors, st_applied, st_inserted, st_corrupt, st_failed, st_backlog;
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

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
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
 * A JSON string of s cut to GW_SPEND_MAX_FIELD bytes: control characters become spaces and
 * invalid UTF-8 becomes '?', so the reader (jansson, strict) can always parse what we wrote.
 */
static void put_str(out_t *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n > GW_SPEND_MAX_FIELD)
        n = GW_SPEND_MAX_FIELD;
    put(o, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(o, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7F) {
            put(o, " ", 1);
            i++;
        } else {
            size_t k = utf8_len(u + i, n - i);
            if (k == 0) {
                put(o, "?", 1);
                i++;
            } else {
                put(o, s + i, k);
                i += k;
            }
        }
    }
    put(o, "\"", 1);
}

static void field_str(out_t *o, const char *name, const char *v)
{
    if (v == NULL || *v == '\0')
        return;
    put(o, ",\"", 2);
    puts_(o, name);
    put(o, "\":", 2);
    put_str(o, v);
}

static void field_int(out_t *o, const char *name, int64_t v)
{
    char num[32];
    int n = snprintf(num, sizeof(num), ",\"%s\":%" PRId64, name, v);
    if (n > 0 && (size_t)n < sizeof(num))
        put(o, num, (size_t)n);
    else
        o->overflow = 1;
}

int gw_spend_format(const gw_spend_rec_t *r, char *line, size_t linelen)
{
    if (r == NULL || r->request_id == NULL || *r->request_id == '\0' ||
        strlen(r->request_id) > GW_SPEND_MAX_FIELD || r->prompt_tokens < 0 || r->completion_tokens < 0 ||
        r->cache_read_tokens < 0 || r->cache_creation_tokens < 0 || r->spend_micros < 0 ||
        r->prompt_tokens > MAX_TOKENS || r->completion_tokens > MAX_TOKENS || r->spend_micros > MAX_MICROS ||
        r->start_ms < 0 || r->end_ms < 0 || r->first_token_ms < 0 || linelen < 32)
        return GW_SPEND_EINVAL;
    char payload[GW_SPEND_MAX_LINE];
    out_t o = {payload, 0, sizeof(payload) - 40, 0}; /* room for the header */
    puts_(&o, "{\"v\":1,\"id\":");
    put_str(&o, r->request_id);
    field_str(&o, "call_type", r->call_type);
    field_str(&o, "api_key", r->key_hash);
    field_str(&o, "key_alias", r->key_alias);
    field_str(&o, "user_id", r->user_id);
    field_str(&o, "team_id", r->team_id);
    field_str(&o, "org_id", r->org_id);
    field_str(&o, "end_user", r->end_user);
    field_str(&o, "model_group", r->model_group);
    field_str(&o, "model", r->model);
    field_str(&o, "provider", r->provider);
    field_str(&o, "model_id", r->model_id);
    field_str(&o, "api_base", r->api_base);
    field_str(&o, "status", r->status ? r->status : "success");
    field_int(&o, "pt", r->prompt_tokens);
    field_int(&o, "ct", r->completion_tokens);
    field_int(&o, "crt", r->cache_read_tokens);
    field_int(&o, "cct", r->cache_creation_tokens);
    field_int(&o, "spend", r->spend_micros);
    field_int(&o, "start", r->start_ms);
    field_int(&o, "end", r->end_ms);
    if (r->first_token_ms > 0)
        field_int(&o, "first", r->first_token_ms);
    field_int(&o, "stream", r->stream ? 1 : 0);
    put(&o, "}", 1);
    if (o.overflow)
        return GW_SPEND_EINVAL;
    int h = snprintf(line, linelen, "S1 %zu %08" PRIx32 " ", o.len, gw_spend_crc32c(payload, o.len));
    if (h < 0 || (size_t)h + o.len + 1 > linelen)
        return GW_SPEND_EINVAL;
    memcpy(line + h, payload, o.len);
    line[(size_t)h + o.len] = '\n';
    return (int)((size_t)h + o.len + 1);
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
        if (v > (max - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

json_t *gw_spend_parse_line(const char *line, size_t len)
{
    const char *end = line + len;
    if (len < 6 || memcmp(line, "S1 ", 3) != 0)
        return NULL;
    const char *p = line + 3, *sp = memchr(p, ' ', (size_t)(end - p));
    uint64_t plen, crc;
    if (sp == NULL || parse_num(p, sp, 10, GW_SPEND_MAX_LINE, &plen) != 0)
        return NULL;
    p = sp + 1;
    if (end - p < 9 || p[8] != ' ' || parse_num(p, p + 8, 16, UINT32_MAX, &crc) != 0)
        return NULL;
    p += 9;
    if ((uint64_t)(end - p) != plen || gw_spend_crc32c(p, plen) != (uint32_t)crc)
        return NULL;
    json_t *j = json_loadb(p, plen, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || !json_is_object(j) || !json_is_string(json_object_get(j, "id"))) {
        json_decref(j);
        return NULL;
    }
    static const char *nums[] = {"pt", "ct", "crt", "cct", "spend", "start", "end"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        json_t *v = json_object_get(j, nums[i]);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_MICROS) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
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
    if (sp->synced_total < total)
        sp->synced_total = total;
    pthread_mutex_unlock(&sp->sync_mu);
    return 0;
}

/* ---- append --------------------------------------------------------------------------------- */

static void sync_upto(gw_spend_t *sp, uint64_t want)
{
    pthread_mutex_lock(&sp->sync_mu);
    if (sp->synced_total < want) {
        pthread_mutex_lock(&sp->mu);
        int fd = sp->fd;
        uint64_t target = sp->appended_total;
        pthread_mutex_unlock(&sp->mu);
        if (fd >= 0 && fdatasync(fd) == 0)
            sp->synced_total = target;
    }
    pthread_mutex_unlock(&sp->sync_mu);
}

int gw_spend_record(gw_spend_t *sp, const gw_spend_rec_t *rec)
{
    char line[GW_SPEND_MAX_LINE];
    int n = gw_spend_format(rec, line, sizeof(line));
    if (n < 0)
        return GW_SPEND_EINVAL;
    pthread_mutex_lock(&sp->mu);
    if (sp->closed) {
        pthread_mutex_unlock(&sp->mu);
        return GW_SPEND_CLOSED;
    }
    if (write_all(sp->fd, line, (size_t)n) != 0) {
        int e = errno;
        /* never leave half a line: the next record would be glued to it */
        if (ftruncate(sp->fd, (off_t)sp->cur_size) != 0)
            loud("journal write failed (%s) and the partial line could not be cut: %s", strerror(e),
                 strerror(errno));
        pthread_mutex_unlock(&sp->mu);
        __atomic_add_fetch(&sp->st_write_errors, 1, __ATOMIC_RELAXED);
        loud("journal write failed, spend of request %s is not recorded: %s", rec->request_id, strerror(e));
        return GW_SPEND_EIO;
    }
    sp->cur_size += (uint64_t)n;
    sp->appended_total += (uint64_t)n;
    uint64_t mine = sp->appended_total;
    pthread_mutex_unlock(&sp->mu);
    __atomic_add_fetch(&sp->st_written, 1, __ATOMIC_RELAXED);
    if (sp->set.sync_mode == GW_SPEND_SYNC_ALWAYS)
        sync_upto(sp, mine);
    return GW_SPEND_OK;
}

/* ---- sync thread ---------------------------------------------------------------------------- */

static void *sync_main(void *arg)
{
    gw_spend_t *sp = arg;
    pthread_mutex_lock(&sp->prog_mu);
    while (!sp->stop) {
        struct timespec ts = deadline_in(sp->set.sync_ms);
        pthread_cond_timedwait(&sp->wake_cond, &sp->prog_mu, &ts);
        pthread_mutex_unlock(&sp->prog_mu);
        pthread_mutex_lock(&sp->mu);
        uint64_t total = sp->appended_total;
        pthread_mutex_unlock(&sp->mu);
        sync_upto(sp, total);
        pthread_mutex_lock(&sp->prog_mu);
    }
    pthread_mutex_unlock(&sp->prog_mu);
    return NULL;
}

/* ---- applying a batch (runs on the store thread) ------------------------------------------- */

typedef struct batch {
    json_t *recs;    /* array of parsed records, unique request ids */
    size_t inserted; /* out */
    int64_t clamped; /* out: sums that would have overflowed (clamped, logged) */
} batch_t;

static const char *jstr(const json_t *r, const char *k)
{
    const char *s = json_string_value(json_object_get(r, k));
    return s != NULL ? s : "";
}

static const char *jstr_or_null(const json_t *r, const char *k)
{
    const char *s = json_string_value(json_object_get(r, k));
    return s != NULL && *s ? s : NULL;
}

static int64_t jint(const json_t *r, const char *k)
{
    return json_integer_value(json_object_get(r, k));
}

/* m[k] += v, checked: a sum that would overflow is clamped (and counted). */
static void add_to(json_t *m, const char *k, int64_t v, batch_t *b)
{
    json_t *cur = json_object_get(m, k);
    int64_t sum;
    if (cur == NULL) {
        json_object_set_new(m, k, json_integer(v));
        return;
    }
    if (__builtin_add_overflow(json_integer_value(cur), v, &sum)) {
        sum = INT64_MAX;
        b->clamped++;
    }
    json_integer_set(cur, sum);
}

static void add_field(json_t *o, const char *k, int64_t v, batch_t *b)
{
    add_to(o, k, v, b);
}

static json_t *rec_metadata(const json_t *r)
{
    json_t *m = json_object();
    const char *pairs[][2] = {{"user_api_key_alias", "key_alias"},
                              {"user_api_key_user_id", "user_id"},
                              {"user_api_key_team_id", "team_id"},
                              {"user_api_key_org_id", "org_id"},
                              {"user_api_key_end_user_id", "end_user"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *v = jstr_or_null(r, pairs[i][1]);
        json_object_set_new(m, pairs[i][0], v ? json_string(v) : json_null());
    }
    json_object_set_new(m, "user_api_key", json_string(jstr(r, "api_key")));
    json_object_set_new(m, "stream", json_boolean(jint(r, "stream") != 0));
    return m;
}

#define LOG_COLS 24

/* INSERT … ON CONFLICT DO NOTHING RETURNING request_id for recs[from, to); marks new ones. */
static int insert_logs(gw_store_conn_t *c, batch_t *b, size_t from, size_t to, json_t *fresh)
{
    size_t n = to - from;
    gw_store_param_t *p = calloc(n * LOG_COLS, sizeof(*p));
    char(*times)[3][GW_STORE_TIME_LEN] = calloc(n, sizeof(*times));
    json_t **meta = calloc(n, sizeof(*meta));
    /* per row: 20 "$NNNN," (6) + 4 "CAST($NNNN AS TIMESTAMPTZ)," (28) + "(),": < LOG_COLS * 12 */
    size_t sqlcap = 600 + n * (LOG_COLS * 12 + 16);
    char *sql = malloc(sqlcap);
    int st = GW_STORE_ERROR;
    if (p == NULL || times == NULL || meta == NULL || sql == NULL) {
        st = gw_store_fail(c, GW_STORE_ERROR, "out of memory");
        goto out;
    }
    size_t len = (size_t)snprintf(
        sql, sqlcap,
        "INSERT INTO spend_logs (request_id, call_type, api_key, spend, total_tokens, prompt_tokens, "
        "completion_tokens, cache_read_input_tokens, cache_creation_input_tokens, \"startTime\", "
        "\"endTime\", "
        "\"completionStartTime\", request_duration_ms, model, model_id, model_group, custom_llm_provider, "
        "api_base, \"user\", team_id, organization_id, end_user, status, metadata) VALUES ");
    for (size_t i = 0; i < n; i++) {
        const json_t *r = json_array_get(b->recs, from + i);
        gw_store_param_t *q = p + i * LOG_COLS;
        int64_t pt = jint(r, "pt"), ct = jint(r, "ct"), start = jint(r, "start"), end = jint(r, "end");
        int64_t first = jint(r, "first"), dur = end >= start ? end - start : 0;
        gw_store_time_iso(start, times[i][0]);
        gw_store_time_iso(end, times[i][1]);
        gw_store_time_iso(first, times[i][2]);
        meta[i] = rec_metadata(r);
        q[0] = GW_P_TEXT(jstr(r, "id"));
        q[1] = GW_P_TEXT(jstr(r, "call_type"));
        q[2] = GW_P_TEXT(jstr(r, "api_key"));
        q[3] = GW_P_INT(jint(r, "spend"));
        q[4] = GW_P_INT(pt + ct);
        q[5] = GW_P_INT(pt);
        q[6] = GW_P_INT(ct);
        q[7] = GW_P_INT(jint(r, "crt"));
        q[8] = GW_P_INT(jint(r, "cct"));
        q[9] = GW_P_TEXT(times[i][0]);
        q[10] = GW_P_TEXT(times[i][1]);
        q[11] = first > 0 ? GW_P_TEXT(times[i][2]) : GW_P_NULL();
        q[12] = GW_P_INT(dur > INT32_MAX ? INT32_MAX : dur);
        q[13] = GW_P_TEXT(jstr(r, "model"));
        q[14] = GW_P_TEXT(jstr(r, "model_id"));
        q[15] = GW_P_TEXT(jstr(r, "model_group"));
        q[16] = GW_P_TEXT(jstr(r, "provider"));
        q[17] = GW_P_TEXT(jstr(r, "api_base"));
        q[18] = GW_P_TEXT(jstr(r, "user_id"));
        q[19] = GW_P_TEXT(jstr_or_null(r, "team_id"));
        q[20] = GW_P_TEXT(jstr_or_null(r, "org_id"));
        q[21] = GW_P_TEXT(jstr_or_null(r, "end_user"));
        q[22] = GW_P_TEXT(jstr(r, "status"));
        q[23] = GW_P_JSON(meta[i]);
        len += (size_t)snprintf(sql + len, sqlcap - len, "%s(", i ? "," : "");
        for (size_t k = 0; k < LOG_COLS; k++) {
            size_t idx = i * LOG_COLS + k + 1;
            if (k == 11 || k == 19 || k == 20 || k == 21)
                len += (size_t)snprintf(
                    sql + len, sqlcap - len, "%sCAST($%zu AS %s)", k ? "," : "", idx,
                    k == 11 ? (gw_store_conn_kind(c) == GW_STORE_POSTGRES ? "TIMESTAMPTZ" : "TEXT") : "TEXT");
            else
                len += (size_t)snprintf(sql + len, sqlcap - len, "%s$%zu", k ? "," : "", idx);
        }
        len += (size_t)snprintf(sql + len, sqlcap - len, ")");
    }
    if (len >= sqlcap - 64) {
        st = gw_store_fail(c, GW_STORE_ERROR, "spend: statement buffer too small");
        goto out;
    }
    snprintf(sql + len, sqlcap - len, " ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
    json_t *rows = NULL;
    st = gw_store_query(c, sql, p, n * LOG_COLS, &rows);
    if (st == GW_STORE_OK) {
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            const char *id = json_string_value(json_object_get(row, "request_id"));
            if (id != NULL)
                json_object_set_new(fresh, id, json_true());
        }
    }
    json_decref(rows);
out:
    if (meta != NULL)
        for (size_t i = 0; i < n; i++)
            json_decref(meta[i]);
    free(p);
    free(times);
    free(meta);
    free(sql);
    return st;
}

static int add_spend(gw_store_conn_t *c, const char *sql, json_t *m)
{
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        gw_store_param_t p[] = {GW_P_INT(json_integer_value(v)), GW_P_TEXT(k)};
        int st = gw_store_exec(c, sql, p, 2, NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

static int upsert_end_users(gw_store_conn_t *c, json_t *m, const char *now)
{
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        gw_store_param_t p[] = {GW_P_TEXT(k), GW_P_INT(json_integer_value(v)), GW_P_TEXT(now)};
        int st = gw_store_exec(c,
                               "INSERT INTO end_users (user_id, spend, created_at, updated_at) "
                               "VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO UPDATE SET "
                               "spend = end_users.spend + excluded.spend",
                               p, 3, NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

static int upsert_daily(gw_store_conn_t *c, json_t *days, const char *now)
{
    const char *k;
    json_t *d;
    json_object_foreach(days, k, d)
    {
        gw_store_param_t p[] = {GW_P_TEXT(jstr(d, "date")),
                                GW_P_TEXT(jstr(d, "api_key")),
                                GW_P_TEXT(jstr(d, "model")),
                                GW_P_TEXT(jstr(d, "provider")),
                                GW_P_TEXT(jstr_or_null(d, "mg")),
                                GW_P_TEXT(jstr_or_null(d, "user_id")),
                                GW_P_TEXT(jstr_or_null(d, "team")),
                                GW_P_TEXT(jstr_or_null(d, "org")),
                                GW_P_INT(jint(d, "pt")),
                                GW_P_INT(jint(d, "ct")),
                                GW_P_INT(jint(d, "crt")),
                                GW_P_INT(jint(d, "cct")),
                                GW_P_INT(jint(d, "spend")),
                                GW_P_INT(jint(d, "req")),
                                GW_P_INT(jint(d, "ok")),
                                GW_P_INT(jint(d, "fail")),
                                GW_P_TEXT(now)};
        int st = gw_store_exec(
            c,
            "INSERT INTO daily_spend (date, api_key, model, custom_llm_provider, model_group, user_id, "
            "team_id, "
            "organization_id, prompt_tokens, completion_tokens, cache_read_input_tokens, "
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
            p, 17, NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

/* Sums the new records per key, user, team, membership, end user, organization and day. */
static void aggregate(batch_t *b, json_t *fresh, json_t *keys, json_t *users, json_t *teams, json_t *members,
                      json_t *eus, json_t *orgs, json_t *days)
{
    size_t i;
    json_t *r;
    json_array_foreach(b->recs, i, r)
    {
        if (json_object_get(fresh, jstr(r, "id")) == NULL)
            continue;
        b->inserted++;
        int64_t spend = jint(r, "spend");
        const char *key = jstr(r, "api_key"), *user = jstr(r, "user_id"), *team = jstr(r, "team_id");
        if (*key)
            add_to(keys, key, spend, b);
        if (*user)
            add_to(users, user, spend, b);
        if (*team)
            add_to(teams, team, spend, b);
        if (*user && *team) {
            char mk[2 * GW_SPEND_MAX_FIELD + 2];
            snprintf(mk, sizeof(mk), "%s\x1f%s", user, team);
            add_to(members, mk, spend, b);
        }
        if (*jstr(r, "end_user"))
            add_to(eus, jstr(r, "end_user"), spend, b);
        if (*jstr(r, "org_id"))
            add_to(orgs, jstr(r, "org_id"), spend, b);
        char iso[GW_STORE_TIME_LEN], dk[4 * GW_SPEND_MAX_FIELD + 16];
        gw_store_time_iso(jint(r, "start"), iso);
        iso[10] = '\0';
        snprintf(dk, sizeof(dk), "%s\x1f%s\x1f%s\x1f%s", iso, key, jstr(r, "model"), jstr(r, "provider"));
        json_t *d = json_object_get(days, dk);
        if (d == NULL) {
            d = json_pack("{ss ss ss ss}", "date", iso, "api_key", key, "model", jstr(r, "model"), "provider",
                          jstr(r, "provider"));
            const char *opt[][2] = {
                {"mg", "model_group"}, {"user_id", "user_id"}, {"team", "team_id"}, {"org", "org_id"}};
            for (size_t k = 0; k < 4; k++)
                if (jstr_or_null(r, opt[k][1]))
                    json_object_set_new(d, opt[k][0], json_string(jstr(r, opt[k][1])));
            json_object_set_new(days, dk, d);
        }
        int ok = strcmp(jstr(r, "status"), "failure") != 0;
        add_field(d, "pt", jint(r, "pt"), b);
        add_field(d, "ct", jint(r, "ct"), b);
        add_field(d, "crt", jint(r, "crt"), b);
        add_field(d, "cct", jint(r, "cct"), b);
        add_field(d, "spend", spend, b);
        add_field(d, "req", 1, b);
        add_field(d, "ok", ok, b);
        add_field(d, "fail", !ok, b);
    }
}

static int update_members(gw_store_conn_t *c, json_t *members)
{
    const char *k;
    json_t *v;
    json_object_foreach(members, k, v)
    {
        const char *sep = strchr(k, '\x1f');
        char user[GW_SPEND_MAX_FIELD + 1];
        snprintf(user, sizeof(user), "%.*s", (int)(sep - k), k);
        gw_store_param_t p[] = {GW_P_INT(json_integer_value(v)), GW_P_TEXT(user), GW_P_TEXT(sep + 1)};
        int st = gw_store_exec(
            c, "UPDATE team_membership SET spend = spend + $1 WHERE user_id = $2 AND team_id = $3", p, 3,
            NULL);
        if (st != GW_STORE_OK)
            return st;
    }
    return GW_STORE_OK;
}

static int apply_batch_tx(gw_store_conn_t *c, void *ud)
{
    batch_t *b = ud;
    b->inserted = 0;
    b->clamped = 0;
    json_t *fresh = json_object(), *keys = json_object(), *users = json_object(), *teams = json_object();
    json_t *members = json_object(), *eus = json_object(), *orgs = json_object(), *days = json_object();
    char now[GW_STORE_TIME_LEN];
    gw_store_now_iso(now);
    size_t n = json_array_size(b->recs);
    int st = GW_STORE_OK;
    for (size_t i = 0; i < n && st == GW_STORE_OK; i += INSERT_CHUNK)
        st = insert_logs(c, b, i, i + INSERT_CHUNK < n ? i + INSERT_CHUNK : n, fresh);
    if (st == GW_STORE_OK) {
        aggregate(b, fresh, keys, users, teams, members, eus, orgs, days);
        st = add_spend(c, "UPDATE keys SET spend = spend + $1 WHERE token = $2", keys);
    }
    if (st == GW_STORE_OK)
        st = add_spend(c, "UPDATE users SET spend = spend + $1 WHERE user_id = $2", users);
    if (st == GW_STORE_OK)
        st = add_spend(c, "UPDATE teams SET spend = spend + $1 WHERE team_id = $2", teams);
    if (st == GW_STORE_OK)
        st = add_spend(c, "UPDATE organizations SET spend = spend + $1 WHERE organization_id = $2", orgs);
    if (st == GW_STORE_OK)
        st = update_members(c, members);
    if (st == GW_STORE_OK)
        st = upsert_end_users(c, eus, now);
    if (st == GW_STORE_OK)
        st = upsert_daily(c, days, now);
    json_decref(fresh);
    json_decref(keys);
    json_decref(users);
    json_decref(teams);
    json_decref(members);
    json_decref(eus);
    json_decref(orgs);
    json_decref(days);
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
} chunk_t;

/*
 * Reads complete lines of journal seq from sp->ck_off up to limit, parses up to batch_max
 * records into recs (deduplicated by id). sealed: the file will not grow, so an incomplete
 * last line is a torn record, skipped.
 */
static int read_chunk(gw_spend_t *sp, int fd, uint64_t limit, int sealed, json_t *recs, chunk_t *ch)
{
    ch->next_off = sp->ck_off;
    ch->corrupt = 0;
    if (limit <= sp->ck_off)
        return 0;
    uint64_t want = limit - sp->ck_off;
    size_t n = want < READ_BUF ? (size_t)want : READ_BUF;
    ssize_t got = pread(fd, sp->buf, n, (off_t)sp->ck_off);
    if (got < 0)
        return -1;
    json_t *seen = json_object();
    size_t pos = 0;
    while (pos < (size_t)got && json_array_size(recs) < sp->set.batch_max) {
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
        json_t *r = gw_spend_parse_line(sp->buf + pos, len);
        if (r == NULL) {
            ch->corrupt++;
        } else if (json_object_get(seen, jstr(r, "id")) != NULL) {
            json_decref(r); /* the same request twice: the first line wins */
        } else {
            json_object_set_new(seen, jstr(r, "id"), json_true());
            json_array_append_new(recs, r);
        }
        pos += len + 1;
    }
    json_decref(seen);
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
    json_t *recs = json_array();
    chunk_t ch;
    if (read_chunk(sp, fd, limit, sealed, recs, &ch) != 0) {
        json_decref(recs);
        loud("cannot read journal %" PRIu64 ": %s", sp->ck_seq, strerror(errno));
        return -1;
    }
    if (ch.corrupt) {
        __atomic_add_fetch(&sp->st_corrupt, ch.corrupt, __ATOMIC_RELAXED);
        loud("skipped %zu torn or corrupt journal line(s) in file %" PRIu64 " before offset %" PRIu64,
             ch.corrupt, sp->ck_seq, ch.next_off);
    }
    size_t n = json_array_size(recs);
    if (n > 0) {
        batch_t b = {.recs = recs};
        char err[GW_STORE_ERR_MAX] = "";
        int st = gw_store_run(sp->store, apply_batch, &b, err, sizeof(err));
        json_decref(recs);
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
    } else {
        json_decref(recs);
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sp->prog_cond, &ca);
    pthread_cond_init(&sp->wake_cond, &ca);
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
    sp->buf = malloc(READ_BUF);
    if (sp->buf == NULL) {
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
    if (sp->set.sync_mode == GW_SPEND_SYNC_INTERVAL) {
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
    pthread_mutex_destroy(&sp->mu);
    pthread_mutex_destroy(&sp->sync_mu);
    pthread_mutex_destroy(&sp->prog_mu);
    pthread_cond_destroy(&sp->prog_cond);
    pthread_cond_destroy(&sp->wake_cond);
    free(sp);
}

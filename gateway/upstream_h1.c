/*
 * upstream_h1.c — upstream transfers on h2o's own HTTP/1.1 client, for http:// URLs.
 *
 * Why: on a proxied request libcurl costs more CPU than the rest of the gateway (its multi
 * machinery, allocations, a liveness poll per reuse and a timer-driven poll). h2o 2.2.5's
 * http1client and socketpool run on the worker's loop with a fraction of that. TLS and HTTP/2
 * to providers stay with curl (upstream.c), which verifies certificates and multiplexes.
 *
 * How h2o 2.2.5's client is driven here (see upstream.h for the contract):
 *  - Pools. One h2o_socketpool_t per origin (the URL's host[:port]) and worker, made on first use
 *    and kept for the worker's life; idle connections are closed after H1_IDLE_MS. IPv4 and IPv6
 *    literals and "localhost" (127.0.0.1, as curl tries first) are connected to directly; other
 *    names are resolved for each new connection by h2o's resolver thread, whose answer comes back
 *    through an h2o_multithread queue on this loop (receiver: h2o_hostinfo_getaddr_receiver).
 *  - Request. The head is written here into the transfer's own buffer: request line, Host,
 *    Content-Length, then the route's header block (converted from its curl list once, at
 *    start-up) and the blank line; the body goes out as a second iovec, straight from the
 *    caller's buffer. HTTP/1.1 keeps the connection alive by default.
 *  - Timeouts. h2o 2.2 timeout lists have one fixed duration each, and the client's own I/O
 *    timeout (ctx.io_timeout) is one list for all. We set that one far beyond any configured
 *    timeout so it never fires first, and give each transfer one entry in a zero-duration list
 *    kept sorted by registered_at = absolute deadline (link_deadline): the connect deadline while
 *    connecting (name resolution included), then the whole-transfer deadline.
 *  - Safe points. The client calls us from inside its socket callbacks and frees itself (or
 *    returns its socket to the pool) after we return. on_headers and on_data are called there,
 *    as the curl path calls them inside curl's callbacks; on_done and deferred work wait for a
 *    zero-duration timer (`safe`), which h2o runs in the same loop iteration, after the I/O
 *    callbacks: by then a finished connection is back in its pool.
 *  - Backpressure. h2o 2.2.5's client cannot pause. When on_data returns CURL_WRITEFUNC_PAUSE
 *    we leave the bytes in the socket's input buffer, remember the read callback the client had
 *    installed (sock->_cb.read: its content-length, chunked or until-close body reader) and stop
 *    reading. This works because those readers only process what a read appended
 *    (sock->bytes_read) and the chunked decoder decodes in place, so an unconsumed decoded prefix
 *    stays valid. gw_upstream_resume offers the same bytes again and, once they are taken,
 *    restarts reading with the remembered callback. If the response ended in the very read we
 *    paused on, the client is about to return the socket to its pool: we take its input buffer
 *    (leaving an empty one) and finish once those bytes are taken. Nothing is read while paused,
 *    so the held bytes are bounded by one readiness event (the kernel's receive buffer).
 *  - Keep-alive. A connection goes back to its pool only when the client read a complete
 *    response it may keep alive. Cancellation, timeouts, errors and refused bodies close it:
 *    h2o_http1client_cancel clears keep-alive, and so does returning non-zero from on_body.
 *  - Reuse races. A pooled connection may be closed by the server just as we send on it. h2o
 *    checks it with recv(MSG_PEEK) first, but the race remains; as curl does, a request that fails
 *    on a reused connection before any response byte arrived is sent once more on another
 *    connection. h2o's pool hands out a pooled connection synchronously, inside
 *    h2o_http1client_connect_with_pool, and a new one only later from the loop: that is how a
 *    reused connection is told apart (x->in_connect).
 */
#include "gateway/upstream_int.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define H1_IDLE_MS 4000 /* below the 5 s keep-alive of Node's and uvicorn's servers */
#define H1_IO_TIMEOUT_MS (30ull * 24 * 3600 * 1000) /* the client's own timeout: never first */
#define H1_DEFAULT_CONNECT_MS 300000                /* curl's default connect timeout */
#define H1_MAX_POOLS 256          /* origins per worker; new origins past it go through curl */
#define H1_MAX_FREE 256           /* transfer records kept for reuse */
#define H1_MAX_HEAD (256u * 1024) /* request head ceiling; larger heads go through curl */
#define H1_MAX_ATTEMPTS 2         /* first try + one retry after a reused connection died */

typedef struct h1_pool {
    h2o_socketpool_t sp;
    int named; /* resolved for each new connection (not an address literal) */
    size_t origin_len;
    char origin[]; /* the URL's authority, as written */
} h1_pool_t;

typedef enum { H1_CONNECTING, H1_WAITING, H1_BODY, H1_DONE } h1_state_t;

typedef struct h1_xfer h1_xfer_t;

struct gw_h1 {
    gw_upstream_t *up;
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t getaddr;
    h2o_http1client_ctx_t ctx;
    h2o_timeout_t io_timeout;
    h2o_timeout_t safe_list;    /* zero duration: the safe point */
    h2o_timeout_t connect_list; /* zero duration, sorted by deadline */
    h2o_timeout_t total_list;   /* zero duration, sorted by deadline */
    h2o_timeout_entry_t safe;
    h2o_linklist_t done; /* finished transfers whose on_done is due */
    h1_pool_t *pools[H1_MAX_POOLS];
    size_t n_pools;
    h1_xfer_t *free[H1_MAX_FREE];
    size_t n_free;
    size_t named_cancels; /* transfers dropped while a name may have been resolving */
    struct gw_h1 *next_parked;
};

struct h1_xfer {
    gw_xfer_t base; /* first: a gw_xfer_t * is an h1_xfer_t * when is_h1 */
    struct gw_h1 *h1;
    h2o_http1client_t *client; /* NULL once the client is gone, or will be when we return to it */
    h1_pool_t *pool;
    h1_state_t state;
    h2o_timeout_entry_t deadline;
    uint64_t started_at;
    uint64_t timeout_ms, connect_ms;
    h2o_linklist_t done_link;
    h2o_iovec_t req[2]; /* head, body */
    size_t n_req;
    char *head; /* kept with the record across transfers */
    size_t head_cap;
    h2o_socket_cb reader; /* the client's body reader, while we keep reading stopped */
    h2o_buffer_t *held;   /* the last bytes of a response that ended while paused */
    size_t received;      /* body bytes taken by on_data */
    CURLcode rc;
    int status;
    unsigned attempts : 2;
    unsigned in_connect : 1; /* inside h2o_http1client_connect_with_pool */
    unsigned reused : 1;     /* the connection came from the pool */
    unsigned chunked : 1;
    unsigned paused : 1;
    unsigned in_cb : 1;     /* inside on_headers or on_data */
    unsigned cancelled : 1; /* cancelled from inside on_headers or on_data */
    char ctype[128];
    char retry_after[64];
    char errmsg[CURL_ERROR_SIZE];
};

typedef struct h1_url {
    h2o_iovec_t authority, host, path;
    uint16_t port;
} h1_url_t;

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt, int *method_is_head);

/* ---- timers and the safe point ------------------------------------------------------------ */

/* Links e into a zero-duration list at the absolute time `at`, keeping the list sorted (h2o runs
 * a list from its head and stops at the first entry not yet due). Deadlines mostly arrive in
 * order, so the walk back from the tail is short. */
static void link_deadline(h2o_evloop_t *loop, h2o_timeout_t *list, h2o_timeout_entry_t *e, uint64_t at)
{
    h2o_timeout_link(loop, list, e);
    e->registered_at = at;
    h2o_linklist_t *prev = e->_link.prev;
    while (prev != &list->_entries &&
           H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, prev)->registered_at > at)
        prev = prev->prev;
    if (prev != e->_link.prev) {
        h2o_linklist_unlink(&e->_link);
        h2o_linklist_insert(prev->next, &e->_link);
    }
}

static void schedule_safe(struct gw_h1 *h1)
{
    if (!h2o_timeout_is_linked(&h1->safe))
        h2o_timeout_link(h1->loop, &h1->safe_list, &h1->safe);
}

static void on_safe(h2o_timeout_entry_t *entry)
{
    struct gw_h1 *h1 = H2O_STRUCT_FROM_MEMBER(struct gw_h1, safe, entry);
    gw_upstream_after_action(h1->up);
}

/* ---- transfer records --------------------------------------------------------------------- */

static h1_xfer_t *acquire(struct gw_h1 *h1)
{
    h1_xfer_t *x = h1->n_free > 0 ? h1->free[--h1->n_free] : calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    char *head = x->head;
    size_t cap = x->head_cap;
    memset(x, 0, offsetof(h1_xfer_t, ctype));
    x->ctype[0] = x->retry_after[0] = x->errmsg[0] = '\0';
    x->head = head;
    x->head_cap = cap;
    x->h1 = h1;
    return x;
}

static void release(h1_xfer_t *x)
{
    struct gw_h1 *h1 = x->h1;
    if (h2o_timeout_is_linked(&x->deadline))
        h2o_timeout_unlink(&x->deadline);
    if (x->held != NULL)
        h2o_buffer_dispose(&x->held);
    if (h1->n_free < H1_MAX_FREE) {
        h1->free[h1->n_free++] = x;
        return;
    }
    free(x->head);
    free(x);
}

/* The transfer is over on our side (x->client already dealt with): on_done at the safe point. */
__attribute__((format(printf, 3, 4))) static void finish(h1_xfer_t *x, CURLcode rc, const char *fmt, ...)
{
    x->state = H1_DONE;
    x->rc = rc;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->errmsg, sizeof(x->errmsg), fmt, ap);
        va_end(ap);
    } else {
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", curl_easy_strerror(rc));
    }
    if (h2o_timeout_is_linked(&x->deadline))
        h2o_timeout_unlink(&x->deadline);
    if (x->held != NULL)
        h2o_buffer_dispose(&x->held);
    h2o_linklist_insert(&x->h1->done, &x->done_link);
    schedule_safe(x->h1);
}

int gw_h1_run_done(gw_upstream_t *up)
{
    struct gw_h1 *h1 = up->h1;
    int any = 0;
    while (!h2o_linklist_is_empty(&h1->done)) {
        h1_xfer_t *x = H2O_STRUCT_FROM_MEMBER(h1_xfer_t, done_link, h1->done.next);
        h2o_linklist_unlink(&x->done_link);
        gw_xfer_cbs_t cbs = x->base.cbs;
        void *ud = x->base.ud;
        CURLcode rc = x->rc;
        char errmsg[CURL_ERROR_SIZE];
        memcpy(errmsg, x->errmsg, sizeof(errmsg));
        up->running--;
        release(x);
        cbs.on_done(ud, rc, errmsg);
        any = 1;
    }
    return any;
}

/* Drops the client whatever it is doing; the connection is closed, never pooled. */
static void drop_client(h1_xfer_t *x)
{
    if (x->client == NULL)
        return;
    if (x->state == H1_CONNECTING && x->pool->named)
        x->h1->named_cancels++; /* its lookup may still answer after we are gone: see destroy */
    h2o_http1client_cancel(x->client);
    x->client = NULL;
}

/* ---- error mapping ------------------------------------------------------------------------ */

static int is_io_error(const char *errstr)
{
    return strncmp(errstr, "I/O error", 9) == 0;
}

static void fail_connect(h1_xfer_t *x, const char *errstr)
{
    /* socketpool.c and http1client.c report a failed connect with these words; anything else
     * from a pool that resolves names is the resolver's (gai_strerror) */
    static const char *const connect_errors[] = {"connection failed", "failed to connect to host",
                                                 "socket create error", "connection timeout"};
    int is_connect = !x->pool->named;
    for (size_t i = 0; i < sizeof(connect_errors) / sizeof(connect_errors[0]) && !is_connect; i++)
        is_connect = strcmp(errstr, connect_errors[i]) == 0;
    const h1_pool_t *p = x->pool;
    if (is_connect)
        finish(x, CURLE_COULDNT_CONNECT, "Failed to connect to %.*s: %s", (int)p->origin_len, p->origin,
               errstr);
    else
        finish(x, CURLE_COULDNT_RESOLVE_HOST, "Could not resolve host: %.*s (%s)", (int)p->sp.peer.host.len,
               p->sp.peer.host.base, errstr);
}

static void fail_head(h1_xfer_t *x, const char *errstr, int got_bytes)
{
    if (strcmp(errstr, "I/O timeout") == 0)
        finish(x, CURLE_OPERATION_TIMEDOUT, "upstream I/O timeout");
    else if (strcmp(errstr, "I/O error (send request)") == 0)
        finish(x, CURLE_SEND_ERROR, "Failure when sending data to the peer");
    else if (is_io_error(errstr) && !got_bytes)
        finish(x, CURLE_GOT_NOTHING, "Empty reply from server");
    else if (is_io_error(errstr))
        finish(x, CURLE_RECV_ERROR, "Connection closed in the middle of the response headers");
    else
        finish(x, CURLE_WEIRD_SERVER_REPLY, "Invalid response from server: %s", errstr);
}

static void fail_body(h1_xfer_t *x, const char *errstr)
{
    if (strcmp(errstr, "I/O timeout") == 0)
        finish(x, CURLE_OPERATION_TIMEDOUT, "upstream I/O timeout");
    else if (is_io_error(errstr))
        finish(x, CURLE_PARTIAL_FILE,
               "transfer closed with outstanding read data remaining (%zu bytes received)", x->received);
    else
        finish(x, CURLE_RECV_ERROR, "Invalid response body from server: %s", errstr);
}

static void on_deadline(h2o_timeout_entry_t *entry)
{
    h1_xfer_t *x = H2O_STRUCT_FROM_MEMBER(h1_xfer_t, deadline, entry);
    gw_upstream_t *up = x->base.up;
    int connecting = x->state == H1_CONNECTING;
    drop_client(x);
    if (connecting)
        finish(x, CURLE_OPERATION_TIMEDOUT, "Connection to %.*s timed out after %llu milliseconds",
               (int)x->pool->origin_len, x->pool->origin,
               (unsigned long long)(h2o_now(x->h1->loop) - x->started_at));
    else
        finish(x, CURLE_OPERATION_TIMEDOUT,
               "Operation timed out after %llu milliseconds with %zu bytes received",
               (unsigned long long)x->timeout_ms, x->received);
    gw_upstream_after_action(up); /* a timer callback is a safe point */
}

/* ---- the client's callbacks --------------------------------------------------------------- */

static void start_connect(h1_xfer_t *x)
{
    struct gw_h1 *h1 = x->h1;
    uint64_t at = h2o_now(h1->loop) + x->connect_ms; /* a retry gets its own connect time… */
    if (x->timeout_ms > 0 && x->started_at + x->timeout_ms < at)
        at = x->started_at + x->timeout_ms; /* …within the whole transfer's */
    x->state = H1_CONNECTING;
    x->attempts++;
    x->deadline.cb = on_deadline;
    if (h2o_timeout_is_linked(&x->deadline))
        h2o_timeout_unlink(&x->deadline);
    link_deadline(h1->loop, &h1->connect_list, &x->deadline, at);
    x->in_connect = 1;
    h2o_http1client_connect_with_pool(&x->client, x, &h1->ctx, &x->pool->sp, on_connect);
    x->in_connect = 0;
}

static void copy_value(char *dst, size_t cap, h2o_iovec_t v)
{
    size_t n = v.len < cap - 1 ? v.len : cap - 1;
    memcpy(dst, v.base, n);
    dst[n] = '\0';
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    h1_xfer_t *x = client->data;
    int eos = errstr == h2o_http1client_error_is_eos;
    if (errstr != NULL && !eos) {
        x->client = NULL;
        fail_body(x, errstr);
        return -1;
    }
    if (eos && x->chunked && client->sock->bytes_read == 0) {
        /* h2o takes a close after a whole chunk for the end; without the last chunk it is not */
        x->client = NULL;
        finish(x, CURLE_PARTIAL_FILE,
               "transfer closed with outstanding read data remaining (%zu bytes received)", x->received);
        return -1;
    }
    size_t n = client->sock->input->size;
    if (n > 0) {
        x->in_cb = 1;
        size_t r = x->base.cbs.on_data(x->base.ud, client->sock->input->bytes, n);
        x->in_cb = 0;
        schedule_safe(x->h1); /* on_data may have deferred work */
        if (x->cancelled) {
            x->client = NULL;
            release(x);
            return -1;
        }
        if (r == CURL_WRITEFUNC_PAUSE) {
            x->paused = 1;
            if (eos) { /* the client pools the socket when we return: keep the bytes */
                x->held = client->sock->input;
                h2o_buffer_init(&client->sock->input, &h2o_socket_buffer_prototype);
                x->client = NULL;
            } else {
                x->reader = client->sock->_cb.read;
                h2o_socket_read_stop(client->sock);
            }
            return 0;
        }
        if (r != n) {
            x->client = NULL;
            finish(x, CURLE_WRITE_ERROR, "Failure writing output to destination");
            return -1;
        }
        x->received += n;
        h2o_buffer_consume(&client->sock->input, n);
    }
    if (eos) {
        x->client = NULL;
        finish(x, CURLE_OK, NULL);
    }
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers,
                                       int rlen)
{
    h1_xfer_t *x = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        int got_bytes = client->sock != NULL && client->sock->input->size > 0;
        x->client = NULL; /* this client closes when we return */
        if (x->reused && !got_bytes && is_io_error(errstr) && x->attempts < H1_MAX_ATTEMPTS)
            start_connect(x); /* the pooled connection was dead: once more */
        else
            fail_head(x, errstr, got_bytes);
        return NULL;
    }
    x->status = status;
    for (size_t i = 0; i < num_headers; i++) {
        const h2o_iovec_t *name = headers[i].name;
        if (name == &H2O_TOKEN_CONTENT_TYPE->buf)
            copy_value(x->ctype, sizeof(x->ctype), headers[i].value);
        else if (name == &H2O_TOKEN_RETRY_AFTER->buf)
            copy_value(x->retry_after, sizeof(x->retry_after), headers[i].value);
        else if (name == &H2O_TOKEN_TRANSFER_ENCODING->buf)
            x->chunked = h2o_memis(headers[i].value.base, headers[i].value.len, H2O_STRLIT("chunked"));
    }
    x->state = H1_BODY;
    if (x->base.cbs.on_headers != NULL) {
        x->in_cb = 1;
        x->base.cbs.on_headers(x->base.ud, status, x->ctype[0] ? x->ctype : NULL,
                               x->retry_after[0] ? x->retry_after : NULL);
        x->in_cb = 0;
        schedule_safe(x->h1);
        if (x->cancelled) {
            x->client = NULL;
            release(x);
            return NULL;
        }
    }
    if (errstr == h2o_http1client_error_is_eos) { /* no body (204, 304) */
        x->client = NULL;
        finish(x, CURLE_OK, NULL);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt, int *method_is_head)
{
    h1_xfer_t *x = client->data;
    if (errstr != NULL) {
        x->client = NULL; /* the client frees itself when we return */
        fail_connect(x, errstr);
        return NULL;
    }
    struct gw_h1 *h1 = x->h1;
    x->reused = x->in_connect;
    x->state = H1_WAITING;
    h2o_timeout_unlink(&x->deadline);
    if (x->timeout_ms > 0)
        link_deadline(h1->loop, &h1->total_list, &x->deadline, x->started_at + x->timeout_ms);
    *reqbufs = x->req;
    *reqbufcnt = x->n_req;
    *method_is_head = 0;
    return on_head;
}

/* ---- request head ------------------------------------------------------------------------- */

/*
 * Converts curl header lines to HTTP/1.1 fields with curl's rules (Curl_add_custom_headers):
 * "Name: value" as written; "Name:" with nothing after it sends nothing (it only removes a header
 * curl would add itself, and we add none but Host and Content-Length); "Name;" sends "Name:";
 * Content-Length is skipped (we compute it); a Host line replaces ours. Writes into dst when not
 * NULL. Returns the length, or SIZE_MAX when a line holds CR or LF.
 */
static size_t convert_headers(const struct curl_slist *l, char *dst, int *has_host)
{
    size_t n = 0;
    *has_host = 0;
    for (; l != NULL; l = l->next) {
        const char *line = l->data, *end = line + strlen(line);
        if (strpbrk(line, "\r\n") != NULL)
            return SIZE_MAX;
        const char *sep = strchr(line, ':');
        int semicolon = 0;
        if (sep == NULL && (sep = strchr(line, ';')) != NULL)
            semicolon = 1;
        if (sep == NULL || sep == line)
            continue;
        const char *v = sep + 1;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        size_t name_len = (size_t)(sep - line), len = (size_t)(end - line);
        if (semicolon ? v != end : v == end)
            continue;
        if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0)
            continue;
        if (name_len == 4 && strncasecmp(line, "Host", 4) == 0)
            *has_host = 1;
        if (semicolon)
            len = name_len + 1;
        if (dst != NULL) {
            memcpy(dst + n, line, len);
            if (semicolon)
                dst[n + name_len] = ':';
            memcpy(dst + n + len, "\r\n", 2);
        }
        n += len + 2;
    }
    return n;
}

int gw_upstream_headers_build(gw_h1_headers_t *out, const struct curl_slist *headers)
{
    int has_host;
    *out = (gw_h1_headers_t){0};
    size_t n = convert_headers(headers, NULL, &has_host);
    if (n == SIZE_MAX)
        return 0; /* valid = 0: curl carries these */
    if (n > 0) {
        if ((out->block = malloc(n)) == NULL)
            return -1;
        convert_headers(headers, out->block, &has_host);
    }
    out->len = n;
    out->has_host = has_host != 0;
    out->valid = 1;
    return 0;
}

void gw_upstream_headers_free(gw_h1_headers_t *h)
{
    free(h->block);
    *h = (gw_h1_headers_t){0};
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Writes the request head into x->head. Returns -1 when only curl can send these headers. */
static int build_head(h1_xfer_t *x, const gw_xfer_opts_t *o, const h1_url_t *u)
{
    int has_host;
    size_t hlen;
    if (o->h1_headers != NULL) {
        if (!o->h1_headers->valid)
            return -1;
        hlen = o->h1_headers->len;
        has_host = o->h1_headers->has_host;
    } else if ((hlen = convert_headers(o->headers, NULL, &has_host)) == SIZE_MAX) {
        return -1;
    }
    int with_length = strcmp(o->method, "GET") != 0 || o->body_len > 0;
    size_t method_len = strlen(o->method);
    size_t need = method_len + u->path.len + u->authority.len + hlen + 96; /* fixed parts: < 96 */
    if (need > H1_MAX_HEAD)
        return -1;
    if (need > x->head_cap) {
        char *h = realloc(x->head, need);
        if (h == NULL)
            return -1;
        x->head = h;
        x->head_cap = need;
    }
    char *p = put(x->head, o->method, method_len);
    *p++ = ' ';
    if (u->path.len == 0 || u->path.base[0] != '/')
        *p++ = '/';
    p = put(p, u->path.base, u->path.len);
    p = put(p, H2O_STRLIT(" HTTP/1.1\r\n"));
    if (!has_host) {
        p = put(p, H2O_STRLIT("Host: "));
        p = put(p, u->authority.base, u->authority.len);
        p = put(p, H2O_STRLIT("\r\n"));
    }
    if (with_length) {
        p = put(p, H2O_STRLIT("Content-Length: "));
        p = put_u64(p, o->body_len);
        p = put(p, H2O_STRLIT("\r\n"));
    }
    if (o->h1_headers != NULL)
        p = put(p, o->h1_headers->block, hlen);
    else
        p += convert_headers(o->headers, p, &has_host);
    p = put(p, H2O_STRLIT("\r\n"));
    x->req[0] = h2o_iovec_init(x->head, (size_t)(p - x->head));
    x->n_req = 1;
    if (o->body_len > 0)
        x->req[x->n_req++] = h2o_iovec_init(o->body, o->body_len);
    return 0;
}

/* "http://authority/path?query#fragment" → parts. -1 for what curl should handle (userinfo,
 * a host h2o cannot parse, spaces or control bytes). */
static int split_url(const char *url, h1_url_t *u)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    const char *a = url + 7, *a_end = a + strcspn(a, "/?#");
    if (a_end == a || memchr(a, '@', (size_t)(a_end - a)) != NULL)
        return -1;
    u->authority = h2o_iovec_init(a, (size_t)(a_end - a));
    if (h2o_url_parse_hostport(a, u->authority.len, &u->host, &u->port) != a_end)
        return -1;
    if (u->port == 65535) /* h2o's "no port" */
        u->port = 80;
    const char *p_end = a_end + strcspn(a_end, "#");
    for (const char *c = a_end; c < p_end; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return -1;
    u->path = h2o_iovec_init(a_end, (size_t)(p_end - a_end));
    return 0;
}

/* ---- pools -------------------------------------------------------------------------------- */

/* An address literal or localhost → *sa. Returns 0 when the host is a name to resolve. */
static int literal_address(h2o_iovec_t host, uint16_t port, struct sockaddr_storage *sa, socklen_t *len)
{
    char name[64];
    if (host.len >= sizeof(name))
        return 0;
    memcpy(name, host.base, host.len);
    name[host.len] = '\0';
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
    memset(sa, 0, sizeof(*sa));
    if (strcasecmp(name, "localhost") == 0 || inet_pton(AF_INET, name, &sin->sin_addr) == 1) {
        if (sin->sin_addr.s_addr == 0)
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        *len = sizeof(*sin);
        return 1;
    }
    if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 1;
    }
    return 0;
}

static h1_pool_t *pool_for(struct gw_h1 *h1, const h1_url_t *u)
{
    for (size_t i = 0; i < h1->n_pools; i++) {
        h1_pool_t *p = h1->pools[i];
        if (p->origin_len == u->authority.len &&
            strncasecmp(p->origin, u->authority.base, p->origin_len) == 0)
            return p;
    }
    if (h1->n_pools == H1_MAX_POOLS)
        return NULL;
    h1_pool_t *p = calloc(1, sizeof(*p) + u->authority.len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->origin, u->authority.base, u->authority.len);
    p->origin_len = u->authority.len;
    struct sockaddr_storage sa;
    socklen_t salen;
    if (literal_address(u->host, u->port, &sa, &salen)) {
        h2o_socketpool_init_by_address(&p->sp, (struct sockaddr *)&sa, salen, 0, SIZE_MAX);
    } else {
        h2o_socketpool_init_by_hostport(&p->sp, u->host, u->port, 0, SIZE_MAX);
        p->named = 1;
    }
    h2o_socketpool_set_timeout(&p->sp, h1->loop, H1_IDLE_MS); /* 2.2.5's pool needs its loop */
    h1->pools[h1->n_pools++] = p;
    return p;
}

static struct gw_h1 *h1_create(gw_upstream_t *up)
{
    struct gw_h1 *h1 = calloc(1, sizeof(*h1));
    if (h1 == NULL)
        return NULL;
    h1->up = up;
    h1->loop = up->loop;
    h1->queue = h2o_multithread_create_queue(up->loop);
    h2o_multithread_register_receiver(h1->queue, &h1->getaddr, h2o_hostinfo_getaddr_receiver);
    h2o_timeout_init(up->loop, &h1->io_timeout, H1_IO_TIMEOUT_MS);
    h2o_timeout_init(up->loop, &h1->safe_list, 0);
    h2o_timeout_init(up->loop, &h1->connect_list, 0);
    h2o_timeout_init(up->loop, &h1->total_list, 0);
    h1->safe.cb = on_safe;
    h2o_linklist_init_anchor(&h1->done);
    h1->ctx.loop = up->loop;
    h1->ctx.getaddr_receiver = &h1->getaddr;
    h1->ctx.io_timeout = &h1->io_timeout;
    return h1;
}

/* ---- entry points ------------------------------------------------------------------------- */

gw_xfer_t *gw_h1_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs, void *ud,
                       int *unsupported)
{
    h1_url_t u;
    if (split_url(o->url, &u) != 0) {
        *unsupported = 1;
        return NULL;
    }
    if (up->h1 == NULL && (up->h1 = h1_create(up)) == NULL)
        return NULL;
    struct gw_h1 *h1 = up->h1;
    h1_pool_t *pool = pool_for(h1, &u);
    h1_xfer_t *x = pool != NULL ? acquire(h1) : NULL;
    if (x == NULL || build_head(x, o, &u) != 0) {
        if (x != NULL)
            release(x);
        *unsupported = 1; /* curl can still carry it */
        return NULL;
    }
    x->base.up = up;
    x->base.cbs = *cbs;
    x->base.ud = ud;
    x->base.is_h1 = 1;
    x->pool = pool;
    x->started_at = h2o_now(h1->loop);
    x->timeout_ms = o->timeout_ms > 0 ? (uint64_t)o->timeout_ms : 0;
    x->connect_ms = o->connect_timeout_ms > 0 ? (uint64_t)o->connect_timeout_ms : H1_DEFAULT_CONNECT_MS;
    up->running++;
    start_connect(x); /* a pooled connection sends the request right away */
    return &x->base;
}

void gw_h1_cancel(gw_xfer_t *base)
{
    h1_xfer_t *x = (h1_xfer_t *)base;
    base->up->running--;
    if (x->in_cb) { /* inside on_headers/on_data: the client callback closes and releases it */
        x->cancelled = 1;
        return;
    }
    if (x->state == H1_DONE)
        h2o_linklist_unlink(&x->done_link);
    drop_client(x);
    release(x);
}

void gw_h1_resume(gw_xfer_t *base)
{
    h1_xfer_t *x = (h1_xfer_t *)base;
    if (!x->paused || x->in_cb || x->state == H1_DONE)
        return;
    x->paused = 0;
    h2o_buffer_t **in = x->held != NULL ? &x->held : &x->client->sock->input;
    size_t n = (*in)->size;
    if (n > 0) {
        size_t r = base->cbs.on_data(base->ud, (*in)->bytes, n);
        if (r == CURL_WRITEFUNC_PAUSE) {
            x->paused = 1;
            gw_upstream_after_action(base->up);
            return;
        }
        if (r != n) {
            drop_client(x);
            finish(x, CURLE_WRITE_ERROR, "Failure writing output to destination");
            gw_upstream_after_action(base->up);
            return;
        }
        x->received += n;
        h2o_buffer_consume(in, n);
    }
    if (x->held != NULL)
        finish(x, CURLE_OK, NULL); /* the response had ended: its connection is already pooled */
    else
        h2o_socket_read_start(x->client->sock, x->reader);
    gw_upstream_after_action(base->up);
}

/* Resolver answers for lookups that a cancelled transfer started may still arrive after the
 * upstream is gone; their receiver must outlive it, so such an h1 state is parked, not freed. */
static struct gw_h1 *parked;

void gw_h1_destroy(gw_upstream_t *up)
{
    struct gw_h1 *h1 = up->h1;
    if (h1 == NULL)
        return;
    up->h1 = NULL;
    if (h2o_timeout_is_linked(&h1->safe))
        h2o_timeout_unlink(&h1->safe);
    for (size_t i = 0; i < h1->n_pools; i++) {
        h2o_socketpool_dispose(&h1->pools[i]->sp); /* closes the idle connections */
        free(h1->pools[i]);
    }
    for (size_t i = 0; i < h1->n_free; i++) {
        free(h1->free[i]->head);
        free(h1->free[i]);
    }
    h2o_timeout_dispose(h1->loop, &h1->io_timeout);
    h2o_timeout_dispose(h1->loop, &h1->safe_list);
    h2o_timeout_dispose(h1->loop, &h1->connect_list);
    h2o_timeout_dispose(h1->loop, &h1->total_list);
    if (h1->named_cancels > 0) {
        h1->next_parked = __atomic_load_n(&parked, __ATOMIC_ACQUIRE);
        while (!__atomic_compare_exchange_n(&parked, &h1->next_parked, h1, 1, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
            ;
        return;
    }
    h2o_multithread_unregister_receiver(h1->queue, &h1->getaddr);
    h2o_multithread_destroy_queue(h1->queue);
    free(h1->queue);
    free(h1);
}

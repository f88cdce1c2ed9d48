/*
 * test_upstream_h1.c — the HTTP/1.1 upstream transport (gateway/upstream_h1.c) against a real
 * HTTP server: an h2o event loop runs in the test, a tiny scripted server answers on loopback
 * from other threads (one per connection) and counts connections, requests and closes.
 *
 * Covered: content-length and chunked bodies, status and header parsing, 1xx skipped,
 * keep-alive reuse and its limits (Connection: close, a server that drops a pooled connection),
 * the request head and body as sent, curl's header-list rules, pause/resume delivering every byte
 * once and in order (also when the response ended in the paused read), refusal of a body,
 * cancellation while connecting, waiting and mid-body, truncated bodies, connect refused,
 * unresolvable names, the whole-transfer timeout, and the "curl" switch.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/upstream.h"

/* ---- the scripted server -------------------------------------------------------------------- */

#define BIG_LEN (2u << 20)

typedef struct srv {
    int lfd;
    uint16_t port;
    pthread_t tid;
    int stop;
    int accepts;  /* connections accepted */
    int requests; /* requests read */
    int closes;   /* connections the client closed while the server waited on them */
    int live;     /* connection threads running */
    pthread_mutex_t mu;
    char last_head[8192];
    char last_body[256];
    size_t last_body_len;
} srv_t;

typedef struct conn {
    srv_t *s;
    int fd;
} conn_t;

static void bump(int *counter)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
}

static int get(const int *counter)
{
    return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

/* Waits (up to 5 s) until the client closes the connection; counts it. */
static void wait_close(conn_t *c)
{
    char buf[4096];
    for (int i = 0; i < 500 && !get(&c->s->stop); i++) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 10) > 0) {
            ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                bump(&c->s->closes);
                return;
            }
        }
    }
}

static void send_big(int fd, int chunked)
{
    char *b = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        b[i] = (char)('a' + i % 23);
    char h[256];
    if (chunked)
        snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    else
        snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n", BIG_LEN);
    send_str(fd, h);
    for (size_t off = 0; off < BIG_LEN; off += 65536) {
        size_t n = BIG_LEN - off < 65536 ? BIG_LEN - off : 65536;
        if (chunked) {
            snprintf(h, sizeof(h), "%zx\r\n", n);
            send_str(fd, h);
        }
        if (send_all(fd, b + off, n) != 0)
            break;
        if (chunked)
            send_str(fd, "\r\n");
        if (off % (8 * 65536) == 0)
            pause_ms(2); /* several reads on the client side */
    }
    if (chunked)
        send_str(fd, "0\r\n\r\n");
    free(b);
}

static const char JSON_BODY[] = "{\"ok\":true}";

static void send_cl(int fd)
{
    char h[256];
    snprintf(h, sizeof(h),
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(JSON_BODY), JSON_BODY);
    send_str(fd, h);
}

/* Answers one request; returns 0 to keep the connection, -1 to close it. */
static int answer(conn_t *c, const char *path, int nth)
{
    int fd = c->fd;
    if (strcmp(path, "/cl") == 0 || strncmp(path, "/echo", 5) == 0) {
        send_cl(fd);
    } else if (strcmp(path, "/chunked") == 0) {
        send_str(fd,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nalpha\r\n");
        pause_ms(10);
        send_str(fd, "4\r\nbeta\r\n");
        pause_ms(10);
        send_str(fd, "5\r\ngamma\r\n0\r\nX-Trailer: 1\r\n\r\n");
    } else if (strcmp(path, "/status") == 0) {
        send_str(fd, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/problem+json\r\n"
                     "Retry-After: 7\r\nContent-Length: 9\r\n\r\nslow down");
    } else if (strcmp(path, "/1xx") == 0) {
        send_str(fd, "HTTP/1.1 100 Continue\r\n\r\n");
        pause_ms(5);
        send_cl(fd);
    } else if (strcmp(path, "/nocontent") == 0) {
        send_str(fd, "HTTP/1.1 204 No Content\r\n\r\n");
    } else if (strcmp(path, "/big") == 0 || strcmp(path, "/bigchunked") == 0) {
        send_big(fd, strcmp(path, "/bigchunked") == 0);
    } else if (strcmp(path, "/hang") == 0) {
        wait_close(c);
        return -1;
    } else if (strcmp(path, "/hangbody") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
        wait_close(c);
        return -1;
    } else if (strcmp(path, "/truncate") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
        return -1;
    } else if (strcmp(path, "/truncchunk") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nalpha\r\n");
        pause_ms(20);
        return -1;
    } else if (strcmp(path, "/close") == 0) {
        send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        return -1;
    } else if (strcmp(path, "/idle-close") == 0) { /* keep-alive answer, then the server leaves */
        send_cl(fd);
        pause_ms(20);
        return -1;
    } else if (strcmp(path, "/drop-reused") == 0) { /* a pooled connection dies as it is reused */
        if (nth > 0)
            return -1;
        send_cl(fd);
    } else {
        send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    return 0;
}

/* recv that gives up when the server stops */
static ssize_t recv_some(conn_t *c, char *buf, size_t n)
{
    while (!get(&c->s->stop)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 20) > 0)
            return n > 0 ? recv(c->fd, buf, n, 0) : -1;
    }
    return -1;
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    char buf[16384];
    size_t have = 0;
    for (int nth = 0;; nth++) {
        char *end;
        while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
            ssize_t r = recv_some(c, buf + have, sizeof(buf) - have);
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        size_t head_len = (size_t)(end - buf) + 4, body_len = 0;
        for (char *p = buf; p < end; p++)
            if ((p == buf || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0)
                body_len = strtoul(p + 15, NULL, 10);
        while (have < head_len + body_len && have < sizeof(buf)) {
            ssize_t r = recv_some(c, buf + have, sizeof(buf) - have);
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        pthread_mutex_lock(&c->s->mu);
        snprintf(c->s->last_head, sizeof(c->s->last_head), "%.*s", (int)head_len, buf);
        c->s->last_body_len = body_len < sizeof(c->s->last_body) ? body_len : sizeof(c->s->last_body);
        memcpy(c->s->last_body, buf + head_len, c->s->last_body_len);
        pthread_mutex_unlock(&c->s->mu);
        bump(&c->s->requests);
        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        char *q = strchr(path, '?');
        if (q != NULL && strncmp(path, "/echo", 5) != 0)
            *q = '\0';
        memmove(buf, buf + head_len + body_len, have - head_len - body_len);
        have -= head_len + body_len;
        if (answer(c, path, nth) != 0)
            break;
    }
out:
    close(c->fd);
    __atomic_sub_fetch(&c->s->live, 1, __ATOMIC_SEQ_CST);
    free(c);
    return NULL;
}

static void *srv_main(void *arg)
{
    srv_t *s = arg;
    while (!get(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        bump(&s->accepts);
        bump(&s->live);
        conn_t *c = calloc(1, sizeof(*c));
        c->s = s;
        c->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, conn_main, c);
        pthread_detach(t);
    }
    return NULL;
}

static srv_t *srv_start(int any_addr)
{
    srv_t *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(any_addr ? INADDR_ANY : INADDR_LOOPBACK);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(s->lfd, 64), 0);
    socklen_t len = sizeof(sin);
    getsockname(s->lfd, (struct sockaddr *)&sin, &len);
    s->port = ntohs(sin.sin_port);
    pthread_create(&s->tid, NULL, srv_main, s);
    return s;
}

static void srv_stop(srv_t *s)
{
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(s->tid, NULL);
    close(s->lfd);
    for (int i = 0; i < 500 && get(&s->live) > 0; i++) /* they notice `stop` within 20 ms */
        pause_ms(10);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- the client side ------------------------------------------------------------------------ */

typedef struct res {
    gw_xfer_t *x;
    h2o_evloop_t *loop;
    int headers_calls, done_calls, late_calls;
    int status;
    char ctype[128], retry_after[64];
    char *body;
    size_t len;
    CURLcode rc;
    char errmsg[CURL_ERROR_SIZE];
    /* behaviour */
    int pause_every;  /* pause every Nth fresh delivery (0 = never) */
    int refuse;       /* return 0 from on_data */
    int stop_on_data; /* remember that data came (the test then cancels) */
    /* pause bookkeeping */
    int paused;
    int deliveries, pauses, offers_while_paused, reoffer_mismatch;
    char *offered;
    size_t offered_len;
    h2o_timeout_t resume_list;
    h2o_timeout_entry_t resume_entry;
} res_t;

static void on_headers(void *ud, int status, const char *ct, const char *ra)
{
    res_t *r = ud;
    if (r->done_calls)
        r->late_calls++;
    r->headers_calls++;
    r->status = status;
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    snprintf(r->retry_after, sizeof(r->retry_after), "%s", ra ? ra : "");
}

static void on_resume(h2o_timeout_entry_t *e)
{
    res_t *r = H2O_STRUCT_FROM_MEMBER(res_t, resume_entry, e);
    gw_upstream_resume(r->x);
}

static size_t on_data(void *ud, const char *p, size_t n)
{
    res_t *r = ud;
    if (r->done_calls)
        r->late_calls++;
    if (r->refuse)
        return 0;
    if (r->paused) {
        /* the same bytes again, after gw_upstream_resume */
        if (h2o_timeout_is_linked(&r->resume_entry)) /* before gw_upstream_resume was called */
            r->offers_while_paused++;
        if (n != r->offered_len || memcmp(p, r->offered, n) != 0)
            r->reoffer_mismatch++;
        r->paused = 0;
    } else if (r->pause_every > 0 && ++r->deliveries % r->pause_every == 0) {
        r->paused = 1;
        r->pauses++;
        r->offered = realloc(r->offered, n);
        memcpy(r->offered, p, n);
        r->offered_len = n;
        h2o_timeout_link(r->loop, &r->resume_list, &r->resume_entry);
        return CURL_WRITEFUNC_PAUSE;
    }
    r->body = realloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void on_done(void *ud, CURLcode rc, const char *errmsg)
{
    res_t *r = ud;
    r->done_calls++;
    r->rc = rc;
    r->x = NULL;
    snprintf(r->errmsg, sizeof(r->errmsg), "%s", errmsg ? errmsg : "");
}

static const gw_xfer_cbs_t CBS = {on_headers, on_data, on_done};

static h2o_evloop_t *loop;
static gw_upstream_t *up;
static srv_t *srv;

static void setup(void)
{
    loop = h2o_evloop_create();
    up = gw_upstream_create(loop);
    srv = srv_start(0);
}

static void teardown(void)
{
    gw_upstream_destroy(up);
    srv_stop(srv);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until *flag is set or ms pass. */
static void run_until(const int *flag, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while ((flag == NULL || !*flag) && now_ms() < end)
        h2o_evloop_run(loop, 10);
}

static void wait_for(const int *counter, int at_least, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    while (get(counter) < at_least && now_ms() < end)
        h2o_evloop_run(loop, 10);
}

static res_t *res_new(void)
{
    res_t *r = calloc(1, sizeof(*r));
    r->loop = loop;
    h2o_timeout_init(loop, &r->resume_list, 2);
    r->resume_entry.cb = on_resume;
    return r;
}

static void res_free(res_t *r)
{
    if (h2o_timeout_is_linked(&r->resume_entry))
        h2o_timeout_unlink(&r->resume_entry);
    h2o_timeout_dispose(loop, &r->resume_list);
    free(r->body);
    free(r->offered);
    free(r);
}

static void start_opts(res_t *r, const gw_xfer_opts_t *o)
{
    r->x = gw_upstream_start(up, o, &CBS, r);
    cr_assert_not_null(r->x, "start refused %s", o->url);
}

static void start_url(res_t *r, const char *url, struct curl_slist *headers, long timeout_ms)
{
    gw_xfer_opts_t o = {.method = "POST",
                        .url = url,
                        .headers = headers,
                        .body = "{}",
                        .body_len = 2,
                        .timeout_ms = timeout_ms,
                        .connect_timeout_ms = 2000};
    start_opts(r, &o);
}

static void start_path(res_t *r, const char *path)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", srv->port, path);
    start_url(r, url, NULL, 5000);
}

/* One request, run to completion. */
static res_t *fetch(const char *path)
{
    res_t *r = res_new();
    start_path(r, path);
    run_until(&r->done_calls, 5000);
    cr_assert_eq(r->done_calls, 1, "%s: no on_done", path);
    return r;
}

TestSuite(upstream_h1, .init = setup, .fini = teardown, .timeout = 30);

/* ---- bodies and heads ----------------------------------------------------------------------- */

Test(upstream_h1, content_length_body_and_headers)
{
    res_t *r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
    cr_expect_eq(r->headers_calls, 1);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(r->ctype, "application/json");
    cr_expect_str_eq(r->retry_after, "");
    cr_expect_str_eq(r->body, JSON_BODY);
    cr_expect_eq(gw_upstream_running(up), 0);
    res_free(r);
}

Test(upstream_h1, chunked_body_with_trailer)
{
    res_t *r = fetch("/chunked");
    cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
    cr_expect_str_eq(r->ctype, "text/event-stream");
    cr_expect_str_eq(r->body, "alphabetagamma");
    res_free(r);
    r = fetch("/cl"); /* the trailer was consumed: the connection is reusable */
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(get(&srv->accepts), 1);
    res_free(r);
}

Test(upstream_h1, error_status_with_retry_after)
{
    res_t *r = fetch("/status");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(r->status, 429);
    cr_expect_str_eq(r->ctype, "application/problem+json");
    cr_expect_str_eq(r->retry_after, "7");
    cr_expect_str_eq(r->body, "slow down");
    res_free(r);
}

Test(upstream_h1, informational_response_is_skipped)
{
    res_t *r = fetch("/1xx");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(r->headers_calls, 1);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(r->body, JSON_BODY);
    res_free(r);
}

Test(upstream_h1, no_content)
{
    res_t *r = fetch("/nocontent");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(r->status, 204);
    cr_expect_eq(r->len, 0);
    res_free(r);
    r = fetch("/cl");
    cr_expect_eq(get(&srv->accepts), 1, "kept alive after a 204");
    res_free(r);
}

Test(upstream_h1, request_head_and_body_as_sent)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, "Accept:");
    h = curl_slist_append(h, "X-Empty;");
    h = curl_slist_append(h, "Content-Length: 999");
    h = curl_slist_append(h, "Authorization: Bearer sk-up");
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/echo?q=1#frag", srv->port);
    static const char body[] = "{\"model\":\"m\"}";
    gw_xfer_opts_t o = {.method = "POST",
                        .url = url,
                        .headers = h,
                        .body = body,
                        .body_len = strlen(body),
                        .timeout_ms = 5000,
                        .connect_timeout_ms = 2000};
    for (int prebuilt = 0; prebuilt < 2; prebuilt++) {
        gw_h1_headers_t hh;
        cr_assert_eq(gw_upstream_headers_build(&hh, h), 0);
        o.h1_headers = prebuilt ? &hh : NULL;
        res_t *r = res_new();
        start_opts(r, &o);
        run_until(&r->done_calls, 5000);
        cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
        char want[512];
        snprintf(want, sizeof(want),
                 "POST /echo?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Length: %zu\r\n"
                 "Content-Type: application/json\r\nX-Empty:\r\nAuthorization: Bearer sk-up\r\n\r\n",
                 srv->port, strlen(body));
        pthread_mutex_lock(&srv->mu);
        cr_expect_str_eq(srv->last_head, want, "prebuilt=%d", prebuilt);
        cr_expect_eq(srv->last_body_len, strlen(body));
        cr_expect_eq(memcmp(srv->last_body, body, strlen(body)), 0);
        pthread_mutex_unlock(&srv->mu);
        res_free(r);
        gw_upstream_headers_free(&hh);
    }
    curl_slist_free_all(h);

    /* GET: no Content-Length; a Host line replaces the URL's */
    h = curl_slist_append(NULL, "Host: example.test");
    o = (gw_xfer_opts_t){.method = "GET", .url = url, .headers = h, .timeout_ms = 5000};
    res_t *r = res_new();
    start_opts(r, &o);
    run_until(&r->done_calls, 5000);
    pthread_mutex_lock(&srv->mu);
    cr_expect_str_eq(srv->last_head, "GET /echo?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n");
    pthread_mutex_unlock(&srv->mu);
    res_free(r);
    curl_slist_free_all(h);
}

Test(upstream_h1, header_list_conversion)
{
    struct curl_slist *h = curl_slist_append(NULL, "A: 1");
    h = curl_slist_append(h, "B:");
    h = curl_slist_append(h, "C;");
    h = curl_slist_append(h, "D; x");
    h = curl_slist_append(h, "no separator");
    h = curl_slist_append(h, "host: h");
    gw_h1_headers_t hh;
    cr_assert_eq(gw_upstream_headers_build(&hh, h), 0);
    cr_expect(hh.valid);
    cr_expect(hh.has_host);
    cr_expect_eq(hh.len, strlen("A: 1\r\nC:\r\nhost: h\r\n"));
    cr_expect_eq(memcmp(hh.block, "A: 1\r\nC:\r\nhost: h\r\n", hh.len), 0);
    gw_upstream_headers_free(&hh);
    curl_slist_free_all(h);

    h = curl_slist_append(NULL, "X: a\r\nInjected: b");
    cr_assert_eq(gw_upstream_headers_build(&hh, h), 0);
    cr_expect(!hh.valid, "a line break inside a header is left to curl");
    gw_upstream_headers_free(&hh);
    curl_slist_free_all(h);

    cr_assert_eq(gw_upstream_headers_build(&hh, NULL), 0);
    cr_expect(hh.valid);
    cr_expect_eq(hh.len, 0);
    gw_upstream_headers_free(&hh);
}

/* ---- keep-alive ----------------------------------------------------------------------------- */

Test(upstream_h1, keep_alive_reuses_the_connection)
{
    for (int i = 0; i < 5; i++) {
        res_t *r = fetch(i % 2 ? "/chunked" : "/cl");
        cr_expect_eq(r->rc, CURLE_OK);
        res_free(r);
    }
    cr_expect_eq(get(&srv->requests), 5);
    cr_expect_eq(get(&srv->accepts), 1, "one connection for five requests");
}

Test(upstream_h1, parallel_transfers_use_parallel_connections_then_reuse_them)
{
    res_t *r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = res_new();
        start_path(r[i], "/chunked");
    }
    for (int i = 0; i < 4; i++) {
        run_until(&r[i]->done_calls, 5000);
        cr_expect_eq(r[i]->rc, CURLE_OK);
        cr_expect_str_eq(r[i]->body, "alphabetagamma");
        res_free(r[i]);
    }
    cr_expect_eq(get(&srv->accepts), 4);
    for (int i = 0; i < 4; i++)
        res_free(fetch("/cl"));
    cr_expect_eq(get(&srv->accepts), 4, "pooled connections reused");
}

Test(upstream_h1, connection_close_is_not_reused)
{
    res_t *r = fetch("/close");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_str_eq(r->body, "ok");
    res_free(r);
    r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(get(&srv->accepts), 2);
    res_free(r);
}

Test(upstream_h1, pooled_connection_closed_by_the_server_while_idle)
{
    res_free(fetch("/idle-close"));
    pause_ms(100);
    res_t *r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
    cr_expect_eq(get(&srv->accepts), 2);
    res_free(r);
}

Test(upstream_h1, request_on_a_reused_connection_that_dies_is_retried_once)
{
    res_free(fetch("/cl"));
    res_t *r = fetch("/drop-reused"); /* the pooled connection closes without an answer */
    cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
    cr_expect_eq(r->status, 200);
    cr_expect_str_eq(r->body, JSON_BODY);
    cr_expect_eq(get(&srv->accepts), 2);
    cr_expect_eq(get(&srv->requests), 3);
    res_free(r);
}

/* ---- backpressure ---------------------------------------------------------------------------- */

static void check_big(const char *path, int pause_every)
{
    res_t *r = res_new();
    r->pause_every = pause_every;
    start_path(r, path);
    run_until(&r->done_calls, 20000);
    cr_assert_eq(r->done_calls, 1);
    cr_expect_eq(r->rc, CURLE_OK, "%s", r->errmsg);
    cr_expect_eq(r->len, BIG_LEN, "%s: %zu bytes", path, r->len);
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < r->len && bad == SIZE_MAX; i++)
        if (r->body[i] != (char)('a' + i % 23))
            bad = i;
    cr_expect_eq(bad, SIZE_MAX, "%s: byte %zu out of order", path, bad);
    cr_expect_geq(r->pauses, 1, "%s: never paused", path);
    if (pause_every == 1)
        cr_expect_eq(r->pauses, r->deliveries, "%s: every fresh delivery is refused once", path);
    cr_expect_eq(r->reoffer_mismatch, 0, "resume must offer the very bytes that were refused");
    cr_expect_eq(r->offers_while_paused, 0, "bytes offered while paused");
    cr_expect_eq(r->late_calls, 0);
    res_free(r);
}

Test(upstream_h1, pause_and_resume_deliver_every_byte_once_in_order)
{
    check_big("/big", 2);
    check_big("/bigchunked", 2);
    check_big("/bigchunked", 1); /* every delivery refused once */
    res_t *r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(get(&srv->accepts), 1, "the connection survived the pauses and was reused");
    res_free(r);
}

Test(upstream_h1, pause_on_the_last_read_of_a_response)
{
    res_t *r = res_new();
    r->pause_every = 1;
    start_path(r, "/cl"); /* the whole body arrives in the read that completes the response */
    run_until(&r->done_calls, 5000);
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(r->pauses, 1);
    cr_expect_eq(r->reoffer_mismatch, 0);
    cr_expect_str_eq(r->body, JSON_BODY);
    res_free(r);
    r = fetch("/cl");
    cr_expect_eq(get(&srv->accepts), 1, "a response complete before the pause still pools its connection");
    res_free(r);
}

Test(upstream_h1, refused_body_aborts_and_closes)
{
    res_t *r = res_new();
    r->refuse = 1;
    start_path(r, "/big");
    run_until(&r->done_calls, 5000);
    cr_expect_eq(r->rc, CURLE_WRITE_ERROR);
    res_free(r);
    wait_for(&srv->accepts, 1, 100);
    r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(get(&srv->accepts), 2, "an aborted response's connection is not reused");
    res_free(r);
}

/* ---- cancellation ---------------------------------------------------------------------------- */

static void expect_silence(res_t *r, int ms)
{
    int calls = r->headers_calls + r->done_calls;
    size_t len = r->len;
    run_until(NULL, ms);
    cr_expect_eq(r->headers_calls + r->done_calls, calls, "a callback fired after cancel");
    cr_expect_eq(r->len, len, "data arrived after cancel");
    cr_expect_eq(gw_upstream_running(up), 0);
}

Test(upstream_h1, cancel_mid_body_closes_the_connection)
{
    res_t *r = res_new();
    start_path(r, "/hangbody");
    while (r->len == 0 && !r->done_calls)
        h2o_evloop_run(loop, 10);
    cr_assert_str_eq(r->body, "0123456789");
    gw_upstream_cancel(r->x);
    expect_silence(r, 50);
    wait_for(&srv->closes, 1, 2000);
    cr_expect_eq(get(&srv->closes), 1, "the server saw the connection close");
    res_free(r);
    r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_eq(get(&srv->accepts), 2);
    res_free(r);
}

Test(upstream_h1, cancel_while_waiting_for_the_head)
{
    res_free(fetch("/cl")); /* warm: the next request goes out at once on the pooled connection */
    res_t *r = res_new();
    start_path(r, "/hang");
    wait_for(&srv->requests, 2, 2000);
    gw_upstream_cancel(r->x);
    expect_silence(r, 50);
    wait_for(&srv->closes, 1, 2000);
    cr_expect_eq(get(&srv->closes), 1);
    res_free(r);
}

Test(upstream_h1, cancel_while_connecting_and_at_once_after_start)
{
    res_t *r = res_new();
    start_path(r, "/cl"); /* empty pool: a connect is in flight */
    gw_upstream_cancel(r->x);
    expect_silence(r, 100);
    res_free(r);
    res_free(fetch("/cl"));
    r = res_new();
    start_path(r, "/hang"); /* warm pool: the request was written inside start */
    gw_upstream_cancel(r->x);
    expect_silence(r, 100);
    res_free(r);
    r = fetch("/cl");
    cr_expect_eq(r->rc, CURLE_OK);
    res_free(r);
}

/* ---- failures ------------------------------------------------------------------------------- */

Test(upstream_h1, truncated_bodies)
{
    res_t *r = fetch("/truncate");
    cr_expect_eq(r->rc, CURLE_PARTIAL_FILE, "%d %s", r->rc, r->errmsg);
    cr_expect_str_eq(r->body, "0123456789");
    res_free(r);
    r = fetch("/truncchunk");
    cr_expect_eq(r->rc, CURLE_PARTIAL_FILE, "%d %s", r->rc, r->errmsg);
    cr_expect_str_eq(r->body, "alpha");
    res_free(r);
}

Test(upstream_h1, connect_refused)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sin, sizeof(sin));
    socklen_t len = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd); /* nothing listens there now */
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1", ntohs(sin.sin_port));
    res_t *r = res_new();
    start_url(r, url, NULL, 5000);
    cr_expect_eq(r->done_calls, 0, "failures are reported at a safe point, not inside start");
    run_until(&r->done_calls, 5000);
    cr_expect_eq(r->rc, CURLE_COULDNT_CONNECT, "%d %s", r->rc, r->errmsg);
    cr_expect_eq(r->headers_calls, 0);
    char origin[64];
    snprintf(origin, sizeof(origin), "127.0.0.1:%u", ntohs(sin.sin_port));
    cr_expect_not_null(strstr(r->errmsg, origin), "%s", r->errmsg);
    res_free(r);
}

Test(upstream_h1, name_that_does_not_resolve)
{
    res_t *r = res_new();
    start_url(r, "http://tollgate-test.invalid:8080/v1", NULL, 5000);
    run_until(&r->done_calls, 10000);
    cr_assert_eq(r->done_calls, 1);
    cr_expect_eq(r->rc, CURLE_COULDNT_RESOLVE_HOST, "%d %s", r->rc, r->errmsg);
    cr_expect_not_null(strstr(r->errmsg, "tollgate-test.invalid"), "%s", r->errmsg);
    res_free(r);
}

Test(upstream_h1, name_resolved_by_the_resolver_thread)
{
    /* the machine's own name: resolved through h2o's resolver and this loop's queue */
    srv_t *any = srv_start(1);
    char host[256];
    cr_assert_eq(gethostname(host, sizeof(host)), 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int ipv4_only = getaddrinfo(host, NULL, &hints, &ai) == 0;
    for (struct addrinfo *a = ipv4_only ? ai : NULL; a != NULL; a = a->ai_next)
        ipv4_only &= a->ai_family == AF_INET;
    if (ai != NULL)
        freeaddrinfo(ai);
    if (!ipv4_only) {
        srv_stop(any);
        cr_skip_test("this machine's name does not resolve to IPv4 addresses only");
    }
    char url[512];
    snprintf(url, sizeof(url), "http://%s:%u/cl", host, any->port);
    for (int i = 0; i < 2; i++) {
        res_t *r = res_new();
        start_url(r, url, NULL, 5000);
        run_until(&r->done_calls, 5000);
        cr_expect_eq(r->rc, CURLE_OK, "%s: %s", url, r->errmsg);
        cr_expect_str_eq(r->body ? r->body : "", JSON_BODY);
        res_free(r);
    }
    cr_expect_eq(get(&any->accepts), 1);
    srv_stop(any);
}

Test(upstream_h1, whole_transfer_timeout)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hang", srv->port);
    res_t *r = res_new();
    uint64_t t0 = now_ms();
    start_url(r, url, NULL, 200);
    run_until(&r->done_calls, 5000);
    uint64_t dt = now_ms() - t0;
    cr_expect_eq(r->rc, CURLE_OPERATION_TIMEDOUT, "%d %s", r->rc, r->errmsg);
    cr_expect_geq(dt, 180);
    cr_expect_lt(dt, 1500);
    wait_for(&srv->closes, 1, 2000);
    cr_expect_eq(get(&srv->closes), 1, "the timed-out connection was closed");
    res_free(r);

    /* mid-body too */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hangbody", srv->port);
    r = res_new();
    start_url(r, url, NULL, 200);
    run_until(&r->done_calls, 5000);
    cr_expect_eq(r->rc, CURLE_OPERATION_TIMEDOUT, "%d %s", r->rc, r->errmsg);
    cr_expect_str_eq(r->body, "0123456789");
    res_free(r);
}

/* ---- the switch ----------------------------------------------------------------------------- */

Test(upstream_h1, curl_switch_sends_through_curl)
{
    /* curl adds an Accept header when the list does not remove it; our HTTP/1.1 head never does */
    res_free(fetch("/echo"));
    pthread_mutex_lock(&srv->mu);
    cr_expect_null(strstr(srv->last_head, "Accept:"), "%s", srv->last_head);
    pthread_mutex_unlock(&srv->mu);
    gw_upstream_set_client(up, GW_UPSTREAM_CLIENT_CURL);
    res_t *r = fetch("/echo");
    cr_expect_eq(r->rc, CURLE_OK);
    cr_expect_str_eq(r->body, JSON_BODY);
    pthread_mutex_lock(&srv->mu);
    cr_expect_not_null(strstr(srv->last_head, "Accept: */*"), "%s", srv->last_head);
    pthread_mutex_unlock(&srv->mu);
    res_free(r);
}

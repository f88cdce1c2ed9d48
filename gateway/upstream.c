/*
 * upstream.c — libcurl multi on an h2o evloop, and the dispatch between the two transports (see
 * upstream.h for the contract; the HTTP/1.1 transport is upstream_h1.c).
 *
 * The measured rules of DESIGN §3 apply here:
 *  - curl's fds are wrapped with h2o_evloop_socket_create(…, DONT_READ): h2o tells us they are
 *    readable/writable and never reads them itself. Write interest is one-shot in h2o, so it is
 *    re-armed after every action while curl still wants it.
 *  - CURL_POLL_REMOVE is not a close (it comes on pause and when a connection is parked in the
 *    cache): interest is dropped, the wrapper is kept until CURLOPT_CLOSESOCKETFUNCTION, where it
 *    is exported (never h2o_socket_close'd: the fd belongs to curl) and the fd closed.
 *  - curl's single timer is one entry in a zero-duration list; its registered_at is set to the
 *    absolute deadline after linking, which is what h2o compares against.
 *  - Nothing here calls curl_multi_* from inside a curl callback: completions and deferred work
 *    run in after_action(), once curl has returned.
 */
#include "gateway/upstream_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct fdent {
    gw_upstream_t *up;
    h2o_socket_t *sock;
    int fd;
    int want_out;
};

typedef struct curl_xfer {
    gw_xfer_t base; /* first: a gw_xfer_t * is a curl_xfer_t * when !is_h1 */
    CURL *easy;
    int status;
    int headers_done;
    int paused;
    char ctype[128];
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
} curl_xfer_t;

#define after_action gw_upstream_after_action

static fdent_t *fdent_get(gw_upstream_t *up, int fd, int create)
{
    if ((size_t)fd >= up->nfds) {
        if (!create)
            return NULL;
        size_t n = up->nfds ? up->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        fdent_t **t = realloc(up->fds, n * sizeof(*t));
        if (t == NULL)
            return NULL;
        memset(t + up->nfds, 0, (n - up->nfds) * sizeof(*t));
        up->fds = t;
        up->nfds = n;
    }
    if (up->fds[fd] == NULL && create) {
        fdent_t *e = calloc(1, sizeof(*e));
        if (e == NULL)
            return NULL;
        e->up = up;
        e->fd = fd;
        up->fds[fd] = e;
    }
    return up->fds[fd];
}

static void socket_action(gw_upstream_t *up, curl_socket_t fd, int ev)
{
    int running = 0;
    curl_multi_socket_action(up->multi, fd, ev, &running);
    after_action(up);
}

static void on_writable(h2o_socket_t *sock, const char *err);

static void rearm_write(fdent_t *e)
{
    if (e->sock != NULL && e->want_out && !h2o_socket_is_writing(e->sock))
        h2o_socket_notify_write(e->sock, on_writable);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    fdent_t *e = sock->data;
    gw_upstream_t *up = e->up;
    int fd = e->fd;
    socket_action(up, fd, CURL_CSELECT_IN);
    if ((e = fdent_get(up, fd, 0)) != NULL)
        rearm_write(e);
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    fdent_t *e = sock->data;
    gw_upstream_t *up = e->up;
    int fd = e->fd;
    if (!e->want_out)
        return;
    socket_action(up, fd, CURL_CSELECT_OUT);
    if ((e = fdent_get(up, fd, 0)) != NULL)
        rearm_write(e);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    gw_upstream_t *up = userp;
    fdent_t *e = fdent_get(up, fd, what != CURL_POLL_REMOVE);
    if (e == NULL)
        return what == CURL_POLL_REMOVE ? 0 : -1;
    if (what == CURL_POLL_REMOVE) {
        e->want_out = 0;
        if (e->sock != NULL)
            h2o_socket_read_stop(e->sock);
        return 0;
    }
    if (e->sock == NULL) {
        e->sock = h2o_evloop_socket_create(up->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        e->sock->data = e;
    }
    if (what & CURL_POLL_IN)
        h2o_socket_read_start(e->sock, on_readable);
    else
        h2o_socket_read_stop(e->sock);
    e->want_out = (what & CURL_POLL_OUT) != 0;
    rearm_write(e);
    return 0;
}

static int on_curl_close_socket(void *clientp, curl_socket_t fd)
{
    gw_upstream_t *up = clientp;
    fdent_t *e = fdent_get(up, fd, 0);
    if (e != NULL && e->sock != NULL) {
        h2o_socket_export_t info;
        e->sock->_cb.write = NULL; /* a pending write notification would assert in export */
        h2o_socket_read_stop(e->sock);
        if (h2o_socket_export(e->sock, &info) == 0)
            h2o_buffer_dispose(&info.input);
        e->sock = NULL;
        e->want_out = 0;
    }
    return close(fd);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    gw_upstream_t *up = H2O_STRUCT_FROM_MEMBER(gw_upstream_t, tentry, entry);
    socket_action(up, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    gw_upstream_t *up = userp;
    if (h2o_timeout_is_linked(&up->tentry))
        h2o_timeout_unlink(&up->tentry);
    if (timeout_ms < 0)
        return 0;
    h2o_timeout_link(up->loop, &up->tlist, &up->tentry);
    up->tentry.registered_at = h2o_now(up->loop) + (uint64_t)timeout_ms;
    return 0;
}

gw_upstream_t *gw_upstream_create(h2o_evloop_t *loop)
{
    gw_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return NULL;
    up->loop = loop;
    up->multi = curl_multi_init();
    if (up->multi == NULL) {
        free(up);
        return NULL;
    }
    h2o_timeout_init(loop, &up->tlist, 0);
    up->tentry.cb = on_timer;
    h2o_linklist_init_anchor(&up->deferred);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, 1024L);
    curl_multi_setopt(up->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return up;
}

void gw_upstream_destroy(gw_upstream_t *up)
{
    if (up == NULL)
        return;
    gw_h1_destroy(up);
    for (size_t i = 0; i < up->n_idle; i++)
        curl_easy_cleanup(up->idle[i]);
    curl_multi_cleanup(up->multi); /* closes cached connections through our close callback */
    if (h2o_timeout_is_linked(&up->tentry))
        h2o_timeout_unlink(&up->tentry);
    h2o_timeout_dispose(up->loop, &up->tlist);
    for (size_t i = 0; i < up->nfds; i++)
        free(up->fds[i]);
    free(up->fds);
    free(up);
}

static void release_easy(gw_upstream_t *up, CURL *easy)
{
    if (up->n_idle < GW_MAX_IDLE_EASY)
        up->idle[up->n_idle++] = easy;
    else
        curl_easy_cleanup(easy);
}

static void finish_xfer(curl_xfer_t *x, CURLcode rc)
{
    gw_upstream_t *up = x->base.up;
    curl_multi_remove_handle(up->multi, x->easy);
    release_easy(up, x->easy);
    up->running--;
    gw_xfer_cbs_t cbs = x->base.cbs;
    void *ud = x->base.ud;
    char errmsg[CURL_ERROR_SIZE];
    memcpy(errmsg, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc), sizeof(errmsg));
    errmsg[sizeof(errmsg) - 1] = '\0';
    free(x);
    cbs.on_done(ud, rc, errmsg);
}

void gw_upstream_after_action(gw_upstream_t *up)
{
    if (up->in_after)
        return; /* the outer call drains whatever this one would have */
    up->in_after = 1;
    int more;
    do {
        more = 0;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_xfer_t *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            finish_xfer(x, msg->data.result);
            more = 1;
        }
        if (up->h1 != NULL && gw_h1_run_done(up))
            more = 1;
        while (!h2o_linklist_is_empty(&up->deferred)) {
            gw_deferred_t *d = H2O_STRUCT_FROM_MEMBER(gw_deferred_t, link, up->deferred.next);
            h2o_linklist_unlink(&d->link);
            d->cb(d);
            more = 1;
        }
    } while (more);
    up->in_after = 0;
}

static size_t on_curl_header(char *p, size_t size, size_t nmemb, void *ud)
{
    curl_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n);
        x->status = sp != NULL ? (int)strtol(sp + 1, NULL, 10) : 0;
        x->ctype[0] = x->retry_after[0] = '\0';
        return n;
    }
    if (n <= 2 && (n == 0 || p[0] == '\r' || p[0] == '\n')) {
        if (x->status >= 200 && !x->headers_done) {
            x->headers_done = 1;
            if (x->base.cbs.on_headers != NULL)
                x->base.cbs.on_headers(x->base.ud, x->status, x->ctype[0] ? x->ctype : NULL,
                                       x->retry_after[0] ? x->retry_after : NULL);
        }
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (colon == NULL)
        return n;
    size_t nlen = (size_t)(colon - p);
    char *dst = NULL;
    size_t cap = 0;
    if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0) {
        dst = x->ctype;
        cap = sizeof(x->ctype);
    } else if (nlen == 11 && strncasecmp(p, "retry-after", 11) == 0) {
        dst = x->retry_after;
        cap = sizeof(x->retry_after);
    }
    if (dst != NULL) {
        const char *v = colon + 1, *end = p + n;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        size_t vlen = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
        memcpy(dst, v, vlen);
        dst[vlen] = '\0';
    }
    return n;
}

static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
    curl_xfer_t *x = ud;
    size_t n = size * nmemb;
    if (!x->headers_done) {
        /* a body without a header block end (HTTP/0.9-ish or curl quirk): report headers now */
        x->headers_done = 1;
        if (x->base.cbs.on_headers != NULL)
            x->base.cbs.on_headers(x->base.ud, x->status, x->ctype[0] ? x->ctype : NULL, NULL);
    }
    size_t r = x->base.cbs.on_data(x->base.ud, p, n);
    if (r == CURL_WRITEFUNC_PAUSE)
        x->paused = 1;
    return r;
}

static gw_xfer_t *curl_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs, void *ud)
{
    curl_xfer_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    CURL *easy = up->n_idle ? up->idle[--up->n_idle] : curl_easy_init();
    if (easy == NULL) {
        free(x);
        return NULL;
    }
    curl_easy_reset(easy);
    x->base.up = up;
    x->base.cbs = *cbs;
    x->base.ud = ud;
    x->easy = easy;
    curl_easy_setopt(easy, CURLOPT_URL, o->url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_curl_close_socket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, up);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROXY, ""); /* no getenv per transfer */
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    if (o->headers != NULL)
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, o->headers);
    if (strcmp(o->method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, o->body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    } else {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }
    if (curl_multi_add_handle(up->multi, easy) != CURLM_OK) {
        release_easy(up, easy);
        free(x);
        return NULL;
    }
    up->running++;
    return &x->base;
}

/* http:// goes to h2o's HTTP/1.1 client unless configured otherwise or the URL needs curl. */
static int wants_h1(const gw_upstream_t *up, const char *url)
{
    return up->client == GW_UPSTREAM_CLIENT_AUTO && strncasecmp(url, "http://", 7) == 0;
}

gw_xfer_t *gw_upstream_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs, void *ud)
{
    if (wants_h1(up, o->url)) {
        int unsupported = 0;
        gw_xfer_t *x = gw_h1_start(up, o, cbs, ud, &unsupported);
        if (x != NULL || !unsupported)
            return x;
    }
    return curl_start(up, o, cbs, ud);
}

void gw_upstream_cancel(gw_xfer_t *base)
{
    if (base->is_h1) {
        gw_h1_cancel(base);
        return;
    }
    curl_xfer_t *x = (curl_xfer_t *)base;
    gw_upstream_t *up = base->up;
    curl_multi_remove_handle(up->multi, x->easy);
    release_easy(up, x->easy);
    up->running--;
    free(x);
}

void gw_upstream_resume(gw_xfer_t *base)
{
    if (base->is_h1) {
        gw_h1_resume(base);
        return;
    }
    curl_xfer_t *x = (curl_xfer_t *)base;
    if (!x->paused)
        return;
    x->paused = 0;
    gw_upstream_t *up = base->up;
    curl_easy_pause(x->easy, CURLPAUSE_CONT); /* may deliver buffered data right away */
    after_action(up);
}

void gw_upstream_set_client(gw_upstream_t *up, gw_upstream_client_t client)
{
    up->client = client;
}

void gw_upstream_defer(gw_upstream_t *up, gw_deferred_t *d)
{
    if (!h2o_linklist_is_linked(&d->link))
        h2o_linklist_insert(&up->deferred, &d->link);
}

void gw_upstream_undefer(gw_deferred_t *d)
{
    if (h2o_linklist_is_linked(&d->link))
        h2o_linklist_unlink(&d->link);
}

size_t gw_upstream_running(gw_upstream_t *up)
{
    return up->running;
}

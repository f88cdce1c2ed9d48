/*
 * upstream.h — upstream HTTP transfers on an h2o event loop, with two transports behind one API.
 *
 *  - h2o's own HTTP/1.1 client (upstream_h1.c) for http:// URLs: one h2o_socketpool_t per origin
 *    (host:port) and worker, keep-alive reuse, the request head written by us and the body sent
 *    from the caller's buffer without a copy. Chosen when tollgate_settings.upstream_client is
 *    "auto" (the default).
 *  - libcurl's multi interface (upstream.c) for https:// (TLS verification, HTTP/2 to providers),
 *    for every URL when upstream_client is "curl", and for the few http:// URLs the HTTP/1.1
 *    client does not take (user:password@ in the URL, header values with line breaks).
 *    curl's sockets are watched as foreign fds on the worker's loop, its timer is one entry in a
 *    zero-duration timeout list whose registered_at holds the absolute deadline, and every call
 *    into curl_multi_* happens from an h2o callback, never from inside a curl callback.
 *
 * Transfers report through gw_xfer_cbs_t, with the same semantics on both transports: on_headers
 * once, on_data zero or more times, on_done exactly once. on_headers and on_data run inside the
 * transport's own callbacks and must not call h2o: they buffer and may schedule work with
 * gw_upstream_defer, which runs at the next safe point (right after the transport has returned to
 * the loop). on_done always runs at a safe point. Everything runs on the worker's thread.
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <curl/curl.h>
#include <h2o.h>

#include "gateway/config.h"

typedef struct gw_upstream gw_upstream_t;

typedef struct gw_xfer_cbs {
    /** Status line and headers complete. content_type/retry_after may be NULL. */
    void (*on_headers)(void *ud, int status, const char *content_type, const char *retry_after);
    /** Body bytes; return n when consumed or CURL_WRITEFUNC_PAUSE to get them again later. */
    size_t (*on_data)(void *ud, const char *p, size_t n);
    /** Transfer over (rc CURLE_OK or the failure); the easy handle is already released. */
    void (*on_done)(void *ud, CURLcode rc, const char *errmsg);
} gw_xfer_cbs_t;

/** Work to run at the next safe point. Embed it; link with gw_upstream_defer. */
typedef struct gw_deferred {
    h2o_linklist_t link;
    void (*cb)(struct gw_deferred *d);
} gw_deferred_t;

/**
 * A curl header list converted once into HTTP/1.1 header lines ("Name: value\r\n"…) with curl's
 * rules: "Name:" with no value removes a header (nothing is sent), "Name;" sends it empty, Host
 * replaces the one derived from the URL, Content-Length is always computed. Built with
 * gw_upstream_headers_build; valid is 0 when the list holds something only curl may send (a CR
 * or LF inside a line), and then the transfer goes through curl.
 */
typedef struct gw_h1_headers {
    char *block; /* owned; NULL when empty */
    size_t len;
    unsigned has_host : 1;
    unsigned valid : 1;
} gw_h1_headers_t;

typedef struct gw_xfer_opts {
    const char *method; /* "POST" or "GET" */
    const char *url;
    struct curl_slist *headers; /* borrowed; must outlive the transfer */
    const char *body;           /* borrowed; must outlive the transfer */
    size_t body_len;
    long timeout_ms;         /* whole transfer; 0 = none */
    long connect_timeout_ms; /* name resolution and TCP connect; 0 = 300 s */
    /** Optional: `headers` already converted (a route's prebuilt block); borrowed. NULL = convert
     * `headers` per transfer. When set it must describe the same list as `headers`. */
    const gw_h1_headers_t *h1_headers;
} gw_xfer_opts_t;

typedef struct gw_xfer gw_xfer_t;

gw_upstream_t *gw_upstream_create(h2o_evloop_t *loop);
/** Releases everything; no transfer may be live (cancel them first). Call on the loop's thread. */
void gw_upstream_destroy(gw_upstream_t *up);
/** Which transport http:// URLs take from now on (default GW_UPSTREAM_CLIENT_AUTO). */
void gw_upstream_set_client(gw_upstream_t *up, gw_upstream_client_t client);

/** Converts a curl header list (see gw_h1_headers_t). Returns -1 when out of memory. */
int gw_upstream_headers_build(gw_h1_headers_t *out, const struct curl_slist *headers);
void gw_upstream_headers_free(gw_h1_headers_t *h);

/**
 * Starts a transfer; the transport follows the URL's scheme and gw_upstream_set_client. Failures
 * that happen while starting (connection refused, a name that does not resolve) are reported
 * through on_done at the next safe point, never from inside this call. Returns NULL only when
 * the transfer could not be set up at all (out of memory, curl refuses); then nothing will be
 * called.
 */
gw_xfer_t *gw_upstream_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs, void *ud);
/** Cancels a live transfer; no callback fires afterwards. Safe anywhere except inside on_data.
 * On the HTTP/1.1 transport the connection is closed, never returned to the pool. */
void gw_upstream_cancel(gw_xfer_t *x);
/** Resumes a transfer whose on_data returned CURL_WRITEFUNC_PAUSE. Call from h2o callbacks. */
void gw_upstream_resume(gw_xfer_t *x);

/** Schedules d->cb at the next safe point (no-op if already scheduled). */
void gw_upstream_defer(gw_upstream_t *up, gw_deferred_t *d);
/** Unschedules d if it is scheduled. */
void gw_upstream_undefer(gw_deferred_t *d);

/** Number of transfers running (for drain and metrics). */
size_t gw_upstream_running(gw_upstream_t *up);

#endif

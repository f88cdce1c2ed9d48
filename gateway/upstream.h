/*
 * upstream.h — libcurl's multi interface driven by an h2o event loop.
 *
 * curl's sockets are watched as foreign fds on the worker's loop, its timer is one entry in a
 * zero-duration timeout list whose registered_at holds the absolute deadline, and every call into
 * curl_multi_* happens from an h2o callback, never from inside a curl callback. Transfers report
 * through gw_xfer_cbs_t; on_data runs inside curl's write callback and must not call h2o: it
 * buffers and may schedule work with gw_upstream_defer, which runs at the next safe point (right
 * after curl returns to us). on_done always runs at a safe point.
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

typedef struct gw_xfer_opts {
    const char *method; /* "POST" or "GET" */
    const char *url;
    struct curl_slist *headers; /* borrowed; must outlive the transfer */
    const char *body;           /* borrowed; must outlive the transfer */
    size_t body_len;
    long timeout_ms;
    long connect_timeout_ms;
} gw_xfer_opts_t;

typedef struct gw_xfer gw_xfer_t;

gw_upstream_t *gw_upstream_create(h2o_evloop_t *loop);
void gw_upstream_destroy(gw_upstream_t *up);

/** Starts a transfer. Returns NULL when curl refuses (then nothing will be called). */
gw_xfer_t *gw_upstream_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs,
                             void *ud);
/** Cancels a live transfer; no callback fires afterwards. Safe anywhere except inside on_data. */
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

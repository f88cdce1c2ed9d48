/*
 * upstream_int.h — private to the upstream module (upstream.c: libcurl and the dispatch;
 * upstream_h1.c: h2o's HTTP/1.1 client).
 *
 * Both transports share one gw_upstream_t per worker: the list of deferred work, the count of
 * running transfers and the safe-point drain (gw_upstream_after_action). A gw_xfer_t is the
 * common head of each transport's transfer record, so the public verbs can dispatch on it.
 */
#ifndef GW_UPSTREAM_INT_H
#define GW_UPSTREAM_INT_H

#include "gateway/upstream.h"

struct gw_h1;

struct gw_xfer {
    gw_upstream_t *up;
    gw_xfer_cbs_t cbs;
    void *ud;
    unsigned is_h1 : 1;
};

typedef struct fdent fdent_t;

#define GW_MAX_IDLE_EASY 256

struct gw_upstream {
    h2o_evloop_t *loop;
    gw_upstream_client_t client; /* which transport http:// URLs take */
    /* libcurl (upstream.c) */
    CURLM *multi;
    h2o_timeout_t tlist;
    h2o_timeout_entry_t tentry;
    fdent_t **fds;
    size_t nfds;
    CURL *idle[GW_MAX_IDLE_EASY];
    size_t n_idle;
    /* h2o's HTTP/1.1 client (upstream_h1.c), created on the first http:// transfer */
    struct gw_h1 *h1;
    /* shared */
    h2o_linklist_t deferred;
    size_t running;
    int in_after;
};

/**
 * Runs whatever waits for a safe point: finished curl transfers, finished HTTP/1.1 transfers
 * (their on_done) and deferred work, until none is left. Call only from an h2o callback that is
 * not inside curl or inside h2o's HTTP/1.1 client; re-entrant calls return at once.
 */
void gw_upstream_after_action(gw_upstream_t *up);

/**
 * Starts a transfer on h2o's HTTP/1.1 client. Returns NULL with *unsupported set when the URL
 * or the headers are something only curl handles (the caller then uses curl), NULL without it
 * when out of memory.
 */
gw_xfer_t *gw_h1_start(gw_upstream_t *up, const gw_xfer_opts_t *o, const gw_xfer_cbs_t *cbs, void *ud,
                       int *unsupported);
void gw_h1_cancel(gw_xfer_t *x);
void gw_h1_resume(gw_xfer_t *x);
/** Calls on_done for the HTTP/1.1 transfers that finished; returns 1 when it called any. */
int gw_h1_run_done(gw_upstream_t *up);
/** Releases the pools and the resolver queue; no HTTP/1.1 transfer may be live. */
void gw_h1_destroy(gw_upstream_t *up);

#endif

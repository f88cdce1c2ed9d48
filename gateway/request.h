/*
 * request.h — what every request carries from its first callback to its log line.
 *
 * gw_request_begin allocates a context in the request's pool with a dispose hook, assigns or
 * echoes the request id (x-request-id), and counts the request as live on its worker. When h2o
 * releases the request — after the last byte or when the client left — the hook tears down any
 * upstream work still attached, writes the one JSON log line, and lets a draining worker exit.
 */
#ifndef GW_REQUEST_H
#define GW_REQUEST_H

#include <h2o.h>
#include <stdint.h>

#include "adapters/adapter.h"
#include "gateway/server.h"

typedef struct gw_reqctx gw_reqctx_t;

struct gw_reqctx {
    h2o_req_t *req;
    gw_worker_t *w;
    uint64_t start_ns;
    uint64_t upstream_start_ns;
    uint64_t first_byte_ns; /* first upstream body byte */
    char rid[72];
    char model[128];      /* the client's model name */
    const char *provider; /* static or config-owned */
    const char *deployment;
    const char *error; /* short static reason for the log when status >= 400 */
    ad_usage_t usage;
    int stream;
    int upstream_status;
    /** Tears down work attached to the request (upstream transfer, timers); may be NULL. */
    void (*teardown)(void *obj);
    void *teardown_obj;
};

/** Starts a request: context, request id header, live count. Never fails (pool allocation). */
gw_reqctx_t *gw_request_begin(h2o_req_t *req);

/** Monotonic clock in ns. */
uint64_t gw_now_ns(void);

/** Checks the master key (constant time). 0 ok; otherwise replies 401 and returns -1. */
int gw_request_authorize(gw_reqctx_t *rc);

#endif

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
#include "gateway/errors.h"
#include "gateway/server.h"

typedef struct gw_reqctx gw_reqctx_t;

/** Which API shape the client speaks; inside, every call is OpenAI's chat format. */
typedef enum gw_surface {
    GW_SURFACE_OPENAI = 0,
    GW_SURFACE_ANTHROPIC, /* POST /v1/messages */
    GW_SURFACE_SIMPLE,    /* POST /v1/chat */
} gw_surface_t;

struct gw_reqctx {
    h2o_req_t *req;
    gw_worker_t *w;
    uint64_t start_ns;
    uint64_t upstream_start_ns;
    uint64_t first_byte_ns; /* first upstream body byte */
    char rid[72];           /* x-request-id: the client's own when it sent a plain one, else uid */
    char uid[40];    /* always Tollgate's (UUIDv4): the billing and reservation key, never the client's */
    char model[128]; /* the client's model name */
    const char *provider; /* static or config-owned */
    const char *deployment;
    const char *error; /* short static reason for the log when status >= 400 */
    ad_usage_t usage;
    uint64_t cost_micros; /* what the call cost, when has_cost */
    int has_cost;
    struct gw_policy_ticket *admission; /* pending limits answer (policy.h) */
    int admitted, settled, spend_recorded;
    int stream;
    int upstream_status;
    gw_surface_t surface;
    /** Tears down work attached to the request (upstream transfer, timers); may be NULL. */
    void (*teardown)(void *obj);
    void *teardown_obj;
    /* authentication (keys.c): NULL principal = master key, or no master key configured */
    struct gw_principal *principal;
    int is_admin;                            /* master key, or a key whose user is proxy_admin */
    void (*auth_cont)(struct gw_reqctx *rc); /* set while parked on a key or end-user load */
    h2o_linklist_t auth_link;                /* on the cache entry's waiters while parked */
    int auth_arg;                            /* the handler's own argument for its continuation */
    const char *end_user;                    /* the request's `user` (endusers.h), pool; NULL: none */
};

/** Starts a request: context, request id header, live count. Never fails (pool allocation). */
gw_reqctx_t *gw_request_begin(h2o_req_t *req);

/** Monotonic clock in ns. */
uint64_t gw_now_ns(void);

/**
 * Replies with error e in the client's surface shape (OpenAI's by default, Anthropic's on
 * /v1/messages, the simple contract's on /v1/chat) and returns -1.
 */
int gw_request_error(gw_reqctx_t *rc, gw_err_t e, const char *message, const char *param);

/**
 * Converts an OpenAI error body into the surface's error shape (out left empty for OpenAI).
 */
void gw_surface_error_body(const gw_reqctx_t *rc, int status, const char *openai_json, size_t len,
                           ad_buf_t *out);

/** 1 when req presents the master key (constant time), or no master key is configured. */
int gw_request_is_master(h2o_req_t *req, const gw_server_t *s);

/**
 * Authenticates the request: no master key configured or the master key presented (compared in
 * constant time, synchronously: one SHA-256 of the presented key) → 0 with full access; otherwise
 * the presented key is looked up as a virtual key (keys.h): 0 when its principal is cached and
 * valid, -1 after an error reply (401 missing/unknown/blocked/expired key), 1 when the request is
 * parked on a load: cont(rc) then runs later on this loop (never after the client has left).
 */
int gw_request_authenticate(gw_reqctx_t *rc, void (*cont)(gw_reqctx_t *rc));

/** 0 when rc's key may call rc->model; otherwise replies 403 and returns -1. */
int gw_request_check_model(gw_reqctx_t *rc);

#endif

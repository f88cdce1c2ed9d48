/*
 * handlers.c — route table and the small handlers (models, health, not found).
 *
 * Routes are data: a table of path → handler, registered for the path as given and, for the
 * OpenAI surface, also without the /v1 prefix (LiteLLM serves both). h2o matches by path prefix,
 * so each handler checks that the remaining path is empty (or, for /v1/models, a model id).
 */
#include "gateway/handlers.h"

#include <string.h>

#include "gateway/call.h"
#include "gateway/errors.h"
#include "gateway/request.h"

typedef enum route_kind {
    R_CHAT,
    R_EMBEDDINGS,
    R_MESSAGES,
    R_SIMPLE,
    R_MODELS,
    R_LIVE,
    R_READY,
    R_NOT_FOUND,
} route_kind_t;

typedef struct route_handler {
    h2o_handler_t super;
    gw_server_t *server;
    route_kind_t kind;
    size_t prefix_len;
} route_handler_t;

static const struct {
    const char *path;
    route_kind_t kind;
    int also_without_v1;
} routes[] = {
    {"/v1/chat/completions", R_CHAT, 1},
    {"/v1/embeddings", R_EMBEDDINGS, 1},
    {"/v1/messages", R_MESSAGES, 1}, /* Anthropic's Messages API, served by any backend */
    {"/anthropic/v1/messages", R_MESSAGES, 0},
    {"/v1/chat", R_SIMPLE, 1}, /* after /v1/chat/completions: h2o takes the first prefix match */
    {"/v1/models", R_MODELS, 1},
    {"/health/liveliness", R_LIVE, 0},
    {"/health/liveness", R_LIVE, 0},
    {"/live", R_LIVE, 0},
    {"/health/readiness", R_READY, 0},
    {"/ready", R_READY, 0},
    {"/", R_NOT_FOUND, 0},
};

static int handle_models(gw_reqctx_t *rc, route_handler_t *h)
{
    h2o_req_t *req = rc->req;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return gw_reply_error(req, GW_ERR_METHOD, "use GET for this endpoint", NULL), 0;
    if (gw_request_authorize(rc) != 0)
        return 0;
    gw_reply_json(req, 200, "OK", h->server->models_json, h->server->models_json_len);
    return 0;
}

static int handle_ready(gw_reqctx_t *rc, route_handler_t *h)
{
    static const char ok[] = "{\"status\":\"healthy\",\"db\":\"Not connected\",\"cache\":null,"
                             "\"litellm_version\":\"tollgate-0.1.0\",\"draining\":false}";
    static const char draining[] = "{\"status\":\"unhealthy\",\"db\":\"Not connected\",\"cache\":null,"
                                   "\"litellm_version\":\"tollgate-0.1.0\",\"draining\":true}";
    if (h->server->draining)
        gw_reply_json(rc->req, 503, "Service Unavailable", draining, sizeof(draining) - 1);
    else
        gw_reply_json(rc->req, 200, "OK", ok, sizeof(ok) - 1);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    route_handler_t *h = (route_handler_t *)self;
    gw_reqctx_t *rc = gw_request_begin(req);
    /* prefix match: only the exact path (or /v1/models/<id>) belongs to the route */
    size_t rest = req->path_normalized.len - h->prefix_len;
    if (h->kind != R_NOT_FOUND && rest != 0 && !(h->kind == R_MODELS && req->path_normalized.base[h->prefix_len] == '/'))
        return gw_reply_error(req, GW_ERR_NOT_FOUND, "Not found", NULL), 0;
    switch (h->kind) {
    case R_CHAT:
        return gw_call_handle(rc, AD_OP_CHAT);
    case R_EMBEDDINGS:
        return gw_call_handle(rc, AD_OP_EMBEDDINGS);
    case R_MESSAGES:
        rc->surface = GW_SURFACE_ANTHROPIC;
        return gw_call_handle(rc, AD_OP_CHAT);
    case R_SIMPLE:
        rc->surface = GW_SURFACE_SIMPLE;
        return gw_call_handle(rc, AD_OP_CHAT);
    case R_MODELS:
        return handle_models(rc, h);
    case R_LIVE: {
        static const char alive[] = "\"I'm alive!\"";
        gw_reply_json(req, 200, "OK", alive, sizeof(alive) - 1);
        return 0;
    }
    case R_READY:
        return handle_ready(rc, h);
    case R_NOT_FOUND:
    default: {
        rc->error = "not_found";
        char msg[300];
        snprintf(msg, sizeof(msg), "Not found: %.*s", (int)(req->path_normalized.len < 200 ? req->path_normalized.len : 200),
                 req->path_normalized.base);
        return gw_reply_error(req, GW_ERR_NOT_FOUND, msg, NULL), 0;
    }
    }
}

static void register_one(gw_server_t *s, h2o_hostconf_t *hostconf, const char *path, route_kind_t kind)
{
    h2o_pathconf_t *pc = h2o_config_register_path(hostconf, path, 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
    h->kind = kind;
    h->prefix_len = strcmp(path, "/") == 0 ? 0 : strlen(path);
    if (kind == R_NOT_FOUND)
        h->prefix_len = 0;
}

void gw_handlers_register(gw_server_t *s, h2o_hostconf_t *hostconf)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        register_one(s, hostconf, routes[i].path, routes[i].kind);
        if (routes[i].also_without_v1)
            register_one(s, hostconf, routes[i].path + 3, routes[i].kind);
    }
}

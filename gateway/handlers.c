/*
 * handlers.c — route table and the small handlers (models, health, not found).
 *
 * Routes are data: a table of path → handler, registered for the path as given and, for the
 * OpenAI surface, also without the /v1 prefix (LiteLLM serves both). h2o matches by path prefix,
 * so each handler checks that the remaining path is empty (or, for /v1/models, a model id).
 */
#include "gateway/handlers.h"

#include <stdlib.h>
#include <string.h>

#include "gateway/admin.h"
#include "gateway/call.h"
#include "gateway/spend_api.h"
#include "gateway/limits.h"
#include "gateway/errors.h"
#include "gateway/policy.h"
#include "gateway/keys.h"
#include "gateway/request.h"
#include "gateway/store.h"

typedef enum route_kind {
    R_CHAT,
    R_EMBEDDINGS,
    R_MESSAGES,
    R_SIMPLE,
    R_MODELS,
    R_LIVE,
    R_READY,
    R_ADMIN, /* admin.c; arg is its route index */
    R_NOT_FOUND,
} route_kind_t;

typedef struct route_handler {
    h2o_handler_t super;
    gw_server_t *server;
    route_kind_t kind;
    size_t prefix_len;
    size_t arg;
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

/* A restricted key sees only the models its allow-lists name (rare: the list is filtered here). */
static void reply_filtered_models(gw_reqctx_t *rc)
{
    const gw_server_t *s = rc->w->server;
    json_t *all = json_loadb(s->models_json, s->models_json_len, 0, NULL), *keep = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(all, "data"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id != NULL && gw_principal_model_allowed(rc->principal, id))
            json_array_append(keep, m);
    }
    json_object_set_new(all, "data", keep);
    char *text = json_dumps(all, JSON_COMPACT);
    gw_reply_json(rc->req, 200, "OK", text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    json_decref(all);
}

static void models_continue(gw_reqctx_t *rc)
{
    const gw_server_t *s = rc->w->server;
    if (rc->principal != NULL && gw_principal_restricted(rc->principal))
        return reply_filtered_models(rc);
    gw_reply_json(rc->req, 200, "OK", s->models_json, s->models_json_len);
}

static int handle_models(gw_reqctx_t *rc, route_handler_t *h)
{
    h2o_req_t *req = rc->req;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return gw_reply_error(req, GW_ERR_METHOD, "use GET for this endpoint", NULL), 0;
    if (gw_request_authenticate(rc, models_continue) == 0)
        models_continue(rc);
    return 0;
}

/* LiteLLM's readiness shape; db is "connected", "Not connected" (none configured) or the last
 * store status the changes poll saw ("unavailable", …). */
static int handle_ready(gw_reqctx_t *rc, route_handler_t *h)
{
    const gw_server_t *s = h->server;
    int st = __atomic_load_n(&s->db_status, __ATOMIC_RELAXED);
    const char *db = s->store == NULL ? "Not connected" : st == 0 ? "connected" : gw_store_status_name(st);
    /* shared limits: Redis down means per-instance limits (fail_open) or refusals (fail_closed) */
    int fail_closed = 0, redis = s->limits != NULL && gw_limits_uses_redis(s->limits, &fail_closed);
    int redis_up = redis && gw_limits_redis_ok(s->limits);
    int unhealthy = s->draining || (redis && !redis_up && fail_closed);
    char body[384];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"db\":\"%s\",\"cache\":null,\"redis\":%s,\"limits\":\"%s\","
                     "\"litellm_version\":\"tollgate-0.1.0\",\"draining\":%s}",
                     unhealthy ? "unhealthy" : "healthy", db,
                     !redis     ? "null"
                     : redis_up ? "\"connected\""
                                : "\"unavailable\"",
                     !redis        ? "local"
                     : redis_up    ? "redis"
                     : fail_closed ? "refusing (fail_closed)"
                                   : "local (fail_open)",
                     s->draining ? "true" : "false");
    if (unhealthy)
        gw_reply_json(rc->req, 503, "Service Unavailable", body, (size_t)n);
    else
        gw_reply_json(rc->req, 200, "OK", body, (size_t)n);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    route_handler_t *h = (route_handler_t *)self;
    gw_reqctx_t *rc = gw_request_begin(req);
    /* prefix match: only the exact path (or /v1/models/<id>) belongs to the route */
    size_t rest = req->path_normalized.len - h->prefix_len;
    if (h->kind != R_NOT_FOUND && h->kind != R_ADMIN && rest != 0 && /* admin.c checks its own paths */
        !(h->kind == R_MODELS && req->path_normalized.base[h->prefix_len] == '/'))
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
    case R_ADMIN:
        return gw_admin_handle(rc, h->arg);
    case R_NOT_FOUND:
    default: {
        rc->error = "not_found";
        char msg[300];
        snprintf(msg, sizeof(msg), "Not found: %.*s",
                 (int)(req->path_normalized.len < 200 ? req->path_normalized.len : 200),
                 req->path_normalized.base);
        return gw_reply_error(req, GW_ERR_NOT_FOUND, msg, NULL), 0;
    }
    }
}

static void register_one(gw_server_t *s, h2o_hostconf_t *hostconf, const char *path, route_kind_t kind,
                         size_t arg)
{
    h2o_pathconf_t *pc = h2o_config_register_path(hostconf, path, 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
    h->kind = kind;
    h->arg = arg;
    h->prefix_len = strcmp(path, "/") == 0 ? 0 : strlen(path);
    if (kind == R_NOT_FOUND)
        h->prefix_len = 0;
}

static h2o_multithread_receiver_t *spend_receiver(h2o_req_t *req, void *ctx)
{
    return &gw_worker_of(req)->store_rx;
}

/* Spend reports are the operator's: the master key only. */
static int spend_authorize(h2o_req_t *req, void *ctx)
{
    if (gw_request_is_master(req, ctx))
        return 0;
    gw_reply_error(req, GW_ERR_BAD_KEY, "Authentication error: spend reports need the master key.", NULL);
    return -1;
}

void gw_handlers_register(gw_server_t *s, h2o_hostconf_t *hostconf)
{
    if (s->spend != NULL) { /* before "/": h2o takes the first prefix match */
        gw_spend_api_conf_t conf = {s->store, spend_receiver, spend_authorize, s,
                                    s->global_budget != NULL ? (double)s->global_budget->max_budget / 1e6
                                                             : 0};
        gw_spend_api_register(hostconf, &conf);
    }
    for (size_t i = 0; i < gw_admin_n_routes(); i++) /* before "/": h2o takes the first prefix match */
        register_one(s, hostconf, gw_admin_route_path(i), R_ADMIN, i);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        register_one(s, hostconf, routes[i].path, routes[i].kind, 0);
        if (routes[i].also_without_v1)
            register_one(s, hostconf, routes[i].path + 3, routes[i].kind, 0);
    }
}

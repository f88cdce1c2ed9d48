/*
 * admin.h — LiteLLM's management API: /key/..., /user/..., /team/..., /customer/..., /budget/...,
 * /organization/..., with LiteLLM's request fields and response shapes.
 *
 * Every call needs the master key or a virtual key whose user has user_role proxy_admin. Each
 * one runs as a single store job inside one transaction (the loop never waits); every write also
 * records (kind, id) in the changes table and, after the commit, tells this instance's workers to
 * drop what they cache. Money is given and returned in dollars (LiteLLM's floats) and stored as
 * integer micro-dollars, converted exactly at this edge.
 */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <stddef.h>

#include "gateway/request.h"

/** Number of admin routes, and the path of route i ("/key/generate", …). */
size_t gw_admin_n_routes(void);
const char *gw_admin_route_path(size_t i);

/** Handles admin route i for rc (any method). Returns 0 (h2o). */
int gw_admin_handle(gw_reqctx_t *rc, size_t route);

#endif

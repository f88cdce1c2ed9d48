/*
 * admin.h — LiteLLM's management API: /key/..., /user/..., /team/..., /customer/..., /budget/...,
 * /organization/..., with LiteLLM's request fields and response shapes.
 *
 * Who may call (LiteLLM's rules): the master key or a virtual key whose user has user_role
 * proxy_admin may call everything; a proxy_admin_viewer user's key may call the read routes
 * (…/info, …/list); any other virtual key may read only what is its own — /key/info (no key:
 * itself; else itself or its user's keys), /key/list (its user's keys), /user/info (its user),
 * /team/info (its team, or a team its user is in), /team/list (its user's teams), /key/health —
 * and gets 403 with LiteLLM's wording otherwise, 401 on every other route.
 * /key/<key>/regenerate is the path form of /key/regenerate. /customer/block|unblock set end_users.blocked,
 * which the request path enforces (endusers.h); the /end_user/... routes are LiteLLM's older names of the
 * /customer/... ones.
 *
 * Each call runs as a single store job inside one transaction (the loop never waits); every write also
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

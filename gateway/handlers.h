/*
 * handlers.h — the HTTP surface: which path goes to which handler, each with and without /v1.
 */
#ifndef GW_HANDLERS_H
#define GW_HANDLERS_H

#include <h2o.h>

#include "gateway/server.h"

/** Registers every route on hostconf. */
void gw_handlers_register(gw_server_t *s, h2o_hostconf_t *hostconf);

#endif

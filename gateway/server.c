/*
 * server.c — listeners, worker threads and their loops, signals and graceful drain.
 *
 * Each worker binds its own SO_REUSEPORT socket, so the kernel spreads connections and no
 * request ever crosses threads. The main thread blocks SIGTERM/SIGINT/SIGHUP before starting the
 * workers and waits for them with sigwait: no code runs in a signal handler. On SIGTERM it posts
 * a message to every worker's queue; a worker then closes its listener, answers readiness with
 * 503, adds `connection: close` to new responses, and leaves its loop when its last live request
 * is done or drain_timeout_ms has passed.
 */
#include "gateway/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gateway/budgets.h"
#include "gateway/endusers.h"
#include "gateway/handlers.h"
#include "gateway/keys.h"
#include "gateway/models.h"
#include "gateway/policy.h"
#include "gateway/pricing.h"
#include "gateway/limits.h"
#include "gateway/spend.h"
#include "gateway/spend_batch.h"
#include "gateway/store.h"
#include "gateway/upstream.h"

typedef struct ctl_msg {
    h2o_multithread_message_t super;
    int what;
} ctl_msg_t;

static int force_exit_flag(gw_worker_t *w);

static h2o_timeout_entry_t *drain_entry(gw_worker_t *w)
{
    return &w->drain_timer;
}

/* ---- worker utilities ---------------------------------------------------------------------- */

uint64_t gw_worker_rand(gw_worker_t *w)
{
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return w->rng[1] + s0;
}

h2o_timeout_t *gw_worker_timeout(gw_worker_t *w, uint64_t ms)
{
    size_t best = 0;
    for (size_t i = 0; i < w->n_timeouts; i++) {
        if (w->timeout_ms[i] == ms)
            return w->timeouts[i];
        if (w->timeout_ms[i] <= ms && w->timeout_ms[i] >= w->timeout_ms[best])
            best = i;
    }
    if (w->n_timeouts < sizeof(w->timeouts) / sizeof(w->timeouts[0])) {
        h2o_timeout_t *t = malloc(sizeof(*t));
        if (t != NULL) {
            h2o_timeout_init(w->loop, t, ms);
            w->timeouts[w->n_timeouts] = t;
            w->timeout_ms[w->n_timeouts++] = ms;
            return t;
        }
    }
    return w->timeouts[best]; /* table full: the nearest shorter duration */
}

void gw_worker_flush_log(gw_worker_t *w)
{
    size_t off = 0;
    while (off < w->logbuf.len) { /* lines are whole: one line never spans two calls */
        ssize_t n = write(STDOUT_FILENO, w->logbuf.data + off, w->logbuf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* stdout gone: drop the log rather than the requests */
        off += (size_t)n;
    }
    ad_buf_reset(&w->logbuf);
}

void gw_worker_request_done(gw_worker_t *w)
{
    if (w->active > 0)
        w->active--;
}

/* ---- accept and drain ---------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    gw_worker_t *w = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 32; i++) { /* bounded: other work on this loop must not starve */
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&w->accept_ctx, sock);
    }
}

static void on_drain_timeout(h2o_timeout_entry_t *e)
{
    /* the loop notices force_exit after this callback returns */
}

static void start_drain(gw_worker_t *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    gw_keys_stop_poll(w);
    gw_budgets_stop_reset(w);
    h2o_context_request_shutdown(&w->ctx); /* HTTP/1.1: close after the current response; h2: GOAWAY */
    if (w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener);
        w->listener = NULL;
    }
    w->drain_deadline = h2o_now(w->loop) + w->server->cfg->server.drain_timeout_ms;
    h2o_timeout_entry_t *e = drain_entry(w);
    e->cb = on_drain_timeout;
    h2o_timeout_link(w->loop, gw_worker_timeout(w, w->server->cfg->server.drain_timeout_ms), e);
}

static void on_ctl(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    gw_worker_t *w = H2O_STRUCT_FROM_MEMBER(gw_worker_t, ctl, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        ctl_msg_t *m = H2O_STRUCT_FROM_MEMBER(ctl_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        free(m);
        start_drain(w);
    }
}

static int force_exit_flag(gw_worker_t *w)
{
    return w->draining && h2o_now(w->loop) >= w->drain_deadline;
}

static void *worker_main(void *arg)
{
    gw_worker_t *w = arg;
    gw_server_t *s = w->server;
    w->loop = h2o_evloop_create();
    h2o_context_init(&w->ctx, w->loop, &s->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = s->globalconf.hosts;
    w->up = gw_upstream_create(w->loop);
    gw_upstream_set_client(w->up, s->cfg->server.upstream_client);
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->ctl, on_ctl);
    w->keys = gw_keycache_create(w);
    w->endusers = gw_eucache_create(w);
    w->lim = gw_limits_loop_attach(s->limits, w->loop);
    if (s->spend != NULL &&
        (w->spendq = gw_spend_batch_create(s->spend, w->loop, gw_worker_timeout(w, 0), w->queue)) == NULL)
        fprintf(stderr,
                "{\"level\":\"warn\",\"msg\":\"spend batch unavailable: records are written one "
                "by one\",\"worker\":%u}\n",
                w->id);
    if (w->id == 0) {
        gw_keys_start_poll(w);
        gw_budgets_start_reset(w);
    }
    w->listener = h2o_evloop_socket_create(w->loop, w->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    __atomic_store_n(&w->seq, 1, __ATOMIC_RELEASE); /* tells the main thread we are ready */

    /* a store job in flight keeps the worker: its completion must find the loop and receiver */
    while (!(w->draining && ((w->active == 0 && w->store_jobs == 0) || force_exit_flag(w)))) {
        h2o_evloop_run(w->loop, INT32_MAX);
        if (w->logbuf.len > 0)
            gw_worker_flush_log(w);
    }
    gw_worker_flush_log(w);
    ad_buf_free(&w->logbuf);
    gw_spend_batch_destroy(w->spendq); /* writes what the last iteration added */
    w->spendq = NULL;

    if (h2o_timeout_is_linked(drain_entry(w)))
        h2o_timeout_unlink(drain_entry(w));
    h2o_multithread_unregister_receiver(w->queue, &w->ctl);
    gw_budgets_stop_reset(w);
    gw_keycache_destroy(w->keys);
    w->keys = NULL;
    gw_eucache_destroy(w->endusers);
    w->endusers = NULL;
    if (w->active == 0 && w->lim != NULL) {
        gw_limits_loop_detach(w->lim);
        w->lim = NULL;
    }
    if (w->ctx._timestamp_cache.value != NULL) { /* the context's Date-header cache */
        h2o_mem_release_shared(w->ctx._timestamp_cache.value);
        w->ctx._timestamp_cache.value = NULL;
    }
    if (w->active == 0) { /* forced exits leave live requests behind: their state stays */
        gw_upstream_destroy(w->up);
        for (size_t i = 0; i < w->n_timeouts; i++) {
            if (h2o_linklist_is_empty(&w->timeouts[i]->_entries)) {
                h2o_timeout_dispose(w->loop, w->timeouts[i]);
                free(w->timeouts[i]);
            }
        }
    }
    return NULL;
}

/* ---- listeners ----------------------------------------------------------------------------- */

static int open_listener(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE},
                    *res;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int gai = getaddrinfo(host, portstr, &hints, &res); /* start-up only, before any loop runs */
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* ---- server -------------------------------------------------------------------------------- */

/* Start-up: the price table next to the config (or TOLLGATE_PRICES), resolved once per route. */
static void load_prices(gw_server_t *s)
{
    char path[4096], msg[512] = "";
    gw_pricing_path(s->cfg->path, path, sizeof(path));
    s->pricing = gw_pricing_load(path, msg, sizeof(msg));
    if (msg[0] != '\0')
        fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"prices\",\"detail\":\"%s\"}\n", msg);
    size_t unpriced = 0;
    for (size_t i = 0; s->pricing != NULL && i < s->models->n_routes; i++) {
        gw_route_t *r = &s->models->routes[i];
        char e[256] = "";
        if (r->wildcard)
            continue;
        int rc = gw_pricing_resolve(s->pricing, r->dep, NULL, &r->price, e, sizeof(e));
        r->priced = rc == GW_PRICING_OK;
        unpriced += !r->priced;
    }
    if (unpriced > 0) /* one line, not one per deployment: configs can have hundreds */
        fprintf(stderr,
                "{\"level\":\"warn\",\"msg\":\"deployments without a price: their cost counts as 0\","
                "\"count\":%zu}\n",
                unpriced);
}

/* Start-up, blocking: the store the config names, migrated, and where the changes poll starts. */
static int open_store(gw_server_t *s, char *err, size_t errlen)
{
    char e[512] = "";
    s->store = gw_store_open(s->cfg, NULL, e, sizeof(e));
    if (s->store == NULL) {
        snprintf(err, errlen, "database: %s", e);
        return -1;
    }
    json_t *applied = NULL;
    int st = gw_store_migrate(s->store, &applied, e, sizeof(e));
    if (st == GW_STORE_OK)
        st = gw_keys_init_seq(s->store, &s->changes_seq, e, sizeof(e));
    json_decref(applied);
    if (st != GW_STORE_OK) {
        snprintf(err, errlen, "database %s: %s", gw_store_describe(s->store), e);
        gw_store_close(s->store);
        s->store = NULL;
        return -1;
    }
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"database\",\"store\":\"%s\"}\n",
            gw_store_describe(s->store));
    return 0;
}

/* Start-up: the limiter (in-process, or Redis when configured) and the spend journal. */
static int open_policy(gw_server_t *s, char *err, size_t errlen)
{
    char e[512] = "", buf[1024];
    gw_limits_config_t lc;
    if (gw_limits_config_from(s->cfg, &lc, buf, sizeof(buf), e, sizeof(e)) != 0 ||
        (s->limits = gw_limits_create(&lc, e, sizeof(e))) == NULL) {
        snprintf(err, errlen, "limits: %s", e);
        return -1;
    }
    const char *dir = getenv("TOLLGATE_DATA_DIR");
    gw_spend_settings_t ss = {.sync_mode = (gw_spend_sync_mode_t)s->cfg->server.journal_sync,
                              .sync_ms = (uint32_t)s->cfg->server.journal_sync_ms,
                              .writer_ms = (uint32_t)s->cfg->server.spend_writer_ms};
    s->spend = gw_spend_open(dir != NULL && dir[0] != '\0' ? dir : "data", s->store, &ss, e, sizeof(e));
    if (s->spend == NULL) {
        snprintf(err, errlen, "spend journal: %s", e);
        gw_limits_destroy(s->limits);
        s->limits = NULL;
        return -1;
    }
    /* The global budget is seeded from spend_logs: let the writer first replay what an earlier
     * run left in the journal (a kill -9), so that spend is not forgotten. A store that is down
     * now makes the seed miss those records (bounded wait; logged). */
    json_t *gmb = json_object_get(s->cfg->litellm_settings, "max_budget");
    if (gmb != NULL && !json_is_null(gmb) && gw_spend_wait_drained(s->spend, 10000) != 0)
        fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"global budget seeded before the spend journal "
                        "was replayed into the store\"}\n");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (gw_policy_global_init(s->cfg, s->store, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                              &s->global_budget, e, sizeof(e)) != 0) {
        snprintf(err, errlen, "global budget: %s", e);
        gw_spend_close(s->spend);
        s->spend = NULL;
        gw_limits_destroy(s->limits);
        s->limits = NULL;
        return -1;
    }
    return 0;
}

gw_server_t *gw_server_create(gw_config_t *cfg, char *err, size_t errlen)
{
    gw_server_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->started_at = time(NULL);
    s->models = gw_models_create(cfg, err, errlen);
    if (s->models == NULL) {
        free(s);
        return NULL;
    }
    load_prices(s);
    ad_buf_t b;
    ad_buf_init(&b, 16u << 20);
    gw_models_list_json(s->models, (int64_t)s->started_at, &b);
    s->models_json = b.data;
    s->models_json_len = b.len;
    if (cfg->master_key != NULL)
        SHA256((const unsigned char *)cfg->master_key, strlen(cfg->master_key), s->master_key_hash);
    s->alias_maps[0] = json_object_get(cfg->litellm_settings, "model_alias_map");
    s->alias_maps[1] = json_object_get(cfg->router_settings, "model_group_alias");
    if (open_store(s, err, errlen) != 0 || open_policy(s, err, errlen) != 0) {
        gw_store_close(s->store);
        gw_models_destroy(s->models);
        gw_pricing_destroy(s->pricing);
        free(s->models_json);
        free(s);
        return NULL;
    }

    h2o_config_init(&s->globalconf);
    /* h2o answers 413 itself (plain text) past its own limit; we keep its limit above ours so
     * that every body between the two gets our OpenAI-shaped 413 */
    size_t max = cfg->server.max_request_body;
    s->globalconf.max_request_entity_size = max > SIZE_MAX / 4 ? SIZE_MAX : max * 4;
    s->globalconf.http1.req_timeout = cfg->server.header_timeout_ms;
    s->globalconf.http2.idle_timeout = cfg->server.idle_timeout_ms;
    s->globalconf.http2.max_concurrent_requests_per_connection = (size_t)cfg->server.max_streams_per_conn;
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("tollgate"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    gw_handlers_register(s, host);
    return s;
}

static void wait_ready(gw_worker_t *w)
{
    while (__atomic_load_n(&w->seq, __ATOMIC_ACQUIRE) == 0)
        usleep(1000); /* main thread, start-up only */
}

int gw_server_run(gw_server_t *s)
{
    const gw_server_settings_t *ss = &s->cfg->server;
    char err[256];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->n_workers = ss->workers > 0 ? (unsigned)ss->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    s->workers = calloc(s->n_workers, sizeof(*s->workers));
    for (unsigned i = 0; i < s->n_workers; i++) {
        gw_worker_t *w = &s->workers[i];
        w->id = i;
        w->server = s;
        ad_buf_init(&w->logbuf, 4u << 20);
        if (getrandom(w->rng, sizeof(w->rng), 0) != sizeof(w->rng) || (w->rng[0] | w->rng[1]) == 0)
            w->rng[0] = 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL), w->rng[1] = 0xbf58476d1ce4e5b9ull + i;
        if ((w->listen_fd = open_listener(ss->host, ss->port, err, sizeof(err))) < 0) {
            fprintf(stderr, "{\"level\":\"error\",\"msg\":\"%s\"}\n", err);
            return 1;
        }
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (unsigned i = 0; i < s->n_workers; i++)
        pthread_create(&s->workers[i].tid, NULL, worker_main, &s->workers[i]);
    for (unsigned i = 0; i < s->n_workers; i++)
        wait_ready(&s->workers[i]);
    fprintf(stderr,
            "{\"level\":\"info\",\"msg\":\"listening\",\"host\":\"%s\",\"port\":%d,\"workers\":%u,"
            "\"models\":%zu}\n",
            ss->host, ss->port, s->n_workers, s->cfg->n_deployments);

    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            fprintf(stderr, "{\"level\":\"warn\",\"msg\":\"SIGHUP: config reload is not supported yet\"}\n");
            continue;
        }
        break;
    }
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"draining\",\"signal\":%d}\n", sig);
    s->draining = 1;
    for (unsigned i = 0; i < s->n_workers; i++) {
        ctl_msg_t *m = calloc(1, sizeof(*m));
        h2o_multithread_send_message(&s->workers[i].ctl, &m->super);
    }
    for (unsigned i = 0; i < s->n_workers; i++)
        pthread_join(s->workers[i].tid, NULL);
    for (unsigned i = 0; i < s->n_workers; i++)
        gw_keys_drop_messages(&s->workers[i]);
    fprintf(stderr, "{\"level\":\"info\",\"msg\":\"stopped\"}\n");
    return 0;
}

void gw_server_destroy(gw_server_t *s)
{
    if (s == NULL)
        return;
    gw_spend_close(s->spend); /* drains the journal into the store while it is still open */
    gw_limits_destroy(s->limits);
    free(s->global_budget);
    gw_store_close(s->store);
    gw_models_destroy(s->models);
    gw_pricing_destroy(s->pricing);
    h2o_config_dispose(&s->globalconf);
    free(s->models_json);
    free(s->workers);
    free(s);
}

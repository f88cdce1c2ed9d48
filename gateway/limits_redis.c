/*
 * limits_redis.c — the limiter on event loops: the per-loop handle for both backends, and the
 * Redis backend (one Lua script, hiredis's async API driven by the worker's own h2o loop).
 *
 * Why on the loop and not on a thread: an admission is one EVALSHA whose reply the request is
 * waiting for anyway; sending it from the loop that owns the request costs one write and one
 * read on a socket the loop already polls, where a Redis thread would add two cross-thread hops
 * per admission. hiredis's async context only needs five hooks (add/del read, add/del write,
 * cleanup); they map onto an h2o socket created with DONT_READ around hiredis's fd, as curl's
 * fds are (DESIGN §3). Each loop has its own connection, so no state is shared between threads
 * except the readiness counters.
 *
 * Failure model: a connection that fails, drops, or leaves the oldest command unanswered for
 * redis_timeout_ms is freed; hiredis then answers every pending command with a NULL reply and
 * each one is completed as "Redis unavailable": admissions by the local backend (fail_open) or
 * UNAVAILABLE (fail_closed); settlements report found = 0 (their Redis reservations lapse by
 * TTL). The loop reconnects with backoff (100 ms doubling to 2 s); while it waits, admissions are
 * answered the same way at once, without touching the network.
 *
 * The script (SCRIPT below) keeps, per scope, one hash {tollgate}:s:<kind>:<id> with the fields
 * win rq tk (fixed window and its requests/tokens), par (live reservations), pend sp (budget
 * period end and settled spend), rs (reserved micro-dollars) and dur (budget duration); per
 * reservation a string {tollgate}:r:<request id> (JSON: scope names and the amounts reserved) and
 * a member of the sorted set {tollgate}:rexp scored by expiry. Every call first releases up to 16
 * expired reservations, so a crashed instance's reservations are returned by the next calls of
 * any instance. Numbers are Lua doubles: exact to 2^53 (9e15 micro-dollars is $9e9).
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/limits_int.h"

static const char SCRIPT[] =
    "if redis.replicate_commands then pcall(redis.replicate_commands) end\n"
    "local P = ARGV[1]\n"
    "local mode = ARGV[2]\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local win = math.floor(now / 60000)\n"
    "local function n(x) return tonumber(x) or 0 end\n"
    "local function s(x) return string.format('%.0f', x) end\n"
    "local function finish(id, tokens, micros, settle)\n"
    "  local rk = P .. 'r:' .. id\n"
    "  local v = redis.call('GET', rk)\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  if not v then return 0 end\n"
    "  redis.call('DEL', rk)\n"
    "  local r = cjson.decode(v)\n"
    "  local rt, rm, rw = n(r.t), n(r.m), n(r.w)\n"
    "  for _, name in ipairs(r.s) do\n"
    "    local k = P .. 's:' .. name\n"
    "    local h = redis.call('HMGET', k, 'win', 'tk', 'par', 'rs', 'pend', 'sp', 'dur')\n"
    "    local tk = n(h[2])\n"
    "    if n(h[1]) == rw then\n"
    "      tk = tk - rt\n"
    "      if settle then tk = tk + tokens end\n"
    "      if tk < 0 then tk = 0 end\n"
    "    end\n"
    "    local par = n(h[3]) - 1\n"
    "    if par < 0 then par = 0 end\n"
    "    local rs = n(h[4]) - rm\n"
    "    if rs < 0 then rs = 0 end\n"
    "    local f = {'tk', s(tk), 'par', s(par), 'rs', s(rs)}\n"
    "    if settle then\n"
    "      local pend, sp, dur = n(h[5]), n(h[6]), n(h[7])\n"
    "      if dur > 0 and pend > 0 and now >= pend then\n"
    "        pend = pend + (math.floor((now - pend) / dur) + 1) * dur\n"
    "        sp = 0\n"
    "      end\n"
    "      sp = sp + micros\n"
    "      f[7] = 'pend'; f[8] = s(pend); f[9] = 'sp'; f[10] = s(sp)\n"
    "    end\n"
    "    redis.call('HMSET', k, unpack(f))\n"
    "  end\n"
    "  return 1\n"
    "end\n"
    "local exp = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)\n"
    "for _, id in ipairs(exp) do finish(id, 0, 0, false) end\n"
    "if mode == 's' then return finish(ARGV[3], n(ARGV[4]), n(ARGV[5]), true) end\n"
    "if mode == 'r' then return finish(ARGV[3], 0, 0, false) end\n"
    "local id = ARGV[3]\n"
    "local ttl, et, em, ns = n(ARGV[4]), n(ARGV[5]), n(ARGV[6]), n(ARGV[7])\n"
    "local rk = P .. 'r:' .. id\n"
    "if redis.call('EXISTS', rk) == 1 then return {2, now} end\n"
    "local st, names, ref = {}, {}, nil\n"
    "for i = 1, ns do\n"
    "  local o = 8 + (i - 1) * 8\n"
    "  local name = ARGV[o]\n"
    "  local rpm, tpm, mp, mb = n(ARGV[o + 1]), n(ARGV[o + 2]), n(ARGV[o + 3]), n(ARGV[o + 4])\n"
    "  local dur, cpend, csp = n(ARGV[o + 5]), n(ARGV[o + 6]), n(ARGV[o + 7])\n"
    "  local k = P .. 's:' .. name\n"
    "  local h = redis.call('HMGET', k, 'win', 'rq', 'tk', 'par', 'pend', 'sp', 'rs')\n"
    "  local rq, tk = 0, 0\n"
    "  if n(h[1]) == win then rq = n(h[2]); tk = n(h[3]) end\n"
    "  local par, pend, sp, rs = n(h[4]), n(h[5]), n(h[6]), n(h[7])\n"
    "  local rolled = 0\n"
    "  if dur > 0 then\n"
    "    if cpend > pend then pend = cpend; sp = csp elseif cpend == pend and csp > sp then sp = csp end\n"
    "    if pend == 0 then pend = now + dur end\n"
    "    if now >= pend then pend = pend + (math.floor((now - pend) / dur) + 1) * dur; sp = 0 end\n"
    "    if pend ~= cpend then rolled = 1 end\n"
    "  else\n"
    "    pend = 0\n"
    "    if csp > sp then sp = csp end\n"
    "  end\n"
    "  st[i] = {k, rq, tk, par, pend, sp, rs, dur, rolled}\n"
    "  names[i] = name\n"
    "  if not ref then\n"
    "    if mp >= 0 and par + 1 > mp then ref = {i, 1, mp, mp - par, 0}\n"
    "    elseif rpm >= 0 and rq + 1 > rpm then ref = {i, 2, rpm, rpm - rq, (win + 1) * 60000}\n"
    "    elseif tpm >= 0 and tk + et > tpm then ref = {i, 3, tpm, tpm - tk, (win + 1) * 60000}\n"
    "    elseif mb >= 0 and sp + rs + em > mb then\n"
    "      local reset = 0\n"
    "      if dur > 0 then reset = pend end\n"
    "      ref = {i, 4, mb, mb - sp - rs, reset}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local out\n"
    "if ref then\n"
    "  out = {0, now, ref[1], ref[2], ref[3], ref[4], ref[5]}\n"
    "else\n"
    "  out = {1, now, 0, 0, 0, 0, 0}\n"
    "  for i = 1, ns do\n"
    "    local x = st[i]\n"
    "    x[2] = x[2] + 1\n"
    "    x[3] = x[3] + et\n"
    "    redis.call('HMSET', x[1], 'win', s(win), 'rq', s(x[2]), 'tk', s(x[3]), 'par', s(x[4] + 1),\n"
    "      'pend', s(x[5]), 'sp', s(x[6]), 'rs', s(x[7] + em), 'dur', s(x[8]))\n"
    "    local keep = 86400000\n"
    "    if x[5] > now then keep = keep + (x[5] - now) end\n"
    "    redis.call('PEXPIRE', x[1], keep)\n"
    "  end\n"
    "  redis.call('SET', rk, cjson.encode({s = names, t = s(et), m = s(em), w = s(win)}))\n"
    "  redis.call('ZADD', KEYS[1], now + ttl, id)\n"
    "end\n"
    "for i = 1, ns do\n"
    "  local x = st[i]\n"
    "  out[#out + 1] = x[2]; out[#out + 1] = x[3]; out[#out + 1] = x[5]; out[#out + 1] = x[6]\n"
    "  out[#out + 1] = x[9]\n"
    "end\n"
    "return out\n";

enum { ST_DOWN = 0, ST_CONNECTING, ST_UP };

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define TICK_MS 100
#define ARGV_MAX (11 + 8 * GW_LIMITS_MAX_SCOPES)
#define STORE_MAX (GW_LIMITS_MAX_SCOPES * (GW_LIMITS_ID_MAX + 16 + 7 * 24) + 256)

typedef struct rconn rconn_t;
typedef struct rop rop_t;

struct gw_limits_loop {
    gw_limits_t *lim;
    h2o_evloop_t *loop;
    rconn_t *rc; /* the live connection, NULL when down */
    int state;
    int64_t backoff_ms;
    h2o_timeout_t retry_list; /* zero duration; the entry's registered_at is the deadline */
    h2o_timeout_entry_t retry;
    h2o_timeout_t tick_list; /* TICK_MS: checks the oldest command's age */
    h2o_timeout_entry_t tick;
    rop_t *oldest, *newest; /* commands in flight, in send order */
};

/* One hiredis connection and the h2o socket around its fd. */
struct rconn {
    gw_limits_loop_t *lp;
    redisAsyncContext *ac;
    h2o_socket_t *sock;
    int want_write;
    int in_io; /* inside on_read/on_write: cleanup defers the free */
    int dead;  /* hiredis called cleanup */
};

struct rop {
    rop_t *older, *newer;
    gw_limits_loop_t *lp;
    char mode; /* 'a' admit, 's' settle, 'r' release */
    int resent;
    uint64_t sent_at;
    gw_limits_admit_cb acb;
    gw_limits_done_cb dcb;
    void *ud;
    gw_limits_req_t req; /* admit: a copy pointing into scopes/ids */
    gw_limits_scope_t scopes[GW_LIMITS_MAX_SCOPES];
    char ids[GW_LIMITS_MAX_SCOPES][GW_LIMITS_ID_MAX];
    char reqid[GW_LIMITS_ID_MAX];
    int argc;
    const char *argv[ARGV_MAX];
    size_t argvlen[ARGV_MAX];
    size_t used;
    char store[STORE_MAX];
};

void gw_limits_redis_init(gw_limits_t *lim)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)SCRIPT, sizeof(SCRIPT) - 1, md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(lim->sha + 2 * i, 3, "%02x", md[i]);
}

int gw_limits_uses_redis(const gw_limits_t *lim, int *fail_closed)
{
    if (fail_closed != NULL)
        *fail_closed = lim->cfg.fail_closed;
    return lim->cfg.backend == GW_LIMITS_REDIS;
}

int gw_limits_redis_ok(const gw_limits_t *lim)
{
    if (lim->cfg.backend != GW_LIMITS_REDIS)
        return 1;
    int n = atomic_load(&((gw_limits_t *)lim)->n_loops), up = atomic_load(&((gw_limits_t *)lim)->n_up);
    return n > 0 && up == n;
}

/* ---- hiredis on the h2o loop -------------------------------------------------------------------- */

static void on_sock_write(h2o_socket_t *sock, const char *err);

static void rc_rearm(rconn_t *rc)
{
    if (rc->sock != NULL && rc->want_write && !h2o_socket_is_writing(rc->sock))
        h2o_socket_notify_write(rc->sock, on_sock_write);
}

/* After an I/O handler: frees a connection hiredis cleaned up meanwhile, else re-arms writing. */
static void rc_after_io(rconn_t *rc)
{
    rc->in_io = 0;
    if (rc->dead)
        free(rc);
    else
        rc_rearm(rc);
}

static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    rconn_t *rc = sock->data;
    rc->in_io = 1;
    redisAsyncHandleRead(rc->ac);
    rc_after_io(rc);
}

static void on_sock_write(h2o_socket_t *sock, const char *err)
{
    rconn_t *rc = sock->data;
    if (!rc->want_write)
        return;
    rc->in_io = 1;
    redisAsyncHandleWrite(rc->ac);
    rc_after_io(rc);
}

static void ev_add_read(void *p)
{
    rconn_t *rc = p;
    if (rc->sock)
        h2o_socket_read_start(rc->sock, on_sock_read);
}

static void ev_del_read(void *p)
{
    rconn_t *rc = p;
    if (rc->sock)
        h2o_socket_read_stop(rc->sock);
}

static void ev_add_write(void *p)
{
    rconn_t *rc = p;
    rc->want_write = 1;
    if (!rc->in_io)
        rc_rearm(rc);
}

static void ev_del_write(void *p)
{
    ((rconn_t *)p)->want_write = 0;
}

static void conn_lost(gw_limits_loop_t *lp, rconn_t *rc);

/* hiredis is about to close its fd (every way a context dies ends here, before hiredis's own
 * disconnect callback, which we do not use since it runs after this): the loop stops using the
 * connection, and the socket stops being watched without closing the fd (DESIGN §3). */
static void ev_cleanup(void *p)
{
    rconn_t *rc = p;
    conn_lost(rc->lp, rc);
    if (rc->sock != NULL) {
        h2o_socket_export_t info;
        rc->sock->_cb.write = NULL; /* a pending write notification would assert in export */
        h2o_socket_read_stop(rc->sock);
        if (h2o_socket_export(rc->sock, &info) == 0)
            h2o_buffer_dispose(&info.input);
        rc->sock = NULL;
    }
    rc->want_write = 0;
    rc->dead = 1;
    if (!rc->in_io)
        free(rc);
}

static void schedule_retry(gw_limits_loop_t *lp);

/* The connection rc is gone or going: lp stops using it (idempotent). */
static void conn_lost(gw_limits_loop_t *lp, rconn_t *rc)
{
    if (lp == NULL || lp->rc != rc || rc == NULL)
        return;
    lp->rc = NULL;
    rc->lp = NULL;
    if (lp->state == ST_UP)
        atomic_fetch_sub(&lp->lim->n_up, 1);
    lp->state = ST_DOWN;
    schedule_retry(lp);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn_t *rc = ac->ev.data;
    gw_limits_loop_t *lp = rc->lp;
    if (lp == NULL || lp->rc != rc)
        return;
    if (status != REDIS_OK) {
        conn_lost(lp, rc);
        return;
    }
    lp->state = ST_UP;
    lp->backoff_ms = BACKOFF_MIN_MS;
    atomic_fetch_add(&lp->lim->n_up, 1);
}

/* Replies to AUTH / SELECT / SCRIPT LOAD: an error there makes the connection useless. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "tollgate: redis limits: %s failed: %.200s\n", (const char *)privdata, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void do_connect(gw_limits_loop_t *lp)
{
    gw_limits_t *lim = lp->lim;
    redisAsyncContext *ac = redisAsyncConnect(lim->addr, lim->cfg.redis_port);
    if (ac == NULL || ac->err) {
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_retry(lp);
        return;
    }
    rconn_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL) {
        redisAsyncFree(ac);
        schedule_retry(lp);
        return;
    }
    rc->lp = lp;
    rc->ac = ac;
    rc->sock = h2o_evloop_socket_create(lp->loop, ac->c.fd, H2O_SOCKET_FLAG_DONT_READ);
    rc->sock->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    lp->rc = rc;
    lp->state = ST_CONNECTING;
    if (lim->cfg.redis_password != NULL && lim->cfg.redis_password[0] != '\0') {
        const char *argv[2] = {"AUTH", lim->cfg.redis_password};
        redisAsyncCommandArgv(ac, on_setup_reply, (void *)"AUTH", 2, argv, NULL);
    }
    if (lim->cfg.redis_db > 0)
        redisAsyncCommand(ac, on_setup_reply, (void *)"SELECT", "SELECT %d", lim->cfg.redis_db);
    const char *argv[3] = {"SCRIPT", "LOAD", SCRIPT};
    size_t lens[3] = {6, 4, sizeof(SCRIPT) - 1};
    redisAsyncCommandArgv(ac, on_setup_reply, (void *)"SCRIPT LOAD", 3, argv, lens);
}

static void on_retry(h2o_timeout_entry_t *e)
{
    gw_limits_loop_t *lp = H2O_STRUCT_FROM_MEMBER(gw_limits_loop_t, retry, e);
    if (lp->state == ST_DOWN && lp->rc == NULL)
        do_connect(lp);
}

static void schedule_retry(gw_limits_loop_t *lp)
{
    if (h2o_timeout_is_linked(&lp->retry))
        return;
    h2o_timeout_link(lp->loop, &lp->retry_list, &lp->retry);
    lp->retry.registered_at = h2o_now(lp->loop) + (uint64_t)lp->backoff_ms;
    lp->backoff_ms = lp->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : lp->backoff_ms * 2;
}

/* ---- commands ---------------------------------------------------------------------------------- */

/* A real monotonic clock: h2o_now is the loop's cached time, stale by however long the current
 * iteration has run, which would age a command before it is sent. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void op_link(gw_limits_loop_t *lp, rop_t *op)
{
    op->older = lp->newest;
    op->newer = NULL;
    if (lp->newest)
        lp->newest->newer = op;
    else
        lp->oldest = op;
    lp->newest = op;
    op->sent_at = mono_ms();
    if (!h2o_timeout_is_linked(&lp->tick))
        h2o_timeout_link(lp->loop, &lp->tick_list, &lp->tick);
}

static void op_unlink(gw_limits_loop_t *lp, rop_t *op)
{
    if (op->older)
        op->older->newer = op->newer;
    else
        lp->oldest = op->newer;
    if (op->newer)
        op->newer->older = op->older;
    else
        lp->newest = op->older;
    op->older = op->newer = NULL;
}

/* Answers an operation as if Redis were unavailable, and frees it. */
static void op_unavailable(rop_t *op)
{
    gw_limits_t *lim = op->lp->lim;
    if (op->mode == 'a') {
        gw_limits_result_t res;
        if (lim->cfg.fail_closed)
            gw_limits_result_plain(&res, GW_LIMITS_UNAVAILABLE);
        else
            gw_limits_local_admit(lim, &op->req, &res);
        op->acb(op->ud, &res);
    } else if (op->dcb != NULL) {
        op->dcb(op->ud, 0);
    }
    free(op);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static int op_send(gw_limits_loop_t *lp, rop_t *op)
{
    if (lp->rc == NULL || lp->state == ST_DOWN)
        return -1;
    if (redisAsyncCommandArgv(lp->rc->ac, on_reply, op, op->argc, op->argv, op->argvlen) != REDIS_OK)
        return -1;
    op_link(lp, op);
    return 0;
}

static int64_t int_at(const redisReply *r, size_t i)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return 0;
    return (int64_t)r->element[i]->integer;
}

static void admit_reply(rop_t *op, const redisReply *r)
{
    gw_limits_result_t res;
    size_t ns = op->req.n_scopes;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        op_unavailable(op);
        return;
    }
    int64_t status = int_at(r, 0), now = int_at(r, 1);
    if (status == 2) {
        gw_limits_result_plain(&res, GW_LIMITS_INVALID);
    } else if (r->elements != 7 + 5 * ns) {
        op_unavailable(op);
        return;
    } else {
        gw_limits_seen_t seen[GW_LIMITS_MAX_SCOPES];
        for (size_t i = 0; i < ns; i++) {
            seen[i].rq = int_at(r, 7 + 5 * i);
            seen[i].tk = int_at(r, 8 + 5 * i);
            seen[i].pend = int_at(r, 9 + 5 * i);
            seen[i].sp = int_at(r, 10 + 5 * i);
            seen[i].rolled = int_at(r, 11 + 5 * i) != 0;
        }
        int idx = status == 1 ? -1 : (int)int_at(r, 2) - 1;
        if (status != 1 && (idx < 0 || (size_t)idx >= ns)) {
            op_unavailable(op);
            return;
        }
        gw_limits_fill_result(&op->req, seen, now, idx, (gw_limits_which_t)int_at(r, 3), int_at(r, 4),
                              int_at(r, 5), int_at(r, 6), &res);
    }
    res.via_redis = 1;
    op->acb(op->ud, &res);
    free(op);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rop_t *op = privdata;
    gw_limits_loop_t *lp = op->lp;
    redisReply *reply = r;
    op_unlink(lp, op);
    if (reply == NULL) { /* the connection is going away */
        conn_lost(lp, ac->ev.data);
        op_unavailable(op);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (!op->resent && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
            op->resent = 1;
            op->argv[0] = "EVAL";
            op->argvlen[0] = 4;
            op->argv[1] = SCRIPT;
            op->argvlen[1] = sizeof(SCRIPT) - 1;
            if (op_send(lp, op) == 0)
                return;
        } else {
            fprintf(stderr, "tollgate: redis limits: script error: %.300s\n", reply->str);
        }
        op_unavailable(op);
        return;
    }
    if (op->mode == 'a') {
        admit_reply(op, reply);
        return;
    }
    if (op->dcb != NULL)
        op->dcb(op->ud, reply->type == REDIS_REPLY_INTEGER && reply->integer == 1);
    free(op);
}

/* Every TICK_MS while commands are in flight: a reply overdue by redis_timeout_ms drops the
 * connection (hiredis 0.14 has no command timeout of its own). */
static void on_tick(h2o_timeout_entry_t *e)
{
    gw_limits_loop_t *lp = H2O_STRUCT_FROM_MEMBER(gw_limits_loop_t, tick, e);
    if (lp->oldest == NULL)
        return;
    if (mono_ms() - lp->oldest->sent_at >= (uint64_t)lp->lim->cfg.redis_timeout_ms && lp->rc != NULL) {
        rconn_t *rc = lp->rc;
        redisAsyncContext *ac = rc->ac;
        fprintf(stderr, "tollgate: redis limits: no reply within %" PRId64 " ms, reconnecting\n",
                lp->lim->cfg.redis_timeout_ms);
        conn_lost(lp, rc);
        redisAsyncFree(ac); /* answers every pending command with NULL */
    }
    if (lp->oldest != NULL && !h2o_timeout_is_linked(&lp->tick))
        h2o_timeout_link(lp->loop, &lp->tick_list, &lp->tick);
}

/* Appends one argument (a copy of s, n bytes) to op; -1 past the ceiling. */
static int arg_add(rop_t *op, const char *s, size_t n)
{
    if (op->argc >= ARGV_MAX || n > sizeof(op->store) - op->used)
        return -1;
    memcpy(op->store + op->used, s, n);
    op->argv[op->argc] = op->store + op->used;
    op->argvlen[op->argc++] = n;
    op->used += n;
    return 0;
}

static int arg_int(rop_t *op, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return arg_add(op, tmp, (size_t)n);
}

static rop_t *op_new(gw_limits_loop_t *lp, char mode, const char *request_id)
{
    rop_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->lp = lp;
    op->mode = mode;
    char keys1[128];
    int kn = snprintf(keys1, sizeof(keys1), "%srexp", lp->lim->prefix);
    const char *pre = lp->lim->prefix;
    if (arg_add(op, "EVALSHA", 7) || arg_add(op, lp->lim->sha, 40) || arg_add(op, "1", 1) ||
        arg_add(op, keys1, (size_t)kn) || arg_add(op, pre, strlen(pre)) || arg_add(op, &mode, 1) ||
        arg_add(op, request_id, strlen(request_id))) {
        free(op);
        return NULL;
    }
    return op;
}

/* ---- the API ----------------------------------------------------------------------------------- */

gw_limits_loop_t *gw_limits_loop_attach(gw_limits_t *lim, h2o_evloop_t *loop)
{
    gw_limits_loop_t *lp = calloc(1, sizeof(*lp));
    if (lp == NULL)
        return NULL;
    lp->lim = lim;
    lp->loop = loop;
    lp->backoff_ms = BACKOFF_MIN_MS;
    h2o_timeout_init(loop, &lp->retry_list, 0);
    h2o_timeout_init(loop, &lp->tick_list, TICK_MS);
    lp->retry.cb = on_retry;
    lp->tick.cb = on_tick;
    if (lim->cfg.backend == GW_LIMITS_REDIS) {
        atomic_fetch_add(&lim->n_loops, 1);
        do_connect(lp);
    }
    return lp;
}

void gw_limits_loop_detach(gw_limits_loop_t *lp)
{
    if (lp == NULL)
        return;
    gw_limits_t *lim = lp->lim;
    if (h2o_timeout_is_linked(&lp->retry))
        h2o_timeout_unlink(&lp->retry);
    if (lp->rc != NULL) {
        redisAsyncContext *ac = lp->rc->ac;
        conn_lost(lp, lp->rc);
        redisAsyncFree(ac); /* pending commands complete as "unavailable" */
    }
    if (h2o_timeout_is_linked(&lp->retry))
        h2o_timeout_unlink(&lp->retry);
    if (h2o_timeout_is_linked(&lp->tick))
        h2o_timeout_unlink(&lp->tick);
    h2o_timeout_dispose(lp->loop, &lp->retry_list);
    h2o_timeout_dispose(lp->loop, &lp->tick_list);
    if (lim->cfg.backend == GW_LIMITS_REDIS)
        atomic_fetch_sub(&lim->n_loops, 1);
    free(lp);
}

static const char *scope_name(char *buf, size_t cap, const gw_limits_scope_t *s)
{
    snprintf(buf, cap, "%s:%s", gw_limits_kind_name(s->kind), s->id ? s->id : "");
    return buf;
}

void gw_limits_admit(gw_limits_loop_t *lp, const gw_limits_req_t *req, gw_limits_admit_cb cb, void *ud)
{
    gw_limits_t *lim = lp->lim;
    gw_limits_result_t res;
    if (!gw_limits_req_valid(req)) {
        gw_limits_result_plain(&res, GW_LIMITS_INVALID);
        cb(ud, &res);
        return;
    }
    if (lim->cfg.backend == GW_LIMITS_LOCAL) {
        gw_limits_local_admit(lim, req, &res);
        cb(ud, &res);
        return;
    }
    rop_t *op = op_new(lp, 'a', req->request_id);
    if (op == NULL) {
        gw_limits_result_plain(&res, GW_LIMITS_UNAVAILABLE);
        cb(ud, &res);
        return;
    }
    op->acb = cb;
    op->ud = ud;
    op->req = *req;
    snprintf(op->reqid, sizeof(op->reqid), "%s", req->request_id);
    op->req.request_id = op->reqid;
    op->req.scopes = op->scopes;
    int bad = arg_int(op, lim->cfg.reservation_ttl_ms) || arg_int(op, req->est_tokens) ||
              arg_int(op, req->est_micros) || arg_int(op, (int64_t)req->n_scopes);
    for (size_t i = 0; i < req->n_scopes && !bad; i++) {
        const gw_limits_scope_t *s = &req->scopes[i];
        char name[GW_LIMITS_ID_MAX + 16];
        op->scopes[i] = *s;
        snprintf(op->ids[i], sizeof(op->ids[i]), "%s", s->id ? s->id : "");
        op->scopes[i].id = op->ids[i];
        scope_name(name, sizeof(name), s);
        bad = arg_add(op, name, strlen(name)) || arg_int(op, s->rpm_limit) || arg_int(op, s->tpm_limit) ||
              arg_int(op, s->max_parallel) || arg_int(op, s->max_budget_micros) ||
              arg_int(op, s->budget_duration_ms) || arg_int(op, s->budget_reset_at_ms) ||
              arg_int(op, s->spend_micros);
    }
    if (bad) {
        free(op);
        gw_limits_result_plain(&res, GW_LIMITS_INVALID);
        cb(ud, &res);
        return;
    }
    if (op_send(lp, op) != 0)
        op_unavailable(op);
}

static void finish(gw_limits_loop_t *lp, char mode, const char *request_id, int64_t tokens, int64_t micros,
                   gw_limits_done_cb done, void *ud)
{
    gw_limits_t *lim = lp->lim;
    if (request_id == NULL || request_id[0] == '\0' || strlen(request_id) >= GW_LIMITS_ID_MAX) {
        if (done)
            done(ud, 0);
        return;
    }
    /* a reservation made locally (local backend, or fail_open while Redis was down) ends locally */
    int found = mode == 's' ? gw_limits_local_settle(lim, request_id, tokens, micros)
                            : gw_limits_local_release(lim, request_id);
    if (found || lim->cfg.backend == GW_LIMITS_LOCAL) {
        if (done)
            done(ud, found);
        return;
    }
    rop_t *op = op_new(lp, mode, request_id);
    if (op == NULL ||
        (mode == 's' && (arg_int(op, tokens < 0 ? 0 : tokens) || arg_int(op, micros < 0 ? 0 : micros)))) {
        free(op);
        if (done)
            done(ud, 0);
        return;
    }
    op->dcb = done;
    op->ud = ud;
    if (op_send(lp, op) != 0)
        op_unavailable(op);
}

void gw_limits_settle(gw_limits_loop_t *lp, const char *request_id, int64_t actual_tokens,
                      int64_t actual_micros, gw_limits_done_cb done, void *ud)
{
    finish(lp, 's', request_id, actual_tokens, actual_micros, done, ud);
}

void gw_limits_release(gw_limits_loop_t *lp, const char *request_id, gw_limits_done_cb done, void *ud)
{
    finish(lp, 'r', request_id, 0, 0, done, ud);
}

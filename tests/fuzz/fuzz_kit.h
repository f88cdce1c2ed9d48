/*
 * fuzz_kit.h — what the stream fuzz targets (fuzz_*_stream.c) share: the input layout (byte 0
 * flags, bytes 1-2 a little-endian cut offset, the rest the upstream's bytes), the check that
 * aborts on a violated property, a streaming chat request, and the driver that runs an
 * adapter's stream over the bytes fed in two pieces the way the core feeds them.
 *
 * Header-only (static functions) because CMake builds each tests/fuzz/fuzz_*.c on its own.
 */
#ifndef TG_FUZZ_KIT_H
#define TG_FUZZ_KIT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

/* Any violated property aborts, which libFuzzer reports as a crash with the input. */
static inline void check(int ok)
{
    if (!ok)
        abort();
}

/* A cut offset in [0, n] from two input bytes. */
static inline size_t fz_cut(const uint8_t *two, size_t n)
{
    return ((size_t)two[0] | (size_t)two[1] << 8) % (n + 1);
}

typedef struct fz_input {
    uint8_t flags;
    const char *p; /* the upstream's bytes */
    size_t n;
    size_t cut;
} fz_input_t;

/* Splits a fuzz input by the layout above; 0 when it is too short to have one. */
static inline int fz_input(const uint8_t *data, size_t size, fz_input_t *in)
{
    if (size < 3)
        return 0;
    in->flags = data[0];
    in->p = (const char *)data + 3;
    in->n = size - 3;
    in->cut = fz_cut(data + 1, in->n);
    return 1;
}

/* A streaming chat request as the core would hand it over, with a fixed clock and id. */
static inline void fz_chat_request(ad_request_t *req, int wants_usage)
{
    memset(req, 0, sizeof(*req));
    req->op = AD_OP_CHAT;
    req->stream = 1;
    req->include_usage = wants_usage;
    req->now = 1700000000;
    req->request_id = "fuzz";
}

/* What the driver does after a feed failed (the core does neither: it stops feeding). */
enum {
    FZ_FEED_AFTER_ERROR = 1u << 0,   /* feed the second piece anyway: it must fail the same way */
    FZ_FINISH_AFTER_ERROR = 1u << 1, /* call stream_finish anyway (else truncated is -1) */
    FZ_RC_ZERO_OR_MINUS1 = 1u << 2,  /* every feed returns 0 or -1 */
    FZ_STICKY_RETRY = 1u << 3,       /* after a failure, feeding the whole input again fails too */
};

typedef struct fz_outcome {
    int rc;        /* the first non-zero feed status, or 0 */
    int truncated; /* stream_finish's verdict; -1 when it was not called */
    int saw_error;
    ad_usage_t usage;
} fz_outcome_t;

/*
 * Runs ad's stream over p[0..n) fed as p[0..cut) then p[cut..n), events to emit(ud, …), with
 * the adapter's state allocated and freed as the core does; `how` is a set of FZ_* flags.
 */
static inline void fz_run_stream(const ad_adapter_t *ad, const ad_request_t *req, const char *p, size_t n,
                                 size_t cut, unsigned how, int (*emit)(void *, const ad_event_t *), void *ud,
                                 fz_outcome_t *out)
{
    ad_stream_t st;
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    st.req = req;
    st.priv = ad->state_size ? calloc(1, ad->state_size) : NULL;
    check(ad->state_size == 0 || st.priv != NULL);
    ad->stream_init(&st, req);
    st.emit = emit;
    st.emit_ud = ud;
    out->rc = ad->stream_feed(&st, p, cut);
    check(!(how & FZ_RC_ZERO_OR_MINUS1) || out->rc == 0 || out->rc == -1);
    if (out->rc == 0 || (how & FZ_FEED_AFTER_ERROR)) {
        int rc2 = ad->stream_feed(&st, p + cut, n - cut);
        check(!(how & FZ_RC_ZERO_OR_MINUS1) || rc2 == 0 || rc2 == -1);
        check(out->rc == 0 || rc2 == out->rc); /* once failed, it stays failed */
        if (out->rc == 0)
            out->rc = rc2;
    }
    if (out->rc != 0 && (how & FZ_STICKY_RETRY))
        check(ad->stream_feed(&st, p, n) == out->rc);
    out->truncated = out->rc == 0 || (how & FZ_FINISH_AFTER_ERROR) ? ad->stream_finish(&st) : -1;
    out->usage = st.usage;
    out->saw_error = st.saw_error;
    if (ad->stream_free != NULL)
        ad->stream_free(&st);
    ad_stream_free(&st);
    free(st.priv);
}

/* fz_run_stream on fz_chat_request (bit 0 of the input's flags asks for usage), with the
 * target's event log made ready first. */
static inline void fz_run_chat(const ad_adapter_t *ad, const fz_input_t *in, size_t cut, unsigned how,
                               int (*emit)(void *, const ad_event_t *), void *ud, ad_buf_t *log,
                               fz_outcome_t *out)
{
    ad_request_t req;
    fz_chat_request(&req, in->flags & 1);
    ad_buf_init(log, (size_t)1 << 30);
    fz_run_stream(ad, &req, in->p, in->n, cut, how, emit, ud, out);
}

/* Two event logs hold the same bytes. */
static inline void fz_check_same_log(const ad_buf_t *a, const ad_buf_t *b)
{
    check(a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0));
}

/* Whole and split runs agree: feed status, truncation verdict, usage and the event logs. */
static inline void fz_check_same(const fz_outcome_t *a, const fz_outcome_t *b, const ad_buf_t *log_a,
                                 const ad_buf_t *log_b)
{
    check(a->rc == b->rc && a->truncated == b->truncated);
    check(memcmp(&a->usage, &b->usage, sizeof(a->usage)) == 0);
    fz_check_same_log(log_a, log_b);
}

/* The part of a stream target's result the kit compares; each target's result starts with it. */
typedef struct fz_result {
    ad_buf_t log; /* the target's rendering of every event */
    fz_outcome_t out;
} fz_result_t;

/* A target's run of its adapter over in's bytes cut at `cut`, into its result (fz_result_t first). */
typedef void (*fz_run_fn)(const fz_input_t *in, size_t cut, void *result);

/* A target's own properties of the two runs; it also frees what the target added to them. */
typedef void (*fz_more_fn)(const fz_input_t *in, void *whole, void *split);

/*
 * The libFuzzer entry point of a stream target: splits the input, runs the target whole and cut
 * at the input's offset into `whole` and `split`, checks they agree (fz_check_same), lets `more`
 * (may be NULL) check the rest, and frees the logs.
 */
static inline int fz_stream_target(const uint8_t *data, size_t size, fz_run_fn run, fz_more_fn more,
                                   void *whole, void *split)
{
    fz_input_t in;
    if (!fz_input(data, size, &in))
        return 0;
    run(&in, in.n, whole);
    run(&in, in.cut, split);
    fz_result_t *a = whole, *b = split;
    fz_check_same(&a->out, &b->out, &a->log, &b->log);
    if (more != NULL)
        more(&in, whole, split);
    ad_buf_free(&a->log);
    ad_buf_free(&b->log);
    return 0;
}

#endif

/* Blocking one-call helpers (nestc/client.h, "Blocking calls"): an asynchronous call on the client, and
 * the client's loop run until its on_done. Built on the public call API only. */
#include <stddef.h>
#include <stdlib.h>

#include <jansson.h>
#include <uv.h>

#include "core/client_internal.h"
#include "core/loop_run.h"
#include "nestc/client.h"
#include "nestc/error.h"

typedef struct sync_call {
    json_t *last;  /* the last reply value (a reference), NULL before any */
    json_t *error; /* on_done's error value (a reference), or NULL */
    int err;
    int done;
} sync_call;

static void sync_value(void *user, json_t *value) {
    sync_call *s = user;
    json_decref(s->last);
    s->last = json_incref(value);
}

static void sync_done(void *user, int err, json_t *error) {
    sync_call *s = user;
    if (s->done < 0) { /* its caller gave up waiting (nc_client_emit_sync) */
        free(s);
        return;
    }
    s->err = err;
    s->error = error ? json_incref(error) : NULL;
    s->done = 1;
}

/* Runs `loop` until the call is done. Each turn is one loop iteration, which blocks until something
 * happens; the call always ends (its timeout, the connection's end), unless the loop runs out of handles
 * first (a timeout of NC_LIMIT_OFF and no connection left): then the call is cancelled rather than
 * waited for forever. */
static void drive(nc_client *cli, sync_call *s, nc_call *call) {
    uv_loop_t *loop = nc_client_loop(cli);
    /* The request's bytes out now: an iteration flushes only in its prepare phase, after which it may
     * block for I/O; an event completed by that flush (it has no reply) would leave it blocked. */
    nc_ioctx_flush(nc_client__io(cli));
    while (!s->done) {
        if (!nc_loop_run(loop, UV_RUN_ONCE) && !s->done) {
            nc_call_cancel(call); /* on_done runs at once with NC_ECANCELED */
            break;
        }
    }
    /* completed writes and close callbacks of this turn land now, as nc_client_run lets them */
    nc_loop_run(loop, UV_RUN_NOWAIT);
}

/* The result of a finished call, handed over as the header says. */
static int finish(sync_call *s, json_t **reply, json_t **error) {
    if (s->err == 0 && reply) {
        *reply = s->last;
        s->last = NULL;
    }
    if (s->err && error) {
        *error = s->error;
        s->error = NULL;
    }
    json_decref(s->last);
    json_decref(s->error);
    return s->err;
}

static int refuse(nc_client *cli, json_t **reply, json_t **error) {
    if (reply) *reply = NULL;
    if (error) *error = NULL;
    if (!cli) return NC_EINVAL;
    return nc_loop_running_here(nc_client_loop(cli)) ? NC_ESTATE : 0;
}

int nc_client_send_sync(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *opts,
                        json_t **reply, json_t **error) {
    int r = refuse(cli, reply, error);
    if (r) return r;
    sync_call s = {0};
    nc_call_cbs cbs = {.on_value = sync_value, .on_done = sync_done};
    nc_call *call = NULL;
    r = nc_client_call(cli, pattern, data, opts, &cbs, &s, &call);
    if (r) return r;
    /* a send: the data is the whole request (a request stream of one message, ended); NC_ESTATE when the
     * call is done already, and transports without request streams have nothing to end */
    nc_call_end(call);
    drive(cli, &s, call);
    return finish(&s, reply, error);
}

int nc_client_emit_sync(nc_client *cli, const char *pattern, const json_t *data, const nc_call_opts *opts,
                        json_t **error) {
    int r = refuse(cli, NULL, error);
    if (r) return r;
    /* On the heap: an event has no call to cancel, so if the loop ran dry before the transport took the
     * event (it should not: a connection attempt or a queued write keeps a handle active), on_done may
     * still come after this returns and must find live memory. */
    sync_call *s = calloc(1, sizeof *s);
    if (!s) return NC_ENOMEM;
    r = nc_client_emit(cli, pattern, data, opts, sync_done, s);
    if (r) {
        free(s);
        return r;
    }
    uv_loop_t *loop = nc_client_loop(cli);
    nc_ioctx_flush(nc_client__io(cli)); /* see drive() */
    while (!s->done) {
        if (!nc_loop_run(loop, UV_RUN_ONCE) && !s->done) break;
    }
    if (!s->done) {
        s->done = -1;
        if (error) *error = json_string("the loop ran out of work before the event was sent");
        return NC_ECANCELED;
    }
    nc_loop_run(loop, UV_RUN_NOWAIT);
    r = finish(s, NULL, error);
    free(s);
    return r;
}

/* async-reply-service: a handler that answers later, the way a NestJS handler returns a Promise:
 *
 *   @MessagePattern({ cmd: 'double_later' })
 *   async doubleLater({ value, delay_ms }) {
 *     await new Promise((resolve) => setTimeout(resolve, delay_ms));
 *     return value * 2;
 *   }
 *
 * In C the handler starts a libuv timer and returns at once; the request stays open (nothing is sent)
 * until the timer fires and calls nc_reply. Meanwhile the loop serves other requests, so a slow request
 * never holds up a quick one.
 *
 * Usage: async-reply-service [url]   (default tcp://127.0.0.1:3000; Ctrl-C stops it gracefully) */
#include <stdio.h>
#include <stdlib.h>

#include <nestc/nestc.h>
#include <uv.h>

/* One pending answer: the timer and the request it will finish. */
typedef struct job {
    uv_timer_t timer; /* first member: the handle's address is the job's */
    nc_request *req;  /* a handle, not memory: safe to keep until the request is finished */
    json_int_t value;
} job;

static void job_free(uv_handle_t *h) {
    free(h->data);
}

/* The "Promise resolves": reply, which finishes the request, then release the timer. */
static void on_timer(uv_timer_t *timer) {
    job *j = timer->data;
    nc_reply(j->req, json_integer(2 * j->value)); /* the value is stolen: no decref */
    uv_close((uv_handle_t *)timer, job_free);
}

/* Nobody can receive the answer any more (the caller disconnected, or the server's shutdown deadline
 * passed): stop the work and finish the request; nc_reply_end sends nothing now, it releases it. */
static void on_cancel(nc_request *req, void *arg) {
    job *j = arg;
    uv_timer_stop(&j->timer);
    uv_close((uv_handle_t *)&j->timer, job_free);
    nc_reply_end(req);
}

static void on_double_later(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    json_t *data = nc_msg_data(msg); /* borrowed: read what we need now */
    json_t *value = json_object_get(data, "value");
    json_int_t delay = json_integer_value(json_object_get(data, "delay_ms"));
    if (!json_is_integer(value) || delay < 0) {
        nc_reply_error_msg(req, "expected {value: integer, delay_ms: integer >= 0}"); /* throw RpcException */
        return;
    }
    job *j = malloc(sizeof *j);
    if (!j) {
        nc_reply_error_msg(req, "out of memory");
        return;
    }
    j->req = req;
    j->value = json_integer_value(value);
    /* The request's own loop (with several workers each has one): the timer runs on the thread that
     * serves this request, where nc_reply must be called. */
    uv_timer_init(nc_request_loop(req), &j->timer);
    j->timer.data = j;
    uv_timer_start(&j->timer, on_timer, (uint64_t)delay, 0);
    nc_request_on_cancel(req, on_cancel, j);
    /* Return without replying: the request stays open until on_timer or on_cancel finishes it. */
}

static void on_status(void *user, const char *status, int err) {
    nc_server *srv = user;
    if (err == 0 && status[0] == 'c')
        printf("async-reply-service listening on port %d\n", nc_server_port(srv));
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:3000";
    nc_server *srv;
    int r = nc_server_new(&srv, url, NULL);
    if (r) {
        fprintf(stderr, "async-reply-service: %s\n", nc_strerror(r));
        return 1;
    }
    nc_server_message(srv, "{\"cmd\":\"double_later\"}", on_double_later, NULL);
    nc_server_on_status(srv, on_status, srv);
    nc_server_handle_signals(srv); /* SIGINT/SIGTERM: pending timers get shutdown_timeout_ms to fire */
    r = nc_server_run(srv);
    nc_server_free(srv);
    if (r) fprintf(stderr, "async-reply-service: %s\n", nc_strerror(r));
    return r ? 1 : 0;
}

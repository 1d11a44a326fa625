/* For broker libraries with their own threads or sockets (librdkafka's threads, libmosquitto's socket):
 *
 * nc_post, a queue that moves work from any thread onto a loop: one uv_async per queue, a mutex-protected
 * list, FIFO, everything queued drained at each wake-up (uv_async_send coalesces wake-ups, so one wake can
 * carry thousands of items). No allocation per item in the steady state: two arrays swap between the
 * posting threads and the loop.
 *
 * nc_poll, a uv_poll adapter: watches a socket the library owns for whatever the library asks (read,
 * write, both, nothing) and calls back on the loop.
 *
 * Private. */
#ifndef NC_IO_POST_H
#define NC_IO_POST_H

#include <uv.h>

typedef struct nc_post nc_post;

/* Runs on the loop's thread. cancelled = 1 when the queue was freed before the item ran: release what
 * arg holds and do no work. */
typedef void (*nc_post_fn)(void *arg, int cancelled);

/* Creates a queue on loop (loop thread). Returns 0, NC_ENOMEM or NC_EIO. */
int nc_post_new(nc_post **out, uv_loop_t *loop);
/* Any thread: queues fn(arg, 0) to run on the loop, after everything posted before by this thread.
 * Returns 0, NC_ENOMEM, or NC_ECLOSED once nc_post_free started. The caller makes sure no thread posts
 * after nc_post_free returned (join or stop the library's threads first): the queue is gone then. */
int nc_post_push(nc_post *q, nc_post_fn fn, void *arg);
/* Loop thread. Items still queued are dropped: each one's fn runs now with cancelled = 1, in order, so
 * nothing they own leaks. The handle closes asynchronously: the memory goes once the loop ran its close
 * callback (the owner of the loop runs it, e.g. while freeing the server or client). */
void nc_post_free(nc_post *q);

typedef struct nc_poll nc_poll;

/* status: 0 or a libuv error (the watch is stopped then); events: UV_READABLE / UV_WRITABLE that are
 * ready. Loop thread. */
typedef void (*nc_poll_fn)(nc_poll *p, int status, int events, void *arg);

/* Watches socket fd, which the caller keeps owning (and closes after nc_poll_free). Nothing is watched
 * until nc_poll_want. Returns 0, NC_ENOMEM or NC_EIO. Loop thread. */
int nc_poll_new(nc_poll **out, uv_loop_t *loop, uv_os_sock_t fd, nc_poll_fn cb, void *arg);
/* What to watch now: UV_READABLE | UV_WRITABLE, or 0 to stop. Returns 0 or NC_EIO. Loop thread. */
int nc_poll_want(nc_poll *p, int events);
/* The events watched now. */
int nc_poll_wanted(const nc_poll *p);
/* Stops watching and closes; cb is not called after. The memory goes with the close callback. */
void nc_poll_free(nc_poll *p);

#endif

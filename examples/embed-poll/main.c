/* embed-poll: a nestc client inside a program that runs its own poll() loop instead of libuv's
 * (docs/embedding.md). It calls the math service's {cmd:'sum'}, like examples/math-client, but the
 * program owns the loop:
 *
 *   - nestc gets a libuv loop of its own (nc_client_opts.loop), which the program never runs blocking;
 *   - the program adds that loop's one file descriptor, uv_backend_fd(), to its poll() set, and bounds
 *     its poll() timeout by uv_backend_timeout() (nestc's next timer: request and connect timeouts);
 *   - after each poll() it lets nestc do its work with uv_run(loop, UV_RUN_NOWAIT), which never blocks.
 *     nestc's callbacks run there, on the program's thread.
 * This is how hiredis adapters and curl's multi_socket API fit into foreign event loops.
 *
 * Usage: embed-poll [url] [numbers...]   (default tcp://127.0.0.1:3000 and 1 2 3 4 5) */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <nestc/nestc.h>
#include <uv.h>

static int done, status = 1;

static void on_value(void *user, json_t *value) {
    (void)user;
    char *text = json_dumps(value, JSON_ENCODE_ANY);
    printf("sum = %s\n", text ? text : "?");
    free(text);
}

static void on_done(void *user, int err, json_t *error) {
    (void)user;
    if (err) {
        char *text = json_dumps(error, JSON_ENCODE_ANY);
        fprintf(stderr, "embed-poll: %s: %s\n", nc_strerror(err), text ? text : "");
        free(text);
    }
    status = err ? 1 : 0;
    done = 1;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:3000";
    json_t *numbers = json_array();
    for (int i = 2; i < argc; i++) json_array_append_new(numbers, json_real(atof(argv[i])));
    if (argc <= 2)
        for (int i = 1; i <= 5; i++) json_array_append_new(numbers, json_integer(i));

    /* nestc's loop: initialised here, but only ever run with UV_RUN_NOWAIT from the loop below. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    nc_client_opts opts = NC_CLIENT_OPTS_INIT;
    opts.loop = &loop; /* borrowed: the client does not create, run or close a loop of its own */
    nc_client *cli;
    int r = nc_client_new(&cli, url, &opts);
    if (r) {
        fprintf(stderr, "embed-poll: %s\n", nc_strerror(r));
        json_decref(numbers);
        return 1;
    }
    r = nc_client_send(cli, "{\"cmd\":\"sum\"}", numbers, NULL, on_value, on_done, NULL);
    json_decref(numbers); /* data is borrowed by send */
    if (r) done = 1;      /* refused at once: the callbacks will not run */

    /* The program's own loop. Besides nestc it has work of its own: a heartbeat every 100 ms. */
    long long next_tick = now_ms() + 100;
    int ticks = 0;
    while (!done) {
        /* Sleep until nestc's descriptor is readable, nestc's next timer is due, or our own is. */
        int timeout = uv_backend_timeout(&loop); /* ms; -1 = nestc has no timer; 0 = work is pending */
        long long mine = next_tick - now_ms();
        if (mine < 0) mine = 0;
        if (timeout < 0 || timeout > mine) timeout = (int)mine;
        struct pollfd pfd = {.fd = uv_backend_fd(&loop), .events = POLLIN};
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR) {
            perror("embed-poll: poll");
            break;
        }
        /* nestc's turn: reads, writes, expired timers, callbacks (on_value, on_done). Never blocks. */
        uv_run(&loop, UV_RUN_NOWAIT);
        if (now_ms() >= next_tick) { /* the program's own work */
            ticks++;
            next_tick += 100;
        }
    }
    fprintf(stderr, "embed-poll: done after %d heartbeat(s) of the program's own\n", ticks);

    /* nc_client_free closes the connection and runs the loop until the client's handles are closed
     * (briefly, and blocking: nothing else of ours is on this loop); then the loop can be closed. */
    nc_client_free(cli);
    if (uv_loop_close(&loop) != 0) fprintf(stderr, "embed-poll: the loop still has handles\n");
    return status;
}

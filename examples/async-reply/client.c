/* async-reply-client: how a caller sees handlers that answer later. Three calls go out at once:
 *
 *   client.send({ cmd: 'double_later' }, { value: 1, delay_ms: 400 })
 *   client.send({ cmd: 'double_later' }, { value: 2, delay_ms: 150 })
 *   client.send({ cmd: 'double_later' }, { value: 3, delay_ms: 2000 }).pipe(timeout(50))
 *
 * The replies arrive as each handler finishes, not in the order sent (each is matched to its call by
 * the request id), and a call whose answer takes longer than its timeout fails with NC_ETIMEDOUT; its
 * late reply, if it ever comes, is dropped. Expected output (the quicker answer first):
 *
 *   double_later(3): timed out
 *   double_later(2) = 4
 *   double_later(1) = 2
 *
 * Usage: async-reply-client [url]   (default tcp://127.0.0.1:3000) */
#include <stdio.h>
#include <stdlib.h>

#include <nestc/nestc.h>

/* What a call's callbacks need: the value it asked about, and the program's exit status. */
typedef struct call {
    int value;
    int *failures;
} call;

static void on_value(void *user, json_t *reply) {
    call *c = user;
    printf("double_later(%d) = %lld\n", c->value, (long long)json_integer_value(reply));
    fflush(stdout);
}

static void on_done(void *user, int err, json_t *error) {
    call *c = user;
    if (err == NC_ETIMEDOUT) {
        printf("double_later(%d): timed out\n", c->value);
    } else if (err) { /* NC_EREMOTE: `error` is the handler's error value; else a local failure */
        char *text = json_dumps(error, JSON_ENCODE_ANY);
        printf("double_later(%d): %s %s\n", c->value, nc_err_name(err), text ? text : "");
        free(text);
        (*c->failures)++;
    }
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:3000";
    nc_client *cli;
    int r = nc_client_new(&cli, url, NULL);
    if (r) {
        fprintf(stderr, "async-reply-client: %s\n", nc_strerror(r));
        return 1;
    }
    int failures = 0;
    call calls[] = {{1, &failures}, {2, &failures}, {3, &failures}};
    int delays[] = {400, 150, 2000};
    for (int i = 0; i < 3; i++) {
        nc_call_opts opts = NC_CALL_OPTS_INIT;
        if (calls[i].value == 3) opts.timeout_ms = 50; /* shorter than the handler takes */
        json_t *data = json_pack("{s:i, s:i}", "value", calls[i].value, "delay_ms", delays[i]);
        r = nc_client_send(cli, "{\"cmd\":\"double_later\"}", data, &opts, on_value, on_done, &calls[i]);
        json_decref(data); /* data is borrowed by send */
        if (r) {
            fprintf(stderr, "async-reply-client: %s\n", nc_strerror(r));
            failures++;
        }
    }
    nc_client_run(cli); /* runs the loop until every call is done */
    nc_client_free(cli);
    return failures ? 1 : 0;
}

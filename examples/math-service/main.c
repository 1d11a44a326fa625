/* math-service: the NestJS "{cmd:'sum'}" microservice, in C.
 *
 *   @MessagePattern({ cmd: 'sum' })
 *   accumulate(data: number[]): number { return (data || []).reduce((a, b) => a + b); }
 *
 * Usage: math-service [url]   (default tcp://127.0.0.1:3000; Ctrl-C stops it gracefully) */
#include <stdio.h>

#include <nestc/nestc.h>

static void on_sum(nc_request *req, const nc_msg *msg, void *user) {
    (void)user;
    json_t *data = nc_msg_data(msg);
    double sum = 0;
    size_t i;
    json_t *v;
    if (!json_is_array(data)) {
        nc_reply_error_msg(req, "expected an array of numbers");
        return;
    }
    json_array_foreach(data, i, v) sum += json_number_value(v);
    nc_reply(req, json_real(sum)); /* the value is stolen: no decref */
}

static void on_status(void *user, const char *status, int err) {
    nc_server *srv = user;
    if (err == 0 && status[0] == 'c') printf("math-service listening on port %d\n", nc_server_port(srv));
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:3000";
    nc_server *srv;
    int r = nc_server_new(&srv, url, NULL);
    if (r) {
        fprintf(stderr, "math-service: %s\n", nc_strerror(r));
        return 1;
    }
    nc_server_message(srv, "{\"cmd\":\"sum\"}", on_sum, NULL);
    nc_server_on_status(srv, on_status, srv);
    nc_server_handle_signals(srv);
    r = nc_server_run(srv);
    nc_server_free(srv);
    if (r) fprintf(stderr, "math-service: %s\n", nc_strerror(r));
    return r ? 1 : 0;
}

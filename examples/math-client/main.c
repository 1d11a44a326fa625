/* math-client: calls the math service's {cmd:'sum'} like a NestJS ClientProxy would:
 *
 *   this.client.send({ cmd: 'sum' }, [1, 2, 3, 4, 5])
 *
 * Usage: math-client [url] [numbers...]   (default tcp://127.0.0.1:3000 and 1 2 3 4 5) */
#include <stdio.h>
#include <stdlib.h>

#include <nestc/nestc.h>

static void on_value(void *user, json_t *value) {
    (void)user;
    char *text = json_dumps(value, JSON_ENCODE_ANY);
    printf("sum = %s\n", text ? text : "?");
    free(text);
}

static void on_done(void *user, int err, json_t *error) {
    int *status = user;
    if (err) {
        char *text = json_dumps(error, JSON_ENCODE_ANY);
        fprintf(stderr, "math-client: %s: %s\n", nc_strerror(err), text ? text : "");
        free(text);
    }
    *status = err ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:3000";
    json_t *numbers = json_array();
    for (int i = 2; i < argc; i++) json_array_append_new(numbers, json_real(atof(argv[i])));
    if (argc <= 2)
        for (int i = 1; i <= 5; i++) json_array_append_new(numbers, json_integer(i));

    nc_client *cli;
    int r = nc_client_new(&cli, url, NULL);
    if (r) {
        fprintf(stderr, "math-client: %s\n", nc_strerror(r));
        return 1;
    }
    int status = 1;
    r = nc_client_send(cli, "{\"cmd\":\"sum\"}", numbers, NULL, on_value, on_done, &status);
    json_decref(numbers);           /* data is borrowed by send */
    if (r == 0) nc_client_run(cli); /* until the reply stream ends */
    nc_client_free(cli);
    return r ? 1 : status;
}

/* gRPC's C core (libgrpc) doing what a nestc gRPC transport would do on it: a server and a client in one
 * process, N sequential unary calls of a small message over loopback TCP, for docs/grpc.md ("The stack").
 * Prints one JSON line: calls, wall time and process CPU per call, and the process's threads (the core
 * starts its own: executor, timer manager, resolver, event engine). The server side runs on its own
 * thread draining its completion queue, as a libuv integration would have to (the core's completion
 * queue has no file descriptor a loop could poll). */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static grpc_server *srv;
static grpc_completion_queue *scq;

static int threads(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void cq_wait(grpc_completion_queue *cq, void *tag) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || ev.tag != tag || !ev.success) {
        fprintf(stderr, "unexpected completion %d\n", ev.type);
        exit(1);
    }
}

/* The server: one call at a time; echo the request message back with status OK. */
static void *serve(void *arg) {
    (void)arg;
    for (;;) {
        grpc_call *call = NULL;
        grpc_call_details details;
        grpc_metadata_array md;
        grpc_call_details_init(&details);
        grpc_metadata_array_init(&md);
        if (grpc_server_request_call(srv, &call, &details, &md, scq, scq, (void *)1) != GRPC_CALL_OK) exit(1);
        grpc_event ev = grpc_completion_queue_next(scq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) break; /* shutting down */
        grpc_byte_buffer *req = NULL;
        int cancelled = 0;
        grpc_op ops[4];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &req;
        if (grpc_call_start_batch(call, ops, 2, (void *)2, NULL) != GRPC_CALL_OK) exit(1);
        cq_wait(scq, (void *)2);
        grpc_slice details_s = grpc_empty_slice();
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = req;
        ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[1].data.send_status_from_server.status = GRPC_STATUS_OK;
        ops[1].data.send_status_from_server.status_details = &details_s;
        ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[2].data.recv_close_on_server.cancelled = &cancelled;
        if (grpc_call_start_batch(call, ops, 3, (void *)3, NULL) != GRPC_CALL_OK) exit(1);
        cq_wait(scq, (void *)3);
        grpc_byte_buffer_destroy(req);
        grpc_call_unref(call);
        grpc_call_details_destroy(&details);
        grpc_metadata_array_destroy(&md);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    int t0 = threads();
    grpc_init();
    int t_init = threads();
    scq = grpc_completion_queue_create_for_next(NULL);
    srv = grpc_server_create(NULL, NULL);
    grpc_server_register_completion_queue(srv, scq, NULL);
    grpc_server_credentials *sc = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(srv, "127.0.0.1:0", sc);
    grpc_server_credentials_release(sc);
    grpc_server_start(srv);
    pthread_t th;
    pthread_create(&th, NULL, serve, NULL);

    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_channel_credentials *cc = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, cc, NULL);
    grpc_channel_credentials_release(cc);
    grpc_completion_queue *ccq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method = grpc_slice_from_static_string("/nestc.conformance.Conformance/Echo");
    /* EchoMessage {text: "hello", big: 42, numbers: [1, 2, 3]} */
    static const char msg[] = "\x0a\x05hello\x10\x2a\x22\x03\x01\x02\x03";
    double w0 = 0, c0 = 0;
    int t_run = 0;
    for (int i = 0; i < n + 100; i++) { /* the first 100 calls warm up (connect, allocations) */
        if (i == 100) w0 = now(), c0 = cpu();
        grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, ccq, method, NULL,
                                                   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_slice s = grpc_slice_from_copied_buffer(msg, sizeof msg - 1);
        grpc_byte_buffer *req = grpc_raw_byte_buffer_create(&s, 1), *resp = NULL;
        grpc_slice_unref(s);
        grpc_metadata_array im, tm;
        grpc_metadata_array_init(&im);
        grpc_metadata_array_init(&tm);
        grpc_status_code status;
        grpc_slice details;
        grpc_op ops[6];
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = req;
        ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
        ops[4].op = GRPC_OP_RECV_MESSAGE;
        ops[4].data.recv_message.recv_message = &resp;
        ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
        ops[5].data.recv_status_on_client.trailing_metadata = &tm;
        ops[5].data.recv_status_on_client.status = &status;
        ops[5].data.recv_status_on_client.status_details = &details;
        if (grpc_call_start_batch(call, ops, 6, (void *)9, NULL) != GRPC_CALL_OK) return 1;
        cq_wait(ccq, (void *)9);
        if (status != GRPC_STATUS_OK || !resp || grpc_byte_buffer_length(resp) != sizeof msg - 1) {
            fprintf(stderr, "call failed: %d\n", status);
            return 1;
        }
        if (i == 100) t_run = threads();
        grpc_slice_unref(details);
        grpc_byte_buffer_destroy(req);
        grpc_byte_buffer_destroy(resp);
        grpc_metadata_array_destroy(&im);
        grpc_metadata_array_destroy(&tm);
        grpc_call_unref(call);
    }
    double wall = now() - w0, c = cpu() - c0;
    printf("{\"stack\":\"grpc-core %s\",\"calls\":%d,\"us_per_call\":%.1f,\"cpu_us_per_call\":%.1f,"
           "\"threads_before_init\":%d,\"threads_after_init\":%d,\"threads_running\":%d}\n",
           grpc_version_string(), n, wall / n * 1e6, c / n * 1e6, t0, t_init, t_run);
    grpc_channel_destroy(ch);
    grpc_server_shutdown_and_notify(srv, scq, (void *)7);
    grpc_server_cancel_all_calls(srv);
    return 0; /* the process exits: tearing the core down cleanly is not what is measured */
}

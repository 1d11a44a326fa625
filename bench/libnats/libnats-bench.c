/* NestJS-style request/reply over NATS with libnats (the official C client), for comparing its cost with
 * nestc's own NATS implementation (`nestc bench nats://… --engine client`). See bench/README.md, "Why nestc
 * speaks NATS itself", and compare.sh here.
 *
 *   libnats-bench --url nats://H:P [--mode inbox|shared|request] [--inflight N] [--duration S] [--warmup S]
 *                 [--global] [--asap] [--server-pid PID]
 *   libnats-bench --url nats://H:P --oneshot        library init, twice (connect, one request with
 *                                                   natsConnection_Request, close), library shutdown; prints the
 *                                                   phases' times
 *   libnats-bench --url nats://H:P --serve [--global] [--asap]
 *                                                   a minimal NestJS-compatible responder for {"cmd":"sum"}
 *
 * Requests are what NestJS's ClientNats (and nestc's client) publish: subject `{"cmd":"sum"}`, body
 * `{"pattern":{"cmd":"sum"},"data":[1,2,3],"id":"N"}`; a request completes with the reply that carries
 * `"isDisposed":true` (or an `err`). Modes:
 *
 *   inbox    NestJS's pattern, the one nestc's client follows: per request a fresh inbox, natsConnection_Subscribe
 *            on it (an asynchronous subscription), PUB with the inbox as reply subject, and on the reply
 *            natsSubscription_Unsubscribe + Destroy. By default libnats gives every asynchronous subscription
 *            its own delivery thread; --global delivers through the library's shared pool instead
 *            (natsOptions_UseGlobalMessageDelivery).
 *   shared   one wildcard subscription `_INBOX.<id>.*` for all requests, reply subject `_INBOX.<id>.<slot>`:
 *            no subscription work per request (what a NATS-native client would do; not NestJS's wire pattern)
 *   request  natsConnection_Request, the library's blocking request (its own shared response inbox), from
 *            --inflight threads
 *
 * --asap: natsOptions_SetSendAsap (write every publish at once instead of leaving it to the flusher thread).
 * --inflight requests are kept outstanding; after --warmup seconds, --duration seconds are counted. Client CPU
 * is this process's user + system time (getrusage, all threads) over the window divided by the responses in
 * it; the thread count is sampled every 20 ms. Prints one JSON line. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define SUBJECT "{\"cmd\":\"sum\"}"
#define MAX_INFLIGHT 1000
#define MAX_LAT (16u << 20) /* latencies kept per run (ns, 32 bits): 64 MiB */

static const char *url = "nats://127.0.0.1:4222";
static const char *mode = "inbox";
static int inflight = 1, global_delivery, send_asap;
static double duration = 5, warmup = 1;
static long server_pid;

static natsConnection *conn;
static atomic_int running = 1, counting;
static atomic_llong responses, errors, outstanding, next_id;
static uint32_t *lat;
static atomic_uint nlat;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds of another process (utime + stime from /proc/PID/stat), -1 if unreadable. */
static double cpu_of(long pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int threads_now(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    fclose(f);
    return n;
}

static int make_body(char *buf, size_t size) {
    return snprintf(buf, size, "{\"pattern\":{\"cmd\":\"sum\"},\"data\":[1,2,3],\"id\":\"%lld\"}",
                    (long long)atomic_fetch_add(&next_id, 1));
}

/* A reply completes the request when it is the final one; err present and not null counts as an error. */
static void complete(natsMsg *msg, int64_t t0) {
    const char *d = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    int ok = d && len > 0 && strstr(d, "\"response\":6") && !strstr(d, "\"err\":{") && !strstr(d, "\"err\":\"");
    if (!ok) atomic_fetch_add(&errors, 1);
    atomic_fetch_add(&responses, 1);
    if (atomic_load(&counting)) {
        unsigned i = atomic_fetch_add(&nlat, 1);
        int64_t dt = now_ns() - t0;
        if (i < MAX_LAT) lat[i] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
    }
}

/* ---- inbox: NestJS's pattern ------------------------------------------------------------------------- */
typedef struct slot {
    int idx;
    int64_t t0;
} slot;
static slot slots[MAX_INFLIGHT];

static void on_inbox_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);

static void inbox_fire(slot *s) {
    char inbox_buf[128], body[128];
    natsInbox *inbox = NULL;
    natsSubscription *sub = NULL;
    natsStatus st = natsInbox_Create(&inbox);
    if (st == NATS_OK) {
        snprintf(inbox_buf, sizeof inbox_buf, "%s", (const char *)inbox);
        natsInbox_Destroy(inbox);
        st = natsConnection_Subscribe(&sub, conn, inbox_buf, on_inbox_reply, s);
    }
    if (st == NATS_OK) {
        int n = make_body(body, sizeof body);
        s->t0 = now_ns();
        st = natsConnection_PublishRequest(conn, SUBJECT, inbox_buf, body, n);
    }
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: %s\n", natsStatus_GetText(st));
        atomic_fetch_add(&errors, 1);
        atomic_fetch_sub(&outstanding, 1);
        if (sub) natsSubscription_Destroy(sub);
    }
}

static void on_inbox_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)nc;
    slot *s = closure;
    complete(msg, s->t0);
    natsMsg_Destroy(msg);
    /* NestJS: subscription.unsubscribe() once the reply is complete. */
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    if (atomic_load(&running))
        inbox_fire(s);
    else
        atomic_fetch_sub(&outstanding, 1);
}

/* ---- shared: one wildcard inbox subscription ------------------------------------------------------ */
static char shared_prefix[128];

static void shared_fire(slot *s) {
    char reply[160], body[128];
    snprintf(reply, sizeof reply, "%s.%d", shared_prefix, s->idx);
    int n = make_body(body, sizeof body);
    s->t0 = now_ns();
    natsStatus st = natsConnection_PublishRequest(conn, SUBJECT, reply, body, n);
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: %s\n", natsStatus_GetText(st));
        atomic_fetch_add(&errors, 1);
        atomic_fetch_sub(&outstanding, 1);
    }
}

static void on_shared_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)nc;
    (void)sub;
    (void)closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subj, '.');
    int idx = dot ? atoi(dot + 1) : -1;
    if (idx < 0 || idx >= inflight) {
        natsMsg_Destroy(msg);
        return;
    }
    slot *s = &slots[idx];
    complete(msg, s->t0);
    natsMsg_Destroy(msg);
    if (atomic_load(&running))
        shared_fire(s);
    else
        atomic_fetch_sub(&outstanding, 1);
}

/* ---- request: natsConnection_Request from N threads ----------------------------------------------- */
static void *request_thread(void *arg) {
    (void)arg;
    char body[128];
    while (atomic_load(&running)) {
        int n = make_body(body, sizeof body);
        natsMsg *reply = NULL;
        int64_t t0 = now_ns();
        natsStatus st = natsConnection_Request(&reply, conn, SUBJECT, body, n, 5000);
        if (st == NATS_OK) {
            complete(reply, t0);
            natsMsg_Destroy(reply);
        } else {
            atomic_fetch_add(&errors, 1);
        }
    }
    atomic_fetch_sub(&outstanding, 1);
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sleeps s seconds, sampling the thread count every 20 ms; returns the largest seen. */
static int sleep_sampling(double s, int max) {
    int64_t end = now_ns() + (int64_t)(s * 1e9);
    for (;;) {
        int t = threads_now();
        if (t > max) max = t;
        int64_t left = end - now_ns();
        if (left <= 0) return max;
        struct timespec ts = {0, left < 20000000 ? left : 20000000};
        nanosleep(&ts, NULL);
    }
}

static natsStatus connect_opts(natsConnection **nc) {
    natsOptions *opts = NULL;
    natsStatus st = natsOptions_Create(&opts);
    if (st == NATS_OK) st = natsOptions_SetURL(opts, url);
    if (st == NATS_OK && global_delivery) st = natsOptions_UseGlobalMessageDelivery(opts, true);
    if (st == NATS_OK && send_asap) st = natsOptions_SetSendAsap(opts, true);
    if (st == NATS_OK) st = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    return st;
}

/* ---- one-shot: connect, one request, close --------------------------------------------------------- */
/* One cycle: connect, one request, close; the phases' times in µs. Returns 0 if the reply was right. */
static int cycle(double *connect_us, double *request_us, double *close_us, int *threads) {
    char body[128];
    int64_t t0 = now_ns();
    natsStatus st = connect_opts(&conn);
    int64_t t1 = now_ns();
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: connect: %s\n", natsStatus_GetText(st));
        return 1;
    }
    int n = make_body(body, sizeof body);
    natsMsg *reply = NULL;
    st = natsConnection_Request(&reply, conn, SUBJECT, body, n, 5000);
    int64_t t2 = now_ns();
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: request: %s\n", natsStatus_GetText(st));
        return 1;
    }
    int ok = strstr(natsMsg_GetData(reply), "\"response\":6") != NULL;
    natsMsg_Destroy(reply);
    *threads = threads_now();
    natsConnection_Close(conn);
    natsConnection_Destroy(conn);
    int64_t t3 = now_ns();
    *connect_us = (t1 - t0) / 1e3, *request_us = (t2 - t1) / 1e3, *close_us = (t3 - t2) / 1e3;
    return ok ? 0 : 1;
}

/* Library init, a first cycle, a second cycle (a connection alone, the one-time costs paid), library
 * shutdown. */
static int oneshot(void) {
    double c1, r1, k1, c2, r2, k2;
    int threads, threads2;
    int64_t ti = now_ns();
    natsStatus st = nats_Open(-1); /* the library's own state and threads (implicit in the first connect) */
    int64_t t0 = now_ns();
    if (st != NATS_OK || cycle(&c1, &r1, &k1, &threads) || cycle(&c2, &r2, &k2, &threads2)) return 1;
    int64_t t3 = now_ns();
    nats_Close(); /* the library's own threads and state (what a process does before exiting) */
    int64_t t4 = now_ns();
    printf("{\"client\":\"libnats\",\"ok\":true,\"lib_init_us\":%.1f,\"connect_us\":%.1f,\"request_us\":%.1f,"
           "\"close_us\":%.1f,\"connect2_us\":%.1f,\"request2_us\":%.1f,\"close2_us\":%.1f,\"lib_close_us\":%.1f,"
           "\"total_us\":%.1f,\"threads_connected\":%d}\n",
           (t0 - ti) / 1e3, c1, r1, k1, c2, r2, k2, (t4 - t3) / 1e3, (t4 - ti) / 1e3, threads);
    return 0;
}

/* ---- serve: a minimal responder ---------------------------------------------------------------------- */
static atomic_llong served;

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
    (void)sub;
    (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    const char *d = natsMsg_GetData(msg);
    if (reply && d) {
        /* The id (a string, as NestJS sends it) and the sum of the data array. */
        char id[96] = "";
        const char *p = strstr(d, "\"id\":\"");
        if (p) {
            p += 6;
            size_t i = 0;
            while (p[i] && p[i] != '"' && i < sizeof id - 1) id[i] = p[i], i++;
            id[i] = 0;
        }
        double s = 0;
        const char *a = strstr(d, "\"data\":[");
        if (a) {
            char *end;
            for (a += 8; *a && *a != ']';) {
                double v = strtod(a, &end);
                if (end == a) break;
                s += v;
                a = end;
                while (*a == ',' || *a == ' ') a++;
            }
        }
        char out[192];
        int n = snprintf(out, sizeof out, "{\"response\":%.17g,\"isDisposed\":true,\"id\":\"%s\"}", s, id);
        natsConnection_Publish(nc, reply, out, n);
        atomic_fetch_add(&served, 1);
    }
    natsMsg_Destroy(msg);
}

static int serve(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* before libnats starts its threads: they inherit the mask */
    natsStatus st = connect_opts(&conn);
    natsSubscription *sub = NULL;
    if (st == NATS_OK) st = natsConnection_Subscribe(&sub, conn, SUBJECT, on_request, NULL);
    if (st == NATS_OK) st = natsSubscription_SetPendingLimits(sub, -1, -1);
    if (st == NATS_OK) st = natsConnection_Flush(conn); /* the SUB is confirmed */
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: %s\n", natsStatus_GetText(st));
        return 1;
    }
    printf("connected to %s\n", url);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    natsConnection_Close(conn);
    natsConnection_Destroy(conn);
    nats_Close();
    fprintf(stderr, "libnats-bench: served %lld requests\n", (long long)atomic_load(&served));
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: libnats-bench --url nats://H:P [--mode inbox|shared|request] [--inflight N] "
                    "[--duration S] [--warmup S] [--global] [--asap] [--server-pid PID] | --oneshot | --serve\n");
    return 2;
}

int main(int argc, char **argv) {
    int do_oneshot = 0, do_serve = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--global")) {
            global_delivery = 1;
        } else if (!strcmp(a, "--asap")) {
            send_asap = 1;
        } else if (!strcmp(a, "--oneshot")) {
            do_oneshot = 1;
        } else if (!strcmp(a, "--serve")) {
            do_serve = 1;
        } else if (i + 1 < argc && !strcmp(a, "--url")) {
            url = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--mode")) {
            mode = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--inflight")) {
            inflight = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--duration")) {
            duration = atof(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--warmup")) {
            warmup = atof(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--server-pid")) {
            server_pid = atol(argv[++i]);
        } else {
            return usage();
        }
    }
    if (do_oneshot) return oneshot();
    if (do_serve) return serve();
    int m_inbox = !strcmp(mode, "inbox"), m_shared = !strcmp(mode, "shared"), m_request = !strcmp(mode, "request");
    if (!(m_inbox || m_shared || m_request) || inflight < 1 || inflight > MAX_INFLIGHT || duration <= 0) return usage();
    lat = malloc(sizeof *lat * MAX_LAT);
    if (!lat) return 1;

    int64_t c0 = now_ns();
    natsStatus st = connect_opts(&conn);
    double connect_ms = (now_ns() - c0) / 1e6;
    if (st != NATS_OK) {
        fprintf(stderr, "libnats-bench: connect %s: %s\n", url, natsStatus_GetText(st));
        return 1;
    }
    int threads_connected = threads_now();
    natsSubscription *shared_sub = NULL;
    pthread_t tids[MAX_INFLIGHT];
    atomic_store(&outstanding, inflight);
    if (m_shared) {
        natsInbox *inbox = NULL;
        char wild[160];
        if ((st = natsInbox_Create(&inbox)) == NATS_OK) {
            snprintf(shared_prefix, sizeof shared_prefix, "%s", (const char *)inbox);
            natsInbox_Destroy(inbox);
            snprintf(wild, sizeof wild, "%s.*", shared_prefix);
            st = natsConnection_Subscribe(&shared_sub, conn, wild, on_shared_reply, NULL);
        }
        if (st == NATS_OK) st = natsSubscription_SetPendingLimits(shared_sub, -1, -1);
        if (st == NATS_OK) st = natsConnection_Flush(conn);
        if (st != NATS_OK) {
            fprintf(stderr, "libnats-bench: %s\n", natsStatus_GetText(st));
            return 1;
        }
    }
    for (int i = 0; i < inflight; i++) {
        slots[i].idx = i;
        if (m_inbox)
            inbox_fire(&slots[i]);
        else if (m_shared)
            shared_fire(&slots[i]);
        else
            pthread_create(&tids[i], NULL, request_thread, NULL);
    }

    int threads_max = sleep_sampling(warmup, 0);
    long long r0 = atomic_load(&responses), e0 = atomic_load(&errors);
    double cpu0 = cpu_self_s(), srv0 = server_pid ? cpu_of(server_pid) : -1;
    int64_t t0 = now_ns();
    atomic_store(&counting, 1);
    threads_max = sleep_sampling(duration, threads_max);
    atomic_store(&counting, 0);
    int64_t t1 = now_ns();
    double cpu1 = cpu_self_s(), srv1 = server_pid ? cpu_of(server_pid) : -1;
    long long r1 = atomic_load(&responses), e1 = atomic_load(&errors);
    int threads_end = threads_now();

    /* Drain: no new requests; wait (up to 5 s) for those outstanding. */
    atomic_store(&running, 0);
    if (m_request)
        for (int i = 0; i < inflight; i++) pthread_join(tids[i], NULL);
    for (int i = 0; i < 500 && atomic_load(&outstanding) > 0; i++) usleep(10000);
    long long left = atomic_load(&outstanding);
    int64_t k0 = now_ns();
    if (shared_sub) natsSubscription_Destroy(shared_sub);
    natsConnection_Close(conn);
    natsConnection_Destroy(conn);
    double close_ms = (now_ns() - k0) / 1e6;

    double secs = (t1 - t0) / 1e9;
    long long req = r1 - r0;
    unsigned n = atomic_load(&nlat);
    if (n > MAX_LAT) n = MAX_LAT;
    qsort(lat, n, sizeof *lat, cmp_u32);
    double p50 = n ? lat[n / 2] / 1e3 : -1, p99 = n ? lat[(size_t)n * 99 / 100] / 1e3 : -1;
    printf("{\"client\":\"libnats\",\"mode\":\"%s\",\"global_delivery\":%s,\"send_asap\":%s,\"inflight\":%d,"
           "\"requests\":%lld,\"errors\":%lld,\"unanswered\":%lld,\"rps\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"client_cpu_s\":%.3f,\"client_cpu_us_per_resp\":%.3f,",
           mode, global_delivery ? "true" : "false", send_asap ? "true" : "false", inflight, req, e1 - e0, left,
           req / secs, p50, p99, cpu1 - cpu0, req ? (cpu1 - cpu0) * 1e6 / req : -1);
    if (server_pid && srv0 >= 0 && srv1 >= 0)
        printf("\"server_cpu_s\":%.3f,\"server_cpu_us_per_resp\":%.3f,", srv1 - srv0,
               req ? (srv1 - srv0) * 1e6 / req : -1);
    printf("\"threads_connected\":%d,\"threads_end\":%d,\"threads_max\":%d,\"connect_ms\":%.3f,\"close_ms\":%.3f,"
           "\"duration_s\":%.3f}\n",
           threads_connected, threads_end, threads_max, connect_ms, close_ms, secs);
    nats_Close();
    free(lat);
    return 0;
}

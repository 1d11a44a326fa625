/* nestc bench: the counting window and the CPU accounting at its edges.
 *
 * Exists so that both engines measure the same thing: counters are reset when the window opens, and the
 * CPU time of this process (getrusage) and, with --server-pid, of the server (/proc/<pid>/stat: utime +
 * stime, which the kernel sums over all the threads of the process, in clock ticks) is read at the
 * window's two edges. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_proc_cpu(int pid, double *seconds) {
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* "pid (comm) state ppid ..." — comm may hold spaces and parentheses: start after the last ')' */
    char *p = strrchr(line, ')');
    if (!p) return -1;
    unsigned long long utime = 0, stime = 0;
    /* after ')': field 3 (state) ... field 14 utime, field 15 stime */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) hz = 100;
    *seconds = (double)(utime + stime) / (double)hz;
    return 0;
}

static void snapshot(const bench_stats *st, bench_cpu *c) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    c->self_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                (double)ru.ru_stime.tv_usec / 1e6;
    c->server_ok = st->server_pid > 0 && bench_proc_cpu(st->server_pid, &c->server_s) == 0;
}

void bench_window_open(bench_stats *st, uint64_t now) {
    st->requests = st->errors = st->events = st->bytes_out = st->bytes_in = 0;
    bench_hist_reset(&st->hist);
    st->opened = 1;
    st->counting = 1;
    st->t_open_ns = now;
    snapshot(st, &st->cpu_open);
}

void bench_window_close(bench_stats *st, uint64_t now) {
    if (st->closed) return;
    if (!st->opened) bench_window_open(st, now);
    st->counting = 0;
    st->closed = 1;
    st->t_close_ns = now;
    snapshot(st, &st->cpu_close);
}

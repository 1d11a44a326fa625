#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "codec/json_write.h"
#include "util/buf.h"

static int kv_into(json_t **obj, const char *flag, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "nestc: %s expects key=value, got \"%s\"\n", flag, kv);
        return 2;
    }
    if (!*obj) *obj = json_object();
    char *k = strndup(kv, (size_t)(eq - kv));
    json_object_set_new(*obj, k, json_string(eq + 1));
    free(k);
    return 0;
}

static int int_arg(const char *flag, const char *v, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > 1000000000) {
        fprintf(stderr, "nestc: %s expects a non-negative integer, got \"%s\"\n", flag, v);
        return 2;
    }
    *out = (int)n;
    return 0;
}

static int dbl_arg(const char *flag, const char *v, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= 0) || d > 1e9) {
        fprintf(stderr, "nestc: %s expects a non-negative number, got \"%s\"\n", flag, v);
        return 2;
    }
    *out = d;
    return 0;
}

static int parse_into(cli_args *a, int argc, char **argv, int first) {
    memset(a, 0, sizeof *a);
    a->timeout_ms = 5000;
    a->connections = 1;
    a->inflight = 1;
    a->duration_s = 5;
    a->warmup_s = 1;
    a->max_buffer_size = a->max_send_buffer_size = -2; /* -2 = not given */
    a->incomplete_timeout_ms = a->shutdown_timeout_ms = a->handshake_timeout_ms = -2;
    a->events_history = -2;
    int only_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *s = argv[i];
        if (only_pos || s[0] != '-' || s[1] == '\0' || (s[1] >= '0' && s[1] <= '9')) {
            /* positional (negative numbers are data, not flags) */
            if (a->npos == CLI_MAX_POS) {
                fprintf(stderr, "nestc: too many arguments\n");
                return 2;
            }
            a->pos[a->npos++] = s;
            continue;
        }
        if (!strcmp(s, "--")) {
            only_pos = 1;
            continue;
        }
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->help = 1;
            continue;
        }
        if (!strcmp(s, "-v") || !strcmp(s, "--verbose")) {
            a->verbose = 1;
            continue;
        }
        if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
            a->quiet = 1;
            continue;
        }
        /* flags with a value: --flag value or --flag=value */
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(s, '=');
        if (eq && (size_t)(eq - s) < sizeof name) {
            memcpy(name, s, (size_t)(eq - s));
            name[eq - s] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", s);
            if (i + 1 >= argc) {
                fprintf(stderr, "nestc: %s needs a value\n", s);
                return 2;
            }
            val = argv[++i];
        }
        int r = 0;
        if (!strcmp(name, "--timeout"))
            r = int_arg(name, val, &a->timeout_ms);
        else if (!strcmp(name, "--ca"))
            a->tls.ca_file = val, a->has_tls = 1;
        else if (!strcmp(name, "--cert"))
            a->tls.cert_file = val, a->has_tls = 1;
        else if (!strcmp(name, "--key"))
            a->tls.key_file = val, a->has_tls = 1;
        else if (!strcmp(name, "--servername"))
            a->tls.server_name = val, a->has_tls = 1;
        else if (!strcmp(name, "--metadata"))
            r = kv_into(&a->metadata, name, val);
        else if (!strcmp(name, "--header"))
            r = kv_into(&a->headers, name, val);
        else if (!strcmp(name, "--queue"))
            a->queue = val;
        else if (!strcmp(name, "--connections"))
            r = int_arg(name, val, &a->connections);
        else if (!strcmp(name, "--inflight"))
            r = int_arg(name, val, &a->inflight);
        else if (!strcmp(name, "--duration"))
            r = dbl_arg(name, val, &a->duration_s);
        else if (!strcmp(name, "--warmup"))
            r = dbl_arg(name, val, &a->warmup_s);
        else if (!strcmp(name, "--data-file"))
            a->data_file = val;
        else if (!strcmp(name, "--workers"))
            r = int_arg(name, val, &a->workers);
        else if (!strcmp(name, "--events"))
            r = int_arg(name, val, &a->events);
        else if (!strcmp(name, "--event-pattern"))
            a->event_pattern = val;
        else if (!strcmp(name, "--event-data"))
            a->event_data = val;
        else if (!strcmp(name, "--server-pid"))
            r = int_arg(name, val, &a->server_pid);
        else if (!strcmp(name, "--engine"))
            a->engine = val;
        else if (!strcmp(name, "--incomplete-timeout"))
            r = int_arg(name, val, &a->incomplete_timeout_ms);
        else if (!strcmp(name, "--shutdown-timeout"))
            r = int_arg(name, val, &a->shutdown_timeout_ms);
        else if (!strcmp(name, "--handshake-timeout"))
            r = int_arg(name, val, &a->handshake_timeout_ms);
        else if (!strcmp(name, "--events-history"))
            r = int_arg(name, val, &a->events_history);
        else if (!strcmp(name, "--max-buffer-size") || !strcmp(name, "--max-send-buffer-size")) {
            int n = 0;
            r = int_arg(name, val, &n);
            if (!strcmp(name, "--max-buffer-size"))
                a->max_buffer_size = n;
            else
                a->max_send_buffer_size = n;
        } else {
            fprintf(stderr, "nestc: unknown option %s (see --help)\n", name);
            return 2;
        }
        if (r) return r;
    }
    return 0;
}

int cli_parse(cli_args *a, int argc, char **argv, int first) {
    int r = parse_into(a, argc, argv, first);
    if (r) cli_args_free(a); /* a refused command line holds nothing */
    return r;
}

void cli_args_free(cli_args *a) {
    json_decref(a->metadata);
    json_decref(a->headers);
    a->metadata = a->headers = NULL;
}

int cli_load_data(const cli_args *a, const char *text, json_t **out) {
    char err[200];
    *out = NULL;
    if (a->data_file && text) {
        fprintf(stderr, "nestc: give the data either as an argument or with --data-file, not both\n");
        return 2;
    }
    if (!a->data_file) {
        if (!text) {
            *out = json_null();
            return 0;
        }
        if (nc_json_parse(text, strlen(text), out, err, sizeof err)) {
            fprintf(stderr, "nestc: data is not valid JSON: %s\n", err);
            return 2;
        }
        return 0;
    }
    FILE *f = fopen(a->data_file, "rb");
    if (!f) {
        fprintf(stderr, "nestc: cannot read --data-file %s: %s\n", a->data_file, strerror(errno));
        return 2;
    }
    nc_buf b = NC_BUF_INIT;
    char chunk[65536];
    size_t n;
    int r = 0;
    while (!r && (n = fread(chunk, 1, sizeof chunk, f)) > 0) r = nc_buf_append(&b, chunk, n);
    int rd_err = ferror(f);
    fclose(f);
    if (r || rd_err) {
        fprintf(stderr, "nestc: cannot read --data-file %s\n", a->data_file);
        nc_buf_free(&b);
        return 2;
    }
    r = nc_json_parse(b.data ? b.data : "", b.len, out, err, sizeof err);
    nc_buf_free(&b);
    if (r) {
        fprintf(stderr, "nestc: --data-file %s is not valid JSON: %s\n", a->data_file, err);
        return 2;
    }
    return 0;
}

void cli_setup_logging(const cli_args *a) {
    nc_log_set_default(NULL, NULL, a->quiet ? NC_LOG_ERROR : a->verbose ? NC_LOG_DEBUG : NC_LOG_INFO);
}

void cli_print_json(FILE *f, const json_t *v) {
    nc_buf b = NC_BUF_INIT;
    if (nc_json_write(&b, v) == 0) {
        fwrite(b.data, 1, b.len, f);
        fputc('\n', f);
    }
    nc_buf_free(&b);
    fflush(f);
}

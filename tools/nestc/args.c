#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "table.h"
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

static int opt_into(cli_args *a, const char *flag, const char *name, size_t nlen, const char *value) {
    if (!nlen) {
        fprintf(stderr, "nestc: %s expects name=value, got \"%s\"\n", flag, value);
        return 2;
    }
    if (a->nopts == CLI_MAX_OPTS) {
        fprintf(stderr, "nestc: too many transport options (at most %d)\n", CLI_MAX_OPTS);
        return 2;
    }
    char *n = strndup(name, nlen);
    if (!n) return 2;
    a->opts[a->nopts++] = (nc_option){n, value};
    return 0;
}

/* A number within the option's range: "expects ..." when it is not a number at all, "out of range"
 * when it is one but too large or too small. */
static int num_arg(const cli_opt *o, const char *v, double *out) {
    char *end;
    errno = 0;
    double d;
    if (o->val == V_INT) {
        long long n = strtoll(v, &end, 10);
        d = (double)n;
        if (!*v || *end || (n < 0 && errno != ERANGE)) {
            fprintf(stderr, "nestc: %s expects a non-negative integer, got \"%s\"\n", o->name, v);
            return 2;
        }
    } else {
        d = strtod(v, &end);
        if (!*v || *end || d != d || (d < 0 && errno != ERANGE)) {
            fprintf(stderr, "nestc: %s expects a non-negative number, got \"%s\"\n", o->name, v);
            return 2;
        }
    }
    if (errno == ERANGE || d < o->min || d > o->max) {
        fprintf(stderr, "nestc: %s %s is out of range (%.17g to %.17g)\n", o->name, v, o->min, o->max);
        return 2;
    }
    *out = d;
    return 0;
}

/* Stores the value of option o. */
static int store_value(cli_args *a, const cli_opt *o, const char *val) {
    double d = 0;
    if (o->val == V_INT || o->val == V_NUM) {
        int r = num_arg(o, val, &d);
        if (r) return r;
    }
    if (o->val == V_CHOICE) {
        size_t n = strlen(val);
        const char *c = o->choices;
        int ok = 0;
        while (c && *c) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !strncmp(c, val, n)) ok = 1;
            c = bar ? bar + 1 : NULL;
        }
        if (!ok) {
            fprintf(stderr, "nestc: %s is %s, not \"%s\"\n", o->name, o->choices, val);
            return 2;
        }
    }
    switch (o->id) {
    case O_HELP:
        a->help = 1;
        break;
    case O_VERBOSE:
        a->verbose = 1;
        break;
    case O_QUIET:
        a->quiet = 1;
        break;
    case O_INSECURE:
        a->insecure = 1;
        break;
    case O_STREAM:
        a->stream = 1;
        break;
    case O_TIMEOUT:
        a->timeout_ms = (int)d;
        break;
    case O_CONNECT_TIMEOUT:
        a->connect_timeout_ms = (int)d;
        break;
    case O_CA:
        a->tls.ca_file = val, a->has_tls = 1;
        break;
    case O_CERT:
        a->tls.cert_file = val, a->has_tls = 1;
        break;
    case O_KEY:
        a->tls.key_file = val, a->has_tls = 1;
        break;
    case O_SERVERNAME:
        a->tls.server_name = val, a->has_tls = 1;
        break;
    case O_METADATA:
        return kv_into(&a->metadata, o->name, val);
    case O_HEADER:
        return kv_into(&a->headers, o->name, val);
    case O_QUEUE:
        return opt_into(a, o->name, "queue", 5, val); /* the transport option queue (NATS) */
    case O_PROTO:
        return opt_into(a, o->name, "protoPath", 9, val); /* the transport option protoPath (gRPC) */
    case O_OPT: {
        const char *e = strchr(val, '=');
        return e ? opt_into(a, o->name, val, (size_t)(e - val), e + 1) : opt_into(a, o->name, val, 0, val);
    }
    case O_DATA_FILE:
        a->data_file = val;
        break;
    case O_WORKERS:
        a->workers = (int)d;
        break;
    case O_MAX_BUFFER:
        a->max_buffer_size = (long long)d;
        break;
    case O_MAX_SEND_BUFFER:
        a->max_send_buffer_size = (long long)d;
        break;
    case O_INCOMPLETE_TIMEOUT:
        a->incomplete_timeout_ms = (int)d;
        break;
    case O_SHUTDOWN_TIMEOUT:
        a->shutdown_timeout_ms = (int)d;
        break;
    case O_HANDSHAKE_TIMEOUT:
        a->handshake_timeout_ms = (int)d;
        break;
    case O_EVENTS_HISTORY:
        a->events_history = (long long)d;
        break;
    case O_CONNECTIONS:
        a->connections = (int)d;
        break;
    case O_INFLIGHT:
        a->inflight = (int)d;
        break;
    case O_DURATION:
        a->duration_s = d;
        break;
    case O_WARMUP:
        a->warmup_s = d;
        break;
    case O_EVENTS:
        a->events = (int)d;
        break;
    case O_EVENT_PATTERN:
        a->event_pattern = val;
        break;
    case O_EVENT_DATA:
        a->event_data = val;
        break;
    case O_SERVER_PID:
        a->server_pid = (int)d;
        break;
    case O_ENGINE:
        a->engine = val;
        break;
    case O_ADMIN:
        a->admin = val;
        break;
    case O_TRACE:
        a->trace = 1;
        break;
    case O_RETRIES:
        a->retries = (int)d;
        break;
    case O_MAX_IN_FLIGHT:
        a->max_in_flight = (int)d;
        break;
    case O_RATE_LIMIT:
        a->rate_limit = val;
        break;
    }
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
    const char *cmd_name = first > 1 ? argv[first - 1] : "";
    const cli_cmd *cmd = cli_cmd_find(cmd_name);
    unsigned bit = cmd ? cmd->bit : 0;
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
        /* --flag value or --flag=value; the name is looked up first, so an unknown flag is reported as
         * unknown even in last position */
        char name[64];
        const char *eq = s[1] == '-' ? strchr(s, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - s) : strlen(s);
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, s, nlen);
        name[nlen] = '\0';
        int exists;
        const cli_opt *o = cli_opt_find(name, bit, &exists);
        if (!o) {
            fprintf(stderr, "nestc: unknown option %s for %s (see nestc %s --help)\n", name, cmd_name,
                    cmd_name);
            return 2;
        }
        const char *val = NULL;
        if (o->val == V_NONE) {
            if (eq) {
                fprintf(stderr, "nestc: %s takes no value\n", o->name);
                return 2;
            }
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "nestc: %s needs a value (%s)\n", name, o->val_name);
                return 2;
            }
            val = argv[++i];
        }
        int r = store_value(a, o, val);
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
    for (size_t i = 0; i < a->nopts; i++) free((char *)a->opts[i].name);
    a->nopts = 0;
}

const char *cli_scheme_of(const char *url, char *buf, size_t len) {
    const char *sep = strstr(url, "://");
    size_t n = sep ? (size_t)(sep - url) : 0;
    if (n >= len) n = len - 1;
    for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)url[i]);
    buf[n] = '\0';
    return buf;
}

int cli_split_opts(const cli_args *a, const char *url, unsigned level, int call_too, nc_option *conn,
                   size_t *nconn, nc_option *call, size_t *ncall) {
    char scheme[32];
    cli_scheme_of(url, scheme, sizeof scheme);
    *nconn = 0;
    if (ncall) *ncall = 0;
    if (!a->nopts) return 0;
    for (size_t i = 0; i < a->nopts; i++) {
        const nc_option_spec *sp = NULL;
        for (size_t k = 0; (sp = nc_transport_option(scheme, k)); k++)
            if (!strcmp(sp->name, a->opts[i].name)) break;
        if (call_too && sp && !(sp->levels & level) && (sp->levels & NC_OPT_CALL))
            call[(*ncall)++] = a->opts[i];
        else
            conn[(*nconn)++] = a->opts[i];
    }
    char err[512];
    int r = nc_options_check(scheme, level, conn, *nconn, err, sizeof err);
    if (!r && call_too) r = nc_options_check(scheme, NC_OPT_CALL, call, *ncall, err, sizeof err);
    if (r == NC_EUNSUPPORTED) return 0; /* the command reports the URL itself */
    if (r) {
        fprintf(stderr, "nestc: %s (nestc options %s lists them)\n", err, scheme);
        return 2;
    }
    return 0;
}

int cli_print_options(FILE *f, const char *scheme) {
    char buf[64];
    cli_scheme_of(scheme, buf, sizeof buf);
    if (!buf[0]) snprintf(buf, sizeof buf, "%s", scheme); /* "nats" as well as "nats://" */
    for (char *c = buf; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (nc_options_check(buf, NC_OPT_CLIENT, NULL, 0, NULL, 0) == NC_EUNSUPPORTED) {
        fprintf(stderr, "nestc: unknown transport \"%s\"\n", scheme);
        return 2;
    }
    const nc_option_spec *o = nc_transport_option(buf, 0);
    if (!o) {
        fprintf(f, "%s:// takes no transport options\n", buf);
        return 0;
    }
    fprintf(f, "%s:// options (URL ?name=value, --opt name=value, nc_option in the API):\n", buf);
    for (size_t i = 0; (o = nc_transport_option(buf, i)); i++) {
        char lv[64], type[160];
        snprintf(type, sizeof type, "%s", nc_option_type_name(o->type));
        if (o->type == NC_OPT_ENUM && o->choices) {
            size_t used = strlen(type);
            for (size_t k = 0; o->choices[k] && used < sizeof type; k++)
                used +=
                    (size_t)snprintf(type + used, sizeof type - used, "%s%s", k ? "|" : " ", o->choices[k]);
        }
        fprintf(f, "  %-10s %-9s %-24s default %s\n      %s\n", o->name, type,
                nc_option_levels_text(o->levels, lv, sizeof lv), o->def ? o->def : "none", o->help);
    }
    return 0;
}

/* Reads all of f into b. Returns 0 or -1 (errno set). */
static int read_all(FILE *f, nc_buf *b) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (nc_buf_append(b, chunk, n)) {
            errno = ENOMEM;
            return -1;
        }
    return ferror(f) ? -1 : 0;
}

/* The bytes of "@FILE" / "@-" into b; `what` names the source in messages. Returns 0 or 2. */
static int read_source(const char *path, const char *what, nc_buf *b) {
    int std_in = !strcmp(path, "-");
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "nestc: cannot read %s %s: %s\n", what, path, strerror(errno));
        return 2;
    }
    int r = read_all(f, b);
    int e = errno;
    if (!std_in) fclose(f);
    if (r) {
        fprintf(stderr, "nestc: cannot read %s %s: %s\n", what, std_in ? "(standard input)" : path,
                strerror(e));
        return 2;
    }
    return 0;
}

int cli_load_data(const cli_args *a, const char *text, json_t **out) {
    char err[200];
    *out = NULL;
    if (a->data_file && text) {
        fprintf(stderr, "nestc: give the data either as an argument or with --data-file, not both\n");
        return 2;
    }
    const char *path = a->data_file ? a->data_file : text && text[0] == '@' ? text + 1 : NULL;
    const char *what = a->data_file ? "--data-file" : "data file";
    if (!path) {
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
    nc_buf b = NC_BUF_INIT;
    if (read_source(path, what, &b)) {
        nc_buf_free(&b);
        return 2;
    }
    int r = nc_json_parse(b.data ? b.data : "", b.len, out, err, sizeof err);
    nc_buf_free(&b);
    if (r) {
        fprintf(stderr, "nestc: %s %s is not valid JSON: %s\n", what, path, err);
        return 2;
    }
    return 0;
}

int cli_load_stream(const char *text, json_t **out) {
    char err[200];
    nc_buf b = NC_BUF_INIT;
    const char *src = text;
    size_t len = text ? strlen(text) : 0;
    if (!text || text[0] == '@') {
        if (read_source(text ? text + 1 : "-", "data file", &b)) {
            nc_buf_free(&b);
            return 2;
        }
        src = b.data ? b.data : "";
        len = b.len;
    }
    json_t *arr = json_array();
    size_t pos = 0, index = 0;
    int rc = 0;
    for (;;) {
        while (pos < len && strchr(" \t\r\n", src[pos])) pos++;
        if (pos == len) break;
        /* jansson finds where this value ends (it stops after one value with JSON_DISABLE_EOF_CHECK);
         * the library's parser then reads exactly those bytes, as it reads every other [data] */
        json_error_t je;
        json_t *probe =
            json_loadb(src + pos, len - pos, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &je);
        json_t *v = NULL;
        size_t used = probe ? (size_t)je.position : 0;
        json_decref(probe);
        if (!probe || !used || nc_json_parse(src + pos, used, &v, err, sizeof err)) {
            fprintf(stderr, "nestc: --stream value %zu (byte %zu) is not valid JSON: %s\n", index + 1, pos,
                    probe ? err : je.text);
            rc = 2;
            break;
        }
        json_array_append_new(arr, v);
        pos += used;
        index++;
    }
    nc_buf_free(&b);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

const nc_tls_opts *cli_client_tls(cli_args *a, const char *url, int *rc) {
    *rc = 0;
    if (a->insecure) {
        char scheme[32];
        cli_scheme_of(url, scheme, sizeof scheme);
        /* where the TLS options apply: schemes that name TLS, and those whose TLS is turned on by the options
         * (nats, kafka and grpc, as NestJS's tls and ssl options do). redis, mqtt and amqp have a scheme of
         * their own for TLS and tcp is never TLS: there is no certificate to skip. */
        static const char *const with_tls[] = {"tls",   "rediss", "mqtts", "amqps",
                                               "grpcs", "grpc",   "nats",  "kafka"};
        int ok = 0;
        for (size_t i = 0; i < sizeof with_tls / sizeof with_tls[0]; i++) ok |= !strcmp(scheme, with_tls[i]);
        if (!ok) {
            fprintf(stderr,
                    "nestc: --insecure needs TLS (tls://, rediss://, mqtts://, amqps://, grpcs://, grpc://, "
                    "nats://, "
                    "kafka://), not %s\n",
                    url);
            *rc = 2;
            return NULL;
        }
        fprintf(stderr, "nestc: warning: --insecure: the server's certificate is not verified\n");
        a->tls.insecure_skip_verify = 1;
        a->has_tls = 1;
    }
    return a->has_tls ? &a->tls : NULL;
}

const char *cli_reason(int err) {
    const char *r = nc_last_error();
    return *r ? r : nc_strerror(err);
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

#include <ctype.h>
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
        else if (!strcmp(name, "--queue")) /* kept: the transport option queue (NATS) */
            r = opt_into(a, name, "queue", 5, val);
        else if (!strcmp(name, "--opt")) {
            const char *e = strchr(val, '=');
            r = e ? opt_into(a, name, val, (size_t)(e - val), e + 1) : opt_into(a, name, val, 0, val);
        } else if (!strcmp(name, "--connections"))
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
    for (size_t i = 0; i < a->nopts; i++) free((char *)a->opts[i].name);
    a->nopts = 0;
}

/* The scheme of url, lowercase, into buf ("" when there is none). */
static const char *scheme_of(const char *url, char *buf, size_t len) {
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
    scheme_of(url, scheme, sizeof scheme);
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
    scheme_of(scheme, buf, sizeof buf);
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

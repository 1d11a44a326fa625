/* Transport options: validation against a transport's table, precedence, typed getters. */
#include "core/options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fail.h"
#include "nestc/error.h"
#include "transport/transport.h"

static const char *const level_names[] = {"server", "client", "handler", "call"};

const char *nc_option_type_name(nc_option_type t) {
    switch (t) {
    case NC_OPT_STRING:
        return "string";
    case NC_OPT_INT:
        return "int";
    case NC_OPT_BOOL:
        return "bool";
    case NC_OPT_DURATION:
        return "duration";
    case NC_OPT_ENUM:
        return "enum";
    }
    return "?";
}

const char *nc_option_levels_text(unsigned levels, char *buf, size_t len) {
    if (!buf || !len) return buf;
    buf[0] = '\0';
    size_t used = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (!(levels & (1u << i))) continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", level_names[i]);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
    }
    return buf;
}

static const char *level_name(unsigned level) {
    for (unsigned i = 0; i < 4; i++)
        if (level == 1u << i) return level_names[i];
    return "?";
}

static const nc_option_spec *spec_of(const nc_option_spec *table, const char *name) {
    for (const nc_option_spec *o = table; o && o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

/* A prefix entry ("kafka.", a name ending with '.') takes every longer name starting with it: options
 * passed through to a library (librdkafka properties). Only when no entry has the exact name. */
static const nc_option_spec *prefix_spec_of(const nc_option_spec *table, const char *name) {
    for (const nc_option_spec *o = table; o && o->name; o++) {
        size_t n = strlen(o->name);
        if (n && o->name[n - 1] == '.' && strlen(name) > n && !strncmp(o->name, name, n)) return o;
    }
    return NULL;
}

const nc_option_spec *nc_opts_spec(const nc_option_spec *table, const char *name) {
    return name ? spec_of(table, name) : NULL;
}

/* "queue, name, tls" into buf: the names a message can suggest instead of an unknown one. */
static const char *names_of(const nc_option_spec *table, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (const nc_option_spec *o = table; o && o->name; o++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", o->name);
        if (n < 0 || (size_t)n >= len - used) break;
        used += (size_t)n;
    }
    if (!used) snprintf(buf, len, "none");
    return buf;
}

/* Parses text as the spec's type into *num. Returns 0, or -1 with a description of what was expected. */
static int parse_value(const nc_option_spec *o, const char *text, long long *num, char *want, size_t wlen) {
    *num = 0;
    switch (o->type) {
    case NC_OPT_STRING:
        return 0;
    case NC_OPT_BOOL:
        if (!*text || !strcmp(text, "true") || !strcmp(text, "1") || !strcmp(text, "yes")) {
            *num = 1;
            return 0;
        }
        if (!strcmp(text, "false") || !strcmp(text, "0") || !strcmp(text, "no")) return 0;
        snprintf(want, wlen, "a bool (true/false, 1/0, yes/no)");
        return -1;
    case NC_OPT_INT:
    case NC_OPT_DURATION: {
        long long lo = o->min, hi = o->max;
        if (!lo && !hi) hi = (long long)(~0ull >> 1);
        const char *unit = o->type == NC_OPT_DURATION ? " (milliseconds)" : "";
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (!*text || *end || errno || v < lo || v > hi) {
            snprintf(want, wlen, "an integer%s from %lld to %lld", unit, lo, hi);
            return -1;
        }
        *num = v;
        return 0;
    }
    case NC_OPT_ENUM: {
        size_t used = 0;
        for (long long i = 0; o->choices && o->choices[i]; i++) {
            if (!strcmp(o->choices[i], text)) {
                *num = i;
                return 0;
            }
        }
        used = (size_t)snprintf(want, wlen, "one of");
        for (size_t i = 0; o->choices && o->choices[i] && used < wlen; i++)
            used += (size_t)snprintf(want + used, wlen - used, "%s%s", i ? ", " : " ", o->choices[i]);
        return -1;
    }
    }
    return -1;
}

int nc_optset_set(nc_optset *s, const nc_optctx *cx, const char *name, const char *value, int from_url) {
    const char *what = from_url ? "URL parameter" : "option";
    if (!name || !*name) {
        return nc_fail(cx->log, cx->component, NC_EINVAL, "an %s without a name for %s://", what, cx->scheme);
    }
    if (!value) value = "";
    const nc_option_spec *o = spec_of(s->table, name);
    if (!o) o = prefix_spec_of(s->table, name);
    int prefixed = o && strcmp(o->name, name) != 0;
    char buf[256];
    if (!o) {
        return nc_fail(cx->log, cx->component, NC_EINVAL, "unknown %s '%s' for %s:// (its options: %s)", what,
                       name, cx->scheme, names_of(s->table, buf, sizeof buf));
    }
    if (!(o->levels & cx->level)) {
        return nc_fail(cx->log, cx->component, NC_EINVAL,
                       "%s '%s' is not valid for a %s (%s:// takes it for: %s)", what, name,
                       level_name(cx->level), cx->scheme, nc_option_levels_text(o->levels, buf, sizeof buf));
    }
    long long num;
    if (parse_value(o, value, &num, buf, sizeof buf)) {
        return nc_fail(cx->log, cx->component, NC_EINVAL, "%s '%s' of %s:// expects %s, got \"%s\"", what,
                       name, cx->scheme, buf, value);
    }
    char *text = strdup(value);
    if (!text) return NC_ENOMEM;
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i].spec == o &&
            (!prefixed ||
             !strcmp(s->v[i].name,
                     name))) { /* given again (or an option over its URL parameter): the later one counts */
            free(s->v[i].text);
            s->v[i].text = text;
            s->v[i].num = num;
            return 0;
        }
    }
    char *full = prefixed ? strdup(name) : NULL;
    nc_optval *v = (prefixed && !full) ? NULL : realloc(s->v, (s->n + 1) * sizeof *v);
    if (!v) {
        free(text);
        free(full);
        return NC_ENOMEM;
    }
    s->v = v;
    s->v[s->n++] = (nc_optval){o, text, num, full};
    return 0;
}

int nc_optset_build(nc_optset *s, const nc_option_spec *table, const nc_optctx *cx, const nc_url *url,
                    const nc_option *opts, size_t nopts) {
    memset(s, 0, sizeof *s);
    s->table = table;
    int r = 0;
    for (int i = 0; url && i < url->nquery && !r; i++)
        r = nc_optset_set(s, cx, url->qkeys[i], url->qvals[i], 1);
    if (!r && nopts && !opts) {
        r = nc_fail(cx->log, cx->component, NC_EINVAL, "noptions is %zu but options is NULL", nopts);
    }
    for (size_t i = 0; i < nopts && !r; i++) r = nc_optset_set(s, cx, opts[i].name, opts[i].value, 0);
    if (r) nc_optset_free(s);
    s->table = table;
    return r;
}

int nc_optset_copy(nc_optset *dst, const nc_optset *src, const nc_optset *parent) {
    memset(dst, 0, sizeof *dst);
    dst->table = src->table;
    dst->parent = parent;
    if (!src->n) return 0;
    if (!(dst->v = calloc(src->n, sizeof *dst->v))) return NC_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i] = src->v[i];
        dst->v[i].name = NULL;
        if (!(dst->v[i].text = strdup(src->v[i].text)) ||
            (src->v[i].name && !(dst->v[i].name = strdup(src->v[i].name)))) {
            if (dst->v[i].text) i++; /* free what this entry holds too */
            dst->n = i;
            nc_optset_free(dst);
            return NC_ENOMEM;
        }
    }
    dst->n = src->n;
    return 0;
}

void nc_optset_free(nc_optset *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].text);
        free(s->v[i].name);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

int nc_optset_list(const nc_optset *s, nc_option **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (!s->n) return 0;
    if (!(*out = malloc(s->n * sizeof **out))) return NC_ENOMEM;
    for (size_t i = 0; i < s->n; i++) (*out)[i] = (nc_option){nc_optval_name(&s->v[i]), s->v[i].text};
    *n = s->n;
    return 0;
}

/* ---- getters -------------------------------------------------------------------------------------- */

const nc_optval *nc_opts_find(const nc_optset *s, const char *name) {
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (!strcmp(nc_optval_name(&s->v[i]), name)) return &s->v[i];
    return NULL;
}

static const nc_option_spec *declared(const nc_optset *s, const char *name) {
    for (; s; s = s->parent) {
        const nc_option_spec *o = spec_of(s->table, name);
        if (o) return o;
    }
    return NULL;
}

const char *nc_opts_str(const nc_optset *s, const char *name) {
    const nc_optval *v = nc_opts_find(s, name);
    if (v) return v->text;
    const nc_option_spec *o = declared(s, name);
    return o ? o->def : NULL;
}

long long nc_opts_int(const nc_optset *s, const char *name) {
    const nc_optval *v = nc_opts_find(s, name);
    if (v) return v->num;
    const nc_option_spec *o = declared(s, name);
    long long num = 0;
    char want[8];
    /* defaults are checked against their own spec by the unit tests; a bad one reads as 0 */
    if (o && o->def && parse_value(o, o->def, &num, want, sizeof want)) num = 0;
    return num;
}

/* ---- public listing --------------------------------------------------------------------------------- */

/* Server and client of a scheme share one array: the server's, else the client's. */
static const nc_option_spec *table_of(const char *scheme) {
    const nc_server_transport *s = nc_server_transport_find(scheme);
    if (s) return s->options;
    const nc_client_transport *c = nc_client_transport_find(scheme);
    return c ? c->options : NULL;
}

const nc_option_spec *nc_transport_option(const char *scheme, size_t i) {
    const nc_option_spec *t = scheme ? table_of(scheme) : NULL;
    for (size_t k = 0; t && t[k].name; k++)
        if (k == i) return &t[k];
    return NULL;
}

typedef struct capture {
    char *buf;
    size_t len;
} capture;

static void capture_log(void *user, nc_log_level level, const char *component, const char *message) {
    capture *c = user;
    (void)level;
    (void)component;
    if (c->buf && c->len && !c->buf[0]) snprintf(c->buf, c->len, "%s", message);
}

int nc_options_check(const char *scheme, unsigned level, const nc_option *opts, size_t n, char *err,
                     size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!scheme || !(nc_server_transport_find(scheme) || nc_client_transport_find(scheme))) {
        if (err && errlen) snprintf(err, errlen, "unsupported transport \"%s\"", scheme ? scheme : "(null)");
        return NC_EUNSUPPORTED;
    }
    capture cap = {err, errlen};
    nc_logger lg;
    nc_logger_init(&lg, capture_log, &cap, NC_LOG_DEBUG);
    const nc_optctx cx = {level, scheme, &lg, "Options"};
    nc_optset set;
    int r = nc_optset_build(&set, table_of(scheme), &cx, NULL, opts, n);
    nc_optset_free(&set);
    return r;
}

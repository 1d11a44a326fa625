/* The public pull reader (nestc/json_reader.h). */
#include "nestc/json_reader.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void nc_json_reader_init(nc_json_reader *r, const char *text, size_t len) {
    memset(r, 0, sizeof *r);
    r->p = text ? text : "";
    r->end = r->p + (text ? len : 0);
}

static nc_json_tok fail(nc_json_reader *r) {
    r->error = 1;
    return NC_JSON_ERROR;
}

static nc_json_tok literal(nc_json_reader *r, const char *lit, size_t n, nc_json_tok t) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0) return fail(r);
    r->p += n;
    return t;
}

static nc_json_tok number(nc_json_reader *r) {
    const char *s = r->p, *q = s;
    {
        /* the common case first: an integer of at most 15 digits, accumulated as an integer */
        const char *d = q + (*q == '-');
        uint64_t v = 0;
        const char *e = d;
        while (e < r->end && (unsigned)(*e - '0') < 10) v = v * 10 + (uint64_t)(*e++ - '0');
        if (e > d && e - d <= 15 && (e == r->end || (*e != '.' && *e != 'e' && *e != 'E'))) {
            r->number = *q == '-' ? -(double)v : (double)v;
            r->p = e;
            return NC_JSON_NUMBER;
        }
    }
    int simple = 1; /* an integer of at most 15 digits: exact in a double, converted by hand */
    if (q < r->end && *q == '-') q++;
    const char *digits = q;
    while (q < r->end &&
           ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) {
        if (!(*q >= '0' && *q <= '9')) simple = 0;
        q++;
    }
    if (q == digits) return fail(r);
    if (simple && q - digits <= 15) {
        double v = 0;
        for (const char *d = digits; d < q; d++) v = v * 10 + (*d - '0');
        r->number = s[0] == '-' ? -v : v;
    } else {
        char buf[64], *tmp = (size_t)(q - s) < sizeof buf ? buf : malloc((size_t)(q - s) + 1);
        if (!tmp) return fail(r);
        memcpy(tmp, s, (size_t)(q - s));
        tmp[q - s] = '\0';
        char *endp;
        r->number = strtod(tmp, &endp);
        int bad = endp != tmp + (q - s);
        if (tmp != buf) free(tmp);
        if (bad) return fail(r);
    }
    r->p = q;
    return NC_JSON_NUMBER;
}

static nc_json_tok string(nc_json_reader *r, nc_json_tok t) {
    const char *q = ++r->p;
    r->escaped = 0;
    while (q < r->end && *q != '"') {
        if (*q == '\\') {
            r->escaped = 1;
            q++;
        }
        q++;
    }
    if (q >= r->end) return fail(r);
    r->text = r->p;
    r->len = (size_t)(q - r->p);
    r->p = q + 1;
    if (t == NC_JSON_STRING) {
        /* a string followed by ':' is a key */
        const char *k = r->p;
        while (k < r->end && (*k == ' ' || *k == '\n' || *k == '\r' || *k == '\t')) k++;
        if (k < r->end && *k == ':') {
            r->p = k + 1;
            return NC_JSON_KEY;
        }
    }
    return t;
}

nc_json_tok nc_json_next(nc_json_reader *r) {
    if (r->error) return NC_JSON_ERROR;
    if (r->p < r->end && *r->p == ',') r->p++; /* the usual separator first, then any whitespace */
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t' || *r->p == ','))
        r->p++;
    if (r->p >= r->end) return NC_JSON_END;
    switch (*r->p) {
    case '[':
        r->p++;
        return NC_JSON_ARRAY_BEGIN;
    case ']':
        r->p++;
        return NC_JSON_ARRAY_END;
    case '{':
        r->p++;
        return NC_JSON_OBJECT_BEGIN;
    case '}':
        r->p++;
        return NC_JSON_OBJECT_END;
    case '"':
        return string(r, NC_JSON_STRING);
    case 'n':
        return literal(r, "null", 4, NC_JSON_NULL);
    case 't':
        return literal(r, "true", 4, NC_JSON_TRUE);
    case 'f':
        return literal(r, "false", 5, NC_JSON_FALSE);
    default:
        return number(r);
    }
}

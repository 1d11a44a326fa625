/* nestc — a pull reader over JSON text, for handlers that read a large payload without building a
 * jansson value (nc_msg_data allocates one jansson node per element; summing 100,000 numbers that way
 * costs far more than reading them). Pair it with nc_msg_data_json:
 *
 *   size_t n;
 *   const char *text = nc_msg_data_json(msg, &n);
 *   nc_json_reader r;
 *   nc_json_reader_init(&r, text, n);
 *   double sum = 0;
 *   for (nc_json_tok t; (t = nc_json_next(&r)) != NC_JSON_END && t != NC_JSON_ERROR;)
 *       if (t == NC_JSON_NUMBER) sum += r.number;
 *
 * The reader allocates nothing and never reads outside the text. It checks structure loosely (it trusts
 * text the library has already validated, as payload text always is); malformed input ends in
 * NC_JSON_ERROR, never in undefined behaviour. Separators (',' ':') and whitespace are skipped. */
#ifndef NESTC_JSON_READER_H
#define NESTC_JSON_READER_H

#include <stddef.h>

#include "nestc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The tokens nc_json_next returns. */
typedef enum nc_json_tok {
    NC_JSON_END = 0, /* the text is exhausted */
    NC_JSON_ERROR,   /* malformed text; the reader stays in this state */
    NC_JSON_NULL,
    NC_JSON_TRUE,
    NC_JSON_FALSE,
    NC_JSON_NUMBER, /* `number` holds it as a double (JavaScript's number) */
    NC_JSON_STRING, /* `text`/`len`: the string's raw contents, escapes not decoded */
    NC_JSON_KEY,    /* an object key, as a string */
    NC_JSON_ARRAY_BEGIN,
    NC_JSON_ARRAY_END,
    NC_JSON_OBJECT_BEGIN,
    NC_JSON_OBJECT_END,
} nc_json_tok;

/* A pull reader over one JSON text; initialise with nc_json_reader_init. Caller-owned, no cleanup. */
typedef struct nc_json_reader {
    /* the current token's value */
    double number;
    const char *text; /* NC_JSON_STRING / NC_JSON_KEY: borrowed from the input */
    size_t len;
    int escaped; /* the string contains backslash escapes (decode them if you need the characters) */
    /* private */
    const char *p, *end;
    int error;
} nc_json_reader;

/* Starts reading `text` (borrowed: it must outlive the reader). */
NC_API void nc_json_reader_init(nc_json_reader *r, const char *text, size_t len);
/* The next token. */
NC_API nc_json_tok nc_json_next(nc_json_reader *r);

#ifdef __cplusplus
}
#endif
#endif

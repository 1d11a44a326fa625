/* NestJS pattern -> route normalisation (spec §3.1-§3.3). Private.
 *
 * Both sides of a NestJS connection turn a pattern into a route string with transformPatternToRoute
 * (@nestjs/microservices utils/transform-pattern.utils.js); routes are handler-table keys and broker
 * channel names, so nestc must produce the same bytes. All functions are thread-safe. */
#ifndef NC_CORE_ROUTE_H
#define NC_CORE_ROUTE_H

#include <stddef.h>

#include <jansson.h>

/* Route of a pattern value, as transformPatternToRoute(pattern) computes it:
 * - string: the string itself;
 * - number: its JavaScript text (integers beyond +-2^53 as the double JavaScript would hold);
 * - object or array: "{" "key":value,... "}" with keys in JavaScript localeCompare order (see
 *   nc_route_collate), array indices as keys, string values quoted, both keys and string values escaped
 *   (only `\` -> `\\` and `"` -> `\"`), nested numbers as text, nested true/false/null as those words,
 *   nested objects recursively; an object nested deeper than 5 levels is [MAX_DEPTH_REACHED], an object
 *   with more than 20 keys [TOO_MANY_KEYS].
 * On success returns 0 and stores a malloc'd NUL-terminated string in *out (caller frees).
 * Returns NC_EINVAL (and *out = NULL) for a NULL argument, a top-level true/false/null (NestJS returns
 * these unconverted, and no handler table key can equal them), or a route that would contain a NUL byte
 * (not representable as a C string); NC_ENOMEM. A single-key object allocates only the result. */
int nc_route_from_value(const json_t *pattern, char **out);

/* Route under which a NestJS server looks up an incoming pattern given as text (§3.3,
 * Server.getRouteFromPattern): if `text` parses as JSON (nc_json_parse), the route of the parsed value;
 * otherwise the raw text itself. `text` need not be NUL-terminated.
 * Same results and ownership as nc_route_from_value, plus NC_EINVAL when the text is JSON that JSON.parse
 * accepts but jansson cannot hold (see nc_json_parse_js: e.g. a lone surrogate escape, 1e400): such a
 * pattern cannot match a nestc handler. Examples: `{"role":"math","cmd":"sum"}` -> `{"cmd":"sum",
 * "role":"math"}`, `42` -> `42`, `"\"quoted\""` -> `quoted` (one level of JSON removed), `user_created`
 * -> `user_created`, `true` -> NC_EINVAL. */
int nc_route_from_text(const char *text, size_t len, char **out);

/* Route of a pattern as nestc users write it in C ("sum", "{\"cmd\":\"sum\"}", "42"): the same as
 * nc_route_from_text(pattern, strlen(pattern), out), i.e. exactly the route a NestJS server computes
 * when such a text arrives. NC_EINVAL if `pattern` is NULL. */
int nc_route_from_user(const char *pattern, char **out);

/* JavaScript's a.localeCompare(b) sign (-1, 0, 1) for UTF-8 strings of the given lengths, i.e. ICU root
 * collation at tertiary strength with normalisation on (what V8's default collator uses). Strings made
 * only of printable ASCII (0x20-0x7E) are compared with a built-in table, without ICU; any other string
 * goes through ICU, loaded at run time (dlopen of libicui18n.so.<the ICU major version built against>, or
 * of the library named by the environment variable NESTC_ICU_LIBRARY, read once) and its root collator
 * opened once, lazily. When ICU cannot be loaded or opened, one warning is logged (default sink) and such
 * strings are compared by the fallback order: printable ASCII as in the table, before every other code
 * point, those in code-point order, case last. The fallback is a total order, so routes stay
 * deterministic and every pattern still has a route; only the order of keys with characters outside
 * printable ASCII can differ from NestJS's.
 * Distinct printable-ASCII strings never compare equal; with ICU others can (canonically equivalent
 * strings, or strings that differ only by ignorable characters such as controls or U+00AD). */
int nc_route_collate(const char *a, size_t alen, const char *b, size_t blen);

/* nc_route_collate forced through ICU (or its fallback when ICU is unavailable), whatever the input (for
 * tests of the ASCII table). */
int nc_route_collate_icu(const char *a, size_t alen, const char *b, size_t blen);

/* 1 if ICU's collator is loaded (loading it now if this is the first use), 0 if the fallback order is
 * in use. */
int nc_route_icu_available(void);

/* A pattern written as text (the API's and the CLI's form): a JSON object or number if the text parses
 * as one, otherwise the string itself. New reference; NULL on ENOMEM, or when the text is not well-formed
 * UTF-8 (lone surrogates allowed, as WTF-8): check nc_wtf8_valid to tell the two apart. */
json_t *nc_pattern_from_text(const char *text);

#endif

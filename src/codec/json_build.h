/* Builds a jansson value from JSON text that nc_json_scan_value / nc_env_scan accepted, without
 * jansson's parser: no lexer state, no string buffer, numbers converted in place. The result is the same
 * value jansson's json_loadb would give. Used when a handler asks for a scanned payload as a jansson
 * value (nc_msg_data) and for reply values on the client. Private. */
#ifndef NC_CODEC_JSON_BUILD_H
#define NC_CODEC_JSON_BUILD_H

#include <jansson.h>
#include <stddef.h>

/* Returns a new reference, or NULL (out of memory, or text the scanner would not accept). */
json_t *nc_json_build(const char *text, size_t len);

#endif

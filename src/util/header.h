/* One header of a message: name and value as bytes (not NUL-terminated), in the order received; a name
 * may repeat. Shared by the codecs that parse header blocks and the transport contract. Private. */
#ifndef NC_UTIL_HEADER_H
#define NC_UTIL_HEADER_H

#include <stddef.h>

typedef struct nc_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} nc_header;

#endif

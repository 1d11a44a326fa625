/* amqp_table_hex: each line of stdin a JSON object; each line of stdout the AMQP field table nestc writes
 * for it (nc_amqp_table_write), in hex, or "error N". Run by amqp-table.mjs, which compares it with
 * amqplib's own encoding of the same object. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "codec/amqp_proto.h"

int main(void) {
    static char line[65536];
    while (fgets(line, sizeof line, stdin)) {
        json_error_t e;
        json_t *j = json_loads(line, JSON_DISABLE_EOF_CHECK, &e);
        nc_buf out = NC_BUF_INIT;
        int rc = j ? nc_amqp_table_write(&out, j, 32) : -1;
        if (rc)
            printf("error %d\n", rc);
        else {
            for (size_t i = 0; i < out.len; i++) printf("%02x", (unsigned char)out.data[i]);
            putchar('\n');
        }
        nc_buf_free(&out);
        json_decref(j);
    }
    return 0;
}

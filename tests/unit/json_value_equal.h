/* Two JSON values equal as JavaScript sees the values: numbers by value (a default 0 held as an integer
 * equals a decoded 0.0; an exact 64-bit integer equals the double JavaScript rounded it to),
 * objects by members whatever their order, arrays element by element. Shared by
 * the protobuf codec's unit test and its fuzzer. */
#ifndef NESTC_TEST_JSON_VALUE_EQUAL_H
#define NESTC_TEST_JSON_VALUE_EQUAL_H

#include <jansson.h>

static int json_value_equal(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (!w || !json_value_equal(v, w)) return 0;
        }
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_value_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

#endif

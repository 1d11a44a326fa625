/* Protobuf wire primitives shared by the decoder and the encoder: varints, zigzag, little-endian fixed
 * widths, wire types. Private. */
#ifndef NC_CODEC_PROTO_WIRE_H
#define NC_CODEC_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec/proto_parse.h"

enum { NC_WT_VARINT = 0, NC_WT_I64 = 1, NC_WT_LEN = 2, NC_WT_SGROUP = 3, NC_WT_EGROUP = 4, NC_WT_I32 = 5 };

/* The wire type a field of this type is written with (packed lists aside). */
static inline int nc_pb_wire_type(int type) {
    switch (type) {
    case NC_PB_DOUBLE:
    case NC_PB_FIXED64:
    case NC_PB_SFIXED64:
        return NC_WT_I64;
    case NC_PB_FLOAT:
    case NC_PB_FIXED32:
    case NC_PB_SFIXED32:
        return NC_WT_I32;
    case NC_PB_STRING:
    case NC_PB_BYTES:
    case NC_PB_MESSAGE:
        return NC_WT_LEN;
    default:
        return NC_WT_VARINT;
    }
}

static inline int nc_pb_is_long(int type) {
    return type == NC_PB_INT64 || type == NC_PB_UINT64 || type == NC_PB_SINT64 || type == NC_PB_FIXED64 ||
           type == NC_PB_SFIXED64;
}

static inline int nc_pb_is_unsigned(int type) {
    return type == NC_PB_UINT64 || type == NC_PB_FIXED64 || type == NC_PB_UINT32 || type == NC_PB_FIXED32;
}

/* Reads a varint of at most 10 bytes. Returns the bytes used, 0 when truncated or too long. */
static inline size_t nc_pb_get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v) {
    uint64_t x = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        x |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

static inline size_t nc_pb_put_varint(uint8_t *d, uint64_t v) { /* d has room for 10 bytes */
    size_t n = 0;
    while (v >= 0x80) {
        d[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    d[n++] = (uint8_t)v;
    return n;
}

static inline uint64_t nc_pb_zigzag64(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static inline int64_t nc_pb_unzigzag64(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}
static inline uint32_t nc_pb_zigzag32(int32_t v) {
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}
static inline int32_t nc_pb_unzigzag32(uint32_t v) {
    return (int32_t)(v >> 1) ^ -(int32_t)(v & 1);
}

static inline uint32_t nc_pb_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t nc_pb_le64(const uint8_t *p) {
    return nc_pb_le32(p) | (uint64_t)nc_pb_le32(p + 4) << 32;
}

#endif

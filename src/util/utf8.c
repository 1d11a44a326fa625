/* UTF-8 validation and counting, shared by the framer, the JSON reader and writer, and the core. */
#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

#include "nestc/error.h"

#define HI8 UINT64_C(0x8080808080808080)
#define LO8 UINT64_C(0x0101010101010101)

void nc_utf8_scan_reset(nc_utf8_scan *s) {
    s->units = 0;
    s->seq_start = 0;
    s->need = 0;
    s->lo = 0x80;
    s->hi = 0xBF;
}

int nc_utf8_scan_run(nc_utf8_scan *s, const unsigned char *p, size_t n, size_t base, size_t want,
                     size_t *pos) {
    size_t units = s->units, i = 0;
    unsigned need = s->need;
    unsigned lo = s->lo, hi = s->hi;
    int rc = NC_UTF8_MORE;

    while (i < n) {
        if (need == 0) {
            /* ASCII fast path, bounded so that it cannot run past the end of the text. */
            size_t room = want - units;
            size_t stop = (n - i <= room) ? n : i + room;
            size_t j = i;
            while (stop - j >= 8) {
                uint64_t w;
                memcpy(&w, p + j, 8);
                if (w & HI8) break;
                j += 8;
            }
            while (j < stop && p[j] < 0x80) j++;
            units += j - i;
            i = j;
            if (units == want) {
                rc = NC_UTF8_DONE;
                break;
            }
            if (i == n) break;

            unsigned c = p[i];
            s->seq_start = base + i;
            if (c < 0xC2) { /* continuation byte without a lead, or overlong 2-byte lead C0/C1 */
                s->units = units;
                *pos = base + i;
                return NC_UTF8_BAD;
            } else if (c < 0xE0) {
                need = 1;
                lo = 0x80, hi = 0xBF;
                units += 1;
            } else if (c < 0xF0) {
                need = 2;
                lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
                hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF would be a surrogate */
                units += 1;
            } else if (c < 0xF5) {
                need = 3;
                lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
                hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. would be above U+10FFFF */
                units += 2;                   /* a surrogate pair in UTF-16 */
                if (units > want) {
                    /* 1 unit if it turns out ill-formed: the byte-by-byte reader decides */
                    s->units = units - 2;
                    *pos = base + i;
                    return NC_UTF8_BAD;
                }
            } else {
                s->units = units;
                *pos = base + i;
                return NC_UTF8_BAD;
            }
            i++;
        } else {
            unsigned c = p[i];
            if (c < lo || c > hi) {
                /* back to the count before the lead byte: 2 units for a 4-byte lead, else 1 */
                s->units = units - ((base + i - s->seq_start) + need == 4 ? 2 : 1);
                *pos = s->seq_start;
                return NC_UTF8_BAD;
            }
            lo = 0x80, hi = 0xBF;
            i++;
            if (--need == 0 && units == want) {
                rc = NC_UTF8_DONE;
                break;
            }
        }
    }
    s->units = units;
    s->need = need;
    s->lo = (unsigned char)lo;
    s->hi = (unsigned char)hi;
    *pos = i;
    return rc;
}

int nc_utf8_validate(const char *s, size_t len, size_t *bad_at) {
    nc_utf8_scan sc;
    size_t pos;
    nc_utf8_scan_reset(&sc);
    /* want = SIZE_MAX never completes, so this only validates. */
    int rc = nc_utf8_scan_run(&sc, (const unsigned char *)s, len, 0, SIZE_MAX, &pos);
    if (rc == NC_UTF8_BAD || sc.need) {
        if (bad_at) *bad_at = rc == NC_UTF8_BAD ? pos : sc.seq_start;
        return NC_EPROTO;
    }
    return 0;
}

size_t nc_utf16_units(const char *utf8, size_t len) {
    const unsigned char *p = (const unsigned char *)utf8;
    size_t units = len, i = 0;
    /* units = bytes - continuation bytes + 4-byte lead bytes, counted 8 bytes at a time (SWAR): a byte's
     * bit 7 in (w & ~(w << 1)) is "10xxxxxx", in (w & w<<1 & w<<2 & w<<3) it is "1111xxxx" (valid UTF-8
     * has no F8..FF). The multiply sums the 0/1 bytes into the top byte. */
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (!(w & HI8)) continue;
        uint64_t cont = (w & ~(w << 1) & HI8) >> 7;
        uint64_t four = (w & (w << 1) & (w << 2) & (w << 3) & HI8) >> 7;
        units -= (size_t)((cont * LO8) >> 56);
        units += (size_t)((four * LO8) >> 56);
    }
    for (; i < len; i++) {
        if ((p[i] & 0xC0) == 0x80)
            units--;
        else if (p[i] >= 0xF0)
            units++;
    }
    return units;
}

int nc_wtf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t k = nc_utf8_seq_len(p, end);
        if (!k && end - p >= 3 && p[0] == 0xED && p[1] >= 0xA0 && p[1] <= 0xBF && (p[2] & 0xC0) == 0x80)
            k = 3; /* a surrogate code point */
        if (!k) return 0;
        p += k;
    }
    return 1;
}

size_t nc_utf8_char_len(const unsigned char *p, const unsigned char *end) {
    return *p < 0x80 ? 1 : nc_utf8_seq_len(p, end);
}

size_t nc_utf8_bad_len(const unsigned char *p, const unsigned char *end) {
    /* the second byte's range as in utf8_char; the bytes after it are any continuation byte */
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
    size_t k = 1;
    if (k < n && p + k < end && p[k] >= lo && p[k] <= hi)
        for (k++; k < n && p + k < end && (p[k] & 0xC0) == 0x80;) k++;
    return k;
}

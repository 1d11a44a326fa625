/* Wire counters: connections and the bytes that cross the socket (TLS records, framing and broker
 * protocol included), counted once in the io layer where every stream reads and writes (io/stream.c), so
 * every transport built on nc_stream has them without a line of its own.
 *
 * A block belongs to one server (one slot per loop: worker 0, 1, ...) or one client (one slot). Each slot
 * is written by its loop's thread only, with a relaxed load and store (no locked instruction: a plain add
 * on x86 and arm64); readers on any thread sum the slots (exact once traffic stops, never torn). A
 * transport whose sockets belong to a library (Kafka: librdkafka's threads) registers a probe instead,
 * which adds its figures when the block is read; when it goes, its last figures are kept in the block.
 * The block is reference-counted: the metrics registry keeps reading it after the server or client that
 * filled it is gone. Private. */
#ifndef NC_IO_WIRE_H
#define NC_IO_WIRE_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

/* One loop's counters: 64 bytes, a cache line in a block (workers do not share a line). */
typedef struct nc_wire_slot {
    _Atomic uint64_t in, out;    /* wire bytes read from / written to sockets */
    _Atomic uint64_t opened;     /* connections accepted (server) or established (client, broker) */
    _Atomic uint64_t closed;     /* of those, closed */
    _Atomic uint64_t closed_err; /* of those, closed for an error (not an orderly end of either side) */
    char pad[24];
} nc_wire_slot;
_Static_assert(sizeof(nc_wire_slot) == 64, "a slot is one cache line");

/* The summed figures of a block. */
typedef struct nc_wire_counts {
    uint64_t in, out, opened, closed, closed_err;
} nc_wire_counts;

typedef struct nc_wire_block nc_wire_block;

/* Adds the figures of sockets not counted in a slot (a library's connections) to *c. Called with the
 * block's lock held, on the reading thread. */
typedef void (*nc_wire_probe_fn)(void *arg, nc_wire_counts *c);

struct nc_wire_block {
    _Atomic int refs;
    int nslots;
    uv_mutex_t lock;        /* guards the probe and `kept` */
    nc_wire_probe_fn probe; /* NULL = none */
    void *probe_arg;
    nc_wire_counts kept; /* the last figures of probes that went */
    nc_wire_slot *slots; /* one per loop, in the same allocation, each on a cache line of its own */
};

/* Adds v to a counter only its slot's thread writes. */
static inline void nc_wire_add(_Atomic uint64_t *c, uint64_t v) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_release);
}

/* A block of `nslots` zeroed slots, one reference held by the caller. NULL when out of memory. */
nc_wire_block *nc_wire_block_new(int nslots);
void nc_wire_block_ref(nc_wire_block *b);
void nc_wire_block_unref(nc_wire_block *b); /* NULL: no-op */
/* Sums every slot, the kept figures and the probe into *c (zeroed first). Any thread. */
void nc_wire_block_read(nc_wire_block *b, nc_wire_counts *c);
/* Sets the probe (fn non-NULL), or clears it (fn NULL): its figures are then read one last time and kept.
 * Clearing waits for a read in progress to finish; the probe's arg may be freed once it returns. */
void nc_wire_block_probe(nc_wire_block *b, nc_wire_probe_fn fn, void *arg);

#endif

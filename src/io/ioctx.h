/* Per-loop write batching. Producers (reply streams, connections) queue bytes during a loop iteration
 * and mark themselves dirty; the context flushes every dirty item right before the loop blocks for I/O
 * (uv_prepare) and right after I/O callbacks ran (uv_check). So all replies a connection produced in one
 * iteration leave in one write, and a stream value followed by its end in the same iteration can be
 * coalesced into one packet, as NestJS does with process.nextTick. Private. */
#ifndef NC_IO_IOCTX_H
#define NC_IO_IOCTX_H

#include <uv.h>

#include "io/wire.h"

typedef struct nc_flushable {
    struct nc_flushable *next_dirty;
    void (*flush)(struct nc_flushable *f);
    int queued; /* on the dirty list */
} nc_flushable;

typedef struct nc_ioctx {
    uv_loop_t *loop;
    int own_loop;
    uv_prepare_t prepare;
    uv_check_t check;
    nc_flushable *dirty_head, *dirty_tail;
    int closing;
    int open_handles; /* prepare + check until their close callbacks ran */
    char *rbuf;       /* NC_READ_BUF_SIZE bytes, allocated on first read */
    char *tlsbuf;     /* decrypted-bytes scratch, same size */
    /* Where this loop's streams count their connections and wire bytes: a slot of the owner's block
     * (nc_ioctx_count_wire), else wire_local (counted, read by no one). Never NULL. */
    nc_wire_slot *wire;
    nc_wire_block *wire_block; /* the block `wire` is in (a reference), NULL for wire_local */
    nc_wire_slot wire_local;
} nc_ioctx;

/* Creates the context on `loop` (NULL: a new owned loop). */
int nc_ioctx_init(nc_ioctx *io, uv_loop_t *loop);
/* Makes a block of nslots wire slots (io/wire.h) and counts this loop's streams in its slot 0. Returns 0
 * or NC_ENOMEM. */
int nc_ioctx_count_wire(nc_ioctx *io, int nslots);
/* Counts this loop's streams in slot `slot` of another context's block (a worker in the primary's). */
void nc_ioctx_share_wire(nc_ioctx *io, nc_wire_block *b, int slot);
/* Queues f for the next flush (no-op if already queued). */
void nc_ioctx_mark(nc_ioctx *io, nc_flushable *f);
/* Queues f at the head of the list, so that it runs before the items already queued (a producer that
 * writes into another's buffer at flush time and wants to share its write); no-op if already queued. */
void nc_ioctx_mark_first(nc_ioctx *io, nc_flushable *f);
/* Removes f from the dirty list (before f is freed). */
void nc_ioctx_unmark(nc_ioctx *io, nc_flushable *f);
/* Flushes now (used before closing). */
void nc_ioctx_flush(nc_ioctx *io);
/* Closes the prepare/check handles (async; the loop must run to finish). */
void nc_ioctx_close(nc_ioctx *io);
/* Runs the loop until *counter (handles whose close callbacks are pending) reaches 0. */
void nc_ioctx_wait_closed(uv_loop_t *loop, int *counter);
/* Owned loop: closes every handle still open on it (left there by others, e.g. handlers), runs it until
 * every handle is closed, then closes and frees it. Borrowed loop: runs it until the context's own
 * handles are closed. Returns how many handles were left open (0 for a borrowed loop). */
int nc_ioctx_finish(nc_ioctx *io);

#endif

/* One read buffer per loop: libuv reads one stream at a time and consumers copy what they keep. */
#define NC_READ_BUF_SIZE 65536
char *nc_ioctx_read_buffer(nc_ioctx *io);

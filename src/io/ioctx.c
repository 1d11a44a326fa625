#include "io/ioctx.h"

#include <stdlib.h>
#include <string.h>

#include "nestc/error.h"

static void run_flush(nc_ioctx *io) {
    /* Flushing one item may mark others (a request's packets go to its connection): keep going until
     * the list is empty. */
    while (io->dirty_head) {
        nc_flushable *f = io->dirty_head;
        io->dirty_head = f->next_dirty;
        if (!io->dirty_head) io->dirty_tail = NULL;
        f->next_dirty = NULL;
        f->queued = 0;
        f->flush(f);
    }
}

static void on_prepare(uv_prepare_t *h) {
    run_flush(h->data);
}
static void on_check(uv_check_t *h) {
    run_flush(h->data);
}

int nc_ioctx_init(nc_ioctx *io, uv_loop_t *loop) {
    io->dirty_head = io->dirty_tail = NULL;
    io->closing = 0;
    io->rbuf = io->tlsbuf = NULL;
    memset(&io->wire_local, 0, sizeof io->wire_local);
    io->wire = &io->wire_local;
    io->wire_block = NULL;
    io->own_loop = loop == NULL;
    if (!loop) {
        loop = malloc(sizeof *loop);
        if (!loop) return NC_ENOMEM;
        if (uv_loop_init(loop)) {
            free(loop);
            return NC_EIO;
        }
    }
    io->loop = loop;
    uv_prepare_init(loop, &io->prepare);
    uv_check_init(loop, &io->check);
    io->open_handles = 2;
    io->prepare.data = io->check.data = io;
    uv_prepare_start(&io->prepare, on_prepare);
    uv_check_start(&io->check, on_check);
    /* These two must not keep the loop alive on their own. */
    uv_unref((uv_handle_t *)&io->prepare);
    uv_unref((uv_handle_t *)&io->check);
    return 0;
}

int nc_ioctx_count_wire(nc_ioctx *io, int nslots) {
    nc_wire_block *b = nc_wire_block_new(nslots);
    if (!b) return NC_ENOMEM;
    nc_wire_block_unref(io->wire_block);
    io->wire_block = b;
    io->wire = &b->slots[0];
    return 0;
}

void nc_ioctx_share_wire(nc_ioctx *io, nc_wire_block *b, int slot) {
    if (!b || slot < 0 || slot >= b->nslots) return;
    nc_wire_block_ref(b);
    nc_wire_block_unref(io->wire_block);
    io->wire_block = b;
    io->wire = &b->slots[slot];
}

void nc_ioctx_mark(nc_ioctx *io, nc_flushable *f) {
    if (f->queued) return;
    f->queued = 1;
    f->next_dirty = NULL;
    if (io->dirty_tail)
        io->dirty_tail->next_dirty = f;
    else
        io->dirty_head = f;
    io->dirty_tail = f;
}

void nc_ioctx_mark_first(nc_ioctx *io, nc_flushable *f) {
    if (f->queued) return;
    f->queued = 1;
    f->next_dirty = io->dirty_head;
    io->dirty_head = f;
    if (!io->dirty_tail) io->dirty_tail = f;
}

void nc_ioctx_unmark(nc_ioctx *io, nc_flushable *f) {
    if (!f->queued) return;
    nc_flushable *prev = NULL;
    for (nc_flushable *it = io->dirty_head; it; prev = it, it = it->next_dirty) {
        if (it != f) continue;
        if (prev)
            prev->next_dirty = it->next_dirty;
        else
            io->dirty_head = it->next_dirty;
        if (io->dirty_tail == it) io->dirty_tail = prev;
        break;
    }
    f->queued = 0;
    f->next_dirty = NULL;
}

void nc_ioctx_flush(nc_ioctx *io) {
    run_flush(io);
}

static void handle_closed(uv_handle_t *h) {
    ((nc_ioctx *)h->data)->open_handles--;
}

void nc_ioctx_close(nc_ioctx *io) {
    if (io->closing) return;
    io->closing = 1;
    uv_close((uv_handle_t *)&io->prepare, handle_closed);
    uv_close((uv_handle_t *)&io->check, handle_closed);
}

void nc_ioctx_wait_closed(uv_loop_t *loop, int *counter) {
    /* close callbacks run at the end of an iteration and never block it */
    while (*counter > 0) uv_run(loop, UV_RUN_NOWAIT);
}

static void close_leftover(uv_handle_t *h, void *arg) {
    if (uv_is_closing(h)) return;
    ++*(int *)arg;
    uv_close(h, NULL);
}

int nc_ioctx_finish(nc_ioctx *io) {
    int left = 0;
    nc_ioctx_close(io);
    if (io->own_loop) {
        /* Handles someone else left on our loop (a handler's timer for a request cancelled at shutdown)
         * would keep uv_run below going, for an hour if that is the timer's delay: close them. Their
         * owners' close callbacks never run, so what they would free stays allocated. */
        uv_walk(io->loop, close_leftover, &left);
        uv_run(io->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(io->loop) == UV_EBUSY) {
            /* Something still holds a handle: run once more to let close callbacks land. */
            uv_run(io->loop, UV_RUN_DEFAULT);
            uv_loop_close(io->loop);
        }
        free(io->loop);
        io->loop = NULL;
    } else {
        /* a borrowed loop: our handles live in the owner's memory, which is freed right after */
        nc_ioctx_wait_closed(io->loop, &io->open_handles);
    }
    free(io->rbuf);
    free(io->tlsbuf);
    io->rbuf = io->tlsbuf = NULL;
    nc_wire_block_unref(io->wire_block); /* a registry that read it may keep it */
    io->wire_block = NULL;
    io->wire = &io->wire_local;
    return left;
}

char *nc_ioctx_read_buffer(nc_ioctx *io) {
    if (!io->rbuf) io->rbuf = malloc(NC_READ_BUF_SIZE);
    return io->rbuf;
}

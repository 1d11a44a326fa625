/* Which loops the library is running on this thread. Private.
 *
 * libuv's uv_run is not reentrant: running a loop again from inside one of its callbacks (a blocking
 * helper called from on_done) breaks the outer iteration (its I/O poll keeps state on the loop). libuv
 * cannot be asked whether a loop is running, so the library's own drivers (nc_client_run,
 * nc_server_run, the blocking helpers of client_sync.c) run loops through nc_loop_run, which keeps a
 * per-thread list of the loops being run, and the blocking helpers refuse a loop already on it. */
#ifndef NC_CORE_LOOP_RUN_H
#define NC_CORE_LOOP_RUN_H

#include <uv.h>

/* uv_run(loop, mode), with `loop` marked as running on this thread for the duration. */
int nc_loop_run(uv_loop_t *loop, uv_run_mode mode);

/* 1 when this thread is inside nc_loop_run(loop, ...) (so: inside one of its callbacks), else 0. */
int nc_loop_running_here(const uv_loop_t *loop);

#endif

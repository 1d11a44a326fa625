#include "core/loop_run.h"

#include <stddef.h>

/* A frame per nc_loop_run on this thread's stack, innermost first. Thread-local: a loop runs on one
 * thread, and the question is always asked by the thread about to run it. */
typedef struct run_frame {
    const uv_loop_t *loop;
    struct run_frame *up;
} run_frame;

static _Thread_local run_frame *top;

int nc_loop_run(uv_loop_t *loop, uv_run_mode mode) {
    run_frame f = {loop, top};
    top = &f;
    int r = uv_run(loop, mode);
    top = f.up;
    return r;
}

int nc_loop_running_here(const uv_loop_t *loop) {
    for (const run_frame *f = top; f; f = f->up)
        if (f->loop == loop) return 1;
    return 0;
}

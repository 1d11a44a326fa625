/* Hooks (include/nestc/hooks.h). First the hook machinery on its own (sets, tables, records, order,
 * per-set state, refusals, removal while messages are in flight); then, with a real TCP server and client
 * on one loop, what each kind of message shows the hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "core/hooks_internal.h"
#include "core/server_internal.h"
#include "nestc/nestc.h"

/* ---- a log of hook calls ------------------------------------------------------------------------- */

typedef struct ev {
    char what[48];
    uint64_t t;
    int code;
} ev;

static ev evs[256];
static int nevs;

static void logev(const char *set, const char *what, nc_hook_info *i, int code) {
    if (nevs >= (int)(sizeof evs / sizeof *evs)) return;
    snprintf(evs[nevs].what, sizeof evs[nevs].what, "%s:%s", set, what);
    evs[nevs].t = nc_hook_now(i);
    assert_true(evs[nevs].t >= i->start_ns);
    evs[nevs].code = code;
    nevs++;
}

/* The log as one string "A:dispatch A:start ..." for comparison. */
static const char *trail(void) {
    static char s[4096];
    s[0] = '\0';
    for (int k = 0; k < nevs; k++) {
        if (k) strcat(s, " ");
        strcat(s, evs[k].what);
    }
    return s;
}

static int refuse_with; /* what set "B"'s interceptors return */
static int released;

static const char *name_of(void *user) {
    return user ? user : "?";
}

static void s_dispatch(void *u, nc_hook_info *i) {
    assert_null(*i->state);
    *i->state = u; /* each set's own slot */
    logev(name_of(u), "dispatch", i, 0);
}
static int s_before(void *u, nc_hook_info *i) {
    assert_ptr_equal(*i->state, u);
    logev(name_of(u), "before", i, 0);
    return strcmp(name_of(u), "B") == 0 ? refuse_with : 0;
}
static void s_start(void *u, nc_hook_info *i) {
    logev(name_of(u), "start", i, 0);
}
static void s_return(void *u, nc_hook_info *i) {
    logev(name_of(u), "return", i, 0);
}
static void s_reply(void *u, nc_hook_info *i, nc_hook_reply kind, const char *json, size_t len, int final) {
    char w[32];
    /* the first bytes of the value are enough to tell packets apart */
    snprintf(w, sizeof w, "reply%d%s%.*s", (int)kind, final ? "f" : "", (int)(len < 9 ? len : 9),
             json ? json : "");
    logev(name_of(u), w, i, 0);
}
static void s_settle(void *u, nc_hook_info *i, nc_hook_settle how) {
    logev(name_of(u), "settle", i, (int)how);
}
static void s_finish(void *u, nc_hook_info *i, int outcome) {
    assert_ptr_equal(*i->state, u);
    char w[32];
    snprintf(w, sizeof w, "finish%d", outcome);
    logev(name_of(u), w, i, outcome);
}
static void s_release(void *u) {
    released++;
}

static const nc_server_hooks all_server = {
    .struct_size = sizeof(nc_server_hooks),
    .on_dispatch = s_dispatch,
    .before_handler = s_before,
    .on_handler_start = s_start,
    .on_handler_return = s_return,
    .on_reply = s_reply,
    .on_settle = s_settle,
    .on_finish = s_finish,
    .release = s_release,
};

static void reset(void) {
    nevs = 0;
    refuse_with = 0;
    released = 0;
}

/* A message as dispatch.c fills one (only what the hooks read). */
static void fake_msg(nc_msg *m, const char *route, int is_event) {
    memset(m, 0, sizeof *m);
    m->route = route;
    m->pattern_text = route;
    m->transport = "tcp";
    m->is_event = is_event;
}

/* ---- the machinery alone ------------------------------------------------------------------------- */

static void test_order_and_state(void **st) {
    reset();
    nc_hook_table *t = NULL;
    int a = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    int b = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    assert_true(a > 0 && b > a);
    nc_msg m;
    fake_msg(&m, "sum", 0);
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, (nc_request *)&m, "\"1\"", 3, 1);
    assert_non_null(r);
    assert_string_equal(r->info.route, "sum");
    assert_string_equal(r->info.transport, "tcp");
    assert_memory_equal(r->info.id, "\"1\"", 3);
    assert_int_equal(nc_hooks__before_handler(r), 0);
    nc_hooks__handler_start(r);
    nc_hooks__handler_return(r);
    nc_hooks__reply(r, NC_HOOK_REPLY_VALUE, "6", 1, 1);
    nc_hooks__settle(r, NC_HOOK_ACK);
    nc_hooks__finish(r, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch A:before B:before A:start B:start B:return A:return "
                                 "A:reply0f6 B:reply0f6 A:settle B:settle B:finish0 A:finish0");
    for (int k = 1; k < nevs; k++) assert_true(evs[k].t >= evs[k - 1].t);
    nc_hooks__drop(&t);
    assert_null(t);
    assert_int_equal(released, 2);
}

static void test_outcomes(void **st) {
    reset();
    nc_hook_table *t = NULL;
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "C");
    nc_msg m;
    fake_msg(&m, "x", 0);
    /* B refuses: C's interceptor still runs, the refusal is B's code */
    refuse_with = NC_EREFUSED;
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(nc_hooks__before_handler(r), NC_EREFUSED);
    nc_hooks__finish(r, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch C:dispatch A:before B:before C:before "
                                 "C:finish-22 B:finish-22 A:finish-22");
    /* no handler */
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 0);
    nc_hooks__finish(r, 0);
    assert_int_equal(evs[nevs - 1].code, NC_ENOHANDLER);
    /* an error packet, then cancelled: cancellation says more */
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    nc_hooks__reply(r, NC_HOOK_REPLY_ERROR, "{}", 2, 1);
    nc_hooks__finish(r, 0);
    assert_int_equal(evs[nevs - 1].code, NC_EREMOTE);
    reset();
    r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    nc_hooks__finish(r, NC_ECANCELED);
    assert_int_equal(evs[nevs - 1].code, NC_ECANCELED);
    nc_hooks__drop(&t);
}

/* A set removed while a message it saw is in flight still sees that message end; release runs after. */
static void test_remove_in_flight(void **st) {
    reset();
    nc_hook_table *t = NULL;
    int a = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A");
    nc_msg m;
    fake_msg(&m, "x", 0);
    nc_hook_rec *r = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(nc_hooks__remove(&t, a), 0);
    assert_null(t);
    assert_int_equal(nc_hooks__remove(&t, a), NC_EINVAL);
    int b = nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "B");
    nc_hook_rec *r2 = nc_hooks__dispatch(t, NULL, &m, NULL, NULL, 0, 1);
    assert_int_equal(released, 0);
    nc_hooks__finish(r, 0); /* A's message */
    assert_int_equal(released, 1);
    nc_hooks__finish(r2, 0);
    assert_string_equal(trail(), "A:dispatch B:dispatch A:finish0 B:finish0");
    assert_int_equal(nc_hooks__remove(&t, b), 0);
    assert_int_equal(released, 2);
}

static void test_limits(void **st) {
    reset();
    nc_hook_table *t = NULL;
    /* struct_size 0: the first layout (this one), read whole */
    nc_server_hooks zero = {.on_dispatch = s_dispatch};
    assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &zero, "Z") > 0);
    assert_ptr_equal(t->sets[0]->s.on_dispatch, s_dispatch);
    nc_hooks__drop(&t);
    /* smaller than the first layout: refused */
    nc_server_hooks tiny = {.struct_size = 4};
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &tiny, NULL), NC_EINVAL);
    /* from a newer header: accepted only when what this library does not know is unset */
    struct {
        nc_server_hooks h;
        void (*later)(void *);
    } newer = {{.struct_size = sizeof newer}, s_release};
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &newer, NULL), NC_EINVAL);
    newer.later = NULL;
    assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &newer, NULL) > 0);
    for (int k = 1; k < NC_HOOKS_MAX; k++)
        assert_true(nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A") > 0);
    assert_int_equal(nc_hooks__add(&t, NC_HOOK_SERVER, &all_server, "A"), NC_ETOOBIG);
    nc_hooks__drop(&t);
    assert_int_equal(released, NC_HOOKS_MAX - 1);
}

static int c_submit(void *u, nc_hook_info *i) {
    logev(name_of(u), "submit", i, 0);
    assert_int_equal(nc_hook_set_header(i, "traceparent", "00-abc-def-01"), 0);
    assert_int_equal(nc_hook_set_metadata(i, "k", json_integer(1)), 0);
    return strcmp(name_of(u), "B") == 0 ? refuse_with : 0;
}
static void c_end(void *u, nc_hook_info *i, int err) {
    logev(name_of(u), "end", i, err);
}

static void test_client_machinery(void **st) {
    reset();
    nc_client_hooks h = {.struct_size = sizeof h, .on_submit = c_submit, .on_call_end = c_end};
    nc_hook_table *t = NULL;
    nc_hooks__add(&t, NC_HOOK_CLIENT, &h, "A");
    nc_hooks__add(&t, NC_HOOK_CLIENT, &h, "B");
    json_t *headers = NULL;
    json_t *md = json_pack("{s:s}", "x", "y");
    nc_hook_rec *r;
    refuse_with = 1; /* not an nc_err: taken as NC_EREFUSED */
    assert_int_equal(nc_hooks__submit(t, &r, NULL, "tcp", "sum", "sum", 0, "id", 2, &headers, md),
                     NC_EREFUSED);
    assert_string_equal(json_string_value(json_object_get(headers, "traceparent")), "00-abc-def-01");
    assert_int_equal(json_integer_value(json_object_get(r->info.metadata, "k")), 1);
    assert_string_equal(json_string_value(json_object_get(r->info.metadata, "x")), "y");
    assert_null(json_object_get(md, "k")); /* the caller's object is untouched */
    /* outside on_submit the setters refuse */
    assert_int_equal(nc_hook_set_header(&r->info, "a", "b"), NC_EINVAL);
    assert_int_equal(nc_hooks__should_retry(r, NC_ETIMEDOUT, &(int){0}), 0);
    nc_hooks__call_end(r, NC_EREFUSED);
    assert_string_equal(trail(), "A:submit B:submit B:end A:end");
    json_decref(headers);
    json_decref(md);
    nc_hooks__drop(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_state),  cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_remove_in_flight), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_client_machinery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

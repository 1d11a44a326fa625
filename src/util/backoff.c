#include "util/backoff.h"

#include <stdio.h>

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nc_backoff_init(nc_backoff *b, const nc_backoff_cfg *cfg, uint64_t seed) {
    b->cfg = *cfg;
    nc_backoff_cfg *c = &b->cfg;
    if (c->base_ms <= 0) c->base_ms = 1000;
    if (c->cap_ms <= 0) {
        long long cap = 8LL * c->base_ms;
        c->cap_ms = cap > NC_BACKOFF_CAP_MAX_MS ? NC_BACKOFF_CAP_MAX_MS : (int)cap;
    }
    if (c->cap_ms < c->base_ms) c->cap_ms = c->base_ms;
    if (c->limit < 0) c->limit = 0;
    if (!(c->jitter >= 0)) c->jitter = 0; /* NaN too */
    if (c->jitter > 1) c->jitter = 1;
    if (c->log_first <= 0) c->log_first = 3;
    if (c->log_every_ms <= 0) c->log_every_ms = 10000;
    b->attempts = 0;
    b->rng = seed;
    b->last_log = 0;
    b->suppressed = 0;
}

int nc_backoff_nominal(const nc_backoff *b, int n) {
    int k = n - (b->cfg.first_at_once ? 2 : 1); /* doublings so far */
    if (k < 0) return 0;
    long long d = b->cfg.base_ms;
    while (k-- > 0 && d < b->cfg.cap_ms) d *= 2;
    return d > b->cfg.cap_ms ? b->cfg.cap_ms : (int)d;
}

int nc_backoff_next(nc_backoff *b) {
    if (b->attempts < 0x7fffffff) b->attempts++;
    if (b->cfg.limit > 0 && b->attempts > b->cfg.limit) return -1;
    int d = nc_backoff_nominal(b, b->attempts);
    if (d <= 0 || b->cfg.jitter <= 0) return d;
    /* 53 random bits as a fraction in [0, 1) */
    double u = (double)(splitmix64(&b->rng) >> 11) / 9007199254740992.0;
    return d - (int)(u * b->cfg.jitter * d);
}

void nc_backoff_reset(nc_backoff *b) {
    b->attempts = 0;
    b->suppressed = 0;
    b->last_log = 0;
}

int nc_backoff_should_log(nc_backoff *b, uint64_t now_ms, unsigned *suppressed) {
    int log = b->attempts <= b->cfg.log_first || now_ms - b->last_log >= (uint64_t)b->cfg.log_every_ms;
    if (!log) {
        b->suppressed++;
        return 0;
    }
    b->last_log = now_ms;
    if (suppressed) *suppressed = b->suppressed;
    b->suppressed = 0;
    return 1;
}

const char *nc_backoff_suppressed_note(unsigned suppressed, char *buf, unsigned long len) {
    if (!suppressed)
        snprintf(buf, len, "%s", "");
    else
        snprintf(buf, len, " (%u more attempt%s not logged)", suppressed, suppressed == 1 ? "" : "s");
    return buf;
}

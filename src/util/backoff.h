/* The reconnect policy of the broker transports, written once: how many attempts so far, the delay before
 * the next one, when to give up, and which attempts deserve a log line. Pure arithmetic (no clock, no
 * timer, no logger): the caller passes the time and applies the delay (the broker connections wait it on
 * their dialer's timer, the one timer of a connection attempt). Private.
 *
 * The schedule: attempt 1 goes at once when first_at_once (a restarted broker is usually back), then the
 * nominal delay starts at base_ms and doubles per attempt up to cap_ms. Each delay is jittered: a random
 * share `jitter` of it is taken off (0 = none, 0.5 = uniform in [d/2, d], 1 = full jitter, uniform in
 * [0, d]), so a fleet of clients that lost the same broker does not reconnect in lockstep when it comes
 * back. The random numbers come from a seeded PRNG: tests get a fixed schedule.
 *
 * Log lines: a broker down for a minute should log a handful of lines, not one per attempt. The first
 * log_first attempts are logged, then at most one per log_every_ms, which says how many were not. */
#ifndef NC_UTIL_BACKOFF_H
#define NC_UTIL_BACKOFF_H

#include <stdint.h>

#define NC_BACKOFF_CAP_MAX_MS 30000 /* the default cap: 8 × base_ms, at most this */

typedef struct nc_backoff_cfg {
    int base_ms;       /* the first (nominal) delay; <= 0: 1000 */
    int cap_ms;        /* the largest nominal delay; 0: 8 × base_ms, at most 30 s (never below base_ms) */
    int limit;         /* attempts before giving up; 0 = unlimited */
    int first_at_once; /* attempt 1 without a delay */
    double jitter;     /* 0..1, the random share of each delay */
    int log_first;     /* attempts logged one by one before rate limiting; 0: 3 */
    int log_every_ms;  /* then at most one line per this many ms; 0: 10,000 */
} nc_backoff_cfg;

typedef struct nc_backoff {
    nc_backoff_cfg cfg;
    int attempts;      /* since the last good connection */
    uint64_t rng;      /* PRNG state (splitmix64) */
    uint64_t last_log; /* when the last line was let through (ms, the caller's clock) */
    unsigned suppressed;
} nc_backoff;

/* Fills in the defaults of cfg and seeds the PRNG (the same seed gives the same delays). */
void nc_backoff_init(nc_backoff *b, const nc_backoff_cfg *cfg, uint64_t seed);
/* An attempt failed or a good connection was lost: counts the next attempt and returns its delay in ms,
 * or -1 when the limit is reached (then attempts stays past the limit until reset). */
int nc_backoff_next(nc_backoff *b);
/* The nominal (unjittered) delay of attempt n (1-based). */
int nc_backoff_nominal(const nc_backoff *b, int n);
/* A good connection: the next loss starts the schedule over. */
void nc_backoff_reset(nc_backoff *b);
/* Whether the current attempt's line is logged (else it goes at debug level). When it is, *suppressed
 * gets how many attempts since the last logged one were not. now_ms: any monotonic clock in ms. */
int nc_backoff_should_log(nc_backoff *b, uint64_t now_ms, unsigned *suppressed);
/* The tail of a logged line after suppressed ones: "" or " (N more attempts not logged)". Writes to buf
 * (at least 48 bytes) and returns it. */
const char *nc_backoff_suppressed_note(unsigned suppressed, char *buf, unsigned long len);

#endif

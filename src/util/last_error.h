/* The reason of the last failed call on this thread (nc_last_error, include/nestc/error.h). Private. */
#ifndef NC_UTIL_LAST_ERROR_H
#define NC_UTIL_LAST_ERROR_H

/* Records why a call fails with `err`: printf-style, cut to the buffer (255 bytes). Returns `err`, so a
 * failing path can `return nc_set_last_error(NC_EINVAL, "...")`. Thread-local: no locking. */
int nc_set_last_error(int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A mark of the reasons recorded so far on this thread. A public call takes one when it starts; on failure,
 * nc_set_last_error_since(mark, ...) adds a general reason only when no layer below recorded a more specific
 * one since (e.g. "cannot load the CA file ..." stays, not "cannot create the client"). A successful call
 * leaves the last reason as it was, as errno does. */
unsigned nc_last_error_mark(void);
int nc_set_last_error_since(unsigned mark, int err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif

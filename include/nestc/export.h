/* nestc — symbol visibility. The shared library is built with -fvisibility=hidden; only NC_API
 * symbols are exported. */
#ifndef NESTC_EXPORT_H
#define NESTC_EXPORT_H

#if defined(NESTC_BUILDING) && defined(__GNUC__)
#define NC_API __attribute__((visibility("default")))
#else
#define NC_API
#endif

#endif

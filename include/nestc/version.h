/* nestc — version information. */
#ifndef NESTC_VERSION_H
#define NESTC_VERSION_H

#include "nestc/export.h"

#define NC_VERSION_MAJOR 0
#define NC_VERSION_MINOR 1
#define NC_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* The library version as "MAJOR.MINOR.PATCH" (static string). */
NC_API const char *nc_version(void);

#ifdef __cplusplus
}
#endif
#endif

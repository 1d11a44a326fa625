/* Error mapping helpers. Private. */
#ifndef NC_CORE_ERRORS_H
#define NC_CORE_ERRORS_H

/* nc_err_from_uv lives in util/ (the I/O layer needs it too); kept reachable from here. */
#include "util/errmap.h"

#endif

/* Error mapping helpers. Private. */
#ifndef NC_CORE_ERRORS_H
#define NC_CORE_ERRORS_H

/* Maps a libuv (negative errno) code onto nc_err. */
int nc_err_from_uv(int uverr);

#endif

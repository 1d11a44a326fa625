/* Error mapping from libuv codes. Private. */
#ifndef NC_UTIL_ERRMAP_H
#define NC_UTIL_ERRMAP_H

/* Maps a libuv (negative errno) code onto nc_err. */
int nc_err_from_uv(int uverr);

#endif

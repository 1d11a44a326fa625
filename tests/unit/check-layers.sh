#!/bin/sh
# Checks that the #include lines of src/ point one way: util <- codec <- io <- core <- obs, policy <- transport. A file
# may include its own layer, a layer to its left, and the public headers (nestc/*.h). Besides:
#   - core includes only the contract of the transports (transport/transport.h), never one transport;
#   - core includes only the contract of the observability layer (obs/admin.h: the admin endpoint that
#     nc_server_opts.admin starts), in the same way;
#   - a transport includes core/server_transport.h, never core/server_internal.h, and no other transport
#     (transport/common/ is what the transports share: any transport may include it).
# Usage: check-layers.sh <src dir>. Prints each wrong include and exits 1 if there is one.
set -eu
src=${1:?usage: check-layers.sh <src dir>}
cd "$src"
rank() {
    case $1 in
    util) echo 0 ;; codec) echo 1 ;; io) echo 2 ;; core) echo 3 ;; obs | policy) echo 4 ;; transport) echo 5 ;; *) echo -1 ;;
    esac
}
bad=0
for f in $(find util codec io core obs policy transport -name '*.[ch]' | sort); do
    layer=${f%%/*}
    own=$(rank "$layer")
    sub=$(echo "$f" | cut -d/ -f2) # the transport's folder (or a file name directly under the layer)
    # grep -n: "line:#include "dir/file.h"" for every quoted include
    for hit in $(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | sed 's/[[:space:]]//g; s/#include"\([^"]*\)".*/\1/'); do
        line=${hit%%:*}
        inc=${hit#*:}
        dir=${inc%%/*}
        [ "$dir" = "$inc" ] && continue # no folder: a header next to the file
        [ "$dir" = nestc ] && continue  # public headers
        r=$(rank "$dir")
        why=
        if [ "$r" -lt 0 ]; then
            why="unknown folder $dir"
        elif [ "$layer" = core ] && [ "$dir" = transport ]; then
            [ "$inc" = transport/transport.h ] || why="core may include only the transport contract, transport/transport.h"
        elif [ "$layer" = core ] && [ "$dir" = obs ]; then
            [ "$inc" = obs/admin.h ] || why="core may include only the observability contract, obs/admin.h"
        elif [ "$r" -gt "$own" ]; then
            why="$layer may not include $dir (layers: util <- codec <- io <- core <- obs <- transport)"
        elif [ "$layer" = transport ] && [ "$inc" = core/server_internal.h ]; then
            why="transports see the server through core/server_transport.h"
        elif [ "$layer" = transport ] && [ "$dir" = transport ] && [ "$inc" != transport/transport.h ] &&
            [ "${inc#transport/common/}" = "$inc" ] && [ -d "transport/$sub" ] &&
            [ "${inc#transport/$sub/}" = "$inc" ]; then
            why="one transport may not include another"
        fi
        if [ -n "$why" ]; then
            echo "$f:$line: #include \"$inc\": $why"
            bad=1
        fi
    done
done
if [ "$bad" = 0 ]; then echo "layers: every include points the right way"; fi
exit $bad

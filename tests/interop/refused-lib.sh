# refused-lib.sh — sourced by redis-refused.sh and nats-refused.sh: run the CLI against a broker that
# refuses it and check how it fails. Needs NESTC_BIN and `limit` (seconds a refused command may take).
fails=0
last_out=''
# expect <exit code> <text the output must contain> -- <nestc arguments...>
expect() {
  local want=$1 text=$2 out rc=0 start=$SECONDS
  shift 3
  out=$(timeout "$limit" "$NESTC_BIN" "$@" 2>&1) || rc=$?
  if ((rc != want)) || [[ $out != *"$text"* ]]; then
    echo "FAIL: nestc $* → exit $rc after $((SECONDS - start)) s (want $want and \"$text\"):" >&2
    printf '%s\n' "$out" | head -n 5 >&2
    fails=$((fails + 1))
  else
    echo "ok: nestc $* → exit $rc: $(printf '%s' "$out" | tail -n 1)"
  fi
  last_out=$out
}
# the last command's refusals were logged in one line, not one per subscription
expect_refusals_logged_once() {
  local n
  n=$(grep -c 'refused' <<<"$last_out" || true)
  if ((n != 1)); then
    echo "FAIL: conformance logged the refusals $n times, not once" >&2
    fails=$((fails + 1))
  fi
}

#!/usr/bin/env bash
# with-mosquitto.sh [--tls CERTDIR] -- <command...>
#
# Starts a throw-away mosquitto (MQTT 3.1.1 and 5) on a free loopback port, in a fresh temporary directory, waits
# until it answers an MQTT CONNECT with a CONNACK, runs the command, stops mosquitto by PID, removes the directory
# and exits with the command's status.
#
#   mosquitto -c T/mosquitto.conf          (log in T/mosquitto.log)
#
# The configuration file T/mosquitto.conf: a listener on 127.0.0.1:P, anonymous clients allowed (mosquitto 2
# refuses them by default once a listener is configured), no persistence, no packet size limit beyond MQTT's
# own. With --tls CERTDIR a second listener on 127.0.0.1:PT speaks TLS with CERTDIR/server.pem + server.key
# (gen-certs.sh; the certificate is for localhost / 127.0.0.1) and CA CERTDIR/ca.pem; client certificates are
# not required.
#
# The command sees in its environment, and every argument "{MQTT_URL}" / "{MQTTS_URL}" is replaced by:
#   MQTT_URL      mqtt://127.0.0.1:P
#   MQTTS_URL     mqtts://localhost:PT                           (only with --tls; the name, for certificate checks)
# and also MQTT_PORT, MQTT_TLS_PORT (with --tls), MQTT_PID, MQTT_DIR (T: mosquitto.conf, mosquitto.log) and
# MQTT_CMD.
#
# MOSQUITTO names the binary (default mosquitto, also looked for in /usr/sbin); MOSQUITTO_CONF is appended to
# the configuration (e.g. `max_packet_size 1000`).
#
# Restarting the broker from a test (e.g. to test reconnection): MQTT_CMD is the full mosquitto command line,
# shell-quoted, with the same configuration (ports), directory and log file.
#   kill "$MQTT_PID"
#   until ! (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null; do sleep 0.05; done   # port closed
#   eval "exec $MQTT_CMD" &        # exec: $! is then mosquitto itself, not a subshell
#   from Node: spawn('bash', ['-c', `exec ${process.env.MQTT_CMD}`])
# The restarted mosquitto is the test's own child: the test must stop it (SIGTERM) and wait for it. This
# script (broker-lib.sh) only stops the mosquitto it started (it never kills by name or port).
set -euo pipefail
broker_script=with-mosquitto.sh broker_what=mosquitto
# shellcheck source-path=SCRIPTDIR source=broker-lib.sh
. "$(dirname "$0")/broker-lib.sh"
broker_parse_args "$@"
broker_find "${MOSQUITTO:-mosquitto}" SBIN

MQTT_PORT=$(broker_free_port)
MQTT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/with-mosquitto.XXXXXX")
conf=$MQTT_DIR/mosquitto.conf
log=$MQTT_DIR/mosquitto.log
{
  # Run as root, mosquitto would switch to the user `mosquitto`, who cannot read the temporary directory or the
  # certificates; as anyone else this is ignored.
  echo "user $(id -un)"
  echo "per_listener_settings false"
  echo "allow_anonymous true"
  echo "persistence false"
  echo "log_dest file $log"
  echo "log_type error"
  echo "log_type warning"
  echo "log_type notice"
  echo "log_type information"
  echo "listener $MQTT_PORT 127.0.0.1"
} >"$conf"
MQTT_URL=mqtt://127.0.0.1:$MQTT_PORT
MQTTS_URL=''
if [[ -n $broker_certdir ]]; then
  certdir=$(cd "$broker_certdir" && pwd)
  MQTT_TLS_PORT=$(broker_free_port)
  while [[ $MQTT_TLS_PORT == "$MQTT_PORT" ]]; do MQTT_TLS_PORT=$(broker_free_port); done
  cat >>"$conf" <<EOF
listener $MQTT_TLS_PORT 127.0.0.1
cafile $certdir/ca.pem
certfile $certdir/server.pem
keyfile $certdir/server.key
require_certificate false
EOF
  # The name, not the address: clients verify the certificate against it.
  MQTTS_URL=mqtts://localhost:$MQTT_TLS_PORT
  export MQTT_TLS_PORT MQTTS_URL
fi
[[ -n ${MOSQUITTO_CONF:-} ]] && printf '%s\n' "$MOSQUITTO_CONF" >>"$conf"

broker_start "$log" "$MQTT_DIR" "$broker_bin" -c "$conf"
MQTT_CMD=$broker_cmd MQTT_PID=$broker_pid
export MQTT_PORT MQTT_DIR MQTT_URL MQTT_CMD MQTT_PID

# shellcheck disable=SC2317  # (called by broker_wait_ready)
# Ready when an MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, empty client id) gets a CONNACK accepting
# it (20 02 00 00), not merely when the port accepts: mosquitto opens every listener before it serves any,
# so the TLS listener is up too.
connack() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT" || exit 1
    printf '\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00' >&3
    [[ $(timeout 1 head -c 4 <&3 | od -An -tx1 | tr -d ' \n') == 20020000 ]] || exit 1
    printf '\xe0\x00' >&3 # DISCONNECT
  ) 2>/dev/null
}
broker_wait_ready connack "mosquitto did not answer CONNECT on port $MQTT_PORT"
echo "with-mosquitto.sh: mosquitto ready at $MQTT_URL${MQTTS_URL:+ and $MQTTS_URL} (pid $MQTT_PID)" >&2

broker_run MQTT_URL="$MQTT_URL" MQTTS_URL="$MQTTS_URL"

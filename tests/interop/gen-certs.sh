#!/usr/bin/env bash
# gen-certs.sh OUTDIR — test certificates for the TLS interop tests (EC P-256: fast to make and to use).
#
#   ca.pem / ca.key                        test CA
#   server.pem / server.key                CN=localhost, SAN DNS:localhost, IP:127.0.0.1, signed by the CA
#   client.pem / client.key                client certificate (clientAuth), signed by the CA
#   untrusted-ca.pem / untrusted-ca.key    an unrelated self-signed CA
#   untrusted-server.pem / .key            a server certificate (same names) signed by the unrelated CA
#
# Idempotent: does nothing when every file is already there and the server certificate is still valid
# for a day; otherwise makes the whole set again (so the files always belong together).
set -euo pipefail

out=${1:?usage: gen-certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"

files=(ca.pem ca.key server.pem server.key client.pem client.key
  untrusted-ca.pem untrusted-ca.key untrusted-server.pem untrusted-server.key)
complete=1
for f in "${files[@]}"; do [[ -s $f ]] || complete=0; done
if ((complete)) && openssl x509 -in server.pem -noout -checkend 86400 >/dev/null 2>&1; then
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
days=3650
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

# self-signed CA: NAME SUBJECT
make_ca() {
  openssl req -x509 "${newkey[@]}" -keyout "$1.key" -out "$1.pem" -days $days -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf certificate: NAME SUBJECT CA-NAME EXTENSIONS
make_leaf() {
  openssl req -new "${newkey[@]}" -keyout "$1.key" -out "$tmp/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$4" >"$tmp/$1.ext"
  # A random serial instead of -CAcreateserial: no .srl file left behind.
  openssl x509 -req -in "$tmp/$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days $days -extfile "$tmp/$1.ext" -out "$1.pem" 2>/dev/null
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'

make_ca ca "/CN=nestc test CA"
make_leaf server "/CN=localhost" ca "$server_ext"
make_leaf client "/CN=nestc test client" ca "$client_ext"
make_ca untrusted-ca "/CN=nestc untrusted test CA"
make_leaf untrusted-server "/CN=localhost" untrusted-ca "$server_ext"
chmod 600 ./*.key

# Fail loudly if the set is inconsistent.
openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
openssl verify -CAfile untrusted-ca.pem untrusted-server.pem >/dev/null

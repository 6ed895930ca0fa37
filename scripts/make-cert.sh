#!/usr/bin/env bash
# Make a test certificate for localhost and 127.0.0.1 with openssl: a CA and
# an ECDSA P-256 leaf it signs (a verifying client such as rustls refuses a
# CA certificate as a server's own, which a one-step self-signed one is).
#
#   scripts/make-cert.sh DIR [DAYS]
#
# Writes DIR/ca.pem (for clients to trust), DIR/cert.pem and DIR/key.pem
# (for --tls-cert and --tls-key); DAYS of validity, default 30.
set -euo pipefail
dir=${1:?usage: scripts/make-cert.sh DIR [DAYS]}
days=${2:-30}
command -v openssl >/dev/null || { echo "make-cert.sh needs openssl" >&2; exit 2; }
mkdir -p "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -days "$days" -subj /CN=ringwave-test-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req "${ec[@]}" -subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/leaf.ext"
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$dir/leaf.ext" -out "$dir/cert.pem" 2>/dev/null
rm -f "$dir/leaf.csr" "$dir/leaf.ext" "$dir/ca.srl"
echo "$dir/cert.pem and $dir/key.pem for the server; clients trust $dir/ca.pem"

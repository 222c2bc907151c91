#!/usr/bin/env bash
# Make a local certificate authority and a server certificate for the bus,
# with openssl (Debian's). Kept if they exist already.
#
#   scripts/tls.sh DIR [NAME...]
#
# DIR/ca.pem is what clients check the server against (PACTUM_NATS_CA);
# DIR/server.pem and DIR/server.key are the server's. The certificate names
# 127.0.0.1 and localhost, and each NAME given (a host name, e.g. nats).
set -euo pipefail
dir=${1:?usage: scripts/tls.sh DIR [NAME...]}
shift
command -v openssl >/dev/null 2>&1 || "$(dirname "$0")/deps.sh" openssl
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
if [ -s ca.pem ] && [ -s server.pem ] && [ -s server.key ]; then
  exit 0
fi
umask 077
san="IP:127.0.0.1,DNS:localhost"
for n in "$@"; do san="$san,DNS:$n"; done
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=Pactum bus CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.pem 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
openssl req -new -key server.key -subj "/CN=pactum-nats" -out server.csr 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
  "$san" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
  -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
echo "tls: $dir/ca.pem (the CA clients check against), $dir/server.pem and server.key"

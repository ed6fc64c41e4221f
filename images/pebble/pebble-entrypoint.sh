#!/bin/sh
# Pebble ships no listener certificate (Debian has no test/certs): make a CA and a leaf for this
# container's addresses at every start. Clients trust /ca/listener-ca.pem (certbot: REQUESTS_CA_BUNDLE).
set -eu
mkdir -p /ca
cd /ca
sans="DNS:localhost,DNS:$(hostname),IP:127.0.0.1"
for ip in $(hostname -i); do sans="$sans,IP:$ip"; done
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj /CN=pebble-listener-ca \
    -keyout listener-ca.key -out listener-ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=pebble -keyout pebble.key -out pebble.csr 2>/dev/null
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$sans" > leaf.ext
openssl x509 -req -in pebble.csr -CA listener-ca.pem -CAkey listener-ca.key -CAcreateserial -days 7 \
    -extfile leaf.ext -out pebble.pem 2>/dev/null
cat > pebble.json <<JSON
{"pebble": {"listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
  "certificate": "/ca/pebble.pem", "privateKey": "/ca/pebble.key", "httpPort": 80, "tlsPort": 443,
  "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
exec pebble -config /ca/pebble.json "$@"

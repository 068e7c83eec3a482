#!/bin/sh
# A throw-away certificate authority and certificates for trying DICOM TLS (docs/security.md).
# Never use them in production: there the hospital's PKI issues the certificates.
#
#   deploy/tls/make-test-ca.sh DIR NAME[@HOST] ...
#
# writes DIR/ca.pem + DIR/ca.key (the CA) and, for each NAME, DIR/NAME.pem + DIR/NAME.key: a
# certificate with subject CN=NAME, signed by the CA, naming HOST (an IP address or a DNS name;
# default 127.0.0.1) as subjectAltName so that clients verifying the host accept it.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME[@HOST] ..." >&2; exit 2; }
dir=$1; shift
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 30 -subj "/CN=dicom-node test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.pem 2>/dev/null
fi
for entry in "$@"; do
  name=${entry%%@*}
  host=127.0.0.1
  [ "$entry" = "$name" ] || host=${entry#*@}
  case $host in
    *[!0-9.:]*) san="DNS:$host" ;;
    *) san="IP:$host" ;;
  esac
  openssl req -newkey rsa:3072 -sha256 -nodes -subj "/CN=$name" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$san" > "$name.ext"
  openssl x509 -req -sha256 -days 30 -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  chmod 600 "$name.key"
  echo "$dir/$name.pem (CN=$name, $san)"
done

#!/usr/bin/env bash
# A development CA and a server certificate it signs, for fieldq's TLS listeners (MQTT over TLS, secure
# WebSocket, HTTPS API). Not for production: the CA's key sits beside the certificates.
#
#   bash scripts/dev-certs.sh [DIR] [NAME ...]      DIR defaults to .fieldq/tls
#
# The certificate names localhost, 127.0.0.1 and ::1, plus every NAME given and every name in
# FIELDQ_TLS_NAMES (comma- or space-separated; IP addresses become IP names). Running it again keeps the CA
# and keeps the server certificate while it still names them all and has a month left; else it makes a new one.
set -euo pipefail
dir=${1:-.fieldq/tls}
[ $# -gt 0 ] && shift
command -v openssl >/dev/null || {
  echo "dev-certs: openssl is missing (Debian: sudo apt-get install openssl)" >&2
  exit 1
}

names=(localhost 127.0.0.1 ::1 "$@")
IFS=', ' read -r -a extra <<<"${FIELDQ_TLS_NAMES:-}"
names+=("${extra[@]}")
san=""
for name in "${names[@]}"; do
  [ -n "$name" ] || continue
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then entry="IP:$name"; else entry="DNS:$name"; fi
  case ",$san," in *",$entry,"*) ;; *) san="${san:+$san,}$entry" ;; esac
done

mkdir -p "$dir"
umask 077
if [ ! -s "$dir/ca.key" ] || [ ! -s "$dir/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=fieldq development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  rm -f "$dir/server.crt"
fi

current() {
  [ -s "$dir/server.key" ] && [ -s "$dir/server.crt" ] || return 1
  openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$dir/server.crt" -noout -checkend $((30 * 86400)) >/dev/null || return 1
  local have
  have=$(openssl x509 -in "$dir/server.crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')
  # openssl prints IPv6 names in full (0:0:0:0:0:0:0:1), so compare through openssl itself.
  local want
  want=$(openssl req -new -x509 -key "$dir/server.key" -subj /CN=x -addext "subjectAltName=$san" 2>/dev/null |
    openssl x509 -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
  [ "$have" = "$want" ]
}

if ! current; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${names[0]}" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -out "$dir/server.crt" \
    -extfile <(printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth") 2>/dev/null
  rm -f "$dir/server.csr" "$dir/ca.srl"
fi
chmod 644 "$dir/ca.crt" "$dir/server.crt"

shown=${san//DNS:/}
cat <<MSG
TLS certificates in $dir for ${shown//IP:/} (development only)
  FIELDQ_TLS_CERT=$dir/server.crt
  FIELDQ_TLS_KEY=$dir/server.key
Clients trust the development CA, $dir/ca.crt:
  mosquitto_pub --cafile $dir/ca.crt -h localhost -p 8883 -u <device> -P <key> -t ... -m ...
  curl --cacert $dir/ca.crt https://localhost:8080/api/v1/health
  Node (fieldq sim, mqtt.js): NODE_EXTRA_CA_CERTS=$dir/ca.crt
MSG

#!/bin/sh
# Start script of the sandbox shell container.
#
#   1. Wait for the sidecar to serve its CA certificate (https://localhost/ca-cert.pem).
#   2. Trust it: the system bundle (curl, git, gh, OpenSSL), certifi (Python), and a
#      profile that exports SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
#      GIT_SSL_CAINFO and NODE_EXTRA_CA_CERTS for login shells.
#   3. Point the API hosts at the sidecar in the hosts file (hosts-file mode; skipped
#      when SIDECAR_ADDRESSES is empty or "none", as in transparent mode, where the
#      firewall sends the real addresses to the sidecar).
#   3b. With SANDBOX_DNS (the sidecar's DNS address, e.g. 127.0.0.53), name it as the
#      only resolver in resolv.conf: the sidecar answers the sandbox's DNS.
#   4. Run the given command, or idle so `fly ssh console --container shell` can attach.
#      With AGENT_USER (a user name or UID), the command runs as that user with no
#      capabilities and no way back to root (no_new_privs): it cannot change the
#      firewall of transparent mode.
#
# Every path and list can be overridden from the environment; the defaults are the
# container's. Running it twice changes nothing the second time.
set -eu

CA_URL=${CA_URL:-https://localhost/ca-cert.pem}
CA_WAIT_SECONDS=${CA_WAIT_SECONDS:-60}
API_HOSTS=${API_HOSTS:-"api.openai.com api.anthropic.com api.github.com"}
SIDECAR_ADDRESSES=${SIDECAR_ADDRESSES-"127.0.0.1 ::1"}
AGENT_USER=${AGENT_USER:-}
CA_FILE=${CA_FILE:-/etc/ssl/certs/sideproxy-ca.pem}
SYSTEM_CA_BUNDLE=${SYSTEM_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
HOSTS_FILE=${HOSTS_FILE:-/etc/hosts}
SANDBOX_DNS=${SANDBOX_DNS:-}
RESOLV_CONF=${RESOLV_CONF:-/etc/resolv.conf}
PROFILE_FILE=${PROFILE_FILE:-/etc/profile.d/sideproxy.sh}

log() { echo "start-shell: $*" >&2; }

# 1. The CA. `-k` is deliberate and safe here: the sidecar is on loopback in this
# machine, and this is how its CA is learned in the first place.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
waited=0
until curl -fsSk --max-time 5 "$CA_URL" -o "$tmp" 2>/dev/null \
      && grep -q "BEGIN CERTIFICATE" "$tmp"; do
  if [ "$waited" -ge "$CA_WAIT_SECONDS" ]; then
    log "no CA from the sidecar at $CA_URL after ${CA_WAIT_SECONDS}s"
    exit 1
  fi
  sleep 1
  waited=$((waited + 1))
done
mkdir -p "$(dirname "$CA_FILE")"
# Readable by every user (mktemp made the download 0600): AGENT_USER trusts it too.
install -m 0644 "$tmp" "$CA_FILE"
log "sidecar CA saved to $CA_FILE"

# 2. Trust it. Appending is skipped when the bundle already holds this exact CA.
append_once() { # bundle
  if [ -f "$1" ] && ! grep -qxF "$(sed -n 2p "$CA_FILE")" "$1"; then
    cat "$CA_FILE" >> "$1"
    log "added the CA to $1"
  fi
}
append_once "$SYSTEM_CA_BUNDLE"
if command -v python3 >/dev/null 2>&1; then
  certifi=$(python3 -c 'import certifi; print(certifi.where())' 2>/dev/null || true)
  [ -n "$certifi" ] && append_once "$certifi"
fi
mkdir -p "$(dirname "$PROFILE_FILE")"
cat > "$PROFILE_FILE" <<PROFILE
# Written by start-shell: trust the sidecar's CA.
export SSL_CERT_FILE=$SYSTEM_CA_BUNDLE
export REQUESTS_CA_BUNDLE=$SYSTEM_CA_BUNDLE
export CURL_CA_BUNDLE=$SYSTEM_CA_BUNDLE
export GIT_SSL_CAINFO=$SYSTEM_CA_BUNDLE
export NODE_EXTRA_CA_CERTS=$CA_FILE
PROFILE

# 3. The API hosts resolve to the sidecar.
if [ -n "$SIDECAR_ADDRESSES" ] && [ "$SIDECAR_ADDRESSES" != none ]; then
  for addr in $SIDECAR_ADDRESSES; do
    line="$addr $API_HOSTS"
    grep -qxF "$line" "$HOSTS_FILE" 2>/dev/null || echo "$line" >> "$HOSTS_FILE"
  done
  log "$API_HOSTS -> $SIDECAR_ADDRESSES in $HOSTS_FILE"
else
  log "hosts file left alone (SIDECAR_ADDRESSES is empty)"
fi

# 3b. The sidecar answers DNS.
if [ -n "$SANDBOX_DNS" ]; then
  want="nameserver $SANDBOX_DNS"
  if [ "$(cat "$RESOLV_CONF" 2>/dev/null)" != "$want" ]; then
    # Written in place: resolv.conf may be a bind mount that cannot be replaced.
    printf '%s\n' "$want" > "$RESOLV_CONF"
    log "$RESOLV_CONF names only the sidecar's DNS ($SANDBOX_DNS)"
  fi
fi

# 4. Hand over.
if [ "$#" -gt 0 ]; then
  if [ -n "$AGENT_USER" ] && [ "$(id -u)" = 0 ]; then
    home=$(getent passwd "$AGENT_USER" | cut -d: -f6 || true)
    log "running $1 as $AGENT_USER"
    exec setpriv --reuid="$AGENT_USER" --regid="$AGENT_USER" --clear-groups \
      --inh-caps=-all --bounding-set=-all --no-new-privs \
      env HOME="${home:-${HOME:-/}}" "$@"
  fi
  exec "$@"
fi
log "ready"
exec sleep infinity

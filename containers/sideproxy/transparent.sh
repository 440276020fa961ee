#!/bin/sh
# Start script of the sidecar in transparent mode (cli-config.transparent.json).
#
#   1. As root: load the sandbox firewall (`tokenizer sideproxy firewall --apply`): every
#      UID but SIDECAR_UID has its TCP 80/443 redirected to TRANSPARENT_PORT, DNS only to
#      the sidecar's DNS_ADDRESS (or, without it, the resolv.conf resolvers), everything
#      else rejected.
#   2. Give CA_DIR to SIDECAR_UID, drop root (and every capability, for good — but
#      CAP_NET_BIND_SERVICE when DNS_ADDRESS is on a port below 1024, to bind it) and
#      run `tokenizer sideproxy` as SIDECAR_UID: its own connections are the only ones
#      the firewall lets out.
#
# Loading the firewall replaces an earlier copy atomically, so a restart is harmless.
set -eu

SIDECAR_UID=${SIDECAR_UID:-10001}
TOKENIZER=${TOKENIZER:-tokenizer}
export SIDECAR_UID

log() { echo "sideproxy-transparent: $*" >&2; }

: "${TRANSPARENT_PORT:?set TRANSPARENT_PORT: the port the firewall redirects to}"
"$TOKENIZER" sideproxy firewall --apply

if [ "$(id -u)" != 0 ]; then
  log "not root: serving as uid $(id -u), which must be SIDECAR_UID ($SIDECAR_UID)"
  exec "$TOKENIZER" sideproxy
fi
if [ -n "${CA_DIR:-}" ]; then
  mkdir -p "$CA_DIR"
  chown -R "$SIDECAR_UID:$SIDECAR_UID" "$CA_DIR"
fi
# DNS on a privileged port (53): keep exactly the capability to bind it.
caps="--inh-caps=-all --bounding-set=-all"
dns_port=${DNS_ADDRESS:+${DNS_ADDRESS##*:}}
if [ -n "$dns_port" ] && [ "$dns_port" -lt 1024 ]; then
  caps="--inh-caps=-all,+net_bind_service --ambient-caps=+net_bind_service --bounding-set=-all,+net_bind_service"
fi
log "firewall loaded; serving as uid $SIDECAR_UID"
# shellcheck disable=SC2086 # $caps is a list of options
exec setpriv --reuid="$SIDECAR_UID" --regid="$SIDECAR_UID" --clear-groups \
  $caps --no-new-privs \
  "$TOKENIZER" sideproxy

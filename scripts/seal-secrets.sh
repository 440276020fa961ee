#!/usr/bin/env bash
# Deploy-time sealing (the role of proxypilot's wrap.sh): read the real API keys from
# this shell's environment, seal each one for its host, bound to the sandbox app's Fly-Src
# org/app (or to a bearer token), and stage them as Fly secrets of the sandbox app.
#
#   SEAL_KEY=… OPENAI_API_KEY=… ANTHROPIC_API_KEY=… GH_TOKEN=… \
#     scripts/seal-secrets.sh --app proxypilot --org my-org [--dry-run]
#   … --auth-token TOKEN      bind to a bearer token instead (set TOKENIZER_AUTH in the
#                             sideproxy container to the same value)
#   … --ttl 30d               also make the sealed secrets expire
#
# Keys that are unset are skipped. --dry-run prints the secret names and hosts it would
# set, never the values. Needs `tokenizer` (or TOKENIZER=path) and, unless --dry-run,
# `fly` on PATH.
set -euo pipefail

app="" org="" auth_token="" ttl="" dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --app) app=$2; shift 2 ;;
    --org) org=$2; shift 2 ;;
    --auth-token) auth_token=$2; shift 2 ;;
    --ttl) ttl=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "seal-secrets: unknown argument $1" >&2; exit 2 ;;
  esac
done
tokenizer=${TOKENIZER:-tokenizer}
die() { echo "seal-secrets: $*" >&2; exit 2; }
[ -n "$app" ] || die "--app is required (the sandbox app that will hold the secrets)"
[ -n "${SEAL_KEY:-}" ] || die "SEAL_KEY is required (tokenizer sealkey prints it)"
if [ -z "$auth_token" ] && [ -z "$org" ]; then
  die "give --org (Fly-Src binding to org/app) or --auth-token"
fi

# secret name | host | header (empty: Authorization: Bearer) | environment variable
targets=(
  "OPENAI_SEALED|api.openai.com||OPENAI_API_KEY"
  "ANTHROPIC_SEALED|api.anthropic.com|x-api-key|ANTHROPIC_API_KEY"
  "GH_SEALED|api.github.com||GH_TOKEN"
)

args=()
for t in "${targets[@]}"; do
  IFS='|' read -r name host header var <<<"$t"
  value=${!var:-}
  if [ -z "$value" ]; then
    echo "seal-secrets: $var is unset, skipping $host" >&2
    continue
  fi
  flags=(seal --seal-key "$SEAL_KEY" --host "$host")
  [ -n "$header" ] && flags+=(--header "$header")
  if [ -n "$auth_token" ]; then
    flags+=(--auth-token "$auth_token")
    binding="bearer auth"
  else
    flags+=(--org "$org" --app "$app")
    binding="fly-src org=$org app=$app"
  fi
  [ -n "$ttl" ] && flags+=(--ttl "$ttl")
  if [ "$dry_run" = 1 ]; then
    echo "would set $name: \$$var sealed for $host ($binding${ttl:+, expires in $ttl})"
    continue
  fi
  # The real key goes to tokenizer on standard input, never on a command line.
  sealed=$(printf '%s' "$value" | "$tokenizer" "${flags[@]}" -)
  args+=("$name=$sealed")
done

[ "$dry_run" = 1 ] && exit 0
[ ${#args[@]} -gt 0 ] || die "no keys to seal: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GH_TOKEN"
fly secrets set --stage -a "$app" "${args[@]}"
echo "seal-secrets: staged ${#args[@]} sealed secret(s) for $app; deploy to apply" >&2

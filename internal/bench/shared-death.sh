#!/usr/bin/env bash
# What agents see when a keeper of a shared connection dies (issue #21's
# targets): three `tokentray serve` share one grant of the demo provider
# (30 s access tokens, single-use refresh tokens) through PostgreSQL or
# etcd; an agent on each calls `tokentray token` every 200 ms and uses the
# token at the provider's API. Rounds: nobody dies (the reference), an
# instance killed idle, and ROUNDS (default 3) deaths mid-refresh at each
# of two points (before and after its intent; failpoints of a test build).
# See internal/bench/shareddeath. Not part of CI: it takes minutes.
#
# usage: internal/bench/shared-death.sh postgres|etcd [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=${1:?usage: internal/bench/shared-death.sh postgres|etcd [ROUNDS]}
rounds=${2:-3}
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  .ci/postgres-start --stop "$work/pg" >/dev/null 2>&1 || true
  .ci/etcd-start --stop "$work/etcd" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
case $engine in
postgres)
  eval "$(.ci/postgres-start "$work/pg")"
  psql "$TOKENTRAY_TEST_PG" -qXc "CREATE SCHEMA tokentray" >/dev/null
  store=(-postgres "$TOKENTRAY_TEST_PG options='-c search_path=tokentray'")
  ;;
etcd)
  eval "$(.ci/etcd-start "$work/etcd")"
  store=(-etcd "$TOKENTRAY_TEST_ETCD")
  ;;
*)
  echo "usage: internal/bench/shared-death.sh postgres|etcd [ROUNDS]" >&2
  exit 2
  ;;
esac
CGO_ENABLED=0 go build -tags failpoints -o "$work/" ./cmd/tokentray-core
go build -o "$work/" ./internal/bench/shareddeath
"$work/shareddeath" "${store[@]}" -core "$work/tokentray-core" -rounds "$rounds"

#!/usr/bin/env bash
# Idle cost of `tokentray serve` with 100 connections kept in a shared
# PostgreSQL store, side by side in one run with the same 100 in the file
# store (the reference), for SECONDS (default 300): CPU from /proc, and the
# transactions the database ran meanwhile (pg_stat_database, every
# statement outside a transaction is one), beside those of a second
# cluster that nobody uses (the server's own background work, the
# reference). The tokens live a day, so nothing is due: what is measured is
# the cost of being there (its watch's LISTEN, and nothing else, is the
# design).
# Not part of CI: it takes minutes by design.
#
# usage: internal/bench/shared-idle.sh [SECONDS]   (as root or a user that
# can run .ci/postgres-start: Debian's postgresql package)
set -euo pipefail
cd "$(dirname "$0")/../.."
window=${1:-300}
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  kill "${shared:-}" "${file:-}" 2>/dev/null || true
  .ci/postgres-start --stop "$work/pg" >/dev/null 2>&1 || true
  .ci/postgres-start --stop "$work/pg-idle" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(.ci/postgres-start "$work/pg-idle")"
idle=$TOKENTRAY_TEST_PG
eval "$(.ci/postgres-start "$work/pg")"
conn=$TOKENTRAY_TEST_PG
psql "$conn" -qXc "CREATE SCHEMA tokentray" >/dev/null
go build -o "$work/" ./cmd/tokentray-core
head -c 32 /dev/urandom >"$work/store.key"
chmod 600 "$work/store.key"

home() { # NAME: a server's home of its own
  local h=$work/$1
  mkdir -p "$h/config/tokentray" "$h/run" "$h/state"
  chmod 700 "$h" "$h/run" "$h/state"
  echo "$h"
}
serve() { # HOME
  HOME=$1 XDG_CONFIG_HOME=$1/config XDG_RUNTIME_DIR=$1/run XDG_STATE_HOME=$1/state LANG=C.UTF-8 \
    "$work/tokentray-core" serve >"$1/serve.log" 2>&1 &
  echo $!
}
sh=$(home shared)
fh=$(home file)
go run ./internal/bench/seed -postgres "$conn options='-c search_path=tokentray'" -key "$work/store.key" 100 "$sh/config/tokentray/config.toml"
XDG_STATE_HOME=$fh/state go run ./internal/bench/seed -file 100 "$fh/config/tokentray/config.toml"
shared=$(serve "$sh")
file=$(serve "$fh")
sleep 15 # start-up is not idle

xacts() { psql "$1" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
x0=$(xacts "$conn")
i0=$(xacts "$idle")
s0=$(cpu_ticks "$shared")
f0=$(cpu_ticks "$file")
sleep "$window"
s1=$(cpu_ticks "$shared")
f1=$(cpu_ticks "$file")
x1=$(xacts "$conn")
i1=$(xacts "$idle")
hz=$(getconf CLK_TCK)
echo "tokentray serve, 100 connections, idle, ${window} s, side by side:"
awk -v t=$((s1 - s0)) -v hz="$hz" -v w="$window" -v q=$((x1 - x0)) \
  'BEGIN{printf "  shared (PostgreSQL) store: cpu=%.3f%%  its database'"'"'s transactions=%d\n", 100*t/hz/w, q}'
awk -v t=$((f1 - f0)) -v hz="$hz" -v w="$window" -v q=$((i1 - i0)) \
  'BEGIN{printf "  file store (reference):    cpu=%.3f%%  an unused database'"'"'s transactions=%d (the server'"'"'s own, and these reads)\n", 100*t/hz/w, q}'

if ! grep -q 'serving' "$sh/serve.log"; then
  echo "the shared instance did not serve:" >&2
  cat "$sh/serve.log" >&2
  exit 1
fi

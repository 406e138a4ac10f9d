#!/usr/bin/env bash
# Idle cost of `tokentray serve` with 100 connections kept in a shared
# store, PostgreSQL or etcd, side by side in one run with the same 100 in
# the file store (the reference), for SECONDS (default 300): CPU from
# /proc, and what the engine did meanwhile beside the same engine that
# nobody uses (its own background work, the reference):
#   postgres: the transactions the database ran (pg_stat_database, every
#     statement outside a transaction is one);
#   etcd: the writes the cluster took (its revision, which every write
#     moves), and its etcd's CPU.
# The tokens live a day, so nothing is due: what is measured is the cost
# of being there (the watch, and with etcd the presence's renewal every
# 10 s, is the design).
# Not part of CI: it takes minutes by design.
#
# usage: internal/bench/shared-idle.sh postgres|etcd [SECONDS]
#   (Debian's postgresql or etcd-server; as root or a user that can run
#   .ci/postgres-start)
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=${1:?usage: internal/bench/shared-idle.sh postgres|etcd [SECONDS]}
window=${2:-300}
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  kill "${shared:-}" "${file:-}" 2>/dev/null || true
  for d in pg pg-idle; do .ci/postgres-start --stop "$work/$d" >/dev/null 2>&1 || true; done
  for d in etcd etcd-idle; do .ci/etcd-start --stop "$work/$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
head -c 32 /dev/urandom >"$work/store.key"
chmod 600 "$work/store.key"

case $engine in
postgres)
  eval "$(.ci/postgres-start "$work/pg-idle")"
  idle=$TOKENTRAY_TEST_PG
  eval "$(.ci/postgres-start "$work/pg")"
  conn=$TOKENTRAY_TEST_PG
  psql "$conn" -qXc "CREATE SCHEMA tokentray" >/dev/null
  seed=(-postgres "$conn options='-c search_path=tokentray'")
  xacts() { psql "$1" -XAtc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }
  engine_look() { echo "$(xacts "$conn") $(xacts "$idle")"; }
  ;;
etcd)
  eval "$(.ci/etcd-start "$work/etcd-idle")"
  idle_pid=$(cat "$work/etcd-idle/m1/pid")
  eval "$(.ci/etcd-start "$work/etcd")"
  endpoints=$TOKENTRAY_TEST_ETCD
  used_pid=$(cat "$work/etcd/m1/pid")
  seed=(-etcd "$endpoints")
  revision() { ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2; }
  engine_look() { echo "$(revision) $(cpu_ticks "$used_pid") $(cpu_ticks "$idle_pid")"; }
  ;;
*)
  echo "usage: internal/bench/shared-idle.sh postgres|etcd [SECONDS]" >&2
  exit 2
  ;;
esac
go build -o "$work/" ./cmd/tokentray-core

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
go run ./internal/bench/seed "${seed[@]}" -key "$work/store.key" 100 "$sh/config/tokentray/config.toml"
XDG_STATE_HOME=$fh/state go run ./internal/bench/seed -file 100 "$fh/config/tokentray/config.toml"
shared=$(serve "$sh")
file=$(serve "$fh")
sleep 15 # start-up is not idle

read -r -a e0 <<<"$(engine_look)"
s0=$(cpu_ticks "$shared")
f0=$(cpu_ticks "$file")
sleep "$window"
s1=$(cpu_ticks "$shared")
f1=$(cpu_ticks "$file")
read -r -a e1 <<<"$(engine_look)"
hz=$(getconf CLK_TCK)
pct() { awk -v t="$1" -v hz="$hz" -v w="$window" 'BEGIN{printf "%.3f%%", 100*t/hz/w}'; }
echo "tokentray serve, 100 connections, idle, ${window} s, side by side:"
case $engine in
postgres)
  echo "  shared (PostgreSQL) store: cpu=$(pct $((s1 - s0)))  its database's transactions=$((e1[0] - e0[0]))"
  echo "  file store (reference):    cpu=$(pct $((f1 - f0)))  an unused database's transactions=$((e1[1] - e0[1])) (the server's own, and these reads)"
  ;;
etcd)
  echo "  shared (etcd) store:    cpu=$(pct $((s1 - s0)))  writes to the cluster=$((e1[0] - e0[0]))  its etcd's cpu=$(pct $((e1[1] - e0[1])))"
  echo "  file store (reference): cpu=$(pct $((f1 - f0)))  an unused etcd's cpu=$(pct $((e1[2] - e0[2])))"
  ;;
esac

if ! grep -q 'serving' "$sh/serve.log"; then
  echo "the shared instance did not serve:" >&2
  cat "$sh/serve.log" >&2
  exit 1
fi

#!/usr/bin/env bash
# Idle cost of `tokentray serve` with 100 connections kept in a shared etcd
# store, side by side in one run with the same 100 in the file store (the
# reference), for SECONDS (default 300): CPU from /proc; the writes the
# cluster took meanwhile (its revision, which every write moves); and the
# CPU of its etcd beside that of a second etcd that nobody uses (the
# server's own background work, the reference). The tokens live a day, so
# nothing is due: what is measured is the cost of being there (its watch,
# and its presence's keep-alive every 5 s, is the design).
# Not part of CI: it takes minutes by design.
#
# usage: internal/bench/shared-idle-etcd.sh [SECONDS]   (Debian's etcd-server)
set -euo pipefail
cd "$(dirname "$0")/../.."
window=${1:-300}
work=$(mktemp -d)
cleanup() {
  kill "${shared:-}" "${file:-}" 2>/dev/null || true
  .ci/etcd-start --stop "$work/etcd" >/dev/null 2>&1 || true
  .ci/etcd-start --stop "$work/etcd-idle" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
eval "$(.ci/etcd-start "$work/etcd-idle")"
idle_pid=$(cat "$work/etcd-idle/m1/pid")
eval "$(.ci/etcd-start "$work/etcd")"
endpoints=$TOKENTRAY_TEST_ETCD
used_pid=$(cat "$work/etcd/m1/pid")
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
go run ./internal/bench/seed -etcd "$endpoints" -key "$work/store.key" 100 "$sh/config/tokentray/config.toml"
XDG_STATE_HOME=$fh/state go run ./internal/bench/seed -file 100 "$fh/config/tokentray/config.toml"
shared=$(serve "$sh")
file=$(serve "$fh")
sleep 15 # start-up is not idle

revision() { ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
r0=$(revision)
s0=$(cpu_ticks "$shared")
f0=$(cpu_ticks "$file")
u0=$(cpu_ticks "$used_pid")
i0=$(cpu_ticks "$idle_pid")
sleep "$window"
s1=$(cpu_ticks "$shared")
f1=$(cpu_ticks "$file")
u1=$(cpu_ticks "$used_pid")
i1=$(cpu_ticks "$idle_pid")
r1=$(revision)
hz=$(getconf CLK_TCK)
echo "tokentray serve, 100 connections, idle, ${window} s, side by side:"
awk -v t=$((s1 - s0)) -v hz="$hz" -v w="$window" -v q=$((r1 - r0)) -v e=$((u1 - u0)) \
  'BEGIN{printf "  shared (etcd) store: cpu=%.3f%%  writes to the cluster=%d  its etcd'"'"'s cpu=%.3f%%\n", 100*t/hz/w, q, 100*e/hz/w}'
awk -v t=$((f1 - f0)) -v hz="$hz" -v w="$window" -v e=$((i1 - i0)) \
  'BEGIN{printf "  file store (reference): cpu=%.3f%%  an unused etcd'"'"'s cpu=%.3f%%\n", 100*t/hz/w, 100*e/hz/w}'

if ! grep -q 'serving' "$sh/serve.log"; then
  echo "the shared instance did not serve:" >&2
  cat "$sh/serve.log" >&2
  exit 1
fi

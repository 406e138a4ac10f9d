#!/usr/bin/env bash
# Idle cost of the resident process, side by side in one run: a minimal Fyne
# tray app (the reference), tokentray with 1 signed-in connection and
# tokentray with 100, all at once on one display and one session bus, with
# no window open, for SECONDS (default 300). For each: CPU, context switches
# per second (every thread's, voluntary and not) and resident memory,
# sampled from /proc. Not part of CI: it takes minutes by design.
#
# usage: .ci/desktop-session internal/bench/resident.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
window=${1:-300}
bin=$(mktemp -d)
CGO_ENABLED=0 go build -o "$bin/" ./cmd/tokentray ./cmd/tokentray-core
go build -o "$bin/tokentray-window" ./cmd/tokentray-window
go build -o "$bin/minimaltray" ./internal/bench/minimaltray
go build -o "$bin/watcher" ./internal/bench/watcher
display=:$((120 + RANDOM % 60))
Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
"$bin/watcher" & watcher=$!
sleep 1
export DISPLAY=$display LANG=C.UTF-8 LIBGL_ALWAYS_SOFTWARE=1

# Each tokentray gets its own config and socket: two resident processes.
start_tokentray() { # N
  local home=$bin/home-$1
  mkdir -p "$home/config/tokentray" "$home/run"
  chmod 700 "$home/run"
  go run ./internal/bench/seed "$1" "$home/config/tokentray/config.toml"
  XDG_CONFIG_HOME=$home/config XDG_RUNTIME_DIR=$home/run "$bin/tokentray" >/dev/null 2>&1 &
  echo $!
}
"$bin/minimaltray" >/dev/null 2>&1 & minimal=$!
one=$(start_tokentray 1)
hundred=$(start_tokentray 100)
sleep 15 # start-up is not idle

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
declare -A t0 c0 rss
for p in $minimal $one $hundred; do t0[$p]=$(cpu_ticks "$p"); c0[$p]=$(switches "$p"); rss[$p]=""; done
for ((s = 0; s < window; s += 10)); do
  sleep 10
  for p in $minimal $one $hundred; do rss[$p]+="$(awk '/VmRSS/{print $2}' "/proc/$p/status") "; done
done
hz=$(getconf CLK_TCK)
report() { # NAME PID
  local p=$2 t1 c1 median maxrss
  t1=$(cpu_ticks "$p"); c1=$(switches "$p")
  median=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  maxrss=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | sort -n | tail -1)
  awk -v name="$1" -v t=$((t1 - t0[$p])) -v c=$((c1 - c0[$p])) -v hz="$hz" -v w="$window" -v m="$median" -v x="$maxrss" \
    'BEGIN{printf "%-26s cpu=%.3f%%  switches=%.2f/s  rss_median=%.1fMiB  rss_max=%.1fMiB\n", name, 100*t/hz/w, c/w, m/1024, x/1024}'
}
echo "idle, no window open, ${window} s, side by side:"
report "minimal Fyne tray" "$minimal"
report "tokentray, 1 connection" "$one"
report "tokentray, 100 connections" "$hundred"
kill "$minimal" "$one" "$hundred" "$watcher" "$xvfb" 2>/dev/null || true
wait 2>/dev/null || true

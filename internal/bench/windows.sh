#!/usr/bin/env bash
# Cost of the open dashboard, side by side in one run: tokentray's window
# process showing the dashboard of one signed-in connection (its countdown
# ticks every second), next to a minimal Fyne app with one window, and to
# the same app with its one label changing every second, for SECONDS
# (default 120). CPU and resident memory from /proc. Not part of CI.
#
# usage: .ci/desktop-session internal/bench/windows.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
window=${1:-120}
bin=$(mktemp -d)
CGO_ENABLED=0 go build -o "$bin/" ./cmd/tokentray ./cmd/tokentray-core
go build -o "$bin/tokentray-window" ./cmd/tokentray-window
go build -o "$bin/minimalwindow" ./internal/bench/minimalwindow
go build -o "$bin/watcher" ./internal/bench/watcher
display=:$((120 + RANDOM % 60))
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
"$bin/watcher" & watcher=$!
sleep 1
export DISPLAY=$display LANG=C.UTF-8 LIBGL_ALWAYS_SOFTWARE=1
home=$bin/home
mkdir -p "$home/config/tokentray" "$home/run"
chmod 700 "$home/run"
go run ./internal/bench/seed 1 "$home/config/tokentray/config.toml"
export XDG_CONFIG_HOME=$home/config XDG_RUNTIME_DIR=$home/run
"$bin/tokentray" >/dev/null 2>&1 & resident=$!
sleep 3
"$bin/tokentray" >/dev/null 2>&1 # a second start: the resident process opens the dashboard
"$bin/minimalwindow" >/dev/null 2>&1 & minimal=$!
"$bin/minimalwindow" -tick >/dev/null 2>&1 & ticking=$!
sleep 10
dashboard=$(pgrep -f "^$bin/tokentray-window")

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
declare -A t0 rss
for p in $minimal $ticking $dashboard; do t0[$p]=$(cpu_ticks "$p"); rss[$p]=""; done
for ((s = 0; s < window; s += 10)); do
  sleep 10
  for p in $minimal $ticking $dashboard; do rss[$p]+="$(awk '/VmRSS/{print $2}' "/proc/$p/status") "; done
done
hz=$(getconf CLK_TCK)
report() { # NAME PID
  local p=$2 t1 median
  t1=$(cpu_ticks "$p")
  median=$(tr ' ' '\n' <<<"${rss[$p]}" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  awk -v name="$1" -v t=$((t1 - t0[$p])) -v hz="$hz" -v w="$window" -v m="$median" \
    'BEGIN{printf "%-30s cpu=%.2f%%  rss_median=%.1fMiB\n", name, 100*t/hz/w, m/1024}'
}
echo "one window open, ${window} s, side by side:"
report "minimal Fyne app, one window" "$minimal"
report "the same, its label ticking" "$ticking"
report "tokentray dashboard" "$dashboard"
kill "$minimal" "$ticking" "$dashboard" "$resident" "$watcher" "$xvfb" 2>/dev/null || true
wait 2>/dev/null || true

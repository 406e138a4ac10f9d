#!/usr/bin/env bash
# Idle cost of the tray: CPU and resident memory of tokentray with N signed-in
# connections over a window (default 600 s), sampled from /proc every 10 s,
# next to a minimal Fyne tray app. Runs inside .ci/desktop-session with its
# own Xvfb display and tray host. Not part of CI: it takes minutes by design.
#
# usage: .ci/desktop-session internal/bench/idle.sh tokentray|minimal N SECONDS
set -euo pipefail
cd "$(dirname "$0")/../.."
what=$1 n=${2:-1} window=${3:-600}
bin=$(mktemp -d)
go build -o "$bin/tokentray" ./cmd/tokentray
go build -o "$bin/minimaltray" ./internal/bench/minimaltray
go build -o "$bin/watcher" ./internal/bench/watcher
display=:$((120 + RANDOM % 60))
Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
"$bin/watcher" & watcher=$!
sleep 1
export DISPLAY=$display LANG=C.UTF-8 LIBGL_ALWAYS_SOFTWARE=1
if [ "$what" = tokentray ]; then
  mkdir -p "$XDG_CONFIG_HOME/tokentray"
  go run ./internal/bench/seed "$n" "$XDG_CONFIG_HOME/tokentray/config.toml"
  "$bin/tokentray" >/dev/null 2>&1 & pid=$!
else
  "$bin/minimaltray" >/dev/null 2>&1 & pid=$!
fi
sleep 15 # start-up is not idle
hz=$(getconf CLK_TCK)
read -r t0 < <(awk '{print $14+$15}' "/proc/$pid/stat")
rss=()
for ((s = 0; s < window; s += 10)); do
  sleep 10
  rss+=("$(awk '/VmRSS/{print $2}' "/proc/$pid/status")")
done
read -r t1 < <(awk '{print $14+$15}' "/proc/$pid/stat")
sorted=$(printf '%s\n' "${rss[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
maxrss=$(echo "$sorted" | tail -1)
cpu=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v w="$window" 'BEGIN{printf "%.3f", 100 * t / hz / w}')
printf 'idle %-9s connections=%-3s window=%ss cpu=%s%% rss_median=%.1fMiB rss_max=%.1fMiB\n' \
  "$what" "$n" "$window" "$cpu" "$(echo "$median/1024" | bc -l)" "$(echo "$maxrss/1024" | bc -l)"
kill "$pid" "$watcher" "$xvfb" 2>/dev/null || true

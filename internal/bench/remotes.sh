#!/usr/bin/env bash
# Idle cost of following servers, side by side in one run: the desktop's
# tokentray with no connection and no server (the reference) beside one
# that follows 10 [[remote]] servers of 10 signed-in connections each (100
# rows in its menu), for SECONDS (default 300). The servers are one real
# sshd on 127.0.0.1 … 127.0.0.10 (ten hosts to ssh: ten control
# connections) in front of `tokentray serve` in a second account with the
# file store. For each tray: CPU, context switches per second and resident
# memory from /proc; and the ssh clients the watching one keeps (one
# control connection and one `tokentray events` session per server),
# summed. Needs root (a user, sshd). Not part of CI: it takes minutes by
# design.
#
# usage: .ci/desktop-session internal/bench/remotes.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
window=${1:-300}
servers=10
[ "$(id -u)" = 0 ] || { echo "run as root: it adds the user tt-agent and starts sshd" >&2; exit 2; }
bin=$(mktemp -d /tmp/tt-bench-XXXXXX)
chmod 755 "$bin"
CGO_ENABLED=0 go build -o "$bin/" ./cmd/tokentray ./cmd/tokentray-core
go build -o "$bin/tokentray-window" ./cmd/tokentray-window
go build -o "$bin/watcher" ./internal/bench/watcher
go build -o "$bin/seed" ./internal/bench/seed

# The server account, its 10 connections in the file store, and its serve.
account=tt-agent
id "$account" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$account"
usermod -p '*' "$account"
home=$(getent passwd "$account" | cut -d: -f6)
rm -rf "$home/.config/tokentray" "$home/.local/state/tokentray" "/tmp/tokentray-$(id -u "$account")"
as_agent() { runuser -u "$account" -- env -i HOME="$home" LANG=C.UTF-8 PATH=/usr/bin:/bin "$@"; }
as_agent mkdir -p "$home/.config/tokentray"
as_agent "$bin/seed" -file 10 "$home/.config/tokentray/config.toml"
as_agent "$bin/tokentray" serve >"$bin/serve.log" 2>&1 &
serve=$!

# sshd on ten loopback addresses, one key pair for all.
keys=$bin/keys
mkdir -p "$keys"
ssh-keygen -q -t ed25519 -N '' -f "$keys/host"
ssh-keygen -q -t ed25519 -N '' -f "$keys/id"
as_agent mkdir -p -m 700 "$home/.ssh"
install -o "$account" -m 600 "$keys/id.pub" "$home/.ssh/authorized_keys"
port=$((30000 + RANDOM % 20000))
{
  echo "Port $port"
  for i in $(seq 1 $servers); do echo "ListenAddress 127.0.0.$i"; done
  echo "HostKey $keys/host"
  echo "PidFile $keys/sshd.pid"
  echo "PasswordAuthentication no"
  echo "KbdInteractiveAuthentication no"
  echo "UsePAM no"
  echo "AllowUsers $account"
  echo "MaxSessions 100"
  echo "MaxStartups 100"
} >"$keys/sshd_config"
for i in $(seq 1 $servers); do echo "[127.0.0.$i]:$port $(cat "$keys/host.pub")"; done >"$keys/known_hosts"
mkdir -p /run/sshd
/usr/sbin/sshd -D -e -f "$keys/sshd_config" 2>"$bin/sshd.log" &
sshd=$!

display=:$((120 + RANDOM % 60))
Xvfb "$display" -screen 0 1024x768x24 -nolisten tcp -noreset >/dev/null 2>&1 &
xvfb=$!
"$bin/watcher" & watcher=$!
sleep 1
export DISPLAY=$display LANG=C.UTF-8 LIBGL_ALWAYS_SOFTWARE=1

# Each desktop tokentray gets its own config and runtime directory.
start_tokentray() { # NAME CONFIG_TEXT
  local dir=$bin/$1
  mkdir -p "$dir/config/tokentray" "$dir/run"
  chmod 700 "$dir/run"
  printf '%s' "$2" >"$dir/config/tokentray/config.toml"
  XDG_CONFIG_HOME=$dir/config XDG_RUNTIME_DIR=$dir/run "$bin/tokentray" >"$dir/tray.log" 2>&1 &
  echo $!
}
remotes=""
for i in $(seq 1 $servers); do
  remotes+="[[remote]]
name = \"srv-$i\"
ssh = \"$account@127.0.0.$i\"
ssh_options = [\"Port=$port\", \"IdentityFile=$keys/id\", \"UserKnownHostsFile=$keys/known_hosts\", \"StrictHostKeyChecking=yes\", \"IdentitiesOnly=yes\"]
command = \"$bin/tokentray\"

"
done
none=$(start_tokentray none "")
watching=$(start_tokentray watching "$remotes")

# Up when every server's 10 rows are there (the local API lists them).
sock=$bin/watching/run/tokentray/api.sock
for _ in $(seq 1 120); do
  rows=$(curl -s --unix-socket "$sock" http://tokentray/v1/connections | grep -c '"remote": "srv-' || true)
  [ "$rows" -ge $((servers * 10)) ] && break
  sleep 1
done
echo "rows followed: $rows of $((servers * 10))"
curl -s --unix-socket "$sock" http://tokentray/v1/connections | grep -q '"state": "unreachable"' && { echo "some server is unreachable:" >&2; cat "$bin/watching/tray.log" >&2; }
sleep 15 # start-up is not idle

ssh_pids() { pgrep -d ' ' -f "$bin/watching/run/tokentray/" || true; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}'; }
group_ticks() { local s=0 p; for p in $1; do s=$((s + $(cpu_ticks "$p"))); done; echo $s; }
group_rss() { local s=0 p; for p in $1; do s=$((s + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo $s; }
# Proportional: the libraries the ssh processes share are counted once.
group_pss() { local s=0 p; for p in $1; do s=$((s + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup"))); done; echo $s; }
sshs=$(ssh_pids)
declare -A t0 c0 rss
for p in $none $watching; do t0[$p]=$(cpu_ticks "$p"); c0[$p]=$(switches "$p"); rss[$p]=""; done
ssh_t0=$(group_ticks "$sshs")
ssh_rss="" ssh_pss=""
for ((s = 0; s < window; s += 10)); do
  sleep 10
  for p in $none $watching; do rss[$p]+="$(awk '/VmRSS/{print $2}' "/proc/$p/status") "; done
  ssh_rss+="$(group_rss "$sshs") "
  ssh_pss+="$(group_pss "$sshs") "
done
hz=$(getconf CLK_TCK)
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
report() { # NAME PID
  local p=$2 t1 c1 m
  t1=$(cpu_ticks "$p"); c1=$(switches "$p")
  m=$(median "${rss[$p]}")
  awk -v name="$1" -v t=$((t1 - t0[$p])) -v c=$((c1 - c0[$p])) -v hz="$hz" -v w="$window" -v m="$m" \
    'BEGIN{printf "%-44s cpu=%.3f%%  switches=%.2f/s  rss_median=%.1fMiB\n", name, 100*t/hz/w, c/w, m/1024}'
}
echo "idle, no window open, ${window} s, side by side:"
report "tokentray, nothing to follow" "$none"
report "tokentray, $servers servers x 10 connections" "$watching"
awk -v n="$(wc -w <<<"$sshs")" -v t=$(($(group_ticks "$sshs") - ssh_t0)) -v hz="$hz" -v w="$window" -v m="$(median "$ssh_rss")" -v p="$(median "$ssh_pss")" \
  'BEGIN{printf "%-44s cpu=%.3f%%  rss_median=%.1fMiB, pss_median=%.1fMiB (all of them)\n", "  its ssh clients (" n " processes)", 100*t/hz/w, m/1024, p/1024}'
kill "$none" "$watching" "$watcher" "$xvfb" "$sshd" 2>/dev/null || true
kill "$serve" 2>/dev/null || true
pkill -u "$account" -f "$bin/tokentray" 2>/dev/null || true
wait 2>/dev/null || true

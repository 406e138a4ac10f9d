#!/usr/bin/env bash
# Runs the refresh soak (auth/, with the race detector) N times in a row
# beside a cold-cache build of the binaries: the load of a fresh CI machine,
# whose background Windows build is such a build. Plain CPU loops did not
# expose the scheduler race that this load did (issue: "0 token calls at one
# due point"), so this is the load to prove the fix under.
#
# usage: internal/bench/soak-under-load.sh [N]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-10}
go test -race -c -o /tmp/auth-soak.test ./auth/
cache=$(mktemp -d)
build() { while :; do GOCACHE="$cache" go build -o /dev/null ./cmd/... >/dev/null 2>&1; rm -rf "${cache:?}"/*; done; }
build &
builder=$!
trap 'kill $builder 2>/dev/null; pkill -P $builder 2>/dev/null; rm -rf "$cache"' EXIT
sleep 20 # let the cold build get going
pass=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  if (cd auth && /tmp/auth-soak.test -test.run TestSoakTenThousandFaultedRefreshCycles -test.count=1 -test.v) > /tmp/soak-$i.log 2>&1; then
    pass=$((pass + 1))
    echo "run $i: ok in $(( $(date +%s) - start )) s, load $(cut -d' ' -f1 /proc/loadavg): $(grep -m1 'refresh cycles over' /tmp/soak-$i.log | sed 's/^ *soak_test.go:[0-9]*: //')"
  else
    echo "run $i: FAILED (log /tmp/soak-$i.log)"; grep -E 'seed|cycle|FAIL' /tmp/soak-$i.log | head -5
  fi
done
echo "$pass of $n soak runs passed beside a cold-cache build"
[ "$pass" = "$n" ]

#!/bin/sh
# SIGKILL at random points (README "Hardening"): prog_events writes a
# journal line per violation (VRAMGUARD_POLICY=warn) until it is killed
# 0-50 ms after its start line; `vramguard report` must then read the
# journal (exit 3: the violations fail the run), whatever the kill cut.
#
#   kill_journal.sh BUILD_DIR KILLS
# Prints one FAIL line per unreadable journal and a closing count line;
# exits 0 only when every journal was read.
set -u
build=$1
kills=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vg-kill.XXXXXX")
ok=0
cut=0
i=0
while [ "$i" -lt "$kills" ]; do
    i=$((i + 1))
    dir=$tmp/$i
    mkdir -p "$dir"
    LD_PRELOAD="$build/libvramguard.so" LD_LIBRARY_PATH="$build/fakecuda" VRAMGUARD_POLICY=warn \
        VRAMGUARD_LOG=/dev/null VRAMGUARD_REPORT="$dir/vramguard.%p.json" "$build/tests/prog_events" &
    pid=$!
    n=0
    while [ ! -s "$dir/vramguard.$pid.json.journal" ] && [ "$n" -lt 1000 ]; do
        sleep 0.01
        n=$((n + 1))
    done
    sleep "$(awk -v s="$i$pid" 'BEGIN { srand(s); printf "%.3f", rand() * 0.05 }')"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    out=$(python3 "$root/scripts/vramguard" report "$dir" 2>&1)
    status=$?
    if [ "$status" -eq 3 ] && printf '%s\n' "$out" | grep -q "killed, no report"; then
        ok=$((ok + 1))
    else
        echo "FAIL kill $i (pid $pid): vramguard report exited $status"
        printf '%s\n' "$out" | tail -5
    fi
    [ -n "$(tail -c 1 "$dir/vramguard.$pid.json.journal")" ] && cut=$((cut + 1))
done
rm -rf "$tmp"
echo "killed $kills processes at random points: $ok journals read by the CLI ($cut cut inside a line)"
[ "$ok" -eq "$kills" ]

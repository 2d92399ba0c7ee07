#!/bin/sh
# make stress (README "Hardening"): the full sizes of the stress tests that
# make check runs scaled down. Prints each figure; exits non-zero on any
# failure.
#   16 threads x 1 000 000 mixed calls with exact totals (prog_stress:
#   sync, async, cross-thread frees; prog_vmm_threads: sync and VMM);
#   1 000 forks while 8 threads allocate, one report per child;
#   SIGKILL at 200 random points, each journal read by the CLI.
set -u
build=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vg-stress.XXXXXX")
fail=0
shim="LD_PRELOAD=$build/libvramguard.so LD_LIBRARY_PATH=$build/fakecuda"
big=FAKECUDA_VRAM_BYTES=1099511627776

step() { # NAME COMMAND...: run, time, keep the output's last lines
    name=$1
    shift
    start=$(date +%s.%N)
    if env "$@" >"$tmp/out" 2>&1; then verdict=ok; else verdict=FAILED; fail=1; fi
    end=$(date +%s.%N)
    echo "$name: $verdict in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
    grep -E '^FAIL|failed checks|^stress: |threads x|forks [0-9]+ hung|reports ok|problems|killed [0-9]+' "$tmp/out" | head -20
}

step "prog_stress 16 threads x 1M calls (16M)" $shim $big VRAMGUARD_LOG=/dev/null \
    VRAMGUARD_LISTEN="unix:$tmp/stress.sock" PROG_STRESS_OPS=16000000 "$build/tests/prog_stress"
step "prog_vmm_threads 16 threads x 1M calls" $shim $big VRAMGUARD_LOG=/dev/null \
    "$build/tests/prog_vmm_threads" 16 1000000
mkdir -p "$tmp/forks"
step "prog_forks 1000 forks, 8 allocating threads" $shim VRAMGUARD_LOG=/dev/null \
    VRAMGUARD_REPORT="$tmp/forks/r.%p.json" "$build/tests/prog_forks" 1000 8 60
step "per-process reports of the 1000 children" python3 "$root/tests/hardening/check_fork_reports.py" "$tmp/forks" 1000
step "SIGKILL at 200 random points" "$root/tests/hardening/kill_journal.sh" "$build" 200
rm -rf "$tmp"
exit $fail

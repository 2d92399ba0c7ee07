#!/bin/bash
# bench.sh BUILD_DIR [SHIM]: `make bench`. Measures the shim (default
# BUILD_DIR/libvramguard.so) against the fake CUDA driver, with and without
# it, and prints the tables of issue 7's targets ("the shim disappears from
# the allocation profile"):
#
#   1. callgrind instructions per allocation + free pair (exact, steady state)
#   2. driver calls per pair (the fake driver's own counter)
#   3. live-set scaling (1 000 vs 1 000 000 live), churn latency, bytes per
#      live allocation
#   4. thread scaling (1 vs 8 threads)
#   5. wall time (median of medians, runs interleaved)
#   6. report render times at 100 000 live: /vram, /metrics,
#      vramguard_report(), the exit report, the first OOM breakdown
#
# PASS/FAIL is printed per row against its target; a miss does not fail the
# command (exit 0 unless a measurement itself fails). Programs: BUILD_DIR/
# tests/bench_{alloc,live,render} (tests/bench/bench.mk). The caller sets
# LD_LIBRARY_PATH to the fake driver. Sizes, from the environment:
#   N1, N2            callgrind loop lengths (2000, 12000): per pair =
#                     (Ir(N2) - Ir(N1)) / (N2 - N1), so setup and exit cancel
#   LIVE_BIG          the large live set (1000000), also churn's
#   CHURN_OPS         churn operations, each a free and an allocation (2000000)
#   RENDER_LIVE       live allocations for the render times (100000)
#   RENDER_PROCS      processes for the render times (5; one first OOM each)
#   WALL_PAIRS        pairs per repetition of the wall-time runs (20000)
#   WALL_RUNS         interleaved wall-time runs of each kind (5, odd)
set -eu
B=$1
SHIM=$(realpath "${2:-$B/libvramguard.so}")
T=$B/tests
N1=${N1:-2000} N2=${N2:-12000}
LIVE_SMALL=1000 LIVE_BIG=${LIVE_BIG:-1000000}
CHURN_OPS=${CHURN_OPS:-2000000}
RENDER_LIVE=${RENDER_LIVE:-100000} RENDER_PROCS=${RENDER_PROCS:-5} RENDER_REPS=7 EXIT_REPS=5
WALL_PAIRS=${WALL_PAIRS:-20000} WALL_RUNS=${WALL_RUNS:-5}
RULES='libfoo*=weights,>=1G=kv_cache,<1K=intermediate'
export FAKECUDA_VRAM_BYTES=1099511627776 # 2^40: a million live allocations (and churn) fit
export VRAMGUARD_LOG=/dev/null
TMP=$(mktemp -d /tmp/vgbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)

for p in bench_alloc bench_live bench_render; do
    [ -x "$T/$p" ] || { echo "bench.sh: $T/$p missing (make bench-build)" >&2; exit 1; }
done
[ -f "$SHIM" ] || { echo "bench.sh: no shim at $SHIM" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

# ---- helpers ----------------------------------------------------------------

# with 0|1 CMD...: run CMD without / with the shim preloaded.
with() {
    if [ "$1" = 1 ]; then shift; LD_PRELOAD="$SHIM" "$@"; else shift; "$@"; fi
}
# cg NAME 0|1 CMD...: start CMD under callgrind in the background (only the
# code between the program's MEASURE_BEGIN/END is instrumented);
# $TMP/NAME.log gets valgrind's log, $TMP/NAME.out the program's output.
cg() {
    local name=$1 w=$2; shift 2
    with "$w" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        --log-file="$TMP/$name.log" "$@" >"$TMP/$name.out" 2>&1 &
}
# collected NAME: the Ir total of a finished callgrind run.
collected() {
    local n
    n=$(awk '/Collected :/ {print $NF}' "$TMP/$1.log")
    [ -n "$n" ] || { echo "bench.sh: callgrind run $1 failed:" >&2; cat "$TMP/$1.log" "$TMP/$1.out" >&2; exit 1; }
    echo "$n"
}
# ir_pair NAME 0|1 CMD-WITHOUT-N...: callgrind the command with N1 and with N2
# (appended), both at once (two cores); prints instructions per pair.
ir_pair() {
    local name=$1 w=$2; shift 2
    cg "$name.n1" "$w" "$@" "$N1"
    cg "$name.n2" "$w" "$@" "$N2"
    wait
    awk -v a="$(collected "$name.n1")" -v b="$(collected "$name.n2")" -v n1="$N1" -v n2="$N2" \
        'BEGIN {printf "%.1f", (b - a) / (n2 - n1)}'
}
# key FILE KEY: the value of "KEY value" in FILE.
key() { awk -v k="$2" '$1 == k {print $2; exit}' "$1"; }
# verdict VALUE TARGET: PASS when VALUE <= TARGET.
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v == "" ? "?" : ((v + 0 <= t + 0) ? "PASS" : "FAIL"))}'; }
# median of the numbers on stdin
med() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
elapsed() { echo "($(($(date +%s) - START)) s)"; }

echo "== vramguard make bench: $(uname -m), $(nproc) cpus (uname -m, nproc); $(uname -sr)"
echo "   shim: $SHIM (built $(date -r "$SHIM" '+%F %T')); bench checkout:" \
    "$(cd "$(dirname "$0")" && git log -1 --format=%h 2>/dev/null || echo '?')"
echo "   fake CUDA driver (tests/fakecuda), FAKECUDA_VRAM_BYTES=2^40; base = the same program without the shim"

# ---- 1 + 2: callgrind instructions and driver calls per pair ------------------
declare -A IR CALLS
for c in driver runtime async; do
    for w in 0 1; do
        IR[$c.$w]=$(ir_pair "ir.$c.$w" "$w" "$T/bench_alloc" ir "$c")
        CALLS[$c.$w]=$(key "$TMP/ir.$c.$w.n2.out" calls_per_pair)
    done
done
IR[rules.1]=$(VRAMGUARD_PURPOSE_RULES=$RULES ir_pair ir.rules.1 1 "$T/bench_alloc" ir driver)
CALLS[rules.1]=$(key "$TMP/ir.rules.1.n2.out" calls_per_pair)

echo
echo "== 1. instructions per allocation + free pair (callgrind, exact, steady state: after 1000 warm-up pairs,"
echo "      (Ir(N2) - Ir(N1)) / (N2 - N1), N1=$N1, N2=$N2; 4 KiB each)  $(elapsed)"
printf '%-48s %10s %10s %10s %8s  %s\n' case base shim added target verdict
row1() { # label case target
    local b=${IR[$2.0]} s=${IR[$2.1]}
    local a; a=$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%+.1f", s - b}')
    printf '%-48s %10s %10s %10s %8s  %s\n' "$1" "$b" "$s" "$a" "<=$3" "$(verdict "$a" "$3")"
}
row1 "(a) cuMemAlloc_v2 + cuMemFree_v2 (driver)" driver 250
row1 "(b) cudaMalloc + cudaFree (static cudart)" runtime 250
row1 "(c) cudaMallocAsync + cudaFreeAsync (stream)" async 350
ra=$(awk -v r="${IR[rules.1]}" -v s="${IR[driver.1]}" 'BEGIN {printf "%+.1f", r - s}')
printf '%-48s %10s %10s %10s %8s  %s\n' "(d) (a) with VRAMGUARD_PURPOSE_RULES (3 rules)" "${IR[driver.0]}" "${IR[rules.1]}" \
    "$(awk -v b="${IR[driver.0]}" -v s="${IR[rules.1]}" 'BEGIN {printf "%+.1f", s - b}')" "" ""
printf '%-48s %10s %10s %10s %8s  %s\n' "    rules add (none matches a 4 KiB main-program call)" "" "" "$ra" "<=+40" "$(verdict "$ra" 40)"
echo "    rules: $RULES"

echo
echo "== 2. driver calls per pair (the fake driver's fakecuda_driver_calls(): every entry point, the shim's own"
echo "      queries included; same loops as table 1)"
printf '%-48s %10s %10s %10s %8s  %s\n' case base shim "shim's own" target verdict
row2() { # label case
    local b=${CALLS[$2.0]} s=${CALLS[$3]}
    local a; a=$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%+.2f", s - b}')
    printf '%-48s %10s %10s %10s %8s  %s\n' "$1" "$b" "$s" "$a" "0" "$(verdict "$a" 0)"
}
row2 "(a) driver pair" driver driver.1
row2 "(b) runtime pair" runtime runtime.1
row2 "(c) async pair" async async.1
row2 "(d) driver pair with purpose rules" driver rules.1

# ---- 3: live-set scaling, churn, bytes per live allocation -------------------
for w in 0 1; do
    IR[live.small.$w]=$(ir_pair "live.small.$w" "$w" "$T/bench_live" ir "$LIVE_SMALL")
    IR[live.big.$w]=$(ir_pair "live.big.$w" "$w" "$T/bench_live" ir "$LIVE_BIG")
done
with 0 "$T/bench_live" churn "$LIVE_BIG" "$CHURN_OPS" >"$TMP/churn.0"
with 1 "$T/bench_live" churn "$LIVE_BIG" "$CHURN_OPS" >"$TMP/churn.1"

echo
echo "== 3. live set: instructions per driver pair (callgrind as table 1) with $LIVE_SMALL and $LIVE_BIG live 4 KiB allocations  $(elapsed)"
printf '%-48s %10s %10s %10s %8s  %s\n' case base shim added target verdict
for l in small big; do
    n=$([ $l = small ] && echo "$LIVE_SMALL" || echo "$LIVE_BIG")
    printf '%-48s %10s %10s %10s\n' "driver pair, $n live" "${IR[live.$l.0]}" "${IR[live.$l.1]}" \
        "$(awk -v b="${IR[live.$l.0]}" -v s="${IR[live.$l.1]}" 'BEGIN {printf "%+.1f", s - b}')"
done
rt=$(awk -v a="${IR[live.small.1]}" -v b="${IR[live.big.1]}" 'BEGIN {printf "%.3f", b / a}')
rb=$(awk -v a="${IR[live.small.0]}" -v b="${IR[live.big.0]}" 'BEGIN {printf "%.3f", b / a}')
radd=$(awk -v a0="${IR[live.small.0]}" -v a1="${IR[live.small.1]}" -v b0="${IR[live.big.0]}" -v b1="${IR[live.big.1]}" \
    'BEGIN {d = a1 - a0; printf "%.3f", (d > 0 ? (b1 - b0) / d : 0)}')
printf '%-48s %10s %10s %10s %8s  %s\n' "ratio $LIVE_BIG live / $LIVE_SMALL live" "$rb" "$rt" "$radd" "<=1.1" "$(verdict "$radd" 1.1)"
echo "    (the verdict is on the shim's added instructions; base = the fake driver alone)"

echo
echo "-- churn: $LIVE_BIG live, then $CHURN_OPS x (free a random live one, allocate 512 B..64 KiB), every call timed"
printf '%-48s %10s %10s %10s %8s  %s\n' "single-call latency (ns)" base shim added target verdict
for phase in build churn; do
    label=$([ $phase = build ] && echo "building up to $LIVE_BIG live" || echo "churn")
    for s in max p999 p99 median; do
        b=$(key "$TMP/churn.0" "${phase}_${s}_ns"); v=$(key "$TMP/churn.1" "${phase}_${s}_ns")
        if [ $s = max ]; then tgt="<=1000000"; vd=$(verdict "$v" 1000000); else tgt=""; vd=""; fi
        printf '%-48s %10s %10s %10s %8s  %s\n' "$label: ${s/p999/p99.9}" "$b" "$v" \
            "$(awk -v b="$b" -v s="$v" 'BEGIN {printf "%+.0f", s - b}')" "$tgt" "$vd"
    done
    printf '%-48s %10s %10s\n' "$label: calls over 1 ms" "$(key "$TMP/churn.0" "${phase}_over_1ms")" \
        "$(key "$TMP/churn.1" "${phase}_over_1ms")"
done
echo "    (involuntary context switches during the churn: base $(key "$TMP/churn.0" churn_nivcsw)," \
    "shim $(key "$TMP/churn.1" churn_nivcsw); a preempted call counts its wait)"

echo
echo "-- host memory per live allocation: (shim - base) growth since just before the build-up, / $LIVE_BIG"
printf '%-48s %10s %10s %10s %8s  %s\n' "bytes" base shim "per alloc" target verdict
for m in heap_live heap_churn rss_live rss_churn; do
    b=$(key "$TMP/churn.0" $m); v=$(key "$TMP/churn.1" $m)
    per=$(awk -v b="$b" -v s="$v" -v n="$LIVE_BIG" 'BEGIN {printf "%.1f", (s - b) / n}')
    label=$(echo $m | sed 's/heap/heap in use (mallinfo2)/; s/rss/RSS (statm)/; s/_live/, at the build-up/; s/_churn/, after the churn/')
    printf '%-48s %10s %10s %10s %8s  %s\n' "$label" "$b" "$v" "$per" "<=64" "$(verdict "$per" 64)"
done

# ---- 4 + 5: wall time, runs interleaved -------------------------------------
for i in $(seq "$WALL_RUNS"); do
    with 0 "$T/bench_alloc" wall "$WALL_PAIRS" >"$TMP/wall.base.$i"
    with 1 "$T/bench_alloc" wall "$WALL_PAIRS" >"$TMP/wall.shim.$i"
    VRAMGUARD_BACKTRACE=1 with 1 "$T/bench_alloc" wall "$WALL_PAIRS" >"$TMP/wall.bt.$i"
done
wall() { cat "$TMP"/wall."$1".* | awk -v c="$2" '$1 == c {print $2}' | med; }

echo
echo "== 4. threads: ns per pair (wall time / all threads' pairs; median of $WALL_RUNS runs of the median of 11)  $(elapsed)"
printf '%-48s %10s %10s %10s %8s  %s\n' case base shim added target verdict
for c in driver runtime; do
    for th in 1thread 8threads; do
        b=$(wall base ${c}_$th); s=$(wall shim ${c}_$th)
        eval "ADD_${c}_$th=$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%.1f", s - b}')"
        printf '%-48s %10s %10s %10s\n' "$c pair, ${th/thread/ thread}" "$b" "$s" \
            "$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%+.1f", s - b}')"
    done
    a1=$(eval echo "\$ADD_${c}_1thread"); a8=$(eval echo "\$ADD_${c}_8threads")
    r=$(awk -v a="$a1" -v b="$a8" 'BEGIN {printf "%.2f", (a > 0 ? b / a : 0)}')
    printf '%-48s %10s %10s %10s %8s  %s\n' "$c: added(8 threads) / added(1 thread)" "" "" "$r" "<=2" "$(verdict "$r" 2)"
done

echo
echo "== 5. wall time per pair, 1 thread (ns; median of $WALL_RUNS interleaved runs of the median of 11 x $WALL_PAIRS)"
printf '%-48s %10s %10s %10s %8s  %s %14s %10s\n' case base shim added target verdict "+backtrace" added
for c in driver runtime async; do
    b=$(wall base ${c}_1thread); s=$(wall shim ${c}_1thread); t=$(wall bt ${c}_1thread)
    a=$(awk -v b="$b" -v s="$s" 'BEGIN {printf "%+.1f", s - b}')
    case $c in driver) tgt=60 ;; async) tgt=100 ;; *) tgt= ;; esac
    printf '%-48s %10s %10s %10s %8s  %-7s %14s %10s\n' "$c pair" "$b" "$s" "$a" "${tgt:+<=$tgt}" \
        "$([ -n "$tgt" ] && verdict "$a" "$tgt")" "$t" "$(awk -v b="$b" -v s="$t" 'BEGIN {printf "%+.1f", s - b}')"
done
echo "    (+backtrace: VRAMGUARD_BACKTRACE=1)"

# ---- 6: render times at RENDER_LIVE live ------------------------------------
for i in $(seq "$RENDER_PROCS"); do
    with 0 "$T/bench_render" render "$RENDER_LIVE" "$RENDER_REPS" - >"$TMP/render.0.$i"
    VRAMGUARD_LOG="$TMP/oom.%p.log" VRAMGUARD_LISTEN="unix:$TMP/vg.%p.sock" \
        with 1 "$T/bench_render" render "$RENDER_LIVE" "$RENDER_REPS" "$TMP/vg.%p.sock" >"$TMP/render.1.$i"
done
"$T/bench_render" exit "$RENDER_LIVE" "$EXIT_REPS" "$SHIM" "$TMP" >"$TMP/exit"
rk() { cat "$TMP"/render."$1".* | awk -v k="$2" '$1 == k {print $2}' | med; }
oom_lines=$(cat "$TMP"/oom.*.log 2>/dev/null | wc -l)

echo
echo "== 6. reports with $RENDER_LIVE live allocations (ms; medians: $RENDER_PROCS processes x $RENDER_REPS requests;" \
    "exit: $EXIT_REPS children each)  $(elapsed)"
printf '%-48s %10s %10s %10s %8s  %s\n' case base shim added target verdict
row6() { # label base shim target
    local a; a=$(awk -v b="$2" -v s="$3" 'BEGIN {printf "%+.3f", (b == "-" ? s : s - b)}')
    printf '%-48s %10s %10s %10s %8s  %s\n' "$1" "$2" "$3" "$a" "${4:+<=$4}" "$([ -n "$4" ] && verdict "$a" "$4")"
}
row6 "GET /vram ($(rk 1 vram_bytes) bytes)" - "$(rk 1 vram_ms)" 3
row6 "GET /metrics ($(rk 1 metrics_bytes) bytes)" - "$(rk 1 metrics_ms)" 1
row6 "vramguard_report() text ($(rk 1 report_bytes) bytes)" - "$(rk 1 report_ms)" ""
row6 "exit, no report (vs no shim)" "$(key "$TMP/exit" exit_none_ms)" "$(key "$TMP/exit" exit_shim_ms)" ""
row6 "exit with VRAMGUARD_REPORT (vs shim, no report)" "$(key "$TMP/exit" exit_shim_ms)" \
    "$(key "$TMP/exit" exit_report_ms)" 8
echo "    (exit: from just before exit() in the child to waitpid() in the parent; report $(key "$TMP/exit" exit_report_bytes) bytes)"
row6 "first out-of-memory failure (breakdown)" "$(rk 0 oom_first_ms)" "$(rk 1 oom_first_ms)" 1
row6 "second out-of-memory failure (one line)" "$(rk 0 oom_second_ms)" "$(rk 1 oom_second_ms)" ""
echo "    (VRAMGUARD_LOG to a file: $oom_lines lines from $RENDER_PROCS processes)"
echo
echo "== done $(elapsed)"

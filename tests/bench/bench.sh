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
#   7. VRAMGUARD_TRACE: instructions and wall time added per event
#
# PASS/FAIL is printed per row against its target; a miss does not fail the
# command. A measurement that fails is shown as "?", its error goes to
# stderr, the other tables are still printed, and the exit status is 1.
# Programs: BUILD_DIR/tests/bench_{alloc,live,render} (tests/bench/bench.mk).
# The caller sets LD_LIBRARY_PATH to the fake driver. Sizes, from the
# environment:
#   N1, N2            callgrind loop lengths (2000, 12000): per pair =
#                     (Ir(N2) - Ir(N1)) / (N2 - N1), so setup and exit cancel
#   LIVE_BIG          the large live set (1000000), also churn's
#   CHURN_OPS         churn operations, each a free and an allocation (2000000)
#   RENDER_LIVE       live allocations for the render times (100000)
#   RENDER_PROCS      processes for the render times (5; one first OOM each)
#   WALL_PAIRS        pairs per repetition of the wall-time runs (20000)
#   WALL_RUNS         interleaved wall-time runs of each kind (9, odd)
#   THREAD_PAIRS      pairs per thread of the thread table's runs (200000; fake driver arenas)
#   BENCH_ONLY        "threads": table 4 alone, from bench_alloc only (no
#                     valgrind needed), fake driver arenas only: the thread
#                     figure on a machine with more cores than threads, e.g.
#                     the GPU host
set -eu
B=$1
SHIM=$(realpath "${2:-$B/libvramguard.so}")
T=$B/tests
N1=${N1:-2000} N2=${N2:-12000}
LIVE_SMALL=1000 LIVE_BIG=${LIVE_BIG:-1000000}
CHURN_OPS=${CHURN_OPS:-2000000}
RENDER_LIVE=${RENDER_LIVE:-100000} RENDER_PROCS=${RENDER_PROCS:-5} RENDER_REPS=7 EXIT_REPS=5
WALL_PAIRS=${WALL_PAIRS:-20000} WALL_RUNS=${WALL_RUNS:-9} THREAD_PAIRS=${THREAD_PAIRS:-200000}
RULES='libfoo*=weights,>=1G=kv_cache,<1K=intermediate'
export FAKECUDA_VRAM_BYTES=1099511627776 # 2^40: a million live allocations (and churn) fit
export VRAMGUARD_LOG=/dev/null
TMP=$(mktemp -d /tmp/vgbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
START=$(date +%s)

ONLY=${BENCH_ONLY:-}
case $ONLY in '' | threads) ;; *) echo "bench.sh: BENCH_ONLY is threads or unset" >&2; exit 2 ;; esac
for p in bench_alloc $([ "$ONLY" = threads ] || echo bench_live bench_render); do
    [ -x "$T/$p" ] || { echo "bench.sh: $T/$p missing (make bench-build)" >&2; exit 1; }
done
[ -f "$SHIM" ] || { echo "bench.sh: no shim at $SHIM" >&2; exit 1; }
[ "$ONLY" = threads ] || command -v valgrind >/dev/null ||
    { echo "bench.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }

# ---- helpers ----------------------------------------------------------------

# fail MESSAGE: a measurement failed (shown as "?"; the exit status becomes 1).
fail() { echo "bench.sh: $*" >&2; touch "$TMP/failed"; }
# with 0|1 CMD...: run CMD without / with the shim preloaded.
with() {
    if [ "$1" = 1 ]; then shift; LD_PRELOAD="$SHIM" "$@"; else shift; "$@"; fi
}
# measure OUT 0|1 CMD...: run CMD (without / with the shim), stdout to OUT.
measure() {
    local out=$1; shift
    with "$@" >"$out" 2>"$out.err" || { fail "$(basename "$2") ${*:3} (shim $1) failed:"; cat "$out.err" >&2; }
}
# cg NAME 0|1 CMD...: start CMD under callgrind in the background (only the
# code between the program's MEASURE_BEGIN/END is instrumented);
# $TMP/NAME.log gets valgrind's log, .out the program's output, .rc its status.
cg() {
    local name=$1 w=$2; shift 2
    if with "$w" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        --log-file="$TMP/$name.log" "$@" >"$TMP/$name.out" 2>&1; then echo 0; else echo $?; fi >"$TMP/$name.rc" &
}
# collected NAME: the Ir total of a finished callgrind run (nothing if it failed).
collected() {
    local n
    n=$(awk '/Collected :/ {print $NF}' "$TMP/$1.log" 2>/dev/null)
    if [ -n "$n" ] && [ "$(cat "$TMP/$1.rc")" = 0 ]; then echo "$n"; return; fi
    fail "callgrind run $1 failed:"
    tail -5 "$TMP/$1.log" "$TMP/$1.out" >&2 2>/dev/null
}
# ir_pair NAME 0|1 CMD-WITHOUT-N...: callgrind the command with N1 and with N2
# (appended), both at once (two cores); prints instructions per pair.
ir_pair() {
    local name=$1 w=$2; shift 2
    cg "$name.n1" "$w" "$@" "$N1"
    cg "$name.n2" "$w" "$@" "$N2"
    wait
    calc %.1f '(b - a) / (n2 - n1)' a="$(collected "$name.n1")" b="$(collected "$name.n2")" n1="$N1" n2="$N2"
}
# calc FORMAT EXPR NAME=VALUE...: awk arithmetic on the named values, or "?"
# when one of them is missing or not a number (a failed measurement).
calc() {
    local fmt=$1 expr=$2 kv args=()
    shift 2
    for kv in "$@"; do
        [[ ${kv#*=} =~ ^[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$ ]] || { echo "?"; return; }
        args+=(-v "$kv")
    done
    awk "${args[@]}" "BEGIN {printf \"$fmt\", ($expr)}"
}
# key FILE KEY: the value of "KEY value" in FILE ("?" if absent or negative).
key() { awk -v k="$2" '$1 == k && $2 >= 0 {v = $2} END {print (v == "" ? "?" : v)}' "$1" 2>/dev/null || echo "?"; }
# verdict VALUE TARGET: PASS when VALUE <= TARGET, "?" when VALUE is not a number.
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v !~ /^[-+]?[0-9.]+$/ ? "?" : ((v + 0 <= t + 0) ? "PASS" : "FAIL"))}'; }
# median of the non-negative numbers on stdin ("?" when there are none)
med() {
    awk '$1 ~ /^[0-9.eE+-]+$/ && $1 >= 0' | sort -g |
        awk '{v[NR] = $1} END {print NR == 0 ? "?" : (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
elapsed() { echo "($(($(date +%s) - START)) s)"; }
# row LABEL BASE SHIM ADDED [TARGET]: one table row, the verdict on ADDED.
row() {
    printf '%-52s %10s %10s %10s %8s  %s\n' "$1" "$2" "$3" "$4" "${5:+<=$5}" "$([ -n "${5:-}" ] && verdict "$4" "$5")"
}
heading() { printf '%-52s %10s %10s %10s %8s  %s\n' "$1" "${2:-base}" "${3:-shim}" "${4:-added}" target verdict; }

echo "== vramguard make bench: $(uname -m), $(nproc) cpus (uname -m, nproc); $(uname -sr)"
echo "   shim: $SHIM (built $(date -r "$SHIM" '+%F %T')); bench checkout:" \
    "$(cd "$(dirname "$0")" && git log -1 --format=%h 2>/dev/null || echo '?')"
echo "   fake CUDA driver (tests/fakecuda), FAKECUDA_VRAM_BYTES=2^40; base = the same program without the shim"

# ---- 4 + 5: wall time, runs interleaved (functions: BENCH_ONLY=threads) ------
# wall_runs [bt]: WALL_RUNS rounds of bench_alloc without and with the shim
# (and with VRAMGUARD_BACKTRACE=1 when asked), interleaved.
# The thread table's runs ("arenas") use the fake driver's per-thread arenas
# (FAKECUDA_THREAD_ARENAS=1: its cuMemAlloc_v2/cuMemFree_v2 share nothing
# between threads), so what does not scale is the shim's; THREAD_PAIRS per
# thread, enough that starting 8 threads is lost in the work.
# BENCH_ONLY=threads runs the arenas only (the default fake's mutex makes a
# pair cost microseconds at 8 threads on a machine with many cores).
wall_runs() {
    for i in $(seq "$WALL_RUNS"); do
        if [ "$ONLY" != threads ]; then
            measure "$TMP/wall.base.$i" 0 "$T/bench_alloc" wall "$WALL_PAIRS"
            measure "$TMP/wall.shim.$i" 1 "$T/bench_alloc" wall "$WALL_PAIRS"
        fi
        [ -z "${1:-}" ] || VRAMGUARD_BACKTRACE=1 measure "$TMP/wall.bt.$i" 1 "$T/bench_alloc" wall "$WALL_PAIRS"
        FAKECUDA_THREAD_ARENAS=1 measure "$TMP/wall.abase.$i" 0 "$T/bench_alloc" wall "$THREAD_PAIRS"
        FAKECUDA_THREAD_ARENAS=1 measure "$TMP/wall.ashim.$i" 1 "$T/bench_alloc" wall "$THREAD_PAIRS"
    done
}
wall() { cat "$TMP"/wall."$1".? "$TMP"/wall."$1".?? 2>/dev/null | awk -v c="$2" '$1 == c {print $2}' | med; }
threads_table() {
    echo
    echo "== 4. threads: ns per pair (wall time / all threads' pairs; median of $WALL_RUNS runs of the median of 11)  $(elapsed)"
    echo "   fake driver with per-thread arenas (FAKECUDA_THREAD_ARENAS=1: nothing shared between threads), $THREAD_PAIRS pairs a thread"
    heading case
    for c in driver runtime; do
        b1=$(wall abase ${c}_1thread); s1=$(wall ashim ${c}_1thread)
        b8=$(wall abase ${c}_8threads); s8=$(wall ashim ${c}_8threads)
        row "$c pair, 1 thread" "$b1" "$s1" "$(calc %+.1f 's - b' b="$b1" s="$s1")"
        row "$c pair, 8 threads" "$b8" "$s8" "$(calc %+.1f 's - b' b="$b8" s="$s8")"
        row "$c: added(8 threads) / added(1 thread)" "" "" \
            "$(calc %.2f '(s1 > b1 ? (s8 - b8) / (s1 - b1) : 0)' b1="$b1" s1="$s1" b8="$b8" s8="$s8")" 2
    done
    # The reference: thread-local busy work in place of the shim, no shim.
    b1=$(wall abase driver_1thread); l1=$(wall abase local_1thread)
    b8=$(wall abase driver_8threads); l8=$(wall abase local_8threads)
    row "reference: driver pair + local work, 1 thread" "$b1" "$l1" "$(calc %+.1f 's - b' b="$b1" s="$l1")"
    row "reference: driver pair + local work, 8 threads" "$b8" "$l8" "$(calc %+.1f 's - b' b="$b8" s="$l8")"
    row "reference: added(8 threads) / added(1 thread)" "" "" \
        "$(calc %.2f '(l1 > b1 ? (l8 - b8) / (l1 - b1) : 0)' b1="$b1" l1="$l1" b8="$b8" l8="$l8")"
    echo "    (reference: busy work that touches nothing shared, in place of the shim, no shim loaded: what"
    echo "     this machine's $(nproc) cores do to work that scales perfectly: ideally 1/min(8, cores) = $(calc %.2f '1 / (n < 8 ? n : 8)' n="$(nproc)"))"
    # The same ratio with the fake driver's one mutex (the default fake; before the arenas, this table's
    # only figure): the mutex serializes the calls, so it says little about the shim.
    [ "$ONLY" = threads ] && return
    for c in driver runtime; do
        b1=$(wall base ${c}_1thread); s1=$(wall shim ${c}_1thread)
        b8=$(wall base ${c}_8threads); s8=$(wall shim ${c}_8threads)
        row "$c, fake driver's one mutex: 8 threads, ratio" "$b8" "$s8" \
            "$(calc %.2f '(s1 > b1 ? (s8 - b8) / (s1 - b1) : 0)' b1="$b1" s1="$s1" b8="$b8" s8="$s8")"
    done
}
if [ "$ONLY" = threads ]; then
    wall_runs
    threads_table
    [ -e "$TMP/failed" ] && exit 1
    exit 0
fi

# ---- 1 + 2: callgrind instructions and driver calls per pair ------------------
declare -A IR CALLS
for c in driver runtime async pool; do
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
heading case
row1() { # label case target
    row "$1" "${IR[$2.0]}" "${IR[$2.1]}" "$(calc %+.1f 's - b' b="${IR[$2.0]}" s="${IR[$2.1]}")" "$3"
}
row1 "(a) cuMemAlloc_v2 + cuMemFree_v2 (driver)" driver 250
row1 "(b) cudaMalloc + cudaFree (static cudart)" runtime 250
row1 "(c) cudaMallocAsync + cudaFreeAsync (stream)" async 350
row1 "(c') cudaMallocFromPoolAsync + cudaFreeAsync" pool 350
row "(d) (a) with VRAMGUARD_PURPOSE_RULES (3 rules)" "${IR[driver.0]}" "${IR[rules.1]}" \
    "$(calc %+.1f 's - b' b="${IR[driver.0]}" s="${IR[rules.1]}")"
row "    rules add (none matches a 4 KiB main-program call)" "" "" \
    "$(calc %+.1f 'r - s' r="${IR[rules.1]}" s="${IR[driver.1]}")" 40
echo "    rules: $RULES"

echo
echo "== 2. driver calls per pair (the fake driver's fakecuda_driver_calls(): every entry point, the shim's own"
echo "      queries included; same loops as table 1)"
heading case base shim "shim's own"
row2() { # label case shim-case
    row "$1" "${CALLS[$2.0]}" "${CALLS[$3]}" "$(calc %+.2f 's - b' b="${CALLS[$2.0]}" s="${CALLS[$3]}")" 0
}
row2 "(a) driver pair" driver driver.1
row2 "(b) runtime pair" runtime runtime.1
row2 "(c) async pair" async async.1
row2 "(c') pool pair" pool pool.1
row2 "(d) driver pair with purpose rules" driver rules.1

# ---- 3: live-set scaling, churn, bytes per live allocation -------------------
for w in 0 1; do
    IR[live.small.$w]=$(ir_pair "live.small.$w" "$w" "$T/bench_live" ir "$LIVE_SMALL")
    IR[live.big.$w]=$(ir_pair "live.big.$w" "$w" "$T/bench_live" ir "$LIVE_BIG")
done
measure "$TMP/churn.0" 0 "$T/bench_live" churn "$LIVE_BIG" "$CHURN_OPS"
measure "$TMP/churn.1" 1 "$T/bench_live" churn "$LIVE_BIG" "$CHURN_OPS"

echo
echo "== 3. live set: instructions per driver pair (callgrind as table 1) with $LIVE_SMALL and $LIVE_BIG live 4 KiB allocations  $(elapsed)"
heading case
row "driver pair, $LIVE_SMALL live" "${IR[live.small.0]}" "${IR[live.small.1]}" \
    "$(calc %+.1f 's - b' b="${IR[live.small.0]}" s="${IR[live.small.1]}")"
row "driver pair, $LIVE_BIG live" "${IR[live.big.0]}" "${IR[live.big.1]}" \
    "$(calc %+.1f 's - b' b="${IR[live.big.0]}" s="${IR[live.big.1]}")"
row "ratio $LIVE_BIG live / $LIVE_SMALL live" \
    "$(calc %.3f 'b / a' a="${IR[live.small.0]}" b="${IR[live.big.0]}")" \
    "$(calc %.3f 'b / a' a="${IR[live.small.1]}" b="${IR[live.big.1]}")" \
    "$(calc %.3f '(a1 > a0 ? (b1 - b0) / (a1 - a0) : 0)' a0="${IR[live.small.0]}" a1="${IR[live.small.1]}" \
        b0="${IR[live.big.0]}" b1="${IR[live.big.1]}")" 1.1
echo "    (the verdict is on the shim's added instructions; base = the fake driver alone)"

echo
echo "-- churn: $LIVE_BIG live, then $CHURN_OPS x (free a random live one, allocate 512 B..64 KiB), every call timed"
heading "single-call latency (ns)"
for phase in build churn; do
    label=$([ $phase = build ] && echo "building up to $LIVE_BIG live" || echo "churn")
    for st in max p999 p99 median; do
        b=$(key "$TMP/churn.0" "${phase}_${st}_ns"); v=$(key "$TMP/churn.1" "${phase}_${st}_ns")
        row "$label: ${st/p999/p99.9}" "$b" "$v" "$(calc %+.0f 's - b' b="$b" s="$v")" \
            "$([ $st = max ] && echo 1000000)"
    done
    row "$label: calls over 1 ms" "$(key "$TMP/churn.0" "${phase}_over_1ms")" "$(key "$TMP/churn.1" "${phase}_over_1ms")" ""
done
echo "    (the verdict: no single call over 1 ms with the shim; involuntary context switches during the churn:"
echo "     base $(key "$TMP/churn.0" churn_nivcsw), shim $(key "$TMP/churn.1" churn_nivcsw); a preempted call counts its wait)"

echo
echo "-- host memory per live allocation: (shim - base) growth since just before the build-up, / $LIVE_BIG"
heading "bytes" base shim "per alloc"
for m in heap_live heap_churn rss_live rss_churn; do
    b=$(key "$TMP/churn.0" $m); v=$(key "$TMP/churn.1" $m)
    label=$(echo $m | sed 's/heap/heap in use (mallinfo2)/; s/rss/RSS (statm)/; s/_live/, at the build-up/; s/_churn/, after the churn/')
    row "$label" "$b" "$v" "$(calc %.1f '(s - b) / n' b="$b" s="$v" n="$LIVE_BIG")" 64
done

# ---- 4 + 5: wall time, runs interleaved -------------------------------------
wall_runs bt
threads_table

echo
echo "== 5. wall time per pair, 1 thread (ns; median of $WALL_RUNS interleaved runs of the median of 11 x $WALL_PAIRS)"
printf '%-52s %10s %10s %10s %8s  %-7s %12s %10s\n' case base shim added target verdict "+backtrace" added
for c in driver runtime async; do
    b=$(wall base ${c}_1thread); s=$(wall shim ${c}_1thread); t=$(wall bt ${c}_1thread)
    a=$(calc %+.1f 's - b' b="$b" s="$s")
    case $c in driver) tgt=60 ;; async) tgt=100 ;; *) tgt= ;; esac
    printf '%-52s %10s %10s %10s %8s  %-7s %12s %10s\n' "$c pair" "$b" "$s" "$a" "${tgt:+<=$tgt}" \
        "$([ -n "$tgt" ] && verdict "$a" "$tgt")" "$t" "$(calc %+.1f 't - b' b="$b" t="$t")"
done
echo "    (+backtrace: VRAMGUARD_BACKTRACE=1)"

# ---- 6: render times at RENDER_LIVE live ------------------------------------
for i in $(seq "$RENDER_PROCS"); do
    measure "$TMP/render.0.$i" 0 "$T/bench_render" render "$RENDER_LIVE" "$RENDER_REPS" -
    VRAMGUARD_LOG="$TMP/oom.%p.log" VRAMGUARD_LISTEN="unix:$TMP/vg.%p.sock" \
        measure "$TMP/render.1.$i" 1 "$T/bench_render" render "$RENDER_LIVE" "$RENDER_REPS" "$TMP/vg.%p.sock"
done
measure "$TMP/exit" 0 "$T/bench_render" exit "$RENDER_LIVE" "$EXIT_REPS" "$SHIM" "$TMP"
rk() { cat "$TMP"/render."$1".? "$TMP"/render."$1".?? 2>/dev/null | awk -v k="$2" '$1 == k {print $2}' | med; }
oom_lines=$(cat "$TMP"/oom.*.log 2>/dev/null | wc -l)

echo
echo "== 6. reports with $RENDER_LIVE live allocations (ms; medians: $RENDER_PROCS processes x $RENDER_REPS requests;" \
    "exit: $EXIT_REPS children each)  $(elapsed)"
heading case
row6() { # label base shim target: base "-" when there is nothing without the shim
    local a
    if [ "$2" = - ]; then a=$(calc %+.3f 's' s="$3"); else a=$(calc %+.3f 's - b' b="$2" s="$3"); fi
    row "$1" "$2" "$3" "$a" "$4"
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
# ---- 7: VRAMGUARD_TRACE's cost (issue 10, section 2) -------------------------
# The same pairs with the trace on and off, runs interleaved; a pair is two
# events (an allocation and its free). The trace goes to $TMP (a file on
# disk, as a user's would), removed after each run.
for i in $(seq "$WALL_RUNS"); do
    measure "$TMP/trace.off.$i" 1 "$T/bench_alloc" wall "$WALL_PAIRS"
    VRAMGUARD_TRACE="$TMP/bench.%p.trace" measure "$TMP/trace.on.$i" 1 "$T/bench_alloc" wall "$WALL_PAIRS"
    rm -f "$TMP"/bench.*.trace
done
for c in driver async; do
    IR[trace.$c]=$(VRAMGUARD_TRACE="$TMP/ir.%p.trace" ir_pair "ir.trace.$c" 1 "$T/bench_alloc" ir "$c")
    rm -f "$TMP"/ir.*.trace
done
twall() { cat "$TMP"/trace."$1".? "$TMP"/trace."$1".?? 2>/dev/null | awk -v c="$2" '$1 == c {print $2}' | med; }

echo
echo "== 7. VRAMGUARD_TRACE: what tracing adds per event (a pair is 2 events: (trace - shim) / 2)  $(elapsed)"
heading case shim "+trace" "per event"
for c in driver async; do
    row "$c pair, instructions (callgrind, as table 1)" "${IR[$c.1]}" "${IR[trace.$c]}" \
        "$(calc %+.1f '(t - s) / 2' s="${IR[$c.1]}" t="${IR[trace.$c]}")"
done
for c in driver_1thread async_1thread driver_8threads; do
    s=$(twall off $c); t=$(twall on $c)
    row "${c/_/ pair, } wall ns (median of $WALL_RUNS)" "$s" "$t" "$(calc %+.1f '(t - s) / 2' s="$s" t="$t")" \
        "$([ $c != driver_8threads ] && echo 60)"
done
echo "    (tracing off costs each hook one branch on a global flag: table 1 measures the shim as it is; the trace"
echo "     is written by a writer thread, or by the allocating thread when its ring of 4096 records is full)"

echo
if [ -e "$TMP/failed" ]; then
    echo "== done $(elapsed); some measurements FAILED (shown as ?; errors on stderr)"
    exit 1
fi
echo "== done $(elapsed)"

#!/bin/bash
# gpu_bench.sh [BUILD_DIR]: `make gpu-bench`, the shim's cost on a real GPU.
# ROUNDS rounds (default 12), after a warm-up round; each runs every case of
# BUILD_DIR/gpu/gpu_bench (tests/gpu/gpu_bench.c) twice without and twice
# with LD_PRELOAD of the shim (A B B A, alternating which goes first), one
# process per measurement. Per case: the median ns per pair without and
# with, and the median of the per-round ratios with/without, against its
# target, and the quartiles of the ratios (their spread: a median of n
# ratios moves by about 1.25 x their spread / sqrt(n)); then every round's
# figures. About 150 s on an H200 (12 rounds). CASES picks the cases (all
# three by default), e.g. CASES=sync4k ROUNDS=40 for the sync pair alone.
# Exit 0 when every measurement ran (a missed target does not fail it).
set -u
B=$(cd "${1:-build}" && pwd)
BIN=$B/gpu/gpu_bench
SHIM=$B/libvramguard.so
ROUNDS=${ROUNDS:-12}
CASES=${CASES:-async4k asyncmixed sync4k}
TMP=$(mktemp -d /tmp/vg-gpubench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
if [ ! -x "$BIN" ] || [ ! -f "$SHIM" ]; then echo "gpu_bench.sh: build first (make gpu-build)" >&2; exit 1; fi

echo "== vramguard gpu-bench: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
echo "   $(uname -m), $(nproc) cpus; $ROUNDS rounds, one process per measurement; shim $SHIM"

# one CASE 0|1: ns per pair of one process, without / with the shim
one() {
    local out
    if [ "$2" = 1 ]; then
        out=$(VRAMGUARD_LOG=/dev/null LD_PRELOAD="$SHIM" timeout -k 5 60 "$BIN" "$1")
    else
        out=$(timeout -k 5 60 "$BIN" "$1")
    fi || { echo "gpu_bench.sh: $1 (shim $2) failed" >&2; return 1; }
    echo "$out" | awk '$1 == "ns_per_pair" {print $2}'
}

FAILED=0
# A warm-up round, not counted: a fresh machine's first processes ran up to
# twice as slow (run 17: the async case's first rounds near 1.2 us, the later
# ones near 0.6 us).
for c in $CASES; do one "$c" 0 >/dev/null; one "$c" 1 >/dev/null; done
# Each round runs A B B A (or B A A B) and takes the mean of each side's
# two processes: a drift that is linear over the round cancels.
for r in $(seq "$ROUNDS"); do
    for c in $CASES; do
        if [ $((r % 2)) = 1 ]; then order="0 1 1 0"; else order="1 0 0 1"; fi
        unset "R_${c}_0" "R_${c}_1"
        for w in $order; do
            v=$(one "$c" "$w") || { FAILED=1; continue; }
            eval "R_${c}_$w=\"\${R_${c}_$w:-} $v\""
        done
        b=$(eval echo "\${R_${c}_0:-}" | awk 'NF == 2 {print ($1 + $2) / 2}')
        s=$(eval echo "\${R_${c}_1:-}" | awk 'NF == 2 {print ($1 + $2) / 2}')
        [ -n "$b" ] && echo "$b" >>"$TMP/$c.0"
        [ -n "$s" ] && echo "$s" >>"$TMP/$c.1"
        [ -n "$b" ] && [ -n "$s" ] && awk -v b="$b" -v s="$s" 'BEGIN {print s / b}' >>"$TMP/$c.ratio"
    done
done

med() { sort -g "$1" 2>/dev/null | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; else print ""}'; }
# quartiles FILE: "q1-q3" of the numbers in FILE (nearest rank)
quartiles() {
    sort -g "$1" 2>/dev/null | awk '{v[NR] = $1} END {if (NR) printf "%.3f-%.3f", v[int((NR + 3) / 4)], v[int((3 * NR + 3) / 4)]}'
}
echo
printf '%-52s %12s %12s %14s %8s  %-7s %s\n' case "without ns" "with ns" "median ratio" target verdict "ratio q1-q3"
for c in $CASES; do
    case $c in
    async4k) label="cudaMallocAsync + cudaFreeAsync, 4 KiB, a stream"; tgt=1.10 ;;
    asyncmixed) label="the same, mixed sizes, 64 live"; tgt=1.10 ;;
    sync4k) label="cudaMalloc + cudaFree, 4 KiB"; tgt=1.03 ;;
    esac
    ratio=$(med "$TMP/$c.ratio")
    v=$(awk -v r="$ratio" -v t="$tgt" 'BEGIN {print (r == "" ? "?" : ((r + 0 <= t + 0) ? "PASS" : "FAIL"))}')
    printf '%-52s %12s %12s %14s %8s  %-7s %s\n' "$label" "$(med "$TMP/$c.0")" "$(med "$TMP/$c.1")" \
        "$(awk -v r="$ratio" 'BEGIN {if (r != "") printf "%.3f", r}')" "<=$tgt" "$v" "$(quartiles "$TMP/$c.ratio")"
done
first=${CASES%% *}
echo "   (ratio: with / without in the same round; $(wc -l <"$TMP/$first.ratio" 2>/dev/null || echo 0) rounds complete)"
# Every round's figures, in round order: a spread or a bimodal case shows here.
for c in $CASES; do
    for f in 0 1 ratio; do
        printf '   %-10s %-7s %s\n' "$c" "$( [ $f = 0 ] && echo without || { [ $f = 1 ] && echo with || echo ratio; })" \
            "$(awk '{printf "%s%.4g", (NR > 1 ? " " : ""), $1}' "$TMP/$c.$f" 2>/dev/null)"
    done
done
exit $FAILED

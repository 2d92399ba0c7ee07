#!/bin/sh
# bench.sh BUILD_DIR BENCH_BINARY [PAIRS]: run the benchmark without and with
# the shim, three times each, interleaved, and print medians (ns per pair)
# and the shim's added cost. Environment (LD_LIBRARY_PATH) is the caller's.
set -eu
B=$1; BIN=$2; PAIRS=${3:-20000}
TMP=$(mktemp -d)
for i in 1 2 3; do
    "$BIN" "$PAIRS" >"$TMP/base.$i"
    VRAMGUARD_LOG=/dev/null LD_PRELOAD="$B/libvramguard.so" "$BIN" "$PAIRS" >"$TMP/shim.$i"
    VRAMGUARD_BACKTRACE=1 VRAMGUARD_LOG=/dev/null LD_PRELOAD="$B/libvramguard.so" "$BIN" "$PAIRS" >"$TMP/bt.$i"
done
echo "vramguard bench: $(uname -m), $(nproc) cpus, $PAIRS pairs x 11 reps per run, 3 runs each; median of medians"
printf '%-18s %12s %12s %12s %8s %14s %12s\n' case "base ns" "shim ns" "added ns" ratio "+backtrace ns" "added ns"
for c in runtime_1thread driver_1thread async_1thread runtime_8threads driver_8threads; do
    base=$(cat "$TMP"/base.* | awk -v c=$c '$1==c{print $2}' | sort -n | sed -n 2p)
    shim=$(cat "$TMP"/shim.* | awk -v c=$c '$1==c{print $2}' | sort -n | sed -n 2p)
    bt=$(cat "$TMP"/bt.* | awk -v c=$c '$1==c{print $2}' | sort -n | sed -n 2p)
    awk -v c=$c -v b="$base" -v s="$shim" -v t="$bt" \
        'BEGIN{printf "%-18s %12.1f %12.1f %12.1f %8.2f %14.1f %12.1f\n", c, b, s, s-b, s/b, t, t-b}'
done
rm -rf "$TMP"

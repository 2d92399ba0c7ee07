"""Real frameworks under the shim, each compared with the framework's own
figure. argv: torch | torch-expandable | cupy | jax | jax-platform.
Prints PASS/FAIL lines and one 'ROW workload|framework figure|shim figure|
difference' line; exits 0 when the run finished without error and the
figures agree within the tolerance stated below."""
import os
import sys

import vramguard

MiB = 1 << 20
which = sys.argv[1]
fails = 0


def check(name, cond, detail=""):
    global fails
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    fails += 0 if cond else 1


def charged():
    u = vramguard.usage()
    return u["charged_bytes"].get(0, 0) if u else 0


def row(workload, figure_name, figure, shim, tolerance):
    diff = shim - figure
    print(f"ROW {workload}|{figure_name}={figure}|shim charged={shim}|diff={diff} ({diff / MiB:+.1f} MiB)", flush=True)
    check(f"{workload}: shim agrees with {figure_name} within {tolerance // MiB} MiB", abs(diff) <= tolerance,
          f"diff {diff}")


check("shim loaded", vramguard.loaded())
if which.startswith("torch"):
    import torch
    with vramguard.purpose("weights"):
        w = torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
    with vramguard.purpose("kv_cache"):
        kv = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda")
    y = (w[: 64 * MiB].float() * 2).sum()
    torch.cuda.synchronize()
    u = vramguard.usage()
    kind = "vmm" if which == "torch-expandable" else "device"
    kinds = u["devices"].get(0, {})
    check(f"torch allocations counted as kind {kind}", kind in kinds, str(list(kinds)))
    check("weights tagged", u["purpose_bytes"]["weights"] >= 512 * MiB, str(u["purpose_bytes"]))
    row(which, "torch.cuda.memory_reserved()", torch.cuda.memory_reserved(), charged(), 2 * MiB)
    del w, kv, y
    torch.cuda.empty_cache()
    row(which + " after empty_cache", "torch.cuda.memory_reserved()", torch.cuda.memory_reserved(), charged(),
        2 * MiB)
elif which == "cupy":
    import cupy as cp
    pool = cp.get_default_memory_pool()
    with vramguard.purpose("weights"):
        a = cp.zeros(256 * MiB, dtype=cp.uint8)
    b = cp.ones(64 * MiB, dtype=cp.float32)
    cp.cuda.Device(0).synchronize()
    check("weights tagged", vramguard.usage()["purpose_bytes"]["weights"] >= 256 * MiB,
          str(vramguard.usage()["purpose_bytes"]))
    row("cupy", "pool.total_bytes()", pool.total_bytes(), charged(), 2 * MiB)
    del a, b
    pool.free_all_blocks()
    row("cupy after free_all_blocks", "pool.total_bytes()", pool.total_bytes(), charged(), 2 * MiB)
elif which.startswith("jax"):
    import jax
    import jax.numpy as jnp
    x = jnp.zeros((256 * MiB // 4,), dtype=jnp.float32)
    y = (x + 1).block_until_ready()
    stats = jax.devices()[0].memory_stats() or {}
    print("jax memory_stats:", {k: v for k, v in stats.items() if "bytes" in k}, flush=True)
    u = vramguard.usage()
    print("shim kinds on device 0:", {k: sum(c["live_bytes"] for c in v.values())
                                      for k, v in u["devices"].get(0, {}).items()}, flush=True)
    if which == "jax":
        # The BFC allocator reserves its pool up front (bytes_limit).
        figure = stats.get("pool_bytes", stats.get("bytes_reserved", stats.get("bytes_limit", 0)))
        row("jax (BFC, preallocate)", "memory_stats pool/limit", figure, charged(), 64 * MiB)
    else:
        # The platform allocator allocates on demand and keeps no statistics:
        # compare with the arrays that are alive.
        row("jax (platform allocator)", "x.nbytes + y.nbytes", x.nbytes + y.nbytes, charged(), 64 * MiB)
    del x, y
print(f"frameworks {which}: {'FAILED' if fails else 'ok'}", flush=True)
sys.exit(1 if fails else 0)

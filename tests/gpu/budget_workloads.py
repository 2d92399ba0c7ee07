"""Workloads for the budget rows of run_gpu_tests.sh (issue 8, section 3):
argv torch_oom | jax_meminfo. Prints PASS/FAIL lines; exit 0 when they pass.

torch_oom    under VRAMGUARD_LIMIT=total=2G: 256 MiB tensors until PyTorch
             raises torch.OutOfMemoryError (the budget refusal is code 2,
             which PyTorch retries after freeing its cache, then raises)
jax_meminfo  under VRAMGUARD_LIMIT=total=4G VRAMGUARD_LIMIT_MEMINFO=1: XLA
             sizes its preallocation from cuMemGetInfo's total, so it must
             land inside the budget
"""
import sys

import vramguard

which = sys.argv[1]
fails = 0


def check(name, cond, detail=""):
    global fails
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    fails += 0 if cond else 1


def charged():
    u = vramguard.usage()
    return u["charged_bytes"].get(0, 0) if u else -1


GiB = 1 << 30
if which == "torch_oom":
    import torch
    kept = []
    err = None
    try:
        for _ in range(64):
            kept.append(torch.empty(256 << 20, dtype=torch.uint8, device="cuda"))
    except torch.OutOfMemoryError as exc:
        err = exc
    check("torch.OutOfMemoryError under a 2 GiB budget", err is not None, "no error after %d tensors" % len(kept))
    got = len(kept) * (256 << 20)
    check("what PyTorch got fits the budget", got <= 2 * GiB, "%d bytes" % got)
    check("the shim's charged VRAM fits the budget", 0 <= charged() <= 2 * GiB, "%d bytes" % charged())
    print("ROW torch budget 2 GiB|tensors=%d|got=%d|shim charged=%d|%s" % (
        len(kept), got, charged(), str(err).splitlines()[0][:100] if err else "no error"), flush=True)
elif which == "jax_meminfo":
    import jax
    import jax.numpy as jnp
    x = jnp.ones((1 << 20,), dtype=jnp.float32).block_until_ready()
    stats = jax.devices()[0].memory_stats() or {}
    limit = stats.get("bytes_limit", -1)
    check("JAX ran", float(x.sum()) == float(1 << 20))
    check("XLA's pool limit fits the 4 GiB budget", 0 < limit <= 4 * GiB, "bytes_limit %d" % limit)
    check("the shim's charged VRAM fits the budget", 0 <= charged() <= 4 * GiB, "%d bytes" % charged())
    print("ROW jax meminfo budget 4 GiB|bytes_limit=%d|shim charged=%d" % (limit, charged()), flush=True)
else:
    sys.exit("argv: torch_oom | jax_meminfo")
sys.exit(1 if fails else 0)

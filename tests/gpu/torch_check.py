"""PyTorch under the shim: torch.empty on the GPU is counted and matches the
caching allocator's reserved bytes; pin_memory() is refused by default with a
readable error and works with VRAMGUARD_ALLOW=pinned. argv[1]: reject|pinned.
Prints PASS/FAIL lines, ROW lines for the table, exits 0 when all pass."""
import ctypes
import sys

import torch

mode = sys.argv[1] if len(sys.argv) > 1 else "reject"
fails = 0


def check(name, cond, detail=""):
    global fails
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    fails += 0 if cond else 1


class Cell(ctypes.Structure):
    _fields_ = [("live_bytes", ctypes.c_uint64), ("live_count", ctypes.c_uint64), ("peak_bytes", ctypes.c_uint64)]


class Usage(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint64), ("device_count", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("vram_bytes", ctypes.c_uint64), ("violations", ctypes.c_uint64), ("oom_events", ctypes.c_uint64),
                ("purpose_bytes", ctypes.c_uint64 * 8), ("cell", Cell * 8 * 8 * 16)]


lib = ctypes.CDLL(None)
try:
    usage_fn = lib.vramguard_shim_usage
except AttributeError:
    print("FAIL the vramguard shim is not loaded")
    sys.exit(2)


def usage():
    u = Usage()
    u.size = ctypes.sizeof(u)
    assert usage_fn(ctypes.byref(u)) == 0
    return u


def pinned_bytes(u):
    return sum(u.cell[d][1][p].live_bytes for d in range(16) for p in range(8))


MiB = 1 << 20
torch.zeros(1, device="cuda")
torch.cuda.synchronize()
u0, r0 = usage().vram_bytes, torch.cuda.memory_reserved()
x = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda")
torch.cuda.synchronize()
u1, r1 = usage().vram_bytes, torch.cuda.memory_reserved()
check("torch.empty(256 MiB) counted", u1 - u0 == r1 - r0 and u1 - u0 >= 256 * MiB,
      f"shim delta {u1 - u0}, reserved delta {r1 - r0}")
check("shim VRAM equals torch.cuda.memory_reserved()", u1 == r1, f"shim {u1}, torch {r1}")
print(f"ROW torch reserved vs shim|torch.cuda.memory_reserved()={r1} shim={u1} diff={u1 - r1}")

push = lib.vramguard_shim_purpose_push
push.argtypes = [ctypes.c_int, ctypes.c_char_p]
push(1, b"torch-weights")
w = torch.empty(64 * MiB, dtype=torch.uint8, device="cuda")
lib.vramguard_shim_purpose_pop()
check("purpose pushed from Python tags the new segment", usage().purpose_bytes[1] >= 64 * MiB,
      f"weights {usage().purpose_bytes[1]}")

p0 = pinned_bytes(usage())
try:
    t = torch.empty(MiB, dtype=torch.uint8).pin_memory()
    pinned_ok, message = True, ""
except RuntimeError as e:
    pinned_ok, message = False, str(e).splitlines()[0]
if mode == "pinned":
    check("pin_memory works with VRAMGUARD_ALLOW=pinned", pinned_ok, message)
    check("pinned buffer counted as host_pinned", pinned_bytes(usage()) - p0 >= MiB, f"{pinned_bytes(usage()) - p0}")
    print(f"ROW torch pin_memory (allow pinned)|ok, host_pinned +{pinned_bytes(usage()) - p0} bytes")
else:
    check("pin_memory refused by default", not pinned_ok, "it succeeded")
    check("the error is readable", "not permitted" in message.lower(), message)
    print(f"ROW torch pin_memory (reject)|RuntimeError: {message}")
del x, w
sys.exit(1 if fails else 0)

"""vramguard: purpose tags and live VRAM numbers for Python programs run under
the vramguard shim (``LD_PRELOAD=libvramguard.so``).

The Python twin of ``purpose_tags/vramguard.h``: standard library only
(ctypes), no build step, no link dependency. The shim's exported functions
(``vramguard_shim_*``) are looked up once, in the whole process
(``ctypes.CDLL(None)``). Without the shim every function here is a cheap,
harmless no-op: ``loaded()`` is False, ``purpose()`` does nothing,
``usage()`` is None, ``report()`` is "" and ``verify_residency()`` is 0, so
the same program runs with and without it.

    import vramguard

    with vramguard.purpose("kv_cache", label="layer.0"):
        kv = torch.empty(n, device="cuda")     # new segments: kv_cache
                                               # label "layer.0 @ serve.py:42"

    @vramguard.purpose(vramguard.WEIGHTS)
    def load_weights(): ...

    u = vramguard.usage()   # {"vram_bytes": ..., "purpose_bytes": {...}, ...}
    print(vramguard.report())

Purposes: "unknown" (the default), "weights", "kv_cache", "intermediate", or
the constants UNKNOWN, WEIGHTS, KV_CACHE, INTERMEDIATE (0..3, as in the C
header). Anything else raises ValueError before anything is pushed.

Who opened the scope: the label also names the Python line that opened it
(the ``with`` statement, the call of a decorated function, the ``push()``),
as ``LABEL @ FILE:LINE`` (``@ FILE:LINE`` without a label; FILE is the base
name), so every output that shows an allocation's label shows that line
beside it: the native stack of a Python program ends in the interpreter.
The shim keeps 63 bytes of a label: a long label is cut, the line is kept.
``frame=False`` leaves it out. Each distinct label takes one of the shim's
255 label slots (then "(other labels)").

Tags are per thread: a purpose pushed on one thread does not tag allocations
made by another thread (a DataLoader worker thread, a CUDA graph capture on
another thread...). Push the purpose on the thread that allocates.

Caching allocators: PyTorch's and CuPy's allocators request memory from the
CUDA driver in segments (blocks of several MiB, or more with
``expandable_segments``) and serve tensors/arrays out of them. vramguard sees
the driver calls, so a purpose applies to the segments *created* while it is
pushed. A tensor allocated inside the block but served from an already-cached
segment keeps that segment's purpose (the one in force when the segment was
created), and memory freed to the cache stays charged to its purpose until
the allocator returns it to the driver (``torch.cuda.empty_cache()``,
``cupy.get_default_memory_pool().free_all_blocks()``). To tag reliably, tag
the first allocations of each kind (load the weights, then size the KV cache)
or empty the cache before a tagged phase.
"""

import contextlib
import ctypes
import os
import sys

__all__ = [
    "UNKNOWN", "WEIGHTS", "KV_CACHE", "INTERMEDIATE",
    "PURPOSES", "KINDS", "MAX_DEVICES", "KIND_SLOTS", "PURPOSE_SLOTS",
    "loaded", "version", "push", "pop", "purpose", "usage", "report",
    "verify_residency",
]

# Purposes (the header's VRAMGUARD_*).
UNKNOWN = 0
WEIGHTS = 1
KV_CACHE = 2
INTERMEDIATE = 3

# Names of purpose slots 0..3 and kind slots 0..7 (the shim's own names).
PURPOSES = ("unknown", "weights", "kv_cache", "intermediate")
KINDS = ("device", "host_pinned", "managed", "pool", "vmm", "array",
         "host_registered", "imported")

MAX_DEVICES = 16
KIND_SLOTS = 8
PURPOSE_SLOTS = 8

_PURPOSE_BY_NAME = {name: i for i, name in enumerate(PURPOSES)}


class _Cell(ctypes.Structure):
    _fields_ = [
        ("live_bytes", ctypes.c_uint64),
        ("live_count", ctypes.c_uint64),
        ("peak_bytes", ctypes.c_uint64),
    ]


class _Usage(ctypes.Structure):
    """struct vramguard_usage, field for field."""
    _fields_ = [
        ("size", ctypes.c_uint64),
        ("device_count", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("vram_bytes", ctypes.c_uint64),
        ("violations", ctypes.c_uint64),
        ("oom_events", ctypes.c_uint64),
        ("purpose_bytes", ctypes.c_uint64 * PURPOSE_SLOTS),
        ("cell", _Cell * PURPOSE_SLOTS * KIND_SLOTS * MAX_DEVICES),
        ("charged_bytes", ctypes.c_uint64 * MAX_DEVICES),
        ("pool_reserved_bytes", ctypes.c_uint64 * MAX_DEVICES),
        ("graph_reserved_bytes", ctypes.c_uint64 * MAX_DEVICES),
    ]


class _Shim:
    """The shim's functions, or None for each when the shim is absent."""

    def __init__(self):
        self.version = self.push = self.pop = None
        self.usage = self.report = self.verify = None
        try:
            process = ctypes.CDLL(None)
        except OSError:
            return
        try:
            version = process.vramguard_shim_version
            push = process.vramguard_shim_purpose_push
            pop = process.vramguard_shim_purpose_pop
            use = process.vramguard_shim_usage
            rep = process.vramguard_shim_report
            verify = process.vramguard_shim_verify_residency
        except AttributeError:
            return          # not loaded (or too old a shim): all no-ops
        version.argtypes, version.restype = [], ctypes.c_char_p
        push.argtypes, push.restype = [ctypes.c_int, ctypes.c_char_p], ctypes.c_int
        pop.argtypes, pop.restype = [], ctypes.c_int
        use.argtypes, use.restype = [ctypes.POINTER(_Usage)], ctypes.c_int
        rep.argtypes, rep.restype = [ctypes.c_char_p, ctypes.c_size_t], ctypes.c_size_t
        verify.argtypes, verify.restype = [], ctypes.c_int
        self.version, self.push, self.pop = version, push, pop
        self.usage, self.report, self.verify = use, rep, verify


_shim = None


def _get():
    # Resolved once, on first use (like the header's per-unit resolution).
    # Benign race: two threads may both build a _Shim; either is correct.
    global _shim
    if _shim is None:
        _shim = _Shim()
    return _shim


def _purpose_number(p):
    if isinstance(p, bool):
        raise ValueError("vramguard: invalid purpose %r" % (p,))
    if isinstance(p, int):
        if 0 <= p < len(PURPOSES):
            return p
    elif isinstance(p, str):
        if p in _PURPOSE_BY_NAME:
            return _PURPOSE_BY_NAME[p]
    raise ValueError("vramguard: invalid purpose %r (accepted: %s, or %d..%d)"
                     % (p, ", ".join(PURPOSES), 0, len(PURPOSES) - 1))


def _label_bytes(label):
    if label is None:
        return None
    if isinstance(label, bytes):
        return label
    if isinstance(label, str):
        return label.encode("utf-8", "replace")
    raise TypeError("vramguard: label must be str, bytes or None, not %s"
                    % type(label).__name__)


LABEL_MAX = 63     # bytes of a label the shim keeps (VG_LABEL_MAX - 1)

# Frames of these files are passed over to find the line that opened a
# scope: this module's own, and contextlib's (a decorated function's wrapper).
_PASSED_OVER = frozenset((_purpose_number.__code__.co_filename,
                          contextlib.contextmanager.__code__.co_filename))


def _opened_at():
    """FILE:LINE of the code that opened the scope: the first frame outside
    this module and contextlib."""
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename in _PASSED_OVER:
        f = f.f_back
    if f is None:
        return None
    return "%s:%d" % (os.path.basename(f.f_code.co_filename), f.f_lineno)


def _label_with_frame(raw, where):
    """The label the shim gets: "LABEL @ FILE:LINE" within LABEL_MAX bytes
    (the label cut, at a character boundary, so that the line stays)."""
    if where is None:
        return raw
    tail = ("@ " + where).encode("utf-8", "replace")[:LABEL_MAX]
    if not raw:
        return tail
    room = LABEL_MAX - len(tail) - 1
    if room <= 0:
        return tail
    head = raw[:room].decode("utf-8", "ignore").encode("utf-8")
    return head + b" " + tail


def loaded():
    """Is the shim loaded in this process?"""
    return _get().version is not None


def version():
    """The shim's version string, or None without the shim."""
    f = _get().version
    if f is None:
        return None
    v = f()
    return v.decode("utf-8", "replace") if v is not None else None


def push(purpose, label=None, frame=True):
    """Push a purpose (and an optional label, copied by the shim) for the
    allocations this thread makes until the matching pop(). With `frame`,
    the label also names the line that called push() ("LABEL @ FILE:LINE").
    Returns the new depth, 0 without the shim. ValueError for an invalid
    purpose (nothing is pushed). Prefer ``with purpose(...)``, which always
    pops."""
    number = _purpose_number(purpose)
    raw = _label_bytes(label)
    f = _get().push
    if f is None:
        return 0
    return f(number, _label_with_frame(raw, _opened_at() if frame else None))


def pop():
    """Pop this thread's innermost purpose. Returns the new depth (0 without
    the shim)."""
    f = _get().pop
    return f() if f is not None else 0


class purpose(contextlib.ContextDecorator):
    """Tag the allocations made by this thread inside a ``with`` block, or
    during every call of a decorated function::

        with vramguard.purpose("kv_cache", "kv"): ...
        @vramguard.purpose(vramguard.WEIGHTS, label="load")
        def load(): ...

    The purpose is checked here (ValueError before anything is pushed); it is
    pushed in ``__enter__`` and popped in ``__exit__``, also when the block
    raises (the exception propagates). With `frame` (the default) the label
    also names the line that opened the scope ("LABEL @ FILE:LINE": the
    ``with`` statement, or the call of the decorated function). The object
    holds no state between enter and exit (the stack lives in the shim, per
    thread), so one instance can be entered recursively, from several
    threads, and as a decorator. Without the shim it does nothing."""

    __slots__ = ("number", "label", "frame", "_raw")

    def __init__(self, purpose, label=None, frame=True):
        self.number = _purpose_number(purpose)
        self.label = label
        self.frame = bool(frame)
        self._raw = _label_bytes(label)

    def __enter__(self):
        f = _get().push
        if f is not None:
            f(self.number, _label_with_frame(self._raw, _opened_at() if self.frame else None))
        return self

    def __exit__(self, exc_type, exc, tb):
        f = _get().pop
        if f is not None:
            f()
        return False

    def __repr__(self):
        return "vramguard.purpose(%r, %r)" % (PURPOSES[self.number], self.label)


def _purpose_name(p):
    return PURPOSES[p] if p < len(PURPOSES) else "purpose_%d" % p


def usage():
    """Live numbers, or None without the shim::

        {"vram_bytes": int,          # live VRAM (kind device), all devices
         "violations": int,          # policy violations so far
         "oom_events": int,          # out-of-memory failures so far
         "purpose_bytes": {"unknown": int, "weights": int,
                           "kv_cache": int, "intermediate": int},
         "devices": {0: {"device": {"kv_cache": {"live_bytes": int,
                                                 "live_count": int,
                                                 "peak_bytes": int}}}}}

    ``purpose_bytes`` always has the four purposes (live VRAM, all devices).
    ``charged_bytes``, ``pool_reserved_bytes`` and ``graph_reserved_bytes``
    map each device index to what its VRAM is charged with (live allocations
    outside pools + device pools' reserve + graph-pool reserve) and to the
    two reserves as the driver reports them.
    ``devices`` has every device index below the shim's device count (highest
    index seen + 1); under each, only kinds and purposes whose cell is not
    all zero (a freed allocation leaves its peak, so its cell stays)."""
    f = _get().usage
    if f is None:
        return None
    u = _Usage()
    u.size = ctypes.sizeof(_Usage)
    if f(ctypes.byref(u)) != 0:
        return None
    purpose_bytes = {}
    for p in range(PURPOSE_SLOTS):
        if p < len(PURPOSES) or u.purpose_bytes[p]:
            purpose_bytes[_purpose_name(p)] = int(u.purpose_bytes[p])
    devices = {}
    for d in range(min(int(u.device_count), MAX_DEVICES)):
        kinds = {}
        for k in range(KIND_SLOTS):
            row = u.cell[d][k]
            purposes = {}
            for p in range(PURPOSE_SLOTS):
                c = row[p]
                if c.live_bytes or c.live_count or c.peak_bytes:
                    purposes[_purpose_name(p)] = {
                        "live_bytes": int(c.live_bytes),
                        "live_count": int(c.live_count),
                        "peak_bytes": int(c.peak_bytes),
                    }
            if purposes:
                kinds[KINDS[k]] = purposes
        devices[d] = kinds
    n_devices = min(int(u.device_count), MAX_DEVICES)
    return {
        "vram_bytes": int(u.vram_bytes),
        "violations": int(u.violations),
        "oom_events": int(u.oom_events),
        "purpose_bytes": purpose_bytes,
        "devices": devices,
        "charged_bytes": {d: int(u.charged_bytes[d]) for d in range(n_devices)},
        "pool_reserved_bytes": {d: int(u.pool_reserved_bytes[d]) for d in range(n_devices)},
        "graph_reserved_bytes": {d: int(u.graph_reserved_bytes[d]) for d in range(n_devices)},
    }


_REPORT_START = 16384     # first buffer size; report() grows it as needed


def report():
    """The shim's text breakdown by device, kind and purpose, with the
    largest live allocations; "" without the shim."""
    f = _get().report
    if f is None:
        return ""
    size = _REPORT_START
    for _ in range(8):
        buf = ctypes.create_string_buffer(size)
        need = f(buf, size)
        if need < size:
            return buf.raw[:need].decode("utf-8", "replace")
        size = need + 4096     # the text may grow between two calls
    return buf.value.decode("utf-8", "replace")


def verify_residency():
    """Check every live tracked allocation with the driver: it must be device
    memory and not managed. Returns the number of offenders (each is named in
    the shim's log), 0 without the shim."""
    f = _get().verify
    return int(f()) if f is not None else 0

#!/usr/bin/env python3
"""List every allocation-related CUDA driver entry point and how vramguard
handles it: wrapped by the shim, or passed through (shim/passthrough_points.def,
one row with its reason per name). No silent holes: a name of cuda.h that
concerns memory allocation and is in neither list fails `--check` and the test
tests/python/test_entry_points.py.

    scripts/list_entry_points.py [CUDA_H]                    the names, one a line
    scripts/list_entry_points.py [CUDA_H] --check [DEF]      exit 1 naming holes
    scripts/list_entry_points.py [CUDA_H] --markdown [DEF] > docs/entry-points.md

CUDA_H defaults to $CUDA_HOME/include/cuda.h (CUDA_HOME: /usr/local/cuda);
DEF to shim/passthrough_points.def next to this script.

Names are exported symbols, not the macros an application sees: cuda.h
`#define cuMemAlloc cuMemAlloc_v2` and `#define cuMemAllocAsync
__CUDA_API_PTSZ(cuMemAllocAsync)`, and redeclares the legacy names (32-bit
`cuMemAlloc`, plain `cuMemHostRegister`...) for __CUDA_API_VERSION_INTERNAL.
Each of `cuMemAlloc`, `cuMemAlloc_v2`, `cuMemAllocAsync`,
`cuMemAllocAsync_ptsz` is its own row: libcuda exports every one of them and
cuGetProcAddress/dlsym can hand any of them out.

What counts as allocation-related (generously, ALLOCATION_PATTERNS): allocating
and freeing in every form (device, pitched, host-pinned, managed, stream-ordered,
pools, VMM, arrays, graph memory nodes and the graph pool); registration,
mapping, import and export of memory (host registration, IPC, external memory,
shareable handles, multicast, graphics interop mapping, dma-buf); managed-memory
movement (prefetch, advise, discard, stream attach); memory information
(cuMemGetInfo, address ranges, pointer attributes, granularity); driver memory
taken at module/library load (code and __device__/__managed__ globals) and by
cuCtxSetLimit (device malloc heap, stack); whole-process checkpoint/restore;
and the graph and stream-capture calls that turn allocations into graph memory.

Deliberately left out (they neither create, free, move nor describe memory
ownership): copies and memsets (cuMemcpy*, cuMemset*, graph memcpy/memset
nodes, cuMemBatchDecompressAsync: they read and write memory that is already
allocated, so no byte of VRAM changes hands); stream memory operations
(cuStreamWriteValue*, cuStreamBatchMemOp: 32/64-bit writes); texture and surface
references/objects (they bind existing memory); context creation and peer
access (driver overhead and mappings of existing allocations, not allocations
of the program; NVML shows context memory in the OOM dump's untracked
remainder).
"""

import argparse
import os
import re
import sys

# ---- the one list of names the shim wraps (name -> what it accounts) ------

WRAPPED = {
    "cuGetProcAddress": "way in: legacy 4-argument lookup hands out the wrappers",
    "cuGetProcAddress_v2": "way in: lookup (self-lookup included) hands out the wrappers",
    "cuInit": "driver start; tracking begins",
    "cuMemAlloc": "device memory (legacy 32-bit prototype)",
    "cuMemAlloc_v2": "device memory",
    "cuMemGetInfo": "memory information: the VRAM budget under VRAMGUARD_LIMIT_MEMINFO=1 (legacy 32-bit prototype)",
    "cuMemGetInfo_v2": "memory information: the VRAM budget under VRAMGUARD_LIMIT_MEMINFO=1",
    "cuMemAllocPitch": "pitched device memory (legacy 32-bit prototype)",
    "cuMemAllocPitch_v2": "pitched device memory",
    "cuMemFree": "free (legacy 32-bit prototype)",
    "cuMemFree_v2": "free of device and managed memory",
    "cuMemAllocHost": "host-pinned memory: refused by policy (legacy prototype)",
    "cuMemAllocHost_v2": "host-pinned memory: refused by policy",
    "cuMemHostAlloc": "host-pinned memory: refused by policy",
    "cuMemFreeHost": "free of host-pinned memory",
    "cuMemAllocManaged": "managed memory: refused by policy",
    "cuMemAllocAsync": "stream-ordered allocation from the device's current pool",
    "cuMemAllocAsync_ptsz": "stream-ordered allocation (per-thread default stream)",
    "cuMemAllocFromPoolAsync": "stream-ordered allocation from a given pool",
    "cuMemAllocFromPoolAsync_ptsz": "stream-ordered allocation from a pool (per-thread default stream)",
    "cuMemFreeAsync": "stream-ordered free",
    "cuMemFreeAsync_ptsz": "stream-ordered free (per-thread default stream)",
    "cuMemPoolCreate": "pool classified by location and type where it is created",
    "cuMemPoolDestroy": "pool forgotten",
    "cuDeviceGetDefaultMemPool": "pool classified where obtained",
    "cuDeviceGetMemPool": "pool classified where obtained",
    "cuDeviceSetMemPool": "the device's current pool",
    "cuMemGetDefaultMemPool": "pool classified where obtained (per location and type)",
    "cuMemGetMemPool": "pool classified where obtained",
    "cuMemSetMemPool": "current pool per location and type",
    "cuMemPoolImportFromShareableHandle": "imported pool classified",
    "cuMemPoolImportPointer": "allocation imported from another process's pool",
    "cuMemCreate": "VMM physical memory (location checked)",
    "cuMemRelease": "VMM physical memory released",
    "cuMemMap": "VMM mapping of a handle",
    "cuMemUnmap": "VMM unmapping",
    "cuMemAddressReserve": "VMM address range",
    "cuMemAddressFree": "VMM address range freed",
    "cuMemRetainAllocationHandle": "extra reference on a VMM handle",
    "cuMemExportToShareableHandle": "VMM handle exported",
    "cuMemImportFromShareableHandle": "VMM handle imported",
    "cuMemMapArrayAsync": "VMM handles mapped into or unmapped from sparse and deferred-mapping arrays",
    "cuMemMapArrayAsync_ptsz": "VMM handles mapped into or unmapped from sparse and deferred-mapping arrays (per-thread default stream)",
    "cuArrayCreate": "CUDA array (legacy descriptor with 32-bit sizes)",
    "cuArrayCreate_v2": "CUDA array",
    "cuArray3DCreate": "CUDA 3D array; sparse and deferred-mapping ones are charged 0 (legacy descriptor with 32-bit sizes)",
    "cuArray3DCreate_v2": "CUDA 3D array; sparse and deferred-mapping ones are charged 0 (their memory is mapped VMM handles)",
    "cuMipmappedArrayCreate": "mipmapped array; sparse and deferred-mapping ones are charged 0",
    "cuArrayDestroy": "array freed; VMM handles mapped into it unmapped",
    "cuMipmappedArrayDestroy": "mipmapped array freed; VMM handles mapped into it unmapped",
    "cuMemHostRegister": "host registration: refused by policy (legacy)",
    "cuMemHostRegister_v2": "host registration: refused by policy",
    "cuMemHostUnregister": "host registration removed",
    "cuIpcOpenMemHandle": "another process's allocation mapped (legacy)",
    "cuIpcOpenMemHandle_v2": "another process's allocation mapped",
    "cuIpcCloseMemHandle": "IPC mapping closed",
    "cuImportExternalMemory": "external memory imported",
    "cuExternalMemoryGetMappedBuffer": "buffer mapped from external memory",
    "cuDestroyExternalMemory": "external memory released",
    "cuGraphAddMemAllocNode": "graph memory allocation node",
    "cuGraphAddMemFreeNode": "graph memory free node",
    "cuGraphAddNode": "generic node add, for memory alloc/free node parameters",
    "cuGraphAddNode_v2": "generic node add, for memory alloc/free node parameters",
    "cuDeviceGraphMemTrim": "graph pool trimmed",
    "cuModuleGetGlobal": "a module global found: a __managed__ one is reported as a violation (legacy 32-bit)",
    "cuModuleGetGlobal_v2": "a module global found: a __managed__ one is reported as a violation",
    "cuLibraryGetGlobal": "a library global found: a __managed__ one is reported as a violation",
    "cuLibraryGetManaged": "a __managed__ library global found: reported as a violation (never refused)",
    "cuCtxSetCurrent": "this thread's current device is re-learned at its next allocation",
    "cuCtxPushCurrent": "this thread's current device is re-learned at its next allocation (legacy)",
    "cuCtxPushCurrent_v2": "this thread's current device is re-learned at its next allocation",
    "cuCtxPopCurrent": "this thread's current device is re-learned at its next allocation (legacy)",
    "cuCtxPopCurrent_v2": "this thread's current device is re-learned at its next allocation",
    "cuCtxCreate": "a context that owns what is allocated in it; this thread re-learns its device (legacy)",
    "cuCtxCreate_v2": "a context that owns what is allocated in it; this thread re-learns its device",
    "cuCtxCreate_v3": "a context that owns what is allocated in it; this thread re-learns its device",
    "cuCtxCreate_v4": "a context that owns what is allocated in it; this thread re-learns its device",
    "cuCtxDestroy": "what the context owned is dropped (freed by the driver); every thread re-learns (legacy)",
    "cuCtxDestroy_v2": "what the context owned is dropped (freed by the driver); every thread re-learns",
    "cuDevicePrimaryCtxRetain": "the primary context, which owns what is allocated in it",
    "cuDevicePrimaryCtxRelease": "the last release ends the primary context: what it owned is dropped (legacy)",
    "cuDevicePrimaryCtxRelease_v2": "the last release ends the primary context: what it owned is dropped",
    "cuDevicePrimaryCtxReset": "what the primary context owned is dropped (cudaDeviceReset) (legacy)",
    "cuDevicePrimaryCtxReset_v2": "what the primary context owned is dropped (cudaDeviceReset)",
    "cuGreenCtxCreate": "a green context: what is allocated in it belongs to its device's primary context",
    "cuCtxFromGreenCtx": "the context handle of a green context",
    "cuGreenCtxDestroy": "releases the primary context: its last release drops what it owned",
    "cuStreamDestroy": "every thread re-learns its streams (the handle may come back) (legacy)",
    "cuStreamDestroy_v2": "every thread re-learns its streams (the handle may come back)",
    "cuStreamEndCapture": "capture uncounted",
    "cuStreamEndCapture_ptsz": "capture uncounted",
    "cuStreamBeginCapture": "capture counted: while none is in progress no stream is asked whether it captures (legacy)",
    "cuStreamBeginCapture_ptsz": "capture counted: while none is in progress no stream is asked whether it captures (legacy)",
    "cuStreamBeginCapture_v2": "capture counted: while none is in progress no stream is asked whether it captures",
    "cuStreamBeginCapture_v2_ptsz": "capture counted: while none is in progress no stream is asked whether it captures",
    "cuStreamBeginCaptureToGraph": "capture counted: while none is in progress no stream is asked whether it captures",
    "cuStreamBeginCaptureToGraph_ptsz": "capture counted: while none is in progress no stream is asked whether it captures",
}

# ---- what counts as allocation-related (full-name regexes) ----------------

ALLOCATION_PATTERNS = [
    # allocate, free, host-pinned, registration
    r"cuMemAlloc\w*", r"cuMemFree\w*", r"cuMemHost\w*",
    # stream-ordered pools
    r"cuMemPool\w*", r"cu(Mem|Device)(Get|Set)(Default)?MemPool",
    # virtual memory management, shareable handles, dma-buf
    r"cuMem(Create|Release|Map|MapArrayAsync|Unmap|Address\w+|SetAccess|GetAccess"
    r"|RetainAllocationHandle|GetAllocation\w+|ExportToShareableHandle"
    r"|ImportFromShareableHandle|GetHandleForAddressRange)(_\w+)?",
    r"cuMulticast\w*",
    # IPC and external memory
    r"cuIpc\w*Mem\w*", r"cu(Import|Destroy)ExternalMemory\w*", r"cuExternalMemory\w*",
    # arrays
    r"cuArray\w*", r"cuMipmappedArray\w*",
    # graph memory nodes, the graph pool, and what allocates from it
    r"cuGraph\w*Mem(Alloc|Free)\w*", r"cuDevice\w*GraphMem\w*",
    r"cuGraph(Exec)?NodeSetParams\w*", r"cuGraphAddNode\w*", r"cuGraphInstantiate\w*",
    r"cuGraphUpload\w*", r"cuGraphLaunch\w*", r"cuGraphExecDestroy", r"cuGraphDestroyNode",
    r"cuGraphClone", r"cuStreamBeginCapture\w*",
    # managed-memory movement
    r"cuMemAdvise\w*", r"cuMemPrefetch\w*", r"cuMemDiscard\w*", r"cuStreamAttachMemAsync\w*",
    # memory information
    r"cuMemGetInfo\w*", r"cuDeviceTotalMem\w*", r"cuMemGetAddressRange\w*",
    r"cuPointer(Get|Set)Attributes?", r"cuMemRangeGetAttributes?",
    # driver memory at module/library load and context limits
    r"cuModule(Load\w*|Unload|GetGlobal\w*)", r"cuLibrary(Load\w*|Unload|GetGlobal|GetManaged)",
    r"cuCtxSetLimit",
    # graphics interop mappings
    r"cuGraphics(Map|Unmap)Resources\w*", r"cuGraphics\w*GetMapped\w*",
    # whole-process checkpoint
    r"cuCheckpointProcess(Checkpoint|Restore)",
]
_ALLOCATION_RE = re.compile("|".join("(?:%s)" % p for p in ALLOCATION_PATTERNS))

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DEF = os.path.join(os.path.dirname(_HERE), "shim", "passthrough_points.def")


def default_cuda_h():
    home = os.environ.get("CUDA_HOME") or "/usr/local/cuda"
    return os.path.join(home, "include", "cuda.h")


# ---- cuda.h -----------------------------------------------------------------

_TOKENS = re.compile(
    r"^[ \t]*#[ \t]*(define|undef)[ \t]+(\w+)([^\n]*)$"
    r"|\bCUresult\s+CUDAAPI\s+(cu\w+)\s*\(", re.M)
_TARGET = re.compile(r"__CUDA_API_(PTSZ|PTDS)\(\s*(\w+)\s*\)|(\w+)")


def parse_cuda_h(text):
    """Every exported symbol declared `CUresult CUDAAPI cu...(`, as libcuda
    exports it. Directives and declarations are read in order: a `#define`
    of a cu name to another name (or to __CUDA_API_PTSZ/PTDS(name)) renames
    the declarations that follow until its `#undef`; a PTSZ/PTDS target
    exports both the name and name_ptsz/_ptds."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    renames, names = {}, set()
    for m in _TOKENS.finditer(text):
        if m.group(1) == "define":
            target = _TARGET.fullmatch(m.group(3).strip())
            if m.group(2).startswith("cu") and target:
                renames[m.group(2)] = (target.group(2) or target.group(3), target.group(1))
        elif m.group(1) == "undef":
            renames.pop(m.group(2), None)
        else:
            name = m.group(4)
            base, variant = renames.get(name, (name, None))
            names.add(base)
            if variant:
                names.add("%s_%s" % (base, variant.lower()))
    return names


def cuda_version(text):
    m = re.search(r"^#define\s+CUDA_VERSION\s+(\d+)", text, re.M)
    return int(m.group(1)) if m else None


def is_allocation_related(name):
    return _ALLOCATION_RE.fullmatch(name) is not None


def allocation_names(all_names):
    return sorted(n for n in all_names if is_allocation_related(n))


# ---- shim/passthrough_points.def -------------------------------------------

_ROW = re.compile(r'PASSTHROUGH\("(cu\w+)", "([^"\\]+)"\)')


def read_passthrough(path):
    """(rows as [(name, reason)] in file order, [problems])."""
    rows, problems = [], []
    in_comment = False
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            s = line.rstrip("\n")
            if in_comment:
                if "*/" in s:
                    in_comment = False
                    if s.split("*/", 1)[1].strip():
                        problems.append("%s:%d: text after the comment" % (path, number))
                continue
            if not s.strip():
                continue
            if s.lstrip().startswith("/*"):
                in_comment = "*/" not in s
                continue
            m = _ROW.fullmatch(s)
            if m is None:
                problems.append('%s:%d: not exactly PASSTHROUGH("name", "reason"): %s' % (path, number, s))
                continue
            rows.append((m.group(1), m.group(2)))
    names = [n for n, _ in rows]
    if names != sorted(names):
        problems.append("%s: rows are not sorted by name" % path)
    seen = set()
    for n in names:
        if n in seen:
            problems.append("%s: %s listed twice" % (path, n))
        seen.add(n)
        if n in WRAPPED:
            problems.append("%s: %s is wrapped by the shim, not passed through" % (path, n))
    return rows, problems


def holes(cuda_names, passthrough):
    """Allocation-related names of cuda.h in neither list."""
    return [n for n in allocation_names(cuda_names) if n not in WRAPPED and n not in passthrough]


def stale(cuda_names, passthrough):
    """Rows naming something cuda.h does not declare, or not allocation-related."""
    out = []
    for n in sorted(passthrough):
        if n not in cuda_names:
            out.append("%s: not declared in this cuda.h" % n)
        elif not is_allocation_related(n):
            out.append("%s: not allocation-related by ALLOCATION_PATTERNS" % n)
    return out


# ---- output -----------------------------------------------------------------

def markdown(cuda_names, version, passthrough):
    listed = sorted(set(allocation_names(cuda_names)) | set(WRAPPED))
    n_wrapped = sum(1 for n in listed if n in WRAPPED)
    n_pass = sum(1 for n in listed if n not in WRAPPED and n in passthrough)
    ver = "%d.%d" % (version // 1000, version % 1000 // 10) if version else "unknown"
    out = [
        "# Driver entry points: wrapped or passed through",
        "",
        "<!-- Generated by scripts/list_entry_points.py --markdown; do not edit.",
        "     Regenerate: scripts/list_entry_points.py --markdown > docs/entry-points.md -->",
        "",
        "Every allocation-related entry point that `cuda.h` (CUDA %s) declares, as" % ver,
        "libcuda exports it (`_v2`, `_ptsz`, `_ptds` and legacy 32-bit names are",
        "rows of their own: `cuGetProcAddress` and `dlsym` can hand out any of them).",
        "**wrapped**: the shim interposes it (the list is `WRAPPED` in",
        "`scripts/list_entry_points.py`; the table of wrappers is `shim/entry_points.def`).",
        "**passed through**: the call reaches the driver untouched, for the reason",
        "given (`shim/passthrough_points.def`). `tests/python/test_entry_points.py`",
        "fails when `cuda.h` has an allocation-related name in neither list.",
        "",
        "What counts as allocation-related, and what is deliberately left out",
        "(copies, memsets, stream memory operations, texture/surface bindings,",
        "contexts), is explained at the top of the script.",
        "",
        "%d names: %d wrapped, %d passed through." % (len(listed), n_wrapped, n_pass),
        "",
        "| entry point | handling | reason |",
        "| --- | --- | --- |",
    ]
    for n in listed:
        if n in WRAPPED:
            status, reason = "wrapped", WRAPPED[n]
        elif n in passthrough:
            status, reason = "passed through", passthrough[n]
        else:
            status, reason = "**HOLE**", "neither wrapped nor in passthrough_points.def"
        if n not in cuda_names:
            reason += " (not declared in this cuda.h)"
        out.append("| `%s` | %s | %s |" % (n, status, reason.replace("|", "\\|")))
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cuda_h", nargs="?", default=None, help="path of cuda.h")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--check", nargs="?", const=DEFAULT_DEF, metavar="DEF",
                       help="exit 1 listing allocation-related names neither wrapped nor in DEF")
    group.add_argument("--markdown", nargs="?", const=DEFAULT_DEF, metavar="DEF",
                       help="print the docs/entry-points.md table")
    args = ap.parse_args(argv)
    path = args.cuda_h or default_cuda_h()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        print("list_entry_points: %s" % e, file=sys.stderr)
        return 2
    names = parse_cuda_h(text)

    if args.check is None and args.markdown is None:
        for n in allocation_names(names):
            print(n)
        return 0

    def_path = args.check or args.markdown
    try:
        rows, problems = read_passthrough(def_path)
    except OSError as e:
        print("list_entry_points: %s" % e, file=sys.stderr)
        return 2
    passthrough = dict(rows)

    if args.markdown is not None:
        sys.stdout.write(markdown(names, cuda_version(text), passthrough))
        return 0

    missing = holes(names, passthrough)
    for p in problems:
        print("problem: %s" % p)
    for s in stale(names, passthrough):
        print("stale: %s" % s)
    for n in missing:
        print("missing: %s (neither wrapped nor passed through)" % n)
    if missing or problems:
        print("list_entry_points: %d missing, %d problems in %s" % (len(missing), len(problems), def_path))
        return 1
    print("list_entry_points: %d allocation-related names, all wrapped or passed through"
          % len(allocation_names(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

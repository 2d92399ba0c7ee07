"""Reading a VRAMGUARD_TRACE file (docs/trace-format.md): its frames, one
stream per process, and that process's events in time order, with the
labels, devices and loaded modules that name them.

The file is mapped, not read: a stream keeps where its event frames are and
yields their records lazily, merged by time (each frame is in time order,
frames of several threads overlap), so a trace of millions of events is
walked in bounded memory, as often as a reader needs."""

import bisect
import heapq
import json
import mmap
import os
import struct

from . import sites

MAGIC = 0x52544756                # "VGTR"
HEADER = struct.Struct("<IBBHIIQII")
RECORD = struct.Struct("<QQQQ")
TIME_MASK = (1 << 52) - 1
SIZE_MASK = (1 << 48) - 1

FRAME_START, FRAME_EVENTS, FRAME_MODULES, FRAME_LABELS, FRAME_DEVICES = 1, 2, 3, 4, 5
FRAME_COALESCED, FRAME_NOTE, FRAME_END, FRAME_STACKS = 6, 7, 8, 9
JSON_FRAMES = (FRAME_START, FRAME_MODULES, FRAME_LABELS, FRAME_DEVICES, FRAME_NOTE, FRAME_END,
               FRAME_STACKS)

ALLOC, FREE, REFUSAL, OOM, BUDGET_OOM, POOL, LEVEL, DEVICE, FOLDED, STACK = range(1, 11)
TYPE_NAMES = {ALLOC: "alloc", FREE: "free", REFUSAL: "refusal", OOM: "oom",
              BUDGET_OOM: "budget_oom", POOL: "pool", LEVEL: "level", DEVICE: "device",
              FOLDED: "folded", STACK: "stack"}
KINDS = ("device", "host_pinned", "managed", "pool", "vmm", "array", "host_registered",
         "imported")
VRAM_KINDS = frozenset((0, 3, 4, 5))
KIND_POOL = 3
PURPOSES = ("unknown", "weights", "kv_cache", "intermediate")
BUDGET_SCOPES = ("total", "unknown", "weights", "kv_cache", "intermediate")
FREE_WHY = {0: "freed", 1: "dropped with its context", 2: "VMM memory unmapped and released"}


class TraceError(Exception):
    """The file cannot be read as a trace."""


class Event(tuple):
    """One record: time (ns since the process's trace began), type, label
    index, size, device (-1 none), kind, purpose, detail, address (for
    refusals the CUDA result, for budget OOMs the budget's limit; for pool
    samples the graph pools' reserve), caller; and the frame's thread."""
    __slots__ = ()
    time = property(lambda s: s[0])
    type = property(lambda s: s[1])
    label = property(lambda s: s[2])
    size = property(lambda s: s[3])
    device = property(lambda s: s[4])
    kind = property(lambda s: s[5])
    purpose = property(lambda s: s[6])
    detail = property(lambda s: s[7])
    address = property(lambda s: s[8])
    caller = property(lambda s: s[9])
    tid = property(lambda s: s[10])


def decode(words, frame_time, tid):
    w0, w1, w2, w3 = words
    t52 = w0 & TIME_MASK
    t = frame_time - ((frame_time - t52) & TIME_MASK)   # the latest time <= the frame's with these bits
    return Event((t, (w0 >> 52) & 15, w0 >> 56, w1 & SIZE_MASK, ((w1 >> 48) & 31) - 1,
                  (w1 >> 55) & 7, (w1 >> 53) & 3, w1 >> 58, w2, w3, tid))


class Modules(object):
    """The loaded modules at one moment: caller addresses as module+offset
    (the offset from the module's base, as the shim's other outputs print
    them)."""

    def __init__(self, entries):
        ranges = []
        for m in entries:
            for lo, hi in m.get("ranges", []):
                ranges.append((lo, hi, m))
        ranges.sort(key=lambda r: r[0])
        self.ranges = ranges
        self.starts = [r[0] for r in ranges]

    def find(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and self.ranges[i][0] <= address < self.ranges[i][1]:
            return self.ranges[i][2]
        return None

    def name(self, address):
        if not address:
            return "(unknown)"
        m = self.find(address)
        if m is None:
            return "0x%x" % address
        path = m.get("path") or "(main)"
        return "%s+0x%x" % (os.path.basename(path), address - m.get("base", 0))


class Stream(object):
    """One process's part of a trace file."""

    def __init__(self, pid, source, start=None):
        self.pid = pid
        self.source = source
        self.start = start or {}
        self.frames = []          # (time, tid, offset, count) of each events frame
        self.coalesced = []       # (time, [Event]) of each coalesced frame
        self.module_maps = []     # (time, Modules)
        self.labels = {}
        self.devices = {}
        self.stacks = {}          # stack id -> its site (the report's "site" object), or None
        self.notes = []
        self.end = None
        self.last_time = 0
        self.problems = []
        self._data = None

    @property
    def exe(self):
        return self.start.get("exe") or "?"

    def label(self, index):
        return self.labels.get(index) if index else None

    def site(self, stack):
        """Where stack `stack` was asked for, as the report's "site" says it
        (function, file:line with addr2line: sites.py), or None."""
        site = self.stacks.get(stack) if stack else None
        return sites.describe({"site": site}) if site else None

    def caller(self, address, at=None):
        """module+offset of a code address, by the module map in force at
        time `at` (the last one written before it; the first when none)."""
        if not self.module_maps:
            return "0x%x" % address if address else "(unknown)"
        chosen = self.module_maps[0][1]
        for t, mods in self.module_maps:
            if at is not None and t > at:
                break
            chosen = mods
        return chosen.name(address)

    def events(self):
        """Every record of the events frames, in time order (a frame's own
        order kept for equal times: one thread's events stay in order)."""
        data = self._data

        def frame_events(frame):
            t, tid, offset, count = frame
            for words in RECORD.iter_unpack(data[offset:offset + count * 32]):
                yield decode(words, t, tid)
        return heapq.merge(*[frame_events(f) for f in self.frames], key=lambda e: e[0])

    def timeline_items(self):
        """events(), with each coalesced frame as ("coalesced", time, records)
        in its place (by its time)."""
        coalesced = iter(self.coalesced)
        pending = next(coalesced, None)
        for e in self.events():
            while pending is not None and pending[0] <= e[0]:
                yield ("coalesced", pending[0], pending[1])
                pending = next(coalesced, None)
            yield e
        while pending is not None:
            yield ("coalesced", pending[0], pending[1])
            pending = next(coalesced, None)

    def duration(self):
        return self.last_time


def read_trace(path):
    """The streams of a trace file, in the order their processes started,
    and the warnings (damage skipped, a frame cut short)."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise TraceError("cannot open %s: %s" % (path, exc.strerror or exc))
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise TraceError("%s is empty (no process of the command reached the CUDA driver?)"
                                 % path)
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise TraceError("cannot read %s: %s" % (path, exc))
    streams, current, warnings = [], {}, []
    offset = 0
    view = memoryview(data)
    while offset + HEADER.size <= size:
        magic, ftype, version, _, pid, tid, t, payload, count = HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            nxt = data.find(b"VGTR", offset + 1)
            warnings.append("%s: %d bytes at offset %d are not a trace frame; skipped"
                            % (path, (nxt if nxt >= 0 else size) - offset, offset))
            if nxt < 0:
                break
            offset = nxt
            continue
        body = offset + HEADER.size
        if body + payload > size:
            warnings.append("%s: the last frame (pid %d) is cut short: the process was killed "
                            "while writing it, or the disk was full" % (path, pid))
            break
        offset = body + payload
        if ftype == FRAME_START:
            s = Stream(pid, path, parse_json(data, body, count, path, warnings))
            s._data = view
            streams.append(s)
            current[pid] = s
            continue
        s = current.get(pid)
        if s is None:
            s = Stream(pid, path)
            s._data = view
            s.problems.append("the trace has no start for pid %d (damaged?)" % pid)
            streams.append(s)
            current[pid] = s
        s.last_time = max(s.last_time, t)
        if ftype == FRAME_EVENTS:
            if count * 32 > payload:
                warnings.append("%s: a frame of pid %d says %d records in %d bytes; skipped"
                                % (path, pid, count, payload))
                continue
            s.frames.append((t, tid, body, count))
        elif ftype == FRAME_COALESCED:
            s.coalesced.append((t, [decode(w, t, tid) for w in
                                    RECORD.iter_unpack(data[body:body + count * 32])]))
        elif ftype in JSON_FRAMES:
            doc = parse_json(data, body, count, path, warnings)
            if ftype == FRAME_MODULES:
                s.module_maps.append((t, Modules(doc.get("modules", []))))
            elif ftype == FRAME_LABELS:
                for k, v in doc.get("labels", {}).items():
                    s.labels[int(k)] = v
            elif ftype == FRAME_DEVICES:
                for d in doc.get("devices", []):
                    s.devices[d.get("device")] = d
            elif ftype == FRAME_STACKS:
                for st in doc.get("stacks", []):
                    if isinstance(st, dict) and isinstance(st.get("id"), int):
                        s.stacks[st["id"]] = st.get("site") if isinstance(st.get("site"), dict) else None
            elif ftype == FRAME_NOTE:
                s.notes.append((t, doc))
            elif ftype == FRAME_END:
                s.end = doc
        # unknown frame types (a later format) are skipped whole
    for s in streams:
        for t, tid, off, count in s.frames:
            if count:
                last = decode(RECORD.unpack_from(data, off + (count - 1) * 32), t, tid)
                s.last_time = max(s.last_time, last.time)
    return streams, warnings


def parse_json(data, offset, length, path, warnings):
    try:
        doc = json.loads(bytes(data[offset:offset + length]).decode("utf-8", "replace"))
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        warnings.append("%s: a metadata frame at offset %d is not JSON; skipped"
                        % (path, offset - HEADER.size))
        return {}

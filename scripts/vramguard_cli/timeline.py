"""`vramguard timeline`: a picture of a trace (VRAMGUARD_TRACE, `vramguard run
--trace`): live VRAM by purpose over time, per process and device, with the
pool cache, OOM and violation markers, the peak, and the largest
allocations alive at the peak. Written as one self-contained HTML page
(inline SVG, a little inline JavaScript for the hover details, nothing
fetched) or as one SVG file (hover details as <title> elements) for CI
artifacts. The numbers are the trace's own: the peak is the one the report
gives (peak_vram_bytes), for a process traced from its start."""

import heapq
import textwrap

from .common import GuardError, UsageError, human, plural, say
from . import tracefile as tf
from .timeline_svg import seconds, write_html, write_svg

BUCKETS = 1200          # time buckets per chart: about one per pixel
TICKS = 200             # allocation ticks (the largest allocations) per chart
LARGEST = 10            # allocations listed beside a chart


def add_parser(sub, epilog, fmt):
    tl = sub.add_parser(
        "timeline", help="draw a trace (run --trace): VRAM by purpose over time",
        usage="vramguard timeline [--top N] [--format html|svg] [--quiet] TRACE... -o OUT.html|OUT.svg",
        description=textwrap.fill(
            "Draw the traces that VRAMGUARD_TRACE (or 'vramguard run --trace') wrote: for each "
            "process and device, live VRAM stacked by purpose over time (weights, kv_cache, "
            "intermediate, unknown), the device pools' cache above it, OOM, budget OOM and "
            "violation markers, the peak, and the largest allocations alive at the peak, with "
            "their callers (module+offset). OUT.html is one self-contained page (no network, "
            "hover for details); OUT.svg one SVG image (hover details as titles), for a CI "
            "artifact. The format follows the extension, or --format. The trace's format: "
            "docs/trace-format.md.", 79),
        epilog=epilog, formatter_class=fmt)
    tl.add_argument("traces", nargs="*", metavar="TRACE")
    tl.add_argument("-o", "--output", metavar="FILE",
                    help="where to write the picture (.html or .svg); required")
    tl.add_argument("--format", choices=("html", "svg"), default=None,
                    help="html or svg (default: from the output's extension, else html)")
    tl.add_argument("--top", type=int, default=LARGEST, metavar="N",
                    help="largest allocations alive at the peak listed per chart (default: %d)"
                         % LARGEST)
    tl.add_argument("--quiet", "-q", action="store_true",
                    help="print nothing but errors")


def command(args, extra):
    traces = list(args.traces) + list(extra or [])
    if not traces:
        raise UsageError("vramguard timeline: error: give at least one trace file "
                         "(VRAMGUARD_TRACE, vramguard run --trace)")
    if not args.output:
        raise UsageError("vramguard timeline: error: -o OUT.html or -o OUT.svg is required")
    if args.top < 0:
        raise UsageError("vramguard timeline: error: --top must be 0 or more")
    fmt = args.format or ("svg" if args.output.lower().endswith(".svg") else "html")
    processes, warnings = [], []
    for path in traces:
        try:
            streams, w = tf.read_trace(path)
        except tf.TraceError as exc:
            raise GuardError(str(exc))
        warnings.extend(w)
        processes.extend(build(s, args.top) for s in streams)
    if not processes:
        raise GuardError("no process in %s" % " ".join(traces))
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            (write_svg if fmt == "svg" else write_html)(out, processes, warnings)
    except OSError as exc:
        raise GuardError("cannot write %s: %s" % (args.output, exc.strerror or exc))
    if not args.quiet:
        for w in warnings:
            say("warning: %s" % w)
        for p in processes:
            for panel in p.panels:
                say("pid %d device %d: peak %s (%d B) at %s%s" % (
                    p.pid, panel.device, human(panel.peak_bytes), panel.peak_bytes,
                    seconds(panel.peak_time), ", " + plural(len(panel.markers), "marker")
                    if panel.markers else ""))
        say("timeline: %s (%s, %s)" % (args.output, fmt, plural(len(processes), "process", "processes")))
    return 0




class Panel(object):
    """One device of one process: what the chart shows."""

    def __init__(self, device, info):
        self.device = device
        self.name = (info or {}).get("name")
        self.total_bytes = (info or {}).get("total_bytes")
        self.samples = []        # (time, (bytes per purpose, PURPOSES order), pool cache, graph pool)
        self.peak_bytes = 0
        self.peak_time = 0
        self.peak_ordinal = None  # the event after which the peak held (None: none, or coalesced)
        self.peak_coalesced = False
        self.purpose_peak = [0] * len(tf.PURPOSES)
        self.markers = []        # dicts: type, time, size, purpose, label, caller, text
        self.ticks = []          # (size, time, purpose, label, caller): the largest allocations
        self.largest = []        # dicts, largest first, alive at the peak
        self.allocations = 0
        self.frees = 0
        self.budgets = []        # (scope, bytes)
        self._bucket = -1
        self._bucket_max = None
        self._last = None

    def sample(self, t, values, pool_cache, graph, bucket):
        s = (t, values, pool_cache, graph)
        if bucket != self._bucket:
            self.flush_bucket()
            self._bucket = bucket
        total = sum(values)
        if self._bucket_max is None or total > sum(self._bucket_max[1]):
            self._bucket_max = s
        self._last = s

    def flush_bucket(self):
        for s in sorted({self._bucket_max, self._last} - {None}, key=lambda x: x[0]):
            self.samples.append(s)
        self._bucket_max = self._last = None


class Device(object):
    """Replay state of one device."""

    def __init__(self):
        self.cells = {}          # (kind, purpose) -> live bytes
        self.purpose = [0] * len(tf.PURPOSES)
        self.pool_live = 0
        self.pool_reserve = 0
        self.graph = 0

    def add(self, kind, purpose, size):
        self.cells[(kind, purpose)] = self.cells.get((kind, purpose), 0) + size
        if kind in tf.VRAM_KINDS:
            self.purpose[purpose] += size
            if kind == tf.KIND_POOL:
                self.pool_live += size

    def set_cell(self, kind, purpose, size):
        self.add(kind, purpose, size - self.cells.get((kind, purpose), 0))

    def values(self):
        return tuple(self.purpose)

    def pool_cache(self):
        return max(0, self.pool_reserve - self.pool_live)


class ProcessTimeline(object):
    def __init__(self, stream):
        self.stream = stream
        self.pid = stream.pid
        self.exe = stream.exe
        self.start_unix_ns = stream.start.get("start_unix_ns")
        self.duration = stream.duration()
        self.panels = []
        self.notes = list(stream.problems)
        self.events = 0
        self.unmatched_frees = 0
        self.end = stream.end


def marker_text(stream, e, kind_name, site=None):
    what = {tf.OOM: "out of memory", tf.BUDGET_OOM: "over budget"}.get(e.type)
    if e.type == tf.REFUSAL:
        what = "violation: %s" % ("refused" if e.detail & 1 else "let through (warn)")
    parts = ["%s at %s" % (what, seconds(e.time)),
             "%s (%d B) of %s" % (human(e.size), e.size, kind_name),
             "purpose %s" % tf.PURPOSES[e.purpose]]
    label = stream.label(e.label)
    if label:
        parts.append("label %s" % label)
    if e.type == tf.BUDGET_OOM:
        scope = tf.BUDGET_SCOPES[e.detail] if e.detail < len(tf.BUDGET_SCOPES) else "?"
        parts.append("budget %s=%s" % (scope, human(e.address)))
    elif e.type == tf.REFUSAL:
        parts.append("CUDA result %d" % e.address)
    parts.append("device %d" % e.device)
    if site:
        parts.append("at %s" % site)
    parts.append("caller %s" % stream.caller(e.caller, e.time))
    return ", ".join(parts)


def build(stream, top=LARGEST):
    """Replay a stream: the panels of its devices."""
    p = ProcessTimeline(stream)
    duration = max(p.duration, 1)
    devices, panels = {}, {}
    live = {}                 # address -> (size, device, kind, purpose, label, caller, time)
    stack_of = {}             # (address, time) of an allocation -> its stack id
    last = {}                 # thread -> what its next stack record belongs to
    live_valid = True
    ordinal = -1
    budgets = {}
    for b in stream.start.get("budgets", []):
        budgets.setdefault(b.get("device"), []).append((b.get("scope"), b.get("bytes")))

    def panel(d):
        if d not in panels:
            panels[d] = Panel(d, stream.devices.get(d))
            panels[d].budgets = budgets.get(d, [])
            devices[d] = Device()
            panels[d].sample(0, devices[d].values(), 0, 0, 0)
        return panels[d], devices[d]

    def changed(d, t, coalesced_most=None):
        pan, dev = panels[d], devices[d]
        values = dev.values()
        total = sum(values)
        bucket = min(BUCKETS - 1, int(t * BUCKETS // duration))
        if coalesced_most is not None and coalesced_most > pan.peak_bytes:
            pan.peak_bytes, pan.peak_time = coalesced_most, t
            pan.peak_ordinal, pan.peak_coalesced = None, True
        if total > pan.peak_bytes:
            pan.peak_bytes, pan.peak_time = total, t
            pan.peak_ordinal, pan.peak_coalesced = ordinal, not live_valid
        for i, v in enumerate(values):
            if v > pan.purpose_peak[i]:
                pan.purpose_peak[i] = v
        pan.sample(t, values, dev.pool_cache(), dev.graph, bucket)

    def marker(e):
        if e.device < 0:
            return None
        pan, _ = panel(e.device)
        m = {"type": tf.TYPE_NAMES[e.type], "time": e.time, "size": e.size,
             "purpose": tf.PURPOSES[e.purpose], "label": stream.label(e.label),
             "caller": stream.caller(e.caller, e.time), "site": None, "event": e,
             "refused": bool(e.detail & 1) if e.type == tf.REFUSAL else None}
        pan.markers.append(m)
        return m

    def stack_record(e, owner):
        """A stack record: the site of what its thread recorded just before."""
        if owner is None:
            return
        if owner[0] == "alloc":
            stack_of[owner[1]] = e.size          # the stack id is in the size's place
        else:
            owner[1]["site"] = stream.site(e.size)

    for item in stream.timeline_items():
        if item[0] == "coalesced":
            _, t, records = item
            live_valid = False
            live.clear()
            owner = None
            for r in records:
                if r.type == tf.STACK:
                    stack_record(r, owner)
                    owner = None
                    continue
                owner = None
                if r.type == tf.LEVEL and r.device >= 0:
                    panel(r.device)[1].set_cell(r.kind, r.purpose, r.size)
                elif r.type == tf.POOL and r.device >= 0:
                    dev = panel(r.device)[1]
                    dev.pool_reserve, dev.graph = r.size, r.address
                elif r.type in (tf.REFUSAL, tf.OOM, tf.BUDGET_OOM):
                    m = marker(r)
                    owner = ("marker", m) if m is not None else None
            for r in records:
                if r.type == tf.DEVICE and r.device >= 0:
                    panel(r.device)
                    changed(r.device, t, coalesced_most=r.address)
                elif r.type == tf.FOLDED:
                    p.events += r[3] + r[8] + r[9]
            continue
        e = item
        ordinal += 1
        if e.type == tf.STACK:
            stack_record(e, last.pop(e.tid, None))
            continue
        last.pop(e.tid, None)
        p.events += 1
        if e.type == tf.ALLOC:
            last[e.tid] = ("alloc", (e.address, e.time))
            if e.device >= 0:
                pan, dev = panel(e.device)
                pan.allocations += 1
            old = live.pop(e.address, None)
            if old is not None and old[1] >= 0:          # freed where the shim could not see
                devices[old[1]].add(old[2], old[3], -old[0])
            live[e.address] = (e.size, e.device, e.kind, e.purpose, e.label, e.caller, e.time)
            if e.device >= 0:
                dev.add(e.kind, e.purpose, e.size)
                if e.kind in tf.VRAM_KINDS:
                    tick = (e.size, e.time, e.purpose, e.label, e.caller, e.address)
                    if len(pan.ticks) < TICKS:
                        heapq.heappush(pan.ticks, tick)
                    elif tick > pan.ticks[0]:
                        heapq.heapreplace(pan.ticks, tick)
                changed(e.device, e.time)
        elif e.type == tf.FREE:
            old = live.pop(e.address, None)
            if old is None:
                if live_valid:
                    p.unmatched_frees += 1
                continue
            if old[1] >= 0:
                pan, dev = panel(old[1])
                pan.frees += 1
                dev.add(old[2], old[3], -old[0])
                changed(old[1], e.time)
        elif e.type == tf.POOL:
            if e.device >= 0:
                _, dev = panel(e.device)
                dev.pool_reserve, dev.graph = e.size, e.address
                changed(e.device, e.time)
        elif e.type in (tf.REFUSAL, tf.OOM, tf.BUDGET_OOM):
            m = marker(e)
            if m is not None:
                last[e.tid] = ("marker", m)
    for d in sorted(panels):
        pan = panels[d]
        dev = devices[d]
        pan.sample(p.duration, dev.values(), dev.pool_cache(), dev.graph, BUCKETS)
        pan.flush_bucket()
        pan.ticks = [t[:5] + (stream.site(stack_of.get((t[5], t[1]))),) for t in
                     sorted(pan.ticks, key=lambda x: -x[0])]
        for m in pan.markers:
            e = m.pop("event")
            m["text"] = marker_text(stream, e, tf.KINDS[e.kind], m["site"])
        p.panels.append(pan)
    largest_at_peaks(stream, p.panels, top)
    if p.unmatched_frees:
        p.notes.append("%s of allocations the trace does not have (made before the trace "
                       "began, or while another thread started it) left out"
                       % plural(p.unmatched_frees, "free"))
    if any(t for t, doc in stream.notes if doc.get("note") == "coalesced"):
        at = next(t for t, doc in stream.notes if doc.get("note") == "coalesced")
        p.notes.append("from %s the trace reached 5/8 of VRAMGUARD_TRACE_MAX: events were "
                       "coalesced into intervals (levels exact at each interval's end, the "
                       "peak exact, callers of single allocations no longer known)" % seconds(at))
    if any(doc.get("note") == "capped" for t, doc in stream.notes):
        p.notes.append("the trace reached VRAMGUARD_TRACE_MAX: nothing after that was written")
    if stream.end is None:
        p.notes.append("no end record: the process was killed, or replaced itself with exec; "
                       "its last %d ms may be missing" % stream.start.get("flush_ms", 100))
    elif stream.end.get("lost"):
        p.notes.append("%s lost (the trace could not be written)" % plural(stream.end["lost"], "event"))
    return p


def largest_at_peaks(stream, panels, top):
    """Replay up to each panel's peak: the largest allocations alive then."""
    wanted = {pan.peak_ordinal: pan for pan in panels
              if pan.peak_ordinal is not None and not pan.peak_coalesced and top > 0}
    if not wanted:
        return
    live, stack_of, previous = {}, {}, {}
    for ordinal, e in enumerate(stream.events()):   # to the end: a stack record follows its allocation
        if e.type == tf.ALLOC:
            live[e.address] = e
        elif e.type == tf.FREE:
            live.pop(e.address, None)
        elif e.type == tf.STACK and previous.get(e.tid) is not None:
            stack_of[(previous[e.tid].address, previous[e.tid].time)] = e.size
        previous[e.tid] = e if e.type == tf.ALLOC else None
        pan = wanted.get(ordinal)
        if pan is not None:
            alive = [a for a in live.values() if a.device == pan.device and a.kind in tf.VRAM_KINDS]
            alive.sort(key=lambda a: (-a.size, a.time))
            pan.largest = [{"size": a.size, "purpose": tf.PURPOSES[a.purpose],
                            "kind": tf.KINDS[a.kind], "label": stream.label(a.label),
                            "caller": stream.caller(a.caller, a.time), "time": a.time,
                            "address": a.address} for a in alive[:top]]
    for pan in wanted.values():
        for a in pan.largest:
            a["site"] = stream.site(stack_of.get((a["address"], a["time"])))

#!/usr/bin/env python3
"""What the traces of tests/preload/prog_trace.c must hold, for
tests/preload/check_trace.c. Reads them with the CLI's own reader
(scripts/vramguard_cli/tracefile.py) and replays them with its timeline
(timeline.py). Prints "ok", or one "wrong: why" line per fact that fails.

  trace_checks.py basic TRACE REPORT
  trace_checks.py threads TRACE
  trace_checks.py fork CHILD_PID TRACE...         (one file, or one per process)
  trace_checks.py flood TRACE REPORT MAX_BYTES PAIRS
"""
import json
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from vramguard_cli import timeline, tracefile as tf  # noqa: E402

MiB = 1 << 20
wrong = []


def expect(cond, why):
    if not cond:
        wrong.append(why)
    return cond


def load(paths):
    streams = []
    for p in paths:
        s, warnings = tf.read_trace(p)
        expect(not warnings, "warnings reading %s: %s" % (p, warnings))
        streams.extend(s)
    return streams


def report(path):
    with open(path) as f:
        return json.load(f)


def kinds(stream):
    return Counter(tf.TYPE_NAMES[e.type] for e in stream.events())


def check_end(stream):
    """The end frame's counts agree with what the file holds."""
    if not expect(stream.end is not None, "pid %d: no end frame" % stream.pid):
        return
    written = sum(f[3] for f in stream.frames)
    expect(stream.end["events"] == written, "pid %d: end says %d events written, the file has %d"
           % (stream.pid, stream.end["events"], written))
    expect(stream.end["lost"] == 0, "pid %d: %d events lost" % (stream.pid, stream.end["lost"]))


def check_times(stream):
    last = -1
    for e in stream.events():
        if not expect(e.time >= last, "pid %d: events out of time order" % stream.pid):
            return
        last = e.time
    expect(last <= stream.duration(), "pid %d: an event after the last frame" % stream.pid)


def basic(trace, report_path):
    rep = report(report_path)
    streams = load([trace])
    if not expect(len(streams) == 1, "%d streams, want 1" % len(streams)):
        return
    s = streams[0]
    expect(s.pid == rep["process"]["pid"], "pid %d, the report's %d" % (s.pid, rep["process"]["pid"]))
    expect(s.exe.endswith("/prog_trace") and s.start.get("format") == 1 and s.start.get("record_bytes") == 32,
           "start frame %r" % s.start)
    check_end(s)
    check_times(s)
    ev = list(s.events())
    got = kinds(s)
    expect(got["alloc"] == 5 and got["free"] == 4 and got["refusal"] == 1 and got["oom"] == 1,
           "event counts %r" % dict(got))
    # a stack record after each allocation of 1 MiB or more that is not stream-ordered, each refusal and
    # OOM: its site, named in a stacks frame, is the function that asked
    stacked = [(tf.TYPE_NAMES[prev.type], prev.size) for prev, e in zip(ev, ev[1:]) if e.type == tf.STACK]
    want = [("alloc", 8 * MiB), ("alloc", 8 * MiB), ("alloc", 16 * MiB), ("alloc", 2 * MiB), ("refusal", MiB),
            ("oom", 2048 * MiB)]
    expect(stacked == want, "stack records after %r, want %r" % (stacked, want))
    sites = {(s.stacks.get(e.size) or {}).get("function") for e in ev if e.type == tf.STACK}
    expect(sites == {"basic"}, "the stacks' sites name %r, want the function basic" % sites)
    allocs = [(e.size, tf.KINDS[e.kind], tf.PURPOSES[e.purpose], s.label(e.label)) for e in ev if e.type == tf.ALLOC]
    want = [(8 * MiB, "device", "weights", "w.0"), (8 * MiB, "device", "weights", "w.1"),
            (16 * MiB, "device", "kv_cache", None), (4 * MiB, "pool", "intermediate", None),
            (2 * MiB, "vmm", "unknown", None)]
    expect(allocs == want, "allocations %r, want %r" % (allocs, want))
    frees = [(e.size, tf.KINDS[e.kind], s.label(e.label), tf.FREE_WHY.get(e.detail)) for e in ev if e.type == tf.FREE]
    want = [(4 * MiB, "pool", None, "freed"), (2 * MiB, "vmm", None, "freed"), (16 * MiB, "device", None, "freed"),
            (8 * MiB, "device", "w.0", "freed")]
    expect(frees == want, "frees %r, want %r" % (frees, want))
    ref = [e for e in ev if e.type == tf.REFUSAL]
    if ref:
        e = ref[0]
        expect((e.size, tf.KINDS[e.kind], e.detail & 1, e.address) == (MiB, "managed", 1, 801),
               "refusal %r" % (e,))
    oom = [e for e in ev if e.type == tf.OOM]
    if oom:
        e = oom[0]
        expect((e.size, tf.KINDS[e.kind], tf.PURPOSES[e.purpose], e.address) == (2048 * MiB, "device", "kv_cache", 2),
               "oom %r" % (e,))
    callers = {s.caller(e.caller, e.time).split("+")[0] for e in ev if e.type != tf.POOL}
    expect(callers == {"prog_trace"}, "callers named %r, want prog_trace+0x..." % callers)
    pools = [e for e in ev if e.type == tf.POOL]
    expect(pools and pools[-1].size >= 4 * MiB, "pool reserve samples %r (want the 4 MiB kept)" % pools)
    expect(s.devices.get(0, {}).get("total_bytes") == 1 << 30, "devices %r" % s.devices)
    # replayed: the peak and what is left are the report's
    p = timeline.build(s)
    pan = p.panels[0] if p.panels else None
    peak = rep["devices"][0]["peak_vram_bytes"]
    if expect(pan is not None, "no chart"):
        expect(pan.peak_bytes == peak, "timeline peak %d, the report's %d" % (pan.peak_bytes, peak))
        expect(pan.samples[-1][2] == 4 * MiB, "pool cache at the end %r, want 4 MiB" % (pan.samples[-1],))
        left = sum(pan.samples[-1][1])
        expect(left == rep["live_at_exit"]["bytes"] == 8 * MiB,
               "live at the end %d, the report's %r" % (left, rep["live_at_exit"]["bytes"]))
        expect([m["type"] for m in pan.markers] == ["refusal", "oom"], "markers %r" % pan.markers)


def threads(trace):
    streams = load([trace])
    if not expect(len(streams) == 1, "%d streams, want 1" % len(streams)):
        return
    s = streams[0]
    expect(s.end is None, "an end frame after SIGKILL?")
    got = kinds(s)
    expect(got["alloc"] == 12000 and got["free"] == 12000,
           "events %r, want 12000 allocations and 12000 frees (4 threads x 3000 pairs)" % dict(got))
    tids = {f[1] for f in s.frames}
    expect(len(tids) >= 4, "frames of %d threads, want the 4" % len(tids))
    check_times(s)
    p = timeline.build(s)
    expect(p.panels and p.panels[0].peak_bytes <= 4 * 4096 and sum(p.panels[0].samples[-1][1]) == 0,
           "replay: peak %r, left %r" % (p.panels and p.panels[0].peak_bytes, p.panels and p.panels[0].samples[-1]))


def fork(child_pid, traces):
    streams = load(traces)
    by_pid = {s.pid: s for s in streams}
    if not expect(len(streams) == 2 and child_pid in by_pid, "streams of pids %r, want the parent and its child %d"
                  % ([s.pid for s in streams], child_pid)):
        return
    child = by_pid[child_pid]
    parent = [s.pid for s in streams if s.pid != child_pid][0]
    expect(child.start.get("ppid") == parent, "the child's ppid %r, want %d" % (child.start.get("ppid"), parent))
    sizes = lambda s, t: sorted(e.size for e in s.events() if e.type == t)  # noqa: E731
    expect(sizes(by_pid[parent], tf.ALLOC) == [MiB, 3 * MiB], "parent allocations %r" % sizes(by_pid[parent], tf.ALLOC))
    expect(sizes(child, tf.ALLOC) == [2 * MiB] and sizes(child, tf.FREE) == [2 * MiB],
           "child allocations %r frees %r (its parent's 1 MiB is not its own)"
           % (sizes(child, tf.ALLOC), sizes(child, tf.FREE)))
    for s in streams:
        check_end(s)
        check_times(s)
    if len(traces) == 2:
        per_file = sorted(len(load([t])) for t in traces)
        expect(per_file == [1, 1], "streams per file %r, want one each (%%p)" % per_file)


def flood(trace, report_path, max_bytes, pairs):
    rep = report(report_path)
    size = os.path.getsize(trace)
    expect(size <= max_bytes, "trace of %d bytes, VRAMGUARD_TRACE_MAX %d" % (size, max_bytes))
    streams = load([trace])
    if not expect(len(streams) == 1 and streams[0].end is not None, "streams %r" % streams):
        return
    s = streams[0]
    end = s.end
    refusals = pairs // 1000
    expect(end["phase"] == "coalesced", "phase %r, want coalesced" % end["phase"])
    stacks = sum(1 for e in s.events() if e.type == tf.STACK)   # not events: the stacks of the one before
    total = end["events"] - stacks + end["markers_kept"] + end["folded"] + end["lost"]
    expect(total == 2 * pairs + 2 + refusals, "written %d - %d stacks + kept %d + folded %d + lost %d = %d, want %d"
           % (end["events"], stacks, end["markers_kept"], end["folded"], end["lost"], total,
              2 * pairs + 2 + refusals))
    written = sum(1 for e in s.events() if e.type == tf.REFUSAL)
    kept = sum(1 for _, recs in s.coalesced for r in recs if r.type == tf.REFUSAL)
    expect(kept == end["markers_kept"] and 0 < kept <= 16 * len(s.coalesced),
           "refusals kept in coalesced frames %d, the end frame says %d (at most 16 an interval)"
           % (kept, end["markers_kept"]))
    expect(written + kept + end["markers_folded"] == refusals, "refusals: %d written + %d kept + %d folded, want %d"
           % (written, kept, end["markers_folded"], refusals))
    expect(end["events"] == sum(f[3] for f in s.frames), "end frame and events frames disagree")
    expect(s.coalesced, "no coalesced frame")
    expect(any(doc.get("note") == "coalesced" for _, doc in s.notes), "no note of the switch")
    p = timeline.build(s)
    pan = p.panels[0]
    peak = rep["devices"][0]["peak_vram_bytes"]
    expect(pan.peak_bytes == peak, "timeline peak %d, the report's %d" % (pan.peak_bytes, peak))
    expect(pan.peak_coalesced, "the peak was reached while coalescing, the timeline should say so")
    expect(sum(pan.samples[-1][1]) == 0, "live at the end %r" % (pan.samples[-1],))
    folded = sum(r[3] + r[8] + r[9] for _, recs in s.coalesced for r in recs if r.type == tf.FOLDED)
    expect(folded == end["folded"], "coalesced frames fold %d events, the end frame says %d" % (folded, end["folded"]))
    expect(len(pan.markers) == written + kept, "%d markers drawn, the trace has %d refusals" % (len(pan.markers),
                                                                                          written + kept))


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what == "basic" and len(argv) == 4:
        basic(argv[2], argv[3])
    elif what == "threads" and len(argv) == 3:
        threads(argv[2])
    elif what == "fork" and len(argv) >= 4:
        fork(int(argv[2]), argv[3:])
    elif what == "flood" and len(argv) == 6:
        flood(argv[2], argv[3], int(argv[4]), int(argv[5]))
    else:
        sys.stderr.write(__doc__)
        return 2
    print("\n".join("wrong: " + w for w in wrong) if wrong else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Facts about the shim's journals and reports, for tests/preload/check_preload.c.

  journal_checks.py counts JOURNAL   one line: "violations V ooms O suppressed S capped C
                                     first_start F lines L", V and O counting the
                                     summaries of suppressed repeats by their count
  journal_checks.py starts DIR       "journals N bad B": journals in DIR, and those
                                     whose first line is not a start line
  journal_checks.py leaky REPORT     the report of tests/preload/prog_leaky.c:
                                     "correct", "unknown" (honestly so), or "wrong: why"
  journal_checks.py get REPORT KEY.KEY...   one value of a report, as JSON
"""
import json
import os
import sys


def counts(path):
    v = o = sup = capped = lines = 0
    first = None
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            ev = json.loads(raw)
            if first is None:
                first = ev["event"]
            kind, n = ev["event"], 1
            if kind == "suppressed":
                kind, n = ev["of"], ev["count"]
                sup += n
            if kind == "violation":
                v += n
            elif kind == "oom":
                o += n
            elif kind == "capped":
                capped += 1
    print("violations %d ooms %d suppressed %d capped %d first_start %d lines %d"
          % (v, o, sup, capped, first == "start", lines))


def starts(directory):
    n = bad = 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".journal"):
            continue
        n += 1
        with open(os.path.join(directory, name), "rb") as f:
            if json.loads(f.readline() or b"{}").get("event") != "start":
                bad += 1
    print("journals %d bad %d" % (n, bad))


def leaky(path):
    with open(path) as f:
        doc = json.load(f)
    s, live = doc["summary"], doc["live_at_exit"]
    if doc["violations"]["count"] != 1 or s["violations"] != 1:
        return "wrong: violations %r, want 1" % doc["violations"]["count"]
    if s["leaked_allocations"] == "unknown":
        ok = (s["leaked_bytes"] == "unknown" and live["count"] == "unknown" and s["untracked_allocations"] > 0
              and "leak" in s["unknown"] and s["status"] == "fail")
        return "unknown" if ok else "wrong: unknown but %r" % s
    ok = (s["leaked_allocations"] == 3 and s["leaked_bytes"] == 3 << 20 and live["count"] == 3
          and s["untracked_allocations"] == 0 and s["unknown"] == [])
    return "correct" if ok else "wrong: %r" % s


def get(path, keys):
    with open(path) as f:
        val = json.load(f)
    for k in keys.split("."):
        val = val[int(k)] if isinstance(val, list) else val[k]
    print(json.dumps(val))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "counts":
        counts(sys.argv[2])
    elif cmd == "starts":
        starts(sys.argv[2])
    elif cmd == "leaky":
        print(leaky(sys.argv[2]))
    elif cmd == "get":
        get(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command %s" % cmd)

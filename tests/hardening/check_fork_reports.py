#!/usr/bin/env python3
"""The reports of a prog_forks run under the shim (VRAMGUARD_REPORT=DIR/r.%p.json):
one per process, each its own. Every child kept exactly (pid % 7 + 1) * 4 KiB of
cuMemAlloc memory live and saw nothing of its parent's; the parent ends with
nothing live. Usage: check_fork_reports.py DIR FORKS. Prints one line per
problem and 'reports ok: N children' when there is none."""
import json
import os
import re
import sys


def main(directory, forks):
    reports = {}
    for name in os.listdir(directory):
        m = re.fullmatch(r"r\.(\d+)\.json", name)
        if m:
            with open(os.path.join(directory, name)) as f:
                reports[int(m.group(1))] = json.load(f)
    problems = []
    parents = [pid for pid, r in reports.items() if r["process"]["ppid"] not in reports]
    if len(parents) != 1:
        problems.append("want one parent report, found %d" % len(parents))
        parent = None
    else:
        parent = parents[0]
    children = 0
    for pid, r in sorted(reports.items()):
        proc, live = r["process"], r["live_at_exit"]
        if proc["pid"] != pid:
            problems.append("r.%d.json holds pid %d" % (pid, proc["pid"]))
        if pid == parent:
            if live["count"] != 0:
                problems.append("parent %d ends with %d live allocations" % (pid, live["count"]))
            continue
        children += 1
        want = (pid % 7 + 1) * 4096
        dev = r["devices"][0] if r["devices"] else {}
        if proc["ppid"] != parent:
            problems.append("child %d: ppid %d, parent is %s" % (pid, proc["ppid"], parent))
        if live["count"] != 1 or live["bytes"] != want:
            problems.append("child %d: %d live allocations of %d bytes, want 1 of %d" % (pid, live["count"], live["bytes"], want))
        if dev.get("charged_bytes") != want or dev.get("peak_vram_bytes") != want + 8192:
            problems.append("child %d: charged %s peak %s, want %d and %d" % (pid, dev.get("charged_bytes"), dev.get("peak_vram_bytes"), want, want + 8192))
    if children != forks:
        problems.append("%d child reports, want %d" % (children, forks))
    for p in problems[:20]:
        print("FAIL", p)
    if problems:
        print("%d problems" % len(problems))
        return 1
    print("reports ok: %d children" % children)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))

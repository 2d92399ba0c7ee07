#!/usr/bin/env python3
"""A large journal, and the most memory the CLI takes to read it.

usage: big_journal.py DIR LINES CLI SUBCOMMAND [ARGS...]

Writes DIR/vramguard.4242.json.journal: a start line, LINES violation lines
(about 330 bytes each, every one a different size), a summary of 1000
suppressed repeats; no report (the process was killed). Then runs
"CLI SUBCOMMAND ARGS... DIR", passes its output through, and prints
"maxrss_kib N" (the child's peak resident memory, from getrusage) and
"status N" last. Exits 0 unless the helper itself fails.
"""
import json
import os
import resource
import subprocess
import sys


def main():
    directory, lines, cli, sub = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    path = os.path.join(directory, "vramguard.4242.json.journal")
    head = {"event": "start", "pid": 4242, "exe": "/opt/app/worker", "time": "2026-12-01T00:00:00.000Z"}
    with open(path, "w") as f:
        f.write(json.dumps(head) + "\n")
        for i in range(lines):
            f.write('{"event":"violation","pid":4242,"time":"2026-12-01T00:00:01.000Z","api":"cuMemHostAlloc",'
                    '"kind":"host_pinned","size":%d,"device":0,"purpose":"unknown","label":null,'
                    '"caller":"/opt/app/libworker.so+0x1a2b","action":"rejected","result":800,'
                    '"allow_rule":"pinned:libworker.so:<=%d"}\n' % (4096 + i, 1 << (4096 + i).bit_length()))
        f.write(json.dumps({"event": "suppressed", "pid": 4242, "time": "2026-12-01T00:00:02.000Z",
                            "of": "violation", "count": 1000, "since": "2026-12-01T00:00:01.000Z",
                            "api": "cuMemHostAlloc", "kind": "host_pinned", "size": 4096, "device": 0,
                            "caller": "/opt/app/libworker.so+0x1a2b", "action": "rejected",
                            "result": 800}) + "\n")
    sys.stdout.write("journal_bytes %d\n" % os.path.getsize(path))
    sys.stdout.flush()
    env = dict(os.environ)
    env.pop("VRAMGUARD_FAIL_ON", None)
    p = subprocess.run([sys.executable, cli, sub] + sys.argv[5:] + [directory], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sys.stdout.write(p.stdout.decode("utf-8", "replace")[-4000:])
    sys.stdout.write("\nmaxrss_kib %d\nstatus %d\n"
                     % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode))
    return 0


if __name__ == "__main__":
    sys.exit(main())

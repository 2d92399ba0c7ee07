#!/usr/bin/env python3
"""Imitates a process running under the vramguard shim, for tests/cli.

It reads VRAMGUARD_REPORT (as the shim does), expands %p to its pid, appends
events to <report>.journal and writes a vramguard.report/v1 report at exit,
unless told to die by a signal first (journal only) or not to reach the
"driver" at all (writes nothing).

With VRAMGUARD_LISTEN set, it "binds" the endpoint as the shim does when it
reaches the driver: it writes the address, one line, to <report>.endpoint
(PORT -> http://127.0.0.1:PORT, port 0 -> a made-up port per pid,
HOST:PORT -> http://HOST:PORT, unix:/path -> unix:/path with %p expanded).
--no-endpoint leaves it out (a bind that failed).

--empty-journal: the process loaded the shim but its journal has no start
line (an empty journal) and it writes no report: it did not reach the driver.

--violation-detail KIND:SIZE:CALLER[=ALLOW_RULE] (may repeat): one violation
of that kind (host_pinned, host_registered, managed, or any other), size and
caller ("/path/libx.so+0x1a", "(main)+0x10", "0x7f..."), recorded after the
--violations ones; with =ALLOW_RULE the event carries "allow_rule" as the
shim writes it.

--suppressed N: after the --violations, the journal says repeats of the last
one are suppressed ("suppressing") and then summarises N more ("suppressed");
--exit-line: the journal's last line says the process exited (every event is
in the journal or in a summary); --capped: the journal ends with its capped
line (VRAMGUARD_LOG_MAX reached). --untracked N: the report says N
allocations could not be tracked: its live and leak figures are "unknown".
--budget-ooms N: N allocations refused by a VRAMGUARD_LIMIT budget (kv_cache=1G):
journaled as "oom" events with "budget", in the report's "budgets" section,
not in "oom_events" (as the shim writes them).

  fake_worker.py [--violations N] [--violation-detail KIND:SIZE:CALLER[=RULE]]...
                 [--suppressed N] [--exit-line] [--capped] [--untracked N]
                 [--ooms N] [--budget-ooms N] [--leaks N] [--peak BYTES]
                 [--exit N] [--kill SIGNAME] [--no-driver] [--malformed]
                 [--no-endpoint] [--empty-journal] [--pool-bytes N]
                 [--child "ARGS"] [--dump-env FILE] [--ready FILE --sleep S]
"""
import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--violations", type=int, default=0)
    ap.add_argument("--violation-detail", action="append", default=[],
                    metavar="KIND:SIZE:CALLER[=ALLOW_RULE]")
    ap.add_argument("--suppressed", type=int, default=0)
    ap.add_argument("--exit-line", action="store_true")
    ap.add_argument("--capped", action="store_true")
    ap.add_argument("--untracked", type=int, default=0)
    ap.add_argument("--ooms", type=int, default=0)
    ap.add_argument("--budget-ooms", type=int, default=0)
    ap.add_argument("--leaks", type=int, default=0)
    ap.add_argument("--peak", type=int, default=3 << 20)
    ap.add_argument("--exit", type=int, default=0)
    ap.add_argument("--kill", default=None, help="signal name, e.g. TERM or KILL")
    ap.add_argument("--no-driver", action="store_true")
    ap.add_argument("--malformed", action="store_true")
    ap.add_argument("--no-endpoint", action="store_true")
    ap.add_argument("--empty-journal", action="store_true")
    ap.add_argument("--pool-bytes", type=int, default=0,
                    help="peak of a pool/kv_cache usage row and the pool figures")
    ap.add_argument("--child", action="append", default=[],
                    help="arguments of a child fake_worker (may repeat)")
    ap.add_argument("--dump-env", default=None)
    ap.add_argument("--ready", default=None)
    ap.add_argument("--sleep", type=float, default=0)
    a = ap.parse_args()

    if a.dump_env:
        keep = dict((k, v) for k, v in os.environ.items()
                    if k.startswith("VRAMGUARD_") or k == "LD_PRELOAD")
        with open(a.dump_env, "w") as f:
            json.dump(keep, f)

    for child in a.child:
        subprocess.call([sys.executable, os.path.abspath(__file__)] + shlex.split(child))

    if a.no_driver:
        return a.exit

    pattern = os.environ.get("VRAMGUARD_REPORT")
    if not pattern:
        sys.stderr.write("fake_worker: VRAMGUARD_REPORT is not set\n")
        return 99
    pid = os.getpid()
    report = pattern.replace("%p", str(pid))
    journal = report + ".journal"
    if a.empty_journal:
        open(journal, "a").close()
        return a.exit
    policy = os.environ.get("VRAMGUARD_POLICY", "reject")
    fail_on_env = os.environ.get("VRAMGUARD_FAIL_ON", "violation")
    fail_on = [] if fail_on_env == "none" else fail_on_env.split(",")
    allow_env = os.environ.get("VRAMGUARD_ALLOW", "none")
    allow = [] if allow_env == "none" else allow_env.split(",")   # the rules, as the shim lists them
    started = now()

    jf = open(journal, "a")

    def emit(ev):
        jf.write(json.dumps(ev) + "\n")
        jf.flush()

    emit({"event": "start", "pid": pid, "exe": sys.executable, "time": started})
    listen = os.environ.get("VRAMGUARD_LISTEN", "")
    if listen and not a.no_endpoint:
        if listen.startswith("unix:"):
            address = listen.replace("%p", str(pid))
        else:
            host, _, port = listen.rpartition(":")
            if port == "0":
                port = str(20000 + pid % 40000)
            address = "http://%s:%s" % (host or "127.0.0.1", port)
        with open(report + ".endpoint.tmp", "w") as f:
            f.write(address + "\n")
        os.rename(report + ".endpoint.tmp", report + ".endpoint")
    violations, ooms = [], []
    for i in range(a.violations):
        ev = {"time": now(), "api": "cuMemAllocManaged", "kind": "managed",
              "size": 1048576 * (i + 1), "device": 0, "purpose": "unknown", "label": None,
              "caller": "/opt/fake/libworker.so+0x1a2b",
              "action": "rejected" if policy == "reject" else "allowed",
              "result": 801 if policy == "reject" else 0}
        violations.append(ev)
        emit(dict({"event": "violation", "pid": pid}, **ev))
    apis = {"host_pinned": ("cuMemHostAlloc", 800), "host_registered": ("cuMemHostRegister_v2", 800),
            "managed": ("cuMemAllocManaged", 801)}
    for detail in a.violation_detail:
        what, _, allow_rule = detail.partition("=")
        kind, size, caller = what.split(":", 2)
        api, refused = apis.get(kind, ("cuMemCreate", 800))
        ev = {"time": now(), "api": api, "kind": kind, "size": int(size), "device": 0,
              "purpose": "unknown", "label": None, "caller": caller,
              "action": "rejected" if policy == "reject" else "allowed",
              "result": refused if policy == "reject" else 0}
        if allow_rule:
            ev["allow_rule"] = allow_rule
        violations.append(ev)
        emit(dict({"event": "violation", "pid": pid}, **ev))
    for i in range(a.ooms):
        ev = {"time": now(), "api": "cuMemAlloc_v2", "size": 85899345920, "device": 0,
              "purpose": "weights", "label": "layer.%d" % i, "caller": "/opt/fake/libworker.so+0x2b3c",
              "result": 2}
        ooms.append(ev)
        emit(dict({"event": "oom", "pid": pid}, **ev))
    budget_ooms = []
    for i in range(a.budget_ooms):
        ev = {"time": now(), "api": "cuMemAlloc_v2", "kind": "device", "size": 2 << 30,
              "device": 0, "purpose": "kv_cache", "label": None,
              "caller": "/opt/fake/libworker.so+0x4d5e", "result": 2,
              "budget": "kv_cache", "budget_limit": 1 << 30}
        budget_ooms.append(ev)
        emit(dict({"event": "oom", "pid": pid}, **ev))

    if a.suppressed and violations:
        group = dict((k, v) for k, v in violations[-1].items() if k not in ("time", "purpose", "label"))
        emit(dict({"event": "suppressing", "pid": pid, "time": now(), "of": "violation"}, **group))
        emit(dict({"event": "suppressed", "pid": pid, "time": now(), "of": "violation",
                   "count": a.suppressed, "since": now()}, **group))
    if a.exit_line:
        emit({"event": "exit", "pid": pid, "time": now()})
    if a.capped:
        emit({"event": "capped", "pid": pid, "time": now(), "max_bytes": 4096})

    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write(str(pid))
        os.rename(a.ready + ".tmp", a.ready)
    if a.sleep:
        time.sleep(a.sleep)
    if a.kill:
        jf.close()
        os.kill(pid, getattr(signal, "SIG" + a.kill.upper().replace("SIG", "")))
        time.sleep(10)
        return 98

    leaks = [{"address": "0x7f00%08x" % (0x1000 * i), "size": 4096, "device": 0,
              "kind": "device", "purpose": "kv_cache", "label": None, "api": "cuMemAlloc_v2",
              "caller": "/opt/fake/libworker.so+0x3c4d"} for i in range(a.leaks)]
    nviol = len(violations) + a.suppressed
    known = a.untracked == 0
    conds = {"violation": nviol, "oom": len(ooms), "leak": len(leaks) if known else 0,
             "budget": len(budget_ooms)}
    reasons = [c for c in fail_on if conds.get(c)]
    unknown = [] if known else ["leak"]
    status = "fail" if reasons else "unknown" if any(c in fail_on for c in unknown) else "pass"
    doc = {
        "schema": "vramguard.report/v1",
        "vramguard_version": "0.1.0",
        "process": {"pid": pid, "ppid": os.getppid(), "exe": sys.executable,
                    "argv": [sys.executable] + sys.argv, "started_at": started,
                    "ended_at": now()},
        "config": {"policy": policy, "allow": allow, "fail_on": fail_on},
        "devices": [{"device": 0, "name": "Fake H100", "total_bytes": 85520809984,
                     "pageable_memory_access": False, "oom_events": len(ooms),
                     "charged_bytes": 4096 * len(leaks) + a.pool_bytes,
                     "live_vram_bytes": 4096 * len(leaks),
                     "pool_reserved_bytes": a.pool_bytes, "pool_cache_bytes": a.pool_bytes,
                     "graph_reserved_bytes": 0,
                     "pool_figures_current": True, "peak_vram_bytes": a.peak,
                     "usage": [
                         {"kind": "device", "purpose": "weights", "live_bytes": 0,
                          "live_count": 0, "peak_bytes": a.peak, "allocations": 3, "frees": 3},
                         {"kind": "device", "purpose": "kv_cache", "live_bytes": 4096 * len(leaks),
                          "live_count": len(leaks), "peak_bytes": 4096 * len(leaks),
                          "allocations": len(leaks), "frees": 0}]
                     + ([{"kind": "pool", "purpose": "intermediate", "live_bytes": 0,
                          "live_count": 0, "peak_bytes": a.pool_bytes, "allocations": 2,
                          "frees": 2},
                         {"kind": "host_pinned", "purpose": "unknown", "live_bytes": 0,
                          "live_count": 0, "peak_bytes": 1 << 30, "allocations": 1,
                          "frees": 1}] if a.pool_bytes else [])}],
        "violations": {"count": nviol, "recorded": (violations + violations[-1:] * a.suppressed)[:64]},
        "oom_events": {"count": len(ooms), "recorded": ooms[:64]},
        "live_at_exit": {"count": len(leaks) if known else "unknown",
                         "bytes": 4096 * len(leaks) if known else "unknown", "allocations": leaks},
        "vmm_exported_handles": 0,
        "passthrough_lookups": [],
        "summary": {"status": status, "reasons": reasons,
                    "violations": nviol, "oom_events": len(ooms),
                    "leaked_allocations": len(leaks) if known else "unknown",
                    "leaked_bytes": 4096 * len(leaks) if known else "unknown",
                    "untracked_allocations": a.untracked, "unknown": unknown},
    }
    if a.budget_ooms or os.environ.get("VRAMGUARD_LIMIT"):   # only with a budget, as the shim
        doc["budgets"] = {"oom_events": len(budget_ooms),
                          "budgets": [{"device": 0, "scope": "kv_cache", "bytes": 1 << 30,
                                       "oom_events": len(budget_ooms)}],
                          "recorded": budget_ooms[:64]}
    tmp = report + ".tmp"
    with open(tmp, "w") as f:
        if a.malformed:
            f.write('{"schema": "vramguard.report/v1", "process": {"pid": ')
        else:
            json.dump(doc, f, indent=1)
    os.rename(tmp, report)
    return a.exit


if __name__ == "__main__":
    sys.exit(main())

"""Reading what the shim leaves in a report directory: reports
(vramguard.<pid>.json), journals (.journal, read line by line in constant
memory) and endpoint files (.endpoint); one Proc per process, and the
aggregate every command judges by."""

import json
import os
import re

from .common import is_int, list_or_empty, plural

REPORT_SCHEMA = "vramguard.report/v1"
REPORT_PATTERN = "vramguard.%p.json"
REPORT_RE = re.compile(r"^vramguard\..+\.json$")
JOURNAL_SUFFIX = ".journal"
ENDPOINT_SUFFIX = ".endpoint"
PID_FROM_NAME_RE = re.compile(r"vramguard\.(\d+)\.json(?:\.journal)?$")
ENDPOINT_RE = re.compile(r"^vramguard\.(\d+)\.json\.endpoint$")

JOURNAL_KEEP = 64      # events of each kind kept from a journal (as many as a report keeps)
JOURNAL_LINE_MAX = 1 << 20   # a longer line is no event the shim writes
REPEATS_PERIOD_S = 10  # the shim's summaries of suppressed repeats (shim/output/repeats.h)
START_LINE_RE = re.compile(rb'^\s*\{\s*"event"\s*:\s*"start"')


class Malformed(Exception):
    """A report or journal that cannot be understood."""


def need(obj, key, kind, where):
    """obj[key], checked to be of `kind` ('int', 'str', 'list', 'dict')."""
    if not isinstance(obj, dict) or key not in obj:
        raise Malformed("missing %s.%s" % (where, key) if where else "missing %s" % key)
    val = obj[key]
    ok = {"int": is_int(val), "str": isinstance(val, str),
          "list": isinstance(val, list), "dict": isinstance(val, dict)}[kind]
    if not ok:
        raise Malformed("%s%s is not %s" % (where + "." if where else "", key,
                                            {"int": "an integer", "str": "a string",
                                             "list": "a list", "dict": "an object"}[kind]))
    return val


def need_count(obj, key, where):
    """obj[key]: an integer, or None for "unknown" (a figure the shim could not measure)."""
    if isinstance(obj, dict) and obj.get(key) == "unknown":
        return None
    return need(obj, key, "int", where)


class Proc(object):
    """What vramguard knows about one process that reached the CUDA driver."""

    def __init__(self, pid=None, path=None):
        self.pid = pid
        self.exe = None
        self.started = ""
        self.path = path              # report path, or journal path when there is no report
        self.has_report = False
        self.report_file = False      # a report file exists (readable or not)
        self.journal_start = False    # its journal has a "start" line
        self.journal_only = False
        self.errors = []              # why this process's files could not be used
        self.notes = []
        self.peak_bytes = None        # sum of peak_bytes over devices and usage rows
        self.violation_count = 0
        self.violations = []
        self.oom_count = 0
        self.ooms = []
        self.budget_count = 0         # budget OOMs (VRAMGUARD_LIMIT): not in oom_count
        self.budget_ooms = []
        self.leak_count = None        # unknown without a report
        self.leak_bytes = None
        self.leaks = []
        self.unknown = {}             # condition -> why it could not be measured
        self.at_least = False         # its counts are lower bounds (a capped journal)
        self.reasons = []
        self.unknown_reasons = []     # fail-on conditions unknown for it (and not failing)
        self.devices = []             # the report's device entries
        self.passthrough = []         # names of passed-through entry points looked up
        self.allow = []               # the VRAMGUARD_ALLOW rules it ran with (config.allow)

    @property
    def reached(self):
        """It reached the CUDA driver: a report, or a journal with a start line."""
        return self.has_report or self.report_file or self.journal_start

    def sort_key(self):
        return (self.started or "", self.pid if self.pid is not None else -1, self.path or "")


def load_report(path, proc):
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise Malformed("cannot read report: %s" % exc)
    if not isinstance(data, dict):
        raise Malformed("report is not a JSON object")
    schema = data.get("schema")
    if schema != REPORT_SCHEMA:
        raise Malformed("unsupported report schema %r (expected %r)" % (schema, REPORT_SCHEMA))
    process = need(data, "process", "dict", "")
    if process.get("state") == "running":
        raise Malformed("a running process's /vram (process.state running), not an exit report: "
                        "it has no verdict on leaks yet")
    pid = need(process, "pid", "int", "process")
    exe = need(process, "exe", "str", "process")
    started = process.get("started_at") if isinstance(process.get("started_at"), str) else ""
    peak = 0
    for i, dev in enumerate(need(data, "devices", "list", "")):
        for j, row in enumerate(need(dev, "usage", "list", "devices[%d]" % i)):
            peak += need(row, "peak_bytes", "int", "devices[%d].usage[%d]" % (i, j))
    viol = need(data, "violations", "dict", "")
    vcount = need(viol, "count", "int", "violations")
    vrec = need(viol, "recorded", "list", "violations")
    oom = need(data, "oom_events", "dict", "")
    ocount = need(oom, "count", "int", "oom_events")
    orec = need(oom, "recorded", "list", "oom_events")
    bcount, brec = 0, []
    if "budgets" in data:                  # written only when a budget is set
        budgets = need(data, "budgets", "dict", "")
        bcount = need(budgets, "oom_events", "int", "budgets")
        brec = need(budgets, "recorded", "list", "budgets")
    live = need(data, "live_at_exit", "dict", "")
    lcount = need_count(live, "count", "live_at_exit")
    lbytes = need_count(live, "bytes", "live_at_exit")
    lallocs = need(live, "allocations", "list", "live_at_exit")
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    unknown = need(summary, "unknown", "list", "summary") if "unknown" in summary else []
    # all checks passed: fill in
    proc.pid, proc.exe, proc.started = pid, exe, started
    proc.has_report = True
    proc.peak_bytes = peak
    proc.violation_count, proc.violations = vcount, [e for e in vrec if isinstance(e, dict)]
    proc.oom_count, proc.ooms = ocount, [e for e in orec if isinstance(e, dict)]
    proc.budget_count, proc.budget_ooms = bcount, [e for e in brec if isinstance(e, dict)]
    proc.leak_count, proc.leak_bytes = lcount, lbytes
    if lcount is None or lbytes is None:
        proc.leak_count = proc.leak_bytes = None
        untracked = summary.get("untracked_allocations")
        proc.unknown["leak"] = ("the shim could not track %s (out of host memory)"
                                % (plural(untracked, "allocation") if is_int(untracked) and untracked > 0
                                   else "every allocation"))
    for cond in unknown:
        if isinstance(cond, str) and cond not in proc.unknown:
            proc.unknown[cond] = "not measured (the report says unknown)"
    proc.leaks = [a for a in lallocs if isinstance(a, dict)]
    proc.devices = [d for d in data["devices"] if isinstance(d, dict)]
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    proc.allow = [r for r in list_or_empty(config.get("allow")) if isinstance(r, str)]
    proc.passthrough = [e.get("name") for e in list_or_empty(data.get("passthrough_lookups"))
                        if isinstance(e, dict) and isinstance(e.get("name"), str)]


class JournalRun(object):
    """The last run a journal records, read line by line (constant memory): counts,
    the first JOURNAL_KEEP events of each kind, and what the shim held back."""

    def __init__(self):
        self.pid = None
        self.exe = None
        self.started = ""
        self.has_start = False
        self.violation_count = 0
        self.oom_count = 0
        self.budget_count = 0
        self.violations = []
        self.ooms = []
        self.budget_ooms = []
        self.suppressed = 0       # events counted through "suppressed" summaries
        self.capped = False       # the journal reached VRAMGUARD_LOG_MAX: later events are not in it
        self.suppressing = False  # repeats were being suppressed: those after the last summary are not in it
        self.exited = False       # its exit line: every event is in it, or in a summary
        self.notes = []


def read_journal(path, visit=None):
    """Read the last run of a journal -> JournalRun, never holding more than a line
    and JOURNAL_KEEP events of each kind. visit(kind, event, n), when given, sees
    every violation and OOM event (n = 1) and every summary of suppressed repeats
    (n = how many it stands for; its size is the largest of them)."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise Malformed("cannot read journal: %s" % exc)
    with f:
        try:
            # a reused pid appends a new run to an old journal: find the last start line
            last_start = offset = 0
            first_lineno = lineno = 1
            for line in iter(lambda: f.readline(JOURNAL_LINE_MAX + 1), b""):
                if START_LINE_RE.match(line):
                    last_start, first_lineno = offset, lineno
                offset += len(line)
                lineno += line.endswith(b"\n")
            f.seek(last_start)
            run = JournalRun()
            lineno = first_lineno
            line = f.readline(JOURNAL_LINE_MAX + 1)
            while line:
                following = f.readline(JOURNAL_LINE_MAX + 1)
                apply_journal_line(run, line, lineno, not following, visit)
                lineno += 1
                line = following
        except OSError as exc:
            raise Malformed("cannot read journal: %s" % exc)
    if run.pid is None:
        m = PID_FROM_NAME_RE.search(os.path.basename(path))
        run.pid = int(m.group(1)) if m else None
    if not (run.has_start or run.violation_count or run.oom_count or run.budget_count or run.capped):
        raise Malformed("journal holds no events")
    return run


def apply_journal_line(run, line, lineno, last, visit):
    if not line.strip():
        return
    try:
        if not line.endswith(b"\n") and not last:
            raise ValueError("longer than %d bytes" % JOURNAL_LINE_MAX)
        ev = json.loads(line.decode("utf-8"))
        if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
            raise ValueError("not an event object")
        kind = ev["event"]
        count = ev.get("count") if kind == "suppressed" else 1
        if not is_int(count) or count < 0:
            raise ValueError("a suppressed summary without a count")
    except (ValueError, RecursionError) as exc:
        if last:            # last line without newline: cut short by a kill
            run.notes.append("ignored a truncated last journal line")
            return
        raise Malformed("journal line %d: %s" % (lineno, exc))
    if run.pid is None and is_int(ev.get("pid")):
        run.pid = ev["pid"]
    if kind == "start":
        run.has_start = True
        run.exe = ev.get("exe") if isinstance(ev.get("exe"), str) else None
        run.started = ev.get("time") if isinstance(ev.get("time"), str) else ""
        return
    if kind == "capped":
        run.capped = True
        return
    if kind == "suppressing":
        run.suppressing = True
        return
    if kind == "exit":
        run.exited = True
        return
    if kind == "suppressed":
        kind = ev.get("of")
        run.suppressed += count
    body = dict((k, v) for k, v in ev.items() if k not in ("event", "pid", "of", "count", "since"))
    if kind == "violation":
        run.violation_count += count
        if ev["event"] != "suppressed" and len(run.violations) < JOURNAL_KEEP:
            run.violations.append(body)
    elif kind == "oom" and "budget" in ev:    # refused by a VRAMGUARD_LIMIT budget
        kind = "budget"
        run.budget_count += count
        if ev["event"] != "suppressed" and len(run.budget_ooms) < JOURNAL_KEEP:
            run.budget_ooms.append(body)
    elif kind == "oom":
        run.oom_count += count
        if ev["event"] != "suppressed" and len(run.ooms) < JOURNAL_KEEP:
            run.ooms.append(body)
    else:
        return              # an event this version does not know
    if visit is not None:
        visit(kind, body, count)


def load_endpoint(path, complete_only=False):
    """The address a process bound, from vramguard.<pid>.json.endpoint -> (pid, url),
    or None when the file is unreadable, empty, or (complete_only) not yet a
    whole line."""
    m = ENDPOINT_RE.match(os.path.basename(path))
    try:
        with open(path, "rb") as f:
            raw = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return None
    if complete_only and "\n" not in raw:
        return None
    line = raw.strip().splitlines()[0].strip() if raw.strip() else ""
    if not line:
        return None
    if not (line.startswith("unix:") or "://" in line):
        line = "http://" + line          # HOST:PORT as written by hand
    return (int(m.group(1)) if m else None), line


def apply_journal(proc, run):
    """A process known from its journal only (killed, or its report unreadable)."""
    proc.journal_start = proc.journal_start or run.has_start
    if proc.pid is None:
        proc.pid = run.pid
    proc.exe = proc.exe or run.exe
    proc.started = proc.started or run.started
    proc.notes.extend(run.notes)
    proc.violation_count += run.violation_count
    proc.violations.extend(run.violations)
    proc.oom_count += run.oom_count
    proc.ooms.extend(run.ooms)
    proc.budget_count += run.budget_count
    proc.budget_ooms.extend(run.budget_ooms)
    proc.unknown.setdefault("leak", "no report: allocations live at its end are not known")
    if run.suppressed:
        proc.notes.append("%s counted from summaries of suppressed repeats"
                          % plural(run.suppressed, "event"))
    if run.suppressing and not run.exited:
        proc.at_least = True
        proc.notes.append("repeated events were being suppressed (written as summaries every %d s "
                          "and at exit): those after its last summary are not in its journal, its "
                          "counts are lower bounds" % REPEATS_PERIOD_S)
    if run.capped:
        proc.at_least = True
        proc.notes.append("its journal reached VRAMGUARD_LOG_MAX: events after the cap are not "
                          "in it, its counts are lower bounds")
        for cond, count in (("violation", run.violation_count), ("oom", run.oom_count),
                            ("budget", run.budget_count)):
            if count == 0:
                proc.unknown.setdefault(cond, "its journal reached its cap before the end")


def classify(path):
    if path.endswith(JOURNAL_SUFFIX):
        return "journal"
    if path.endswith(ENDPOINT_SUFFIX):
        return "endpoint"
    return "report"


def collect_paths(args, warn):
    """Expand directories into their vramguard.*.json reports, *.journal and
    vramguard.<pid>.json.endpoint files."""
    files = []
    for arg in args:
        if os.path.isdir(arg):
            try:
                names = sorted(os.listdir(arg))
            except OSError as exc:
                warn("cannot list %s: %s" % (arg, exc))
                continue
            for name in names:
                full = os.path.join(arg, name)
                if ((REPORT_RE.match(name) or name.endswith(JOURNAL_SUFFIX)
                     or ENDPOINT_RE.match(name)) and os.path.isfile(full)):
                    files.append(full)
        elif os.path.exists(arg):
            files.append(arg)
        else:
            warn("%s: no such file or directory" % arg)
    seen, unique = set(), []
    for path in files:                  # a file named twice counts once
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


class Aggregate(object):
    def __init__(self, procs, fail_on, endpoints=(), require_cuda=False):
        self.procs = procs
        self.fail_on = list(fail_on)
        self.endpoints = sorted(endpoints, key=lambda e: (e[0] is None, e[0] or 0, e[1]))
        self.require_cuda = require_cuda
        self.reached = sum(1 for p in procs if p.reached)
        self.violations = sum(p.violation_count for p in procs)
        self.ooms = sum(p.oom_count for p in procs)
        self.budget_ooms = sum(p.budget_count for p in procs)
        self.leaks = sum(p.leak_count or 0 for p in procs)
        self.leak_bytes = sum(p.leak_bytes or 0 for p in procs)
        self.errors = sum(1 for p in procs if p.errors)
        self.reasons = []
        for cond, total in (("violation", self.violations), ("oom", self.ooms),
                            ("leak", self.leaks), ("budget", self.budget_ooms)):
            if cond in self.fail_on and total > 0:
                self.reasons.append(cond)
        if require_cuda and self.reached == 0:
            self.reasons.append("require-cuda")
        for p in procs:
            p.reasons = [c for c, n in (("violation", p.violation_count), ("oom", p.oom_count),
                                        ("leak", p.leak_count or 0), ("budget", p.budget_count))
                         if c in self.fail_on and n > 0]
            p.unknown_reasons = [c for c in self.fail_on if c in p.unknown and c not in p.reasons]
        # A fail-on condition some process could not measure never passes: the
        # verdict claims nothing that was not measured.
        self.unknown = [c for c in self.fail_on if c not in self.reasons
                        and any(c in p.unknown_reasons for p in procs)]

    @property
    def failed(self):
        return bool(self.reasons or self.unknown)

    @property
    def passed(self):
        return not self.failed and not self.errors


def aggregate(paths, fail_on, require_cuda=False):
    """One Proc per process from report and journal files; the single aggregation
    used by both 'run' and 'report'.  A report wins over its journal (same events);
    a journal without a report is a process killed before it could write one."""
    reports = [p for p in paths if classify(p) == "report"]
    journals = [p for p in paths if classify(p) == "journal"]
    endpoints = [e for e in (load_endpoint(p) for p in paths if classify(p) == "endpoint") if e]
    procs, by_path = [], {}
    for path in reports:
        proc = Proc(path=path)
        proc.report_file = True
        try:
            load_report(path, proc)
        except Malformed as exc:
            proc.errors.append("%s: %s" % (path, exc))
            m = PID_FROM_NAME_RE.search(os.path.basename(path))
            proc.pid = int(m.group(1)) if m else None
        procs.append(proc)
        by_path[os.path.abspath(path)] = proc
    paired = set()
    for path in journals:
        try:
            if os.path.getsize(path) == 0:
                continue        # created, never written: the process wrote no start line
        except OSError:
            pass
        try:
            run = read_journal(path)
        except Malformed as exc:
            run = None
            journal_error = "%s: %s" % (path, exc)
        else:
            journal_error = None
        pid = run.pid if run is not None else None
        owner = by_path.get(os.path.abspath(path[:-len(JOURNAL_SUFFIX)]))
        if owner is None and pid is not None:      # same pid, different file name
            same = [p for p in procs if p.has_report and p.pid == pid and id(p) not in paired]
            owner = same[0] if len(same) == 1 else None
        if owner is not None:
            paired.add(id(owner))
            if owner.has_report:
                continue                            # the report already holds these events
            # the report is unreadable: fall back on the journal's events
            if journal_error:
                owner.errors.append(journal_error)
            else:
                apply_journal(owner, run)
                owner.notes.append("events taken from the journal")
            continue
        proc = Proc(pid=pid, path=path)
        if journal_error:
            proc.errors.append(journal_error)
            m = PID_FROM_NAME_RE.search(os.path.basename(path))
            proc.pid = int(m.group(1)) if m else None
        else:
            proc.journal_only = True
            apply_journal(proc, run)
        procs.append(proc)
    procs.sort(key=Proc.sort_key)
    return Aggregate(procs, fail_on, endpoints, require_cuda)

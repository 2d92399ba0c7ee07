"""Printing: the text summary and verdict (stderr), and the Markdown summary
of a CI job (stdout)."""

import os
import sys

from . import sites
from .common import GuardError, human, is_int, plural
from .options import fail_on_text

VRAM_KINDS = ("device", "pool", "vmm", "array")   # the kinds charged to VRAM
PURPOSES = ("weights", "kv_cache", "intermediate", "unknown")
MARKDOWN_ROWS = 20     # violations / OOM events listed in the Markdown summary
SHOW_EVENTS = 5        # events printed per process and kind

NO_CUDA_TEXT = ("no process of the command reached the CUDA driver (--require-cuda): no "
                "report and no journal with a start line. A fully static binary cannot "
                "preload libvramguard.so, a program may not use CUDA at all, or it reached "
                "the GPU by a path vramguard does not see")


def describe_event(ev, with_kind):
    def g(key):
        val = ev.get(key)
        return "-" if val is None else str(val)
    size = ev.get("size")
    parts = ["%s size %s" % (g("api"), "%s (%d B)" % (human(size), size) if is_int(size)
                                       else g("size"))]
    if with_kind:
        parts.append("kind " + g("kind"))
    parts.append("purpose " + g("purpose"))
    if ev.get("label") is not None:
        parts.append("label " + g("label"))
    parts.append("device " + g("device"))
    parts.append(sites.where(ev))
    if with_kind:
        parts.append("action " + g("action"))
    parts.append("result " + g("result"))
    if ev.get("budget") is not None:
        limit = ev.get("budget_limit")
        parts.append("budget %s%s" % (g("budget"), " (%s)" % human(limit) if is_int(limit) else ""))
    return ", ".join(parts)


def shows_budgets(agg):
    """Budget OOMs get a place in the summaries when there are any or
    --fail-on names them (else the lines stay as they were)."""
    return "budget" in agg.fail_on or agg.budget_ooms > 0


def proc_status(proc):
    if proc.errors and not proc.journal_only and not proc.has_report:
        base = "error"
    elif proc.journal_only:
        base = "killed, no report"
    else:
        base = "pass" if not proc.reasons else "fail"
    if proc.reasons and base != "fail":
        base += ", fail"
    if proc.reasons:
        base += " (%s)" % ", ".join(proc.reasons)
    if proc.unknown_reasons:
        if base == "pass":
            base = "unknown"
        base += " (%s unknown)" % ", ".join(proc.unknown_reasons)
    return base


def shown_entries(agg):
    """The events and leaks a summary may print: their sites are resolved in
    one go (sites.prefetch)."""
    for p in agg.procs:
        for key in ("violations", "ooms", "budget_ooms", "leaks"):
            for e in getattr(p, key):
                yield e


def print_summary(agg, out, quiet=False, command_line=None, header_note=None, purposes=False):
    """The text summary: a line per process (its events below it), with
    `purposes` the per-purpose table, then the verdict line."""
    fail_on = agg.fail_on
    if not quiet:
        sites.prefetch(shown_entries(agg))
        out("%s reached the CUDA driver%s" % (
            plural(len(agg.procs), "process", "processes"),
            " (%s)" % header_note if header_note else ""))
        for p in agg.procs:
            leaked = ("unknown (%s)" % p.unknown.get("leak", "no report") if p.leak_count is None
                      else "%d (%s)" % (p.leak_count, human(p.leak_bytes)))
            least = "at least " if p.at_least else ""
            budget = ("; budget OOMs %s%d" % (least, p.budget_count) if shows_budgets(agg) else "")
            out("pid %s %s: %s; peak tracked %s; violations %s%d; OOM events %s%d%s; "
                "leaked allocations %s" % (
                    p.pid if p.pid is not None else "?", p.exe or "(exe unknown)",
                    proc_status(p), human(p.peak_bytes), least, p.violation_count, least,
                    p.oom_count, budget, leaked))
            for err in p.errors:
                out("  error: %s" % err)
            for cond in p.unknown_reasons:
                out("  unknown: %s: %s" % (cond, p.unknown[cond]))
            for note in p.notes:
                out("  note: %s" % note)
            for label, count, events, with_kind, more in (
                    ("violation", p.violation_count, p.violations, True, "violations"),
                    ("oom", p.oom_count, p.ooms, False, "OOM events"),
                    ("budget oom", p.budget_count, p.budget_ooms, False, "budget OOMs")):
                for ev in events[:SHOW_EVENTS]:
                    out("  %s: %s" % (label, describe_event(ev, with_kind)))
                if count > min(len(events), SHOW_EVENTS):
                    out("  ... %d more %s" % (count - min(len(events), SHOW_EVENTS), more))
            if "leak" in fail_on and p.leaks:
                for a in p.leaks[:SHOW_EVENTS]:
                    size = a.get("size")
                    detail = ["kind %s" % a.get("kind"), "purpose %s" % a.get("purpose"),
                              "device %s" % a.get("device")]
                    if a.get("label") is not None:
                        detail.append("label %s" % a.get("label"))
                    out("  leak: %s at %s (%s) from %s %s" % (
                        "%s (%d B)" % (human(size), size) if is_int(size) else size,
                        a.get("address"), ", ".join(detail), a.get("api"), sites.where(a)))
                if (p.leak_count or 0) > min(len(p.leaks), SHOW_EVENTS):
                    out("  ... %d more leaked allocations" % (p.leak_count - min(len(p.leaks), SHOW_EVENTS)))
        if purposes:
            print_purposes(agg, out)
        for pid, url in agg.endpoints:
            out("pid %s endpoint %s" % (pid if pid is not None else "?", url))
        if "require-cuda" in agg.reasons:
            out("error: %s" % NO_CUDA_TEXT)
        elif not agg.procs:
            out("note: no process reached the CUDA driver, nothing was checked")
        if command_line:
            out(command_line)
    out("verdict: %s (%s)" % ("pass" if agg.passed else "fail", verdict_details(agg)))


def verdict_details(agg):
    """Why the verdict is what it is: '; '-joined, shared by text and Markdown."""
    details = []
    if "violation" in agg.reasons:
        details.append("violation: %s" % plural(agg.violations, "violation"))
    if "oom" in agg.reasons:
        details.append("oom: %s" % plural(agg.ooms, "OOM event"))
    if "leak" in agg.reasons:
        details.append("leak: %s, %s" % (plural(agg.leaks, "allocation"), human(agg.leak_bytes)))
    if "budget" in agg.reasons:
        details.append("budget: %s" % plural(agg.budget_ooms, "budget OOM"))
    for cond in agg.unknown:
        n = sum(1 for p in agg.procs if cond in p.unknown_reasons)
        details.append("%s: unknown for %s" % (cond, plural(n, "process", "processes")))
    if "require-cuda" in agg.reasons:
        details.append("require-cuda: no process reached the CUDA driver")
    if agg.errors:
        details.append("report errors: %d" % agg.errors)
    details.append("fail-on: %s" % fail_on_text(agg.fail_on))
    details.append(plural(len(agg.procs), "process", "processes"))
    return "; ".join(details)


# --------------------------------------------------------------------------
# Markdown (a CI job summary, e.g. >> "$GITHUB_STEP_SUMMARY")

def md_cell(value):
    """Text safe inside a Markdown table cell."""
    text = "-" if value is None else str(value)
    text = " ".join(text.split())
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
                 ("`", "\\`"), ("*", "\\*"), ("_", "\\_"), ("[", "\\["), ("]", "\\]")):
        text = text.replace(a, b)
    return text or "-"


def md_code(value):
    """A cell as inline code (no escaping inside; backticks and pipes replaced)."""
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split()).replace("`", "'").replace("|", "\\|")
    return "`%s`" % text


def md_table(header, rows, align=None):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(("---:" if a == "r" else "---") for a in
                            (align or "l" * len(header))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return lines


def md_bytes(n):
    return "-" if n is None else human(n)


def vram_peak(dev):
    """A device's peak of live VRAM: peak_vram_bytes, else the sum of the VRAM
    kinds' peaks (an upper bound)."""
    if is_int(dev.get("peak_vram_bytes")):
        return dev["peak_vram_bytes"]
    return sum(r.get("peak_bytes") for r in dev.get("usage") or []
               if isinstance(r, dict) and r.get("kind") in VRAM_KINDS
               and is_int(r.get("peak_bytes")))


PURPOSE_HEADER = ["purpose", "device (peak)", "pool (peak)", "vmm (peak)", "array (peak)",
                  "peak", "live at exit", "allocations"]


def purpose_table(agg):
    """VRAM by purpose, the VRAM kinds summed over every process and device:
    [(purpose, {kind: peak}, peak, live, allocations)], the known purposes
    first, then a ("total", ...) row; [] when no report has a usage row."""
    cells = {}
    for p in agg.procs:
        for d in p.devices:
            for row in d.get("usage") or []:
                if not isinstance(row, dict) or row.get("kind") not in VRAM_KINDS:
                    continue
                c = cells.setdefault(str(row.get("purpose")), {"peak": 0, "live": 0, "allocs": 0,
                                                               "kinds": dict((k, 0) for k in VRAM_KINDS)})
                c["peak"] += row.get("peak_bytes") if is_int(row.get("peak_bytes")) else 0
                c["live"] += row.get("live_bytes") if is_int(row.get("live_bytes")) else 0
                c["allocs"] += row.get("allocations") if is_int(row.get("allocations")) else 0
                c["kinds"][row["kind"]] += row.get("peak_bytes") if is_int(row.get("peak_bytes")) else 0
    if not cells:
        return []
    order = [x for x in PURPOSES if x in cells] + sorted(x for x in cells if x not in PURPOSES)
    tot = {"peak": 0, "live": 0, "allocs": 0, "kinds": dict((k, 0) for k in VRAM_KINDS)}
    rows = []
    for purpose in order:
        c = cells[purpose]
        rows.append((purpose, c["kinds"], c["peak"], c["live"], c["allocs"]))
        for key in ("peak", "live", "allocs"):
            tot[key] += c[key]
        for k in VRAM_KINDS:
            tot["kinds"][k] += c["kinds"][k]
    rows.append(("total", tot["kinds"], tot["peak"], tot["live"], tot["allocs"]))
    return rows


def print_purposes(agg, out):
    """The per-purpose table of the Markdown summary, as text lines."""
    table = purpose_table(agg)
    if not table:
        return
    rows = [PURPOSE_HEADER] + [[purpose] + [human(kinds[k]) for k in VRAM_KINDS]
                               + [human(peak), human(live), str(allocs)]
                               for purpose, kinds, peak, live, allocs in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(PURPOSE_HEADER))]
    out("VRAM by purpose (each row's own peak, summed over processes and devices):")
    for r in rows:
        out("  " + "  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i])
                             for i in range(len(r))).rstrip())


def print_markdown(agg, write, title="vramguard"):
    """The run's summary as GitHub-flavoured Markdown: processes, VRAM by
    purpose, violations, OOM events, verdict."""
    lines = []
    verdict = "pass" if agg.passed else "fail"
    sites.prefetch(shown_entries(agg))
    lines.append("## %s: %s" % (title, "\u2705 pass" if agg.passed else "\u274c fail"))
    lines.append("")
    lines.append("%s reached the CUDA driver; fail-on: `%s`%s." % (
        plural(agg.reached, "process", "processes"), fail_on_text(agg.fail_on),
        "; `--require-cuda`" if agg.require_cuda else ""))
    lines.append("")
    if "require-cuda" in agg.reasons:
        lines.append("> **Error:** %s." % md_cell(NO_CUDA_TEXT))
        lines.append("")

    if agg.procs:
        lines.append("### Processes")
        lines.append("")
        rows = []
        for p in agg.procs:
            charged = (sum(d.get("charged_bytes") for d in p.devices
                           if is_int(d.get("charged_bytes")))
                       if p.has_report else None)
            peak = (sum(vram_peak(d) for d in p.devices) if p.has_report else None)
            leaked = ("unknown" if p.leak_count is None
                      else "%d (%s)" % (p.leak_count, human(p.leak_bytes)))
            rows.append([str(p.pid) if p.pid is not None else "?",
                         md_code(os.path.basename(p.exe) if p.exe else None),
                         md_cell(proc_status(p)), md_bytes(peak), md_bytes(charged),
                         str(p.violation_count), str(p.oom_count)]
                        + ([str(p.budget_count)] if shows_budgets(agg) else [])
                        + [md_cell(leaked)])
        budget = shows_budgets(agg)
        lines += md_table(["pid", "exe", "status", "peak VRAM", "charged at exit",
                           "violations", "OOM events"] + (["budget OOMs"] if budget else [])
                          + ["leaked"], rows, "rllrrrr" + ("r" if budget else "") + "r")
        lines.append("")
        errors = [(p, e) for p in agg.procs for e in p.errors]
        for p, e in errors:
            lines.append("- pid %s: report error: %s" % (p.pid if p.pid is not None else "?",
                                                         md_cell(e)))
        if errors:
            lines.append("")

    devs = [(p, d) for p in agg.procs for d in p.devices]
    table = purpose_table(agg)
    if table:
        lines.append("### VRAM by purpose")
        lines.append("")
        rows = []
        for i, (purpose, kinds, peak, live, allocs) in enumerate(table):
            total = i == len(table) - 1
            rows.append(["**total**" if total else md_code(purpose)]
                        + [md_bytes(kinds[k]) for k in VRAM_KINDS]
                        + [md_bytes(peak), md_bytes(live), str(allocs)])
        lines += md_table(PURPOSE_HEADER, rows, "lrrrrrrr")
        lines.append("")
        lines.append("Peaks are summed over processes and devices (each row's own peak).")
        lines.append("")
    if devs:
        lines.append("### Devices")
        lines.append("")
        rows = []
        for p, d in devs:
            def b(key):
                return md_bytes(d.get(key)) if is_int(d.get(key)) else "-"
            rows.append([str(p.pid), md_cell(d.get("device")), md_cell(d.get("name")),
                         b("charged_bytes"), b("peak_vram_bytes"), b("pool_reserved_bytes"),
                         b("pool_cache_bytes"), b("graph_reserved_bytes"), b("total_bytes")])
        lines += md_table(["pid", "device", "name", "charged at exit", "peak VRAM",
                           "pool reserve", "pool cache", "graph reserve", "total"],
                          rows, "rrlrrrrrr")
        lines.append("")
        passthrough = sorted(set(n for p in agg.procs for n in p.passthrough))
        if passthrough:
            lines.append("Passed-through entry points looked up (their memory is untracked, "
                         "see docs/entry-points.md): %s." % ", ".join(md_code(n) for n in passthrough))
            lines.append("")

    for title_, count, key, header, fields in (
            ("Violations", agg.violations, "violations",
             ["pid", "api", "size", "kind", "purpose", "caller", "action"],
             ("api", "size", "kind", "purpose", "caller", "action")),
            ("OOM events", agg.ooms, "ooms",
             ["pid", "api", "size", "purpose", "device", "caller"],
             ("api", "size", "purpose", "device", "caller")),
            ("Budget OOMs", agg.budget_ooms, "budget_ooms",
             ["pid", "api", "size", "purpose", "device", "caller", "budget"],
             ("api", "size", "purpose", "device", "caller", "budget"))):
        if not count:
            continue
        lines.append("### %s (%d)" % (title_, count))
        lines.append("")
        rows, shown = [], 0
        for p in agg.procs:
            for ev in getattr(p, key):
                if shown == MARKDOWN_ROWS:
                    break
                shown += 1
                row = [str(p.pid)]
                for f in fields:
                    v = ev.get(f)
                    if f == "size":
                        row.append(human(v) if is_int(v) else md_cell(v))
                    elif f == "caller" and sites.describe(ev) is not None:
                        row.append(md_code(sites.describe(ev)))
                    elif f in ("api", "caller", "kind", "purpose", "budget"):
                        row.append(md_code(v))
                    else:
                        row.append(md_cell(v))
                rows.append(row)
        lines += md_table(header, rows, "rl" + "r" + "l" * (len(header) - 3))
        if count > shown:
            lines.append("")
            lines.append("... and %d more (the reports hold the first 64 per process)."
                         % (count - shown))
        lines.append("")

    if agg.endpoints:
        lines.append("### Endpoints")
        lines.append("")
        for pid, url in agg.endpoints:
            lines.append("- pid %s: %s" % (pid if pid is not None else "?", md_code(url)))
        lines.append("")

    lines.append("**Verdict: %s** (%s)" % (verdict, md_cell(verdict_details(agg))))
    write("\n".join(lines) + "\n")


def write_stdout(text):
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()
    except OSError as exc:
        raise GuardError("cannot write the Markdown summary: %s" % exc)

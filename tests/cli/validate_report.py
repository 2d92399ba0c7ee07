#!/usr/bin/env python3
"""Validate vramguard reports (and journals) against docs/report.schema.json.

usage: validate_report.py [--schema FILE] [--schema-only] FILE...

FILE is a report (vramguard.<pid>.json) or a journal (*.journal: each line is
checked against $defs/journal_event). Besides the JSON Schema, reports get
the consistency checks the schema cannot express (counts vs. recorded lists,
summary vs. sections and config.fail_on); --schema-only skips them.
Exit 0 when every file is valid, 1 when any is not (errors on stderr), 2 on
usage errors. Needs the jsonschema package (Debian: python3-jsonschema).
"""
import argparse
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.realpath(os.path.abspath(__file__)))
DEFAULT_SCHEMA = os.path.normpath(os.path.join(HERE, "..", "..", "docs", "report.schema.json"))


def where(err):
    return "/".join(str(p) for p in err.absolute_path) or "(top level)"


def consistency(doc):
    """Rules of vramguard.report/v1 beyond the schema; returns a list of messages.
    A running process's /vram (process.state "running") has "live" and no leak
    verdict; an exit report has "live_at_exit" and judges leaks."""
    errs = []
    running = doc["process"].get("state") == "running"
    live_key = "live" if running else "live_at_exit"
    v, o, l, s = doc["violations"], doc["oom_events"], doc[live_key], doc["summary"]
    for name, sec in (("violations", v), ("oom_events", o)):
        if len(sec["recorded"]) != min(sec["count"], 64):
            errs.append("%s: recorded holds %d events, expected min(count=%d, 64)"
                        % (name, len(sec["recorded"]), sec["count"]))
    live_known = l["count"] != "unknown" and l["bytes"] != "unknown"
    untracked = s.get("untracked_allocations", 0)
    if live_known != (untracked == 0) or (l["count"] == "unknown") != (l["bytes"] == "unknown"):
        errs.append("%s: count %r and bytes %r must be \"unknown\" exactly when "
                    "summary.untracked_allocations (%r) > 0" % (live_key, l["count"], l["bytes"], untracked))
    if live_known and len(l["allocations"]) > l["count"]:
        errs.append("%s: %d allocations listed but count is %d"
                    % (live_key, len(l["allocations"]), l["count"]))
    elif live_known and len(l["allocations"]) == l["count"]:
        total = sum(a["size"] for a in l["allocations"])
        if total != l["bytes"]:
            errs.append("%s: bytes is %d but the listed sizes add up to %d"
                        % (live_key, l["bytes"], total))
    counts = [("violations", v["count"]), ("oom_events", o["count"])]
    if not running:
        counts += [("leaked_allocations", l["count"]), ("leaked_bytes", l["bytes"])]
    for key, val in counts:
        if s[key] != val:
            errs.append("summary.%s is %r, expected %r" % (key, s[key], val))
    budget_ooms = (doc.get("budgets") or {}).get("oom_events", 0)
    occurred = {"violation": v["count"] > 0, "oom": o["count"] > 0,
                "leak": not running and live_known and l["count"] > 0, "budget": budget_ooms > 0}
    unknown = [] if live_known or running else ["leak"]
    if sorted(s.get("unknown", [])) != sorted(unknown):
        errs.append("summary.unknown is %s, expected %s" % (s.get("unknown"), unknown))
    expected = [c for c in doc["config"]["fail_on"] if occurred.get(c)]
    if sorted(s["reasons"]) != sorted(expected):
        errs.append("summary.reasons is %s, expected %s (config.fail_on %s)"
                    % (s["reasons"], expected, doc["config"]["fail_on"]))
    status = ("fail" if expected else "running" if running else
              "unknown" if any(c in doc["config"]["fail_on"] for c in unknown) else "pass")
    if s["status"] != status:
        errs.append("summary.status is %r, expected %r" % (s["status"], status))
    for i, dev in enumerate(doc["devices"]):
        for j, row in enumerate(dev["usage"]):
            if row["peak_bytes"] < row["live_bytes"]:
                errs.append("devices/%d/usage/%d: peak_bytes < live_bytes" % (i, j))
    return errs


def check_file(path, schema, semantic):
    errs = []
    try:
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return ["cannot read: %s" % exc]
    if path.endswith(".journal"):
        sub = {"$schema": schema.get("$schema"), "$defs": schema["$defs"],
               "$ref": "#/$defs/journal_event"}
        validator = jsonschema.Draft202012Validator(sub)
        for n, line in enumerate(raw.split("\n"), 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError as exc:
                errs.append("line %d: not JSON: %s" % (n, exc))
                continue
            for e in sorted(validator.iter_errors(ev), key=lambda e: list(e.absolute_path)):
                errs.append("line %d: %s: %s" % (n, where(e), e.message))
        return errs
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        return ["not JSON: %s" % exc]
    validator = jsonschema.Draft202012Validator(schema)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errs.append("%s: %s" % (where(e), e.message))
    if not errs and semantic:
        errs.extend(consistency(doc))
    return errs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--schema-only", action="store_true")
    ap.add_argument("files", nargs="+", metavar="FILE")
    a = ap.parse_args()
    with open(a.schema) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    bad = 0
    for path in a.files:
        errs = check_file(path, schema, not a.schema_only)
        if errs:
            bad += 1
            for e in errs:
                sys.stderr.write("%s: invalid: %s\n" % (path, e))
        else:
            sys.stdout.write("%s: valid\n" % path)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

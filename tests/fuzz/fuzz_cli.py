#!/usr/bin/env python3
"""Fuzz the CLI's report and journal reader (scripts/vramguard_cli: aggregate,
then the summary, the Markdown summary and suggest, as `vramguard report`
and `vramguard suggest` run them).

No coverage guidance: a mutation loop over the corpus (reports *.json and
journals *.journal). Each execution writes one mutated report and its
journal (byte-level mutations, or a JSON value replaced by one of another
type, removed, or nested deeply) and reads them back. A crash is any
exception that escapes; malformed input must be reported as such, never
raise, and none may take more than 10 s (a hang). Crashing inputs are kept
in build-fuzz/cli-crashes/.

  fuzz_cli.py --corpus DIR --runs N [--jobs J] [--seed S]
  fuzz_cli.py --corpus DIR --replay     each committed input once, unchanged
"""
import argparse
import contextlib
import copy
import io
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


sys.path.insert(0, os.path.join(ROOT, "scripts"))
from vramguard_cli import reports, render, suggest   # noqa: E402  (the CLI's package)


ODD_VALUES = [None, True, False, 0, -1, 1, 2 ** 63, -(2 ** 63) - 1, 2 ** 70, 1.5, float("inf"), "", "x",
              "\u0000\u202e", [], {}, [None], {"": None}, "0x7e0000000000", "-1", " " * 3]


def odd_value(rng):
    """A fresh copy each time: the lists and objects in ODD_VALUES would
    otherwise be shared between inputs, grow with each mutation that appends
    to them, and end in cycles that made a job's mutator take 14 GB."""
    if rng.random() < 0.05:
        v = copy.deepcopy(rng.choice(ODD_VALUES))
        for _ in range(rng.randint(1, 3000)):   # deep nesting
            v = [v]
        return v
    return copy.deepcopy(rng.choice(ODD_VALUES))


def nodes(obj, depth=0):
    """Every (container, key) pair in a JSON value, down to depth 64."""
    if depth > 64:
        return
    if isinstance(obj, dict):
        for k in list(obj):
            yield obj, k
            yield from nodes(obj[k], depth + 1)
    elif isinstance(obj, list):
        for i in range(len(obj)):
            yield obj, i
            yield from nodes(obj[i], depth + 1)


def mutate_json(text, rng):
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return mutate_bytes(text.encode("utf-8", "replace"), rng).decode("utf-8", "replace")
    spots = list(nodes(obj))
    for _ in range(rng.randint(1, 4)):
        if not spots:
            break
        container, key = rng.choice(spots)
        op = rng.random()
        try:
            if op < 0.6:
                container[key] = odd_value(rng)
            elif op < 0.8:
                del container[key]
                spots = list(nodes(obj))
            elif isinstance(container, list):
                container.append(container[key])
            else:
                container[key + rng.choice(["", "_", "x"])] = odd_value(rng)
        except (KeyError, IndexError, TypeError):
            pass
    try:
        return json.dumps(obj)
    except (ValueError, RecursionError):
        return text


def mutate_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        pos = rng.randint(0, len(data)) if data else 0
        if op < 0.3 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randint(0, 7)
        elif op < 0.5:
            data[pos:pos] = bytes([rng.choice(b'{}[]",:0123456789-\n\x00\xff e')])
        elif op < 0.7 and data:
            end = min(len(data), pos + rng.randint(1, 64))
            del data[pos:end]
        elif data:
            end = min(len(data), pos + rng.randint(1, 64))
            data[pos:pos] = data[pos:end]
    return bytes(data)


def mutate_journal(text, rng):
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.6:
            lines[i] = mutate_json(lines[i], rng) if lines[i].strip() else lines[i]
        elif op < 0.75:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op < 0.9 and len(lines) > 1:
            del lines[i]
        else:
            lines[i] = lines[i][: rng.randint(0, len(lines[i]))]   # cut short, as by a kill
    return "\n".join(lines)


def read_corpus(directory):
    reports, journals = [], []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read().decode("utf-8", "replace")
        (journals if name.endswith(".journal") else reports).append(data)
    return reports, journals


def execute(work, report, journal, journal_only=False):
    """One execution: what `vramguard report` and `suggest` do with the pair
    (journal_only: a process killed before it wrote its report)."""
    rpath = os.path.join(work, "vramguard.4242.json")
    with open(rpath + ".journal", "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(journal)
    paths = [rpath + ".journal"]
    if not journal_only:
        with open(rpath, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(report)
        paths.append(rpath)
    out = io.StringIO()
    agg = reports.aggregate(paths, ["violation", "oom", "leak"])
    render.print_summary(agg, out.write, purposes=True)
    render.print_markdown(agg, out.write)
    suggest.suggest(agg, out.write)


SLOW_S = 10   # an execution slower than this counts as a crash (a hang)


class Slow(Exception):
    pass


def too_slow(signum, frame):
    raise Slow("one execution took more than %d s" % SLOW_S)


def worker(args):
    corpus, runs, seed, crash_dir = args
    rng = random.Random(seed)
    reports, journals = read_corpus(corpus)
    work = tempfile.mkdtemp(prefix="vg-fuzz-cli.", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    crashes = 0
    signal.signal(signal.SIGALRM, too_slow)
    try:
        for n in range(runs):
            if n and n % 250000 == 0:
                print("fuzz_cli: job %d: %d executions, %d crashes" % (seed, n, crashes), flush=True)
            report, journal = rng.choice(reports), rng.choice(journals)
            which = rng.random()
            if which < 0.45:
                report = mutate_json(report, rng) if rng.random() < 0.7 else \
                    mutate_bytes(report.encode(), rng).decode("utf-8", "surrogateescape")
            if which > 0.35:
                journal = mutate_journal(journal, rng)
            try:
                signal.alarm(SLOW_S)
                with contextlib.redirect_stderr(io.StringIO()):
                    execute(work, report, journal, journal_only=which > 0.9)
                signal.alarm(0)
            except Exception:   # noqa: BLE001 -- anything that escapes is a crash, or a hang
                signal.alarm(0)
                crashes += 1
                os.makedirs(crash_dir, exist_ok=True)
                base = os.path.join(crash_dir, "crash-%d-%d" % (seed, n))
                with open(base + ".json", "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(report)
                with open(base + ".journal", "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(journal)
                with open(base + ".txt", "w") as f:
                    f.write(traceback.format_exc())
                if crashes >= 20:
                    return n + 1, crashes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return runs, crashes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--runs", type=int, default=100000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--crashes", default=os.path.join(ROOT, "build-fuzz", "cli-crashes"))
    a = ap.parse_args()
    reports, journals = read_corpus(a.corpus)
    if not reports or not journals:
        print("fuzz_cli: the corpus needs at least one report (*.json) and one journal (*.journal)")
        return 1
    if a.replay:
        work = tempfile.mkdtemp(prefix="vg-fuzz-cli.")
        try:
            for r in reports:
                for j in journals:
                    with contextlib.redirect_stderr(io.StringIO()):
                        execute(work, r, j)
                        execute(work, r, j, journal_only=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print("fuzz_cli: %d report x %d journal inputs replayed" % (len(reports), len(journals)))
        return 0
    per = [a.runs // a.jobs + (1 if i < a.runs % a.jobs else 0) for i in range(a.jobs)]
    tasks = [(a.corpus, per[i], a.seed * 1000 + i, a.crashes) for i in range(a.jobs)]
    if a.jobs == 1:
        results = [worker(tasks[0])]
    else:
        with multiprocessing.Pool(a.jobs) as pool:
            results = pool.map(worker, tasks)
    executed = sum(r[0] for r in results)
    crashes = sum(r[1] for r in results)
    print("fuzz_cli: %d executions, %d crashes, corpus %d reports + %d journals"
          % (executed, crashes, len(reports), len(journals)))
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

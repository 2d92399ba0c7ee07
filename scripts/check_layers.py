#!/usr/bin/env python3
"""Check that shim/ reads as three layers with dependencies pointing one way.

    interception  ->  model  <-  outputs
    (interception may also call outputs: it raises events)

A module is x.c + x.h; module A depends on module B when A's .c or .h
includes B's .h ("#include \"b.h\""). .def files are data, not modules;
headers outside the directory are ignored. The check fails (exit 1) on

  - any include cycle between modules (every elementary cycle is listed,
    with the files that make each edge), and
  - any include that the layer map below forbids: a model module including
    an interception or output header, an output module including an
    interception header, or a module missing from the map.

Usage: check_layers.py [DIR]          check DIR (default: shim/ next to this script)
       check_layers.py --self-test    prove the checker can fail (synthetic trees)
       check_layers.py --graph [DIR]  print the module graph
"""

import os
import re
import subprocess
import sys
import tempfile

INTERCEPTION, MODEL, OUTPUTS = "interception", "model", "outputs"

# Every module of shim/ and its layer. A new module must be added here (or
# be a hooks_* wrapper file): an unmapped module fails the check, so the map
# cannot silently fall behind.
LAYERS = {
    # interception: the CUDA boundary (dlsym, cuGetProcAddress, exported
    # driver and runtime wrappers) and the program's own way in (api.c: the
    # vramguard_shim_* functions and the fork handlers).
    "api": INTERCEPTION,
    "dlsym_hook": INTERCEPTION,
    "driver_queries": INTERCEPTION,
    "driver_hooks": INTERCEPTION,
    "entry_table": INTERCEPTION,
    "hook_protocol": INTERCEPTION,
    # hooks_*: every driver wrapper file (see layer_of)
    "real": INTERCEPTION,
    "runtime_hooks": INTERCEPTION,
    "wrappers": INTERCEPTION,
    # model: plain data, no output; reached from both sides.
    "config": MODEL,
    "devices": MODEL,
    "forksafe": MODEL,
    "holes": MODEL,
    "incidents": MODEL,
    "model": MODEL,
    "modules": MODEL,
    "policy": MODEL,
    "pools": MODEL,
    "process": MODEL,
    "purposes": MODEL,
    "rules": MODEL,
    "stacks": MODEL,
    "table": MODEL,
    "vmm": MODEL,
    # outputs: read the model, never the interception layer.
    "breakdown": OUTPUTS,
    "callers": OUTPUTS,
    "census": OUTPUTS,
    "emit": OUTPUTS,
    "endpoint": OUTPUTS,
    "events": OUTPUTS,
    "log": OUTPUTS,
    "metrics": OUTPUTS,
    "report": OUTPUTS,
}

# Which layer may include which.
ALLOWED = {
    INTERCEPTION: {INTERCEPTION, MODEL, OUTPUTS},
    MODEL: {MODEL},
    OUTPUTS: {OUTPUTS, MODEL},
}

MAX_CYCLES = 1000

INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def scan(directory):
    """Modules of `directory` and their edges: {module: {dep: [(file, line), ...]}}."""
    names = sorted(os.listdir(directory))
    modules = {os.path.splitext(n)[0] for n in names if n.endswith((".c", ".h"))}
    headers = {n for n in names if n.endswith(".h")}
    edges = {m: {} for m in modules}
    for n in names:
        if not n.endswith((".c", ".h")):
            continue
        with open(os.path.join(directory, n), encoding="utf-8", errors="replace") as f:
            text = f.read()
        # Blank out comments but keep line numbers.
        text = COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        src = os.path.splitext(n)[0]
        for match in INCLUDE.finditer(text):
            inc = match.group(1)
            if "/" in inc or inc not in headers:
                continue  # outside the directory (purpose_tags/, system)
            dep = os.path.splitext(inc)[0]
            if dep == src:
                continue
            line = text.count("\n", 0, match.start()) + 1
            edges[src].setdefault(dep, []).append((n, line))
    return modules, edges


def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative. Returns a list of SCCs (lists)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = [0]
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in nodes:
                    continue
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                result.append(sorted(comp))
    return result


def elementary_cycles(succ, limit):
    """Every elementary cycle (Johnson's algorithm), each starting at its
    smallest module, in a stable order; stops after `limit`."""
    cycles = []
    order = sorted(succ)
    for i, start in enumerate(order):
        allowed = set(order[i:])
        # Only the SCC that holds `start` within the remaining nodes matters.
        comp = next((c for c in strongly_connected(allowed, succ) if start in c), [start])
        if len(comp) < 2:
            continue
        comp = set(comp)
        blocked, blocked_by = set(), {v: set() for v in comp}
        path = [start]

        def unblock(u):
            todo = [u]
            while todo:
                x = todo.pop()
                if x in blocked:
                    blocked.discard(x)
                    todo.extend(blocked_by[x])
                    blocked_by[x].clear()

        # Iterative circuit search.
        blocked.add(start)
        stack = [(start, iter(sorted(w for w in succ.get(start, ()) if w in comp)), False)]
        while stack:
            v, it, found = stack[-1]
            pushed = False
            for w in it:
                if w == start:
                    cycles.append(list(path))
                    if len(cycles) >= limit:
                        return cycles
                    found = True
                elif w not in blocked:
                    stack[-1] = (v, it, found)
                    path.append(w)
                    blocked.add(w)
                    stack.append((w, iter(sorted(x for x in succ.get(w, ()) if x in comp)), False))
                    pushed = True
                    break
            if pushed:
                continue
            stack[-1] = (v, it, found)
            stack.pop()
            if found:
                unblock(v)
            else:
                for w in succ.get(v, ()):
                    if w in comp:
                        blocked_by[w].add(v)
            path.pop()
            if stack:
                pv, pit, pfound = stack[-1]
                stack[-1] = (pv, pit, pfound or found)
    return cycles


def where(edges, a, b):
    return ", ".join("%s:%d" % fl for fl in edges[a][b])


def layer_of(module):
    # Driver wrappers live in shim/hooks_*.c (README "Layout"): new ones need no entry.
    if module.startswith("hooks_"):
        return INTERCEPTION
    return LAYERS.get(module)


def check(directory, out=sys.stdout):
    modules, edges = scan(directory)
    succ = {m: set(edges[m]) for m in modules}
    problems = 0

    cycles = elementary_cycles(succ, MAX_CYCLES)
    if cycles:
        problems += len(cycles)
        more = " (stopped at %d)" % MAX_CYCLES if len(cycles) >= MAX_CYCLES else ""
        print("check_layers: %d include cycle(s) between modules of %s%s:" % (len(cycles), directory, more), file=out)
        through = {}
        for k, cyc in enumerate(cycles, 1):
            ring = cyc + [cyc[0]]
            print("  cycle %d: %s" % (k, " -> ".join(ring)), file=out)
            for a, b in zip(ring, ring[1:]):
                through[(a, b)] = through.get((a, b), 0) + 1
        # The includes that make them: removing one breaks every cycle through it.
        print("check_layers: the includes on those cycles (cycles through each):", file=out)
        for (a, b), n in sorted(through.items(), key=lambda e: (-e[1], e[0])):
            print("  %4d  %s -> %s  (%s)" % (n, a, b, where(edges, a, b)), file=out)

    unmapped = sorted(m for m in modules if layer_of(m) is None)
    for m in unmapped:
        problems += 1
        print("check_layers: module %s is not in the layer map (scripts/check_layers.py LAYERS)" % m, file=out)

    violations = []
    for a in sorted(modules):
        for b in sorted(edges[a]):
            la, lb = layer_of(a), layer_of(b)
            if la is None or lb is None or lb in ALLOWED[la]:
                continue
            violations.append("  %s (%s) includes %s (%s): %s" % (a, la, b, lb, where(edges, a, b)))
    if violations:
        problems += len(violations)
        print("check_layers: %d layer violation(s) (model includes only model; outputs include outputs and "
              "model):" % len(violations), file=out)
        for v in violations:
            print(v, file=out)

    if problems == 0:
        print("check_layers: %d modules, no include cycle, layers respected" % len(modules), file=out)
        return 0
    return 1


def print_graph(directory):
    modules, edges = scan(directory)
    for m in sorted(modules):
        print("%-14s %-12s -> %s" % (m, layer_of(m) or "?", " ".join(sorted(edges[m]))))


def self_test():
    """Run the checker on synthetic trees: it must pass a clean one and fail,
    naming the problem, on a cycle, a layer violation and an unmapped module."""

    def run(files):
        with tempfile.TemporaryDirectory(prefix="vg_layers_") as d:
            for name, text in files.items():
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, os.path.abspath(__file__), d], capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    cases = [
        # (name, files, expected exit, text the output must contain)
        ("clean", {
            "model.h": "", "table.h": '#include "model.h"\n', "table.c": '#include "table.h"\n',
            "report.c": '#include "report.h"\n#include "table.h"\n', "report.h": "#include <stdio.h>\n",
            "driver_hooks.c": '#include "report.h"\n#include "table.h"\n#include "entry_points.def"\n',
            "entry_points.def": '#include "driver_hooks.h"\n', "driver_hooks.h": "",
        }, 0, "no include cycle"),
        ("two-module cycle", {
            "log.h": "", "log.c": '#include "log.h"\n#include "emit.h"\n',
            "emit.h": "", "emit.c": '#include "emit.h"\n#include "log.h"\n',
        }, 1, "cycle 1: emit -> log -> emit"),
        ("three-module cycle through headers", {
            "events.h": '#include "report.h"\n', "report.h": '#include "metrics.h"\n',
            "metrics.h": '#include "events.h"\n',
        }, 1, "events -> report -> metrics -> events"),
        ("every cycle listed", {
            "events.h": "", "events.c": '#include "report.h"\n#include "metrics.h"\n',
            "report.h": "", "report.c": '#include "events.h"\n',
            "metrics.h": "", "metrics.c": '#include "events.h"\n',
        }, 1, "2 include cycle(s)"),
        ("model includes an output", {
            "table.h": "", "table.c": '#include "table.h"\n#include "log.h"\n', "log.h": "",
        }, 1, "table (model) includes log (outputs)"),
        ("output includes interception", {
            "report.c": '#include "real.h"\n', "real.h": "",
        }, 1, "report (outputs) includes real (interception)"),
        ("unmapped module", {"mystery.c": "", "mystery.h": ""}, 1, "mystery is not in the layer map"),
        ("commented include ignored", {
            "table.c": '/* #include "log.h" */\n// #include "log.h"\n', "log.h": "",
        }, 0, "no include cycle"),
    ]
    failed = 0
    for name, files, want_rc, want_text in cases:
        rc, text = run(files)
        ok = rc == want_rc and want_text in text
        failed += not ok
        print("self-test %-40s %s" % (name, "ok" if ok else "FAILED (exit %d):\n%s" % (rc, text)))
    return 1 if failed else 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(os.path.dirname(here), "shim")
    if argv[1:2] == ["--self-test"]:
        return self_test()
    if argv[1:2] == ["--graph"]:
        print_graph(argv[2] if len(argv) > 2 else default)
        return 0
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    return check(argv[1] if len(argv) == 2 else default)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

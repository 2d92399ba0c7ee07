#!/usr/bin/env python3
"""Check that shim/ reads as three layers with dependencies pointing one way.

    interception  ->  model  <-  outputs
    (interception may also call outputs: it raises events)

The folders are the layers: shim/intercept, shim/model, shim/output. A
module is x.c + x.h in one of them; module A depends on module B when A's
.c or .h includes B's .h ("#include \"b.h\""). .def files (shim/*.def) are
data, not modules; headers outside shim/ are ignored. The check fails
(exit 1) on

  - any include cycle between modules (every elementary cycle is listed,
    with the files that make each edge), and
  - any include against the layers: a model module including an
    interception or output header, an output module including an
    interception header, or a module outside the layer folders.

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

# The layer of a module is the folder it lives in: shim/intercept (the CUDA
# boundary: dlsym, cuGetProcAddress, the exported driver and runtime
# wrappers, and the program's own way in, api.c), shim/model (plain data, no
# CUDA call, no output; reached from both sides), shim/output (read the
# model, never the interception layer). A .c or .h anywhere else fails.
FOLDERS = {"intercept": INTERCEPTION, "model": MODEL, "output": OUTPUTS}

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
    """Modules of `directory` (in its layer folders) and their edges:
    modules {module: layer or None}, edges {module: {dep: [(file, line), ...]}}.
    Includes name headers by base name (the build puts every layer folder on
    the include path)."""
    files = []  # (path relative to directory, base name, layer)
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        rel = os.path.relpath(root, directory)
        layer = FOLDERS.get(rel) if rel != "." else None
        for n in sorted(names):
            if n.endswith((".c", ".h")):
                files.append((os.path.normpath(os.path.join(rel, n)), n, layer))
    modules = {}
    for path, n, layer in files:
        m = os.path.splitext(n)[0]
        if m in modules and modules[m] != layer:
            layer = None  # its .c and .h disagree: reported as misplaced
        modules[m] = layer
    headers = {n for _, n, _ in files if n.endswith(".h")}
    edges = {m: {} for m in modules}
    for path, n, _ in files:
        with open(os.path.join(directory, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        # Blank out comments but keep line numbers.
        text = COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
        src = os.path.splitext(n)[0]
        for match in INCLUDE.finditer(text):
            inc = match.group(1)
            if "/" in inc or inc not in headers:
                continue  # outside shim/ (purpose_tags/, system)
            dep = os.path.splitext(inc)[0]
            if dep == src:
                continue
            line = text.count("\n", 0, match.start()) + 1
            edges[src].setdefault(dep, []).append((path, line))
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


def check(directory, out=sys.stdout):
    modules, edges = scan(directory)
    layer_of = modules.get
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
        print("check_layers: module %s is not in a layer folder (%s/{%s}, its .c and .h together)"
              % (m, directory, ",".join(sorted(FOLDERS))), file=out)

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
        print("%-14s %-12s -> %s" % (m, modules[m] or "?", " ".join(sorted(edges[m]))))


def self_test():
    """Run the checker on synthetic trees: it must pass a clean one and fail,
    naming the problem, on a cycle, a layer violation and an unmapped module."""

    def run(files):
        with tempfile.TemporaryDirectory(prefix="vg_layers_") as d:
            for name, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
                with open(os.path.join(d, name), "w") as f:
                    f.write(text)
            p = subprocess.run([sys.executable, os.path.abspath(__file__), d], capture_output=True, text=True)
        return p.returncode, p.stdout + p.stderr

    I, M, O = "intercept/", "model/", "output/"
    cases = [
        # (name, files, expected exit, text the output must contain)
        ("clean", {
            M + "model.h": "", M + "table.h": '#include "model.h"\n', M + "table.c": '#include "table.h"\n',
            O + "report.c": '#include "report.h"\n#include "table.h"\n', O + "report.h": "#include <stdio.h>\n",
            I + "driver_hooks.c": '#include "report.h"\n#include "table.h"\n#include "entry_points.def"\n',
            "entry_points.def": '#include "wrappers.h"\n', I + "wrappers.h": "",
        }, 0, "no include cycle"),
        ("two-module cycle", {
            O + "log.h": "", O + "log.c": '#include "log.h"\n#include "emit.h"\n',
            O + "emit.h": "", O + "emit.c": '#include "emit.h"\n#include "log.h"\n',
        }, 1, "cycle 1: emit -> log -> emit"),
        ("three-module cycle through headers", {
            O + "events.h": '#include "report.h"\n', O + "report.h": '#include "metrics.h"\n',
            O + "metrics.h": '#include "events.h"\n',
        }, 1, "events -> report -> metrics -> events"),
        ("every cycle listed", {
            O + "events.h": "", O + "events.c": '#include "report.h"\n#include "metrics.h"\n',
            O + "report.h": "", O + "report.c": '#include "events.h"\n',
            O + "metrics.h": "", O + "metrics.c": '#include "events.h"\n',
        }, 1, "2 include cycle(s)"),
        ("cycle across layer folders", {
            I + "real.h": '#include "table.h"\n', M + "table.h": "", M + "table.c": '#include "real.h"\n',
        }, 1, "cycle 1: real -> table -> real"),
        ("model includes an output", {
            M + "table.h": "", M + "table.c": '#include "table.h"\n#include "log.h"\n', O + "log.h": "",
        }, 1, "table (model) includes log (outputs)"),
        ("output includes interception", {
            O + "report.c": '#include "real.h"\n', I + "real.h": "",
        }, 1, "report (outputs) includes real (interception)"),
        ("module outside the layer folders", {"mystery.c": "", "mystery.h": ""}, 1,
         "mystery is not in a layer folder"),
        ("module split across folders", {M + "pools.c": '#include "pools.h"\n', O + "pools.h": ""}, 1,
         "pools is not in a layer folder"),
        ("commented include ignored", {
            M + "table.c": '/* #include "log.h" */\n// #include "log.h"\n', O + "log.h": "",
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

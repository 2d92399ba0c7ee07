"""Who allocated: the site a report names for an allocation or an event
("site": the function in the program's own code, past the CUDA runtime's
frames, its module and the address in the module's file), given its file
and line from the module's debug information. addr2line (binutils) or
eu-addr2line (elfutils) reads it, one run per module for all of its
addresses, only when something is printed; without either tool, or without
debug information, the shim's function+offset stays."""

import os
import re
import shutil
import subprocess

TOOLS = ("addr2line", "eu-addr2line")
TIMEOUT_S = 60
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{1,16}$")
LOCATION_RE = re.compile(r"^(.*?):(\d+)(?::\d+)?(?: \(discriminator \d+\))?$")

_lines = {}        # (module, address) -> (function or None, file, line) or None
_tool = []         # [path or None], found once


def site_of(entry):
    """The entry's site as (module, address int, dict), or None when it has
    none the shim could name (or a malformed one)."""
    site = entry.get("site") if isinstance(entry, dict) else None
    if not isinstance(site, dict):
        return None
    module, address = site.get("module"), site.get("address")
    if not isinstance(module, str) or not module or not isinstance(address, str) \
            or not ADDRESS_RE.match(address):
        return None
    return module, int(address, 16), site


def tool():
    if not _tool:
        _tool.append(next((shutil.which(t) for t in TOOLS if shutil.which(t)), None))
    return _tool[0]


def parse(output):
    """addr2line -a -f -i output -> {address: (function, file, line)}: the
    innermost function and location of each address (where the call is,
    even inside a function inlined into another)."""
    found, address, pending = {}, None, None
    for line in output.splitlines():
        line = line.strip()
        if ADDRESS_RE.match(line):
            address, pending = int(line, 16), None
            continue
        if address is None or address in found:
            continue
        if pending is None:
            pending = line
            continue
        m = LOCATION_RE.match(line)
        if m and m.group(1) not in ("??", "") and m.group(2) != "0":
            found[address] = (None if pending in ("??", "") else pending, m.group(1), int(m.group(2)))
        else:
            found[address] = None
        pending = None
    return found


def resolve(module, addresses):
    """File and line of `addresses` (return addresses) in `module`, into the cache."""
    todo = sorted(a for a in addresses if (module, a) not in _lines)
    if not todo:
        return
    for a in todo:
        _lines[(module, a)] = None
    path = tool()
    if path is None or not os.path.isfile(module):
        return
    # A return address is the instruction after the call: its line may be the next one.
    queries = ["0x%x" % (a - 1 if a > 0 else a) for a in todo]
    try:
        run = subprocess.run([path, "-a", "-f", "-C", "-i", "-e", module] + queries,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return
    found = parse(run.stdout.decode("utf-8", "replace"))
    for a in todo:
        _lines[(module, a)] = found.get(a - 1 if a > 0 else a)


def prefetch(entries):
    """Resolve the sites of all `entries` (events, live allocations) at
    once: one addr2line run per module."""
    by_module = {}
    for e in entries:
        s = site_of(e)
        if s is not None:
            by_module.setdefault(s[0], set()).add(s[1])
    for module, addresses in sorted(by_module.items()):
        resolve(module, addresses)


def shown_path(path):
    """A source path as printed: relative to the current directory when it is
    inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return rel if not rel.startswith("..") else path


def describe(entry):
    """Where an allocation was asked for, as text: "load_weights
    (tests/demo/demo_worker.c:23) via cudaMalloc", "main+0x4a
    (demo_worker+0x1234)" without debug information, "demo_worker+0x1234
    (no symbols)"; None when the entry names no site."""
    s = site_of(entry)
    if s is None:
        return None
    module, address, site = s
    resolve(module, [address])
    found = _lines.get((module, address))
    function = site.get("function") if isinstance(site.get("function"), str) else None
    base = os.path.basename(module)
    if found is not None:
        text = "%s (%s:%d)" % (found[0] or function or base, shown_path(found[1]), found[2])
    elif function is not None:
        offset = site.get("offset")
        text = "%s%s (%s+0x%x)" % (function, "+0x%x" % offset if isinstance(offset, int) else "",
                                   base, address)
    else:
        text = "%s+0x%x%s" % (base, address, " (no symbols)" if site.get("symbols") is False else "")
    via = site.get("via")
    if isinstance(via, str) and via:
        text += " via " + via
    return text


def where(entry):
    """The words a summary line gives an allocation's origin: "at SITE", or
    "caller MODULE+0xOFF" when the report names no site."""
    text = describe(entry)
    if text is not None:
        return "at " + text
    caller = entry.get("caller")
    return "caller " + ("-" if caller is None else str(caller))

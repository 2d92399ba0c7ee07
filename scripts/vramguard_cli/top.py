"""`vramguard top`: a live view of every vramguard process on the machine.

Where the processes are found (the convention the shim's VRAMGUARD_LISTEN=auto
follows): the live directory, $XDG_RUNTIME_DIR/vramguard when XDG_RUNTIME_DIR
is an absolute path, else /tmp/vramguard-<euid>, holds one Unix socket
<pid>.sock per process. `--dir DIR` reads other directories instead: every
Unix socket in them, and every *.endpoint file (the address one line, as
`vramguard run` leaves them next to the reports); `--endpoint ADDR` names one
more. Each refresh asks every endpoint for /health (the pid) and /metrics
(the figures), all at once; one that does not answer within the timeout (a
stale socket, a dead port, a process gone) is left out without a word.

The view is a list of lines (render); `--once` prints them, the terminal
view (curses) draws them and reads keys."""

import argparse
import concurrent.futures
import json
import os
import re
import socket
import stat
import struct
import sys
import time
import urllib.parse

from .common import UsageError, human, plural, say
from .render import VRAM_KINDS
from .reports import load_endpoint

ANSWER_TIMEOUT = 0.8           # seconds for an endpoint's two answers, connections included
ANSWER_MAX = 16 << 20          # bytes read from one answer at most
PURPOSES = ("weights", "kv_cache", "intermediate", "unknown")
SORTS = {                      # key -> (name shown, sort key of a Proc)
    "v": ("VRAM", lambda p: (-p.vram, p.pid)),
    "p": ("pid", lambda p: (p.pid,)),
    "o": ("OOMs", lambda p: (-p.ooms, -p.vram, p.pid)),
    "c": ("command", lambda p: (p.command, p.pid)),
}
KEYS_HELP = "v VRAM  p pid  o OOMs  c command  Up/Down PgUp/PgDn scroll  q quit"


DESCRIPTION = """\
Show every running process under vramguard that serves its endpoint,
refreshed every second: per GPU the VRAM charged to them and what NVML says
is in use; per process its VRAM charged and as NVML sees it, violations, OOM
events and command, with a bar per device and per purpose; sorted by VRAM.

Processes are found in the live directory, $XDG_RUNTIME_DIR/vramguard (else
/tmp/vramguard-$EUID), where VRAMGUARD_LISTEN=auto (or 'vramguard run --listen
auto') puts a socket <pid>.sock per process; --dir and --endpoint name
others. Endpoints that do not answer (stale sockets, closed ports) are left
out without a word.

keys: v sort by VRAM, p by pid, o by OOM events, c by command; arrows,
PgUp/PgDn, Home/End scroll; q quits. A resized terminal is drawn again.

exit status of 'top': 0 on q or Ctrl-C (and after --once, whether or not a
process answered), 128+N on signal N (SIGTERM, SIGHUP), 125 on bad usage or
without a terminal (unless --once). The terminal is restored in every case."""


def add_parser(sub, epilog, fmt):
    top = sub.add_parser(
        "top", help="live view of every vramguard process on this machine",
        usage="vramguard top [--once] [--interval SECONDS] [--sort v|p|o|c] [--dir DIR]... "
              "[--endpoint ADDR]...",
        description=DESCRIPTION, epilog=epilog, formatter_class=fmt)
    top.add_argument("--once", action="store_true",
                     help="print the view once as plain text (no terminal control) and exit")
    top.add_argument("--interval", type=parse_interval, default=1.0, metavar="SECONDS",
                     help="time between refreshes (default 1)")
    top.add_argument("--dir", action="append", default=[], metavar="DIR",
                     help="read the Unix sockets and *.endpoint files of DIR instead of the "
                          "live directory (may repeat; a 'vramguard run --report-dir' "
                          "directory works too)")
    top.add_argument("--endpoint", action="append", default=[], metavar="ADDR",
                     type=parse_endpoint,
                     help="one more endpoint: unix:/path, http://HOST:PORT, HOST:PORT or PORT "
                          "(127.0.0.1); may repeat. With --endpoint and no --dir, the live "
                          "directory is not read")
    top.add_argument("--sort", choices=sorted(SORTS), default="v", metavar="KEY",
                     help="initial order: v VRAM (default), p pid, o OOMs, c command")


def live_dir(environ=None):
    """The directory VRAMGUARD_LISTEN=auto puts its sockets in (the shim's
    config.c names it the same way)."""
    environ = os.environ if environ is None else environ
    run = environ.get("XDG_RUNTIME_DIR", "")
    if run.startswith("/"):
        return os.path.join(run, "vramguard")
    return "/tmp/vramguard-%d" % os.geteuid()


def parse_interval(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError("invalid interval %r (accepted: seconds, 0.1 to 3600)" % text)
    return value


def parse_endpoint(text):
    """An endpoint address as the shim logs it (unix:/path, http://HOST:PORT),
    or HOST:PORT, PORT (127.0.0.1), or the path of a socket."""
    v = text.strip()
    if v.startswith("unix:"):
        if not v[5:]:
            raise argparse.ArgumentTypeError("invalid endpoint %r (unix:/path)" % text)
        return v
    if v.startswith("/"):
        return "unix:" + v
    if re.match(r"^[0-9]{1,5}$", v):
        v = "127.0.0.1:" + v
    if "://" not in v:
        v = "http://" + v
    try:
        parts = urllib.parse.urlsplit(v)
        ok = parts.scheme == "http" and parts.hostname and parts.port
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(
            "invalid endpoint %r (accepted: unix:/path, http://HOST:PORT, HOST:PORT, PORT)" % text)
    return v


# ---- discovery ------------------------------------------------------------------------

def discover(dirs, endpoints, warn):
    """The addresses to ask, in order, without repeats: each directory's Unix
    sockets and *.endpoint files (sorted by name), then the explicit ones.
    `warn` gets a line for a directory that cannot be read, except a live
    directory that does not exist yet (no process has used it)."""
    found = []
    for d, quiet_missing in dirs:
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            if not quiet_missing:
                warn("cannot read %s: no such directory" % d)
            continue
        except OSError as exc:
            warn("cannot read %s: %s" % (d, exc.strerror or exc))
            continue
        for name in names:
            path = os.path.join(d, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode):
                found.append("unix:" + path)
            elif stat.S_ISREG(st.st_mode) and name.endswith(".endpoint"):
                got = load_endpoint(path, complete_only=True)
                if got is not None:
                    found.append(got[1])
    found.extend(endpoints)
    seen, out = set(), []
    for a in found:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


# ---- HTTP ----------------------------------------------------------------------------

def http_get(address, path, deadline):
    """GET path from an endpoint -> (status, body bytes, pid): pid, for a Unix
    socket, is the process that listens on it as the kernel names it to us
    (SO_PEERCRED: right across PID namespaces), else None. Raises OSError or
    ValueError when there is no whole answer by `deadline` (time.monotonic)."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise socket.timeout("no time left")
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = address[5:]
    else:
        parts = urllib.parse.urlsplit(address)
        host = parts.hostname
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        target = (host, parts.port)
    try:
        sock.settimeout(timeout)
        sock.connect(target)
        peer = None
        if sock.family == socket.AF_UNIX:
            peer = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                       struct.calcsize("3i")))[0] or None
        sock.sendall(("GET %s HTTP/1.0\r\nHost: vramguard\r\n\r\n" % path).encode("ascii"))
        chunks, size = [], 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no whole answer in time")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > ANSWER_MAX:
                raise ValueError("answer too large")
    finally:
        sock.close()
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    m = re.match(rb"^HTTP/1\.[01] (\d{3})", head)
    if not sep or not m:
        raise ValueError("not an HTTP answer")
    return int(m.group(1)), body, peer


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> [(name, {label: value}, number)]."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            continue
        labels = {}
        for k, v in LABEL_RE.findall(m.group(2) or ""):
            labels[k] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), v)
        try:
            value = int(m.group(3))
        except ValueError:
            try:
                value = float(m.group(3))
            except ValueError:
                continue
        out.append((m.group(1), labels, value))
    return out


# ---- the model -----------------------------------------------------------------------

class Device:
    """One device as one process sees it."""

    def __init__(self, ordinal):
        self.ordinal = ordinal
        self.uuid = "unknown"
        self.name = "unknown"
        self.total = None          # bytes (NVML or the driver)
        self.free = None           # NVML: free on the device, all processes
        self.charged = 0           # VRAM charged to this process
        self.nvml_used = None      # NVML: this process's memory on the device
        self.pool_cache = 0
        self.purposes = dict((p, 0) for p in PURPOSES)   # live bytes of the VRAM kinds
        self.ooms = 0


class Proc:
    def __init__(self, address, pid):
        self.address = address
        self.pid = pid
        self.command = command_of(pid)
        self.violations = 0
        self.ooms = 0
        self.budget_ooms = 0
        self.devices = {}          # ordinal -> Device

    @property
    def vram(self):
        return sum(d.charged for d in self.devices.values())

    @property
    def nvml_used(self):
        known = [d.nvml_used for d in self.devices.values() if d.nvml_used is not None]
        return sum(known) if known else None

    def device(self, labels):
        try:
            ordinal = int(labels.get("device", ""))
        except ValueError:
            return None
        dev = self.devices.get(ordinal)
        if dev is None:
            dev = self.devices[ordinal] = Device(ordinal)
        if labels.get("gpu_uuid"):
            dev.uuid = labels["gpu_uuid"]
        return dev


def command_of(pid):
    """The command line as /proc shows it ('?' when it cannot be read)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read(4096)
    except OSError:
        return "?"
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    return " ".join(words) if words else "?"


def add_purpose(dev, labels, value):
    if labels.get("kind") in VRAM_KINDS:
        purpose = labels.get("purpose", "unknown")
        dev.purposes[purpose] = dev.purposes.get(purpose, 0) + value


# The per-device samples of /metrics that the view shows, and where they go.
DEVICE_SAMPLES = {
    "vramguard_allocated_bytes": add_purpose,
    "vramguard_charged_bytes": lambda dev, labels, v: setattr(dev, "charged", v),
    "vramguard_process_memory_used_bytes": lambda dev, labels, v: setattr(dev, "nvml_used", v),
    "vramguard_device_memory_total_bytes": lambda dev, labels, v: setattr(dev, "total", v),
    "vramguard_device_memory_free_bytes": lambda dev, labels, v: setattr(dev, "free", v),
    "vramguard_pool_cache_bytes": lambda dev, labels, v: setattr(dev, "pool_cache", v),
    "vramguard_oom_events_total": lambda dev, labels, v: setattr(dev, "ooms", v),
    "vramguard_device_info": lambda dev, labels, v: setattr(dev, "name", labels.get("name") or "unknown"),
}


def read_proc(address):
    """One process's figures from its endpoint, or None (no answer within
    ANSWER_TIMEOUT, or not vramguard's)."""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    try:
        status, body, peer = http_get(address, "/health", deadline)
        health = json.loads(body.decode("utf-8", "replace")) if status in (200, 503) else None
        pid = health.get("pid") if isinstance(health, dict) else None
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        pid = peer or pid      # a worker in a container says its own namespace's pid
        status, body, _ = http_get(address, "/metrics", deadline)
        if status != 200:
            return None
    except (OSError, ValueError):
        return None
    samples = parse_metrics(body.decode("utf-8", "replace"))
    if not any(name == "vramguard_build_info" for name, _, _ in samples):
        return None
    proc = Proc(address, pid)
    for name, labels, value in samples:
        if name == "vramguard_violations_total":
            proc.violations = value
        elif name == "vramguard_budget_oom_events_total":
            proc.budget_ooms += value
        elif name in DEVICE_SAMPLES:
            dev = proc.device(labels)
            if dev is not None:
                DEVICE_SAMPLES[name](dev, labels, value)
                if name == "vramguard_oom_events_total":
                    proc.ooms += value
    return proc


def snapshot(addresses):
    """Every answering process, once each (the first address of a pid wins)."""
    if not addresses:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(addresses))) as pool:
        procs = list(pool.map(read_proc, addresses))
    out, pids = [], set()
    for p in procs:
        if p is not None and p.pid not in pids:
            pids.add(p.pid)
            out.append(p)
    return out


class Gpu:
    """A device as all processes see it, keyed by its UUID."""

    def __init__(self, dev):
        self.uuid, self.name, self.total, self.free = dev.uuid, dev.name, dev.total, dev.free
        self.charged, self.procs = 0, 0


def gpus_of(procs):
    gpus = {}
    for p in procs:
        for d in p.devices.values():
            key = d.uuid if d.uuid != "unknown" else "%d:%d" % (p.pid, d.ordinal)
            g = gpus.get(key)
            if g is None:
                g = gpus[key] = Gpu(d)
            g.charged += d.charged
            g.procs += 1
            if d.free is not None:
                g.free = d.free
            if g.total is None:
                g.total = d.total
    return sorted(gpus.values(), key=lambda g: (g.name, g.uuid))


# ---- rendering -----------------------------------------------------------------------

def clean(text):
    """What a worker names is shown, never obeyed: control characters as '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def bar(width, parts, whole):
    """[###+++....]: each (fraction of `whole`, character) in turn, the rest '.'."""
    cells, used = [], 0
    for value, ch in parts:
        n = 0 if not whole else int(round(width * min(max(value, 0), whole) / float(whole)))
        n = min(n, width - used)
        cells.append(ch * n)
        used += n
    return "[" + "".join(cells) + "." * (width - used) + "]"


def size(n):
    return "-" if n is None else human(n)


def short_uuid(uuid):
    return uuid if len(uuid) <= 13 else uuid[:8] + "..." + uuid[-4:]


def gpu_lines(procs, bar_w):
    """Two lines per GPU: its name and total; a bar of what vramguard charged
    to the processes shown (#) and of what else NVML says is in use (+)."""
    lines = []
    for g in gpus_of(procs):
        used = g.total - g.free if g.total is not None and g.free is not None else None
        over = max(used - g.charged, 0) if used is not None else 0
        lines.append(("GPU %s (%s), %s" % (g.name, short_uuid(g.uuid), size(g.total)), "gpu"))
        lines.append(("  %s  charged %s (%s)%s" % (
            bar(bar_w, [(g.charged, "#"), (over, "+")], g.total or g.charged), human(g.charged),
            plural(g.procs, "process", "processes"),
            ", in use %s (NVML)" % human(used) if used is not None else ""), "dim"))
    return lines


def proc_lines(p, bar_w):
    """A process's row; under it a line per device (charged against the
    device's total) and per purpose (its share of the device's charge)."""
    lines = [("%7d  %10s  %10s  %5d  %5d  %s" % (
        p.pid, human(p.vram), size(p.nvml_used), p.violations, p.ooms, p.command), "proc")]
    for d in sorted(p.devices.values(), key=lambda d: d.ordinal):
        extra = []
        if d.nvml_used is not None:
            extra.append("NVML %s" % human(d.nvml_used))
        if d.ooms:
            extra.append(plural(d.ooms, "OOM"))
        lines.append(("         gpu %-2d  %s %10s of %s%s" % (
            d.ordinal, bar(bar_w, [(d.charged, "#")], d.total or d.charged), human(d.charged),
            size(d.total), "   " + ", ".join(extra) if extra else ""), "text"))
        shown = [(purpose, b) for purpose, b in d.purposes.items() if b]
        if d.pool_cache:
            shown.append(("(pool cache)", d.pool_cache))
        for purpose, b in shown:
            lines.append(("                 %-13s %s %10s %4d%%" % (
                purpose, bar(bar_w, [(b, "=")], d.charged or b), human(b),
                round(100.0 * b / (d.charged or b))), "dim"))
    if p.budget_ooms:
        lines.append(("         %s refused by a budget" % plural(p.budget_ooms, "allocation"), "text"))
    return lines


def render(procs, width, sort, where, notes=(), now=None, cut=True):
    """The view as [(text, style)], style one of title, head, proc, gpu, dim,
    warn, text; the first line is the title. `notes`: warnings to show.
    Lines are cut at `width` unless `cut` is false (--once: whole commands)."""
    width = max(width, 40)
    bar_w = max(10, min(50, width - 70))
    name, key = SORTS[sort]
    when = time.strftime("%H:%M:%S", time.localtime(now))
    title = "vramguard top: %s in %s, sorted by %s" % (plural(len(procs), "process", "processes"),
                                                       where, name)
    title = title[:max(width - len(when) - 1, 0)]
    lines = [(title + " " * max(1, width - len(title) - len(when)) + when, "title")]
    lines.extend(("warning: " + n, "warn") for n in notes)
    if not procs:
        lines.append(("", "text"))
        lines.append(("No vramguard process answers in %s." % where, "text"))
        lines.append(("Start workers with VRAMGUARD_LISTEN=auto (or 'vramguard run --listen auto')"
                      " to see them here.", "text"))
    else:
        lines.extend(gpu_lines(procs, bar_w))
        lines.append(("=" * width, "dim"))
        lines.append(("%7s  %10s  %10s  %5s  %5s  %s" % ("PID", "VRAM", "NVML", "VIOL", "OOM", "COMMAND"),
                      "head"))
        for p in sorted(procs, key=key):
            lines.extend(proc_lines(p, bar_w))
    return [(clean(t)[:width] if cut else clean(t), s) for t, s in lines]


# ---- the command ----------------------------------------------------------------------

def sources_of(args):
    """[(dir, quiet when missing)], explicit endpoints, and the words for them."""
    if args.dir:
        dirs = [(d, False) for d in args.dir]
    elif args.endpoint:
        dirs = []
    else:
        dirs = [(live_dir(), True)]
    parts = [d for d, _ in dirs] + (
        [plural(len(args.endpoint), "endpoint")] if args.endpoint else [])
    return dirs, args.endpoint, " and ".join(parts)


def command(args, extra):
    if extra:
        raise UsageError("top: unexpected arguments: %s" % " ".join(extra))
    dirs, endpoints, where = sources_of(args)
    if args.once:
        procs = snapshot(discover(dirs, endpoints, lambda m: say("warning: %s" % m)))
        width = os.get_terminal_size(1).columns if sys.stdout.isatty() else 100
        sys.stdout.write("".join(t.rstrip() + "\n" for t, _ in render(procs, width, args.sort, where, cut=False)))
        sys.stdout.flush()
        return 0
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("top: the live view needs a terminal (use --once for plain text)")
    try:
        from . import top_screen
    except ImportError as exc:
        raise UsageError("top: the live view needs Python's curses module (%s); use --once" % exc)
    return top_screen.run(args, dirs, endpoints, where)

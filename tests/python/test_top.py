"""Tests of `vramguard top` (scripts/vramguard_cli/top.py, top_screen.py)
and of the live directory the shim's VRAMGUARD_LISTEN=auto serves in.

Three workers (build/tests/top_worker, tests/cli/top_worker.c) run under the
real shim with the fake CUDA (the third one with two devices) and the fake
NVML (64 MiB used per process and device), each serving its endpoint on a
Unix socket <pid>.sock in a private live directory ($XDG_RUNTIME_DIR/vramguard,
XDG_RUNTIME_DIR a temporary directory). Stale entries sit beside them: a
socket nobody listens on, a regular file named like a socket, an endpoint
file pointing at a closed port.

- `top --once` is read line by line: every figure is compared with what the
  workers allocated (WORKERS), in the order each --sort key asks for.
- The terminal view runs in a detached tmux session (capture-pane,
  send-keys, resize-window): rows for the three pids, the keys change the
  order, a resize is drawn at the new size, q, Ctrl-C and SIGTERM give the
  terminal back (alternate screen left, stty settings as before) with the
  documented status. tmux is required: without it these tests fail.

Run by the Check runner (tests/python/check_python.c). By hand:
    make fakecuda build/libvramguard.so build/tests/top_worker build/tests/nvml/libnvidia-ml.so.1
    VG_BUILD=build python3 -m unittest -v tests/python/test_top.py
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get("VG_ROOT") or os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("VG_BUILD") or "build"
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
VRAMGUARD = os.path.join(ROOT, "scripts", "vramguard")
WORKER = os.path.join(BUILD, "tests", "top_worker")
SHIM = os.path.join(BUILD, "libvramguard.so")
MiB = 1 << 20
GiB = 1 << 30
NVML_USED = 64 * MiB          # tests/endpoint/fake_nvml.c: per process and device
DEVICE_BYTES = 1 * GiB        # the fake CUDA's default device size
NVML_FREE = 700 * MiB         # fake_nvml.c: free on every device

# What each worker allocates: [(device, purpose, MiB)], requests too large for
# the device (OOM events; with a budget, "limit", refused by the budget
# instead), violations, devices, and MiB left in device 0's pool as its cache.
WORKERS = {
    "a": {"allocs": [(0, "weights", 64), (0, "kv_cache", 32)], "oom": 1, "managed": 0, "devices": 1,
          "limit": "total=512M"},
    "b": {"allocs": [(0, "weights", 16)], "oom": 2, "managed": 0, "devices": 1},
    "c": {"allocs": [(0, "weights", 200), (0, "intermediate", 8), (1, "kv_cache", 40)], "oom": 0,
          "managed": 1, "devices": 2, "pool": 6},
}

ROW_RE = re.compile(r"^\s*(\d+)\s+(\S+ \S+)\s+(\S+ \S+|-)\s+(\d+)\s+(\d+)\s+(\S.*)$")
GPU_OF_PROC_RE = re.compile(r"^\s+gpu (\d+)\s+\[[#.]+\]\s+(\S+ \S+) of (\S+ \S+)(?:\s+(.*))?$")
PURPOSE_RE = re.compile(r"^\s+(weights|kv_cache|intermediate|unknown|\(pool cache\))\s+\[[=.]+\]\s+"
                        r"(\S+ \S+)\s+(\d+)%$")


def mib(n_bytes):
    """The CLI's human() for whole MiB below 1 GiB, computed here on its own."""
    return "%.1f MiB" % (n_bytes / float(MiB)) if n_bytes < GiB else "%.1f GiB" % (n_bytes / float(GiB))


def worker_args(spec):
    args = ["%d:%s=%d" % a for a in spec["allocs"]]
    if spec["oom"]:
        args.append("oom=%d" % spec["oom"])
    if spec["managed"]:
        args.append("managed=%d" % spec["managed"])
    if spec.get("pool"):
        args.append("0:pool=%d" % spec["pool"])
    return args


def expected(spec):
    per_dev = {}
    for dev, purpose, n in spec["allocs"]:
        per_dev.setdefault(dev, {}).setdefault(purpose, 0)
        per_dev[dev][purpose] += n * MiB
    if spec.get("pool"):
        per_dev[0]["(pool cache)"] = spec["pool"] * MiB
    vram = sum(b for purposes in per_dev.values() for b in purposes.values())
    budget = bool(spec.get("limit"))
    return {"vram": vram, "nvml": NVML_USED * len(per_dev), "viol": spec["managed"],
            "oom": 0 if budget else spec["oom"], "budget_ooms": spec["oom"] if budget else 0,
            "devices": per_dev}


def parse_rows(lines):
    """[(pid, vram, nvml, viol, oom, command)] of the process rows, in order."""
    rows = []
    for line in lines:
        m = ROW_RE.match(line)
        if m and not line.lstrip().startswith("PID"):
            rows.append((int(m.group(1)), m.group(2), m.group(3), int(m.group(4)), int(m.group(5)),
                         m.group(6)))
    return rows


def worker_env(xdg, extra=None):
    env = dict(os.environ)
    env.update({
        "LD_PRELOAD": SHIM,
        "LD_LIBRARY_PATH": "%s:%s" % (os.path.join(BUILD, "fakecuda"), os.path.join(BUILD, "tests", "nvml")),
        "XDG_RUNTIME_DIR": xdg,
        "VRAMGUARD_LISTEN": "auto",
        "VRAMGUARD_LOG": os.path.join(xdg, "shim.%p.log"),
        "TOP_WORKER_STOP": os.path.join(xdg, "stop"),
    })
    env.update(extra or {})
    return env


def wait_for(predicate, timeout, what, detail=None):
    """predicate()'s first true answer within `timeout` seconds; else fail,
    saying `what` and, if given, detail() at that moment."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s%s" % (
                timeout, what, "\n" + detail() if detail else ""))
        time.sleep(0.1)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Workers:
    """Workers started under the shim in `xdg`; stop() ends them all."""

    def __init__(self, xdg):
        self.xdg = xdg
        self.procs = {}

    def start(self, name, spec, extra_env=None, prefix=()):
        out = os.path.join(self.xdg, "%s.out" % name)
        extra = dict(extra_env or {}, FAKECUDA_DEVICES=str(spec["devices"]))
        if spec.get("limit"):
            extra["VRAMGUARD_LIMIT"] = spec["limit"]
        env = worker_env(self.xdg, extra)
        with open(out, "wb") as f:
            p = subprocess.Popen(list(prefix) + [WORKER] + worker_args(spec), env=env, stdout=f,
                                 stderr=subprocess.STDOUT)
        self.procs[name] = p
        wait_for(lambda: "ready\n" in read(out) or p.poll() is not None, 30, "worker %s ready" % name)
        if p.poll() is not None:
            raise AssertionError("worker %s exited %s:\n%s\n%s" % (
                name, p.returncode, read(out), read(os.path.join(self.xdg, "shim.%d.log" % p.pid))))
        return p

    def stop(self):
        with open(os.path.join(self.xdg, "stop"), "w"):
            pass
        for name, p in self.procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_top(args, xdg, timeout=60):
    env = dict(os.environ, XDG_RUNTIME_DIR=xdg)
    env.pop("LD_PRELOAD", None)
    return subprocess.run([sys.executable, VRAMGUARD, "top"] + args, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=timeout)


def stale_entries(live):
    """A socket nobody listens on, a regular file named like a socket, an
    endpoint file naming a closed port, and a directory: all to be ignored."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(live, "999999.sock"))
    s.close()                                          # the file stays: a stale socket
    with open(os.path.join(live, "12345.sock"), "w") as f:
        f.write("not a socket\n")
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    closed = port.getsockname()[1]
    port.close()
    with open(os.path.join(live, "vramguard.777.json.endpoint"), "w") as f:
        f.write("http://127.0.0.1:%d\n" % closed)
    os.mkdir(os.path.join(live, "sub.sock"))


class Fixture(unittest.TestCase):
    """The three workers (and the stale entries), once for the class."""

    @classmethod
    def setUpClass(cls):
        for path in (WORKER, SHIM):
            if not os.path.exists(path):
                raise AssertionError("%s is missing: make build/tests/top_worker build/libvramguard.so" % path)
        cls.tmp = tempfile.mkdtemp(prefix="vg_top.")
        cls.xdg = os.path.join(cls.tmp, "run")
        os.mkdir(cls.xdg, 0o700)
        cls.live = os.path.join(cls.xdg, "vramguard")
        cls.workers = Workers(cls.xdg)
        try:
            cls.pids = {}
            for name in sorted(WORKERS):
                cls.pids[name] = cls.workers.start(name, WORKERS[name]).pid
            stale_entries(cls.live)
        except BaseException:
            cls.workers.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.expect = dict((cls.pids[n], expected(WORKERS[n])) for n in WORKERS)

    @classmethod
    def tearDownClass(cls):
        cls.workers.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def order(self, key):
        """The pids in the order top --sort key must show them."""
        pids = list(self.expect)
        if key == "v":
            return sorted(pids, key=lambda p: (-self.expect[p]["vram"], p))
        if key == "p":
            return sorted(pids)
        if key == "o":
            return sorted(pids, key=lambda p: (-self.expect[p]["oom"], -self.expect[p]["vram"], p))
        raise ValueError(key)


class Once(Fixture):
    def test_live_directory_made_private_by_the_shim(self):
        st = os.lstat(self.live)
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        for pid in self.pids.values():
            self.assertTrue(stat.S_ISSOCK(os.lstat(os.path.join(self.live, "%d.sock" % pid)).st_mode))

    def test_once_every_figure(self):
        r = run_top(["--once"], self.xdg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")                 # stale entries dropped without a word
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^vramguard top: 3 processes in %s, sorted by VRAM +\d\d:\d\d:\d\d$"
                         % re.escape(self.live))
        rows = parse_rows(lines)
        self.assertEqual([row[0] for row in rows], self.order("v"))
        for pid, vram, nvml, viol, oom, command in rows:
            e = self.expect[pid]
            self.assertEqual((vram, nvml, viol, oom), (mib(e["vram"]), mib(e["nvml"]), e["viol"], e["oom"]),
                             "pid %d" % pid)
            self.assertEqual(command, " ".join([WORKER] + worker_args(WORKERS[self.name_of(pid)])))
        self.check_details(lines)
        self.check_gpus(lines)

    def name_of(self, pid):
        return next(n for n, p in self.pids.items() if p == pid)

    def check_details(self, lines):
        """Under each process row: a line per device, a line per purpose."""
        pid, dev, seen, budget = None, None, {}, {}
        for line in lines:
            refused = re.match(r"^\s+(\d+) allocations? refused by a budget$", line)
            if refused and pid is not None:
                budget[pid] = int(refused.group(1))
                continue
            row, g, pu = ROW_RE.match(line), GPU_OF_PROC_RE.match(line), PURPOSE_RE.match(line)
            if row and not line.lstrip().startswith("PID"):
                pid, dev = int(row.group(1)), None
                seen[pid] = {}
            elif g and pid is not None:
                dev = int(g.group(1))
                charged = sum(self.expect[pid]["devices"][dev].values())
                self.assertEqual(g.group(2), mib(charged), line)
                self.assertEqual(g.group(3), mib(DEVICE_BYTES), line)
                extra = "NVML %s" % mib(NVML_USED)
                if self.expect[pid]["oom"] and dev == 0:
                    extra += ", %d OOMs" % self.expect[pid]["oom"]
                self.assertEqual(g.group(4), extra, line)
                seen[pid][dev] = {}
            elif pu and dev is not None:
                b = self.expect[pid]["devices"][dev][pu.group(1)]
                charged = sum(self.expect[pid]["devices"][dev].values())
                self.assertEqual(pu.group(2), mib(b), line)
                self.assertEqual(int(pu.group(3)), round(100.0 * b / charged), line)
                seen[pid][dev][pu.group(1)] = b
        self.assertEqual(seen, dict((p, e["devices"]) for p, e in self.expect.items()))
        self.assertEqual(budget, dict((p, e["budget_ooms"]) for p, e in self.expect.items() if e["budget_ooms"]))

    def check_gpus(self, lines):
        """A pair of lines per GPU: its total, and the sum charged over processes."""
        per_dev = {}
        for e in self.expect.values():
            for dev, purposes in e["devices"].items():
                n, b = per_dev.get(dev, (0, 0))
                per_dev[dev] = (n + 1, b + sum(purposes.values()))
        for dev, (n, charged) in per_dev.items():
            i = lines.index("GPU FakeCUDA Device %d (GPU-fa6e...000%d), %s" % (dev, dev, mib(DEVICE_BYTES)))
            self.assertRegex(lines[i + 1], r"^  \[[#+.]+\]  charged %s \(%d process(es)?\), in use %s \(NVML\)$"
                             % (re.escape(mib(charged)), n, re.escape(mib(DEVICE_BYTES - NVML_FREE))))

    def test_once_sort_keys(self):
        for key, name in (("p", "pid"), ("o", "OOMs"), ("v", "VRAM")):
            r = run_top(["--once", "--sort", key], self.xdg)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("sorted by %s" % name, r.stdout.splitlines()[0])
            self.assertEqual([row[0] for row in parse_rows(r.stdout.splitlines())], self.order(key), key)
        r = run_top(["--once", "--sort", "c"], self.xdg)
        commands = [row[5] for row in parse_rows(r.stdout.splitlines())]
        self.assertEqual(commands, sorted(commands))

    def test_explicit_endpoints_and_dirs(self):
        a, b = (os.path.join(self.live, "%d.sock" % self.pids[n]) for n in ("a", "b"))
        # --endpoint: only those (the live directory is not read); a socket
        # path, unix:PATH, and one that accepts but never answers (dropped
        # after the request timeout).
        hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        hung_path = os.path.join(self.tmp, "hung.sock")
        hung.bind(hung_path)
        hung.listen(4)
        try:
            r = run_top(["--once", "--endpoint", a, "--endpoint", "unix:" + b, "--endpoint",
                         "unix:" + hung_path], self.xdg)
        finally:
            hung.close()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertEqual(sorted(row[0] for row in parse_rows(r.stdout.splitlines())),
                         sorted([self.pids["a"], self.pids["b"]]))
        self.assertIn("in 3 endpoints, sorted", r.stdout.splitlines()[0])
        # --dir: endpoint files as `vramguard run` writes them name the process.
        d = os.path.join(self.tmp, "reports")
        os.mkdir(d)
        with open(os.path.join(d, "vramguard.%d.json.endpoint" % self.pids["c"]), "w") as f:
            f.write("unix:%s\n" % os.path.join(self.live, "%d.sock" % self.pids["c"]))
        r = run_top(["--once", "--dir", d], self.xdg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[0] for row in parse_rows(r.stdout.splitlines())], [self.pids["c"]])
        # The same process found twice is shown once.
        r = run_top(["--once", "--dir", d, "--dir", self.live], self.xdg)
        self.assertEqual(sorted(row[0] for row in parse_rows(r.stdout.splitlines())), sorted(self.pids.values()))
        # A directory that cannot be read: a warning, and nothing found.
        r = run_top(["--once", "--dir", os.path.join(self.tmp, "missing")], self.xdg)
        self.assertEqual(r.returncode, 0)
        self.assertIn("warning: cannot read %s" % os.path.join(self.tmp, "missing"), r.stderr)
        self.assertIn("No vramguard process answers", r.stdout)

    def test_usage_errors(self):
        for args in (["--interval", "0"], ["--endpoint", "http://"], ["--sort", "x"], ["extra"]):
            r = run_top(args, self.xdg)
            self.assertEqual(r.returncode, 125, args)
        r = run_top([], self.xdg)                      # stdin is not a terminal
        self.assertEqual(r.returncode, 125)
        self.assertIn("use --once", r.stderr)


class LiveDirectory(unittest.TestCase):
    """VRAMGUARD_LISTEN=auto (the shim) and `vramguard run --listen auto`."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vg_top_dir.")
        self.workers = Workers(self.tmp)

    def tearDown(self):
        self.workers.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_nothing_running(self):
        r = run_top(["--once"], self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")                 # a live directory not made yet is no error
        self.assertIn("No vramguard process answers in %s/vramguard" % self.tmp, r.stdout)

    def test_refuses_a_directory_others_can_write(self):
        live = os.path.join(self.tmp, "vramguard")
        os.mkdir(live)
        os.chmod(live, 0o777)
        p = self.workers.start("w", {"allocs": [(0, "weights", 1)], "oom": 0, "managed": 0, "devices": 1})
        self.assertEqual(os.listdir(live), [])
        self.assertIn("can be written by other users", read(os.path.join(self.tmp, "shim.%d.log" % p.pid)))

    def test_refuses_a_file_in_its_place(self):
        with open(os.path.join(self.tmp, "vramguard"), "w"):
            pass
        p = self.workers.start("w", {"allocs": [(0, "weights", 1)], "oom": 0, "managed": 0, "devices": 1})
        self.assertIn("is not a directory", read(os.path.join(self.tmp, "shim.%d.log" % p.pid)))

    def test_tcp_endpoint(self):
        """Port 0 and a report path: the address in <report>.endpoint (--dir), or
        given as PORT or HOST:PORT (--endpoint)."""
        reports = os.path.join(self.tmp, "reports")
        os.mkdir(reports)
        spec = {"allocs": [(0, "kv_cache", 3)], "oom": 0, "managed": 1, "devices": 1}
        p = self.workers.start("tcp", spec, {"VRAMGUARD_LISTEN": "0",
                                             "VRAMGUARD_REPORT": os.path.join(reports, "vramguard.%p.json")})
        address = read(os.path.join(reports, "vramguard.%d.json.endpoint" % p.pid)).strip()
        self.assertRegex(address, r"^http://127\.0\.0\.1:\d+$")
        port = address.rsplit(":", 1)[1]
        want = [(p.pid, mib(3 * MiB), 1, 0)]
        for args in (["--dir", reports], ["--endpoint", port], ["--endpoint", "127.0.0.1:" + port]):
            r = run_top(["--once"] + args, self.tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([(row[0], row[1], row[3], row[4]) for row in parse_rows(r.stdout.splitlines())],
                             want, args)

    def test_run_listen_auto(self):
        reports = os.path.join(self.tmp, "reports")
        env = worker_env(self.tmp)
        del env["LD_PRELOAD"], env["VRAMGUARD_LISTEN"]
        out = os.path.join(self.tmp, "run.out")
        with open(out, "wb") as f:
            p = subprocess.Popen([sys.executable, VRAMGUARD, "run", "--listen", "auto", "--report-dir", reports,
                                  "--", WORKER, "weights=8"], env=env, stdout=f, stderr=subprocess.STDOUT)
        self.workers.procs["run"] = p
        wait_for(lambda: "ready\n" in read(out), 30, "the worker under vramguard run")
        r = run_top(["--once"], self.tmp)
        rows = parse_rows(r.stdout.splitlines())
        self.assertEqual([(row[1], row[3]) for row in rows], [(mib(8 * MiB), 0)])
        r2 = run_top(["--once", "--dir", reports], self.tmp)
        self.assertEqual([row[0] for row in parse_rows(r2.stdout.splitlines())], [rows[0][0]])
        self.workers.stop()
        self.assertEqual(p.returncode, 0, read(out))
        self.assertIn("endpoint unix:%s/vramguard/%d.sock" % (self.tmp, rows[0][0]), read(out))


class PidNamespace(unittest.TestCase):
    """A worker in a PID namespace of its own (as in a container sharing the
    live directory) says its pid is 1; top shows the pid the kernel names to
    it for the socket's owner, and that process's command."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vg_top_ns.")
        self.workers = Workers(self.tmp)

    def tearDown(self):
        self.workers.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_pid_seen_from_here(self):
        unshare = shutil.which("unshare")
        probe = subprocess.run([unshare or "unshare", "--pid", "--fork", "true"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) if unshare else None
        if probe is None or probe.returncode != 0:
            self.skipTest("this machine cannot make a PID namespace (unshare --pid)")
        spec = {"allocs": [(0, "weights", 2)], "oom": 0, "managed": 0, "devices": 1}
        p = self.workers.start("ns", spec, prefix=(unshare, "--pid", "--fork", "--kill-child"))
        worker = int(read("/proc/%d/task/%d/children" % (p.pid, p.pid)).split()[0])
        self.assertEqual(os.listdir(os.path.join(self.tmp, "vramguard")), ["1.sock"])   # its own pid
        r = run_top(["--once"], self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([(row[0], row[1], row[5]) for row in parse_rows(r.stdout.splitlines())],
                         [(worker, mib(2 * MiB), " ".join([WORKER] + worker_args(spec)))])


class Tmux:
    """A private tmux server (its own socket) running `vramguard top` in a
    detached session, from a script that records the terminal settings
    before and after, and top's exit status."""

    count = 0

    def __init__(self, tmp, xdg, width, height):
        Tmux.count += 1                  # a server of its own each time: none outlives its test
        self.tmp, self.name = tmp, "vgtop%d.%d" % (os.getpid(), Tmux.count)
        self.status = os.path.join(tmp, "status")
        self.before, self.after = os.path.join(tmp, "stty.before"), os.path.join(tmp, "stty.after")
        self.stderr = os.path.join(tmp, "top.stderr")
        for path in (self.status, self.before, self.after, self.stderr):
            if os.path.exists(path):
                os.unlink(path)
        script = os.path.join(tmp, "top.sh")
        with open(script, "w") as f:
            f.write("trap : INT\n"              # Ctrl-C is for top; the script goes on
                    "stty -g > '%s'\n"
                    "XDG_RUNTIME_DIR='%s' LD_PRELOAD= '%s' '%s' top 2> '%s'\n"
                    "echo $? > '%s.tmp'\n"
                    "stty -g > '%s'\n"
                    "mv '%s.tmp' '%s'\n"
                    "sleep 600\n" % (self.before, xdg, sys.executable, VRAMGUARD, self.stderr, self.status,
                                     self.after, self.status, self.status))
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height),
                  "sh " + script)

    def tmux(self, *args):
        r = subprocess.run(["tmux", "-L", self.name] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError("tmux %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r.stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").splitlines()

    def display(self, fmt):
        return self.tmux("display-message", "-p", "-t", "top", fmt).strip()

    def top_pid(self):
        pane = int(self.display("#{pane_pid}"))
        children = read("/proc/%d/task/%d/children" % (pane, pane)).split()
        return int(children[0]) if children else None

    def wait_exit(self):
        wait_for(lambda: os.path.exists(self.status), 20, "top to exit")
        return int(read(self.status))

    def close(self):
        subprocess.run(["tmux", "-L", self.name, "kill-server"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


class Screen(Fixture):
    def setUp(self):
        if shutil.which("tmux") is None:
            self.fail("tmux is required for the terminal view's tests (apt-get install tmux)")
        self.term = Tmux(self.tmp, self.xdg, 100, 40)

    def tearDown(self):
        self.term.close()

    def shown(self):
        return "screen:\n" + "\n".join(self.term.screen())

    def wait_order(self, pids, sort_name):
        def ready():
            screen = self.term.screen()
            if screen and ("sorted by %s" % sort_name) in screen[0] and \
                    [row[0] for row in parse_rows(screen)] == pids:
                return screen
            return None
        return wait_for(ready, 15, "rows %s sorted by %s" % (pids, sort_name), self.shown)

    def assert_restored(self, status):
        self.assertEqual(self.term.wait_exit(), status)
        self.assertEqual(self.term.display("#{alternate_on}"), "0")    # the alternate screen was left
        self.assertEqual(read(self.term.before), read(self.term.after))  # stty settings as before
        self.assertEqual(read(self.term.stderr), "")
        self.assertFalse(any(line.startswith("vramguard top:") for line in self.term.screen()))

    def test_keys_resize_and_q(self):
        screen = self.wait_order(self.order("v"), "VRAM")
        self.assertEqual(self.term.display("#{alternate_on}"), "1")
        self.assertTrue(screen[-1].startswith("v VRAM  p pid  o OOMs  c command"), screen[-1])
        for key, name in (("p", "pid"), ("o", "OOMs"), ("v", "VRAM")):
            self.term.tmux("send-keys", "-t", "top", key)
            self.wait_order(self.order(key), name)
        # Wider, then narrower: the rule under the GPUs spans the new width each time.
        for width, height in ((140, 40), (72, 30)):
            self.term.tmux("resize-window", "-t", "top", "-x", str(width), "-y", str(height))
            wait_for(lambda: "=" * width in self.term.screen() and len(self.term.screen()) == height,
                     15, "a redraw at %dx%d" % (width, height), self.shown)
            screen = self.term.screen()
            self.assertRegex(screen[0], r"^vramguard top: .*\d\d:\d\d:\d\d$")
            self.assertEqual(len(screen[0]), width)
            self.assertEqual(parse_rows(screen)[0][0], self.order("v")[0])
            self.assertTrue(screen[-1].startswith("v VRAM"), screen[-1])
        # Too short for every line: the footer says which lines are shown; End, Home scroll.
        self.term.tmux("resize-window", "-t", "top", "-x", "72", "-y", "12")

        def footer(first):
            last = self.term.screen()[-1] if len(self.term.screen()) == 12 else ""
            m = re.match(r"lines (\d+)-(\d+) of (\d+) \| v VRAM", last)
            return m if m and int(m.group(1)) == first else None
        m = wait_for(lambda: footer(1), 15, "the footer at 72x12", self.shown)
        total = int(m.group(3))
        self.assertEqual(int(m.group(2)), 10)           # 12 rows: title, 10 lines, footer
        self.term.tmux("send-keys", "-t", "top", "End")
        m = wait_for(lambda: footer(total - 9), 15, "scrolled to the end", self.shown)
        self.assertEqual(int(m.group(2)), total)
        self.term.tmux("send-keys", "-t", "top", "Home")
        wait_for(lambda: footer(1), 15, "scrolled back to the top", self.shown)
        self.term.tmux("send-keys", "-t", "top", "q")
        self.assert_restored(0)

    def test_ctrl_c(self):
        self.wait_order(self.order("v"), "VRAM")
        self.term.tmux("send-keys", "-t", "top", "C-c")
        self.assert_restored(0)

    def test_sigterm(self):
        self.wait_order(self.order("v"), "VRAM")
        os.kill(self.term.top_pid(), signal.SIGTERM)
        self.assert_restored(128 + signal.SIGTERM)


if __name__ == "__main__":
    unittest.main()

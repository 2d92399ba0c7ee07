"""`vramguard run`: run a command with the shim preloaded, forward signals to
it, then judge the reports its processes left."""

import argparse
import errno
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile

from .common import (EXIT_FAIL, EXIT_INTERNAL, EXIT_NOEXEC, EXIT_NOTFOUND, GuardError,
                     UsageError, plural, say, signal_name)
from .library import find_library
from .options import (DEFAULT_ALLOW, DEFAULT_FAIL_ON, DEFAULT_POLICY, fail_on_text,
                      parse_allow, parse_exitcode, parse_fail_on, parse_limit, parse_listen,
                      parse_policy)
from .render import print_summary
from .reports import (ENDPOINT_RE, JOURNAL_SUFFIX, REPORT_PATTERN, REPORT_RE, aggregate,
                      collect_paths, load_endpoint)
from .suggest import allow_flags, print_suggestion, suggest

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SI_KERNEL = 0x80       # si_code of signals the tty driver sends to a process group

RUN_DESCRIPTION = """\
Run CMD with libvramguard.so preloaded, wait for it, then summarise the
reports of every process of CMD that reached the CUDA driver and evaluate the
fail-on conditions over all of them. The command is started directly (no
shell); SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to vramguard are forwarded to
it (a Ctrl-C from the terminal reaches it directly, and is not sent twice)."""


def add_parser(sub, epilog, fmt):
    run = sub.add_parser("run", help="run a command under vramguard and judge it",
                         usage="vramguard run [OPTIONS] -- CMD [ARGS...]",
                         description=RUN_DESCRIPTION, epilog=epilog, formatter_class=fmt)
    run.add_argument("--policy", type=parse_policy, default=None,
                     help="what the shim does with managed/host-pinned allocations: "
                          "reject (fail them), warn (allow and record), off "
                          "(default: VRAMGUARD_POLICY, else %s)" % DEFAULT_POLICY)
    run.add_argument("--limit", type=parse_limit, action="append", default=None, metavar="BUDGETS",
                     help="VRAM budgets (sets VRAMGUARD_LIMIT): a comma list of [DEVICE:]SCOPE=SIZE, "
                          "SCOPE total or a purpose (weights, kv_cache, intermediate, unknown), "
                          "SIZE NUMBER[K|M|G|T] (powers of 1024), DEVICE an ordinal (default: every "
                          "device). An allocation that would pass a budget is refused with "
                          "CUDA_ERROR_OUT_OF_MEMORY. May repeat. Example: --limit "
                          "total=40G,kv_cache=30G,weights=12G (default: VRAMGUARD_LIMIT, else none)")
    run.add_argument("--allow", type=parse_allow, action="append", default=None,
                     metavar="RULES",
                     help="allow host memory without a violation: a comma list of rules "
                          "KIND[:COND]..., KIND pinned (host-pinned and registered), "
                          "registered or managed, COND a glob on the calling module's file "
                          "name (libcudnn*), a bound per allocation (<=64K, <1M, >=4K, >4K; "
                          "K, M, G, T powers of 1024) or a cap on the kind's live bytes "
                          "(total<=256M); or none. May repeat: the rules of every --allow "
                          "are combined. Example: --allow 'pinned:libcudnn*' --allow "
                          "'pinned:<=64K' (default: VRAMGUARD_ALLOW, its malformed rules "
                          "dropped, else %s)" % DEFAULT_ALLOW)
    run.add_argument("--fail-on", type=parse_fail_on, default=None,
                     metavar="LIST",
                     help="comma list of violation, oom, leak, budget, or none "
                          "(default: VRAMGUARD_FAIL_ON, else %s)" % DEFAULT_FAIL_ON)
    run.add_argument("--report-dir", metavar="DIR",
                     help="keep the reports in DIR (created if needed); default: a "
                          "temporary directory removed at the end")
    run.add_argument("--log", metavar="FILE",
                     help="shim log destination: 'stderr' or a path (%%p expands to the pid)")
    run.add_argument("--error-exitcode", type=parse_exitcode, default=EXIT_FAIL, metavar="N",
                     help="exit status when a fail-on condition occurs, 1..255 "
                          "(default: %d)" % EXIT_FAIL)
    run.add_argument("--listen", type=parse_listen, metavar="SPEC",
                     help="serve /health, /metrics and /vram from every process that "
                          "reaches the CUDA driver (sets VRAMGUARD_LISTEN=SPEC): PORT "
                          "(127.0.0.1), IP:PORT, unix:/path (%%p expands to the pid) or "
                          "auto (a socket <pid>.sock where 'vramguard top' looks). "
                          "A fixed port is taken by the first process only (the others "
                          "warn and run on): for a command of several processes use port 0 "
                          "(a free port each), unix:/path/%%p or auto. Each bound address is "
                          "written to <report dir>/vramguard.<pid>.json.endpoint and "
                          "printed ('vramguard: pid N endpoint URL')")
    run.add_argument("--trace", metavar="PATH",
                     help="record a trace of every allocation, free, refusal, OOM and pool "
                          "reserve, with its time, size, device, kind, purpose and caller "
                          "(sets VRAMGUARD_TRACE=PATH; %%p expands to the pid, else the "
                          "processes of the command share the file). An existing file at a "
                          "PATH without %%p is replaced. Draw it with 'vramguard timeline "
                          "PATH -o timeline.html'. Bounded by VRAMGUARD_TRACE_MAX (default "
                          "256M per process)")
    run.add_argument("--require-cuda", action="store_true",
                     help="fail (like a fail-on condition: status 3 or --error-exitcode) "
                          "when no process of the command reached the CUDA driver: a "
                          "fully static binary or an unsupported path would otherwise "
                          "pass silently")
    run.add_argument("--suggest", action="store_true",
                     help="after the verdict, print the narrowest allowance that would let "
                          "the run's violations through, as 'vramguard suggest' does (with "
                          "--quiet, only its --allow line)")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="print only the verdict line (the shim logs nothing either, "
                          "unless its log goes to a file)")
    run.add_argument("stray", nargs="*", help=argparse.SUPPRESS)


def command(args, extra):
    """`extra`: what follows '--' (None without it): the command to run."""
    if args.stray:
        raise UsageError("vramguard run: error: put the command after '--': "
                         "vramguard run [OPTIONS] -- %s" % " ".join(args.stray))
    if extra is None:
        raise UsageError("vramguard run: error: missing '--' before the command: "
                         "vramguard run [OPTIONS] -- CMD [ARGS...]")
    if not extra:
        raise UsageError("vramguard run: error: missing command after '--'")
    return run(args, extra)


def prepare_report_dir(requested):
    if requested is None:
        try:
            return tempfile.mkdtemp(prefix="vramguard."), True
        except OSError as exc:
            raise GuardError("cannot create a temporary report directory: %s" % exc)
    path = os.path.abspath(requested)
    if "%" in path:
        raise GuardError("report directory %s: '%%' is not allowed in its path" % path)
    if re.search(r"[\n]", path):
        raise GuardError("report directory %r: newline in path" % path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise GuardError("cannot create report directory %s: %s" % (requested, exc.strerror or exc))
    if not os.access(path, os.W_OK | os.X_OK):
        raise GuardError("report directory %s is not writable" % requested)
    return path, False


def snapshot(directory):
    """Signatures of files already present, so earlier runs' files are not counted."""
    sig = {}
    try:
        for name in os.listdir(directory):
            try:
                st = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            sig[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        pass
    return sig


def build_env(lib, args, report_dir):
    env = dict(os.environ)
    old = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = lib + (":" + old if old.strip() else "")
    env["VRAMGUARD_POLICY"] = args.policy
    env["VRAMGUARD_ALLOW"] = args.allow
    env["VRAMGUARD_FAIL_ON"] = fail_on_text(args.fail_on)
    if args.limit:
        env["VRAMGUARD_LIMIT"] = ",".join(args.limit)
    else:
        env.pop("VRAMGUARD_LIMIT", None)
    env["VRAMGUARD_REPORT"] = os.path.join(report_dir, REPORT_PATTERN)
    if args.log is not None:
        env["VRAMGUARD_LOG"] = args.log if args.log == "stderr" else os.path.abspath(args.log)
    if args.listen is not None:
        env["VRAMGUARD_LISTEN"] = args.listen
    if args.trace is not None:
        env["VRAMGUARD_TRACE"] = args.trace
    env["VRAMGUARD_LOG_LEVEL"] = shim_log_level(args, env)
    return env


def shim_log_level(args, env):
    """VRAMGUARD_LOG_LEVEL for the command: the summary has a line per process,
    so the shim's own exit lines are left out (warn: refusals, OOM breakdowns,
    bad settings), unless the environment sets a level; with --quiet and the
    log on stderr, nothing (only the verdict is printed)."""
    on_stderr = env.get("VRAMGUARD_LOG", "").strip() in ("", "stderr")
    if args.quiet and on_stderr:
        return "quiet"
    return args.log_level or "warn"


class EndpointWatch(object):
    """Announces each vramguard.<pid>.json.endpoint as it appears in the report
    directory while the command runs (an endpoint is of use only then)."""

    def __init__(self, directory, before, out):
        self.directory = directory
        self.before = before
        self.out = out
        self.seen = set()

    def poll(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in sorted(names):
            if name in self.seen or not ENDPOINT_RE.match(name):
                continue
            path = os.path.join(self.directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if self.before.get(name) == (st.st_ino, st.st_size, st.st_mtime_ns):
                continue                      # left by an earlier run
            got = load_endpoint(path, complete_only=True)
            if got:
                self.seen.add(name)
                self.out("pid %s endpoint %s" % (got[0] if got[0] is not None else "?", got[1]))


def run_command(command, env, poll=None):
    """Start the command, forward signals, wait. Returns the Popen returncode
    (negative: killed by that signal). Exec failures raise OSError. `poll`,
    when given, is called about twice a second while the command runs."""
    watched = set(FORWARDED_SIGNALS) | {signal.SIGCHLD}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)

    def child_setup():
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    try:
        proc = subprocess.Popen(command, env=env, preexec_fn=child_setup)
        try:
            our_pgrp = os.getpgrp()
            while True:
                info = signal.sigtimedwait(watched, 0.5)
                if info is not None and info.si_signo in FORWARDED_SIGNALS:
                    forward = True
                    if info.si_code == SI_KERNEL:
                        # sent by the terminal to our process group: the command,
                        # which shares it, got it already -- unless it left the group
                        try:
                            forward = os.getpgid(proc.pid) != our_pgrp
                        except OSError:
                            forward = False
                    if forward and proc.returncode is None:
                        try:
                            proc.send_signal(info.si_signo)
                        except OSError:
                            pass
                if proc.poll() is not None:
                    return proc.returncode
                if poll is not None:
                    poll()
        finally:
            if proc.returncode is None:   # only on an internal error: do not orphan it
                try:
                    proc.kill()
                    proc.wait()
                except OSError:
                    pass
    finally:
        while True:   # drop what arrived while the command was ending
            try:
                if signal.sigtimedwait(watched, 0) is None:
                    break
            except OSError:
                break
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def prepare_trace(path):
    """--trace: the absolute path (a template when it has %p). A PATH
    without %p that exists is replaced: the trace is this run's."""
    if path is None:
        return None
    if not path.strip() or "\n" in path:
        raise GuardError("--trace %r: give a file path" % path)
    path = os.path.abspath(path)
    if "%p" not in path.replace("%%", ""):
        try:
            if os.path.isdir(path):
                raise GuardError("--trace %s is a directory: give a file path (%%p expands to the pid)" % path)
            if os.path.lexists(path):
                os.unlink(path)
        except OSError as exc:
            raise GuardError("cannot replace the trace %s: %s" % (path, exc.strerror or exc))
    return path


def trace_files(template):
    """The files a --trace template names now, with their signatures."""
    pattern = glob.escape(template.replace("%%", "\0")).replace("%p", "*").replace("\0", "%")
    found = {}
    for name in sorted(glob.glob(pattern)):
        try:
            st = os.stat(name)
            found[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            pass
    return found


def run(args, command):
    lib = find_library(args.script, args.installed_library)
    args.trace = prepare_trace(args.trace)
    traces_before = trace_files(args.trace) if args.trace else {}
    report_dir, temporary = prepare_report_dir(args.report_dir)
    try:
        before = {} if temporary else snapshot(report_dir)
        env = build_env(lib, args, report_dir)
        watch = (EndpointWatch(report_dir, before, say).poll
                 if args.listen is not None and not args.quiet else None)
        try:
            rc = run_command(command, env, watch)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if exc.errno == errno.ENOENT:
                say("%s: command not found (%s)" % (command[0], reason))
                return EXIT_NOTFOUND
            say("%s: cannot execute: %s" % (command[0], reason))
            return EXIT_NOEXEC
        except subprocess.SubprocessError as exc:
            say("%s: cannot start: %s" % (command[0], exc))
            return EXIT_NOEXEC

        warnings = []
        after = snapshot(report_dir)
        stale = [n for n, s in before.items() if after.get(n) == s]
        paths = collect_paths([report_dir], warnings.append)
        paths = [p for p in paths if os.path.basename(p) not in stale]
        agg = aggregate(paths, args.fail_on, require_cuda=args.require_cuda)

        if rc < 0:
            cmd_line = "command killed by %s (exit status %d)" % (signal_name(-rc), 128 - rc)
        elif rc != 0:
            cmd_line = "command exited with status %d" % rc
        else:
            cmd_line = "command exited with status 0"
        note = None if temporary else "reports in %s" % report_dir
        if not args.quiet:
            for w in warnings:
                say("warning: %s" % w)
            stale_files = [n for n in stale if REPORT_RE.match(n) or n.endswith(JOURNAL_SUFFIX)
                           or ENDPOINT_RE.match(n)]
            if stale_files:
                say("note: ignored %s left in %s by earlier runs" % (
                    plural(len(stale_files), "file"), report_dir))
            if temporary and env["VRAMGUARD_LOG_LEVEL"] in ("info", "debug") and agg.procs:
                say("note: the shim's exit lines name reports in a temporary directory, removed "
                    "when vramguard returns (keep them with --report-dir)")
        print_summary(agg, say, quiet=args.quiet, command_line=cmd_line, header_note=note)
        if args.trace is not None and not args.quiet:
            traces = [n for n, sig in sorted(trace_files(args.trace).items()) if traces_before.get(n) != sig]
            if traces:
                say("trace: %s; draw it: vramguard timeline %s -o timeline.html"
                    % (", ".join(traces), " ".join(traces)))
            else:
                say("trace: none written to %s (no process reached the CUDA driver)" % args.trace)
        if args.suggest:
            sug = suggest(agg, (lambda m: None) if args.quiet else
                          (lambda m: say("warning: %s" % m)))
            if args.quiet:
                say("suggested allowance: %s" % (
                    allow_flags(sug.kept + [r[0] for r in sug.rules]) if sug.rules
                    else "none (nothing to allow)"))
            else:
                print_suggestion(sug, say, lambda m: say("note: %s" % m))

        if rc < 0:
            return 128 - rc
        if rc != 0:
            return rc
        if agg.failed:
            return args.error_exitcode
        if agg.errors:
            return EXIT_INTERNAL
        return 0
    finally:
        if temporary:
            shutil.rmtree(report_dir, ignore_errors=True)

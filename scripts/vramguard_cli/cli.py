"""The command line: the top-level parser and its help, the subcommands, and
main(). Each subcommand is a module of this package named after it, with
add_parser(sub, epilog, fmt) and command(args, extra); COMMANDS lists them in
the order --help shows them."""

import argparse
import os
import sys

from . import report, run, suggest, timeline, top
from .common import EXIT_INTERNAL, GuardError, UsageError, say
from .options import DEFAULT_ALLOW, DEFAULT_FAIL_ON, DEFAULT_POLICY, resolve_settings

COMMANDS = (run, report, suggest, timeline, top)

DESCRIPTION = """\
vramguard keeps a CUDA program's data in VRAM and tells you where the VRAM
went. 'vramguard run' runs a command with the vramguard shim (libvramguard.so)
preloaded into every process it starts, then reads the JSON report each
process wrote and decides whether the run passes (a CI guard). 'vramguard
timeline' draws the trace of a run (run --trace) as a picture."""


EPILOG_COMMON = """\
library:
  libvramguard.so is looked up relative to the real path of this script:
  <dir>/../build/libvramguard.so (source tree), then
  <dir>/../lib/vramguard/libvramguard.so (installed). The environment variable
  VRAMGUARD_LIBRARY overrides both. A library that is missing or that ld.so
  cannot preload (checked by running /bin/true with it) is an error (125).

environment set for the command (inherited by all its children):
  LD_PRELOAD          libvramguard.so, prepended to any existing value (':')
  VRAMGUARD_POLICY    --policy, else the value already in the environment,
                      else %(policy)s
  VRAMGUARD_ALLOW     the rules of every --allow, else the environment's (its
                      malformed rules warned about and dropped), else %(allow)s
  VRAMGUARD_FAIL_ON   --fail-on, else the environment's, else %(fail_on)s (also
                      what 'run' and 'report' judge by)
  A flag wins over the environment, the environment over the default; an
  invalid value in the environment is warned about and the default used.
  VRAMGUARD_REPORT    <report dir>/vramguard.%%p.json (%%p: the process id)
  VRAMGUARD_LOG       --log, only when given (else inherited); a relative
                      path is made absolute
  VRAMGUARD_LISTEN    --listen, only when given (else inherited)
  VRAMGUARD_TRACE     --trace, only when given (else inherited); made
                      absolute. VRAMGUARD_TRACE_MAX (inherited) bounds each
                      process's trace, default 256M
  VRAMGUARD_LOG_LEVEL the environment's, else warn: the shim logs refusals,
                      OOM breakdowns and bad settings, not its exit lines
                      (the summary has a line per process); quiet with
                      --quiet when the log is on stderr. The shim's lines
                      start with vramguard[PID]:, the CLI's with vramguard:

report directory:
  Each process that reaches the CUDA driver appends events to
  vramguard.<pid>.json.journal while it runs and writes the report
  vramguard.<pid>.json (schema vramguard.report/v1) when it exits; a process
  killed by a signal leaves only its journal, and is counted from it
  ("killed, no report"). Processes that never reach the driver write nothing.
  A process that serves the endpoint (--listen) writes the address it bound,
  one line, to vramguard.<pid>.json.endpoint; the summary lists them.
  Without --report-dir a temporary directory is used and removed afterwards;
  a given directory is created if needed and kept. Files already in it
  before the run and left unchanged are ignored. Processes still running when
  the command exits are not waited for.

allowances (--allow, VRAMGUARD_ALLOW; the shim reads the same grammar):
  none, or a comma list of rules KIND[:COND]...
  KIND        pinned (host-pinned allocations and host registrations),
              registered (cuMemHostRegister only), managed
  COND        a glob on the calling module's file name (libcudnn*), a bound
              per allocation (<=64K, <1M, >=4K, >4K; K, M, G, T powers of
              1024), or total<=SIZE: a cap on the live bytes the rules of
              that kind let through in one process (the smallest cap wins)
  An allocation is allowed when a rule of its kind matches all of that
  rule's conditions and its kind's cap holds. --allow may repeat; a
  malformed rule in a flag is an error (125). Examples: pinned,
  'pinned:libcudnn*', 'pinned:<=64K', 'pinned:libcudnn*,pinned:<=64K',
  'managed:libfoo.so:<=1M', 'pinned:total<=256M' (quote < and > in a shell).
  'vramguard suggest DIR' (or 'run --suggest') prints the narrowest rules
  that let a run's violations through.

fail-on conditions (evaluated by vramguard over all processes):
  violation   at least one managed or host (pinned, registered) allocation
              that no allowance let through was seen (rejected, or let
              through with --policy warn)
  oom         at least one allocation failed with out-of-memory (the
              device's; a budget's refusals are budget)
  leak        at least one tracked allocation was still live at exit
  budget      at least one allocation was refused by a VRAMGUARD_LIMIT
              budget (--limit)
  none        never fail
  A condition that some process could not measure fails the same way: the
  leaks of a process killed before its report, figures its report says are
  "unknown" (the shim ran out of host memory), the violations or OOMs of a
  journal that reached its cap (VRAMGUARD_LOG_MAX) without recording any.
  With --require-cuda, a run in which no process reached the CUDA driver
  (no report, no journal with a start line) fails the same way.

exit status of 'run' (the first that applies):
  128+N       the command was killed by signal N
  N           the command exited with non-zero status N
  3           a fail-on condition occurred or could not be measured, or
              --require-cuda and no process reached the driver (or
              --error-exitcode N)
  125         vramguard failed: bad usage, library missing or not
              preloadable, report dir unusable, or an unreadable report
              (a fail-on condition takes precedence over an unreadable report)
  126         the command was found but could not be executed
  127         the command was not found
  0           otherwise

exit status of 'report' (also with --markdown): 0 pass, 3 a fail-on
condition occurred or could not be measured, 125 no report or journal found,
or some unreadable and no fail-on condition.

exit status of 'suggest': 0 a suggestion (or nothing to allow) was printed,
125 no report or journal found, or some unreadable (the suggestion printed is
then made of the others).

exit status of 'timeline': 0 the picture was written, 125 a trace cannot be
read or the output cannot be written.

more: man vramguard, docs/cli.md, docs/ci.md, docs/trace-format.md.
""" % {"policy": DEFAULT_POLICY, "allow": DEFAULT_ALLOW, "fail_on": DEFAULT_FAIL_ON}


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError("%s\n%s: error: %s" % (self.format_usage().rstrip(), self.prog, message))


def make_parser(version):
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="vramguard", description=DESCRIPTION, epilog=EPILOG_COMMON,
                    formatter_class=fmt)
    parser.add_argument("--version", action="version", version="vramguard %s" % version)
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub, EPILOG_COMMON, fmt)
    return parser


def main(argv, version, script, installed_library=""):
    """`script`: the entry script's path (the shim library is looked up relative
    to it); `installed_library`: the library's path make install wrote into it."""
    parser = make_parser(version)
    if "--" in argv:
        i = argv.index("--")
        head, extra = argv[:i], argv[i + 1:]
    else:
        head, extra = argv, None
    try:
        args = parser.parse_args(head)
        if args.subcommand is None:
            raise UsageError("%s\nvramguard: error: missing command (%s)"
                             % (parser.format_usage().rstrip(), commands_text()))
        args.script, args.installed_library = script, installed_library
        resolve_settings(args, os.environ,
                         (lambda m: None) if getattr(args, "quiet", False) else say)
        module = next(m for m in COMMANDS if m.__name__.rsplit(".", 1)[-1] == args.subcommand)
        return module.command(args, extra)
    except UsageError as exc:
        sys.stderr.write("%s\n" % exc)
        return EXIT_INTERNAL
    except GuardError as exc:
        say("error: %s" % exc)
        return EXIT_INTERNAL


def commands_text():
    """'run, report, suggest, timeline or top'"""
    names = [m.__name__.rsplit(".", 1)[-1] for m in COMMANDS]
    return ", ".join(names[:-1]) + " or " + names[-1]

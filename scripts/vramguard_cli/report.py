"""`vramguard report`: the summary and verdict of existing reports and
journals, as text or Markdown."""

from .common import EXIT_FAIL, EXIT_INTERNAL, UsageError, say
from .options import DEFAULT_FAIL_ON, parse_fail_on
from .render import md_code, print_markdown, print_summary, write_stdout
from .reports import aggregate, collect_paths


def add_parser(sub, epilog, fmt):
    rep = sub.add_parser("report", help="summarise existing reports and journals",
                         usage="vramguard report [--fail-on LIST] [--markdown] [--quiet] "
                               "DIR|FILE...",
                         description="Print the same summary as 'vramguard run' for reports "
                                     "(vramguard.*.json) and journals (*.journal) given "
                                     "directly or found in directories, with VRAM by purpose "
                                     "as a table (each VRAM kind's peak, live at exit, "
                                     "allocations) before the verdict. With --markdown, "
                                     "write it as Markdown tables on stdout, for a CI job "
                                     "summary: vramguard report --markdown reports >> "
                                     "\"$GITHUB_STEP_SUMMARY\"",
                         epilog=epilog, formatter_class=fmt)
    rep.add_argument("--fail-on", type=parse_fail_on, default=None,
                     metavar="LIST",
                     help="comma list of violation, oom, leak, budget, or none "
                          "(default: VRAMGUARD_FAIL_ON, else %s)" % DEFAULT_FAIL_ON)
    rep.add_argument("--markdown", action="store_true",
                     help="write a Markdown summary on stdout (processes, VRAM by purpose "
                          "and kind, devices, violations, OOM events, verdict); stderr "
                          "gets only the verdict line. The exit status is unchanged")
    rep.add_argument("--quiet", "-q", action="store_true",
                     help="print only the verdict line")
    rep.add_argument("paths", nargs="*", metavar="DIR|FILE")


def command(args, extra):
    sources = list(args.paths) + list(extra or [])
    if not sources:
        raise UsageError("report: give at least one report directory or file")
    warnings = []
    paths = collect_paths(sources, warnings.append)
    if not args.quiet:
        for w in warnings:
            say("warning: %s" % w)
    agg = aggregate(paths, args.fail_on)
    if not agg.procs:
        say("error: no vramguard report or journal found in %s" % " ".join(sources))
        if args.markdown:
            write_stdout("## vramguard: \u274c no report\n\nNo vramguard report or journal "
                         "was found in %s: no process reached the CUDA driver, or the "
                         "reports were not kept (`vramguard run --report-dir`).\n"
                         % ", ".join(md_code(x) for x in sources))
        return EXIT_INTERNAL
    if args.markdown:
        print_markdown(agg, write_stdout)
        print_summary(agg, say, quiet=True)     # the verdict line, for the job log
    else:
        print_summary(agg, say, quiet=args.quiet, purposes=True)
    if agg.failed:
        return EXIT_FAIL
    if agg.errors:
        return EXIT_INTERNAL
    return 0

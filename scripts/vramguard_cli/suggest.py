"""`vramguard suggest` (and `run --suggest`): the narrowest allowance that
lets a run's violations through under reject."""

import re
import shlex

from .common import EXIT_INTERNAL, UsageError, human, is_int, plural, say
from .options import ALLOW_GLOB_BYTES, ALLOW_RULES_MAX, allow_text, parse_allow_rule
from .render import write_stdout
from .reports import JOURNAL_SUFFIX, Malformed, aggregate, collect_paths, read_journal

ALLOWANCE_KIND = {"host_pinned": "pinned", "host_registered": "registered",
                  "managed": "managed"}
CALLER_OFFSET_RE = re.compile(r"^(.*)\+0x[0-9a-fA-F]+$")
ADDRESS_RE = re.compile(r"^(0x)?[0-9a-fA-F]+$")


def caller_module(caller):
    """The file name of the calling module in an event's caller ('/path/libx.so+0x1a'
    -> 'libx.so'), or None: no module ('(main)', an address, unknown)."""
    if not isinstance(caller, str):
        return None
    text = caller.strip()
    m = CALLER_OFFSET_RE.match(text)
    if m:
        text = m.group(1)
    base = text.rsplit("/", 1)[-1]
    if not base or base.startswith("(") or ADDRESS_RE.match(text):
        return None
    return base


def glob_escape(name):
    """A glob that matches exactly `name` (fnmatch); ':' and ',' cannot be written
    in a rule and match as '?', and a name too long for a rule's glob ends in '*'."""
    pieces = ["[%s]" % ch if ch in "*?[<>" else "?" if ch in ":," else ch for ch in name]
    if len("".join(pieces).encode("utf-8")) <= ALLOW_GLOB_BYTES:
        return "".join(pieces)
    out, used = [], 0
    for piece in pieces:
        size = len(piece.encode("utf-8"))
        if used + size > ALLOW_GLOB_BYTES - 1:
            break
        out.append(piece)
        used += size
    return "".join(out) + "*"


def round_pow2(n):
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def size_text(n):
    """Bytes with the largest exact suffix: 4 -> 4, 4096 -> 4K, 2 MiB -> 2M."""
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return "%d%s" % (n >> shift, suffix)
    return str(n)


def rule_text(kind, glob, bound):
    return ":".join([kind] + ([glob] if glob else []) + (["<=" + size_text(bound)]
                                                          if bound is not None else []))


def narrow_shape(rule):
    """(kind, glob or None, bound or None) of a rule of the shape KIND[:GLOB][:<=SIZE],
    the shape of the narrowest rules; None for any other rule."""
    if rule.caps or len(rule.bounds) > 1 or any(op != "<=" for op, _ in rule.bounds):
        return None
    return (rule.kind, rule.globs[0] if rule.globs else None,
            rule.bounds[0][1] if rule.bounds else None)


def narrowest_rule(ev):
    """(kind, module glob or None, size bound or None) of the narrowest rule that
    allows this violation: the shim's allow_rule when the event has one, else
    KIND[:MODULE]:<=SIZE from its kind, caller and size (SIZE rounded up to a
    power of two). None for a kind no rule can allow."""
    given = ev.get("allow_rule")
    if isinstance(given, str) and given:
        try:
            shape = narrow_shape(parse_allow_rule(given))
        except ValueError:
            shape = None
        if shape is not None:
            return shape
    kind = ALLOWANCE_KIND.get(ev.get("kind")) if isinstance(ev.get("kind"), str) else None
    if kind is None:
        return None
    module = caller_module(ev.get("caller"))
    size = ev.get("size")
    return (kind, glob_escape(module) if module else None,
            round_pow2(size) if is_int(size) and size >= 0 else None)


class Suggestion(object):
    def __init__(self):
        self.violations = 0
        self.procs = 0
        self.rejected = 0
        self.groups = {}          # (kind, glob) -> [bound or None, count, bytes]
        self.uncovered = {}       # event kind -> count
        self.missing = 0          # violations counted but not recorded anywhere
        self.had = []             # the allowance the run already had (its reports' config.allow)

    @property
    def rules(self):
        """[(rule text, count, bytes)], most bytes first."""
        out = [(rule_text(k, g, v[0]), v[1], v[2]) for (k, g), v in self.groups.items()]
        out.sort(key=lambda r: (-r[2], r[0]))
        return out

    @property
    def kept(self):
        """The run's own rules that stay in the allowance: those a suggested rule of
        the same kind and module with a larger bound does not replace."""
        out = []
        for text in self.had:
            shape = narrow_shape(parse_allow_rule(text))
            if shape is not None and shape[0:2] in self.groups:
                bound = self.groups[shape[0:2]][0]
                if bound is None or (shape[2] is not None and shape[2] <= bound):
                    continue
            if text not in [r[0] for r in self.rules]:
                out.append(text)
        return out

    @property
    def allow(self):
        """The whole allowance: the run's own rules, then the suggested ones."""
        return allow_text(self.kept + [r[0] for r in self.rules])


def add_violation(sug, ev, n=1):
    """One violation event (or a summary standing for n of them, by their largest size)."""
    if ev.get("action") == "rejected":
        sug.rejected += n
    rule = narrowest_rule(ev)
    if rule is None:
        kind = str(ev.get("kind"))
        sug.uncovered[kind] = sug.uncovered.get(kind, 0) + n
        return
    kind, glob, bound = rule
    g = sug.groups.setdefault((kind, glob), [bound, 0, 0])
    if bound is None or g[0] is None:
        g[0] = None
    else:
        g[0] = max(g[0], bound)
    g[1] += n
    g[2] += ev["size"] * n if is_int(ev.get("size")) else 0


def violations_into(part, proc, warn):
    """Every violation of a process into `part`; returns how many it covers. A
    report holds the first 64 and a journal read in memory as many: when the
    process counts more, they are streamed from its journal."""
    events = proc.violations
    covered = len(events)
    journal = None
    if proc.violation_count > len(events) and proc.path:
        journal = proc.path if proc.journal_only else proc.path + JOURNAL_SUFFIX
        streamed = Suggestion()
        try:
            run = read_journal(journal, lambda kind, ev, n: kind == "violation"
                               and add_violation(streamed, ev, n))
        except (Malformed, OSError):
            run = None
        if run is not None and run.violation_count > len(events):
            for key in ("groups", "uncovered"):
                setattr(part, key, getattr(streamed, key))
            part.rejected = streamed.rejected
            events, covered = None, run.violation_count
    if events is not None:
        for ev in events:
            add_violation(part, ev)
    if proc.violation_count > covered:
        warn("pid %s: %d of its %d violations are recorded (the report keeps the first "
             "64 and the journal %s is missing or shorter); the suggestion covers those only"
             % (proc.pid if proc.pid is not None else "?", covered, proc.violation_count,
                journal or ((proc.path or "?") + ("" if (proc.path or "").endswith(JOURNAL_SUFFIX)
                                                  else JOURNAL_SUFFIX))))
    return covered


def suggest(agg, warn):
    sug = Suggestion()
    for p in agg.procs:
        for rule in p.allow:
            try:
                parse_allow_rule(rule)
            except ValueError:
                continue
            if rule not in sug.had:
                sug.had.append(rule)
        part = Suggestion()
        covered = violations_into(part, p, warn)
        if covered:
            sug.procs += 1
        sug.violations += max(p.violation_count, covered)
        sug.missing += max(0, p.violation_count - covered)
        sug.rejected += part.rejected
        for kind, n in part.uncovered.items():
            sug.uncovered[kind] = sug.uncovered.get(kind, 0) + n
        for key, (bound, count, nbytes) in part.groups.items():
            g = sug.groups.setdefault(key, [bound, 0, 0])
            g[0] = None if bound is None or g[0] is None else max(g[0], bound)
            g[1] += count
            g[2] += nbytes
    return sug


def allow_flags(rules):
    return " ".join("--allow %s" % shlex.quote(r) for r in rules)


def print_suggestion(sug, out, note, quiet=False):
    """The suggestion: one line per rule (count and bytes it covers), then the
    ready --allow line and its VRAMGUARD_ALLOW form. `note` gets the caveats."""
    rules = sug.rules
    if quiet:
        out(sug.allow)
        return
    if not sug.violations:
        out("no violations: nothing to allow%s" % (
            " beyond the run's own allowance %s" % allow_text(sug.had) if sug.had else ""))
        return
    covered = sum(r[1] for r in rules)
    if covered == sug.violations:
        which = "it" if covered == 1 else "them"
    else:
        which = "%d of them" % covered
    out("%s in %s; %s allow%s %s (by kind and calling module, the largest size "
        "rounded up to a power of two):" % (
            plural(sug.violations, "violation"), plural(sug.procs, "process", "processes"),
            plural(len(rules), "rule"), "s" if len(rules) == 1 else "", which))
    width = max([len(r[0]) for r in rules] or [0])
    for text, count, nbytes in rules:
        out("%-*s    %s, %s" % (width, text, plural(count, "allocation"), human(nbytes)))
    for kind in sorted(sug.uncovered):
        note("%s of kind %s: no allowance can let %s through"
             % (plural(sug.uncovered[kind], "violation"), kind,
                "it" if sug.uncovered[kind] == 1 else "them"))
    if rules:
        if sug.kept:
            out("with the allowance the run already had: %s" % allow_text(sug.kept))
        total = len(sug.kept) + len(rules)
        if total > ALLOW_RULES_MAX:
            note("the allowance has %d rules, more than the %d the shim takes: merge some "
                 "(a glob for several modules, or a wider bound)" % (total, ALLOW_RULES_MAX))
        out(allow_flags(sug.kept + [r[0] for r in rules]))
        out("VRAMGUARD_ALLOW=%s" % shlex.quote(sug.allow))
    if sug.rejected:
        note("%s refused (policy reject): a program often stops or takes another path "
             "after a refusal, so later allocations may be missing; a run under "
             "--policy warn shows them all" % plural(sug.rejected, "allocation was",
                                                     "allocations were"))


SUGGEST_DESCRIPTION = """\
Read the reports and journals of a run (typically one under --policy warn;
a process killed by a signal is read from its journal) and print the
narrowest allowance that would let the same run pass under reject: every
violation of kind host_pinned, host_registered or managed, grouped by
allowance kind (pinned, registered, managed) and calling module, one rule
KIND:MODULE:<=SIZE per group with SIZE the group's largest allocation rounded
up to a power of two (no module part for a caller outside any module), one
line per rule with the allocations and bytes it covers, most bytes first;
then a ready '--allow RULE --allow RULE ...' line and its VRAMGUARD_ALLOW=...
form. When the run already had an allowance (its reports' config.allow),
its rules are kept in those two lines, less those a suggested rule widens.
Output on stdout, notes and warnings on stderr."""


def add_parser(sub, epilog, fmt):
    sug = sub.add_parser("suggest", help="the narrowest --allow that lets a run's violations "
                                         "through",
                         usage="vramguard suggest [--quiet] DIR|FILE...",
                         description=SUGGEST_DESCRIPTION, epilog=epilog,
                         formatter_class=fmt)
    sug.add_argument("--quiet", "-q", action="store_true",
                     help="print only the VRAMGUARD_ALLOW value (none when there is "
                          "nothing to allow): VRAMGUARD_ALLOW=$(vramguard suggest -q DIR)")
    sug.add_argument("paths", nargs="*", metavar="DIR|FILE")


def command(args, extra):
    sources = list(args.paths) + list(extra or [])
    if not sources:
        raise UsageError("suggest: give at least one report directory or file")
    warnings = []
    paths = collect_paths(sources, warnings.append)
    if not args.quiet:
        for w in warnings:
            say("warning: %s" % w)
    agg = aggregate(paths, [])
    if not agg.procs:
        say("error: no vramguard report or journal found in %s" % " ".join(sources))
        return EXIT_INTERNAL
    for p in agg.procs:
        for err in p.errors:
            say("error: %s" % err)
    sug = suggest(agg, (lambda m: None) if args.quiet else (lambda m: say("warning: %s" % m)))

    def out(line):
        write_stdout(line + "\n")
    print_suggestion(sug, out, (lambda m: None) if args.quiet else (lambda m: say("note: %s" % m)),
                     quiet=args.quiet)
    return EXIT_INTERNAL if agg.errors else 0

"""Option values: the grammars the shim reads (VRAMGUARD_POLICY, _ALLOW, _LIMIT,
_FAIL_ON, _LISTEN), checked the same way here, and which value wins: a flag,
else the environment, else the default."""

import argparse
import re
import socket

from .common import UsageError, say

POLICIES = ("reject", "warn", "off")
ALLOW_KINDS = ("pinned", "registered", "managed")
FAIL_ON_VALUES = ("violation", "oom", "leak", "budget")   # as the shim's VRAMGUARD_FAIL_ON
DEFAULT_POLICY = "reject"
DEFAULT_ALLOW = "none"
DEFAULT_FAIL_ON = "violation"


def parse_policy(value):
    v = value.strip().lower()
    if v not in POLICIES:
        raise argparse.ArgumentTypeError(
            "invalid policy %r (accepted: %s)" % (value, ", ".join(POLICIES)))
    return v


# VRAMGUARD_ALLOW, the grammar the shim reads (README, "Environment variables"):
#
#   VRAMGUARD_ALLOW := "none" | RULE ("," RULE)*
#   RULE  := KIND (":" COND)*
#   KIND  := pinned (host-pinned and registered) | registered | managed
#   COND  := GLOB                   fnmatch on the calling module's file name
#          | OP NUMBER[K|M|G|T]     a bound per allocation, OP one of <= < >= >
#          | "total<=" NUMBER[K|M|G|T]   a cap per kind on the live bytes let through
#
# An allocation of a kind is allowed when some rule of its kind matches all of
# that rule's conditions and the kind's cap (the smallest total<=) holds.

ALLOW_GRAMMAR = ("none, or a comma list of KIND[:COND]..., KIND pinned, registered or "
                 "managed, COND a module glob (libcudnn*), a size bound (<=64K, <1M, "
                 ">=4K, >4K; K, M, G, T powers of 1024) or a cap total<=SIZE")
SIZE_RE = re.compile(r"^([0-9]+)(?:([KMGTkmgt])i?)?[Bb]?$")
SIZE_SHIFT = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
U64_MAX = (1 << 64) - 1
ALLOW_RULES_MAX = 16      # the shim's limits (shim/model/allow.h)
ALLOW_RULE_BYTES = 159
ALLOW_GLOB_BYTES = 95


class AllowRule(object):
    """One checked RULE: its kind, module globs, size bounds and caps."""

    def __init__(self, text, kind, globs, bounds, caps):
        self.text, self.kind, self.globs, self.bounds, self.caps = text, kind, globs, bounds, caps


def parse_size(text):
    """NUMBER[K|M|G|T][i][B] -> bytes (as VRAMGUARD_PURPOSE_RULES reads a size)."""
    m = SIZE_RE.match(text)
    if not m:
        raise ValueError("size '%s' is not NUMBER[K|M|G|T]" % text)
    n = int(m.group(1)) << SIZE_SHIFT[(m.group(2) or "").upper()]
    if n > U64_MAX:
        raise ValueError("size '%s' is too large" % text)
    return n


LIMIT_SCOPES = ("total", "weights", "kv_cache", "intermediate", "unknown")
LIMIT_GRAMMAR = ("comma-separated [DEVICE:]SCOPE=SIZE, SCOPE total, weights, kv_cache, intermediate "
                 "or unknown, SIZE NUMBER[K|M|G|T] (powers of 1024), DEVICE an ordinal")


def parse_limit_entry(text):
    """One VRAMGUARD_LIMIT entry, [DEVICE:]SCOPE=SIZE (shim/model/budget.c) -> (device or None,
    scope, bytes); ValueError naming what is wrong."""
    entry = text.strip()
    if "=" not in entry:
        raise ValueError("not [DEVICE:]SCOPE=SIZE")
    where, size = entry.split("=", 1)
    device = None
    if ":" in where:
        dev, where = where.split(":", 1)
        if not dev.isdigit():
            raise ValueError("the device '%s' is not an ordinal" % dev)
        device = int(dev)
    if where not in LIMIT_SCOPES:
        raise ValueError("unknown scope '%s'" % where)
    return device, where, parse_size(size)


def parse_limit(value):
    """--limit: every entry checked; the cleaned list."""
    entries = [e.strip() for e in value.split(",")]
    for e in entries:
        try:
            parse_limit_entry(e)
        except ValueError as exc:
            raise argparse.ArgumentTypeError("invalid budget '%s': %s (accepted: %s)" % (e, exc, LIMIT_GRAMMAR))
    return entries


def glob_valid(glob):
    """As the shim's vg_glob_valid: every '[' closed, no trailing backslash."""
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "\\":
            if i + 1 == len(glob):
                return False
            i += 1
        elif c == "[":
            j = i + 1
            if glob[j:j + 1] in ("!", "^"):
                j += 1
            if glob[j:j + 1] == "]":
                j += 1
            j = glob.find("]", j)
            if j < 0:
                return False
            i = j
        i += 1
    return True


def parse_allow_rule(text):
    """One RULE -> AllowRule; ValueError with the reason when it is malformed."""
    if text == "":
        raise ValueError("the rule is empty")
    if text == "none":
        raise ValueError("'none' stands alone, not in a list of rules")
    if len(text.encode("utf-8")) > ALLOW_RULE_BYTES:
        raise ValueError("the rule is too long (at most %d bytes)" % ALLOW_RULE_BYTES)
    parts = text.split(":")
    kind = parts[0]
    if kind not in ALLOW_KINDS:
        raise ValueError("unknown kind '%s'" % kind)
    globs, bounds, caps = [], [], []
    lo, hi = 0, U64_MAX
    for cond in parts[1:]:
        if cond.startswith("total<="):
            caps.append(parse_size(cond[len("total<="):]))
        elif cond[:1] in ("<", ">"):
            op = cond[:2] if cond[1:2] == "=" else cond[:1]
            n = parse_size(cond[len(op):])
            if op == "<" and n == 0:
                raise ValueError("<0 lets nothing through")
            if op == ">" and n == U64_MAX:
                raise ValueError("a bound past the largest size lets nothing through")
            lo = max(lo, {">=": n, ">": n + 1}.get(op, 0))
            hi = min(hi, {"<=": n, "<": n - 1}.get(op, U64_MAX))
            if lo > hi:
                raise ValueError("its size bounds leave no size")
            bounds.append((op, n))
        elif cond == "":
            raise ValueError("empty condition")
        elif globs:
            raise ValueError("more than one module glob")
        elif len(cond.encode("utf-8")) > ALLOW_GLOB_BYTES:
            raise ValueError("the module glob is too long (at most %d bytes)" % ALLOW_GLOB_BYTES)
        elif not glob_valid(cond):
            raise ValueError("the module glob has an unclosed [ or a trailing \\")
        else:
            globs.append(cond)
    return AllowRule(text, kind, globs, bounds, caps)


def split_allow(value):
    """A VRAMGUARD_ALLOW value or --allow argument -> (rules, [(rule text, why)]).
    Only a value of exactly 'none' is 'none' (no rules, no errors)."""
    if value.strip() == "none":
        return [], []
    rules, bad = [], []
    for piece in value.split(","):
        text = piece.strip()
        try:
            rule = parse_allow_rule(text)
        except ValueError as exc:
            bad.append((text, str(exc)))
            continue
        if len(rules) == ALLOW_RULES_MAX and text not in [r.text for r in rules]:
            bad.append((text, "more than %d rules" % ALLOW_RULES_MAX))
        elif text not in [r.text for r in rules]:
            rules.append(rule)
    return rules, bad


def parse_allow(value):
    """One --allow argument: RULE[,RULE...] -> list of rule texts, or none ->
    ['none']; any malformed rule is an error naming it."""
    rules, bad = split_allow(value)
    if bad:
        text, why = bad[0]
        raise argparse.ArgumentTypeError("invalid rule '%s' in '%s': %s (accepted: %s)"
                                         % (text, value, why, ALLOW_GRAMMAR))
    return [r.text for r in rules] or ["none"]


def allow_text(rules):
    """Rule texts -> the VRAMGUARD_ALLOW value (duplicates dropped; none for no rule)."""
    out = []
    for r in rules:
        if r not in out:
            out.append(r)
    return ",".join(out) if out else "none"


def parse_fail_on(value):
    """'violation,oom' -> ['violation', 'oom']; 'none' -> []."""
    accepted = "a comma-separated list of %s, or none" % ", ".join(FAIL_ON_VALUES)
    items = [p.strip().lower() for p in value.split(",")]
    if items == ["none"]:
        return []
    out = []
    for item in items:
        if item not in FAIL_ON_VALUES:
            raise argparse.ArgumentTypeError(
                "invalid fail-on value %r in %r (accepted: %s)" % (item, value, accepted))
        if item not in out:
            out.append(item)
    return out


def parse_exitcode(value):
    try:
        n = int(value, 10)
    except ValueError:
        n = 0
    if not 1 <= n <= 255:
        raise argparse.ArgumentTypeError(
            "invalid exit code %r (accepted: an integer from 1 to 255)" % value)
    return n


def parse_listen(value):
    """VRAMGUARD_LISTEN syntax, as the shim checks it: PORT, HOST:PORT, unix:/path or auto."""
    accepted = ("accepted: PORT (on 127.0.0.1; 0 picks a free port), HOST:PORT with HOST an address "
                "literal (127.0.0.1, [::1], 0.0.0.0) or localhost, unix:/absolute/path (%p expands to "
                "the pid), or auto (a socket in the directory 'vramguard top' reads)")
    v = value.strip()
    if v == "auto":
        return v
    if v.startswith("unix:"):
        if not v[5:].startswith("/") or len(v) == 6:
            raise argparse.ArgumentTypeError("invalid listen address %r (%s)" % (value, accepted))
        return v
    host, sep, port = v.rpartition(":")
    if (not re.match(r"^[0-9]{1,5}$", port) or int(port) > 65535
            or (sep and not host_literal(host))):
        raise argparse.ArgumentTypeError("invalid listen address %r (%s)" % (value, accepted))
    return v


def host_literal(host):
    """As the shim: an IPv4 dotted quad, an IPv6 literal (bracketed or not) or localhost; no
    names, no short forms such as '0' that would bind every interface."""
    if host == "localhost":
        return True
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        return False


def fail_on_text(fail_on):
    return ",".join(fail_on) if fail_on else "none"


# What the user set wins over the defaults: a flag, else the variable in the
# environment (an empty value counts as unset, as in the shim), else the
# default. An invalid value in the environment gets one warning naming it and
# the accepted values, and the default stays (the shim's own convention).
# VRAMGUARD_ALLOW is a list of rules: --allow may repeat (the rules of all of
# them are combined), and a malformed rule in the environment is dropped with
# one warning naming it while the others stay (as the shim does).
SETTINGS = (
    ("policy", "VRAMGUARD_POLICY", parse_policy, DEFAULT_POLICY),
    ("fail_on", "VRAMGUARD_FAIL_ON", parse_fail_on, DEFAULT_FAIL_ON),
)


def resolve_allow(args, environ, warn):
    if not hasattr(args, "allow"):
        return
    if args.allow is not None:                  # --allow, once or more
        rules = [r for value in args.allow for r in value]
        if "none" in rules and any(r != "none" for r in rules):
            raise UsageError("vramguard run: error: argument --allow: 'none' cannot be "
                             "combined with rules (%s)" % allow_text(
                                 [r for r in rules if r != "none"]))
        rules = [r for r in rules if r != "none"]
        if len(set(rules)) > ALLOW_RULES_MAX:
            raise UsageError("vramguard run: error: argument --allow: more than %d rules (%s)"
                             % (ALLOW_RULES_MAX, allow_text(rules)))
        args.allow = allow_text(rules)
        return
    raw = environ.get("VRAMGUARD_ALLOW", "")
    if not raw.strip():
        args.allow = DEFAULT_ALLOW
        return
    rules, bad = split_allow(raw)
    kept = allow_text([r.text for r in rules])
    for text, why in bad:
        warn("warning: ignoring rule '%s' of VRAMGUARD_ALLOW=%s: %s (accepted: %s); using %s"
            % (text, raw, why, ALLOW_GRAMMAR, kept))
    args.allow = kept


def resolve_limit(args, environ, warn):
    """--limit (may repeat) > VRAMGUARD_LIMIT > none; a bad entry in the
    environment is warned about and dropped, as the shim drops it."""
    if not hasattr(args, "limit"):
        return
    if args.limit is not None:
        args.limit = [e for value in args.limit for e in value]
        return
    raw = environ.get("VRAMGUARD_LIMIT", "")
    kept = []
    for e in (x.strip() for x in raw.split(",")) if raw.strip() else ():
        try:
            parse_limit_entry(e)
            kept.append(e)
        except ValueError as exc:
            warn("warning: ignoring budget '%s' of VRAMGUARD_LIMIT: %s (accepted: %s)" % (e, exc, LIMIT_GRAMMAR))
    args.limit = kept


LOG_LEVELS = ("quiet", "warn", "info", "debug")   # VRAMGUARD_LOG_LEVEL, as the shim reads it


def resolve_log_level(args, environ, warn):
    """run: VRAMGUARD_LOG_LEVEL from the environment, checked (None: unset)."""
    if args.subcommand != "run":
        return
    raw = environ.get("VRAMGUARD_LOG_LEVEL", "").strip()
    args.log_level = raw or None
    if raw and raw not in LOG_LEVELS:
        warn("warning: ignoring VRAMGUARD_LOG_LEVEL=%s (accepted: %s); using the default under "
             "'vramguard run': warn" % (raw, ", ".join(LOG_LEVELS)))
        args.log_level = None


def resolve_settings(args, environ, warn=say):
    """`warn` gets the warnings about invalid values (say; nothing under --quiet)."""
    resolve_allow(args, environ, warn)
    resolve_limit(args, environ, warn)
    resolve_log_level(args, environ, warn)
    for attr, var, parse, default in SETTINGS:
        if not hasattr(args, attr) or getattr(args, attr) is not None:
            continue
        raw = environ.get(var, "")
        value = None
        if raw.strip():
            try:
                value = parse(raw)
            except argparse.ArgumentTypeError as exc:
                warn("warning: ignoring %s=%s: %s; using the default: %s" % (var, raw, exc, default))
        setattr(args, attr, value if value is not None else parse(default))

"""What every part of the CLI shares: exit statuses, errors, the stderr voice
and number formatting."""

import signal
import sys

EXIT_FAIL = 3          # a fail-on condition occurred (default of --error-exitcode)
EXIT_INTERNAL = 125    # vramguard itself failed (usage, library, report dir, reports)
EXIT_NOEXEC = 126      # command found but could not be executed
EXIT_NOTFOUND = 127    # command not found


class UsageError(Exception):
    """Bad command line: exit 125 after printing the usage."""


class GuardError(Exception):
    """vramguard itself cannot do its job: exit 125."""


def say(msg):
    sys.stderr.write("vramguard: %s\n" % msg)
    sys.stderr.flush()


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def list_or_empty(x):
    """An optional list field of a report or journal: anything else reads as []."""
    return x if isinstance(x, list) else []


def human(n):
    """Bytes in binary units: 512 B, 1.5 KiB, 2.0 GiB."""
    if n is None:
        return "unknown"
    if n < 1024:
        return "%d B" % n
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024.0
        if value < 1024.0 or unit == "PiB":
            return "%.1f %s" % (value, unit)
    return "%d B" % n  # not reached


def plural(n, word, words=None):
    return "%d %s" % (n, word if n == 1 else (words or word + "s"))


def signal_name(num):
    try:
        return signal.Signals(num).name
    except ValueError:
        return "signal %d" % num

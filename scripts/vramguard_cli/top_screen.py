"""The terminal view of `vramguard top` (curses): draws the lines top.render
makes, asks the endpoints again every interval, and reads keys in between.
The terminal is given back as it was however the view ends: q or Ctrl-C
(status 0), SIGTERM or SIGHUP (128 + the signal), or an error. A resize is
drawn again at the new size."""

import curses
import locale
import signal
import time

from . import top

STYLES = {"title": curses.A_REVERSE | curses.A_BOLD, "head": curses.A_BOLD, "proc": curses.A_BOLD,
          "gpu": curses.A_BOLD, "warn": curses.A_BOLD, "dim": curses.A_NORMAL, "text": curses.A_NORMAL}
SCROLL_KEYS = {curses.KEY_DOWN: 1, curses.KEY_UP: -1, curses.KEY_NPAGE: "page", curses.KEY_PPAGE: "-page",
               curses.KEY_HOME: "home", curses.KEY_END: "end"}


class Quit(Exception):
    def __init__(self, status):
        Exception.__init__(self, status)
        self.status = status


def run(args, dirs, endpoints, where):
    def on_signal(signum, frame):
        raise Quit(128 + signum)

    old = dict((s, signal.signal(s, on_signal)) for s in (signal.SIGTERM, signal.SIGHUP))
    locale.setlocale(locale.LC_ALL, "")
    try:
        return curses.wrapper(View(args, dirs, endpoints, where).loop)
    except KeyboardInterrupt:
        return 0
    except Quit as q:
        return q.status
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


class View:
    def __init__(self, args, dirs, endpoints, where):
        self.args, self.dirs, self.endpoints, self.where = args, dirs, endpoints, where
        self.sort = args.sort
        self.scroll = 0
        self.procs, self.notes = [], []
        self.encoding = locale.getpreferredencoding(False) or "ascii"

    def refresh_data(self):
        notes = []
        self.procs = top.snapshot(top.discover(self.dirs, self.endpoints, notes.append))
        self.notes = notes

    def put(self, screen, y, x, text, attr, width):
        """Draw what fits; text the terminal cannot show becomes '?'."""
        text = text.encode(self.encoding, "replace").decode(self.encoding, "replace")
        try:
            screen.addnstr(y, x, text, max(width - x, 0), attr)
        except curses.error:
            pass            # the bottom-right cell, or a screen smaller than the text

    def draw(self, screen):
        h, w = screen.getmaxyx()
        lines = top.render(self.procs, w, self.sort, self.where, self.notes)
        body = lines[1:]
        rows = max(h - 2, 0)
        self.scroll = max(0, min(self.scroll, len(body) - rows))
        screen.erase()
        self.put(screen, 0, 0, lines[0][0].ljust(w), STYLES["title"], w)
        for i, (text, style) in enumerate(body[self.scroll:self.scroll + rows]):
            self.put(screen, 1 + i, 0, text, STYLES.get(style, curses.A_NORMAL), w)
        if h >= 2:
            keys = top.KEYS_HELP
            if len(body) > rows:     # first: a narrow terminal cuts the keys, not this
                keys = "lines %d-%d of %d | %s" % (self.scroll + 1, min(self.scroll + rows, len(body)),
                                                   len(body), keys)
            self.put(screen, h - 1, 0, keys.ljust(w - 1), curses.A_REVERSE, w - 1)
        screen.refresh()
        return rows

    def loop(self, screen):
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        next_at = 0.0
        while True:
            if time.monotonic() >= next_at:
                self.refresh_data()
                next_at = time.monotonic() + self.args.interval
            rows = self.draw(screen)
            screen.timeout(max(1, int((next_at - time.monotonic()) * 1000)))
            ch = screen.getch()
            if ch in (ord("q"), ord("Q")):
                return 0
            if 0 <= ch < 128 and chr(ch).lower() in top.SORTS:
                self.sort = chr(ch).lower()
                self.scroll = 0
            elif ch in SCROLL_KEYS:
                step = SCROLL_KEYS[ch]
                if step == "home":
                    self.scroll = 0
                elif step == "end":
                    self.scroll = 1 << 30
                elif step in ("page", "-page"):
                    self.scroll += max(rows - 1, 1) * (1 if step == "page" else -1)
                else:
                    self.scroll += step
            # KEY_RESIZE, or anything else: drawn again at the present size

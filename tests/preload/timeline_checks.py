#!/usr/bin/env python3
"""What `vramguard timeline` must draw for the demo worker's trace, checked
against the run's own report (tests/preload/check_trace.c). Prints "ok" or
one "wrong: why" line per fact that fails.

  timeline_checks.py html OUT.html REPORT     the page, parsed with html.parser
  timeline_checks.py dom DUMPED.html REPORT   the DOM Chromium dumped after the
                                              page's script ran (also: it ran)
  timeline_checks.py svg OUT.svg REPORT       the SVG file, parsed as XML
  timeline_checks.py png SHOT.png             a screenshot: the series and the
                                              markers are on it, in their colours
"""
import json
import os
import struct
import sys
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from vramguard_cli import sites  # noqa: E402  (the CLI's own naming of a report's sites)

wrong = []


def expect(cond, why):
    if not cond:
        wrong.append(why)
    return cond


class Elements(HTMLParser):
    """Every element: (tag, attributes, the text directly inside it)."""

    def __init__(self):
        HTMLParser.__init__(self)
        self.all, self.stack = [], []

    def handle_starttag(self, tag, attrs):
        el = [tag, dict(attrs), ""]
        self.all.append(el)
        if tag not in ("meta", "br", "img", "input", "link"):
            self.stack.append(el)

    def handle_startendtag(self, tag, attrs):
        self.all.append([tag, dict(attrs), ""])

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2] += data


def classes(el):
    return set((el[1].get("class") or "").split())


def expected(report_path):
    with open(report_path) as f:
        rep = json.load(f)
    dev = rep["devices"][0]
    purposes = {}
    for u in dev["usage"]:
        if u["kind"] in ("device", "pool", "vmm", "array"):
            purposes[u["purpose"]] = max(purposes.get(u["purpose"], 0), u["peak_bytes"])
    return {"pid": rep["process"]["pid"], "peak": dev["peak_vram_bytes"], "purposes": purposes,
            "violations": [(e["size"], e["kind"]) for e in rep["violations"]["recorded"]],
            "ooms": [e["size"] for e in rep["oom_events"]["recorded"]],
            "callers": sorted(e["caller"].rsplit("/", 1)[-1] for e in
                              rep["violations"]["recorded"] + rep["oom_events"]["recorded"]),
            "sites": sorted(sites.describe(e) or "" for e in
                            rep["violations"]["recorded"] + rep["oom_events"]["recorded"])}


def check_elements(els, want, svg_file=False):
    charts = [e for e in els if "vg-chart" in classes(e)]
    if not expect(len(charts) == 1, "%d charts, want 1 (one process, one device)" % len(charts)):
        return
    c = charts[0][1]
    expect(int(c["data-pid"]) == want["pid"], "chart of pid %s, the report's %d" % (c["data-pid"], want["pid"]))
    expect(int(c["data-peak-bytes"]) == want["peak"],
           "peak %s, the report's peak_vram_bytes %d" % (c["data-peak-bytes"], want["peak"]))
    series = {e[1].get("data-series"): int(e[1]["data-peak-bytes"]) for e in els
              if e[0] == "path" and "series" in classes(e)}
    for purpose, peak in want["purposes"].items():
        expect(series.get(purpose) == peak, "series %s peaks at %r, the report's %d" % (purpose, series.get(purpose), peak))
    expect(set(series) == set(want["purposes"]), "series %r, want %r" % (sorted(series), sorted(want["purposes"])))
    markers = [e[1] for e in els if e[0] == "g" and "marker" in classes(e)]
    refused = sorted(int(m["data-size"]) for m in markers if m["data-kind"] == "refused")
    ooms = sorted(int(m["data-size"]) for m in markers if m["data-kind"] == "oom")
    expect(refused == sorted(s for s, _ in want["violations"]), "refused markers %r, violations %r"
           % (refused, want["violations"]))
    expect(ooms == sorted(want["ooms"]), "oom markers %r, OOM events %r" % (ooms, want["ooms"]))
    callers = sorted(m.get("data-caller") for m in markers)
    expect(callers == want["callers"], "markers' callers %r, the report's %r" % (callers, want["callers"]))
    named = sorted(m.get("data-site") for m in markers)
    expect(named == want["sites"] and all(named), "markers' sites %r, the report's %r" % (named, want["sites"]))
    peaks = [e[1] for e in els if e[0] == "g" and "peak" in classes(e)]
    expect(len(peaks) == 1 and int(peaks[0]["data-peak-bytes"]) == want["peak"], "peak mark %r" % peaks)
    rows = [int(e[1]["data-size"]) for e in els if "data-size" in e[1] and e[0] in ("tr", "text")]
    where = [e[2] for e in els if e[0] in ("code", "text") and "via cudaMalloc" in e[2]]
    expect(len(where) == len(rows) and all("demo_worker.c:" in w for w in where),
           "the largest allocations' sites %r: each a function of the demo's own, with its line" % where)
    expect(rows and sum(rows) == want["peak"] and rows == sorted(rows, reverse=True),
           "largest alive at the peak %r: the demo's allocations, largest first, add up to the peak %d"
           % (rows, want["peak"]))
    titles = [e for e in els if e[0] == "title" and "at load_weights (" in e[2] and "caller demo_worker+0x" in e[2]]
    expect(titles, "no hover detail names the site and the caller of an allocation")
    scripts = [e for e in els if e[0] == "script" and e[1].get("src")]
    links = [e for e in els if e[0] == "link" or (e[0] in ("img", "image") and not
                                                  (e[1].get("src") or e[1].get("href") or "").startswith("data:"))]
    expect(not scripts and not links, "the page refers outside itself: %r" % (scripts + links))


def html_page(path, report_path, dom=False):
    p = Elements()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p.feed(text)
    check_elements(p.all, expected(report_path))
    expect("http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
           and "https://" not in text, "a URL in the page")
    if dom:
        body = [e for e in p.all if e[0] == "body"]
        expect(body and body[0][1].get("data-timeline-ready") == "1",
               "the page's script did not run (body data-timeline-ready %r)" % (body and body[0][1]))


def svg_file(path, report_path):
    tree = ET.parse(path)
    els = []
    for el in tree.iter():
        tag = el.tag.split("}")[-1]
        els.append([tag, dict(el.attrib), el.text or ""])
    expect(tree.getroot().tag.endswith("svg"), "root %s" % tree.getroot().tag)
    check_elements(els, expected(report_path), svg_file=True)


def png_pixels(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            if depth != 8 or color not in (2, 6):
                raise ValueError("PNG of depth %d colour type %d" % (depth, color))
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def png(path):
    width, height, bpp, rows = png_pixels(path)
    counts = {}
    # The series are drawn at 90% opacity on white; the markers opaque.
    want = {"weights": (0x4e, 0x79, 0xa7, 0.9), "kv_cache": (0xf2, 0x8e, 0x2b, 0.9),
            "intermediate": (0x59, 0xa1, 0x4f, 0.9), "oom marker": (0xd6, 0x27, 0x28, 1.0),
            "refused marker": (0x8c, 0x2d, 0x9c, 1.0)}
    targets = {}
    for name, (r, g, b, alpha) in want.items():
        targets[name] = tuple(round(alpha * v + (1 - alpha) * 255) for v in (r, g, b))
    for line in rows:
        for x in range(0, width * bpp, bpp):
            px = (line[x], line[x + 1], line[x + 2])
            for name, t in targets.items():
                if abs(px[0] - t[0]) <= 8 and abs(px[1] - t[1]) <= 8 and abs(px[2] - t[2]) <= 8:
                    counts[name] = counts.get(name, 0) + 1
    for name in want:
        least = 20 if "marker" in name else 100
        expect(counts.get(name, 0) >= least, "%s: %d pixels of its colour on the screenshot (want %d or more)"
               % (name, counts.get(name, 0), least))


def main(argv):
    what = argv[1] if len(argv) > 1 else ""
    if what in ("html", "dom") and len(argv) == 4:
        html_page(argv[2], argv[3], dom=what == "dom")
    elif what == "svg" and len(argv) == 4:
        svg_file(argv[2], argv[3])
    elif what == "png" and len(argv) == 3:
        png(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    print("\n".join("wrong: " + w for w in wrong) if wrong else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

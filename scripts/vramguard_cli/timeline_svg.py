"""Drawing `vramguard timeline`: each panel (one device of one process) as an
SVG chart, put together as a self-contained HTML page or as one SVG file.

Every element a reader may want to point at says what it is in its class
and data-* attributes (series, markers, the peak, the allocation ticks), so
that tests, and people reading the DOM, need not decode coordinates."""

import datetime
import json
from html import escape

from .common import human
from . import tracefile as tf

ML, MR, MT, MB = 76, 18, 54, 46          # margins around the plot area
CW, CH = 900, 260                        # plot area
PANEL_W, PANEL_H = ML + CW + MR, MT + CH + MB
SIDE_W = 460                             # the largest allocations, beside a chart (SVG file)

# Bottom to top. Values come in tracefile.PURPOSES order (unknown first).
LAYERS = (("weights", 1, "#4e79a7"), ("kv_cache", 2, "#f28e2b"), ("intermediate", 3, "#59a14f"),
          ("unknown", 0, "#9a9a9a"))
POOL_COLOR, GRAPH_COLOR = "#c9c1bd", "#d4a6c8"
MARKER_STYLE = {"oom": ("#d62728", "out of memory"), "budget_oom": ("#ff7f0e", "over budget"),
                "refused": ("#8c2d9c", "violation, refused"),
                "let_through": ("#c9a400", "violation, let through")}

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 2px; }
h3 { font-size: 13px; margin: 10px 0 4px; }
.meta, .sources { color: #555; margin: 2px 0; } .notes { color: #8a4b00; margin: 4px 0; }
.panel { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin: 10px 0 18px; }
.side { max-width: 520px; font-size: 12px; }
table { border-collapse: collapse; } td, th { padding: 2px 8px 2px 0; text-align: left; vertical-align: top; }
th { color: #555; font-weight: 600; border-bottom: 1px solid #ddd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-size: 12px; }
#vg-tip { position: fixed; display: none; pointer-events: none; background: #fffff2; border: 1px solid #999;
  padding: 4px 7px; font-size: 12px; max-width: 520px; box-shadow: 1px 1px 3px rgba(0,0,0,.2); z-index: 9; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .title { font-size: 13px; font-weight: 600; }
svg .axis line, svg .grid line { stroke: #ddd; } svg .axis text { fill: #555; }
svg .frame { fill: none; stroke: #bbb; }
"""

SCRIPT = """
(function () {
  var tip = document.getElementById('vg-tip');
  function show(text, ev) {
    tip.textContent = text; tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = ev.clientX - tip.offsetWidth - 8;
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  function hide() { tip.style.display = 'none'; }
  document.querySelectorAll('svg.vg-chart [data-tip]').forEach(function (el) {
    el.addEventListener('mousemove', function (ev) { ev.stopPropagation(); show(el.getAttribute('data-tip'), ev); });
    el.addEventListener('mouseleave', hide);
  });
  function human(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + ' ' + u[i];
  }
  var charts = document.querySelectorAll('svg.vg-chart');
  charts.forEach(function (svg) {
    var data = JSON.parse(svg.querySelector('script.vg-data').textContent);
    var area = svg.querySelector('rect.plot-area'), line = svg.querySelector('line.cursor');
    area.addEventListener('mousemove', function (ev) {
      var box = svg.getBoundingClientRect(), scale = box.width / data.width;
      var x = (ev.clientX - box.left) / scale;
      var t = (x - data.x0) / data.w * data.t1;
      var lo = 0, hi = data.t.length - 1;
      while (lo < hi) { var mid = (lo + hi + 1) >> 1; if (data.t[mid] <= t) lo = mid; else hi = mid - 1; }
      var v = data.v[lo], text = (t / 1e9).toFixed(3) + ' s:', total = 0;
      data.names.forEach(function (name, i) { if (v[i]) text += ' ' + name + ' ' + human(v[i]) + ';'; total += i < 4 ? v[i] : 0; });
      show(text + ' live VRAM ' + human(total), ev);
      line.setAttribute('x1', x); line.setAttribute('x2', x); line.style.display = 'inline';
    });
    area.addEventListener('mouseleave', function () { hide(); line.style.display = 'none'; });
  });
  document.body.setAttribute('data-timeline-ready', String(charts.length));
})();
"""


def nice_step(span, target):
    """A 1, 2 or 5 times a power of ten step giving about `target` steps."""
    raw = span / float(max(target, 1))
    power = 1.0
    while power * 10 <= raw:
        power *= 10
    while power > raw and power > 1e-12:
        power /= 10
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def byte_axis(top):
    """(unit name, unit bytes, step in units, ceiling in bytes) for a y axis up to `top`."""
    for name, unit in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if top >= unit or unit == 1:
            break
    span = max(top / float(unit), 1e-9)
    step = nice_step(span, 5)
    ceiling = step * unit
    while ceiling < top:
        ceiling += step * unit
    return name, unit, step, ceiling


def fmt_num(x):
    return ("%.3f" % x).rstrip("0").rstrip(".")


def time_unit(ns):
    """The unit a time axis spanning `ns` is labelled in."""
    return ("\u00b5s", 1e3) if ns < 2e6 else ("ms", 1e6) if ns < 2e9 else ("s", 1e9)


def seconds(ns):
    """A time since the trace began, to the precision its size asks for."""
    name, unit = time_unit(ns)
    return "%s %s" % (fmt_num(round(ns / unit, 3)), name)


def layers_of(sample):
    t, values, pool_cache, graph = sample
    return [values[i] for _, i, _ in LAYERS] + [pool_cache, graph]


def chart(p, pan, standalone):
    """One panel's <svg> (the HTML page) or <g> content (the SVG file)."""
    names = [n for n, _, _ in LAYERS] + ["pool_cache", "graph_pool"]
    colors = [c for _, _, c in LAYERS] + ["url(#hatch)", GRAPH_COLOR]
    samples = pan.samples or [(0, (0, 0, 0, 0), 0, 0)]
    duration = max(p.duration, samples[-1][0], 1)
    rows = [layers_of(s) for s in samples]
    shown = [k for k in range(len(names)) if any(r[k] for r in rows)]
    top = max([sum(r) for r in rows] + [pan.peak_bytes, 1])
    extra = [b for scope, b in pan.budgets if scope == "total"]
    if pan.total_bytes and pan.total_bytes <= 2 * top:
        extra.append(pan.total_bytes)
    top = max([top] + [b for b in extra if b <= 4 * top])
    unit_name, unit, step, ceiling = byte_axis(top * 1.04)

    def X(t):
        return ML + CW * t / float(duration)

    def Y(b):
        return MT + CH - CH * b / float(ceiling)

    out = []
    title = "pid %d \u00b7 %s \u00b7 device %d" % (p.pid, short_exe(p.exe), pan.device)
    if pan.name:
        title += " (%s%s)" % (pan.name, ", " + human(pan.total_bytes) if pan.total_bytes else "")
    out.append('<text class="title" x="%d" y="16">%s</text>' % (ML, escape(title)))
    # legend
    x = ML
    for k in shown:
        peak = max(r[k] for r in rows)
        label = "%s (peak %s)" % (names[k], human(peak)) if k < 4 else \
            "%s (most %s)" % (names[k].replace("_", " "), human(peak))
        out.append('<g class="legend" data-series="%s"><rect x="%d" y="26" width="11" height="11" fill="%s" '
                   'stroke="#777" stroke-width="0.5"/><text x="%d" y="36">%s</text></g>'
                   % (names[k], x, colors[k], x + 15, escape(label)))
        x += 24 + 6.4 * len(label)
    # grid and axes
    out.append('<g class="grid">')
    v = 0.0
    while v * unit <= ceiling + 1e-6:
        y = Y(v * unit)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (ML, ML + CW, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%s %s</text>' % (ML - 6, y + 4, fmt_num(v), unit_name))
        v += step
    out.append('</g><g class="axis">')
    tname, tunit = time_unit(duration)
    tstep = nice_step(duration / tunit, 8)
    i = 0
    while i * tstep * tunit <= duration * 1.0001:
        xx = X(i * tstep * tunit)
        out.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d"/><text x="%.1f" y="%d" text-anchor="middle">%s %s</text>'
                   % (xx, xx, MT + CH, MT + CH + 4, xx, MT + CH + 28, fmt_num(i * tstep), tname))
        i += 1
    out.append('</g>')
    # stacked series, step after each sample
    out.append('<g class="series-stack">')
    lower = [0] * len(rows)
    for k in range(len(names)):
        upper = [lower[i] + rows[i][k] for i in range(len(rows))]
        if k in shown:
            pts = []
            for i, s in enumerate(samples):
                xi = X(s[0])
                if i:
                    pts.append((xi, upper[i - 1]))
                pts.append((xi, upper[i]))
            back = []
            for i in range(len(samples) - 1, -1, -1):
                xi = X(samples[i][0])
                back.append((xi, lower[i]))
                if i:
                    back.append((xi, lower[i - 1]))
            d = "M" + " L".join("%.1f %.1f" % (xx, Y(b)) for xx, b in pts + back) + " Z"
            peak = max(r[k] for r in rows)
            tip = "%s: peak %s (%d B)" % (names[k], human(peak), peak)
            out.append('<path class="series %s" data-series="%s" data-peak-bytes="%d" fill="%s" '
                       'fill-opacity="0.9" stroke="none" data-tip="%s" d="%s"><title>%s</title></path>'
                       % ("pool-cache" if k == 4 else "graph-pool" if k == 5 else "purpose-" + names[k],
                          names[k], peak, colors[k], escape(tip), d, escape(tip)))
        lower = upper
    out.append('</g>')
    # budgets and the device's total
    for scope, b in pan.budgets:
        if b <= ceiling:
            y = Y(b)
            out.append('<g class="budget" data-scope="%s" data-bytes="%d"><line x1="%d" x2="%d" y1="%.1f" y2="%.1f" '
                       'stroke="#444" stroke-dasharray="6 3"/><text x="%d" y="%.1f" text-anchor="end">budget %s %s'
                       '</text></g>' % (escape(scope), b, ML, ML + CW, y, y, ML + CW - 4, y - 3, escape(scope), human(b)))
    if pan.total_bytes and pan.total_bytes <= ceiling:
        y = Y(pan.total_bytes)
        out.append('<g class="device-total" data-bytes="%d"><line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#222"/>'
                   '<text x="%d" y="%.1f">device memory %s</text></g>'
                   % (pan.total_bytes, ML, ML + CW, y, y, ML + 4, y - 3, human(pan.total_bytes)))
    out.append('<rect class="frame" x="%d" y="%d" width="%d" height="%d"/>' % (ML, MT, CW, CH))
    # the allocation ticks: the largest allocations, when they were made
    out.append('<g class="alloc-ticks">')
    purpose_color = dict((i, c) for _, i, c in LAYERS)
    for size, t, purpose, label, caller, site in pan.ticks:
        tip = "allocation of %s (%d B) at %s, %s%s, %s" % (
            human(size), size, seconds(t), tf.PURPOSES[purpose],
            " \u201c%s\u201d" % p.stream.label(label) if label else "",
            "at %s (caller %s)" % (site, p.stream.caller(caller, t)) if site
            else "from %s" % p.stream.caller(caller, t))
        xx = X(t)
        out.append('<line class="tick" data-size="%d" data-time-ns="%d" x1="%.1f" x2="%.1f" y1="%d" y2="%d" '
                   'stroke="%s" stroke-width="2" data-tip="%s"><title>%s</title></line>'
                   % (size, t, xx, xx, MT + CH + 6, MT + CH + 14, purpose_color[purpose], escape(tip), escape(tip)))
    out.append('</g>')
    # the peak
    if pan.peak_bytes:
        xx, yy = X(pan.peak_time), Y(pan.peak_bytes)
        tip = "peak live VRAM %s (%d B) at %s%s" % (human(pan.peak_bytes), pan.peak_bytes, seconds(pan.peak_time),
                                                   " (coalesced interval)" if pan.peak_coalesced else "")
        anchor = "end" if xx > ML + CW * 0.7 else "start"
        out.append('<g class="peak" data-peak-bytes="%d" data-time-ns="%d" data-tip="%s"><title>%s</title>'
                   '<line x1="%.1f" x2="%.1f" y1="%d" y2="%.1f" stroke="#000" stroke-dasharray="2 2"/>'
                   '<circle cx="%.1f" cy="%.1f" r="4" fill="#000"/><text x="%.1f" y="%.1f" text-anchor="%s">'
                   'peak %s</text></g>'
                   % (pan.peak_bytes, pan.peak_time, escape(tip), escape(tip), xx, xx, MT + CH, yy, xx, yy,
                      xx + (-7 if anchor == "end" else 7), max(yy - 6, MT + 10), anchor, human(pan.peak_bytes)))
    # markers
    out.append('<g class="markers">')
    for m in pan.markers:
        kind = m["type"] if m["type"] != "refusal" else ("refused" if m["refused"] else "let_through")
        color, _ = MARKER_STYLE[kind]
        xx = X(m["time"])
        if m["type"] in ("oom", "budget_oom"):
            shape = "M%.1f %d L%.1f %d L%.1f %d Z" % (xx - 6, MT - 12, xx + 6, MT - 12, xx, MT - 2)
        else:
            shape = "M%.1f %d L%.1f %d L%.1f %d L%.1f %d Z" % (xx, MT - 13, xx + 5, MT - 7, xx, MT - 1, xx - 5, MT - 7)
        out.append('<g class="marker %s" data-kind="%s" data-time-ns="%d" data-size="%d" data-purpose="%s" '
                   'data-caller="%s" data-site="%s" data-tip="%s"><title>%s</title><line x1="%.1f" x2="%.1f" y1="%d" '
                   'y2="%d" stroke="%s" stroke-dasharray="4 3"/><path d="%s" fill="%s"/></g>'
                   % (kind.replace("_", "-"), kind, m["time"], m["size"], m["purpose"], escape(m["caller"]),
                      escape(m["site"] or ""), escape(m["text"]), escape(m["text"]), xx, xx, MT, MT + CH, color,
                      shape, color))
    out.append('</g>')
    if not standalone:
        data = {"x0": ML, "w": CW, "t1": duration, "width": PANEL_W, "names": [names[k] for k in range(len(names))],
                "t": [s[0] for s in samples], "v": rows}
        out.append('<line class="cursor" x1="0" x2="0" y1="%d" y2="%d" stroke="#000" stroke-width="0.6" '
                   'style="display:none"/>' % (MT, MT + CH))
        out.append('<rect class="plot-area" x="%d" y="%d" width="%d" height="%d" fill="transparent"/>' % (ML, MT, CW, CH))
        out.append('<script type="application/json" class="vg-data">%s</script>'
                   % json.dumps(data, separators=(",", ":")).replace("</", "<\\/"))
    return "\n".join(out)


DEFS = ('<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="%s"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8f8784" stroke-width="2"/>'
        '</pattern></defs>' % POOL_COLOR)


def short_exe(exe):
    return exe.rsplit("/", 1)[-1] if exe else "?"


def started(p):
    if not p.start_unix_ns:
        return "start unknown"
    t = datetime.datetime.fromtimestamp(p.start_unix_ns / 1e9, tz=datetime.timezone.utc)
    return "started %s UTC" % t.strftime("%Y-%m-%d %H:%M:%S")


def meta_line(p):
    end = p.end or {}
    parts = [started(p), "traced %s" % seconds(p.duration), "%d events" % p.events]
    if end.get("folded"):
        parts.append("%d folded into intervals" % end["folded"])
    if end.get("lost"):
        parts.append("%d lost" % end["lost"])
    return ", ".join(parts)


def chart_attrs(p, pan):
    return ('class="vg-chart" data-pid="%d" data-device="%d" data-peak-bytes="%d" data-peak-time-ns="%d" '
            'data-markers="%d"' % (p.pid, pan.device, pan.peak_bytes, pan.peak_time, len(pan.markers)))


def largest_rows(p, pan):
    return [(human(a["size"]), a["size"], a["purpose"], a["kind"], a["label"] or "", a.get("site") or a["caller"],
             seconds(a["time"])) for a in pan.largest]


def write_html(out, processes, warnings):
    w = out.write
    w('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>vramguard timeline</title>\n')
    w('<style>%s</style></head>\n<body>\n<h1>vramguard timeline</h1>\n' % CSS)
    w('<p class="sources">Live VRAM by purpose over time, per process and device: weights, kv_cache, '
      'intermediate and unknown stacked, the device pools\u2019 cache above them (hatched). Markers: '
      '<span style="color:#d62728">\u25bc out of memory</span>, <span style="color:#ff7f0e">\u25bc over '
      'budget</span>, <span style="color:#8c2d9c">\u25c6 violation refused</span>, <span style="color:#c9a400">'
      '\u25c6 violation let through</span>. Ticks under a chart: its largest allocations. Hover for details.</p>\n')
    for text in warnings:
        w('<p class="notes">%s</p>\n' % escape(text))
    for p in processes:
        w('<section class="process" data-pid="%d">\n<h2>pid %d \u00b7 <code>%s</code></h2>\n<p class="meta">%s</p>\n'
          % (p.pid, p.pid, escape(p.exe), escape(meta_line(p))))
        for n in p.notes:
            w('<p class="notes">%s</p>\n' % escape(n))
        if not p.panels:
            w('<p class="meta">No VRAM allocation on any device in this trace.</p>\n')
        for pan in p.panels:
            w('<div class="panel" data-device="%d">\n' % pan.device)
            w('<svg xmlns="http://www.w3.org/2000/svg" %s width="%d" height="%d" viewBox="0 0 %d %d" role="img">%s\n%s\n</svg>\n'
              % (chart_attrs(p, pan), PANEL_W, PANEL_H, PANEL_W, PANEL_H, DEFS, chart(p, pan, False)))
            w('<div class="side">\n<h3>Largest allocations alive at the peak (%s, %d B, at %s)</h3>\n'
              % (human(pan.peak_bytes), pan.peak_bytes, seconds(pan.peak_time)))
            if pan.largest:
                w('<table class="largest-at-peak"><tr><th>size</th><th>purpose</th><th>kind</th><th>label</th>'
                  '<th>asked for at (else the caller)</th><th>since</th></tr>\n')
                for a, row in zip(pan.largest, largest_rows(p, pan)):
                    w('<tr data-size="%d" data-purpose="%s"><td class="num">%s</td><td>%s</td><td>%s</td><td>%s</td>'
                      '<td><code>%s</code></td><td class="num">%s</td></tr>\n'
                      % (a["size"], escape(a["purpose"]), escape(row[0]), escape(row[2]), escape(row[3]),
                         escape(row[4]), escape(row[5]), escape(row[6])))
                w('</table>\n')
            elif pan.peak_coalesced:
                w('<p class="meta">The peak was reached while the trace was coalesced: single allocations are '
                  'not known then.</p>\n')
            if pan.markers:
                w('<h3>Markers</h3>\n<table class="markers"><tr><th>time</th><th>what</th></tr>\n')
                for m in pan.markers[:200]:
                    w('<tr data-kind="%s"><td class="num">%s</td><td>%s</td></tr>\n'
                      % (escape(m["type"]), escape(seconds(m["time"])), escape(m["text"])))
                if len(pan.markers) > 200:
                    w('<tr><td></td><td>and %d more</td></tr>\n' % (len(pan.markers) - 200))
                w('</table>\n')
            w('</div>\n</div>\n')
        w('</section>\n')
    w('<div id="vg-tip"></div>\n<script>%s</script>\n</body></html>\n' % SCRIPT)


def write_svg(out, processes, warnings):
    """One SVG: the panels one below the other, the largest allocations at
    each peak as text beside it; hover details as <title> elements."""
    blocks, y = [], 10
    width = PANEL_W + SIDE_W
    head = ['<text class="title" x="%d" y="%d">vramguard timeline: live VRAM by purpose over time</text>' % (ML, y + 14)]
    y += 26
    for text in warnings:
        head.append('<text x="%d" y="%d" fill="#8a4b00">%s</text>' % (ML, y + 12, escape(text)))
        y += 16
    for p in processes:
        blocks.append('<g class="process" data-pid="%d" transform="translate(0,%d)"><text x="%d" y="14">pid %d \u00b7 %s'
                      '</text><text x="%d" y="30" fill="#555">%s</text>'
                      % (p.pid, y, ML, p.pid, escape(p.exe), ML, escape(meta_line(p))))
        dy = 38
        for n in p.notes:
            blocks.append('<text x="%d" y="%d" fill="#8a4b00">%s</text>' % (ML, dy + 12, escape(n)))
            dy += 16
        blocks.append('</g>')
        y += dy
        for pan in p.panels:
            blocks.append('<g %s transform="translate(0,%d)">%s' % (chart_attrs(p, pan), y, chart(p, pan, True)))
            sx, sy = PANEL_W + 8, MT + 4
            blocks.append('<g class="largest-at-peak"><text class="title" x="%d" y="%d">Largest alive at the peak '
                          '(%s)</text>' % (sx, sy, human(pan.peak_bytes)))
            for a, row in zip(pan.largest, largest_rows(p, pan)):
                sy += 16
                blocks.append('<text x="%d" y="%d" data-size="%d" data-purpose="%s">%s \u00b7 %s%s \u00b7 %s<title>%s'
                              '</title></text>' % (sx, sy, a["size"], escape(a["purpose"]), escape(row[0]),
                                                   escape(row[2]), " \u201c%s\u201d" % escape(row[4]) if row[4] else "",
                                                   escape(row[5]), escape("%s, %s, since %s" % (row[0], row[3], row[6]))))
            if not pan.largest and pan.peak_coalesced:
                blocks.append('<text x="%d" y="%d">(peak while coalesced: not known)</text>' % (sx, sy + 16))
            blocks.append('</g></g>')
            y += PANEL_H + 8
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
              'viewBox="0 0 %d %d">\n<style>%s</style>\n%s\n<rect width="100%%" height="100%%" fill="#fff"/>\n%s\n%s\n</svg>\n'
              % (width, y + 10, width, y + 10, CSS_SVG, DEFS, "\n".join(head), "\n".join(blocks)))


CSS_SVG = """
text { font: 11px sans-serif; fill: #333; } .title { font-size: 13px; font-weight: bold; }
.axis line, .grid line { stroke: #ddd; } .axis text { fill: #555; } .frame { fill: none; stroke: #bbb; }
"""

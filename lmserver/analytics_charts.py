"""Charts drawn on the server as SVG: readable without JavaScript, easy to test, themed by CSS variables.

:func:`time_chart` draws one series over a session's time (a line with its area, or bars), with
time-labelled x ticks (``m:ss`` under ten minutes, ``N min`` under an hour, ``h:mm`` beyond), "nice"
y ticks (1, 2, 2.5, 5 × 10ⁿ steps, never a repeated or fractional count), a ``<title>`` tooltip per point
(the browser shows it on hover, a tap on a tablet), and markers (vertical lines with their own
tooltip) for pins, plugins' activities and prompter findings. Colours come from the
page's CSS classes (``.chart .line`` etc. in ``events.css``), so dark mode needs nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from markupsafe import Markup, escape

#: x tick steps, seconds: the smallest that gives at most 8 intervals is used
TIME_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
#: at most this many points are drawn; longer series are summed/averaged into buckets
MAX_POINTS = 360


@dataclass(frozen=True)
class Point:
    t: float          # seconds since the session started
    value: float
    tip: str          # the tooltip text
    width: float = 60.0  # seconds the point covers (a minute by default)


@dataclass(frozen=True)
class Marker:
    t: float          # seconds since the session started
    kind: str         # "pin", "finding", ... (a CSS class suffix)
    icon: str
    text: str


def nice_axis(peak: float, *, integer: bool = True, ticks: int = 4) -> tuple[float, float]:
    """(top, step) of a y axis that shows ``peak``: step is 1, 2, 2.5 or 5 × 10ⁿ (whole for counts), top a multiple."""
    if peak <= 0:
        return (float(ticks), 1.0) if integer else (1.0, 0.25)
    raw = peak / ticks
    mag = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer and mag < 10 else (1, 2, 2.5, 5, 10)  # 2.5 only where it stays whole
    step = next(m * mag for m in steps if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    top = step * math.ceil(peak / step)
    return float(top), float(step)


def time_label(seconds: float, span: float) -> str:
    s = int(round(seconds))
    if span < 600:
        return f"{s // 60}:{s % 60:02d}"
    if span < 3600:
        return f"{s // 60} min"
    return f"{s // 3600}:{(s % 3600) // 60:02d}"


def time_ticks(span: float) -> list[tuple[float, str]]:
    """Ticks from 0 to ``span`` seconds (at least two: the start and the next step past it)."""
    span = max(span, 1.0)
    step = next((s for s in TIME_STEPS if span / s <= 8), TIME_STEPS[-1] * math.ceil(span / (TIME_STEPS[-1] * 8)))
    out = []
    t = 0.0
    while t <= span + 1e-6:
        out.append((t, time_label(t, span)))
        t += step
    if len(out) < 2:
        out.append((float(step), time_label(step, span)))
    return out


def bucket(points: Sequence[Point], *, average: bool) -> list[Point]:
    """At most :data:`MAX_POINTS` points: consecutive ones merged (summed, or averaged for levels)."""
    if len(points) <= MAX_POINTS:
        return list(points)
    size = math.ceil(len(points) / MAX_POINTS)
    out = []
    for i in range(0, len(points), size):
        group = points[i:i + size]
        total = sum(p.value for p in group)
        value = total / len(group) if average else total
        out.append(Point(group[0].t, value, f"{group[0].tip} … ({len(group)} min)", sum(p.width for p in group)))
    return out


def time_chart(points: Sequence[Point], span: float, *, label: str, kind: str = "line", integer: bool = True,
               fmt: Callable[[float], str] = lambda v: f"{v:g}", markers: Sequence[Marker] = (), chart_id: str = "",
               width: int = 720, height: int = 200) -> Markup:
    """An SVG chart of ``points`` over ``span`` seconds (see the module doc); ``fmt`` formats y tick labels."""
    pad_l, pad_r, pad_t, pad_b = 56, 16, 14, 30
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b
    end = max([span] + [p.t + p.width for p in points] + [1.0])
    pts = bucket(points, average=(kind == "line"))
    top, step = nice_axis(max((p.value for p in pts), default=0), integer=integer)

    def x(t: float) -> float:
        return round(pad_l + min(max(t, 0.0), end) / end * inner_w, 1)

    def y(v: float) -> float:
        return round(pad_t + inner_h - (v / top) * inner_h, 1)

    base = y(0)
    parts = [f'<svg class="time-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"'
             + (f' id="{escape(chart_id)}"' if chart_id else "") + ' preserveAspectRatio="xMidYMid meet">',
             f"<title>{escape(label)}</title>"]
    v = 0.0
    while v <= top + 1e-9:
        parts.append(f'<line class="grid-line" x1="{pad_l}" x2="{width - pad_r}" y1="{y(v)}" y2="{y(v)}"/>'
                     f'<text class="axis-label" x="{pad_l - 6}" y="{y(v) + 4}" text-anchor="end">{escape(fmt(v))}</text>')
        v += step
    ticks = [(t, lab) for t, lab in time_ticks(end) if t <= end + 1e-6]
    for i, (t, lab) in enumerate(ticks):
        anchor = "start" if i == 0 else ("end" if x(t) > width - pad_r - 24 else "middle")
        parts.append(f'<line class="tick" x1="{x(t)}" x2="{x(t)}" y1="{base}" y2="{base + 4}"/>'
                     f'<text class="axis-label" x="{x(t)}" y="{base + 18}" text-anchor="{anchor}">{escape(lab)}</text>')
    if kind == "bar":
        for p in pts:
            x0, x1 = x(p.t), x(p.t + p.width)
            w = max(round(x1 - x0 - 1, 1), 1.0)
            if p.value:
                parts.append(f'<rect class="bar" x="{x0}" y="{y(p.value)}" width="{w}" height="{round(base - y(p.value), 1)}"/>')
    elif pts:
        coords = [(x(p.t + p.width / 2), y(p.value)) for p in pts]
        line = " ".join(f"{cx},{cy}" for cx, cy in coords)
        parts.append(f'<polygon class="area" points="{coords[0][0]},{base} {line} {coords[-1][0]},{base}"/>')
        parts.append(f'<polyline class="line" points="{line}"/>')
    for p in pts:  # hover targets last, above everything: one column per point with its tooltip
        x0, x1 = x(p.t), x(p.t + p.width)
        parts.append(f'<rect class="hit" x="{x0}" y="{pad_t}" width="{max(round(x1 - x0, 1), 1.0)}" height="{inner_h}">'
                     f'<title>{escape(p.tip)}</title></rect>')
    for m in markers[:200]:  # after the hover targets: a marker's own tooltip wins
        mx = x(m.t)
        parts.append(f'<g class="marker marker-{escape(m.kind)}"><title>{escape(time_label(m.t, end))} · {escape(m.text)}</title>'
                     f'<line x1="{mx}" x2="{mx}" y1="{pad_t}" y2="{base}"/>'
                     f'<text x="{mx}" y="{pad_t - 2}" text-anchor="middle">{escape(m.icon)}</text></g>')
    if not pts:
        parts.append(f'<text class="axis-label" x="{pad_l + inner_w / 2}" y="{pad_t + inner_h / 2}" text-anchor="middle">No data yet</text>')
    parts.append("</svg>")
    return Markup("".join(parts))

"""Chart geometry for ``report.html``: Python computes every coordinate, label and tooltip; the
template (``templates/report/charts.svg.j2``) only loops over the shapes and writes SVG.

Hand-written SVG rather than a plotting library: four small chart kinds (bars, stacked usage
bars, rectangles over ops, a scatter), inline in the page with the page's CSS, a ``<title>``
tooltip on every shape with the exact figures, stable element ids for tests, byte-identical output
for identical input, and no dependency to install in a CI image. Coordinates are in a fixed
``viewBox`` that the page scales to its width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WIDTH = 760.0
LEFT, RIGHT, TOP = 70.0, 16.0, 12.0


def _r(v: float) -> float:
    return round(v, 1)


def _nice_step(raw: float) -> float:
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))


def nice_ticks(vmax: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5, 5 x 10^k) up to at least ``vmax``."""
    if vmax <= 0:
        return [0.0, 1.0]
    step = _nice_step(vmax / count)
    n = math.ceil(vmax / step - 1e-9)
    return [i * step for i in range(n + 1)]


def nice_range(lo: float, hi: float, unit: float = 1.0, count: int = 4) -> list[float]:
    """Round ticks covering ``lo..hi``, stepping by round multiples of ``unit`` (1024 for an
    axis in KiB, 0.01 for one in percent)."""
    lo_u, hi_u = lo / unit, hi / unit
    if hi_u - lo_u <= 0:
        lo_u, hi_u = lo_u - 1, hi_u + 1
    step = _nice_step((hi_u - lo_u) / count)
    first, last = math.floor(lo_u / step + 1e-9), math.ceil(hi_u / step - 1e-9)
    return [round(k * step, 9) * unit for k in range(first, last + 1)]


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    cls: str
    tip: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"
    rotate: bool = False
    cls: str = ""


@dataclass(frozen=True)
class HLine:
    """A horizontal reference line across the plot (e.g. the arena size)."""

    y: float
    x0: float
    x1: float
    label: str
    cls: str


@dataclass(frozen=True)
class VLine:
    """A vertical marker (e.g. a budget limit) from ``y0`` to ``y1``."""

    x: float
    y0: float
    y1: float
    label: str
    cls: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    cls: str
    tip: str
    label_dy: float = -8.0  # the label above the point, or below it near the top edge


@dataclass(frozen=True)
class Chart:
    """One SVG: shapes in viewBox units; ``kind`` names the chart for ids and CSS."""

    id: str
    kind: str
    height: float
    desc: str
    rects: tuple[Rect, ...] = ()
    labels: tuple[Label, ...] = ()
    yticks: tuple[Tick, ...] = ()
    xticks: tuple[Tick, ...] = ()
    hlines: tuple[HLine, ...] = ()
    vlines: tuple[VLine, ...] = ()
    points: tuple[Point, ...] = ()
    path: str = ""
    plot: tuple[float, float, float, float] = (LEFT, TOP, WIDTH - RIGHT, TOP)  # x0, y0, x1, y1
    legend: tuple[tuple[str, str], ...] = field(default=())  # (css class, text)
    width: float = WIDTH


def _x_labels(names: Sequence[str], centers: Sequence[float], y: float) -> list[Label]:
    """Layer names under the bars when they fit (rotated), else every k-th index."""
    if len(names) <= 24:
        return [Label(c, y, f"{i} {n[:14]}", "end", True) for i, (n, c) in
                enumerate(zip(names, centers, strict=True))]
    k = math.ceil(len(names) / 24)
    return [Label(c, y + 12, str(i)) for i, c in enumerate(centers) if i % k == 0]


@dataclass(frozen=True)
class BarSpec:
    """A vertical bar chart: one bar per item, optionally a second stacked part."""

    id: str
    desc: str
    names: Sequence[str]
    values: Sequence[float]
    tips: Sequence[str]
    fmt: Callable[[float], str]
    cls: str = "bar"
    stacked: Sequence[float] = ()  # a second part on top of each bar (e.g. scratch)
    stacked_cls: str = "bar2"
    stacked_tips: Sequence[str] = ()
    hline: tuple[float, str] | None = None  # (value, label)
    legend: tuple[tuple[str, str], ...] = ()


def bar_chart(spec: BarSpec, plot_height: float = 180.0) -> Chart:
    n = len(spec.values)
    rotated = n <= 24
    bottom = TOP + plot_height
    height = bottom + (80.0 if rotated else 30.0)
    tops = [v + (spec.stacked[i] if spec.stacked else 0) for i, v in enumerate(spec.values)]
    vmax = max([*tops, spec.hline[0] if spec.hline else 0.0, 0.0])
    ticks = nice_ticks(vmax)
    scale = plot_height / ticks[-1]
    x0, x1 = LEFT, WIDTH - RIGHT
    slot = (x1 - x0) / max(n, 1)
    bar_w = max(slot * 0.7, 1.0)
    rects, centers = [], []
    for i, v in enumerate(spec.values):
        cx = x0 + slot * (i + 0.5)
        centers.append(_r(cx))
        h = v * scale
        rects.append(Rect(_r(cx - bar_w / 2), _r(bottom - h), _r(bar_w), _r(h), spec.cls,
                          spec.tips[i]))
        if spec.stacked:
            h2 = spec.stacked[i] * scale
            rects.append(Rect(_r(cx - bar_w / 2), _r(bottom - h - h2), _r(bar_w), _r(h2),
                              spec.stacked_cls, spec.stacked_tips[i]))
    yticks = tuple(Tick(_r(bottom - t * scale), spec.fmt(t)) for t in ticks)
    hlines: tuple[HLine, ...] = ()
    if spec.hline is not None:
        hlines = (HLine(_r(bottom - spec.hline[0] * scale), x0, x1, spec.hline[1], "ref"),)
    return Chart(spec.id, "bars", _r(height), spec.desc, rects=tuple(rects),
                 labels=tuple(_x_labels(spec.names, centers, bottom + 14)), yticks=yticks,
                 hlines=hlines, plot=(x0, TOP, x1, bottom), legend=spec.legend)


@dataclass(frozen=True)
class Segment:
    name: str
    value: float
    cls: str


@dataclass(frozen=True)
class UsageRow:
    """One resource against its capacity: stacked segments and limit markers (name, value)."""

    title: str
    capacity: float
    segments: Sequence[Segment]
    markers: Sequence[tuple[str, float]] = ()
    note: str = ""  # written just after the used part, e.g. "25,292 B used (2.4%)"


def usage_chart(chart_id: str, desc: str, rows: Sequence[UsageRow],
                fmt: Callable[[float], str]) -> Chart:
    """Horizontal bars, one per resource, each scaled to its own capacity (the board's)."""
    x0, x1 = 110.0, WIDTH - RIGHT
    row_h, bar_h, top = 78.0, 26.0, TOP + 10
    rects, labels, xticks, vlines = [], [], [], []
    for r, row in enumerate(rows):
        y = top + r * row_h
        scale = (x1 - x0) / row.capacity if row.capacity else 0.0
        labels.append(Label(x0 - 8, _r(y + bar_h / 2 + 4), row.title, "end", cls="rowtitle"))
        rects.append(Rect(x0, _r(y), _r(x1 - x0), bar_h, "capacity",
                          f"{row.title}: {fmt(row.capacity)} on the board"))
        at = 0.0
        for seg in row.segments:
            w = max(seg.value, 0.0) * scale
            rects.append(Rect(_r(x0 + at), _r(y), _r(w), bar_h, seg.cls,
                              f"{row.title}, {seg.name}: {fmt(seg.value)}"))
            at += w
        if row.note:
            inside = at > 0.75 * (x1 - x0)
            labels.append(Label(_r(x0 + at + (-8 if inside else 8)), _r(y + bar_h / 2 + 4),
                                row.note, "end" if inside else "start",
                                cls="usedlabel inside" if inside else "usedlabel"))
        for k in range(5):
            xticks.append(Tick(_r(x0 + (x1 - x0) * k / 4), ""))
            labels.append(Label(_r(x0 + (x1 - x0) * k / 4), _r(y + bar_h + 14),
                                fmt(row.capacity * k / 4),
                                "start" if k == 0 else "end" if k == 4 else "middle",
                                cls="tick"))
        for name, value in row.markers:
            x = _r(x0 + min(value, row.capacity) * scale)
            vlines.append(VLine(x, _r(y - 4), _r(y + bar_h + 4), f"{name} {fmt(value)}",
                                "limit"))
    return Chart(chart_id, "usage", _r(top + len(rows) * row_h - 8), desc, rects=tuple(rects),
                 labels=tuple(labels), xticks=tuple(xticks), vlines=tuple(vlines),
                 plot=(x0, top, x1, top + len(rows) * row_h))


@dataclass(frozen=True)
class Span:
    """A rectangle over ops ``first..last`` (inclusive) and bytes ``offset..offset+size``."""

    first: int
    last: int
    offset: float
    size: float
    tip: str


def placement_chart(chart_id: str, desc: str, n_ops: int, spans: Sequence[Span],
                    arena: float, fmt: Callable[[float], str],
                    plot_height: float = 200.0) -> Chart:
    """The memory plan: each buffer a rectangle, ops along x, arena offset up the y axis."""
    bottom = TOP + plot_height
    x0, x1 = LEFT, WIDTH - RIGHT
    top_value = max([arena, *(s.offset + s.size for s in spans), 1.0])
    ticks = nice_range(0.0, top_value, 1024.0 if top_value >= 1024 else 1.0)  # round KiB
    scale = plot_height / ticks[-1]
    slot = (x1 - x0) / max(n_ops, 1)
    rects = [Rect(_r(x0 + s.first * slot + 1), _r(bottom - (s.offset + s.size) * scale),
                  _r(max((s.last - s.first + 1) * slot - 2, 1.0)), _r(max(s.size * scale, 1.0)),
                  f"buf buf{i % 6}", s.tip) for i, s in enumerate(spans)]
    k = math.ceil(n_ops / 24) if n_ops > 24 else 1
    labels = [Label(_r(x0 + slot * (i + 0.5)), bottom + 14, str(i))
              for i in range(n_ops) if i % k == 0]
    return Chart(chart_id, "placement", _r(bottom + 40), desc, rects=tuple(rects),
                 labels=(*labels, Label(_r((x0 + x1) / 2), bottom + 32, "op (layer #)")),
                 yticks=tuple(Tick(_r(bottom - t * scale), fmt(t)) for t in ticks),
                 hlines=(HLine(_r(bottom - arena * scale), x0, x1, f"arena {fmt(arena)}",
                               "ref"),),
                 plot=(x0, TOP, x1, bottom))


@dataclass(frozen=True)
class XY:
    x: float
    y: float
    label: str
    tip: str
    highlight: bool = False


def scatter_chart(chart_id: str, desc: str, points: Sequence[XY],
                  axes: tuple[Callable[[float], str], Callable[[float], str]],
                  units: tuple[float, float], x_title: str, y_cap: float | None = None,
                  plot_height: float = 220.0) -> Chart:
    """Points with labels, joined in order of x (the size/accuracy trade-off). ``axes`` format
    the x and y ticks, which step by round multiples of ``units``; ``y_cap`` bounds the y axis
    (1.0 for an accuracy)."""
    bottom = TOP + plot_height
    x0, x1 = LEFT, WIDTH - RIGHT - 60
    xs, ys = [p.x for p in points], [p.y for p in points]
    xt = nice_range(min(xs), max(xs), units[0])
    yt = nice_range(min(ys), max(ys), units[1])
    if y_cap is not None:
        yt = [t for t in yt if t <= y_cap + 1e-12] or [y_cap]
        if yt[-1] < max(ys):
            yt.append(y_cap)
    xlo, xhi, ylo, yhi = xt[0], xt[-1], yt[0], yt[-1]
    if yhi == ylo:
        ylo -= units[1]

    def sx(v: float) -> float:
        return _r(x0 + (v - xlo) / ((xhi - xlo) or 1.0) * (x1 - x0))

    def sy(v: float) -> float:
        return _r(bottom - (v - ylo) / ((yhi - ylo) or 1.0) * plot_height)

    pts = tuple(Point(sx(p.x), sy(p.y), p.label, "pt hi" if p.highlight else "pt", p.tip,
                      18.0 if sy(p.y) < TOP + 16 else -8.0) for p in points)
    ordered = sorted(pts, key=lambda p: p.x)
    path = "M" + " L".join(f"{p.x},{p.y}" for p in ordered)
    return Chart(chart_id, "scatter", _r(bottom + 44), desc, points=pts, path=path,
                 yticks=tuple(Tick(sy(t), axes[1](t)) for t in yt),
                 xticks=tuple(Tick(sx(t), axes[0](t)) for t in xt),
                 labels=(Label(_r((x0 + x1) / 2), _r(bottom + 38), x_title),),
                 plot=(x0, TOP, x1, bottom))

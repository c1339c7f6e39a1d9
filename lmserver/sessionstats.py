"""Figures of sessions (one go-live each), computed from the database and the activity log.

- products featured: distinct products pinned during the session (``product.pinned`` in the log);
- figures: what plugins add through the ``session_figures`` hook (``[{name, label, value, plugin}]``,
  sorted by their order; also as ``figure_values`` ``{name: value}``): the core knows no plugin's data;
- peak, average and unique viewers, watch time, followers, gifts, opens: :func:`lmserver.figures.audience_figures`
  (the analytics rollups; the same definition as the console's metrics and the LIVE Board);
- GMV, orders, items sold, buyers, first-time buyers, comments: :func:`lmserver.figures.session_figures`
  (the one definition, shared with the console; practice orders never count).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from .appkeys import DB, PM
from .analytics_charts import nice_axis, time_ticks
from .figures import audience_figures, session_figures
from .plugins.types import Figure
from .templating import as_dict

log = logging.getLogger(__name__)


async def plugin_figures(app: web.Application, session: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugins' ``session_figures`` for one session, as ``[{name, label, value, plugin}]`` by order.

    A plugin that raises is skipped (display policy); an answer that is not a list of :class:`Figure`
    is logged and left out.
    """
    out: list[tuple[int, dict[str, Any]]] = []
    for plugin, answer in await app[PM].call_named("session_figures", app=app, session=session):
        for fig in answer if isinstance(answer, (list, tuple)) else [answer]:
            if not isinstance(fig, Figure) or isinstance(fig.value, bool) or not isinstance(fig.value, (int, float, str)):
                log.warning("plugin %s: session_figures must answer a list of Figure(name, label, value), got %r", plugin, fig)
                continue
            out.append((fig.order, {"name": fig.name, "label": fig.label, "value": fig.value, "plugin": plugin}))
    return [f for _, f in sorted(out, key=lambda o: o[0])]


async def session_stats(source: Any, row: Any) -> dict[str, Any]:
    """A session's figures; ``source`` is the app (plugins' figures included) or, for old callers, the database."""
    app = source if isinstance(source, web.Application) else None
    db = app[DB] if app is not None else source
    sid = row["id"]
    d = as_dict(row)
    d["practice"] = bool(d["practice"])
    end = row["ended_at"]
    d["duration"] = (end - row["started_at"]) if end is not None else None
    d["products_featured"] = await db.fetchval(
        "SELECT COUNT(DISTINCT json_extract(data, '$.product.id')) FROM activity WHERE session_id = ? AND name = 'product.pinned'", (sid,))
    d["samples"] = await db.fetchval("SELECT COUNT(*) FROM viewer_samples WHERE session_id = ?", (sid,))
    d.update(await session_figures(db, sid))
    d.update(await audience_figures(db, row))  # peak/avg/unique viewers, watch time, followers, gifts, opens
    d["analytics_url"] = f"/sessions/{sid}"
    d["console_url"] = f"/events/{row['event_id']}/console?session={sid}" if row["event_id"] is not None else None
    d["figures"] = await plugin_figures(app, as_dict(row)) if app is not None else []
    d["figure_values"] = {f["name"]: f["value"] for f in d["figures"]}
    return d


async def event_sessions(source: Any, event_id: int) -> list[dict[str, Any]]:
    db = source[DB] if isinstance(source, web.Application) else source
    rows = await db.fetchall("SELECT * FROM sessions WHERE event_id = ? ORDER BY started_at", (event_id,))
    return [await session_stats(source, r) for r in rows]


async def unassigned_sessions(source: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Sessions that belong to no event (practice without an event, or a deleted event's)."""
    db = source[DB] if isinstance(source, web.Application) else source
    rows = await db.fetchall("SELECT * FROM sessions WHERE event_id IS NULL ORDER BY started_at DESC LIMIT ?", (limit,))
    return [await session_stats(source, r) for r in rows]


def viewers_chart(samples: list[tuple[float, int]], started_at: float, ended_at: float | None, *,
                  width: int = 720, height: int = 220) -> dict[str, Any]:
    """An SVG line chart of viewers over time, as geometry for the template (no JavaScript needed)."""
    pad_l, pad_r, pad_t, pad_b = 44, 24, 12, 28
    end = ended_at if ended_at is not None else (samples[-1][0] if samples else started_at)
    span = max(end - started_at, 1.0)
    peak = max((v for _, v in samples), default=0)
    top, step = nice_axis(peak)  # whole, evenly spaced ticks (never 0/2/5)
    inner_w, inner_h = width - pad_l - pad_r, height - pad_t - pad_b

    def x(t: float) -> float:
        return round(pad_l + (min(max(t - started_at, 0), span) / span) * inner_w, 1)

    def y(v: float) -> float:
        return round(pad_t + inner_h - (v / top) * inner_h, 1)

    points = [(x(t), y(v)) for t, v in samples]
    line = " ".join(f"{px},{py}" for px, py in points)
    area = f"{points[0][0]},{y(0)} {line} {points[-1][0]},{y(0)}" if points else ""
    y_ticks = [{"y": y(i * step), "label": f"{i * step:g}"} for i in range(int(round(top / step)) + 1)]
    x_ticks = [{"x": x(started_at + t), "label": label, "anchor": "middle"} for t, label in time_ticks(span) if t <= span + 0.5]
    if x_ticks:
        x_ticks[0]["anchor"] = "start"
    if len(x_ticks) > 1 and x_ticks[-1]["x"] > width - pad_r - 20:
        x_ticks[-1]["anchor"] = "end"
    return {"width": width, "height": height, "line": line, "area": area, "y_ticks": y_ticks, "x_ticks": x_ticks,
            "left": pad_l, "right": width - pad_r, "bottom": y(0), "top": pad_t, "peak": peak, "empty": not samples}


"""The best time to start a new event, and how long to make it, from the studio's own history.

Input: every ended, non-practice session with its start (weekday and hour in the studio's time zone,
:mod:`lmserver.timefmt`), duration, GMV (the LIVE's orders only: :func:`lmserver.figures.counted_order`, never the
orders placed later from its published replay), viewers
reached (distinct viewers who joined, at least the peak) and average viewers (``viewer_samples``), and
when its orders came in.

1. Each session gets a score: ``0.5·GMV/median GMV + 0.25·reached/median reached + 0.25·average/median
   average`` (a measure whose median is 0 falls back to its mean; a measure that is 0 everywhere drops out).
2. Sessions are grouped by hour of the week. A slot's score is the mean of its sessions' scores, shrunk
   toward 1 (the median session) by one imaginary median session, so that one lucky show does not beat
   a time that worked again and again.
3. The best slot wins (ties: more sessions, then the more recent). Its duration is the time by which its
   sessions had taken 90 % of their GMV (the median over its sessions), rounded up to 15 minutes and kept
   within 30 minutes – 13 hours; without orders, the median duration of its sessions.

With fewer than :data:`MIN_SESSIONS` sessions there is no suggestion, only a message saying so. Every
answer says how many sessions it is based on (``sessions``, ``based_on``).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from .figures import counted_order

MIN_SESSIONS = 3
WEIGHTS = {"gmv": 0.5, "reached": 0.25, "avg": 0.25}
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
GMV_SHARE = 0.9


@dataclass
class SessionFacts:
    started_at: float
    duration: float  # seconds
    gmv: int  # cents
    reached: int
    avg_viewers: float
    #: (seconds after the start, amount in cents) of each order
    orders: list[tuple[float, int]] = field(default_factory=list)

    def slot(self, zone: ZoneInfo | dt.tzinfo = dt.timezone.utc) -> tuple[int, int]:
        """(weekday, hour) of the start on the studio's wall clock."""
        t = dt.datetime.fromtimestamp(self.started_at, zone)
        return t.weekday(), t.hour


def _reference(values: list[float]) -> float | None:
    med = statistics.median(values)
    if med > 0:
        return med
    mean = statistics.fmean(values)
    return mean if mean > 0 else None


def _minutes_for_share(orders: list[tuple[float, int]], share: float = GMV_SHARE) -> float | None:
    total = sum(a for _, a in orders)
    if total <= 0:
        return None
    acc = 0
    for offset, amount in sorted(orders):
        acc += amount
        if acc >= share * total:
            return max(offset, 0.0) / 60
    return None


def _round_duration(minutes: float) -> int:
    return int(min(max(math.ceil(minutes / 15) * 15, 30), 13 * 60))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _based_on(n: int) -> str:
    return f"Based on {_plural(n, 'past LIVE session')} (practice excluded)"


def _first_minutes(minutes: float) -> str:
    """"in the first 25 minutes"; never "in the first 0 minutes"."""
    whole = math.ceil(minutes)
    if whole <= 1:
        return "within the first minute"
    return f"in the first {whole} minutes"


def suggest(history: list[SessionFacts], zone: ZoneInfo | dt.tzinfo = dt.timezone.utc) -> dict[str, Any]:
    """The suggestion for ``history`` (pure: no clock, no database); hours of the week on ``zone``'s clock."""
    n = len(history)
    if n < MIN_SESSIONS:
        return {"enough": False, "sessions": n, "based_on": _based_on(n),
                "message": f"Not enough history yet: {_plural(n, 'past LIVE session')} (practice excluded); "
                           f"a suggestion needs at least {MIN_SESSIONS}. Go live a few times and come back."}
    refs = {"gmv": _reference([s.gmv for s in history]), "reached": _reference([s.reached for s in history]),
            "avg": _reference([s.avg_viewers for s in history])}
    used = {k: w for k, w in WEIGHTS.items() if refs[k] is not None}
    total_w = sum(used.values()) or 1.0

    def score(s: SessionFacts) -> float:
        values = {"gmv": s.gmv, "reached": s.reached, "avg": s.avg_viewers}
        return sum(w * values[k] / refs[k] for k, w in used.items()) / total_w  # type: ignore[operator]

    slots: dict[tuple[int, int], list[SessionFacts]] = {}
    for s in history:
        slots.setdefault(s.slot(zone), []).append(s)
    ranked = []
    for slot, sessions in slots.items():
        mean_score = statistics.fmean(score(s) for s in sessions) if used else 1.0
        shrunk = (len(sessions) * mean_score + 1.0) / (len(sessions) + 1)
        ranked.append((shrunk, len(sessions), max(s.started_at for s in sessions), slot, sessions))
    ranked.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
    best_score, count, _, (weekday, hour), sessions = ranked[0]

    shares = [m for m in (_minutes_for_share(s.orders) for s in sessions) if m is not None]
    if shares:
        duration = _round_duration(statistics.median(shares))
        duration_reason = (f"{int(GMV_SHARE * 100)} % of the GMV of these sessions came "
                           f"{_first_minutes(statistics.median(shares))} (median)")
    else:
        duration = _round_duration(statistics.median(s.duration for s in sessions) / 60)
        duration_reason = "these sessions had no orders yet: their median length"

    label = f"{WEEKDAYS[weekday]}s at {hour:02d}:00"
    med_gmv = statistics.median(s.gmv for s in history)
    slot_gmv = statistics.fmean(s.gmv for s in sessions)
    if med_gmv > 0:
        reason = f"{label} averaged {slot_gmv / med_gmv:.1f}× your median GMV over {_plural(count, 'session')}"
    elif refs["reached"] is not None:
        reached = statistics.fmean(s.reached for s in sessions)
        reason = f"{label} reached {reached / refs['reached']:.1f}× your usual number of viewers over {_plural(count, 'session')}"
    else:
        reason = f"{label} is when you went live most ({_plural(count, 'session')}); no sales or viewers to compare yet"
    return {"enough": True, "sessions": n, "based_on": _based_on(n), "weekday": weekday, "weekday_name": WEEKDAYS[weekday], "hour": hour,
            "label": label, "duration_minutes": duration, "reason": reason, "duration_reason": duration_reason,
            "score": round(best_score, 3),
            "message": f"Best time to start: {label}, for about {duration} minutes. {reason}; {duration_reason}. {_based_on(n)}.",
            "slots": [{"weekday": s[3][0], "hour": s[3][1], "sessions": s[1], "score": round(s[0], 3)} for s in ranked[:5]]}


def next_occurrence(weekday: int, hour: int, after: float, zone: ZoneInfo | dt.tzinfo = dt.timezone.utc) -> float:
    """The next UNIX time at ``weekday`` ``hour``:00 on ``zone``'s wall clock strictly after ``after``."""
    base = dt.datetime.fromtimestamp(after, zone).replace(minute=0, second=0, microsecond=0)
    for days in range(0, 9):
        day = (base + dt.timedelta(days=days)).date()
        cand = dt.datetime(day.year, day.month, day.day, hour, tzinfo=zone)
        if cand.weekday() == weekday and cand.timestamp() > after:
            return cand.timestamp()
    return (base + dt.timedelta(days=7)).timestamp()  # unreachable: a weekday recurs within 8 days


async def load_history(db: Any) -> list[SessionFacts]:
    rows = await db.fetchall("SELECT * FROM sessions WHERE practice = 0 AND ended_at IS NOT NULL ORDER BY started_at")
    out = []
    for r in rows:
        sid = r["id"]
        # the LIVE's own sales, as the session's GMV counts them: no practice, no cancelled, no orders placed
        # later from the published replay (days after the show, they would say nothing of when to go live)
        orders = await db.fetchall(f"SELECT created_at, amount_cents FROM orders WHERE session_id = ? AND {counted_order()}", (sid,))
        reached = await db.fetchval(
            "SELECT COUNT(DISTINCT json_extract(data, '$.viewer_id')) FROM activity WHERE session_id = ? AND name = 'viewer.joined'", (sid,))
        samples = await db.fetchone("SELECT AVG(viewers) AS avg, MAX(viewers) AS peak FROM viewer_samples WHERE session_id = ?", (sid,))
        peak = max(int(samples["peak"] or 0), int(r["peak_viewers"] or 0))
        out.append(SessionFacts(r["started_at"], r["ended_at"] - r["started_at"], sum(o["amount_cents"] for o in orders),
                                max(int(reached or 0), peak), float(samples["avg"] or 0.0),
                                [(o["created_at"] - r["started_at"], o["amount_cents"]) for o in orders]))
    return out


async def suggest_for_app(app: Any, now: float | None = None) -> dict[str, Any]:
    from .appkeys import CONFIG, DB
    from .timefmt import fmt, studio_zone

    db = app[DB]
    zone = studio_zone(app)
    result = suggest(await load_history(db), zone)
    if result["enough"]:
        now = time.time() if now is None else now
        after = now + app[CONFIG].events.ready_minutes * 60
        start = next_occurrence(result["weekday"], result["hour"], after, zone)
        for _ in range(8):  # the next free week within two months
            end = start + result["duration_minutes"] * 60
            clash = await db.fetchone("SELECT 1 FROM events WHERE starts_at < ? AND starts_at + duration_minutes * 60 > ?", (end, start))
            if clash is None:
                break
            start += 7 * 86400
        result["next_start"] = start
        result["next_start_iso"] = dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat()
        result["next_start_text"] = fmt(start, "datetime", zone)
    return result

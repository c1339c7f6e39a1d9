"""Suggestions and LIVE diagnosis over windows of a session's figures.

:class:`Live` holds what the plugin saw of the running session (fed from bus events and
``stream.health``); each rule looks at it once a second and says which findings hold *now*
(``{key: finding}``). :class:`Engine` turns that into reports and resolutions: a finding is raised once
(then kept quiet for ``cooldown_seconds``), updated in place at most every ``update_seconds`` while
it holds, and resolved when it stops holding. Pure: no clock, no database; tests script a timeline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .settings import Settings

Finding = dict[str, Any]


def _mins(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


@dataclass
class Live:
    """The running session as the rules see it."""

    session_id: int
    event_id: int | None
    started_at: float
    viewers: int = 0
    #: (time, viewers) samples, one per tick
    viewer_series: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=4000))
    #: times of viewers' comments
    comments: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    #: times of viewers joining
    joins: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    #: (time, product id) of orders
    orders: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=10_000))
    pinned_id: int | None = None
    pinned_since: float | None = None
    unpinned_since: float | None = None
    #: the bag's products in order (id, title, stock, ...)
    bag: list[dict[str, Any]] = field(default_factory=list)
    #: comment id -> (time, nickname, body) of viewers' questions not replied to yet
    questions: dict[int, tuple[float, str, str]] = field(default_factory=dict)
    giveaway_seen: bool = False
    giveaway_available: bool = False
    #: the named actions (``register_actions``) installed plugins offer: a rule offers only these
    actions: frozenset[str] = frozenset()
    #: (time, stream.health data) of the last samples
    health: deque[tuple[float, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=120))
    program_size: tuple[int, int] = (1280, 720)

    def prune(self, now: float, keep: float) -> None:
        """Forget comments, joins and orders older than ``keep`` seconds (no window looks further back;
        the best seller is the best seller of that span)."""
        for q in (self.comments, self.joins):
            while q and now - q[0] > keep:
                q.popleft()
        while self.orders and now - self.orders[0][0] > keep:
            self.orders.popleft()

    def product(self, pid: int | None) -> dict[str, Any] | None:
        return next((p for p in self.bag if p["id"] == pid), None)

    def best_seller(self, exclude: int | None = None) -> dict[str, Any] | None:
        counts: dict[int, int] = {}
        for _, pid in self.orders:
            counts[pid] = counts.get(pid, 0) + 1
        candidates = [p for p in self.bag if p["id"] != exclude and (p.get("stock") is None or p["stock"] > 0)]
        if not candidates:
            return None
        return max(candidates, key=lambda p: (counts.get(p["id"], 0), -self.bag.index(p)))


def _pin(live: Live, product: dict[str, Any] | None, label: str = "Pin a product") -> list[dict[str, Any]]:
    if product is None or live.event_id is None:
        return []
    return [{"label": f"{label}: {product['title'][:30]}", "method": "POST", "url": f"/api/events/{live.event_id}/pin",
             "body": {"product_id": product["id"]}}]


def _act(live: Live, name: str, label: str, **params: Any) -> list[dict[str, Any]]:
    """A button that runs another plugin's named action, when an installed plugin offers it."""
    if not name or name not in live.actions or live.event_id is None:
        return []
    return [{"label": label, "action": name, "params": {"event_id": live.event_id, **params}}]


def _window(series: deque[tuple[float, Any]], now: float, seconds: float) -> list[tuple[float, Any]]:
    return [(t, v) for t, v in series if now - t <= seconds]


def _lasting(live: Live, now: float, seconds: float, bad: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]] | None:
    """The health samples of the last ``seconds`` when every one of them is bad and they cover the span."""
    samples = _window(live.health, now, seconds)
    if not samples or now - samples[0][0] < seconds - 1.5 or not all(bad(h) for _, h in samples):
        return None
    return [h for _, h in samples]


# --------------------------------------------------------------------------------------------- suggestions


def traffic_drop(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    window = _window(live.viewer_series, now, s.traffic_drop_window)
    if not window:
        return {}
    peak = max(v for _, v in window)
    threshold = peak * (1 - s.traffic_drop_percent / 100)
    if peak < s.traffic_drop_min_viewers or live.viewers > threshold:
        return {}
    actions = _pin(live, live.best_seller(exclude=live.pinned_id)) + _act(live, s.giveaway_action, "Start a giveaway")
    return {"traffic_drop": {
        "level": "warning", "kind": "suggestion",
        "text": f"Viewers fell {peak} → {live.viewers} in {_mins(s.traffic_drop_window)}: win them back with an offer or a giveaway",
        "trigger": {"metric": "viewers", "value": live.viewers, "threshold": round(threshold, 1), "window": s.traffic_drop_window},
        "actions": actions}}


def low_engagement(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    if now - live.started_at < s.engagement_window:
        return {}
    samples = _window(live.viewer_series, now, s.engagement_window)
    avg = sum(v for _, v in samples) / len(samples) if samples else 0
    if avg < s.engagement_min_viewers:
        return {}
    comments = sum(1 for t in live.comments if now - t <= s.engagement_window)
    rate = comments / (avg * s.engagement_window / 60)
    if rate >= s.engagement_min_rate:
        return {}
    return {"low_engagement": {
        "level": "info", "kind": "suggestion",
        "text": f"Quiet chat: {comments} comments from about {round(avg)} viewers in {_mins(s.engagement_window)}. Ask a question or pin a product",
        "trigger": {"metric": "comments per viewer-minute", "value": round(rate, 3), "threshold": s.engagement_min_rate,
                    "window": s.engagement_window},
        "actions": _pin(live, live.best_seller(exclude=live.pinned_id))}}


def no_pinned_product(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    if live.pinned_id is not None or not live.bag or live.viewers < s.products_min_viewers:
        return {}
    since = live.unpinned_since or live.started_at
    if now - since < s.no_pin_seconds:
        return {}
    return {"no_pinned_product": {
        "level": "info", "kind": "suggestion",
        "text": f"No product pinned for {_mins(now - since)}: pin one so viewers can buy",
        "trigger": {"metric": "seconds without a pinned product", "value": round(now - since), "threshold": s.no_pin_seconds,
                    "window": None},
        "actions": _pin(live, live.best_seller())}}


def pinned_not_selling(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    if live.pinned_id is None or live.pinned_since is None or live.viewers < s.products_min_viewers:
        return {}
    pinned_for = now - live.pinned_since
    last_order = max((t for t, pid in live.orders if pid == live.pinned_id and t >= live.pinned_since), default=None)
    quiet = now - (last_order if last_order is not None else live.pinned_since)
    if pinned_for < s.pinned_no_sale_seconds or quiet < s.pinned_no_sale_seconds:
        return {}
    p = live.product(live.pinned_id)
    title = p["title"] if p else "the pinned product"
    actions = (_pin(live, live.best_seller(exclude=live.pinned_id), "Switch to")
               + _act(live, s.flash_sale_action, "Launch a flash sale", product_id=live.pinned_id))
    return {f"pinned_not_selling:{live.pinned_id}": {
        "level": "info", "kind": "suggestion",
        "text": f"“{title}” pinned {_mins(pinned_for)} without an order: switch product or launch a flash sale",
        "trigger": {"metric": "seconds without an order", "value": round(quiet), "threshold": s.pinned_no_sale_seconds, "window": None},
        "subject": {"product_id": live.pinned_id}, "actions": actions}}


def unanswered_question(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    out = {}
    for cid, (t, nick, body) in list(live.questions.items())[-20:]:
        if now - t >= s.question_seconds:
            out[f"unanswered_question:{cid}"] = {
                "level": "info", "kind": "suggestion",
                "text": f"{nick} asked “{body[:80]}” {_mins(round(now - t))} ago: no reply yet",
                "trigger": {"metric": "seconds unanswered", "value": round(now - t), "threshold": s.question_seconds, "window": None},
                "subject": {"comment_id": cid}, "actions": [{"label": "Jump to it", "comment_id": cid}]}
    return out


def early_giveaway(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    if not live.giveaway_available or live.giveaway_seen or now - live.started_at < s.giveaway_after_seconds:
        return {}
    return {"early_giveaway": {
        "level": "info", "kind": "suggestion",
        "text": f"{_mins(now - live.started_at)} in and no giveaway yet: one early keeps viewers watching",
        "trigger": {"metric": "seconds live without a giveaway", "value": round(now - live.started_at),
                    "threshold": s.giveaway_after_seconds, "window": None},
        "actions": _act(live, s.giveaway_action, "Start a giveaway")}}


def nearly_sold_out(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    p = live.product(live.pinned_id)
    if p is None or p.get("stock") is None or not 0 < p["stock"] <= s.low_stock:
        return {}
    # what a host wants now: say it on air (urgency), and have the next product one click away for the
    # moment it sells out (pinning it now would stop the last sales); more units only if the stockroom has them
    nxt = live.best_seller(exclude=p["id"])
    return {f"nearly_sold_out:{p['id']}": {
        "level": "info", "kind": "suggestion",
        "text": f"Only {p['stock']} left of “{p['title']}”: tell viewers, it creates urgency"
                + (f"; {nxt['title']} is next" if nxt else ""),
        "trigger": {"metric": "stock", "value": p["stock"], "threshold": s.low_stock, "window": None},
        "subject": {"product_id": p["id"]},
        "actions": _pin(live, nxt, "Pin next") + [{"label": "Add stock", "href": f"/catalog?product={p['id']}"}]}}


def new_viewers(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    joined = sum(1 for t in live.joins if now - t <= s.new_viewers_window)
    if s.new_viewers_count <= 0 or joined < s.new_viewers_count:
        return {}
    return {"new_viewers": {
        "level": "info", "kind": "suggestion",
        "text": f"{joined} new viewers in {_mins(s.new_viewers_window)}: welcome them and pin your best seller",
        "trigger": {"metric": "viewers joined", "value": joined, "threshold": s.new_viewers_count, "window": s.new_viewers_window},
        "actions": _pin(live, live.best_seller(exclude=live.pinned_id), "Pin the best seller")}}


# --------------------------------------------------------------------------------------------- LIVE diagnosis


def _diag(key: str, level: str, text: str, metric: str, value: Any, threshold: Any, window: float) -> dict[str, Finding]:
    return {key: {"level": level, "kind": "suggestion", "area": "stream", "text": text,
                  "trigger": {"metric": metric, "value": value, "threshold": threshold, "window": window}}}


def low_bitrate(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    half = s.target_bitrate / 2
    bad = _lasting(live, now, s.bitrate_seconds, lambda h: h.get("bitrate") is not None and h["bitrate"] < half)
    if not bad:
        return {}
    value = round(sum(h["bitrate"] for h in bad) / len(bad))
    return _diag("low_bitrate", "warning", f"Ingest bitrate {value // 1000} kbit/s, under half the {s.target_bitrate // 1000} kbit/s"
                 " target: raise the output bitrate in OBS, or check the upload", "ingest bitrate", value, half, s.bitrate_seconds)


def low_fps(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, s.fps_seconds, lambda h: h.get("fps") is not None and h["fps"] < s.min_fps)
    if not bad:
        return {}
    value = round(sum(h["fps"] for h in bad) / len(bad), 1)
    return _diag("low_fps", "warning", f"Frame rate {value} fps, under {s.min_fps:g}: lower the resolution or the encoder preset in OBS",
                 "ingest fps", value, s.min_fps, s.fps_seconds)


def packet_loss(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, s.loss_seconds, lambda h: (h.get("packet_loss") or 0) > s.max_packet_loss)
    if not bad:
        return {}
    value = round(max(h["packet_loss"] for h in bad), 3)
    return _diag("packet_loss", "critical", f"Packet loss {value * 100:.1f} %: use a wired connection or lower the bitrate",
                 "packet loss", value, s.max_packet_loss, s.loss_seconds)


def silent_audio(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, s.silent_seconds, lambda h: bool(h.get("silent")))
    if not bad:
        return {}
    level = bad[-1].get("audio_level")
    return _diag("silent_audio", "critical", f"Silent audio for {s.silent_seconds:g} s: OBS: check the microphone source (muted? right device?)",
                 "audio level dBFS", level, "silence", s.silent_seconds)


def black_video(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, s.black_seconds, lambda h: h.get("luma_mean") is not None and h["luma_mean"] < s.black_luma)
    if not bad:
        return {}
    return _diag("black_video", "critical", "Black video: OBS: check the camera source (lens cap, the right scene)",
                 "luma mean", bad[-1]["luma_mean"], s.black_luma, s.black_seconds)


def frozen_video(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, s.frozen_seconds, lambda h: h.get("frame_diff") is not None and h["frame_diff"] < s.frozen_diff
                   and (h.get("luma_mean") is None or h["luma_mean"] >= s.black_luma))
    if not bad:
        return {}
    return _diag("frozen_video", "warning", "Frozen video: the picture has not changed; OBS: check the camera isn't used by another app",
                 "frame difference", bad[-1]["frame_diff"], s.frozen_diff, s.frozen_seconds)


def low_resolution(live: Live, now: float, s: Settings) -> dict[str, Finding]:
    bad = _lasting(live, now, 5.0, lambda h: bool(h.get("width")) and bool(h.get("height"))
                   and (h["width"] < live.program_size[0] or h["height"] < live.program_size[1]))
    if not bad:
        return {}
    w, h = bad[-1]["width"], bad[-1]["height"]
    pw, ph = live.program_size
    return _diag("low_resolution", "info", f"Ingest is {w}×{h}, under the program's {pw}×{ph}: set OBS's output resolution to {pw}×{ph}",
                 "ingest resolution", f"{w}×{h}", f"{pw}×{ph}", 5.0)


RULES: dict[str, Callable[[Live, float, Settings], dict[str, Finding]]] = {
    "traffic_drop": traffic_drop, "low_engagement": low_engagement, "no_pinned_product": no_pinned_product,
    "pinned_not_selling": pinned_not_selling, "unanswered_question": unanswered_question, "early_giveaway": early_giveaway,
    "nearly_sold_out": nearly_sold_out, "new_viewers": new_viewers,
    "low_bitrate": low_bitrate, "low_fps": low_fps, "packet_loss": packet_loss, "silent_audio": silent_audio,
    "black_video": black_video, "frozen_video": frozen_video, "low_resolution": low_resolution,
}


@dataclass
class _KeyState:
    active: bool = False
    raised_at: float = float("-inf")
    reported_at: float = float("-inf")
    last: Finding | None = None


class Engine:
    """Cooldown, update-in-place and self-resolve for the window rules (one engine per session)."""

    def __init__(self, settings: Settings, rules: dict[str, Callable[[Live, float, Settings], dict[str, Finding]]] | None = None):
        self.settings = settings
        self.rules = {k: r for k, r in (rules or RULES).items() if settings.on(k)}
        self.keys: dict[str, _KeyState] = {}

    def adopt(self, keys: list[str], now: float) -> None:
        """Findings left open by a previous run (a restart): the next step updates or resolves them."""
        for key in keys:
            self.keys[key] = _KeyState(active=True, raised_at=now, reported_at=float("-inf"), last=None)

    def step(self, live: Live, now: float) -> list[tuple[str, Any]]:
        """What to do now: ``("report", finding)`` (new or updated) and ``("resolve", key)``."""
        s, out = self.settings, []
        live.prune(now, max(s.engagement_window, s.new_viewers_window, s.pinned_no_sale_seconds, s.traffic_drop_window) + 60)
        holding: dict[str, Finding] = {}
        for rule_id, rule in self.rules.items():
            for key, f in rule(live, now, s).items():
                holding[key] = {**f, "key": key}
        for key, f in holding.items():
            st = self.keys.setdefault(key, _KeyState())
            if not st.active:
                if now - st.raised_at < s.cooldown_seconds:
                    continue  # cooling down: stay quiet
                st.active, st.raised_at, st.reported_at, st.last = True, now, now, f
                out.append(("report", f))
            elif f != st.last and now - st.reported_at >= s.update_seconds:
                st.reported_at, st.last = now, f
                out.append(("report", f))
        for key, st in self.keys.items():
            if st.active and key not in holding:
                st.active = False
                out.append(("resolve", key))
        return out

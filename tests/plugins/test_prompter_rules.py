"""The prompter's rules against scripted timelines (pure: no server): each fires when its condition holds,
stays quiet when its activity gate is not met, respects its cooldown, updates in place and resolves."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from lmserver.api import ConfigError
from lmserver_plugins.prompter.content import Screen
from lmserver_plugins.prompter.engine import RULES, Engine, Live
from lmserver_plugins.prompter.settings import RULE_IDS, Settings

GOOD = {"bitrate": 3_000_000, "fps": 30.0, "packet_loss": 0.0, "silent": False, "audio_level": -20.0,
        "luma_mean": 110.0, "frame_diff": 4.0, "width": 1280, "height": 720}
P1 = {"id": 1, "title": "Blue mug", "stock": 20}
P2 = {"id": 2, "title": "Red mug", "stock": 20}

#: phases of a timeline: (start, end, condition on?)
PHASES = [(0, 60, False), (60, 120, True), (120, 180, False), (180, 240, True), (240, 400, False), (400, 460, True), (460, 520, False)]


def health(**bad: Any) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.health.append((t, {**GOOD, **bad} if on else dict(GOOD)))
    return apply


def health_blips(**bad: Any) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:  # bad 2 s out of every 4: never lasting
        live.health.append((t, {**GOOD, **bad} if on and int(since) % 4 < 2 else dict(GOOD)))
    return apply


def traffic(peak: int, low: int) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.viewers = low if on and since >= 5 else peak
    return apply


def engagement(viewers: int) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.viewers = viewers
        if not on:
            live.comments.append(t)
    return apply


def no_pin(bag: list[dict[str, Any]], viewers: int = 5) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.viewers, live.bag = viewers, [dict(p) for p in bag]
        if on and live.pinned_id is not None:
            live.pinned_id, live.pinned_since, live.unpinned_since = None, None, t
        elif not on and live.pinned_id is None:
            live.pinned_id, live.pinned_since = 1, t
    return apply


def not_selling(viewers: int = 5) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.viewers, live.bag = viewers, [dict(P1), dict(P2)]
        if live.pinned_id is None:
            live.pinned_id, live.pinned_since = 1, 0.0
        if not on and int(t) % 2 == 0:
            live.orders.append((t, 1))
    return apply


def question(answer_after: float | None = None) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        asked = on and (answer_after is None or since < answer_after)
        if asked and 100 not in live.questions:
            live.questions[100] = (t, "Ann", "Does it come in green?")
        elif not asked:
            live.questions.pop(100, None)
    return apply


def giveaway(available: bool = True) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.giveaway_available, live.giveaway_seen = available, not on
    return apply


def stock(low: int) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        live.bag, live.pinned_id = [{**P1, "stock": low if on else 20}], 1
    return apply


def joins(every: int) -> Callable[[Live, float, bool, float], None]:
    def apply(live: Live, t: float, on: bool, since: float) -> None:
        if on and int(t) % every == 0:
            live.joins.append(t)
    return apply


#: rule id -> (settings, the timeline that fires it, a timeline that does not meet its gate)
SCENARIOS: dict[str, tuple[dict[str, Any], Any, Any]] = {
    "traffic_drop": ({"traffic_drop_window": 20, "traffic_drop_min_viewers": 10}, traffic(20, 12), traffic(8, 4)),
    "low_engagement": ({"engagement_window": 20, "engagement_min_viewers": 5, "engagement_min_rate": 0.5}, engagement(10), engagement(2)),
    "no_pinned_product": ({"no_pin_seconds": 10}, no_pin([P1]), no_pin([])),
    "pinned_not_selling": ({"pinned_no_sale_seconds": 10}, not_selling(), not_selling(viewers=0)),
    "unanswered_question": ({"question_seconds": 10}, question(), question(answer_after=5)),
    "early_giveaway": ({"giveaway_after_seconds": 30}, giveaway(), giveaway(available=False)),
    "nearly_sold_out": ({"low_stock": 5}, stock(3), stock(0)),
    "new_viewers": ({"new_viewers_count": 5, "new_viewers_window": 10}, joins(1), joins(3)),
    "low_bitrate": ({"bitrate_seconds": 10}, health(bitrate=900_000), health_blips(bitrate=900_000)),
    "low_fps": ({"fps_seconds": 5}, health(fps=12.0), health_blips(fps=12.0)),
    "packet_loss": ({"loss_seconds": 5}, health(packet_loss=0.09), health_blips(packet_loss=0.09)),
    "silent_audio": ({"silent_seconds": 10}, health(silent=True, audio_level=-90.0), health_blips(silent=True)),
    "black_video": ({"black_seconds": 5}, health(luma_mean=3.0), health_blips(luma_mean=3.0)),
    "frozen_video": ({"frozen_seconds": 5}, health(frame_diff=0.0), health_blips(frame_diff=0.0)),
    "low_resolution": ({}, health(width=640, height=360), health_blips(width=640, height=360)),
}


def run(rule: str, table: dict[str, Any], apply: Any) -> list[tuple[float, str, Any]]:
    settings = Settings.from_table({"cooldown_seconds": 300, "update_seconds": 5, **table})
    engine = Engine(settings, {rule: RULES[rule]})
    live = Live(session_id=1, event_id=7, started_at=0.0)
    out = []
    for start, end, on in PHASES:
        for t in range(start, end):
            apply(live, float(t), on, float(t - start))
            live.viewer_series.append((float(t), live.viewers))
            for op, arg in engine.step(live, float(t)):
                out.append((float(t), op, arg))
    return out


def test_every_rule_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(RULES) and set(RULES) <= set(RULE_IDS)


@pytest.mark.parametrize("rule", list(SCENARIOS))
def test_rule_fires_cools_down_updates_in_place_and_resolves(rule: str) -> None:
    table, fire, _ = SCENARIOS[rule]
    ops = run(rule, table, fire)
    reports = [(t, f) for t, op, f in ops if op == "report"]
    assert reports, f"{rule} never fired"
    first_t, first = reports[0]
    assert 60 <= first_t < 120, f"{rule} fired at {first_t}, outside its first condition"
    assert first["trigger"]["metric"] and first["text"] and first["level"] in ("info", "warning", "critical")
    resolved = [t for t, op, key in ops if op == "resolve" and key == first["key"]]
    assert resolved and first_t < resolved[0] < 180, f"{rule} did not resolve when its condition ended: {resolved}"
    # while it held, every report was the same finding (same key), not a new one, and not every tick
    held = [f for t, f in reports if first_t <= t <= resolved[0]]
    assert {f["key"] for f in held} == {first["key"]} and len(held) <= 1 + (resolved[0] - first_t) / 5
    # second condition within the cooldown (300 s after it was raised): quiet
    assert not [t for t, _ in reports if 180 <= t < 240], f"{rule} ignored its cooldown"
    # third condition after the cooldown: raised again
    assert [t for t, _ in reports if 400 <= t < 460], f"{rule} did not fire again after its cooldown"


@pytest.mark.parametrize("rule", list(SCENARIOS))
def test_rule_stays_quiet_when_its_gate_is_not_met(rule: str) -> None:
    table, _, gated = SCENARIOS[rule]
    assert [op for _, op, _ in run(rule, table, gated)] == []


def test_a_disabled_rule_never_runs() -> None:
    settings = Settings.from_table({"disabled_rules": ["silent_audio"]})
    assert "silent_audio" not in Engine(settings).rules and "low_fps" in Engine(settings).rules


def test_traffic_drop_says_what_it_saw_and_offers_pin_and_giveaway() -> None:
    live = Live(session_id=1, event_id=7, started_at=0.0, bag=[dict(P1), dict(P2)], giveaway_available=True,
                actions=frozenset({"giveaway.start"}))
    engine = Engine(Settings(), {"traffic_drop": RULES["traffic_drop"]})
    for t, v in [(0, 48), (30, 45), (60, 40), (90, 30)]:
        live.viewers = v
        live.viewer_series.append((float(t), v))
        ops = engine.step(live, float(t))
    [(op, f)] = ops
    assert f["text"].startswith("Viewers fell 48 → 30 in 2 min")
    assert f["trigger"] == {"metric": "viewers", "value": 30, "threshold": 33.6, "window": 120.0}
    assert [a["label"] for a in f["actions"]] == ["Pin a product: Blue mug", "Start a giveaway"]
    assert f["actions"][0]["url"] == "/api/events/7/pin" and f["actions"][0]["body"] == {"product_id": 1}


# --------------------------------------------------------------------------------------------- content quality


@pytest.mark.parametrize("body, reason", [
    ("great deal at https://spam.example/x", "contains a link"),
    ("visit www.cheap-stuff.biz now", "contains a link"),
    ("buy at cheapmugs.shop", "contains a link"),
    ("mail me at ann.lee@example.com", "contains an e-mail address"),
    ("call +1 (555) 123-4567", "contains a phone number"),
    ("whatsapp 0612345678", "contains a phone number"),
    ("get FREE FOLLOWERS here", "muted phrase: “free followers”"),
    ("this is a scam!", "prohibited word: “scam”"),
])
def test_comments_held_with_a_reason(body: str, reason: str) -> None:
    assert Screen(Settings()).check(body, "v1", 0.0)[1] == reason


@pytest.mark.parametrize("body", ["Does it come in blue?", "I'll take 2 for $25.50", "size 10 please", "love it!!!",
                                  "scammer-proof lock", "ordered at 10.30", "ref 1234"])
def test_ordinary_comments_pass(body: str) -> None:
    assert Screen(Settings()).check(body, "v1", 0.0) is None


def test_flood_holds_the_third_same_comment_of_one_viewer_within_the_window() -> None:
    screen = Screen(Settings())
    assert screen.check("WOW", "v1", 0.0) is None and screen.check("wow ", "v1", 1.0) is None
    assert screen.check("hi", "v2", 1.5) is None and screen.check("WOW", "v2", 1.6) is None  # another viewer
    assert screen.check("Wow", "v1", 2.0)[0] == "flood"
    assert screen.check("wow", "v3", 0.0) is None and screen.check("wow", "v3", 100.0) is None
    assert screen.check("wow", "v3", 200.0) is None  # spread over more than the window: not a flood


def test_lists_and_switches_come_from_the_settings() -> None:
    screen = Screen(Settings.from_table({"muted_words": ["lorem"], "prohibited_words": [], "hold_links": False,
                                         "disabled_rules": ["flood"]}))
    assert screen.check("Lorem ipsum", "v", 0.0)[1] == "muted phrase: “lorem”"
    assert screen.check("this is a scam", "v", 0.0) is None
    assert screen.check("see https://x.example", "v", 0.0) is None
    assert all(screen.check("same", "v", float(i)) is None for i in range(5))
    assert Screen(Settings()).staff_word("Not a SCAM, promise") == "scam"
    assert Screen(Settings()).claim("Cream that cures acne") == "cures"
    assert Screen(Settings()).claim("Blue mug") is None


@pytest.mark.parametrize("table, message", [
    ({"nope": 1}, "'plugins.prompter.nope' is not a setting"),
    ({"cooldown_seconds": "5"}, "'plugins.prompter.cooldown_seconds' must be a number"),
    ({"traffic_drop_min_viewers": 2.5}, "'plugins.prompter.traffic_drop_min_viewers' must be a whole number"),
    ({"disabled_rules": ["typo"]}, "names unknown rules ['typo']"),
    ({"muted_words": "spam"}, "'plugins.prompter.muted_words' must be a list"),
    ({"hold_links": 1}, "'plugins.prompter.hold_links' must be true or false"),
    ({"max_packet_loss": 5}, "is a share from 0 to 1"),
])
def test_bad_settings_are_refused_naming_the_key(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        Settings.from_table(table)
    assert message in str(e.value)


def test_the_shipped_config_lists_every_key_with_its_comment_and_default() -> None:
    import dataclasses
    import tomllib
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / "config.toml").read_text().splitlines()
    start = lines.index("# [plugins.prompter]")
    block = []
    for i, line in enumerate(lines[start + 1:], start + 1):
        if not line.startswith("# "):
            break
        if not line.startswith("# # "):
            assert lines[i - 1].startswith("# # "), f"{line} has no comment"
            block.append(line[2:])
    table = tomllib.loads("\n".join(block))
    assert list(table) == [f.name for f in dataclasses.fields(Settings)]
    assert Settings.from_table(table) == Settings()

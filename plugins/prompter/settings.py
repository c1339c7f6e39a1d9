"""``[plugins.prompter]``: every threshold of every rule, with its default and what it means.

Unknown keys and bad values are refused when the app is built, naming the key
(``plugins.prompter.<key>``). ``disabled_rules`` switches rules off by id (:data:`RULE_IDS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from lmserver.api import ConfigError

NAME = "prompter"

#: every rule's id (what ``disabled_rules`` names)
RULE_IDS = (
    # suggestions
    "traffic_drop", "low_engagement", "no_pinned_product", "pinned_not_selling", "unanswered_question",
    "early_giveaway", "nearly_sold_out", "new_viewers",
    # LIVE diagnosis
    "low_bitrate", "low_fps", "packet_loss", "silent_audio", "black_video", "frozen_video", "low_resolution",
    # content quality
    "muted_words", "prohibited_words", "contact_details", "flood", "staff_prohibited", "product_claims",
)

#: a small default of spam phrases: comments with these are held from viewers (staff still see them)
DEFAULT_MUTED = ["free followers", "check my profile", "dm me for", "click my bio", "earn money fast", "crypto giveaway"]
#: words that may not be said on a LIVE: held from viewers, and a staff reply with one is warned
DEFAULT_PROHIBITED = ["scam", "counterfeit", "fake designer", "replica"]
#: claims a product title may not make (health, guarantees): flagged on the bag's products
DEFAULT_CLAIMS = ["cures", "miracle", "guaranteed results", "100% safe", "fda approved", "lose weight fast", "risk-free"]


@dataclass(frozen=True)
class Settings:
    """Each field is a key of ``[plugins.prompter]``, with its default."""

    #: rule ids switched off (see RULE_IDS)
    disabled_rules: list[str] = field(default_factory=list)
    #: after a rule raised a finding, the same finding is not raised again for this long, in seconds
    cooldown_seconds: float = 300.0
    #: an open finding's figures are refreshed at most this often, in seconds
    update_seconds: float = 5.0
    # --- traffic drop
    #: viewers falling by this share (percent) within the window raise "traffic drop"
    traffic_drop_percent: float = 30.0
    #: the window, in seconds
    traffic_drop_window: float = 120.0
    #: only when the window's peak had at least this many viewers
    traffic_drop_min_viewers: int = 10
    # --- low engagement
    #: comments per viewer-minute under this over the window raise "low engagement"
    engagement_min_rate: float = 0.05
    #: the window, in seconds
    engagement_window: float = 180.0
    #: only with at least this many viewers on average (no alert to an empty room)
    engagement_min_viewers: int = 5
    # --- products
    #: no pinned product for this long while the bag is not empty, in seconds
    no_pin_seconds: float = 300.0
    #: the pinned product had no order for this long, in seconds
    pinned_no_sale_seconds: float = 300.0
    #: "no pinned product" and "not selling" only with at least this many viewers
    products_min_viewers: int = 1
    #: the pinned product's stock at or under this (and above 0) raises "nearly sold out"
    low_stock: int = 5
    # --- questions
    #: a viewer's question (a comment with "?") unreplied for this long, in seconds
    question_seconds: float = 120.0
    # --- giveaway (whatever a giveaway plugin publishes: the rule is off when none of these events is declared)
    #: bus events that mean "a giveaway started"
    giveaway_events: list[str] = field(default_factory=lambda: ["giveaway.started"])
    #: the named action (a plugin's ``register_actions``) the "Start a giveaway" button runs (empty: no button)
    giveaway_action: str = "giveaway.start"
    #: no giveaway this long into the session, in seconds
    giveaway_after_seconds: float = 600.0
    #: the named action the "Launch a flash sale" button runs (empty: no button); offered only when a plugin has it
    flash_sale_action: str = "flashsale.launch"
    # --- new viewers
    #: this many viewers joining within the window raise "new viewers arriving fast"
    new_viewers_count: int = 10
    #: the window, in seconds
    new_viewers_window: float = 60.0
    # --- LIVE diagnosis
    #: the ingest bitrate the studio expects, in bits/s (under half of it raises "low bitrate")
    target_bitrate: int = 2_500_000
    #: bitrate under half the target for this long, in seconds
    bitrate_seconds: float = 10.0
    #: ingest frame rate under this raises "low frame rate"
    min_fps: float = 20.0
    #: frame rate low for this long, in seconds
    fps_seconds: float = 5.0
    #: packet loss over this share (0..1) raises "packet loss"
    max_packet_loss: float = 0.05
    #: packet loss high for this long, in seconds
    loss_seconds: float = 5.0
    #: the ingest audio silent for this long, in seconds
    silent_seconds: float = 10.0
    #: program frames with a mean luma (0..255) under this are black
    black_luma: float = 20.0
    #: black for this long, in seconds
    black_seconds: float = 5.0
    #: program frames whose mean absolute luma difference to the previous is under this are frozen
    frozen_diff: float = 0.3
    #: frozen for this long, in seconds
    frozen_seconds: float = 5.0
    # --- content quality
    #: words and phrases held from viewers (case-insensitive; a shipped default of spam phrases)
    muted_words: list[str] = field(default_factory=lambda: list(DEFAULT_MUTED))
    #: words that may not be said: viewers' comments held, staff replies warned
    prohibited_words: list[str] = field(default_factory=lambda: list(DEFAULT_PROHIBITED))
    #: claims a product title in the bag may not make
    prohibited_claims: list[str] = field(default_factory=lambda: list(DEFAULT_CLAIMS))
    #: hold viewers' comments with a link
    hold_links: bool = True
    #: hold viewers' comments with an e-mail address or a phone number
    hold_contacts: bool = True
    #: the same comment this many times from one viewer within the window is a flood (held)
    flood_repeats: int = 3
    #: the flood window, in seconds
    flood_window: float = 60.0

    def on(self, rule: str) -> bool:
        return rule not in self.disabled_rules

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> "Settings":
        """Check the table; raises :class:`ConfigError` naming the key (``plugins.prompter.<key>``)."""
        known = {f.name: f for f in fields(cls)}
        defaults = cls()
        values: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"'plugins.{NAME}.{key}' is not a setting of the prompter plugin; known: {', '.join(known)}")
            default = getattr(defaults, key)
            name = f"'plugins.{NAME}.{key}'"
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"{name} must be true or false, got {value!r}")
            elif isinstance(default, list):
                if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise ConfigError(f"{name} must be a list of non-empty strings, got {value!r}")
                if key == "disabled_rules" and (bad := [v for v in value if v not in RULE_IDS]):
                    raise ConfigError(f"{name} names unknown rules {bad}; rules: {', '.join(RULE_IDS)}")
                value = [v.strip() for v in value]
            elif isinstance(default, str):
                if not isinstance(value, str):
                    raise ConfigError(f"{name} must be a string, got {value!r}")
            elif isinstance(default, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{name} must be a whole number ≥ 0, got {value!r}")
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigError(f"{name} must be a number ≥ 0, got {value!r}")
                if key in ("max_packet_loss",) and value > 1:
                    raise ConfigError(f"{name} is a share from 0 to 1, got {value!r}")
                value = float(value)
            values[key] = value
        return cls(**values)

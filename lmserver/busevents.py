"""Every bus event the core publishes: its name, what it means, its fields, who sees it.

This module is the documentation of the bus. Plugins declare their own events through the
``register_bus_events`` hook with the same :class:`EventSpec`.

Every record on the bus (and in the activity log, and on the WebSocket) has the shape::

    {"id": 12, "name": "comment.created", "event_id": 3, "session_id": 7, "practice": false,
     "at": 1764012345.25, "data": {...the fields below...}}

``audience`` says which WebSocket clients receive it: ``"public"`` goes to staff consoles and to the
viewer pages of the same LIVE event; ``"staff"`` goes to consoles only. ``persist=False`` events are
not written to the activity log (high-rate telemetry such as ``stream.health``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

Audience = Literal["staff", "public"]


@dataclass(frozen=True)
class EventSpec:
    name: str
    doc: str
    fields: Mapping[str, str] = field(default_factory=dict)
    audience: Audience = "staff"
    persist: bool = True
    #: shown in the console's "All activities" feed
    activity: bool = False


CORE_EVENTS: list[EventSpec] = [
    # stream lifecycle (media)
    EventSpec("stream.started", "A session went live (or practice started).",
              {"source": "whip, capture, ...", "practice": "practice session", "resumed": "an interrupted session resumed",
               "started_by": "staff user id or null"}, "public"),
    EventSpec("stream.ended", "The session's stream ended.",
              {"reason": "why it ended (host ended, ingest dropped, ...)", "duration": "seconds"}, "public"),
    EventSpec("stream.health", "Once a second while live: ingest and program health.",
              {"bitrate": "ingest bits/s", "fps": "ingest frames/s", "width": "px", "height": "px",
               "packet_loss": "fraction 0..1", "jitter": "seconds", "audio_level": "dBFS", "silent": "audio is silent",
               "encode_ms": "program encode time per frame, ms", "viewers": "viewers now"}, "staff", persist=False),
    EventSpec("stream.error", "A media problem the host should see.", {"message": "what went wrong"}, "staff"),
    EventSpec("viewer.joined", "A viewer started watching.", {"viewer_id": "viewer or null", "viewers": "viewers now", "peak": "peak viewers"}, "staff", activity=True),
    EventSpec("viewer.left", "A viewer stopped watching.", {"viewer_id": "viewer or null", "viewers": "viewers now"}, "staff"),
    # catalog
    EventSpec("product.created", "A product was added to the catalog.", {"product": "the product"}),
    EventSpec("product.updated", "A product's details, price or stock changed.", {"product": "the product"}, "public"),
    EventSpec("product.archived", "A product was archived.", {"product_id": "id"}),
    # events and the shopping bag
    EventSpec("event.created", "A LIVE event was scheduled.", {"event": "the event"}),
    EventSpec("event.updated", "A LIVE event changed.", {"event": "the event"}, "public"),
    EventSpec("event.deleted", "A LIVE event was deleted.", {"event_id": "id", "title": "its title"}),
    EventSpec("event.ready", "An event's start is near: its console is ready (reminder).", {"event": "the event", "starts_in": "seconds"}),
    EventSpec("bag.changed", "An event's shopping bag changed (added, removed, reordered, refreshed).",
              {"action": "add, remove, move, refresh", "product_ids": "the bag in order"}, "public"),
    EventSpec("product.pinned", "A product was pinned while live.", {"product": "the product"}, "public"),
    EventSpec("product.unpinned", "The pinned product was unpinned.", {"product_id": "id"}, "public"),
    EventSpec("registration.created", "A viewer registered for an upcoming event.", {"nickname": "name", "registrations": "count"}),
    # viewers' activities
    EventSpec("comment.created", "A comment (or a staff reply, with parent_id) was posted.", {"comment": "the comment"}, "public", activity=True),
    EventSpec("comment.hidden", "A comment was hidden by staff.", {"comment_id": "id"}, "public"),
    EventSpec("comment.pinned", "A comment was pinned (one at a time).", {"comment": "the comment"}, "public"),
    EventSpec("comment.unpinned", "The pinned comment was unpinned.", {"comment_id": "id"}, "public"),
    EventSpec("viewer.blocked", "A viewer was blocked (their comments no longer appear).", {"viewer_id": "id", "nickname": "name"}, "staff"),
    EventSpec("viewer.unblocked", "A viewer was unblocked.", {"viewer_id": "id", "nickname": "name"}, "staff"),
    EventSpec("order.created", "A viewer placed an order.", {"order": "the order"}, "staff", activity=True),
    EventSpec("viewer.followed", "A viewer followed the host.", {"viewer_id": "id", "nickname": "name", "followers": "count"}, "public", activity=True),
    EventSpec("gift.sent", "A viewer sent a gift.", {"viewer_id": "id", "nickname": "name", "gift": "gift name"}, "public", activity=True),
    # prompter (findings of plugins' prompter rules)
    EventSpec("prompter.suggestion", "A prompter rule suggests something to the host.",
              {"text": "what to do", "level": "info, warning or critical", "plugin": "the rule's plugin"}),
    EventSpec("prompter.violation", "A prompter rule found a content-quality violation.",
              {"text": "what is wrong", "level": "info, warning or critical", "plugin": "the rule's plugin"}),
    # accounts
    EventSpec("user.created", "A staff account was created.", {"user_id": "id", "name": "name", "role": "role"}),
    EventSpec("stream_key.rotated", "The studio's stream key was rotated.", {}),
    # LIVE console and viewer page (appended)
    EventSpec("comment.held", "A viewer's comment was held back (moderation hook or blocked viewer): staff see it greyed, viewers never.",
              {"comment": "the comment, with hidden_reason"}, "staff", activity=True),
    EventSpec("product.stock", "A product's stock changed through an order (0: sold out).",
              {"product_id": "id", "stock": "units left"}, "public", persist=False),
    EventSpec("order.released", "Reserved orders whose checkout never finished (server restart, checkout timeout) were"
              " cancelled and their units went back to stock; one record per session and reconciliation pass.",
              {"order_ids": "the cancelled orders", "units": "units given back", "reason": "why (also the orders' status_reason)",
               "products": "[{product_id, stock}]: stock after the release"}, "staff"),
]

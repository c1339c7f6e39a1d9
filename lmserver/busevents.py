"""Every bus event the core publishes: its name, what it means, its fields, who sees it.

This module is the documentation of the bus. Plugins declare their own events through the
``register_bus_events`` hook with the same :class:`EventSpec`.

Every record on the bus (and in the activity log, and on the WebSocket) has the shape::

    {"id": 12, "name": "comment.created", "event_id": 3, "session_id": 7, "practice": false,
     "at": 1764012345.25, "data": {...the fields below...}}

``persist=False`` events are not written to the activity log (high-rate telemetry such as
``stream.health``).

Who sees a record (the rule; :meth:`lmserver.bus.Bus.dispatch` applies it, ``tests/test_bus_ws.py`` checks it):

* **Staff consoles** (``/ws/console``) receive every record whole.
* **Viewer pages** (``/ws/viewer?event=ID``, anonymous) receive a record only when all of these hold:

  1. its spec says ``audience="public"`` (the default is ``"staff"``);
  2. it concerns *that* event: ``scope="event"`` records go to the viewers of ``record.event_id`` only
     (a record without an event goes to no viewer); ``scope="bag"`` records (a catalog change) go to the
     viewers of each event whose shopping bag lists the product, and to none when the product is archived
     or in no bag;
  3. it is not practice: a record of a practice session reaches no viewer (practice is a rehearsal
     nobody watches), unless the spec says ``practice_public=True`` (a real change that the waiting
     viewer page shows, such as the bag);
  4. its data is reduced to the spec's declared ``public`` fields: a field maps to ``None`` (sent as is)
     or to the keys kept of its object value (:data:`PUBLIC_PRODUCT`, :data:`PUBLIC_COMMENT`, ...).
     Declaring a public event without ``public`` is an error, so a new field is staff-only until it
     is listed there.

  So viewers never see: SKUs, archived products or products of no public bag, comments held or hidden
  by moderators (``comment.held`` is staff; ``comment.hidden`` sends only the id to remove), who is
  blocked, staff user ids or login names (a staff reply carries the studio's name), orders (theirs come
  back in the HTTP answer), viewer ids, stream health, prompter findings, or anything of a practice
  session. The viewer page's HTTP state (``/api/e/{id}/state``) shows the same fields.

**Activities.** An event with ``activity`` set is one of the console's activities: it appears in the
"All activities" feed, and its ``label`` is listed in that feed's filter. ``activity`` is a short text
template that says how one record reads, filled in the browser from the record's ``data``::

    EventSpec("viewer.followed", ..., {"nickname": "name", ...}, activity="{nickname} followed the host",
              label="Follows", icon="➕")

A placeholder is ``{field}`` or ``{field.key}`` (a key of an object field), naming a declared field,
optionally with one filter: ``{amount_cents|money}`` (cents in the ``currency`` beside it),
``{gift|gift}`` (a gift's emoji and name), ``{resumed|if:again}`` (the text when the value is true).
Every value is escaped; a placeholder at the start of the template is shown as the actor (bold).
``activity=True`` makes an activity without a template (the feed shows the name and the fields).
A template that names an undeclared field or an unknown filter is refused when the spec is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

Audience = Literal["staff", "public"]
Scope = Literal["event", "bag"]

#: what a viewer page shows of a product (never its SKU, archived flag, timestamps or image file name)
PUBLIC_PRODUCT = ("id", "title", "description", "price_cents", "currency", "stock", "image_url")
#: what a viewer page shows of a comment (never the viewer's id, the staff author's id or a moderation reason)
PUBLIC_COMMENT = ("id", "event_id", "session_id", "parent_id", "nickname", "body", "staff", "pinned", "created_at")
#: what a viewer page shows of an event
PUBLIC_EVENT = ("id", "slug", "title", "description", "starts_at", "duration_minutes", "ends_at", "url")

#: the filters an activity template may use (web/static/js/app.js, ``LMS.activity``, implements them)
ACTIVITY_FILTERS = frozenset({"money", "gift", "if"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def check_activity_template(name: str, template: str, fields: Iterable[str]) -> None:
    """Raise ValueError, naming the event and the fix, unless every placeholder is a declared field with a known filter."""
    declared = set(fields)
    for raw in _PLACEHOLDER.findall(template):
        path, _, filt = raw.partition("|")
        fname = filt.partition(":")[0]
        if not _PATH.fullmatch(path):
            raise ValueError(f"bus event {name!r}: activity placeholder {{{raw}}} is not a field name like {{nickname}} or {{order.nickname}}")
        if path.split(".")[0] not in declared:
            raise ValueError(f"bus event {name!r}: activity template uses {{{path}}} but the event declares only {sorted(declared)}")
        if filt and fname not in ACTIVITY_FILTERS:
            raise ValueError(f"bus event {name!r}: activity filter {fname!r} is unknown; use one of {sorted(ACTIVITY_FILTERS)}")
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        raise ValueError(f"bus event {name!r}: activity template {template!r} has an unmatched brace")


@dataclass(frozen=True)
class EventSpec:
    name: str
    doc: str
    fields: Mapping[str, str] = field(default_factory=dict)
    audience: Audience = "staff"
    persist: bool = True
    #: how a record reads in the console's "All activities" feed (a template over ``fields``, see the module's
    #: docstring); ``True``: an activity shown generically; ``None``/``False``: not an activity
    activity: str | bool | None = None
    #: the activity kind's name in the feed's filter ("Follows"); defaults to the event's name
    label: str = ""
    #: an emoji (or short text) shown before the activity's text
    icon: str = ""
    #: what viewers receive of a public event: field → None (as is) or the keys kept of its object value
    public: Mapping[str, tuple[str, ...] | None] | None = None
    #: "event": viewers of ``record.event_id``; "bag": viewers of every event whose bag lists the
    #: (unarchived) product named by ``data["product"]["id"]`` or ``data["product_id"]``
    scope: Scope = "event"
    #: a practice session's record still reaches the viewers (real changes such as the bag, not activity)
    practice_public: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.activity, str):
            check_activity_template(self.name, self.activity, self.fields)
        if self.audience == "public":
            if self.public is None:
                raise ValueError(f"bus event {self.name!r} is public: declare the fields viewers see (public={{...}})")
            unknown = set(self.public) - set(self.fields)
            if unknown:
                raise ValueError(f"bus event {self.name!r}: public fields {sorted(unknown)} are not among its fields")
        elif self.public is not None or self.scope != "event" or self.practice_public:
            raise ValueError(f"bus event {self.name!r} is staff-only: public, scope and practice_public apply to public events")

    def project(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The record's data reduced to what viewers may see (empty for a staff event)."""
        out: dict[str, Any] = {}
        for key, keep in (self.public or {}).items():
            if key not in data:
                continue
            value = data[key]
            if keep is not None:
                value = {k: value[k] for k in keep if k in value} if isinstance(value, Mapping) else None
            out[key] = value
        return out

    def activity_kind(self) -> dict[str, Any] | None:
        """What the console needs to draw this event's records in its feed (None: not an activity)."""
        if not self.activity:
            return None
        return {"name": self.name, "label": self.label or self.name, "icon": self.icon,
                "template": self.activity if isinstance(self.activity, str) else None}


def activity_kinds(specs: Iterable[EventSpec]) -> list[dict[str, Any]]:
    """The declared activity kinds (core and plugins), in declaration order: the console's feed and filter."""
    return [kind for kind in (spec.activity_kind() for spec in specs) if kind is not None]


#: the fields of a prompter finding (see :mod:`lmserver.prompter`), published whole on each change
FINDING_FIELDS = {
    "id": "the finding's id", "key": "its stable key", "plugin": "the rule's plugin", "kind": "suggestion or violation",
    "level": "info, warning or critical", "text": "what the rule says",
    "trigger": "{metric, value, threshold, window} or null: what the rule saw",
    "actions": "[{label, method, url, body} | {label, action, params} | {label, comment_id} | {label, panel} | {label, href}]:"
               " one-click fixes",
    "subject": "{comment_id, viewer_id, product_id, ...} or null", "area": "'stream' for LIVE diagnosis, else null",
    "status": "active, resolved or dismissed", "updates": "times reported", "session_id": "session", "event_id": "event",
    "practice": "practice session", "created_at": "first seen", "updated_at": "last reported", "resolved_at": "when it ended",
    "dismissed_at": "when staff dismissed it", "dismissed_by": "who dismissed it", "acted": "the action staff took",
}

CORE_EVENTS: list[EventSpec] = [
    # stream lifecycle (media)
    EventSpec("stream.started", "A session went live (or practice started).",
              {"source": "whip, capture, ...", "practice": "practice session", "resumed": "an interrupted session resumed",
               "started_by": "staff user id or null"}, "public", public={"resumed": None},
              activity="The LIVE started{resumed|if: again}{practice|if: (practice)}", label="LIVE started", icon="🔴"),
    EventSpec("stream.ended", "The session's stream ended.",
              {"reason": "why it ended (host ended, ingest dropped, ...)", "duration": "seconds"}, "public", public={"duration": None},
              activity="The LIVE ended: {reason}", label="LIVE ended", icon="⏹"),
    EventSpec("stream.health", "Once a second while live: ingest and program health.",
              {"bitrate": "ingest bits/s", "fps": "ingest frames/s", "width": "px", "height": "px",
               "packet_loss": "fraction 0..1", "jitter": "seconds", "audio_level": "dBFS", "silent": "audio is silent",
               "encode_ms": "program encode time per frame, ms", "viewers": "viewers now",
               "stages_ms": "median ms per pipeline stage {receive, jitter, decode, wait, scale, composite, encode, handoff,"
                            " total, server} over the last 300 frames (lmserver.media.program; null where not known)",
               "luma_mean": "mean luma 0..255 of the program's frames before overlays (black: under ~20), or null",
               "frame_diff": "mean absolute luma change between sampled frames (frozen: ~0), or null",
               "recording": "the session's recording {id, state: recording|stopped|failed|off, size: bytes, duration: s, warning}, or null (not recorded)"},
              "staff", persist=False),
    EventSpec("recording.warning", "The recording of the live needs the host's attention: the disk is nearly full (warning) or the"
              " recording stopped or could not start (critical); the LIVE itself goes on.",
              {"level": "warning | critical", "message": "what happened and what to do", "free_gb": "free space on the recordings disk, GB",
               "recording_id": "the recording, or null when none started"}, "staff"),
    EventSpec("stream.error", "A media problem the host should see.", {"message": "what went wrong"}, "staff"),
    EventSpec("restream.state", "A restream destination changed state (lmserver.media.restream).",
              {"destination_id": "id", "name": "its label", "kind": "rtmp or whip",
               "state": "connecting, live, retrying, failed or stopped", "error": "the last error (names DNS, refused, auth, TLS, timeout) or null",
               "cause": "dns, refused, auth, tls, timeout, closed, network, protocol or null", "retry_in": "seconds until the next attempt, or null",
               "bytes_sent": "bytes sent so far", "dropped": "packets dropped by its full queue"}, "staff"),
    EventSpec("viewer.joined", "A viewer started watching.", {"viewer_id": "viewer or null", "viewers": "viewers now", "peak": "peak viewers"}, "staff",
              activity="A viewer joined ({viewers} watching)", label="Viewers joining", icon="👋"),
    EventSpec("viewer.left", "A viewer stopped watching.", {"viewer_id": "viewer or null", "viewers": "viewers now"}, "staff"),
    # catalog
    EventSpec("product.created", "A product was added to the catalog.", {"product": "the product"}),
    EventSpec("product.updated", "A product's details, price or stock changed.", {"product": "the product"}, "public",
              public={"product": PUBLIC_PRODUCT}, scope="bag"),
    EventSpec("product.archived", "A product was archived.", {"product_id": "id"}),
    # events and the shopping bag
    EventSpec("event.created", "A LIVE event was scheduled.", {"event": "the event"}),
    EventSpec("event.updated", "A LIVE event changed.", {"event": "the event"}, "public", public={"event": PUBLIC_EVENT}),
    EventSpec("event.deleted", "A LIVE event was deleted.", {"event_id": "id", "title": "its title"}),
    # replays (lmserver.replay): publishing is the host's decision, so webhook subscribers learn of it
    EventSpec("replay.published", "A past session's replay was published: viewers watch it and buy from it at its public page.",
              {"session_id": "the session", "url": "the public replay page's path (/e/<event>/replay/<session>)", "by": "the staff member"},
              activity="{by} published the replay", label="Replays published", icon="▶"),
    EventSpec("replay.unpublished", "A past session's replay was taken down: its public page answers 404 again.",
              {"session_id": "the session", "by": "the staff member"},
              activity="{by} took the replay down", label="Replays taken down", icon="⏏"),
    EventSpec("event.ready", "An event's start is near: its console is ready (reminder).", {"event": "the event", "starts_in": "seconds"}),
    EventSpec("bag.changed", "An event's shopping bag changed (added, removed, reordered, refreshed).",
              {"action": "add, remove, move, refresh", "product_ids": "the bag in order"}, "public",
              public={"action": None, "product_ids": None}, practice_public=True),
    EventSpec("product.pinned", "A product was pinned while live.", {"product": "the product"}, "public",
              public={"product": PUBLIC_PRODUCT}, activity="Pinned {product.title}", label="Pinned products", icon="📌"),
    EventSpec("product.unpinned", "The pinned product was unpinned.", {"product_id": "id"}, "public", public={"product_id": None},
              activity="The pinned product was unpinned", label="Unpinned products", icon="📌"),
    EventSpec("registration.created", "A viewer registered for an upcoming event.", {"nickname": "name", "registrations": "count"}),
    # viewers' activities
    EventSpec("comment.created", "A comment (or a staff reply, with parent_id) was posted.", {"comment": "the comment"}, "public",
              public={"comment": PUBLIC_COMMENT}, activity="{comment.nickname}: {comment.body}", label="Comments", icon="💬"),
    EventSpec("comment.hidden", "A comment was hidden by staff.", {"comment_id": "id"}, "public", public={"comment_id": None}),
    EventSpec("comment.pinned", "A comment was pinned (one at a time).", {"comment": "the comment"}, "public", public={"comment": PUBLIC_COMMENT},
              activity="Pinned comment: {comment.body}", label="Pinned comments", icon="📌"),
    EventSpec("comment.unpinned", "The pinned comment was unpinned.", {"comment_id": "id"}, "public", public={"comment_id": None}),
    EventSpec("viewer.blocked", "A viewer was blocked (their comments no longer appear).", {"viewer_id": "id", "nickname": "name"}, "staff"),
    EventSpec("viewer.unblocked", "A viewer was unblocked.", {"viewer_id": "id", "nickname": "name"}, "staff"),
    EventSpec("order.created", "A viewer placed an order.", {"order": "the order"}, "staff",
              activity="{order.nickname} bought {order.quantity} × {order.product_title} · {order.amount_cents|money}"
                       "{order.first_time|if: · first order}", label="Orders", icon="🛍️"),
    EventSpec("viewer.followed", "A viewer followed the host.", {"viewer_id": "id", "nickname": "name", "followers": "count"}, "public",
              public={"nickname": None, "followers": None}, activity="{nickname} followed the host", label="Follows", icon="➕"),
    EventSpec("gift.sent", "A viewer sent a gift.", {"viewer_id": "id", "nickname": "name", "gift": "gift name"}, "public",
              public={"nickname": None, "gift": None}, activity="{nickname} sent {gift|gift}", label="Gifts", icon="🎁"),
    # prompter (findings of plugins' prompter rules)
    EventSpec("prompter.suggestion", "A prompter finding (suggestion or LIVE diagnosis) appeared, changed, resolved or was dismissed.",
              FINDING_FIELDS | {"text": "what to do"}),
    EventSpec("prompter.violation", "A prompter finding about content quality appeared, changed, resolved or was dismissed.",
              FINDING_FIELDS | {"text": "what is wrong"}),
    # accounts
    EventSpec("user.created", "A staff account was created.", {"user_id": "id", "name": "name", "role": "role"}),
    EventSpec("stream_key.rotated", "The studio's stream key was rotated.", {}),
    # LIVE console and viewer page (appended)
    EventSpec("comment.held", "A viewer's comment was held back (moderation hook or blocked viewer): staff see it greyed, viewers never.",
              {"comment": "the comment, with hidden_reason"}, "staff",
              activity="{comment.nickname} (held back: {comment.hidden_reason}): {comment.body}", label="Held comments", icon="⏸"),
    EventSpec("product.stock", "A product's stock changed through an order or a release of unpaid orders (0: sold out):"
              " the one public stock figure; every console's bag and every viewer page whose bag lists the product apply it"
              " (a practice order takes real stock, so it is sent too). Any new code path that changes stock publishes it.",
              {"product_id": "id", "stock": "units left"}, "public", persist=False,
              public={"product_id": None, "stock": None}, scope="bag", practice_public=True),
    EventSpec("product.opened", "A viewer opened a product's card or its bag item (counted at most once a minute per viewer and"
              " product; see lmserver/analytics.py): the LIVE Board refreshes.", {"product_id": "id"}, "staff", persist=False),
    EventSpec("order.released", "Reserved orders whose checkout never finished (server restart, checkout timeout) were"
              " cancelled and their units went back to stock; one record per session and reconciliation pass.",
              {"order_ids": "the cancelled orders", "units": "units given back", "reason": "why (also the orders' status_reason)",
               "products": "[{product_id, stock}]: stock after the release"}, "staff"),
    EventSpec("order.status_changed", "An order's status changed (staff, a payment plugin, the checkout; see lmserver.orderstatus);"
              " units_returned > 0 when a cancel or refund put its units back in stock.",
              {"order_id": "the order", "from": "the status it had", "to": "the status it has now", "by": "who: a staff name,"
               " checkout, system or a plugin", "note": "why (may be null)", "product_id": "its product",
               "units_returned": "units back in stock"}, "staff",
              activity="Order #{order_id}: {from} → {to}", label="Order statuses", icon="📦"),
]

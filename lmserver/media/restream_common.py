"""What the restream modules share: a destination, the queue item, backoff, and a worker's state."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from ..db import Database
    from .restream import Restreamer

BACKOFF_FIRST = 2.0
BACKOFF_FACTOR = 1.5
BACKOFF_MAX = 60.0
STALL_SECONDS = 10.0
#: the restream's AAC (one encode for all RTMP destinations and HLS)
AAC_BITRATE = 128_000
AAC_FRAME = 1024

#: an item of a destination's queue: (kind "v"/"a"/"o", t seconds on the restreamer's clock, data, keyframe)
Item = tuple[str, float, bytes, bool]


def backoff_delays(first: float = BACKOFF_FIRST, factor: float = BACKOFF_FACTOR, cap: float = BACKOFF_MAX) -> Iterator[float]:
    """2, 3, 4.5, ... seconds up to ``cap``, each with ±20 % jitter (an endless generator)."""
    delay = first
    while True:
        yield min(cap, delay) * random.uniform(0.8, 1.2)
        delay = min(cap, delay * factor)


@dataclass(frozen=True)
class Destination:
    """A row of ``restream_destinations``: ``secret`` is the RTMP stream key or the WHIP bearer token."""

    id: int
    name: str
    kind: str  # "rtmp" or "whip"
    preset: str
    url: str
    secret: str
    start_with_live: bool



def destination_from_row(row: Any) -> Destination:
    return Destination(row["id"], row["name"], row["kind"], row["preset"], row["url"], row["secret"], bool(row["start_with_live"]))


async def load_destinations(db: "Database") -> list[Destination]:
    """Every stored destination, in the order they were added."""
    return [destination_from_row(r) for r in await db.fetchall("SELECT * FROM restream_destinations ORDER BY id")]


class WorkerState:
    """The state a destination's worker shows (RTMP thread or WHIP task alike)."""

    def __init__(self, dest: Destination, restreamer: "Restreamer") -> None:
        self.dest = dest
        self._r = restreamer
        self.state = "connecting"
        self.error: str | None = None
        self.cause: str | None = None
        self.retry_at: float | None = None
        self.bytes_sent = self.dropped = self.connects = self.attempts = 0
        self.bitrate = 0

    def _set(self, state: str, *, error: str | None = None, cause: str | None = None, retry_at: float | None = None) -> None:
        self.state, self.retry_at = state, retry_at
        if error is not None or state == "live":
            self.error, self.cause = error, cause
        self._r._notify(self)

    def status(self) -> dict[str, Any]:
        retry_in = round(max(0.0, self.retry_at - time.monotonic()), 1) if self.retry_at and self.state == "retrying" else None
        return {"state": self.state, "error": self.error, "cause": self.cause, "retry_in": retry_in,
                "bitrate": self.bitrate if self.state == "live" else 0, "bytes_sent": self.bytes_sent,
                "dropped": self.dropped, "connects": self.connects, "attempts": self.attempts}

"""Small value types that hooks exchange with the core (see ``hookspecs``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping

from lmserver.bus import Activity


@dataclass(frozen=True)
class Panel:
    """A console panel or viewer widget contributed by a plugin."""

    id: str
    title: str
    template: str  # "<plugin name>/<file>.html"
    context: Mapping[str, Any] = field(default_factory=dict)
    order: int = 100


@dataclass(frozen=True)
class CheckoutRequest:
    viewer_id: str
    product_id: int
    quantity: int
    unit_price_cents: int
    currency: str
    event_id: int | None
    session_id: int | None
    practice: bool


@dataclass(frozen=True)
class CheckoutResult:
    status: Literal["placed", "pending_payment"] = "placed"
    redirect_url: str | None = None


PrompterRule = Callable[[Any, Activity], "list[dict[str, Any]] | None | Awaitable[list[dict[str, Any]] | None]"]

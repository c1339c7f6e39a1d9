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
    #: the reserved order's id (a payment plugin passes it to the provider, then marks it paid with
    #: ``lmserver.api.set_order_status``)
    order_id: int | None = None


@dataclass(frozen=True)
class CheckoutResult:
    status: Literal["placed", "pending_payment"] = "placed"
    redirect_url: str | None = None


PrompterRule = Callable[[Any, Activity], "list[dict[str, Any]] | None | Awaitable[list[dict[str, Any]] | None]"]


@dataclass(frozen=True)
class Action:
    """A named action a plugin offers (``register_actions``; see :mod:`lmserver.actions`).

    ``name`` is ``"<plugin>.<what>"`` (``"poll.start"``): other plugins name it, never import it;
    ``label`` is the button's text; ``permission`` (a declared one) is what a staff member needs to run it;
    ``run(app, params, user)`` (may be a coroutine) does it with the caller's ``params`` (a dict) and
    answers a dict whose ``text`` says what was done, or raises an :class:`lmserver.api.ApiError` whose
    reason says why not (409: "no poll is ready for this event: set one up in the Polls panel").
    """

    name: str
    label: str
    permission: str
    run: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class Permission:
    """A staff permission (``register_permissions``): its name, what it allows, the roles that have it.

    ``name`` is ``"<area>.<verb>"`` (``"catalog.edit"``); ``roles`` are the roles that hold it by
    default (the owner holds every permission whatever ``roles`` says). The settings page and the
    README's role table are generated from these.
    """

    name: str
    description: str
    roles: tuple[str, ...] = ("owner",)


@dataclass(frozen=True)
class OrderDraft:
    """An order on its way through the order writer (``order_price``, ``reserve_order``).

    ``order_id`` is None for ``order_price`` (asked before the row exists) and the new order's id for
    ``reserve_order``; ``unit_price_cents`` is the catalog price for ``order_price`` and the price the
    order is recorded at for ``reserve_order``. ``stock_left`` is the product's stock after this order's
    units were taken (a plugin that sets units aside compares it with what it set aside). ``practice``: the
    order belongs to a practice session; it takes nothing from stock (``stock_left`` is the stock as it
    was), and a plugin takes nothing from stock for it either. ``offer`` is what
    the buyer said they were accepting (the optional ``offer`` field of the order request, e.g.
    ``"<plugin>:<id>"``), None for a plain buy: a plugin refuses an order naming its offer once that offer is over.
    """

    viewer_id: str
    product_id: int
    quantity: int
    unit_price_cents: int
    currency: str
    event_id: int | None
    session_id: int | None
    practice: bool
    order_id: int | None = None
    stock_left: int | None = None
    offer: str | None = None


@dataclass(frozen=True)
class Figure:
    """A named figure of a session (``session_figures``): ``Figure("polls_run", "Polls run", 2)``.

    ``name`` is a stable key (JSON, tests); ``label`` is what people read; ``order`` sorts figures.
    """

    name: str
    label: str
    value: int | float | str
    order: int = 100


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the home page's "Checklist for success" (``home_checklist``)."""

    key: str
    label: str
    done: bool
    detail: str = ""
    href: str = "/"
    order: int = 100


@dataclass(frozen=True)
class MenuLink:
    """A link in the staff pages' main menu (``menu_links``)."""

    label: str
    href: str
    order: int = 100


@dataclass(frozen=True)
class Timer:
    """A persisted timer of the scheduler (``lmserver.api.schedule_at``): what fires, when, with what.

    ``key`` is unique (setting a timer with a key that is pending replaces it); ``handler`` names a
    callable registered through ``register_timers``; ``payload`` is any JSON value; ``due_at`` is UNIX
    seconds (wall clock).
    """

    key: str
    handler: str
    payload: Any
    due_at: float


TimerHandler = Callable[[Any, Timer], "None | Awaitable[None]"]

"""The core's own hook implementations, registered ``trylast`` so any real plugin can override them."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .types import CheckoutRequest, CheckoutResult, Permission

#: the core's staff permissions (owner holds every permission whatever its roles say)
CORE_PERMISSIONS: list[Permission] = [
    Permission("accounts.manage", "create and remove staff accounts", ("owner",)),
    Permission("settings.manage", "studio settings and the stream key", ("owner",)),
    Permission("show.run", "run the show: go live, end, practice, pin products, edit events", ("owner", "moderator")),
    Permission("comments.moderate", "moderate comments: reply, pin, hide, block viewers", ("owner", "moderator")),
    Permission("catalog.edit", "the catalog and the shopping bags", ("owner", "moderator", "assistant")),
    Permission("console.view", "open the console, previews and read-only pages", ("owner", "moderator", "assistant")),
    Permission("orders.view", "the Orders pages: orders with the buyers' names, e-mails and shipping addresses, packing lists,"
               " CSV exports", ("owner", "moderator", "assistant")),
    Permission("orders.manage", "change orders' statuses (paid, shipped, delivered, cancelled, refunded)", ("owner", "moderator")),
]


@hookimpl(trylast=True)
def register_permissions() -> list[Permission]:
    return CORE_PERMISSIONS


@hookimpl(trylast=True)
def checkout(app: Any, request: CheckoutRequest) -> CheckoutResult:
    """Default checkout: record the order as placed (no payment step)."""
    return CheckoutResult(status="placed")


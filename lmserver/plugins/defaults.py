"""The core's own hook implementations, registered ``trylast`` so any real plugin can override them."""

from __future__ import annotations

from typing import Any

from .hookspecs import hookimpl
from .types import CheckoutRequest, CheckoutResult


@hookimpl(trylast=True)
def checkout(app: Any, request: CheckoutRequest) -> CheckoutResult:
    """Default checkout: record the order as placed (no payment step)."""
    return CheckoutResult(status="placed")

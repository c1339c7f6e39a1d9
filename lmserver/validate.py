"""Small validators shared by the JSON endpoints; each raises BadRequest naming the field."""

from __future__ import annotations

from typing import Any, Iterable

from .errors import BadRequest


def reject_unknown(data: dict[str, Any], known: Iterable[str], what: str) -> None:
    unknown = set(data) - set(known)
    if unknown:
        raise BadRequest(f"unknown {what} fields {sorted(unknown)}; allowed: {sorted(known)}")


def title(data: dict[str, Any], *, max_len: int, field: str = "title") -> str:
    value = str(data.get(field) or "").strip()
    if not 1 <= len(value) <= max_len:
        raise BadRequest(f"'{field}' is required: 1 to {max_len} characters")
    return value


def description(data: dict[str, Any], *, max_len: int = 5000, field: str = "description") -> str:
    value = str(data[field] or "")
    if len(value) > max_len:
        raise BadRequest(f"'{field}' is too long: at most {max_len} characters")
    return value

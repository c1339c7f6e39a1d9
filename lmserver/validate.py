"""The validation layer at the edge: every number, id, text and time that comes in goes through here.

Each helper either returns a clean Python value or raises :class:`~lmserver.errors.BadRequest` (404
:class:`~lmserver.errors.NotFound` for a path id) whose message names the field and says what to send.
The rules, the same everywhere:

- JSON bodies (:func:`json_body`, :func:`loads`): an object; no ``NaN``/``Infinity`` and no number that
  does not fit in a signed 64-bit integer or a finite float; no lone UTF-16 surrogate (``"\\ud800"``) in
  any string or key, since it cannot be stored or sent back as UTF-8.
- ids and counts (:func:`integer`, :func:`path_int`, :func:`query_int`): a JSON integer (not ``true``),
  a float without a fraction, or a string of ASCII digits (``"²"`` and ``"١٢"`` are not numbers here);
  between 0 and 2^63-1 unless the caller says otherwise (SQLite's INTEGER is 64 bits).
- text (:func:`text`): a string, never an object or a list.
- times (:func:`timestamp`): UNIX seconds or ISO 8601, between 2000-01-01 and 2100-01-01 UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, Iterable, Sequence

from aiohttp import web

from .errors import BadRequest, NotFound, UnsupportedMediaType

#: the largest id/count SQLite can store (signed 64-bit INTEGER)
MAX_INT = 2**63 - 1
#: the range of accepted times: 2000-01-01T00:00:00Z .. 2100-01-01T00:00:00Z (UNIX seconds)
TIME_MIN = 946_684_800.0
TIME_MAX = 4_102_444_800.0
TIME_HINT = "ISO 8601 such as 2026-12-01T19:00:00Z, or UNIX seconds"

_SURROGATE = re.compile("[\ud800-\udfff]")
_MISSING: Any = object()


# --------------------------------------------------------------------------------------------- JSON


def _no_constant(name: str) -> Any:
    raise BadRequest(f"the body is not valid JSON: {name} is not a number JSON allows; send a finite number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the body holds the number {text[:40]}, which is too large: send a finite number")
    return value


def _int64(text: str) -> int:
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise BadRequest(f"the body holds the number {text[:40]}…, which does not fit in 64 bits: at most {MAX_INT}")
    return value


def has_surrogate(text: str) -> bool:
    """True when ``text`` holds a lone UTF-16 surrogate (not encodable as UTF-8)."""
    return _SURROGATE.search(text) is not None


def check_strings(value: Any, what: str = "the body") -> None:
    """Refuse a lone surrogate in any string or key of a parsed JSON document (iterative: no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if has_surrogate(item):
                raise BadRequest(f"{what} holds text that is not valid Unicode (a lone surrogate such as \\ud800): send UTF-8 text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(text: str | bytes, what: str = "the body") -> Any:
    """``json.loads`` with the edge's rules: finite numbers, 64-bit integers, valid Unicode text."""
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, parse_int=_int64)
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise BadRequest(f"{what} is not valid JSON: {exc}") from None
    check_strings(data, what)
    return data


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or a 400/415 that says what was wrong."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"send JSON with Content-Type: application/json (got {request.content_type or 'none'})")
    raw = await request.read()
    try:
        text = raw.decode(request.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise BadRequest("the body is not valid JSON: it is not UTF-8 text") from None
    data = loads(text)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


# --------------------------------------------------------------------------------------------- fields


def reject_unknown(data: dict[str, Any], known: Iterable[str], what: str) -> None:
    unknown = set(data) - set(known)
    if unknown:
        raise BadRequest(f"unknown {what} fields {sorted(unknown)}; allowed: {sorted(known)}")


def text(data: dict[str, Any], field: str, *, max_len: int, min_len: int = 0, required: bool = False, strip: bool = True,
         default: str = "", label: str | None = None) -> str:
    """A text field: a JSON string (``null`` or absent → ``default``); never an object, list or number."""
    name = label or f"'{field}'"
    value = data.get(field)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"{name} must be text, got {type(value).__name__}")
    value = str(value)
    if has_surrogate(value):
        raise BadRequest(f"{name} is not valid Unicode text (a lone surrogate): send UTF-8 text")
    if strip:
        value = value.strip()
    if required and not value:
        raise BadRequest(f"{name} is required: 1 to {max_len} characters")
    if value and len(value) < min_len:
        raise BadRequest(f"{name} is too short: at least {min_len} characters")
    if len(value) > max_len:
        raise BadRequest(f"{name} is too long: at most {max_len} characters")
    return value


def title(data: dict[str, Any], *, max_len: int, field: str = "title") -> str:
    return text(data, field, max_len=max_len, required=True)


def description(data: dict[str, Any], *, max_len: int = 5000, field: str = "description") -> str:
    return text(data, field, max_len=max_len, strip=False)


#: the longest talking-points script of a product or run-of-show script of an event (staff-only, issue 16)
SCRIPT_MAX = 4000


def script(data: dict[str, Any], field: str = "script") -> str:
    """A staff-only script (talking points): text of at most :data:`SCRIPT_MAX` characters, line breaks kept."""
    value = data.get(field)
    if isinstance(value, str) and len(value.strip()) > SCRIPT_MAX:
        raise BadRequest(f"'{field}' is too long: at most {SCRIPT_MAX} characters (this one has {len(value.strip())});"
                         " keep the talking points short or split them")
    return text(data, field, max_len=SCRIPT_MAX).replace("\r\n", "\n")


def ascii_int(raw: str) -> int | None:
    """``raw`` as a non-negative int when it is 1–19 ASCII digits and fits in 64 bits, else None."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if value <= MAX_INT else None


def as_int(value: Any, field: str, *, min: int | None = 0, max: int = MAX_INT, label: str | None = None) -> int:
    """An integer from JSON: int (not bool), float without a fraction, or a string of ASCII digits (optional ``-``)."""
    name = label or f"'{field}'"
    bounds = f"a whole number from {min} to {max}" if min is not None else f"a whole number up to {max}"
    out: int | None = None
    if isinstance(value, bool):
        out = None
    elif isinstance(value, int):
        out = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        out = int(value)
    elif isinstance(value, str):
        s = value.strip()
        neg = s.startswith("-")
        n = ascii_int(s[1:] if neg else s)
        out = None if n is None else (-n if neg else n)
    if out is None:
        shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
        raise BadRequest(f"{name} must be {bounds}, got {shown[:60]}")
    if (min is not None and out < min) or out > max:
        raise BadRequest(f"{name} must be {bounds}, got {out}")
    return out


def integer(data: dict[str, Any], field: str, *, min: int | None = 0, max: int = MAX_INT, required: bool = True,
            default: int | None = None, label: str | None = None) -> int | None:
    """An integer field (see :func:`as_int`); absent or null → ``default`` unless ``required``."""
    value = data.get(field)
    if value is None:
        if required:
            raise BadRequest(f"{label or repr(field)} is required: a whole number")
        return default
    return as_int(value, field, min=min, max=max, label=label)


def number(data: dict[str, Any], field: str, *, min: float | None = None, max: float | None = None, required: bool = True,
           default: float | None = None) -> float | None:
    """A finite number field (int or float, not bool)."""
    value = data.get(field)
    if value is None:
        if required:
            raise BadRequest(f"'{field}' is required: a number")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"'{field}' must be a finite number, got {value!r:.60}")
    if (min is not None and value < min) or (max is not None and value > max):
        raise BadRequest(f"'{field}' must be from {min} to {max}, got {value}")
    return float(value)


def as_time(value: Any, field: str = "starts_at") -> float:
    """UNIX seconds, or ISO 8601 (``2026-12-01T19:00:00+01:00``; without an offset it is UTC), in 2000..2100."""
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise BadRequest(f"'{field}' must be a time: {TIME_HINT}")
    if isinstance(value, (int, float)):
        try:
            ts = float(value)
        except OverflowError:
            ts = math.inf
    else:
        raw = str(value or "").strip()
        if not raw:
            raise BadRequest(f"'{field}' is required: {TIME_HINT}")
        if has_surrogate(raw) or not raw.isascii():
            raise BadRequest(f"'{field}' must be {TIME_HINT}, got {raw[:40]!r}")
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadRequest(f"'{field}' must be {TIME_HINT}, got {raw[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        try:
            ts = parsed.timestamp()
        except (OverflowError, ValueError):
            ts = math.inf
    if not (math.isfinite(ts) and TIME_MIN <= ts < TIME_MAX):
        raise BadRequest(f"'{field}' must be between 2000-01-01 and 2100-01-01 UTC ({TIME_HINT}), got {value!r:.40}")
    return ts


def timestamp(data: dict[str, Any], field: str, *, required: bool = True) -> float | None:
    """A time field (see :func:`as_time`)."""
    value = data.get(field)
    if value is None and not required:
        return None
    return as_time(value, field)


def boolean(data: dict[str, Any], field: str, *, required: bool = True, default: bool | None = None) -> bool | None:
    """``true`` or ``false`` (not 0/1, not "yes")."""
    value = data.get(field)
    if value is None and not required:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{field}' must be true or false")
    return value


def choice(data: dict[str, Any], field: str, options: Sequence[str], *, default: str | None = None) -> str:
    """One of ``options`` (absent or null → ``default``, when given)."""
    value = data.get(field)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or value not in options:
        raise BadRequest(f"'{field}' must be one of {', '.join(options)}")
    return value


def int_list(data: dict[str, Any], field: str, *, max_items: int = 1000) -> list[int]:
    """A list of ids (each as :func:`as_int`)."""
    value = data.get(field)
    if not isinstance(value, list):
        raise BadRequest(f"'{field}' must be a list of ids")
    if len(value) > max_items:
        raise BadRequest(f"'{field}' has too many items: at most {max_items}")
    return [as_int(v, field) for v in value]


# --------------------------------------------------------------------------------------------- path and query


def path_int(request: web.Request, name: str = "id") -> int:
    """A ``{name}`` path segment as an id: ASCII digits below 2^63, else 404 with a reason."""
    raw = request.match_info[name]
    value = ascii_int(raw)
    if value is None:
        raise NotFound(f"nothing here: {request.path} ({name} must be a number from 0 to {MAX_INT})")
    return value


def query_int(request: web.Request, name: str, *, default: int | None = None, min: int = 0, max: int = MAX_INT,
              clamp: bool = False) -> int | None:
    """A query-string integer: ASCII digits below 2^63 (absent → ``default``); ``clamp`` bounds it instead of refusing."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    neg = raw.startswith("-")
    value = ascii_int(raw[1:] if neg else raw)
    if value is None:
        raise BadRequest(f"the query parameter {name!r} must be a whole number from {min} to {max}, got {raw[:40]!r}")
    value = -value if neg else value
    if clamp:
        return builtins_max(builtins_min(value, max), min)
    if not min <= value <= max:
        raise BadRequest(f"the query parameter {name!r} must be a whole number from {min} to {max}, got {value}")
    return value


def query_text(request: web.Request, name: str, default: str = "", *, max_len: int = 200) -> str:
    """A query-string text parameter (valid Unicode, bounded length)."""
    raw = request.query.get(name, default)
    if has_surrogate(raw):
        raise BadRequest(f"the query parameter {name!r} is not valid UTF-8 text")
    if len(raw) > max_len:
        raise BadRequest(f"the query parameter {name!r} is too long: at most {max_len} characters")
    return raw


builtins_min, builtins_max = min, max

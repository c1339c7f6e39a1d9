"""API errors: one exception family, one JSON shape.

Raise any of these from a handler; the error middleware (``lmserver.app``) answers
``{"error": {"status": N, "message": "..."}}`` for ``/api/``, ``/whip`` and ``/whep`` paths and renders
the error page for everything else. ``details`` (e.g. a CSV import's per-row report) is added to the
JSON as ``error.details`` when present.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, *, status: int | None = None, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class TooManyRequests(ApiError):
    status = 429


class ServiceUnavailable(ApiError):
    status = 503

"""Background tasks that live as long as the app (used inside ``cleanup_ctx`` functions)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Coroutine


@contextlib.asynccontextmanager
async def background(coro: Coroutine[Any, Any, Any], name: str) -> AsyncIterator["asyncio.Task[Any]"]:
    """Run ``coro`` as a task for the duration of the ``async with``; cancel and await it on the way out."""
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

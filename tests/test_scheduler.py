"""The persisted scheduler: timers fire at their wall-clock time, survive restarts, fire at least once."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest

from lmserver import api
from lmserver.appkeys import DB
from lmserver.db import DB_FILENAME
from lmserver.plugins import hookimpl


class Ringer:
    """A plugin with one timer handler that records every call; optionally hangs on its first call."""

    PLUGIN_NAME = "ringer"

    def __init__(self, hang_first: bool = False) -> None:
        self.calls: list[tuple[str, Any, float, float]] = []
        self.fired: asyncio.Queue[str] = asyncio.Queue()
        self.hang_first = hang_first
        self.started = asyncio.Event()

    async def ring(self, app: Any, timer: Any) -> None:
        self.started.set()
        if self.hang_first:
            self.hang_first = False
            await asyncio.Event().wait()  # until the server stops under it
        if timer.payload == "fail":
            raise RuntimeError("the ringer is broken")
        self.calls.append((timer.key, timer.payload, timer.due_at, time.time()))
        self.fired.put_nowait(timer.key)

    @hookimpl
    def register_timers(self) -> dict[str, Any]:
        return {"ringer.ring": self.ring}


async def test_a_timer_fires_at_its_time_and_only_once(aiohttp_client: Any, app_factory: Any) -> None:
    ringer = Ringer()
    client = await aiohttp_client(app_factory(plugins=(ringer,)))
    app = client.app
    due = time.time() + 0.3
    timer = await api.schedule_at(app, due, "ringer:soon", "ringer.ring", {"n": 1})
    assert (timer.key, timer.handler, timer.payload, timer.due_at) == ("ringer:soon", "ringer.ring", {"n": 1}, due)
    assert await asyncio.wait_for(ringer.fired.get(), 10) == "ringer:soon"
    key, payload, due_at, fired_at = ringer.calls[0]
    assert payload == {"n": 1} and due_at == due and fired_at >= due  # never early
    await fire_sentinel(app, ringer, "zz:sentinel")
    assert await api.pending_timers(app, "ringer:soon") == []
    assert [c[0] for c in ringer.calls] == ["ringer:soon", "zz:sentinel"]


async def test_timers_survive_a_restart(aiohttp_client: Any, app_factory: Any, data_dir: Any) -> None:
    """A restart in the middle: one timer's time passes while the server is down, another's is still ahead."""
    first = Ringer()
    client = await aiohttp_client(app_factory(plugins=(first,)))
    now = time.time()
    await api.schedule_at(client.app, now + 3600, "ringer:countdown", "ringer.ring", {"what": "draw"})
    await api.schedule_at(client.app, now + 7200, "ringer:later", "ringer.ring", None)
    await api.schedule_at(client.app, now + 3600, "ringer:cancelled", "ringer.ring", None)
    assert await api.cancel_timer(client.app, "ringer:cancelled") is True
    assert await api.cancel_timer(client.app, "ringer:cancelled") is False
    await client.close()  # the server stops with two timers pending
    assert first.calls == []

    # while it is down, the countdown's time passes (moved back instead of waiting an hour)
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("UPDATE timers SET due_at = ? WHERE key = 'ringer:countdown'", (now - 5,))
    conn.close()

    second = Ringer()
    client = await aiohttp_client(app_factory(plugins=(second,)))
    assert await asyncio.wait_for(second.fired.get(), 10) == "ringer:countdown"  # fired at startup
    assert second.calls[0][1] == {"what": "draw"} and second.calls[0][2] == now - 5
    await fire_sentinel(client.app, second, "zz:second")  # timers fire in order: the countdown's row is gone now
    assert [(t.key, t.due_at) for t in await api.pending_timers(client.app, "ringer:")] == [("ringer:later", now + 7200)]
    await client.close()

    third = Ringer()
    client = await aiohttp_client(app_factory(plugins=(third,)))
    await fire_sentinel(client.app, third, "zz:third")  # anything due before it (a leftover countdown) would fire first
    assert "ringer:countdown" not in [c[0] for c in third.calls]  # the fired timer does not fire again
    assert [t.key for t in await api.pending_timers(client.app, "ringer:")] == ["ringer:later"]


async def fire_sentinel(app: Any, ringer: Ringer, key: str) -> None:
    """Set a timer due now and wait until it fired: every timer due before it has fired (and been deleted) by then."""
    await api.schedule_at(app, time.time(), key, "ringer.ring")
    while await asyncio.wait_for(ringer.fired.get(), 10) != key:
        pass


async def test_a_handler_interrupted_by_a_stop_fires_again_at_the_next_start(aiohttp_client: Any, app_factory: Any) -> None:
    """At least once: the row goes only after the handler returned."""
    first = Ringer(hang_first=True)
    client = await aiohttp_client(app_factory(plugins=(first,)))
    await api.schedule_at(client.app, time.time() - 1, "ringer:once", "ringer.ring", 7)
    await asyncio.wait_for(first.started.wait(), 10)
    await client.close()  # stops while the handler hangs
    assert first.calls == []
    second = Ringer()
    client = await aiohttp_client(app_factory(plugins=(second,)))
    assert await asyncio.wait_for(second.fired.get(), 10) == "ringer:once"


async def test_a_failing_handler_is_logged_and_dropped(aiohttp_client: Any, app_factory: Any, caplog: Any) -> None:
    ringer = Ringer()
    client = await aiohttp_client(app_factory(plugins=(ringer,)))
    due = time.time() - 1
    await api.schedule_at(client.app, due, "ringer:a-broken", "ringer.ring", "fail")
    await api.schedule_at(client.app, due, "ringer:b-fine", "ringer.ring", "ok")
    assert await asyncio.wait_for(ringer.fired.get(), 10) == "ringer:b-fine"  # timers fire one at a time, in order
    assert await api.pending_timers(client.app, "ringer:a") == []
    assert "timer ringer:a-broken (handler ringer.ring of plugin ringer) failed; it is dropped" in caplog.text


async def test_bad_timers_are_refused(aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=(Ringer(),)))
    app = client.app
    with pytest.raises(ValueError, match="no timer handler named 'ringer.typo'"):
        await api.schedule_at(app, time.time(), "k", "ringer.typo")
    with pytest.raises(ValueError, match="must be JSON"):
        await api.schedule_at(app, time.time(), "k", "ringer.ring", {"when": object()})
    with pytest.raises(ValueError, match="aware datetime"):
        import datetime as dt

        await api.schedule_at(app, dt.datetime.now(), "k", "ringer.ring")
    with pytest.raises(ValueError, match="a timer key is a string"):
        await api.schedule_at(app, time.time(), "", "ringer.ring")
    assert await api.pending_timers(app) == []


async def test_a_timer_of_an_absent_plugin_waits_for_it(aiohttp_client: Any, app_factory: Any, data_dir: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=(Ringer(),)))
    await api.schedule_at(client.app, time.time() + 3600, "ringer:orphan", "ringer.ring")
    await client.close()
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    with conn:
        conn.execute("UPDATE timers SET due_at = due_at - 7200")
    conn.close()
    client = await aiohttp_client(app_factory())  # the plugin is gone: its timer is kept, untouched
    assert await client.app[DB].fetchval("SELECT COUNT(*) FROM timers") == 1
    await client.close()
    ringer = Ringer()
    client = await aiohttp_client(app_factory(plugins=(ringer,)))  # back: it fires
    assert await asyncio.wait_for(ringer.fired.get(), 10) == "ringer:orphan"

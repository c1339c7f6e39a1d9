"""Schemathesis over ``/api/openapi.json`` against a real server on loopback: no input answers 5xx.

The server runs in a thread of its own (``web.AppRunner`` on 127.0.0.1, a free port, the built-in
plugins loaded) with a few events, products and a live session, so ids in the generated requests
sometimes exist. Every documented operation gets schema-valid and schema-violating examples
(Schemathesis' positive and negative modes), once anonymously and once as the owner (session cookie
and ``X-CSRF-Token``). Every answer must be below 500, and every error answer must be JSON of the
one error shape ``{"error": {"status", "message"}}``.

Bounded and repeatable: a fixed number of examples per operation and mode, ``derandomize=True``
(the seed comes from the test itself), no example database.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from aiohttp import web

pytest.importorskip("schemathesis")
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from lmserver import auth  # noqa: E402
from lmserver.app import create_app  # noqa: E402
from lmserver.appkeys import DB  # noqa: E402
from lmserver.config import load_config  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402
from tests.livehelpers import go_live, make_event, make_product  # noqa: E402

PROFILE = os.environ.get("LMSERVER_FUZZ_PROFILE")  # a file to append each operation's time to
EXAMPLES = 4  # per operation and generation mode, each sent anonymously and as the owner: about 1,000 requests

#: operations the fuzzer must not call, and why
EXCLUDED = {
    # it opens any device path or URL the body names with FFmpeg: a fuzzer must not make the server read
    # files or dial out (the capture allow-list has its own tests)
    ("POST", "/api/media/capture"),
}


class Server:
    """The app on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, data_dir: Path) -> None:
        cfg = load_config(None, env={}, overrides={"server": {"data_dir": str(data_dir)},
                                                   "media": {"ice_host_addresses": ["127.0.0.1"]},
                                                   "live": {"comment_rate_seconds": 0}})
        self.app = create_app(cfg, load_entrypoints=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.runner = web.AppRunner(self.app)
        self.base = ""

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        app = self.app
        await auth.create_user(app[DB], "fuzzowner", "owner", PASSWORD)
        for n in range(3):
            eid = await make_event(app, title=f"Fuzz {n}", starts_in=-60 if n == 0 else 3600 * n)
            await make_product(app, title=f"Item {n}", event_id=eid)
        await go_live(app, 1)
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> "Server":
        self.thread.start()
        self.base = self.run(self._start())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("fuzz") / "data") as srv:
        yield srv


def _owner_headers(base: str) -> dict[str, str]:
    resp = requests.post(f"{base}/api/login", json={"name": "fuzzowner", "password": PASSWORD}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {"Cookie": f"{auth.SESSION_COOKIE}={resp.cookies[auth.SESSION_COOKIE]}", "X-CSRF-Token": resp.json()["csrf_token"]}


def _check(response: Any, label: str, identity: str, failures: list[str]) -> None:
    where = f"{identity} {label}: {response.request.method} {response.request.url[:200]} body={str(response.request.body)[:200]}"
    if response.status_code >= 500:
        failures.append(f"{where} -> {response.status_code} {response.text[:300]}")
    elif response.status_code >= 400:
        try:
            error = response.json()["error"]
            assert isinstance(error["message"], str) and error["status"] == response.status_code
        except (ValueError, KeyError, TypeError, AssertionError):
            failures.append(f"{where} -> {response.status_code} without the JSON error shape: {response.text[:200]}")


def test_no_input_answers_5xx(server: Server) -> None:
    spec = requests.get(f"{server.base}/api/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    identities = {"anonymous": {}, "owner": _owner_headers(server.base)}
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in EXCLUDED:
            continue
        op_started = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal calls
                for identity, headers in identities.items():  # one example, sent by each identity
                    calls += 1
                    response = case.call(base_url=server.base, headers=headers, timeout=30, allow_redirects=False)
                    _check(response, operation.label, identity, failures)

            try:
                run()
            except Unsatisfiable:  # negative mode on an operation with nothing to get wrong (no parameters, no body)
                assert mode is GenerationMode.NEGATIVE, operation.label
        if PROFILE:
            with open(PROFILE, "a") as log:
                print(f"{time.monotonic() - op_started:6.1f} s {operation.label}", file=log)
    # the owner's session survived the whole run (nothing the fuzzer sent logged it out)
    assert requests.get(f"{server.base}/api/me", headers=identities["owner"], timeout=30).status_code == 200
    print(f"fuzz: {calls} requests in {time.monotonic() - started:.0f} s")
    assert not failures, f"{len(failures)} of {calls} answers broke the rules:\n" + "\n".join(dict.fromkeys(failures))

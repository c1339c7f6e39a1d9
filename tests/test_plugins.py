"""The plugin system: documented hookspecs, isolation of failing plugins, entry points, disabling."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web

from lmserver.appkeys import BUS, CONFIG, DB, PM
from lmserver.busevents import EventSpec
from lmserver.plugins import hookimpl, hookspecs
from lmserver.plugins.manager import build_plugin_manager
from tests.conftest import login

FIXTURE = Path(__file__).parent / "fixtures" / "hello_plugin"


def test_every_hookspec_is_documented() -> None:
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "lmserver_spec")]
    assert len(specs) >= 12
    for fn in specs:
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 40, f"hookspec {fn.__name__} needs a docstring saying when it is called and what it returns"


def test_misspelled_hook_is_an_error(make_config: Any) -> None:
    class Typo:
        @hookimpl
        def register_rutes(self, app: Any) -> list[Any]:
            return []

    with pytest.raises(Exception, match="register_rutes"):
        build_plugin_manager(make_config(), [Typo()], load_entrypoints=False)


class Boom:
    """A plugin that fails everywhere it can."""

    PLUGIN_NAME = "boom"

    @hookimpl
    def register_routes(self, app: Any) -> list[Any]:
        raise RuntimeError("boom in routes")

    @hookimpl
    def on_bus_event(self, app: Any, event: Any) -> None:
        raise RuntimeError("boom in on_bus_event")

    @hookimpl
    async def startup(self, app: Any) -> None:
        raise RuntimeError("boom in startup")


class Good:
    PLUGIN_NAME = "good"

    def __init__(self) -> None:
        self.events: list[str] = []
        self.violation = asyncio.Event()

    @hookimpl
    def register_routes(self, app: Any) -> list[Any]:
        async def ping(request: web.Request) -> web.Response:
            return web.Response(text="pong")

        return [web.get("/p/good/ping", ping)]

    @hookimpl
    async def on_bus_event(self, app: Any, event: Any) -> None:
        self.events.append(event.name)
        if event.name == "prompter.violation":
            self.violation.set()

    @hookimpl
    def prompter_rules(self, app: Any) -> list[Any]:
        def rule(app: Any, event: Any) -> list[dict[str, str]] | None:
            if event.name == "comment.created" and "free" in event.data["comment"].get("body", ""):
                return [{"kind": "violation", "text": "Do not promise free items", "level": "warning"}]
            return None

        return [rule]


async def test_failing_plugin_is_isolated(aiohttp_client: Any, app_factory: Any, caplog: Any) -> None:
    good = Good()
    client = await aiohttp_client(app_factory(plugins=(Boom(), good)))
    assert (await client.get("/p/good/ping")).status == 200
    assert (await client.get("/healthz")).status == 200
    await client.app[BUS].publish("comment.created", {"comment": {"body": "everything free"}})
    await asyncio.wait_for(good.violation.wait(), 10)  # plugins are called in background tasks
    assert "comment.created" in good.events and "prompter.violation" in good.events
    text = caplog.text
    assert "plugin boom failed in hook register_routes" in text
    assert "plugin boom failed in hook startup" in text
    assert "plugin boom failed in hook on_bus_event" in text
    assert client.app[PM].failures >= 3


async def test_no_plugins_at_all(client: Any) -> None:
    resp = await client.get("/-/plugins")
    assert await resp.json() == []


@pytest.fixture(scope="module")
def installed_hello(tmp_path_factory: Any) -> Iterator[Path]:
    """`pip install` the fixture plugin (a real wheel build) into a private directory put on sys.path."""
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "hello_plugin"
    shutil.copytree(FIXTURE, source)  # building writes build/ and *.egg-info beside the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True, timeout=300)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("lmserver_hello", None)


async def test_installed_plugin_appears_and_answers(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    plugins = {p["name"]: p for p in await (await client.get("/-/plugins")).json()}
    assert "hello" in plugins
    assert plugins["hello"]["version"] == "1.2.3"
    assert "register_routes" in plugins["hello"]["hooks"]
    resp = await client.get("/api/plugins/hello")
    assert resp.status == 200 and (await resp.json())["visits"] == 1  # its own migration ran
    assert (await client.get(plugins["hello"]["static"] + "hello.txt")).status == 200
    # its template is reachable under its prefix
    import aiohttp_jinja2

    assert "Hello from a plugin template" in aiohttp_jinja2.get_env(client.app).get_template("hello/hello.html").render()
    # its documented route is in the OpenAPI document
    spec = await (await client.get("/api/openapi.json")).json()
    assert spec["paths"]["/api/plugins/hello"]["get"]["summary"].startswith("Say hello")


async def test_disabled_plugin_is_gone(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True, plugins={"disabled": ["hello"]}))
    names = [p["name"] for p in await (await client.get("/-/plugins")).json()]
    assert "hello" not in names
    assert (await client.get("/api/plugins/hello")).status == 404


async def test_installed_plugin_widget_and_shutdown(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event

    client = await aiohttp_client(app_factory(load_entrypoints=True))
    app = client.app
    eid = await make_event(app, "Cosy knits")
    await go_live(app, eid)
    slug = await app[DB].fetchval("SELECT slug FROM events WHERE id = ?", (eid,))
    page = await (await client.get(f"/e/{slug}")).text()
    assert '<p class="hello-widget">Hello viewers of Cosy knits</p>' in page  # viewer_widgets, rendered in the page
    data_dir = app[CONFIG].data_dir
    await client.close()
    assert (data_dir / "hello-shutdown.txt").read_text() == "bye"  # shutdown ran when the server stopped


async def test_plugin_config_table(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True, plugins={"hello": {"greeting": "bonjour"}}))
    assert (await (await client.get("/api/plugins/hello")).json())["greeting"] == "bonjour"


async def test_plugin_bus_event_is_declared(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    assert isinstance(client.app[BUS].specs["hello.said"], EventSpec)
    csrf = await login(client)
    async with client.ws_connect("/ws/console") as ws:
        await ws.receive_json(timeout=5)
        await client.get("/api/plugins/hello", headers={"X-CSRF-Token": csrf})
        msg = await ws.receive_json(timeout=5)
    assert msg["name"] == "hello.said" and msg["data"] == {"visits": 1}


@pytest.fixture
def broken_plugin_installed(tmp_path: Path) -> Iterator[None]:
    """An installed distribution (dist-info with an entry point) whose module raises on import."""
    site = tmp_path / "broken-site"
    (site / "lmserver_broken-0.1.dist-info").mkdir(parents=True)
    (site / "lmserver_broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: lmserver-broken\nVersion: 0.1\n")
    (site / "lmserver_broken-0.1.dist-info" / "entry_points.txt").write_text("[lmserver]\nbroken = lmserver_broken\n")
    (site / "lmserver_broken.py").write_text("raise ImportError('this plugin needs a library that is not installed')\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("lmserver_broken", None)


async def test_plugin_that_fails_to_import_is_skipped(broken_plugin_installed: None, aiohttp_client: Any, app_factory: Any,
                                                      caplog: Any) -> None:
    client = await aiohttp_client(app_factory(load_entrypoints=True))
    assert (await client.get("/healthz")).status == 200
    names = [p["name"] for p in await (await client.get("/-/plugins")).json()]
    assert "broken" not in names
    assert "plugin broken failed to load (import or register)" in caplog.text
    assert "needs a library that is not installed" in caplog.text


def test_misspelled_disabled_plugin_is_reported(make_config: Any, caplog: Any) -> None:
    build_plugin_manager(make_config(plugins={"disabled": ["bilboard"]}), [], load_entrypoints=True)
    assert "[plugins] disabled names 'bilboard', but no installed plugin has that name" in caplog.text

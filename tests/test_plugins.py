"""The plugin system: documented hookspecs, isolation of failing plugins, entry points, disabling."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
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
        assert "policy" in doc.lower(), f"hookspec {fn.__name__} must say its failure policy (display, build or money)"
    assert hookspecs.FAIL_CLOSED == {"order_price", "reserve_order", "checkout", "order_cancelled"}


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


# ============================================================================================ the public API


ROOT = Path(__file__).resolve().parent.parent


def _lmserver_imports(source: str, filename: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of an lmserver module other than ``lmserver.api``."""
    import ast

    bad = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            bad += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "lmserver" and a.name != "lmserver.api"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "lmserver":
            if node.module == "lmserver":
                bad += [(node.lineno, f"lmserver.{a.name}") for a in node.names if a.name != "api"]
            elif node.module != "lmserver.api":
                bad.append((node.lineno, node.module))
    return bad


def test_plugins_import_only_the_public_api() -> None:
    """Built-in plugins, the fixture plugin and the README's example import no core module but lmserver.api."""
    from tests.test_readme_plugin import readme_source

    sources = [(p, p.read_text()) for p in sorted((ROOT / "plugins").rglob("*.py"))]
    sources += [(p, p.read_text()) for p in sorted(FIXTURE.rglob("*.py"))]
    sources.append((ROOT / "README.md", readme_source()))
    assert len(sources) >= 7
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}" for path, text in sources
             for line, module in _lmserver_imports(text, str(path))]
    assert found == [], "plugins may import only lmserver.api:\n" + "\n".join(found)


def test_the_import_check_catches_a_core_import() -> None:
    assert _lmserver_imports("from lmserver.live import LiveSession\nfrom lmserver import auth, api\nimport lmserver.db\n"
                             "from lmserver.api import hookimpl\nfrom . import views\n", "x.py") == [
        (1, "lmserver.live"), (2, "lmserver.auth"), (3, "lmserver.db")]


def test_api_names_are_documented() -> None:
    from lmserver import api

    undocumented = [name for name in api.__all__ if not isinstance(getattr(api, name), int)
                    and len(inspect.getdoc(getattr(api, name)) or "") < 20]
    assert undocumented == []
    assert api.Z_BANNER < api.Z_CARD < api.Z_COUNTDOWN < api.Z_ALERT


#: names of built-in plugins (shipped and planned) that the core must never name
PLUGIN_NAMES = re.compile(r"billboard|giveaway|flash[ _-]?sale|shop[ _-]?link|lmserver_plugins\.prompter|plugins/prompter|"
                          r"plugin_config\([^)]*[\"']prompter[\"']", re.I)


def test_the_core_names_no_plugin() -> None:
    """No core Python (lmserver/**.py) and no core script (web/static/js/*.js) names a built-in plugin."""
    builtin = [d.name for d in (ROOT / "plugins").iterdir() if (d / "__init__.py").exists()]
    assert builtin and all(PLUGIN_NAMES.search(name) for name in builtin if name != "prompter")
    files = sorted((ROOT / "lmserver").rglob("*.py")) + sorted((ROOT / "web" / "static" / "js").glob("*.js"))
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1) if PLUGIN_NAMES.search(line)]
    assert found == [], "the core names a plugin (use a hook instead):\n" + "\n".join(found)


def test_the_name_check_catches_plugin_names() -> None:
    for text in ("if name.startswith('giveaway.'):", "PERMISSIONS = {'flashsales.manage': ...}", "FLASH_SALE = 1",
                 "from lmserver_plugins.prompter import x", "'billboards.manage'"):
        assert PLUGIN_NAMES.search(text), text
    for text in ("prompter.suggestion", "the prompter panel", "comment.created"):
        assert not PLUGIN_NAMES.search(text), text


# ============================================================================================ permissions


def _registry_with_builtins(make_config: Any) -> Any:
    import lmserver_plugins.billboard as billboard

    from lmserver import auth

    pm = build_plugin_manager(make_config(), [billboard], load_entrypoints=False)
    return auth.PermissionRegistry(pm.call_lists_sync("register_permissions"))


def test_readme_role_table_is_generated_from_the_registry(make_config: Any) -> None:
    registry = _registry_with_builtins(make_config)
    readme = (ROOT / "README.md").read_text()
    assert registry.markdown() in readme, "regenerate the README's role table:\n" + registry.markdown()
    assert registry.roles("billboards.manage") == ("owner", "moderator", "assistant")  # declared by the billboard plugin
    assert registry.owners["billboards.manage"] == "billboard" and registry.owners["settings.manage"] == "lmserver.defaults"


def test_undeclared_or_conflicting_permissions_are_errors(make_config: Any) -> None:
    from lmserver import auth
    from lmserver.plugins.types import Permission

    registry = _registry_with_builtins(make_config)
    with pytest.raises(KeyError, match="unknown permission 'giveaways.manage'"):
        auth.User(1, "ana", "moderator", registry=registry).can("giveaways.manage")
    assert auth.User(1, "ana", "owner", registry=registry).can("settings.manage")
    assert not auth.User(1, "ana", "moderator", registry=registry).can("settings.manage")

    class Clash:
        PLUGIN_NAME = "clash"

        @hookimpl
        def register_permissions(self) -> list[Any]:
            return [Permission("catalog.edit", "edit everything", ("owner",))]

    with pytest.raises(ValueError, match="'catalog.edit' is declared twice, differently"):
        create = __import__("lmserver.app", fromlist=["create_app"]).create_app
        create(make_config(), plugins=(Clash(),), load_entrypoints=False)


async def test_settings_page_shows_the_generated_role_table(aiohttp_client: Any, app_factory: Any) -> None:
    import lmserver_plugins.billboard as billboard

    client = await aiohttp_client(app_factory(plugins=(billboard,)))
    await login(client, "owner")
    page = await (await client.get("/settings")).text()
    assert "<code>billboards.manage</code> <span class=\"muted\">(billboard plugin)</span>" in page
    assert "<code>settings.manage</code>" in page and "studio settings and the stream key" in page


# ============================================================================================ the fixture plugin's hooks


async def _hello_client(aiohttp_client: Any, app_factory: Any, **sections: Any) -> Any:
    return await aiohttp_client(app_factory(load_entrypoints=True, **sections))


async def test_hook_register_permissions(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event, staff_cookie

    client = await _hello_client(aiohttp_client, app_factory)
    await go_live(client.app, await make_event(client.app))
    moderator, assistant = await staff_cookie(client, "moderator"), await staff_cookie(client, "assistant")
    resp = await client.post("/api/plugins/hello/wave", headers=moderator)
    assert resp.status == 200 and (await resp.json())["waves"] == 1
    resp = await client.post("/api/plugins/hello/wave", headers=assistant)
    assert resp.status == 403 and "'hello.wave' permission" in (await resp.json())["error"]["message"]
    me = await (await client.get("/api/me", headers=moderator)).json()
    assert "hello.wave" in me["permissions"] and "settings.manage" not in me["permissions"]


async def test_hook_menu_links(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import staff_cookie

    client = await _hello_client(aiohttp_client, app_factory)
    page = await (await client.get("/", headers=await staff_cookie(client, "moderator"))).text()
    assert '<a href="/api/plugins/hello" data-menu-link >Hello</a>' in page
    page = await (await client.get("/", headers=await staff_cookie(client, "assistant"))).text()
    assert ">Hello</a>" not in page and "data-menu-link" in page  # no link for a role that could not use it (billboard's is there)


async def test_hook_home_checklist(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    client = await _hello_client(aiohttp_client, app_factory)
    await login(client)
    assert 'data-check="hello" data-done="0"' in await (await client.get("/")).text()
    await client.get("/api/plugins/hello")
    text = await (await client.get("/")).text()
    assert 'data-check="hello" data-done="1"' in text and "1 hellos" in text
    assert 'data-check="mechanics"' not in text  # the core guesses at no plugin


async def test_hook_session_figures(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event

    client = await _hello_client(aiohttp_client, app_factory)
    app = client.app
    csrf = await login(client)
    eid = await make_event(app, "Waving show")
    session = await go_live(app, eid)
    for _ in range(2):
        assert (await client.post("/api/plugins/hello/wave", headers={"X-CSRF-Token": csrf})).status == 200
    report = await (await client.get(f"/api/sessions/{session.id}")).json()
    assert report["session"]["figures"] == [{"name": "hello_waves", "label": "Waves", "value": 2, "plugin": "hello"}]
    assert 'data-figure="hello_waves">2<' in await (await client.get(f"/sessions/{session.id}")).text()  # analytics
    assert 'data-figure-col="hello_waves">Waves<' in await (await client.get("/events/past")).text()  # the events' recap
    assert '<span data-figure="hello_waves">Waves 2</span>' in await (await client.get(f"/events/{eid}")).text()
    assert 'data-figure="hello_waves">2<' in await (await client.get("/")).text()  # home: the latest LIVE


async def test_hook_order_price(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

    client = await _hello_client(aiohttp_client, app_factory)
    app = client.app
    eid = await make_event(app)
    deal, regular = await make_product(app, "Deal mug", price_cents=2000, event_id=eid), await make_product(app, event_id=eid)
    await app[DB].execute("INSERT INTO hello_deals (product_id, price_cents) VALUES (?, 1500)", (deal,))
    session = await go_live(app, eid)
    viewer = await new_viewer(app, "Bo")
    for pid, qty, unit in ((deal, 2, 1500), (regular, 1, 1250)):
        resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": qty}, headers=vh(viewer))
        order = (await resp.json())["order"]
        assert resp.status == 201 and (order["unit_price_cents"], order["amount_cents"]) == (unit, unit * qty)
    report = await (await client.get(f"/api/sessions/{session.id}", headers={"X-CSRF-Token": await login(client)})).json()
    assert report["session"]["gmv_cents"] == 2 * 1500 + 1250


async def test_hook_reserve_order(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

    client = await _hello_client(aiohttp_client, app_factory)
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, "Limited", stock=5, event_id=eid)
    await app[DB].execute("INSERT INTO hello_limits (product_id) VALUES (?)", (pid,))
    await go_live(app, eid)
    ana, bo = await new_viewer(app, "Ana"), await new_viewer(app, "Bo")

    async def buy(viewer: Any) -> Any:
        return await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 1}, headers=vh(viewer))

    assert (await buy(ana)).status == 201
    resp = await buy(ana)
    assert resp.status == 409 and (await resp.json())["error"]["message"] == "one per viewer for this product: you already bought one"
    assert (await buy(bo)).status == 201
    db = app[DB]
    assert await db.fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 3  # the refused order took no stock
    assert await db.fetchval("SELECT COUNT(*) FROM orders") == 2  # and left no row
    assert await db.fetchval("SELECT COUNT(*) FROM hello_allocations") == 2  # the plugin's rows committed with the orders


async def test_hook_register_timers(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    import time as _time

    from lmserver import api

    client = await _hello_client(aiohttp_client, app_factory)
    app = client.app
    rang: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("hello.rang", rang.put_nowait)
    due = _time.time() + 0.2
    await api.schedule_at(app, due, "hello:1", "hello.ring", {"n": 1})
    assert [t.key for t in await api.pending_timers(app, "hello:")] == ["hello:1"]
    assert (await asyncio.wait_for(rang.get(), 10)).data == {"key": "hello:1"}
    row = await app[DB].fetchone("SELECT * FROM hello_rings")
    assert row["key"] == "hello:1" and row["payload"] == "{'n': 1}" and row["fired_at"] >= due  # never early


async def test_hook_tick(installed_hello: Path, aiohttp_client: Any, app_factory: Any) -> None:
    from tests.livehelpers import go_live, make_event

    client = await _hello_client(aiohttp_client, app_factory)
    app = client.app
    ticked: asyncio.Queue[Any] = asyncio.Queue()
    app[BUS].on("hello.ticked", ticked.put_nowait)
    session = await go_live(app, await make_event(app))
    first = await asyncio.wait_for(ticked.get(), 10)
    assert first.data == {"session_id": session.id} and first.session_id == session.id


# ============================================================================================ calling through pluggy, failure policy


async def test_wrapper_implementations_see_and_change_the_answers(aiohttp_client: Any, app_factory: Any) -> None:
    from lmserver.plugins.types import MenuLink

    class Links:
        PLUGIN_NAME = "links"

        @hookimpl
        def menu_links(self, user: Any) -> list[Any]:
            return [MenuLink("Plain", "/plain")]

    class Wrapper:
        PLUGIN_NAME = "wrapper"
        seen: list[Any] = []

        @hookimpl(wrapper=True)
        def menu_links(self, request: Any, user: Any) -> Any:
            answers = yield
            self.seen.append(answers)
            return [[MenuLink(link.label.upper(), link.href) for link in answer] for answer in answers] + [[MenuLink("Added", "/added")]]

    client = await aiohttp_client(app_factory(plugins=(Links(), Wrapper())))
    await login(client)
    page = await (await client.get("/")).text()
    assert ">PLAIN</a>" in page and ">Added</a>" in page and ">Plain</a>" not in page
    assert Wrapper.seen == [[[MenuLink("Plain", "/plain")]]]


async def test_async_firstresult_answer_of_none_passes_on(aiohttp_client: Any, app_factory: Any) -> None:
    from lmserver.plugins.types import CheckoutResult
    from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

    class Picky:
        asked: list[int] = []

        @hookimpl(tryfirst=True)
        async def checkout(self, request: Any) -> Any:
            self.asked.append(request.product_id)
            return None  # not mine: the next implementation decides

    class Pay:
        @hookimpl
        async def checkout(self, request: Any) -> Any:
            return CheckoutResult(status="pending_payment")

    client = await aiohttp_client(app_factory(plugins=(Picky(), Pay())))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, event_id=eid)
    await go_live(app, eid)
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid}, headers=vh(await new_viewer(app)))
    assert resp.status == 201 and (await resp.json())["order"]["status"] == "pending_payment" and Picky.asked == [pid]


class BrokenMoney:
    """Money hooks that raise or answer nonsense, switched by the product's title."""

    PLUGIN_NAME = "brokenmoney"

    @hookimpl
    def order_price(self, conn: Any, draft: Any) -> Any:
        title = conn.execute("SELECT title FROM products WHERE id = ?", (draft.product_id,)).fetchone()["title"]
        if title == "price raises":
            raise RuntimeError("price service down")
        return {"price is nonsense": -5, "price is text": "cheap"}.get(title)

    @hookimpl
    def reserve_order(self, conn: Any, draft: Any) -> Any:
        if conn.execute("SELECT title FROM products WHERE id = ?", (draft.product_id,)).fetchone()["title"] == "reserve raises":
            conn.execute("INSERT INTO follows (viewer_id, created_at) VALUES (?, 0)", (draft.viewer_id,))  # rolled back too
            raise RuntimeError("quota service down")
        return None

    @hookimpl
    def menu_links(self, user: Any) -> Any:
        raise RuntimeError("menu broken")


@pytest.mark.parametrize("title", ["price raises", "price is nonsense", "price is text", "reserve raises"])
async def test_money_hooks_fail_closed(title: str, aiohttp_client: Any, app_factory: Any, caplog: Any) -> None:
    from tests.livehelpers import go_live, make_event, make_product, new_viewer, vh

    client = await aiohttp_client(app_factory(plugins=(BrokenMoney(),)))
    app = client.app
    eid = await make_event(app)
    pid = await make_product(app, title, stock=4, event_id=eid)
    await go_live(app, eid)
    headers = {**vh(await new_viewer(app)), "Idempotency-Key": f"key-{title}"}
    resp = await client.post(f"/api/e/{eid}/orders", json={"product_id": pid, "quantity": 2}, headers=headers)
    assert resp.status == 503, await resp.text()
    assert "nothing was bought or charged" in (await resp.json())["error"]["message"]
    db = app[DB]
    assert await db.fetchval("SELECT stock FROM products WHERE id = ?", (pid,)) == 4
    assert await db.fetchval("SELECT COUNT(*) FROM orders") == 0 and await db.fetchval("SELECT COUNT(*) FROM follows") == 0
    assert await db.fetchval("SELECT COUNT(*) FROM order_idempotency") == 0  # the key is free: a retry buys anew
    assert "fails closed" in caplog.text


async def test_display_hook_that_raises_is_skipped(aiohttp_client: Any, app_factory: Any, caplog: Any) -> None:
    client = await aiohttp_client(app_factory(plugins=(BrokenMoney(),)))
    await login(client)
    resp = await client.get("/")
    assert resp.status == 200 and "Checklist for success" in await resp.text()
    assert "plugin brokenmoney failed in hook menu_links; it is skipped" in caplog.text


def test_a_coroutine_from_a_synchronous_hook_is_refused(make_config: Any, caplog: Any) -> None:
    class AsyncRoutes:
        PLUGIN_NAME = "asyncroutes"

        @hookimpl
        async def register_routes(self, app: Any) -> list[Any]:
            return []

    pm = build_plugin_manager(make_config(), [AsyncRoutes()], load_entrypoints=False)
    assert pm.call_lists_sync("register_routes", app=None) == []
    assert "plugin asyncroutes failed in hook register_routes" in caplog.text


def test_plugins_tag_records_the_core_way() -> None:
    """A record's session tags come from the core (``api.publish(..., session=...)``, ``api.session``), never from
    a LiveSession or Activity a plugin builds itself."""
    root = Path(__file__).resolve().parent.parent / "plugins"
    built = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\b(LiveSession|Activity)\(", line)]
    assert built == []


async def test_api_session_and_publish_tag_with_the_session(aiohttp_client: Any, app_factory: Any) -> None:
    from lmserver import api
    from lmserver.appkeys import LIVE
    from tests.livehelpers import go_live, make_event

    client = await aiohttp_client(app_factory())
    app = client.app
    eid = await make_event(app)
    live = await go_live(app, eid, practice=True)
    assert await api.session(app, live.id) is live and await api.session(app, None) is None
    running = await api.publish(app, "stream.error", {"message": "x"})
    assert (running.event_id, running.session_id, running.practice) == (eid, live.id, True)
    await app[LIVE].end("done")
    past = await api.session(app, live.id)
    assert past is not None and (past.id, past.event_id, past.practice) == (live.id, eid, True)
    late = await api.publish(app, "stream.error", {"message": "y"}, session=past)
    assert (late.event_id, late.session_id, late.practice) == (eid, live.id, True)
    assert await api.session(app, 10**9) is None
    studio = await api.publish(app, "stream.error", {"message": "z"})  # nothing runs: a studio-wide record
    assert (studio.event_id, studio.session_id, studio.practice) == (None, None, False)

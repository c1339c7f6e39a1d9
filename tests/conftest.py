"""Shared fixtures: apps built by a factory on a temporary data directory, staff logins.

- ``make_config(**sections)``: a validated Config on this test's temp dir (environment ignored;
  WebRTC bound to 127.0.0.1).
- ``app_factory(plugins=(), load_entrypoints=False, **sections)``: ``create_app`` on that config.
- ``client``: an aiohttp test client of an app with no plugins at all.
- ``login(client, role)``: creates a staff user of that role, logs in, returns the CSRF token.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

import pytest

from lmserver import auth
from lmserver.app import create_app
from lmserver.appkeys import DB
from lmserver.config import Config, load_config

PASSWORD = "correct horse battery"
_names = itertools.count(1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_config(data_dir: Path) -> Callable[..., Config]:
    def make(**sections: dict[str, Any]) -> Config:
        overrides: dict[str, dict[str, Any]] = {"server": {"data_dir": str(data_dir)}, "media": {"ice_host_addresses": ["127.0.0.1"]}}
        for name, values in sections.items():
            overrides.setdefault(name, {}).update(values)
        return load_config(None, env={}, overrides=overrides)

    return make


@pytest.fixture
def app_factory(make_config: Callable[..., Config]) -> Callable[..., Any]:
    def factory(plugins: Any = (), load_entrypoints: bool = False, **sections: dict[str, Any]) -> Any:
        """``plugins``: plugin objects to register (a sequence), or the ``[plugins]`` config table (a dict)."""
        if isinstance(plugins, dict):
            sections["plugins"] = plugins
            plugins = ()
        return create_app(make_config(**sections), plugins=plugins, load_entrypoints=load_entrypoints)

    return factory


@pytest.fixture
async def client(aiohttp_client: Any, app_factory: Callable[..., Any]) -> Any:
    return await aiohttp_client(app_factory())


async def make_user(client: Any, role: str = "owner", name: str | None = None, password: str = PASSWORD) -> str:
    name = name or f"{role}{next(_names)}"
    await auth.create_user(client.app[DB], name, role, password)
    return name


async def login(client: Any, role: str = "owner", name: str | None = None) -> str:
    """Create a user with ``role``, log the client in (cookie), return the CSRF token."""
    name = await make_user(client, role, name)
    resp = await client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


@pytest.fixture
def login_as() -> Callable[..., Any]:
    return login


@pytest.fixture
async def browser() -> Any:
    """Headless Chromium (Debian's) through Playwright; closed after the test."""
    from playwright.async_api import async_playwright

    from tests.browser import launch

    async with async_playwright() as pw:
        b = await launch(pw)
        try:
            yield b
        finally:
            await b.close()


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)

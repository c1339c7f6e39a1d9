"""Building the plugin manager and calling hooks with isolation.

``build_plugin_manager(config, plugins=[...], load_entrypoints=True)`` registers the core defaults
(``@hookimpl(trylast=True)``), the explicitly given plugins, then the entry points of group
``lmserver`` (minus ``[plugins] disabled``), and finally ``check_pending()`` so a misspelled hook
implementation is an error at startup, not a silent no-op. An installed plugin that fails to import or
to register is logged with its name and skipped: one broken ``pip install`` never stops the studio.
A name in ``disabled`` that is no installed plugin is reported (a typo would otherwise go unnoticed).

``await manager.call("hook_name", **kwargs)`` calls every implementation one by one: a plugin that
raises is logged with its name and skipped, and the others still run.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable

import pluggy

from lmserver.config import Config

from . import defaults, hookspecs

log = logging.getLogger(__name__)

GROUP = "lmserver"
CORE_PLUGIN = "lmserver.defaults"


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook's answer: a value, a coroutine, or a callable returning either."""
    if callable(value) and not inspect.isclass(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    templates: str | None
    static: str | None
    module: str


class PluginManager:
    def __init__(self, config: Config):
        self.config = config
        self.pm = pluggy.PluginManager("lmserver")
        self.pm.add_hookspecs(hookspecs)
        self.failures = 0
        self.versions: dict[str, str] = {}

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # ------------------------------------------------------------------ loading
    def load(self, plugins: Iterable[Any] = (), load_entrypoints: bool = True) -> None:
        self.pm.register(defaults, name=CORE_PLUGIN)
        disabled = set(self.config.plugins.disabled)
        for name in disabled:
            self.pm.set_blocked(name)
        for plugin in plugins:
            name = getattr(plugin, "PLUGIN_NAME", None) or _default_name(plugin)
            if name in disabled:
                log.info("plugin %s is disabled in the configuration", name)
                continue
            self.pm.register(plugin, name=name)
        if load_entrypoints:
            self._load_entrypoints()
        known = {name for name, _ in self.named_plugins()} | set(installed_entrypoints())
        for name in sorted(disabled - known):
            log.warning("[plugins] disabled names %r, but no installed plugin has that name; installed: %s",
                        name, ", ".join(sorted(known)) or "none")
        self.pm.check_pending()
        for name, _ in self.named_plugins():
            log.info("plugin loaded: %s", name)

    def _load_entrypoints(self) -> None:
        """Like pluggy's ``load_setuptools_entrypoints``, but one failing plugin is skipped, not fatal."""
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != GROUP or self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                    continue
                try:
                    self.pm.register(ep.load(), name=ep.name)
                except Exception:
                    self._failed(ep.name, None)
                    continue
                self.versions[ep.name] = dist.version

    def named_plugins(self) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in self.pm.list_name_plugin() if p is not None and n != CORE_PLUGIN]

    def plugin_dir(self, plugin: Any) -> Path | None:
        module = plugin if isinstance(plugin, ModuleType) else sys.modules.get(type(plugin).__module__)
        file = getattr(module, "__file__", None)
        return Path(file).parent if file else None

    def asset_dirs(self) -> dict[str, dict[str, Path]]:
        """``{plugin name: {"templates": dir, "static": dir}}`` for the dirs that exist."""
        declared: dict[str, dict[str, str]] = {}
        for impl in self.pm.hook.register_asset_dirs.get_hookimpls():
            try:
                declared[impl.plugin_name] = impl.function() or {}
            except Exception:
                log.exception("plugin %s: register_asset_dirs failed", impl.plugin_name)
        out: dict[str, dict[str, Path]] = {}
        for name, plugin in self.named_plugins():
            base = self.plugin_dir(plugin)
            dirs: dict[str, Path] = {}
            for kind in ("templates", "static"):
                path = Path(declared[name][kind]) if kind in declared.get(name, {}) else (base / kind if base else None)
                if path is not None and path.is_dir():
                    dirs[kind] = path
            out[name] = dirs
        return out

    def info(self) -> list[PluginInfo]:
        assets = self.asset_dirs()
        out = []
        for name, plugin in self.named_plugins():
            hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])
            version = self.versions.get(name) or getattr(plugin, "__version__", None)
            out.append(PluginInfo(name, version, hooks, str(assets[name].get("templates") or "") or None,
                                  str(assets[name].get("static") or "") or None,
                                  getattr(plugin, "__name__", type(plugin).__module__)))
        return sorted(out, key=lambda p: p.name)

    # ------------------------------------------------------------------ calling
    def impls(self, hook_name: str) -> list[pluggy.HookImpl]:
        """Implementations in call order (tryfirst first, trylast last, like pluggy)."""
        return list(reversed(getattr(self.pm.hook, hook_name).get_hookimpls()))

    async def call_named(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation, isolated; ``[(plugin name, answer)]`` of non-None answers."""
        results = []
        for impl in self.impls(hook_name):
            value = await self._call_one(impl, hook_name, kwargs)
            if value is not None:
                results.append((impl.plugin_name, value))
        return results

    async def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation, isolated; return the non-None answers in call order."""
        return [value for _, value in await self.call_named(hook_name, **kwargs)]

    async def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """Call implementations until one answers non-None (``firstresult`` hooks)."""
        for impl in self.impls(hook_name):
            value = await self._call_one(impl, hook_name, kwargs)
            if value is not None:
                return value
        return None

    async def call_lists(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """For ``register_*`` hooks returning lists: the concatenation of every answer."""
        out: list[Any] = []
        for answer in await self.call(hook_name, **kwargs):
            out.extend(answer)
        return out

    def call_lists_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Synchronous ``register_*`` hooks (build time): ``[(plugin name, item), ...]``."""
        out: list[tuple[str, Any]] = []
        for impl in self.impls(hook_name):
            try:
                answer = impl.function(**{a: kwargs[a] for a in impl.argnames})
                if inspect.isawaitable(answer):
                    answer.close()  # type: ignore[union-attr]
                    raise TypeError(f"{hook_name} must not be a coroutine")
            except Exception:
                self._failed(impl.plugin_name, hook_name)
                continue
            for item in answer or []:
                out.append((impl.plugin_name, item))
        return out

    async def _call_one(self, impl: pluggy.HookImpl, hook_name: str, kwargs: dict[str, Any]) -> Any:
        try:
            return await await_me_maybe(impl.function(**{a: kwargs[a] for a in impl.argnames}))
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failed(impl.plugin_name, hook_name)
            return None

    def _failed(self, plugin: str, hook: str | None) -> None:
        self.failures += 1
        where = f"in hook {hook}" if hook else "to load (import or register)"
        log.exception("plugin %s failed %s; it is skipped, the server goes on", plugin, where)


def _default_name(plugin: Any) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def build_plugin_manager(config: Config, plugins: Iterable[Any] = (), load_entrypoints: bool = True) -> PluginManager:
    manager = PluginManager(config)
    manager.load(plugins, load_entrypoints)
    return manager


def installed_entrypoints() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group=GROUP))

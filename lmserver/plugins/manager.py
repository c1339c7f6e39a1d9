"""Building the plugin manager and calling hooks through pluggy, with each hook's failure policy.

``build_plugin_manager(config, plugins=[...], load_entrypoints=True)`` registers the core defaults
(``@hookimpl(trylast=True)``), the explicitly given plugins, then the entry points of group
``lmserver`` (minus ``[plugins] disabled``), and finally ``check_pending()`` so a misspelled hook
implementation is an error at startup, not a silent no-op. An installed plugin that fails to import or
to register is logged with its name and skipped: one broken ``pip install`` never stops the studio.
A name in ``disabled`` that is no installed plugin is reported (a typo would otherwise go unnoticed).

Every call goes through pluggy (``tryfirst``/``trylast`` and ``wrapper=True`` implementations work as
pluggy documents them). Each ordinary implementation is wrapped, once, at load time in a *guard* that
applies the hook's failure policy (:mod:`lmserver.plugins.hookspecs`): for display and build hooks, an
implementation that raises is logged with its plugin's name and answers nothing; for money hooks
(:data:`~lmserver.plugins.hookspecs.FAIL_CLOSED`) it raises :class:`HookFailed`, which the order path
turns into a closed failure. An asynchronous answer is wrapped as well, so its failure is handled the
same way when the manager awaits it.

- ``await manager.call("hook", **kwargs)``: the non-None answers, in call order;
- ``await manager.call_named(...)``: ``[(plugin name, answer)]``;
- ``await manager.call_first(...)``: ``firstresult`` hooks (an async answer that resolves to None
  passes on to the next implementation);
- ``manager.call_sync_named(...)``, ``call_lists_sync(...)``, ``call_first_sync(...)``: synchronous hooks
  (build time, the order writer's thread).
"""

from __future__ import annotations

import asyncio
import contextvars
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
from .hookspecs import FAIL_CLOSED, SYNCHRONOUS

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
        self._install_guards()
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
        for plugin, answer in self.call_sync_named("register_asset_dirs"):
            declared[plugin] = dict(answer)
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

    def _install_guards(self) -> None:
        """Wrap every ordinary implementation in its hook's failure policy (wrappers are left as they are)."""
        for name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, name)
            if not isinstance(caller, pluggy.HookCaller):
                continue
            for impl in caller.get_hookimpls():
                if impl.wrapper or impl.hookwrapper or getattr(impl.function, "_lms_guarded", False):
                    continue
                impl.function = self._guard(impl.function, impl.plugin_name, name)

    def _guard(self, fn: Any, plugin: str, hook: str) -> Any:
        manager = self

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                return manager._fail(plugin, hook, exc)
            if value is not None and inspect.isawaitable(value) and hook in SYNCHRONOUS:
                if inspect.iscoroutine(value):
                    value.close()
                return manager._fail(plugin, hook, TypeError(f"{hook} is called synchronously: it must not be a coroutine"))
            if value is not None and hook not in SYNCHRONOUS and (
                    inspect.isawaitable(value) or (callable(value) and not inspect.isclass(value))):
                value = _Deferred(manager, plugin, hook, value)
            collected = _COLLECTED.get()
            if collected is not None:
                collected.append((plugin, value))
            return value

        guarded._lms_guarded = True  # type: ignore[attr-defined]
        guarded.__name__ = getattr(fn, "__name__", hook)
        guarded.__doc__ = getattr(fn, "__doc__", None)
        return guarded

    def _pluggy(self, hook_name: str, kwargs: dict[str, Any], caller: Any = None) -> tuple[Any, list[tuple[str, Any]]]:
        """One pluggy call: its result and ``[(plugin, answer)]`` in the order the guards saw them."""
        token = _COLLECTED.set([])
        try:
            try:
                result = (caller or getattr(self.pm.hook, hook_name))(**kwargs)
            except HookFailed:
                raise
            except Exception as exc:  # a wrapper raised (ordinary implementations are guarded)
                if hook_name in FAIL_CLOSED:
                    raise HookFailed("a hook wrapper", hook_name, exc) from exc
                self._failed("a hook wrapper", hook_name, exc)
                result = None if _is_first(self, hook_name) else []
            return result, _COLLECTED.get() or []
        finally:
            _COLLECTED.reset(token)

    @staticmethod
    def _named(results: list[Any], collected: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        pool = list(collected)
        out = []
        for answer in results:
            for i, (plugin, value) in enumerate(pool):
                if value is answer:
                    out.append((plugin, answer))
                    del pool[i]
                    break
            else:
                out.append((answer.plugin if isinstance(answer, _Deferred) else "a hook wrapper", answer))
        return out

    async def _resolve(self, plugin: str, hook_name: str, answer: Any) -> Any:
        if isinstance(answer, _Deferred):
            return await answer
        try:
            return await await_me_maybe(answer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return self._fail(plugin, hook_name, exc)

    @staticmethod
    def _close(collected: list[tuple[str, Any]]) -> None:
        """Close async answers that were never awaited (dropped by a wrapper or by ``firstresult``)."""
        for _, value in collected:
            if isinstance(value, _Deferred):
                value.close()

    async def call_named(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call the hook; ``[(plugin name, answer)]`` of the non-None answers (async ones awaited)."""
        results, collected = self._pluggy(hook_name, kwargs)
        out = []
        try:
            for plugin, answer in self._named(list(results or []), collected):
                value = await self._resolve(plugin, hook_name, answer)
                if value is not None:
                    out.append((plugin, value))
        finally:
            self._close(collected)
        return out

    async def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call the hook; the non-None answers in call order."""
        return [value for _, value in await self.call_named(hook_name, **kwargs)]

    async def call_first(self, hook_name: str, **kwargs: Any) -> Any:
        """A ``firstresult`` hook: the first non-None answer (an async answer resolving to None passes on)."""
        removed: list[Any] = []
        for _ in range(len(self.pm.get_plugins()) + 1):
            caller = self.pm.subset_hook_caller(hook_name, removed) if removed else None
            result, collected = self._pluggy(hook_name, kwargs, caller)
            try:
                if isinstance(result, _Deferred):
                    value = await result
                    if value is None:
                        removed.append(self.pm.get_plugin(result.plugin))
                        continue
                    return value
                if result is None:
                    return None
                return await self._resolve("a hook wrapper", hook_name, result)
            finally:
                self._close(collected)
        return None

    async def call_lists(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """For hooks answering lists: the concatenation of every answer."""
        out: list[Any] = []
        for answer in await self.call(hook_name, **kwargs):
            out.extend(answer)
        return out

    def call_sync_named(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """A synchronous hook: ``[(plugin name, answer)]`` of the non-None answers."""
        results, collected = self._pluggy(hook_name, kwargs)
        return [(p, a) for p, a in self._named(list(results or []), collected) if a is not None]

    def call_lists_sync(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Synchronous ``register_*`` hooks answering lists (build time): ``[(plugin name, item), ...]``."""
        out: list[tuple[str, Any]] = []
        for plugin, answer in self.call_sync_named(hook_name, **kwargs):
            try:
                items = list(answer)
            except TypeError as exc:
                self._fail(plugin, hook_name, TypeError(f"{hook_name} must answer a list, got {type(answer).__name__}"))
                del exc
                continue
            out.extend((plugin, item) for item in items)
        return out

    def call_first_sync(self, hook_name: str, **kwargs: Any) -> Any:
        """A synchronous ``firstresult`` hook (``order_price`` in the writer thread): the first answer or None."""
        result, _ = self._pluggy(hook_name, kwargs)
        return result

    def _fail(self, plugin: str, hook: str, exc: BaseException) -> None:
        """Apply the failure policy: money hooks raise :class:`HookFailed`; the others are logged and skipped."""
        if hook in FAIL_CLOSED:
            self.failures += 1
            log.error("plugin %s failed in hook %s; the order fails closed", plugin, hook, exc_info=exc)
            raise HookFailed(plugin, hook, exc) from exc
        self._failed(plugin, hook, exc)
        return None

    def _failed(self, plugin: str, hook: str | None, exc: BaseException | None = None) -> None:
        self.failures += 1
        where = f"in hook {hook}" if hook else "to load (import or register)"
        log.error("plugin %s failed %s; it is skipped, the server goes on", plugin, where,
                  exc_info=exc if exc is not None else True)


class HookFailed(Exception):
    """A money hook's implementation raised (see the failure policy): the caller fails closed."""

    def __init__(self, plugin: str, hook: str, cause: BaseException):
        super().__init__(f"plugin {plugin} failed in hook {hook}: {cause}")
        self.plugin = plugin
        self.hook = hook
        self.cause = cause


#: the answers one pluggy call collected, ``[(plugin name, answer)]`` (set around each call)
_COLLECTED: contextvars.ContextVar[list[tuple[str, Any]] | None] = contextvars.ContextVar("lms_hook_answers", default=None)


def _is_first(manager: PluginManager, hook_name: str) -> bool:
    spec = getattr(manager.pm.hook, hook_name).spec
    return bool(spec and spec.opts.get("firstresult"))


class _Deferred:
    """An implementation's async answer (a coroutine, awaitable or callable): awaited by the manager
    under the hook's failure policy. Awaiting it twice gives the same value."""

    __slots__ = ("manager", "plugin", "hook", "value", "_done", "_result")

    def __init__(self, manager: PluginManager, plugin: str, hook: str, value: Any):
        self.manager, self.plugin, self.hook, self.value = manager, plugin, hook, value
        self._done = False
        self._result: Any = None

    async def _run(self) -> Any:
        if self._done:
            return self._result
        self._done = True
        try:
            self._result = await await_me_maybe(self.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._result = self.manager._fail(self.plugin, self.hook, exc)
        return self._result

    def __await__(self) -> Any:
        return self._run().__await__()

    def close(self) -> None:
        if not self._done and inspect.iscoroutine(self.value):
            self.value.close()
        self._done = True


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

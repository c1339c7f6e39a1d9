"""The staff permission registry: which role may do what (re-exported by :mod:`lmserver.auth`)."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from aiohttp import web

from .plugins.types import Permission

ROLES = ("owner", "moderator", "assistant")


class PermissionRegistry:
    """Every staff permission of this app: declared by the ``register_permissions`` hook (the core's
    own by a ``trylast`` core implementation, see :data:`lmserver.plugins.defaults.CORE_PERMISSIONS`).

    ``registry.allows(role, name)``: the owner holds every permission. Asking about a name nobody
    declared is a ``KeyError`` (a typo never silently lets a role in). :meth:`table` and
    :meth:`markdown` give the role table of the settings page and of the README.
    """

    NAME_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

    def __init__(self, declared: "Iterable[tuple[str, Permission]]"):
        self._items: dict[str, Permission] = {}
        self.owners: dict[str, str] = {}
        declared = list(declared)
        # the core's first, then the plugins' in the order they answered
        for owner, perm in sorted(declared, key=lambda d: d[0] != CORE_OWNER):
            self._add_to(self._items, owner, perm)

    def _add_to(self, items: dict[str, Permission], owner: str, perm: "Permission") -> None:
        if not isinstance(perm, Permission) or not self.NAME_RE.match(perm.name):
            raise ValueError(f"plugin {owner}: a permission is Permission(name='<area>.<verb>', description, roles), got {perm!r}")
        unknown = set(perm.roles) - set(ROLES)
        if unknown:
            raise ValueError(f"plugin {owner}: permission {perm.name!r} names unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
        if perm.name in items and items[perm.name] != perm:
            raise ValueError(f"permission {perm.name!r} is declared twice, differently (by {self.owners[perm.name]} and {owner})")
        items.setdefault(perm.name, perm)
        self.owners.setdefault(perm.name, owner)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> "Iterator[Permission]":
        return iter(self._items.values())

    def names(self) -> list[str]:
        return list(self._items)

    def roles(self, name: str) -> tuple[str, ...]:
        """The roles holding ``name`` (the owner always); KeyError when nobody declared it."""
        if name not in self._items:
            raise KeyError(f"unknown permission {name!r}: declare it with the register_permissions hook "
                           f"(known: {', '.join(self._items)})")
        return tuple(r for r in ROLES if r == "owner" or r in self._items[name].roles)

    def allows(self, role: str, name: str) -> bool:
        return role in self.roles(name)

    def table(self) -> list[dict[str, Any]]:
        """One row per permission: name, description, the declaring plugin (None: core), role → bool."""
        return [{"name": p.name, "description": p.description,
                 "plugin": None if self.owners[p.name] == CORE_OWNER else self.owners[p.name],
                 "roles": {r: r in self.roles(p.name) for r in ROLES}} for p in self]

    def markdown(self) -> str:
        """The README's role table."""
        lines = ["| permission | what it allows | " + " | ".join(ROLES) + " |", "|---|---|" + "---|" * len(ROLES)]
        for row in self.table():
            lines.append(f"| `{row['name']}` | {row['description']} | "
                         + " | ".join("✓" if row["roles"][r] else "" for r in ROLES) + " |")
        return "\n".join(lines)


#: the app's permission registry (built from the plugins' ``register_permissions`` when the app is built)
PERMISSIONS: web.AppKey[PermissionRegistry] = web.AppKey("permissions", PermissionRegistry)
CORE_OWNER = "lmserver.defaults"


def core_permissions() -> PermissionRegistry:
    """The core's permissions alone (for tools that run without the app, e.g. the CLI)."""
    from .plugins.defaults import CORE_PERMISSIONS

    return PermissionRegistry((CORE_OWNER, p) for p in CORE_PERMISSIONS)

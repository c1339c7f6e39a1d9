"""The plugin system: hook specifications and the plugin manager."""

from .hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]

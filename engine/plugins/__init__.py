"""Plugins: pluggy hooks declared in `hookspecs`, implementations found through the
`metacrm` entry-point group (or registered explicitly, e.g. in tests).

The plugin manager is created explicitly and cached per process; `register` adds a
plugin object (a module or instance with @hookimpl functions).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import pluggy

from metacrm.engine.plugins import hookspecs

hookimpl = pluggy.HookimplMarker("metacrm")


@lru_cache(maxsize=1)
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("metacrm")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("metacrm")
    return pm


def register(plugin: Any, name: str | None = None) -> None:
    manager().register(plugin, name=name)


def unregister(plugin: Any) -> None:
    manager().unregister(plugin)


def plugin_actions() -> dict[str, Callable[..., Any]]:
    """Every automation action offered by plugins, by name (later plugins win on clashes)."""
    actions: dict[str, Callable[..., Any]] = {}
    for provided in reversed(manager().hook.metacrm_actions()):
        actions.update(provided or {})
    return actions

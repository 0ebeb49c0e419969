"""Plugins: pluggy hooks declared in `hookspecs`, implementations found through the
`metacrm` entry-point group (or registered explicitly on a runtime's manager, e.g. in tests).

Each `Runtime` owns its plugin manager (`runtime.plugins`, made by `new_manager`): there is
no process-wide manager, so what one runtime (or test) registers is invisible to the others.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

from metacrm.engine.plugins import hookspecs

hookimpl = pluggy.HookimplMarker("metacrm")


def new_manager(*, entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with metacrm's hooks and, unless told otherwise, every installed plugin
    of the `metacrm` entry-point group."""
    pm = pluggy.PluginManager("metacrm")
    pm.add_hookspecs(hookspecs)
    if entry_points:
        pm.load_setuptools_entrypoints("metacrm")
    return pm


def plugin_actions(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Every automation action offered by the plugins of `pm`, by name (later plugins win on clashes)."""
    actions: dict[str, Callable[..., Any]] = {}
    for provided in reversed(pm.hook.metacrm_actions()):
        actions.update(provided or {})
    return actions


def plugin_translations(pm: pluggy.PluginManager) -> tuple[str, ...]:
    """The catalogue directories the plugins of `pm` add, in the order later ones win."""
    return tuple(str(d) for provided in reversed(pm.hook.metacrm_translations()) for d in (provided or []))

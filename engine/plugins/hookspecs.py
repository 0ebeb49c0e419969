"""The hooks metacrm plugins can implement. Each is declared once, here.

A plugin is a module or object with functions marked `@engine.plugins.hookimpl`,
published under the `metacrm` entry-point group in its package metadata.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("metacrm")


@hookspec
def metacrm_actions() -> dict[str, Callable[..., Any]]:
    """Automation actions this plugin provides: {name: handler(context, params)}.

    Rules call them with `- plugin: {action: name, params: {...}}`. The handler runs inside
    the triggering write's transaction; `context.record` is the record, `context.service`
    the RecordService and `context.actor` the automation actor to write with.
    """


@hookspec
def metacrm_translations() -> list[str]:
    """Directories of message catalogues this plugin adds: `<language>.po` files (`zh_CN.po`,
    `zh_TW.po`, `en.po`) whose message ids are metacrm's English messages (or the plugin's own).

    An entry here wins over the shipped one, so a plugin can also reword a message. The API's
    problem documents and the CLI's messages use them (docs/metadata.md, "Translations").
    """

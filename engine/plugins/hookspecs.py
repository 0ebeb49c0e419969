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


# -- record lifecycle ---------------------------------------------------------------------------
# The record engine (engine.records.service) announces each step of a write through these hooks
# rather than calling automation itself, so `records` imports no `automation`. The built-in
# automation (rules, state machines, timers, SLAs, approvals' locks, pools, the execution log) is
# registered on every Runtime's manager as the plugin `metacrm.automation`
# (engine/automation/hooks.py); another plugin may implement the same hooks. Every hook of a write
# runs inside the write's transaction (`conn`) unless it says otherwise; an exception rolls the
# write back.


@hookspec
def metacrm_before_save(service, conn, model, kind, obj, before, record, actor) -> list[dict[str, Any]] | None:
    """A record of `obj` is about to be written (`kind` "created" or "updated"; `before` the stored
    values of an update, else None). `record` holds its coerced input and defaults, before the
    validation checks: an implementation may change its values in place (the checks then see the
    change). Returns execution-log lines to keep with the write (handed back in
    `metacrm_after_write`'s `logs`)."""


@hookspec
def metacrm_after_write(service, conn, model, obj, kind, pairs, actor, logs, system) -> None:
    """Records of `obj` were written: `pairs` are (before, after) per record (before None for
    "created", after None for "deleted"), already stored, with history written and derived
    values (rollups, formulas of other records) brought up to date. `logs[i]` are the lines
    `metacrm_before_save` returned for pairs[i] (empty lists when there were none). `system` is
    true for changes the engine made itself (a rollup or formula following another record).
    Implementations may write further records through `service` on `conn`. Return True when the
    written records may have been changed by it (the engine then reads them again for its answer)."""


@hookspec
def metacrm_write_locks(conn, obj, ids, actor) -> dict[str, Any] | None:
    """Records among `ids` of `obj` that `actor` may not update or delete now (e.g. waiting for
    approval): {id: the FieldError to report}. Asked once per call before anything is written."""


@hookspec
def metacrm_write_ended(runtime, error) -> None:
    """A write transaction the record engine opened itself has ended: committed (`error` None) or
    rolled back because of `error`. Runs outside any transaction (e.g. to write a log of the
    failure that must survive the rollback)."""


@hookspec
def metacrm_read_grants(conn, obj, actor, table) -> Any:
    """A SQLAlchemy condition on `table` (the table of `obj`) selecting records `actor` may read
    besides those of their scope and their shares (e.g. the records of the pools they belong to),
    or None. Asked only for actors whose read scope is restricted, once per table per call."""

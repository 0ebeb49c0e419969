"""Example plugin: small record actions an implementer can call from rules.

- `append_text`: append a rendered line to a text field of the record, e.g. a running
  journal in a notes field: `- plugin: {action: append_text, params: {field: notes, text: "called"}}`.
"""

from __future__ import annotations

from typing import Any

from metacrm.engine.plugins import hookimpl


def append_text(context, params: dict[str, Any]) -> None:
    field, text = params["field"], str(params.get("text", ""))
    current = context.record.get(field) or ""
    value = f"{current}\n{text}" if current else text
    updated = context.service.update(context.event.obj.name, context.record["id"], {field: value}, actor=context.actor,
                                     conn=context.conn)
    context.record = dict(updated)


@hookimpl
def metacrm_actions():
    return {"append_text": append_text}

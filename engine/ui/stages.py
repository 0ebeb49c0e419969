"""Which values of a status field mean "finished", read from the metadata without naming any
object: the home page's "my open ..." lists leave those records out.

1. A state machine on the field: a state is closed when no transition open to every role
   leaves it (closed won/lost deals, which only a manager may reopen; a converted lead).
2. Else the object's list views: a view filtering the field with `not_in` names closed values
   (open tickets: status not in resolved, closed); one filtering it with `eq`/`in` names the
   open ones (planned activities), so the rest are closed.
3. Else nothing is closed.
"""

from __future__ import annotations

from typing import Any

from metacrm.metamodel.model import ObjectDef


def closed_values(obj: ObjectDef, field_name: str) -> tuple[str, ...]:
    options = obj.field(field_name).option_values
    for machine in obj.state_machines:
        if machine.field == field_name:
            leaving = {source for t in machine.transitions if not t.roles for source in t.sources}
            if "*" in leaving:
                return ()
            return tuple(v for v in options if v not in leaving)
    for view in obj.layouts.get("list_views", ()):
        for condition in _conditions(view.get("filter")):
            name, op, value = condition
            if name != field_name:
                continue
            if op == "not_in":
                return tuple(v for v in options if v in value)
            if op in ("eq", "in"):
                wanted = set(value) if op == "in" else {value}
                return tuple(v for v in options if v not in wanted)
    return ()


def _conditions(raw: Any) -> list[tuple[str, str, Any]]:
    """The top-level [field, op, value] conditions of a list view's filter (an and-list)."""
    if not isinstance(raw, (list, tuple)):
        return []
    if raw and isinstance(raw[0], str):
        return [tuple(raw) + (None,) * (3 - len(raw))] if len(raw) in (2, 3) else []
    found = []
    for item in raw:
        if isinstance(item, (list, tuple)) and item and isinstance(item[0], str) and len(item) in (2, 3):
            found.append(tuple(item) + (None,) * (3 - len(item)))
    return found

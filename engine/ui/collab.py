"""What the record page shows of collaboration: the follow/unfollow button and whether "log a
call" applies (a related list of follow-up activities the user may create in). The forms are
handled in engine/ui/collab_actions.py; the rules live in engine/automation/comments.py."""

from __future__ import annotations

from typing import Any

from metacrm.engine.automation import comments
from metacrm.metamodel.model import ObjectDef


def state(service, unit, obj: ObjectDef, record: dict[str, Any], related: list[dict[str, Any]]) -> dict[str, Any]:
    """What the record page shows of collaboration: whether the user follows it, and the
    follow-up related list "log a call" writes to (None: no button)."""
    call = call_target(service.runtime.model, related)
    return {"following": comments.following(unit.conn, obj.name, str(record["id"]), unit.actor),
            "log_call": call is not None}


def call_target(model, related: list[dict[str, Any]]) -> tuple[ObjectDef, str] | None:
    """The first activity-like related list the user may create in (its object and lookup)."""
    for r in related:
        if r.get("activity_like") and r.get("can_create"):
            return model.object(r["object"]), r["via"]
    return None


def has_option(obj: ObjectDef, name: str, value: str) -> bool:
    f = next((f for f in obj.fields if f.name == name), None)
    return f is not None and f.type == "picklist" and any(o.value == value for o in f.options)


"""Approval buttons of a record page: submit to a process, and approve / reject / recall the
pending request, each with a comment (their POST handler is engine/ui/actions.py). The approval
engine (engine/automation/approvals.py) decides: entry conditions, who approves, who may recall."""

from __future__ import annotations

from typing import Any

from metacrm.engine.automation import approvals as engine
from metacrm.metamodel.model import ObjectDef, pick_label

DECISIONS = ("approve", "reject", "recall")


def buttons(conn, obj: ObjectDef, record: dict[str, Any], actor, editable: bool, language: str) -> dict[str, Any]:
    """{"pending": request or None, "submit": [processes], "decide": [approve/reject/recall]}."""
    row = engine.pending(conn, obj.name, record["id"])
    if row is None:
        processes = [{"name": p.name, "label": pick_label(p.labels, language, p.name)}
                     for p in obj.approval_processes] if editable else []
        return {"pending": None, "submit": processes, "decide": []}
    process = next((p for p in obj.approval_processes if p.name == row.process), None)
    decide = []
    if actor.user_id in (row.approvers or []):
        decide += ["approve", "reject"]
    if actor.user_id is not None and row.submitted_by == actor.user_id:
        decide.append("recall")
    label = pick_label(process.labels, language, row.process) if process else row.process
    return {"pending": {"id": row.id, "label": label}, "submit": [], "decide": decide}

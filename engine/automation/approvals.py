"""Approval processes: submit, approve, reject, recall — with a full history per record.

While a request is pending the record is locked for editing (the record engine refuses
writes except the process's own actions). Each step's approvers are resolved when the
step starts (the owner's manager, a role, a group, a user); `any` needs one approval,
`all` needs every approver. Approvers are notified through the outbox.

Submitting needs edit rights on the record (it locks it). Conditions, approvers and actions
see the whole record, whatever the submitter may see; a condition that cannot be evaluated
fails closed (no submission; the step is not skipped). For someone who may not see the
record, its approvals do not exist: deciding or recalling one is the same 404 as a wrong id.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation import outbox, recipients
from metacrm.engine.automation.actions import ActionContext, run as run_action
from metacrm.engine.automation.event import Event
from metacrm.engine.automation.tables import approval_history, approvals
from metacrm.engine.errors import FieldError, NotFound, Refused, translate
from metacrm.engine.expressions import EvaluationError, Evaluator
from metacrm.engine.identity.actor import SYSTEM, Actor
from metacrm.engine.records.relations import related_values
from metacrm.metamodel.automation import ApprovalProcessDef


def pending(conn: Connection, object_name: str, record_id: str):
    return conn.execute(sa.select(approvals).where(approvals.c.object == object_name,
                                                   approvals.c.record_id == record_id,
                                                   approvals.c.status == "pending")).first()


def pending_processes(conn: Connection, object_name: str, record_ids: list[str]) -> dict[str, str]:
    """{record id: process name} of the records among `record_ids` waiting for approval: one query
    per 1000 ids (a bulk update checks every lock at once)."""
    found: dict[str, str] = {}
    statement = sa.select(approvals.c.record_id, approvals.c.process).where(
        approvals.c.object == object_name, approvals.c.status == "pending",
        approvals.c.record_id.in_(sa.bindparam("ids", expanding=True)))
    for start in range(0, len(record_ids), 1000):
        found.update((row.record_id, row.process) for row in
                     conn.execute(statement, {"ids": record_ids[start:start + 1000]}))
    return found


def locks(conn: Connection, obj, ids: list[str], actor: Actor) -> dict[str, FieldError]:
    """{id: the error} of the records among `ids` locked for `actor` by a pending approval, in one
    query: the engine's own writes are never locked, nor records of objects without a process."""
    if not obj.approval_processes or actor.system or not ids:
        return {}
    processes = {p.name for p in obj.approval_processes}
    locking = {p.name for p in obj.approval_processes if p.lock}
    error = FieldError(None, "locked", translate("locked", actor.language, "is locked while it waits for approval",
                                                 object=obj.label(actor.language)))
    return {record_id: error for record_id, process in pending_processes(conn, obj.name, ids).items()
            if process in locking or process not in processes}


def find_process(model, object_name: str, name: str) -> ApprovalProcessDef:
    process = model.find(object_name, "approval_processes", name)
    if process is not None:
        return process
    raise NotFound([FieldError(None, "unknown_process", f"no approval process {object_name}.{name}")])


class Approvals:
    def __init__(self, service):
        self.service = service
        self.runtime = service.runtime

    def submit(self, object_name: str, record_id: str, process_name: str, actor: Actor, comment: str = "") -> int:
        model = self.runtime.model
        process = find_process(model, object_name, process_name)
        with self.service.transaction() as conn:
            record = self._editable_record(conn, object_name, record_id, actor)
            if pending(conn, object_name, record["id"]):
                raise Refused("already_pending", "this record already waits for approval")
            if process.entry_condition is not None and \
                    not self._holds(conn, object_name, process.entry_condition, record, actor, on_error=False):
                raise Refused("entry_condition", "this record does not meet the conditions to be submitted")
            now = actor.clock.now()
            approval_id = conn.execute(approvals.insert().values(
                object=object_name, record_id=record["id"], process=process.name, status="pending", step=-1,
                approvers=[], submitted_by=actor.user_id, submitted_at=now)).inserted_primary_key[0]
            self._history(conn, approval_id, None, actor, "submitted", comment)
            self._actions(conn, model, process.on_submit, record, actor, f"{object_name}.{process.name}:submit")
            self._advance(conn, process, approval_id, record, -1, actor)
            return approval_id

    def approve(self, approval_id: int, actor: Actor, comment: str = "") -> str:
        return self._decide(approval_id, actor, "approved", comment)

    def reject(self, approval_id: int, actor: Actor, comment: str = "") -> str:
        return self._decide(approval_id, actor, "rejected", comment)

    def recall(self, approval_id: int, actor: Actor, comment: str = "") -> str:
        model = self.runtime.model
        with self.service.transaction() as conn:
            row = self._pending_row(conn, approval_id, actor)
            if row.submitted_by != actor.user_id and not actor.system:
                raise Refused("not_submitter", "only the submitter can recall a request")
            process = find_process(model, row.object, row.process)
            self._finish(conn, row, "recalled", actor)
            self._history(conn, approval_id, None, actor, "recalled", comment)
            record = self.service.get(row.object, row.record_id, actor=SYSTEM, conn=conn)
            self._actions(conn, model, process.on_recall, record, actor, f"{row.object}.{row.process}:recall")
            return "recalled"

    def history(self, object_name: str, record_id: str) -> list[dict[str, Any]]:
        with self.runtime.db.engine.connect() as conn:
            query = (sa.select(approvals.c.id.label("approval_id"), approvals.c.process, approvals.c.status,
                               approval_history.c.step, approval_history.c.user_id, approval_history.c.decision,
                               approval_history.c.comment, approval_history.c.at)
                     .join(approval_history, approval_history.c.approval_id == approvals.c.id)
                     .where(approvals.c.object == object_name, approvals.c.record_id == record_id)
                     .order_by(approval_history.c.id))
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- internals -------------------------------------------------------------------------
    def _decide(self, approval_id: int, actor: Actor, decision: str, comment: str) -> str:
        model = self.runtime.model
        with self.service.transaction() as conn:
            row = self._pending_row(conn, approval_id, actor)
            process = find_process(model, row.object, row.process)
            step = process.steps[row.step]
            if actor.user_id not in row.approvers:
                raise Refused("not_an_approver", "you are not an approver of this step")
            done = {h.user_id for h in conn.execute(sa.select(approval_history.c.user_id).where(
                approval_history.c.approval_id == approval_id, approval_history.c.step == step.name,
                approval_history.c.decision == "approved"))}
            if actor.user_id in done:
                raise Refused("already_decided", "you already approved this step")
            self._history(conn, approval_id, step.name, actor, decision, comment)
            record = self.service.get(row.object, row.record_id, actor=SYSTEM, conn=conn)
            if decision == "rejected":
                self._finish(conn, row, "rejected", actor)
                self._actions(conn, model, process.on_reject, record, actor, f"{row.object}.{row.process}:reject")
                return "rejected"
            if step.mode == "all" and not set(row.approvers) <= done | {actor.user_id}:
                return "pending"
            return self._advance(conn, process, approval_id, record, row.step, actor)

    def _advance(self, conn, process: ApprovalProcessDef, approval_id: int, record, current: int, actor: Actor) -> str:
        """Move to the next step that applies; finish with approval when none is left."""
        for index in range(current + 1, len(process.steps)):
            step = process.steps[index]
            if step.condition is not None and \
                    not self._holds(conn, process.object, step.condition, record, actor, on_error=True):
                continue
            approvers = recipients.user_ids(conn, step.approvers, record, actor.user_id)
            if not approvers:
                raise Refused("no_approver", f"step {step.name!r} has no approver (no manager or empty role?)")
            conn.execute(sa.update(approvals).where(approvals.c.id == approval_id).values(step=index, approvers=approvers))
            outbox.enqueue(conn, "notify", {"users": approvers, "object": process.object, "record_id": record["id"],
                                            "message": f"Approval requested: {process.name} ({step.name})"},
                           actor.clock.now(), rule=f"{process.object}.{process.name}", record_id=record["id"])
            return "pending"
        row = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).first()
        self._finish(conn, row, "approved", actor)
        self._actions(conn, self.runtime.model, process.on_approve, record, actor,
                      f"{process.object}.{process.name}:approve")
        return "approved"

    def _pending_row(self, conn, approval_id: int, actor: Actor):
        """The request, if it exists for this actor (its record is one they may see) and is pending."""
        row = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).first()
        missing = NotFound([FieldError(None, "not_found", f"approval {approval_id} does not exist")])
        if row is None:
            raise missing
        try:
            self.service.get(row.object, row.record_id, actor=actor, conn=conn)
        except NotFound:
            raise missing from None
        if row.status != "pending":
            raise Refused("not_pending", f"this request is already {row.status}")
        return row

    def _finish(self, conn, row, status: str, actor: Actor) -> None:
        conn.execute(sa.update(approvals).where(approvals.c.id == row.id)
                     .values(status=status, finished_at=actor.clock.now()))

    def _history(self, conn, approval_id, step, actor: Actor, decision: str, comment: str) -> None:
        conn.execute(approval_history.insert().values(approval_id=approval_id, step=step, user_id=actor.user_id,
                                                      decision=decision, comment=comment or None,
                                                      at=actor.clock.now()))

    def _editable_record(self, conn, object_name: str, record_id: str, actor: Actor) -> dict[str, Any]:
        """The whole record, if the actor may see it (else 404) and edit it (else 403): submitting locks it."""
        visible = self.service.get(object_name, record_id, actor=actor, conn=conn)
        obj, _ = self.service.object_and_table(object_name)
        if not self.service.load_for_update(conn, object_name, [visible["id"]], actor=actor, scope="edit"):
            raise self.service.forbidden(obj, actor, "edit")
        return self.service.get(object_name, visible["id"], actor=SYSTEM, conn=conn)

    def _holds(self, conn, object_name: str, expression, record, actor: Actor, on_error: bool) -> bool:
        """Entry and step conditions over the whole record, with relation paths (account.grade).
        A condition that cannot be evaluated gives `on_error`: the answer that fails closed."""
        model = self.runtime.model
        names = {**record, **related_values(conn, model, self.runtime.tables(model), model.object(object_name),
                                            record, {}, paths=tuple(expression.relation_paths))}
        try:
            return Evaluator(actor.clock, actor.user_id).evaluate(expression, names) is True
        except EvaluationError:
            return on_error

    def _actions(self, conn, model, actions, record, actor: Actor, label: str) -> None:
        if not actions:
            return
        obj = model.object(label.split(".")[0])
        event = Event("approval", obj, record, record, actor)
        context = ActionContext(conn, model, self.runtime.tables(model), self.service, event, label)
        for action in actions:
            run_action(context, action)

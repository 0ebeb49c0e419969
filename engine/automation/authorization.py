"""Whether a user may write records through an automation they started (a manual rule): the
same checks as a write of their own, made through the record engine's unit of work."""

from __future__ import annotations

from metacrm.engine.errors import ValidationFailed
from metacrm.engine.identity.actor import Actor


def authorize_write(service, conn, object_name: str, ids: list[str] | None, actor: Actor,
                    related: bool = False) -> None:
    """Raise unless `actor` may write these records like any write of theirs: NotFound for one they
    may not see, PermissionDenied for one they may not edit (or, with ids=None, if they may not create),
    ValidationFailed for one locked by a pending approval. System actors may write anything.
    `related` records (found by the rule, not named by the runner) they may not see are a
    PermissionDenied that names no id."""
    if actor.system:
        return
    obj, table = service.object_and_table(object_name)
    access = service.access(obj, actor, conn)
    if ids is None:
        if not access.rights.create:
            raise service.forbidden(obj, actor, "create")
        return
    seen = service.load_for_update(conn, object_name, ids, actor=actor)
    for record_id in ids:
        if record_id not in seen:
            raise service.forbidden(obj, actor, "edit") if related else service.not_found(obj, record_id, actor)
    edit = access.edit_clause(table)
    if edit is not None and len(service.load_for_update(conn, object_name, ids, actor=actor, scope="edit")) != len(set(ids)):
        raise service.forbidden(obj, actor, "edit")
    for record_id in ids:
        locked = service.locked(conn, obj, record_id, actor=actor)
        if locked is not None:
            raise ValidationFailed([locked])

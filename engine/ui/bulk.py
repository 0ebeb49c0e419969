"""Bulk actions on the records selected in a list: change owner, set a field, delete, run a
manual rule. Each goes through the RecordService (bulk_update, delete, run_manual) with the
signed-in user as the actor, so permissions, the owner rule, validation, state machines,
automations and history apply to every record as on any other write. Records that fail are
reported one by one (title and reason) and the others are done.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from metacrm.engine.api.bodies import awaited
from metacrm.engine.api.problems import Problem
from metacrm.engine.automation.manual import run_manual
from metacrm.engine.errors import FieldError, RecordError
from metacrm.engine.records.query import Query
from metacrm.engine.ui import formats
from metacrm.engine.ui.auth import MAX_FORM_BYTES, signed_in
from metacrm.engine.ui.lists import listing
from metacrm.engine.ui.render import page
from metacrm.metamodel.model import ObjectDef

MAX_SELECTED = 500
ACTIONS = frozenset({"owner", "set", "delete", "rule"})


def read_multi_form(request: Request) -> dict[str, list[str]]:
    """A POSTed form with repeated fields (the selected ids) kept as lists."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise Problem(413, "the form is too large")

    async def read() -> dict[str, list[str]]:
        form = await request.form(max_files=0, max_fields=MAX_SELECTED + 20)
        values: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                values.setdefault(key, []).append(value)
        return values

    return awaited(read)


def explain(obj: ObjectDef, errors: list[FieldError], language: str) -> str:
    """Errors as a person reads them: the field's label (not its name) before each message."""
    parts = []
    for e in errors:
        f = formats.field_for(obj, e.field) if e.field else None
        parts.append(f"{f.label(language)}: {e.message}" if f is not None and not e.message.startswith(
            f.label(language)) else e.message)
    return "; ".join(parts)


def bulk_action(request: Request) -> Response:
    """POST /app/o/{object}/bulk: do the action, then show the list (same view and filters) with the outcome."""
    form = read_multi_form(request)
    one = {k: v[0] for k, v in form.items()}
    service = request.app.state.records
    with signed_in(request, one) as unit:
        obj = service.runtime.model.objects.get(request.path_params["object"])
        back = QueryParams(one.get("back", ""))
        context = listing(service, unit, request.path_params["object"], back)  # 404 if the object is not readable
        ids = list(dict.fromkeys(i for i in form.get("ids", []) if i))[:MAX_SELECTED]
        action = one.get("action", "")
        if action not in ACTIONS:
            raise Problem(400, "unknown bulk action")
        language = unit.language
        actor = unit.actor
        titles = _titles(service, obj, ids, unit)
    outcome = {"done": 0, "failed": [], "none": not ids}
    if ids:
        failures = _run(service, obj, action, ids, one, actor)
        outcome["done"] = len(ids) - len(failures)
        outcome["failed"] = [{"title": titles.get(i, i), "reason": explain(obj, errs, language)}
                             for i, errs in failures.items()]
    with signed_in(request, one) as unit:  # the list as it is now, after the action
        context = listing(service, unit, obj.name, back, outcome)
        return page(request, "list.html", context, status=200 if not outcome["failed"] else 207,
                    language=unit.language)


def _titles(service, obj: ObjectDef, ids: list[str], unit) -> dict[str, str]:
    """The selected records' titles (as the user sees them), to name the ones that failed."""
    if not ids:
        return {}
    try:
        found = service.list(obj.name, Query(filter=[["id", "in", ids]], fields=(obj.title_field,), limit=len(ids)),
                             actor=unit.actor, conn=unit.conn).records
    except RecordError:
        return {}
    return {str(r["id"]): str(r.get(obj.title_field) or r["id"]) for r in found}


def _run(service, obj: ObjectDef, action: str, ids: list[str], form: dict[str, str], actor) -> dict[str, list]:
    """{record id: errors} of the records the action could not be done to."""
    if action in ("owner", "set"):
        if action == "owner":
            change = {"owner": form.get("owner", "")}
        else:
            name = form.get("field", "")
            if not obj.has_field(name):
                return {i: [FieldError(None, "unknown_field", "unknown field")] for i in ids}
            change = {name: _typed(obj, name, form.get("value", ""), actor.language)}
        result = service.bulk_update(obj.name, [{"id": i, **change} for i in ids], actor=actor)
        return {ids[index]: errs for index, errs in result.errors.items()}
    if action == "delete":
        failed: dict[str, list] = {}
        for record_id in ids:
            try:
                service.delete(obj.name, record_id, actor=actor)
            except RecordError as exc:
                failed[record_id] = exc.errors
        return failed
    try:
        outcomes = run_manual(service, f"{obj.name}.{form.get('rule', '')}", ids, actor)
    except RecordError as exc:
        return {i: exc.errors for i in ids}
    return {o.id: o.error.errors for o in outcomes if o.error is not None}


def _typed(obj: ObjectDef, name: str, text: str, language: str) -> Any:
    """The value typed in: blank is no value; a picklist's label in the user's language is its value."""
    text = text.strip()
    if not text:
        return None
    f = obj.field(name)
    for option in f.options:
        if text in (option.value, option.label(language)):
            return option.value
    return text

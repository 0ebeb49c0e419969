"""Forms generated from the form layout: /app/o/{object}/new, /app/o/{object}/{id}/edit, and
/app/o/{object}/form-state (the htmx fragment of a form re-evaluated after each change).

Saving goes through RecordService.create/update as the signed-in user. A refusal re-renders the
form (status 422) with every input as the user typed it and each message next to its field; a
stale edit (someone saved first: Conflict, 409) shows the current values beside the user's and
offers to re-apply their input on top of the current version, or to reload.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine.api.bodies import awaited
from metacrm.engine.api.problems import Problem
from metacrm.engine.errors import Conflict, NotFound, PermissionDenied, RecordError
from metacrm.engine.ui import conditions, formats, formlayout, widgets
from metacrm.engine.ui.auth import MAX_FORM_BYTES, signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.render import fragment, page
from metacrm.metamodel.coercion import CoercionError, coerce
from metacrm.metamodel.model import FieldDef, ObjectDef

SYSTEM_INPUTS = frozenset({"csrf_token", "version", "id"})


def read_post(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The form as text fields (the last of each name) and as lists (multi-selects)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
        raise Problem(413, "the form is too large")

    async def read():
        form = await request.form(max_files=0, max_fields=1000)
        return ({k: v for k, v in form.items() if isinstance(v, str)},
                {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form.keys()})

    return awaited(read)


# -- pages ------------------------------------------------------------------------------------
def new_page(request: Request) -> Response:
    if request.method == "POST":
        return _save(request, None)
    with signed_in(request) as unit:
        form = Form.open(request, unit, None)
        given = {k: v for k, v in request.query_params.items() if k in form.names}  # a related list's "New"
        return form.render(given or None)


def edit_page(request: Request) -> Response:
    if request.method == "POST":
        return _save(request, request.path_params["id"])
    with signed_in(request) as unit:
        return Form.open(request, unit, request.path_params["id"]).render(None)


def form_state(request: Request) -> Response:
    """POST /app/o/{object}/form-state: the form's body for the values typed so far."""
    flat, lists = read_post(request)
    with signed_in(request, flat) as unit:
        form = Form.open(request, unit, flat.get("id") or None)
        return form.render(form.raw_of(flat, lists), as_fragment=True)


def _save(request: Request, record_id: str | None) -> Response:
    flat, lists = read_post(request)
    service = request.app.state.records
    with signed_in(request, flat) as unit:
        form = Form.open(request, unit, record_id)
        raw = form.raw_of(flat, lists)
        data = form.data_of(raw)
        actor, name = unit.actor, form.obj.name
    version = int(flat["version"]) if flat.get("version", "").isdigit() and len(flat["version"]) <= 18 else None
    try:
        if record_id is None:
            saved = service.create(name, data, actor=actor)
        else:
            saved = service.update(name, record_id, data, actor=actor, version=version) if data else {"id": record_id}
    except (NotFound, PermissionDenied):
        raise
    except RecordError as exc:
        with signed_in(request) as unit:
            again = Form.open(request, unit, record_id)
            return again.render(raw, errors=exc.errors, conflict=isinstance(exc, Conflict),
                                status=409 if isinstance(exc, Conflict) else 422)
    return RedirectResponse(f"/app/o/{quote(name)}/{quote(str(saved['id']))}", status_code=303)


# -- the form ---------------------------------------------------------------------------------
class Form:
    """One object's form for one user, on a new record or a stored one."""

    def __init__(self, request: Request, unit, obj: ObjectDef, record: dict[str, Any] | None):
        self.request, self.unit, self.obj, self.record = request, unit, obj, record
        self.service = request.app.state.records
        self.access = self.service.access(obj, unit.actor, unit.conn)
        self.tabs = formlayout.form_tabs(self.service.runtime.model, obj, unit.actor, self.access.hidden)
        self.fields = [f for f in formlayout.fields_of(self.tabs) if f.name not in ("created_at", "updated_at",
                                                                                   "created_by", "updated_by")
                       or record is not None]
        self.names = {f.name for f in self.fields}

    @classmethod
    def open(cls, request: Request, unit, record_id: str | None) -> "Form":
        service = request.app.state.records
        obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
        if record_id is None:
            if not service.access(obj, unit.actor, unit.conn).rights.create:
                raise service.forbidden(obj, unit.actor, "create")
            return cls(request, unit, obj, None)
        record = service.get(obj.name, record_id, actor=unit.actor, conn=unit.conn)
        if not service.load_for_update(unit.conn, obj.name, [record["id"]], actor=unit.actor, scope="edit"):
            raise service.forbidden(obj, unit.actor, "edit")
        return cls(request, unit, obj, record)

    # input -> values
    def raw_of(self, flat: Mapping[str, str], lists: Mapping[str, list[str]]) -> dict[str, Any]:
        """The form's inputs by field (text as typed; lists for multi-selects; booleans for checkboxes)."""
        raw: dict[str, Any] = {}
        for f in self.fields:
            kind = widgets.kind_of(f)
            if kind == "multiselect":
                raw[f.name] = [v for v in lists.get(f.name, []) if v]
            elif kind == "checkbox":
                raw[f.name] = f.name in flat
            elif f.name in flat:
                raw[f.name] = flat[f.name]
        return raw

    def typed(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The record as the user sees it with their input over it (what cannot be read yet: None)."""
        values = dict(self.record or {})
        for f in self.fields:
            if f.name in raw and not f.is_computed:
                values[f.name] = _coerced(f, raw[f.name])
        return values

    def data_of(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """What to write: the visible, editable fields the user filled (new) or changed (edit)."""
        states, _ = self.states(self.typed(raw))
        data = {}
        for f in self.fields:
            state = states[f.name]
            if f.name not in raw or not state.visible or state.read_only:
                continue
            value = raw[f.name]
            empty = value in ("", [], None)
            if self.record is None:
                if not empty and value is not False:
                    data[f.name] = value
            elif value != widgets.as_input(f, self.record.get(f.name)):
                data[f.name] = None if empty else value
        return data

    def states(self, values: Mapping[str, Any]) -> tuple[dict[str, conditions.FieldState], dict[str, Any]]:
        """Each field's state for `values`, and the relation paths they were evaluated with."""
        paths = conditions.related(self.service, self.unit.conn, self.obj, values, self.unit.actor)
        return conditions.states(self.service.runtime.model, self.obj, self.fields, values, paths, self.unit.actor,
                                 self.access.read_only), paths

    # values -> page
    def render(self, raw: dict[str, Any] | None, *, errors=(), conflict: bool = False, status: int = 200,
               as_fragment: bool = False) -> Response:
        unit = self.unit
        values = self.typed(raw or {})
        states, paths = self.states(values)
        shown = conditions.preview(self.service.runtime.model, self.obj, values, paths, unit.actor,
                                   self.access.hidden, self.access.read_only, defaults=self.record is None)
        shown_raw = raw
        if self.record is None and raw is None:
            shown_raw = None  # defaults show as the stored value would
        by_field, general = _errors(errors, self.names)
        creatable = self._creatable_targets()
        titles = formats.lookup_titles(self.service, self.obj, self.fields, [shown] + ([{
            f.name: raw.get(f.name) for f in self.fields}] if raw else []), unit)
        context = {
            "obj": self.obj, "object_label": self.obj.label(unit.language), "record": self.record,
            "title": self._title(), "conflict": self._conflict(raw or {}, titles) if conflict else [],
            "tabs": [{"label": t.label, "sections": [{"label": s.label, "columns": s.columns, "widgets": [
                dict(widgets.widget(f, shown.get(f.name), shown_raw, states[f.name], by_field.get(f.name),
                                    unit.language, titles), can_create=f.target in creatable)
                for f in s.fields]} for s in t.sections]} for t in self.tabs],
            "general_errors": general, "field_errors": bool(by_field), "action": self._action(),
            "cancel": self._cancel(),
            "version": self.record["version"] if self.record else None, "live": self._live(),
            **chrome(self.service, unit),
        }
        if as_fragment:
            return fragment(self.request, "form_body.html", context, language=unit.language)
        return page(self.request, "form.html", context, status=status, language=unit.language)

    def _live(self) -> bool:
        """Whether the form changes as the user types: conditional fields or formulas on it."""
        return any(f.visible_if is not None or f.required_if is not None or f.read_only_if is not None
                   or f.type == "formula" for f in self.fields)

    def _creatable_targets(self) -> set[str]:
        """Lookup targets the user may create records of (their lookups offer "New" in a new tab)."""
        model = self.service.runtime.model
        targets = {f.target for f in self.fields if f.target and f.target in model}
        return {t for t in targets
                if self.service.access(model.object(t), self.unit.actor, self.unit.conn).rights.create}

    def _title(self) -> str:
        if self.record is None:
            return ""
        value = self.record.get(self.obj.title_field) if self.obj.title_field not in self.access.hidden else None
        return str(value) if value not in (None, "") else str(self.record["id"])

    def _action(self) -> str:
        base = f"/app/o/{quote(self.obj.name)}"
        return f"{base}/{quote(str(self.record['id']))}/edit" if self.record else f"{base}/new"

    def _cancel(self) -> str:
        base = f"/app/o/{quote(self.obj.name)}"
        return f"{base}/{quote(str(self.record['id']))}" if self.record else base

    def _conflict(self, raw: Mapping[str, Any], titles: dict[str, str]) -> list[dict[str, str]]:
        """Fields where the current stored value differs from what the user sent: current vs theirs."""
        rows = []
        language = self.unit.language
        for f in self.fields:
            if f.name not in raw or f.is_computed:
                continue
            current = self.record.get(f.name) if self.record else None
            if raw[f.name] != widgets.as_input(f, current):
                mine = _coerced(f, raw[f.name])
                rows.append({"label": f.label(language), "current": formats.display(f, current, language, titles),
                             "yours": formats.display(f, mine, language, titles) if mine is not None
                             else str(raw[f.name] or "")})
        return rows


def _coerced(f: FieldDef, value: Any) -> Any:
    if value in ("", [], None):
        return None
    try:
        return coerce(f, value)
    except (CoercionError, TypeError, ValueError):
        return None


def _errors(errors, names: set[str]) -> tuple[dict[str, str], list[str]]:
    """Messages by field shown on the form; the rest (record-wide, or about fields not on it) on top."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for e in errors:
        if e.field in names and e.field not in by_field:
            by_field[e.field] = e.message
        elif e.code != "conflict" or not general:
            general.append(e.message)
    return by_field, general

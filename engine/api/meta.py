"""/api/v1/meta: objects, fields, types, labels and layouts — as the caller may see them."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from metacrm.engine.api.context import request_unit
from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.api.problems import Problem
from metacrm.engine.identity.actor import Actor
from metacrm.engine.security.access import Access, conceals
from metacrm.metamodel.model import FieldDef, Model, ObjectDef, pick_label


def describe_field(field: FieldDef, language: str, shows=lambda expression: True) -> dict[str, Any]:
    """A field for the client; `shows(expression)` says whether a condition may be told (one
    that reads a value hidden from the caller is left out: it would name the hidden field)."""
    info: dict[str, Any] = {"name": field.name, "id": field.id, "type": field.type, "label": field.label(language),
                            "required": field.required, "unique": field.unique, "read_only": field.read_only,
                            "searchable": field.searchable}
    if field.options:
        info["options"] = [{"value": o.value, "label": o.label(language), "color": o.color} for o in field.options]
    if field.target:
        info["target"] = field.target
    if field.help:
        info["help"] = field.help.get(language) or field.help.get("en")
    for key in ("min", "max", "min_length", "max_length", "pattern"):
        value = getattr(field, key)
        if value is not None:
            info[key] = float(value) if key in ("min", "max") else value
    if field.storage_type in ("decimal", "currency", "percent"):
        info.update(precision=field.precision, scale=field.scale)
    for key in ("required_if", "visible_if", "read_only_if"):
        expression = getattr(field, key)
        if expression is not None and shows(expression):
            info[key] = expression.source
    return info


def resolve_labels(node: Any, language: str) -> Any:
    """Layouts with each `label` ({language: text}) resolved for `language`, like field labels are;
    a section or view without one keeps none."""
    if isinstance(node, list):
        return [resolve_labels(item, language) for item in node]
    if not isinstance(node, dict):
        return node
    return {key: pick_label(value, language, str(node.get("name", ""))) if key == "label" and isinstance(value, dict)
            else resolve_labels(value, language) for key, value in node.items()}


def describe_object(model: Model, obj: ObjectDef, actor: Actor, access: Access, full: bool) -> dict[str, Any]:
    hidden = access.hidden
    info: dict[str, Any] = {"name": obj.name, "label": obj.label(actor.language),
                            "title_field": "id" if obj.title_field in hidden else obj.title_field,
                            "permissions": {"create": access.rights.create, "read": access.rights.read,
                                            "edit": access.rights.edit, "delete": access.rights.delete,
                                            "export": access.rights.export}}
    if full:
        shows = lambda expression: not conceals(model, obj, actor, expression)  # noqa: E731
        info["fields"] = [dict(describe_field(f, actor.language, shows),
                               read_only=f.read_only or f.name in access.read_only)
                          for f in obj.fields if f.name not in hidden]
        info["layouts"] = resolve_labels(visible_layouts(model, obj, actor), actor.language)
    return info


def objects(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    result = []
    with request_unit(request) as unit:
        actor, conn = unit.actor, unit.conn
        for obj in runtime.model.objects.values():
            access = Access(obj, actor, conn)
            if access.rights.read != "none" or access.rights.create:
                result.append(describe_object(runtime.model, obj, actor, access, full=False))
    return JSONResponse({"objects": result, "revision": runtime.model.revision})


def one_object(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    name = request.path_params["object"]
    with request_unit(request) as unit:
        actor, conn = unit.actor, unit.conn
        if name not in runtime.model:
            raise Problem(404, f"unknown object {name!r}")
        obj = runtime.model.object(name)
        access = Access(obj, actor, conn)
        if access.rights.read == "none" and not access.rights.create:
            raise Problem(404, f"unknown object {name!r}")
        return JSONResponse(describe_object(runtime.model, obj, actor, access, full=True))

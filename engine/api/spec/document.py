"""Putting the document together for one caller: the objects they may see, the operations
they may call (admin ones for administrators only), the metadata revision as an extension."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from metacrm.engine.api.spec import admin, platform
from metacrm.engine.api.spec.common import FIELD_ERROR, HEADERS, PROBLEM, obj, problem_responses, summary
from metacrm.engine.api.spec.fields import object_schemas, value_schema
from metacrm.engine.api.spec.records import ObjectPaths, shared_schemas
from metacrm.engine.records import related
from metacrm.engine.security.access import Access
from metacrm.metamodel.permissions import ADMIN_ROLE

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


@lru_cache(maxsize=1)
def package_version() -> str:
    """metacrm's version: from the installed distribution, else from pyproject.toml of a checkout."""
    try:
        return metadata.version("metacrm")
    except metadata.PackageNotFoundError:
        pass
    if PYPROJECT.exists():
        found = re.search(r'^version\s*=\s*"([^"]+)"', PYPROJECT.read_text("utf-8"), re.MULTILINE)
        if found:
            return found.group(1)
    return "0.0.0"


def related_names(model, obj_def, actor) -> list[str]:
    """What include= accepts on this object, as the server resolves it (engine.records.related):
    every name of a related list the caller may read; the others would be left out anyway."""
    return [name for name, item in related.related_lists(model, obj_def).items()
            if related.readable(model, item, actor)]


def intake_form(obj_def) -> dict[str, Any]:
    fields = {f.name: f for f in obj_def.fields}
    spec = obj_def.document.get("intake") or {}
    properties = {name: value_schema(fields[name]) for name in spec.get("fields", ()) if name in fields}
    required = [name for name in properties if fields[name].required and fields[name].default is None
                and fields[name].default_expression is None]
    return obj(properties, required, closed=True)


def build(runtime, actor, conn, language: str | None = None) -> dict[str, Any]:
    """The document for `actor`, its sentences in `language` (default: the actor's own)."""
    model = runtime.model
    language = language or actor.language or "en"
    schemas: dict[str, Any] = {"Problem": PROBLEM, "FieldError": FIELD_ERROR, **shared_schemas()}
    paths: dict[str, Any] = {}
    paths.update(platform.auth_paths(language))
    paths.update(platform.me_paths(language))
    visible: list[str] = []
    for obj_def in model.objects.values():
        access = Access(obj_def, actor, conn)
        if access.rights.read == "none" and not access.rights.create:
            continue
        visible.append(obj_def.name)
        schemas.update(object_schemas(obj_def, access))
        paths.update(ObjectPaths(obj_def, access, actor, language, related_names(model, obj_def, actor)).paths(model))
    paths.update(platform.meta_paths(language, visible))
    paths.update(platform.notification_paths(language))
    paths.update(platform.approval_paths(language))
    paths.update(platform.intake_paths(language, {o.name: (o.label(language), intake_form(o)) for o in model.objects.values()
                                                  if o.document.get("intake")}))
    if ADMIN_ROLE in actor.roles:
        paths.update(admin.admin_paths(language, list(model.objects)))
    paths.update(platform.document_paths(language))
    return {
        "openapi": "3.1.0",
        "info": {"title": "metacrm API", "version": package_version(),
                 "description": summary("The metacrm REST API as the signed-in caller may use it: objects, fields "
                                        "and operations follow the live metadata and the caller's rights.", language),
                 "x-metacrm-revision": model.revision},
        "x-metacrm-revision": model.revision,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "responses": problem_responses(language),
            "headers": HEADERS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer",
                                          "description": summary("an API token (POST /api/v1/auth/tokens)", language)},
                                "session": {"type": "apiKey", "in": "cookie", "name": "metacrm_session",
                                            "description": summary("a browser session; unsafe methods also need "
                                                                   "X-CSRF-Token", language)}},
        },
        "security": [{"token": []}, {"session": []}],
    }

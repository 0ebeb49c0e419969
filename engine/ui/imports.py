"""The import wizard (/app/o/{object}/import): upload a CSV, map its columns to fields, see a dry
run's row errors, import, and download the rows that failed.

The import itself is the records layer's (engine.records.csvio), run with the signed-in user as
actor: the permission checks, validation, automations and history are those of the API's import.
The wizard keeps no state on the server: the CSV travels in the form between steps (bounded by
MAX_UPLOAD), so a reload or a second tab cannot mix up two imports.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from metacrm.engine.api.bodies import awaited, whole_number
from metacrm.engine.api.problems import Problem
from metacrm.engine.errors import RecordError
from metacrm.engine.records.csvio import (
    CsvTable,
    ImportRefused,
    import_rows,
    parse_csv,
    plan_columns,
)
from metacrm.engine.ui import strings
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.nav import readable_object
from metacrm.engine.ui.render import page
from starlette.requests import Request
from starlette.responses import Response

MAX_UPLOAD = 5 * 1024 * 1024  # bytes of one CSV through the browser (the API takes larger files)
SHOWN_ERRORS = 200  # row errors listed on the page; the download has them all


def import_page(request: Request) -> Response:
    """GET: the upload form. POST: `step` = upload (a file), check (dry run) or run (import)."""
    if request.method == "GET":
        with signed_in(request) as unit:
            return _render(request, unit, {"step": "upload"})
    form = _read_upload(request)
    step = form.get("step", "")
    with signed_in(request, form) as unit:
        obj, access = _importable(request, unit)
        actor, language = unit.actor, unit.language
        if step == "upload":
            return _after_upload(request, unit, obj, access, form)
        if step not in ("check", "run"):
            raise Problem(400, "unknown import step")
    try:
        table = parse_csv(form.get("csv", "").encode("utf-8"))
    except ImportRefused as exc:
        with signed_in(request) as unit:
            return _render(request, unit, {"step": "upload", "error": str(exc)}, status=400)
    mapping = _mapping(form, table)
    try:
        result = import_rows(request.app.state.records, obj.name, table, actor, mapping=mapping,
                             dry_run=step == "check")
    except ImportRefused as exc:  # a bad mapping (e.g. a field the user may not write): back to the mapping
        with signed_in(request) as unit:
            return _render(request, unit, {**_mapping_step(obj, access, table, form, language),
                                           "error": str(exc)}, status=400)
    except RecordError as exc:
        raise Problem(403, str(exc)) from None
    with signed_in(request) as unit:
        return _render(request, unit, _report(obj, table, mapping, result, form, language, step))


def failed_rows(request: Request) -> Response:
    """POST .../import/failed: the failed rows (carried by the result page) as a CSV download."""
    form = _read_upload(request)
    with signed_in(request, form) as unit:
        _importable(request, unit)
    name = request.path_params["object"]
    return Response(form.get("failed", "").encode("utf-8"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}-failed-rows.csv"',
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


# -- steps -------------------------------------------------------------------------------------


def _after_upload(request: Request, unit, obj, access, form: dict[str, Any]) -> Response:
    upload = form.get("file")
    language = unit.language
    if upload is None or not getattr(upload, "filename", ""):
        return _render(request, unit, {"step": "upload", "error": strings.text(language, "import_choose_file")}, 400)
    kind = (upload.content_type or "").split(";")[0].strip().lower()
    if not upload.filename.lower().endswith(".csv") and kind not in ("text/csv", "application/csv"):
        return _render(request, unit, {"step": "upload", "error": strings.text(language, "import_not_csv")}, 400)
    if len(upload.body) > MAX_UPLOAD:
        message = strings.text(language, "import_too_large", size=MAX_UPLOAD // (1024 * 1024))
        return _render(request, unit, {"step": "upload", "error": message}, 413)
    try:
        table = parse_csv(upload.body)  # refuses what is not UTF-8 text first, saying where
        text = upload.body.decode("utf-8-sig")
    except (ImportRefused, UnicodeDecodeError) as exc:
        message = strings.text(language, "import_unreadable", reason=str(exc))
        return _render(request, unit, {"step": "upload", "error": message}, 400)
    return _render(request, unit, _mapping_step(obj, access, table, {"csv": text}, language))


def _mapping_step(obj, access, table: CsvTable | None, form: dict[str, Any], language: str) -> dict[str, Any]:
    """The column → field choices: auto-mapped by field name or label (any language) like the API;
    only fields the user may write are offered (never a hidden or read-only one)."""
    if table is None:
        return {"step": "upload"}
    choices = [{"name": "owner", "label": strings.text(language, "import_owner")}] + [
        {"name": f.name, "label": f.label(language)} for f in obj.fields
        if not f.is_computed and not f.read_only and f.name not in access.hidden and f.name not in access.read_only]
    auto = plan_columns(obj, table.header, None, None, access.hidden, access.read_only).write
    columns = []
    for i, header in enumerate(table.header):
        chosen = form[f"map_{i}"] if f"map_{i}" in form else auto.get(i, "")
        columns.append({"index": i, "header": header, "chosen": chosen,
                        "sample": table.rows[0][1][i] if table.rows and i < len(table.rows[0][1]) else ""})
    return {"step": "map", "csv": form.get("csv", ""), "columns": columns, "choices": choices,
            "rows": len(table.rows)}


def _report(obj, table: CsvTable, mapping, result, form, language: str, step: str) -> dict[str, Any]:
    cells = dict(table.rows)
    labels = {f.name: f.label(language) for f in obj.fields}
    errors = [{"line": line, "cells": cells.get(line, []),
               "messages": [(labels.get(e.field, e.field) if e.field else "", e.message) for e in found]}
              for line, found in sorted(result.errors.items())]
    return {"step": "checked" if step == "check" else "done", "csv": form.get("csv", ""),
            "mapping": [{"index": i, "value": form.get(f"map_{i}", "")} for i in range(len(table.header))],
            "header": table.header, "created": result.created, "failed": len(errors),
            "errors": errors[:SHOWN_ERRORS], "more_errors": max(0, len(errors) - SHOWN_ERRORS),
            "ignored": result.ignored_columns, "failed_csv": _failed_csv(table.header, errors) if errors else ""}


def _failed_csv(header: list[str], errors: list[dict[str, Any]]) -> str:
    """The failed rows as they were uploaded, plus a column saying why each failed."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*header, "error"])
    for row in errors:
        writer.writerow([*row["cells"], "; ".join(f"{f}: {m}" if f else m for f, m in row["messages"])])
    return out.getvalue()


# -- helpers -----------------------------------------------------------------------------------


def _importable(request: Request, unit):
    """The object, if the user may read it (else 404) and create records of it (else 403: the
    API's check, made here first so the upload form is not offered in vain)."""
    service = request.app.state.records
    obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
    access = service.access(obj, unit.actor, unit.conn)
    if not access.rights.create:
        raise Problem(403, str(service.forbidden(obj, unit.actor, "create")))
    return obj, access


def _mapping(form: dict[str, Any], table: CsvTable) -> dict[str, str]:
    """{"CSV column": "field"} from the map_<index> selects; a blank choice skips the column."""
    return {header: form[f"map_{i}"] for i, header in enumerate(table.header) if form.get(f"map_{i}")}


def _read_upload(request: Request) -> dict[str, Any]:
    """A multipart (or urlencoded) form of at most MAX_UPLOAD bytes; an upload becomes
    {"filename", "content_type", "body"}. Without a Content-Length the size cannot be bounded: 411."""
    declared = whole_number(request.headers.get("content-length") or "")
    if declared is None:
        raise Problem(411, "send the form with a Content-Length")
    if declared > MAX_UPLOAD + 64 * 1024:
        raise Problem(413, f"the file is too large (at most {MAX_UPLOAD // (1024 * 1024)} MB)")

    async def read() -> dict[str, Any]:
        form = await request.form(max_files=1, max_fields=2000, max_part_size=MAX_UPLOAD)
        found: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, str):
                found[key] = value
            else:
                found[key] = Upload(value.filename or "", value.content_type or "", await value.read(MAX_UPLOAD + 1))
        return found

    return awaited(read)


class Upload:
    def __init__(self, filename: str, content_type: str, body: bytes):
        self.filename, self.content_type, self.body = filename, content_type, body


def _render(request: Request, unit, context: dict[str, Any], status: int = 200) -> Response:
    service = request.app.state.records
    obj = readable_object(service.runtime.model, request.path_params["object"], unit.actor)
    if context.get("step") == "upload":
        _importable(request, unit)
    language = unit.language
    return page(request, "import.html", {"obj": obj, "object_label": obj.plural_labels.get(language)
                                         or obj.label(language), "path": f"/app/o/{obj.name}", "active": obj.name,
                                         "max_mb": MAX_UPLOAD // (1024 * 1024), "error": None, **context,
                                         **chrome(service, unit)}, status=status, language=language)

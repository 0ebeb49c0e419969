"""CSV import and export of one object's records, for every channel (the REST API, the CLI).

Import: each data row of a UTF-8 CSV becomes a create (or, with `match=<field>`, an update of
the visible record with that key), written in batches with bulk_create / bulk_update, so
permissions, validation and automations apply exactly as for any other write. Valid rows are
written even when other rows fail (each batch is its own transaction); a dry run runs the same
writes in one transaction that is rolled back, so it reports the same errors and writes nothing.
Errors name the CSV line where the row starts.

Export: rows page by page (keyset pagination), never loading the table at once; text cells that
a spreadsheet would run as formulas are guarded with a leading apostrophe.

No HTTP here: a refused import raises ImportRefused (an engine error); each channel maps it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterator, Sequence

from metacrm.engine.errors import AutomationError
from metacrm.engine.errors import FieldError, RecordError
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.query import MAX_LIMIT, Query
from metacrm.engine.records.service import BulkResult, RecordService
from metacrm.metamodel.coercion import CoercionError, coerce, is_blank
from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.model import FieldDef, ObjectDef

BATCH = 1000  # rows per bulk call
PAGE = MAX_LIMIT  # rows per export page
MAX_REPORTED_ERRORS = 1000
#: Cells of these types that start with one of FORMULA_START are written with a leading
#: apostrophe, so a spreadsheet shows them as text instead of running them as formulas
#: (CSV injection); import removes that apostrophe again.
ESCAPED_TYPES = frozenset({"text", "long_text", "email"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SYSTEM_EXPORT_COLUMNS = ("owner", "created_at", "created_by", "updated_at", "updated_by", "version")
UNMATCHABLE = frozenset({"multi_picklist", "json"})

MAX_CELL = 20 * 1024 * 1024  # one cell may be as large as the largest import the API accepts

csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))


class ImportRefused(MetacrmError, ValueError):
    """The import as a whole cannot run (not UTF-8, malformed CSV, bad mapping, bad match key):
    nothing is written. The API answers 400, the CLI exits 1."""


# -- parsing ---------------------------------------------------------------------------------


@dataclass
class CsvTable:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line where the row starts, cells)


def parse_csv(body: bytes) -> CsvTable:
    """Header and data rows of a UTF-8 CSV document (optional BOM); blank rows are skipped."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(f"the CSV is not UTF-8 (invalid byte at offset {exc.start})") from None
    if "\x00" in text:  # not text at all (and PostgreSQL cannot store it)
        raise ImportRefused(f"the CSV contains a NUL character (line {text.count(chr(10), 0, text.index(chr(0))) + 1})")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if not cells or all(c.strip() == "" for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
            else:
                rows.append((start, cells))
    except csv.Error as exc:
        raise ImportRefused(f"malformed CSV at line {reader.line_num}: {exc}") from None
    if header is None:
        raise ImportRefused("the CSV is empty: the first line must name the columns")
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise ImportRefused(f"the column {name!r} appears twice in the header")
        seen.add(name)
    return CsvTable(header, rows)


# -- column plan -----------------------------------------------------------------------------


@dataclass
class Columns:
    """What each CSV column is for."""

    write: dict[int, str] = field(default_factory=dict)  # column index -> field written
    key: int | None = None  # the column holding the match key
    version: int | None = None
    ignored: list[str] = field(default_factory=list)


def _writable(obj: ObjectDef, name: str, hidden: frozenset[str], read_only: frozenset[str]) -> bool:
    if name == "owner":
        return True
    f = obj.field(name)
    return not f.is_computed and not f.read_only and name not in read_only and name not in hidden


def _default_target(obj: ObjectDef, header: str, hidden: frozenset[str]) -> str | None:
    """The field a header names: a field name (any case), or a label in any language."""
    wanted = header.strip().casefold()
    if not wanted:
        return None
    if wanted in ("id", "version", "owner"):
        return wanted
    fields = [f for f in obj.fields if f.name not in hidden]
    for f in fields:
        if f.name.casefold() == wanted:
            return f.name
    for f in fields:
        if any(label.strip().casefold() == wanted for label in f.labels.values()):
            return f.name
    return None


def plan_columns(obj: ObjectDef, header: Sequence[str], mapping: dict[str, str] | None, match: str | None,
                 hidden: frozenset[str], read_only: frozenset[str]) -> Columns:
    """Resolve the mapping (explicit, or by header) and the match key; raise ImportRefused."""
    if match is not None and match != "id":
        if not obj.has_field(match) or match in hidden:
            raise ImportRefused(f"match: {match!r} is not a field of {obj.name}")
        if obj.field(match).storage_type in UNMATCHABLE:
            raise ImportRefused(f"match: {match!r} cannot be used as a key (it holds a list or JSON)")
    targets: dict[int, str] = {}
    columns = Columns()
    if mapping is not None:
        positions = {name: i for i, name in enumerate(header)}
        missing = [c for c in mapping if c not in positions]
        if missing:
            raise ImportRefused(f"mapping names column(s) not in the CSV header: {', '.join(map(repr, missing))}")
        unknown = [t for t in mapping.values() if t not in ("id", "version", "owner")
                   and (not obj.has_field(t) or t in hidden)]
        if unknown:
            raise ImportRefused(f"mapping names unknown field(s) of {obj.name}: {', '.join(map(repr, unknown))}")
        for column, target in mapping.items():
            targets[positions[column]] = target
        for i, name in enumerate(header):
            special = name.strip().casefold()
            if i in targets:
                continue
            if special in ("version", "id") and special not in mapping.values():
                targets[i] = special  # an id or version column keeps its meaning without being mapped
            else:
                columns.ignored.append(name)
    else:
        for i, name in enumerate(header):
            target = _default_target(obj, name, hidden)
            if target is None:
                columns.ignored.append(name)
            else:
                targets[i] = target
    used: dict[str, int] = {}
    for i, target in targets.items():
        if target in used:
            raise ImportRefused(f"columns {header[used[target]]!r} and {header[i]!r} both map to {target!r}")
        used[target] = i
    for i, target in sorted(targets.items()):
        if target == match:
            columns.key = i
            if target not in ("id", "version") and _writable(obj, target, hidden, read_only):
                columns.write[i] = target
        elif target == "version":
            columns.version = i
        elif target == "id":
            columns.ignored.append(header[i])
        elif _writable(obj, target, hidden, read_only):
            columns.write[i] = target
        elif mapping is not None:
            raise ImportRefused(f"{target!r} is read-only and cannot be imported")
        else:
            columns.ignored.append(header[i])
    if match is not None and columns.key is None:
        raise ImportRefused(f"match: no column holds {match!r} (map one to it)")
    if match is None and columns.version is not None:
        columns.ignored.append(header[columns.version])
        columns.version = None
    return columns


def parse_mapping(raw: str | None) -> dict[str, str] | None:
    if raw is None:
        return None
    """The --mapping / ?mapping= JSON object {"CSV column": "field"}; ImportRefused if it is not one."""
    try:
        mapping = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImportRefused(f"mapping is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError):
        raise ImportRefused('mapping must be a JSON object {"CSV column": "field", ...}') from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise ImportRefused('mapping must be a JSON object {"CSV column": "field", ...}')
    return mapping


# -- the import ------------------------------------------------------------------------------


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: dict[int, list[FieldError]] = field(default_factory=dict)  # by line
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        lines = sorted(self.errors)
        body: dict[str, Any] = {
            "created": self.created, "updated": self.updated,
            "errors": [{"row": line, "errors": [e.as_dict() for e in self.errors[line]]}
                       for line in lines[:MAX_REPORTED_ERRORS]],
            "dry_run": self.dry_run, "ignored_columns": self.ignored_columns}
        if len(lines) > MAX_REPORTED_ERRORS:
            body["error_rows"] = len(lines)
        return body


def unescape(f: FieldDef | None, cell: str) -> str:
    """Undo export's formula protection: "'=x" is "=x" in a text, long_text or email field."""
    if f is not None and f.storage_type in ESCAPED_TYPES and len(cell) > 1 and cell[0] == "'" \
            and cell[1:].startswith(FORMULA_START):
        return cell[1:]
    return cell


def import_rows(service: RecordService, object_name: str, table: CsvTable, actor: Actor, *,
                mapping: dict[str, str] | None = None, match: str | None = None,
                dry_run: bool = False) -> ImportResult:
    """Create (or, with `match`, update) one record per CSV row. Raises ImportRefused for a
    bad mapping or key, RecordError (403) when the actor may not create and nothing matches."""
    runtime = service.runtime
    obj, _ = service.object_and_table(object_name)  # an unknown object is a RecordError, not a KeyError
    result = ImportResult(dry_run=dry_run)
    if dry_run:
        with runtime.db.engine.connect() as conn:
            transaction = conn.begin()
            try:
                _import(service, obj, table, actor, mapping, match, result, conn)  # the rollback drops its log lines too
            finally:
                transaction.rollback()  # a dry run writes nothing: records, history, outbox, timers
    else:
        _import(service, obj, table, actor, mapping, match, result, None)
    return result


def _import(service: RecordService, obj: ObjectDef, table: CsvTable, actor: Actor, mapping, match,
            result: ImportResult, conn) -> None:
    with _connection(service, conn) as c:
        access = service.access(obj, actor, c)
        hidden, read_only, may_create = access.hidden, access.read_only, access.rights.create
    columns = plan_columns(obj, table.header, mapping, match, hidden, read_only)
    if match is None and not may_create:
        raise service.forbidden(obj, actor, "create")
    result.ignored_columns = columns.ignored
    width = len(table.header)
    fields = {i: (obj.field(t) if obj.has_field(t) else None) for i, t in columns.write.items()}
    key_field = obj.field(match) if match is not None and match != "id" else None
    prepared: list[tuple[int, dict[str, Any], str]] = []  # (line, data, version cell)
    keys: dict[int, Any] = {}
    for line, cells in table.rows:
        if len(cells) != width:
            result.errors[line] = [FieldError(None, "malformed_row",
                                              f"the row has {len(cells)} cell(s), the header {width}")]
            continue
        data = {name: unescape(fields[i], cells[i]) for i, name in columns.write.items()}
        if columns.key is not None:
            raw = unescape(key_field, cells[columns.key])
            if not is_blank(raw):
                try:
                    keys[line] = _key(key_field, raw)
                except CoercionError as exc:
                    label = key_field.label(actor.language) if key_field else "id"
                    result.errors[line] = [FieldError(match, exc.code, f"{label} {exc.message}")]
                    continue
        prepared.append((line, data, cells[columns.version].strip() if columns.version is not None else ""))
    existing = _existing(service, obj.name, match, set(keys.values()), actor, conn) if keys else {}
    first_line: dict[Any, int] = {}
    rows: list[tuple[int, str, dict[str, Any]]] = []  # (line, "create" | "update", data)
    for line, data, version in prepared:
        key = keys.get(line)
        if key is not None:
            if key in first_line:
                result.errors[line] = [FieldError(match, "duplicate_key",
                                                  f"{match} repeats the key of line {first_line[key]}")]
                continue
            first_line[key] = line
        found = existing.get(key, []) if key is not None else []
        if len(found) > 1:
            result.errors[line] = [FieldError(match, "ambiguous_match",
                                              f"{len(found)} existing records have this {match}; cannot choose one")]
        elif found:  # a blank cell on update clears the field
            update = {"id": found[0], **{k: (None if is_blank(v) else v) for k, v in data.items()}}
            number = whole_number(version) if version else None
            if version and number is None:
                result.errors[line] = [FieldError("version", "invalid_type", "version must be a whole number")]
                continue
            if number is not None:
                update["version"] = number
            rows.append((line, "update", update))
        elif match == "id" and key is not None:
            result.errors[line] = [FieldError("id", "not_found", f"{obj.label(actor.language)} {key} does not exist")]
        elif not may_create:
            result.errors[line] = list(service.forbidden(obj, actor, "create").errors)
        else:  # a blank cell on create leaves the field unset, so its default applies
            rows.append((line, "create", {k: v for k, v in data.items() if not is_blank(v)}))
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        for kind in ("create", "update"):
            part = [(line, data) for line, k, data in batch if k == kind]
            if part:
                written = _write(service, obj.name, kind, part, actor, conn, result)
                if kind == "create":
                    result.created += written
                else:
                    result.updated += written


def whole_number(text: str, max_digits: int = 19) -> int | None:
    """A non-negative integer in ASCII digits (at most `max_digits`), or None: refuses "²" and "١"."""
    text = text.strip()
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def _key(f: FieldDef | None, raw: str) -> Any:
    if f is None:  # match on id
        return coerce(FieldDef(id="id", name="id", type="lookup"), raw)
    return coerce(f, raw)


def _existing(service: RecordService, object_name: str, match: str, keys: set[Any], actor: Actor,
              conn) -> dict[Any, list[str]]:
    """Ids of the records the actor may see, by match key value."""
    found: dict[Any, list[str]] = {}
    values = sorted(keys, key=str)
    for start in range(0, len(values), 500):
        chunk = [_filter_value(v) for v in values[start:start + 500]]
        query = Query(filter=[[match, "in", chunk]], sort=("id",), limit=MAX_LIMIT, fields=(match,))
        while True:
            page = service.list(object_name, query, actor=actor, conn=conn)
            for record in page.records:
                found.setdefault(record[match], []).append(record["id"])
            if not page.next_cursor:
                break
            query = replace(query, cursor=page.next_cursor)
    return found


def _filter_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _write(service: RecordService, object_name: str, kind: str, part: list[tuple[int, dict]], actor: Actor,
           conn, result: ImportResult) -> int:
    """One bulk call; per-row errors go to `result` by line. Returns how many rows it wrote."""
    lines = [line for line, _ in part]
    data = [d for _, d in part]
    call = service.bulk_create if kind == "create" else service.bulk_update
    try:
        if conn is None:
            outcome: BulkResult = call(object_name, data, actor=actor)
        else:
            with conn.begin_nested():  # a failed batch leaves the dry run's transaction usable
                outcome = call(object_name, data, actor=actor, conn=conn)
    except RecordError as exc:  # the whole call failed (e.g. a database constraint): no row written
        for line in lines:
            result.errors[line] = list(exc.errors)
        return 0
    except AutomationError as exc:
        for line in lines:
            result.errors[line] = [FieldError(None, "automation_failed", str(exc))]
        return 0
    for index, errors in outcome.errors.items():
        result.errors[lines[index]] = list(errors)
    return outcome.written


def _connection(service: RecordService, conn):
    return service.reading(conn)


# -- export ------------------------------------------------------------------------------------


def export_columns(obj: ObjectDef, hidden: frozenset[str], fields: Sequence[str] | None) -> list[str]:
    if fields:
        return ["id", *dict.fromkeys(f for f in fields if f != "id")]
    return ["id", *(f.name for f in obj.fields if f.name not in hidden), *SYSTEM_EXPORT_COLUMNS]


def cell(value: Any, f: FieldDef | None) -> str:
    """A value as CSV text: exact decimals, ISO dates, true/false, multi-picklists joined with ';'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if f is not None and f.storage_type == "multi_picklist" and isinstance(value, (list, tuple)):
        return ";".join(str(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    text = str(value)
    if f is not None and f.storage_type in ESCAPED_TYPES and text.startswith(FORMULA_START):
        return "'" + text
    return text


def export_rows(service: RecordService, object_name: str, query: Query, actor: Actor, columns: list[str],
                first_page=None) -> Iterator[tuple[str, int]]:
    """(CSV text, rows in it): the header, then one chunk per page of PAGE records, fetched
    with keyset pagination."""
    obj = service.runtime.model.object(object_name)
    defs = {c: obj.field(c) if obj.has_field(c) else None for c in columns}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    page = first_page or service.list(object_name, query, actor=actor)
    while True:
        for record in page.records:
            writer.writerow([cell(record.get(c), defs[c]) for c in columns])
        yield buffer.getvalue(), len(page.records)
        buffer.seek(0)
        buffer.truncate()
        if not page.next_cursor:
            return
        page = service.list(object_name, replace(query, cursor=page.next_cursor), actor=actor)


def export_query(service: RecordService, object_name: str, query: Query, actor: Actor) -> tuple[Query, list[str]]:
    """The export's paged query and its columns; refuses (RecordError) an actor without the
    export right or an unknown object. Hidden fields are never columns."""
    obj, _ = service.object_and_table(object_name)
    with service.reading(None) as conn:
        access = service.access(obj, actor, conn)
        if not access.rights.export:
            raise service.forbidden(obj, actor, "export")
        hidden = access.hidden
    columns = export_columns(obj, hidden, query.fields)
    return replace(query, limit=PAGE, cursor=None, fields=tuple(columns[1:]) if query.fields else None), columns

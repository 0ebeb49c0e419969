"""Values as a person reads them, in their language: option labels instead of codes, numbers and
dates in the locale's format (Babel), yes/no for booleans, titles instead of record ids."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

from babel import dates as babel_dates
from babel import numbers as babel_numbers

from metacrm.engine import identity
from metacrm.engine.errors import RecordError
from metacrm.engine.records.query import Query
from metacrm.engine.records.service import RecordService
from metacrm.engine.ui import strings
from metacrm.metamodel.model import FieldDef, ObjectDef
from metacrm.metamodel.types import RELATION_TYPES

#: System columns every record has, as fields (labels in every language) for display.
SYSTEM_FIELDS = {f.name: f for f in (
    FieldDef(id="owner", name="owner", type="user", labels={"en": "Owner", "zh-CN": "负责人", "zh-TW": "負責人"}),
    FieldDef(id="created_at", name="created_at", type="datetime",
             labels={"en": "Created", "zh-CN": "创建时间", "zh-TW": "建立時間"}),
    FieldDef(id="updated_at", name="updated_at", type="datetime",
             labels={"en": "Last modified", "zh-CN": "最后修改时间", "zh-TW": "最後修改時間"}),
    FieldDef(id="created_by", name="created_by", type="user",
             labels={"en": "Created by", "zh-CN": "创建人", "zh-TW": "建立者"}),
    FieldDef(id="updated_by", name="updated_by", type="user",
             labels={"en": "Last modified by", "zh-CN": "最后修改人", "zh-TW": "最後修改者"}),
)}

LOCALES = {"en": "en_US", "zh-CN": "zh_Hans_CN", "zh-TW": "zh_Hant_TW"}


def locale_of(language: str) -> str:
    return LOCALES.get(language, "en_US")


def field_for(obj: ObjectDef, name: str) -> FieldDef | None:
    """The object's field `name`, or the system column of that name, or None."""
    if obj.has_field(name):
        return obj.field(name)
    return SYSTEM_FIELDS.get(name)


def display(field: FieldDef, value: Any, language: str, titles: dict[str, str] | None = None) -> str:
    """`value` of `field` as text for a person (an empty string for no value)."""
    if value is None or value == "":
        return ""
    kind = field.storage_type
    locale = locale_of(language)
    if kind == "picklist":
        return _option_label(field, value, language)
    if kind == "multi_picklist":
        return ", ".join(_option_label(field, v, language) for v in value)
    if kind == "boolean":
        return strings.text(language, "yes" if value else "no")
    if kind in ("decimal", "currency") and isinstance(value, (Decimal, int, float)):
        return babel_numbers.format_decimal(value, format=f"#,##0.{'0' * field.scale}" if field.scale else "#,##0",
                                            locale=locale, decimal_quantization=False)
    if kind == "percent" and isinstance(value, (Decimal, int, float)):
        return babel_numbers.format_decimal(value, locale=locale) + "%"
    if kind == "integer" and isinstance(value, int):
        return babel_numbers.format_decimal(value, locale=locale)
    if kind == "date" and isinstance(value, date):
        return babel_dates.format_date(value, format="medium", locale=locale)
    if kind == "datetime" and isinstance(value, datetime):
        return babel_dates.format_datetime(value, format="medium", locale=locale)
    if field.type in RELATION_TYPES or field.type == "user":
        return (titles or {}).get(str(value), "")
    return str(value)


def _option_label(field: FieldDef, value: Any, language: str) -> str:
    for option in field.options:
        if option.value == value:
            return option.label(language)
    return str(value)


def lookup_titles(service: RecordService, obj: ObjectDef, fields: Iterable[FieldDef], rows: list[dict[str, Any]],
                  unit) -> dict[str, str]:
    """Titles of the records that `rows` point to through `fields`, read as the user (one query per
    target object): a record the user may not see gets no title, so its name is not disclosed."""
    model = service.runtime.model
    fields = list(fields)
    wanted: dict[str, set[str]] = {}
    for field in fields:
        if field.type in RELATION_TYPES and field.target in model:
            ids = {str(r[field.name]) for r in rows if r.get(field.name)}
            if ids:
                wanted.setdefault(field.target, set()).update(ids)
    titles: dict[str, str] = {}
    for target, ids in wanted.items():
        target_obj = model.object(target)
        title = target_obj.title_field
        query = Query(filter=[["id", "in", sorted(ids)]], fields=(title,), limit=len(ids))
        try:
            found = service.list(target, query, actor=unit.actor, conn=unit.conn).records
        except RecordError:  # no read right on the target: no titles, never an error page
            continue
        titles.update({str(r["id"]): str(r.get(title) or r["id"]) for r in found})
    users = {str(r[f.name]) for f in fields if f.type == "user" for r in rows if r.get(f.name)}
    titles.update(identity.user_names(unit.conn, users))  # one query for every user on the page
    return titles

"""The form layout of an object as one user may see it: tabs of sections of fields.

The layout comes from `visible_layouts` (hidden fields already gone); an object without a form
layout gets one section with every field the user may see, then the owner. System columns named
in a layout (owner, created_at...) are shown as the system fields of engine/ui/formats.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.identity.actor import Actor
from metacrm.engine.ui import formats
from metacrm.metamodel.model import FieldDef, Model, ObjectDef, pick_label


@dataclass
class Section:
    label: str
    columns: int
    fields: list[FieldDef]


@dataclass
class Tab:
    label: str
    sections: list[Section] = field(default_factory=list)


def form_tabs(model: Model, obj: ObjectDef, actor: Actor, hidden: frozenset[str]) -> list[Tab]:
    """The tabs of the form (one unnamed tab when the layout has none)."""
    form = visible_layouts(model, obj, actor).get("form")
    language = actor.language
    if not form:
        names = [f.name for f in obj.fields if f.name not in hidden] + ["owner"]
        return [Tab("", [Section("", 2, _fields(obj, names, hidden))])]
    tabs = [Tab("", [_section(obj, s, language, hidden) for s in form.get("sections", [])])]
    tabs += [Tab(pick_label(t.get("label") or {}, language, ""), [_section(obj, s, language, hidden)
                                                               for s in t["sections"]]) for t in form.get("tabs", [])]
    return [t for t in tabs if t.sections]


def fields_of(tabs: list[Tab]) -> list[FieldDef]:
    return [f for tab in tabs for section in tab.sections for f in section.fields]


def _section(obj: ObjectDef, section: dict[str, Any], language: str, hidden: frozenset[str]) -> Section:
    columns = max(1, min(int(section.get("columns", 2) or 1), 3))
    return Section(pick_label(section.get("label") or {}, language, ""), columns,
                   _fields(obj, section["fields"], hidden))


def _fields(obj: ObjectDef, names: list[str], hidden: frozenset[str]) -> list[FieldDef]:
    found = [formats.field_for(obj, n) for n in names if n not in hidden]
    return [f for f in found if f is not None]

"""Layouts as one actor may see them: nothing left in them names a field hidden from the actor.

- form: hidden fields leave their sections; a section emptied that way goes, and so does a
  tab left without sections (their labels would describe what is hidden);
- list views: hidden columns and sort keys go; a view whose filter reads a hidden field goes
  entirely (the actor could not run it, and the condition would name the field and a
  threshold), as does a view left without columns;
- related lists: a list of an object the actor cannot read, or through a `via` lookup hidden
  on it, goes; columns and sort keys hidden on that object go;
- kanban: grouped by a hidden field it goes; hidden card fields go; a hidden sum_field is
  left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.views import visible_view
from metacrm.engine.security.access import rights_of
from metacrm.metamodel.concealment import thaw
from metacrm.metamodel.model import Model, ObjectDef


def visible_layouts(model: Model, obj: ObjectDef, actor: Actor) -> dict[str, Any]:
    layouts = thaw(obj.layouts)
    hidden = rights_of(obj, actor).hidden
    if not layouts:
        return layouts
    shown: dict[str, Any] = {}
    if "form" in layouts:
        shown["form"] = _form(layouts["form"], hidden)
    if "list_views" in layouts:
        shown["list_views"] = [v for v in (visible_view(obj, view, hidden) for view in layouts["list_views"]) if v]
    if "related_lists" in layouts:
        shown["related_lists"] = [r for r in (_related(model, related, actor) for related in layouts["related_lists"])
                                  if r]
    kanban = layouts.get("kanban")
    if kanban and kanban["group_by"] not in hidden:
        shown["kanban"] = _kanban(kanban, hidden)
    return shown


def _form(form: dict[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    shown = dict(form)
    if "sections" in form:
        shown["sections"] = _sections(form["sections"], hidden)
    if "tabs" in form:
        tabs = [dict(tab, sections=_sections(tab["sections"], hidden)) for tab in form["tabs"]]
        shown["tabs"] = [t for t, original in zip(tabs, form["tabs"]) if t["sections"] or not original["sections"]]
    return shown


def _sections(sections: list[dict[str, Any]], hidden: frozenset[str]) -> list[dict[str, Any]]:
    shown = []
    for section in sections:
        fields = [name for name in section["fields"] if name not in hidden]
        if fields or not section["fields"]:
            shown.append(dict(section, fields=fields))
    return shown


def _related(model: Model, related: dict[str, Any], actor: Actor) -> dict[str, Any] | None:
    child = model.objects.get(related["object"])
    if child is None:
        return None
    rights = rights_of(child, actor)
    if rights.read == "none" or related["via"] in rights.hidden:
        return None
    shown = dict(related)
    if "columns" in related:
        shown["columns"] = [name for name in related["columns"] if name not in rights.hidden]
    if "sort" in related:
        shown["sort"] = _sort(related["sort"], rights.hidden)
    return shown


def _kanban(kanban: Mapping[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    shown = {k: v for k, v in kanban.items() if not (k == "sum_field" and v in hidden)}
    if "card_fields" in kanban:
        shown["card_fields"] = [name for name in kanban["card_fields"] if name not in hidden]
    return shown


def _sort(keys: list[str], hidden: frozenset[str]) -> list[str]:
    return [key for key in keys if key.lstrip("-") not in hidden]

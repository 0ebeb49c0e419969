"""The home page: where a user starts the day. Built from the metadata, naming no object:

- due today and overdue: for each object with a kanban whose cards show a date, the user's own
  open records (engine.ui.stages) with that date today or earlier (activities, tickets, deals
  past their close date);
- my open records of each object with a kanban: count, sum of the kanban's sum_field (the
  database's GROUP BY), and the next few by date, linking to the list filtered the same way;
- records near an SLA breach: objects with SLA policies, the user's records whose SLA status
  field says warning or breached;
- unread notifications, with a link to the inbox.

Every read is a RecordService read as the user, so permissions and hidden fields apply.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.engine import identity
from metacrm.engine.api.layouts import visible_layouts
from metacrm.engine.errors import RecordError
from metacrm.engine.records.query import Query
from metacrm.engine.records.totals import group_totals
from metacrm.engine.security.access import rights_of
from metacrm.engine.ui import formats
from metacrm.engine.ui.auth import signed_in
from metacrm.engine.ui.chrome import chrome
from metacrm.engine.ui.kanban import summed_field
from metacrm.engine.ui.render import page
from metacrm.engine.ui.stages import closed_values
from metacrm.metamodel.model import ObjectDef

SHOWN = 5
AT_RISK = ("warning", "breached")


def root(request: Request) -> Response:
    return RedirectResponse("/app", status_code=303)


def home_page(request: Request) -> Response:
    service = request.app.state.records
    with signed_in(request) as unit:
        user = identity.get_user(unit.conn, unit.actor.user_id)
        model = service.runtime.model
        due, mine, risky = [], [], []
        for obj in model.objects.values():
            if rights_of(obj, unit.actor).read == "none":
                continue
            layouts = visible_layouts(model, obj, unit.actor)
            try:
                if layouts.get("kanban"):
                    due += _due(service, unit, obj, layouts["kanban"])
                    mine.append(_mine(service, unit, obj, layouts["kanban"]))
                risky += _at_risk(service, unit, obj)
            except RecordError:  # a field the layout names is not filterable for this user: leave it out
                continue
        due.sort(key=lambda item: (item["date"], item["title"]))
        return page(request, "home.html", {
            "user_name": user.name if user else "", "due": due, "mine": mine, "risky": risky, "active": "home",
            **chrome(service, unit)}, language=unit.language)


def _open_filter(obj: ObjectDef, group_by: str, user_id: str) -> list[Any]:
    closed = closed_values(obj, group_by)
    return [["owner", "eq", user_id]] + ([[group_by, "not_in", list(closed)]] if closed else [])


def _date_field(obj: ObjectDef, kanban: dict[str, Any], hidden: frozenset[str]):
    for name in kanban.get("card_fields", ()):
        f = formats.field_for(obj, name)
        if f is not None and f.storage_type == "date" and name not in hidden and name not in obj.read_time_formulas:
            return f
    return None


def _due(service, unit, obj: ObjectDef, kanban: dict[str, Any]) -> list[dict[str, Any]]:
    f = _date_field(obj, kanban, rights_of(obj, unit.actor).hidden)
    if f is None:
        return []
    today = unit.actor.clock.today()
    query = Query(filter=_open_filter(obj, kanban["group_by"], unit.actor.user_id) + [[f.name, "le", today.isoformat()]],
                  sort=(f.name,), limit=20, fields=tuple(dict.fromkeys((obj.title_field, f.name))))
    found = service.list(obj.name, query, actor=unit.actor, conn=unit.conn).records
    language = unit.language
    return [{"title": str(r.get(obj.title_field) or r["id"]), "url": f"/app/o/{obj.name}/{r['id']}",
             "object": obj.label(language), "date": r[f.name], "when": formats.display(f, r[f.name], language),
             "overdue": r[f.name] < today} for r in found]


def _mine(service, unit, obj: ObjectDef, kanban: dict[str, Any]) -> dict[str, Any]:
    language, actor = unit.language, unit.actor
    group, sum_name = kanban["group_by"], summed_field(obj, kanban)
    open_filter = _open_filter(obj, group, actor.user_id)
    totals = group_totals(service, obj.name, group, sum_name, actor=actor, filter=open_filter, conn=unit.conn)
    count = sum(t.count for t in totals.values())
    total = sum((t.sum for t in totals.values() if t.sum is not None), 0) if sum_name else None
    date_field = _date_field(obj, kanban, rights_of(obj, actor).hidden)
    sort = (date_field.name,) if date_field else ("-updated_at",)
    found = service.list(obj.name, Query(filter=open_filter, sort=sort, limit=SHOWN, fields=tuple(dict.fromkeys(
        n for n in (obj.title_field, group, sum_name, date_field.name if date_field else None) if n))),
        actor=actor, conn=unit.conn).records
    group_def = obj.field(group)
    closed = set(closed_values(obj, group))
    params = [("f.owner", "me")] + [(f"f.{group}", o.value) for o in group_def.options if o.value not in closed]
    return {"label": obj.plural_labels.get(language) or obj.label(language), "count": count,
            "sum": formats.display(obj.field(sum_name), total, language) if sum_name else None,
            "url": f"/app/o/{obj.name}?" + urlencode(params),
            "records": [{"title": str(r.get(obj.title_field) or r["id"]), "url": f"/app/o/{obj.name}/{r['id']}",
                         "stage": formats.display(group_def, r.get(group), language),
                         "amount": formats.display(obj.field(sum_name), r.get(sum_name), language) if sum_name else "",
                         "when": formats.display(date_field, r.get(date_field.name), language) if date_field else ""}
                        for r in found]}


def _at_risk(service, unit, obj: ObjectDef) -> list[dict[str, Any]]:
    if not obj.sla_policies:
        return []
    hidden = rights_of(obj, unit.actor).hidden
    targets = {t.status_field: t.due_field for p in obj.sla_policies for t in p.targets
               if t.status_field not in hidden and t.due_field not in hidden}
    if not targets:
        return []
    risky = {"or": [[status, "in", list(AT_RISK)] for status in targets]}
    due_field = next(iter(targets.values()))
    found = service.list(obj.name, Query(filter=[["owner", "eq", unit.actor.user_id], risky], sort=(due_field,),
                                         limit=10), actor=unit.actor, conn=unit.conn).records
    language = unit.language
    return [{"title": str(r.get(obj.title_field) or r["id"]), "url": f"/app/o/{obj.name}/{r['id']}",
             "object": obj.label(language),
             "status": ", ".join(formats.display(obj.field(s), r.get(s), language) for s in targets
                                 if r.get(s) in AT_RISK),
             "breached": any(r.get(s) == "breached" for s in targets),
             "when": formats.display(obj.field(due_field), r.get(due_field), language)} for r in found]

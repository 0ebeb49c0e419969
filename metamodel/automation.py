"""Automation metadata: rules (trigger, condition, actions) and state machines, compiled.

Compiled here, with the object they belong to: expressions are parsed and checked
once, email/notification templates are parsed once (syntax errors point at the file),
cron schedules and durations are validated. The engine's automation package runs
these definitions; it never parses metadata itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Collection, Mapping

from metacrm.metamodel import filters as flt
from metacrm.metamodel import types as ft

DURATION = re.compile(r"^(-?)([0-9]+)(m|h|d|w)$")
RECORD_TRIGGERS = frozenset({"created", "updated", "saved", "deleted", "changed", "inbound"})
SELF_WRITING_ACTIONS = frozenset({"set", "assign", "pool", "plugin"})  # may write the rule's own record


def parse_duration(text: str) -> timedelta:
    sign, amount, unit = DURATION.match(text).groups()
    delta = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}[unit]
    return delta * int(amount) * (-1 if sign else 1)


@dataclass(frozen=True)
class TriggerDef:
    on: str
    fields: tuple[str, ...] = ()
    from_values: tuple | None = None
    to_values: tuple | None = None
    date_field: str | None = None
    offset: timedelta = timedelta(0)
    since_change: str | None = None
    since_related: tuple[str, str] | None = None  # (child object, via field)
    cron: str | None = None
    filter: Any = None

    @property
    def is_timed(self) -> bool:
        return self.on == "time"


@dataclass(frozen=True)
class ActionDef:
    """One action. `kind` says which; `assignments` are compiled expressions by field name."""

    kind: str
    object: str | None = None
    via: str | None = None
    parent: str | None = None
    filter: Any = None
    assignments: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple = ()  # assign rules: ((expression, target dict), ...)


@dataclass(frozen=True)
class RuleDef:
    name: str
    object: str
    trigger: TriggerDef
    condition: Any  # Expression or None
    actions: tuple[ActionDef, ...]
    active: bool = True
    order: int = 0
    roles: tuple[str, ...] = ()  # manual rules: who may run them (empty: whoever may edit the record)

    @property
    def key(self) -> str:
        return f"{self.object}.{self.name}"

    @property
    def writes_record(self) -> bool:
        """Whether its actions may write the record it runs on (create and update_related write others)."""
        return any(action.kind in SELF_WRITING_ACTIONS for action in self.actions)


@dataclass(frozen=True)
class TransitionDef:
    sources: tuple[str, ...]
    target: str
    guard: Any = None
    guard_messages: Mapping[str, str] = field(default_factory=dict)
    roles: tuple[str, ...] = ()
    actions: tuple[ActionDef, ...] = ()


@dataclass(frozen=True)
class StateMachineDef:
    field: str
    initial: tuple[str, ...]
    transitions: tuple[TransitionDef, ...]
    on_enter: Mapping[str, tuple[ActionDef, ...]] = field(default_factory=dict)
    on_exit: Mapping[str, tuple[ActionDef, ...]] = field(default_factory=dict)

    def transition(self, source: str | None, target: str) -> TransitionDef | None:
        for t in self.transitions:
            if target == t.target and (source in t.sources or "*" in t.sources):
                return t
        return None


class Context:
    """What compiling automation needs from the object compiler (kept as callables, no import cycle)."""

    def __init__(self, shell, shells, problems, expression: Callable, check_template: Callable,
                 plugin_actions: Collection[str] | None = None):
        self.shell, self.shells, self.problems = shell, shells, problems
        self.expression, self.check_template = expression, check_template
        self.plugin_actions = plugin_actions  # None: not known here (a stored revision), not checked

    def problem(self, message: str, where: tuple) -> None:
        self.problems.append(self.shell.doc.problem(message, where))


def compile_rules(ctx: Context) -> tuple[RuleDef, ...]:
    rules, names = [], set()
    for index, raw in enumerate(ctx.shell.data.get("automations", ())):
        where = ("automations", index)
        if raw["name"] in names:
            ctx.problem(f"automation {raw['name']!r} is defined twice", where + ("name",))
        names.add(raw["name"])
        trigger = _trigger(ctx, raw["trigger"], where + ("trigger",))
        condition = None
        if raw.get("condition"):
            condition = ctx.expression(raw["condition"], where + ("condition",), "boolean", previous=True)
        actions = compile_actions(ctx, raw["actions"], where + ("actions",))
        if raw.get("roles") and raw["trigger"]["on"] != "manual":
            ctx.problem("roles say who may run a manual rule; this rule is not manual", where + ("roles",))
        if trigger is not None:
            rules.append(RuleDef(raw["name"], ctx.shell.name, trigger, condition, actions,
                                 raw.get("active", True), index, tuple(raw.get("roles", ()))))
    return tuple(rules)


def _trigger(ctx: Context, raw: Mapping[str, Any], where: tuple) -> TriggerDef | None:
    fields = ctx.shell.fields
    on = raw["on"]
    for i, name in enumerate(raw.get("fields", ())):
        if name not in fields:
            ctx.problem(f"unknown field {name!r}", where + ("fields", i))
    if on == "changed" and not raw.get("fields"):
        ctx.problem("a 'changed' trigger needs the fields it watches", where)
    if ("from" in raw or "to" in raw) and len(raw.get("fields", ())) != 1:
        ctx.problem("from/to values need exactly one watched field", where)
    if on == "time":
        variants = [k for k in ("field", "since_change", "since_related") if k in raw]
        if len(variants) != 1:
            ctx.problem("a time trigger needs one of: field (+ offset), since_change (+ after), "
                        "since_related (+ after)", where)
            return None
        if "field" in raw and (raw["field"] not in fields or ctx.shell.kinds[raw["field"]] not in ("date", "datetime")):
            ctx.problem(f"{raw['field']!r} is not a date or datetime field", where + ("field",))
        if "since_change" in raw and raw["since_change"] not in fields:
            ctx.problem(f"unknown field {raw['since_change']!r}", where + ("since_change",))
        if ("since_change" in raw or "since_related" in raw) and "after" not in raw:
            ctx.problem("say how long after, e.g. after: 7d", where)
        if "since_related" in raw:
            spec = raw["since_related"]
            child = ctx.shells.get(spec["object"])
            via = child.fields.get(spec["via"]) if child else None
            if via is None or via.get("target") != ctx.shell.name:
                ctx.problem(f"since_related needs a lookup {spec['via']!r} on {spec['object']!r} pointing at "
                            f"{ctx.shell.name}", where + ("since_related",))
    if on == "schedule":
        cron = raw.get("cron")
        from croniter import croniter

        if not cron or not croniter.is_valid(cron):
            ctx.problem(f"a schedule needs a valid cron expression, not {cron!r}", where + ("cron",))
            return None
    if raw.get("filter") is not None:
        try:
            flt.parse_filter(raw["filter"], ctx.shell.kind_of)
        except flt.FilterError as exc:
            ctx.problem(str(exc), where + ("filter",))
    related = raw.get("since_related")
    return TriggerDef(
        on=on, fields=tuple(raw.get("fields", ())),
        from_values=tuple(raw["from"]) if "from" in raw else None,
        to_values=tuple(raw["to"]) if "to" in raw else None,
        date_field=raw.get("field"),
        offset=parse_duration(raw.get("offset") or raw.get("after") or "0m"),
        since_change=raw.get("since_change"),
        since_related=(related["object"], related["via"]) if related else None,
        cron=raw.get("cron"), filter=raw.get("filter"),
    )


def compile_actions(ctx: Context, raws, where: tuple) -> tuple[ActionDef, ...]:
    actions = []
    for index, raw in enumerate(raws):
        (kind, spec), = raw.items()
        action = _action(ctx, kind, spec, where + (index, kind))
        if action is not None:
            actions.append(action)
    return tuple(actions)


def _assignments(ctx: Context, shell, values: Mapping[str, str], where: tuple) -> dict[str, Any]:
    compiled = {}
    for name, source in values.items():
        target = shell.fields.get(name)
        if name == "owner":
            kind = "text"
        elif target is None:
            ctx.problem(f"{shell.name} has no field {name!r}", where + (name,))
            continue
        elif target["type"] in ft.COMPUTED_TYPES:
            ctx.problem(f"{name!r} is computed and cannot be set", where + (name,))
            continue
        else:
            kind = shell.kinds[name]
        expression = ctx.expression(str(source), where + (name,), kind, previous=True)
        if expression is not None:
            compiled[name] = expression
    return compiled


def _action(ctx: Context, kind: str, spec: Any, where: tuple) -> ActionDef | None:
    shell, shells = ctx.shell, ctx.shells
    if kind == "set":
        return ActionDef("set", assignments=_assignments(ctx, shell, spec, where))
    if kind == "create":
        target = shells.get(spec["object"])
        if target is None:
            ctx.problem(f"unknown object {spec['object']!r}", where + ("object",))
            return None
        return ActionDef("create", object=target.name, assignments=_assignments(ctx, target, spec["fields"], where + ("fields",)))
    if kind == "update_related":
        if spec.get("parent"):
            relation = shell.fields.get(spec["parent"])
            if relation is None or relation["type"] not in ft.RELATION_TYPES:
                ctx.problem(f"{spec['parent']!r} is not a lookup of {shell.name}", where + ("parent",))
                return None
            target = shells[relation["target"]]
            return ActionDef("update_related", parent=spec["parent"], object=target.name,
                             assignments=_assignments(ctx, target, spec["set"], where + ("set",)))
        child = shells.get(spec.get("object"))
        via = child.fields.get(spec.get("via")) if child else None
        if via is None or via.get("target") != shell.name:
            ctx.problem("update_related needs parent: <lookup>, or object + via (a lookup pointing here)", where)
            return None
        if spec.get("filter") is not None:
            try:
                flt.parse_filter(spec["filter"], child.kind_of)
            except flt.FilterError as exc:
                ctx.problem(str(exc), where + ("filter",))
        return ActionDef("update_related", object=child.name, via=spec["via"], filter=spec.get("filter"),
                         assignments=_assignments(ctx, child, spec["set"], where + ("set",)))
    if kind == "assign":
        strategy = spec["strategy"]
        if strategy in ("round_robin", "least_loaded") and not spec.get("group"):
            ctx.problem(f"{strategy} assignment needs a group", where)
        if strategy == "rules" and not spec.get("rules"):
            ctx.problem("rules assignment needs a list of rules", where)
        conditions = []
        for i, rule in enumerate(spec.get("rules", ())):
            expression = ctx.expression(rule["when"], where + ("rules", i, "when"), "boolean", previous=True)
            if not rule.get("group") and not rule.get("user"):
                ctx.problem("an assignment rule needs a group or a user", where + ("rules", i))
            conditions.append((expression, {k: v for k, v in rule.items() if k != "when"}))
        field_name = spec.get("field", "owner")
        if field_name != "owner" and (field_name not in shell.fields or shell.fields[field_name]["type"] != "user"):
            ctx.problem(f"{field_name!r} is not a user field", where + ("field",))
        return ActionDef("assign", options={k: v for k, v in spec.items() if k != "rules"}, conditions=tuple(conditions))
    if kind in ("email", "notify"):
        for key in ("subject", "body", "message"):
            if key in spec:
                ctx.check_template(spec[key], where + (key,))
        return ActionDef(kind, options=dict(spec))
    if kind == "plugin" and ctx.plugin_actions is not None and spec.get("action") not in ctx.plugin_actions:
        offered = ", ".join(sorted(ctx.plugin_actions)) or "none: no plugin is installed"
        ctx.problem(f"no plugin provides the action {spec.get('action')!r} (offered: {offered})", where + ("action",))
        return None
    if kind in ("webhook", "plugin"):
        return ActionDef(kind, options=dict(spec))
    if kind == "pool":
        (operation, pool), = spec.items()
        return ActionDef("pool", options={"operation": operation, "pool": pool})
    ctx.problem(f"unknown action {kind!r}", where)
    return None


def compile_state_machines(ctx: Context) -> tuple[StateMachineDef, ...]:
    machines = []
    for index, raw in enumerate(ctx.shell.data.get("state_machines", ())):
        where = ("state_machines", index)
        field_raw = ctx.shell.fields.get(raw["field"])
        if field_raw is None or field_raw["type"] != "picklist":
            ctx.problem(f"a state field must be a picklist; {raw['field']!r} is not", where + ("field",))
            continue
        states = {o if isinstance(o, str) else o["value"] for o in field_raw["options"]}

        def check_states(values, at):
            for value in values:
                if value not in states and value != "*":
                    ctx.problem(f"{value!r} is not a value of {raw['field']}", at)

        check_states(raw.get("initial", ()), where + ("initial",))
        transitions = []
        for t, spec in enumerate(raw["transitions"]):
            at = where + ("transitions", t)
            sources = (spec["from"],) if isinstance(spec["from"], str) else tuple(spec["from"])
            check_states(sources + (spec["to"],), at)
            guard = ctx.expression(spec["guard"], at + ("guard",), "boolean", previous=True) if spec.get("guard") else None
            messages = spec.get("guard_message") or {}
            transitions.append(TransitionDef(
                sources, spec["to"], guard, {"en": messages} if isinstance(messages, str) else dict(messages),
                tuple(spec.get("roles", ())), compile_actions(ctx, spec.get("actions", ()), at + ("actions",))))
        hooks = {}
        for key in ("on_enter", "on_exit"):
            hooks[key] = {}
            for state, actions in (raw.get(key) or {}).items():
                check_states([state], where + (key, state))
                hooks[key][state] = compile_actions(ctx, actions, where + (key, state))
        machines.append(StateMachineDef(raw["field"], tuple(raw.get("initial", ())), tuple(transitions),
                                        hooks["on_enter"], hooks["on_exit"]))
    return tuple(machines)


# -- approvals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalStepDef:
    name: str
    approvers: tuple[str, ...]
    mode: str = "any"
    condition: Any = None


@dataclass(frozen=True)
class ApprovalProcessDef:
    name: str
    object: str
    entry_condition: Any
    steps: tuple[ApprovalStepDef, ...]
    lock: bool = True
    on_submit: tuple[ActionDef, ...] = ()
    on_approve: tuple[ActionDef, ...] = ()
    on_reject: tuple[ActionDef, ...] = ()
    on_recall: tuple[ActionDef, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


def compile_approvals(ctx: Context) -> tuple[ApprovalProcessDef, ...]:
    processes, names = [], set()
    for index, raw in enumerate(ctx.shell.data.get("approval_processes", ())):
        where = ("approval_processes", index)
        if raw["name"] in names:
            ctx.problem(f"approval process {raw['name']!r} is defined twice", where + ("name",))
        names.add(raw["name"])
        entry = ctx.expression(raw["entry_condition"], where + ("entry_condition",), "boolean") \
            if raw.get("entry_condition") else None
        steps = []
        for s, step in enumerate(raw["steps"]):
            condition = ctx.expression(step["condition"], where + ("steps", s, "condition"), "boolean") \
                if step.get("condition") else None
            steps.append(ApprovalStepDef(step["name"], tuple(step["approvers"]), step.get("mode", "any"), condition))
        hooks = {key: compile_actions(ctx, raw.get(key, ()), where + (key,))
                 for key in ("on_submit", "on_approve", "on_reject", "on_recall")}
        label = raw.get("label")
        processes.append(ApprovalProcessDef(raw["name"], ctx.shell.name, entry, tuple(steps), raw.get("lock", True),
                                            labels={"en": label} if isinstance(label, str) else dict(label or {}),
                                            **hooks))
    return tuple(processes)


# -- SLA policies ----------------------------------------------------------------------------

SLA_STATUSES = ("on_track", "warning", "breached", "met", "paused")


@dataclass(frozen=True)
class CalendarDef:
    """Business hours: minutes count only inside `hours` on `days`, outside `holidays`."""

    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start_minute: int = 9 * 60
    end_minute: int = 18 * 60
    holidays: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SLATargetDef:
    name: str
    within: timedelta
    met_when: Any
    due_field: str
    status_field: str


@dataclass(frozen=True)
class SLAPolicyDef:
    name: str
    object: str
    condition: Any
    targets: tuple[SLATargetDef, ...]
    calendar: CalendarDef | None = None
    pause_when: Any = None
    warn_before: timedelta | None = None
    on_warning: tuple[ActionDef, ...] = ()
    on_breach: tuple[ActionDef, ...] = ()


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def compile_sla(ctx: Context) -> tuple[SLAPolicyDef, ...]:
    policies = []
    for index, raw in enumerate(ctx.shell.data.get("sla_policies", ())):
        where = ("sla_policies", index)
        condition = ctx.expression(raw["condition"], where + ("condition",), "boolean") if raw.get("condition") else None
        pause = ctx.expression(raw["pause_when"], where + ("pause_when",), "boolean") if raw.get("pause_when") else None
        targets = []
        for t, spec in enumerate(raw["targets"]):
            at = where + ("targets", t)
            met = ctx.expression(spec["met_when"], at + ("met_when",), "boolean")
            due = ctx.shell.fields.get(spec["due_field"])
            if due is None or due["type"] != "datetime":
                ctx.problem(f"due_field {spec['due_field']!r} must be a datetime field", at + ("due_field",))
            status = ctx.shell.fields.get(spec["status_field"])
            if status is None or status["type"] != "picklist" or not set(SLA_STATUSES) <= {
                    o if isinstance(o, str) else o["value"] for o in status["options"]}:
                ctx.problem(f"status_field {spec['status_field']!r} must be a picklist with the values "
                            f"{', '.join(SLA_STATUSES)}", at + ("status_field",))
            targets.append(SLATargetDef(spec["name"], parse_duration(spec["within"]), met, spec["due_field"],
                                        spec["status_field"]))
        calendar = None
        if raw.get("calendar"):
            spec = raw["calendar"]
            start, end = (int(h[:2]) * 60 + int(h[3:]) for h in spec["hours"])
            if end <= start:
                ctx.problem("calendar hours must start before they end", where + ("calendar", "hours"))
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(spec.get("timezone", "UTC"))
            except Exception:
                ctx.problem(f"unknown time zone {spec.get('timezone')!r}", where + ("calendar", "timezone"))
            calendar = CalendarDef(spec.get("timezone", "UTC"),
                                   tuple(DAYS.index(d) for d in spec.get("days", DAYS[:5])), start, end,
                                   frozenset(str(h) for h in spec.get("holidays", ())))
        policies.append(SLAPolicyDef(
            raw["name"], ctx.shell.name, condition, tuple(targets), calendar, pause,
            parse_duration(raw["warn_before"]) if raw.get("warn_before") else None,
            compile_actions(ctx, raw.get("on_warning", ()), where + ("on_warning",)),
            compile_actions(ctx, raw.get("on_breach", ()), where + ("on_breach",))))
    return tuple(policies)


# -- public pools ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolDef:
    """A public pool (公海): ownerless records that members may claim."""

    name: str
    object: str
    members: tuple[str, ...]
    admins: tuple[str, ...] = ()
    holding_limit: int | None = None
    reclaim_cooldown: timedelta | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def compile_pools(ctx: Context) -> tuple[PoolDef, ...]:
    pools, names = [], set()
    for index, raw in enumerate(ctx.shell.data.get("pools", ())):
        if raw["name"] in names:
            ctx.problem(f"pool {raw['name']!r} is defined twice", ("pools", index, "name"))
        names.add(raw["name"])
        label = raw.get("label")
        pools.append(PoolDef(raw["name"], ctx.shell.name, tuple(raw["members"]), tuple(raw.get("admins", ())),
                             raw.get("holding_limit"),
                             parse_duration(raw["reclaim_cooldown"]) if raw.get("reclaim_cooldown") else None,
                             {"en": label} if isinstance(label, str) else dict(label or {})))
    return tuple(pools)


def check_pool_actions(ctx: Context, rules: tuple[RuleDef, ...]) -> None:
    """Pool actions must name a pool of their object."""
    names = {raw["name"] for raw in ctx.shell.data.get("pools", ())}
    for index, rule in enumerate(rules):
        for a, action in enumerate(rule.actions):
            if action.kind == "pool" and action.options["pool"] not in names:
                ctx.problem(f"{ctx.shell.name} has no pool {action.options['pool']!r}",
                            ("automations", rule.order, "actions", a, "pool"))

"""Who is acting, in which language, at what time: passed explicitly to every call.

There is no ambient "current user". Automations, imports and the CLI build an Actor;
`system=True` marks the engine's own writes (migrations, rollups, automations that
may set read-only fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from metacrm.engine.expressions.evaluator import Clock


@dataclass(frozen=True)
class Actor:
    """`channel` says where a write came from (api, ui, cli, import, inbound, automation);
    `depth` counts how many automation rules led to this write (loops stop at a limit)."""

    user_id: str | None = None
    language: str = "en"
    system: bool = False
    clock: Clock = field(default_factory=Clock, compare=False)
    roles: frozenset[str] = frozenset()
    channel: str = "api"
    depth: int = 0

    def for_automation(self) -> "Actor":
        """The actor of writes made by automation on behalf of this one."""
        return replace(self, system=True, channel="automation", depth=self.depth + 1)


SYSTEM = Actor(system=True)

"""Who is acting, in which language, at what time: passed explicitly to every call.

There is no ambient "current user". Automations, imports and the CLI build an Actor;
`system=True` marks the engine's own writes (migrations, rollups, automations that
may set read-only fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.expressions.evaluator import Clock


@dataclass(frozen=True)
class Actor:
    user_id: str | None = None
    language: str = "en"
    system: bool = False
    clock: Clock = field(default_factory=Clock, compare=False)


SYSTEM = Actor(system=True)

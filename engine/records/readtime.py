"""Fill in the formulas computed when read (see metamodel.readtime) on records the engine reads.

Every path that hands a stored record to a person or to an expression — get, list, the
records loaded before an update or delete, relation paths such as `account.days_open`,
automation on timers and schedules — calls `fill`, so these values are those of the
reading moment and the reading user, never a stale copy from the last write.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.expressions import Evaluator
from metacrm.metamodel.model import Model, ObjectDef

#: How many relation hops of read-time formulas reading read-time formulas are followed
#: (only a cycle in the data, such as two accounts each other's parent, gets this far).
MAX_DEPTH = 8


def fill(conn: Connection, model: Model, tables: Mapping[str, sa.Table], obj: ObjectDef, rows: list[dict[str, Any]],
         evaluator: Evaluator | None = None, cache: dict | None = None, depth: int = 0) -> None:
    """Compute `obj`'s read-time formulas in place on `rows` (in dependency order)."""
    names = obj.read_time_formulas
    if not names or not rows:
        return
    from metacrm.engine.identity.actor import SYSTEM
    from metacrm.engine.records.pipeline import Pipeline
    from metacrm.engine.records.relations import prefetch, related_values

    evaluator = evaluator or Evaluator()
    cache = {} if cache is None else cache
    pipeline = Pipeline(obj, SYSTEM, evaluator)
    paths = _paths(obj)
    if paths and depth <= MAX_DEPTH:
        prefetch(conn, model, tables, obj, rows, cache, paths, evaluator, depth)
    for row in rows:
        if depth > MAX_DEPTH:
            row.update(dict.fromkeys(names))
            continue
        related = related_values(conn, model, tables, obj, row, cache, paths=paths, evaluator=evaluator,
                                 depth=depth) if paths else {}
        pipeline.compute_formulas(row, related, [], names)


@lru_cache(maxsize=256)
def _paths(obj: ObjectDef) -> tuple[tuple[str, ...], ...]:
    """The relation paths that the read-time formulas of `obj` read."""
    found: set[tuple[str, ...]] = set()
    for name in obj.read_time_formulas:
        found |= obj.field(name).expression.relation_paths
    return tuple(sorted(found))

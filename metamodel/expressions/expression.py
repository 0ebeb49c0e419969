"""The compiled form of an expression: what the checker produces and the evaluator runs.

It lives in the metamodel because a compiled Model holds Expressions; evaluation
(engine/expressions) reads them and never parses.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

#: The largest exponent `**` accepts (a literal one is checked at definition, others at run time).
MAX_EXPONENT = 100


@dataclass(frozen=True)
class Expression:
    """A parsed, checked expression: `tree` is evaluated, `paths` are the names it reads."""

    source: str
    tree: ast.Expression = field(compare=False, repr=False)
    kind: str = "any"
    paths: frozenset[tuple[str, ...]] = frozenset()

    @property
    def fields(self) -> frozenset[str]:
        """Fields of the record itself that the expression reads."""
        return frozenset(p[0] for p in self.paths if len(p) == 1)

    @property
    def relation_paths(self) -> frozenset[tuple[str, ...]]:
        return frozenset(p for p in self.paths if len(p) > 1)

    def __str__(self) -> str:
        return self.source

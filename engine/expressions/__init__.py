"""Evaluation of the expression language (defined and checked in metacrm.metamodel.expressions).

An `Expression` is parsed and type-checked once, when metadata is compiled; an `Evaluator`
evaluates it many times against plain dicts of values. `Expression`, `ExpressionError` and
`compile_expression` are re-exported for callers that only know this package.
"""

from metacrm.engine.expressions.evaluator import Clock, EvaluationError, Evaluator
from metacrm.metamodel.expressions import Expression, ExpressionError, compile_expression

__all__ = [
    "Clock",
    "EvaluationError",
    "Evaluator",
    "Expression",
    "ExpressionError",
    "compile_expression",
]

"""The expression language of defaults, formulas, validation rules and conditions.

Expressions are Python-syntax snippets evaluated by simpleeval. They are parsed and
type-checked once, when metadata is compiled (`compile_expression`); the resulting
`Expression` is evaluated many times against plain dicts of values.
"""

from metacrm.engine.expressions.checker import ExpressionError, compile_expression
from metacrm.engine.expressions.evaluator import Clock, EvaluationError, Evaluator, Expression

__all__ = [
    "Clock",
    "EvaluationError",
    "Evaluator",
    "Expression",
    "ExpressionError",
    "compile_expression",
]

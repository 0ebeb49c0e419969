"""The expression language of defaults, formulas, validation rules and conditions: its syntax,
types and function library, checked once when metadata is compiled (`compile_expression`).

Running an `Expression` is the engine's (engine/expressions: `Evaluator`); the language itself
is part of the metamodel, so compiling metadata needs nothing from the engine.
"""

from metacrm.metamodel.expressions.checker import ExpressionError, compile_expression
from metacrm.metamodel.expressions.expression import Expression

__all__ = ["Expression", "ExpressionError", "compile_expression"]

"""Evaluate checked expressions with simpleeval, bounded and null-safe.

An Evaluator is made once per unit of work (one write, one bulk call) and evaluates
any number of pre-parsed Expressions: nothing is parsed at evaluation time, and each
Expression is turned into closures once (engine/expressions/closures.py); simpleeval
evaluates only what those do not translate.
"""

from __future__ import annotations

import ast
import operator
import threading
from datetime import date, datetime, timezone
from decimal import Decimal, DivisionByZero, InvalidOperation
from typing import Any, Callable, Mapping

from simpleeval import EvalWithCompoundTypes

from metacrm.engine.expressions.closures import closure
from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.expressions.expression import MAX_EXPONENT, Expression
from metacrm.metamodel.expressions.functions import LIBRARY, MAX_TEXT

class EvaluationError(MetacrmError, ValueError):
    """An expression failed at run time (division by zero, overflow, bad value)."""


class Clock:
    """Where expressions get the time; tests inject a fixed one."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def today(self) -> date:
        return self.now().date()


class FixedClock(Clock):
    def __init__(self, at: datetime):
        self.at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.at


def _null_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        return fn(_decimal(a), _decimal(b))

    return wrapper


def _decimal(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _compare(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def wrapper(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        return fn(_decimal(a), _decimal(b))

    return wrapper


def _add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, str):
        if len(a) + len(b) > MAX_TEXT:
            raise EvaluationError("text result too long")
        return a + b
    return _decimal(a) + _decimal(b)


def _power(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if abs(b) > MAX_EXPONENT:
        raise EvaluationError(f"exponent {b} is larger than {MAX_EXPONENT}")
    return _decimal(a) ** _decimal(b)


def _in(item: Any, container: Any) -> bool:
    return container is not None and item in container


OPERATORS = {
    ast.Add: _add,
    ast.Sub: _null_safe(operator.sub),
    ast.Mult: _null_safe(operator.mul),
    ast.Div: _null_safe(operator.truediv),
    ast.FloorDiv: _null_safe(operator.floordiv),
    ast.Mod: _null_safe(operator.mod),
    ast.Pow: _power,
    ast.USub: lambda a: None if a is None else -a,
    ast.UAdd: lambda a: a,
    ast.Not: operator.not_,
    ast.Eq: lambda a, b: _decimal(a) == _decimal(b),
    ast.NotEq: lambda a, b: _decimal(a) != _decimal(b),
    ast.Lt: _compare(operator.lt),
    ast.LtE: _compare(operator.le),
    ast.Gt: _compare(operator.gt),
    ast.GtE: _compare(operator.ge),
    ast.In: _in,
    ast.NotIn: lambda a, b: not _in(a, b),
}


_OPERATOR_ITEMS = tuple(OPERATORS.items())


def _null_safe_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: None if any(a is None for a in args) else fn(*args)


#: The library without its context functions, wrapped for blank-safety once per process.
_PLAIN_FUNCTIONS = {
    name: (_null_safe_call(impl) if signature.null_safe else impl)
    for name, (impl, signature) in LIBRARY.items() if not signature.needs_context
}
_CONTEXT_FUNCTIONS = {name: impl for name, (impl, signature) in LIBRARY.items() if signature.needs_context}
_local = threading.local()


def _simpleeval() -> EvalWithCompoundTypes:
    """simpleeval's evaluator is costly to build and holds per-call state (names), so each
    thread reuses one; Evaluator sets its names and functions before every evaluation."""
    engine = getattr(_local, "engine", None)
    if engine is None:
        engine = _local.engine = EvalWithCompoundTypes(operators=OPERATORS, functions={}, names={})
    return engine


class Evaluator:
    """Evaluates Expressions for one acting user at one moment (cheap to create)."""

    def __init__(self, clock: Clock | None = None, user_id: str | None = None):
        self.clock = clock or Clock()
        self.user_id = user_id
        self._functions = dict(_PLAIN_FUNCTIONS)
        self._functions.update({name: (lambda f: lambda: f(self))(impl) for name, impl in _CONTEXT_FUNCTIONS.items()})

    def evaluate(self, expression: Expression, names: Mapping[str, Any]) -> Any:
        """The value of `expression` with `names` (fields and dotted relation paths)."""
        compiled = closure(expression, _OPERATOR_ITEMS)
        try:
            if compiled is not None:
                return compiled(names, self._functions)
            engine = _simpleeval()
            engine.names, engine.functions = names, self._functions
            return engine.eval(expression.source, previously_parsed=expression.tree.body)
        except EvaluationError:
            raise
        except (ZeroDivisionError, DivisionByZero):
            raise EvaluationError(f"division by zero in {expression.source!r}") from None
        except (InvalidOperation, OverflowError, ArithmeticError) as exc:
            raise EvaluationError(f"arithmetic error in {expression.source!r}: {exc}") from None
        except (TypeError, ValueError, KeyError) as exc:
            raise EvaluationError(f"cannot evaluate {expression.source!r}: {exc}") from None
        except Exception as exc:  # simpleeval's own refusals (NumberTooHigh, ...)
            raise EvaluationError(f"cannot evaluate {expression.source!r}: {exc}") from None

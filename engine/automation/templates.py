"""Jinja2 templates for emails and notifications: sandboxed, compiled once per source, and
rendered within limits so that no template can stall or exhaust a worker.

Limits, per rendering: at most MAX_OUTPUT characters of output and of any one value built on
the way, at most MAX_STEPS loop iterations, calls and arithmetic operations, at most
MAX_SECONDS of time (checked at each step). A template over a limit fails with
TemplateLimitError, like any template error: the action fails and the write rolls back.

What keeps each single step small: the environment is immutable (no list.append, no
namespace()), only filters and string methods that cannot multiply their input exist, `*`,
`**`, `%` and `+` check the size of their result before building it, call arguments are
bounded, and every `for` loop iterates through a counting guard.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from datetime import date
from decimal import Decimal
from functools import lru_cache, wraps
from typing import Any, Callable, Iterable, Iterator, Mapping

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from metacrm.metamodel.templates import DATE_ATTRIBUTES, FILTERS, GLOBALS, STR_METHODS
from metacrm.metamodel.errors import MetacrmError

MAX_OUTPUT = 2_000_000  # characters: more than the longest text field (1,000,000), far below a worker's memory
MAX_STEPS = 100_000
MAX_SECONDS = 2.0
MAX_NUMBER_BITS = 4_096  # integers a template computes (a 64-bit field value times a few more)
MAX_FORMAT_WIDTH = 1_000  # "%1000000s" would build a million characters from one
LOOP_GUARD = "__metacrm_loop_guard"  # filters added by _Guards; metamodel.templates refuses them in a source
CONCAT_GUARD = "__metacrm_concat"


class TemplateFailed(TemplateError, MetacrmError):
    """A template could not be rendered with this record (an unknown attribute of a value, a
    division by zero, a filter given the wrong kind of value): the admin's template meeting the
    data, not a bug of the engine."""


class TemplateLimitError(TemplateFailed):
    """A template went over one of the limits above."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(f"the template took more than {MAX_STEPS:,} steps (loop iterations, calls)")
        if self.steps % 256 == 0 and time.monotonic() > self.deadline:
            raise TemplateLimitError(f"the template took more than {MAX_SECONDS:g} seconds")


_BUDGET: ContextVar[_Budget] = ContextVar("metacrm_template_budget")


def _step() -> None:
    budget = _BUDGET.get(None)
    if budget is None:  # rendering outside render() (cannot happen through this module): no budget
        raise TemplateLimitError("templates render through engine.automation.templates.render")
    budget.step()


def _check_size(value: Any) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and len(value) > MAX_OUTPUT:
        raise TemplateLimitError(f"the template built a value of more than {MAX_OUTPUT:,} characters or items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_NUMBER_BITS:
        raise TemplateLimitError("the template built a number that is too large")
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > 1_000:
        raise TemplateLimitError("the template built a number that is too large")
    return value


def _check_arguments(args: Iterable[Any]) -> None:
    for value in args:
        _check_size(value)


def _check_format(spec: str) -> None:
    """Refuse `%`-format widths and precisions above MAX_FORMAT_WIDTH (or given by `*`)."""
    index = 0
    while True:
        index = spec.find("%", index)
        if index < 0:
            return
        index += 1
        while index < len(spec) and spec[index] in "#0- +(":
            if spec[index] == "(":  # %(name)s
                index = spec.find(")", index) + 1 or len(spec)
            else:
                index += 1
        start = index
        while index < len(spec) and (spec[index].isdigit() or spec[index] in ".*"):
            index += 1
        for number in spec[start:index].split("."):
            if "*" in number or (number and int(number) > MAX_FORMAT_WIDTH):
                raise TemplateLimitError(f"a format width or precision is larger than {MAX_FORMAT_WIDTH}")


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * (len(new) - len(old))


def _guard_replace(text: Any, old: Any = "", new: Any = "", count: Any = -1) -> None:
    count = -1 if count is None else count
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and isinstance(count, int):
        if _replace_size(text, old, new, count) > MAX_OUTPUT:
            raise TemplateLimitError(f"replace would build more than {MAX_OUTPUT:,} characters")


def _guard_join(items: Any, separator: Any = "") -> None:
    if isinstance(items, (list, tuple)) and isinstance(separator, str):
        if len(separator) * max(len(items) - 1, 0) + sum(len(str(i)) for i in items) > MAX_OUTPUT:
            raise TemplateLimitError(f"join would build more than {MAX_OUTPUT:,} characters")


def _concat(parts: list[Any]) -> str:
    """`a ~ b ~ c`, with the size checked before the text is built."""
    texts = [str(part) for part in parts]
    if sum(map(len, texts)) > MAX_OUTPUT:
        raise TemplateLimitError(f"the template built a value of more than {MAX_OUTPUT:,} characters")
    return "".join(texts)


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with size checks on operators, calls and filters (see the module docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "//"})

    def wrap_str_format(self, value: Any) -> None:
        """No str.format: "{:>999999999}" would build a gigabyte. Use the format filter ("%")."""
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in STR_METHODS
        if isinstance(obj, (int, float, Decimal)):
            return False
        if isinstance(obj, date):
            return attr in DATE_ATTRIBUTES
        return True

    def call(__self, __context, __obj, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        _step()
        _check_arguments((*args, *kwargs.values()))
        if getattr(__obj, "__name__", None) == "replace" and isinstance(getattr(__obj, "__self__", None), str):
            _guard_replace(__obj.__self__, *args, **kwargs)
        if getattr(__obj, "__name__", None) == "strftime":
            _check_format(str(args[0]) if args else "")
        return _check_size(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        _step()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) \
                        and len(sequence) * times > MAX_OUTPUT:
                    raise TemplateLimitError(f"the template built a value of more than {MAX_OUTPUT:,} characters")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
                raise TemplateLimitError("the template built a number that is too large")
        if operator == "**" and isinstance(right, (int, float, Decimal)) and isinstance(left, (int, float, Decimal)):
            if abs(right) > 64 and abs(left) not in (0, 1):
                raise TemplateLimitError("an exponent larger than 64")
            if isinstance(left, int) and left.bit_length() * abs(right) > MAX_NUMBER_BITS:
                raise TemplateLimitError("the template built a number that is too large")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return _check_size(super().call_binop(context, operator, left, right))


def _limited_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)  # keeps Jinja's pass_context / pass_environment markers
    def limited(*args: Any, **kwargs: Any) -> Any:
        _step()
        _check_arguments((*args, *kwargs.values()))
        values = [a for a in args if not _is_jinja_internal(a)]
        if name == "replace" and len(values) >= 3:
            _guard_replace(str(values[0]), *values[1:4])
        if name == "format" and values:
            _check_format(str(values[0]))
        if name == "join" and values:
            _guard_join(list(values[0]) if isinstance(values[0], (list, tuple)) else values[0], *values[1:2])
        return _check_size(function(*args, **kwargs))

    return limited


def _is_jinja_internal(value: Any) -> bool:
    module = type(value).__module__
    return module.startswith("jinja2.")


def _loop_guard(iterable: Any) -> Iterator[Any]:
    """Every `for` loop iterates through this (see _guard_loops): each item is a step."""
    for item in iterable:
        _step()
        yield item


def _environment() -> LimitedEnvironment:
    environment = LimitedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_blank_none)
    environment.filters = {name: _limited_filter(name, f) for name, f in environment.filters.items()
                           if name in FILTERS}
    environment.filters[LOOP_GUARD] = _loop_guard
    environment.filters[CONCAT_GUARD] = _concat
    environment.globals = {name: value for name, value in environment.globals.items() if name in GLOBALS}
    return environment


def _blank_none(value: Any) -> Any:
    """A blank field prints as nothing, not as "None"."""
    return "" if value is None else value


ENVIRONMENT = _environment()


class _Guards(NodeTransformer):
    """Rewrites a parsed template: `for x in y` iterates `y|loop_guard`, `a ~ b` is `[a, b]|concat`."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, LOOP_GUARD, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        node = self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), CONCAT_GUARD, [], [], None, None,
                            lineno=node.lineno)


@lru_cache(maxsize=1024)
def _template(source: str):
    return ENVIRONMENT.from_string(_Guards().visit(ENVIRONMENT.parse(source)))


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render with `record`, `previous`, `object` and `label` in scope; unknown names and going
    over a limit are errors."""
    token = _BUDGET.set(_Budget())
    try:
        parts: list[str] = []
        size = 0
        for chunk in _template(source).generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateLimitError(f"the template wrote more than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
            _step()
        return "".join(parts)
    except RecursionError:
        raise TemplateLimitError("the template calls itself too deeply") from None
    except MemoryError:
        raise TemplateLimitError("the template needed too much memory") from None
    except TemplateFailed:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
        raise TemplateFailed(str(exc)) from exc
    finally:
        _BUDGET.reset(token)

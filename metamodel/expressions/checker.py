"""Parse an expression once and check it before anything runs.

The checker accepts a small, closed subset of Python syntax, resolves every name
against the object's fields (and relation paths such as `account.grade`), infers the
kind of every node, and rewrites relation paths into plain names so that evaluation
never performs attribute access.
"""

from __future__ import annotations

import ast
from decimal import Decimal
from typing import Callable

from metacrm.metamodel.errors import MetacrmError
from metacrm.metamodel.expressions.expression import MAX_EXPONENT, Expression
from metacrm.metamodel.expressions.functions import LIBRARY
from metacrm.metamodel.types import (
    KIND_ANY,
    KIND_BOOLEAN,
    KIND_DATE,
    KIND_DATETIME,
    KIND_LIST,
    KIND_NULL,
    KIND_NUMBER,
    KIND_TEXT,
)

#: resolve(path) -> kind; raises ExpressionError when the path names nothing.
Resolver = Callable[[tuple[str, ...]], str]

#: Spellings admins bring from YAML, JSON and spreadsheets; field names cannot take them.
LITERAL_WORDS = {"true": True, "false": False, "null": None, "none": None}

MAX_SOURCE = 4000
MAX_NODES = 500


class ExpressionError(MetacrmError, ValueError):
    """An expression that cannot be accepted, with a message for the admin."""


def compile_expression(source: str, resolve: Resolver, *, expect: str | None = None) -> Expression:
    """Parse, check and prepare `source`; `expect` is the kind the result must have."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expression is empty")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"expression is longer than {MAX_SOURCE} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg} (column {exc.offset})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ExpressionError("expression is too complex")
    checker = _Checker(resolve)
    kind = checker.visit(tree.body)
    tree = ast.fix_missing_locations(checker.rewrite(tree))
    if expect and not compatible(kind, expect):
        raise ExpressionError(f"expression gives {kind}, but {expect} is needed")
    return Expression(
        source=source,
        tree=tree,
        kind=kind,
        paths=frozenset(checker.paths),
    )


def compatible(actual: str, wanted: str) -> bool:
    """Whether a value of kind `actual` may stand where `wanted` is needed."""
    return actual == wanted or KIND_ANY in (actual, wanted) or actual == KIND_NULL


class _Checker:
    def __init__(self, resolve: Resolver):
        self.resolve = resolve
        self.paths: set[tuple[str, ...]] = set()

    # -- kinds -------------------------------------------------------------------------
    def visit(self, node: ast.AST) -> str:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"{_describe(node)} is not allowed in expressions")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> str:
        value = node.value
        if value is None:
            return KIND_NULL
        if isinstance(value, bool):
            return KIND_BOOLEAN
        if isinstance(value, (int, float)):
            return KIND_NUMBER
        if isinstance(value, str):
            return KIND_TEXT
        raise ExpressionError(f"constant {value!r} is not allowed")

    def visit_Name(self, node: ast.Name) -> str:
        if node.id.lower() in LITERAL_WORDS:
            value = LITERAL_WORDS[node.id.lower()]
            return KIND_NULL if value is None else KIND_BOOLEAN
        if node.id in LIBRARY:
            raise ExpressionError(f"{node.id} is a function: call it as {node.id}(...)")
        return self._path((node.id,))

    def visit_Attribute(self, node: ast.Attribute) -> str:
        path = attribute_path(node)
        if path is None:
            raise ExpressionError("only relation paths such as account.grade may use '.'")
        return self._path(path)

    def _path(self, path: tuple[str, ...]) -> str:
        if any(part.startswith("_") for part in path):
            raise ExpressionError(f"name {'.'.join(path)!r} is not allowed")
        kind = self.resolve(path)
        self.paths.add(path)
        return kind

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return KIND_BOOLEAN
        self._need(kind, KIND_NUMBER, "unary minus")
        return KIND_NUMBER

    def visit_BinOp(self, node: ast.BinOp) -> str:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Add) and KIND_TEXT in (left, right):
            self._need(left, KIND_TEXT, "'+' on text")
            self._need(right, KIND_TEXT, "'+' on text")
            return KIND_TEXT
        if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.Pow, ast.FloorDiv)):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        symbol = _SYMBOLS[type(node.op)]
        for kind in (left, right):
            if kind in (KIND_DATE, KIND_DATETIME):
                raise ExpressionError(f"'{symbol}' does not work on dates: use add_days() or days_between()")
            self._need(kind, KIND_NUMBER, f"'{symbol}'")
        if isinstance(node.op, ast.Pow) and isinstance(node.right, (ast.Constant, ast.BinOp)):
            exponent = _constant_value(node.right)
            if exponent is not None and abs(exponent) > MAX_EXPONENT:
                raise ExpressionError(f"exponent is larger than {MAX_EXPONENT}")
        return KIND_NUMBER

    def visit_BoolOp(self, node: ast.BoolOp) -> str:
        for value in node.values:
            self.visit(value)
        return KIND_BOOLEAN

    def visit_Compare(self, node: ast.Compare) -> str:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)):
                right = self._container(comparator, left)
            elif isinstance(op, (ast.Is, ast.IsNot)):
                raise ExpressionError("use == None or is_blank(x) instead of 'is'")
            else:
                right = self.visit(comparator)
                if not (compatible(left, right) or compatible(right, left)):
                    raise ExpressionError(f"cannot compare {left} with {right}")
            left = right
        return KIND_BOOLEAN

    def _container(self, node: ast.AST, item_kind: str) -> str:
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                kind = self.visit(element)
                if not compatible(kind, item_kind) and not compatible(item_kind, kind):
                    raise ExpressionError(f"cannot look for {item_kind} among {kind} values")
            return item_kind
        kind = self.visit(node)
        if kind not in (KIND_LIST, KIND_TEXT, KIND_ANY):
            raise ExpressionError(f"'in' needs a list, a multi-picklist or text, not {kind}")
        return kind

    def visit_IfExp(self, node: ast.IfExp) -> str:
        self.visit(node.test)
        body, orelse = self.visit(node.body), self.visit(node.orelse)
        if body == KIND_NULL:
            return orelse
        if orelse == KIND_NULL or compatible(orelse, body):
            return body
        raise ExpressionError(f"both branches of 'if ... else' must give one kind ({body} vs {orelse})")

    def visit_Call(self, node: ast.Call) -> str:
        if not isinstance(node.func, ast.Name) or node.func.id not in LIBRARY:
            name = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
            raise ExpressionError(f"unknown function {name!r}")
        if node.keywords:
            raise ExpressionError(f"{node.func.id}() takes no keyword arguments")
        name = node.func.id
        signature = LIBRARY[name][1]
        kinds = [self.visit(arg) for arg in node.args]
        count = len(kinds)
        low = signature.min_args if signature.min_args is not None else len(signature.params)
        if count < low or (not signature.variadic and count > len(signature.params)):
            raise ExpressionError(f"{name}() takes {len(signature.params)} argument(s), got {count}")
        for index, kind in enumerate(kinds):
            allowed = signature.params[min(index, len(signature.params) - 1)]
            if not any(compatible(kind, a) for a in allowed):
                raise ExpressionError(
                    f"argument {index + 1} of {name}() must be {' or '.join(allowed)}, not {kind}"
                )
        if isinstance(signature.returns, int):
            kind = kinds[signature.returns] if signature.returns < count else KIND_ANY
            return KIND_DATE if kind == KIND_DATETIME and name == "to_date" else kind
        return signature.returns

    def _need(self, kind: str, wanted: str, what: str) -> None:
        if not compatible(kind, wanted):
            raise ExpressionError(f"{what} needs {wanted} values, not {kind}")

    # -- rewriting ---------------------------------------------------------------------
    def rewrite(self, tree: ast.Expression) -> ast.Expression:
        """Turn relation paths into dotted names and float literals into Decimals."""

        class Rewriter(ast.NodeTransformer):
            def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
                path = attribute_path(node)
                return ast.copy_location(ast.Name(id=".".join(path), ctx=ast.Load()), node)

            def visit_Name(self, node: ast.Name) -> ast.AST:
                if node.id.lower() in LITERAL_WORDS:
                    return ast.copy_location(ast.Constant(LITERAL_WORDS[node.id.lower()]), node)
                return node

            def visit_Constant(self, node: ast.Constant) -> ast.AST:
                if isinstance(node.value, float):
                    return ast.copy_location(ast.Constant(Decimal(repr(node.value))), node)
                return node

        return Rewriter().visit(tree)


_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.Pow: "**", ast.FloorDiv: "//"}


def _constant_value(node: ast.AST) -> int | float | None:
    """The value of a constant numeric sub-expression (for compile-time bounds), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base, exponent = _constant_value(node.left), _constant_value(node.right)
        if base is None or exponent is None or abs(exponent) > MAX_EXPONENT:
            return float("inf") if exponent is not None else None
        try:
            return base**exponent
        except (OverflowError, ZeroDivisionError):
            return float("inf")
    return None


def attribute_path(node: ast.AST) -> tuple[str, ...] | None:
    """`name` or `a.b.c` as a tuple of names; None for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return tuple(reversed(parts))


def _describe(node: ast.AST) -> str:
    names = {
        "Lambda": "lambda", "ListComp": "a comprehension", "GeneratorExp": "a generator",
        "Subscript": "indexing ([...])", "NamedExpr": "assignment (:=)", "Dict": "a dict",
        "Set": "a set", "JoinedStr": "an f-string", "Starred": "*arguments",
    }
    return names.get(type(node).__name__, type(node).__name__)

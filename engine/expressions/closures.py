"""Checked expressions turned into nested Python closures, once per Expression.

simpleeval walks the tree on every evaluation: a dict lookup of the node type, a bound method
call and a safety check per node. Formulas, validation rules and rule conditions run on every
write, so `closure(expression)` builds the walk once — one closure per node, in the same order
and with the same operator functions, name lookup and errors as simpleeval's — and the
Evaluator calls it. An expression using anything not translated here (keywords, `is`, very long
literals) gets None and is evaluated by simpleeval as before, so results never differ.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any, Callable, Mapping

from simpleeval import MAX_STRING_LENGTH, FunctionNotDefined, NameNotDefined

from metacrm.metamodel.expressions.expression import Expression

#: names, functions -> value
Closure = Callable[[Mapping[str, Any], Mapping[str, Callable[..., Any]]], Any]


class _Unsupported(Exception):
    """A node this module does not translate: the expression stays with simpleeval."""


@lru_cache(maxsize=4096)
def closure(expression: Expression, operators: tuple[tuple[type, Callable[..., Any]], ...]) -> Closure | None:
    """The closure evaluating `expression` with `operators` (ast operator type -> function), or
    None if it uses something not translated. Cached per (expression, operators): a model
    revision compiles each of its expressions once per process."""
    try:
        return _Builder(expression.source, dict(operators)).build(expression.tree.body)
    except _Unsupported:
        return None


class _Builder:
    def __init__(self, source: str, operators: Mapping[type, Callable[..., Any]]):
        self.source, self.operators = source, operators

    def operator(self, op: ast.AST) -> Callable[..., Any]:
        if type(op) not in self.operators:  # simpleeval raises its own error for these
            raise _Unsupported
        return self.operators[type(op)]

    def build(self, node: ast.AST) -> Closure:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _Unsupported
        return method(node)

    def _Constant(self, node: ast.Constant) -> Closure:
        value = node.value
        if hasattr(value, "__len__") and len(value) > MAX_STRING_LENGTH:
            raise _Unsupported
        return lambda names, functions: value

    def _Name(self, node: ast.Name) -> Closure:
        name, source = node.id, self.source

        def lookup(names, functions):
            try:
                return names[name]
            except (TypeError, KeyError):
                pass
            if name in functions:
                return functions[name]
            raise NameNotDefined(name, source)

        return lookup

    def _UnaryOp(self, node: ast.UnaryOp) -> Closure:
        fn, operand = self.operator(node.op), self.build(node.operand)
        return lambda names, functions: fn(operand(names, functions))

    def _BinOp(self, node: ast.BinOp) -> Closure:
        fn, left, right = self.operator(node.op), self.build(node.left), self.build(node.right)
        return lambda names, functions: fn(left(names, functions), right(names, functions))

    def _BoolOp(self, node: ast.BoolOp) -> Closure:
        values = [self.build(v) for v in node.values]
        if isinstance(node.op, ast.And):
            def all_of(names, functions):
                result = False
                for value in values:
                    result = value(names, functions)
                    if not result:
                        break
                return result
            return all_of
        if isinstance(node.op, ast.Or):
            def any_of(names, functions):
                result = False
                for value in values:
                    result = value(names, functions)
                    if result:
                        break
                return result
            return any_of
        raise _Unsupported

    def _Compare(self, node: ast.Compare) -> Closure:
        first = self.build(node.left)
        steps = [(self.operator(op), self.build(c)) for op, c in zip(node.ops, node.comparators)]
        if len(steps) == 1:
            (fn, comparator), = steps
            return lambda names, functions: fn(first(names, functions), comparator(names, functions))

        def chain(names, functions):
            right = first(names, functions)
            result = True
            for fn, comparator in steps:
                if not result:
                    break
                left, right = right, comparator(names, functions)
                result = fn(left, right)
            return result

        return chain

    def _IfExp(self, node: ast.IfExp) -> Closure:
        test, body, orelse = self.build(node.test), self.build(node.body), self.build(node.orelse)
        return lambda names, functions: body(names, functions) if test(names, functions) else orelse(names, functions)

    def _Call(self, node: ast.Call) -> Closure:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise _Unsupported
        name, source, args = node.func.id, self.source, [self.build(a) for a in node.args]

        def call(names, functions):
            try:
                fn = functions[name]
            except KeyError:
                raise FunctionNotDefined(name, source) from None
            return fn(*(a(names, functions) for a in args))

        return call

    def _Tuple(self, node: ast.Tuple) -> Closure:
        items = self._items(node.elts)
        return lambda names, functions: tuple(i(names, functions) for i in items)

    def _List(self, node: ast.List) -> Closure:
        items = self._items(node.elts)
        return lambda names, functions: [i(names, functions) for i in items]

    def _items(self, elements: list[ast.AST]) -> list[Closure]:
        if any(isinstance(e, ast.Starred) for e in elements):
            raise _Unsupported
        return [self.build(e) for e in elements]

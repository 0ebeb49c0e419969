"""Reading request bodies: a size limit, JSON only where JSON is expected, clear 4xx errors.

Every JSON text a request carries (a body, a `filter` or `mapping` parameter) is parsed by
`parse_json`, which turns anything a client can get wrong into a 400: malformed JSON, NaN and
Infinity, numbers longer than Python converts (4,300 digits), lone UTF-16 surrogates
("\\ud800", which no database or encoder accepts) and nesting deeper than MAX_DEPTH.
Header values that must be whole numbers go through `whole_number`."""

from __future__ import annotations

import functools
import json
import math
from decimal import Decimal
from typing import Any

import anyio.from_thread

from starlette.requests import Request

from metacrm.engine.api.problems import Problem
from metacrm.metamodel.coercion import is_unicode, json_number

MAX_BODY = 1 * 1024 * 1024  # 1 MiB for JSON; CSV imports have their own limit
MAX_IMPORT = 20 * 1024 * 1024
MAX_DEPTH = 64  # nested JSON arrays and objects
MAX_NUMBER = 1_000  # characters of one JSON number: far beyond any field, far below Python's limit


def parse_json(text: str | bytes, what: str = "the body", *, exact: bool = False) -> Any:
    """The JSON value of `text`, or Problem(400) saying what is wrong with it. With `exact`,
    numbers with a fraction or exponent are Decimals, never floats (record values and filters:
    1234567890123456.78 must not become the float 1234567890123456.8)."""
    try:
        data = json.loads(text, parse_int=_int, parse_float=_exact if exact else _float, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Problem(400, f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise Problem(400, f"{what} is not UTF-8 (invalid byte at offset {exc.start})") from None
    except _BadNumber as exc:
        raise Problem(400, f"{what}: {exc}") from None
    except RecursionError:
        raise Problem(400, f"{what} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    problem = json_problem(data)
    if problem:
        raise Problem(400, f"{what}: {problem}")
    return data


class _BadNumber(ValueError):
    pass


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER:
        raise _BadNumber(f"a number has at most {MAX_NUMBER} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER:
        raise _BadNumber(f"a number has at most {MAX_NUMBER} digits")
    value = float(text)
    if not math.isfinite(value):  # 1e999 would come back as Infinity, which JSON cannot carry
        raise _BadNumber(f"{text} is out of the range of numbers")
    return value


def _exact(text: str) -> Decimal:
    if len(text) > MAX_NUMBER:
        raise _BadNumber(f"a number has at most {MAX_NUMBER} digits")
    return json_number(text)


def _no_constant(name: str) -> None:
    raise _BadNumber(f"{name} is not a JSON number")


def json_problem(data: Any) -> str | None:
    """What makes parsed JSON unusable (a lone surrogate, too deep), or None. Iterative: the
    depth check must not itself need a deep stack."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not is_unicode(value):
                return "text must be valid Unicode (it contains a lone surrogate such as \\ud800)"
        elif isinstance(value, (list, dict)):
            if depth >= MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            items = value if isinstance(value, list) else [*value.keys(), *value.values()]
            stack.extend((item, depth + 1) for item in items)
    return None


def whole_number(text: str, max_digits: int = 19) -> int | None:
    """A non-negative integer written in ASCII digits (at most `max_digits`), or None. Unlike
    str.isdigit() + int(), refuses "²" and "١" and never meets Python's digit limit."""
    text = text.strip()
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = whole_number(request.headers.get("content-length") or "")
    if declared is not None and declared > limit:
        raise Problem(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_BODY, *, exact: bool = False) -> Any:
    """The JSON body; with `exact`, numbers with a fraction or exponent are Decimals (record
    values: 1234567890123456.78 must not become the float 1234567890123456.8)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", "application/merge-patch+json"):
        raise Problem(415, "send the body as application/json")
    body = await read_body(request, limit)
    return parse_json(body or b"null", exact=exact)


async def read_object(request: Request, *, exact: bool = False) -> dict[str, Any]:
    data = await read_json(request, exact=exact)
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object")
    return data


def awaited(reader, *args, **kwargs):
    """Run an async body reader (read_body, read_json, read_object) from a handler running in the
    thread pool: the body is received on the event loop, the handler's blocking work stays off it."""
    return anyio.from_thread.run(functools.partial(reader, *args, **kwargs))

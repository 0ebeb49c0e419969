"""Reading request bodies: a size limit, JSON only where JSON is expected, clear 4xx errors."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from engine.api.problems import Problem
from engine.records.coercion import json_integer, json_number

MAX_BODY = 1 * 1024 * 1024  # 1 MiB for JSON; CSV imports have their own limit
MAX_IMPORT = 20 * 1024 * 1024


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
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
    try:
        if exact:
            return json.loads(body or b"null", parse_float=json_number, parse_int=json_integer)
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError: JSONDecodeError, or an integer too long
        raise Problem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise Problem(400, "the body is nested too deeply") from None


async def read_object(request: Request, *, exact: bool = False) -> dict[str, Any]:
    data = await read_json(request, exact=exact)
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object")
    return data

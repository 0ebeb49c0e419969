"""Query parameters shared by the small paged endpoints (history, notifications): only the
names an endpoint takes, and `limit` as a whole number in range."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from metacrm.engine.api.bodies import whole_number
from metacrm.engine.api.problems import Problem


def only(request: Request, allowed: frozenset[str]) -> None:
    """400 for a query parameter the endpoint does not take (a typo must not be ignored)."""
    for key in request.query_params.keys():
        if key not in allowed:
            names = ", ".join(f"{n}=" for n in sorted(allowed)) or "none"
            raise Problem(400, f"unknown query parameter {key!r}; this endpoint takes {names}")


def limit(request: Request, default: int, most: int) -> int:
    number = whole_number(request.query_params.get("limit", str(default)), 9)
    if number is None or not 1 <= number <= most:
        raise Problem(400, f"limit must be a whole number between 1 and {most}")
    return number


def next_link(request: Request, cursor: str | None) -> str | None:
    """The URL of the following page: this request's parameters with `cursor` replaced."""
    if not cursor:
        return None
    params = dict(request.query_params)
    params["cursor"] = cursor
    return f"{request.url.path}?{urlencode(params)}"

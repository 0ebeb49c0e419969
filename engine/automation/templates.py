"""Jinja2 templates for emails and notifications, sandboxed and compiled once per source."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


@lru_cache(maxsize=1024)
def _template(source: str):
    return _ENV.from_string(source)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render with `record`, `previous`, `object` and `user` in scope; unknown names are errors."""
    return _template(source).render(**context)

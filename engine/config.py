"""The engine's settings: one typed object, read from the environment once, at the edge.

The command line (`metacrm ...`, including `serve`, `demo` and `worker`) and the server's
process factory call `Settings.from_env()` once and pass the result to `Runtime.open`;
everything below reads `runtime.settings` (or is handed the one value it needs), never
`os.environ`. A program that embeds metacrm builds `Settings(...)` itself, and the
environment then plays no part. docs/deployment.md lists every variable with its default.

A value that is not usable is refused with a `SettingError` naming the variable, so a
typo stops the process at start instead of surfacing later as a traceback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Mapping
from urllib.parse import urlparse

from metacrm.engine.automation.delivery import MailSettings
from metacrm.engine.security.auth import DEFAULT_TOKEN_MAX_DAYS
from metacrm.engine.storage.database import (DEFAULT_POOL_SIZE, DEFAULT_URL, MAX_POOL_SIZE, MAX_SECONDS, SettingError,
                                             Timeouts, database_url)

log = logging.getLogger("metacrm.config")

MAX_CACHE_SECONDS = 60.0
MAX_TOKEN_DAYS = 3650
DEFAULT_INTAKE_PER_HOUR = 20

#: Every environment variable the engine reads, with what it sets.
VARIABLES = {
    "METACRM_DATABASE_URL": "database_url",
    "METACRM_POOL_SIZE": "pool_size",
    "METACRM_STATEMENT_TIMEOUT": "timeouts.statement",
    "METACRM_LOCK_TIMEOUT": "timeouts.lock",
    "METACRM_CONNECT_TIMEOUT": "timeouts.connect",
    "METACRM_AUTH_CACHE_SECONDS": "auth_cache_seconds",
    "METACRM_REVISION_CHECK_SECONDS": "revision_check_seconds",
    "METACRM_TOKEN_MAX_DAYS": "token_max_days",
    "METACRM_INTAKE_PER_HOUR": "intake_per_hour",
    "METACRM_SMTP_URL": "mail.host, mail.port",
    "METACRM_MAIL_FROM": "mail.sender",
    "METACRM_MAIL_DOMAIN": "mail.domain",
}


@dataclass(frozen=True)
class Settings:
    """How one process runs the engine. The defaults are those of an unset environment."""

    #: SQLAlchemy URL (postgresql:// and postgres:// are taken as psycopg 3)
    database_url: str = DEFAULT_URL
    #: connections kept per process; the API serves at most this many requests at once
    pool_size: int = DEFAULT_POOL_SIZE
    #: statement, lock and connect timeouts in seconds (0 = no bound)
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: how long the API trusts a looked-up token or session (revocation delay), 0-60 s
    auth_cache_seconds: float = 2.0
    #: how often the API asks whether another process applied newer metadata, 0-60 s
    revision_check_seconds: float = 1.0
    #: the longest an API token lives (also caps tokens issued earlier), 1-3650 days
    token_max_days: int = DEFAULT_TOKEN_MAX_DAYS
    #: accepted public intake submissions per client address per hour
    intake_per_hour: int = DEFAULT_INTAKE_PER_HOUR
    #: where email goes
    mail: MailSettings = field(default_factory=MailSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "database_url", database_url(self.database_url))

    @property
    def token_lifetime(self) -> timedelta:
        return timedelta(days=self.token_max_days)

    def with_database(self, url: str | None) -> "Settings":
        """These settings on another database (`--database` over $METACRM_DATABASE_URL)."""
        return replace(self, database_url=url) if url else self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The settings the environment gives (`os.environ` unless `environ` is passed); an
        unset or empty variable keeps its default. Raises SettingError for an unusable value."""
        env = os.environ if environ is None else environ

        def text(var: str) -> str:
            return env.get(var, "").strip()

        return cls(
            database_url=text("METACRM_DATABASE_URL") or DEFAULT_URL,
            pool_size=_pool_size(text("METACRM_POOL_SIZE")),
            timeouts=_timeouts(text),
            auth_cache_seconds=_seconds("METACRM_AUTH_CACHE_SECONDS", text("METACRM_AUTH_CACHE_SECONDS"), 2.0),
            revision_check_seconds=_seconds("METACRM_REVISION_CHECK_SECONDS",
                                            text("METACRM_REVISION_CHECK_SECONDS"), 1.0),
            token_max_days=_token_days(text("METACRM_TOKEN_MAX_DAYS")),
            intake_per_hour=_intake(text("METACRM_INTAKE_PER_HOUR")),
            mail=_mail(env),
        )

    def environment(self) -> dict[str, str]:
        """These settings as the environment variables that give them back (`from_env`), for
        handing them to child processes that start from an import string (uvicorn's workers)."""
        return {
            "METACRM_DATABASE_URL": self.database_url,
            "METACRM_POOL_SIZE": str(self.pool_size),
            "METACRM_STATEMENT_TIMEOUT": repr(self.timeouts.statement),
            "METACRM_LOCK_TIMEOUT": repr(self.timeouts.lock),
            "METACRM_CONNECT_TIMEOUT": repr(self.timeouts.connect),
            "METACRM_AUTH_CACHE_SECONDS": repr(self.auth_cache_seconds),
            "METACRM_REVISION_CHECK_SECONDS": repr(self.revision_check_seconds),
            "METACRM_TOKEN_MAX_DAYS": str(self.token_max_days),
            "METACRM_INTAKE_PER_HOUR": str(self.intake_per_hour),
            "METACRM_SMTP_URL": f"smtp://{self.mail.host}:{self.mail.port}",
            "METACRM_MAIL_FROM": self.mail.sender,
            "METACRM_MAIL_DOMAIN": self.mail.domain or "",
        }


def _pool_size(text: str) -> int:
    if not text:
        return DEFAULT_POOL_SIZE
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_POOL_SIZE):
        raise SettingError(f"$METACRM_POOL_SIZE must be a whole number from 1 to {MAX_POOL_SIZE}, not {text!r}")
    return int(text)


def _timeouts(text) -> Timeouts:
    values = {}
    for name, var in Timeouts.ENV.items():
        if text(var):
            values[name] = _number(var, text(var), MAX_SECONDS,
                                   f"${var} must be a number of seconds from 0 (no limit) to {MAX_SECONDS}")
    return Timeouts(**values)


def _seconds(var: str, text: str, default: float) -> float:
    if not text:
        return default
    return _number(var, text, MAX_CACHE_SECONDS,
                   f"${var} must be a number of seconds from 0 (no cache) to {MAX_CACHE_SECONDS:g}")


def _number(var: str, text: str, largest: float, message: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= largest:  # also refuses nan and inf
        raise SettingError(f"{message}, not {text!r}")
    return value


def _token_days(text: str) -> int:
    """A bad value falls back to the default with a warning (as it always has): refusing to
    start over it would lock every API client out."""
    if not text:
        return DEFAULT_TOKEN_MAX_DAYS
    if text.isdigit() and 1 <= int(text) <= MAX_TOKEN_DAYS:
        return int(text)
    log.warning("METACRM_TOKEN_MAX_DAYS=%r is not a number of days from 1 to %s; using %s", text,
                MAX_TOKEN_DAYS, DEFAULT_TOKEN_MAX_DAYS)
    return DEFAULT_TOKEN_MAX_DAYS


def _intake(text: str) -> int:
    return int(text) if text.isdigit() and int(text) >= 1 else DEFAULT_INTAKE_PER_HOUR


def _mail(env: Mapping[str, str]) -> MailSettings:
    text = env.get("METACRM_SMTP_URL", "").strip() or "smtp://127.0.0.1:25"
    url = urlparse(text)
    try:
        port = url.port
    except ValueError:  # smtp://host:notaport
        raise SettingError(f"$METACRM_SMTP_URL must look like smtp://host:port, not {text!r}") from None
    return MailSettings(url.hostname or "127.0.0.1", port or 25, env.get("METACRM_MAIL_FROM") or MailSettings.sender,
                        domain=env.get("METACRM_MAIL_DOMAIN") or None)

"""Errors in metadata, each saying where (file, path, line) and what is wrong.

Metadata errors are collected, not raised one at a time: an admin fixing a template
wants to see every problem in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a metadata document."""

    message: str
    file: str | None = None
    path: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file or "<metadata>"
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.message}"


class MetacrmError(Exception):
    """Base of every error that metacrm reports to a person as their own: bad metadata, a
    refused write, a bad filter, a refused plan, a failing rule. Anything else raised inside
    the engine is a bug: logged with its traceback and answered as a server error (500),
    never dressed as a user's error. How a channel shows each kind (an HTTP status, a CLI
    exit code) is the channel's business: these classes carry none."""


class MetadataError(MetacrmError):
    """Raised with every problem found; str() lists them one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

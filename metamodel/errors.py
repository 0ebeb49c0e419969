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


class MetadataError(Exception):
    """Raised with every problem found; str() lists them one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

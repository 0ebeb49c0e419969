"""The error of an all-or-none bulk write that failed: every problem, by the record it is about.

An all-or-none bulk write that fails writes nothing; a client must learn which of the records
it sent failed, and why, to fix and resend them. `BulkFailed` is a ValidationFailed (so every
channel handles it as before) that also keeps the errors by 0-based position in the request,
and the id a record had (updates), for `indexed()`.
"""

from __future__ import annotations

from typing import Any, Mapping

from metacrm.engine.errors import FieldError, ValidationFailed


class BulkFailed(ValidationFailed):
    def __init__(self, by_index: Mapping[int, list[FieldError]], ids: Mapping[int, Any] | None = None):
        self.by_index = {i: list(errs) for i, errs in sorted(by_index.items())}
        self.ids = dict(ids or {})
        super().__init__([e for errs in self.by_index.values() for e in errs])

    @classmethod
    def of(cls, by_index: Mapping[int, list[FieldError]], rows=()) -> "BulkFailed":
        """From a bulk call's errors and the rows it was sent (their "id", when they have one)."""
        ids = {i: row.get("id") for i, row in enumerate(rows)
               if isinstance(row, Mapping) and isinstance(row.get("id"), str)}
        return cls(by_index, ids)

    def indexed(self) -> list[dict[str, Any]]:
        """[{"index", "field", "code", "message"} (+ "id")] for every error, in request order."""
        found = []
        for index, errors in self.by_index.items():
            for error in errors:
                entry = {"index": index, **error.as_dict()}
                if self.ids.get(index) is not None:
                    entry["id"] = self.ids[index]
                found.append(entry)
        return found

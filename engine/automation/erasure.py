"""The copies of a person's values outside their record, found and removed at erasure.

A record's values travel: into its field history, into archived columns when a field is
removed, into outbox messages (email text, webhook bodies), in-app notifications,
execution-log errors, approval comments and audit details (an export's filter or search
text). Erasing the record alone leaves all of these, and pending messages would still
be sent. `Scrubber` knows the values; the functions here rewrite each kind of copy.

Values are matched case-insensitively as whole words (a value that starts or ends with a
letter or digit must not continue into another word: erasing "Ann" leaves "Annual"), and
values shorter than MIN_LENGTH are left, they would garble the text more than they identify
anyone. SQL LIKE narrows the rows (one scan per table); Python then decides and rewrites,
one executemany per batch of rows.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import approval_history, execution_log, notifications, outbox
from metacrm.engine.identity.audit import audit_log
from metacrm.engine.security.auth import login_failures
from metacrm.engine.storage import metastore
from metacrm.engine.storage.columns import ID_TYPE

MARK = "[erased]"
MIN_LENGTH = 2
BATCH = 500
ERASABLE_TYPES = frozenset({"text", "long_text", "email", "phone", "url", "json"})
EMAIL_OR_PHONE = re.compile(r"[^@\s()<>\[\],;:\"']+@[^@\s()<>\[\],;:\"']+|\+?\d[\d ()./-]{5,}\d")
CANCELLED = "cancelled"

# free-text columns of the engine's own tables that may quote record values
TEXT_COPIES: tuple[tuple[sa.Table, tuple[str, ...]], ...] = (
    (notifications, ("message",)),
    (execution_log, ("error",)),
    (approval_history, ("comment",)),
    (audit_log, ("detail",)),
    (login_failures, ("email",)),
)


@dataclass(frozen=True)
class Scrubber:
    """Finds and replaces a fixed set of values in text and JSON-like structures."""

    values: tuple[str, ...]

    @classmethod
    def of(cls, values: Iterable[Any]) -> "Scrubber":
        kept = {s.strip() for v in values for s in strings(v)
                if len(s.strip()) >= MIN_LENGTH and not is_placeholder(s)}
        return cls(tuple(sorted(kept, key=lambda v: (-len(v), v))))

    @functools.cached_property
    def pattern(self) -> re.Pattern | None:
        if not self.values:
            return None
        return re.compile("|".join(_word(v) for v in self.values), re.IGNORECASE)

    def text(self, text: str) -> str:
        pattern = self.pattern
        return pattern.sub(MARK, text) if pattern is not None and isinstance(text, str) else text

    def data(self, value: Any) -> Any:
        """`value` (JSON-like: dicts, lists, strings) with every value replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def found_in(self, value: Any) -> bool:
        return self.data(value) != value

    def candidates(self, column: sa.ColumnElement) -> sa.ColumnElement[bool]:
        """SQL that keeps every row that may hold a value (more rows than `found_in`, never fewer)."""
        text = sa.type_coerce(column, sa.Text)
        cases = {c for v in self.values for c in (v, v.lower(), v.upper(), v.title(), v.capitalize())}
        forms = {f for c in cases for f in (c, json.dumps(c, ensure_ascii=False)[1:-1])}
        lowered = {f.lower() for f in forms}  # SQLite's lower() folds ASCII only: hence the exact forms too
        return sa.or_(sa.false(), *(text.contains(f, autoescape=True) for f in sorted(forms)),
                      *(sa.func.lower(text).contains(f, autoescape=True) for f in sorted(lowered)))


PLACEHOLDERS = re.compile(r"\[erased\]|https://invalid\.example/erased|erased|@invalid\.example|-?[0-9a-f]{8}-"
                          r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_placeholder(value: str) -> bool:
    """What an earlier erasure left ("erased", "erased-<id>@invalid.example", "000", formulas
    over those): not personal, and erasing it again would garble every "[erased]" mark."""
    return PLACEHOLDERS.sub("", value).strip(" -0") == ""


def _word(value: str) -> str:
    """`value` as a regex that does not match inside a longer word."""
    start = r"(?<!\w)" if re.match(r"\w", value) else ""
    end = r"(?!\w)" if re.search(r"\w$", value) else ""
    return start + re.escape(value) + end


SHORT_VALUE = 60  # names, emails, phones: values whose single words identify someone too


def scrub_free_text(text: str, scrubber: Scrubber) -> str:
    """An erasure's reason: without the erased values, any word of a short one ("Mr Beeblebrox"
    when the name was "Zaphod Beeblebrox"), and any email address or phone-like number at all
    (the reason is kept; who asked is in the request's ticket)."""
    words = Scrubber.of(w for v in scrubber.values if len(v) <= SHORT_VALUE for w in re.findall(r"\w{3,}", v))
    return EMAIL_OR_PHONE.sub(MARK, words.text(scrubber.text(text)))


# -- the record's own row -----------------------------------------------------------------------

def archived_columns(conn: Connection, object_name: str) -> list[Any]:
    """Archived (removed, not purged) fields of the object that may hold personal text."""
    return [a for a in metastore.archived_fields(conn, object_name)
            if a.definition.get("type") in ERASABLE_TYPES | {"formula"}]


def archived_values(conn: Connection, table_name: str, record_id: str, archived: list[Any]) -> dict[str, Any]:
    """{column: value} of the record's archived columns that hold a value."""
    if not archived:
        return {}
    table = sa.table(table_name, sa.column("id", ID_TYPE), *(sa.column(a.column_name) for a in archived))
    row = conn.execute(sa.select(*(table.c[a.column_name] for a in archived))
                       .where(table.c.id == record_id)).mappings().first()
    return {c: v for c, v in (row or {}).items() if v not in (None, "")}


def blank_archived(conn: Connection, table_name: str, record_id: str, columns: Iterable[str]) -> None:
    """Archived columns are nullable (and without unique constraints): they become NULL."""
    columns = list(columns)
    if columns:
        table = sa.table(table_name, sa.column("id", ID_TYPE), *(sa.column(c) for c in columns))
        conn.execute(sa.update(table).where(table.c.id == record_id).values({c: None for c in columns}))


def strings(value: Any) -> Iterator[str]:
    """Every string inside a value (JSON text is parsed: archived json columns are text)."""
    if isinstance(value, str):
        yield value
        if value[:1] in "[{":
            try:
                yield from strings(json.loads(value))
            except ValueError:
                pass
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


# -- copies in the engine's tables ------------------------------------------------------------

def cancel_outbox(conn: Connection, record_id: str, scrubber: Scrubber) -> int:
    """Pending and dead messages about the record, or quoting its values, are cancelled (never
    sent, never retried); every message keeps only scrubbed text. Returns how many were cancelled."""
    linked = outbox.c.record_id == record_id
    cancelled = 0
    for batch in _batches(conn, outbox, sa.or_(linked, scrubber.candidates(outbox.c.payload),
                                               scrubber.candidates(outbox.c.last_error))):
        changes = []
        for row in batch:
            about = row.record_id == record_id or scrubber.found_in(row.payload) or scrubber.found_in(row.last_error)
            if not about:
                continue
            cancel = row.status in ("pending", "dead")
            cancelled += cancel
            changes.append({"_id": row.id, "_payload": scrubber.data(row.payload),
                            "_error": "cancelled by a privacy erasure" if cancel else scrubber.text(row.last_error),
                            "_status": CANCELLED if cancel else row.status})
        if changes:
            conn.execute(sa.update(outbox).where(outbox.c.id == sa.bindparam("_id"))
                         .values(payload=sa.bindparam("_payload", type_=outbox.c.payload.type),
                                 last_error=sa.bindparam("_error"), status=sa.bindparam("_status"),
                                 locked_until=None),
                         changes)
    return cancelled


def scrub_copies(conn: Connection, scrubber: Scrubber) -> int:
    """Replace the values in the free text of notifications, the execution log, approval
    comments, audit details and failed sign-ins. Returns how many rows changed."""
    if not scrubber.values:
        return 0
    changed = 0
    for table, columns in TEXT_COPIES:
        where = sa.or_(*(scrubber.candidates(table.c[c]) for c in columns))
        for batch in _batches(conn, table, where):
            params = []
            for row in batch:
                new = {c: scrubber.data(getattr(row, c)) for c in columns}
                if any(new[c] != getattr(row, c) for c in columns):
                    params.append({"_key": _key(table, row), **{f"_{c}": v for c, v in new.items()}})
            if params:
                key = _key_column(table)
                conn.execute(sa.update(table).where(key == sa.bindparam("_key"))
                             .values({c: sa.bindparam(f"_{c}", type_=table.c[c].type) for c in columns}), params)
                changed += len(params)
    return changed


def _key_column(table: sa.Table) -> sa.Column:
    (key,) = table.primary_key.columns
    return key


def _key(table: sa.Table, row: Any) -> Any:
    return getattr(row, _key_column(table).name)


def _batches(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> Iterator[list[Any]]:
    """Rows matching `where`, in keyset batches (the caller may update each batch)."""
    key = _key_column(table)
    last = None
    while True:
        query = sa.select(table).where(where).order_by(key).limit(BATCH)
        if last is not None:
            query = query.where(key > last)
        rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key.name)

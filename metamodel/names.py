"""Rules for API names of objects and fields.

Names become table and column names, so they must be safe in SQL on every supported
database without quoting tricks: lower snake_case, not a reserved word, not a system
column, short enough for PostgreSQL's 63-byte identifiers once prefixed.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 48
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

#: Columns every object table has; fields cannot take these names.
SYSTEM_COLUMNS = frozenset(
    {"id", "created_at", "created_by", "updated_at", "updated_by", "owner", "version"}
)

#: Reserved words of SQL:2016, PostgreSQL and SQLite that cannot be bare identifiers.
SQL_KEYWORDS = frozenset(
    """
    abort action add after all alter always analyze and any array as asc asymmetric
    attach authorization autoincrement before begin between binary both by cascade case
    cast check collate collation column commit concurrently conflict constraint create
    cross current current_catalog current_date current_role current_schema current_time
    current_timestamp current_user database default deferrable deferred delete desc
    detach distinct do drop each else end escape except exclude exclusive exists explain
    fail false fetch filter first following for foreign freeze from full generated glob
    grant group groups having if ignore ilike immediate in index indexed initially inner
    insert instead intersect into is isnull join lateral last leading left like limit
    localtime localtimestamp match materialized natural no not nothing notnull null nulls
    of offset on only or order others outer over overlaps partition placing plan pragma
    preceding primary query raise range recursive references regexp reindex release
    rename replace restrict returning right rollback row rows savepoint select
    session_user similar some symmetric table tablesample temp temporary then ties to
    trailing transaction trigger true unbounded union unique update user using vacuum
    values variadic verbose view virtual when where window with without
    """.split()
)

#: Prefix of the engine's own tables; objects cannot use it.
SYSTEM_TABLE_PREFIX = "metacrm_"

#: Table name prefixes that belong to a database: PostgreSQL's catalogs (pg_class, and a
#: table of that name in the public schema would be hidden behind the catalog) and SQLite's
#: internal tables (sqlite_master cannot be created). Object names cannot use them.
RESERVED_TABLE_PREFIXES = (SYSTEM_TABLE_PREFIX, "pg_", "sqlite_")


def name_problem(name: object, *, kind: str = "name") -> str | None:
    """Return why `name` is not a valid API name, or None when it is valid."""
    if not isinstance(name, str) or not name:
        return f"{kind} must be a non-empty string"
    if len(name) > MAX_NAME_LENGTH:
        return f"{kind} {name!r} is longer than {MAX_NAME_LENGTH} characters"
    if not NAME_PATTERN.match(name):
        return (
            f"{kind} {name!r} must be lower snake_case: a lowercase letter, then "
            "lowercase letters, digits or underscores"
        )
    if name in SQL_KEYWORDS:
        return f"{kind} {name!r} is a reserved SQL word"
    if name.startswith(SYSTEM_TABLE_PREFIX) or name.startswith("_"):
        return f"{kind} {name!r} uses a prefix reserved for the engine"
    return None


def object_name_problem(name: object) -> str | None:
    """Why `name` cannot name an object (and so a table), or None when it can."""
    why = name_problem(name, kind="object name")
    if why is None and name.startswith(RESERVED_TABLE_PREFIXES):  # type: ignore[union-attr]
        prefix = next(p for p in RESERVED_TABLE_PREFIXES if name.startswith(p))  # type: ignore[union-attr]
        return f"object name {name!r} starts with {prefix!r}, which the database reserves for its own tables"
    return why

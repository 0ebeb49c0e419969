"""`metacrm records import` and `metacrm records export`: the records layer's CSV import and
export (engine/records/csvio.py) on the command line, as the administrator.

Import prints a summary on stdout and each failed row, by its CSV line, on stderr; it exits 1
when any row failed (the other rows are written, unless --dry-run). Export writes CSV to stdout
or to -o FILE; a failed export leaves no partial file behind.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

from metacrm.engine.cli.errors import UsageError
from metacrm.engine.identity import audit
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.csvio import (ImportResult, export_query, export_rows, import_rows, parse_csv,
                                          parse_mapping)
from metacrm.engine.records.service import RecordService
from metacrm.engine.runtime import Runtime

MAX_FILE = 2 * 1024 * 1024 * 1024  # read into memory: refuse what clearly cannot be


def import_file(runtime: Runtime, args, actor: Actor) -> int:
    table = parse_csv(_read(args.file))
    result = import_rows(RecordService(runtime), args.object, table, actor, mapping=parse_mapping(args.mapping),
                         match=args.match or None, dry_run=args.dry_run)
    _report(result)
    return 1 if result.errors else 0


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(name)
    try:
        if path.stat().st_size > MAX_FILE:
            raise UsageError(f"{name} is larger than {MAX_FILE} bytes")
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None


def _report(result: ImportResult) -> None:
    failed = len(result.errors)
    verb = "would create" if result.dry_run else "created"
    summary = f"{verb} {result.created}, {'would update' if result.dry_run else 'updated'} {result.updated}, " \
              f"{failed} row(s) failed"
    if result.dry_run:
        summary += " (dry run: nothing written)"
    print(summary)
    if result.ignored_columns:
        print("ignored columns: " + ", ".join(map(repr, result.ignored_columns)))
    for line in sorted(result.errors):
        for error in result.errors[line]:  # a field's message names it by its label already
            print(f"line {line}: {error.message}", file=sys.stderr)


def export_file(runtime: Runtime, args, actor: Actor, query) -> int:
    service = RecordService(runtime)
    query, columns = export_query(service, args.object, query, actor)
    first = service.list(args.object, query, actor=actor)  # a bad filter, sort or field fails before any output
    if args.output in (None, "-"):
        counted: list[int] = []
        try:
            rows, complete = _write(service, args.object, query, actor, columns, first, sys.stdout.buffer, counted)
            sys.stdout.flush()
        except BrokenPipeError:  # `... | head`: the reader has what it wanted; stop quietly (and audit it)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            rows, complete = sum(counted), False
    else:
        target = Path(args.output)
        partial = target.with_name(target.name + ".partial")
        try:
            with open(partial, "wb") as out:
                rows, complete = _write(service, args.object, query, actor, columns, first, out)
            os.replace(partial, target)
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror}") from None
        finally:
            partial.unlink(missing_ok=True)
        print(f"exported {rows} {args.object} record(s) to {args.output}", file=sys.stderr)
    with runtime.db.begin() as conn:
        audit.record(conn, "export", actor.clock.now(), user_id=actor.user_id, object_name=args.object,
                     detail={"filter": query.filter, "search": query.search, "sort": list(query.sort),
                             "columns": columns, "rows": rows, "complete": complete, "channel": "cli"})
    return 0


def _write(service, name, query, actor, columns, first, out: BinaryIO,
           counted: list[int] | None = None) -> tuple[int, bool]:
    """Write every page; `counted` collects rows handed to `out`, for the audit of a cut-short export."""
    counted = [] if counted is None else counted
    for chunk, count in export_rows(service, name, query, actor, columns, first):
        out.write(chunk.encode("utf-8"))
        counted.append(count)
    return sum(counted), True

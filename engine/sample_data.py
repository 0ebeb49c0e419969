"""Load a template's sample data: records per object, lookups written as "@key".

Records go through the record engine like any other write, so sample data obeys
every rule of the template it ships with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from metacrm.engine.errors import RecordError
from metacrm.engine.identity.actor import Actor
from metacrm.engine.records.service import RecordService


class SampleDataError(Exception):
    pass


def load_sample_data(records: RecordService, path: Path, actor: Actor) -> dict[str, int]:
    """Create every record in `path`; returns how many were created per object."""
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SampleDataError(f"{path}: invalid YAML: {exc}") from None
    keys: dict[str, str] = {}
    counts: dict[str, int] = {}
    for object_name, rows in data.items():
        for index, row in enumerate(rows or ()):
            values = {k: _resolve(v, keys, path, object_name, index) for k, v in row.items() if k != "_key"}
            try:
                made = records.create(object_name, values, actor=actor)
            except RecordError as exc:
                raise SampleDataError(f"{path}: {object_name}[{index}]: {exc}") from None
            if "_key" in row:
                keys[row["_key"]] = made["id"]
            counts[object_name] = counts.get(object_name, 0) + 1
    return counts


def _resolve(value: Any, keys: dict[str, str], path: Path, obj: str, index: int) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in keys:
            raise SampleDataError(f"{path}: {obj}[{index}]: unknown reference {value}")
        return keys[value[1:]]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value

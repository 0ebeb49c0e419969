"""Sliding-window limits over events already stored in the database.

The events are rows some table keeps anyway (failed sign-ins, intake audit entries), so
every server process sees the same counts and nothing is held in memory. One indexed query
answers both "is the limit reached?" and "for how long?" (the value of `Retry-After`).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def wait_seconds(conn: Connection, at: sa.Column, condition: sa.ColumnElement[bool], limit: int,
                 window: timedelta, now: datetime) -> int | None:
    """None while fewer than `limit` events matching `condition` fall in the last `window`;
    otherwise the whole seconds until enough of them age out for one more to be allowed."""
    nth_newest = conn.execute(sa.select(at).where(condition, at > now - window)
                              .order_by(at.desc()).offset(limit - 1).limit(1)).scalar()
    if nth_newest is None:
        return None
    return max(1, math.ceil((nth_newest + window - now).total_seconds()))

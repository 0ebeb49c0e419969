"""0003 — indexes on the client address of sign-in failures and audit entries.

Sign-in throttling counts failures per address (and per e-mail and address), and the
public intake endpoint counts accepted submissions per address in the audit log; both
look back over a time window, so each gets an (address, at) index.
"""

from __future__ import annotations

from alembic.operations import Operations
from sqlalchemy.engine import Connection


def upgrade(op: Operations, conn: Connection) -> None:
    op.create_index("ix_metacrm_login_failure_address", "metacrm_login_failure", ["address", "at"])
    op.create_index("ix_metacrm_audit_address", "metacrm_audit", ["address", "at"])

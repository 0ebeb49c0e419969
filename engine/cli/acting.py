"""`--as EMAIL`: run a read command as that user instead of as the administrator.

The command line works on the database as its administrator; `--as` makes it act as one user
(their roles, scope and hidden fields apply, and `me` in a filter means them), to see what they
see or to list "my records" from a script.
"""

from __future__ import annotations

import sqlalchemy as sa

from metacrm.engine import identity
from metacrm.engine.cli.errors import UsageError
from metacrm.engine.identity.actor import Actor


def add_option(parser) -> None:
    parser.add_argument("--as", dest="as_user", metavar="EMAIL",
                        help="act as this user: their permissions apply and `me` in filters means them")


def acting(runtime, args, actor: Actor) -> Actor:
    email = getattr(args, "as_user", None)
    if not email:
        return actor
    with runtime.db.read() as conn:
        row = conn.execute(sa.select(identity.users.c.id, identity.users.c.active)
                           .where(identity.users.c.email == email.strip().lower())).first()
        if row is None or not row.active:
            raise UsageError(f"--as {email}: no active user with that email")
        roles = identity.roles_of(conn, row.id)
    return Actor(user_id=row.id, language=actor.language, roles=roles, channel="cli")

"""The owner rule: to whom a user may give a record, and whose records they may take.

Without it any user who may edit a record could name any owner: push records onto people who
never asked for them, or create records "owned" by someone else. The rule follows the edit
scope of the object's permissions:

- `transfer: true` on one of the user's roles, edit scope `all`, the admin role and the engine
  itself (system actors: automations, pools, imports run by the CLI): any owner.
- Otherwise the owners whose records the user may edit by scope — `own`: themselves;
  `subordinates`: themselves and everyone below them; `team`: their groups' members; `none`:
  nobody. A new record may be given to one of them (or to the creator); an existing record may
  be reassigned only from one of them to one of them, so an edit share lets a user change a
  record's fields but not take it.
"""

from __future__ import annotations

from functools import cached_property

from metacrm.engine import identity
from metacrm.engine.security.access import Access


class OwnerRule:
    """Checks owner changes for one actor and one object (scope owners read once, when needed)."""

    def __init__(self, access: Access):
        self.access = access
        self.me = access.actor.user_id

    @cached_property
    def owners(self) -> frozenset[str] | None:
        """The owners this actor may give records to and take them from; None means anyone."""
        rights = self.access.rights
        if rights.transfer or rights.edit == "all":
            return None
        if rights.edit == "none" or self.me is None:
            return frozenset()
        if rights.edit == "own":
            return frozenset({self.me})
        if rights.edit == "subordinates":
            return frozenset({self.me, *identity.subordinate_ids(self.access.conn, self.me)})
        return frozenset(identity.team_member_ids(self.access.conn, self.me))

    def refusal(self, current: str | None, new: str | None, creating: bool) -> str | None:
        """None if the change is allowed, else the message code: the new owner is not one the actor
        may give records to (owner_not_allowed), or the record is not theirs to reassign (owner_not_yours)."""
        owners = self.owners
        if owners is None:
            return None
        if creating:
            return None if new in owners or new == self.me else "owner_not_allowed"
        if current not in owners:
            return "owner_not_yours"
        return None if new in owners else "owner_not_allowed"

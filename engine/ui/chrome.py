"""What every signed-in page shows around its content: the navigation of the objects the user
may read, the user, the CSRF token for forms, and the unread notification count in the header.
A page passes `**chrome(service, unit)` into its context."""

from __future__ import annotations

from typing import Any

from metacrm.engine.automation import inbox, pools
from metacrm.engine.ui.nav import navigation


def chrome(service, unit) -> dict[str, Any]:
    return {"nav": navigation(service.runtime.model, unit.actor), "user": unit.actor, "csrf": unit.csrf,
            "unread": inbox.unread_count(service, unit.actor, unit.conn),
            "in_pool": any(pools.is_member(unit.conn, p, unit.actor.user_id)
                           for obj in service.runtime.model.objects.values() for p in obj.pools)}

"""What a user may open: the objects they may read, in model order, with labels in their language."""

from __future__ import annotations

from typing import Any

from metacrm.engine.api.problems import Problem
from metacrm.engine.identity.actor import Actor
from metacrm.engine.security.access import rights_of
from metacrm.metamodel.model import Model, ObjectDef


def navigation(model: Model, actor: Actor) -> list[dict[str, Any]]:
    return [{"name": obj.name, "label": (obj.plural_labels.get(actor.language) or obj.label(actor.language))}
            for obj in model.objects.values() if rights_of(obj, actor).read != "none"]


def readable_object(model: Model, name: str, actor: Actor) -> ObjectDef:
    """The object `name` if the user may read it; otherwise a 404 (never "forbidden": that would
    confirm the object exists)."""
    if name not in model or rights_of(model.object(name), actor).read == "none":
        raise Problem(404, "not found")
    return model.object(name)

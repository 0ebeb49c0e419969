"""Moved to metacrm.metamodel.coercion (the value rules are part of the metadata language);
this re-export keeps imports of the old path working while branches that use it are merged."""

from metacrm.metamodel.coercion import *  # noqa: F401,F403

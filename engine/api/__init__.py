"""The REST API, generated from the live metadata (Starlette).

Every endpoint authenticates the caller, builds an explicit Actor (user, roles, language)
and goes through the RecordService, so permissions, validation and automations apply
exactly as they do everywhere else. Errors are application/problem+json (RFC 9457).
"""

from metacrm.engine.api.app import create_app

__all__ = ["create_app"]

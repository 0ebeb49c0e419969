"""The OpenAPI 3.1 document of the API, generated from the live metadata for one caller.

Split by subject: `common` (summaries, problems, headers, responses), `fields` (record
schemas from field definitions), `records` (the operations under /api/v1/records/{object}),
`platform` (auth, /me, meta, notifications, approvals, intake, the document itself) and
`admin` (metadata, audit, privacy — described to administrators only). `document.build`
puts them together.
"""

from metacrm.engine.api.spec.document import build

__all__ = ["build"]

"""The generated web UI: server-rendered pages (Starlette + Jinja2, htmx partial updates) built
from the compiled model and layouts on every request, in the same process as the REST API.

Pages read and write through the RecordService with the signed-in user as the actor — never
through the REST API over HTTP — so permissions, validation, automation and history are the
engine's, the same as on every other channel. No page is specific to one object: the templates
are generic and the model decides what they show. Static files and the shared Jinja2 pieces
are engine.web's (below the API, so the API docs page uses them too).
"""

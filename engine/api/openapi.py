"""The OpenAPI 3.1 document, generated from the live metadata for the caller, and a docs page.

The document itself is built by engine.api.spec (one module per subject); this module
serves it and the docs page.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from metacrm.engine.api.context import request_unit
from metacrm.engine.api.spec import build


def document(request: Request) -> JSONResponse:
    with request_unit(request) as unit:
        return JSONResponse(build(request.app.state.runtime, unit.actor, unit.conn))


DOCS = """<!doctype html><html><head><meta charset="utf-8"><title>metacrm API</title>
<style>body{font:14px system-ui;margin:2em;max-width:60em}code{background:#f4f4f4;padding:0 .3em}
h2{margin-top:2em}li{margin:.2em 0}</style></head><body><h1>metacrm API</h1>
<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> (OpenAPI 3.1, as you may see it).</p>
<div id="paths">Loading…</div>
<script>
fetch('/api/v1/openapi.json',{credentials:'same-origin'}).then(r=>r.json()).then(doc=>{
  const el=document.getElementById('paths'); el.textContent='';
  for (const [path, ops] of Object.entries(doc.paths||{})) {
    const h=document.createElement('h2'); h.textContent=path; el.appendChild(h);
    const ul=document.createElement('ul');
    for (const [method, op] of Object.entries(ops)) {
      const li=document.createElement('li'); li.textContent=method.toUpperCase()+' — '+op.summary; ul.appendChild(li);
    }
    el.appendChild(ul);
  }
});
</script></body></html>"""


def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS)

"""The browser-facing pieces every HTML page shares: the static files (our own and the vendored
front-end packages, see tools/vendor_assets.py), served with cache headers and gzip, and the
Jinja2 environment (autoescape on) the pages are rendered with. Knows nothing of records or
the API, so the API docs page and the web UI both build on it."""

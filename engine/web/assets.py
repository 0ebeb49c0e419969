"""Static files under /static: the vendored front-end packages and the pages' own scripts.

A page links a file with `static_url(path)`, which adds `?v=<content digest>`. A request that
carries the current digest is cached by the browser for a year (`immutable`): the URL changes
whenever the file does. Any other request must revalidate (ETag). Text files are sent
gzip-compressed to clients that accept it, compressed once per process and kept in memory:
the vendored files are large (Swagger UI is 1.7 MB, 0.46 MB compressed) and never change
while the process runs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from pathlib import Path
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static"
COMPRESSIBLE = frozenset({".js", ".css", ".json", ".svg", ".map", ".txt", ".html"})
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class _Digests:
    """Per-file digest and gzip body, keyed by (path, mtime, size) so an edited file is re-read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[tuple[int, int], str, bytes | None]] = {}

    def _entry(self, path: str, stat: os.stat_result) -> tuple[tuple[int, int], str, bytes | None]:
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            entry = self._seen.get(path)
        if entry is None or entry[0] != key:
            data = Path(path).read_bytes()
            packed = gzip.compress(data, 9, mtime=0) if Path(path).suffix in COMPRESSIBLE else None
            entry = (key, hashlib.sha256(data).hexdigest()[:16], packed)
            with self._lock:
                self._seen[path] = entry
        return entry

    def digest(self, path: str, stat: os.stat_result) -> str:
        return self._entry(path, stat)[1]

    def gzipped(self, path: str, stat: os.stat_result) -> bytes | None:
        return self._entry(path, stat)[2]


DIGESTS = _Digests()


def static_url(path: str) -> str:
    """The URL of a file under static/, versioned by its content; ValueError if there is no such file."""
    full = (STATIC_DIR / path).resolve()
    if STATIC_DIR not in full.parents or not full.is_file():
        raise ValueError(f"no static file {path!r}")
    return f"{STATIC_PREFIX}/{path}?v={DIGESTS.digest(str(full), full.stat())}"


class CachedStaticFiles(StaticFiles):
    """StaticFiles with Cache-Control by version, gzip for text files, and nosniff."""

    def file_response(self, full_path, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        request = Headers(scope=scope)
        version = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("v", [None])[0]
        current = version is not None and version == DIGESTS.digest(str(full_path), stat_result)
        extra = {"Cache-Control": IMMUTABLE if current else REVALIDATE, "X-Content-Type-Options": "nosniff",
                 "Vary": "Accept-Encoding"}
        packed = DIGESTS.gzipped(str(full_path), stat_result)
        if response.status_code == 200 and packed is not None and "gzip" in request.get("accept-encoding", ""):
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "accept-ranges")}
            compressed = Response(b"" if scope["method"] == "HEAD" else packed, status_code=200,
                                  headers={**headers, **extra, "Content-Encoding": "gzip"})
            compressed.headers["content-length"] = str(len(packed))
            return compressed
        response.headers.update(extra)
        return response


def static_app() -> StaticFiles:
    """The ASGI app to mount at STATIC_PREFIX."""
    return CachedStaticFiles(directory=STATIC_DIR)

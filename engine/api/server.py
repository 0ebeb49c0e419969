"""Running the API with uvicorn: one app per process, built from the environment.

`metacrm serve` sets METACRM_DATABASE_URL and starts uvicorn with `app_from_env` as a
factory, so each worker process opens its own Runtime (closed by the app's lifespan at
shutdown). With SQLite (or --with-worker), an in-process automation worker thread delivers
the outbox and fires timers.

`NoDelayProtocol` is uvicorn's HTTP protocol with TCP_NODELAY on every connection: with
--workers, uvicorn binds the listening socket itself (protocol number 0), and asyncio then
leaves Nagle's algorithm on, so each keep-alive response waited ~40 ms for a delayed ACK.
"""

from __future__ import annotations

import os
import socket
import threading

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from metacrm.engine.api.app import create_app
from metacrm.engine.automation.worker import Worker
from metacrm.engine.runtime import Runtime

WORKER_ENV = "METACRM_INPROCESS_WORKER"
PROTOCOL = "metacrm.engine.api.server:NoDelayProtocol"


class NoDelayProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP protocol, sending each response at once (TCP_NODELAY)."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # the peer is already gone: nothing to speed up
                pass
        super().connection_made(transport)


def app_from_env():
    runtime = Runtime.open(os.environ.get("METACRM_DATABASE_URL"))
    app = create_app(runtime, owns_runtime=True)
    if os.environ.get(WORKER_ENV) == "1":
        _start_worker(app, runtime)
    return app


def _start_worker(app, runtime: Runtime) -> None:
    """A daemon thread with its own Runtime; it ends with the server process."""
    worker = Worker(Runtime.open(runtime.db.url))
    threading.Thread(target=worker.run_forever, kwargs={"poll": 1.0}, daemon=True, name="metacrm-worker").start()

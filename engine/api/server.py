"""Running the API with uvicorn: one app per process, each with its own Runtime.

`metacrm serve` reads the Settings once (engine/config.py). With one process it hands uvicorn
the app built on them (`build_app`). With --workers N uvicorn starts each process from an
import string, which takes no arguments: the command hands the settings down as the same
environment variables (`Settings.environment()`), and `app_from_env`, the factory each process
calls, reads them back once — the environment is that process's edge. Each Runtime is closed
by the app's lifespan at shutdown. With SQLite (or --with-worker), an in-process automation
worker thread delivers the outbox and fires timers.

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
from metacrm.engine.config import Settings
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


def app_from_env(factory=create_app):
    """The factory uvicorn's worker processes call: settings from this process's environment;
    `factory` builds the app on the Runtime (the web site, engine.ui.site, passes its own)."""
    return build_app(Settings.from_env(), with_worker=os.environ.get(WORKER_ENV) == "1", factory=factory)


def build_app(settings: Settings, *, with_worker: bool, factory=create_app):
    """The app on a Runtime of its own (closed at shutdown), and the in-process worker if asked."""
    runtime = Runtime.open(settings=settings)
    app = factory(runtime, owns_runtime=True)
    if with_worker:
        _start_worker(app, runtime)
    return app


def _start_worker(app, runtime: Runtime) -> None:
    """A daemon thread with its own Runtime; it ends with the server process."""
    worker = Worker(Runtime.open(settings=runtime.settings))
    threading.Thread(target=worker.run_forever, kwargs={"poll": 1.0}, daemon=True, name="metacrm-worker").start()

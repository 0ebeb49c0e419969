"""Running the API with uvicorn: one app per process, built from the environment.

`metacrm serve` sets METACRM_DATABASE_URL and starts uvicorn with `app_from_env` as a
factory, so each worker process opens its own Runtime. With SQLite (or --with-worker),
an in-process automation worker thread delivers the outbox and fires timers.
"""

from __future__ import annotations

import os
import threading

from metacrm.engine.api.app import create_app
from metacrm.engine.runtime import Runtime

WORKER_ENV = "METACRM_INPROCESS_WORKER"


def app_from_env():
    runtime = Runtime.open(os.environ.get("METACRM_DATABASE_URL"))
    app = create_app(runtime)
    if os.environ.get(WORKER_ENV) == "1":
        _start_worker(app, runtime)
    return app


def _start_worker(app, runtime: Runtime) -> None:
    """A daemon thread with its own Runtime; it ends with the server process."""
    from metacrm.engine.automation.worker import Worker

    worker = Worker(Runtime.open(runtime.db.url))
    threading.Thread(target=worker.run_forever, kwargs={"poll": 1.0}, daemon=True, name="metacrm-worker").start()

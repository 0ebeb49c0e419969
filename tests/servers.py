"""Real `metacrm serve` processes for tests: start on a free loopback port, wait until the API
answers, stop (signal, then kill). Every wait is bounded and a server that dies early fails the
test with its own log, so a broken start is never a hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from tests.receivers import free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # seconds for a server to answer its first request
STOP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 15.0


class Serving:
    """`python -m metacrm.engine.cli.main --database URL serve ...` with its output in `log`."""

    def __init__(self, db_url: str, log: Path, *extra: str, env: dict[str, str] | None = None, name: str = ""):
        self.name = name or log.stem
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.clients: list[httpx2.Client] = []
        environment = {k: v for k, v in os.environ.items() if k != "METACRM_INPROCESS_WORKER"}
        environment.update(env or {})
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "metacrm.engine.cli.main", "--database", db_url, "serve", "--host",
                 "127.0.0.1", "--port", str(self.port), *extra], cwd=ROOT, env=environment,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace") if self.log.exists() else ""

    def client(self, token: str) -> httpx2.Client:
        """A keep-alive client with `token`, closed when the server is stopped."""
        made = httpx2.Client(base_url=self.url, timeout=REQUEST_TIMEOUT, headers={"Authorization": f"Bearer {token}"})
        self.clients.append(made)
        return made

    def wait_until_answering(self, token: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx2.Client(base_url=self.url, timeout=2.0, headers={"Authorization": f"Bearer {token}"}) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"server {self.name} exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if probe.get("/api/v1/meta/objects").status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                time.sleep(0.1)
        pytest.fail(f"server {self.name} did not answer within {START_TIMEOUT:.0f} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        for made in self.clients:
            made.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode

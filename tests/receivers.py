"""Real servers for tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver, on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from metacrm.engine.automation.delivery import signature


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailBox:
    """Collects every message the SMTP server accepted. `delay` holds DATA open (to kill a sender mid-send)."""

    def __init__(self):
        self.messages = []
        self.delay = 0.0
        self.data_started = threading.Event()
        self.refused = []  # messages answered with a temporary failure (fail_next)
        self.fail_next = 0

    async def handle_DATA(self, server, session, envelope):
        self.data_started.set()
        if self.fail_next:
            self.fail_next -= 1
            self.refused.append(message_from_bytes(envelope.content))
            return "451 try again later"
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        if server.transport is None or server.transport.is_closing():
            return "451 client went away"  # the sender never heard 250: like a real server, do not keep it
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class SMTPServer:
    def __init__(self):
        self.box = MailBox()
        self.port = free_port()
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    @property
    def messages(self):
        return self.box.messages


class WebhookReceiver:
    """Records POSTs, checks the HMAC signature, can answer with failures, can go down and come back."""

    def __init__(self, secret: str | None = None, port: int | None = None):
        self.secret = secret
        self.port = port or free_port()
        self.received: list[dict] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    if receiver.fail_next:
                        receiver.fail_next -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    valid = receiver.secret is None or \
                        self.headers.get("X-Metacrm-Signature") == signature(receiver.secret, body)
                    receiver.received.append({"delivery": self.headers.get("X-Metacrm-Delivery"),
                                              "valid_signature": valid, "body": json.loads(body)})
                self.send_response(200 if valid else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

"""Delivering outbox entries: email over SMTP, signed webhooks over HTTP, in-app notifications.

Each delivery is idempotent where the receiver can tell: emails carry a Message-ID and
webhooks an X-Metacrm-Delivery header made from the entry's delivery id (a random UUID
stored with the entry), so a retry after a crash is recognisable as the same message,
and no two entries — of this installation or any other — share one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from metacrm.engine.automation.tables import notifications
from metacrm.metamodel.errors import MetacrmError


_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class DeliveryError(MetacrmError):
    """The receiver did not take the message; the worker will retry."""


@dataclass(frozen=True)
class MailSettings:
    """Where email goes (Settings.mail, from METACRM_SMTP_URL = smtp://host:port, METACRM_MAIL_FROM
    and METACRM_MAIL_DOMAIN): `domain` is the right-hand side of Message-IDs (default: the
    sender's domain)."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "metacrm@localhost"
    timeout: float = 10.0
    domain: str | None = None

    def message_id(self, delivery_id: str) -> str:
        """`<delivery id@domain>`: the delivery id is unique on its own; the domain says whose it is."""
        domain = self.domain or self.sender.rpartition("@")[2].strip(" >")
        return f"<{delivery_id}@{domain if _DOMAIN.fullmatch(domain) else 'localhost'}>"


def send_email(settings: MailSettings, delivery_id: str, payload: Mapping[str, Any]) -> None:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = payload["subject"]
    message["Message-ID"] = settings.message_id(delivery_id)
    message.set_content(payload["body"])
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP {settings.host}:{settings.port}: {exc}") from None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(delivery_id: str, payload: Mapping[str, Any]) -> None:
    body = json.dumps(payload["body"], ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "metacrm", "X-Metacrm-Delivery": delivery_id}
    # a secret the metadata names by variable, never stores: looked up in this process's environment
    secret = os.environ.get(payload["secret_env"]) if payload.get("secret_env") else None
    if payload.get("secret_env") and not secret:
        raise DeliveryError(f"the secret ${payload['secret_env']} is not set")
    if secret:
        headers["X-Metacrm-Signature"] = signature(secret, body)
    request = urllib.request.Request(payload["url"], data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=float(payload.get("timeout", 10))) as response:
            if response.status >= 300:
                raise DeliveryError(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {payload['url']}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"{payload['url']}: {getattr(exc, 'reason', exc)}") from None


def store_notifications(conn: Connection, outbox_id: int, payload: Mapping[str, Any], now: datetime) -> None:
    """One in-app notification per recipient; a repeated delivery adds nothing."""
    existing = set(conn.execute(sa.select(notifications.c.user_id).where(notifications.c.outbox_id == outbox_id)).scalars())
    rows = [{"user_id": u, "message": payload["message"], "object": payload.get("object"),
             "record_id": payload.get("record_id"), "outbox_id": outbox_id, "created_at": now}
            for u in payload["users"] if u not in existing]
    if rows:
        conn.execute(notifications.insert(), rows)

"""Delivery channels: e-mail over SMTP and the push gateway's HTTP webhook.

A channel sends one :class:`Message` and either returns or raises :class:`TransientSendError`
(retry later: server down, timeout, SMTP 4xx, HTTP 5xx/408/429) or :class:`PermanentSendError`
(never retry: address refused, SMTP 5xx, HTTP 4xx). Each message carries its idempotency key
(webhook header ``Idempotency-Key``, e-mail ``Message-ID``) so a receiver can drop a repeat after
a worker crash. Webhook bodies are signed: ``X-S3TR-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">`` with ``X-S3TR-Timestamp``, so the receiver can check origin and freshness.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Protocol

import httpx

from s3tr.errors import S3trError, TransientError
from s3tr.settings import Settings

__all__ = [
    "Channel",
    "Message",
    "PermanentSendError",
    "SmtpChannel",
    "TransientSendError",
    "WebhookChannel",
    "channels_from_settings",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-S3TR-Signature"
TIMESTAMP_HEADER = "X-S3TR-Timestamp"


class TransientSendError(TransientError):
    """The message could not be sent now; it may go through later."""


class PermanentSendError(S3trError, ValueError):
    """The message will never be accepted as is (bad address, rejected content)."""


@dataclass(frozen=True)
class Message:
    """One rendered notification for one recipient on one channel."""

    idempotency_key: str
    kind: str
    subject: str
    body: str
    address: str | None  # e-mail address (None for the webhook)
    locale: str
    recipient: dict[str, Any]  # user_id, username, pacage / department
    data: dict[str, Any] = field(default_factory=dict)  # the structured notification (for the app)
    created_at: str = ""


class Channel(Protocol):
    """What the worker needs from a channel."""

    name: str

    def send(self, message: Message) -> None:
        """Send one message (raise :class:`TransientSendError` / :class:`PermanentSendError`)."""

    def close(self) -> None:
        """Release connections."""


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of a webhook body: ``sha256=`` + hex HMAC-SHA256 of ``ts.body``."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """Check a webhook signature in constant time (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class SmtpChannel:
    """E-mail over SMTP, one connection reused for a batch (STARTTLS and login when configured)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        starttls: bool = True,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout, self.ssl_context = timeout, ssl_context
        self._smtp: smtplib.SMTP | None = None

    def __repr__(self) -> str:  # never show the password
        return f"SmtpChannel({self.host}:{self.port}, starttls={self.starttls}, user={self.username!r})"

    def _connect(self) -> smtplib.SMTP:
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            # a wrong password will not fix itself, but it concerns every message: retry later
            raise TransientSendError(f"SMTP login to {self.host}:{self.port} refused: {exc}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"cannot reach SMTP server {self.host}:{self.port}: {exc}") from exc
        return smtp

    def _build(self, message: Message) -> EmailMessage:
        # RFC 5322 allows 998-character lines: no folding of ordinary subjects (Python folds a
        # long one onto a continuation line, which some readers show with a leading space)
        email = EmailMessage(policy=email_policy.default.clone(max_line_length=998))
        email["From"] = self.sender
        email["To"] = message.address
        email["Subject"] = message.subject
        email["Message-ID"] = make_msgid(idstring=message.idempotency_key, domain="s3tr.notify")
        email["X-S3TR-Idempotency-Key"] = message.idempotency_key
        email["X-S3TR-Kind"] = message.kind
        email["Content-Language"] = message.locale
        if message.created_at:
            email["Date"] = format_datetime(datetime.fromisoformat(message.created_at))
        email.set_content(message.body)
        return email

    def send(self, message: Message) -> None:
        """Send one e-mail; a dropped connection is reopened once before giving up for now."""
        if not message.address:
            raise PermanentSendError(f"notification {message.idempotency_key} has no e-mail address")
        email = self._build(message)
        for attempt in (1, 2):
            if self._smtp is None:
                self._smtp = self._connect()
            try:
                refused = self._smtp.send_message(email)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                self._classify(code, text, message)
                return
            except smtplib.SMTPResponseException as exc:
                self._classify(exc.smtp_code, exc.smtp_error, message)
                return
            except (smtplib.SMTPServerDisconnected, OSError) as exc:  # OSError covers timeouts
                self.close()
                if attempt == 2:
                    raise TransientSendError(f"SMTP server {self.host}:{self.port} dropped: {exc}") from exc
                continue
            if refused:  # some recipients refused (only one here)
                code, text = next(iter(refused.values()))
                self._classify(code, text, message)
            return

    def _classify(self, code: int, text: bytes | str, message: Message) -> None:
        reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        what = f"SMTP {code} for {message.address} ({message.idempotency_key}): {reason}"
        if self._smtp is not None:
            try:
                self._smtp.rset()  # leave the connection usable for the next message
            except (smtplib.SMTPException, OSError):
                self.close()
        if 400 <= code < 500:
            raise TransientSendError(what)
        raise PermanentSendError(what)

    def close(self) -> None:
        """Quit the SMTP session (ignoring a server already gone)."""
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._smtp = None


class WebhookChannel:
    """JSON POST to the push gateway, HMAC-signed, with the idempotency key in a header."""

    name = "webhook"

    def __init__(self, url: str, *, secret: str | None = None, timeout: float = 5.0) -> None:
        self.url, self.timeout = url, timeout
        self._secret = secret.encode("utf-8") if secret else None
        self._client = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"WebhookChannel({self.url}, signed={self._secret is not None})"

    def send(self, message: Message) -> None:
        """POST one notification; 2xx is success, 408/429/5xx and network errors are transient."""
        body = json.dumps(
            {
                "idempotency_key": message.idempotency_key,
                "kind": message.kind,
                "title": message.subject,
                "body": message.body,
                "locale": message.locale,
                "recipient": message.recipient,
                "data": message.data,
                "created_at": message.created_at,
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientSendError(f"webhook {self.url} timed out after {self.timeout} s") from exc
        except httpx.HTTPError as exc:
            raise TransientSendError(f"webhook {self.url} unreachable: {exc}") from exc
        if response.is_success:
            return
        what = f"webhook {self.url} answered {response.status_code}: {response.text[:200]}"
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            raise TransientSendError(what)
        raise PermanentSendError(what)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The channels configured in the settings (``email`` when S3TR_SMTP_HOST, ``webhook`` when
    S3TR_WEBHOOK_URL is set); none configured gives an empty dict (notifications stay in-app)."""
    found: dict[str, Channel] = {}
    if settings.smtp_host:
        found["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout,
        )
    if settings.webhook_url:
        found["webhook"] = WebhookChannel(
            settings.webhook_url,
            secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            timeout=settings.webhook_timeout,
        )
    return found

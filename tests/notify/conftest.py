"""Fixtures of the notification tests: databases (SQLite and PostgreSQL), a real SMTP server
(aiosmtpd) and a real HTTP receiver on 127.0.0.1, and a small world of users and cases.

The receivers count what really arrives; their behaviour (accept, 4xx/5xx, hang) is switched by
the tests. Time is always injected (``NOW``); nothing sleeps to wait for a schedule.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from s3tr.review.database import session_scope

NOW = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)  # a Monday morning, 12:00 in Paris: not quiet
SECRET = "test-webhook-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- SMTP


@dataclass
class SmtpReceiver:
    """A real SMTP server (aiosmtpd) recording every accepted message."""

    host: str
    port: int
    messages: list[Any] = field(default_factory=list)  # email.message.EmailMessage
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    reply: str | None = None  # e.g. "451 4.3.0 try later" / "550 5.1.1 no such user"; None: accept
    controller: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> list[str]:
        with self.lock:
            return [m["X-S3TR-Idempotency-Key"] for m in self.messages]

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        from email import message_from_bytes, policy

        if self.receiver.reply is not None:
            return self.receiver.reply
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.receiver.lock:
            self.receiver.messages.append(msg)
            self.receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


def start_smtp(receiver: SmtpReceiver, **kwargs: Any) -> SmtpReceiver:
    from aiosmtpd.controller import Controller

    receiver.controller = Controller(_Handler(receiver), hostname=receiver.host, port=receiver.port, **kwargs)
    receiver.controller.start()
    return receiver


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    """A plain SMTP server on a free port of 127.0.0.1."""
    receiver = start_smtp(SmtpReceiver("127.0.0.1", free_port()))
    yield receiver
    receiver.stop()


# --------------------------------------------------------------------------- HTTP webhook


@dataclass
class HttpReceiver:
    """A real HTTP server recording every webhook POST (headers, raw body)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0  # seconds before answering (a slow gateway)
    hang: float = 0.0  # seconds before answering, past the client's timeout (timeout tests)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None

    def keys(self) -> list[str]:
        with self.lock:
            return [r["headers"]["Idempotency-Key"] for r in self.requests if r["status"] < 300]


@pytest.fixture
def webhook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, delay, hang = receiver.status, receiver.delay, receiver.hang
            # recorded on arrival; a request answered after the client's timeout counts as not received
            record = {"headers": dict(self.headers), "body": body, "path": self.path}
            record["status"] = 599 if hang else status
            with receiver.lock:
                receiver.requests.append(record)
            if delay or hang:
                time.sleep(delay + hang)
            payload = b'{"ok": true}' if status < 300 else b'{"error": "test"}'
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

        def log_message(self, *args: Any) -> None:  # keep the test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.server = server
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/push"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- world


def settings_for(smtp: SmtpReceiver | None = None, webhook: HttpReceiver | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Settings pointing at the test receivers (plain SMTP without TLS on loopback)."""
    from s3tr.settings import Settings

    values: dict[str, Any] = {
        "smtp_host": smtp.host if smtp else None,
        "smtp_port": smtp.port if smtp else 25,
        "smtp_starttls": False,
        "smtp_timeout": 2.0,
        "webhook_url": webhook.url if webhook else None,
        "webhook_secret": SECRET,
        "webhook_timeout": 1.0,
        "notify_app_url": "https://app.s3tr.test",
    }
    values.update(extra)
    return Settings(**values)


def add_case(
    engine: Any,
    *,
    pacage: str = "086000001",
    id_parcel: str = "086-000001",
    department: str = "86",
    control: str = "min_activity",
    created_at: datetime = NOW,
) -> int:
    from s3tr.review.models import Case

    with session_scope(engine, write=True) as s:
        case = Case(
            campaign=2025,
            id_parcel=id_parcel,
            control=control,
            department=department,
            pacage=pacage,
            surf_parc=2.5,
            state="open",
            flag="orange",
            reasons=["thin_evidence"],
            priority=1.0,
            version=1,
            created_at=created_at,
            updated_at=created_at,
        )
        s.add(case)
        s.flush()
        return int(case.case_id)


def add_world(engine: Any) -> SimpleNamespace:
    """A farmer with an e-mail address, a second farmer without one, an instructor of 86 (push only)."""
    from s3tr.notify.preferences import set_preferences
    from s3tr.review.users import create_user

    farmer = create_user(engine, "farmer_a", role="farmer", pacage="086000001")
    other = create_user(engine, "farmer_b", role="farmer", pacage="086000002")
    instructor = create_user(engine, "instr_86", role="instructor", department="86")
    set_preferences(engine, farmer, email="farmer.a@example.org")
    return SimpleNamespace(farmer=farmer, other=other, instructor=instructor)


def request_for(
    engine: Any, case_id: int, *, deadline: date | None = date(2025, 6, 16), now: datetime = NOW
) -> int:
    from s3tr.review.requests import request_photos

    done = request_photos(
        engine,
        case_id,
        actor="instr_86",
        instructions="Une vue générale depuis le coin nord-est, puis un gros plan de l'herbe.",
        deadline=deadline,
        target_lon=0.34,
        target_lat=46.58,
        heading_deg=200.0,
        now=now,
    )
    return int(done["request_id"])


def count(engine: Any, table: str, where: str = "1=1") -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


@pytest.fixture(scope="session")
def nt():  # type: ignore[no-untyped-def]
    """The helpers above (test modules cannot import the conftest under importlib mode)."""
    return SimpleNamespace(
        NOW=NOW,
        SECRET=SECRET,
        settings_for=settings_for,
        add_case=add_case,
        add_world=add_world,
        request_for=request_for,
        count=count,
        free_port=free_port,
        start_smtp=start_smtp,
        SmtpReceiver=SmtpReceiver,
        json=json,
    )

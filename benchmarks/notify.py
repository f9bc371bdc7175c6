"""Benchmark of the notification worker on loopback: messages per second for 10,000 pending ones.

Run: ``python benchmarks/notify.py [--n 10000] [--channel email|webhook|both] [--db URL]
[--batch 200]``.

1. Creates a fresh review database (SQLite in a temp dir, or ``--db`` — an *empty* PostgreSQL
   database, for instance) with one farmer who has an e-mail address, and puts ``--n``
   notifications in the outbox (each becomes one e-mail and/or one webhook delivery).
2. Starts a real SMTP server (aiosmtpd) and a real HTTP receiver in a *child process* on
   127.0.0.1, so they do not share the worker's interpreter lock; they count what arrives.
3. Runs :func:`s3tr.notify.worker.deliver_pending` once and times it: expansion into
   deliveries, claims in batches, rendering from the templates, sending, and one committed
   outcome per message (the price of never losing or doubling one).
4. The peer: the same number of already-rendered messages sent in a bare loop (one SMTP
   connection, one keep-alive HTTP client), without database nor templates — the ceiling of
   these receivers on this machine. Prints messages/s of both and their ratio. The machine
   may be shared: compare runs made back to back.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import smtplib
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _receivers(smtp_port: int, http_port: int, counter, ready) -> None:  # type: ignore[no-untyped-def]
    """Child process: an aiosmtpd server and a threaded HTTP server that count messages."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from aiosmtpd.controller import Controller

    class Smtp:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    class Http(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real gateway
        wbufsize = 65536  # one write per response: no Nagle / delayed-ACK stall of 40 ms

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with counter.get_lock():
                counter.value += 1
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            return

    controller = Controller(Smtp(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    server = ThreadingHTTPServer(("127.0.0.1", http_port), Http)
    ready.set()
    server.serve_forever()


def _prepare(url: str, n: int) -> None:
    from s3tr.notify.outbox import enqueue_many
    from s3tr.notify.preferences import set_preferences
    from s3tr.review.database import make_engine, session_scope
    from s3tr.review.migrate import upgrade
    from s3tr.review.users import create_user

    engine = make_engine(url)
    upgrade(engine)
    farmer = create_user(engine, "bench_farmer", role="farmer", pacage="086000001")
    set_preferences(engine, farmer, email="farmer@example.org")
    now = datetime.now(UTC)
    rows = [
        {
            "kind": "flag_changed",
            "pacage": "086000001",
            "campaign": 2025,
            "id_parcel": f"086-{i:06d}",
            "payload": {"control": "min_activity", "flag": "red", "previous_flag": "green"},
            "now": now,
        }
        for i in range(n)
    ]
    with session_scope(engine, write=True) as s:
        enqueue_many(s, rows)
    engine.dispose()


def _peer(channel: str, n: int, smtp_port: int, http_port: int) -> float:
    """Seconds to send ``n`` pre-rendered messages in a bare loop (no database, no templates)."""
    import httpx

    start = time.perf_counter()
    if channel == "email":
        smtp = smtplib.SMTP("127.0.0.1", smtp_port)
        for i in range(n):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@b.test", "farmer@example.org", f"parcelle {i}"
            msg.set_content("Bonjour,\n\nLe suivi par satellite a changé.\n")
            smtp.send_message(msg)
        smtp.quit()
    else:
        with httpx.Client() as client:
            for i in range(n):
                client.post(f"http://127.0.0.1:{http_port}/push", content=b'{"n": %d}' % i)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="pending notifications")
    parser.add_argument("--channel", choices=["email", "webhook", "both"], default="both")
    parser.add_argument("--db", default=None, help="an empty database URL (default: SQLite in a temp dir)")
    parser.add_argument("--batch", type=int, default=200, help="deliveries claimed per batch")
    args = parser.parse_args()

    from s3tr.notify.worker import deliver_pending
    from s3tr.review.database import make_engine
    from s3tr.settings import Settings

    smtp_port, http_port = _free_port(), _free_port()
    ctx = mp.get_context("spawn")
    counter, ready = ctx.Value("i", 0), ctx.Event()
    child = ctx.Process(target=_receivers, args=(smtp_port, http_port, counter, ready), daemon=True)
    child.start()
    ready.wait(30)
    channels = ["email", "webhook"] if args.channel == "both" else [args.channel]
    rows = []
    try:
        for channel in channels:
            with tempfile.TemporaryDirectory() as tmp:
                url = args.db or f"sqlite:///{Path(tmp) / 's3tr.db'}"
                _prepare(url, args.n)
                settings = Settings(
                    smtp_host="127.0.0.1" if channel == "email" else None,
                    smtp_port=smtp_port,
                    smtp_starttls=False,
                    webhook_url=f"http://127.0.0.1:{http_port}/push" if channel == "webhook" else None,
                    webhook_secret="bench-secret",
                    notify_batch_size=args.batch,
                    notify_quiet_start=0,
                    notify_quiet_end=0,
                )
                engine = make_engine(url)
                before = counter.value
                start = time.perf_counter()
                summary = deliver_pending(engine, settings, schedule=False)
                seconds = time.perf_counter() - start
                received = counter.value - before
                engine.dispose()
                if args.db:
                    from s3tr.review.migrate import downgrade

                    downgrade(url, "base")
            peer = _peer(channel, args.n, smtp_port, http_port)
            rows.append((channel, summary.sent, received, seconds, args.n / peer))
    finally:
        child.terminate()
    backend = "postgresql" if args.db and args.db.startswith("postgres") else "sqlite"
    print(f"notification worker on loopback, {args.n} pending, {backend}, batch {args.batch}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    head = ("channel", "sent", "received", "seconds", "msg/s", "bare msg/s", "ratio")
    print(f"{head[0]:<8} {head[1]:>6} {head[2]:>8} {head[3]:>8} {head[4]:>8} {head[5]:>10} {head[6]:>6}")
    for channel, sent, received, seconds, peer_rate in rows:
        rate = sent / seconds if seconds else float("nan")
        print(
            f"{channel:<8} {sent:>6} {received:>8} {seconds:>8.2f} {rate:>8.0f} {peer_rate:>10.0f} "
            f"{rate / peer_rate:>6.2f}"
        )
    if any(sent != received for _, sent, received, _, _ in rows):
        sys.exit("messages marked sent and messages received differ")


if __name__ == "__main__":
    main()

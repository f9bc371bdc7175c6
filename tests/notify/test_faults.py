"""Fault tests: SMTP down / 4xx / 5xx, webhook timeout / 500 / 400, worker killed mid-batch.

In every case each committed notification ends up delivered exactly once per channel, counted by
idempotency key at the receivers, or failed with its reason; time is injected, never slept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from s3tr.notify.outbox import enqueue_many
from s3tr.notify.worker import deliver_pending
from s3tr.review.database import session_scope
from s3tr.review.models import NotificationDelivery


def _rows(engine: Any) -> list[NotificationDelivery]:
    with session_scope(engine) as s:
        return list(s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_smtp_down_then_back(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine))
    settings = nt.settings_for(smtp, None)
    smtp.stop()
    first = deliver_pending(engine, settings, nt.NOW)
    assert (first.sent, first.retried) == (0, 1)
    (row,) = _rows(engine)
    assert row.status == "pending" and row.attempts == 1 and "cannot reach SMTP server" in row.last_error
    assert _aware(row.next_attempt_at) == nt.NOW + timedelta(seconds=60)  # first backoff step
    assert deliver_pending(engine, settings, nt.NOW + timedelta(seconds=30)).sent == 0  # not due yet
    second = deliver_pending(engine, settings, nt.NOW + timedelta(seconds=61))
    assert second.retried == 1
    (row,) = _rows(engine)
    assert _aware(row.next_attempt_at) == nt.NOW + timedelta(seconds=61 + 120)  # doubled
    nt.start_smtp(smtp)  # back up, same port
    third = deliver_pending(engine, settings, nt.NOW + timedelta(seconds=200))
    assert third.sent == 1 and len(smtp.messages) == 1
    (row,) = _rows(engine)
    assert (row.status, row.attempts) == ("sent", 3)


def test_smtp_4xx_is_retried_5xx_is_final(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine))
    settings = nt.settings_for(smtp, None)
    smtp.reply = "451 4.3.0 Mailbox busy, try later"
    assert deliver_pending(engine, settings, nt.NOW).retried == 1
    (row,) = _rows(engine)
    assert "451" in row.last_error and row.status == "pending"
    smtp.reply = None
    assert deliver_pending(engine, settings, nt.NOW + timedelta(minutes=2)).sent == 1
    assert smtp.keys() == [row.idempotency_key]

    nt.request_for(engine, nt.add_case(engine, id_parcel="086-000002"))
    smtp.reply = "550 5.1.1 Mailbox unavailable"
    assert deliver_pending(engine, settings, nt.NOW + timedelta(minutes=3)).failed == 1
    failed = _rows(engine)[-1]
    assert (
        failed.status == "failed"
        and "550" in failed.last_error
        and "Mailbox unavailable" in failed.last_error
    )
    smtp.reply = None
    later = deliver_pending(engine, settings, nt.NOW + timedelta(days=1), schedule=False)
    assert later.sent == 0 and len(smtp.messages) == 1  # a permanent failure is never retried


def test_gives_up_after_max_attempts(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine))
    settings = nt.settings_for(smtp, None, notify_max_attempts=3)
    smtp.reply = "421 4.7.0 Too many connections"
    when = nt.NOW
    for _ in range(3):
        deliver_pending(engine, settings, when, schedule=False)
        when += timedelta(hours=1)
    (row,) = _rows(engine)
    assert row.status == "failed" and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 attempts") and "421" in row.last_error


def test_webhook_500_timeout_and_400(engine: Any, nt: Any, webhook: Any) -> None:
    nt.add_world(engine)
    settings = nt.settings_for(None, webhook, webhook_timeout=0.3)
    nt.request_for(engine, nt.add_case(engine))
    webhook.status = 500
    assert deliver_pending(engine, settings, nt.NOW, schedule=False).retried == 1
    assert "answered 500" in _rows(engine)[0].last_error
    webhook.status, webhook.hang = 200, 1.0  # a hanging gateway
    assert deliver_pending(engine, settings, nt.NOW + timedelta(minutes=2), schedule=False).retried == 1
    assert "timed out" in _rows(engine)[0].last_error
    webhook.hang = 0.0
    assert deliver_pending(engine, settings, nt.NOW + timedelta(minutes=10), schedule=False).sent == 1
    # the receiver saw three POSTs with the same key and acknowledged only the last
    key = _rows(engine)[0].idempotency_key
    assert [r["headers"]["Idempotency-Key"] for r in webhook.requests] == [key, key, key]
    assert webhook.keys() == [key]

    nt.request_for(engine, nt.add_case(engine, id_parcel="086-000002"))
    webhook.status = 400
    assert deliver_pending(engine, settings, nt.NOW + timedelta(minutes=11), schedule=False).failed == 1
    assert "answered 400" in _rows(engine)[1].last_error and _rows(engine)[1].status == "failed"


def test_a_down_channel_is_left_alone_for_the_run(engine: Any, nt: Any, smtp: Any, webhook: Any) -> None:
    nt.add_world(engine)
    for i in range(6):
        nt.request_for(engine, nt.add_case(engine, id_parcel=f"086-00000{i}"))
    smtp.stop()
    summary = deliver_pending(engine, nt.settings_for(smtp, webhook), nt.NOW)
    # three failed tries trip the e-mail channel; the other e-mails wait without an attempt,
    # and the push notifications are not held up by the broken e-mail server
    assert (summary.retried, summary.sent) == (3, 6)
    email = [r for r in _rows(engine) if r.channel == "email"]
    assert sorted(r.attempts for r in email) == [0, 0, 0, 1, 1, 1]
    assert all(r.status == "pending" for r in email)
    assert len(webhook.keys()) == 6


def _run_worker(url: str, smtp: Any, webhook: Any) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        S3TR_SMTP_HOST=smtp.host,
        S3TR_SMTP_PORT=str(smtp.port),
        S3TR_SMTP_STARTTLS="false",
        S3TR_WEBHOOK_URL=webhook.url,
        S3TR_WEBHOOK_SECRET="k",
        S3TR_NOTIFY_BATCH_SIZE="20",
        S3TR_NOTIFY_QUIET_START="0",
        S3TR_NOTIFY_QUIET_END="0",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "s3tr", "notify", "run", "--db", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow  # a worker subprocess (its imports take seconds on a busy machine)
def test_worker_killed_mid_batch_delivers_everything_once(
    engine: Any, db_url: str, nt: Any, smtp: Any, webhook: Any
) -> None:
    """SIGKILL the worker process while it sends; a recovery run (after the lease) finishes the
    job. Every committed notification reaches each receiver: counted by idempotency key, nothing
    is missing, and at most the one message in flight at the kill arrives twice (with its key)."""
    world = nt.add_world(engine)
    n = 150
    with session_scope(engine, write=True) as s:
        enqueue_many(
            s,
            [
                {"kind": "flag_changed", "pacage": "086000001", "id_parcel": f"086-{i:06d}", "now": nt.NOW,
                 "payload": {"control": "min_activity", "flag": "red", "previous_flag": "green"}}
                for i in range(n)
            ],
        )  # fmt: skip
    webhook.delay = 0.01  # a realistic gateway: the run lasts long enough to be killed mid-way
    proc = _run_worker(db_url, smtp, webhook)
    deadline = time.monotonic() + 60
    while len(webhook.requests) < 30 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert proc.poll() is None, f"the worker ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stderr.close()
    at_kill = Counter(r.status for r in _rows(engine))
    assert at_kill["sent"] < 2 * n  # killed mid-batch, not after the end
    webhook.delay = 0.0
    recovery_time = datetime.now(UTC) + timedelta(seconds=301)  # past the 300 s lease of the dead worker
    summary = deliver_pending(
        engine,
        nt.settings_for(smtp, webhook, webhook_secret="k", notify_quiet_start=0, notify_quiet_end=0),
        recovery_time,
        schedule=False,
    )
    assert summary.failed == 0 and summary.retried == 0
    assert Counter(r.status for r in _rows(engine)) == {"sent": 2 * n}
    expected = {f"s3tr-n{i}-u{world.farmer}-{ch}" for i in range(1, n + 1) for ch in ("email", "webhook")}
    for keys in (smtp.keys(), webhook.keys()):
        counts = Counter(keys)
        assert set(counts) <= expected and len(counts) == n  # every notification, none foreign
        assert sum(counts.values()) - n <= 1  # at most the in-flight one repeated, with its key
    assert set(smtp.keys()) | set(webhook.keys()) == expected


@pytest.mark.parametrize("flavour", ["text"])
def test_cli_notify_run(engine: Any, db_url: str, nt: Any, smtp: Any, flavour: str, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from s3tr.cli import app

    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine))
    monkeypatch.setenv("S3TR_SMTP_HOST", smtp.host)
    monkeypatch.setenv("S3TR_SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("S3TR_SMTP_STARTTLS", "false")
    result = CliRunner().invoke(app, ["notify", "run", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output and len(smtp.messages) == 1
    assert flavour == "text"


def test_two_workers_never_send_the_same_delivery(engine: Any, nt: Any, smtp: Any, webhook: Any) -> None:
    """Concurrent workers claim disjoint rows (SKIP LOCKED / BEGIN IMMEDIATE): each key arrives once."""
    from concurrent.futures import ThreadPoolExecutor

    nt.add_world(engine)
    n = 60
    with session_scope(engine, write=True) as s:
        enqueue_many(
            s,
            [{"kind": "case_decided", "pacage": "086000001", "id_parcel": f"086-{i:06d}", "now": nt.NOW,
              "payload": {"control": "fallow", "outcome": "green"}} for i in range(n)],
        )  # fmt: skip
    settings = nt.settings_for(smtp, webhook, notify_batch_size=7)
    with ThreadPoolExecutor(3) as pool:
        summaries = list(
            pool.map(lambda _: deliver_pending(engine, settings, nt.NOW, schedule=False), range(3))
        )
    assert sum(s.sent for s in summaries) == 2 * n
    assert sum(s.expanded for s in summaries) == n  # each notification expanded by one worker only
    for keys in (smtp.keys(), webhook.keys()):
        assert len(keys) == n and len(set(keys)) == n

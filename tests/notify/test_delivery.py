"""The worker against a real SMTP server and a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from s3tr.notify.preferences import set_preferences
from s3tr.notify.worker import deliver_pending
from s3tr.review.database import session_scope
from s3tr.review.models import NotificationDelivery


def _deliveries(engine: Any) -> list[NotificationDelivery]:
    with session_scope(engine) as s:
        return list(s.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id)))


def test_photo_request_reaches_the_farmer_by_email_and_push(
    engine: Any, nt: Any, smtp: Any, webhook: Any
) -> None:
    world = nt.add_world(engine)
    case_id = nt.add_case(engine)
    nt.add_case(engine, pacage="086000002", id_parcel="086-000777")  # another farm's case: not told
    request_id = nt.request_for(engine, case_id)
    summary = deliver_pending(engine, nt.settings_for(smtp, webhook), nt.NOW)
    assert (summary.expanded, summary.deliveries_created, summary.sent) == (1, 2, 2)

    (mail,) = smtp.messages
    assert smtp.envelopes == [("no-reply@s3tr.invalid", ["farmer.a@example.org"])]
    assert mail["To"] == "farmer.a@example.org"
    assert mail["Subject"] == "Photos demandées pour la parcelle 086-000001 avant le 16/06/2025"
    body = mail.get_content()
    assert "la parcelle 086-000001 (campagne 2025)" in body
    assert "Activité agricole minimale sur prairie" in body
    assert "Une vue générale depuis le coin nord-est" in body
    assert f"https://app.s3tr.test/photo-requests/{request_id}" in body
    assert mail["X-S3TR-Idempotency-Key"] == f"s3tr-n1-u{world.farmer}-email"

    (post,) = webhook.requests
    raw, headers = post["body"], post["headers"]
    expected = (
        "sha256="
        + hmac.new(
            nt.SECRET.encode(), headers["X-S3TR-Timestamp"].encode() + b"." + raw, hashlib.sha256
        ).hexdigest()
    )
    assert headers["X-S3TR-Signature"] == expected  # the receiver can verify the origin
    doc = json.loads(raw)
    assert headers["Idempotency-Key"] == doc["idempotency_key"] == f"s3tr-n1-u{world.farmer}-webhook"
    assert doc["recipient"]["username"] == "farmer_a" and doc["recipient"]["pacage"] == "086000001"
    assert doc["title"] == mail["Subject"]
    assert doc["data"]["request_id"] == request_id and doc["data"]["deadline"] == "2025-06-16"

    # nothing is sent twice (schedule=False: no digest in this run, only what is pending)
    again = deliver_pending(
        engine, nt.settings_for(smtp, webhook), nt.NOW + timedelta(minutes=5), schedule=False
    )
    assert again.sent == 0 and len(smtp.messages) == 1 and len(webhook.requests) == 1
    assert [d.status for d in _deliveries(engine)] == ["sent", "sent"]


def test_tampered_body_fails_the_signature(engine: Any, nt: Any, webhook: Any) -> None:
    from s3tr.notify.channels import verify_signature

    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine))
    deliver_pending(engine, nt.settings_for(None, webhook), nt.NOW)
    (post,) = webhook.requests
    ts, sig = post["headers"]["X-S3TR-Timestamp"], post["headers"]["X-S3TR-Signature"]
    assert verify_signature(nt.SECRET.encode(), ts, post["body"], sig)
    assert not verify_signature(nt.SECRET.encode(), ts, post["body"].replace(b"086", b"087"), sig)
    assert not verify_signature(b"other-secret", ts, post["body"], sig)


def test_preferences_language_opt_out_and_mute(engine: Any, nt: Any, smtp: Any, webhook: Any) -> None:
    world = nt.add_world(engine)
    settings = nt.settings_for(smtp, webhook)
    set_preferences(engine, world.farmer, locale="en", push_enabled=False)
    nt.request_for(engine, nt.add_case(engine))
    deliver_pending(engine, settings, nt.NOW)
    (mail,) = smtp.messages
    assert mail["Subject"] == "Photos requested for parcel 086-000001 by 2025-06-16"
    assert "What is asked:" in mail.get_content()
    assert webhook.requests == []  # push switched off

    set_preferences(engine, world.farmer, muted_kinds=["photo_requested"], push_enabled=True)
    nt.request_for(engine, nt.add_case(engine, id_parcel="086-000002"))
    set_preferences(engine, world.farmer, muted_kinds=[], opted_out=True)
    nt.request_for(engine, nt.add_case(engine, id_parcel="086-000003"))
    summary = deliver_pending(engine, settings, nt.NOW)
    assert summary.expanded == 2 and summary.deliveries_created == 0  # muted, then opted out
    assert len(smtp.messages) == 1 and webhook.requests == []
    assert nt.count(engine, "notifications") == 3  # still listed in the app


def test_instructor_digest_once_a_day(engine: Any, nt: Any, smtp: Any) -> None:
    from s3tr.review.requests import record_photo

    world = nt.add_world(engine)
    set_preferences(engine, world.instructor, email="ddt86@example.org")
    settings = nt.settings_for(smtp, None)
    yesterday = nt.NOW - timedelta(hours=20)
    cases = [nt.add_case(engine, id_parcel=f"086-00010{i}", created_at=yesterday) for i in range(3)]
    nt.add_case(engine, id_parcel="079-000001", department="79", created_at=yesterday)  # other department
    old = nt.request_for(
        engine, cases[0], deadline=(nt.NOW - timedelta(days=1)).date(), now=nt.NOW - timedelta(days=9)
    )
    fresh = nt.request_for(engine, cases[1], now=yesterday)
    record_photo(engine, fresh, sha256="b" * 64, storage_path="x.jpg", actor="farmer_a", now=yesterday)
    deliver_pending(engine, settings, nt.NOW)
    digests = [m for m in smtp.messages if m["X-S3TR-Kind"] == "digest"]
    assert len(digests) == 1 and digests[0]["To"] == "ddt86@example.org"
    assert digests[0]["Subject"] == (
        "s3tr — département 86, 02/06/2025 : 3 nouveaux cas, 1 photo, 1 délai dépassé"
    )
    assert "086-000100, 086-000101, 086-000102" in digests[0].get_content()
    assert old  # the unanswered request whose deadline passed yesterday is the "délai dépassé"
    deliver_pending(engine, settings, nt.NOW + timedelta(hours=3))  # same day: no second digest
    assert len([m for m in smtp.messages if m["X-S3TR-Kind"] == "digest"]) == 1
    deliver_pending(engine, settings, nt.NOW + timedelta(days=1, hours=3))  # nothing new: none
    assert len([m for m in smtp.messages if m["X-S3TR-Kind"] == "digest"]) == 1


def test_smtp_starttls_and_login(engine: Any, nt: Any, tmp_path: Any) -> None:
    """STARTTLS then AUTH LOGIN against a TLS-capable aiosmtpd (self-signed certificate)."""
    import shutil
    import ssl
    import subprocess

    import pytest

    from s3tr.notify.channels import SmtpChannel

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        from aiosmtpd.smtp import AuthResult

        user, password = auth_data.login.decode(), auth_data.password.decode()
        logins.append((user, password))
        return AuthResult(success=(user, password) == ("s3tr", "s3cret"))

    receiver = nt.start_smtp(
        nt.SmtpReceiver("127.0.0.1", nt.free_port()),
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    try:
        world = nt.add_world(engine)
        nt.request_for(engine, nt.add_case(engine))
        client_ctx = ssl.create_default_context(cafile=str(cert))
        good = SmtpChannel(
            receiver.host, receiver.port, sender="s3tr <no-reply@s3tr.test>", starttls=True,
            username="s3tr", password="s3cret", ssl_context=client_ctx, timeout=5,
        )  # fmt: skip
        summary = deliver_pending(engine, nt.settings_for(), nt.NOW, channels={"email": good})
        good.close()
        assert summary.sent == 1 and logins == [("s3tr", "s3cret")]
        assert receiver.messages[0]["To"] == "farmer.a@example.org"
        # a wrong password is refused: retried later, not lost
        nt.request_for(engine, nt.add_case(engine, id_parcel="086-000005"))
        bad = SmtpChannel(
            receiver.host, receiver.port, sender="x@s3tr.test", starttls=True, username="s3tr",
            password="wrong", ssl_context=client_ctx, timeout=5,
        )  # fmt: skip
        summary = deliver_pending(engine, nt.settings_for(), nt.NOW, channels={"email": bad})
        bad.close()
        assert summary.retried == 1 and len(receiver.messages) == 1
        assert world.farmer
    finally:
        receiver.stop()

"""Reminders fire at the configured offsets before the deadline, respect quiet hours, and stop
once the request is answered. Time is injected; nothing sleeps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from s3tr.notify.schedule import due_offset, in_quiet_hours
from s3tr.notify.worker import deliver_pending
from s3tr.review.requests import record_photo


def _at(day: int, hour_utc: int = 10) -> datetime:
    return datetime(2025, 6, day, hour_utc, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days_left", "expected"),
    [(14, None), (8, None), (7, 7), (5, 7), (3, 7), (2, 2), (1, 2), (0, 2), (-1, None)],
)
def test_due_offset_windows(days_left: int, expected: int | None) -> None:
    assert due_offset(days_left, [2, 7]) == expected


def test_quiet_hours_span_midnight_in_paris_time() -> None:
    # 21:00-08:00 Europe/Paris; in June Paris is UTC+2
    assert in_quiet_hours(_at(9, 19), "Europe/Paris", 21, 8)  # 21:00 Paris
    assert in_quiet_hours(_at(9, 5), "Europe/Paris", 21, 8)  # 07:00 Paris
    assert not in_quiet_hours(_at(9, 6), "Europe/Paris", 21, 8)  # 08:00 Paris
    assert not in_quiet_hours(_at(9, 18), "Europe/Paris", 21, 8)  # 20:00 Paris
    assert not in_quiet_hours(_at(9, 3), "Europe/Paris", 0, 0)  # start == end: never quiet


def _reminders(smtp: Any) -> list[Any]:
    return [m for m in smtp.messages if m["X-S3TR-Kind"] == "reminder"]


def test_reminders_at_7_and_2_days_then_none(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    settings = nt.settings_for(smtp, None, notify_reminder_days=[7, 2])
    request = nt.request_for(engine, nt.add_case(engine), deadline=date(2025, 6, 16), now=_at(1))
    answered = nt.request_for(
        engine, nt.add_case(engine, id_parcel="086-000002"), deadline=date(2025, 6, 16), now=_at(1)
    )
    record_photo(engine, answered, sha256="c" * 64, storage_path="c.jpg", actor="farmer_a", now=_at(3))
    sent_on: dict[int, int] = {}
    for day in range(1, 18):
        before = len(_reminders(smtp))
        deliver_pending(engine, settings, _at(day))
        deliver_pending(engine, settings, _at(day, 14))  # a second run the same day adds nothing
        if len(_reminders(smtp)) > before:
            sent_on[day] = len(_reminders(smtp)) - before
    assert sent_on == {9: 1, 14: 1}  # 7 days and 2 days before 16 June; none for the answered one
    first, second = _reminders(smtp)
    assert first["Subject"] == "Rappel : photos de la parcelle 086-000001 attendues avant le 16/06/2025"
    assert "Il reste 7 jours" in first.get_content()
    assert "Il reste 2 jours" in second.get_content()
    assert f"/photo-requests/{request}" in second.get_content()
    assert nt.count(engine, "notifications", "kind = 'reminder'") == 2


def test_missed_window_sends_only_the_current_reminder(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    nt.request_for(engine, nt.add_case(engine), deadline=date(2025, 6, 16), now=_at(1))
    deliver_pending(engine, nt.settings_for(smtp, None), _at(15))  # the worker was down for two weeks
    (only,) = _reminders(smtp)
    assert "Il reste 1 jour :" in only.get_content()


def test_quiet_hours_hold_reminders_back(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    settings = nt.settings_for(smtp, None)  # quiet 21:00-08:00 Paris by default
    nt.request_for(engine, nt.add_case(engine), deadline=date(2025, 6, 16), now=_at(1))
    assert deliver_pending(engine, settings, _at(1)).sent == 1  # the request itself goes out by day
    night = datetime(2025, 6, 9, 20, 30, tzinfo=UTC)  # 22:30 in Paris
    summary = deliver_pending(engine, settings, night)
    assert summary.reminders == 1 and summary.sent == 0 and _reminders(smtp) == []
    morning = datetime(2025, 6, 10, 6, 15, tzinfo=UTC)  # 08:15 in Paris
    assert deliver_pending(engine, settings, morning).sent == 1
    assert len(_reminders(smtp)) == 1


def test_reminder_answered_before_delivery_is_skipped(engine: Any, nt: Any, smtp: Any) -> None:
    nt.add_world(engine)
    settings = nt.settings_for(smtp, None)
    request = nt.request_for(engine, nt.add_case(engine), deadline=date(2025, 6, 16), now=_at(1))
    night = datetime(2025, 6, 9, 20, 30, tzinfo=UTC)
    deliver_pending(engine, settings, night)  # reminder queued, held by the quiet hours
    record_photo(
        engine,
        request,
        sha256="d" * 64,
        storage_path="d.jpg",
        actor="farmer_a",
        now=night + timedelta(hours=1),
    )
    summary = deliver_pending(engine, settings, datetime(2025, 6, 10, 7, 0, tzinfo=UTC))
    assert summary.skipped == 1 and _reminders(smtp) == []
    assert nt.count(engine, "notification_deliveries", "status = 'skipped'") == 1

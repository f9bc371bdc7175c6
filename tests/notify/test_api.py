"""The farmer API: my notifications (in my language), mark read, my preferences."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from s3tr.api import ApiSettings, create_app
from s3tr.review.users import issue_token


def _client(db_url: str, nt: Any) -> TestClient:
    return TestClient(create_app(db_url=db_url, settings=ApiSettings(clock=lambda: nt.NOW)))


def test_list_read_and_scope(engine: Any, db_url: str, nt: Any) -> None:
    world = nt.add_world(engine)
    request_id = nt.request_for(engine, nt.add_case(engine))
    nt.request_for(engine, nt.add_case(engine, pacage="086000002", id_parcel="086-000222"))
    mine = {"Authorization": f"Bearer {issue_token(engine, world.farmer)}"}
    theirs = {"Authorization": f"Bearer {issue_token(engine, world.other)}"}
    with _client(db_url, nt) as client:
        got = client.get("/api/v1/me/notifications", headers=mine)
        assert got.status_code == 200, got.text
        (note,) = got.json()  # only my farm's notification
        assert note["kind"] == "photo_requested" and note["request_id"] == request_id
        assert note["title"] == "Photos demandées pour la parcelle 086-000001 avant le 16/06/2025"
        assert "vue générale" in note["body"] and note["read_at"] is None
        assert note["data"]["deadline"] == "2025-06-16"
        english = client.get("/api/v1/me/notifications", headers={**mine, "Accept-Language": "en"}).json()
        assert english[0]["title"] == "Photos requested for parcel 086-000001 by 2025-06-16"

        # another farmer can neither see nor mark it
        assert client.post(f"/api/v1/me/notifications/{note['id']}/read", headers=theirs).status_code == 404
        read = client.post(f"/api/v1/me/notifications/{note['id']}/read", headers=mine)
        assert read.status_code == 200 and read.json()["read_at"].startswith("2025-06-02T10:00:00")
        again = client.post(f"/api/v1/me/notifications/{note['id']}/read", headers=mine)
        assert again.json()["read_at"] == read.json()["read_at"]  # idempotent
        assert client.get("/api/v1/me/notifications?unread=true", headers=mine).json() == []
        assert client.get("/api/v1/me/notifications?unred=true", headers=mine).status_code == 422
        assert len(client.get("/api/v1/me/notifications", headers=theirs).json()) == 1


def test_preferences_roundtrip(engine: Any, db_url: str, nt: Any) -> None:
    world = nt.add_world(engine)
    headers = {"Authorization": f"Bearer {issue_token(engine, world.other)}"}
    with _client(db_url, nt) as client:
        assert client.get("/api/v1/me/notification-preferences", headers=headers).json() == {
            "email": None,
            "email_enabled": True,
            "push_enabled": True,
            "opted_out": False,
            "muted_kinds": [],
            "locale": "fr",
        }
        put = client.put(
            "/api/v1/me/notification-preferences",
            headers=headers,
            json={"email": "b@example.org", "muted_kinds": ["flag_changed"], "locale": "en"},
        )
        assert put.status_code == 200, put.text
        got = client.get("/api/v1/me/notification-preferences", headers=headers).json()
        assert (
            got["email"] == "b@example.org"
            and got["muted_kinds"] == ["flag_changed"]
            and got["locale"] == "en"
        )
        bad = client.put(
            "/api/v1/me/notification-preferences", headers=headers, json={"email": "not-an-address"}
        )
        assert bad.status_code == 422
        instructor = {"Authorization": f"Bearer {issue_token(engine, world.instructor)}"}
        assert client.get("/api/v1/me/notifications", headers=instructor).status_code == 403

"""Bad input gets a 4xx problem with a clear message, and nothing is stored half-way."""

from __future__ import annotations

import io
import struct
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from s3tr.review.models import Photo, PhotoRequest
from tests.api.support import PACAGE_A, PACAGE_B, Env, first_case, jpeg_with_gps, parcel_outline, photo_files


def _state(env: Env) -> tuple[int, int, list[Any]]:
    with Session(env.engine) as s:
        photos = s.scalar(select(func.count()).select_from(Photo))
        requests = s.scalar(select(func.count()).select_from(PhotoRequest))
    root = env.workdir / "photos"
    everything = sorted(p for p in root.rglob("*")) if root.exists() else []
    return int(photos or 0), int(requests or 0), everything


def _problem(resp: Any, status: int, *, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body) and body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def pending(env: Env) -> dict[str, Any]:
    case = first_case(env.engine, PACAGE_A)
    spot = parcel_outline(env.engine, case.id_parcel).representative_point()
    r = env.client.post(
        f"/api/v1/cases/{case.case_id}/photo-requests",
        json={"target_lon": spot.x, "target_lat": spot.y, "deadline": "2025-07-10", "instructions": "vue"},
        headers=env.h("instr_86"),
    )
    assert r.status_code == 201, r.text
    env.clock.advance(hours=1)
    good = jpeg_with_gps(lon=spot.x, lat=spot.y, taken=env.clock.now - timedelta(minutes=10), seed=11)
    return {"rid": r.json()["id"], "case": case, "spot": spot, "good": good}


def _upload(
    env: Env, rid: int, payload: bytes, *, key: str = "key-bad-input", ctype: str = "image/jpeg", **kw: Any
):
    return env.client.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("p.jpg", payload, ctype)},
        headers=env.h("farmer_a", **{"Idempotency-Key": key}),
        **kw,
    )


def _exif_bomb(good: bytes) -> bytes:
    """A JPEG whose EXIF directory claims 65535 entries in a 20-byte block."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + b"\x00" * 6
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return good[:2] + app1 + good[2:]


def test_broken_photos_are_refused_and_nothing_is_stored(env: Env, pending: dict[str, Any]) -> None:
    rid, good = pending["rid"], pending["good"]
    before = _state(env)
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 128, 0)).save(png, "PNG")
    cases = [
        (good[: len(good) // 2], 422, None),  # truncated
        (b"\xff\xd8\xff" + b"\x00garbage" * 100, 422, None),  # malformed after the SOI
        (b"", 422, None),  # empty
        (_exif_bomb(good), 422, None),  # EXIF bomb
        (png.getvalue(), 415, None),  # a PNG declared as image/jpeg
    ]
    for data, status, code in cases:
        body = _problem(_upload(env, rid, data), status, code=code)
        assert body["code"].startswith("photo-") or status == 415
        assert body.get("detail_fr")  # the farmer gets the message in French too
    assert _state(env) == before


def test_wrong_content_types_and_missing_parts(env: Env, pending: dict[str, Any]) -> None:
    rid, good = pending["rid"], pending["good"]
    before = _state(env)
    _problem(_upload(env, rid, good, ctype="text/plain"), 415, code="not-jpeg")
    raw = env.client.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        content=good,
        headers=env.h("farmer_a", **{"Idempotency-Key": "raw-body-key", "Content-Type": "image/jpeg"}),
    )
    _problem(raw, 415)
    no_file = env.client.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        data={"view": "general"},
        files={"other": ("p.jpg", good, "image/jpeg")},
        headers=env.h("farmer_a", **{"Idempotency-Key": "no-file-key"}),
    )
    _problem(no_file, 422, code="missing-file")
    no_key = env.client.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("p.jpg", good, "image/jpeg")},
        headers=env.h("farmer_a"),
    )
    _problem(no_key, 400, code="idempotency-key-missing")
    _problem(_upload(env, rid, good, key="short"), 400, code="idempotency-key-invalid")
    _problem(_upload(env, rid, good, data={"view": "sideways"}), 422)
    assert _state(env) == before


def test_huge_upload_is_refused_while_streaming(env: Env, pending: dict[str, Any]) -> None:
    before = _state(env)
    huge = pending["good"] + b"\x00" * 3_000_000  # the app under test allows 2 MB

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        boundary = b"xyzBOUNDARYxyz"
        yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
        yield b"Content-Type: image/jpeg\r\n\r\n"
        for i in range(0, len(huge), 256 * 1024):
            yield huge[i : i + 256 * 1024]
        yield b"\r\n--" + boundary + b"--\r\n"

    streamed = env.client.post(
        f"/api/v1/me/photo-requests/{pending['rid']}/photos",
        content=chunks(),
        headers=env.h(
            "farmer_a",
            **{
                "Idempotency-Key": "huge-photo-key",
                "Content-Type": "multipart/form-data; boundary=xyzBOUNDARYxyz",
            },
        ),
    )
    _problem(streamed, 413)
    _problem(_upload(env, pending["rid"], huge, key="huge-photo-key2"), 413)  # with Content-Length
    assert _state(env) == before


def test_idempotency_and_duplicates(env: Env, pending: dict[str, Any]) -> None:
    rid, good = pending["rid"], pending["good"]
    first = _upload(env, rid, good, key="same-key-0001")
    assert first.status_code == 201
    after_first = _state(env)
    assert after_first[0] == 1 and len(photo_files(env.workdir)) == 1
    replay = _upload(env, rid, good, key="same-key-0001")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    other = jpeg_with_gps(lon=pending["spot"].x, lat=pending["spot"].y, taken=env.clock.now, seed=12)
    _problem(_upload(env, rid, other, key="same-key-0001"), 409, code="idempotency-key-reused")
    assert _state(env) == after_first

    # the same image sent again under a new key is not lost: stored, with a failed duplicate check
    again = _upload(env, rid, good, key="another-key-02")
    assert again.status_code == 201, again.text
    dup = again.json()
    checks = {c["name"]: c for c in dup["checks"]}
    assert dup["id"] != first.json()["id"] and dup["sha256"] == first.json()["sha256"]
    assert dup["accepted"] is False and dup["replayed"] is False
    assert checks["not_duplicate"]["passed"] is False
    assert checks["not_duplicate"]["details"]["exact_duplicate"] is True
    assert {c["name"]: c["passed"] for c in first.json()["checks"]}["not_duplicate"] is True
    photos, requests, _files = _state(env)
    assert photos == 2 and requests == after_first[1]
    assert len(photo_files(env.workdir)) == 1  # the same bytes: one stored file for both rows
    # its retry is a replay of the duplicate, and the farmer and the instructor see both photos
    replay2 = _upload(env, rid, good, key="another-key-02")
    assert replay2.status_code == 200 and replay2.json()["id"] == dup["id"]
    listed = env.client.get(f"/api/v1/me/photo-requests/{rid}", headers=env.h("farmer_a")).json()
    assert [p["accepted"] for p in listed["photos"]] == [first.json()["accepted"], False]
    case_id = pending["case"].case_id
    seen = env.client.get(f"/api/v1/cases/{case_id}", headers=env.h("instr_86")).json()
    assert dup["id"] in [p["id"] for p in seen["photos"]]
    assert _state(env)[0] == 2


def test_idempotency_keys_are_stored_in_indexed_columns(env: Env, pending: dict[str, Any]) -> None:
    first = _upload(env, pending["rid"], pending["good"], key="column-key-001")
    assert first.status_code == 201, first.text
    with Session(env.engine) as s:
        photo = s.get(Photo, first.json()["id"])
        assert photo is not None
        assert photo.idempotency_key == "column-key-001"
        assert photo.uploaded_by == env.user_ids["farmer_a"]
        assert photo.phash and len(photo.phash) >= 16
        assert "idempotency_key" not in photo.device and "phash" not in photo.device
    # the same key used by another farmer is that farmer's own key: no clash
    case_b = first_case(env.engine, PACAGE_B)
    spot_b = parcel_outline(env.engine, case_b.id_parcel).representative_point()
    r = env.client.post(
        f"/api/v1/cases/{case_b.case_id}/photo-requests",
        json={"deadline": "2025-07-10", "instructions": "vue"},
        headers=env.h("instr_86"),
    )
    assert r.status_code == 201, r.text
    photo_b = jpeg_with_gps(lon=spot_b.x, lat=spot_b.y, taken=env.clock.now - timedelta(minutes=5), seed=21)
    resp = env.client.post(
        f"/api/v1/me/photo-requests/{r.json()['id']}/photos",
        files={"file": ("p.jpg", photo_b, "image/jpeg")},
        headers=env.h("farmer_b", **{"Idempotency-Key": "column-key-001"}),
    )
    assert resp.status_code == 201 and resp.json()["replayed"] is False, resp.text


def test_bad_coordinates_and_unknown_ids(env: Env) -> None:
    case = first_case(env.engine, PACAGE_A)
    spot = parcel_outline(env.engine, case.id_parcel).representative_point()
    before = _state(env)
    url = f"/api/v1/cases/{case.case_id}/photo-requests"
    base = {"deadline": "2025-07-10", "instructions": "vue"}
    swapped = env.client.post(
        url, json={**base, "target_lon": spot.y, "target_lat": spot.x}, headers=env.h("instr_86")
    )
    assert "swapped" in _problem(swapped, 422, code="target-lat-lon-swapped")["detail"]
    _problem(
        env.client.post(url, json={**base, "target_lon": 0.3, "target_lat": 95}, headers=env.h("instr_86")),
        422,
    )
    _problem(
        env.client.post(url, json={**base, "target_lon": 200, "target_lat": 46}, headers=env.h("instr_86")),
        422,
    )
    far = env.client.post(
        url, json={**base, "target_lon": 2.35, "target_lat": 48.85}, headers=env.h("instr_86")
    )
    _problem(far, 422, code="target-too-far")
    _problem(env.client.post(url, json={**base, "target_lon": spot.x}, headers=env.h("instr_86")), 422)
    past = env.client.post(url, json={**base, "deadline": "2025-01-01"}, headers=env.h("instr_86"))
    _problem(past, 422, code="deadline-past")
    _problem(env.client.post(url, json={**base, "bogus": 1}, headers=env.h("instr_86")), 422)
    assert _state(env) == before

    _problem(env.client.get("/api/v1/cases/987654321", headers=env.h("instr_86")), 404)
    _problem(env.client.get("/api/v1/cases/abc", headers=env.h("instr_86")), 422)
    _problem(env.client.get("/api/v1/me/photo-requests/987654321", headers=env.h("farmer_a")), 404)
    _problem(env.client.get("/api/v1/me/parcels/NO-SUCH-PARCEL", headers=env.h("farmer_a")), 404)
    _problem(env.client.get("/api/v1/nowhere", headers=env.h("farmer_a")), 404)
    _problem(env.client.delete("/api/v1/me/parcels", headers=env.h("farmer_a")), 405)
    bad_match = env.client.post(
        f"/api/v1/cases/{case.case_id}/decision",
        json={"outcome": "red", "comment": "x"},
        headers=env.h("instr_86", **{"If-Match": '"999"'}),
    )
    _problem(bad_match, 409, code="version-conflict")
    _problem(
        env.client.post(
            f"/api/v1/cases/{case.case_id}/decision",
            json={"outcome": "maybe", "comment": "x"},
            headers=env.h("instr_86"),
        ),
        422,
    )


def test_concurrent_retries_store_one_photo(env: Env, pending: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def send(_: int) -> int:
        return _upload(env, pending["rid"], pending["good"], key="racing-key-01").status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(send, range(4)))
    assert statuses.count(201) == 1 and statuses.count(200) == 3, statuses
    photos, _, files = _state(env)
    assert photos == 1 and len([f for f in files if f.is_file()]) == 1

"""The end-to-end scenarios on the demo season: photo request -> uploads -> decision; correction."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from s3tr.review.models import AuditLog, Case, Decision, Photo
from tests.api.support import PACAGE_A, Env, first_case, jpeg_with_gps, parcel_outline, photo_files


def test_photo_request_upload_and_decision(any_env: Env) -> None:
    env = any_env
    c = env.client
    case = first_case(env.engine, PACAGE_A)
    # the instructor sees the orange case the pipeline opened
    queue = c.get("/api/v1/cases", params={"state": "open", "limit": 500}, headers=env.h("instr_86"))
    assert queue.status_code == 200
    assert case.case_id in [i["case_id"] for i in queue.json()["items"]]
    prios = [i["priority"] for i in queue.json()["items"]]
    assert prios == sorted(prios, reverse=True)
    detail = c.get(f"/api/v1/cases/{case.case_id}", headers=env.h("instr_86"))
    assert detail.status_code == 200
    body = detail.json()
    assert body["flag"] == "orange" and body["state"] == "open"
    assert len(body["series"]) > 10 and any(p["valid"] and p["ndvi"] is not None for p in body["series"])
    # the tillage index the bare-soil marker reads (dry vegetation against soil) comes with the others
    assert any(p["valid"] and p["ndti"] is not None for p in body["series"])
    assert body["decisions"] and body["decisions"][-1]["is_current"]
    assert detail.headers["ETag"] == f'"{body["version"]}"'

    # the instructor asks for a photo from a point inside the parcel, camera pointing north
    outline = parcel_outline(env.engine, case.id_parcel)
    spot = outline.representative_point()
    deadline = (env.clock.now + timedelta(days=14)).date()
    req = c.post(
        f"/api/v1/cases/{case.case_id}/photo-requests",
        json={
            "target_lon": spot.x,
            "target_lat": spot.y,
            "heading_deg": 0,
            "deadline": deadline.isoformat(),
            "instructions": "Montrez la culture en place",
        },
        headers=env.h("instr_86", **{"If-Match": f'"{body["version"]}"'}),
    )
    assert req.status_code == 201, req.text
    rid = req.json()["id"]

    # the farmer lists it: target point, outline, heading, shots, deadline
    env.clock.advance(hours=2)
    mine = c.get("/api/v1/me/photo-requests", headers=env.h("farmer_a"))
    assert mine.status_code == 200
    got = {r["id"]: r for r in mine.json()}[rid]
    assert got["target"]["type"] == "Point"
    assert (
        got["target"]["coordinates"] == [round(spot.x, 7), round(spot.y, 7)]
        or abs(got["target"]["coordinates"][0] - spot.x) < 1e-6
    )
    assert got["parcel_outline"]["type"] in ("Polygon", "MultiPolygon")
    assert {s["view"] for s in got["shots"]} == {"general", "closeup"}
    assert got["deadline"] == deadline.isoformat() and got["heading_deg"] == 0 and got["state"] == "pending"

    # a good photo: at the spot, one hour after the request, pointing north
    good = jpeg_with_gps(lon=spot.x, lat=spot.y, taken=env.clock.now - timedelta(hours=1), heading=10, seed=1)
    up = c.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("p1.jpg", good, "image/jpeg")},
        data={"view": "general"},
        headers=env.h("farmer_a", **{"Idempotency-Key": "photo-one-0001"}),
    )
    assert up.status_code == 201, up.text
    res = up.json()
    checks = {ch["name"]: ch for ch in res["checks"]}
    assert res["accepted"] is True, checks
    assert checks["position"]["passed"] is True and checks["capture_time"]["passed"] is True
    assert checks["heading"]["passed"] is True
    assert all(ch["message"] for ch in res["checks"])
    # the retry of the same upload gives back the same photo, nothing new stored
    again = c.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("p1.jpg", good, "image/jpeg")},
        headers=env.h("farmer_a", **{"Idempotency-Key": "photo-one-0001"}),
    )
    assert again.status_code == 200 and again.json()["id"] == res["id"] and again.json()["replayed"] is True

    # a photo taken 3 km away fails the position check but is stored anyway
    far = jpeg_with_gps(
        lon=spot.x + 0.04, lat=spot.y, taken=env.clock.now - timedelta(minutes=30), heading=10, seed=2
    )
    bad = c.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("p2.jpg", far, "image/jpeg")},
        data={"view": "closeup"},
        headers=env.h("farmer_a", **{"Idempotency-Key": "photo-two-0002"}, **{"Accept-Language": "en"}),
    )
    assert bad.status_code == 201, bad.text
    bad_checks = {ch["name"]: ch for ch in bad.json()["checks"]}
    assert bad.json()["accepted"] is False and bad_checks["position"]["passed"] is False
    assert "parcel" in bad_checks["position"]["message"].lower()
    assert len(photo_files(env.workdir)) == 2
    with Session(env.engine) as s:
        assert s.scalar(select(func.count()).select_from(Photo)) == 2

    # the instructor sees both photos with their checks, and decides
    detail = c.get(f"/api/v1/cases/{case.case_id}", headers=env.h("instr_86")).json()
    assert detail["state"] == "photo_received"
    assert [p["accepted"] for p in detail["photos"]] == [True, False]
    content = c.get(f"/api/v1/cases/{case.case_id}/photos/{res['id']}/content", headers=env.h("instr_86"))
    assert content.status_code == 200 and content.content == good
    no_comment = c.post(
        f"/api/v1/cases/{case.case_id}/decision",
        json={"outcome": "green", "comment": "   ", "expected_version": detail["version"]},
        headers=env.h("instr_86"),
    )
    assert no_comment.status_code == 422
    assert no_comment.headers["content-type"].startswith("application/problem+json")
    decided = c.post(
        f"/api/v1/cases/{case.case_id}/decision",
        json={"outcome": "green", "comment": "Photo conforme", "expected_version": detail["version"]},
        headers=env.h("instr_86"),
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "decided" and decided.json()["outcome"] == "green"
    stale = c.post(
        f"/api/v1/cases/{case.case_id}/reopen",
        json={"comment": "relire", "expected_version": detail["version"]},
        headers=env.h("instr_86"),
    )
    assert stale.status_code == 409 and stale.json()["code"] == "version-conflict"

    # the farmer's flag changed from the satellite's orange to the instructor's green
    parcel = c.get(f"/api/v1/me/parcels/{case.id_parcel}", headers=env.h("farmer_a")).json()
    flag = {f["control"]: f for f in parcel["flags"]}[case.control]
    assert (
        flag["flag"] == "green" and flag["automatic_flag"] == "orange" and flag["decided_by"] == "instructor"
    )
    assert flag["case_state"] == "decided"
    with Session(env.engine) as s:
        actions = set(s.scalars(select(AuditLog.action).where(AuditLog.entity_id == str(case.case_id))))
    assert {"case_photo_requested", "case_photo_received", "case_decided"} <= actions
    photo_lines = [a for a in detail["audit"] if a["action"] == "photo_received"]
    assert [a["details"]["accepted"] for a in photo_lines] == [True, False]
    assert (
        photo_lines[1]["details"]["failed_checks"]
        and "position" in photo_lines[1]["details"]["failed_checks"]
    )


def test_correction_rescores_and_cancels_the_case(any_env: Env) -> None:
    env = any_env
    c = env.client
    # a fallow parcel (orange 'fallow' case) corrected to a temporary grassland
    with Session(env.engine) as s:
        case = s.scalars(
            select(Case).where(Case.pacage == "086028122", Case.control == "fallow", Case.state == "open")
        ).first()
        assert case is not None
        before = s.scalar(
            select(func.count()).select_from(Decision).where(Decision.id_parcel == case.id_parcel)
        )
    parcel = c.get(f"/api/v1/me/parcels/{case.id_parcel}", headers=env.h("farmer_b"))
    assert parcel.status_code == 200 and "fallow" in {f["control"] for f in parcel.json()["flags"]}
    resp = c.post(
        f"/api/v1/me/parcels/{case.id_parcel}/corrections",
        json={"code_cultu": "PPH", "code_group": 18, "reason": "erreur de saisie"},
        headers=env.h("farmer_b"),
    )
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["declaration_version"] == 2 and out["within_window"] is True
    assert "fallow" in out["retired_controls"] and out["cases_cancelled"] == 1
    controls = {f["control"] for f in out["flags"]}
    assert "fallow" not in controls and "min_activity" in controls  # re-scored at once as grassland
    with Session(env.engine) as s:
        assert s.get(Case, case.case_id).state == "cancelled"
        after = s.scalar(
            select(func.count()).select_from(Decision).where(Decision.id_parcel == case.id_parcel)
        )
        assert after > before
        runs = set(
            s.scalars(
                select(Decision.run_id).where(Decision.id_parcel == case.id_parcel, Decision.is_current)
            )
        )
    assert all(r.startswith("rescore-") for r in runs)
    parcel = c.get(f"/api/v1/me/parcels/{case.id_parcel}", headers=env.h("farmer_b")).json()
    assert parcel["code_cultu"] == "PPH" and parcel["declaration_version"] == 2

    # outside the correction window: a 409 problem saying when corrections are accepted
    env.clock.advance(days=120)
    late = c.post(
        f"/api/v1/me/parcels/{case.id_parcel}/corrections",
        json={"code_cultu": "BTH", "code_group": 1},
        headers=env.h("farmer_b"),
    )
    assert late.status_code == 409 and late.json()["code"] == "correction-window-closed"
    assert "2025-09-20" in late.json()["detail"]

"""Authorization on every endpoint: tokens, roles, PACAGE and department scopes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from s3tr.review.models import AuditLog, Case, Correction, Declaration, Photo, PhotoRequest
from s3tr.review.users import revoke_token
from tests.api.support import PACAGE_A, Env, first_case, jpeg_with_gps, parcel_outline, photo_files

TABLES = (Case, Photo, PhotoRequest, Declaration, Correction, AuditLog)


def _counts(env: Env) -> dict[str, int]:
    with Session(env.engine) as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}


@pytest.fixture
def world(env: Env) -> dict[str, Any]:
    """Farmer A's case with a photo request and one photo."""
    case = first_case(env.engine, PACAGE_A)
    spot = parcel_outline(env.engine, case.id_parcel).representative_point()
    r = env.client.post(
        f"/api/v1/cases/{case.case_id}/photo-requests",
        json={"deadline": "2025-07-10", "instructions": "vue générale"},
        headers=env.h("instr_86"),
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    env.clock.advance(hours=1)
    jpeg = jpeg_with_gps(lon=spot.x, lat=spot.y, taken=env.clock.now - timedelta(minutes=5), seed=5)
    up = env.client.post(
        f"/api/v1/me/photo-requests/{rid}/photos",
        files={"file": ("a.jpg", jpeg, "image/jpeg")},
        headers=env.h("farmer_a", **{"Idempotency-Key": "world-photo-1"}),
    )
    assert up.status_code == 201, up.text
    return {"case": case, "rid": rid, "photo": up.json()["id"], "jpeg": jpeg}


def _endpoints(w: dict[str, Any], env: Env) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(owner role, method, path, request kwargs) of every endpoint, aimed at farmer A's / dept 86's data."""
    cid, pid, rid = w["case"].case_id, w["case"].id_parcel, w["rid"]
    other = jpeg_with_gps(lon=1.0, lat=46.0, taken=env.clock.now, seed=9)
    return [
        ("farmer", "GET", f"/api/v1/me/parcels/{pid}", {}),
        ("farmer", "GET", f"/api/v1/me/photo-requests/{rid}", {}),
        (
            "farmer",
            "POST",
            f"/api/v1/me/photo-requests/{rid}/photos",
            {
                "files": {"file": ("x.jpg", other, "image/jpeg")},
                "headers": {"Idempotency-Key": "intruder-key-1"},
            },
        ),
        (
            "farmer",
            "POST",
            f"/api/v1/me/parcels/{pid}/corrections",
            {"json": {"code_cultu": "BTH", "code_group": 1}},
        ),
        ("instructor", "GET", f"/api/v1/cases/{cid}", {}),
        ("instructor", "GET", f"/api/v1/cases/{cid}/photos/{w['photo']}/content", {}),
        (
            "instructor",
            "POST",
            f"/api/v1/cases/{cid}/photo-requests",
            {"json": {"deadline": "2025-07-30", "instructions": "encore"}},
        ),
        (
            "instructor",
            "POST",
            f"/api/v1/cases/{cid}/decision",
            {"json": {"outcome": "red", "comment": "non"}},
        ),
        ("instructor", "POST", f"/api/v1/cases/{cid}/reopen", {"json": {"comment": "relire"}}),
        ("instructor", "POST", f"/api/v1/cases/{cid}/assignment", {"json": {"user_id": 1}}),
        (
            "instructor",
            "POST",
            f"/api/v1/cases/{cid}/field-visits",
            {"json": {"visited_on": "2025-06-19", "comment": "vu"}},
        ),
    ]


LISTINGS = [
    ("farmer", "/api/v1/me/parcels"),
    ("farmer", "/api/v1/me/photo-requests"),
    ("instructor", "/api/v1/cases"),
    ("any", "/api/v1/me"),
]


def _call(env: Env, method: str, path: str, kw: dict[str, Any], auth: dict[str, str]) -> Any:
    kw = dict(kw)
    kw["headers"] = {**kw.get("headers", {}), **auth}
    return env.client.request(method, path, **kw)


def _is_problem(resp: Any, status: int) -> None:
    assert resp.status_code == status, (resp.request.method, resp.request.url, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert (
        body["status"] == status
        and body["detail"]
        and body["type"]
        and body["instance"] == resp.request.url.path
    )


def test_missing_malformed_and_revoked_tokens_are_refused_everywhere(env: Env, world: dict[str, Any]) -> None:
    revoke_token(env.engine, env.tokens["farmer_b"])
    revoke_token(env.engine, env.tokens["instr_86b"])
    before, files = _counts(env), photo_files(env.workdir)
    bad_auth = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer not a token"},
        {"Authorization": "Bearer s3tr_" + "x" * 43},  # well-formed but unknown
        env.h("farmer_b"),  # revoked
        env.h("instr_86b"),  # revoked
    ]
    calls = [(m, p, kw) for _, m, p, kw in _endpoints(world, env)] + [("GET", p, {}) for _, p in LISTINGS]
    for method, path, kw in calls:
        for auth in bad_auth:
            resp = _call(env, method, path, kw, auth)
            _is_problem(resp, 401)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert _counts(env) == before and photo_files(env.workdir) == files


def test_other_farmer_and_other_department_see_nothing(env: Env, world: dict[str, Any]) -> None:
    before, files = _counts(env), photo_files(env.workdir)
    for owner, method, path, kw in _endpoints(world, env):
        intruder = "farmer_b" if owner == "farmer" else "instr_79"
        _is_problem(_call(env, method, path, kw, env.h(intruder)), 404)
        # the wrong role gets a 403 that reveals nothing about the resource
        wrong_role = "instr_86" if owner == "farmer" else "farmer_a"
        _is_problem(_call(env, method, path, kw, env.h(wrong_role)), 403)
    assert _counts(env) == before and photo_files(env.workdir) == files

    # listings are scoped: B does not see A's parcels or requests, 79 sees no case of 86
    b_parcels = env.client.get("/api/v1/me/parcels", headers=env.h("farmer_b")).json()
    a_parcels = env.client.get("/api/v1/me/parcels", headers=env.h("farmer_a")).json()
    assert a_parcels and b_parcels
    assert not {p["id_parcel"] for p in a_parcels} & {p["id_parcel"] for p in b_parcels}
    assert world["case"].id_parcel in {p["id_parcel"] for p in a_parcels}
    assert env.client.get("/api/v1/me/photo-requests", headers=env.h("farmer_b")).json() == []
    assert [
        r["id"] for r in env.client.get("/api/v1/me/photo-requests", headers=env.h("farmer_a")).json()
    ] == [world["rid"]]
    q79 = env.client.get("/api/v1/cases", headers=env.h("instr_79")).json()
    assert q79["total"] == 0 and q79["items"] == []
    q86 = env.client.get("/api/v1/cases", headers=env.h("instr_86")).json()
    assert q86["total"] > 0 and all(i["department"] == "86" for i in q86["items"])


def test_owners_reach_every_endpoint(env: Env, world: dict[str, Any]) -> None:
    """The same calls succeed for the owner (so the 404s above are about scope, not broken routes)."""
    ok = {"farmer": "farmer_a", "instructor": "instr_86"}
    for owner, method, path, kw in _endpoints(world, env):
        if path.endswith("/assignment"):
            kw = {"json": {"user_id": env.user_ids["instr_86b"]}}
        resp = _call(env, method, path, kw, env.h(ok[owner]))
        # the decision/reopen pair may conflict by state (decided -> reopen is fine; reopen first is 409)
        assert resp.status_code < 500 and resp.status_code != 404, (path, resp.status_code, resp.text)
    me = env.client.get("/api/v1/me", headers=env.h("instr_79")).json()
    assert me["role"] == "instructor" and me["department"] == "79"


def test_assignment_only_to_an_instructor_of_the_department(env: Env, world: dict[str, Any]) -> None:
    cid = world["case"].case_id
    for target in ("instr_79", "farmer_a"):
        resp = env.client.post(
            f"/api/v1/cases/{cid}/assignment",
            json={"user_id": env.user_ids[target]},
            headers=env.h("instr_86"),
        )
        _is_problem(resp, 422)
    ok = env.client.post(
        f"/api/v1/cases/{cid}/assignment",
        json={"user_id": env.user_ids["instr_86b"]},
        headers=env.h("instr_86"),
    )
    assert ok.status_code == 200 and ok.json()["assigned_to"] == env.user_ids["instr_86b"]
    with Session(env.engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "case_assigned"))
            == 1
        )

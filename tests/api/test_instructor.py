"""Instructor workflows: queue filters and pagination, field visits, reopen, If-Match, audit."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from s3tr.review.models import AuditLog, Case, Declaration
from tests.api.support import PACAGE_A, Env, first_case


def test_queue_filters_sort_and_pagination(env: Env) -> None:
    c, h = env.client, env.h("instr_86")
    with Session(env.engine) as s:
        cases = s.scalars(select(Case).where(Case.department == "86")).all()
        n_crop = sum(1 for x in cases if x.control == "crop_group")
        deadlines = sorted({x.deadline for x in cases if x.deadline is not None})
    full = c.get("/api/v1/cases", params={"limit": 500}, headers=h).json()
    assert full["total"] == len(cases) == len(full["items"])
    keys = [(-i["priority"], i["case_id"]) for i in full["items"]]
    assert keys == sorted(keys)  # priority desc, then id
    pages = [
        c.get("/api/v1/cases", params={"limit": 7, "offset": o}, headers=h).json() for o in range(0, 100, 7)
    ]
    assert all(p["total"] == len(cases) for p in pages)
    assert [i["case_id"] for p in pages for i in p["items"]] == [i["case_id"] for i in full["items"]]
    crop = c.get("/api/v1/cases", params={"control": "crop_group", "limit": 500}, headers=h).json()
    assert crop["total"] == n_crop and {i["control"] for i in crop["items"]} == {"crop_group"}
    if deadlines:
        due = c.get(
            "/api/v1/cases", params={"deadline_before": str(deadlines[0]), "limit": 500}, headers=h
        ).json()
        assert due["total"] == sum(1 for x in cases if x.deadline is not None and x.deadline <= deadlines[0])
    assert c.get("/api/v1/cases", params={"state": "decided"}, headers=h).json()["total"] == 0
    assert c.get("/api/v1/cases", params={"state": "nonsense"}, headers=h).status_code == 422
    assert c.get("/api/v1/cases", params={"limit": 0}, headers=h).status_code == 422


def test_queue_filters_by_the_declared_commune(any_env: Env) -> None:
    env = any_env
    c, h = env.client, env.h("instr_86")
    with Session(env.engine) as s:
        cases = s.execute(select(Case.case_id, Case.id_parcel).where(Case.department == "86")).all()
        here = set(sorted({p for _, p in cases})[::2])  # these lie in commune 86194, the others declare none
        s.execute(update(Declaration).where(Declaration.id_parcel.in_(here)).values(commune="86194"))
        s.commit()
    expected = sorted(cid for cid, p in cases if p in here)
    page = c.get("/api/v1/cases", params={"commune": "86194", "limit": 500}, headers=h).json()
    assert page["total"] == len(expected) > 0
    assert sorted(i["case_id"] for i in page["items"]) == expected
    assert {i["commune"] for i in page["items"]} == {"86194"}
    # Combined with another filter, and paged: the total counts the filtered cases, not the page.
    first = c.get("/api/v1/cases", params={"commune": "86194", "limit": 1}, headers=h).json()
    assert first["total"] == len(expected) and len(first["items"]) == 1
    full = c.get("/api/v1/cases", params={"limit": 500}, headers=h).json()["items"]
    assert {i["commune"] for i in full if i["id_parcel"] not in here} == {None}
    assert c.get("/api/v1/cases", params={"commune": "00000"}, headers=h).json()["total"] == 0
    assert c.get("/api/v1/cases", params={"commune": "861940"}, headers=h).status_code == 422
    assert c.get(f"/api/v1/cases/{expected[0]}", headers=h).json()["commune"] == "86194"
    # The console's commune list comes from the same declarations, chips or not.
    communes = c.get("/api/v1/console/communes", headers=h).json()
    assert communes == {p: "86194" for p in here}
    assert c.get("/api/v1/console/communes", headers=env.h("instr_79")).json() == {}


def test_field_visit_decide_reopen_with_if_match(env: Env) -> None:
    c, h = env.client, env.h("instr_86")
    case = first_case(env.engine, PACAGE_A)
    visit = c.post(
        f"/api/v1/cases/{case.case_id}/field-visits",
        json={
            "visited_on": "2025-06-19",
            "observed_crop": "blé tendre",
            "activity_seen": True,
            "comment": "vu sur place",
        },
        headers=h,
    )
    assert visit.status_code == 201, visit.text
    future = c.post(
        f"/api/v1/cases/{case.case_id}/field-visits",
        json={"visited_on": "2025-12-01", "comment": "x"},
        headers=h,
    )
    assert future.status_code == 422
    detail = c.get(f"/api/v1/cases/{case.case_id}", headers=h)
    body = detail.json()
    assert [v["comment"] for v in body["field_visits"]] == ["vu sur place"]
    assert body["field_visits"][0]["recorded_by"] == "instr_86"
    etag = detail.headers["ETag"]

    decided = c.post(
        f"/api/v1/cases/{case.case_id}/decision",
        json={"outcome": "red", "comment": "culture absente"},
        headers={**h, "If-Match": etag},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["outcome"] == "red" and decided.headers["ETag"] != etag
    # the same If-Match again is stale now
    again = c.post(
        f"/api/v1/cases/{case.case_id}/decision",
        json={"outcome": "green", "comment": "x"},
        headers={**h, "If-Match": etag},
    )
    assert again.status_code == 409
    # a decided case cannot be decided again, but can be reopened
    twice = c.post(
        f"/api/v1/cases/{case.case_id}/decision", json={"outcome": "green", "comment": "x"}, headers=h
    )
    assert twice.status_code == 409 and twice.json()["code"] == "invalid-transition"
    reopened = c.post(
        f"/api/v1/cases/{case.case_id}/reopen",
        json={"comment": "nouvel élément"},
        headers={**h, "If-Match": decided.headers["ETag"]},
    )
    assert (
        reopened.status_code == 200
        and reopened.json()["state"] == "open"
        and reopened.json()["outcome"] is None
    )
    with Session(env.engine) as s:
        actions = [
            a
            for a in s.scalars(
                select(AuditLog.action).where(
                    AuditLog.entity == "case", AuditLog.entity_id == str(case.case_id)
                )
            )
        ]
    assert actions[-3:] == ["field_visit", "case_decided", "case_open"]


def test_english_explanations(env: Env) -> None:
    fr = env.client.get("/api/v1/me/parcels", headers=env.h("farmer_a")).json()
    en = env.client.get(
        "/api/v1/me/parcels", headers=env.h("farmer_a", **{"Accept-Language": "en-GB,en;q=0.9"})
    ).json()
    assert len(fr) == len(en) > 0
    pairs = [
        (a["explanation"], b["explanation"])
        for p, q in zip(fr, en, strict=True)
        for a, b in zip(p["flags"], q["flags"], strict=True)
    ]
    assert pairs and all(a and b and a != b for a, b in pairs)
    assert all(p["outline"]["type"] in ("Polygon", "MultiPolygon") for p in fr)
    lon, lat = fr[0]["outline"]["coordinates"][0][0][:2] if fr[0]["outline"]["type"] == "Polygon" else (0, 0)
    assert -5 < lon < 10 and 41 < lat < 52  # WGS84 lon/lat in France, not Lambert-93 metres

"""The console's pages and read endpoints over HTTP: headers, scoping, and bad input."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from s3tr.review.chips import read_chip_index
from s3tr.review.models import Case
from tests.console.conftest import COMMUNES, Site


def _h(site: Site, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {site.tokens[who]}"}


def _a_case_with_chips(site: Site) -> Case:
    with Session(site.engine) as s:
        for case in s.scalars(select(Case).where(Case.department == "86").order_by(Case.case_id)):
            index = read_chip_index(site.workdir, case.id_parcel)
            if index and index["chips"]:
                s.expunge(case)
                return case
    raise AssertionError("no case with chips")


def test_page_and_assets_are_served_with_a_strict_policy(site: Site) -> None:
    r = httpx.get(site.url + "/console", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/console/"
    page = httpx.get(site.url + "/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert 'lang="fr"' in page.text and "assets/app.js" in page.text
    js = httpx.get(site.url + "/console/assets/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "http://" not in js.text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in js.text
    assert httpx.get(site.url + "/console/assets/index.html").status_code == 404
    assert httpx.get(site.url + "/console/assets/..%2Fweb.py").status_code == 404


def test_chips_are_scoped_to_the_department(site: Site) -> None:
    case = _a_case_with_chips(site)
    index = httpx.get(f"{site.url}/api/v1/cases/{case.case_id}/chips", headers=_h(site, "instr_86")).json()
    assert index["id_parcel"] == case.id_parcel and index["chips"]
    name = index["chips"][0]["file"]
    png = httpx.get(f"{site.url}/api/v1/cases/{case.case_id}/chips/{name}", headers=_h(site, "instr_86"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    base = f"{site.url}/api/v1/cases/{case.case_id}/chips"
    for who, status in (("instr_79", 404), ("farmer_a", 403)):
        assert httpx.get(base, headers=_h(site, who)).status_code == status
        assert httpx.get(f"{base}/{name}", headers=_h(site, who)).status_code == status
    assert httpx.get(f"{site.url}/api/v1/cases/{case.case_id}/chips/{name}").status_code == 401
    # only files of the index are served
    for bad in ("index.json", "2025-01-01_31TBM_truecolor.png", "..%2F..%2Fs3tr.db"):
        r = httpx.get(f"{site.url}/api/v1/cases/{case.case_id}/chips/{bad}", headers=_h(site, "instr_86"))
        assert r.status_code == 404, bad
        assert r.headers["content-type"].startswith("application/problem+json")


def test_communes_and_instructors(site: Site) -> None:
    communes = httpx.get(f"{site.url}/api/v1/console/communes", headers=_h(site, "instr_86")).json()
    assert communes and set(communes.values()) == set(COMMUNES)
    assert httpx.get(f"{site.url}/api/v1/console/communes", headers=_h(site, "instr_79")).json() == {}
    people = httpx.get(f"{site.url}/api/v1/console/instructors", headers=_h(site, "instr_86")).json()
    assert [p["username"] for p in people] == ["instr_86", "instr_86b"]
    url = f"{site.url}/api/v1/console/instructors"
    assert httpx.get(url, headers=_h(site, "farmer_a")).status_code == 403

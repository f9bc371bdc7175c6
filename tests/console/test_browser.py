"""End-to-end tests of the console in Debian's Chromium (headless), against a real uvicorn server."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from s3tr.review.chips import read_chip_index
from s3tr.review.models import ACTIVE_STATES, AuditLog, Case, Decision, Declaration, PhotoRequest
from tests.console.conftest import COMMUNES, Site, login

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _cases(site: Site, **where: Any) -> list[Case]:
    with Session(site.engine) as s:
        stmt = select(Case).where(Case.department == "86")
        for k, v in where.items():
            stmt = stmt.where(getattr(Case, k) == v)
        rows = s.scalars(stmt.order_by(Case.priority.desc(), Case.case_id)).all()
        for r in rows:
            s.expunge(r)
        return list(rows)


def _active_count(site: Site, **where: Any) -> int:
    with Session(site.engine) as s:
        stmt = (
            select(func.count())
            .select_from(Case)
            .where(Case.department == "86", Case.state.in_([a.value for a in ACTIVE_STATES]))
        )
        for k, v in where.items():
            stmt = stmt.where(getattr(Case, k) == v)
        return int(s.scalar(stmt) or 0)


def _rows(pg: Any) -> list[str]:
    return pg.locator("#queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.case)")


def test_login_queue_filters_and_keyboard(page: Any, site: Site, shots: Path) -> None:
    pg, watch = page
    login(pg, site)
    total = _active_count(site)
    assert total > 3
    assert len(_rows(pg)) == total
    assert pg.locator("#counts").inner_text().startswith(f"{total} dossiers")
    # sorted by priority, as the database says
    expected = [str(c.case_id) for c in _cases(site) if c.state in {a.value for a in ACTIVE_STATES}]
    assert _rows(pg) == expected
    pg.screenshot(path=str(shots / "queue.png"), full_page=True)
    _save_docs(pg, "console-queue.png", full_page=False)

    # filter by control
    pg.get_by_label("Contrôle").select_option("crop_group")
    n_crop = _active_count(site, control="crop_group")
    assert 0 < n_crop < total
    expect(pg.locator("#queue tbody tr")).to_have_count(n_crop)
    assert pg.locator("#counts").inner_text().startswith(f"{n_crop} dossier")

    # and by commune (from the parcels file, stored with the declarations; the chips say the same)
    pg.get_by_label("Commune").select_option(COMMUNES[0])
    with Session(site.engine) as s:
        here = set(s.scalars(select(Declaration.id_parcel).where(Declaration.commune == COMMUNES[0])).all())
    in_commune = [
        c
        for c in _cases(site, control="crop_group")
        if c.state in {a.value for a in ACTIVE_STATES} and c.id_parcel in here
    ]
    assert 0 < len(in_commune) < n_crop
    expect(pg.locator("#queue tbody tr")).to_have_count(len(in_commune))
    assert pg.locator("#counts").inner_text().startswith(f"{len(in_commune)} dossier")
    ids = _rows(pg)
    for cid in ids:
        case = next(c for c in _cases(site) if str(c.case_id) == cid)
        assert case.control == "crop_group" and case.id_parcel in here
        index = read_chip_index(site.workdir, case.id_parcel)
        assert index is None or index["commune"] == COMMUNES[0]

    # a deadline before any case's empties the queue; clearing the filters brings everything back
    pg.get_by_label("Commune").select_option("")
    pg.get_by_label("Échéance au plus tard le").fill("2000-01-01")
    pg.get_by_role("button", name="Filtrer").click()
    expect(pg.locator("#queue tbody tr")).to_have_count(0)
    assert pg.locator("#counts").inner_text().startswith("0 dossier")
    pg.get_by_role("button", name="Effacer les filtres").click()
    expect(pg.locator("#queue tbody tr")).to_have_count(total)

    # state filter: nothing decided yet in a fresh queue of this test's view
    pg.get_by_label("État").select_option("cancelled")
    expect(pg.locator("#queue tbody tr")).to_have_count(len(_cases(site, state="cancelled")))
    pg.get_by_label("État").select_option("active")
    expect(pg.locator("#queue tbody tr")).to_have_count(total)

    # keyboard: j twice then Enter opens the third case
    pg.locator("#queue tbody tr").first.focus()
    pg.keyboard.press("j")
    pg.keyboard.press("ArrowDown")
    pg.keyboard.press("k")
    pg.keyboard.press("j")
    third = _rows(pg)[2]
    assert pg.locator("#queue tbody tr").nth(2).get_attribute("aria-selected") == "true"
    pg.keyboard.press("Enter")
    pg.wait_for_url(re.compile(rf"#/cas/{third}$"))
    pg.wait_for_selector("#case-view:not([hidden])")
    case = next(c for c in _cases(site) if str(c.case_id) == third)
    expect(pg.locator("#case-title")).to_contain_text(case.id_parcel)
    # j on the case page goes to the next case of the queue, Escape back to the queue
    pg.keyboard.press("j")
    pg.wait_for_url(re.compile(rf"#/cas/{expected[3]}$"))
    pg.keyboard.press("Escape")
    pg.wait_for_selector("#queue-view:not([hidden])")
    watch.assert_clean()


def _api(site: Site, who: str, path: str) -> Any:
    import httpx

    r = httpx.get(site.url + "/api/v1" + path, headers={"Authorization": f"Bearer {site.tokens[who]}"})
    r.raise_for_status()
    return r.json()


def _case_with_chips(site: Site) -> Case:
    """The highest-priority open case with chips, a series of 3+ clear dates and a PACAGE."""
    for case in _cases(site, state="open"):
        index = read_chip_index(site.workdir, case.id_parcel)
        if not case.pacage or not index or not index["chips"]:
            continue
        series = _api(site, "instr_86", f"/cases/{case.case_id}")["series"]
        if sum(1 for p in series if p["valid"]) >= 3:
            return case
    raise AssertionError("no open case with chips and a series")


def _save_docs(pg: Any, name: str, *, full_page: bool = True) -> None:
    import os

    # the documentation's screenshots are refreshed on demand only, never by a plain test run
    if os.environ.get("S3TR_CONSOLE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(DOCS_IMG / name), full_page=full_page)


def test_case_page_chart_chips_photo_request_and_decision(page: Any, site: Site, shots: Path) -> None:
    import httpx

    from s3tr.review.users import create_user, issue_token
    from tests.api.support import jpeg_with_gps

    pg, watch = page
    case = _case_with_chips(site)
    farmer = issue_token(
        site.engine, create_user(site.engine, "farmer_console", role="farmer", pacage=case.pacage)
    )
    index = read_chip_index(site.workdir, case.id_parcel)
    detail = _api(site, "instr_86", f"/cases/{case.case_id}")
    login(pg, site)
    pg.goto(f"{site.url}/console/#/cas/{case.case_id}")
    expect(pg.locator("#case-title")).to_contain_text(case.id_parcel)

    # the chart: one valid dot per valid NDVI value, one hollow dot per other acquisition
    series = detail["series"]
    n_valid = sum(1 for p in series if p["valid"] and p["ndvi"] is not None)
    expect(pg.locator("svg.chart g.points-ndvi circle.obs.valid")).to_have_count(n_valid)
    expect(pg.locator("svg.chart g.points-ndvi circle.obs.invalid")).to_have_count(len(series) - n_valid)
    assert pg.locator("svg.chart polyline.line-ndvi").count() == 1
    pg.get_by_label("NDMI (humidité)").check()
    n_ndmi = sum(1 for p in series if p["valid"] and p["ndmi"] is not None)
    expect(pg.locator("svg.chart g.points-ndmi circle.obs.valid")).to_have_count(n_ndmi)
    pg.get_by_label("NDTI (végétation sèche)").check()
    n_ndti = sum(1 for p in series if p["valid"] and p["ndti"] is not None)
    assert n_ndti > 0
    expect(pg.locator("svg.chart g.points-ndti circle.obs.valid")).to_have_count(n_ndti)
    window = next((c["window"] for c in index["cases"] if c["case_id"] == case.case_id), None)
    assert pg.locator("svg.chart rect.control-window").count() == (1 if window else 0)

    # the chips: a button per chip, the latest true-colour one shown, with the outline over it
    expect(pg.locator("#chip-picker button")).to_have_count(len(index["chips"]))
    latest = [c for c in index["chips"] if c["kind"] == "truecolor"][-1]
    svg_map = pg.locator("svg.map")
    expect(svg_map).to_have_attribute("data-chip", latest["file"])
    expect(svg_map.locator("image")).to_have_attribute("href", re.compile(r"^blob:"))
    assert svg_map.locator("polygon.outline").count() >= 1
    ndvi_chip = next(i for i, c in enumerate(index["chips"]) if c["kind"] == "ndvi")
    pg.locator("#chip-picker button").nth(ndvi_chip).click()
    expect(pg.locator("svg.map")).to_have_attribute("data-chip", index["chips"][ndvi_chip]["file"])

    # request a photo: click the middle of the parcel on the map
    ring = latest["outline_px"]["coordinates"][0]
    cx = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
    cy = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
    box = pg.locator("svg.map").bounding_box()
    scale = box["width"] / latest["size"][0]
    pg.mouse.click(box["x"] + cx * scale, box["y"] + cy * scale)
    a, b, c, d, e, f = latest["px_to_lonlat"]
    want_lon, want_lat = a * cx + b * cy + c, d * cx + e * cy + f
    expect(pg.get_by_label("Longitude du point (WGS84)")).not_to_have_value("")
    lon = float(pg.get_by_label("Longitude du point (WGS84)").input_value())
    lat = float(pg.get_by_label("Latitude du point (WGS84)").input_value())
    px_deg = abs(a) + abs(b)  # one chip pixel, in degrees of longitude
    assert abs(lon - want_lon) < px_deg and abs(lat - want_lat) < px_deg
    assert pg.locator("svg.map g.new-target").count() == 1
    deadline = date.today() + timedelta(days=10)
    pg.get_by_label("Direction de prise de vue (degrés depuis le nord)").fill("90")
    pg.get_by_label("Date limite d'envoi").fill(deadline.isoformat())
    instruction = "Photographiez la parcelle depuis le point, vers l'est."
    pg.get_by_label("Consigne pour l'exploitant").fill(instruction)
    pg.get_by_role("button", name="Envoyer la demande de photo").click()
    expect(pg.locator("#action-status")).to_have_text("Demande de photo : enregistré.")
    with Session(site.engine) as s:
        req = s.scalars(select(PhotoRequest).where(PhotoRequest.case_id == case.case_id)).one()
        assert abs(req.target_lon - lon) < 1e-6 and abs(req.target_lat - lat) < 1e-6
        assert req.heading_deg == 90 and req.deadline == deadline
        assert req.instructions.startswith("Photographiez la parcelle")
        assert s.get(Case, case.case_id).state == "photo_requested"
        assert s.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.entity_id == str(case.case_id), AuditLog.actor == "instr_86")
        )
        request_id = req.id
    expect(pg.locator("#requests li.request")).to_have_count(1)

    # the farmer answers with a geotagged photo from the target, facing east
    from datetime import UTC, datetime

    # EXIF keeps whole seconds: a shot taken "now" could read as before the request
    taken = datetime.now(UTC) + timedelta(seconds=2)
    jpeg = jpeg_with_gps(lon=lon, lat=lat, taken=taken, heading=90.0, seed=4)
    up = httpx.post(
        f"{site.url}/api/v1/me/photo-requests/{request_id}/photos",
        headers={"Authorization": f"Bearer {farmer}", "Idempotency-Key": "console-test-1"},
        files={"file": ("p.jpg", jpeg, "image/jpeg")},
    )
    assert up.status_code == 201, up.text
    photo = up.json()
    assert photo["accepted"], photo["checks"]
    pg.reload()
    expect(pg.locator(f"svg.map g.photo-marker[data-photo='{photo['id']}']")).to_have_count(1)
    assert pg.locator(f"svg.map g.photo-marker[data-photo='{photo['id']}'] path").count() == 1  # bearing
    card = pg.locator(f"article.photo[data-photo='{photo['id']}']")
    expect(card).to_contain_text("Acceptée")
    expect(card.locator("ul.checks li")).to_have_count(len(photo["checks"]))
    expect(card.locator("img")).to_have_attribute("src", re.compile(r"^blob:"))
    pg.screenshot(path=str(shots / "case.png"), full_page=True)
    _save_docs(pg, "console-case.png")

    # decide: the comment is mandatory (nothing is sent without it)
    pg.get_by_label("Rouge — déclaration contredite").check()
    pg.get_by_role("button", name="Enregistrer la décision").click()
    expect(pg.locator("#action-status")).to_have_text("Décision : le commentaire est obligatoire.")
    with Session(site.engine) as s:
        assert s.get(Case, case.case_id).state == "photo_received"
    pg.get_by_label("Commentaire (obligatoire)").fill("La photo montre un labour récent.")
    pg.get_by_role("button", name="Enregistrer la décision").click()
    expect(pg.locator("#action-status")).to_have_text("Décision : enregistré.")
    with Session(site.engine) as s:
        done = s.get(Case, case.case_id)
        assert (done.state, done.outcome, done.outcome_note) == (
            "decided",
            "red",
            "La photo montre un labour récent.",
        )
        decided = s.scalars(
            select(AuditLog).where(
                AuditLog.entity == "case",
                AuditLog.entity_id == str(case.case_id),
                AuditLog.action == "case_decided",
            )
        ).all()
        assert [a.actor for a in decided] == ["instr_86"]
    expect(pg.locator("#history")).to_contain_text("La photo montre un labour récent.")
    assert pg.locator("#decide-form").is_hidden() and pg.locator("#reopen-form").is_visible()
    watch.assert_clean()


def test_assign_and_reopen(page: Any, site: Site) -> None:
    pg, watch = page
    # the lowest-priority open case: the photo test takes the top one
    case = _cases(site, state="open")[-1]
    login(pg, site)
    pg.goto(f"{site.url}/console/#/cas/{case.case_id}")
    expect(pg.locator("#case-title")).to_contain_text(case.id_parcel)
    pg.get_by_label("Attribuer à").select_option(str(site.user_ids["instr_86b"]))
    pg.get_by_role("button", name="Attribuer le dossier").click()
    expect(pg.locator("#action-status")).to_have_text("Attribution : enregistré.")
    with Session(site.engine) as s:
        assert s.get(Case, case.case_id).assigned_to == site.user_ids["instr_86b"]
    pg.get_by_label("Vert — déclaration confirmée").check()
    pg.get_by_label("Commentaire (obligatoire)").fill("Visite faite, prairie fauchée.")
    pg.get_by_role("button", name="Enregistrer la décision").click()
    expect(pg.locator("#action-status")).to_have_text("Décision : enregistré.")
    pg.get_by_label("Motif de la réouverture").fill("Nouvelle information de l'exploitant.")
    pg.get_by_role("button", name="Rouvrir le dossier").click()
    expect(pg.locator("#action-status")).to_have_text("Réouverture : enregistré.")
    with Session(site.engine) as s:
        back = s.get(Case, case.case_id)
        assert back.state == "open" and back.outcome is None
        actions = s.scalars(
            select(AuditLog.action).where(AuditLog.entity == "case", AuditLog.entity_id == str(case.case_id))
        ).all()
        assert {"case_assigned", "case_decided", "case_open"} <= set(actions)
    watch.assert_clean()


def test_other_department_sees_nothing(page: Any, site: Site) -> None:
    pg, watch = page
    pg.goto(site.url + "/console/")
    pg.get_by_label("Jeton d'accès instructeur").fill(site.tokens["instr_79"])
    pg.get_by_role("button", name="Se connecter").click()
    expect(pg.locator("#counts")).to_have_text(re.compile(r"^0 dossier"))
    expect(pg.locator("#queue tbody tr")).to_have_count(0)
    # a farmer's token is refused at login
    pg.get_by_role("button", name="Se déconnecter").click()
    pg.get_by_label("Jeton d'accès instructeur").fill(site.tokens["farmer_a"])
    pg.get_by_role("button", name="Se connecter").click()
    expect(pg.locator("#login-error")).to_contain_text("instructeur")
    watch.assert_clean()


def test_accessibility_axe(browser: Any, site: Site) -> None:
    from tests.console.support import axe_script

    axe = axe_script()
    # axe is injected as an inline script: this context alone lets it past the page's CSP
    context = browser.new_context(bypass_csp=True, viewport={"width": 1300, "height": 900})
    pg = context.new_page()
    try:
        found: dict[str, list[str]] = {}

        def check(name: str) -> None:
            pg.add_script_tag(path=str(axe))
            result = pg.evaluate(
                "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', "
                "'wcag21aa', 'best-practice']})).violations.map(v => [v.id, v.impact, v.nodes.length])"
            )
            bad = [f"{i} ({imp}, {n} nodes)" for i, imp, n in result if imp in ("serious", "critical")]
            found[name] = bad

        pg.goto(site.url + "/console/")
        pg.wait_for_selector("#login-view:not([hidden])")
        check("login")
        pg.get_by_label("Jeton d'accès instructeur").fill(site.tokens["instr_86"])
        pg.get_by_role("button", name="Se connecter").click()
        pg.wait_for_selector("#queue tbody tr")
        check("queue")
        first = pg.locator("#queue tbody tr").first.get_attribute("data-case")
        pg.goto(f"{site.url}/console/#/cas/{first}")
        expect(pg.locator("svg.chart")).to_have_count(1)
        check("case")
        assert found == {"login": [], "queue": [], "case": []}
    finally:
        context.close()


def test_case_without_chips_shows_the_outline_alone(page: Any, site: Site) -> None:
    import shutil as _shutil

    from shapely.geometry import Point, shape

    pg, watch = page
    case = _cases(site, state="open")[-2]  # not used by the other tests
    _shutil.rmtree(site.workdir / "chips" / case.id_parcel)
    outline = shape(_api(site, "instr_86", f"/cases/{case.case_id}")["outline"])
    login(pg, site)
    pg.goto(f"{site.url}/console/#/cas/{case.case_id}")
    expect(pg.locator("#chip-picker")).to_contain_text("Aucune image")
    svg_map = pg.locator("svg.map")
    expect(svg_map.locator("polygon.outline")).to_have_count(1)
    assert svg_map.locator("image").get_attribute("href") is None
    # a click in the middle of the drawing lands inside the parcel
    box = svg_map.bounding_box()
    pg.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(pg.get_by_label("Latitude du point (WGS84)")).not_to_have_value("")
    lon = float(pg.get_by_label("Longitude du point (WGS84)").input_value())
    lat = float(pg.get_by_label("Latitude du point (WGS84)").input_value())
    assert outline.buffer(0.0005).contains(Point(lon, lat))
    watch.assert_clean()


def test_detected_events_are_marked_on_the_chart_and_chips(page: Any, site: Site) -> None:
    pg, watch = page
    found = None
    with Session(site.engine) as s:
        for case in _cases(site):
            if case.state not in {a.value for a in ACTIVE_STATES} or case.decision_id is None:
                continue
            evidence = s.get(Decision, case.decision_id).evidence or {}
            dates = sorted({d for k, v in evidence.items() if k.endswith("_dates") and v for d in v})
            if dates:
                found = (case, dates)
                break
    assert found is not None, "the demo season should hold a case with a detected event"
    case, dates = found
    login(pg, site)
    pg.goto(f"{site.url}/console/#/cas/{case.case_id}")
    expect(pg.locator("svg.chart g.event")).to_have_count(len(dates))
    index = read_chip_index(site.workdir, case.id_parcel)
    roles = {r for c in index["chips"] for r in c["role"].split(",")}
    # every event with a clear date after it has its "after" chip (and a "before" one when one exists)
    assert any(r.startswith("after:") for r in roles), roles
    titles = pg.locator("#chip-picker button").evaluate_all("bs => bs.map(b => b.title)")
    assert any("après l'événement du" in t for t in titles), titles
    watch.assert_clean()

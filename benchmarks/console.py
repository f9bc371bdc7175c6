"""Benchmark of the instructor console: time to render a case page on loopback, in Chromium.

Run: ``python benchmarks/console.py [--runs 10] [--workdir DIR] [--chromium /usr/bin/chromium]``.

1. Generates a demo season long enough to hold 80 acquisitions or more (a few parcels), runs the
   nightly pipeline and cuts the chips (or reuses ``--workdir``).
2. Serves the app with uvicorn on 127.0.0.1; an instructor asks a farmer for photos on the case
   with the most acquisitions, and the farmer sends 6 geotagged photos (3 requests x 2 shots).
3. Debian's Chromium (headless, via Playwright) loads ``/console/#/cas/<id>`` ``--runs`` times
   (a full page load each time: script, case, chips, chip image, the 6 photos) and measures
   until the chart is drawn, the chip is shown and every photo is displayed.
4. Prints the median and worst times, and the ratio to a bare ``GET /api/v1/cases/<id>`` (the
   peer: the same case's data without any rendering). Goal: under 1 s. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(work: Path) -> None:
    """Season (>= 80 acquisitions), pipeline and chips in ``work``."""
    from s3tr.demo import generate_season
    from s3tr.demo.runner import demo_run_config
    from s3tr.nightly.pipeline import run_pipeline
    from s3tr.review.chips import chips_for_run

    season = work / "demo"
    # a 9.5-month season: about 85 acquisitions per parcel (the demo's 8 months give 75)
    start, end = date(2025, 2, 1), date(2025, 11, 15)
    generate_season(season, seed=5, n_parcels=12, area_size_m=1500.0, start=start, end=end)
    config = demo_run_config(season, workers=1, start=start, end=end)
    run_pipeline(config, workdir=work / "run")
    chips_for_run(config, work / "run")


def busiest_case(engine: Any, work: Path) -> tuple[int, str, str]:
    """(case_id, id_parcel, pacage) of the active case whose parcel has the most acquisitions.

    Ties go to the lowest case id, so a rerun on the same folder finds the case (and its photos)
    of the previous run.
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from s3tr.review.models import ACTIVE_STATES, Case
    from s3tr.review.rescore import parcel_series

    best: tuple[int, int, str, str] | None = None
    with Session(engine) as s:
        active = [a.value for a in ACTIVE_STATES]
        cases = select(Case).where(Case.state.in_(active), Case.pacage.is_not(None)).order_by(Case.case_id)
        for case in s.scalars(cases):
            n = len(parcel_series(work, case.id_parcel))
            if best is None or n > best[0]:
                best = (n, case.case_id, case.id_parcel, case.pacage)
    assert best is not None, "no active case"
    return best[1], best[2], best[3]


def add_photos(base: str, instructor: str, farmer: str, case_id: int) -> int:
    """3 photo requests with 2 shots each, through the API; returns the number of photos stored."""
    from tests.api.support import jpeg_with_gps

    hi = {"Authorization": f"Bearer {instructor}"}
    hf = {"Authorization": f"Bearer {farmer}"}
    stored = 0
    for r in range(3):
        detail = httpx.get(f"{base}/api/v1/cases/{case_id}", headers=hi).json()
        body = {
            "deadline": (date.today() + timedelta(days=10)).isoformat(),
            "instructions": f"Vue {r + 1} de la parcelle",
            "heading_deg": 60.0 * r,
            "expected_version": detail["version"],
        }
        req = httpx.post(f"{base}/api/v1/cases/{case_id}/photo-requests", headers=hi, json=body)
        req.raise_for_status()
        target = req.json()["target"]["coordinates"]
        for shot in range(2):
            lon, lat = target[0] + 0.00005 * shot, target[1] + 0.00004 * r
            jpeg = jpeg_with_gps(
                lon=lon,
                lat=lat,
                taken=datetime.now(UTC) + timedelta(seconds=2),
                heading=60.0 * r + 10 * shot,
                seed=10 * r + shot,
                size=(1600, 1200),
            )
            up = httpx.post(
                f"{base}/api/v1/me/photo-requests/{req.json()['id']}/photos",
                headers={**hf, "Idempotency-Key": f"bench-console-{r}-{shot}"},
                files={"file": (f"p{r}{shot}.jpg", jpeg, "image/jpeg")},
            )
            stored += up.status_code in (200, 201)
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="reuse a prepared folder")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from s3tr.api import create_app
    from s3tr.review.database import db_url_for, make_engine
    from s3tr.review.users import create_user, issue_token
    from tests.console.support import serve

    tmp = None
    if args.workdir is None:
        tmp = Path(tempfile.mkdtemp(prefix="s3tr-bench-console-"))
        work = tmp
    else:
        work = args.workdir
    try:
        if not (work / "run" / "s3tr.db").exists():
            t = time.perf_counter()
            prepare(work)
            print(f"prepared the season, pipeline and chips in {time.perf_counter() - t:.1f} s")
        run = work / "run"
        url = db_url_for(run)
        engine = make_engine(url)
        case_id, id_parcel, pacage = busiest_case(engine, run)
        suffix = str(int(time.time()))
        instructor = issue_token(
            engine, create_user(engine, f"bench_i_{suffix}", role="instructor", department="86")
        )
        farmer = issue_token(engine, create_user(engine, f"bench_f_{suffix}", role="farmer", pacage=pacage))
        app = create_app(db_url=url, workdir=run)
        with serve(app) as base:
            detail = httpx.get(
                f"{base}/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {instructor}"}
            )
            if len(detail.json()["photos"]) < 6:
                add_photos(base, instructor, farmer, case_id)
            detail = httpx.get(
                f"{base}/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {instructor}"}
            )
            n_acq, n_photos = len(detail.json()["series"]), len(detail.json()["photos"])
            api_times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                httpx.get(f"{base}/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {instructor}"})
                api_times.append(time.perf_counter() - t)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(args.chromium), headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(base + "/console/")
                page.get_by_label("Jeton d'accès instructeur").fill(instructor)
                page.get_by_role("button", name="Se connecter").click()
                page.wait_for_selector("#queue tbody tr")
                times = []
                for i in range(args.runs + 1):
                    page.goto("about:blank")
                    t = time.perf_counter()
                    page.goto(f"{base}/console/#/cas/{case_id}")
                    page.wait_for_selector("svg.chart circle.obs", state="attached")
                    page.wait_for_selector("svg.map image[href^='blob:']", state="attached")
                    _wait_photos(page, n_photos)
                    elapsed = time.perf_counter() - t
                    if i:  # the first load warms the server's caches
                        times.append(elapsed)
                browser.close()
        engine.dispose()
        med, worst, api_med = statistics.median(times), max(times), statistics.median(api_times)
        print(f"case {case_id} (parcel {id_parcel}): {n_acq} acquisitions, {n_photos} photos")
        print(f"load average: {os.getloadavg()[0]:.2f}")
        print(f"{'measure':<44}{'median ms':>11}{'worst ms':>10}")
        print(f"{'console case page, full load to rendered':<44}{med * 1000:>11.0f}{worst * 1000:>10.0f}")
        print(
            f"{'peer: GET /api/v1/cases/<id> alone':<44}{api_med * 1000:>11.0f}{max(api_times) * 1000:>10.0f}"
        )
        print(
            f"ratio console / API call: {med / api_med:.1f}x; "
            f"goal < 1000 ms: {'met' if med < 1 else 'NOT met'}"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _wait_photos(page: Any, n: int, timeout_s: float = 30.0) -> None:
    """Wait until ``n`` photos are displayed (polled from Python: the page's CSP forbids eval)."""
    end = time.perf_counter() + timeout_s
    loc = page.locator("article.photo img[src^='blob:']")
    while loc.count() < n:
        if time.perf_counter() > end:
            raise TimeoutError(f"only {loc.count()} of {n} photos shown")
        time.sleep(0.005)


if __name__ == "__main__":
    main()

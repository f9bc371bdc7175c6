"""Fixtures of the console tests: a small demo season with chips, a uvicorn server, Chromium.

The season is generated and run once per session (about 20 s) with a commune code added to the
parcels file (the demo has none), then the chips are cut as the nightly run does. The server runs
on a copy of that workdir, with the real clock; every test uses its own cases.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from s3tr.api import create_app
from s3tr.review.database import db_url_for, make_engine
from tests.api.support import make_users
from tests.console.support import PageWatch, chromium_or_skip, serve

#: Commune codes given to the demo parcels (alternately), department 86.
COMMUNES = ("86194", "86066")


def _season(root: Path, *, n_parcels: int, start: date, end: date) -> Path:
    import geopandas as gpd

    from s3tr.demo import generate_season

    generate_season(root, seed=3, n_parcels=n_parcels, area_size_m=2000.0, start=start, end=end)
    parcels = gpd.read_file(root / "parcels.gpkg")
    parcels["insee_com"] = [COMMUNES[i % 2] for i in range(len(parcels))]
    parcels.to_file(root / "parcels.gpkg", driver="GPKG")
    return root


def run_with_chips(season: Path, work: Path) -> Any:
    """Run the pipeline on the season, then cut the chips (what the nightly run does)."""
    from s3tr.demo.runner import demo_run_config
    from s3tr.nightly.pipeline import run_pipeline
    from s3tr.review.chips import chips_for_run

    config = demo_run_config(season, workers=1)
    result = run_pipeline(config, workdir=work)
    assert result.sync is not None and result.sync.cases_opened > 0
    return chips_for_run(config, work)


@pytest.fixture(scope="session")
def console_season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("console-season") / "demo"
    return _season(root, n_parcels=40, start=date(2025, 4, 1), end=date(2025, 6, 30))


@pytest.fixture(scope="session")
def console_workdir(console_season: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("console-base") / "work"
    chips = run_with_chips(console_season, work)
    assert chips.written > 0, chips.problems
    return work


@dataclass
class Site:
    """The running console: its URL, database and users."""

    url: str
    engine: Engine
    workdir: Path
    tokens: dict[str, str]
    user_ids: dict[str, int]


@pytest.fixture(scope="session")
def site(console_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("console-site") / "work"
    shutil.copytree(console_workdir, work)
    url = db_url_for(work)
    engine = make_engine(url)
    tokens, ids = make_users(engine)
    app = create_app(db_url=url, workdir=work)
    with serve(app) as base:
        yield Site(base, engine, work, tokens, ids)
    engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(path), headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (kept by pytest in its base temp folder)."""
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[tuple[Any, PageWatch]]:
    """A fresh browser page (own context: empty sessionStorage), watched for errors and leaks."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    pg = context.new_page()
    watch = PageWatch(site.url)
    watch.attach(context, pg)
    pg.set_default_timeout(10_000)
    yield pg, watch
    context.close()


def login(pg: Any, site: Site, who: str = "instr_86") -> None:
    """Open the console and log in with ``who``'s token; waits for the queue."""
    pg.goto(site.url + "/console/")
    pg.get_by_label("Jeton d'accès instructeur").fill(site.tokens[who])
    pg.get_by_role("button", name="Se connecter").click()
    pg.wait_for_selector("#queue tbody tr")

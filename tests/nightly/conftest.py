"""A small demo season and helpers to run the nightly CLI (possibly killed) and compare outputs."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pytest
import xarray as xr
from sqlalchemy import text

from s3tr.demo import generate_season
from s3tr.extract.store import SeriesStore
from s3tr.nightly.faults import run_cli_in_child
from s3tr.review.database import db_url_for, make_engine
from tests.notify.conftest import webhook  # noqa: F401  (a real HTTP receiver, for the post-step tests)

# 40 parcels on 1.5 km and two months: 21 acquisitions, a run takes a few seconds.
SMALL = {"n_parcels": 40, "area_size_m": 1500.0, "start": date(2025, 4, 1), "end": date(2025, 5, 31)}


@pytest.fixture(scope="session")
def small_season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = (tmp_path_factory.mktemp("nightly-season") / "demo").resolve()
    generate_season(root, seed=5, **SMALL)
    return root


def write_config(season: Path, dest: Path, **overrides: Any) -> Path:
    """A nightly YAML config for ``season`` (workers 1 unless overridden)."""
    cfg = {
        "parcels": str(season / "parcels.gpkg"),
        "catalog": str(season / "stac" / "catalog.json"),
        "campaign": 2025,
        "start": "2025-03-01",
        "end": "2025-10-31",
        "workers": 1,
    } | overrides
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in cfg.items()) + "\n")
    return dest


def copy_season(season: Path, dest: Path) -> Path:
    """A copy of the season (its catalog's hrefs are relative, so the copy reads its own COGs)."""
    shutil.copytree(season, dest)
    return dest.resolve()


def nightly(config: Path, work: Path, *extra: str, fault: str | None = None, once: Path | None = None) -> int:
    """Run ``s3tr nightly`` in a child process, optionally with a fault; return the exit code."""
    env = {"S3TR_FAULT": fault or ""}
    if once is not None:
        env["S3TR_FAULT_ONCE"] = str(once)
    return run_cli_in_child(["nightly", "--config", str(config), "--workdir", str(work), *extra], env)


def run_json(work: Path) -> dict[str, Any]:
    return json.loads((work / "run.json").read_text())


def snapshot(work: Path) -> dict[str, Any]:
    """Everything a run produces that must not depend on crashes: stores, decisions, cases, flags."""
    stores = {p.name: SeriesStore(p).load() for p in sorted((work / "series").glob("*.zarr"))}
    engine = make_engine(db_url_for(work))
    try:
        with engine.connect() as conn:
            decisions = pd.read_sql(
                text(
                    "SELECT campaign, id_parcel, control, revision, is_current, flag, reasons, evidence, "
                    "fingerprint FROM decisions ORDER BY id_parcel, control, revision"
                ),
                conn,
            )
            cases = pd.read_sql(
                text(
                    "SELECT c.campaign, c.id_parcel, c.control, c.state, c.flag, c.reasons, c.priority, "
                    "c.deadline, c.version, d.fingerprint AS decision FROM cases c "
                    "LEFT JOIN decisions d ON d.id = c.decision_id ORDER BY c.id_parcel, c.control, c.case_id"
                ),
                conn,
            )
    finally:
        engine.dispose()
    flags = gpd.read_file(work / "flags.gpkg", layer="flags").sort_values(["id_parcel", "control"])
    return {"stores": stores, "decisions": decisions, "cases": cases, "flags": flags.reset_index(drop=True)}


def assert_same_outputs(got: dict[str, Any], want: dict[str, Any], *, history: bool = True) -> None:
    """Stores identical (values, coords, dtypes); decisions (and their history), cases, flags equal."""
    assert got["stores"].keys() == want["stores"].keys()
    for name, ds in want["stores"].items():
        xr.testing.assert_identical(got["stores"][name], ds)
    if history:
        pd.testing.assert_frame_equal(got["decisions"], want["decisions"])
        pd.testing.assert_frame_equal(got["cases"], want["cases"])
    else:
        cur = ["id_parcel", "control", "flag", "fingerprint"]
        g = got["decisions"][got["decisions"]["is_current"].astype(bool)][cur].reset_index(drop=True)
        w = want["decisions"][want["decisions"]["is_current"].astype(bool)][cur].reset_index(drop=True)
        pd.testing.assert_frame_equal(g, w)
    pd.testing.assert_frame_equal(got["flags"], want["flags"])


@pytest.fixture(scope="session")
def reference(small_season: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Outputs of one uninterrupted run on the small season."""
    base = tmp_path_factory.mktemp("nightly-reference")
    config = write_config(small_season, base / "nightly.yaml")
    assert nightly(config, base / "work") == 0
    return snapshot(base / "work")

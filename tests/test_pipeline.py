"""End to end: a tiny demo season through the whole nightly chain, reruns and bad input."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from typer.testing import CliRunner

from s3tr.cli import app
from s3tr.demo import generate_season
from s3tr.demo.runner import demo_run_config
from s3tr.errors import WorkdirError
from s3tr.nightly.config import RunConfig
from s3tr.nightly.pipeline import prepare_workdir, run_pipeline
from s3tr.nightly.report import write_report
from s3tr.review.cases import list_cases
from s3tr.review.database import db_url_for, make_engine

# A small area and a spring window keep this module to a few seconds.
TINY = {"n_parcels": 80, "area_size_m": 2000.0, "start": date(2025, 4, 1), "end": date(2025, 6, 30)}


@pytest.fixture(scope="module")
def tiny_season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("season") / "demo"
    generate_season(root, seed=3, **TINY)
    return root


def _config(root: Path, **overrides: object) -> RunConfig:
    return demo_run_config(root, **({"workers": 1} | overrides))


def _copy_season(root: Path, dest: Path) -> Path:
    shutil.copytree(root, dest)
    return dest


def test_whole_chain_produces_flags_cases_and_report(tiny_season: Path, tmp_path: Path) -> None:
    result = run_pipeline(_config(tiny_season), workdir=tmp_path / "work")
    parcels = gpd.read_file(tiny_season / "parcels.gpkg")
    assert len(result.parcels) == len(parcels)
    assert result.acquisitions > 0 and result.acquisitions_new == result.acquisitions
    assert not result.failures

    flags = gpd.read_file(result.outputs["flags"], layer="flags")
    assert list(flags.columns[:5]) == ["id_parcel", "campaign", "control", "flag", "reasons"]
    assert set(flags["flag"]) <= {"green", "orange", "red"}
    assert not flags.duplicated(["id_parcel", "control"]).any()
    # Every parcel is decided; arable crops get the crop-group control, grassland the activity one.
    assert set(flags["id_parcel"]) == set(parcels["id_parcel"])
    arable = parcels.loc[parcels["code_group"].isin([1, 2, 3, 5, 6]), "id_parcel"]
    assert set(arable) <= set(flags.loc[flags["control"] == "crop_group", "id_parcel"])
    grass = parcels.loc[parcels["code_group"].isin([18, 19]), "id_parcel"]
    assert set(grass) <= set(flags.loc[flags["control"] == "min_activity", "id_parcel"])
    # Orange decisions become cases, one per (parcel, control).
    engine = make_engine(db_url_for(tmp_path / "work"))
    cases = list_cases(engine)
    engine.dispose()
    n_orange = int((flags["flag"] == "orange").sum())
    assert len(cases) == n_orange
    # The time series covers the observed parcels on every acquisition date.
    assert result.series["date"].nunique() == result.acquisitions

    report = write_report(result, tmp_path / "work" / "report.html")
    html = report.read_text()
    assert "Flags per control" in html and "data:image/png;base64" in html
    # The report lists the plan and every work item with its outcome, and stage timings.
    assert "Plan and work items" in html
    summary = json.loads((tmp_path / "work" / "run.json").read_text())
    assert summary["run_id"] == result.run_id and summary["status"] == "ok"
    assert summary["items"]["planned"] == summary["items"]["done"] == result.acquisitions
    assert {"read", "mask_indices", "reduce", "write"} <= set(summary["items"]["mean_stage_s"])
    assert {"plan", "extract", "markers", "decide", "review"} <= set(summary["timings_s"])


def test_rerun_reuses_everything_and_opens_no_case(tiny_season: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = run_pipeline(_config(tiny_season), workdir=work)
    second = run_pipeline(_config(tiny_season), workdir=work)
    assert second.acquisitions_new == 0
    assert second.sync.cases_opened == 0
    assert second.sync.decisions_changed == 0 and second.sync.decisions_new == 0
    pd.testing.assert_frame_equal(
        first.decisions[["id_parcel", "control", "flag"]].reset_index(drop=True),
        second.decisions[["id_parcel", "control", "flag"]].reset_index(drop=True),
    )


def test_unwritable_workdir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(WorkdirError, match="a-file"):
        prepare_workdir(blocker / "work")
    runner = CliRunner()
    res = runner.invoke(app, ["demo", "--workdir", str(blocker / "work")])
    assert res.exit_code == 1
    assert "a-file" in res.output and "Traceback" not in res.output


def test_bad_parcels_are_rejected_and_the_rest_goes_on(tiny_season: Path, tmp_path: Path) -> None:
    from shapely.geometry import Polygon

    season = _copy_season(tiny_season, tmp_path / "season")
    parcels = gpd.read_file(season / "parcels.gpkg")
    dup = parcels.iloc[[0]].copy()  # same id as the first parcel
    bad = parcels.iloc[[1]].copy()
    bad["id_parcel"] = "BROKEN-1"
    # A polygon collapsed to a line cannot be repaired into an area.
    x, y = parcels.geometry.iloc[1].centroid.coords[0]
    bad["geometry"] = [Polygon([(x, y), (x + 10, y), (x + 20, y), (x, y)])]
    pd.concat([parcels, dup, bad]).to_file(season / "parcels.gpkg", layer="parcels", driver="GPKG")

    result = run_pipeline(_config(season), workdir=tmp_path / "work")
    assert len(result.parcels) == len(parcels)
    reasons = " ".join(f.item + " " + f.reason for f in result.failures if f.stage == "parcels")
    assert parcels["id_parcel"].iloc[0] in reasons and "BROKEN-1" in reasons
    assert (tmp_path / "work" / "rejects.csv").exists()
    assert result.decisions["id_parcel"].nunique() == len(parcels)


def test_truncated_and_missing_cogs_fail_their_acquisition_only(tiny_season: Path, tmp_path: Path) -> None:
    season = _copy_season(tiny_season, tmp_path / "season")
    cogs = sorted(season.glob("stac/**/*.tif"))
    by_item: dict[Path, list[Path]] = {}
    for cog in cogs:
        by_item.setdefault(cog.parent, []).append(cog)
    items = sorted(by_item)
    truncated = by_item[items[1]][0]
    truncated.write_bytes(truncated.read_bytes()[:2000])
    missing = by_item[items[2]][0]
    missing.unlink()

    result = run_pipeline(_config(season), workdir=tmp_path / "work")
    failed = [f for f in result.failures if f.stage == "imagery"]
    assert len(failed) == 2
    text = " ".join(f.reason for f in failed)
    assert truncated.name in text and missing.name in text
    assert result.series["date"].nunique() == result.acquisitions - 2
    assert not result.decisions.empty

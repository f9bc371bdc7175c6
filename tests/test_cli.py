"""The command line on a tiny demo run: every command parses, calls the library and reports."""

from __future__ import annotations

import json
from datetime import date
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from s3tr.cli import app
from s3tr.demo import generate_season

runner = CliRunner()
CASE_COLUMNS = ["case_id", "id_parcel", "campaign", "control", "state", "flag", "reasons", "priority"]
CASE_COLUMNS += ["deadline", "updated_at"]


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "demo"
    generate_season(
        root, seed=11, n_parcels=60, area_size_m=2000.0, start=date(2025, 4, 1), end=date(2025, 6, 30)
    )
    return root


@pytest.fixture(scope="module")
def config_file(season: Path) -> Path:
    path = season.parent / "nightly.yaml"
    config = {
        "parcels": "demo/parcels.gpkg",
        "catalog": "demo/stac/catalog.json",
        "campaign": 2025,
        "start": "2025-04-01",
        "end": "2025-06-30",
        "workers": 1,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def workdir(config_file: Path, season: Path) -> Path:
    work = season.parent / "work"
    res = runner.invoke(app, ["nightly", "--config", str(config_file), "--workdir", str(work)])
    assert res.exit_code == 0, res.output
    return work


def test_nightly_prints_flags_and_writes_the_report(workdir: Path) -> None:
    assert (workdir / "report.html").exists() and (workdir / "flags.gpkg").exists()
    summary = json.loads((workdir / "run.json").read_text())
    assert summary["parcels"] == 60 and summary["acquisitions"] > 0 and not summary["failures"]


def test_nightly_rerun_changes_nothing(config_file: Path, workdir: Path) -> None:
    res = runner.invoke(app, ["nightly", "--config", str(config_file), "--workdir", str(workdir)])
    assert res.exit_code == 0, res.output
    summary = json.loads((workdir / "run.json").read_text())
    assert summary["acquisitions_new"] == 0
    assert summary["cases"]["cases_opened"] == 0 and summary["cases"]["decisions_changed"] == 0


def test_nightly_with_a_broken_item_is_a_partial_run(tmp_path: Path, season: Path) -> None:
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(season, copy)
    victim = sorted(copy.glob("stac/**/*.tif"))[0]
    victim.write_bytes(b"II*\x00garbage")
    config = tmp_path / "nightly.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "parcels": "demo/parcels.gpkg",
                "catalog": "demo/stac/catalog.json",
                "campaign": 2025,
                "start": "2025-04-01",
                "end": "2025-06-30",
                "workers": 1,
            }
        )
    )
    res = runner.invoke(app, ["nightly", "--config", str(config), "--workdir", str(tmp_path / "work")])
    assert res.exit_code == 3, res.output
    assert "partial run" in res.output


def test_cases_list_formats(workdir: Path) -> None:
    res = runner.invoke(app, ["cases", "list", "--workdir", str(workdir), "--format", "csv"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(StringIO(res.stdout))
    assert list(table.columns[: len(CASE_COLUMNS)]) == CASE_COLUMNS
    assert table["case_id"].is_monotonic_increasing and (table["flag"] == "orange").all()
    res = runner.invoke(
        app, ["cases", "list", "--workdir", str(workdir), "--format", "json", "--state", "open"]
    )
    rows = json.loads(res.stdout)
    assert len(rows) == (table["state"] == "open").sum()
    res = runner.invoke(app, ["cases", "list", "--workdir", str(workdir), "--state", "nonsense"])
    assert res.exit_code == 1 and "nonsense" in res.output


def test_qa_sample_is_reproducible_and_capped(workdir: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("a.csv", "b.csv"):
        res = runner.invoke(
            app, ["qa", "sample", "--workdir", str(workdir), "--out", str(tmp_path / name), "--seed", "4"]
        )
        assert res.exit_code == 0, res.output
        outs.append(pd.read_csv(tmp_path / name, dtype={"pacage": str}))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    per_holding = outs[0].groupby(["control", "pacage"]).size()
    assert per_holding.max() <= 3


def test_db_upgrade_on_an_empty_database(tmp_path: Path) -> None:
    res = runner.invoke(app, ["db", "upgrade", "--workdir", str(tmp_path / "new")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "s3tr.db").exists()
    res = runner.invoke(app, ["cases", "list", "--workdir", str(tmp_path / "new"), "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.startswith("case_id,")


def test_extract_command_on_a_demo_cog(season: Path, tmp_path: Path) -> None:
    cog = sorted(season.glob("stac/**/*B8A*.tif"))[0]
    out = tmp_path / "stats.csv"
    res = runner.invoke(
        app,
        [
            "extract",
            "--parcels",
            str(season / "parcels.gpkg"),
            "--raster",
            str(cog),
            "--out",
            str(out),
            "--scale",
            "0.0001",
            "--offset",
            "-0.1",
        ],
    )
    assert res.exit_code == 0, res.output
    stats = pd.read_csv(out)
    assert list(stats.columns) == ["parcel_id", "band", "mean", "std", "count", "valid_fraction"]
    assert stats["mean"].dropna().between(-0.1, 1.0).all()
    res = runner.invoke(
        app, ["extract", "--parcels", str(tmp_path / "none.gpkg"), "--raster", str(cog), "--out", str(out)]
    )
    assert res.exit_code == 1 and "none.gpkg" in res.output

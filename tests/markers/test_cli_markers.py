"""The marker and evaluation commands the issue names, run through the command line as operators run them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from s3tr.cli import app
from s3tr.markers.table import MarkerInputError, parse_season
from tests.markers.conftest import grass_series
from tests.markers.test_crop_evidence import _crops

runner = CliRunner()


def _run(*args: str | Path) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture
def meadows(tmp_path: Path) -> tuple[Path, Path]:
    """Two meadows over two years (one series each, keyed by field) and their true cuts."""
    years = [
        grass_series("north", year=2022, mowings=("2022-06-10", "2022-08-20")),
        grass_series("north", year=2023, mowings=("2023-06-15",), seed=1),
        grass_series("south", year=2022, seed=2),
        grass_series("south", year=2023, mowings=("2023-07-01",), seed=3),
    ]
    ts = tmp_path / "ts.csv"
    pd.concat(years).to_csv(ts, index=False)
    truth = tmp_path / "truth.csv"
    pd.DataFrame(
        {
            "parcel_id": ["north", "north", "north", "south"],
            "date": ["2022-06-10", "2022-08-20", "2023-06-15", "2023-07-01"],
        }
    ).to_csv(truth, index=False)
    return ts, truth


def test_mowing_then_evaluate(meadows: tuple[Path, Path], tmp_path: Path) -> None:
    ts, truth = meadows
    output = _run("markers", "mowing", "--timeseries", ts, "--out", tmp_path / "events.csv")
    assert "4 mowing events on 2 of 2 parcels (2 ok)" in " ".join(output.split())
    events = pd.read_csv(tmp_path / "events.csv")
    assert list(events.columns) == ["parcel_id", "start", "end", "confidence"]
    _run(
        "evaluate",
        "mowing",
        "--events",
        tmp_path / "events.csv",
        "--truth",
        truth,
        "--timeseries",
        ts,
        "--json",
        tmp_path / "scores.json",
    )
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["tp"] == 4 and scores["fp"] == 0 and scores["f1"] == 1.0
    # One year only: the 2023 cuts are out of season, so missed.
    _run(
        "markers",
        "mowing",
        "--timeseries",
        ts,
        "--out",
        tmp_path / "e22.csv",
        "--season",
        "2022-04-01,2022-10-31",
    )
    assert pd.read_csv(tmp_path / "e22.csv")["start"].str[:4].eq("2022").sum() == 2
    assert len(pd.read_csv(tmp_path / "e22.csv")) == 2


def test_mowing_names_the_bad_season_and_the_bad_file(meadows: tuple[Path, Path], tmp_path: Path) -> None:
    ts, _ = meadows
    res = runner.invoke(
        app, ["markers", "mowing", "--timeseries", str(ts), "--out", "x.csv", "--season", "04-31,10-31"]
    )
    assert res.exit_code == 1 and "'04-31' is neither MM-DD nor YYYY-MM-DD" in " ".join(res.output.split())
    broken = tmp_path / "broken.csv"
    broken.write_text("plot,day\n1,2023-06-01\n")
    res = runner.invoke(
        app, ["markers", "mowing", "--timeseries", str(broken), "--out", str(tmp_path / "e.csv")]
    )
    assert res.exit_code == 1 and "broken.csv" in res.output and "parcel_id" in res.output
    assert not (tmp_path / "e.csv").exists()


def test_crop_train_predict_evaluate(tmp_path: Path) -> None:
    table, labels = _crops(n_per=12)
    table.to_csv(tmp_path / "ts.csv", index=False)
    # A label naming a parcel without a series is skipped, not fatal.
    pd.concat([labels, pd.DataFrame({"parcel_id": ["ghost"], "label": ["maize"]})]).to_csv(
        tmp_path / "labels.csv", index=False
    )
    model = tmp_path / "model.joblib"
    _run(
        "markers",
        "crop",
        "train",
        "--timeseries",
        tmp_path / "ts.csv",
        "--labels",
        tmp_path / "labels.csv",
        "--model",
        model,
        "--classifier",
        "trees",
    )
    assert model.exists()
    _run(
        "markers",
        "crop",
        "predict",
        "--timeseries",
        tmp_path / "ts.csv",
        "--model",
        model,
        "--out",
        tmp_path / "pred.csv",
    )
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred.columns[:5]) == ["parcel_id", "predicted", "probability", "second", "second_probability"]
    labels.to_csv(tmp_path / "truth.csv", index=False)
    pred_path, truth_path = tmp_path / "pred.csv", tmp_path / "truth.csv"
    output = _run(
        "evaluate", "crop", "--predictions", pred_path, "--labels", truth_path, "--json", tmp_path / "c.json"
    )
    scores = json.loads((tmp_path / "c.json").read_text())
    assert scores["accuracy"] >= 0.9 and "accuracy" in output  # in-sample on three well-separated shapes
    for key in ("macro_f1", "ece_15_bins", "coverage_at_threshold", "precision_at_threshold"):
        assert key in scores


@pytest.mark.parametrize(
    ("text", "season"),
    [
        ("04-01,10-31", ("04-01", "10-31")),
        (" 2025-05-01 , 2025-06-09", ("2025-05-01", "2025-06-09")),
        ("02-29,03-31", ("02-29", "03-31")),
    ],
)
def test_parse_season(text: str, season: tuple[str, str]) -> None:
    assert parse_season(text) == season


@pytest.mark.parametrize(
    "text", ["04-01", "04-01,10-31,12-01", "4-1,10-31", "13-01,10-31", "2025-10-31,2025-04-01"]
)
def test_parse_season_refuses(text: str) -> None:
    with pytest.raises(MarkerInputError, match="season"):
        parse_season(text)

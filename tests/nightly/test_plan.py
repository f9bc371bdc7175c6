"""The plan and the ledger: scope options, incremental decisions, run status and exit codes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from s3tr.cli import app
from s3tr.nightly.config import load_run_config
from s3tr.nightly.pipeline import run_pipeline
from s3tr.review.database import db_url_for, make_engine
from tests.nightly.conftest import copy_season, write_config


def _config(season: Path, tmp_path: Path, **overrides: object):
    return load_run_config(write_config(season, tmp_path / "nightly.yaml", **overrides))


def test_since_and_only_restrict_the_plan_and_a_full_run_completes_it(
    small_season: Path, tmp_path: Path
) -> None:
    config = _config(small_season, tmp_path)
    work = tmp_path / "work"
    other = run_pipeline(config, workdir=work, only_tiles=("99XYZ",))
    assert other.plan["candidates"] == 0 and other.acquisitions_new == 0

    late = run_pipeline(config, workdir=work, since=date(2025, 5, 15))
    n_late = late.plan["planned"]
    assert 0 < n_late < late.acquisitions
    assert late.items["acquired_at"].map(lambda t: pd.Timestamp(t).date() >= date(2025, 5, 15)).all()

    full = run_pipeline(config, workdir=work)
    assert full.plan["already_done"] == n_late
    assert full.plan["planned"] == full.acquisitions - n_late
    assert full.redecided == len(full.parcels)  # the tile got new slots: all its parcels

    again = run_pipeline(config, workdir=work)
    assert again.plan["planned"] == 0 and again.redecided == 0
    assert again.sync.decisions_new == 0 and again.sync.cases_opened == 0
    # Decisions not recomputed are still reported (merged from the stored state).
    pd.testing.assert_frame_equal(
        again.decisions[["id_parcel", "control", "flag"]], full.decisions[["id_parcel", "control", "flag"]]
    )
    engine = make_engine(db_url_for(work))
    with engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT id, status FROM nightly_runs")).all())
        items = conn.execute(text("SELECT status, applied, attempts FROM work_items")).all()
    engine.dispose()
    assert statuses == {r.run_id: "ok" for r in (other, late, full, again)}
    assert len(items) == full.acquisitions and all(s == "done" and a and n == 1 for s, a, n in items)


def test_only_parcels_whose_declaration_changed_are_redecided(small_season: Path, tmp_path: Path) -> None:
    season = copy_season(small_season, tmp_path / "season")
    config = _config(season, tmp_path)
    first = run_pipeline(config, workdir=tmp_path / "work")
    parcels = gpd.read_file(season / "parcels.gpkg")
    grass = parcels.index[parcels["code_group"].isin([18, 19])][0]
    changed_id = parcels.loc[grass, "id_parcel"]
    parcels.loc[grass, "code_cultu"] = "BTH"  # grassland re-declared as soft wheat
    parcels.loc[grass, "code_group"] = 1
    parcels.to_file(season / "parcels.gpkg", layer="parcels", driver="GPKG")

    second = run_pipeline(config, workdir=tmp_path / "work")
    assert second.redecided == 1
    assert set(second.series["parcel_id"]) == {changed_id}
    now = second.decisions[second.decisions["id_parcel"] == changed_id]
    before = first.decisions[first.decisions["id_parcel"] == changed_id]
    assert "crop_group" in set(now["control"]) and set(now["control"]) != set(before["control"])
    others = second.decisions[second.decisions["id_parcel"] != changed_id].reset_index(drop=True)
    ref = first.decisions[first.decisions["id_parcel"] != changed_id].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        others[["id_parcel", "control", "flag"]], ref[["id_parcel", "control", "flag"]]
    )


def test_unreachable_scheduler_fails_the_run_with_exit_code_1(small_season: Path, tmp_path: Path) -> None:
    config = write_config(small_season, tmp_path / "nightly.yaml")
    work = tmp_path / "work"
    res = CliRunner().invoke(
        app, ["nightly", "--config", str(config), "--workdir", str(work), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert res.exit_code == 1, res.output
    assert "127.0.0.1:9" in res.output
    engine = make_engine(db_url_for(work))
    with engine.connect() as conn:
        status, error = conn.execute(text("SELECT status, error FROM nightly_runs")).one()
        pending = conn.execute(text("SELECT count(*) FROM work_items WHERE status = 'pending'")).scalar()
    engine.dispose()
    assert status == "failed" and "127.0.0.1:9" in error
    assert pending > 0  # planned, never started: the next run picks them up


def test_bad_since_is_a_usage_error(small_season: Path, tmp_path: Path) -> None:
    config = write_config(small_season, tmp_path / "nightly.yaml")
    res = CliRunner().invoke(app, ["nightly", "--config", str(config), "--since", "yesterday"])
    assert res.exit_code == 2


@pytest.mark.parametrize("name", ["nightly.yaml", "backfill.yaml"])
def test_pipeline_configs_validate(name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "pipelines" / name
    cfg = load_run_config(path)
    assert cfg.campaign == 2025 and cfg.start <= cfg.end


def test_training_config_validates_and_rejects_unknown_keys(tmp_path: Path) -> None:
    from s3tr.errors import ConfigError
    from s3tr.nightly.config import load_training_config

    path = Path(__file__).resolve().parents[2] / "pipelines" / "training.yaml"
    cfg = load_training_config(path)
    assert cfg.out.is_absolute() and cfg.out.parts[-2:] == ("models", "crop_group")
    bad = tmp_path / "training.yaml"
    bad.write_text(path.read_text() + "n_trees: 5\n")
    with pytest.raises(ConfigError, match="n_trees"):
        load_training_config(bad)
    nightly_bad = tmp_path / "nightly.yaml"
    nightly_bad.write_text((path.parent / "nightly.yaml").read_text() + "wokers: 3\n")
    with pytest.raises(ConfigError, match="wokers"):
        load_run_config(nightly_bad)


def test_a_second_run_on_a_busy_workdir_is_refused(small_season: Path, tmp_path: Path) -> None:
    import fcntl

    from s3tr.nightly.pipeline import RunLockedError

    work = tmp_path / "work"
    work.mkdir()
    with open(work / ".nightly.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live run holds it
        with pytest.raises(RunLockedError, match="another nightly run"):
            run_pipeline(_config(small_season, tmp_path), workdir=work)
    assert not (work / "series").exists()

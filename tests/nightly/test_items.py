"""Item failures and retries: a corrupt COG fails its item only; a killed Dask worker's task is retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from s3tr.nightly.config import load_run_config
from s3tr.nightly.pipeline import run_pipeline
from tests.nightly.conftest import (
    assert_same_outputs,
    copy_season,
    nightly,
    run_json,
    snapshot,
    write_config,
)


def test_corrupt_cog_fails_its_item_and_a_fixed_file_is_picked_up(
    small_season: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    season = copy_season(small_season, tmp_path / "season")
    item_dir = sorted(p for p in (season / "stac").rglob("*_L2A") if p.is_dir())[2]
    cog = item_dir / "B04.tif"
    good = cog.read_bytes()
    cog.write_bytes(good[:1500])  # truncated: the header survives, the tiles do not
    config = write_config(season, tmp_path / "nightly.yaml")
    work = tmp_path / "work"

    assert nightly(config, work) == 3  # partial run
    summary = run_json(work)
    assert summary["status"] == "partial"
    failed = [it for it in summary["items"]["list"] if it["status"] == "failed"]
    assert [it["acquisition_id"] for it in failed] == [item_dir.name]
    assert "B04.tif" in failed[0]["error"]
    assert summary["items"]["done"] == summary["plan"]["planned"] - 1

    # Not fixed, not retried: the failure is reported again, nothing is extracted.
    assert nightly(config, work) == 3
    assert run_json(work)["plan"]["planned"] == 0
    assert run_json(work)["plan"]["skipped_failed"] == 1

    cog.write_bytes(good)
    assert nightly(config, work, "--retry-failed") == 0
    summary = run_json(work)
    assert summary["plan"]["planned"] == 1 and summary["items"]["done"] == 1
    # Same series and same current decisions as a run that never saw the corrupt file.
    assert_same_outputs(snapshot(work), reference, history=False)


def test_killed_dask_worker_task_is_retried(
    small_season: Path, reference: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real LocalCluster with 2 worker processes; the worker running the 3rd task SIGKILLs itself
    # once (the marker file disarms the fault for the retry).
    marker = tmp_path / "fault-fired"
    monkeypatch.setenv("S3TR_FAULT", "task:3")
    monkeypatch.setenv("S3TR_FAULT_ONCE", str(marker))
    config = load_run_config(write_config(small_season, tmp_path / "nightly.yaml", workers=2))
    from s3tr.nightly.pipeline import load_crop_model

    result = run_pipeline(config, workdir=tmp_path / "work", crop_model=load_crop_model())
    assert marker.exists(), "the fault never fired: no worker was killed"
    assert result.status == "ok" and not result.failures
    assert (result.items["status"] == "done").all()
    assert_same_outputs(snapshot(tmp_path / "work"), reference)

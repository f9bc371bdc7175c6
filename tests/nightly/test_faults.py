"""Crash tests: the run SIGKILLed at stage boundaries and inside a task, then rerun.

Every rerun must end with outputs identical to an uninterrupted run: the Zarr stores (values,
coordinates, dtypes), the full decision history (no duplicate revision), the review cases and
the flags table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.nightly.conftest import assert_same_outputs, nightly, run_json, snapshot, write_config

SIGKILLED = -9

# Representative points run always; the other stage boundaries are marked slow (CI runs them).
FAST_POINTS = ["in:extract:3", "task:4", "after:sync"]
SLOW_POINTS = ["after:plan", "after:extract:5", "after:markers", "after:state", "after:outputs"]


def _crash_then_rerun(season: Path, tmp_path: Path, fault: str) -> Path:
    config = write_config(season, tmp_path / "nightly.yaml")
    work = tmp_path / "work"
    assert nightly(config, work, fault=fault) == SIGKILLED
    assert nightly(config, work) == 0
    return work


@pytest.mark.parametrize("fault", FAST_POINTS)
def test_killed_run_then_rerun_gives_identical_outputs(
    fault: str, small_season: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    work = _crash_then_rerun(small_season, tmp_path, fault)
    assert_same_outputs(snapshot(work), reference)
    summary = run_json(work)
    assert summary["status"] == "ok"
    plan = summary["plan"]
    if fault == "in:extract:3":
        # the 3rd slot reached its store but not the ledger: recovered, not extracted again
        assert plan["recovered_from_crash"] == 1
        assert plan["already_done"] == 3 and plan["planned"] == plan["candidates"] - 3
        assert plan["replanned_after_crash"] == plan["candidates"] - 3
    elif fault == "task:4":
        # killed while reading the 4th item (tasks run in the run process with one worker);
        # the run process may still have been appending the 3rd slot
        assert plan["already_done"] <= 3 and plan["planned"] == plan["candidates"] - plan["already_done"]
        assert plan["planned"] > 0
    else:
        assert plan["planned"] == 0  # extraction was complete; only the bookkeeping was redone


@pytest.mark.slow
@pytest.mark.parametrize("fault", SLOW_POINTS)
def test_killed_at_other_stage_boundaries(
    fault: str, small_season: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    work = _crash_then_rerun(small_season, tmp_path, fault)
    assert_same_outputs(snapshot(work), reference)


@pytest.mark.slow
def test_killed_twice_then_rerun(small_season: Path, reference: dict[str, Any], tmp_path: Path) -> None:
    config = write_config(small_season, tmp_path / "nightly.yaml")
    work = tmp_path / "work"
    assert nightly(config, work, fault="after:extract:2") == SIGKILLED
    assert nightly(config, work, fault="in:extract:4") == SIGKILLED
    assert nightly(config, work) == 0
    assert_same_outputs(snapshot(work), reference)

"""``s3tr demo``: generate the demo season when the workdir has none, run the pipeline, score it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from s3tr.errors import WorkdirError
from s3tr.nightly.config import RunConfig
from s3tr.nightly.pipeline import (
    ProgressCallback,
    RunResult,
    load_crop_model,
    load_series,
    prepare_workdir,
    run_pipeline,
)
from s3tr.nightly.report import summarize, write_report

__all__ = ["DemoOutcome", "demo_run_config", "ensure_season", "run_demo"]

log = logging.getLogger(__name__)

DEMO_CAMPAIGN = 2025
DEMO_SEASON = (date(2025, 3, 1), date(2025, 10, 31))


@dataclass
class DemoOutcome:
    """What ``s3tr demo`` produced."""

    result: RunResult
    summary: dict[str, Any]
    score: dict[str, Any]
    report: Path
    flags: Path


def ensure_season(workdir: Path, *, seed: int, progress: ProgressCallback | None = None) -> Path:
    """Return the demo season folder in ``workdir``, generating it first if it is missing or incomplete."""
    from s3tr.demo import generate_season

    root = workdir / "demo"
    manifest = root / "demo.json"
    if manifest.exists():
        existing = json.loads(manifest.read_text(encoding="utf-8")).get("seed")
        if existing != seed:
            raise WorkdirError(
                f"{workdir} already holds the demo season of seed {existing}; "
                f"use another --workdir for seed {seed}"
            )
        return root
    log.info("generating the demo season (seed %d) in %s", seed, root)
    generate_season(root, seed=seed, progress=progress)
    return root


def demo_run_config(root: Path, **overrides: object) -> RunConfig:
    """The run configuration of the demo season in ``root`` (its parcels, catalog and season)."""
    fields: dict[str, object] = {
        "parcels": root / "parcels.gpkg",
        "catalog": root / "stac" / "catalog.json",
        "campaign": DEMO_CAMPAIGN,
        "start": DEMO_SEASON[0],
        "end": DEMO_SEASON[1],
    }
    return RunConfig(**(fields | overrides))


def run_demo(workdir: Path, *, seed: int = 0, progress: ProgressCallback | None = None) -> DemoOutcome:
    """Generate (if needed) and run the demo season; write the run report and score the flags."""
    from s3tr.demo.selfscore import score_run
    from s3tr.nightly.post import default_post_steps

    workdir = prepare_workdir(Path(workdir))
    root = ensure_season(workdir, seed=seed, progress=progress)
    config = demo_run_config(root)
    result = run_pipeline(
        config,
        workdir=workdir,
        crop_model=load_crop_model(),
        progress=progress,
        post_steps=default_post_steps(config),
    )
    # The score needs the whole season's series; a rerun reads only the parcels it re-decided.
    series = result.series
    if result.redecided < len(result.parcels):
        series = load_series(workdir, min_valid_fraction=config.min_valid_fraction)
    score = score_run(result.decisions, result.evidence, series, root / "truth")
    report = write_report(result, workdir / "report.html", score=score)
    return DemoOutcome(result, summarize(result, score=score), score, report, result.outputs["flags"])

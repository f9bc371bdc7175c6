"""The post-review steps of a run: chips for the cases, notifications delivered, a failing step reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from s3tr.nightly.config import load_run_config
from s3tr.nightly.pipeline import run_pipeline
from s3tr.nightly.post import chips_step, default_post_steps, notify_step
from s3tr.review.cases import list_cases
from s3tr.review.database import db_url_for, make_engine
from tests.nightly.conftest import write_config
from tests.notify.conftest import HttpReceiver


def _counts(work: Path) -> dict[str, int]:
    engine = make_engine(db_url_for(work))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM notification_deliveries GROUP BY status"))
            deliveries = {str(status): int(n) for status, n in rows}
            notifications = int(conn.execute(text("SELECT count(*) FROM notifications")).scalar_one())
        cases = list_cases(engine)
    finally:
        engine.dispose()
    return {"notifications": notifications, "cases": len(cases), **deliveries}


def _assert_every_case_has_chips(work: Path) -> None:
    engine = make_engine(db_url_for(work))
    try:
        active = set(list_cases(engine)["id_parcel"].astype(str))
    finally:
        engine.dispose()
    with_chips = {p.parent.name for p in (work / "chips").glob("*/index.json")}
    assert active and active <= with_chips


def test_a_run_cuts_chips_for_its_cases_and_delivers_what_is_due(
    small_season: Path, tmp_path: Path, webhook: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3TR_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("S3TR_WEBHOOK_SECRET", "post-step-test")
    config = load_run_config(write_config(small_season, tmp_path / "nightly.yaml"))
    work = tmp_path / "work"
    result = run_pipeline(config, workdir=work, post_steps=default_post_steps(config))
    assert result.status == "ok", result.failures

    counts = _counts(work)
    assert counts["cases"] > 0
    _assert_every_case_has_chips(work)
    index = json.loads(next((work / "chips").glob("*/index.json")).read_text())
    assert index  # a georeferenced index the console reads

    # A farmer with an account gets a notification outside the run (committed in its own transaction):
    # the rerun's notify step delivers it to the push gateway, once.
    pacage = str(result.parcels["pacage"].iloc[0])
    _notify_farmer(work, pacage)
    before = {p: p.stat().st_mtime_ns for p in (work / "chips").rglob("*.png")}
    again = run_pipeline(config, workdir=work, post_steps=default_post_steps(config))
    assert again.status == "ok"
    after = _counts(work)
    assert after["notifications"] == counts["notifications"] + 1
    assert after.get("sent", 0) == counts.get("sent", 0) + 1
    assert after.get("pending", 0) == 0 and after.get("sending", 0) == 0
    assert len(webhook.keys()) == len(set(webhook.keys())) == after["sent"]
    # The rerun cut no chip again.
    assert {p: p.stat().st_mtime_ns for p in (work / "chips").rglob("*.png")} == before


def _notify_farmer(work: Path, pacage: str) -> None:
    from s3tr.notify.outbox import Kind, enqueue
    from s3tr.review.users import create_user

    engine = make_engine(db_url_for(work))
    try:
        create_user(engine, "farmer-post", role="farmer", pacage=pacage)
        with engine.begin() as conn:
            enqueue(conn, Kind.FLAG_CHANGED, pacage=pacage, campaign=2025, payload={"flag": "orange"})
    finally:
        engine.dispose()


def test_a_failing_step_is_reported_and_the_others_still_run(small_season: Path, tmp_path: Path) -> None:
    config = load_run_config(write_config(small_season, tmp_path / "nightly.yaml"))
    broken = config.model_copy(update={"catalog": tmp_path / "no-such-catalog.json"})
    work = tmp_path / "work"
    result = run_pipeline(config, workdir=work, post_steps=[chips_step(broken), notify_step()])
    assert result.status == "partial"
    assert [(f.stage, f.item) for f in result.failures] == [("chips", "post-review step")]
    assert "no-such-catalog" in result.failures[0].reason
    # The queue was committed, and the step after the failing one still ran (nothing left due).
    counts = _counts(work)
    assert counts["cases"] > 0 and counts.get("pending", 0) == 0


def test_with_a_scheduler_the_chips_are_cut_on_its_cluster(small_season: Path, tmp_path: Path) -> None:
    from s3tr.nightly.cluster import dask_client

    config = load_run_config(write_config(small_season, tmp_path / "nightly.yaml"))
    work = tmp_path / "work"
    with dask_client(None, workers=2, processes=True, memory_limit="2GB") as client:
        address = client.scheduler.address
        result = run_pipeline(
            config,
            workdir=work,
            scheduler=address,
            post_steps=default_post_steps(config, scheduler=address, notify=False),
        )
        prefixes = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.task_prefixes))
    assert result.status == "ok", result.failures
    assert "cut_on_worker" in prefixes  # the acquisitions went to the cluster, not to local threads
    _assert_every_case_has_chips(work)
    assert not (work / "chips" / ".tmp").exists()  # no half-written file left behind

"""Many writers at once, and a writer killed mid-transaction: nothing duplicated, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import event, func, select

from s3tr.review import list_cases, make_engine, sync_decisions
from s3tr.review.cases import count_rows
from s3tr.review.models import Decision

NOW = datetime(2025, 6, 20, 2, 0, tzinfo=UTC)


def _sync_in_process(url: str, batch: pd.DataFrame, barrier, results, run_id: str) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    try:
        barrier.wait()
        summary = sync_decisions(engine, batch, run_id=run_id, now=NOW)
        results.put(("ok", summary.as_dict()))
    except Exception as exc:  # the parent fails the test with this message
        results.put(("error", repr(exc)))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_eight_processes_upserting_overlapping_batches(engine, db_url: str, factories) -> None:  # type: ignore[no-untyped-def]
    _, _, decisions = factories.decisions(240)
    parcels = sorted(decisions["id_parcel"].unique())
    # 8 batches of 90 parcels, shifted by 30: every parcel is in 1 to 3 batches
    batches = [decisions[decisions["id_parcel"].isin(parcels[i * 30 : i * 30 + 90])] for i in range(8)]
    union = pd.concat(batches).drop_duplicates(["campaign", "id_parcel", "control"])
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [
        ctx.Process(target=_sync_in_process, args=(db_url, b, barrier, results, f"run-{i}"))
        for i, b in enumerate(batches)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(status == "ok" for status, _ in outcomes), outcomes

    # each key was created by exactly one writer, and each orange key opened exactly one case
    assert sum(s["decisions_new"] for _, s in outcomes) == len(union)
    assert sum(s["decisions_changed"] for _, s in outcomes) == 0
    assert sum(s["cases_opened"] for _, s in outcomes) == int((union["flag"] == "orange").sum())
    # and the tables agree, counted independently
    assert count_rows(engine, "decisions") == len(union)
    with engine.connect() as conn:
        current = conn.execute(select(func.count()).where(Decision.is_current.is_(True))).scalar_one()
    assert current == len(union)
    cases = list_cases(engine)
    assert len(cases) == int((union["flag"] == "orange").sum())
    assert not cases.duplicated(["campaign", "id_parcel", "control"]).any()


def _slow_sync(url: str, batch: pd.DataFrame, started) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    writes = []

    @event.listens_for(engine, "after_cursor_execute")
    def _stall_after_writes(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        # Stall once rows are written inside the open transaction, so the kill lands there on any
        # machine (a fixed sleep let a fast machine finish the whole sync first).
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writes.append(statement)
            if len(writes) == 3:
                started.set()
                time.sleep(120)

    sync_decisions(engine, batch, run_id="doomed", now=NOW)
    os._exit(0)


@pytest.mark.slow
def test_process_killed_mid_sync_leaves_a_consistent_database(engine, db_url: str, factories) -> None:  # type: ignore[no-untyped-def]
    _, _, decisions = factories.decisions(6000)
    ctx = mp.get_context("fork")
    started = ctx.Event()
    proc = ctx.Process(target=_slow_sync, args=(db_url, decisions, started))
    proc.start()
    assert started.wait(60), "the sync wrote nothing"
    still_running = proc.exitcode is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert still_running, "the sync finished before it could be killed"
    assert proc.exitcode == -signal.SIGKILL

    # all or nothing: the killed transaction left no partial rows
    assert count_rows(engine, "decisions") in (0, len(decisions))
    assert count_rows(engine, "decisions") == 0
    assert count_rows(engine, "cases") == 0 and count_rows(engine, "audit_log") == 0

    # the next run completes the work, and the one after changes nothing
    summary = sync_decisions(engine, decisions, run_id="next-night", now=NOW)
    assert summary.decisions_new == len(decisions)
    assert summary.cases_opened == int((decisions["flag"] == "orange").sum())
    again = sync_decisions(engine, decisions, run_id="night-after", now=NOW)
    assert again.decisions_unchanged == len(decisions) and again.cases_opened == 0

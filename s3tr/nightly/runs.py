"""The run ledger in the review database: ``nightly_runs`` and their ``work_items``.

A work item is one (tile, acquisition). Its life: ``pending`` (planned) -> ``running`` (sent to
the cluster; ``attempts`` + 1) -> ``done`` (its slot is in the tile's series store) or ``failed``
(``error`` says why). ``applied`` turns true once the parcels of its tile were re-decided with it.

Crash recovery needs no separate journal:

* an item is extracted when its time is in the tile's series store (the store's atomic slots are
  the source of truth); an unfinished item of a crashed run whose slot reached the store is
  recorded ``done`` at the next plan (the crash fell between the append and the bookkeeping);
* other unfinished items of crashed runs are marked ``abandoned`` and planned again in the new run;
* a tile with ``done`` but not ``applied`` items has parcels whose decisions are stale: the
  next run re-decides them even when it extracts nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert, select, update

from s3tr.imagery.base import Acquisition
from s3tr.review.models import NightlyRun, WorkItem, table_of

__all__ = [
    "Plan",
    "dirty_items",
    "finish_item",
    "finish_run",
    "mark_applied",
    "plan_run",
    "run_items",
    "start_items",
    "start_run",
]

UNFINISHED = ("pending", "running")


def _now() -> datetime:
    return datetime.now(UTC)


def _naive_utc(ts: datetime) -> pd.Timestamp:
    # SQLite hands timestamps back naive (they were stored in UTC); PostgreSQL aware.
    if ts.tzinfo is None:
        return pd.Timestamp(ts)
    return pd.Timestamp(ts.astimezone(UTC).replace(tzinfo=None))


@dataclass
class Plan:
    """The items of one run and why others were left out."""

    todo: list[Acquisition]
    skipped_done: int
    skipped_failed: list[tuple[str, str, str]]  # tile, acquisition id, last error
    recovered: int
    abandoned: int


def _runs_of(conn: Any, workdir: str) -> set[str]:
    """Ids of the runs of ``workdir`` (a database may serve several workdirs, each with its stores)."""
    runs = table_of(NightlyRun)
    return {
        r.id
        for r in conn.execute(select(runs.c.id, runs.c.options))
        if (r.options or {}).get("workdir") == workdir
    }


def start_run(engine: Engine, run_id: str, options: dict[str, Any]) -> None:
    """Record a new run as ``running``."""
    with engine.begin() as conn:
        conn.execute(
            insert(table_of(NightlyRun)).values(
                id=run_id, started_at=_now(), status="running", options=options
            )
        )


def finish_run(
    engine: Engine, run_id: str, status: str, summary: dict[str, Any] | None, error: str | None = None
) -> None:
    """Record the end of a run: ``ok``, ``partial`` or ``failed``, with its summary."""
    with engine.begin() as conn:
        conn.execute(
            update(table_of(NightlyRun))
            .where(table_of(NightlyRun).c.id == run_id)
            .values(finished_at=_now(), status=status, summary=summary, error=error)
        )


def plan_run(
    engine: Engine,
    run_id: str,
    candidates: Iterable[Acquisition],
    stored_times: dict[str, set[pd.Timestamp]],
    *,
    workdir: str,
    retry_failed: bool = False,
) -> Plan:
    """Reconcile the ledger with the stores, then record this run's plan (all in one transaction).

    Parameters
    ----------
    candidates
        The catalog's acquisitions in the run's scope (dates, tiles).
    stored_times
        Per tile, the acquisition times already in its series store.
    workdir
        The run's workdir (as recorded in the runs' options): only its runs are reconciled.
    retry_failed
        Plan again the items whose last attempt failed (otherwise they are reported as skipped).
    """
    t = table_of(WorkItem)
    runs = table_of(NightlyRun)
    candidates = list(candidates)
    tiles = sorted({a.tile for a in candidates} | set(stored_times))
    now = _now()
    with engine.begin() as conn:
        # Only runs of the same workdir (its stores) matter: a database may serve several workdirs.
        mine = _runs_of(conn, workdir)
        rows = [
            r
            for r in conn.execute(
                select(
                    t.c.id, t.c.run_id, t.c.tile, t.c.acquisition_id, t.c.acquired_at, t.c.status, t.c.error
                )
                .where(t.c.tile.in_(tiles))
                .order_by(t.c.id)
            )
            if r.run_id in mine
        ]
        recovered = abandoned = 0
        last: dict[tuple[str, str], tuple[str, str | None]] = {}
        for row in rows:
            key = (row.tile, row.acquisition_id)
            status = row.status
            if status in UNFINISHED:
                if _naive_utc(row.acquired_at) in stored_times.get(row.tile, set()):
                    status = "done"
                    recovered += 1
                    err = None
                else:
                    status = "abandoned"
                    abandoned += 1
                    err = f"unfinished when its run stopped; planned again by run {run_id}"
                conn.execute(
                    update(t).where(t.c.id == row.id).values(status=status, error=err, finished_at=now)
                )
            if status != "abandoned":
                last[key] = (status, row.error)
        # The workdir lock (see pipeline) guarantees no other run of this workdir is alive.
        crashed = {r for r in conn.execute(select(runs.c.id).where(runs.c.status == "running")).scalars()}
        crashed &= mine
        crashed.discard(run_id)
        if crashed:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(sorted(crashed)))
                .values(
                    status="failed", finished_at=now, error=f"stopped before its end; resumed by {run_id}"
                )
            )

        todo: list[Acquisition] = []
        skipped_done = 0
        skipped_failed: list[tuple[str, str, str]] = []
        for acq in candidates:
            if _naive_utc(acq.datetime) in stored_times.get(acq.tile, set()):
                skipped_done += 1
                continue
            status, err = last.get((acq.tile, acq.id), (None, None))
            if status == "failed" and not retry_failed:
                skipped_failed.append((acq.tile, acq.id, err or ""))
                continue
            todo.append(acq)
        if todo:
            conn.execute(
                insert(t),
                [
                    {
                        "run_id": run_id,
                        "tile": a.tile,
                        "acquisition_id": a.id,
                        "acquired_at": a.datetime,
                        "status": "pending",
                        "attempts": 0,
                        "applied": False,
                    }
                    for a in todo
                ],
            )
    return Plan(todo, skipped_done, skipped_failed, recovered, abandoned)


def start_items(engine: Engine, run_id: str, items: Iterable[Acquisition]) -> None:
    """Mark items ``running`` and count one more attempt."""
    t = table_of(WorkItem)
    now = _now()
    with engine.begin() as conn:
        for a in items:
            conn.execute(
                update(t)
                .where((t.c.run_id == run_id) & (t.c.tile == a.tile) & (t.c.acquisition_id == a.id))
                .values(status="running", attempts=t.c.attempts + 1, started_at=now)
            )


def finish_item(
    engine: Engine,
    run_id: str,
    tile: str,
    acquisition_id: str,
    *,
    error: str | None,
    timings: dict[str, float] | None = None,
) -> None:
    """Record an item ``done`` (error None) or ``failed`` with its reason."""
    t = table_of(WorkItem)
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where((t.c.run_id == run_id) & (t.c.tile == tile) & (t.c.acquisition_id == acquisition_id))
            .values(
                status="failed" if error else "done",
                error=error,
                finished_at=_now(),
                timings={k: round(v, 4) for k, v in (timings or {}).items()},
            )
        )


def dirty_items(engine: Engine, tiles: Iterable[str], *, workdir: str) -> pd.DataFrame:
    """``done`` items not yet ``applied`` to decisions (any run of ``workdir``): ``tile, acquired_at``."""
    t = table_of(WorkItem)
    with engine.connect() as conn:
        mine = _runs_of(conn, workdir)
        rows = conn.execute(
            select(t.c.tile, t.c.acquired_at).where(
                (t.c.status == "done")
                & (~t.c.applied)
                & t.c.tile.in_(sorted(set(tiles)))
                & t.c.run_id.in_(sorted(mine))
            )
        ).all()
    return pd.DataFrame(rows, columns=["tile", "acquired_at"])


def mark_applied(engine: Engine, tiles: Iterable[str], *, workdir: str) -> None:
    """Record that the ``done`` items of ``tiles`` (runs of ``workdir``) are in the stored decisions."""
    t = table_of(WorkItem)
    with engine.begin() as conn:
        mine = _runs_of(conn, workdir)
        conn.execute(
            update(t)
            .where(
                (t.c.status == "done")
                & (~t.c.applied)
                & t.c.tile.in_(sorted(set(tiles)))
                & t.c.run_id.in_(sorted(mine))
            )
            .values(applied=True)
        )


def run_items(engine: Engine, run_id: str) -> pd.DataFrame:
    """This run's work items: tile, acquisition, status, attempts, error, timings."""
    t = table_of(WorkItem)
    cols = ["tile", "acquisition_id", "acquired_at", "status", "attempts", "error", "timings"]
    with engine.connect() as conn:
        rows = conn.execute(
            select(*(t.c[c] for c in cols)).where(t.c.run_id == run_id).order_by(t.c.id)
        ).all()
    return pd.DataFrame(rows, columns=cols)

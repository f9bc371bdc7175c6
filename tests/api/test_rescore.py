"""Re-scoring one parcel from the stored series: same series and same verdicts as the nightly run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from s3tr.extract.store import SeriesStore
from s3tr.review.models import Decision
from s3tr.review.rescore import parcel_series, rescore_parcel
from tests.api.support import Env


def test_parcel_series_matches_the_whole_store(base_workdir: Path) -> None:
    store = SeriesStore(next((base_workdir / "series").glob("*.zarr")))
    whole = store.to_table()
    for pid in list(store.parcels())[:1] + list(store.parcels())[-1:]:
        mine = parcel_series(base_workdir, pid)
        ref = whole[whole["parcel_id"] == pid].sort_values("date").reset_index(drop=True)
        assert len(mine) == len(ref) > 0
        pd.testing.assert_frame_equal(mine, ref, check_dtype=False)
    assert parcel_series(base_workdir, "NO-SUCH").empty


def test_rescoring_an_unchanged_parcel_changes_nothing(env: Env) -> None:
    with Session(env.engine) as s:
        pid = s.scalars(select(Decision.id_parcel).order_by(Decision.id_parcel)).first()
        before = s.scalar(select(func.count()).select_from(Decision))
        current = {
            d.control: d.fingerprint
            for d in s.scalars(select(Decision).where(Decision.id_parcel == pid, Decision.is_current))
        }
    new = rescore_parcel(env.engine, workdir=env.workdir, campaign=2025, id_parcel=pid)
    assert {d["control"] for d in new} == set(current)
    with Session(env.engine) as s:
        assert (
            s.scalar(select(func.count()).select_from(Decision)) == before
        )  # same fingerprints: no new rows

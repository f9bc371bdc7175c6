"""Re-score one parcel at once from its stored series (after a farmer's correction).

No imagery is read: the parcel's time series is taken from the per-tile series stores
(``<workdir>/series/<TILE>.zarr``), the markers are computed for that parcel only, the current
declaration (the corrected version) is decided with the campaign's rule set, and the result is
synced through :func:`~s3tr.review.cases.sync_decisions` so the parcel's cases are updated or
cancelled exactly as the nightly run would do.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import Engine, select

from s3tr.decide.decide import crop_model_facts, decide
from s3tr.decide.rules import RuleSet, load_ruleset
from s3tr.errors import S3trError
from s3tr.extract.store import _SLOT, SeriesStore
from s3tr.extract.table import to_table
from s3tr.markers import compute_evidence
from s3tr.review.cases import sync_decisions
from s3tr.review.declarations import DeclarationNotFoundError, _latest
from s3tr.review.models import Decision, table_of

__all__ = ["RescoreError", "parcel_series", "rescore_parcel"]

logger = logging.getLogger(__name__)


class RescoreError(S3trError, RuntimeError):
    """The parcel cannot be re-scored (no stored series, unknown campaign rule set...)."""


_SERIES_CACHE: OrderedDict[tuple[str, tuple[str, ...], str], pd.DataFrame] = OrderedDict()
_SERIES_CACHE_SIZE = 256


def _read_parcel(store: SeriesStore, idx: int, id_parcel: str) -> xr.Dataset:
    """The ``(parcel=1, time)`` series of the parcel at ``idx``, read slot by slot.

    Mirrors :meth:`SeriesStore.load` (a slot written before the parcel joined the store gives
    NaN values and count 0) but reads only this parcel's row of each slot.
    """
    parts = []
    for _key, (_v, entry) in sorted(store._latest(_SLOT).items()):
        with xr.open_zarr(entry, consolidated=False, chunks=None) as slot:
            if idx < slot.sizes["parcel"]:
                part = slot.isel(parcel=[idx]).load()
            else:
                part = slot.isel(parcel=[0]).load()
                for name in part.data_vars:
                    part[name] = part[name].astype(np.float32) * np.nan
                part["count"] = part["count"].fillna(0)
        parts.append(part.drop_vars("parcel", errors="ignore"))
    if not parts:
        return store.load().sel(parcel=[id_parcel])
    ds = xr.concat(parts, dim="time", data_vars="all", coords="minimal", join="exact")
    ds["count"] = ds["count"].astype(np.int32)
    ds.attrs = {}
    return ds.assign_coords(parcel=np.array([id_parcel], dtype=object))


def parcel_series(workdir: str | Path, id_parcel: str) -> pd.DataFrame:
    """The long time-series table of one parcel, read from ``<workdir>/series/*.zarr``.

    Only the parcel's row of each acquisition slot is read; results are cached until the store
    changes (a new or replaced slot changes its folder listing).

    Returns
    -------
    pandas.DataFrame
        Columns of :func:`s3tr.extract.table.to_table` (``parcel_id, date, valid, ndvi, ...``),
        rows of this parcel only, sorted by date; empty (no rows) when no store holds it.
    """
    root = Path(workdir) / "series"
    if not root.is_dir():
        return pd.DataFrame(columns=["parcel_id", "date", "valid"])
    for path in sorted(root.glob("*.zarr")):
        store = SeriesStore(path)
        if not store.exists():
            continue
        signature = tuple(sorted(os.listdir(path)))
        key = (str(path), signature, str(id_parcel))
        if key in _SERIES_CACHE:
            _SERIES_CACHE.move_to_end(key)
            return _SERIES_CACHE[key].copy()
        ids = list(store.parcels())
        if str(id_parcel) not in ids:
            continue
        ds = _read_parcel(store, ids.index(str(id_parcel)), str(id_parcel))
        table = to_table(ds).sort_values("date").reset_index(drop=True)
        _SERIES_CACHE[key] = table
        while len(_SERIES_CACHE) > _SERIES_CACHE_SIZE:
            _SERIES_CACHE.popitem(last=False)
        return table.copy()
    return pd.DataFrame(columns=["parcel_id", "date", "valid"])


def _ruleset(campaign: int, department: str | None, seen_version: str | None) -> RuleSet:
    """The rule set the parcel was decided with: the regional one when it was used, else national."""
    regional = load_ruleset(campaign, department)
    if seen_version is None or regional.version == seen_version:
        return regional
    national = load_ruleset(campaign)
    return national if national.version == seen_version else regional


def rescore_parcel(
    engine: Engine,
    *,
    workdir: str | Path,
    campaign: int,
    id_parcel: str,
    crop_model: object | None = None,
    as_of: date | None = None,
    actor: str = "rescore",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Decide one parcel again from its stored series and current declaration, and sync it.

    Parameters
    ----------
    engine
        Review database at the head migration.
    workdir
        The run directory whose ``series/`` holds the parcel's series store.
    campaign, id_parcel
        The parcel.
    crop_model
        The crop-group model used by the nightly run (None: the crop control stays orange for
        lack of a prediction, as in the nightly run without a model).
    as_of
        Date of the verdict (windows not yet over wait); default: the earlier of today and the
        last stored acquisition, like the nightly run's ``min(today, season end)``.
    actor
        Who triggered it, for the audit log.

    Returns
    -------
    list of dict
        The parcel's new decisions (one per applicable control: ``control, flag, reasons,
        evidence, explanation_fr, explanation_en``...), as synced.

    Raises
    ------
    DeclarationNotFoundError
        The parcel has no declaration in that campaign.
    """
    with engine.connect() as conn:
        latest = _latest(conn, int(campaign), [str(id_parcel)])
        dt = table_of(Decision)
        seen = conn.execute(
            select(dt.c.ruleset_version, dt.c.evidence)
            .where(dt.c.campaign == int(campaign), dt.c.id_parcel == str(id_parcel), dt.c.is_current)
            .order_by(dt.c.id.desc())
        ).all()
    if latest.empty:
        raise DeclarationNotFoundError(f"parcel {id_parcel} has no declaration in campaign {campaign}")
    decl = latest.drop(columns=["id", "version"]).copy()
    decl["campaign"] = int(campaign)
    department = decl["department"].iloc[0]
    ruleset = _ruleset(int(campaign), department, seen[0][0] if seen else None)
    # the pixel count comes from the parcel raster of the nightly run; decisions keep it
    n_pixels = next(
        (ev.get("n_pixels") for _, ev in seen if isinstance(ev, dict) and ev.get("n_pixels")), None
    )
    if n_pixels is not None:
        decl["n_pixels"] = int(n_pixels)
        decl["monitorable"] = int(n_pixels) >= ruleset.evidence.min_pixels
    else:  # decide() records n_pixels only for parcels too small to monitor
        decl["monitorable"] = True

    series = parcel_series(workdir, str(id_parcel))
    if series.empty:
        logger.warning(
            "parcel %s has no stored series under %s: decided without evidence", id_parcel, workdir
        )
    window = ruleset.activity_window
    evidence = compute_evidence(
        series,
        decl,
        crop_model=crop_model,  # type: ignore[arg-type]
        season=(window.start.isoformat(), window.end.isoformat()),
    )
    if as_of is None:
        today = (now or datetime.now(UTC)).date()
        last = pd.to_datetime(series["date"]).max().date() if len(series) else today
        as_of = min(today, last)
    decisions = decide(decl, evidence, ruleset, as_of=as_of, **crop_model_facts(crop_model))
    run_id = f"rescore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    if not decisions.empty:
        sync_decisions(engine, decisions, run_id=run_id, now=now, actor=actor)
    logger.info("re-scored parcel %s (campaign %s): %d decision(s)", id_parcel, campaign, len(decisions))
    return decisions.to_dict("records")

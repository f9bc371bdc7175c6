"""Choosing the mowing detector's parameters by cross-validation grouped by site.

The scorer of the robust detector is fitted on labelled candidates (a candidate is positive when a true mowing
date falls in ``[start - tolerance, end + tolerance]``), and the decision threshold is chosen to maximise event
F1 on the training folds. :func:`cross_validate_mowing` does both inside each fold, so the held-out sites never
influence the parameters scored on them; :func:`fit_mowing_params` does the same on all sites (what ships).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from s3tr.markers.evaluate import evaluate_mowing
from s3tr.markers.mowing import (
    CANDIDATE_FEATURES,
    NDVI_FEATURES,
    MowingParams,
    candidate_table,
    fit_scorer,
    mowing_marker,
)

__all__ = ["cross_validate_mowing", "fit_mowing_params", "label_candidates"]

logger = logging.getLogger(__name__)


def label_candidates(cands: pd.DataFrame, truth: pd.DataFrame, *, tolerance_days: int = 10) -> np.ndarray:
    """True for each candidate that has a true mowing date within its interval widened by the tolerance."""
    tol = pd.Timedelta(days=tolerance_days)
    by_parcel = {
        p: g["date"].to_numpy()
        for p, g in truth.assign(date=pd.to_datetime(truth["date"])).groupby("parcel_id")
    }
    out = np.zeros(len(cands), dtype=bool)
    for k, (p, s, e) in enumerate(zip(cands["parcel_id"], cands["start"], cands["end"], strict=True)):
        d = by_parcel.get(p)
        if d is not None:
            out[k] = bool(((d >= np.datetime64(s - tol)) & (d <= np.datetime64(e + tol))).any())
    return out


def _events_for(table: pd.DataFrame, params: MowingParams) -> pd.DataFrame:
    return mowing_marker(table, params=params).events


def fit_mowing_params(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    base: MowingParams = MowingParams(),
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.3, 0.75, 0.05), 2)),
    separations: Sequence[int] = (20, 28),
    c: float = 1.0,
    ndvi_only: bool = False,
) -> tuple[MowingParams, dict[str, float]]:
    """Fit both scorers on ``table``'s parcels and choose threshold and separation by event F1 there.

    Returns the parameters and the training-set scores of the chosen setting.
    """
    cands = candidate_table(table, params=base)
    y = label_candidates(cands, truth)
    with_bands = cands[list(CANDIDATE_FEATURES)].notna().all(axis=1).to_numpy()
    scorer_ndvi = fit_scorer(cands, y, features=NDVI_FEATURES, c=c)
    scorer_bands = (
        fit_scorer(cands[with_bands], y[with_bands], features=CANDIDATE_FEATURES, c=c)
        if with_bands.sum() > 20 and not ndvi_only
        else base.scorer_bands
    )
    params = base.with_(scorer_ndvi=scorer_ndvi, scorer_bands=scorer_bands)
    if ndvi_only:
        table = table.drop(columns=[c for c in ("B02", "B08", "B8A", "B11") if c in table.columns])
    parcels = table["parcel_id"].unique().tolist()
    best: tuple[float, MowingParams, dict[str, float]] | None = None
    for sep in separations:
        # Run once at the lowest threshold, then filter: events only disappear as the threshold rises.
        low = params.with_(threshold=float(min(thresholds)), min_separation_days=int(sep))
        for thr in thresholds:
            ev = _events_for(table, low.with_(threshold=float(thr)))
            r = evaluate_mowing(ev, truth, parcels)
            if best is None or r["f1"] > best[0]:
                best = (r["f1"], low.with_(threshold=float(thr)), r)
    assert best is not None
    return best[1], best[2]


def cross_validate_mowing(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    sites: pd.Series,
    *,
    n_splits: int = 5,
    base: MowingParams = MowingParams(),
    ndvi_only: bool = False,
    seed: int = 0,
) -> dict[str, object]:
    """Grouped k-fold estimate of the robust detector (fit and threshold chosen inside each fold).

    Parameters
    ----------
    table, truth
        Normalised table and ``parcel_id, date`` truth.
    sites
        ``parcel_id -> site``; all parcels of a site fall in the same fold.
    n_splits
        Number of folds.
    ndvi_only
        Drop the bands first (what the detector does without them).

    Returns
    -------
    dict
        Pooled ``precision, recall, f1, season_balanced_accuracy`` over the held-out folds, per-fold F1 and
        the chosen thresholds.
    """
    from sklearn.model_selection import GroupKFold

    if ndvi_only:
        table = table.drop(columns=[c for c in ("B02", "B08", "B8A", "B11") if c in table.columns])
    pids = np.asarray(table["parcel_id"].unique())
    groups = sites.reindex(pids).fillna("?").to_numpy()
    folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(pids, groups=groups)
    events, per_fold, chosen = [], [], []
    for train_idx, test_idx in folds:
        tr_p, te_p = set(pids[train_idx]), set(pids[test_idx])
        params, _ = fit_mowing_params(
            table[table["parcel_id"].isin(tr_p)],
            truth[truth["parcel_id"].isin(tr_p)],
            base=base,
            ndvi_only=ndvi_only,
        )
        ev = _events_for(table[table["parcel_id"].isin(te_p)], params)
        events.append(ev)
        per_fold.append(evaluate_mowing(ev, truth[truth["parcel_id"].isin(te_p)], list(te_p))["f1"])
        chosen.append((params.threshold, params.min_separation_days))
    pooled = evaluate_mowing(
        pd.concat(events, ignore_index=True), truth[truth["parcel_id"].isin(set(pids))], list(pids)
    )
    return {**pooled, "fold_f1": per_fold, "chosen": chosen, "n_splits": n_splits}

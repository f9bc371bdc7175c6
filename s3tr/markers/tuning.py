"""Choosing the mowing detector's parameters by cross-validation grouped by site.

The scorer of the robust detector is fitted on labelled candidates (a candidate is positive when a true mowing
date falls in ``[start - tolerance, end + tolerance]``), and the decision threshold is chosen to maximise
event F1 on the training folds. :func:`cross_validate_mowing` does both inside each fold, so the held-out
sites never influence the parameters scored on them; :func:`fit_mowing_params` does the same on all sites
(what ships).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from s3tr.markers.evaluate import evaluate_mowing
from s3tr.markers.mowing import (
    BAND_FEATURES,
    INDEX_FEATURES,
    NDVI_FEATURES,
    MowingParams,
    candidate_table,
    fit_scorer,
    mowing_marker,
)

__all__ = [
    "cross_validate_crop",
    "cross_validate_mowing",
    "fit_mowing_params",
    "label_candidates",
    "restrict_columns",
]

logger = logging.getLogger(__name__)


_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")


def restrict_columns(table: pd.DataFrame, data: str) -> pd.DataFrame:
    """The table as the detector would see it with ``data`` = ``bands``, ``indices`` or ``ndvi``."""
    if data == "bands":
        return table
    out = table.copy()
    if data == "indices":
        nir = out["B8A"] if "B8A" in out.columns else out.get("B08")
        if nir is not None and {"B11", "B04", "B02"} <= set(out.columns):
            out["ndmi"] = (nir - out["B11"]) / (nir + out["B11"])
            s1, s2 = out["B11"] + out["B04"], nir + out["B02"]
            out["bsi"] = (s1 - s2) / (s1 + s2)
    else:
        out = out.drop(columns=[c for c in ("ndmi", "bsi") if c in out.columns])
    out = out.drop(columns=[c for c in _BANDS if c in out.columns])
    out.attrs["normalized"] = True
    return out


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
    base: MowingParams | None = None,
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.3, 0.75, 0.05), 2)),
    separations: Sequence[int] = (20, 28),
    c: float = 1.0,
    parcel_thresholds: Sequence[float] = (0.0,),
    objective: str = "f1",
) -> tuple[MowingParams, dict[str, float]]:
    """Fit both scorers on ``table``'s parcels and choose threshold and separation by event F1 there.

    ``parcel_thresholds`` are tried on top (0 = off); ``objective`` is ``"f1"`` or ``"f1+season"`` (event F1
    plus season balanced accuracy). Returns the parameters and the training-set scores of the chosen setting.
    """
    base = base or MowingParams()
    cands = candidate_table(table, params=base)
    y = label_candidates(cands, truth)
    scorers = {}
    for name, feats in (("ndvi", NDVI_FEATURES), ("indices", INDEX_FEATURES), ("bands", BAND_FEATURES)):
        known = cands[list(feats)].notna().all(axis=1).to_numpy()
        scorers[name] = (
            fit_scorer(cands[known], y[known], features=feats, c=c)
            if known.sum() > 20
            else getattr(base, f"scorer_{name}")
        )
    params = base.with_(
        scorer_ndvi=scorers["ndvi"], scorer_indices=scorers["indices"], scorer_bands=scorers["bands"]
    )
    parcels = table["parcel_id"].unique().tolist()
    best: tuple[float, MowingParams, dict[str, float]] | None = None
    for sep in separations:
        # Run once at the lowest threshold, then filter: events only disappear as the threshold rises.
        low = params.with_(threshold=float(min(thresholds)), min_separation_days=int(sep))
        for thr in thresholds:
            for pthr in parcel_thresholds:
                if pthr and pthr <= thr:
                    continue
                cand = low.with_(threshold=float(thr), parcel_threshold=float(pthr))
                r = evaluate_mowing(_events_for(table, cand), truth, parcels)
                score = r["f1"] + (r["season_balanced_accuracy"] if objective == "f1+season" else 0.0)
                if best is None or score > best[0]:
                    best = (score, cand, r)
    assert best is not None
    return best[1], best[2]


def cross_validate_mowing(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    sites: pd.Series,
    *,
    n_splits: int = 5,
    base: MowingParams | None = None,
    data: str = "bands",
    seed: int = 0,
    thresholds: Sequence[float] = tuple(np.round(np.arange(0.3, 0.75, 0.05), 2)),
    separations: Sequence[int] = (20, 28),
    parcel_thresholds: Sequence[float] = (0.0,),
    objective: str = "f1",
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
    data
        ``"bands"`` (all columns), ``"indices"`` (NDVI, NDMI and BSI only, as in the pipeline's long table;
        computed from the bands first) or ``"ndvi"`` (NDVI alone).
    thresholds, separations, parcel_thresholds, objective
        The grid searched inside each fold and what it maximises (see :func:`fit_mowing_params`).

    Returns
    -------
    dict
        Pooled ``precision, recall, f1, season_balanced_accuracy`` over the held-out folds, per-fold F1 and
        the chosen thresholds.
    """
    from sklearn.model_selection import GroupKFold

    base = base or MowingParams()

    table = restrict_columns(table, data)
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
            thresholds=thresholds,
            separations=separations,
            parcel_thresholds=parcel_thresholds,
            objective=objective,
        )
        ev = _events_for(table[table["parcel_id"].isin(te_p)], params)
        events.append(ev)
        per_fold.append(evaluate_mowing(ev, truth[truth["parcel_id"].isin(te_p)], list(te_p))["f1"])
        chosen.append((params.threshold, params.min_separation_days, params.parcel_threshold))
    pooled = evaluate_mowing(
        pd.concat(events, ignore_index=True), truth[truth["parcel_id"].isin(set(pids))], list(pids)
    )
    return {**pooled, "fold_f1": per_fold, "chosen": chosen, "n_splits": n_splits}


def cross_validate_crop(
    table: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    n_splits: int = 5,
    seed: int = 0,
    groups: pd.Series | None = None,
    config: object | None = None,
    make_estimator: object | None = None,
) -> dict[str, object]:
    """Stratified (or grouped) k-fold estimate of the crop classifier.

    Features are computed once (they depend on one series at a time); the classifier, with its internal
    calibration folds, is refitted in each outer fold on the training part only.

    Parameters
    ----------
    table, labels
        Normalised table and ``parcel_id, label``.
    groups
        ``parcel_id -> group`` (e.g. the parcel of a pixel): folds never split a group.
    config
        :class:`~s3tr.markers.crop.CropFeatureConfig` (default NDVI, 46 bins of 8 days).
    make_estimator
        Callable ``seed -> unfitted classifier`` (default :func:`~s3tr.markers.crop.make_classifier`).

    Returns
    -------
    dict
        :func:`~s3tr.markers.evaluate.evaluate_crop` figures on the pooled out-of-fold predictions, plus
        ``fit_seconds`` (mean per fold) and ``n_splits``.
    """
    import time

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    from s3tr.markers.crop import _MISSING, CropFeatureConfig, build_features, make_classifier
    from s3tr.markers.evaluate import evaluate_crop

    cfg = config if isinstance(config, CropFeatureConfig) else CropFeatureConfig()
    make = make_estimator if callable(make_estimator) else (lambda s: make_classifier(seed=s))
    feats = build_features(table, cfg)
    lab = labels.assign(parcel_id=labels["parcel_id"].astype(str)).set_index("parcel_id")
    ids = feats.index[feats.index.isin(lab.index)]
    x = np.nan_to_num(feats.loc[ids, cfg.feature_names()].to_numpy(dtype=float), nan=_MISSING)
    y = lab.loc[ids, "label"].astype(str).to_numpy()
    if groups is not None:
        g = groups.reindex(ids).to_numpy()
        splits = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(x, y, g)
    else:
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(x, y)
    rows, times = [], []
    for train, test in splits:
        t0 = time.perf_counter()
        est = make(seed)
        est.fit(x[train], y[train])
        times.append(time.perf_counter() - t0)
        proba = est.predict_proba(x[test])
        order = np.argsort(-proba, axis=1)
        classes = np.asarray(est.classes_).astype(str)
        rows.append(
            pd.DataFrame(
                {
                    "parcel_id": ids[test],
                    "predicted": classes[order[:, 0]],
                    "probability": proba[np.arange(len(test)), order[:, 0]],
                }
            )
        )
    pred = pd.concat(rows, ignore_index=True)
    result = evaluate_crop(pred, lab.loc[ids, ["label"]].reset_index())
    return {**result, "fit_seconds": float(np.mean(times)), "n_splits": n_splits, "predictions": pred}

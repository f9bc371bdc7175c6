"""Choosing the mowing detector's parameters by cross-validation grouped by site.

The scorer of the robust detector is fitted on labelled candidates (a candidate is positive when a true mowing
date falls in ``[start - tolerance, end + tolerance]``), and the decision thresholds (events, season) and the
separation are chosen on the training folds to maximise event F1 (or event F1 plus season balanced
accuracy when the optional season decision is searched too).
:func:`cross_validate_mowing` does both inside each fold, so the held-out sites never influence the
parameters scored on them; :func:`fit_mowing_params` does the same on all sites (what ships).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from s3tr.markers.evaluate import evaluate_mowing
from s3tr.markers.mowing import (
    BAND_FEATURES,
    EVENT_COLUMNS,
    INDEX_FEATURES,
    NDVI_FEATURES,
    MowingParams,
    _candidates,
    _choose_seasons,
    _clear,
    _score,
    candidate_table,
    fit_scorer,
    mowing_marker,
)
from s3tr.markers.table import iter_series, season_windows, window_quality

__all__ = [
    "choose_gap_offset",
    "cross_validate_crop",
    "cross_validate_mowing",
    "fit_mowing_params",
    "label_candidates",
    "negative_season_weights",
    "restrict_columns",
    "thin_table",
]

logger = logging.getLogger(__name__)


#: Grids searched inside each fold: event threshold, and the season decision (None = off; the default
#: searches None only, the shipped rule; ``PARCEL_THRESHOLDS`` is the opt-in season decision's grid).
THRESHOLDS = tuple(float(x) for x in np.round(np.arange(0.3, 0.75, 0.05), 2))
PARCEL_THRESHOLDS: tuple[float | None, ...] = (
    None,
    *(float(x) for x in np.round(np.arange(0.3, 0.95, 0.05), 2)),
)
#: The :attr:`MowingParams.span_penalty` values the benchmark chooses among inside each fold.
SPAN_PENALTIES = (0.0, 0.003, 0.006, 0.009, 0.012)
#: The :attr:`MowingParams.gap_offset` values (log-odds per day) chosen among on thinned copies.
GAP_OFFSETS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2)
#: Shares of the rows dropped from each thinned copy of the training table (a cloudier sky).
THINNED_COPIES = (0.3, 0.55)

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


def thin_table(table: pd.DataFrame, fraction: float, *, seed: int = 0, suffix: str = "") -> pd.DataFrame:
    """``table`` with a random ``fraction`` of its rows dropped, as a cloudier sky would leave it.

    ``suffix`` is appended to every ``parcel_id`` (so that copies can sit next to the original); the
    result is sorted and marked normalised, like the table it came from.
    """
    keep = np.random.default_rng(seed).random(len(table)) >= fraction
    out = table[keep].copy()
    if suffix:
        out["parcel_id"] = out["parcel_id"].astype(str) + suffix
    out = out.sort_values(["parcel_id", "date"], kind="stable").reset_index(drop=True)
    out.attrs["normalized"] = True
    return out


def _thinned_copies(
    table: pd.DataFrame, truth: pd.DataFrame, fractions: Sequence[float], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Thinned copies of ``table`` side by side (ids suffixed ``#thin<k>``) and their truth."""
    tables, truths = [], []
    for k, frac in enumerate(fractions):
        suffix = f"#thin{k}"
        tables.append(thin_table(table, frac, seed=seed * 1000 + k, suffix=suffix))
        truths.append(truth.assign(parcel_id=truth["parcel_id"].astype(str) + suffix))
    out = pd.concat(tables, ignore_index=True)
    out.attrs["normalized"] = True
    return out, pd.concat(truths, ignore_index=True)


def choose_gap_offset(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    params: MowingParams,
    *,
    offsets: Sequence[float] = GAP_OFFSETS,
    fractions: Sequence[float] = THINNED_COPIES,
    seed: int = 0,
) -> MowingParams:
    """``params`` with the :attr:`MowingParams.gap_offset` of best event F1 on ``table`` and thinned copies.

    The scorers and thresholds stay as they are (chosen on the full series); only how much a sparse
    series' candidates are trusted is chosen, on ``table`` together with copies of it that have
    ``fractions`` of their rows dropped (a median gap of 7 and 10 days between clear dates for the Slovak
    set's 5). Scoring the full series too keeps the offset from costing the well-observed seasons: on
    thinned copies alone, NDVI-only scorers chose twice the offset and lost 0.02 of event F1 on full series.
    """
    thinned, thinned_truth = _thinned_copies(table, truth, fractions, seed)
    both = pd.concat([table, thinned], ignore_index=True)
    both.attrs["normalized"] = True
    both_truth = pd.concat([truth, thinned_truth], ignore_index=True)
    prepared = _prepare(both, params)
    parcels = both["parcel_id"].unique().tolist()
    best: tuple[float, MowingParams] | None = None
    for offset in offsets:
        cand = params.with_(gap_offset=float(offset))
        f1 = evaluate_mowing(_fast_events(prepared, cand), both_truth, parcels)["f1"]
        if best is None or f1 > best[0]:
            best = (f1, cand)
    assert best is not None
    return best[1]


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


#: One parcel's robust candidates: ``parcel_id, clear dates, candidate index pairs, features, seasons``.
_Prepared = tuple[str, np.ndarray, np.ndarray, np.ndarray, list[tuple[np.datetime64, np.datetime64]]]


def _prepare(table: pd.DataFrame, base: MowingParams) -> list[_Prepared]:
    """Candidates and features of every parcel, computed once: they do not depend on scorer or thresholds."""
    out = []
    for s in iter_series(table):
        if s.dates.size == 0:
            continue
        d, _ = s.clear("ndvi")
        windows = season_windows(base.season, s.dates)
        # The same early exits as mowing_marker: no clear date in the seasons, no event.
        if sum(window_quality(d, *w)[0] for w in windows) == 0:
            continue
        t, vals = _clear(s, base)
        if t.size < 2:
            continue
        ab, x = _candidates(t, vals, base)
        if ab.shape[0]:
            out.append((s.parcel_id, t, ab, x, windows))
    return out


def _fast_events(
    prepared: list[_Prepared], params: MowingParams, scores: list[np.ndarray] | None = None
) -> pd.DataFrame:
    """What ``mowing_marker(table, params).events`` gives (robust detector), from prepared candidates.

    ``scores`` (one array per prepared parcel) replace the scorers' when given.
    """
    rows = [
        (pid, a, b, c)
        for k, (pid, t, ab, x, windows) in enumerate(prepared)
        for a, b, c in _choose_seasons(
            t, ab, _score(x, params) if scores is None else scores[k], params, windows
        )
    ]
    ev = pd.DataFrame(rows, columns=EVENT_COLUMNS)
    for col in ("start", "end"):
        ev[col] = pd.to_datetime(ev[col]).astype("datetime64[ns]")
    return ev


def _fit_scorers(
    cands: pd.DataFrame, y: np.ndarray, base: MowingParams, c: float, weight: np.ndarray | None = None
) -> MowingParams:
    """``base`` with its three scorers fitted on labelled candidates (kept where too few rows have data)."""
    scorers = {}
    for name, feats in (("ndvi", NDVI_FEATURES), ("indices", INDEX_FEATURES), ("bands", BAND_FEATURES)):
        known = cands[list(feats)].notna().all(axis=1).to_numpy()
        scorers[name] = (
            fit_scorer(
                cands[known],
                y[known],
                features=feats,
                c=c,
                sample_weight=None if weight is None else weight[known],
            )
            if known.sum() > 20
            else getattr(base, f"scorer_{name}")
        )
    return base.with_(
        scorer_ndvi=scorers["ndvi"], scorer_indices=scorers["indices"], scorer_bands=scorers["bands"]
    )


def negative_season_weights(cands: pd.DataFrame, truth: pd.DataFrame, weight: float) -> np.ndarray | None:
    """Fit weight of each candidate: ``weight`` for those of plot-years with no true mowing, else 1.

    A false event on a never-mowed season turns the whole season wrong (and season balanced accuracy counts
    each of the few never-mowed seasons several times more than a mowed one), while a false fall on a mowed
    season costs one event; weighing the never-mowed seasons' falls up says so to the scorer. ``None``
    (no weighting) when ``weight`` is 1.
    """
    if weight == 1.0:
        return None
    unmown = ~cands["parcel_id"].isin(set(truth["parcel_id"])).to_numpy()
    return np.where(unmown, float(weight), 1.0)


def _out_of_fold_scores(
    prepared: list[_Prepared],
    cands: pd.DataFrame,
    y: np.ndarray,
    sites: pd.Series,
    base: MowingParams,
    c: float,
    n_splits: int,
    seed: int,
    weight: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Each prepared parcel's candidate scores from scorers fitted without its site (grouped k-fold)."""
    from sklearn.model_selection import GroupKFold

    pids = np.asarray([p[0] for p in prepared])
    groups = sites.reindex(pids).fillna("?").to_numpy()
    n_splits = min(n_splits, len(set(groups)))
    scores: list[np.ndarray] = [np.empty(0)] * len(prepared)
    for train, test in GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(
        pids, groups=groups
    ):
        rows = cands["parcel_id"].isin(set(pids[train])).to_numpy()
        params = _fit_scorers(cands[rows], y[rows], base, c, None if weight is None else weight[rows])
        for k in test:
            scores[k] = _score(prepared[k][3], params)
    return scores


def fit_mowing_params(
    table: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    base: MowingParams | None = None,
    thresholds: Sequence[float] = THRESHOLDS,
    separations: Sequence[int] = (20, 28),
    c: float = 1.0,
    parcel_thresholds: Sequence[float | None] = (None,),
    objective: str = "f1",
    sites: pd.Series | None = None,
    inner_splits: int = 0,
    seed: int = 0,
    negative_weight: float = 1.0,
    span_penalties: Sequence[float] | None = None,
    gap_offsets: Sequence[float] | None = None,
) -> tuple[MowingParams, dict[str, float]]:
    """Fit the scorers on ``table``'s parcels and choose the thresholds and separation there.

    ``parcel_thresholds`` are the season decisions tried (``None`` = off, see
    :attr:`MowingParams.parcel_threshold`; the evidence is ``base.parcel_evidence``); ``objective`` is
    ``"f1"`` (event F1) or ``"f1+season"`` (event F1 plus season balanced accuracy). With ``sites``
    (``parcel_id -> site``) and ``inner_splits >= 2`` the thresholds are chosen on out-of-fold scores of an
    inner split grouped by site rather than on the scores of the parcels the scorers were fitted on (which
    are over-confident); on the Slovak set this changed the grouped-CV figures by less than their noise
    (event F1 0.817 against 0.821), hence off by default. ``negative_weight`` weighs the candidates of
    never-mowed plot-years in the scorers' fit (:func:`negative_season_weights`; 1 = unweighted, the
    shipped fit). ``span_penalties`` (default: ``base``'s alone) are the
    :attr:`MowingParams.span_penalty` tried; each gives other candidates, so the scorers are refitted for
    each. ``gap_offsets`` (default: ``base``'s alone) are the :attr:`MowingParams.gap_offset` tried, once
    the rest is chosen, on ``table`` and thinned copies of it (:func:`choose_gap_offset`). Returns the
    parameters (scorers fitted on all of ``table``) and the scores of the chosen setting on ``table``
    (out-of-fold with the inner split).
    """
    base = base or MowingParams()
    parcels = table["parcel_id"].unique().tolist()
    best: tuple[float, MowingParams, dict[str, float]] | None = None
    for penalty in span_penalties if span_penalties is not None else (base.span_penalty,):
        base_p = base.with_(span_penalty=float(penalty))
        cands = candidate_table(table, params=base_p)
        y = label_candidates(cands, truth)
        weight = negative_season_weights(cands, truth, negative_weight)
        params = _fit_scorers(cands, y, base_p, c, weight)
        prepared = _prepare(table, params)
        scores = (
            _out_of_fold_scores(prepared, cands, y, sites, base_p, c, inner_splits, seed, weight)
            if sites is not None and inner_splits >= 2
            else None
        )
        for sep in separations:
            for thr in thresholds:
                for pthr in parcel_thresholds:
                    cand = params.with_(
                        threshold=float(thr),
                        parcel_threshold=None if pthr is None else float(pthr),
                        min_separation_days=int(sep),
                    )
                    r = evaluate_mowing(_fast_events(prepared, cand, scores), truth, parcels)
                    score = r["f1"] + (r["season_balanced_accuracy"] if objective == "f1+season" else 0.0)
                    if best is None or score > best[0]:
                        best = (score, cand, r)
    assert best is not None
    if gap_offsets is not None:
        return choose_gap_offset(table, truth, best[1], offsets=gap_offsets, seed=seed), best[2]
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
    thresholds: Sequence[float] = THRESHOLDS,
    separations: Sequence[int] = (20, 28),
    parcel_thresholds: Sequence[float | None] = (None,),
    objective: str = "f1",
    inner_splits: int = 0,
    negative_weight: float = 1.0,
    span_penalties: Sequence[float] | None = None,
    gap_offsets: Sequence[float] | None = None,
    thinned_test: Sequence[float] = (),
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
    thresholds, separations, parcel_thresholds, objective, inner_splits
        The grid searched inside each fold, what it maximises, and the inner split (grouped by site) whose
        out-of-fold scores it is chosen on (below 2: in-sample scores); see :func:`fit_mowing_params`.
    negative_weight
        Fit weight of the candidates of never-mowed plot-years (:func:`negative_season_weights`).
    span_penalties
        The :attr:`MowingParams.span_penalty` values chosen among inside each fold (default: ``base``'s).
    gap_offsets
        The :attr:`MowingParams.gap_offset` values chosen among inside each fold, on the training sites and
        thinned copies of them (default: ``base``'s).
    thinned_test
        Shares of rows to drop from the held-out sites for a second score each: the same fitted detector
        on a cloudier sky (``thinned``: pooled metrics by share).

    Returns
    -------
    dict
        Pooled ``precision, recall, f1, season_balanced_accuracy`` over the held-out folds, per-fold F1,
        the chosen thresholds, ``events`` (every parcel's events, detected by the fold that held it out)
        and ``thinned``.
    """
    from sklearn.model_selection import GroupKFold

    base = base or MowingParams()

    table = restrict_columns(table, data)
    pids = np.asarray(table["parcel_id"].unique())
    groups = sites.reindex(pids).fillna("?").to_numpy()
    folds = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(pids, groups=groups)
    events, per_fold, chosen = [], [], []
    thinned: dict[float, list[pd.DataFrame]] = {float(f): [] for f in thinned_test}
    for fold, (train_idx, test_idx) in enumerate(folds):
        tr_p, te_p = set(pids[train_idx]), set(pids[test_idx])
        params, _ = fit_mowing_params(
            table[table["parcel_id"].isin(tr_p)],
            truth[truth["parcel_id"].isin(tr_p)],
            base=base,
            thresholds=thresholds,
            separations=separations,
            parcel_thresholds=parcel_thresholds,
            objective=objective,
            sites=sites,
            inner_splits=inner_splits,
            seed=seed,
            negative_weight=negative_weight,
            span_penalties=span_penalties,
            gap_offsets=gap_offsets,
        )
        test = table[table["parcel_id"].isin(te_p)]
        ev = _events_for(test, params)
        events.append(ev)
        for frac, found in thinned.items():
            found.append(_events_for(thin_table(test, frac, seed=seed * 1000 + 100 + fold), params))
        per_fold.append(evaluate_mowing(ev, truth[truth["parcel_id"].isin(te_p)], list(te_p))["f1"])
        chosen.append(
            (params.threshold, params.min_separation_days, params.parcel_threshold)
            + (() if span_penalties is None else (params.span_penalty,))
            + (() if gap_offsets is None else (params.gap_offset,))
        )
    held_out = pd.concat(events, ignore_index=True)
    scored_truth = truth[truth["parcel_id"].isin(set(pids))]
    pooled = evaluate_mowing(held_out, scored_truth, list(pids))
    sparse = {
        frac: evaluate_mowing(pd.concat(found, ignore_index=True), scored_truth, list(pids))
        for frac, found in thinned.items()
    }
    return {
        **pooled,
        "fold_f1": per_fold,
        "chosen": chosen,
        "n_splits": n_splits,
        "events": held_out,
        "thinned": sparse,
    }


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
        :func:`~s3tr.markers.evaluate.evaluate_crop` figures on the pooled out-of-fold predictions, their
        95 % intervals (``<figure>_ci95``, :func:`~s3tr.markers.evaluate.crop_bootstrap_intervals`, over
        ``groups`` when given), ``fit_seconds`` (mean per fold), ``n_splits`` and the out-of-fold
        ``predictions``.
    """
    import time

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    from s3tr.markers.crop import _MISSING, CropFeatureConfig, build_features, make_classifier
    from s3tr.markers.evaluate import crop_bootstrap_intervals, evaluate_crop

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
    truth = lab.loc[ids, ["label"]].reset_index()
    result = evaluate_crop(pred, truth)
    # Every figure gets a bootstrap interval, over the folds' groups when given (the accuracy's replaces
    # the Wilson interval then: parcels of one group are not independent draws).
    result.update(crop_bootstrap_intervals(pred, truth, groups=groups, seed=seed))
    return {**result, "fit_seconds": float(np.mean(times)), "n_splits": n_splits, "predictions": pred}

"""Scoring of the markers against ground truth.

Mowing (the field's rule, see ``shared/data/grassland_mowing/README.txt``): a true mowing date ``d`` matches a
detected event ``[start, end]`` when ``start - tolerance <= d <= end + tolerance``; matching is one-to-one, in
time order (each true date, earliest first, takes the eligible unmatched event that ends first, which
maximises the number of matches for intervals). Precision, recall and F1 are over events. The season-level
score asks whether the parcel was mowed at least once: balanced accuracy = (sensitivity + specificity) / 2
over the parcels of the time series; a parcel of the series absent from the truth was not mowed.

Crop: accuracy, macro-F1, the expected calibration error of the top-1 probability over **15 equal-width bins**
(ECE = sum over bins of |bin| / n * |accuracy(bin) - mean probability(bin)|), and the coverage and precision
of predictions with probability >= 0.9. Accuracy carries a 95 % Wilson interval;
:func:`crop_bootstrap_intervals` gives every crop figure a 95 % bootstrap interval (over groups, e.g. farms,
when parcels of a group are alike).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s3tr.markers.table import MarkerInputError, read_dates

__all__ = [
    "crop_bootstrap_intervals",
    "evaluate_crop",
    "evaluate_crop_files",
    "evaluate_mowing",
    "evaluate_mowing_files",
    "expected_calibration_error",
    "match_events",
    "wilson_interval",
]

logger = logging.getLogger(__name__)


def _require(df: pd.DataFrame, cols: Iterable[str], what: str) -> pd.DataFrame:
    lower = {str(c).lower(): c for c in df.columns}
    missing = [c for c in cols if c not in lower]
    if missing:
        raise MarkerInputError(f"{what}: missing column(s) {missing} (found {list(df.columns)})")
    out = df[[lower[c] for c in cols]].copy()
    out.columns = list(cols)
    return out


def match_events(
    starts: np.ndarray, ends: np.ndarray, truth: np.ndarray, *, tolerance_days: int = 10
) -> list[tuple[int, int]]:
    """One-to-one matches ``(truth index, event index)`` for one parcel.

    All arguments are ``datetime64[D]`` arrays; events are ``[starts[i], ends[i]]``.
    """
    tol = np.timedelta64(int(tolerance_days), "D")
    used = np.zeros(len(starts), dtype=bool)
    pairs = []
    for ti in np.argsort(truth, kind="stable"):
        d = truth[ti]
        ok = ~used & (starts - tol <= d) & (d <= ends + tol)
        if ok.any():
            cand = np.flatnonzero(ok)
            ei = int(cand[np.argmin(ends[cand])])
            used[ei] = True
            pairs.append((int(ti), ei))
    return pairs


def evaluate_mowing(
    events_df: pd.DataFrame,
    truth_df: pd.DataFrame,
    timeseries_parcels: Iterable[str] | None = None,
    *,
    tolerance_days: int = 10,
    sources: tuple[str, str] = ("events", "truth"),
) -> dict[str, Any]:
    """Event and season scores of detected mowing events.

    Parameters
    ----------
    events_df
        ``parcel_id, start, end`` (dates or YYYY-MM-DD strings).
    truth_df
        ``parcel_id, date``: one row per true mowing; a row without a date names a parcel that was not
        mowed (so that a truth file can list the whole scored set).
    timeseries_parcels
        The parcels the detector saw; those absent from the truth were not mowed. Default: the union of the
        parcels of ``events_df`` and ``truth_df``. Truth rows of parcels outside this set are not scored.
        Without it, and without dateless truth rows, the never-mowed parcels without a detection are
        unknown: the season specificity and balanced accuracy are then NaN (with a warning), not a
        figure biased towards 0.
    tolerance_days
        Matching tolerance in days.
    sources
        Names of the two tables in messages (their files).

    Returns
    -------
    dict
        ``tp, fp, fn, precision, recall, f1, n_parcels, season_balanced_accuracy, season_sensitivity,
        season_specificity, n_truth_parcels_unscored``.

    Raises
    ------
    MarkerInputError
        When a column is missing or a date cannot be read (the rows are named): a score computed without
        them would mislead.
    """
    ev = _require(events_df, ("parcel_id", "start", "end"), sources[0])
    tr = _require(truth_df, ("parcel_id", "date"), sources[1])
    ev["parcel_id"] = ev["parcel_id"].astype(str)
    tr["parcel_id"] = tr["parcel_id"].astype(str)
    dateless = tr["date"].isna() | (tr["date"].astype(str).str.strip() == "")
    listed_unmown = set(tr.loc[dateless, "parcel_id"])
    tr = tr[~dateless].copy()
    for df, cols, what in ((ev, ("start", "end"), sources[0]), (tr, ("date",), sources[1])):
        for c in cols:
            df[c] = _days(df[c], f"{what}, column {c}")
    parcels = (
        {str(p) for p in timeseries_parcels}
        if timeseries_parcels is not None
        else set(ev["parcel_id"]) | set(tr["parcel_id"]) | listed_unmown
    )
    season_known = timeseries_parcels is not None or bool(listed_unmown)
    if not season_known:
        logger.warning(
            "season specificity needs the parcels the detector saw: pass the time series (--timeseries) "
            "or list the never-mowed parcels in the truth with an empty date; reported as NaN"
        )
    unscored = sorted(set(tr["parcel_id"]) - parcels)
    if unscored:
        logger.warning("truth names %d parcel(s) absent from the time series; not scored", len(unscored))
    tr = tr[tr["parcel_id"].isin(parcels)]
    ev = ev[ev["parcel_id"].isin(parcels)]
    ev_g = dict(tuple(ev.groupby("parcel_id")))
    tr_g = dict(tuple(tr.groupby("parcel_id")))
    tp = fp = fn = 0
    s_tp = s_fn = s_tn = s_fp = 0
    for p in parcels:
        e = ev_g.get(p)
        t = tr_g.get(p)
        n_e = 0 if e is None else len(e)
        n_t = 0 if t is None else len(t)
        m = 0
        if n_e and n_t:
            m = len(
                match_events(
                    e["start"].to_numpy(),
                    e["end"].to_numpy(),
                    t["date"].to_numpy(),
                    tolerance_days=tolerance_days,
                )
            )
        tp += m
        fp += n_e - m
        fn += n_t - m
        if n_t:
            s_tp += n_e > 0
            s_fn += n_e == 0
        else:
            s_fp += n_e > 0
            s_tn += n_e == 0
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    sens = s_tp / (s_tp + s_fn) if s_tp + s_fn else float("nan")
    spec = s_tn / (s_tn + s_fp) if season_known and s_tn + s_fp else float("nan")
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_parcels": len(parcels),
        "season_sensitivity": sens,
        "season_specificity": spec,
        # One class only (no never-mowed parcel): the sensitivity alone; unknown specificity: NaN.
        "season_balanced_accuracy": float(np.nanmean([sens, spec])) if season_known else float("nan"),
        "n_truth_parcels_unscored": len(unscored),
        "tolerance_days": tolerance_days,
    }


def _days(values: pd.Series, what: str) -> np.ndarray:
    """Dates as ``datetime64[D]`` (:func:`~s3tr.markers.table.read_dates`: ISO 8601, else day first)."""
    parsed, day_first = read_dates(values)
    bad = parsed.isna() & values.notna()
    if bad.any():
        rows = [int(i) + 1 for i in np.flatnonzero(bad.to_numpy())]
        shown = ", ".join(map(str, rows[:5])) + (f" ... ({len(rows)} rows)" if len(rows) > 5 else "")
        example = values[bad].iloc[0]
        raise MarkerInputError(f"{what}: unreadable date {example!r} on data row(s) {shown} (use YYYY-MM-DD)")
    if day_first.any():
        logger.warning("%s: %d date(s) not in YYYY-MM-DD, read day first", what, int(day_first.sum()))
    return parsed.to_numpy().astype("datetime64[D]")


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"parcel_id": str})
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MarkerInputError(f"cannot read the {what} file {path}: {exc}") from exc


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def expected_calibration_error(probability: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE of top-1 probabilities over ``n_bins`` equal-width bins on [0, 1] (right-closed; 0 in bin 1)."""
    probability = np.asarray(probability, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if probability.size == 0:
        return float("nan")
    bins = np.clip(np.ceil(probability * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - probability[sel].mean())
    return float(ece)


def evaluate_crop(
    pred_df: pd.DataFrame, labels_df: pd.DataFrame, *, threshold: float = 0.9
) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE (15 bins) and coverage / precision at ``probability >= threshold``.

    Parameters
    ----------
    pred_df
        ``parcel_id, predicted, probability`` (as written by ``crop predict``).
    labels_df
        ``parcel_id, label``. Labelled parcels without a prediction (absent, or ``not_enough_data``) count as
        wrong for accuracy and macro-F1 and are reported as ``n_unpredicted``.
    """
    from sklearn.metrics import f1_score

    pr = _require(pred_df, ("parcel_id", "predicted", "probability"), "predictions")
    lb = _require(labels_df, ("parcel_id", "label"), "labels")
    pr["parcel_id"] = pr["parcel_id"].astype(str)
    lb["parcel_id"] = lb["parcel_id"].astype(str)
    lb["label"] = lb["label"].astype(str)
    df = lb.merge(pr, on="parcel_id", how="left")
    has = df["predicted"].notna() & df["probability"].notna()
    pred = df["predicted"].where(has, "<none>").astype(str)
    correct = (pred == df["label"]).to_numpy()
    n = len(df)
    k = int(correct.sum())
    prob = df.loc[has, "probability"].to_numpy(dtype=float)
    corr_has = correct[has.to_numpy()]
    high = prob >= threshold
    lo, hi = wilson_interval(k, n)
    return {
        "n": n,
        "n_unpredicted": int((~has).sum()),
        "accuracy": k / n if n else float("nan"),
        "accuracy_ci95": [lo, hi],
        "macro_f1": float(f1_score(df["label"], pred, average="macro", labels=sorted(df["label"].unique())))
        if n
        else float("nan"),
        "ece_15_bins": expected_calibration_error(prob, corr_has, 15),
        "threshold": threshold,
        "coverage_at_threshold": float(high.sum() / n) if n else float("nan"),
        "precision_at_threshold": float(corr_has[high].mean()) if high.any() else float("nan"),
    }


def crop_bootstrap_intervals(
    pred_df: pd.DataFrame,
    labels_df: pd.DataFrame,
    *,
    groups: pd.Series | None = None,
    threshold: float = 0.9,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95 % percentile intervals of the :func:`evaluate_crop` figures, by bootstrap.

    Parameters
    ----------
    pred_df, labels_df
        As for :func:`evaluate_crop` (unpredicted labelled parcels count as wrong, as there).
    groups
        ``parcel_id -> group``: whole groups are resampled (a farm's parcels are sown and managed alike, so
        they are not independent draws); default each parcel alone.
    threshold, n_boot, seed
        Probability threshold of the coverage figures, resamples, random seed.

    Returns
    -------
    dict
        ``<figure>_ci95: [low, high]`` for ``accuracy``, ``macro_f1``, ``ece_15_bins``,
        ``coverage_at_threshold`` and ``precision_at_threshold``.
    """
    pr = _require(pred_df, ("parcel_id", "predicted", "probability"), "predictions")
    lb = _require(labels_df, ("parcel_id", "label"), "labels")
    df = lb.astype({"parcel_id": str, "label": str}).merge(
        pr.astype({"parcel_id": str}), on="parcel_id", how="left"
    )
    has = (df["predicted"].notna() & df["probability"].notna()).to_numpy()
    label = df["label"].to_numpy()
    correct = (df["predicted"].where(has, "<none>").astype(str).to_numpy() == label).astype(float)
    prob = np.where(has, df["probability"].to_numpy(dtype=float), 0.0)
    high = has & (prob >= threshold)
    bins = np.clip(np.ceil(prob * 15).astype(int) - 1, 0, 14)
    classes, label_idx = np.unique(label, return_inverse=True)
    # Predictions of a class no parcel has count for no class's F1, as in evaluate_crop.
    index = {c: i for i, c in enumerate(classes)}
    said_idx = np.array(
        [index.get(str(p), -1) if h else -1 for p, h in zip(df["predicted"], has, strict=True)]
    )
    said_known = said_idx >= 0
    if groups is None:
        group_idx = np.arange(len(df))
    else:
        keys = groups.rename(index=str).reindex(df["parcel_id"]).to_numpy(dtype=object)
        # A parcel without a group is a group of its own.
        keys = np.where(pd.isna(keys), "\0" + df["parcel_id"].to_numpy(dtype=object), keys)
        group_idx = np.unique(keys.astype(str), return_inverse=True)[1]
    n_groups = int(group_idx.max()) + 1 if len(df) else 0
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot if n_groups else 0):
        w = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[group_idx].astype(float)
        total = w.sum()
        tp = np.bincount(label_idx, weights=w * correct, minlength=classes.size)
        true = np.bincount(label_idx, weights=w, minlength=classes.size)
        said = np.bincount(said_idx[said_known], weights=w[said_known], minlength=classes.size)
        present = true > 0
        f1 = 2 * tp[present] / (true[present] + said[present])
        wh = w * has
        ece = 0.0
        for b in np.unique(bins[has]):
            sel = has & (bins == b)
            mass = w[sel].sum()
            if mass:
                ece += mass / wh.sum() * abs((w * correct)[sel].sum() / mass - (w * prob)[sel].sum() / mass)
        wt = (w * high).sum()
        draws.append(
            (
                (w * correct).sum() / total,
                f1.mean(),
                ece,
                wt / total,
                (w * high * correct).sum() / wt if wt else np.nan,
            )
        )
    names = ("accuracy", "macro_f1", "ece_15_bins", "coverage_at_threshold", "precision_at_threshold")
    if not draws:
        return {f"{k}_ci95": [float("nan"), float("nan")] for k in names}
    lo, hi = np.nanpercentile(np.asarray(draws, dtype=float), [2.5, 97.5], axis=0)
    return {f"{k}_ci95": [float(a), float(b)] for k, a, b in zip(names, lo, hi, strict=True)}


def _write_json(result: dict[str, Any], out: str | Path | None) -> None:
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2, default=float) + "\n")


def evaluate_mowing_files(
    events: str | Path,
    truth: str | Path,
    *,
    timeseries: str | Path | None = None,
    tolerance_days: int = 10,
    json_out: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`evaluate_mowing` on CSV files; the parcels of ``timeseries`` (if given) are the scored set."""
    ev = _read_csv(events, "events")
    tr = _read_csv(truth, "truth")
    parcels = None
    if timeseries is not None:
        from s3tr.markers.table import read_timeseries

        parcels = read_timeseries(timeseries)["parcel_id"].unique().tolist()
    result = evaluate_mowing(
        ev, tr, parcels, tolerance_days=tolerance_days, sources=(str(events), str(truth))
    )
    _write_json(result, json_out)
    return result


def evaluate_crop_files(
    predictions: str | Path, labels: str | Path, *, json_out: str | Path | None = None
) -> dict[str, Any]:
    """:func:`evaluate_crop` on CSV files, optionally writing the result as JSON."""
    result = evaluate_crop(_read_csv(predictions, "predictions"), _read_csv(labels, "labels"))
    _write_json(result, json_out)
    return result

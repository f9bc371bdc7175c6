"""Markers: dated evidence with a confidence, computed from the per-parcel time series.

One module per marker (``mowing``, ``activity``, ``bare_soil``, ``crop``), all reading the long table of
:mod:`s3tr.markers.table`. :func:`compute_evidence` gathers them into the one row per parcel that the decision
stage reads; its column names are a contract (see ``EVIDENCE_COLUMNS``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s3tr.frames import isin
from s3tr.markers.activity import ActivityParams, detect_activity
from s3tr.markers.bare_soil import BareSoilParams, bare_soil_marker, detect_bare_soil
from s3tr.markers.crop import CropFeatureConfig, CropModel, CropModelError, homogeneity, train_crop_model
from s3tr.markers.mowing import MowingParams, MowingResult, detect_mowing, mowing_marker
from s3tr.markers.table import (
    MarkerInputError,
    TimeSeriesFileError,
    normalize_timeseries,
    parcel_quality,
    read_timeseries,
)

__all__ = [
    "EVIDENCE_COLUMNS",
    "MARKER_VERSION",
    "ActivityParams",
    "BareSoilParams",
    "CropFeatureConfig",
    "CropModel",
    "CropModelError",
    "MarkerInputError",
    "MowingParams",
    "MowingResult",
    "TimeSeriesFileError",
    "bare_soil_marker",
    "compute_evidence",
    "default_parameters",
    "detect_activity",
    "detect_bare_soil",
    "detect_mowing",
    "homogeneity",
    "mowing_marker",
    "normalize_timeseries",
    "parcel_quality",
    "read_timeseries",
    "run_crop_predict",
    "run_crop_train",
    "run_mowing",
    "train_crop_model",
]

logger = logging.getLogger(__name__)

#: Version of the marker algorithms and their default parameters, recorded with every decision. A nightly run
#: re-decides every parcel when it changes, so it must change with anything a marker returns:
#: tests/markers/test_version.py fails when the default parameters change and it does not.
MARKER_VERSION = "markers-0.5.0"


def default_parameters() -> dict[str, object]:
    """The markers' default parameters as plain data: with the code, what ``MARKER_VERSION`` stands for.

    The activity parameters hold the mowing and bare-soil ones (their scorers' coefficients included).
    """
    return {"activity": asdict(ActivityParams()), "crop_features": asdict(CropFeatureConfig())}


EVIDENCE_COLUMNS = [
    "parcel_id",
    "n_valid",
    "max_gap_days",
    "mowing_count",
    "mowing_dates",
    "mowing_intervals",
    "mowing_confidence",
    "mowing_confidences",
    "activity",
    "activity_confidence",
    "activity_status",
    "bare_soil_count",
    "bare_soil_dates",
    "bare_soil_confidence",
    "bare_soil_confidences",
    "bare_soil_doubts",
    "crop_predicted",
    "crop_probability",
    "crop_second",
    "crop_second_probability",
    "homogeneity",
    "marker_version",
    "model_version",
]


def _ensure_normalized(table: pd.DataFrame) -> pd.DataFrame:
    if table.attrs.get("normalized"):
        return table
    out = normalize_timeseries(table, source=str(table.attrs.get("source", "<table>")))
    out.attrs["normalized"] = True
    return out


def _joined_dates(events: pd.DataFrame) -> pd.Series:
    if events.empty:
        return pd.Series(dtype=object)
    # Dates formatted once for all the events, not once per parcel (that was a tenth of the markers stage).
    ev = events.sort_values("start")
    return pd.to_datetime(ev["start"]).dt.strftime("%Y-%m-%d").groupby(ev["parcel_id"]).agg(";".join)


def _joined_confidences(events: pd.DataFrame) -> pd.Series:
    """Each event's own confidence (3 decimals), ``;``-joined in the order of the dates and intervals."""
    return _joined_column(events, "confidence", "{:.3f}".format)


def _joined_column(events: pd.DataFrame, column: str, fmt: Callable[[Any], str] = str) -> pd.Series:
    """Each event's ``column`` formatted by ``fmt``, ``;``-joined per parcel in the order of the dates."""
    if events.empty:
        return pd.Series(dtype=object)
    ev = events.sort_values("start")
    return ev[column].map(fmt).groupby(ev["parcel_id"]).agg(";".join)


def _joined_intervals(events: pd.DataFrame) -> pd.Series:
    """``start/end`` (ISO 8601 intervals) of each parcel's events, ``;``-joined in time order."""
    if events.empty:
        return pd.Series(dtype=object)
    ev = events.sort_values("start")
    text = (
        pd.to_datetime(ev["start"]).dt.strftime("%Y-%m-%d")
        + "/"
        + pd.to_datetime(ev["end"]).dt.strftime("%Y-%m-%d")
    )
    return text.groupby(ev["parcel_id"]).agg(";".join)


def compute_evidence(
    table: pd.DataFrame,
    declarations: pd.DataFrame,
    *,
    crop_model: CropModel | None = None,
    season: tuple[str, str] = ("04-01", "10-31"),
    mowing_params: MowingParams | None = None,
) -> pd.DataFrame:
    """All marker evidence, one row per declared parcel.

    Parameters
    ----------
    table
        The long time-series table (raw or normalised); ``parcel_id`` = the declaration's ``id_parcel``.
    declarations
        ``id_parcel, code_cultu, code_group`` (extra columns ignored). Parcels declared but absent from the
        table get ``n_valid = 0`` and ``activity_status = "not_enough_data"``.
    crop_model
        A trained :class:`CropModel`; without it the ``crop_*`` columns are empty (None / NaN).
    season
        Monitoring window ``(start, end)`` as ``MM-DD`` (each parcel's year) or ``YYYY-MM-DD``.
    mowing_params
        Mowing detector parameters (default :class:`MowingParams` with ``season``).

    Returns
    -------
    pandas.DataFrame
        Columns ``EVIDENCE_COLUMNS``: ``parcel_id`` (str); ``n_valid`` (int, clear dates in the season);
        ``max_gap_days`` (float, days, window edges count); ``mowing_count`` (int); ``mowing_dates`` (str,
        ``;``-joined YYYY-MM-DD event starts, "" when none); ``mowing_intervals`` (str, the same events as
        ``start/end`` ISO 8601 intervals: the mowing happened after ``start`` and by ``end``);
        ``mowing_confidence`` (float 0..1, best event, 0 when none); ``mowing_confidences`` (str, each event's
        own confidence, ``;``-joined in the order of the dates); ``activity`` (bool);
        ``activity_confidence`` (0..1, confidence in the stated answer);
        ``activity_status`` (``ok`` or ``not_enough_data``); ``bare_soil_count``, ``bare_soil_dates``,
        ``bare_soil_confidence``, ``bare_soil_confidences`` (as for mowing); ``bare_soil_doubts`` (str,
        ``;``-joined like the confidences: why each event is no proof of a ploughing, ``no_green_cover``,
        ``dry_vegetation`` or ``single_date``, empty when it is one); ``crop_predicted``,
        ``crop_second`` (str or None), ``crop_probability``, ``crop_second_probability`` (float or NaN);
        ``homogeneity`` (mean within-parcel NDVI standard deviation, NaN when unknown); ``marker_version``;
        ``model_version`` (None without model).
    """
    table = _ensure_normalized(table)
    dec_cols = {c.lower(): c for c in declarations.columns}
    if "id_parcel" not in dec_cols:
        raise MarkerInputError(f"declarations need an id_parcel column (found {list(declarations.columns)})")
    ids = declarations[dec_cols["id_parcel"]].astype(str).drop_duplicates().tolist()
    known = set(table["parcel_id"].unique())
    absent = [p for p in ids if p not in known]
    if absent:
        logger.warning(
            "%d declared parcel(s) have no time series (e.g. %s)", len(absent), ", ".join(absent[:5])
        )
    sub = table[isin(table["parcel_id"], ids)]
    sub.attrs.update(table.attrs)

    mp = (mowing_params or MowingParams()).with_(season=season)
    mow = mowing_marker(sub, params=mp)
    soil = bare_soil_marker(sub, params=BareSoilParams(season=season))
    act = detect_activity(
        sub,
        params=ActivityParams(window=season, mowing=mp),
        mowing_events=mow.events,
        bare_soil_events=soil.events,
        mowing_status=mow.status,
    ).set_index("parcel_id")
    hom = homogeneity(sub, season=season)

    out = pd.DataFrame({"parcel_id": ids}).set_index("parcel_id", drop=False)
    out["n_valid"] = act["n_valid"].reindex(out.index).fillna(0).astype(int)
    out["max_gap_days"] = act["max_gap_days"].reindex(out.index).astype(float)
    for prefix, ev in (("mowing", mow.events), ("bare_soil", soil.events)):
        g = ev.groupby("parcel_id") if not ev.empty else None
        out[f"{prefix}_count"] = (g.size() if g is not None else pd.Series(dtype=int)).reindex(out.index)
        out[f"{prefix}_count"] = out[f"{prefix}_count"].fillna(0).astype(int)
        out[f"{prefix}_dates"] = _joined_dates(ev).reindex(out.index).fillna("").astype(object)
        if prefix == "mowing":
            out["mowing_intervals"] = _joined_intervals(ev).reindex(out.index).fillna("").astype(object)
        conf = g["confidence"].max() if g is not None else pd.Series(dtype=float)
        out[f"{prefix}_confidence"] = conf.reindex(out.index).fillna(0.0).astype(float)
        # A decision about one event (a cut in the fallow's protected period) needs that event's confidence.
        out[f"{prefix}_confidences"] = _joined_confidences(ev).reindex(out.index).fillna("").astype(object)
    # Why each soil-like event is no proof of a ploughing ("" when it is one), for the instructor.
    out["bare_soil_doubts"] = (
        _joined_column(soil.events, "doubt").reindex(out.index).fillna("").astype(object)
    )
    out["activity"] = act["activity"].reindex(out.index).fillna(False).astype(bool)
    out["activity_confidence"] = act["confidence"].reindex(out.index).fillna(0.0).astype(float)
    status = act["status"].reindex(out.index).fillna("not_enough_data")
    out["activity_status"] = status.where(status == "ok", "not_enough_data").astype(object)

    out["crop_predicted"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["crop_probability"] = np.nan
    out["crop_second"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    out["crop_second_probability"] = np.nan
    if crop_model is not None and len(sub):
        pred = crop_model.predict(sub).set_index("parcel_id")
        for src, dst in (
            ("predicted", "crop_predicted"),
            ("probability", "crop_probability"),
            ("second", "crop_second"),
            ("second_probability", "crop_second_probability"),
        ):
            vals = pred[src].reindex(out.index)
            out[dst] = (
                vals.astype(object).where(vals.notna(), None)
                if dst
                in (
                    "crop_predicted",
                    "crop_second",
                )
                else vals.astype(float)
            )
    out["homogeneity"] = hom.reindex(out.index).astype(float)
    out["marker_version"] = MARKER_VERSION
    out["model_version"] = crop_model.version if crop_model is not None else None
    return out[EVIDENCE_COLUMNS].reset_index(drop=True)


def _write_table(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d")
    if path.suffix.lower() in {".parquet", ".pq"}:
        out.to_parquet(path, index=False)
    else:
        out.to_csv(path, index=False, float_format="%.4f")
    return path


def run_mowing(
    ts_path: str | Path, out_path: str | Path, *, params: MowingParams | None = None
) -> pd.DataFrame:
    """``s3tr markers mowing``: read a time series, write ``parcel_id, start, end, confidence``.

    Returns the events as written; ``attrs["n_parcels"]`` and ``attrs["status_counts"]`` (status -> number
    of parcels: ``ok``, ``not_enough_data``, ...) summarise the run for the CLI.
    """
    table = read_timeseries(ts_path)
    result = mowing_marker(table, params=params or MowingParams())
    _write_table(result.events, out_path)
    events = result.events.copy()
    events.attrs = {
        "n_parcels": len(result.status),
        "status_counts": {str(k): int(v) for k, v in result.status["status"].value_counts().items()},
    }
    logger.info("mowing: %d event(s) on %d parcel(s) -> %s", len(events), len(result.status), out_path)
    return events


def run_crop_train(
    ts_path: str | Path,
    labels_path: str | Path,
    model_path: str | Path,
    *,
    seed: int = 0,
    classifier: str = "auto",
) -> CropModel:
    """``s3tr markers crop train``: train on ``parcel_id, label`` and save model + card to ``model_path``.

    An optional ``group`` column in the labels (e.g. the parcel of each pixel, or the farm) keeps the
    calibration folds from splitting a group. Labels naming unknown parcels are reported and skipped.
    ``classifier`` is that of :func:`~s3tr.markers.crop.train_crop_model`.
    """
    table = read_timeseries(ts_path)
    labels_path = Path(labels_path)
    if not labels_path.is_file():
        raise MarkerInputError(f"labels file not found: {labels_path} (CSV with parcel_id,label)")
    labels = pd.read_csv(labels_path, dtype=str)
    # An optional `group` column (e.g. the parcel of each pixel) keeps calibration folds apart.
    groups = labels.set_index("parcel_id")["group"] if {"parcel_id", "group"} <= set(labels.columns) else None
    model = train_crop_model(
        table,
        labels,
        seed=seed,
        name=Path(model_path).stem,
        training_data=f"{ts_path} + {labels_path}",
        groups=groups,
        classifier=classifier,
    )
    model.save(model_path)
    return model


def run_crop_predict(ts_path: str | Path, model_path: str | Path, out_path: str | Path) -> pd.DataFrame:
    """``s3tr markers crop predict``: write ``parcel_id, predicted, probability, second, second_probability``.

    Returns the predictions (with a ``status`` column) as written.
    """
    model = CropModel.load(model_path)
    pred = model.predict(read_timeseries(ts_path))
    _write_table(pred, out_path)
    return pred

"""Crop-group classifier with calibrated probabilities, and within-parcel homogeneity.

Features do not depend on the calendar year: every series is placed on a *day of season* axis (days since
the season start of its own year), each index is interpolated linearly over the clear dates onto fixed
bins (``bin_days`` apart), then we add a smoothed copy, its first and second differences, multi-scale slopes,
the running integral and phenology metrics (peak value and day, green-up and senescence days at half
amplitude, integral, percentiles, steepest rise and fall). Two classifiers read these, both calibrated so
that ``probability >= 0.9`` means what it says: extremely randomised trees with probabilities calibrated by
cross-validation (:class:`sklearn.calibration.CalibratedClassifierCV`, :func:`make_classifier`), and those
trees stacked with random-convolution and kernel ridge heads by a logistic regression
(:class:`~s3tr.markers.stack.RocketStackClassifier`, the default of :func:`train_crop_model` for training
sets up to :data:`STACK_MAX_ROWS` rows).

A saved model is two files: ``<name>.joblib`` (the fitted estimator and feature configuration) and
``<name>.json`` (the model card: training data, metrics, date, code version, feature list); loading checks
that the card's ``format_version`` matches this code.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from s3tr.errors import S3trError
from s3tr.markers.table import (
    MarkerInputError,
    iter_series,
    season_bounds,
    season_windows,
    warn_one_season_only,
)

__all__ = [
    "CLASSIFIERS",
    "FORMAT_VERSION",
    "STACK_MAX_ROWS",
    "CropFeatureConfig",
    "CropModel",
    "CropModelError",
    "build_features",
    "classifier_for",
    "homogeneity",
    "make_classifier",
    "train_crop_model",
]

logger = logging.getLogger(__name__)

#: Bumped when the saved layout or the features change in a way an old model cannot follow.
#: 2: second differences, multi-scale slopes and running integral added; ExtraTrees + isotonic (5 folds).
FORMAT_VERSION = 2
PREDICT_COLUMNS = ["parcel_id", "predicted", "probability", "second", "second_probability", "status"]


class CropModelError(S3trError, ValueError):
    """A crop model file is missing, corrupt, or was saved by an incompatible version."""


@dataclass(frozen=True)
class CropFeatureConfig:
    """How a series becomes a feature vector.

    Attributes
    ----------
    columns
        Table columns to use (indices or bands); each gets the full feature set.
    season_start
        ``MM-DD``: day 0 of the season in each parcel's year.
    bin_days
        Spacing of the day-of-season sampling points (days).
    n_bins
        Number of sampling points (``n_bins * bin_days`` days covered).
    min_valid
        Parcels with fewer clear observations are not classified (status ``not_enough_data``).
    """

    columns: tuple[str, ...] = ("ndvi",)
    season_start: str = "01-01"
    bin_days: int = 8
    n_bins: int = 46
    min_valid: int = 3

    def feature_names(self) -> list[str]:
        """Names of the columns of :func:`build_features`."""
        names: list[str] = []
        for c in self.columns:
            names += [f"{c}_b{k:02d}" for k in range(self.n_bins)]
            names += [f"{c}_s{k:02d}" for k in range(self.n_bins)]
            names += [f"{c}_d{k:02d}" for k in range(self.n_bins - 1)]
            names += [f"{c}_dd{k:02d}" for k in range(self.n_bins - 2)]
            names += [f"{c}_lag{lag}_{k:02d}" for lag in _LAGS for k in range(self.n_bins - lag)]
            names += [f"{c}_cum{k:02d}" for k in range(self.n_bins)]
            names += [f"{c}_{m}" for m in _PHENO]
        return names


#: Bin lags of the multi-scale slopes (value at bin k + lag minus value at bin k).
_LAGS = (2, 3, 4, 6, 8)
#: Value given to features that cannot be computed (a column without any clear date); trees split on it.
_MISSING = -9.0

_PHENO = (
    "max",
    "argmax",
    "min",
    "mean",
    "std",
    "amp",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "integral",
    "greenup",
    "senescence",
    "length",
    "rise",
    "rise_day",
    "fall",
    "fall_day",
    "n_peaks",
)


def _smooth(x: np.ndarray) -> np.ndarray:
    """Binomial (1 2 1)^2 smoothing along the last axis, edges padded by reflection."""
    k = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    pad = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(2, 2)], mode="edge")
    return sum(k[i] * pad[..., i : i + x.shape[-1]] for i in range(5))


def _phenology(s: np.ndarray, bin_days: int) -> np.ndarray:
    """Phenology metrics of smoothed curves ``s`` (n, bins) -> (n, len(_PHENO))."""
    b = s.shape[1]
    days = np.arange(b) * bin_days
    mx, mn = s.max(1), s.min(1)
    amax = s.argmax(1)
    amp = mx - mn
    half = mn + 0.5 * amp
    above = s >= half[:, None]
    idx = np.arange(b)[None, :]
    before = above & (idx <= amax[:, None])
    after = ~above & (idx > amax[:, None])
    greenup = np.where(before.any(1), before.argmax(1), amax) * bin_days
    sen_idx = np.where(after.any(1), after.argmax(1), b - 1)
    senescence = sen_idx * bin_days
    d = np.diff(s, axis=1)
    peaks = ((d[:, :-1] > 0) & (d[:, 1:] <= 0) & (s[:, 1:-1] > half[:, None])).sum(1)
    pct = np.percentile(s, [10, 25, 50, 75, 90], axis=1).T
    return np.column_stack(
        [
            mx,
            days[amax],
            mn,
            s.mean(1),
            s.std(1),
            amp,
            pct,
            np.clip(s - mn[:, None], 0, None).sum(1) * bin_days / 100.0,
            greenup,
            senescence,
            senescence - greenup,
            d.max(1),
            d.argmax(1) * bin_days,
            d.min(1),
            d.argmin(1) * bin_days,
            peaks,
        ]
    )


def _curves(
    table: pd.DataFrame, cfg: CropFeatureConfig
) -> tuple[list[str], dict[str, np.ndarray], np.ndarray]:
    """Interpolated day-of-season curves: parcel ids, column -> (n, n_bins) arrays, n_valid per parcel."""
    pids: list[str] = []
    n_valid: list[int] = []
    curves: dict[str, list[np.ndarray]] = {c: [] for c in cfg.columns}
    grid = np.arange(cfg.n_bins, dtype=float) * cfg.bin_days
    # The crop season is a year from its start: it ends the day before the next start.
    year = (cfg.season_start, str(np.datetime64(f"2001-{cfg.season_start}") - np.timedelta64(1, "D"))[5:])
    spanning: list[tuple[str, np.datetime64]] = []
    for s in iter_series(table):
        pids.append(s.parcel_id)
        if s.dates.size == 0:
            n_valid.append(0)
            for c in cfg.columns:
                curves[c].append(np.full(cfg.n_bins, np.nan))
            continue
        start, _ = season_bounds((cfg.season_start, cfg.season_start), s.dates)
        if s.dates[s.dates.size // 2] < start:
            # The median date falls before this year's start: the season began the year before.
            start = np.datetime64(f"{int(str(start)[:4]) - 1}{str(start)[4:]}", "D")
        if len(season_windows(year, s.dates[s.valid])) > 1:
            spanning.append((s.parcel_id, start))
        dos = (s.dates - start).astype(np.int64).astype(float)
        nv = 0
        for c in cfg.columns:
            v = s.values.get(c)
            if v is None:
                curves[c].append(np.full(cfg.n_bins, np.nan))
                continue
            ok = s.valid & np.isfinite(v)
            if c == "ndvi":
                nv = int(ok.sum())
            if ok.sum() == 0:
                curves[c].append(np.full(cfg.n_bins, np.nan))
            else:
                # Linear between clear dates, flat beyond the first and last one.
                curves[c].append(np.interp(grid, dos[ok], v[ok]))
        n_valid.append(nv if "ndvi" in cfg.columns else int(s.valid.sum()))
    warn_one_season_only("crop group", spanning)
    arrays = {c: np.vstack(v) if v else np.empty((0, cfg.n_bins)) for c, v in curves.items()}
    return pids, arrays, np.asarray(n_valid, dtype=int)


def build_features(table: pd.DataFrame, cfg: CropFeatureConfig = CropFeatureConfig()) -> pd.DataFrame:
    """Feature matrix of every parcel of a normalised table.

    Returns
    -------
    pandas.DataFrame
        Index ``parcel_id``; columns :meth:`CropFeatureConfig.feature_names` (float64, NaN when the column is
        absent or has no clear date) plus ``n_valid`` (int, clear NDVI dates).
    """
    pids, arrays, n_valid = _curves(table, cfg)
    blocks = []
    for c in cfg.columns:
        raw = arrays[c]
        sm = _smooth(raw) if raw.size else raw
        blocks += [
            raw,
            sm,
            np.diff(sm, axis=1),
            np.diff(sm, n=2, axis=1),
            *(raw[:, lag:] - raw[:, :-lag] for lag in _LAGS),
            np.cumsum(raw, axis=1) / cfg.n_bins,
            _phenology(sm, cfg.bin_days) if raw.size else raw[:, :0],
        ]
    x = np.hstack(blocks) if pids else np.empty((0, len(cfg.feature_names())))
    feats = pd.DataFrame(x, index=pd.Index(pids, name="parcel_id"), columns=cfg.feature_names())
    feats["n_valid"] = n_valid
    return feats


def make_classifier(
    *,
    seed: int = 0,
    calibration: str = "isotonic",
    cv: Any = 5,
    n_estimators: int = 400,
    max_features: float = 0.1,
    min_samples_leaf: int = 1,
    n_jobs: int = 2,
    ensemble: bool = True,
) -> Any:
    """The calibrated classifier used by :func:`train_crop_model`.

    Extremely randomised trees (fast on 2 cores, good on many correlated features) wrapped in
    :class:`~sklearn.calibration.CalibratedClassifierCV`: ``cv`` stratified folds (or explicit splits),
    isotonic calibration of each class, the fold models averaged. On UCR Crop (5-fold CV) this takes the
    expected calibration error from about 0.10 (raw trees, under-confident) to 0.027 and accuracy from 0.761
    to 0.775; 5 calibration folds beat 3 (0.770, ECE 0.037). Tried and dropped: gradient boosting (as
    accurate, 20-30x slower on 24 classes), random-kernel (ROCKET-like) features with logistic regression
    (0.725), training-time shifts of the series by +-8 days (0.761) and sigmoid calibration (ECE 0.07-0.08,
    and more honest declarations of rarely seen groups below ``p_red``: 6.0 % against 4.0 % for a group
    seen 25 times, ``benchmarks/quality.py --only rare``); a logistic calibrator on the log of the trees'
    out-of-fold probabilities is as good as isotonic there (4.0 / 0.7 / 1.1 / 0.2 % honest reds for
    groups seen 25 / 50 / 100 / 200 times, against 4.0 / 0.9 / 1.6 / 0.2 %). Stacking these trees with
    MultiRocket-style features (:mod:`s3tr.markers.rocket`) + ridge and two Gaussian-kernel ridge heads
    through a logistic regression does better (:class:`s3tr.markers.stack.RocketStackClassifier`; nested
    5-fold CV: accuracy 0.790, ECE 0.014, coverage at p >= 0.9 0.491 with precision there 0.987;
    ``benchmarks/crop_stack.py``, ``benchmarks/quality.py``): :func:`train_crop_model` uses it up to
    :data:`STACK_MAX_ROWS` training rows and these trees beyond (their memory grows linearly).

    ``ensemble=False`` keeps one forest fitted on all data (calibrated on out-of-fold predictions):
    ``cv`` times smaller on disk, for models shipped in the repository.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import ExtraTreesClassifier

    base = ExtraTreesClassifier(
        n_estimators=n_estimators,
        max_features=max_features,
        min_samples_leaf=min_samples_leaf,
        n_jobs=n_jobs,
        random_state=seed,
    )
    return CalibratedClassifierCV(base, method=calibration, cv=cv, ensemble=ensemble)


@dataclass
class CropModel:
    """A trained crop classifier with its feature configuration and model card.

    Attributes
    ----------
    estimator
        Fitted scikit-learn classifier with ``predict_proba`` and ``classes_``.
    config
        The feature configuration used at training (prediction uses the same).
    card
        The model card (JSON-serialisable dict): training data, metrics, date, code version, features.
    """

    estimator: Any
    config: CropFeatureConfig
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Class labels, as str, in the estimator's order."""
        return [str(c) for c in self.estimator.classes_]

    @property
    def training_parcels(self) -> dict[str, int] | None:
        """Training parcels of each class (from the model card), or None when the card does not say."""
        counts = self.card.get("classes")
        return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else None

    @property
    def version(self) -> str:
        """Model version string (``<name>-<trained date>``) recorded with each decision."""
        return str(self.card.get("model_version", "unversioned"))

    def predict_proba_features(self, feats: pd.DataFrame) -> np.ndarray:
        """Class probabilities (n, n_classes) for a feature matrix from :func:`build_features`."""
        x = np.nan_to_num(feats[self.config.feature_names()].to_numpy(dtype=float), nan=_MISSING)
        return self.estimator.predict_proba(x)

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Top-2 classes with calibrated probabilities for every parcel of a normalised table.

        Returns
        -------
        pandas.DataFrame
            ``parcel_id, predicted, probability, second, second_probability, status``; parcels with fewer than
            ``config.min_valid`` clear dates get ``status="not_enough_data"`` and empty predictions.
        """
        feats = build_features(table, self.config)
        out = pd.DataFrame({"parcel_id": feats.index.astype(str)})
        out["predicted"] = pd.Series([None] * len(out), dtype=object)
        out["probability"] = np.nan
        out["second"] = pd.Series([None] * len(out), dtype=object)
        out["second_probability"] = np.nan
        ok = feats["n_valid"].to_numpy() >= self.config.min_valid
        out["status"] = np.where(ok, "ok", "not_enough_data")
        if ok.any():
            proba = self.predict_proba_features(feats[ok])
            order = np.argsort(-proba, axis=1)
            classes = np.asarray(self.classes, dtype=object)
            rows = np.arange(proba.shape[0])
            out.loc[ok, "predicted"] = classes[order[:, 0]]
            out.loc[ok, "probability"] = proba[rows, order[:, 0]]
            if proba.shape[1] > 1:
                out.loc[ok, "second"] = classes[order[:, 1]]
                out.loc[ok, "second_probability"] = proba[rows, order[:, 1]]
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.joblib`` and the card ``<path>.json``; returns the joblib path."""
        path = Path(path)
        jpath = path if path.suffix == ".joblib" else path.with_suffix(".joblib")
        jpath.parent.mkdir(parents=True, exist_ok=True)
        card = {**self.card, "format_version": FORMAT_VERSION, "features": self.config.feature_names()}
        card["feature_config"] = asdict(self.config)
        joblib.dump(
            {"format_version": FORMAT_VERSION, "estimator": self.estimator, "config": asdict(self.config)},
            jpath,
            compress=3,  # trees compress well; shipped models stay a few MB
        )
        jpath.with_suffix(".json").write_text(json.dumps(card, indent=2, default=str) + "\n")
        return jpath

    @classmethod
    def load(cls, path: str | Path) -> CropModel:
        """Load a model saved by :meth:`save`, checking its format version.

        Raises
        ------
        CropModelError
            When the file is missing or unreadable, or its ``format_version`` differs from this code's.
        """
        path = Path(path)
        jpath = path if path.suffix == ".joblib" else path.with_suffix(".joblib")
        if not jpath.is_file():
            raise CropModelError(f"crop model not found: {jpath} (train one with `s3tr markers crop train`)")
        try:
            blob = joblib.load(jpath)
        except Exception as exc:
            raise CropModelError(f"cannot read crop model {jpath}: {exc}; retrain it") from exc
        version = blob.get("format_version") if isinstance(blob, dict) else None
        if version != FORMAT_VERSION:
            raise CropModelError(
                f"crop model {jpath} has format_version {version!r}, this s3tr reads {FORMAT_VERSION}; "
                "retrain it with `s3tr markers crop train`"
            )
        card_path = jpath.with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        cfg = dict(blob["config"])
        cfg["columns"] = tuple(cfg["columns"])
        config = CropFeatureConfig(**cfg)
        n_in = getattr(blob["estimator"], "n_features_in_", None)
        if n_in is not None and n_in != len(config.feature_names()):
            # Same format version but different feature code: refuse rather than predict garbage.
            raise CropModelError(
                f"crop model {jpath} expects {n_in} features, this code builds "
                f"{len(config.feature_names())}; retrain it with `s3tr markers crop train`"
            )
        return cls(estimator=blob["estimator"], config=config, card=card)


def _code_version() -> str:
    import s3tr

    return str(getattr(s3tr, "__version__", "unknown"))


#: Classifier choices of :func:`train_crop_model` (and ``s3tr markers crop train --classifier``).
CLASSIFIERS = ("auto", "stack", "trees")
#: Largest training set for which ``classifier="auto"`` picks the stack: its dual (kernel) ridge heads hold
#: n x n float64 matrices, a few alive at once while fitting (peak RSS measured through the CLI: 2.5 GB at
#: 7,200 rows, 4.7 GB at 10,000).
STACK_MAX_ROWS = 10_000


def classifier_for(kind: str, *, config: CropFeatureConfig | None = None, seed: int = 0, cv: Any = 5) -> Any:
    """The unfitted classifier ``kind`` (``"stack"`` or ``"trees"``) for features of ``config``.

    ``cv``: folds of its out-of-fold scores or calibration (a number, or explicit ``(train, test)`` splits).
    """
    if kind == "stack":
        from s3tr.markers.stack import RocketStackClassifier

        return RocketStackClassifier.for_config(config or CropFeatureConfig(), seed=seed, cv=cv)
    if kind == "trees":
        return make_classifier(seed=seed, cv=cv)
    raise MarkerInputError(f"unknown classifier {kind!r}; choose stack or trees")


def _check_classifier(classifier: str) -> None:
    if classifier not in CLASSIFIERS:
        raise MarkerInputError(f"unknown classifier {classifier!r}; choose one of {', '.join(CLASSIFIERS)}")


def _choose_classifier(classifier: str, n_rows: int) -> str:
    _check_classifier(classifier)
    if classifier != "auto":
        return classifier
    if n_rows > STACK_MAX_ROWS:
        logger.info(
            "%d training rows > %d: extremely randomised trees instead of the stack", n_rows, STACK_MAX_ROWS
        )
        return "trees"
    return "stack"


def train_crop_model(
    table: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    seed: int = 0,
    config: CropFeatureConfig | None = None,
    estimator: Any | None = None,
    name: str = "crop",
    training_data: str = "",
    groups: pd.Series | None = None,
    classifier: str = "auto",
) -> CropModel:
    """Train a calibrated crop classifier.

    Parameters
    ----------
    table
        Normalised time-series table of the training parcels.
    labels
        ``parcel_id, label`` (str). Labels naming parcels absent from ``table`` are reported and skipped;
        classes with fewer than 3 parcels (too few to calibrate) are dropped with a warning.
    seed
        Random seed (the result is deterministic for a given seed).
    config
        Feature configuration; default NDVI on 46 bins of 8 days from 1 January.
    estimator
        An unfitted scikit-learn classifier; default :func:`make_classifier`.
    name, training_data
        Recorded in the model card.
    groups
        Optional ``parcel_id -> group`` (e.g. the parcel of a pixel, or the farm): the calibration folds of
        the default classifier then never split a group, so that near-duplicates do not make it
        over-confident.
    classifier
        Used when ``estimator`` is None: ``"stack"`` (:class:`~s3tr.markers.stack.RocketStackClassifier`, the
        more accurate and better calibrated), ``"trees"`` (:func:`make_classifier`: smaller on disk, and its
        memory grows linearly with the training rows) or ``"auto"``: the stack up to
        :data:`STACK_MAX_ROWS` training rows, the trees beyond (the stack's kernel matrices grow with the
        square of the rows).

    Raises
    ------
    MarkerInputError
        When ``labels`` lacks ``parcel_id``/``label`` or fewer than two classes remain.
    """
    _check_classifier(classifier)  # before the features are built: a typo fails at once
    cfg = config or CropFeatureConfig()
    cols = {c.lower(): c for c in labels.columns}
    if "parcel_id" not in cols or "label" not in cols:
        raise MarkerInputError(f"labels need columns parcel_id and label (found {list(labels.columns)})")
    lab = labels[[cols["parcel_id"], cols["label"]]].copy()
    lab.columns = ["parcel_id", "label"]
    lab["parcel_id"] = lab["parcel_id"].astype(str)
    lab = lab.dropna(subset=["label"]).drop_duplicates("parcel_id")
    lab["label"] = lab["label"].astype(str)
    feats = build_features(table, cfg)
    unknown = sorted(set(lab["parcel_id"]) - set(feats.index))
    if unknown:
        logger.warning(
            "labels name %d parcel(s) absent from the time series (e.g. %s); skipped",
            len(unknown),
            ", ".join(unknown[:5]),
        )
    lab = lab[lab["parcel_id"].isin(feats.index)]
    lab = lab[feats.loc[lab["parcel_id"], "n_valid"].to_numpy() >= cfg.min_valid]
    counts = lab["label"].value_counts()
    rare = counts[counts < 3].index.tolist()
    if rare:
        logger.warning("classes with fewer than 3 parcels cannot be calibrated and are dropped: %s", rare)
        lab = lab[~lab["label"].isin(rare)]
        counts = counts[counts >= 3]
    if lab["label"].nunique() < 2:
        raise MarkerInputError(
            f"need at least two classes with 3+ labelled parcels having {cfg.min_valid}+ clear dates; "
            f"got {lab['label'].nunique()}"
        )
    x = np.nan_to_num(feats.loc[lab["parcel_id"], cfg.feature_names()].to_numpy(dtype=float), nan=_MISSING)
    y = lab["label"].to_numpy()
    if estimator is not None:
        est = estimator
    else:
        if groups is not None:
            from sklearn.model_selection import StratifiedGroupKFold

            g = groups.reindex(lab["parcel_id"]).fillna("?").astype(str).to_numpy()
            n_folds = int(min(5, counts.min(), len(set(g))))
            cv: Any = list(StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed).split(x, y, g))
        else:
            # Calibration needs every class in every fold: fewer folds when the rarest class is small.
            cv = int(min(5, counts.min()))
        est = classifier_for(_choose_classifier(classifier, len(y)), config=cfg, seed=seed, cv=cv)
    est.fit(x, y)
    today = _dt.date.today().isoformat()
    card = {
        "name": name,
        "model_version": f"{name}-{today}",
        "trained": today,
        "code_version": _code_version(),
        "seed": seed,
        "estimator": repr(est),
        "training_data": training_data,
        "n_parcels": len(lab),
        "n_unknown_labels": len(unknown),
        "classes": {str(k): int(v) for k, v in lab["label"].value_counts().sort_index().items()},
        "metrics": {},
    }
    return CropModel(estimator=est, config=cfg, card=card)


def homogeneity(table: pd.DataFrame, *, season: tuple[str, str] = ("01-01", "12-31")) -> pd.Series:
    """Within-parcel spread: mean of ``ndvi_std`` over the clear dates of the season.

    Returns
    -------
    pandas.Series
        Index ``parcel_id``, float (NDVI units; lower = more homogeneous); NaN when ``ndvi_std`` is absent.
    """
    out = {}
    for s in iter_series(table):
        std = s.values.get("ndvi_std")
        if std is None or s.dates.size == 0:
            out[s.parcel_id] = np.nan
            continue
        start, end = season_bounds(season, s.dates)
        sel = s.valid & np.isfinite(std) & (s.dates >= start) & (s.dates <= end)
        out[s.parcel_id] = float(np.mean(std[sel])) if sel.any() else np.nan
    return pd.Series(out, name="homogeneity", dtype=float).rename_axis("parcel_id")

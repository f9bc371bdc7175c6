"""Mowing events on grassland from the NDVI series (and the reflectance bands when present).

A mowing removes most of the green biomass at once: NDVI falls between two clear observations and grows
back over two to four weeks, while the short-wave infrared (B11) rises as the dry stubble and soil show
through. The event is reported as ``[start, end]``: the last clear observation before the fall and the
first clear observation after it (the field's convention).

Two detectors share the interface:

- ``method="baseline"``: the Sen4CAP L4B rule as summarised in DESIGN.md (drop >= 0.12 between consecutive
  clear observations, lower value <= 0.72, higher >= 0.40, NDVI >= 0.1, 28 days between events). Kept to
  measure ourselves against it.
- ``method="robust"`` (default): every falling run of NDVI is a *candidate*; the sharpest part of the run
  (at most ``max_span_days`` long, each day of it paying ``span_penalty``) is its interval. Each candidate
  is described by a few physical features -- the fall measured from the envelope of the sward before it
  (robust to a single low date in the pre-event window), the level reached, how much and how fast it comes
  back (a cloud or shadow comes back at once, a mowing regrows over weeks), and, when the bands are there,
  the change of blue (haze), red, NIR and SWIR (cut grass) and whether SWIR stays up afterwards -- and
  scored by a logistic model (:class:`MowingScorer`). Single-date dips that come straight back are removed
  first. Candidates above ``threshold`` are events, at most one per ``min_separation_days``; the score is
  the event's confidence. An optional season decision (``parcel_threshold``, off by default) first asks
  whether the parcel was mowed at all -- its candidates' scores combined (``parcel_evidence``) must reach
  ``parcel_threshold`` -- and then gives it its best candidate as an event even below ``threshold``. On the
  Slovak set it trades event F1 for season balanced accuracy (see ``benchmarks/quality.py``), hence off. The
  scorer's coefficients and the threshold were chosen by cross-validation grouped by site on the Slovak
  camera set (``benchmarks/quality.py`` prints the figures and can refit them). Three scorers share the
  candidates: with the bands, with the pipeline's indices only (NDVI, NDMI, BSI -- the SWIR signal of the
  cut reaches NDMI and BSI), and with NDVI alone; each candidate gets the richest one its data allow. With
  NDVI alone no band shows the cut, so that scorer also reads where the fall sits among the observations (at
  the edge of a cloudy spell, straight back up at the next date: the signs of an undetected cloud; see
  ``_context``).

Sentinel-1 columns (``vv``, ``vh``, ``coherence``) are accepted but not used: they were measured to add
nothing: on the survey plots of ``grassland_mowing/train`` (the only S1 series with mowing truth in the
shared data), the change of VV, VH or either coherence band around a candidate separates true from false
candidates with ROC AUC 0.49-0.56, against 0.936 for the S2 score, and adding them to the S2 score takes the
AUC cross-validated by region from 0.935 to 0.931 (``benchmarks/quality.py``, 2026-11-29). The S1 values
there are single pixels, whose speckle a parcel mean would average out, so polygon data could change this; a
rule that no data has checked would only add noise.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from s3tr.markers.table import ParcelSeries, iter_series, season_windows, window_quality

__all__ = [
    "CANDIDATE_FEATURES",
    "MowingParams",
    "MowingResult",
    "MowingScorer",
    "candidate_table",
    "detect_mowing",
    "detect_series",
    "fit_scorer",
    "mowing_marker",
    "season_evidence",
]

logger = logging.getLogger(__name__)

EVENT_COLUMNS = ["parcel_id", "start", "end", "confidence"]
#: ``(start, end, confidence)`` of an event or candidate, dates as ``datetime64[D]``.
Interval = tuple[np.datetime64, np.datetime64, float]
STATUS_COLUMNS = ["parcel_id", "status", "n_valid", "max_gap_days", "n_events", "best_candidate"]

#: Candidate features (the scorers below each use a subset).
CANDIDATE_FEATURES = (
    # The fall itself, from NDVI.
    "pre",
    "low",
    "drop",
    "step",
    "span",
    "rebound",
    "regrowth",
    # Band changes across the fall.
    "d_blue",
    "d_nir",
    "d_swir",
    "d_red",
    "swir_after",
    # Index changes across the fall.
    "d_ndmi",
    "d_bsi",
    "ndmi_after",
    # Where the fall sits among the observations (NDVI only; see _context).
    "gap_after",
    "regrow_rate",
    "n_before",
    "persist",
    "dip_after",
    # How often the sky was clear around the fall (no scorer reads it: see MowingParams.gap_offset).
    "typical_gap",
)
FALL_FEATURES = CANDIDATE_FEATURES[:7]
CONTEXT_FEATURES = CANDIDATE_FEATURES[15:20]
_TYPICAL_GAP = CANDIDATE_FEATURES.index("typical_gap")
#: With NDVI alone, the context of the fall is what tells a cut from an undetected cloud or haze (the bands
#: tell it better: added to the band or index scorers, the context did not raise their grouped-CV F1).
NDVI_FEATURES = (*FALL_FEATURES, *CONTEXT_FEATURES)
#: With the reflectance bands: the fall plus band changes.
BAND_FEATURES = CANDIDATE_FEATURES[:12]
#: What the pipeline's long table carries (indices only): the fall plus NDMI and BSI changes.
INDEX_FEATURES = (*FALL_FEATURES, "d_ndmi", "d_bsi", "ndmi_after")


@dataclass(frozen=True)
class MowingScorer:
    """A logistic model on candidate features: ``p = 1 / (1 + exp(-(b + sum w_k (x_k - m_k) / s_k)))``.

    Attributes
    ----------
    features
        Feature names (from ``CANDIDATE_FEATURES``).
    mean, scale, coef
        Per-feature standardisation and weights.
    intercept
        Bias ``b``.
    """

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability that each candidate is a mowing; ``x`` is (n, len(CANDIDATE_FEATURES)) float."""
        cols = [CANDIDATE_FEATURES.index(f) for f in self.features]
        z = (np.asarray(x, float)[:, cols] - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))


# Fitted on all 44 Slovak camera sites (grassland_mowing/test) by `python benchmarks/quality.py --refit`;
# the honest estimate of their quality is the grouped cross-validation in the same benchmark.
DEFAULT_SCORER_BANDS = MowingScorer(
    features=BAND_FEATURES,
    mean=(
        0.7924,
        0.603,
        0.1894,
        0.1477,
        8.614,
        -0.07356,
        0.05541,
        0.02442,
        -0.04163,
        0.03056,
        0.03215,
        0.01828,
    ),
    scale=(0.09551, 0.1332, 0.1219, 0.1217, 7.329, 0.1144, 0.1141, 0.0274, 0.08018, 0.0728, 0.03297, 0.05668),
    coef=(0.3879, -0.4711, 0.8186, -0.5327, -0.3261, 0.6514, 0.1181, -0.9567, -1.015, 1.473, 1.047, 0.6217),
    intercept=-1.065,
)
DEFAULT_SCORER_INDICES = MowingScorer(
    features=INDEX_FEATURES,
    mean=(0.7924, 0.603, 0.1894, 0.1477, 8.614, -0.07356, 0.05541, -0.1018, 0.1074, -0.09405),
    scale=(0.09551, 0.1332, 0.1219, 0.1217, 7.329, 0.1144, 0.1141, 0.1582, 0.1527, 0.144),
    coef=(0.2817, -0.5948, 0.8704, -0.7516, -0.3418, 0.6476, -0.002442, -0.3552, 1.875, -0.5215),
    intercept=-1.084,
)
DEFAULT_SCORER_NDVI = MowingScorer(
    features=NDVI_FEATURES,
    mean=(0.7924, 0.603, 0.1894, 0.1477, 8.614, -0.07356, 0.05541, 9.519, 0.008623, 4.271, 34.4, 0.01842),
    scale=(0.09551, 0.1332, 0.1219, 0.1217, 7.329, 0.1144, 0.1141, 11.63, 0.01295, 2.183, 22.89, 0.08273),
    coef=(
        0.6641,
        -0.5119,
        1.079,
        0.8488,
        -0.2275,
        0.634,
        0.02374,
        -0.7159,
        -0.9747,
        -0.2834,
        -0.4028,
        -0.3316,
    ),
    intercept=-1.095,
)
#: An NDVI-only scorer without the context features (fitted the same way; benchmarks/quality.py compares).
SCORER_NDVI_FALL_ONLY = MowingScorer(
    features=FALL_FEATURES,
    mean=(0.7924, 0.603, 0.1894, 0.1477, 8.614, -0.07356, 0.05541),
    scale=(0.09551, 0.1332, 0.1219, 0.1217, 7.329, 0.1144, 0.1141),
    coef=(0.4719, -0.2796, 0.6751, 0.9054, -0.3184, 0.1963, -0.05341),
    intercept=-0.9958,
)


@dataclass(frozen=True)
class MowingParams:
    """Parameters of the mowing detector (NDVI units unless stated).

    Attributes
    ----------
    method
        ``"robust"`` (ours) or ``"baseline"`` (the Sen4CAP-like rule of DESIGN.md).
    season
        ``(start, end)`` as ``MM-DD`` (applied to each parcel's year) or full ``YYYY-MM-DD`` dates; events
        are kept when their interval touches the season.
    min_ndvi
        Clear observations with NDVI below this are ignored (water, snow, bare-soil noise).
    min_drop, max_low, min_high
        Baseline rule: minimum fall, highest value after it, lowest value before it. The robust detector
        uses ``min_drop / 2`` as a gate for candidates and leaves the rest to the scorer.
    min_separation_days
        No two events closer than this (the sward needs time to regrow); the stronger one is kept.
    lookback_days
        (robust) The pre-event level is the maximum of the clear observations within this many days before.
    max_span_days
        (robust) Longest interval of an event; a longer fall is cut to its sharpest part.
    span_penalty
        (robust) NDVI per day that a longer part of a falling run must add to its fall to be chosen over a
        shorter one. A cut falls between two clear dates; a sward drying or grazed falls a little every
        week, and without the penalty that slow fall joins the cut's interval (longer, so scored lower:
        the demo's meadows lost half their cuts so). Chosen by cross-validation grouped by site
        (``benchmarks/quality.py``, which also shows its cost in event F1 on sparser series).
    regrowth_days
        (robust) Window after the event in which rebound and regrowth are measured.
    threshold
        (robust) Minimum scorer probability for an event.
    parcel_threshold
        (robust) The season decision: a parcel gets events only when the ``parcel_evidence`` of its
        candidates touching the season reaches this, and then its best candidate is an event even below
        ``threshold`` (further events need ``threshold``). ``None`` (default): no season decision, every
        event needs ``threshold``. With ``parcel_evidence="max"`` this is the threshold of the first event.
    parcel_evidence
        (robust) How the season's candidate scores ``p_k`` combine: ``"noisy_or"`` (``1 - prod(1 - p_k)``,
        the chance that at least one is a mowing if they were independent: two middling falls count more
        than one) or ``"max"`` (the best one alone).
    outlier_dip, outlier_recover, outlier_span_days
        (robust) A single clear observation lower than both neighbours by more than ``outlier_dip``, whose
        next neighbour is back within ``outlier_recover`` of the previous one and no more than
        ``outlier_span_days`` after it, is an undetected cloud or shadow and is dropped: a mown sward does
        not regrow that fast. ``None`` disables the check.
    scorer_bands, scorer_indices, scorer_ndvi
        (robust) Scorers with the bands (blue, red, NIR, SWIR), with NDVI + NDMI + BSI only (the pipeline's
        long table), and with NDVI alone; each candidate gets the richest one its data allow.
    min_valid
        Fewer clear observations than this in the season: status ``not_enough_data``.
    gap_offset, gap_free_days
        (robust) Added to a candidate's log-odds for each day by which the typical gap between clear
        observations around it (``typical_gap``: the median over 60 days either side) exceeds
        ``gap_free_days``. The scorers learned on series with a clear date every 3-5 days; seen 10 or 15
        days apart, a cut has been regrowing for a week when it is first seen, so its fall looks smaller
        and slower than the scorers expect and a real cut scores low. Candidates of dense series keep
        their scores. Chosen on the training sites and thinned copies of them
        (:func:`~s3tr.markers.tuning.choose_gap_offset`; figures in ``benchmarks/quality.py``).
    """

    method: Literal["robust", "baseline"] = "robust"
    season: tuple[str, str] = ("04-01", "10-31")
    min_ndvi: float = 0.1
    min_drop: float = 0.12
    max_low: float = 0.72
    min_high: float = 0.40
    min_separation_days: int = 28
    lookback_days: int = 20
    max_span_days: int = 30
    span_penalty: float = 0.009
    regrowth_days: int = 30
    threshold: float = 0.4
    parcel_threshold: float | None = None
    parcel_evidence: Literal["noisy_or", "max"] = "noisy_or"
    outlier_dip: float | None = 0.08
    outlier_recover: float = 0.05
    outlier_span_days: int = 15
    scorer_bands: MowingScorer = DEFAULT_SCORER_BANDS
    scorer_indices: MowingScorer = DEFAULT_SCORER_INDICES
    scorer_ndvi: MowingScorer = DEFAULT_SCORER_NDVI
    min_valid: int = 6
    gap_offset: float = 0.1
    gap_free_days: float = 5.0

    def with_(self, **changes: object) -> MowingParams:
        """A copy with some parameters changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """The parameters as a plain dict (for model cards and reports)."""
        return asdict(self)


@dataclass
class MowingResult:
    """Events and per-parcel status of a mowing run.

    Attributes
    ----------
    events
        ``parcel_id, start, end, confidence`` (dates as ``datetime64[ns]``), sorted by parcel and start.
    status
        ``parcel_id, status, n_valid, max_gap_days, n_events, best_candidate``: one row per parcel of the
        table; ``status`` is ``ok``, ``not_enough_data``, ``no_valid_data`` (or ``error`` with a logged
        reason); ``best_candidate`` is the highest score of *any* fall of NDVI touching the season, event or
        not (0 when there is none, NaN for the baseline rule): the activity marker reads it, because a fall
        too weak to be called a mowing is still too strong to assert that nothing happened.
    """

    events: pd.DataFrame
    status: pd.DataFrame


def _clear(series: ParcelSeries, p: MowingParams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clear dates (int days) and aligned values (ndvi, blue, nir, swir) with NDVI >= min_ndvi."""
    v = series.values.get("ndvi")
    if v is None:
        return np.empty(0, np.int64), {"ndvi": np.empty(0)}
    keep = series.valid & np.isfinite(v) & (v >= p.min_ndvi)
    t = series.dates[keep].astype("datetime64[D]").astype(np.int64)
    out = {"ndvi": v[keep]}
    nir = "B8A" if "B8A" in series.values else "B08"
    for name, col in (("blue", "B02"), ("nir", nir), ("swir", "B11"), ("red", "B04")):
        out[name] = series.values[col][keep] if col in series.values else np.full(int(keep.sum()), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        # NDMI and BSI from the table when there, else from the bands (NaN when neither).
        ndmi = (out["nir"] - out["swir"]) / (out["nir"] + out["swir"])
        bsi = ((out["swir"] + out["red"]) - (out["nir"] + out["blue"])) / (
            out["swir"] + out["red"] + out["nir"] + out["blue"]
        )
    for name, calc in (("ndmi", ndmi), ("bsi", bsi)):
        given = series.values.get(name)
        out[name] = np.where(np.isfinite(given[keep]), given[keep], calc) if given is not None else calc
    if p.method == "robust":
        ok = _remove_dips(t, out["ndvi"], p)
        t = t[ok]
        out = {k: a[ok] for k, a in out.items()}
    return t, out


def _remove_dips(t: np.ndarray, v: np.ndarray, p: MowingParams) -> np.ndarray:
    """Mask (True = keep) without single-date negative outliers, removed one at a time, deepest first."""
    keep = np.ones(v.size, dtype=bool)
    if p.outlier_dip is None:
        return keep
    while keep.sum() >= 3:
        idx = np.flatnonzero(keep)
        tv, vv = t[idx], v[idx]
        dip = np.minimum(vv[:-2], vv[2:]) - vv[1:-1]
        bad = (
            (dip > p.outlier_dip)
            & (vv[2:] >= vv[:-2] - p.outlier_recover)
            & (tv[2:] - tv[:-2] <= p.outlier_span_days)
        )
        if not bad.any():
            break
        # One at a time: removing a dip may show that its neighbour is genuine.
        keep[idx[1 + int(np.argmax(np.where(bad, dip, -np.inf)))]] = False
    return keep


def _median(x: np.ndarray) -> float:
    """``np.median`` of a short 1-D array (NaN if any value is), without its overhead.

    The candidates' features take four medians each; ``np.median`` spent more time checking and
    dispatching than sorting the few values, a quarter of the detector's time.
    """
    s = np.sort(x)
    n = s.size
    if np.isnan(s[-1]):  # NaN sorts last
        return float("nan")
    return float((s[(n - 1) // 2] + s[n // 2]) / 2)


def _candidates(t: np.ndarray, vals: dict[str, np.ndarray], p: MowingParams) -> tuple[np.ndarray, np.ndarray]:
    """Candidate intervals (k, 2) of indices into ``t`` and their features (k, len(CANDIDATE_FEATURES))."""
    v = vals["ndvi"]
    n = v.size
    idx: list[tuple[int, int]] = []
    i = 0
    while i < n - 1:
        if v[i + 1] >= v[i]:
            i += 1
            continue
        j = i + 1
        while j + 1 < n and v[j + 1] < v[j]:
            j += 1
        # The sharpest part of the run no longer than max_span_days (or a single step if the gap is longer):
        # the largest fall once each day of the interval has paid span_penalty.
        best, ab = -np.inf, (i, i + 1)
        for a in range(i, j):
            for b in range(a + 1, j + 1):
                if b > a + 1 and t[b] - t[a] > p.max_span_days:
                    break
                gain = v[a] - v[b] - p.span_penalty * (t[b] - t[a])
                if gain > best:
                    best, ab = gain, (a, b)
        idx.append(ab)
        i = j
    feats = []
    kept = []
    for a, b in idx:
        pre = float(np.max(v[(t >= t[a] - p.lookback_days) & (t <= t[a])]))
        low = float(v[b])
        if pre - low < p.min_drop / 2:
            continue
        post = (t > t[b]) & (t <= t[b] + p.regrowth_days)
        rebound = float(np.max(v[post]) - pre) if post.any() else 0.0
        regrowth = float(_median(v[post]) - low) if post.any() else 0.0
        feats.append(
            (
                pre,
                low,
                pre - low,
                float(v[a] - v[b]),
                float(t[b] - t[a]),
                rebound,
                regrowth,
                float(vals["blue"][b] - vals["blue"][a]),
                float(vals["nir"][b] - vals["nir"][a]),
                float(vals["swir"][b] - vals["swir"][a]),
                float(vals["red"][b] - vals["red"][a]),
                # SWIR stays up while the cut sward regrows; after a cloud or shadow it is back at once.
                float(_median(vals["swir"][post]) - vals["swir"][a]) if post.any() else 0.0,
                float(vals["ndmi"][b] - vals["ndmi"][a]),
                float(vals["bsi"][b] - vals["bsi"][a]),
                float(_median(vals["ndmi"][post]) - vals["ndmi"][a]) if post.any() else 0.0,
                *_context(t, v, a, b, pre, pre - low),
            )
        )
        kept.append((a, b))
    return np.asarray(kept, dtype=int).reshape(-1, 2), np.asarray(feats, dtype=float).reshape(
        -1, len(CANDIDATE_FEATURES)
    )


def _context(t: np.ndarray, v: np.ndarray, a: int, b: int, pre: float, drop: float) -> tuple[float, ...]:
    """Where the fall ``a -> b`` sits among the clear observations ``t, v`` (``CONTEXT_FEATURES``).

    - ``gap_after``: days to the next clear observation (capped at 60): a low value at the edge of a
      cloudy spell is more often haze that the mask missed;
    - ``regrow_rate``: NDVI per day from the low to the next observation: a cut sward regrows at about
      0.01 a day, a cloud or shadow is gone at once;
    - ``n_before``: clear observations in the 30 days before the fall (few: a cloudy spell);
    - ``persist``: days until NDVI is back above half the fall (capped at 60);
    - ``dip_after``: the lowest NDVI within 15 days after the low, minus the low (below 0: it went on
      falling; the low of a cloud comes straight back up);
    - ``typical_gap``: the median number of days between clear observations within 60 days of the fall
      (capped at 60; not one of ``CONTEXT_FEATURES``: no scorer reads it, ``MowingParams.gap_offset`` does).
    """
    if b + 1 < v.size:
        gap_after = float(t[b + 1] - t[b])
        regrow_rate = float(v[b + 1] - v[b]) / max(gap_after, 1.0)
    else:
        gap_after, regrow_rate = 60.0, 0.0
    n_before = float(((t >= t[a] - 30) & (t < t[a])).sum())
    back = np.flatnonzero((np.arange(v.size) > b) & (v >= pre - drop / 2))
    persist = float(min(t[back[0]] - t[b], 60)) if back.size else 60.0
    soon = (t > t[b]) & (t <= t[b] + 15)
    dip_after = float(v[soon].min() - v[b]) if soon.any() else 0.0
    # The median, not the mean: one cloudy month does not make a well-observed season sparse.
    near = t[(t >= t[a] - 60) & (t <= t[b] + 60)]
    typical_gap = float(_median(np.diff(near))) if near.size > 1 else 60.0
    return (min(gap_after, 60.0), regrow_rate, n_before, persist, dip_after, min(typical_gap, 60.0))


def _select(starts: np.ndarray, ends: np.ndarray, conf: np.ndarray, sep: int) -> list[int]:
    """Greedy: strongest first, skipping events that start within ``sep`` days of an accepted one."""
    accepted: list[int] = []
    for k in np.argsort(-conf, kind="stable"):
        if all(abs(int(starts[k]) - int(starts[a])) >= sep for a in accepted):
            accepted.append(int(k))
    return sorted(accepted, key=lambda k: int(starts[k]))


def _score(x: np.ndarray, params: MowingParams) -> np.ndarray:
    """Score each candidate with the richest scorer whose features are all known (bands > indices > NDVI).

    Then shift the log-odds of candidates seen in sparse series (``MowingParams.gap_offset``).
    """
    conf = params.scorer_ndvi.score(np.nan_to_num(x))
    for scorer in (params.scorer_indices, params.scorer_bands):
        cols = [CANDIDATE_FEATURES.index(f) for f in scorer.features]
        known = np.isfinite(x[:, cols]).all(axis=1)
        if known.any():
            conf[known] = scorer.score(np.nan_to_num(x[known]))
    if params.gap_offset:
        excess = np.maximum(x[:, _TYPICAL_GAP] - params.gap_free_days, 0.0)
        # The odds times exp(offset * excess), written so that a score of 0 or 1 stays one.
        conf = conf / (conf + (1.0 - conf) * np.exp(-params.gap_offset * excess))
    return conf


def detect_series(series: ParcelSeries, params: MowingParams = MowingParams()) -> list[Interval]:
    """Mowing events of one parcel series touching its seasons (only clear dates are used).

    A season of month-days is monitored in every year the series covers (:func:`season_windows`).

    Returns
    -------
    list of (start, end, confidence)
        ``start``/``end`` as ``datetime64[D]``, confidence in 0..1, sorted by start.
    """
    return _detect(series, params, season_windows(params.season, series.dates))[0]


def season_evidence(scores: np.ndarray, how: str = "noisy_or") -> float:
    """Evidence that a parcel was mowed at least once from its candidates' scores (0 without any).

    ``how`` is ``"noisy_or"`` (``1 - prod(1 - p)``) or ``"max"``; see :class:`MowingParams`.
    """
    p = np.asarray(scores, dtype=float)
    if p.size == 0:
        return 0.0
    if how == "max":
        return float(p.max())
    if how == "noisy_or":
        return float(1.0 - np.prod(1.0 - np.clip(p, 0.0, 1.0)))
    raise ValueError(f"parcel_evidence must be 'noisy_or' or 'max', not {how!r}")


def _detect(
    series: ParcelSeries,
    params: MowingParams,
    windows: list[tuple[np.datetime64, np.datetime64]] | None = None,
) -> tuple[list[Interval], list[Interval]]:
    """Events and every scored candidate (robust detector only) of one parcel series.

    With ``windows`` (the seasons), only candidates touching one can be events, and each season makes its
    own season decision.
    """
    t, vals = _clear(series, params)
    v = vals["ndvi"]
    if t.size < 2:
        return [], []
    if params.method == "baseline":
        drop = v[:-1] - v[1:]
        ok = np.flatnonzero(
            (drop >= params.min_drop) & (v[1:] <= params.max_low) & (v[:-1] >= params.min_high)
        )
        starts, ends = t[ok], t[ok + 1]
        # The rule keeps the first event and skips the next 28 days: earlier = stronger.
        conf = np.clip(0.5 + (drop[ok] - params.min_drop) / 0.2, 0.5, 1.0)
        order = -np.arange(ok.size, dtype=float)
        chosen = _select(starts, ends, order, params.min_separation_days)
        return [
            (np.datetime64(int(starts[k]), "D"), np.datetime64(int(ends[k]), "D"), float(conf[k]))
            for k in chosen
        ], []
    ab, x = _candidates(t, vals, params)
    if ab.shape[0] == 0:
        return [], []
    conf = _score(x, params)
    candidates = [
        (np.datetime64(int(t[a]), "D"), np.datetime64(int(t[b]), "D"), float(c))
        for (a, b), c in zip(ab, conf, strict=True)
    ]
    return _choose_seasons(t, ab, conf, params, windows), candidates


def _choose_seasons(
    t: np.ndarray,
    ab: np.ndarray,
    conf: np.ndarray,
    params: MowingParams,
    windows: list[tuple[np.datetime64, np.datetime64]] | None,
) -> list[Interval]:
    """:func:`_choose` in each season, the events merged in time order (one touching two seasons once)."""
    if windows is None or len(windows) == 1:
        return _choose(t, ab, conf, params, None if windows is None else windows[0])
    found = {e[:2]: e for w in windows for e in _choose(t, ab, conf, params, w)}
    return sorted(found.values(), key=lambda e: e[0])


def _choose(
    t: np.ndarray,
    ab: np.ndarray,
    conf: np.ndarray,
    params: MowingParams,
    window: tuple[np.datetime64, np.datetime64] | None,
) -> list[Interval]:
    """Events among scored candidates ``ab`` (indices into ``t``): season decision, threshold, separation."""
    inside = np.ones(conf.size, dtype=bool)
    if window is not None:
        lo, hi = (int(np.datetime64(w, "D").astype(np.int64)) for w in window)
        inside = (t[ab[:, 1]] >= lo) & (t[ab[:, 0]] <= hi)
    if not inside.any():
        return []
    keep = inside & (conf >= params.threshold)
    if params.parcel_threshold is not None:
        if season_evidence(conf[inside], params.parcel_evidence) < params.parcel_threshold:
            return []
        # The season is decided: its best fall is the cut, even when it alone is below threshold.
        keep[np.flatnonzero(inside)[np.argmax(conf[inside])]] = True
    ab, conf = ab[keep], conf[keep]
    starts, ends = t[ab[:, 0]], t[ab[:, 1]]
    chosen = _select(starts, ends, conf, params.min_separation_days)
    return [
        (np.datetime64(int(starts[k]), "D"), np.datetime64(int(ends[k]), "D"), float(conf[k])) for k in chosen
    ]


def candidate_table(table: pd.DataFrame, *, params: MowingParams = MowingParams()) -> pd.DataFrame:
    """Every robust-detector candidate of every parcel with its features (for fitting and diagnosis).

    Returns
    -------
    pandas.DataFrame
        ``parcel_id, start, end`` (datetime64[ns]) and the ``CANDIDATE_FEATURES`` (float, NaN without bands).
    """
    frames = []
    for s in iter_series(table):
        t, vals = _clear(s, params)
        if t.size < 2:
            continue
        ab, x = _candidates(t, vals, params)
        if not ab.size:
            continue
        df = pd.DataFrame(x, columns=list(CANDIDATE_FEATURES))
        df.insert(0, "end", t[ab[:, 1]].astype("datetime64[D]").astype("datetime64[ns]"))
        df.insert(0, "start", t[ab[:, 0]].astype("datetime64[D]").astype("datetime64[ns]"))
        df.insert(0, "parcel_id", s.parcel_id)
        inside = np.zeros(len(df), dtype=bool)
        for lo, hi in season_windows(params.season, s.dates):
            inside |= ((df["end"] >= pd.Timestamp(lo)) & (df["start"] <= pd.Timestamp(hi))).to_numpy()
        frames.append(df[inside])
    cols = ["parcel_id", "start", "end", *CANDIDATE_FEATURES]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def fit_scorer(
    candidates: pd.DataFrame,
    labels: np.ndarray,
    *,
    features: tuple[str, ...] = CANDIDATE_FEATURES,
    c: float = 1.0,
    sample_weight: np.ndarray | None = None,
) -> MowingScorer:
    """Fit a :class:`MowingScorer` (L2 logistic regression) on labelled candidates.

    ``labels`` is bool per candidate row: True when a true mowing date falls in
    ``[start - 10 d, end + 10 d]``. ``sample_weight`` (one per row, default all 1) weighs the rows in the
    fit; :func:`s3tr.markers.tuning.fit_mowing_params` uses it to weigh the falls of never-mowed seasons.
    """
    from sklearn.linear_model import LogisticRegression

    x = candidates[list(features)].to_numpy(dtype=float)
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    lr = LogisticRegression(C=c, max_iter=2000)
    lr.fit((x - mean) / scale, np.asarray(labels, dtype=bool), sample_weight=sample_weight)
    return MowingScorer(
        features=tuple(features),
        mean=tuple(float(m) for m in mean),
        scale=tuple(float(s) for s in scale),
        coef=tuple(float(w) for w in lr.coef_[0]),
        intercept=float(lr.intercept_[0]),
    )


def mowing_marker(table: pd.DataFrame, *, params: MowingParams = MowingParams()) -> MowingResult:
    """Run the mowing detector on every parcel of a normalised table.

    Parameters
    ----------
    table
        Normalised time-series table (:func:`s3tr.markers.table.normalize_timeseries`).
    params
        Detector parameters.

    Returns
    -------
    MowingResult
        Events (one row per event) and the status of every parcel; a parcel with too little data gets
        status ``not_enough_data`` and no event, never an exception.
    """
    events: list[tuple[str, np.datetime64, np.datetime64, float]] = []
    status: list[tuple[str, str, int, float, int, float]] = []
    for s in iter_series(table):
        try:
            evs, st, n_valid, gap, best = _one_parcel(s, params)
        except Exception:  # one bad parcel never stops the batch
            logger.exception("mowing: parcel %s failed", s.parcel_id)
            status.append((s.parcel_id, "error", 0, float("nan"), 0, float("nan")))
            continue
        events.extend((s.parcel_id, a, b, c) for a, b, c in evs)
        status.append((s.parcel_id, st, n_valid, gap, len(evs), best))
    ev = pd.DataFrame(events, columns=EVENT_COLUMNS)
    ev["start"] = pd.to_datetime(ev["start"]).astype("datetime64[ns]")
    ev["end"] = pd.to_datetime(ev["end"]).astype("datetime64[ns]")
    ev["confidence"] = ev["confidence"].astype(float)
    return MowingResult(events=ev, status=pd.DataFrame(status, columns=STATUS_COLUMNS))


def _one_parcel(s: ParcelSeries, p: MowingParams) -> tuple[list[Interval], str, int, float, float]:
    d, _ = s.clear("ndvi")
    if s.dates.size == 0:
        return [], "no_valid_data", 0, float("nan"), float("nan")
    # A table may hold several years of a parcel: each year's season is monitored (season_windows).
    windows = season_windows(p.season, s.dates)
    quality = [window_quality(d, lo, hi) for lo, hi in windows]
    n_valid = sum(n for n, _ in quality)
    gap = max(g for _, g in quality)
    if n_valid == 0:
        return [], "no_valid_data", 0, gap, float("nan")

    def touches(a: np.datetime64, b: np.datetime64) -> bool:
        return any(lo <= b and a <= hi for lo, hi in windows)

    if p.method == "baseline":
        # The Sen4CAP rule looks at each season's observations only.
        found, candidates = [], []
        for lo, hi in windows:
            inside = (s.dates >= lo) & (s.dates <= hi)
            season = ParcelSeries(
                s.parcel_id, s.dates[inside], s.valid[inside], {k: v[inside] for k, v in s.values.items()}
            )
            found += _detect(season, p, [(lo, hi)])[0]
    else:
        # The robust detector sees the whole series, so the first event has its "before" level and the
        # last its regrowth; events are kept when they touch a season.
        found, candidates = _detect(s, p, windows)
    evs = [e for e in found if touches(e[0], e[1])]
    scores = [c for a, b, c in candidates if touches(a, b)]
    best = float("nan") if p.method == "baseline" else max(scores, default=0.0)
    # Every season must have enough clear dates for the parcel's "nothing found" to mean anything.
    status = "ok" if min(n for n, _ in quality) >= p.min_valid else "not_enough_data"
    return evs, status, n_valid, gap, best


def detect_mowing(table: pd.DataFrame, *, params: MowingParams = MowingParams()) -> pd.DataFrame:
    """Mowing events of every parcel: ``parcel_id, start, end, confidence``.

    Dates are ``datetime64[ns]``; a parcel without a row had no detected mowing. Use :func:`mowing_marker`
    for the per-parcel status as well.
    """
    return mowing_marker(table, params=params).events

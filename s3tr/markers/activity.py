"""Minimum agricultural activity over a window: mowing, grazing or harvest evidence.

The control asks whether *something* agricultural happened on the parcel in the window. Evidence, strongest
first: a mowing event (:mod:`s3tr.markers.mowing`), a bare-soil period or harvest-like collapse
(:mod:`s3tr.markers.bare_soil`), or a grazing-like lowering of the sward (the upper envelope of NDVI stays
well below the parcel's spring peak for a month or more while the series is clear). Without enough clear
observations the answer is ``not_enough_data``: the decision stage turns that into orange, never red.

"No activity" is a claim that costs a farmer money, so its confidence rests on *positive* evidence that
nothing happened, not on the absence of a confident detection: a dense series (short cloudy gaps), no fall
of NDVI that the mowing scorer finds even faintly mowing-like, and no lasting depression of the sward below
its peak. Even then, light grazing lowers the sward no more than summer drought or the litter of an unused
meadow does, and shows no sharp fall: an optical series alone cannot rule it out. The confidence in "no
activity" is therefore capped (``max_inactive_confidence``) below the rule set's bar for red, so the
decision stage sends such a parcel to an instructor (a photo or a visit decides) instead of penalising it.
Measured on demo seasons 1 and 2 without the cap: 61 of 67 and 70 of 72 meadows grazed and never mown
would have been red, against 16 of 32 and 8 of 34 unused ones -- a grazed sward looks *quieter* than an
unused one, whose litter lowers NDVI through the summer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from s3tr.markers.bare_soil import BareSoilParams, bare_soil_marker
from s3tr.markers.mowing import MowingParams, mowing_marker
from s3tr.markers.table import (
    iter_series,
    season_bounds,
    season_windows,
    warn_one_season_only,
    window_quality,
)

__all__ = ["ActivityParams", "detect_activity"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivityParams:
    """Parameters of the activity marker.

    Attributes
    ----------
    window
        ``(start, end)`` as ``MM-DD`` or ``YYYY-MM-DD``.
    min_valid
        At least this many clear observations in the window, ...
    max_gap_days
        ... and no gap longer than this (edges count), otherwise ``not_enough_data``.
    min_confidence
        An event counts as evidence when its confidence reaches this.
    quiet_candidate
        ``(floor, full)``: confidence in "no activity" falls linearly from 1 to 0 as the best mowing-scorer
        score of any fall of NDVI in the window (event or not) rises from ``floor`` to ``full``.
    quiet_depression
        ``(floor, full)``: likewise for the depression of the sward below its peak (NDVI units; summer
        senescence alone reaches about 0.15).
    max_inactive_confidence
        Cap of the confidence in "no activity" from optical series: light grazing cannot be ruled out
        (see the module notes). Below the rule sets' 0.6, so "no activity" alone never makes a red; raise it
        only where grazing is absent or seen by other evidence.
    grazing_drop
        Grazing-like evidence: the median NDVI over 30 days falls this much below the window's peak. On the
        Slovak camera set 0.25 raised the share of mowed plot-years found active from 0.85 to 0.93 but cut
        the share of unmown ones found inactive from 0.74 to 0.37 (drought also lowers NDVI): hence 0.45.
    mowing, bare_soil
        Parameters of the underlying detectors (their season is replaced by ``window``).
    """

    window: tuple[str, str] = ("04-01", "10-31")
    min_valid: int = 6
    max_gap_days: int = 60
    min_confidence: float = 0.5
    quiet_candidate: tuple[float, float] = (0.12, 0.3)
    quiet_depression: tuple[float, float] = (0.15, 0.30)
    max_inactive_confidence: float = 0.5
    grazing_drop: float = 0.45
    mowing: MowingParams = field(default_factory=MowingParams)
    bare_soil: BareSoilParams = field(default_factory=BareSoilParams)


def _depression(d: np.ndarray, v: np.ndarray) -> float:
    """How far (NDVI) a 30-day running median sinks below the earlier peak (grazing, harvest by stages)."""
    if v.size < 4:
        return 0.0
    return float(
        _depression_kernel(d.astype("datetime64[D]").astype(np.int64), np.asarray(v, dtype=np.float64))
    )


@njit(cache=True)
def _depression_kernel(t: np.ndarray, v: np.ndarray) -> float:
    # Compiled: with numpy calls per date this loop was 40 % of the markers stage on the demo.
    # For each date k: the median of the values within [t_k, t_k + 30 days) (at least two) against the
    # peak of the values up to k; a NaN in either leaves that date out.
    n = v.size
    best = 0.0
    peak = -np.inf
    peak_nan = False
    window = np.empty(n)
    for k in range(n):
        if np.isnan(v[k]):
            peak_nan = True
        elif v[k] > peak:
            peak = v[k]
        m = 0
        has_nan = False
        for i in range(n):
            if t[i] >= t[k] and t[i] < t[k] + 30:
                if np.isnan(v[i]):
                    has_nan = True
                window[m] = v[i]
                m += 1
        if m < 2 or has_nan or peak_nan:
            continue
        w = np.sort(window[:m])
        median = w[m // 2] if m % 2 else 0.5 * (w[m // 2 - 1] + w[m // 2])
        if peak - median > best:
            best = peak - median
    return best


def _grazing_score(depression: float, p: ActivityParams) -> float:
    """0..1: confidence that a depression of the sward is grazing (or harvest by stages)."""
    if depression <= p.grazing_drop - 0.05:
        return 0.0
    return float(np.clip((depression - p.grazing_drop) / 0.1 + 0.5, 0.0, 1.0))


def _ramp_down(x: float, bounds: tuple[float, float]) -> float:
    """1 below ``bounds[0]``, 0 above ``bounds[1]``, linear between (NaN counts as 0: nothing seen)."""
    lo, hi = bounds
    return 1.0 if not np.isfinite(x) else float(np.clip((hi - x) / (hi - lo), 0.0, 1.0))


class _EventIndex:
    """Events grouped by parcel as numpy slices: per-parcel lookups without a DataFrame per parcel."""

    def __init__(self, events: pd.DataFrame) -> None:
        self.slices: dict[str, slice] = {}
        if events.empty:
            return
        ids = events["parcel_id"].astype(str).to_numpy()
        order = np.argsort(ids, kind="stable")
        self.start = events["start"].to_numpy("datetime64[ns]")[order]
        self.end = events["end"].to_numpy("datetime64[ns]")[order]
        self.confidence = events["confidence"].to_numpy(float)[order]
        unique, first, counts = np.unique(ids[order], return_index=True, return_counts=True)
        self.slices = {str(i): slice(f, f + c) for i, f, c in zip(unique, first, counts, strict=True)}

    def best_inside(self, parcel_id: str, start: np.datetime64, end: np.datetime64) -> float:
        """Best confidence of the parcel's events lying inside ``[start, end]``.

        An event straddling an edge may have happened outside the window, so it proves nothing in it; and
        a table of several years holds other seasons' events too.
        """
        sl = self.slices.get(parcel_id)
        if sl is None:
            return 0.0
        inside = (self.start[sl] >= start) & (self.end[sl] <= end)
        return float(self.confidence[sl][inside].max()) if inside.any() else 0.0


def detect_activity(
    table: pd.DataFrame,
    *,
    params: ActivityParams = ActivityParams(),
    mowing_events: pd.DataFrame | None = None,
    bare_soil_events: pd.DataFrame | None = None,
    mowing_status: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Agricultural activity per parcel over ``params.window``.

    Parameters
    ----------
    table
        Normalised time-series table.
    params
        Marker parameters.
    mowing_events, bare_soil_events
        Events already detected over the same window (``parcel_id, start, end, confidence``), to avoid running
        the detectors twice; computed here when omitted. Only events lying inside the window count.
    mowing_status
        The mowing detector's per-parcel status over the same window (with ``best_candidate``); computed
        here when omitted or when it lacks that column.

    Returns
    -------
    pandas.DataFrame
        ``parcel_id, activity (bool), confidence (0..1, confidence in the stated answer), status (ok,
        not_enough_data, no_valid_data), n_valid, max_gap_days, evidence (mowing|bare_soil|grazing|none)``.
    """
    mp = params.mowing.with_(season=params.window)
    bp = BareSoilParams(**{**params.bare_soil.__dict__, "season": params.window})
    if mowing_events is None or mowing_status is None or "best_candidate" not in mowing_status:
        run = mowing_marker(table, params=mp)
        mowing_events = run.events if mowing_events is None else mowing_events
        mowing_status = run.status
    mow = mowing_events
    faint = mowing_status.set_index("parcel_id")["best_candidate"]
    soil = bare_soil_events if bare_soil_events is not None else bare_soil_marker(table, params=bp).events
    mow_index = _EventIndex(mow)
    soil_index = _EventIndex(soil)
    rows = []
    spanning: list[tuple[str, np.datetime64]] = []
    for s in iter_series(table):
        d, v = s.clear("ndvi")
        if s.dates.size == 0 or d.size == 0:
            rows.append((s.parcel_id, False, 0.0, "no_valid_data", 0, float("nan"), "none"))
            continue
        start, end = season_bounds(params.window, s.dates)
        if len(season_windows(params.window, s.dates)) > 1:
            spanning.append((s.parcel_id, start))
        n_valid, gap = window_quality(d, start, end)
        inwin = (d >= start) & (d <= end)
        depression = _depression(d[inwin], v[inwin])
        scores = {
            "mowing": mow_index.best_inside(s.parcel_id, start, end),
            "bare_soil": soil_index.best_inside(s.parcel_id, start, end),
            "grazing": _grazing_score(depression, params),
        }
        # The most specific evidence that passes wins (mowing, then bare soil, then grazing); else the best.
        passing = [k for k in ("mowing", "bare_soil", "grazing") if scores[k] >= params.min_confidence]
        kind = passing[0] if passing else max(scores, key=lambda k: scores[k])
        best = scores[kind]
        enough = n_valid >= params.min_valid and gap <= params.max_gap_days
        if best >= params.min_confidence:
            # Positive evidence stands even in a sparse series: one clear mowing is enough.
            rows.append((s.parcel_id, True, best, "ok", n_valid, gap, kind))
        elif not enough:
            rows.append((s.parcel_id, False, 0.0, "not_enough_data", n_valid, gap, "none"))
        else:
            # Confidence in "no activity" needs dense observations and a quiet series: no faint mowing-like
            # fall, no depression of the sward, and no half-convincing evidence of any kind.
            density = float(np.clip(1.0 - (gap - 15.0) / (params.max_gap_days - 15.0), 0.2, 1.0))
            quiet = min(
                _ramp_down(float(faint.get(s.parcel_id, np.nan)), params.quiet_candidate),
                _ramp_down(depression, params.quiet_depression),
                1.0 - best,
            )
            confidence = min(quiet * density, params.max_inactive_confidence)
            rows.append((s.parcel_id, False, confidence, "ok", n_valid, gap, "none"))
    warn_one_season_only("activity", spanning)
    return pd.DataFrame(
        rows, columns=["parcel_id", "activity", "confidence", "status", "n_valid", "max_gap_days", "evidence"]
    )

"""Bare soil and ploughing events from BSI and NDVI.

A ploughed or harrowed field shows bare soil: NDVI low (below ``max_ndvi``) and, where the bands allow it,
the bare-soil index high (BSI above ``min_bsi``). Clouds and shadows can fake one such date, so an event needs
the soil signature on at least ``min_obs`` consecutive clear observations, or one soil observation right
after an NDVI collapse from a green cover that does not grow back at the next observation. The event is the
bare period ``[start, end]`` = first and last clear observation of the run.

Ploughing is a *loss* of green cover. After the winter a meadow's dormant sward and litter look like soil
for weeks (NDVI 0.2-0.25, BSI +0.1 to +0.2) with no green date before them since the autumn: on the Slovak
camera meadows, which nobody ploughed, 4 of the 9 plot-years with a persistent soil-like run at ploughing
confidence (0.8 and above) were such February-April runs. A persistent run with no clear observation of
NDVI >= ``collapse_from`` in the ``cover_days`` before it is therefore kept at the confidence of a single
doubtful date (at most 0.6): shown, never proof.

Nor is every loss of green cover a ploughing. In the droughts of July 2022 and 2024, five Slovak meadows cut
in early summer stayed brown for two to six weeks (NDVI 0.11-0.25, BSI +0.1 to +0.2) and then grew back. Dry
grass, litter and stubble are cellulose, which absorbs near 2.1 um (B12) and not near 1.6 um (B11), so the
tillage index NDTI = (B11 - B12) / (B11 + B12) reads them high and bare soil low. The median NDTI of every
soil-like run on the Slovak meadows, summer and winter, lies between 0.110 and 0.204; the NDTI of the bare
spring months of the Flemish arable points (WorldCereal) is below 0.1 for 11 of 12 (docs/decisions.md).
A persistent run whose median NDTI is above ``max_ndti`` is therefore dry vegetation, not soil: doubtful
too, never proof. Without B11 and B12 (nor an ``ndti`` column) the test stands aside.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from s3tr.markers.table import ParcelSeries, iter_series, season_windows, window_quality

__all__ = [
    "DOUBT_DRY_VEGETATION",
    "DOUBT_NO_GREEN_COVER",
    "DOUBT_SINGLE_DATE",
    "BareSoilParams",
    "BareSoilResult",
    "bare_soil_marker",
    "detect_bare_soil",
]

logger = logging.getLogger(__name__)

#: Why a soil-like event is no proof of a ploughing (its ``doubt``; "" when it is one): no green cover was
#: lost before it (a dormant sward, snow), the run reads as dry vegetation (a sward scorched brown), or it is
#: a single soil-like date.
DOUBT_NO_GREEN_COVER = "no_green_cover"
DOUBT_DRY_VEGETATION = "dry_vegetation"
DOUBT_SINGLE_DATE = "single_date"


@dataclass(frozen=True)
class BareSoilParams:
    """Parameters of the bare-soil detector.

    Attributes
    ----------
    season
        ``(start, end)`` window (``MM-DD`` or ``YYYY-MM-DD``); runs that touch it are kept.
    max_ndvi
        NDVI at or below this is soil-like.
    min_bsi
        BSI at or above this is soil-like (used only where BSI or its bands are present).
    min_obs
        Consecutive soil-like clear observations needed for a persistent event.
    collapse_from
        A single soil-like observation counts when the clear observation before it had NDVI >= this and the
        one after it (if any) is still below ``collapse_from - 0.1``.
    min_valid
        Fewer clear observations in the season: status ``not_enough_data``.
    cover_days
        A persistent run counts as a ploughing only when a clear observation with NDVI >= ``collapse_from``
        lies within this many days before it (a green cover was lost); otherwise its confidence is that of
        a single soil-like date (see the module notes). ``None``: no such requirement (before markers-0.4.0).
    max_ndti
        A persistent run whose median tillage index (NDTI, from B11 and B12) is above this is dry vegetation
        (a scorched sward, litter, stubble), not ploughed soil: its confidence is that of a single soil-like
        date. ``None``, or no NDTI in the table: no such test (before markers-0.5.0).
    """

    season: tuple[str, str] = ("01-01", "12-31")
    max_ndvi: float = 0.25
    min_bsi: float = 0.0
    min_obs: int = 2
    collapse_from: float = 0.5
    min_valid: int = 4
    cover_days: int | None = 60
    max_ndti: float | None = 0.10


@dataclass
class BareSoilResult:
    """``events``: ``parcel_id, start, end, confidence, doubt``; ``status``: ``parcel_id, status, n_valid``.

    ``doubt`` says why an event is no proof of a ploughing (``DOUBT_*``), "" when it is one.
    """

    events: pd.DataFrame
    status: pd.DataFrame


def _bsi(s: ParcelSeries) -> np.ndarray | None:
    if "bsi" in s.values and np.isfinite(s.values["bsi"]).any():
        return s.values["bsi"]
    nir = "B8A" if "B8A" in s.values else ("B08" if "B08" in s.values else None)
    if nir and all(b in s.values for b in ("B11", "B04", "B02")):
        a = s.values["B11"] + s.values["B04"]
        b = s.values[nir] + s.values["B02"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return (a - b) / (a + b)
    return None


def _ndti(s: ParcelSeries) -> np.ndarray | None:
    if "ndti" in s.values and np.isfinite(s.values["ndti"]).any():
        return s.values["ndti"]
    if "B11" in s.values and "B12" in s.values:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s.values["B11"] - s.values["B12"]) / (s.values["B11"] + s.values["B12"])
    return None


def _dry_vegetation(ndti: np.ndarray | None, p: BareSoilParams) -> bool | None:
    """Whether a run's soil-like observations read as dry vegetation rather than soil (None: unknown)."""
    if p.max_ndti is None:
        return False
    if ndti is None or not np.isfinite(ndti).any():
        return None
    return bool(np.nanmedian(ndti) > p.max_ndti)


def _series_events(s: ParcelSeries, p: BareSoilParams) -> tuple[list[tuple], str, int, bool]:
    """Events, status, clear observations in the season(s), and whether a ploughing-level run could not
    be checked for dry vegetation (no NDTI)."""
    keep = s.valid & np.isfinite(s.values.get("ndvi", np.full(s.dates.size, np.nan)))
    if not keep.any():
        return [], "no_valid_data", 0, False
    # A table may hold several years of a parcel: each year's season is monitored (season_windows).
    windows = season_windows(p.season, s.dates)
    d = s.dates[keep]
    ndvi = s.values["ndvi"][keep]
    bsi_all = _bsi(s)
    bsi = bsi_all[keep] if bsi_all is not None else None
    ndti_all = _ndti(s)
    ndti = ndti_all[keep] if ndti_all is not None else None
    per_season = [window_quality(d, lo, hi)[0] for lo, hi in windows]
    soil = ndvi <= p.max_ndvi
    if bsi is not None:
        # Where BSI is known it must agree; where it is NaN, NDVI alone decides.
        soil &= ~(np.isfinite(bsi) & (bsi < p.min_bsi))
    events = []
    unchecked = False
    i = 0
    n = soil.size
    while i < n:
        if not soil[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and soil[j + 1]:
            j += 1
        run = j - i + 1
        margin = float(np.clip((p.max_ndvi - np.median(ndvi[i : j + 1])) / 0.15, 0, 1))
        conf = 0.0
        lost_cover = p.cover_days is None or bool(
            ((ndvi[:i] >= p.collapse_from) & (d[:i] >= d[i] - np.timedelta64(p.cover_days, "D"))).any()
        )
        dry = _dry_vegetation(ndti[i : j + 1] if ndti is not None else None, p)
        doubt = ""
        if run >= p.min_obs and lost_cover and not dry:
            conf = 0.6 + 0.25 * min(run - p.min_obs, 2) / 2 + 0.15 * margin
        elif run >= p.min_obs:
            # Soil-like since the winter (snow, a dormant sward), not a lost green cover, or a sward
            # scorched brown rather than soil: doubtful.
            conf = 0.4 + 0.2 * margin
            doubt = DOUBT_DRY_VEGETATION if lost_cover else DOUBT_NO_GREEN_COVER
        elif i > 0 and ndvi[i - 1] >= p.collapse_from and (j + 1 >= n or ndvi[j + 1] < p.collapse_from - 0.1):
            conf = 0.4 + 0.2 * margin
            doubt = DOUBT_SINGLE_DATE
        if conf > 0 and any(d[j] >= lo and d[i] <= hi for lo, hi in windows):
            events.append((d[i], d[j], min(conf, 1.0), doubt))
            unchecked |= dry is None and conf > 0.6
        i = j + 1
    status = "ok" if min(per_season) >= p.min_valid else "not_enough_data"
    return events, status, sum(per_season), unchecked


def bare_soil_marker(table: pd.DataFrame, *, params: BareSoilParams = BareSoilParams()) -> BareSoilResult:
    """Bare-soil events and per-parcel status for every parcel of a normalised table."""
    events, status, unchecked = [], [], []
    for s in iter_series(table):
        try:
            evs, st, n_valid, blind = _series_events(s, params)
        except Exception:  # one bad parcel never stops the batch
            logger.exception("bare soil: parcel %s failed", s.parcel_id)
            status.append((s.parcel_id, "error", 0))
            continue
        events.extend((s.parcel_id, *e) for e in evs)
        status.append((s.parcel_id, st, n_valid))
        if blind:
            unchecked.append(s.parcel_id)
    if unchecked:
        # Without B11/B12 a sward scorched brown in a drought looks like ploughed soil: say so, since the
        # ploughings found then rest on NDVI and BSI alone.
        logger.warning(
            "bare soil: %d parcel(s) with a ploughing-level run could not be checked for dry vegetation "
            "(no ndti column, nor B11 and B12; extract ndti with the other indices), e.g. %s",
            len(unchecked),
            ", ".join(map(str, unchecked[:5])),
        )
    ev = pd.DataFrame(events, columns=["parcel_id", "start", "end", "confidence", "doubt"])
    for c in ("start", "end"):
        ev[c] = pd.to_datetime(ev[c]).astype("datetime64[ns]")
    ev["confidence"] = ev["confidence"].astype(float)
    return BareSoilResult(ev, pd.DataFrame(status, columns=["parcel_id", "status", "n_valid"]))


def detect_bare_soil(table: pd.DataFrame, *, params: BareSoilParams = BareSoilParams()) -> pd.DataFrame:
    """Bare-soil / ploughing events: ``parcel_id, start, end, confidence, doubt`` (dates ``datetime64[ns]``;
    ``doubt`` as in :class:`BareSoilResult`)."""
    return bare_soil_marker(table, params=params).events

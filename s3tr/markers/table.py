"""The per-parcel time-series table that every marker reads.

The long table has one row per (parcel, acquisition date)::

    parcel_id, date (YYYY-MM-DD), valid (0/1, default 1),
    any of ndvi evi ndmi ndwi bsi ndti       (indices, unitless, -1..1)
    any of B02 B03 B04 B05 B06 B07 B08 B8A B11 B12   (surface reflectance, 0..1)
    any of vv vh coherence                   (Sentinel-1: backscatter as given, coherence 0..1)
    any of <index>_std                        (within-parcel standard deviation of an index)

Rows may come in any order; unknown columns are ignored. :func:`normalize_timeseries` turns any such
table into the canonical form the markers use (sorted, one row per parcel and date, ``valid`` a bool that
is False wherever NDVI is missing) and records, per parcel, what was wrong with its rows instead of
raising: one bad parcel never stops the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from s3tr.errors import S3trError

__all__ = [
    "BANDS",
    "INDICES",
    "S1_COLUMNS",
    "MarkerInputError",
    "ParcelSeries",
    "TimeSeriesFileError",
    "iter_series",
    "normalize_timeseries",
    "parcel_quality",
    "parse_season",
    "read_dates",
    "read_timeseries",
    "season_bounds",
    "season_windows",
    "warn_one_season_only",
    "window_quality",
]

logger = logging.getLogger(__name__)

INDICES = ("ndvi", "evi", "ndmi", "ndwi", "bsi", "ndti")
BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
#: A band whose median exceeds this is in digital numbers (reflectance x 10,000), not reflectance.
DN_MEDIAN_ABOVE = 2.0
#: An index whose 90th percentile of absolute values exceeds this is stored scaled (x 100 or x 10,000).
INDEX_SCALED_ABOVE = 1.5
S1_COLUMNS = ("vv", "vh", "coherence")
_VALUE_COLUMNS = INDICES + BANDS + S1_COLUMNS + tuple(f"{i}_std" for i in INDICES)


class MarkerInputError(S3trError, ValueError):
    """The input of a marker (time series, labels, declarations, model) is unusable as a whole."""


class TimeSeriesFileError(MarkerInputError):
    """A time-series file cannot be read: missing, wrong format, or without ``parcel_id``/``date`` columns."""


@dataclass(frozen=True)
class ParcelSeries:
    """The clean series of one parcel, as numpy arrays sorted by date.

    Attributes
    ----------
    parcel_id
        The parcel identifier (str).
    dates
        ``datetime64[D]`` acquisition dates, strictly increasing, all dates (valid or not).
    valid
        bool mask, True where the observation is usable (clear and NDVI finite).
    values
        Column name -> float64 array aligned with ``dates`` (NaN where missing).
    """

    parcel_id: str
    dates: np.ndarray
    valid: np.ndarray
    values: dict[str, np.ndarray]

    def clear(self, column: str = "ndvi") -> tuple[np.ndarray, np.ndarray]:
        """Dates and values of ``column`` on valid dates where the value is finite."""
        if column not in self.values:
            return self.dates[:0], np.empty(0)
        v = self.values[column]
        keep = self.valid & np.isfinite(v)
        return self.dates[keep], v[keep]


def read_timeseries(path: str | Path) -> pd.DataFrame:
    """Read a time-series table (CSV or Parquet) and normalise it.

    Parameters
    ----------
    path
        ``.csv`` (comma separated, header row) or ``.parquet`` / ``.pq`` file.

    Returns
    -------
    pandas.DataFrame
        The normalised table (see :func:`normalize_timeseries`); ``attrs["issues"]`` lists row problems.

    Raises
    ------
    TimeSeriesFileError
        When the file is missing, unreadable, or lacks the ``parcel_id`` or ``date`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise TimeSeriesFileError(
            f"time-series file not found: {path} (give the path of a CSV or Parquet file)"
        )
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={"parcel_id": str}, low_memory=False)
    except Exception as exc:
        raise TimeSeriesFileError(
            f"cannot read time-series file {path}: {exc} (expected CSV with a header row, or Parquet)"
        ) from exc
    return normalize_timeseries(df, source=str(path))


def normalize_timeseries(df: pd.DataFrame, *, source: str = "<table>") -> pd.DataFrame:
    """Canonical form of a time-series table.

    - column names are matched case-insensitively for ``parcel_id``, ``date``, ``valid`` and the indices;
      band names keep their canonical spelling (``B8A``); unknown columns are dropped;
    - ``parcel_id`` becomes str; ``date`` becomes ``datetime64[ns]`` at midnight; rows whose parcel id or date
      cannot be read are dropped and reported (file and 1-based data row) in ``attrs["issues"]``;
    - ``valid`` defaults to True; it becomes False where NDVI is not finite (NDVI is computed from B8A, or
      B08, and B04 when the ``ndvi`` column is absent or empty);
    - bands whose median is above ``DN_MEDIAN_ABOVE`` are digital numbers: divided by 10,000 (reported);
      indices beyond -1..1 (90th percentile of their absolute values above ``INDEX_SCALED_ABOVE``) are
      stored scaled: divided by 10,000 (beyond 150) or 100 (reported);
    - duplicate (parcel, date) rows are merged: mean of the valid rows (of all rows if none is valid);
    - rows are sorted by ``parcel_id`` then ``date``.

    Parameters
    ----------
    df
        The raw table.
    source
        Name of the file (or other origin) used in messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``parcel_id`` (str), ``date`` (datetime64[ns]), ``valid`` (bool) then the known value columns
        present, as float64 (NaN = missing). ``attrs["issues"]``: list of str.

    Raises
    ------
    MarkerInputError
        When ``parcel_id`` or ``date`` is missing from the columns.
    """
    issues: list[str] = []
    canon = {c.lower(): c for c in (*_VALUE_COLUMNS, "parcel_id", "date", "valid")}
    # Band names are upper case in the contract; accept any case and map back to the canonical spelling.
    rename: dict[str, str] = {}
    for col in df.columns:
        key = str(col).strip().lower()
        if key in canon and canon[key] not in rename.values():
            rename[col] = canon[key]
    missing = [c for c in ("parcel_id", "date") if c not in rename.values()]
    if missing:
        raise MarkerInputError(
            f"{source}: missing column(s) {', '.join(missing)}; a time-series table needs parcel_id and date "
            f"(found: {', '.join(map(str, df.columns[:12]))})"
        )
    out = df[list(rename)].rename(columns=rename).copy()
    out["_row"] = np.arange(len(out)) + 1  # 1-based data row, for messages

    pid = out["parcel_id"]
    bad_pid = pid.isna() | (pid.astype(str).str.strip() == "")
    out["parcel_id"] = pid.astype(str).str.strip()
    dates, day_first = read_dates(out["date"])
    bad_date = dates.isna()
    out["date"] = dates
    if day_first.any():
        rows = _rows_text(out.loc[day_first, "_row"].tolist())
        issues.append(
            f"{source}: {int(day_first.sum())} date(s) not in YYYY-MM-DD, read day first "
            f"(12/07/2023 = 12 July), data row(s) {rows}"
        )
    for mask, what in ((bad_pid, "empty parcel_id"), (bad_date & ~bad_pid, "unreadable date")):
        if mask.any():
            rows = out.loc[mask, "_row"].tolist()
            issues.append(f"{source}: {what} on data row(s) {_rows_text(rows)}; those rows were ignored")
    out = out[~(bad_pid | bad_date)]

    for col in out.columns:
        if col in _VALUE_COLUMNS:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    # Reflectances are 0..1 in the contract; Sentinel-2 products store them as digital numbers (x 10,000).
    # Indices are ratios and do not care, but the band changes the markers read would be 10,000 times off.
    dn = [c for c in BANDS if c in out.columns and out[c].median() > DN_MEDIAN_ABOVE]
    if dn:
        out[dn] = out[dn] / 10_000.0
        issues.append(
            f"{source}: band(s) {', '.join(dn)} look like digital numbers (median above {DN_MEDIAN_ABOVE:g}, "
            "reflectance is 0..1); divided by 10,000"
        )

    # Indices are -1..1, yet some stores keep them as integers: x 10,000 (Sentinel Hub INT16, MODIS) or
    # x 100 (percent). Read as ratios, an NDVI of 8,000 would make every fall a mowing.
    for col in [c for c in INDICES if c in out.columns]:
        # The 90th percentile: a few wild values (a broken pixel) do not make a ratio column look scaled.
        p90 = out[col].abs().quantile(0.9)
        if p90 > INDEX_SCALED_ABOVE:
            scale = 10_000.0 if p90 > 150 else 100.0
            out[col] = out[col] / scale
            issues.append(
                f"{source}: index {col} is beyond -1..1 (90th percentile of |{col}| {p90:g}); taken as "
                f"scaled by {scale:,.0f} and divided by it"
            )

    if "valid" in out.columns:
        v = pd.to_numeric(out["valid"], errors="coerce")
        # An empty cell takes the default (valid); a cell that is not a number is suspicious: invalid.
        garbage = v.isna() & out["valid"].notna()
        if garbage.any():
            rows = _rows_text(out.loc[garbage, "_row"].tolist())
            issues.append(f"{source}: non-numeric 'valid' on data row(s) {rows}; treated as invalid")
        out["valid"] = v.fillna(1).where(~garbage, 0).to_numpy() > 0
    else:
        out["valid"] = True

    nir = "B8A" if "B8A" in out.columns else ("B08" if "B08" in out.columns else None)
    if nir is not None and "B04" in out.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            computed = (out[nir] - out["B04"]) / (out[nir] + out["B04"])
        computed = computed.where(np.isfinite(computed))
        out["ndvi"] = out["ndvi"].fillna(computed) if "ndvi" in out.columns else computed
    if "ndvi" in out.columns:
        nan_ndvi = out["valid"] & out["ndvi"].isna()
        if nan_ndvi.any():
            issues.append(
                f"{source}: NDVI missing (NaN) on {int(nan_ndvi.sum())} valid row(s), first data row(s) "
                f"{_rows_text(out.loc[nan_ndvi, '_row'].tolist())}; marked invalid"
            )
        out["valid"] = out["valid"] & out["ndvi"].notna()
    else:
        issues.append(f"{source}: no ndvi column and no B04 with B8A/B08 to compute it; every row is invalid")
        out["ndvi"] = np.nan
        out["valid"] = False

    dup = out.duplicated(["parcel_id", "date"], keep=False)
    if dup.any():
        n_pairs = out.loc[dup, ["parcel_id", "date"]].drop_duplicates().shape[0]
        issues.append(
            f"{source}: {n_pairs} duplicate (parcel_id, date) pair(s), data row(s) "
            f"{_rows_text(out.loc[dup, '_row'].tolist())}; merged (mean of valid rows)"
        )
        out = _merge_duplicates(out)

    values = [c for c in _VALUE_COLUMNS if c in out.columns]
    out = out.sort_values(["parcel_id", "date"], kind="stable")
    out = out[["parcel_id", "date", "valid", *values]].reset_index(drop=True)
    out.attrs["issues"] = issues
    out.attrs["source"] = source
    out.attrs["normalized"] = True
    for msg in issues:
        logger.warning("%s", msg)
    return out


def _rows_text(rows: list[int], limit: int = 5) -> str:
    head = ", ".join(str(r) for r in rows[:limit])
    return head + (f" ... ({len(rows)} rows)" if len(rows) > limit else "")


def _merge_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    values = [c for c in _VALUE_COLUMNS if c in df.columns]
    # Prefer valid rows: when at least one duplicate is valid, the invalid ones do not dilute the mean.
    any_valid = df.groupby(["parcel_id", "date"], sort=False)["valid"].transform("any")
    keep = df[df["valid"] | ~any_valid]
    merged = keep.groupby(["parcel_id", "date"], sort=False, as_index=False).agg(
        {"valid": "any", "_row": "min", **dict.fromkeys(values, "mean")}
    )
    return merged


def iter_series(table: pd.DataFrame) -> Iterator[ParcelSeries]:
    """Yield the :class:`ParcelSeries` of every parcel, in parcel order.

    A table that was not produced by :func:`normalize_timeseries` (no ``attrs["normalized"]``) is normalised
    first, so every marker accepts a raw long table too.
    """
    # pandas carries ``attrs`` through column drops and selections, so the mark alone is not proof.
    if not table.attrs.get("normalized") or not {"parcel_id", "date", "valid"} <= set(table.columns):
        table = normalize_timeseries(table, source=str(table.attrs.get("source", "<table>")))
    values = [c for c in _VALUE_COLUMNS if c in table.columns]
    if table.empty:
        return
    pids = table["parcel_id"].to_numpy()
    dates = table["date"].to_numpy().astype("datetime64[D]")
    valid = table["valid"].to_numpy(dtype=bool)
    arrays = {c: table[c].to_numpy(dtype="float64") for c in values}
    # The table is sorted by parcel: split on the boundaries instead of a slow groupby.
    bounds = np.flatnonzero(pids[1:] != pids[:-1]) + 1
    starts = np.r_[0, bounds]
    ends = np.r_[bounds, len(pids)]
    for s, e in zip(starts, ends, strict=True):
        yield ParcelSeries(
            parcel_id=str(pids[s]),
            dates=dates[s:e],
            valid=valid[s:e],
            values={c: a[s:e] for c, a in arrays.items()},
        )


def read_dates(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Calendar days of a column of dates, and which of them were not ISO 8601.

    ``YYYY-MM-DD`` (with or without a time or a zone: the day as written, whatever the zone), ``YYYYMMDD``
    and datetime values are read as they are. Any other form is read **day first**, the French
    convention, so that ``12/07/2023`` is 12 July, not 7 December.

    Returns
    -------
    dates, day_first
        ``datetime64[ns]`` at midnight, NaT where unreadable or empty; bool, True where a date was read
        day first (for the caller to report).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        dates = values.dt.tz_localize(None) if values.dt.tz is not None else values
        return dates.dt.normalize().astype("datetime64[ns]"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    iso = text.str.match(r"^\d{4}-\d{2}-\d{2}").fillna(False).astype(bool)
    basic = text.str.fullmatch(r"\d{8}").fillna(False).astype(bool)  # ISO 8601 basic: 20230612
    dates = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    dates[iso] = pd.to_datetime(text[iso].str[:10], format="%Y-%m-%d", errors="coerce")
    dates[basic] = pd.to_datetime(text[basic], format="%Y%m%d", errors="coerce")
    other = ~iso & ~basic & text.notna() & (text != "")
    if other.any():
        read = pd.to_datetime(text[other], format="mixed", dayfirst=True, errors="coerce", utc=True)
        dates[other] = read.dt.tz_localize(None).dt.normalize()
    return dates, other & dates.notna()


def window_quality(dates: np.ndarray, start: np.datetime64, end: np.datetime64) -> tuple[int, float]:
    """Number of clear dates inside ``[start, end]`` and the longest gap in days.

    The gap counts the window edges as observations, so a series that stops early has a long gap.
    """
    d = dates[(dates >= start) & (dates <= end)]
    edges = np.r_[start, d, end].astype("datetime64[D]").astype(np.int64)
    gap = float(np.max(np.diff(edges))) if edges.size > 1 else float("nan")
    return int(d.size), gap


def parcel_quality(
    table: pd.DataFrame, *, season: tuple[str, str] | None = None, min_valid: int = 2
) -> pd.DataFrame:
    """Per-parcel data quality: ``parcel_id, n_dates, n_valid, max_gap_days, status``.

    ``status`` is ``ok``, ``not_enough_data`` (fewer than ``min_valid`` clear dates) or ``no_valid_data``.
    With ``season=(start, end)`` (YYYY-MM-DD or MM-DD applied to each parcel's year) only that window counts.
    """
    rows = []
    for s in iter_series(table):
        d, _ = s.clear("ndvi")
        if season is not None and s.dates.size:
            start, end = season_bounds(season, s.dates)
            n_valid, gap = window_quality(d, start, end)
        else:
            n_valid = int(d.size)
            gap = float(np.max(np.diff(d.astype(np.int64)))) if d.size > 1 else float("nan")
        status = "ok" if n_valid >= min_valid else ("no_valid_data" if n_valid == 0 else "not_enough_data")
        rows.append((s.parcel_id, int(s.dates.size), n_valid, gap, status))
    return pd.DataFrame(rows, columns=["parcel_id", "n_dates", "n_valid", "max_gap_days", "status"])


def season_bounds(season: tuple[str, str], dates: np.ndarray) -> tuple[np.datetime64, np.datetime64]:
    """Resolve a season ``(start, end)`` into dates.

    Full dates (``YYYY-MM-DD``) are used as they are; month-days (``MM-DD``) take the year of the median
    date of ``dates`` so that one season definition serves every campaign.
    """
    year = int(str(np.sort(dates)[dates.size // 2])[:4]) if dates.size else 2000
    return _in_year(season, year)


def parse_season(text: str) -> tuple[str, str]:
    """``"START,END"`` (each ``MM-DD`` or ``YYYY-MM-DD``) as a season tuple.

    Raises
    ------
    MarkerInputError
        When the text is not two such dates, or a full-date season ends before it starts.
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise MarkerInputError(f"season {text!r}: give START,END (e.g. 04-01,10-31 or 2025-04-01,2025-10-31)")
    for part in parts:
        try:
            # A month-day is checked in a leap year, so that 02-29 is accepted.
            np.datetime64(f"2000-{part}" if len(part) == 5 else part, "D")
            ok = len(part) in (5, 10)
        except ValueError:
            ok = False
        if not ok:
            raise MarkerInputError(f"season {text!r}: {part!r} is neither MM-DD nor YYYY-MM-DD")
    if len(parts[0]) == len(parts[1]) == 10 and parts[1] < parts[0]:
        raise MarkerInputError(f"season {text!r} ends before it starts")
    return parts[0], parts[1]


def season_windows(
    season: tuple[str, str], dates: np.ndarray, *, min_cover: float = 0.5
) -> list[tuple[np.datetime64, np.datetime64]]:
    """Every season that a parcel's series covers, in time order.

    A season of full dates is that one window. A season of month-days (``MM-DD``) is taken in each
    calendar year whose season the series spans (from its first to its last date) for at least
    ``min_cover`` of the season's length, so that a table holding several years per parcel is monitored
    every year, not only in its median year; a few weeks of lead-in from the previous autumn do not
    count as a season. A series that spans no season that much gets :func:`season_bounds`.
    """
    start, end = (str(x) for x in season)
    if (len(start) != 5 or len(end) != 5) or dates.size == 0:
        return [season_bounds(season, dates)]
    first, last = dates.min().astype("datetime64[D]"), dates.max().astype("datetime64[D]")
    windows = []
    for year in range(int(str(first)[:4]) - 1, int(str(last)[:4]) + 1):
        lo, hi = _in_year(season, year)
        spanned = (min(last, hi) - max(first, lo)).astype(int)
        if spanned >= min_cover * (hi - lo).astype(int):
            windows.append((lo, hi))
    return windows or [season_bounds(season, dates)]


def warn_one_season_only(marker: str, spanning: list[tuple[str, np.datetime64]]) -> None:
    """Say that ``marker`` judged one season of parcels whose series cover several.

    A per-parcel answer (activity, crop group) is about one campaign. Given a table that holds several
    years of a parcel, such a marker reads the season of the median date and ignores the others; an
    operator who passed the wrong table must hear about it rather than get one year's answer silently.

    Parameters
    ----------
    marker
        The marker's name, for the message.
    spanning
        ``(parcel_id, start of the season judged)`` of each parcel whose series covers several seasons.
    """
    if not spanning:
        return
    shown = ", ".join(f"{pid} (season from {start})" for pid, start in spanning[:5])
    logger.warning(
        "%s: %d parcel(s) have dates in several seasons; each was judged on the season of its median date "
        "only, e.g. %s. Give one campaign per table (the mowing and bare-soil markers watch every season).",
        marker,
        len(spanning),
        shown,
    )


def _in_year(season: tuple[str, str], year: int) -> tuple[np.datetime64, np.datetime64]:
    """``season`` with its month-days (``MM-DD``) placed in ``year``; a season whose end month-day comes
    before its start month-day (a winter season) ends in the next year. ``02-29`` is 28 February in a year
    without it (:func:`parse_season` accepts it)."""
    start, end = (str(x) for x in season)
    lo = _day(start, year)
    hi = _day(end, year)
    if len(start) == 5 and len(end) == 5 and hi < lo:
        hi = _day(end, year + 1)
    return lo, hi


def _day(text: str, year: int) -> np.datetime64:
    """A full date as it is, or a month-day in ``year`` (29 February falling back to the 28th)."""
    if len(text) != 5:
        return np.datetime64(text, "D")
    if text == "02-29" and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        text = "02-28"
    return np.datetime64(f"{year}-{text}", "D")

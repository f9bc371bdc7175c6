"""Long tables of parcel statistics and their export to CSV / Parquet."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from s3tr.extract.errors import ExtractValueError, TableFormatError

__all__ = ["DEFAULT_MIN_VALID_FRACTION", "INDEX_NAMES", "to_table", "write_table"]

log = logging.getLogger(__name__)

#: Indices of the series, in the column order of the long table.
INDEX_NAMES = ("ndvi", "ndmi", "ndwi", "bsi", "ndti")

#: An observation is valid when at least half of the parcel's pixels are clear. Below that, the
#: mean rests on a minority of pixels, usually the ones next to a cloud or its shadow that SCL
#: misses (cloud edges), and on large parcels on one corner of the field, so it is not
#: representative of the parcel; the mowing and ploughing markers read drops of 0.1–0.15 NDVI,
#: which such partial means produce on their own. Sen4CAP and the JRC apply the same kind of
#: majority rule to parcel-level observations.
DEFAULT_MIN_VALID_FRACTION = 0.5


def to_table(ds: xr.Dataset, *, min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION) -> pd.DataFrame:
    """The long table of a ``(parcel, time)`` series dataset: one row per parcel and time.

    Parameters
    ----------
    ds
        Series dataset (as returned by :meth:`SeriesStore.load` or
        :meth:`ParcelRaster.statistics_many`) with ``count`` and ``valid_fraction`` and a
        datetime ``time`` coordinate (UTC).
    min_valid_fraction
        Threshold on ``valid_fraction`` for ``valid = 1`` (see :data:`DEFAULT_MIN_VALID_FRACTION`).

    Returns
    -------
    pandas.DataFrame
        Columns ``parcel_id`` (str), ``date`` (``YYYY-MM-DD`` str, UTC date of the acquisition),
        ``valid`` (int8: ``valid_fraction >= min_valid_fraction and count > 0``), then for each
        index present ``ndvi, ndvi_std, ndmi, ndmi_std, ndwi, ndwi_std, bsi, bsi_std`` (float32),
        any other variable, then ``count`` (int32) and ``valid_fraction`` (float32). Rows are
        sorted by parcel (store order) then time; parcels never observed at a time have NaN
        values, count 0 and ``valid = 0``.
    """
    for name in ("count", "valid_fraction"):
        if name not in ds:
            raise ExtractValueError(
                f"to_table: the dataset has no {name!r} variable (has {list(ds.data_vars)})"
            )
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ExtractValueError(f"min_valid_fraction={min_valid_fraction!r} must be within [0, 1]")
    ds = ds.transpose("parcel", "time")
    n_p, n_t = ds.sizes["parcel"], ds.sizes["time"]
    times = pd.DatetimeIndex(ds["time"].values)
    dates = np.asarray(times.strftime("%Y-%m-%d"), dtype=object)
    count = ds["count"].values
    frac = ds["valid_fraction"].values
    with np.errstate(invalid="ignore"):
        valid = ((frac >= min_valid_fraction) & (count > 0)).astype(np.int8)
    columns: dict[str, np.ndarray] = {
        "parcel_id": np.repeat(ds["parcel"].values.astype(str).astype(object), n_t),
        "date": np.tile(dates, n_p),
        "valid": valid.ravel(),
    }
    ordered = [v for name in INDEX_NAMES for v in (name, f"{name}_std") if v in ds]
    others = [str(v) for v in ds.data_vars if v not in ordered and v not in ("count", "valid_fraction")]
    for name in [*ordered, *others]:
        columns[name] = ds[name].values.ravel()
    columns["count"] = count.astype(np.int32).ravel()
    columns["valid_fraction"] = frac.astype(np.float32).ravel()
    return pd.DataFrame(columns)


def write_table(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``out`` as CSV or Parquet, chosen by the extension, atomically.

    The table is written to a temporary file beside ``out`` and moved into place with
    :func:`os.replace`, so a reader never sees a half-written file.

    Raises
    ------
    TableFormatError
        When the extension is neither ``.csv`` nor ``.parquet`` (or ``.pq``).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise TableFormatError(f"{out}: unknown table format {suffix!r}; use a .csv or .parquet file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %d rows to %s", len(df), out)
    return out

"""The per-tile time-series store: a Zarr hierarchy holding one ``(parcel, time)`` slot per acquisition.

Layout and why
--------------
::

    <path>/zarr.json                    root group (attribute ``s3tr_series_store`` = layout version)
    <path>/parcels-v000001/             the parcel ids (str) in store order, one Zarr dataset per version
    <path>/t20200104T101559000000-v000001/   one acquisition: every variable on (parcel, time=1)

Each acquisition is its own small Zarr dataset. An append writes the new slot into a temporary
directory beside the store and moves it in with one ``os.rename`` (atomic on a POSIX file system);
re-adding an existing time writes a slot with a higher version and only then removes the older one.
A crash at any point therefore leaves every earlier acquisition untouched: the reader takes the
highest complete version of each time and ignores temporary leftovers (cleaned at the next
append). This costs a few milliseconds per slot at load time, instead of rewriting the whole
season on each night (appending to one big Zarr array would need its metadata and data updated
non-atomically, and inserting a late acquisition in time order would move every later slot).

Parcels
-------
The parcel list is fixed at creation, in the order of the first dataset appended. When a later
dataset brings parcels unknown to the store, they are appended to the end of the list (a new
``parcels-v`` version, written atomically before the slot that uses it); earlier slots read as
not observed for them (NaN values, ``count`` 0, ``valid_fraction`` NaN). Because the list only
grows, a slot stores no ids: its rows are the first ``n_parcels`` ids of the current list. Parcels
known to the store but absent from a dataset are likewise not observed at that time.

One writer per store at a time (the nightly unit of work is one tile); readers may run at any time.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from s3tr.extract.errors import SeriesStoreError
from s3tr.extract.table import DEFAULT_MIN_VALID_FRACTION, to_table, write_table
from s3tr.frames import isin

__all__ = ["SeriesStore"]

log = logging.getLogger(__name__)

_LAYOUT = 1
_SLOT = re.compile(r"^t(\d{8}T\d{12})-v(\d{6})$")
_PARCELS = re.compile(r"^parcels-v(\d{6})$")
_TIME_FMT = "%Y%m%dT%H%M%S%f"


def _time_key(t: np.datetime64) -> str:
    return pd.Timestamp(t).strftime(_TIME_FMT)


class SeriesStore:
    """Per-tile Zarr store of the parcel series, appended one acquisition at a time.

    Parameters
    ----------
    path
        Directory of the store (created at the first :meth:`append`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SeriesStore({str(self.path)!r})"

    # ------------------------------------------------------------------ listing
    def _check_root(self) -> None:
        meta = self.path / "zarr.json"
        if not meta.is_file():
            raise SeriesStoreError(
                f"{self.path}: not a series store (no zarr.json); was it created by append()?"
            )
        attrs = zarr.open_group(str(self.path), mode="r").attrs
        if attrs.get("s3tr_series_store") != _LAYOUT:
            raise SeriesStoreError(
                f"{self.path}: not an s3tr series store of layout {_LAYOUT} (attributes: {dict(attrs)})"
            )

    def _latest(self, pattern: re.Pattern[str]) -> dict[str, tuple[int, Path]]:
        """Highest version of each key among the complete entries matching ``pattern``."""
        best: dict[str, tuple[int, Path]] = {}
        if not self.path.is_dir():
            return best
        for entry in self.path.iterdir():
            m = pattern.match(entry.name)
            if not m or not (entry / "zarr.json").is_file():
                continue
            key = m.group(1) if pattern is _SLOT else ""
            version = int(m.group(m.lastindex or 1))
            if key not in best or version > best[key][0]:
                best[key] = (version, entry)
        return best

    def exists(self) -> bool:
        """Whether the store has been created."""
        return (self.path / "zarr.json").is_file()

    def indices(self) -> tuple[str, ...]:
        """The indices the store holds (each with its ``_std``), sorted; empty before the first append."""
        if not self.exists():
            return ()
        variables = set(zarr.open_group(str(self.path), mode="r").attrs.get("variables", []))
        return tuple(sorted(v for v in variables if f"{v}_std" in variables))

    def parcels(self) -> np.ndarray:
        """Parcel ids (object array of str) in store order; empty before the first append."""
        latest = self._latest(_PARCELS)
        if not latest:
            return np.array([], dtype=object)
        _, entry = latest[""]
        with xr.open_zarr(entry, consolidated=False, chunks=None) as ds:
            return np.array([str(v) for v in ds["parcel"].values], dtype=object)

    def times(self) -> pd.DatetimeIndex:
        """Acquisition times held by the store, sorted (UTC, tz-naive)."""
        keys = sorted(self._latest(_SLOT))
        return pd.DatetimeIndex([pd.to_datetime(k, format=_TIME_FMT) for k in keys], name="time").as_unit(
            "ns"
        )

    # ------------------------------------------------------------------ writing
    def _move_in(self, tmp: Path, final: Path) -> None:
        # rename(2) onto a name that does not exist yet: atomic, and never overwrites a slot.
        os.rename(tmp, final)

    def _write_dataset(self, ds: xr.Dataset, name: str) -> None:
        tmp = self.path.parent / f".{self.path.name}.tmp-{uuid.uuid4().hex}"
        try:
            ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
            self._move_in(tmp, self.path / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _cleanup(self) -> None:
        """Remove superseded versions and temporary leftovers of crashed appends."""
        keep = {entry for _, entry in self._latest(_SLOT).values()}
        keep |= {entry for _, entry in self._latest(_PARCELS).values()}
        for entry in self.path.iterdir():
            if (_SLOT.match(entry.name) or _PARCELS.match(entry.name)) and entry not in keep:
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            shutil.rmtree(entry, ignore_errors=True)

    def append(self, ds: xr.Dataset) -> None:
        """Add (or replace) the acquisitions of ``ds``.

        Parameters
        ----------
        ds
            Dataset on dims ``(parcel, time)`` with a datetime ``time`` coordinate (UTC, one or
            more acquisitions) and str-convertible parcel ids; variables ``ndvi, ndvi_std, ...``
            (stored as float32), ``count`` (int32) and ``valid_fraction`` (float32). Every append
            must carry the same variables as the first one.

        Notes
        -----
        A time already in the store is replaced (never duplicated); the store keeps times in
        sorted order whatever the order of the appends. New parcels extend the parcel list (see
        the module notes).

        Raises
        ------
        SeriesStoreError
            Wrong dims, non-datetime or duplicate times, duplicate parcel ids, or variables that
            differ from those already stored.
        """
        if set(ds.dims) != {"parcel", "time"}:
            raise SeriesStoreError(f"{self.path}: append needs dims (parcel, time), got {tuple(ds.dims)}")
        if "count" not in ds or "valid_fraction" not in ds:
            raise SeriesStoreError(f"{self.path}: append needs 'count' and 'valid_fraction' variables")
        times = ds["time"].values
        if not np.issubdtype(times.dtype, np.datetime64):
            raise SeriesStoreError(
                f"{self.path}: time coordinate must be datetimes (UTC), got {times.dtype}; "
                "pass time= to ParcelRaster.statistics_many"
            )
        if pd.Index(times).duplicated().any():
            raise SeriesStoreError(f"{self.path}: duplicate times in the appended dataset")
        ids = ds["parcel"].values.astype(str).astype(object)
        if pd.Index(ids).duplicated().any():
            raise SeriesStoreError(f"{self.path}: duplicate parcel ids in the appended dataset")
        variables = sorted(str(v) for v in ds.data_vars)

        if self.path.exists() and not self.exists() and any(self.path.iterdir()):
            raise SeriesStoreError(f"{self.path}: exists and is not a series store; choose another path")
        if not self.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            root = zarr.open_group(str(self.path), mode="w", zarr_format=3)
            root.attrs.update({"s3tr_series_store": _LAYOUT, "variables": variables})
        self._check_root()
        attrs = zarr.open_group(str(self.path), mode="r").attrs
        if list(attrs.get("variables", [])) != variables:
            raise SeriesStoreError(
                f"{self.path}: appended variables {variables} differ from the stored ones "
                f"{attrs.get('variables')}; a store holds one set of variables"
            )

        # Parcel list: extend when new ids arrive, written before any slot that needs it.
        latest = self._latest(_PARCELS)
        store_ids = self.parcels()
        new = ids[~isin(ids, store_ids)]
        if len(new) or not latest:
            if len(store_ids):
                log.warning("%s: %d new parcel(s) appended to the store's parcel list", self.path, len(new))
            store_ids = np.concatenate([store_ids, new]).astype(object)
            version = (latest[""][0] if latest else 0) + 1
            self._write_dataset(xr.Dataset(coords={"parcel": store_ids}), f"parcels-v{version:06d}")

        aligned = ds.assign_coords(parcel=ids).reindex(parcel=store_ids)
        slots = self._latest(_SLOT)
        for i, t in enumerate(times):
            one = aligned.isel(time=[i])
            out = xr.Dataset(attrs={"n_parcels": len(store_ids)})
            for name in ds.data_vars:
                da = one[name].transpose("parcel", "time")
                if name == "count":
                    data = np.nan_to_num(da.values, nan=0).astype(np.int32)
                else:
                    data = da.values.astype(np.float32)
                out[name] = (("parcel", "time"), data)
            out = out.assign_coords(time=np.asarray([t]).astype("datetime64[ns]"))
            key = _time_key(t)
            version = slots[key][0] + 1 if key in slots else 1
            self._write_dataset(out, f"t{key}-v{version:06d}")
            log.info("%s: %s %s", self.path, "replaced" if version > 1 else "added", pd.Timestamp(t))
        self._cleanup()

    # ------------------------------------------------------------------ reading
    def load(self) -> xr.Dataset:
        """The whole series: a Dataset ``(parcel, time)``, times sorted, parcels in store order.

        Returns
        -------
        xarray.Dataset
            The stored variables (float32; ``count`` int32) with coordinates ``parcel`` (str) and
            ``time`` (datetime64[ns], UTC). Parcels not observed at a time: NaN, count 0,
            ``valid_fraction`` NaN.
        """
        self._check_root()
        ids = self.parcels()
        n = len(ids)
        parts = []
        for _key, (_v, entry) in sorted(self._latest(_SLOT).items()):
            # chunks=None: read straight into numpy; a dask graph per slot doubled the time (demo, 86 slots).
            with xr.open_zarr(entry, consolidated=False, chunks=None) as slot:
                slot = slot.load()
            k = slot.sizes["parcel"]
            if k > n:
                raise SeriesStoreError(f"{entry}: slot has {k} parcels but the store lists {n}")
            if k < n:
                slot = slot.pad(parcel=(0, n - k))
                slot["count"] = slot["count"].fillna(0)
            parts.append(slot.drop_vars("parcel", errors="ignore"))
        attrs = zarr.open_group(str(self.path), mode="r").attrs
        if not parts:
            data = {
                v: (("parcel", "time"), np.empty((n, 0), np.int32 if v == "count" else np.float32))
                for v in attrs.get("variables", [])
            }
            return xr.Dataset(data, coords={"parcel": ids, "time": np.array([], "datetime64[ns]")})
        ds = xr.concat(parts, dim="time", data_vars="all", coords="minimal", join="exact")
        ds["count"] = ds["count"].astype(np.int32)
        ds.attrs = {}
        return ds.assign_coords(parcel=ids)

    def clear_dates(
        self, parcels: Iterable[str], *, min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION
    ) -> dict[str, list[date]]:
        """Dates (UTC) of the clear acquisitions of each of ``parcels`` that the store holds.

        Clear as in :meth:`to_table`: ``valid_fraction >= min_valid_fraction`` and ``count > 0``. Only
        those two arrays of each slot are read, straight from zarr: opening each slot as a dataset cost
        2.1 s of the demo's 7.6 s of image chips, which ask this for every parcel with a case.

        Returns
        -------
        dict
            ``parcel id -> sorted dates``; parcels never clear (or not in the store) are absent.
        """
        ids = self.parcels()
        rows = np.flatnonzero(isin(ids, parcels))  # ascending: parcels appended late form a suffix
        if not rows.size:
            return {}
        days: list[date] = []
        columns: list[np.ndarray] = []
        for key, (_v, entry) in sorted(self._latest(_SLOT).items()):
            slot = zarr.open_group(str(entry), mode="r")
            count = np.asarray(slot["count"][:, 0])
            fraction = np.asarray(slot["valid_fraction"][:, 0])
            here = rows[rows < len(count)]  # parcels added after this slot was written: not seen
            clear = np.zeros(len(rows), dtype=bool)
            with np.errstate(invalid="ignore"):
                clear[: len(here)] = (fraction[here] >= min_valid_fraction) & (count[here] > 0)
            days.append(datetime.strptime(key, _TIME_FMT).date())
            columns.append(clear)
        if not columns:
            return {}
        matrix = np.stack(columns, axis=1)
        return {
            str(ids[r]): [days[k] for k in np.flatnonzero(matrix[j])]
            for j, r in enumerate(rows)
            if matrix[j].any()
        }

    def to_table(self, *, min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION) -> pd.DataFrame:
        """The long table of the whole store (see :func:`s3tr.extract.table.to_table`)."""
        return to_table(self.load(), min_valid_fraction=min_valid_fraction)

    def export(
        self, out: str | os.PathLike[str], *, min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION
    ) -> Path:
        """Write the long table to ``out`` (``.csv`` or ``.parquet``, by extension)."""
        return write_table(self.to_table(min_valid_fraction=min_valid_fraction), out)

"""Parcel time-series extraction: parcel→pixel index, fused per-parcel statistics, Zarr series store.

``ParcelRaster`` indexes parcels once per grid and reduces every date in one pass;
``SeriesStore`` keeps the per-tile ``(parcel, time)`` series; ``extract_raster`` gives the
statistics of any single- or multi-band raster (the ``s3tr extract`` command).
"""

from __future__ import annotations

from s3tr.extract.errors import (
    ExtractError,
    ExtractParcelsError,
    ExtractRasterError,
    ExtractValueError,
    SeriesStoreError,
    TableFormatError,
)
from s3tr.extract.parcel_raster import ParcelRaster
from s3tr.extract.raster import extract_raster, read_parcels
from s3tr.extract.store import SeriesStore
from s3tr.extract.table import DEFAULT_MIN_VALID_FRACTION, INDEX_NAMES, to_table, write_table

__all__ = [
    "DEFAULT_MIN_VALID_FRACTION",
    "INDEX_NAMES",
    "ExtractError",
    "ExtractParcelsError",
    "ExtractRasterError",
    "ExtractValueError",
    "ParcelRaster",
    "SeriesStore",
    "SeriesStoreError",
    "TableFormatError",
    "extract_raster",
    "read_parcels",
    "to_table",
    "write_table",
]

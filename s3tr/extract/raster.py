"""Per-parcel statistics of any single- or multi-band raster (the ``s3tr extract`` command)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.errors import RasterioError

from s3tr.extract.errors import ExtractParcelsError, ExtractRasterError, ExtractValueError
from s3tr.extract.parcel_raster import ParcelRaster, find_column

__all__ = ["extract_raster", "read_parcels"]

log = logging.getLogger(__name__)


def read_parcels(parcels_path: str | os.PathLike[str], *, id_column: str = "id_parcel") -> gpd.GeoDataFrame:
    """Read a parcels file (GeoPackage, GeoParquet, Shapefile, GeoJSON) for extraction.

    Raises
    ------
    ExtractParcelsError
        File missing or unreadable, no feature, no CRS, or no ``id_column`` (matched
        case-insensitively); the message names the file.
    """
    path = Path(parcels_path)
    if not path.exists():
        raise ExtractParcelsError(f"{path}: parcels file not found")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio/pyarrow raise many types; all mean "cannot read this file"
        raise ExtractParcelsError(f"{path}: cannot read parcels ({exc})") from exc
    if len(gdf) == 0:
        raise ExtractParcelsError(f"{path}: the parcels file has no feature")
    if gdf.crs is None:
        raise ExtractParcelsError(
            f"{path}: the parcels have no CRS; write the file with one (e.g. EPSG:2154)"
        )
    find_column(gdf, id_column, source=str(path))
    return gdf


def extract_raster(
    parcels_path: str | os.PathLike[str],
    raster_path: str | os.PathLike[str],
    *,
    id_column: str = "id_parcel",
    scale: float = 1.0,
    offset: float = 0.0,
) -> pd.DataFrame:
    """Statistics of every band of a raster over every parcel.

    Pixels equal to the raster's nodata (or masked by its internal mask, or NaN) are invalid; the
    others are converted as ``value * scale + offset``. Because that map is linear it is applied
    to the statistics of the raw values (``mean * scale + offset``, ``std * |scale|``), which is
    the same result with no rounding of the scaled pixels.

    Parameters
    ----------
    parcels_path
        Parcels file in any CRS (reprojected to the raster's CRS).
    raster_path
        GeoTIFF (or any GDAL raster) with a CRS; each band is one date or variable.
    id_column
        Column of unique parcel ids (case-insensitive match).
    scale, offset
        Applied to valid pixel values after masking.

    Returns
    -------
    pandas.DataFrame
        Columns ``parcel_id`` (str), ``band`` (int, from 1), ``mean``, ``std`` (float64, ddof 0,
        NaN without valid pixel), ``count`` (int32 valid pixels) and ``valid_fraction`` (float64,
        count / parcel pixels, 0 for a parcel with no pixel); one row per parcel and band, parcels
        in file order.

    Raises
    ------
    ExtractParcelsError
        Parcels file missing, unreadable, empty, without CRS or id column.
    ExtractRasterError
        Raster missing, truncated or corrupt, or without CRS.
    """
    if not (np.isfinite(scale) and np.isfinite(offset)):
        raise ExtractValueError(f"scale={scale!r} and offset={offset!r} must be finite numbers")
    parcels = read_parcels(parcels_path, id_column=id_column)
    col = find_column(parcels, id_column, source=str(parcels_path))
    path = Path(raster_path)
    if not path.exists():
        raise ExtractRasterError(f"{path}: raster not found")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise ExtractRasterError(f"{path}: the raster has no CRS; cannot place the parcels on it")
            try:
                pr = ParcelRaster.from_parcels(
                    parcels, transform=src.transform, shape=src.shape, crs=src.crs, id_column=col
                )
            except ExtractParcelsError as exc:
                raise ExtractParcelsError(f"{parcels_path}: {exc}") from exc
            n_bands = src.count
            mean = np.empty((len(pr), n_bands))
            std = np.empty((len(pr), n_bands))
            count = np.empty((len(pr), n_bands), dtype=np.int32)
            for b in range(1, n_bands + 1):
                # One band at a time bounds memory to one plane; the raw values of integer rasters
                # up to 24 bits are exact in float32.
                band = src.read(b, masked=True)
                dtype = (
                    np.float64 if band.dtype in (np.float64, np.int32, np.uint32, np.int64) else np.float32
                )
                plane = np.ma.filled(band.astype(dtype), np.nan)
                ds = pr.statistics(plane[None])
                mean[:, b - 1] = ds["mean"].values[:, 0]
                std[:, b - 1] = ds["std"].values[:, 0]
                count[:, b - 1] = ds["count"].values[:, 0]
    except RasterioError as exc:
        raise ExtractRasterError(f"{path}: cannot read the raster ({exc}); is the file complete?") from exc
    n_p = len(pr)
    npx = pr.pixel_counts[:, None]
    frac = np.where(npx > 0, count / np.maximum(npx, 1), 0.0)
    df = pd.DataFrame(
        {
            "parcel_id": np.repeat(pr.ids.astype(str).astype(object), n_bands),
            "band": np.tile(np.arange(1, n_bands + 1), n_p),
            "mean": (mean * scale + offset).ravel(),
            "std": (std * abs(scale)).ravel(),
            "count": count.ravel(),
            "valid_fraction": frac.ravel(),
        }
    )
    log.info("%s over %s: %d parcels x %d bands", path, parcels_path, n_p, n_bands)
    return df

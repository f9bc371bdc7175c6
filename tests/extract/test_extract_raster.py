"""extract_raster on GeoTIFFs written here: nodata, scale/offset, reprojection, bad inputs."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine

from s3tr.errors import ImageryReadError, ParcelFileError
from s3tr.extract import TableFormatError, extract_raster, write_table

TRANSFORM = Affine(10, 0, 600000, 0, -10, 5000000)


def _raster(path: Path, data: np.ndarray, nodata=-32768) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs="EPSG:32632",
        transform=TRANSFORM,
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


def _parcels(path: Path, crs: str = "EPSG:32632") -> Path:
    polys = [shapely.box(600000, 4999900, 600050, 5000000), shapely.box(600100, 4999800, 600200, 4999950)]
    gdf = gpd.GeoDataFrame({"ID_PARCEL": ["x1", "x2"]}, geometry=polys, crs="EPSG:32632").to_crs(crs)
    gdf.to_file(path)
    return path


def test_nodata_scale_offset_and_reprojection(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(-2000, 9000, (3, 30, 30)).astype(np.int16)
    data[0, :5, :2] = -32768
    tif = _raster(tmp_path / "ndvi.tif", data)
    for crs in ("EPSG:32632", "EPSG:2154"):
        gpkg = _parcels(tmp_path / f"parcels_{crs[5:]}.gpkg", crs)
        df = extract_raster(gpkg, tif, scale=1e-4, offset=-0.1)
        assert list(df.columns) == ["parcel_id", "band", "mean", "std", "count", "valid_fraction"]
        assert df["band"].tolist() == [1, 2, 3, 1, 2, 3]
        block = data[:, 0:10, 0:5].reshape(3, -1).astype(float)  # parcel x1: rows 0-9, cols 0-4
        for b in range(3):
            v = block[b][block[b] != -32768] * 1e-4 - 0.1
            row = df[(df.parcel_id == "x1") & (df.band == b + 1)].iloc[0]
            assert row["count"] == len(v) and row["valid_fraction"] == len(v) / 50
            assert row["mean"] == pytest.approx(v.mean(), abs=1e-12)
            assert row["std"] == pytest.approx(v.std(), abs=1e-12)
    out = write_table(df, tmp_path / "stats.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), df)
    with pytest.raises(TableFormatError, match=r"\.csv or \.parquet"):
        write_table(df, tmp_path / "stats.xlsx")


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    data = np.ones((2, 300, 300), dtype=np.float32)
    tif = _raster(tmp_path / "big.tif", data, nodata=None)
    gpkg = _parcels(tmp_path / "p.gpkg")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    with pytest.raises(ImageryReadError, match=r"truncated.tif"):
        extract_raster(gpkg, truncated)
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all")
    with pytest.raises(ImageryReadError, match=r"garbage.tif"):
        extract_raster(gpkg, garbage)
    empty = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"id_parcel": []}, geometry=[], crs="EPSG:32632").to_file(empty)
    with pytest.raises(ParcelFileError, match=r"empty.gpkg.*no feature"):
        extract_raster(empty, tif)
    with pytest.raises(ParcelFileError, match=r"p.gpkg.*no id column 'code'"):
        extract_raster(gpkg, tif, id_column="code")
    with pytest.raises(ParcelFileError, match=r"missing.gpkg"):
        extract_raster(tmp_path / "missing.gpkg", tif)

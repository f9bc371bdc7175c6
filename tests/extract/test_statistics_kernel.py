"""The fused reduction on the paths the small-grid property tests do not reach.

Long runs next to runs of every short length (the masked 4-lane loop and its run ends), more
planes than one kernel call takes (15 planes: calls of 8 and 7, so passes over 8, 4, 2 and 1
planes at once), float64 input, and several threads (parcels cut by a chunk boundary, merged
with Chan's formula) — all against plain numpy.
"""

from __future__ import annotations

import geopandas as gpd
import numba
import numpy as np
import pytest
import shapely
from affine import Affine

from s3tr.extract import ParcelRaster
from s3tr.extract.parcel_raster import _MAX_PLANES_PER_CALL

CRS = "EPSG:32631"
T = Affine(20, 0, 500000, 0, -20, 5000000)
SHAPE = (40, 150)


def _parcels() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    geoms = [
        shapely.box(500000, 4999200, 503000, 5000000),  # whole rows of 150 px: long runs
        shapely.box(500100, 4999500, 500900, 4999900),  # 40 px wide, overlapping the first
        shapely.Polygon([(501000, 4999300), (502900, 4999950), (501500, 4999250)]),  # runs of every length
    ]
    for _ in range(40):  # small parcels: runs of 1 to 12 px, some cut by the chunk boundary
        x, y = rng.uniform(500000, 503000), rng.uniform(4999200, 5000000)
        geoms.append(shapely.box(x, y, x + rng.uniform(10, 240), y + rng.uniform(10, 400)))
    return gpd.GeoDataFrame({"id": range(len(geoms))}, geometry=geoms, crs=CRS)


def _naive(pr: ParcelRaster, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = values.reshape(values.shape[0], -1).astype(np.float64)
    mean = np.full((len(pr), len(flat)), np.nan)
    std = np.full_like(mean, np.nan)
    count = np.zeros(mean.shape, dtype=np.int64)
    for i in range(len(pr)):
        r, c = pr.parcel_pixels(i)
        px = flat[:, r * SHAPE[1] + c]
        for k in range(len(flat)):
            v = px[k][~np.isnan(px[k])]
            count[i, k] = len(v)
            if len(v):
                mean[i, k] = v.mean()
                std[i, k] = np.sqrt(((v - mean[i, k]) ** 2).mean())
    return mean, std, count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_short_runs_many_planes_threads(dtype) -> None:
    pr = ParcelRaster.from_parcels(_parcels(), transform=T, shape=SHAPE, crs=CRS, id_column="id")
    lengths = pr.runs[1]
    assert lengths.max() >= 64 and (lengths < 32).sum() > 100  # both loops are exercised
    rng = np.random.default_rng(3)
    n_planes = _MAX_PLANES_PER_CALL + 3  # two kernel calls
    values = (2e3 + rng.normal(0, 0.05, (n_planes, *SHAPE))).astype(dtype)
    values[rng.random(values.shape) < 0.3] = np.nan
    values[4] = np.nan  # a plane without any valid pixel
    mean, std, count = _naive(pr, values)
    threads = numba.get_num_threads()
    try:
        results = []
        for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(n)
            results.append(pr.statistics(values))
    finally:
        numba.set_num_threads(threads)
    for ds in results:
        np.testing.assert_array_equal(ds["count"].values, count)
        np.testing.assert_allclose(ds["mean"].values, mean, rtol=1e-12)
        np.testing.assert_allclose(ds["std"].values, std, rtol=1e-7)
    assert np.isnan(results[0]["mean"].values[:, 4]).all()

"""ParcelRaster: the pixel-centre rule against rasterize, and the statistics against plain numpy."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import rasterize

from s3tr.extract import ExtractParcelsError, ExtractValueError, ParcelRaster

CRS = "EPSG:32631"
TRANSFORM = Affine(20, 0, 500000, 0, -20, 5000000)
SHAPE = (24, 30)  # grid spans x 500000..500600, y 4999520..5000000


def _reference_pixels(geom: shapely.Geometry, shape=SHAPE, transform=TRANSFORM) -> np.ndarray:
    if geom is None or geom.is_empty:
        return np.empty(0, dtype=np.int64)
    burnt = rasterize(
        [(geom, 1)], out_shape=shape, transform=transform, fill=0, all_touched=False, dtype="uint8"
    )
    return np.flatnonzero(burnt)


def _flat(pr: ParcelRaster, i: int) -> np.ndarray:
    r, c = pr.parcel_pixels(i)
    return r * pr.grid.shape[1] + c


# Coordinates on a quarter-pixel lattice hit pixel centres and edges exactly (the hard cases),
# the float ones everything in between; the range reaches 100 m beyond the grid on every side.
coord_x = st.one_of(st.integers(-20, 140).map(lambda k: 500000 - 100 + 5.0 * k), st.floats(499900, 500700))
coord_y = st.one_of(st.integers(-20, 116).map(lambda k: 4999420 + 5.0 * k), st.floats(4999420, 5000100))
size = st.one_of(st.floats(0.5, 19.0), st.floats(19.0, 300.0), st.integers(1, 30).map(lambda k: 10.0 * k))


@st.composite
def polygon(draw):
    x, y, w, h = draw(coord_x), draw(coord_y), draw(size), draw(size)
    kind = draw(st.sampled_from(["box", "triangle", "rotated"]))
    if kind == "box":
        return shapely.box(x, y, x + w, y + h)
    if kind == "triangle":
        return shapely.Polygon(
            [(x, y), (x + w, y + draw(st.floats(-50, 50))), (x + draw(st.floats(0, 1)) * w, y + h)]
        )
    return shapely.affinity.rotate(shapely.box(x, y, x + w, y + h), draw(st.floats(0, 90)))


@st.composite
def parcel_sets(draw):
    polys = draw(st.lists(polygon(), min_size=1, max_size=12))
    # Touching neighbours: split some polygons in two along a vertical line (shared edge).
    out = []
    for g in polys:
        if draw(st.booleans()):
            minx, miny, maxx, maxy = g.bounds
            cut = draw(
                st.sampled_from([minx + (maxx - minx) / 2, 500000 + 20 * round((minx - 500000) / 20 + 1)])
            )
            cut = min(max(cut, minx + 0.25), maxx - 0.25)
            if not minx < cut < maxx:
                out.append(g)
                continue
            left = shapely.clip_by_rect(g, minx - 1, miny - 1, cut, maxy + 1)
            right = shapely.clip_by_rect(g, cut, miny - 1, maxx + 1, maxy + 1)
            out += [p for p in (left, right) if not p.is_empty]
        else:
            out.append(g)
    return out


@settings(max_examples=60, deadline=None)
@given(parcel_sets(), st.sampled_from([0.0, 0.0, 5.0, 12.5]))
def test_pixel_centre_rule_matches_rasterize(polys, buffer_m) -> None:
    gdf = gpd.GeoDataFrame({"id": [f"p{i}" for i in range(len(polys))]}, geometry=polys, crs=CRS)
    pr = ParcelRaster.from_parcels(
        gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id", inward_buffer_m=buffer_m
    )
    assert list(pr.ids) == list(gdf["id"])
    for i, g in enumerate(polys):
        expected = _reference_pixels(g.buffer(-buffer_m) if buffer_m else g)
        np.testing.assert_array_equal(_flat(pr, i), expected)
        assert pr.pixel_counts[i] == len(expected)


@settings(max_examples=25, deadline=None)
@given(st.lists(polygon(), min_size=1, max_size=6))
def test_reprojection_from_geographic(polys) -> None:
    utm = gpd.GeoSeries(polys, crs=CRS)
    wgs = gpd.GeoDataFrame({"id": range(len(polys))}, geometry=utm.to_crs("EPSG:4326"), crs="EPSG:4326")
    pr = ParcelRaster.from_parcels(wgs, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id")
    back = wgs.to_crs(CRS).geometry
    for i, g in enumerate(back):
        np.testing.assert_array_equal(_flat(pr, i), _reference_pixels(g))


def test_overlapping_and_degenerate_parcels() -> None:
    big = shapely.box(500000, 4999600, 500400, 5000000)
    inner = shapely.box(500100, 4999700, 500200, 4999800)  # fully inside big: 5 x 5 pixels
    tiny_centre = shapely.box(500049, 4999969, 500051, 4999971)  # holds the centre (500050, 4999970)
    tiny_off = shapely.box(500041, 4999961, 500044, 4999964)  # smaller than a pixel, no centre
    outside = shapely.box(600000, 4000000, 600100, 4000100)
    shrinks = shapely.box(500500, 4999600, 500508, 4999700)  # 8 m wide: a 5 m buffer empties it
    gdf = gpd.GeoDataFrame(
        {"id": ["big", "inner", "tiny_c", "tiny_o", "out", "thin", "none"]},
        geometry=[big, inner, tiny_centre, tiny_off, outside, shrinks, None],
        crs=CRS,
    )
    pr = ParcelRaster.from_parcels(
        gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id", inward_buffer_m=0
    )
    assert list(pr.pixel_counts) == [400, 25, 1, 0, 0, 0, 0]
    assert set(_flat(pr, 1)) <= set(_flat(pr, 0))  # the shared pixels belong to both
    pr5 = ParcelRaster.from_parcels(
        gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id", inward_buffer_m=5
    )
    assert pr5.pixel_counts[5] == 0 and pr5.pixel_counts[0] == len(_reference_pixels(big.buffer(-5)))
    values = np.ones((2, *SHAPE), dtype=np.float32)
    ds = pr.statistics(values)
    assert ds["count"].sel(parcel="tiny_o").values.tolist() == [0, 0]
    assert np.isnan(ds["mean"].sel(parcel="none").values).all()
    assert ds["valid_fraction"].sel(parcel="none").values.tolist() == [0.0, 0.0]
    assert ds["valid_fraction"].sel(parcel="inner").values.tolist() == [1.0, 1.0]


def _naive(pr: ParcelRaster, values: np.ndarray):
    t = values.shape[0]
    flat = values.reshape(t, -1).astype(np.float64)
    mean = np.full((len(pr), t), np.nan)
    std = np.full((len(pr), t), np.nan)
    count = np.zeros((len(pr), t), dtype=np.int64)
    for i in range(len(pr)):
        px = flat[:, _flat(pr, i)]
        for k in range(t):
            v = px[k][~np.isnan(px[k])]
            count[i, k] = len(v)
            if len(v):
                mean[i, k] = v.sum() / len(v)
                std[i, k] = np.sqrt(((v - mean[i, k]) ** 2).sum() / len(v))
    return mean, std, count


@settings(max_examples=30, deadline=None)
@given(parcel_sets(), st.integers(0, 2**31), st.floats(0.0, 0.9), st.sampled_from([0.0, 1e3, -5e4]))
def test_statistics_equal_naive_numpy(polys, seed, nan_share, level) -> None:
    gdf = gpd.GeoDataFrame({"id": range(len(polys))}, geometry=polys, crs=CRS)
    pr = ParcelRaster.from_parcels(gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id")
    rng = np.random.default_rng(seed)
    # A large level with a small spread is where a naive float sum of squares loses the std.
    values = (level + rng.normal(0, 0.01, (3, *SHAPE))).astype(np.float32)
    values[rng.random(values.shape) < nan_share] = np.nan
    ds = pr.statistics(values)
    mean, std, count = _naive(pr, values)
    np.testing.assert_array_equal(ds["count"].values, count)
    assert ds["count"].dtype == np.int32
    np.testing.assert_allclose(ds["mean"].values, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ds["std"].values, std, rtol=1e-6, atol=1e-9)
    frac = np.where(pr.pixel_counts[:, None] > 0, count / np.maximum(pr.pixel_counts[:, None], 1), 0)
    np.testing.assert_allclose(ds["valid_fraction"].values, frac)


def test_statistics_inputs_and_many() -> None:
    polys = [shapely.box(500000 + 60 * k, 4999600, 500050 + 60 * k, 4999900) for k in range(8)]
    gdf = gpd.GeoDataFrame({"id": [f"f{k}" for k in range(8)]}, geometry=polys, crs=CRS)
    pr = ParcelRaster.from_parcels(gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="ID")
    rng = np.random.default_rng(1)
    stack = rng.random((4, *SHAPE)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.3] = np.nan
    times = np.array(
        ["2024-05-01T10:30", "2024-05-04T10:30", "2024-05-06T10:30", "2024-05-09T10:30"], "datetime64[ns]"
    )
    da = xr.DataArray(stack, dims=("time", "y", "x"), coords={"time": times})
    ref = pr.statistics(stack)
    for variant in (da, da.chunk({"time": 1}), stack.astype(np.float64), stack[:, ::1, :].copy(order="F")):
        ds = pr.statistics(variant)
        np.testing.assert_allclose(ds["mean"].values, ref["mean"].values, rtol=1e-12)
        np.testing.assert_array_equal(ds["count"].values, ref["count"].values)
    assert (pr.statistics(da)["time"].values == times).all()
    assert list(ref["time"].values) == [0, 1, 2, 3]
    names = ["ndvi", "ndmi", "ndwi", "bsi"]
    idx = xr.DataArray(stack, dims=("index", "y", "x"), coords={"index": names}).assign_coords(time=times[0])
    many = pr.statistics_many(idx)
    assert many.sizes == {"parcel": 8, "time": 1} and many["time"].values[0] == times[0]
    for k, name in enumerate(names):
        np.testing.assert_allclose(many[name].values[:, 0], ref["mean"].values[:, k].astype(np.float32))
        np.testing.assert_allclose(
            many[f"{name}_std"].values[:, 0], ref["std"].values[:, k].astype(np.float32)
        )
        assert many[name].dtype == np.float32
    np.testing.assert_array_equal(many["count"].values[:, 0], ref["count"].values[:, 0])
    by_dict = pr.statistics_many({n: stack[k : k + 1] for k, n in enumerate(names)}, time=[times[0]])
    xr.testing.assert_equal(by_dict, many)


def test_bad_inputs() -> None:
    gdf = gpd.GeoDataFrame({"id": ["a", "a"]}, geometry=[shapely.box(0, 0, 1, 1)] * 2, crs=CRS)
    with pytest.raises(ExtractParcelsError, match="duplicate"):
        ParcelRaster.from_parcels(gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id")
    with pytest.raises(ExtractParcelsError, match="no id column 'code'"):
        ParcelRaster.from_parcels(gdf, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="code")
    ok = gdf.assign(id=["a", "b"])
    with pytest.raises(ExtractValueError, match="positive number of metres"):
        ParcelRaster.from_parcels(
            ok, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id", inward_buffer_m=-5
        )
    pr = ParcelRaster.from_parcels(ok, transform=TRANSFORM, shape=SHAPE, crs=CRS, id_column="id")
    with pytest.raises(ExtractValueError, match="do not match the parcel grid"):
        pr.statistics(np.zeros((2, 10, 10), dtype=np.float32))

"""The scan-line index builder against GDAL's rasterize, on the cases where a tie decides.

The builder re-derives GDAL's filled-polygon scan line; these tests hold it to the pixel on
transforms whose inverse rounds (odd pixel sizes and origins), on vertices and edges lying exactly
on pixel centres, on holes, multipolygons with overlapping parts, both ring orientations,
horizontal edges on a row of centres, and degenerate or self-intersecting rings.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.features import rasterize

from s3tr.extract import ParcelRaster
from s3tr.extract._scanline import gdal_inverse

CRS = "EPSG:32631"
# Pixel sizes and origins whose inverse transform rounds: the tie at a centre then depends on
# the exact arithmetic GDAL uses (measured: ``(x - c) / a`` or ``~affine`` disagree with it).
TRANSFORMS = [
    Affine(20, 0, 500000, 0, -20, 5000000),
    Affine(10, 0, 399960, 0, -10, 4900020),
    Affine(0.3, 0, 300000.3, 0, -0.3, 1234567.89),
    Affine(7.7, 0, -1234.5, 0, -7.7, 65432.1),
    Affine(60, 0, 699960, 0, -60, 5300040),
]


def _expected(geom: shapely.Geometry, shape: tuple[int, int], transform: Affine) -> np.ndarray:
    if geom is None or geom.is_empty:
        return np.empty(0, dtype=np.int64)
    burnt = rasterize([(geom, 1)], out_shape=shape, transform=transform, all_touched=False, dtype="uint8")
    return np.flatnonzero(burnt)


@st.composite
def scene(draw):
    transform = draw(st.sampled_from(TRANSFORMS))
    h, w = draw(st.integers(3, 20)), draw(st.integers(3, 20))
    a = transform.a

    def pt(u: float, v: float) -> tuple[float, float]:
        return (transform.c + a * u, transform.f - a * v)

    # Quarter-pixel lattice (hits centres, edges and corners), 3 px beyond the grid.
    lat_u = st.integers(-12, 4 * w + 12).map(lambda k: k / 4)
    lat_v = st.integers(-12, 4 * h + 12).map(lambda k: k / 4)
    geoms = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["box", "poly", "holed", "multi", "line", "bowtie"]))
        us = [draw(lat_u) for _ in range(6)]
        vs = [draw(lat_v) for _ in range(6)]
        if kind == "box":
            g = shapely.box(*pt(min(us[:2]), max(vs[:2])), *pt(max(us[:2]) + 0.25, min(vs[:2]) - 0.25))
        elif kind == "poly":
            g = shapely.Polygon([pt(u, v) for u, v in zip(us, vs, strict=True)])
            g = g if g.is_valid else shapely.make_valid(g)
        elif kind == "holed":
            outer = shapely.box(*pt(min(us[:2]), max(vs[:2]) + 2), *pt(max(us[:2]) + 2, min(vs[:2])))
            hole = shapely.box(*pt(us[2], vs[2] + 1), *pt(us[2] + 1, vs[2]))
            g = outer.difference(hole)
        elif kind == "multi":
            # Overlapping parts: GDAL burns each part on its own, so the parcel is their union.
            p1 = shapely.box(*pt(us[0], vs[0] + 2), *pt(us[0] + 2.5, vs[0]))
            p2 = shapely.box(*pt(us[0] + 1, vs[0] + 3), *pt(us[0] + 3.5, vs[0] + 1))
            g = shapely.MultiPolygon([p1, p2])
        elif kind == "line":
            # Zero-area ring along a row of centres: only GDAL's horizontal-edge rule burns it.
            row = draw(st.integers(0, h - 1)) + 0.5
            g = shapely.Polygon([pt(us[0], row), pt(us[1], row), pt(us[2], row)])
        else:
            g = shapely.Polygon([pt(us[0], vs[0]), pt(us[1], vs[1]), pt(us[1], vs[0]), pt(us[0], vs[1])])
        if draw(st.booleans()):
            g = g.reverse()  # the other ring orientation
        geoms.append(g)
    return transform, (h, w), geoms


@settings(max_examples=150, deadline=None)
@given(scene())
def test_runs_equal_rasterize_on_ties(case) -> None:
    transform, shape, geoms = case
    from s3tr.extract.parcel_raster import _polygonal_only

    geoms = list(_polygonal_only(np.array(geoms, dtype=object)))
    gdf = gpd.GeoDataFrame({"id": range(len(geoms))}, geometry=geoms, crs=CRS)
    pr = ParcelRaster.from_parcels(gdf, transform=transform, shape=shape, crs=CRS, id_column="id")
    for i, g in enumerate(geoms):
        r, c = pr.parcel_pixels(i)
        np.testing.assert_array_equal(
            np.sort(r * shape[1] + c), _expected(g, shape, transform), err_msg=g.wkt
        )


def test_runs_are_maximal_and_in_raster_order() -> None:
    # Two parts of one parcel touching side by side on the same rows make single runs.
    t = TRANSFORMS[0]
    left = shapely.box(500000, 4999800, 500100, 5000000)
    right = shapely.box(500100, 4999800, 500200, 5000000)
    gdf = gpd.GeoDataFrame({"id": ["a"]}, geometry=[shapely.MultiPolygon([left, right])], crs=CRS)
    pr = ParcelRaster.from_parcels(gdf, transform=t, shape=(12, 12), crs=CRS, id_column="id")
    start, length, parcel = pr.runs
    assert list(length) == [10] * 10 and (np.diff(start) == 12).all() and (parcel == 0).all()


def test_gdal_inverse_matches_gdal_rounding() -> None:
    # Same formulas as GDAL's GDALInvGeoTransform (north-up shortcut, general case otherwise).
    t = Affine(0.3, 0, 300000.3, 0, -0.3, 1234567.89)
    inv = gdal_inverse(t)
    assert inv[0] == -t.c / t.a and inv[1] == 1.0 / t.a and inv[3] == -t.f / t.e and inv[5] == 1.0 / t.e
    rot = Affine(10, 2, 100, 1, -10, 200)
    inv = gdal_inverse(rot)
    px = inv[0] + 105.0 * inv[1] + 150.0 * inv[2]
    py = inv[3] + 105.0 * inv[4] + 150.0 * inv[5]
    np.testing.assert_allclose(rot @ (px, py), (105.0, 150.0))

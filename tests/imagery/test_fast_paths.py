"""The fast paths of the imagery chain against independent computations.

- strip-wise decoding of a band (``read_onto_grid``): many strips of a tiled COG give the same
  values as a single full read reduced by plain numpy, for the whole raster and for windows at
  even and odd offsets, written into the caller's plane;
- the fused ``valid_mask`` kernel on any integer dtype, against ``np.isin`` + scipy dilation;
- ``compute_indices`` in row strips, against the formulas evaluated on whole arrays.

Tolerance: the reduced values must be *identical* (``array_equal``) to the float32 reference
formula ``float32(a + b + c + d) * float32(scale / 4) + float32(offset)`` (the sum of four
uint16 is exact in float32), and within 1e-6 of the float64 mean (float32 rounding only).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import s3tr.imagery._reader as reader
import s3tr.imagery.indices as indices_mod
from s3tr.grid import Grid
from s3tr.imagery import compute_indices, valid_mask
from s3tr.imagery.indices import INDICES
from s3tr.imagery.masks import CLOUD_SHADOW_SCL, DEFAULT_INVALID_SCL

CRS = "EPSG:32631"
X0, Y0 = 300000.0, 5000040.0
SCALE, OFFSET = 0.0001, -0.1


@pytest.fixture(scope="module")
def cog10(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A 10 m uint16 tiled (64 x 64) deflate GeoTIFF with scattered nodata (0) pixels."""
    rng = np.random.default_rng(7)
    h, w = 388, 300
    data = rng.integers(1, 65535, (h, w), dtype=np.uint16)
    data[rng.random((h, w)) < 0.01] = 0
    data[:, :3] = 0
    path = tmp_path_factory.mktemp("strips") / "B02.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="uint16",
        crs=CRS,
        transform=Affine(10, 0, X0, 0, -10, Y0),
        nodata=0,
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
    ) as dst:
        dst.write(data, 1)
    return path, data


def reference_2x2(dn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 formula, float64 mean) of 2 x 2 blocks, NaN where any of the four is nodata."""
    h, w = dn.shape[0] // 2, dn.shape[1] // 2
    blocks = dn[: 2 * h, : 2 * w].reshape(h, 2, w, 2).astype(np.int64)
    bad = (blocks == 0).any(axis=(1, 3))
    total = blocks.sum(axis=(1, 3))
    f32 = total.astype(np.float32) * np.float32(SCALE / 4) + np.float32(OFFSET)
    f64 = total / 4.0 * SCALE + OFFSET
    f32[bad] = np.nan
    f64[bad] = np.nan
    return f32, f64


def read(path: Path, grid: Grid, out: np.ndarray | None = None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return reader.read_onto_grid(
            ds, 1, grid, nodata=0, categorical=False, scale=SCALE, offset=OFFSET, out=out
        )


@pytest.mark.parametrize("strip_rows", [64, 128, 10_000])
@pytest.mark.parametrize(
    ("row", "col", "height", "width"),
    [(0, 0, 194, 150), (32, 32, 100, 70), (1, 0, 120, 150), (7, 3, 64, 64), (0, 0, 1, 1)],
)
def test_strips_equal_the_numpy_reduction(
    cog10, monkeypatch: pytest.MonkeyPatch, strip_rows: int, row: int, col: int, height: int, width: int
) -> None:
    """A 20 m window starting ``row``/``col`` 10 m pixels in (odd offsets: not on the 2 x 2 blocks)."""
    path, dn = cog10
    monkeypatch.setattr(reader, "_STRIP_ROWS", strip_rows)
    grid = Grid(CRS, Affine(20, 0, X0 + 10 * col, 0, -20, Y0 - 10 * row), (height, width))
    got = read(path, grid)
    f32, f64 = reference_2x2(dn[row : row + 2 * height, col : col + 2 * width])
    assert got.shape == (height, width) and got.dtype == np.float32
    np.testing.assert_array_equal(got, f32)
    np.testing.assert_allclose(got, f64, rtol=0, atol=1e-6)


def test_strips_write_into_the_given_plane(cog10, monkeypatch: pytest.MonkeyPatch) -> None:
    path, dn = cog10
    monkeypatch.setattr(reader, "_STRIP_ROWS", 64)
    grid = Grid(CRS, Affine(20, 0, X0, 0, -20, Y0), (194, 150))
    stack = np.full((2, 194, 150), 5.0, dtype=np.float32)
    got = read(path, grid, out=stack[1])
    assert got is stack[1] or np.shares_memory(got, stack[1])
    np.testing.assert_array_equal(stack[1], reference_2x2(dn)[0])
    assert (stack[0] == 5.0).all()  # the neighbouring plane is untouched
    with pytest.raises(ValueError, match="float32"):
        read(path, grid, out=np.empty((194, 150), dtype=np.float64))


def test_native_resolution_strips(cog10, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 m grid on the 10 m raster: scale and offset only, strip by strip."""
    path, dn = cog10
    monkeypatch.setattr(reader, "_STRIP_ROWS", 64)
    grid = Grid(CRS, Affine(10, 0, X0 + 10, 0, -10, Y0 - 30), (300, 200))
    got = read(path, grid)
    sub = dn[3:303, 1:201]
    expected = sub.astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET)
    expected[sub == 0] = np.nan
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(
    row0=st.integers(0, 3000),
    nrows=st.integers(1, 5000),
    block_h=st.sampled_from([1, 64, 256, 512, 1024]),
    k=st.integers(1, 3),
    strip=st.integers(1, 2048),
)
def test_strip_bounds_cover_the_window_on_block_rows(
    row0: int, nrows: int, block_h: int, k: int, strip: int
) -> None:
    old = reader._STRIP_ROWS
    reader._STRIP_ROWS = strip
    try:
        b = reader._strip_bounds(row0, nrows, block_h, k)
    finally:
        reader._STRIP_ROWS = old
    assert b[0] == row0 and b[-1] == row0 + nrows
    assert all(x < y for x, y in itertools.pairwise(b))
    for inner in b[1:-1]:
        assert inner % block_h == 0 and (inner - row0) % k == 0


# ------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint16])
@pytest.mark.parametrize("radius", [0, 1, 2])
def test_valid_mask_other_dtypes(dtype: type, radius: int) -> None:
    rng = np.random.default_rng(radius)
    scl = rng.integers(0, 12, (40, 33)).astype(dtype)
    scl[5, 5] = 300  # classes outside 0..255 are simply not listed
    if np.dtype(dtype).kind == "i":
        scl[6, 6] = -1
    invalid = (*DEFAULT_INVALID_SCL, 300)
    got = valid_mask(scl, invalid=invalid, dilate_px=radius)
    seed = np.isin(scl, CLOUD_SHADOW_SCL)
    bad = np.isin(scl, invalid)
    if radius:
        bad |= ndimage.binary_dilation(seed, structure=np.ones((2 * radius + 1,) * 2, dtype=bool))
    np.testing.assert_array_equal(got, ~bad)
    assert not got[5, 5]


def test_valid_mask_fused_kernel_on_a_larger_scene() -> None:
    """Clouds touching every edge, against scipy, uint8 (the lookup-table path)."""
    rng = np.random.default_rng(3)
    scl = rng.choice(np.array([4, 5, 6, 8, 9, 3, 0, 11], dtype=np.uint8), size=(301, 257))
    for radius in (1, 3):
        got = valid_mask(scl, dilate_px=radius)
        seed = np.isin(scl, CLOUD_SHADOW_SCL)
        bad = np.isin(scl, DEFAULT_INVALID_SCL) | ndimage.binary_dilation(
            seed, structure=np.ones((2 * radius + 1,) * 2, dtype=bool)
        )
        np.testing.assert_array_equal(got, ~bad)


# ------------------------------------------------------------------------------ indices
def test_indices_in_strips_equal_whole_array_formulas(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fused pass (normalized differences) and the numpy strips (EVI), bit for bit, in one call."""
    monkeypatch.setattr(indices_mod, "_STRIP_PIXELS", 7 * 23)  # 7 rows per strip, last one short
    rng = np.random.default_rng(11)
    names = ["B02", "B03", "B04", "B8A", "B11"]
    data = rng.uniform(-0.05, 0.6, (len(names), 52, 23)).astype(np.float32)
    data[2, 3, 4] = np.nan
    data[3, 10, 0] = -data[2, 10, 0]  # zero NDVI denominator
    mask = rng.random((52, 23)) > 0.2
    da = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": names})
    got = compute_indices(da, ["ndvi", "evi", "bsi"], mask=mask)
    assert list(got.index.values) == ["ndvi", "evi", "bsi"]
    b = dict(zip(names, data, strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (b["B8A"] - b["B04"]) / (b["B8A"] + b["B04"])
        p, q = b["B11"] + b["B04"], b["B8A"] + b["B02"]
        bsi = (p - q) / (p + q)
        evi = INDICES["evi"].compute(b)
    for name, ref in (("ndvi", ndvi), ("bsi", bsi), ("evi", evi)):
        ref = np.where(np.isfinite(ref) & mask, ref, np.nan).astype(np.float32)
        np.testing.assert_array_equal(got.sel(index=name).values, ref)
    assert np.isnan(got.sel(index="ndvi").values[10, 0])


# ------------------------------------------------------------------------------ allocation
def test_empty_planes_mapped_arrays_behave_like_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    import s3tr.imagery._alloc as alloc

    monkeypatch.setattr(alloc, "_MIN_MAPPED_BYTES", 1)
    a = alloc.empty_planes((3, 40, 50))
    b = alloc.empty_planes((3, 40, 50))
    assert a.shape == (3, 40, 50) and a.dtype == np.float32
    assert a.flags.writeable and a.flags.c_contiguous
    assert not np.shares_memory(a, b)
    a[...] = np.arange(a.size, dtype=np.float32).reshape(a.shape)
    b[...] = -1
    assert a[2, 39, 49] == a.size - 1 and (b == -1).all()
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(a)), a)
    small = alloc.empty_planes((2, 2), np.uint8)
    assert small.dtype == np.uint8 and small.shape == (2, 2)

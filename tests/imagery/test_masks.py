"""valid_mask: SCL classes, dilation of clouds and shadows only, on synthetic and real SCL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from s3tr.imagery.masks import CLOUD_SHADOW_SCL, DEFAULT_INVALID_SCL, valid_mask


def naive_mask(scl: np.ndarray, invalid, grow, radius: int, disk: bool = False) -> np.ndarray:
    """Pixel-by-pixel reference: invalid class, or within ``radius`` of a grown class."""
    h, w = scl.shape
    out = np.ones((h, w), dtype=bool)
    seeds = np.argwhere(np.isin(scl, list(grow)))
    for y in range(h):
        for x in range(w):
            if scl[y, x] in invalid:
                out[y, x] = False
    for sy, sx in seeds:
        for y in range(max(0, sy - radius), min(h, sy + radius + 1)):
            for x in range(max(0, sx - radius), min(w, sx + radius + 1)):
                if not disk or (y - sy) ** 2 + (x - sx) ** 2 <= radius * radius:
                    out[y, x] = False
    return out


def test_defaults() -> None:
    assert DEFAULT_INVALID_SCL == (0, 1, 3, 8, 9, 10, 11)
    assert CLOUD_SHADOW_SCL == (3, 8, 9, 10)


def test_single_cloud_pixel_grows_to_a_square() -> None:
    scl = np.full((7, 7), 4, dtype=np.uint8)
    scl[3, 3] = 9
    m = valid_mask(scl)
    assert (~m).sum() == 9
    assert not m[2:5, 2:5].any()
    assert (~valid_mask(scl, dilate_px=2)).sum() == 25
    assert (~valid_mask(scl, dilate_px=0)).sum() == 1
    disk = valid_mask(scl, dilate_px=2, shape="disk")
    assert (~disk).sum() == 13  # the 5x5 square minus 12 pixels farther than 2


@pytest.mark.parametrize("cls", [0, 1, 11])
def test_nodata_defective_and_snow_are_not_grown(cls: int) -> None:
    scl = np.full((5, 5), 4, dtype=np.uint8)
    scl[2, 2] = cls
    m = valid_mask(scl, dilate_px=2)
    assert (~m).sum() == 1 and not m[2, 2]


@pytest.mark.parametrize("cls", [3, 8, 9, 10])
def test_cloud_and_shadow_classes_are_grown(cls: int) -> None:
    scl = np.full((5, 5), 5, dtype=np.uint8)
    scl[0, 0] = cls
    assert (~valid_mask(scl)).sum() == 4  # corner: 2x2 after clipping at the edge


def test_configurable_invalid_classes() -> None:
    scl = np.array([[4, 10, 4, 4, 6]], dtype=np.uint8)
    # thin cirrus declared valid: not removed and not grown
    assert valid_mask(scl, invalid=(0, 1, 3, 8, 9, 11)).all()
    # water declared invalid: removed but not grown
    m = valid_mask(scl, invalid=(*DEFAULT_INVALID_SCL, 6))
    np.testing.assert_array_equal(m, [[False, False, False, True, False]])


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2-D"):
        valid_mask(np.zeros((2, 2, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match=">= 0"):
        valid_mask(np.zeros((2, 2), dtype=np.uint8), dilate_px=-1)
    with pytest.raises(ValueError, match="square"):
        valid_mask(np.full((2, 2), 9, dtype=np.uint8), shape="hexagon")


@pytest.mark.parametrize(("radius", "disk"), [(1, False), (2, False), (2, True)])
def test_real_scl_against_naive_reference(realdata: Path, radius: int, disk: bool) -> None:
    """The real cloudy SCL of sen2r's 2017 Barbellino scene and a 60x60 window of the 29RKH tile."""
    paths = [
        realdata / "stac_fixtures/sen2r_barbellino_l2a/S2A2A_20170703_022_Barbellino_SCL_10.tif",
        realdata / "stac_fixtures/rio_tiler_pds_S2A_29RKH_20200219_L2A_decimated/SCL.tif",
    ]
    for path in paths:
        with rasterio.open(path) as ds:
            scl = ds.read(1)
        if scl.shape[0] > 100:
            clouds = np.argwhere(np.isin(scl, (8, 9)))
            y, x = clouds[len(clouds) // 2]
            scl = scl[max(0, y - 30) : y + 30, max(0, x - 30) : x + 30]
        assert np.isin(scl, CLOUD_SHADOW_SCL).any(), path.name
        got = valid_mask(scl, dilate_px=radius, shape="disk" if disk else "square")
        expected = naive_mask(scl, DEFAULT_INVALID_SCL, CLOUD_SHADOW_SCL, radius, disk)
        np.testing.assert_array_equal(got, expected)
        # dilation removed valid pixels that plain class masking kept
        assert (~got).sum() > np.isin(scl, DEFAULT_INVALID_SCL).sum()


@settings(max_examples=60, deadline=None)
@given(
    scl=arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 11)),
    radius=st.integers(0, 3),
    disk=st.booleans(),
    invalid=st.sets(st.integers(0, 11)),
)
def test_valid_mask_matches_naive_reference(
    scl: np.ndarray, radius: int, disk: bool, invalid: set[int]
) -> None:
    got = valid_mask(scl, invalid=invalid, dilate_px=radius, shape="disk" if disk else "square")
    grow = set(CLOUD_SHADOW_SCL) & invalid
    np.testing.assert_array_equal(got, naive_mask(scl, invalid, grow, radius, disk))

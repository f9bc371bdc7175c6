"""Spectral indices against hand-written formulas on real reflectance; NaN rules; registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from s3tr.imagery import INDICES, LocalStacSource, bands_for, compute_indices, valid_mask
from tests.imagery.conftest import barbellino_item


def refl(bands: dict[str, list]) -> xr.DataArray:
    names = list(bands)
    data = np.stack([np.asarray(bands[b], dtype=np.float32) for b in names])
    return xr.DataArray(data, dims=("band", "y", "x"), coords={"band": names})


@pytest.fixture(scope="module")
def real_reflectance(
    realdata: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[xr.DataArray, np.ndarray]:
    """Real L2A reflectance and SCL of the sen2r 2017 Barbellino scene (with clouds)."""
    import json

    folder = tmp_path_factory.mktemp("barbellino")
    item = barbellino_item(realdata / "stac_fixtures/sen2r_barbellino_l2a", "20170703")
    # sen2r's BOA has no B8A: expose its B08 as the NIR of the 20 m indices for this test.
    item["assets"]["boa"]["eo:bands"][7] = {"name": "B8A"}
    (folder / "item.json").write_text(json.dumps(item))
    source = LocalStacSource(folder / "item.json")
    (acq,) = source.list_acquisitions()
    da, scl = source.read_with_scl(acq, ["B02", "B03", "B04", "B05", "B8A", "B11", "B12"])
    return da, scl


def test_registry_declares_bands() -> None:
    assert {"ndvi", "ndmi", "ndwi", "bsi", "evi", "ndti"} <= set(INDICES)
    assert INDICES["ndti"].bands == ("B11", "B12")
    assert INDICES["ndvi"].bands == ("B8A", "B04")
    assert INDICES["ndmi"].bands == ("B8A", "B11")
    assert INDICES["ndwi"].bands == ("B03", "B8A")
    assert set(INDICES["bsi"].bands) == {"B11", "B04", "B8A", "B02"}
    assert bands_for(["ndvi", "NDMI", "bsi"]) == ["B8A", "B04", "B11", "B02"]
    with pytest.raises(KeyError, match="unknown index"):
        bands_for(["savi2"])


def test_indices_match_formulas_on_real_reflectance(real_reflectance) -> None:
    da, _ = real_reflectance
    b = {
        k: da.sel(band=k).values.astype(np.float64) for k in ("B02", "B03", "B04", "B05", "B8A", "B11", "B12")
    }
    expected = {
        "ndvi": (b["B8A"] - b["B04"]) / (b["B8A"] + b["B04"]),
        "ndmi": (b["B8A"] - b["B11"]) / (b["B8A"] + b["B11"]),
        "ndwi": (b["B03"] - b["B8A"]) / (b["B03"] + b["B8A"]),
        "bsi": ((b["B11"] + b["B04"]) - (b["B8A"] + b["B02"]))
        / ((b["B11"] + b["B04"]) + (b["B8A"] + b["B02"])),
        "evi": 2.5 * (b["B8A"] - b["B04"]) / (b["B8A"] + 6 * b["B04"] - 7.5 * b["B02"] + 1),
        "ndre": (b["B8A"] - b["B05"]) / (b["B8A"] + b["B05"]),
        "ndti": (b["B11"] - b["B12"]) / (b["B11"] + b["B12"]),
    }
    out = compute_indices(da, list(expected))
    assert out.dims == ("index", "y", "x") and out.dtype == np.float32
    assert list(out.index.values) == list(expected)
    for name, ref in expected.items():
        np.testing.assert_allclose(out.sel(index=name).values, ref, rtol=2e-5, atol=2e-6, equal_nan=True)
    # vegetated alpine pasture: NDVI of the valid pixels spans real values
    ndvi = out.sel(index="ndvi").values
    assert np.nanmax(ndvi) > 0.5 and np.nanmin(ndvi) < 0.2
    np.testing.assert_array_equal(out.x.values, da.x.values)


def test_mask_and_nodata_give_nan(real_reflectance) -> None:
    da, scl = real_reflectance
    mask = valid_mask(scl)
    assert 0 < mask.sum() < mask.size  # the 2017 scene has clouds
    out = compute_indices(da, ["ndvi", "ndmi"], mask=mask)
    assert np.isnan(out.values[:, ~mask]).all()
    finite_inputs = np.isfinite(da.sel(band=["B8A", "B04", "B11"]).values).all(axis=0)
    assert np.isfinite(out.values[:, mask & finite_inputs]).all()
    holed = da.copy()
    holed.loc[{"band": "B04"}] = np.where(np.arange(da.sizes["x"]) == 3, np.nan, da.sel(band="B04").values)
    ndvi = compute_indices(holed, ["ndvi"]).values[0]
    assert np.isnan(ndvi[:, 3]).all() and np.isfinite(ndvi[:, 4]).all()


def test_zero_denominator_is_nan_without_warnings() -> None:
    da = refl(
        {
            "B8A": [[0.0, 0.05, 0.3]],
            "B04": [[0.0, -0.05, 0.1]],  # offset-corrected reflectance can be negative
            "B11": [[0.0, 0.2, 0.2]],
            "B02": [[0.0, 0.0, 0.05]],
            "B03": [[0.0, 0.1, 0.08]],
        }
    )
    with np.errstate(all="raise"):
        out = compute_indices(da, ["ndvi", "bsi", "ndwi"])
    ndvi = out.sel(index="ndvi").values[0]
    assert np.isnan(ndvi[0]) and np.isnan(ndvi[1])
    assert ndvi[2] == pytest.approx((0.3 - 0.1) / 0.4)
    assert np.isnan(out.sel(index="bsi").values[0, 0])


def test_missing_band_and_bad_mask() -> None:
    da = refl({"B04": [[0.1]], "B8A": [[0.3]]})
    with pytest.raises(KeyError, match="B11"):
        compute_indices(da, ["ndmi"])
    with pytest.raises(ValueError, match="mask shape"):
        compute_indices(da, ["ndvi"], mask=np.ones((2, 2), dtype=bool))

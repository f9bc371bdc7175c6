"""Fixtures of the imagery tests: tiny STAC catalogs built in tmp_path around the real fixture rasters."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rasterio

DECIMATED = "stac_fixtures/rio_tiler_pds_S2A_29RKH_20200219_L2A_decimated"
DECIMATED_ITEM = "S2A_29RKH_20200219_0_L2A.json"
BARBELLINO = "stac_fixtures/sen2r_barbellino_l2a"
#: Band order of the sen2r BOA files (see the fixture's README).
BARBELLINO_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12")


@pytest.fixture(scope="session")
def decimated_dir(realdata: Path) -> Path:
    path = realdata / DECIMATED
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


@pytest.fixture(scope="session")
def decimated_item_dict(decimated_dir: Path) -> dict[str, Any]:
    """The real Earth Search v1 item of the decimated tile, unchanged."""
    return json.loads((decimated_dir / DECIMATED_ITEM).read_text())


def localise_item(
    item: dict[str, Any], raster_dir: Path, *, fix_proj: bool = True, href_dir: Path | None = None
) -> dict[str, Any]:
    """Point the COG assets of a real Earth Search item at local files.

    Drops the assets whose file is not in ``raster_dir`` (jp2, metadata, TCI...). With ``fix_proj``
    the ``proj:shape``/``proj:transform`` of each asset are taken from the decimated file (the real
    item describes the full-resolution COGs). Hrefs are made relative to ``href_dir`` when given.
    """
    item = copy.deepcopy(item)
    item["links"] = []
    for key in list(item["assets"]):
        asset = item["assets"][key]
        name = asset["href"].rsplit("/", 1)[-1]
        path = raster_dir / name
        if key.endswith("-jp2") or not name.endswith(".tif") or not path.is_file():
            del item["assets"][key]
            continue
        asset["href"] = str(path) if href_dir is None else str(path.relative_to(href_dir))
        if fix_proj:
            with rasterio.open(path) as ds:
                asset["proj:shape"] = [ds.height, ds.width]
                asset["proj:transform"] = list(ds.transform)[:6]
    return item


@pytest.fixture
def write_item(tmp_path: Path) -> Callable[..., Path]:
    """Write an item dict as JSON into tmp_path (optionally a sub-folder); returns the file."""

    def write(item: dict[str, Any], name: str | None = None, folder: str = "items") -> Path:
        out = tmp_path / folder
        out.mkdir(parents=True, exist_ok=True)
        path = out / (name or f"{item['id']}.json")
        path.write_text(json.dumps(item))
        return path

    return write


@pytest.fixture
def decimated_copy(tmp_path: Path, decimated_dir: Path) -> Path:
    """A writable copy of the decimated COGs that the tests use (B02, B03, B04, B8A, B11, B05, SCL)."""
    out = tmp_path / "cogs"
    out.mkdir()
    for name in ("B02", "B03", "B04", "B8A", "B11", "B05", "SCL"):
        shutil.copy(decimated_dir / f"{name}.tif", out / f"{name}.tif")
    return out


@pytest.fixture(scope="session")
def barbellino_dir(realdata: Path) -> Path:
    path = realdata / BARBELLINO
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


def barbellino_item(barbellino_dir: Path, date: str, *, with_scale: bool = True) -> dict[str, Any]:
    """A STAC item for one sen2r Barbellino date: one 11-band BOA asset (eo:bands) and the SCL."""
    boa = barbellino_dir / f"S2A2A_{date}_022_Barbellino_BOA_10.tif"
    scl = barbellino_dir / f"S2A2A_{date}_022_Barbellino_SCL_10.tif"
    raster_bands = [
        {"nodata": 65535, "data_type": "uint16", **({"scale": 0.0001, "offset": 0} if with_scale else {})}
        for _ in BARBELLINO_BANDS
    ]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": f"S2A_32TNR_{date}_barbellino",
        "geometry": None,
        "properties": {
            "datetime": f"{date[:4]}-{date[4:6]}-{date[6:]}T10:30:31Z",
            "s2:mgrs_tile": "32TNR",
            "proj:epsg": 32632,
        },
        "links": [],
        "assets": {
            "boa": {
                "href": str(boa),
                "type": "image/tiff; application=geotiff",
                "eo:bands": [{"name": b} for b in BARBELLINO_BANDS],
                "raster:bands": raster_bands,
                "roles": ["data"],
            },
            "scl": {"href": str(scl), "type": "image/tiff; application=geotiff", "roles": ["data"]},
        },
    }

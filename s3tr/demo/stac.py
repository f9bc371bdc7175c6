"""A local STAC catalog that reads like Earth Search v1's ``sentinel-2-l2a`` collection.

Items carry what a real Earth Search v1 item carries and what readers rely on: the id scheme
(``S2B_31TBM_20250412_0_L2A``), ``platform``, ``eo:cloud_cover``, ``s2:processing_baseline``,
the ``mgrs:*`` and ``proj:epsg`` properties, sun angles, the SCL class percentages, and for each
asset (Earth Search keys ``blue``, ``green``, ..., ``scl``) its ``proj:shape``/``proj:transform``,
``eo:bands`` and ``raster:bands`` (nodata 0, uint16, scale 0.0001, **offset -0.1**: baseline
05.11 products are stored with the +1000 DN offset). Extensions are declared by the same schema
URIs as Earth Search (projection v1.1.0, so ``proj:epsg`` rather than v2's ``proj:code``).
The catalog is saved self-contained: every href is relative, so the folder can be moved.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
from pyproj import Transformer

from s3tr.demo.raster import TILE, TILE_EPSG
from s3tr.demo.scenes import Acquisition
from s3tr.grid import Grid

__all__ = ["ASSETS", "COLLECTION_ID", "build_catalog", "build_item"]

COLLECTION_ID = "sentinel-2-l2a"
PROCESSING_BASELINE = "05.11"
EXTENSIONS = [
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/sentinel-2/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
]
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

# Earth Search asset key -> (band, title, resolution m, centre wavelength µm, FWHM µm, common name)
ASSETS: dict[str, tuple[str, str, int, float | None, float | None, str | None]] = {
    "blue": ("B02", "Blue - 10m", 10, 0.49, 0.098, "blue"),
    "green": ("B03", "Green - 10m", 10, 0.56, 0.045, "green"),
    "red": ("B04", "Red - 10m", 10, 0.665, 0.038, "red"),
    "rededge1": ("B05", "Red Edge 1 - 20m", 20, 0.704, 0.019, "rededge"),
    "rededge2": ("B06", "Red Edge 2 - 20m", 20, 0.74, 0.018, "rededge"),
    "rededge3": ("B07", "Red Edge 3 - 20m", 20, 0.783, 0.028, "rededge"),
    "nir": ("B08", "NIR 1 - 10m", 10, 0.842, 0.145, "nir"),
    "nir08": ("B8A", "NIR 2 - 20m", 20, 0.865, 0.033, "nir08"),
    "swir16": ("B11", "SWIR 1.6μm - 20m", 20, 1.61, 0.143, "swir16"),
    "swir22": ("B12", "SWIR 2.2μm - 20m", 20, 2.19, 0.242, "swir22"),
    "scl": ("SCL", "Scene classification map (SCL)", 20, None, None, None),
}

SCL_PERCENTAGES = {
    "s2:nodata_pixel_percentage": (0,),
    "s2:saturated_defective_pixel_percentage": (1,),
    "s2:dark_area_pixel_percentage": (2,),
    "s2:cloud_shadow_percentage": (3,),
    "s2:vegetation_percentage": (4,),
    "s2:not_vegetated_percentage": (5,),
    "s2:water_percentage": (6,),
    "s2:unclassified_percentage": (7,),
    "s2:medium_proba_clouds_percentage": (8,),
    "s2:high_proba_clouds_percentage": (9,),
    "s2:thin_cirrus_percentage": (10,),
    "s2:snow_ice_percentage": (11,),
}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def footprint(grid: Grid) -> tuple[dict, list[float]]:
    """GeoJSON polygon and bbox (EPSG:4326, lon/lat) of ``grid``'s outer edges, densified."""
    minx, miny, maxx, maxy = grid.bounds
    n = 8
    xs = np.concatenate(
        [np.linspace(minx, maxx, n), np.full(n, maxx), np.linspace(maxx, minx, n), np.full(n, minx)]
    )
    ys = np.concatenate(
        [np.full(n, maxy), np.linspace(maxy, miny, n), np.full(n, miny), np.linspace(miny, maxy, n)]
    )
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    ring = [[round(float(a), 9), round(float(b), 9)] for a, b in zip(lon, lat, strict=True)]
    # Drop the repeated corners, then close the ring (counter-clockwise as GeoJSON asks).
    clean = [p for i, p in enumerate(ring) if i == 0 or p != ring[i - 1]]
    clean.reverse()
    if clean[0] != clean[-1]:
        clean.append(clean[0])
    bbox = [
        round(float(min(lon)), 6),
        round(float(min(lat)), 6),
        round(float(max(lon)), 6),
        round(float(max(lat)), 6),
    ]
    return {"type": "Polygon", "coordinates": [clean]}, bbox


def build_item(
    acq: Acquisition, *, grid10: Grid, grid20: Grid, scl_counts: np.ndarray, item_dir: Path
) -> pystac.Item:
    """The STAC item of one acquisition; assets point to ``<band>.tif`` beside the item JSON.

    ``scl_counts`` is the histogram of SCL classes 0..11 in the window (for the percentages).
    """
    item_id = acq.item_id(TILE)
    geometry, bbox = footprint(grid20)
    total = max(int(scl_counts.sum()), 1)
    pct = {k: round(100.0 * float(scl_counts[list(v)].sum()) / total, 6) for k, v in SCL_PERCENTAGES.items()}
    cloud_cover = round(
        pct["s2:medium_proba_clouds_percentage"]
        + pct["s2:high_proba_clouds_percentage"]
        + pct["s2:thin_cirrus_percentage"],
        5,
    )
    created = acq.datetime + dt.timedelta(hours=3, minutes=7)
    generation = acq.datetime + dt.timedelta(hours=1, minutes=41)
    sensing = acq.datetime.strftime("%Y%m%dT%H%M%S")
    orbit = f"R{acq.relative_orbit:03d}"
    centre = grid20.bounds
    lon, lat = Transformer.from_crs(grid20.crs, "EPSG:4326", always_xy=True).transform(
        (centre[0] + centre[2]) / 2, (centre[1] + centre[3]) / 2
    )
    properties = {
        "created": _iso(created),
        "platform": acq.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": cloud_cover,
        "proj:epsg": TILE_EPSG,
        "proj:centroid": {"lat": round(float(lat), 5), "lon": round(float(lon), 5)},
        "mgrs:utm_zone": int(TILE[:2]),
        "mgrs:latitude_band": TILE[2],
        "mgrs:grid_square": TILE[3:],
        "grid:code": f"MGRS-{TILE}",
        # Viewing geometry of the two relative orbits over the west of the tile.
        "view:azimuth": 286.2 if acq.relative_orbit == 94 else 103.9,
        "view:incidence_angle": 9.1 if acq.relative_orbit == 94 else 4.3,
        "view:sun_azimuth": acq.sun_azimuth,
        "view:sun_elevation": acq.sun_elevation,
        "s2:tile_id": (
            f"{acq.short_platform}_OPER_MSI_L2A_TL_2{acq.short_platform[-1]}PS_{generation:%Y%m%dT%H%M%S}"
            f"_A{40000 + acq.index:06d}_T{TILE}_N{PROCESSING_BASELINE}"
        ),
        "s2:degraded_msi_data_percentage": 0,
        **pct,
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": PROCESSING_BASELINE,
        "s2:product_uri": (
            f"{acq.short_platform}_MSIL2A_{sensing}_N{PROCESSING_BASELINE.replace('.', '')}_{orbit}_T{TILE}_"
            f"{generation:%Y%m%dT%H%M%S}.SAFE"
        ),
        "s2:generation_time": generation.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "s2:datatake_id": f"G{acq.short_platform}_{sensing}_{acq.index:06d}_N{PROCESSING_BASELINE}",
        "s2:datatake_type": "INS-NOBS",
        "s2:sequence": "0",
        "earthsearch:boa_offset_applied": True,
        "processing:software": {"s3tr-demo": "1"},
        "updated": _iso(created),
    }
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=acq.datetime,
        properties=properties,
        stac_extensions=list(EXTENSIONS),
        collection=COLLECTION_ID,
    )
    # pystac writes the datetime itself; keep Earth Search's millisecond "Z" format.
    item.properties["datetime"] = _iso(acq.datetime)
    for key, (band, title, res, wl, fwhm, common) in ASSETS.items():
        grid = grid10 if res == 10 else grid20
        t = grid.transform
        extra: dict = {"gsd": res}
        if wl is not None:
            extra["eo:bands"] = [
                {"name": band, "common_name": common, "center_wavelength": wl, "full_width_half_max": fwhm}
            ]
            raster = {
                "nodata": 0,
                "data_type": "uint16",
                "spatial_resolution": res,
                "scale": 0.0001,
                "offset": -0.1,
            }
            roles = ["data", "reflectance"]
        else:
            raster = {"nodata": 0, "data_type": "uint8", "spatial_resolution": res}
            roles = ["data"]
        extra["proj:shape"] = [grid.shape[0], grid.shape[1]]
        extra["proj:transform"] = [t.a, t.b, t.c, t.d, t.e, t.f]
        extra["raster:bands"] = [raster]
        item.add_asset(
            key,
            pystac.Asset(
                href=str(item_dir / f"{band}.tif"),
                media_type=COG_TYPE,
                title=title,
                roles=roles,
                extra_fields=extra,
            ),
        )
    return item


def build_catalog(items: list[pystac.Item], root: Path) -> Path:
    """Save ``items`` under ``root`` as catalog -> collection ``sentinel-2-l2a`` -> items.

    Returns the path of ``catalog.json``.
    """
    catalog = pystac.Catalog(
        id="s3tr-demo",
        description="s3tr demo season: simulated Sentinel-2 L2A acquisitions over the Vienne (86), 31TBM.",
        title="s3tr demo season",
    )
    times = [i.datetime for i in items if i.datetime is not None]
    bboxes = np.array([i.bbox for i in items]) if items else np.zeros((1, 4))
    extent = pystac.Extent(
        pystac.SpatialExtent(
            [
                [
                    float(bboxes[:, 0].min()),
                    float(bboxes[:, 1].min()),
                    float(bboxes[:, 2].max()),
                    float(bboxes[:, 3].max()),
                ]
            ]
        ),
        pystac.TemporalExtent([[min(times) if times else None, max(times) if times else None]]),
    )
    collection = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level-2A (s3tr demo)",
        description="Simulated Sentinel-2 MSI Level-2A surface reflectance, Earth Search v1 layout.",
        extent=extent,
        license="proprietary",
        stac_extensions=[
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        summaries=pystac.Summaries(
            {
                "platform": sorted({i.properties["platform"] for i in items}),
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [10, 20],
            }
        ),
    )
    collection.add_items(items)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"

"""Orchestration: one call writes a whole demo season (parcels, imagery, STAC, truth, manifest).

The order of work is chosen for speed and safety:

1. the field layout, the declarations and each parcel's true story (sequential, one random
   stream: deterministic for a seed);
2. per-label daily cover curves and the sparse 10 m / 20 m mixing matrices, built **once**;
3. per acquisition, vectorised arithmetic only — covers = ``A @ C(t)``, reflectance = covers @
   spectra, atmosphere, SCL, DN — rendered and written by a small thread pool (numpy, scipy and
   GDAL release the GIL); every date draws from its own seeded stream, so the result does not
   depend on the order the threads run;
4. truth tables, the STAC catalog, and ``demo.json`` **last**: a folder without it is incomplete.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from affine import Affine
from pyproj import Transformer
from scipy import ndimage
from threadpoolctl import threadpool_limits

from s3tr.demo import farming, raster, scenes
from s3tr.demo import stac as demo_stac
from s3tr.demo.crops import CODES
from s3tr.demo.farming import ParcelPlan
from s3tr.demo.parcels import Layout, make_layout
from s3tr.demo.phenology import BANDS, COMPONENTS, daily_cover, endmember_matrix
from s3tr.errors import ConfigError, WorkdirError
from s3tr.grid import Grid

__all__ = ["GENERATOR_VERSION", "DemoPaths", "generate_season", "is_complete"]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "1.0"
CAMPAIGN = 2025
# Centre of the demo area in EPSG:32631: the farmland west of Poitiers (Béruges, Vouillé side);
# the city centre is at about (296200, 5161900).
DEFAULT_CENTRE = (290_000.0, 5_161_000.0)
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DemoPaths:
    """Where a demo season lives.

    Attributes
    ----------
    root
        The season folder.
    parcels
        ``parcels.gpkg`` (layer ``parcels``, EPSG:2154).
    catalog
        ``stac/catalog.json``.
    truth_dir
        ``truth/`` (never read by the pipeline).
    manifest
        ``demo.json``, written last.
    """

    root: Path
    parcels: Path
    catalog: Path
    truth_dir: Path
    manifest: Path

    @classmethod
    def under(cls, root: Path) -> DemoPaths:
        """The paths of a season in ``root``."""
        root = Path(root)
        return cls(
            root, root / "parcels.gpkg", root / "stac" / "catalog.json", root / "truth", root / "demo.json"
        )


def is_complete(root: Path) -> bool:
    """Whether ``root`` holds a finished season (its ``demo.json`` exists and parses)."""
    manifest = DemoPaths.under(root).manifest
    try:
        json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Per-label covers: parcels, then the non-declared land, then the verge (label 0).


def _other_plan(cover: str, rng: np.random.Generator) -> ParcelPlan:
    """A stand-in plan for non-declared land: grass mown once, woods, hamlets."""
    p = ParcelPlan(label=0, declared_code="PPH", true_code="PPH")
    p.vigour = float(rng.uniform(0.8, 0.95))
    p.soil_bright = float(rng.uniform(0.9, 1.1))
    if cover == "grass":
        p.mowings = [(int(rng.integers(140, 200)), float(rng.uniform(0.4, 0.6)), 25)]
    elif cover == "wood":
        p.tree_frac = 0.95
    elif cover == "hamlet":
        p.tree_frac, p.impervious_frac = 0.2, 0.55
    elif cover == "water":
        p.water_frac = 1.0
    elif cover == "riparian":  # wooded river banks
        p.tree_frac = 0.75
    else:  # verge: road, track and hedge between blocks
        p.tree_frac, p.impervious_frac = 0.35, 0.3
    return p


def _label_tables(plans: list[ParcelPlan]) -> tuple[np.ndarray, np.ndarray]:
    """Daily covers ``(labels, days, 3)`` and static ``(labels, 4)``.

    The static columns are tree, impervious and water fractions and the soil brightness.
    """
    daily = np.empty((len(plans), 367, 3), dtype=np.float32)
    static = np.empty((len(plans), 4), dtype=np.float32)
    for i, p in enumerate(plans):
        veg = 1.0 - p.tree_frac - p.impervious_frac - p.water_frac
        daily[i] = daily_cover(p) * veg
        static[i] = (p.tree_frac, p.impervious_frac, p.water_frac, p.soil_bright)
    return daily, static


def _covers_on(daily: np.ndarray, static: np.ndarray, doy: int) -> np.ndarray:
    """Per-label covers ``(labels, len(COMPONENTS))`` on day ``doy``; the soil column carries brightness."""
    c = np.empty((daily.shape[0], len(COMPONENTS)), dtype=np.float32)
    c[:, :3] = daily[:, doy]
    c[:, 3:6] = static[:, :3]
    c[:, 6] = np.clip(1.0 - c[:, :6].sum(axis=1), 0.0, 1.0) * static[:, 3]
    return c


# ---------------------------------------------------------------------------------------------
# Rendering one acquisition.


@dataclass
class _Scene:
    """Everything fixed over the season that rendering a date needs."""

    seed: int
    grid10: Grid
    grid20: Grid
    a10: sp.csr_matrix  # 10 m pixels x labels, area weights of the 5 m sub-pixels
    a20: sp.csr_matrix  # 20 m pixels x labels
    daily: np.ndarray
    static: np.ndarray
    vigour10: np.ndarray
    vigour20: np.ndarray
    bright10: np.ndarray
    bright20: np.ndarray
    noise10: np.ndarray
    noise20: np.ndarray
    overviews: bool


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (f - f.mean()) / (f.std() + 1e-9)


def _reflectance(
    a: sp.csr_matrix,
    covers: np.ndarray,
    spectra: np.ndarray,
    vigour: np.ndarray,
    bright: np.ndarray,
    shape: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Surface reflectance ``(band, h, w)`` float32 and the mixed covers ``(components, pixels)``."""
    # (components, pixels) layout: the products below then run on contiguous rows (5x faster).
    mixed = np.ascontiguousarray(np.asarray(a @ covers, dtype=np.float32).T)
    # Within-field vigour: patches of the crop grow a little better or worse than the parcel.
    mixed[0] *= vigour
    refl = spectra.T @ mixed
    refl *= bright
    return refl.reshape(spectra.shape[1], *shape), mixed


def _render(scene: _Scene, acq: scenes.Acquisition, item_dir: Path) -> np.ndarray:
    """Render and write the 11 COGs of ``acq``; returns the SCL class histogram (12 bins)."""
    rng = np.random.default_rng([scene.seed, acq.index, 0x5CE])
    doy = acq.datetime.timetuple().tm_yday
    covers = _covers_on(scene.daily, scene.static, doy)
    spectra = endmember_matrix(doy, acq.soil_moisture)
    i10 = [BANDS.index(b) for b in BANDS_10M]
    i20 = [BANDS.index(b) for b in BANDS_20M]
    h10, w10 = scene.grid10.shape
    h20, w20 = scene.grid20.shape
    r10, _ = _reflectance(scene.a10, covers, spectra[:, i10], scene.vigour10, scene.bright10, (h10, w10))
    r20, mixed20 = _reflectance(
        scene.a20, covers, spectra[:, i20], scene.vigour20, scene.bright20, (h20, w20)
    )

    # Sensor noise: slices of a fixed noise bank at random offsets (cheap, and different per band).
    for refl, bank, sigma in ((r10, scene.noise10, 0.003), (r20, scene.noise20, 0.002)):
        h, w = refl.shape[1:]
        for k in range(refl.shape[0]):
            oy, ox = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
            refl[k] += sigma * bank[oy : oy + h, ox : ox + w]

    # Surface NDVI at 20 m (before the atmosphere) drives SCL's vegetation / not-vegetated split.
    red, nir = spectra[:, [BANDS.index("B04"), BANDS.index("B8A")]].T @ mixed20
    ndvi = ((nir - red) / np.maximum(nir + red, 1e-6)).reshape(h20, w20)

    atm20 = scenes.make_atmosphere(acq, (h20, w20), scene.seed)
    atm10 = atm20.refine()
    gain = float(rng.normal(1.0, 0.012))  # residual of the atmospheric correction, per date
    scenes.apply_atmosphere(r10, atm10, i10, gain, acq.haze)
    scenes.apply_atmosphere(r20, atm20, i20, gain, acq.haze)
    water = mixed20[COMPONENTS.index("water")].reshape(h20, w20)
    scl = scenes.scene_classification(ndvi, water, atm20, rng)

    item_dir.mkdir(parents=True, exist_ok=True)
    for k, band in enumerate(BANDS_10M):
        raster.write_cog(
            item_dir / f"{band}.tif", scenes.to_dn(r10[k]), scene.grid10, overviews=scene.overviews
        )
    for k, band in enumerate(BANDS_20M):
        raster.write_cog(
            item_dir / f"{band}.tif", scenes.to_dn(r20[k]), scene.grid20, overviews=scene.overviews
        )
    raster.write_cog(item_dir / "SCL.tif", scl, scene.grid20, overviews=scene.overviews)
    return np.bincount(scl.ravel(), minlength=12)[:12]


# ---------------------------------------------------------------------------------------------
# Writing the vector and tabular outputs.


def _write_parcels(
    layout: Layout, plans: list[ParcelPlan], ids: list[str], farms: gpd.GeoDataFrame, path: Path
) -> gpd.GeoDataFrame:
    gdf = layout.parcels.to_crs("EPSG:2154")
    # Round vertices to the centimetre, as the RPG does; keeps files small and stable.
    gdf["geometry"] = gdf.geometry.set_precision(0.01)
    out = gpd.GeoDataFrame(
        {
            "id_parcel": ids,
            "code_cultu": [p.declared_code for p in plans],
            "code_group": np.array([CODES[p.declared_code].group for p in plans], dtype=np.int32),
            "surf_parc": np.round(gdf.geometry.area.to_numpy() / 1e4, 2),
            "pacage": farms["pacage"].to_numpy()[layout.parcels["farm"].to_numpy()],
            "campaign": np.full(len(plans), CAMPAIGN, dtype=np.int32),
        },
        geometry=gdf.geometry.to_numpy(),
        crs="EPSG:2154",
    )
    # GeoPackages record a "last change" timestamp; pin it (GDAL reads the variable at write time)
    # so that a seed gives identical bytes, and put the caller's environment back afterwards.
    previous = os.environ.get("OGR_CURRENT_DATE")
    os.environ["OGR_CURRENT_DATE"] = "2025-11-01T00:00:00.000Z"
    try:
        path.unlink(missing_ok=True)
        out.to_file(path, layer="parcels", driver="GPKG", engine="pyogrio")
    finally:
        if previous is None:
            os.environ.pop("OGR_CURRENT_DATE", None)
        else:
            os.environ["OGR_CURRENT_DATE"] = previous
    return out


def generate_season(
    out_dir: Path,
    *,
    seed: int = 0,
    n_parcels: int = 2000,
    area_size_m: float = 10_000.0,
    centre: tuple[float, float] = DEFAULT_CENTRE,
    start: dt.date = dt.date(CAMPAIGN, 3, 1),
    end: dt.date = dt.date(CAMPAIGN, 10, 31),
    workers: int = 2,
    overviews: bool = False,
    progress: Progress | None = None,
) -> DemoPaths:
    """Generate a complete demo season under ``out_dir``.

    Parameters
    ----------
    out_dir
        Folder to write into (created). An existing ``demo.json`` is removed first, so that an
        interrupted run is never taken for a complete one, and so are an earlier season's ``stac/``
        and ``truth/`` folders.
    seed
        Random seed: the same seed and parameters give byte-identical files.
    n_parcels
        Number of declared parcels (2000 ≈ the density of the Vienne plain over 10 km x 10 km).
    area_size_m
        Side of the square demo area, metres.
    centre
        Centre of the area in EPSG:32631 metres; must leave the area inside tile 31TBM.
    start, end
        First and last day of the acquisitions (the campaign year is ``start.year``).
    workers
        Threads rendering and writing acquisitions.
    overviews
        Write COG overviews (slower; readers of the full resolution do not need them).
    progress
        Called as ``progress(stage, done, total)`` with stages ``layout``, ``imagery``, ``catalog``.

    Raises
    ------
    ConfigError
        Dates in the wrong order, or an area too small for any parcel.
    WorkdirError
        ``out_dir`` cannot be created or written.
    ValueError
        The area is not inside tile 31TBM.

    Returns
    -------
    DemoPaths
        The paths of what was written. Rasters: uint16 DN = reflectance x 10000 + 1000, nodata 0,
        EPSG:32631 on the 31TBM grid (B02, B03, B04, B08 at 10 m; B05, B06, B07, B8A, B11, B12 and
        SCL (uint8) at 20 m).
    """
    t0 = time.perf_counter()
    if end < start:
        raise ConfigError(f"demo season ends ({end}) before it starts ({start}); swap the dates")
    if n_parcels < 1 or area_size_m < 500.0:
        raise ConfigError(
            f"a demo season needs at least 1 parcel on at least 500 m x 500 m "
            f"(got n_parcels={n_parcels}, area_size_m={area_size_m}); ask for more"
        )
    # Absolute from here on: the catalog's hrefs are made relative to it, not to the current directory.
    paths = DemoPaths.under(Path(out_dir).resolve())
    report = progress or (lambda stage, done, total: None)
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.manifest.unlink(missing_ok=True)
        # Items of an earlier, different season must not linger beside the new catalog.
        shutil.rmtree(paths.catalog.parent, ignore_errors=True)
        shutil.rmtree(paths.truth_dir, ignore_errors=True)
        paths.truth_dir.mkdir()
    except OSError as exc:
        raise WorkdirError(
            f"cannot write the demo season into {paths.root}: {exc}; choose a writable --workdir"
        ) from exc

    year = start.year
    rng = np.random.default_rng(seed)
    half = area_size_m / 2
    bounds = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    crs = f"EPSG:{raster.TILE_EPSG}"
    report("layout", 0, 1)
    layout = make_layout(rng, bounds=bounds, n_parcels=n_parcels, crs=crs)
    for oversample in (1.3, 1.6):
        if len(layout.parcels) >= n_parcels:
            break
        # Too few parcels fitted (small areas are sensitive to the block draw): draw denser blocks.
        layout = make_layout(rng, bounds=bounds, n_parcels=n_parcels, crs=crs, oversample=oversample)
    if len(layout.parcels) == 0:
        raise ConfigError(
            f"no parcel fits in a {area_size_m:.0f} m demo area (seed {seed}); enlarge area_size_m"
        )
    if len(layout.parcels) < n_parcels:
        logger.warning(
            "the %.0f m demo area holds %d parcels at realistic sizes, fewer than the %d asked for",
            area_size_m,
            len(layout.parcels),
            n_parcels,
        )
    labels = layout.parcels["label"].to_numpy()
    ids = [f"86{label:06d}" for label in labels]
    plans = farming.plan_parcels(
        rng,
        labels=labels,
        farms=layout.parcels["farm"].to_numpy(),
        livestock=layout.farms["livestock"].to_numpy(),
        tiny=layout.parcels["tiny"].to_numpy(),
        year=year,
        valley=layout.parcels["valley"].to_numpy(),
    )
    parcels_out = _write_parcels(layout, plans, ids, layout.farms, paths.parcels)

    # Label 0 is the verge; parcels are 1..n; non-declared land follows.
    n = len(plans)
    others = [_other_plan(c, rng) for c in layout.other["cover"]]
    all_plans = [_other_plan("verge", rng), *plans, *others]
    daily, static = _label_tables(all_plans)
    grid20 = raster.tile_window(bounds)
    grid10 = Grid(
        grid20.crs, grid20.transform @ Affine.scale(0.5), (2 * grid20.shape[0], 2 * grid20.shape[1])
    )
    shapes = [(g, n + 1 + i) for i, g in enumerate(layout.other.geometry)]
    shapes += [(g, int(lab)) for g, lab in zip(layout.parcels.geometry, labels, strict=True)]
    labels5 = raster.label_raster(shapes, grid20)
    n_labels = len(all_plans)
    vig = _smooth(rng, grid10.shape, 3.0)
    bri = _smooth(rng, grid10.shape, 1.5)
    vigour10 = 1.0 + 0.06 * vig
    bright10 = 1.0 + 0.025 * bri
    scene = _Scene(
        seed=seed,
        grid10=grid10,
        grid20=grid20,
        a10=raster.mixing_matrix(labels5, 2, n_labels),
        a20=raster.mixing_matrix(labels5, 4, n_labels),
        daily=daily,
        static=static,
        vigour10=vigour10.ravel(),
        vigour20=raster.mean2x2(vigour10).ravel(),
        bright10=bright10.ravel(),
        bright20=raster.mean2x2(bright10).ravel(),
        noise10=rng.standard_normal((grid10.shape[0] + 64, grid10.shape[1] + 64)).astype(np.float32),
        noise20=rng.standard_normal((grid20.shape[0] + 64, grid20.shape[1] + 64)).astype(np.float32),
        overviews=overviews,
    )
    acqs = scenes.schedule(rng, start, end)
    report("layout", 1, 1)
    logger.info("demo layout: %d parcels, %d acquisitions, window %s", n, len(acqs), grid20.shape)

    stac_root = paths.catalog.parent
    coll_dir = stac_root / demo_stac.COLLECTION_ID
    item_dirs = [coll_dir / a.item_id(raster.TILE) for a in acqs]
    done = 0
    report("imagery", 0, len(acqs))
    counts: list[np.ndarray] = []
    # One BLAS thread per worker: the products are small, and OpenBLAS threads spinning against our
    # own workers (and other processes) made them 6x slower on a 2-core machine.
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
    ):
        futures = [pool.submit(_render, scene, a, d) for a, d in zip(acqs, item_dirs, strict=True)]
        for f in futures:
            counts.append(f.result())
            done += 1
            report("imagery", done, len(acqs))

    report("catalog", 0, 1)
    items = [
        demo_stac.build_item(a, grid10=grid10, grid20=grid20, scl_counts=c, item_dir=d)
        for a, c, d in zip(acqs, counts, item_dirs, strict=True)
    ]
    demo_stac.build_catalog(items, stac_root)

    first, last = start.timetuple().tm_yday, end.timetuple().tm_yday
    truth = farming.truth_parcels(plans, ids, year)
    truth.to_csv(paths.truth_dir / "parcels.csv", index=False)
    farming.truth_events(plans, ids, year, first=first, last=last).to_csv(
        paths.truth_dir / "events.csv", index=False
    )
    farming.expected_controls(plans, ids, year).to_csv(paths.truth_dir / "expected_controls.csv", index=False)
    report("catalog", 1, 1)

    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_wgs.transform(bounds[0], bounds[1])
    lon1, lat1 = to_wgs.transform(bounds[2], bounds[3])
    row_off = round((raster.TILE_ORIGIN[1] - grid20.transform.f) / 20)
    col_off = round((grid20.transform.c - raster.TILE_ORIGIN[0]) / 20)
    manifest = {
        "generator": "s3tr.demo",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "campaign": year,
        "params": {
            "n_parcels": n_parcels,
            "area_size_m": area_size_m,
            "centre_utm": list(centre),
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
        "counts": {
            "parcels": n,
            "farms": int(parcels_out["pacage"].nunique()),
            "acquisitions": len(acqs),
            "non_compliant": int((truth["compliant"] == 0).sum()),
            "scenarios": {
                k: int(v)
                for k, v in pd.Series([p.scenario for p in plans]).value_counts().sort_index().items()
            },
        },
        "tile": raster.TILE,
        "imagery_crs": crs,
        "window_20m": {
            "row_off": row_off,
            "col_off": col_off,
            "height": grid20.shape[0],
            "width": grid20.shape[1],
        },
        "area_bbox_utm": list(bounds),
        "area_bbox_wgs84": [round(lon0, 6), round(lat0, 6), round(lon1, 6), round(lat1, 6)],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "dates": [a.datetime.date().isoformat() for a in acqs],
        "fallow_protected_period": [
            dt.date(year, *farming.FALLOW_PROTECTED[0]).isoformat(),
            dt.date(year, *farming.FALLOW_PROTECTED[1]).isoformat(),
        ],
        "files": {
            "parcels": "parcels.gpkg",
            "catalog": "stac/catalog.json",
            "truth": ["truth/parcels.csv", "truth/events.csv", "truth/expected_controls.csv"],
        },
    }
    paths.manifest.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    logger.info("demo season written to %s in %.1f s", paths.root, time.perf_counter() - t0)
    return paths

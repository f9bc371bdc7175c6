"""The nightly pipeline: parcels and a catalog in, flags, cases and a run report out.

One run is idempotent: acquisitions already in a tile's series store are not read again,
decisions identical to the stored ones are not rewritten, and no case is opened twice.
A bad parcel, a bad item or a bad COG is reported in the run result and never stops the
rest of the batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from s3tr.decide.decide import decide
from s3tr.decide.rules import load_ruleset
from s3tr.errors import S3trError, WorkdirError
from s3tr.extract import ParcelRaster
from s3tr.extract.store import SeriesStore
from s3tr.grid import Grid
from s3tr.imagery.base import Acquisition
from s3tr.imagery.indices import bands_for, compute_indices
from s3tr.imagery.local import LocalStacSource
from s3tr.imagery.masks import valid_mask
from s3tr.markers import compute_evidence
from s3tr.nightly.config import RunConfig
from s3tr.parcels.load import load_parcels
from s3tr.parcels.tiling import assign_tiles
from s3tr.review.cases import sync_decisions
from s3tr.review.database import db_url_for, make_engine
from s3tr.review.declarations import sync_declarations
from s3tr.review.migrate import upgrade

__all__ = ["Failure", "RunResult", "run_pipeline"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]

#: Minimum number of full 20 m pixels for a parcel to be monitorable (JRC; DESIGN.md).
MIN_PIXELS = 8


@dataclass(frozen=True)
class Failure:
    """One thing that failed in a run, and why; the rest of the run went on."""

    stage: str
    item: str
    reason: str


@dataclass
class RunResult:
    """What a run did: counts, timings, failures and where its outputs are."""

    run_id: str
    workdir: Path
    parcels: gpd.GeoDataFrame
    rejects: pd.DataFrame
    acquisitions: int
    acquisitions_new: int
    decisions: pd.DataFrame
    evidence: pd.DataFrame
    series: pd.DataFrame
    sync: object
    failures: list[Failure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def flag_counts(self) -> pd.DataFrame:
        """Number of parcels per control (rows) and flag (columns)."""
        counts = self.decisions.groupby(["control", "flag"]).size().unstack(fill_value=0)
        return counts.reindex(columns=["green", "orange", "red"], fill_value=0)


def _noop(stage: str, done: int, total: int) -> None:
    return None


class _Timer:
    def __init__(self, timings: dict[str, float], stage: str) -> None:
        self.timings, self.stage = timings, stage

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.t0


def load_crop_model(path: Path | None = None) -> object | None:
    """Load the crop-group model at ``path``, or the default one of the models folder.

    Returns None (the crop control then stays orange for lack of evidence) when no path is given
    and no default model exists; a given path that cannot be loaded is an error.
    """
    from s3tr.markers.crop import CropModel
    from s3tr.settings import find_models_dir, get_settings

    if path is None:
        models = find_models_dir(get_settings())
        path = models / "crop_group" / "model.joblib" if models else None
        if path is None or not path.exists():
            log.warning("no crop-group model found (looked for models/crop_group/model.joblib)")
            return None
    return CropModel.load(path)


def prepare_workdir(workdir: Path) -> Path:
    """Create ``workdir`` and check it is writable, with an error that names it otherwise."""
    workdir = Path(workdir)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        probe = workdir / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise WorkdirError(
            f"the workdir {workdir} cannot be created or written ({exc.strerror or exc}); "
            "choose another with --workdir or fix its permissions"
        ) from exc
    return workdir


# --- per-acquisition work, run in worker processes -------------------------------------------------

_WORKER: dict[str, object] = {}


def _init_worker(catalog: Path, raster: ParcelRaster, grid: Grid, config: RunConfig) -> None:
    _WORKER.update(source=LocalStacSource(catalog), raster=raster, grid=grid, config=config)


def _reduce_acquisition(acquisition: Acquisition) -> object:
    """Read one acquisition, mask it, compute indices and reduce them per parcel."""
    source: LocalStacSource = _WORKER["source"]  # type: ignore[assignment]
    raster: ParcelRaster = _WORKER["raster"]  # type: ignore[assignment]
    grid: Grid = _WORKER["grid"]  # type: ignore[assignment]
    config: RunConfig = _WORKER["config"]  # type: ignore[assignment]
    try:
        reflectance, scl = source.read_with_scl(acquisition, bands_for(config.indices), grid=grid)
    except S3trError as exc:
        return Failure("imagery", acquisition.id, str(exc))
    mask = valid_mask(scl, invalid=config.invalid_scl, dilate_px=config.cloud_dilation_px)
    indices = compute_indices(reflectance, list(config.indices), mask=mask)
    when = np.datetime64(acquisition.datetime.astimezone(UTC).replace(tzinfo=None), "ns")
    # One fused pass reduces every index of the acquisition (the indices share the SCL mask).
    return raster.statistics_many(indices, time=when)


# --- the run ----------------------------------------------------------------------------------------


def _tile_grid(acquisitions: list[Acquisition], parcels_in_crs: gpd.GeoDataFrame, pad_px: int = 2) -> Grid:
    """The window of the tile's 20 m grid that covers the parcels (aligned to the tile grid)."""
    grid = acquisitions[0].grid
    minx, miny, maxx, maxy = parcels_in_crs.total_bounds
    inv = ~grid.transform
    cols, rows = zip(*(inv @ (x, y) for x, y in ((minx, maxy), (maxx, miny))), strict=True)
    c0 = max(int(np.floor(cols[0])) - pad_px, 0)
    r0 = max(int(np.floor(rows[0])) - pad_px, 0)
    c1 = min(int(np.ceil(cols[1])) + pad_px, grid.shape[1])
    r1 = min(int(np.ceil(rows[1])) + pad_px, grid.shape[0])
    if c1 <= c0 or r1 <= r0:
        return grid
    return grid.window(r0, c0, r1 - r0, c1 - c0)


def _map_acquisitions(
    todo: list[Acquisition], raster: ParcelRaster, grid: Grid, config: RunConfig
) -> Iterator[object]:
    """Reduce acquisitions in worker processes (or inline for one worker), yielding in order."""
    if not todo:
        return
    if config.workers == 1 or len(todo) == 1:
        _init_worker(config.catalog, raster, grid, config)
        yield from map(_reduce_acquisition, todo)
        return
    # spawn, not fork: GDAL and numba thread pools do not survive a fork safely.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(config.workers, len(todo)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(config.catalog, raster, grid, config),
    ) as pool:
        yield from pool.map(_reduce_acquisition, todo)


def _extract_tile(
    tile: str,
    acquisitions: list[Acquisition],
    parcels: gpd.GeoDataFrame,
    config: RunConfig,
    workdir: Path,
    result: RunResult,
    progress: ProgressCallback,
) -> tuple[pd.DataFrame, pd.Series]:
    """Bring one tile's series store up to date; return its long table and pixel counts per parcel."""
    grid0 = acquisitions[0].grid
    in_crs = parcels.to_crs(grid0.crs)
    grid = _tile_grid(acquisitions, in_crs)
    with _Timer(result.timings, "index"):
        raster = ParcelRaster.from_parcels(
            in_crs,
            transform=grid.transform,
            shape=grid.shape,
            crs=grid.crs,
            id_column="id_parcel",
            inward_buffer_m=config.inward_buffer_m,
        )
    store = SeriesStore(workdir / "series" / f"{tile}.zarr")
    done = {pd.Timestamp(t) for t in store.times()} if store.exists() else set()
    todo = [
        a for a in acquisitions if pd.Timestamp(a.datetime.astimezone(UTC).replace(tzinfo=None)) not in done
    ]
    result.acquisitions_new += len(todo)
    log.info("tile %s: %d acquisitions, %d new, %d parcels", tile, len(acquisitions), len(todo), len(parcels))
    with _Timer(result.timings, "extract"):
        for n, out in enumerate(_map_acquisitions(todo, raster, grid, config), start=1):
            if isinstance(out, Failure):
                log.error("acquisition %s failed: %s", out.item, out.reason)
                result.failures.append(out)
            else:
                store.append(out)
            progress(f"extract {tile}", n, len(todo))
    with _Timer(result.timings, "series"):
        table = store.to_table(min_valid_fraction=config.min_valid_fraction) if store.exists() else None
    pixels = pd.Series(raster.pixel_counts, index=pd.Index(raster.ids, name="id_parcel"), name="n_pixels")
    return (table if table is not None else pd.DataFrame()), pixels


def run_pipeline(
    config: RunConfig,
    *,
    workdir: Path,
    db_url: str | None = None,
    crop_model: object | None = None,
    progress: ProgressCallback | None = None,
    only_tiles: tuple[str, ...] | None = None,
) -> RunResult:
    """Run the nightly chain once.

    Parameters
    ----------
    config
        The run configuration (parcels, catalog, campaign, season, extraction options).
    workdir
        Where series stores, the SQLite database (unless ``db_url``), flags and reports go.
    db_url
        SQLAlchemy URL of the review database; default SQLite in ``workdir``.
    crop_model
        A trained crop-group model (``s3tr.markers.crop.CropModel``); without one the crop
        control stays orange for lack of evidence.
    progress
        Called as ``progress(stage, done, total)`` while long stages run.
    only_tiles
        Restrict the imagery to these MGRS tiles (parcels of other tiles keep their stored series).
    """
    progress = progress or _noop
    workdir = prepare_workdir(workdir)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    timings: dict[str, float] = {}

    with _Timer(timings, "parcels"):
        loaded = load_parcels(config.parcels, campaign=config.campaign)
    parcels = loaded.parcels
    result = RunResult(
        run_id=run_id,
        workdir=workdir,
        parcels=parcels,
        rejects=loaded.rejects,
        acquisitions=0,
        acquisitions_new=0,
        decisions=pd.DataFrame(),
        evidence=pd.DataFrame(),
        series=pd.DataFrame(),
        sync=None,
        timings=timings,
    )
    for rec in loaded.rejects.itertuples(index=False):
        result.failures.append(
            Failure("parcels", f"{rec.source} record {rec.record} ({rec.id_parcel})", rec.reason)
        )

    with _Timer(timings, "catalog"):
        source = LocalStacSource(config.catalog)
        acquisitions = source.list_acquisitions(start=config.start, end=config.end)
    for item, reason in getattr(source, "problems", []):
        result.failures.append(Failure("catalog", str(item), str(reason)))
    result.acquisitions = len(acquisitions)

    by_tile: dict[str, list[Acquisition]] = {}
    for acq in acquisitions:
        by_tile.setdefault(acq.tile, []).append(acq)
    footprints = {tile: _footprint(acqs) for tile, acqs in by_tile.items()}
    tiles = assign_tiles(parcels, footprints) if footprints else pd.Series(pd.NA, index=parcels.index)

    tables, pixels = [], []
    for tile, acqs in sorted(by_tile.items()):
        if only_tiles and tile not in only_tiles:
            continue
        members = parcels[(tiles == tile).to_numpy()]
        if members.empty:
            continue
        table, npx = _extract_tile(tile, acqs, members, config, workdir, result, progress)
        tables.append(table)
        pixels.append(npx)
    series = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["parcel_id", "date", "valid"])
    )
    result.series = series

    n_pixels = pd.concat(pixels) if pixels else pd.Series(dtype="int64", name="n_pixels")
    declarations = parcels.drop(columns="geometry").copy()
    declarations["n_pixels"] = declarations["id_parcel"].map(n_pixels)
    # A parcel outside every tile has no pixel count: it is not "too small", it has no imagery.
    declarations["monitorable"] = declarations["n_pixels"].isna() | (declarations["n_pixels"] >= MIN_PIXELS)

    ruleset = load_ruleset(config.campaign, config.region)
    window = ruleset.activity_window
    with _Timer(timings, "markers"):
        evidence = compute_evidence(
            series,
            declarations,
            crop_model=crop_model,
            season=(window.start.isoformat(), window.end.isoformat()),
        )
    result.evidence = evidence
    with _Timer(timings, "decide"):
        classes = getattr(crop_model, "classes", None)
        # Verdicts that need the whole activity window wait for its end during the season.
        as_of = min(datetime.now(UTC).date(), config.end)
        decisions = decide(declarations, evidence, ruleset, model_classes=classes, as_of=as_of)
    result.decisions = decisions

    with _Timer(timings, "review"):
        url = db_url or db_url_for(workdir)
        upgrade(url)
        engine = make_engine(url)
        try:
            sync_declarations(engine, parcels, run_id=run_id)
            result.sync = sync_decisions(engine, decisions, run_id=run_id)
        finally:
            engine.dispose()

    with _Timer(timings, "outputs"):
        result.outputs["flags"] = write_flags(decisions, parcels, workdir / "flags.gpkg")
        if not loaded.rejects.empty:
            rejects_path = workdir / "rejects.csv"
            loaded.rejects.to_csv(rejects_path, index=False)
            result.outputs["rejects"] = rejects_path
    return result


def _footprint(acquisitions: list[Acquisition]):
    from shapely.geometry import box, shape
    from shapely.ops import unary_union

    geoms = []
    for acq in acquisitions:
        if acq.item is not None and acq.item.geometry:
            geoms.append(shape(acq.item.geometry))
        elif acq.item is not None and acq.item.bbox:
            geoms.append(box(*acq.item.bbox))
    return unary_union(geoms) if geoms else None


def write_flags(decisions: pd.DataFrame, parcels: gpd.GeoDataFrame, path: Path) -> Path:
    """Write the flags table: layer ``flags``, one row per parcel and control, with the parcel geometry."""
    cols = ["id_parcel", "campaign", "control", "flag", "reasons"]
    table = decisions[cols].copy()
    table["reasons"] = table["reasons"].map(lambda r: r if isinstance(r, str) else ";".join(r))
    table["campaign"] = table["campaign"].astype("int32")
    geoms = parcels.set_index("id_parcel").geometry
    flags = gpd.GeoDataFrame(table, geometry=table["id_parcel"].map(geoms).to_numpy(), crs=parcels.crs)
    tmp = path.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    flags.to_file(tmp, layer="flags", driver="GPKG")
    tmp.replace(path)
    return path

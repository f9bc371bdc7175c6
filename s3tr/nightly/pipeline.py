"""The nightly pipeline: parcels and a catalog in, flags, cases and a run report out.

Stages of one run (each timed in ``RunResult.timings``)
------------------------------------------------------
1. **plan** - list the catalog's acquisitions in the run's scope (season, ``since``, ``only``
   tiles), reconcile the ledger with the series stores (see :mod:`s3tr.nightly.runs`) and record
   the run and its work items (one per tile-acquisition not yet in its store) in the database.
2. **extract** - each item is one task on Dask distributed (:mod:`s3tr.nightly.tasks`): a
   ``LocalCluster`` by default, the given scheduler otherwise, the same code either way. Tasks
   return reduced slots; this process is the only writer of the stores and appends each slot as
   its future completes, then records the item done (or failed, with the reason). A slot is
   written before the item is recorded done, and re-adding a time replaces its slot, so a crash
   anywhere can neither lose nor duplicate an acquisition.
3. **markers / decide** - only for the parcels whose inputs changed (:mod:`s3tr.nightly.state`):
   the parcels of tiles with items extracted but not yet applied, parcels never decided, parcels
   whose declaration changed, or all when the rule set, model or open windows changed.
4. **review** - declarations and the re-decided parcels are synced to the review queue in one
   transaction each (idempotent); then the post-review steps run (``post_steps``: chips,
   notifications, wired by the caller).
5. **state / outputs** - the decision state, the flags table; the run is recorded ok/partial.

Fault points (:func:`s3tr.nightly.faults.fault_point`) sit at every stage boundary, so the
crash tests can SIGKILL the run anywhere and check a rerun ends in identical outputs.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import pickle
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine

from s3tr.decide.decide import crop_model_facts, decide
from s3tr.decide.rules import load_ruleset
from s3tr.errors import S3trError, WorkdirError
from s3tr.extract import ParcelRaster
from s3tr.extract.store import SeriesStore
from s3tr.frames import isin
from s3tr.grid import Grid
from s3tr.imagery.base import Acquisition
from s3tr.imagery.local import LocalStacSource
from s3tr.markers import MARKER_VERSION
from s3tr.nightly import runs
from s3tr.nightly.config import RunConfig
from s3tr.nightly.evidence import gather_evidence
from s3tr.nightly.faults import fault_point
from s3tr.nightly.state import DecisionState, declaration_fingerprints, load_state, save_state
from s3tr.nightly.tasks import ItemOutcome, TaskSpec, extract_item, save_raster
from s3tr.parcels.load import load_parcels
from s3tr.parcels.tiling import assign_tiles
from s3tr.review.cases import SyncSummary, current_decisions, sync_decisions
from s3tr.review.database import db_url_for, make_engine
from s3tr.review.declarations import sync_declarations
from s3tr.review.migrate import upgrade

__all__ = ["Failure", "PostStep", "RunLockedError", "RunResult", "load_series", "run_pipeline"]

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]

#: Minimum number of full 20 m pixels for a parcel to be monitorable (JRC; DESIGN.md).
MIN_PIXELS = 8

#: Dask retries of a task whose worker died (the scheduler's ``allowed-failures`` bounds them too).
TASK_RETRIES = 2


@dataclass(frozen=True)
class Failure:
    """One thing that failed in a run, and why; the rest of the run went on."""

    stage: str
    item: str
    reason: str


@dataclass
class RunResult:
    """What a run did: counts, timings, failures and where its outputs are.

    ``decisions`` and ``evidence`` cover every parcel (the re-decided ones merged into the stored
    state); ``series`` holds the series of the parcels re-decided by this run; ``items`` this
    run's work items (status, attempts, error, timings); ``redecided`` the parcels re-decided.
    """

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
    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    plan: dict[str, Any] = field(default_factory=dict)
    redecided: int = 0
    status: str = "running"

    @property
    def flag_counts(self) -> pd.DataFrame:
        """Number of parcels per control (rows) and flag (columns)."""
        counts = self.decisions.groupby(["control", "flag"]).size().unstack(fill_value=0)
        return counts.reindex(columns=["green", "orange", "red"], fill_value=0)

    @property
    def items_failed(self) -> int:
        """Number of this run's work items that failed."""
        return int((self.items["status"] == "failed").sum()) if not self.items.empty else 0


#: A step run after the review queue was updated: ``step(result, engine)`` (chips, notifications).
PostStep = Callable[[RunResult, Engine], None]


class _RunLog(logging.LoggerAdapter):
    """Structured logs: every record carries ``run_id`` (as an attribute and in the message)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs.setdefault("extra", {}).update(self.extra or {})
        return f"[run {self.extra['run_id']}] {msg}", kwargs  # type: ignore[index]


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
        models = find_models_dir(get_settings(), holding="crop_group/model.joblib")
        if models is None:
            log.warning(
                "no crop-group model found (looked for crop_group/model.joblib in S3TR_MODELS_DIR, ./models, "
                "the checkout's models/ and the installed share/s3tr/models); the crop_group control stays "
                "orange"
            )
            return None
        path = models / "crop_group" / "model.joblib"
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


def _utc_naive(when: datetime) -> pd.Timestamp:
    return pd.Timestamp(when.astimezone(UTC).replace(tzinfo=None))


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


@dataclass
class _Tile:
    """One tile of the run: its parcels, its 20 m window and its parcel raster (file for the workers)."""

    name: str
    parcels: gpd.GeoDataFrame
    grid: Grid
    raster: ParcelRaster
    raster_path: Path

    @property
    def pixels(self) -> pd.Series:
        return pd.Series(
            self.raster.pixel_counts, index=pd.Index(self.raster.ids, name="id_parcel"), name="n_pixels"
        )


def _index_tile(
    tile: str, acquisitions: list[Acquisition], members: gpd.GeoDataFrame, config: RunConfig, workdir: Path
) -> _Tile:
    """Rasterise a tile's parcels on its 20 m window, reusing the cached raster when nothing changed."""
    in_crs = members.to_crs(acquisitions[0].grid.crs)
    grid = _tile_grid(acquisitions, in_crs)
    # The cache key covers everything the raster depends on: ids, geometries, window, buffer.
    h = hashlib.sha256()
    h.update(pickle.dumps((grid.transform, grid.shape, str(grid.crs), config.inward_buffer_m)))
    h.update("\x1f".join(in_crs["id_parcel"].astype(str)).encode())
    for wkb in in_crs.geometry.to_wkb():
        h.update(wkb)
    folder = workdir / "rasters"
    cached = folder / f"{tile}-input-{h.hexdigest()[:20]}.pkl"
    if cached.exists():
        with open(cached, "rb") as fh:
            raster = pickle.load(fh)
    else:
        raster = ParcelRaster.from_parcels(
            in_crs,
            transform=grid.transform,
            shape=grid.shape,
            crs=grid.crs,
            id_column="id_parcel",
            inward_buffer_m=config.inward_buffer_m,
        )
        for old in folder.glob(f"{tile}-input-*.pkl"):
            old.unlink(missing_ok=True)
        save_raster(raster, cached)
    return _Tile(tile, members, grid, raster, cached)


def _store_indices(
    store: SeriesStore, configured: tuple[str, ...], rlog: logging.LoggerAdapter
) -> tuple[str, ...]:
    """The indices to extract into ``store``: the configured ones, or those it already holds.

    A store holds one set of variables for the season. One begun before an index was added to the
    configuration (``ndti`` in markers-0.5.0) goes on with its own set rather than fail every append;
    the new index starts with a new store.
    """
    held = store.indices()
    if not held or set(held) == {i.lower() for i in configured}:
        return configured
    rlog.warning(
        "%s holds the indices %s, not the configured %s: it goes on with the ones it holds (a new "
        "store, such as the next campaign's, takes the configured ones)",
        store.path,
        ", ".join(held),
        ", ".join(configured),
    )
    return held


def _extract(
    client: Any,
    todo: list[Acquisition],
    tiles: dict[str, _Tile],
    config: RunConfig,
    engine: Engine,
    result: RunResult,
    progress: ProgressCallback,
    rlog: logging.LoggerAdapter,
) -> None:
    """Send every item to the cluster; append each returned slot to its store, then record it done."""
    from distributed import as_completed

    stores = {tile: SeriesStore(result.workdir / "series" / f"{tile}.zarr") for tile in tiles}
    indices = {tile: _store_indices(store, tuple(config.indices), rlog) for tile, store in stores.items()}
    specs = [
        TaskSpec(
            seq=n,
            acquisition=acq,
            catalog=str(config.catalog),
            raster_path=str(tiles[acq.tile].raster_path),
            grid=tiles[acq.tile].grid,
            indices=indices[acq.tile],
            invalid_scl=tuple(config.invalid_scl),
            cloud_dilation_px=config.cloud_dilation_px,
        )
        for n, acq in enumerate(todo, start=1)
    ]
    runs.start_items(engine, result.run_id, todo)
    futures = {
        client.submit(
            extract_item, spec, key=f"extract-{result.run_id}-{spec.seq}", retries=TASK_RETRIES
        ): spec
        for spec in specs
    }
    for done, future in enumerate(as_completed(futures), start=1):
        spec = futures[future]
        acq = spec.acquisition
        t0 = time.perf_counter()
        try:
            outcome: ItemOutcome = future.result()
        except Exception as exc:  # a task's own bug, or a worker lost too often: fails the item only
            outcome = ItemOutcome(acq.id, acq.tile, None, error=f"{type(exc).__name__}: {exc}")
        future.release()
        if outcome.dataset is not None:
            stores[acq.tile].append(outcome.dataset)
            outcome.timings["write"] = time.perf_counter() - t0
            fault_point("in", "extract", done)
        else:
            rlog.error("item %s/%s failed: %s", acq.tile, acq.id, outcome.error)
            result.failures.append(Failure("imagery", acq.id, outcome.error or "unknown error"))
        runs.finish_item(
            engine, result.run_id, acq.tile, acq.id, error=outcome.error, timings=outcome.timings
        )
        progress("extract", done, len(specs))
        fault_point("after", "extract", done)


def _context_key(ruleset: Any, crop_model: object | None, as_of: date) -> str:
    """What every decision depends on besides its parcel: a change re-decides every parcel."""
    windows = (ruleset.activity_window.end, ruleset.fallow_protected_period.end)
    parts = (
        repr(getattr(ruleset, "version", None)),
        MARKER_VERSION,
        repr(getattr(crop_model, "version", None)),
        # Verdicts depend on as_of only through which windows are still open.
        repr(tuple(as_of < end for end in windows)),
    )
    return "|".join(parts)


def _parcels_to_redecide(
    state: DecisionState,
    context: str,
    fingerprints: pd.Series,
    tile_of: pd.Series,
    dirty_tiles: set[str],
    decided_in_db: set[str],
) -> pd.Index:
    """Parcels whose series, declaration or context changed, or that were never decided."""
    ids = fingerprints.index
    if state.context != context:
        return ids
    stored = state.fingerprints.reindex(ids)
    changed = stored.isna().to_numpy() | (stored.to_numpy() != fingerprints.to_numpy())
    changed |= isin(tile_of.reindex(ids), dirty_tiles)
    changed |= ~isin(ids, decided_in_db)
    return ids[changed]


def run_pipeline(
    config: RunConfig,
    *,
    workdir: Path,
    db_url: str | None = None,
    crop_model: object | None = None,
    progress: ProgressCallback | None = None,
    only_tiles: tuple[str, ...] | None = None,
    since: date | None = None,
    retry_failed: bool = False,
    scheduler: str | None = None,
    post_steps: Sequence[PostStep] = (),
) -> RunResult:
    """Run the nightly chain once (see the module notes for the stages).

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
        Restrict the imagery to these MGRS tiles (parcels of other tiles keep their decisions).
    since
        Only plan acquisitions from this date (inclusive); earlier ones keep their slots.
    retry_failed
        Plan again the items whose last attempt failed.
    scheduler
        Address of a Dask scheduler (``tcp://host:8786``); default a LocalCluster of
        ``config.workers`` workers.
    post_steps
        Called as ``step(result, engine)`` after the review queue was updated (image chips,
        notifications); a step that raises fails the run.

    Returns
    -------
    RunResult
        ``status`` is ``ok`` (every item done), ``partial`` (some failed: see ``failures``).

    Raises
    ------
    S3trError
        When the run itself fails (catalog, database, cluster); the run is recorded ``failed``.
    """
    progress = progress or _noop
    workdir = prepare_workdir(workdir).resolve()
    with _workdir_lock(workdir):
        return _locked_run(
            config,
            workdir=workdir,
            db_url=db_url,
            crop_model=crop_model,
            progress=progress,
            only_tiles=only_tiles,
            since=since,
            retry_failed=retry_failed,
            scheduler=scheduler,
            post_steps=post_steps,
        )


class RunLockedError(S3trError, RuntimeError):
    """Another nightly run is using the workdir."""


@contextmanager
def _workdir_lock(workdir: Path) -> Iterator[None]:
    """One run per workdir at a time: the run process is the only writer of its series stores.

    ``flock`` is released by the kernel when the process dies, even by SIGKILL, so a crashed run
    never leaves a stale lock behind.
    """
    fh = open(workdir / ".nightly.lock", "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RunLockedError(
                f"another nightly run is using the workdir {workdir}; wait for it to end"
            ) from exc
        yield
    finally:
        fh.close()


def _locked_run(
    config: RunConfig,
    *,
    workdir: Path,
    db_url: str | None,
    crop_model: object | None,
    progress: ProgressCallback,
    only_tiles: tuple[str, ...] | None,
    since: date | None,
    retry_failed: bool,
    scheduler: str | None,
    post_steps: Sequence[PostStep],
) -> RunResult:
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    rlog = _RunLog(log, {"run_id": run_id})
    timings: dict[str, float] = {}

    url = db_url or db_url_for(workdir)
    upgrade(url)
    engine = make_engine(url)
    options = {
        "config": config.model_dump(mode="json"),
        "since": since.isoformat() if since else None,
        "only_tiles": list(only_tiles or []),
        "retry_failed": retry_failed,
        "scheduler": scheduler,
        "workdir": str(workdir),
    }
    runs.start_run(engine, run_id, options)
    rlog.info("run started (workdir %s)", workdir)
    result: RunResult | None = None
    try:
        result = _run(
            config,
            run_id=run_id,
            workdir=workdir,
            engine=engine,
            crop_model=crop_model,
            progress=progress,
            only_tiles=only_tiles,
            since=since,
            retry_failed=retry_failed,
            scheduler=scheduler,
            post_steps=post_steps,
            timings=timings,
            rlog=rlog,
        )
        result.items = runs.run_items(engine, run_id)
        result.status = "partial" if result.failures else "ok"
        from s3tr.nightly.report import summarize

        runs.finish_run(engine, run_id, result.status, summarize(result))
        rlog.info("run %s: %d items, %d failures", result.status, len(result.items), len(result.failures))
        return result
    except BaseException as exc:
        rlog.error("run failed: %s", exc)
        try:
            runs.finish_run(engine, run_id, "failed", None, error=f"{type(exc).__name__}: {exc}")
        except Exception:  # the database may be what failed; the original error wins
            rlog.exception("could not record the failure of the run")
        raise
    finally:
        engine.dispose()


def _run(
    config: RunConfig,
    *,
    run_id: str,
    workdir: Path,
    engine: Engine,
    crop_model: object | None,
    progress: ProgressCallback,
    only_tiles: tuple[str, ...] | None,
    since: date | None,
    retry_failed: bool,
    scheduler: str | None,
    post_steps: Sequence[PostStep],
    timings: dict[str, float],
    rlog: logging.LoggerAdapter,
) -> RunResult:
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

    # ---- plan ------------------------------------------------------------------------------
    with _Timer(timings, "plan"):
        source = LocalStacSource(config.catalog)
        acquisitions = source.list_acquisitions(start=config.start, end=config.end)
        for item, reason in getattr(source, "problems", []):
            result.failures.append(Failure("catalog", str(item), str(reason)))
        result.acquisitions = len(acquisitions)
        by_tile: dict[str, list[Acquisition]] = {}
        for acq in acquisitions:
            by_tile.setdefault(acq.tile, []).append(acq)
        footprints = {tile: _footprint(acqs) for tile, acqs in by_tile.items()}
        tile_col = assign_tiles(parcels, footprints) if footprints else pd.Series(pd.NA, index=parcels.index)
        tile_of = pd.Series(tile_col.to_numpy(), index=parcels["id_parcel"].astype(str).to_numpy())
        in_scope = [
            t for t in sorted(by_tile) if (not only_tiles or t in only_tiles) and (tile_of == t).any()
        ]
        stored = {
            t: set(SeriesStore(workdir / "series" / f"{t}.zarr").times())
            if SeriesStore(workdir / "series" / f"{t}.zarr").exists()
            else set()
            for t in in_scope
        }
        candidates = [a for t in in_scope for a in by_tile[t] if since is None or a.datetime.date() >= since]
        plan = runs.plan_run(
            engine, run_id, candidates, stored, workdir=str(workdir), retry_failed=retry_failed
        )
        for _tile, acq_id, err in plan.skipped_failed:
            result.failures.append(
                Failure("imagery", acq_id, f"failed in an earlier run, not retried (--retry-failed): {err}")
            )
        result.plan = {
            "candidates": len(candidates),
            "planned": len(plan.todo),
            "already_done": plan.skipped_done,
            "skipped_failed": len(plan.skipped_failed),
            "recovered_from_crash": plan.recovered,
            "replanned_after_crash": plan.abandoned,
        }
        result.acquisitions_new = len(plan.todo)
    rlog.info("plan: %s", result.plan)
    fault_point("after", "plan")

    # ---- index + extract -------------------------------------------------------------------
    tiles: dict[str, _Tile] = {}
    with _Timer(timings, "index"):
        for t in sorted(by_tile):
            members = parcels[(tile_of == t).to_numpy()]
            if not members.empty:
                tiles[t] = _index_tile(t, by_tile[t], members, config, workdir)
    with ExitStack() as cluster_scope:
        # One cluster for the extraction and the markers, started when first needed.
        clients: list[Any] = []

        def client(n_tasks: int) -> Any:
            if not clients:
                from s3tr.nightly.cluster import dask_client

                clients.append(
                    cluster_scope.enter_context(
                        dask_client(
                            scheduler,
                            workers=max(1, min(config.workers, n_tasks)),
                            memory_limit=config.worker_memory,
                        )
                    )
                )
            return clients[0]

        with _Timer(timings, "extract"):
            if plan.todo:
                _extract(client(len(plan.todo)), plan.todo, tiles, config, engine, result, progress, rlog)
        # ---- markers and decisions for the parcels whose inputs changed ---------------------------
        n_pixels = pd.concat([tl.pixels for tl in tiles.values()]) if tiles else pd.Series(dtype="int64")
        declarations = parcels.drop(columns="geometry").copy()
        declarations["n_pixels"] = declarations["id_parcel"].map(n_pixels)
        # A parcel outside every tile has no pixel count: it is not "too small", it has no imagery.
        declarations["monitorable"] = declarations["n_pixels"].isna() | (
            declarations["n_pixels"] >= MIN_PIXELS
        )

        ruleset = load_ruleset(config.campaign, config.region)
        window = ruleset.activity_window
        # Verdicts that need the whole activity window wait for its end during the season.
        as_of = min(datetime.now(UTC).date(), config.end)
        context = _context_key(ruleset, crop_model, as_of)
        state = load_state(workdir)
        fingerprints = declaration_fingerprints(declarations)
        dirty = runs.dirty_items(engine, tiles, workdir=str(workdir))
        dirty_tiles = set(dirty["tile"])
        decided = set(current_decisions(engine, campaign=config.campaign)["id_parcel"])
        redo = _parcels_to_redecide(state, context, fingerprints, tile_of, dirty_tiles, decided)
        result.redecided = len(redo)
        rlog.info(
            "re-deciding %d of %d parcels (tiles with new slots: %s)",
            len(redo),
            len(parcels),
            sorted(dirty_tiles),
        )

        sub_decl = declarations[isin(declarations["id_parcel"].astype(str), redo)]
        evidence, decisions = pd.DataFrame(), pd.DataFrame()
        result.series = pd.DataFrame(columns=["parcel_id", "date", "valid"])
        if len(sub_decl):
            with _Timer(timings, "markers"):
                work: list[tuple[str | None, list[str]]] = []
                ids = sub_decl["id_parcel"].astype(str).drop_duplicates()
                tile_by_id = tile_of.reindex(ids.to_numpy())
                for t in sorted(set(tile_by_id.dropna())):
                    work.append(
                        (str(workdir / "series" / f"{t}.zarr"), ids[(tile_by_id == t).to_numpy()].tolist())
                    )
                outside = ids[tile_by_id.isna().to_numpy()].tolist()
                if outside:
                    work.append((None, outside))
                evidence, result.series = gather_evidence(
                    client,
                    work,
                    sub_decl,
                    crop_model,
                    season=(window.start.isoformat(), window.end.isoformat()),
                    min_valid_fraction=config.min_valid_fraction,
                    keep_series=config.keep_series,
                    workers=config.workers,
                    max_chunk=config.markers_chunk,
                    progress=lambda done, total: progress("markers", done, total),
                    release=cluster_scope.close,
                )
            cluster_scope.close()  # the workers are not needed past this point
            fault_point("after", "markers")
            with _Timer(timings, "decide"):
                decisions = decide(sub_decl, evidence, ruleset, as_of=as_of, **crop_model_facts(crop_model))

        # ---- review queue ----------------------------------------------------------------------
        with _Timer(timings, "review"):
            sync_declarations(engine, parcels, run_id=run_id)
            result.sync = (
                sync_decisions(engine, decisions, run_id=run_id)
                if len(decisions)
                else SyncSummary(0, 0, 0, 0, 0, 0)
            )
        fault_point("after", "sync")
        new_state = state.merge(
            context=context,
            parcels=pd.Index(fingerprints.index),
            fingerprints=fingerprints[isin(fingerprints.index, redo)],
            evidence=evidence,
            decisions=decisions,
        )
        result.decisions, result.evidence = new_state.decisions, new_state.evidence

        # Post-review steps (image chips for new cases, notification outbox delivery, ...): they see
        # the synced queue; wired by the caller so this module stays free of their dependencies.
        with _Timer(timings, "post"):
            for step in post_steps:
                step(result, engine)

        # ---- state and outputs -----------------------------------------------------------------
        with _Timer(timings, "outputs"):
            save_state(workdir, new_state)
            fault_point("after", "state")
            runs.mark_applied(engine, dirty_tiles, workdir=str(workdir))
            if not result.decisions.empty:
                result.outputs["flags"] = write_flags(result.decisions, parcels, workdir / "flags.gpkg")
            if not loaded.rejects.empty:
                rejects_path = workdir / "rejects.csv"
                loaded.rejects.to_csv(rejects_path, index=False)
                result.outputs["rejects"] = rejects_path
        fault_point("after", "outputs")
        return result


def load_series(workdir: Path, *, min_valid_fraction: float = 0.5) -> pd.DataFrame:
    """The long series table of every tile store of ``workdir`` (all parcels, all acquisitions)."""
    tables = [
        SeriesStore(p).to_table(min_valid_fraction=min_valid_fraction)
        for p in sorted((Path(workdir) / "series").glob("*.zarr"))
        if SeriesStore(p).exists()
    ]
    return (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["parcel_id", "date", "valid"])
    )


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

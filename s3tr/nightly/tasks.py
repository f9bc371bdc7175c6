"""The unit of distributed work: read, mask and reduce one (tile, acquisition) on a Dask worker.

A task is a pure function of its inputs: it reads the acquisition's COGs, masks clouds with the
SCL band, computes the indices and reduces them per parcel, and *returns* the reduced
``(parcel, time=1)`` Dataset (a few MB even for 100,000 parcels). It writes nothing. The run
process, the single writer of every series store, appends the returned slot; this is what makes
the stores safe:

* no two writers ever touch one store (only the run process writes, one slot at a time);
* a retried task (worker killed, rerun after a crash) produces the same slot again, and the
  store replaces a time atomically with a higher version, so it can never be appended twice.

The parcel raster of a tile (run-length encoded, a few MB) is pickled once per tile into the
workdir by the run process and loaded (and cached) by each worker from that file rather than
sent through the scheduler: a killed worker loses nothing the retry needs. With a remote
scheduler the workdir and the catalog must therefore be on storage the workers share.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import numpy as np
import xarray as xr

from s3tr.errors import S3trError
from s3tr.extract import ParcelRaster
from s3tr.grid import Grid
from s3tr.imagery.base import Acquisition
from s3tr.imagery.indices import bands_for, compute_indices
from s3tr.imagery.local import cached_source
from s3tr.imagery.masks import valid_mask
from s3tr.nightly.faults import fault_point

__all__ = ["ItemOutcome", "TaskSpec", "extract_item", "save_raster"]

# Per worker process caches (a worker runs many tasks of the same tile and catalog).
_RASTERS: dict[str, ParcelRaster] = {}


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs, small and picklable."""

    seq: int
    acquisition: Acquisition
    catalog: str
    raster_path: str
    grid: Grid
    indices: tuple[str, ...]
    invalid_scl: tuple[int, ...]
    cloud_dilation_px: int


@dataclass
class ItemOutcome:
    """What a task returns: the reduced slot, or the reason the item failed; and its timings."""

    acquisition_id: str
    tile: str
    dataset: xr.Dataset | None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def save_raster(raster: ParcelRaster, path: Path) -> Path:
    """Pickle a tile's parcel raster to ``path`` atomically (callers name it after its inputs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{time.time_ns()}")
    tmp.write_bytes(pickle.dumps(raster, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.replace(path)
    return path


def _raster(path: str) -> ParcelRaster:
    if path not in _RASTERS:
        _RASTERS.clear()  # one tile at a time is plenty; keeps worker memory bounded
        with open(path, "rb") as fh:
            _RASTERS[path] = pickle.load(fh)
    return _RASTERS[path]


def extract_item(spec: TaskSpec) -> ItemOutcome:
    """Read, mask, compute indices and reduce one acquisition per parcel (runs on a Dask worker).

    Parameters
    ----------
    spec
        The acquisition, the catalog, the tile's parcel raster file and the extraction options.

    Returns
    -------
    ItemOutcome
        ``dataset`` on dims ``(parcel, time)`` for the series store, or ``error`` naming the file
        when the imagery could not be read (a corrupt or missing COG fails its item only).
    """
    acq = spec.acquisition
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    raster = _raster(spec.raster_path)
    try:
        source = cached_source(spec.catalog)
        reflectance, scl = source.read_with_scl(acq, bands_for(spec.indices), grid=spec.grid)
    except S3trError as exc:
        return ItemOutcome(acq.id, acq.tile, None, error=str(exc), timings={"read": time.perf_counter() - t0})
    t1 = time.perf_counter()
    timings["read"] = t1 - t0
    fault_point("task", spec.seq)
    fault_point("task", acq.id)
    mask = valid_mask(scl, invalid=spec.invalid_scl, dilate_px=spec.cloud_dilation_px)
    indices = compute_indices(reflectance, list(spec.indices), mask=mask)
    del reflectance, scl, mask
    t2 = time.perf_counter()
    timings["mask_indices"] = t2 - t1
    when = np.datetime64(acq.datetime.astimezone(UTC).replace(tzinfo=None), "ns")
    # One fused pass reduces every index of the acquisition (the indices share the SCL mask).
    ds = raster.statistics_many(indices, time=when)
    timings["reduce"] = time.perf_counter() - t2
    return ItemOutcome(acq.id, acq.tile, ds, timings=timings)

"""Image chips of the parcels under review, for the instructor console.

For every parcel with an active case, :func:`write_case_chips` cuts small PNG chips from the
imagery around the parcel — true colour and NDVI — for the key dates of the case: the last clear
acquisition before and the first clear one after each detected event (mowing, bare soil...), and
the latest clear acquisition. They are written with a JSON index under
``<workdir>/chips/<id_parcel>/``:

``index.json``
    ``id_parcel``, ``campaign``, ``commune`` (when the parcels file has one), ``outline`` (WGS84
    GeoJSON), ``cases`` (control, state, detected events and the control window of each active
    case) and ``chips``: one entry per image with its ``date``, ``kind`` (``truecolor`` or
    ``ndvi``), ``role`` (why this date), ``file``, ``size`` ``[width, height]`` in pixels, its
    georeferencing — ``crs``, ``bounds`` (minx, miny, maxx, maxy in that CRS), ``bounds_wgs84``
    (west, south, east, north) — and two affine maps fitted on the chip
    (``lonlat_to_px``/``px_to_lonlat``, ``[a, b, c, d, e, f]`` with ``col = a*lon + b*lat + c``,
    ``row = d*lon + e*lat + f``) so a browser can draw WGS84 points on it and read clicks back,
    plus ``outline_px``, the parcel outline in chip pixels.

``<workdir>/chips/index.json`` maps every parcel that has chips to its commune and chip count
(the console's commune filter reads the communes stored with the declarations, chips or not).

Chips keep the native 20 m pixels (the browser scales them up): a 300 m parcel gives a chip of
about 25 x 25 pixels and 1-2 kB. A rerun rewrites nothing that exists: PNG files already present
are kept (each is written whole or not at all, so none is truncated), and index files are only
rewritten when their content changes. The windows of all the parcels that want one acquisition are
read together, each COG opened once; the acquisitions are cut by threads of this process or, given
a Dask client, by tasks on its cluster. A parcel that fails (no geometry, no imagery) or an
unreadable raster is recorded in :attr:`ChipsResult.problems`; the other parcels and the parcel's
other dates go on.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from PIL import Image
from pyproj import Transformer
from shapely import wkt as shapely_wkt
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from s3tr.errors import S3trError
from s3tr.extract.store import SeriesStore
from s3tr.grid import Grid
from s3tr.imagery._reader import filter_acquisitions
from s3tr.imagery.base import Acquisition, ImagerySource
from s3tr.imagery.local import cached_source
from s3tr.review.database import db_url_for, make_engine
from s3tr.review.models import ACTIVE_STATES, Case, Decision, Declaration

__all__ = [
    "CHIP_KINDS",
    "ChipsResult",
    "chips_dir",
    "chips_for_run",
    "key_dates",
    "parcel_chips_dir",
    "read_chip_index",
    "write_case_chips",
]

logger = logging.getLogger(__name__)

CHIP_KINDS = ("truecolor", "ndvi")
"""The images cut for each key date."""

#: SCL classes counted as clear (vegetation, bare soil, water, unclassified) for the fallback choice.
_CLEAR_SCL = (4, 5, 6, 7)
_INDEX = "index.json"
#: Files being written, under the chips folder (no parcel's folder starts with a dot); emptied by each
#: run, so a write killed half-way leaves nothing behind.
_TMP = ".tmp"
#: Threads writing the parcels' index files (latency-bound on a network file system).
_INDEX_WRITERS = 8


@dataclass
class ChipsResult:
    """What :func:`write_case_chips` did.

    Attributes
    ----------
    parcels
        Parcels with an active case that were looked at.
    written, kept
        PNG files written, and PNG files already present (left untouched).
    problems
        ``(id_parcel, reason)`` of every parcel (or date) that got no chip.
    """

    parcels: int = 0
    written: int = 0
    kept: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def chips_dir(workdir: str | Path) -> Path:
    """The folder holding the chips of a workdir (``<workdir>/chips``)."""
    return Path(workdir) / "chips"


def parcel_chips_dir(workdir: str | Path, id_parcel: str) -> Path:
    """The folder of one parcel's chips (``<workdir>/chips/<id_parcel>``, made path-safe)."""
    return chips_dir(workdir) / _safe_name(id_parcel)


def read_chip_index(workdir: str | Path, id_parcel: str) -> dict[str, Any] | None:
    """The chip index of one parcel, or None when it has none (or it is unreadable)."""
    path = parcel_chips_dir(workdir, id_parcel) / _INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@lru_cache(maxsize=32)
def _transformer(src: str, dst: str) -> Transformer:
    """A cached (x, y) transformer: building one costs about a millisecond, a chip's whole budget."""
    return Transformer.from_crs(src, dst, always_xy=True)


def _safe_name(id_parcel: str) -> str:
    # id_parcel comes from the declaration file: keep it a single, harmless path component
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(id_parcel))
    return cleaned.strip(".") or "_"


# -- choosing the dates ---------------------------------------------------------------------------
def _event_dates(evidence: dict[str, Any]) -> dict[str, list[date]]:
    """Detected events of a decision's evidence: every ``<kind>_dates`` list of ISO dates."""
    events: dict[str, list[date]] = {}
    for key, value in (evidence or {}).items():
        if not key.endswith("_dates") or not isinstance(value, list):
            continue
        days = []
        for v in value:
            try:
                days.append(date.fromisoformat(str(v)[:10]))
            except ValueError:
                continue
        if days:
            events[key[: -len("_dates")]] = sorted(set(days))
    return events


def _control_window(control: str, ruleset: Any) -> dict[str, str] | None:
    if ruleset is None:
        return None
    window = {
        "min_activity": getattr(ruleset, "activity_window", None),
        "fallow": getattr(ruleset, "fallow_protected_period", None),
    }.get(control)
    if window is None:
        return None
    return {"start": window.start.isoformat(), "end": window.end.isoformat()}


def key_dates(
    valid_dates: Sequence[date], events: Iterable[date], *, max_events: int = 4
) -> list[tuple[date, str]]:
    """The key dates of a parcel: around each event (clear before / clear after) and the latest clear.

    Parameters
    ----------
    valid_dates
        Dates of the parcel's clear (valid) acquisitions.
    events
        Dates of the detected events.
    max_events
        Only the latest ``max_events`` events get their before/after pair (chips stay few).

    Returns
    -------
    list of (date, role)
        Sorted by date, each date once; ``role`` is ``before:<event>``, ``after:<event>`` or
        ``latest`` (roles of a shared date are joined with ``,``).
    """
    clear = sorted(set(valid_dates))
    roles: dict[date, list[str]] = {}
    for ev in sorted(set(events))[-max_events:]:
        before = [d for d in clear if d < ev]
        after = [d for d in clear if d >= ev]
        if before:
            roles.setdefault(before[-1], []).append(f"before:{ev.isoformat()}")
        if after:
            roles.setdefault(after[0], []).append(f"after:{ev.isoformat()}")
    if clear:
        roles.setdefault(clear[-1], []).append("latest")
    return [(d, ",".join(r)) for d, r in sorted(roles.items())]


# -- cutting one chip -----------------------------------------------------------------------------
def _window_grid(grid: Grid, bounds: tuple[float, float, float, float], margin: float) -> Grid | None:
    """The window of ``grid`` (whole pixels) covering ``bounds`` plus ``margin`` metres."""
    inv = ~grid.transform
    minx, miny, maxx, maxy = bounds
    cols, rows = [], []
    for x, y in ((minx - margin, maxy + margin), (maxx + margin, miny - margin)):
        c, r = inv * (x, y)
        cols.append(c)
        rows.append(r)
    c0, c1 = math.floor(min(cols)), math.ceil(max(cols))
    r0, r1 = math.floor(min(rows)), math.ceil(max(rows))
    if c1 <= c0 or r1 <= r0:
        return None
    return grid.window(r0, c0, r1 - r0, c1 - c0)


def _truecolor_png(rgb: np.ndarray) -> bytes:
    """Reflectance (3, h, w) -> PNG; a fixed gain and gamma, so dates compare visually."""
    scaled = np.clip(np.nan_to_num(rgb, nan=0.0) * 3.5, 0.0, 1.0) ** (1 / 1.3)
    arr = (scaled * 255).round().astype(np.uint8).transpose(1, 2, 0)
    alpha = np.where(np.isnan(rgb).any(axis=0), 0, 255).astype(np.uint8)
    return _png(np.dstack([arr, alpha]))


#: NDVI colour ramp (value, RGB): bare soil brown -> sparse yellow -> dense vegetation green.
_NDVI_RAMP = (
    (-0.2, (120, 80, 50)),
    (0.2, (200, 160, 90)),
    (0.4, (230, 220, 110)),
    (0.6, (130, 190, 80)),
    (0.9, (20, 110, 40)),
)


def _ndvi_png(ndvi: np.ndarray) -> bytes:
    stops = np.array([s for s, _ in _NDVI_RAMP])
    colours = np.array([c for _, c in _NDVI_RAMP], dtype=float)
    v = np.clip(np.nan_to_num(ndvi, nan=stops[0]), stops[0], stops[-1])
    rgb = np.stack([np.interp(v, stops, colours[:, i]) for i in range(3)], axis=-1)
    alpha = np.where(np.isnan(ndvi), 0, 255)
    return _png(np.dstack([rgb.round().astype(np.uint8), alpha.astype(np.uint8)]))


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """Least-squares affine ``dst = A @ [src, 1]`` as ``[a, b, c, d, e, f]``."""
    design = np.column_stack([src, np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return [float(v) for v in (coef[0, 0], coef[1, 0], coef[2, 0], coef[0, 1], coef[1, 1], coef[2, 1])]


def _georef(window: Grid, outline: BaseGeometry) -> dict[str, Any]:
    """Bounds and pixel <-> WGS84 maps of a chip window; the outline (in window CRS) in pixels."""
    h, w = window.shape
    to_wgs = _transformer(str(window.crs), "EPSG:4326")
    cols, rows = np.meshgrid(np.linspace(0, w, 5), np.linspace(0, h, 5))
    px = np.column_stack([cols.ravel(), rows.ravel()])
    xs, ys = window.transform * (px[:, 0], px[:, 1])
    lon, lat = to_wgs.transform(np.asarray(xs), np.asarray(ys))
    ll = np.column_stack([lon, lat])
    inv = ~window.transform

    def to_px(xy: np.ndarray) -> np.ndarray:
        c, r = inv * (xy[:, 0], xy[:, 1])
        return np.column_stack([c, r])

    outline_px = shapely.transform(outline, to_px)
    return {
        "crs": window.crs,
        "bounds": [round(v, 3) for v in window.bounds],
        "bounds_wgs84": [
            round(float(lon.min()), 7),
            round(float(lat.min()), 7),
            round(float(lon.max()), 7),
            round(float(lat.max()), 7),
        ],
        "size": [w, h],
        "lonlat_to_px": _fit_affine(ll, px),
        "px_to_lonlat": _fit_affine(px, ll),
        "outline_px": _round_coords(mapping(outline_px)),
    }


def _round_coords(geo: Any) -> Any:
    if isinstance(geo, dict):
        return {k: _round_coords(v) for k, v in geo.items()}
    if isinstance(geo, list | tuple):
        return [_round_coords(v) for v in geo]
    if isinstance(geo, float):
        return round(geo, 2)
    return geo


# -- the parcel loop ------------------------------------------------------------------------------
@dataclass
class _Parcel:
    campaign: int
    id_parcel: str
    geometry: BaseGeometry
    crs: str
    cases: list[dict[str, Any]]
    events: set[date]


def _active_parcels(engine: Any, ruleset: Any) -> list[_Parcel]:
    """Parcels with an active case, with their latest geometry and the events of their decisions.

    Two queries whatever the queue's size (not one per parcel and case: a national first night
    opens about a million cases, and each round trip to PostgreSQL costs a fraction of a millisecond).
    """
    active = [s.value for s in ACTIVE_STATES]
    with Session(engine) as s:
        cases = s.execute(
            select(Case.campaign, Case.id_parcel, Case.case_id, Case.control, Case.state, Decision.evidence)
            .outerjoin(Decision, Decision.id == Case.decision_id)
            .where(Case.state.in_(active))
            .order_by(Case.campaign, Case.id_parcel, Case.case_id)
        ).all()
        # the latest declaration version of every parcel with an active case
        wanted = (
            select(
                Declaration.campaign, Declaration.id_parcel, func.max(Declaration.version).label("version")
            )
            .where(
                exists().where(
                    Case.campaign == Declaration.campaign,
                    Case.id_parcel == Declaration.id_parcel,
                    Case.state.in_(active),
                )
            )
            .group_by(Declaration.campaign, Declaration.id_parcel)
            .subquery()
        )
        declarations = {
            (campaign, pid): (wkt, crs)
            for campaign, pid, wkt, crs in s.execute(
                select(
                    Declaration.campaign, Declaration.id_parcel, Declaration.geometry_wkt, Declaration.crs
                ).join(
                    wanted,
                    (Declaration.campaign == wanted.c.campaign)
                    & (Declaration.id_parcel == wanted.c.id_parcel)
                    & (Declaration.version == wanted.c.version),
                )
            )
        }
    out: dict[tuple[int, str], _Parcel] = {}
    for campaign, pid, case_id, control, state, evidence in cases:
        key = (campaign, pid)
        if key not in out:
            wkt, crs = declarations.get(key, (None, None))
            if not wkt:
                out[key] = _Parcel(campaign, pid, shapely.Point(), "", [], set())
            else:
                out[key] = _Parcel(campaign, pid, shapely_wkt.loads(wkt), crs or "EPSG:4326", [], set())
        events = _event_dates(dict(evidence or {}))
        out[key].events.update(d for days in events.values() for d in days)
        out[key].cases.append(
            {
                "case_id": case_id,
                "control": control,
                "state": state,
                "events": {k: [d.isoformat() for d in v] for k, v in sorted(events.items())},
                "window": _control_window(control, ruleset),
            }
        )
    return list(out.values())


def _write_if_changed(path: Path, data: dict[str, Any], tmp_dir: Path) -> bool:
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    _write_atomic(path, text.encode("utf-8"), tmp_dir)
    return True


class _Listing:
    """The source and its acquisitions of each day, listed once for all the parcels.

    A day is listed over ``bounds`` (all the parcels' WGS84 box) and each parcel keeps the acquisitions
    over its own box: listing per parcel would ask a remote catalogue once per parcel and date, and a list
    made for the first parcel's box would miss the tiles of parcels elsewhere.
    """

    def __init__(self, source: ImagerySource, bounds: tuple[float, float, float, float] | None) -> None:
        self.source = source
        self.bounds = bounds
        self._days: dict[date, list[Acquisition]] = {}
        self._lock = threading.Lock()

    def on(self, day: date, bbox: tuple[float, float, float, float]) -> list[Acquisition]:
        # Under the lock: a remote catalogue is asked once per day, whichever thread asks.
        with self._lock:
            if day not in self._days:
                self._days[day] = self.source.list_acquisitions(start=day, end=day, bbox=self.bounds)
        return filter_acquisitions(self._days[day], bbox=bbox)


_CHIP_BANDS = ("B04", "B03", "B02", "B08")


def _outline_window(
    acq: Acquisition, geom_wgs: BaseGeometry, margin_m: float
) -> tuple[Grid, BaseGeometry] | None:
    """The window of ``acq`` around the parcel (None when it does not cover it) and the outline in its CRS."""
    to_grid = _transformer("EPSG:4326", str(acq.grid.crs))
    outline = shapely.transform(geom_wgs, lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])))
    window = _window_grid(acq.grid, outline.bounds, margin_m)
    return None if window is None else (window, outline)


def _read_windows(
    source: Any, acq: Acquisition, windows: Sequence[Grid]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Reflectance (4, h, w) B04 B03 B02 B08 and SCL of each window (each file opened once if possible)."""
    if hasattr(source, "read_windows_with_scl"):
        return source.read_windows_with_scl(acq, _CHIP_BANDS, windows)
    out = []
    for window in windows:
        if hasattr(source, "read_with_scl"):
            data, scl = source.read_with_scl(acq, _CHIP_BANDS, grid=window)
        else:
            data, scl = source.read(acq, _CHIP_BANDS, grid=window), None
        values = np.asarray(data.values, dtype=np.float32)
        if scl is None:
            scl = np.where(np.isnan(values).any(axis=0), 0, 4).astype(np.uint8)
        out.append((values, np.asarray(scl)))
    return out


def _wgs84_bounds(parcels: Sequence[_Parcel]) -> tuple[float, float, float, float] | None:
    """``(west, south, east, north)`` of all the parcels, or None when none has a geometry."""
    boxes = []
    for p in parcels:
        if p.geometry.is_empty:
            continue
        box = p.geometry.bounds
        if p.crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
            tr = _transformer(str(p.crs), "EPSG:4326")
            xs, ys = tr.transform([box[0], box[2], box[0], box[2]], [box[1], box[1], box[3], box[3]])
            box = (min(xs), min(ys), max(xs), max(ys))
        boxes.append(box)
    if not boxes:
        return None
    b = np.asarray(boxes, dtype=float)
    return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


def _clear_dates_by_parcel(workdir: Path, wanted: set[str]) -> dict[str, list[date]]:
    """Dates of the clear (valid) acquisitions of each wanted parcel, from every series store.

    The rule of :func:`s3tr.extract.table.to_table` (:meth:`~s3tr.extract.store.SeriesStore.clear_dates`).
    Only the wanted parcels' validity is read, slot by slot: parcel by parcel would open every slot once
    per parcel; loading whole stores would hold every index of every parcel of a tile in memory.
    """
    out: dict[str, set[date]] = {}
    root = workdir / "series"
    if not root.is_dir():
        return {}
    for path in sorted(root.glob("*.zarr")):
        store = SeriesStore(path)
        if store.exists():
            for pid, days in store.clear_dates(wanted).items():
                out.setdefault(pid, set()).update(days)
    return {k: sorted(v) for k, v in out.items()}


def write_case_chips(
    workdir: str | Path,
    source: ImagerySource,
    *,
    db_url: str | None = None,
    communes: dict[str, str] | None = None,
    ruleset: Any = None,
    margin_m: float = 60.0,
    max_events: int = 4,
    workers: int | None = None,
    client: Any = None,
) -> ChipsResult:
    """Cut the image chips of every parcel with an active case (see the module docstring).

    Parameters
    ----------
    workdir
        The run directory: series stores (``series/``), and where ``chips/`` is written.
    source
        The imagery the series were extracted from (e.g. :class:`~s3tr.imagery.local.LocalStacSource`).
    db_url
        The review database (default: SQLite in ``<workdir>/s3tr.db``).
    communes
        ``id_parcel -> INSEE commune code``, recorded in the indexes.
    ruleset
        The campaign's :class:`~s3tr.decide.rules.RuleSet`, to record the control windows.
    margin_m
        Metres of imagery kept around the parcel's bounding box.
    max_events
        Only the latest ``max_events`` events of a parcel get their before/after chips.
    workers
        Acquisitions cut at once (threads; default the number of cores, at most 4).
    client
        A Dask client: each acquisition is then cut by a task on the cluster (the workers read the
        imagery, as for the extraction; ``source`` must be a
        :class:`~s3tr.imagery.local.LocalStacSource` on storage they share) and this process writes
        the files. Default: threads here.

    Returns
    -------
    ChipsResult
        Counts and the problems met (one failing parcel never stops the others).
    """
    workdir = Path(workdir)
    root = chips_dir(workdir)
    root.mkdir(parents=True, exist_ok=True)
    tmp_dir = root / _TMP
    shutil.rmtree(tmp_dir, ignore_errors=True)  # what a killed run was writing
    tmp_dir.mkdir()
    engine = make_engine(db_url or db_url_for(workdir))
    try:
        parcels = _active_parcels(engine, ruleset)
    finally:
        engine.dispose()
    result = ChipsResult(parcels=len(parcels))
    listing = _Listing(source, _wgs84_bounds(parcels))
    clear = _clear_dates_by_parcel(workdir, {p.id_parcel for p in parcels})

    # Three passes, so that each COG is opened once per acquisition rather than once per chip:
    # plan every parcel's key dates, read the windows of all the parcels that want an acquisition
    # together, then write each parcel's index.
    located = [p for p in parcels if not p.geometry.is_empty]
    result.problems += [
        (p.id_parcel, "the declaration has no geometry") for p in parcels if p.geometry.is_empty
    ]
    # no series (e.g. a parcel too small to be extracted): the latest mostly clear acquisition
    unseen = [p for p in located if not clear.get(p.id_parcel)]
    try:
        latest = _latest_clear(source, unseen, margin_m)
    except (S3trError, OSError, ValueError) as exc:  # e.g. the catalogue cannot be listed
        logger.warning("chips: no latest clear date for %d parcels without a series: %s", len(unseen), exc)
        result.problems += [(p.id_parcel, f"{type(exc).__name__}: {exc}") for p in unseen]
        latest = {}
    plans = []
    for parcel in located:
        try:
            pid = parcel.id_parcel
            plan = _plan(
                workdir,
                parcel,
                clear.get(pid, []),
                margin_m,
                max_events,
                listing,
                result,
                latest.get(pid, []),
            )
            plans.append(plan)
        except (S3trError, OSError, ValueError) as exc:
            # one bad parcel (odd geometry, unreadable index) must not stop the others
            logger.warning("no chips for parcel %s: %s", parcel.id_parcel, exc)
            result.problems.append((parcel.id_parcel, f"{type(exc).__name__}: {exc}"))
    by_acquisition: dict[str, list[tuple[_Plan, _Shot]]] = {}
    for plan in plans:
        for shot in plan.shots:
            if shot.georef is None:
                by_acquisition.setdefault(shot.acq.id, []).append((plan, shot))

    groups = list(by_acquisition.values())
    for done, (jobs, got) in enumerate(
        _cut_groups(listing.source, groups, margin_m, tmp_dir, client=client, workers=workers), 1
    ):
        _save_cuts(jobs, got, result)
        if done % 500 == 0:
            logger.info("chips: %d of %d acquisitions cut", done, len(groups))
    # One small file per parcel: file system calls that wait, not compute, hence threads.
    with ThreadPoolExecutor(max_workers=_INDEX_WRITERS) as pool:
        entries = pool.map(lambda plan: _write_parcel_index(plan, communes or {}, tmp_dir), plans)
        summary = {plan.parcel.id_parcel: entry for plan, entry in zip(plans, entries, strict=True)}
    _write_if_changed(root / _INDEX, {"parcels": summary}, tmp_dir)
    tmp_dir.rmdir()  # empty: every write moved its file in, or removed it when it failed
    logger.info(
        "chips: %d parcels, %d written, %d kept, %d problems",
        result.parcels,
        result.written,
        result.kept,
        len(result.problems),
    )
    return result


@dataclass
class _Shot:
    """One key date of one parcel: its acquisition, file names and, once known, georeferencing."""

    day: date
    role: str
    acq: Acquisition
    names: dict[str, str]
    georef: dict[str, Any] | None = None
    clear_fraction: float | None = None


@dataclass
class _Plan:
    parcel: _Parcel
    geom: BaseGeometry  # WGS84
    folder: Path
    shots: list[_Shot]


def _plan(
    workdir: Path,
    parcel: _Parcel,
    clear: list[date],
    margin_m: float,
    max_events: int,
    listing: _Listing,
    result: ChipsResult,
    latest: list[tuple[date, str]],
) -> _Plan:
    """The parcel's key dates and their acquisitions; chips already written keep their georeferencing.

    ``latest`` is the date to show a parcel without a series (:func:`_latest_clear`).
    """
    geom = _wgs84_geometry(parcel)
    bbox = tuple(float(v) for v in geom.bounds)
    wanted = key_dates(clear, parcel.events, max_events=max_events) if clear else latest
    folder = parcel_chips_dir(workdir, parcel.id_parcel)
    known = _known_chips(folder)
    shots: list[_Shot] = []
    tile: str | None = None
    for day, role in wanted:
        acqs = listing.on(day, bbox)  # type: ignore[arg-type]
        if tile is not None:
            # keep one tile per parcel, so every chip shares the same frame
            acqs = sorted(acqs, key=lambda a: a.tile != tile)
        if not acqs:
            result.problems.append((parcel.id_parcel, f"no acquisition on {day} covers the parcel"))
            continue
        acq = acqs[0]
        tile = tile or acq.tile
        shot = _Shot(day, role, acq, {k: f"{day.isoformat()}_{acq.tile}_{k}.png" for k in CHIP_KINDS})
        previous = known.get(shot.names["truecolor"])
        if previous is not None and all((folder / n).is_file() for n in shot.names.values()):
            shot.georef = _georef_of(previous)
            shot.clear_fraction = previous.get("clear_fraction")
        if shot.georef is not None:
            result.kept += len(shot.names)
        shots.append(shot)
    return _Plan(parcel, geom, folder, shots)


@dataclass(frozen=True)
class _Cut:
    """One chip date of one parcel, as sent to a thread or a Dask worker (small and picklable)."""

    id_parcel: str
    geom: BaseGeometry  # WGS84
    folder: Path
    names: tuple[tuple[str, str], ...]  # (kind, file name) of each image of the date


@dataclass
class _Cuts:
    """What :func:`_cut_acquisition` did: each cut's frame (None when it failed), files written and kept."""

    frames: list[tuple[dict[str, Any], float] | None] = field(default_factory=list)  # georef, clear
    written: int = 0
    kept: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def _cut_acquisition(
    source: Any, acq: Acquisition, cuts: Sequence[_Cut], margin_m: float, tmp_dir: Path
) -> _Cuts:
    """Cut and write the chips of every parcel that wants ``acq`` (one open per file).

    Runs in a thread of the run process or on a Dask worker: the workers write the files, so the
    run process's file system calls do not grow with the chips (on a cluster the workdir must be
    on storage the workers share, as for the extraction). Each file is written whole or not at
    all; a retried task rewrites the same bytes.
    """
    out = _Cuts()
    framed = []
    for k, cut in enumerate(cuts):
        window = _outline_window(acq, cut.geom, margin_m)
        out.frames.append(None)
        if window is None:
            out.problems.append((cut.id_parcel, f"acquisition {acq.id} does not cover the parcel"))
        else:
            framed.append((k, *window))
    try:
        reads = _read_windows(source, acq, [w for _, w, _ in framed])
    except (S3trError, OSError, ValueError) as exc:
        # an unreadable acquisition costs its chips, not the parcels' other dates
        logger.warning("no chips from %s: %s", acq.id, exc)
        out.problems += [(cuts[k].id_parcel, f"{type(exc).__name__}: {exc}") for k, *_ in framed]
        return out
    render = {
        "truecolor": lambda v: _truecolor_png(v[:3]),
        "ndvi": lambda v: _ndvi_png(_ndvi(v[0], v[3])),
    }
    for (k, window, outline), (values, scl) in zip(framed, reads, strict=True):
        folder = cuts[k].folder
        folder.mkdir(parents=True, exist_ok=True)
        for kind, name in cuts[k].names:
            if (folder / name).is_file():
                out.kept += 1
            else:
                _write_atomic(folder / name, render[kind](values), tmp_dir)
                out.written += 1
        clear = float(np.isin(scl, _CLEAR_SCL).mean()) if scl.size else 0.0
        out.frames[k] = (_georef(window, outline), clear)
    return out


def _cut_on_worker(
    catalog: str, acq: Acquisition, cuts: Sequence[_Cut], margin_m: float, tmp_dir: Path
) -> _Cuts:
    """:func:`_cut_acquisition` as a Dask task: the worker opens the catalog itself (once per process)."""
    return _cut_acquisition(cached_source(catalog), acq, cuts, margin_m, tmp_dir)


def _write_atomic(path: Path, data: bytes, tmp_dir: Path) -> None:
    """Write a whole file or nothing: a rerun keeps any chip file it finds, so none may be truncated."""
    tmp = tmp_dir / f"{path.parent.name}-{path.name}.{os.getpid()}-{threading.get_ident()}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cut_groups(
    source: Any,
    groups: list[list[tuple[_Plan, _Shot]]],
    margin_m: float,
    tmp_dir: Path,
    *,
    client: Any,
    workers: int | None,
) -> Iterator[tuple[list[tuple[_Plan, _Shot]], _Cuts | BaseException]]:
    """Each acquisition group with what cutting it gave (or the error that stopped it), as they finish.

    On ``client`` (Dask) each group is a task; otherwise a thread pool in this process.
    """

    def task(jobs: list[tuple[_Plan, _Shot]]) -> tuple[Acquisition, list[_Cut], float, Path]:
        """The arguments of :func:`_cut_acquisition` after the source, for one group."""
        cuts = [
            _Cut(plan.parcel.id_parcel, plan.geom, plan.folder, tuple(shot.names.items()))
            for plan, shot in jobs
        ]
        return jobs[0][1].acq, cuts, margin_m, tmp_dir

    if client is not None:
        yield from _cut_on_cluster(client, source, groups, task)
        return

    def run(jobs: list[tuple[_Plan, _Shot]]) -> _Cuts | BaseException:
        try:
            return _cut_acquisition(source, *task(jobs))
        except Exception as exc:
            return exc

    # Decoding and PNG encoding release the GIL, opening files mostly does not.
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        yield from zip(groups, pool.map(run, groups), strict=True)


def _cut_on_cluster(
    client: Any,
    source: Any,
    groups: list[list[tuple[_Plan, _Shot]]],
    task: Any,
) -> Iterator[tuple[list[tuple[_Plan, _Shot]], _Cuts | BaseException]]:
    """:func:`_cut_groups` on a Dask cluster, a bounded number of tasks in flight.

    Bounded, so that the geometries of a national queue are never all on the scheduler at once.
    """
    from distributed import as_completed

    catalog = getattr(source, "catalog_path", None)
    if catalog is None:
        raise ValueError(f"chips on a Dask cluster need a local STAC catalog, not {source!r}")
    window = max(8, 4 * sum(client.nthreads().values()))
    todo = iter(groups)
    in_flight: dict[Any, list[tuple[_Plan, _Shot]]] = {}
    finished = as_completed()

    def submit_next() -> None:
        jobs = next(todo, None)
        if jobs is not None:
            future = client.submit(_cut_on_worker, str(catalog), *task(jobs), pure=False, retries=2)
            in_flight[future] = jobs
            finished.add(future)

    for _ in range(window):
        submit_next()
    for future in finished:
        jobs = in_flight.pop(future)
        try:
            got: _Cuts | BaseException = future.result()
        except Exception as exc:  # a lost task (its worker killed past the retries) costs its chips only
            got = exc
        future.release()
        submit_next()
        yield jobs, got


def _save_cuts(jobs: list[tuple[_Plan, _Shot]], got: _Cuts | BaseException, result: ChipsResult) -> None:
    """Record what a group gave: counts, problems and the georeferencing of each shot."""
    if isinstance(got, BaseException):
        logger.warning("no chips from %s: %s", jobs[0][1].acq.id, got)
        result.problems += [(plan.parcel.id_parcel, f"{type(got).__name__}: {got}") for plan, _ in jobs]
        return
    result.problems += got.problems
    result.written += got.written
    result.kept += got.kept
    for (_, shot), frame in zip(jobs, got.frames, strict=True):
        if frame is not None:
            shot.georef, shot.clear_fraction = frame


def _write_parcel_index(plan: _Plan, communes: dict[str, str], tmp_dir: Path) -> dict[str, Any]:
    """Write the parcel's index (the chips that exist) and return its entry in the run's index."""
    chips = [
        {
            "date": shot.day.isoformat(),
            "kind": kind,
            "role": shot.role,
            "file": name,
            "acquisition": shot.acq.id,
            "clear_fraction": round(shot.clear_fraction or 0.0, 3),
            **shot.georef,
        }
        for shot in plan.shots
        if shot.georef is not None
        for kind, name in shot.names.items()
    ]
    pid = plan.parcel.id_parcel
    plan.folder.mkdir(parents=True, exist_ok=True)
    index = {
        "id_parcel": pid,
        "campaign": plan.parcel.campaign,
        "commune": communes.get(pid),
        "outline": _round7(mapping(plan.geom)),
        "cases": plan.parcel.cases,
        "chips": chips,
    }
    _write_if_changed(plan.folder / _INDEX, index, tmp_dir)
    return {"commune": communes.get(pid), "chips": len(chips)}


def _round7(geo: Any) -> Any:
    if isinstance(geo, dict):
        return {k: _round7(v) for k, v in geo.items()}
    if isinstance(geo, list | tuple):
        return [_round7(v) for v in geo]
    return round(geo, 7) if isinstance(geo, float) else geo


def _ndvi(red: np.ndarray, nir: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (nir - red) / (nir + red)
    return np.where(np.isfinite(out), out, np.nan)


_GEOREF_KEYS = ("crs", "bounds", "bounds_wgs84", "size", "lonlat_to_px", "px_to_lonlat", "outline_px")


def _known_chips(folder: Path) -> dict[str, dict[str, Any]]:
    """The chips of the parcel's existing index, by file name (empty when there is none)."""
    try:
        index = json.loads((folder / _INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {c["file"]: c for c in index.get("chips", []) if isinstance(c, dict) and "file" in c}


def _georef_of(chip: dict[str, Any]) -> dict[str, Any] | None:
    return {k: chip[k] for k in _GEOREF_KEYS} if all(k in chip for k in _GEOREF_KEYS) else None


def _wgs84_geometry(parcel: _Parcel) -> BaseGeometry:
    if parcel.crs.upper() in ("EPSG:4326", "OGC:CRS84"):
        return parcel.geometry
    tr = _transformer(str(parcel.crs), "EPSG:4326")
    return shapely.transform(parcel.geometry, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _latest_clear(
    source: Any, parcels: Sequence[_Parcel], margin_m: float, tries: int = 8, min_clear: float = 0.6
) -> dict[str, list[tuple[date, str]]]:
    """``id_parcel -> [(date, "latest")]``: each parcel's latest acquisition at least ``min_clear`` clear.

    Each parcel tries its ``tries`` latest acquisitions, newest first; in each round the parcels that try
    the same acquisition read it together (one open per file), and the catalogue is listed once.
    """
    if not parcels:
        return {}
    geoms = {p.id_parcel: _wgs84_geometry(p) for p in parcels}
    every = source.list_acquisitions(bbox=_wgs84_bounds(parcels))
    recent = {pid: filter_acquisitions(every, bbox=g.bounds)[-tries:][::-1] for pid, g in geoms.items()}
    chosen: dict[str, list[tuple[date, str]]] = {}
    for round_ in range(tries):
        groups: dict[str, tuple[Acquisition, list[str]]] = {}
        for pid, acqs in recent.items():
            if pid not in chosen and round_ < len(acqs):
                groups.setdefault(acqs[round_].id, (acqs[round_], []))[1].append(pid)
        for acq, pids in groups.values():
            framed = [
                (pid, w) for pid in pids if (w := _outline_window(acq, geoms[pid], margin_m)) is not None
            ]
            try:
                reads = _read_windows(source, acq, [window for _, (window, _) in framed])
            except (S3trError, OSError, ValueError) as exc:
                logger.warning("chips: %s left out of the latest-date choice: %s", acq.id, exc)
                continue  # these parcels try their next acquisition
            for (pid, _), (_, scl) in zip(framed, reads, strict=True):
                if scl.size and float(np.isin(scl, _CLEAR_SCL).mean()) >= min_clear:
                    chosen[pid] = [(acq.date, "latest")]
    return chosen


def chips_for_run(
    config: Any, workdir: str | Path, *, db_url: str | None = None, client: Any = None
) -> ChipsResult:
    """:func:`write_case_chips` for a nightly run configuration (its catalog, parcels and rule set).

    Parameters
    ----------
    config
        The :class:`~s3tr.nightly.config.RunConfig` of the run (``catalog``, ``parcels``,
        ``campaign``, ``region``).
    workdir, db_url
        As given to the run.
    client
        A Dask client to cut the acquisitions on (see :func:`write_case_chips`).
    """
    from s3tr.decide.rules import load_ruleset
    from s3tr.imagery.local import LocalStacSource

    communes: dict[str, str] = {}
    try:
        from s3tr.parcels import load_parcels

        frame = load_parcels(config.parcels, campaign=config.campaign).parcels
        if "commune" in frame.columns:
            communes = {
                str(k): str(v)
                for k, v in zip(frame["id_parcel"], frame["commune"], strict=True)
                if isinstance(v, str) and v
            }
    except (S3trError, OSError, ValueError) as exc:
        logger.warning("chips: no communes (%s)", exc)
    try:
        ruleset = load_ruleset(config.campaign, getattr(config, "region", None))
    except (S3trError, OSError, ValueError) as exc:
        logger.warning("chips: no rule set, control windows left out (%s)", exc)
        ruleset = None
    source = LocalStacSource(config.catalog)
    return write_case_chips(workdir, source, db_url=db_url, communes=communes, ruleset=ruleset, client=client)

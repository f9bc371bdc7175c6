"""Image chips of the parcels under review: dates, georeferencing, idempotency, bad records."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import shape
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from s3tr.demo.runner import demo_run_config
from s3tr.imagery._reader import acquisition_bbox
from s3tr.imagery.local import LocalStacSource
from s3tr.review.chips import (
    _Listing,
    _ndvi_png,
    chips_dir,
    chips_for_run,
    key_dates,
    read_chip_index,
)
from s3tr.review.database import db_url_for, make_engine
from s3tr.review.models import ACTIVE_STATES, Case, Declaration


@pytest.fixture
def work(console_workdir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "work"
    shutil.copytree(console_workdir, dst)
    return dst


def _active_parcels(work: Path) -> set[str]:
    engine = make_engine(db_url_for(work))
    with Session(engine) as s:
        ids = s.scalars(select(Case.id_parcel).where(Case.state.in_([a.value for a in ACTIVE_STATES]))).all()
    engine.dispose()
    return set(ids)


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    }


def test_key_dates_around_events_and_latest() -> None:
    clear = [date(2025, 4, d) for d in (1, 5, 9, 20, 28)]
    assert key_dates(clear, [date(2025, 4, 7), date(2025, 4, 20)]) == [
        (date(2025, 4, 5), "before:2025-04-07"),
        (date(2025, 4, 9), "after:2025-04-07,before:2025-04-20"),
        (date(2025, 4, 20), "after:2025-04-20"),
        (date(2025, 4, 28), "latest"),
    ]
    # shared dates get both roles; no clear date before the event: only "after"
    assert key_dates(clear, [date(2025, 4, 1)]) == [
        (date(2025, 4, 1), "after:2025-04-01"),
        (date(2025, 4, 28), "latest"),
    ]
    assert key_dates([date(2025, 4, 5)], [date(2025, 4, 9)]) == [
        (date(2025, 4, 5), "before:2025-04-09,latest")
    ]
    assert key_dates([], [date(2025, 4, 9)]) == []


def test_every_active_parcel_has_georeferenced_chips(console_workdir: Path) -> None:
    root = chips_dir(console_workdir)
    active = _active_parcels(console_workdir)
    assert {p.name for p in root.iterdir() if p.is_dir()} == active
    summary = json.loads((root / "index.json").read_text())["parcels"]
    assert set(summary) == active
    for pid in active:
        index = read_chip_index(console_workdir, pid)
        assert index is not None and index["id_parcel"] == pid
        assert index["chips"], pid
        assert summary[pid]["chips"] == len(index["chips"])
        assert {c["kind"] for c in index["chips"]} == {"truecolor", "ndvi"}
        outline = shape(index["outline"])
        west, south, east, north = outline.bounds
        for chip in index["chips"]:
            png = Image.open(io.BytesIO((root / pid / chip["file"]).read_bytes()))
            assert png.format == "PNG" and list(png.size) == chip["size"]
            w, h = chip["size"]
            bw, bs, be, bn = chip["bounds_wgs84"]
            assert bw < west and be > east and bs < south and bn > north
            minx, miny, maxx, maxy = chip["bounds"]
            assert (maxx - minx, maxy - miny) == pytest.approx((20.0 * w, 20.0 * h))
            a, b, c, d, e, f = chip["lonlat_to_px"]
            pa, pb, pc, pd, pe, pf = chip["px_to_lonlat"]
            ring_ll = np.asarray(index["outline"]["coordinates"][0])
            ring_px = np.asarray(chip["outline_px"]["coordinates"][0])
            assert len(ring_ll) == len(ring_px)
            col = a * ring_ll[:, 0] + b * ring_ll[:, 1] + c
            row = d * ring_ll[:, 0] + e * ring_ll[:, 1] + f
            # the fitted WGS84 -> pixel map agrees with the exact projection within a tenth of a pixel
            assert np.abs(col - ring_px[:, 0]).max() < 0.1 and np.abs(row - ring_px[:, 1]).max() < 0.1
            assert (ring_px[:, 0] > 0).all() and (ring_px[:, 0] < w).all()
            assert (ring_px[:, 1] > 0).all() and (ring_px[:, 1] < h).all()
            back_lon = pa * col + pb * row + pc
            back_lat = pd * col + pe * row + pf
            assert (
                np.abs(back_lon - ring_ll[:, 0]).max() < 1e-6
                and np.abs(back_lat - ring_ll[:, 1]).max() < 1e-6
            )


def test_rerun_rewrites_nothing_and_fills_gaps(work: Path, console_season: Path) -> None:
    config = demo_run_config(console_season, workers=1)
    root = chips_dir(work)
    before = _snapshot(root)
    n_png = sum(1 for k in before if k.endswith(".png"))
    again = chips_for_run(config, work)
    assert (again.written, again.kept) == (0, n_png)
    assert _snapshot(root) == before
    # a chip lost from the store is cut again, identical; nothing else is touched
    lost = next(k for k in sorted(before) if k.endswith("_ndvi.png"))
    (root / lost).unlink()
    third = chips_for_run(config, work)
    assert (third.written, third.kept) == (1, n_png - 1)
    after = _snapshot(root)
    assert after[lost][1] == before[lost][1]
    assert {k: v for k, v in after.items() if k != lost} == {k: v for k, v in before.items() if k != lost}


def test_a_write_killed_half_way_leaves_no_chip_and_no_leftover(work: Path, console_season: Path) -> None:
    root = chips_dir(work)
    victim = sorted(p for p in root.rglob("*_truecolor.png"))[0]
    good = victim.read_bytes()
    # what a SIGKILL during a write leaves: the chip file missing and a partial temporary file
    victim.unlink()
    (root / ".tmp").mkdir()
    (root / ".tmp" / f"{victim.parent.name}-{victim.name}.999-1").write_bytes(good[:100])
    result = chips_for_run(demo_run_config(console_season, workers=1), work)
    assert result.written == 1 and victim.read_bytes() == good
    assert not (root / ".tmp").exists()
    assert {p.name for p in root.iterdir() if p.is_dir()} == _active_parcels(work)


def test_a_parcel_without_geometry_is_reported_and_the_others_go_on(work: Path, console_season: Path) -> None:
    shutil.rmtree(chips_dir(work))
    victim = sorted(_active_parcels(work))[0]
    engine = make_engine(db_url_for(work))
    with Session(engine) as s, s.begin():
        s.execute(update(Declaration).where(Declaration.id_parcel == victim).values(geometry_wkt=None))
    engine.dispose()
    result = chips_for_run(demo_run_config(console_season, workers=1), work)
    assert [pid for pid, _ in result.problems] == [victim]
    assert "geometry" in result.problems[0][1]
    assert read_chip_index(work, victim) is None
    others = _active_parcels(work) - {victim}
    assert all(read_chip_index(work, pid)["chips"] for pid in others)  # type: ignore[index]


def test_ndvi_colours_go_from_soil_to_vegetation() -> None:
    values = np.array([[-0.1, 0.3, 0.8, np.nan]], dtype=np.float32)
    rgba = np.asarray(Image.open(io.BytesIO(_ndvi_png(values))))
    soil, sparse, dense, missing = rgba[0]
    assert soil[0] > soil[1]  # brown: more red than green
    assert dense[1] > dense[0] and dense[1] > dense[2]  # green
    assert missing[3] == 0 and dense[3] == 255  # no data is transparent
    assert sparse[1] > soil[1]


class _CountingSource(LocalStacSource):
    """The real local STAC source, counting the catalogue listings it is asked for."""

    def __init__(self, catalog: Path) -> None:
        super().__init__(catalog)
        self.listings = 0

    def list_acquisitions(self, **kwargs: object) -> list:  # type: ignore[override]
        self.listings += 1
        return super().list_acquisitions(**kwargs)


def test_a_day_is_listed_once_and_each_parcel_keeps_the_tiles_over_it(console_season: Path) -> None:
    source = _CountingSource(console_season / "stac" / "catalog.json")
    acq = source.list_acquisitions()[0]
    west, south, east, north = acquisition_bbox(acq)
    x, y = (west + east) / 2, (south + north) / 2
    inside = (x, y, x + 0.001, y + 0.001)
    elsewhere = (east + 1.0, north + 1.0, east + 1.01, north + 1.01)  # a parcel on another tile
    listing = _Listing(source, (west, south, east + 1.01, north + 1.01))
    asked = source.listings
    # The parcel elsewhere asks first: the day's list must still serve the parcel inside the tile.
    assert listing.on(acq.date, elsewhere) == []
    assert acq in listing.on(acq.date, inside)
    assert source.listings == asked + 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real LocalCluster of 2 worker processes (what a national run's chips are cut on)."""
    from s3tr.nightly.cluster import dask_client

    with dask_client(None, workers=2, processes=True, memory_limit="2GB") as client:
        yield client


def test_chips_cut_on_a_dask_cluster_equal_the_threads_ones(
    work: Path, console_workdir: Path, console_season: Path, cluster: Any
) -> None:
    threads = _snapshot(chips_dir(console_workdir))
    shutil.rmtree(chips_dir(work))
    result = chips_for_run(demo_run_config(console_season, workers=1), work, client=cluster)
    assert not result.problems and result.written == sum(1 for k in threads if k.endswith(".png"))
    cut = _snapshot(chips_dir(work))
    # the same files, byte for byte (the workers render, this process writes), and no temporary leftover
    assert {k: v[1] for k, v in cut.items()} == {k: v[1] for k, v in threads.items()}
    # a rerun on the cluster writes nothing and touches nothing
    again = chips_for_run(demo_run_config(console_season, workers=1), work, client=cluster)
    assert (again.written, again.kept) == (0, result.written)
    assert _snapshot(chips_dir(work)) == cut


@pytest.mark.parametrize("on_cluster", [False, True], ids=["threads", "cluster"])
def test_an_unreadable_acquisition_costs_its_own_chips_only(
    work: Path, console_season: Path, tmp_path: Path, on_cluster: bool, request: pytest.FixtureRequest
) -> None:
    season = tmp_path / "demo"
    shutil.copytree(console_season, season)
    before = {pid: read_chip_index(work, pid) for pid in _active_parcels(work)}
    used: dict[str, set[str]] = {}
    for pid, index in before.items():
        for chip in index["chips"]:  # type: ignore[index]
            used.setdefault(chip["acquisition"], set()).add(pid)
    # the acquisition with the most parcels, truncated as by an interrupted download
    broken, victims = max(used.items(), key=lambda kv: len(kv[1]))
    (cog,) = (season / "stac").rglob(f"{broken}/B04.tif")
    cog.write_bytes(cog.read_bytes()[:2000])
    shutil.rmtree(chips_dir(work))
    client = request.getfixturevalue("cluster") if on_cluster else None
    result = chips_for_run(demo_run_config(season, workers=1), work, client=client)
    assert {pid for pid, _ in result.problems} == victims
    assert all("B04.tif" in reason for _, reason in result.problems)
    for pid, index in before.items():
        kept = [c for c in index["chips"] if c["acquisition"] != broken]  # type: ignore[index]
        # every other date of every parcel is still cut, identical
        assert read_chip_index(work, pid)["chips"] == kept  # type: ignore[index]


def test_latest_clear_dates_read_together_equal_parcel_by_parcel(
    console_workdir: Path, console_season: Path
) -> None:
    from s3tr.review.chips import _CLEAR_SCL, _latest_clear, _outline_window, _wgs84_geometry
    from s3tr.review.chips import _active_parcels as active_parcels

    engine = make_engine(db_url_for(console_workdir))
    parcels = active_parcels(engine, None)
    engine.dispose()
    source = LocalStacSource(console_season / "stac" / "catalog.json")
    got = _latest_clear(source, parcels, 60.0)
    rounds = set()
    for parcel in parcels:
        geom = _wgs84_geometry(parcel)
        expected: list[tuple[date, str]] = []
        newest_first = source.list_acquisitions(bbox=geom.bounds)[-8:][::-1]
        for k, acq in enumerate(newest_first):
            framed = _outline_window(acq, geom, 60.0)
            if framed is None:
                continue
            _, scl = source.read_with_scl(acq, ["B04"], grid=framed[0])
            if np.isin(scl, _CLEAR_SCL).mean() >= 0.6:
                expected = [(acq.date, "latest")]
                rounds.add(k)
                break
        assert got.get(parcel.id_parcel, []) == expected, parcel.id_parcel
    assert got and len(rounds) > 1  # clouds sent some parcels back to older acquisitions

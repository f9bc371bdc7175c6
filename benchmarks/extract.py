"""Benchmark of the parcel extraction on one synthetic tile; prints a table of figures.

Run: ``python benchmarks/extract.py [--small] [--size H --parcels N --dates T] [--skip-e2e | --e2e-only]
[--e2e-repeat R] [--exactextract-full]``.
Default: a full Sentinel-2 tile at 20 m (5490 x 5490 px), 100,000 parcels, 10 dates.

Measured, in one run on the same synthetic tile:

1. ``ParcelRaster.from_parcels`` — the scan-line index build (numba, parallel over parcels).
2. ``ParcelRaster.statistics`` against a single-thread ``np.sum`` over the same float32 array
   (the memory-bandwidth reference; goal >= 0.5 of its speed). Both are timed alternately,
   ``--repeat`` times, and the best of each is compared (the machine may be shared: the load
   average is printed).
3. An independent ``np.bincount`` per date: speed, and the means must agree.
4. exactextract (raster-sequential strategy) and rasterstats on a subset of parcels,
   extrapolated to all (``--exactextract-full`` runs exactextract on every parcel instead).
5. End to end, one tile-acquisition written as COGs (10 m B02 B03 B04 B08 and 20 m B05 B06 B07
   B8A B11 B12 as uint16 deflate 512 x 512 tiles, SCL uint8, described by a STAC item):
   (a) just reading the 11 files with rasterio, (b) s3tr's path through ``LocalStacSource`` —
   read every band and the SCL onto the 20 m grid (10 m bands averaged 2 x 2, scale and
   offset applied), SCL mask with cloud dilation, the nightly's indices, ``statistics_many`` — in a
   child process, so that its peak memory is its own (VmHWM). Goal: (b) within 1.5x of (a).
   Also (c): the nightly pipeline's own path, which reads only the bands of its indices (ndvi ndmi
   ndwi bsi ndti: B02 B03 B04 B8A B11 B12) and the SCL, against reading those seven files. The plain
   reads and the s3tr paths are timed alternately in the same child, repetition by repetition (after a
   warm-up repetition), so that they see the same load; printed: best vs best, the median of
   the per-repetition ratios, and the ratio of CPU times (all threads), which other processes
   on a shared machine disturb least.
6. The series store: appending one date of every parcel to a store that already holds them
   (``SeriesStore.append``, as the pipeline does per acquisition), against a bare ``to_zarr`` of the
   same arrays; and the parcel-id match inside it (:func:`s3tr.frames.isin`) against pandas'
   ``isin`` on the same string ids.
7. Peak memory (ru_maxrss) of the main process.

Run ``--exactextract-full`` for the full-size exactextract figure (about a minute at 10 dates).
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numba
import numpy as np
import shapely
from affine import Affine

from s3tr.extract import ParcelRaster
from s3tr.imagery.indices import bands_for
from s3tr.nightly.config import DEFAULT_INDICES

CRS = "EPSG:32631"
EPSG = 32631
ORIGIN = (300000.0, 5000040.0)
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
INDEX_NAMES = list(DEFAULT_INDICES)


def synthetic_parcels(height: int, width: int, n: int, transform: Affine, seed: int = 0) -> gpd.GeoDataFrame:
    """Jittered quadrilateral mesh (neighbours share edges) plus 1 % overlapping boxes, shuffled."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n * 0.99))
    x0, y0 = transform.c, transform.f + transform.e * height
    cw, ch = width * transform.a / side, height * -transform.e / side
    gx, gy = np.meshgrid(np.arange(side + 1) * cw, np.arange(side + 1) * ch)
    gx = x0 + gx + rng.uniform(-0.3, 0.3, gx.shape) * cw
    gy = y0 + gy + rng.uniform(-0.3, 0.3, gy.shape) * ch
    quads = [
        shapely.Polygon(
            [
                (gx[i, j], gy[i, j]),
                (gx[i, j + 1], gy[i, j + 1]),
                (gx[i + 1, j + 1], gy[i + 1, j + 1]),
                (gx[i + 1, j], gy[i + 1, j]),
            ]
        )
        for i in range(side)
        for j in range(side)
    ]
    extra = n - len(quads)
    cx = rng.uniform(x0, x0 + width * transform.a, extra)
    cy = rng.uniform(y0, y0 + height * -transform.e, extra)
    boxes = list(shapely.box(cx, cy, cx + cw * 0.8, cy + ch * 0.8))
    gdf = gpd.GeoDataFrame({"id": np.arange(n)}, geometry=quads + boxes, crs=CRS)
    return gdf.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _best_alternating(
    fns: dict[str, Any], repeat: int, clock: Any = time.perf_counter
) -> dict[str, list[float]]:
    """Times of each function on ``clock``, called alternately ``repeat`` times (after a warm-up)."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, f in fns.items():
            t = clock()
            f()
            times[name].append(clock() - t)
    return times


# ------------------------------------------------------------------------------ end to end
def _synthetic_band(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    """uint16 reflectance-like image: 640 m patches of constant level plus pixel noise."""
    block = max(1, n // 170)
    coarse = rng.integers(lo, hi, (n // block + 1, n // block + 1), dtype=np.uint16)
    img = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:n, :n]
    img = img + rng.integers(0, 60, (n, n), dtype=np.uint16)
    img[:, :3] = 0  # a thin nodata strip, as on the edge of a real swath
    return img


def _synthetic_scl(rng: np.random.Generator, n: int) -> np.ndarray:
    """uint8 SCL: vegetation / bare soil, about 12 % clouds (8, 9), 5 % shadows (3), a few water."""
    block = max(1, n // 170)
    m = n // block + 1
    u = rng.random((m, m))
    coarse = np.where(u < 0.06, 9, np.where(u < 0.12, 8, np.where(u < 0.17, 3, np.where(u < 0.2, 6, 4))))
    coarse[(coarse == 4) & (rng.random((m, m)) < 0.4)] = 5
    scl = np.repeat(np.repeat(coarse.astype(np.uint8), block, axis=0), block, axis=1)[:n, :n]
    scl[:, :3] = 0
    return np.ascontiguousarray(scl)


def write_acquisition(folder: Path, size20: int, seed: int = 3) -> tuple[Path, list[Path]]:
    """COGs of one synthetic acquisition and its STAC item (pystac); returns (item path, files)."""
    import pystac
    import rasterio

    rng = np.random.default_rng(seed)
    t10 = Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])
    t20 = Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1])
    profile = {"driver": "COG", "count": 1, "crs": CRS, "compress": "DEFLATE", "blocksize": 512}
    files: list[Path] = []
    assets: dict[str, pystac.Asset] = {}
    specs = [(b, 2 * size20, t10, 10) for b in BANDS_10M] + [(b, size20, t20, 20) for b in BANDS_20M]
    specs.append(("SCL", size20, t20, 20))
    for name, n, tr, res in specs:
        path = folder / f"{name}.tif"
        if name == "SCL":
            data, dtype, extra = _synthetic_scl(rng, n), "uint8", {}
        else:
            data = _synthetic_band(rng, n, 300, 4500)
            dtype, extra = "uint16", {"predictor": 2}
        with rasterio.open(
            path, "w", width=n, height=n, dtype=dtype, transform=tr, nodata=0, **profile, **extra
        ) as dst:
            dst.write(data, 1)
        del data
        files.append(path)
        fields: dict[str, Any] = {"proj:epsg": EPSG, "proj:shape": [n, n], "proj:transform": list(tr)[:6]}
        if name != "SCL":
            fields["raster:bands"] = [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "scale": 0.0001,
                    "offset": -0.1,
                    "spatial_resolution": res,
                }
            ]
        assets[name] = pystac.Asset(
            href=str(path), media_type=pystac.MediaType.COG, roles=["data"], extra_fields=fields
        )
    when = "2024-06-15T10:56:21Z"
    item = pystac.Item(
        id="S2B_31TCJ_20240615_0_L2A",
        geometry=None,
        bbox=None,
        datetime=pystac.utils.str_to_datetime(when),
        properties={"s2:mgrs_tile": "31TCJ", "proj:epsg": EPSG, "s2:processing_baseline": "05.10"},
    )
    for key, asset in assets.items():
        item.add_asset(key, asset)
    item_path = folder / f"{item.id}.json"
    item_path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return item_path, files


def _read_all(files: list[Path], workers: int) -> None:
    import rasterio

    def one(p: Path) -> None:
        with rasterio.open(p) as src:
            src.read(1)

    if workers <= 1:
        for p in files:
            one(p)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, files))


def _own_peak_gib() -> float:
    """Peak resident memory of this process (VmHWM): unlike ru_maxrss it restarts at exec, so a
    spawned child reports its own peak and not its parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(fn: Any) -> tuple[float, float]:
    """``(wall, CPU)`` seconds of ``fn()``; CPU is the whole process's (all its threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def _e2e_child(
    item_path: str, parcels_path: str, size20: int, repeat: int, files: list[str], queue: Any
) -> None:
    """Child process: the s3tr path on one acquisition (index built first, not timed in e2e),
    timed alternately with the plain rasterio reads of the same files, repetition by repetition,
    so that both see the same load on a shared machine."""
    from s3tr.imagery import LocalStacSource, compute_indices, valid_mask

    parcels = gpd.read_parquet(parcels_path)
    t20 = Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1])
    pr = ParcelRaster.from_parcels(parcels, transform=t20, shape=(size20, size20), crs=CRS, id_column="id")
    source = LocalStacSource(item_path)
    acq = source.list_acquisitions()[0]
    bands = [*BANDS_10M, *BANDS_20M]
    needed_bands = bands_for(INDEX_NAMES)
    all_files = [Path(f) for f in files]
    needed_files = [p for p in all_files if p.stem in (*needed_bands, "SCL")]
    workers = source.max_workers
    steps: dict[str, list[float]] = {"read": [], "mask": [], "indices": [], "statistics": [], "total": []}
    info: dict[str, Any] = {}

    def full_path() -> None:
        t0 = time.perf_counter()
        refl, scl = source.read_with_scl(acq, bands)
        t1 = time.perf_counter()
        mask = valid_mask(scl)
        t2 = time.perf_counter()
        idx = compute_indices(refl, INDEX_NAMES, mask=mask)
        t3 = time.perf_counter()
        ds = pr.statistics_many(idx)
        t4 = time.perf_counter()
        for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            steps[k].append(v)
        info["valid_share"] = float(mask.mean())
        info["observed"] = int((ds["count"].values > 0).sum())

    def needed_path() -> None:
        # The nightly pipeline's own path reads only the bands the indices need.
        refl, scl = source.read_with_scl(acq, needed_bands)
        idx = compute_indices(refl, INDEX_NAMES, mask=valid_mask(scl))
        pr.statistics_many(idx)

    fns = {
        "plain_seq": lambda: _read_all(all_files, 1),
        "plain_par": lambda: _read_all(all_files, workers),
        "s3tr": full_path,
        "needed_seq": lambda: _read_all(needed_files, 1),
        "needed_par": lambda: _read_all(needed_files, workers),
        "s3tr_needed": needed_path,
    }
    needed_path()  # warm-up: numba kernels loaded, files in the page cache
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            w, c = _timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
    for v in steps.values():
        del v[0]  # repetition 0 is a warm-up (as in end_to_end)
    queue.put(
        {"steps": steps, "wall": wall, "cpu": cpu, "workers": workers, "peak_gib": _own_peak_gib(), **info}
    )


def end_to_end(
    parcels: gpd.GeoDataFrame, size20: int, repeat: int, workdir: str | None
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="s3tr-e2e-", dir=workdir))
    try:
        t = time.perf_counter()
        item_path, files = write_acquisition(base, size20)
        size_mb = sum(p.stat().st_size for p in files) / 2**20
        rows.append(
            ("e2e: COGs written", f"{len(files)} files, {size_mb:.0f} MiB in {time.perf_counter() - t:.1f} s")
        )
        parcels_path = base / "parcels.parquet"
        parcels.to_parquet(parcels_path)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        args = (str(item_path), str(parcels_path), size20, repeat + 1, [str(f) for f in files], queue)
        proc = ctx.Process(target=_e2e_child, args=args)
        proc.start()
        res = queue.get()
        proc.join()
        wall, cpu, workers = res["wall"], res["cpu"], res["workers"]
        best = {k: min(v[1:]) for k, v in wall.items()}  # repetition 0 is a warm-up
        steps = {k: min(v) for k, v in res["steps"].items()}
        rows.append(
            ("e2e (a) rasterio read, 1 thread", f"{best['plain_seq']:.2f} s (11 files, best of {repeat})")
        )
        rows.append((f"e2e (a) rasterio read, {workers} threads", f"{best['plain_par']:.2f} s"))
        rows.append(
            (
                "e2e (b) s3tr read+mask+indices+stats",
                f"{best['s3tr']:.2f} s = read {steps['read']:.2f} + mask {steps['mask']:.2f} + indices "
                f"{steps['indices']:.2f} + statistics_many {steps['statistics']:.2f}",
            )
        )

        def ratios(path: str, seq: str, par: str) -> tuple[float, float, float]:
            """best vs best, median per repetition (vs that repetition's faster read), CPU ratio."""
            per_rep = [
                s / min(a, b) for s, a, b in zip(wall[path][1:], wall[seq][1:], wall[par][1:], strict=True)
            ]
            cpu_ratio = min(cpu[path][1:]) / min(cpu[seq][1:])
            return best[path] / min(best[seq], best[par]), statistics.median(per_rep), cpu_ratio

        r_best, r_med, r_cpu = ratios("s3tr", "plain_seq", "plain_par")
        rows.append(
            (
                "e2e ratio (b) / (a)",
                f"{r_best:.2f}x the fastest plain read, best vs best (goal <= 1.5); per repetition "
                f"median {r_med:.2f}x; CPU time {r_cpu:.2f}x the 1-thread read's",
            )
        )
        n_best, n_med, n_cpu = ratios("s3tr_needed", "needed_seq", "needed_par")
        t_needed = min(best["needed_seq"], best["needed_par"])
        rows.append(
            (
                "e2e pipeline path (index bands only)",
                f"{best['s3tr_needed']:.2f} s for {' '.join(bands_for(INDEX_NAMES))} + SCL vs "
                f"{t_needed:.2f} s to read those files -> {n_best:.2f}x (median {n_med:.2f}x, "
                f"CPU {n_cpu:.2f}x)",
            )
        )
        rows.append(
            (
                "e2e child peak memory (VmHWM)",
                f"{res['peak_gib']:.2f} GiB ({res['valid_share']:.0%} valid pixels, "
                f"{res['observed']:,} parcel observations)",
            )
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


# ------------------------------------------------------------------------------ main
def store_append(n_parcels: int, repeat: int) -> list[tuple[str, str]]:
    """Step 6: one-date appends to a series store against a bare ``to_zarr``; id matching."""
    import pandas as pd
    import xarray as xr

    from s3tr.extract.store import SeriesStore
    from s3tr.frames import isin

    ids = np.array([f"86{i:08d}" for i in range(n_parcels)], dtype=object)
    rng = np.random.default_rng(5)

    def one_date(day: int) -> xr.Dataset:
        v = rng.random((n_parcels, 1), dtype=np.float32)
        data = {k: (("parcel", "time"), v) for k in ("ndvi", "ndvi_std", "valid_fraction")}
        data["count"] = (("parcel", "time"), np.ones((n_parcels, 1), np.int32))
        times = [np.datetime64("2024-01-01", "ns") + np.timedelta64(day, "D")]
        return xr.Dataset(data, coords={"parcel": ids, "time": times})

    with tempfile.TemporaryDirectory() as tmp:
        store = SeriesStore(Path(tmp) / "store")
        store.append(one_date(0))
        days = itertools.count(1)

        def bare() -> None:
            one_date(0).to_zarr(Path(tmp) / f"bare-{next(days)}", mode="w", consolidated=False, zarr_format=3)

        times = _best_alternating({"store": lambda: store.append(one_date(next(days))), "bare": bare}, repeat)
    t_store, t_bare = min(times["store"]), min(times["bare"])
    as_str = pd.Index(ids, dtype="str")
    matched = _best_alternating(
        {"pandas": lambda: as_str.isin(as_str), "s3tr": lambda: isin(as_str, as_str)}, repeat
    )
    t_pd, t_ours = min(matched["pandas"]), min(matched["s3tr"])
    return [
        (
            "series store, append of one date",
            f"{t_store:.3f} s for {n_parcels:,} parcels; bare to_zarr {t_bare:.3f} s "
            f"-> {t_store / t_bare:.1f}x",
        ),
        (
            "parcel ids matched (frames.isin)",
            f"{t_ours:.4f} s; pandas isin {t_pd:.3f} s -> {t_pd / t_ours:.0f}x faster",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="1000 x 1000 px, 3,000 parcels, 4 dates")
    ap.add_argument("--size", type=int, default=5490)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--dates", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions (best is kept)")
    ap.add_argument("--subset", type=int, default=200, help="parcels given to exactextract / rasterstats")
    ap.add_argument("--exactextract-full", action="store_true", help="run exactextract on every parcel")
    ap.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end COG measurement")
    ap.add_argument("--e2e-repeat", type=int, default=3, help="timed repetitions of the end-to-end part")
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end COG measurement")
    ap.add_argument("--workdir", default=None, help="folder for the temporary COGs (default: system tmp)")
    args = ap.parse_args()
    if args.small:
        args.size, args.parcels, args.dates = 1000, 3000, 4
    h = w = args.size
    transform = Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1])
    rows: list[tuple[str, str]] = []
    parcels = synthetic_parcels(h, w, args.parcels, transform)
    if args.e2e_only:
        rows = end_to_end(parcels, h, args.e2e_repeat, args.workdir)
        print(
            f"tile {h} x {w} px, {len(parcels):,} parcels; cores {os.cpu_count()}, load average at end "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
        )
        for name, val in rows:
            print(f"  {name:<40} {val}")
        return

    # 1. index build (first call compiles or loads the cached numba code; the second is timed)
    ParcelRaster.from_parcels(parcels.iloc[:10], transform=transform, shape=(h, w), crs=CRS, id_column="id")
    t = time.perf_counter()
    pr = ParcelRaster.from_parcels(parcels, transform=transform, shape=(h, w), crs=CRS, id_column="id")
    t_index = time.perf_counter() - t
    start, length, parcel = pr.runs
    rows.append(
        (
            "index build (scan-line, numba)",
            f"{t_index:.2f} s: {len(start):,} runs, {int(pr.pixel_counts.sum()):,} pixel memberships, "
            f"mean run {length.mean():.1f} px",
        )
    )

    # 2. statistics against np.sum
    rng = np.random.default_rng(1)
    values = rng.random((args.dates, h, w), dtype=np.float32)
    values[rng.random(values.shape, dtype=np.float32) < 0.2] = np.nan

    def np_sum() -> None:
        for k in range(args.dates):
            np.sum(values[k])

    fns = {"s3tr": lambda: pr.statistics(values), "np.sum": np_sum}
    times = _best_alternating(fns, args.repeat)
    t_stats, t_sum = min(times["s3tr"]), min(times["np.sum"])
    ratios = [s / x for s, x in zip(times["np.sum"], times["s3tr"], strict=True)]
    rows.append((f"np.sum, 1 thread ({args.dates} planes)", f"{t_sum:.3f} s wall (best of {args.repeat})"))
    rows.append(
        (
            "ParcelRaster.statistics",
            f"{t_stats:.3f} s wall -> {t_sum / t_stats:.2f}x np.sum speed, best vs best (goal >= 0.5); "
            f"per repetition median {statistics.median(ratios):.2f}, max {max(ratios):.2f}",
        )
    )
    # CPU time is what other processes on a shared machine do not steal: the s3tr CPU time
    # spread over its threads gives the wall time on idle cores (perfect scaling assumed).
    cpu = _best_alternating(fns, args.repeat, clock=time.process_time)
    c_stats, c_sum = min(cpu["s3tr"]), min(cpu["np.sum"])
    n_thr = numba.get_num_threads()
    rows.append(
        (
            "same, in CPU time",
            f"s3tr {c_stats:.3f} s over {n_thr} threads, np.sum {c_sum:.3f} s -> "
            f"{c_sum / c_stats:.2f}x per thread, {c_sum * n_thr / c_stats:.2f}x projected on idle cores",
        )
    )
    ds = pr.statistics(values)

    # 3. independent bincount: one label per pixel, so compare on parcels without overlap only
    label = np.zeros(h * w, dtype=np.int64)
    owners = np.zeros(h * w, dtype=np.int64)
    for s, n_, p in zip(start, length, parcel, strict=True):
        label[s : s + n_] = p + 1
        owners[s : s + n_] += 1
    t = time.perf_counter()
    means = []
    for k in range(args.dates):
        v = values[k].ravel()
        ok = ~np.isnan(v)
        cnt = np.bincount(label[ok], minlength=len(pr) + 1)
        sm = np.bincount(label[ok], weights=v[ok], minlength=len(pr) + 1)
        means.append(sm[1:] / np.where(cnt[1:] > 0, cnt[1:], 1))
    t_bin = time.perf_counter() - t
    shared = np.zeros(len(pr), dtype=bool)
    for s, n_, p in zip(start, length, parcel, strict=True):
        if owners[s : s + n_].max() > 1:
            shared[p] = True
    keep = ~shared & (pr.pixel_counts > 0)
    diff = np.nanmax(np.abs(np.stack(means, axis=1)[keep] - ds["mean"].values[keep]))
    rows.append(("np.bincount (2 per date)", f"{t_bin:.2f} s -> s3tr {t_bin / t_stats:.1f}x faster"))
    rows.append(("means vs bincount", f"max |diff| {diff:.1e} over {keep.sum():,} parcels without overlap"))
    del label, owners

    # 4. per-polygon tools
    if args.exactextract_full:
        sub = parcels
    else:
        # A spatially compact subset (parcels inside a corner window holding about ``subset`` of
        # them): the raster-sequential strategy reads the raster under the features, so a subset
        # scattered over the tile would cost as much as all parcels and extrapolate wrongly.
        side = w * transform.a * np.sqrt(args.subset / len(parcels))
        b = parcels.bounds
        inside = (b.minx < transform.c + side) & (b.maxy > transform.f - side)
        sub = parcels[inside.to_numpy()]
    try:
        from exactextract import exact_extract
        from rasterio.io import MemoryFile

        with MemoryFile() as mem:
            with mem.open(
                driver="GTiff",
                height=h,
                width=w,
                count=args.dates,
                dtype="float32",
                crs=CRS,
                transform=transform,
                nodata=np.nan,
            ) as dst:
                dst.write(values)
            with mem.open() as src:
                t = time.perf_counter()
                exact_extract(
                    src, sub, ["mean", "stdev", "count"], strategy="raster-sequential", output="pandas"
                )
                t_run = time.perf_counter() - t
                t_ee = t_run * len(pr) / len(sub)
                how = (
                    "all parcels" if args.exactextract_full else f"{t_run:.1f} s on {len(sub)}, extrapolated"
                )
                rows.append(
                    ("exactextract raster-sequential", f"{t_ee:.1f} s ({how}) -> s3tr {t_ee / t_stats:.0f}x")
                )
        from rasterstats import zonal_stats

        sub_rs = sub.iloc[: max(1, args.subset // 10)]
        t = time.perf_counter()
        for b in range(args.dates):
            zonal_stats(sub_rs, values[b], affine=transform, nodata=np.nan, stats=["mean", "std", "count"])
        t_rs = (time.perf_counter() - t) * len(pr) / len(sub_rs)
        rows.append(
            ("rasterstats", f"{t_rs:.0f} s (extrapolated from {len(sub_rs)}) -> s3tr {t_rs / t_stats:.0f}x")
        )
    except ImportError as exc:
        rows.append(("exactextract / rasterstats", f"not installed ({exc.name})"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    values_gib = values.nbytes / 2**30

    # 5. end to end from COGs
    if not args.skip_e2e:
        rows += end_to_end(parcels, h, args.e2e_repeat, args.workdir)

    # 6. series store
    rows += store_append(len(pr), args.repeat)

    print(
        f"tile {h} x {w} px, {len(pr):,} parcels, {args.dates} dates; numba threads "
        f"{numba.get_num_threads()}, cores {os.cpu_count()}, load average at end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    for name, val in rows:
        print(f"  {name:<40} {val}")
    name = "peak memory, main process (ru_maxrss)"
    print(f"  {name:<40} {peak:.2f} GiB (values array {values_gib:.2f} GiB)")


if __name__ == "__main__":
    main()

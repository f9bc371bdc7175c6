"""Benchmark of the parcel statistics on one synthetic tile; prints a table of figures.

Run: ``PYTHONPATH=. python benchmarks/extract.py [--small | --size H --parcels N --dates T]``.
Default: a full Sentinel-2 tile at 20 m (5490 x 5490 px), 100,000 parcels, 10 dates.

Measured here: index build, ``ParcelRaster.statistics`` against a single-thread ``np.sum`` over
the same array (memory-bandwidth reference, goal >= 0.5 of its speed), an independent
``np.bincount`` (speed, and the means must agree), exactextract (raster-sequential strategy) and
rasterstats on a subset of parcels, extrapolated to all; peak memory (ru_maxrss).
Not measured yet: the end-to-end time of one tile-acquisition from COGs (read + mask + indices +
statistics) against the plain rasterio read; that needs the imagery stage and comes with it.
"""

from __future__ import annotations

import argparse
import resource
import time

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine

from s3tr.extract import ParcelRaster

CRS = "EPSG:32631"


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="1000 x 1000 px, 3,000 parcels, 4 dates")
    ap.add_argument("--size", type=int, default=5490)
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--dates", type=int, default=10)
    ap.add_argument("--subset", type=int, default=200, help="parcels given to exactextract / rasterstats")
    args = ap.parse_args()
    if args.small:
        args.size, args.parcels, args.dates = 1000, 3000, 4
    h = w = args.size
    transform = Affine(20, 0, 300000, 0, -20, 5000040)
    rows: list[tuple[str, str]] = []
    parcels = synthetic_parcels(h, w, args.parcels, transform)
    t = time.perf_counter()
    pr = ParcelRaster.from_parcels(parcels, transform=transform, shape=(h, w), crs=CRS, id_column="id")
    t_index = time.perf_counter() - t
    rows.append(("index build (rasterize + runs)", f"{t_index:.2f} s, {len(pr.runs[0]):,} runs"))
    rng = np.random.default_rng(1)
    values = rng.random((args.dates, h, w), dtype=np.float32)
    values[rng.random(values.shape, dtype=np.float32) < 0.2] = np.nan
    pr.statistics(values[:1])  # load the cached numba code
    t = time.perf_counter()
    ds = pr.statistics(values)
    t_stats = time.perf_counter() - t
    t = time.perf_counter()
    for k in range(args.dates):
        np.sum(values[k])
    t_sum = time.perf_counter() - t
    rows.append((f"np.sum, 1 thread ({args.dates} planes)", f"{t_sum:.3f} s"))
    rows.append(
        ("ParcelRaster.statistics", f"{t_stats:.3f} s  -> {t_sum / t_stats:.2f} x np.sum speed (goal >= 0.5)")
    )
    # Independent bincount: one label per pixel, so compare on parcels without overlap only.
    label = np.zeros(h * w, dtype=np.int64)
    owners = np.zeros(h * w, dtype=np.int64)
    start, length, parcel = pr.runs
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
    rows.append(("np.bincount (2 per date)", f"{t_bin:.2f} s  -> s3tr {t_bin / t_stats:.1f}x faster"))
    rows.append(("means vs bincount", f"max |diff| {diff:.1e} over {keep.sum():,} parcels without overlap"))
    del label, owners
    # Per-polygon tools on a subset, extrapolated.
    sub = parcels.iloc[: args.subset]
    try:
        import rasterio
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
                t_ee = (time.perf_counter() - t) * len(pr) / len(sub)
                rows.append(
                    (
                        "exactextract raster-sequential",
                        f"{t_ee:.1f} s (extrapolated) -> s3tr {t_ee / t_stats:.0f}x",
                    )
                )
                from rasterstats import zonal_stats

                sub_rs = sub.iloc[: max(1, args.subset // 10)]
                t = time.perf_counter()
                for b in range(1, args.dates + 1):
                    zonal_stats(
                        sub_rs, values[b - 1], affine=transform, nodata=np.nan, stats=["mean", "std", "count"]
                    )
                t_rs = (time.perf_counter() - t) * len(pr) / len(sub_rs)
                rows.append(("rasterstats", f"{t_rs:.0f} s (extrapolated) -> s3tr {t_rs / t_stats:.0f}x"))
        del rasterio
    except ImportError as exc:
        rows.append(("exactextract / rasterstats", f"not installed ({exc.name})"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows.append(("peak memory (ru_maxrss)", f"{peak:.2f} GiB (values array {values.nbytes / 2**30:.2f} GiB)"))
    n_threads = __import__("numba").get_num_threads()
    print(f"tile {h} x {w} px, {len(pr):,} parcels, {args.dates} dates, numba threads {n_threads}")
    for name, val in rows:
        print(f"  {name:<38} {val}")
    print("  not measured yet: end-to-end tile-acquisition from COGs vs plain rasterio read (imagery stage)")


if __name__ == "__main__":
    main()

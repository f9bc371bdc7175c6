"""Benchmark of the nightly extraction on Dask: a synthetic full tile, 1 and 10 acquisitions, 1 and 2 workers.

Run: ``python benchmarks/nightly.py [--size 5490] [--parcels 100000] [--acquisitions 1,10]
[--workers 1,2] [--markers-parcels 10000] [--keep DIR] [--peer-indices ndvi,ndmi,ndwi,bsi]``.

What is measured, on the code path of ``s3tr nightly`` (``s3tr.nightly.tasks.extract_item`` on a
``LocalCluster`` of worker *processes*, the run process appending each slot to the tile's
``SeriesStore``):

* ``index``: ``ParcelRaster.from_parcels`` of the tile's parcels (once per tile and parcel set;
  cached by the nightly run between nights);
* per tile-acquisition, from each task: ``read`` (COGs through ``LocalStacSource``: the six bands
  of the nightly's five indices and the SCL, 10 m bands averaged to 20 m), ``mask_indices`` (SCL
  mask with cloud dilation, the indices), ``reduce`` (``statistics_many``), and in the run process
  ``write`` (atomic slot append); ``wall`` = elapsed time of the whole batch / acquisitions;
* peak memory (VmHWM / ru_maxrss) of every worker process after its batch;
* markers + decisions for ``--markers-parcels`` parcels on the extracted series (the per-parcel
  cost, extrapolated linearly to the tile's parcels).

The acquisitions share one set of synthetic COGs (``benchmarks/extract.py`` writes them: about
0.6 GB for a full tile); each acquisition is its own STAC item with its own date. Reads of the
second and later acquisitions therefore come from the page cache, as they would on a worker
with local disk; reads from object storage add network time (see docs/scale.md).
The load average is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import CRS, ORIGIN, synthetic_parcels, write_acquisition

from s3tr.extract import ParcelRaster
from s3tr.extract.store import SeriesStore
from s3tr.imagery.local import LocalStacSource
from s3tr.nightly.cluster import dask_client
from s3tr.nightly.config import DEFAULT_INDICES
from s3tr.nightly.tasks import TaskSpec, extract_item, save_raster

INDICES = DEFAULT_INDICES
INVALID_SCL = (0, 1, 3, 8, 9, 10, 11)


def _worker_peak_gib() -> float:
    """Peak resident memory of this process (GiB): VmHWM, else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_catalog(folder: Path, item0: Path, n: int) -> Path:
    """``n`` STAC items (one per day from 2024-06-01) pointing at the same COGs; returns the folder."""
    base = json.loads(item0.read_text())
    cat = folder / "items"
    cat.mkdir(parents=True, exist_ok=True)
    t0 = datetime(2024, 6, 1, 10, 56, 21, tzinfo=UTC)
    for k in range(n):
        when = t0 + timedelta(days=k)
        item = json.loads(json.dumps(base))
        item["id"] = f"S2B_31TCJ_{when:%Y%m%d}_0_L2A"
        item["properties"]["datetime"] = when.isoformat().replace("+00:00", "Z")
        (cat / f"{item['id']}.json").write_text(json.dumps(item))
    return cat


def run_batch(
    acqs: list[Any],
    raster_path: Path,
    grid: Any,
    catalog: Path,
    store_path: Path,
    workers: int,
    indices: tuple[str, ...] = INDICES,
) -> dict[str, Any]:
    """Extract ``acqs`` on a fresh LocalCluster of ``workers`` processes; time every stage."""
    from distributed import as_completed

    shutil.rmtree(store_path, ignore_errors=True)
    store = SeriesStore(store_path)
    rows = []
    with dask_client(None, workers=workers, memory_limit="8GB", processes=True) as client:
        client.wait_for_workers(workers)
        # warm-up import of the task module on every worker (not timed: done once per worker per night)
        client.run(lambda: __import__("s3tr.nightly.tasks"))
        t0 = time.perf_counter()
        specs = [
            TaskSpec(n, a, str(catalog), str(raster_path), grid, indices, INVALID_SCL, 1)
            for n, a in enumerate(acqs, start=1)
        ]
        futures = [client.submit(extract_item, s, pure=False) for s in specs]
        for fut in as_completed(futures):
            out = fut.result()
            if out.dataset is None:
                raise RuntimeError(out.error)
            tw = time.perf_counter()
            store.append(out.dataset)
            rows.append({**out.timings, "write": time.perf_counter() - tw})
            fut.release()
        wall = time.perf_counter() - t0
        peaks = client.run(_worker_peak_gib)
    times = pd.DataFrame(rows)
    return {
        "indices": ",".join(indices),
        "workers": workers,
        "acquisitions": len(acqs),
        "per_acq_s": {k: round(float(v), 2) for k, v in times.mean().items()},
        "wall_s": round(wall, 1),
        "wall_per_acq_s": round(wall / len(acqs), 2),
        "worker_peak_gib": [round(v, 2) for v in peaks.values()],
        "store_times": len(store.times()),
    }


def markers_cost(store_path: Path, n_parcels: int, seed: int = 0) -> dict[str, Any]:
    """Markers and decisions on the first ``n_parcels`` parcels of the extracted series."""
    from s3tr.decide.decide import decide
    from s3tr.decide.rules import load_ruleset
    from s3tr.markers import compute_evidence

    table = SeriesStore(store_path).to_table(min_valid_fraction=0.5)
    ids = pd.unique(table["parcel_id"])[:n_parcels]
    table = table[table["parcel_id"].isin(set(ids))]
    rng = np.random.default_rng(seed)
    codes = rng.choice(["BTH", "MIS", "PPH", "PTR", "J6S", "TRN"], len(ids))
    groups = {"BTH": 1, "MIS": 2, "PPH": 18, "PTR": 19, "J6S": 11, "TRN": 4}
    decl = pd.DataFrame(
        {
            "id_parcel": ids,
            "campaign": 2025,
            "code_cultu": codes,
            "code_group": [groups[c] for c in codes],
            "surf_parc": 1.0,
            "pacage": "000000000",
            "department": "31",
            "n_pixels": 50,
            "monitorable": True,
        }
    )
    ruleset = load_ruleset(2025, None)
    t0 = time.perf_counter()
    ev = compute_evidence(table, decl, season=("2024-04-01", "2024-10-31"))
    t1 = time.perf_counter()
    dec = decide(decl, ev, ruleset)
    t2 = time.perf_counter()
    return {
        "parcels": len(ids),
        "dates": int(table["date"].nunique()),
        "markers_s": round(t1 - t0, 2),
        "decide_s": round(t2 - t1, 2),
        "decisions": len(dec),
        "per_100k_parcels_s": round((t2 - t0) * 100_000 / len(ids), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=5490, help="tile side in 20 m pixels")
    ap.add_argument("--parcels", type=int, default=100_000)
    ap.add_argument("--acquisitions", default="1,10")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--markers-parcels", type=int, default=10_000)
    ap.add_argument("--keep", type=Path, default=None, help="keep the synthetic data in this folder")
    ap.add_argument(
        "--peer-indices",
        default=None,
        help="also extract these indices (comma-separated) in each configuration, alternately with the "
        "nightly's, and print the cost ratio (e.g. ndvi,ndmi,ndwi,bsi: what ndti adds)",
    )
    args = ap.parse_args()
    peer = tuple(args.peer_indices.split(",")) if args.peer_indices else None
    n_acqs = [int(x) for x in args.acquisitions.split(",")]
    n_workers = [int(x) for x in args.workers.split(",")]
    print(f"load average: {os.getloadavg()}; cpus: {os.cpu_count()}")
    print(shutil.disk_usage(tempfile.gettempdir()))

    root = args.keep or Path(tempfile.mkdtemp(prefix="s3tr-bench-nightly-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"size": args.size, "parcels": args.parcels}
    try:
        cogs = root / "cogs"
        cogs.mkdir(exist_ok=True)
        t = time.perf_counter()
        item0, files = write_acquisition(cogs, args.size)
        results["cog_gb"] = round(sum(f.stat().st_size for f in files) / 1e9, 3)
        print(f"COGs of one acquisition: {results['cog_gb']} GB in {time.perf_counter() - t:.0f} s")
        catalog = make_catalog(root, item0, max(n_acqs))
        acqs = sorted(LocalStacSource(catalog).list_acquisitions(), key=lambda a: a.datetime)
        grid = acqs[0].grid

        t20 = Affine(20, 0, ORIGIN[0], 0, -20, ORIGIN[1])
        parcels = synthetic_parcels(args.size, args.size, args.parcels, t20)
        parcels["id_parcel"] = parcels["id"].astype(str)
        t = time.perf_counter()
        raster = ParcelRaster.from_parcels(
            parcels,
            transform=grid.transform,
            shape=grid.shape,
            crs=CRS,
            id_column="id_parcel",
            inward_buffer_m=10.0,
        )
        results["index_s"] = round(time.perf_counter() - t, 1)
        raster_path = save_raster(raster, root / "rasters" / "31TCJ.pkl")
        results["raster_mb"] = round(raster_path.stat().st_size / 1e6, 1)
        print(
            f"index of {args.parcels} parcels: {results['index_s']} s, raster file {results['raster_mb']} MB"
        )

        results["runs"] = []
        for w in n_workers:
            for n in n_acqs:
                r = run_batch(acqs[:n], raster_path, grid, catalog, root / "store.zarr", w)
                results["runs"].append(r)
                print(json.dumps(r))
                if peer:
                    q = run_batch(acqs[:n], raster_path, grid, catalog, root / "peer.zarr", w, peer)
                    results["runs"].append(q)
                    print(json.dumps(q))
                    ratio = {
                        k: round(r["per_acq_s"][k] / q["per_acq_s"][k], 2)
                        for k in ("read", "mask_indices", "reduce", "write")
                        if q["per_acq_s"].get(k)
                    }
                    ratio["wall"] = round(r["wall_s"] / q["wall_s"], 2)
                    print(f"nightly's indices / peer's ({','.join(peer)}): {json.dumps(ratio)}")
        if args.markers_parcels:
            results["markers"] = markers_cost(root / "store.zarr", args.markers_parcels)
            print(json.dumps(results["markers"]))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(
        "\n| indices | workers | acquisitions | read | mask+indices | reduce | write | wall / acq | "
        "worker peak GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["runs"]:
        s = r["per_acq_s"]
        print(
            f"| {r['indices']} | {r['workers']} | {r['acquisitions']} | {s.get('read')} | "
            f"{s.get('mask_indices')} | "
            f"{s.get('reduce')} | {s.get('write')} | {r['wall_per_acq_s']} | {max(r['worker_peak_gib'])} |"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()

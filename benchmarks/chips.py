"""Image chips of the review queue: threads of the run process against tasks on a Dask cluster.

Run: ``python benchmarks/chips.py [--workdir DIR] [--workers 2] [--repeat 2]``.

``--workdir`` is the working folder of a finished ``s3tr demo`` (``s3tr-work``, with its ``demo/``
season); without it a demo season is generated and run in a temporary folder first (about a
minute). Each repetition deletes ``chips/`` and cuts every chip of the active cases twice: with the
run process's thread pool (``workers`` threads, the default path of a run without a scheduler) and
on a ``LocalCluster`` of ``workers`` processes (the path of a run given a scheduler; started before
the clock, as a national cluster is already up). Prints the times, chips per second and the ratio;
the chips of both paths are compared byte for byte. The CPU time of the run process is the part a
larger cluster cannot take away (planning, listing, writing the files). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _demo(work: Path) -> Path:
    from s3tr.demo import generate_season
    from s3tr.demo.runner import demo_run_config
    from s3tr.nightly.pipeline import load_crop_model, run_pipeline

    season = work / "demo"
    generate_season(season, seed=0)
    run_pipeline(demo_run_config(season), workdir=work, crop_model=load_crop_model())
    return work


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="a finished demo's working folder (s3tr-work)")
    parser.add_argument("--workers", type=int, default=2, help="threads, and cluster worker processes")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from s3tr.demo.runner import demo_run_config
    from s3tr.imagery.local import LocalStacSource
    from s3tr.nightly.cluster import dask_client
    from s3tr.review.chips import chips_dir, write_case_chips

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or _demo(Path(tmp) / "work")
        config = demo_run_config(work / "demo")
        source = LocalStacSource(config.catalog)
        with dask_client(None, workers=args.workers, processes=True) as client:
            figures: dict[str, list[float]] = {"threads": [], "cluster": []}
            cpu: dict[str, list[float]] = {"threads": [], "cluster": []}
            cut: dict[str, dict[str, bytes]] = {}
            n = 0
            for _ in range(args.repeat):
                for path, kwargs in (("threads", {"workers": args.workers}), ("cluster", {"client": client})):
                    shutil.rmtree(chips_dir(work), ignore_errors=True)
                    t0, c0 = time.perf_counter(), time.process_time()
                    result = write_case_chips(work, source, **kwargs)
                    figures[path].append(time.perf_counter() - t0)
                    cpu[path].append(time.process_time() - c0)
                    n = result.written
                    cut[path] = _files(chips_dir(work))
    best = {k: min(v) for k, v in figures.items()}
    print(f"{n} chips, {result.parcels} parcels under review, {args.workers} workers, best of {args.repeat}")
    for path, seconds in best.items():
        run_cpu = min(cpu[path])
        print(
            f"  {path:8s} {seconds:6.2f} s  {n / seconds:7.0f} chips/s; CPU of the run process "
            f"{run_cpu:.2f} s ({1000 * run_cpu / n:.2f} ms per chip)"
        )
    print(f"  cluster / threads: {best['cluster'] / best['threads']:.2f}")
    print(f"  same files, byte for byte: {cut['threads'] == cut['cluster']}")


if __name__ == "__main__":
    main()

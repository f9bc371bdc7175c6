"""The markers stage of a run as Dask tasks: evidence per chunk of parcels of one tile.

The markers cost about 4 ms per parcel (the mowing detector and the crop classifier), so a
national night of 9.5 million parcels is about 10 CPU-hours: they run on the cluster, like the
extraction. A task reads its tile's store (a few seconds per full tile, small next to the
markers of 20,000 parcels), keeps its parcels and returns their evidence (and, when asked,
their series); the run process only gathers the results and decides, about 0.1 ms per parcel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from s3tr.extract.store import SeriesStore
from s3tr.frames import isin
from s3tr.markers import compute_evidence

__all__ = ["chunk_parcels", "evidence_for_chunk", "gather_evidence"]

#: Smallest chunk worth a task: a task reads its tile's whole store and a fresh worker loads the
#: markers' code, a few seconds that 5,000 parcels (about 20 s of markers) repay.
MIN_CHUNK = 5_000


def chunk_parcels(
    ids: list[str], *, workers: int, max_chunk: int, min_chunk: int = MIN_CHUNK
) -> list[list[str]]:
    """Split one tile's parcels into chunks: two per worker, of ``min_chunk`` to ``max_chunk`` parcels.

    Parameters
    ----------
    ids
        The tile's parcels to decide, in a stable order.
    workers
        Workers of the cluster (two chunks each keep them busy while the last ones finish).
    max_chunk
        Largest chunk, which bounds a task's memory and the work lost when a worker dies.
    min_chunk
        Smallest chunk worth a task (the last one may be smaller).
    """
    if not ids:
        return []
    size = max(1, min(max_chunk, max(min_chunk, math.ceil(len(ids) / (2 * workers)))))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def evidence_for_chunk(
    store_path: str | None,
    ids: list[str],
    declarations: pd.DataFrame,
    crop_model: object | None,
    season: tuple[str, str],
    min_valid_fraction: float,
    keep_series: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evidence (and series, if ``keep_series``) of the parcels ``ids`` of one tile store.

    ``store_path`` None: parcels outside every tile, decided on their declaration alone.

    Returns
    -------
    tuple of pandas.DataFrame
        :func:`s3tr.markers.compute_evidence` of the chunk's declarations, and the long series
        table of its parcels (empty unless ``keep_series``).
    """
    wanted = set(ids)
    store = SeriesStore(Path(store_path)) if store_path is not None else None
    table = store.to_table(min_valid_fraction=min_valid_fraction) if store and store.exists() else None
    if table is None:
        series = pd.DataFrame(columns=["parcel_id", "date", "valid"])
    else:
        series = table[isin(table["parcel_id"].astype(str), wanted)].reset_index(drop=True)
    decl = declarations[isin(declarations["id_parcel"].astype(str), wanted)]
    with warnings.catch_warnings():
        # scikit-learn runs one job inside a Dask worker process and says so for every chunk: that
        # is the intent (one thread per worker), not news.
        warnings.filterwarnings("ignore", message="Inside a Dask worker", category=UserWarning)
        evidence = compute_evidence(series, decl, crop_model=crop_model, season=season)
    return evidence, (series if keep_series else series.iloc[:0])


def gather_evidence(
    client: Callable[[int], Any],
    work: list[tuple[str | None, list[str]]],
    declarations: pd.DataFrame,
    crop_model: object | None,
    *,
    season: tuple[str, str],
    min_valid_fraction: float,
    keep_series: bool,
    workers: int,
    max_chunk: int,
    min_chunk: int = MIN_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    release: Callable[[], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run :func:`evidence_for_chunk` over every ``(store path, parcel ids)`` on the cluster.

    ``client(n_tasks)`` gives the Dask client (started when first asked). A single chunk runs in
    the calling process instead: a worker would only add its start-up. ``release()``, when given,
    is called first in that case, to stop a cluster left from an earlier stage (measured on the
    demo: its idle workers made the run process's markers 7.1 s -> 11.7 s on 2 cores).
    ``declarations`` holds the parcels to decide; the evidence comes back in its order. The crop
    model is sent to the workers once. A task that fails twice (a worker lost twice, a corrupt
    store) fails the stage: the run reports it, and the next run decides these parcels again
    since their state was not saved.

    Returns
    -------
    tuple of pandas.DataFrame
        The evidence of every parcel of ``work`` and, if ``keep_series``, their series.
    """
    chunks = [
        (store_path, chunk)
        for store_path, ids in work
        for chunk in chunk_parcels(ids, workers=workers, max_chunk=max_chunk, min_chunk=min_chunk)
    ]

    # Row positions by parcel id, built once: a scan of all the declarations per chunk would cost
    # minutes for a national night's hundreds of chunks.
    rows = pd.Series(np.arange(len(declarations)), index=declarations["id_parcel"].astype(str).to_numpy())

    def args(store_path: str | None, chunk: list[str]) -> tuple[Any, ...]:
        return store_path, chunk, declarations.iloc[np.sort(rows.loc[chunk].to_numpy())]

    results: list[tuple[pd.DataFrame, pd.DataFrame]] = []
    if len(chunks) == 1:
        if release is not None:
            release()
        results.append(
            evidence_for_chunk(*args(*chunks[0]), crop_model, season, min_valid_fraction, keep_series)
        )
        if progress is not None:
            progress(1, 1)
    elif chunks:
        from distributed import as_completed

        dask = client(len(chunks))
        model = dask.scatter(crop_model, broadcast=True) if crop_model is not None else None
        futures = [
            dask.submit(
                evidence_for_chunk,
                *args(store_path, chunk),
                model,
                season,
                min_valid_fraction,
                keep_series,
                pure=False,
                retries=1,
            )
            for store_path, chunk in chunks
        ]
        for done, future in enumerate(as_completed(futures), start=1):
            results.append(future.result())
            if progress is not None:
                progress(done, len(futures))
    if not results:
        return pd.DataFrame(), pd.DataFrame(columns=["parcel_id", "date", "valid"])
    # as_completed order is arbitrary: back to the declarations' order, whatever the timing
    order = pd.Index(declarations["id_parcel"].astype(str)).drop_duplicates()
    ev = pd.concat([r[0] for r in results], ignore_index=True).set_index("parcel_id", drop=False)
    ev = ev.reindex(order[isin(order, ev.index)]).reset_index(drop=True)
    se = pd.concat([r[1] for r in results], ignore_index=True)
    if not se.empty:
        se = se.sort_values(["parcel_id", "date"], kind="stable").reset_index(drop=True)
    return ev, se

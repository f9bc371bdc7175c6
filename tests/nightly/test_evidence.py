"""The markers stage on the cluster: chunks of parcels per tile, gathered in declaration order."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from s3tr.markers import compute_evidence
from s3tr.nightly.cluster import dask_client
from s3tr.nightly.config import load_run_config
from s3tr.nightly.evidence import chunk_parcels, gather_evidence
from s3tr.nightly.pipeline import load_crop_model, load_series, run_pipeline
from tests.nightly.conftest import write_config


def test_chunks_cover_every_parcel_once_within_the_bounds() -> None:
    ids = [str(i) for i in range(2_345)]
    for workers, lo, hi in ((1, 500, 20_000), (4, 100, 250), (8, 1, 7)):
        chunks = chunk_parcels(ids, workers=workers, max_chunk=hi, min_chunk=lo)
        assert [p for c in chunks for p in c] == ids
        assert all(len(c) <= hi for c in chunks)
        assert all(len(c) >= min(lo, len(ids)) for c in chunks[:-1])
        assert len(chunks) >= min(2 * workers, len(ids) // hi)
    assert chunk_parcels([], workers=2, max_chunk=10) == []


@pytest.mark.slow
def test_evidence_from_worker_processes_equals_the_in_process_markers(
    small_season: Path, tmp_path: Path
) -> None:
    config = load_run_config(write_config(small_season, tmp_path / "nightly.yaml"))
    work = tmp_path / "work"
    run_pipeline(config, workdir=work)  # builds the tile store
    decl = gpd.read_file(small_season / "parcels.gpkg").drop(columns="geometry")
    series = load_series(work)
    model = load_crop_model()
    season = ("2025-04-01", "2025-10-31")
    want = compute_evidence(series, decl, crop_model=model, season=season)

    stores = sorted((work / "series").glob("*.zarr"))
    ids = decl["id_parcel"].astype(str).tolist()
    # a parcel no tile holds is decided on its declaration alone
    work_items = [(str(stores[0]), ids[:-1]), (None, ids[-1:])]
    with dask_client(None, workers=2, processes=True, memory_limit="2GB") as client:
        got, got_series = gather_evidence(
            lambda n_tasks: client,
            work_items,
            decl,
            model,
            season=season,
            min_valid_fraction=0.5,
            keep_series=True,
            workers=2,
            max_chunk=7,
            min_chunk=1,
        )
    assert len(want) == len(decl) == len(got)
    absent = got["parcel_id"] == ids[-1]
    assert (
        got.loc[absent, "n_valid"].item() == 0
        and want.loc[want["parcel_id"] == ids[-1], "n_valid"].item() > 0
    )
    pd.testing.assert_frame_equal(
        got[~absent].reset_index(drop=True), want[want["parcel_id"] != ids[-1]].reset_index(drop=True)
    )
    assert set(got_series["parcel_id"]) == set(ids[:-1])
    assert len(got_series) == (series["parcel_id"] != ids[-1]).sum()

    # one chunk (the default minimum size is far above 40 parcels): decided here, no cluster asked for
    def no_cluster(n_tasks: int) -> None:
        raise AssertionError(f"a cluster was asked for {n_tasks} task(s)")

    local, _ = gather_evidence(
        no_cluster,
        [(str(stores[0]), ids)],
        decl,
        model,
        season=season,
        min_valid_fraction=0.5,
        keep_series=False,
        workers=2,
        max_chunk=20_000,
    )
    pd.testing.assert_frame_equal(local, want)

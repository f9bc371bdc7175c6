"""A season's store begun before an index was added keeps its own indices instead of failing every append."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from s3tr.extract import SeriesStore
from s3tr.nightly.config import DEFAULT_INDICES
from s3tr.nightly.pipeline import _store_indices
from tests.extract.test_store import NAMES, acquisition


def test_an_older_store_keeps_its_indices(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rlog = logging.LoggerAdapter(logging.getLogger("s3tr.test"), {})
    new = SeriesStore(tmp_path / "new.zarr")
    assert _store_indices(new, DEFAULT_INDICES, rlog) == DEFAULT_INDICES  # no store yet: the configured
    old = SeriesStore(tmp_path / "old.zarr")
    old.append(acquisition(["a"], "2025-05-01", 1))  # ndvi, ndmi, ndwi, bsi: before ndti was added
    assert "ndti" in DEFAULT_INDICES and "ndti" not in NAMES
    with caplog.at_level(logging.WARNING):
        kept = _store_indices(old, DEFAULT_INDICES, rlog)
    assert set(kept) == set(NAMES)
    assert "old.zarr" in caplog.text and "ndti" in caplog.text
    # What it extracts can be appended: the season goes on.
    old.append(acquisition(["a"], "2025-05-06", 2))
    assert len(old.times()) == 2
    assert _store_indices(old, tuple(sorted(NAMES)), rlog) == tuple(sorted(NAMES))  # same set: no warning

"""Property: reading any window of the acquisition grid gives the same pixels as slicing the full read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3tr.imagery import LocalStacSource
from tests.imagery.conftest import localise_item


@pytest.fixture(scope="module")
def full_read(decimated_item_dict, decimated_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    import json

    path = tmp_path_factory.mktemp("windows") / "item.json"
    path.write_text(json.dumps(localise_item(decimated_item_dict, decimated_dir)))
    source = LocalStacSource(path, max_workers=1)
    (acq,) = source.list_acquisitions()
    bands = ["B04", "B8A", "B01"]  # 10 m (averaged), 20 m (as is), 60 m (repeated)
    return source, acq, source.read(acq, bands).values, source.read_scl(acq), bands


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    row=st.integers(-20, 560),
    col=st.integers(-20, 560),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
)
def test_any_window_equals_the_slice(full_read, row: int, col: int, height: int, width: int) -> None:
    source, acq, full, scl_full, bands = full_read
    window = acq.grid.window(row, col, height, width)
    got = source.read(acq, bands, grid=window).values
    scl = source.read_scl(acq, grid=window)
    h, w = acq.grid.shape
    expected = np.full((len(bands), height, width), np.nan, dtype=np.float32)
    expected_scl = np.zeros((height, width), dtype=np.uint8)
    r0, r1 = max(row, 0), min(row + height, h)
    c0, c1 = max(col, 0), min(col + width, w)
    if r1 > r0 and c1 > c0:
        expected[:, r0 - row : r1 - row, c0 - col : c1 - col] = full[:, r0:r1, c0:c1]
        expected_scl[r0 - row : r1 - row, c0 - col : c1 - col] = scl_full[r0:r1, c0:c1]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(scl, expected_scl)

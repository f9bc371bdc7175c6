"""``s3tr.membership.isin`` gives pandas' answer, whatever the containers."""

import numpy as np
import pandas as pd
import pytest

from s3tr.membership import isin


def _ids(rng: np.random.Generator, n: int) -> list:
    pool = [f"86{i:06d}" for i in range(n)]
    out = list(rng.choice(pool, n))
    for i in rng.choice(n, n // 20, replace=False):
        out[i] = None if i % 2 else np.nan
    return out


@pytest.mark.parametrize("wanted_as", [set, list, np.array, pd.Series, pd.Index, iter])
def test_isin_equals_pandas_on_string_ids_with_missing_values(wanted_as):
    rng = np.random.default_rng(3)
    values = pd.Series(_ids(rng, 2000), dtype="str")
    raw = _ids(rng, 700)
    wanted = wanted_as(raw) if wanted_as is not np.array else np.array(raw, dtype=object)
    expected = values.isin(list(raw)).to_numpy()
    got = isin(values, wanted)
    assert got.dtype == bool and got.shape == (len(values),)
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.sum() < len(values)


def test_isin_compares_values_as_they_are():
    np.testing.assert_array_equal(isin(pd.Index(["1", "2"]), [1, "2"]), [False, True])
    np.testing.assert_array_equal(isin(np.array([1.0, 2.0]), {2}), [False, True])
    assert isin([], ["a"]).shape == (0,)
    assert not isin(["a"], []).any()

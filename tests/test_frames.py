"""``s3tr.frames.isin`` gives pandas' answer, whatever the containers."""

import numpy as np
import pandas as pd
import pytest

from s3tr.frames import isin, records


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


def test_records_equal_to_dict_records():
    frame = pd.DataFrame(
        {
            "id_parcel": pd.Series(["86001", None, "86003"], dtype="str"),
            "revision": [1.0, np.nan, 3.0],
            "n": np.array([1, 2, 3], dtype=np.int64),
            "reasons": [["a"], [], ["b", "c"]],
            "evidence": [{"x": 1}, {}, {"y": [2]}],
            "at": pd.to_datetime(["2025-05-01", "2025-06-01", None]),
            7: [True, False, True],
        }
    )
    got, expected = records(frame), frame.to_dict("records")
    assert len(got) == len(expected) == 3
    for g, e in zip(got, expected, strict=True):
        assert list(g) == list(e)
        for key, value in e.items():
            assert type(g[key]) is type(value), key
            missing = not isinstance(value, list | dict) and pd.isna(value)
            assert pd.isna(g[key]) if missing else g[key] == value, key
    assert records(pd.DataFrame(index=range(2))) == [{}, {}]

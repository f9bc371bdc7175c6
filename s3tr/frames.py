"""Fast ways around two slow paths of pandas on the large string columns of a national night.

pandas 3 keeps strings in Arrow arrays, and two everyday calls are slow on them:

- ``Series.isin``/``Index.isin`` turn every *wanted* value into an Arrow scalar in Python, about 5 µs each:
  0.6 s to match 100,000 ids, once per acquisition appended to a tile's series store. Hashing the same ids
  as Python objects gives the same answer 10-50 times faster (:func:`isin`; ``benchmarks/extract.py``
  prints the ratio).
- ``DataFrame.to_dict("records")`` iterates Arrow arrays element by element: 0.45 s for 70,000 decisions,
  against 0.08 s for one ``tolist()`` per column (:func:`records`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["isin", "records"]


def isin(values: Iterable, wanted: Iterable) -> np.ndarray:
    """Boolean mask of the ``values`` that are in ``wanted``, as ``pandas.Series.isin`` would give.

    Parameters
    ----------
    values
        Ids to test (a Series, Index, array or list), in order.
    wanted
        The ids to look for (a set, list, array, Series or Index).

    Returns
    -------
    numpy.ndarray
        ``bool`` array as long as ``values``. Values are compared as they are (``"7"`` does not match ``7``);
        a missing value matches a missing value.
    """
    if isinstance(wanted, set | frozenset | dict) or not hasattr(wanted, "__len__"):
        wanted = list(wanted)
    left = np.asarray(values, dtype=object)
    right = np.asarray(wanted, dtype=object)
    mask = pd.Index(left, dtype=object).isin(right)
    # Object hashing tells None from NaN; pandas' own ``isin`` treats every missing value alike.
    if pd.isna(right).any():
        mask |= pd.isna(left)
    return mask


def records(frame: pd.DataFrame) -> list[dict]:
    """The rows of ``frame`` as dicts of plain Python values, as ``frame.to_dict("records")`` gives them."""
    if frame.shape[1] == 0:
        return [{} for _ in range(len(frame))]
    columns = list(frame.columns)
    values = [frame.iloc[:, i].tolist() for i in range(frame.shape[1])]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]

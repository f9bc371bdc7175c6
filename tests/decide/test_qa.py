"""QA sample: caps per control and per holding, reproducible with a seed, independent of row order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from s3tr.decide.qa import qa_sample


def _decisions(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id_parcel": [f"p{i}" for i in range(n)],
            "control": rng.choice(["min_activity", "crop_group", "fallow"], n, p=[0.5, 0.45, 0.05]),
            # a few big farms hold most parcels
            "pacage": [f"086{k:06d}" for k in rng.zipf(1.3, n) % 5000],
            "flag": rng.choice(["green", "orange", "red"], n),
        }
    )


def test_caps_hold() -> None:
    dec = _decisions()
    sample = qa_sample(dec, seed=3)
    counts = sample.groupby("control").size()
    assert counts["min_activity"] == 300 and counts["crop_group"] == 300
    assert sample.groupby(["control", "pacage"]).size().max() <= 3
    assert not sample.duplicated(["id_parcel", "control"]).any()
    # fallow is small: every holding contributes up to 3 of its parcels
    fallow = dec[dec["control"] == "fallow"]
    assert counts["fallow"] == int(fallow.groupby("pacage").size().clip(upper=3).sum())


def test_reproducible_and_order_independent() -> None:
    dec = _decisions()
    a = qa_sample(dec, seed=11)
    b = qa_sample(dec.sample(frac=1.0, random_state=5), seed=11)
    pd.testing.assert_frame_equal(a, b)
    c = qa_sample(dec, seed=12)
    assert set(a["id_parcel"]) != set(c["id_parcel"])


def test_missing_pacage_is_its_own_holding() -> None:
    dec = pd.DataFrame({"id_parcel": [f"p{i}" for i in range(10)], "control": "crop_group", "pacage": None})
    assert len(qa_sample(dec, per_holding=1)) == 10

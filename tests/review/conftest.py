"""Factories of the review tests (parcels, evidence, decisions); the database fixtures are in
``tests/conftest.py`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest


def make_parcels(n: int, *, seed: int = 0):  # type: ignore[no-untyped-def]
    """``n`` declared parcels, a realistic mix of grassland, arable and fallow, 2025, Vienne."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    codes = np.array(["PPH", "PTR", "BTH", "MIS", "J6S"])[rng.integers(0, 5, n)]
    groups = pd.Series(codes).map({"PPH": 18, "PTR": 19, "BTH": 1, "MIS": 2, "J6S": 11})
    return pd.DataFrame(
        {
            "id_parcel": [f"086-{i:06d}" for i in range(n)],
            "code_cultu": codes,
            "code_group": groups.to_numpy(),
            "surf_parc": rng.uniform(0.3, 20, n).round(2),
            "pacage": [f"086{rng.integers(0, 100):06d}" for _ in range(n)],
            "campaign": 2025,
            "department": "86",
            "n_pixels": 50,
        }
    )


def make_evidence(parcels, *, seed: int = 0):  # type: ignore[no-untyped-def]
    """Marker evidence for the parcels: about a third each green, orange and red."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 1_000_003)  # independent of the parcels' draw
    n = len(parcels)
    kind = rng.integers(0, 3, n)  # 0 clear and active, 1 thin, 2 clear and inactive
    groups = parcels["code_group"].astype(str).to_numpy()
    return pd.DataFrame(
        {
            "parcel_id": parcels["id_parcel"].to_numpy(),
            "n_valid": np.where(kind == 1, 3, 25),
            "max_gap_days": 12,
            "mowing_count": (kind == 0).astype(int),
            "mowing_dates": np.where(kind == 0, "2025-06-10", ""),
            "mowing_confidence": np.where(kind == 0, 0.9, np.nan),
            "activity": kind == 0,
            "activity_confidence": 0.9,
            "activity_status": "ok",
            "bare_soil_count": 0,
            "bare_soil_dates": "",
            "bare_soil_confidence": np.nan,
            "crop_predicted": np.where(kind == 2, "3", groups),
            "crop_probability": 0.9,
            "crop_second": "4",
            "crop_second_probability": 0.05,
            "homogeneity": 0.03,  # mean within-parcel NDVI std: a uniform parcel
            "marker_version": "markers-test",
            "model_version": "crop-test",
        }
    )


def make_decisions(n: int, *, seed: int = 0):  # type: ignore[no-untyped-def]
    from s3tr.decide import decide, load_ruleset

    parcels = make_parcels(n, seed=seed)
    evidence = make_evidence(parcels, seed=seed)
    return (
        parcels,
        evidence,
        decide(parcels, evidence, load_ruleset(2025), model_classes=[1, 2, 3, 4, 11, 18, 19]),
    )


@pytest.fixture(scope="session")
def factories():  # type: ignore[no-untyped-def]
    """The data factories above (test modules cannot import conftest under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(parcels=make_parcels, evidence=make_evidence, decisions=make_decisions)

"""Quality-assessment sample of decisions, in the spirit of the EU AMS quality assessment.

Each control stands in for one of the regulation's intervention groups: up to ``per_control``
decisions are drawn at random for each, with at most ``per_holding`` parcels of the same holding
(PACAGE) per control, so that a few large farms cannot fill the sample. The draw depends only on
the decisions and the seed (never on row order), so a seed reproduces it exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["qa_sample"]


def qa_sample(
    decisions: pd.DataFrame, *, seed: int = 0, per_control: int = 300, per_holding: int = 3
) -> pd.DataFrame:
    """Draw the QA sample.

    Parameters
    ----------
    decisions
        One row per (parcel, control) with at least ``id_parcel, control``; ``pacage`` groups
        parcels into holdings (a missing PACAGE counts as a holding of its own).
    seed
        Random seed; the same decisions and seed give the same sample.
    per_control, per_holding
        Caps per control, and per holding within a control.

    Returns
    -------
    pandas.DataFrame
        The sampled rows (all input columns) plus ``qa_rank`` (draw order within the control),
        sorted by control then rank.
    """
    if per_control < 1 or per_holding < 1:
        raise ValueError("per_control and per_holding must be >= 1")
    df = decisions.sort_values(["control", "id_parcel"], kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    df["_key"] = rng.random(len(df))
    holding = df["pacage"] if "pacage" in df.columns else pd.Series(pd.NA, index=df.index)
    df["_holding"] = holding.astype("string").fillna("parcel:" + df["id_parcel"].astype(str))
    df = df.sort_values(["control", "_key"], kind="stable")
    df = df[df.groupby(["control", "_holding"]).cumcount() < per_holding]
    df["qa_rank"] = df.groupby("control").cumcount() + 1
    df = df[df["qa_rank"] <= per_control]
    return df.drop(columns=["_key", "_holding"]).reset_index(drop=True)

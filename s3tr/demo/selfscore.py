"""Score a demo run against the season's hidden ground truth.

Only the demo command calls this, after the pipeline has finished: the pipeline itself never
reads ``truth/``. The score is honest by construction: flags are compared with what a perfect
system would say, and orange is counted as "not decided" rather than as right or wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["score_run"]


def _control_scores(decisions: pd.DataFrame, expected: pd.DataFrame) -> dict[str, dict[str, Any]]:
    merged = decisions[["id_parcel", "control", "flag"]].merge(
        expected.astype({"id_parcel": str}), on=["id_parcel", "control"], how="inner"
    )
    out: dict[str, dict[str, Any]] = {}
    for control, g in merged.groupby("control"):
        decided = g[g["flag"] != "orange"]
        right = int((decided["flag"] == decided["expected"]).sum())
        out[str(control)] = {
            "parcels": len(g),
            "right": right,
            # A wrong red costs a farmer money; a missed red costs the EU budget.
            "wrong_red": int(((g["flag"] == "red") & (g["expected"] == "green")).sum()),
            "missed_red": int(((g["flag"] == "green") & (g["expected"] == "red")).sum()),
            "orange": int((g["flag"] == "orange").sum()),
            "decided_accuracy": right / len(decided) if len(decided) else None,
        }
    return out


def score_run(decisions: pd.DataFrame, evidence: pd.DataFrame, series: pd.DataFrame, truth_dir: Path) -> dict:
    """Compare a run's flags and markers with the demo's ground truth.

    Parameters
    ----------
    decisions
        The run's decisions (``id_parcel, control, flag, ...``).
    evidence
        The markers' evidence per parcel (``parcel_id, mowing_dates, crop_predicted, ...``).
    series
        The long time-series table the markers read (to know which parcels were observed).
    truth_dir
        The demo's ``truth/`` folder.

    Returns
    -------
    dict
        ``controls`` (per control: parcels, right, wrong_red, missed_red, orange, decided_accuracy)
        and ``markers`` (mowing event F1, crop-group accuracy), all plain numbers.
    """
    from s3tr.markers.evaluate import evaluate_mowing
    from s3tr.markers.mowing import detect_mowing

    expected = pd.read_csv(truth_dir / "expected_controls.csv", dtype={"id_parcel": str})
    truth_parcels = pd.read_csv(truth_dir / "parcels.csv", dtype={"id_parcel": str})
    events = pd.read_csv(truth_dir / "events.csv", dtype={"id_parcel": str})
    score: dict[str, Any] = {"controls": _control_scores(decisions, expected), "markers": {}}

    grass = truth_parcels.loc[truth_parcels["true_group"].isin([18, 19]), "id_parcel"]
    observed = set(series["parcel_id"]) & set(grass)
    detected = detect_mowing(series[series["parcel_id"].isin(observed)])
    mowing_truth = events.loc[(events["event"] == "mowing") & events["id_parcel"].isin(observed)]
    mowing_truth = mowing_truth.rename(columns={"id_parcel": "parcel_id"})[["parcel_id", "date"]]
    m = evaluate_mowing(detected, mowing_truth, sorted(observed), tolerance_days=10)
    score["markers"]["mowing (grassland parcels)"] = (
        f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, F1 {m['f1']:.3f}, "
        f"season balanced accuracy {m['season_balanced_accuracy']:.3f}"
    )
    if "crop_predicted" in evidence and evidence["crop_predicted"].notna().any():
        pred = evidence[["parcel_id", "crop_predicted", "crop_probability"]].merge(
            truth_parcels[["id_parcel", "true_group"]], left_on="parcel_id", right_on="id_parcel"
        )
        pred = pred[pred["crop_predicted"].notna()]
        right = pred["crop_predicted"].astype(str) == pred["true_group"].astype(str)
        confident = pred["crop_probability"] >= 0.9
        score["markers"]["crop group"] = (
            f"accuracy {right.mean():.3f} on {len(pred)} parcels; at probability >= 0.9: "
            f"coverage {confident.mean():.3f}, precision {right[confident].mean():.3f}"
        )
    return score

"""Refit the mowing scorers on the Slovak camera set and write their model card (``models/mowing/card.json``).

The scorers ship as constants in :mod:`s3tr.markers.mowing` (a few coefficients each); this script says
whether a refit on the data still gives them, and writes the card that documents them: training data,
held-out metrics with 95 % intervals, date, code and marker versions, parameters and feature lists.

Held-out metrics: cross-validation grouped by site (5 folds, seed 0), the scorers refitted and the threshold
and the sparse-series offset chosen inside each fold, once per kind of input (bands, the pipeline's indices,
NDVI alone). The intervals are percentiles of 2,000 bootstrap resamples of the 44 sites (a site's
plot-years share cameras, weather and farmer, so they are resampled together). The held-out sites are also
scored with half their rows dropped (a cloudier sky: a clear date every 10 days instead of 5).

Usage::

    python pipelines/fit_mowing.py [--data ../shared/data] [--out models/mowing/card.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

import s3tr
from s3tr.markers import MARKER_VERSION
from s3tr.markers.datasets import MowingDataset, load_slovak_mowing
from s3tr.markers.evaluate import match_events
from s3tr.markers.mowing import BAND_FEATURES, INDEX_FEATURES, NDVI_FEATURES, MowingParams
from s3tr.markers.tuning import GAP_OFFSETS, cross_validate_mowing, fit_mowing_params

REPO = Path(__file__).resolve().parents[1]
CARD = REPO / "models" / "mowing" / "card.json"
#: Rounding of the shipped constants (significant digits): a refit within it is the shipped scorer.
DIGITS = 4


def _counts_per_site(ds: MowingDataset, events: pd.DataFrame) -> pd.DataFrame:
    """Per site: matched, detected and true events (+-10 days), and the season confusion counts."""
    truth = ds.truth.groupby("parcel_id")["date"].apply(lambda d: d.to_numpy().astype("datetime64[D]"))
    found = {p: g for p, g in events.groupby("parcel_id")}
    rows = []
    for pid, site in ds.sites.items():
        e, t = found.get(pid), truth.get(pid)
        n_e, n_t = (0 if e is None else len(e)), (0 if t is None else len(t))
        m = 0
        if n_e and n_t:
            starts = e["start"].to_numpy().astype("datetime64[D]")
            ends = e["end"].to_numpy().astype("datetime64[D]")
            m = len(match_events(starts, ends, t, tolerance_days=10))
        rows.append((site, m, n_e, n_t, n_t > 0, n_e > 0))
    df = pd.DataFrame(rows, columns=["site", "tp", "detected", "true", "mowed", "seen"])
    df["s_tp"] = df["mowed"] & df["seen"]
    df["s_fn"] = df["mowed"] & ~df["seen"]
    df["s_tn"] = ~df["mowed"] & ~df["seen"]
    df["s_fp"] = ~df["mowed"] & df["seen"]
    return df.drop(columns=["mowed", "seen"]).groupby("site").sum()


def _scores(c: pd.DataFrame | pd.Series) -> tuple[float, float]:
    """Event F1 and season balanced accuracy from summed counts."""
    f1 = 2 * c["tp"] / (c["detected"] + c["true"])
    ba = (c["s_tp"] / (c["s_tp"] + c["s_fn"]) + c["s_tn"] / (c["s_tn"] + c["s_fp"])) / 2
    return float(f1), float(ba)


def held_out_metrics(ds: MowingDataset, data: str, *, n_boot: int = 2000, seed: int = 0) -> dict[str, object]:
    """Grouped-CV metrics of one kind of input, with 95 % intervals from a bootstrap over sites."""
    pids = ds.table["parcel_id"].unique().tolist()
    truth = ds.truth[ds.truth["parcel_id"].isin(set(pids))]
    r = cross_validate_mowing(
        ds.table,
        truth,
        ds.sites,
        n_splits=5,
        data=data,
        seed=seed,
        # One offset ships, chosen with the bands; the other kinds of input get it as it is.
        gap_offsets=GAP_OFFSETS if data == "bands" else None,
        thinned_test=(0.5,),
    )
    per_site = _counts_per_site(ds, r["events"])
    rng = np.random.default_rng(seed)
    boot = np.array(
        [_scores(per_site.iloc[rng.integers(0, len(per_site), len(per_site))].sum()) for _ in range(n_boot)]
    )
    lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return {
        "precision": round(r["precision"], 3),
        "recall": round(r["recall"], 3),
        "f1": round(r["f1"], 3),
        "f1_ci95": [round(lo[0], 3), round(hi[0], 3)],
        "season_balanced_accuracy": round(r["season_balanced_accuracy"], 3),
        "season_balanced_accuracy_ci95": [round(lo[1], 3), round(hi[1], 3)],
        "half_the_rows_dropped": {
            k: round(r["thinned"][0.5][k], 3)
            for k in ("precision", "recall", "f1", "season_balanced_accuracy")
        },
    }


def _rounded(x: object) -> object:
    if isinstance(x, float):
        return float(f"{x:.{DIGITS}g}")
    if isinstance(x, list | tuple):
        return [_rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return x


def refit_matches_shipped(ds: MowingDataset) -> bool:
    """Whether a refit on all sites gives the shipped scorers, threshold and offset (to ``DIGITS`` digits)."""
    pids = set(ds.table["parcel_id"])
    truth = ds.truth[ds.truth["parcel_id"].isin(pids)]
    params, _ = fit_mowing_params(ds.table, truth, gap_offsets=GAP_OFFSETS)
    shipped = MowingParams()
    same = True
    for name in ("scorer_bands", "scorer_indices", "scorer_ndvi"):
        new, old = _rounded(getattr(params, name).__dict__), _rounded(getattr(shipped, name).__dict__)
        if new != old:
            same = False
            print(f"refit {name} differs from the shipped one:\n  refit   {new}\n  shipped {old}")
    for name in ("threshold", "gap_offset"):
        if getattr(params, name) != getattr(shipped, name):
            same = False
            print(f"refit {name} {getattr(params, name)} differs from the shipped {getattr(shipped, name)}")
    return same


def build_card(ds: MowingDataset) -> dict[str, object]:
    """The model card of the shipped mowing scorers."""
    pids = ds.table["parcel_id"].unique()
    return {
        "name": "mowing",
        "model_version": MARKER_VERSION,
        "trained": date.today().isoformat(),
        "code_version": s3tr.__version__,
        "seed": 0,
        "estimator": "three L2 logistic regressions (C=1) on standardised candidate features, one per kind "
        "of input; each candidate gets the richest one its data allow (s3tr.markers.mowing)",
        "training_data": "grassland_mowing/test (Slovak camera sites, Grasslands4Biodiversity, 2021-2024): "
        "Sentinel-2 L2A polygon means with Cloud Score+ mask; camera-recorded mowing dates",
        "n_plot_years": len(pids),
        "n_sites": int(ds.sites.nunique()),
        "n_true_mowings": int(ds.truth["parcel_id"].isin(set(pids)).sum()),
        "features": {
            "bands": list(BAND_FEATURES),
            "indices": list(INDEX_FEATURES),
            "ndvi": list(NDVI_FEATURES),
        },
        "parameters": json.loads(json.dumps(MowingParams().as_dict())),
        "metrics_protocol": "5-fold cross-validation grouped by site, seed 0, scorers, threshold and "
        "(bands) sparse-series offset fitted inside each fold (indices, ndvi: the shipped offset); +-10 "
        "days, one-to-one matching; 95 % intervals from 2,000 bootstrap resamples of the sites; "
        "half_the_rows_dropped: the held-out sites with a random half of their rows dropped",
        "metrics": {data: held_out_metrics(ds, data) for data in ("bands", "indices", "ndvi")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("S3TR_REALDATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=CARD)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    ds = load_slovak_mowing(args.data / "grassland_mowing")
    if not refit_matches_shipped(ds):
        print("update the constants in s3tr/markers/mowing.py (and MARKER_VERSION) before writing the card")
        raise SystemExit(1)
    card = build_card(ds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["metrics"], indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

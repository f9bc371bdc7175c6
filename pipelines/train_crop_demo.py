"""Train the crop-group model that ``s3tr demo`` ships, on a *separate* demo season.

The model is trained on the season of seed 1 (its series and its ground-truth crop groups)
and the demo runs on seed 0 by default, so the demo's self-score of the crop control is
measured on parcels the model never saw.

Usage::

    python pipelines/train_crop_demo.py [--seed 1] [--workdir /tmp/s3tr-train] [--out models/crop_group]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from s3tr.demo import GENERATOR_VERSION
from s3tr.demo.runner import DEMO_SEASON, demo_run_config, ensure_season
from s3tr.markers.crop import make_classifier, train_crop_model
from s3tr.markers.table import normalize_timeseries
from s3tr.markers.tuning import cross_validate_crop
from s3tr.nightly.pipeline import run_pipeline


def compact_classifier(seed: int) -> object:
    """The shipped model: one calibrated forest with small leaves, a few MB on disk."""
    return make_classifier(seed=seed, n_estimators=200, min_samples_leaf=3, ensemble=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/s3tr-train-season"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "crop_group"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    root = ensure_season(args.workdir, seed=args.seed)
    result = run_pipeline(demo_run_config(root), workdir=args.workdir)
    truth = pd.read_csv(root / "truth" / "parcels.csv", dtype={"id_parcel": str})
    labels = truth.rename(columns={"id_parcel": "parcel_id", "true_group": "label"})[["parcel_id", "label"]]
    labels["label"] = labels["label"].astype(str)
    # Folds never split a farm: neighbouring parcels of one farm are sown and managed alike.
    farms = result.parcels.set_index("id_parcel")["pacage"].astype(str)
    table = normalize_timeseries(result.series)
    metrics = cross_validate_crop(
        table, labels, n_splits=5, seed=0, groups=farms, make_estimator=compact_classifier
    )
    logging.info("cross-validated on the training season, grouped by farm: %s", metrics)
    model = train_crop_model(
        table,
        labels,
        seed=0,
        name="crop_group_demo",
        estimator=compact_classifier(0),
        training_data=(
            f"s3tr demo season, seed {args.seed} (generator {GENERATOR_VERSION}): "
            f"{len(result.parcels)} parcels, {result.acquisitions} Sentinel-2 L2A acquisitions "
            f"{DEMO_SEASON[0]}..{DEMO_SEASON[1]}; labels = true RPG crop groups from its truth/parcels.csv. "
            "The demo runs on seed 0, so its crop score is measured on parcels the model never saw."
        ),
    )
    model.card["metrics"] = {
        "cross_validation": "5-fold, stratified and grouped by farm (PACAGE), on the training season",
        **{k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.joblib")
    logging.info("crop-group model written to %s", args.out)


if __name__ == "__main__":
    main()

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

from s3tr.demo.runner import demo_run_config, ensure_season
from s3tr.markers.crop import train_crop_model
from s3tr.nightly.pipeline import run_pipeline


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
    model = train_crop_model(result.series, labels, seed=0)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.joblib")
    logging.info("crop-group model written to %s", args.out)


if __name__ == "__main__":
    main()

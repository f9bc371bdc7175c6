"""Train the crop-group model that ``s3tr demo`` ships, on a *separate* demo season.

The model is trained on the season of seed 1 (its series and its ground-truth crop groups)
and the demo runs on seed 0 by default, so the demo's self-score of the crop control is
measured on parcels the model never saw.

Usage::

    python pipelines/train_crop_demo.py [--config pipelines/training.yaml] [--seed 1]
        [--workdir DIR] [--out DIR]
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
from s3tr.nightly.config import load_training_config
from s3tr.nightly.pipeline import load_series, run_pipeline


def compact_classifier(seed: int, n_estimators: int = 200, min_samples_leaf: int = 3) -> object:
    """The shipped model: one calibrated forest with small leaves, a few MB on disk."""
    return make_classifier(
        seed=seed, n_estimators=n_estimators, min_samples_leaf=min_samples_leaf, ensemble=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent / "training.yaml")
    parser.add_argument("--seed", type=int, default=None, help="season seed (overrides the config)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    cli = parser.parse_args()
    cfg = load_training_config(cli.config, season_seed=cli.seed, workdir=cli.workdir, out=cli.out)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    root = ensure_season(cfg.workdir, seed=cfg.season_seed)
    config = demo_run_config(root)
    run = run_pipeline(config, workdir=cfg.workdir)
    # The whole season's series: a rerun on the same workdir re-decides (so returns) no parcel.
    series = load_series(cfg.workdir, min_valid_fraction=config.min_valid_fraction)
    truth = pd.read_csv(root / "truth" / "parcels.csv", dtype={"id_parcel": str})
    labels = truth.rename(columns={"id_parcel": "parcel_id", "true_group": "label"})[["parcel_id", "label"]]
    labels["label"] = labels["label"].astype(str)
    # Folds never split a farm: neighbouring parcels of one farm are sown and managed alike.
    farms = run.parcels.set_index("id_parcel")["pacage"].astype(str)
    table = normalize_timeseries(series)
    metrics = cross_validate_crop(
        table,
        labels,
        n_splits=cfg.n_splits,
        seed=cfg.seed,
        groups=farms,
        make_estimator=lambda s: compact_classifier(s, cfg.n_estimators, cfg.min_samples_leaf),
    )
    logging.info("cross-validated on the training season, grouped by farm: %s", metrics)
    model = train_crop_model(
        table,
        labels,
        seed=cfg.seed,
        name="crop_group_demo",
        estimator=compact_classifier(cfg.seed, cfg.n_estimators, cfg.min_samples_leaf),
        training_data=(
            f"s3tr demo season, seed {cfg.season_seed} (generator {GENERATOR_VERSION}): "
            f"{len(run.parcels)} parcels, {run.acquisitions} Sentinel-2 L2A acquisitions "
            f"{DEMO_SEASON[0]}..{DEMO_SEASON[1]}; labels = true RPG crop groups from its truth/parcels.csv. "
            "The demo runs on seed 0, so its crop score is measured on parcels the model never saw."
        ),
    )
    model.card["metrics"] = {
        "cross_validation": f"{cfg.n_splits}-fold, stratified and grouped by farm (PACAGE), "
        "on the training season",
        "intervals": "95 %, percentiles of 1,000 bootstrap resamples of the farms",
        **{k: v for k, v in metrics.items() if isinstance(v, int | float | str | list)},
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    model.save(cfg.out / "model.joblib")
    logging.info("crop-group model written to %s", cfg.out)


if __name__ == "__main__":
    main()

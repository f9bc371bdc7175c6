"""Run configuration of the nightly pipeline, validated by pydantic (``extra="forbid"``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from s3tr.errors import ConfigError

__all__ = ["RunConfig", "TrainingConfig", "load_run_config", "load_training_config"]

DEFAULT_INDICES = ("ndvi", "ndmi", "ndwi", "bsi", "ndti")


class RunConfig(BaseModel):
    """What one nightly run does: which parcels, which imagery, which season and how to extract it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parcels: Path = Field(description="Declared parcels (GeoPackage, GeoParquet, Shapefile or GeoJSON).")
    catalog: Path = Field(description="Local STAC catalog (catalog.json) of Sentinel-2 L2A COGs.")
    campaign: int = Field(description="CAP campaign (declaration year), e.g. 2025.", ge=2015, le=2100)
    start: date = Field(description="First acquisition date considered (inclusive).")
    end: date = Field(description="Last acquisition date considered (inclusive).")
    region: str | None = Field(None, description="Region of the rule set; None selects the national one.")
    indices: tuple[str, ...] = Field(DEFAULT_INDICES, description="Spectral indices extracted per parcel.")
    inward_buffer_m: float = Field(
        10.0,
        ge=0.0,
        description="Inward buffer of parcels in metres; 10 m (half a 20 m pixel) keeps mixed pixels out.",
    )
    invalid_scl: tuple[int, ...] = Field(
        (0, 1, 3, 8, 9, 10, 11), description="SCL classes treated as invalid for vegetation monitoring."
    )
    cloud_dilation_px: int = Field(
        1, ge=0, description="Dilation of cloud and shadow SCL classes, in 20 m pixels."
    )
    min_valid_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A parcel-date is a valid observation when this share of its pixels is clear.",
    )
    workers: int = Field(
        2, ge=1, description="Local Dask workers (one runs in a thread of the run, more are processes)."
    )
    worker_memory: str = Field(
        "4GB", description="Memory limit of each local Dask worker process (a full tile needs < 4 GB)."
    )
    scheduler: str | None = Field(
        None, description="Dask scheduler address (tcp://host:8786); None starts a LocalCluster."
    )
    markers_chunk: int = Field(
        20_000,
        ge=1,
        description="Most parcels per markers task (about 4 ms each): bounds a task's memory and the work "
        "lost with a worker.",
    )
    keep_series: bool = Field(
        True,
        description="Bring the series of the re-decided parcels back to the run process (the report's "
        "curves, the demo's self-score); switch off for national runs, where they do not fit in memory.",
    )
    crop_model: Path | None = Field(
        None,
        description="Crop-group model (model.joblib); default: crop_group/model.joblib in the models folder "
        "(S3TR_MODELS_DIR, ./models or the source checkout's models/).",
    )


def load_run_config(path: Path, **overrides: object) -> RunConfig:
    """Read and validate a YAML run configuration; relative paths are taken from the file's folder."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read run configuration {path}: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("parcels", "catalog", "crop_model"):
        if key in raw and raw[key] is not None and not Path(raw[key]).is_absolute():
            # Absolute: tasks run in other processes (other working directories on a cluster).
            raw[key] = str((Path(path).parent / raw[key]).resolve())
    try:
        return RunConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid run configuration {path}:\n{exc}") from exc


class TrainingConfig(BaseModel):
    """Training of the crop-group model on a generated demo season (``pipelines/training.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    season_seed: int = Field(1, ge=0, description="Seed of the training season (the demo runs on 0).")
    workdir: Path = Field(
        Path("/tmp/s3tr-train-season"), description="Where the season is generated and run."
    )
    out: Path = Field(Path("models/crop_group"), description="Folder of the trained model.joblib.")
    n_splits: int = Field(5, ge=2, description="Cross-validation folds, grouped by farm.")
    n_estimators: int = Field(200, ge=1, description="Trees of the random forest.")
    min_samples_leaf: int = Field(3, ge=1, description="Minimum samples per leaf.")
    seed: int = Field(0, description="Random seed of the classifier and the folds.")


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc


def load_training_config(path: Path, **overrides: object) -> TrainingConfig:
    """Read and validate a training configuration; relative paths are taken from the file's folder."""
    raw = _read_yaml(path)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("workdir", "out"):
        if key in raw and not Path(raw[key]).is_absolute():
            raw[key] = str((Path(path).parent / raw[key]).resolve())
    try:
        return TrainingConfig(**raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid training configuration {path}:\n{exc}") from exc

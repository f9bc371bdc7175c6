"""Environment settings (``S3TR_*`` variables), built by :func:`get_settings`, never at import.

Precedence is the usual one: explicit arguments > environment > defaults. Run configurations
(what a nightly run does) live in YAML files under ``pipelines/`` and are validated separately.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "find_models_dir", "get_settings"]

_PACKAGE_ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    """Settings read from the environment (prefix ``S3TR_``)."""

    model_config = SettingsConfigDict(env_prefix="S3TR_", extra="ignore")

    workdir: Path = Field(
        Path("s3tr-work"), description="Working directory of runs (series, database, reports)."
    )
    db: str | None = Field(
        None, description="Database URL; default is SQLite in the workdir (sqlite:///<workdir>/s3tr.db)."
    )
    models_dir: Path | None = Field(
        None, description="Folder of trained models; default: the repository's models/."
    )
    workers: int = Field(2, ge=1, description="Local worker processes for imagery reading and extraction.")
    sentinelhub_client_id: str | None = Field(None, description="Sentinel Hub OAuth client id.")
    sentinelhub_client_secret: SecretStr | None = Field(None, description="Sentinel Hub OAuth client secret.")


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, with explicit ``overrides`` taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def find_models_dir(settings: Settings | None = None) -> Path | None:
    """Locate the trained-model folder.

    Looks at ``S3TR_MODELS_DIR``, then ``./models`` in the current directory, then the
    ``models/`` folder of the source checkout this package was imported from.
    Returns None when no folder exists.
    """
    candidates = []
    if settings is not None and settings.models_dir is not None:
        candidates.append(settings.models_dir)
    candidates += [Path.cwd() / "models", _PACKAGE_ROOT.parent / "models"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None

"""Environment settings (``S3TR_*`` variables), built by :func:`get_settings`, never at import.

Precedence is the usual one: explicit arguments > environment > defaults. Run configurations
(what a nightly run does) live in YAML files under ``pipelines/`` and are validated separately.
"""

from __future__ import annotations

import os
import sysconfig
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

    # notifications (s3tr.notify): each channel is off until its host/URL is set
    smtp_host: str | None = Field(None, description="SMTP server for e-mails (unset: no e-mail).")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS before sending.")
    smtp_username: str | None = Field(None, description="SMTP login (unset: no authentication).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_from: str = Field("s3tr <no-reply@s3tr.invalid>", description="Sender of notification e-mails.")
    smtp_timeout: float = Field(10.0, gt=0, description="SMTP connect/command timeout, seconds.")
    webhook_url: str | None = Field(None, description="Push gateway URL to POST to (unset: no push).")
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key signing webhook bodies (header X-S3TR-Signature)."
    )
    webhook_timeout: float = Field(5.0, gt=0, description="Webhook request timeout, seconds.")
    notify_app_url: str = Field("https://s3tr.invalid/app", description="App base URL, linked in messages.")
    notify_timezone: str = Field("Europe/Paris", description="Time zone of quiet hours and digest dates.")
    notify_quiet_start: int = Field(21, ge=0, le=23, description="Quiet hours start (local hour).")
    notify_quiet_end: int = Field(8, ge=0, le=23, description="Quiet hours end (local hour).")
    notify_reminder_days: list[int] = Field(
        [7, 2], description="Remind the farmer this many days before a photo request's deadline."
    )
    notify_max_attempts: int = Field(6, ge=1, description="Delivery attempts before a notification fails.")
    notify_backoff_seconds: float = Field(60.0, gt=0, description="First retry delay; doubles per attempt.")
    notify_lease_seconds: float = Field(
        300.0, gt=0, description="How long a claimed delivery stays reserved to its worker."
    )
    notify_batch_size: int = Field(200, ge=1, description="Deliveries claimed per batch by the worker.")


def get_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, with explicit ``overrides`` taking precedence."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def find_models_dir(settings: Settings | None = None, *, holding: str | None = None) -> Path | None:
    """Locate the trained-model folder.

    Looks at ``S3TR_MODELS_DIR``, then ``./models`` in the current directory, then the
    ``models/`` folder of the source checkout this package was imported from, then the copy that an
    installed wheel put under ``<prefix>/share/s3tr/models`` (the environment's, then the user's).
    With ``holding`` (a path inside the folder, e.g. ``crop_group/model.joblib``), only a folder that holds
    it counts, so an unrelated ``./models`` does not hide the shipped one. Returns None when none fits.
    """
    candidates = []
    if settings is not None and settings.models_dir is not None:
        candidates.append(settings.models_dir)
    candidates += [Path.cwd() / "models", _PACKAGE_ROOT.parent / "models"]
    for scheme in (sysconfig.get_default_scheme(), f"{os.name}_user"):
        candidates.append(Path(sysconfig.get_path("data", scheme)) / "share" / "s3tr" / "models")
    for candidate in candidates:
        if candidate.is_dir() and (holding is None or (candidate / holding).exists()):
            return candidate
    return None

"""Errors of the extraction stage.

Each class derives from :class:`ExtractError` (the stage's root, itself an
:class:`s3tr.errors.S3trError`) and from the project-wide class that matches the kind of problem,
so callers may catch ``ParcelFileError`` or ``ImageryReadError`` without knowing this stage.
"""

from __future__ import annotations

from s3tr.errors import ConfigError, ImageryReadError, ParcelFileError, S3trError

__all__ = [
    "ExtractError",
    "ExtractParcelsError",
    "ExtractRasterError",
    "ExtractValueError",
    "SeriesStoreError",
    "TableFormatError",
]


class ExtractError(S3trError):
    """Root of the errors raised by :mod:`s3tr.extract`."""


class ExtractParcelsError(ExtractError, ParcelFileError):
    """The parcels given to the extraction are unusable (empty, no CRS, missing or duplicate ids)."""


class ExtractRasterError(ExtractError, ImageryReadError):
    """A raster to extract from cannot be read (missing, truncated, corrupt, no CRS)."""


class ExtractValueError(ExtractError, ValueError):
    """Arrays or arguments given to the extraction do not match its grid or contract."""


class SeriesStoreError(ExtractError, ValueError):
    """A per-tile time-series store is inconsistent with what is appended to it."""


class TableFormatError(ExtractError, ConfigError):
    """An output table path has an extension that is neither ``.csv`` nor ``.parquet``."""

"""The one error hierarchy of s3tr.

Every error s3tr raises on purpose derives from :class:`S3trError`, and also from the
builtin that matches it, so callers may catch either. Errors carry their context (file,
record, item) and say how to fix the problem. :class:`TransientError` marks failures worth
retrying (network hiccups, a locked file); everything else is permanent.
"""

from __future__ import annotations

__all__ = [
    "CatalogError",
    "ConfigError",
    "DatabaseError",
    "ImageryReadError",
    "ParcelFileError",
    "ParcelGeometryError",
    "S3trError",
    "TransientError",
    "WorkdirError",
]


class S3trError(Exception):
    """Root of every error raised on purpose by s3tr."""


class TransientError(S3trError):
    """A failure that may succeed when retried (timeouts, HTTP 429/5xx, locks)."""


class ConfigError(S3trError, ValueError):
    """A settings value or a run configuration is invalid."""


class WorkdirError(S3trError, OSError):
    """The working directory cannot be created or written."""


class ParcelFileError(S3trError, ValueError):
    """A parcels file cannot be read at all (missing, corrupt, no geometry, unknown CRS)."""


class ParcelGeometryError(S3trError, ValueError):
    """One parcel's geometry is invalid and cannot be repaired."""


class CatalogError(S3trError, ValueError):
    """A STAC catalog, collection or item is missing or malformed."""


class ImageryReadError(S3trError, OSError):
    """A raster (COG) of one acquisition cannot be read: missing, truncated, corrupt, wrong grid."""


class DatabaseError(S3trError, RuntimeError):
    """The review database is unreachable or its schema is not at the expected revision."""

"""Imagery stage: list Sentinel-2 L2A acquisitions, read bands on the 20 m grid, mask, indices.

Sources implement :class:`ImagerySource`: :class:`LocalStacSource` (a STAC catalog of COGs on
disk, the default), :class:`~s3tr.imagery.stac_api.StacApiSource` (a STAC API such as Earth
Search) and :class:`~s3tr.imagery.sentinelhub_source.SentinelHubSource` (Sentinel Hub). The network
sources are imported from their own modules so that nothing here needs the network.
"""

from __future__ import annotations

from s3tr.imagery.base import (
    BAND_NAMES,
    REFLECTANCE_BANDS,
    Acquisition,
    GridMismatchError,
    ImagerySource,
    band_name,
    iter_strips,
    scale_offset,
)
from s3tr.imagery.indices import INDICES, SpectralIndex, bands_for, compute_indices
from s3tr.imagery.local import LocalStacSource
from s3tr.imagery.masks import DEFAULT_INVALID_SCL, valid_mask

__all__ = [
    "BAND_NAMES",
    "DEFAULT_INVALID_SCL",
    "INDICES",
    "REFLECTANCE_BANDS",
    "Acquisition",
    "GridMismatchError",
    "ImagerySource",
    "LocalStacSource",
    "SpectralIndex",
    "band_name",
    "bands_for",
    "compute_indices",
    "iter_strips",
    "scale_offset",
    "valid_mask",
]

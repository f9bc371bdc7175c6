"""Parcels stage: declared parcels (RPG) in, validated and grouped by imagery tile.

- :func:`load_parcels` reads a GeoPackage / GeoParquet / Shapefile / GeoJSON into the contract of
  ``docs/architecture.md`` and reports every rejected record (:func:`write_rejects`);
- :func:`assign_tiles`, :func:`to_grid_crs`, :func:`inward_buffer` and :func:`monitorability` put the
  parcels on the imagery grid and tell which are big enough to be monitored by Sentinel-2.
"""

from __future__ import annotations

from s3tr.parcels.load import (
    ParcelLoadResult,
    department_from_commune,
    department_from_pacage,
    load_parcels,
    write_rejects,
)
from s3tr.parcels.tiling import assign_tiles, inward_buffer, monitorability, to_grid_crs

__all__ = [
    "ParcelLoadResult",
    "assign_tiles",
    "department_from_commune",
    "department_from_pacage",
    "inward_buffer",
    "load_parcels",
    "monitorability",
    "to_grid_crs",
    "write_rejects",
]

"""The demo season generator: a realistic, self-scoring Sentinel-2 season around Poitiers.

``generate_season(out_dir)`` writes RPG-like parcels (``parcels.gpkg``, EPSG:2154), one season of
Sentinel-2 L2A acquisitions as COGs on the real MGRS tile 31TBM with a local Earth-Search-like STAC
catalog (``stac/``), the hidden ground truth (``truth/``) and, last, the manifest ``demo.json``.

Modules, in the order the generator uses them: :mod:`~s3tr.demo.crops` (codes and regional mix),
:mod:`~s3tr.demo.parcels` (field layout), :mod:`~s3tr.demo.farming` (declarations, events,
non-compliance, truth), :mod:`~s3tr.demo.phenology` (cover curves and spectra),
:mod:`~s3tr.demo.raster` (tile grid, mixing, COG writing), :mod:`~s3tr.demo.scenes` (dates,
clouds, SCL), :mod:`~s3tr.demo.stac` (items and catalog), :mod:`~s3tr.demo.season` (orchestration).
"""

from __future__ import annotations

from s3tr.demo.season import GENERATOR_VERSION, DemoPaths, generate_season, is_complete

__all__ = ["GENERATOR_VERSION", "DemoPaths", "generate_season", "is_complete"]

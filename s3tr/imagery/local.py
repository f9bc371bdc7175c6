"""A local STAC catalog of Cloud-Optimized GeoTIFFs: the default imagery source (and the demo's).

Accepted layouts: a ``catalog.json`` / ``collection.json`` (children and items followed through
their links), an ItemCollection / FeatureCollection JSON file, a single item JSON file, or a folder
(its ``catalog.json`` or ``collection.json`` when present, else every item JSON below it). Relative
asset hrefs are resolved against the item file. One unreadable item never stops the listing: it is
logged and kept in :attr:`LocalStacSource.problems`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
import rasterio

from s3tr.errors import CatalogError, S3trError
from s3tr.grid import Grid
from s3tr.imagery._reader import StacItemReader, filter_acquisitions
from s3tr.imagery.base import Acquisition, acquisition_from_item

__all__ = ["LocalStacSource", "cached_source"]

logger = logging.getLogger(__name__)

_CATALOG_NAMES = ("catalog.json", "collection.json")

# One source per catalog per process: a Dask worker runs many tasks on the same catalog.
_CACHED: dict[str, LocalStacSource] = {}
_CACHED_LOCK = threading.Lock()


class LocalStacSource(StacItemReader):
    """Imagery from a STAC catalog on disk (COG assets read with rasterio windows).

    Parameters
    ----------
    catalog_path
        A catalog/collection JSON, an ItemCollection JSON, an item JSON, or a folder (see module).
    max_workers
        Threads decoding bands in parallel within one read.

    Attributes
    ----------
    problems
        ``(item id or file, reason)`` of every item that could not be listed, filled by
        :meth:`list_acquisitions`.
    """

    gdal_options = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # noqa: RUF012

    def __init__(self, catalog_path: str | Path, *, max_workers: int = 2) -> None:
        super().__init__(max_workers=max_workers)
        self.catalog_path = Path(catalog_path)
        if not self.catalog_path.exists():
            raise CatalogError(
                f"STAC catalog not found: {self.catalog_path}; give a catalog.json, an item collection "
                "or a folder of item JSON files"
            )
        self.problems: list[tuple[str, str]] = []
        self._acquisitions: list[Acquisition] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalStacSource({str(self.catalog_path)!r})"

    # -- listing -----------------------------------------------------------------------------
    def list_acquisitions(
        self,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        bbox: Sequence[float] | None = None,
    ) -> list[Acquisition]:
        """Acquisitions of the catalog matching the filters, sorted by time then id.

        The catalog is scanned once per source object (call :meth:`refresh` to rescan). Items
        that cannot be parsed are skipped and recorded in :attr:`problems`.
        """
        with self._lock:
            if self._acquisitions is None:
                self._acquisitions = self._scan()
        return filter_acquisitions(self._acquisitions, tile=tile, start=start, end=end, bbox=bbox)

    def refresh(self) -> None:
        """Forget the scanned catalog; the next listing reads it again."""
        with self._lock:
            self._acquisitions = None

    def _problem(self, where: str, reason: str) -> None:
        logger.warning("skipping STAC item %s: %s", where, reason)
        self.problems.append((where, reason))

    def _scan(self) -> list[Acquisition]:
        self.problems = []
        acquisitions: dict[str, Acquisition] = {}
        for where, data, path in self._iter_item_dicts():
            try:
                item = pystac.Item.from_dict(data, href=str(path), preserve_dict=False)
            except Exception as exc:
                self._problem(where, f"not a valid STAC item ({type(exc).__name__}: {exc})")
                continue
            try:
                acq = acquisition_from_item(item, header_grid=self._header_grid(item))
            except (S3trError, ValueError, KeyError, TypeError) as exc:
                self._problem(item.id, str(exc))
                continue
            if acq.id in acquisitions:
                self._problem(f"{acq.id} ({path})", "duplicate item id; the first one is kept")
                continue
            acquisitions[acq.id] = acq
        logger.info(
            "catalog %s: %d acquisitions, %d problems",
            self.catalog_path,
            len(acquisitions),
            len(self.problems),
        )
        return list(acquisitions.values())

    def _header_grid(self, item: pystac.Item) -> Any:
        def header(key: str, asset: Any) -> Grid | None:
            href = self._href(item, key, asset)
            try:
                with rasterio.Env(**self.gdal_options), rasterio.open(href) as ds:
                    if ds.crs is None:
                        return None
                    return Grid(ds.crs.to_wkt(), ds.transform, (ds.height, ds.width))
            except (rasterio.errors.RasterioError, OSError) as exc:
                logger.debug("cannot read the header of %s: %s", href, exc)
                return None

        return header

    def _load_json(self, path: Path) -> Any:
        with path.open("rb") as f:
            return json.load(f)

    def _iter_item_dicts(self) -> Iterator[tuple[str, dict[str, Any], Path]]:
        root = self.catalog_path
        if root.is_dir():
            for name in _CATALOG_NAMES:
                if (root / name).is_file():
                    yield from self._walk(root / name, set())
                    return
            for path in sorted(root.rglob("*.json")):
                yield from self._from_file(path, set(), only_items=True)
            return
        yield from self._walk(root, set())

    def _walk(self, path: Path, seen: set[Path]) -> Iterator[tuple[str, dict[str, Any], Path]]:
        yield from self._from_file(path, seen, only_items=False)

    def _from_file(
        self, path: Path, seen: set[Path], *, only_items: bool
    ) -> Iterator[tuple[str, dict[str, Any], Path]]:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        try:
            data = self._load_json(path)
        except (OSError, ValueError) as exc:
            self._problem(str(path), f"cannot read JSON ({type(exc).__name__}: {exc})")
            return
        if not isinstance(data, dict):
            self._problem(str(path), "JSON is not an object")
            return
        kind = data.get("type")
        if kind == "Feature":
            yield (str(data.get("id", path)), data, path)
        elif kind == "FeatureCollection":
            for i, feature in enumerate(data.get("features") or []):
                if isinstance(feature, dict):
                    yield (str(feature.get("id", f"{path}#{i}")), feature, path)
                else:
                    self._problem(f"{path}#{i}", "feature is not an object")
        elif kind in ("Catalog", "Collection") and not only_items:
            for link in data.get("links") or []:
                if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
                    continue
                href = link.get("href")
                target = self._resolve_link(path, href)
                if target is None:
                    self._problem(f"{path} -> {href}", "link is not a local file")
                    continue
                if not target.is_file():
                    self._problem(str(target), f"linked {link.get('rel')} file is missing")
                    continue
                yield from self._from_file(target, seen, only_items=False)
        elif only_items and kind in ("Catalog", "Collection"):
            return
        else:
            self._problem(str(path), f"not a STAC document (type={kind!r})")

    @staticmethod
    def _resolve_link(base: Path, href: Any) -> Path | None:
        if not isinstance(href, str) or not href:
            return None
        parsed = urlparse(href)
        if parsed.scheme == "file":
            return Path(parsed.path)
        if parsed.scheme and len(parsed.scheme) > 1:
            return None
        p = Path(href)
        return p if p.is_absolute() else (base.parent / p)

    # -- reading -----------------------------------------------------------------------------
    def _href(self, item: Any, key: str, asset: Any) -> str:
        href = asset.get_absolute_href() or asset.href
        parsed = urlparse(href)
        if parsed.scheme == "file":
            return parsed.path
        return str(href)


def cached_source(catalog: str | Path) -> LocalStacSource:
    """The process's :class:`LocalStacSource` of ``catalog``, created on first use.

    For tasks on Dask workers: a task carries the catalog path (a source holds a lock and its
    scanned listing, so it is not sent through the scheduler) and the worker keeps one source per
    catalog for all its tasks.
    """
    key = str(catalog)
    with _CACHED_LOCK:
        if key not in _CACHED:
            _CACHED[key] = LocalStacSource(key)
        return _CACHED[key]

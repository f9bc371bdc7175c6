"""A STAC API (Earth Search, Copernicus Data Space, Planetary Computer...) as an imagery source.

Listing goes through ``pystac-client`` (``POST /search`` with bbox, datetime and a tile query,
following the ``next`` links); reading opens the COG assets over HTTP with rasterio (GDAL's
``/vsicurl/``), reading only the byte ranges of the requested window.

Failures
--------
Transient HTTP failures (429, 500, 502, 503, 504, timeouts, dropped connections) are retried with
exponential backoff, by urllib3 for the search requests and by :class:`RetryPolicy` for the COG
reads. A read that still fails, or fails permanently (404, 403, a corrupt file), raises
:class:`~s3tr.errors.ImageryReadError` for that item only; the caller goes on with the others.
A search that still fails after its retries raises :class:`~s3tr.errors.TransientError` when the
cause was transient (try again later) and :class:`~s3tr.errors.CatalogError` otherwise.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pystac
from urllib3 import Retry

from s3tr.errors import CatalogError, S3trError, TransientError
from s3tr.imagery._reader import StacItemReader, filter_acquisitions
from s3tr.imagery.base import (
    Acquisition,
    acquisition_from_item,
    as_utc_bound,
    imagery_read_error,
    normalise_tile,
)

__all__ = ["TRANSIENT_HTTP_STATUS", "RetryPolicy", "StacApiSource", "is_transient"]

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying.
TRANSIENT_HTTP_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
_STATUS_RE = re.compile(r"(?:HTTP response code|status(?: code)?|HTTP error)\D{0,5}(\d{3})", re.IGNORECASE)
_TRANSIENT_WORDS = (
    "timed out",
    "timeout",
    "connection reset",
    "connection refused",
    "temporarily unavailable",
)


def is_transient(exc: BaseException) -> bool:
    """Whether a reading/search error is worth retrying (HTTP 429/5xx, timeouts, dropped connections)."""
    if isinstance(exc, TransientError):
        return True
    text = str(exc)
    m = _STATUS_RE.search(text)
    if m:
        return int(m.group(1)) in TRANSIENT_HTTP_STATUS
    low = text.lower()
    return any(word in low for word in _TRANSIENT_WORDS)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff: wait ``backoff * 2**i`` (capped, with jitter) before try ``i+2``.

    Parameters
    ----------
    attempts
        Total tries, including the first (>= 1).
    backoff
        First wait in seconds.
    max_backoff
        Longest wait in seconds.
    jitter
        Random fraction added to each wait (0.1 = up to +10 %), to avoid synchronized retries.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.1

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (1.0 + self.jitter * random.random())

    def urllib3(self) -> Retry:
        """The same policy for the search requests (urllib3 retries, POST included)."""
        return Retry(
            total=self.attempts - 1,
            connect=self.attempts - 1,
            read=self.attempts - 1,
            status=self.attempts - 1,
            backoff_factor=self.backoff,
            backoff_max=self.max_backoff,
            status_forcelist=sorted(TRANSIENT_HTTP_STATUS),
            allowed_methods=None,
            respect_retry_after_header=True,
            raise_on_status=False,
        )


class StacApiSource(StacItemReader):
    """Sentinel-2 L2A acquisitions from a STAC API, COG windows read over HTTP.

    Parameters
    ----------
    url
        Root of the STAC API (e.g. ``https://earth-search.aws.element84.com/v1``).
    collection
        Collection to search (Earth Search: ``sentinel-2-l2a`` or ``sentinel-2-c1-l2a``).
    tile_query
        How the API filters by tile: ``"grid:code"`` (Earth Search, CDSE: ``MGRS-31TBM``),
        ``"s2:mgrs_tile"`` (Planetary Computer: ``31TBM``), ``"mgrs"`` (the ``mgrs:*`` triple) or
        None (filter on the client only). Results are always filtered on the client as well.
    query
        Extra STAC ``query`` conditions (e.g. ``{"eo:cloud_cover": {"lt": 80}}``).
    limit
        Page size asked of the API.
    max_items
        Stop after this many items (None: all).
    headers
        Extra HTTP headers for the API (not for the COGs).
    href_modifier
        Turns an asset href into what GDAL opens (signing, ``s3://`` -> ``https://``...).
    retry
        Retry policy for transient failures.
    timeout
        Seconds before an HTTP request is abandoned (and counted as transient).
    max_workers
        Threads reading bands in parallel.
    """

    def __init__(
        self,
        url: str,
        *,
        collection: str = "sentinel-2-l2a",
        tile_query: str | None = "grid:code",
        query: Mapping[str, Any] | None = None,
        limit: int = 100,
        max_items: int | None = None,
        headers: Mapping[str, str] | None = None,
        href_modifier: Callable[[str], str] | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        max_workers: int = 4,
    ) -> None:
        super().__init__(max_workers=max_workers)
        if tile_query not in (None, "grid:code", "s2:mgrs_tile", "mgrs"):
            raise ValueError("tile_query must be 'grid:code', 's2:mgrs_tile', 'mgrs' or None")
        self.url = url.rstrip("/")
        self.collection = collection
        self.tile_query = tile_query
        self.query = dict(query or {})
        self.limit = int(limit)
        self.max_items = max_items
        self.headers = dict(headers or {})
        self.href_modifier = href_modifier
        self.retry = retry or RetryPolicy()
        self.timeout = float(timeout)
        self.problems: list[tuple[str, str]] = []
        self._client: Any = None
        self._lock = threading.Lock()
        self.gdal_options = {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2",
            "GDAL_HTTP_MULTIRANGE": "YES",
            "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
            "GDAL_HTTP_TIMEOUT": str(max(1, round(self.timeout))),
            "GDAL_HTTP_MAX_RETRY": "0",  # we retry ourselves, with our policy and our logging
            "VSI_CACHE": "TRUE",
        }

    def __repr__(self) -> str:
        return f"StacApiSource({self.url!r}, collection={self.collection!r})"

    # -- listing -----------------------------------------------------------------------------
    def _open_client(self) -> Any:
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        with self._lock:
            if self._client is None:
                stac_io = StacApiIO(
                    headers=self.headers, timeout=self.timeout, max_retries=self.retry.urllib3()
                )
                self._client = self._guard(lambda: Client.open(self.url, stac_io=stac_io), what="open")
            return self._client

    def _guard(self, fn: Callable[[], Any], *, what: str) -> Any:
        from pystac_client.exceptions import APIError

        try:
            return fn()
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            transient = (status in TRANSIENT_HTTP_STATUS) if status else is_transient(exc)
            if transient or "retries" in str(exc).lower():
                raise TransientError(
                    f"STAC API {self.url}: {what} failed after {self.retry.attempts} attempts ({exc}); "
                    "the service is overloaded or down, try again later"
                ) from exc
            raise CatalogError(
                f"STAC API {self.url}: {what} failed ({exc}); check the URL and the collection name"
            ) from exc
        except OSError as exc:
            raise TransientError(f"STAC API {self.url}: {what} failed ({exc}); try again later") from exc

    def _tile_conditions(self, tile: str) -> dict[str, Any]:
        t = normalise_tile(tile)
        if self.tile_query == "grid:code":
            return {"grid:code": {"eq": f"MGRS-{t}"}}
        if self.tile_query == "s2:mgrs_tile":
            return {"s2:mgrs_tile": {"eq": t}}
        if self.tile_query == "mgrs":
            return {
                "mgrs:utm_zone": {"eq": int(t[:2])},
                "mgrs:latitude_band": {"eq": t[2]},
                "mgrs:grid_square": {"eq": t[3:]},
            }
        return {}

    def list_acquisitions(
        self,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        bbox: Sequence[float] | None = None,
    ) -> list[Acquisition]:
        """Search the API; acquisitions sorted by time then id.

        Items of other collections or that cannot be parsed are skipped and listed in
        :attr:`problems`.

        Raises
        ------
        TransientError
            The API kept failing with transient errors.
        CatalogError
            The API refused the search (bad URL, collection, query).
        """
        client = self._open_client()
        t0 = as_utc_bound(start, end=False)
        t1 = as_utc_bound(end, end=True)
        when = None
        if t0 or t1:
            when = f"{t0.isoformat() if t0 else '..'}/{t1.isoformat() if t1 else '..'}"
        query = dict(self.query)
        if tile:
            query.update(self._tile_conditions(tile))
        search = client.search(
            collections=[self.collection],
            bbox=list(bbox) if bbox is not None else None,
            datetime=when,
            query=query or None,
            limit=self.limit,
            max_items=self.max_items,
        )
        self.problems = []
        acquisitions: dict[str, Acquisition] = {}

        def collect() -> None:
            for page in search.pages_as_dicts():
                for feature in page.get("features") or []:
                    self._add(feature, acquisitions)

        self._guard(collect, what="search")
        return filter_acquisitions(list(acquisitions.values()), tile=tile, start=start, end=end, bbox=bbox)

    def _add(self, feature: Any, acquisitions: dict[str, Acquisition]) -> None:
        fid = str(feature.get("id", "?")) if isinstance(feature, dict) else "?"
        if not isinstance(feature, dict):
            self.problems.append((fid, "feature is not an object"))
            return
        if feature.get("collection") not in (None, self.collection):
            logger.debug("ignoring %s of collection %s", fid, feature.get("collection"))
            return
        try:
            item = pystac.Item.from_dict(feature, preserve_dict=False)
            acq = acquisition_from_item(item)
        except (S3trError, ValueError, KeyError, TypeError) as exc:
            logger.warning("skipping STAC item %s: %s", fid, exc)
            self.problems.append((fid, str(exc)))
            return
        acquisitions.setdefault(acq.id, acq)

    # -- reading -----------------------------------------------------------------------------
    def _href(self, item: Any, key: str, asset: Any) -> str:
        href = str(asset.get_absolute_href() or asset.href)
        return self.href_modifier(href) if self.href_modifier else href

    def _classify(self, exc: BaseException) -> BaseException:
        if is_transient(exc):
            return TransientError(str(exc))
        return exc

    def _gdal_options_for(self, href: str, attempt: int) -> dict[str, Any]:
        if attempt == 0:
            return self.gdal_options
        # GDAL caches a failed HTTP answer per URL: without this, a retry would replay the failure.
        target = href if href.startswith("/vsi") else f"/vsicurl/{href}"
        return {**self.gdal_options, "CPL_VSIL_CURL_NON_CACHED": target}

    def _call_with_retries(self, fn: Callable[[int], Any], *, item_id: str, asset: str, path: str) -> Any:
        what = f"{item_id}/{asset} ({path})"
        last: TransientError | None = None
        for attempt in range(self.retry.attempts):
            try:
                return fn(attempt)
            except TransientError as exc:
                last = exc
                if attempt + 1 < self.retry.attempts:
                    wait = self.retry.delay(attempt)
                    logger.info("transient failure reading %s (%s); retry in %.2fs", what, exc, wait)
                    time.sleep(wait)
        raise imagery_read_error(
            f"the raster kept failing with transient errors after {self.retry.attempts} attempts",
            item_id=item_id,
            asset=asset,
            path=path,
            hint="the server is overloaded or unreachable; the acquisition will be read on a later run",
            cause=last,
        ) from last

"""Sentinel Hub as an imagery source (``sentinelhub`` package), and its server-side statistics.

- :meth:`SentinelHubSource.list_acquisitions` asks the Catalog API (STAC) for Sentinel-2 L2A scenes;
- :meth:`SentinelHubSource.read` / :meth:`~SentinelHubSource.read_scl` ask the Process API for one
  multi-part response on the requested UTM grid: a float32 GeoTIFF of reflectances and a uint8
  GeoTIFF of the SCL. Sentinel Hub harmonizes baselines >= 04.00 to the older ones (its default
  ``harmonizeValues``), so the reflectances need no offset. To follow the s3tr contract exactly,
  a request including a 10 m band asks for a 10 m raster (20 m bands upsampled NEAREST by the
  service, i.e. duplicated) which is then averaged 2x2 here, NaN if any of the four is nodata;
- :meth:`SentinelHubSource.statistics` asks the Statistical API for per-parcel index statistics
  computed on the service (same SCL mask), for operators who prefer not to download rasters.

Credentials come from the arguments, else the s3tr settings (``S3TR_SENTINELHUB_CLIENT_ID`` /
``S3TR_SENTINELHUB_CLIENT_SECRET``), else sentinelhub's own variables (``SH_CLIENT_ID`` /
``SH_CLIENT_SECRET``). The secret is never shown in a ``repr`` or a log line.

The service retries its own transient failures (5xx, timeouts) with backoff and waits on 429;
what still fails raises :class:`~s3tr.errors.ImageryReadError` for that acquisition (or a failure
row for that parcel) and never stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from s3tr.errors import ConfigError, ImageryReadError, S3trError, TransientError
from s3tr.grid import Grid
from s3tr.imagery._reader import filter_acquisitions
from s3tr.imagery.base import (
    NATIVE_RESOLUTION,
    Acquisition,
    as_utc_bound,
    band_name,
    imagery_read_error,
    item_datetime,
    tile_of,
    to_utc_naive64,
    window_of,
)
from s3tr.imagery.indices import INDICES, bands_for
from s3tr.imagery.masks import DEFAULT_INVALID_SCL

__all__ = ["SentinelHubConfig", "SentinelHubSource", "StatisticsResult"]

logger = logging.getLogger(__name__)


class SentinelHubConfig(BaseModel):
    """Connection settings of a Sentinel Hub deployment (sentinel-hub.com, CDSE's Sentinel Hub...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str | None = Field(None, description="OAuth client id.")
    client_secret: SecretStr | None = Field(None, description="OAuth client secret (never printed).")
    base_url: str = Field("https://services.sentinel-hub.com", description="Root of the Sentinel Hub APIs.")
    token_url: str | None = Field(
        None, description="OAuth token endpoint; default: the base URL's /auth/realms/main/... endpoint."
    )
    max_cloud_cover: float = Field(100.0, ge=0, le=100, description="Skip scenes cloudier than this (%).")
    download_attempts: int = Field(4, ge=1, description="Tries per request (transient errors only).")
    download_sleep_s: float = Field(2.0, ge=0, description="First wait between tries (x3 each time).")
    timeout_s: float = Field(120.0, gt=0, description="Seconds before a request is abandoned.")
    max_threads: int = Field(4, ge=1, description="Parallel requests for statistics.")

    @classmethod
    def from_settings(cls, **overrides: Any) -> SentinelHubConfig:
        """Arguments > s3tr settings (``S3TR_SENTINELHUB_*``) > ``SH_CLIENT_ID``/``SH_CLIENT_SECRET``."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if "client_id" not in values or "client_secret" not in values:
            try:
                from s3tr.settings import get_settings

                settings = get_settings()
                values.setdefault("client_id", settings.sentinelhub_client_id)
                values.setdefault("client_secret", settings.sentinelhub_client_secret)
            except (ImportError, ValueError) as exc:  # settings invalid: fall back to the SH variables
                logger.debug("s3tr settings unavailable: %s", exc)
        if not values.get("client_id"):
            values["client_id"] = os.environ.get("SH_CLIENT_ID")
        if not values.get("client_secret") and os.environ.get("SH_CLIENT_SECRET"):
            values["client_secret"] = SecretStr(os.environ["SH_CLIENT_SECRET"])
        return cls(**values)

    def sh_config(self) -> Any:
        """The ``sentinelhub.SHConfig`` of these settings (raises ConfigError without credentials)."""
        from sentinelhub import SHConfig

        if not self.client_id or self.client_secret is None:
            raise ConfigError(
                "Sentinel Hub credentials missing: set S3TR_SENTINELHUB_CLIENT_ID and "
                "S3TR_SENTINELHUB_CLIENT_SECRET (or SH_CLIENT_ID / SH_CLIENT_SECRET)"
            )
        cfg = SHConfig(use_defaults=True)
        cfg.sh_client_id = self.client_id
        cfg.sh_client_secret = self.client_secret.get_secret_value()
        cfg.sh_base_url = self.base_url.rstrip("/")
        cfg.sh_token_url = self.token_url or (
            f"{self.base_url.rstrip('/')}/auth/realms/main/protocol/openid-connect/token"
        )
        cfg.max_download_attempts = self.download_attempts
        cfg.download_sleep_time = self.download_sleep_s
        cfg.download_timeout_seconds = self.timeout_s
        return cfg


@dataclass
class StatisticsResult:
    """Per-parcel statistics from the Statistical API.

    ``table`` has one row per parcel, date and index: ``parcel_id, date (YYYY-MM-DD), index, mean,
    std, count (valid pixels), valid_fraction``. ``failures`` lists ``(parcel_id, date or "",
    reason)`` for every parcel or interval the service could not compute.
    """

    table: pd.DataFrame
    failures: list[tuple[str, str, str]] = field(default_factory=list)


def _scl_condition(invalid: Iterable[int]) -> str:
    return " || ".join(f"s.SCL == {int(c)}" for c in sorted(set(invalid))) or "false"


class SentinelHubSource:
    """Sentinel-2 L2A from Sentinel Hub (Catalog, Process and Statistical APIs).

    Parameters
    ----------
    config
        Connection settings; default :meth:`SentinelHubConfig.from_settings`.
    collection
        Catalog collection id (``sentinel-2-l2a``).
    """

    def __init__(
        self, config: SentinelHubConfig | None = None, *, collection: str = "sentinel-2-l2a"
    ) -> None:
        self.config = config or SentinelHubConfig.from_settings()
        self.collection = collection
        self.problems: list[tuple[str, str]] = []
        self._sh: Any = None

    def __repr__(self) -> str:
        return f"SentinelHubSource(base_url={self.config.base_url!r}, client_id={self.config.client_id!r})"

    @property
    def sh_config(self) -> Any:
        if self._sh is None:
            self._sh = self.config.sh_config()
        return self._sh

    def _data_collection(self) -> Any:
        """Sentinel-2 L2A bound to the configured deployment (sentinelhub pins it to its main URL)."""
        import hashlib

        from sentinelhub import DataCollection

        base = DataCollection.SENTINEL2_L2A
        url = self.config.base_url.rstrip("/")
        if base.service_url and base.service_url.rstrip("/") == url:
            return base
        name = "S3TR_SENTINEL2_L2A_" + hashlib.sha1(url.encode()).hexdigest()[:12]
        if name in DataCollection.__members__:
            return DataCollection[name]
        return base.define_from(name, service_url=url)

    def _wrap(self, exc: BaseException, what: str) -> S3trError:
        from sentinelhub.exceptions import DownloadFailedException

        response = getattr(getattr(exc, "request_exception", None), "response", None)
        status = getattr(response, "status_code", None)
        detail = ""
        if response is not None:
            try:
                detail = str(response.json())
            except ValueError:
                detail = (response.text or "")[:200]
        transient = status is None or status >= 500 or status == 429
        if isinstance(exc, DownloadFailedException) and not transient:
            return ConfigError(f"Sentinel Hub refused {what} (HTTP {status}: {detail}); check the request")
        return TransientError(f"Sentinel Hub {what} failed ({exc}); try again later")

    # -- listing -----------------------------------------------------------------------------
    def list_acquisitions(
        self,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        bbox: Sequence[float] | None = None,
    ) -> list[Acquisition]:
        """Scenes of the Catalog API over ``bbox`` (WGS84) between ``start`` and ``end``.

        The Catalog API needs a time range and an area: ``start``, ``end`` and ``bbox`` are required
        here. Scenes are grouped by MGRS tile (from the product id); the grid is the tile's 20 m
        grid from ``proj:epsg`` + ``proj:bbox``.
        """
        from sentinelhub import CRS, BBox, SentinelHubCatalog
        from sentinelhub.exceptions import DownloadFailedException

        t0, t1 = as_utc_bound(start, end=False), as_utc_bound(end, end=True)
        if t0 is None or t1 is None or bbox is None:
            raise ValueError("SentinelHubSource.list_acquisitions needs start, end and bbox")
        catalog = SentinelHubCatalog(config=self.sh_config)
        search = catalog.search(
            self.collection,
            bbox=BBox((float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])), crs=CRS.WGS84),
            time=(t0.replace(tzinfo=None), t1.replace(tzinfo=None)),
            filter=f"eo:cloud_cover <= {self.config.max_cloud_cover}",
        )
        self.problems = []
        acquisitions: dict[str, Acquisition] = {}
        try:
            for feature in search:
                try:
                    acq = self._acquisition(feature)
                except (S3trError, ValueError, KeyError, TypeError) as exc:
                    fid = str(feature.get("id", "?")) if isinstance(feature, dict) else "?"
                    logger.warning("skipping Sentinel Hub scene %s: %s", fid, exc)
                    self.problems.append((fid, str(exc)))
                    continue
                acquisitions.setdefault(acq.id, acq)
        except DownloadFailedException as exc:
            raise self._wrap(exc, "catalog search") from exc
        return filter_acquisitions(list(acquisitions.values()), tile=tile, start=start, end=end, bbox=bbox)

    def _acquisition(self, feature: dict[str, Any]) -> Acquisition:
        import pystac

        item = pystac.Item.from_dict(feature, preserve_dict=False)
        props = item.properties
        code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
        pbbox = props.get("proj:bbox")
        if code is None or not pbbox:
            raise ValueError("scene without proj:epsg / proj:bbox: cannot place it on a grid")
        res = 20.0
        x0, y0, x1, y1 = (float(v) for v in pbbox[:4])
        from affine import Affine

        grid = Grid(
            code,
            Affine(res, 0, x0, 0, -res, y1),
            (round((y1 - y0) / res), round((x1 - x0) / res)),
        )
        return Acquisition(id=item.id, tile=tile_of(item), datetime=item_datetime(item), grid=grid, item=item)

    # -- rasters -----------------------------------------------------------------------------
    def _evalscript(self, bands: Sequence[str]) -> str:
        inputs = [*bands, "SCL", "dataMask"]
        units = ", ".join('"REFLECTANCE"' if b in bands else '"DN"' for b in inputs)
        values = ", ".join(f"s.{b}" for b in bands)
        nans = ", ".join("NaN" for _ in bands)
        return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{", ".join(f'"{b}"' for b in inputs)}], units: [{units}]}}],
    output: [
      {{id: "bands", bands: {len(bands)}, sampleType: "FLOAT32"}},
      {{id: "scl", bands: 1, sampleType: "UINT8"}}
    ]
  }};
}}
function evaluatePixel(s) {{
  if (s.dataMask == 0) {{ return {{bands: [{nans}], scl: [0]}}; }}
  return {{bands: [{values}], scl: [s.SCL]}};
}}
"""

    def _fetch(
        self, acquisition: Acquisition, bands: Sequence[str], target: Grid
    ) -> tuple[np.ndarray, np.ndarray]:
        from sentinelhub import CRS, BBox, MimeType, MosaickingOrder, SentinelHubRequest
        from sentinelhub.exceptions import DownloadFailedException

        fine = any(NATIVE_RESOLUTION[b] < 20 for b in bands)
        k = 2 if fine else 1
        h, w = target.shape
        epsg = int(target.crs.split(":")[1]) if target.crs.upper().startswith("EPSG:") else None
        if epsg is None:
            raise ImageryReadError(f"Sentinel Hub needs an EPSG grid, got {target.crs}")
        when = acquisition.datetime.replace(tzinfo=None)
        request = SentinelHubRequest(
            evalscript=self._evalscript(bands),
            input_data=[
                SentinelHubRequest.input_data(
                    data_collection=self._data_collection(),
                    time_interval=(when - timedelta(minutes=5), when + timedelta(minutes=5)),
                    mosaicking_order=MosaickingOrder.MOST_RECENT,
                    other_args={"processing": {"upsampling": "NEAREST", "downsampling": "NEAREST"}},
                )
            ],
            responses=[
                SentinelHubRequest.output_response("bands", MimeType.TIFF),
                SentinelHubRequest.output_response("scl", MimeType.TIFF),
            ],
            bbox=BBox(target.bounds, crs=CRS(epsg)),
            size=(w * k, h * k),
            config=self.sh_config,
        )
        try:
            (data,) = request.get_data()
        except DownloadFailedException as exc:
            err = self._wrap(exc, "process request")
            raise imagery_read_error(
                "Sentinel Hub could not deliver the raster",
                item_id=acquisition.id,
                asset="process:" + "+".join(bands),
                path=self.config.base_url + "/api/v1/process",
                hint=str(err),
                cause=exc,
            ) from exc
        raw_bands = np.asarray(data["bands.tif"], dtype=np.float32)
        if raw_bands.ndim == 2:
            raw_bands = raw_bands[:, :, None]
        scl = np.asarray(data["scl.tif"], dtype=np.uint8)
        if raw_bands.shape[:2] != (h * k, w * k) or scl.shape[:2] != (h * k, w * k):
            raise imagery_read_error(
                f"Sentinel Hub returned {raw_bands.shape[:2]} pixels, {(h * k, w * k)} were asked",
                item_id=acquisition.id,
                asset="process",
                path=self.config.base_url + "/api/v1/process",
                hint="the service changed the output size; check the request",
            )
        if k == 2:
            q = raw_bands.reshape(h, 2, w, 2, -1)
            raw_bands = q.mean(axis=(1, 3))  # NaN if any of the four is nodata
            from s3tr.imagery._reader import block_mode

            blocks = scl.reshape(h, 2, w, 2).transpose(0, 2, 1, 3).reshape(h, w, 4)
            scl = block_mode(blocks)
        return np.moveaxis(raw_bands, -1, 0).astype(np.float32), scl.astype(np.uint8)

    def _target(self, acquisition: Acquisition, grid: Grid | None) -> Grid:
        if grid is None:
            return acquisition.grid
        window_of(acquisition.grid, grid)
        return grid

    def read_with_scl(
        self, acquisition: Acquisition, bands: Sequence[str], *, grid: Grid | None = None
    ) -> tuple[xr.DataArray, np.ndarray]:
        """Reflectances ``(band, y, x)`` float32 (NaN = nodata) and SCL uint8 in one Process request."""
        names = [band_name(b) for b in bands]
        if "SCL" in names or len(set(names)) != len(names):
            raise ValueError(f"bands must be distinct reflectance bands, got {list(bands)}")
        target = self._target(acquisition, grid)
        values, scl = self._fetch(acquisition, names, target)
        x, y = target.xy()
        da = xr.DataArray(
            values,
            dims=("band", "y", "x"),
            coords={"band": names, "y": y, "x": x, "time": to_utc_naive64(acquisition.datetime)},
            attrs={
                "crs": target.crs,
                "transform": tuple(target.transform)[:6],
                "acquisition": acquisition.id,
                "tile": acquisition.tile,
                "units": "1",
                "long_name": "surface reflectance",
            },
            name="reflectance",
        )
        return da, scl

    def read(
        self, acquisition: Acquisition, bands: Sequence[str], *, grid: Grid | None = None
    ) -> xr.DataArray:
        """Surface reflectance on ``grid`` (see :class:`~s3tr.imagery.base.ImagerySource`)."""
        return self.read_with_scl(acquisition, bands, grid=grid)[0]

    def read_scl(self, acquisition: Acquisition, *, grid: Grid | None = None) -> np.ndarray:
        """Scene classification uint8 ``(y, x)`` on ``grid`` (0 = nodata)."""
        target = self._target(acquisition, grid)
        return self._fetch(acquisition, ["B8A"], target)[1]

    # -- server-side statistics --------------------------------------------------------------
    def _stat_evalscript(self, indices: Sequence[str], invalid: Iterable[int]) -> str:
        needed = bands_for(indices)
        outputs = ",\n      ".join(f'{{id: "{n}", bands: 1, sampleType: "FLOAT32"}}' for n in indices)
        exprs = {
            "ndvi": "(s.B8A - s.B04) / (s.B8A + s.B04)",
            "ndmi": "(s.B8A - s.B11) / (s.B8A + s.B11)",
            "ndwi": "(s.B03 - s.B8A) / (s.B03 + s.B8A)",
            "bsi": "((s.B11 + s.B04) - (s.B8A + s.B02)) / ((s.B11 + s.B04) + (s.B8A + s.B02))",
            "evi": "2.5 * (s.B8A - s.B04) / (s.B8A + 6 * s.B04 - 7.5 * s.B02 + 1)",
            "ndre": "(s.B8A - s.B05) / (s.B8A + s.B05)",
            "ndti": "(s.B11 - s.B12) / (s.B11 + s.B12)",
        }
        missing = [n for n in indices if n not in exprs]
        if missing:
            raise ValueError(f"no Sentinel Hub formula for {missing}")
        results = ", ".join(f"{n}: [{exprs[n]}]" for n in indices)
        inputs = ", ".join(f'"{b}"' for b in [*needed, "SCL", "dataMask"])
        return f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{inputs}]}}],
    output: [
      {outputs},
      {{id: "dataMask", bands: 1}}
    ]
  }};
}}
function evaluatePixel(s) {{
  var valid = s.dataMask == 1 && !({_scl_condition(invalid)});
  return {{{results}, dataMask: [valid ? 1 : 0]}};
}}
"""

    def statistics(
        self,
        parcels: Any,
        *,
        start: date | datetime | str,
        end: date | datetime | str,
        indices: Sequence[str] = ("ndvi",),
        id_column: str = "id_parcel",
        resolution: float = 20.0,
        invalid_scl: Iterable[int] = DEFAULT_INVALID_SCL,
    ) -> StatisticsResult:
        """Per-parcel, per-day index statistics computed by the Statistical API.

        Parameters
        ----------
        parcels
            GeoDataFrame of polygons in a projected CRS with an EPSG code (metres), ids in
            ``id_column``.
        start, end
            Inclusive UTC date range.
        indices
            Index names (keys of :data:`~s3tr.imagery.indices.INDICES`).
        resolution
            Pixel size in metres on the service side.
        invalid_scl
            SCL classes masked before the statistics (no dilation on the service side).

        Returns
        -------
        StatisticsResult
            The statistics table and the failures; one failing parcel never stops the others.
        """
        from sentinelhub import CRS, Geometry, SentinelHubStatistical
        from sentinelhub.exceptions import DownloadFailedException

        names = [n.lower() for n in indices]
        for n in names:
            if n not in INDICES:
                raise KeyError(f"unknown index {n!r}; known: {', '.join(INDICES)}")
        epsg = parcels.crs.to_epsg() if parcels.crs is not None else None
        if epsg is None:
            raise ConfigError("parcels need a CRS with an EPSG code for the Statistical API")
        t0, t1 = as_utc_bound(start, end=False), as_utc_bound(end, end=True)
        assert t0 is not None and t1 is not None
        evalscript = self._stat_evalscript(names, invalid_scl)
        rows: list[dict[str, Any]] = []
        failures: list[tuple[str, str, str]] = []

        def one(pid: str, geom: Any) -> tuple[str, Any, BaseException | None]:
            request = SentinelHubStatistical(
                aggregation=SentinelHubStatistical.aggregation(
                    evalscript=evalscript,
                    time_interval=(t0.replace(tzinfo=None), t1.replace(tzinfo=None)),
                    aggregation_interval="P1D",
                    resolution=(resolution, resolution),
                ),
                input_data=[SentinelHubStatistical.input_data(self._data_collection())],
                geometry=Geometry(geom, crs=CRS(epsg)),
                config=self.sh_config,
            )
            try:
                return pid, request.get_data()[0], None
            except (DownloadFailedException, S3trError, ValueError) as exc:
                return pid, None, exc

        from concurrent.futures import ThreadPoolExecutor

        work = [(str(pid), geom) for pid, geom in zip(parcels[id_column], parcels.geometry, strict=True)]
        with ThreadPoolExecutor(max_workers=self.config.max_threads) as pool:
            results = list(pool.map(lambda a: one(*a), work))
        for pid, response, exc in results:
            if exc is not None:
                reason = str(self._wrap(exc, f"statistics of parcel {pid}"))
                logger.warning("statistics of parcel %s failed: %s", pid, reason)
                failures.append((pid, "", reason))
                continue
            if not isinstance(response, dict) or "data" not in response:
                reason = str(response.get("error") if isinstance(response, dict) else response)
                failures.append((pid, "", f"Sentinel Hub error: {reason}"))
                continue
            for entry in response.get("data") or []:
                day = str(entry.get("interval", {}).get("from", ""))[:10]
                if "error" in entry:
                    error = entry["error"]
                    if isinstance(error, dict):
                        error = error.get("type") or error.get("message") or error
                    failures.append((pid, day, f"Sentinel Hub error: {error}"))
                    continue
                outputs = entry.get("outputs") or {}
                for n in names:
                    band = next(iter((outputs.get(n) or {}).get("bands", {}).values()), None)
                    if band is None:
                        failures.append((pid, day, f"no output {n!r} in the response"))
                        continue
                    stats = band["stats"]
                    samples = int(stats.get("sampleCount", 0))
                    count = samples - int(stats.get("noDataCount", 0))
                    mean = stats.get("mean")
                    std = stats.get("stDev")
                    rows.append(
                        {
                            "parcel_id": pid,
                            "date": day,
                            "index": n,
                            "mean": float(mean) if count > 0 and mean is not None else np.nan,
                            "std": float(std) if count > 0 and std is not None else np.nan,
                            "count": count,
                            "valid_fraction": count / samples if samples else 0.0,
                        }
                    )
        table = pd.DataFrame(
            rows, columns=["parcel_id", "date", "index", "mean", "std", "count", "valid_fraction"]
        )
        table["count"] = table["count"].astype("int32")
        return StatisticsResult(table, failures)

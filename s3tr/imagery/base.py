"""What every imagery source agrees on: acquisitions, band names, the reading protocol.

An :class:`Acquisition` is one Sentinel-2 L2A tile on one date (one STAC item). An
:class:`ImagerySource` lists acquisitions and reads their bands as float32 surface reflectance
on the acquisition's 20 m grid. This module also holds the STAC item conventions shared by the
sources that read STAC items (local catalogs, STAC APIs): band name <-> asset key mapping, tile id,
working grid, and the scale/offset rule.

Scale and offset rule
---------------------
Reflectance = DN * scale + offset, decided per asset in this order (see :func:`scale_offset`):

1. the asset declares them: ``raster:bands[i].scale`` / ``.offset`` (raster extension 1.x, Earth
   Search v1, stactools) or ``raster:scale`` / ``raster:offset`` on the asset itself (raster 2.0 /
   STAC 1.1, Copernicus Data Space). A missing member of the pair defaults to scale 1 / offset 0.
   Earth Search's ``earthsearch:boa_offset_applied`` flag is *not* interpreted: its meaning is
   undocumented and varies between scenes; ``raster:bands`` is what we trust.
2. the asset declares neither, but the item is a Sentinel-2 L2A product whose processing baseline
   is known (``s2:processing_baseline``, ``processing:version`` or ``_N0400_`` in the product
   name): the ESA product convention applies, BOA_QUANTIFICATION_VALUE 10000 (scale 1e-4) and
   BOA_ADD_OFFSET -1000 DN (offset -0.1) for baselines >= 04.00, no offset before 04.00. This is the
   Planetary Computer case (no scale/offset metadata at all, baselines 02.12 and 04.00 both occur).
3. neither metadata nor baseline: the values are returned as stored (scale 1, offset 0) and a
   warning is logged, since we cannot know what they mean.

The offset regimes of the real fixtures (``shared/data/stac_fixtures/README.txt``): -0.1 declared
in metadata (Earth Search v1 items 05.09/05.11, the CDSE item, stactools 04.00+), 0 declared
(the Earth Search v1 29RKH item at 02.14), and nothing declared (Planetary Computer 02.12/04.00,
Earth Search v0) -> rule 2.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from affine import Affine
from pyproj import CRS

from s3tr.errors import CatalogError, ImageryReadError, S3trError
from s3tr.grid import Grid

if TYPE_CHECKING:
    import pystac
    import xarray as xr

__all__ = [
    "BAND_NAMES",
    "EARTH_SEARCH_KEYS",
    "NATIVE_RESOLUTION",
    "REFLECTANCE_BANDS",
    "Acquisition",
    "GridMismatchError",
    "ImagerySource",
    "ScaleOffset",
    "acquisition_from_item",
    "band_name",
    "find_asset",
    "imagery_read_error",
    "iter_strips",
    "scale_offset",
    "tile_of",
]

logger = logging.getLogger(__name__)

#: Reflectance bands of Sentinel-2 L2A, in wavelength order (B10 is not in L2A).
REFLECTANCE_BANDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B11",
    "B12",
)
#: Every band name a source understands: the reflectance bands plus the scene classification.
BAND_NAMES: tuple[str, ...] = (*REFLECTANCE_BANDS, "SCL")

#: Earth Search v1 asset keys (common names) -> band names.
EARTH_SEARCH_KEYS: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
_KEY_OF_BAND = {v: k for k, v in EARTH_SEARCH_KEYS.items()}

#: Native resolution of each band in metres (what the product stores at full resolution).
NATIVE_RESOLUTION: dict[str, int] = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B11": 20,
    "B12": 20,
    "SCL": 20,
}

_TEN_M = ("B04", "B08", "B03", "B02")
_TWENTY_M = ("SCL", "B8A", "B11", "B12", "B05", "B06", "B07")
_TILE_RE = re.compile(r"(?:^|_)T?(\d{2}[C-X][A-Z]{2})(?:_|$)")
_BASELINE_RE = re.compile(r"_N(\d{2})(\d{2})_")


class GridMismatchError(S3trError, ValueError):
    """A requested grid is not a window of the acquisition's grid (other CRS, resolution or origin)."""


@dataclass(frozen=True)
class Acquisition:
    """One Sentinel-2 L2A tile-acquisition (one STAC item).

    Parameters
    ----------
    id
        The STAC item id (unique within a source).
    tile
        MGRS tile id without the leading ``T`` (e.g. ``"31TBM"``).
    datetime
        Acquisition time, timezone-aware UTC.
    grid
        The item's 20 m working grid (UTM CRS of the tile).
    item
        The ``pystac.Item`` the acquisition was built from, or None for sources without one.
        Not part of equality or hashing.
    """

    id: str
    tile: str
    datetime: datetime
    grid: Grid
    item: pystac.Item | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.datetime.tzinfo is None:
            raise ValueError(f"Acquisition {self.id!r}: datetime must be timezone-aware (UTC)")
        object.__setattr__(self, "datetime", self.datetime.astimezone(UTC))

    @property
    def date(self) -> date:
        """The UTC calendar date of the acquisition."""
        return self.datetime.date()


@runtime_checkable
class ImagerySource(Protocol):
    """A source of Sentinel-2 L2A acquisitions read on their 20 m grid."""

    def list_acquisitions(
        self,
        *,
        tile: str | None = None,
        start: date | datetime | str | None = None,
        end: date | datetime | str | None = None,
        bbox: Sequence[float] | None = None,
    ) -> list[Acquisition]:
        """The acquisitions matching the filters, sorted by time then id.

        ``start``/``end`` are inclusive (a date ``end`` includes that whole UTC day); ``bbox`` is
        ``(west, south, east, north)`` in WGS84 degrees; ``tile`` is an MGRS id (``"31TBM"`` or
        ``"T31TBM"``).
        """
        ...

    def read(
        self, acquisition: Acquisition, bands: Sequence[str], *, grid: Grid | None = None
    ) -> xr.DataArray:
        """Surface reflectance of ``bands`` on ``grid``.

        Returns a float32 DataArray ``(band, y, x)``, reflectance (unitless, scale and offset
        applied), NaN where nodata, on ``grid`` (default: ``acquisition.grid``, 20 m, the tile's UTM
        CRS); ``grid`` must be a window of ``acquisition.grid`` (same CRS and resolution, origin on
        one of its pixel corners; pixels beyond the rasters read as NaN). Bands stored at 10 m are
        averaged 2x2 (NaN if any of the four is nodata); coarser bands are repeated (nearest).
        """
        ...

    def read_scl(self, acquisition: Acquisition, *, grid: Grid | None = None) -> np.ndarray:
        """The scene classification, uint8 ``(y, x)`` on ``grid`` (0 = nodata)."""
        ...


# --------------------------------------------------------------------------------------------
# Band names and assets


def band_name(name: str) -> str:
    """Canonical band name (``"B04"``, ``"B8A"``, ``"SCL"``) of a band name or asset key.

    Accepts band names in any case (``"b4"``, ``"B04"``, ``"B8A"``), Earth Search asset keys
    (``"red"``, ``"nir08"``, ``"scl"``) and CDSE keys with a resolution suffix (``"B04_10m"``).

    Raises
    ------
    ValueError
        If the name is not a Sentinel-2 L2A band.
    """
    raw = name.strip()
    low = raw.lower()
    if low in EARTH_SEARCH_KEYS:
        return EARTH_SEARCH_KEYS[low]
    low = re.sub(r"_\d+m$", "", low)
    if low == "scl":
        return "SCL"
    m = re.fullmatch(r"b0?(\d{1,2})(a?)", low)
    if m:
        num, a = int(m.group(1)), m.group(2)
        candidate = "B8A" if (num == 8 and a) else f"B{num:02d}"
        if candidate in BAND_NAMES and not (a and num != 8):
            return candidate
    raise ValueError(
        f"unknown Sentinel-2 band {name!r}; use one of {', '.join(BAND_NAMES)} "
        f"or an Earth Search key ({', '.join(EARTH_SEARCH_KEYS)})"
    )


def _asset_bands(asset: Any) -> list[dict[str, Any]]:
    fields = asset.extra_fields
    bands = fields.get("eo:bands") or fields.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def find_asset(item: pystac.Item, band: str) -> tuple[str, Any, int]:
    """The asset holding ``band`` in ``item``: ``(asset key, pystac.Asset, 1-based band index)``.

    Looks for the asset keys used by the main providers, in this order: the band name (``B04``,
    Planetary Computer / Earth Search v0), the Earth Search common-name key (``red``), the CDSE key
    at the band's native resolution then the others (``B04_10m``, ``B04_20m``...); then any
    asset whose ``eo:bands``/``bands`` lists the band by name (multi-band files).

    Raises
    ------
    ImageryReadError
        If no asset holds the band.
    """
    canonical = band_name(band)
    assets = item.assets
    lower = {k.lower(): k for k in assets}
    candidates = [canonical, _KEY_OF_BAND.get(canonical, ""), f"{canonical}_{NATIVE_RESOLUTION[canonical]}m"]
    candidates += [f"{canonical}_{r}m" for r in (10, 20, 60) if r != NATIVE_RESOLUTION[canonical]]
    for cand in candidates:
        if not cand:
            continue
        key = cand if cand in assets else lower.get(cand.lower())
        if key is not None:
            return key, assets[key], _band_index(assets[key], canonical)
    for key, asset in assets.items():
        if key.lower() in ("visual", "tci", "preview", "thumbnail") or key.lower().startswith("tci"):
            continue
        for i, b in enumerate(_asset_bands(asset)):
            name = b.get("name")
            if isinstance(name, str):
                try:
                    if band_name(name) == canonical:
                        return key, asset, i + 1
                except ValueError:
                    continue
    raise imagery_read_error(
        f"item {item.id!r} has no asset for band {canonical}",
        item_id=item.id,
        asset=canonical,
        path=None,
        hint=f"expected an asset keyed {canonical!r} or {_KEY_OF_BAND.get(canonical, canonical)!r}; "
        f"the item has: {', '.join(sorted(assets)) or 'no assets'}",
    )


def _band_index(asset: Any, canonical: str) -> int:
    """1-based index of ``canonical`` in a multi-band asset; 1 for single-band assets."""
    bands = _asset_bands(asset)
    if len(bands) <= 1:
        return 1
    for i, b in enumerate(bands):
        name = b.get("name")
        if isinstance(name, str):
            try:
                if band_name(name) == canonical:
                    return i + 1
            except ValueError:
                continue
    return 1


def imagery_read_error(
    message: str, *, item_id: str, asset: str, path: str | None, hint: str, cause: BaseException | None = None
) -> ImageryReadError:
    """An :class:`~s3tr.errors.ImageryReadError` carrying ``item_id``, ``asset`` and ``path``."""
    where = f" [item {item_id}, asset {asset}" + (f", file {path}]" if path else "]")
    text = f"{message}{where}. Hint: {hint}"
    if cause is not None:
        text += f" (cause: {type(cause).__name__}: {cause})"
    err = ImageryReadError(text)
    err.item_id = item_id  # type: ignore[attr-defined]
    err.asset = asset  # type: ignore[attr-defined]
    err.path = path  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------------------------------------
# Scale / offset


@dataclass(frozen=True)
class ScaleOffset:
    """How to turn stored values into reflectance: ``value * scale + offset``.

    ``rule`` says where the numbers came from: ``"metadata"``, ``"baseline"`` or ``"none"``.
    ``nodata`` is the stored nodata value, or None.
    """

    scale: float
    offset: float
    rule: str
    nodata: float | None = None


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """The Sentinel-2 processing baseline ``(major, minor)`` of an item, or None if unknown."""
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version"):
        value = props.get(key)
        if isinstance(value, str | float | int):
            m = re.fullmatch(r"\s*(\d{1,2})\.(\d{1,2})\s*", str(value))
            if m:
                return int(m.group(1)), int(m.group(2))
    for text in (props.get("s2:product_uri"), item.id):
        if isinstance(text, str):
            m = _BASELINE_RE.search(text)
            if m:
                return int(m.group(1)), int(m.group(2))
    return None


def scale_offset(
    item: pystac.Item, asset: Any, band_index: int = 1, *, categorical: bool = False
) -> ScaleOffset:
    """Scale, offset and nodata of one band of an asset, by the rule in the module docstring.

    With ``categorical=True`` (SCL) only the nodata is looked up: scale 1, offset 0, rule
    ``"categorical"``.
    """
    fields = asset.extra_fields
    scale = offset = nodata = None
    rbands = fields.get("raster:bands")
    if isinstance(rbands, list) and len(rbands) >= band_index and isinstance(rbands[band_index - 1], dict):
        rb = rbands[band_index - 1]
        scale, offset, nodata = rb.get("scale"), rb.get("offset"), rb.get("nodata")
    scale = fields.get("raster:scale", scale)
    offset = fields.get("raster:offset", offset)
    if nodata is None:
        nodata = fields.get("nodata", fields.get("raster:nodata"))
    if nodata is None:
        bands = _asset_bands(asset)
        if len(bands) >= band_index:
            nodata = bands[band_index - 1].get("nodata")
    nodata_f = _as_nodata(nodata)
    if categorical:
        return ScaleOffset(1.0, 0.0, "categorical", nodata_f)
    if scale is not None or offset is not None:
        return ScaleOffset(
            float(scale if scale is not None else 1.0),
            float(offset if offset is not None else 0.0),
            "metadata",
            nodata_f,
        )
    baseline = processing_baseline(item)
    if baseline is not None:
        off = -0.1 if baseline >= (4, 0) else 0.0
        # ESA's own product convention (BOA_QUANTIFICATION_VALUE, BOA_ADD_OFFSET), used only when
        # the catalog does not say; L2A reflectance nodata is 0 in every distribution.
        return ScaleOffset(1e-4, off, "baseline", 0.0 if nodata_f is None else nodata_f)
    if item.id not in _WARNED_AS_STORED:
        if len(_WARNED_AS_STORED) < 10_000:
            _WARNED_AS_STORED.add(item.id)
        logger.warning(
            "item %s: no raster:bands scale/offset and no processing baseline; values read as stored", item.id
        )
    return ScaleOffset(1.0, 0.0, "none", nodata_f)


_WARNED_AS_STORED: set[str] = set()


def _as_nodata(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        low = value.lower()
        if low == "nan":
            return float("nan")
        if low in ("inf", "+inf"):
            return float("inf")
        if low == "-inf":
            return float("-inf")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Tile id, datetime, grid


def tile_of(item: pystac.Item) -> str:
    """The MGRS tile id of an item (``"31TBM"``), from its properties or, failing that, its id.

    Raises
    ------
    CatalogError
        If no tile id can be found.
    """
    p = item.properties
    zone, band, square = p.get("mgrs:utm_zone"), p.get("mgrs:latitude_band"), p.get("mgrs:grid_square")
    if zone is not None and band and square:
        return f"{int(zone):02d}{band}{square}".upper()
    for key in ("s2:mgrs_tile", "grid:code", "s2:tile_id", "tile"):
        value = p.get(key)
        if isinstance(value, str):
            m = re.search(r"(\d{2}[C-X][A-Z]{2})", value.upper().replace("MGRS-", ""))
            if m:
                return m.group(1)
    m = _TILE_RE.search(item.id.upper())
    if m:
        return m.group(1)
    raise CatalogError(
        f"item {item.id!r}: no MGRS tile id (looked at mgrs:*, s2:mgrs_tile, grid:code and the item id); "
        "add 'grid:code': 'MGRS-31TBM' (for example) to its properties"
    )


def item_datetime(item: pystac.Item) -> datetime:
    """The item's acquisition time as an aware UTC datetime (``datetime`` or ``start_datetime``)."""
    dt = item.datetime
    if dt is None:
        start = item.properties.get("start_datetime")
        if not start:
            raise CatalogError(f"item {item.id!r} has neither datetime nor start_datetime")
        dt = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _asset_crs(item: pystac.Item, asset: Any) -> str | None:
    for fields in (asset.extra_fields, item.properties):
        epsg = fields.get("proj:epsg")
        if epsg is not None:
            return f"EPSG:{int(epsg)}"
        code = fields.get("proj:code")
        if isinstance(code, str) and code:
            return code
        wkt = fields.get("proj:wkt2")
        if isinstance(wkt, str) and wkt:
            return CRS.from_wkt(wkt).to_string()
    return None


def asset_grid(item: pystac.Item, asset: Any) -> Grid | None:
    """The grid an asset declares through the ``proj`` extension, or None if it declares none."""
    fields = asset.extra_fields
    tr = fields.get("proj:transform", item.properties.get("proj:transform"))
    if not tr or len(tr) < 6:
        return None
    crs = _asset_crs(item, asset)
    if crs is None:
        return None
    transform = Affine(*[float(v) for v in tr[:6]])
    shape = fields.get("proj:shape", item.properties.get("proj:shape"))
    if not shape:
        bbox = fields.get("proj:bbox", item.properties.get("proj:bbox"))
        if not bbox:
            return None
        shape = (
            round((bbox[3] - bbox[1]) / abs(transform.e)),
            round((bbox[2] - bbox[0]) / abs(transform.a)),
        )
    return Grid(crs, transform, (int(shape[0]), int(shape[1])))


def working_grid(item: pystac.Item, header_grid: Any = None) -> Grid:
    """The 20 m working grid of an item.

    The grid of a 20 m band (or SCL) when its pixels are twice those of the 10 m bands, else the
    10 m bands' grid coarsened 2x2; else whatever 20 m asset exists. Asset grids come from the
    ``proj`` metadata; ``header_grid(key, asset)`` (a source's way to read a file's header) is used
    for assets without it.

    Raises
    ------
    CatalogError
        If no grid can be determined.
    """

    def grid_for(bands: Sequence[str]) -> Grid | None:
        for b in bands:
            try:
                key, asset, _ = find_asset(item, b)
            except ImageryReadError:
                continue
            g = asset_grid(item, asset)
            if g is None and header_grid is not None:
                g = header_grid(key, asset)
            if g is not None:
                return g
        return None

    g10 = grid_for(_TEN_M)
    g20 = grid_for(_TWENTY_M)
    if g10 is not None and g20 is not None and np.isclose(g20.resolution, 2 * g10.resolution):
        return g20
    if g10 is not None:
        return g10.coarsen(2)
    if g20 is not None:
        return g20
    raise CatalogError(
        f"item {item.id!r}: cannot determine its grid (no proj:transform/proj:shape on the band assets "
        "and no readable band file); add the proj extension fields to the assets"
    )


def acquisition_from_item(item: pystac.Item, header_grid: Any = None) -> Acquisition:
    """Build the :class:`Acquisition` of a STAC item (tile, UTC time, working grid)."""
    return Acquisition(
        id=item.id,
        tile=tile_of(item),
        datetime=item_datetime(item),
        grid=working_grid(item, header_grid),
        item=item,
    )


# --------------------------------------------------------------------------------------------
# Filters and grid helpers


def normalise_tile(tile: str) -> str:
    """``"T31TBM"``/``"31tbm"``/``"MGRS-31TBM"`` -> ``"31TBM"``."""
    t = tile.strip().upper().replace("MGRS-", "")
    return t[1:] if t.startswith("T") and len(t) == 6 else t


def as_utc_bound(value: date | datetime | str | None, *, end: bool) -> datetime | None:
    """A filter bound as an aware UTC datetime; a plain date as ``end`` means the end of that day."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            value = date.fromisoformat(text)
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.combine(value, time.max if end else time.min, tzinfo=UTC)


def bbox_intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether two ``(west, south, east, north)`` boxes intersect (edges touching count)."""
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def window_of(parent: Grid, child: Grid) -> tuple[int, int]:
    """``(row_off, col_off)`` of ``child`` inside ``parent``; raises if not aligned to it."""
    if CRS.from_user_input(parent.crs) != CRS.from_user_input(child.crs):
        raise GridMismatchError(f"grid CRS {child.crs} differs from the acquisition's {parent.crs}")
    pt, ct = parent.transform, child.transform
    if not (np.isclose(pt.a, ct.a) and np.isclose(pt.e, ct.e) and pt.b == ct.b == 0 and pt.d == ct.d == 0):
        raise GridMismatchError(
            f"grid resolution {ct.a, ct.e} differs from the acquisition's {pt.a, pt.e}; "
            "build the grid with acquisition.grid.window(...)"
        )
    col = (ct.c - pt.c) / pt.a
    row = (ct.f - pt.f) / pt.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        raise GridMismatchError(
            f"grid origin ({ct.c}, {ct.f}) is not on a pixel corner of the acquisition grid; "
            "build the grid with acquisition.grid.window(...)"
        )
    return round(row), round(col)


def iter_strips(grid: Grid, rows: int = 512) -> Iterator[Grid]:
    """Split ``grid`` into full-width strips of ``rows`` rows (the last may be shorter).

    With the default 512 rows a strip of a 20 m grid matches the 512-pixel blocks of the 20 m
    COGs of Earth Search and of the demo archive, and 1024-row blocks of the 10 m bands, so a
    reader working strip by strip decodes each block once.
    """
    if rows < 1:
        raise ValueError("rows must be >= 1")
    h, w = grid.shape
    for r0 in range(0, h, rows):
        yield grid.window(r0, 0, min(rows, h - r0), w)


def to_utc_naive64(dt: datetime) -> np.datetime64:
    """A UTC datetime as a naive ``numpy.datetime64[ns]`` (xarray's time convention)."""
    return np.datetime64(dt.astimezone(UTC).replace(tzinfo=None), "ns")

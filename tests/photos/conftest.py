"""Real JPEG photos built with Pillow, with real EXIF written through ``PIL.Image.Exif``.

The parcel is a 200 m x 150 m field just west of Poitiers (Vienne, UTM zone 31N), built in
metres and turned into WGS84 so the distances the tests use are exact.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image
from pyproj import Transformer
from shapely.geometry import Polygon

from s3tr.photos import decimal_to_dms

CENTER_LON, CENTER_LAT = 0.3100, 46.5800
PARIS_SUMMER = timezone(timedelta(hours=2))
REQUESTED_AT = datetime(2024, 6, 10, 9, 0, tzinfo=PARIS_SUMMER)
DEADLINE = datetime(2024, 6, 20, 23, 59, tzinfo=PARIS_SUMMER)
NOW = datetime(2024, 6, 13, 10, 0, tzinfo=UTC)

_TO_UTM = Transformer.from_crs(4326, 32631, always_xy=True)
_TO_WGS = Transformer.from_crs(32631, 4326, always_xy=True)


def offset_position(dx_m: float, dy_m: float) -> tuple[float, float]:
    """(lon, lat) of the point dx metres east and dy metres north of the parcel centre (UTM grid)."""
    x0, y0 = _TO_UTM.transform(CENTER_LON, CENTER_LAT)
    return _TO_WGS.transform(x0 + dx_m, y0 + dy_m)


def _parcel() -> Polygon:
    corners = [(-100, -75), (100, -75), (100, 75), (-100, 75)]
    return Polygon([offset_position(dx, dy) for dx, dy in corners])


PARCEL = _parcel()


def field_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A smooth, seeded 'landscape': low-frequency colour noise, like a field under the sky."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(coarse, "RGB").resize(size, Image.Resampling.BICUBIC)
    # Some finer texture, as crops have, that JPEG re-encoding alters a little.
    fine = rng.normal(0, 6, size=(size[1], size[0], 3))
    arr = np.clip(np.asarray(img, dtype=np.float64) + fine, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def make_exif(
    *,
    lon: float | None = CENTER_LON,
    lat: float | None = CENTER_LAT,
    heading: float | None = None,
    heading_ref: str = "T",
    taken: str | None = "2024:06:12 14:03:00",
    offset: str | None = "+02:00",
    gps_time: tuple[str, tuple[float, float, float]] | None = None,
    accuracy_m: float | None = 4.0,
    altitude_m: float | None = 118.0,
    make: str = "Fairphone",
    model: str = "FP5",
    extra_gps: dict[int, Any] | None = None,
) -> Image.Exif:
    """EXIF as a phone camera writes it: IFD0, the Exif IFD and the GPS IFD."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    exif[ExifTags.Base.Software] = "s3tr-tests"
    exif[ExifTags.Base.Orientation] = 1
    ifd = exif.get_ifd(ExifTags.IFD.Exif)
    if taken is not None:
        ifd[ExifTags.Base.DateTimeOriginal] = taken
    if offset is not None:
        ifd[ExifTags.Base.OffsetTimeOriginal] = offset
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    if lat is not None and lon is not None:
        d, m, s, ref = decimal_to_dms(lat, axis="lat")
        gps[ExifTags.GPS.GPSLatitudeRef] = ref
        gps[ExifTags.GPS.GPSLatitude] = (float(d), float(m), s)
        d, m, s, ref = decimal_to_dms(lon, axis="lon")
        gps[ExifTags.GPS.GPSLongitudeRef] = ref
        gps[ExifTags.GPS.GPSLongitude] = (float(d), float(m), s)
        gps[ExifTags.GPS.GPSMapDatum] = "WGS-84"
        gps[ExifTags.GPS.GPSProcessingMethod] = b"ASCII\x00\x00\x00GPS"
    if altitude_m is not None:
        gps[ExifTags.GPS.GPSAltitudeRef] = b"\x00"
        gps[ExifTags.GPS.GPSAltitude] = altitude_m
    if accuracy_m is not None:
        gps[ExifTags.GPS.GPSHPositioningError] = accuracy_m
    if heading is not None:
        gps[ExifTags.GPS.GPSImgDirectionRef] = heading_ref
        gps[ExifTags.GPS.GPSImgDirection] = heading
    if gps_time is not None:
        gps[ExifTags.GPS.GPSDateStamp] = gps_time[0]
        gps[ExifTags.GPS.GPSTimeStamp] = gps_time[1]
    for tag, value in (extra_gps or {}).items():
        gps[tag] = value
    return exif


def make_jpeg(
    *,
    seed: int = 0,
    size: tuple[int, int] = (640, 480),
    exif: Image.Exif | bool | None = True,
    quality: int = 90,
    progressive: bool = False,
    **exif_args: Any,
) -> bytes:
    """A real JPEG photo; ``exif=True`` builds EXIF from ``exif_args``, ``None``/``False`` leaves it out."""
    img = field_image(seed, size)
    buf = io.BytesIO()
    options: dict[str, Any] = {"quality": quality, "progressive": progressive}
    if exif is True:
        exif = make_exif(**exif_args)
    if isinstance(exif, Image.Exif):
        options["exif"] = exif
    img.save(buf, "JPEG", **options)
    return buf.getvalue()


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """Builders and the request of the scene (tests import nothing from conftest directly)."""
    return SimpleNamespace(
        parcel=PARCEL,
        center=(CENTER_LON, CENTER_LAT),
        offset_position=offset_position,
        field_image=field_image,
        make_exif=make_exif,
        make_jpeg=make_jpeg,
        requested_at=REQUESTED_AT,
        deadline=DEADLINE,
        now=NOW,
    )


@pytest.fixture(scope="session")
def good_photo() -> bytes:
    """A photo taken inside the parcel, at the right time, facing north into the parcel."""
    return make_jpeg(heading=10.0, lon=offset_position(0, -60)[0], lat=offset_position(0, -60)[1])

"""Named checks of a geotagged photo against its request, in the farmer's own words.

Each check returns a :class:`CheckResult` with ``passed`` ``True``, ``False`` or ``None``
(could not be checked, e.g. no GPS position to test the heading from), a French and an
English message written for the farmer, and JSON-ready ``details`` for the instructor.

Distances and directions are computed in the local UTM zone of the parcel (pyproj), where
metres are metres; compass headings (true north) are turned into grid bearings with the
grid convergence at the photo's position, measured numerically rather than by formula.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import LineString, Point, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from s3tr.errors import ParcelGeometryError, S3trError
from s3tr.photos.exif import PhotoInfo, phash_distance

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "PhotoCheckInputError",
    "angular_difference_deg",
    "check_photo",
    "grid_bearing_deg",
]

logger = logging.getLogger(__name__)

CHECK_NAMES = (
    "exif_present",
    "gps_present",
    "position",
    "capture_time",
    "heading",
    "not_duplicate",
    "coordinates_plausible",
)

_GEOD = Geod(ellps="WGS84")
# Beyond this, a photo is simply "far": distances come from the ellipsoid, not the UTM zone.
_FAR_M = 100_000.0
_SECTOR_STEPS = 24

_COMPASS_FR = ("nord", "nord-est", "est", "sud-est", "sud", "sud-ouest", "ouest", "nord-ouest")
_COMPASS_EN = ("north", "north-east", "east", "south-east", "south", "south-west", "west", "north-west")


class PhotoCheckInputError(S3trError, ValueError):
    """The request side of a photo check is invalid (naive datetimes, bad target point...)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one named check.

    Attributes
    ----------
    name : str
        One of :data:`CHECK_NAMES`.
    passed : bool or None
        ``None`` when the check could not be made (missing data it depends on).
    message_fr, message_en : str
        Plain-language explanation for the farmer.
    details : dict
        Figures behind the outcome (metres, degrees, ISO times), JSON-serialisable.
    """

    name: str
    passed: bool | None
    message_fr: str
    message_en: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# --------------------------------------------------------------------------- maths


def angular_difference_deg(a: float, b: float) -> float:
    """Smallest angle between two directions, degrees in [0, 180]."""
    diff = abs((a - b) % 360.0)
    return min(diff, 360.0 - diff)


def grid_bearing_deg(dx: float, dy: float) -> float:
    """Bearing of the vector (dx east, dy north) in a metric CRS, degrees clockwise from north in [0, 360)."""
    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
    return 0.0 if bearing >= 360.0 else bearing


def _utm_epsg(lon: float, lat: float) -> int:
    zone = min(max(int((lon + 180.0) // 6.0) + 1, 1), 60)
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=16)
def _to_utm(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


class _Frame:
    """The parcel in its local UTM zone, with helpers to place photo positions in it."""

    def __init__(self, parcel_wgs84: BaseGeometry) -> None:
        self.parcel_wgs84 = parcel_wgs84
        centroid = parcel_wgs84.centroid
        self.center = (centroid.x, centroid.y)
        self.epsg = _utm_epsg(*self.center)
        self.tr = _to_utm(self.epsg)
        self.parcel = shapely.transform(parcel_wgs84, self._xy_array)

    def _xy_array(self, coords: np.ndarray) -> np.ndarray:
        x, y = self.tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def xy(self, lon: float, lat: float) -> tuple[float, float] | None:
        """UTM coordinates of a position, or None when it is too far for the zone to mean anything."""
        _, _, dist = _GEOD.inv(self.center[0], self.center[1], lon, lat)
        if not math.isfinite(dist) or dist > _FAR_M:
            return None
        x, y = self.tr.transform(lon, lat)
        return (x, y) if math.isfinite(x) and math.isfinite(y) else None

    def distance_to_parcel(self, lon: float, lat: float) -> float:
        """Metres from the position to the parcel (0 inside)."""
        p = self.xy(lon, lat)
        if p is None:
            # Far away: the distance to the centroid on the ellipsoid is plenty for a message.
            return float(_GEOD.inv(self.center[0], self.center[1], lon, lat)[2])
        return float(self.parcel.distance(Point(p)))

    def distance_between(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        """Metres between two (lon, lat) positions on the ellipsoid."""
        return float(_GEOD.inv(a[0], a[1], b[0], b[1])[2])

    def grid_north(self, lon: float, lat: float) -> float:
        """Grid bearing of true north at a position (the grid convergence), degrees in (-180, 180]."""
        x0, y0 = self.tr.transform(lon, lat)
        x1, y1 = self.tr.transform(lon, min(lat + 1e-4, 90.0))
        bearing = grid_bearing_deg(x1 - x0, y1 - y0)
        return bearing - 360.0 if bearing > 180.0 else bearing


# --------------------------------------------------------------------------- formatting


def _fmt_m(metres: float, lang: str) -> str:
    if metres >= 1000:
        km = f"{metres / 1000:.1f}"
        return (km.replace(".", ",") if lang == "fr" else km) + " km"
    return f"{metres:.0f} m"


def _compass(bearing: float, lang: str) -> str:
    index = int(((bearing % 360.0) + 22.5) // 45.0) % 8
    return (_COMPASS_FR if lang == "fr" else _COMPASS_EN)[index]


def _fmt_time(moment: datetime, tz: ZoneInfo, lang: str) -> str:
    local = moment.astimezone(tz)
    return local.strftime("%d/%m/%Y à %H:%M") if lang == "fr" else local.strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- inputs


def _parcel(geometry: Any) -> BaseGeometry:
    geom = geometry if isinstance(geometry, BaseGeometry) else None
    if geom is None:
        try:
            geom = shape(geometry)  # a GeoJSON mapping or any __geo_interface__ object
        except Exception as exc:  # shapely raises several types on bad GeoJSON
            raise ParcelGeometryError(
                f"parcel geometry is not a shapely geometry nor GeoJSON: {exc}; pass the parcel "
                "outline in WGS84 (lon, lat)"
            ) from exc
    if geom.is_empty:
        raise ParcelGeometryError("parcel geometry is empty; pass the parcel outline in WGS84 (lon, lat)")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    polygons = [
        g for g in getattr(geom, "geoms", [geom]) if isinstance(g, Polygon) or g.geom_type == "MultiPolygon"
    ]
    geom = shapely.union_all(polygons) if polygons else geom
    if geom.is_empty or geom.area == 0:
        raise ParcelGeometryError(
            f"parcel geometry has no area ({geometry!r:.80}); pass a polygon in WGS84 (lon, lat)"
        )
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ParcelGeometryError(
            f"parcel bounds {geom.bounds} are not longitudes/latitudes; reproject the parcel to "
            "WGS84 (EPSG:4326, x = lon, y = lat) before checking photos"
        )
    return geom


def _aware(name: str, value: Any, tz: ZoneInfo, *, end_of_day: bool = False) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PhotoCheckInputError(f"{name}={value!r} has no time zone; pass an aware datetime")
        return value
    if isinstance(value, date):
        # A date deadline (as photo requests store it) lasts to the end of that day, local time.
        moment = time.max if end_of_day else time.min
        return datetime.combine(value, moment, tzinfo=tz)
    raise PhotoCheckInputError(f"{name}={value!r} is not a datetime")


def _target(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        lon, lat = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise PhotoCheckInputError(f"target_point={value!r} must be (lon, lat) in degrees") from exc
    if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180 and abs(lat) <= 90):
        raise PhotoCheckInputError(
            f"target_point={value!r} is out of range; pass (lon, lat) in WGS84 degrees"
        )
    return lon, lat


# --------------------------------------------------------------------------- checks


def _no_exif(name: str) -> CheckResult:
    return CheckResult(
        name,
        None,
        "Non vérifiable : la photo ne contient pas de métadonnées (EXIF).",
        "Could not be checked: the photo has no metadata (EXIF).",
        {"reason": "no_exif"},
    )


def _check_exif(info: PhotoInfo) -> CheckResult:
    if not info.has_exif:
        return CheckResult(
            "exif_present",
            False,
            "La photo ne contient pas ses métadonnées (EXIF : date, position). Envoyez la photo prise "
            "directement avec l'appareil, pas une copie passée par une messagerie ou un réseau social.",
            "The photo carries no metadata (EXIF: date, position). Send the photo straight from the "
            "camera, not a copy that went through a messaging app or social network.",
            {"has_exif": False},
        )
    found = {
        "capture_time": info.captured_at is not None,
        "gps": info.has_position or info.gps_issue is not None,
        "heading": info.heading_deg is not None,
        "camera": info.camera_make is not None or info.camera_model is not None,
    }
    details: dict[str, Any] = {"has_exif": True, "found": found, "software": info.software}
    if not found["capture_time"]:
        return CheckResult(
            "exif_present",
            False,
            "Les métadonnées de la photo (EXIF) ne contiennent pas la date de prise de vue. Envoyez la "
            "photo d'origine prise avec l'appareil.",
            "The photo's metadata (EXIF) has no capture date. Send the original photo from the camera.",
            details,
        )
    return CheckResult(
        "exif_present",
        True,
        "Les métadonnées de la photo (EXIF) sont présentes.",
        "The photo's metadata (EXIF) is present.",
        details,
    )


_GPS_ISSUES = {
    "out_of_range": (
        "des coordonnées impossibles (hors des limites)",
        "impossible coordinates (out of range)",
    ),
    "null_island": ("la position 0, 0 (le téléphone n'avait pas de position)", "position 0, 0 (no fix)"),
    "malformed": ("une position illisible", "an unreadable position"),
}


def _check_gps(info: PhotoInfo) -> CheckResult:
    if not info.has_exif:
        return _no_exif("gps_present")
    if info.has_position:
        details = {"lat": info.lat, "lon": info.lon, "gps_accuracy_m": info.gps_accuracy_m}
        return CheckResult(
            "gps_present",
            True,
            "La position GPS de la photo est enregistrée.",
            "The photo's GPS position is recorded.",
            details,
        )
    if info.gps_issue is not None:
        fr, en = _GPS_ISSUES.get(info.gps_issue, _GPS_ISSUES["malformed"])
        return CheckResult(
            "gps_present",
            False,
            f"La photo contient {fr}. Activez la localisation du téléphone, attendez qu'elle soit "
            "précise, puis reprenez la photo.",
            f"The photo carries {en}. Turn on the phone's location, wait for a precise fix, then take "
            "the photo again.",
            {"gps_issue": info.gps_issue},
        )
    return CheckResult(
        "gps_present",
        False,
        "La photo ne contient pas de position GPS. Activez la localisation pour l'appareil photo, "
        "puis reprenez la photo.",
        "The photo has no GPS position. Turn on location for the camera, then take the photo again.",
        {"gps_issue": None},
    )


@dataclass(slots=True)
class _Placement:
    distance_parcel_m: float
    distance_target_m: float | None
    ok: bool


def _place(
    frame: _Frame,
    lon: float,
    lat: float,
    target: tuple[float, float] | None,
    *,
    buffer_m: float,
    near_target_m: float,
) -> _Placement:
    d_parcel = frame.distance_to_parcel(lon, lat)
    d_target = frame.distance_between((lon, lat), target) if target is not None else None
    ok = d_parcel <= buffer_m or (d_target is not None and d_target <= near_target_m)
    return _Placement(d_parcel, d_target, ok)


def _check_position(
    info: PhotoInfo,
    placement: _Placement | None,
    *,
    buffer_m: float,
    near_target_m: float,
) -> CheckResult:
    if not info.has_exif:
        return _no_exif("position")
    if placement is None:
        return CheckResult(
            "position",
            None,
            "Non vérifiable : la photo n'a pas de position GPS.",
            "Could not be checked: the photo has no GPS position.",
            {"reason": "no_position"},
        )
    d_p, d_t = placement.distance_parcel_m, placement.distance_target_m
    details: dict[str, Any] = {
        "distance_to_parcel_m": round(d_p, 1),
        "distance_to_target_m": None if d_t is None else round(d_t, 1),
        "inside_parcel": d_p == 0.0,
        "buffer_m": buffer_m,
        "near_target_m": near_target_m,
        "gps_accuracy_m": info.gps_accuracy_m,
    }
    if placement.ok:
        if d_p == 0.0:
            fr, en = "La photo a été prise dans la parcelle.", "The photo was taken inside the parcel."
        elif d_p <= buffer_m:
            fr = (
                f"La photo a été prise à {_fmt_m(d_p, 'fr')} de la parcelle, "
                f"dans la tolérance de {buffer_m:.0f} m."
            )
            en = (
                f"The photo was taken {_fmt_m(d_p, 'en')} from the parcel, "
                f"within the {buffer_m:.0f} m allowed."
            )
        else:
            assert d_t is not None  # ok without the buffer means near the target
            fr = f"La photo a été prise à {_fmt_m(d_t, 'fr')} du point demandé."
            en = f"The photo was taken {_fmt_m(d_t, 'en')} from the requested spot."
        return CheckResult("position", True, fr, en, details)
    fr = f"La photo a été prise à {_fmt_m(d_p, 'fr')} de la parcelle (au plus {buffer_m:.0f} m acceptés)"
    en = f"The photo was taken {_fmt_m(d_p, 'en')} from the parcel (at most {buffer_m:.0f} m allowed)"
    if d_t is not None:
        fr += f" et à {_fmt_m(d_t, 'fr')} du point demandé (au plus {near_target_m:.0f} m)"
        en += f" and {_fmt_m(d_t, 'en')} from the requested spot (at most {near_target_m:.0f} m)"
    fr += ". Reprenez la photo depuis la parcelle ou près du point indiqué sur la carte."
    en += ". Take the photo again from the parcel or near the spot shown on the map."
    return CheckResult("position", False, fr, en, details)


def _check_plausible(
    info: PhotoInfo,
    frame: _Frame,
    placement: _Placement | None,
    target: tuple[float, float] | None,
    *,
    buffer_m: float,
    near_target_m: float,
) -> CheckResult:
    name = "coordinates_plausible"
    if not info.has_exif:
        return _no_exif(name)
    if info.gps_issue in {"out_of_range", "null_island"}:
        declared = {k: info.device_declared.get(f"gps_declared_{k}") for k in ("lat", "lon")}
        return CheckResult(
            name,
            False,
            "Les coordonnées GPS de la photo sont impossibles (hors limites ou 0, 0). Reprenez la photo "
            "une fois la position du téléphone trouvée.",
            "The photo's GPS coordinates are impossible (out of range or 0, 0). Take the photo again "
            "once the phone has found its position.",
            {"gps_issue": info.gps_issue, **declared},
        )
    if placement is None or info.lat is None or info.lon is None:
        return CheckResult(
            name,
            None,
            "Non vérifiable : la photo n'a pas de position GPS.",
            "Could not be checked: the photo has no GPS position.",
            {"reason": "no_position"},
        )
    lat, lon = info.lat, info.lon
    if placement.ok:
        return CheckResult(
            name,
            True,
            "Les coordonnées GPS de la photo sont cohérentes.",
            "The photo's GPS coordinates are consistent.",
            {"lat": lat, "lon": lon},
        )
    # Misreadings a device or an app can make, tried in turn: which one lands on the parcel?
    candidates: list[tuple[str, float, float, str, str]] = []
    if abs(lon) <= 90:
        candidates.append(
            (
                "swapped",
                lat,
                lon,
                "la latitude et la longitude semblent inversées",
                "latitude and longitude look swapped",
            )
        )
    candidates.append(
        (
            "longitude_sign",
            -lon,
            lat,
            "le signe Est/Ouest de la longitude semble faux",
            "the East/West sign of the longitude looks wrong",
        )
    )
    candidates.append(
        (
            "latitude_sign",
            lon,
            -lat,
            "le signe Nord/Sud de la latitude semble faux",
            "the North/South sign of the latitude looks wrong",
        )
    )
    for kind, alt_lon, alt_lat, fr, en in candidates:
        if alt_lon == lon and alt_lat == lat:
            continue
        alt = _place(frame, alt_lon, alt_lat, target, buffer_m=buffer_m, near_target_m=near_target_m)
        if alt.ok:
            return CheckResult(
                name,
                False,
                f"Les coordonnées GPS de la photo sont incohérentes : {fr} (corrigées, elles tombent "
                "sur la parcelle). L'application ou le téléphone enregistre mal la position : "
                "contactez votre DDT(M).",
                f"The photo's GPS coordinates are inconsistent: {en} (corrected, they fall on the "
                "parcel). The app or phone records the position wrongly: contact your DDT(M).",
                {
                    "problem": kind,
                    "lat": lat,
                    "lon": lon,
                    "corrected_lat": alt_lat,
                    "corrected_lon": alt_lon,
                    "corrected_distance_to_parcel_m": round(alt.distance_parcel_m, 1),
                },
            )
    return CheckResult(
        name,
        True,
        "Les coordonnées GPS ont une forme normale (la position est jugée à part).",
        "The GPS coordinates look well formed (the position is judged separately).",
        {"lat": lat, "lon": lon},
    )


def _check_time(
    info: PhotoInfo,
    *,
    requested_at: datetime,
    deadline: datetime,
    now: datetime,
    clock_skew_s: float,
    tz: ZoneInfo,
) -> CheckResult:
    name = "capture_time"
    if not info.has_exif:
        return _no_exif(name)
    if info.captured_at is None:
        return CheckResult(
            name,
            None,
            "Non vérifiable : la photo ne contient pas sa date de prise de vue.",
            "Could not be checked: the photo does not record when it was taken.",
            {"reason": "no_capture_time"},
        )
    taken = info.captured_at
    details: dict[str, Any] = {
        "captured_at": taken.isoformat(),
        "source": info.captured_at_source,
        "requested_at": requested_at.isoformat(),
        "deadline": deadline.isoformat(),
        "now": now.isoformat(),
        "clock_skew_s": clock_skew_s,
    }
    assumed = info.captured_at_source == "assumed_local"
    note_fr = " (heure locale supposée : le téléphone n'a pas indiqué son fuseau horaire)" if assumed else ""
    note_en = " (local time assumed: the phone did not record its time zone)" if assumed else ""
    when_fr, when_en = _fmt_time(taken, tz, "fr"), _fmt_time(taken, tz, "en")
    problems: list[str] = []
    if taken > now + timedelta(seconds=clock_skew_s):
        problems.append("future")
    if taken < requested_at:
        problems.append("before_request")
    if taken > deadline and "future" not in problems:
        problems.append("after_deadline")
    details["problems"] = problems
    if not problems:
        return CheckResult(
            name,
            True,
            f"La photo a été prise le {when_fr}, pendant la période demandée{note_fr}.",
            f"The photo was taken on {when_en}, within the requested period{note_en}.",
            details,
        )
    first = problems[0]
    if first == "future":
        fr = (
            f"La date de la photo ({when_fr}) est dans le futur : l'horloge du téléphone est mal réglée. "
            "Mettez le téléphone à l'heure automatique, puis reprenez la photo"
        )
        en = (
            f"The photo's date ({when_en}) is in the future: the phone's clock is wrong. Set the phone "
            "to automatic time, then take the photo again"
        )
    elif first == "before_request":
        asked_fr, asked_en = _fmt_time(requested_at, tz, "fr"), _fmt_time(requested_at, tz, "en")
        fr = (
            f"La photo a été prise le {when_fr}, avant la demande ({asked_fr}). Une photo récente est "
            "nécessaire : reprenez-la sur place"
        )
        en = (
            f"The photo was taken on {when_en}, before the request ({asked_en}). A new photo is "
            "needed: take it again on the spot"
        )
    else:
        due_fr, due_en = _fmt_time(deadline, tz, "fr"), _fmt_time(deadline, tz, "en")
        fr = (
            f"La photo a été prise le {when_fr}, après la date limite ({due_fr}). Contactez votre "
            "DDT(M) si vous n'avez pas pu la prendre à temps"
        )
        en = (
            f"The photo was taken on {when_en}, after the deadline ({due_en}). Contact your DDT(M) if "
            "you could not take it in time"
        )
    return CheckResult(name, False, fr + note_fr + ".", en + note_en + ".", details)


def _sector(origin: tuple[float, float], bearing: float, half_angle: float, radius: float) -> Polygon:
    """Grid-plane circular sector: the part of the landscape the camera may show."""
    angles = np.radians(np.linspace(bearing - half_angle, bearing + half_angle, _SECTOR_STEPS + 1))
    ring = [origin] + [(origin[0] + radius * math.sin(a), origin[1] + radius * math.cos(a)) for a in angles]
    return Polygon(ring)


def _check_heading(
    info: PhotoInfo,
    frame: _Frame,
    *,
    expected_heading_deg: float | None,
    heading_required: bool,
    tolerance_deg: float,
    max_range_m: float,
) -> CheckResult:
    name = "heading"
    if not info.has_exif:
        return _no_exif(name)
    if info.heading_deg is None:
        if heading_required:
            return CheckResult(
                name,
                False,
                "La photo n'indique pas dans quelle direction elle a été prise (boussole). Activez la "
                "boussole et la localisation du téléphone, puis reprenez la photo.",
                "The photo does not record which way the camera pointed (compass). Turn on the "
                "phone's compass and location, then take the photo again.",
                {"required": True, "reason": "no_heading"},
            )
        return CheckResult(
            name,
            None,
            "Direction de prise de vue non enregistrée (non exigée pour cette demande).",
            "Camera direction not recorded (not required for this request).",
            {"required": False, "reason": "no_heading"},
        )
    if info.lat is None or info.lon is None:
        return CheckResult(
            name,
            None,
            "Non vérifiable : sans position GPS, on ne peut pas savoir si l'appareil visait la parcelle.",
            "Could not be checked: without a GPS position, we cannot tell whether the camera faced "
            "the parcel.",
            {"required": heading_required, "reason": "no_position"},
        )
    heading = info.heading_deg
    details: dict[str, Any] = {
        "required": heading_required,
        "heading_deg": round(heading, 1),
        "heading_ref": info.heading_ref,
        "tolerance_deg": tolerance_deg,
        "max_range_m": max_range_m,
    }
    if info.heading_ref == "M":
        # Magnetic declination in mainland France is a few degrees: small against the tolerance.
        details["note"] = "magnetic heading used as true (declination not corrected)"
    origin = frame.xy(info.lon, info.lat)
    if origin is None:
        return CheckResult(
            name,
            None,
            "Non vérifiable : la photo a été prise trop loin de la parcelle.",
            "Could not be checked: the photo was taken too far from the parcel.",
            {**details, "reason": "too_far"},
        )
    convergence = frame.grid_north(info.lon, info.lat)
    grid_heading = (heading + convergence) % 360.0
    parcel = frame.parcel
    p = Point(origin)
    inside = parcel.covers(p)
    nearest = nearest_points(parcel, p)[0]
    centroid = parcel.centroid
    to_nearest = (grid_bearing_deg(nearest.x - p.x, nearest.y - p.y) - convergence) % 360.0
    to_centroid = (grid_bearing_deg(centroid.x - p.x, centroid.y - p.y) - convergence) % 360.0
    rad = math.radians(grid_heading)
    ray = LineString(
        [origin, (origin[0] + max_range_m * math.sin(rad), origin[1] + max_range_m * math.cos(rad))]
    )
    ray_hits = bool(ray.intersects(parcel))
    in_view = bool(_sector(origin, grid_heading, tolerance_deg, max_range_m).intersects(parcel))
    details.update(
        {
            "inside_parcel": bool(inside),
            "bearing_to_nearest_deg": round(to_nearest, 1),
            "bearing_to_centroid_deg": round(to_centroid, 1),
            "off_centroid_deg": round(angular_difference_deg(heading, to_centroid), 1),
            "ray_hits_parcel": ray_hits,
            "parcel_in_view": in_view,
            "grid_convergence_deg": round(convergence, 3),
        }
    )
    points_at_parcel = inside or ray_hits or in_view
    expected_ok = True
    if expected_heading_deg is not None:
        off_expected = angular_difference_deg(heading, expected_heading_deg)
        expected_ok = off_expected <= tolerance_deg
        details["expected_heading_deg"] = expected_heading_deg
        details["off_expected_deg"] = round(off_expected, 1)
    dir_fr, dir_en = _compass(heading, "fr"), _compass(heading, "en")
    if points_at_parcel and expected_ok:
        return CheckResult(
            name,
            True,
            f"L'appareil photo visait la parcelle (direction {heading:.0f}°, vers le {dir_fr}).",
            f"The camera faced the parcel (heading {heading:.0f}°, towards the {dir_en}).",
            details,
        )
    if not points_at_parcel:
        target = to_centroid  # "where the parcel is", as the farmer sees it on the map
        fr = (
            f"L'appareil photo était tourné vers le {dir_fr} ({heading:.0f}°) alors que la parcelle est "
            f"vers le {_compass(target, 'fr')} ({target:.0f}°). Reprenez la photo en visant la parcelle."
        )
        en = (
            f"The camera faced {dir_en} ({heading:.0f}°) while the parcel lies to the "
            f"{_compass(target, 'en')} ({target:.0f}°). Take the photo again facing the parcel."
        )
    else:
        assert expected_heading_deg is not None
        fr = (
            f"L'appareil photo était tourné vers le {dir_fr} ({heading:.0f}°) ; la demande indiquait le "
            f"{_compass(expected_heading_deg, 'fr')} ({expected_heading_deg:.0f}°). Reprenez la photo "
            "dans la direction indiquée."
        )
        en = (
            f"The camera faced {dir_en} ({heading:.0f}°); the request asked for "
            f"{_compass(expected_heading_deg, 'en')} ({expected_heading_deg:.0f}°). Take the photo again "
            "in the direction shown."
        )
    return CheckResult(name, False, fr, en, details)


def _check_duplicate(
    info: PhotoInfo, known_hashes: Iterable[tuple[str, str]], *, max_distance: int
) -> CheckResult:
    name = "not_duplicate"
    exact = False
    closest: int | None = None
    compared = 0
    for sha, ph in known_hashes:
        compared += 1
        if sha == info.sha256:
            exact = True
            break
        try:
            dist = phash_distance(info.phash, ph)
        except (TypeError, ValueError):
            continue  # a stored hash that is missing or damaged cannot match anything
        closest = dist if closest is None else min(closest, dist)
    details: dict[str, Any] = {
        "compared": compared,
        "exact_duplicate": exact,
        "closest_phash_distance": closest,
        "max_phash_distance": max_distance,
    }
    if exact:
        return CheckResult(
            name,
            False,
            "Cette photo a déjà été envoyée. Prenez une nouvelle photo sur place.",
            "This photo was already sent. Take a new photo on the spot.",
            details,
        )
    if closest is not None and closest <= max_distance:
        return CheckResult(
            name,
            False,
            "Cette photo est presque identique à une photo déjà envoyée (image réutilisée, recadrée ou "
            "réduite). Prenez une nouvelle photo sur place.",
            "This photo is almost identical to one already sent (an image re-used, cropped or "
            "resized). Take a new photo on the spot.",
            details,
        )
    return CheckResult(
        name,
        True,
        "La photo est nouvelle : elle ne reprend pas une photo déjà envoyée.",
        "The photo is new: it does not repeat a photo already sent.",
        details,
    )


def check_photo(
    info: PhotoInfo,
    *,
    parcel_geometry_wgs84: BaseGeometry | Mapping[str, Any],
    target_point: tuple[float, float] | None = None,
    requested_at: datetime,
    deadline: datetime | date,
    now: datetime,
    expected_heading_deg: float | None = None,
    heading_required: bool = False,
    position_buffer_m: float = 20.0,
    near_target_m: float = 50.0,
    heading_tolerance_deg: float = 60.0,
    known_hashes: Iterable[tuple[str, str]] = (),
    heading_max_range_m: float = 500.0,
    clock_skew_s: float = 300.0,
    phash_max_distance: int = 6,
    local_tz: str = "Europe/Paris",
) -> list[CheckResult]:
    """Run every named check of a photo against its request.

    Parameters
    ----------
    info : PhotoInfo
        What :func:`~s3tr.photos.exif.read_photo` read from the upload.
    parcel_geometry_wgs84 : shapely geometry or GeoJSON mapping
        The parcel outline, Polygon or MultiPolygon in WGS84 (EPSG:4326, x = lon, y = lat).
    target_point : (lon, lat), optional
        The spot the request asked the farmer to stand at, WGS84 degrees.
    requested_at, now : datetime
        Timezone-aware: when the photo was requested, and the time of the check.
    deadline : datetime or date
        Aware datetime, or a date meaning the end of that day in ``local_tz``.
    expected_heading_deg : float, optional
        Direction the request asked to point the camera, degrees from true north.
    heading_required : bool
        When true, a photo without GPSImgDirection fails ``heading``; otherwise it gives ``None``.
    position_buffer_m : float
        Metres around the parcel still accepted as "in the parcel" (GPS error, field edge).
    near_target_m : float
        Metres from ``target_point`` accepted even outside parcel + buffer.
    heading_tolerance_deg : float
        Half-angle of the camera's accepted view cone, degrees.
    known_hashes : iterable of (sha256, phash)
        Earlier photos (of this farmer or case) to detect duplicates; leave out this photo itself.
    heading_max_range_m : float
        How far (metres) the camera's view may reach the parcel.
    clock_skew_s : float
        Seconds a capture time may lie in the future (phone clock drift).
    phash_max_distance : int
        Largest perceptual-hash Hamming distance (bits of 64) reported as a re-used image.
    local_tz : str
        IANA zone for date deadlines and for the times shown in messages.

    Returns
    -------
    list of CheckResult
        One per name of :data:`CHECK_NAMES`, in that order. Without EXIF, ``exif_present`` fails
        and the checks that need EXIF are ``None``; ``not_duplicate`` (pixels only) still runs.

    Raises
    ------
    ParcelGeometryError
        The parcel geometry is empty, not polygonal or not in lon/lat degrees.
    PhotoCheckInputError
        Naive datetimes, a deadline before the request, a bad target point.
    """
    tz = ZoneInfo(local_tz)
    parcel = _parcel(parcel_geometry_wgs84)
    target = _target(target_point)
    requested = _aware("requested_at", requested_at, tz)
    due = _aware("deadline", deadline, tz, end_of_day=True)
    now = _aware("now", now, tz)
    if due < requested:
        raise PhotoCheckInputError(
            f"deadline {due.isoformat()} is before requested_at {requested.isoformat()}"
        )
    if expected_heading_deg is not None and not (
        math.isfinite(expected_heading_deg) and 0 <= expected_heading_deg <= 360
    ):
        raise PhotoCheckInputError(f"expected_heading_deg={expected_heading_deg!r} must be within 0..360")

    frame = _Frame(parcel)
    placement = None
    if info.has_exif and info.lat is not None and info.lon is not None:
        placement = _place(
            frame, info.lon, info.lat, target, buffer_m=position_buffer_m, near_target_m=near_target_m
        )
    results = [
        _check_exif(info),
        _check_gps(info),
        _check_position(info, placement, buffer_m=position_buffer_m, near_target_m=near_target_m),
        _check_time(info, requested_at=requested, deadline=due, now=now, clock_skew_s=clock_skew_s, tz=tz),
        _check_heading(
            info,
            frame,
            expected_heading_deg=expected_heading_deg,
            heading_required=heading_required,
            tolerance_deg=heading_tolerance_deg,
            max_range_m=heading_max_range_m,
        ),
        _check_duplicate(info, known_hashes, max_distance=phash_max_distance),
        _check_plausible(
            info, frame, placement, target, buffer_m=position_buffer_m, near_target_m=near_target_m
        ),
    ]
    logger.debug("photo %s checks: %s", info.sha256[:12], {r.name: r.passed for r in results})
    return results

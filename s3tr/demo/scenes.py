"""Acquisitions and the atmosphere over them: dates, clouds, cloud shadows, cirrus, SCL.

**Dates.** The tile is seen every 2, 3 or 5 days (two relative orbits, Sentinel-2B and -2C, with
a few -2A acquisitions of its extended campaign), around 10:50 UTC.

**Clouds** are smooth random fields (Gaussian-filtered noise at two scales, upsampled bilinearly)
thresholded to the date's cloud cover; their opacity ``alpha`` rises from 0 at the edge to 1 in
the core, and the top-of-cloud spectrum (bright and flat, lower in the SWIR) is blended in:
``R = (1 - alpha) R_surface + alpha R_cloud``. **Shadows** are the same field displaced away from
the sun (a cloud 1–2.5 km high under a sun ~55° high casts its shadow 0.7–1.8 km to the
north-north-west) and darken the surface to ~30 % of its reflectance (the diffuse sky light
remains). **Cirrus** is a broad, faint additive veil, stronger in the blue; on some dates a uniform residual
**haze** (what the atmospheric correction left) brightens the visible bands slightly.

**SCL** is derived the way Sen2Cor's output behaves: opaque cores are class 9, thinner cloud 8,
cirrus 10, shadows 3, water 6, the rest 4 (vegetation) or 5 (not vegetated) from the surface NDVI.
Cloud edges with opacity below the detection threshold stay labelled as surface (4/5) — the SCL
misses that every real pipeline has to dilate away — and a few of them come out 7 (unclassified).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Acquisition", "Atmosphere", "make_atmosphere", "scene_classification", "schedule", "to_dn"]

CLOUD = np.array([0.42, 0.41, 0.40, 0.41, 0.42, 0.43, 0.43, 0.44, 0.34, 0.24], dtype=np.float32)
# Residual haze of an imperfect atmospheric correction: additive, strongest in the blue.
HAZE = np.array([0.015, 0.010, 0.007, 0.006, 0.004, 0.004, 0.003, 0.003, 0.001, 0.0005], dtype=np.float32)
CIRRUS = np.array([0.045, 0.040, 0.035, 0.035, 0.035, 0.035, 0.035, 0.035, 0.030, 0.020], dtype=np.float32)
SHADOW_TRANSMISSION = 0.3
# Opacity thresholds of the scene classification: below DETECT a cloud edge is missed.
DETECT, HIGH_PROB = 0.3, 0.65
SHADOW_DETECT = 0.75
CIRRUS_DETECT = 0.5


@dataclass(frozen=True)
class Acquisition:
    """One overpass of the tile.

    Attributes
    ----------
    index
        Position in the season (0-based), also the seed of its random fields.
    datetime
        Sensing time, UTC (timezone-aware).
    platform
        ``sentinel-2a``, ``sentinel-2b`` or ``sentinel-2c``.
    relative_orbit
        Relative orbit number.
    cloud_target
        Target cloud fraction of the window (0..1; >= 0.97 means a fully cloudy date).
    cirrus
        Whether a cirrus veil is present.
    soil_moisture
        Soil darkening factor (1 dry .. 0.75 just after rain).
    sun_elevation, sun_azimuth
        Sun position at the centre of the area, degrees (azimuth clockwise from north).
    haze
        Residual haze left by the atmospheric correction (0 none .. 1 a hazy summer day).
    """

    index: int
    datetime: dt.datetime
    platform: str
    relative_orbit: int
    cloud_target: float
    cirrus: bool
    soil_moisture: float
    sun_elevation: float = 50.0
    sun_azimuth: float = 155.0
    haze: float = 0.0

    @property
    def short_platform(self) -> str:
        """``S2A``, ``S2B`` or ``S2C``."""
        return "S2" + self.platform[-1].upper()

    def item_id(self, tile: str) -> str:
        """Earth Search v1 item id, e.g. ``S2B_31TBM_20250412_0_L2A``."""
        return f"{self.short_platform}_{tile}_{self.datetime:%Y%m%d}_0_L2A"


def sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate solar elevation and azimuth (degrees) at ``when`` (UTC) — good to ~1°."""
    doy = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * np.pi / 365 * (doy - 1 + (hours - 12) / 24)
    decl = 0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g))
    solar_minutes = hours * 60 + eqtime + 4 * lon
    ha = np.radians(solar_minutes / 4 - 180)
    phi = np.radians(lat)
    cos_zen = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(ha)
    zen = np.arccos(np.clip(cos_zen, -1, 1))
    az = np.degrees(np.arctan2(np.sin(ha), np.cos(ha) * np.sin(phi) - np.tan(decl) * np.cos(phi))) + 180
    return float(90 - np.degrees(zen)), float(az % 360)


def schedule(
    rng: np.random.Generator, start: dt.date, end: dt.date, *, lon: float = 0.34, lat: float = 46.58
) -> list[Acquisition]:
    """Acquisitions every 2–5 days from ``start`` to ``end`` (inclusive), with their weather.

    ``lon``/``lat`` (degrees) place the sun for the shadows and the items' ``view:sun_*``.
    """
    acqs: list[Acquisition] = []
    # First overpass on the first or second day (the first when the range is a single day).
    day = start + dt.timedelta(days=int(rng.integers(0, 2 if end > start else 1)))
    moisture = 0.9
    i = 0
    while day <= end:
        orbit = 94 if i % 2 == 0 else 51
        platform = "sentinel-2a" if rng.random() < 0.12 else ("sentinel-2b" if i % 4 < 2 else "sentinel-2c")
        # Sensing time: 10:50-11:00 UTC, seconds and milliseconds as in real items.
        t = dt.datetime.combine(day, dt.time(10, 50), tzinfo=dt.UTC) + dt.timedelta(
            seconds=float(rng.uniform(0, 600)).__round__(3)
        )
        summer = 1.0 if 150 <= day.timetuple().tm_yday <= 250 else 0.0
        r = rng.random()
        if r < 0.10 - 0.04 * summer:
            cover = float(rng.uniform(0.97, 1.0))
        elif r < 0.32 - 0.06 * summer:
            cover = float(rng.uniform(0.4, 0.9))
        elif r < 0.70:
            cover = float(rng.uniform(0.05, 0.4))
        else:
            cover = float(rng.uniform(0.0, 0.03))
        # Soil moisture follows the weather: cloudy spells are rainy, clear spells dry the soil.
        moisture = float(
            np.clip(0.7 * moisture + 0.3 * (0.78 if cover > 0.5 else 0.98) + rng.normal(0, 0.02), 0.75, 1.0)
        )
        elev, azim = sun_position(t, lon, lat)
        acqs.append(
            Acquisition(
                index=i,
                datetime=t,
                platform=platform,
                relative_orbit=orbit,
                cloud_target=cover,
                cirrus=bool(rng.random() < 0.25),
                soil_moisture=moisture,
                sun_elevation=round(elev, 6),
                sun_azimuth=round(azim, 6),
                haze=float(rng.uniform(0.2, 1.0)) if rng.random() < 0.3 else 0.0,
            )
        )
        day += dt.timedelta(days=int(rng.choice([2, 3, 5], p=[0.35, 0.4, 0.25])))
        i += 1
    return acqs


@dataclass
class Atmosphere:
    """Per-pixel atmosphere of one date, float32 ``(h, w)`` fields in [0, 1]."""

    alpha: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray

    def refine(self) -> Atmosphere:
        """The same fields on the 10 m grid (each 20 m value repeated 2 x 2).

        The fields vary over hundreds of metres, so repeating loses nothing visible, and the 10 m
        fields average back exactly to the 20 m ones.
        """
        return Atmosphere(
            *(np.repeat(np.repeat(a, 2, axis=0), 2, axis=1) for a in (self.alpha, self.shadow, self.cirrus))
        )


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigmas: tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise on a coarse grid (octaves of Gaussian-filtered noise)."""
    out = np.zeros(shape, dtype=np.float32)
    for k, s in enumerate(sigmas):
        f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), s, mode="wrap")
        out += f / (f.std() + 1e-9) * 0.5**k
    return (out - out.mean()) / (out.std() + 1e-9)


def _interp_matrix(n_fine: int, offset: int, step: int, n_coarse: int) -> np.ndarray:
    """Bilinear weights ``(n_fine, n_coarse)`` of fine pixels ``offset..offset+n_fine``.

    The coarse grid has pixels ``step`` times larger and the same origin.
    """
    pos = (offset + np.arange(n_fine) + 0.5) / step - 0.5
    i0 = np.clip(np.floor(pos).astype(int), 0, n_coarse - 2)
    frac = np.clip(pos - i0, 0.0, 1.0).astype(np.float32)
    m = np.zeros((n_fine, n_coarse), dtype=np.float32)
    rows = np.arange(n_fine)
    m[rows, i0] = 1.0 - frac
    m[rows, i0 + 1] = frac
    return m


def _upsample(coarse: np.ndarray, step: int, row0: int, col0: int, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a window of ``coarse`` by ``step``, as two small matrix products."""
    wr = _interp_matrix(h, row0, step, coarse.shape[0])
    wc = _interp_matrix(w, col0, step, coarse.shape[1])
    return np.clip((wr @ coarse) @ wc.T, 0.0, 1.0)


def make_atmosphere(acq: Acquisition, shape20: tuple[int, int], seed: int) -> Atmosphere:
    """Clouds, shadows and cirrus of ``acq`` on a 20 m window of ``shape20`` pixels."""
    rng = np.random.default_rng([seed, acq.index, 0xC10D])
    h, w = shape20
    px = 20.0  # metres per pixel
    step = 8  # coarse cell: 160 m (bilinear upsampling gives the soft sub-cell edges)
    pad = 100  # 2 km around the window, so that shadows of clouds outside it come in
    ch, cw = (h + 2 * pad) // step + 2, (w + 2 * pad) // step + 2
    zero = np.zeros(shape20, dtype=np.float32)
    if acq.cloud_target <= 0.0 and not acq.cirrus:
        return Atmosphere(zero, zero.copy(), zero.copy())

    field = _smooth_field(rng, (ch, cw), (3.0, 1.0, 0.5))
    inner = field[pad // step : (pad + h) // step, pad // step : (pad + w) // step]
    if acq.cloud_target >= 0.97:
        coarse = np.clip(0.75 + 0.15 * field, 0.55, 1.0)
    else:
        thr = float(np.quantile(inner, 1.0 - acq.cloud_target)) if acq.cloud_target > 0 else np.inf
        # Opacity rises over 0.6 std of the field: soft, realistic edges tens of metres wide.
        coarse = np.clip((field - thr) / 0.6, 0.0, 1.0) ** 0.8
    coarse = coarse.astype(np.float32)

    # Shadow displacement: away from the sun, clouds 1-2.5 km high.
    elev = np.radians(max(acq.sun_elevation, 20.0))
    az = np.radians(acq.sun_azimuth)
    dist = rng.uniform(1000, 2500) / np.tan(elev) / px  # in pixels
    # Shadow offset (east, north) in pixels: towards azimuth az + 180°.
    dx = int(np.clip(round(-np.sin(az) * dist), -pad, pad))
    dy = int(np.clip(round(-np.cos(az) * dist), -pad, pad))
    alpha = _upsample(coarse, step, pad, pad, h, w)
    # The shadow at pixel p is the cloud that sits at p - offset (rows grow southwards).
    # The direct sunbeam through a cloud of opacity a is attenuated as exp(-4a): even a modest cloud
    # casts a dark shadow, with a soft edge.
    shadow = 1.0 - np.exp(-4.0 * _upsample(coarse, step, pad + dy, pad - dx, h, w))
    shadow *= 1.0 - alpha
    if acq.cirrus:
        veil = _smooth_field(rng, (h // step + 2, w // step + 2), (5.0,))
        veil = np.clip((veil - rng.uniform(-0.5, 0.8)) / 1.2, 0.0, 1.0) * rng.uniform(0.5, 1.0)
        cirrus = _upsample(veil.astype(np.float32), step, 0, 0, h, w)
    else:
        cirrus = zero.copy()
    return Atmosphere(alpha, shadow, cirrus)


def apply_atmosphere(
    refl: np.ndarray, atm: Atmosphere, band_index: list[int], gain: float, haze: float = 0.0
) -> np.ndarray:
    """Top-of-canopy reflectance ``(band, h, w)`` -> what the L2A product shows, in place.

    ``band_index`` gives, for each band of ``refl``, its position in :data:`s3tr.demo.phenology.BANDS`.
    """
    has_shadow, has_cirrus, has_cloud = (bool(f.any()) for f in (atm.shadow, atm.cirrus, atm.alpha))
    light = gain * (1.0 - (1.0 - SHADOW_TRANSMISSION) * atm.shadow) if has_shadow else gain
    for k, b in enumerate(band_index):
        r = refl[k]
        r *= light
        r += HAZE[b] * haze
        if has_cirrus:
            r += CIRRUS[b] * atm.cirrus
        if has_cloud:
            r *= 1.0 - atm.alpha
            r += CLOUD[b] * atm.alpha
    return refl


def scene_classification(
    ndvi_surface: np.ndarray, water: np.ndarray, atm20: Atmosphere, rng: np.random.Generator
) -> np.ndarray:
    """SCL (uint8 ``(h, w)``) at 20 m from the surface NDVI, the water fraction and the atmosphere."""
    scl = np.where(ndvi_surface > 0.4, 4, 5).astype(np.uint8)
    scl[water > 0.75] = 6  # mixed river-bank pixels read as land, as in Sen2Cor
    missed = (atm20.alpha > 0.12) & (atm20.alpha < DETECT)
    scl[missed & (rng.random(scl.shape) < 0.25)] = 7
    scl[(atm20.shadow > SHADOW_DETECT) & (atm20.alpha < DETECT)] = 3
    scl[atm20.cirrus > CIRRUS_DETECT] = 10
    scl[atm20.alpha >= DETECT] = 8
    scl[atm20.alpha >= HIGH_PROB] = 9
    return scl


def to_dn(refl: np.ndarray) -> np.ndarray:
    """Surface reflectance -> L2A DN (uint16): ``round(R * 10000) + 1000`` (baseline >= 04.00), never 0."""
    dn = np.rint(refl * 10000.0 + 1000.0)
    np.clip(dn, 1, 65535, out=dn)
    return dn.astype(np.uint16)

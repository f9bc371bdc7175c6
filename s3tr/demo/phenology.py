"""Crop phenology and surface spectra: what each parcel looks like on each day.

The physics is a **linear spectral mixture** of seven endmembers, the textbook model for optical
crop monitoring at field scale:

``reflectance(band) = Σ_k cover_k × spectrum_k(band)``

with covers ``green`` (photosynthetic vegetation), ``dry`` (straw, stubble, senescent leaves, hay),
``flower`` (yellow rapeseed/sunflower petals: they raise green and red and pull NDVI down during
flowering, as seen in real series), ``tree`` (hedges and woods, with a leaf-on/leaf-off spectrum),
``impervious`` (roads, roofs), ``water`` (river, ponds) and ``soil`` (the remainder, with a
per-parcel brightness and a per-date moisture darkening that is stronger in the SWIR, like wet
soil).

Each crop follows a piecewise-linear calendar of green and dry cover through the year
(green-up, peak, senescence, harvest, stubble, tillage, catch crop), shifted and scaled per parcel.
Management events act on that curve: **mowing** removes 40–75 % of the green cover at once (most
of it becomes cut grass or stubble, some soil shows) and the sward regrows over 2–4 weeks, which
gives the sharp NDVI drops of ≈0.15–0.4 seen on real meadows; **grazing** lowers green cover slowly
by 20–35 % while the herd is there; **ploughing** turns a field to bare soil in a day.

Endmember values are typical Sentinel-2 L2A surface reflectances: dense green canopy B04 ≈ 0.03,
B8A ≈ 0.44 (NDVI ≈ 0.88); bare soil B04 ≈ 0.17, B8A ≈ 0.235, B11 ≈ 0.30 (NDVI ≈ 0.16); stubble
in between with a high SWIR.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from s3tr.demo.farming import ParcelPlan

__all__ = [
    "BANDS",
    "COMPONENTS",
    "DAYS",
    "SPECTRA",
    "daily_cover",
    "endmember_matrix",
]

BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
COMPONENTS = ("green", "dry", "flower", "tree", "impervious", "water", "soil")
# Day-of-year axis of the daily curves: index = day of year (index 0 unused, 366 for leap years).
DAYS = np.arange(367)

SPECTRA: dict[str, np.ndarray] = {
    #                   B02    B03    B04    B05    B06    B07    B08    B8A    B11    B12
    "green": np.array([0.028, 0.068, 0.028, 0.095, 0.300, 0.380, 0.420, 0.440, 0.195, 0.090]),
    "dry": np.array([0.070, 0.100, 0.130, 0.170, 0.210, 0.240, 0.260, 0.270, 0.370, 0.270]),
    "flower": np.array([0.050, 0.250, 0.280, 0.330, 0.380, 0.420, 0.450, 0.460, 0.300, 0.160]),
    "tree_leaf_on": np.array([0.025, 0.050, 0.025, 0.080, 0.270, 0.340, 0.380, 0.400, 0.180, 0.080]),
    "tree_leaf_off": np.array([0.060, 0.080, 0.090, 0.110, 0.140, 0.160, 0.180, 0.190, 0.250, 0.200]),
    "impervious": np.array([0.110, 0.130, 0.150, 0.170, 0.190, 0.200, 0.210, 0.220, 0.240, 0.220]),
    "water": np.array([0.050, 0.060, 0.040, 0.035, 0.020, 0.018, 0.015, 0.012, 0.006, 0.004]),
    "soil": np.array([0.100, 0.130, 0.170, 0.200, 0.215, 0.225, 0.230, 0.235, 0.300, 0.260]),
}
# How much more the SWIR darkens than the visible when soil is wet (water absorbs at 1.6/2.2 µm).
_SOIL_WET_EXPONENT = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.6, 1.8])


def _leaf_on(doy: float) -> float:
    """Fraction of deciduous leaf cover: bud-burst in April, full from mid-May, fall in late October."""
    return float(np.interp(doy, [0, 95, 135, 285, 320, 366], [0.15, 0.15, 1.0, 1.0, 0.3, 0.15]))


def endmember_matrix(doy: float, soil_moisture: float) -> np.ndarray:
    """Spectra of the covers on day ``doy``, shape ``(len(COMPONENTS), len(BANDS))``, float32.

    ``soil_moisture`` is a darkening factor in (0, 1]: 1 dry soil, 0.75 soil just after rain.
    The soil row is the reference soil; per-parcel soil brightness is carried by the soil cover.
    """
    leaf = _leaf_on(doy)
    tree = leaf * SPECTRA["tree_leaf_on"] + (1 - leaf) * SPECTRA["tree_leaf_off"]
    soil = SPECTRA["soil"] * soil_moisture**_SOIL_WET_EXPONENT
    rows = [
        SPECTRA["green"],
        SPECTRA["dry"],
        SPECTRA["flower"],
        tree,
        SPECTRA["impervious"],
        SPECTRA["water"],
        soil,
    ]
    return np.asarray(rows, dtype=np.float32)


def _interp(points: list[tuple[float, float]]) -> np.ndarray:
    """Piecewise-linear daily curve through ``(doy, value)`` points (sorted, clamped at the ends)."""
    pts = sorted(points)
    x = np.array([p[0] for p in pts], dtype=float)
    # Equal days would make np.interp ambiguous; nudge them so a later point wins (a step).
    x = x + np.arange(len(x)) * 1e-6
    return np.interp(DAYS, x, [p[1] for p in pts])


def _calendar(
    plan: ParcelPlan, kind: str, *, harvest: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unmanaged (no mowing/grazing) daily green, dry and flower covers of ``kind``."""
    v = plan.vigour
    s = plan.shift
    H, T = plan.harvest if harvest else None, plan.tillage
    if kind in ("sunflower", "maize", "spring_pea") and plan.sow is None:
        raise ValueError(f"parcel label {plan.label}: a {kind} calendar needs a sowing day (plan.sow)")
    S = plan.sow if plan.sow is not None else 0
    flower: list[tuple[float, float]] = [(0, 0.0), (366, 0.0)]
    # After the harvest and the stubble tillage, a catch crop or weeds come back before winter.
    regrow = (0.5, 0.05) if plan.catch_crop else (0.14, 0.05)
    if kind in ("winter_cereal", "winter_barley"):
        e = -12 if kind == "winter_barley" else 0
        kp = [
            (0, 0.25, 0.05),
            (50, 0.30, 0.05),
            (75 + s + e, 0.45, 0.04),
            (100 + s + e, 0.75 * v, 0.03),
            (120 + s + e, v, 0.02),
            (150 + s + e, 0.97 * v, 0.04),
            (165 + s + e, 0.60, 0.30),
            (178 + s + e, 0.22, 0.62),
        ]
    elif kind == "rapeseed":
        kp = [(0, 0.45, 0.05), (60, 0.55, 0.05), (88 + s, 0.80 * v, 0.03), (130 + s, 0.9 * v, 0.03)]
        kp += [(150 + s, 0.55, 0.32), (168 + s, 0.18, 0.70)]
        flower = [(0, 0.0), (95 + s, 0.0), (108 + s, 0.35), (125 + s, 0.28), (138 + s, 0.0), (366, 0.0)]
    elif kind == "sunflower":
        kp = [(0, 0.20, 0.10), (S - 21, 0.25, 0.08), (S - 20, 0.02, 0.05), (S + 10, 0.02, 0.03)]
        kp += [(S + 30, 0.15, 0.02), (S + 55, 0.60 * v, 0.02), (S + 75, v, 0.02), (S + 100, 0.85 * v, 0.05)]
        kp += [(S + 112, 0.45, 0.45), (S + 124, 0.12, 0.75)]
        flower = [(0, 0.0), (S + 72, 0.0), (S + 82, 0.22), (S + 95, 0.0), (366, 0.0)]
    elif kind == "maize":
        kp = [(0, 0.15, 0.15), (S - 16, 0.20, 0.10), (S - 15, 0.02, 0.06), (S + 15, 0.03, 0.03)]
        kp += [(S + 40, 0.30, 0.02), (S + 65, 0.85 * v, 0.02), (S + 95, v, 0.03)]
        kp += [(S + 118, 0.70, 0.25), (S + 135, 0.35, 0.55)]
    elif kind == "spring_pea":
        kp = [(0, 0.05, 0.10), (S, 0.02, 0.05), (S + 20, 0.05, 0.03), (S + 50, 0.55 * v, 0.02)]
        kp += [(S + 70, v, 0.02), (S + 90, 0.75, 0.10), (S + 100, 0.35, 0.55)]
    elif kind == "lucerne":
        kp = [
            (0, 0.35, 0.15),
            (60, 0.45, 0.10),
            (110 + s, 0.85 * v, 0.04),
            (300, 0.75, 0.08),
            (366, 0.5, 0.1),
        ]
    elif kind == "grassland":
        kp = [(0, 0.55, 0.12), (60, 0.60, 0.10), (95 + s, 0.78 * v, 0.06), (130 + s, 0.92 * v, 0.05)]
        kp += [(165 + s, 0.85 * v, 0.10), (195, 0.62, 0.28), (230, 0.52, 0.36), (265, 0.66, 0.20)]
        kp += [(300, 0.72, 0.10), (366, 0.60, 0.10)]
        if plan.scenario in ("no_activity", "abandoned"):
            # Nobody takes the grass: standing dead matter piles up through the summer.
            kp = [(d, g * (0.85 if d > 170 else 1.0), min(0.9 - g, dd * 1.6)) for d, g, dd in kp]
    elif kind in ("fallow", "idle"):
        kp = [(0, 0.40, 0.20), (60, 0.45, 0.15), (120 + s, 0.75 * v, 0.10), (160 + s, 0.70, 0.20)]
        kp += [(200, 0.45, 0.45), (240, 0.35, 0.50), (280, 0.50, 0.30), (366, 0.45, 0.25)]
        if kind == "idle":
            kp = [(d, g * 0.9, min(0.9 - g * 0.9, dd * 1.4)) for d, g, dd in kp]
    else:
        raise ValueError(f"unknown crop kind {kind!r}")

    if H is not None:
        # Crop up to the day before harvest, then stubble (straw lying), tillage, regrowth.
        kp = [p for p in kp if p[0] < H - 1]
        kp.append((H - 1, 0.10 if kind != "maize" else 0.2, 0.72))
        silage = plan.true_code == "MIE"
        kp.append((H, 0.03, 0.12 if silage else 0.5))
        if T is not None:
            kp += [(T - 1, 0.08 if kind != "rapeseed" else 0.3, 0.35), (T, 0.02, 0.08)]
            kp += [(T + 20, 0.04, 0.06), (T + 55, *regrow), (366, *regrow)]
        else:
            vol = 0.3 if kind == "rapeseed" else 0.08
            kp += [(H + 25, vol, 0.35), (366, vol, 0.3)]
    green = _interp([(d, g) for d, g, _ in kp])
    dry = _interp([(d, dd) for d, _, dd in kp])
    return green, dry, _interp(flower)


def _mow(green: np.ndarray, dry: np.ndarray, day: int, depth: float, recovery: int) -> None:
    """Apply a cut on ``day`` in place: remove ``depth`` of the green cover, regrow over ``recovery``."""
    t = DAYS - day
    after = t >= 0
    factor = np.ones_like(green)
    factor[after] = 1.0 - depth * np.clip(1.0 - t[after] / recovery, 0.0, 1.0)
    removed = green * (1.0 - factor)
    green *= factor
    # Most of the cut biomass lies as swaths or stubble for a few days (hay), a bit of soil shows.
    hay = np.clip(1.0 - t / 6.0, 0.0, 1.0) * after
    stubble = np.clip(1.0 - t / recovery, 0.0, 1.0) * after
    dry += removed * (0.45 * hay + 0.25 * stubble)


def _graze(green: np.ndarray, dry: np.ndarray, start: int, end: int, intensity: float) -> None:
    """Herd on the parcel from ``start`` to ``end``: green cover down by ``intensity`` slowly."""
    ramp_down = np.clip((DAYS - start) / 15.0, 0.0, 1.0)
    ramp_up = np.clip(1.0 - (DAYS - end) / 25.0, 0.0, 1.0)
    factor = 1.0 - intensity * ramp_down * ramp_up
    removed = green * (1.0 - factor)
    green *= factor
    dry += 0.3 * removed


def daily_cover(plan: ParcelPlan) -> np.ndarray:
    """Daily covers of one parcel, shape ``(len(DAYS), 3)`` (green, dry, flower), float64 in [0, 1].

    The curve is that of the parcel's *true* land use with its management events applied; the
    remaining covers (tree, impervious, water, soil) are set by the renderer.
    """
    green, dry, flower = _calendar(plan, plan.true_kind, harvest=plan.plough is None)
    for day, depth, recovery in plan.mowings:
        _mow(green, dry, day, depth, recovery)
    for start, end, intensity in plan.grazings:
        _graze(green, dry, start, end, intensity)
    if plan.plough is not None:
        # Grassland ploughed: bare soil from that day, then what is sown after it.
        p = plan.plough
        after = p <= DAYS
        if plan.after_plough == "maize":
            g2, d2, f2 = _calendar(plan, "maize")
        else:
            s2 = plan.sow if plan.sow is not None else p + 20
            g2 = _interp(
                [(0, 0.02), (p, 0.02), (s2 + 10, 0.03), (s2 + 45, 0.45), (s2 + 80, 0.75), (366, 0.7)]
            )
            d2 = _interp([(0, 0.06), (p, 0.06), (s2 + 45, 0.04), (366, 0.06)])
            f2 = np.zeros_like(g2)
        green[after], dry[after], flower[after] = g2[after], d2[after], f2[after]
    out = np.stack([green, dry, flower], axis=1)
    # Covers are fractions of the pixel: keep them in [0, 1] and summing to at most 1.
    np.clip(out, 0.0, 1.0, out=out)
    total = out.sum(axis=1, keepdims=True)
    out *= np.minimum(1.0, 1.0 / np.maximum(total, 1e-9))
    return out
